//! Administration: API tokens (each user's own), workspace members (for
//! those who may manage them), schedules, and users (platform operators) —
//! in the JSON API and on the settings page. Every change is authorized by
//! the engine and audited in the same transaction.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use serde_json::{Value, json};
use tenantatlas_domain::access::{Capability, Role, TenantScope};
use tenantatlas_domain::directory::{Member, User};
use tenantatlas_domain::ids::{TokenId, UserId, WorkspaceId};
use tenantatlas_domain::names::TokenLifetime;
use tenantatlas_domain::schedule::Schedule;
use tenantatlas_engine::port::TokenRecord;
use tenantatlas_engine::{Engine, IssuedToken};

use crate::api::parse_id;
use crate::auth::{ApiCaller, PageCaller, PlatformOperator};
use crate::pages::{PageResult, chrome, fail, html};
use crate::render::{self, Chrome};
use crate::{AppState, WebError};

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/tokens", get(api_tokens).post(api_create_token))
        .route("/api/v1/tokens/{token}/revoke", post(api_revoke_token))
        .route("/api/v1/workspaces/{workspace}/members", get(api_members))
        .route("/api/v1/workspaces/{workspace}/members/{user}/role", post(api_role))
        .route(
            "/api/v1/workspaces/{workspace}/members/{user}/remove",
            post(api_remove_member),
        )
        .route("/api/v1/schedules", get(api_schedules))
        .route("/api/v1/schedules/{schedule}/remove", post(api_remove_schedule))
        .route("/api/v1/system/users", get(api_users))
        .route("/api/v1/system/users/{user}/disable", post(api_disable_user))
        .route("/admin/settings", get(settings_page))
        .route("/admin/settings/tokens", post(page_create_token))
        .route("/admin/settings/tokens/{token}/revoke", post(page_revoke_token))
        .route("/admin/workspaces/{workspace}/members/{user}/role", post(page_role))
        .route(
            "/admin/workspaces/{workspace}/members/{user}/remove",
            post(page_remove_member),
        )
        .route("/admin/schedules/{schedule}/remove", post(page_remove_schedule))
        .route("/system/users/{user}/disable", post(page_disable_user))
}

// ------------------------------------------------------------- JSON views

/// A token as the API and `token list --json` show it (never its secret).
pub fn token_json(t: &TokenRecord) -> Value {
    json!({
        "id": t.id, "name": t.name, "user_id": t.user.id, "user": t.user.email,
        "created_at": t.created_at, "expires_at": t.expires_at, "last_used_at": t.last_used_at,
    })
}

/// A token just created, with its secret (shown once).
pub fn issued_json(t: &IssuedToken, name: &str) -> Value {
    json!({ "id": t.id, "token": t.token, "name": name.trim(), "expires_at": t.expires_at })
}

/// A member of a workspace.
pub fn member_json(m: &Member) -> Value {
    let tenants = match &m.membership.tenants {
        TenantScope::All => Value::Null,
        TenantScope::Only(ts) => json!(ts),
    };
    json!({
        "workspace_id": m.membership.workspace_id, "user_id": m.membership.user_id,
        "email": m.email, "role": m.membership.role, "tenants": tenants,
    })
}

/// A schedule.
pub fn schedule_json(s: &Schedule) -> Value {
    json!({
        "id": s.id, "name": s.name, "cron": s.cron, "type": s.op_type, "tenant_id": s.tenant_id,
        "params": s.params, "enabled": s.enabled, "next_fire_at": s.next_fire_at,
        "last_fired_at": s.last_fired_at, "last_run_id": s.last_run_id,
    })
}

/// A user.
pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id, "email": u.email, "platform_operator": u.platform_operator,
        "disabled_at": u.disabled_at, "created_at": u.created_at,
    })
}

// ---------------------------------------------------------------- the API

/// The body of a JSON request: an object with only `allowed` keys.
fn object(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
    allowed: &[&str],
) -> Result<serde_json::Map<String, Value>, WebError> {
    let Value::Object(obj) = crate::api::json_body(body)? else {
        return Err(WebError::invalid("body", "must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(WebError::invalid(
            k,
            format!("is not accepted; send {}", allowed.join(" and ")),
        ));
    }
    Ok(obj)
}

fn lifetime_of_days(v: Option<&Value>) -> Result<Option<TokenLifetime>, WebError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            // JSON has one number type: 30.0 is the whole number 30
            let days = v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 1e6)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| WebError::invalid("expires_in_days", "must be a whole number of days from 1 to 732"))?;
            Ok(Some(TokenLifetime::days("expires_in_days", days)?))
        }
    }
}

async fn api_tokens(State(state): State<AppState>, ApiCaller(user): ApiCaller) -> Result<Json<Value>, WebError> {
    // the API lists the caller's own tokens, platform operator or not
    let all = state.engine().api_tokens(Some(&user)).await?;
    let own: Vec<Value> = all.iter().filter(|t| t.user.id == user.id).map(token_json).collect();
    Ok(Json(json!({ "tokens": own })))
}

async fn api_create_token(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, WebError> {
    let obj = object(body, &["name", "expires_in_days"])?;
    let name = match obj.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(WebError::invalid(
                "name",
                "is required: a string of 1 to 100 characters",
            ));
        }
    };
    let lifetime = lifetime_of_days(obj.get("expires_in_days"))?;
    let t = state
        .engine()
        .create_api_token(&user, &name, lifetime, actor(&user))
        .await?;
    Ok((StatusCode::CREATED, Json(issued_json(&t, &name))).into_response())
}

fn actor(u: &User) -> tenantatlas_domain::directory::Actor {
    tenantatlas_domain::directory::Actor::User(u.id)
}

async fn api_revoke_token(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(token): Path<String>,
) -> Result<Json<Value>, WebError> {
    let id: TokenId = parse_id("token", &token)?;
    let t = state.engine().revoke_api_token(Some(&user), id).await?;
    Ok(Json(token_json(&t)))
}

async fn api_members(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(workspace): Path<String>,
) -> Result<Json<Value>, WebError> {
    let ws: WorkspaceId = parse_id("workspace", &workspace)?;
    let all = state.engine().members(Some(&user), ws).await?;
    Ok(Json(
        json!({ "members": all.iter().map(member_json).collect::<Vec<_>>() }),
    ))
}

async fn member_of(engine: &Engine, who: &User, ws: WorkspaceId, user: UserId) -> Result<Member, WebError> {
    engine
        .members(Some(who), ws)
        .await?
        .into_iter()
        .find(|m| m.membership.user_id == user)
        .ok_or_else(|| WebError::not_found("member"))
}

async fn api_role(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path((workspace, member)): Path<(String, String)>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, WebError> {
    let ws: WorkspaceId = parse_id("workspace", &workspace)?;
    let member: UserId = parse_id("user", &member)?;
    let obj = object(body, &["role"])?;
    let role = match obj.get("role") {
        Some(Value::String(s)) => Role::parse("role", s)?,
        _ => {
            return Err(WebError::invalid(
                "role",
                "is required: owner, manager, operator or readonly",
            ));
        }
    };
    let engine = state.engine();
    // read the member first: an owner who demotes themselves may no longer
    // list the members afterwards, yet the change was made
    let before = member_of(engine, &user, ws, member).await?;
    let membership = engine.change_role(Some(&user), ws, member, role).await?;
    Ok(Json(member_json(&Member {
        membership,
        email: before.email,
    })))
}

async fn api_remove_member(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path((workspace, member)): Path<(String, String)>,
) -> Result<Json<Value>, WebError> {
    let ws: WorkspaceId = parse_id("workspace", &workspace)?;
    let member: UserId = parse_id("user", &member)?;
    let engine = state.engine();
    let before = member_of(engine, &user, ws, member).await?;
    engine.remove_member(Some(&user), ws, member).await?;
    Ok(Json(member_json(&before)))
}

async fn api_schedules(State(state): State<AppState>, ApiCaller(user): ApiCaller) -> Result<Json<Value>, WebError> {
    let all = state.engine().schedules_for(&user).await?;
    Ok(Json(
        json!({ "schedules": all.iter().map(schedule_json).collect::<Vec<_>>() }),
    ))
}

async fn api_remove_schedule(
    State(state): State<AppState>,
    ApiCaller(user): ApiCaller,
    Path(schedule): Path<String>,
) -> Result<Json<Value>, WebError> {
    let id: uuid::Uuid = parse_id("schedule", &schedule)?;
    let s = state.engine().remove_schedule(Some(&user), &id.to_string()).await?;
    Ok(Json(schedule_json(&s)))
}

async fn api_users(State(state): State<AppState>, _op: PlatformOperator) -> Result<Json<Value>, WebError> {
    let all = state.engine().users().await?;
    Ok(Json(json!({ "users": all.iter().map(user_json).collect::<Vec<_>>() })))
}

async fn disable(engine: &Engine, op: &User, user: &str) -> Result<User, WebError> {
    let id: UserId = parse_id("user", user)?;
    let target = engine.resolve_user(&id.to_string()).await?;
    if target.id == op.id {
        return Err(WebError::new(
            StatusCode::CONFLICT,
            "conflict",
            "you cannot disable yourself; ask another platform operator",
        ));
    }
    engine.disable_user(&target, actor(op)).await?;
    Ok(engine.resolve_user(&id.to_string()).await?)
}

async fn api_disable_user(
    State(state): State<AppState>,
    op: PlatformOperator,
    Path(user): Path<String>,
) -> Result<Json<Value>, WebError> {
    Ok(Json(user_json(&disable(state.engine(), &op.0, &user).await?)))
}

// --------------------------------------------------------------- the page

struct TokenLine {
    id: String,
    name: String,
    created: String,
    expires: String,
    last_used: String,
}

struct MemberLine {
    email: String,
    role: &'static str,
    tenants: String,
    role_url: String,
    remove_url: String,
    is_me: bool,
}

struct WorkspaceMembers {
    name: String,
    members: Vec<MemberLine>,
}

struct ScheduleLine {
    name: String,
    cron: String,
    label: &'static str,
    tenant: String,
    next: String,
    remove_url: String,
}

struct UserLine {
    email: String,
    platform_operator: bool,
    disabled: Option<String>,
    disable_url: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsT {
    chrome: Chrome,
    /// A token just created (shown once).
    issued: Option<(String, String)>,
    tokens: Vec<TokenLine>,
    workspaces: Vec<WorkspaceMembers>,
    schedules: Vec<ScheduleLine>,
    users: Vec<UserLine>,
    roles: Vec<&'static str>,
}

async fn settings(state: &AppState, user: &User, issued: Option<(String, String)>) -> PageResult {
    let engine = state.engine();
    let never = || "never".to_owned();
    let tokens = engine
        .api_tokens(Some(user))
        .await
        .map_err(fail)?
        .into_iter()
        .filter(|t| t.user.id == user.id)
        .map(|t| TokenLine {
            id: t.id.to_string(),
            name: t.name,
            created: render::when(t.created_at),
            expires: t.expires_at.map_or_else(never, render::when),
            last_used: t.last_used_at.map_or_else(never, render::when),
        })
        .collect();
    let names: HashMap<WorkspaceId, String> = engine
        .list_workspaces()
        .await
        .map_err(fail)?
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect();
    let mut workspaces = Vec::new();
    for m in engine.memberships_of(user.id).await.map_err(fail)? {
        if !m.role.has(Capability::ManageMembers) {
            continue;
        }
        let ws = m.workspace_id;
        let members = engine
            .members(Some(user), ws)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|x| MemberLine {
                role: x.membership.role.as_str(),
                tenants: match &x.membership.tenants {
                    TenantScope::All => "every tenant".into(),
                    TenantScope::Only(ts) => format!("{} tenant(s)", ts.len()),
                },
                role_url: format!("/admin/workspaces/{ws}/members/{}/role", x.membership.user_id),
                remove_url: format!("/admin/workspaces/{ws}/members/{}/remove", x.membership.user_id),
                is_me: x.membership.user_id == user.id,
                email: x.email,
            })
            .collect();
        workspaces.push(WorkspaceMembers {
            name: names.get(&ws).cloned().unwrap_or_else(|| ws.to_string()),
            members,
        });
    }
    let tenant_names = crate::live::names_for(engine, Some(user)).await.map_err(fail)?;
    let schedules = engine
        .schedules_for(user)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|s| ScheduleLine {
            remove_url: format!("/admin/schedules/{}/remove", s.id),
            label: s.op_type.label(),
            tenant: render::tenant_name(s.tenant_id, &tenant_names),
            next: render::when(s.next_fire_at),
            name: s.name,
            cron: s.cron,
        })
        .collect();
    let users = if user.platform_operator {
        engine
            .users()
            .await
            .map_err(fail)?
            .into_iter()
            .map(|u| UserLine {
                disable_url: format!("/system/users/{}/disable", u.id),
                is_me: u.id == user.id,
                platform_operator: u.platform_operator,
                disabled: u.disabled_at.map(render::when),
                email: u.email,
            })
            .collect()
    } else {
        Vec::new()
    };
    let chrome = chrome(state, user, &tenant_names).await?;
    html(&SettingsT {
        chrome,
        issued,
        tokens,
        workspaces,
        schedules,
        users,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
    })
}

async fn settings_page(State(state): State<AppState>, PageCaller(user): PageCaller) -> PageResult {
    settings(&state, &user, None).await
}

#[derive(serde::Deserialize)]
struct TokenForm {
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

async fn page_create_token(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Form(form): Form<TokenForm>,
) -> PageResult {
    let days = form.expires_in_days.trim();
    let lifetime = if days.is_empty() {
        None
    } else {
        let n = days.parse::<u64>().map_err(|_| {
            fail(WebError::invalid(
                "expires_in_days",
                "must be a whole number of days from 1 to 732",
            ))
        })?;
        Some(TokenLifetime::days("expires_in_days", n).map_err(fail)?)
    };
    let t = state
        .engine()
        .create_api_token(&user, &form.name, lifetime, actor(&user))
        .await
        .map_err(fail)?;
    // shown once, on this answer; a reload does not create another
    let mut res = settings(&state, &user, Some((form.name.trim().to_owned(), t.token))).await?;
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

fn back() -> Response {
    Redirect::to("/admin/settings").into_response()
}

async fn page_revoke_token(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Path(token): Path<String>,
) -> PageResult {
    let id: TokenId = parse_id("token", &token).map_err(fail)?;
    state.engine().revoke_api_token(Some(&user), id).await.map_err(fail)?;
    Ok(back())
}

#[derive(serde::Deserialize)]
struct RoleForm {
    role: String,
}

async fn page_role(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Path((workspace, member)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> PageResult {
    let ws: WorkspaceId = parse_id("workspace", &workspace).map_err(fail)?;
    let member: UserId = parse_id("user", &member).map_err(fail)?;
    let role = Role::parse("role", &form.role).map_err(fail)?;
    state
        .engine()
        .change_role(Some(&user), ws, member, role)
        .await
        .map_err(fail)?;
    Ok(back())
}

async fn page_remove_member(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Path((workspace, member)): Path<(String, String)>,
) -> PageResult {
    let ws: WorkspaceId = parse_id("workspace", &workspace).map_err(fail)?;
    let member: UserId = parse_id("user", &member).map_err(fail)?;
    state
        .engine()
        .remove_member(Some(&user), ws, member)
        .await
        .map_err(fail)?;
    Ok(back())
}

async fn page_remove_schedule(
    State(state): State<AppState>,
    PageCaller(user): PageCaller,
    Path(schedule): Path<String>,
) -> PageResult {
    let id: uuid::Uuid = parse_id("schedule", &schedule).map_err(fail)?;
    state
        .engine()
        .remove_schedule(Some(&user), &id.to_string())
        .await
        .map_err(fail)?;
    Ok(back())
}

async fn page_disable_user(
    State(state): State<AppState>,
    op: PlatformOperator,
    Path(user): Path<String>,
) -> PageResult {
    disable(state.engine(), &op.0, &user).await.map_err(fail)?;
    Ok(back())
}
