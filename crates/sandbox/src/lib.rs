//! The CodeBox sandbox core: everything about running one program in one container that
//! needs no Docker client and no async runtime, so it is tested without either.
//!
//! ```text
//! fleet (exec-fleet/src/sandbox, over bollard)           runner container
//!   spec::create_body ── create, attach, start ──────>   supervisor (bin codebox-supervisor)
//!   Session::request ── stdin ────────────────────────>    read_request: write the project,
//!   run::Run <── Input (stdout, stderr, deadline, exit)    compile, run the program (or hand
//!       │                                                  it back), protocol::say::* on
//!       │                                                  stdout/stderr
//!       └── Action (read on, await exit, kill, abandon/retry, done)
//!   run::Run::into_result / into_build ── outcome ──> RunResult (codebox-submission), Build
//! ```
//!
//! Modules:
//! - [`protocol`]: the supervisor protocol, explained once; the fleet's reader ([`Session`])
//!   and the supervisor's words ([`protocol::say`]).
//! - [`run`]: one run as a state machine: kills, retries, the output cap.
//! - [`clock`]: which time limit holds when (batch and interactive runs).
//! - [`spec`]: the container's create body (every isolation setting) and the run user ids.
//! - [`seccomp`]: the system calls a program may make.
//! - [`supervisor`]: the program inside every runner container (binary `codebox-supervisor`).
//! - `outcome`: how what a run showed becomes a [`codebox_submission::RunResult`], or a
//!   build's [`Build`].

pub mod clock;
mod outcome;
pub mod protocol;
pub mod run;
pub mod seccomp;
pub mod spec;
pub mod supervisor;

pub use clock::{Clock, InteractiveLimits, TimeLimit};
pub use outcome::Build;
pub use protocol::{Mode, Session, PROTOCOL};
pub use run::{Action, Failure, Input, Run};
