//! The fleet worker's configuration, read from the environment in one place.
//!
//! - the backend and logs: see `codebox_submission::config`.
//! - [`CONCURRENCY`]: jobs run at once (default [`WorkerConfig::default`]).
//! - [`POOL_SIZE`]: warm containers kept per language (default [`SandboxConfig::default`]).
//! - [`POLL_WAIT_MS`]: longest wait of one receive, in milliseconds (default
//!   [`WorkerConfig::default`]).
//! - [`RUNTIME`]: the OCI runtime of sandboxes: `auto` (default: crun if the engine offers
//!   it, else the engine's default), `default`, or a runtime's name.
//! - [`DOCKER_HOST`]: the engine (default the local socket).
//! - [`TESTS_AT_ONCE`]: the most tests of one submission that run at once (default
//!   [`DEFAULT_TESTS_AT_ONCE`]); beyond its own, a submission borrows job slots nobody holds,
//!   so a worker never runs more than [`CONCURRENCY`] containers.
//! - [`EDGE_URL`]: the edge's origin (`http(s)://host[:port]`), for rooms' live runs (Contract
//!   4); without it every run is a batch run, its result polled.

use std::time::Duration;

use codebox_submission::config::{var_or, BackendConfig, ConfigError, LogConfig, Vars};

use crate::live::EdgeUrl;
use crate::sandbox::{RuntimeChoice, SandboxConfig};
use crate::worker::WorkerConfig;

/// Jobs run at once.
pub const CONCURRENCY: &str = "FLEET_CONCURRENCY";
/// Warm containers kept per language.
pub const POOL_SIZE: &str = "FLEET_POOL_SIZE";
/// Longest wait of one receive, in milliseconds.
pub const POLL_WAIT_MS: &str = "FLEET_POLL_WAIT_MS";
/// The OCI runtime of sandboxes.
pub const RUNTIME: &str = "FLEET_RUNTIME";
/// The Docker engine (Docker's own variable).
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// The edge's origin, for live runs.
pub const EDGE_URL: &str = "CODEBOX_EDGE_URL";
/// The most tests of one submission that run at once.
pub const TESTS_AT_ONCE: &str = "FLEET_TESTS_AT_ONCE";
/// Tests of one submission run at once unless [`TESTS_AT_ONCE`] says otherwise.
pub const DEFAULT_TESTS_AT_ONCE: usize = 2;

/// Everything the fleet worker starts with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The queue and store.
    pub backend: BackendConfig,
    /// How the worker polls and holds jobs.
    pub worker: WorkerConfig,
    /// How sandboxes are made.
    pub sandbox: SandboxConfig,
    /// How it logs.
    pub logs: LogConfig,
    /// The edge rooms' runs stream into.
    pub edge: Option<EdgeUrl>,
    /// The most tests of one submission that run at once.
    pub tests_at_once: usize,
}

impl Config {
    /// The configuration `vars` describe.
    pub fn from_vars(vars: Vars) -> Result<Self, ConfigError> {
        let defaults = WorkerConfig::default();
        let concurrency = var_or(vars, CONCURRENCY, defaults.concurrency)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: CONCURRENCY,
                value: concurrency.to_string(),
                source: "the worker must run at least one job at a time".into(),
            });
        }
        let tests_at_once = var_or(vars, TESTS_AT_ONCE, DEFAULT_TESTS_AT_ONCE)?;
        if tests_at_once == 0 {
            return Err(ConfigError::Invalid {
                name: TESTS_AT_ONCE,
                value: tests_at_once.to_string(),
                source: "a submission's tests need at least one container at a time".into(),
            });
        }
        let default_wait_ms = u64::try_from(defaults.poll_wait.as_millis()).unwrap_or(u64::MAX);
        let worker = WorkerConfig {
            concurrency,
            poll_wait: Duration::from_millis(var_or(vars, POLL_WAIT_MS, default_wait_ms)?),
            ..defaults
        };
        let sandbox_defaults = SandboxConfig::default();
        let sandbox = SandboxConfig {
            pool_size: var_or(vars, POOL_SIZE, sandbox_defaults.pool_size)?,
            docker_host: vars(DOCKER_HOST),
            runtime: var_or(vars, RUNTIME, RuntimeChoice::Auto)?,
            ..sandbox_defaults
        };
        let edge = vars(EDGE_URL)
            .filter(|url| !url.is_empty())
            .map(|url| {
                EdgeUrl::parse(&url).map_err(|reason| ConfigError::Invalid {
                    name: EDGE_URL,
                    value: url,
                    source: reason.into(),
                })
            })
            .transpose()?;
        Ok(Config {
            edge,
            tests_at_once,
            backend: BackendConfig::from_vars(vars)?,
            worker,
            sandbox,
            logs: LogConfig::from_vars(vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: HashMap<&str, &str> = pairs.iter().copied().collect();
        Config::from_vars(&|name| table.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_are_the_worker_and_sandbox_defaults() {
        let config = config(&[]).unwrap();
        let (worker, sandbox) = (WorkerConfig::default(), SandboxConfig::default());
        assert_eq!(config.worker.concurrency, worker.concurrency);
        assert_eq!(config.worker.poll_wait, worker.poll_wait);
        assert_eq!(config.worker.visibility, worker.visibility);
        assert_eq!(config.sandbox.pool_size, sandbox.pool_size);
        assert_eq!(config.sandbox.runtime, RuntimeChoice::Auto);
        assert_eq!(config.sandbox.docker_host, None);
        assert_eq!(config.backend.name(), "embedded");
        assert_eq!(config.edge, None);
        assert_eq!(config.tests_at_once, DEFAULT_TESTS_AT_ONCE);
    }

    #[test]
    fn reads_every_variable() {
        let config = config(&[
            (CONCURRENCY, "2"),
            (POOL_SIZE, "0"),
            (POLL_WAIT_MS, "200"),
            (RUNTIME, "runc"),
            (DOCKER_HOST, "unix:///run/docker.sock"),
            (EDGE_URL, "http://127.0.0.1:8787"),
            (TESTS_AT_ONCE, "3"),
        ])
        .unwrap();
        assert_eq!(config.tests_at_once, 3);
        assert_eq!(
            config.edge,
            Some(EdgeUrl::parse("http://127.0.0.1:8787").unwrap())
        );
        assert_eq!(config.worker.concurrency, 2);
        assert_eq!(config.worker.poll_wait, Duration::from_millis(200));
        assert_eq!(config.sandbox.pool_size, 0);
        assert_eq!(config.sandbox.runtime, RuntimeChoice::Named("runc".into()));
        assert_eq!(
            config.sandbox.docker_host.as_deref(),
            Some("unix:///run/docker.sock")
        );
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for bad in [
            (CONCURRENCY, "many"),
            (CONCURRENCY, "0"),
            (POOL_SIZE, "-1"),
            (POLL_WAIT_MS, "10s"),
            (EDGE_URL, "127.0.0.1:8787"),
            (TESTS_AT_ONCE, "0"),
            (codebox_submission::config::BACKEND, "redis"),
        ] {
            let error = config(&[bad]).unwrap_err();
            assert!(error.to_string().contains(bad.0), "{error}");
        }
        assert!(matches!(
            config(&[(CONCURRENCY, "0")]),
            Err(ConfigError::Invalid {
                name: CONCURRENCY,
                ..
            })
        ));
    }
}
