//! Carrying out each command through the engine.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tenantatlas_domain::FieldError;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::{Role, TenantScope};
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::directory::{Actor, Tenant, User};
use tenantatlas_domain::ids::{RunId, TenantId, UserId};
use tenantatlas_domain::lifecycle::StatusFilter;
use tenantatlas_domain::lifecycle::{Outcome, RunStatus};
use tenantatlas_domain::names::{
    ClientId, ClientSecret, Email, Password, ProviderSpec, TenantName, TokenLifetime, WorkspaceName,
};
use tenantatlas_domain::params::RawParams;
use tenantatlas_domain::problem::ProblemClass;
use tenantatlas_domain::query::{Cursor, RunFilter};
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::schedule::CronSpec;
use tenantatlas_engine::node::{NodeConfig, run_node};
use tenantatlas_engine::secrets::SecretKey;
use tenantatlas_engine::worker::WorkerConfig;
use tenantatlas_engine::{
    CancelOutcome, CredentialStatus, Engine, EngineConfig, EngineError, Initiator, RequeueCause, SystemClock, Viewer,
};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use tenantatlas_web::settings::{issued_json, member_json, schedule_json, token_json, user_json};

use crate::CliError;
use crate::args::*;
use crate::output;

type Result<T> = std::result::Result<T, CliError>;

async fn open(cli: &Cli, enable_synthetic: bool) -> Result<Engine> {
    // a key that is set but is not a key stops every command at once,
    // rather than the first one that needs a secret
    let secret_key = SecretKey::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
    let config = EngineConfig {
        catalog: tenantatlas_ops::catalog(),
        enable_synthetic,
        secret_key,
        ..EngineConfig::default()
    };
    let store = tenantatlas_store::open(&cli.database_url)
        .await
        .map_err(|e| CliError::Failed(format!("cannot open the database: {e}")))?;
    Ok(Engine::new(store, Arc::new(SystemClock), config))
}

async fn engine(cli: &Cli) -> Result<Engine> {
    open(cli, cli.enable_synthetic).await
}

/// Runs the parsed command; answers the exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    if let Command::Migrate = cli.command {
        tenantatlas_store::migrate(&cli.database_url)
            .await
            .map_err(|e| CliError::Failed(format!("cannot migrate the database: {e}")))?;
        if cli.json {
            output::json(&json!({ "migrations": "applied" }))?;
        } else {
            println!("migrations applied");
        }
        return Ok(0);
    }
    let engine = engine(&cli).await?;
    let out = Json { json: cli.json };
    let result = match &cli.command {
        Command::Migrate => Ok(0),
        Command::Workspace(c) => workspace(&engine, c, out).await.map(|()| 0),
        Command::Tenant(c) => tenant(&engine, c, out).await.map(|()| 0),
        Command::User(c) => user(&engine, c, out).await.map(|()| 0),
        Command::Member(c) => member(&engine, c, out).await.map(|()| 0),
        Command::Run(c) => run_cmd(&engine, c, out, cli.public_url.as_deref()).await,
        Command::Runs(c) => runs(&engine, c, out, cli.public_url.as_deref()).await.map(|()| 0),
        Command::Worker(a) => {
            let listen = a.metrics_bind.as_deref().map(Listen::Metrics);
            node(
                &engine,
                Some(worker_config(a)),
                false,
                Duration::from_secs(15),
                listen,
                tenantatlas_ops::connect::Connector::from_env(),
            )
            .await
            .map(|()| 0)
        }
        Command::Serve(a) => serve(&engine, a).await.map(|()| 0),
        Command::Reconcile { dry_run } => reconcile(&engine, *dry_run, out).await.map(|()| 0),
        Command::Schedule(c) => schedule(&engine, c, out).await.map(|()| 0),
        Command::Token(c) => token(&engine, c, out).await.map(|()| 0),
        Command::Demo { bind } => demo(&cli, bind).await.map(|()| 0),
    };
    engine.close().await;
    result
}

fn worker_config(a: &WorkerArgs) -> WorkerConfig {
    let defaults = WorkerConfig::default();
    WorkerConfig {
        node: a.node.clone().unwrap_or(defaults.node),
        concurrency: a.concurrency.max(1),
        lease: Duration::from_secs(a.lease_seconds.max(2)),
        heartbeat: Duration::from_secs(a.heartbeat_seconds.clamp(1, a.lease_seconds.max(2) / 2)),
        grace: Duration::from_secs(a.grace_seconds),
        ..defaults
    }
}

/// Resolves when SIGTERM or ctrl-c arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// What a node serves over HTTP.
enum Listen<'a> {
    /// The hub (whether it is reached over TLS, and its trusted proxies).
    Hub(&'a str, bool, &'a [ipnet::IpNet]),
    /// `/metrics` and `/healthz` only (a worker-only process).
    Metrics(&'a str),
}

async fn node(
    engine: &Engine,
    worker: Option<WorkerConfig>,
    duties: bool,
    sweep: Duration,
    listen: Option<Listen<'_>>,
    connector: tenantatlas_ops::connect::Connector,
) -> Result<()> {
    let shutdown = CancellationToken::new();
    let config = NodeConfig {
        worker,
        duties,
        sweep_interval: sweep,
        ..NodeConfig::default()
    };
    let hub = match listen {
        Some(l) => {
            let (bind, tls, proxies, what) = match l {
                Listen::Hub(bind, tls, proxies) => (bind, tls, proxies, "the hub"),
                Listen::Metrics(bind) => (bind, false, &[][..], "metrics"),
            };
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| CliError::Failed(format!("cannot listen on {bind}: {e}")))?;
            let addr = listener
                .local_addr()
                .map_err(|e| CliError::Failed(format!("cannot listen on {bind}: {e}")))?;
            eprintln!("{what} listens on http://{addr}/");
            let state = tenantatlas_web::AppState::new(
                engine.clone(),
                tenantatlas_web::WebConfig {
                    tls,
                    trusted_proxies: proxies.to_vec(),
                    ..tenantatlas_web::WebConfig::default()
                },
            );
            let app = if matches!(l, Listen::Hub(..)) {
                tenantatlas_web::router(state)
            } else {
                tenantatlas_web::metrics_router(state)
            };
            Some(tokio::spawn(tenantatlas_web::serve(listener, app, shutdown.clone())))
        }
        None => None,
    };
    let task = tokio::spawn(run_node(
        engine.clone(),
        tenantatlas_ops::registry_with(connector),
        config,
        shutdown.clone(),
    ));
    shutdown_signal().await;
    eprintln!("stopping: finishing in-flight runs (then releasing them)");
    shutdown.cancel();
    if let Some(h) = hub {
        let _ = h.await;
    }
    task.await
        .map_err(|e| CliError::Failed(format!("the node task failed: {e}")))?
        .map_err(CliError::from)?;
    Ok(())
}

async fn serve(engine: &Engine, a: &ServeArgs) -> Result<()> {
    let worker = (a.workers > 0).then(|| {
        worker_config(&WorkerArgs {
            concurrency: a.workers,
            node: a.node.clone(),
            lease_seconds: a.lease_seconds,
            heartbeat_seconds: a.heartbeat_seconds,
            grace_seconds: a.grace_seconds,
            metrics_bind: None,
        })
    });
    node(
        engine,
        worker,
        true,
        Duration::from_secs(a.sweep_seconds.max(1)),
        Some(Listen::Hub(&a.bind, a.behind_tls, &a.trusted_proxies)),
        tenantatlas_ops::connect::Connector::from_env(),
    )
    .await
}

async fn token(e: &Engine, c: &TokenCmd, out: Json) -> Result<()> {
    match c {
        TokenCmd::Create {
            email,
            name,
            expires_in,
        } => {
            let lifetime = expires_in
                .as_deref()
                .map(|d| TokenLifetime::parse("--expires-in", d))
                .transpose()?;
            let user = e.resolve_user(email).await.map_err(|x| named(x, "user", email))?;
            let t = e.create_api_token(&user, name, lifetime, Actor::Cli).await?;
            if out.json {
                output::json(&issued_json(&t, name))
            } else {
                println!("{}", t.token);
                let until = t
                    .expires_at
                    .map_or_else(|| "until revoked".to_owned(), |at| format!("until {at}"));
                eprintln!(
                    "API token \"{}\" ({}) for {}, valid {until}: shown once, only its hash is kept",
                    name.trim(),
                    t.id,
                    user.email
                );
                Ok(())
            }
        }
        TokenCmd::List { user } => {
            let mut all = e.api_tokens(None).await?;
            if let Some(key) = user {
                let u = e.resolve_user(key).await.map_err(|x| named(x, "--user", key))?;
                all.retain(|t| t.user.id == u.id);
            }
            if out.json {
                output::json(&json!({ "tokens": all.iter().map(token_json).collect::<Vec<_>>() }))
            } else {
                for t in &all {
                    println!(
                        "{}  {:<24}  {:<28}  created {}  expires {}  last used {}",
                        t.id,
                        t.name,
                        t.user.email,
                        t.created_at,
                        t.expires_at.map_or_else(|| "never".to_owned(), |x| x.to_string()),
                        t.last_used_at.map_or_else(|| "never".to_owned(), |x| x.to_string()),
                    );
                }
                Ok(())
            }
        }
        TokenCmd::Revoke { id } => {
            let parsed = id
                .trim()
                .parse()
                .map_err(|_| FieldError::new("id", "must be a token id (from `token list`)"))?;
            let t = e.revoke_api_token(None, parsed).await.map_err(|x| named(x, "id", id))?;
            if out.json {
                output::json(&json!({ "revoked": token_json(&t) }))
            } else {
                println!("Revoked token \"{}\" ({}) of {}", t.name, t.id, t.user.email);
                Ok(())
            }
        }
    }
}

/// A password people can type: four groups of random lower-case letters.
fn demo_password() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    let letters: String = b.iter().map(|x| char::from(b'a' + x % 26)).collect();
    format!(
        "{}-{}-{}-{}",
        &letters[0..4],
        &letters[4..8],
        &letters[8..12],
        &letters[12..16]
    )
}

async fn demo(cli: &Cli, bind: &str) -> Result<()> {
    let e = open(cli, true).await?;
    let ws_name = "Demo MSP";
    let fresh = e.resolve_workspace(ws_name).await.is_err();
    let ws = if fresh {
        e.create_workspace(&WorkspaceName::parse("name", ws_name)?, Actor::Cli)
            .await?
    } else {
        e.resolve_workspace(ws_name).await?
    };
    // The embedded demo tenants, written beside the database (their
    // overlays, which restores write, beside them), and a local Graph on
    // loopback serving a third tenant through the Graph provider.
    let folders = demo_folders(&e)?;
    let demo_secret = format!("{}-{}", demo_password(), demo_password());
    let graph = start_demo_graph(&folders.1, &demo_secret).await?;
    let mut tenants = Vec::new();
    for (name, folder) in [("Contoso Prod", &folders.0), ("Fabrikam", &folders.1)] {
        let t = match e.resolve_tenant(name, Some(ws.id)).await {
            Ok(t) => t,
            Err(_) => {
                let spec = ProviderSpec::Directory(folder.display().to_string());
                e.add_tenant(ws.id, &TenantName::parse("name", name)?, Some(&spec), Actor::Cli)
                    .await?
            }
        };
        tenants.push(t);
    }
    // the local Graph's tenant: a fresh app secret each time the demo starts
    let graph_name = "Woodgrove (Graph)";
    let client_id = ClientId::parse("--client-id", DEMO_GRAPH_CLIENT)?;
    let secret = ClientSecret::parse("secret", &demo_secret)?;
    let woodgrove = match e.resolve_tenant(graph_name, Some(ws.id)).await {
        Ok(t) => {
            e.set_tenant_credentials(None, t.id, client_id.as_str(), &secret)
                .await?
        }
        Err(_) => {
            let spec = ProviderSpec::Graph(DEMO_GRAPH_TENANT.to_owned());
            e.add_tenant_with_credentials(
                ws.id,
                &TenantName::parse("name", graph_name)?,
                &spec,
                client_id.as_str(),
                &secret,
                Actor::Cli,
            )
            .await?
        }
    };
    let connector = tenantatlas_ops::connect::Connector {
        graph_url: graph.base_url().to_owned(),
        login_url: graph.base_url().to_owned(),
    };
    let mut people = Vec::new();
    for (who, role) in [
        ("owner", Some(Role::Owner)),
        ("manager", Some(Role::Manager)),
        ("operator", Some(Role::Operator)),
        ("readonly", Some(Role::Readonly)),
        ("platform", None),
    ] {
        let email = format!("{who}@demo.example");
        let password = demo_password();
        let p = Password::parse("password", &password)?;
        let user = match e.resolve_user(&email).await {
            Ok(u) => {
                e.change_password(&u, &p, Actor::Cli).await?;
                u
            }
            Err(_) => {
                e.add_user(&Email::parse("email", &email)?, &p, role.is_none(), Actor::Cli)
                    .await?
            }
        };
        if let Some(role) = role {
            e.put_member(&ws, &user, role, None, Actor::Cli).await?;
        }
        people.push((email, password, role.map_or("platform operator", |r| r.as_str()), user));
    }
    if fresh {
        seed_demo_runs(&e, &tenants, &people[2].3).await?;
    }
    // a few long runs so there is live progress at once
    let operator = Initiator::User(people[2].3.id);
    for (i, t) in tenants.iter().enumerate() {
        let p = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(
            &json!({"units": 240, "unit_ms": 1_500, "key": format!("demo-long-{i}")}),
        ))?;
        e.start(operator, t.id, OperationType::Synthetic, p).await?;
    }
    let p = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(
        &json!({"duration_ms": 900_000, "key": "demo-indeterminate"}),
    ))?;
    e.start(operator, tenants[0].id, OperationType::Synthetic, p).await?;
    // every tenant's connection is checked as the demo starts
    let manager = Initiator::User(people[1].3.id);
    for t in tenants.iter().chain([&woodgrove]) {
        let p = e.parse_params(OperationType::ProviderVerify, RawParams::Json(&json!({})))?;
        e.start(manager, t.id, OperationType::ProviderVerify, p).await?;
    }
    println!(
        "TenantAtlas demo: workspace \"{}\" with tenants {}, {} (directory folders in {}) and {} (Microsoft Graph, served by a local Graph at {} that throttles 5 % of requests)",
        ws.name,
        tenants[0].name,
        tenants[1].name,
        folders.0.parent().map_or_else(String::new, |p| p.display().to_string()),
        woodgrove.name,
        graph.base_url(),
    );
    println!("Sign in at http://{bind}/login as one of:");
    for (email, password, role, _) in &people {
        println!("  {email:<24} {password}   ({role})");
    }
    let worker = WorkerConfig {
        concurrency: 16,
        ..WorkerConfig::default()
    };
    node(
        &e,
        Some(worker),
        true,
        Duration::from_secs(5),
        Some(Listen::Hub(bind, false, &[])),
        connector,
    )
    .await?;
    graph.stop().await;
    e.close().await;
    Ok(())
}

/// The Entra tenant id the demo's local Graph serves.
const DEMO_GRAPH_TENANT: &str = "5d1c4e2a-9b7f-4c3d-8e6a-1f2b3c4d5e6f";
/// The demo app registration's client id.
const DEMO_GRAPH_CLIENT: &str = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";

/// Writes the embedded demo tenants into `<database>.tenants/` (or
/// `./tenantatlas-demo-tenants/` on PostgreSQL) unless they are there, and
/// answers the contoso and fabrikam folders.
fn demo_folders(e: &Engine) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let base = match e.database_file() {
        Some(db) => {
            let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            name.push(".tenants");
            db.with_file_name(name)
        }
        None => std::path::PathBuf::from("tenantatlas-demo-tenants"),
    };
    let base =
        std::path::absolute(&base).map_err(|x| CliError::Failed(format!("cannot resolve {}: {x}", base.display())))?;
    let mut out = Vec::new();
    for name in ["contoso", "fabrikam"] {
        let dir = base.join(name);
        if !dir.join("tenant.json").exists() {
            tenantatlas_providers::extract_demo_tenant(name, &dir)
                .map_err(|x| CliError::Failed(format!("cannot write the demo tenant {}: {x}", dir.display())))?;
        }
        out.push(dir);
    }
    let fabrikam = out.pop().unwrap_or_default();
    let contoso = out.pop().unwrap_or_default();
    Ok((contoso, fabrikam))
}

/// The demo's local Graph on a free loopback port, serving `folder` as
/// [`DEMO_GRAPH_TENANT`] and throttling one request in twenty with
/// `Retry-After: 0.5`, so Graph mode shows its throttling.
async fn start_demo_graph(folder: &std::path::Path, secret: &str) -> Result<tenantatlas_mockgraph::MockGraph> {
    let cfg = tenantatlas_mockgraph::MockConfig {
        tenants: vec![(DEMO_GRAPH_TENANT.to_owned(), folder.to_path_buf())],
        throttle: 0.05,
        retry_after: "0.5".to_owned(),
        client_secret: Some(secret.to_owned()),
        ..tenantatlas_mockgraph::MockConfig::default()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    tenantatlas_mockgraph::start(cfg, addr)
        .await
        .map_err(|x| CliError::Failed(format!("cannot start the demo's local Graph: {x}")))
}

/// Finished runs of every outcome, one reconciled.
async fn seed_demo_runs(e: &Engine, tenants: &[Tenant], operator: &User) -> Result<()> {
    let who = Initiator::User(operator.id);
    let synth = |v: serde_json::Value| tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(&v));
    let t0 = tenants[0].id;
    let t1 = tenants[1].id;
    // executed by the demo's workers as soon as it starts
    e.start(
        who,
        t0,
        OperationType::Synthetic,
        synth(json!({"units": 5, "unit_ms": 20, "key": "demo-ok"}))?,
    )
    .await?;
    e.start(
        who,
        t1,
        OperationType::Synthetic,
        synth(json!({"units": 6, "unit_ms": 20, "fail_every": 3, "key": "demo-partial"}))?,
    )
    .await?;
    e.start(
        who,
        t0,
        OperationType::Synthetic,
        synth(json!({"units": 3, "unit_ms": 20, "fail_every": 1, "key": "demo-failed"}))?,
    )
    .await?;
    // cancelled while queued (the demo's workers start after the seeding)
    let c = e
        .start(
            who,
            t1,
            OperationType::Synthetic,
            synth(json!({"units": 4, "key": "demo-cancelled"}))?,
        )
        .await?;
    e.cancel(who, c.run.id).await?;
    // blocked by a precondition
    let b = e
        .start(
            who,
            t0,
            OperationType::Synthetic,
            synth(json!({"units": 1, "key": "demo-blocked"}))?,
        )
        .await?;
    e.block(b.run.id, None, "the tenant's provider connection is not configured")
        .await?;
    // reconciled: claimed by a worker that vanished, then swept
    let r = e
        .start(
            who,
            t1,
            OperationType::Synthetic,
            synth(json!({"units": 10, "key": "demo-reconciled"}))?,
        )
        .await?;
    // Its node vanished on its last attempt (the first two were
    // throttled), so the sweep fails it rather than trying again.
    let attempts = tenantatlas_ops::synthetic::SPEC.max_attempts;
    for attempt in 1..=attempts {
        e.claim(r.run.id, "vanished-node/1", Duration::from_millis(1)).await?;
        if attempt < attempts {
            let throttled = Failure::new(ReasonCode::ProviderThrottled, "429 Too Many Requests");
            e.requeue(r.run.id, attempt, e.now(), Some(throttled), RequeueCause::Retry)
                .await?;
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.reconcile_sweep(false).await?;
    Ok(())
}

async fn reconcile(engine: &Engine, dry_run: bool, out: Json) -> Result<()> {
    let report = engine.reconcile_sweep(dry_run).await?;
    if out.json {
        return output::json(&report);
    }
    let (verb, again) = if dry_run {
        ("would reconcile", "would resume")
    } else {
        ("reconciled", "resumed")
    };
    println!(
        "{verb} {} run(s), {again} {} on their next attempt{}",
        report.reconciled.len(),
        report.resumed.len(),
        if report.skipped > 0 {
            format!(", {} moved on meanwhile", report.skipped)
        } else {
            String::new()
        }
    );
    for r in &report.reconciled {
        println!(
            "  {}  {}  was {} -> {}",
            r.run_id,
            r.op_type.as_str(),
            r.previous_status.as_str(),
            r.outcome.as_str()
        );
    }
    for r in &report.resumed {
        println!(
            "  {}  {}  attempt {} lost by {} -> queued for attempt {}",
            r.run_id,
            r.op_type.as_str(),
            r.lost_attempt,
            r.lease_owner.as_deref().unwrap_or("a vanished worker"),
            r.lost_attempt + 1
        );
    }
    Ok(())
}

async fn schedule(e: &Engine, c: &ScheduleCmd, out: Json) -> Result<()> {
    match c {
        ScheduleCmd::Add {
            name,
            cron,
            op_type,
            tenant,
            workspace,
            params,
        } => {
            let cron = CronSpec::parse("--cron", cron)?;
            let op = e.executable_type("--type", op_type)?;
            let params = e.parse_params(op, RawParams::Pairs(&parse_pairs(params)?))?;
            let tenant = match tenant {
                Some(t) => Some(resolve_tenant(e, t, workspace.as_deref()).await?.id),
                None => None,
            };
            let s = e.put_schedule(name, &cron, tenant, op, params, Actor::Cli).await?;
            if out.json {
                output::json(&schedule_json(&s))
            } else {
                println!(
                    "Schedule {:?}: {} ({}), next at {}",
                    s.name,
                    s.op_type.as_str(),
                    s.cron,
                    s.next_fire_at
                );
                Ok(())
            }
        }
        ScheduleCmd::Remove { schedule } => {
            let s = e
                .remove_schedule(None, schedule)
                .await
                .map_err(|x| named(x, "schedule", schedule))?;
            if out.json {
                output::json(&json!({ "removed": schedule_json(&s) }))
            } else {
                println!("Removed schedule {:?} ({}); the runs it started stay", s.name, s.id);
                Ok(())
            }
        }
        ScheduleCmd::List {} => {
            let all = e.list_schedules().await?;
            if out.json {
                output::json(&json!({ "schedules": all.iter().map(schedule_json).collect::<Vec<_>>() }))
            } else {
                for s in all {
                    println!(
                        "{}  {:<20}  {:<24}  next {}",
                        s.name,
                        s.cron,
                        s.op_type.as_str(),
                        s.next_fire_at
                    );
                }
                Ok(())
            }
        }
    }
}

/// The workspace and user a membership command names.
async fn workspace_and_user(
    e: &Engine,
    workspace: &str,
    email: &str,
) -> Result<(tenantatlas_domain::directory::Workspace, User)> {
    let ws = e
        .resolve_workspace(workspace)
        .await
        .map_err(|x| named(x, "--workspace", workspace))?;
    let user = e.resolve_user(email).await.map_err(|x| named(x, "user", email))?;
    Ok((ws, user))
}

/// What a member is entitled to, in words.
fn scope_text(scope: &TenantScope) -> String {
    match scope {
        TenantScope::All => "every tenant".to_owned(),
        TenantScope::Only(ts) => format!("{} tenant(s)", ts.len()),
    }
}

/// A membership change for someone who is no member: bad input.
fn not_a_member(e: EngineError, email: &str, workspace: &str) -> CliError {
    match e {
        EngineError::NotFound(_) => CliError::Usage(format!("user: {email:?} is not a member of {workspace:?}")),
        e => e.into(),
    }
}

/// Resolution of a name the user typed: not found is bad input.
fn named(e: EngineError, what: &str, key: &str) -> CliError {
    match e {
        EngineError::NotFound(_) => CliError::Usage(format!("{what}: nothing matches {key:?}")),
        e => e.into(),
    }
}

async fn resolve_tenant(e: &Engine, key: &str, workspace: Option<&str>) -> Result<Tenant> {
    let ws = match workspace {
        Some(w) => Some(e.resolve_workspace(w).await.map_err(|x| named(x, "workspace", w))?.id),
        None => None,
    };
    e.resolve_tenant(key, ws).await.map_err(|x| named(x, "tenant", key))
}

async fn resolve_as(e: &Engine, as_user: Option<&str>) -> Result<Option<User>> {
    match as_user {
        Some(key) => Ok(Some(e.resolve_user(key).await.map_err(|x| named(x, "--as", key))?)),
        None => Ok(None),
    }
}

fn parse_run_id(s: &str) -> Result<RunId> {
    s.trim()
        .parse()
        .map_err(|_| CliError::Usage("run: must be a run id (a UUID)".into()))
}

async fn workspace(e: &Engine, c: &WorkspaceCmd, out: Json) -> Result<()> {
    match c {
        WorkspaceCmd::Create { name } => {
            let name = WorkspaceName::parse("name", name)?;
            let ws = e.create_workspace(&name, Actor::Cli).await?;
            if out.json {
                output::json(&json!({ "id": ws.id, "name": ws.name }))
            } else {
                println!("Created workspace {:?} ({})", ws.name, ws.id);
                Ok(())
            }
        }
        WorkspaceCmd::List {} => {
            let all = e.list_workspaces().await?;
            if out.json {
                let items: Vec<_> = all.iter().map(|w| json!({ "id": w.id, "name": w.name })).collect();
                output::json(&json!({ "workspaces": items }))
            } else {
                for w in all {
                    println!("{}  {}", w.id, w.name);
                }
                Ok(())
            }
        }
    }
}

/// A tenant as `tenant add/list/show --json` print it: its app credentials
/// appear as the client id and whether a secret is stored, never the secret.
fn tenant_json(t: &Tenant, credentials: Option<&CredentialStatus>) -> serde_json::Value {
    json!({
        "id": t.id,
        "workspace_id": t.workspace_id,
        "name": t.name,
        "provider": t.provider,
        "client_id": credentials.map(|c| c.client_id.as_str()),
        "has_secret": credentials.is_some(),
    })
}

fn tenant_line(t: &Tenant, credentials: Option<&CredentialStatus>) -> String {
    let app = credentials.map_or_else(String::new, |c| {
        format!("  app {} (secret stored, set {})", c.client_id, c.updated_at)
    });
    format!(
        "{}  {}  {}{app}",
        t.id,
        t.name,
        t.provider.as_deref().unwrap_or_default()
    )
}

/// `--client-secret` or `--secret` was given: refused before anything else
/// happens, without echoing it.
fn refuse_argv_secret(a: &ArgvSecret) -> Result<()> {
    if a.client_secret.is_some() {
        return Err(CliError::Usage(
            "--client-secret: secrets are read from standard input, never from the command line \
             (where other users and the shell history see them): pipe the client secret in, \
             e.g. `printf '%s\\n' \"$SECRET\" | tenantatlas tenant ...`"
                .into(),
        ));
    }
    Ok(())
}

/// `directory:PATH` with PATH made absolute (the tenant is used from other
/// working directories later) once the folder loads as a tenant folder; a
/// malformed file is refused with the loader's message, which names it.
fn directory_provider(raw: &str) -> Result<ProviderSpec> {
    let path = std::path::absolute(raw)
        .map_err(|e| CliError::Usage(format!("--provider: cannot resolve the path {raw:?}: {e}")))?;
    tenantatlas_providers::fixture::TenantData::load(&path)
        .map_err(|e| CliError::Usage(format!("--provider: not a usable tenant folder: {e}")))?;
    let text = path
        .to_str()
        .ok_or_else(|| CliError::Usage("--provider: the folder's path must be valid UTF-8".into()))?;
    Ok(ProviderSpec::parse("--provider", &format!("directory:{text}"))?)
}

/// The client secret, from standard input: one line, surrounding
/// whitespace removed (a prompt without echo on a terminal).
fn read_client_secret() -> Result<ClientSecret> {
    use std::io::Read as _;
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password("Client secret: ")
                .map_err(|e| CliError::Failed(format!("cannot read the client secret: {e}")))?,
        )
    } else {
        // room for any secret up front, so that growing the buffer leaves
        // no copy behind in freed memory
        let mut line = Zeroizing::new(String::with_capacity(8 * 1024));
        stdin
            .lock()
            .take(8 * 1024)
            .read_line(&mut line)
            .map_err(|e| CliError::Failed(format!("cannot read the client secret from standard input: {e}")))?;
        line
    };
    if line.trim().is_empty() {
        return Err(CliError::Usage(
            "client secret: nothing on standard input: pipe the app's client secret in \
             (it is never taken from the command line)"
                .into(),
        ));
    }
    Ok(ClientSecret::parse("client secret", &line)?)
}

/// Refuses app credentials for a tenant not reached through Graph before
/// the secret is asked for.
fn graph_tenant(t: &Tenant) -> Result<()> {
    match t.provider.as_deref().map(|p| ProviderSpec::parse("provider", p)) {
        Some(Ok(ProviderSpec::Graph(_))) => Ok(()),
        _ => Err(CliError::Usage(format!(
            "tenant: {:?} is not connected through Microsoft Graph (provider {}): only a graph:TENANT tenant has app credentials",
            t.name,
            t.provider.as_deref().unwrap_or("none")
        ))),
    }
}

async fn tenant(e: &Engine, c: &TenantCmd, out: Json) -> Result<()> {
    match c {
        TenantCmd::Add {
            workspace,
            name,
            provider,
            client_id,
            argv_secret,
        } => {
            refuse_argv_secret(argv_secret)?;
            let name = TenantName::parse("name", name)?;
            let provider = match provider
                .as_deref()
                .map(|p| ProviderSpec::parse("--provider", p))
                .transpose()?
            {
                Some(ProviderSpec::Directory(path)) => Some(directory_provider(&path)?),
                p => p,
            };
            let graph = matches!(provider, Some(ProviderSpec::Graph(_)));
            match (graph, client_id) {
                (true, None) => {
                    return Err(CliError::Usage(
                        "--client-id: a graph:TENANT provider needs --client-id APP_ID (the app registration's \
                         application id; its client secret is read from standard input)"
                            .into(),
                    ));
                }
                (false, Some(_)) => {
                    return Err(CliError::Usage(
                        "--client-id: only a graph:TENANT provider signs in with app credentials".into(),
                    ));
                }
                (true, Some(id)) => {
                    ClientId::parse("--client-id", id)?;
                }
                (false, None) => {}
            }
            let ws = e
                .resolve_workspace(workspace)
                .await
                .map_err(|x| named(x, "--workspace", workspace))?;
            let t = match (&provider, client_id) {
                (Some(p @ ProviderSpec::Graph(_)), Some(id)) => {
                    let secret = read_client_secret()?;
                    e.add_tenant_with_credentials(ws.id, &name, p, id, &secret, Actor::Cli)
                        .await?
                }
                _ => e.add_tenant(ws.id, &name, provider.as_ref(), Actor::Cli).await?,
            };
            let status = e.credential_status(t.id).await?;
            if out.json {
                output::json(&tenant_json(&t, status.as_ref()))
            } else {
                let app = status
                    .as_ref()
                    .map_or_else(String::new, |c| format!(" with app {} (secret sealed)", c.client_id));
                println!("Added tenant {:?} ({}) to workspace {:?}{app}", t.name, t.id, ws.name);
                Ok(())
            }
        }
        TenantCmd::List { workspace } => {
            let ws = e
                .resolve_workspace(workspace)
                .await
                .map_err(|x| named(x, "--workspace", workspace))?;
            let all = e.list_tenants(ws.id).await?;
            let creds: HashMap<TenantId, CredentialStatus> = e
                .credential_statuses(ws.id)
                .await?
                .into_iter()
                .map(|c| (c.tenant_id, c))
                .collect();
            if out.json {
                let items: Vec<_> = all.iter().map(|t| tenant_json(t, creds.get(&t.id))).collect();
                output::json(&json!({ "tenants": items }))
            } else {
                for t in &all {
                    println!("{}", tenant_line(t, creds.get(&t.id)));
                }
                Ok(())
            }
        }
        TenantCmd::Show { tenant, workspace } => {
            let t = resolve_tenant(e, tenant, workspace.as_deref()).await?;
            let status = e.credential_status(t.id).await?;
            if out.json {
                output::json(&tenant_json(&t, status.as_ref()))
            } else {
                println!("{}", tenant_line(&t, status.as_ref()));
                Ok(())
            }
        }
        TenantCmd::Verify {
            tenant,
            workspace,
            timeout,
        } => {
            let t = resolve_tenant(e, tenant, workspace.as_deref()).await?;
            verify_tenant(e, &t, Duration::from_secs((*timeout).max(1)), out).await
        }
        TenantCmd::Credentials(CredentialsCmd::Set {
            tenant,
            workspace,
            client_id,
            argv_secret,
        }) => {
            refuse_argv_secret(argv_secret)?;
            ClientId::parse("--client-id", client_id)?;
            let t = resolve_tenant(e, tenant, workspace.as_deref()).await?;
            graph_tenant(&t)?;
            let secret = read_client_secret()?;
            let t = e.set_tenant_credentials(None, t.id, client_id, &secret).await?;
            let status = e.credential_status(t.id).await?;
            if out.json {
                output::json(&tenant_json(&t, status.as_ref()))
            } else {
                println!(
                    "Set the app credentials of tenant {:?} ({}): client id {}, secret sealed",
                    t.name,
                    t.id,
                    status.as_ref().map_or(client_id.as_str(), |c| c.client_id.as_str())
                );
                Ok(())
            }
        }
    }
}

/// `tenant verify`: starts the check (joining one already active), executes
/// it with a worker of its own unless another worker is quicker, and prints
/// the answer read back from the run's units.
async fn verify_tenant(e: &Engine, t: &Tenant, timeout: Duration, out: Json) -> Result<()> {
    let op = OperationType::ProviderVerify;
    let params = e.parse_params(op, RawParams::Json(&json!({})))?;
    let started = e.start(Initiator::System, t.id, op, params).await?;
    let id = started.run.id;
    let stop = tokio_util::sync::CancellationToken::new();
    let registry = tenantatlas_engine::worker::Registry::new().with(
        tenantatlas_ops::provider_verify::ProviderVerify::new(tenantatlas_ops::connect::Connector::from_env()),
    );
    let worker = tenantatlas_engine::worker::Worker::new(
        e.clone(),
        registry,
        WorkerConfig {
            node: format!("verify-{}", uuid::Uuid::now_v7().simple()),
            concurrency: 1,
            poll: Duration::from_millis(200),
            ..WorkerConfig::default()
        },
    );
    let task = tokio::spawn(worker.run(stop.clone()));
    let deadline = std::time::Instant::now() + timeout;
    let run = loop {
        let run = e.get_run_for(Viewer::Everything, id).await?;
        if run.state.status() == RunStatus::Completed {
            break Some(run);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    let _ = task.await;
    let Some(run) = run else {
        return Err(CliError::Failed(format!(
            "the connection check {id} did not finish within {}s; see tenantatlas runs show {id}",
            timeout.as_secs()
        )));
    };
    // this run's answer, whatever check of the tenant came after it
    let units = e.unit_ledger(id, 1_000).await?;
    let kind = t
        .provider
        .as_deref()
        .and_then(|p| p.split_once(':'))
        .map_or("none", |(k, _)| k);
    let report = tenantatlas_domain::connection::report(kind, &units, run.failures.first());
    if out.json {
        output::json(&serde_json::to_value(&report).map_err(|x| CliError::Failed(x.to_string()))?)?;
    } else {
        println!(
            "Connection check of {} ({}): {}",
            t.name,
            report.provider,
            if report.ok { "ok" } else { "FAILED" }
        );
        for c in &report.checks {
            let code = c.reason_code.as_deref().map(|r| format!(" [{r}]")).unwrap_or_default();
            let mark = match (c.ok, &c.reason_code) {
                (true, _) => "ok",
                (false, Some(_)) => "FAIL",
                (false, None) => "--",
            };
            println!("  {mark:<4} {:<56} {}{code}", c.name, c.message);
        }
        if !report.missing_permissions.is_empty() {
            println!(
                "Missing application permissions: {} — grant them with admin consent in the tenant (docs/providers.md).",
                report.missing_permissions.join(", ")
            );
        }
        println!("Run: {id}");
    }
    if report.ok {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "the connection check failed: {}",
            report
                .checks
                .iter()
                .find(|c| !c.ok)
                .map_or("no check ran".to_owned(), |c| format!("{}: {}", c.name, c.message))
        )))
    }
}

fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::Failed(format!("cannot read the password: {e}")));
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Failed(format!("cannot read the password from standard input: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

async fn user(e: &Engine, c: &UserCmd, out: Json) -> Result<()> {
    match c {
        UserCmd::Add {
            email,
            platform_operator,
        } => {
            let email = Email::parse("email", email)?;
            let password = Password::parse("password", &read_password()?)?;
            let u = e.add_user(&email, &password, *platform_operator, Actor::Cli).await?;
            if out.json {
                output::json(&json!({ "id": u.id, "email": u.email, "platform_operator": u.platform_operator }))
            } else {
                let plane = if u.platform_operator {
                    " (platform operator)"
                } else {
                    ""
                };
                println!("Added user {} ({}){plane}", u.email, u.id);
                Ok(())
            }
        }
        UserCmd::List {} => {
            let all = e.users().await?;
            if out.json {
                output::json(&json!({ "users": all.iter().map(user_json).collect::<Vec<_>>() }))
            } else {
                for u in &all {
                    let mut notes = Vec::new();
                    if u.platform_operator {
                        notes.push("platform operator".to_owned());
                    }
                    if let Some(at) = u.disabled_at {
                        notes.push(format!("disabled {at}"));
                    }
                    println!("{}  {}  {}", u.id, u.email, notes.join(", "));
                }
                Ok(())
            }
        }
        UserCmd::Disable { email } => {
            let u = e.resolve_user(email).await.map_err(|x| named(x, "user", email))?;
            e.disable_user(&u, Actor::Cli).await?;
            let u = e.resolve_user(email).await?;
            if out.json {
                output::json(&user_json(&u))
            } else {
                println!("Disabled {}: their sessions and API tokens no longer work", u.email);
                Ok(())
            }
        }
        UserCmd::Passwd { email } => {
            let u = e.resolve_user(email).await.map_err(|x| named(x, "user", email))?;
            let password = Password::parse("password", &read_password()?)?;
            e.change_password(&u, &password, Actor::Cli).await?;
            if out.json {
                output::json(&user_json(&u))
            } else {
                println!("Set the password of {}; their sessions ended", u.email);
                Ok(())
            }
        }
    }
}

async fn member(e: &Engine, c: &MemberCmd, out: Json) -> Result<()> {
    match c {
        MemberCmd::Add {
            workspace,
            email,
            role,
            tenants,
        } => {
            let role = Role::parse("--role", role)?;
            let (ws, user) = workspace_and_user(e, workspace, email).await?;
            let tenants = if tenants.is_empty() {
                None
            } else {
                let mut found = Vec::new();
                for t in tenants {
                    found.push(
                        e.resolve_tenant(t, Some(ws.id))
                            .await
                            .map_err(|x| named(x, "--tenant", t))?,
                    );
                }
                Some(found)
            };
            let m = e.put_member(&ws, &user, role, tenants, Actor::Cli).await?;
            let scope = match &m.tenants {
                TenantScope::All => serde_json::Value::Null,
                TenantScope::Only(ts) => json!(ts),
            };
            if out.json {
                output::json(
                    &json!({ "workspace_id": m.workspace_id, "user_id": m.user_id, "role": m.role, "tenants": scope }),
                )
            } else {
                let which = scope_text(&m.tenants);
                println!("{} is {} of {:?}, entitled to {which}", user.email, m.role, ws.name);
                Ok(())
            }
        }
        MemberCmd::List { workspace } => {
            let ws = e
                .resolve_workspace(workspace)
                .await
                .map_err(|x| named(x, "--workspace", workspace))?;
            let all = e.members(None, ws.id).await?;
            if out.json {
                output::json(&json!({ "members": all.iter().map(member_json).collect::<Vec<_>>() }))
            } else {
                for m in &all {
                    let which = scope_text(&m.membership.tenants);
                    println!("{}  {:<9}  {which}", m.email, m.membership.role);
                }
                Ok(())
            }
        }
        MemberCmd::Role { workspace, email, role } => {
            let role = Role::parse("--role", role)?;
            let (ws, user) = workspace_and_user(e, workspace, email).await?;
            let m = e
                .change_role(None, ws.id, user.id, role)
                .await
                .map_err(|x| not_a_member(x, email, &ws.name))?;
            if out.json {
                output::json(&json!({ "workspace_id": m.workspace_id, "user_id": m.user_id, "role": m.role }))
            } else {
                println!("{} is now {} of {:?}", user.email, m.role, ws.name);
                Ok(())
            }
        }
        MemberCmd::Remove { workspace, email } => {
            let (ws, user) = workspace_and_user(e, workspace, email).await?;
            e.remove_member(None, ws.id, user.id)
                .await
                .map_err(|x| not_a_member(x, email, &ws.name))?;
            if out.json {
                output::json(&json!({ "workspace_id": ws.id, "user_id": user.id, "removed": true }))
            } else {
                println!("{} is no longer a member of {:?}", user.email, ws.name);
                Ok(())
            }
        }
    }
}

fn parse_pairs(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| CliError::Usage(format!("--param: expected KEY=VALUE, got {p:?}")))
        })
        .collect()
}

async fn run_cmd(e: &Engine, c: &RunCmd, out: Json, public_url: Option<&str>) -> Result<u8> {
    match c {
        RunCmd::Start {
            op_type,
            tenant,
            workspace,
            params,
            as_user,
            follow,
        } => {
            let op = e.executable_type("TYPE", op_type)?;
            let params = e.parse_params(op, RawParams::Pairs(&parse_pairs(params)?))?;
            let who = resolve_as(e, as_user.as_deref()).await?;
            let tenant = resolve_tenant(e, tenant, workspace.as_deref()).await?;
            let initiator = who.as_ref().map_or(Initiator::System, |u| Initiator::User(u.id));
            let started = e
                .start(initiator, tenant.id, op, params)
                .await
                .map_err(|x| CliError::engine(x, who.is_some()))?;
            let label = op.label();
            if !out.json {
                if started.joined {
                    println!(
                        "{label} is already queued or running on {:?}: joined run {}",
                        tenant.name, started.run.id
                    );
                } else {
                    println!("{label} queued on {:?}: run {}", tenant.name, started.run.id);
                }
                let path = tenantatlas_domain::notify::run_view_url(started.run.id);
                println!("View run: {}{path}", public_url.unwrap_or_default());
            }
            if !follow {
                if out.json {
                    output::json(&json!({ "run": e.view(&started.run), "joined": started.joined }))?;
                }
                return Ok(0);
            }
            let show = !out.json && std::io::stderr().is_terminal();
            let run = crate::follow::follow(e, started.run.id, show).await?;
            let outcome = run.state.outcome().unwrap_or(Outcome::Failed);
            if out.json {
                output::json(&json!({ "run": e.view(&run), "joined": started.joined }))?;
            } else {
                let view = e.view(&run);
                println!("{label} {} ({})", view.word(), output::progress(&view.progress));
                if let Some(code) = run.reason_code {
                    println!("Reason: {} — {}", code.as_str(), code.info().message);
                    println!("Next step: {}", code.info().next_step);
                }
            }
            Ok(crate::follow::exit_code(outcome))
        }
        RunCmd::Cancel { run, as_user } => {
            let id = parse_run_id(run)?;
            let who = resolve_as(e, as_user.as_deref()).await?;
            let initiator = who.as_ref().map_or(Initiator::System, |u| Initiator::User(u.id));
            let outcome = e
                .cancel(initiator, id)
                .await
                .map_err(|x| CliError::engine(x, who.is_some()))?;
            let (run, text) = match outcome {
                CancelOutcome::Cancelled(r) => (r, "Cancelled run".to_owned()),
                CancelOutcome::Requested(r) => (
                    r,
                    "Cancel requested; the worker stops at its next heartbeat: run".to_owned(),
                ),
                CancelOutcome::AlreadyCompleted(r) => (r, "Already completed, nothing to cancel: run".to_owned()),
            };
            if out.json {
                output::json(&e.view(&run))?;
            } else {
                println!("{text} {}", run.id);
            }
            Ok(0)
        }
    }
}

async fn tenant_names(e: &Engine, ids: impl Iterator<Item = TenantId>) -> Result<HashMap<TenantId, String>> {
    let mut names = HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id)
            && let Some(t) = e.get_tenant(id).await?
        {
            slot.insert(t.name);
        }
    }
    Ok(names)
}

async fn runs(e: &Engine, c: &RunsCmd, out: Json, public_url: Option<&str>) -> Result<()> {
    match c {
        RunsCmd::List(a) => list(e, a, out).await,
        RunsCmd::Show { run } => {
            let id = parse_run_id(run)?;
            let detail = e.run_detail(Viewer::Everything, id).await.map_err(|x| match x {
                EngineError::NotFound(_) => CliError::Failed(format!("run {id} not found")),
                x => x.into(),
            })?;
            let view = e.view(&detail.run);
            if out.json {
                let timeline: Vec<_> = detail
                    .events
                    .iter()
                    .map(|ev| json!({ "at": ev.at, "kind": ev.kind, "actor": ev.actor_id, "attempt": ev.attempt, "detail": ev.detail }))
                    .collect();
                let mut doc = serde_json::to_value(&view).map_err(|x| CliError::Failed(x.to_string()))?;
                doc["timeline"] = json!(timeline);
                output::json(&doc)
            } else {
                let mut emails: HashMap<UserId, String> = HashMap::new();
                for u in detail
                    .events
                    .iter()
                    .filter_map(|ev| ev.actor_id)
                    .chain(detail.run.initiator)
                {
                    if let std::collections::hash_map::Entry::Vacant(slot) = emails.entry(u)
                        && let Some(user) = e.find_user(&u.to_string()).await?
                    {
                        slot.insert(user.email);
                    }
                }
                let tenant = match detail.run.tenant_id {
                    Some(t) => e.get_tenant(t).await?.map(|t| t.name),
                    None => None,
                };
                print!(
                    "{}",
                    output::run_detail(&view, tenant.as_deref(), &detail.events, &emails, public_url)
                );
                Ok(())
            }
        }
    }
}

async fn list(e: &Engine, a: &ListArgs, out: Json) -> Result<()> {
    if a.limit == 0 || a.limit > 500 {
        return Err(FieldError::new("--limit", "must be between 1 and 500").into());
    }
    let workspace = match &a.workspace {
        Some(w) => Some(e.resolve_workspace(w).await.map_err(|x| named(x, "--workspace", w))?.id),
        None => None,
    };
    let tenant = match &a.tenant {
        Some(t) => Some(
            e.resolve_tenant(t, workspace)
                .await
                .map_err(|x| named(x, "--tenant", t))?
                .id,
        ),
        None => None,
    };
    let filter = RunFilter {
        workspace,
        tenant,
        op_type: a
            .op_type
            .as_deref()
            .map(|t| OperationType::parse("--type", t))
            .transpose()?,
        status: a
            .status
            .as_deref()
            .map(|s| StatusFilter::parse("--status", s))
            .transpose()?,
        problem: a
            .problem
            .as_deref()
            .map(|p| ProblemClass::parse("--problem", p))
            .transpose()?,
        since: a
            .since
            .as_deref()
            .map(|s| Timestamp::parse_rfc3339("--since", s))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| Timestamp::parse_rfc3339("--until", s))
            .transpose()?,
        parent: None,
    };
    let cursor = a.cursor.as_deref().map(|c| Cursor::decode("--cursor", c)).transpose()?;
    let viewer = match resolve_as(e, a.as_user.as_deref()).await? {
        Some(u) => Viewer::User(u.id),
        None => Viewer::Everything,
    };
    let page = e.list_runs(viewer, filter, a.limit, cursor).await?;
    let views: Vec<_> = page.runs.iter().map(|r| e.view(r)).collect();
    let next = page.next_cursor.map(|c| c.encode());
    if out.json {
        output::json(&json!({ "runs": views, "next_cursor": next }))
    } else {
        let names = tenant_names(e, page.runs.iter().filter_map(|r| r.tenant_id)).await?;
        print!("{}", output::runs_table(&views, &names));
        if let Some(c) = next {
            println!("(more: --cursor {c})");
        }
        Ok(())
    }
}
