//! Persistence for TenantAtlas: one set of operations ([`Backend`]) over two
//! real databases.
//!
//! - [`sqlite`]: the embedded default, one file, WAL, one writer connection
//!   (every write transaction is `BEGIN IMMEDIATE`) and a few readers.
//! - [`postgres`]: production and many nodes; batch writes use `UNNEST`,
//!   row locks order concurrent writers.
//!
//! Each backend has its own append-only migrations under `migrations/`.
//! Shared between them: the model ([`model`]), the decoding of rows into
//! domain types (`rows`) and the SQL of list and count filters (`sqlgen`),
//! which both dialects accept as written.
//!
//! Law 1 lives here as exactly one write family: the `lifecycle` module of
//! each backend holds the only statements that change a run's `status` or
//! `outcome`, and the only statement that writes notifications. A guard test
//! in the engine fails if any other SQL does.

mod counters;
mod error;
pub mod model;
pub mod postgres;
mod rows;
mod signal;
mod sqlgen;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::Membership;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::problem::{ProblemClass, Thresholds};
use tenantatlas_domain::run::Run;

pub use error::{Result, StoreError};
use model::*;

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite (one node).
    Sqlite,
    /// PostgreSQL (one or many nodes).
    Postgres,
}

/// The operations every backend provides. Every method is one transaction.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Which database this is.
    fn kind(&self) -> BackendKind;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Answers when the database does.
    async fn ping(&self) -> Result<()>;
    /// Closes connections.
    async fn close(&self);

    // --- workspaces, tenants, users, memberships, audit ---

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
    /// Appends an audit entry.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// The newest audit entries.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>>;

    // --- runs: start and read ---

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

    // --- law 1: the one lifecycle write family ---

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

    // --- progress (fenced by attempt) ---

    /// Sets a running run's total once and writes its unit ledger.
    async fn plan_units(&self, run: RunId, attempt: u32, keys: &[String], now: Timestamp) -> Result<PlanApplied>;
    /// Records unit results; each unit is counted at most once.
    async fn complete_units(
        &self,
        run: RunId,
        attempt: u32,
        results: &[UnitResult],
        now: Timestamp,
    ) -> Result<UnitsApplied>;
    /// Fans a running parent out into queued children (law 11): sets the
    /// parent's total to the number of children, once.
    async fn fan_out(&self, parent: RunId, attempt: u32, children: &[NewRun], now: Timestamp) -> Result<PlanApplied>;
    /// Sets a running run's phase.
    async fn set_phase(
        &self,
        run: RunId,
        attempt: u32,
        phase: u32,
        phases: u32,
        label: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// Adds reported counts to a running run.
    async fn add_counts(&self, w: &CountsWrite, now: Timestamp) -> Result<bool>;
    /// Extends a running run's lease (fenced by attempt).
    async fn heartbeat(&self, run: RunId, attempt: u32, lease_until: Timestamp, now: Timestamp)
    -> Result<HeartbeatAck>;
    /// Active runs the reconciler may complete at `now` (law 7), oldest
    /// first.
    async fn reconcilable(&self, now: Timestamp, thresholds: &Thresholds, limit: u32) -> Result<Vec<Run>>;
    /// Completed runs per UTC day (day number) and class, from `since`'s
    /// day on, within `scope` (from the per-day class counters).
    async fn runs_per_day(&self, scope: &RunScope, since: Timestamp) -> Result<Vec<(i64, ProblemClass, u64)>>;
    /// Durations of the most recent successful runs of a type.
    async fn recent_durations(&self, op: OperationType, limit: u32) -> Result<Vec<Duration>>;
    /// Marks a running run as asked to cancel (its worker completes it).
    async fn request_cancel(
        &self,
        run: RunId,
        actor: Actor,
        audit: Option<&AuditEntry>,
        now: Timestamp,
    ) -> Result<bool>;

    // --- schedules ---

    /// Creates or replaces (by name) a schedule (audited).
    async fn put_schedule(&self, s: &NewSchedule, actor: Actor, now: Timestamp) -> Result<Schedule>;
    /// Every schedule, by name.
    async fn list_schedules(&self) -> Result<Vec<Schedule>>;
    /// Enabled schedules due at `now`.
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>>;
    /// Fires a due schedule: moves its next fire time and starts (or joins)
    /// its run in one transaction; `None` when another node fired it first.
    async fn fire_schedule(&self, f: &ScheduleFire) -> Result<Option<StartRecord>>;

    // --- coordination ---

    /// Changes and wake-ups, from this node and (PostgreSQL) every other.
    fn signals(&self) -> tokio::sync::broadcast::Receiver<Signal>;
    /// Tries to become the one node doing a singleton duty (reconciler,
    /// scheduler). PostgreSQL: a session advisory lock held by a dedicated
    /// connection, released when the node dies. SQLite: always granted (one
    /// node).
    async fn try_singleton(&self, name: &str) -> Result<Option<SingletonGuard>>;

    // --- notifications ---

    /// A user's notifications, newest first.
    async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<Notification>>;
    /// How many are unread.
    async fn unread_count(&self, user: UserId) -> Result<u64>;
    /// Marks one read; `false` when it is not the user's.
    async fn mark_read(&self, user: UserId, id: NotificationId, now: Timestamp) -> Result<bool>;

    /// Figures for `/metrics`.
    async fn metrics(&self, now: Timestamp) -> Result<MetricsSnapshot>;

    // --- sessions and API tokens (only hashes are stored) ---

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
    /// Stores a new API token.
    async fn create_api_token(
        &self,
        id_hash: &str,
        user: UserId,
        name: &str,
        actor: Actor,
        now: Timestamp,
    ) -> Result<()>;
    /// An API token with its user.
    async fn find_api_token(&self, id_hash: &str) -> Result<Option<TokenRecord>>;
}

/// Holding a singleton duty. Dropping it gives the duty up.
#[derive(Debug)]
pub struct SingletonGuard {
    // A connection of its own, detached from the pool: when the node dies
    // or drops the guard, the connection closes and the lock goes with it.
    conn: Option<sqlx::postgres::PgConnection>,
}

impl SingletonGuard {
    pub(crate) fn local() -> Self {
        Self { conn: None }
    }

    pub(crate) fn postgres(conn: sqlx::postgres::PgConnection) -> Self {
        Self { conn: Some(conn) }
    }

    /// Whether the duty is still held (PostgreSQL: the lock's connection
    /// still answers).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(c) => sqlx::Connection::ping(c).await.is_ok(),
        }
    }
}

/// A shared handle on a backend.
pub type Store = Arc<dyn Backend>;

/// Connects to `url` (`sqlite://PATH`, `postgres://…`), creating an SQLite
/// file when missing. Migrations are not applied; call
/// [`Backend::migrate`].
pub async fn connect(url: &str) -> Result<Store> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        // Show only the scheme: the rest of a URL may hold a password.
        let scheme: String = url.split(':').next().unwrap_or("").chars().take(20).collect();
        Err(StoreError::Url(format!("scheme {scheme:?}")))
    }
}

/// Connects and applies pending migrations.
pub async fn open(url: &str) -> Result<Store> {
    let store = connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Generates a time-ordered id.
pub(crate) fn new_uuid() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Ids used by tests and callers that need them before a write.
pub fn new_run_id() -> RunId {
    RunId::from_uuid(new_uuid())
}
