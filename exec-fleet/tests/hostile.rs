//! Hostile programs against the real engine and runner images: each ends in the right
//! status, its container is removed, nothing it started outlives it, and the next run is
//! fine. Needs what tests/sandbox.rs needs.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codebox_exec_fleet::sandbox::{SandboxConfig, PROTOCOL};
use codebox_sandbox::protocol::{self, stdin_payload, File, Mode};
use codebox_submission::{Language, RunResult, Status};
use futures_util::future::join_all;

use common::*;

/// The seccomp profile (crates/sandbox/src/seccomp.rs) holds: each line is a call a
/// program might try, and how the kernel answered it.
#[test]
fn system_calls_outside_the_profile_are_refused() {
    let source = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, long r) {
  if (r < 0) printf("%s: %s\n", what, strerrorname_np(errno));
  else printf("%s: allowed\n", what);
}

int main(void) {
  // Through the 32-bit ABI, in a child: getpid is call 20 there.
  pid_t child = fork();
  if (child == 0) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    _exit(r == getpid() ? 42 : 43);
  }
  int status;
  waitpid(child, &status, 0);
  if (WIFEXITED(status)) printf("int 0x80: %s\n", WEXITSTATUS(status) == 42 ? "allowed" : "refused");
  else printf("int 0x80: refused (signal %d)\n", WTERMSIG(status));
  report("socket AF_ALG", socket(38, SOCK_SEQPACKET, 0));
  report("socket AF_PACKET", socket(17, SOCK_RAW, 0));
  report("socket AF_VSOCK", socket(40, SOCK_STREAM, 0));
  report("socket AF_UNIX", socket(AF_UNIX, SOCK_STREAM, 0));
  report("socket AF_INET", socket(AF_INET, SOCK_DGRAM, 0));
  report("socket TCP6 nonblocking", socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP));
  report("socket SCTP", socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP));
  report("socket SCTP6 seqpacket", socket(AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP));
  report("socket inet seqpacket", socket(AF_INET, SOCK_SEQPACKET, 0));
  report("netlink route", socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  report("netlink audit", socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT));
  report("netlink uevent", socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT));
  report("netlink sock_diag", socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG));
  report("unshare user", unshare(CLONE_NEWUSER));
  report("clone newns", syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
  report("clone3", syscall(SYS_clone3, 0, 0));
  report("io_uring_setup", syscall(SYS_io_uring_setup, 8, 0));
  report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
  report("bpf", syscall(SYS_bpf, 0, 0, 0));
  report("ptrace", syscall(SYS_ptrace, 0, 0, 0, 0));
  report("personality", syscall(SYS_personality, 0x0040000));
  report("mount", syscall(SYS_mount, "none", "/work", "tmpfs", 0, 0));
  report("sync", syscall(SYS_sync));
  fflush(stdout);
  return 0;
}
"#;
    let result = run(Language::C, source, "");
    expect(&result, Status::Ok);
    let out = &result.stdout;
    for line in [
        "socket AF_ALG: EPERM",
        "socket AF_PACKET: EPERM",
        "socket AF_VSOCK: EPERM",
        "socket AF_UNIX: allowed",
        "socket AF_INET: allowed",
        "socket TCP6 nonblocking: allowed",
        "socket SCTP: EPERM",
        "socket SCTP6 seqpacket: EPERM",
        "socket inet seqpacket: EPERM",
        "netlink route: allowed",
        "netlink audit: EPERM",
        "netlink uevent: EPERM",
        "netlink sock_diag: EPERM",
        "unshare user: EPERM",
        "clone newns: EPERM",
        "clone3: ENOSYS",
        "io_uring_setup: EPERM",
        "keyctl: EPERM",
        "bpf: EPERM",
        "ptrace: EPERM",
        "personality: EPERM",
        "mount: EPERM",
        "sync: EPERM",
    ] {
        assert!(
            out.contains(&format!("{line}\n")),
            "{line:?} missing in:\n{out}"
        );
    }
    assert!(out.starts_with("int 0x80: refused"), "{out}");
}

#[test]
fn hostile_programs_stay_contained() {
    // Its own instance, so the end state (no containers, no processes) can be checked.
    let sandbox = connect(SandboxConfig {
        pool_size: 1,
        pool_languages: vec![Language::Python],
        ..SandboxConfig::default()
    });
    let token = format!("codebox-escapee-{}", std::process::id());
    let sleeper = format!("['python3', '-c', 'import time; time.sleep(300)', '{token}']");
    let double_fork = format!(
        "import os, sys\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execvp('python3', {sleeper})\n    os._exit(0)\nos.wait()\nprint('parent done')\n"
    );
    let nohup = format!(
        "import subprocess\nsubprocess.Popen(['nohup'] + {sleeper}, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nprint('parent done')\n"
    );
    // Keeps the output pipes open after the parent is gone.
    let holds_pipes =
        format!("import subprocess\nsubprocess.Popen({sleeper})\nprint('parent done')\n");
    let fork_bomb_c = "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n";
    let fork_bomb_py =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let memory_hog = "x = []\nwhile True:\n    x.append(' ' * (1 << 24) + str(len(x)))\n";
    let flood = "import os\nwhile True:\n    os.write(1, b'A' * 65536)\n";
    let egress = "import socket\nfor target in [('1.1.1.1', 53), ('8.8.8.8', 443), ('172.17.0.1', 2375)]:\n    try:\n        socket.create_connection(target, timeout=2)\n        print('CONNECTED', target)\n    except OSError:\n        pass\ntry:\n    socket.gethostbyname('deb.debian.org')\n    print('RESOLVED')\nexcept OSError:\n    pass\nprint('offline')\n";
    let docker_socket = "import os\nprint([p for p in ['/var/run/docker.sock', '/run/docker.sock'] if os.path.exists(p)])\n";

    let hello = (Language::Python, "print('still fine')\n");
    let batches: Vec<Vec<Hostile>> = vec![
        vec![
            (
                Language::Python,
                double_fork.as_str(),
                check(|r: &RunResult| {
                    expect(r, Status::Ok);
                    assert_eq!(r.stdout, "parent done\n");
                    assert!(
                        r.time_ms.unwrap_or(u64::MAX) < 3_000,
                        "the run ended with its program: {r:?}"
                    );
                }),
            ),
            (
                Language::Python,
                nohup.as_str(),
                check(|r: &RunResult| {
                    expect(r, Status::Ok);
                    assert!(r.time_ms.unwrap_or(u64::MAX) < 3_000, "{r:?}");
                }),
            ),
            (
                Language::Python,
                holds_pipes.as_str(),
                check(|r: &RunResult| {
                    expect(r, Status::Ok);
                    assert!(r.time_ms.unwrap_or(u64::MAX) < 3_000, "{r:?}");
                }),
            ),
            (
                Language::Python,
                egress,
                check(|r: &RunResult| {
                    expect(r, Status::Ok);
                    assert_eq!(r.stdout, "offline\n");
                }),
            ),
            (
                Language::Python,
                docker_socket,
                check(|r: &RunResult| {
                    expect(r, Status::Ok);
                    assert_eq!(r.stdout, "[]\n");
                }),
            ),
        ],
        vec![
            (
                Language::C,
                fork_bomb_c,
                check(|r: &RunResult| expect(r, Status::TimeLimitExceeded)),
            ),
            (
                Language::Python,
                fork_bomb_py,
                check(|r: &RunResult| expect(r, Status::TimeLimitExceeded)),
            ),
            (
                Language::Python,
                memory_hog,
                check(|r: &RunResult| expect(r, Status::MemoryLimitExceeded)),
            ),
            (
                Language::Python,
                flood,
                check(|r: &RunResult| expect(r, Status::OutputLimitExceeded)),
            ),
        ],
    ];
    for batch in batches {
        let results = runtime().block_on(join_all(
            batch
                .iter()
                .map(|(language, source, _)| run_source(&sandbox, *language, source, "")),
        ));
        for ((_, _, check), result) in batch.iter().zip(&results) {
            check(result);
        }
        // The next run works normally.
        let after = runtime().block_on(run_source(&sandbox, hello.0, hello.1, ""));
        expect(&after, Status::Ok);
        assert_eq!(after.stdout, "still fine\n");
    }

    runtime().block_on(sandbox.shutdown());
    let label = format!("codebox.sandbox.instance={}", sandbox.instance());
    assert_eq!(
        containers_labelled(&label),
        Vec::<String>::new(),
        "containers left behind"
    );
    // Container teardown is the engine's, asynchronous to its API answers: allow a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut left = host_processes_with(&token);
        left.extend(processes_of_removed_containers());
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes outlived their runs: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs hostile programs a few at a time on a sandbox of their own, checks each result and
/// that no container of theirs is left, then that an ordinary run is still fine.
fn run_hostile(batches: Vec<Vec<Hostile>>) {
    let sandbox = connect(SandboxConfig {
        pool_size: 0,
        ..SandboxConfig::default()
    });
    let label = format!("codebox.sandbox.instance={}", sandbox.instance());
    let fine = "#include <stdio.h>\nint main(void) { puts(\"fine\"); }\n";
    for batch in batches {
        let results = runtime().block_on(async {
            let runs = batch
                .iter()
                .map(|(language, source, _)| run_source(&sandbox, *language, source, ""));
            let results = join_all(runs).await;
            sandbox.settle().await;
            results
        });
        for (result, (_, _, check)) in results.iter().zip(&batch) {
            check(result);
        }
        assert_eq!(
            containers_labelled(&label),
            Vec::<String>::new(),
            "containers left behind"
        );
        let after = runtime().block_on(run_source(&sandbox, Language::C, fine, ""));
        expect(&after, Status::Ok);
        assert_eq!(after.stdout, "fine\n");
    }
    runtime().block_on(sandbox.shutdown());
}

/// A compile step fed something endless or enormous ends as a compile error, within the
/// compile limit (10 s) and a little.
#[test]
fn hostile_sources_end_their_compile_step() {
    let compile_error = |wants: &'static str| {
        check(move |r: &RunResult| {
            expect(r, Status::CompileError);
            let output = r.compile_output.as_deref().unwrap_or_default();
            assert!(output.contains(wants), "{wants:?} missing in {output}");
        })
    };
    run_hostile(vec![
        vec![
            (Language::C, "#include \"/dev/zero\"\nint main(void) { return 0; }\n", compile_error("")),
            (Language::C, "#include \"/dev/random\"\nint main(void) { return 0; }\n", compile_error("")),
        ],
        vec![
            (
                Language::C,
                // Read through a volatile index, so the compiler must emit all of it.
                "static char a[1 << 30] = {1};\nint main(void) { volatile int i = 0; return a[i]; }\n",
                compile_error(""),
            ),
            (
                Language::Cpp,
                "template <int N> struct F { static const int v = F<N - 1>::v + 1; };\n\
                 template <> struct F<0> { static const int v = 0; };\n\
                 int main() { return F<100000>::v; }\n",
                compile_error("template instantiation depth"),
            ),
        ],
        vec![(
            Language::Rust,
            "static Z: &[u8] = include_bytes!(\"/dev/zero\");\nfn main() { println!(\"{}\", Z.len()); }\n",
            compile_error(""),
        )],
    ]);
}

/// Programs that exhaust what a container has: its disk, its shared memory, its file
/// size limit, its descriptors.
#[test]
fn programs_that_exhaust_their_container_end_cleanly() {
    let fill = |dir: &str| {
        format!(
            "import errno, os\n\
             n = 0\n\
             try:\n    \
                 while True:\n        \
                     with open(f'{dir}/fill{{n}}', 'wb') as f:\n            \
                         for _ in range(15):\n                \
                             f.write(b'x' * (1 << 20))\n        \
                     n += 1\n\
             except OSError as e:\n    \
                 print('{dir} full:', errno.errorcode[e.errno])\n"
        )
    };
    let fill_work = fill("/work");
    let fill_shm = fill("/dev/shm");
    let full = |dir: &'static str| {
        check(move |r: &RunResult| {
            expect(r, Status::Ok);
            assert_eq!(r.stdout, format!("{dir} full: ENOSPC\n"));
        })
    };
    let big_file = "#include <stdio.h>\n#include <string.h>\n\
        static char mib[1 << 20];\n\
        int main(void) {\n\
          FILE *f = fopen(\"big\", \"wb\");\n\
          memset(mib, 'x', sizeof mib);\n\
          for (int i = 0; i < 17; i++) { fwrite(mib, 1, sizeof mib, f); fflush(f); }\n\
          puts(\"wrote 17 MiB\");\n\
        }\n";
    let many_files = "#define _GNU_SOURCE\n#include <errno.h>\n#include <fcntl.h>\n#include <stdio.h>\n#include <string.h>\n\
        int main(void) {\n\
          int opened = 0, error = 0;\n\
          for (int i = 0; i < 1000; i++) {\n\
            if (open(\"/dev/null\", O_RDONLY) < 0) { error = errno; break; }\n\
            opened++;\n\
          }\n\
          printf(\"opened %d, then %s\\n\", opened, strerrorname_np(error));\n\
        }\n";
    run_hostile(vec![vec![
        (Language::Python, fill_work.as_str(), full("/work")),
        (Language::Python, fill_shm.as_str(), full("/dev/shm")),
        (
            Language::C,
            big_file,
            check(|r: &RunResult| {
                expect(r, Status::RuntimeError);
                assert_eq!(r.signal, Some(25), "SIGXFSZ: {r:?}");
                assert_eq!(r.stdout, "");
            }),
        ),
        (
            Language::C,
            many_files,
            check(|r: &RunResult| {
                expect(r, Status::Ok);
                assert!(r.stdout.ends_with(", then EMFILE\n"), "{}", r.stdout);
                let opened: u32 = r.stdout["opened ".len()..]
                    .split(',')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((240..256).contains(&opened), "{}", r.stdout);
            }),
        ),
    ]]);
}

/// Per-user kernel quotas belong to one run: a program that takes every inotify instance
/// its user may have does not take them from a run beside it.
#[test]
fn a_run_cannot_use_up_another_runs_per_user_quotas() {
    let hog = "#define _GNU_SOURCE\n#include <errno.h>\n#include <stdio.h>\n#include <string.h>\n#include <sys/inotify.h>\n#include <unistd.h>\n\
        int main(void) {\n\
          int n = 0, error = 0;\n\
          for (int i = 0; i < 2000; i++) {\n\
            if (inotify_init1(0) < 0) { error = errno; break; }\n\
            n++;\n\
          }\n\
          printf(\"%d instances, then %s\\n\", n, strerrorname_np(error));\n\
          fflush(stdout);\n\
          sleep(4);\n\
        }\n";
    let needs_one = "#define _GNU_SOURCE\n#include <errno.h>\n#include <stdio.h>\n#include <string.h>\n#include <sys/inotify.h>\n#include <unistd.h>\n\
        int main(void) {\n\
          sleep(2);\n\
          int fd = inotify_init1(0);\n\
          printf(\"inotify: %s\\n\", fd < 0 ? strerrorname_np(errno) : \"ok\");\n\
        }\n";
    let results = run_all(&[(Language::C, hog, ""), (Language::C, needs_one, "")]);
    expect(&results[0], Status::Ok);
    assert!(
        results[0].stdout.ends_with("instances, then EMFILE\n"),
        "{}",
        results[0].stdout
    );
    expect(&results[1], Status::Ok);
    assert_eq!(results[1].stdout, "inotify: ok\n");
}

/// A program that digs for its run's token (the supervisor's memory, its environment,
/// init's) and prints forged ENDs with whatever it found cannot end its run: the
/// supervisor is not readable, so the run ends at its time limit, timed honestly.
#[test]
fn a_forged_end_does_not_end_the_run() {
    let source = r#"
import os, re, sys
tokens, refused = set(), []
for who, pid in (('supervisor', os.getppid()), ('init', 1)):
    for name in ('environ', 'cmdline'):
        try:
            tokens.update(re.findall(rb'[0-9a-f]{32}', open(f'/proc/{pid}/{name}', 'rb').read()))
        except OSError as e:
            refused.append(f'{who}/{name}')
    try:
        regions = [l.split()[0] for l in open(f'/proc/{pid}/maps') if l.split()[1].startswith('r')]
        mem = open(f'/proc/{pid}/mem', 'rb')
        for region in regions:
            lo, hi = (int(x, 16) for x in region.split('-'))
            try:
                mem.seek(lo)
                tokens.update(re.findall(rb'[0-9a-f]{32}', mem.read(min(hi - lo, 1 << 24))))
            except (OSError, OverflowError, ValueError):
                pass
    except OSError:
        refused.append(f'{who}/mem')
print('refused', ' '.join(refused), 'candidates', len(tokens), flush=True)
for token in tokens:
    sys.stdout.write('CODEBOX/3 END %s 0 0\n' % token.decode())
    sys.stderr.write('CODEBOX/3 END %s\n' % token.decode())
sys.stdout.flush()
sys.stderr.flush()
while True:
    pass
"#;
    let result = run(Language::Python, source, "");
    expect(&result, Status::TimeLimitExceeded);
    let limit = codebox_submission::Limits::default().run_ms;
    let time = result.time_ms.unwrap_or_default();
    assert!(
        (limit..limit + 1_000).contains(&time),
        "an honest time: {result:?}"
    );
    let report = result.stdout.lines().next().unwrap_or_default();
    assert!(
        report.starts_with("refused ") && report.contains("supervisor/mem"),
        "{report}"
    );
}

/// Runs a runner image's supervisor with `request` on stdin, as the fleet would but with a
/// writable root file system (so a write outside /work would show); returns its stdout, its
/// exit code and what changed in its file system (`docker diff`).
fn supervise_by_hand(language: Language, request: &[u8]) -> (String, i32, String) {
    let docker = |args: &[&str]| {
        let output = Command::new("docker")
            .args(args)
            .output()
            .expect("docker CLI");
        assert!(output.status.success(), "docker {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let id = docker(&[
        "create",
        "-i",
        "--network",
        "none",
        "--user",
        "200999:65534",
        "--tmpfs",
        "/work:rw,exec,nosuid,nodev,mode=1777",
        "--label",
        "codebox.sandbox.test=hand-made-request",
        &language.image(),
    ]);
    let mut child = Command::new("docker")
        .args(["start", "-a", "-i", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker CLI");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(request).expect("the request is written");
    drop(stdin);
    let output = child.wait_with_output().expect("docker start");
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &id]);
    let diff = docker(&["diff", &id]);
    docker(&["rm", "-f", &id]);
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        code.parse().unwrap_or(-1),
        diff,
    )
}

/// The supervisor is the last check before the file system: a request the fleet would never
/// send (made here with the protocol's own encoder) naming a file outside /work, a file that
/// is also a folder, a name the sandbox keeps, or a program outside a built run is refused
/// before anything runs, and nothing is written outside /work. The same channel takes a
/// well-formed request, so the refusals are the names' doing.
#[test]
fn the_supervisor_refuses_requests_the_fleet_would_never_send() {
    shared(); // fails clearly if images are missing
    let token = protocol::new_token();
    let main = File {
        name: "main.py",
        content: b"from lib import x\nprint(x.v)\n",
        executable: false,
    };
    let lib = File {
        name: "lib/x.py",
        content: b"v = 42\n",
        executable: false,
    };
    let evil = |name| File {
        name,
        content: b"import os\nos.system('touch /tmp/escaped')\n",
        executable: false,
    };
    let cases = [
        (
            evil("../escape.py"),
            Mode::Run,
            "may not hold '.' or '..' segments",
        ),
        (evil("/tmp/escape.py"), Mode::Run, "must be relative"),
        (
            evil("lib/../../tmp/escape.py"),
            Mode::Run,
            "may not hold '.' or '..'",
        ),
        (
            evil("main.py/escape.py"),
            Mode::Run,
            "would be both a file and a folder",
        ),
        (evil(".tmp/escape.py"), Mode::Run, "keeps for itself"),
        (
            File {
                executable: true,
                ..evil("main")
            },
            Mode::Run,
            "only a built run's one program may be executable",
        ),
    ];
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(bad, mode, _)| {
                let request = stdin_payload(&token, *mode, &[main, *bad, lib], b"");
                scope.spawn(move || supervise_by_hand(Language::Python, &request))
            })
            .collect();
        let good = stdin_payload(&token, Mode::Run, &[main, lib], b"");
        let good = scope.spawn(move || supervise_by_hand(Language::Python, &good));
        let mut outcomes: Vec<_> = runs.into_iter().map(|r| r.join().expect("a run")).collect();
        outcomes.push(good.join().expect("the good run"));
        outcomes
    });
    let prefix = format!("CODEBOX/{PROTOCOL} ");
    for ((_, _, reason), (stdout, code, diff)) in cases.iter().zip(&outcomes) {
        assert_eq!(code, &125, "{stdout}");
        let fail = format!("{prefix}FAIL refused the request: file 1: ");
        assert!(
            stdout.starts_with(&format!("{prefix}READY\n{fail}")) && stdout.contains(reason),
            "{reason:?}: {stdout:?}"
        );
        assert!(!stdout.contains("RUN"), "nothing ran: {stdout:?}");
        assert_eq!(diff, "", "nothing was written outside /work");
    }
    let (stdout, code, diff) = &outcomes[cases.len()];
    assert_eq!(code, &0, "{stdout}");
    assert!(
        stdout.contains(&format!("{prefix}RUN\n42\n{prefix}END {token} 0 ")),
        "{stdout:?}"
    );
    assert_eq!(diff, "", "the program wrote only to /work");
}
