//! What a sandbox container is: its create body, with every isolation setting in one place,
//! and the user ids runs are given.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use bollard_stubs::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits,
};
use codebox_submission::{Language, Limits};

/// Every sandbox container carries this label (value "1").
pub const LABEL_SANDBOX: &str = "codebox.sandbox";
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
pub const SUPERVISOR: &str = "/usr/local/bin/codebox-supervisor";
/// Extra tmpfs at /dev/shm (Docker mounts one anyway; this only bounds it).
const SHM_BYTES: i64 = 16 << 20;

/// The user ids runs get, one per container alive at a time: per-user kernel quotas
/// (inotify instances, processes, message queues) are not shared between runs. No host
/// account uses them; the group is always nogroup (65534).
pub const RUN_UIDS: Range<u32> = 200_000..204_096;
/// The group every run's user is in.
pub const RUN_GID: u32 = 65_534;

/// Hands out [`RUN_UIDS`]: the lowest id not in use, so ids are reused as soon as their
/// container is gone. Pure bookkeeping: the fleet releases an id once its container is
/// removed.
#[derive(Debug, Default)]
pub struct UidAllocator {
    in_use: BTreeSet<u32>,
}

impl UidAllocator {
    /// A free id, or `None` when every id of the range is in use.
    pub fn allocate(&mut self) -> Option<u32> {
        let uid = RUN_UIDS.clone().find(|uid| !self.in_use.contains(uid))?;
        self.in_use.insert(uid);
        Some(uid)
    }

    /// Gives an id back.
    pub fn release(&mut self, uid: u32) {
        self.in_use.remove(&uid);
    }
}

/// Who a container is and where it runs, besides its language and limits.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    /// Labels naming its owner (the fleet adds [`LABEL_SANDBOX`] and its own).
    pub labels: HashMap<String, String>,
    /// The engine's name of the OCI runtime to start it with (`None`: its default).
    pub runtime: Option<&'a str>,
    /// The user id its processes run as (from [`UidAllocator`]).
    pub uid: u32,
}

/// The create body of a sandbox container. Everything that isolates a run is here.
pub fn create_body(
    language: Language,
    limits: &Limits,
    placement: Placement,
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
            crate::seccomp::security_opt().to_string(),
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
        runtime: placement.runtime.map(str::to_string),
        ..Default::default()
    };
    let mut labels = placement.labels;
    labels.insert(LABEL_SANDBOX.to_string(), "1".to_string());
    ContainerCreateBody {
        image: Some(language.image()),
        cmd: Some(vec![SUPERVISOR.to_string(), language.id().to_string()]),
        entrypoint: Some(vec![]),
        user: Some(format!("{}:{RUN_GID}", placement.uid)),
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
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_is_locked_down() {
        let limits = Limits::default();
        let placement = Placement {
            labels: HashMap::from([("owner".to_string(), "me".to_string())]),
            runtime: Some("crun"),
            uid: 200_007,
        };
        let body = create_body(Language::Python, &limits, placement);
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
        assert_eq!(host.runtime.as_deref(), Some("crun"));
        assert_eq!(
            host.log_config.as_ref().unwrap().typ.as_deref(),
            Some("none")
        );
        let tmpfs = &host.tmpfs.as_ref().unwrap()["/work"];
        assert!(
            tmpfs.contains("size=67108864") && tmpfs.contains(",exec,") && tmpfs.contains("nosuid")
        );
        assert_eq!(body.user.as_deref(), Some("200007:65534"));
        assert_eq!(body.env.as_ref().unwrap().len(), ENV.len());
        assert_eq!(body.image.as_deref(), Some("codebox-runner-python:latest"));
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SANDBOX], "1");
        assert_eq!(labels["owner"], "me");
    }

    #[test]
    fn uids_are_distinct_while_in_use_and_reused_after() {
        let mut uids = UidAllocator::default();
        let a = uids.allocate().unwrap();
        let b = uids.allocate().unwrap();
        assert_eq!((a, b), (RUN_UIDS.start, RUN_UIDS.start + 1));
        uids.release(a);
        assert_eq!(
            uids.allocate(),
            Some(a),
            "the lowest free id comes back first"
        );
        assert_eq!(uids.allocate(), Some(b + 1), "both taken again");
        let mut full = UidAllocator::default();
        let all: Vec<u32> = std::iter::from_fn(|| full.allocate()).collect();
        assert_eq!(all.len(), RUN_UIDS.len());
        assert!(all
            .iter()
            .all(|uid| RUN_UIDS.contains(uid) && *uid != 0 && *uid != 65_534));
        assert_eq!(full.allocate(), None);
        full.release(RUN_UIDS.start + 100);
        assert_eq!(full.allocate(), Some(RUN_UIDS.start + 100));
    }
}
