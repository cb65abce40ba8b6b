//! The supervisor protocol: how the fleet and the supervisor inside a runner container talk.
//! Both sides are built from this module: the fleet writes a request with [`Request`] and
//! reads with [`Session`]; the supervisor reads the request with [`read_request`] and
//! writes with the encoders below.
//!
//! Every runner container runs the supervisor as the child of its init (tini), as the run's
//! unprivileged user, in /work (a fresh tmpfs). Its job: take the project from stdin, write
//! it to /work, compile or syntax-check it, report that on stdout in a form the program
//! cannot forge, then (by the request's mode) run the program as its child, or hand the built
//! program back. It reports how it ended (END) as soon as it has, so the fleet has the result
//! without waiting for the engine to notice the container's end. It then exits with that
//! status, so the container ends, killing whatever the program left behind.
//!
//! ```text
//! stdin, fleet -> supervisor:
//!   "<T> <M> <N>\n"  T = the run's token (32 lowercase hex digits, new for every run),
//!                    M = the mode (below), N = how many files follow, 1 to MAX_FILES + 1
//!   N times:
//!     "<l> <n> <p>\n" l = the name's length (at most MAX_NAME_BYTES), n = the content's,
//!                    p = its permissions: 644, or 755 for a build's program (`built` only,
//!                    once, at most MAX_ARTIFACT_BYTES); decimal ASCII, at most 8 digits
//!     <l bytes>      the name, a relative path as a project names its files
//!                    (codebox_submission::project::name_problem), never repeated, never
//!                    both a file and a folder; written at /work/<name>, folders made
//!     <n bytes>      the content; the 644 files hold at most MAX_PROJECT_BYTES together
//!   <rest>           the program's stdin, up to EOF (the fleet closes its end)
//!
//! modes:
//!   run     compile (or check), then run the program with the stdin that follows
//!   build   compile only; on success hand the program back (ARTIFACT), run nothing
//!   built   the project and a build's program (755, named as the toolchain's artifact):
//!           no compile step (COMPILED 0 0 0 at once), then run it as `run` does. Python
//!           checks in the interpreter that runs the program, so its check runs anyway.
//!
//! stdout, supervisor -> fleet, ASCII lines starting "CODEBOX/<PROTOCOL> ", in this order:
//!   "READY\n"                          started, about to read stdin (a warm container
//!                                      waits here for its request)
//!   "COMPILE\n"                        files in place, compile step starts
//!                                      (a syntax check for python/javascript)
//!   "COMPILED <status> <n> <total>\n"  it ended with exit status <status> (128+N: signal
//!   <n bytes>                          N); its merged stdout+stderr was <total> bytes, the
//!                                      first n (<= MAX_COMPILE_OUTPUT) follow, framed
//!   run, built, after status 0:
//!   "RUN\n"                            every later stdout byte is the program's, up to END
//!   build, after status 0:
//!   "ARTIFACT <n>\n"                   the built program (the toolchain's artifact: ./main)
//!   <n bytes>                          follows, n <= MAX_ARTIFACT_BYTES (0 for python and
//!                                      javascript, whose sources are the program)
//!   "END <T> <status> <ooms>\n"        the program (or the compile step, or a build: 0)
//!                                      ended with <status>; <ooms> = the container's OOM
//!                                      kills so far, or "-"; not necessarily at a line start
//!   before RUN or ARTIFACT, instead: "FAIL <message>\n", exit 125 (a CodeBox fault, or a
//!                                      request the supervisor refuses)
//!
//! stderr: the program's alone, then "CODEBOX/<PROTOCOL> END <T>\n".
//! ```
//!
//! Why it cannot be forged: everything the supervisor says up to RUN is on stdout and
//! written before the program exists, and markers are read only up to RUN; a build runs no
//! program at all. The compiler sees hostile input, so its output travels length-framed, as
//! does the program it built. END carries the token, which the program never sees: it is
//! read from stdin before the program exists, and the supervisor makes itself non-dumpable,
//! so a program of the same user cannot read it out of the supervisor's memory
//! (`/proc/<pid>/mem`, ptrace). The fleet trusts END only for a plain exit with no OOM kill
//! reported; for anything else (SIGKILL, OOM kills, no END) it asks the engine. Docker
//! delivers stdout and stderr as separate pipes with no relative order, so nothing here
//! depends on interleaving: each stream has its own END after every program byte on it, and
//! a stderr byte can only come from the program, so it means the program has started even if
//! the RUN line is still in flight on stdout.
//!
//! Why the names are checked twice: the fleet sends only projects that passed
//! `check_project`, but the supervisor is the last line before the file system, so it
//! refuses any name a project could not hold (absolute, `..`, a folder that is a file) and
//! writes only new files in folders it made under /work (no symlink can be there: nothing
//! but the supervisor has run in the container). A build's program comes back over the
//! same stdin, in the same framing, so a `built` run is the same request with one file more.

mod capture;
mod request;
mod session;

pub use capture::Capture;
pub use request::{
    read_request, stdin_payload, File, FileHeader, Header, Mode, Request, RequestError,
};
pub use session::{Compiled, Session};

use thiserror::Error;

/// The protocol's version, written once: it is in every marker.
macro_rules! version {
    () => {
        "3"
    };
}

/// The protocol version, as in the markers and in the runner images' `codebox.protocol` label.
pub const PROTOCOL: &str = version!();
/// The runner image label that names the protocol its supervisor speaks.
pub const PROTOCOL_LABEL: &str = "codebox.protocol";
/// What every marker starts with.
pub(crate) const PREFIX: &str = concat!("CODEBOX/", version!(), " ");
/// The longest marker line the supervisor writes (FAIL messages are short ASCII).
pub const MAX_LINE: usize = 512;
/// The supervisor's cap on compile output shown.
pub const MAX_COMPILE_OUTPUT: usize = 64 * 1024;
/// The supervisor's exit status when it failed itself (FAIL).
pub const FAIL_STATUS: i32 = 125;
/// The largest program a build hands back: half the work folder, so a run of it has room
/// for its project and its own files.
pub const MAX_ARTIFACT_BYTES: usize = 32 << 20;

/// A new run token: 32 lowercase hex digits from a random UUID.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The supervisor's words, encoded: what it writes on stdout (and END on stderr).
pub mod say {
    use super::PREFIX;

    /// "READY": started, about to read stdin.
    pub fn ready() -> String {
        format!("{PREFIX}READY\n")
    }

    /// "COMPILE": the files are in place and the compile step starts.
    pub fn compile() -> String {
        format!("{PREFIX}COMPILE\n")
    }

    /// "COMPILED": the compile step's status, then `shown` of its `total` output bytes follow.
    pub fn compiled(status: i64, shown: usize, total: u64) -> String {
        format!("{PREFIX}COMPILED {status} {shown} {total}\n")
    }

    /// "RUN": every later stdout byte is the program's.
    pub fn run() -> String {
        format!("{PREFIX}RUN\n")
    }

    /// "ARTIFACT": the built program's `size` bytes follow.
    pub fn artifact(size: u64) -> String {
        format!("{PREFIX}ARTIFACT {size}\n")
    }

    /// END on stdout: the status and the OOM kills counted (`None`: unknown).
    pub fn end_stdout(token: &str, status: i64, ooms: Option<u64>) -> String {
        match ooms {
            Some(n) => format!("{PREFIX}END {token} {status} {n}\n"),
            None => format!("{PREFIX}END {token} {status} -\n"),
        }
    }

    /// END on stderr: after the program's last byte there.
    pub fn end_stderr(token: &str) -> String {
        format!("{PREFIX}END {token}\n")
    }

    /// "FAIL": the supervisor itself failed (one line; control characters become spaces).
    pub fn fail(message: &str) -> String {
        let line: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(super::MAX_LINE - PREFIX.len() - 6)
            .collect();
        format!("{PREFIX}FAIL {line}\n")
    }
}

/// The supervisor broke the protocol: a CodeBox fault (or a mismatched runner image).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// A marker line did not end within [`MAX_LINE`] bytes.
    #[error("runner protocol violation: a marker line longer than {MAX_LINE} bytes: {0:?}")]
    LineTooLong(String),
    /// A line before RUN that is not a marker.
    #[error("runner protocol violation: expected a CODEBOX/{PROTOCOL} marker, got {0:?}")]
    NotAMarker(String),
    /// A marker out of order.
    #[error("runner protocol violation: unexpected marker {marker:?} while {stage}")]
    Unexpected {
        /// The marker line.
        marker: String,
        /// What the session waited for.
        stage: &'static str,
    },
    /// A marker whose fields do not parse.
    #[error("runner protocol violation: malformed {word} marker: {line:?}")]
    Malformed {
        /// COMPILED, ARTIFACT or END.
        word: &'static str,
        /// The line.
        line: String,
    },
    /// Output after FAIL.
    #[error("runner protocol violation: {0} bytes on stdout after the supervisor's last word")]
    AfterLastWord(usize),
}

/// Something the fleet must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The supervisor is up and waits for its program.
    Ready,
    /// The compile step started.
    CompileStarted,
    /// The compile step ended with this exit status.
    Compiled {
        /// Its exit status.
        status: i64,
    },
    /// The program started (RUN, or its first stderr byte): the run clock starts.
    ProgramStarted,
    /// The supervisor reported its own failure.
    SupervisorFailed(String),
    /// A stream passed the output cap: kill.
    OutputExceeded,
    /// END arrived on both streams: every byte of the program's output is in.
    Ended(End),
}

/// How the supervisor said the program (or a failed compile step) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// Exit status (128+N for signal N).
    pub status: i64,
    /// The container's OOM kills so far, if the supervisor could read them.
    pub ooms: Option<u64>,
}

impl End {
    /// Whether this report alone settles the run: a plain exit with no OOM kill. A SIGKILL
    /// (the OOM killer's signal) or a reported OOM kill needs the engine's word.
    pub fn is_conclusive(&self) -> bool {
        const SIGKILLED: i64 = 128 + 9;
        self.status != SIGKILLED && self.ooms == Some(0)
    }

    /// Parses "<status> <ooms>".
    fn parse(fields: &str) -> Option<End> {
        let (status, ooms) = fields.split_once(' ')?;
        let ooms = match ooms {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        Some(End {
            status: status.parse().ok()?,
            ooms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn what_the_supervisor_says_is_what_the_session_reads() {
        let mut session = Session::new(1024, TOKEN.to_string());
        let mut stdout = String::new();
        for part in [
            say::ready(),
            say::compile(),
            say::compiled(0, 4, 9),
            "warn".to_string(),
            say::run(),
            "out".to_string(),
            say::end_stdout(TOKEN, 3, Some(0)),
        ] {
            stdout.push_str(&part);
        }
        let mut events = session.on_stdout(stdout.as_bytes()).unwrap();
        events.extend(session.on_stderr(format!("err{}", say::end_stderr(TOKEN)).as_bytes()));
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::CompileStarted,
                Event::Compiled { status: 0 },
                Event::ProgramStarted,
                Event::Ended(End {
                    status: 3,
                    ooms: Some(0)
                }),
            ]
        );
        assert_eq!(session.stdout().bytes(), b"out");
        assert_eq!(session.stderr().bytes(), b"err");
        assert_eq!(session.compiled().unwrap().output, b"warn");
        let mut failed = Session::new(16, TOKEN.to_string());
        let fail = say::fail("bad\nthing");
        assert_eq!(fail.matches('\n').count(), 1);
        let events = failed
            .on_stdout(format!("{}{fail}", say::ready()).as_bytes())
            .unwrap();
        assert_eq!(events[1], Event::SupervisorFailed("bad thing".into()));
        assert!(say::fail(&"x".repeat(4096)).len() <= MAX_LINE);
        assert_eq!(
            say::end_stdout(TOKEN, 137, None),
            format!("CODEBOX/3 END {TOKEN} 137 -\n")
        );
    }

    /// A session that sent a build request.
    fn building() -> Session {
        let mut session = Session::new(16, TOKEN.to_string());
        let request = Request {
            language: codebox_submission::Language::C,
            mode: Mode::Build,
            files: &[],
            artifact: b"",
            stdin: b"",
        };
        assert!(session.request(&request).starts_with(TOKEN.as_bytes()));
        session
    }

    #[test]
    fn a_build_hands_its_program_back_framed_and_runs_nothing() {
        let program = b"\x7fELF\nCODEBOX/3 RUN\nnot a marker";
        let compiled = say::ready() + &say::compile() + &say::compiled(0, 0, 0);
        let mut bytes = (compiled.clone() + &say::artifact(program.len() as u64)).into_bytes();
        bytes.extend_from_slice(program);
        bytes.extend_from_slice(say::end_stdout(TOKEN, 0, Some(0)).as_bytes());
        for split in 0..bytes.len() {
            let mut session = building();
            let mut events = session.on_stdout(&bytes[..split]).unwrap();
            events.extend(session.on_stdout(&bytes[split..]).unwrap());
            events.extend(session.on_stderr(say::end_stderr(TOKEN).as_bytes()));
            assert!(!session.program_started(), "split at {split}");
            assert_eq!(session.artifact(), Some(&program[..]), "split at {split}");
            assert_eq!(session.stdout().bytes(), b"", "split at {split}");
            let end = End {
                status: 0,
                ooms: Some(0),
            };
            assert_eq!(events.last(), Some(&Event::Ended(end)), "split at {split}");
        }
        // A build never says RUN, a run never hands a program back, and a program has a cap.
        assert!(building()
            .on_stdout((compiled.clone() + &say::run()).as_bytes())
            .is_err());
        let mut run = Session::new(16, TOKEN.to_string());
        assert!(run
            .on_stdout((compiled.clone() + &say::artifact(0)).as_bytes())
            .is_err());
        let too_big = compiled + &say::artifact(MAX_ARTIFACT_BYTES as u64 + 1);
        assert!(building().on_stdout(too_big.as_bytes()).is_err());
    }
}
