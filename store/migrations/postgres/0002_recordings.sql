-- Recordings and consent events: the columns of migrations/sqlite/0002, each
-- table isolated by blackbox_isolate (0001).

-- One row per recording, inserted before any audio is written. The object key
-- is chosen at insert time so every upload retry writes the same object.
-- (provider, provider_recording_id) makes ingestion idempotent. call_id has
-- no foreign key on purpose: a recording must survive even if the call row
-- could not be written.
CREATE TABLE recordings (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id),
    call_id               TEXT NOT NULL,
    provider              TEXT NOT NULL,
    provider_recording_id TEXT NOT NULL,
    object_key            TEXT NOT NULL,
    state                 TEXT NOT NULL,
    truncated             INTEGER NOT NULL DEFAULT 0,
    sha256                TEXT NOT NULL DEFAULT '',
    audio_sha256          TEXT NOT NULL DEFAULT '',
    size_bytes            BIGINT NOT NULL DEFAULT 0,
    duration_ms           BIGINT NOT NULL DEFAULT 0,
    channels              TEXT NOT NULL DEFAULT '[]',
    codec                 TEXT NOT NULL,
    sample_rate           INTEGER NOT NULL,
    attempts              INTEGER NOT NULL DEFAULT 0,
    last_error            TEXT NOT NULL DEFAULT '',
    node                  TEXT NOT NULL DEFAULT '',
    spool_path            TEXT NOT NULL DEFAULT '',
    started_at            BIGINT NOT NULL,
    ended_at              BIGINT NOT NULL DEFAULT 0,
    stored_at             BIGINT NOT NULL DEFAULT 0,
    UNIQUE (provider, provider_recording_id),
    UNIQUE (object_key)
);
CREATE INDEX recordings_tenant_call ON recordings (tenant_id, call_id);
CREATE INDEX recordings_tenant_state ON recordings (tenant_id, state);
CREATE INDEX recordings_node_state ON recordings (node, state);
SELECT blackbox_isolate('recordings');

-- Append-only: what each party was told about recording and what they did.
-- prompt_version is "label:sha256-of-audio", so the exact words are provable.
-- Like audit_events, the gateway may add and read, never change or remove.
CREATE TABLE consent_events (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    call_id        TEXT NOT NULL,
    party          TEXT NOT NULL,
    prompt_id      TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    mode           TEXT NOT NULL,
    result         TEXT NOT NULL,
    digit          TEXT NOT NULL DEFAULT '',
    started_at     BIGINT NOT NULL,
    ended_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX consent_tenant_call ON consent_events (tenant_id, call_id, started_at);
SELECT blackbox_isolate('consent_events', append_only => true);
