//! How the edge speaks to the exec API: the headers both sides name, defined once.
//!
//! The exec API serves only the edge. The edge proves itself with a shared secret
//! (`CODEBOX_EDGE_SECRET` on both sides) sent in [`EDGE_SECRET_HEADER`]; only a request that
//! carries it (or, locally with no secret set, a loopback caller) may name the room a run was
//! started from in [`ROOM_HEADER`], and, for a run the room follows live (Contract 4), the
//! submission id the edge chose in [`SUBMISSION_HEADER`] and the credential it signed for that
//! run in [`RUN_CREDENTIAL_HEADER`].

/// The header carrying the edge's shared secret.
pub const EDGE_SECRET_HEADER: &str = "x-codebox-edge-secret";
/// The header naming the room a run was started from.
pub const ROOM_HEADER: &str = "x-codebox-room";
/// The header carrying the submission id the edge chose for a live run.
pub const SUBMISSION_HEADER: &str = "x-codebox-submission";
/// The header carrying a live run's credential (see [`crate::run_credential`]).
pub const RUN_CREDENTIAL_HEADER: &str = "x-codebox-run-credential";
/// The environment variable (and Worker secret) holding the shared secret, on both sides.
pub const EDGE_SECRET_VAR: &str = "CODEBOX_EDGE_SECRET";
/// The fewest bytes the shared secret may have.
pub const MIN_EDGE_SECRET_BYTES: usize = 32;
/// The largest `POST /v1/submissions` body either side reads: a project (256 KiB) and its
/// tests (32 × 2 × 64 KiB) with room for JSON escaping, within the 6 MB a Lambda function is
/// handed.
pub const MAX_SUBMISSION_BODY_BYTES: usize = 6 * 1024 * 1024;
