//! The supervisor: the trusted program inside every runner container, built as the static
//! binary `codebox-supervisor` and copied into each runner image. It speaks the
//! [`protocol`](crate::protocol) (the module explains what it does and why it cannot be
//! forged) and runs the commands of `codebox_submission::toolchain`.
//!
//! It starts no helper processes: it reads the request and writes the project itself,
//! collects the compile step's merged output through a pipe, and reads the OOM count from
//! the cgroup. Its own stderr belongs to the program: it writes only END there.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};

use codebox_submission::toolchain::{Command, Compile, Steps, SCRATCH_DIR};
use codebox_submission::Language;

use crate::protocol::{
    read_request, say, FileHeader, Mode, RequestError, FAIL_STATUS, MAX_ARTIFACT_BYTES,
    MAX_COMPILE_OUTPUT,
};
use crate::spec::WORK_DIR;
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
    #[error("refused the request: {0}")]
    Request(#[from] RequestError),
    #[error("sent {sent} of the built program's {size} bytes")]
    ShortProgram { sent: u64, size: u64 },
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

/// Does what the request asks; returns the run's token and the status END reports.
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
    std::env::set_current_dir(WORK_DIR).doing("entering /work")?;
    let mut names = Vec::new();
    let header = read_request(&mut *raw(0), |file, content| {
        write_file(file, content)
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", file.name)))?;
        names.push(file.name.clone());
        Ok(())
    })?;
    match std::fs::create_dir(".tmp") {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(e).doing("creating /work/.tmp")
        }
        _ => {}
    }
    say_out(&say::compile())?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let status = match (toolchain.steps, header.mode) {
        // The build's program is in place: nothing to compile.
        (Steps::CompileThenRun { run, .. }, Mode::Built) => {
            report_compiled(0, &[], 0)?;
            run_program(run)?
        }
        (Steps::CompileThenRun { compile, run }, Mode::Run) => {
            let (status, output, total) = compile_step(&compile, &names)?;
            report_compiled(status, &output, total)?;
            if status != 0 {
                return Ok((header.token, status));
            }
            run_program(run)?
        }
        (Steps::CompileThenRun { compile, .. }, Mode::Build) => {
            build(&compile, &names, toolchain.artifact)?
        }
        (Steps::CheckThenRun(command), mode) => check_then_run(command, mode != Mode::Build)?,
    };
    Ok((header.token, status))
}

/// Writes one file of the request under /work: its folders made as needed, the file new
/// (never one that exists, never through a symlink). Names are checked already; this holds
/// whatever they say.
fn write_file(file: &FileHeader, content: &mut dyn Read) -> io::Result<()> {
    let path = Path::new(&file.name);
    let mut folder = PathBuf::new();
    for part in path.parent().into_iter().flat_map(Path::components) {
        folder.push(part);
        match std::fs::create_dir(&folder) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        if !std::fs::symlink_metadata(&folder)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is not a folder", folder.display()),
            ));
        }
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if file.executable { 0o755 } else { 0o644 })
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    io::copy(content, &mut out)?;
    Ok(())
}

/// A command ready to start: the sandbox's environment with `env`, minus what the engine
/// added.
fn prepare<S: AsRef<OsStr>>(argv: &[S], env: &[(&str, &str)]) -> std::process::Command {
    let mut prepared = std::process::Command::new(&argv[0]);
    prepared.args(&argv[1..]).envs(env.iter().copied());
    for name in ENGINE_ADDED_ENV {
        prepared.env_remove(name);
    }
    prepared
}

fn spawn(command: &mut std::process::Command, what: &'static str) -> Result<Child, Fault> {
    command.spawn().doing(what)
}

/// Runs the compile step; returns its status, its output (as much as is kept) and the
/// output's full size.
fn compile_step(compile: &Compile, names: &[&str]) -> Result<(i64, Vec<u8>, u64), Fault> {
    let argv = compile.argv(names);
    let (mut output, writer) = io::pipe().doing("making the compile output pipe")?;
    let mut step = prepare(&argv, compile.command.env);
    step.stdin(Stdio::null())
        .stdout(writer.try_clone().doing("making the compile output pipe")?)
        .stderr(writer);
    let mut child = spawn(&mut step, "starting the compile step")?;
    // The writers went to the child; reading ends when every copy of them is closed.
    drop(step);
    let (shown, total) = read_capped(&mut output).doing("reading the compile output")?;
    let status = status_of(child.wait().doing("waiting for the compile step")?);
    let _ = std::fs::remove_dir_all(SCRATCH_DIR);
    Ok((status, shown, total))
}

/// RUN, then the program; returns its status.
fn run_program(run: Command) -> Result<i64, Fault> {
    say_out(&say::run())?;
    let mut program = spawn(&mut prepare(run.argv, run.env), "starting the program")?;
    Ok(status_of(program.wait().doing("waiting for the program")?))
}

/// A build: the compile step, then its program handed back (ARTIFACT); returns the status
/// END reports (the compile step's). A program over [`MAX_ARTIFACT_BYTES`] fails the build
/// as the compile step would, with a note in its output.
fn build(compile: &Compile, names: &[&str], artifact: Option<&str>) -> Result<i64, Fault> {
    let (mut status, mut output, mut total) = compile_step(compile, names)?;
    let mut program = None;
    if let (0, Some(name)) = (status, artifact) {
        let file = File::open(name).doing("opening the built program")?;
        let size = file.metadata().doing("reading the built program")?.len();
        if size > MAX_ARTIFACT_BYTES as u64 {
            let note = format!(
                "[the built program is {size} bytes; a build hands back at most {MAX_ARTIFACT_BYTES}]\n"
            );
            total += note.len() as u64;
            output.splice(0..0, note.into_bytes());
            status = 1;
        } else {
            program = Some((file, size));
        }
    }
    report_compiled(status, &output, total)?;
    if status == 0 {
        hand_back(program)?;
    }
    Ok(status)
}

/// ARTIFACT and the program's bytes (none for a language whose sources are the program).
/// Past the ARTIFACT line a failure cannot be said: the supervisor exits without END, and
/// the fleet, short of bytes or of END, fails the build.
fn hand_back(program: Option<(File, u64)>) -> Result<(), Fault> {
    let Some((file, size)) = program else {
        return say_out(&say::artifact(0));
    };
    say_out(&say::artifact(size))?;
    let sent = io::copy(&mut file.take(size), &mut *stdout()).doing("sending the built program")?;
    if sent != size {
        return Err(Fault::ShortProgram { sent, size });
    }
    Ok(())
}

/// The check and the program in one process (python); `go_on`: run the program after a
/// clean check, else (a build) hand back nothing and let the checker end.
fn check_then_run(command: Command, go_on: bool) -> Result<i64, Fault> {
    let (mut report, report_writer) = io::pipe().doing("making the report pipe")?;
    let (go_reader, mut go) = io::pipe().doing("making the go pipe")?;
    let inherited = [report_writer.as_raw_fd(), go_reader.as_raw_fd()];
    let mut step = prepare(command.argv, command.env);
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
    match (status, go_on) {
        (0, true) => {
            say_out(&say::run())?;
            // A checker that died meanwhile has closed its end: its exit status tells.
            let _ = go.write_all(b"\n");
        }
        // A build: the sources are the program; closing `go` ends the checker.
        (0, false) => say_out(&say::artifact(0))?,
        _ => {}
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
