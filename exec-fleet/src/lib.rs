//! The CodeBox exec fleet: workers that take jobs off the queue and run them in Docker.
//!
//! ```text
//! queue (SQS / embedded) ──receive──> worker::run_worker ──> store.mark_running
//!                                          │
//!                                          v
//!                              sandbox::Sandbox::run   one fresh container per run
//!                                          │           (warm pool, limits, kill via API);
//!                                          │           a room's run: live::run, streamed
//!                                          │           over its channel to the edge;
//!                                          │           a run with tests: judging::run_tests,
//!                                          │           built once, a container per test
//!                                          v
//!                          store.finish (conditional) ──> queue.delete
//! dead-letter queue ──> worker::reap_dead_letters ──> internal_error
//! ```
//!
//! Modules:
//! - [`config`]: the worker binary's configuration, read from the environment in one place.
//! - `judging`: a submission's tests: build once, run each test in a fresh container, judge.
//! - [`live`]: a room's run, live: the channel to the edge, the relay both ways, the fallback.
//! - [`sandbox`]: the locked-down container per run, the supervisor protocol spoken with the
//!   runner images (`runners/`), and how a run's end becomes a [`codebox_submission::RunResult`].
//! - [`worker`]: the at-least-once job loop (visibility extension, conditional writes,
//!   graceful shutdown) and the dead-letter reaper.

pub mod config;
mod judging;
pub mod live;
pub mod sandbox;
pub mod worker;
