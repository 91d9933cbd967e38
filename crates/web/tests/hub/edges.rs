//! The API at its edges, as its OpenAPI document says: the document is
//! public, unknown routes and wrong methods answer the error shape, a body
//! over the limit is 413, `params: null` and empty or repeated query keys
//! are refused naming the key, JSON's `30.0` is the whole number 30.

use axum::body::Body;
use axum::http::header;
use serde_json::{Value, json};

use crate::{api, body_text, databases, login, req, send, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_documented_at_its_edges() {
    for db in databases() {
        let w = world(&db).await;
        let (s, doc) = api(&w.app, "GET", "/api/v1/openapi.json", None, None).await;
        assert_eq!(s, 200, "public: tools fetch it first");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let op = login(&w.app, &w.user("operator").email).await;
        // unknown routes and wrong methods: the error shape
        let (s, e) = api(&w.app, "GET", "/api/v1/nope", Some(&op), None).await;
        assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")), "{e}");
        let r = send(
            &w.app,
            req("PUT", "/api/v1/runs")
                .header(header::COOKIE, &op)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), 405);
        assert!(r.headers().get(header::ALLOW).is_some(), "Allow says what is");
        let e: Value = serde_json::from_str(&body_text(r).await).unwrap();
        assert_eq!(e["error"]["code"], "method_not_allowed");
        let r = send(
            &w.app,
            req("GET", "/admin/nope")
                .header(header::COOKIE, &op)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), 404);
        assert!(body_text(r).await.contains("<html"), "a page outside the API");
        // a body over the limit is 413, not 422
        let uri = format!("/api/v1/tenants/{}/runs", w.t1);
        let big = json!({"type": "synthetic", "params": {"key": "x".repeat(3 << 20)}});
        let (s, e) = api(&w.app, "POST", &uri, Some(&op), Some(big)).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (413, Some("payload_too_large")),
            "{e}"
        );
        // params must be an object when given
        let (s, e) = api(
            &w.app,
            "POST",
            &uri,
            Some(&op),
            Some(json!({"type": "synthetic", "params": null})),
        )
        .await;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("params")), "{e}");
        // empty or repeated query keys are refused, naming the key
        for (q, field) in [
            ("workspace=", "workspace"),
            ("status=failed&status=queued", "status"),
            ("clear=", "clear"),
        ] {
            let (s, e) = api(&w.app, "GET", &format!("/api/v1/runs?{q}"), Some(&op), None).await;
            assert_eq!((s, e["error"]["field"].as_str()), (422, Some(field)), "{q} → {e}");
        }
        // (the pages keep their forms' empty "any" values)
        let r = send(
            &w.app,
            req("GET", "/admin/operations?status=&problem=")
                .header(header::COOKIE, &op)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), 200);
        // ending a run from the system plane needs a reason, kept on the
        // run and in the audit log
        let platform = login(&w.app, &w.user("platform").email).await;
        let url = format!("/api/v1/system/runs/{}/reconcile", w.r1);
        let (s, e) = api(&w.app, "POST", &url, Some(&platform), Some(json!({}))).await;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("reason")), "{e}");
        let (s, e) = api(
            &w.app,
            "POST",
            &url,
            Some(&platform),
            Some(json!({"reason": "\u{200B}"})),
        )
        .await;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some("reason")), "{e}");
        let (s, run) = api(
            &w.app,
            "POST",
            &url,
            Some(&platform),
            Some(json!({"reason": "its tenant was offboarded"})),
        )
        .await;
        assert_eq!(s, 200, "{run}");
        assert_eq!(run["reason_code"], "run.stale_reconciled");
        let message = run["failures"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("platform operator") && message.contains("its tenant was offboarded"),
            "{message}"
        );
        let audit = w.engine.audit_log(5).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|a| a.entry.action == "run.reconcile" && a.entry.detail["reason"] == "its tenant was offboarded")
        );
        // JSON has one number type
        let (s, t) = api(
            &w.app,
            "POST",
            "/api/v1/tokens",
            Some(&op),
            Some(json!({"name": "float", "expires_in_days": 30.0})),
        )
        .await;
        assert_eq!(s, 201, "{t}");
        let (s, _) = api(
            &w.app,
            "POST",
            "/api/v1/tokens",
            Some(&op),
            Some(json!({"name": "float", "expires_in_days": 1.5})),
        )
        .await;
        assert_eq!(s, 422);
    }
}
