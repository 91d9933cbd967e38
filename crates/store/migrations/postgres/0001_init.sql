-- TenantAtlas schema, PostgreSQL flavour (PostgreSQL 13 or later).
-- Append-only: never edit a landed migration.

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX ux_workspaces_name ON workspaces (lower(name));

CREATE TABLE tenants (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id),
    name          text NOT NULL,
    provider      text,
    created_at    timestamptz NOT NULL,
    UNIQUE (id, workspace_id)
);
CREATE UNIQUE INDEX ux_tenants_name ON tenants (workspace_id, lower(name));
CREATE INDEX ix_tenants_name ON tenants (lower(name));

CREATE TABLE users (
    id                   uuid PRIMARY KEY,
    email                text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash        text NOT NULL,
    platform_operator    boolean NOT NULL DEFAULT false,
    disabled_at          timestamptz,
    password_changed_at  timestamptz NOT NULL,
    created_at           timestamptz NOT NULL
);

CREATE TABLE memberships (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id),
    user_id       uuid NOT NULL REFERENCES users (id),
    role          text NOT NULL CHECK (role IN ('owner', 'manager', 'operator', 'readonly')),
    all_tenants   boolean NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX ix_memberships_user ON memberships (user_id);

CREATE TABLE membership_tenants (
    workspace_id  uuid NOT NULL,
    user_id       uuid NOT NULL,
    tenant_id     uuid NOT NULL,
    PRIMARY KEY (workspace_id, user_id, tenant_id),
    FOREIGN KEY (workspace_id, user_id) REFERENCES memberships (workspace_id, user_id) ON DELETE CASCADE,
    -- the workspace is checked through its tenant (tenants reference workspaces)
    FOREIGN KEY (tenant_id, workspace_id) REFERENCES tenants (id, workspace_id)
);

CREATE TABLE operation_runs (
    id                            uuid PRIMARY KEY,
    workspace_id                  uuid,
    tenant_id                     uuid,
    type                          text COLLATE "C" NOT NULL,
    identity_key                  text COLLATE "C",
    params                        jsonb NOT NULL DEFAULT '{}',
    status                        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed')),
    -- status <> 'completed', kept as its own column so that the indexes of
    -- active runs do not mention status: a claim (queued -> running) and a
    -- heartbeat then change no indexed column and PostgreSQL updates the row
    -- in place (a HOT update) instead of adding an entry to every index.
    active                        boolean NOT NULL DEFAULT true,
    outcome                       text CHECK (outcome IN ('succeeded', 'partially_succeeded', 'failed', 'blocked', 'cancelled')),
    -- initiator_id and parent_id are written only by the engine, from the
    -- authorized user and the locked running parent it has just read; they
    -- declare no foreign key because its per-row trigger costs a quarter of
    -- a batch start (measured) for values that are almost always NULL.
    initiator_id                  uuid,
    parent_id                     uuid,
    attempt                       integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    lease_owner                   text,
    -- the worker and time of the current (or last) attempt's claim
    claimed_by                    text,
    claimed_at                    timestamptz,
    lease_expires_at              timestamptz,
    heartbeat_at                  timestamptz,
    available_at                  timestamptz NOT NULL,
    units_total                   bigint CHECK (units_total >= 0),
    units_processed               bigint NOT NULL DEFAULT 0,
    units_succeeded               bigint NOT NULL DEFAULT 0 CHECK (units_succeeded >= 0),
    units_partial                 bigint NOT NULL DEFAULT 0 CHECK (units_partial >= 0),
    units_failed                  bigint NOT NULL DEFAULT 0 CHECK (units_failed >= 0),
    units_skipped                 bigint NOT NULL DEFAULT 0 CHECK (units_skipped >= 0),
    phase                         integer,
    phases                        integer,
    phase_label                   text,
    counts                        jsonb NOT NULL DEFAULT '{}',
    failures                      jsonb NOT NULL DEFAULT '[]',
    reason_code                   text,
    context                       jsonb NOT NULL DEFAULT '{}',
    reconciled_at                 timestamptz,
    reconciled_from_status        text CHECK (reconciled_from_status IN ('queued', 'running')),
    reconciled_last_heartbeat_at  timestamptz,
    cancel_requested_at           timestamptz,
    last_progress_at              timestamptz,
    progress_stale_at             timestamptz,
    created_at                    timestamptz NOT NULL,
    started_at                    timestamptz,
    completed_at                  timestamptz,
    updated_at                    timestamptz NOT NULL,
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
    run_id        uuid NOT NULL REFERENCES operation_runs (id),
    unit_key      text NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'succeeded', 'partially_succeeded', 'failed', 'skipped')),
    attempts      integer NOT NULL DEFAULT 0,
    reason_code   text,
    message       text,
    child_run_id  uuid REFERENCES operation_runs (id),
    updated_at    timestamptz NOT NULL,
    -- law 4: one ledger row per unit, so a unit can be counted only once
    PRIMARY KEY (run_id, unit_key)
);
CREATE INDEX ix_units_pending ON operation_units (run_id) WHERE state = 'pending';

CREATE TABLE run_subscribers (
    run_id      uuid NOT NULL REFERENCES operation_runs (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    via         text NOT NULL CHECK (via IN ('started', 'joined')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (run_id, user_id)
);

CREATE TABLE notifications (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    run_id        uuid NOT NULL REFERENCES operation_runs (id),
    workspace_id  uuid,
    tenant_id     uuid,
    title         text NOT NULL,
    body          text NOT NULL,
    view_url      text NOT NULL,
    read_at       timestamptz,
    created_at    timestamptz NOT NULL,
    -- law 5: exactly one terminal notification per run and recipient
    UNIQUE (run_id, user_id)
);
CREATE INDEX ix_notifications_user ON notifications (user_id, created_at DESC);

CREATE TABLE run_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    uuid NOT NULL REFERENCES operation_runs (id),
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    actor_id  uuid,
    attempt   integer,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ix_run_events_run ON run_events (run_id, id);

CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL,
    actor_kind    text NOT NULL CHECK (actor_kind IN ('user', 'system', 'cli')),
    actor_id      uuid,
    workspace_id  uuid,
    tenant_id     uuid,
    action        text NOT NULL,
    target_type   text,
    target_id     text,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ix_audit_at ON audit_log (at DESC);

-- Durable cron schedules. A due schedule fires by moving next_fire_at from
-- the value it was seen with (an optimistic write), in the same transaction
-- as the run it starts: one run per fire time, whatever the number of nodes.
CREATE TABLE schedules (
    id             uuid PRIMARY KEY,
    name           text NOT NULL,
    cron           text NOT NULL,
    workspace_id   uuid,
    tenant_id      uuid,
    type           text NOT NULL,
    params         jsonb NOT NULL DEFAULT '{}',
    enabled        boolean NOT NULL DEFAULT true,
    next_fire_at   timestamptz NOT NULL,
    last_fired_at  timestamptz,
    last_run_id    uuid,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CHECK ((workspace_id IS NULL) = (tenant_id IS NULL)),
    FOREIGN KEY (tenant_id, workspace_id) REFERENCES tenants (id, workspace_id)
);
CREATE UNIQUE INDEX ux_schedules_name ON schedules (lower(name));
CREATE INDEX ix_schedules_due ON schedules (next_fire_at) WHERE enabled;
