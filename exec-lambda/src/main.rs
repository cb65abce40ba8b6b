//! The exec API binary: under AWS Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else a local
//! server (default 127.0.0.1:8788).
//!
//! Configuration (environment):
//! - the backend and logging: see `codebox_submission::config`.
//! - `CODEBOX_EXEC_LISTEN`: local listen address (default `127.0.0.1:8788`).
//! - `CODEBOX_RATE_PER_SECOND`, `CODEBOX_RATE_BURST`: per-client submission rate.
//! - `CODEBOX_EDGE_SECRET`: the secret the edge proxy sends; empty or unset, no caller names
//!   its client (see `exec_lambda::rate_limit`).

use std::sync::Arc;

use anyhow::Context;
use codebox_submission::config::{backend_from_env, env_or, init_logs};
use codebox_submission::Limits;
use exec_lambda::{router, AppState, RateLimit, RateLimiter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    init_logs(in_lambda);
    let backend = backend_from_env().await?;
    let rate = RateLimit {
        per_second: env_or("CODEBOX_RATE_PER_SECOND", RateLimit::default().per_second)?,
        burst: env_or("CODEBOX_RATE_BURST", RateLimit::default().burst)?,
    };
    let app = router(AppState {
        queue: backend.queue,
        store: backend.store,
        limits: Limits::default(),
        rate_limiter: Arc::new(RateLimiter::new(rate)),
        edge_secret: std::env::var("CODEBOX_EDGE_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .map(Arc::from),
    });

    if in_lambda {
        lambda_http::run(app)
            .await
            .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
    } else {
        let listen: String = env_or("CODEBOX_EXEC_LISTEN", "127.0.0.1:8788".to_string())?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!(%listen, backend = %backend.name, "exec API listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    }
}
