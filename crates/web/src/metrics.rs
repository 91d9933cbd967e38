//! `/metrics` (Prometheus text) and `/healthz`.
//!
//! `/metrics` answers platform operators only (a scraper sends a platform
//! operator's API token); `/healthz` answers anyone. Run figures come from
//! the database, so every node of a cluster reports
//! the same totals; request figures are this node's.

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

async fn healthz(State(state): State<AppState>) -> Response {
    match state.engine().store().ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n").into_response()
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn metrics(State(state): State<AppState>, _op: crate::auth::PlatformOperator) -> Response {
    let engine = state.engine();
    let snap = match engine.store().metrics(engine.now()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database does not answer");
            return (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n").into_response();
        }
    };
    let mut out = String::new();
    let mut started: BTreeMap<&str, u64> = BTreeMap::new();
    let mut active: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut reconciled: BTreeMap<&str, u64> = BTreeMap::new();
    let mut completed: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for g in &snap.runs {
        *started.entry(&g.op_type).or_default() += g.count;
        match g.outcome.as_deref() {
            Some(o) => *completed.entry((&g.op_type, o)).or_default() += g.count,
            None => *active.entry((&g.op_type, &g.status)).or_default() += g.count,
        }
        if g.reconciled {
            *reconciled.entry(&g.op_type).or_default() += g.count;
        }
    }
    let _ = writeln!(out, "# HELP tenantatlas_runs_started_total Runs started, by type.");
    let _ = writeln!(out, "# TYPE tenantatlas_runs_started_total counter");
    for (t, n) in &started {
        let _ = writeln!(out, "tenantatlas_runs_started_total{{type=\"{}\"}} {n}", escape(t));
    }
    let _ = writeln!(
        out,
        "# HELP tenantatlas_runs_completed_total Runs completed, by type and outcome."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_runs_completed_total counter");
    for ((t, o), n) in &completed {
        let _ = writeln!(
            out,
            "tenantatlas_runs_completed_total{{type=\"{}\",outcome=\"{}\"}} {n}",
            escape(t),
            escape(o)
        );
    }
    let _ = writeln!(out, "# HELP tenantatlas_runs_active Runs queued or running now.");
    let _ = writeln!(out, "# TYPE tenantatlas_runs_active gauge");
    for ((t, s), n) in &active {
        let _ = writeln!(
            out,
            "tenantatlas_runs_active{{type=\"{}\",status=\"{}\"}} {n}",
            escape(t),
            escape(s)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tenantatlas_reconciliations_total Runs completed by the reconciler."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_reconciliations_total counter");
    for (t, n) in &reconciled {
        let _ = writeln!(out, "tenantatlas_reconciliations_total{{type=\"{}\"}} {n}", escape(t));
    }
    let _ = writeln!(out, "# HELP tenantatlas_queue_depth Queued runs that are due.");
    let _ = writeln!(out, "# TYPE tenantatlas_queue_depth gauge");
    let _ = writeln!(out, "tenantatlas_queue_depth {}", snap.queue_depth);
    let mut lat: Vec<f64> = snap.claim_latencies.iter().map(Duration::as_secs_f64).collect();
    lat.sort_by(f64::total_cmp);
    let _ = writeln!(
        out,
        "# HELP tenantatlas_claim_latency_seconds Start-to-claim latency of the runs running now."
    );
    let _ = writeln!(out, "# TYPE tenantatlas_claim_latency_seconds summary");
    for q in [0.5, 0.99] {
        let v = if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * q).round() as usize]
        };
        let _ = writeln!(out, "tenantatlas_claim_latency_seconds{{quantile=\"{q}\"}} {v}");
    }
    let _ = writeln!(out, "tenantatlas_claim_latency_seconds_sum {}", lat.iter().sum::<f64>());
    let _ = writeln!(out, "tenantatlas_claim_latency_seconds_count {}", lat.len());
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
