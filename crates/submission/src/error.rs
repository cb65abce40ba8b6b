//! Why a backend service call failed: the one source type behind [`QueueError::Unavailable`]
//! and [`StoreError::Unavailable`], with the backend's own error kept as its source.
//!
//! [`QueueError::Unavailable`]: crate::QueueError::Unavailable
//! [`StoreError::Unavailable`]: crate::StoreError::Unavailable

/// A failure of the service behind the queue or the store.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// SQLite refused the call (embedded backend).
    #[cfg(feature = "embedded")]
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking database task panicked or was cancelled (embedded backend).
    #[cfg(feature = "embedded")]
    #[error("the database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A thread panicked while it held the database connection (embedded backend).
    #[cfg(feature = "embedded")]
    #[error("the database connection is poisoned by a panic")]
    Poisoned,
    /// A record or a write could not be encoded for the store.
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
    /// An SQS or DynamoDB call failed (AWS backend).
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
}
