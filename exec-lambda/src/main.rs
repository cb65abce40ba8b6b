//! The exec API binary: under AWS Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else a local
//! server (default 127.0.0.1:8788).
//!
//! Configuration (environment):
//! - `CODEBOX_BACKEND`: `embedded` (default: one SQLite file shared with the local fleet) or `aws`.
//! - `CODEBOX_DB`: the SQLite file for `embedded` (default `.dev/codebox.db`).
//! - `CODEBOX_MAX_RECEIVES`: deliveries before a job is dead-lettered (embedded; default 3).
//! - `CODEBOX_EXEC_LISTEN`: local listen address (default `127.0.0.1:8788`).
//! - `CODEBOX_RATE_PER_SECOND`, `CODEBOX_RATE_BURST`: per-client submission rate.
//! - `LOG_FORMAT=json` for JSON logs (always JSON under Lambda); `RUST_LOG` filters.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use codebox_submission::embedded::Embedded;
use codebox_submission::Limits;
use exec_lambda::{router, AppState, RateLimit, RateLimiter};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) => value.parse().map_err(|_| anyhow::anyhow!("{name}={value} is not valid")),
        Err(_) => Ok(default),
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    init_logs(in_lambda || std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json"));

    let backend = std::env::var("CODEBOX_BACKEND").unwrap_or_else(|_| "embedded".into());
    let (queue, store): (Arc<dyn codebox_submission::JobQueue>, Arc<dyn codebox_submission::SubmissionStore>) =
        match backend.as_str() {
            "embedded" => {
                let path: PathBuf = env_or("CODEBOX_DB", PathBuf::from(".dev/codebox.db"))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                }
                let embedded = Embedded::open(&path, env_or("CODEBOX_MAX_RECEIVES", 3)?)
                    .with_context(|| format!("opening {}", path.display()))?;
                (Arc::new(embedded.clone()), Arc::new(embedded))
            }
            other => anyhow::bail!("CODEBOX_BACKEND={other}: expected `embedded` or `aws`"),
        };
    let rate = RateLimit {
        per_second: env_or("CODEBOX_RATE_PER_SECOND", RateLimit::default().per_second)?,
        burst: env_or("CODEBOX_RATE_BURST", RateLimit::default().burst)?,
    };
    let app = router(AppState { queue, store, limits: Limits::default(), rate_limiter: Arc::new(RateLimiter::new(rate)) });

    if in_lambda {
        lambda_http::run(app).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
    } else {
        let listen: String = env_or("CODEBOX_EXEC_LISTEN", "127.0.0.1:8788".to_string())?;
        let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
        tracing::info!(%listen, %backend, "exec API listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    }
}
