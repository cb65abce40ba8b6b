//! The core of a CodeBox room, with no I/O and no runtime in it.
//!
//! A room is one shared Yjs document (a yrs [`yrs::Doc`]) plus the awareness (presence) of the
//! people in it, reached over WebSockets that speak the y-protocols wire format. This crate
//! decides everything about a room; the Durable Object in `edge/` only moves bytes:
//!
//! ```text
//!   socket frame ──> Room::receive(conn, bytes) ──> Effects { store, reply, broadcast, close }
//!                                                      │
//!   runtime: 1. make every StoreOp durable (SQLite)  <─┘
//!            2. send `reply` to the sender, `broadcast` to every other socket
//!            3. close the sender if asked (the room and the others carry on)
//! ```
//!
//! Modules:
//! - [`protocol`]: the y-protocols frame format, explained once, with its decoder and encoder.
//! - [`awareness`]: presence states and which connection introduced each client id.
//! - [`room`]: [`Room`], the document and the rules: sync, relay, limits.
//! - [`storage`]: the update log and snapshots a runtime keeps, and when to compact.
//! - [`name`]: which room names are valid.
//! - [`close`]: [`CloseReason`], each mapped to its WebSocket close code in one place.
//!
//! Because nothing here awaits, the same code runs natively in tests and benchmarks and as
//! wasm inside workerd.

pub mod awareness;
pub mod close;
pub mod name;
pub mod protocol;
pub mod room;
pub mod storage;
pub(crate) mod update_check;

pub use awareness::AwarenessEntry;
pub use close::CloseReason;
pub use codebox_access::Role;
pub use name::is_valid_room_name;
pub use protocol::Message;
pub use room::{Effects, Limits, LoadError, Room};
pub use storage::{StoreOp, StoredSize};

/// Identifies one socket of a room; the runtime picks it and keeps it stable for the socket's life.
pub type ConnId = u64;
