//! The CodeBox edge: a Cloudflare Worker, one `Room` Durable Object per room, and one
//! `Limiter` Durable Object per client.
//!
//! ```text
//! POST /rooms                  ──> a new room (128-bit id) and its edit and view links
//! GET  /rooms/{room}?token=T   (Upgrade: websocket) ──> Room object id_from_name(room)
//! GET  /rooms/{room}/snapshot  ──> Room object: the document as one update
//! GET  /rooms/{room}/links     ──> the current links again (edit token)
//! POST /rooms/{room}/rotate    ──> Room object: new link generation, older sockets closed
//! POST /api/v1/submissions     ──> Room object: a run slot, its id and run credential ──> the
//!                                  exec API (edit token)
//! GET  /rooms/{room}/runs/{id}?credential=C   ──> Room object: the run's live channel (fleet)
//! POST /rooms/{room}/runs/{id}/input          ──> Room object: a typed line (edit token)
//! GET  /api/v1/...             ──> the exec API
//! anything else                ──> the IDE (static assets, frontend/dist)
//! ```
//!
//! Modules:
//! - [`routes`]: the Worker's fetch handler: the URL space and who may use each part.
//! - [`auth`]: the token, claims and client key of a request (decided by `codebox_access`).
//! - [`internal`]: the Worker's requests to its objects, carrying what it already checked.
//! - [`room_object`]: the `Room` Durable Object: binds `codebox_room::Room` to hibernatable
//!   WebSockets and SQLite storage; checks link generations and rotates them; its `live`
//!   module binds live runs (`codebox_live`): run channels, consoles, typed input.
//! - [`runs`]: a room's run slots (at most 4 runs queued or running), and the names and
//!   credentials of its live runs.
//! - [`limiter`]: the `Limiter` Durable Object: per-client rate limits across every isolate.
//! - [`exec_proxy`]: `/api/*` forwarded to the exec API, its failures as edge errors.
//! - [`store`]: the room's SQLite tables (link generation, snapshot and update log).
//! - [`sql`]: helpers over Durable Object SQLite.
//! - [`config`]: every variable and secret the edge reads, in one place.
//! - [`http`]: JSON error responses, the one place errors become HTTP statuses.
//! - [`log`]: `tracing` to the Workers console as JSON lines.
//!
//! All decisions about frames, limits and compaction live in `codebox_room`, about a live
//! run's frames and console in `codebox_live`, and about tokens, credentials and rate limits
//! in `codebox_access`; this crate moves bytes between workerd and those cores.

mod auth;
mod config;
mod exec_proxy;
mod http;
mod internal;
mod limiter;
mod log;
mod room_object;
mod routes;
mod runs;
mod sql;
mod store;
