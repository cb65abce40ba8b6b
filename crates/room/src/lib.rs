//! The core of a CodeBox room, with no I/O and no runtime in it.
//!
//! A room is one shared Yjs document (a yrs [`yrs::Doc`]) plus the awareness (presence) of the
//! people in it, reached over WebSockets that speak the y-protocols wire format. This crate
//! decides everything about a room; the Durable Object in `edge/` only moves bytes:
//!
//! ```text
//!   socket opens ──> Room::join(conn, role) ──> greeting frames (after a wake: Room::rejoin)
//!   socket frame ──> Room::receive(conn, bytes, now_ms) ──> Effects { store, reply, broadcast,
//!                                                              │         close, wake_at }
//!   runtime: 1. write every StoreOp (SQLite)                 <─┘
//!            2. send `reply` to the sender, `broadcast` to every other socket
//!            3. close the sender if asked (the room and the others carry on)
//!            4. set a timer for `wake_at`
//!   timer fires ──> Room::tick(now_ms) ──> Effects (due writes; renewals for every socket)
//!   socket closes ──> Room::disconnect(conn) ──> Effects (its presence, announced gone; the
//!                                                 pending writes, if it was the last)
//! ```
//!
//! The room itself edits its document only when the runtime asks ([`Room::edit`], as a writer
//! id fresh for each instance: [`Room::with_writer`]): a live run's console, for one. Such an
//! edit is relayed to every socket and written as a client's update would be.
//!
//! Updates are relayed at once and written within a commit window, together
//! ([`storage`] states the durability this gives); awareness renewals that arrive together are
//! relayed together ([`awareness`]).
//!
//! Every socket joins with a [`Role`]: an editor changes the document, a viewer only reads it
//! (and a socket that never joined counts as a viewer). Clients are not trusted: every frame is
//! checked before it costs the room anything (see [`protocol`] for the rules, in one place).
//! The defences, by module:
//! - updates and state vectors are walked before yrs sees them (`update_check`): declared
//!   counts must fit the bytes, `Any` values nest boundedly, ids and clocks stay in range;
//! - a viewer's change closes it (`read-only`) and changes nothing; its presence is stamped
//!   `"role":"view"` ([`room`], [`awareness`]);
//! - presence: a connection changes only the client ids it owns, within size budgets
//!   ([`awareness`]);
//! - updates that wait for a gap are held within caps and go with their socket ([`room`]);
//! - the document's size is bounded from above without rewriting storage ([`room`]).
//!
//! Modules:
//! - [`protocol`]: the y-protocols frame format and the room's rules, explained once.
//! - [`awareness`]: presence states, which connection owns each client id, and the budgets.
//! - [`room`]: [`Room`], the document and the rules: roles, sync, relay, held updates, limits.
//! - `update_check`: the walk of Yjs v1 updates and state vectors, with their layout.
//! - [`storage`]: the update log and snapshots a runtime keeps, and when to compact.
//! - [`close`]: [`CloseReason`], each mapped to its WebSocket close code in one place.
//!
//! Because nothing here awaits, the same code runs natively in tests and benchmarks and as
//! wasm inside workerd.

pub mod awareness;
pub mod close;
pub mod protocol;
pub mod room;
pub mod storage;
pub(crate) mod update_check;

pub use awareness::AwarenessEntry;
pub use close::CloseReason;
pub use codebox_access::Role;
pub use protocol::Message;
pub use room::{Effects, Limits, LoadError, Room};
pub use storage::{StoreOp, StoredSize};

/// Identifies one socket of a room; the runtime picks it and keeps it stable for the socket's life.
pub type ConnId = u64;
