//! `tenantatlas-bench hub`: the monitoring hub over a large ledger.
//!
//! 1. Seeds `--runs` runs across `--tenants` tenants of one workspace through
//!    the engine and a real worker process (so every run carries its real
//!    outcome and timeline), a share of them failed, a few thousand left
//!    queued; then `ANALYZE`.
//! 2. Server-side latency of the list (one filter at a time), the run
//!    detail, the tenant dashboard and the workspace overview: requests go
//!    through the real router in this process (`tower::ServiceExt::oneshot`),
//!    timed from request to the last byte of the body; p50/p95 in ms.
//! 3. A `tenantatlas serve` process on the same database: its idle RSS; then
//!    `--sse-clients` live-widget streams over loopback, a run started, and
//!    the time until each stream shows it; the server's RSS with the
//!    streams open.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use serde_json::json;
use tenantatlas_domain::access::Role;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::{RunId, TenantId};
use tenantatlas_domain::names::{Email, Password, WorkspaceName};
use tenantatlas_domain::params::RawParams;
use tenantatlas_engine::{Engine, EngineConfig, Initiator, SystemClock};
use tenantatlas_store::model::Actor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::{Common, Fresh, Workers, child_url, rss_kib, spawn_workers, tenantatlas_bin};

const PASSWORD: &str = "bench password for the hub";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    (v[i] * 100.0).round() / 100.0
}

/// A tiny deterministic generator (no dependency for picking samples).
struct Pick(u64);

impl Pick {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What the seed holds.
pub(crate) struct Size {
    pub runs: usize,
    pub tenants: usize,
}

/// What is measured.
pub(crate) struct Measure {
    pub samples: usize,
    pub rounds: usize,
    pub sse_clients: usize,
    /// Figures to measure (empty: all).
    pub only: Vec<String>,
}

pub(crate) async fn hub(c: &Common, size: Size, m: Measure, keep_schema: Option<&str>) -> Result<serde_json::Value> {
    let Measure {
        samples,
        rounds,
        sse_clients: clients,
        only,
    } = m;
    let (db, reuse) = match keep_schema {
        Some(name) => Fresh::kept(c, name).await?,
        None => (Fresh::new(c).await?, false),
    };
    let store = db.store.clone();
    let engine = Engine::new(
        store.clone(),
        std::sync::Arc::new(SystemClock),
        EngineConfig {
            catalog: tenantatlas_ops::catalog(),
            enable_synthetic: true,
            ..EngineConfig::default()
        },
    );
    let url = child_url(c, &db);
    let (tenants, ids, seed_s) = if reuse {
        let (tenants, ids) = seeded(&url).await?;
        anyhow::ensure!(
            !tenants.is_empty() && !ids.is_empty(),
            "schema {} holds no seeded hub; drop it or pick another name",
            keep_schema.unwrap_or_default()
        );
        (tenants, ids, None)
    } else {
        let seed_started = Instant::now();
        let (tenants, ids) = seed(&engine, &url, size.runs, size.tenants).await?;
        (tenants, ids, Some(seed_started.elapsed().as_secs_f64().round()))
    };
    let total: i64 = count_runs(&url).await?;

    // 2. server-side latency through the router
    let state = tenantatlas_web::AppState::new(engine.clone(), tenantatlas_web::WebConfig::default());
    let app = tenantatlas_web::router(state);
    let cookie = login_in_process(&app).await?;
    let mid = engine.now().minus(Duration::from_secs(60));
    let mut pick = Pick(0x9e37_79b9_7f4a_7c15);
    let mut figures = serde_json::Map::new();
    type Uri = Box<dyn FnMut(&mut Pick) -> String>;
    let t = tenants.clone();
    let t2 = tenants.clone();
    let t3 = tenants.clone();
    let i1 = ids.clone();
    let i2 = ids.clone();
    let cases: Vec<(&str, Uri)> = vec![
        (
            "list_by_tenant",
            Box::new(move |p| format!("/api/v1/runs?tenant={}", t[p.next(t.len())])),
        ),
        ("list_by_type", Box::new(|_| "/api/v1/runs?type=synthetic".into())),
        // a type with no runs in the ledger: nothing to stop at
        (
            "list_by_type_rare",
            Box::new(|_| "/api/v1/runs?type=restore.execute".into()),
        ),
        (
            "list_by_status_failed",
            Box::new(|_| "/api/v1/runs?status=failed".into()),
        ),
        (
            "list_by_status_queued",
            Box::new(|_| "/api/v1/runs?status=queued".into()),
        ),
        (
            "list_by_problem_needs_follow_up",
            Box::new(|_| "/api/v1/runs?problem=needs_follow_up".into()),
        ),
        (
            "list_by_problem_reconciled",
            Box::new(|_| "/api/v1/runs?problem=reconciled".into()),
        ),
        (
            "list_by_status_cancelled",
            Box::new(|_| "/api/v1/runs?status=cancelled".into()),
        ),
        (
            "list_by_problem_active",
            Box::new(|_| "/api/v1/runs?problem=active".into()),
        ),
        (
            "list_since",
            Box::new(move |_| format!("/api/v1/runs?since={}", mid.to_rfc3339())),
        ),
        (
            "list_page_html_by_tenant",
            Box::new(move |p| format!("/admin/operations?tenant={}", t2[p.next(t2.len())])),
        ),
        (
            "detail_api",
            Box::new(move |p| format!("/api/v1/runs/{}", i1[p.next(i1.len())])),
        ),
        (
            "detail_page",
            Box::new(move |p| format!("/admin/operations/{}", i2[p.next(i2.len())])),
        ),
        (
            "tenant_dashboard",
            Box::new(move |p| format!("/admin/tenants/{}", t3[p.next(t3.len())])),
        ),
        ("workspace_overview", Box::new(|_| "/admin".into())),
    ];
    // rounds, interleaved: on a shared machine a burst of noise then lands
    // in one round of every figure rather than in all samples of one
    let known: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    if let Some(bad) = only.iter().find(|o| !known.contains(&o.as_str())) {
        anyhow::bail!("--only: no figure named {bad:?}; the figures are {}", known.join(", "));
    }
    let mut cases: Vec<(&str, Uri)> = cases
        .into_iter()
        .filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n))
        .collect();
    let mut per: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); cases.len()];
    for _ in 0..rounds.max(1) {
        for (i, (_, uri)) in cases.iter_mut().enumerate() {
            let mut ms = Vec::with_capacity(samples);
            for k in 0..samples + 10 {
                let u = uri(&mut pick);
                let began = Instant::now();
                let status = get(&app, &u, &cookie).await?;
                let took = began.elapsed().as_secs_f64() * 1e3;
                anyhow::ensure!(status == 200, "{u} answered {status}");
                if k >= 10 {
                    ms.push(took);
                }
            }
            per[i].0.push(pct(&mut ms, 0.5));
            per[i].1.push(pct(&mut ms, 0.95));
        }
    }
    for ((name, _), (p50s, p95s)) in cases.iter().zip(per) {
        let median = |mut v: Vec<f64>| pct(&mut v, 0.5);
        figures.insert(
            (*name).to_owned(),
            json!({"p50_ms": median(p50s), "p95_ms": median(p95s.clone()), "p95_ms_per_round": p95s}),
        );
    }

    // 3. a real server: idle RSS, then SSE clients
    let sse = if clients > 0 {
        sse(&url, clients, &engine, tenants[0]).await?
    } else {
        serde_json::Value::Null
    };
    drop(db);
    Ok(json!({
        "backend": format!("{:?}", c.backend).to_lowercase(),
        "runs": total,
        "tenants": tenants.len(),
        "seed_seconds": seed_s,
        "samples_per_figure_per_round": samples,
        "rounds": rounds,
        "server_side": figures,
        "serve": sse,
    }))
}

/// Seeds the workspace, its tenants, the owner and the ledger through the
/// engine and a real worker; answers the tenants and every 97th run id.
async fn seed(engine: &Engine, url: &str, runs: usize, tenant_count: usize) -> Result<(Vec<TenantId>, Vec<RunId>)> {
    let ws = engine
        .create_workspace(&WorkspaceName::parse("name", "Hub bench")?, Actor::Cli)
        .await?;
    let mut tenants: Vec<TenantId> = Vec::new();
    for i in 0..tenant_count {
        let name = tenantatlas_domain::names::TenantName::parse("name", &format!("Tenant {i:03}"))?;
        tenants.push(engine.add_tenant(ws.id, &name, None, Actor::Cli).await?.id);
    }
    let owner = engine
        .add_user(
            &Email::parse("email", "owner@bench.test")?,
            &Password::parse("password", PASSWORD)?,
            false,
            Actor::Cli,
        )
        .await?;
    engine.put_member(&ws, &owner, Role::Owner, None, Actor::Cli).await?;
    let mut ids: Vec<RunId> = Vec::new();
    {
        let workers = spawn_workers(url, 1, 512)?;
        let ok = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(&json!({"units": 0})))?;
        let bad =
            tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(&json!({"units": 1, "fail_every": 1})))?;
        let mut made = 0usize;
        while made < runs {
            let n = (runs - made).min(20_000);
            let reqs = (made..made + n)
                .map(|i| {
                    let p = if i % 50 == 0 { bad.clone() } else { ok.clone() };
                    (tenants[i % tenants.len()], OperationType::Synthetic, p)
                })
                .collect();
            let started = engine.start_many(Initiator::System, reqs).await?;
            ids.extend(started.iter().step_by(97).map(|s| s.run.id));
            made += n;
            // keep the queue shallow, as production would
            while queued(url).await? > 200_000 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3_600);
        while queued(url).await? > 0 || crate::active(url).await? {
            anyhow::ensure!(Instant::now() < deadline, "the worker did not drain the seed");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        drop(workers);
    }
    // a few thousand left waiting: active runs for the widget and dashboards
    let waiting = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(&json!({"units": 10})))?;
    let reqs = (0..2_000)
        .map(|i| (tenants[i % tenants.len()], OperationType::Synthetic, waiting.clone()))
        .collect();
    engine.start_many(Initiator::System, reqs).await?;
    analyze(url).await?;
    Ok((tenants, ids))
}

/// The tenants and a sample of run ids of a hub seeded earlier.
async fn seeded(url: &str) -> Result<(Vec<TenantId>, Vec<RunId>)> {
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
    let t: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY name")
        .fetch_all(&mut c)
        .await?;
    let r: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM operation_runs) s WHERE n % 97 = 1",
    )
    .fetch_all(&mut c)
    .await?;
    let parse = |u: uuid::Uuid| u.to_string();
    let tenants = t
        .into_iter()
        .map(|u| parse(u).parse())
        .collect::<Result<Vec<TenantId>, _>>()?;
    let ids = r
        .into_iter()
        .map(|u| parse(u).parse())
        .collect::<Result<Vec<RunId>, _>>()?;
    Ok((tenants, ids))
}

async fn count_runs(url: &str) -> Result<i64> {
    const Q: &str = "SELECT COUNT(*) FROM operation_runs";
    if url.starts_with("sqlite:") {
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)?.read_only(true);
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        Ok(sqlx::query_scalar(Q).fetch_one(&mut c).await?)
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        Ok(sqlx::query_scalar(Q).fetch_one(&mut c).await?)
    }
}

async fn queued(url: &str) -> Result<i64> {
    const Q: &str = "SELECT COUNT(*) FROM operation_runs WHERE active AND status = 'queued'";
    if url.starts_with("sqlite:") {
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)?.read_only(true);
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        Ok(sqlx::query_scalar(Q).fetch_one(&mut c).await?)
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        Ok(sqlx::query_scalar(Q).fetch_one(&mut c).await?)
    }
}

async fn analyze(url: &str) -> Result<()> {
    if url.starts_with("sqlite:") {
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)?;
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        sqlx::query("ANALYZE").execute(&mut c).await?;
    } else {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        sqlx::query("VACUUM ANALYZE operation_runs").execute(&mut c).await?;
    }
    Ok(())
}

fn request(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "bench.test")
        .header("sec-fetch-site", "same-origin")
        .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))))
}

async fn login_in_process(app: &axum::Router) -> Result<String> {
    let form = format!("email=owner%40bench.test&password={}", PASSWORD.replace(' ', "+"));
    let r = app
        .clone()
        .oneshot(
            request("POST", "/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))?,
        )
        .await?;
    let set = r
        .headers()
        .get(header::SET_COOKIE)
        .context("login set no cookie")?
        .to_str()?;
    Ok(set.split(';').next().unwrap_or_default().to_owned())
}

async fn get(app: &axum::Router, uri: &str, cookie: &str) -> Result<u16> {
    let r = app
        .clone()
        .oneshot(request("GET", uri).header(header::COOKIE, cookie).body(Body::empty())?)
        .await?;
    let status = r.status().as_u16();
    let _ = r.into_body().collect().await?.to_bytes();
    Ok(status)
}

/// One HTTP/1.1 exchange over a fresh loopback connection; answers the
/// head and the stream (for reading on).
async fn http(addr: &str, head: String, body: &str) -> Result<(String, tokio::net::TcpStream)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((String::from_utf8_lossy(&buf).into_owned(), s))
}

async fn sse(url: &str, clients: usize, engine: &Engine, tenant: TenantId) -> Result<serde_json::Value> {
    let port = 19_000 + (std::process::id() % 1_000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(tenantatlas_bin()?)
        .args(["serve", "--bind", &addr, "--workers", "8", "--sweep-seconds", "60"])
        .env("TENANTATLAS_DATABASE_URL", url)
        .env("TENANTATLAS_ENABLE_SYNTHETIC", "1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let _server = Workers(vec![child]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = http(
            &addr,
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
            "",
        )
        .await;
        if probe.is_ok_and(|(h, _)| h.starts_with("HTTP/1.1 200")) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // the queued runs of the seed are being worked now; let it settle
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    let form = format!("email=owner%40bench.test&password={}", PASSWORD.replace(' ', "+"));
    let (head, _) = http(
        &addr,
        format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            form.len()
        ),
        &form,
    )
    .await?;
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .context("no session cookie")?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    // open every stream and wait for its first widget
    let mut streams = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (head, s) = http(
            &addr,
            format!(
                "GET /admin/live HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
            ),
            "",
        )
        .await?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "stream refused: {head}");
        streams.push((s, head));
    }
    let with_streams_rss = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    let p = tenantatlas_ops::synthetic::SPEC.parse_params(RawParams::Json(
        &json!({"units": 40, "unit_ms": 100, "key": format!("sse-{}", uuid::Uuid::now_v7().simple())}),
    ))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<f64>(clients);
    let run_id = std::sync::Arc::new(tokio::sync::OnceCell::<String>::new());
    let began = std::sync::Arc::new(tokio::sync::OnceCell::<Instant>::new());
    for (mut s, head) in streams {
        let (tx, run_id, began) = (tx.clone(), run_id.clone(), began.clone());
        tokio::spawn(async move {
            let mut seen = head;
            let mut chunk = vec![0u8; 16_384];
            loop {
                if let (Some(id), Some(t)) = (run_id.get(), began.get())
                    && seen.contains(id.as_str())
                {
                    let _ = tx.send(t.elapsed().as_secs_f64() * 1e3).await;
                    return;
                }
                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => {
                        seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
                        if seen.len() > 200_000 {
                            seen.drain(..seen.len() - 100_000);
                        }
                    }
                    _ => return,
                }
            }
        });
    }
    drop(tx);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = began.set(Instant::now());
    let run = engine
        .start(Initiator::System, tenant, OperationType::Synthetic, p)
        .await?
        .run;
    let _ = run_id.set(run.id.to_string());
    let mut delays = Vec::new();
    while let Ok(Some(ms)) = tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
        delays.push(ms);
    }
    let received = delays.len();
    let (p50, p99, max) = if delays.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        let max = delays.iter().copied().fold(0.0, f64::max);
        (
            pct(&mut delays, 0.5),
            pct(&mut delays, 0.99),
            (max * 100.0).round() / 100.0,
        )
    };
    Ok(json!({
        "idle_rss_mib": idle_rss.round(),
        "sse_clients": clients,
        "sse_clients_updated": received,
        "sse_update_ms_p50": p50,
        "sse_update_ms_p99": p99,
        "sse_update_ms_max": max,
        "rss_mib_with_streams": with_streams_rss.round(),
    }))
}
