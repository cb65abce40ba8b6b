//! The fleet's reader of the protocol: one run's output, fed in whatever chunks the
//! container's streams deliver, split into markers, compile output and the program's bytes.

use super::capture::{Capture, MarkerScan};
use super::{
    End, Event, Mode, ProtocolError, Request, MAX_ARTIFACT_BYTES, MAX_COMPILE_OUTPUT, MAX_LINE,
    PREFIX,
};

/// A complete marker line, and the chunk's bytes after its newline.
type LineAndRest<'a> = (Vec<u8>, &'a [u8]);

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
    /// A build compiled: its program comes next.
    AwaitArtifact,
    /// Reading the framed program.
    Artifact {
        remaining: usize,
    },
    Running,
    /// END and the token seen on stdout: reading "<status> <ooms>\n".
    EndLine,
    /// After a failed compile step: only END may follow.
    AwaitEnd,
    /// After END: whatever the program left behind may still write; it is not the run's.
    Ended,
    /// After FAIL: the supervisor says nothing more.
    Failed,
}

impl Stage {
    /// What the session waits for in this stage, for error messages.
    fn waiting_for(self) -> &'static str {
        match self {
            Stage::AwaitReady => "waiting for READY",
            Stage::AwaitCompile => "waiting for COMPILE",
            Stage::Compiling => "waiting for COMPILED",
            Stage::CompileOutput { .. } => "reading compile output",
            Stage::AwaitRun => "waiting for RUN",
            Stage::AwaitArtifact => "waiting for ARTIFACT",
            Stage::Artifact { .. } => "reading the built program",
            Stage::Running => "running",
            Stage::EndLine => "reading END",
            Stage::AwaitEnd => "waiting for END",
            Stage::Ended => "ended",
            Stage::Failed => "failed",
        }
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
    token: String,
    /// What was asked of the supervisor (a warm container's session learns it late).
    mode: Mode,
    stage: Stage,
    line: Vec<u8>,
    compile: Option<Compiled>,
    compile_buf: Vec<u8>,
    compile_total: u64,
    artifact_buf: Vec<u8>,
    artifact: Option<Vec<u8>>,
    failure: Option<String>,
    program_started: bool,
    stdout: Capture,
    stderr: Capture,
    stdout_end: MarkerScan,
    stderr_end: MarkerScan,
    /// END as stdout reported it.
    reported: Option<End>,
    stderr_ended: bool,
}

impl Session {
    /// A session for a container whose supervisor has not said anything yet; `token` is the
    /// run's (see [`super::new_token`]), sent with the request by [`Session::request`]. It
    /// expects a run until told otherwise.
    pub fn new(output_cap: usize, token: String) -> Self {
        let prefix = PREFIX;
        Session {
            stdout_end: MarkerScan::new(format!("{prefix}END {token} ").into_bytes()),
            stderr_end: MarkerScan::new(format!("{prefix}END {token}\n").into_bytes()),
            token,
            mode: Mode::Run,
            stage: Stage::AwaitReady,
            line: Vec::new(),
            compile: None,
            compile_buf: Vec::new(),
            compile_total: 0,
            artifact_buf: Vec::new(),
            artifact: None,
            failure: None,
            program_started: false,
            stdout: Capture::new(output_cap),
            stderr: Capture::new(output_cap),
            reported: None,
            stderr_ended: false,
        }
    }

    /// The run's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The bytes to write to the container's stdin for `request`; from now on the session
    /// expects what the request's mode brings (a build's program, or the program's run).
    pub fn request(&mut self, request: &Request) -> Vec<u8> {
        self.mode = request.mode;
        request.encode(&self.token)
    }

    /// The program a build handed back, once all of it arrived.
    pub fn artifact(&self) -> Option<&[u8]> {
        self.artifact.as_deref()
    }

    /// Takes the program a build handed back.
    pub(crate) fn take_artifact(&mut self) -> Option<Vec<u8>> {
        self.artifact.take()
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

    /// The supervisor's END, once it arrived on both streams.
    pub fn end(&self) -> Option<End> {
        self.reported.filter(|_| self.stderr_ended)
    }

    /// Whether the supervisor's END counted OOM kills in the container (stderr's END or not).
    pub fn oom_reported(&self) -> bool {
        self.reported
            .is_some_and(|end| end.ooms.is_some_and(|kills| kills > 0))
    }

    /// The program's stdout.
    pub fn stdout(&self) -> &Capture {
        &self.stdout
    }

    /// The program's stderr.
    pub fn stderr(&self) -> &Capture {
        &self.stderr
    }

    /// The streams ended (or the fleet stopped reading) without END: bytes held back in
    /// case they began END were the program's.
    pub fn close_streams(&mut self) {
        if self.stage == Stage::Running {
            let held = self.stdout_end.take_held();
            self.stdout.push(&held);
        }
        if !self.stderr_ended {
            let held = self.stderr_end.take_held();
            self.program_stderr(&held, &mut Vec::new());
        }
    }

    /// Feeds bytes from the container's stdout.
    pub fn on_stdout(&mut self, mut data: &[u8]) -> Result<Vec<Event>, ProtocolError> {
        let mut events = Vec::new();
        while !data.is_empty() {
            match self.stage {
                Stage::Running => {
                    let scanned = self.stdout_end.feed(data);
                    if self.stdout.push(&scanned.before) {
                        events.push(Event::OutputExceeded);
                    }
                    if let Some(after) = scanned.after {
                        self.stage = Stage::EndLine;
                        self.on_end_line(&after, &mut events)?;
                    }
                    break;
                }
                Stage::EndLine => {
                    self.on_end_line(data, &mut events)?;
                    break;
                }
                Stage::Ended => break,
                Stage::Failed => return Err(ProtocolError::AfterLastWord(data.len())),
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
                Stage::Artifact { remaining } => {
                    let take = remaining.min(data.len());
                    self.artifact_buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.stage = Stage::Artifact {
                        remaining: remaining - take,
                    };
                    if remaining == take {
                        self.end_artifact();
                    }
                }
                _ => match self.read_line(data)? {
                    Some((line, rest)) => {
                        data = rest;
                        self.on_line(&line, &mut events)?;
                    }
                    None => break,
                },
            }
        }
        Ok(events)
    }

    /// Feeds bytes from the container's stderr (the program's, up to END).
    pub fn on_stderr(&mut self, data: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        if self.stderr_ended || data.is_empty() {
            return events;
        }
        let scanned = self.stderr_end.feed(data);
        self.program_stderr(&scanned.before, &mut events);
        if scanned.after.is_some() {
            self.stderr_ended = true;
            self.check_ended(&mut events);
        }
        events
    }

    fn program_stderr(&mut self, data: &[u8], events: &mut Vec<Event>) {
        if data.is_empty() {
            return;
        }
        if !self.program_started {
            self.program_started = true;
            events.push(Event::ProgramStarted);
        }
        if self.stderr.push(data) {
            events.push(Event::OutputExceeded);
        }
    }

    /// Collects a marker line; the line and what follows it once the newline is in.
    fn read_line<'a>(&mut self, data: &'a [u8]) -> Result<Option<LineAndRest<'a>>, ProtocolError> {
        let newline = data.iter().position(|&b| b == b'\n');
        let end = newline.unwrap_or(data.len());
        if self.line.len() + end > MAX_LINE {
            return Err(ProtocolError::LineTooLong(
                String::from_utf8_lossy(&self.line[..self.line.len().min(80)]).into_owned(),
            ));
        }
        self.line.extend_from_slice(&data[..end]);
        Ok(newline.map(|i| (std::mem::take(&mut self.line), &data[i + 1..])))
    }

    /// The rest of an END line after its token.
    fn on_end_line(&mut self, data: &[u8], events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        if let Some((line, _leftovers)) = self.read_line(data)? {
            let fields = String::from_utf8_lossy(&line);
            let end = End::parse(&fields).ok_or_else(|| ProtocolError::Malformed {
                word: "END",
                line: fields.into_owned(),
            })?;
            self.reported = Some(end);
            self.stage = Stage::Ended;
            self.check_ended(events);
        }
        Ok(())
    }

    fn check_ended(&mut self, events: &mut Vec<Event>) {
        if let Some(end) = self.end() {
            events.push(Event::Ended(end));
        }
    }

    fn end_compile(&mut self, status: i64, events: &mut Vec<Event>) {
        self.compile = Some(Compiled {
            status,
            output: std::mem::take(&mut self.compile_buf),
            total: self.compile_total,
        });
        self.stage = match (status, self.mode) {
            (0, Mode::Build) => Stage::AwaitArtifact,
            (0, Mode::Run | Mode::Built) => Stage::AwaitRun,
            _ => Stage::AwaitEnd,
        };
        events.push(Event::Compiled { status });
    }

    fn end_artifact(&mut self) {
        self.artifact = Some(std::mem::take(&mut self.artifact_buf));
        // Only END may follow, as after a failed compile step.
        self.stage = Stage::AwaitEnd;
    }

    fn on_line(&mut self, line: &[u8], events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        let text = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_prefix(PREFIX))
            .ok_or_else(|| {
                ProtocolError::NotAMarker(
                    String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
                )
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
                    .ok_or_else(|| ProtocolError::Malformed {
                        word: "COMPILED",
                        line: text.to_string(),
                    })?;
                self.compile_total = total;
                self.stage = Stage::CompileOutput {
                    status,
                    remaining: shown,
                };
                if shown == 0 {
                    self.end_compile(status, events);
                }
            }
            (Stage::AwaitArtifact, "ARTIFACT") => {
                let size = rest
                    .parse::<usize>()
                    .ok()
                    .filter(|&size| size <= MAX_ARTIFACT_BYTES)
                    .ok_or_else(|| ProtocolError::Malformed {
                        word: "ARTIFACT",
                        line: text.to_string(),
                    })?;
                self.artifact_buf.reserve_exact(size);
                self.stage = Stage::Artifact { remaining: size };
                if size == 0 {
                    self.end_artifact();
                }
            }
            (Stage::AwaitRun, "RUN") => {
                self.stage = Stage::Running;
                if !self.program_started {
                    self.program_started = true;
                    events.push(Event::ProgramStarted);
                }
            }
            (Stage::AwaitEnd, "END") => {
                let end = rest
                    .split_once(' ')
                    .filter(|(token, _)| *token == self.token)
                    .and_then(|(_, fields)| End::parse(fields))
                    .ok_or_else(|| ProtocolError::Malformed {
                        word: "END",
                        line: text.to_string(),
                    })?;
                self.reported = Some(end);
                self.stage = Stage::Ended;
                self.check_ended(events);
            }
            (
                Stage::AwaitReady
                | Stage::AwaitCompile
                | Stage::Compiling
                | Stage::AwaitRun
                | Stage::AwaitArtifact,
                "FAIL",
            ) => {
                self.stage = Stage::Failed;
                let message = if rest.is_empty() {
                    "unspecified failure"
                } else {
                    rest
                };
                self.failure = Some(message.to_string());
                events.push(Event::SupervisorFailed(message.to_string()));
            }
            (stage, _) => {
                return Err(ProtocolError::Unexpected {
                    marker: text.to_string(),
                    stage: stage.waiting_for(),
                });
            }
        }
        Ok(())
    }
}
