//! The wire format of a room: y-protocols messages, one per binary WebSocket frame.
//!
//! # The protocol, once
//!
//! Every frame carries exactly one message. A message starts with a varuint *message type*:
//!
//! | type | name      | payload                                                        |
//! |------|-----------|----------------------------------------------------------------|
//! | 0    | sync      | varuint *sync type*, then one varuint-length-prefixed buffer   |
//! | 1    | awareness | one varuint-length-prefixed buffer: an awareness update        |
//! | 2    | auth      | varuint 0 (permission denied), then a varstring reason         |
//! | 3    | query     | nothing: "send me every awareness state you know"              |
//!
//! Sync types: 0 = SyncStep1 (the buffer is the sender's state vector), 1 = SyncStep2 (the
//! buffer is a Yjs v1 update holding what the receiver of SyncStep1 lacked), 2 = Update (a Yjs
//! v1 update made by an edit).
//!
//! An awareness update is: varuint count, then per client: varuint client id, varuint clock,
//! varstring JSON state (the string `null` means "this client is gone").
//!
//! A session runs like this (S = server, C = client):
//!
//! 1. On open S sends SyncStep1 with its state vector and, if anyone is present, one awareness
//!    message with every known state. The stock `y-websocket` client sends its own SyncStep1
//!    (and its awareness state) at the same time.
//! 2. Each side answers a SyncStep1 with a SyncStep2 holding the diff. S answers only the asker.
//! 3. From then on each edit travels as an Update. S applies it, relays it to every other
//!    socket in the room (never back to its author) and writes it within the commit window
//!    (`storage`: a client that still has it sends it again after a crash). A SyncStep2 from a client is
//!    treated the same way: it may hold edits made offline that the others lack. An update
//!    that skips clocks (sent before the SyncStep2 that fills the gap) waits in S until the
//!    gap is filled.
//! 4. Awareness updates are applied and relayed to everyone, the sender included (its own
//!    entries are no-ops for it, and they keep the stock client's 30-second liveness check
//!    fed when it is alone); renewals of an unchanged state that arrive together are relayed
//!    together, within a second (`awareness`). When a socket goes away, S tells the others that the awareness
//!    clients it owned are gone (at their clock plus one, short of `u32::MAX`).
//!
//! # Roles
//!
//! Each socket joins as an editor or a viewer (its link decides; a socket S does not know is a
//! viewer). A viewer may send SyncStep1, awareness and query-awareness. Its Update or SyncStep2
//! is compared with the document without applying it: one that would change the document (an
//! insertion S has neither integrated nor pending, or a deletion of something not deleted)
//! closes it with 1008 `read-only`; one that changes nothing (the stock client's empty
//! SyncStep2, a re-send of known content) is ignored. A viewer's awareness state must be a JSON
//! object; S rewrites it with `"role":"view"` first (whatever the client put there), keeping
//! the other keys in their order, and relays, keeps and saves it that way. Editors' states are
//! relayed byte for byte. When the room's links are rotated, the runtime closes every socket
//! opened with an old link with 1008 `link rotated`.
//!
//! # Awareness ownership
//!
//! An entry wins by clock as in y-protocols (higher, or equal when it removes a live state),
//! and only for a client id the sender owns, or one it introduces (never seen, or gone and
//! owned by nobody). An entry for an id another socket owns is dropped without a word (a
//! client that reconnected while its old socket is half-open sends exactly that), unless the
//! owner has not renewed it for [`OUTDATED_MS`], y-protocols' own timeout, when the sender
//! takes it over. A removal of an id nobody owns changes nothing and is dropped.
//!
//! # Limits
//!
//! Anything over a limit closes only its sender, and nothing of it is applied or relayed:
//!
//! | what | limit | close |
//! |------|-------|-------|
//! | a frame | [`max_frame_bytes`] | 1009 |
//! | the encoded document (estimated from above) | [`max_document_bytes`] | 1009, room full |
//! | an update or state vector: a count past its bytes, `Any` values or embedded JSON nested too deep, a client id over 53 bits, a clock past `u32::MAX` | see `update_check` | 1007 |
//! | one awareness state (its JSON) | [`MAX_STATE_BYTES`] | 1009 |
//! | an awareness clock | below `u32::MAX` | 1007 |
//! | awareness ids one socket owns | [`MAX_IDS_PER_CONNECTION`] | 1008 |
//! | awareness state bytes one socket owns | [`MAX_BYTES_PER_CONNECTION`] | 1008 |
//! | live awareness state bytes in the room | [`MAX_ROOM_BYTES`] | 1008 |
//!
//! [`OUTDATED_MS`]: crate::awareness::OUTDATED_MS
//! [`max_frame_bytes`]: crate::Limits::max_frame_bytes
//! [`max_document_bytes`]: crate::Limits::max_document_bytes
//! [`MAX_STATE_BYTES`]: crate::awareness::MAX_STATE_BYTES
//! [`MAX_IDS_PER_CONNECTION`]: crate::awareness::MAX_IDS_PER_CONNECTION
//! [`MAX_BYTES_PER_CONNECTION`]: crate::awareness::MAX_BYTES_PER_CONNECTION
//! [`MAX_ROOM_BYTES`]: crate::awareness::MAX_ROOM_BYTES
//!
//! Updates waiting for a gap are held within caps, per room (entries, and the frame limit in
//! bytes) and per socket (entries), and dropped when their socket closes; past a cap the
//! oldest of whoever holds most is dropped (its author's SyncStep2 re-sends it).
//!
//! Strictness: a frame must hold one whole message and nothing after it. Anything else is a
//! protocol violation that closes only the offending socket (see [`crate::CloseReason`]).

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

/// Message type: document sync (SyncStep1, SyncStep2, Update).
pub const MSG_SYNC: u8 = 0;
/// Message type: awareness update.
pub const MSG_AWARENESS: u8 = 1;
/// Message type: authentication (only ever sent by servers).
pub const MSG_AUTH: u8 = 2;
/// Message type: a request for every known awareness state.
pub const MSG_QUERY_AWARENESS: u8 = 3;

/// Sync sub-type: the sender's state vector.
pub const SYNC_STEP1: u8 = 0;
/// Sync sub-type: a diff answering a SyncStep1.
pub const SYNC_STEP2: u8 = 1;
/// Sync sub-type: an incremental update.
pub const SYNC_UPDATE: u8 = 2;

/// One decoded message, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// SyncStep1: the sender's encoded state vector.
    SyncStep1(&'a [u8]),
    /// SyncStep2: a Yjs v1 update answering a SyncStep1.
    SyncStep2(&'a [u8]),
    /// Update: a Yjs v1 update made by an edit.
    Update(&'a [u8]),
    /// Awareness: an encoded awareness update.
    Awareness(&'a [u8]),
    /// Auth: permission denied, with a reason.
    PermissionDenied(&'a str),
    /// Query awareness.
    QueryAwareness,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame was empty.
    #[error("empty frame")]
    Empty,
    /// The message type is not one of 0..=3.
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    /// The sync sub-type is not one of 0..=2.
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    /// A varint or length prefix ran past the end of the frame, or was not a valid varint.
    #[error("truncated or malformed {0}")]
    Malformed(&'static str),
    /// Bytes followed the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
}

impl<'a> Message<'a> {
    /// Whether handling `frame` may need the room's document: false only for awareness and
    /// query-awareness messages (presence alone), which a runtime may handle before it loads
    /// the document from storage. A frame that does not decode counts as needing it.
    pub fn touches_document(frame: &[u8]) -> bool {
        !matches!(
            Message::decode(frame),
            Ok(Message::Awareness(_) | Message::QueryAwareness)
        )
    }

    /// Decodes one message that must span the whole frame.
    pub fn decode(frame: &'a [u8]) -> Result<Self, DecodeError> {
        if frame.is_empty() {
            return Err(DecodeError::Empty);
        }
        let mut cursor = Cursor::new(frame);
        let message_type: u64 = cursor
            .read_var()
            .map_err(|_| DecodeError::Malformed("message type"))?;
        let message = match message_type {
            0 => {
                let sync_type: u64 = cursor
                    .read_var()
                    .map_err(|_| DecodeError::Malformed("sync message type"))?;
                let payload = read_buf(&mut cursor, "sync payload")?;
                match sync_type {
                    0 => Message::SyncStep1(payload),
                    1 => Message::SyncStep2(payload),
                    2 => Message::Update(payload),
                    other => return Err(DecodeError::UnknownSyncType(other)),
                }
            }
            1 => Message::Awareness(read_buf(&mut cursor, "awareness payload")?),
            2 => {
                let _denied: u64 = cursor
                    .read_var()
                    .map_err(|_| DecodeError::Malformed("auth message type"))?;
                let reason = std::str::from_utf8(read_buf(&mut cursor, "auth reason")?)
                    .map_err(|_| DecodeError::Malformed("auth reason"))?;
                Message::PermissionDenied(reason)
            }
            3 => Message::QueryAwareness,
            other => return Err(DecodeError::UnknownMessageType(other)),
        };
        let rest = frame.len() - cursor.next;
        if rest != 0 {
            return Err(DecodeError::TrailingBytes(rest));
        }
        Ok(message)
    }

    /// Encodes the message as one frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload_len() + 8);
        match self {
            Message::SyncStep1(p) => sync_frame(&mut out, SYNC_STEP1, p),
            Message::SyncStep2(p) => sync_frame(&mut out, SYNC_STEP2, p),
            Message::Update(p) => sync_frame(&mut out, SYNC_UPDATE, p),
            Message::Awareness(p) => {
                out.write_var(MSG_AWARENESS);
                out.write_buf(p);
            }
            Message::PermissionDenied(reason) => {
                out.write_var(MSG_AUTH);
                out.write_var(0u8);
                out.write_string(reason);
            }
            Message::QueryAwareness => out.write_var(MSG_QUERY_AWARENESS),
        }
        out
    }

    fn payload_len(&self) -> usize {
        match self {
            Message::SyncStep1(p)
            | Message::SyncStep2(p)
            | Message::Update(p)
            | Message::Awareness(p) => p.len(),
            Message::PermissionDenied(r) => r.len(),
            Message::QueryAwareness => 0,
        }
    }
}

fn sync_frame(out: &mut Vec<u8>, sync_type: u8, payload: &[u8]) {
    out.write_var(MSG_SYNC);
    out.write_var(sync_type);
    out.write_buf(payload);
}

fn read_buf<'a>(cursor: &mut Cursor<'a>, what: &'static str) -> Result<&'a [u8], DecodeError> {
    // `Cursor::read_buf` borrows from the cursor; re-slice from the frame to keep lifetime 'a.
    let len: u64 = cursor
        .read_var()
        .map_err(|_| DecodeError::Malformed(what))?;
    let start = cursor.next;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|&end| end <= cursor.buf.len())
        .ok_or(DecodeError::Malformed(what))?;
    cursor.next = end;
    Ok(&cursor.buf[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Message::SyncStep1(&[0]),
            Message::SyncStep2(&[1, 2, 3]),
            Message::Update(&[0, 0]),
            Message::Awareness(&[0]),
            Message::PermissionDenied("no"),
            Message::QueryAwareness,
        ];
        for message in messages {
            assert_eq!(Message::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn matches_the_y_protocols_bytes() {
        // From y-protocols: writeUpdate of [7, 8] is [0, 2, 2, 7, 8].
        assert_eq!(Message::Update(&[7, 8]).encode(), vec![0, 2, 2, 7, 8]);
        assert_eq!(Message::QueryAwareness.encode(), vec![3]);
    }

    #[test]
    fn rejects_bad_frames() {
        assert_eq!(Message::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            Message::decode(&[9]),
            Err(DecodeError::UnknownMessageType(9))
        );
        assert_eq!(
            Message::decode(&[0, 7, 0]),
            Err(DecodeError::UnknownSyncType(7))
        );
        assert!(matches!(
            Message::decode(&[0x80]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Message::decode(&[0, 2, 5, 1]),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(Message::decode(&[3, 0]), Err(DecodeError::TrailingBytes(1)));
        // A length prefix near u64::MAX must not overflow.
        let huge = [
            0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(
            Message::decode(&huge),
            Err(DecodeError::Malformed(_))
        ));
    }
}
