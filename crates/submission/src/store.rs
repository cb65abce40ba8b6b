//! The submission store and the rate counters, behind traits: DynamoDB in production, SQLite
//! locally.
//!
//! Every write that moves a status is conditional, so that concurrent or repeated workers
//! cannot undo each other: `queued -> running` only from `queued`, and a terminal result only
//! over a non-terminal status. A terminal status therefore never changes.
//!
//! A rate counter is one fixed-window counter per client and window
//! (`codebox_access::rate`), counted by one atomic "add one if below the limit" in the store
//! every API instance shares, so a limit holds across instances and processes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use codebox_access::{RateLimit, Window};

use crate::error::ServiceError;
use crate::{RunResult, Status, Submission};

/// A failure of the store service.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the call.
    #[error("store unavailable: {0}")]
    Unavailable(#[from] ServiceError),
    /// A record exists but cannot be read back.
    #[error("stored record {id} is unreadable: {source}")]
    Corrupt {
        /// The record.
        id: String,
        /// What is wrong with it.
        source: Unreadable,
    },
    /// `create` found a record with the same id.
    #[error("a submission with id {0} already exists")]
    AlreadyExists(String),
    /// A part of a submission's payload is not stored (expired, or never written).
    #[error("part {part} of the payload of submission {id} is missing")]
    MissingPayload {
        /// The submission.
        id: String,
        /// The missing part.
        part: u32,
    },
}

/// Why a stored record cannot be read back as a [`Submission`].
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// A field is missing or has the wrong type or value (the path names the field).
    #[error(transparent)]
    Field(#[from] serde_path_to_error::Error<serde_json::Error>),
    /// A DynamoDB attribute has a type no record field has (`B`, sets, ...).
    #[error("attribute {name} has an unsupported type")]
    AttributeType {
        /// The attribute.
        name: String,
    },
    /// A DynamoDB number attribute is not a number a record holds.
    #[error("attribute {name} is not an integer: {value}")]
    Number {
        /// The attribute.
        name: String,
        /// Its text.
        value: String,
    },
    /// An attribute every record has is missing.
    #[error("attribute {0} is missing")]
    Missing(&'static str),
}

/// What a conditional status write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The write happened.
    Applied,
    /// The record was in this status, which the write may not replace.
    Refused(Status),
    /// No live record has this id.
    NotFound,
}

/// Where submission records live.
#[async_trait]
pub trait SubmissionStore: Send + Sync {
    /// Writes a new record; fails with [`StoreError::AlreadyExists`] if the id is taken.
    async fn create(&self, record: &Submission) -> Result<(), StoreError>;
    /// Reads a record; `None` when absent or expired at `now`.
    async fn get(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Submission>, StoreError>;
    /// `queued -> running`, stamping `started_at`.
    async fn mark_running(&self, id: &str, at: DateTime<Utc>) -> Result<Transition, StoreError>;
    /// Writes a terminal result over a `queued` or `running` record.
    async fn finish(&self, id: &str, result: &RunResult) -> Result<Transition, StoreError>;
}

/// The most bytes one stored part of a payload holds: a DynamoDB item holds 400 KB in all,
/// its key and attribute names included.
pub const PAYLOAD_PART_BYTES: usize = 300 * 1024;

/// Where a job's payload waits when it is too large for a queue message (Contract 2b: a
/// project's files and its tests may hold megabytes; a message holds 256 KiB). It is stored in
/// parts of at most [`PAYLOAD_PART_BYTES`] under the submission's id, before the job is sent,
/// and lives as long as the record.
#[async_trait]
pub trait PayloadStore: Send + Sync {
    /// Stores `payload` for submission `id` until `expires_at` (Unix seconds); returns how
    /// many parts it took.
    async fn put_payload(
        &self,
        id: &str,
        payload: &[u8],
        expires_at: i64,
    ) -> Result<u32, StoreError>;
    /// The payload stored for `id` in `parts` parts; [`StoreError::MissingPayload`] when a
    /// part is gone.
    async fn payload(&self, id: &str, parts: u32) -> Result<Vec<u8>, StoreError>;
}

/// How many parts `payload` is stored in.
pub fn payload_part_count(payload: &[u8]) -> u32 {
    u32::try_from(payload.len().div_ceil(PAYLOAD_PART_BYTES)).unwrap_or(u32::MAX)
}

/// The parts `payload` is stored in.
pub fn payload_parts(payload: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    payload
        .chunks(PAYLOAD_PART_BYTES)
        .enumerate()
        .map(|(i, part)| (i as u32, part))
}

/// One action to count against a fixed-window rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHit {
    /// The counter: scope, client and window ([`Window::key`]).
    pub key: String,
    /// How many hits the counter may hold.
    pub limit: u32,
    /// How many hits the action counts for (a submission with tests: one per test).
    pub weight: u32,
    /// The window the hit falls in.
    pub window: Window,
    /// When the hit happens (Unix seconds).
    pub now: u64,
}

impl RateHit {
    /// A hit by `client` in `scope` (e.g. `runs`) at `now` (Unix seconds) under `limit`.
    pub fn new(scope: &str, client: &str, limit: RateLimit, now: u64) -> Self {
        let window = limit.window(now);
        RateHit {
            key: window.key(scope, client),
            limit: limit.limit,
            weight: 1,
            window,
            now,
        }
    }

    /// The same hit, counting for `weight` hits (at least one).
    pub fn weighing(self, weight: u32) -> Self {
        RateHit {
            weight: weight.max(1),
            ..self
        }
    }

    /// Seconds until the window ends: the `Retry-After` of a refusal.
    pub fn retry_after(&self) -> u64 {
        self.window.retry_after(self.now)
    }
}

/// Where the fixed-window rate counters live: shared by every process that enforces a limit.
#[async_trait]
pub trait RateCounter: Send + Sync {
    /// Counts `hit` (`hit.weight` hits) unless the counter would then hold more than
    /// `hit.limit`, in one atomic step: `true` when counted (allowed), `false` when refused
    /// (nothing counted).
    async fn count(&self, hit: &RateHit) -> Result<bool, StoreError>;
}
