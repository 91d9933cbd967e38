//! Law 7 — stale runs are reconciled, visibly.
//!
//! A sweep looks at every run the reconciler may act on (queued past its
//! threshold, running past its lease; see
//! [`tenantatlas_domain::problem::reconcilable`]). A running run whose
//! lease lapsed — its node died — goes back to the queue as its next
//! attempt when its type is resumable and attempts remain
//! ([`tenantatlas_domain::problem::resumes`]); its finished units are kept
//! and its timeline says `released`. Every other candidate is completed as
//! failed with `run.stale_reconciled` — or as cancelled when a cancel had
//! been asked — with its lineage. Each write re-checks the run on a fresh
//! read and is conditioned on the liveness it was judged on, so a run that
//! moved on meanwhile is left alone.
//!
//! The sweep also refreshes the adaptive running thresholds from the recent
//! successful runs of each type
//! ([`tenantatlas_domain::problem::adaptive_running_max`]).

use serde::Serialize;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::{Outcome, RunStatus};
use tenantatlas_domain::problem::{adaptive_running_max, resumes};

use crate::{Completion, Engine, Result};

/// Successful runs per type the adaptive threshold learns from.
const SAMPLE: u32 = 200;
/// Runs looked at per sweep.
const SWEEP_LIMIT: u32 = 1_000;

/// One run a sweep reconciled (or, in a dry run, would reconcile).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReconciledRun {
    /// The run.
    pub run_id: RunId,
    /// Its type.
    #[serde(rename = "type")]
    pub op_type: OperationType,
    /// The status it was stuck in.
    pub previous_status: RunStatus,
    /// How it was (or would be) completed.
    pub outcome: Outcome,
}

/// One run a sweep gave its next attempt (or, in a dry run, would).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResumedRun {
    /// The run.
    pub run_id: RunId,
    /// Its type.
    #[serde(rename = "type")]
    pub op_type: OperationType,
    /// The attempt its dead node held.
    pub lost_attempt: u32,
    /// The lease owner that stopped renewing it.
    pub lease_owner: Option<String>,
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Runs completed (or that would be).
    pub reconciled: Vec<ReconciledRun>,
    /// Runs sent back to the queue for their next attempt (or that would
    /// be).
    pub resumed: Vec<ResumedRun>,
    /// Candidates that moved on before they could be completed.
    pub skipped: usize,
}

impl Engine {
    /// One reconciler sweep. With `dry_run`, reports what it would do.
    pub async fn reconcile_sweep(&self, dry_run: bool) -> Result<SweepReport> {
        let mut report = SweepReport {
            dry_run,
            ..SweepReport::default()
        };
        let candidates = self
            .store()
            .reconcilable(self.now(), &self.thresholds(), SWEEP_LIMIT)
            .await?;
        for run in candidates {
            if resumes(&run, self.config().catalog.spec(run.op_type)) {
                let entry = ResumedRun {
                    run_id: run.id,
                    op_type: run.op_type,
                    lost_attempt: run.attempt,
                    lease_owner: run.lease.as_ref().map(|l| l.owner.clone()),
                };
                if dry_run {
                    report.resumed.push(entry);
                    continue;
                }
                match self.resume_lapsed(run.id, &run).await? {
                    Completion::Completed { .. } => {
                        tracing::info!(run.id = %run.id, attempt = run.attempt, "resumed a run whose node stopped renewing its lease");
                        report.resumed.push(entry);
                    }
                    Completion::AlreadyCompleted(_) | Completion::Fenced(_) => report.skipped += 1,
                }
                continue;
            }
            let outcome = if run.cancel_requested_at.is_some() {
                Outcome::Cancelled
            } else {
                Outcome::Failed
            };
            let entry = ReconciledRun {
                run_id: run.id,
                op_type: run.op_type,
                previous_status: run.state.status(),
                outcome,
            };
            if dry_run {
                report.reconciled.push(entry);
                continue;
            }
            match self.reconcile(run.id, &run).await? {
                Completion::Completed { .. } => {
                    tracing::info!(run.id = %run.id, previous = entry.previous_status.as_str(), "reconciled a stale run");
                    report.reconciled.push(entry);
                }
                Completion::AlreadyCompleted(_) | Completion::Fenced(_) => report.skipped += 1,
            }
        }
        Ok(report)
    }

    /// Learns each type's running threshold from its recent successful
    /// runs.
    pub async fn refresh_thresholds(&self) -> Result<()> {
        let mut t = self.thresholds();
        for spec in self.config().catalog.iter() {
            let durations = self.store().recent_durations(spec.op, SAMPLE).await?;
            t = t.with_running_max(spec.op, adaptive_running_max(spec.stale.running_floor, &durations));
        }
        self.set_thresholds(t);
        Ok(())
    }
}
