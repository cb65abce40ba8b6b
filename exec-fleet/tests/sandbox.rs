//! The sandbox against the real Docker engine and runner images.
//!
//! Needs a running engine (scripts/docker.sh) and the runner images (scripts/images.sh);
//! without them every test fails and says so. Independent runs go in parallel, a few at a time.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use codebox_exec_fleet::sandbox::{Sandbox, SandboxConfig};
use codebox_submission::{Language, RunResult, Status};
use futures_util::future::join_all;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
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
fn connect(config: SandboxConfig) -> Sandbox {
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
fn shared() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        connect(SandboxConfig {
            pool_size: 0,
            ..SandboxConfig::default()
        })
    })
}

fn run(language: Language, source: &str, stdin: &str) -> RunResult {
    run_all(&[(language, source, stdin)]).remove(0)
}

/// Runs several programs at once on the shared sandbox, and waits until their containers
/// are removed (so none is left when the test binary exits).
fn run_all(runs: &[(Language, &str, &str)]) -> Vec<RunResult> {
    let sandbox = shared();
    runtime().block_on(async {
        let results = join_all(
            runs.iter()
                .map(|&(l, src, stdin)| sandbox.run(l, src, stdin)),
        )
        .await;
        sandbox.settle().await;
        results
    })
}

#[track_caller]
fn expect(result: &RunResult, status: Status) {
    assert_eq!(result.status, status, "unexpected result: {result:#?}");
}

const HELLO: [(Language, &str); 6] = [
    (Language::Python, "print('hello')\n"),
    (Language::Javascript, "console.log('hello');\n"),
    (
        Language::C,
        "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n",
    ),
    (
        Language::Cpp,
        "#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; }\n",
    ),
    (
        Language::Go,
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
    ),
    (Language::Rust, "fn main() { println!(\"hello\"); }\n"),
];

#[test]
fn hello_world_in_every_language() {
    let runs: Vec<_> = HELLO.iter().map(|&(l, src)| (l, src, "")).collect();
    for ((language, _), result) in HELLO.iter().zip(run_all(&runs)) {
        expect(&result, Status::Ok);
        assert_eq!(result.stdout, "hello\n", "{language}");
        assert_eq!(result.stderr, "", "{language}");
        assert_eq!(result.exit_code, Some(0));
        assert!(
            result.time_ms.is_some_and(|t| t < 5_000),
            "{language}: {result:?}"
        );
        assert_eq!(
            result.compile_output.is_some(),
            language.info().compiled,
            "{language}: {result:?}"
        );
    }
}

/// The first dotted number in a `--version` line: "gcc (Debian 12.2.0-14) 12.2.0" -> "12.2.0".
fn first_version(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|i| {
        if !bytes[i].is_ascii_digit()
            || (i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.'))
        {
            return None;
        }
        let end = (i..bytes.len())
            .find(|&j| !(bytes[j].is_ascii_digit() || bytes[j] == b'.'))
            .unwrap_or(bytes.len());
        let candidate = text[i..end].trim_end_matches('.');
        candidate.contains('.').then(|| candidate.to_string())
    })
}

#[test]
fn image_versions_match_language_info() {
    shared(); // fails clearly if images are missing
    let commands: [(Language, &[&str]); 6] = [
        (Language::Python, &["python3", "--version"]),
        (Language::Javascript, &["node", "--version"]),
        (Language::C, &["gcc", "--version"]),
        (Language::Cpp, &["g++", "--version"]),
        (Language::Go, &["go", "version"]),
        (Language::Rust, &["rustc", "--version"]),
    ];
    for (language, command) in commands {
        let output = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                command[0],
                &language.image(),
            ])
            .args(&command[1..])
            .output()
            .expect("docker CLI");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{language}: {text}");
        let version = first_version(text.lines().next().unwrap_or_default()).unwrap_or_default();
        let expected = language.info().version;
        assert!(
            version == expected || version.starts_with(&format!("{expected}.")),
            "{language}: the image has {version:?} ({text:?}), Language::info says {expected:?}"
        );
    }
}

#[test]
fn stdin_reaches_the_program() {
    // A large source (the framing must not eat into stdin) and a large stdin.
    let padding = "# padding\n".repeat(6_000);
    let python = format!(
        "{padding}import sys\ndata = sys.stdin.read()\nprint(len(data), data[:12], data[-4:])\n"
    );
    let stdin = format!("12 30\n{}end\n", "x".repeat(60_000));
    let c = "#include <stdio.h>\nint main(void) { int a, b; if (scanf(\"%d %d\", &a, &b) != 2) return 2; printf(\"%d\\n\", a + b); return 0; }\n";
    let js = "let s = require('fs').readFileSync(0, 'utf8'); console.log(s.trim().split('\\n').length);\n";
    let results = run_all(&[
        (Language::Python, &python, &stdin),
        (Language::C, c, "12 30\n"),
        (Language::Javascript, js, "a\nb\nc\n"),
        (
            Language::Python,
            "import sys\nprint(repr(sys.stdin.read()))\n",
            "",
        ),
    ]);
    expect(&results[0], Status::Ok);
    assert_eq!(
        results[0].stdout,
        format!("{} 12 30\nxxxxxx end\n\n", stdin.len())
    );
    expect(&results[1], Status::Ok);
    assert_eq!(results[1].stdout, "42\n");
    expect(&results[2], Status::Ok);
    assert_eq!(results[2].stdout, "3\n");
    expect(&results[3], Status::Ok);
    assert_eq!(
        results[3].stdout, "''\n",
        "an empty stdin is an immediate EOF"
    );
}

#[test]
fn stdout_and_stderr_are_kept_apart() {
    let source = "import sys\nfor i in range(200):\n    print('out', i, flush=True)\n    print('err', i, file=sys.stderr, flush=True)\n";
    let result = run(Language::Python, source, "");
    expect(&result, Status::Ok);
    let out: String = (0..200).map(|i| format!("out {i}\n")).collect();
    let err: String = (0..200).map(|i| format!("err {i}\n")).collect();
    assert_eq!(result.stdout, out);
    assert_eq!(result.stderr, err);
}

#[test]
fn compile_errors_carry_the_compiler_output() {
    let results = run_all(&[
        (Language::C, "int main(void) { return 0 }\n", ""),
        (Language::Rust, "fn main() { let x: u32 = \"no\"; }\n", ""),
        (Language::Python, "print('unclosed'\n", ""),
        (Language::Javascript, "function (\n", ""),
        (
            Language::Go,
            "package main\nfunc main() { undefinedThing() }\n",
            "",
        ),
    ]);
    let expected = [
        "error: expected ‘;’",
        "E0308",
        "SyntaxError: '(' was never closed",
        "SyntaxError",
        "undefined: undefinedThing",
    ];
    for (result, needle) in results.iter().zip(expected) {
        expect(result, Status::CompileError);
        let output = result.compile_output.as_deref().unwrap_or_default();
        assert!(
            output.contains(needle),
            "wanted {needle:?} in the compile output: {result:#?}"
        );
        assert_eq!(result.stdout, "");
        assert_eq!(result.time_ms, None);
        assert!(!output.contains("CODEBOX/"), "{output}");
    }
    let python = results[2].compile_output.as_deref().unwrap_or_default();
    assert!(
        python.starts_with("  File \"/work/main.py\", line 1") && !python.contains("Traceback"),
        "{python}"
    );
}

#[test]
fn runtime_errors_by_exit_code_and_by_signal() {
    let results = run_all(&[
        (
            Language::Python,
            "import sys\nprint('partial')\nsys.exit(3)\n",
            "",
        ),
        (
            Language::C,
            "int main(void) { volatile int *p = 0; *p = 1; return 0; }\n",
            "",
        ),
        (
            Language::C,
            "#include <stdlib.h>\nint main(void) { abort(); }\n",
            "",
        ),
        (
            Language::Rust,
            "fn main() { let v: Vec<u8> = Vec::new(); println!(\"{}\", v[3]); }\n",
            "",
        ),
    ]);
    expect(&results[0], Status::RuntimeError);
    assert_eq!((results[0].exit_code, results[0].signal), (Some(3), None));
    assert_eq!(results[0].stdout, "partial\n");
    expect(&results[1], Status::RuntimeError);
    assert_eq!(
        (results[1].exit_code, results[1].signal),
        (None, Some(11)),
        "SIGSEGV"
    );
    expect(&results[2], Status::RuntimeError);
    assert_eq!(
        (results[2].exit_code, results[2].signal),
        (None, Some(6)),
        "SIGABRT"
    );
    expect(&results[3], Status::RuntimeError);
    assert_eq!(results[3].exit_code, Some(101), "a Rust panic");
    assert!(
        results[3].stderr.contains("index out of bounds"),
        "{:?}",
        results[3]
    );
}

/// Python's check and run share one interpreter; the program must not be able to tell.
#[test]
fn python_runs_as_python3_main_py_would() {
    let results = run_all(&[
        (
            Language::Python,
            "import sys\nimport __main__\nprint(__name__, __file__, sys.argv, sys.path[0], __main__.__dict__ is globals(), sorted(k for k in globals() if k.startswith('codebox')))\n",
            "",
        ),
        (
            Language::Python,
            "def f():\n    raise ValueError('boom')\nf()\n",
            "",
        ),
    ]);
    expect(&results[0], Status::Ok);
    assert_eq!(
        results[0].stdout,
        "__main__ /work/main.py ['main.py'] /work True []\n"
    );
    assert_eq!(results[0].compile_output, None);
    expect(&results[1], Status::RuntimeError);
    assert_eq!(results[1].exit_code, Some(1));
    assert_eq!(
        results[1].stderr,
        "Traceback (most recent call last):\n  File \"/work/main.py\", line 3, in <module>\n    f()\n  File \"/work/main.py\", line 2, in f\n    raise ValueError('boom')\nValueError: boom\n"
    );
}

#[test]
fn time_limits() {
    let started = Instant::now();
    let results = run_all(&[
        (
            Language::Python,
            "import time\nprint('before', flush=True)\ntime.sleep(60)\n",
            "",
        ),
        (
            Language::C,
            "int main(void) { volatile unsigned long n = 0; for (;;) n++; }\n",
            "",
        ),
        // Closes both output streams and carries on: the clock still runs.
        (
            Language::Python,
            "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)\n",
            "",
        ),
        // Ignores SIGTERM: the kill goes through the API as SIGKILL.
        (
            Language::Python,
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n",
            "",
        ),
    ]);
    for result in &results {
        expect(result, Status::TimeLimitExceeded);
        let t = result.time_ms.unwrap_or_default();
        assert!((4_900..8_000).contains(&t), "time_ms {t}: {result:?}");
        assert_eq!(result.signal, Some(9));
    }
    assert_eq!(
        results[0].stdout, "before\n",
        "output before the limit is kept"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn memory_limit() {
    let c = "#include <stdlib.h>\n#include <string.h>\nint main(void) {\n  for (int i = 0; i < 128; i++) { char *p = malloc(16 << 20); if (!p) return 3; memset(p, i, 16 << 20); }\n  return 0;\n}\n";
    let python = "chunks = []\nwhile True:\n    chunks.append(bytearray(b'x' * (8 << 20)))\n";
    // The OOM killer takes a child; the program itself exits 0. The supervisor's report of
    // a plain exit is not the last word when the container had an OOM kill.
    let child = "#include <stdlib.h>\n#include <string.h>\n#include <sys/wait.h>\n#include <unistd.h>\nint main(void) {\n  if (fork() == 0) { for (;;) { char *p = malloc(16 << 20); if (p) memset(p, 1, 16 << 20); } }\n  int status; wait(&status);\n  return 0;\n}\n";
    let results = run_all(&[
        (Language::C, c, ""),
        (Language::Python, python, ""),
        (Language::C, child, ""),
    ]);
    for result in &results[..2] {
        expect(result, Status::MemoryLimitExceeded);
        assert_eq!(result.signal, Some(9));
    }
    expect(&results[2], Status::MemoryLimitExceeded);
    assert_eq!(results[2].exit_code, Some(0), "{:?}", results[2]);
}

#[test]
fn output_limit() {
    let results = run_all(&[
        (Language::Python, "while True:\n    print('x' * 999)\n", ""),
        (Language::C, "#include <stdio.h>\nint main(void) { for (;;) fputs(\"flood flood flood\\n\", stderr); }\n", ""),
        // Exactly the cap is fine.
        (Language::Python, "import sys\nsys.stdout.write('y' * 65536)\n", ""),
    ]);
    expect(&results[0], Status::OutputLimitExceeded);
    assert!(results[0].stdout_truncated && !results[0].stderr_truncated);
    assert_eq!(results[0].stdout.len(), 64 * 1024);
    expect(&results[1], Status::OutputLimitExceeded);
    assert!(results[1].stderr_truncated && !results[1].stdout_truncated);
    assert_eq!(results[1].stderr.len(), 64 * 1024);
    expect(&results[2], Status::Ok);
    assert_eq!(results[2].stdout.len(), 64 * 1024);
    assert!(!results[2].stdout_truncated);
}

#[test]
fn invalid_utf8_output_is_kept_lossily() {
    let source = "import sys\nsys.stdout.buffer.write(b'a\\xff\\xfeb\\n')\nsys.stderr.buffer.write(b'\\xc3(\\n')\n";
    let result = run(Language::Python, source, "");
    expect(&result, Status::Ok);
    assert_eq!(result.stdout, "a\u{fffd}\u{fffd}b\n");
    assert_eq!(result.stderr, "\u{fffd}(\n");
}

#[test]
fn runs_unprivileged_read_only_and_offline() {
    let source = r#"
import os, socket
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print('uid', status['Uid'].split()[0], 'gid', status['Gid'].split()[0])
print('caps', status['CapEff'].strip(), status['CapPrm'].strip(), status['CapBnd'].strip())
print('nnp', status['NoNewPrivs'].strip(), 'seccomp', status['Seccomp'].strip())
for path in ['/etc/evil', '/tmp/evil', '/usr/bin/evil', '/evil', '/work/../etc/evil']:
    try:
        open(path, 'w').write('x')
        print('WROTE', path)
    except OSError as e:
        print('refused', path, e.errno)
open('/work/ok.txt', 'w').write('fine')
print('work', open('/work/ok.txt').read(), oct(os.stat('/work').st_mode & 0o7777))
print('env', sorted(os.environ.items()))
print('net', sorted(os.listdir('/sys/class/net')))
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2)
    print('CONNECTED')
except OSError as e:
    print('connect refused', type(e).__name__)
try:
    socket.getaddrinfo('example.com', 80)
    print('RESOLVED')
except OSError as e:
    print('dns refused', type(e).__name__)
"#;
    let result = run(Language::Python, source, "");
    expect(&result, Status::Ok);
    let out = &result.stdout;
    assert!(out.contains("uid 65534 gid 65534\n"), "{out}");
    assert!(
        out.contains("caps 0000000000000000 0000000000000000 0000000000000000\n"),
        "{out}"
    );
    assert!(out.contains("nnp 1 seccomp 2\n"), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
    assert_eq!(out.matches("refused /").count(), 5, "{out}");
    assert!(out.contains("work fine 0o1777\n"), "{out}");
    assert!(
        out.contains("env [('HOME', '/work'), ('LANG', 'C.UTF-8'), ('PATH', '/usr/local/bin:/usr/bin:/bin'), ('TMPDIR', '/work/.tmp')]\n"),
        "{out}"
    );
    assert!(out.contains("net ['lo']\n"), "{out}");
    assert!(
        out.contains("connect refused") && !out.contains("CONNECTED"),
        "{out}"
    );
    assert!(
        out.contains("dns refused") && !out.contains("RESOLVED"),
        "{out}"
    );
}

/// The seccomp profile (exec-fleet/src/sandbox/seccomp.rs) holds: each line is a call a
/// program might try, and how the kernel answered it.
#[test]
fn system_calls_outside_the_profile_are_refused() {
    let source = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
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

/// What language runtimes do on an ordinary day (threads, child processes, process pools,
/// timers, pipes, sockets on the loopback) works under the profile.
#[test]
fn runtimes_work_under_the_profile() {
    let python = r#"
import multiprocessing, os, select, socket, subprocess, threading, time, tempfile
def square(x):
    return x * x
if __name__ == '__main__':
    t = threading.Thread(target=lambda: None); t.start(); t.join()
    print('subprocess', subprocess.run(['sh', '-c', 'echo $((6*7))'], capture_output=True, text=True).stdout.strip())
    with multiprocessing.Pool(2) as pool:
        print('pool', pool.map(square, range(4)))
    a, b = socket.socketpair(); a.send(b'hi'); print('socketpair', b.recv(2))
    server = socket.create_server(('127.0.0.1', 0)); client = socket.create_connection(server.getsockname())
    conn, _ = server.accept(); client.sendall(b'loop'); print('loopback', conn.recv(4))
    r, w = os.pipe(); os.write(w, b'x'); print('select', len(select.select([r], [], [], 1)[0]))
    with tempfile.TemporaryFile() as f:
        f.write(b'abc'); f.seek(0); print('tempfile', f.read())
    time.sleep(0.01); print('random', len(os.urandom(8)))
"#;
    let javascript = r#"
const { Worker } = require('worker_threads');
const { execFileSync } = require('child_process');
const net = require('net');
console.log('child', execFileSync('sh', ['-c', 'echo 42']).toString().trim());
const w = new Worker('require("worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
w.on('message', (m) => {
  console.log('worker', m);
  const server = net.createServer((s) => s.end('pong')).listen(0, '127.0.0.1', () => {
    net.connect(server.address().port, '127.0.0.1').on('data', (d) => {
      console.log('loopback', d.toString());
      server.close();
    });
  });
});
"#;
    let go = r#"package main

import (
	"fmt"
	"os/exec"
	"sync"
	"time"
)

func main() {
	var wg sync.WaitGroup
	sums := make([]int, 8)
	for i := range sums {
		wg.Add(1)
		go func(i int) { defer wg.Done(); time.Sleep(time.Millisecond); sums[i] = i * i }(i)
	}
	wg.Wait()
	out, err := exec.Command("sh", "-c", "echo 42").Output()
	fmt.Println("goroutines", sums, "child", string(out[:2]), err)
}
"#;
    let rust = r#"use std::process::Command;
use std::thread;
fn main() {
    let handles: Vec<_> = (0..4).map(|i| thread::spawn(move || i * i)).collect();
    let squares: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let out = Command::new("sh").args(["-c", "echo 42"]).output().unwrap();
    println!("threads {:?} child {}", squares, String::from_utf8_lossy(&out.stdout).trim());
}
"#;
    let results = run_all(&[
        (Language::Python, python, ""),
        (Language::Javascript, javascript, ""),
        (Language::Go, go, ""),
        (Language::Rust, rust, ""),
    ]);
    for result in &results {
        expect(result, Status::Ok);
    }
    assert_eq!(
        results[0].stdout,
        "subprocess 42\npool [0, 1, 4, 9]\nsocketpair b'hi'\nloopback b'loop'\nselect 1\ntempfile b'abc'\nrandom 8\n"
    );
    assert_eq!(results[1].stdout, "child 42\nworker 42\nloopback pong\n");
    assert_eq!(
        results[2].stdout,
        "goroutines [0 1 4 9 16 25 36 49] child 42 <nil>\n"
    );
    assert_eq!(results[3].stdout, "threads [0, 1, 4, 9] child 42\n");
}

/// Host processes whose command line mentions `token`.
fn host_processes_with(token: &str) -> Vec<String> {
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
fn container_of(pid: &str) -> Option<String> {
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
fn processes_of_removed_containers() -> Vec<String> {
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
fn containers_labelled(label: &str) -> Vec<String> {
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
                .map(|(language, source, _)| sandbox.run(*language, source, "")),
        ));
        for ((_, _, check), result) in batch.iter().zip(&results) {
            check(result);
        }
        // The next run works normally.
        let after = runtime().block_on(sandbox.run(hello.0, hello.1, ""));
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

#[test]
fn warm_pool_is_used_refilled_and_drained() {
    let sandbox = connect(SandboxConfig {
        pool_size: 2,
        pool_languages: vec![Language::Python, Language::C],
        ..SandboxConfig::default()
    });
    let warm = |language| {
        sandbox
            .warm_counts()
            .get(&language)
            .copied()
            .unwrap_or_default()
    };
    let wait_for = |language, n| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while warm(language) < n {
            assert!(
                Instant::now() < deadline,
                "the {language} pool did not fill to {n}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(Language::Python, 2);
    wait_for(Language::C, 2);
    let label = format!("codebox.sandbox.instance={}", sandbox.instance());
    assert_eq!(containers_labelled(&label).len(), 4);

    // More runs at once than the pool holds: warm ones first, then fresh ones.
    let results = runtime().block_on(join_all((0..4).map(|i| {
        sandbox.run(
            Language::Python,
            "import sys\nprint(sys.stdin.read())\n",
            if i % 2 == 0 { "even" } else { "odd" },
        )
    })));
    for (i, result) in results.iter().enumerate() {
        expect(result, Status::Ok);
        assert_eq!(result.stdout, if i % 2 == 0 { "even\n" } else { "odd\n" });
    }
    wait_for(Language::Python, 2);

    runtime().block_on(sandbox.shutdown());
    assert_eq!(
        containers_labelled(&label),
        Vec::<String>::new(),
        "shutdown drains the pool"
    );
    let after = runtime().block_on(sandbox.run(Language::Python, "print(1)\n", ""));
    expect(&after, Status::InternalError);
}

#[test]
fn leftovers_of_a_crashed_fleet_are_removed_at_start() {
    shared();
    // A container as a fleet process that is gone would have left it.
    let output = Command::new("docker")
        .args([
            "create",
            "--label",
            "codebox.sandbox=1",
            "--label",
            "codebox.sandbox.owner=some-other-boot/1/1",
            "--label",
            "codebox.sandbox.instance=crashed-fleet-test",
            &Language::Python.image(),
        ])
        .output()
        .expect("docker CLI");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sandbox = connect(SandboxConfig {
        pool_size: 0,
        ..SandboxConfig::default()
    });
    assert_eq!(
        containers_labelled("codebox.sandbox.instance=crashed-fleet-test"),
        Vec::<String>::new()
    );
    runtime().block_on(sandbox.shutdown());
}

/// A hostile program and what its result must be.
type Hostile<'a> = (Language, &'a str, Box<dyn Fn(&RunResult)>);

fn check(f: impl Fn(&RunResult) + 'static) -> Box<dyn Fn(&RunResult)> {
    Box::new(f)
}
