//! What the exec API and the fleet share when they start: the backend chosen by the
//! environment, reading variables, and logging. Each binary reads its whole configuration in
//! one place (`exec_lambda::config::Config`, the fleet's `config::Config`) with these helpers.
//!
//! - [`BACKEND`]: `embedded` (default: one SQLite file shared by the local processes) or
//!   `aws` (SQS + DynamoDB). A binary opens only the backends it was built with (cargo
//!   features `embedded` and `aws` of this crate; production builds leave `embedded` out).
//! - embedded: [`DB`] (default `.dev/codebox.db`), [`MAX_RECEIVES`] (default 3, deliveries
//!   before a job is dead-lettered).
//! - aws: [`SQS_QUEUE_URL`], [`SQS_DEAD_LETTER_QUEUE_URL`], [`DYNAMODB_TABLE`], and optionally
//!   [`AWS_ENDPOINT_URL`] (a stand-in such as moto); credentials and region from the AWS chain.
//! - logs ([`LogConfig`]): [`LOG_FORMAT`]`=json` for JSON lines, [`RUST_LOG`] for filters.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{JobQueue, PayloadStore, RateCounter, SubmissionStore};

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
/// `json` for JSON log lines.
pub const LOG_FORMAT: &str = "LOG_FORMAT";
/// Log filters (`tracing_subscriber`'s directives, e.g. `info,exec_lambda=debug`).
pub const RUST_LOG: &str = "RUST_LOG";

/// The filter when [`RUST_LOG`] is unset.
const DEFAULT_LOG_FILTER: &str = "info";

const DEFAULT_DB: &str = ".dev/codebox.db";
const DEFAULT_MAX_RECEIVES: u32 = 3;

/// The cause of an invalid value, as its parser reported it.
pub type ParseError = Box<dyn std::error::Error + Send + Sync>;

/// A configuration the binaries refuse to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable's value does not parse.
    #[error("{name}={value} is not valid: {source}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it does not parse.
        source: ParseError,
    },
    /// A variable the chosen backend needs is unset.
    #[error("{name} must be set for {BACKEND}={backend}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// The backend that needs it.
        backend: &'static str,
    },
    /// [`BACKEND`] names no backend.
    #[error("{BACKEND}={0}: expected `embedded` or `aws`")]
    UnknownBackend(String),
    /// The backend was left out of this build.
    #[error("{BACKEND}={0}: this binary was built without it (cargo feature `{0}`)")]
    NotBuilt(&'static str),
    /// The embedded database's folder could not be created.
    #[error("creating {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// The embedded database could not be opened.
    #[error("opening {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why not.
        source: crate::StoreError,
    },
}

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
    pub name: &'static str,
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The submission store.
    pub store: Arc<dyn SubmissionStore>,
    /// Where programs too large for a queue message wait (beside the records).
    pub payloads: Arc<dyn PayloadStore>,
    /// The rate counters.
    pub rates: Arc<dyn RateCounter>,
}

/// Reads `name` from `vars`, or `default` when unset.
pub fn var_or<T>(vars: Vars, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: Into<ParseError>,
{
    match vars(name) {
        Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            value,
            source: e.into(),
        }),
        None => Ok(default),
    }
}

impl BackendConfig {
    /// The backend `vars` name.
    pub fn from_vars(vars: Vars) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            vars(name).ok_or(ConfigError::Missing {
                name,
                backend: "aws",
            })
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
            other => Err(ConfigError::UnknownBackend(other.to_owned())),
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
        match self {
            BackendConfig::Embedded { path, max_receives } => open_embedded(path, *max_receives),
            BackendConfig::Aws {
                endpoint_url,
                queue_url,
                dead_letter_queue_url,
                table,
            } => open_aws(endpoint_url, queue_url, dead_letter_queue_url, table).await,
        }
    }
}

#[cfg(feature = "embedded")]
fn open_embedded(path: &std::path::Path, max_receives: u32) -> Result<Backend, ConfigError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let embedded = crate::embedded::Embedded::open(path, max_receives).map_err(|source| {
        ConfigError::Open {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(Backend {
        name: "embedded",
        queue: Arc::new(embedded.clone()),
        store: Arc::new(embedded.clone()),
        payloads: Arc::new(embedded.clone()),
        rates: Arc::new(embedded),
    })
}

#[cfg(not(feature = "embedded"))]
fn open_embedded(_: &std::path::Path, _: u32) -> Result<Backend, ConfigError> {
    Err(ConfigError::NotBuilt("embedded"))
}

#[cfg(feature = "aws")]
async fn open_aws(
    endpoint_url: &Option<String>,
    queue_url: &str,
    dead_letter_queue_url: &str,
    table: &str,
) -> Result<Backend, ConfigError> {
    use crate::aws::{clients_from_env, DynamoStore, SqsQueue};
    let clients = clients_from_env(endpoint_url.as_deref()).await;
    let store = DynamoStore::new(clients.dynamodb, table);
    Ok(Backend {
        name: "aws",
        queue: Arc::new(SqsQueue::new(clients.sqs, queue_url, dead_letter_queue_url)),
        store: Arc::new(store.clone()),
        payloads: Arc::new(store.clone()),
        rates: Arc::new(store),
    })
}

#[cfg(not(feature = "aws"))]
async fn open_aws(_: &Option<String>, _: &str, _: &str, _: &str) -> Result<Backend, ConfigError> {
    Err(ConfigError::NotBuilt("aws"))
}

/// How a binary logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// JSON lines rather than text.
    pub json: bool,
    /// The filter directives.
    pub filter: String,
}

impl LogConfig {
    /// The logging `vars` ask for: [`LOG_FORMAT`] and [`RUST_LOG`] (default `info`).
    pub fn from_vars(vars: Vars) -> Result<Self, ConfigError> {
        let filter = vars(RUST_LOG).unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| ConfigError::Invalid {
            name: RUST_LOG,
            value: filter.clone(),
            source: e.into(),
        })?;
        Ok(LogConfig {
            json: vars(LOG_FORMAT).is_some_and(|f| f == "json"),
            filter,
        })
    }

    /// Installs the log subscriber.
    pub fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::new(&self.filter);
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        if self.json {
            builder.json().init();
        } else {
            builder.init();
        }
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

    #[test]
    fn errors_say_which_variable_and_keep_the_cause() {
        let error = BackendConfig::from_vars(&vars(&[(MAX_RECEIVES, "three")])).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { name: MAX_RECEIVES, value, .. } if value == "three"),
            "{error}"
        );
        assert!(
            error.to_string().contains("CODEBOX_MAX_RECEIVES=three"),
            "{error}"
        );
        let cause = std::error::Error::source(&error).expect("the parse error");
        assert!(cause.downcast_ref::<std::num::ParseIntError>().is_some());

        let error = BackendConfig::from_vars(&vars(&[(BACKEND, "aws")])).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Missing {
                name: SQS_QUEUE_URL,
                backend: "aws"
            }
        ));
        let error = BackendConfig::from_vars(&vars(&[(BACKEND, "redis")])).unwrap_err();
        assert!(matches!(&error, ConfigError::UnknownBackend(name) if name == "redis"));
        assert!(error.to_string().contains(BACKEND), "{error}");
    }

    #[test]
    fn logs_are_text_at_info_unless_asked() {
        let default = LogConfig::from_vars(&vars(&[])).unwrap();
        assert_eq!(
            default,
            LogConfig {
                json: false,
                filter: "info".into()
            }
        );
        let json = LogConfig::from_vars(&vars(&[(LOG_FORMAT, "json"), (RUST_LOG, "warn")]));
        assert_eq!(
            json.unwrap(),
            LogConfig {
                json: true,
                filter: "warn".into()
            }
        );
        let error = LogConfig::from_vars(&vars(&[(RUST_LOG, "info,[")])).unwrap_err();
        assert!(
            matches!(error, ConfigError::Invalid { name: RUST_LOG, .. }),
            "{error}"
        );
    }

    #[cfg(not(feature = "embedded"))]
    #[tokio::test]
    async fn a_backend_left_out_of_the_build_is_refused_by_name() {
        let config = BackendConfig::from_vars(&vars(&[])).unwrap();
        assert!(matches!(
            config.open().await,
            Err(ConfigError::NotBuilt("embedded"))
        ));
    }
}
