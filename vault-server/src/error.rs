//! Every error the API returns: a 4xx (or 500) status and
//! `{"error": {"code": "...", "message": "..."}}` with a stable code. Messages
//! are fixed texts or vault-core's, which never hold a value.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vault_core::Denial;
use vault_core::Error as CoreError;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, stable code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401 for a missing or malformed Authorization header.
    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 500 with a fixed message: the cause goes to the log, never the client.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// What a client is told, and the log says, when the vault's data key was
/// replaced under a passphrase the server was not started with.
pub(crate) const REKEYED_UNDER_NEW_PASSPHRASE: &str =
    "the vault's data key was replaced under a new \
     passphrase (vault passwd --new-data-key); restart vault server with the new passphrase";

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        let status = match &e {
            CoreError::BadCredential {
                code: Denial::OutOfScope,
                ..
            } => StatusCode::FORBIDDEN,
            CoreError::BadCredential { .. } => StatusCode::UNAUTHORIZED,
            CoreError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // PostgreSQL down or restarting: the server connects again by itself
            CoreError::DatabaseUnreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // a reconnect whose certificate the URL's sslmode refuses
            CoreError::DatabaseTls { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // `vault passwd --new-data-key` elsewhere: the new data key is
            // wrapped under a passphrase this server does not hold
            CoreError::Rekeyed => StatusCode::SERVICE_UNAVAILABLE,
            // another process held SQLite's write lock past the wait (busy.rs)
            CoreError::StoreBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            CoreError::AlreadyExists { .. } => StatusCode::CONFLICT,
            CoreError::Refused { .. } => StatusCode::FORBIDDEN,
            CoreError::InvalidAgentName { .. }
            | CoreError::InvalidSecretName { .. }
            | CoreError::InvalidValue { .. }
            | CoreError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Internal causes go to the log, not the client.
            tracing::error!(error = %e, "internal error");
            "internal error".to_owned()
        } else if matches!(e, CoreError::Rekeyed) {
            REKEYED_UNDER_NEW_PASSPHRASE.to_owned()
        } else if matches!(e, CoreError::StoreBusy { .. }) {
            tracing::warn!(error = %e, "vault database busy");
            "the vault database is busy (another process holds its write lock); retry shortly"
                .to_owned()
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            // where the database is stays in the log
            tracing::warn!(error = %e, "database unreachable");
            "the database cannot be reached; retry shortly".to_owned()
        } else {
            e.to_string()
        };
        let retry_after = match e {
            CoreError::RateLimited { retry_after_secs } => Some(retry_after_secs),
            CoreError::StoreBusy { .. } => Some(1),
            _ => None,
        };
        ApiError {
            status,
            code: if status == StatusCode::INTERNAL_SERVER_ERROR {
                "internal".into()
            } else {
                e.code().to_owned()
            },
            message,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The error code of a response, for the metrics layer.
#[derive(Clone, Debug)]
pub(crate) struct ErrorCode(pub String);
