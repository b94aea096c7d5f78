-- Core call-path tables. Times are Unix milliseconds (BIGINT), ids UUIDv7 text:
-- the same representation on SQLite and Postgres, so one set of queries serves both.

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    default_country TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- SIP usernames are unique across the gateway: the digest username alone
-- identifies the tenant. Passwords are kept only as HA1 digests of the realm.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    username    TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    caller_id   TEXT NOT NULL DEFAULT '',
    realm       TEXT NOT NULL,
    ha1_md5     TEXT NOT NULL,
    ha1_sha256  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX users_tenant ON users (tenant_id);

-- A DID belongs to one tenant and rings one user; the user may present it.
CREATE TABLE numbers (
    number      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX numbers_tenant_user ON numbers (tenant_id, user_id);

CREATE TABLE trunks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    name            TEXT NOT NULL,
    address         TEXT NOT NULL,
    transport       TEXT NOT NULL,
    username        TEXT NOT NULL DEFAULT '',
    password_sealed TEXT NOT NULL DEFAULT '',
    inbound_from    TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Registrations (RFC 3261 bindings), with where the REGISTER really came from.
CREATE TABLE bindings (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    contact     TEXT NOT NULL,
    source      TEXT NOT NULL,
    transport   TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        BIGINT NOT NULL,
    user_agent  TEXT NOT NULL DEFAULT '',
    node        TEXT NOT NULL DEFAULT '',
    expires_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (user_id, contact)
);
CREATE INDEX bindings_tenant_user ON bindings (tenant_id, user_id);
CREATE INDEX bindings_expires ON bindings (expires_at);

-- One row per call. Leg a is the dialog that reached Blackbox, leg b the one
-- Blackbox created (outbound: a = rep, b = trunk; inbound: a = trunk, b = rep).
CREATE TABLE calls (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    user_id       TEXT NOT NULL DEFAULT '',
    direction     TEXT NOT NULL,
    caller        TEXT NOT NULL,
    callee        TEXT NOT NULL,
    trunk_id      TEXT NOT NULL DEFAULT '',
    a_call_id     TEXT NOT NULL,
    b_call_id     TEXT NOT NULL DEFAULT '',
    invite_at     BIGINT NOT NULL,
    ringing_at    BIGINT NOT NULL DEFAULT 0,
    answer_at     BIGINT NOT NULL DEFAULT 0,
    end_at        BIGINT NOT NULL DEFAULT 0,
    end_reason    TEXT NOT NULL DEFAULT '',
    a_code        INTEGER NOT NULL DEFAULT 0,
    b_code        INTEGER NOT NULL DEFAULT 0,
    hangup_by     TEXT NOT NULL DEFAULT '',
    node          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX calls_tenant_invite ON calls (tenant_id, invite_at);
CREATE INDEX calls_tenant_user ON calls (tenant_id, user_id, invite_at);

-- Append-only record of who did what.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}',
    at          BIGINT NOT NULL
);
CREATE INDEX audit_tenant_at ON audit_events (tenant_id, at);
