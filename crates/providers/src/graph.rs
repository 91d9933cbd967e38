//! The Microsoft Graph provider: a tenant's Intune configuration through
//! Graph's beta API, signed in with OAuth2 client credentials.
//!
//! - **Sign-in** ([`auth`]): `POST {login_url}/{tenant}/oauth2/v2.0/token`
//!   with the client secret; the token is cached until five minutes before
//!   it expires, one refresh shared by concurrent callers; a 401 from Graph
//!   refreshes it once and retries the request once.
//! - **Paging**: every list follows `@odata.nextLink` exactly as Graph gave
//!   it (the page cursor *is* the next link, refused unless it points under
//!   the configured Graph URL, so a token is never sent to another host),
//!   including a settings catalog policy's settings, whose count must equal
//!   the policy's `settingCount`.
//! - **`$batch`** ([`GraphProvider::batch_get`]): at most 20 reads per
//!   call; a throttled item is retried alone after its own `Retry-After`,
//!   any other failed item is reported as that item's error.
//! - **Throttling** ([`retry`]): `Retry-After` (integer, decimal, HTTP-date)
//!   or exponential backoff with full jitter, a bounded number of attempts;
//!   a per-tenant [`limiter`] keeps requests under Intune's limits before
//!   Graph has to say 429.
//! - **Errors** are classified ([`ProviderError`]): 400 invalid payload
//!   (Graph's message, sanitized), 401 auth failed, 403 permission missing
//!   (naming the permission the type's descriptor says the call needs), 404
//!   not found, 409 conflict, 429 throttled, 5xx and transport failures
//!   unavailable.
//!
//! Request and response bodies, tokens and the secret are never logged:
//! the debug log has the method, the URL path (no query), the status and
//! the duration.

pub mod auth;
pub mod limiter;
pub mod retry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};
use tenantatlas_domain::sanitize::SafeText;

pub use auth::{ClientSecret, TokenClaims, decode_claims};
pub use limiter::{Limiter, Limits};
pub use retry::{RetryPolicy, parse_retry_after};

use crate::clock::{Clock, SystemClock};
use crate::error::{ProviderError, Result};
use crate::object::{Navigation, ObjectType, PERM_APPS_READ, PERM_APPS_WRITE, PERM_CONFIG_READ};
use crate::object::{PERM_CONFIG_WRITE, PERM_GROUPS_READ, UpdateVerb};
use crate::{Access, Page, ProviderKind, TenantProvider};
use auth::{AccessToken, Credentials, TokenCache};

/// Graph's public cloud.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
/// Entra ID's public cloud sign-in.
pub const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";
/// The environment variable that overrides [`DEFAULT_GRAPH_URL`].
pub const GRAPH_URL_ENV: &str = "TENANTATLAS_GRAPH_URL";
/// The environment variable that overrides [`DEFAULT_LOGIN_URL`].
pub const LOGIN_URL_ENV: &str = "TENANTATLAS_LOGIN_URL";

/// Most requests Graph takes in one `$batch`.
pub const BATCH_MAX: usize = 20;

/// The `Accept` header that makes Graph put `@odata.type` on every item.
pub const ACCEPT_FULL_METADATA: &str = "application/json;odata.metadata=full";
/// The `Accept` header for mobile apps. `mobileApp` is an abstract type, so
/// OData's minimal metadata already annotates every app with its concrete
/// `@odata.type`; the tools that read Intune (IntuneManagement among them)
/// ask for minimal metadata there, because full metadata adds a navigation
/// link per app relationship to every item of a large list.
pub const ACCEPT_MINIMAL_METADATA: &str = "application/json;odata.metadata=minimal";

/// The per-platform collections app protection policies are written and
/// navigated through.
const APP_PROTECTION_COLLECTIONS: [&str; 3] = [
    "deviceAppManagement/iosManagedAppProtections",
    "deviceAppManagement/androidManagedAppProtections",
    "deviceAppManagement/windowsManagedAppProtections",
];

/// How to reach a tenant through Graph.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// Graph's base URL, without the API version (national clouds, the
    /// local Graph).
    pub graph_url: String,
    /// Entra ID's sign-in base URL.
    pub login_url: String,
    /// The tenant: its id (a GUID) or a verified domain.
    pub tenant: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The app registration's client secret.
    pub client_secret: ClientSecret,
    /// The per-tenant request limits.
    pub limits: Limits,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// The OAuth2 scope of the token request; `None` for the default (see
    /// [`default_scope`]).
    pub scope: Option<String>,
}

/// Microsoft Graph's application id: the same in every cloud.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The scope a token is requested for: `{graph_url}/.default` for an HTTPS
/// Graph (the public cloud and the national clouds, whose Graph resource
/// is their URL); for a plain-HTTP Graph, which is never one of
/// Microsoft's (the local Graph), Graph's application id
/// (`00000003-0000-0000-c000-000000000000/.default`), which Entra takes in
/// every cloud and the local Graph accepts.
pub fn default_scope(graph_url: &Url) -> String {
    if graph_url.scheme() == "https" {
        format!("{}/.default", graph_url.as_str().trim_end_matches('/'))
    } else {
        format!("{GRAPH_APP_ID}/.default")
    }
}

impl GraphConfig {
    /// A configuration for the public cloud with Intune's limits and the
    /// default retry policy.
    pub fn new(tenant: impl Into<String>, client_id: impl Into<String>, secret: ClientSecret) -> Self {
        Self {
            graph_url: DEFAULT_GRAPH_URL.to_owned(),
            login_url: DEFAULT_LOGIN_URL.to_owned(),
            tenant: tenant.into(),
            client_id: client_id.into(),
            client_secret: secret,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            scope: None,
        }
    }

    /// Takes the Graph and sign-in URLs from [`GRAPH_URL_ENV`] and
    /// [`LOGIN_URL_ENV`] when they are set and not empty.
    pub fn with_env_urls(mut self) -> Self {
        if let Some(g) = std::env::var(GRAPH_URL_ENV).ok().filter(|v| !v.trim().is_empty()) {
            self.graph_url = g.trim().to_owned();
        }
        if let Some(l) = std::env::var(LOGIN_URL_ENV).ok().filter(|v| !v.trim().is_empty()) {
            self.login_url = l.trim().to_owned();
        }
        self
    }
}

/// Checks a tenant id: a GUID, or a domain name (`contoso.onmicrosoft.com`).
/// `common`, `organizations` and `consumers` are refused: client
/// credentials need one tenant.
pub fn validate_tenant(tenant: &str) -> Result<()> {
    let t = tenant.trim();
    if uuid::Uuid::try_parse(t).is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = t.split('.').collect();
    let tld_ok = labels
        .last()
        .is_some_and(|l| l.bytes().any(|b| b.is_ascii_alphabetic()));
    if t.len() <= 253 && labels.len() >= 2 && labels.iter().all(|l| label_ok(l)) && tld_ok {
        return Ok(());
    }
    let shown = SafeText::sanitize(t);
    Err(ProviderError::Malformed(format!(
        "tenant \"{shown}\" is neither a tenant id (a GUID) nor a domain name such as contoso.onmicrosoft.com"
    )))
}

/// Counters of what a provider sent (for benchmarks and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// HTTP requests sent to Graph (a `$batch` is one), retries included;
    /// token requests excluded.
    pub requests: u64,
    /// Of those, retries after a throttled, unavailable or refused answer.
    pub retries: u64,
    /// 429 answers met, `$batch` items included.
    pub throttled: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

/// The process-wide HTTP client: rustls, connect timeout 10 s, request
/// timeout 60 s; shared so every provider reuses its connection pool.
pub fn shared_client() -> Result<reqwest::Client> {
    static CLIENT: OnceLock<std::result::Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                // a redirect would resend the token request's form (the
                // client secret) or the bearer token wherever it points
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .user_agent(concat!("TenantAtlas/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| ProviderError::Unavailable(format!("the HTTP client could not be built: {e}")))
}

/// The Microsoft Graph provider.
#[derive(Debug)]
pub struct GraphProvider {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// `{graph_url}` without a trailing slash.
    graph_base: String,
    graph_origin: String,
    /// The path every Graph URL of this provider starts with (`/beta/`,
    /// below any path of the configured Graph URL).
    api_prefix: String,
    tenant: String,
    creds: Credentials,
    tokens: TokenCache,
    limiter: Arc<Limiter>,
    retry: RetryPolicy,
    counters: Counters,
    /// App protection policies' `@odata.type` by id, learnt from lists and
    /// reads: the per-platform collection a navigation read or a write of
    /// one goes to depends on it.
    app_types: Mutex<HashMap<String, String>>,
}

/// Characters escaped in one URL path segment (an object id).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'%')
    .add(b'\'')
    .add(b'(')
    .add(b')');

/// Characters escaped in a query value: everything but RFC 3986's
/// unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// An id as one path segment.
fn seg(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// Refuses an id that cannot be one path segment: empty, or only dots — a
/// URL parser resolves `.` and `..` (also as `%2E%2E`) as dot segments, and
/// a tampered id would reach another endpoint of Graph with a valid token.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.chars().all(|c| c == '.') {
        return Err(ProviderError::InvalidPayload(format!(
            "\"{}\" is not an object id",
            SafeText::sanitize(id)
        )));
    }
    Ok(())
}

/// One HTTP call to Graph, as [`GraphProvider::execute`] runs it.
struct Call<'a> {
    method: Method,
    url: Url,
    body: Option<&'a Value>,
    accept: &'a str,
    /// The permission a 403 names.
    permission: &'a str,
    /// What a 404 names (a path, never a query).
    what: String,
    /// Requests the limiter counts (a `$batch`: its items).
    weight: usize,
    /// Whether the limiter counts it as a write.
    write: bool,
    /// Whether repeating it after an unanswered attempt cannot apply it
    /// twice (not a create).
    idempotent: bool,
}

/// The `Accept` header for a type's reads.
fn accept_for(ty: ObjectType) -> &'static str {
    match ty {
        ObjectType::MobileApp => ACCEPT_MINIMAL_METADATA,
        _ => ACCEPT_FULL_METADATA,
    }
}

/// The type whose collection (read or per-platform write) holds `path`.
fn type_of_path(path: &str) -> Option<ObjectType> {
    let p = path.trim_start_matches('/');
    let p = p.split('?').next().unwrap_or(p);
    let under = |coll: &str| p == coll || p.strip_prefix(coll).is_some_and(|r| r.starts_with('/'));
    if APP_PROTECTION_COLLECTIONS.iter().any(|c| under(c)) {
        return Some(ObjectType::AppProtectionPolicy);
    }
    ObjectType::ALL.into_iter().find(|t| under(t.descriptor().collection))
}

/// The permission a call on `path` needs, for a path no descriptor names
/// (by its top segment, as the descriptors assign them).
fn permission_for_path(path: &str, write: bool) -> &'static str {
    if let Some(ty) = type_of_path(path) {
        let d = ty.descriptor();
        return if write {
            d.write_permission.unwrap_or(d.read_permission)
        } else {
            d.read_permission
        };
    }
    let top = path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    match (top, write) {
        ("deviceAppManagement", false) => PERM_APPS_READ,
        ("deviceAppManagement", true) => PERM_APPS_WRITE,
        ("groups", _) => PERM_GROUPS_READ,
        (_, false) => PERM_CONFIG_READ,
        (_, true) => PERM_CONFIG_WRITE,
    }
}

/// Graph's error message (`{"error": {"code", "message"}}`), sanitized;
/// `fallback` when the body has none.
fn graph_message(body: Option<&Value>, fallback: &str) -> String {
    let err = body.and_then(|b| b.get("error"));
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty());
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_str);
    let text = match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (None, Some(m)) => m.to_owned(),
        (Some(c), None) => c.to_owned(),
        (None, None) => fallback.to_owned(),
    };
    SafeText::sanitize(&text).into_string()
}

/// Classifies a failed answer.
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Option<&Value>,
    permission: &str,
    what: &str,
) -> ProviderError {
    let code = status.as_u16();
    let fallback = format!("HTTP {code}");
    match code {
        400 => ProviderError::InvalidPayload(graph_message(body, &fallback)),
        401 => ProviderError::AuthFailed(format!(
            "Graph refused the access token ({})",
            graph_message(body, &fallback)
        )),
        403 => ProviderError::PermissionMissing {
            permission: permission.to_owned(),
        },
        404 => ProviderError::NotFound(what.to_owned()),
        409 => ProviderError::Conflict(graph_message(body, &fallback)),
        429 => ProviderError::Throttled { retry_after },
        500..=599 => ProviderError::Unavailable(format!("Graph answered {code} for {what}")),
        _ => ProviderError::InvalidPayload(format!(
            "Graph answered {code} for {what}: {}",
            graph_message(body, &fallback)
        )),
    }
}

/// The `Retry-After` of an answer.
fn retry_after_of(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Whether an answer status is worth another attempt, for a call that is
/// (or is not) idempotent. 429 and 503 mean Graph did not act; 500, 502
/// and 504 may follow a change that was applied, so only a call that
/// cannot apply twice is repeated after them.
fn retryable_status(status: StatusCode, idempotent: bool) -> bool {
    match status.as_u16() {
        429 | 503 => true,
        500 | 502 | 504 => idempotent,
        _ => false,
    }
}

/// The properties a write body never carries to the object's own URL:
/// navigation data written with separate calls (assignments with
/// [`TenantProvider::assign`]).
fn without(body: &Value, keys: &[&str]) -> Value {
    match body {
        Value::Object(m) => {
            let mut m = m.clone();
            for k in keys {
                m.remove(*k);
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// The items of a list answer and its next link.
fn split_page(v: Value, what: &str) -> Result<(Vec<Value>, Option<String>)> {
    let Value::Object(mut m) = v else {
        return Err(ProviderError::Malformed(format!(
            "{what}: the answer is not a JSON object"
        )));
    };
    let items = match m.remove("value") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(ProviderError::Malformed(format!(
                "{what}: the answer has no \"value\" array"
            )));
        }
    };
    let next = match m.remove("@odata.nextLink") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(Value::Null) | None => None,
        Some(_) => {
            return Err(ProviderError::Malformed(format!(
                "{what}: \"@odata.nextLink\" is not a string"
            )));
        }
    };
    Ok((items, next))
}

impl GraphProvider {
    /// A provider for `config` with the process-wide HTTP client and the
    /// system clock. Checks the tenant and the URLs; signs in only on
    /// first use.
    pub fn new(config: GraphConfig) -> Result<Self> {
        Self::with_parts(config, shared_client()?, Arc::new(SystemClock))
    }

    /// A provider with a given HTTP client and clock (tests move a
    /// [`ManualClock`](crate::clock::ManualClock)). Providers of the same
    /// tenant and Graph host share one [`Limiter`] for as long as any of
    /// them lives; the first one's limits and clock are the ones used. The
    /// tenant is taken as written: one tenant configured once by id and
    /// once by domain gets two limiters.
    pub fn with_parts(config: GraphConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Result<Self> {
        validate_tenant(&config.tenant)?;
        if config.client_id.trim().is_empty() {
            return Err(ProviderError::AuthFailed("the client id is empty".into()));
        }
        if config.client_secret.expose().is_empty() {
            return Err(ProviderError::AuthFailed("the client secret is empty".into()));
        }
        let graph = parse_base_url(&config.graph_url, "Graph URL")?;
        let login = parse_base_url(&config.login_url, "sign-in URL")?;
        let tenant = config.tenant.trim().to_owned();
        let login_base = login.as_str().trim_end_matches('/').to_owned();
        let token_url = Url::parse(&format!("{login_base}/{}/oauth2/v2.0/token", seg(&tenant)))
            .map_err(|e| ProviderError::Malformed(format!("the sign-in URL cannot be used: {e}")))?;
        let graph_base = graph.as_str().trim_end_matches('/').to_owned();
        let graph_origin = auth::origin(&graph);
        let api_prefix = format!("{}/beta/", graph.path().trim_end_matches('/'));
        let key = format!("{graph_origin}|{}", tenant.to_ascii_lowercase());
        let limiter = limiter::shared(&key, &config.limits, Arc::clone(&clock));
        Ok(Self {
            http,
            clock,
            creds: Credentials {
                token_url,
                client_id: config.client_id.trim().to_owned(),
                secret: config.client_secret,
                scope: config.scope.clone().unwrap_or_else(|| default_scope(&graph)),
            },
            graph_base,
            graph_origin,
            api_prefix,
            tenant,
            tokens: TokenCache::new(),
            limiter,
            retry: config.retry,
            counters: Counters::default(),
            app_types: Mutex::new(HashMap::new()),
        })
    }

    /// What this provider has sent so far.
    pub fn stats(&self) -> GraphStats {
        GraphStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            throttled: self.counters.throttled.load(Ordering::Relaxed),
        }
    }

    /// The tenant's limiter (shared with every provider of the tenant).
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// The URL of `rel` (relative to the API version, query allowed).
    fn url(&self, rel: &str) -> Result<Url> {
        Url::parse(&format!("{}/beta/{}", self.graph_base, rel.trim_start_matches('/')))
            .map_err(|e| ProviderError::Malformed(format!("{}: not a valid Graph path ({e})", path_only(rel))))
    }

    /// A page cursor (an `@odata.nextLink`) as a URL, refused unless it
    /// points under this provider's Graph URL and API version.
    fn cursor_url(&self, cursor: &str) -> Result<Url> {
        let refused = || {
            ProviderError::Malformed(format!(
                "a page cursor that does not point under {}/beta was refused",
                self.graph_origin
            ))
        };
        let url = Url::parse(cursor).map_err(|_| refused())?;
        if auth::origin(&url) != self.graph_origin
            || !url.path().starts_with(&self.api_prefix)
            || url.username() != ""
            || url.password().is_some()
        {
            return Err(refused());
        }
        Ok(url)
    }

    /// A URL's path below the API version, for messages (no query).
    fn what_of(&self, url: &Url) -> String {
        path_only(url.path().strip_prefix(&self.api_prefix).unwrap_or(url.path()))
    }

    /// A valid token; `stale` is one Graph just refused.
    async fn token(&self, stale: Option<&AccessToken>) -> Result<AccessToken> {
        self.tokens
            .get(&self.http, &self.creds, self.clock.as_ref(), stale)
            .await
    }

    /// Runs one call: limiter, token, retries on 429/5xx (honouring
    /// `Retry-After`, otherwise backing off), one token refresh on 401.
    /// Returns the answer's JSON (`None` for an empty answer).
    async fn execute(&self, call: &Call<'_>) -> Result<Option<Value>> {
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        let mut stale: Option<AccessToken> = None;
        loop {
            let token = self.token(stale.as_ref()).await?;
            self.limiter
                .acquire(call.weight, if call.write { call.weight } else { 0 })
                .await;
            attempt += 1;
            let last_attempt = attempt >= self.retry.max_attempts.max(1);
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let mut rb = self
                .http
                .request(call.method.clone(), call.url.clone())
                .bearer_auth(&*token.0)
                .header(ACCEPT, call.accept);
            if let Some(b) = call.body {
                rb = rb.json(b);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    let kind = auth::transport_kind(&e);
                    tracing::debug!(
                        method = %call.method,
                        path = call.url.path(),
                        error = kind,
                        ms = started.elapsed().as_millis() as u64,
                        "graph request failed"
                    );
                    // A refused connection or a 60-second timeout is not
                    // retried here: the engine retries the run later. A
                    // connection that broke mid-answer is, if repeating
                    // the call cannot apply it twice.
                    let again = call.idempotent && !e.is_connect() && !e.is_timeout() && !last_attempt;
                    if again {
                        self.pause(self.backoff(attempt - 1)).await;
                        continue;
                    }
                    return Err(ProviderError::Unavailable(format!(
                        "Graph at {} cannot be reached ({kind})",
                        self.graph_origin
                    )));
                }
            };
            let status = resp.status();
            tracing::debug!(
                method = %call.method,
                path = call.url.path(),
                status = status.as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "graph request"
            );
            let retry_after = retry_after_of(resp.headers());
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    if call.idempotent && !last_attempt {
                        self.pause(self.backoff(attempt - 1)).await;
                        continue;
                    }
                    return Err(ProviderError::Unavailable(format!(
                        "the answer for {} broke off ({})",
                        call.what,
                        auth::transport_kind(&e)
                    )));
                }
            };
            if status.is_success() {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|_| ProviderError::Malformed(format!("{}: Graph's answer is not JSON", call.what)));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            }
            let body: Option<Value> = serde_json::from_slice(&bytes).ok();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // The token expired early or was revoked: one fresh token,
                // one more try (not counted as an attempt).
                refreshed = true;
                stale = Some(token);
                attempt -= 1;
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if retryable_status(status, call.idempotent) && !last_attempt {
                let wait = retry_after.unwrap_or_else(|| self.backoff(attempt - 1));
                if wait > self.retry.max_retry_after {
                    // Too long to hold the caller: hand the wait to the
                    // engine.
                    return Err(match status {
                        StatusCode::TOO_MANY_REQUESTS => ProviderError::Throttled {
                            retry_after: Some(wait),
                        },
                        _ => classify(status, retry_after, body.as_ref(), call.permission, &call.what),
                    });
                }
                self.pause(wait).await;
                continue;
            }
            // Throttled with no wait given: the engine gets the backoff's
            // next ceiling, so it still knows how long to stay away.
            let retry_after = match status {
                StatusCode::TOO_MANY_REQUESTS => {
                    retry_after.or_else(|| Some(retry::backoff_ceiling(&self.retry, attempt)))
                }
                _ => retry_after,
            };
            return Err(classify(
                status,
                retry_after,
                body.as_ref(),
                call.permission,
                &call.what,
            ));
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        retry::backoff(&self.retry, retry, &mut rand::thread_rng())
    }

    async fn pause(&self, d: Duration) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        self.clock.sleep(d).await;
    }

    /// GET of a URL, for a type (its `Accept`, its read permission).
    async fn get_url(&self, url: Url, accept: &str, permission: &str) -> Result<Value> {
        let what = self.what_of(&url);
        let call = Call {
            method: Method::GET,
            url,
            body: None,
            accept,
            permission,
            what,
            weight: 1,
            write: false,
            idempotent: true,
        };
        self.execute(&call)
            .await?
            .ok_or_else(|| ProviderError::Malformed(format!("{}: Graph's answer is empty", call.what)))
    }

    /// GET of a path relative to the API version, read as `ty`.
    async fn get_path(&self, ty: ObjectType, rel: &str) -> Result<Value> {
        self.get_url(self.url(rel)?, accept_for(ty), ty.descriptor().read_permission)
            .await
    }

    /// Every item of a paged collection, from its first URL on.
    async fn read_pages(&self, first: Url, ty: ObjectType) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut url = first;
        loop {
            let what = self.what_of(&url);
            let page = self
                .get_url(url, accept_for(ty), ty.descriptor().read_permission)
                .await?;
            let (items, next) = split_page(page, &what)?;
            out.extend(items);
            match next {
                Some(n) => url = self.cursor_url(&n)?,
                None => return Ok(out),
            }
        }
    }

    /// A write (POST, PATCH, PUT, DELETE) of a path, for a type.
    async fn write(&self, ty: ObjectType, method: Method, rel: &str, body: Option<&Value>) -> Result<Option<Value>> {
        let d = ty.descriptor();
        // A create must not be repeated after an answer that may follow
        // its success; the actions that replace a whole list (assign,
        // targetApps, scheduleActionsForRules) can be.
        let replaces = ["/assign", "/targetApps", "/scheduleActionsForRules"]
            .iter()
            .any(|a| rel.ends_with(a));
        let idempotent = method != Method::POST || replaces;
        let call = Call {
            method,
            url: self.url(rel)?,
            body,
            accept: accept_for(ty),
            permission: d.write_permission.unwrap_or(d.read_permission),
            what: path_only(rel),
            weight: 1,
            write: true,
            idempotent,
        };
        self.execute(&call).await
    }

    /// Reads up to any number of paths (relative to the API version, query
    /// allowed) with `$batch`, at most [`BATCH_MAX`] per call; one result
    /// per path, in order. A throttled item is retried alone after its own
    /// `Retry-After` (an item refused with 401 at once, with a fresh
    /// token); any other failed item is that item's classified error,
    /// never dropped. A 403 names the permission the path's type needs to
    /// be read.
    pub async fn batch_get(&self, paths: &[String]) -> Vec<Result<Value>> {
        let mut out: Vec<Option<Result<Value>>> = (0..paths.len()).map(|_| None).collect();
        let batch_url = match self.url("$batch") {
            Ok(u) => u,
            Err(e) => return paths.iter().map(|_| Err(e.clone())).collect(),
        };
        for (chunk_no, chunk) in paths.chunks(BATCH_MAX).enumerate() {
            let base = chunk_no * BATCH_MAX;
            let requests: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let accept = type_of_path(p).map(accept_for).unwrap_or(ACCEPT_FULL_METADATA);
                    json!({
                        "id": (base + i).to_string(),
                        "method": "GET",
                        "url": format!("/{}", p.trim_start_matches('/')),
                        "headers": {"Accept": accept},
                    })
                })
                .collect();
            let body = json!({ "requests": requests });
            let permission = chunk
                .first()
                .map(|p| permission_for_path(p, false))
                .unwrap_or(PERM_CONFIG_READ);
            let call = Call {
                method: Method::POST,
                url: batch_url.clone(),
                body: Some(&body),
                accept: "application/json",
                permission,
                what: "$batch".to_owned(),
                weight: chunk.len(),
                write: false,
                // Only reads inside: repeating the batch changes nothing.
                idempotent: true,
            };
            let mut answer = match self.execute(&call).await {
                Ok(Some(v)) => v,
                Ok(None) => {
                    let e = ProviderError::Unavailable("Graph's $batch answer is empty".into());
                    for i in 0..chunk.len() {
                        out[base + i] = Some(Err(e.clone()));
                    }
                    continue;
                }
                Err(e) => {
                    for i in 0..chunk.len() {
                        out[base + i] = Some(Err(e.clone()));
                    }
                    continue;
                }
            };
            let answered_at = self.clock.now();
            // Items to send again alone: throttled ones after their own
            // `Retry-After`, and ones refused with 401 (the token expired
            // while the batch ran) at once, with the refresh a single
            // request does.
            let mut again: Vec<(usize, Option<Duration>)> = Vec::new();
            let responses = match answer.get_mut("responses").map(Value::take) {
                Some(Value::Array(r)) => r,
                _ => Vec::new(),
            };
            for mut r in responses {
                let Some(idx) = r
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|i| (base..base + chunk.len()).contains(i))
                else {
                    continue;
                };
                let status = r
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                let item_body = r.get_mut("body").map(Value::take);
                if status.is_success() {
                    out[idx] = Some(Ok(item_body.unwrap_or(Value::Null)));
                    continue;
                }
                let retry_after = r.get("headers").and_then(Value::as_object).and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                        .and_then(|(_, v)| match v {
                            Value::String(s) => parse_retry_after(s, SystemTime::now()),
                            Value::Number(n) => parse_retry_after(&n.to_string(), SystemTime::now()),
                            _ => None,
                        })
                });
                if status == StatusCode::TOO_MANY_REQUESTS {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    again.push((idx, retry_after));
                    continue;
                }
                if status == StatusCode::UNAUTHORIZED {
                    again.push((idx, Some(Duration::ZERO)));
                    continue;
                }
                let p = &paths[idx];
                out[idx] = Some(Err(classify(
                    status,
                    retry_after,
                    item_body.as_ref(),
                    permission_for_path(p, false),
                    &path_only(p),
                )));
            }
            // Each alone, once its own wait is over (soonest first, so the
            // waits overlap instead of adding up).
            again.sort_by_key(|(_, ra)| ra.unwrap_or(Duration::ZERO));
            for (idx, ra) in again {
                let p = &paths[idx];
                let wait = ra.unwrap_or_else(|| self.backoff(0));
                if wait > self.retry.max_retry_after {
                    out[idx] = Some(Err(ProviderError::Throttled {
                        retry_after: Some(wait),
                    }));
                    continue;
                }
                let due = answered_at + wait;
                let now = self.clock.now();
                if due > now {
                    self.pause(due - now).await;
                } else {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                }
                let res = match self.url(p) {
                    Ok(u) => {
                        let accept = type_of_path(p).map(accept_for).unwrap_or(ACCEPT_FULL_METADATA);
                        self.get_url(u, accept, permission_for_path(p, false)).await
                    }
                    Err(e) => Err(e),
                };
                out[idx] = Some(res);
            }
        }
        out.into_iter()
            .zip(paths)
            .map(|(r, p)| {
                r.unwrap_or_else(|| {
                    Err(ProviderError::Unavailable(format!(
                        "Graph's $batch answer has no response for {}",
                        path_only(p)
                    )))
                })
            })
            .collect()
    }

    /// Makes a list entry whole: a missing `@odata.type` is filled in for
    /// a type that has only one; app protection policies' types are
    /// remembered.
    fn note_item(&self, ty: ObjectType, item: &mut Value) {
        let d = ty.descriptor();
        if let Value::Object(m) = item {
            if !m.contains_key("@odata.type")
                && let [only] = d.odata_types
            {
                m.insert("@odata.type".into(), Value::String((*only).to_owned()));
            }
            if ty == ObjectType::AppProtectionPolicy
                && let (Some(id), Some(t)) = (
                    m.get("id").and_then(Value::as_str),
                    m.get("@odata.type").and_then(Value::as_str),
                )
            {
                self.app_types
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_owned(), t.to_owned());
            }
        }
    }

    /// The per-platform collection of an app protection policy, from its
    /// type (remembered, or read).
    async fn app_protection_collection(&self, id: &str, odata_type: Option<&str>) -> Result<&'static str> {
        let d = ObjectType::AppProtectionPolicy.descriptor();
        let known = match odata_type {
            Some(t) => Some(t.to_owned()),
            None => self
                .app_types
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned(),
        };
        let t = match known {
            Some(t) => t,
            None => {
                let mut v = self
                    .get_path(
                        ObjectType::AppProtectionPolicy,
                        &format!("{}/{}", d.collection, seg(id)),
                    )
                    .await?;
                self.note_item(ObjectType::AppProtectionPolicy, &mut v);
                v.get("@odata.type")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_default()
            }
        };
        let coll = d.write_collection(Some(&t));
        if coll == d.collection {
            return Err(ProviderError::Malformed(format!(
                "app protection policy {id} has @odata.type \"{}\", which has no per-platform collection this build knows",
                SafeText::sanitize(&t)
            )));
        }
        Ok(coll)
    }

    /// The collection an object is written (and its assignments read)
    /// through.
    async fn object_collection(&self, ty: ObjectType, id: &str, odata_type: Option<&str>) -> Result<&'static str> {
        if ty == ObjectType::AppProtectionPolicy {
            self.app_protection_collection(id, odata_type).await
        } else {
            Ok(ty.descriptor().write_collection(odata_type))
        }
    }

    /// The definition values of an administrative template with their
    /// presentation values: the values page by page, then every value's
    /// presentation values through `$batch`.
    async fn definition_values(&self, coll: &str, id: &str) -> Result<Vec<Value>> {
        let ty = ObjectType::AdministrativeTemplate;
        let first = self.url(&format!("{coll}/{}/definitionValues?$expand=definition", seg(id)))?;
        let mut values = self.read_pages(first, ty).await?;
        let mut paths = Vec::with_capacity(values.len());
        for (i, dv) in values.iter().enumerate() {
            let Some(dv_id) = dv.get("id").and_then(Value::as_str) else {
                return Err(ProviderError::Malformed(format!(
                    "administrative template {id}: definition value {i} has no id"
                )));
            };
            paths.push(format!(
                "{coll}/{}/definitionValues/{}/presentationValues?$expand=presentation",
                seg(id),
                seg(dv_id)
            ));
        }
        let answers = self.batch_get(&paths).await;
        for (dv, answer) in values.iter_mut().zip(answers) {
            let first_page = answer?;
            let what = "presentationValues";
            let (mut items, mut next) = split_page(first_page, what)?;
            while let Some(n) = next {
                let page = self
                    .get_url(self.cursor_url(&n)?, accept_for(ty), ty.descriptor().read_permission)
                    .await?;
                let (more, after) = split_page(page, what)?;
                items.extend(more);
                next = after;
            }
            if let Value::Object(m) = dv {
                m.insert("presentationValues".into(), Value::Array(items));
            }
        }
        Ok(values)
    }

    /// A definition value made writable: an inline `definition` (or
    /// `presentation`) with an id becomes the `@odata.bind` reference
    /// Graph takes.
    fn definition_value_for_write(&self, dv: &Value) -> Value {
        let mut dv = dv.clone();
        let bind = |path: String| Value::String(format!("{}/beta/{path}", self.graph_base));
        let Value::Object(m) = &mut dv else { return dv };
        let def_id = m
            .get("definition")
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(def_id) = &def_id
            && !m.contains_key("definition@odata.bind")
        {
            m.remove("definition");
            m.insert(
                "definition@odata.bind".into(),
                bind(format!("deviceManagement/groupPolicyDefinitions('{}')", seg(def_id))),
            );
        }
        if let Some(Value::Array(pvs)) = m.get_mut("presentationValues") {
            for pv in pvs.iter_mut() {
                let Value::Object(pm) = pv else { continue };
                let pres_id = pm
                    .get("presentation")
                    .and_then(|p| p.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let (Some(def_id), Some(pres_id)) = (&def_id, pres_id)
                    && !pm.contains_key("presentation@odata.bind")
                {
                    pm.remove("presentation");
                    pm.insert(
                        "presentation@odata.bind".into(),
                        bind(format!(
                            "deviceManagement/groupPolicyDefinitions('{}')/presentations('{}')",
                            seg(def_id),
                            seg(&pres_id)
                        )),
                    );
                }
            }
        }
        dv
    }

    /// Replaces an administrative template's definition values with
    /// `desired` (`updateDefinitionValues`: the current ones deleted, the
    /// desired ones added, in one call).
    async fn replace_definition_values(
        &self,
        coll: &str,
        id: &str,
        desired: &[Value],
        current: &[String],
    ) -> Result<()> {
        if desired.is_empty() && current.is_empty() {
            return Ok(());
        }
        let added: Vec<Value> = desired.iter().map(|dv| self.definition_value_for_write(dv)).collect();
        let body = json!({ "added": added, "updated": [], "deletedIds": current });
        self.write(
            ObjectType::AdministrativeTemplate,
            Method::POST,
            &format!("{coll}/{}/updateDefinitionValues", seg(id)),
            Some(&body),
        )
        .await?;
        Ok(())
    }

    /// The steps after an app protection policy's create or update: its
    /// targeted apps.
    async fn target_apps(&self, coll: &str, id: &str, body: &Value) -> Result<()> {
        let Some(apps) = body.get("apps") else { return Ok(()) };
        let mut b = Map::new();
        b.insert("apps".into(), apps.clone());
        if let Some(g) = body.get("appGroupType") {
            b.insert("appGroupType".into(), g.clone());
        }
        self.write(
            ObjectType::AppProtectionPolicy,
            Method::POST,
            &format!("{coll}/{}/targetApps", seg(id)),
            Some(&Value::Object(b)),
        )
        .await?;
        Ok(())
    }
}

/// A path without its query (for messages and logs).
fn path_only(rel: &str) -> String {
    rel.split('?')
        .next()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned()
}

fn parse_base_url(raw: &str, what: &str) -> Result<Url> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        ProviderError::Malformed(format!("the {what} \"{}\" is not a URL ({e})", SafeText::sanitize(raw)))
    })?;
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        return Err(ProviderError::Malformed(format!(
            "the {what} \"{}\" must use https (plain http is only for a local Graph on loopback): the secret and the token would travel unencrypted",
            SafeText::sanitize(raw)
        )));
    }
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(ProviderError::Malformed(format!(
            "the {what} \"{}\" must be an http(s) URL",
            SafeText::sanitize(raw)
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || url.username() != "" || url.password().is_some() {
        return Err(ProviderError::Malformed(format!(
            "the {what} must not carry a query, a fragment or credentials"
        )));
    }
    Ok(url)
}

fn read_only(ty: ObjectType) -> ProviderError {
    ProviderError::InvalidPayload(format!("{ty} objects are read only"))
}

fn no_assignments(ty: ObjectType) -> ProviderError {
    ProviderError::InvalidPayload(format!("{ty} objects have no assignments"))
}

fn odata_type(body: &Value) -> Option<&str> {
    body.get("@odata.type").and_then(Value::as_str)
}

#[async_trait]
impl TenantProvider for GraphProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Graph
    }

    /// Signs in and reads the granted application permissions from the
    /// token's `roles` claim (a token that is not a JWT grants none that
    /// can be named).
    async fn access(&self) -> Result<Access> {
        let token = self.token(None).await?;
        let claims = decode_claims(&token.0).unwrap_or_default();
        Ok(Access {
            tenant_id: claims.tenant_id.unwrap_or_else(|| self.tenant.clone()),
            granted: claims.roles,
        })
    }

    async fn list_page(&self, ty: ObjectType, cursor: Option<&str>) -> Result<Page> {
        let d = ty.descriptor();
        let url = match cursor {
            Some(c) => self.cursor_url(c)?,
            None => self.url(d.collection)?,
        };
        let page = self.get_url(url, accept_for(ty), d.read_permission).await?;
        let (items, next) = split_page(page, d.collection)?;
        let mut kept = Vec::with_capacity(items.len());
        let mut skipped = 0usize;
        for mut item in items {
            // managedAppPolicies also lists app configuration and other
            // policies that are not app protection: they are not this
            // type, so they are left out (counted in the log).
            if ty == ObjectType::AppProtectionPolicy && !odata_type(&item).is_some_and(|t| d.knows(t)) {
                skipped += 1;
                continue;
            }
            self.note_item(ty, &mut item);
            kept.push(item);
        }
        if skipped > 0 {
            tracing::info!(
                skipped,
                "managedAppPolicies items that are not app protection policies left out"
            );
        }
        Ok(Page { items: kept, next })
    }

    async fn get(&self, ty: ObjectType, id: &str) -> Result<Value> {
        check_id(id)?;
        let d = ty.descriptor();
        let item_path = format!("{}/{}", d.collection, seg(id));
        let mut obj = match d.navigation {
            Navigation::ScheduledActions => {
                self.get_path(
                    ty,
                    &format!("{item_path}?$expand=scheduledActionsForRule($expand=scheduledActionConfigurations)"),
                )
                .await?
            }
            _ => self.get_path(ty, &item_path).await?,
        };
        if !obj.is_object() {
            return Err(ProviderError::Malformed(format!(
                "{item_path}: the answer is not an object"
            )));
        }
        self.note_item(ty, &mut obj);
        match d.navigation {
            Navigation::None | Navigation::ScheduledActions | Navigation::ItemRead => {}
            Navigation::Settings => {
                let settings = self.read_pages(self.url(&format!("{item_path}/settings"))?, ty).await?;
                let name = obj.get(d.name_property).and_then(Value::as_str).unwrap_or(id);
                let Some(expected) = obj.get("settingCount").and_then(Value::as_u64) else {
                    return Err(ProviderError::Malformed(format!(
                        "settings catalog policy \"{}\" ({id}) has no settingCount to check its {} settings against",
                        SafeText::sanitize(name),
                        settings.len()
                    )));
                };
                if expected != settings.len() as u64 {
                    return Err(ProviderError::Malformed(format!(
                        "settings catalog policy \"{}\" ({id}): read {} settings, but its settingCount is {expected}",
                        SafeText::sanitize(name),
                        settings.len()
                    )));
                }
                obj["settings"] = Value::Array(settings);
            }
            Navigation::DefinitionValues => {
                let values = self.definition_values(d.collection, id).await?;
                obj["definitionValues"] = Value::Array(values);
            }
            Navigation::Apps => {
                let coll = self.app_protection_collection(id, odata_type(&obj)).await?;
                let apps = self
                    .read_pages(self.url(&format!("{coll}/{}/apps", seg(id)))?, ty)
                    .await?;
                obj["apps"] = Value::Array(apps);
            }
        }
        Ok(obj)
    }

    /// Creates an object. Navigation data is written the way Graph takes
    /// it: settings and scheduled actions inline; an administrative
    /// template's definition values after an empty create
    /// (`updateDefinitionValues`); an app protection policy's apps after
    /// the create (`targetApps`). `assignments` are not sent (they are
    /// written with [`assign`](TenantProvider::assign)).
    async fn create(&self, ty: ObjectType, body: &Value) -> Result<Value> {
        let d = ty.descriptor();
        if d.update == UpdateVerb::ReadOnly {
            return Err(read_only(ty));
        }
        let coll = d.write_collection(odata_type(body));
        let post_body = match ty {
            ObjectType::AdministrativeTemplate => without(body, &["assignments", "definitionValues"]),
            ObjectType::AppProtectionPolicy => without(body, &["assignments", "apps"]),
            _ => without(body, &["assignments"]),
        };
        let created = self
            .write(ty, Method::POST, coll, Some(&post_body))
            .await?
            .ok_or_else(|| ProviderError::Malformed(format!("{coll}: Graph answered a create without the object")))?;
        let new_id = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Malformed(format!("{coll}: the created object has no id")))?
            .to_owned();
        let mut created = created;
        self.note_item(ty, &mut created);
        match ty {
            ObjectType::AdministrativeTemplate => {
                if let Some(Value::Array(dvs)) = body.get("definitionValues") {
                    self.replace_definition_values(coll, &new_id, dvs, &[]).await?;
                }
            }
            ObjectType::AppProtectionPolicy => self.target_apps(coll, &new_id, body).await?,
            _ => {}
        }
        Ok(created)
    }

    /// Updates an object with its type's verb (PUT replaces a settings
    /// catalog policy, settings included; the others are PATCHed) and the
    /// type's follow-up calls: a compliance policy's scheduled actions
    /// (`scheduleActionsForRules`), an app protection policy's apps
    /// (`targetApps`), an administrative template's definition values
    /// (replaced with `updateDefinitionValues`).
    async fn update(&self, ty: ObjectType, id: &str, body: &Value) -> Result<()> {
        check_id(id)?;
        let d = ty.descriptor();
        let method = match d.update {
            UpdateVerb::ReadOnly => return Err(read_only(ty)),
            UpdateVerb::Patch => Method::PATCH,
            UpdateVerb::Put => Method::PUT,
        };
        let coll = self.object_collection(ty, id, odata_type(body)).await?;
        let item = format!("{coll}/{}", seg(id));
        let own = match ty {
            ObjectType::CompliancePolicy => without(body, &["assignments", "scheduledActionsForRule"]),
            ObjectType::AdministrativeTemplate => without(body, &["assignments", "definitionValues"]),
            ObjectType::AppProtectionPolicy => without(body, &["assignments", "apps"]),
            _ => without(body, &["assignments"]),
        };
        self.write(ty, method, &item, Some(&own)).await?;
        match ty {
            ObjectType::CompliancePolicy => {
                if let Some(rules) = body.get("scheduledActionsForRule") {
                    let b = json!({ "deviceComplianceScheduledActionForRules": rules });
                    self.write(ty, Method::POST, &format!("{item}/scheduleActionsForRules"), Some(&b))
                        .await?;
                }
            }
            ObjectType::AdministrativeTemplate => {
                if let Some(Value::Array(desired)) = body.get("definitionValues") {
                    let first = self.url(&format!("{item}/definitionValues"))?;
                    let current: Vec<String> = self
                        .read_pages(first, ty)
                        .await?
                        .iter()
                        .filter_map(|dv| dv.get("id").and_then(Value::as_str).map(str::to_owned))
                        .collect();
                    self.replace_definition_values(coll, id, desired, &current).await?;
                }
            }
            ObjectType::AppProtectionPolicy => self.target_apps(coll, id, body).await?,
            _ => {}
        }
        Ok(())
    }

    async fn delete(&self, ty: ObjectType, id: &str) -> Result<()> {
        check_id(id)?;
        if ty.descriptor().update == UpdateVerb::ReadOnly {
            return Err(read_only(ty));
        }
        let coll = self.object_collection(ty, id, None).await?;
        self.write(ty, Method::DELETE, &format!("{coll}/{}", seg(id)), None)
            .await?;
        if ty == ObjectType::AppProtectionPolicy {
            self.app_types.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        }
        Ok(())
    }

    async fn assignments(&self, ty: ObjectType, id: &str) -> Result<Vec<Value>> {
        check_id(id)?;
        if ty.descriptor().assign_wrapper.is_none() {
            return Err(no_assignments(ty));
        }
        let coll = self.object_collection(ty, id, None).await?;
        self.read_pages(self.url(&format!("{coll}/{}/assignments", seg(id)))?, ty)
            .await
    }

    async fn assign(&self, ty: ObjectType, id: &str, assignments: &[Value]) -> Result<()> {
        check_id(id)?;
        let Some(wrapper) = ty.descriptor().assign_wrapper else {
            return Err(no_assignments(ty));
        };
        let coll = self.object_collection(ty, id, None).await?;
        let mut body = Map::new();
        body.insert(wrapper.to_owned(), Value::Array(assignments.to_vec()));
        self.write(
            ty,
            Method::POST,
            &format!("{coll}/{}/assign", seg(id)),
            Some(&Value::Object(body)),
        )
        .await?;
        Ok(())
    }

    async fn find_groups(&self, name: &str) -> Result<Vec<Value>> {
        let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
        let rel = format!("groups?$filter={}", utf8_percent_encode(&filter, QUERY_VALUE));
        let mut groups = self.read_pages(self.url(&rel)?, ObjectType::Group).await?;
        for g in &mut groups {
            self.note_item(ObjectType::Group, g);
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_must_be_a_guid_or_a_domain() {
        for ok in [
            "6f1f2c1e-0000-4000-8000-000000000001",
            "contoso.onmicrosoft.com",
            "fabrikam.com",
            "sub-1.example.co.uk",
        ] {
            assert!(validate_tenant(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "common",
            "contoso",
            "contoso..com",
            "-x.com",
            "a b.com",
            "x.com/../evil",
            "1.2.3.4",
            "contoso.com?x=1",
        ] {
            let e = validate_tenant(bad).unwrap_err();
            assert!(e.to_string().contains("GUID"), "{bad}: {e}");
        }
    }

    fn provider(graph: &str) -> GraphProvider {
        let mut c = GraphConfig::new("contoso.onmicrosoft.com", "app", ClientSecret::new("s3cr3t-value"));
        c.graph_url = graph.to_owned();
        GraphProvider::with_parts(c, reqwest::Client::new(), Arc::new(crate::clock::ManualClock::new())).unwrap()
    }

    #[test]
    fn cursors_must_point_under_the_configured_graph() {
        let p = provider("https://graph.microsoft.com");
        assert!(
            p.cursor_url("https://graph.microsoft.com/beta/deviceManagement/configurationPolicies?$skiptoken=abc")
                .is_ok()
        );
        for bad in [
            "https://evil.example/beta/deviceManagement/configurationPolicies",
            "http://graph.microsoft.com/beta/x",
            "https://graph.microsoft.com:8443/beta/x",
            "https://graph.microsoft.com.evil.example/beta/x",
            "https://user:pw@graph.microsoft.com/beta/x",
            "https://graph.microsoft.com/v1.0/x",
            "/beta/x",
            "not a url",
        ] {
            let e = p.cursor_url(bad).unwrap_err();
            assert!(matches!(e, ProviderError::Malformed(_)), "{bad}");
        }
        // A Graph URL with a path: cursors stay below it.
        let p = provider("http://127.0.0.1:9999/graph/");
        assert!(
            p.cursor_url("http://127.0.0.1:9999/graph/beta/groups?$skiptoken=1")
                .is_ok()
        );
        assert!(p.cursor_url("http://127.0.0.1:9999/beta/groups").is_err());
    }

    #[test]
    fn errors_are_classified_with_the_permission_and_a_sanitized_message() {
        let body = json!({"error": {"code": "BadRequest", "message": "Property 'id' is read-only. Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}});
        let e = classify(StatusCode::BAD_REQUEST, None, Some(&body), "P", "x");
        let ProviderError::InvalidPayload(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.starts_with("BadRequest: Property 'id' is read-only"), "{m}");
        assert!(!m.contains("eyJ"), "{m}");
        assert_eq!(
            classify(StatusCode::FORBIDDEN, None, None, PERM_APPS_WRITE, "x"),
            ProviderError::PermissionMissing {
                permission: PERM_APPS_WRITE.into()
            }
        );
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, None, None, "P", "deviceManagement/x/1"),
            ProviderError::NotFound(w) if w == "deviceManagement/x/1"
        ));
        assert!(matches!(
            classify(StatusCode::CONFLICT, None, None, "P", "x"),
            ProviderError::Conflict(_)
        ));
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_millis(500)),
                None,
                "P",
                "x"
            ),
            ProviderError::Throttled {
                retry_after: Some(Duration::from_millis(500))
            }
        );
        for s in [500, 502, 503, 504] {
            let e = classify(StatusCode::from_u16(s).unwrap(), None, None, "P", "x");
            assert!(matches!(e, ProviderError::Unavailable(_)), "{s}");
        }
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, None, None, "P", "x"),
            ProviderError::AuthFailed(_)
        ));
    }

    #[test]
    fn retries_after_5xx_only_when_repeating_cannot_apply_twice() {
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS, false));
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE, false));
        assert!(!retryable_status(StatusCode::GATEWAY_TIMEOUT, false));
        assert!(retryable_status(StatusCode::GATEWAY_TIMEOUT, true));
        assert!(!retryable_status(StatusCode::BAD_REQUEST, true));
        assert!(!retryable_status(StatusCode::FORBIDDEN, true));
    }

    #[test]
    fn paths_name_their_type_and_permission() {
        assert_eq!(
            type_of_path("deviceManagement/configurationPolicies/1/settings"),
            Some(ObjectType::SettingsCatalogPolicy)
        );
        assert_eq!(
            type_of_path("/deviceAppManagement/iosManagedAppProtections/1/apps"),
            Some(ObjectType::AppProtectionPolicy)
        );
        assert_eq!(type_of_path("groups?$filter=x"), Some(ObjectType::Group));
        assert_eq!(type_of_path("deviceManagement/configurationPoliciesX"), None);
        assert_eq!(
            permission_for_path("deviceAppManagement/mobileApps/1", false),
            PERM_APPS_READ
        );
        assert_eq!(
            permission_for_path(
                "deviceManagement/groupPolicyConfigurations/1/definitionValues/2/presentationValues",
                false
            ),
            PERM_CONFIG_READ
        );
        assert_eq!(permission_for_path("deviceManagement/other", true), PERM_CONFIG_WRITE);
    }

    #[test]
    fn group_filters_escape_quotes_and_encode_the_value() {
        let filter = format!("displayName eq '{}'", "O'Brien & Co #1".replace('\'', "''"));
        let enc = utf8_percent_encode(&filter, QUERY_VALUE).to_string();
        assert_eq!(enc, "displayName%20eq%20%27O%27%27Brien%20%26%20Co%20%231%27");
    }

    #[test]
    fn ids_cannot_leave_their_path_segment() {
        for bad in ["", ".", "..", "..."] {
            assert!(
                matches!(check_id(bad), Err(ProviderError::InvalidPayload(_))),
                "{bad:?}"
            );
        }
        assert!(check_id("a.b").is_ok());
        assert_eq!(seg("../../groups"), "..%2F..%2Fgroups");
        assert_eq!(seg("a?b#c"), "a%3Fb%23c");
        assert_eq!(
            seg("6f1f2c1e-0000-4000-8000-000000000001"),
            "6f1f2c1e-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn definition_values_are_written_with_binds() {
        let p = provider("https://graph.microsoft.com");
        let dv = json!({
            "enabled": true,
            "definition": {"id": "d1", "displayName": "x"},
            "presentationValues": [{"@odata.type": "#microsoft.graph.groupPolicyPresentationValueText", "value": "v", "presentation": {"id": "p1"}}]
        });
        let w = p.definition_value_for_write(&dv);
        assert_eq!(
            w["definition@odata.bind"],
            "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('d1')"
        );
        assert!(w.get("definition").is_none());
        assert_eq!(
            w["presentationValues"][0]["presentation@odata.bind"],
            "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('d1')/presentations('p1')"
        );
        assert!(w["presentationValues"][0].get("presentation").is_none());
    }

    #[test]
    fn the_config_debug_never_shows_the_secret() {
        let c = GraphConfig::new("contoso.com", "app", ClientSecret::new("Xy7~super.secret-value"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("super.secret"), "{shown}");
        let p = provider("https://graph.microsoft.com");
        assert!(!format!("{p:?}").contains("s3cr3t-value"));
    }
}
