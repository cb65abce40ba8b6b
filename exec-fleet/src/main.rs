//! The fleet worker binary: long-polls the job queue, runs each job in a Docker sandbox and
//! writes the result; on SIGTERM or Ctrl-C it stops polling and finishes what it holds.
//! Its configuration is `codebox_exec_fleet::config::Config`, read from the environment here.

use std::sync::Arc;

use anyhow::Context;
use codebox_exec_fleet::config::Config;
use codebox_exec_fleet::sandbox::Sandbox;
use codebox_exec_fleet::worker::{reap_dead_letters, run_worker, SandboxRunner, Stores};
use codebox_submission::config::process_env;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_vars(&process_env).context("fleet configuration")?;
    config.logs.init();
    let backend = config.backend.open().await?;
    let stores = Stores {
        queue: backend.queue,
        records: backend.store,
        payloads: backend.payloads,
    };

    let sandbox = Sandbox::connect(config.sandbox)
        .await
        .context("connecting to the Docker engine")?;
    sandbox
        .check_images()
        .await
        .context("checking runner images")?;

    let worker = config.worker;
    tracing::info!(
        backend = %backend.name,
        concurrency = worker.concurrency,
        runtime = sandbox.runtime(),
        live_runs = config.edge.is_some(),
        tests_at_once = config.tests_at_once,
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
        stores.queue.clone(),
        stores.records.clone(),
        worker.poll_wait,
        stopped.clone(),
    ));
    let runner = SandboxRunner {
        sandbox: sandbox.clone(),
        edge: config.edge,
        tests_at_once: config.tests_at_once,
    };
    run_worker(stores, Arc::new(runner), worker, stopped).await;
    let _ = reaper.await;
    sandbox.shutdown().await;
    Ok(())
}
