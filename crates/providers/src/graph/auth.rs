//! OAuth2 client credentials against Entra ID: the client secret (whose
//! `Debug` hides it), the token request, the token cache, and reading the
//! granted application permissions from the token's `roles` claim.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde::Deserialize;
use serde_json::Value;
use tenantatlas_domain::sanitize::SafeText;

use crate::clock::Clock;
use crate::error::{ProviderError, Result};

/// A client secret. Its `Debug` prints `[redacted]`, it has no `Display`,
/// and [`expose`](ClientSecret::expose) is the only way to read it (the
/// token request's form body).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself: only for the token request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl From<String> for ClientSecret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for ClientSecret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A bearer token. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccessToken(pub(crate) Arc<str>);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// A token and when to stop using it (clock time).
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub(crate) token: AccessToken,
    /// Five minutes before the token's expiry (or half its life, for a
    /// token that lives less than ten minutes).
    pub(crate) refresh_at: Duration,
}

/// How long before expiry a cached token is replaced.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// When a token that lives `lifetime` from `now` should be replaced: five
/// minutes before it expires; for a short-lived token (under ten minutes,
/// which real Entra never issues but a test Graph may) at half its life, so
/// it is still used at all.
pub fn refresh_at(now: Duration, lifetime: Duration) -> Duration {
    // an answer that claims a lifetime of centuries is a day at most
    let lifetime = lifetime.min(Duration::from_secs(86_400));
    let margin = if lifetime >= REFRESH_MARGIN * 2 {
        REFRESH_MARGIN
    } else {
        lifetime / 2
    };
    now + lifetime.saturating_sub(margin)
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; Entra's v2 endpoint sends a number, older ones a string.
    #[serde(default)]
    expires_in: Option<Value>,
}

/// Entra's error answer.
#[derive(Deserialize, Default)]
struct EntraError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Where and as whom to sign in.
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) token_url: reqwest::Url,
    pub(crate) client_id: String,
    pub(crate) secret: ClientSecret,
    pub(crate) scope: String,
}

/// Removes every occurrence of the secret from a message, then runs the
/// domain's sanitizer over it: Entra's descriptions never echo a secret,
/// but nothing here relies on that.
pub(crate) fn scrub(message: &str, secret: &ClientSecret) -> String {
    let s = secret.expose();
    let text = if s.len() >= 4 {
        message.replace(s, "[redacted]")
    } else {
        message.to_owned()
    };
    SafeText::sanitize(&text).into_string()
}

/// The token cache: one token at a time; callers that find it stale wait
/// for one refresh between them (the async mutex is held across the token
/// request, so concurrent callers share it: single flight).
#[derive(Debug)]
pub(crate) struct TokenCache {
    slot: tokio::sync::Mutex<Option<CachedToken>>,
}

impl TokenCache {
    pub(crate) fn new() -> Self {
        Self {
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid for a while yet. `stale` is a token Graph has just
    /// refused with 401: if the cache still holds it, it is replaced
    /// (once, however many callers saw the 401).
    pub(crate) async fn get(
        &self,
        http: &reqwest::Client,
        creds: &Credentials,
        clock: &dyn Clock,
        stale: Option<&AccessToken>,
    ) -> Result<AccessToken> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref() {
            let refused = stale.is_some_and(|s| *s == c.token);
            if !refused && clock.now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fresh = request_token(http, creds, clock).await?;
        let token = fresh.token.clone();
        *slot = Some(fresh);
        Ok(token)
    }
}

/// One client-credentials token request.
async fn request_token(http: &reqwest::Client, creds: &Credentials, clock: &dyn Clock) -> Result<CachedToken> {
    let started = Instant::now();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", creds.client_id.as_str()),
        ("client_secret", creds.secret.expose()),
        ("scope", creds.scope.as_str()),
    ];
    let answer = http.post(creds.token_url.clone()).form(&form).send().await;
    let resp = match answer {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(path = creds.token_url.path(), error = %transport_kind(&e), "token request failed");
            return Err(ProviderError::Unavailable(format!(
                "the sign-in service at {} cannot be reached ({})",
                origin(&creds.token_url),
                transport_kind(&e)
            )));
        }
    };
    let status = resp.status();
    tracing::debug!(
        method = "POST",
        path = creds.token_url.path(),
        status = status.as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "token request"
    );
    let bytes = resp.bytes().await.map_err(|e| {
        ProviderError::Unavailable(format!("the sign-in answer could not be read ({})", transport_kind(&e)))
    })?;
    if status.is_success() {
        let t: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| ProviderError::AuthFailed("the sign-in service answered without an access token".into()))?;
        let secs = match &t.expires_in {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0)
        // Entra's client-credentials tokens live an hour or more; a
        // missing lifetime is taken as the shortest usual one.
        .unwrap_or(3600.0);
        let lifetime = Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(3600));
        return Ok(CachedToken {
            token: AccessToken(Arc::from(t.access_token)),
            refresh_at: refresh_at(clock.now(), lifetime),
        });
    }
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(ProviderError::Unavailable(format!(
            "the sign-in service answered {}",
            status.as_u16()
        )));
    }
    let e: EntraError = serde_json::from_slice(&bytes).unwrap_or_default();
    let code = e.error.unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    let detail = e
        .error_description
        // Entra appends trace and correlation ids and a timestamp after a
        // line break; the first line is what a person needs.
        .map(|d| d.lines().next().unwrap_or_default().trim().to_owned())
        .filter(|d| !d.is_empty())
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    Err(ProviderError::AuthFailed(scrub(
        &format!("{code}{detail}"),
        &creds.secret,
    )))
}

/// `scheme://host[:port]` of a URL, for messages (never a path or query).
pub(crate) fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// What kind of transport failure, in words (reqwest's own message can
/// hold the full URL; this never does).
pub(crate) fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else if e.is_request() {
        "the request could not be sent"
    } else {
        "transport error"
    }
}

/// What an access token says about the connection (its payload claims;
/// the signature is not checked: the token came to us from the sign-in
/// service over TLS, and Graph checks it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenClaims {
    /// `roles`: the application permissions granted.
    pub roles: Vec<String>,
    /// `tid`: the tenant's id.
    pub tenant_id: Option<String>,
}

/// Decodes a JWT's payload (base64url, with or without padding) into its
/// claims. A token that is not a JWT is `None`.
pub fn decode_claims(token: &str) -> Option<TokenClaims> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = LENIENT
        .decode(payload)
        .or_else(|_| general_purpose::STANDARD.decode(payload))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let roles = v
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let tenant_id = v.get("tid").and_then(Value::as_str).map(str::to_owned);
    Some(TokenClaims { roles, tenant_id })
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn jwt(payload: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
        format!("{h}.{p}.c2lnbmF0dXJl")
    }

    #[test]
    fn roles_and_tenant_are_read_from_the_token_payload() {
        let t = jwt(&serde_json::json!({
            "aud": "https://graph.microsoft.com",
            "tid": "6f1f2c1e-0000-4000-8000-000000000001",
            "roles": ["DeviceManagementConfiguration.ReadWrite.All", "Group.Read.All"],
            // Characters that base64url spells with '-' and '_'.
            "name": "??>>~~",
        }));
        let c = decode_claims(&t).unwrap();
        assert_eq!(
            c.roles,
            vec!["DeviceManagementConfiguration.ReadWrite.All", "Group.Read.All"]
        );
        assert_eq!(c.tenant_id.as_deref(), Some("6f1f2c1e-0000-4000-8000-000000000001"));
        // Padded payloads decode too.
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        while !parts[1].len().is_multiple_of(4) {
            parts[1].push('=');
        }
        assert_eq!(decode_claims(&parts.join(".")).unwrap(), c);
    }

    #[test]
    fn a_token_without_roles_grants_nothing_and_garbage_is_not_a_token() {
        let c = decode_claims(&jwt(&serde_json::json!({"tid": "t"}))).unwrap();
        assert!(c.roles.is_empty());
        assert_eq!(decode_claims("not-a-jwt"), None);
        assert_eq!(decode_claims("a.b"), None);
        assert_eq!(decode_claims("a.!!!.c"), None);
        assert_eq!(decode_claims("a.b.c.d"), None);
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let s = ClientSecret::new("Xy7~super.secret-value");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("super"), "{shown}");
        assert!(shown.contains("[redacted]"));
        let t = AccessToken(Arc::from("eyJ.token.value"));
        assert!(!format!("{t:?}").contains("eyJ"));
    }

    #[test]
    fn scrub_removes_the_secret_from_a_message() {
        let s = ClientSecret::new("Xy7~super.secret-value");
        let m = scrub(
            "AADSTS7000215: Invalid client secret provided: Xy7~super.secret-value",
            &s,
        );
        assert!(!m.contains("super.secret"), "{m}");
        assert!(m.starts_with("AADSTS7000215: Invalid client secret provided"), "{m}");
    }

    #[test]
    fn tokens_are_replaced_five_minutes_before_expiry() {
        let now = Duration::from_secs(1000);
        assert_eq!(
            refresh_at(now, Duration::from_secs(3600)),
            now + Duration::from_secs(3300)
        );
        // A test Graph's 60-second token is used for 30 seconds.
        assert_eq!(refresh_at(now, Duration::from_secs(60)), now + Duration::from_secs(30));
    }
}
