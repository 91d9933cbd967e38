//! Errors in CONTRACT.md's shape: `{"error": {"code", "message", "field"}}`
//! for the API, a plain page for HTML. Messages are the engine's (already
//! safe: no secrets, no payloads); storage failures are logged and answered
//! with a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use tenantatlas_domain::FieldError;
use tenantatlas_engine::EngineError;

/// The `Retry-After` of a 503 while the database does not answer (a
/// PostgreSQL restart takes a few seconds).
pub(crate) const UNAVAILABLE_RETRY_SECS: u64 = 2;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`not_found`, `forbidden`, `invalid`, …).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The field at fault, for bad input.
    pub field: Option<String>,
    /// Seconds to wait before trying again (`Retry-After`), when known.
    pub retry_after: Option<u64>,
}

impl WebError {
    /// 401: no or invalid credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in or send a bearer token",
        )
    }

    /// 404: the thing does not exist for this caller.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 403 for a state change without a same-origin proof.
    pub fn cross_site() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "state-changing requests must come from this site",
        )
    }

    /// 422 naming the field.
    pub fn invalid(field: &str, rule: impl Into<String>) -> Self {
        Self::from(FieldError::new(field, rule))
    }

    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 503 `service.unavailable`: the database does not answer; try again
    /// in a moment (`Retry-After`).
    pub fn unavailable() -> Self {
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_SECS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service.unavailable",
                "the service cannot reach its database right now; try again in a moment",
            )
        }
    }

    /// As an HTML page (for `/admin` and `/system`).
    pub fn page(self) -> Response {
        let body = crate::render::error_page(self.status, &self.message);
        let retry_after = self.retry_after;
        with_retry_after((self.status, Html(body)).into_response(), retry_after)
    }
}

impl From<FieldError> for WebError {
    fn from(e: FieldError) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: e.to_string(),
            field: Some(e.field.clone()),
            retry_after: None,
        }
    }
}

impl From<EngineError> for WebError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(what) => Self::not_found(what),
            EngineError::Forbidden(cap) => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("your role does not allow {cap}"),
            ),
            EngineError::Refused(m) => Self::new(StatusCode::FORBIDDEN, "refused", m),
            EngineError::Invalid(f) => f.into(),
            e @ EngineError::Unavailable(_) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "operation.unavailable",
                message: e.to_string(),
                field: Some("type".into()),
                retry_after: None,
            },
            e @ EngineError::Busy(wait) => Self {
                retry_after: Some(wait.as_secs().max(1)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "service.busy", e.to_string())
            },
            EngineError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            EngineError::Store(s) if s.is_connection() => {
                tracing::warn!(error = %s, "the database does not answer");
                Self::unavailable()
            }
            other => {
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; try again",
                )
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        with_retry_after((self.status, Json(body)).into_response(), self.retry_after)
    }
}

pub(crate) fn with_retry_after(mut res: Response, secs: Option<u64>) -> Response {
    if let Some(s) = secs {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
    }
    res
}
