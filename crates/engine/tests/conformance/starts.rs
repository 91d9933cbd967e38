use serde_json::json;
use tenantatlas_domain::access::Capability;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::lifecycle::{Outcome, RunState};
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::{EngineConfig, EngineError, Initiator};
use tenantatlas_store::model::{RunFilter, RunScope};

use crate::harness::{Ctx, Db, every_type};
use crate::{claim, params, start_synthetic};

pub async fn a_start_creates_a_queued_run_with_its_timeline(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let op = OperationType::InventorySync;
    let started = c
        .engine
        .start(Initiator::User(s.operator), s.a, op, params(op, json!({})))
        .await
        .unwrap();
    assert!(!started.joined);
    let run = c.store.get_run(started.run.id).await.unwrap().unwrap();
    assert_eq!(run, started.run, "the returned run is what was stored");
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(
        (run.workspace_id, run.tenant_id, run.initiator),
        (Some(s.ws), Some(s.a), Some(s.operator))
    );
    assert_eq!(run.identity_key.as_deref(), Some("scope=all"));
    assert_eq!(run.params.text("scope"), Some("all"));
    assert_eq!(run.created_at, c.clock_now());
    assert_eq!(c.store.subscribers(run.id).await.unwrap(), vec![s.operator]);
    let events = c.events(run.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, events[0].actor_id),
        (RunEventKind::Created, Some(s.operator))
    );
    // system-initiated: nobody subscribed
    let sys = c
        .engine
        .start(Initiator::System, s.b, op, params(op, json!({})))
        .await
        .unwrap();
    assert!(c.store.subscribers(sys.run.id).await.unwrap().is_empty());
    assert_eq!(sys.run.initiator, None);
}

pub async fn identical_starts_join_and_subscribe(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let op = OperationType::BackupSetAddPolicies;
    let p1 = params(op, json!({"backup_set": "set-1", "policies": ["p1"]}));
    let p2 = params(op, json!({"backup_set": "set-1", "policies": ["p2", "p3"]}));
    let first = c.engine.start(Initiator::User(s.operator), s.a, op, p1).await.unwrap();
    let second = c.engine.start(Initiator::User(s.owner), s.a, op, p2).await.unwrap();
    assert!(second.joined);
    assert_eq!(second.run.id, first.run.id, "same identity (backup set) joins");
    let mut subs = c.store.subscribers(first.run.id).await.unwrap();
    subs.sort();
    let mut want = vec![s.operator, s.owner];
    want.sort();
    assert_eq!(subs, want);
    let kinds: Vec<_> = c
        .events(first.run.id)
        .await
        .iter()
        .map(|e| (e.kind, e.actor_id))
        .collect();
    assert_eq!(
        kinds,
        [
            (RunEventKind::Created, Some(s.operator)),
            (RunEventKind::Joined, Some(s.owner))
        ]
    );
    // another identity, another tenant: separate runs
    let other_set = c
        .engine
        .start(
            Initiator::User(s.operator),
            s.a,
            op,
            params(op, json!({"backup_set": "set-2", "policies": ["p"]})),
        )
        .await
        .unwrap();
    let other_tenant = c
        .engine
        .start(
            Initiator::User(s.operator),
            s.b,
            op,
            params(op, json!({"backup_set": "set-1", "policies": ["p"]})),
        )
        .await
        .unwrap();
    assert!(!other_set.joined && !other_tenant.joined);
    assert_ne!(other_set.run.id, first.run.id);
    assert_ne!(other_tenant.run.id, first.run.id);
    // joining a running run works too; after completion a new start creates a new run
    claim(&c.engine, first.run.id).await;
    let third = c
        .engine
        .start(
            Initiator::User(s.readonly),
            s.a,
            OperationType::InventorySync,
            params(OperationType::InventorySync, json!({})),
        )
        .await;
    assert!(matches!(third, Err(EngineError::Forbidden(Capability::SyncInventory))));
    let joined_running = c
        .engine
        .start(
            Initiator::System,
            s.a,
            op,
            params(op, json!({"backup_set": "set-1", "policies": ["p"]})),
        )
        .await
        .unwrap();
    assert!(joined_running.joined);
    assert_eq!(joined_running.run.state, RunState::Running);
    c.engine
        .complete(first.run.id, Some(1), Outcome::Succeeded, None, vec![])
        .await
        .unwrap();
    let fresh = c
        .engine
        .start(
            Initiator::User(s.operator),
            s.a,
            op,
            params(op, json!({"backup_set": "set-1", "policies": ["p"]})),
        )
        .await
        .unwrap();
    assert!(!fresh.joined);
    assert_ne!(fresh.run.id, first.run.id);
    // synthetic runs without a key never dedupe; with a key they do
    let a = start_synthetic(&c.engine, Initiator::System, s.a, json!({"units": 1})).await;
    let b = start_synthetic(&c.engine, Initiator::System, s.a, json!({"units": 1})).await;
    assert_ne!(a.run.id, b.run.id);
    let k1 = start_synthetic(&c.engine, Initiator::System, s.a, json!({"key": "k", "units": 1})).await;
    let k2 = start_synthetic(&c.engine, Initiator::System, s.a, json!({"key": "k", "units": 5})).await;
    assert_eq!(k1.run.id, k2.run.id);
    assert!(k2.joined);
}

pub async fn refused_starts_create_nothing(db: Db) {
    let config = EngineConfig {
        catalog: every_type(),
        ..EngineConfig::default() // synthetic disabled
    };
    let c = Ctx::with_config(db, config).await;
    let s = c.seed().await;
    let e = &c.engine;
    let inv = OperationType::InventorySync;
    let p = || params(inv, json!({}));
    let cases = [
        (
            e.start(Initiator::User(s.readonly), s.a, inv, p()).await,
            "readonly lacks the capability",
        ),
        (
            e.start(Initiator::User(s.outsider), s.a, inv, p()).await,
            "not a member",
        ),
        (
            e.start(Initiator::User(s.scoped), s.a, inv, p()).await,
            "not entitled to tenant A",
        ),
        (
            e.start(
                Initiator::User(s.operator),
                s.a,
                OperationType::RestoreExecute,
                params(OperationType::RestoreExecute, json!({"backup_set": "b"})),
            )
            .await,
            "operators may not restore",
        ),
        (
            e.start(
                Initiator::User(s.owner),
                s.a,
                OperationType::Synthetic,
                params(OperationType::Synthetic, json!({})),
            )
            .await,
            "synthetic disabled",
        ),
        (
            e.start(
                Initiator::System,
                s.a,
                OperationType::TelemetryPrune,
                params(OperationType::TelemetryPrune, json!({})),
            )
            .await,
            "system-only type",
        ),
        (
            e.start(
                Initiator::User(s.owner),
                tenantatlas_domain::ids::TenantId::from_uuid(uuid::Uuid::now_v7()),
                inv,
                p(),
            )
            .await,
            "unknown tenant",
        ),
    ];
    for (result, why) in &cases {
        assert!(result.as_ref().is_err_and(|e| e.is_refusal()), "{why}: {result:?}");
    }
    assert!(matches!(
        cases[0].0,
        Err(EngineError::Forbidden(Capability::SyncInventory))
    ));
    assert!(matches!(cases[1].0, Err(EngineError::NotFound(_))));
    assert!(matches!(cases[2].0, Err(EngineError::NotFound(_))));
    let page = e
        .list_runs(tenantatlas_engine::Viewer::Everything, RunFilter::default(), 100, None)
        .await
        .unwrap();
    assert!(page.runs.is_empty(), "nothing was created: {:?}", page.runs);
    // the scoped operator may start on the tenant they are entitled to
    assert!(e.start(Initiator::User(s.scoped), s.b, inv, p()).await.is_ok());
    let _ = RunScope::Everything;
}

/// A build offers and accepts only the types it has a handler for: the
/// others are refused at every entry (user, system, batch, schedule,
/// fan-out) before anything is written, and are not offered as startable.
pub async fn types_without_a_handler_are_refused_and_create_nothing(db: Db) {
    let executable = tenantatlas_ops::catalog().types();
    let config = EngineConfig {
        catalog: tenantatlas_ops::catalog(),
        enable_synthetic: true,
        ..EngineConfig::default()
    };
    let c = Ctx::with_config(db, config).await;
    let s = c.seed().await;
    let e = &c.engine;
    let inv = OperationType::InventorySync;
    assert!(!executable.contains(inv), "this test needs a type without a handler");
    let p = || params(inv, json!({}));
    fn unavailable<T>(r: &tenantatlas_engine::Result<T>) -> bool {
        matches!(r, Err(EngineError::Unavailable(OperationType::InventorySync)))
    }
    let by_owner = e.start(Initiator::User(s.owner), s.a, inv, p()).await;
    assert!(unavailable(&by_owner), "{by_owner:?}");
    assert!(
        !by_owner.as_ref().is_err_and(EngineError::is_refusal),
        "bad input, not a refusal"
    );
    let message = by_owner.unwrap_err().to_string();
    assert!(
        message.contains("Inventory sync") && message.contains("no handler"),
        "{message}"
    );
    assert!(unavailable(&e.start(Initiator::System, s.a, inv, p()).await));
    let batch = e
        .start_many(
            Initiator::System,
            vec![
                (
                    s.a,
                    OperationType::Synthetic,
                    params(OperationType::Synthetic, json!({})),
                ),
                (s.a, inv, p()),
            ],
        )
        .await;
    assert!(unavailable(&batch), "one unavailable type refuses the whole batch");
    let cron = tenantatlas_domain::schedule::CronSpec::parse("cron", "0 3 * * *").unwrap();
    let schedule = e
        .put_schedule(
            "nightly",
            &cron,
            Some(s.a),
            inv,
            p(),
            tenantatlas_store::model::Actor::Cli,
        )
        .await;
    assert!(unavailable(&schedule));
    // a running parent cannot fan out into children nobody would execute
    let parent = start_synthetic(e, Initiator::System, s.a, json!({})).await;
    let parent = claim(e, parent.run.id).await;
    assert!(unavailable(&e.fan_out(&parent, vec![(inv, p())]).await));
    let page = e
        .list_runs(tenantatlas_engine::Viewer::Everything, RunFilter::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(
        page.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![parent.id],
        "only the synthetic parent exists"
    );
    assert!(c.store.list_schedules().await.unwrap().iter().all(|s| s.op_type != inv));
    // what the hub offers: the owner may start everything, yet only what
    // this build executes is offered
    let (tenant, membership) = e.tenant_for(s.owner, s.a, Capability::StartSynthetic).await.unwrap();
    let offered = e.startable_types(&tenant, &membership);
    assert!(offered.contains(&OperationType::Synthetic), "{offered:?}");
    assert!(offered.iter().all(|op| executable.contains(*op)), "{offered:?}");
}

pub async fn batch_start_dedupes_within_and_across_batches(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let op = OperationType::Synthetic;
    let mut reqs = Vec::new();
    for i in 0..300 {
        // 100 unique, then 200 that share 10 keys
        let p = if i < 100 {
            json!({"units": 2})
        } else {
            json!({"key": format!("k{}", i % 10), "units": 1})
        };
        reqs.push((if i % 2 == 0 { s.a } else { s.b }, op, params(op, p)));
    }
    let started = c.engine.start_many(Initiator::User(s.operator), reqs).await.unwrap();
    assert_eq!(started.len(), 300);
    let created: Vec<_> = started.iter().filter(|s| !s.joined).collect();
    // keys k0..k9 alternate tenants by i parity: i%10 even → tenant a (i even), odd → b; so 10 identities
    assert_eq!(created.len(), 110);
    for st in &started[100..] {
        let key = st.run.identity_key.clone();
        let owner = created
            .iter()
            .find(|c| c.run.identity_key == key && c.run.tenant_id == st.run.tenant_id)
            .unwrap();
        assert_eq!(owner.run.id, st.run.id);
    }
    // a second batch joins the active twins from the first
    let again: Vec<_> = (0..10)
        .map(|k| {
            (
                if k % 2 == 0 { s.a } else { s.b },
                op,
                params(op, json!({"key": format!("k{k}")})),
            )
        })
        .collect();
    let joined = c.engine.start_many(Initiator::System, again).await.unwrap();
    assert!(joined.iter().all(|j| j.joined));
    let page = c
        .engine
        .list_runs(tenantatlas_engine::Viewer::Everything, RunFilter::default(), 500, None)
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 110);
    // subscribers: the operator once per created run
    for st in &created {
        assert_eq!(c.store.subscribers(st.run.id).await.unwrap(), vec![s.operator]);
    }
}
