//! HTTP errors of the edge, as JSON `{"error": {"code", "message"}}`: the one place an edge
//! failure becomes an HTTP status.

use codebox_access::token::Denied;
use codebox_live::console::Refused;
use codebox_room::LoadError;
use worker::{Request, Response, Result, SqlStorageValue};

/// An HTTP-level failure of a request to the edge.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EdgeError {
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
    /// The room's document is at its size limit.
    #[error("the room's document is full")]
    RoomFull,
    /// A live run's console refused a participant's input.
    #[error("{0}")]
    Console(#[from] Refused),
    /// The Worker is missing configuration it needs.
    #[error("the edge is misconfigured: {0}")]
    Config(String),
    /// A Durable Object's stored data could not be read, written or loaded.
    #[error("room storage failed: {0}")]
    Storage(#[from] StorageError),
    /// The runtime failed.
    #[error("internal error: {0}")]
    Runtime(#[from] worker::Error),
}

/// Why a Durable Object's storage failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    /// A statement failed.
    #[error("{query}: {source}")]
    Statement {
        /// The statement.
        query: String,
        /// What SQLite or the runtime said.
        source: worker::Error,
    },
    /// A column holds another type than its table gives it.
    #[error("expected {expected} in column {column}, got {found:?}")]
    Column {
        /// The type the table gives the column.
        expected: &'static str,
        /// The column's index in the row.
        column: usize,
        /// What it held (`None`: the row is shorter).
        found: Option<SqlStorageValue>,
    },
    /// A statement that always returns a row returned none (what it was doing).
    #[error("{0} returned no row")]
    NoRow(&'static str),
    /// The room's own row (its link generation and epoch) is missing or out of range.
    #[error("the room row is missing or corrupt")]
    RoomRow,
    /// A slot of the update log is missing.
    #[error("log slot {slot} of epoch {epoch} is missing")]
    MissingLogSlot {
        /// The missing slot.
        slot: i64,
        /// The epoch whose log it is.
        epoch: i64,
    },
    /// The log's last entry is cut short.
    #[error("the last log entry of epoch {0} is incomplete")]
    IncompleteLogEntry(i64),
    /// A write came before the document was read, so where it goes is unknown.
    #[error("a write before the document was read")]
    WriteBeforeRead,
    /// The room has used every link generation.
    #[error("link generations exhausted")]
    GenerationsExhausted,
    /// Writing the room failed (its sockets were closed; see `room_object::write`).
    #[error("writing the room failed")]
    WriteFailed,
    /// The room was asked for after it failed to load.
    #[error("room failed to load")]
    NotLoaded,
    /// The stored document does not load into a room.
    #[error(transparent)]
    Document(#[from] LoadError),
    /// Every fresh room id tried was taken.
    #[error("could not find a free room id")]
    NoFreeRoomId,
}

/// Reads a request body, refusing one over `limit` bytes.
pub(crate) async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, EdgeError> {
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(EdgeError::PayloadTooLarge(limit));
    }
    let body = req.bytes().await?;
    if body.len() > limit {
        return Err(EdgeError::PayloadTooLarge(limit));
    }
    Ok(body)
}

impl EdgeError {
    /// The HTTP status and error code of this error.
    pub(crate) fn status_and_code(&self) -> (u16, &'static str) {
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
            EdgeError::RoomFull => (413, "room_full"),
            EdgeError::Console(refused) => match refused {
                Refused::Unknown => (404, "run_not_found"),
                Refused::NotLive | Refused::Ended => (409, "run_not_live"),
                Refused::InputClosed => (409, "input_closed"),
                Refused::BadLine => (422, "invalid_line"),
                Refused::InputFull => (413, "input_full"),
            },
            EdgeError::Config(_) => (500, "config_error"),
            EdgeError::Storage(_) => (500, "storage_error"),
            EdgeError::Runtime(_) => (500, "internal_error"),
        }
    }

    /// The JSON response for this error.
    pub(crate) fn into_response(self) -> Result<Response> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_are_500_and_say_what_broke() {
        let error = EdgeError::from(StorageError::MissingLogSlot { slot: 3, epoch: 2 });
        assert_eq!(error.status_and_code(), (500, "storage_error"));
        assert_eq!(
            error.to_string(),
            "room storage failed: log slot 3 of epoch 2 is missing"
        );
        let error = EdgeError::from(StorageError::NoRow("reserving a run slot"));
        assert!(error
            .to_string()
            .ends_with("reserving a run slot returned no row"));
    }
}
