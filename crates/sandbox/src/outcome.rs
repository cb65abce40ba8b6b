//! From what a run showed (the supervisor's report, the streams, the container's end) to a
//! [`RunResult`], without I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use codebox_submission::status::split_exit_code;
use codebox_submission::{Ending, Language, Limits, Phase, RunResult, Status};

use crate::clock::TimeLimit;
use crate::protocol::Session;

/// Why the fleet killed a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    /// A time limit passed.
    Time(TimeLimit),
    /// A stream passed the output cap.
    OutputLimit,
}

/// What the fleet saw of a container besides its output.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    /// Why the fleet killed it, if it did.
    pub kill: Option<Kill>,
    /// The container's exit code (its init's: 128+N for death by signal N).
    pub exit_code: Option<i64>,
    /// The kernel's OOM killer struck in the container.
    pub oom_killed: bool,
    /// Wall time from the program's start to its end (or kill).
    pub run_time: Option<Duration>,
}

impl Observed {
    fn timed_out(&self) -> bool {
        self.time_limit().is_some()
    }

    /// The time limit the fleet killed for, if it did.
    fn time_limit(&self) -> Option<TimeLimit> {
        match self.kill {
            Some(Kill::Time(limit)) => Some(limit),
            _ => None,
        }
    }

    /// How the step ended, for the status mapping; `status` is its exit status if known.
    fn ending(&self, phase: Phase, status: Option<i64>) -> Ending {
        let (exit_code, signal) = status.map(split_exit_code).unwrap_or((None, None));
        Ending {
            phase,
            exit_code,
            signal,
            timed_out: self.timed_out(),
            oom_killed: self.oom_killed,
            output_exceeded: phase == Phase::Run && self.kill == Some(Kill::OutputLimit),
        }
    }
}

/// The result of a run.
pub(crate) fn run_result(
    language: Language,
    limits: &Limits,
    session: &Session,
    observed: &Observed,
    now: DateTime<Utc>,
) -> RunResult {
    if let Some(message) = session.failure() {
        return RunResult::internal_error(format!("the {language} runner failed: {message}"), now);
    }
    let compiled_language = language.info().compiled;

    if session.program_started() {
        let Some(code) = observed.exit_code else {
            return RunResult::internal_error("the program's exit status is unknown", now);
        };
        let ending = observed.ending(Phase::Run, Some(code));
        let (exit_code, signal) = (ending.exit_code, ending.signal);
        let compile_output = compile_output(language, session);
        let (stdout, stdout_cut) = lossy_text(session.stdout().bytes(), limits.output_bytes);
        let (stderr, stderr_cut) = lossy_text(session.stderr().bytes(), limits.output_bytes);
        return RunResult {
            status: ending.status(),
            exit_code,
            signal,
            stdout,
            stderr,
            stdout_truncated: session.stdout().exceeded() || stdout_cut,
            stderr_truncated: session.stderr().exceeded() || stderr_cut,
            compile_output,
            time_ms: observed.run_time.map(|t| t.as_millis() as u64),
            time_limit: observed.time_limit(),
            tests: None,
            finished_at: now,
        };
    }

    // The program never started: the compile step decided, or CodeBox failed.
    let step = if compiled_language {
        "compile step"
    } else {
        "syntax check"
    };
    let mut notes = Vec::new();
    if observed.timed_out() {
        notes.push(format!(
            "[the {step} passed its time limit ({} ms) and was killed]",
            limits.compile_ms
        ));
    }
    if observed.oom_killed {
        notes.push(format!(
            "[the {step} ran out of memory ({} MiB)]",
            limits.memory_bytes >> 20
        ));
    }
    let (ending, text) = match session.compiled() {
        Some(compiled) => (
            observed.ending(Phase::Compile, Some(compiled.status)),
            compile_text(&compiled.output, compiled.total, &notes),
        ),
        None if session.compile_started() && (observed.timed_out() || observed.oom_killed) => (
            observed.ending(Phase::Compile, observed.exit_code),
            notes.join("\n"),
        ),
        None => {
            let what = if observed.timed_out() {
                format!("did not start its {step} within {} ms", limits.compile_ms)
            } else if session.compile_started() {
                format!("ended during its {step} without a report")
            } else if session.is_ready() {
                "ended before its program arrived".to_string()
            } else {
                "ended before it was ready".to_string()
            };
            let code = observed
                .exit_code
                .map(|c| format!(" (container exit code {c})"))
                .unwrap_or_default();
            return RunResult::internal_error(format!("the {language} runner {what}{code}"), now);
        }
    };
    let status = ending.status();
    if status != Status::CompileError {
        return RunResult::internal_error(
            format!("the {language} runner's {step} succeeded but the program never started"),
            now,
        );
    }
    RunResult {
        status,
        // The program did not run: it has no exit status (the compiler's is in the output).
        exit_code: None,
        signal: None,
        stdout: String::new(),
        stderr: lossy_text(session.stderr().bytes(), limits.output_bytes).0,
        stdout_truncated: false,
        stderr_truncated: false,
        compile_output: Some(text),
        time_ms: None,
        time_limit: observed.time_limit(),
        tests: None,
        finished_at: now,
    }
}

/// What a successful build handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The built program (the toolchain's artifact; empty when the language has none).
    pub program: Vec<u8>,
    /// The compile step's output, as a run's result shows it.
    pub compile_output: Option<String>,
}

/// The result of a build: its program, or the result to report (the compile step's failure,
/// or CodeBox's).
pub(crate) fn build_result(
    language: Language,
    limits: &Limits,
    session: &mut Session,
    observed: &Observed,
    now: DateTime<Utc>,
) -> Result<Build, Box<RunResult>> {
    let clean = observed.kill.is_none() && !observed.oom_killed && observed.exit_code == Some(0);
    match session.take_artifact() {
        Some(program) if clean => Ok(Build {
            program,
            compile_output: compile_output(language, session),
        }),
        Some(_) => Err(Box::new(RunResult::internal_error(
            format!("the {language} runner's build did not end cleanly after its program"),
            now,
        ))),
        None => Err(Box::new(run_result(
            language, limits, session, observed, now,
        ))),
    }
}

/// The compile step's output as a result shows it: always for compiled languages, for the
/// others only when the check said something.
fn compile_output(language: Language, session: &Session) -> Option<String> {
    session.compiled().and_then(|c| {
        let text = compile_text(&c.output, c.total, &[]);
        (language.info().compiled || !text.is_empty()).then_some(text)
    })
}

/// Output as text: invalid UTF-8 becomes U+FFFD, which takes three bytes for one, so the text
/// is cut back to `cap` bytes; a record must stay within DynamoDB's 400 KB item limit.
/// Returns the text and whether it was cut.
fn lossy_text(bytes: &[u8], cap: usize) -> (String, bool) {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if text.len() <= cap {
        return (text, false);
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

fn compile_text(output: &[u8], total: u64, notes: &[String]) -> String {
    let mut text = lossy_text(output, output.len()).0;
    if total > output.len() as u64 {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[compile output truncated: {total} bytes in all, {} shown]",
            output.len()
        ));
    }
    for note in notes {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(note);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn lossy_text_stays_within_its_cap() {
        let invalid = vec![0xffu8; 1000];
        let (text, cut) = lossy_text(&invalid, 1000);
        assert!(cut && text.len() <= 1000 && text.chars().all(|c| c == '\u{fffd}'));
        assert_eq!(lossy_text(b"ok", 10), ("ok".to_string(), false));
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn session(stdout: &[u8]) -> Session {
        let mut s = Session::new(16, TOKEN.into());
        s.on_stdout(stdout).unwrap();
        s
    }

    const RAN: &[u8] =
        b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 0 0 0\nCODEBOX/3 RUN\nhi\xff\n";

    fn result(language: Language, s: &Session, observed: Observed) -> RunResult {
        run_result(language, &Limits::default(), s, &observed, now())
    }

    #[test]
    fn ok_run() {
        let s = session(RAN);
        let observed = Observed {
            exit_code: Some(0),
            run_time: Some(Duration::from_millis(12)),
            ..Default::default()
        };
        let r = result(Language::C, &s, observed.clone());
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.stdout, "hi\u{fffd}\n");
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.time_ms, Some(12));
        assert_eq!(
            r.compile_output.as_deref(),
            Some(""),
            "compiled languages always say"
        );
        let r = result(Language::Python, &s, observed);
        assert_eq!(r.compile_output, None, "a clean syntax check says nothing");
    }

    #[test]
    fn run_endings() {
        let s = session(RAN);
        let base = Observed {
            exit_code: Some(139),
            ..Default::default()
        };
        let r = result(Language::C, &s, base.clone());
        assert_eq!(
            (r.status, r.exit_code, r.signal),
            (Status::RuntimeError, None, Some(11))
        );
        let r = result(
            Language::C,
            &s,
            Observed {
                kill: Some(Kill::Time(TimeLimit::Run)),
                exit_code: Some(137),
                ..base.clone()
            },
        );
        assert_eq!(r.status, Status::TimeLimitExceeded);
        let r = result(
            Language::C,
            &s,
            Observed {
                oom_killed: true,
                exit_code: Some(137),
                ..base.clone()
            },
        );
        assert_eq!(r.status, Status::MemoryLimitExceeded);
        let r = result(
            Language::C,
            &s,
            Observed {
                kill: Some(Kill::OutputLimit),
                exit_code: Some(137),
                ..base
            },
        );
        assert_eq!(r.status, Status::OutputLimitExceeded);
        let r = result(Language::C, &s, Observed::default());
        assert_eq!(r.status, Status::InternalError, "no exit code, no verdict");
    }

    #[test]
    fn compile_errors() {
        let s = session(b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 1 6 10\nerror!");
        let r = result(
            Language::C,
            &s,
            Observed {
                exit_code: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(r.status, Status::CompileError);
        assert_eq!(r.exit_code, None);
        assert_eq!(
            r.compile_output.unwrap(),
            "error!\n[compile output truncated: 10 bytes in all, 6 shown]"
        );

        let s = session(b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\n");
        let r = result(
            Language::Rust,
            &s,
            Observed {
                kill: Some(Kill::Time(TimeLimit::Run)),
                exit_code: Some(137),
                ..Default::default()
            },
        );
        assert_eq!(r.status, Status::CompileError);
        assert!(r.compile_output.unwrap().contains("time limit (10000 ms)"));
    }

    #[test]
    fn codebox_faults_are_internal_errors() {
        let s = session(b"CODEBOX/3 READY\nCODEBOX/3 FAIL short source\n");
        let r = result(
            Language::Go,
            &s,
            Observed {
                exit_code: Some(125),
                ..Default::default()
            },
        );
        assert_eq!(r.status, Status::InternalError);
        assert!(r.stderr.contains("short source"));

        let s = session(b"CODEBOX/3 READY\n");
        let r = result(
            Language::Go,
            &s,
            Observed {
                exit_code: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(r.status, Status::InternalError);
        assert!(
            r.stderr.contains("before its program arrived"),
            "{}",
            r.stderr
        );

        let s = session(b"CODEBOX/3 READY\nCODEBOX/3 COMPILE\nCODEBOX/3 COMPILED 0 0 0\n");
        let r = result(
            Language::Go,
            &s,
            Observed {
                exit_code: Some(0),
                ..Default::default()
            },
        );
        assert_eq!(r.status, Status::InternalError);
    }
}
