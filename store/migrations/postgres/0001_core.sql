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

-- blackbox_isolate puts a tenant table under the one isolation policy, so
-- every table (in this and later migrations) gets exactly the same rule:
-- row-level security enabled and forced, visible and writable only in its
-- tenant's scope or the system scope; blackbox_app may read and write it,
-- or with append_only only read and add to it.
CREATE FUNCTION blackbox_isolate(tbl regclass, tenant_col name DEFAULT 'tenant_id', append_only boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY tenant_isolation ON %s USING '
        '(%I = current_setting(''app.tenant_id'', true) OR current_setting(''app.scope'', true) = ''system'')', tbl, tenant_col);
    IF append_only THEN
        EXECUTE format('GRANT SELECT, INSERT ON %s TO blackbox_app', tbl);
        EXECUTE format('CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %s '
            'FOR EACH STATEMENT EXECUTE FUNCTION blackbox_append_only()', tbl);
    ELSE
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO blackbox_app', tbl);
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION blackbox_isolate(regclass, name, boolean) FROM PUBLIC;

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    default_country TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
SELECT blackbox_isolate('tenants', 'id');

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
SELECT blackbox_isolate('users');

-- A DID belongs to one tenant and rings one user; the user may present it.
CREATE TABLE numbers (
    number      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX numbers_tenant_user ON numbers (tenant_id, user_id);
SELECT blackbox_isolate('numbers');

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
SELECT blackbox_isolate('trunks');

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
SELECT blackbox_isolate('bindings');

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
SELECT blackbox_isolate('calls');

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
SELECT blackbox_isolate('audit_events', append_only => true);
