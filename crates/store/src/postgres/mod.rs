//! The PostgreSQL backend: production, one or many nodes.
//!
//! Batches are written with `UNNEST` (one statement per table for a whole
//! batch of starts or unit results). Row locks order concurrent writers: a
//! join takes `FOR SHARE` on the active twin so its completion waits for the
//! new subscriber; progress writes lock their run `FOR UPDATE` to fence
//! stale attempts. Batch inserts are sorted by identity so concurrent
//! batches take unique-index locks in one order; a deadlock that still
//! happens is retried.

mod auth;
mod directory;
mod lifecycle;
mod runs;
mod schedules;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::query::Query;
use sqlx::{Executor, Transaction};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::Membership;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::problem::{ProblemClass, Thresholds};
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::rows::{self, RUN_COLUMNS, RowExt as _};
use crate::sqlgen::{self, Arg};
use crate::{Backend, BackendKind};

/// PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    signals: tokio::sync::broadcast::Sender<Signal>,
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

pub(crate) type Tx = Transaction<'static, Postgres>;

/// Binds shared-SQL arguments in PostgreSQL's encoding.
pub(crate) fn bind_args<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    args: &'q [Arg],
) -> Query<'q, Postgres, PgArguments> {
    for a in args {
        q = match a {
            Arg::Uuid(u) => q.bind(*u),
            Arg::Ts(t) => q.bind(t.to_datetime()),
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
        };
    }
    q
}

/// Whether PostgreSQL aborted the transaction to break a deadlock or a
/// serialization conflict (safe to retry as a whole).
pub(crate) fn is_retryable_conflict(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// Announces a change to every node; delivered when the transaction
/// commits (and coalesced by PostgreSQL within it).
pub(crate) async fn notify(conn: &mut PgConnection, s: &Signal) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::signal::CHANNEL)
        .bind(crate::signal::encode(s))
        .execute(conn)
        .await?;
    Ok(())
}

/// Forwards NOTIFY payloads to this node's listeners; after a lost and
/// re-established connection it announces "anything may have changed".
async fn listen(pool: PgPool, tx: tokio::sync::broadcast::Sender<Signal>) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if l.listen(crate::signal::CHANNEL).await.is_ok() {
                    let _ = tx.send(Signal::RunsChanged(Vec::new()));
                    let _ = tx.send(Signal::Wake);
                    loop {
                        match l.try_recv().await {
                            Ok(Some(n)) => {
                                if let Some(sig) = crate::signal::decode(n.payload()) {
                                    let _ = tx.send(sig);
                                }
                            }
                            // reconnected: notifications may have been lost
                            Ok(None) => {
                                tracing::info!("the PostgreSQL notification channel reconnected");
                                let _ = tx.send(Signal::RunsChanged(Vec::new()));
                                let _ = tx.send(Signal::Wake);
                            }
                            Err(e) => {
                                if !pool.is_closed() {
                                    tracing::warn!(error = %e, "lost the PostgreSQL notification channel; reconnecting");
                                }
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for PostgreSQL notifications; retrying"),
        }
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(crate) async fn insert_event(
    conn: &mut PgConnection,
    run: RunId,
    kind: RunEventKind,
    actor: Option<UserId>,
    attempt: Option<u32>,
    detail: serde_json::Value,
    at: Timestamp,
) -> Result<()> {
    sqlx::query("INSERT INTO run_events (run_id, at, kind, actor_id, attempt, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(run.as_uuid())
        .bind(at.to_datetime())
        .bind(kind.as_str())
        .bind(actor.map(|a| a.as_uuid()))
        .bind(attempt.map(|a| i32::try_from(a).unwrap_or(i32::MAX)))
        .bind(sqlx::types::Json(detail))
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn insert_audit(conn: &mut PgConnection, e: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_kind, actor_id, workspace_id, tenant_id, action, target_type, target_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.at.to_datetime())
    .bind(e.actor.kind())
    .bind(e.actor.user_id().map(|u| u.as_uuid()))
    .bind(e.workspace_id.map(|w| w.as_uuid()))
    .bind(e.tenant_id.map(|t| t.as_uuid()))
    .bind(&e.action)
    .bind(&e.target_type)
    .bind(&e.target_id)
    .bind(sqlx::types::Json(&e.detail))
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn fetch_run(conn: &mut PgConnection, id: RunId, lock: bool) -> Result<Option<Run>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM operation_runs WHERE id = $1{lock}"))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(rows::run_from_row).transpose()
}

impl PgStore {
    /// Connects to `url` (`postgres://…`).
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        Self::connect_with(opts, 16).await
    }

    /// Connects with explicit options and pool size (tests use this to put
    /// each case in a schema of its own).
    pub async fn connect_with(opts: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        let (signals, _) = tokio::sync::broadcast::channel(1024);
        Ok(Self {
            pool,
            signals,
            listening: Default::default(),
        })
    }

    /// The pool (LISTEN/NOTIFY and advisory locks need a connection).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }
}

#[async_trait]
impl Backend for PgStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_workspace(&self, name: &str, actor: Actor, now: Timestamp) -> Result<Workspace> {
        directory::create_workspace(self, name, actor, now).await
    }

    async fn find_workspace(&self, key: &str) -> Result<Option<Workspace>> {
        directory::find_workspace(&self.pool, key).await
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        directory::list_workspaces(&self.pool).await
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
        directory::find_tenants(&self.pool, key, workspace).await
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        directory::get_tenant(&self.pool, id).await
    }

    async fn list_tenants(&self, workspace: WorkspaceId) -> Result<Vec<Tenant>> {
        directory::list_tenants(&self.pool, workspace).await
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
        directory::find_user(&self.pool, key).await
    }

    async fn password_hash(&self, user: UserId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user.as_uuid())
            .fetch_optional(&self.pool)
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
        directory::tenant_access(&self.pool, tenant, user).await
    }

    async fn membership(&self, user: UserId, workspace: WorkspaceId) -> Result<Option<Membership>> {
        directory::membership(&self.pool, user, Some(workspace))
            .await
            .map(|mut v| v.pop())
    }

    async fn memberships_of(&self, user: UserId) -> Result<Vec<Membership>> {
        directory::membership(&self.pool, user, None).await
    }

    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<Member>> {
        directory::members(&self.pool, workspace).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, entry).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        directory::audit_log(&self.pool, limit).await
    }

    async fn start_runs(&self, batch: &[NewRun], now: Timestamp) -> Result<Vec<StartRecord>> {
        // A concurrent start may win an identity between our twin lookup and
        // our insert; the retry then finds that run and joins it.
        let mut tries = 0;
        loop {
            match runs::start_runs(self, batch, now).await {
                Err(e) if (runs::is_identity_conflict(&e) || is_retryable_conflict(&e)) && tries < 8 => tries += 1,
                other => return other,
            }
        }
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let mut conn = self.pool.acquire().await?;
        fetch_run(&mut conn, id, false).await
    }

    async fn list_runs(&self, q: &RunQuery) -> Result<RunPage> {
        let sql = sqlgen::list_runs(q);
        let found = bind_args(sqlx::query(&sql.text), &sql.args)
            .fetch_all(&self.pool)
            .await?;
        let mut runs = found.iter().map(rows::run_from_row).collect::<Result<Vec<_>>>()?;
        Ok(rows::page_of(&mut runs, q.limit))
    }

    async fn count_problems(&self, q: &CountQuery) -> Result<Vec<ProblemCount>> {
        let sql = sqlgen::count_problems(q);
        let found = bind_args(sqlx::query(&sql.text), &sql.args)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::problem_count_from_row).collect()
    }

    async fn run_events(&self, run: RunId) -> Result<Vec<RunEvent>> {
        let found = sqlx::query(
            "SELECT id, run_id, at, kind, actor_id, attempt, detail FROM run_events WHERE run_id = $1 ORDER BY id",
        )
        .bind(run.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(rows::event_from_row).collect()
    }

    async fn run_notified(&self, run: RunId) -> Result<Option<(u32, Timestamp)>> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS first FROM notifications WHERE run_id = $1")
            .bind(run.as_uuid())
            .fetch_one(&self.pool)
            .await?;
        let n = u32::try_from(row.int("n")?).unwrap_or(u32::MAX);
        Ok(row.opt_ts("first")?.filter(|_| n > 0).map(|at| (n, at)))
    }

    async fn run_units(&self, run: RunId, pending_only: bool, limit: u32) -> Result<Vec<UnitRecord>> {
        let found = sqlx::query(
            "SELECT unit_key, state, reason_code, message, child_run_id, updated_at FROM operation_units \
             WHERE run_id = $1 AND (NOT $2 OR state = 'pending') ORDER BY unit_key LIMIT $3",
        )
        .bind(run.as_uuid())
        .bind(pending_only)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(rows::unit_from_row).collect()
    }

    async fn subscribers(&self, run: RunId) -> Result<Vec<UserId>> {
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT user_id FROM run_subscribers WHERE run_id = $1 ORDER BY created_at, user_id")
                .bind(run.as_uuid())
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(UserId::from_uuid).collect())
    }

    async fn append_event(&self, e: &NewEvent) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_event(
            &mut conn,
            e.run_id,
            e.kind,
            e.actor_id,
            e.attempt,
            e.detail.clone(),
            e.at,
        )
        .await
    }

    async fn apply_transition(&self, w: &LifecycleWrite) -> Result<TransitionResult> {
        let mut tries = 0;
        loop {
            match lifecycle::apply_transition(self, w).await {
                Err(e) if is_retryable_conflict(&e) && tries < 5 => tries += 1,
                other => return other,
            }
        }
    }

    async fn complete_many(&self, writes: &[LifecycleWrite]) -> Result<Vec<TransitionResult>> {
        let mut tries = 0;
        loop {
            match lifecycle::complete_many(self, writes).await {
                Err(e) if is_retryable_conflict(&e) && tries < 5 => tries += 1,
                other => return other,
            }
        }
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
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::run_from_row).collect()
    }

    async fn runs_per_day(&self, scope: &RunScope, since: Timestamp) -> Result<Vec<(i64, ProblemClass, u64)>> {
        let sql = sqlgen::runs_per_day(scope, since);
        let found = bind_args(sqlx::query(&sql.text), &sql.args)
            .fetch_all(&self.pool)
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
        let rows: Vec<(time::OffsetDateTime, time::OffsetDateTime)> = sqlx::query_as(
            "SELECT started_at, completed_at FROM operation_runs WHERE type = $1 AND outcome = 'succeeded' \
             AND started_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2",
        )
        .bind(op.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, c)| Timestamp::from_datetime(c).since(Timestamp::from_datetime(s)))
            .collect())
    }

    async fn put_schedule(&self, s: &NewSchedule, actor: Actor, now: Timestamp) -> Result<Schedule> {
        schedules::put_schedule(self, s, actor, now).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        schedules::list_schedules(&self.pool).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        schedules::due_schedules(&self.pool, now, limit).await
    }

    async fn fire_schedule(&self, f: &ScheduleFire) -> Result<Option<StartRecord>> {
        schedules::fire_schedule(self, f).await
    }

    fn signals(&self) -> tokio::sync::broadcast::Receiver<Signal> {
        let rx = self.signals.subscribe();
        if !self.listening.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tokio::spawn(listen(self.pool.clone(), self.signals.clone()));
        }
        rx
    }

    async fn try_singleton(&self, name: &str) -> Result<Option<crate::SingletonGuard>> {
        let mut conn = self.pool.acquire().await?.detach();
        // a stable 64-bit key per duty name
        let key: i64 = sqlx::query_scalar("SELECT hashtextextended($1, 0)")
            .bind(format!("tenantatlas:{name}"))
            .fetch_one(&mut conn)
            .await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        Ok(held.then(|| crate::SingletonGuard::postgres(conn)))
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
        .bind(user.as_uuid())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(rows::notification_from_row).collect()
    }

    async fn unread_count(&self, user: UserId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(user.as_uuid())
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn mark_read(&self, user: UserId, id: NotificationId, now: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
                .bind(now.to_datetime())
                .bind(id.as_uuid())
                .bind(user.as_uuid())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn metrics(&self, now: Timestamp) -> Result<MetricsSnapshot> {
        let groups = sqlx::query(crate::sqlgen::METRICS_ACTIVE)
            .fetch_all(self.pool())
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
            .bind(now.to_datetime())
            .fetch_one(self.pool())
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
