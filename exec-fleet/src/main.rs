//! The fleet worker binary: long-polls the job queue, runs each job in a Docker sandbox and
//! writes the result; on SIGTERM or Ctrl-C it stops polling and finishes what it holds.
//!
//! Configuration (environment):
//! - the backend and logging: see `codebox_submission::config`.
//! - `FLEET_CONCURRENCY`: jobs run at once (default 4).
//! - `FLEET_POOL_SIZE`: warm containers kept per language (default 2).
//! - `FLEET_POLL_WAIT_MS`: longest wait of one receive (default 10000).
//! - `FLEET_RUNTIME`: the OCI runtime of sandboxes: `auto` (default: crun if the engine
//!   offers it, else the engine's default), `default`, or a runtime's name.
//! - `DOCKER_HOST`: the engine (default the local socket).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use codebox_exec_fleet::sandbox::{RuntimeChoice, Sandbox, SandboxConfig};
use codebox_exec_fleet::worker::{reap_dead_letters, run_worker, WorkerConfig};
use codebox_submission::config::{backend_from_env, env_or, init_logs};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logs(false);
    let backend = backend_from_env().await?;
    let (queue, store) = (backend.queue, backend.store);

    let sandbox = Sandbox::connect(SandboxConfig {
        pool_size: env_or("FLEET_POOL_SIZE", SandboxConfig::default().pool_size)?,
        docker_host: std::env::var("DOCKER_HOST").ok(),
        runtime: env_or("FLEET_RUNTIME", RuntimeChoice::Auto)?,
        ..SandboxConfig::default()
    })
    .await
    .context("connecting to the Docker engine")?;
    sandbox
        .check_images()
        .await
        .context("checking runner images")?;

    let config = WorkerConfig {
        concurrency: env_or("FLEET_CONCURRENCY", WorkerConfig::default().concurrency)?,
        poll_wait: Duration::from_millis(env_or("FLEET_POLL_WAIT_MS", 10_000)?),
        ..WorkerConfig::default()
    };
    tracing::info!(
        backend = %backend.name,
        concurrency = config.concurrency,
        runtime = sandbox.runtime(),
        "fleet worker starting"
    );

    let (stop, stopped) = watch::channel(false);
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    });

    let reaper = tokio::spawn(reap_dead_letters(
        queue.clone(),
        store.clone(),
        config.poll_wait,
        stopped.clone(),
    ));
    run_worker(queue, store, Arc::new(sandbox.clone()), config, stopped).await;
    let _ = reaper.await;
    sandbox.shutdown().await;
    Ok(())
}
