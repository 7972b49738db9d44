//! The dashboard's errors and the HTTP status each becomes: an unknown sweep or job is 404, a
//! bad query parameter 400 naming it, anything from the store 500 (logged; the page says only
//! that the store failed).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such sweep or job → 404.
    #[error("{0}")]
    NotFound(String),
    /// A bad parameter, naming it → 400.
    #[error("invalid {field}: {problem}")]
    Invalid { field: String, problem: String },
    /// The store failed → 500.
    #[error("store: {0}")]
    Store(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(e.to_string())
    }
}

impl From<coordinator::Error> for Error {
    fn from(e: coordinator::Error) -> Self {
        match e {
            coordinator::Error::NotFound(m) => Error::NotFound(m),
            coordinator::Error::Invalid(f) => Error::Invalid {
                field: f.field.clone(),
                problem: f.problem.clone(),
            },
            other => Error::Store(other.to_string()),
        }
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(error = %self, "dashboard request failed");
        }
        (status, format!("{self}\n")).into_response()
    }
}
