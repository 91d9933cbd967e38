//! Real workers on real time: execution, retries, cancellation, panics,
//! shutdown, fencing and wake-ups.

use std::time::{Duration, Instant};

use serde_json::json;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::{Outcome, RunState};
use tenantatlas_domain::reason::ReasonCode;
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::worker::{Worker, WorkerConfig};
use tenantatlas_engine::{Engine, Initiator};
use tokio_util::sync::CancellationToken;

use crate::harness::{Ctx, Db};
use crate::start_synthetic;

fn fast(node: &str) -> WorkerConfig {
    WorkerConfig {
        node: node.to_owned(),
        concurrency: 8,
        lease: Duration::from_secs(3),
        heartbeat: Duration::from_millis(100),
        poll: Duration::from_millis(50),
        claim_batch: 16,
        grace: Duration::from_millis(300),
        backoff: (Duration::from_millis(10), Duration::from_millis(40)),
    }
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<tenantatlas_engine::Result<tenantatlas_engine::worker::WorkerReport>>,
}

impl Running {
    async fn stop(self) -> tenantatlas_engine::worker::WorkerReport {
        self.stop.cancel();
        self.task.await.unwrap().unwrap()
    }
}

fn spawn_worker(e: &Engine, config: WorkerConfig) -> Running {
    let stop = CancellationToken::new();
    let w = Worker::new(e.clone(), tenantatlas_ops::registry(), config);
    let task = tokio::spawn(w.run(stop.clone()));
    Running { stop, task }
}

async fn wait_for(c: &Ctx, id: RunId, what: &str, pred: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = c.store.get_run(id).await.unwrap().unwrap();
        if pred(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn completed(r: &Run) -> bool {
    matches!(r.state, RunState::Completed(_))
}

pub async fn a_worker_runs_counted_work_to_completion(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    let counted = start_synthetic(
        &e,
        Initiator::User(s.operator),
        s.a,
        json!({"units": 20, "unit_ms": 5, "fail_every": 7}),
    )
    .await
    .run;
    let indeterminate = start_synthetic(&e, Initiator::System, s.a, json!({"duration_ms": 50}))
        .await
        .run;
    let zero = start_synthetic(&e, Initiator::System, s.a, json!({"units": 0}))
        .await
        .run;
    let w = spawn_worker(&e, fast("n1"));
    let run = wait_for(&c, counted.id, "the counted run", completed).await;
    assert_eq!(run.state, RunState::Completed(Outcome::PartiallySucceeded));
    assert_eq!(
        (run.units.total, run.units.processed, run.units.failed),
        (Some(20), 20, 2)
    );
    assert_eq!(run.reason_code, Some(ReasonCode::UnitFailed));
    let kinds: Vec<_> = c.events(run.id).await.iter().map(|ev| ev.kind).collect();
    assert_eq!(
        kinds,
        [
            RunEventKind::Created,
            RunEventKind::Claimed,
            RunEventKind::UnitsPlanned,
            RunEventKind::Completed,
            RunEventKind::Notified
        ]
    );
    assert_eq!(c.store.notifications(s.operator, 5).await.unwrap().len(), 1);
    let ind = wait_for(&c, indeterminate.id, "the indeterminate run", completed).await;
    assert_eq!(ind.state, RunState::Completed(Outcome::Succeeded));
    assert!(ind.completed_at.unwrap().since(ind.started_at.unwrap()) >= Duration::from_millis(50));
    let z = wait_for(&c, zero.id, "the zero-unit run", completed).await;
    assert_eq!(
        (z.state, z.units.total),
        (RunState::Completed(Outcome::Succeeded), Some(0))
    );
    let report = w.stop().await;
    assert_eq!(report.claimed, 3);
}

pub async fn retries_back_off_then_succeed_without_redoing_units(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    let flaky = start_synthetic(&e, Initiator::System, s.a, json!({"units": 3, "fail_attempts": 2}))
        .await
        .run;
    let hopeless = start_synthetic(&e, Initiator::System, s.a, json!({"units": 3, "fail_attempts": 10}))
        .await
        .run;
    let w = spawn_worker(&e, fast("n1"));
    let run = wait_for(&c, flaky.id, "the flaky run", completed).await;
    assert_eq!((run.state, run.attempt), (RunState::Completed(Outcome::Succeeded), 3));
    let retries: Vec<_> = c
        .events(run.id)
        .await
        .into_iter()
        .filter(|ev| ev.kind == RunEventKind::RetryScheduled)
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0].detail["reason_code"], "provider.throttled");
    let gone = wait_for(&c, hopeless.id, "the hopeless run", completed).await;
    assert_eq!(
        (gone.state, gone.attempt),
        (RunState::Completed(Outcome::Failed), 3),
        "the synthetic type allows 3 attempts"
    );
    assert_eq!(gone.reason_code, Some(ReasonCode::RunAttemptsExhausted));
    assert_eq!(
        gone.failures[0].reason_code,
        ReasonCode::ProviderThrottled,
        "the last attempt's failure is kept"
    );
    w.stop().await;
}

pub async fn cancellation_reaches_a_running_handler(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    let run = start_synthetic(
        &e,
        Initiator::User(s.operator),
        s.a,
        json!({"units": 200, "unit_ms": 50}),
    )
    .await
    .run;
    let w = spawn_worker(&e, fast("n1"));
    wait_for(&c, run.id, "some progress", |r| r.units.processed >= 2).await;
    let asked = Instant::now();
    e.cancel(Initiator::User(s.operator), run.id).await.unwrap();
    let done = wait_for(&c, run.id, "the cancellation", completed).await;
    let took = asked.elapsed();
    assert_eq!(
        (done.state, done.reason_code),
        (RunState::Completed(Outcome::Cancelled), Some(ReasonCode::RunCancelled))
    );
    assert!(
        took < Duration::from_millis(1_000),
        "within a heartbeat (100 ms) and a unit: {took:?}"
    );
    assert!(done.units.processed < 200);
    let kinds: Vec<_> = c.events(run.id).await.iter().map(|ev| ev.kind).collect();
    assert!(kinds.contains(&RunEventKind::CancelRequested) && kinds.contains(&RunEventKind::Completed));
    w.stop().await;
}

pub async fn a_panicking_handler_fails_its_run_and_the_worker_survives(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    let boom = start_synthetic(&e, Initiator::System, s.a, json!({"panic": true}))
        .await
        .run;
    let w = spawn_worker(&e, fast("n1"));
    let run = wait_for(&c, boom.id, "the panicking run", completed).await;
    assert_eq!(
        (run.state, run.reason_code),
        (RunState::Completed(Outcome::Failed), Some(ReasonCode::InternalError))
    );
    assert!(
        !run.failures[0].message.as_str().contains("synthetic panic"),
        "panic text is not shown"
    );
    let after = start_synthetic(&e, Initiator::System, s.a, json!({"units": 2}))
        .await
        .run;
    let ok = wait_for(&c, after.id, "a run after the panic", completed).await;
    assert_eq!(ok.state, RunState::Completed(Outcome::Succeeded));
    w.stop().await;
}

pub async fn shutdown_releases_runs_for_another_worker(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    let run = start_synthetic(&e, Initiator::System, s.a, json!({"units": 40, "unit_ms": 40}))
        .await
        .run;
    let first = spawn_worker(&e, fast("n1"));
    wait_for(&c, run.id, "some progress", |r| r.units.processed >= 3).await;
    let report = first.stop().await;
    assert_eq!(report.released, 1);
    let released = c.store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!((released.state, released.attempt), (RunState::Queued, 1));
    let done_before = released.units.processed;
    assert!((3..40).contains(&done_before));
    let second = spawn_worker(&e, fast("n2"));
    let done = wait_for(&c, run.id, "completion on the second worker", completed).await;
    assert_eq!((done.state, done.attempt), (RunState::Completed(Outcome::Succeeded), 2));
    assert_eq!(done.units.processed, 40, "every unit once");
    let kinds: Vec<_> = c.events(run.id).await.iter().map(|ev| ev.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == RunEventKind::Released).count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == RunEventKind::Claimed).count(), 2);
    second.stop().await;
}

pub async fn a_reconciled_run_ignores_late_results(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    // throttled on its first two attempts, so the lapse below comes on its
    // last: the sweep fails it instead of resuming it
    let run = start_synthetic(
        &e,
        Initiator::System,
        s.a,
        json!({"units": 30, "unit_ms": 100, "fail_attempts": 2}),
    )
    .await
    .run;
    // heartbeats far apart: the 1 s lease lapses while the handler works
    let cfg = WorkerConfig {
        lease: Duration::from_secs(1),
        heartbeat: Duration::from_secs(30),
        ..fast("n1")
    };
    let w = spawn_worker(&e, cfg);
    wait_for(&c, run.id, "some progress", |r| r.units.processed >= 1).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let sweep = e.reconcile_sweep(false).await.unwrap();
    assert!(sweep.resumed.is_empty(), "its last attempt: {:?}", sweep.resumed);
    assert_eq!(
        sweep.reconciled.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![run.id]
    );
    let at_reconcile = c.store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(at_reconcile.reason_code, Some(ReasonCode::RunStaleReconciled));
    // the handler's next write is refused and written on the timeline
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if c.events(run.id)
            .await
            .iter()
            .any(|ev| ev.kind == RunEventKind::LateResultIgnored)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no late result was recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = c.store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(
        after.units.processed, at_reconcile.units.processed,
        "late results change nothing"
    );
    assert_eq!(after.state, RunState::Completed(Outcome::Failed));
    // the worker is still working
    let next = start_synthetic(&e, Initiator::System, s.a, json!({"units": 1}))
        .await
        .run;
    wait_for(&c, next.id, "the next run", completed).await;
    w.stop().await;
}

pub async fn an_idle_worker_wakes_on_a_start(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    let w = spawn_worker(
        &e,
        WorkerConfig {
            poll: Duration::from_secs(30),
            ..fast("n1")
        },
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let run = start_synthetic(&e, Initiator::System, s.a, json!({"units": 0}))
        .await
        .run;
    wait_for(&c, run.id, "the woken claim", completed).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the start, not the 30 s poll: {:?}",
        started.elapsed()
    );
    w.stop().await;
}

/// Fails its first attempt as a provider would answer 429 with
/// `Retry-After: retry_after` (or as an outage, without one), then succeeds.
struct RetryAfter {
    retry_after: Option<Duration>,
}

#[async_trait::async_trait]
impl tenantatlas_engine::worker::Handler for RetryAfter {
    async fn run(
        &self,
        ctx: &mut tenantatlas_engine::worker::RunContext,
    ) -> Result<tenantatlas_engine::worker::Done, tenantatlas_engine::worker::HandlerError> {
        if ctx.run().attempt > 1 {
            return Ok(tenantatlas_engine::worker::Done::Succeeded);
        }
        let e = tenantatlas_engine::worker::HandlerError::retryable(ReasonCode::ProviderThrottled, "throttled");
        Err(match self.retry_after {
            Some(d) => e.not_before(ctx.now().plus(d)),
            None => e,
        })
    }
}

/// Law 12 with the manual clock: a retryable failure that names when to
/// retry (Retry-After) is requeued for then, not for the shorter backoff,
/// and runs again only once the clock gets there; a failure that names an
/// instant sooner than the backoff waits for the backoff.
pub async fn retry_after_steers_the_requeue(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    for (retry_after, due_in) in [
        (Some(Duration::from_secs(600)), Duration::from_secs(600)),
        (Some(Duration::ZERO), Duration::from_millis(10)),
    ] {
        let registry = tenantatlas_engine::worker::Registry::new()
            .with_handler(&tenantatlas_ops::synthetic::SPEC, RetryAfter { retry_after });
        let stop = CancellationToken::new();
        let task = tokio::spawn(Worker::new(c.engine.clone(), registry, fast("n1")).run(stop.clone()));
        let run = start_synthetic(&c.engine, Initiator::System, s.a, json!({})).await.run;
        let failed_at = c.clock_now();
        let requeued = wait_for(&c, run.id, "the requeue", |r| {
            r.state == RunState::Queued && r.attempt == 1
        })
        .await;
        let backoff_max = Duration::from_millis(40 * 2); // the cap, plus jitter
        if due_in > backoff_max {
            assert_eq!(
                requeued.available_at,
                failed_at.plus(due_in),
                "due when Retry-After says"
            );
        } else {
            let wait = requeued.available_at.since(failed_at);
            assert!(
                (due_in..=backoff_max).contains(&wait),
                "a Retry-After sooner than the backoff waits for the backoff: {wait:?}"
            );
        }
        let retries: Vec<_> = c
            .events(run.id)
            .await
            .into_iter()
            .filter(|ev| ev.kind == RunEventKind::RetryScheduled)
            .collect();
        assert_eq!(retries.len(), 1);
        // frozen clock: not claimed again before it is due
        tokio::time::sleep(Duration::from_millis(300)).await;
        let waiting = c.store.get_run(run.id).await.unwrap().unwrap();
        assert_eq!(
            (waiting.state, waiting.attempt),
            (RunState::Queued, 1),
            "not before it is due"
        );
        c.clock.advance(due_in.max(backoff_max));
        let done = wait_for(&c, run.id, "the second attempt", completed).await;
        assert_eq!((done.state, done.attempt), (RunState::Completed(Outcome::Succeeded), 2));
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, tenantatlas_engine::port::Fence)>>>;

/// Records what its run's context says: the tenant, the fence.
struct SeesItsRun {
    seen: Seen,
}

#[async_trait::async_trait]
impl tenantatlas_engine::worker::Handler for SeesItsRun {
    async fn run(
        &self,
        ctx: &mut tenantatlas_engine::worker::RunContext,
    ) -> Result<tenantatlas_engine::worker::Done, tenantatlas_engine::worker::HandlerError> {
        let fence = ctx.fence();
        let tenant = ctx.tenant().await?.map(|t| t.name.clone());
        self.seen.lock().unwrap().push((tenant, fence));
        Ok(tenantatlas_engine::worker::Done::Succeeded)
    }
}

/// A handler reaches its run's tenant, and the fence its writes carry is
/// its own run and attempt.
pub async fn a_handler_sees_its_tenant_and_its_fence(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let seen = Seen::default();
    let registry = tenantatlas_engine::worker::Registry::new().with_handler(
        &tenantatlas_ops::synthetic::SPEC,
        SeesItsRun {
            seen: std::sync::Arc::clone(&seen),
        },
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(Worker::new(c.engine.clone(), registry, fast("n1")).run(stop.clone()));
    let run = start_synthetic(&c.engine, Initiator::System, s.b, json!({})).await.run;
    let done = wait_for(&c, run.id, "the run", completed).await;
    assert_eq!(done.state, RunState::Completed(Outcome::Succeeded));
    stop.cancel();
    task.await.unwrap().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (tenant, fence) = &seen[0];
    assert_eq!(tenant.as_deref(), Some("Tenant B"));
    assert_eq!((fence.run(), fence.attempt()), (run.id, 1));
}

/// One rule for the synthetic opt-in: a process that did not opt in
/// neither starts nor executes synthetic runs, wherever they were started.
pub async fn a_process_without_the_opt_in_leaves_synthetic_runs_alone(db: Db) {
    let (c, e) = Ctx::real_time(db).await;
    let s = c.seed().await;
    let run = start_synthetic(&e, Initiator::System, s.a, json!({"units": 0}))
        .await
        .run;
    let plain = Engine::new(
        c.store.clone(),
        std::sync::Arc::new(tenantatlas_engine::SystemClock),
        tenantatlas_engine::EngineConfig {
            catalog: tenantatlas_ops::catalog(),
            enable_synthetic: false,
            ..tenantatlas_engine::EngineConfig::default()
        },
    );
    let w = spawn_worker(&plain, fast("plain"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let report = w.stop().await;
    assert_eq!(report.claimed, 0);
    assert_eq!(
        c.store.get_run(run.id).await.unwrap().unwrap().state,
        RunState::Queued,
        "left for a process that opted in"
    );
    let w = spawn_worker(&e, fast("opted-in"));
    let done = wait_for(&c, run.id, "the opted-in worker", completed).await;
    assert_eq!(done.state, RunState::Completed(Outcome::Succeeded));
    w.stop().await;
}
