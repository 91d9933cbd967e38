-- TenantAtlas schema, SQLite flavour.
-- Ids are hyphenated UUID text; times are microseconds since the Unix epoch
-- (INTEGER); JSON is text. Append-only: never edit a landed migration.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_workspaces_name ON workspaces (lower(name));

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    provider      TEXT,
    created_at    INTEGER NOT NULL,
    UNIQUE (id, workspace_id)
);
CREATE UNIQUE INDEX ux_tenants_name ON tenants (workspace_id, lower(name));
CREATE INDEX ix_tenants_name ON tenants (lower(name));

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    email                TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    platform_operator    INTEGER NOT NULL DEFAULT 0 CHECK (platform_operator IN (0, 1)),
    disabled_at          INTEGER,
    password_changed_at  INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    CHECK (email = lower(email))
);

CREATE TABLE memberships (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    role          TEXT NOT NULL CHECK (role IN ('owner', 'manager', 'operator', 'readonly')),
    all_tenants   INTEGER NOT NULL CHECK (all_tenants IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX ix_memberships_user ON memberships (user_id);

CREATE TABLE membership_tenants (
    workspace_id  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    PRIMARY KEY (workspace_id, user_id, tenant_id),
    FOREIGN KEY (workspace_id, user_id) REFERENCES memberships (workspace_id, user_id) ON DELETE CASCADE,
    -- the workspace is checked through its tenant (tenants reference workspaces)
    FOREIGN KEY (tenant_id, workspace_id) REFERENCES tenants (id, workspace_id)
);

CREATE TABLE operation_runs (
    id                            TEXT PRIMARY KEY,
    workspace_id                  TEXT,
    tenant_id                     TEXT,
    type                          TEXT NOT NULL,
    identity_key                  TEXT,
    params                        TEXT NOT NULL DEFAULT '{}',
    status                        TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed')),
    -- status <> 'completed', kept as its own column so that the indexes of
    -- active runs do not mention status (see the PostgreSQL schema).
    active                        INTEGER NOT NULL DEFAULT 1,
    outcome                       TEXT CHECK (outcome IN ('succeeded', 'partially_succeeded', 'failed', 'blocked', 'cancelled')),
    -- initiator_id and parent_id are written only by the engine, from the
    -- authorized user and the locked running parent it has just read; they
    -- declare no foreign key because its per-row trigger costs a quarter of
    -- a batch start (measured) for values that are almost always NULL.
    initiator_id                  TEXT,
    parent_id                     TEXT,
    attempt                       INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    lease_owner                   TEXT,
    -- the worker and time of the current (or last) attempt's claim
    claimed_by                    TEXT,
    claimed_at                    INTEGER,
    lease_expires_at              INTEGER,
    heartbeat_at                  INTEGER,
    available_at                  INTEGER NOT NULL,
    units_total                   INTEGER CHECK (units_total >= 0),
    units_processed               INTEGER NOT NULL DEFAULT 0,
    units_succeeded               INTEGER NOT NULL DEFAULT 0 CHECK (units_succeeded >= 0),
    units_partial                 INTEGER NOT NULL DEFAULT 0 CHECK (units_partial >= 0),
    units_failed                  INTEGER NOT NULL DEFAULT 0 CHECK (units_failed >= 0),
    units_skipped                 INTEGER NOT NULL DEFAULT 0 CHECK (units_skipped >= 0),
    phase                         INTEGER,
    phases                        INTEGER,
    phase_label                   TEXT,
    counts                        TEXT NOT NULL DEFAULT '{}',
    failures                      TEXT NOT NULL DEFAULT '[]',
    reason_code                   TEXT,
    context                       TEXT NOT NULL DEFAULT '{}',
    reconciled_at                 INTEGER,
    reconciled_from_status        TEXT CHECK (reconciled_from_status IN ('queued', 'running')),
    reconciled_last_heartbeat_at  INTEGER,
    cancel_requested_at           INTEGER,
    last_progress_at              INTEGER,
    progress_stale_at             INTEGER,
    created_at                    INTEGER NOT NULL,
    started_at                    INTEGER,
    completed_at                  INTEGER,
    updated_at                    INTEGER NOT NULL,
    -- law 1: an outcome exists exactly when completed
    CHECK ((status = 'completed') = (outcome IS NOT NULL)),
    CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
    CHECK (active = (status <> 'completed')),
    -- law 4: processed never exceeds total, and is the sum of unit outcomes
    CHECK (units_total IS NULL OR units_processed <= units_total),
    CHECK (units_processed = units_succeeded + units_partial + units_failed + units_skipped),
    CHECK ((workspace_id IS NULL) = (tenant_id IS NULL)),
    FOREIGN KEY (tenant_id, workspace_id) REFERENCES tenants (id, workspace_id)
);
-- law 2: at most one queued-or-running (active) run per identity (runs without an
-- identity key never dedupe and stay out of the index)
CREATE UNIQUE INDEX ux_runs_active_identity
    ON operation_runs (workspace_id, tenant_id, type, identity_key)
    WHERE active AND tenant_id IS NOT NULL AND identity_key IS NOT NULL;
CREATE UNIQUE INDEX ux_runs_active_system_identity
    ON operation_runs (type, identity_key)
    WHERE active AND tenant_id IS NULL AND identity_key IS NOT NULL;
CREATE INDEX ix_runs_created ON operation_runs (created_at, id);
CREATE INDEX ix_runs_workspace_created ON operation_runs (workspace_id, created_at, id);
CREATE INDEX ix_runs_tenant_created ON operation_runs (tenant_id, created_at, id);
-- the queue and the runs the reconciler watches: queued and running runs,
-- in the order they became due (running runs stay at the head of it, a
-- concurrency's worth)
CREATE INDEX ix_runs_active ON operation_runs (available_at, id) WHERE active;
CREATE INDEX ix_runs_parent ON operation_runs (parent_id) WHERE parent_id IS NOT NULL;
-- the durations the adaptive stale threshold learns from
CREATE INDEX ix_runs_succeeded ON operation_runs (type, completed_at) WHERE outcome = 'succeeded';

CREATE TABLE operation_units (
    run_id        TEXT NOT NULL REFERENCES operation_runs (id),
    unit_key      TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'partially_succeeded', 'failed', 'skipped')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    reason_code   TEXT,
    message       TEXT,
    child_run_id  TEXT REFERENCES operation_runs (id),
    updated_at    INTEGER NOT NULL,
    -- law 4: one ledger row per unit, so a unit can be counted only once
    PRIMARY KEY (run_id, unit_key)
);
CREATE INDEX ix_units_pending ON operation_units (run_id) WHERE state = 'pending';

CREATE TABLE run_subscribers (
    run_id      TEXT NOT NULL REFERENCES operation_runs (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    via         TEXT NOT NULL CHECK (via IN ('started', 'joined')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, user_id)
);

CREATE TABLE notifications (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    run_id        TEXT NOT NULL REFERENCES operation_runs (id),
    workspace_id  TEXT,
    tenant_id     TEXT,
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    view_url      TEXT NOT NULL,
    read_at       INTEGER,
    created_at    INTEGER NOT NULL,
    -- law 5: exactly one terminal notification per run and recipient
    UNIQUE (run_id, user_id)
);
CREATE INDEX ix_notifications_user ON notifications (user_id, created_at DESC);

CREATE TABLE run_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    TEXT NOT NULL REFERENCES operation_runs (id),
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor_id  TEXT,
    attempt   INTEGER,
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ix_run_events_run ON run_events (run_id, id);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'system', 'cli')),
    actor_id      TEXT,
    workspace_id  TEXT,
    tenant_id     TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT,
    target_id     TEXT,
    detail        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ix_audit_at ON audit_log (at DESC);

-- Durable cron schedules. A due schedule fires by moving next_fire_at from
-- the value it was seen with (an optimistic write), in the same transaction
-- as the run it starts: one run per fire time, whatever the number of nodes.
CREATE TABLE schedules (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    cron           TEXT NOT NULL,
    workspace_id   TEXT,
    tenant_id      TEXT,
    type           TEXT NOT NULL,
    params         TEXT NOT NULL DEFAULT '{}',
    enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    next_fire_at   INTEGER NOT NULL,
    last_fired_at  INTEGER,
    last_run_id    TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK ((workspace_id IS NULL) = (tenant_id IS NULL)),
    FOREIGN KEY (tenant_id, workspace_id) REFERENCES tenants (id, workspace_id)
);
CREATE UNIQUE INDEX ux_schedules_name ON schedules (lower(name));
CREATE INDEX ix_schedules_due ON schedules (next_fire_at) WHERE enabled = 1;
