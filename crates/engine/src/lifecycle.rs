//! Law 1 — the lifecycle is owned by one service. This module is the only
//! caller of the store's lifecycle write ([`port::Lifecycle::apply_transition`](crate::port::Lifecycle::apply_transition));
//! a guard test fails if any other code calls it.
//!
//! Each operation reads the run, plans a [`Transition`] (which only legal
//! moves can produce), and writes it stating the status (and, for workers,
//! the attempt) it expects. When the write finds the run elsewhere, the
//! answer says so: completing a completed run is
//! [`Completion::AlreadyCompleted`], never a second transition or a second
//! notification.

use std::time::Duration;
use tracing::Instrument as _;

use tenantatlas_domain::catalog::OperationType;

use crate::port::{Actor, AuditEntry, NewEvent, RequeueCause, TransitionDetail, TransitionResult};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::{Capability, authorize_tenant};
use tenantatlas_domain::ids::{RunId, UserId};
use tenantatlas_domain::lifecycle::{LifecycleEvent, Outcome, RunState, RunStatus, Transition, TransitionRefused};
use tenantatlas_domain::progress::outcome_from_units;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::run::{Reconciliation, Run};
use tenantatlas_domain::timeline::RunEventKind;

use crate::error::{EngineError, Result};
use crate::{Engine, Initiator};

/// The answer to a completion.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// This call completed the run.
    Completed {
        /// The run as completed.
        run: Box<Run>,
        /// Users notified (once each).
        notified: Vec<UserId>,
    },
    /// It had completed already; nothing changed.
    AlreadyCompleted(Box<Run>),
    /// It is no longer under the attempt the caller holds (fenced).
    Fenced(Box<Run>),
}

/// The answer to a cancel.
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    /// A queued run was cancelled at once.
    Cancelled(Box<Run>),
    /// A running run was asked to stop; its worker completes it as
    /// cancelled at its next heartbeat.
    Requested(Box<Run>),
    /// It had completed already.
    AlreadyCompleted(Box<Run>),
}

/// How many times a write is re-planned when the run moved in between.
const REPLAN_LIMIT: usize = 8;

impl Engine {
    async fn fetch(&self, id: RunId) -> Result<Run> {
        self.store().get_run(id).await?.ok_or(EngineError::NotFound("run"))
    }

    /// Plans and applies `event` on run `id`, re-reading and re-planning
    /// when the run moved between read and write — unless fenced by
    /// `attempt`, or the fresh read no longer satisfies `guard`.
    #[expect(clippy::too_many_arguments, reason = "the one place every transition is planned")]
    async fn transition(
        &self,
        id: RunId,
        attempt: Option<u32>,
        worker: bool,
        event: LifecycleEvent,
        actor: Actor,
        guard: impl Fn(&Run, Timestamp) -> bool,
        judged: bool,
        detail: impl Fn(&Run, Timestamp) -> TransitionDetail,
        audit: Option<AuditEntry>,
    ) -> Result<Completion> {
        for _ in 0..REPLAN_LIMIT {
            let current = self.fetch(id).await?;
            if attempt.is_some_and(|a| a != current.attempt) || !guard(&current, self.now()) {
                return self.fenced(current, attempt.filter(|_| worker), event).await;
            }
            let transition = match Transition::plan(current.state, event) {
                Ok(t) => t,
                Err(TransitionRefused::AlreadyCompleted(_)) => {
                    return Ok(Completion::AlreadyCompleted(Box::new(current)));
                }
                Err(TransitionRefused::Illegal { from, event }) => {
                    if attempt.is_some() {
                        return self.fenced(current, attempt.filter(|_| worker), event).await;
                    }
                    return Err(EngineError::Refused(format!(
                        "{event:?} is not possible for a {from} run"
                    )));
                }
            };
            let now = self.now();
            let write = LifecycleWrite {
                run_id: id,
                transition,
                expected_attempt: attempt,
                judged: judged.then(|| Judged::of(&current)),
                at: now,
                actor,
                detail: detail(&current, now),
                audit: audit.clone(),
            };
            match self.store().apply_transition(&write).await? {
                TransitionResult::Applied {
                    run,
                    notified,
                    parents_completed,
                } => {
                    self.tally_ref().completed(&run);
                    self.tally_parents(&parents_completed).await;
                    tracing::info!(
                        run.id = %id,
                        status = run.state.status().as_str(),
                        outcome = run.state.outcome().map(|o| o.as_str()),
                        notified = notified.len(),
                        parents_completed = parents_completed.len(),
                        "run transition"
                    );
                    return Ok(Completion::Completed { run, notified });
                }
                TransitionResult::NotApplied { current: Some(now_run) } => match now_run.state {
                    RunState::Completed(_) => return Ok(Completion::AlreadyCompleted(now_run)),
                    _ if attempt.is_some_and(|a| a != now_run.attempt) => {
                        return self.fenced(*now_run, attempt.filter(|_| worker), event).await;
                    }
                    _ => continue,
                },
                TransitionResult::NotApplied { current: None } => {
                    return Err(EngineError::NotFound("run"));
                }
            }
        }
        Err(EngineError::Conflict("the run kept changing; try again".into()))
    }

    /// Answers a fenced write. A worker's write (`attempt` is given only
    /// for those) that arrives after its run was reconciled, cancelled or re-claimed
    /// is written on the timeline as "late result ignored".
    async fn fenced(&self, current: Run, attempt: Option<u32>, event: LifecycleEvent) -> Result<Completion> {
        if let Some(a) = attempt.filter(|a| *a != current.attempt || current.state.status() == RunStatus::Completed) {
            let write = match event {
                LifecycleEvent::Claim => "claim",
                LifecycleEvent::Requeue => "requeue",
                LifecycleEvent::Complete(_) => "complete",
            };
            self.store()
                .append_event(&NewEvent {
                    run_id: current.id,
                    kind: RunEventKind::LateResultIgnored,
                    actor_id: None,
                    attempt: Some(a),
                    detail: serde_json::json!({
                        "write": write,
                        "status": current.state.status().as_str(),
                        "current_attempt": current.attempt,
                    }),
                    at: self.now(),
                })
                .await?;
        }
        Ok(Completion::Fenced(Box::new(current)))
    }

    /// Claims a queued run for `worker` with a lease of `lease`. `None` when
    /// it is no longer queued.
    pub async fn claim(&self, id: RunId, worker: &str, lease: Duration) -> Result<Option<Run>> {
        let worker = worker.to_owned();
        match self
            .transition(
                id,
                None,
                false,
                LifecycleEvent::Claim,
                Actor::System,
                |_, _| true,
                false,
                |_, now| TransitionDetail::Claim {
                    lease_owner: worker.clone(),
                    lease_expires_at: now.plus(lease),
                },
                None,
            )
            .await
        {
            Ok(Completion::Completed { run, .. }) => {
                self.tally_ref().claimed(std::slice::from_ref(&run));
                Ok(Some(*run))
            }
            Ok(_) | Err(EngineError::Refused(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a running run back to the queue: a retryable failure (the
    /// attempt's failure is recorded on the timeline) or a release on
    /// shutdown. `false` when fenced.
    pub async fn requeue(
        &self,
        id: RunId,
        attempt: u32,
        available_at: Timestamp,
        failure: Option<Failure>,
        cause: RequeueCause,
    ) -> Result<bool> {
        let done = self
            .transition(
                id,
                Some(attempt),
                true,
                LifecycleEvent::Requeue,
                Actor::System,
                |_, _| true,
                false,
                |_, _| TransitionDetail::Requeue {
                    available_at,
                    failure: failure.clone(),
                    cause,
                },
                None,
            )
            .await?;
        Ok(matches!(done, Completion::Completed { .. }))
    }

    /// Completes a run with `outcome`. With `attempt`, only while the run is
    /// still under that attempt (a worker's completion); without, whatever
    /// attempt it is in.
    pub async fn complete(
        &self,
        id: RunId,
        attempt: Option<u32>,
        outcome: Outcome,
        reason: Option<ReasonCode>,
        failures: Vec<Failure>,
    ) -> Result<Completion> {
        self.transition(
            id,
            attempt,
            true,
            LifecycleEvent::Complete(outcome),
            Actor::System,
            |_, _| true,
            false,
            |_, _| TransitionDetail::Complete {
                reason_code: reason,
                failures: failures.clone(),
                reconciliation: None,
                plan_total: None,
            },
            None,
        )
        .await
    }

    /// Completes a counted run with the outcome its units earned (law 4):
    /// all fine → succeeded, none → failed, otherwise partially succeeded.
    pub async fn complete_from_units(&self, id: RunId, attempt: u32) -> Result<Completion> {
        let run = self.fetch(id).await?;
        let outcome = outcome_from_units(&run.units);
        let (reason, failures) = if outcome == Outcome::Succeeded {
            (None, Vec::new())
        } else {
            let failed = self.store().run_units(id, false, 10_000).await?;
            let mut failures: Vec<Failure> = failed
                .iter()
                .filter_map(|u| {
                    let code = u.reason_code?;
                    Some(Failure::new(
                        code,
                        &format!("{}: {}", u.unit_key, u.message.as_ref().map_or("", |m| m.as_str())),
                    ))
                })
                .take(10)
                .collect();
            if failures.is_empty() {
                failures.push(Failure::from_code(ReasonCode::UnitFailed));
            }
            (Some(ReasonCode::UnitFailed), failures)
        };
        self.complete(id, Some(attempt), outcome, reason, failures).await
    }

    /// Completes a run as blocked: a precondition failed, nothing changed.
    pub async fn block(&self, id: RunId, attempt: Option<u32>, message: &str) -> Result<Completion> {
        self.complete(
            id,
            attempt,
            Outcome::Blocked,
            Some(ReasonCode::RunBlockedPrecondition),
            vec![Failure::new(ReasonCode::RunBlockedPrecondition, message)],
        )
        .await
    }

    /// Completes a stale run (law 7) as failed with `run.stale_reconciled`
    /// — or, when someone had asked to cancel it, as cancelled — keeping its
    /// lineage. [`Completion::Fenced`] when, on a fresh read, it is no
    /// longer in the status and attempt it was seen in, or may no longer be
    /// reconciled.
    pub async fn reconcile(&self, id: RunId, seen: &Run) -> Result<Completion> {
        let previous_status = seen.state.status();
        let last_heartbeat_at = seen.heartbeat_at;
        let thresholds = self.thresholds();
        let cancelled = seen.cancel_requested_at.is_some();
        let (outcome, reason) = if cancelled {
            (Outcome::Cancelled, ReasonCode::RunCancelled)
        } else {
            (Outcome::Failed, ReasonCode::RunStaleReconciled)
        };
        self.transition(
            id,
            Some(seen.attempt),
            false,
            LifecycleEvent::Complete(outcome),
            Actor::System,
            |fresh, now| {
                fresh.state.status() == previous_status
                    && tenantatlas_domain::problem::reconcilable(fresh, now, &thresholds)
            },
            // the write applies only if no heartbeat or progress landed
            // since the read it was judged on
            true,
            |_, now| TransitionDetail::Complete {
                reason_code: Some(reason),
                failures: vec![Failure::from_code(reason)],
                reconciliation: Some(Reconciliation {
                    previous_status,
                    last_heartbeat_at,
                    reconciled_at: now,
                }),
                plan_total: None,
            },
            None,
        )
        .await
    }

    /// Gives a running run whose lease lapsed (its node died) its next
    /// attempt (law 7): back to the queue at once, its finished units kept,
    /// `released` on its timeline. [`Completion::Fenced`] when, on a fresh
    /// read, it is no longer in the attempt it was seen in, may no longer
    /// be reconciled, or a heartbeat or progress landed since the read it
    /// was judged on. The caller decides that it may resume
    /// ([`tenantatlas_domain::problem::resumes`]).
    pub async fn resume_lapsed(&self, id: RunId, seen: &Run) -> Result<Completion> {
        let thresholds = self.thresholds();
        self.transition(
            id,
            Some(seen.attempt),
            false,
            LifecycleEvent::Requeue,
            Actor::System,
            |fresh, now| {
                fresh.state == RunState::Running
                    && fresh.cancel_requested_at.is_none()
                    && tenantatlas_domain::problem::reconcilable(fresh, now, &thresholds)
            },
            true,
            |_, now| TransitionDetail::Requeue {
                available_at: now,
                failure: None,
                cause: RequeueCause::LeaseLapsed,
            },
            None,
        )
        .await
    }

    /// Reconciles an active run now, whatever its lease says (system-plane
    /// triage by a platform operator, who the caller audits): completed as
    /// failed with `run.stale_reconciled` and its lineage; its failure says
    /// that an operator ended it, and why (`reason`, required).
    pub async fn reconcile_now(&self, id: RunId, operator: UserId, reason: &str) -> Result<Completion> {
        let reason = tenantatlas_domain::names::printable_text("reason", reason, 500)?;
        let message = format!("A platform operator reconciled it: {reason}");
        let last_heartbeat_at = self.fetch(id).await?.heartbeat_at;
        self.transition(
            id,
            None,
            false,
            LifecycleEvent::Complete(Outcome::Failed),
            Actor::User(operator),
            |fresh, _| fresh.state.status() != RunStatus::Completed,
            false,
            |fresh, now| TransitionDetail::Complete {
                reason_code: Some(ReasonCode::RunStaleReconciled),
                failures: vec![Failure::new(ReasonCode::RunStaleReconciled, &message)],
                reconciliation: Some(Reconciliation {
                    previous_status: fresh.state.status(),
                    last_heartbeat_at: fresh.heartbeat_at.or(last_heartbeat_at),
                    reconciled_at: now,
                }),
                plan_total: None,
            },
            None,
        )
        .await
    }

    /// Cancels a run on behalf of `who` (users need `runs.cancel` on its
    /// tenant). Queued runs are cancelled at once; running runs are asked to
    /// stop and their worker completes them.
    pub async fn cancel(&self, who: Initiator, id: RunId) -> Result<CancelOutcome> {
        let run = self.fetch(id).await?;
        let actor = match who {
            Initiator::System => Actor::Cli,
            Initiator::User(user) => {
                let (Some(ws), Some(tenant)) = (run.workspace_id, run.tenant_id) else {
                    return Err(EngineError::NotFound("run"));
                };
                let membership = self.store().membership(user, ws).await?;
                // Seeing the run needs runs.view; cancelling needs runs.cancel.
                authorize_tenant(membership.as_ref(), ws, tenant, Capability::ViewRuns)
                    .map_err(|d| EngineError::denied(d, "run"))?;
                authorize_tenant(membership.as_ref(), ws, tenant, Capability::CancelRuns)
                    .map_err(|d| EngineError::denied(d, "run"))?;
                Actor::User(user)
            }
        };
        let audit = |now: Timestamp| AuditEntry {
            at: now,
            actor,
            workspace_id: run.workspace_id,
            tenant_id: run.tenant_id,
            action: "run.cancel".into(),
            target_type: Some("run".into()),
            target_id: Some(id.to_string()),
            detail: serde_json::json!({ "type": run.op_type.as_str() }),
        };
        for _ in 0..REPLAN_LIMIT {
            let current = self.fetch(id).await?;
            match current.state {
                RunState::Completed(_) => {
                    return Ok(CancelOutcome::AlreadyCompleted(Box::new(current)));
                }
                RunState::Running => {
                    let now = self.now();
                    if self.store().request_cancel(id, actor, Some(&audit(now)), now).await? {
                        return Ok(CancelOutcome::Requested(Box::new(self.fetch(id).await?)));
                    }
                }
                RunState::Queued => {
                    let now = self.now();
                    let done = self
                        .transition(
                            id,
                            Some(current.attempt),
                            false,
                            LifecycleEvent::Complete(Outcome::Cancelled),
                            actor,
                            |fresh, _| fresh.state == RunState::Queued,
                            false,
                            |_, _| TransitionDetail::Complete {
                                reason_code: Some(ReasonCode::RunCancelled),
                                failures: Vec::new(),
                                reconciliation: None,
                                plan_total: None,
                            },
                            Some(audit(now)),
                        )
                        .await?;
                    match done {
                        Completion::Completed { run, .. } => {
                            return Ok(CancelOutcome::Cancelled(run));
                        }
                        Completion::AlreadyCompleted(run) => {
                            return Ok(CancelOutcome::AlreadyCompleted(run));
                        }
                        Completion::Fenced(_) => {}
                    }
                }
            }
        }
        Err(EngineError::Conflict("the run kept changing; try again".into()))
    }
}

/// Group commit for worker completions: completions from many runs are
/// written together through the store's one completion statement family,
/// each still fenced by its own attempt. Several batches may be in flight
/// at once (on PostgreSQL each takes its own connection), so that a
/// batch's round trips overlap the next batch's collection.
#[derive(Clone, Debug)]
pub(crate) struct Completer {
    tx: tokio::sync::mpsc::Sender<CompleteJob>,
}

struct CompleteJob {
    write: LifecycleWrite,
    reply: tokio::sync::oneshot::Sender<Result<TransitionResult>>,
}

impl std::fmt::Debug for CompleteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompleteJob")
    }
}

/// How long the first completion of a batch waits for company.
const COMPLETION_LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Writes one batch of completions; if the batch fails as a whole, each
/// is retried alone so that one bad write cannot fail its neighbours.
async fn write_completions(store: &crate::port::Store, jobs: Vec<CompleteJob>) {
    let writes: Vec<LifecycleWrite> = jobs.iter().map(|j| j.write.clone()).collect();
    let began = std::time::Instant::now();
    let span = tracing::debug_span!("complete", runs = writes.len());
    match store.complete_many(&writes).instrument(span).await {
        Ok(results) => {
            tracing::debug!(
                runs = writes.len(),
                ms = began.elapsed().as_secs_f64() * 1e3,
                "completion batch written"
            );
            for (job, r) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(Ok(r));
            }
        }
        Err(first_err) => {
            tracing::warn!(error = %first_err, size = jobs.len(), "batch completion failed; retrying one by one");
            for job in jobs {
                let one = store
                    .complete_many(std::slice::from_ref(&job.write))
                    .await
                    .map_err(EngineError::from)
                    .and_then(|mut v| {
                        v.pop()
                            .ok_or_else(|| EngineError::Internal("completion answered nothing".into()))
                    });
                let _ = job.reply.send(one);
            }
        }
    }
}

impl Completer {
    pub(crate) fn spawn(store: crate::port::Store, max_batch: usize, in_flight: usize) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<CompleteJob>(max_batch.max(1) * 4);
        tokio::spawn(async move {
            let max = max_batch.max(1);
            let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
            while let Some(first) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                // Completions come in bursts (a claimed batch finishes
                // together): a moment's wait lets the burst share a commit
                // instead of the first of it taking one alone.
                if rx.is_empty() {
                    tokio::time::sleep(COMPLETION_LINGER).await;
                }
                // take everything that arrived meanwhile
                let mut jobs = vec![first];
                while jobs.len() < max {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                tokio::spawn(async move {
                    write_completions(&store, jobs).await;
                    drop(permit);
                });
            }
        });
        Self { tx }
    }

    async fn submit(&self, write: LifecycleWrite) -> Result<TransitionResult> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(CompleteJob { write, reply })
            .await
            .map_err(|_| EngineError::Internal("the completion collector stopped".into()))?;
        answer
            .await
            .map_err(|_| EngineError::Internal("the completion collector dropped a write".into()))?
    }
}

impl Engine {
    /// Claims up to `limit` due queued runs of `types` for `owner`, each
    /// with a lease until `now + lease` (law 1: queued → running).
    pub async fn claim_due(
        &self,
        owner: &str,
        types: &[OperationType],
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Run>> {
        let transition = Transition::plan(RunState::Queued, LifecycleEvent::Claim)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let now = self.now();
        let runs = self
            .store()
            .claim_due(&ClaimRequest {
                transition,
                owner: owner.to_owned(),
                types: types.to_vec(),
                limit,
                lease_until: now.plus(lease),
                now,
            })
            .await?;
        self.tally_ref().claimed(&runs);
        Ok(runs)
    }

    /// Counts fan-out parents that a child's completion completed (the
    /// store names them; their type and outcome are read back).
    async fn tally_parents(&self, parents: &[RunId]) {
        for id in parents {
            match self.store().get_run(*id).await {
                Ok(Some(p)) => self.tally_ref().completed(&p),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(run.id = %id, error = %e, "a completed parent could not be read for the metrics")
                }
            }
        }
    }

    /// Puts back in the queue the runs that earlier incarnations of `node`
    /// left running (its process died): they resume on their next attempt,
    /// skipping the units they finished.
    pub async fn release_orphans(&self, node: &str, keep_owner: &str) -> Result<Vec<Run>> {
        let transition = Transition::plan(RunState::Running, LifecycleEvent::Requeue)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(self
            .store()
            .release_orphans(&ReleaseRequest {
                transition,
                node: node.to_owned(),
                keep_owner: keep_owner.to_owned(),
                now: self.now(),
            })
            .await?)
    }

    /// Completes the attempt a worker holds on `run` (as it claimed it),
    /// through the completion group commit. [`Completion::Fenced`] when the
    /// run was reconciled, cancelled or re-claimed meanwhile — then the
    /// timeline records the late result.
    pub async fn finish_attempt(
        &self,
        run: &Run,
        outcome: Outcome,
        reason: Option<ReasonCode>,
        failures: Vec<Failure>,
        plan_total: Option<u64>,
    ) -> Result<Completion> {
        let transition = Transition::plan(RunState::Running, LifecycleEvent::Complete(outcome))
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let write = LifecycleWrite {
            run_id: run.id,
            transition,
            expected_attempt: Some(run.attempt),
            judged: None,
            at: self.now(),
            actor: Actor::System,
            detail: TransitionDetail::Complete {
                reason_code: reason,
                failures,
                reconciliation: None,
                plan_total,
            },
            audit: None,
        };
        match self.inner.completer.submit(write).await? {
            TransitionResult::Applied {
                run,
                notified,
                parents_completed,
            } => {
                self.tally_ref().completed(&run);
                self.tally_parents(&parents_completed).await;
                Ok(Completion::Completed { run, notified })
            }
            TransitionResult::NotApplied { current: Some(c) } => {
                self.fenced(*c, Some(run.attempt), LifecycleEvent::Complete(outcome))
                    .await
            }
            TransitionResult::NotApplied { current: None } => Err(EngineError::NotFound("run")),
        }
    }
}

// --- law 1 by types: the commands of the store's lifecycle write family.
// Their fields are private to this module, so nothing but this module can
// build one; a store reads them through the accessors.

/// One lifecycle write (law 1): the only way status or outcome change.
#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleWrite {
    run_id: RunId,
    transition: Transition,
    expected_attempt: Option<u32>,
    judged: Option<Judged>,
    at: Timestamp,
    actor: Actor,
    detail: TransitionDetail,
    audit: Option<AuditEntry>,
}

impl LifecycleWrite {
    /// The run.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The planned transition; the write applies only while the run is
    /// still in `transition.from()`.
    pub fn transition(&self) -> Transition {
        self.transition
    }

    /// Fencing: the write applies only while the run's attempt is this.
    pub fn expected_attempt(&self) -> Option<u32> {
        self.expected_attempt
    }

    /// A reconciliation's guard: the write applies only while the run's
    /// liveness is what the staleness was judged on.
    pub fn judged(&self) -> Option<Judged> {
        self.judged
    }

    /// When.
    pub fn at(&self) -> Timestamp {
        self.at
    }

    /// Who caused it (timeline).
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The rest.
    pub fn detail(&self) -> &TransitionDetail {
        &self.detail
    }

    /// An audit entry written in the same transaction when it applies.
    pub fn audit(&self) -> Option<&AuditEntry> {
        self.audit.as_ref()
    }
}

/// What a run's staleness was judged on (law 7): a heartbeat or a unit of
/// progress landing after the judgment changes one of these, and the
/// reconciling write no longer applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judged {
    /// The last heartbeat seen.
    pub heartbeat_at: Option<Timestamp>,
    /// The progress deadline seen.
    pub progress_stale_at: Option<Timestamp>,
}

impl Judged {
    fn of(run: &Run) -> Self {
        Self {
            heartbeat_at: run.heartbeat_at,
            progress_stale_at: run.progress_stale_at,
        }
    }
}

/// A worker's request for due queued runs (law 1: a batch claim).
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimRequest {
    transition: Transition,
    owner: String,
    types: Vec<OperationType>,
    limit: u32,
    lease_until: Timestamp,
    now: Timestamp,
}

impl ClaimRequest {
    /// The planned transition, queued → running.
    pub fn transition(&self) -> Transition {
        self.transition
    }

    /// The claiming worker (`node/incarnation`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Only runs of these types (the ones the worker can execute).
    pub fn types(&self) -> &[OperationType] {
        &self.types
    }

    /// At most this many.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The lease each claimed run gets.
    pub fn lease_until(&self) -> Timestamp {
        self.lease_until
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}

/// Requeueing the runs a crashed incarnation of a node left running.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseRequest {
    transition: Transition,
    node: String,
    keep_owner: String,
    now: Timestamp,
}

impl ReleaseRequest {
    /// The planned transition, running → queued.
    pub fn transition(&self) -> Transition {
        self.transition
    }

    /// The node name: runs leased to `node/…` are its.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The current incarnation's owner id, whose runs are kept.
    pub fn keep_owner(&self) -> &str {
        &self.keep_owner
    }

    /// Now (the runs are due again at once).
    pub fn now(&self) -> Timestamp {
        self.now
    }
}
