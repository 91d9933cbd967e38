//! Who is calling: session cookies (people) and bearer tokens (scripts).
//!
//! - Login verifies an Argon2id hash — a dummy one for unknown accounts, so
//!   neither the message nor the time tells which accounts exist — and is
//!   throttled per account and client ([`crate::throttle`]); hashing itself
//!   is bounded by the engine (429 with `Retry-After` beyond a short wait).
//! - Every login opens a new server-side session (the id rotates); the
//!   cookie is `HttpOnly; SameSite=Strict; Path=/` (+ `Secure` and the
//!   `__Host-` prefix over TLS). The database keeps only its hash.
//! - [`ApiCaller`] answers 401 JSON without credentials, [`PageCaller`]
//!   redirects to the login page, [`PlatformOperator`] answers 404 to
//!   anyone who is not one (the system plane does not exist for them).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use tenantatlas_domain::directory::User;

use crate::{AppState, WebError, render};

/// The session cookie's name.
pub fn cookie_name(tls: bool) -> &'static str {
    if tls { "__Host-ta_session" } else { "ta_session" }
}

/// A signed-in caller of the JSON API (401 otherwise).
#[derive(Clone, Debug)]
pub struct ApiCaller(pub User);

/// A signed-in caller of a page (redirected to `/login` otherwise).
#[derive(Clone, Debug)]
pub struct PageCaller(pub User);

/// A platform operator (system plane). Anyone else gets 404.
#[derive(Clone, Debug)]
pub struct PlatformOperator(pub User);

/// The user behind the request's bearer token or session cookie.
pub(crate) async fn caller(headers: &HeaderMap, state: &AppState) -> Result<Option<User>, WebError> {
    let engine = state.engine();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        // a bad token is an error, never a fall-back to the cookie
        return match engine.token_user(token).await? {
            Some(u) => Ok(Some(u)),
            None => Err(WebError::unauthenticated()),
        };
    }
    let jar = CookieJar::from_headers(headers);
    let Some(c) = jar.get(cookie_name(state.config().tls)) else {
        return Ok(None);
    };
    Ok(engine.session_user(c.value(), state.config().sessions).await?)
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        caller(&parts.headers, state)
            .await?
            .map(ApiCaller)
            .ok_or_else(WebError::unauthenticated)
    }
}

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match caller(&parts.headers, state).await {
            Ok(Some(u)) => Ok(PageCaller(u)),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(e.page()),
        }
    }
}

impl FromRequestParts<AppState> for PlatformOperator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let api = parts.uri.path().starts_with("/api/") || parts.uri.path() == "/metrics";
        let not_found = || {
            let e = WebError::not_found("page");
            if api { e.into_response() } else { e.page() }
        };
        match caller(&parts.headers, state).await {
            Ok(Some(u)) if u.platform_operator => Ok(PlatformOperator(u)),
            Ok(None) if api => Err(WebError::unauthenticated().into_response()),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) if api => Err(e.into_response()),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(Redirect::to("/login").into_response()),
            Err(e) if e.status.is_server_error() => Err(e.page()),
            Ok(Some(_)) | Err(_) => Err(not_found()),
        }
    }
}

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = caller(&headers, &state).await {
        return Redirect::to("/admin").into_response();
    }
    Html(render::login(None)).into_response()
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

const WRONG: &str = "The e-mail address or the password is not right.";

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let client = crate::throttle::client_addr(addr.ip(), &headers, &state.config().trusted_proxies);
    let engine = state.engine();
    let too_many = |wait: std::time::Duration, msg: String| {
        let secs = wait.as_secs().max(1);
        let mut res = (StatusCode::TOO_MANY_REQUESTS, Html(render::login(Some(&msg)))).into_response();
        res.headers_mut().insert(header::RETRY_AFTER, secs.into());
        res
    };
    let attempt = match state.throttle().reserve(&form.email, client, engine.now()) {
        Ok(a) => a,
        Err(wait) => {
            let secs = wait.as_secs().max(1);
            let msg = if secs < 120 {
                format!("Too many failed sign-ins. Try again in {secs} seconds.")
            } else {
                format!("Too many failed sign-ins. Try again in {} minutes.", secs.div_ceil(60))
            };
            return too_many(wait, msg);
        }
    };
    let user = match engine.verify_login(&form.email, &form.password).await {
        Ok(u) => u,
        Err(tenantatlas_engine::EngineError::Busy(wait)) => {
            state.throttle().abandoned(attempt);
            return too_many(
                wait,
                "Many sign-ins are being checked right now. Try again in a moment.".into(),
            );
        }
        Err(e) => {
            state.throttle().abandoned(attempt);
            return WebError::from(e).page();
        }
    };
    let Some(user) = user else {
        tracing::info!(client = %client, "failed sign-in");
        return (StatusCode::UNAUTHORIZED, Html(render::login(Some(WRONG)))).into_response();
    };
    state.throttle().succeeded(attempt);
    // a fresh session id at every login; the old session (if any) ends
    let name = cookie_name(state.config().tls);
    if let Some(old) = jar.get(name) {
        let _ = state.engine().end_session(old.value()).await;
    }
    let id = match state.engine().open_session(&user).await {
        Ok(id) => id,
        Err(e) => return WebError::from(e).page(),
    };
    let mut c = Cookie::new(name, id);
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.set_path("/");
    c.set_secure(state.config().tls);
    let target = if user.platform_operator && !has_memberships(&state, &user).await {
        "/system"
    } else {
        "/admin"
    };
    (jar.add(c), Redirect::to(target)).into_response()
}

async fn has_memberships(state: &AppState, user: &User) -> bool {
    state
        .engine()
        .memberships_of(user.id)
        .await
        .is_ok_and(|m| !m.is_empty())
}

async fn logout(State(state): State<AppState>, jar: CookieJar) -> Response {
    let name = cookie_name(state.config().tls);
    if let Some(c) = jar.get(name) {
        let _ = state.engine().end_session(c.value()).await;
    }
    let mut gone = Cookie::from(name);
    gone.set_path("/");
    // a __Host- cookie is only replaced by one with the same attributes
    gone.set_secure(state.config().tls);
    (jar.remove(gone), Redirect::to("/login")).into_response()
}
