//! The coordinator's error type and how each kind maps onto a gRPC status code.
//!
//! The mapping is part of the contract with workers and the CLI: a worker treats
//! `FAILED_PRECONDITION` as "you lost this lease, drop the job", `INVALID_ARGUMENT` as "this
//! input can never work", and `UNAVAILABLE` as "try again later".

use tonic::{Code, Status};

use crate::grid::FieldError;

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, naming the field → `INVALID_ARGUMENT`.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// Unknown sweep or job → `NOT_FOUND`.
    #[error("{0}")]
    NotFound(String),
    /// A write with a fencing token that no longer holds the lease (or a job that is not
    /// running) → `FAILED_PRECONDITION`. Nothing was written.
    #[error("{0}")]
    Stale(String),
    /// A Query that would write or change the connection → `PERMISSION_DENIED`.
    #[error("{0}")]
    Refused(String),
    /// A Query that ran past its time limit → `DEADLINE_EXCEEDED`.
    #[error("{0}")]
    Timeout(String),
    /// The store failed → `INTERNAL` (or `UNAVAILABLE` when SQLite stayed busy/locked).
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A `ServeConfig` that cannot work (e.g. heartbeat slower than the lease).
    #[error("invalid coordinator config: {0}")]
    Config(String),
}

impl Error {
    /// A field error; shorthand for the many validation sites.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Invalid(FieldError::new(field, problem))
    }
}

/// True for SQLite's "database is busy/locked" (after the busy timeout ran out): the caller can
/// retry, so it is `UNAVAILABLE`, not `INTERNAL`.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| matches!(c.as_ref(), "5" | "6" | "261" | "517" | "262")),
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match &e {
            Error::Invalid(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::Stale(_) => Code::FailedPrecondition,
            Error::Refused(_) => Code::PermissionDenied,
            Error::Timeout(_) => Code::DeadlineExceeded,
            Error::Db(db) if is_busy(db) => Code::Unavailable,
            Error::Config(_) => Code::InvalidArgument,
            _ => Code::Internal,
        };
        if code == Code::Internal || code == Code::Unavailable {
            tracing::warn!(error = %e, "request failed");
        }
        Status::new(code, e.to_string())
    }
}
