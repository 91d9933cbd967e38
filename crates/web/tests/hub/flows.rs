//! Sessions, CSRF, headers, rate limits, tokens, the start toast, errors,
//! and law 6 across every surface.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use serde_json::{Value, json};
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::directory::Actor;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::Outcome;
use tenantatlas_domain::names::Password;
use tenantatlas_domain::params::RawParams;
use tenantatlas_domain::query::RunFilter;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_engine::Initiator;
use tenantatlas_web::{AppState, WebConfig};

use crate::{PASSWORD, api, body_text, databases, login, req, send, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_rotated_bounded_and_ended() {
    for db in databases() {
        let w = world(&db).await;
        let op = w.user("operator").clone();
        // the cookie's attributes
        let form = format!("email=operator%40example.test&password={}", PASSWORD.replace(' ', "+"));
        let r = send(
            &w.app,
            req("POST", "/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await;
        let set = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
            "{set}"
        );
        assert!(
            !set.contains("Secure"),
            "plain HTTP: no Secure flag, or the browser drops the cookie"
        );
        // behind TLS: Secure and the __Host- prefix
        let tls = tenantatlas_web::router(AppState::new(
            w.engine.clone(),
            WebConfig {
                tls: true,
                ..WebConfig::default()
            },
        ));
        let form = format!("email=operator%40example.test&password={}", PASSWORD.replace(' ', "+"));
        let r = send(
            &tls,
            req("POST", "/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await;
        let set = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(set.starts_with("__Host-ta_session=") && set.contains("Secure"), "{set}");
        // a new id at every login
        let a = login(&w.app, &op.email).await;
        let b = login(&w.app, &op.email).await;
        assert_ne!(a, b, "the session id rotates at login");
        assert_eq!(api(&w.app, "GET", "/api/v1/runs", Some(&a), None).await.0, 200);
        // inactivity timeout (30 minutes by default)
        w.clock.advance(Duration::from_secs(31 * 60));
        assert_eq!(
            api(&w.app, "GET", "/api/v1/runs", Some(&a), None).await.0,
            401,
            "idle session ends"
        );
        // absolute timeout: active every 20 minutes, still ends after 12 hours
        let c = login(&w.app, &op.email).await;
        for _ in 0..35 {
            w.clock.advance(Duration::from_secs(20 * 60));
            assert_eq!(api(&w.app, "GET", "/api/v1/runs", Some(&c), None).await.0, 200);
        }
        w.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(
            api(&w.app, "GET", "/api/v1/runs", Some(&c), None).await.0,
            401,
            "absolute timeout"
        );
        // a password change ends every session
        let d = login(&w.app, &op.email).await;
        w.clock.advance(Duration::from_secs(1));
        w.engine
            .change_password(&op, &Password::parse("p", "another long password").unwrap(), Actor::Cli)
            .await
            .unwrap();
        assert_eq!(
            api(&w.app, "GET", "/api/v1/runs", Some(&d), None).await.0,
            401,
            "password change"
        );
        // a disabled user's sessions and tokens end
        let owner = w.user("owner").clone();
        let e = login(&w.app, &owner.email).await;
        let token = w
            .engine
            .create_api_token(&owner, "ci", None, Actor::Cli)
            .await
            .unwrap()
            .token;
        let bearer = |t: &str| {
            req("GET", "/api/v1/runs")
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(send(&w.app, bearer(&token)).await.status(), 200, "the token works");
        w.engine.disable_user(&owner, Actor::Cli).await.unwrap();
        assert_eq!(api(&w.app, "GET", "/api/v1/runs", Some(&e), None).await.0, 401);
        assert_eq!(send(&w.app, bearer(&token)).await.status(), 401);
        // (that only the token's hash is stored is held by the conformance
        // suite: directory::api_tokens_store_only_their_hash)
        // a forged token is 401, never a fall-back to the cookie
        let r = send(
            &w.app,
            req("GET", "/api/v1/runs")
                .header(header::AUTHORIZATION, "Bearer tat_nope")
                .header(header::COOKIE, &b)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_say_nothing_about_accounts_and_are_rate_limited() {
    for db in databases() {
        let w = world(&db).await;
        let config = WebConfig {
            trusted_proxies: vec!["10.9.0.0/16".parse().unwrap()],
            ..WebConfig::default()
        };
        let app = tenantatlas_web::router(AppState::new(w.engine.clone(), config));
        let attempt = |email: &str, password: &str, peer: [u8; 4], forwarded: Option<&str>| {
            let form = format!(
                "email={}&password={}",
                email.replace('@', "%40"),
                password.replace(' ', "+")
            );
            let mut r = req("POST", "/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((peer, 4242))));
            if let Some(f) = forwarded {
                r = r.header("x-forwarded-for", f);
            }
            r.body(Body::from(form)).unwrap()
        };
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let unknown = send(&app, attempt("ghost@example.test", "whatever password", a, None)).await;
        assert_eq!(unknown.status(), 401);
        let unknown = body_text(unknown).await;
        let wrong = send(&app, attempt("operator@example.test", "wrong password!", a, None)).await;
        assert_eq!(wrong.status(), 401);
        assert_eq!(
            body_text(wrong).await,
            unknown,
            "the same answer for unknown accounts and wrong passwords"
        );
        for _ in 0..2 {
            send(&app, attempt("operator@example.test", "wrong password!", a, None)).await;
        }
        let slowed = send(&app, attempt("operator@example.test", PASSWORD, a, None)).await;
        assert_eq!(
            slowed.status(),
            429,
            "three failures slow this client down, even with the right password"
        );
        assert_eq!(slowed.headers()[header::RETRY_AFTER], "1");
        // not a lockout a stranger can cause: the account's owner elsewhere
        // signs in, and so does another account from the guessing address
        let elsewhere = send(&app, attempt("operator@example.test", PASSWORD, b, None)).await;
        assert_eq!(elsewhere.status(), 303, "a stranger's failures do not lock the account");
        let other = send(&app, attempt("owner@example.test", PASSWORD, a, None)).await;
        assert_eq!(other.status(), 303);
        // the delay passes with the clock, and doubles with each failure
        w.clock.advance(std::time::Duration::from_secs(1));
        let wrong = send(&app, attempt("operator@example.test", "wrong password!", a, None)).await;
        assert_eq!(wrong.status(), 401);
        let slowed = send(&app, attempt("operator@example.test", PASSWORD, a, None)).await;
        assert_eq!(slowed.headers()[header::RETRY_AFTER], "2");
        // behind a trusted proxy, the client is the address it forwards
        let proxy = [10, 9, 0, 1];
        for _ in 0..3 {
            let r = send(
                &app,
                attempt("readonly@example.test", "wrong password!", proxy, Some("198.51.100.7")),
            )
            .await;
            assert_eq!(r.status(), 401);
        }
        let same = send(
            &app,
            attempt("readonly@example.test", PASSWORD, proxy, Some("198.51.100.7")),
        )
        .await;
        assert_eq!(same.status(), 429, "the forwarded client is throttled");
        let other_client = send(
            &app,
            attempt("readonly@example.test", PASSWORD, proxy, Some("203.0.113.5")),
        )
        .await;
        assert_eq!(other_client.status(), 303, "not everyone behind the proxy");
    }
}

/// Concurrent wrong guesses are counted before any is verified: at most
/// the free failures are checked, whatever the concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_are_counted_before_they_are_verified() {
    for db in databases() {
        let w = world(&db).await;
        let app = tenantatlas_web::router(AppState::new(w.engine.clone(), WebConfig::default()));
        let guess = || {
            req("POST", "/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                    [10, 0, 0, 1],
                    4242,
                ))))
                .body(Body::from("email=operator%40example.test&password=wrong+password"))
                .unwrap()
        };
        let answers = futures_util::future::join_all((0..100).map(|_| send(&app, guess()))).await;
        let verified = answers.iter().filter(|r| r.status() == 401).count();
        let slowed = answers.iter().filter(|r| r.status() == 429).count();
        assert_eq!(verified + slowed, 100);
        assert!(verified <= 3, "{verified} guesses were verified");
    }
}

/// Password hashing is bounded: beyond the slots and a short wait, a
/// sign-in is answered 429 with `Retry-After` instead of queueing another
/// 19 MiB hash, and other requests keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_sign_ins_is_answered_busy_beyond_the_hashing_slots() {
    let db = databases().remove(0);
    let w = world(&db).await;
    let engine = tenantatlas_engine::Engine::new(
        tenantatlas_store::open(&db.url).await.unwrap(),
        w.clock.clone(),
        tenantatlas_engine::EngineConfig {
            hashing_slots: 1,
            hashing_wait: std::time::Duration::from_millis(1),
            ..tenantatlas_engine::EngineConfig::default()
        },
    );
    let app = tenantatlas_web::router(AppState::new(engine, WebConfig::default()));
    let sign_in = |i: u8| {
        req("POST", "/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [10, 1, 0, i],
                4242,
            ))))
            .body(Body::from(format!(
                "email=user{i}%40example.test&password=some+password"
            )))
            .unwrap()
    };
    let (answers, health) = tokio::join!(
        futures_util::future::join_all((0..24).map(|i| send(&app, sign_in(i)))),
        send(&app, req("GET", "/healthz").body(Body::empty()).unwrap())
    );
    assert_eq!(health.status(), 200, "other requests keep answering");
    let busy: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert!(!busy.is_empty(), "24 hashes at once through one slot");
    assert!(busy.iter().all(|r| r.headers().contains_key(header::RETRY_AFTER)));
    assert!(answers.iter().all(|r| matches!(r.status().as_u16(), 401 | 429)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_need_a_same_site_proof_and_headers_are_set() {
    for db in databases() {
        let w = world(&db).await;
        let cookie = login(&w.app, "operator@example.test").await;
        let count = async || {
            w.engine
                .list_runs(tenantatlas_engine::Viewer::Everything, RunFilter::default(), 500, None)
                .await
                .unwrap()
                .runs
                .len()
        };
        let before = count().await;
        let uri = format!("/api/v1/tenants/{}/runs", w.t1);
        let body = json!({"type": "synthetic", "params": {"key": "forged"}}).to_string();
        let forged = |site: Option<&str>, origin: Option<&str>| {
            let mut b = axum::http::Request::builder()
                .method("POST")
                .uri(&uri)
                .header(header::HOST, "hub.test")
                .header(header::COOKIE, &cookie)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(s) = site {
                b = b.header("sec-fetch-site", s);
            }
            if let Some(o) = origin {
                b = b.header(header::ORIGIN, o);
            }
            b.body(Body::from(body.clone())).unwrap()
        };
        for (site, origin) in [
            (None, None),
            (Some("cross-site"), None),
            (Some("same-site"), None),
            (None, Some("https://evil.test")),
        ] {
            let r = send(&w.app, forged(site, origin)).await;
            assert_eq!(r.status(), 403, "{site:?} {origin:?}");
        }
        assert_eq!(count().await, before, "a refused request created nothing");
        let r = send(&w.app, forged(None, Some("http://hub.test"))).await;
        assert_eq!(r.status(), 202, "same origin is accepted");
        // headers on a page
        let r = send(
            &w.app,
            req("GET", "/admin")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for part in [
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "script-src 'self'",
        ] {
            assert!(csp.contains(part), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(h.contains_key(header::REFERRER_POLICY));
        assert!(
            !h.contains_key(header::STRICT_TRANSPORT_SECURITY),
            "no HSTS over plain HTTP"
        );
        let tls = tenantatlas_web::router(AppState::new(
            w.engine.clone(),
            WebConfig {
                tls: true,
                ..WebConfig::default()
            },
        ));
        let behind_tls = send(&tls, req("GET", "/login").body(Body::empty()).unwrap()).await;
        assert_eq!(
            behind_tls.headers()[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000; includeSubDomains"
        );
        let page = body_text(r).await;
        assert!(!page.contains("<script>"), "no inline script");
        assert!(!page.contains("onclick="), "no inline handlers");
        // the headers hold on answers no handler wrote (a refused request)
        let r = send(&w.app, forged(None, None)).await;
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        // compressed when asked for; the live stream never is
        let gz = |uri: &str| {
            req("GET", uri)
                .header(header::COOKIE, &cookie)
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap()
        };
        let r = send(&w.app, gz("/admin")).await;
        assert_eq!(
            r.headers().get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()),
            Some("gzip")
        );
        let r = send(&w.app, gz("/admin/live")).await;
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert!(
            !r.headers().contains_key(header::CONTENT_ENCODING),
            "SSE is not buffered by compression"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_answer_with_a_toast_and_bad_input_names_the_field() {
    for db in databases() {
        let w = world(&db).await;
        let op = login(&w.app, "operator@example.test").await;
        let ro = login(&w.app, "readonly@example.test").await;
        let uri = format!("/api/v1/tenants/{}/runs", w.t1);
        let start = json!({"type": "synthetic", "params": {"units": 3, "key": "toast"}});
        let (s, first) = api(&w.app, "POST", &uri, Some(&op), Some(start.clone())).await;
        assert_eq!(s, 202, "{first}");
        assert_eq!(first["joined"], false);
        assert_eq!(first["toast"]["kind"], "queued");
        let id = first["run"]["id"].as_str().unwrap();
        assert_eq!(first["toast"]["view_url"], format!("/admin/operations/{id}"));
        let (s, second) = api(&w.app, "POST", &uri, Some(&op), Some(start.clone())).await;
        assert_eq!(s, 200);
        assert_eq!(second["joined"], true);
        assert_eq!(second["toast"]["kind"], "already_queued");
        assert_eq!(second["run"]["id"], first["run"]["id"]);
        let count = async || {
            let (_, list) = api(&w.app, "GET", "/api/v1/runs?limit=500", Some(&op), None).await;
            list["runs"].as_array().unwrap().len()
        };
        let before = count().await;
        // readonly: refused, nothing created
        let ro_start = json!({"type": "synthetic", "params": {"key": "readonly"}});
        let (s, err) = api(&w.app, "POST", &uri, Some(&ro), Some(ro_start)).await;
        assert_eq!(s, 403);
        assert_eq!(err["error"]["code"], "forbidden");
        // a type this build has no handler for: 422 operation.unavailable,
        // for the operator who may start it elsewhere; nothing created
        let (s, err) = api(&w.app, "POST", &uri, Some(&op), Some(json!({"type": "inventory.sync"}))).await;
        assert_eq!(s, 422, "{err}");
        assert_eq!(err["error"]["code"], "operation.unavailable");
        assert_eq!(err["error"]["field"], "type");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("Inventory sync"),
            "{err}"
        );
        assert_eq!(count().await, before, "the refused starts created nothing");
        // bad input names the field
        for (body, field) in [
            (json!({"type": "nope"}), "type"),
            (json!({}), "type"),
            (json!({"type": "synthetic", "params": {"units": -1}}), "params.units"),
            (json!({"type": "synthetic", "extra": 1}), "extra"),
        ] {
            let (s, err) = api(&w.app, "POST", &uri, Some(&op), Some(body.clone())).await;
            assert_eq!(s, 422, "{body} → {err}");
            assert_eq!(err["error"]["field"], field, "{body} → {err}");
        }
        let (s, err) = api(&w.app, "GET", "/api/v1/runs?problem=sad", Some(&op), None).await;
        assert_eq!((s, err["error"]["field"].as_str()), (422, Some("problem")));
        let (s, err) = api(&w.app, "GET", "/api/v1/runs?colour=red", Some(&op), None).await;
        assert_eq!((s, err["error"]["field"].as_str()), (422, Some("colour")));
        // the detail carries decision, timeline and related links
        let (s, d) = api(&w.app, "GET", &format!("/api/v1/runs/{id}"), Some(&op), None).await;
        assert_eq!(s, 200);
        assert_eq!(d["decision"]["problem_class"], "active");
        assert!(
            d["decision"]["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["action"] == "cancel")
        );
        assert!(d["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "created"));
        assert!(d["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "joined"));
        assert!(!d["related"].as_array().unwrap().is_empty());
        // readonly sees it, without the cancel action
        let (_, d) = api(&w.app, "GET", &format!("/api/v1/runs/{id}"), Some(&ro), None).await;
        assert!(d["decision"]["actions"].as_array().unwrap().is_empty(), "{d}");
        // the OpenAPI document lists every API route
        let (_, doc) = api(&w.app, "GET", "/api/v1/openapi.json", Some(&op), None).await;
        for r in tenantatlas_web::api::ROUTES {
            let path = r.path;
            assert!(doc["paths"].get(path).is_some(), "{path} in the OpenAPI document");
            assert!(
                doc["paths"][path].get(r.method).is_some(),
                "{} {path} in the OpenAPI document",
                r.method
            );
        }
        // ... and describes what they take: every list filter, with the
        // catalogs' names
        let params = doc["paths"]["/api/v1/runs"]["get"]["parameters"].as_array().unwrap();
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        let filters: Vec<&str> = tenantatlas_web::api::LIST_PARAMS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, filters);
        let types = &params.iter().find(|p| p["name"] == "type").unwrap()["schema"]["enum"];
        assert_eq!(types.as_array().unwrap().len(), OperationType::ALL.len(), "{types}");
        // ... and what they answer: real answers hold against its schemas
        let conforms = |schema: &str, instance: &Value| crate::conforms(&doc, schema, instance);
        conforms("Started", &first);
        conforms("Started", &second);
        conforms("RunDetail", &d);
        conforms("Error", &err);
        let (_, page) = api(&w.app, "GET", "/api/v1/runs?limit=1", Some(&op), None).await;
        assert!(!page["next_cursor"].is_null(), "a page with a next one: {page}");
        conforms("RunPage", &page);
        let (s, cancelled) = api(&w.app, "POST", &format!("/api/v1/runs/{id}/cancel"), Some(&op), None).await;
        assert_eq!(s, 200, "{cancelled}");
        conforms("Run", &cancelled);
        // the cancelled run ended: its starter has a notification
        let (_, inbox) = api(&w.app, "GET", "/api/v1/notifications", Some(&op), None).await;
        assert!(!inbox["notifications"].as_array().unwrap().is_empty(), "{inbox}");
        conforms("Notifications", &inbox);
        // the schemas are not vacuous: a run missing a field, or with an
        // unknown class, fails them
        let mut broken = cancelled.clone();
        broken.as_object_mut().unwrap().remove("problem_class");
        let root = json!({"$ref": "#/components/schemas/Run", "components": doc["components"].clone()});
        let v = jsonschema::validator_for(&root).unwrap();
        assert!(!v.is_valid(&broken));
        let mut broken = cancelled.clone();
        broken["problem_class"] = json!("fine");
        assert!(!v.is_valid(&broken));
        // the decision's retry: the type again, same parameters, as a start
        let retry = format!("/api/v1/runs/{id}/retry");
        let (s, again) = api(&w.app, "POST", &retry, Some(&ro), None).await;
        assert_eq!(s, 403, "a readonly member may not: {again}");
        let (s, again) = api(&w.app, "POST", &retry, Some(&op), None).await;
        assert_eq!(s, 202, "{again}");
        conforms("Started", &again);
        assert_ne!(again["run"]["id"], cancelled["id"]);
        assert_eq!(again["run"]["type"], "synthetic");
        let (_, started) = api(
            &w.app,
            "GET",
            &format!("/api/v1/runs/{}", again["run"]["id"].as_str().unwrap()),
            Some(&op),
            None,
        )
        .await;
        let (_, first_detail) = api(&w.app, "GET", &format!("/api/v1/runs/{id}"), Some(&op), None).await;
        assert_eq!(started["params"], first_detail["params"], "the same parameters");
        assert_eq!(
            (started["params"]["units"].as_i64(), started["params"]["key"].as_str()),
            (Some(3), Some("toast"))
        );

        // the hub's start form: drawn from the type's parameters; an empty
        // input takes the default; a refused start is a toast naming the field
        let r = send(
            &w.app,
            req("GET", &format!("/admin/tenants/{}", w.t1))
                .header(header::COOKIE, &op)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let page = body_text(r).await;
        for input in [
            r#"name="units" min="0" max="1000000" step="1" value="20""#,
            r#"name="unit_ms" min="0" max="600000" step="1" value="250""#,
            r#"<select name="panic"><option value="">default</option>"#,
        ] {
            assert!(page.contains(input), "{input} in the start form");
        }
        let form_start = async |body: &str| {
            let r = send(
                &w.app,
                req("POST", &format!("/admin/tenants/{}/runs", w.t1))
                    .header(header::COOKIE, &op)
                    .header("hx-request", "true")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await;
            (r.status().as_u16(), body_text(r).await)
        };
        let (s, toast) = form_start("type=synthetic&units=abc&unit_ms=&key=form").await;
        assert_eq!(s, 422, "{toast}");
        assert!(
            toast.contains(r#"class="toast error""#) && toast.contains(r#"data-field="units""#),
            "{toast}"
        );
        assert!(toast.contains("units"), "the message names the field: {toast}");
        let (s, toast) = form_start("type=synthetic&units=2&unit_ms=&fail_every=&key=form").await;
        assert_eq!(s, 200, "empty inputs take their defaults: {toast}");
        assert!(toast.contains(r#"data-kind="queued""#), "{toast}");
    }
}

/// Law 6: one run of each class, read on every surface, the same class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_problem_class_on_every_surface() {
    for db in databases() {
        let w = world(&db).await;
        let e = &w.engine;
        let operator = w.user("operator").clone();
        let who = Initiator::User(operator.id);
        let synth = |key: &str| {
            tenantatlas_ops::synthetic::SPEC
                .parse_params(RawParams::Json(&json!({"units": 2, "key": key})))
                .unwrap()
        };
        let start = async |key: &str| {
            e.start(who, w.t1, OperationType::Synthetic, synth(key))
                .await
                .unwrap()
                .run
        };
        // reconciled: its worker vanished
        let rec = start("rec").await;
        let claimed = e
            .claim(rec.id, "gone/1", Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        w.clock.advance(Duration::from_secs(2));
        e.reconcile(rec.id, &claimed).await.unwrap();
        // active_stale: queued for an hour
        let stale = start("stale").await;
        w.clock.advance(Duration::from_secs(3_600));
        let active = start("active").await;
        let ok = start("ok").await;
        e.claim(ok.id, "w/1", Duration::from_secs(3_600))
            .await
            .unwrap()
            .unwrap();
        e.complete(ok.id, None, Outcome::Succeeded, None, vec![]).await.unwrap();
        let failed = start("failed").await;
        e.claim(failed.id, "w/1", Duration::from_secs(3_600))
            .await
            .unwrap()
            .unwrap();
        e.complete(
            failed.id,
            None,
            Outcome::Failed,
            Some(ReasonCode::ProviderThrottled),
            vec![Failure::from_code(ReasonCode::ProviderThrottled)],
        )
        .await
        .unwrap();
        let cancelled = start("cancelled").await;
        e.cancel(who, cancelled.id).await.unwrap();
        let want: HashMap<RunId, &str> = [
            (rec.id, "reconciled"),
            (stale.id, "active_stale"),
            (active.id, "active"),
            (ok.id, "ok"),
            (failed.id, "needs_follow_up"),
            (cancelled.id, "cancelled"),
        ]
        .into_iter()
        .collect();
        let cookie = login(&w.app, &operator.email).await;
        let platform = login(&w.app, "platform@example.test").await;
        let page = async |uri: &str, c: &str| {
            body_text(
                send(
                    &w.app,
                    req("GET", uri).header(header::COOKIE, c).body(Body::empty()).unwrap(),
                )
                .await,
            )
            .await
        };
        // the class a page shows for a run: the data-class beside its id
        let class_in = |html: &str, id: RunId| -> Option<String> {
            let at = html.find(&format!("data-run=\"{id}\""))?;
            let rest = &html[at..];
            let c = rest.find("data-class=\"")? + 12;
            Some(rest[c..c + rest[c..].find('"')?].to_owned())
        };
        let list_api = api(
            &w.app,
            "GET",
            &format!("/api/v1/runs?tenant={}", w.t1),
            Some(&cookie),
            None,
        )
        .await
        .1;
        let list_page = page(&format!("/admin/operations?tenant={}&limit=100", w.t1), &cookie).await;
        let system_api = api(&w.app, "GET", "/api/v1/system/runs?limit=500", Some(&platform), None)
            .await
            .1;
        let widget = page("/admin/widget", &cookie).await;
        let notes = page("/admin/notifications", &cookie).await;
        for (id, class) in &want {
            let in_list = list_api["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id.to_string())
                .unwrap();
            assert_eq!(in_list["problem_class"], *class, "API list");
            let (_, d) = api(&w.app, "GET", &format!("/api/v1/runs/{id}"), Some(&cookie), None).await;
            assert_eq!(d["problem_class"], *class, "API detail");
            assert_eq!(d["decision"]["problem_class"], *class, "API decision");
            assert_eq!(class_in(&list_page, *id).as_deref(), Some(*class), "operations page");
            let detail = page(&format!("/admin/operations/{id}"), &cookie).await;
            assert!(
                detail.contains(&format!("id=\"decision\" data-class=\"{class}\"")),
                "detail page for {class}"
            );
            let sys = system_api["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id.to_string())
                .unwrap();
            assert_eq!(sys["problem_class"], *class, "system API");
            let sys_page = page(&format!("/system/runs/{id}"), &platform).await;
            assert!(sys_page.contains(&format!("data-class=\"{class}\"")), "system detail");
            // the widget shows active runs only, with their class
            let w_class = class_in(&widget, *id);
            if class.starts_with("active") {
                assert_eq!(w_class.as_deref(), Some(*class), "widget");
            } else {
                assert_eq!(w_class, None, "a {class} run is not on the widget");
            }
            // completed runs the operator started notified them once, with the same class
            if !class.starts_with("active") {
                assert_eq!(class_in(&notes, *id).as_deref(), Some(*class), "notification");
            }
        }
        // the stuck and failures views hold the right runs
        let stuck = api(&w.app, "GET", "/api/v1/system/stuck", Some(&platform), None)
            .await
            .1;
        // (the world's two queued runs have waited as long as `stale`)
        let mut ids: Vec<&str> = stuck["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        let mut want_stuck = vec![stale.id.to_string(), w.r1.to_string(), w.r3.to_string()];
        want_stuck.sort();
        assert_eq!(ids, want_stuck);
        let failures = api(&w.app, "GET", "/api/v1/system/failures", Some(&platform), None)
            .await
            .1;
        let ids: Vec<&str> = failures["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![failed.id.to_string()]);
        // dashboard and overview numbers drill through to lists of as many runs
        let dash = page(&format!("/admin/tenants/{}", w.t1), &cookie).await;
        for class in [
            "active",
            "active_stale",
            "needs_follow_up",
            "reconciled",
            "ok",
            "cancelled",
        ] {
            let link = format!("/admin/operations?tenant={}&#38;problem={class}", w.t1);
            let at = dash.find(&link).unwrap_or_else(|| panic!("dashboard links {class}"));
            let n: u64 = dash[at..]
                .split("<span class=\"n\">")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .and_then(|s| s.trim().parse().ok())
                .unwrap();
            let (_, l) = api(
                &w.app,
                "GET",
                &format!("/api/v1/runs?tenant={}&problem={class}&limit=500", w.t1),
                Some(&cookie),
                None,
            )
            .await;
            assert_eq!(
                n,
                l["runs"].as_array().unwrap().len() as u64,
                "dashboard {class} count drills through"
            );
        }
        // one notification per completed run the operator started, no more
        let (_, n) = api(&w.app, "GET", "/api/v1/notifications", Some(&cookie), None).await;
        let runs: Vec<&Value> = n["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| &x["run_id"])
            .collect();
        assert_eq!(runs.len(), 4, "{n}");
        assert_eq!(n["unread"], 4);
    }
}

/// The live widget stream ends with its session, and carries the start of
/// a run in the caller's scope while the session lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_follow_runs_and_end_with_the_session() {
    use http_body_util::BodyExt;
    for db in databases() {
        let w = world(&db).await;
        let cookie = login(&w.app, "operator@example.test").await;
        let res = send(
            &w.app,
            req("GET", "/admin/live")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = res.into_body();
        let next = async |body: &mut Body| -> Option<String> {
            match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
                Ok(Some(Ok(f))) => f.into_data().ok().map(|d| String::from_utf8_lossy(&d).into_owned()),
                Ok(_) => None,
                Err(_) => Some("(timeout)".into()),
            }
        };
        let first = next(&mut body).await.unwrap();
        assert!(first.contains("event: widget"), "{first}");
        // a run started in scope appears on the stream
        let p = tenantatlas_ops::synthetic::SPEC
            .parse_params(RawParams::Json(&json!({"units": 3, "key": "live"})))
            .unwrap();
        let run = w
            .engine
            .start(Initiator::System, w.t1, OperationType::Synthetic, p)
            .await
            .unwrap()
            .run;
        let mut seen = String::new();
        while !seen.contains(&run.id.to_string()) {
            let chunk = next(&mut body).await.expect("the stream goes on");
            assert_ne!(chunk, "(timeout)", "the new run reached the stream");
            seen.push_str(&chunk);
        }
        // logout: the next wake-up ends the stream
        let out = send(
            &w.app,
            req("POST", "/logout")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(out.status(), 303);
        let p = tenantatlas_ops::synthetic::SPEC
            .parse_params(RawParams::Json(&json!({"units": 3, "key": "after-logout"})))
            .unwrap();
        let later = w
            .engine
            .start(Initiator::System, w.t1, OperationType::Synthetic, p)
            .await
            .unwrap()
            .run;
        loop {
            match next(&mut body).await {
                None => break,
                Some(c) => {
                    assert_ne!(c, "(timeout)", "the stream ended with the session");
                    assert!(!c.contains(&later.id.to_string()), "nothing new is sent after logout");
                }
            }
        }
    }
}

/// A member entitled to some tenants of a workspace does not learn the
/// others exist (not even their names in a filter), and logins take an
/// e-mail address only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_outside_an_entitlement_stay_invisible() {
    for db in databases() {
        let w = world(&db).await;
        let cookie = login(&w.app, "not_entitled@example.test").await;
        for uri in ["/admin/operations", "/admin", "/admin/widget"] {
            let page = body_text(
                send(
                    &w.app,
                    req("GET", uri)
                        .header(header::COOKIE, &cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await,
            )
            .await;
            assert!(
                !page.contains(&w.t1.to_string()),
                "{uri} names a tenant the member is not entitled to"
            );
            assert!(!page.contains(&w.r1.to_string()), "{uri} shows a run of it");
        }
        let ops = body_text(
            send(
                &w.app,
                req("GET", "/admin/operations")
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await,
        )
        .await;
        assert!(ops.contains(&w.t2.to_string()), "the entitled tenant is offered");
        // a user id is not a login name
        let id = w.user("operator").id;
        let form = format!("email={id}&password={}", PASSWORD.replace(' ', "+"));
        let r = send(
            &w.app,
            req("POST", "/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), 401);
    }
}

/// The value of one sample line of a Prometheus text page (0 when absent).
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_this_node_did_and_read_only_active_runs() {
    for db in databases() {
        let w = world(&db).await;
        let e = &w.engine;
        let p = |v: Value| {
            tenantatlas_ops::synthetic::SPEC
                .parse_params(RawParams::Json(&v))
                .unwrap()
        };
        // the world started r1 and r3; a twin of r1 joins it (not a start)
        let joined = e
            .start(
                Initiator::System,
                w.t1,
                OperationType::Synthetic,
                p(json!({"units": 4, "key": "r1"})),
            )
            .await
            .unwrap();
        assert!(joined.joined);
        // r3 fails; r1 is claimed two seconds after it became due
        e.complete(w.r3, None, Outcome::Failed, Some(ReasonCode::InternalError), vec![])
            .await
            .unwrap();
        w.clock.advance(Duration::from_secs(2));
        let claimed = e
            .claim_due("node-a/w", &[OperationType::Synthetic], 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        // a third run is claimed, then its worker vanishes: reconciled
        let r4 = e
            .start(
                Initiator::System,
                w.t2,
                OperationType::Synthetic,
                p(json!({"units": 4, "key": "r4"})),
            )
            .await
            .unwrap()
            .run;
        let seen = e
            .claim_due("node-a/w", &[OperationType::Synthetic], 10, Duration::from_secs(60))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(seen.id, r4.id);
        w.clock.advance(Duration::from_secs(3_600));
        e.reconcile(r4.id, &seen).await.unwrap();

        let platform = crate::login(&w.app, &w.user("platform").email).await;
        let (status, page) = api(&w.app, "GET", "/metrics", Some(&platform), None).await;
        assert_eq!(status, 200);
        let page = page.as_str().unwrap().to_owned();
        let s = |series: &str| sample(&page, series);
        assert_eq!(s("tenantatlas_runs_started_total{type=\"synthetic\"}"), 3.0, "{page}");
        assert_eq!(
            s("tenantatlas_runs_completed_total{type=\"synthetic\",outcome=\"failed\"}"),
            2.0,
            "{page}"
        );
        assert_eq!(
            s("tenantatlas_reconciliations_total{type=\"synthetic\"}"),
            1.0,
            "{page}"
        );
        assert_eq!(
            s("tenantatlas_runs_active{type=\"synthetic\",status=\"running\"}"),
            1.0,
            "r1 is running: {page}"
        );
        assert_eq!(s("tenantatlas_runs_active{type=\"synthetic\",status=\"queued\"}"), 0.0);
        assert_eq!(s("tenantatlas_queue_depth"), 0.0);
        // two claims: r1 after 2 s, r4 at once
        assert_eq!(s("tenantatlas_claim_latency_seconds_count"), 2.0, "{page}");
        // OpenMetrics: `le` in canonical float form
        assert_eq!(s("tenantatlas_claim_latency_seconds_bucket{le=\"1.0\"}"), 1.0, "{page}");
        assert_eq!(s("tenantatlas_claim_latency_seconds_bucket{le=\"2.5\"}"), 2.0, "{page}");
        assert_eq!(s("tenantatlas_claim_latency_seconds_bucket{le=\"+Inf\"}"), 2.0);
        assert!(
            (s("tenantatlas_claim_latency_seconds_sum") - 2.0).abs() < 0.01,
            "{page}"
        );
        assert_eq!(
            page.lines().last(),
            Some("# EOF"),
            "one complete OpenMetrics exposition"
        );
        assert!(!page.contains(".."), "no doubled period in a HELP line");
        assert!(
            s("tenantatlas_http_requests_total{route=\"auth\",status=\"303\"}") >= 1.0,
            "the sign-in was counted: {page}"
        );
        // counters and buckets are monotonic in `le`
        let buckets: Vec<f64> = page
            .lines()
            .filter(|l| l.starts_with("tenantatlas_claim_latency_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        // an owner (not a platform operator) gets 404
        let owner = crate::login(&w.app, &w.user("owner").email).await;
        assert_eq!(api(&w.app, "GET", "/metrics", Some(&owner), None).await.0, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_page_says_what_a_run_is_doing_and_who_can_act() {
    for db in databases() {
        let w = world(&db).await;
        let e = &w.engine;
        let operator = login(&w.app, "operator@example.test").await;
        let readonly = login(&w.app, "readonly@example.test").await;
        let page = async |id: RunId, c: &str| {
            body_text(
                send(
                    &w.app,
                    req("GET", &format!("/admin/operations/{id}"))
                        .header(header::COOKIE, c)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await,
            )
            .await
        };
        // queued, never started: waiting, not "being worked on" or "elapsed"
        w.clock.advance(Duration::from_secs(42));
        let queued = page(w.r1, &operator).await;
        assert!(queued.contains("waiting for a worker"), "{queued}");
        assert!(!queued.contains("being worked on"), "a queued run is not worked on");
        assert!(
            queued.contains("<p>waiting 42s</p>") && !queued.contains("42s elapsed"),
            "{queued}"
        );
        assert!(!queued.contains("<h2>Counts</h2>"), "no empty Counts heading");
        assert!(queued.contains("units=4"), "its parameters are shown");
        assert!(queued.contains("<dd>not yet</dd>"), "started: not yet");
        assert!(queued.contains("none yet"), "no heartbeat yet");
        // running: the node that holds it and its last heartbeat
        e.claim(w.r1, "node-7/worker-2", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        w.clock.advance(Duration::from_secs(5));
        let running = page(w.r1, &operator).await;
        assert!(running.contains("node-7/worker-2"), "the holder is named");
        assert!(running.contains("(5s ago)"), "the last heartbeat, with its age");
        // failed with a reason whose message ends in a period: one period
        e.complete(
            w.r1,
            None,
            Outcome::Failed,
            Some(ReasonCode::RunStaleReconciled),
            vec![Failure::from_code(ReasonCode::RunStaleReconciled)],
        )
        .await
        .unwrap();
        let failed = page(w.r1, &operator).await;
        assert!(!failed.contains(".."), "no doubled period");
        assert!(failed.contains("Start again"), "an operator may start it again");
        assert!(failed.contains("Last held by"), "{failed}");
        let seen = page(w.r1, &readonly).await;
        assert!(!seen.contains("Start again"), "no button for a readonly member");
        assert!(
            seen.contains("You may not start") && seen.contains("someone who may can follow up"),
            "a readonly member is told who can act: {seen}"
        );
    }
}
