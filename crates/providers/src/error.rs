//! A provider's failures, classified for the engine: each maps to one
//! reason code and says whether a retry can help.

use std::time::Duration;

use tenantatlas_domain::reason::ReasonCode;

/// A classified provider failure. Messages never hold a secret, a token or
/// a request body; Graph's own message is passed through the domain's
/// sanitizer before it is kept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 429: wait `retry_after` (Graph's `Retry-After`, or the backoff's
    /// choice when it gave none).
    #[error("throttled by the provider{}", .retry_after.map(|d| format!(" (retry after {:.1}s)", d.as_secs_f64())).unwrap_or_default())]
    Throttled {
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
    },
    /// 5xx, a timeout, a connection refused, a page that cannot be read.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The token could not be acquired or was refused (bad client id or
    /// secret, expired secret, unknown tenant).
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    /// 403: the app lacks an application permission.
    #[error("the app registration lacks the permission {permission}")]
    PermissionMissing {
        /// The permission that would allow the call.
        permission: String,
    },
    /// 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// 400: the provider refused the payload (its message, sanitized).
    #[error("the provider refused the payload: {0}")]
    InvalidPayload(String),
    /// 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The data read is not what the contract promises (a settings count
    /// that differs from `settingCount`, a malformed fixture file, an
    /// unknown `@odata.type`).
    #[error("{0}")]
    Malformed(String),
}

impl ProviderError {
    /// The reason code the engine records.
    pub fn reason(&self) -> ReasonCode {
        match self {
            ProviderError::Throttled { .. } => ReasonCode::ProviderThrottled,
            ProviderError::Unavailable(_) => ReasonCode::ProviderUnavailable,
            ProviderError::AuthFailed(_) => ReasonCode::ProviderAuthFailed,
            ProviderError::PermissionMissing { .. } => ReasonCode::ProviderPermissionMissing,
            ProviderError::NotFound(_) => ReasonCode::ProviderNotFound,
            ProviderError::InvalidPayload(_) => ReasonCode::ProviderInvalidPayload,
            ProviderError::Conflict(_) => ReasonCode::ProviderConflict,
            ProviderError::Malformed(_) => ReasonCode::ProviderMalformed,
        }
    }

    /// Whether trying again later can succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, ProviderError::Throttled { .. } | ProviderError::Unavailable(_))
    }

    /// The message, passed through the domain's failure sanitizer (law 8).
    pub fn safe_message(&self) -> String {
        tenantatlas_domain::sanitize::SafeText::sanitize(&self.to_string()).into_string()
    }
}

/// The provider's result.
pub type Result<T> = std::result::Result<T, ProviderError>;
