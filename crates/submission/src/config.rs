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
use crate::{JobQueue, RateCounter, SubmissionStore};

/// `embedded` or `aws`.
pub const BACKEND: &str = "CODEBOX_BACKEND";
/// The embedded backend's SQLite file.
pub const DB: &str = "CODEBOX_DB";
/// Deliveries of one job before the embedded queue dead-letters it.
pub const MAX_RECEIVES: &str = "CODEBOX_MAX_RECEIVES";
/// The SQS job queue.
pub const SQS_QUEUE_URL: &str = "SQS_QUEUE_URL";
/// Its dead-letter queue.
pub const SQS_DEAD_LETTER_QUEUE_URL: &str = "SQS_DEAD_LETTER_QUEUE_URL";
/// The DynamoDB table of records and rate counters.
pub const DYNAMODB_TABLE: &str = "DYNAMODB_TABLE";
/// Where AWS requests go instead of AWS (a stand-in such as moto).
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

const DEFAULT_DB: &str = ".dev/codebox.db";
const DEFAULT_MAX_RECEIVES: u32 = 3;

/// A startup configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Reads one variable: the environment, or a table in tests.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as [`Vars`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Which queue, store and rate counters to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// One SQLite file.
    Embedded {
        /// The database file (its folder is created when missing).
        path: PathBuf,
        /// Deliveries of one job before it is dead-lettered.
        max_receives: u32,
    },
    /// SQS and DynamoDB.
    Aws {
        /// Where requests go instead of AWS, if anywhere.
        endpoint_url: Option<String>,
        /// The job queue.
        queue_url: String,
        /// Its dead-letter queue.
        dead_letter_queue_url: String,
        /// The table of records and rate counters.
        table: String,
    },
}

/// The queue, store and rate counters the process runs against.
pub struct Backend {
    /// Which backend (`embedded` or `aws`).
    pub name: String,
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The submission store.
    pub store: Arc<dyn SubmissionStore>,
    /// The rate counters.
    pub rates: Arc<dyn RateCounter>,
}

/// Reads `name` from `vars`, or `default` when unset.
pub fn var_or<T>(vars: Vars, name: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match vars(name) {
        Some(value) => value
            .parse()
            .map_err(|e| ConfigError(format!("{name}={value} is not valid: {e}"))),
        None => Ok(default),
    }
}

/// Reads `name` from the environment, or `default` when unset.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    var_or(&process_env, name, default)
}

impl BackendConfig {
    /// The backend `vars` name.
    pub fn from_vars(vars: Vars) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            vars(name).ok_or_else(|| ConfigError(format!("{name} must be set for {BACKEND}=aws")))
        };
        match vars(BACKEND).as_deref().unwrap_or("embedded") {
            "embedded" => Ok(BackendConfig::Embedded {
                path: var_or(vars, DB, PathBuf::from(DEFAULT_DB))?,
                max_receives: var_or(vars, MAX_RECEIVES, DEFAULT_MAX_RECEIVES)?,
            }),
            "aws" => Ok(BackendConfig::Aws {
                endpoint_url: vars(AWS_ENDPOINT_URL),
                queue_url: required(SQS_QUEUE_URL)?,
                dead_letter_queue_url: required(SQS_DEAD_LETTER_QUEUE_URL)?,
                table: required(DYNAMODB_TABLE)?,
            }),
            other => Err(ConfigError(format!(
                "{BACKEND}={other}: expected `embedded` or `aws`"
            ))),
        }
    }

    /// `embedded` or `aws`.
    pub fn name(&self) -> &'static str {
        match self {
            BackendConfig::Embedded { .. } => "embedded",
            BackendConfig::Aws { .. } => "aws",
        }
    }

    /// Opens the backend.
    pub async fn open(&self) -> Result<Backend, ConfigError> {
        let name = self.name().to_owned();
        match self {
            BackendConfig::Embedded { path, max_receives } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| ConfigError(format!("creating {}: {e}", dir.display())))?;
                }
                let embedded = Embedded::open(path, *max_receives)
                    .map_err(|e| ConfigError(format!("opening {}: {e}", path.display())))?;
                Ok(Backend {
                    name,
                    queue: Arc::new(embedded.clone()),
                    store: Arc::new(embedded.clone()),
                    rates: Arc::new(embedded),
                })
            }
            BackendConfig::Aws {
                endpoint_url,
                queue_url,
                dead_letter_queue_url,
                table,
            } => {
                let clients = clients_from_env(endpoint_url.as_deref()).await;
                let store = DynamoStore::new(clients.dynamodb, table.clone());
                Ok(Backend {
                    name,
                    queue: Arc::new(SqsQueue::new(
                        clients.sqs,
                        queue_url.clone(),
                        dead_letter_queue_url.clone(),
                    )),
                    store: Arc::new(store.clone()),
                    rates: Arc::new(store),
                })
            }
        }
    }
}

/// Opens the backend the environment names.
pub async fn backend_from_env() -> Result<Backend, ConfigError> {
    BackendConfig::from_vars(&process_env)?.open().await
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let table: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| table.get(name).cloned()
    }

    #[test]
    fn embedded_is_the_default() {
        assert_eq!(
            BackendConfig::from_vars(&vars(&[])).unwrap(),
            BackendConfig::Embedded {
                path: PathBuf::from(DEFAULT_DB),
                max_receives: DEFAULT_MAX_RECEIVES
            }
        );
        assert!(BackendConfig::from_vars(&vars(&[(MAX_RECEIVES, "x")])).is_err());
    }

    #[test]
    fn aws_needs_its_queues_and_table() {
        let complete = [
            (BACKEND, "aws"),
            (SQS_QUEUE_URL, "q"),
            (SQS_DEAD_LETTER_QUEUE_URL, "d"),
            (DYNAMODB_TABLE, "t"),
        ];
        assert_eq!(
            BackendConfig::from_vars(&vars(&complete)).unwrap(),
            BackendConfig::Aws {
                endpoint_url: None,
                queue_url: "q".into(),
                dead_letter_queue_url: "d".into(),
                table: "t".into()
            }
        );
        let error = BackendConfig::from_vars(&vars(&complete[..3])).unwrap_err();
        assert!(error.to_string().contains(DYNAMODB_TABLE), "{error}");
        assert!(BackendConfig::from_vars(&vars(&[(BACKEND, "redis")])).is_err());
    }
}
