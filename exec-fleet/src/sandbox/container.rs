//! What a sandbox container is (its create body: every isolation setting in one place),
//! who owns it (labels), and the Docker calls that start, stop and remove it.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use codebox_submission::{Language, Limits};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWrite;

/// Every sandbox container carries this label (value "1").
pub const LABEL_SANDBOX: &str = "codebox.sandbox";
/// Which fleet process owns it: "<boot id>/<pid>/<process start time>".
pub const LABEL_OWNER: &str = "codebox.sandbox.owner";
/// Which `Sandbox` instance made it.
pub const LABEL_INSTANCE: &str = "codebox.sandbox.instance";
/// Its language.
pub const LABEL_LANGUAGE: &str = "codebox.sandbox.language";

/// The unprivileged user programs run as (nobody:nogroup).
pub const SANDBOX_USER: &str = "65534:65534";
/// The only writable place: a tmpfs, the program's cwd and HOME.
pub const WORK_DIR: &str = "/work";
/// The whole environment of a sandboxed process: nothing from the host, nothing else.
pub const ENV: [&str; 4] = [
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "HOME=/work",
    "TMPDIR=/work/.tmp",
    "LANG=C.UTF-8",
];
/// The supervisor in every runner image.
pub const SUPERVISOR: &str = "/usr/local/bin/codebox-run";
/// Extra tmpfs at /dev/shm (Docker mounts one anyway; this only bounds it).
const SHM_BYTES: i64 = 16 << 20;

/// Who made a container: a sandbox instance in a fleet process.
#[derive(Debug, Clone)]
pub struct Owner {
    /// "<boot id>/<pid>/<start time>" of this process.
    pub process: String,
    /// A name for this `Sandbox` instance, unique on the host.
    pub instance: String,
}

impl Owner {
    /// The owner label of this process, and a fresh instance name.
    pub fn current(sequence: u64) -> Owner {
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
    pub fn labels(&self, language: Language) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SANDBOX.to_string(), "1".to_string()),
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
pub fn owner_is_gone(label: Option<&str>) -> bool {
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

/// The create body of a sandbox container. Everything that isolates a run is here.
/// `runtime`: the engine's name of the OCI runtime to start it with (`None`: its default).
pub fn create_body(
    language: Language,
    limits: &Limits,
    owner: &Owner,
    runtime: Option<&str>,
) -> ContainerCreateBody {
    let ulimit = |name: &str, value: u64| ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(value as i64),
        hard: Some(value as i64),
    };
    let host_config = HostConfig {
        // No network at all: not even loopback to the host.
        network_mode: Some("none".to_string()),
        // Nothing from the host: no binds, no volumes, no devices, no Docker socket.
        binds: None,
        mounts: None,
        devices: None,
        privileged: Some(false),
        // The image is read-only; /work is the one writable place (the program arrives over
        // stdin, never through a host directory).
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            WORK_DIR.to_string(),
            format!(
                "rw,exec,nosuid,nodev,size={},mode=1777",
                limits.work_dir_bytes
            ),
        )])),
        shm_size: Some(SHM_BYTES),
        ipc_mode: Some("private".to_string()),
        // No privilege: every capability dropped, no way to gain one back (setuid binaries).
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: None,
        // And only the system calls a program needs, through the native ABI (seccomp.rs).
        security_opt: Some(vec![
            "no-new-privileges".to_string(),
            super::seccomp::security_opt().to_string(),
        ]),
        // Resources. Swap equal to memory: no swap. tmpfs pages count against memory too.
        memory: Some(limits.memory_bytes as i64),
        memory_swap: Some(limits.memory_bytes as i64),
        pids_limit: Some(limits.pids),
        nano_cpus: Some(limits.nano_cpus),
        ulimits: Some(vec![
            ulimit("nofile", limits.open_files),
            ulimit("fsize", limits.file_size_bytes),
            ulimit("core", 0),
        ]),
        // When the host runs short, take sandboxes first.
        oom_score_adj: Some(500),
        // tini as PID 1: reaps, and reports the program's death by signal N as 128+N. When
        // the program (its direct child) ends, init ends and the kernel kills every process
        // left in the container's pid namespace.
        init: Some(true),
        // Output goes to the attached fleet only, never into log files on the host.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_string()),
            config: None,
        }),
        auto_remove: Some(false),
        runtime: runtime.map(str::to_string),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(language.image()),
        cmd: Some(vec![SUPERVISOR.to_string(), language.id().to_string()]),
        entrypoint: Some(vec![]),
        user: Some(SANDBOX_USER.to_string()),
        working_dir: Some(WORK_DIR.to_string()),
        env: Some(ENV.iter().map(|e| e.to_string()).collect()),
        hostname: Some("sandbox".to_string()),
        network_disabled: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        labels: Some(owner.labels(language)),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The container's output frames.
pub type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, DockerError>> + Send>>;
/// The container's stdin.
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// A created container, attached (stdin, stdout, stderr) and started.
pub struct Started {
    pub id: String,
    pub output: Output,
    pub input: Input,
}

/// Creates a sandbox container; returns its id.
pub async fn create(
    docker: &Docker,
    body: ContainerCreateBody,
    name: &str,
) -> Result<String, DockerError> {
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    Ok(docker.create_container(Some(options), body).await?.id)
}

/// Attaches to a created container (before starting it, so no output is missed) and starts it.
pub async fn attach_and_start(docker: &Docker, id: &str) -> Result<(Output, Input), DockerError> {
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
pub async fn kill(docker: &Docker, id: &str) {
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
pub async fn wait_exit(docker: &Docker, id: &str) -> Result<(), DockerError> {
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
pub async fn exit_state(docker: &Docker, id: &str) -> Result<(Option<i64>, bool), DockerError> {
    let inspect = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await?;
    let state = inspect.state.unwrap_or_default();
    if state.running == Some(true) {
        return Ok((None, state.oom_killed.unwrap_or(false)));
    }
    Ok((state.exit_code, state.oom_killed.unwrap_or(false)))
}

/// Whether a container to remove may not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
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
pub async fn remove(docker: &Docker, id: &str, existence: Existence) -> Result<(), DockerError> {
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
pub async fn list_sandboxes(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_is_locked_down() {
        let limits = Limits::default();
        let owner = Owner::current(7);
        let body = create_body(Language::Python, &limits, &owner, None);
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(body.network_disabled, Some(true));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        let security = host.security_opt.as_ref().unwrap();
        assert_eq!(security[0], "no-new-privileges");
        assert!(security[1].starts_with("seccomp={"), "{}", security[1]);
        assert_eq!(host.privileged, Some(false));
        assert!(host.binds.is_none() && host.mounts.is_none() && host.devices.is_none());
        assert_eq!(host.memory, Some(256 << 20));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.nano_cpus, Some(1_000_000_000));
        assert_eq!(host.init, Some(true));
        assert_eq!(
            host.log_config.as_ref().unwrap().typ.as_deref(),
            Some("none")
        );
        let tmpfs = &host.tmpfs.as_ref().unwrap()["/work"];
        assert!(
            tmpfs.contains("size=67108864") && tmpfs.contains(",exec,") && tmpfs.contains("nosuid")
        );
        assert_eq!(body.user.as_deref(), Some("65534:65534"));
        assert_eq!(body.env.as_ref().unwrap().len(), ENV.len());
        assert_eq!(body.image.as_deref(), Some("codebox-runner-python:latest"));
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SANDBOX], "1");
        assert_eq!(labels[LABEL_INSTANCE], owner.instance);
    }

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
