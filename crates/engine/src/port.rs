//! What the engine needs from storage, and nothing more: the store's
//! traits (each implemented by `tenantatlas-store` in a module of its own),
//! the commands they take and the answers they give. The engine is the
//! store's only caller — the hub and the command line reach data through
//! the engine — and the store depends on this module, not the other way
//! round.
//!
//! Law 1 by types: a [`LifecycleWrite`], [`ClaimRequest`] or
//! [`ReleaseRequest`] — the only inputs of the methods that change a run's
//! status or outcome ([`Lifecycle`]) — can be built only by the engine's
//! `lifecycle` module (their constructors are private to it); a store
//! reads them through accessors.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenantatlas_domain::access::Membership;
use tenantatlas_domain::catalog::{IdentityKey, OperationType};
use tenantatlas_domain::counts::SummaryCounts;
pub use tenantatlas_domain::directory::*;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId, TokenId, UserId, WorkspaceId};
pub use tenantatlas_domain::notify::Notification;
use tenantatlas_domain::params::Params;
use tenantatlas_domain::problem::{ProblemClass, Thresholds};
use tenantatlas_domain::progress::UnitOutcome;
pub use tenantatlas_domain::query::*;
use tenantatlas_domain::reason::{Failure, ReasonCode};
pub use tenantatlas_domain::run::UnitRecord;
use tenantatlas_domain::run::{Reconciliation, Run};
pub use tenantatlas_domain::schedule::{NewSchedule, Schedule};
pub use tenantatlas_domain::timeline::{NewEvent, RunEvent};
use tenantatlas_domain::{FieldError, Timestamp};

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A uniqueness rule refused the write (e.g. a name already in use).
    #[error("{0}")]
    Conflict(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A row does not decode into domain types.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database URL is not one we support.
    #[error("unsupported database URL (expected sqlite://PATH or postgres://…): {0}")]
    Url(String),
}

impl StoreError {
    /// Whether the failure is the connection's (worth retrying after a
    /// reconnect) rather than the request's.
    pub fn is_connection(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed | sqlx::Error::Tls(_),
            ) => true,
            // PostgreSQL shutting down, starting up, or the link failing
            // (class 08: connection exception; 57P01-57P03: operator
            // intervention).
            StoreError::Database(sqlx::Error::Database(d)) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")),
            _ => false,
        }
    }

    /// Whether a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

/// Results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite (one node).
    Sqlite,
    /// PostgreSQL (one or many nodes).
    Postgres,
}

/// Holding a singleton duty (reconciler, scheduler); dropping it gives the
/// duty up.
#[async_trait]
pub trait Singleton: Send + std::fmt::Debug {
    /// Whether the duty is still held (PostgreSQL: the lock's connection
    /// still answers).
    async fn still_held(&mut self) -> bool;
}

/// A held singleton duty.
pub type SingletonGuard = Box<dyn Singleton>;

/// Running the store itself.
#[async_trait]
pub trait Admin {
    /// Which database this is.
    fn kind(&self) -> BackendKind;
    /// Applies pending migrations (each backend has its own, append-only).
    async fn migrate(&self) -> Result<()>;
    /// Answers when the database does.
    async fn ping(&self) -> Result<()>;
    /// Closes connections.
    async fn close(&self);
    /// Changes and wake-ups, from this node and (PostgreSQL) every other.
    fn signals(&self) -> tokio::sync::broadcast::Receiver<Signal>;
    /// Tries to become the one node doing a singleton duty (reconciler,
    /// scheduler). PostgreSQL: a session advisory lock held by a dedicated
    /// connection, released when the node dies. SQLite: always granted (one
    /// node).
    async fn try_singleton(&self, name: &str) -> Result<Option<SingletonGuard>>;
    /// Figures for `/metrics`.
    async fn metrics(&self, now: Timestamp) -> Result<MetricsSnapshot>;
    /// The database file (SQLite on disk, as an absolute path): the engine
    /// keeps its secret key file beside it when no key is configured.
    /// `None` for PostgreSQL and an in-memory SQLite database.
    fn database_file(&self) -> Option<std::path::PathBuf>;
}

/// Who exists and who may do what.
#[async_trait]
pub trait Directory {
    /// Creates a workspace (audited).
    async fn create_workspace(&self, name: &str, actor: Actor, now: Timestamp) -> Result<Workspace>;
    /// A workspace by id or (case-insensitive) name.
    async fn find_workspace(&self, key: &str) -> Result<Option<Workspace>>;
    /// Every workspace, by name.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>>;
    /// Adds a tenant to a workspace (audited).
    async fn add_tenant(
        &self,
        workspace: WorkspaceId,
        name: &str,
        provider: Option<&str>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Tenant>;
    /// Tenants matching an id or a name, optionally within one workspace.
    async fn find_tenants(&self, key: &str, workspace: Option<WorkspaceId>) -> Result<Vec<Tenant>>;
    /// A tenant by id.
    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>>;
    /// The tenants of a workspace, by name.
    async fn list_tenants(&self, workspace: WorkspaceId) -> Result<Vec<Tenant>>;
    /// Adds a user (audited). `password_hash` is a PHC string.
    async fn add_user(
        &self,
        email: &str,
        password_hash: &str,
        platform_operator: bool,
        actor: Actor,
        now: Timestamp,
    ) -> Result<User>;
    /// A user by id or e-mail.
    async fn find_user(&self, key: &str) -> Result<Option<User>>;
    /// A user's password hash.
    async fn password_hash(&self, user: UserId) -> Result<Option<String>>;
    /// Creates or replaces a membership (audited).
    async fn put_membership(&self, m: &MembershipWrite, actor: Actor, now: Timestamp) -> Result<()>;
    /// A tenant and, for `user`, their membership in its workspace: what a
    /// start needs to authorize, in one read.
    async fn tenant_access(
        &self,
        tenant: TenantId,
        user: Option<UserId>,
    ) -> Result<Option<(Tenant, Option<Membership>)>>;
    /// A user's membership in a workspace.
    async fn membership(&self, user: UserId, workspace: WorkspaceId) -> Result<Option<Membership>>;
    /// All of a user's memberships.
    async fn memberships_of(&self, user: UserId) -> Result<Vec<Membership>>;
    /// The members of a workspace.
    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<Member>>;
    /// Ends a membership and its tenant entitlements (audited); `false`
    /// when there was none.
    async fn remove_membership(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        actor: Actor,
        now: Timestamp,
    ) -> Result<bool>;
    /// Appends an audit entry.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// The newest audit entries.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>>;
}

/// Sessions and API tokens (only hashes are stored).
#[async_trait]
pub trait Auth {
    /// Opens a session.
    async fn create_session(&self, id_hash: &str, user: UserId, now: Timestamp) -> Result<()>;
    /// A session with its user.
    async fn find_session(&self, id_hash: &str) -> Result<Option<SessionRecord>>;
    /// Records that a session served a request.
    async fn touch_session(&self, id_hash: &str, now: Timestamp) -> Result<()>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Sets a user's password hash; ends every session of theirs.
    async fn set_password(&self, user: UserId, password_hash: &str, actor: Actor, now: Timestamp) -> Result<()>;
    /// Disables a user; ends every session of theirs.
    async fn disable_user(&self, user: UserId, actor: Actor, now: Timestamp) -> Result<()>;
    /// Stores a new API token (audited).
    async fn create_api_token(&self, t: &NewToken, actor: Actor, now: Timestamp) -> Result<()>;
    /// An API token with its user, by the hash of its secret.
    async fn find_api_token(&self, id_hash: &str) -> Result<Option<TokenRecord>>;
    /// An API token with its user, by its public id.
    async fn api_token(&self, id: TokenId) -> Result<Option<TokenRecord>>;
    /// API tokens, newest first: one user's, or (`None`) everyone's.
    async fn list_api_tokens(&self, user: Option<UserId>) -> Result<Vec<TokenRecord>>;
    /// Records that a token served a request (at most once a minute).
    async fn touch_api_token(&self, id_hash: &str, now: Timestamp) -> Result<()>;
    /// Deletes a token (audited); `false` when there was none.
    async fn revoke_api_token(&self, id: TokenId, actor: Actor, now: Timestamp) -> Result<bool>;
    /// Every user, by e-mail.
    async fn list_users(&self) -> Result<Vec<User>>;
}

/// Starting runs and reading them.
#[async_trait]
pub trait Runs {
    /// Creates each run, or joins its active twin (law 2), in one
    /// transaction. Starting users are subscribed; every start is on the
    /// timeline.
    async fn start_runs(&self, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>>;
    /// A run by id.
    async fn get_run(&self, id: RunId) -> Result<Option<Run>>;
    /// A page of runs, newest first.
    async fn list_runs(&self, q: &RunQuery) -> Result<RunPage>;
    /// Runs per tenant and problem class.
    async fn count_problems(&self, q: &CountQuery) -> Result<Vec<ProblemCount>>;
    /// A run's stored timeline events, oldest first (the engine adds what
    /// the run row and its notifications record).
    async fn run_events(&self, run: RunId) -> Result<Vec<RunEvent>>;
    /// How many terminal notifications a run has, and when the first was
    /// written (`None` when it has none).
    async fn run_notified(&self, run: RunId) -> Result<Option<(u32, Timestamp)>>;
    /// A run's unit ledger, by key (`pending_only` for resumption).
    async fn run_units(&self, run: RunId, pending_only: bool, limit: u32) -> Result<Vec<UnitRecord>>;
    /// Users subscribed to a run's completion.
    async fn subscribers(&self, run: RunId) -> Result<Vec<UserId>>;
    /// Appends a timeline entry.
    async fn append_event(&self, event: &NewEvent) -> Result<()>;
    /// Active runs the reconciler may complete at `now` (law 7), oldest
    /// first.
    async fn reconcilable(&self, now: Timestamp, thresholds: &Thresholds, limit: u32) -> Result<Vec<Run>>;
    /// Completed runs per UTC day (day number) and class, from `since`'s
    /// day on, within `scope` (from the per-day class counters).
    async fn runs_per_day(&self, scope: &RunScope, since: Timestamp) -> Result<Vec<(i64, ProblemClass, u64)>>;
    /// Durations of the most recent successful runs of a type.
    async fn recent_durations(&self, op: OperationType, limit: u32) -> Result<Vec<Duration>>;
}

/// A running attempt's right to write on its run's behalf: what every
/// write a handler makes carries — unit results, phases, counts, children,
/// and the domain rows its operation produces. The store checks it inside
/// the write's own transaction (the run row locked: still running, still
/// this attempt) and otherwise refuses the write, recording a
/// `late_result_ignored` event, so an attempt that was reconciled,
/// re-claimed or completed cannot change anything. Only the engine makes
/// one, for an attempt it claimed; a handler gets it from
/// [`RunContext::fence`](crate::worker::RunContext::fence) and passes it to
/// the stores it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    run: RunId,
    attempt: u32,
}

impl Fence {
    pub(crate) fn new(run: RunId, attempt: u32) -> Self {
        Self { run, attempt }
    }

    /// The run.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// The attempt that may write.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Progress of running runs, fenced by attempt.
#[async_trait]
pub trait Progress {
    /// Sets a running run's total once and writes its unit ledger.
    async fn plan_units(&self, fence: Fence, keys: &[String], now: Timestamp) -> Result<PlanApplied>;
    /// Records unit results; each unit is counted at most once. The run's
    /// next progress deadline (law 7) is judged with `thresholds`.
    async fn complete_units(
        &self,
        fence: Fence,
        results: &[UnitResult],
        now: Timestamp,
        thresholds: &Thresholds,
    ) -> Result<UnitsApplied>;
    /// Fans a running parent out into queued children (law 11): sets the
    /// parent's total to the number of children, once.
    async fn fan_out(&self, parent: Fence, children: &[NewRun], now: Timestamp) -> Result<PlanApplied>;
    /// Sets a running run's phase.
    async fn set_phase(&self, fence: Fence, phase: u32, phases: u32, label: &str, now: Timestamp) -> Result<bool>;
    /// Adds reported counts to a running run.
    async fn add_counts(&self, w: &CountsWrite, now: Timestamp) -> Result<bool>;
    /// Extends a running run's lease by `lease` (fenced by attempt). The
    /// heartbeat's time is read from `clock` once the write has its
    /// connection: a heartbeat that waited out an outage must not record
    /// the time it started waiting, which would make a live run look stale.
    async fn heartbeat(
        &self,
        run: RunId,
        attempt: u32,
        lease: Duration,
        clock: &dyn crate::clock::Clock,
    ) -> Result<HeartbeatAck>;
    /// Marks a running run as asked to cancel (its worker completes it).
    async fn request_cancel(
        &self,
        run: RunId,
        actor: Actor,
        audit: Option<&AuditEntry>,
        now: Timestamp,
    ) -> Result<bool>;
}

/// Law 1's write family.
#[async_trait]
pub trait Lifecycle {
    /// Applies a lifecycle transition if the run is still where the
    /// transition expects it. A completion writes its timeline entries,
    /// the subscribers' notifications and its parent's progress in the same
    /// transaction, completing the parent when this was its last child.
    async fn apply_transition(&self, w: &LifecycleWrite) -> Result<TransitionResult>;
    /// Applies many completions in one transaction (group commit for
    /// workers); each applies only where its run still is where it expects.
    async fn complete_many(&self, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>>;
    /// Claims due queued runs for a worker (PostgreSQL: `FOR UPDATE SKIP
    /// LOCKED`): each becomes running with a lease and its next attempt.
    async fn claim_due(&self, c: &ClaimRequest) -> Result<Vec<Run>>;
    /// Puts the runs a previous incarnation of a node left running back in
    /// the queue, due at once, to resume on their next attempt.
    async fn release_orphans(&self, r: &ReleaseRequest) -> Result<Vec<Run>>;
}

/// Cron schedules.
#[async_trait]
pub trait Schedules {
    /// Creates or replaces (by name) a schedule (audited).
    async fn put_schedule(&self, s: &NewSchedule, actor: Actor, now: Timestamp) -> Result<Schedule>;
    /// Every schedule, by name.
    async fn list_schedules(&self) -> Result<Vec<Schedule>>;
    /// Deletes a schedule (audited); `false` when there was none. Runs it
    /// started stay.
    async fn delete_schedule(&self, id: uuid::Uuid, actor: Actor, now: Timestamp) -> Result<bool>;
    /// Enabled schedules due at `now`.
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>>;
    /// Fires a due schedule: moves its next fire time and starts (or joins)
    /// its run in one transaction; `None` when another node fired it first.
    async fn fire_schedule(&self, f: &ScheduleFire) -> Result<Option<StartRecord>>;
}

/// Reading and marking notifications.
#[async_trait]
pub trait Notifications {
    /// A user's notifications, newest first.
    async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<Notification>>;
    /// How many are unread.
    async fn unread_count(&self, user: UserId) -> Result<u64>;
    /// Marks one read; `false` when it is not the user's.
    async fn mark_read(&self, user: UserId, id: NotificationId, now: Timestamp) -> Result<bool>;
}

/// Tenants' app credentials, sealed: the store keeps and answers the
/// engine's ciphertext and never sees a secret in clear.
#[async_trait]
pub trait Credentials {
    /// Adds a tenant (its id chosen by the engine, which sealed the secret
    /// for it) and its credentials in one transaction: both or neither
    /// (audited, without the secret).
    async fn add_tenant_with_credentials(
        &self,
        tenant: &Tenant,
        credentials: &SealedCredentials,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Tenant>;
    /// Creates or replaces a tenant's credentials (audited, without the
    /// secret). [`StoreError::NotFound`] when the tenant does not exist.
    async fn put_credentials(
        &self,
        tenant: TenantId,
        credentials: &SealedCredentials,
        actor: Actor,
        now: Timestamp,
    ) -> Result<()>;
    /// A tenant's sealed credentials.
    async fn credentials(&self, tenant: TenantId) -> Result<Option<StoredCredentials>>;
    /// Which tenants of a workspace have credentials (no secrets).
    async fn credential_statuses(&self, workspace: WorkspaceId) -> Result<Vec<CredentialStatus>>;
}

/// App credentials to store: the client id and the secret as the engine
/// sealed it for its tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCredentials {
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The sealed secret ([`crate::secrets`]).
    pub sealed_secret: Vec<u8>,
}

impl std::fmt::Debug for SealedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCredentials")
            .field("client_id", &self.client_id)
            .field("sealed_secret", &format_args!("[{} bytes]", self.sealed_secret.len()))
            .finish()
    }
}

/// Stored app credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The client id and the sealed secret.
    pub sealed: SealedCredentials,
    /// When they were last set.
    pub updated_at: Timestamp,
}

/// That a tenant has app credentials, without them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CredentialStatus {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// When they were last set.
    pub updated_at: Timestamp,
}

/// Everything a store does. Every method is one transaction.
pub trait Backend:
    Admin + Directory + Auth + Runs + Progress + Lifecycle + Schedules + Notifications + Credentials + Send + Sync + 'static
{
}

impl<T> Backend for T where
    T: Admin
        + Directory
        + Auth
        + Runs
        + Progress
        + Lifecycle
        + Schedules
        + Notifications
        + Credentials
        + Send
        + Sync
        + 'static
{
}

pub use crate::lifecycle::{ClaimRequest, LifecycleWrite, ReleaseRequest};

/// A shared handle on a store.
pub type Store = Arc<dyn Backend>;

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

/// Why a running run goes back to the queue, as its timeline tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequeueCause {
    /// A retryable failure: `retry_scheduled`.
    Retry,
    /// Its worker shut down and let it go: `released`.
    Shutdown,
    /// Its worker stopped renewing the lease (the node died) and the
    /// reconciler gave it its next attempt: `released`.
    LeaseLapsed,
}

impl RequeueCause {
    /// Whether the timeline calls it a release (else a scheduled retry).
    pub fn is_release(self) -> bool {
        !matches!(self, RequeueCause::Retry)
    }

    /// What the timeline says about a release.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            RequeueCause::Retry => None,
            RequeueCause::Shutdown => Some("its worker shut down; it resumes on its next attempt"),
            RequeueCause::LeaseLapsed => Some(
                "its worker stopped renewing the lease; it resumes on its next attempt, skipping the units it finished",
            ),
        }
    }
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
    /// Requeue after a retryable failure, a release on shutdown, or the
    /// resumption of a run whose worker stopped renewing its lease.
    Requeue {
        /// When it may be claimed again.
        available_at: Timestamp,
        /// The failure that caused it, if any (recorded on the timeline).
        failure: Option<Failure>,
        /// Why the run goes back to the queue.
        cause: RequeueCause,
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
    /// The run and the attempt that may write.
    pub fence: Fence,
    /// Counts to add.
    pub counts: SummaryCounts,
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
    /// Its public id.
    pub id: TokenId,
    /// The token's name, for its owner.
    pub name: String,
    /// Whose token.
    pub user: User,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working (`None`: never).
    pub expires_at: Option<Timestamp>,
    /// When it last served a request (to the minute).
    pub last_used_at: Option<Timestamp>,
}

/// A token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// Its public id.
    pub id: TokenId,
    /// The SHA-256 (hex) of its secret.
    pub id_hash: String,
    /// Whose token.
    pub user: UserId,
    /// Its name.
    pub name: String,
    /// When it stops working (`None`: never).
    pub expires_at: Option<Timestamp>,
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
