//! The supervisor: the trusted program inside every runner container, built as the static
//! binary `codebox-supervisor` and copied into each runner image. It speaks the
//! [`protocol`](crate::protocol) (the module explains what it does and why it cannot be
//! forged) and runs the commands of `codebox_submission::toolchain`.
//!
//! It starts no helper processes: it reads the header and the source itself, collects the
//! compile step's merged output through a pipe, and reads the OOM count from the cgroup.
//! Its own stderr belongs to the program: it writes only END there.

use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ExitStatus, Stdio};

use codebox_submission::toolchain::{Command, Steps, SCRATCH_DIR};
use codebox_submission::Language;

use crate::protocol::{say, Header, FAIL_STATUS, MAX_COMPILE_OUTPUT};
use crate::spec::WORK_DIR;

/// The longest header line read before giving up on it.
const MAX_HEADER: usize = 64;
/// Where the kernel counts the container's OOM kills: cgroup v2, then v1.
const OOM_COUNTERS: [&str; 2] = [
    "/sys/fs/cgroup/memory.events",
    "/sys/fs/cgroup/memory/memory.oom_control",
];
/// What Docker adds to the environment that the sandbox's allowlist does not have.
const ENGINE_ADDED_ENV: [&str; 1] = ["HOSTNAME"];

/// The supervisor failed: a CodeBox fault, reported with FAIL.
#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error("unknown language '{0}'")]
    Language(String),
    #[error("no header on stdin")]
    NoHeader,
    #[error(transparent)]
    Header(#[from] crate::protocol::HeaderError),
    #[error("short source: {got} of {expected} bytes")]
    ShortSource { got: usize, expected: usize },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot make the supervisor non-dumpable")]
    Dumpable,
}

/// Adds what was being done to an I/O error.
trait Doing<T> {
    fn doing(self, what: &'static str) -> Result<T, Fault>;
}

impl<T> Doing<T> for io::Result<T> {
    fn doing(self, what: &'static str) -> Result<T, Fault> {
        self.map_err(|source| Fault::Io { what, source })
    }
}

/// The supervisor's `main`: `codebox-supervisor LANGUAGE`, or `--protocol` to print the
/// protocol version (the runner images' label). Never returns.
pub fn main() -> ! {
    let arg = std::env::args().nth(1).unwrap_or_default();
    if arg == "--protocol" {
        println!("{}", crate::PROTOCOL);
        std::process::exit(0);
    }
    // A panic must not write to stderr, which is the program's: it is a FAIL like any other.
    std::panic::set_hook(Box::new(|info| {
        let _ = stdout().write_all(say::fail(&format!("supervisor panic: {info}")).as_bytes());
        std::process::exit(FAIL_STATUS);
    }));
    match supervise(&arg) {
        Ok((token, status)) => finish(&token, status),
        Err(fault) => {
            let _ = stdout().write_all(say::fail(&fault.to_string()).as_bytes());
            std::process::exit(FAIL_STATUS);
        }
    }
}

/// Writes straight to a descriptor, unbuffered: every marker must be out before the next
/// step starts, and the descriptor stays open for the program.
fn raw(fd: i32) -> ManuallyDrop<File> {
    // SAFETY: 0, 1 and 2 are open for the container's whole life, and ManuallyDrop never
    // closes them.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

fn stdout() -> ManuallyDrop<File> {
    raw(1)
}

fn say_out(words: &str) -> Result<(), Fault> {
    stdout()
        .write_all(words.as_bytes())
        .doing("writing to stdout")
}

/// An exit status as the protocol carries it: the code, or 128+N for signal N.
fn status_of(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => 128,
    }
}

/// Runs the program; returns the run's token and the status END reports.
fn supervise(language: &str) -> Result<(String, i64), Fault> {
    let language = Language::from_id(language).ok_or_else(|| Fault::Language(language.into()))?;
    let toolchain = language.toolchain();
    // The token must stay out of the program's reach: a process of the same user may read a
    // dumpable process's memory (/proc/PID/mem, ptrace). The flag is not inherited over exec,
    // so the program itself is an ordinary process.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(Fault::Dumpable);
    }
    say_out(&say::ready())?;
    let header = read_header()?;
    std::env::set_current_dir(WORK_DIR).doing("entering /work")?;
    let source = read_source(header.source_len)?;
    std::fs::write(toolchain.source_file, source).doing("writing the source")?;
    match std::fs::create_dir(".tmp") {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(e).doing("creating /work/.tmp")
        }
        _ => {}
    }
    say_out(&say::compile())?;
    let status = match toolchain.steps {
        Steps::CompileThenRun { compile, run } => compile_then_run(compile, run)?,
        Steps::CheckThenRun(command) => check_then_run(command)?,
    };
    Ok((header.token, status))
}

/// The header line, read a byte at a time: nothing after it may be taken from stdin.
fn read_header() -> Result<Header, Fault> {
    let mut stdin = raw(0);
    let mut line = Vec::with_capacity(MAX_HEADER);
    let mut byte = [0u8; 1];
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => return Err(Fault::NoHeader),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < MAX_HEADER => line.push(byte[0]),
            Ok(_) => return Err(crate::protocol::HeaderError::Length.into()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).doing("reading the header"),
        }
    }
    Ok(Header::parse(&line)?)
}

/// Exactly `len` bytes of stdin (a read never takes more than it asks for).
fn read_source(len: usize) -> Result<Vec<u8>, Fault> {
    let mut source = Vec::with_capacity(len);
    let got = (&mut *raw(0))
        .take(len as u64)
        .read_to_end(&mut source)
        .doing("reading the source")?;
    if got != len {
        return Err(Fault::ShortSource { got, expected: len });
    }
    Ok(source)
}

/// A command ready to start: the sandbox's environment, minus what the engine added.
fn prepare(command: &Command) -> std::process::Command {
    let mut prepared = std::process::Command::new(command.argv[0]);
    prepared
        .args(&command.argv[1..])
        .envs(command.env.iter().copied());
    for name in ENGINE_ADDED_ENV {
        prepared.env_remove(name);
    }
    prepared
}

fn spawn(command: &mut std::process::Command, what: &'static str) -> Result<Child, Fault> {
    command.spawn().doing(what)
}

fn compile_then_run(compile: Command, run: Command) -> Result<i64, Fault> {
    let (mut output, writer) = io::pipe().doing("making the compile output pipe")?;
    let mut step = prepare(&compile);
    step.stdin(Stdio::null())
        .stdout(writer.try_clone().doing("making the compile output pipe")?)
        .stderr(writer);
    let mut child = spawn(&mut step, "starting the compile step")?;
    // The writers went to the child; reading ends when every copy of them is closed.
    drop(step);
    let (shown, total) = read_capped(&mut output).doing("reading the compile output")?;
    let status = status_of(child.wait().doing("waiting for the compile step")?);
    let _ = std::fs::remove_dir_all(SCRATCH_DIR);
    report_compiled(status, &shown, total)?;
    if status != 0 {
        return Ok(status);
    }
    say_out(&say::run())?;
    let mut program = spawn(&mut prepare(&run), "starting the program")?;
    Ok(status_of(program.wait().doing("waiting for the program")?))
}

fn check_then_run(command: Command) -> Result<i64, Fault> {
    let (mut report, report_writer) = io::pipe().doing("making the report pipe")?;
    let (go_reader, mut go) = io::pipe().doing("making the go pipe")?;
    let inherited = [report_writer.as_raw_fd(), go_reader.as_raw_fd()];
    let mut step = prepare(&command);
    step.args(inherited.map(|fd| fd.to_string()));
    // SAFETY: between fork and exec only fcntl runs, which is async-signal-safe.
    unsafe {
        step.pre_exec(move || {
            for fd in inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = spawn(&mut step, "starting the checker")?;
    drop((report_writer, go_reader));
    let (data, total) = read_capped(&mut report).doing("reading the check report")?;
    // "<status>\n<output>": the status line is not output.
    let newline = data.iter().position(|&b| b == b'\n');
    let reported = newline
        .and_then(|at| std::str::from_utf8(&data[..at]).ok())
        .and_then(|status| status.parse::<i64>().ok());
    let Some((status, at)) = reported.zip(newline) else {
        // The checker died before its report (killed, out of memory): its end is the step's.
        drop(go);
        let status = status_of(child.wait().doing("waiting for the checker")?);
        report_compiled(status.max(1), &[], 0)?;
        return Ok(status);
    };
    let shown = &data[at + 1..];
    report_compiled(status, shown, total - (at as u64 + 1))?;
    if status == 0 {
        say_out(&say::run())?;
        // A checker that died meanwhile has closed its end: its exit status tells.
        let _ = go.write_all(b"\n");
    }
    drop(go);
    Ok(status_of(child.wait().doing("waiting for the program")?))
}

/// Reads to the end, keeping the first [`MAX_COMPILE_OUTPUT`] bytes (plus a status line's
/// worth); returns them and the total.
fn read_capped(reader: &mut impl Read) -> io::Result<(Vec<u8>, u64)> {
    let cap = MAX_COMPILE_OUTPUT + 32;
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok((kept, total)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let room = cap.saturating_sub(kept.len()).min(n);
        kept.extend_from_slice(&buf[..room]);
    }
}

/// COMPILED and the framed output: at most [`MAX_COMPILE_OUTPUT`] bytes of `total`.
fn report_compiled(status: i64, output: &[u8], total: u64) -> Result<(), Fault> {
    let shown = &output[..output.len().min(MAX_COMPILE_OUTPUT)];
    let mut words = say::compiled(status, shown.len(), total.max(shown.len() as u64)).into_bytes();
    words.extend_from_slice(shown);
    stdout().write_all(&words).doing("writing to stdout")
}

/// The container's OOM kills so far, if the cgroup tells.
fn count_ooms() -> Option<u64> {
    let counters = OOM_COUNTERS
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())?;
    counters.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

/// END on both streams, then exit with the status.
fn finish(token: &str, status: i64) -> ! {
    let ooms = count_ooms();
    let _ = stdout().write_all(say::end_stdout(token, status, ooms).as_bytes());
    let _ = raw(2).write_all(say::end_stderr(token).as_bytes());
    std::process::exit(status.clamp(0, 255) as i32)
}
