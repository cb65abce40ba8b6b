//! The exec API binary: under AWS Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else a local
//! server. Its configuration is `exec_lambda::config::Config`, read from the environment here.

use anyhow::Context;
use codebox_submission::config::process_env;
use codebox_submission::Limits;
use exec_lambda::config::{Config, Serve};
use exec_lambda::{router, serve_local, AppState, Gate};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_vars(&process_env).context("exec API configuration")?;
    config.logs.init();
    let backend = config.backend.open().await?;
    let app = router(AppState {
        queue: backend.queue,
        store: backend.store,
        payloads: backend.payloads,
        rates: backend.rates,
        limits: Limits::default(),
        run_limit: config.run_limit,
        gate: config.gate.clone(),
    });

    tracing::info!(
        serve = ?config.serve,
        backend = %backend.name,
        run_limit = %config.run_limit,
        edge_secret = matches!(config.gate, Gate::EdgeSecret(_)),
        "exec API starting"
    );
    match config.serve {
        Serve::Lambda => lambda_http::run(app)
            .await
            .map_err(|e| anyhow::anyhow!("lambda runtime: {e}")),
        Serve::Local(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(%listen, "exec API listening");
            serve_local(listener, app, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
        }
    }
}
