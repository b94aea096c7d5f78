-- Control-plane API: the tables of migrations/sqlite/0004 (tokens, the
-- playback access log, legal holds, recording deletions), each isolated by
-- blackbox_isolate (0001).

-- API tokens. Only the SHA-256 of a token is stored; the token itself is
-- shown once when it is created. A token acts as its user, with the role the
-- user has when the token is used.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL DEFAULT '',
    token_sha256 TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT NOT NULL DEFAULT 0,
    revoked_by   TEXT NOT NULL DEFAULT '',
    last_used_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_tenant_user ON api_tokens (tenant_id, user_id);
SELECT blackbox_isolate('api_tokens');

-- One row per listening session: the Range requests of one listener on one
-- recording by one path, no more than the idle window apart, fold into one
-- row. (session_key, seq) lets two nodes race on the same session without
-- writing two rows: the loser of the insert updates the winner's row.
-- user_id has no foreign key: the log outlives its users.
CREATE TABLE access_log (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    session_key  TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    call_id      TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    username     TEXT NOT NULL,
    path         TEXT NOT NULL,
    remote_addr  TEXT NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT '',
    started_at   BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    requests     BIGINT NOT NULL,
    bytes        BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, session_key, seq)
);
CREATE INDEX access_log_tenant_call ON access_log (tenant_id, call_id, id);
CREATE INDEX access_log_tenant_user ON access_log (tenant_id, user_id, id);
CREATE INDEX access_log_tenant_recording ON access_log (tenant_id, recording_id, id);
SELECT blackbox_isolate('access_log');

-- Legal holds on calls: while one is in force (released_at = 0) nothing of
-- the call is deleted, by retention or by anyone. Released holds stay as
-- history; at most one hold per call is in force.
CREATE TABLE legal_holds (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    call_id        TEXT NOT NULL,
    reason         TEXT NOT NULL,
    placed_by      TEXT NOT NULL,
    placed_at      BIGINT NOT NULL,
    released_at    BIGINT NOT NULL DEFAULT 0,
    released_by    TEXT NOT NULL DEFAULT '',
    release_reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX legal_holds_active ON legal_holds (tenant_id, call_id) WHERE released_at = 0;
CREATE INDEX legal_holds_tenant ON legal_holds (tenant_id, placed_at);
SELECT blackbox_isolate('legal_holds');

-- A recording whose deletion has begun: written (after the hold check)
-- before its object is deleted, removed with its metadata row once the
-- object is gone, so a crash between the two never leaves an object nobody
-- knows about. The audit event is the permanent record.
CREATE TABLE recording_deletions (
    recording_id TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    call_id      TEXT NOT NULL,
    object_key   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    retention_days INTEGER NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL
);
CREATE INDEX recording_deletions_tenant ON recording_deletions (tenant_id, recording_id);
SELECT blackbox_isolate('recording_deletions');

-- The retention sweep walks a tenant's recordings by age.
CREATE INDEX recordings_tenant_started ON recordings (tenant_id, started_at);
-- Live calls: those not ended yet.
CREATE INDEX calls_tenant_live ON calls (tenant_id, id) WHERE end_at = 0;
