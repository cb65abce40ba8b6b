//! Why a socket is closed, and the one place that maps each reason to a WebSocket close code.

use crate::awareness::{AwarenessError, OverBudget};
use crate::protocol::DecodeError;

/// Close code: the endpoint received a type of data it cannot accept.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// Close code: the payload was inconsistent with its type.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Close code: the message breaks a rule of the room (a role, a link, a budget).
pub const POLICY_VIOLATION: u16 = 1008;
/// Close code: the message is too big to process.
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// WebSocket close reasons are limited to 123 bytes of UTF-8.
const MAX_REASON_BYTES: usize = 123;

/// Why the room closes one socket. The room and its other sockets carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// A text frame: the protocol is binary.
    #[error("text frames are not supported; send binary y-protocols messages")]
    TextFrame,
    /// The frame is not a well-formed y-protocols message.
    #[error("malformed message: {0}")]
    Malformed(#[from] DecodeError),
    /// A SyncStep1 carried an undecodable state vector.
    #[error("invalid state vector: {0}")]
    InvalidStateVector(String),
    /// A sync message carried an update that is not valid Yjs v1.
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    /// An awareness message was malformed, carried invalid JSON, a clock out of range, a
    /// state over the size limit, or (from a viewer) a state that is not a JSON object.
    #[error("invalid awareness update: {0}")]
    InvalidAwareness(#[from] AwarenessError),
    /// An awareness message would take its sender or the room over a presence budget.
    #[error("{0}")]
    PresenceOverBudget(#[from] OverBudget),
    /// A viewer sent an update that would change the document.
    #[error("read-only")]
    ReadOnly,
    /// The room's links were rotated: the socket was opened with a link that no longer works.
    #[error("link rotated")]
    LinkRotated,
    /// A client sent a message only servers send.
    #[error("auth messages are sent by the server only")]
    ServerOnlyMessage,
    /// The frame is over the size limit.
    #[error("frame of {size} bytes is over the {limit}-byte limit")]
    FrameTooLarge {
        /// Size of the frame.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Accepting the update would take the document past its size limit.
    #[error("room is full: the document would pass {limit} bytes")]
    RoomFull {
        /// The limit.
        limit: usize,
    },
}

impl CloseReason {
    /// The WebSocket close code for this reason.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::TextFrame | CloseReason::ServerOnlyMessage => UNSUPPORTED_DATA,
            CloseReason::Malformed(
                DecodeError::UnknownMessageType(_) | DecodeError::UnknownSyncType(_),
            ) => UNSUPPORTED_DATA,
            CloseReason::InvalidAwareness(AwarenessError::StateTooLarge { .. }) => MESSAGE_TOO_BIG,
            CloseReason::Malformed(_)
            | CloseReason::InvalidStateVector(_)
            | CloseReason::InvalidUpdate(_)
            | CloseReason::InvalidAwareness(_) => INVALID_PAYLOAD,
            CloseReason::PresenceOverBudget(_)
            | CloseReason::ReadOnly
            | CloseReason::LinkRotated => POLICY_VIOLATION,
            CloseReason::FrameTooLarge { .. } | CloseReason::RoomFull { .. } => MESSAGE_TOO_BIG,
        }
    }

    /// The close reason text, cut to fit a close frame.
    pub fn reason(&self) -> String {
        let mut text = self.to_string();
        if text.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6455() {
        assert_eq!(CloseReason::TextFrame.code(), 1003);
        assert_eq!(
            CloseReason::Malformed(DecodeError::UnknownMessageType(9)).code(),
            1003
        );
        assert_eq!(CloseReason::Malformed(DecodeError::Empty).code(), 1007);
        assert_eq!(CloseReason::InvalidUpdate("x".into()).code(), 1007);
        assert_eq!(CloseReason::RoomFull { limit: 1 }.code(), 1009);
        let too_large = AwarenessError::StateTooLarge {
            client: 1,
            size: 2,
            limit: 1,
        };
        assert_eq!(CloseReason::InvalidAwareness(too_large).code(), 1009);
        assert_eq!(
            CloseReason::InvalidAwareness(AwarenessError::ClockOutOfRange(1)).code(),
            1007
        );
        assert_eq!(
            CloseReason::InvalidAwareness(AwarenessError::NotAnObject(1)).code(),
            1007
        );
        for over in [
            OverBudget::TooManyIds { limit: 1 },
            OverBudget::ConnectionBytes { limit: 1 },
            OverBudget::RoomBytes { limit: 1 },
        ] {
            assert_eq!(CloseReason::PresenceOverBudget(over).code(), 1008);
        }
    }

    #[test]
    fn roles_and_rotation_close_with_1008_and_their_exact_reasons() {
        assert_eq!(CloseReason::ReadOnly.code(), 1008);
        assert_eq!(CloseReason::ReadOnly.reason(), "read-only");
        assert_eq!(CloseReason::LinkRotated.code(), 1008);
        assert_eq!(CloseReason::LinkRotated.reason(), "link rotated");
    }

    #[test]
    fn reasons_fit_a_close_frame() {
        let long = CloseReason::InvalidUpdate("é".repeat(200));
        assert!(long.reason().len() <= 123);
        assert!(CloseReason::RoomFull { limit: 1 }
            .reason()
            .contains("room is full"));
    }
}
