//! The CodeBox edge: a Cloudflare Worker and one Durable Object per room.
//!
//! ```text
//! GET /rooms/{room}            (Upgrade: websocket) ──> Room object id_from_name(room)
//! GET /rooms/{room}/snapshot                        ──> Room object: the document as one update
//! ANY /api/{rest}                                   ──> {EXEC_API_URL}/{rest} (the exec API)
//! anything else                                     ──> the IDE (static assets, frontend/dist)
//! ```
//!
//! Modules:
//! - [`routes`]: the Worker's fetch handler: validates room names, upgrades, forwards.
//! - [`exec_proxy`]: `/api/*` forwarded to the exec API, its failures as edge errors.
//! - [`room_object`]: the `Room` Durable Object: binds `codebox_room::Room` to hibernatable
//!   WebSockets and SQLite storage.
//! - [`store`]: the room's SQLite tables (snapshot and update log, chunked under the row limit).
//! - [`http`]: JSON error responses, the one place errors become HTTP statuses.
//! - [`log`]: `tracing` to the Workers console as JSON lines.
//!
//! All decisions about frames, limits and compaction live in `codebox_room`; this crate only
//! moves bytes between workerd and that core.

mod exec_proxy;
mod http;
mod log;
mod room_object;
mod routes;
mod store;

pub use room_object::Room;
