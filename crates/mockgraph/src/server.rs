//! The HTTP surface: the token endpoint, `/beta/…` (and `$batch`), and the
//! control routes under `/_mock/` (stats, the request log, fault rules).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use serde_json::json;
use tenantatlas_providers::fixture::FaultRule;

use crate::graph::{Body, Call};
use crate::log::{Entry, RequestKind};
use crate::reply::{Reply, RequestIds};
use crate::state::Shared;
use crate::{batch, graph, token};

/// The largest body accepted (a batch of settings catalog policies fits).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

type S = State<Arc<Shared>>;

/// The router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", any(token_route))
        .route("/_mock/stats", get(stats))
        .route("/_mock/requests", get(requests).delete(clear_requests))
        .route("/_mock/faults", post(add_faults).delete(clear_faults))
        .fallback(graph_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

async fn token_route(State(shared): S, method: Method, Path(tenant): Path<String>, body: Bytes) -> Response {
    token::token_endpoint(&shared, method.as_str(), &tenant, &body).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `http://HOST` from the request's `Host`, so links work however the
/// client reached the server; the bound address when it has none.
fn link_base(shared: &Shared, headers: &HeaderMap) -> String {
    match header_str(headers, header::HOST.as_str()) {
        Some(h)
            if !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')) =>
        {
            format!("http://{h}")
        }
        _ => shared.base_url.clone(),
    }
}

fn body_of(headers: &HeaderMap, bytes: &[u8]) -> Body {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Body::None;
    }
    let json_type =
        header_str(headers, header::CONTENT_TYPE.as_str()).is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    if !json_type {
        return Body::NotJson;
    }
    match serde_json::from_slice(bytes) {
        Ok(v) => Body::Json(v),
        Err(e) => Body::Invalid(e.to_string()),
    }
}

async fn graph_route(State(shared): S, method: Method, uri: Uri, headers: HeaderMap, bytes: Bytes) -> Response {
    let raw = match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    let Some(rest) = uri.path().strip_prefix("/beta/") else {
        // Not a Graph path this server serves: answered (and recorded)
        // like Graph answers an unknown version.
        let ids = RequestIds::new(header_str(&headers, "client-request-id"));
        let reply = Reply::bad_request(
            "Invalid version: the local Graph serves /beta/ (and the token endpoint /{tenant}/oauth2/v2.0/token).",
        )
        .finish(&ids);
        shared.log.record(Entry {
            kind: RequestKind::Graph,
            method: method.as_str(),
            path: &raw,
            status: reply.status.as_u16(),
            tenant: None,
            in_batch: false,
        });
        return reply.into_response();
    };
    let mut segments = Vec::new();
    for seg in rest.trim_end_matches('/').split('/') {
        match percent_encoding::percent_decode_str(seg).decode_utf8() {
            Ok(s) => segments.push(s.into_owned()),
            Err(_) => segments.push(String::from_utf8_lossy(seg.as_bytes()).into_owned()),
        }
    }
    let path = segments.join("/");
    let call = Call {
        method: method.as_str().to_ascii_uppercase(),
        path,
        query: uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        raw,
        body: body_of(&headers, &bytes),
        authorization: header_str(&headers, header::AUTHORIZATION.as_str()).map(str::to_owned),
        client_request_id: header_str(&headers, "client-request-id").map(str::to_owned),
        link_base: link_base(&shared, &headers),
        in_batch: false,
    };
    let reply = if call.path == "$batch" {
        batch::handle(&shared, &call)
    } else {
        graph::handle(&shared, &call)
    };
    reply.into_response()
}

async fn stats(State(shared): S) -> Response {
    axum::Json(shared.log.stats()).into_response()
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn requests(State(shared): S, Query(q): Query<Since>) -> Response {
    axum::Json(json!({"value": shared.log.records(q.since.unwrap_or(0))})).into_response()
}

async fn clear_requests(State(shared): S) -> Response {
    shared.log.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_mock/faults`: `{"tenant": ID_OR_DOMAIN, "faults": [RULE…]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFaults {
    tenant: String,
    faults: Vec<FaultRule>,
}

fn control_error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

async fn add_faults(State(shared): S, bytes: Bytes) -> Response {
    let req: AddFaults = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return control_error(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"tenant\": ID, \"faults\": [RULE…]}} as in faults.json: {e}"),
            );
        }
    };
    let Some(t) = shared.tenant(&req.tenant) else {
        return control_error(StatusCode::NOT_FOUND, format!("no tenant {} is served", req.tenant));
    };
    let added = req.faults.len();
    t.add_faults(req.faults);
    (StatusCode::CREATED, axum::Json(json!({"tenant": t.id, "added": added}))).into_response()
}

async fn clear_faults(State(shared): S, Query(q): Query<HashMap<String, String>>) -> Response {
    match q.get("tenant") {
        Some(id) => match shared.tenant(id) {
            Some(t) => t.clear_runtime_faults(),
            None => return control_error(StatusCode::NOT_FOUND, format!("no tenant {id} is served")),
        },
        None => shared.tenants.iter().for_each(|t| t.clear_runtime_faults()),
    }
    StatusCode::NO_CONTENT.into_response()
}
