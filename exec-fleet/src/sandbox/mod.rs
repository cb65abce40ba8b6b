//! The code-execution sandbox: one fresh, locked-down Docker container per run, driven over
//! bollard. What a container is, the supervisor protocol and every run rule (clocks, kills,
//! retries, the output cap, the outcome) live in the core crate `codebox-sandbox`; this
//! module is the I/O around it.
//!
//! ```text
//! run(language, files, stdin)      compile and run a project (a single source: one file)
//! build(language, files)           compile it once: Built (the program), or the result to
//!                                  report (compile_error, ...)
//! run_built(&built, stdin)         run a build's program, no compile step: a test's run
//!   container: a warm one from the pool (pool.rs: created, attached, started, its supervisor
//!              blocked on stdin), else a fresh one (lifecycle.rs: create, attach, start);
//!              never reused, so every run of a build has a container of its own; each
//!              alive container has its own run user id
//!   drive.rs:  stdin <- Session::request (the project, the mode, a build's program, stdin);
//!              stdout/stderr, the deadline and the engine's exit -> codebox_sandbox::Run ->
//!              read on / await exit / kill / retry / done -> RunResult or Build
//!   the container is removed in the background, always; shutdown() waits for removals
//! ```
//!
//! Isolation: [`codebox_sandbox::spec::create_body`]. Leftovers: every container is labelled
//! `codebox.sandbox=1` with its owner process. [`Sandbox::connect`] removes those whose owner
//! process is gone (a crashed fleet), and [`Sandbox::shutdown`] drains the pool and waits for
//! pending removals.

mod built;
mod config;
mod drive;
mod lifecycle;
mod pool;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use chrono::Utc;
use codebox_sandbox::protocol::PROTOCOL_LABEL;
use codebox_sandbox::spec::UidAllocator;
use codebox_sandbox::{Failure, Mode, Run};
use codebox_submission::project::{ProjectError, ProjectFile};
use codebox_submission::{Language, RunResult};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{error, info, info_span, warn, Instrument};

use drive::Program;
use lifecycle::{Existence, Owner};
use pool::Pool;

pub use built::Built;
pub use codebox_sandbox::PROTOCOL;
pub use config::{RuntimeChoice, SandboxConfig, UnknownRuntime};
pub use drive::Live;

/// Why the sandbox cannot do its work.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No engine answers.
    #[error("cannot reach the Docker engine: {0} (start one with scripts/docker.sh)")]
    Connect(#[source] bollard::errors::Error),
    /// The configured runtime is not one the engine offers.
    #[error("{0} (configure one with `dockerd --add-runtime`, see scripts/docker.sh)")]
    Runtime(#[from] UnknownRuntime),
    /// Runner images are missing.
    #[error("runner images missing: {} (build them with scripts/images.sh)", .0.join(", "))]
    MissingImages(Vec<String>),
    /// A runner image is present but not what this fleet expects.
    #[error("runner image {image} is unusable: {reason} (rebuild it with scripts/images.sh)")]
    BadImage {
        /// The image.
        image: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Docker call failed.
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// The container broke the protocol or its streams failed.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// A runner ended before it said READY.
    #[error("the runner ended before it was ready")]
    NotReady,
    /// A project the API should have refused.
    #[error("invalid run: {0}")]
    Project(#[from] ProjectError),
    /// A stdin the API should have refused.
    #[error("invalid run: stdin of {0} bytes is over the limit")]
    StdinTooLarge(usize),
    /// Every run user id is taken by a live container.
    #[error("every run user id is in use")]
    NoRunUser,
    /// Something took longer than it ever should.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// [`Sandbox::shutdown`] was called.
    #[error("the sandbox is shut down")]
    ShutDown,
}

/// The sandbox: cheap to clone, shared by every worker task of a fleet. Use it on the Tokio
/// runtime that connected it (its Docker connections and background tasks live there), and
/// call [`Sandbox::shutdown`] before exiting: a sandbox dropped without it leaves its warm
/// containers for the next [`Sandbox::connect`] to remove.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    config: SandboxConfig,
    /// The runtime sandboxes are created with (`None`: the engine's default).
    runtime: Option<String>,
    owner: Owner,
    closing: AtomicBool,
    sequence: AtomicU64,
    /// Runs in progress, and a wake-up for shutdown when the count drops.
    in_flight: AtomicUsize,
    idle: Notify,
    pools: HashMap<Language, Pool>,
    /// Container removals still running, and a wake-up when the count drops.
    removals: AtomicUsize,
    removed: Notify,
    fillers: Mutex<Vec<JoinHandle<()>>>,
    /// The run user ids of live containers.
    uids: Mutex<UidAllocator>,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl Sandbox {
    /// Connects to the engine, checks the runner images, removes leftovers of crashed fleets
    /// and starts filling the warm pool.
    pub async fn connect(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let docker = match &config.docker_host {
            Some(host) => Docker::connect_with_host(host),
            None => Docker::connect_with_defaults(),
        }
        .map_err(SandboxError::Connect)?;
        // Debian's dockerd 20.10 speaks API 1.41, older than bollard's default.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(SandboxError::Connect)?;
        docker.ping().await.map_err(SandboxError::Connect)?;
        let offered: Vec<String> = docker
            .info()
            .await?
            .runtimes
            .unwrap_or_default()
            .into_keys()
            .collect();
        let runtime = config.runtime.resolve(&offered)?;

        let pools = if config.pool_size > 0 {
            config
                .pool_languages
                .iter()
                .map(|&l| (l, Pool::default()))
                .collect()
        } else {
            HashMap::new()
        };
        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                docker,
                runtime,
                owner: Owner::current(INSTANCES.fetch_add(1, Ordering::Relaxed)),
                config,
                closing: AtomicBool::new(false),
                sequence: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                pools,
                removals: AtomicUsize::new(0),
                removed: Notify::new(),
                fillers: Mutex::new(Vec::new()),
                uids: Mutex::new(UidAllocator::default()),
            }),
        };
        sandbox.check_images().await?;
        if sandbox.inner.config.remove_leftovers {
            sandbox.remove_leftovers().await?;
        }
        let fillers: Vec<JoinHandle<()>> = sandbox
            .inner
            .pools
            .keys()
            .map(|&language| tokio::spawn(sandbox.inner.clone().fill(language)))
            .collect();
        lock(&sandbox.inner.fillers).extend(fillers);
        info!(
            owner = %sandbox.inner.owner.process,
            instance = %sandbox.inner.owner.instance,
            pool_size = sandbox.inner.config.pool_size,
            runtime = sandbox.runtime(),
            "sandbox ready"
        );
        Ok(sandbox)
    }

    /// Checks that every language's runner image is present and speaks this protocol.
    pub async fn check_images(&self) -> Result<(), SandboxError> {
        let mut missing = Vec::new();
        for language in Language::ALL {
            let image = language.image();
            match self.inner.docker.inspect_image(&image).await {
                Ok(inspect) => {
                    let config = inspect.config.unwrap_or_default();
                    let labels = config.labels.unwrap_or_default();
                    let protocol = labels.get(PROTOCOL_LABEL).map(String::as_str);
                    if protocol != Some(PROTOCOL) {
                        return Err(SandboxError::BadImage {
                            image,
                            reason: format!("it speaks supervisor protocol {protocol:?}, this fleet {PROTOCOL:?}"),
                        });
                    }
                    // The environment is an allowlist: an image may not add to it.
                    let extra: Vec<String> = config
                        .env
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|e| !e.starts_with("PATH="))
                        .collect();
                    if !extra.is_empty() {
                        return Err(SandboxError::BadImage {
                            image,
                            reason: format!("it sets environment variables {extra:?}"),
                        });
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => missing.push(image),
                Err(e) => return Err(e.into()),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::MissingImages(missing))
        }
    }

    /// Removes sandbox containers whose owner process is gone; returns how many.
    pub async fn remove_leftovers(&self) -> Result<usize, SandboxError> {
        let docker = &self.inner.docker;
        let stale: Vec<String> = lifecycle::list_sandboxes(docker)
            .await?
            .into_iter()
            .filter(|(_, labels)| {
                lifecycle::owner_is_gone(labels.get(lifecycle::LABEL_OWNER).map(String::as_str))
            })
            .map(|(id, _)| id)
            .collect();
        let removals = stale
            .iter()
            .map(|id| lifecycle::remove(docker, id, Existence::Created));
        let results = futures_util::future::join_all(removals).await;
        for (id, result) in stale.iter().zip(&results) {
            if let Err(e) = result {
                warn!(container = %id, error = %e, "could not remove a leftover sandbox container");
            }
        }
        if !stale.is_empty() {
            info!(count = stale.len(), "removed leftover sandbox containers");
        }
        Ok(stale.len())
    }

    /// The OCI runtime sandboxes start with ("default": the engine's default).
    pub fn runtime(&self) -> &str {
        self.inner.runtime.as_deref().unwrap_or("default")
    }

    /// The label value that marks this instance's containers (`codebox.sandbox.instance`).
    pub fn instance(&self) -> &str {
        &self.inner.owner.instance
    }

    /// Warm containers ready now, per language.
    pub fn warm_counts(&self) -> HashMap<Language, usize> {
        self.inner
            .pools
            .iter()
            .map(|(&l, p)| (l, lock(&p.warm).len()))
            .collect()
    }

    /// Runs a project (a single source is a project of one file, named the language's
    /// entry: [`codebox_submission::toolchain::Toolchain::source_file`]): compiles it and runs
    /// it with `stdin`. Never panics and never fails: CodeBox's own failures come back as
    /// `internal_error`. The run goes on (and its container is removed) even if the caller
    /// stops waiting.
    pub async fn run(&self, language: Language, files: &[ProjectFile], stdin: &str) -> RunResult {
        self.run_with(Program::new(language, Mode::Run, files, stdin), None)
            .await
    }

    /// Runs a project interactively (Contract 4): `stdin` first, then the lines `live` brings
    /// until it ends the input; the program's output goes out through `live` as it comes.
    /// Held to `live.limits` instead of the batch run limit. Never fails, as [`Sandbox::run`].
    pub async fn run_live(
        &self,
        language: Language,
        files: &[ProjectFile],
        stdin: &str,
        live: Live,
    ) -> RunResult {
        self.run_with(Program::new(language, Mode::Run, files, stdin), Some(live))
            .await
    }

    /// Compiles a project once, in a fresh or warm container, and takes back what it built.
    /// `Err` holds the result to report when the build did not succeed, as [`Sandbox::run`]
    /// would have reported it: `compile_error` with the compile output (with `time_limit:
    /// compile` when the compile step passed its limit), or `internal_error`.
    pub async fn build(
        &self,
        language: Language,
        files: &[ProjectFile],
    ) -> Result<Built, RunResult> {
        let program = Program::new(language, Mode::Build, files, "");
        let files = program.files.clone();
        let span = run_span(&program);
        let build = match self.execute(program, None, span.clone()).await {
            Ok(run) => run.into_build(Utc::now()).map_err(|failed| *failed),
            Err(failed) => Err(failed),
        };
        match build {
            Ok(build) => {
                span.in_scope(|| info!(program_bytes = build.program.len(), "build finished"));
                Ok(Built::new(language, files, build))
            }
            Err(result) => {
                finished(&span, &result);
                Err(result)
            }
        }
    }

    /// Runs a build's program with `stdin`, under the run limits, as a batch run, on a
    /// container of its own (never one used before), without compiling. `compile_output` of
    /// the result is the build's. Never fails, as [`Sandbox::run`].
    pub async fn run_built(&self, built: &Built, stdin: &str) -> RunResult {
        let mut result = self.run_with(built.program(stdin), None).await;
        // The run's own compile step was skipped: the build's output is the one to show.
        result.compile_output = built.compile_output().map(str::to_string);
        result
    }

    async fn run_with(&self, program: Program, live: Option<Live>) -> RunResult {
        let span = run_span(&program);
        let result = match self.execute(program, live, span.clone()).await {
            Ok(run) => run.into_result(Utc::now()),
            Err(failed) => failed,
        };
        finished(&span, &result);
        result
    }

    /// Does what `program` asks in a task of its own (which goes on if the caller stops
    /// waiting); returns the finished run, or the result of CodeBox's failure.
    async fn execute(
        &self,
        program: Program,
        live: Option<Live>,
        span: tracing::Span,
    ) -> Result<Run, RunResult> {
        let inner = self.inner.clone();
        let task = tokio::spawn(
            async move {
                let _in_flight = InFlight::enter(&inner);
                inner.run(&program, live).await.map_err(|e| {
                    error!(error = %e, "sandbox failure");
                    RunResult::internal_error(format!("sandbox failure: {e}"), Utc::now())
                })
            }
            .instrument(span),
        );
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                error!(error = %e, "sandbox run task failed");
                Err(RunResult::internal_error(
                    "sandbox failure: the run task failed",
                    Utc::now(),
                ))
            }
        }
    }

    /// Waits until every container removal queued so far is done (runs return before their
    /// container is removed).
    pub async fn settle(&self) {
        let inner = &self.inner;
        loop {
            let removed = inner.removed.notified();
            if inner.removals.load(Ordering::SeqCst) == 0 {
                break;
            }
            removed.await;
        }
    }

    /// Stops refilling, lets runs in progress finish, removes the warm containers and waits
    /// until every container this instance made is removed. Later runs return
    /// `internal_error`.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::SeqCst);
        let fillers: Vec<JoinHandle<()>> = lock(&inner.fillers).drain(..).collect();
        for filler in fillers {
            filler.abort();
            // An aborted filler drops the container it was starting: its removal is queued
            // by the time the task is done.
            let _ = filler.await;
        }
        loop {
            let idle = inner.idle.notified();
            if inner.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
        inner.drain_pools();
        self.settle().await;
        info!(instance = %inner.owner.instance, "sandbox shut down");
    }
}

/// The span of one request to a container: its fields are filled in as it goes.
fn run_span(program: &Program) -> tracing::Span {
    info_span!(
        "sandbox_run",
        language = %program.language,
        mode = program.mode.as_str(),
        container = tracing::field::Empty,
        warm = tracing::field::Empty,
        status = tracing::field::Empty,
        time_ms = tracing::field::Empty,
    )
}

/// Logs a run's end in its span.
fn finished(span: &tracing::Span, result: &RunResult) {
    span.record("status", result.status.as_str());
    if let Some(t) = result.time_ms {
        span.record("time_ms", t);
    }
    span.in_scope(|| info!("run finished"));
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts a run in progress.
struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> Self {
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}
