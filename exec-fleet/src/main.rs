//! The fleet worker binary: long-polls the job queue, runs each job in a Docker sandbox and
//! writes the result; on SIGTERM or Ctrl-C it stops polling and finishes what it holds.
//!
//! Configuration (environment):
//! - `CODEBOX_BACKEND`: `embedded` (default: the SQLite file shared with the local exec API).
//! - `CODEBOX_DB`: the SQLite file for `embedded` (default `.dev/codebox.db`).
//! - `CODEBOX_MAX_RECEIVES`: deliveries before a job is dead-lettered (embedded; default 3).
//! - `FLEET_CONCURRENCY`: jobs run at once (default 4).
//! - `FLEET_POOL_SIZE`: warm containers kept per language (default 2).
//! - `FLEET_POLL_WAIT_MS`: longest wait of one receive (default 10000).
//! - `DOCKER_HOST`: the engine (default the local socket).
//! - `LOG_FORMAT=json` for JSON logs; `RUST_LOG` filters.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use codebox_exec_fleet::sandbox::{Sandbox, SandboxConfig};
use codebox_exec_fleet::worker::{reap_dead_letters, run_worker, WorkerConfig};
use codebox_submission::embedded::Embedded;
use codebox_submission::{JobQueue, SubmissionStore};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) => value.parse().map_err(|_| anyhow::anyhow!("{name}={value} is not valid")),
        Err(_) => Ok(default),
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logs();
    let backend = std::env::var("CODEBOX_BACKEND").unwrap_or_else(|_| "embedded".into());
    let (queue, store): (Arc<dyn JobQueue>, Arc<dyn SubmissionStore>) = match backend.as_str() {
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

    let sandbox = Sandbox::connect(SandboxConfig {
        pool_size: env_or("FLEET_POOL_SIZE", SandboxConfig::default().pool_size)?,
        docker_host: std::env::var("DOCKER_HOST").ok(),
        ..SandboxConfig::default()
    })
    .await
    .context("connecting to the Docker engine")?;
    sandbox.check_images().await.context("checking runner images")?;

    let config = WorkerConfig {
        concurrency: env_or("FLEET_CONCURRENCY", WorkerConfig::default().concurrency)?,
        poll_wait: Duration::from_millis(env_or("FLEET_POLL_WAIT_MS", 10_000)?),
        ..WorkerConfig::default()
    };
    tracing::info!(%backend, concurrency = config.concurrency, "fleet worker starting");

    let (stop, stopped) = watch::channel(false);
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    });

    let reaper = tokio::spawn(reap_dead_letters(queue.clone(), store.clone(), config.poll_wait, stopped.clone()));
    run_worker(queue, store, Arc::new(sandbox.clone()), config, stopped).await;
    let _ = reaper.await;
    sandbox.shutdown().await;
    Ok(())
}
