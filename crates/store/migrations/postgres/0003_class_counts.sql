-- Completed runs per tenant, UTC day and problem class. A completed run's
-- class never changes, so the completion transaction adds it here; the
-- dashboards read these few rows instead of counting the ledger. System
-- runs (no tenant) count under the nil UUID. Concurrent completion batches
-- write different shards, so they do not queue on one counter row.
CREATE TABLE run_class_counts (
    workspace_id  uuid NOT NULL,
    tenant_id     uuid NOT NULL,
    day           integer NOT NULL,
    class         text NOT NULL CHECK (class IN ('needs_follow_up', 'reconciled', 'ok', 'cancelled')),
    shard         smallint NOT NULL,
    n             bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (tenant_id, day, class, shard)
);
CREATE INDEX ix_class_counts_workspace ON run_class_counts (workspace_id, day);

INSERT INTO run_class_counts (workspace_id, tenant_id, day, class, shard, n)
SELECT COALESCE(workspace_id, '00000000-0000-0000-0000-000000000000'),
       COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'),
       floor(extract(epoch FROM completed_at) / 86400)::integer,
       CASE WHEN outcome = 'cancelled' THEN 'cancelled'
            WHEN reconciled_at IS NOT NULL THEN 'reconciled'
            WHEN outcome = 'succeeded' THEN 'ok'
            ELSE 'needs_follow_up' END,
       0,
       COUNT(*)
FROM operation_runs WHERE status = 'completed'
GROUP BY 1, 2, 3, 4;
