//! A running run's progress (laws 4 and 11): units, fan-out, phases,
//! counts, heartbeats and cancel requests. Every write names the attempt
//! it belongs to and changes nothing once that attempt was fenced (the late
//! write lands on the timeline instead). Nothing here writes `status` or
//! `outcome` (law 1).

use std::collections::HashSet;

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::RunStatus;
use tenantatlas_domain::problem::Thresholds;
use tenantatlas_domain::run::{Run, UnitTally};
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::port::Progress;

use crate::db::{Conn, q};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::rows::{self, RowExt as _};
use crate::runs::{fetch_run, insert_audit, insert_event};
use crate::{SqlStore, new_uuid, postgres, sqlite};

/// Locks the run (PostgreSQL) and checks it is running under `attempt`;
/// otherwise records the late write on the timeline.
pub(crate) async fn fenced(conn: &mut Conn<'_>, fence: Fence, what: &str, now: Timestamp) -> Result<Option<Run>> {
    let (run, attempt) = (fence.run(), fence.attempt());
    let current = fetch_run(conn, run, true).await?;
    match &current {
        Some(r) if r.state.status() == RunStatus::Running && r.attempt == attempt => Ok(current),
        Some(r) => {
            let detail =
                serde_json::json!({ "write": what, "status": r.state.status().as_str(), "current_attempt": r.attempt });
            insert_event(
                conn,
                run,
                RunEventKind::LateResultIgnored,
                None,
                Some(attempt),
                detail,
                now,
            )
            .await?;
            Ok(None)
        }
        None => Err(StoreError::NotFound(format!("run {run} does not exist"))),
    }
}

/// What a run plans, once: its units, or child runs (law 11).
enum Work<'a> {
    Units(Vec<&'a String>),
    Children(&'a [NewRun]),
}

/// Inserts a parent's children as queued runs; answers the units that
/// stand for them.
async fn insert_children(
    conn: &mut Conn<'_>,
    parent: RunId,
    children: &[NewRun],
    now: Timestamp,
) -> Result<Vec<(String, Option<RunId>)>> {
    let prepared: Vec<(RunId, Option<String>)> = children
        .iter()
        .map(|c| {
            (
                RunId::from_uuid(new_uuid()),
                rows::identity_key_of(&c.identity, Some(parent)),
            )
        })
        .collect();
    let rows_in: Vec<(RunId, &NewRun, Option<&str>)> = prepared
        .iter()
        .zip(children)
        .map(|((id, key), c)| (*id, c, key.as_deref()))
        .collect();
    // SQLite skips a child whose identity is taken; PostgreSQL's insert
    // fails on it.
    let all_inserted = match conn {
        Conn::Sqlite(c) => sqlite::insert_runs(c, &rows_in, Some(parent), now).await?.len() == children.len(),
        Conn::Pg(c) => match postgres::insert_runs(c, &rows_in, Some(parent), now).await {
            Err(e) if postgres::is_identity_conflict(&e) => false,
            other => other.map(|()| true)?,
        },
    };
    if !all_inserted {
        return Err(StoreError::Conflict(format!(
            "two children of run {parent} share an identity"
        )));
    }
    Ok(prepared.iter().map(|(id, _)| (id.to_string(), Some(*id))).collect())
}

impl SqlStore {
    /// Sets a running run's total once and writes its unit ledger (and,
    /// on a fan-out, its children), in one transaction fenced by attempt.
    async fn plan(&self, fence: Fence, work: Work<'_>, now: Timestamp) -> Result<PlanApplied> {
        let (run, attempt) = (fence.run(), fence.attempt());
        let (what, kind) = match work {
            Work::Units(_) => ("plan_units", RunEventKind::UnitsPlanned),
            Work::Children(_) => ("fan_out", RunEventKind::ChildrenPlanned),
        };
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let Some(current) = fenced(&mut conn, fence, what, now).await? else {
            tx.commit().await?;
            return Ok(PlanApplied::Fenced);
        };
        if let Some(total) = current.units.total {
            tx.commit().await?;
            return Ok(PlanApplied::AlreadyPlanned { total });
        }
        let units = match work {
            Work::Units(keys) => keys.into_iter().map(|k| (k.clone(), None)).collect(),
            Work::Children(children) => insert_children(&mut conn, run, children, now).await?,
        };
        let total = units.len() as u64;
        conn.execute(
            &q("UPDATE operation_runs SET units_total = $1, updated_at = $2 WHERE id = $3 AND units_total IS NULL")
                .bind(total)
                .bind(now)
                .bind(run),
        )
        .await?;
        // Batch writes differ by dialect (`UNNEST` / multi-row `VALUES`).
        match &mut conn {
            Conn::Sqlite(c) => sqlite::insert_units(c, run, &units, now).await?,
            Conn::Pg(c) => postgres::insert_units(c, run, &units, now).await?,
        }
        let detail = serde_json::json!({ "total": total });
        insert_event(&mut conn, run, kind, None, Some(attempt), detail, now).await?;
        if kind == RunEventKind::ChildrenPlanned {
            tx.signal(Signal::Wake);
        }
        tx.signal(Signal::RunsChanged(vec![current.tenant_id]));
        tx.commit().await?;
        Ok(PlanApplied::Planned { total })
    }
}

#[async_trait]
impl Progress for SqlStore {
    async fn plan_units(&self, fence: Fence, keys: &[String], now: Timestamp) -> Result<PlanApplied> {
        let mut keys: Vec<&String> = keys.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        self.plan(fence, Work::Units(keys), now).await
    }

    async fn complete_units(
        &self,
        fence: Fence,
        results: &[UnitResult],
        now: Timestamp,
        thresholds: &Thresholds,
    ) -> Result<UnitsApplied> {
        let run = fence.run();
        // The first result for a key wins; later duplicates in the batch are
        // no-ops exactly as a later batch would be.
        let mut seen = HashSet::new();
        let results: Vec<&UnitResult> = results.iter().filter(|r| seen.insert(r.unit_key.as_str())).collect();
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let Some(current) = fenced(&mut conn, fence, "complete_units", now).await? else {
            tx.commit().await?;
            return Ok(UnitsApplied::Fenced);
        };
        let moved = match &mut conn {
            Conn::Sqlite(c) => sqlite::mark_units(c, run, &results, now).await?,
            Conn::Pg(c) => postgres::mark_units(c, run, &results, now).await?,
        };
        let mut tally = UnitTally::default();
        for o in moved {
            tally.record(o);
        }
        if tally.processed == 0 {
            tx.commit().await?;
            return Ok(UnitsApplied::Counted {
                counted: 0,
                processed: current.units.processed,
                total: current.units.total,
            });
        }
        let deadline = rows::progress_deadline_of(&current, current.units.processed + tally.processed, now, thresholds);
        let row = conn
            .one(
                &q("UPDATE operation_runs SET units_processed = units_processed + $1, units_succeeded = units_succeeded + $2, \
                    units_partial = units_partial + $3, units_failed = units_failed + $4, units_skipped = units_skipped + $5, \
                    last_progress_at = $6, progress_stale_at = $7, updated_at = $6 \
                    WHERE id = $8 RETURNING units_processed, units_total")
                .bind(tally.processed)
                .bind(tally.succeeded)
                .bind(tally.partial)
                .bind(tally.failed)
                .bind(tally.skipped)
                .bind(now)
                .bind(deadline)
                .bind(run),
            )
            .await?;
        let processed = u64::try_from(row.int("units_processed")?).unwrap_or(0);
        let total = row.opt_int("units_total")?.and_then(|t| u64::try_from(t).ok());
        tx.signal(Signal::RunsChanged(vec![current.tenant_id]));
        tx.commit().await?;
        Ok(UnitsApplied::Counted {
            counted: tally.processed,
            processed,
            total,
        })
    }

    async fn fan_out(&self, parent: Fence, children: &[NewRun], now: Timestamp) -> Result<PlanApplied> {
        self.plan(parent, Work::Children(children), now).await
    }

    async fn set_phase(&self, fence: Fence, phase: u32, phases: u32, label: &str, now: Timestamp) -> Result<bool> {
        let (run, attempt) = (fence.run(), fence.attempt());
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let Some(current) = fenced(&mut conn, fence, "set_phase", now).await? else {
            tx.commit().await?;
            return Ok(false);
        };
        conn.execute(
            &q("UPDATE operation_runs SET phase = $1, phases = $2, phase_label = $3, updated_at = $4 WHERE id = $5")
                .bind(phase)
                .bind(phases)
                .bind(label)
                .bind(now)
                .bind(run),
        )
        .await?;
        let detail = serde_json::json!({ "phase": phase, "phases": phases, "label": label });
        insert_event(
            &mut conn,
            run,
            RunEventKind::PhaseStarted,
            None,
            Some(attempt),
            detail,
            now,
        )
        .await?;
        tx.signal(Signal::RunsChanged(vec![current.tenant_id]));
        tx.commit().await?;
        Ok(true)
    }

    async fn add_counts(&self, w: &CountsWrite, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let Some(current) = fenced(&mut conn, w.fence, "add_counts", now).await? else {
            tx.commit().await?;
            return Ok(false);
        };
        let mut counts = current.counts;
        counts.add(&w.counts);
        conn.execute(
            &q("UPDATE operation_runs SET counts = $1, updated_at = $2 WHERE id = $3")
                .bind(counts.to_json())
                .bind(now)
                .bind(w.fence.run()),
        )
        .await?;
        tx.signal(Signal::RunsChanged(vec![current.tenant_id]));
        tx.commit().await?;
        Ok(true)
    }

    async fn heartbeat(
        &self,
        run: RunId,
        attempt: u32,
        lease: std::time::Duration,
        clock: &dyn tenantatlas_engine::Clock,
    ) -> Result<HeartbeatAck> {
        let mut writer = self.writer().await?;
        let now = clock.now();
        let lease_until = now.plus(lease);
        let row = writer
            .conn()
            .opt(
                &q(
                    "UPDATE operation_runs SET heartbeat_at = $1, lease_expires_at = $2, updated_at = $1 \
                    WHERE id = $3 AND status = 'running' AND attempt = $4 RETURNING cancel_requested_at",
                )
                .bind(now)
                .bind(lease_until)
                .bind(run)
                .bind(attempt),
            )
            .await?;
        Ok(match row {
            Some(r) => HeartbeatAck::Extended {
                cancel_requested: r.opt_ts("cancel_requested_at")?.is_some(),
            },
            None => HeartbeatAck::Fenced,
        })
    }

    async fn request_cancel(
        &self,
        run: RunId,
        actor: Actor,
        audit: Option<&AuditEntry>,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let applied = conn
            .execute(
                &q("UPDATE operation_runs SET cancel_requested_at = COALESCE(cancel_requested_at, $1), updated_at = $1 \
                    WHERE id = $2 AND status = 'running'")
                .bind(now)
                .bind(run),
            )
            .await?
            == 1;
        if applied {
            let detail = serde_json::json!({ "by": actor.kind() });
            insert_event(
                &mut conn,
                run,
                RunEventKind::CancelRequested,
                actor.user_id(),
                None,
                detail,
                now,
            )
            .await?;
            if let Some(a) = audit {
                insert_audit(&mut conn, a).await?;
            }
            tx.signal(Signal::RunsChanged(Vec::new()));
        }
        tx.commit().await?;
        Ok(applied)
    }
}
