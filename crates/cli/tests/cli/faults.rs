//! Faults, with real processes: a worker killed with SIGKILL mid-flight, a
//! node holding the singleton duties killed, PostgreSQL restarted under
//! running workers. Each ends with the ledger checked run by run: nothing
//! lost, no unit counted twice, every orphan explained on its timeline.
//! Also what a worker-only process exposes about itself (its metrics).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tenantatlas_domain::access::Capability;
use tenantatlas_domain::catalog::{IdentityRule, OperationType, ProgressPlan, TypeSpec};
use tenantatlas_domain::directory::Actor;
use tenantatlas_domain::ids::{RunId, TenantId};
use tenantatlas_domain::lifecycle::{Outcome, RunState, RunStatus};
use tenantatlas_domain::params::RawParams;
use tenantatlas_domain::query::RunFilter;
use tenantatlas_domain::reason::ReasonCode;
use tenantatlas_domain::run::Run;
use tenantatlas_domain::timeline::RunEventKind;
use tenantatlas_engine::{Engine, EngineConfig, Initiator, SystemClock, Viewer};

use sqlx::Connection;

use crate::{Db, postgres, sqlite};

/// A child process killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(db_url: &str, args: &[&str], log: PathBuf) -> Self {
        let out = File::create(&log).unwrap();
        let child = Command::new(assert_cmd::cargo::cargo_bin("tenantatlas"))
            .args(args)
            .env("TENANTATLAS_DATABASE_URL", db_url)
            .env("TENANTATLAS_ENABLE_SYNTHETIC", "1")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on unix
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A stand-in spec for a type no worker of this build claims.
static GHOST: TypeSpec = TypeSpec::tenant(
    OperationType::InventorySync,
    Capability::SyncInventory,
    ProgressPlan::Indeterminate,
    &[],
    IdentityRule::PerTenant,
);

async fn engine(url: &str) -> Engine {
    Engine::new(
        tenantatlas_store::open(url).await.unwrap(),
        Arc::new(SystemClock),
        EngineConfig {
            // The build's types and one more: the cases below also start
            // a type no worker claims, as a run a vanished node left behind.
            catalog: tenantatlas_ops::catalog().with(&GHOST),
            enable_synthetic: true,
            ..EngineConfig::default()
        },
    )
}

async fn tenant(e: &Engine) -> TenantId {
    let name = tenantatlas_domain::names::WorkspaceName::parse("name", "Faults").unwrap();
    let ws = e.create_workspace(&name, Actor::Cli).await.unwrap();
    let name = tenantatlas_domain::names::TenantName::parse("name", "F").unwrap();
    e.add_tenant(ws.id, &name, None, Actor::Cli).await.unwrap().id
}

async fn start(e: &Engine, tenant: TenantId, n: usize, params: serde_json::Value) -> Vec<RunId> {
    let p = tenantatlas_ops::synthetic::SPEC
        .parse_params(RawParams::Json(&params))
        .unwrap();
    let reqs = (0..n).map(|_| (tenant, OperationType::Synthetic, p.clone())).collect();
    e.start_many(Initiator::System, reqs)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.run.id)
        .collect()
}

async fn all_runs(e: &Engine) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = e
            .list_runs(Viewer::Everything, RunFilter::default(), 500, cursor)
            .await
            .unwrap();
        out.extend(page.runs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn completed_count(e: &Engine) -> usize {
    all_runs(e)
        .await
        .iter()
        .filter(|r| r.state.status() == RunStatus::Completed)
        .count()
}

/// Every run: each unit counted once (the run's processed count equals its
/// terminal units), at most one completion on its timeline.
async fn check_ledger(e: &Engine, runs: &[Run], units: u64) {
    for r in runs {
        let ledger = e.unit_ledger(r.id, 1_000).await.unwrap();
        let terminal = ledger.iter().filter(|u| u.outcome.is_some()).count() as u64;
        assert_eq!(
            r.units.processed, terminal,
            "run {}: processed matches its ledger",
            r.id
        );
        assert!(r.units.processed <= units);
        if r.state == RunState::Completed(Outcome::Succeeded) {
            assert_eq!((r.units.total, r.units.processed), (Some(units), units), "run {}", r.id);
        }
        let events = e.timeline(r).await.unwrap();
        assert_eq!(
            events.iter().filter(|ev| ev.kind == RunEventKind::Completed).count(),
            1,
            "run {} completed once",
            r.id
        );
        // every attempt is accounted for: each claim either completed the
        // run or was ended by a recorded retry or release
        let claims: Vec<Option<u32>> = events
            .iter()
            .filter(|ev| ev.kind == RunEventKind::Claimed)
            .map(|ev| ev.attempt)
            .collect();
        assert_eq!(
            claims,
            (1..=r.attempt).map(Some).collect::<Vec<_>>(),
            "run {}: one claim per attempt",
            r.id
        );
    }
}

async fn sigkill_mid_flight(db: &Db) {
    let e = engine(&db.url).await;
    let t = tenant(&e).await;
    let ids = start(&e, t, 1_000, json!({"units": 20, "unit_ms": 20})).await;
    let dir = tempfile::tempdir().unwrap();
    // On PostgreSQL the workers' sessions carry a name, so that the test can
    // see when the server has finished with what the dead workers sent.
    let tag = format!("kill-{}", uuid::Uuid::now_v7().simple());
    let worker_url = match &db.pg_schema {
        Some(_) => format!("{}&application_name={tag}", db.url),
        None => db.url.clone(),
    };
    let worker = |node: &str| {
        Proc::spawn(
            &worker_url,
            &[
                "worker",
                "--node",
                node,
                "--concurrency",
                "32",
                "--lease-seconds",
                "3",
                "--heartbeat-seconds",
                "1",
            ],
            dir.path().join(format!("{node}-{}.log", uuid::Uuid::now_v7().simple())),
        )
    };
    let mut alpha = worker("alpha");
    let mut beta = worker("beta");
    wait_until("a quarter of the runs", Duration::from_secs(120), async || {
        completed_count(&e).await >= 250
    })
    .await;
    alpha.kill9();
    beta.kill9();
    // A statement a worker had sent before it died is still carried out:
    // PostgreSQL finishes it before it notices the client is gone. Read the
    // state at the kill only once those sessions have ended, or a claim that
    // lands after the read makes an orphan the test does not know of.
    if let Some((base, _)) = &db.pg_schema {
        let mut c = sqlx::PgConnection::connect(base).await.unwrap();
        wait_until(
            "the dead workers' sessions to end",
            Duration::from_secs(30),
            async || {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(&tag)
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                n == 0
            },
        )
        .await;
    }
    let at_kill = all_runs(&e).await;
    let orphans = |prefix: &str| -> BTreeSet<RunId> {
        at_kill
            .iter()
            .filter(|r| r.state == RunState::Running && r.lease.as_ref().is_some_and(|l| l.owner.starts_with(prefix)))
            .map(|r| r.id)
            .collect()
    };
    let (alpha_orphans, beta_orphans) = (orphans("alpha/"), orphans("beta/"));
    assert!(
        !alpha_orphans.is_empty() && !beta_orphans.is_empty(),
        "both died mid-flight"
    );
    // the units each orphan had finished when its node died
    let mut finished_at_kill: HashMap<RunId, Vec<(String, tenantatlas_domain::Timestamp)>> = HashMap::new();
    for id in alpha_orphans.iter().chain(&beta_orphans) {
        let done = e.unit_ledger(*id, 1_000).await.unwrap();
        finished_at_kill.insert(
            *id,
            done.into_iter()
                .filter(|u| u.outcome.is_some())
                .map(|u| (u.unit_key, u.updated_at))
                .collect(),
        );
    }
    // alpha comes back at once and resumes its own orphans
    let mut alpha_again = worker("alpha");
    // beta stays dead: once its leases lapse, sweeps give its orphans their
    // next attempt — and touch nothing else. On a loaded machine one sweep
    // may come a moment before the last of those leases lapses, so sweep
    // until all are done; a sweep may also reach an orphan of alpha before
    // the restarted alpha does, which resumes it just the same.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    // A worker killed just after sending a completion's COMMIT still has it
    // applied: PostgreSQL finishes the statement it received before it
    // notices the client is gone. Such a run was in flight at the kill and
    // ends on attempt 1; every other orphan resumes on attempt 2.
    let landed = |r: &Run| r.state == RunState::Completed(Outcome::Succeeded) && r.attempt == 1;
    let mut swept = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sweep = db.json(&["reconcile", "--json"]);
        assert_eq!(
            sweep["reconciled"].as_array().unwrap().len(),
            0,
            "no orphan is failed while it has attempts left: {sweep}"
        );
        for r in sweep["resumed"].as_array().unwrap() {
            let id: RunId = r["run_id"].as_str().unwrap().parse().unwrap();
            assert!(
                beta_orphans.contains(&id) || alpha_orphans.contains(&id),
                "the sweep resumed {id}, not an orphan of a dead node"
            );
            assert_eq!(r["lost_attempt"], 1);
            assert!(swept.insert(id), "{id} resumed twice");
        }
        let left: Vec<Run> = all_runs(&e)
            .await
            .into_iter()
            .filter(|r| beta_orphans.contains(&r.id) && !swept.contains(&r.id) && !landed(r))
            .collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let left: Vec<_> = left
                .iter()
                .map(|r| format!("{} {:?} lease {:?} at {}", r.id, r.state, r.lease, e.now()))
                .collect();
            panic!("the dead node's orphans were not all resumed: {left:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!swept.is_empty(), "the sweep had orphans to resume");
    wait_until("every run to end", Duration::from_secs(180), async || {
        completed_count(&e).await == 1_000
    })
    .await;
    alpha_again.terminate();
    let runs = all_runs(&e).await;
    assert_eq!(runs.len(), 1_000, "no run lost");
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<BTreeSet<_>>(),
        ids.iter().copied().collect::<BTreeSet<_>>()
    );
    check_ledger(&e, &runs, 20).await;
    for r in &runs {
        assert_eq!(r.state, RunState::Completed(Outcome::Succeeded), "run {}", r.id);
    }
    let by_id: HashMap<RunId, &Run> = runs.iter().map(|r| (r.id, r)).collect();
    let (mut resumed, mut restarted) = (0, 0);
    for id in alpha_orphans.iter().chain(&beta_orphans) {
        let r = by_id[id];
        if landed(r) {
            // its completion was in flight when the node died
            continue;
        }
        assert!(
            alpha_orphans.contains(id) || swept.contains(id),
            "run {id}: an orphan of the dead node resumed without a sweep"
        );
        if alpha_orphans.contains(id) && !swept.contains(id) {
            restarted += 1;
        }
        resumed += 1;
        assert_eq!(r.attempt, 2, "run {id} resumed on attempt 2");
        let events = e.timeline(r).await.unwrap();
        let released: Vec<_> = events.iter().filter(|ev| ev.kind == RunEventKind::Released).collect();
        assert_eq!(released.len(), 1, "run {id}: the timeline says resumed once");
        assert_eq!(released[0].attempt, Some(1));
        assert!(
            released[0].detail["reason"].as_str().is_some_and(|s| !s.is_empty()),
            "run {id}: the release says why: {}",
            released[0].detail
        );
        assert!(!events.iter().any(|ev| ev.kind == RunEventKind::Reconciled));
        // the units it had finished were not executed again
        let after: HashMap<String, tenantatlas_domain::Timestamp> = e
            .unit_ledger(*id, 1_000)
            .await
            .unwrap()
            .into_iter()
            .map(|u| (u.unit_key, u.updated_at))
            .collect();
        for (key, at) in &finished_at_kill[id] {
            assert_eq!(after.get(key), Some(at), "run {id}: unit {key} finished once");
        }
    }
    assert!(resumed > 0, "there were orphans to resume");
    if restarted > 0 {
        assert!(
            alpha_again
                .log()
                .contains("resuming runs an earlier incarnation left running")
        );
    }
    eprintln!(
        "kill -9: {} orphans; {} resumed by the sweep, {} by the restarted node, {} had landed, 0 failed",
        alpha_orphans.len() + beta_orphans.len(),
        swept.len(),
        restarted,
        alpha_orphans.len() + beta_orphans.len() - resumed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_workers_loses_nothing_and_explains_every_orphan() {
    sigkill_mid_flight(&sqlite()).await;
    if let Some(db) = postgres() {
        sigkill_mid_flight(&db).await;
    }
}

/// Two nodes on one PostgreSQL: no run executes twice; killing the node
/// that holds the reconciler and scheduler moves the duties to the other
/// within a sweep interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_work_and_survive_losing_the_duty_holder() {
    let Some(db) = postgres() else { return };
    let e = engine(&db.url).await;
    let t = tenant(&e).await;
    let dir = tempfile::tempdir().unwrap();
    let node = |name: &str| {
        Proc::spawn(
            &db.url,
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--node",
                name,
                "--workers",
                "16",
                "--sweep-seconds",
                "1",
                "--lease-seconds",
                "2",
                "--heartbeat-seconds",
                "1",
            ],
            dir.path().join(format!("{name}.log")),
        )
    };
    let mut a = node("a");
    let mut b = node("b");
    start(&e, t, 2_000, json!({"units": 0})).await;
    wait_until("2,000 runs", Duration::from_secs(120), async || {
        completed_count(&e).await == 2_000
    })
    .await;
    let runs = all_runs(&e).await;
    for r in &runs {
        assert_eq!(
            (r.state, r.attempt),
            (RunState::Completed(Outcome::Succeeded), 1),
            "run {} ran once",
            r.id
        );
    }
    let mut workers = BTreeSet::new();
    for r in runs.iter().take(400) {
        let claims: Vec<_> = e
            .timeline(r)
            .await
            .unwrap()
            .into_iter()
            .filter(|ev| ev.kind == RunEventKind::Claimed)
            .collect();
        assert_eq!(claims.len(), 1, "claimed once");
        workers.insert(
            claims[0].detail["worker"]
                .as_str()
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(workers.len(), 2, "both nodes worked: {workers:?}");
    // who holds the duties?
    let holds = "now holds the reconciler and scheduler duties";
    wait_until("a duty holder", Duration::from_secs(10), async || {
        a.log().contains(holds) || b.log().contains(holds)
    })
    .await;
    let (holder, survivor) = if a.log().contains(holds) {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(!survivor.log().contains(holds), "only one node holds the duties");
    // a run left running by a node that no longer exists: only a sweep can end it
    let ghost = start(&e, t, 1, json!({"duration_ms": 600_000})).await[0];
    // (it may be claimed by a live worker first; use a fresh identity the workers never see)
    let _ = ghost;
    let ghost_run = {
        let q = e
            .start(
                Initiator::System,
                t,
                OperationType::InventorySync,
                GHOST.parse_params(RawParams::Json(&json!({}))).unwrap(),
            )
            .await
            .unwrap()
            .run;
        e.claim(q.id, "ghost/1", Duration::from_secs(1)).await.unwrap().unwrap()
    };
    holder.kill9();
    let killed = Instant::now();
    wait_until("the survivor to take the duties", Duration::from_secs(10), async || {
        survivor.log().contains(holds)
    })
    .await;
    let took = killed.elapsed();
    wait_until("the ghost run to be reconciled", Duration::from_secs(10), async || {
        e.get_run_for(Viewer::Everything, ghost_run.id)
            .await
            .unwrap()
            .state
            .status()
            == RunStatus::Completed
    })
    .await;
    let g = e.get_run_for(Viewer::Everything, ghost_run.id).await.unwrap();
    assert_eq!(g.reason_code, Some(ReasonCode::RunStaleReconciled));
    assert!(
        took < Duration::from_secs(3),
        "taken over within a sweep interval (1 s) and a retry: {took:?}"
    );
    survivor.terminate();
}

/// A private PostgreSQL cluster (its own port), dropped afterwards, so
/// restarting it disturbs no other test.
struct Cluster {
    name: String,
    port: u16,
}

impl Cluster {
    fn create() -> Option<Self> {
        if std::env::var("TENANTATLAS_TEST_POSTGRES_URL").is_err()
            || Command::new("pg_createcluster").arg("--version").output().is_err()
        {
            return None;
        }
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()?
            .filter_map(|d| d.ok()?.file_name().into_string().ok())
            .max()?;
        let port = 56_000 + u16::try_from(std::process::id() % 1_000).unwrap_or(0);
        let name = format!("tatest{port}");
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &version, &name])
            .output();
        let made = Command::new("pg_createcluster")
            .args([
                &version,
                &name,
                "-p",
                &port.to_string(),
                "--start-conf=manual",
                "--",
                "--auth=trust",
            ])
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let c = Self {
            name: format!("{version} {name}"),
            port,
        };
        c.ctl("start");
        Some(c)
    }

    /// Runs `pg_ctlcluster` for this cluster. On a loaded machine a start
    /// or restart can miss pg_ctl's wait; a second try then finds it done
    /// (or does it), and a failure names both outputs.
    fn ctl(&self, action: &str) {
        let mut args = vec!["--skip-systemctl-redirect"];
        args.extend(self.name.split(' '));
        args.push(action);
        if action == "restart" || action == "stop" {
            args.extend(["-m", "fast"]);
        }
        let mut failures = Vec::new();
        for _ in 0..3 {
            let out = Command::new("pg_ctlcluster").args(&args).output().unwrap();
            if out.status.success() || (action == "start" && self.is_up()) {
                return;
            }
            failures.push(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
            std::thread::sleep(Duration::from_secs(2));
            if action == "restart" && !self.is_up() {
                // the stop half went through: what is left is a start
                return self.ctl("start");
            }
        }
        panic!("pg_ctlcluster {action} failed three times: {failures:?}");
    }

    fn is_up(&self) -> bool {
        Command::new("psql")
            .args([&self.url(), "-Atc", "SELECT 1"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn started_at(&self) -> String {
        let out = Command::new("psql")
            .args([&self.url(), "-Atc", "SELECT pg_postmaster_start_time()"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut args = vec!["--stop"];
        args.extend(self.name.split(' '));
        let _ = Command::new("pg_dropcluster").args(&args).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_postgresql_restart() {
    let Some(cluster) = Cluster::create() else { return };
    let url = cluster.url();
    let e = engine(&url).await;
    let t = tenant(&e).await;
    let ids = start(&e, t, 300, json!({"units": 10, "unit_ms": 30})).await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = Proc::spawn(
        &url,
        &[
            "serve",
            "--node",
            "r",
            "--workers",
            "16",
            "--sweep-seconds",
            "1",
            "--lease-seconds",
            "10",
            "--heartbeat-seconds",
            "1",
        ],
        dir.path().join("restart.log"),
    );
    wait_until("some progress", Duration::from_secs(60), async || {
        completed_count(&e).await >= 60
    })
    .await;
    let started_before = cluster.started_at();
    cluster.ctl("restart");
    let left_at_restart = 300 - completed_count(&engine(&url).await).await;
    assert_ne!(cluster.started_at(), started_before, "PostgreSQL really restarted");
    assert!(left_at_restart > 0, "work was still in flight when it restarted");
    let e = engine(&url).await; // the test's own pool reconnects too
    wait_until(
        "every run to end after the restart",
        Duration::from_secs(180),
        async || {
            matches!(
                tokio::time::timeout(Duration::from_secs(5), completed_count(&e)).await,
                Ok(300)
            )
        },
    )
    .await;
    let runs = all_runs(&e).await;
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<BTreeSet<_>>(),
        ids.iter().copied().collect::<BTreeSet<_>>(),
        "no run lost"
    );
    check_ledger(&e, &runs, 10).await;
    // a claim whose answer the restart swallowed ends as a visible
    // reconciliation; everything else succeeded
    let reconciled = runs.iter().filter(|r| r.reconciliation.is_some()).count();
    let succeeded = runs
        .iter()
        .filter(|r| r.state == RunState::Completed(Outcome::Succeeded))
        .count();
    assert_eq!(
        succeeded + reconciled,
        300,
        "{succeeded} succeeded, {reconciled} reconciled"
    );
    assert!(reconciled <= 16, "at most one claim batch can be lost: {reconciled}");
    node.terminate();
}

/// One GET over loopback; answers the status line and the body.
fn http_get(addr: &str, path: &str, token: Option<&str>) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// A worker-only process counts its own work, so it must serve it: with
/// `--metrics-bind` it answers `/metrics` (platform operators' tokens only)
/// and `/healthz`, and nothing of the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_only_process_serves_its_own_metrics() {
    let db = sqlite();
    let e = engine(&db.url).await;
    let t = tenant(&e).await;
    let pw = tenantatlas_domain::names::Password::parse("p", "a long enough password").unwrap();
    let email = |s: &str| tenantatlas_domain::names::Email::parse("e", s).unwrap();
    let platform = e
        .add_user(&email("scraper@faults.test"), &pw, true, Actor::Cli)
        .await
        .unwrap();
    let owner = e
        .add_user(&email("owner@faults.test"), &pw, false, Actor::Cli)
        .await
        .unwrap();
    let scrape = e
        .create_api_token(&platform, "scrape", None, Actor::Cli)
        .await
        .unwrap()
        .token;
    let not_platform = e
        .create_api_token(&owner, "scrape", None, Actor::Cli)
        .await
        .unwrap()
        .token;
    start(&e, t, 5, json!({"units": 2})).await;
    let port = 17_000 + (std::process::id() % 1_000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Proc::spawn(
        &db.url,
        &["worker", "--node", "solo", "--metrics-bind", &addr],
        dir.path().join("solo.log"),
    );
    wait_until("the five runs", Duration::from_secs(60), async || {
        completed_count(&e).await == 5
    })
    .await;
    wait_until("the metrics listener", Duration::from_secs(30), async || {
        std::net::TcpStream::connect(&addr).is_ok()
    })
    .await;
    let (status, page) = http_get(&addr, "/metrics", Some(&scrape));
    assert!(status.contains(" 200"), "{status}: {}", worker.log());
    let sample = |series: &str| -> Option<String> {
        page.lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().to_owned()))
    };
    assert_eq!(
        sample("tenantatlas_runs_completed_total{type=\"synthetic\",outcome=\"succeeded\"}").as_deref(),
        Some("5"),
        "{page}"
    );
    assert_eq!(
        sample("tenantatlas_claim_latency_seconds_count").as_deref(),
        Some("5"),
        "{page}"
    );
    assert_eq!(
        sample("tenantatlas_runs_started_total{type=\"synthetic\"}"),
        None,
        "this process started nothing: {page}"
    );
    assert!(http_get(&addr, "/metrics", None).0.contains(" 401"));
    assert!(http_get(&addr, "/metrics", Some(&not_platform)).0.contains(" 404"));
    assert!(http_get(&addr, "/healthz", None).0.contains(" 200"));
    assert!(
        http_get(&addr, "/login", None).0.contains(" 404"),
        "no hub on a worker's metrics listener"
    );
    worker.terminate();
}

/// A worker's events about a run happen inside the run's span, which
/// carries its id, tenant and workspace (a retried run logs its retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_log_lines_carry_its_run_tenant_and_workspace() {
    let db = sqlite();
    let e = engine(&db.url).await;
    let t = tenant(&e).await;
    let id = start(&e, t, 1, json!({"units": 1, "fail_attempts": 1})).await[0];
    let ws = e.get_tenant(t).await.unwrap().unwrap().workspace_id;
    let dir = tempfile::tempdir().unwrap();
    let mut w = Proc::spawn(
        &db.url,
        &["worker", "--node", "spans", "--concurrency", "2"],
        dir.path().join("worker.log"),
    );
    wait_until("the retried run to complete", Duration::from_secs(30), async || {
        e.get_run_for(Viewer::Everything, id).await.unwrap().state == RunState::Completed(Outcome::Succeeded)
    })
    .await;
    w.terminate();
    let log = w.log();
    let retry = log
        .lines()
        .find(|l| l.contains("retryable failure; requeued"))
        .unwrap_or_else(|| panic!("the retry is logged:\n{log}"));
    for field in [
        format!("run.id={id}"),
        format!("tenant.id={t}"),
        format!("workspace.id={ws}"),
        "run.type=\"synthetic\"".to_owned(),
    ] {
        assert!(retry.contains(&field), "{field} in {retry}");
    }
}
