//! The job queue, behind a trait: SQS in production, SQLite locally.
//!
//! Semantics are SQS's: a received message is hidden for a visibility timeout, and comes back
//! (with a higher receive count) unless it is deleted first; after `max_receives` receives it
//! moves to the dead-letter queue instead. A worker extends the visibility of a message it is
//! still working on, and deletes it only after the result is stored.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::ServiceError;
use crate::job::{Job, MalformedJob, MessageError};

/// A failure of the queue or of a job on its way in.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the call.
    #[error("queue unavailable: {0}")]
    Unavailable(#[from] ServiceError),
    /// The receipt handle is unknown or expired.
    #[error("unknown or expired receipt")]
    UnknownReceipt,
    /// The job cannot be sent as a message (nothing was sent).
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// A message taken from the queue.
#[derive(Debug)]
pub struct Delivery {
    /// The job, or why the body is not one.
    pub job: Result<Job, MalformedJob>,
    /// The raw body (for logs and dead-letter handling of malformed messages).
    pub body: String,
    /// Handle to delete or extend this delivery.
    pub receipt: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// Where jobs wait for a worker.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues a job.
    async fn send(&self, job: &Job) -> Result<(), QueueError>;
    /// Takes up to `max` jobs, waiting up to `wait` for the first (long polling), hiding each
    /// for `visibility`.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;
    /// Deletes a delivered message for good.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Hides a delivered message for `visibility` from now.
    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError>;
    /// Takes up to `max` messages from the dead-letter queue (same receipt semantics; delete
    /// them with [`JobQueue::delete_dead`]).
    async fn receive_dead(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;
    /// Deletes a dead-letter message.
    async fn delete_dead(&self, receipt: &str) -> Result<(), QueueError>;
}
