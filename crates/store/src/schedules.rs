//! Durable cron schedules: a due schedule fires exactly once per fire time,
//! however many nodes tick (the fire moves `next_fire_at` only from the
//! value the node read).

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_engine::port::Schedules;

use crate::db::q;
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::rows::{self, RowExt as _, SCHEDULE_COLUMNS};
use crate::runs::{insert_audit, start_in};
use crate::{SqlStore, new_uuid, postgres};
use tenantatlas_domain::ids::{TenantId, WorkspaceId};

#[async_trait]
impl Schedules for SqlStore {
    async fn put_schedule(&self, n: &NewSchedule, actor: Actor, now: Timestamp) -> Result<Schedule> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let row = conn
            .one(
                &q(format!(
                    "INSERT INTO schedules (id, name, cron, workspace_id, tenant_id, type, params, enabled, next_fire_at, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9, $9) \
                     ON CONFLICT (lower(name)) DO UPDATE SET cron = excluded.cron, workspace_id = excluded.workspace_id, \
                     tenant_id = excluded.tenant_id, type = excluded.type, params = excluded.params, enabled = TRUE, \
                     next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at \
                     RETURNING {SCHEDULE_COLUMNS}"
                ))
                .bind(new_uuid())
                .bind(&n.name)
                .bind(&n.cron)
                .bind(n.target.map(|(w, _)| w))
                .bind(n.target.map(|(_, t)| t))
                .bind(n.op_type.as_str())
                .bind(n.params.to_json())
                .bind(n.next_fire_at)
                .bind(now),
            )
            .await?;
        let schedule = rows::schedule_from_row(&row)?;
        insert_audit(
            &mut conn,
            &AuditEntry {
                at: now,
                actor,
                workspace_id: schedule.workspace_id,
                tenant_id: schedule.tenant_id,
                action: "schedule.put".into(),
                target_type: Some("schedule".into()),
                target_id: Some(schedule.id.to_string()),
                detail: serde_json::json!({ "cron": schedule.cron, "type": schedule.op_type.as_str() }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(schedule)
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        let found = self
            .all(&q(format!(
                "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY lower(name)"
            )))
            .await?;
        found.iter().map(rows::schedule_from_row).collect()
    }

    async fn delete_schedule(&self, id: uuid::Uuid, actor: Actor, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let gone = conn
            .opt(&q("DELETE FROM schedules WHERE id = $1 RETURNING name, workspace_id, tenant_id, type").bind(id))
            .await?;
        let Some(row) = gone else {
            return Ok(false);
        };
        insert_audit(
            &mut conn,
            &AuditEntry {
                at: now,
                actor,
                workspace_id: row.opt_uuid("workspace_id")?.map(WorkspaceId::from_uuid),
                tenant_id: row.opt_uuid("tenant_id")?.map(TenantId::from_uuid),
                action: "schedule.remove".into(),
                target_type: Some("schedule".into()),
                target_id: Some(id.to_string()),
                detail: serde_json::json!({ "name": row.text("name")?, "type": row.text("type")? }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        let found = self
            .all(
                &q(format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE enabled = TRUE AND next_fire_at <= $1 \
                     ORDER BY next_fire_at LIMIT $2"
                ))
                .bind(now)
                .bind(limit),
            )
            .await?;
        found.iter().map(rows::schedule_from_row).collect()
    }

    async fn fire_schedule(&self, f: &ScheduleFire) -> Result<Option<StartRecord>> {
        postgres::retrying(8, true, || async {
            let mut tx = self.begin().await?;
            let mut conn = tx.conn();
            let moved = conn
                .execute(
                    &q(
                        "UPDATE schedules SET next_fire_at = $1, last_fired_at = $2, updated_at = $2 \
                        WHERE id = $3 AND next_fire_at = $4 AND enabled = TRUE",
                    )
                    .bind(f.next)
                    .bind(f.now)
                    .bind(f.schedule_id)
                    .bind(f.expected),
                )
                .await?;
            if moved == 0 {
                tx.commit().await?;
                return Ok(None);
            }
            let record = start_in(&mut conn, std::slice::from_ref(&f.run), f.now)
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("a start returned nothing".into()))?;
            conn.execute(
                &q("UPDATE schedules SET last_run_id = $1 WHERE id = $2")
                    .bind(record.run.id)
                    .bind(f.schedule_id),
            )
            .await?;
            tx.signal(Signal::Wake);
            tx.signal(Signal::RunsChanged(vec![record.run.tenant_id]));
            tx.commit().await?;
            Ok(Some(record))
        })
        .await
    }
}
