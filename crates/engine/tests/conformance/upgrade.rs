//! A database made by an earlier main (8499300, before the store was
//! reshaped) opens with the current code, migrates forward (its recorded
//! migrations' checksums still match, and any newer one applies), and reads
//! back without loss — then takes new work. The fixtures are dumps of
//! databases that main's own binary seeded through its command line
//! (`tests/fixtures/main-8499300/seed.sh`).

use serde_json::json;
use tenantatlas_domain::access::{Role, TenantScope};
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::lifecycle::{Outcome, RunState};
use tenantatlas_domain::query::RunFilter;
use tenantatlas_domain::reason::ReasonCode;
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::{Initiator, Viewer};

use crate::harness::{Ctx, Db};
use crate::params;

const SQLITE: &str = include_str!("../fixtures/main-8499300/sqlite.sql");
const POSTGRES: &str = include_str!("../fixtures/main-8499300/postgres.sql");
const SQLITE_TOKEN: &str = include_str!("../fixtures/main-8499300/sqlite.token");
const POSTGRES_TOKEN: &str = include_str!("../fixtures/main-8499300/postgres.token");

pub async fn a_database_of_an_earlier_main_migrates_forward_and_reads_back(db: Db) {
    db.load_dump(SQLITE, POSTGRES).await;
    let token = if db.is_postgres() { POSTGRES_TOKEN } else { SQLITE_TOKEN }.trim();
    let c = Ctx::new(db).await; // opens and migrates
    let e = &c.engine;
    // the directory
    let ws = e.resolve_workspace("Contoso MSP").await.unwrap();
    let tenants: Vec<String> = e
        .list_tenants(ws.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(tenants, ["Contoso Prod", "Fabrikam"]);
    let fabrikam = e.resolve_tenant("Fabrikam", Some(ws.id)).await.unwrap();
    let prod = e.resolve_tenant("Contoso Prod", Some(ws.id)).await.unwrap();
    let ops = e
        .verify_login("ops@contoso.example", "correct horse battery staple")
        .await
        .unwrap()
        .expect("the password hash still verifies");
    assert_eq!(
        e.token_user(token).await.unwrap().map(|u| u.id),
        Some(ops.id),
        "the API token still works"
    );
    // ... and got a public id, by which it is listed and revoked
    let listed = e.api_tokens(Some(&ops)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].expires_at.is_none(), "an old token never expires");
    e.revoke_api_token(Some(&ops), listed[0].id).await.unwrap();
    assert_eq!(e.token_user(token).await.unwrap(), None, "revoked");
    let ro = e.resolve_user("ro@contoso.example").await.unwrap();
    let m = e.memberships_of(ro.id).await.unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].role, &m[0].tenants),
        (Role::Readonly, &TenantScope::Only(vec![fabrikam.id]))
    );
    let schedules = e.list_schedules().await.unwrap();
    assert_eq!(
        schedules
            .iter()
            .map(|s| (s.name.as_str(), s.op_type))
            .collect::<Vec<_>>(),
        [("nightly", OperationType::TelemetryPrune)]
    );
    // the runs, their ledgers, timelines and notifications
    let runs = e
        .list_runs(Viewer::Everything, RunFilter::default(), 100, None)
        .await
        .unwrap()
        .runs;
    assert_eq!(runs.len(), 3, "{runs:?}");
    let by_state = |s: RunState| {
        runs.iter()
            .find(|r| r.state == s)
            .unwrap_or_else(|| panic!("a {s:?} run"))
    };
    let done = by_state(RunState::Completed(Outcome::Succeeded));
    assert_eq!(
        (done.units.total, done.units.processed, done.units.succeeded),
        (Some(4), 4, 4)
    );
    assert_eq!(e.unit_ledger(done.id, 10).await.unwrap().len(), 4);
    let kinds: Vec<RunEventKind> = e.timeline(done).await.unwrap().iter().map(|ev| ev.kind).collect();
    assert!(
        kinds.contains(&RunEventKind::UnitsPlanned) && kinds.contains(&RunEventKind::Completed),
        "{kinds:?}"
    );
    let cancelled = by_state(RunState::Completed(Outcome::Cancelled));
    assert_eq!(
        (cancelled.tenant_id, cancelled.reason_code),
        (Some(fabrikam.id), Some(ReasonCode::RunCancelled))
    );
    let waiting = by_state(RunState::Queued);
    assert_eq!(waiting.identity_key.as_deref(), Some("key=waiting"));
    let inbox = e.notifications(ops.id, 10).await.unwrap();
    let mut notified: Vec<_> = inbox.iter().map(|n| n.run_id).collect();
    notified.sort();
    let mut expected = vec![done.id, cancelled.id];
    expected.sort();
    assert_eq!(notified, expected, "one notification per run the operator started");
    // and it takes new work: law 2 still sees the queued run's identity
    let start = |key: &str| {
        e.start(
            Initiator::User(ops.id),
            prod.id,
            OperationType::Synthetic,
            params(OperationType::Synthetic, json!({"key": key})),
        )
    };
    let again = start("waiting").await.unwrap();
    assert!(
        again.joined && again.run.id == waiting.id,
        "joined the queued run of the earlier build"
    );
    let fresh = start("done").await.unwrap();
    assert!(!fresh.joined, "the completed run's identity is free again");
}
