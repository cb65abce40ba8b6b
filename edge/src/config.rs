//! Everything the edge reads from its environment (wrangler.toml `[vars]` and Worker secrets),
//! read in one place.

use codebox_access::headers::MIN_EDGE_SECRET_BYTES;
use codebox_access::{RateLimit, RunKey, TokenKey};
use worker::Env;

use crate::http::EdgeError;

/// Secret: the key room tokens are signed with (`wrangler secret put ROOM_TOKEN_SECRET`;
/// `make dev` writes a local one into `.dev.vars`).
const ROOM_TOKEN_SECRET: &str = "ROOM_TOKEN_SECRET";
/// Secret: proves to the exec API that a request comes from this edge (the same name on both
/// sides).
const EDGE_SECRET: &str = codebox_access::headers::EDGE_SECRET_VAR;
/// Variable: the exec API's base URL.
const EXEC_API_URL: &str = "EXEC_API_URL";
/// Variable: room creations per client, `LIMIT/SECONDS` (default [`RateLimit::ROOMS`]).
const ROOM_RATE_LIMIT: &str = "ROOM_RATE_LIMIT";
/// Variable: runs per client, `LIMIT/SECONDS` (default [`RateLimit::RUNS`]).
const RUN_RATE_LIMIT: &str = "RUN_RATE_LIMIT";

/// The edge's configuration.
pub(crate) struct Config {
    /// Signs and checks room tokens.
    pub token_key: TokenKey,
    /// Signs and checks run credentials (derived from the same secret).
    pub run_key: RunKey,
    /// Sent to the exec API with every request; `None` locally, where it serves loopback.
    pub edge_secret: Option<String>,
    /// The exec API's base URL.
    pub exec_api_url: Option<String>,
    /// Room creations per client.
    pub room_rate: RateLimit,
    /// Runs per client.
    pub run_rate: RateLimit,
}

impl Config {
    /// Reads the configuration; a missing or weak token secret is an error (nothing about
    /// rooms can be decided without it).
    pub(crate) fn from_env(env: &Env) -> Result<Self, EdgeError> {
        let secret = env.secret(ROOM_TOKEN_SECRET).map_err(|_| {
            EdgeError::Config(format!(
                "{ROOM_TOKEN_SECRET} is not set (wrangler secret put {ROOM_TOKEN_SECRET})"
            ))
        })?;
        let secret = secret.to_string();
        let weak = |e| EdgeError::Config(format!("{ROOM_TOKEN_SECRET}: {e}"));
        let token_key = TokenKey::new(secret.as_bytes()).map_err(weak)?;
        let run_key = RunKey::new(secret.as_bytes()).map_err(weak)?;
        let edge_secret = env
            .secret(EDGE_SECRET)
            .ok()
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty());
        if edge_secret
            .as_ref()
            .is_some_and(|s| s.len() < MIN_EDGE_SECRET_BYTES)
        {
            return Err(EdgeError::Config(format!(
                "{EDGE_SECRET} must be at least {MIN_EDGE_SECRET_BYTES} bytes"
            )));
        }
        Ok(Config {
            token_key,
            run_key,
            edge_secret,
            exec_api_url: env.var(EXEC_API_URL).ok().map(|v| v.to_string()),
            room_rate: rate_limit(env, ROOM_RATE_LIMIT, RateLimit::ROOMS)?,
            run_rate: rate_limit(env, RUN_RATE_LIMIT, RateLimit::RUNS)?,
        })
    }

    /// The exec API's base URL, or why there is none.
    pub(crate) fn exec_api_url(&self) -> Result<&str, EdgeError> {
        self.exec_api_url
            .as_deref()
            .ok_or_else(|| EdgeError::Config(format!("{EXEC_API_URL} is not set")))
    }
}

fn rate_limit(env: &Env, name: &str, default: RateLimit) -> Result<RateLimit, EdgeError> {
    match env.var(name) {
        Ok(value) => value
            .to_string()
            .parse()
            .map_err(|e| EdgeError::Config(format!("{name}: {e}"))),
        Err(_) => Ok(default),
    }
}
