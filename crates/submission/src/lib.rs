//! The CodeBox submission model, shared by the exec API (`exec-lambda`) and the workers
//! (`exec-fleet`).
//!
//! ```text
//! POST body ──request::parse_request──> NewSubmission
//!     ├─> store:  Submission::queued (status queued, expires_at = now + 24 h)
//!     └─> queue:  Job (id, language, source, stdin, room)
//! worker: queue ──> Job ──> store.mark_running ──> sandbox ──> Ending::status ──> RunResult
//!         ──> store.finish (only over a non-terminal status) ──> queue.delete
//! ```
//!
//! Modules (the model's types are re-exported here; the modules other crates name are public):
//! - `language`: the languages, their runner images and versions.
//! - `limits`: the resource limits of a run.
//! - [`toolchain`]: how each language's runner compiles and runs a program.
//! - [`request`]: validation of API requests, with one error per refusal.
//! - `job`: the queue message.
//! - `record`: the stored record ([`Submission`]) and a worker's [`RunResult`], declared
//!   around one list of the result's fields.
//! - [`status`]: statuses, and how a sandbox [`Ending`] maps onto them.
//! - [`project`]: a submission's files (Contract 2b): name rules, limits, entry files.
//! - [`judge`]: a test's output against the expected, and the verdict (Contract 2b).
//! - `queue` and `store`: the traits the binaries use (job queue, submission store, rate
//!   counters), with their semantics and errors; `error`: the service failures behind them.
//! - [`embedded`] (feature `embedded`): all three over one SQLite file, for the local stack.
//! - [`aws`] (feature `aws`): the queue on SQS, the store and the rate counters on DynamoDB.
//! - [`config`] (feature `config`): the backend the environment names, and logging, for the
//!   binaries.

mod error;
mod job;
pub mod judge;
mod language;
mod limits;
pub mod project;
mod queue;
mod record;
pub mod request;
pub mod status;
mod store;
pub mod toolchain;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(feature = "aws")]
pub mod aws;

#[cfg(feature = "config")]
pub mod config;

pub use error::ServiceError;
pub use job::{Job, MalformedJob, MessageError, Payload, Program, MAX_MESSAGE_BYTES};
pub use language::{Language, LanguageInfo};
pub use limits::{InteractiveLimits, Limits};
pub use queue::{Delivery, JobQueue, QueueError};
pub use record::{RunResult, Submission, RECORD_TTL};
pub use request::{
    is_submission_id, parse_live_run, parse_request, parse_room, LiveRun, NewSubmission,
    RequestError,
};
pub use status::{Ending, Phase, Status, TimeLimit};
pub use store::{
    payload_part_count, payload_parts, PayloadStore, RateCounter, RateHit, StoreError,
    SubmissionStore, Transition, Unreadable, PAYLOAD_PART_BYTES,
};
