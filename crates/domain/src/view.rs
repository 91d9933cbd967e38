//! The public JSON shape of a run (CONTRACT.md "JSON: a run"), shared by the
//! command line and the HTTP API so both print exactly the same document.

use serde::Serialize;

use crate::catalog::OperationType;
use crate::counts::{SummaryCounts, SummaryKey};
use crate::ids::{RunId, TenantId, UserId, WorkspaceId};
use crate::lifecycle::{Outcome, RunState, RunStatus, StatusBucket};
use crate::notify::run_view_url;
use crate::params::Params;
use crate::problem::{ProblemClass, Thresholds, classify};
use crate::progress::{Progress, progress_of};
use crate::reason::{Failure, ReasonCode};
use crate::run::Run;
use crate::sanitize::SafeText;
use crate::timestamp::Timestamp;

/// Progress as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ProgressView {
    /// `{"mode": "counted", "processed": 3, "total": 10, "eta_s": 12.0}`
    Counted {
        /// Units in a terminal state.
        processed: u64,
        /// Planned units.
        total: u64,
        /// Estimated seconds to finish, from the recent unit rate.
        eta_s: Option<f64>,
    },
    /// `{"mode": "phased", "phase": 2, "phases": 3, "label": "…"}`
    Phased {
        /// Current phase.
        phase: u32,
        /// Number of phases.
        phases: u32,
        /// What this phase does.
        label: String,
    },
    /// `{"mode": "indeterminate", "elapsed_s": 12.5}`
    Indeterminate {
        /// Seconds elapsed, to a tenth.
        elapsed_s: f64,
    },
}

impl ProgressView {
    /// The progress of `run` at `now`, as JSON.
    pub fn of(run: &Run, now: Timestamp) -> Self {
        match progress_of(run, now) {
            Progress::Counted { processed, total } => ProgressView::Counted {
                processed,
                total,
                eta_s: crate::progress::eta(run, now).map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
            },
            Progress::Phased { phase, phases, label } => ProgressView::Phased { phase, phases, label },
            Progress::Indeterminate { elapsed } => ProgressView::Indeterminate {
                elapsed_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            },
        }
    }
}

/// A failure as JSON, with the catalog's next step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureView {
    /// The stable code.
    pub reason_code: ReasonCode,
    /// The sanitized message.
    pub message: SafeText,
    /// What to do next.
    pub next_step: &'static str,
}

impl From<&Failure> for FailureView {
    fn from(f: &Failure) -> Self {
        Self {
            reason_code: f.reason_code,
            message: f.message.clone(),
            next_step: f.reason_code.info().next_step,
        }
    }
}

/// Reconciliation lineage as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReconciliationView {
    /// Status when reconciled.
    pub previous_status: RunStatus,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<Timestamp>,
    /// When reconciled.
    pub reconciled_at: Timestamp,
}

/// A run as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunView {
    /// Id.
    pub id: RunId,
    /// Workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant.
    pub tenant_id: Option<TenantId>,
    /// Operation type.
    #[serde(rename = "type")]
    pub op_type: OperationType,
    /// What people read.
    pub label: &'static str,
    /// Lifecycle status.
    pub status: RunStatus,
    /// Outcome, once completed.
    pub outcome: Option<Outcome>,
    /// Status bucket.
    pub bucket: StatusBucket,
    /// Problem class now.
    pub problem_class: ProblemClass,
    /// Who started it.
    pub initiator: Option<UserId>,
    /// Progress.
    pub progress: ProgressView,
    /// Summary counts (unit ledger and reported counts).
    pub summary_counts: SummaryCounts,
    /// Failures.
    pub failures: Vec<FailureView>,
    /// Reason code of the outcome.
    pub reason_code: Option<ReasonCode>,
    /// Created.
    pub created_at: Timestamp,
    /// Started.
    pub started_at: Option<Timestamp>,
    /// Completed.
    pub completed_at: Option<Timestamp>,
    /// Parent run.
    pub parent_id: Option<RunId>,
    /// Attempt (claims so far).
    pub attempt: u32,
    /// Parameters.
    pub params: Params,
    /// Reconciliation lineage.
    pub reconciliation: Option<ReconciliationView>,
    /// Link to the run detail.
    pub view_url: String,
}

impl RunView {
    /// The run's status word ([`RunState::word`]).
    pub fn word(&self) -> &'static str {
        match self.outcome {
            Some(o) => RunState::Completed(o).word(),
            None if self.status == RunStatus::Running => RunState::Running.word(),
            None => RunState::Queued.word(),
        }
    }

    /// Builds the view of `run` at `now`.
    pub fn of(run: &Run, now: Timestamp, thresholds: &Thresholds) -> Self {
        let mut counts = run.counts.clone();
        if let Some(total) = run.units.total {
            let u = &run.units;
            counts.set(SummaryKey::Total, total);
            counts.set(SummaryKey::Processed, u.processed.min(total));
            counts.set(SummaryKey::Succeeded, u.succeeded);
            if u.failed > 0 {
                counts.set(SummaryKey::Failed, u.failed);
            }
            if u.partial > 0 {
                counts.set(SummaryKey::Partial, u.partial);
            }
            if u.skipped > 0 {
                counts.set(SummaryKey::Skipped, u.skipped);
            }
        }
        Self {
            id: run.id,
            workspace_id: run.workspace_id,
            tenant_id: run.tenant_id,
            op_type: run.op_type,
            label: run.op_type.label(),
            status: run.state.status(),
            outcome: run.state.outcome(),
            bucket: run.state.bucket(),
            problem_class: classify(run, now, thresholds),
            initiator: run.initiator,
            progress: ProgressView::of(run, now),
            summary_counts: counts,
            failures: run.failures.iter().map(FailureView::from).collect(),
            reason_code: run.reason_code,
            created_at: run.created_at,
            started_at: run.started_at,
            completed_at: run.completed_at,
            parent_id: run.parent_id,
            attempt: run.attempt,
            params: run.params.clone(),
            reconciliation: run.reconciliation.as_ref().map(|r| ReconciliationView {
                previous_status: r.previous_status,
                last_heartbeat_at: r.last_heartbeat_at,
                reconciled_at: r.reconciled_at,
            }),
            view_url: run_view_url(run.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::RunState;
    use crate::problem::tests::run_at;
    use crate::run::UnitTally;
    use serde_json::json;
    use std::time::Duration;

    const T0: Timestamp = Timestamp::from_unix_micros(1_800_000_000_000_000);

    #[test]
    fn contract_shape_of_a_counted_completed_run() {
        let mut r = run_at(RunState::Completed(Outcome::PartiallySucceeded), T0);
        r.started_at = Some(T0);
        r.completed_at = Some(T0.plus(Duration::from_secs(3)));
        r.units = UnitTally {
            total: Some(10),
            processed: 10,
            succeeded: 7,
            failed: 3,
            ..UnitTally::default()
        };
        r.failures = vec![Failure::new(
            ReasonCode::UnitFailed,
            "3 items failed for bob@example.com",
        )];
        r.reason_code = Some(ReasonCode::UnitFailed);
        let v = serde_json::to_value(RunView::of(&r, T0, &Thresholds::default())).unwrap();
        for key in [
            "id",
            "workspace_id",
            "tenant_id",
            "type",
            "status",
            "outcome",
            "bucket",
            "problem_class",
            "initiator",
            "progress",
            "summary_counts",
            "failures",
            "reason_code",
            "created_at",
            "started_at",
            "completed_at",
            "parent_id",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["type"], "synthetic");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["outcome"], "partially_succeeded");
        assert_eq!(v["bucket"], "partial");
        assert_eq!(v["problem_class"], "needs_follow_up");
        assert_eq!(
            v["progress"],
            json!({"mode": "counted", "processed": 10, "total": 10, "eta_s": null})
        );
        assert_eq!(
            v["summary_counts"],
            json!({"total": 10, "processed": 10, "succeeded": 7, "failed": 3})
        );
        assert_eq!(v["failures"][0]["reason_code"], "unit.failed");
        assert!(!v["failures"][0]["message"].as_str().unwrap().contains("bob@"));
        assert!(v["failures"][0]["next_step"].as_str().unwrap().len() > 10);
        assert_eq!(v["created_at"], "2027-01-15T08:00:00Z");
        assert_eq!(v["view_url"], format!("/admin/operations/{}", r.id));
    }

    #[test]
    fn indeterminate_and_phased_shapes() {
        let mut r = run_at(RunState::Running, T0);
        r.started_at = Some(T0);
        let v = serde_json::to_value(RunView::of(
            &r,
            T0.plus(Duration::from_millis(12_540)),
            &Thresholds::default(),
        ))
        .unwrap();
        assert_eq!(v["progress"], json!({"mode": "indeterminate", "elapsed_s": 12.5}));
        assert_eq!(v["outcome"], serde_json::Value::Null);
        r.phase = Some(crate::run::PhaseProgress {
            phase: 2,
            phases: 3,
            label: "Comparing".into(),
        });
        let v = serde_json::to_value(RunView::of(&r, T0, &Thresholds::default())).unwrap();
        assert_eq!(
            v["progress"],
            json!({"mode": "phased", "phase": 2, "phases": 3, "label": "Comparing"})
        );
    }
}
