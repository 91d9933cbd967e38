//! The active-operations widget (law 5's progress surface): only active
//! runs in the caller's scope; counted progress as a bar with
//! `processed / total` and no percentage, otherwise a spinner with elapsed
//! time.
//!
//! Live over server-sent events: the engine's change events (LISTEN/NOTIFY
//! on PostgreSQL, in-process on SQLite) wake every stream; each stream
//! re-reads the widget from the database (law 9) at most every
//! [`COALESCE`] and sends it when it changed. A run that completes or is
//! reconciled raises a change event, so it leaves the widget within one
//! update. `/admin/widget` serves the same HTML for the polling fallback.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use tenantatlas_domain::access::TenantScope;
use tenantatlas_domain::directory::User;
use tenantatlas_domain::lifecycle::StatusBucket;
use tenantatlas_domain::query::RunFilter;
use tenantatlas_engine::{Engine, Viewer};

use crate::auth::PageCaller;
use crate::render::{self, Names};
use crate::{AppState, WebError};

/// Shortest time between two renderings of one stream.
pub const COALESCE: Duration = Duration::from_millis(250);
/// Most runs the widget lists.
pub const WIDGET_RUNS: u32 = 12;

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/admin/widget", get(poll))
        .route("/admin/live", get(live))
        .route("/admin/counts", get(counts))
}

/// The problem-class counts of the caller's tenants and workspaces, as the
/// dashboards' tiles show them: the page refreshes its tiles from this
/// when the live widget changes, so tiles and widget tell one truth.
async fn counts(State(state): State<AppState>, PageCaller(user): PageCaller) -> Response {
    let summary = match state
        .engine()
        .problem_summary(
            Viewer::User(user.id),
            RunFilter::default(),
            crate::pages::DASHBOARD_WINDOW,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return WebError::from(e).page(),
    };
    let classes = |c: &tenantatlas_engine::ClassCounts| -> serde_json::Map<String, serde_json::Value> {
        c.iter().map(|(k, n)| (k.as_str().to_owned(), n.into())).collect()
    };
    let tenants: serde_json::Map<String, serde_json::Value> = summary
        .per_tenant
        .iter()
        .map(|(id, c)| (id.to_string(), classes(c).into()))
        .collect();
    let workspaces: serde_json::Map<String, serde_json::Value> = summary
        .per_workspace
        .iter()
        .map(|(id, c)| (id.to_string(), classes(c).into()))
        .collect();
    axum::Json(serde_json::json!({"tenants": tenants, "workspaces": workspaces})).into_response()
}

/// Tenant names in `user`'s scope.
pub(crate) async fn names_for(engine: &Engine, user: Option<&User>) -> Result<Names, WebError> {
    // (workspace, the tenants of it the caller is entitled to)
    let scopes: Vec<(tenantatlas_domain::ids::WorkspaceId, TenantScope)> = match user {
        Some(u) => engine
            .memberships_of(u.id)
            .await?
            .into_iter()
            .map(|m| (m.workspace_id, m.tenants))
            .collect(),
        None => engine
            .list_workspaces()
            .await?
            .into_iter()
            .map(|w| (w.id, TenantScope::All))
            .collect(),
    };
    let mut names = Names::new();
    for (ws, scope) in scopes {
        for t in engine.list_tenants(ws).await? {
            if scope.contains(t.id) {
                names.insert(t.id, t.name);
            }
        }
    }
    Ok(names)
}

/// The widget's HTML for `user`.
pub(crate) async fn widget_html(engine: &Engine, user: &User, names: &Names) -> Result<String, WebError> {
    let viewer = Viewer::User(user.id);
    let bucket = |b: StatusBucket| {
        engine.list_runs(
            viewer,
            RunFilter {
                status: Some(b.into()),
                ..RunFilter::default()
            },
            WIDGET_RUNS,
            None,
        )
    };
    let (running, queued) = tokio::join!(bucket(StatusBucket::Running), bucket(StatusBucket::Queued));
    let mut runs = running?.runs;
    runs.extend(queued?.runs);
    runs.truncate(WIDGET_RUNS as usize);
    let items: Vec<_> = runs
        .iter()
        .map(|r| render::widget_run(&engine.view(r), names))
        .collect();
    Ok(render::widget(&items))
}

async fn poll(State(state): State<AppState>, PageCaller(user): PageCaller) -> Response {
    let engine = state.engine();
    let names = match names_for(engine, Some(&user)).await {
        Ok(n) => n,
        Err(e) => return e.page(),
    };
    match widget_html(engine, &user, &names).await {
        Ok(h) => Html(h).into_response(),
        Err(e) => e.page(),
    }
}

/// What opened a stream, re-checked while it runs: a stream must not
/// outlive its session (logout, password change, disable, timeouts).
enum Credential {
    Session(String),
    Token(String),
}

/// How often an idle stream re-checks its credential.
pub const RECHECK: Duration = Duration::from_secs(30);

struct Feed {
    state: AppState,
    credential: Option<Credential>,
    user: User,
    names: Names,
    signals: tokio::sync::broadcast::Receiver<tenantatlas_domain::query::Signal>,
    last: String,
    first: bool,
}

async fn live(State(state): State<AppState>, PageCaller(user): PageCaller, headers: axum::http::HeaderMap) -> Response {
    let credential = match headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        Some(t) => Some(Credential::Token(t.trim().to_owned())),
        None => axum_extra::extract::cookie::CookieJar::from_headers(&headers)
            .get(crate::auth::cookie_name(state.config().tls))
            .map(|c| Credential::Session(c.value().to_owned())),
    };
    let signals = state.engine().signals();
    let names = match names_for(state.engine(), Some(&user)).await {
        Ok(n) => n,
        Err(e) => return e.page(),
    };
    let feed = Feed {
        state,
        credential,
        user,
        names,
        signals,
        last: String::new(),
        first: true,
    };
    Sse::new(stream_of(feed))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn stream_of(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(feed, |mut f| async move {
        loop {
            if !f.first {
                // wait for a change event; a lagging receiver has missed
                // some, which is itself a reason to re-read
                let woke = tokio::select! {
                    s = f.signals.recv() => match s {
                        Ok(tenantatlas_domain::query::Signal::Wake) => false,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                    () = tokio::time::sleep(RECHECK) => false,
                };
                if !still_signed_in(&f).await {
                    return None;
                }
                if !woke {
                    continue;
                }
                tokio::time::sleep(COALESCE).await;
                // everything that arrived meanwhile is covered by this read
                while f.signals.try_recv().is_ok() {}
            }
            f.first = false;
            let html = match widget_html(f.state.engine(), &f.user, &f.names).await {
                Ok(h) => h,
                Err(_) => continue,
            };
            if html != f.last {
                f.last.clone_from(&html);
                return Some((Ok(Event::default().event("widget").data(html)), f));
            }
        }
    })
}

/// Whether the credential that opened the stream still signs its user in.
async fn still_signed_in(f: &Feed) -> bool {
    let engine = f.state.engine();
    match &f.credential {
        Some(Credential::Session(id)) => engine
            .session_still_valid(id, f.state.config().sessions)
            .await
            .unwrap_or(false),
        Some(Credential::Token(t)) => engine.token_user(t).await.ok().flatten().is_some(),
        None => false,
    }
}
