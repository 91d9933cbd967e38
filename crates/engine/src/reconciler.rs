//! Law 7 — stale runs are reconciled, visibly.
//!
//! A sweep completes every run the reconciler may complete (queued past its
//! threshold, running past its lease; see
//! [`tenantatlas_domain::problem::reconcilable`]) as failed with
//! `run.stale_reconciled` — or as cancelled when a cancel had been asked —
//! with its lineage. Each completion re-checks the run on a fresh read, so a
//! run that moved on meanwhile is left alone.
//!
//! The sweep also refreshes the adaptive running thresholds from the recent
//! successful runs of each type
//! ([`tenantatlas_domain::problem::adaptive_running_max`]).

use serde::Serialize;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::{Outcome, RunStatus};
use tenantatlas_domain::problem::adaptive_running_max;

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

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Runs completed (or that would be).
    pub reconciled: Vec<ReconciledRun>,
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
