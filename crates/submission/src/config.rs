//! What the exec API and the fleet share when they start: the backend chosen by the
//! environment, environment parsing, and logging.
//!
//! - `CODEBOX_BACKEND`: `embedded` (default: one SQLite file shared by the local processes)
//!   or `aws` (SQS + DynamoDB).
//! - embedded: `CODEBOX_DB` (default `.dev/codebox.db`), `CODEBOX_MAX_RECEIVES` (default 3,
//!   deliveries before a job is dead-lettered).
//! - aws: `SQS_QUEUE_URL`, `SQS_DEAD_LETTER_QUEUE_URL`, `DYNAMODB_TABLE`, and optionally
//!   `AWS_ENDPOINT_URL` (a stand-in such as moto); credentials and region from the AWS chain.
//! - `LOG_FORMAT=json` (always JSON under Lambda), `RUST_LOG` for filters.

use std::path::PathBuf;
use std::sync::Arc;

use crate::aws::{clients_from_env, DynamoStore, SqsQueue};
use crate::embedded::Embedded;
use crate::{JobQueue, SubmissionStore};

/// A startup configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The queue and store the process runs against.
pub struct Backend {
    /// Which backend (`embedded` or `aws`).
    pub name: String,
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The submission store.
    pub store: Arc<dyn SubmissionStore>,
}

/// Reads `name` from the environment, or `default` when unset.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map_err(|_| ConfigError(format!("{name}={value} is not valid"))),
        Err(_) => Ok(default),
    }
}

fn required(name: &str) -> Result<String, ConfigError> {
    std::env::var(name)
        .map_err(|_| ConfigError(format!("{name} must be set for CODEBOX_BACKEND=aws")))
}

/// Opens the backend the environment names.
pub async fn backend_from_env() -> Result<Backend, ConfigError> {
    let name = std::env::var("CODEBOX_BACKEND").unwrap_or_else(|_| "embedded".into());
    let (queue, store): (Arc<dyn JobQueue>, Arc<dyn SubmissionStore>) = match name.as_str() {
        "embedded" => {
            let path: PathBuf = env_or("CODEBOX_DB", PathBuf::from(".dev/codebox.db"))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ConfigError(format!("creating {}: {e}", dir.display())))?;
            }
            let embedded = Embedded::open(&path, env_or("CODEBOX_MAX_RECEIVES", 3)?)
                .map_err(|e| ConfigError(format!("opening {}: {e}", path.display())))?;
            (Arc::new(embedded.clone()), Arc::new(embedded))
        }
        "aws" => {
            let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
            let clients = clients_from_env(endpoint.as_deref()).await;
            let queue = SqsQueue::new(
                clients.sqs,
                required("SQS_QUEUE_URL")?,
                required("SQS_DEAD_LETTER_QUEUE_URL")?,
            );
            let store = DynamoStore::new(clients.dynamodb, required("DYNAMODB_TABLE")?);
            (Arc::new(queue), Arc::new(store))
        }
        other => {
            return Err(ConfigError(format!(
                "CODEBOX_BACKEND={other}: expected `embedded` or `aws`"
            )))
        }
    };
    Ok(Backend { name, queue, store })
}

/// Installs the log subscriber: JSON lines when `json` or `LOG_FORMAT=json`, else text;
/// `RUST_LOG` filters (default `info`).
pub fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json || std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
