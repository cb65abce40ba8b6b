//! The sandbox against the real Docker engine and runner images.
//!
//! Needs a running engine (scripts/docker.sh) and the runner images (scripts/images.sh);
//! without them every test fails and says so. Independent runs go in parallel, a few at a time.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use codebox_exec_fleet::sandbox::SandboxConfig;
use codebox_submission::{Language, Status};
use futures_util::future::join_all;

use common::*;

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
    // Unprivileged: a run user id of its own (not root, not a host account), group nogroup.
    let uid: u32 = out
        .split_once("uid ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|uid| uid.parse().ok())
        .unwrap_or_else(|| panic!("no uid line: {out}"));
    assert!(codebox_sandbox::spec::RUN_UIDS.contains(&uid), "{out}");
    assert!(out.contains(&format!("uid {uid} gid 65534\n")), "{out}");
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
        let source = "import sys\nprint(sys.stdin.read())\n";
        run_source(
            &sandbox,
            Language::Python,
            source,
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
    let after = runtime().block_on(run_source(&sandbox, Language::Python, "print(1)\n", ""));
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
