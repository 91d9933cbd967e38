//! Administration over the API and the settings page: a leaked token is
//! revoked (or expires) and refused at its next request, members change
//! role or leave (a workspace keeps an owner), schedules are removed,
//! users are disabled — each authorized, answered in the documented shape,
//! and audited.

use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use serde_json::{Value, json};
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::directory::Actor;
use tenantatlas_domain::params::RawParams;
use tenantatlas_domain::schedule::CronSpec;

use crate::{api, body_text, databases, login, req, send, world};

/// A POST without a body, as `cookie`'s user.
async fn post(app: &axum::Router, uri: &str, cookie: &str) -> (u16, Value) {
    api(app, "POST", uri, Some(cookie), None).await
}

fn bearer(token: &str) -> axum::http::Request<Body> {
    req("GET", "/api/v1/runs")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_members_schedules_and_users_are_administered_and_audited() {
    for db in databases() {
        let w = world(&db).await;
        let (_, doc) = api(
            &w.app,
            "GET",
            "/api/v1/openapi.json",
            Some(&login(&w.app, &w.user("owner").email).await),
            None,
        )
        .await;
        let conforms = |schema: &str, instance: &Value| crate::conforms(&doc, schema, instance);
        let owner = login(&w.app, &w.user("owner").email).await;
        let platform = login(&w.app, &w.user("platform").email).await;

        // --- tokens: created, listed without their secret, revoked
        let (s, issued) = api(
            &w.app,
            "POST",
            "/api/v1/tokens",
            Some(&owner),
            Some(json!({"name": "ci", "expires_in_days": 30})),
        )
        .await;
        assert_eq!(s, 201, "{issued}");
        conforms("IssuedToken", &issued);
        let secret = issued["token"].as_str().unwrap().to_owned();
        let token_id = issued["id"].as_str().unwrap().to_owned();
        assert_eq!(send(&w.app, bearer(&secret)).await.status(), 200);
        let (s, list) = api(&w.app, "GET", "/api/v1/tokens", Some(&owner), None).await;
        assert_eq!(s, 200);
        conforms("Tokens", &list);
        assert!(
            list["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == token_id.as_str())
        );
        assert!(!list.to_string().contains(&secret), "a list never shows a secret");
        assert!(
            !list["tokens"][0]["last_used_at"].is_null(),
            "the token's use is recorded: {list}"
        );
        // another user's token is not found for them, revocable by a platform operator
        let ro_user = w.user("readonly").clone();
        let theirs = w
            .engine
            .create_api_token(&ro_user, "laptop", None, Actor::Cli)
            .await
            .unwrap();
        let (s, _) = post(&w.app, &format!("/api/v1/tokens/{}/revoke", theirs.id), &owner).await;
        assert_eq!(s, 404, "not the owner's token");
        assert_eq!(send(&w.app, bearer(&theirs.token)).await.status(), 200);
        let (s, revoked) = post(&w.app, &format!("/api/v1/tokens/{}/revoke", theirs.id), &platform).await;
        assert_eq!(s, 200, "{revoked}");
        assert_eq!(send(&w.app, bearer(&theirs.token)).await.status(), 401);
        let (s, revoked) = post(&w.app, &format!("/api/v1/tokens/{token_id}/revoke"), &owner).await;
        assert_eq!(s, 200);
        conforms("Token", &revoked);
        assert_eq!(
            send(&w.app, bearer(&secret)).await.status(),
            401,
            "a revoked token is refused on the next request"
        );
        let (s, _) = post(&w.app, &format!("/api/v1/tokens/{token_id}/revoke"), &owner).await;
        assert_eq!(s, 404, "revoked once");
        // expiry, by moving the clock
        let (_, short) = api(
            &w.app,
            "POST",
            "/api/v1/tokens",
            Some(&owner),
            Some(json!({"name": "short", "expires_in_days": 1})),
        )
        .await;
        let short = short["token"].as_str().unwrap().to_owned();
        assert_eq!(send(&w.app, bearer(&short)).await.status(), 200);
        w.clock.advance(Duration::from_secs(24 * 3600 + 1));
        assert_eq!(send(&w.app, bearer(&short)).await.status(), 401, "expired");
        // (sessions ended too, a day later: sign in again)
        let owner = login(&w.app, &w.user("owner").email).await;
        let ro = login(&w.app, &w.user("readonly").email).await;
        let op = login(&w.app, &w.user("operator").email).await;
        let platform = login(&w.app, &w.user("platform").email).await;
        // bad input names the field
        for (body, field) in [
            (json!({}), "name"),
            (json!({"name": ""}), "name"),
            (json!({"name": "x", "expires_in_days": 0}), "expires_in_days"),
            (json!({"name": "x", "expires_in_days": "soon"}), "expires_in_days"),
            (json!({"name": "x", "scope": "all"}), "scope"),
        ] {
            let (s, err) = api(&w.app, "POST", "/api/v1/tokens", Some(&owner), Some(body.clone())).await;
            assert_eq!(
                (s, err["error"]["field"].as_str()),
                (422, Some(field)),
                "{body} → {err}"
            );
        }

        // --- schedules: seen by those who see the tenant's runs, removed
        // by those who may start the type
        let params = tenantatlas_ops::synthetic::SPEC
            .parse_params(RawParams::Json(&json!({"units": 1})))
            .unwrap();
        let sched = w
            .engine
            .put_schedule(
                "nightly synthetic",
                &CronSpec::parse("cron", "0 2 * * *").unwrap(),
                Some(w.t1),
                OperationType::Synthetic,
                params,
                Actor::Cli,
            )
            .await
            .unwrap();
        let (s, list) = api(&w.app, "GET", "/api/v1/schedules", Some(&ro), None).await;
        assert_eq!(s, 200);
        conforms("Schedules", &list);
        assert_eq!(list["schedules"].as_array().unwrap().len(), 1, "{list}");
        let remove = format!("/api/v1/schedules/{}/remove", sched.id);
        assert_eq!(api(&w.app, "POST", &remove, Some(&ro), None).await.0, 403);
        let non_member = login(&w.app, &w.user("non_member").email).await;
        assert_eq!(api(&w.app, "POST", &remove, Some(&non_member), None).await.0, 404);
        let (s, gone) = api(&w.app, "POST", &remove, Some(&op), None).await;
        assert_eq!(s, 200, "{gone}");
        conforms("Schedule", &gone);
        assert!(
            w.engine
                .list_schedules()
                .await
                .unwrap()
                .iter()
                .all(|x| x.id != sched.id)
        );
        // a schedule every node keeps cannot be removed
        w.engine.ensure_system_schedules().await.unwrap();
        let prune = w.engine.list_schedules().await.unwrap()[0].clone();
        let (s, err) = post(&w.app, &format!("/api/v1/schedules/{}/remove", prune.id), &owner).await;
        assert_eq!(s, 404, "who may not remove it learns nothing of it: {err}");
        let (s, err) = post(&w.app, &format!("/api/v1/schedules/{}/remove", prune.id), &platform).await;
        assert_eq!(s, 403, "{err}");

        // --- members: listed, role changed, removed; a workspace keeps an owner
        let members_url = format!("/api/v1/workspaces/{}/members", w.ws_a);
        assert_eq!(api(&w.app, "GET", &members_url, Some(&ro), None).await.0, 403);
        let (s, members) = api(&w.app, "GET", &members_url, Some(&owner), None).await;
        assert_eq!(s, 200);
        conforms("Members", &members);
        let id_of = |p: &str| w.user(p).id.to_string();
        let role_url = |p: &str| format!("/api/v1/workspaces/{}/members/{}/role", w.ws_a, id_of(p));
        let (s, m) = api(
            &w.app,
            "POST",
            &role_url("operator"),
            Some(&owner),
            Some(json!({"role": "manager"})),
        )
        .await;
        assert_eq!(s, 200, "{m}");
        conforms("Member", &m);
        assert_eq!(m["role"], "manager");
        let (s, err) = api(
            &w.app,
            "POST",
            &role_url("operator"),
            Some(&owner),
            Some(json!({"role": "king"})),
        )
        .await;
        assert_eq!((s, err["error"]["field"].as_str()), (422, Some("role")));
        // two owners (owner, not_entitled): one may step down, not both
        let (s, _) = api(
            &w.app,
            "POST",
            &role_url("not_entitled"),
            Some(&owner),
            Some(json!({"role": "readonly"})),
        )
        .await;
        assert_eq!(s, 200);
        let (s, err) = api(
            &w.app,
            "POST",
            &role_url("owner"),
            Some(&owner),
            Some(json!({"role": "readonly"})),
        )
        .await;
        assert_eq!(s, 409, "the last owner stays: {err}");
        let (s, err) = post(
            &w.app,
            &format!("/api/v1/workspaces/{}/members/{}/remove", w.ws_a, id_of("owner")),
            &owner,
        )
        .await;
        assert_eq!(s, 409, "the last owner stays: {err}");
        // an owner who demotes themselves gets the change back (it was made)
        let (s, m) = api(
            &w.app,
            "POST",
            &role_url("readonly"),
            Some(&owner),
            Some(json!({"role": "owner"})),
        )
        .await;
        assert_eq!((s, m["role"].as_str()), (200, Some("owner")), "{m}");
        let (s, m) = api(
            &w.app,
            "POST",
            &role_url("readonly"),
            Some(&ro),
            Some(json!({"role": "readonly"})),
        )
        .await;
        assert_eq!((s, m["role"].as_str()), (200, Some("readonly")), "{m}");
        conforms("Member", &m);
        // a removed member loses the workspace at their next request
        let r1 = format!("/api/v1/runs/{}", w.r1);
        assert_eq!(api(&w.app, "GET", &r1, Some(&ro), None).await.0, 200);
        let (s, m) = post(
            &w.app,
            &format!("/api/v1/workspaces/{}/members/{}/remove", w.ws_a, id_of("readonly")),
            &owner,
        )
        .await;
        assert_eq!(s, 200, "{m}");
        conforms("Member", &m);
        assert_eq!(api(&w.app, "GET", &r1, Some(&ro), None).await.0, 404);

        // --- users: listed and disabled by platform operators
        let (s, users) = api(&w.app, "GET", "/api/v1/system/users", Some(&platform), None).await;
        assert_eq!(s, 200);
        conforms("Users", &users);
        assert_eq!(
            api(&w.app, "GET", "/api/v1/system/users", Some(&owner), None).await.0,
            404
        );
        let (s, u) = post(
            &w.app,
            &format!("/api/v1/system/users/{}/disable", id_of("operator")),
            &platform,
        )
        .await;
        assert_eq!(s, 200, "{u}");
        conforms("User", &u);
        assert!(!u["disabled_at"].is_null());
        assert_eq!(api(&w.app, "GET", "/api/v1/runs", Some(&op), None).await.0, 401);
        let (s, _) = post(
            &w.app,
            &format!("/api/v1/system/users/{}/disable", id_of("platform")),
            &platform,
        )
        .await;
        assert_eq!(s, 409, "no one disables themselves");

        // --- everything above is in the audit log, with its actor
        let audit = w.engine.audit_log(200).await.unwrap();
        for action in [
            "token.create",
            "token.revoke",
            "member.put",
            "member.remove",
            "schedule.remove",
            "user.disable",
        ] {
            assert!(
                audit
                    .iter()
                    .any(|a| a.entry.action == action && matches!(a.entry.actor, Actor::User(_))),
                "{action} audited with its user"
            );
        }

        // ... and the system plane's audit page names them, not their ids
        let r = send(
            &w.app,
            req("GET", "/system/audit")
                .header(header::COOKIE, &platform)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let page = body_text(r).await;
        for shown in [
            "user operator@example.test (in A)",
            "token &#34;ci&#34; of owner@example.test",
            "schedule &#34;nightly synthetic&#34;",
        ] {
            assert!(page.contains(shown), "{shown} in the audit page");
        }
        for id in [id_of("operator"), id_of("owner")] {
            assert!(!page.contains(&id), "a raw user id on the audit page");
        }

        // a platform operator who is no member gets a way on, not an empty chart
        let r = send(
            &w.app,
            req("GET", "/admin")
                .header(header::COOKIE, &platform)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let page = body_text(r).await;
        assert!(
            page.contains("href=\"/system\"") && page.contains("no-workspace"),
            "{page}"
        );
        assert!(!page.contains("figure class=\"chart\""), "no chart of nothing");

        // --- the settings page: a new token is shown once
        let page = |cookie: &str| {
            req("GET", "/admin/settings")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap()
        };
        let r = send(&w.app, page(&owner)).await;
        assert_eq!(r.status(), 200);
        let text = body_text(r).await;
        assert!(
            text.contains("Your API tokens") && text.contains("Members of A"),
            "{text}"
        );
        let r = send(
            &w.app,
            req("POST", "/admin/settings/tokens")
                .header(header::COOKIE, &owner)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("name=deploy&expires_in_days=7"))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let text = body_text(r).await;
        let start = text.find("tat_").expect("the new token is shown");
        // tat_ and 64 hex digits
        let shown = text[start..start + 68].to_owned();
        assert_eq!(
            send(&w.app, bearer(&shown)).await.status(),
            200,
            "the shown token works"
        );
        let again = body_text(send(&w.app, page(&owner)).await).await;
        assert!(!again.contains(&shown), "shown once");
        assert!(again.contains("deploy"));
        // a readonly member sees their tokens, but no members to manage
        let ro2 = login(&w.app, &w.user("not_entitled").email).await;
        let text = body_text(send(&w.app, page(&ro2)).await).await;
        assert!(!text.contains("Members of A"), "a readonly member manages no one");
    }
}
