//! The store's error type.

use tenantatlas_domain::FieldError;

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A uniqueness rule refused the write (e.g. a name already in use).
    #[error("{0}")]
    Conflict(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A row does not decode into domain types.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database URL is not one we support.
    #[error("unsupported database URL (expected sqlite://PATH or postgres://…): {0}")]
    Url(String),
}

impl StoreError {
    /// Whether the failure is the connection's (worth retrying after a
    /// reconnect) rather than the request's.
    pub fn is_connection(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed | sqlx::Error::Tls(_),
            ) => true,
            // PostgreSQL shutting down, starting up, or the link failing
            // (class 08: connection exception; 57P01-57P03: operator
            // intervention).
            StoreError::Database(sqlx::Error::Database(d)) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")),
            _ => false,
        }
    }

    /// Whether a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

/// Results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
