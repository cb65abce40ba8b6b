//! The exec API's configuration, read from the environment in one place.
//!
//! - [`LAMBDA_RUNTIME_API`]: set by AWS Lambda; then the API runs under Lambda, else as a
//!   local server on [`LISTEN`] (default: the exec API's local port in DESIGN.md).
//! - [`EDGE_SECRET`]: the secret the edge sends. Required under Lambda; locally, unset or
//!   empty means only loopback callers are served (see `gate`).
//! - [`RUN_RATE_LIMIT`]: runs per client as `LIMIT/SECONDS` (default
//!   [`RateLimit::RUNS`]).
//! - the backend and logs: see `codebox_submission::config` (always JSON logs under Lambda).

use std::net::SocketAddr;

use codebox_access::RateLimit;
use codebox_submission::config::{var_or, BackendConfig, LogConfig, Vars};

use crate::gate::{EdgeSecret, Gate, WeakEdgeSecret};

/// Set by AWS Lambda in a function's environment.
pub const LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// The local server's address.
pub const LISTEN: &str = "CODEBOX_EXEC_LISTEN";
/// The edge's shared secret.
pub const EDGE_SECRET: &str = codebox_access::headers::EDGE_SECRET_VAR;
/// Runs per client per window, `LIMIT/SECONDS`.
pub const RUN_RATE_LIMIT: &str = "CODEBOX_RUN_RATE_LIMIT";

/// Where the local server listens by default (DESIGN.md, "Local ports").
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8788);

/// A configuration the API refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Under Lambda without an edge secret, anyone who finds the URL could use the API.
    #[error("{EDGE_SECRET} must be set under AWS Lambda: the API serves the edge only")]
    MissingEdgeSecret,
    /// The edge secret is too weak to be one.
    #[error("{EDGE_SECRET} is not usable")]
    WeakEdgeSecret(#[from] WeakEdgeSecret),
    /// Another variable is invalid.
    #[error(transparent)]
    Invalid(#[from] codebox_submission::config::ConfigError),
}

/// How the API is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// By the Lambda runtime.
    Lambda,
    /// By a local server on this address.
    Local(SocketAddr),
}

/// Everything the API starts with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lambda or a local server.
    pub serve: Serve,
    /// Who may call.
    pub gate: Gate,
    /// Runs per client.
    pub run_limit: RateLimit,
    /// The queue, store and rate counters.
    pub backend: BackendConfig,
    /// How it logs.
    pub logs: LogConfig,
}

impl Config {
    /// The configuration `vars` describe.
    pub fn from_vars(vars: Vars) -> Result<Self, ConfigError> {
        let serve = match vars(LAMBDA_RUNTIME_API) {
            Some(_) => Serve::Lambda,
            None => Serve::Local(var_or(vars, LISTEN, DEFAULT_LISTEN)?),
        };
        let secret = vars(EDGE_SECRET).filter(|s| !s.is_empty());
        let gate = match (secret, serve) {
            (Some(secret), _) => Gate::EdgeSecret(EdgeSecret::new(&secret)?),
            (None, Serve::Lambda) => return Err(ConfigError::MissingEdgeSecret),
            (None, Serve::Local(_)) => Gate::Loopback,
        };
        let mut logs = LogConfig::from_vars(vars)?;
        // CloudWatch Logs Insights reads JSON lines.
        logs.json |= serve == Serve::Lambda;
        Ok(Config {
            serve,
            gate,
            run_limit: var_or(vars, RUN_RATE_LIMIT, RateLimit::RUNS)?,
            backend: BackendConfig::from_vars(vars)?,
            logs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: HashMap<&str, &str> = pairs.iter().copied().collect();
        Config::from_vars(&|name| table.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn local_defaults_serve_loopback_on_8788() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.serve,
            Serve::Local("127.0.0.1:8788".parse().unwrap())
        );
        assert!(matches!(config.gate, Gate::Loopback));
        assert_eq!(config.run_limit, RateLimit::RUNS);
        assert_eq!(config.backend.name(), "embedded");
        let empty = self::config(&[(EDGE_SECRET, "")]).unwrap();
        assert!(matches!(empty.gate, Gate::Loopback), "empty is unset");
    }

    #[test]
    fn lambda_refuses_to_start_without_a_strong_secret() {
        let lambda = (LAMBDA_RUNTIME_API, "127.0.0.1:9001");
        assert!(matches!(
            config(&[lambda]),
            Err(ConfigError::MissingEdgeSecret)
        ));
        assert!(matches!(
            config(&[lambda, (EDGE_SECRET, "")]),
            Err(ConfigError::MissingEdgeSecret)
        ));
        let short = config(&[lambda, (EDGE_SECRET, &SECRET[1..])]).unwrap_err();
        assert!(matches!(short, ConfigError::WeakEdgeSecret(_)), "{short}");
        assert!(short.to_string().contains(EDGE_SECRET), "{short}");
        let config = config(&[lambda, (EDGE_SECRET, SECRET)]).unwrap();
        assert_eq!(config.serve, Serve::Lambda);
        assert!(config.logs.json, "JSON logs under Lambda");
        assert!(matches!(config.gate, Gate::EdgeSecret(_)));
    }

    #[test]
    fn a_local_secret_must_be_strong_too() {
        assert!(matches!(
            config(&[(EDGE_SECRET, "s3cret")]),
            Err(ConfigError::WeakEdgeSecret(_))
        ));
        assert!(matches!(
            config(&[(EDGE_SECRET, SECRET)]).unwrap().gate,
            Gate::EdgeSecret(_)
        ));
    }

    #[test]
    fn reads_the_run_rate_limit_and_listen_address() {
        let config = config(&[(RUN_RATE_LIMIT, "5/10"), (LISTEN, "127.0.0.1:9000")]).unwrap();
        assert_eq!(
            config.run_limit,
            RateLimit {
                limit: 5,
                window_s: 10
            }
        );
        assert_eq!(
            config.serve,
            Serve::Local("127.0.0.1:9000".parse().unwrap())
        );
        for bad in [
            (RUN_RATE_LIMIT, "30"),
            (RUN_RATE_LIMIT, "30/0"),
            (LISTEN, "nowhere"),
        ] {
            let error = self::config(&[bad]).unwrap_err();
            assert!(error.to_string().contains(bad.0), "{error}");
        }
    }
}
