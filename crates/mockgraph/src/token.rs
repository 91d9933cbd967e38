//! The token endpoint, shaped like Entra ID's client-credentials flow
//! (`POST /{tenant}/oauth2/v2.0/token`), and the bearer check every Graph
//! request passes.
//!
//! Access tokens are JWT-shaped (`header.payload.signature`, base64url);
//! the payload carries what Graph's does (`tid`, `appid`, `roles`, `aud`,
//! `exp`, …) so a client can read its granted permissions from `roles`.
//! They are not signed: the local Graph recognises a token by remembering
//! the ones it issued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::log::{Entry, RequestKind};
use crate::reply::{Reply, RequestIds, new_guid};
use crate::state::{Shared, Tenant};

/// Graph's audience and the only scope the client-credentials flow grants.
pub(crate) const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// How long an expired token is still recognised as "expired" (rather than
/// "unknown") before it is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

struct Issued {
    tenant: String,
    expires: Instant,
}

/// The tokens issued by this run.
#[derive(Default)]
pub(crate) struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization: Bearer …`.
    Missing,
    /// Not a JWT.
    Malformed,
    /// A JWT this run did not issue.
    Unknown,
    /// Past its lifetime (or expired by a fault).
    Expired,
}

impl Refusal {
    /// Graph's 401 for it.
    pub fn reply(self) -> Reply {
        Reply::unauthenticated(match self {
            Refusal::Missing => "Access token is empty.",
            Refusal::Malformed => "CompactToken parsing failed with error code: 80049217",
            Refusal::Unknown => "Access token validation failure. Invalid signature.",
            Refusal::Expired => "Lifetime validation failed, the token is expired.",
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a token for `tenant` and the app `client_id`.
    pub fn issue(&self, tenant: &Tenant, client_id: &str, lifetime: Duration) -> String {
        let now = unix_now();
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": "tenantatlas-mockgraph"});
        let payload = json!({
            "aud": GRAPH_AUDIENCE,
            "iss": format!("https://sts.windows.net/{}/", tenant.id),
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(lifetime.as_secs()),
            "app_displayname": "tenantatlas-mockgraph client",
            "appid": client_id,
            "appidacr": "1",
            "idp": format!("https://sts.windows.net/{}/", tenant.id),
            "idtyp": "app",
            "oid": new_guid(),
            "roles": tenant.granted,
            "sub": new_guid(),
            "tenant_region_scope": "EU",
            "tid": tenant.id,
            "uti": new_guid(),
            "ver": "1.0",
        });
        let signature: [u8; 32] = rand::random();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        let at = Instant::now();
        let mut issued = self.lock();
        issued.retain(|_, i| i.expires.checked_add(FORGET_AFTER).is_none_or(|until| until > at));
        issued.insert(
            token.clone(),
            Issued {
                tenant: tenant.id.clone(),
                // The lifetime is capped (MAX_TOKEN_LIFETIME); never panic.
                expires: at.checked_add(lifetime).unwrap_or(at),
            },
        );
        token
    }

    /// The tenant id a bearer token (`Authorization` header value) is for.
    pub fn check(&self, authorization: Option<&str>) -> Result<String, Refusal> {
        let token = bearer(authorization).ok_or(Refusal::Missing)?;
        if !jwt_shaped(token) {
            return Err(Refusal::Malformed);
        }
        let issued = self.lock();
        let i = issued.get(token).ok_or(Refusal::Unknown)?;
        if Instant::now() >= i.expires {
            return Err(Refusal::Expired);
        }
        Ok(i.tenant.clone())
    }

    /// Expires a token now (the `expire_token` fault): it stays refused,
    /// as a real expired token does, until the client gets a new one.
    pub fn expire(&self, authorization: Option<&str>) {
        if let Some(token) = bearer(authorization)
            && let Some(i) = self.lock().get_mut(token)
        {
            i.expires = Instant::now();
        }
    }
}

/// The token of an `Authorization: Bearer …` value.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Three base64url parts whose first two are JSON objects.
fn jwt_shaped(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    parts[..2].iter().all(|p| {
        URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v.is_object())
    })
}

/// Entra ID's error shape.
fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Reply {
    let trace = new_guid();
    let correlation = new_guid();
    let timestamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default();
    Reply::json(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn missing(param: &str) -> Reply {
    entra_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{param}'."),
    )
}

/// Whether `scope` asks for Graph's application permissions.
fn graph_default_scope(scope: &str) -> bool {
    let s = scope.trim().to_ascii_lowercase();
    s == format!("{GRAPH_AUDIENCE}/.default") || s == format!("{GRAPH_APP_ID}/.default")
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_endpoint(shared: &Shared, method: &str, tenant: &str, body: &[u8]) -> Reply {
    let (reply, served) = answer(shared, method, tenant, body);
    shared.log.record(Entry {
        kind: RequestKind::Token,
        method,
        path: &format!("/{tenant}/oauth2/v2.0/token"),
        status: reply.status.as_u16(),
        tenant: served,
        in_batch: false,
    });
    reply.finish(&RequestIds::new(None))
}

fn answer(shared: &Shared, method: &str, tenant: &str, body: &[u8]) -> (Reply, Option<String>) {
    if method != "POST" {
        return (
            entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            ),
            None,
        );
    }
    let Some(t) = shared.tenant(tenant) else {
        return (
            entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ),
            None,
        );
    };
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(grant) = get("grant_type") else {
        return (missing("grant_type"), None);
    };
    if grant != "client_credentials" {
        return (
            entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{grant}'."),
            ),
            None,
        );
    }
    let Some(client_id) = get("client_id") else {
        return (missing("client_id"), None);
    };
    let Some(scope) = get("scope") else {
        return (missing("scope"), None);
    };
    if !graph_default_scope(scope) {
        return (
            entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ),
            None,
        );
    }
    let credential_ok = match (get("client_secret"), get("client_assertion")) {
        (Some(secret), _) => shared
            .settings
            .client_secret
            .as_deref()
            .is_none_or(|want| want == secret),
        (None, Some(assertion)) => {
            // A certificate credential: the local Graph cannot check the
            // signature, so it takes any JWT-shaped assertion — unless a
            // client secret is required.
            if get("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return (missing("client_assertion_type"), None);
            }
            if shared.settings.client_secret.is_some() || !jwt_shaped(assertion) {
                return (
                    entra_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        700027,
                        "Client assertion failed signature validation.",
                    ),
                    None,
                );
            }
            true
        }
        (None, None) => {
            return (
                entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                ),
                None,
            );
        }
    };
    if !credential_ok {
        return (
            entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ),
            None,
        );
    }
    let lifetime = shared.settings.token_lifetime;
    let token = shared.tokens.issue(t, client_id, lifetime);
    let secs = lifetime.as_secs();
    (
        Reply::json(
            StatusCode::OK,
            json!({
                "token_type": "Bearer",
                "expires_in": secs,
                "ext_expires_in": secs,
                "access_token": token,
            }),
        ),
        Some(t.id.clone()),
    )
}
