//! The SQLite backend: the embedded default.
//!
//! One file in WAL mode. All writes go through a single writer connection
//! and open with `BEGIN IMMEDIATE`, so a write transaction holds the write
//! lock from its first statement (no lock-upgrade deadlocks, no "database is
//! locked" surprises between processes, which wait up to the busy timeout).
//! Reads use a small pool of read-only connections.
//!
//! Ids are stored as hyphenated text, times as integer microseconds, JSON as
//! text. `synchronous = NORMAL` (the WAL recommendation): a committed
//! transaction survives a process crash; an operating-system crash may lose
//! the last few commits, never consistency.

mod auth;
mod directory;
mod lifecycle;
mod runs;
mod schedules;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::problem::{ProblemClass, Thresholds};

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Executor, Transaction};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::Membership;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;

use crate::error::Result;
use crate::model::*;
use crate::rows::{self, RUN_COLUMNS, RowExt as _};
use crate::sqlgen::{self, Arg};
use crate::{Backend, BackendKind};

/// SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    signals: tokio::sync::broadcast::Sender<Signal>,
    _watcher: Arc<AbortOnDrop>,
}

/// How often a process looks for commits made by other processes on the
/// same file (a `worker` beside a `serve`, the command line): SQLite has no
/// notifications between processes, but `PRAGMA data_version` changes when
/// another connection commits.
pub const OTHER_PROCESS_POLL: Duration = Duration::from_millis(25);

/// Stops the watcher when the last clone of the store goes.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Turns other processes' commits into wake-ups and change events. It asks
/// the writer connection, which sees every commit but its own — and this
/// process's own commits are signalled where they are made.
fn watch_other_processes(writer: SqlitePool, signals: tokio::sync::broadcast::Sender<Signal>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut last: Option<i64> = None;
        let mut tick = tokio::time::interval(OTHER_PROCESS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if writer.is_closed() {
                return;
            }
            let Ok(v) = sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&writer)
                .await
            else {
                continue;
            };
            if last.is_some_and(|l| l != v) {
                let _ = signals.send(Signal::Wake);
                let _ = signals.send(Signal::RunsChanged(Vec::new()));
            }
            last = Some(v);
        }
    }))
}

pub(crate) type Tx = Transaction<'static, Sqlite>;

/// Binds shared-SQL arguments in SQLite's encoding.
pub(crate) fn bind_args<'q>(
    mut q: Query<'q, Sqlite, SqliteArguments<'q>>,
    args: &'q [Arg],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Uuid(u) => q.bind(u.to_string()),
            Arg::Ts(t) => q.bind(t.unix_micros()),
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
        };
    }
    q
}

/// Appends a timeline entry.
pub(crate) async fn insert_event(
    conn: &mut SqliteConnection,
    run: RunId,
    kind: RunEventKind,
    actor: Option<UserId>,
    attempt: Option<u32>,
    detail: serde_json::Value,
    at: Timestamp,
) -> Result<()> {
    sqlx::query("INSERT INTO run_events (run_id, at, kind, actor_id, attempt, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(run.to_string())
        .bind(at.unix_micros())
        .bind(kind.as_str())
        .bind(actor.map(|a| a.to_string()))
        .bind(attempt.map(i64::from))
        .bind(detail.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends an audit entry.
pub(crate) async fn insert_audit(conn: &mut SqliteConnection, e: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_kind, actor_id, workspace_id, tenant_id, action, target_type, target_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.at.unix_micros())
    .bind(e.actor.kind())
    .bind(e.actor.user_id().map(|u| u.to_string()))
    .bind(e.workspace_id.map(|w| w.to_string()))
    .bind(e.tenant_id.map(|t| t.to_string()))
    .bind(&e.action)
    .bind(&e.target_type)
    .bind(&e.target_id)
    .bind(e.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn fetch_run(conn: &mut SqliteConnection, id: RunId) -> Result<Option<Run>> {
    let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM operation_runs WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(rows::run_from_row).transpose()
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url`
    /// (`sqlite://PATH`).
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        let (signals, _) = tokio::sync::broadcast::channel(1024);
        let watcher = watch_other_processes(writer.clone(), signals.clone());
        Ok(Self {
            writer,
            reader,
            signals,
            _watcher: Arc::new(watcher),
        })
    }

    /// Tells this process's listeners (other processes on the same file
    /// notice the commit through [`OTHER_PROCESS_POLL`]).
    pub(crate) fn emit(&self, s: Signal) {
        let _ = self.signals.send(s);
    }

    /// Begins a write transaction holding the write lock.
    pub(crate) async fn write(&self) -> Result<Tx> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.reader.execute("SELECT 1").await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn create_workspace(&self, name: &str, actor: Actor, now: Timestamp) -> Result<Workspace> {
        directory::create_workspace(self, name, actor, now).await
    }

    async fn find_workspace(&self, key: &str) -> Result<Option<Workspace>> {
        directory::find_workspace(&self.reader, key).await
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        directory::list_workspaces(&self.reader).await
    }

    async fn add_tenant(
        &self,
        workspace: WorkspaceId,
        name: &str,
        provider: Option<&str>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Tenant> {
        directory::add_tenant(self, workspace, name, provider, actor, now).await
    }

    async fn find_tenants(&self, key: &str, workspace: Option<WorkspaceId>) -> Result<Vec<Tenant>> {
        directory::find_tenants(&self.reader, key, workspace).await
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        directory::get_tenant(&self.reader, id).await
    }

    async fn list_tenants(&self, workspace: WorkspaceId) -> Result<Vec<Tenant>> {
        directory::list_tenants(&self.reader, workspace).await
    }

    async fn add_user(
        &self,
        email: &str,
        password_hash: &str,
        platform_operator: bool,
        actor: Actor,
        now: Timestamp,
    ) -> Result<User> {
        directory::add_user(self, email, password_hash, platform_operator, actor, now).await
    }

    async fn find_user(&self, key: &str) -> Result<Option<User>> {
        directory::find_user(&self.reader, key).await
    }

    async fn password_hash(&self, user: UserId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn put_membership(&self, m: &MembershipWrite, actor: Actor, now: Timestamp) -> Result<()> {
        directory::put_membership(self, m, actor, now).await
    }

    async fn tenant_access(
        &self,
        tenant: TenantId,
        user: Option<UserId>,
    ) -> Result<Option<(Tenant, Option<Membership>)>> {
        let Some(t) = directory::get_tenant(&self.reader, tenant).await? else {
            return Ok(None);
        };
        let m = match user {
            Some(u) => directory::membership(&self.reader, u, Some(t.workspace_id))
                .await?
                .pop(),
            None => None,
        };
        Ok(Some((t, m)))
    }

    async fn membership(&self, user: UserId, workspace: WorkspaceId) -> Result<Option<Membership>> {
        directory::membership(&self.reader, user, Some(workspace))
            .await
            .map(|mut v| v.pop())
    }

    async fn memberships_of(&self, user: UserId) -> Result<Vec<Membership>> {
        directory::membership(&self.reader, user, None).await
    }

    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<Member>> {
        directory::members(&self.reader, workspace).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut tx = self.write().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        directory::audit_log(&self.reader, limit).await
    }

    async fn start_runs(&self, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
        runs::start_runs(self, batch, now).await
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let mut conn = self.reader.acquire().await?;
        fetch_run(&mut conn, id).await
    }

    async fn list_runs(&self, q: &RunQuery) -> Result<RunPage> {
        let sql = sqlgen::list_runs(q);
        let found = bind_args(sqlx::query(&sql.text), &sql.args)
            .fetch_all(&self.reader)
            .await?;
        let mut runs = found.iter().map(rows::run_from_row).collect::<Result<Vec<_>>>()?;
        Ok(rows::page_of(&mut runs, q.limit))
    }

    async fn count_problems(&self, q: &CountQuery) -> Result<Vec<ProblemCount>> {
        let sql = sqlgen::count_problems(q);
        let found = bind_args(sqlx::query(&sql.text), &sql.args)
            .fetch_all(&self.reader)
            .await?;
        found.iter().map(rows::problem_count_from_row).collect()
    }

    async fn run_events(&self, run: RunId) -> Result<Vec<RunEvent>> {
        let found = sqlx::query(
            "SELECT id, run_id, at, kind, actor_id, attempt, detail FROM run_events WHERE run_id = $1 ORDER BY id",
        )
        .bind(run.to_string())
        .fetch_all(&self.reader)
        .await?;
        found.iter().map(rows::event_from_row).collect()
    }

    async fn run_notified(&self, run: RunId) -> Result<Option<(u32, Timestamp)>> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS first FROM notifications WHERE run_id = $1")
            .bind(run.to_string())
            .fetch_one(&self.reader)
            .await?;
        let n = u32::try_from(row.int("n")?).unwrap_or(u32::MAX);
        Ok(row.opt_ts("first")?.filter(|_| n > 0).map(|at| (n, at)))
    }

    async fn run_units(&self, run: RunId, pending_only: bool, limit: u32) -> Result<Vec<UnitRecord>> {
        let found = sqlx::query(
            "SELECT unit_key, state, reason_code, message, child_run_id, updated_at FROM operation_units \
             WHERE run_id = $1 AND ($2 = 0 OR state = 'pending') ORDER BY unit_key LIMIT $3",
        )
        .bind(run.to_string())
        .bind(i64::from(pending_only))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        found.iter().map(rows::unit_from_row).collect()
    }

    async fn subscribers(&self, run: RunId) -> Result<Vec<UserId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM run_subscribers WHERE run_id = $1 ORDER BY created_at, user_id")
                .bind(run.to_string())
                .fetch_all(&self.reader)
                .await?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| crate::StoreError::Corrupt(format!("user_id: {e}")))
            })
            .collect()
    }

    async fn append_event(&self, e: &NewEvent) -> Result<()> {
        let mut tx = self.write().await?;
        insert_event(&mut tx, e.run_id, e.kind, e.actor_id, e.attempt, e.detail.clone(), e.at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply_transition(&self, w: &LifecycleWrite) -> Result<TransitionResult> {
        lifecycle::apply_transition(self, w).await
    }

    async fn complete_many(&self, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>> {
        lifecycle::complete_many(self, writes).await
    }

    async fn claim_due(&self, c: &ClaimRequest) -> Result<Vec<Run>> {
        lifecycle::claim_due(self, c).await
    }

    async fn release_orphans(&self, r: &ReleaseRequest) -> Result<Vec<Run>> {
        lifecycle::release_orphans(self, r).await
    }

    async fn heartbeat(
        &self,
        run: RunId,
        attempt: u32,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<HeartbeatAck> {
        runs::heartbeat(self, run, attempt, lease_until, now).await
    }

    async fn reconcilable(&self, now: Timestamp, thresholds: &Thresholds, limit: u32) -> Result<Vec<Run>> {
        let sql = sqlgen::reconcilable(now, thresholds, limit);
        let found = bind_args(sqlx::query(&sql.text), &sql.args)
            .fetch_all(&self.reader)
            .await?;
        found.iter().map(rows::run_from_row).collect()
    }

    async fn runs_per_day(&self, scope: &RunScope, since: Timestamp) -> Result<Vec<(i64, ProblemClass, u64)>> {
        let sql = sqlgen::runs_per_day(scope, since);
        let found = bind_args(sqlx::query(&sql.text), &sql.args)
            .fetch_all(&self.reader)
            .await?;
        found
            .iter()
            .map(|r| {
                let class = r.text("class")?;
                Ok((
                    r.int("day")?,
                    ProblemClass::parse("class", &class)
                        .map_err(|_| crate::StoreError::Corrupt(format!("class {class}")))?,
                    u64::try_from(r.int("n")?).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn recent_durations(&self, op: OperationType, limit: u32) -> Result<Vec<Duration>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT started_at, completed_at FROM operation_runs WHERE type = $1 AND outcome = 'succeeded' \
             AND started_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2",
        )
        .bind(op.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, c)| Duration::from_micros(u64::try_from(c.saturating_sub(s)).unwrap_or(0)))
            .collect())
    }

    async fn put_schedule(&self, s: &NewSchedule, actor: Actor, now: Timestamp) -> Result<Schedule> {
        schedules::put_schedule(self, s, actor, now).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        schedules::list_schedules(&self.reader).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        schedules::due_schedules(&self.reader, now, limit).await
    }

    async fn fire_schedule(&self, f: &ScheduleFire) -> Result<Option<StartRecord>> {
        schedules::fire_schedule(self, f).await
    }

    fn signals(&self) -> tokio::sync::broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    async fn try_singleton(&self, _name: &str) -> Result<Option<crate::SingletonGuard>> {
        Ok(Some(crate::SingletonGuard::local()))
    }

    async fn plan_units(&self, run: RunId, attempt: u32, keys: &[String], now: Timestamp) -> Result<PlanApplied> {
        runs::plan_units(self, run, attempt, keys, now).await
    }

    async fn complete_units(
        &self,
        run: RunId,
        attempt: u32,
        results: &[UnitResult],
        now: Timestamp,
    ) -> Result<UnitsApplied> {
        runs::complete_units(self, run, attempt, results, now).await
    }

    async fn fan_out(&self, parent: RunId, attempt: u32, children: &[NewRun], now: Timestamp) -> Result<PlanApplied> {
        runs::fan_out(self, parent, attempt, children, now).await
    }

    async fn set_phase(
        &self,
        run: RunId,
        attempt: u32,
        phase: u32,
        phases: u32,
        label: &str,
        now: Timestamp,
    ) -> Result<bool> {
        runs::set_phase(self, run, attempt, phase, phases, label, now).await
    }

    async fn add_counts(&self, w: &CountsWrite, now: Timestamp) -> Result<bool> {
        runs::add_counts(self, w, now).await
    }

    async fn request_cancel(
        &self,
        run: RunId,
        actor: Actor,
        audit: Option<&AuditEntry>,
        now: Timestamp,
    ) -> Result<bool> {
        runs::request_cancel(self, run, actor, audit, now).await
    }

    async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<Notification>> {
        let found = sqlx::query(&format!(
            "SELECT {} FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            rows::NOTIFICATION_COLUMNS
        ))
        .bind(user.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        found.iter().map(rows::notification_from_row).collect()
    }

    async fn unread_count(&self, user: UserId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(user.to_string())
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn mark_read(&self, user: UserId, id: NotificationId, now: Timestamp) -> Result<bool> {
        let mut tx = self.write().await?;
        let done =
            sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
                .bind(now.unix_micros())
                .bind(id.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn metrics(&self, now: Timestamp) -> Result<MetricsSnapshot> {
        let groups = sqlx::query(crate::sqlgen::METRICS_ACTIVE)
            .fetch_all(&self.reader)
            .await?;
        let mut out = MetricsSnapshot::default();
        for r in &groups {
            out.active.push(MetricsGroup {
                op_type: r.text("type")?,
                status: r.text("status")?,
                count: u64::try_from(r.int("n")?).unwrap_or(0),
            });
        }
        let depth: i64 = sqlx::query_scalar(crate::sqlgen::METRICS_QUEUE_DEPTH)
            .bind(now.unix_micros())
            .fetch_one(&self.reader)
            .await?;
        out.queue_depth = u64::try_from(depth).unwrap_or(0);
        Ok(out)
    }

    async fn create_session(&self, id_hash: &str, user: UserId, now: Timestamp) -> Result<()> {
        auth::create_session(self, id_hash, user, now).await
    }

    async fn find_session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        auth::find_session(self, id_hash).await
    }

    async fn touch_session(&self, id_hash: &str, now: Timestamp) -> Result<()> {
        auth::touch_session(self, id_hash, now).await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        auth::delete_session(self, id_hash).await
    }

    async fn set_password(&self, user: UserId, password_hash: &str, actor: Actor, now: Timestamp) -> Result<()> {
        auth::set_password(self, user, password_hash, actor, now).await
    }

    async fn disable_user(&self, user: UserId, actor: Actor, now: Timestamp) -> Result<()> {
        auth::disable_user(self, user, actor, now).await
    }

    async fn create_api_token(
        &self,
        id_hash: &str,
        user: UserId,
        name: &str,
        actor: Actor,
        now: Timestamp,
    ) -> Result<()> {
        auth::create_api_token(self, id_hash, user, name, actor, now).await
    }

    async fn find_api_token(&self, id_hash: &str) -> Result<Option<TokenRecord>> {
        auth::find_api_token(self, id_hash).await
    }
}
