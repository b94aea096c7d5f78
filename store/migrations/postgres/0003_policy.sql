-- Policy counters: the tables of migrations/sqlite/0003, each isolated by
-- blackbox_isolate (0001). Every limit lives here, not in a process, so two
-- nodes on one database enforce one limit. Times are Unix milliseconds.

-- One row per tenant, bumped first in every check-and-reserve transaction:
-- on Postgres the upsert takes the row lock that serialises one tenant's
-- decisions across nodes (SQLite's single writer already does).
CREATE TABLE policy_locks (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id),
    seq         BIGINT NOT NULL
);
SELECT blackbox_isolate('policy_locks');

-- One row per outbound attempt. Rate windows count admitted rows; anomaly
-- rules count all of them. An admitted call holds a slot (state 'active')
-- until it is settled ('done') or its lease or deadline runs out and a sweep
-- charges its reservation ('lapsed'), so a dead node leaks nothing.
CREATE TABLE policy_attempts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    node        TEXT NOT NULL DEFAULT '',
    at          BIGINT NOT NULL,
    number      TEXT NOT NULL DEFAULT '',
    country     TEXT NOT NULL DEFAULT '',
    prefix      TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL DEFAULT '',
    admitted    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    reserved    BIGINT NOT NULL DEFAULT 0,
    charged     BIGINT NOT NULL DEFAULT 0,
    day         BIGINT NOT NULL DEFAULT 0,
    expires_at  BIGINT NOT NULL DEFAULT 0,
    deadline_at BIGINT NOT NULL DEFAULT 0,
    ended_at    BIGINT NOT NULL DEFAULT 0,
    answered    INTEGER NOT NULL DEFAULT 0,
    talk_ms     BIGINT NOT NULL DEFAULT 0,
    policy_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX policy_attempts_user_at ON policy_attempts (tenant_id, user_id, at);
CREATE INDEX policy_attempts_tenant_at ON policy_attempts (tenant_id, at);
CREATE INDEX policy_attempts_country ON policy_attempts (tenant_id, country, at);
CREATE INDEX policy_attempts_prefix ON policy_attempts (tenant_id, prefix, at);
CREATE INDEX policy_attempts_active ON policy_attempts (tenant_id, user_id) WHERE state = 'active';
CREATE INDEX policy_attempts_node ON policy_attempts (node) WHERE state = 'active';
SELECT blackbox_isolate('policy_attempts');

-- Settled spend per day (start of the day in the tenant's time zone) in the
-- currency's minor units; user_id '' holds the tenant's total.
CREATE TABLE policy_spend (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL,
    day         BIGINT NOT NULL,
    amount      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, day)
);
SELECT blackbox_isolate('policy_spend');

-- Anomaly suspensions of a user (or, user_id '', of the whole tenant's
-- outbound calling). Lifted only by an owner or manager; never deleted.
CREATE TABLE policy_suspensions (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL,
    username    TEXT NOT NULL DEFAULT '',
    cause       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    lifted_at   BIGINT NOT NULL DEFAULT 0,
    lifted_by   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX policy_suspensions_subject ON policy_suspensions (tenant_id, user_id, lifted_at);
SELECT blackbox_isolate('policy_suspensions');
