//! Law 1: the only statements that change a run's `status` or `outcome`,
//! and (law 5) the only statements that write notifications.
//!
//! Every UPDATE names the status it expects (and, when fenced, the attempt)
//! and treats "no row changed" as an answer. Completions — one or a batch —
//! go through one statement family ([`complete_batch`]), which writes, in
//! the same transaction: timeline entries, one notification per subscriber
//! (unique per run and recipient), the per-day class counters, and parents'
//! progress, completing a parent when this was its last child (law 11). On
//! PostgreSQL a completed row stays locked until commit, so a concurrent
//! join either lands its subscription before the completion reads
//! subscribers, or sees the run completed and starts a new one.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::lifecycle::{Outcome, RunState, RunStatus};
use tenantatlas_domain::notify::{run_view_url, terminal_notification};
use tenantatlas_domain::progress::{UnitOutcome, parent_completion};
use tenantatlas_domain::reason::Failure;
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::port::Lifecycle;

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;

use crate::db::{Arg, Conn, Q, q};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::rows::{self, RUN_COLUMNS, RowExt as _, failures_to_json};
use crate::runs::{fetch_run, insert_audit, insert_event};
use crate::{SqlStore, new_uuid, postgres, sqlite};

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

/// One completion, as the completion statement takes it.
pub(crate) struct CompletionRow {
    pub(crate) run: RunId,
    pub(crate) from: &'static str,
    pub(crate) attempt: Option<u32>,
    pub(crate) outcome: &'static str,
    pub(crate) reason: Option<&'static str>,
    pub(crate) failures: Option<serde_json::Value>,
    pub(crate) plan_total: Option<i64>,
    pub(crate) rec_at: Option<Timestamp>,
    pub(crate) rec_from: Option<&'static str>,
    pub(crate) rec_hb: Option<Timestamp>,
    /// A reconciliation applies only while the run's heartbeat and
    /// progress deadline are what its staleness was judged on.
    pub(crate) judged: bool,
    pub(crate) judged_hb: Option<Timestamp>,
    pub(crate) judged_ps: Option<Timestamp>,
    pub(crate) at: Timestamp,
}

impl CompletionRow {
    fn of(w: &LifecycleWrite) -> Result<Self> {
        let TransitionDetail::Complete {
            reason_code,
            failures,
            reconciliation,
            plan_total,
        } = w.detail()
        else {
            return Err(mismatch());
        };
        let outcome = w.transition().to().outcome().ok_or_else(mismatch)?;
        Ok(Self {
            run: w.run_id(),
            from: w.transition().from().as_str(),
            attempt: w.expected_attempt(),
            outcome: outcome.as_str(),
            reason: reason_code.map(|c| c.as_str()),
            failures: (!failures.is_empty()).then(|| failures_to_json(failures)),
            plan_total: plan_total.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            rec_at: reconciliation.as_ref().map(|r| r.reconciled_at),
            rec_from: reconciliation.as_ref().map(|r| r.previous_status.as_str()),
            rec_hb: reconciliation.as_ref().and_then(|r| r.last_heartbeat_at),
            judged: w.judged().is_some(),
            judged_hb: w.judged().and_then(|j| j.heartbeat_at),
            judged_ps: w.judged().and_then(|j| j.progress_stale_at),
            at: w.at(),
        })
    }

    /// Its values in the statement's column order (SQLite's `VALUES`).
    pub(crate) fn args(&self) -> Vec<Arg> {
        vec![
            self.run.into(),
            self.from.into(),
            self.attempt.into(),
            self.outcome.into(),
            self.reason.into(),
            self.failures.as_ref().map(|f| f.to_string()).into(),
            self.plan_total.into(),
            self.rec_at.into(),
            self.rec_from.into(),
            self.rec_hb.into(),
            self.judged.into(),
            self.judged_hb.into(),
            self.judged_ps.into(),
            self.at.into(),
        ]
    }
}

/// A completion with who caused it and its audit entry: from a
/// [`LifecycleWrite`], or (a parent whose last child ended, law 11) made
/// here.
struct Completing<'a> {
    row: CompletionRow,
    actor: Actor,
    audit: Option<&'a AuditEntry>,
}

impl<'a> Completing<'a> {
    fn of(w: &'a LifecycleWrite) -> Result<Self> {
        Ok(Self {
            row: CompletionRow::of(w)?,
            actor: w.actor(),
            audit: w.audit(),
        })
    }
}

/// One terminal notification to write.
pub(crate) struct NotificationRow {
    pub(crate) id: uuid::Uuid,
    pub(crate) user: UserId,
    pub(crate) run: RunId,
    pub(crate) workspace: Option<WorkspaceId>,
    pub(crate) tenant: Option<TenantId>,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) view_url: String,
    pub(crate) at: Timestamp,
}

#[async_trait]
impl Lifecycle for SqlStore {
    async fn apply_transition(&self, w: &LifecycleWrite) -> Result<TransitionResult> {
        if let TransitionDetail::Complete { .. } = w.detail() {
            return self
                .complete_many(std::slice::from_ref(w))
                .await?
                .pop()
                .ok_or_else(mismatch);
        }
        postgres::retrying(5, false, || self.move_run(w)).await
    }

    async fn complete_many(&self, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>> {
        postgres::retrying(5, false, || async {
            let mut tx = self.begin().await?;
            let batch = writes.iter().map(Completing::of).collect::<Result<Vec<_>>>()?;
            let results = complete_batch(&mut tx.conn(), &batch).await?;
            let changed: Vec<&Run> = results
                .iter()
                .filter_map(|r| match r {
                    TransitionResult::Applied { run, .. } => Some(run.as_ref()),
                    TransitionResult::NotApplied { .. } => None,
                })
                .collect();
            if !changed.is_empty() {
                tx.signal(tenants_of(changed.into_iter()));
            }
            tx.commit().await?;
            Ok(results)
        })
        .await
    }

    async fn claim_due(&self, c: &ClaimRequest) -> Result<Vec<Run>> {
        if c.types().is_empty() || c.limit() == 0 {
            return Ok(Vec::new());
        }
        if c.transition().from() != RunStatus::Queued || c.transition().to() != RunState::Running {
            return Err(mismatch());
        }
        let mut tx = self.begin().await?;
        // Claims differ by dialect: PostgreSQL skips rows other workers
        // lock; SQLite's one writer serializes claims.
        let runs = match tx.conn() {
            Conn::Sqlite(conn) => claim_sqlite(conn, c).await?,
            Conn::Pg(conn) => claim_pg(conn, c).await?,
        };
        if !runs.is_empty() {
            tx.signal(tenants_of(runs.iter()));
        }
        tx.commit().await?;
        Ok(runs)
    }

    async fn release_orphans(&self, r: &ReleaseRequest) -> Result<Vec<Run>> {
        if r.transition().from() != RunStatus::Running || r.transition().to() != RunState::Queued {
            return Err(mismatch());
        }
        let prefix = format!("{}/", r.node());
        let mut tx = self.begin().await?;
        let found = tx
            .conn()
            .all(
                &q(format!(
                    "UPDATE operation_runs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
                     available_at = $1, updated_at = $1 \
                     WHERE active AND status = 'running' AND substr(lease_owner, 1, length($2)) = $2 \
                     AND lease_owner <> $3 RETURNING {RUN_COLUMNS}"
                ))
                .bind(r.now())
                .bind(&prefix)
                .bind(r.keep_owner()),
            )
            .await?;
        let runs = found.iter().map(rows::run_from_row).collect::<Result<Vec<_>>>()?;
        for run in &runs {
            let detail = rows::with_ended_claim(
                run,
                serde_json::json!({ "reason": "the worker that held it restarted; it resumes on its next attempt", "node": r.node() }),
            );
            insert_event(
                &mut tx.conn(),
                run.id,
                RunEventKind::Released,
                None,
                Some(run.attempt),
                detail,
                r.now(),
            )
            .await?;
        }
        if !runs.is_empty() {
            tx.signal(tenants_of(runs.iter()));
            tx.signal(Signal::Wake);
        }
        tx.commit().await?;
        Ok(runs)
    }
}

impl SqlStore {
    /// A claim of one run or a requeue: one guarded UPDATE.
    async fn move_run(&self, w: &LifecycleWrite) -> Result<TransitionResult> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let updated = match (w.transition().to(), w.detail()) {
            (
                RunState::Running,
                TransitionDetail::Claim {
                    lease_owner,
                    lease_expires_at,
                },
            ) => {
                let row = conn
                    .opt(
                        &q(format!(
                            "UPDATE operation_runs SET status = 'running', attempt = attempt + 1, lease_owner = $1, \
                             lease_expires_at = $2, claimed_by = $1, claimed_at = $3, heartbeat_at = $3, \
                             started_at = COALESCE(started_at, $3), cancel_requested_at = NULL, updated_at = $3 \
                             WHERE id = $4 AND status = 'queued' AND ($5 IS NULL OR attempt = $5) RETURNING {RUN_COLUMNS}"
                        ))
                        .bind(lease_owner)
                        .bind(*lease_expires_at)
                        .bind(w.at())
                        .bind(w.run_id())
                        .bind(w.expected_attempt()),
                    )
                    .await?;
                // the claim is on the row (claimed_by, claimed_at): no timeline row
                row.as_ref().map(rows::run_from_row).transpose()?
            }
            (
                RunState::Queued,
                TransitionDetail::Requeue {
                    available_at,
                    failure,
                    cause,
                },
            ) => {
                // A requeue the reconciler judged (a lapsed lease) applies
                // only if no heartbeat or progress landed since its read.
                let judged = if w.judged().is_some() {
                    " AND (heartbeat_at = $5 OR (heartbeat_at IS NULL AND $5 IS NULL)) \
                     AND (progress_stale_at = $6 OR (progress_stale_at IS NULL AND $6 IS NULL))"
                } else {
                    ""
                };
                let mut query = q(format!(
                    "UPDATE operation_runs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
                     available_at = $1, updated_at = $2 \
                     WHERE id = $3 AND status = 'running' AND ($4 IS NULL OR attempt = $4){judged} \
                     RETURNING {RUN_COLUMNS}"
                ))
                .bind(*available_at)
                .bind(w.at())
                .bind(w.run_id())
                .bind(w.expected_attempt());
                if let Some(j) = w.judged() {
                    query = query.bind(j.heartbeat_at).bind(j.progress_stale_at);
                }
                let row = conn.opt(&query).await?;
                let run = row.as_ref().map(rows::run_from_row).transpose()?;
                if let Some(r) = &run {
                    let kind = if cause.is_release() {
                        RunEventKind::Released
                    } else {
                        RunEventKind::RetryScheduled
                    };
                    let detail = rows::with_ended_claim(
                        r,
                        serde_json::json!({
                            "available_at": available_at.to_rfc3339(),
                            "reason": cause.reason(),
                            "reason_code": failure.as_ref().map(|f| f.reason_code.as_str()),
                            "message": failure.as_ref().map(|f| f.message.as_str()),
                        }),
                    );
                    insert_event(&mut conn, r.id, kind, None, Some(r.attempt), detail, w.at()).await?;
                }
                run
            }
            _ => return Err(mismatch()),
        };
        let result = match updated {
            Some(run) => {
                if let Some(a) = w.audit() {
                    insert_audit(&mut conn, a).await?;
                }
                TransitionResult::Applied {
                    run: Box::new(run),
                    notified: Vec::new(),
                    parents_completed: Vec::new(),
                }
            }
            None => TransitionResult::NotApplied {
                current: fetch_run(&mut conn, w.run_id(), false).await?.map(Box::new),
            },
        };
        if let TransitionResult::Applied { run, .. } = &result {
            tx.signal(tenants_of(std::iter::once(run.as_ref())));
            if run.state == RunState::Queued {
                tx.signal(Signal::Wake);
            }
        }
        tx.commit().await?;
        Ok(result)
    }
}

/// The one completion statement family: completes every write whose run is
/// still in the status (and attempt) it expects, then writes timeline
/// entries, notifications, class counters and parents' progress.
async fn complete_batch(conn: &mut Conn<'_>, batch: &[Completing<'_>]) -> Result<Vec<TransitionResult>> {
    let rows_in: Vec<&CompletionRow> = batch.iter().map(|c| &c.row).collect();
    // The batch statement differs by dialect: `UNNEST` arrays on
    // PostgreSQL, chunks of multi-row `VALUES` on SQLite.
    let found = match conn {
        Conn::Sqlite(c) => complete_runs_sqlite(c, &rows_in).await?,
        Conn::Pg(c) => complete_runs_pg(c, &rows_in).await?,
    };
    let completed: HashMap<RunId, Run> = found.into_iter().map(|r| (r.id, r)).collect();
    let applied: Vec<(&Completing<'_>, &Run)> = {
        let mut seen = HashSet::new();
        batch
            .iter()
            .filter_map(|c| {
                completed
                    .get(&c.row.run)
                    .filter(|_| seen.insert(c.row.run))
                    .map(|r| (c, r))
            })
            .collect()
    };
    if let Some((_, first)) = applied.first() {
        let deltas = crate::counters::deltas(applied.iter().map(|(_, r)| *r));
        match conn {
            Conn::Sqlite(c) => sqlite::add_class_counts(c, &deltas).await?,
            Conn::Pg(c) => postgres::add_class_counts(c, &deltas, first.id).await?,
        }
    }
    let notified = after_complete(conn, &applied).await?;
    let mut parents: HashMap<RunId, Vec<RunId>> = HashMap::new();
    for (c, run) in &applied {
        if run.parent_id.is_some() {
            let mut done = Vec::new();
            advance_parents(conn, run, c.row.at, &mut done).await?;
            parents.insert(run.id, done);
        }
        if let Some(a) = c.audit {
            insert_audit(conn, a).await?;
        }
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut answered = HashSet::new();
    for c in batch {
        match completed.get(&c.row.run) {
            Some(run) if answered.insert(c.row.run) => results.push(TransitionResult::Applied {
                run: Box::new(run.clone()),
                notified: notified.get(&run.id).cloned().unwrap_or_default(),
                parents_completed: parents.remove(&run.id).unwrap_or_default(),
            }),
            _ => results.push(TransitionResult::NotApplied {
                current: fetch_run(conn, c.row.run, false).await?.map(Box::new),
            }),
        }
    }
    Ok(results)
}

/// The notifications of completions (and their timeline rows when a
/// person completed them); answers who was notified, per run.
async fn after_complete(
    conn: &mut Conn<'_>,
    applied: &[(&Completing<'_>, &Run)],
) -> Result<HashMap<RunId, Vec<UserId>>> {
    let mut notified: HashMap<RunId, Vec<UserId>> = HashMap::new();
    if applied.is_empty() {
        return Ok(notified);
    }
    // The completion, its reconciliation lineage and the notifications are
    // on the run and in the notifications table; the timeline shows them
    // from there. Only who completed it, when that was a person, needs a
    // row of its own.
    let events: Vec<NewEvent> = applied
        .iter()
        .filter_map(|(c, run)| {
            let user = c.actor.user_id()?;
            let outcome = run.state.outcome().unwrap_or(Outcome::Failed);
            Some(NewEvent {
                run_id: run.id,
                at: c.row.at,
                kind: RunEventKind::Completed,
                actor_id: Some(user),
                attempt: Some(run.attempt),
                detail: serde_json::json!({ "outcome": outcome.as_str(), "reason_code": run.reason_code.map(|c| c.as_str()) }),
            })
        })
        .collect();
    let mut lookup = q("SELECT run_id, user_id FROM run_subscribers WHERE run_id ");
    let ids = lookup.any(conn.dialect(), applied.iter().map(|(_, r)| r.id.as_uuid()).collect());
    lookup.push(&ids).push(" ORDER BY run_id, user_id");
    let subs = conn.all(&lookup).await?;
    let by_id: HashMap<RunId, (&Completing<'_>, &Run)> = applied.iter().map(|(c, r)| (r.id, (*c, *r))).collect();
    let mut rows_in = Vec::with_capacity(subs.len());
    for s in &subs {
        let (run_id, user) = (
            RunId::from_uuid(s.uuid("run_id")?),
            UserId::from_uuid(s.uuid("user_id")?),
        );
        let Some((c, run)) = by_id.get(&run_id) else { continue };
        let outcome = run.state.outcome().unwrap_or(Outcome::Failed);
        let text = terminal_notification(
            run.op_type,
            outcome,
            run.reason_code,
            run.reconciliation.is_some(),
            &run.units,
        );
        rows_in.push(NotificationRow {
            id: new_uuid(),
            user,
            run: run_id,
            workspace: run.workspace_id,
            tenant: run.tenant_id,
            title: text.title,
            body: text.body,
            view_url: run_view_url(run.id),
            at: c.row.at,
        });
    }
    if !rows_in.is_empty() {
        let inserted = match conn {
            Conn::Sqlite(c) => insert_notifications_sqlite(c, &rows_in).await?,
            Conn::Pg(c) => insert_notifications_pg(c, &rows_in).await?,
        };
        for (run, user) in inserted {
            notified.entry(run).or_default().push(user);
        }
        for users in notified.values_mut() {
            users.sort();
        }
    }
    if !events.is_empty() {
        match conn {
            Conn::Sqlite(c) => sqlite::insert_events(c, &events).await?,
            Conn::Pg(c) => postgres::insert_events(c, &events).await?,
        }
    }
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
async fn advance_parents(conn: &mut Conn<'_>, child: &Run, at: Timestamp, completed: &mut Vec<RunId>) -> Result<()> {
    let (Some(parent), Some(outcome)) = (child.parent_id, child.state.outcome()) else {
        return Ok(());
    };
    // Lock the parent (PostgreSQL): sibling completions serialize here.
    let Some(locked) = fetch_run(conn, parent, true).await? else {
        return Ok(());
    };
    if locked.state.status() == RunStatus::Completed {
        return Ok(());
    }
    let unit = UnitOutcome::of_child(outcome);
    let changed = conn
        .execute(
            &q("UPDATE operation_units SET state = $1, updated_at = $2 WHERE run_id = $3 AND unit_key = $4 AND state = 'pending'")
                .bind(unit.as_str())
                .bind(at)
                .bind(parent)
                .bind(child.id.to_string()),
        )
        .await?;
    if changed == 0 {
        return Ok(());
    }
    let column = unit_column(unit);
    let row = conn
        .one(
            &q(format!(
                "UPDATE operation_runs SET units_processed = units_processed + 1, {column} = {column} + 1, \
                 last_progress_at = $1, updated_at = $1 WHERE id = $2 RETURNING {RUN_COLUMNS}"
            ))
            .bind(at)
            .bind(parent),
        )
        .await?;
    let parent_run = rows::run_from_row(&row)?;
    let Some((outcome, reason)) = parent_completion(&parent_run) else {
        return Ok(());
    };
    let write = Completing {
        row: CompletionRow {
            run: parent,
            from: RunStatus::Running.as_str(),
            attempt: Some(parent_run.attempt),
            outcome: outcome.as_str(),
            reason: reason.map(|c| c.as_str()),
            failures: reason.map(|c| failures_to_json(&[Failure::from_code(c)])),
            plan_total: None,
            rec_at: None,
            rec_from: None,
            rec_hb: None,
            judged: false,
            judged_hb: None,
            judged_ps: None,
            at,
        },
        actor: Actor::System,
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

// --- the dialects' forms of the batch statements above: `UNNEST` arrays on
// PostgreSQL (one statement whose text never changes, so it stays
// prepared), chunks of multi-row `VALUES` on SQLite; PostgreSQL's claim
// skips rows other workers lock, SQLite's one writer serializes claims.

/// Completes every write whose run is still where it expects, in one
/// statement per chunk; answers the completed runs.
async fn complete_runs_sqlite(c: &mut SqliteConnection, rows_in: &[&CompletionRow]) -> Result<Vec<Run>> {
    let columns = RUN_COLUMNS
        .split(", ")
        .map(|c| format!("operation_runs.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Vec::new();
    for chunk in rows_in.chunks(sqlite::CHUNK) {
        let mut stmt = q(
            "WITH u(id, from_status, attempt, outcome, reason, failures, plan_total, rec_at, rec_from, rec_hb, \
             judged, j_hb, j_ps, at) AS (VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            let ph: Vec<&str> = r.args().into_iter().map(|a| stmt.next(a)).collect();
            stmt.push(if i == 0 { "(" } else { ", (" })
                .push(&ph.join(", "))
                .push(")");
        }
        stmt.push(&format!(
            ") UPDATE operation_runs SET status = 'completed', active = false, outcome = u.outcome, reason_code = u.reason, \
             failures = COALESCE(u.failures, operation_runs.failures), completed_at = u.at, updated_at = u.at, \
             lease_owner = NULL, lease_expires_at = NULL, progress_stale_at = NULL, \
             units_total = COALESCE(operation_runs.units_total, u.plan_total), \
             reconciled_at = u.rec_at, reconciled_from_status = u.rec_from, reconciled_last_heartbeat_at = u.rec_hb \
             FROM u WHERE operation_runs.id = u.id AND operation_runs.status = u.from_status \
             AND (u.attempt IS NULL OR operation_runs.attempt = u.attempt) \
             AND (u.judged = 0 OR (operation_runs.heartbeat_at IS u.j_hb AND operation_runs.progress_stale_at IS u.j_ps)) \
             RETURNING {columns}"
        ));
        for row in Conn::Sqlite(&mut *c).all(&stmt).await? {
            out.push(rows::run_from_row(&row)?);
        }
    }
    Ok(out)
}

/// Completes every write whose run is still where it expects, in one
/// statement; answers the completed runs.
async fn complete_runs_pg(c: &mut PgConnection, rows_in: &[&CompletionRow]) -> Result<Vec<Run>> {
    let ids: Vec<Uuid> = rows_in.iter().map(|r| r.run.as_uuid()).collect();
    let froms: Vec<&str> = rows_in.iter().map(|r| r.from).collect();
    let attempts: Vec<Option<i32>> = rows_in.iter().map(|r| postgres::int4(r.attempt)).collect();
    let outcomes: Vec<&str> = rows_in.iter().map(|r| r.outcome).collect();
    let reasons: Vec<Option<&str>> = rows_in.iter().map(|r| r.reason).collect();
    let failures: Vec<Option<String>> = rows_in
        .iter()
        .map(|r| r.failures.as_ref().map(|f| f.to_string()))
        .collect();
    let totals: Vec<Option<i64>> = rows_in.iter().map(|r| r.plan_total).collect();
    let rec_at: Vec<Option<time::OffsetDateTime>> =
        rows_in.iter().map(|r| r.rec_at.map(Timestamp::to_datetime)).collect();
    let rec_from: Vec<Option<&str>> = rows_in.iter().map(|r| r.rec_from).collect();
    let rec_hb: Vec<Option<time::OffsetDateTime>> =
        rows_in.iter().map(|r| r.rec_hb.map(Timestamp::to_datetime)).collect();
    let judged: Vec<bool> = rows_in.iter().map(|r| r.judged).collect();
    let j_hb: Vec<Option<time::OffsetDateTime>> = rows_in
        .iter()
        .map(|r| r.judged_hb.map(Timestamp::to_datetime))
        .collect();
    let j_ps: Vec<Option<time::OffsetDateTime>> = rows_in
        .iter()
        .map(|r| r.judged_ps.map(Timestamp::to_datetime))
        .collect();
    let ats: Vec<time::OffsetDateTime> = rows_in.iter().map(|r| r.at.to_datetime()).collect();
    let found = sqlx::query(
        "UPDATE operation_runs r SET status = 'completed', active = false, outcome = u.outcome, reason_code = u.reason, \
         failures = COALESCE(u.failures::jsonb, r.failures), completed_at = u.at, updated_at = u.at, \
         lease_owner = NULL, lease_expires_at = NULL, progress_stale_at = NULL, \
         units_total = COALESCE(r.units_total, u.plan_total), \
         reconciled_at = u.rec_at, reconciled_from_status = u.rec_from, reconciled_last_heartbeat_at = u.rec_hb \
         FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int8[], \
                     $8::timestamptz[], $9::text[], $10::timestamptz[], $11::bool[], $12::timestamptz[], \
                     $13::timestamptz[], $14::timestamptz[]) \
              AS u(id, from_status, attempt, outcome, reason, failures, plan_total, rec_at, rec_from, rec_hb, \
                   judged, j_hb, j_ps, at) \
         WHERE r.id = u.id AND r.status = u.from_status AND (u.attempt IS NULL OR r.attempt = u.attempt) \
         AND (NOT u.judged OR (r.heartbeat_at IS NOT DISTINCT FROM u.j_hb \
                               AND r.progress_stale_at IS NOT DISTINCT FROM u.j_ps)) \
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
    .bind(&judged)
    .bind(&j_hb)
    .bind(&j_ps)
    .bind(&ats)
    .fetch_all(c)
    .await?;
    found.iter().map(rows::run_from_row).collect()
}

/// Claims due queued runs of `types` (the one writer serializes claims).
async fn claim_sqlite(c: &mut SqliteConnection, req: &ClaimRequest) -> Result<Vec<Run>> {
    let mut stmt = Q::default();
    let now = stmt.arg(req.now());
    let owner = stmt.arg(req.owner());
    let lease = stmt.arg(req.lease_until());
    let types: Vec<String> = req.types().iter().map(|t| stmt.arg(t.as_str())).collect();
    let limit = stmt.arg(req.limit());
    stmt.push(&format!(
        "UPDATE operation_runs SET status = 'running', attempt = attempt + 1, lease_owner = {owner}, \
         lease_expires_at = {lease}, claimed_by = {owner}, claimed_at = {now}, heartbeat_at = {now}, \
         started_at = COALESCE(started_at, {now}), cancel_requested_at = NULL, updated_at = {now} \
         WHERE status = 'queued' AND id IN (SELECT id FROM operation_runs WHERE active AND status = 'queued' \
         AND available_at <= {now} AND type IN ({}) ORDER BY available_at, id LIMIT {limit}) RETURNING {RUN_COLUMNS}",
        types.join(", ")
    ));
    Conn::Sqlite(c)
        .all(&stmt)
        .await?
        .iter()
        .map(rows::run_from_row)
        .collect()
}

/// Claims due queued runs of `types`, skipping rows other workers hold.
async fn claim_pg(c: &mut PgConnection, req: &ClaimRequest) -> Result<Vec<Run>> {
    let types: Vec<&str> = req.types().iter().map(|t| t.as_str()).collect();
    // A claim must cost the same whatever the table's statistics say: a
    // plan formed while the table was small (or its statistics stale) sorts
    // the whole queue on every claim. With bitmap scans and sorts off for
    // this transaction only, what remains is the ordered walk of the index
    // of active runs and primary-key lookups.
    sqlx::query("SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)")
        .execute(&mut *c)
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
    .bind(req.now().to_datetime())
    .bind(&types)
    .bind(i64::from(req.limit()))
    .bind(req.owner())
    .bind(req.lease_until().to_datetime())
    .fetch_all(c)
    .await?;
    found.iter().map(rows::run_from_row).collect()
}
/// Writes notifications, one per run and recipient; answers who got one.
async fn insert_notifications_sqlite(
    c: &mut SqliteConnection,
    rows_in: &[NotificationRow],
) -> Result<Vec<(RunId, UserId)>> {
    let found = sqlite::insert_values(
        c,
        "INSERT INTO notifications (id, user_id, run_id, workspace_id, tenant_id, title, body, view_url, created_at)",
        rows_in.iter().map(|n| {
            vec![
                n.id.into(),
                n.user.into(),
                n.run.into(),
                n.workspace.into(),
                n.tenant.into(),
                (&n.title).into(),
                (&n.body).into(),
                (&n.view_url).into(),
                n.at.into(),
            ]
        }),
        " ON CONFLICT (run_id, user_id) DO NOTHING RETURNING run_id, user_id",
    )
    .await?;
    found
        .iter()
        .map(|r| {
            Ok((
                RunId::from_uuid(r.uuid("run_id")?),
                UserId::from_uuid(r.uuid("user_id")?),
            ))
        })
        .collect()
}

/// Writes notifications, one per run and recipient; answers who got one.
async fn insert_notifications_pg(c: &mut PgConnection, rows_in: &[NotificationRow]) -> Result<Vec<(RunId, UserId)>> {
    let ids: Vec<Uuid> = rows_in.iter().map(|n| n.id).collect();
    let users: Vec<Uuid> = rows_in.iter().map(|n| n.user.as_uuid()).collect();
    let runs: Vec<Uuid> = rows_in.iter().map(|n| n.run.as_uuid()).collect();
    let ws: Vec<Option<Uuid>> = rows_in.iter().map(|n| n.workspace.map(|w| w.as_uuid())).collect();
    let tenants: Vec<Option<Uuid>> = rows_in.iter().map(|n| n.tenant.map(|t| t.as_uuid())).collect();
    let titles: Vec<&str> = rows_in.iter().map(|n| n.title.as_str()).collect();
    let bodies: Vec<&str> = rows_in.iter().map(|n| n.body.as_str()).collect();
    let urls: Vec<&str> = rows_in.iter().map(|n| n.view_url.as_str()).collect();
    let ats: Vec<time::OffsetDateTime> = rows_in.iter().map(|n| n.at.to_datetime()).collect();
    let inserted: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "INSERT INTO notifications (id, user_id, run_id, workspace_id, tenant_id, title, body, view_url, created_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::timestamptz[]) \
         ON CONFLICT (run_id, user_id) DO NOTHING RETURNING run_id, user_id",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&runs)
    .bind(&ws)
    .bind(&tenants)
    .bind(&titles)
    .bind(&bodies)
    .bind(&urls)
    .bind(&ats)
    .fetch_all(c)
    .await?;
    Ok(inserted
        .into_iter()
        .map(|(r, u)| (RunId::from_uuid(r), UserId::from_uuid(u)))
        .collect())
}
