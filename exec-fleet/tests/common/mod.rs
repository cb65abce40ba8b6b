//! What the sandbox tests share: one runtime and sandbox per test binary, and ways to look
//! at the host (processes, containers) after runs.
// Each test binary uses some of these.
#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;

use codebox_exec_fleet::sandbox::{Sandbox, SandboxConfig};
use codebox_submission::project::ProjectFile;
use codebox_submission::{Language, RunResult, Status};
use futures_util::future::join_all;
use tokio::runtime::Runtime;

pub(crate) fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .with_test_writer()
            .try_init();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// Connects a sandbox, failing the test with the reason when the engine or images are missing.
pub(crate) fn connect(config: SandboxConfig) -> Sandbox {
    match runtime().block_on(Sandbox::connect(config)) {
        Ok(sandbox) => sandbox,
        Err(e) => panic!(
            "the sandbox tests need a Docker engine and the runner images \
             (scripts/docker.sh, then scripts/images.sh): {e}"
        ),
    }
}

/// The sandbox most tests share. No warm pool: a test binary has no teardown to drain one
/// (the warm path has tests of its own, on instances they shut down).
pub(crate) fn shared() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        connect(SandboxConfig {
            pool_size: 0,
            ..SandboxConfig::default()
        })
    })
}

/// A single source as its project's one file, named the language's entry.
pub(crate) fn single(language: Language, source: &str) -> [ProjectFile; 1] {
    [ProjectFile {
        name: language.toolchain().source_file.to_string(),
        content: source.to_string(),
    }]
}

/// A project of (name, content) files.
pub(crate) fn project(files: &[(&str, &str)]) -> Vec<ProjectFile> {
    files
        .iter()
        .map(|(name, content)| ProjectFile {
            name: name.to_string(),
            content: content.to_string(),
        })
        .collect()
}

/// Runs a single source on `sandbox`.
pub(crate) async fn run_source(
    sandbox: &Sandbox,
    language: Language,
    source: &str,
    stdin: &str,
) -> RunResult {
    sandbox
        .run(language, &single(language, source), stdin)
        .await
}

pub(crate) fn run(language: Language, source: &str, stdin: &str) -> RunResult {
    run_all(&[(language, source, stdin)]).remove(0)
}

/// Runs several programs at once on the shared sandbox, and waits until their containers
/// are removed (so none is left when the test binary exits).
pub(crate) fn run_all(runs: &[(Language, &str, &str)]) -> Vec<RunResult> {
    let sandbox = shared();
    runtime().block_on(async {
        let results = join_all(
            runs.iter()
                .map(|&(l, src, stdin)| run_source(sandbox, l, src, stdin)),
        )
        .await;
        sandbox.settle().await;
        results
    })
}

#[track_caller]
pub(crate) fn expect(result: &RunResult, status: Status) {
    assert_eq!(result.status, status, "unexpected result: {result:#?}");
}

/// Host processes whose command line mentions `token`.
pub(crate) fn host_processes_with(token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(token) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// The 64-hex container id in a process's cgroup path (cgroup v1 "/docker/ID", v2 "docker-ID.scope").
pub(crate) fn container_of(pid: &str) -> Option<String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let bytes = cgroup.as_bytes();
    let mut run = 0;
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_hexdigit() && !b.is_ascii_uppercase() {
            run += 1;
            let ends = i + 1 == bytes.len() || !bytes[i + 1].is_ascii_hexdigit();
            if run == 64 && ends {
                return Some(cgroup[i + 1 - 64..=i].to_string());
            }
        } else {
            run = 0;
        }
    }
    None
}

/// Host processes still in the cgroup of a container that no longer exists.
pub(crate) fn processes_of_removed_containers() -> Vec<String> {
    let mut in_containers = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit()) {
            if let Some(id) = container_of(&pid) {
                in_containers.push((pid, id));
            }
        }
    }
    // Listed after the scan: a container made since is not a concern, one removed since is.
    let output = Command::new("docker")
        .args(["ps", "-a", "-q", "--no-trunc"])
        .output()
        .expect("docker CLI");
    let existing: std::collections::HashSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    in_containers
        .into_iter()
        .filter(|(pid, id)| {
            !existing.contains(id) && std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .map(|(pid, id)| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "pid {pid} of container {}: {}",
                &id[..12],
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            )
        })
        .collect()
}

/// Containers (any state) with this label.
pub(crate) fn containers_labelled(label: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.ID}} {{.Status}}",
        ])
        .output()
        .expect("docker CLI");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A hostile program and what its result must be.
pub(crate) type Hostile<'a> = (Language, &'a str, Box<dyn Fn(&RunResult)>);

pub(crate) fn check(f: impl Fn(&RunResult) + 'static) -> Box<dyn Fn(&RunResult)> {
    Box::new(f)
}
