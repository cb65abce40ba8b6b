//! The fleet's side of the supervisor protocol, without I/O.
//!
//! Every runner image runs `runners/codebox-run LANGUAGE` (the trusted supervisor) as the
//! child of the container's init (tini). Protocol 1, the one definition on the Rust side
//! (the script's header says the same; change both together and bump [`PROTOCOL`]):
//!
//! ```text
//! stdin, fleet -> supervisor:
//!   "<L>\n"        L = source length in bytes, decimal ASCII, at most 8 digits
//!   <L bytes>      the source; the supervisor writes it to /work/main.<ext>
//!   <rest>         the program's stdin, up to EOF (the fleet closes its end)
//!
//! stdout, supervisor -> fleet, ASCII lines starting "CODEBOX/1 ", in this order:
//!   "CODEBOX/1 READY\n"                          started, about to read stdin
//!   "CODEBOX/1 COMPILE\n"                        source in place, compile step starts
//!                                                (a syntax check for python/javascript)
//!   "CODEBOX/1 COMPILED <status> <n> <total>\n"  it ended with exit status <status>
//!   <n bytes>                                    (128+N: signal N); its merged stdout+stderr
//!                                                was <total> bytes, the first n (<= 64 KiB)
//!                                                follow, length-framed
//!   "CODEBOX/1 RUN\n"                            only after status 0; every later stdout
//!                                                byte is the program's
//!   before RUN, instead: "CODEBOX/1 FAIL <message>\n", exit 125 (a CodeBox fault)
//!   a failed compile step ends the container right after COMPILED
//!
//! stderr: the program's alone; the supervisor never writes there.
//! ```
//!
//! Why it cannot be forged: everything the supervisor says is on stdout and written before
//! the program exists (it is exec'd after RUN), and this parser reads markers only up to RUN.
//! The compiler sees hostile input, so its output travels length-framed. Docker delivers
//! stdout and stderr as separate pipes with no relative order, so nothing here depends on
//! interleaving: a stderr byte can only come from the program, so it means the program has
//! started even if the RUN line is still in flight on stdout.

use thiserror::Error;

/// The protocol version, as in the markers and in the runner images' `codebox.protocol` label.
pub const PROTOCOL: &str = "1";

const PREFIX: &[u8] = b"CODEBOX/1 ";
/// The longest marker line the supervisor writes (FAIL messages are short ASCII).
const MAX_LINE: usize = 512;
/// The supervisor's cap on compile output shown.
pub const MAX_COMPILE_OUTPUT: usize = 64 * 1024;

/// What the fleet writes to the container's stdin.
pub fn stdin_payload(source: &[u8], stdin: &[u8]) -> Vec<u8> {
    let header = format!("{}\n", source.len());
    let mut payload = Vec::with_capacity(header.len() + source.len() + stdin.len());
    payload.extend_from_slice(header.as_bytes());
    payload.extend_from_slice(source);
    payload.extend_from_slice(stdin);
    payload
}

/// The supervisor broke the protocol: a CodeBox fault (or a mismatched runner image).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("runner protocol violation: {0}")]
pub struct ProtocolError(pub String);

/// Something the fleet must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The supervisor is up and waits for its program.
    Ready,
    /// The compile step started.
    CompileStarted,
    /// The compile step ended with this exit status.
    Compiled { status: i64 },
    /// The program started (RUN, or its first stderr byte): the run clock starts.
    ProgramStarted,
    /// The supervisor reported its own failure.
    SupervisorFailed(String),
    /// A stream passed the output cap: kill.
    OutputExceeded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitReady,
    AwaitCompile,
    Compiling,
    /// Reading the framed compile output.
    CompileOutput {
        status: i64,
        remaining: usize,
    },
    AwaitRun,
    Running,
    /// After FAIL or a failed compile: the supervisor says nothing more.
    Done,
}

/// One output stream of the program, kept up to a cap.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    limit: usize,
    bytes: Vec<u8>,
    total: u64,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Capture {
            limit,
            bytes: Vec::new(),
            total: 0,
        }
    }

    /// Keeps what fits; true when this push is the one that passed the cap.
    fn push(&mut self, data: &[u8]) -> bool {
        let was_over = self.exceeded();
        self.total += data.len() as u64;
        let room = self.limit.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..room.min(data.len())]);
        !was_over && self.exceeded()
    }

    /// More than `limit` bytes arrived.
    pub fn exceeded(&self) -> bool {
        self.total > self.limit as u64
    }

    /// The bytes kept (at most the cap).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes seen, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The compile step as the supervisor reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// Exit status (128+N for signal N).
    pub status: i64,
    /// Its merged output, as much as the supervisor sent.
    pub output: Vec<u8>,
    /// The full size of its output.
    pub total: u64,
}

/// The state of one run's output, fed with what the container's streams deliver.
#[derive(Debug)]
pub struct Session {
    stage: Stage,
    line: Vec<u8>,
    compile: Option<Compiled>,
    compile_buf: Vec<u8>,
    compile_total: u64,
    failure: Option<String>,
    program_started: bool,
    stdout: Capture,
    stderr: Capture,
}

impl Session {
    /// A session for a container whose supervisor has not said anything yet.
    pub fn new(output_cap: usize) -> Self {
        Session {
            stage: Stage::AwaitReady,
            line: Vec::new(),
            compile: None,
            compile_buf: Vec::new(),
            compile_total: 0,
            failure: None,
            program_started: false,
            stdout: Capture::new(output_cap),
            stderr: Capture::new(output_cap),
        }
    }

    /// Whether READY has been seen.
    pub fn is_ready(&self) -> bool {
        self.stage != Stage::AwaitReady
    }

    /// Whether the compile step started.
    pub fn compile_started(&self) -> bool {
        !matches!(self.stage, Stage::AwaitReady | Stage::AwaitCompile) || self.program_started
    }

    /// Whether the program started.
    pub fn program_started(&self) -> bool {
        self.program_started
    }

    /// The compile step's report, once complete.
    pub fn compiled(&self) -> Option<&Compiled> {
        self.compile.as_ref()
    }

    /// The supervisor's FAIL message.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The program's stdout.
    pub fn stdout(&self) -> &Capture {
        &self.stdout
    }

    /// The program's stderr.
    pub fn stderr(&self) -> &Capture {
        &self.stderr
    }

    /// Feeds bytes from the container's stdout.
    pub fn on_stdout(&mut self, mut data: &[u8]) -> Result<Vec<Event>, ProtocolError> {
        let mut events = Vec::new();
        while !data.is_empty() {
            match self.stage {
                Stage::Running => {
                    if self.stdout.push(data) {
                        events.push(Event::OutputExceeded);
                    }
                    break;
                }
                Stage::Done => {
                    return Err(ProtocolError(format!(
                        "{} bytes on stdout after the supervisor's last word",
                        data.len()
                    )))
                }
                Stage::CompileOutput { status, remaining } => {
                    let take = remaining.min(data.len());
                    self.compile_buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let remaining = remaining - take;
                    self.stage = Stage::CompileOutput { status, remaining };
                    if remaining == 0 {
                        self.end_compile(status, &mut events);
                    }
                }
                _ => {
                    let newline = data.iter().position(|&b| b == b'\n');
                    let end = newline.unwrap_or(data.len());
                    if self.line.len() + end > MAX_LINE {
                        return Err(ProtocolError(format!(
                            "a marker line longer than {MAX_LINE} bytes: {:?}",
                            String::from_utf8_lossy(&self.line[..self.line.len().min(80)])
                        )));
                    }
                    self.line.extend_from_slice(&data[..end]);
                    match newline {
                        Some(i) => {
                            data = &data[i + 1..];
                            let line = std::mem::take(&mut self.line);
                            self.on_line(&line, &mut events)?;
                        }
                        None => break,
                    }
                }
            }
        }
        Ok(events)
    }

    /// Feeds bytes from the container's stderr (only ever the program's).
    pub fn on_stderr(&mut self, data: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        if data.is_empty() {
            return events;
        }
        if !self.program_started {
            self.program_started = true;
            events.push(Event::ProgramStarted);
        }
        if self.stderr.push(data) {
            events.push(Event::OutputExceeded);
        }
        events
    }

    fn end_compile(&mut self, status: i64, events: &mut Vec<Event>) {
        self.compile = Some(Compiled {
            status,
            output: std::mem::take(&mut self.compile_buf),
            total: self.compile_total,
        });
        self.stage = if status == 0 {
            Stage::AwaitRun
        } else {
            Stage::Done
        };
        events.push(Event::Compiled { status });
    }

    fn on_line(&mut self, line: &[u8], events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        let text = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_prefix(std::str::from_utf8(PREFIX).unwrap_or_default()))
            .ok_or_else(|| {
                ProtocolError(format!(
                    "expected a CODEBOX/{PROTOCOL} marker, got {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                ))
            })?;
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        match (self.stage, word) {
            (Stage::AwaitReady, "READY") => {
                self.stage = Stage::AwaitCompile;
                events.push(Event::Ready);
            }
            (Stage::AwaitCompile, "COMPILE") => {
                self.stage = Stage::Compiling;
                events.push(Event::CompileStarted);
            }
            (Stage::Compiling, "COMPILED") => {
                let numbers: Vec<&str> = rest.split(' ').collect();
                let parsed = match numbers.as_slice() {
                    [status, shown, total] => status
                        .parse::<i64>()
                        .ok()
                        .zip(shown.parse::<usize>().ok())
                        .zip(total.parse::<u64>().ok()),
                    _ => None,
                };
                let ((status, shown), total) = parsed
                    .filter(|((_, shown), total)| {
                        *shown <= MAX_COMPILE_OUTPUT && *shown as u64 <= *total
                    })
                    .ok_or_else(|| ProtocolError(format!("malformed COMPILED marker: {text:?}")))?;
                self.compile_total = total;
                self.stage = Stage::CompileOutput {
                    status,
                    remaining: shown,
                };
                if shown == 0 {
                    self.end_compile(status, events);
                }
            }
            (Stage::AwaitRun, "RUN") => {
                self.stage = Stage::Running;
                if !self.program_started {
                    self.program_started = true;
                    events.push(Event::ProgramStarted);
                }
            }
            (
                Stage::AwaitReady | Stage::AwaitCompile | Stage::Compiling | Stage::AwaitRun,
                "FAIL",
            ) => {
                self.stage = Stage::Done;
                let message = if rest.is_empty() {
                    "unspecified failure"
                } else {
                    rest
                };
                self.failure = Some(message.to_string());
                events.push(Event::SupervisorFailed(message.to_string()));
            }
            (stage, _) => {
                return Err(ProtocolError(format!(
                    "unexpected marker {text:?} while in {stage:?}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(session: &mut Session, stdout: &[u8]) -> Vec<Event> {
        session.on_stdout(stdout).expect("valid protocol")
    }

    const OK_RUN: &[u8] = b"CODEBOX/1 READY\nCODEBOX/1 COMPILE\nCODEBOX/1 COMPILED 0 5 5\nwarn\nCODEBOX/1 RUN\nhello\n";

    #[test]
    fn payload_is_length_prefixed() {
        assert_eq!(stdin_payload(b"print(1)", b"in\n"), b"8\nprint(1)in\n");
        assert_eq!(stdin_payload(b"", b""), b"0\n");
    }

    #[test]
    fn a_whole_run_in_one_chunk() {
        let mut s = Session::new(1024);
        let events = feed_all(&mut s, OK_RUN);
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::CompileStarted,
                Event::Compiled { status: 0 },
                Event::ProgramStarted
            ]
        );
        assert_eq!(s.compiled().unwrap().output, b"warn\n");
        assert_eq!(s.stdout().bytes(), b"hello\n");
        assert!(s.program_started());
    }

    #[test]
    fn any_chunking_gives_the_same_result() {
        for split in 1..OK_RUN.len() {
            let mut s = Session::new(1024);
            let mut events = feed_all(&mut s, &OK_RUN[..split]);
            events.extend(feed_all(&mut s, &OK_RUN[split..]));
            assert_eq!(events.len(), 4, "split at {split}");
            assert_eq!(s.compiled().unwrap().output, b"warn\n", "split at {split}");
            assert_eq!(s.stdout().bytes(), b"hello\n", "split at {split}");
        }
        let mut s = Session::new(1024);
        for byte in OK_RUN {
            feed_all(&mut s, std::slice::from_ref(byte));
        }
        assert_eq!(s.stdout().bytes(), b"hello\n");
    }

    #[test]
    fn program_output_that_looks_like_markers_is_just_output() {
        let mut s = Session::new(1024);
        let mut stream =
            b"CODEBOX/1 READY\nCODEBOX/1 COMPILE\nCODEBOX/1 COMPILED 0 0 0\nCODEBOX/1 RUN\n"
                .to_vec();
        stream.extend_from_slice(b"CODEBOX/1 FAIL x\nCODEBOX/1 COMPILED 1 0 0\n");
        feed_all(&mut s, &stream);
        assert_eq!(s.failure(), None);
        assert_eq!(s.compiled().unwrap().status, 0);
        assert_eq!(
            s.stdout().bytes(),
            b"CODEBOX/1 FAIL x\nCODEBOX/1 COMPILED 1 0 0\n"
        );
    }

    #[test]
    fn compile_output_is_framed_and_can_hold_marker_lookalikes() {
        let output = b"main.c:1: error\nCODEBOX/1 RUN\n";
        let mut stream = format!(
            "CODEBOX/1 READY\nCODEBOX/1 COMPILE\nCODEBOX/1 COMPILED 1 {} 900\n",
            output.len()
        )
        .into_bytes();
        stream.extend_from_slice(output);
        let mut s = Session::new(1024);
        let events = feed_all(&mut s, &stream);
        assert_eq!(events.last(), Some(&Event::Compiled { status: 1 }));
        let compiled = s.compiled().unwrap();
        assert_eq!(compiled.output, output);
        assert_eq!(compiled.total, 900);
        assert!(!s.program_started());
        assert!(
            s.on_stdout(b"x").is_err(),
            "nothing may follow a failed compile"
        );
    }

    #[test]
    fn supervisor_failure_is_reported() {
        let mut s = Session::new(1024);
        let events = feed_all(
            &mut s,
            b"CODEBOX/1 READY\nCODEBOX/1 FAIL short source: 3 of 9 bytes\n",
        );
        assert_eq!(
            events.last(),
            Some(&Event::SupervisorFailed(
                "short source: 3 of 9 bytes".into()
            ))
        );
        assert_eq!(s.failure(), Some("short source: 3 of 9 bytes"));
    }

    #[test]
    fn rejects_garbage_and_out_of_order_markers() {
        assert!(Session::new(8).on_stdout(b"hello\n").is_err());
        assert!(Session::new(8).on_stdout(b"CODEBOX/1 RUN\n").is_err());
        assert!(Session::new(8)
            .on_stdout(b"CODEBOX/1 READY\nCODEBOX/1 RUN\n")
            .is_err());
        assert!(Session::new(8)
            .on_stdout(b"CODEBOX/1 READY\nCODEBOX/1 COMPILE\nCODEBOX/1 COMPILED x 0 0\n")
            .is_err());
        let huge = format!(
            "CODEBOX/1 READY\nCODEBOX/1 COMPILE\nCODEBOX/1 COMPILED 1 {} 99999999\n",
            MAX_COMPILE_OUTPUT + 1
        );
        assert!(Session::new(8).on_stdout(huge.as_bytes()).is_err());
        assert!(Session::new(8).on_stdout(&[b'C'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn output_cap_fires_once_per_stream_and_keeps_the_cap() {
        let mut s = Session::new(4);
        feed_all(
            &mut s,
            b"CODEBOX/1 READY\nCODEBOX/1 COMPILE\nCODEBOX/1 COMPILED 0 0 0\nCODEBOX/1 RUN\n",
        );
        assert_eq!(feed_all(&mut s, b"abcd"), vec![], "exactly the cap is fine");
        assert_eq!(feed_all(&mut s, b"e"), vec![Event::OutputExceeded]);
        assert_eq!(feed_all(&mut s, b"fgh"), vec![]);
        assert_eq!(s.stdout().bytes(), b"abcd");
        assert!(s.stdout().exceeded());
        assert_eq!(s.stdout().total(), 8);
        assert_eq!(s.on_stderr(b"12345"), vec![Event::OutputExceeded]);
        assert_eq!(s.stderr().bytes(), b"1234");
    }

    #[test]
    fn stderr_means_the_program_started_even_before_run_arrives() {
        let mut s = Session::new(64);
        feed_all(
            &mut s,
            b"CODEBOX/1 READY\nCODEBOX/1 COMPILE\nCODEBOX/1 COMPILED 0 0 0\n",
        );
        assert_eq!(s.on_stderr(b"oops"), vec![Event::ProgramStarted]);
        assert_eq!(
            feed_all(&mut s, b"CODEBOX/1 RUN\nout"),
            vec![],
            "no second start"
        );
        assert_eq!(s.stdout().bytes(), b"out");
        assert_eq!(s.stderr().bytes(), b"oops");
    }
}
