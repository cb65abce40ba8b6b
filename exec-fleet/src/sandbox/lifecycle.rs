//! A sandbox container's life on the engine: who owns it (labels), and the Docker calls that
//! create, start, stop and remove it. What it is (its create body) is
//! [`codebox_sandbox::spec`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions, StatsOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use codebox_sandbox::spec::{self, Placement, LABEL_SANDBOX};
use codebox_submission::Language;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWrite;
use tracing::{debug, error};

use super::{lock, Inner, SandboxError};

/// Which fleet process owns it: "<boot id>/<pid>/<process start time>".
pub(crate) const LABEL_OWNER: &str = "codebox.sandbox.owner";
/// Which `Sandbox` instance made it.
pub(crate) const LABEL_INSTANCE: &str = "codebox.sandbox.instance";
/// Its language.
pub(crate) const LABEL_LANGUAGE: &str = "codebox.sandbox.language";

/// Who made a container: a sandbox instance in a fleet process.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// "<boot id>/<pid>/<start time>" of this process.
    pub process: String,
    /// A name for this `Sandbox` instance, unique on the host.
    pub instance: String,
}

impl Owner {
    /// The owner label of this process, and a fresh instance name.
    pub(crate) fn current(sequence: u64) -> Owner {
        let pid = std::process::id();
        let process = format!(
            "{}/{}/{}",
            boot_id(),
            pid,
            process_start(pid).unwrap_or_default()
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Owner {
            process,
            instance: format!("{pid:x}-{:x}-{sequence}", nanos & 0xffff_ffff_ffff),
        }
    }

    /// The labels every container of this owner carries.
    pub(crate) fn labels(&self, language: Language) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_OWNER.to_string(), self.process.clone()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_LANGUAGE.to_string(), language.id().to_string()),
        ])
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

/// Whether the fleet process named by an owner label is gone, so its containers are
/// leftovers. A label from another boot is gone; one from this boot is gone unless a
/// process with that pid and start time still runs. (This assumes the fleet and the
/// engine share a host and pid namespace, as they do in every deployment of CodeBox.)
pub(crate) fn owner_is_gone(label: Option<&str>) -> bool {
    let Some(label) = label else { return true };
    let mut parts = label.split('/');
    let (Some(boot), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
        return true;
    };
    if boot != boot_id() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return true;
    };
    process_start(pid).map(|s| s.to_string()) != Some(start.to_string())
}

/// The container's output frames.
pub(crate) type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, DockerError>> + Send>>;
/// The container's stdin.
pub(crate) type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// A created container, attached (stdin, stdout, stderr) and started.
pub(crate) struct Started {
    /// Its id.
    pub id: String,
    /// Its stdout and stderr.
    pub output: Output,
    /// Its stdin.
    pub input: Input,
}

/// Creates a sandbox container; returns its id.
pub(crate) async fn create(
    docker: &Docker,
    body: ContainerCreateBody,
    name: &str,
) -> Result<String, DockerError> {
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    Ok(docker.create_container(Some(options), body).await?.id)
}

/// Attaches to a created container (before starting it, so no output is missed) and starts it.
pub(crate) async fn attach_and_start(
    docker: &Docker,
    id: &str,
) -> Result<(Output, Input), DockerError> {
    let options = AttachContainerOptionsBuilder::new()
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .logs(false)
        .build();
    let attached = docker.attach_container(id, Some(options)).await?;
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await?;
    Ok((attached.output, attached.input))
}

/// SIGKILL through the API (the container's init ignores SIGTERM). A container that is
/// already gone or stopped is fine.
pub(crate) async fn kill(docker: &Docker, id: &str) {
    let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
    match docker.kill_container(id, Some(options)).await {
        Ok(()) => {}
        Err(DockerError::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => {}
        Err(e) => tracing::warn!(container = %id, error = %e, "kill failed"),
    }
}

/// Waits until the container is not running (any exit code counts as an exit).
pub(crate) async fn wait_exit(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let options = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    let mut wait = docker.wait_container(id, Some(options));
    match wait.next().await {
        Some(Ok(_)) | Some(Err(DockerError::DockerContainerWaitError { .. })) => Ok(()),
        Some(Err(e)) => Err(e),
        None => Ok(()),
    }
}

/// The container's exit code and whether the OOM killer struck in it.
pub(crate) async fn exit_state(
    docker: &Docker,
    id: &str,
) -> Result<(Option<i64>, bool), DockerError> {
    let inspect = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await?;
    let state = inspect.state.unwrap_or_default();
    if state.running == Some(true) {
        return Ok((None, state.oom_killed.unwrap_or(false)));
    }
    Ok((state.exit_code, state.oom_killed.unwrap_or(false)))
}

/// The CPU time the container has used so far (every process in it), from the engine's
/// one-shot stats.
pub(crate) async fn cpu_used(docker: &Docker, id: &str) -> Result<Duration, DockerError> {
    let options = StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(true)
        .build();
    let mut stats = docker.stats(id, Some(options));
    let nanos = match stats.next().await {
        Some(Ok(stats)) => stats
            .cpu_stats
            .and_then(|cpu| cpu.cpu_usage)
            .and_then(|usage| usage.total_usage)
            .unwrap_or_default(),
        Some(Err(e)) => return Err(e),
        None => 0,
    };
    Ok(Duration::from_nanos(nanos))
}

/// Whether a container to remove may not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existence {
    /// Created: "no such container" means it is gone.
    Created,
    /// Its create call was dropped in flight, and the engine may still be creating it:
    /// "no such container" is retried too.
    MaybePending,
    /// Its program has ended and it is exiting by itself: let it (up to a bound) rather than
    /// kill it, which costs the engine a kill round trip through the runtime.
    Exiting,
}

/// How long a removal waits for an [`Existence::Exiting`] container to exit by itself.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Removes a container (killing it if it runs), retrying a few times. Gone already is fine.
pub(crate) async fn remove(
    docker: &Docker,
    id: &str,
    existence: Existence,
) -> Result<(), DockerError> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    if existence == Existence::Exiting {
        // Timing out or failing is fine: the forced removal below kills it.
        let _ = tokio::time::timeout(EXIT_GRACE, wait_exit(docker, id)).await;
    }
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match docker.remove_container(id, Some(options.clone())).await {
            Ok(()) => return Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) if existence != Existence::MaybePending || attempt >= 4 => return Ok(()),
            // "removal already in progress"
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                ref message,
            }) if message.contains("in progress") => return Ok(()),
            Err(e) if attempt >= 4 => return Err(e),
            Err(e) => {
                tracing::debug!(container = %id, error = %e, attempt, "remove failed, retrying");
                tokio::time::sleep(delay).await;
                delay *= 3;
            }
        }
    }
}

/// Sandbox containers on this engine, with their owner labels.
pub(crate) async fn list_sandboxes(
    docker: &Docker,
) -> Result<Vec<(String, HashMap<String, String>)>, DockerError> {
    let filters = HashMap::from([("label", vec![format!("{LABEL_SANDBOX}=1")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker.list_containers(Some(options)).await?;
    Ok(containers
        .into_iter()
        .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
        .collect())
}

/// Removes a container when dropped, unless disarmed: no return path can leak one. Its run
/// user id is free again once the container is gone.
pub(super) struct RemoveOnDrop {
    inner: Arc<Inner>,
    /// The container's id, or its name while the create call is in flight.
    id: Option<String>,
    pub(super) existence: Existence,
    uid: u32,
}

impl RemoveOnDrop {
    pub(super) fn new(inner: &Arc<Inner>, id: String, existence: Existence, uid: u32) -> Self {
        RemoveOnDrop {
            inner: inner.clone(),
            id: Some(id),
            existence,
            uid,
        }
    }

    /// Someone else removes the container now; returns its user id.
    pub(super) fn disarm(&mut self) -> u32 {
        self.id = None;
        self.uid
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.inner.schedule_removal(id, self.existence, self.uid);
        }
    }
}

impl Inner {
    /// Removes a container in the background; [`Sandbox::shutdown`] waits for it.
    pub(super) fn remove_later(self: &Arc<Self>, id: String, uid: u32) {
        self.schedule_removal(id, Existence::Created, uid);
    }

    fn schedule_removal(self: &Arc<Self>, id: String, existence: Existence, uid: u32) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            error!(container = %id, "no runtime to remove a sandbox container on; the next start removes it");
            return;
        };
        self.removals.fetch_add(1, Ordering::SeqCst);
        let inner = self.clone();
        runtime.spawn(async move {
            match remove(&inner.docker, &id, existence).await {
                Ok(()) => {
                    debug!(container = %id, "removed");
                    lock(&inner.uids).release(uid);
                }
                // Its user id stays taken: the container may still run.
                Err(e) => {
                    error!(container = %id, uid, error = %e, "could not remove a sandbox container")
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
    pub(super) async fn start(
        self: &Arc<Self>,
        language: Language,
    ) -> Result<(Started, RemoveOnDrop), SandboxError> {
        let uid = lock(&self.uids).allocate().ok_or(SandboxError::NoRunUser)?;
        let name = self.container_name(language);
        // Guard by name first: if this future is dropped while the create call is in
        // flight, the container may exist without our knowing its id.
        let mut guard = RemoveOnDrop::new(self, name.clone(), Existence::MaybePending, uid);
        let placement = Placement {
            labels: self.owner.labels(language),
            runtime: self.runtime.as_deref(),
            uid,
        };
        let body = spec::create_body(language, &self.config.limits, placement);
        let id = create(&self.docker, body, &name).await?;
        guard.id = Some(id.clone());
        guard.existence = Existence::Created;
        let (output, input) = attach_and_start(&self.docker, &id).await?;
        Ok((Started { id, output, input }, guard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        let me = Owner::current(0);
        assert!(!owner_is_gone(Some(&me.process)), "{}", me.process);
        assert!(owner_is_gone(None));
        assert!(owner_is_gone(Some("garbage")));
        assert!(owner_is_gone(Some(&format!(
            "other-boot/{}/1",
            std::process::id()
        ))));
        let mut parts: Vec<&str> = me.process.split('/').collect();
        parts[2] = "1";
        assert!(
            owner_is_gone(Some(&parts.join("/"))),
            "same pid, other start time"
        );
    }
}
