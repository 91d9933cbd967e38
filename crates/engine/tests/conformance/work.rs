//! Claims, heartbeats, batch completion, orphans, reconciliation,
//! adaptive thresholds and schedules, at the engine level.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::lifecycle::{Outcome, RunState, RunStatus};
use tenantatlas_domain::problem::{ProblemClass, classify};
use tenantatlas_domain::reason::ReasonCode;
use tenantatlas_domain::schedule::CronSpec;
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::{Completion, Initiator, RequeueCause};
use tenantatlas_store::model::{Actor, HeartbeatAck, RunFilter};

use crate::harness::{Ctx, Db};
use crate::units::{keys, ok};
use crate::{claim, params, start_synthetic};

const SYN: [OperationType; 1] = [OperationType::Synthetic];

pub async fn claims_take_due_runs_once(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    for _ in 0..30 {
        start_synthetic(e, Initiator::System, s.a, json!({})).await;
    }
    let inv = e
        .start(
            Initiator::System,
            s.a,
            OperationType::InventorySync,
            params(OperationType::InventorySync, json!({})),
        )
        .await
        .unwrap()
        .run;
    // four nodes claim concurrently: every run exactly once, only types asked for
    let mut nodes = vec![c.engine.clone()];
    for _ in 0..3 {
        nodes.push(c.another_engine().await);
    }
    let mut tasks = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = n
                    .claim_due(&format!("node{i}/x"), &SYN, 4, Duration::from_secs(30))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let ids: BTreeSet<_> = all.iter().map(|r| r.id).collect();
    assert_eq!((all.len(), ids.len()), (30, 30), "no run claimed twice");
    assert!(
        all.iter()
            .all(|r| r.state == RunState::Running && r.attempt == 1 && r.lease.is_some())
    );
    assert_eq!(
        c.store.get_run(inv.id).await.unwrap().unwrap().state,
        RunState::Queued,
        "types not asked for stay queued"
    );
    let ev = c.events(all[0].id).await;
    assert_eq!(ev[1].kind, RunEventKind::Claimed);
    assert_eq!(ev[1].attempt, Some(1));
    // a run not yet due is not claimed
    let later = start_synthetic(e, Initiator::System, s.a, json!({})).await.run;
    claim(e, later.id).await;
    e.requeue(
        later.id,
        1,
        c.clock_now().plus(Duration::from_secs(60)),
        None,
        RequeueCause::Retry,
    )
    .await
    .unwrap();
    assert!(
        e.claim_due("n/x", &SYN, 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    c.advance(Duration::from_secs(61));
    let again = e.claim_due("n/x", &SYN, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!((again.len(), again[0].attempt), (1, 2));
}

pub async fn heartbeats_extend_fence_and_carry_cancel(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let run = start_synthetic(e, Initiator::User(s.operator), s.a, json!({}))
        .await
        .run;
    let run = claim(e, run.id).await;
    c.advance(Duration::from_secs(20));
    let until = c.clock_now().plus(Duration::from_secs(60));
    assert_eq!(
        c.store
            .heartbeat(run.id, 1, Duration::from_secs(60), &*c.clock)
            .await
            .unwrap(),
        HeartbeatAck::Extended {
            cancel_requested: false
        }
    );
    let fresh = c.store.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(
        (fresh.heartbeat_at, fresh.lease.map(|l| l.expires_at)),
        (Some(c.clock_now()), Some(until))
    );
    e.cancel(Initiator::User(s.operator), run.id).await.unwrap();
    assert_eq!(
        c.store
            .heartbeat(run.id, 1, Duration::from_secs(60), &*c.clock)
            .await
            .unwrap(),
        HeartbeatAck::Extended { cancel_requested: true }
    );
    assert_eq!(
        c.store
            .heartbeat(run.id, 2, Duration::from_secs(60), &*c.clock)
            .await
            .unwrap(),
        HeartbeatAck::Fenced
    );
    e.finish_attempt(&run, Outcome::Cancelled, Some(ReasonCode::RunCancelled), vec![], None)
        .await
        .unwrap();
    assert_eq!(
        c.store
            .heartbeat(run.id, 1, Duration::from_secs(60), &*c.clock)
            .await
            .unwrap(),
        HeartbeatAck::Fenced
    );
}

pub async fn batched_completions_fence_each_write(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let mut runs = Vec::new();
    for _ in 0..40 {
        let r = start_synthetic(e, Initiator::User(s.operator), s.a, json!({"units": 0}))
            .await
            .run;
        runs.push(claim(e, r.id).await);
    }
    // one of them was reconciled meanwhile: its completion must not apply
    c.advance(Duration::from_secs(61));
    let stale = runs[7].clone();
    assert!(matches!(
        e.reconcile(stale.id, &stale).await.unwrap(),
        Completion::Completed { .. }
    ));
    let mut tasks = Vec::new();
    for r in runs.clone() {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            e.finish_attempt(&r, Outcome::Succeeded, None, vec![], Some(0))
                .await
                .unwrap()
        }));
    }
    let mut completed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Completion::Completed { run, notified } => {
                completed += 1;
                assert_eq!(
                    run.units.total,
                    Some(0),
                    "zero planned units recorded with the completion"
                );
                assert_eq!(notified, vec![s.operator]);
            }
            Completion::Fenced(r) => assert_eq!(r.id, stale.id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(completed, 39);
    let late = c
        .events(stale.id)
        .await
        .into_iter()
        .filter(|ev| ev.kind == RunEventKind::LateResultIgnored)
        .count();
    assert_eq!(late, 1, "the late completion is on the timeline");
    assert_eq!(
        c.store.notifications(s.operator, 100).await.unwrap().len(),
        40,
        "39 completions + 1 reconciliation, once each"
    );
}

pub async fn orphans_of_a_restarted_node_resume(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    start_synthetic(e, Initiator::System, s.a, json!({"units": 3})).await;
    start_synthetic(e, Initiator::System, s.a, json!({"units": 3})).await;
    let mine = e
        .claim_due("alpha/old", &SYN, 1, Duration::from_secs(300))
        .await
        .unwrap()
        .pop()
        .unwrap();
    e.plan_units(mine.id, 1, &keys(3)).await.unwrap();
    e.complete_units(mine.id, 1, &[ok("u0000")]).await.unwrap();
    let other = e
        .claim_due("beta/1", &SYN, 1, Duration::from_secs(300))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let _ = other.id;
    // alpha restarts: its old incarnation's run goes back to the queue, beta's stays
    let released = e.release_orphans("alpha", "alpha/new").await.unwrap();
    assert_eq!(released.iter().map(|r| r.id).collect::<Vec<_>>(), vec![mine.id]);
    assert_eq!(
        c.store.get_run(other.id).await.unwrap().unwrap().state,
        RunState::Running
    );
    let resumed = e
        .claim_due("alpha/new", &SYN, 5, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        (resumed[0].id, resumed[0].attempt, resumed[0].units.processed),
        (mine.id, 2, 1)
    );
    let pending: Vec<_> = c
        .store
        .run_units(mine.id, true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.unit_key)
        .collect();
    assert_eq!(pending, ["u0001", "u0002"], "the finished unit is not done again");
    let kinds: Vec<_> = c.events(mine.id).await.iter().map(|ev| ev.kind).collect();
    assert!(kinds.contains(&RunEventKind::Released), "{kinds:?}");
    assert_eq!(
        e.release_orphans("alpha", "alpha/new").await.unwrap().len(),
        0,
        "the current incarnation keeps its runs"
    );
}

pub async fn sweep_reconciles_stale_runs_visibly(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let queued = start_synthetic(e, Initiator::User(s.operator), s.a, json!({}))
        .await
        .run;
    // its node died on its last attempt: failed, not tried again
    let running = start_synthetic(e, Initiator::System, s.a, json!({"units": 10}))
        .await
        .run;
    for attempt in 1..3 {
        claim(e, running.id).await;
        e.requeue(running.id, attempt, c.clock_now(), None, RequeueCause::Retry)
            .await
            .unwrap();
    }
    let running = e
        .claim(running.id, "w/1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.attempt, 3);
    // its node died with attempts left, two units done: resumed
    let lapsed = start_synthetic(e, Initiator::System, s.b, json!({"units": 3, "key": "lapsed"}))
        .await
        .run;
    let lapsed = e
        .claim(lapsed.id, "dead-node/1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    e.plan_units(lapsed.id, 1, &keys(3)).await.unwrap();
    e.complete_units(lapsed.id, 1, &[ok("u0000"), ok("u0001")])
        .await
        .unwrap();
    // a type that cannot resume is failed even with attempts left
    let fragile = e
        .start(
            Initiator::System,
            s.b,
            OperationType::InventorySync,
            params(OperationType::InventorySync, json!({})),
        )
        .await
        .unwrap()
        .run;
    let fragile = e
        .claim(fragile.id, "dead-node/1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let cancelled = start_synthetic(e, Initiator::System, s.b, json!({})).await.run;
    let cancelled = claim(e, cancelled.id).await;
    e.cancel(Initiator::System, cancelled.id).await.unwrap();
    let healthy = start_synthetic(e, Initiator::System, s.b, json!({"units": 10}))
        .await
        .run;
    let healthy = e
        .claim(healthy.id, "w/2", Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    e.plan_units(healthy.id, 1, &keys(10)).await.unwrap();
    // nothing is stale yet
    assert!(e.reconcile_sweep(false).await.unwrap().reconciled.is_empty());
    // healthy keeps heartbeating but makes no progress after two quick units
    c.advance(Duration::from_secs(2));
    e.complete_units(healthy.id, 1, &[ok("u0000"), ok("u0001")])
        .await
        .unwrap();
    c.advance(Duration::from_secs(5 * 60 + 1));
    c.store
        .heartbeat(healthy.id, 1, Duration::from_secs(3600), &*c.clock)
        .await
        .unwrap();
    let h = c.store.get_run(healthy.id).await.unwrap().unwrap();
    assert_eq!(
        classify(&h, c.clock_now(), &e.thresholds()),
        ProblemClass::ActiveStale,
        "no progress: likely stuck"
    );
    let dry = e.reconcile_sweep(true).await.unwrap();
    let mut ids: Vec<_> = dry.reconciled.iter().map(|r| r.run_id).collect();
    ids.sort();
    let mut want = vec![queued.id, running.id, cancelled.id, fragile.id];
    want.sort();
    assert_eq!(ids, want, "a live lease is never overruled");
    assert_eq!(
        dry.resumed
            .iter()
            .map(|r| (r.run_id, r.lost_attempt))
            .collect::<Vec<_>>(),
        vec![(lapsed.id, 1)]
    );
    assert_eq!(
        c.store.get_run(queued.id).await.unwrap().unwrap().state,
        RunState::Queued,
        "a dry run writes nothing"
    );
    let done = e.reconcile_sweep(false).await.unwrap();
    assert_eq!(done.reconciled.len(), 4);
    assert_eq!(done.resumed.len(), 1);
    let f = c.store.get_run(fragile.id).await.unwrap().unwrap();
    assert_eq!(
        (f.state, f.reason_code, f.attempt),
        (
            RunState::Completed(Outcome::Failed),
            Some(ReasonCode::RunStaleReconciled),
            1
        )
    );
    // the resumed run is queued for its next attempt, due now, its
    // finished units kept, and its timeline says why
    let l = c.store.get_run(lapsed.id).await.unwrap().unwrap();
    assert_eq!(
        (l.state, l.attempt, l.units.processed, l.available_at),
        (RunState::Queued, 1, 2, c.clock_now())
    );
    assert!(l.lease.is_none() && l.reconciliation.is_none());
    let released = c
        .events(lapsed.id)
        .await
        .into_iter()
        .find(|ev| ev.kind == RunEventKind::Released)
        .expect("released on the timeline");
    assert_eq!(released.attempt, Some(1));
    assert!(
        released.detail["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stopped renewing the lease")),
        "{}",
        released.detail
    );
    let again = e
        .claim(lapsed.id, "w/3", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempt, 2);
    let pending: Vec<_> = c
        .store
        .run_units(lapsed.id, true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.unit_key)
        .collect();
    assert_eq!(pending, ["u0002"], "the finished units are not executed again");
    let q = c.store.get_run(queued.id).await.unwrap().unwrap();
    assert_eq!(
        (q.state, q.reason_code),
        (
            RunState::Completed(Outcome::Failed),
            Some(ReasonCode::RunStaleReconciled)
        )
    );
    assert_eq!(q.reconciliation.as_ref().unwrap().previous_status, RunStatus::Queued);
    let r = c.store.get_run(running.id).await.unwrap().unwrap();
    assert_eq!(r.reconciliation.as_ref().unwrap().previous_status, RunStatus::Running);
    assert_eq!(
        r.reconciliation.as_ref().unwrap().last_heartbeat_at,
        running.heartbeat_at
    );
    let x = c.store.get_run(cancelled.id).await.unwrap().unwrap();
    assert_eq!(
        (x.state, x.reason_code),
        (RunState::Completed(Outcome::Cancelled), Some(ReasonCode::RunCancelled))
    );
    assert!(x.reconciliation.is_some());
    assert_eq!(
        c.store.notifications(s.operator, 5).await.unwrap()[0].title,
        "Synthetic workload was reconciled as stale"
    );
    assert!(
        e.reconcile_sweep(false).await.unwrap().reconciled.is_empty(),
        "a second sweep finds nothing"
    );
}

pub async fn adaptive_thresholds_learn_from_recent_runs(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    for i in 0..25u64 {
        let r = start_synthetic(e, Initiator::System, s.a, json!({})).await.run;
        claim(e, r.id).await;
        c.advance(Duration::from_secs(100 + i * 10));
        e.complete(r.id, Some(1), Outcome::Succeeded, None, vec![])
            .await
            .unwrap();
    }
    assert_eq!(e.thresholds().of(OperationType::Synthetic).running_max, None);
    e.refresh_thresholds().await.unwrap();
    // durations 100..340 s; nearest-rank p95 of 25 is the 24th: 330 s; 3 × 330 = 990 s
    assert_eq!(
        e.thresholds().of(OperationType::Synthetic).running_max,
        Some(Duration::from_secs(990))
    );
    assert_eq!(
        e.thresholds().of(OperationType::InventorySync).running_max,
        None,
        "too few samples"
    );
    // an indeterminate run running longer than that shows as likely stale
    start_synthetic(e, Initiator::System, s.a, json!({})).await;
    let long = e
        .claim_due("w/1", &SYN, 1, Duration::from_secs(7200))
        .await
        .unwrap()
        .pop()
        .unwrap();
    for _ in 0..10 {
        c.advance(Duration::from_secs(100));
        c.store
            .heartbeat(long.id, 1, Duration::from_secs(7200), &*c.clock)
            .await
            .unwrap();
    }
    let page = e
        .list_runs(
            tenantatlas_engine::Viewer::Everything,
            RunFilter {
                problem: Some(ProblemClass::ActiveStale),
                ..RunFilter::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![long.id]);
}

pub async fn schedules_fire_once_per_fire_time(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    c.clock
        .set(tenantatlas_domain::Timestamp::parse_rfc3339("t", "2026-11-23T01:00:00Z").unwrap());
    let cron = CronSpec::parse("cron", "0 2 * * *").unwrap();
    let op = OperationType::BackupScheduleRun;
    let sched = e
        .put_schedule(
            "nightly A",
            &cron,
            Some(s.a),
            op,
            params(op, json!({"schedule": "nightly"})),
            Actor::Cli,
        )
        .await
        .unwrap();
    assert_eq!(sched.next_fire_at.to_rfc3339(), "2026-11-23T02:00:00Z");
    assert!(e.schedule_tick().await.unwrap().is_empty(), "not due yet");
    // every node ticks at once after the fire time: one run
    c.clock
        .set(tenantatlas_domain::Timestamp::parse_rfc3339("t", "2026-11-23T02:00:05Z").unwrap());
    let mut nodes = vec![e.clone()];
    for _ in 0..3 {
        nodes.push(c.another_engine().await);
    }
    let mut tasks = Vec::new();
    for n in nodes {
        tasks.push(tokio::spawn(async move { n.schedule_tick().await.unwrap() }));
    }
    let mut fired = Vec::new();
    for t in tasks {
        fired.extend(t.await.unwrap());
    }
    assert_eq!(fired.len(), 1, "{fired:?}");
    let run = c.store.get_run(fired[0].run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.op_type, run.tenant_id, run.initiator),
        (op, Some(s.a), None),
        "system-initiated"
    );
    // all nodes down for three days: the missed fire times fire once
    c.clock
        .set(tenantatlas_domain::Timestamp::parse_rfc3339("t", "2026-11-26T09:00:00Z").unwrap());
    let late = e.schedule_tick().await.unwrap();
    assert_eq!(late.len(), 1);
    assert!(
        late[0].joined,
        "the previous fire's run is still active: joined, not duplicated"
    );
    assert!(e.schedule_tick().await.unwrap().is_empty());
    let after = c.store.list_schedules().await.unwrap();
    assert_eq!(after[0].next_fire_at.to_rfc3339(), "2026-11-27T02:00:00Z");
    // the system prune schedule exists once, however often it is ensured
    e.ensure_system_schedules().await.unwrap();
    e.ensure_system_schedules().await.unwrap();
    let all = c.store.list_schedules().await.unwrap();
    assert_eq!(
        all.iter()
            .filter(|x| x.op_type == OperationType::TelemetryPrune)
            .count(),
        1
    );
    let bad = e
        .put_schedule("x", &cron, None, op, params(op, json!({"schedule": "n"})), Actor::Cli)
        .await
        .unwrap_err();
    assert!(matches!(bad, tenantatlas_engine::EngineError::Invalid(ref f) if f.field == "tenant"));
}

pub async fn schedules_of_an_opt_in_type_need_the_opt_in(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let plain = tenantatlas_engine::Engine::new(
        c.db.open().await,
        c.clock.clone(),
        tenantatlas_engine::EngineConfig {
            enable_synthetic: false,
            ..e.config().clone()
        },
    );
    c.clock
        .set(tenantatlas_domain::Timestamp::parse_rfc3339("t", "2026-11-23T01:00:00Z").unwrap());
    let cron = CronSpec::parse("cron", "0 2 * * *").unwrap();
    let op = OperationType::Synthetic;
    let refused = plain
        .put_schedule("synthetic A", &cron, Some(s.a), op, params(op, json!({})), Actor::Cli)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, tenantatlas_engine::EngineError::Refused(ref m) if m.contains("TENANTATLAS_ENABLE_SYNTHETIC")),
        "{refused:?}"
    );
    assert!(c.store.list_schedules().await.unwrap().is_empty(), "nothing written");
    e.put_schedule("synthetic A", &cron, Some(s.a), op, params(op, json!({})), Actor::Cli)
        .await
        .unwrap();
    c.clock
        .set(tenantatlas_domain::Timestamp::parse_rfc3339("t", "2026-11-23T02:00:05Z").unwrap());
    assert!(
        plain.schedule_tick().await.unwrap().is_empty(),
        "a node without the opt-in leaves the schedule to one that has it"
    );
    assert_eq!(e.schedule_tick().await.unwrap().len(), 1);
}
