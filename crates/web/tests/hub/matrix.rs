//! Law 10 as a table: every route × every persona × {own ids, another
//! workspace's ids}, and an inventory check that fails when a route exists
//! that the table does not cover.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::header;
use serde_json::json;

use crate::{World, databases, login, req, send, world};

const PERSONAS: [&str; 7] = [
    "anonymous",
    "non_member",
    "not_entitled",
    "readonly",
    "operator",
    "owner",
    "platform",
];

/// Any 2xx.
const OK2: u16 = 2;

#[derive(Clone, Copy)]
enum Rule {
    /// The same answer for everyone.
    All(u16),
    /// `anon` without a session, `signed` with one.
    SignedIn { anon: u16, signed: u16 },
    /// Admin plane, seeing a tenant's data: members entitled to it get
    /// `ok`; everyone else 404; another workspace's ids are 404.
    Tenant { anon: u16, ok: u16 },
    /// Admin plane, needing a capability readonly members lack.
    TenantCap { anon: u16, ok: u16 },
    /// Admin plane, needing `tenants.manage` (owners and managers).
    TenantManage { anon: u16, ok: u16 },
    /// System plane: platform operators get `ok`, everyone else 404.
    System { anon: u16, ok: u16 },
    /// Admin plane, a workspace's administration (`members.manage`):
    /// owners of it get `ok` whatever their tenants, its other members
    /// 403, everyone else 404.
    WorkspaceCap { anon: u16, ok: u16 },
    /// The login page: anonymous 200, signed in users are sent on.
    LoginPage,
}

fn expected(rule: Rule, persona: &str, own: bool) -> u16 {
    let anon = persona == "anonymous";
    match rule {
        Rule::All(c) => c,
        Rule::LoginPage => {
            if anon {
                200
            } else {
                303
            }
        }
        Rule::SignedIn { anon: a, signed } => {
            if anon {
                a
            } else {
                signed
            }
        }
        // "non_member" is not a member of workspace A but owns workspace
        // B: the other workspace's ids are theirs
        Rule::Tenant { anon: a, ok } => match persona {
            "anonymous" => a,
            "readonly" | "operator" | "owner" if own => ok,
            "non_member" if !own => ok,
            _ => 404,
        },
        Rule::TenantCap { anon: a, ok } => match persona {
            "anonymous" => a,
            "readonly" if own => 403,
            "operator" | "owner" if own => ok,
            "non_member" if !own => ok,
            _ => 404,
        },
        Rule::TenantManage { anon: a, ok } => match persona {
            "anonymous" => a,
            "readonly" | "operator" if own => 403,
            "owner" if own => ok,
            "non_member" if !own => ok,
            _ => 404,
        },
        Rule::WorkspaceCap { anon: a, ok } => match persona {
            "anonymous" => a,
            "owner" | "not_entitled" if own => ok,
            "readonly" | "operator" if own => 403,
            "non_member" if !own => ok,
            _ => 404,
        },
        Rule::System { anon: a, ok } => match persona {
            "anonymous" => a,
            "platform" => ok,
            _ => 404,
        },
    }
}

struct Case {
    method: &'static str,
    template: &'static str,
    rule: Rule,
    /// Form or JSON body.
    body: Option<(&'static str, String)>,
}

fn cases() -> Vec<Case> {
    let c = |method, template, rule| Case {
        method,
        template,
        rule,
        body: None,
    };
    let json_start = Some((
        "application/json",
        json!({"type": "synthetic", "params": {"key": "matrix"}}).to_string(),
    ));
    let form_start = Some((
        "application/x-www-form-urlencoded",
        "type=synthetic&key=matrix".to_owned(),
    ));
    let bad_login = Some((
        "application/x-www-form-urlencoded",
        "email=nobody%40example.test&password=wrong+password+here".to_owned(),
    ));
    vec![
        c("GET", "/", Rule::All(303)),
        c("GET", "/assets/{file}", Rule::All(200)),
        c("GET", "/login", Rule::LoginPage),
        Case {
            method: "POST",
            template: "/login",
            rule: Rule::All(401),
            body: bad_login,
        },
        c("POST", "/logout", Rule::All(303)),
        c("GET", "/healthz", Rule::All(200)),
        c("GET", "/metrics", Rule::System { anon: 401, ok: 200 }),
        c("GET", "/api/v1/openapi.json", Rule::All(200)),
        Case {
            method: "POST",
            template: "/api/v1/tenants/{tenant}/runs",
            rule: Rule::TenantCap { anon: 401, ok: OK2 },
            body: json_start,
        },
        c(
            "POST",
            "/api/v1/tenants/{tenant}/verify",
            Rule::TenantManage { anon: 401, ok: OK2 },
        ),
        c(
            "GET",
            "/api/v1/tenants/{tenant}/connection",
            Rule::Tenant { anon: 401, ok: 200 },
        ),
        c("GET", "/api/v1/runs", Rule::SignedIn { anon: 401, signed: 200 }),
        c("GET", "/api/v1/runs/{id}", Rule::Tenant { anon: 401, ok: 200 }),
        c(
            "POST",
            "/api/v1/runs/{id}/cancel",
            Rule::TenantCap { anon: 401, ok: 200 },
        ),
        c(
            "POST",
            "/api/v1/runs/{id}/retry",
            Rule::TenantCap { anon: 401, ok: OK2 },
        ),
        c(
            "GET",
            "/api/v1/notifications",
            Rule::SignedIn { anon: 401, signed: 200 },
        ),
        c(
            "POST",
            "/api/v1/notifications/{id}/read",
            Rule::SignedIn { anon: 401, signed: 404 },
        ),
        c("GET", "/api/v1/system/runs", Rule::System { anon: 401, ok: 200 }),
        c("GET", "/api/v1/system/failures", Rule::System { anon: 401, ok: 200 }),
        c("GET", "/api/v1/system/stuck", Rule::System { anon: 401, ok: 200 }),
        Case {
            method: "POST",
            template: "/api/v1/system/runs/{id}/reconcile",
            rule: Rule::System { anon: 401, ok: 200 },
            body: Some(("application/json", json!({"reason": "matrix"}).to_string())),
        },
        c(
            "POST",
            "/api/v1/system/runs/{id}/retry",
            Rule::System { anon: 401, ok: 200 },
        ),
        c(
            "POST",
            "/api/v1/system/runs/{id}/cancel",
            Rule::System { anon: 401, ok: 200 },
        ),
        c("GET", "/admin", Rule::SignedIn { anon: 303, signed: 200 }),
        c("GET", "/admin/tenants/{tenant}", Rule::Tenant { anon: 303, ok: 200 }),
        Case {
            method: "POST",
            template: "/admin/tenants/{tenant}/runs",
            rule: Rule::TenantCap { anon: 303, ok: 303 },
            body: form_start,
        },
        c("GET", "/admin/counts", Rule::SignedIn { anon: 303, signed: 200 }),
        c("GET", "/admin/operations", Rule::SignedIn { anon: 303, signed: 200 }),
        c("GET", "/admin/operations/{id}", Rule::Tenant { anon: 303, ok: 200 }),
        c(
            "POST",
            "/admin/operations/{id}/cancel",
            Rule::TenantCap { anon: 303, ok: 303 },
        ),
        c(
            "POST",
            "/admin/operations/{id}/retry",
            Rule::TenantCap { anon: 303, ok: 303 },
        ),
        c("GET", "/admin/notifications", Rule::SignedIn { anon: 303, signed: 200 }),
        c(
            "POST",
            "/admin/notifications/{id}/read",
            Rule::SignedIn { anon: 303, signed: 404 },
        ),
        c("GET", "/admin/widget", Rule::SignedIn { anon: 303, signed: 200 }),
        c("GET", "/admin/live", Rule::SignedIn { anon: 303, signed: 200 }),
        c("GET", "/system", Rule::System { anon: 303, ok: 200 }),
        c("GET", "/system/failures", Rule::System { anon: 303, ok: 200 }),
        c("GET", "/system/stuck", Rule::System { anon: 303, ok: 200 }),
        c("GET", "/system/runs/{id}", Rule::System { anon: 303, ok: 200 }),
        c(
            "POST",
            "/system/runs/{id}/{action}",
            Rule::System { anon: 303, ok: 303 },
        ),
        c("GET", "/system/audit", Rule::System { anon: 303, ok: 200 }),
        c("GET", "/api/v1/tokens", Rule::SignedIn { anon: 401, signed: 200 }),
        Case {
            method: "POST",
            template: "/api/v1/tokens",
            rule: Rule::SignedIn { anon: 401, signed: 201 },
            body: Some(("application/json", json!({"name": "matrix"}).to_string())),
        },
        c(
            "POST",
            "/api/v1/tokens/{token}/revoke",
            Rule::SignedIn { anon: 401, signed: 404 },
        ),
        c(
            "GET",
            "/api/v1/workspaces/{workspace}/members",
            Rule::WorkspaceCap { anon: 401, ok: 200 },
        ),
        Case {
            method: "POST",
            template: "/api/v1/workspaces/{workspace}/members/{user}/role",
            // nobody of that id is a member: 404 for those who may ask
            rule: Rule::WorkspaceCap { anon: 401, ok: 404 },
            body: Some(("application/json", json!({"role": "readonly"}).to_string())),
        },
        c(
            "POST",
            "/api/v1/workspaces/{workspace}/members/{user}/remove",
            Rule::WorkspaceCap { anon: 401, ok: 404 },
        ),
        c("GET", "/api/v1/schedules", Rule::SignedIn { anon: 401, signed: 200 }),
        c(
            "POST",
            "/api/v1/schedules/{schedule}/remove",
            Rule::SignedIn { anon: 401, signed: 404 },
        ),
        c("GET", "/api/v1/system/users", Rule::System { anon: 401, ok: 200 }),
        c(
            "POST",
            "/api/v1/system/users/{user}/disable",
            Rule::System { anon: 401, ok: 404 },
        ),
        c("GET", "/admin/settings", Rule::SignedIn { anon: 303, signed: 200 }),
        Case {
            method: "POST",
            template: "/admin/settings/tokens",
            rule: Rule::SignedIn { anon: 303, signed: 200 },
            body: Some(("application/x-www-form-urlencoded", "name=matrix".to_owned())),
        },
        c(
            "POST",
            "/admin/settings/tokens/{token}/revoke",
            Rule::SignedIn { anon: 303, signed: 404 },
        ),
        Case {
            method: "POST",
            template: "/admin/workspaces/{workspace}/members/{user}/role",
            rule: Rule::WorkspaceCap { anon: 303, ok: 404 },
            body: Some(("application/x-www-form-urlencoded", "role=readonly".to_owned())),
        },
        c(
            "POST",
            "/admin/workspaces/{workspace}/members/{user}/remove",
            Rule::WorkspaceCap { anon: 303, ok: 404 },
        ),
        c(
            "POST",
            "/admin/schedules/{schedule}/remove",
            Rule::SignedIn { anon: 303, signed: 404 },
        ),
        c(
            "POST",
            "/system/users/{user}/disable",
            Rule::System { anon: 303, ok: 404 },
        ),
    ]
}

fn concrete(template: &str, w: &World, own: bool) -> String {
    let (tenant, run) = if own { (w.t1, w.r1) } else { (w.t3, w.r3) };
    template
        .replace("{tenant}", &tenant.to_string())
        .replace(
            "{id}",
            &if template.contains("notifications") {
                uuid::Uuid::now_v7().to_string()
            } else {
                run.to_string()
            },
        )
        .replace("{workspace}", &if own { w.ws_a } else { w.ws_b }.to_string())
        .replace("{token}", &uuid::Uuid::now_v7().to_string())
        .replace("{user}", &uuid::Uuid::now_v7().to_string())
        .replace("{schedule}", &uuid::Uuid::now_v7().to_string())
        .replace("{file}", "app.css")
        .replace("{action}", "retry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_persona_as_law_10_says() {
    for db in databases() {
        let w = world(&db).await;
        let mut cookies = Vec::new();
        for p in PERSONAS {
            let cookie = if p == "anonymous" {
                None
            } else {
                Some(login(&w.app, w.user(p).email.as_str()).await)
            };
            cookies.push((p, cookie));
        }
        let mut failures = Vec::new();
        for case in cases() {
            for own in [true, false] {
                let uri = concrete(case.template, &w, own);
                for (p, cookie) in &cookies {
                    if case.template == "/logout" {
                        // logging out ends the session the rest of the table uses
                        continue;
                    }
                    let mut b = req(case.method, &uri);
                    if let Some(c) = cookie {
                        b = b.header(header::COOKIE, c);
                    }
                    let r = match &case.body {
                        Some((kind, body)) => b
                            .header(header::CONTENT_TYPE, *kind)
                            .body(Body::from(body.clone()))
                            .unwrap(),
                        None => b.body(Body::empty()).unwrap(),
                    };
                    let got = send(&w.app, r).await.status().as_u16();
                    let want = expected(case.rule, p, own);
                    let ok = if want == OK2 {
                        (200..300).contains(&got)
                    } else {
                        got == want
                    };
                    if !ok {
                        failures.push(format!(
                            "{} {} as {p} ({}): got {got}, want {want}",
                            case.method,
                            case.template,
                            if own { "own ids" } else { "other workspace's ids" }
                        ));
                    }
                }
            }
        }
        // logout last: every persona is sent to the login page, and the
        // session is gone
        for (_, cookie) in &cookies {
            let mut b = req("POST", "/logout");
            if let Some(c) = cookie {
                b = b.header(header::COOKIE, c);
            }
            let r = send(&w.app, b.body(Body::empty()).unwrap()).await;
            assert_eq!(r.status(), 303);
            if let Some(c) = cookie {
                let after = send(
                    &w.app,
                    req("GET", "/api/v1/runs")
                        .header(header::COOKIE, c)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
                assert_eq!(after.status(), 401, "the session ended at logout");
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// Every `.route("…", get(…).post(…))` in the web crate's sources.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = rest[i + 7..].trim_start();
            // (rustfmt breaks long calls after the parenthesis)
            let Some(quoted) = rest.strip_prefix('"') else { continue };
            rest = quoted;
            let end = rest.find('"').unwrap();
            let path = rest[..end].to_owned();
            let close = rest.find(")\n").unwrap_or(rest.len());
            let call = &rest[end..close];
            for (m, word) in [("GET", "get("), ("POST", "post(")] {
                if call.contains(word) {
                    out.insert((m.to_owned(), path.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn the_matrix_covers_every_route() {
    let found = routes_in_source();
    assert!(found.len() > 30, "the route scan found the routes: {found:?}");
    let covered: BTreeSet<(String, String)> = cases()
        .iter()
        .map(|c| (c.method.to_owned(), c.template.to_owned()))
        .collect();
    let missing: Vec<_> = found.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the authorization matrix: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&found).collect();
    assert!(stale.is_empty(), "matrix rows for routes that do not exist: {stale:?}");
}
