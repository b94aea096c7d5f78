-- Core call-path tables: the same columns and types as migrations/sqlite, so
-- one set of queries serves both backends (times are Unix milliseconds, ids
-- UUIDv7 text). Run as the role that owns the tables; the gateway connects as
-- blackbox_app, which owns nothing and cannot bypass row-level security.
--
-- Isolation: every tenant table has row-level security ENABLED and FORCED
-- (so it binds the owner too) with one policy: a row is visible and writable
-- only when its tenant is the transaction's app.tenant_id, or in the
-- gateway's system scope (app.scope = 'system', set only by the store for
-- the lookups that authenticate principals and for gateway-wide sweeps).
-- Both settings are set with set_config(..., true), local to a transaction.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'blackbox_app') THEN
        RAISE EXCEPTION 'role blackbox_app does not exist: create it before migrating (CREATE ROLE blackbox_app LOGIN PASSWORD ...; see README, Postgres)';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO blackbox_app;
GRANT SELECT ON schema_migrations TO blackbox_app;

-- Raised by the triggers of append-only tables: even the owner, whose
-- privileges no GRANT limits, cannot rewrite history without first
-- disabling a trigger, which is DDL and leaves its own trace.
CREATE FUNCTION blackbox_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    default_country TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = current_setting('app.tenant_id', true) OR current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO blackbox_app;

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
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO blackbox_app;

-- A DID belongs to one tenant and rings one user; the user may present it.
CREATE TABLE numbers (
    number      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX numbers_tenant_user ON numbers (tenant_id, user_id);
ALTER TABLE numbers ENABLE ROW LEVEL SECURITY;
ALTER TABLE numbers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON numbers
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT, UPDATE, DELETE ON numbers TO blackbox_app;

-- password_sealed is a Fernet token, never the password.
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
ALTER TABLE trunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE trunks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON trunks
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT, UPDATE, DELETE ON trunks TO blackbox_app;

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
ALTER TABLE bindings ENABLE ROW LEVEL SECURITY;
ALTER TABLE bindings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bindings
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT, UPDATE, DELETE ON bindings TO blackbox_app;

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
ALTER TABLE calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE calls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON calls
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT, UPDATE, DELETE ON calls TO blackbox_app;

-- Append-only record of who did what: the gateway may add and read, never
-- change or remove.
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
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT ON audit_events TO blackbox_app;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION blackbox_append_only();
