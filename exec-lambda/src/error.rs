//! API errors, and the one place each becomes an HTTP status and a JSON body
//! `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use codebox_submission::{QueueError, RequestError, StoreError};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The caller is not one the API serves (see `gate`).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The request was refused by validation.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No live submission has this id.
    #[error("no submission with id {0}")]
    NotFound(String),
    /// The client sent too many requests.
    #[error("too many requests; retry after {retry_after_s} s")]
    RateLimited {
        /// Seconds until a request would be accepted.
        retry_after_s: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Request(RequestError::MalformedJson(_) | RequestError::MissingField(_)) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Request(error) if error.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Request(
                RequestError::UnknownLanguage(_)
                | RequestError::InvalidValue { .. }
                | RequestError::InvalidItem { .. }
                | RequestError::Project(_)
                | RequestError::TooLarge { .. },
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // Only an id the edge chose can be taken (a retried live run).
            ApiError::Store(StoreError::AlreadyExists(_)) => StatusCode::CONFLICT,
            ApiError::Store(StoreError::Corrupt { .. })
            | ApiError::Queue(QueueError::Message(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(_) | ApiError::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Request(e) => e.code(),
            ApiError::NotFound(_) => "not_found",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Store(StoreError::AlreadyExists(_)) => "already_exists",
            ApiError::Store(StoreError::Corrupt { .. })
            | ApiError::Queue(QueueError::Message(_)) => "internal_error",
            ApiError::Store(_) => "store_unavailable",
            ApiError::Queue(_) => "queue_unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    /// The error's status and JSON body (server errors are logged).
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = Json(
            serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } }),
        );
        let mut response = (status, body).into_response();
        if let ApiError::RateLimited { retry_after_s } = self {
            if let Ok(value) = retry_after_s.to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codebox_submission::{Job, Language, Payload, Program};

    #[test]
    fn a_job_that_cannot_be_sent_is_our_fault_not_the_queues() {
        let job = Job {
            id: "x".into(),
            language: Language::Python,
            payload: Payload::Inline(Program::single(
                Language::Python,
                "#".repeat(codebox_submission::MAX_MESSAGE_BYTES),
                String::new(),
            )),
            room: None,
            run_credential: None,
        };
        let error = ApiError::from(QueueError::from(job.to_message().unwrap_err()));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.code(), "internal_error");
        assert!(error.to_string().contains("bytes"), "{error}");
    }
}
