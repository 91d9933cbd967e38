use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tenantatlas_domain::access::Role;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::lifecycle::Outcome;
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::{Completion, Initiator, Viewer};
use tenantatlas_store::model::{RunFilter, UnitResult};

use crate::harness::{Ctx, Db};
use crate::{claim, params, start_synthetic};

/// Four nodes (own pools, own start collectors) share the database.
async fn nodes(c: &Ctx) -> Vec<tenantatlas_engine::Engine> {
    let mut v = vec![c.engine.clone()];
    for _ in 0..3 {
        v.push(c.another_engine().await);
    }
    v
}

pub async fn two_hundred_identical_starts_make_one_run(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let mut users = Vec::new();
    for i in 0..200 {
        let u = c.user(&format!("op{i}@contoso.test")).await;
        c.member(s.ws, u, Role::Operator, None).await;
        users.push(u);
    }
    let nodes = nodes(&c).await;
    let op = OperationType::InventorySync;
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let e = nodes[i % nodes.len()].clone();
        let (u, t) = (*u, s.a);
        tasks.push(tokio::spawn(async move {
            e.start(Initiator::User(u), t, op, params(op, json!({}))).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    let ids: BTreeSet<_> = results.iter().map(|r| r.run.id).collect();
    assert_eq!(ids.len(), 1, "exactly one run");
    assert_eq!(results.iter().filter(|r| !r.joined).count(), 1);
    assert_eq!(results.iter().filter(|r| r.joined).count(), 199);
    let id = *ids.iter().next().unwrap();
    let subs = c.store.subscribers(id).await.unwrap();
    assert_eq!(subs.len(), 200, "every starter subscribed once");
    assert_eq!(subs.iter().collect::<BTreeSet<_>>().len(), 200);
    let page = c
        .engine
        .list_runs(Viewer::Everything, RunFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 1);
    let events = c.events(id).await;
    assert_eq!(events.iter().filter(|e| e.kind == RunEventKind::Created).count(), 1);
    assert_eq!(events.iter().filter(|e| e.kind == RunEventKind::Joined).count(), 199);
    // and when it completes, each of the 200 is notified exactly once
    claim(&c.engine, id).await;
    let done = c
        .engine
        .complete(id, Some(1), Outcome::Succeeded, None, vec![])
        .await
        .unwrap();
    assert!(matches!(done, Completion::Completed { ref notified, .. } if notified.len() == 200));
}

pub async fn fifty_concurrent_completions_transition_once(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::User(s.operator), s.b, json!({"key": "x"})).await;
    for u in [s.owner, s.scoped] {
        start_synthetic(&c.engine, Initiator::User(u), s.b, json!({"key": "x"})).await;
    }
    let id = st.run.id;
    claim(&c.engine, id).await;
    let nodes = nodes(&c).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let e = nodes[i % nodes.len()].clone();
        let outcome = if i % 2 == 0 {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        };
        tasks.push(tokio::spawn(async move {
            e.complete(id, Some(1), outcome, None, vec![]).await
        }));
    }
    let mut completed = 0;
    let mut already = 0;
    let mut notified_total = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Completion::Completed { notified, .. } => {
                completed += 1;
                notified_total += notified.len();
            }
            Completion::AlreadyCompleted(_) => already += 1,
            Completion::Fenced(r) => panic!("unexpected fence: {r:?}"),
        }
    }
    assert_eq!((completed, already), (1, 49));
    assert_eq!(notified_total, 3);
    for u in [s.operator, s.owner, s.scoped] {
        assert_eq!(c.store.notifications(u, 10).await.unwrap().len(), 1);
    }
    let events = c.events(id).await;
    assert_eq!(events.iter().filter(|e| e.kind == RunEventKind::Completed).count(), 1);
    assert_eq!(events.iter().filter(|e| e.kind == RunEventKind::Notified).count(), 1);
}

pub async fn concurrent_unit_completions_count_once(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::System, s.a, json!({"units": 100})).await;
    let id = st.run.id;
    claim(&c.engine, id).await;
    let keys: Vec<String> = (0..100).map(|i| format!("unit-{i}")).collect();
    c.engine.plan_units(id, 1, &keys).await.unwrap();
    let nodes = nodes(&c).await;
    let mut tasks = Vec::new();
    for w in 0..8usize {
        let e = nodes[w % nodes.len()].clone();
        let mut mine = keys.clone();
        mine.rotate_left(w * 13);
        tasks.push(tokio::spawn(async move {
            let mut counted = 0;
            for chunk in mine.chunks(10) {
                let results: Vec<UnitResult> = chunk
                    .iter()
                    .map(|k| UnitResult {
                        unit_key: k.clone(),
                        outcome: UnitOutcome::Succeeded,
                        failure: None,
                    })
                    .collect();
                if let tenantatlas_store::model::UnitsApplied::Counted { counted: n, .. } =
                    e.complete_units(id, 1, &results).await.unwrap()
                {
                    counted += n;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            counted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 100, "the workers together counted each unit once");
    let run = c.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(
        (run.units.processed, run.units.succeeded, run.units.total),
        (100, 100, Some(100))
    );
}
