//! `tenantatlas-bench`: throughput of the operations engine on real
//! databases. Every repetition gets a fresh database (an SQLite file in a
//! temporary directory, or a PostgreSQL schema of its own, dropped after);
//! figures are medians over the repetitions.
//!
//! ```text
//! cargo run --release -p tenantatlas-bench -- starts --backend postgres
//! cargo run --release -p tenantatlas-bench -- units --backend sqlite
//! ```

mod graph;
mod hub;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use tenantatlas_domain::access::Role;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::{TenantId, UserId};
use tenantatlas_domain::params::{Params, RawParams};
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_engine::{Engine, EngineConfig, Initiator, SystemClock, Viewer};
use tenantatlas_store::SqlStore;
use tenantatlas_store::Store;
use tenantatlas_store::model::{Actor, MembershipWrite, UnitResult};

#[derive(Parser)]
#[command(about = "Benchmarks of TenantAtlas on real databases")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Which database.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// PostgreSQL server (a schema per repetition is created in it).
    #[arg(
        long,
        env = "TENANTATLAS_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

#[derive(Subcommand)]
enum What {
    /// Starts per second: one per call from 1 and from 64 concurrent
    /// callers, and a batch of 20,000 in one call.
    Starts {
        #[command(flatten)]
        common: Common,
        /// Starts per single-caller measurement.
        #[arg(long, default_value_t = 1_000)]
        single: usize,
        /// Starts per 64-caller measurement.
        #[arg(long, default_value_t = 20_000)]
        concurrent: usize,
        /// Runs in the batch start.
        #[arg(long, default_value_t = 20_000)]
        batch: usize,
    },
    /// End to end with real worker processes: batch-started no-op runs
    /// (0 units) claimed, executed and completed; then the idle
    /// start-to-claim latency; then the worker's RSS.
    E2e {
        #[command(flatten)]
        common: Common,
        /// Runs per measurement.
        #[arg(long, default_value_t = 50_000)]
        runs: usize,
        /// Worker processes.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// Runs in flight per worker process.
        #[arg(long, default_value_t = 512)]
        concurrency: usize,
        /// Starts measured for the idle latency.
        #[arg(long, default_value_t = 200)]
        latency_samples: usize,
    },
    /// The hub over a large ledger: list, detail, dashboard and overview
    /// latency server-side, a real server's idle RSS, and live-widget
    /// streams.
    Hub {
        #[command(flatten)]
        common: Common,
        /// Runs in the ledger.
        #[arg(long, default_value_t = 1_000_000)]
        runs: usize,
        /// Tenants they belong to.
        #[arg(long, default_value_t = 200)]
        tenants: usize,
        /// Requests timed per figure and round.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Rounds over all figures (medians across rounds are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Live-widget streams held open.
        #[arg(long, default_value_t = 500)]
        sse_clients: usize,
        /// Seed into this PostgreSQL schema and keep it; when it exists
        /// already (from an earlier `--keep-schema` run), measure without
        /// seeding. For iterating on read paths; drop it by hand after.
        #[arg(long)]
        keep_schema: Option<String>,
        /// Measure only these figures (comma-separated names from the
        /// report, e.g. `tenant_dashboard,workspace_overview`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Reading a tenant through the Microsoft Graph provider against the
    /// local Graph (a separate process; build it with the same profile):
    /// objects/s, requests, peak RSS — without faults and with a share of
    /// requests answered 429.
    Graph {
        /// Objects in the tenant.
        #[arg(long, default_value_t = 5_000)]
        objects: usize,
        /// Rounds per variant (medians reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The share of requests answered 429 in the throttled variant.
        #[arg(long, default_value_t = 0.05)]
        throttle: f64,
        /// Their Retry-After, in seconds.
        #[arg(long, default_value = "0.5")]
        retry_after: String,
        /// Lift the per-tenant limiter (Intune's 2,000 requests per 20 s).
        #[arg(long)]
        unlimited: bool,
        /// Full reads in flight.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Unit completions per second, in batches.
    Units {
        #[command(flatten)]
        common: Common,
        /// Units planned on one run.
        #[arg(long, default_value_t = 100_000)]
        units: usize,
        /// Unit results per call.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
    },
}

/// A fresh database.
struct Fresh {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
    /// A named PostgreSQL schema kept after the measurement (`--keep-schema`).
    keep: bool,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        // A measurement that failed still removes its schema.
        if let Some((url, schema)) = self.pg.take()
            && !self.keep
        {
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(admin) = sqlx::PgPool::connect(&url).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&admin)
                            .await;
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

impl Fresh {
    async fn new(c: &Common) -> Result<Self> {
        match c.backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}/bench.db", dir.path().display());
                let store: Store = Arc::new(SqlStore::sqlite(&url).await?);
                store.migrate().await?;
                Ok(Self {
                    store,
                    _dir: Some(dir),
                    pg: None,
                    keep: false,
                })
            }
            Backend::Postgres => {
                let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
                let admin = sqlx::PgPool::connect(&c.postgres_url)
                    .await
                    .context("connect to PostgreSQL")?;
                sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await?;
                admin.close().await;
                let opts = PgConnectOptions::from_str(&c.postgres_url)?.options([("search_path", schema.as_str())]);
                let store: Store = Arc::new(SqlStore::postgres_with(opts, 16).await?);
                store.migrate().await?;
                Ok(Self {
                    store,
                    _dir: None,
                    pg: Some((c.postgres_url.clone(), schema)),
                    keep: false,
                })
            }
        }
    }

    /// A PostgreSQL schema by name that outlives the measurement: created
    /// (and migrated) when missing, reused when present. Answers whether
    /// it already existed.
    async fn kept(c: &Common, schema: &str) -> Result<(Self, bool)> {
        anyhow::ensure!(
            matches!(c.backend, Backend::Postgres),
            "--keep-schema needs --backend postgres"
        );
        anyhow::ensure!(
            !schema.is_empty()
                && schema
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
            "--keep-schema: use lowercase letters, digits and underscores"
        );
        let admin = sqlx::PgPool::connect(&c.postgres_url)
            .await
            .context("connect to PostgreSQL")?;
        let existed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)")
                .bind(schema)
                .fetch_one(&admin)
                .await?;
        if !existed {
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await?;
        }
        admin.close().await;
        let opts = PgConnectOptions::from_str(&c.postgres_url)?.options([("search_path", schema)]);
        let store: Store = Arc::new(SqlStore::postgres_with(opts, 16).await?);
        store.migrate().await?;
        Ok((
            Self {
                store,
                _dir: None,
                pg: Some((c.postgres_url.clone(), schema.to_owned())),
                keep: true,
            },
            existed,
        ))
    }

    async fn drop_schema(self) -> Result<()> {
        // closing the pool lets Drop remove the schema without waiting
        self.store.close().await;
        Ok(())
    }
}

struct World {
    engine: Engine,
    tenants: Vec<TenantId>,
    users: Vec<UserId>,
}

async fn world(store: &Store) -> Result<World> {
    let now = tenantatlas_engine::Clock::now(&SystemClock);
    let ws = store.create_workspace("Bench", Actor::Cli, now).await?;
    let mut tenants = Vec::new();
    for i in 0..8 {
        tenants.push(
            store
                .add_tenant(ws.id, &format!("T{i}"), None, Actor::Cli, now)
                .await?
                .id,
        );
    }
    let mut users = Vec::new();
    for i in 0..64 {
        let u = store
            .add_user(
                &format!("u{i}@bench.test"),
                "$argon2id$v=19$m=19456,t=2,p=1$x$y",
                false,
                Actor::Cli,
                now,
            )
            .await?;
        store
            .put_membership(
                &MembershipWrite {
                    workspace_id: ws.id,
                    user_id: u.id,
                    role: Role::Operator,
                    tenants: None,
                },
                Actor::Cli,
                now,
            )
            .await?;
        users.push(u.id);
    }
    let engine = Engine::new(
        store.clone(),
        Arc::new(SystemClock),
        EngineConfig {
            catalog: tenantatlas_ops::catalog(),
            enable_synthetic: true,
            ..EngineConfig::default()
        },
    );
    Ok(World { engine, tenants, users })
}

fn unique_params() -> Params {
    tenantatlas_ops::synthetic::SPEC
        .parse_params(RawParams::Json(&json!({"units": 0})))
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `callers` tasks that together start `n` runs one call each.
async fn concurrent_starts(w: &World, n: usize, callers: usize, as_users: bool) -> Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let e = w.engine.clone();
        let tenant = w.tenants[c % w.tenants.len()];
        let who = if as_users {
            Initiator::User(w.users[c % w.users.len()])
        } else {
            Initiator::System
        };
        let mine = n / callers + usize::from(c < n % callers);
        tasks.push(tokio::spawn(async move {
            for _ in 0..mine {
                e.start(who, tenant, OperationType::Synthetic, unique_params()).await?;
            }
            Ok::<_, tenantatlas_engine::EngineError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn starts(c: &Common, single: usize, concurrent: usize, batch: usize) -> Result<serde_json::Value> {
    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut many_users = Vec::new();
    let mut batched = Vec::new();
    for _ in 0..c.repeat {
        let db = Fresh::new(c).await?;
        let w = world(&db.store).await?;
        one.push(concurrent_starts(&w, single, 1, false).await?);
        many.push(concurrent_starts(&w, concurrent, 64, false).await?);
        many_users.push(concurrent_starts(&w, concurrent, 64, true).await?);
        let requests: Vec<_> = (0..batch)
            .map(|i| {
                (
                    w.tenants[i % w.tenants.len()],
                    OperationType::Synthetic,
                    unique_params(),
                )
            })
            .collect();
        let t = Instant::now();
        let done = w.engine.start_many(Initiator::System, requests).await?;
        batched.push(batch as f64 / t.elapsed().as_secs_f64());
        anyhow::ensure!(done.len() == batch && done.iter().all(|s| !s.joined));
        db.drop_schema().await?;
    }
    Ok(json!({
        "backend": format!("{:?}", c.backend).to_lowercase(),
        "repetitions": c.repeat,
        "starts_per_s_1_caller": median(one).round(),
        "starts_per_s_64_callers": median(many).round(),
        "starts_per_s_64_callers_user_initiated": median(many_users).round(),
        "batch_size": batch,
        "starts_per_s_batch": median(batched).round(),
    }))
}

async fn units(c: &Common, n: usize, batch: usize) -> Result<serde_json::Value> {
    let mut rates = Vec::new();
    for _ in 0..c.repeat {
        let db = Fresh::new(c).await?;
        let w = world(&db.store).await?;
        let p = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(&json!({"units": n})))?;
        let run = w
            .engine
            .start(Initiator::System, w.tenants[0], OperationType::Synthetic, p)
            .await?
            .run;
        let run = w
            .engine
            .claim(run.id, "bench", Duration::from_secs(3600))
            .await?
            .context("claim")?;
        let keys: Vec<String> = (0..n).map(|i| format!("unit-{i:07}")).collect();
        w.engine.plan_units(run.id, run.attempt, &keys).await?;
        let t = Instant::now();
        for chunk in keys.chunks(batch) {
            let results: Vec<UnitResult> = chunk
                .iter()
                .map(|k| UnitResult {
                    unit_key: k.clone(),
                    outcome: UnitOutcome::Succeeded,
                    failure: None,
                })
                .collect();
            w.engine.complete_units(run.id, run.attempt, &results).await?;
        }
        rates.push(n as f64 / t.elapsed().as_secs_f64());
        let after = w.engine.get_run_for(Viewer::Everything, run.id).await?;
        anyhow::ensure!(
            after.units.processed == n as u64,
            "processed {} of {n}",
            after.units.processed
        );
        db.drop_schema().await?;
    }
    Ok(json!({
        "backend": format!("{:?}", c.backend).to_lowercase(),
        "repetitions": c.repeat,
        "units": n,
        "batch": batch,
        "unit_completions_per_s": median(rates).round(),
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let report = match &args.what {
        What::Starts {
            common,
            single,
            concurrent,
            batch,
        } => starts(common, *single, *concurrent, *batch).await?,
        What::Units {
            common,
            units: n,
            batch,
        } => units(common, *n, *batch).await?,
        What::Graph {
            objects,
            rounds,
            throttle,
            retry_after,
            unlimited,
            concurrency,
        } => {
            graph::graph(&graph::GraphBench {
                objects: *objects,
                rounds: *rounds,
                throttle: *throttle,
                retry_after: retry_after.clone(),
                unlimited: *unlimited,
                concurrency: *concurrency,
            })
            .await?
        }
        What::E2e {
            common,
            runs,
            processes,
            concurrency,
            latency_samples,
        } => e2e(common, *runs, *processes, *concurrency, *latency_samples).await?,
        What::Hub {
            common,
            runs,
            tenants,
            samples,
            rounds,
            sse_clients,
            keep_schema,
            only,
        } => {
            hub::hub(
                common,
                hub::Size {
                    runs: *runs,
                    tenants: *tenants,
                },
                hub::Measure {
                    samples: *samples,
                    rounds: *rounds,
                    sse_clients: *sse_clients,
                    only: only.clone(),
                },
                keep_schema.as_deref(),
            )
            .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The `tenantatlas` binary next to this one (build both with
/// `cargo build --release`).
fn tenantatlas_bin() -> Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("tenantatlas");
    anyhow::ensure!(
        bin.exists(),
        "{} not found: run `cargo build --release` first",
        bin.display()
    );
    Ok(bin)
}

/// The database URL a child process should use for this fresh database.
fn child_url(c: &Common, db: &Fresh) -> String {
    match (&db.pg, &db._dir) {
        (Some((url, schema)), _) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-csearch_path%3D{schema}")
        }
        (None, Some(dir)) => format!("sqlite://{}/bench.db", dir.path().display()),
        (None, None) => c.postgres_url.clone(),
    }
}

fn spawn_workers(url: &str, n: usize, concurrency: usize) -> Result<Workers> {
    let bin = tenantatlas_bin()?;
    let children: Result<Vec<_>> = (0..n)
        .map(|i| {
            Ok(std::process::Command::new(&bin)
                .args([
                    "worker",
                    "--node",
                    &format!("bench{i}"),
                    "--concurrency",
                    &concurrency.to_string(),
                ])
                .env("TENANTATLAS_DATABASE_URL", url)
                .env("TENANTATLAS_ENABLE_SYNTHETIC", "1")
                // TENANTATLAS_BENCH_WORKER_LOG (e.g. "tenantatlas_engine=debug")
                // shows the workers' claim and completion batches
                .env(
                    "RUST_LOG",
                    std::env::var("TENANTATLAS_BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdout(std::process::Stdio::null())
                .spawn()?)
        })
        .collect();
    Ok(Workers(children?))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Worker processes, stopped (SIGTERM, then waited for) when dropped, so
/// a failed measurement leaves none behind.
struct Workers(Vec<std::process::Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

/// Whether any run is still queued or running: two `LIMIT 1` probes the
/// partial indexes answer, so that watching does not load the database
/// being measured.
async fn active(url: &str) -> Result<bool> {
    const PROBE: &str = "SELECT EXISTS (SELECT 1 FROM operation_runs WHERE active)";
    if url.starts_with("sqlite:") {
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)?.read_only(true);
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        Ok(sqlx::query_scalar(PROBE).fetch_one(&mut c).await?)
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        Ok(sqlx::query_scalar(PROBE).fetch_one(&mut c).await?)
    }
}

/// Starts `n` no-op runs, lets the workers drain them, answers runs per
/// second from the first claim to the last completion (read back from the
/// ledger).
async fn drain(w: &World, url: &str, n: usize, user: bool) -> Result<f64> {
    let p = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(&json!({"units": 0})))?;
    let who = if user {
        Initiator::User(w.users[0])
    } else {
        Initiator::System
    };
    let t0 = w.engine.now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(20_000) {
        let reqs = chunk
            .iter()
            .map(|i| (w.tenants[i % w.tenants.len()], OperationType::Synthetic, p.clone()))
            .collect();
        w.engine.start_many(who, reqs).await?;
    }
    let t1 = w.engine.now();
    let deadline = Instant::now() + Duration::from_secs(600);
    while active(url).await? {
        anyhow::ensure!(Instant::now() < deadline, "the workers did not drain the runs");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let filter = tenantatlas_store::model::RunFilter {
        since: Some(t0),
        until: Some(t1.plus(Duration::from_micros(1))),
        ..Default::default()
    };
    let (mut first, mut last, mut seen) = (
        None::<tenantatlas_domain::Timestamp>,
        None::<tenantatlas_domain::Timestamp>,
        0usize,
    );
    let mut cursor = None;
    loop {
        let page = w
            .engine
            .list_runs(tenantatlas_engine::Viewer::Everything, filter.clone(), 500, cursor)
            .await?;
        for r in &page.runs {
            let (s, c) = (r.started_at.context("started")?, r.completed_at.context("completed")?);
            first = Some(first.map_or(s, |f| f.min(s)));
            last = Some(last.map_or(c, |l| l.max(c)));
            seen += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    anyhow::ensure!(seen == n, "read back {seen} runs of {n}");
    let span = last.context("no runs")?.since(first.context("no runs")?);
    Ok(n as f64 / span.as_secs_f64())
}

async fn e2e(c: &Common, n: usize, processes: usize, concurrency: usize, samples: usize) -> Result<serde_json::Value> {
    let mut system = Vec::new();
    let mut user = Vec::new();
    let mut latencies = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..c.repeat {
        let db = Fresh::new(c).await?;
        let w = world(&db.store).await?;
        let url = child_url(c, &db);
        let workers = spawn_workers(&url, processes, concurrency)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        system.push(drain(&w, &url, n, false).await?);
        user.push(drain(&w, &url, n, true).await?);
        // idle start-to-claim latency
        tokio::time::sleep(Duration::from_millis(300)).await;
        let p = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(&json!({"units": 0})))?;
        for _ in 0..samples {
            let run = w
                .engine
                .start(Initiator::System, w.tenants[0], OperationType::Synthetic, p.clone())
                .await?
                .run;
            let claimed = loop {
                let r = w.engine.get_run_for(Viewer::Everything, run.id).await?;
                if let Some(s) = r.started_at {
                    break s;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            latencies.push(claimed.since(run.created_at).as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rss.push(workers.0.iter().filter_map(|w| rss_kib(w.id())).max().unwrap_or(0) as f64 / 1024.0);
        drop(workers);
        db.drop_schema().await?;
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    Ok(json!({
        "backend": format!("{:?}", c.backend).to_lowercase(),
        "repetitions": c.repeat,
        "runs": n,
        "worker_processes": processes,
        "concurrency_per_process": concurrency,
        "runs_per_s_system_initiated": median(system).round(),
        "runs_per_s_user_initiated": median(user).round(),
        "start_to_claim_ms_p50": (pct(0.50) * 10.0).round() / 10.0,
        "start_to_claim_ms_p99": (pct(0.99) * 10.0).round() / 10.0,
        "worker_rss_mib_after": median(rss).round(),
    }))
}
