//! HTTP errors of the edge, as JSON `{"error": {"code", "message"}}`: the one place an edge
//! failure becomes an HTTP status.

use codebox_access::token::Denied;
use worker::{Response, Result};

/// An HTTP-level failure of a request to the edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The room name is outside `[A-Za-z0-9_-]{1,64}`.
    #[error("room names are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")]
    InvalidRoomName,
    /// A WebSocket route was requested without `Upgrade: websocket`.
    #[error("this endpoint speaks WebSocket: send Upgrade: websocket")]
    UpgradeRequired,
    /// Nothing is served at this path.
    #[error("not found")]
    NotFound,
    /// The method is not allowed at this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request's token does not allow it (401 or 403, see [`Denied::status`]).
    #[error("{0}")]
    Denied(#[from] Denied),
    /// No room was ever created with this id.
    #[error("no room with this id")]
    RoomNotFound,
    /// The request body is not what the endpoint takes.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// A value in the request is out of range (the field, and why).
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// This client made too many requests of this kind (seconds until the next is allowed).
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// The room already has its most runs queued or running (seconds to wait).
    #[error("this room already has {limit} runs queued or running; wait for one to finish")]
    TooManyRuns {
        /// Runs a room may have in flight.
        limit: usize,
        /// Seconds until trying again is worthwhile.
        retry_after: u64,
    },
    /// A request body is larger than the edge buffers (the limit, in bytes).
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The exec API behind `/api` could not be reached (refused, reset, DNS...).
    #[error("the exec API is unreachable: code cannot run right now, try again shortly")]
    ExecApiUnreachable,
    /// The exec API did not answer in time (the timeout, in seconds).
    #[error("the exec API did not answer within {0} s")]
    ExecApiTimeout(u32),
    /// The exec API answered a check with an unexpected status.
    #[error("the exec API answered {0}")]
    ExecApiStatus(u16),
    /// The Worker is missing configuration it needs.
    #[error("the edge is misconfigured: {0}")]
    Config(String),
    /// The room's stored data could not be read or loaded.
    #[error("room storage failed: {0}")]
    Storage(String),
    /// The runtime failed.
    #[error("internal error: {0}")]
    Runtime(#[from] worker::Error),
}

impl EdgeError {
    fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            EdgeError::InvalidRoomName => (400, "invalid_room_name"),
            EdgeError::UpgradeRequired => (426, "upgrade_required"),
            EdgeError::NotFound => (404, "not_found"),
            EdgeError::MethodNotAllowed => (405, "method_not_allowed"),
            EdgeError::Denied(denied) => (denied.status(), denied.code()),
            EdgeError::RoomNotFound => (404, "room_not_found"),
            EdgeError::InvalidBody(_) => (400, "invalid_body"),
            EdgeError::InvalidValue { .. } => (422, "invalid_value"),
            EdgeError::RateLimited(_) => (429, "rate_limited"),
            EdgeError::TooManyRuns { .. } => (429, "too_many_runs"),
            EdgeError::PayloadTooLarge(_) => (413, "payload_too_large"),
            EdgeError::ExecApiUnreachable => (503, "exec_api_unreachable"),
            EdgeError::ExecApiTimeout(_) => (504, "exec_api_timeout"),
            EdgeError::ExecApiStatus(_) => (502, "exec_api_error"),
            EdgeError::Config(_) => (500, "config_error"),
            EdgeError::Storage(_) => (500, "storage_error"),
            EdgeError::Runtime(_) => (500, "internal_error"),
        }
    }

    /// The JSON response for this error.
    pub fn into_response(self) -> Result<Response> {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = Response::from_json(&body)?.with_status(status);
        match self {
            EdgeError::UpgradeRequired => response.headers_mut().set("Upgrade", "websocket")?,
            EdgeError::RateLimited(retry_after) | EdgeError::TooManyRuns { retry_after, .. } => {
                response
                    .headers_mut()
                    .set("Retry-After", &retry_after.to_string())?
            }
            _ => {}
        }
        Ok(response)
    }
}
