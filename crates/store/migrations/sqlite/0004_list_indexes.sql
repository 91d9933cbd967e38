-- Indexes that let every single-filter list stop after one page.
--
-- Active runs of one tenant (dashboards, the widget, "likely stale"):
-- without it a tenant's active runs are found by reading its whole history.
CREATE INDEX ix_runs_active_tenant ON operation_runs (tenant_id, created_at, id) WHERE active;

-- The exceptions: completed runs that did not simply succeed (failed,
-- partially succeeded, blocked, cancelled) or were reconciled. They are rare,
-- so a list of them ("needs follow-up", "failed", "reconciled") walking a
-- list index would read most of the ledger when a tenant has none. The
-- list SQL repeats this predicate word for word so that both backends can
-- prove the index applies. Each index also carries every column a list's
-- scope and class test, so that telling one exception from another
-- ("reconciled" among thousands of failures) reads only the index.
CREATE INDEX ix_runs_exceptions_tenant
    ON operation_runs (tenant_id, created_at, id, workspace_id, status, outcome, reconciled_at)
    WHERE (outcome <> 'succeeded' OR reconciled_at IS NOT NULL);
CREATE INDEX ix_runs_exceptions_workspace
    ON operation_runs (workspace_id, created_at, id, tenant_id, status, outcome, reconciled_at)
    WHERE (outcome <> 'succeeded' OR reconciled_at IS NOT NULL);
CREATE INDEX ix_runs_exceptions_created
    ON operation_runs (created_at, id, workspace_id, tenant_id, status, outcome, reconciled_at)
    WHERE (outcome <> 'succeeded' OR reconciled_at IS NOT NULL);

-- Lists by operation type, newest first (a rare type is otherwise found by
-- reading the ledger backwards).
CREATE INDEX ix_runs_type_created ON operation_runs (type, created_at, id);

