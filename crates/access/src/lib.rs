//! Who may do what in CodeBox, with no I/O in it: the edge and the exec API decide with it.
//!
//! Rooms and runs are capabilities (DESIGN.md, Contract 3): whoever holds a room's link may do
//! what its token allows, and nobody else may see or change the room.
//!
//! ```text
//! POST /rooms ──> room::new_room_id(random) ──> token::Claims { room, role, generation, expires }
//!                                                   │ sign(secret) ──> edit and view tokens
//! GET /rooms/{room}?token=T ──> token::verify(secret, T, room, now) ──> Claims | Denied (401/403)
//!                               the room's Durable Object ──> Claims.generation == current?
//! every request ──> client::client_key(ip) ──> rate::RateLimit::window(now) ──> a shared counter
//! ```
//!
//! Modules:
//! - [`token`]: the signed token (HMAC-SHA-256), its claims and every way a check can fail.
//! - [`run_credential`]: what lets the fleet worker running a room's submission stream into
//!   that room (Contract 4), signed with a key derived from the same secret.
//! - [`client`]: who a client is for rate limits (an IPv4 address or an IPv6 /64).
//! - [`rate`]: fixed-window rate limits, the policy each shared counter enforces.
//! - [`room`]: room names, room ids (128 random bits) and the links the IDE opens.
//! - [`headers`]: the headers the edge and the exec API share (the edge secret, the room).

pub mod client;
pub mod headers;
pub mod rate;
pub mod room;
pub mod run_credential;
pub mod token;

pub use client::client_key;
pub use rate::{RateLimit, Window};
pub use room::{is_valid_room_name, new_room_id, room_link};
pub use run_credential::{RunClaims, RunKey};
pub use token::{Claims, Denied, Role, TokenKey};
