//! How a handler reaches its tenant: the tenant's provider spec (and, for
//! Microsoft Graph, its sealed credentials) turned into a
//! [`TenantProvider`]. Every tenant-data handler connects through here, so
//! "not configured" and "no credentials" block a run the same way
//! everywhere.

use std::path::Path;
use std::sync::Arc;

use tenantatlas_domain::Timestamp;
use tenantatlas_domain::names::ProviderSpec;
use tenantatlas_engine::port::Tenant;
use tenantatlas_engine::worker::HandlerError;
use tenantatlas_engine::{Engine, EngineError};
use tenantatlas_providers::directory::DirectoryProvider;
use tenantatlas_providers::graph::{ClientSecret, GraphConfig, GraphProvider};
use tenantatlas_providers::{ProviderError, TenantProvider};

/// Where Microsoft Graph and its sign-in live (overridable for national
/// clouds and for the local Graph).
#[derive(Clone, Debug)]
pub struct Connector {
    /// `TENANTATLAS_GRAPH_URL`, default `https://graph.microsoft.com`.
    pub graph_url: String,
    /// `TENANTATLAS_LOGIN_URL`, default `https://login.microsoftonline.com`.
    pub login_url: String,
}

impl Default for Connector {
    fn default() -> Self {
        Self {
            graph_url: "https://graph.microsoft.com".into(),
            login_url: "https://login.microsoftonline.com".into(),
        }
    }
}

/// Why a tenant could not be connected.
#[derive(Debug)]
pub enum Unconnected {
    /// A precondition: no provider, no credentials, a spec this build
    /// cannot read. The run is blocked; nothing was read or written.
    Blocked(String),
    /// The provider itself failed (a folder that does not load, …).
    Provider(ProviderError),
}

impl Unconnected {
    /// As a handler's error (`now` by the engine's clock): blocked, or the
    /// provider's classified failure (fatal or retryable as it says).
    pub fn into_handler_error(self, now: Timestamp) -> HandlerError {
        match self {
            Unconnected::Blocked(why) => HandlerError::Blocked(why),
            Unconnected::Provider(e) => provider_error(&e, now),
        }
    }
}

/// A provider failure as a handler error: retryable ones go back to the
/// queue — no earlier than the provider's `Retry-After` (law 12), the
/// engine's backoff when it gave none —, the rest fail the run with their
/// reason code.
pub fn provider_error(e: &ProviderError, now: Timestamp) -> HandlerError {
    if !e.retryable() {
        return HandlerError::fatal(e.reason(), &e.safe_message());
    }
    let err = HandlerError::retryable(e.reason(), &e.safe_message());
    match e {
        ProviderError::Throttled {
            retry_after: Some(wait),
        } => err.not_before(now.plus(*wait)),
        _ => err,
    }
}

impl Connector {
    /// From `TENANTATLAS_GRAPH_URL` and `TENANTATLAS_LOGIN_URL`, with
    /// Microsoft's global cloud as the default.
    pub fn from_env() -> Self {
        let mut c = Connector::default();
        if let Ok(u) = std::env::var("TENANTATLAS_GRAPH_URL")
            && !u.trim().is_empty()
        {
            c.graph_url = u.trim().trim_end_matches('/').to_owned();
        }
        if let Ok(u) = std::env::var("TENANTATLAS_LOGIN_URL")
            && !u.trim().is_empty()
        {
            c.login_url = u.trim().trim_end_matches('/').to_owned();
        }
        c
    }

    /// The provider of `tenant`.
    pub async fn connect(&self, engine: &Engine, tenant: &Tenant) -> Result<Arc<dyn TenantProvider>, Unconnected> {
        let Some(spec) = tenant.provider.as_deref() else {
            return Err(Unconnected::Blocked(
                "the tenant has no provider connection configured (tenant add --provider …)".into(),
            ));
        };
        let spec = ProviderSpec::parse("provider", spec)
            .map_err(|e| Unconnected::Blocked(format!("the tenant's provider setting is not valid: {}", e.rule)))?;
        match spec {
            ProviderSpec::Directory(path) => {
                let p = DirectoryProvider::open(Path::new(&path)).map_err(Unconnected::Provider)?;
                Ok(Arc::new(p))
            }
            ProviderSpec::Graph(tenant_ref) => {
                let creds = engine
                    .tenant_credentials(tenant.id)
                    .await
                    .map_err(|e| match e {
                        // a key that is missing or wrong, a secret sealed for
                        // another tenant: someone must act, a retry cannot help
                        EngineError::Secret(s) => Unconnected::Blocked(s.to_string()),
                        other => Unconnected::Provider(ProviderError::Unavailable(other.to_string())),
                    })?
                    .ok_or_else(|| {
                        Unconnected::Blocked(
                            "the tenant has no client credentials (tenant credentials set … --client-id …)".into(),
                        )
                    })?;
                let mut config = GraphConfig::new(
                    tenant_ref,
                    creds.client_id.clone(),
                    ClientSecret::new(creds.secret.expose()),
                );
                config.graph_url.clone_from(&self.graph_url);
                config.login_url.clone_from(&self.login_url);
                let p = GraphProvider::new(config).map_err(Unconnected::Provider)?;
                Ok(Arc::new(p))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_throttled_provider_is_retried_no_earlier_than_its_retry_after() {
        let now = Timestamp::from_unix_micros(1_000_000);
        let e = ProviderError::Throttled {
            retry_after: Some(Duration::from_secs(300)),
        };
        match provider_error(&e, now) {
            HandlerError::Retryable { failure, not_before } => {
                assert_eq!(not_before, Some(now.plus(Duration::from_secs(300))));
                assert_eq!(failure.reason_code, e.reason());
            }
            other => panic!("retryable, not {other:?}"),
        }
        match provider_error(&ProviderError::Unavailable("503".into()), now) {
            HandlerError::Retryable { not_before, .. } => assert_eq!(not_before, None),
            other => panic!("retryable, not {other:?}"),
        }
        assert!(matches!(
            provider_error(&ProviderError::NotFound("x".into()), now),
            HandlerError::Fatal(_)
        ));
    }
}
