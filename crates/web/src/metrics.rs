//! `/metrics` (OpenMetrics text, written by prometheus-client) and `/healthz`.
//!
//! `/metrics` answers platform operators only (a scraper sends a platform
//! operator's API token); `/healthz` answers anyone. Counters (runs
//! started, completed, reconciled; claim latency; requests) are this
//! node's since it started — Prometheus' convention, a cluster's total is
//! the sum over its nodes — so a scrape never counts the ledger. Gauges
//! about now (active runs, queue depth) come from the database through the
//! index of active runs, so every node reports the same.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram as PromHistogram;
use prometheus_client::registry::Registry;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// A request's labels: route family and status.
type HttpLabels = Vec<(&'static str, String)>;

/// Upper bounds (seconds) of the request-duration histogram's buckets.
const HTTP_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Requests served by this node, per route family and status: a count
/// and a duration histogram (prometheus-client families, registered at
/// each scrape).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<HttpLabels, PromHistogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| PromHistogram::new(HTTP_BUCKETS)),
        }
    }
}

impl HttpMetrics {
    pub(crate) fn observe(&self, route: &'static str, status: u16, took: Duration) {
        let labels = vec![("route", route.to_owned()), ("status", status.to_string())];
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(took.as_secs_f64());
    }
}

/// A bounded label for a path (ids are not labels).
pub fn route_label(path: &str) -> &'static str {
    match path {
        p if p.starts_with("/api/v1/system") => "api_system",
        p if p.starts_with("/api/") => "api",
        p if p.starts_with("/admin/live") => "live",
        p if p.starts_with("/admin") => "admin",
        p if p.starts_with("/system") => "system",
        p if p.starts_with("/assets") => "assets",
        "/login" | "/logout" => "auth",
        "/metrics" => "metrics",
        "/healthz" => "healthz",
        _ => "other",
    }
}

/// A health check answers within a second: a load balancer's probe must
/// not hang on a database that does not answer.
const HEALTH_DEADLINE: std::time::Duration = std::time::Duration::from_millis(900);

async fn healthz(State(state): State<AppState>) -> Response {
    let answer = match tokio::time::timeout(HEALTH_DEADLINE, state.engine().ping()).await {
        Ok(Ok(())) => return (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", HEALTH_DEADLINE.as_millis()),
    };
    tracing::warn!(error = %answer, "health check: the database does not answer");
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n").into_response();
    res.headers_mut().insert(axum::http::header::RETRY_AFTER, 2.into());
    res
}

/// What one scrape reports besides the request families: this node's
/// tallies and the database's gauges, read once and encoded by
/// prometheus-client (names, escaping, histogram layout).
#[derive(Debug)]
struct Scrape {
    tally: tenantatlas_engine::TallySnapshot,
    snap: tenantatlas_engine::MetricsSnapshot,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.tally;
        let mut e = encoder.encode_descriptor(
            "tenantatlas_runs_started",
            "Runs this node started (joins are not starts), by type",
            None,
            MetricType::Counter,
        )?;
        for (ty, n) in &t.started {
            ConstCounter::new(*n).encode(e.encode_family(&[("type", *ty)])?)?;
        }
        let mut e = encoder.encode_descriptor(
            "tenantatlas_runs_completed",
            "Runs this node completed, by type and outcome",
            None,
            MetricType::Counter,
        )?;
        for ((ty, outcome), n) in &t.completed {
            ConstCounter::new(*n).encode(e.encode_family(&[("type", *ty), ("outcome", *outcome)])?)?;
        }
        let mut e = encoder.encode_descriptor(
            "tenantatlas_reconciliations",
            "Stale runs this node completed (reconciler or triage), by type",
            None,
            MetricType::Counter,
        )?;
        for (ty, n) in &t.reconciled {
            ConstCounter::new(*n).encode(e.encode_family(&[("type", *ty)])?)?;
        }
        let mut e = encoder.encode_descriptor(
            "tenantatlas_runs_active",
            "Runs queued or running now (all nodes)",
            None,
            MetricType::Gauge,
        )?;
        for g in &self.snap.active {
            let n = i64::try_from(g.count).unwrap_or(i64::MAX);
            ConstGauge::new(n)
                .encode(e.encode_family(&[("type", g.op_type.as_str()), ("status", g.status.as_str())])?)?;
        }
        let e = encoder.encode_descriptor(
            "tenantatlas_queue_depth",
            "Queued runs that are due now (all nodes)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.snap.queue_depth).unwrap_or(i64::MAX)).encode(e)?;
        // the tally's buckets are cumulative; the encoder wants each bucket's own
        let h = &t.claim_latency;
        let mut buckets = Vec::with_capacity(h.buckets.len() + 1);
        let mut below = 0;
        for (le, cumulative) in tenantatlas_engine::CLAIM_LATENCY_BUCKETS.iter().zip(h.buckets) {
            buckets.push((*le, cumulative.saturating_sub(below)));
            below = cumulative;
        }
        buckets.push((f64::MAX, h.count.saturating_sub(below)));
        let mut e = encoder.encode_descriptor(
            "tenantatlas_claim_latency_seconds",
            "From due to claimed, for the runs this node's workers claimed",
            None,
            MetricType::Histogram,
        )?;
        e.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
    }
}

async fn metrics(State(state): State<AppState>, _op: crate::auth::PlatformOperator) -> Response {
    let engine = state.engine();
    let snap = match engine.store_metrics().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database does not answer");
            let mut res = (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n").into_response();
            res.headers_mut().insert(header::RETRY_AFTER, 2.into());
            return res;
        }
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        tally: engine.tally(),
        snap,
    }));
    let http = state.http_metrics();
    registry.register(
        "tenantatlas_http_requests",
        "Requests served by this node",
        http.requests.clone(),
    );
    registry.register(
        "tenantatlas_http_request_duration_seconds",
        "How long this node took to answer requests",
        http.duration.clone(),
    );
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        tracing::error!(error = %e, "metrics: encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
