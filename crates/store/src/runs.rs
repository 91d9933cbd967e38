//! Starting runs (law 2) and reading them. Nothing here writes `status` or
//! `outcome` (law 1): that is `lifecycle.rs`'s alone.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::{RunId, UserId};
use tenantatlas_domain::problem::{ProblemClass, Thresholds};
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::port::Runs;

use crate::db::{Conn, q};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::rows::{self, RUN_COLUMNS, RowExt as _};
use crate::{SqlStore, postgres, sqlgen, sqlite};

/// A run by id (`lock`: PostgreSQL locks it for the transaction).
pub(crate) async fn fetch_run(conn: &mut Conn<'_>, id: RunId, lock: bool) -> Result<Option<Run>> {
    let lock = if lock { conn.for_update() } else { "" };
    let row = conn
        .opt(&q(format!("SELECT {RUN_COLUMNS} FROM operation_runs WHERE id = $1{lock}")).bind(id))
        .await?;
    row.as_ref().map(rows::run_from_row).transpose()
}

/// Appends a timeline entry.
pub(crate) async fn insert_event(
    conn: &mut Conn<'_>,
    run: RunId,
    kind: RunEventKind,
    actor: Option<UserId>,
    attempt: Option<u32>,
    detail: serde_json::Value,
    at: Timestamp,
) -> Result<()> {
    conn.execute(
        &q("INSERT INTO run_events (run_id, at, kind, actor_id, attempt, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(run)
            .bind(at)
            .bind(kind.as_str())
            .bind(actor)
            .bind(attempt)
            .bind(detail),
    )
    .await?;
    Ok(())
}

/// Appends an audit entry.
pub(crate) async fn insert_audit(conn: &mut Conn<'_>, e: &AuditEntry) -> Result<()> {
    conn.execute(
        &q(
            "INSERT INTO audit_log (at, actor_kind, actor_id, workspace_id, tenant_id, action, target_type, target_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.at)
        .bind(e.actor.kind())
        .bind(e.actor.user_id())
        .bind(e.workspace_id)
        .bind(e.tenant_id)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(&e.detail),
    )
    .await?;
    Ok(())
}

/// Creates or joins each run inside the caller's transaction. Dedupe
/// differs by dialect: SQLite (one writer) inserts with `ON CONFLICT DO
/// NOTHING` and joins what the unique index kept out; PostgreSQL looks for
/// active twins first (`FOR SHARE`, so their completion waits for the new
/// subscribers) and inserts the rest in one `UNNEST` statement, which a
/// concurrent start may make fail — the caller then retries.
pub(crate) async fn start_in(conn: &mut Conn<'_>, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
    match conn {
        Conn::Pg(c) => postgres::start_in(c, batch, now).await,
        Conn::Sqlite(c) => sqlite::start_in(c, batch, now).await,
    }
}

#[async_trait]
impl Runs for SqlStore {
    async fn start_runs(&self, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
        postgres::retrying(8, true, || async {
            let mut tx = self.begin().await?;
            let records = start_in(&mut tx.conn(), batch, now).await?;
            tx.signal(Signal::Wake);
            let tenants: HashSet<_> = batch.iter().map(|n| n.tenant_id).collect();
            tx.signal(Signal::RunsChanged(tenants.into_iter().collect()));
            tx.commit().await?;
            Ok(records)
        })
        .await
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        fetch_run(&mut self.reader().await?.conn(), id, false).await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<RunPage> {
        let found = self.all(&sqlgen::list_runs(query)).await?;
        let mut runs = found.iter().map(rows::run_from_row).collect::<Result<Vec<_>>>()?;
        Ok(rows::page_of(&mut runs, query.limit))
    }

    async fn count_problems(&self, query: &CountQuery) -> Result<Vec<ProblemCount>> {
        let found = self.all(&sqlgen::count_problems(query)).await?;
        found.iter().map(rows::problem_count_from_row).collect()
    }

    async fn run_events(&self, run: RunId) -> Result<Vec<RunEvent>> {
        let found = self
            .all(
                &q("SELECT id, run_id, at, kind, actor_id, attempt, detail FROM run_events WHERE run_id = $1 ORDER BY id")
                    .bind(run),
            )
            .await?;
        found.iter().map(rows::event_from_row).collect()
    }

    async fn run_notified(&self, run: RunId) -> Result<Option<(u32, Timestamp)>> {
        let row = self
            .one(&q("SELECT COUNT(*) AS n, MIN(created_at) AS first FROM notifications WHERE run_id = $1").bind(run))
            .await?;
        let n = u32::try_from(row.int("n")?).unwrap_or(u32::MAX);
        Ok(row.opt_ts("first")?.filter(|_| n > 0).map(|at| (n, at)))
    }

    async fn run_units(&self, run: RunId, pending_only: bool, limit: u32) -> Result<Vec<UnitRecord>> {
        let found = self
            .all(
                &q(
                    "SELECT unit_key, state, reason_code, message, child_run_id, updated_at FROM operation_units \
                    WHERE run_id = $1 AND ($2 = FALSE OR state = 'pending') ORDER BY unit_key LIMIT $3",
                )
                .bind(run)
                .bind(pending_only)
                .bind(limit),
            )
            .await?;
        found.iter().map(rows::unit_from_row).collect()
    }

    async fn subscribers(&self, run: RunId) -> Result<Vec<UserId>> {
        let found = self
            .all(&q("SELECT user_id FROM run_subscribers WHERE run_id = $1 ORDER BY created_at, user_id").bind(run))
            .await?;
        found
            .iter()
            .map(|r| Ok(UserId::from_uuid(r.uuid("user_id")?)))
            .collect()
    }

    async fn append_event(&self, e: &NewEvent) -> Result<()> {
        let mut w = self.writer().await?;
        insert_event(
            &mut w.conn(),
            e.run_id,
            e.kind,
            e.actor_id,
            e.attempt,
            e.detail.clone(),
            e.at,
        )
        .await
    }

    async fn reconcilable(&self, now: Timestamp, thresholds: &Thresholds, limit: u32) -> Result<Vec<Run>> {
        let found = self.all(&sqlgen::reconcilable(now, thresholds, limit)).await?;
        found.iter().map(rows::run_from_row).collect()
    }

    async fn runs_per_day(&self, scope: &RunScope, since: Timestamp) -> Result<Vec<(i64, ProblemClass, u64)>> {
        let found = self.all(&sqlgen::runs_per_day(scope, since)).await?;
        found
            .iter()
            .map(|r| {
                let class = r.text("class")?;
                Ok((
                    r.int("day")?,
                    ProblemClass::parse("class", &class).map_err(|_| StoreError::Corrupt(format!("class {class}")))?,
                    u64::try_from(r.int("n")?).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn recent_durations(&self, op: OperationType, limit: u32) -> Result<Vec<Duration>> {
        let found = self
            .all(
                &q(
                    "SELECT started_at, completed_at FROM operation_runs WHERE type = $1 AND outcome = 'succeeded' \
                    AND started_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2",
                )
                .bind(op.as_str())
                .bind(limit),
            )
            .await?;
        found
            .iter()
            .map(|r| Ok(r.ts("completed_at")?.since(r.ts("started_at")?)))
            .collect()
    }
}
