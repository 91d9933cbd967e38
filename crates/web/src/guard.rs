//! What every response and every state-changing request goes through.
//!
//! - **CSRF**: a request that is not GET/HEAD and carries no bearer token
//!   must prove it comes from this site: `Sec-Fetch-Site: same-origin`, or
//!   an `Origin` whose host is this request's `Host`. Without either it is
//!   refused (403) before any handler runs. SameSite=Strict cookies are the
//!   second wall. No GET route changes state.
//! - **Caching**: `no-store` on everything but the embedded assets.
//! - **Request metrics**: count and duration per route family and status.
//!
//! The security headers of every response (a CSP without inline script,
//! `nosniff`, referrer and framing policies, HSTS behind TLS) are set by
//! tower-http layers around it ([`crate::harden`]).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AppState, WebError};

/// The content security policy of every page.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Whether a state-changing request proves it comes from this site.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/').eq_ignore_ascii_case(host))
}

/// The middleware.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // only a bearer token proves the request is not a browser's ambient
    // credential (a cached Basic login would be one)
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    let route = crate::metrics::route_label(req.uri().path());
    let res = if !safe && !bearer && !same_origin(req.headers()) {
        if req.uri().path().starts_with("/api/") {
            WebError::cross_site().into_response()
        } else {
            WebError::cross_site().page()
        }
    } else {
        let asset = req.uri().path().starts_with("/assets/");
        let mut res = next.run(req).await;
        if !asset {
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        res
    };
    state
        .http_metrics()
        .observe(route, res.status().as_u16(), started.elapsed());
    res
}
