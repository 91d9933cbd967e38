//! Server-rendered pages: the admin plane (`/admin`: workspace overview,
//! tenant dashboard, operations list, run detail, notifications) and the
//! system plane (`/system`: runs, failures, stuck, run detail with triage,
//! audit log), plus the embedded assets. Every number drills through to
//! `/admin/operations` with the list's own filter parameters.
// Handlers answer `Result<Response, Response>` (both sides are responses):
// boxing the error side would only add an allocation per failed request.
#![expect(clippy::result_large_err, reason = "both sides of a handler's result are responses")]

use std::collections::HashMap;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::{Capability, TenantScope};
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::directory::User;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId};
use tenantatlas_domain::lifecycle::{RunState, StatusFilter};
use tenantatlas_domain::notify::StartToast;
use tenantatlas_domain::params::RawParams;
use tenantatlas_domain::problem::ProblemClass;
use tenantatlas_domain::query::RunFilter;
use tenantatlas_domain::run::Run;
use tenantatlas_engine::{Engine, Initiator, Viewer};

use crate::api::{allowed_for, parse_id, parse_list, system_filter, triage};
use crate::auth::{PageCaller, PlatformOperator};
use crate::charts;
use crate::live::{names_for, widget_html};
use crate::render::{self, Chrome, Decision, Kpi, Names, Row};
use crate::{AppState, WebError};

/// How far back dashboards count completed runs: all of them, so that
/// every number is exactly the length of the list it drills through to
/// (the per-day counters make that cheap). The chart shows recent days.
pub const DASHBOARD_WINDOW: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route("/assets/{file}", get(asset))
        .route("/admin", get(overview))
        .route("/admin/tenants/{tenant}", get(dashboard))
        .route("/admin/tenants/{tenant}/runs", post(start))
        .route("/admin/operations", get(operations))
        .route("/admin/operations/{id}", get(run_page))
        .route("/admin/operations/{id}/cancel", post(cancel))
        .route("/admin/operations/{id}/retry", post(retry))
        .route("/admin/notifications", get(notifications))
        .route("/admin/notifications/{id}/read", post(mark_read))
        .route("/system", get(system_runs))
        .route("/system/failures", get(system_failures))
        .route("/system/stuck", get(system_stuck))
        .route("/system/runs/{id}", get(system_run))
        .route("/system/runs/{id}/{action}", post(system_action))
        .route("/system/audit", get(audit))
}

pub(crate) type PageResult = Result<Response, Response>;

pub(crate) fn fail(e: impl Into<WebError>) -> Response {
    e.into().page()
}

pub(crate) fn html<T: Template>(t: &T) -> PageResult {
    t.render().map(|h| Html(h).into_response()).map_err(|e| {
        tracing::error!(error = %e, "template failed");
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the page could not be drawn",
        )
        .page()
    })
}

pub(crate) async fn chrome(state: &AppState, user: &User, names: &Names) -> Result<Chrome, Response> {
    let engine = state.engine();
    // independent reads, at once
    let (memberships, unread, widget) = tokio::join!(
        engine.memberships_of(user.id),
        engine.unread_count(user.id),
        widget_html(engine, user, names),
    );
    let member = !memberships.map_err(fail)?.is_empty();
    let unread = unread.map_err(fail)?;
    // a user without memberships has no active runs in scope: the widget
    // is empty and not shown
    let widget = if member { widget.map_err(fail)? } else { String::new() };
    Ok(Chrome {
        email: user.email.clone(),
        unread,
        platform_operator: user.platform_operator,
        admin: member,
        home: if member { "/admin" } else { "/system" },
        widget,
    })
}

fn rows(engine: &Engine, runs: &[tenantatlas_domain::run::Run], names: &Names) -> Vec<Row> {
    runs.iter().map(|r| render::row(&engine.view(r), names)).collect()
}

// ---------------------------------------------------------------- assets

const APP_CSS: &str = include_str!("../assets/app.css");
const APP_JS: &str = include_str!("../assets/app.js");
const HTMX_JS: &str = include_str!("../assets/htmx.min.js");

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "htmx.min.js" => (HTMX_JS, "text/javascript; charset=utf-8"),
        _ => return WebError::not_found("asset").page(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------- overview

#[derive(Clone)]
struct TenantLine {
    name: String,
    url: String,
    kpis: Vec<Kpi>,
}

#[derive(Clone)]
struct WorkspaceBlock {
    name: String,
    kpis: Vec<Kpi>,
    tenants: Vec<TenantLine>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewT {
    chrome: Chrome,
    workspaces: Vec<WorkspaceBlock>,
    charts: Vec<(String, String)>,
}

async fn overview(State(state): State<AppState>, PageCaller(user): PageCaller) -> PageResult {
    let engine = state.engine();
    let names = names_for(engine, Some(&user)).await.map_err(fail)?;
    // independent reads, at once
    let (summary, memberships, chart, chrome) = tokio::join!(
        engine.problem_summary(Viewer::User(user.id), RunFilter::default(), DASHBOARD_WINDOW),
        engine.memberships_of(user.id),
        runs_chart(engine, Viewer::User(user.id)),
        chrome(&state, &user, &names),
    );
    let summary = summary.map_err(fail)?;
    let memberships = memberships.map_err(fail)?;
    let mut workspaces = Vec::new();
    for m in memberships {
        let ws = engine.find_workspace(&m.workspace_id.to_string()).await.map_err(fail)?;
        let Some(ws) = ws else { continue };
        let tenants = engine.list_tenants(ws.id).await.map_err(fail)?;
        let lines = tenants
            .into_iter()
            .filter(|t| match &m.tenants {
                TenantScope::All => true,
                TenantScope::Only(ids) => ids.contains(&t.id),
            })
            .map(|t| TenantLine {
                url: format!("/admin/tenants/{}", t.id),
                kpis: render::kpis(
                    &summary.per_tenant.get(&t.id).copied().unwrap_or_default(),
                    &format!("/admin/operations?tenant={}", t.id),
                ),
                name: t.name,
            })
            .collect();
        let counts = summary.per_workspace.get(&ws.id).copied().unwrap_or_default();
        workspaces.push(WorkspaceBlock {
            kpis: render::kpis(&counts, &format!("/admin/operations?workspace={}", ws.id)),
            name: ws.name,
            tenants: lines,
        });
    }
    let charts = vec![chart?];
    let chrome = chrome?;
    html(&OverviewT {
        chrome,
        workspaces,
        charts,
    })
}

/// Days the runs-per-day chart covers.
pub const CHART_DAYS: u32 = 14;

/// The runs-per-day chart for `viewer` (scoped like every read).
async fn runs_chart(engine: &Engine, viewer: Viewer) -> Result<(String, String), Response> {
    let rows = engine.runs_per_day(viewer, CHART_DAYS).await.map_err(fail)?;
    let today = engine.now().unix_micros().div_euclid(86_400_000_000);
    Ok((
        format!("Completed runs per day, last {CHART_DAYS} days (UTC)"),
        charts::runs_per_day_svg(&rows, today, i64::from(CHART_DAYS)),
    ))
}

// ---------------------------------------------------------------- dashboard

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardT {
    chrome: Chrome,
    tenant: String,
    workspace: String,
    connection: ConnectionT,
    kpis: Vec<Kpi>,
    startable: Vec<render::StartForm>,
    start_url: String,
    all_url: String,
    follow_up: Vec<Row>,
    stale: Vec<Row>,
    recent: Vec<Row>,
}

/// The tenant's connection, as the dashboard shows it.
struct ConnectionT {
    /// "Microsoft Graph (tenant …)", "Directory (folder …)", "Not configured".
    provider: String,
    /// The latest check: a run row.
    last: Option<Row>,
    /// Its checks, when it has finished.
    checks: Vec<tenantatlas_domain::connection::Check>,
    /// Whether they all passed.
    ok: bool,
}

async fn connection_view(
    engine: &Engine,
    tenant: &tenantatlas_engine::port::Tenant,
    viewer: Viewer,
    names: &Names,
) -> tenantatlas_engine::Result<ConnectionT> {
    let provider = match tenant.provider.as_deref().and_then(|p| p.split_once(':')) {
        Some(("graph", t)) => format!("Microsoft Graph (tenant {t})"),
        Some(("directory", path)) => {
            let folder = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.to_owned());
            format!("Directory (folder {folder})")
        }
        _ => "Not configured".to_owned(),
    };
    let check = engine.connection_check(viewer, tenant).await?;
    let (last, checks, ok) = match check {
        None => (None, Vec::new(), false),
        Some((run, report)) => {
            let done = run.state.status() == tenantatlas_domain::lifecycle::RunStatus::Completed;
            let row = render::row(&engine.view(&run), names);
            if done {
                (Some(row), report.checks, report.ok)
            } else {
                (Some(row), Vec::new(), false)
            }
        }
    };
    Ok(ConnectionT {
        provider,
        last,
        checks,
        ok,
    })
}

async fn dashboard(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Path(tenant): Path<String>,
) -> PageResult {
    let engine = state.engine();
    let tenant_id: TenantId = parse_id("tenant", &tenant).map_err(fail)?;
    let (tenant, membership) = engine
        .tenant_for(user.id, tenant_id, Capability::ViewRuns)
        .await
        .map_err(fail)?;
    let names = names_for(engine, Some(&user)).await.map_err(fail)?;
    let viewer = Viewer::User(user.id);
    let base = RunFilter {
        tenant: Some(tenant.id),
        ..RunFilter::default()
    };
    let list = |problem: Option<ProblemClass>, n: u32| {
        let f = RunFilter {
            problem,
            ..base.clone()
        };
        async move { engine.list_runs(viewer, f, n, None).await }
    };
    let ws_key = tenant.workspace_id.to_string();
    // independent reads, at once
    let (summary, follow_up, stale, recent, ws, chrome, connection) = tokio::join!(
        engine.problem_summary(viewer, base.clone(), DASHBOARD_WINDOW),
        list(Some(ProblemClass::NeedsFollowUp), 5),
        list(Some(ProblemClass::ActiveStale), 5),
        list(None, 10),
        engine.find_workspace(&ws_key),
        chrome(&state, &user, &names),
        connection_view(engine, &tenant, viewer, &names),
    );
    let connection = connection.map_err(fail)?;
    let summary = summary.map_err(fail)?;
    let (follow_up, stale, recent) = (follow_up.map_err(fail)?, stale.map_err(fail)?, recent.map_err(fail)?);
    let ws = ws.map_err(fail)?.map(|w| w.name).unwrap_or_default();
    let chrome = chrome?;
    let startable = engine
        .startable_types(&tenant, &membership)
        .into_iter()
        .filter_map(|op| engine.spec(op).ok())
        .map(render::start_form)
        .collect();
    html(&DashboardT {
        chrome,
        kpis: render::kpis(
            &summary.per_tenant.get(&tenant.id).copied().unwrap_or_default(),
            &format!("/admin/operations?tenant={}", tenant.id),
        ),
        start_url: format!("/admin/tenants/{}/runs", tenant.id),
        all_url: format!("/admin/operations?tenant={}", tenant.id),
        tenant: tenant.name,
        workspace: ws,
        connection,
        startable,
        follow_up: rows(engine, &follow_up.runs, &names),
        stale: rows(engine, &stale.runs, &names),
        recent: rows(engine, &recent.runs, &names),
    })
}

/// Starts from a dashboard button: answers the toast (htmx swaps it in).
async fn start(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let result = async {
        let tenant: TenantId = parse_id("tenant", &tenant)?;
        let engine = state.engine();
        engine.tenant_for(user.id, tenant, Capability::ViewRuns).await?;
        let op = engine.executable_type("type", form.get("type").map_or("", String::as_str))?;
        // a form's empty input means "the default", not an empty value
        let pairs: Vec<(String, String)> = form
            .iter()
            .filter(|(k, v)| k.as_str() != "type" && !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let params = engine.parse_params(op, RawParams::Pairs(&pairs))?;
        let started = engine.start(Initiator::User(user.id), tenant, op, params).await?;
        Ok::<_, WebError>(StartToast::for_start(op, started.run.id, started.joined))
    }
    .await;
    let htmx = headers.contains_key("hx-request");
    match result {
        Ok(toast) if htmx => Html(render::toast(&toast)).into_response(),
        Ok(toast) => Redirect::to(&toast.view_url).into_response(),
        // htmx swaps this toast in although its status is an error (app.js)
        Err(e) if htmx => {
            let res = (e.status, Html(render::error_toast(&e))).into_response();
            crate::error::with_retry_after(res, e.retry_after)
        }
        Err(e) => e.page(),
    }
}

// ---------------------------------------------------------------- operations

#[derive(Template)]
#[template(path = "operations.html")]
struct OperationsT {
    chrome: Chrome,
    tenants: Vec<(String, String, bool)>,
    types: Vec<(&'static str, &'static str, bool)>,
    buckets: Vec<(&'static str, &'static str, bool)>,
    problems: Vec<(&'static str, &'static str, bool)>,
    since: String,
    until: String,
    rows: Vec<Row>,
    next_url: Option<String>,
}

fn form_time(t: Option<tenantatlas_domain::Timestamp>) -> String {
    t.map(|t| t.to_rfc3339().get(..16).unwrap_or_default().to_owned())
        .unwrap_or_default()
}

async fn operations(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let engine = state.engine();
    let lq = parse_list(&q).map_err(fail)?;
    let names = names_for(engine, Some(&user)).await.map_err(fail)?;
    let f = lq.filter.clone();
    let page = engine
        .list_runs(Viewer::User(user.id), lq.filter, lq.limit, lq.cursor)
        .await
        .map_err(fail)?;
    let next_url = page.next_cursor.map(|c| {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, v)| k.as_str() != "cursor" && !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("cursor".into(), c.encode()));
        let qs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
        format!("/admin/operations?{}", qs.join("&"))
    });
    let mut tenants: Vec<(String, String, bool)> = names
        .iter()
        .map(|(id, n)| (id.to_string(), n.clone(), f.tenant == Some(*id)))
        .collect();
    tenants.sort_by(|a, b| a.1.cmp(&b.1));
    let chrome = chrome(&state, &user, &names).await?;
    html(&OperationsT {
        chrome,
        tenants,
        types: OperationType::ALL
            .iter()
            .map(|t| (t.as_str(), t.label(), f.op_type == Some(*t)))
            .collect(),
        buckets: StatusFilter::ALL
            .iter()
            .map(|b| (b.as_str(), b.label(), f.status == Some(*b)))
            .collect(),
        problems: ProblemClass::ALL
            .iter()
            .map(|p| (p.as_str(), p.label(), f.problem == Some(*p)))
            .collect(),
        since: form_time(f.since),
        until: form_time(f.until),
        rows: rows(engine, &page.runs, &names),
        next_url,
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------- run detail

struct DetailModel {
    label: &'static str,
    tenant: String,
    class: &'static str,
    class_label: &'static str,
    headline: String,
    next_step: String,
    actions: Vec<render::Action>,
    counted: Option<(u64, u64)>,
    eta: Option<String>,
    progress: String,
    counts: Vec<(&'static str, u64)>,
    /// (fact, value) pairs about where and how it runs.
    facts: Vec<(&'static str, String)>,
    status: String,
    attempt: u32,
    created: String,
    started: String,
    completed: String,
    initiator: String,
    failures: Vec<(&'static str, String, &'static str)>,
    related: Vec<(String, String)>,
    units: Vec<(String, String, String, String)>,
    timeline: Vec<(&'static str, String, String)>,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunT {
    chrome: Chrome,
    back_url: String,
    d: DetailModel,
}

/// Where and how a run runs: its parameters, the worker that holds (or
/// last held) it, its last heartbeat, and when a queued run is due.
fn run_facts(run: &Run, now: Timestamp) -> Vec<(&'static str, String)> {
    let ago = |t: Timestamp| {
        let secs = now.since(t).as_secs_f64();
        format!("{} ({} ago)", render::when(t), render::duration_text(secs))
    };
    let params = if run.params.is_empty() {
        "none".to_owned()
    } else {
        run.params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.canonical()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut facts = vec![("Parameters", params)];
    match (&run.state, &run.lease, &run.claim) {
        (RunState::Running, Some(lease), _) => {
            facts.push(("Held by", lease.owner.clone()));
            facts.push(("Lease until", render::when(lease.expires_at)));
        }
        (_, _, Some(claim)) => facts.push(("Last held by", claim.worker.clone())),
        _ => {}
    }
    if run.state.is_active() || run.heartbeat_at.is_some() {
        facts.push((
            "Last heartbeat",
            run.heartbeat_at.map_or_else(|| "none yet".to_owned(), ago),
        ));
    }
    if run.state == RunState::Queued && run.available_at > now {
        facts.push(("Due at", render::when(run.available_at)));
    }
    facts
}

async fn detail_model(
    engine: &Engine,
    detail: tenantatlas_engine::RunDetail,
    decision_of: impl FnOnce(&tenantatlas_domain::view::RunView) -> Decision,
    names: &Names,
    system: bool,
) -> Result<DetailModel, WebError> {
    let v = engine.view(&detail.run);
    let d = decision_of(&v);
    let (counted, eta) = match &v.progress {
        tenantatlas_domain::view::ProgressView::Counted {
            processed,
            total,
            eta_s,
        } => (
            Some((*processed, *total)),
            eta_s
                .filter(|_| v.status != tenantatlas_domain::lifecycle::RunStatus::Completed)
                .map(render::duration_text),
        ),
        _ => (None, None),
    };
    let initiator = match v.initiator {
        Some(u) => engine
            .find_user(&u.to_string())
            .await
            .ok()
            .flatten()
            .map_or_else(|| u.to_string(), |u| u.email),
        None => "system".into(),
    };
    let link = |id: RunId| {
        if system {
            format!("/system/runs/{id}")
        } else {
            tenantatlas_domain::notify::run_view_url(id)
        }
    };
    let mut related = Vec::new();
    if let Some(p) = v.parent_id {
        related.push(("Parent run".to_owned(), link(p)));
    }
    for c in &detail.children {
        related.push((format!("Child: {}", c.op_type.label()), link(c.id)));
    }
    if let Some(t) = v.tenant_id {
        related.push((
            "All operations of this tenant".into(),
            format!("/admin/operations?tenant={t}"),
        ));
        related.push((
            format!("All {} runs of this tenant", v.label),
            format!("/admin/operations?tenant={t}&type={}", v.op_type.as_str()),
        ));
    }
    Ok(DetailModel {
        label: v.label,
        tenant: render::tenant_name(v.tenant_id, names),
        class: v.problem_class.as_str(),
        class_label: v.problem_class.label(),
        headline: d.headline,
        next_step: d.next_step,
        actions: d.actions,
        counted,
        eta,
        progress: render::run_progress_text(&v),
        counts: v.summary_counts.iter().map(|(k, n)| (k.as_str(), n)).collect(),
        facts: run_facts(&detail.run, engine.now()),
        status: render::status_text(&v),
        attempt: v.attempt,
        created: render::when(v.created_at),
        started: v.started_at.map_or_else(|| "not yet".to_owned(), render::when),
        completed: v.completed_at.map_or_else(|| "not yet".to_owned(), render::when),
        initiator,
        failures: v
            .failures
            .iter()
            .map(|f| (f.reason_code.as_str(), f.message.to_string(), f.next_step))
            .collect(),
        related,
        units: detail
            .units
            .iter()
            .map(|u| {
                (
                    u.unit_key.clone(),
                    u.outcome
                        .map_or_else(|| "pending".to_owned(), |o| format!("{o:?}").to_lowercase()),
                    String::new(),
                    u.reason_code.map(|c| c.as_str().to_owned()).unwrap_or_default(),
                )
            })
            .collect(),
        timeline: detail
            .events
            .iter()
            .map(|e| {
                let mut what = e.kind.as_str().replace('_', " ");
                if let Some(a) = e.attempt {
                    what.push_str(&format!(" (attempt {a})"));
                }
                if let Some(r) = e.detail.get("reason").and_then(|r| r.as_str()) {
                    what.push_str(&format!(": {}", render::sentence(r)));
                }
                (e.kind.as_str(), render::when(e.at), what)
            })
            .collect(),
    })
}

async fn run_page(State(state): State<AppState>, PageCaller(user): PageCaller, Path(id): Path<String>) -> PageResult {
    let engine = state.engine();
    let id: RunId = parse_id("id", &id).map_err(fail)?;
    // one scoped read of the run, its timeline, units and children
    let detail = engine.run_detail(Viewer::User(user.id), id).await.map_err(fail)?;
    let (allowed, names) = tokio::join!(allowed_for(engine, &user, &detail.run), names_for(engine, Some(&user)));
    let names = names.map_err(fail)?;
    let base = format!("/admin/operations/{id}");
    // independent reads, at once
    let (d, chrome) = tokio::join!(
        detail_model(engine, detail, |v| render::decision(v, allowed, &base), &names, false),
        chrome(&state, &user, &names),
    );
    let d = d.map_err(fail)?;
    let chrome = chrome?;
    html(&RunT {
        chrome,
        back_url: "/admin/operations".into(),
        d,
    })
}

async fn cancel(State(state): State<AppState>, PageCaller(user): PageCaller, Path(id): Path<String>) -> PageResult {
    let id: RunId = parse_id("id", &id).map_err(fail)?;
    state
        .engine()
        .cancel(Initiator::User(user.id), id)
        .await
        .map_err(fail)?;
    Ok(Redirect::to(&tenantatlas_domain::notify::run_view_url(id)).into_response())
}

async fn retry(State(state): State<AppState>, PageCaller(user): PageCaller, Path(id): Path<String>) -> PageResult {
    let engine = state.engine();
    let id: RunId = parse_id("id", &id).map_err(fail)?;
    let run = engine.get_run_for(Viewer::User(user.id), id).await.map_err(fail)?;
    let tenant = run.tenant_id.ok_or_else(|| fail(WebError::not_found("run")))?;
    let started = engine
        .start(Initiator::User(user.id), tenant, run.op_type, run.params.clone())
        .await
        .map_err(fail)?;
    Ok(Redirect::to(&tenantatlas_domain::notify::run_view_url(started.run.id)).into_response())
}

// ---------------------------------------------------------------- notifications

struct NoteLine {
    run_id: String,
    title: String,
    body: String,
    view_url: String,
    read: bool,
    read_url: String,
    created: String,
    class: &'static str,
    class_label: &'static str,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsT {
    chrome: Chrome,
    items: Vec<NoteLine>,
}

async fn notifications(State(state): State<AppState>, PageCaller(user): PageCaller) -> PageResult {
    let engine = state.engine();
    let list = engine.notifications(user.id, 100).await.map_err(fail)?;
    let mut items = Vec::new();
    for n in list {
        // the class is the run's, now (law 6): the same word as every other surface
        let class = match engine.get_run_for(Viewer::User(user.id), n.run_id).await {
            Ok(r) => engine.view(&r).problem_class,
            // no longer visible (membership ended): say what the notification said
            Err(_) => ProblemClass::NeedsFollowUp,
        };
        items.push(NoteLine {
            run_id: n.run_id.to_string(),
            read_url: format!("/admin/notifications/{}/read", n.id),
            title: n.title,
            body: n.body,
            view_url: n.view_url,
            read: n.read_at.is_some(),
            created: render::when(n.created_at),
            class: class.as_str(),
            class_label: class.label(),
        });
    }
    let names = names_for(engine, Some(&user)).await.map_err(fail)?;
    let chrome = chrome(&state, &user, &names).await?;
    html(&NotificationsT { chrome, items })
}

async fn mark_read(State(state): State<AppState>, PageCaller(user): PageCaller, Path(id): Path<String>) -> PageResult {
    let engine = state.engine();
    let id: NotificationId = parse_id("id", &id).map_err(fail)?;
    let done = engine.mark_read(user.id, id).await.map_err(fail)?;
    if !done {
        return Err(fail(WebError::not_found("notification")));
    }
    Ok(Redirect::to("/admin/notifications").into_response())
}

// ---------------------------------------------------------------- system plane

#[derive(Template)]
#[template(path = "system_runs.html")]
struct SystemRunsT {
    chrome: Chrome,
    title: &'static str,
    kpis: Vec<Kpi>,
    rows: Vec<Row>,
    next_url: Option<String>,
    charts: Vec<(String, String)>,
}

async fn system_list(state: &AppState, user: &User, kind: &'static str, q: &HashMap<String, String>) -> PageResult {
    let engine = state.engine();
    let lq = parse_list(q).map_err(fail)?;
    let names = names_for(engine, None).await.map_err(fail)?;
    let filter = system_filter(kind, lq.filter);
    let page = engine
        .list_runs(Viewer::Everything, filter.clone(), lq.limit, lq.cursor)
        .await
        .map_err(fail)?;
    let summary = engine
        .problem_summary(Viewer::Everything, RunFilter::default(), DASHBOARD_WINDOW)
        .await
        .map_err(fail)?;
    let path = match kind {
        "failures" => "/system/failures",
        "stuck" => "/system/stuck",
        _ => "/system",
    };
    let mut rows = rows(engine, &page.runs, &names);
    for r in &mut rows {
        r.url = format!("/system/runs/{}", r.id);
    }
    let charts = if kind == "runs" {
        let durations: Vec<(&'static str, Vec<Duration>)> = engine
            .recent_durations_by_type(200)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|(op, d)| (op.label(), d))
            .collect();
        vec![
            runs_chart(engine, Viewer::Everything).await?,
            (
                "Duration of the last 200 successful runs per type".to_owned(),
                charts::durations_svg(&durations),
            ),
        ]
    } else {
        Vec::new()
    };
    let chrome = chrome(state, user, &names).await?;
    html(&SystemRunsT {
        chrome,
        title: match kind {
            "failures" => "Failures",
            "stuck" => "Stuck",
            _ => "All runs",
        },
        kpis: render::kpis(&summary.total, "/system"),
        rows,
        next_url: page.next_cursor.map(|c| format!("{path}?cursor={}", c.encode())),
        charts,
    })
}

async fn system_runs(
    State(state): State<AppState>,
    op: PlatformOperator,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    system_list(&state, &op.0, "runs", &q).await
}

async fn system_failures(
    State(state): State<AppState>,
    op: PlatformOperator,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    system_list(&state, &op.0, "failures", &q).await
}

async fn system_stuck(
    State(state): State<AppState>,
    op: PlatformOperator,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    system_list(&state, &op.0, "stuck", &q).await
}

async fn system_run(State(state): State<AppState>, op: PlatformOperator, Path(id): Path<String>) -> PageResult {
    let engine = state.engine();
    let id: RunId = parse_id("id", &id).map_err(fail)?;
    let names = names_for(engine, None).await.map_err(fail)?;
    let base = format!("/system/runs/{id}");
    let allowed = render::Allowed {
        cancel: true,
        retry: true,
        reconcile: true,
    };
    let detail = engine.run_detail(Viewer::Everything, id).await.map_err(fail)?;
    let d = detail_model(
        engine,
        detail,
        |v| {
            let mut a = allowed;
            a.retry = v.tenant_id.is_some();
            render::decision(v, a, &base)
        },
        &names,
        true,
    )
    .await
    .map_err(fail)?;
    let chrome = chrome(&state, &op.0, &names).await?;
    html(&RunT {
        chrome,
        back_url: "/system".into(),
        d,
    })
}

#[derive(serde::Deserialize)]
struct TriageForm {
    #[serde(default)]
    reason: Option<String>,
}

async fn system_action(
    State(state): State<AppState>,
    op: PlatformOperator,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<TriageForm>, axum::extract::rejection::FormRejection>,
) -> PageResult {
    let id: RunId = parse_id("id", &id).map_err(fail)?;
    if !["reconcile", "retry", "cancel"].contains(&action.as_str()) {
        return Err(fail(WebError::not_found("action")));
    }
    let reason = form.ok().and_then(|Form(f)| f.reason);
    let run = triage(state.engine(), &op.0, id, &action, reason.as_deref())
        .await
        .map_err(fail)?;
    Ok(Redirect::to(&format!("/system/runs/{}", run.id)).into_response())
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditT {
    chrome: Chrome,
    entries: Vec<(String, String, String, String)>,
}

async fn audit(State(state): State<AppState>, op: PlatformOperator) -> PageResult {
    let engine = state.engine();
    let log = engine.audit_log(200).await.map_err(fail)?;
    // names, not ids: who did it and to what
    let emails: HashMap<String, String> = engine
        .users()
        .await
        .map_err(fail)?
        .into_iter()
        .map(|u| (u.id.to_string(), u.email))
        .collect();
    let workspaces: HashMap<String, String> = engine
        .list_workspaces()
        .await
        .map_err(fail)?
        .into_iter()
        .map(|w| (w.id.to_string(), w.name))
        .collect();
    let mut tenants: HashMap<String, String> = HashMap::new();
    let mut runs: HashMap<String, String> = HashMap::new();
    let mut entries = Vec::new();
    for a in log {
        let e = a.entry;
        let who = match e.actor {
            tenantatlas_domain::directory::Actor::User(u) => {
                emails.get(&u.to_string()).cloned().unwrap_or_else(|| u.to_string())
            }
            tenantatlas_domain::directory::Actor::System => "system".into(),
            tenantatlas_domain::directory::Actor::Cli => "command line".into(),
        };
        let id = e.target_id.clone().unwrap_or_default();
        let detail_name = e.detail.get("name").and_then(|n| n.as_str()).map(str::to_owned);
        let target = match e.target_type.as_deref() {
            Some("user") => {
                let email = emails.get(&id).cloned().unwrap_or_else(|| id.clone());
                match (e.action.starts_with("token."), detail_name) {
                    (true, Some(n)) => format!("token {n:?} of {email}"),
                    _ => format!("user {email}"),
                }
            }
            Some("workspace") => format!("workspace {}", workspaces.get(&id).cloned().unwrap_or(id)),
            Some("tenant") => {
                if !tenants.contains_key(&id) {
                    let name = match id.parse() {
                        Ok(t) => engine.get_tenant(t).await.ok().flatten().map(|t| t.name),
                        Err(_) => None,
                    };
                    tenants.insert(id.clone(), name.unwrap_or_else(|| id.clone()));
                }
                format!("tenant {}", tenants[&id])
            }
            Some("run") => {
                if !runs.contains_key(&id) {
                    let label = match id.parse() {
                        Ok(r) => engine
                            .get_run_for(Viewer::Everything, r)
                            .await
                            .ok()
                            .map(|r| format!("{} run {}", r.op_type.label(), &id[..8.min(id.len())])),
                        Err(_) => None,
                    };
                    runs.insert(id.clone(), label.unwrap_or_else(|| format!("run {id}")));
                }
                runs[&id].clone()
            }
            Some("schedule") => format!("schedule {:?}", detail_name.unwrap_or(id)),
            Some(other) => format!("{other} {id}"),
            None => String::new(),
        };
        let place = e
            .workspace_id
            .map(|w| workspaces.get(&w.to_string()).cloned().unwrap_or_else(|| w.to_string()));
        let target = match place {
            Some(p) if !target.starts_with("workspace ") => format!("{target} (in {p})"),
            _ => target,
        };
        entries.push((render::when(e.at), who, e.action, target));
    }
    let names = Names::new();
    let chrome = chrome(&state, &op.0, &names).await?;
    html(&AuditT { chrome, entries })
}
