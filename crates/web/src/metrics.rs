//! `/metrics` (Prometheus text) and `/healthz`.
//!
//! `/metrics` answers platform operators only (a scraper sends a platform
//! operator's API token); `/healthz` answers anyone. Counters (runs
//! started, completed, reconciled; claim latency; requests) are this
//! node's since it started — Prometheus' convention, a cluster's total is
//! the sum over its nodes — so a scrape never counts the ledger. Gauges
//! about now (active runs, queue depth) come from the database through the
//! index of active runs, so every node reports the same.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

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

/// Requests and their total seconds, per route family and status.
type Tally = BTreeMap<(&'static str, u16), (u64, f64)>;

/// Request counts and total latency per route family and status.
#[derive(Default)]
pub struct HttpMetrics {
    by: Mutex<Tally>,
}

impl HttpMetrics {
    pub(crate) fn observe(&self, route: &'static str, status: u16, took: Duration) {
        let mut m = self.by.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = m.entry((route, status)).or_default();
        e.0 += 1;
        e.1 += took.as_secs_f64();
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

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn metrics(State(state): State<AppState>, _op: crate::auth::PlatformOperator) -> Response {
    let engine = state.engine();
    let snap = match engine.store_metrics().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database does not answer");
            return (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n").into_response();
        }
    };
    let tally = engine.tally();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tenantatlas_runs_started_total Runs this node started (joins are not starts), by type."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_runs_started_total counter");
    for (t, n) in &tally.started {
        let _ = writeln!(out, "tenantatlas_runs_started_total{{type=\"{}\"}} {n}", escape(t));
    }
    let _ = writeln!(
        out,
        "# HELP tenantatlas_runs_completed_total Runs this node completed, by type and outcome."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_runs_completed_total counter");
    for ((t, o), n) in &tally.completed {
        let _ = writeln!(
            out,
            "tenantatlas_runs_completed_total{{type=\"{}\",outcome=\"{}\"}} {n}",
            escape(t),
            escape(o)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tenantatlas_reconciliations_total Stale runs this node completed (reconciler or triage), by type."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_reconciliations_total counter");
    for (t, n) in &tally.reconciled {
        let _ = writeln!(out, "tenantatlas_reconciliations_total{{type=\"{}\"}} {n}", escape(t));
    }
    let _ = writeln!(
        out,
        "# HELP tenantatlas_runs_active Runs queued or running now (all nodes)."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_runs_active gauge");
    for g in &snap.active {
        let _ = writeln!(
            out,
            "tenantatlas_runs_active{{type=\"{}\",status=\"{}\"}} {}",
            escape(&g.op_type),
            escape(&g.status),
            g.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP tenantatlas_queue_depth Queued runs that are due now (all nodes)."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_queue_depth gauge");
    let _ = writeln!(out, "tenantatlas_queue_depth {}", snap.queue_depth);
    let h = &tally.claim_latency;
    let _ = writeln!(
        out,
        "# HELP tenantatlas_claim_latency_seconds From due to claimed, for the runs this node's workers claimed."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_claim_latency_seconds histogram");
    for (le, n) in tenantatlas_engine::CLAIM_LATENCY_BUCKETS.iter().zip(h.buckets) {
        let _ = writeln!(out, "tenantatlas_claim_latency_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "tenantatlas_claim_latency_seconds_bucket{{le=\"+Inf\"}} {}",
        h.count
    );
    let _ = writeln!(out, "tenantatlas_claim_latency_seconds_sum {}", h.sum);
    let _ = writeln!(out, "tenantatlas_claim_latency_seconds_count {}", h.count);
    let _ = writeln!(
        out,
        "# HELP tenantatlas_http_requests_total Requests served by this node."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_http_requests_total counter");
    let by = state
        .http_metrics()
        .by
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for ((route, status), (n, _)) in &by {
        let _ = writeln!(
            out,
            "tenantatlas_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}
