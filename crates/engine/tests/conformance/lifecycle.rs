use std::time::Duration;

use serde_json::json;
use tenantatlas_domain::access::Capability;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::lifecycle::{Outcome, RunState, RunStatus};
use tenantatlas_domain::problem::{ProblemClass, classify};
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::{CancelOutcome, Completion, EngineError, Initiator, RequeueCause};

use crate::harness::{Ctx, Db};
use crate::{claim, params, start_synthetic};

pub async fn completion_notifies_every_subscriber_once(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let op = OperationType::InventorySync;
    let first = c
        .engine
        .start(Initiator::User(s.operator), s.a, op, params(op, json!({})))
        .await
        .unwrap();
    c.engine
        .start(Initiator::User(s.owner), s.a, op, params(op, json!({})))
        .await
        .unwrap();
    c.engine
        .start(Initiator::User(s.owner), s.a, op, params(op, json!({})))
        .await
        .unwrap(); // same user twice
    let id = first.run.id;
    let running = claim(&c.engine, id).await;
    assert_eq!((running.state, running.attempt), (RunState::Running, 1));
    assert_eq!(running.lease.as_ref().map(|l| l.owner.as_str()), Some("worker-1"));
    assert_eq!(running.started_at, Some(c.clock_now()));
    c.advance(Duration::from_secs(5));
    let done = c
        .engine
        .complete(
            id,
            Some(1),
            Outcome::Failed,
            Some(ReasonCode::ProviderAuthFailed),
            vec![Failure::new(
                ReasonCode::ProviderAuthFailed,
                "401 for admin@contoso.test with Bearer abc.def.ghi",
            )],
        )
        .await
        .unwrap();
    let Completion::Completed { run, mut notified } = done else {
        panic!("{done:?}")
    };
    notified.sort();
    let mut want = vec![s.operator, s.owner];
    want.sort();
    assert_eq!(notified, want, "the starter and the joiner, once each");
    assert_eq!(run.state, RunState::Completed(Outcome::Failed));
    assert_eq!(run.completed_at, Some(c.clock_now()));
    assert!(run.lease.is_none());
    assert_eq!(run.reason_code, Some(ReasonCode::ProviderAuthFailed));
    let msg = run.failures[0].message.as_str();
    assert!(!msg.contains("admin@") && !msg.contains("abc.def"), "{msg}");
    // completing again: nothing changes, nobody is notified again
    for outcome in [Outcome::Failed, Outcome::Succeeded] {
        let again = c.engine.complete(id, None, outcome, None, vec![]).await.unwrap();
        assert!(matches!(again, Completion::AlreadyCompleted(_)), "{again:?}");
    }
    for user in [s.operator, s.owner] {
        let inbox = c.store.notifications(user, 10).await.unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].run_id, id);
        assert_eq!(inbox[0].title, "Inventory sync failed");
        assert_eq!(inbox[0].view_url, format!("/admin/operations/{id}"));
        assert!(inbox[0].body.contains("Next step:"));
        assert!(!inbox[0].body.contains("admin@"));
    }
    assert!(c.store.notifications(s.readonly, 10).await.unwrap().is_empty());
    let kinds: Vec<_> = c.events(id).await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            RunEventKind::Created,
            RunEventKind::Joined,
            RunEventKind::Joined,
            RunEventKind::Claimed,
            RunEventKind::Completed,
            RunEventKind::Notified
        ]
    );
}

pub async fn system_runs_notify_nobody(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::System, s.a, json!({})).await;
    claim(&c.engine, st.run.id).await;
    let done = c
        .engine
        .complete(st.run.id, Some(1), Outcome::Succeeded, None, vec![])
        .await
        .unwrap();
    assert!(matches!(done, Completion::Completed { ref notified, .. } if notified.is_empty()));
    let kinds: Vec<_> = c.events(st.run.id).await.iter().map(|e| e.kind).collect();
    assert!(!kinds.contains(&RunEventKind::Notified));
    for u in [s.owner, s.operator] {
        assert!(c.store.notifications(u, 10).await.unwrap().is_empty());
    }
    // system-scope runs (no tenant) work too, and dedupe
    let p1 = c
        .engine
        .start_system(
            OperationType::TelemetryPrune,
            params(OperationType::TelemetryPrune, json!({})),
        )
        .await
        .unwrap();
    let p2 = c
        .engine
        .start_system(
            OperationType::TelemetryPrune,
            params(OperationType::TelemetryPrune, json!({})),
        )
        .await
        .unwrap();
    assert!(!p1.joined && p2.joined);
    assert_eq!(p1.run.id, p2.run.id);
    assert_eq!((p1.run.workspace_id, p1.run.tenant_id), (None, None));
}

pub async fn illegal_transitions_are_refused(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::System, s.a, json!({})).await;
    // a queued run cannot succeed without running
    let err = c
        .engine
        .complete(st.run.id, None, Outcome::Succeeded, None, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Refused(_)), "{err:?}");
    // a worker holding a wrong attempt is fenced
    claim(&c.engine, st.run.id).await;
    let fenced = c
        .engine
        .complete(st.run.id, Some(7), Outcome::Succeeded, None, vec![])
        .await
        .unwrap();
    assert!(matches!(fenced, Completion::Fenced(_)));
    // claiming a running run is not possible
    assert!(
        c.engine
            .claim(st.run.id, "w2", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
    let run = c.store.get_run(st.run.id).await.unwrap().unwrap();
    assert_eq!((run.state, run.attempt), (RunState::Running, 1));
}

pub async fn cancel_queued_running_and_completed(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let queued = start_synthetic(&c.engine, Initiator::User(s.operator), s.a, json!({})).await;
    let out = c.engine.cancel(Initiator::User(s.owner), queued.run.id).await.unwrap();
    let CancelOutcome::Cancelled(run) = out else {
        panic!("{out:?}")
    };
    assert_eq!(run.state, RunState::Completed(Outcome::Cancelled));
    assert_eq!(run.reason_code, Some(ReasonCode::RunCancelled));
    assert_eq!(
        classify(&run, c.clock_now(), &c.engine.thresholds()),
        ProblemClass::Cancelled
    );
    let events = c.events(run.id).await;
    let completed = events.iter().find(|e| e.kind == RunEventKind::Completed).unwrap();
    assert_eq!(completed.actor_id, Some(s.owner), "the timeline says who cancelled");
    assert_eq!(
        c.store.notifications(s.operator, 10).await.unwrap().len(),
        1,
        "the starter learns of it"
    );
    let audit = c.store.audit_log(10).await.unwrap();
    assert_eq!(audit[0].entry.action, "run.cancel");
    assert_eq!(audit[0].entry.target_id.as_deref(), Some(run.id.to_string().as_str()));

    let running = start_synthetic(&c.engine, Initiator::User(s.operator), s.a, json!({})).await;
    claim(&c.engine, running.run.id).await;
    let out = c
        .engine
        .cancel(Initiator::User(s.operator), running.run.id)
        .await
        .unwrap();
    let CancelOutcome::Requested(run) = out else {
        panic!("{out:?}")
    };
    assert_eq!(run.state, RunState::Running, "its worker completes it");
    assert_eq!(run.cancel_requested_at, Some(c.clock_now()));
    assert!(
        c.events(run.id)
            .await
            .iter()
            .any(|e| e.kind == RunEventKind::CancelRequested && e.actor_id == Some(s.operator))
    );
    c.engine
        .complete(
            run.id,
            Some(1),
            Outcome::Cancelled,
            Some(ReasonCode::RunCancelled),
            vec![],
        )
        .await
        .unwrap();
    let out = c.engine.cancel(Initiator::User(s.operator), run.id).await.unwrap();
    assert!(matches!(out, CancelOutcome::AlreadyCompleted(_)));
}

pub async fn cancel_is_authorized(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::System, s.a, json!({})).await;
    let id = st.run.id;
    assert!(matches!(
        c.engine.cancel(Initiator::User(s.readonly), id).await,
        Err(EngineError::Forbidden(Capability::CancelRuns))
    ));
    assert!(matches!(
        c.engine.cancel(Initiator::User(s.outsider), id).await,
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        c.engine.cancel(Initiator::User(s.scoped), id).await,
        Err(EngineError::NotFound(_))
    ));
    assert_eq!(
        c.store.get_run(id).await.unwrap().unwrap().state,
        RunState::Queued,
        "refusals change nothing"
    );
    assert!(matches!(
        c.engine.cancel(Initiator::System, id).await,
        Ok(CancelOutcome::Cancelled(_))
    ));
}

pub async fn block_and_requeue(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::User(s.operator), s.a, json!({})).await;
    claim(&c.engine, st.run.id).await;
    // a retryable failure goes back to the queue, later
    let later = c.clock_now().plus(Duration::from_secs(30));
    assert!(
        c.engine
            .requeue(
                st.run.id,
                1,
                later,
                Some(Failure::new(ReasonCode::ProviderThrottled, "429")),
                RequeueCause::Retry
            )
            .await
            .unwrap()
    );
    let run = c.store.get_run(st.run.id).await.unwrap().unwrap();
    assert_eq!((run.state, run.available_at, run.attempt), (RunState::Queued, later, 1));
    assert!(run.lease.is_none());
    let retry = c
        .events(run.id)
        .await
        .into_iter()
        .find(|e| e.kind == RunEventKind::RetryScheduled)
        .unwrap();
    assert_eq!(retry.detail["reason_code"], "provider.throttled");
    assert!(
        !c.engine
            .requeue(st.run.id, 1, later, None, RequeueCause::Retry)
            .await
            .unwrap(),
        "a queued run cannot be requeued"
    );
    let again = claim(&c.engine, st.run.id).await;
    assert_eq!(again.attempt, 2);
    let blocked = c
        .engine
        .block(st.run.id, Some(2), "tenant has no provider for client_secret=abc")
        .await
        .unwrap();
    let Completion::Completed { run, notified } = blocked else {
        panic!()
    };
    assert_eq!(run.state, RunState::Completed(Outcome::Blocked));
    assert_eq!(run.reason_code, Some(ReasonCode::RunBlockedPrecondition));
    assert!(!run.failures[0].message.as_str().contains("abc"));
    assert_eq!(notified, vec![s.operator]);
    assert_eq!(run.state.bucket().as_str(), "failed");
}

pub async fn reconcile_keeps_lineage(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::User(s.operator), s.a, json!({})).await;
    let running = claim(&c.engine, st.run.id).await;
    // not stale yet: reconcile is refused (fenced)
    let early = c.engine.reconcile(running.id, &running).await.unwrap();
    assert!(matches!(early, Completion::Fenced(_)));
    c.advance(Duration::from_secs(61));
    let th = &c.engine.thresholds();
    assert_eq!(classify(&running, c.clock_now(), th), ProblemClass::ActiveStale);
    let done = c.engine.reconcile(running.id, &running).await.unwrap();
    let Completion::Completed { run, notified } = done else {
        panic!("{done:?}")
    };
    assert_eq!(run.state, RunState::Completed(Outcome::Failed));
    assert_eq!(run.reason_code, Some(ReasonCode::RunStaleReconciled));
    let lineage = run.reconciliation.clone().unwrap();
    assert_eq!(lineage.previous_status, RunStatus::Running);
    assert_eq!(lineage.last_heartbeat_at, running.heartbeat_at);
    assert_eq!(lineage.reconciled_at, c.clock_now());
    assert_eq!(classify(&run, c.clock_now(), th), ProblemClass::Reconciled);
    assert_eq!(notified, vec![s.operator]);
    let n = &c.store.notifications(s.operator, 1).await.unwrap()[0];
    assert_eq!(n.title, "Synthetic workload was reconciled as stale");
    let kinds: Vec<_> = c.events(run.id).await.iter().map(|e| e.kind).collect();
    assert!(
        kinds.ends_with(&[
            RunEventKind::Completed,
            RunEventKind::Reconciled,
            RunEventKind::Notified
        ]),
        "{kinds:?}"
    );
}

/// A hook and the clock reading it fires at.
type Trap = Option<(u32, Box<dyn FnOnce() + Send>)>;

/// A clock that, once armed, runs `hook` at its `n`-th reading: a way to
/// land a write at an exact point inside the engine.
struct TrapClock {
    inner: std::sync::Arc<tenantatlas_engine::ManualClock>,
    trap: std::sync::Mutex<Trap>,
}

impl tenantatlas_engine::Clock for TrapClock {
    fn now(&self) -> tenantatlas_domain::Timestamp {
        let fire = {
            let mut trap = self.trap.lock().unwrap();
            match trap.as_mut() {
                Some((n, _)) if *n > 1 => {
                    *n -= 1;
                    None
                }
                Some(_) => trap.take().map(|(_, hook)| hook),
                None => None,
            }
        };
        if let Some(hook) = fire {
            hook();
        }
        self.inner.now()
    }
}

/// Issue 9, item 9: a heartbeat that lands after the reconciler judged a
/// run stale, and before its write, keeps the run alive — the write is
/// conditioned on the liveness it judged, not only on status and attempt.
pub async fn a_heartbeat_between_the_reconcilers_read_and_write_keeps_the_run(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::System, s.a, json!({})).await;
    let running = claim(&c.engine, st.run.id).await;
    c.advance(Duration::from_secs(61));
    let trap = std::sync::Arc::new(TrapClock {
        inner: c.clock.clone(),
        trap: std::sync::Mutex::new(None),
    });
    let engine = tenantatlas_engine::Engine::new(
        c.store.clone(),
        trap.clone(),
        tenantatlas_engine::EngineConfig {
            catalog: crate::harness::every_type(),
            enable_synthetic: true,
            ..tenantatlas_engine::EngineConfig::default()
        },
    );
    // reconcile reads the run, judges it with the clock (1st reading),
    // then stamps its write (2nd reading): the heartbeat lands there
    let (store, clock) = (c.store.clone(), c.clock.clone());
    let (id, attempt) = (running.id, running.attempt);
    let beat_at = c.clock_now();
    *trap.trap.lock().unwrap() = Some((
        2,
        Box::new(move || {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let lease = Duration::from_secs(300);
                    store.heartbeat(id, attempt, lease, &*clock).await.unwrap();
                });
            });
        }),
    ));
    let done = engine.reconcile(id, &running).await.unwrap();
    assert!(trap.trap.lock().unwrap().is_none(), "the heartbeat landed");
    assert!(matches!(done, Completion::Fenced(_)), "{done:?}");
    let now = c.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(now.state, RunState::Running, "the live run was not reconciled");
    assert_eq!(now.heartbeat_at, Some(beat_at));
}
