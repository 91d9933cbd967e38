//! The hub over HTTP (the real router, real databases): the authorization
//! matrix and route inventory, sessions and their guards, the JSON API's
//! shapes, and one problem class on every surface. Each case runs on
//! SQLite and, when `TENANTATLAS_TEST_POSTGRES_URL` is set, on PostgreSQL.
#![expect(clippy::unwrap_used, reason = "test code")]
#![allow(missing_docs)]

mod admin;
mod edges;
mod flows;
mod matrix;
mod outage;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tenantatlas_domain::access::Role;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::directory::{Actor, User};
use tenantatlas_domain::ids::{RunId, TenantId};
use tenantatlas_domain::names::{Email, Password, TenantName, WorkspaceName};
use tenantatlas_domain::params::RawParams;
use tenantatlas_engine::{Engine, EngineConfig, Initiator, ManualClock};
use tenantatlas_web::{AppState, WebConfig};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery staple";

/// A fresh database: an SQLite file, or a PostgreSQL schema of its own.
pub struct Db {
    pub url: String,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg.take() {
            let _ = std::process::Command::new("psql")
                .args([base.as_str(), "-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
                .output();
        }
    }
}

pub fn databases() -> Vec<Db> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Db {
        url: format!("sqlite://{}/hub.db", dir.path().display()),
        _dir: dir,
        pg: None,
    }];
    if let Ok(base) = std::env::var("TENANTATLAS_TEST_POSTGRES_URL") {
        let schema = format!("hub_{}", uuid::Uuid::now_v7().simple());
        let made = std::process::Command::new("psql")
            .args([base.as_str(), "-qc", &format!("CREATE SCHEMA {schema}")])
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let sep = if base.contains('?') { '&' } else { '?' };
        out.push(Db {
            url: format!("{base}{sep}options=-csearch_path%3D{schema}"),
            _dir: tempfile::tempdir().unwrap(),
            pg: Some((base, schema)),
        });
    } else {
        eprintln!("TENANTATLAS_TEST_POSTGRES_URL is not set: the hub tests run on SQLite only");
    }
    out
}

/// Two workspaces and one user per persona of the matrix.
pub struct World {
    pub engine: Engine,
    pub clock: Arc<ManualClock>,
    pub app: Router,
    /// Workspaces A and B.
    pub ws_a: tenantatlas_domain::ids::WorkspaceId,
    pub ws_b: tenantatlas_domain::ids::WorkspaceId,
    /// Workspace A's tenants: t1 (everyone in A), t2.
    pub t1: TenantId,
    pub t2: TenantId,
    /// Workspace B's tenant.
    pub t3: TenantId,
    /// A run in t1 and one in t3.
    pub r1: RunId,
    pub r3: RunId,
    pub users: Vec<(&'static str, User)>,
}

impl World {
    pub fn user(&self, persona: &str) -> &User {
        &self.users.iter().find(|(p, _)| *p == persona).unwrap().1
    }
}

pub async fn world(db: &Db) -> World {
    let clock = Arc::new(ManualClock::starting_now());
    let engine = Engine::new(
        tenantatlas_store::open(&db.url).await.unwrap(),
        clock.clone(),
        EngineConfig {
            catalog: tenantatlas_ops::catalog(),
            enable_synthetic: true,
            ..EngineConfig::default()
        },
    );
    let e = &engine;
    let wa = e
        .create_workspace(&WorkspaceName::parse("n", "A").unwrap(), Actor::Cli)
        .await
        .unwrap();
    let wb = e
        .create_workspace(&WorkspaceName::parse("n", "B").unwrap(), Actor::Cli)
        .await
        .unwrap();
    let tn = |n: &str| TenantName::parse("n", n).unwrap();
    let t1 = e.add_tenant(wa.id, &tn("T1"), None, Actor::Cli).await.unwrap();
    let t2 = e.add_tenant(wa.id, &tn("T2"), None, Actor::Cli).await.unwrap();
    let t3 = e.add_tenant(wb.id, &tn("T3"), None, Actor::Cli).await.unwrap();
    let pw = Password::parse("p", PASSWORD).unwrap();
    let mut users = Vec::new();
    for persona in [
        "non_member",
        "not_entitled",
        "readonly",
        "operator",
        "owner",
        "platform",
    ] {
        let email = Email::parse("e", &format!("{persona}@example.test")).unwrap();
        let u = e
            .add_user(&email, &pw, persona == "platform", Actor::Cli)
            .await
            .unwrap();
        match persona {
            "non_member" => {
                e.put_member(&wb, &u, Role::Owner, None, Actor::Cli).await.unwrap();
            }
            "not_entitled" => {
                e.put_member(&wa, &u, Role::Owner, Some(vec![t2.clone()]), Actor::Cli)
                    .await
                    .unwrap();
            }
            "readonly" => {
                e.put_member(&wa, &u, Role::Readonly, None, Actor::Cli).await.unwrap();
            }
            "operator" => {
                e.put_member(&wa, &u, Role::Operator, None, Actor::Cli).await.unwrap();
            }
            "owner" => {
                e.put_member(&wa, &u, Role::Owner, None, Actor::Cli).await.unwrap();
            }
            _ => {}
        }
        users.push((persona, u));
    }
    let p = |v: Value| {
        tenantatlas_ops::synthetic::SPEC
            .parse_params(RawParams::Json(&v))
            .unwrap()
    };
    let r1 = e
        .start(
            Initiator::System,
            t1.id,
            OperationType::Synthetic,
            p(json!({"units": 4, "key": "r1"})),
        )
        .await
        .unwrap()
        .run
        .id;
    let r3 = e
        .start(
            Initiator::System,
            t3.id,
            OperationType::Synthetic,
            p(json!({"units": 4, "key": "r3"})),
        )
        .await
        .unwrap()
        .run
        .id;
    let app = tenantatlas_web::router(AppState::new(
        engine.clone(),
        WebConfig {
            throttle: tenantatlas_web::throttle::Policy {
                pair_free: 1_000,
                client_free: 1_000,
                account_free: 1_000,
                ..Default::default()
            },
            ..WebConfig::default()
        },
    ));
    World {
        ws_a: wa.id,
        ws_b: wb.id,
        engine,
        clock,
        app,
        t1: t1.id,
        t2: t2.id,
        t3: t3.id,
        r1,
        r3,
        users,
    }
}

/// A request as a browser on this site sends it.
pub fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    let b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "hub.test")
        .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    if method == "GET" {
        b
    } else {
        b.header("sec-fetch-site", "same-origin")
    }
}

pub async fn send(app: &Router, r: Request<Body>) -> Response<Body> {
    app.clone().oneshot(r).await.unwrap()
}

pub async fn body_text(r: Response<Body>) -> String {
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Signs in through the login form; answers the session cookie.
pub async fn login(app: &Router, email: &str) -> String {
    let form = format!(
        "email={}&password={}",
        email.replace('@', "%40"),
        PASSWORD.replace(' ', "+")
    );
    let r = send(
        app,
        req("POST", "/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), 303, "login of {email}");
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

/// A JSON API call with a session cookie (or none).
pub async fn api(app: &Router, method: &str, uri: &str, cookie: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut b = req(method, uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let r = match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let res = send(app, r).await;
    let status = res.status().as_u16();
    let text = body_text(res).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Asserts that `instance` holds against component `schema` of the
/// OpenAPI document `doc`.
pub fn conforms(doc: &Value, schema: &str, instance: &Value) {
    let root = json!({
        "$ref": format!("#/components/schemas/{schema}"),
        "components": doc["components"].clone(),
    });
    let v = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema}: {errors:?} in {instance}");
}
