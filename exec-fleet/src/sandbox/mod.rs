//! The code-execution sandbox: one fresh, locked-down Docker container per run.
//!
//! ```text
//! run(language, source, stdin)
//!   container: a warm one from the pool (created, attached, started, its supervisor blocked
//!              on stdin), else a fresh one (create, attach, start); never reused
//!   stdin  <- "<len>\n" source stdin, then EOF                  (protocol.rs)
//!   stdout -> supervisor markers, compile output (framed), RUN, then the program's stdout
//!   stderr -> the program's stderr
//!   clocks: compile step 10 s from the start, program 5 s from RUN; output cap 64 KiB per
//!           stream; at a limit the fleet kills through the API
//!   end: the supervisor's END on both streams settles a plain exit at once; otherwise
//!        (SIGKILL, OOM kills, no END) wait for the exit and inspect (exit code, OOMKilled);
//!        then Ending -> Status -> RunResult
//!   the container is removed in the background, always; shutdown() waits for removals
//! ```
//!
//! Isolation (see [`container::create_body`]): no network; read-only root; a 64 MiB tmpfs
//! at /work (exec, nosuid, nodev) as the only writable place; uid 65534; every capability
//! dropped; no-new-privileges; our seccomp profile (seccomp.rs: native ABI only, deny by
//! default); 256 MiB memory with no swap;
//! 64 pids; one CPU; nofile/fsize/core ulimits; no binds, volumes, devices or Docker socket;
//! an explicit environment; no log files. The program arrives over stdin.
//!
//! Leftovers: every container is labelled `codebox.sandbox=1` with its owner process.
//! [`Sandbox::connect`] removes those whose owner process is gone (a crashed fleet), and
//! [`Sandbox::shutdown`] drains the pool and waits for pending removals.

pub mod container;
pub mod outcome;
pub mod protocol;
pub mod seccomp;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::Docker;
use chrono::Utc;
use codebox_submission::{Language, Limits, RunResult};
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, info_span, warn, Instrument};

use container::{Existence, Owner, Started};
use outcome::Observed;
use protocol::{Event, Session};

pub use protocol::PROTOCOL;

/// How long a fresh or warm container may take to say READY.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for a killed container to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound on one refill back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why the sandbox cannot do its work.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No engine answers.
    #[error("cannot reach the Docker engine: {0} (start one with scripts/docker.sh)")]
    Connect(#[source] bollard::errors::Error),
    /// The configured runtime is not one the engine offers.
    #[error("{0} (configure one with `dockerd --add-runtime`, see scripts/docker.sh)")]
    Runtime(String),
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
    /// The runner broke the supervisor protocol.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
    /// A request the API should have refused.
    #[error("invalid run: {0}")]
    Invalid(String),
    /// Something took longer than it ever should.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// [`Sandbox::shutdown`] was called.
    #[error("the sandbox is shut down")]
    ShutDown,
}

/// How the sandbox runs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The limits every run is held to.
    pub limits: Limits,
    /// Warm containers kept per language (0: none; every run starts a container).
    pub pool_size: usize,
    /// The languages to keep warm containers for.
    pub pool_languages: Vec<Language>,
    /// The engine: `unix:///...` or `tcp://...`; `None` means `DOCKER_HOST` or the local socket.
    pub docker_host: Option<String>,
    /// Remove sandbox containers of fleet processes that are gone, at connect.
    pub remove_leftovers: bool,
    /// The OCI runtime the engine starts sandboxes with.
    pub runtime: RuntimeChoice,
}

/// Which of the engine's OCI runtimes starts sandbox containers.
///
/// Isolation is the same with either runtime Docker ships or crun: both get the same
/// namespaces, cgroup limits, capabilities, seccomp profile and mounts from the engine. What
/// differs is the cost of a start: the shim runs the runtime's binary four times per
/// container (create, start, delete, and delete again when containerd cleans up after it),
/// and runc is a Go binary, crun a C one. On the 2-core benchmark machine runs took 146-182 ms
/// of CPU with crun against 194-196 with runc (docs/BENCHMARKS.md): throughput.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// crun if the engine offers a runtime by that name, else the engine's default.
    Auto,
    /// The engine's default runtime (runc in a stock engine).
    EngineDefault,
    /// This runtime; connecting fails if the engine does not offer it.
    Named(String),
}

impl RuntimeChoice {
    /// The runtime [`RuntimeChoice::Auto`] prefers.
    pub const PREFERRED: &'static str = "crun";

    /// The runtime name to create containers with (`None`: the engine's default), given the
    /// names the engine offers.
    pub fn resolve(&self, offered: &[String]) -> Result<Option<String>, String> {
        match self {
            RuntimeChoice::Auto => Ok(offered
                .iter()
                .find(|name| *name == Self::PREFERRED)
                .cloned()),
            RuntimeChoice::EngineDefault => Ok(None),
            RuntimeChoice::Named(name) if offered.contains(name) => Ok(Some(name.clone())),
            RuntimeChoice::Named(name) => Err(format!(
                "the engine has no runtime '{name}' (it has: {})",
                offered.join(", ")
            )),
        }
    }
}

impl std::str::FromStr for RuntimeChoice {
    type Err = std::convert::Infallible;

    /// `auto`, `default`, or a runtime's name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "auto" => RuntimeChoice::Auto,
            "default" => RuntimeChoice::EngineDefault,
            name => RuntimeChoice::Named(name.to_string()),
        })
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            pool_size: 2,
            pool_languages: Language::ALL.to_vec(),
            docker_host: None,
            remove_leftovers: true,
            runtime: RuntimeChoice::Auto,
        }
    }
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
}

#[derive(Default)]
struct Pool {
    warm: Mutex<VecDeque<Warm>>,
    wake: Notify,
}

/// A started container whose supervisor said READY and waits for its program.
struct Warm {
    started: Started,
    session: Session,
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
        let runtime = config
            .runtime
            .resolve(&offered)
            .map_err(SandboxError::Runtime)?;

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
                    let protocol = labels.get("codebox.protocol").map(String::as_str);
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
        let stale: Vec<String> = container::list_sandboxes(docker)
            .await?
            .into_iter()
            .filter(|(_, labels)| {
                container::owner_is_gone(labels.get(container::LABEL_OWNER).map(String::as_str))
            })
            .map(|(id, _)| id)
            .collect();
        let removals = stale
            .iter()
            .map(|id| container::remove(docker, id, Existence::Created));
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

    /// Runs a program. Never panics and never fails: CodeBox's own failures come back as
    /// `internal_error`. The run goes on (and its container is removed) even if the caller
    /// stops waiting.
    pub async fn run(&self, language: Language, source: &str, stdin: &str) -> RunResult {
        let inner = self.inner.clone();
        let (source, stdin) = (source.as_bytes().to_vec(), stdin.as_bytes().to_vec());
        let span = info_span!(
            "sandbox_run",
            %language,
            container = tracing::field::Empty,
            warm = tracing::field::Empty,
            status = tracing::field::Empty,
            time_ms = tracing::field::Empty,
        );
        let task = tokio::spawn(
            async move {
                let _in_flight = InFlight::enter(&inner);
                let result = match inner.run(language, &source, &stdin).await {
                    Ok(result) => result,
                    Err(e) => {
                        error!(error = %e, "sandbox failure");
                        RunResult::internal_error(format!("sandbox failure: {e}"), Utc::now())
                    }
                };
                let span = tracing::Span::current();
                span.record("status", result.status.as_str());
                if let Some(t) = result.time_ms {
                    span.record("time_ms", t);
                }
                info!("run finished");
                result
            }
            .instrument(span),
        );
        match task.await {
            Ok(result) => result,
            Err(e) => {
                error!(error = %e, "sandbox run task failed");
                RunResult::internal_error("sandbox failure: the run task failed", Utc::now())
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
        for pool in inner.pools.values() {
            let drained: Vec<Warm> = lock(&pool.warm).drain(..).collect();
            for warm in drained {
                inner.remove_later(warm.started.id);
            }
        }
        self.settle().await;
        info!(instance = %inner.owner.instance, "sandbox shut down");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes a container when dropped, unless disarmed: no return path can leak one.
struct RemoveOnDrop {
    inner: Arc<Inner>,
    /// The container's id, or its name while the create call is in flight.
    id: Option<String>,
    existence: Existence,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.inner.schedule_removal(id, self.existence);
        }
    }
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

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Attempt {
    Done(RunResult),
    /// A warm container turned out dead before it took the program: try a fresh one.
    Retry(String),
}

impl Inner {
    /// Removes a container in the background; [`Sandbox::shutdown`] waits for it.
    fn remove_later(self: &Arc<Self>, id: String) {
        self.schedule_removal(id, Existence::Created);
    }

    fn schedule_removal(self: &Arc<Self>, id: String, existence: Existence) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            error!(container = %id, "no runtime to remove a sandbox container on; the next start removes it");
            return;
        };
        self.removals.fetch_add(1, Ordering::SeqCst);
        let inner = self.clone();
        runtime.spawn(async move {
            match container::remove(&inner.docker, &id, existence).await {
                Ok(()) => debug!(container = %id, "removed"),
                Err(e) => {
                    error!(container = %id, error = %e, "could not remove a sandbox container")
                }
            }
            inner.removals.fetch_sub(1, Ordering::SeqCst);
            inner.removed.notify_waiters();
        });
    }

    fn container_name(&self, language: Language) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!(
            "codebox-sandbox-{}-{}-{n}",
            self.owner.instance,
            language.id()
        )
    }

    /// Creates, attaches and starts a container; the guard removes it whatever happens next
    /// (an error, or this future being dropped).
    async fn start(
        self: &Arc<Self>,
        language: Language,
    ) -> Result<(Started, RemoveOnDrop), SandboxError> {
        let body = container::create_body(
            language,
            &self.config.limits,
            &self.owner,
            self.runtime.as_deref(),
        );
        let name = self.container_name(language);
        // Guard by name first: if this future is dropped while the create call is in
        // flight, the container may exist without our knowing its id.
        let mut guard = RemoveOnDrop {
            inner: self.clone(),
            id: Some(name.clone()),
            existence: Existence::MaybePending,
        };
        let id = container::create(&self.docker, body, &name).await?;
        guard.id = Some(id.clone());
        guard.existence = Existence::Created;
        let (output, input) = container::attach_and_start(&self.docker, &id).await?;
        Ok((Started { id, output, input }, guard))
    }

    /// Starts a container and waits for its READY: a warm container.
    async fn start_warm(self: &Arc<Self>, language: Language) -> Result<Warm, SandboxError> {
        let (mut started, mut guard) = self.start(language).await?;
        let mut session = Session::new(self.config.limits.output_bytes, protocol::new_token());
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while !session.is_ready() {
                match started.output.next().await {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        session.on_stdout(&message)?;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(SandboxError::Docker(e)),
                    None => {
                        return Err(SandboxError::Invalid(
                            "the runner ended before it was ready".into(),
                        ))
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| SandboxError::Timeout("waiting for a warm container's READY"))?;
        ready?;
        guard.id = None; // the pool owns it now
        Ok(Warm { started, session })
    }

    /// Keeps one language's pool full until shutdown.
    async fn fill(self: Arc<Self>, language: Language) {
        let Some(pool) = self.pools.get(&language) else {
            return;
        };
        let mut backoff = Duration::from_millis(250);
        loop {
            while !self.closing.load(Ordering::SeqCst)
                && lock(&pool.warm).len() < self.config.pool_size
            {
                match self.start_warm(language).await {
                    Ok(warm) => {
                        backoff = Duration::from_millis(250);
                        debug!(%language, container = %warm.started.id, "warm container ready");
                        if self.closing.load(Ordering::SeqCst) {
                            self.remove_later(warm.started.id);
                        } else {
                            lock(&pool.warm).push_back(warm);
                        }
                    }
                    Err(e) => {
                        warn!(%language, error = %e, backoff_ms = backoff.as_millis() as u64, "could not start a warm container");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            pool.wake.notified().await;
        }
    }

    /// A warm container that is still alive, if the pool has one.
    fn take_warm(self: &Arc<Self>, language: Language) -> Option<Warm> {
        let pool = self.pools.get(&language)?;
        loop {
            let mut warm = lock(&pool.warm).pop_front()?;
            pool.wake.notify_one();
            // A warm container says nothing after READY; output or an end means it is broken.
            match warm.started.output.next().now_or_never() {
                None => return Some(warm),
                Some(_) => {
                    warn!(%language, container = %warm.started.id, "warm container died while waiting");
                    self.remove_later(warm.started.id);
                }
            }
        }
    }

    async fn run(
        self: &Arc<Self>,
        language: Language,
        source: &[u8],
        stdin: &[u8],
    ) -> Result<RunResult, SandboxError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(SandboxError::ShutDown);
        }
        let limits = &self.config.limits;
        if source.len() > limits.max_source_bytes {
            return Err(SandboxError::Invalid(format!(
                "source of {} bytes is over the limit",
                source.len()
            )));
        }
        if stdin.len() > limits.max_stdin_bytes {
            return Err(SandboxError::Invalid(format!(
                "stdin of {} bytes is over the limit",
                stdin.len()
            )));
        }
        if let Some(warm) = self.take_warm(language) {
            tracing::Span::current().record("warm", true);
            let guard = RemoveOnDrop {
                inner: self.clone(),
                id: Some(warm.started.id.clone()),
                existence: Existence::Created,
            };
            match self
                .drive(
                    language,
                    warm.started,
                    warm.session,
                    guard,
                    source,
                    stdin,
                    true,
                )
                .await?
            {
                Attempt::Done(result) => return Ok(result),
                Attempt::Retry(why) => {
                    warn!(%language, reason = %why, "warm container failed; using a fresh one")
                }
            }
        }
        tracing::Span::current().record("warm", false);
        let (started, guard) = self.start(language).await?;
        let session = Session::new(limits.output_bytes, protocol::new_token());
        match self
            .drive(language, started, session, guard, source, stdin, false)
            .await?
        {
            Attempt::Done(result) => Ok(result),
            Attempt::Retry(why) => Err(SandboxError::Invalid(why)),
        }
    }

    /// Feeds the program to a started container and watches it to the end.
    async fn drive(
        self: &Arc<Self>,
        language: Language,
        started: Started,
        mut session: Session,
        mut guard: RemoveOnDrop,
        source: &[u8],
        stdin: &[u8],
        warm: bool,
    ) -> Result<Attempt, SandboxError> {
        let Started {
            id,
            mut output,
            mut input,
        } = started;
        tracing::Span::current().record("container", id.as_str());
        let limits = &self.config.limits;
        let docker = &self.docker;

        let payload = protocol::stdin_payload(session.token(), source, stdin);
        // Writing may block if the program never reads its stdin; it must not hold up the
        // clocks, and it ends with the run.
        let writer = AbortOnDrop(tokio::spawn(async move {
            let written = async {
                input.write_all(&payload).await?;
                input.flush().await?;
                input.shutdown().await
            }
            .await;
            if let Err(e) = written {
                debug!(error = %e, "stdin write ended early");
            }
        }));

        let start = Instant::now();
        let mut deadline = start + Duration::from_millis(limits.compile_ms);
        let mut run_started: Option<Instant> = None;
        let mut ended_at: Option<Instant> = None;
        let mut observed = Observed::default();
        let mut killed = false;

        let stream_end: Result<(), SandboxError> = loop {
            let frame = tokio::select! {
                frame = output.next() => frame,
                _ = tokio::time::sleep_until(deadline) => {
                    observed.timed_out = true;
                    break Ok(());
                }
            };
            let events = match frame {
                Some(Ok(LogOutput::StdOut { message })) => match session.on_stdout(&message) {
                    Ok(events) => events,
                    Err(e) => break Err(e.into()),
                },
                Some(Ok(LogOutput::StdErr { message })) => session.on_stderr(&message),
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            };
            let mut stop = false;
            for event in events {
                match event {
                    Event::ProgramStarted => {
                        let now = Instant::now();
                        run_started = Some(now);
                        deadline = now + Duration::from_millis(limits.run_ms);
                    }
                    Event::OutputExceeded => {
                        observed.output_exceeded = true;
                        stop = true;
                    }
                    Event::SupervisorFailed(message) => warn!(%language, %message, "runner failed"),
                    Event::Ended(_) => {
                        ended_at = Some(Instant::now());
                        stop = true;
                    }
                    Event::Ready | Event::CompileStarted | Event::Compiled { .. } => {}
                }
            }
            if stop {
                break Ok(());
            }
        };

        // Done with the streams. Closing the attach connection matters after a kill: the
        // engine does not finish a container's exit while its attach copy is blocked on a
        // reader that stopped reading.
        drop(output);
        drop(writer);
        session.close_streams();

        if let Err(e) = stream_end {
            container::kill(docker, &id).await;
            if warm && !session.compile_started() {
                return Ok(Attempt::Retry(e.to_string()));
            }
            return Err(e);
        }
        if observed.timed_out || observed.output_exceeded {
            ended_at = Some(Instant::now());
            container::kill(docker, &id).await;
            killed = true;
        } else if warm && !session.compile_started() && session.failure().is_none() {
            // The output ended before the supervisor took the program: the warm container
            // was dead on arrival (or died just now). Nothing of the program ran.
            return Ok(Attempt::Retry(
                "the warm container's output ended before it took the program".into(),
            ));
        }

        // The supervisor's END settles a plain exit at once: the container's own end comes
        // ~25 ms later, and its removal (which kills leftovers) runs in the background.
        // Otherwise the engine decides.
        match session.end().filter(|end| !killed && end.is_conclusive()) {
            Some(end) => {
                observed.exit_code = Some(end.status);
                guard.existence = Existence::Exiting;
                debug!(exit_code = end.status, "the supervisor reported the end");
            }
            None => {
                let engine_end = self
                    .wait_for_engine(&id, deadline, killed, &mut observed)
                    .await?;
                // The engine's OOM flag comes from an event that can lose the race with the
                // exit; the supervisor's count, read from the cgroup after the program ended,
                // does not. (A program could only forge it against itself.)
                observed.oom_killed |= session.oom_reported();
                // The engine sees the end later than END does (if one came): keep the earlier.
                ended_at = ended_at.or(engine_end);
            }
        }
        observed.run_time = run_started
            .zip(ended_at)
            .map(|(s, e)| e.saturating_duration_since(s));
        Ok(Attempt::Done(outcome::run_result(
            language,
            limits,
            &session,
            &observed,
            Utc::now(),
        )))
    }

    /// The container's end as the engine sees it: waits for the exit (killing at the
    /// deadline), then reads the exit code and the OOM flag. Returns when it saw the end
    /// unless the fleet had killed the container already.
    async fn wait_for_engine(
        &self,
        id: &str,
        deadline: Instant,
        mut killed: bool,
        observed: &mut Observed,
    ) -> Result<Option<Instant>, SandboxError> {
        let docker = &self.docker;
        let mut engine_end = None;
        // The output can end before the container does (a program may close stdout and
        // stderr and carry on): the clock still runs until it exits.
        if !killed {
            let waited = tokio::time::timeout_at(deadline, container::wait_exit(docker, id)).await;
            engine_end = Some(Instant::now());
            match waited {
                Ok(waited) => waited?,
                Err(_) => {
                    observed.timed_out = true;
                    container::kill(docker, id).await;
                    killed = true;
                }
            }
        }
        if killed {
            tokio::time::timeout(STOP_TIMEOUT, container::wait_exit(docker, id))
                .await
                .map_err(|_| SandboxError::Timeout("waiting for a killed container to stop"))??;
        }
        let (exit_code, oom_killed) = container::exit_state(docker, id).await?;
        observed.exit_code = exit_code;
        observed.oom_killed = oom_killed;
        debug!(
            exit_code,
            oom_killed,
            timed_out = observed.timed_out,
            output_exceeded = observed.output_exceeded,
            "container ended"
        );
        Ok(engine_end)
    }
}

#[cfg(test)]
mod tests {
    use super::RuntimeChoice;

    fn offered(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn auto_prefers_crun_and_falls_back_to_the_engine_default() {
        let auto = RuntimeChoice::Auto;
        assert_eq!(
            auto.resolve(&offered(&["runc", "crun", "io.containerd.runc.v2"])),
            Ok(Some("crun".to_string()))
        );
        assert_eq!(
            auto.resolve(&offered(&["runc", "io.containerd.runc.v2"])),
            Ok(None)
        );
        assert_eq!(auto.resolve(&[]), Ok(None));
    }

    #[test]
    fn a_named_runtime_must_be_offered() {
        let named: RuntimeChoice = "runsc".parse().unwrap();
        assert_eq!(named, RuntimeChoice::Named("runsc".into()));
        let err = named.resolve(&offered(&["runc", "crun"])).unwrap_err();
        assert!(
            err.contains("'runsc'") && err.contains("runc, crun"),
            "{err}"
        );
        assert_eq!(
            named.resolve(&offered(&["runc", "runsc"])),
            Ok(Some("runsc".to_string()))
        );
    }

    #[test]
    fn parsing() {
        assert_eq!("auto".parse(), Ok(RuntimeChoice::Auto));
        assert_eq!("".parse(), Ok(RuntimeChoice::Auto));
        assert_eq!("default".parse(), Ok(RuntimeChoice::EngineDefault));
        assert_eq!(
            RuntimeChoice::EngineDefault.resolve(&offered(&["crun"])),
            Ok(None)
        );
    }
}
