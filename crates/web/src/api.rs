//! `/api/v1` — the JSON API (CONTRACT.md). Every route takes an
//! [`ApiCaller`] or a [`PlatformOperator`]; every read is scoped with
//! `Viewer::User` (law 10); errors are `{"error": {…}}`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::Capability;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::directory::{Actor, AuditEntry};
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId};
use tenantatlas_domain::lifecycle::StatusFilter;
use tenantatlas_domain::notify::StartToast;
use tenantatlas_domain::params::RawParams;
use tenantatlas_domain::problem::ProblemClass;
use tenantatlas_domain::query::{Cursor, RunFilter};
use tenantatlas_domain::run::Run;
use tenantatlas_engine::{CancelOutcome, Engine, Initiator, Viewer};

use crate::auth::{ApiCaller, PlatformOperator};
use crate::render::{self, Allowed};
use crate::{AppState, WebError};

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/tenants/{tenant}/runs", post(start))
        .route("/api/v1/tenants/{tenant}/verify", post(verify))
        .route("/api/v1/tenants/{tenant}/connection", get(connection))
        .route("/api/v1/runs", get(list))
        .route("/api/v1/runs/{id}", get(detail))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/runs/{id}/retry", post(retry))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/notifications/{id}/read", post(mark_read))
        .route("/api/v1/system/runs", get(system_runs))
        .route("/api/v1/system/failures", get(system_failures))
        .route("/api/v1/system/stuck", get(system_stuck))
        .route("/api/v1/system/runs/{id}/reconcile", post(system_reconcile))
        .route("/api/v1/system/runs/{id}/retry", post(system_retry))
        .route("/api/v1/system/runs/{id}/cancel", post(system_cancel))
}

/// Parses an id path segment, naming the field.
pub(crate) fn parse_id<T: From<uuid::Uuid>>(field: &str, s: &str) -> Result<T, WebError> {
    uuid::Uuid::parse_str(s)
        .map(T::from)
        .map_err(|_| WebError::invalid(field, "must be a UUID"))
}

/// The query of an API request, as given: every pair, in order.
pub(crate) type ApiQuery = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

/// An API query, strictly: a key given twice or with an empty value is
/// refused, naming it, rather than silently dropped or ignored (the pages
/// keep the forms' empty "any" values).
pub(crate) fn strict_query(q: ApiQuery) -> Result<HashMap<String, String>, WebError> {
    let Query(pairs) = q.map_err(|e| WebError::invalid("query", e.body_text()))?;
    let mut out = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if v.trim().is_empty() {
            return Err(WebError::invalid(
                &k,
                "must not be empty; leave the parameter out instead",
            ));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(WebError::invalid(&k, "is given more than once"));
        }
    }
    Ok(out)
}

/// A JSON request body: 413 `payload_too_large` beyond the limit (2 MB),
/// 422 naming `body` when it is not JSON.
pub(crate) fn json_body(body: Result<Json<Value>, axum::extract::rejection::JsonRejection>) -> Result<Value, WebError> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the 2 MB this API accepts",
        )),
        Err(e) => Err(WebError::invalid(
            "body",
            format!("must be a JSON object: {}", e.body_text()),
        )),
    }
}

/// A list query: filters (the list's and the dashboards' shared
/// parameters), page size and cursor.
pub(crate) struct ListQuery {
    pub filter: RunFilter,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

fn non_empty<'a>(q: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A time from RFC 3339 or the `datetime-local` form (`2026-11-23T10:00`,
/// read as UTC).
pub(crate) fn parse_time(field: &str, s: &str) -> Result<Timestamp, WebError> {
    Timestamp::parse_rfc3339(field, s)
        .or_else(|_| Timestamp::parse_rfc3339(field, &format!("{s}:00Z")))
        .map_err(|_| WebError::invalid(field, "must be an RFC 3339 time (2026-11-23T10:00:00Z)"))
}

/// The query parameters of every run list (API and pages), with what
/// each means: the one list `parse_list` accepts and the OpenAPI document
/// describes.
pub const LIST_PARAMS: [(&str, &str); 10] = [
    ("workspace", "Runs of this workspace (id)."),
    ("tenant", "Runs of this tenant (id)."),
    ("type", "Runs of this operation type."),
    ("status", "Runs in this status bucket."),
    ("problem", "Runs of this problem class, as of now."),
    ("since", "Runs created at or after this time (RFC 3339)."),
    ("until", "Runs created before this time (RFC 3339)."),
    ("limit", "Runs per page, 1 to 500 (default 50)."),
    ("cursor", "The `next_cursor` of the previous page."),
    (
        "clear",
        "Accepted and ignored (the pages use it to forget remembered filters).",
    ),
];

pub(crate) fn parse_list(q: &HashMap<String, String>) -> Result<ListQuery, WebError> {
    if let Some(k) = q.keys().find(|k| !LIST_PARAMS.iter().any(|(p, _)| p == k)) {
        return Err(WebError::invalid(
            k,
            "is not a filter; use workspace, tenant, type, status, problem, since, until, limit or cursor",
        ));
    }
    let mut filter = RunFilter::default();
    if let Some(v) = non_empty(q, "workspace") {
        filter.workspace = Some(parse_id("workspace", v)?);
    }
    if let Some(v) = non_empty(q, "tenant") {
        filter.tenant = Some(parse_id("tenant", v)?);
    }
    if let Some(v) = non_empty(q, "type") {
        filter.op_type = Some(OperationType::parse("type", v)?);
    }
    if let Some(v) = non_empty(q, "status") {
        filter.status = Some(StatusFilter::parse("status", v)?);
    }
    if let Some(v) = non_empty(q, "problem") {
        filter.problem = Some(ProblemClass::parse("problem", v)?);
    }
    if let Some(v) = non_empty(q, "since") {
        filter.since = Some(parse_time("since", v)?);
    }
    if let Some(v) = non_empty(q, "until") {
        filter.until = Some(parse_time("until", v)?);
    }
    let limit = match non_empty(q, "limit") {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| WebError::invalid("limit", "must be a whole number from 1 to 500"))?,
        None => 50,
    };
    let cursor = non_empty(q, "cursor")
        .map(|c| Cursor::decode("cursor", c))
        .transpose()?;
    Ok(ListQuery { filter, limit, cursor })
}

/// What a user may do on a run (the decision's buttons).
pub(crate) async fn allowed_for(engine: &Engine, user: &tenantatlas_domain::directory::User, run: &Run) -> Allowed {
    let Some(tenant) = run.tenant_id else {
        return Allowed::default();
    };
    let cancel = engine.tenant_for(user.id, tenant, Capability::CancelRuns).await.is_ok();
    let retry = match engine.spec(run.op_type).ok().and_then(|s| s.start_capability) {
        Some(cap) => engine.tenant_for(user.id, tenant, cap).await.is_ok(),
        None => false,
    };
    Allowed {
        cancel,
        retry,
        reconcile: false,
    }
}

/// A run's detail document: the run, its decision, timeline and links.
pub(crate) async fn detail_json(engine: &Engine, run: &Run, allowed: Allowed, base: &str) -> Result<Value, WebError> {
    let view = engine.view(run);
    let decision = render::decision(&view, allowed, base);
    let timeline: Vec<Value> = engine
        .timeline(run)
        .await?
        .iter()
        .map(|e| {
            json!({
                "kind": e.kind.as_str(), "at": e.at.to_rfc3339(), "attempt": e.attempt,
                "actor_id": e.actor_id, "detail": e.detail,
            })
        })
        .collect();
    let mut related = vec![json!({"rel": "self", "href": view.view_url})];
    if let Some(p) = run.parent_id {
        related.push(json!({"rel": "parent", "href": tenantatlas_domain::notify::run_view_url(p)}));
    }
    if let Some(t) = run.tenant_id {
        related.push(json!({"rel": "tenant_operations", "href": format!("/admin/operations?tenant={t}")}));
        related.push(
            json!({"rel": "same_type", "href": format!("/admin/operations?tenant={t}&type={}", run.op_type.as_str())}),
        );
    }
    let mut doc = serde_json::to_value(&view)
        .map_err(|e| WebError::from(tenantatlas_engine::EngineError::Internal(e.to_string())))?;
    if let Some(o) = doc.as_object_mut() {
        o.insert("decision".into(), serde_json::to_value(decision).unwrap_or(Value::Null));
        o.insert("timeline".into(), Value::Array(timeline));
        o.insert("related".into(), Value::Array(related));
    }
    Ok(doc)
}

fn view_json(engine: &Engine, run: &Run) -> Value {
    serde_json::to_value(engine.view(run)).unwrap_or(Value::Null)
}

/// A page of runs as CONTRACT.md's `{"runs": […], "next_cursor": …}`.
fn page_json(engine: &Engine, page: &tenantatlas_domain::query::RunPage) -> Json<Value> {
    let runs: Vec<Value> = page.runs.iter().map(|r| view_json(engine, r)).collect();
    Json(json!({"runs": runs, "next_cursor": page.next_cursor.map(|c| c.encode())}))
}

async fn start(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(tenant): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, WebError> {
    let tenant: TenantId = parse_id("tenant", &tenant)?;
    let body = json_body(body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| WebError::invalid("body", "must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !["type", "params"].contains(&k.as_str())) {
        return Err(WebError::invalid(k, "is not accepted; send type and params"));
    }
    let op = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| WebError::invalid("type", "is required (a string such as inventory.sync)"))?;
    // authorize before validating parameters: a non-member learns nothing
    let engine = state.engine();
    engine.tenant_for(user.id, tenant, Capability::ViewRuns).await?;
    let op = engine.executable_type("type", op)?;
    let empty = json!({});
    let params = match obj.get("params") {
        None => &empty,
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err(WebError::invalid("params", "must be a JSON object (or left out)")),
    };
    let params = engine.parse_params(op, RawParams::Json(params))?;
    let started = engine.start(Initiator::User(user.id), tenant, op, params).await?;
    Ok(started_response(engine, op, &started))
}

/// Starts the tenant's connection check (`provider.verify`; needs
/// `tenants.manage`), answered like a start.
async fn verify(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(tenant): Path<String>,
) -> Result<Response, WebError> {
    let tenant: TenantId = parse_id("tenant", &tenant)?;
    let engine = state.engine();
    engine.tenant_for(user.id, tenant, Capability::ViewRuns).await?;
    let op = engine.executable_type("type", OperationType::ProviderVerify.as_str())?;
    let params = engine.parse_params(op, RawParams::Json(&json!({})))?;
    let started = engine.start(Initiator::User(user.id), tenant, op, params).await?;
    Ok(started_response(engine, op, &started))
}

/// The tenant's connection: its provider and its latest check with the
/// check's answer (CONTRACT.md's `tenant verify --json` shape).
async fn connection(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, WebError> {
    let tenant: TenantId = parse_id("tenant", &tenant)?;
    let engine = state.engine();
    let (t, _) = engine.tenant_for(user.id, tenant, Capability::ViewRuns).await?;
    Ok(Json(connection_json(engine, &t, Viewer::User(user.id)).await?))
}

/// `{"tenant_id", "provider", "last_check": null | {"run", "report"}}`;
/// the report is `null` while the check is active.
pub(crate) async fn connection_json(
    engine: &Engine,
    t: &tenantatlas_engine::port::Tenant,
    viewer: Viewer,
) -> Result<Value, WebError> {
    let provider = t.provider.as_deref().and_then(|p| p.split_once(':')).map(|(k, _)| k);
    let last = match engine.connection_check(viewer, t).await? {
        None => Value::Null,
        Some((run, report)) => {
            let done = run.state.status() == tenantatlas_domain::lifecycle::RunStatus::Completed;
            json!({"run": view_json(engine, &run), "report": if done { json!(report) } else { Value::Null }})
        }
    };
    Ok(json!({"tenant_id": t.id, "provider": provider, "last_check": last}))
}

/// A start's answer: 202 with a new run, 200 when it joined an active one.
fn started_response(engine: &Engine, op: OperationType, started: &tenantatlas_engine::Started) -> Response {
    let toast = StartToast::for_start(op, started.run.id, started.joined);
    let status = if started.joined {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        Json(json!({"run": view_json(engine, &started.run), "joined": started.joined, "toast": toast})),
    )
        .into_response()
}

/// Starts a run's type again on its tenant with the same parameters, as
/// the caller (who needs the type's start capability); a run like it that
/// is still active is joined.
async fn retry(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id: RunId = parse_id("id", &id)?;
    let engine = state.engine();
    let run = engine.get_run_for(Viewer::User(user.id), id).await?;
    let Some(tenant) = run.tenant_id else {
        return Err(WebError::new(
            StatusCode::CONFLICT,
            "conflict",
            "system runs start on their schedule",
        ));
    };
    let started = engine
        .start(Initiator::User(user.id), tenant, run.op_type, run.params.clone())
        .await?;
    Ok(started_response(engine, run.op_type, &started))
}

async fn list(State(state): State<AppState>, ApiCaller(user): ApiCaller, q: ApiQuery) -> Result<Json<Value>, WebError> {
    let q = strict_query(q)?;
    let lq = parse_list(&q)?;
    let engine = state.engine();
    let page = engine
        .list_runs(Viewer::User(user.id), lq.filter, lq.limit, lq.cursor)
        .await?;
    Ok(page_json(engine, &page))
}

async fn detail(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let id: RunId = parse_id("id", &id)?;
    let engine = state.engine();
    let run = engine.get_run_for(Viewer::User(user.id), id).await?;
    let allowed = allowed_for(engine, &user, &run).await;
    Ok(Json(
        detail_json(engine, &run, allowed, &format!("/api/v1/runs/{id}")).await?,
    ))
}

async fn cancel(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let id: RunId = parse_id("id", &id)?;
    let engine = state.engine();
    let run = match engine.cancel(Initiator::User(user.id), id).await? {
        CancelOutcome::Cancelled(r) | CancelOutcome::Requested(r) | CancelOutcome::AlreadyCompleted(r) => r,
    };
    Ok(Json(view_json(engine, &run)))
}

pub(crate) fn notification_json(n: &tenantatlas_domain::notify::Notification) -> Value {
    json!({
        "id": n.id, "run_id": n.run_id, "title": n.title, "body": n.body, "view_url": n.view_url,
        "read": n.read_at.is_some(), "created_at": n.created_at.to_rfc3339(),
    })
}

async fn notifications(State(state): State<AppState>, ApiCaller(user): ApiCaller) -> Result<Json<Value>, WebError> {
    let engine = state.engine();
    let list = engine.notifications(user.id, 100).await?;
    let unread = engine.unread_count(user.id).await?;
    let items: Vec<Value> = list.iter().map(notification_json).collect();
    Ok(Json(json!({"notifications": items, "unread": unread})))
}

async fn mark_read(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let id: NotificationId = parse_id("id", &id)?;
    let engine = state.engine();
    let done = engine.mark_read(user.id, id).await?;
    if !done {
        return Err(WebError::not_found("notification"));
    }
    Ok(Json(json!({"id": id, "read": true})))
}

/// The system plane's lists.
pub(crate) fn system_filter(kind: &str, mut f: RunFilter) -> RunFilter {
    match kind {
        "failures" => f.problem = f.problem.or(Some(ProblemClass::NeedsFollowUp)),
        "stuck" => f.problem = f.problem.or(Some(ProblemClass::ActiveStale)),
        _ => {}
    }
    f
}

async fn system_list(state: &AppState, kind: &str, q: &HashMap<String, String>) -> Result<Json<Value>, WebError> {
    let lq = parse_list(q)?;
    let engine = state.engine();
    let page = engine
        .list_runs(Viewer::Everything, system_filter(kind, lq.filter), lq.limit, lq.cursor)
        .await?;
    Ok(page_json(engine, &page))
}

async fn system_runs(
    State(state): State<AppState>,
    _op: PlatformOperator,
    q: ApiQuery,
) -> Result<Json<Value>, WebError> {
    system_list(&state, "runs", &strict_query(q)?).await
}

async fn system_failures(
    State(state): State<AppState>,
    _op: PlatformOperator,
    q: ApiQuery,
) -> Result<Json<Value>, WebError> {
    system_list(&state, "failures", &strict_query(q)?).await
}

async fn system_stuck(
    State(state): State<AppState>,
    _op: PlatformOperator,
    q: ApiQuery,
) -> Result<Json<Value>, WebError> {
    system_list(&state, "stuck", &strict_query(q)?).await
}

/// Triage on the system plane, each written to the audit log.
pub(crate) async fn triage(
    engine: &Engine,
    operator: &tenantatlas_domain::directory::User,
    id: RunId,
    action: &str,
    reason: Option<&str>,
) -> Result<Run, WebError> {
    let run = engine.get_run_for(Viewer::Everything, id).await?;
    let result = match action {
        "reconcile" => match engine
            .reconcile_now(
                id,
                operator.id,
                reason.ok_or_else(|| WebError::invalid("reason", "is required: say why the run is ended"))?,
            )
            .await?
        {
            tenantatlas_engine::Completion::Completed { run, .. } => *run,
            tenantatlas_engine::Completion::AlreadyCompleted(r) | tenantatlas_engine::Completion::Fenced(r) => *r,
        },
        "cancel" => match engine.cancel(Initiator::System, id).await? {
            CancelOutcome::Cancelled(r) | CancelOutcome::Requested(r) | CancelOutcome::AlreadyCompleted(r) => *r,
        },
        "retry" => {
            let Some(tenant) = run.tenant_id else {
                return Err(WebError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "system runs start on their schedule",
                ));
            };
            engine
                .start(Initiator::System, tenant, run.op_type, run.params.clone())
                .await?
                .run
        }
        _ => return Err(WebError::not_found("action")),
    };
    engine
        .record_audit(&AuditEntry {
            at: engine.now(),
            actor: Actor::User(operator.id),
            workspace_id: run.workspace_id,
            tenant_id: run.tenant_id,
            action: format!("run.{action}"),
            target_type: Some("run".into()),
            target_id: Some(id.to_string()),
            detail: json!({"result_run": result.id, "plane": "system", "reason": reason}),
        })
        .await?;
    Ok(result)
}

async fn system_action(
    state: &AppState,
    op: &PlatformOperator,
    id: &str,
    action: &str,
) -> Result<Json<Value>, WebError> {
    let id: RunId = parse_id("id", id)?;
    let run = triage(state.engine(), &op.0, id, action, None).await?;
    Ok(Json(view_json(state.engine(), &run)))
}

async fn system_reconcile(
    State(state): State<AppState>,
    op: PlatformOperator,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, WebError> {
    let id: RunId = parse_id("id", &id)?;
    let body = json_body(body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| WebError::invalid("body", "must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| k.as_str() != "reason") {
        return Err(WebError::invalid(k, "is not accepted; send reason"));
    }
    let reason = obj.get("reason").and_then(Value::as_str);
    let run = triage(state.engine(), &op.0, id, "reconcile", reason).await?;
    Ok(Json(view_json(state.engine(), &run)))
}

async fn system_retry(
    State(state): State<AppState>,
    op: PlatformOperator,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    system_action(&state, &op, &id, "retry").await
}

async fn system_cancel(
    State(state): State<AppState>,
    op: PlatformOperator,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    system_action(&state, &op, &id, "cancel").await
}

/// What an API route takes and answers, for the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// No query parameters; answers the named component schema.
    Plain(&'static str),
    /// The run-list query parameters ([`LIST_PARAMS`]); answers a page.
    List,
    /// A start request body; answers the started (or joined) run.
    Start,
    /// No body; starts a run again: answers the started (or joined) run.
    Restart,
    /// A JSON request body (the first named schema); answers the second.
    Body(&'static str, &'static str),
    /// A JSON request body that creates something: 201 with the second.
    Create(&'static str, &'static str),
}

/// One API route.
#[derive(Clone, Copy, Debug)]
pub struct ApiRoute {
    /// `get` or `post`.
    pub method: &'static str,
    /// The path, with `{name}` parameters.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// What it takes and answers.
    pub shape: Shape,
}

const fn route(method: &'static str, path: &'static str, summary: &'static str, shape: Shape) -> ApiRoute {
    ApiRoute {
        method,
        path,
        summary,
        shape,
    }
}

/// Every API route, for the OpenAPI document and the route-inventory test.
pub const ROUTES: &[ApiRoute] = &[
    route("get", "/api/v1/openapi.json", "This document.", Shape::Plain("")),
    route(
        "post",
        "/api/v1/tenants/{tenant}/runs",
        "Start a run (202 queued) or join the identical active run (200).",
        Shape::Start,
    ),
    route(
        "post",
        "/api/v1/tenants/{tenant}/verify",
        "Start the tenant's connection check (provider.verify; needs tenants.manage); joins an active one.",
        Shape::Restart,
    ),
    route(
        "get",
        "/api/v1/tenants/{tenant}/connection",
        "The tenant's provider and its latest connection check with the check's answer.",
        Shape::Plain("Connection"),
    ),
    route(
        "get",
        "/api/v1/runs",
        "Runs visible to the caller, newest first.",
        Shape::List,
    ),
    route(
        "get",
        "/api/v1/runs/{id}",
        "A run with its decision, timeline and related links.",
        Shape::Plain("RunDetail"),
    ),
    route(
        "post",
        "/api/v1/runs/{id}/cancel",
        "Cancel a run (needs runs.cancel).",
        Shape::Plain("Run"),
    ),
    route(
        "post",
        "/api/v1/runs/{id}/retry",
        "Start the run's type again with the same parameters (needs the type's start capability); joins an active run like it.",
        Shape::Restart,
    ),
    route(
        "get",
        "/api/v1/notifications",
        "The caller's notifications and unread count.",
        Shape::Plain("Notifications"),
    ),
    route(
        "post",
        "/api/v1/notifications/{id}/read",
        "Mark a notification read.",
        Shape::Plain("Read"),
    ),
    route("get", "/api/v1/system/runs", "System plane: every run.", Shape::List),
    route(
        "get",
        "/api/v1/system/failures",
        "System plane: runs that need follow-up.",
        Shape::List,
    ),
    route(
        "get",
        "/api/v1/system/stuck",
        "System plane: runs that are likely stale.",
        Shape::List,
    ),
    route(
        "post",
        "/api/v1/system/runs/{id}/reconcile",
        "System plane: fail an active run now as reconciled, saying why (audited); its worker's later results are ignored.",
        Shape::Body("ReconcileRequest", "Run"),
    ),
    route(
        "post",
        "/api/v1/system/runs/{id}/retry",
        "System plane: start again as a system run (audited).",
        Shape::Plain("Run"),
    ),
    route(
        "post",
        "/api/v1/system/runs/{id}/cancel",
        "System plane: cancel (audited).",
        Shape::Plain("Run"),
    ),
    route(
        "get",
        "/api/v1/tokens",
        "The caller's API tokens (never their secrets).",
        Shape::Plain("Tokens"),
    ),
    route(
        "post",
        "/api/v1/tokens",
        "Create an API token for the caller; its secret is in this answer only (audited).",
        Shape::Create("TokenRequest", "IssuedToken"),
    ),
    route(
        "post",
        "/api/v1/tokens/{token}/revoke",
        "Revoke one of the caller's tokens (a platform operator: anyone's); the next request with it is refused (audited).",
        Shape::Plain("Token"),
    ),
    route(
        "get",
        "/api/v1/workspaces/{workspace}/members",
        "A workspace's members (needs members.manage).",
        Shape::Plain("Members"),
    ),
    route(
        "post",
        "/api/v1/workspaces/{workspace}/members/{user}/role",
        "Change a member's role, keeping their tenants; a workspace keeps an owner (needs members.manage; audited).",
        Shape::Body("RoleRequest", "Member"),
    ),
    route(
        "post",
        "/api/v1/workspaces/{workspace}/members/{user}/remove",
        "Remove a member; a workspace keeps an owner (needs members.manage; audited). Answers the membership that ended.",
        Shape::Plain("Member"),
    ),
    route(
        "get",
        "/api/v1/schedules",
        "The schedules of the tenants the caller sees runs of (platform operators: all).",
        Shape::Plain("Schedules"),
    ),
    route(
        "post",
        "/api/v1/schedules/{schedule}/remove",
        "Remove a schedule (needs the capability its type's start needs; audited). Its runs stay.",
        Shape::Plain("Schedule"),
    ),
    route(
        "get",
        "/api/v1/system/users",
        "System plane: every user.",
        Shape::Plain("Users"),
    ),
    route(
        "post",
        "/api/v1/system/users/{user}/disable",
        "System plane: disable a user; their sessions and tokens stop working at once (audited).",
        Shape::Plain("User"),
    ),
];

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi_document() -> Value {
    crate::openapi::document(ROUTES)
}

/// Served to anyone: integrators and tools fetch it first.
async fn openapi() -> Json<Value> {
    Json(openapi_document())
}
