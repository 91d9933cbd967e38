//! The values the store takes and returns, shared by both backends.

use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::{Membership, Role};
use tenantatlas_domain::catalog::{IdentityKey, OperationType};
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::lifecycle::{StatusBucket, Transition};
use tenantatlas_domain::params::Params;
use tenantatlas_domain::problem::{ProblemClass, Thresholds};
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::run::{Reconciliation, Run};
use tenantatlas_domain::sanitize::SafeText;
use tenantatlas_domain::timeline::RunEventKind;

/// A workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// Id.
    pub id: WorkspaceId,
    /// Unique name.
    pub name: String,
    /// Created.
    pub created_at: Timestamp,
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Name, unique within the workspace.
    pub name: String,
    /// Provider spec text (`directory:…`, `graph:…`), if configured.
    pub provider: Option<String>,
    /// Created.
    pub created_at: Timestamp,
}

/// A user account (the password hash is never part of this value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Lower-case e-mail address.
    pub email: String,
    /// Whether the user belongs to the system plane.
    pub platform_operator: bool,
    /// When disabled, if disabled.
    pub disabled_at: Option<Timestamp>,
    /// Last password change.
    pub password_changed_at: Timestamp,
    /// Created.
    pub created_at: Timestamp,
}

/// A member of a workspace, for listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The membership.
    pub membership: Membership,
    /// The member's e-mail.
    pub email: String,
}

/// Who did something, for the audit log and the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user (or `--as`).
    User(UserId),
    /// The engine itself (scheduler, reconciler, workers).
    System,
    /// An administrator at the command line of the server.
    Cli,
}

impl Actor {
    /// The audit `actor_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::System => "system",
            Actor::Cli => "cli",
        }
    }

    /// The user, when a user.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User(u) => Some(*u),
            _ => None,
        }
    }
}

/// One audit-log entry to append.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// Workspace concerned.
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant concerned.
    pub tenant_id: Option<TenantId>,
    /// What (`workspace.create`, `run.cancel`, …).
    pub action: String,
    /// Kind of target (`run`, `tenant`, …).
    pub target_type: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Identifiers and enums only.
    pub detail: serde_json::Value,
}

/// A stored audit-log entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Sequence number.
    pub id: i64,
    /// The entry.
    pub entry: AuditEntry,
}

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

/// Which runs a caller may see (row-level scope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunScope {
    /// Every run (system plane, server command line).
    Everything,
    /// Runs of these whole workspaces, plus of these individual tenants.
    Granted {
        /// Workspaces entitled in full.
        workspaces: Vec<WorkspaceId>,
        /// Individually entitled tenants.
        tenants: Vec<TenantId>,
    },
}

/// A keyset-pagination position: after this (created_at, id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Created-at of the last row shown.
    pub created_at: Timestamp,
    /// Id of the last row shown.
    pub id: RunId,
}

impl Cursor {
    /// Encodes as opaque text.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.unix_micros(), self.id.as_uuid().simple())
    }

    /// Decodes text made by [`Cursor::encode`].
    pub fn decode(field: &str, s: &str) -> Result<Self, tenantatlas_domain::FieldError> {
        let bad = || tenantatlas_domain::FieldError::new(field, "is not a cursor returned by a previous page");
        let (ts, id) = s.split_once('_').ok_or_else(bad)?;
        let created_at = Timestamp::from_unix_micros(ts.parse().map_err(|_| bad())?);
        let id = RunId::from_uuid(uuid::Uuid::parse_str(id).map_err(|_| bad())?);
        Ok(Self { created_at, id })
    }
}

/// Filters of the operations list (the same on every surface).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFilter {
    /// Only this workspace.
    pub workspace: Option<WorkspaceId>,
    /// Only this tenant.
    pub tenant: Option<TenantId>,
    /// Only this type.
    pub op_type: Option<OperationType>,
    /// Only this status bucket.
    pub bucket: Option<StatusBucket>,
    /// Only this problem class (evaluated at `now`).
    pub problem: Option<ProblemClass>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Only children of this run.
    pub parent: Option<RunId>,
}

/// A list query.
#[derive(Clone, Debug, PartialEq)]
pub struct RunQuery {
    /// Row-level scope.
    pub scope: RunScope,
    /// Filters.
    pub filter: RunFilter,
    /// Page size (1–500).
    pub limit: u32,
    /// Continue after.
    pub cursor: Option<Cursor>,
    /// The moment problem classes are evaluated at.
    pub now: Timestamp,
    /// Stale thresholds.
    pub thresholds: Thresholds,
}

/// One page of runs, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<Run>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<Cursor>,
}

/// Counting runs per problem class.
#[derive(Clone, Debug, PartialEq)]
pub struct CountQuery {
    /// Row-level scope.
    pub scope: RunScope,
    /// Filters (problem and bucket filters are ignored).
    pub filter: RunFilter,
    /// Completed runs count only when completed on or after the start of
    /// this moment's UTC day (the per-day counters' grain); active runs
    /// always count.
    pub completed_since: Timestamp,
    /// The moment classes are evaluated at.
    pub now: Timestamp,
    /// Stale thresholds.
    pub thresholds: Thresholds,
}

/// One count row: how many runs of a tenant are in a problem class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemCount {
    /// The workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// The tenant.
    pub tenant_id: Option<TenantId>,
    /// The class.
    pub class: ProblemClass,
    /// How many.
    pub count: u64,
}

/// One timeline entry.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEvent {
    /// Sequence number (orders the timeline).
    pub id: i64,
    /// The run.
    pub run_id: RunId,
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: RunEventKind,
    /// Who, when a user.
    pub actor_id: Option<UserId>,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// Identifiers, counts and codes only.
    pub detail: serde_json::Value,
}

/// A timeline entry to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The run.
    pub run_id: RunId,
    /// What.
    pub kind: RunEventKind,
    /// Who, when a user.
    pub actor_id: Option<UserId>,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// Identifiers, counts and codes only.
    pub detail: serde_json::Value,
    /// When.
    pub at: Timestamp,
}

/// A persisted notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Id.
    pub id: NotificationId,
    /// Recipient.
    pub user_id: UserId,
    /// The run.
    pub run_id: RunId,
    /// Workspace of the run.
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant of the run.
    pub tenant_id: Option<TenantId>,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// "View run" link.
    pub view_url: String,
    /// When read.
    pub read_at: Option<Timestamp>,
    /// When written.
    pub created_at: Timestamp,
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

/// A membership to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipWrite {
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// User.
    pub user_id: UserId,
    /// Role.
    pub role: Role,
    /// `None`: every tenant; otherwise these.
    pub tenants: Option<Vec<TenantId>>,
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

/// A cron schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Id.
    pub id: uuid::Uuid,
    /// Unique name.
    pub name: String,
    /// Five-field cron pattern (UTC).
    pub cron: String,
    /// Workspace of the tenant (`None` for system operations).
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant (`None` for system operations).
    pub tenant_id: Option<TenantId>,
    /// The operation it starts.
    pub op_type: OperationType,
    /// Its parameters.
    pub params: Params,
    /// Whether it fires.
    pub enabled: bool,
    /// Next fire time.
    pub next_fire_at: Timestamp,
    /// Last fire time.
    pub last_fired_at: Option<Timestamp>,
    /// The run the last fire started or joined.
    pub last_run_id: Option<RunId>,
}

/// A schedule to create or replace (by name).
#[derive(Clone, Debug, PartialEq)]
pub struct NewSchedule {
    /// Unique name.
    pub name: String,
    /// Five-field cron pattern (UTC), already validated.
    pub cron: String,
    /// Workspace and tenant, or `None` for a system operation.
    pub target: Option<(WorkspaceId, TenantId)>,
    /// The operation.
    pub op_type: OperationType,
    /// Validated parameters.
    pub params: Params,
    /// First fire time.
    pub next_fire_at: Timestamp,
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

/// Something changed in the database that live surfaces or workers care
/// about. Delivered in-process on SQLite and over LISTEN/NOTIFY on
/// PostgreSQL (so every node hears every node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Runs became due: workers should claim.
    Wake,
    /// Runs of these tenants changed (`None` in the list: system runs);
    /// an empty list means "possibly any".
    RunsChanged(Vec<Option<TenantId>>),
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
