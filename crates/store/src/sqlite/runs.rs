//! Starting runs and recording their progress on SQLite. Nothing here
//! writes `status` or `outcome` (law 1): that is `lifecycle.rs`'s alone.

use std::collections::HashSet;

use sqlx::QueryBuilder;
use sqlx::sqlite::{Sqlite, SqliteConnection};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_domain::ids::{RunId, UserId};
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;

use super::{SqliteStore, fetch_run, insert_audit, insert_event};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::new_uuid;
use crate::rows::{self, RUN_COLUMNS};

/// Rows per multi-row statement: sqlx runs each SQLite statement on the
/// connection's worker thread, so one statement per row would cost a thread
/// hop per row.
const CHUNK: usize = 200;

/// Inserts queued runs, skipping any whose identity an active run holds;
/// returns the ids inserted.
async fn insert_runs(
    conn: &mut SqliteConnection,
    rows_in: &[(RunId, &NewRun, Option<&str>)],
    parent: Option<RunId>,
    now: Timestamp,
) -> Result<HashSet<String>> {
    let mut inserted = HashSet::with_capacity(rows_in.len());
    for chunk in rows_in.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            // status takes its default, 'queued': every run is born queued.
            "INSERT INTO operation_runs (id, workspace_id, tenant_id, type, identity_key, params, initiator_id, \
             parent_id, available_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, (id, new, key)| {
            b.push_bind(id.to_string())
                .push_bind(new.workspace_id.map(|w| w.to_string()))
                .push_bind(new.tenant_id.map(|t| t.to_string()))
                .push_bind(new.op_type.as_str())
                .push_bind(key.map(str::to_owned))
                .push_bind(new.params.to_json().to_string())
                .push_bind(new.initiator.map(|u| u.to_string()))
                .push_bind(parent.map(|p| p.to_string()))
                .push_bind(new.available_at.unix_micros())
                .push_bind(now.unix_micros())
                .push_bind(now.unix_micros());
        });
        qb.push(" ON CONFLICT DO NOTHING RETURNING id");
        let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        inserted.extend(ids);
    }
    Ok(inserted)
}

async fn subscribe_all(conn: &mut SqliteConnection, subs: &[(RunId, UserId, &str)], now: Timestamp) -> Result<()> {
    for chunk in subs.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO run_subscribers (run_id, user_id, via, created_at) ");
        qb.push_values(chunk, |mut b, (run, user, via)| {
            b.push_bind(run.to_string())
                .push_bind(user.to_string())
                .push_bind(*via)
                .push_bind(now.unix_micros());
        });
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn active_twin(conn: &mut SqliteConnection, new: &NewRun, identity_key: &str) -> Result<Option<Run>> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM operation_runs WHERE active \
         AND workspace_id IS $1 AND tenant_id IS $2 AND type = $3 AND identity_key = $4"
    ))
    .bind(new.workspace_id.map(|w| w.to_string()))
    .bind(new.tenant_id.map(|t| t.to_string()))
    .bind(new.op_type.as_str())
    .bind(identity_key)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(rows::run_from_row).transpose()
}

pub(super) async fn start_runs(s: &SqliteStore, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
    let mut tx = s.write().await?;
    let out = start_in(&mut tx, batch, now).await?;
    tx.commit().await?;
    s.emit(Signal::Wake);
    s.emit(Signal::RunsChanged(
        batch
            .iter()
            .map(|n| n.tenant_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect(),
    ));
    Ok(out)
}

/// Creates or joins each run inside the caller's transaction.
pub(super) async fn start_in(
    conn: &mut SqliteConnection,
    batch: &[NewRun],
    now: Timestamp,
) -> Result<Vec<StartRecord>> {
    let prepared: Vec<(RunId, Option<String>)> = batch
        .iter()
        .map(|new| (RunId::from_uuid(new_uuid()), rows::identity_key_of(&new.identity, None)))
        .collect();
    let rows_in: Vec<(RunId, &NewRun, Option<&str>)> = prepared
        .iter()
        .zip(batch)
        .map(|((id, key), new)| (*id, new, key.as_deref()))
        .collect();
    // "created" is not written on the timeline: the run row is its record.
    let inserted = insert_runs(conn, &rows_in, None, now).await?;
    let mut out = Vec::with_capacity(batch.len());
    let mut subs = Vec::new();
    for ((id, key), new) in prepared.into_iter().zip(batch) {
        if inserted.contains(&id.to_string()) {
            if let Some(user) = new.initiator {
                subs.push((id, user, "started"));
            }
            out.push(StartRecord {
                run: rows::fresh_run(id, new, key, None, now),
                joined: false,
            });
            continue;
        }
        // Only a run with an identity key can have an active twin (which
        // may be a run inserted earlier in this very batch).
        let twin = match &key {
            Some(k) => active_twin(conn, new, k).await?,
            None => None,
        }
        .ok_or_else(|| StoreError::Conflict("the run could not be created (an id collided); try again".into()))?;
        if let Some(user) = new.initiator {
            subs.push((twin.id, user, "joined"));
        }
        insert_event(
            conn,
            twin.id,
            RunEventKind::Joined,
            new.initiator,
            None,
            serde_json::json!({}),
            now,
        )
        .await?;
        out.push(StartRecord {
            run: twin,
            joined: true,
        });
    }
    subscribe_all(conn, &subs, now).await?;
    Ok(out)
}

/// Whether the run is running under `attempt`; otherwise records the late
/// write on the timeline.
async fn fenced(
    conn: &mut SqliteConnection,
    run: RunId,
    attempt: u32,
    what: &str,
    now: Timestamp,
) -> Result<Option<Run>> {
    let current = fetch_run(conn, run).await?;
    match &current {
        Some(r) if r.state.status() == tenantatlas_domain::lifecycle::RunStatus::Running && r.attempt == attempt => {
            Ok(current)
        }
        Some(r) => {
            insert_event(
                conn,
                run,
                RunEventKind::LateResultIgnored,
                None,
                Some(attempt),
                serde_json::json!({ "write": what, "status": r.state.status().as_str(), "current_attempt": r.attempt }),
                now,
            )
            .await?;
            Ok(None)
        }
        None => Err(StoreError::NotFound(format!("run {run} does not exist"))),
    }
}

pub(super) async fn plan_units(
    s: &SqliteStore,
    run: RunId,
    attempt: u32,
    keys: &[String],
    now: Timestamp,
) -> Result<PlanApplied> {
    let mut keys: Vec<&String> = keys.iter().collect();
    keys.sort();
    keys.dedup();
    let mut tx = s.write().await?;
    let Some(current) = fenced(&mut tx, run, attempt, "plan_units", now).await? else {
        tx.commit().await?;
        return Ok(PlanApplied::Fenced);
    };
    if let Some(total) = current.units.total {
        tx.commit().await?;
        return Ok(PlanApplied::AlreadyPlanned { total });
    }
    let total = keys.len() as u64;
    sqlx::query("UPDATE operation_runs SET units_total = $1, updated_at = $2 WHERE id = $3 AND units_total IS NULL")
        .bind(i64::try_from(total).unwrap_or(i64::MAX))
        .bind(now.unix_micros())
        .bind(run.to_string())
        .execute(&mut *tx)
        .await?;
    for chunk in keys.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO operation_units (run_id, unit_key, state, updated_at) ");
        qb.push_values(chunk, |mut b, key| {
            b.push_bind(run.to_string())
                .push_bind(key.as_str())
                .push("'pending'")
                .push_bind(now.unix_micros());
        });
        qb.build().execute(&mut *tx).await?;
    }
    insert_event(
        &mut tx,
        run,
        RunEventKind::UnitsPlanned,
        None,
        Some(attempt),
        serde_json::json!({ "total": total }),
        now,
    )
    .await?;
    tx.commit().await?;
    s.emit(Signal::RunsChanged(vec![current.tenant_id]));
    Ok(PlanApplied::Planned { total })
}

pub(super) async fn complete_units(
    s: &SqliteStore,
    run: RunId,
    attempt: u32,
    results: &[UnitResult],
    now: Timestamp,
) -> Result<UnitsApplied> {
    let mut tx = s.write().await?;
    let Some(current) = fenced(&mut tx, run, attempt, "complete_units", now).await? else {
        tx.commit().await?;
        return Ok(UnitsApplied::Fenced);
    };
    // The first result for a key wins; later duplicates are no-ops exactly as
    // a later batch would be. Results without a failure are written in
    // groups, one statement per outcome and chunk.
    let mut seen = HashSet::new();
    let mut plain: Vec<(UnitOutcome, Vec<&str>)> = Vec::new();
    let mut with_failure = Vec::new();
    for r in results.iter().filter(|r| seen.insert(r.unit_key.as_str())) {
        match &r.failure {
            Some(_) => with_failure.push(r),
            None => match plain.iter_mut().find(|(o, _)| *o == r.outcome) {
                Some((_, keys)) => keys.push(&r.unit_key),
                None => plain.push((r.outcome, vec![&r.unit_key])),
            },
        }
    }
    let mut tally = tenantatlas_domain::run::UnitTally::default();
    for (outcome, keys) in &plain {
        for chunk in keys.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new("UPDATE operation_units SET state = ");
            qb.push_bind(outcome.as_str())
                .push(", attempts = attempts + 1, updated_at = ")
                .push_bind(now.unix_micros())
                .push(" WHERE run_id = ")
                .push_bind(run.to_string())
                .push(" AND state = 'pending' AND unit_key IN (");
            let mut list = qb.separated(", ");
            for k in chunk {
                list.push_bind(*k);
            }
            qb.push(") RETURNING unit_key");
            let done: Vec<String> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
            for _ in done {
                tally.record(*outcome);
            }
        }
    }
    for r in with_failure {
        let done = sqlx::query(
            "UPDATE operation_units SET state = $1, reason_code = $2, message = $3, attempts = attempts + 1, updated_at = $4 \
             WHERE run_id = $5 AND unit_key = $6 AND state = 'pending'",
        )
        .bind(r.outcome.as_str())
        .bind(r.failure.as_ref().map(|f| f.reason_code.as_str()))
        .bind(r.failure.as_ref().map(|f| f.message.as_str()))
        .bind(now.unix_micros())
        .bind(run.to_string())
        .bind(&r.unit_key)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            tally.record(r.outcome);
        }
    }
    if tally.processed == 0 {
        tx.commit().await?;
        return Ok(UnitsApplied::Counted {
            counted: 0,
            processed: current.units.processed,
            total: current.units.total,
        });
    }
    let processed = current.units.processed + tally.processed;
    let deadline = rows::progress_deadline_of(&current, processed, now);
    let row: (i64, Option<i64>) = sqlx::query_as(
        "UPDATE operation_runs SET units_processed = units_processed + $1, units_succeeded = units_succeeded + $2, \
         units_partial = units_partial + $3, units_failed = units_failed + $4, units_skipped = units_skipped + $5, \
         last_progress_at = $6, progress_stale_at = $7, updated_at = $6 \
         WHERE id = $8 RETURNING units_processed, units_total",
    )
    .bind(count(tally.processed))
    .bind(count(tally.succeeded))
    .bind(count(tally.partial))
    .bind(count(tally.failed))
    .bind(count(tally.skipped))
    .bind(now.unix_micros())
    .bind(deadline.map(Timestamp::unix_micros))
    .bind(run.to_string())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    s.emit(Signal::RunsChanged(vec![current.tenant_id]));
    Ok(UnitsApplied::Counted {
        counted: tally.processed,
        processed: u64::try_from(row.0).unwrap_or(0),
        total: row.1.and_then(|t| u64::try_from(t).ok()),
    })
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) async fn fan_out(
    s: &SqliteStore,
    parent: RunId,
    attempt: u32,
    children: &[NewRun],
    now: Timestamp,
) -> Result<PlanApplied> {
    let mut tx = s.write().await?;
    let Some(current) = fenced(&mut tx, parent, attempt, "fan_out", now).await? else {
        tx.commit().await?;
        return Ok(PlanApplied::Fenced);
    };
    if let Some(total) = current.units.total {
        tx.commit().await?;
        return Ok(PlanApplied::AlreadyPlanned { total });
    }
    let total = children.len() as u64;
    sqlx::query("UPDATE operation_runs SET units_total = $1, updated_at = $2 WHERE id = $3 AND units_total IS NULL")
        .bind(count(total))
        .bind(now.unix_micros())
        .bind(parent.to_string())
        .execute(&mut *tx)
        .await?;
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
    let inserted = insert_runs(&mut tx, &rows_in, Some(parent), now).await?;
    if inserted.len() != children.len() {
        return Err(StoreError::Conflict(format!(
            "two children of run {parent} share an identity"
        )));
    }
    for chunk in prepared.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO operation_units (run_id, unit_key, state, child_run_id, updated_at) ",
        );
        qb.push_values(chunk, |mut b, (id, _)| {
            b.push_bind(parent.to_string())
                .push_bind(id.to_string())
                .push("'pending'")
                .push_bind(id.to_string())
                .push_bind(now.unix_micros());
        });
        qb.build().execute(&mut *tx).await?;
    }
    insert_event(
        &mut tx,
        parent,
        RunEventKind::ChildrenPlanned,
        None,
        Some(attempt),
        serde_json::json!({ "total": total }),
        now,
    )
    .await?;
    tx.commit().await?;
    s.emit(Signal::Wake);
    s.emit(Signal::RunsChanged(vec![current.tenant_id]));
    Ok(PlanApplied::Planned { total })
}

pub(super) async fn set_phase(
    s: &SqliteStore,
    run: RunId,
    attempt: u32,
    phase: u32,
    phases: u32,
    label: &str,
    now: Timestamp,
) -> Result<bool> {
    let mut tx = s.write().await?;
    let Some(current) = fenced(&mut tx, run, attempt, "set_phase", now).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    sqlx::query("UPDATE operation_runs SET phase = $1, phases = $2, phase_label = $3, updated_at = $4 WHERE id = $5")
        .bind(i64::from(phase))
        .bind(i64::from(phases))
        .bind(label)
        .bind(now.unix_micros())
        .bind(run.to_string())
        .execute(&mut *tx)
        .await?;
    insert_event(
        &mut tx,
        run,
        RunEventKind::PhaseStarted,
        None,
        Some(attempt),
        serde_json::json!({ "phase": phase, "phases": phases, "label": label }),
        now,
    )
    .await?;
    tx.commit().await?;
    s.emit(Signal::RunsChanged(vec![current.tenant_id]));
    Ok(true)
}

pub(super) async fn add_counts(s: &SqliteStore, w: &CountsWrite, now: Timestamp) -> Result<bool> {
    let mut tx = s.write().await?;
    let Some(current) = fenced(&mut tx, w.run_id, w.attempt, "add_counts", now).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    let tenant = current.tenant_id;
    let mut counts: SummaryCounts = current.counts;
    counts.add(&w.counts);
    sqlx::query("UPDATE operation_runs SET counts = $1, updated_at = $2 WHERE id = $3")
        .bind(counts.to_json().to_string())
        .bind(now.unix_micros())
        .bind(w.run_id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    s.emit(Signal::RunsChanged(vec![tenant]));
    Ok(true)
}

pub(super) async fn request_cancel(
    s: &SqliteStore,
    run: RunId,
    actor: Actor,
    audit: Option<&AuditEntry>,
    now: Timestamp,
) -> Result<bool> {
    let mut tx = s.write().await?;
    let done = sqlx::query(
        "UPDATE operation_runs SET cancel_requested_at = COALESCE(cancel_requested_at, $1), updated_at = $1 WHERE id = $2 AND status = 'running'",
    )
    .bind(now.unix_micros())
    .bind(run.to_string())
    .execute(&mut *tx)
    .await?;
    let applied = done.rows_affected() == 1;
    if applied {
        insert_event(
            &mut tx,
            run,
            RunEventKind::CancelRequested,
            actor.user_id(),
            None,
            serde_json::json!({ "by": actor.kind() }),
            now,
        )
        .await?;
        if let Some(a) = audit {
            insert_audit(&mut tx, a).await?;
        }
    }
    tx.commit().await?;
    if applied {
        s.emit(Signal::RunsChanged(Vec::new()));
    }
    Ok(applied)
}

pub(super) async fn heartbeat(
    s: &SqliteStore,
    run: RunId,
    attempt: u32,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<HeartbeatAck> {
    let mut tx = s.write().await?;
    let row: Option<(Option<i64>,)> = sqlx::query_as(
        "UPDATE operation_runs SET heartbeat_at = $1, lease_expires_at = $2, updated_at = $1 \
         WHERE id = $3 AND status = 'running' AND attempt = $4 RETURNING cancel_requested_at",
    )
    .bind(now.unix_micros())
    .bind(lease_until.unix_micros())
    .bind(run.to_string())
    .bind(i64::from(attempt))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match row {
        Some((cancel,)) => HeartbeatAck::Extended {
            cancel_requested: cancel.is_some(),
        },
        None => HeartbeatAck::Fenced,
    })
}
