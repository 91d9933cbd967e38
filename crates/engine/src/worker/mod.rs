//! The worker pool: claims due runs, executes their handlers, heartbeats,
//! retries, cancels, and shuts down gracefully.
//!
//! - **Claims** come in batches (PostgreSQL: `FOR UPDATE SKIP LOCKED`) as
//!   soon as a wake-up signal says work is due, or every poll interval.
//! - **Leases and fencing**: each claimed run carries a lease that heartbeats
//!   extend; every write of the run's handler names its attempt, so a worker
//!   that lost its lease changes nothing (late results land on the timeline).
//! - **Retries**: a retryable failure requeues the run with exponential
//!   backoff and jitter (`backon`) until the type's attempt limit, and not
//!   before the instant the failure names (a provider's `Retry-After`);
//!   finished units are not executed again.
//! - **Cancellation** reaches a handler within one heartbeat: the heartbeat
//!   answers "cancel requested" and the handler's context stops.
//! - **Shutdown**: stop claiming, let runs finish within a grace period, then
//!   release the rest so another worker takes them at once.
//! - **Orphans**: at start-up a worker puts back in the queue the runs that an
//!   earlier incarnation of its node left running (it died); they resume.

mod context;
mod handler;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::port::{HeartbeatAck, RequeueCause, Signal};
use backon::{BackoffBuilder, ExponentialBuilder};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::lifecycle::Outcome;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::run::Run;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use context::{RunContext, StopReason};
pub use handler::{Done, Handler, HandlerError, Operation, Registry};

use crate::{Completion, Engine, Result};

/// How a worker behaves.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The node's stable name: runs leased to `node/…` by an earlier
    /// incarnation are resumed at start-up. Give each worker process its own.
    pub node: String,
    /// Runs executed at once.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often running runs heartbeat (well under the lease).
    pub heartbeat: Duration,
    /// How often to look for due runs without a wake-up signal.
    pub poll: Duration,
    /// Most runs claimed at once.
    pub claim_batch: u32,
    /// How long in-flight runs may take to finish at shutdown.
    pub grace: Duration,
    /// Retry backoff: first delay and cap.
    pub backoff: (Duration, Duration),
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            node: default_node(),
            concurrency: 16,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(1),
            claim_batch: 256,
            grace: Duration::from_secs(10),
            backoff: (Duration::from_secs(2), Duration::from_secs(300)),
        }
    }
}

/// Retries `op` while the database is unreachable (a restart, a network
/// blip), for at most `limit`. Every write a worker makes is fenced or
/// idempotent, so repeating one whose answer was lost is safe.
pub(crate) async fn retrying<T, F, Fut>(limit: Duration, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Err(e) if e.is_transient() && start.elapsed() < limit => {
                tracing::warn!(error = %e, "the database is unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// How long freed permits may wait to be claimed together.
const CLAIM_LINGER: Duration = Duration::from_millis(10);

/// How long a worker keeps retrying one write while the database is away.
pub(crate) const RETRY_LIMIT: Duration = Duration::from_secs(120);

/// `hostname-pid`: unique per process, so without a configured node name no
/// process takes another's runs for orphans.
pub fn default_node() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

/// What a worker did before it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Runs claimed.
    pub claimed: u64,
    /// Runs released at shutdown.
    pub released: u64,
    /// Orphans of earlier incarnations put back in the queue at start-up.
    pub resumed_orphans: u64,
}

/// One worker process's pool.
pub struct Worker {
    engine: Engine,
    registry: Arc<Registry>,
    config: WorkerConfig,
    owner: String,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("owner", &self.owner).finish()
    }
}

impl Worker {
    /// A worker for `registry`'s operation types.
    pub fn new(engine: Engine, registry: Registry, config: WorkerConfig) -> Self {
        let incarnation = uuid::Uuid::now_v7().simple().to_string();
        let owner = format!("{}/{}", config.node, &incarnation[incarnation.len() - 12..]);
        Self {
            engine,
            registry: Arc::new(registry),
            config,
            owner,
        }
    }

    /// This incarnation's lease owner id (`node/incarnation`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs until `shutdown` fires, then shuts down gracefully.
    pub async fn run(self, shutdown: CancellationToken) -> Result<WorkerReport> {
        let mut report = WorkerReport::default();
        let orphans = self.engine.release_orphans(&self.config.node, &self.owner).await?;
        report.resumed_orphans = orphans.len() as u64;
        if !orphans.is_empty() {
            tracing::info!(count = orphans.len(), node = %self.config.node, "resuming runs an earlier incarnation left running");
        }
        // one rule with starts: a type that needs an opt-in (synthetic) is
        // executed only by a process that opted in, wherever it was started
        let types: Vec<_> = self
            .registry
            .catalog()
            .iter()
            .filter(|s| self.engine.enabled_spec(s.op).is_ok())
            .map(|s| s.op)
            .collect();
        if self.registry.catalog().iter().any(|s| !types.contains(&s.op)) {
            tracing::info!("this process does not opt in to synthetic runs: it leaves them to one that does");
        }
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let release = CancellationToken::new();
        let mut signals = self.engine.store().signals();
        let mut tasks: JoinSet<bool> = JoinSet::new();
        tracing::info!(owner = %self.owner, concurrency = self.config.concurrency, "worker started");
        // Claims are batched: freed permits accumulate for a moment (or until
        // a quarter of a batch is free) rather than each finished run
        // triggering a claim of one. After a claim that found less than it
        // asked for, the queue is empty: the next claim waits for a wake-up
        // signal or the poll interval.
        let batch_floor = (self.config.claim_batch as usize)
            .min(self.config.concurrency.max(1))
            .div_ceil(4)
            .max(1);
        let mut drained_queue = false;
        let mut last_claim = Instant::now() - CLAIM_LINGER;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            while let Some(done) = tasks.try_join_next() {
                if let Ok(true) = done {
                    report.released += 1;
                }
            }
            let free = permits.available_permits();
            if free > 0 && !drained_queue && (free >= batch_floor || last_claim.elapsed() >= CLAIM_LINGER) {
                let want = u32::try_from(free).unwrap_or(u32::MAX).min(self.config.claim_batch);
                last_claim = Instant::now();
                let began = Instant::now();
                match self
                    .engine
                    .claim_due(&self.owner, &types, want, self.config.lease)
                    .instrument(tracing::debug_span!("claim", worker = %self.owner, want))
                    .await
                {
                    Ok(runs) => {
                        tracing::debug!(
                            want,
                            got = runs.len(),
                            ms = began.elapsed().as_secs_f64() * 1e3,
                            "claimed"
                        );
                        drained_queue = (runs.len() as u32) < want;
                        report.claimed += runs.len() as u64;
                        for run in runs {
                            let Ok(permit) = permits.clone().acquire_owned().await else {
                                break;
                            };
                            let Some(handler) = self.registry.get(run.op_type) else {
                                continue;
                            };
                            let span = run_span(&run);
                            tasks.spawn(
                                execute(
                                    self.engine.clone(),
                                    handler,
                                    run,
                                    permit,
                                    release.clone(),
                                    self.config.clone(),
                                )
                                .instrument(span),
                            );
                        }
                        if !drained_queue && permits.available_permits() >= batch_floor {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming runs failed; retrying");
                        drained_queue = true;
                    }
                }
            }
            let wait = if drained_queue { self.config.poll } else { CLAIM_LINGER };
            tokio::select! {
                () = shutdown.cancelled() => break,
                s = signals.recv() => match s {
                    Ok(Signal::Wake) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => drained_queue = false,
                    Ok(Signal::RunsChanged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep(self.config.poll).await;
                        drained_queue = false;
                    }
                },
                () = tokio::time::sleep(wait) => drained_queue = false,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(true) = done {
                        report.released += 1;
                    }
                }
            }
        }
        tracing::info!(in_flight = tasks.len(), grace = ?self.config.grace, "worker stopping: no more claims");
        let drained = tokio::time::timeout(self.config.grace, async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(true) = done {
                    report.released += 1;
                }
            }
        })
        .await;
        if drained.is_err() {
            release.cancel();
            while let Some(done) = tasks.join_next().await {
                if let Ok(true) = done {
                    report.released += 1;
                }
            }
        }
        tracing::info!(?report, "worker stopped");
        Ok(report)
    }
}

/// The span a run's execution, heartbeats and completion run in: every
/// event inside carries the run, its tenant and workspace.
fn run_span(run: &Run) -> tracing::Span {
    let or_none = |id: Option<String>| id.unwrap_or_else(|| "none".to_owned());
    tracing::info_span!(
        "run",
        run.id = %run.id,
        run.type = run.op_type.as_str(),
        run.attempt = run.attempt,
        tenant.id = %or_none(run.tenant_id.map(|t| t.to_string())),
        workspace.id = %or_none(run.workspace_id.map(|w| w.to_string())),
    )
}

/// Executes one claimed run; answers whether it was released at shutdown.
async fn execute(
    engine: Engine,
    handler: Arc<dyn Handler>,
    run: Run,
    permit: OwnedSemaphorePermit,
    release: CancellationToken,
    config: WorkerConfig,
) -> bool {
    let _permit = permit;
    let (stop_tx, stop_rx) = watch::channel(None::<StopReason>);
    let stop_tx = Arc::new(stop_tx);
    let beats = {
        let (engine, run, stop_tx, config) = (engine.clone(), run.clone(), stop_tx.clone(), config.clone());
        tokio::spawn(
            async move {
                loop {
                    tokio::time::sleep(config.heartbeat).await;
                    match engine
                        .store()
                        .heartbeat(run.id, run.attempt, config.lease, engine.clock())
                        .await
                    {
                        Ok(HeartbeatAck::Extended { cancel_requested: true }) => {
                            stop_tx
                                .send_if_modified(|s| s.is_none().then(|| *s = Some(StopReason::Cancelled)).is_some());
                        }
                        Ok(HeartbeatAck::Extended {
                            cancel_requested: false,
                        }) => {}
                        Ok(HeartbeatAck::Fenced) => {
                            stop_tx.send_if_modified(|s| s.is_none().then(|| *s = Some(StopReason::Fenced)).is_some());
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed; the lease may lapse"),
                    }
                }
            }
            .instrument(tracing::Span::current()),
        )
    };
    let watcher = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            release.cancelled().await;
            stop_tx.send_if_modified(|s| s.is_none().then(|| *s = Some(StopReason::Shutdown)).is_some());
        })
    };
    let ctx = RunContext::new(engine.clone(), run.clone(), stop_rx);
    // The handler runs in its own task: a panic there is caught here and the
    // worker survives.
    let outcome = tokio::spawn(
        async move {
            let mut ctx = ctx;
            let result = handler.run(&mut ctx).await;
            let flushed = ctx.flush().await;
            (ctx.stop_reason(), ctx.planned_zero(), result, flushed)
        }
        .instrument(tracing::Span::current()),
    )
    .await;
    beats.abort();
    watcher.abort();
    match outcome {
        Ok((stop, zero, result, flushed)) => {
            let stop = stop.or_else(|| flushed.err().map(|_| StopReason::Fenced));
            finish(&engine, &run, stop, zero, result, &config).await
        }
        Err(e) if e.is_panic() => {
            tracing::error!("the operation's handler panicked");
            complete(
                &engine,
                &run,
                Outcome::Failed,
                Some(ReasonCode::InternalError),
                vec![Failure::new(
                    ReasonCode::InternalError,
                    "the operation's handler panicked",
                )],
                None,
            )
            .await;
            false
        }
        Err(_) => false,
    }
}

async fn complete(
    engine: &Engine,
    run: &Run,
    outcome: Outcome,
    reason: Option<ReasonCode>,
    failures: Vec<Failure>,
    plan_total: Option<u64>,
) {
    let done = retrying(RETRY_LIMIT, || {
        engine.finish_attempt(run, outcome, reason, failures.clone(), plan_total)
    })
    .await;
    match done {
        Ok(Completion::Completed { .. } | Completion::AlreadyCompleted(_)) => {}
        Ok(Completion::Fenced(_)) => {
            tracing::info!("completion arrived after the run moved on; ignored")
        }
        Err(e) => tracing::warn!(error = %e, "completing the run failed; the reconciler will see it"),
    }
}

/// The retry delay before attempt `attempt + 1`.
fn backoff(config: &WorkerConfig, attempt: u32) -> Duration {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(config.backoff.0)
        .with_max_delay(config.backoff.1)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    delays
        .nth(usize::try_from(attempt.saturating_sub(1)).unwrap_or(0))
        .unwrap_or(config.backoff.1)
}

/// When a retried run is due again: after its backoff, and never before the
/// instant the failure named (a provider's `Retry-After`).
fn retry_at(now: Timestamp, backoff: Duration, not_before: Option<Timestamp>) -> Timestamp {
    let after_backoff = now.plus(backoff);
    not_before.map_or(after_backoff, |nb| nb.max(after_backoff))
}

/// Turns a handler's result into the run's next state; answers whether the
/// run was released at shutdown.
async fn finish(
    engine: &Engine,
    run: &Run,
    stop: Option<StopReason>,
    zero_units: bool,
    result: std::result::Result<Done, HandlerError>,
    config: &WorkerConfig,
) -> bool {
    let plan_total = zero_units.then_some(0);
    match (stop, result) {
        (Some(StopReason::Fenced), _) => {}
        (Some(StopReason::Cancelled), _) => {
            complete(
                engine,
                run,
                Outcome::Cancelled,
                Some(ReasonCode::RunCancelled),
                Vec::new(),
                plan_total,
            )
            .await;
        }
        (Some(StopReason::Shutdown), Err(_)) => {
            match retrying(RETRY_LIMIT, || {
                engine.requeue(run.id, run.attempt, engine.now(), None, RequeueCause::Shutdown)
            })
            .await
            {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "releasing the run failed"),
            }
        }
        (_, Ok(Done::Succeeded)) => complete(engine, run, Outcome::Succeeded, None, Vec::new(), plan_total).await,
        (_, Ok(Done::Outcome(o, reason, failures))) => complete(engine, run, o, reason, failures, plan_total).await,
        (_, Ok(Done::FromUnits)) if zero_units => {
            complete(engine, run, Outcome::Succeeded, None, Vec::new(), Some(0)).await
        }
        (_, Ok(Done::FromUnits)) => {
            if let Err(e) = retrying(RETRY_LIMIT, || engine.complete_from_units(run.id, run.attempt)).await {
                tracing::warn!(error = %e, "completing the run failed; the reconciler will see it");
            }
        }
        (_, Err(HandlerError::Retryable { failure: f, not_before })) => {
            let limit = engine.spec(run.op_type).map_or(1, |s| s.max_attempts);
            if run.attempt < limit {
                let at = retry_at(engine.now(), backoff(config, run.attempt), not_before);
                tracing::info!(reason = %f.reason_code, available_at = %at, "retryable failure; requeued");
                if let Err(e) = retrying(RETRY_LIMIT, || {
                    engine.requeue(run.id, run.attempt, at, Some(f.clone()), RequeueCause::Retry)
                })
                .await
                {
                    tracing::warn!(error = %e, "requeueing the run failed");
                }
            } else {
                complete(
                    engine,
                    run,
                    Outcome::Failed,
                    Some(ReasonCode::RunAttemptsExhausted),
                    vec![f],
                    plan_total,
                )
                .await;
            }
        }
        (_, Err(HandlerError::Fatal(f))) => {
            let code = f.reason_code;
            complete(engine, run, Outcome::Failed, Some(code), vec![f], plan_total).await;
        }
        (_, Err(HandlerError::Blocked(message))) => {
            complete(
                engine,
                run,
                Outcome::Blocked,
                Some(ReasonCode::RunBlockedPrecondition),
                vec![Failure::new(ReasonCode::RunBlockedPrecondition, &message)],
                plan_total,
            )
            .await;
        }
        (None, Err(HandlerError::Stopped)) => {
            complete(
                engine,
                run,
                Outcome::Failed,
                Some(ReasonCode::InternalError),
                vec![Failure::new(
                    ReasonCode::InternalError,
                    "the handler stopped without a reason",
                )],
                plan_total,
            )
            .await;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_waits_for_the_later_of_backoff_and_not_before() {
        let now = Timestamp::from_unix_micros(1_700_000_000_000_000);
        let backoff = Duration::from_secs(4);
        assert_eq!(retry_at(now, backoff, None), now.plus(backoff));
        let later = now.plus(Duration::from_secs(90));
        assert_eq!(
            retry_at(now, backoff, Some(later)),
            later,
            "Retry-After beyond the backoff wins"
        );
        let sooner = now.plus(Duration::from_secs(1));
        assert_eq!(
            retry_at(now, backoff, Some(sooner)),
            now.plus(backoff),
            "never sooner than the backoff"
        );
        assert_eq!(
            retry_at(now, backoff, Some(now.minus(Duration::from_secs(9)))),
            now.plus(backoff)
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let c = WorkerConfig {
            backoff: (Duration::from_secs(2), Duration::from_secs(60)),
            ..WorkerConfig::default()
        };
        let first = backoff(&c, 1);
        assert!(
            first >= Duration::from_secs(2) && first <= Duration::from_secs(4),
            "{first:?}"
        );
        let third = backoff(&c, 3);
        assert!(third >= Duration::from_secs(8), "{third:?}");
        assert!(backoff(&c, 30) <= Duration::from_secs(120), "capped (plus jitter)");
    }
}
