//! Law 1 on SQLite: the only statements that change a run's `status` or
//! `outcome`, and (law 5) the only statement that writes notifications.
//!
//! Every UPDATE names the status it expects (and, when fenced, the attempt)
//! and treats "no row changed" as an answer. Completions — one or a batch —
//! go through one statement family ([`complete_batch`]), which writes, in
//! the same transaction: timeline entries, one notification per subscriber
//! (unique per run and recipient), and parents' progress, completing a
//! parent when this was its last child (law 11).

use std::collections::{HashMap, HashSet};

use sqlx::QueryBuilder;
use sqlx::sqlite::{Sqlite, SqliteConnection};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{RunId, TenantId, UserId};
use tenantatlas_domain::lifecycle::{LifecycleEvent, Outcome, RunState, RunStatus, Transition};
use tenantatlas_domain::notify::{run_view_url, terminal_notification};
use tenantatlas_domain::progress::{UnitOutcome, outcome_from_units};
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;

use super::{SqliteStore, fetch_run, insert_audit, insert_event};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::new_uuid;
use crate::rows::{self, RUN_COLUMNS, failures_to_json};

const CHUNK: usize = 100;

fn mismatch() -> StoreError {
    StoreError::Invalid(tenantatlas_domain::FieldError::new(
        "transition",
        "the write's detail does not match its transition",
    ))
}

fn tenants_of<'a>(runs: impl Iterator<Item = &'a Run>) -> Signal {
    let set: HashSet<Option<TenantId>> = runs.map(|r| r.tenant_id).collect();
    Signal::RunsChanged(set.into_iter().collect())
}

pub(super) async fn apply_transition(s: &SqliteStore, w: &LifecycleWrite) -> Result<TransitionResult> {
    if let TransitionDetail::Complete { .. } = w.detail {
        return complete_many(s, std::slice::from_ref(w))
            .await?
            .pop()
            .ok_or_else(mismatch);
    }
    let expected = w.expected_attempt.map(i64::from);
    let mut tx = s.write().await?;
    let updated = match (w.transition.to(), &w.detail) {
        (
            RunState::Running,
            TransitionDetail::Claim {
                lease_owner,
                lease_expires_at,
            },
        ) => {
            let row = sqlx::query(&format!(
                "UPDATE operation_runs SET status = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2, \
                 claimed_by = $1, claimed_at = $3, heartbeat_at = $3, started_at = COALESCE(started_at, $3), \
                 cancel_requested_at = NULL, updated_at = $3 \
                 WHERE id = $4 AND status = 'queued' AND ($5 IS NULL OR attempt = $5) RETURNING {RUN_COLUMNS}"
            ))
            .bind(lease_owner)
            .bind(lease_expires_at.unix_micros())
            .bind(w.at.unix_micros())
            .bind(w.run_id.to_string())
            .bind(expected)
            .fetch_optional(&mut *tx)
            .await?;
            // the claim is on the row (claimed_by, claimed_at): no timeline row
            row.as_ref().map(rows::run_from_row).transpose()?
        }
        (
            RunState::Queued,
            TransitionDetail::Requeue {
                available_at,
                failure,
                release,
            },
        ) => {
            let row = sqlx::query(&format!(
                "UPDATE operation_runs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, available_at = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'running' AND ($4 IS NULL OR attempt = $4) RETURNING {RUN_COLUMNS}"
            ))
            .bind(available_at.unix_micros())
            .bind(w.at.unix_micros())
            .bind(w.run_id.to_string())
            .bind(expected)
            .fetch_optional(&mut *tx)
            .await?;
            let run = row.as_ref().map(rows::run_from_row).transpose()?;
            if let Some(r) = &run {
                let kind = if *release {
                    RunEventKind::Released
                } else {
                    RunEventKind::RetryScheduled
                };
                let detail = rows::with_ended_claim(
                    r,
                    serde_json::json!({
                        "available_at": available_at.to_rfc3339(),
                        "reason_code": failure.as_ref().map(|f| f.reason_code.as_str()),
                        "message": failure.as_ref().map(|f| f.message.as_str()),
                    }),
                );
                insert_event(&mut tx, r.id, kind, None, Some(r.attempt), detail, w.at).await?;
            }
            run
        }
        _ => return Err(mismatch()),
    };
    let result = match updated {
        Some(run) => {
            if let Some(a) = &w.audit {
                insert_audit(&mut tx, a).await?;
            }
            TransitionResult::Applied {
                run: Box::new(run),
                notified: Vec::new(),
                parents_completed: Vec::new(),
            }
        }
        None => TransitionResult::NotApplied {
            current: fetch_run(&mut tx, w.run_id).await?.map(Box::new),
        },
    };
    tx.commit().await?;
    if let TransitionResult::Applied { run, .. } = &result {
        s.emit(tenants_of(std::iter::once(run.as_ref())));
        if run.state == RunState::Queued {
            s.emit(Signal::Wake);
        }
    }
    Ok(result)
}

pub(super) async fn complete_many(s: &SqliteStore, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>> {
    let mut tx = s.write().await?;
    let results = complete_batch(&mut tx, writes).await?;
    tx.commit().await?;
    let changed: Vec<&Run> = results
        .iter()
        .filter_map(|r| match r {
            TransitionResult::Applied { run, .. } => Some(run.as_ref()),
            TransitionResult::NotApplied { .. } => None,
        })
        .collect();
    if !changed.is_empty() {
        s.emit(tenants_of(changed.into_iter()));
    }
    Ok(results)
}

/// The one completion statement family: completes every write whose run is
/// still in the status (and attempt) it expects, then writes timeline
/// entries, notifications and parents' progress.
async fn complete_batch(conn: &mut SqliteConnection, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>> {
    let mut completed: HashMap<RunId, Run> = HashMap::new();
    for chunk in writes.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "WITH u(id, from_status, attempt, outcome, reason, failures, plan_total, rec_at, rec_from, rec_hb, at) AS (",
        );
        qb.push_values(chunk, |mut b, w| {
            let (reason, failures, reconciliation, plan_total) = match &w.detail {
                TransitionDetail::Complete {
                    reason_code,
                    failures,
                    reconciliation,
                    plan_total,
                } => (*reason_code, failures.as_slice(), reconciliation.as_ref(), *plan_total),
                _ => (None, &[][..], None, None),
            };
            b.push_bind(w.run_id.to_string())
                .push_bind(w.transition.from().as_str())
                .push_bind(w.expected_attempt.map(i64::from))
                .push_bind(w.transition.to().outcome().map(|o| o.as_str()))
                .push_bind(reason.map(|c| c.as_str()))
                .push_bind((!failures.is_empty()).then(|| failures_to_json(failures).to_string()))
                .push_bind(plan_total.map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
                .push_bind(reconciliation.map(|r| r.reconciled_at.unix_micros()))
                .push_bind(reconciliation.map(|r| r.previous_status.as_str()))
                .push_bind(
                    reconciliation
                        .and_then(|r| r.last_heartbeat_at)
                        .map(|t| t.unix_micros()),
                )
                .push_bind(w.at.unix_micros());
        });
        qb.push(format!(
            ") UPDATE operation_runs SET status = 'completed', active = false, outcome = u.outcome, reason_code = u.reason, \
             failures = COALESCE(u.failures, operation_runs.failures), completed_at = u.at, updated_at = u.at, \
             lease_owner = NULL, lease_expires_at = NULL, progress_stale_at = NULL, \
             units_total = COALESCE(operation_runs.units_total, u.plan_total), \
             reconciled_at = u.rec_at, reconciled_from_status = u.rec_from, reconciled_last_heartbeat_at = u.rec_hb \
             FROM u WHERE operation_runs.id = u.id AND operation_runs.status = u.from_status \
             AND (u.attempt IS NULL OR operation_runs.attempt = u.attempt) RETURNING {}",
            RUN_COLUMNS
                .split(", ")
                .map(|c| format!("operation_runs.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let found = qb.build().fetch_all(&mut *conn).await?;
        for row in &found {
            let run = rows::run_from_row(row)?;
            completed.insert(run.id, run);
        }
    }
    add_to_class_counts(conn, completed.values()).await?;
    let mut results = Vec::with_capacity(writes.len());
    let mut done_once = HashSet::new();
    for w in writes {
        match completed.get(&w.run_id) {
            Some(run) if done_once.insert(w.run_id) => {
                let notified = after_complete(conn, run, w.actor.user_id(), w.at).await?;
                let mut parents = Vec::new();
                advance_parents(conn, run, w.at, &mut parents).await?;
                if let Some(a) = &w.audit {
                    insert_audit(conn, a).await?;
                }
                results.push(TransitionResult::Applied {
                    run: Box::new(run.clone()),
                    notified,
                    parents_completed: parents,
                });
            }
            _ => {
                let current = fetch_run(conn, w.run_id).await?;
                results.push(TransitionResult::NotApplied {
                    current: current.map(Box::new),
                });
            }
        }
    }
    Ok(results)
}

/// Adds completed runs to the per-day class counters (one writer: one
/// shard).
async fn add_to_class_counts<'a>(conn: &mut SqliteConnection, runs: impl Iterator<Item = &'a Run>) -> Result<()> {
    let d = crate::counters::deltas(runs);
    for chunk in d.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO run_class_counts (workspace_id, tenant_id, day, class, shard, n) ",
        );
        qb.push_values(chunk, |mut b, (w, t, day, class, n)| {
            b.push_bind(w.to_string())
                .push_bind(t.to_string())
                .push_bind(*day)
                .push_bind(*class)
                .push_bind(0_i64)
                .push_bind(*n);
        });
        qb.push(" ON CONFLICT (tenant_id, day, class, shard) DO UPDATE SET n = n + excluded.n");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The notifications of a completion (and its timeline row when a person
/// completed it); returns who was notified.
async fn after_complete(
    conn: &mut SqliteConnection,
    run: &Run,
    actor: Option<UserId>,
    at: Timestamp,
) -> Result<Vec<UserId>> {
    let outcome = run.state.outcome().unwrap_or(Outcome::Failed);
    // The completion, its reconciliation lineage and the notifications are
    // on the run and in the notifications table; the timeline shows them
    // from there. Only who completed it, when that was a person, needs a
    // row of its own.
    if let Some(user) = actor {
        insert_event(
            conn,
            run.id,
            RunEventKind::Completed,
            Some(user),
            Some(run.attempt),
            serde_json::json!({ "outcome": outcome.as_str(), "reason_code": run.reason_code.map(|c| c.as_str()) }),
            at,
        )
        .await?;
    }
    let subscribers: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM run_subscribers WHERE run_id = $1 ORDER BY user_id")
            .bind(run.id.to_string())
            .fetch_all(&mut *conn)
            .await?;
    if subscribers.is_empty() {
        return Ok(Vec::new());
    }
    let text = terminal_notification(
        run.op_type,
        outcome,
        run.reason_code,
        run.reconciliation.is_some(),
        &run.units,
    );
    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO notifications (id, user_id, run_id, workspace_id, tenant_id, title, body, view_url, created_at) ",
    );
    qb.push_values(&subscribers, |mut b, user| {
        b.push_bind(new_uuid().to_string())
            .push_bind(user.as_str())
            .push_bind(run.id.to_string())
            .push_bind(run.workspace_id.map(|w| w.to_string()))
            .push_bind(run.tenant_id.map(|t| t.to_string()))
            .push_bind(text.title.as_str())
            .push_bind(text.body.as_str())
            .push_bind(run_view_url(run.id))
            .push_bind(at.unix_micros());
    });
    qb.push(" ON CONFLICT (run_id, user_id) DO NOTHING RETURNING user_id");
    let notified: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
    notified
        .iter()
        .map(|u| u.parse().map_err(|e| StoreError::Corrupt(format!("user_id: {e}"))))
        .collect()
}

fn unit_column(o: UnitOutcome) -> &'static str {
    match o {
        UnitOutcome::Succeeded => "units_succeeded",
        UnitOutcome::PartiallySucceeded => "units_partial",
        UnitOutcome::Failed => "units_failed",
        UnitOutcome::Skipped => "units_skipped",
    }
}

/// Counts a completed child in its parent, completing the parent through
/// the same completion statement when it was the last one, up the chain
/// (law 11).
async fn advance_parents(
    conn: &mut SqliteConnection,
    child: &Run,
    at: Timestamp,
    completed: &mut Vec<RunId>,
) -> Result<()> {
    let (Some(parent), Some(outcome)) = (child.parent_id, child.state.outcome()) else {
        return Ok(());
    };
    let unit = UnitOutcome::of_child(outcome);
    let changed = sqlx::query(
        "UPDATE operation_units SET state = $1, updated_at = $2 WHERE run_id = $3 AND unit_key = $4 AND state = 'pending' \
         AND EXISTS (SELECT 1 FROM operation_runs WHERE id = $3 AND status <> 'completed')",
    )
    .bind(unit.as_str())
    .bind(at.unix_micros())
    .bind(parent.to_string())
    .bind(child.id.to_string())
    .execute(&mut *conn)
    .await?;
    if changed.rows_affected() == 0 {
        return Ok(());
    }
    let column = unit_column(unit);
    let row = sqlx::query(&format!(
        "UPDATE operation_runs SET units_processed = units_processed + 1, {column} = {column} + 1, \
         last_progress_at = $1, updated_at = $1 WHERE id = $2 RETURNING {RUN_COLUMNS}"
    ))
    .bind(at.unix_micros())
    .bind(parent.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let parent_run = rows::run_from_row(&row)?;
    if parent_run.state != RunState::Running || !parent_run.units.all_done() {
        return Ok(());
    }
    let outcome = outcome_from_units(&parent_run.units);
    let reason = (outcome != Outcome::Succeeded).then_some(ReasonCode::RunChildrenFailed);
    let Ok(transition) = Transition::plan(parent_run.state, LifecycleEvent::Complete(outcome)) else {
        return Ok(());
    };
    let write = LifecycleWrite {
        run_id: parent,
        transition,
        expected_attempt: Some(parent_run.attempt),
        at,
        actor: Actor::System,
        detail: TransitionDetail::Complete {
            reason_code: reason,
            failures: reason.map(Failure::from_code).into_iter().collect(),
            reconciliation: None,
            plan_total: None,
        },
        audit: None,
    };
    // The parent completes through the same statement as every run (which
    // in turn advances the grandparent).
    let results = Box::pin(complete_batch(conn, std::slice::from_ref(&write))).await?;
    if let Some(TransitionResult::Applied {
        run, parents_completed, ..
    }) = results.into_iter().next()
    {
        completed.push(run.id);
        completed.extend(parents_completed);
    }
    Ok(())
}

pub(super) async fn claim_due(s: &SqliteStore, c: &ClaimRequest) -> Result<Vec<Run>> {
    if c.transition.from() != RunStatus::Queued
        || c.transition.to() != RunState::Running
        || c.types.is_empty()
        || c.limit == 0
    {
        return if c.types.is_empty() || c.limit == 0 {
            Ok(Vec::new())
        } else {
            Err(mismatch())
        };
    }
    let mut tx = s.write().await?;
    let mut qb = QueryBuilder::<Sqlite>::new(
        "UPDATE operation_runs SET status = 'running', attempt = attempt + 1, lease_owner = ",
    );
    qb.push_bind(c.owner.as_str())
        .push(", lease_expires_at = ")
        .push_bind(c.lease_until.unix_micros())
        .push(", claimed_by = ")
        .push_bind(c.owner.as_str())
        .push(", claimed_at = ")
        .push_bind(c.now.unix_micros())
        .push(", heartbeat_at = ")
        .push_bind(c.now.unix_micros())
        .push(", started_at = COALESCE(started_at, ")
        .push_bind(c.now.unix_micros())
        .push("), cancel_requested_at = NULL, updated_at = ")
        .push_bind(c.now.unix_micros())
        .push(" WHERE status = 'queued' AND id IN (SELECT id FROM operation_runs WHERE active AND status = 'queued' AND available_at <= ")
        .push_bind(c.now.unix_micros())
        .push(" AND type IN (");
    let mut types = qb.separated(", ");
    for t in &c.types {
        types.push_bind(t.as_str());
    }
    qb.push(") ORDER BY available_at, id LIMIT ")
        .push_bind(i64::from(c.limit))
        .push(format!(") RETURNING {RUN_COLUMNS}"));
    let found = qb.build().fetch_all(&mut *tx).await?;
    let runs = found.iter().map(rows::run_from_row).collect::<Result<Vec<_>>>()?;
    tx.commit().await?;
    if !runs.is_empty() {
        s.emit(tenants_of(runs.iter()));
    }
    Ok(runs)
}

pub(super) async fn release_orphans(s: &SqliteStore, r: &ReleaseRequest) -> Result<Vec<Run>> {
    if r.transition.from() != RunStatus::Running || r.transition.to() != RunState::Queued {
        return Err(mismatch());
    }
    let prefix = format!("{}/", r.node);
    let mut tx = s.write().await?;
    let found = sqlx::query(&format!(
        "UPDATE operation_runs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, available_at = $1, updated_at = $1 \
         WHERE active AND status = 'running' AND substr(lease_owner, 1, $2) = $3 AND lease_owner <> $4 RETURNING {RUN_COLUMNS}"
    ))
    .bind(r.now.unix_micros())
    .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
    .bind(&prefix)
    .bind(&r.keep_owner)
    .fetch_all(&mut *tx)
    .await?;
    let runs = found.iter().map(rows::run_from_row).collect::<Result<Vec<_>>>()?;
    for run in &runs {
        insert_event(
            &mut tx,
            run.id,
            RunEventKind::Released,
            None,
            Some(run.attempt),
            rows::with_ended_claim(
                run,
                serde_json::json!({ "reason": "the worker that held it restarted; it resumes on its next attempt", "node": r.node }),
            ),
            r.now,
        )
        .await?;
    }
    tx.commit().await?;
    if !runs.is_empty() {
        s.emit(tenants_of(runs.iter()));
        s.emit(Signal::Wake);
    }
    Ok(runs)
}
