//! The engine's error type.

use crate::port::StoreError;
use tenantatlas_domain::FieldError;
use tenantatlas_domain::access::{Capability, Denied};
use tenantatlas_domain::catalog::OperationType;

/// What the engine answers instead of doing something.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The thing does not exist for this caller (not a member, not entitled,
    /// or really absent). HTTP 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A member lacking the capability. HTTP 403.
    #[error("your role does not allow {0}")]
    Forbidden(Capability),
    /// The request is refused by policy (a system-only operation, a type
    /// that needs an opt-in the process did not give). HTTP 403.
    #[error("{0}")]
    Refused(String),
    /// The operation type has no handler in this build: it cannot run here,
    /// so it is not started. HTTP 422 `operation.unavailable`.
    #[error("{label} ({op}) cannot run here: this build has no handler for it", label = .0.label(), op = .0)]
    Unavailable(OperationType),
    /// Too much of a bounded resource is in use (password hashing): try
    /// again after this long. HTTP 429 with `Retry-After`.
    #[error("the service is busy; try again in {} s", .0.as_secs().max(1))]
    Busy(std::time::Duration),
    /// Bad input, naming the field. HTTP 400/422.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A uniqueness rule refused the write. HTTP 409.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// The key that seals tenant secrets is missing or unusable, or a
    /// stored secret does not open (the message names the variable, file
    /// or tenant; never a secret).
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// Something that should not happen (a bug), described safely.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => EngineError::Conflict(m),
            StoreError::Invalid(f) => EngineError::Invalid(f),
            StoreError::NotFound(_) => EngineError::NotFound("resource"),
            other => EngineError::Store(other),
        }
    }
}

impl EngineError {
    /// From an admin-plane authorization denial about `what`.
    pub fn denied(d: Denied, what: &'static str) -> Self {
        match d {
            Denied::NotFound => EngineError::NotFound(what),
            Denied::Forbidden(c) => EngineError::Forbidden(c),
        }
    }

    /// Whether the failure is the database connection's (a restart, a
    /// network blip): the same write may succeed once it reconnects.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Store(e) if e.is_connection())
    }

    /// Whether this is an authorization or policy refusal (the caller may
    /// not do this), as opposed to bad input or a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            EngineError::NotFound(_) | EngineError::Forbidden(_) | EngineError::Refused(_)
        )
    }
}

/// Results of engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
