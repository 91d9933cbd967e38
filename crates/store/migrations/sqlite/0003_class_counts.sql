-- Completed runs per tenant, UTC day and problem class (see the PostgreSQL
-- migration of the same name). One writer: one shard.
CREATE TABLE run_class_counts (
    workspace_id  TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    day           INTEGER NOT NULL,
    class         TEXT NOT NULL CHECK (class IN ('needs_follow_up', 'reconciled', 'ok', 'cancelled')),
    shard         INTEGER NOT NULL,
    n             INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (tenant_id, day, class, shard)
);
CREATE INDEX ix_class_counts_workspace ON run_class_counts (workspace_id, day);

INSERT INTO run_class_counts (workspace_id, tenant_id, day, class, shard, n)
SELECT COALESCE(workspace_id, '00000000-0000-0000-0000-000000000000'),
       COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'),
       completed_at / 86400000000,
       CASE WHEN outcome = 'cancelled' THEN 'cancelled'
            WHEN reconciled_at IS NOT NULL THEN 'reconciled'
            WHEN outcome = 'succeeded' THEN 'ok'
            ELSE 'needs_follow_up' END,
       0,
       COUNT(*)
FROM operation_runs WHERE status = 'completed'
GROUP BY 1, 2, 3, 4;
