//! The monitoring hub: accounts and sessions, plane-aware authorization,
//! the JSON API (`/api/v1`), server-rendered pages (`/admin`, `/system`)
//! with live progress over server-sent events, `/metrics` and `/healthz`.
//!
//! | module      | what                                                               |
//! |-------------|--------------------------------------------------------------------|
//! | [`auth`]    | login/logout, session cookies, bearer tokens, the caller extractors |
//! | [`throttle`]| sign-in throttling per account and client; the client behind a trusted proxy |
//! | [`guard`]   | security headers and the CSRF check on every state-changing request |
//! | [`api`]     | `/api/v1`: JSON in CONTRACT.md's shapes, errors included           |
//! | [`pages`]   | `/admin` and `/system` HTML (askama), with htmx for actions        |
//! | `charts`    | the SVG charts: geometry here, markup in `templates/charts/`       |
//! | [`live`]    | the active-operations widget, over SSE with polling as fallback    |
//! | [`metrics`] | Prometheus text and the health check                               |
//!
//! Authorization is structural (law 10): a handler receives an
//! [`auth::ApiCaller`] / [`auth::PageCaller`] (signed in) or a
//! [`auth::PlatformOperator`] (system plane; 404 for anyone else), and every
//! read it makes goes through the engine with `Viewer::User`, which scopes
//! rows, counts and the widget to what the caller may see.

pub mod api;
pub mod auth;
mod charts;
mod error;
pub mod guard;
pub mod live;
pub mod metrics;
mod openapi;
pub mod pages;
mod render;
pub mod settings;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tenantatlas_engine::{Engine, SessionPolicy};
use tokio_util::sync::CancellationToken;

pub use error::WebError;

/// Hub settings.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Whether the hub is reached over TLS (a proxy in front terminates
    /// it): cookies get `Secure` and the `__Host-` prefix.
    pub tls: bool,
    /// How sign-in failures are throttled.
    pub throttle: throttle::Policy,
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`);
    /// every other peer is the client itself.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: WebConfig,
    throttle: throttle::Throttle,
    metrics: metrics::HttpMetrics,
}

impl AppState {
    /// State over `engine`.
    pub fn new(engine: Engine, config: WebConfig) -> Self {
        let throttle = throttle::Throttle::new(config.throttle);
        Self {
            inner: Arc::new(Inner {
                engine,
                config,
                throttle,
                metrics: metrics::HttpMetrics::default(),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The settings.
    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    pub(crate) fn throttle(&self) -> &throttle::Throttle {
        &self.inner.throttle
    }

    pub(crate) fn http_metrics(&self) -> &metrics::HttpMetrics {
        &self.inner.metrics
    }
}

/// The longest a request may take before it is answered 503 (a streamed
/// body, like the live widget's, is not limited once its headers left).
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// The layers every router gets, from tower-http: request tracing (a span
/// per request), a deadline, compression (gzip or brotli when asked for;
/// never server-sent events) and the security headers of every response.
/// The CSRF check, `no-store` and request metrics stay in [`guard`]: they
/// need the hub's state and its error shape.
fn harden(router: Router, tls: bool) -> Router {
    use axum::http::{HeaderValue, StatusCode, header};
    use tower_http::set_header::SetResponseHeaderLayer as Set;
    let fixed = |name, value| Set::overriding(name, HeaderValue::from_static(value));
    // the deadline first, so that its 503 gets the headers below and a
    // Retry-After like every other 503
    let mut router = router
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_DEADLINE,
        ))
        .layer(Set::if_not_present(
            header::RETRY_AFTER,
            |r: &axum::response::Response| {
                (r.status() == StatusCode::SERVICE_UNAVAILABLE)
                    .then(|| HeaderValue::from(error::UNAVAILABLE_RETRY_SECS))
            },
        ))
        .layer(fixed(header::CONTENT_SECURITY_POLICY, guard::CSP))
        .layer(fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(fixed(header::REFERRER_POLICY, "same-origin"))
        .layer(fixed(header::X_FRAME_OPTIONS, "DENY"))
        .layer(fixed(
            axum::http::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ));
    if tls {
        // Reached over TLS only (a proxy terminates it): browsers must not
        // try plain HTTP for a year (OWASP ASVS 5.0 V3.4.1).
        router = router.layer(fixed(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ));
    }
    router
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Every route of the hub, with its guards.
pub fn router(state: AppState) -> Router {
    let tls = state.config().tls;
    let routes = Router::new()
        .merge(auth::routes())
        .merge(api::routes())
        .merge(pages::routes())
        .merge(settings::routes())
        .merge(live::routes())
        .merge(metrics::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .with_state(state);
    harden(routes, tls)
}

/// An unknown path: the API's error shape under `/api/`, a page elsewhere.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let e = WebError::not_found("page");
    if uri.path().starts_with("/api/") {
        WebError::not_found("route").into_response()
    } else {
        e.page()
    }
}

/// A known path asked with a method it does not take (axum adds `Allow`).
async fn method_not_allowed(uri: axum::http::Uri, method: axum::http::Method) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let e = WebError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; the Allow header lists what is"),
    );
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        e.page()
    }
}

/// Only `/metrics` and `/healthz`, behind the same guard: what a
/// worker-only process serves so that its counters can be scraped.
pub fn metrics_router(state: AppState) -> Router {
    let tls = state.config().tls;
    let routes = Router::new()
        .merge(metrics::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .with_state(state);
    harden(routes, tls)
}

/// Serves `app` (the hub's [`router`] or [`metrics_router`]) on `listener`
/// until `shutdown` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
