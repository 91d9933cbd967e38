//! The run record: everything storage knows about one operation run, as
//! every surface reads it. Reading a run changes nothing; state changes are
//! [`crate::lifecycle::Transition`]s applied by the engine.

use crate::catalog::OperationType;
use crate::counts::SummaryCounts;
use crate::ids::{RunId, TenantId, UserId, WorkspaceId};
use crate::lifecycle::{RunState, RunStatus};
use crate::params::Params;
use crate::progress::UnitOutcome;
use crate::reason::{Failure, ReasonCode};
use crate::sanitize::SafeText;
use crate::timestamp::Timestamp;

/// A worker's claim on a running run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Which worker holds it.
    pub owner: String,
    /// When it lapses unless extended by a heartbeat.
    pub expires_at: Timestamp,
}

/// The unit ledger's tallies (law 4). `total` is set once, when units are
/// planned; the other fields rise by one per unit reaching a terminal state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitTally {
    /// Planned units; `None` until planned.
    pub total: Option<u64>,
    /// Units that reached a terminal state.
    pub processed: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    /// Of those, partially succeeded (child runs).
    pub partial: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Of those, skipped.
    pub skipped: u64,
}

/// Phase progress of a multi-phase run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseProgress {
    /// The current phase, from 1.
    pub phase: u32,
    /// How many phases there are.
    pub phases: u32,
    /// What the current phase does.
    pub label: String,
}

/// How a stale run was reconciled (law 7): kept so every surface can say
/// "reconciled" rather than just "failed".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// The status it had when reconciled.
    pub previous_status: RunStatus,
    /// Its last heartbeat, if it ever had one.
    pub last_heartbeat_at: Option<Timestamp>,
    /// When it was reconciled.
    pub reconciled_at: Timestamp,
}

/// Who claimed a run's current (or, once completed, last) attempt, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The worker (lease owner) that claimed it.
    pub worker: String,
    /// When.
    pub at: Timestamp,
}

/// One operation run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// Its workspace (`None` for system-scope runs).
    pub workspace_id: Option<WorkspaceId>,
    /// Its tenant (`None` for system-scope runs).
    pub tenant_id: Option<TenantId>,
    /// Its type.
    pub op_type: OperationType,
    /// Its identity key (law 2); `None` for runs that never dedupe.
    pub identity_key: Option<String>,
    /// Its validated parameters.
    pub params: Params,
    /// Status and outcome.
    pub state: RunState,
    /// The user who started it; `None` when system-initiated.
    pub initiator: Option<UserId>,
    /// Its parent, when fanned out.
    pub parent_id: Option<RunId>,
    /// How many times it has been claimed (the attempt epoch).
    pub attempt: u32,
    /// The current lease, while running.
    pub lease: Option<Lease>,
    /// The claim of the current attempt (kept once completed; a retry or
    /// release records it in the timeline and the next claim replaces it).
    pub claim: Option<Claim>,
    /// The last heartbeat.
    pub heartbeat_at: Option<Timestamp>,
    /// When it may next be claimed.
    pub available_at: Timestamp,
    /// The unit ledger's tallies.
    pub units: UnitTally,
    /// Phase progress, for phased runs.
    pub phase: Option<PhaseProgress>,
    /// Counts reported by its handler.
    pub counts: SummaryCounts,
    /// Its failures.
    pub failures: Vec<Failure>,
    /// The reason code of its outcome, when not plain success.
    pub reason_code: Option<ReasonCode>,
    /// Reconciliation lineage, when reconciled.
    pub reconciliation: Option<Reconciliation>,
    /// When a cancel was requested.
    pub cancel_requested_at: Option<Timestamp>,
    /// When a unit last reached a terminal state.
    pub last_progress_at: Option<Timestamp>,
    /// When a counted run that is still working becomes likely stale for
    /// lack of unit progress (see [`crate::problem::progress_deadline`]).
    pub progress_stale_at: Option<Timestamp>,
    /// When created.
    pub created_at: Timestamp,
    /// When first claimed.
    pub started_at: Option<Timestamp>,
    /// When completed.
    pub completed_at: Option<Timestamp>,
}

/// A unit ledger row.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitRecord {
    /// Key.
    pub unit_key: String,
    /// `None` while pending.
    pub outcome: Option<UnitOutcome>,
    /// Reason of a failure.
    pub reason_code: Option<ReasonCode>,
    /// Sanitized message of a failure.
    pub message: Option<SafeText>,
    /// The child run, for fan-out units.
    pub child_run_id: Option<RunId>,
    /// Last change.
    pub updated_at: Timestamp,
}
