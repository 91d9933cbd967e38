//! The values the store takes and returns. The nouns every layer shares
//! (entities, query vocabulary) live in `tenantatlas_domain` and are
//! re-exported here; what is left are the store's own commands and answers.

pub use tenantatlas_domain::directory::*;
pub use tenantatlas_domain::notify::Notification;
pub use tenantatlas_domain::query::*;
pub use tenantatlas_domain::run::UnitRecord;
pub use tenantatlas_domain::schedule::{NewSchedule, Schedule};
pub use tenantatlas_domain::timeline::{NewEvent, RunEvent};

use tenantatlas_domain::Timestamp;
use tenantatlas_domain::catalog::{IdentityKey, OperationType};
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_domain::ids::{RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::lifecycle::Transition;
use tenantatlas_domain::params::Params;
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::run::{Reconciliation, Run};

/// A run to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    /// Workspace (`None` for system scope).
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant (`None` for system scope).
    pub tenant_id: Option<TenantId>,
    /// Type.
    pub op_type: OperationType,
    /// Identity key (law 2).
    pub identity: IdentityKey,
    /// Validated parameters.
    pub params: Params,
    /// The starting user, subscribed to its completion; `None`: system.
    pub initiator: Option<UserId>,
    /// When it may first be claimed.
    pub available_at: Timestamp,
}

/// What a start produced for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRecord {
    /// The run created or joined.
    pub run: Run,
    /// Whether an active twin was joined instead of creating a run.
    pub joined: bool,
}

/// What a lifecycle write carries besides the transition.
#[derive(Clone, Debug, PartialEq)]
pub enum TransitionDetail {
    /// Claim: take a lease.
    Claim {
        /// The worker.
        lease_owner: String,
        /// Lease expiry.
        lease_expires_at: Timestamp,
    },
    /// Requeue after a retryable failure, or release on shutdown.
    Requeue {
        /// When it may be claimed again.
        available_at: Timestamp,
        /// The failure that caused it, if any (recorded on the timeline).
        failure: Option<Failure>,
        /// `true` for a release (shutdown), `false` for a retry.
        release: bool,
    },
    /// Completion.
    Complete {
        /// Why, when not plain success.
        reason_code: Option<ReasonCode>,
        /// Failures to record.
        failures: Vec<Failure>,
        /// Lineage when the reconciler completes a stale run.
        reconciliation: Option<Reconciliation>,
        /// Sets the run's total units when none were planned (a run that
        /// planned zero units completes at once without a separate write).
        plan_total: Option<u64>,
    },
}

/// One lifecycle write (law 1): the only way status or outcome change.
#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleWrite {
    /// The run.
    pub run_id: RunId,
    /// The planned transition; the write applies only while the run is
    /// still in `transition.from()`.
    pub transition: Transition,
    /// Fencing: the write applies only while the run's attempt is this.
    pub expected_attempt: Option<u32>,
    /// When.
    pub at: Timestamp,
    /// Who caused it (timeline).
    pub actor: Actor,
    /// The rest.
    pub detail: TransitionDetail,
    /// An audit entry written in the same transaction when it applies.
    pub audit: Option<AuditEntry>,
}

/// The answer to a lifecycle write.
#[derive(Clone, Debug, PartialEq)]
pub enum TransitionResult {
    /// Applied; the run as it is now.
    Applied {
        /// The run after the write.
        run: Box<Run>,
        /// Users notified by this completion.
        notified: Vec<UserId>,
        /// Parents completed as a consequence (law 11).
        parents_completed: Vec<RunId>,
    },
    /// No row changed: the run was not in the expected status or attempt.
    NotApplied {
        /// The run as it is (absent if it does not exist).
        current: Option<Box<Run>>,
    },
}

/// The result of one work unit.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitResult {
    /// The unit's key.
    pub unit_key: String,
    /// How it ended.
    pub outcome: UnitOutcome,
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
}

/// What a batch of unit results did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitsApplied {
    /// Applied: `counted` units reached a terminal state now; the rest were
    /// already terminal or unknown.
    Counted {
        /// Newly counted.
        counted: u64,
        /// Processed after the write.
        processed: u64,
        /// Planned total.
        total: Option<u64>,
    },
    /// The run is no longer running under that attempt; nothing changed
    /// but a timeline entry.
    Fenced,
}

/// What planning units did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanApplied {
    /// The total was set now.
    Planned {
        /// Units planned.
        total: u64,
    },
    /// Units were planned before (a resumed attempt): nothing changed.
    AlreadyPlanned {
        /// The total planned then.
        total: u64,
    },
    /// Not running under that attempt.
    Fenced,
}

/// Counts reported by a handler, added to the run's.
#[derive(Clone, Debug, PartialEq)]
pub struct CountsWrite {
    /// The run.
    pub run_id: RunId,
    /// Fencing attempt.
    pub attempt: u32,
    /// Counts to add.
    pub counts: SummaryCounts,
}

/// A worker's request for due queued runs (law 1: a batch claim).
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimRequest {
    /// The planned transition, queued → running.
    pub transition: Transition,
    /// The claiming worker (`node/incarnation`).
    pub owner: String,
    /// Only runs of these types (the ones this worker can execute).
    pub types: Vec<OperationType>,
    /// At most this many.
    pub limit: u32,
    /// The lease each claimed run gets.
    pub lease_until: Timestamp,
    /// Now.
    pub now: Timestamp,
}

/// Requeueing the runs a crashed incarnation of a node left running.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseRequest {
    /// The planned transition, running → queued.
    pub transition: Transition,
    /// The node name: runs leased to `node/…` are its.
    pub node: String,
    /// The current incarnation's owner id, whose runs are kept.
    pub keep_owner: String,
    /// Now (the runs are due again at once).
    pub now: Timestamp,
}

/// The answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatAck {
    /// The lease was extended.
    Extended {
        /// Someone asked to cancel the run.
        cancel_requested: bool,
    },
    /// The run is no longer running under this attempt.
    Fenced,
}

/// Firing one due schedule: applies only if its next fire time is still
/// `expected`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleFire {
    /// The schedule.
    pub schedule_id: uuid::Uuid,
    /// The fire time it was seen due with.
    pub expected: Timestamp,
    /// Its next fire time after this one.
    pub next: Timestamp,
    /// The system-initiated run to start (or join).
    pub run: NewRun,
    /// Now.
    pub now: Timestamp,
}

/// A server-side login session. The session id is never stored: `id_hash`
/// is the SHA-256 (hex) of the random value in the client's cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the session id.
    pub id_hash: String,
    /// Whose session.
    pub user: User,
    /// When it was opened (the absolute timeout counts from here).
    pub created_at: Timestamp,
    /// The last request it served (the inactivity timeout counts from here).
    pub last_seen_at: Timestamp,
}

/// An API token. Only its SHA-256 (hex) is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's name, for its owner.
    pub name: String,
    /// Whose token.
    pub user: User,
    /// When it was created.
    pub created_at: Timestamp,
}

/// The figures of `/metrics` that are about now, read from the database
/// (so every node reports the same truth) through the index of active
/// runs: a scrape never reads the ledger.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Active runs per (type, status).
    pub active: Vec<MetricsGroup>,
    /// Queued runs that are due now.
    pub queue_depth: u64,
}

/// One group of [`MetricsSnapshot::active`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsGroup {
    /// Type (its stable name).
    pub op_type: String,
    /// Status (queued or running).
    pub status: String,
    /// How many.
    pub count: u64,
}
