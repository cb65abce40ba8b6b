//! How the edge speaks to the exec API: the headers both sides name, defined once.
//!
//! The exec API serves only the edge. The edge proves itself with a shared secret
//! (`CODEBOX_EDGE_SECRET` on both sides) sent in [`EDGE_SECRET_HEADER`]; only a request that
//! carries it (or, locally with no secret set, a loopback caller) may name the room a run was
//! started from in [`ROOM_HEADER`].

/// The header carrying the edge's shared secret.
pub const EDGE_SECRET_HEADER: &str = "x-codebox-edge-secret";
/// The header naming the room a run was started from.
pub const ROOM_HEADER: &str = "x-codebox-room";
/// The environment variable (and Worker secret) holding the shared secret, on both sides.
pub const EDGE_SECRET_VAR: &str = "CODEBOX_EDGE_SECRET";
/// The fewest bytes the shared secret may have.
pub const MIN_EDGE_SECRET_BYTES: usize = 32;
