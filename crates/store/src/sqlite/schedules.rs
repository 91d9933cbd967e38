//! Schedules on SQLite.

use sqlx::sqlite::SqlitePool;
use tenantatlas_domain::Timestamp;

use super::{SqliteStore, insert_audit};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::new_uuid;
use crate::rows::{self, SCHEDULE_COLUMNS};

pub(super) async fn put_schedule(s: &SqliteStore, n: &NewSchedule, actor: Actor, now: Timestamp) -> Result<Schedule> {
    let mut tx = s.write().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO schedules (id, name, cron, workspace_id, tenant_id, type, params, enabled, next_fire_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $9) \
         ON CONFLICT (lower(name)) DO UPDATE SET cron = excluded.cron, workspace_id = excluded.workspace_id, \
         tenant_id = excluded.tenant_id, type = excluded.type, params = excluded.params, enabled = 1, \
         next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at \
         RETURNING {SCHEDULE_COLUMNS}"
    ))
    .bind(new_uuid().to_string())
    .bind(&n.name)
    .bind(&n.cron)
    .bind(n.target.map(|(w, _)| w.to_string()))
    .bind(n.target.map(|(_, t)| t.to_string()))
    .bind(n.op_type.as_str())
    .bind(n.params.to_json().to_string())
    .bind(n.next_fire_at.unix_micros())
    .bind(now.unix_micros())
    .fetch_one(&mut *tx)
    .await?;
    let schedule = rows::schedule_from_row(&row)?;
    insert_audit(
        &mut tx,
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

pub(super) async fn list_schedules(db: &SqlitePool) -> Result<Vec<Schedule>> {
    let found = sqlx::query(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY lower(name)"
    ))
    .fetch_all(db)
    .await?;
    found.iter().map(rows::schedule_from_row).collect()
}

pub(super) async fn due_schedules(db: &SqlitePool, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
    let found = sqlx::query(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE enabled = 1 AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2"
    ))
    .bind(now.unix_micros())
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    found.iter().map(rows::schedule_from_row).collect()
}

pub(super) async fn fire_schedule(s: &SqliteStore, f: &ScheduleFire) -> Result<Option<StartRecord>> {
    let mut tx = s.write().await?;
    let moved = sqlx::query(
        "UPDATE schedules SET next_fire_at = $1, last_fired_at = $2, updated_at = $2 \
         WHERE id = $3 AND next_fire_at = $4 AND enabled = 1",
    )
    .bind(f.next.unix_micros())
    .bind(f.now.unix_micros())
    .bind(f.schedule_id.to_string())
    .bind(f.expected.unix_micros())
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        tx.commit().await?;
        return Ok(None);
    }
    let record = super::runs::start_in(&mut tx, std::slice::from_ref(&f.run), f.now)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("a start returned nothing".into()))?;
    sqlx::query("UPDATE schedules SET last_run_id = $1 WHERE id = $2")
        .bind(record.run.id.to_string())
        .bind(f.schedule_id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    s.emit(Signal::Wake);
    s.emit(Signal::RunsChanged(vec![record.run.tenant_id]));
    Ok(Some(record))
}
