use std::collections::BTreeSet;
use std::time::Duration;
use tenantatlas_domain::Timestamp;

use serde_json::json;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::{Outcome, StatusBucket, StatusFilter};
use tenantatlas_domain::problem::{ProblemClass, classify};
use tenantatlas_domain::reason::ReasonCode;
use tenantatlas_domain::run::Run;
use tenantatlas_engine::{EngineError, Initiator, Viewer};
use tenantatlas_store::model::{Actor, RunFilter};

use crate::harness::{Ctx, Db};
use crate::{claim, params, start_synthetic};

const SCOPES: [&str; 4] = ["all", "apps", "devices", "policies"];

async fn all_runs(c: &Ctx) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = c
            .engine
            .list_runs(Viewer::Everything, RunFilter::default(), 500, cursor)
            .await
            .unwrap();
        out.extend(page.runs);
        match page.next_cursor {
            Some(cur) => cursor = Some(cur),
            None => return out,
        }
    }
}

async fn page_through(c: &Ctx, viewer: Viewer, filter: &RunFilter, limit: u32) -> Vec<RunId> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = c.engine.list_runs(viewer, filter.clone(), limit, cursor).await.unwrap();
        assert!(page.runs.len() <= limit as usize);
        out.extend(page.runs.iter().map(|r| r.id));
        match page.next_cursor {
            Some(cur) => cursor = Some(cur),
            None => return out,
        }
    }
}

pub async fn filters_and_keyset_pagination(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let types = [
        OperationType::Synthetic,
        OperationType::InventorySync,
        OperationType::PolicyExport,
    ];
    for i in 0..45u64 {
        // several runs share a timestamp: the id breaks the tie
        if i % 3 == 0 {
            c.advance(Duration::from_secs(1));
        }
        let tenant = if i % 2 == 0 { s.a } else { s.b };
        let op = types[(i % 3) as usize];
        let p = match op {
            OperationType::Synthetic => json!({}),
            OperationType::InventorySync => json!({"scope": SCOPES[(i % 4) as usize]}),
            _ => json!({"format": if i % 2 == 0 { "json" } else { "csv" }}),
        };
        let run = match e.start(Initiator::System, tenant, op, params(op, p)).await {
            Ok(st) if !st.joined => st.run,
            _ => continue,
        };
        match i % 7 {
            0 => {}
            1 => {
                claim(e, run.id).await;
            }
            2 => {
                claim(e, run.id).await;
                e.complete(run.id, Some(1), Outcome::Succeeded, None, vec![])
                    .await
                    .unwrap();
            }
            3 => {
                claim(e, run.id).await;
                e.complete(run.id, Some(1), Outcome::PartiallySucceeded, None, vec![])
                    .await
                    .unwrap();
            }
            4 => {
                e.cancel(Initiator::System, run.id).await.unwrap();
            }
            5 => {
                claim(e, run.id).await;
                e.complete(
                    run.id,
                    Some(1),
                    Outcome::Failed,
                    Some(ReasonCode::InternalError),
                    vec![],
                )
                .await
                .unwrap();
            }
            _ => {
                claim(e, run.id).await;
                e.complete(
                    run.id,
                    Some(1),
                    Outcome::Blocked,
                    Some(ReasonCode::RunBlockedPrecondition),
                    vec![],
                )
                .await
                .unwrap();
            }
        }
    }
    let all = all_runs(&c).await;
    assert!(all.len() > 20, "{}", all.len());
    let mut sorted = all.clone();
    sorted.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        sorted.iter().map(|r| r.id).collect::<Vec<_>>(),
        "newest first, id breaking ties"
    );
    let mid = all[all.len() / 2].created_at;
    let filters = vec![
        RunFilter::default(),
        RunFilter {
            tenant: Some(s.a),
            ..RunFilter::default()
        },
        RunFilter {
            workspace: Some(s.ws),
            ..RunFilter::default()
        },
        RunFilter {
            op_type: Some(OperationType::InventorySync),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(StatusBucket::Queued.into()),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(StatusBucket::Partial.into()),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(StatusBucket::Cancelled.into()),
            tenant: Some(s.b),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(StatusBucket::Failed.into()),
            workspace: Some(s.ws),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(StatusFilter::Blocked),
            ..RunFilter::default()
        },
        RunFilter {
            since: Some(mid),
            ..RunFilter::default()
        },
        RunFilter {
            until: Some(mid),
            op_type: Some(OperationType::Synthetic),
            ..RunFilter::default()
        },
    ];
    for b in [Outcome::Failed, Outcome::Blocked] {
        assert!(
            all.iter().any(|r| r.state.outcome() == Some(b)),
            "the seed holds {b:?} runs, so the status filters are tested on them"
        );
    }
    for f in &filters {
        let want: Vec<RunId> = all
            .iter()
            .filter(|r| f.tenant.is_none_or(|t| r.tenant_id == Some(t)))
            .filter(|r| f.workspace.is_none_or(|w| r.workspace_id == Some(w)))
            .filter(|r| f.op_type.is_none_or(|t| r.op_type == t))
            .filter(|r| f.status.is_none_or(|b| b.selects(r.state)))
            .filter(|r| f.since.is_none_or(|t| r.created_at >= t))
            .filter(|r| f.until.is_none_or(|t| r.created_at < t))
            .map(|r| r.id)
            .collect();
        for limit in [1, 7, 500] {
            assert_eq!(
                page_through(&c, Viewer::Everything, f, limit).await,
                want,
                "{f:?} limit {limit}"
            );
        }
    }
}

pub async fn reads_are_scoped_to_the_viewer(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let in_a = start_synthetic(e, Initiator::System, s.a, json!({})).await.run;
    let in_b = start_synthetic(e, Initiator::System, s.b, json!({})).await.run;
    let other_ws = c
        .store
        .create_workspace("Fabrikam", Actor::Cli, c.clock_now())
        .await
        .unwrap();
    let other_t = c
        .store
        .add_tenant(other_ws.id, "F1", None, Actor::Cli, c.clock_now())
        .await
        .unwrap();
    let elsewhere = start_synthetic(e, Initiator::System, other_t.id, json!({})).await.run;
    let ids = |v: Vec<Run>| v.iter().map(|r| r.id).collect::<BTreeSet<_>>();
    let f = RunFilter::default();
    assert_eq!(
        ids(e
            .list_runs(Viewer::User(s.owner), f.clone(), 100, None)
            .await
            .unwrap()
            .runs),
        BTreeSet::from([in_a.id, in_b.id])
    );
    assert_eq!(
        ids(e
            .list_runs(Viewer::User(s.scoped), f.clone(), 100, None)
            .await
            .unwrap()
            .runs),
        BTreeSet::from([in_b.id])
    );
    assert!(
        e.list_runs(Viewer::User(s.outsider), f.clone(), 100, None)
            .await
            .unwrap()
            .runs
            .is_empty()
    );
    assert_eq!(
        ids(e
            .list_runs(Viewer::Everything, f.clone(), 100, None)
            .await
            .unwrap()
            .runs)
        .len(),
        3
    );
    // filtering by a tenant outside the scope shows nothing, not an error
    let sneaky = RunFilter {
        tenant: Some(other_t.id),
        ..RunFilter::default()
    };
    assert!(
        e.list_runs(Viewer::User(s.owner), sneaky, 100, None)
            .await
            .unwrap()
            .runs
            .is_empty()
    );
    // detail: not found outside the scope
    assert!(e.run_detail(Viewer::User(s.scoped), in_b.id).await.is_ok());
    assert!(matches!(
        e.run_detail(Viewer::User(s.scoped), in_a.id).await,
        Err(EngineError::NotFound("run"))
    ));
    assert!(matches!(
        e.run_detail(Viewer::User(s.owner), elsewhere.id).await,
        Err(EngineError::NotFound("run"))
    ));
    // counts: the same scope
    let window = Duration::from_secs(86_400);
    let scoped = e
        .problem_summary(Viewer::User(s.scoped), RunFilter::default(), window)
        .await
        .unwrap();
    assert_eq!(scoped.total.get(ProblemClass::Active), 1);
    assert_eq!(scoped.per_tenant.keys().copied().collect::<Vec<_>>(), vec![s.b]);
    let all = e
        .problem_summary(Viewer::Everything, RunFilter::default(), window)
        .await
        .unwrap();
    assert_eq!(all.total.get(ProblemClass::Active), 3);
    assert_eq!(all.per_workspace.len(), 2);
}

/// Seeds runs in every state at several ages, then holds the SQL filter and
/// the SQL counts against the domain's `classify` at many moments.
pub async fn sql_problem_classes_agree_with_the_domain(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let inv = OperationType::InventorySync;
    let mut n = 0;
    let mut fresh = |op: OperationType| {
        n += 1;
        match op {
            OperationType::Synthetic => params(op, json!({})),
            _ => params(op, json!({"scope": SCOPES[n % 4]})),
        }
    };
    for round in 0..3 {
        for op in [OperationType::Synthetic, inv] {
            let tenant = if round % 2 == 0 { s.a } else { s.b };
            let queued = e.start(Initiator::System, tenant, op, fresh(op)).await.unwrap().run;
            let _ = queued;
            let running = e.start(Initiator::System, tenant, op, fresh(op)).await.unwrap().run;
            e.claim(running.id, "w", Duration::from_secs(90 * (round + 1)))
                .await
                .unwrap();
            if op == OperationType::Synthetic {
                for outcome in [
                    Outcome::Succeeded,
                    Outcome::Failed,
                    Outcome::PartiallySucceeded,
                    Outcome::Blocked,
                ] {
                    let r = e.start(Initiator::System, tenant, op, fresh(op)).await.unwrap().run;
                    claim(e, r.id).await;
                    e.complete(r.id, Some(1), outcome, None, vec![]).await.unwrap();
                }
                let r = e.start(Initiator::System, tenant, op, fresh(op)).await.unwrap().run;
                e.cancel(Initiator::System, r.id).await.unwrap();
            }
        }
        c.advance(Duration::from_secs(200));
    }
    // reconcile one stale running run
    let th = e.thresholds();
    let stale_running = all_runs(&c)
        .await
        .into_iter()
        .find(|r| {
            tenantatlas_domain::problem::reconcilable(r, c.clock_now(), &th) && r.state.status().as_str() == "running"
        })
        .unwrap();
    e.reconcile(stale_running.id, &stale_running).await.unwrap();
    let start = c.clock_now();
    let mut seen_classes = BTreeSet::new();
    for offset in [0u64, 30, 59, 60, 61, 89, 120, 299, 300, 301, 600, 899, 900, 901, 3600] {
        c.clock.set(start.plus(Duration::from_secs(offset)));
        let now = c.clock_now();
        let runs = all_runs(&c).await;
        let th = &e.thresholds();
        let summary = e
            .problem_summary(
                Viewer::Everything,
                RunFilter::default(),
                Duration::from_secs(86_400 * 365),
            )
            .await
            .unwrap();
        // the per-day class counters (no filter but scope) agree with
        // counting the ledger itself (a created-since filter takes that path)
        let counted = e
            .problem_summary(
                Viewer::Everything,
                RunFilter {
                    since: Some(Timestamp::from_unix_micros(0)),
                    ..RunFilter::default()
                },
                Duration::from_secs(86_400 * 365),
            )
            .await
            .unwrap();
        assert_eq!(summary, counted, "counters and ledger agree at +{offset}s");
        for class in ProblemClass::ALL {
            let want: BTreeSet<RunId> = runs
                .iter()
                .filter(|r| classify(r, now, th) == class)
                .map(|r| r.id)
                .collect();
            if !want.is_empty() {
                seen_classes.insert(class);
            }
            let filter = RunFilter {
                problem: Some(class),
                ..RunFilter::default()
            };
            let got: BTreeSet<RunId> = page_through(&c, Viewer::Everything, &filter, 500)
                .await
                .into_iter()
                .collect();
            assert_eq!(got, want, "class {class} at +{offset}s");
            // page by page too (lists of exceptions and of active runs take
            // their own paths)
            let paged = page_through(&c, Viewer::Everything, &filter, 2).await;
            assert_eq!(
                paged.len(),
                want.len(),
                "no run twice, none missed: {class} at +{offset}s"
            );
            assert_eq!(
                paged.into_iter().collect::<BTreeSet<RunId>>(),
                want,
                "class {class} at +{offset}s, two at a time"
            );
            assert_eq!(
                summary.total.get(class),
                want.len() as u64,
                "count of {class} at +{offset}s"
            );
        }
    }
    assert_eq!(
        seen_classes.len(),
        ProblemClass::ALL.len(),
        "every class was exercised: {seen_classes:?}"
    );
}

pub async fn notifications_inbox(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    for _ in 0..3 {
        let r = start_synthetic(e, Initiator::User(s.operator), s.a, json!({}))
            .await
            .run;
        claim(e, r.id).await;
        e.complete(r.id, Some(1), Outcome::Succeeded, None, vec![])
            .await
            .unwrap();
        c.advance(Duration::from_secs(1));
    }
    let inbox = c.store.notifications(s.operator, 10).await.unwrap();
    assert_eq!(inbox.len(), 3);
    assert!(
        inbox.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    assert_eq!(c.store.unread_count(s.operator).await.unwrap(), 3);
    assert!(
        !c.store.mark_read(s.owner, inbox[0].id, c.clock_now()).await.unwrap(),
        "not someone else's"
    );
    assert!(c.store.mark_read(s.operator, inbox[0].id, c.clock_now()).await.unwrap());
    assert!(
        c.store.mark_read(s.operator, inbox[0].id, c.clock_now()).await.unwrap(),
        "idempotent"
    );
    assert_eq!(c.store.unread_count(s.operator).await.unwrap(), 2);
    let again = c.store.notifications(s.operator, 10).await.unwrap();
    assert_eq!(again[0].read_at, Some(c.clock_now()));
}
