//! Law 1 on PostgreSQL: the only statements that change a run's `status` or
//! `outcome`, and (law 5) the only statement that writes notifications.
//!
//! Every UPDATE names the status it expects (and, when fenced, the attempt)
//! and treats "no row changed" as an answer. Completions — one or a batch —
//! go through one statement family ([`complete_batch`]), which writes, in
//! the same transaction: timeline entries, one notification per subscriber
//! (unique per run and recipient), and parents' progress, completing a
//! parent when this was its last child (law 11). A completed row stays
//! locked until commit, so a concurrent join either lands its subscription
//! before the completion reads subscribers, or sees the run completed and
//! starts a new one.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgConnection;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{RunId, TenantId, UserId};
use tenantatlas_domain::lifecycle::{LifecycleEvent, Outcome, RunState, RunStatus, Transition};
use tenantatlas_domain::notify::{run_view_url, terminal_notification};
use tenantatlas_domain::progress::{UnitOutcome, outcome_from_units};
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;
use uuid::Uuid;

use super::{PgStore, fetch_run, insert_audit, insert_event, notify};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::new_uuid;
use crate::rows::{self, RUN_COLUMNS, failures_to_json};

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

fn attempt_arg(a: Option<u32>) -> Option<i32> {
    a.map(|a| i32::try_from(a).unwrap_or(i32::MAX))
}

pub(super) async fn apply_transition(s: &PgStore, w: &LifecycleWrite) -> Result<TransitionResult> {
    if let TransitionDetail::Complete { .. } = w.detail {
        return complete_many(s, std::slice::from_ref(w))
            .await?
            .pop()
            .ok_or_else(mismatch);
    }
    let expected = attempt_arg(w.expected_attempt);
    let mut tx = s.begin().await?;
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
                 WHERE id = $4 AND status = 'queued' AND ($5::int IS NULL OR attempt = $5) RETURNING {RUN_COLUMNS}"
            ))
            .bind(lease_owner)
            .bind(lease_expires_at.to_datetime())
            .bind(w.at.to_datetime())
            .bind(w.run_id.as_uuid())
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
                 WHERE id = $3 AND status = 'running' AND ($4::int IS NULL OR attempt = $4) RETURNING {RUN_COLUMNS}"
            ))
            .bind(available_at.to_datetime())
            .bind(w.at.to_datetime())
            .bind(w.run_id.as_uuid())
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
                notify(&mut tx, &tenants_of(std::iter::once(r))).await?;
                if r.state == RunState::Queued {
                    notify(&mut tx, &Signal::Wake).await?;
                }
            }
            run
        }
        _ => return Err(mismatch()),
    };
    let result = match updated {
        Some(run) => {
            if run.state == RunState::Running {
                notify(&mut tx, &tenants_of(std::iter::once(&run))).await?;
            }
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
            current: fetch_run(&mut tx, w.run_id, false).await?.map(Box::new),
        },
    };
    tx.commit().await?;
    Ok(result)
}

pub(super) async fn complete_many(s: &PgStore, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>> {
    let mut tx = s.begin().await?;
    let results = complete_batch(&mut tx, writes).await?;
    let changed: Vec<&Run> = results
        .iter()
        .filter_map(|r| match r {
            TransitionResult::Applied { run, .. } => Some(run.as_ref()),
            TransitionResult::NotApplied { .. } => None,
        })
        .collect();
    if !changed.is_empty() {
        notify(&mut tx, &tenants_of(changed.into_iter())).await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// The one completion statement family: completes every write whose run is
/// still in the status (and attempt) it expects, then writes timeline
/// entries, notifications and parents' progress.
async fn complete_batch(conn: &mut PgConnection, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>> {
    let mut ids = Vec::with_capacity(writes.len());
    let mut froms = Vec::with_capacity(writes.len());
    let mut attempts = Vec::with_capacity(writes.len());
    let mut outcomes = Vec::with_capacity(writes.len());
    let mut reasons = Vec::with_capacity(writes.len());
    let mut failures = Vec::with_capacity(writes.len());
    let mut totals = Vec::with_capacity(writes.len());
    let mut rec_at = Vec::with_capacity(writes.len());
    let mut rec_from = Vec::with_capacity(writes.len());
    let mut rec_hb = Vec::with_capacity(writes.len());
    let mut ats = Vec::with_capacity(writes.len());
    for w in writes {
        let TransitionDetail::Complete {
            reason_code,
            failures: f,
            reconciliation,
            plan_total,
        } = &w.detail
        else {
            return Err(mismatch());
        };
        let Some(outcome) = w.transition.to().outcome() else {
            return Err(mismatch());
        };
        ids.push(w.run_id.as_uuid());
        froms.push(w.transition.from().as_str());
        attempts.push(attempt_arg(w.expected_attempt));
        outcomes.push(outcome.as_str());
        reasons.push(reason_code.map(|c| c.as_str()));
        failures.push((!f.is_empty()).then(|| failures_to_json(f).to_string()));
        totals.push(plan_total.map(|t| i64::try_from(t).unwrap_or(i64::MAX)));
        rec_at.push(reconciliation.as_ref().map(|r| r.reconciled_at.to_datetime()));
        rec_from.push(reconciliation.as_ref().map(|r| r.previous_status.as_str()));
        rec_hb.push(
            reconciliation
                .as_ref()
                .and_then(|r| r.last_heartbeat_at)
                .map(|t| t.to_datetime()),
        );
        ats.push(w.at.to_datetime());
    }
    let found = sqlx::query(
        "UPDATE operation_runs r SET status = 'completed', active = false, outcome = u.outcome, reason_code = u.reason, \
         failures = COALESCE(u.failures::jsonb, r.failures), completed_at = u.at, updated_at = u.at, \
         lease_owner = NULL, lease_expires_at = NULL, progress_stale_at = NULL, \
         units_total = COALESCE(r.units_total, u.plan_total), \
         reconciled_at = u.rec_at, reconciled_from_status = u.rec_from, reconciled_last_heartbeat_at = u.rec_hb \
         FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int8[], \
                     $8::timestamptz[], $9::text[], $10::timestamptz[], $11::timestamptz[]) \
              AS u(id, from_status, attempt, outcome, reason, failures, plan_total, rec_at, rec_from, rec_hb, at) \
         WHERE r.id = u.id AND r.status = u.from_status AND (u.attempt IS NULL OR r.attempt = u.attempt) \
         RETURNING r.*",
    )
    .bind(&ids)
    .bind(&froms)
    .bind(&attempts)
    .bind(&outcomes)
    .bind(&reasons)
    .bind(&failures)
    .bind(&totals)
    .bind(&rec_at)
    .bind(&rec_from)
    .bind(&rec_hb)
    .bind(&ats)
    .fetch_all(&mut *conn)
    .await?;
    let mut completed: HashMap<RunId, Run> = HashMap::with_capacity(found.len());
    for row in &found {
        let run = rows::run_from_row(row)?;
        completed.insert(run.id, run);
    }
    let applied: Vec<(&LifecycleWrite, &Run)> = {
        let mut seen = HashSet::new();
        writes
            .iter()
            .filter_map(|w| {
                completed
                    .get(&w.run_id)
                    .filter(|_| seen.insert(w.run_id))
                    .map(|r| (w, r))
            })
            .collect()
    };
    add_to_class_counts(conn, applied.iter().map(|(_, r)| *r)).await?;
    let notified = after_complete(conn, &applied).await?;
    let mut parents: HashMap<RunId, Vec<RunId>> = HashMap::new();
    for (w, run) in &applied {
        if run.parent_id.is_some() {
            let mut done = Vec::new();
            advance_parents(conn, run, w.at, &mut done).await?;
            parents.insert(run.id, done);
        }
        if let Some(a) = &w.audit {
            insert_audit(conn, a).await?;
        }
    }
    let mut results = Vec::with_capacity(writes.len());
    let mut answered = HashSet::new();
    for w in writes {
        match completed.get(&w.run_id) {
            Some(run) if answered.insert(w.run_id) => results.push(TransitionResult::Applied {
                run: Box::new(run.clone()),
                notified: notified.get(&run.id).cloned().unwrap_or_default(),
                parents_completed: parents.remove(&run.id).unwrap_or_default(),
            }),
            _ => {
                let current = fetch_run(conn, w.run_id, false).await?;
                results.push(TransitionResult::NotApplied {
                    current: current.map(Box::new),
                });
            }
        }
    }
    Ok(results)
}

/// Adds completed runs to the per-day class counters. The shard comes
/// from the batch, so concurrent batches mostly touch different rows; rows
/// are written in key order, so two batches on one shard do not deadlock.
async fn add_to_class_counts<'a>(conn: &mut PgConnection, runs: impl Iterator<Item = &'a Run>) -> Result<()> {
    let runs: Vec<&Run> = runs.collect();
    let Some(first) = runs.first() else {
        return Ok(());
    };
    let shard = i16::from(first.id.as_uuid().as_bytes()[15] % 16);
    let d = crate::counters::deltas(runs.iter().copied());
    let (mut ws, mut ts, mut days, mut classes, mut ns) = (vec![], vec![], vec![], vec![], vec![]);
    for (w, t, day, class, n) in d {
        ws.push(w);
        ts.push(t);
        days.push(i32::try_from(day).unwrap_or(i32::MAX));
        classes.push(class);
        ns.push(n);
    }
    sqlx::query(
        "INSERT INTO run_class_counts (workspace_id, tenant_id, day, class, shard, n) \
         SELECT w, t, d, c, $6, n FROM UNNEST($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::int8[]) AS u(w, t, d, c, n) \
         ON CONFLICT (tenant_id, day, class, shard) DO UPDATE SET n = run_class_counts.n + excluded.n",
    )
    .bind(&ws)
    .bind(&ts)
    .bind(&days)
    .bind(&classes)
    .bind(&ns)
    .bind(shard)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The notifications of completions (and their timeline rows when a
/// person completed them); answers who was notified, per run.
async fn after_complete(
    conn: &mut PgConnection,
    applied: &[(&LifecycleWrite, &Run)],
) -> Result<HashMap<RunId, Vec<UserId>>> {
    if applied.is_empty() {
        return Ok(HashMap::new());
    }
    let mut ev_run = Vec::new();
    let mut ev_at = Vec::new();
    let mut ev_kind = Vec::new();
    let mut ev_actor = Vec::new();
    let mut ev_attempt = Vec::new();
    let mut ev_detail = Vec::new();
    // The completion, its reconciliation lineage and the notifications are
    // on the run and in the notifications table; the timeline shows them
    // from there. Only who completed it, when that was a person, needs a
    // row of its own.
    for (w, run) in applied {
        let Some(user) = w.actor.user_id() else { continue };
        let outcome = run.state.outcome().unwrap_or(Outcome::Failed);
        ev_run.push(run.id.as_uuid());
        ev_at.push(w.at.to_datetime());
        ev_kind.push(RunEventKind::Completed.as_str());
        ev_actor.push(Some(user.as_uuid()));
        ev_attempt.push(i32::try_from(run.attempt).unwrap_or(i32::MAX));
        ev_detail.push(
            serde_json::json!({ "outcome": outcome.as_str(), "reason_code": run.reason_code.map(|c| c.as_str()) })
                .to_string(),
        );
    }
    let run_ids: Vec<Uuid> = applied.iter().map(|(_, r)| r.id.as_uuid()).collect();
    let subs: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT run_id, user_id FROM run_subscribers WHERE run_id = ANY($1) ORDER BY run_id, user_id")
            .bind(&run_ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut notified: HashMap<RunId, Vec<UserId>> = HashMap::new();
    if !subs.is_empty() {
        let by_id: HashMap<Uuid, (&LifecycleWrite, &Run)> =
            applied.iter().map(|(w, r)| (r.id.as_uuid(), (*w, *r))).collect();
        let mut n_id = Vec::with_capacity(subs.len());
        let mut n_user = Vec::with_capacity(subs.len());
        let mut n_run = Vec::with_capacity(subs.len());
        let mut n_ws = Vec::with_capacity(subs.len());
        let mut n_tenant = Vec::with_capacity(subs.len());
        let mut n_title = Vec::with_capacity(subs.len());
        let mut n_body = Vec::with_capacity(subs.len());
        let mut n_url = Vec::with_capacity(subs.len());
        let mut n_at = Vec::with_capacity(subs.len());
        for (run_id, user) in &subs {
            let Some((w, run)) = by_id.get(run_id) else { continue };
            let outcome = run.state.outcome().unwrap_or(Outcome::Failed);
            let text = terminal_notification(
                run.op_type,
                outcome,
                run.reason_code,
                run.reconciliation.is_some(),
                &run.units,
            );
            n_id.push(new_uuid());
            n_user.push(*user);
            n_run.push(*run_id);
            n_ws.push(run.workspace_id.map(|x| x.as_uuid()));
            n_tenant.push(run.tenant_id.map(|x| x.as_uuid()));
            n_title.push(text.title);
            n_body.push(text.body);
            n_url.push(run_view_url(run.id));
            n_at.push(w.at.to_datetime());
        }
        let inserted: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "INSERT INTO notifications (id, user_id, run_id, workspace_id, tenant_id, title, body, view_url, created_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::timestamptz[]) \
             ON CONFLICT (run_id, user_id) DO NOTHING RETURNING run_id, user_id",
        )
        .bind(&n_id)
        .bind(&n_user)
        .bind(&n_run)
        .bind(&n_ws)
        .bind(&n_tenant)
        .bind(&n_title)
        .bind(&n_body)
        .bind(&n_url)
        .bind(&n_at)
        .fetch_all(&mut *conn)
        .await?;
        for (run, user) in inserted {
            notified
                .entry(RunId::from_uuid(run))
                .or_default()
                .push(UserId::from_uuid(user));
        }
        for users in notified.values_mut() {
            users.sort();
        }
    }
    if ev_run.is_empty() {
        return Ok(notified);
    }
    sqlx::query(
        "INSERT INTO run_events (run_id, at, kind, actor_id, attempt, detail) \
         SELECT r, a, k, u, NULLIF(n, 0), d::jsonb FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::uuid[], $5::int[], $6::text[]) AS e(r, a, k, u, n, d)",
    )
    .bind(&ev_run)
    .bind(&ev_at)
    .bind(&ev_kind)
    .bind(&ev_actor)
    .bind(&ev_attempt)
    .bind(&ev_detail)
    .execute(&mut *conn)
    .await?;
    Ok(notified)
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
/// the same completion statement when it was the last one (law 11); that
/// completion advances the grandparent in turn.
async fn advance_parents(
    conn: &mut PgConnection,
    child: &Run,
    at: Timestamp,
    completed: &mut Vec<RunId>,
) -> Result<()> {
    let (Some(parent), Some(outcome)) = (child.parent_id, child.state.outcome()) else {
        return Ok(());
    };
    // Lock the parent: sibling completions serialize here.
    let Some(locked) = fetch_run(conn, parent, true).await? else {
        return Ok(());
    };
    if locked.state.status() == RunStatus::Completed {
        return Ok(());
    }
    let unit = UnitOutcome::of_child(outcome);
    let changed = sqlx::query(
        "UPDATE operation_units SET state = $1, updated_at = $2 WHERE run_id = $3 AND unit_key = $4 AND state = 'pending'",
    )
    .bind(unit.as_str())
    .bind(at.to_datetime())
    .bind(parent.as_uuid())
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
    .bind(at.to_datetime())
    .bind(parent.as_uuid())
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

pub(super) async fn claim_due(s: &PgStore, c: &ClaimRequest) -> Result<Vec<Run>> {
    if c.types.is_empty() || c.limit == 0 {
        return Ok(Vec::new());
    }
    if c.transition.from() != RunStatus::Queued || c.transition.to() != RunState::Running {
        return Err(mismatch());
    }
    let types: Vec<&str> = c.types.iter().map(|t| t.as_str()).collect();
    let mut tx = s.begin().await?;
    // A claim must cost the same whatever the table's statistics say: a
    // plan formed while the table was small (or its statistics stale) sorts
    // the whole queue on every claim. With bitmap scans and sorts off for
    // this transaction only, what remains is the ordered walk of the index
    // of active runs and primary-key lookups.
    sqlx::query("SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)")
        .execute(&mut *tx)
        .await?;
    let found = sqlx::query(
        // The subquery states the status it expects and locks those rows
        // for this statement, so the outer update needs no status test of
        // its own — one would let the planner pick the partial index of
        // active runs for the id lookups and walk it whole. id = ANY(ARRAY(…))
        // keeps the outer side to primary-key lookups. The claim changes no
        // indexed column (see the schema): PostgreSQL updates in place.
        "UPDATE operation_runs r SET status = 'running', attempt = r.attempt + 1, lease_owner = $4, lease_expires_at = $5, \
           claimed_by = $4, claimed_at = $1, heartbeat_at = $1, started_at = COALESCE(r.started_at, $1), \
           cancel_requested_at = NULL, updated_at = $1 \
         WHERE r.id = ANY(ARRAY( \
           SELECT id FROM operation_runs \
           WHERE active AND status = 'queued' AND available_at <= $1 AND type = ANY($2) \
           ORDER BY available_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)) \
         RETURNING r.*",
    )
    .bind(c.now.to_datetime())
    .bind(&types)
    .bind(i64::from(c.limit))
    .bind(&c.owner)
    .bind(c.lease_until.to_datetime())
    .fetch_all(&mut *tx)
    .await?;
    let runs = found.iter().map(rows::run_from_row).collect::<Result<Vec<_>>>()?;
    if !runs.is_empty() {
        notify(&mut tx, &tenants_of(runs.iter())).await?;
    }
    tx.commit().await?;
    Ok(runs)
}

pub(super) async fn release_orphans(s: &PgStore, r: &ReleaseRequest) -> Result<Vec<Run>> {
    if r.transition.from() != RunStatus::Running || r.transition.to() != RunState::Queued {
        return Err(mismatch());
    }
    let prefix = format!("{}/", r.node);
    let mut tx = s.begin().await?;
    let found = sqlx::query(&format!(
        "UPDATE operation_runs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, available_at = $1, updated_at = $1 \
         WHERE active AND status = 'running' AND substr(lease_owner, 1, $2) = $3 AND lease_owner <> $4 RETURNING {RUN_COLUMNS}"
    ))
    .bind(r.now.to_datetime())
    .bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
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
    if !runs.is_empty() {
        notify(&mut tx, &tenants_of(runs.iter())).await?;
        notify(&mut tx, &Signal::Wake).await?;
    }
    tx.commit().await?;
    Ok(runs)
}
