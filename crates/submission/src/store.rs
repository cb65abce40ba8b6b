//! The submission store, behind a trait: DynamoDB in production, SQLite locally.
//!
//! Every write that moves a status is conditional, so that concurrent or repeated workers
//! cannot undo each other: `queued -> running` only from `queued`, and a terminal result only
//! over a non-terminal status. A terminal status therefore never changes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{RunResult, Status, Submission};

/// A failure of the store service.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the call.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record exists but cannot be read back.
    #[error("stored record {id} is unreadable: {detail}")]
    Corrupt {
        /// The record.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// `create` found a record with the same id.
    #[error("a submission with id {0} already exists")]
    AlreadyExists(String),
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
