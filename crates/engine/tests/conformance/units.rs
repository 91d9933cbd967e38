use serde_json::json;
use tenantatlas_domain::counts::{SummaryCounts, SummaryKey};
use tenantatlas_domain::lifecycle::{Outcome, RunState};
use tenantatlas_domain::progress::{Progress, UnitOutcome, progress_of};
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::{Completion, Initiator, RequeueCause};
use tenantatlas_store::model::{PlanApplied, UnitResult, UnitsApplied};

use crate::harness::{Ctx, Db};
use crate::{claim, start_synthetic};

pub fn ok(key: &str) -> UnitResult {
    UnitResult {
        unit_key: key.into(),
        outcome: UnitOutcome::Succeeded,
        failure: None,
    }
}

fn failed(key: &str) -> UnitResult {
    UnitResult {
        unit_key: key.into(),
        outcome: UnitOutcome::Failed,
        failure: Some(Failure::new(ReasonCode::UnitInvalidPayload, "bad payload token=zzz")),
    }
}

pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i:04}")).collect()
}

pub async fn units_count_once_and_derive_the_outcome(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    for (results, expected) in [
        (vec![ok("u0000"), ok("u0001"), ok("u0002")], Outcome::Succeeded),
        (
            vec![ok("u0000"), failed("u0001"), ok("u0002")],
            Outcome::PartiallySucceeded,
        ),
        (vec![failed("u0000"), failed("u0001"), failed("u0002")], Outcome::Failed),
    ] {
        let st = start_synthetic(e, Initiator::User(s.operator), s.a, json!({"units": 3})).await;
        let id = st.run.id;
        claim(e, id).await;
        assert_eq!(
            e.plan_units(id, 1, &keys(3)).await.unwrap(),
            PlanApplied::Planned { total: 3 }
        );
        assert_eq!(
            e.plan_units(id, 1, &keys(5)).await.unwrap(),
            PlanApplied::AlreadyPlanned { total: 3 },
            "total is set once"
        );
        let run = c.store.get_run(id).await.unwrap().unwrap();
        assert_eq!(
            progress_of(&run, c.clock_now()),
            Progress::Counted { processed: 0, total: 3 }
        );
        // the first two results, then all three again plus an unknown key and a duplicate
        let first = e.complete_units(id, 1, &results[..2]).await.unwrap();
        assert_eq!(
            first,
            UnitsApplied::Counted {
                counted: 2,
                processed: 2,
                total: Some(3)
            }
        );
        let mut again = results.clone();
        again.push(ok("not-planned"));
        again.push(results[2].clone());
        let second = e.complete_units(id, 1, &again).await.unwrap();
        assert_eq!(
            second,
            UnitsApplied::Counted {
                counted: 1,
                processed: 3,
                total: Some(3)
            }
        );
        let run = c.store.get_run(id).await.unwrap().unwrap();
        assert_eq!(run.units.processed, 3);
        assert!(run.units.processed <= run.units.total.unwrap());
        let done = e.complete_from_units(id, 1).await.unwrap();
        let Completion::Completed { run, .. } = done else {
            panic!("{done:?}")
        };
        assert_eq!(run.state, RunState::Completed(expected));
        assert_eq!(
            progress_of(&run, c.clock_now()),
            Progress::Counted { processed: 3, total: 3 },
            "a completed counted run keeps its numbers"
        );
        if expected != Outcome::Succeeded {
            assert_eq!(run.reason_code, Some(ReasonCode::UnitFailed));
            assert!(
                run.failures
                    .iter()
                    .any(|f| f.reason_code == ReasonCode::UnitInvalidPayload)
            );
            assert!(run.failures.iter().all(|f| !f.message.as_str().contains("zzz")));
        }
        let units = c.store.run_units(id, false, 10).await.unwrap();
        assert_eq!(units.len(), 3);
        assert!(units.iter().all(|u| u.outcome.is_some()));
    }
}

pub async fn zero_units_complete_at_once(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let st = start_synthetic(&c.engine, Initiator::User(s.operator), s.a, json!({"units": 0})).await;
    claim(&c.engine, st.run.id).await;
    assert_eq!(
        c.engine.plan_units(st.run.id, 1, &[]).await.unwrap(),
        PlanApplied::Planned { total: 0 }
    );
    let run = c.store.get_run(st.run.id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Completed(Outcome::Succeeded));
    let p = progress_of(&run, c.clock_now());
    assert_eq!(p, Progress::Counted { processed: 0, total: 0 });
    assert_eq!(p.fraction(), None, "no percentage for zero units");
    assert_eq!(c.store.notifications(s.operator, 5).await.unwrap().len(), 1);
}

pub async fn stale_attempts_are_fenced(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let st = start_synthetic(e, Initiator::System, s.a, json!({"units": 2})).await;
    let id = st.run.id;
    claim(e, id).await;
    e.plan_units(id, 1, &keys(2)).await.unwrap();
    // attempt 1 goes back to the queue; attempt 2 takes over
    assert!(
        e.requeue(id, 1, c.clock_now(), None, RequeueCause::Shutdown)
            .await
            .unwrap()
    );
    claim(e, id).await;
    assert_eq!(e.plan_units(id, 1, &keys(2)).await.unwrap(), PlanApplied::Fenced);
    assert_eq!(
        e.complete_units(id, 1, &[ok("u0000")]).await.unwrap(),
        UnitsApplied::Fenced
    );
    assert!(!e.set_phase(id, 1, 1, 2, "late").await.unwrap());
    assert!(matches!(
        e.complete(id, Some(1), Outcome::Succeeded, None, vec![]).await.unwrap(),
        Completion::Fenced(_)
    ));
    // the current attempt resumes: the plan stands, results count
    assert_eq!(
        e.plan_units(id, 2, &keys(2)).await.unwrap(),
        PlanApplied::AlreadyPlanned { total: 2 }
    );
    let pending = c.store.run_units(id, true, 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    e.complete_units(id, 2, &[ok("u0000"), ok("u0001")]).await.unwrap();
    e.complete_from_units(id, 2).await.unwrap();
    // results after completion are ignored and written on the timeline
    assert_eq!(
        e.complete_units(id, 2, &[ok("u0000")]).await.unwrap(),
        UnitsApplied::Fenced
    );
    let run = c.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.units.processed, 2);
    let late: Vec<_> = c
        .events(id)
        .await
        .into_iter()
        .filter(|e| e.kind == RunEventKind::LateResultIgnored)
        .collect();
    assert_eq!(late.len(), 5, "{late:?}");
    assert_eq!(late[0].attempt, Some(1));
    assert_eq!(late[3].detail["write"], "complete");
    assert_eq!(late[4].detail["status"], "completed");
}

pub async fn phases_and_counts(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let st = start_synthetic(e, Initiator::System, s.a, json!({})).await;
    let id = st.run.id;
    claim(e, id).await;
    assert!(e.set_phase(id, 1, 2, 3, "Comparing").await.unwrap());
    assert!(
        e.set_phase(id, 1, 4, 3, "x").await.is_err(),
        "phase beyond the count is bad input"
    );
    let run = c.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(
        progress_of(&run, c.clock_now()),
        Progress::Phased {
            phase: 2,
            phases: 3,
            label: "Comparing".into()
        }
    );
    let counts = SummaryCounts::parse_reported("summary_counts", &json!({"created": 2, "findings": 5})).unwrap();
    assert!(e.add_counts(id, 1, counts.clone()).await.unwrap());
    assert!(e.add_counts(id, 1, counts).await.unwrap());
    let run = c.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.counts.get(SummaryKey::Created), Some(4));
    assert_eq!(run.counts.get(SummaryKey::Findings), Some(10));
    let view = serde_json::to_value(e.view(&run)).unwrap();
    assert_eq!(view["summary_counts"], json!({"created": 4, "findings": 10}));
    assert_eq!(view["progress"]["mode"], "phased");
}
