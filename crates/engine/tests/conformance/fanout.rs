use serde_json::json;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::lifecycle::{Outcome, RunState};
use tenantatlas_domain::reason::ReasonCode;
use tenantatlas_engine::{Completion, Initiator};
use tenantatlas_store::model::PlanApplied;

use crate::harness::{Ctx, Db};
use crate::{claim, params};

pub async fn parent_completes_once_with_its_last_child(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let op = OperationType::BackupScheduleRun;
    let parent = e
        .start(
            Initiator::User(s.operator),
            s.a,
            op,
            params(op, json!({"schedule": "nightly"})),
        )
        .await
        .unwrap()
        .run;
    let parent = claim(e, parent.id).await;
    let cap = OperationType::BackupSetCapture;
    let children: Vec<_> = ["s1", "s2", "s3"]
        .iter()
        .map(|b| (cap, params(cap, json!({"backup_set": b}))))
        .collect();
    assert_eq!(
        e.fan_out(&parent, children.clone()).await.unwrap(),
        PlanApplied::Planned { total: 3 }
    );
    assert_eq!(
        e.fan_out(&parent, children).await.unwrap(),
        PlanApplied::AlreadyPlanned { total: 3 },
        "a resumed parent does not fan out twice"
    );
    let detail = e
        .run_detail(tenantatlas_engine::Viewer::Everything, parent.id)
        .await
        .unwrap();
    assert_eq!(detail.children.len(), 3);
    assert_eq!(detail.run.units.total, Some(3));
    assert!(
        detail
            .children
            .iter()
            .all(|ch| ch.parent_id == Some(parent.id) && ch.state == RunState::Queued)
    );
    assert!(detail.children.iter().all(|ch| ch.initiator == Some(s.operator)));
    // a standalone capture of the same set does not collide with the child
    let standalone = e
        .start(Initiator::System, s.a, cap, params(cap, json!({"backup_set": "s1"})))
        .await
        .unwrap();
    assert!(!standalone.joined);

    let outcomes = [Outcome::Succeeded, Outcome::Failed, Outcome::Succeeded];
    for (i, (child, outcome)) in detail.children.iter().zip(outcomes).enumerate() {
        claim(e, child.id).await;
        let done = e
            .complete(
                child.id,
                Some(1),
                outcome,
                (outcome == Outcome::Failed).then_some(ReasonCode::ProviderUnavailable),
                vec![],
            )
            .await
            .unwrap();
        assert!(
            matches!(done, Completion::Completed { ref notified, .. } if notified.is_empty()),
            "children notify nobody"
        );
        let p = c.store.get_run(parent.id).await.unwrap().unwrap();
        assert_eq!(p.units.processed, i as u64 + 1);
        if i < 2 {
            assert_eq!(p.state, RunState::Running, "the parent waits for its last child");
        } else {
            assert_eq!(p.state, RunState::Completed(Outcome::PartiallySucceeded));
            assert_eq!(p.reason_code, Some(ReasonCode::RunChildrenFailed));
            assert_eq!((p.units.succeeded, p.units.failed), (2, 1));
        }
    }
    // completing a child again changes nothing in the parent
    let again = e
        .complete(detail.children[0].id, None, Outcome::Failed, None, vec![])
        .await
        .unwrap();
    assert!(matches!(again, Completion::AlreadyCompleted(_)));
    let inbox = c.store.notifications(s.operator, 10).await.unwrap();
    assert_eq!(inbox.len(), 1, "one notification: the parent's");
    assert_eq!(inbox[0].run_id, parent.id);
    assert_eq!(inbox[0].title, "Scheduled backup partially succeeded");
}

pub async fn zero_children_complete_the_parent(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let op = OperationType::BackupScheduleRun;
    let parent = c
        .engine
        .start(Initiator::System, s.a, op, params(op, json!({"schedule": "empty"})))
        .await
        .unwrap()
        .run;
    let parent = claim(&c.engine, parent.id).await;
    assert_eq!(
        c.engine.fan_out(&parent, vec![]).await.unwrap(),
        PlanApplied::Planned { total: 0 }
    );
    let p = c.store.get_run(parent.id).await.unwrap().unwrap();
    assert_eq!(p.state, RunState::Completed(Outcome::Succeeded));
}
