//! The supervisor protocol: how the fleet and the supervisor inside a runner container talk.
//! Both sides are built from this module: the fleet reads with [`Session`], the supervisor
//! writes with the encoders below.
//!
//! Every runner container runs the supervisor as the child of its init (tini), as the run's
//! unprivileged user, in /work (a fresh tmpfs). Its job: take the program from stdin, compile
//! or syntax-check it, report that on stdout in a form the program cannot forge, run the
//! program as its child, and report how it ended (END) as soon as it has, so the fleet has
//! the result without waiting for the engine to notice the container's end. It then
//! exits with the program's status, so the container ends, killing whatever the program
//! left behind.
//!
//! ```text
//! stdin, fleet -> supervisor:
//!   "<T> <L>\n"    T = the run's token (32 lowercase hex digits, new for every run),
//!                  L = source length in bytes, decimal ASCII, at most 8 digits
//!   <L bytes>      the source; the supervisor writes it to /work/main.<ext>
//!   <rest>         the program's stdin, up to EOF (the fleet closes its end)
//!
//! stdout, supervisor -> fleet, ASCII lines starting "CODEBOX/<PROTOCOL> ", in this order:
//!   "READY\n"                          started, about to read stdin (a warm container
//!                                      waits here for its program)
//!   "COMPILE\n"                        source in place, compile step starts
//!                                      (a syntax check for python/javascript)
//!   "COMPILED <status> <n> <total>\n"  it ended with exit status <status> (128+N: signal
//!   <n bytes>                          N); its merged stdout+stderr was <total> bytes, the
//!                                      first n (<= MAX_COMPILE_OUTPUT) follow, framed
//!   "RUN\n"                            only after status 0; every later stdout byte is
//!                                      the program's, up to END
//!   "END <T> <status> <ooms>\n"        the program (or a failed compile step) ended with
//!                                      <status>; <ooms> = the container's OOM kills so
//!                                      far, or "-"; not necessarily at a line start
//!   before RUN, instead: "FAIL <message>\n", exit 125 (a CodeBox fault)
//!
//! stderr: the program's alone, then "CODEBOX/<PROTOCOL> END <T>\n".
//! ```
//!
//! Why it cannot be forged: everything the supervisor says up to RUN is on stdout and
//! written before the program exists, and markers are read only up to RUN. The compiler
//! sees hostile input, so its output travels length-framed. END carries the token, which
//! the program never sees: it is read from stdin before the program exists, and the
//! supervisor makes itself non-dumpable, so a program of the same user cannot read it out
//! of the supervisor's memory (`/proc/<pid>/mem`, ptrace). The fleet trusts END only for a
//! plain exit with no OOM kill reported; for anything else (SIGKILL, OOM kills, no END) it
//! asks the engine. Docker delivers stdout and stderr as separate pipes with no relative
//! order, so nothing here depends on interleaving: each stream has its own END after every
//! program byte on it, and a stderr byte can only come from the program, so it means the
//! program has started even if the RUN line is still in flight on stdout.

mod capture;
mod session;

pub use capture::Capture;
pub use session::{Compiled, Session};

use thiserror::Error;

/// The protocol's version, written once: it is in every marker.
macro_rules! version {
    () => {
        "2"
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
/// Digits in a run token.
const TOKEN_LEN: usize = 32;
/// Digits of the largest source length the header may carry.
const MAX_LENGTH_DIGITS: usize = 8;

/// A new run token: 32 lowercase hex digits from a random UUID.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What the fleet writes to the container's stdin.
pub fn stdin_payload(token: &str, source: &[u8], stdin: &[u8]) -> Vec<u8> {
    let header = format!("{token} {}\n", source.len());
    let mut payload = Vec::with_capacity(header.len() + source.len() + stdin.len());
    payload.extend_from_slice(header.as_bytes());
    payload.extend_from_slice(source);
    payload.extend_from_slice(stdin);
    payload
}

/// The first line of stdin, as the supervisor reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The run's token.
    pub token: String,
    /// The source's length in bytes.
    pub source_len: usize,
}

/// Why a header line is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The token is not 32 lowercase hex digits.
    #[error("malformed run token")]
    Token,
    /// The length is not decimal ASCII of at most 8 digits.
    #[error("malformed source length")]
    Length,
}

impl Header {
    /// Parses "<T> <L>" (without its newline).
    pub fn parse(line: &[u8]) -> Result<Header, HeaderError> {
        let line = std::str::from_utf8(line).map_err(|_| HeaderError::Token)?;
        let (token, length) = line.split_once(' ').ok_or(HeaderError::Token)?;
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if token.len() != TOKEN_LEN || !token.bytes().all(lower_hex) {
            return Err(HeaderError::Token);
        }
        if length.is_empty()
            || length.len() > MAX_LENGTH_DIGITS
            || !length.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(HeaderError::Length);
        }
        Ok(Header {
            token: token.to_string(),
            source_len: length.parse().map_err(|_| HeaderError::Length)?,
        })
    }
}

/// The supervisor's words, encoded: what it writes on stdout (and END on stderr).
pub mod say {
    use super::PREFIX;

    /// "READY": started, about to read stdin.
    pub fn ready() -> String {
        format!("{PREFIX}READY\n")
    }

    /// "COMPILE": the source is in place and the compile step starts.
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
        /// COMPILED or END.
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
    fn payload_is_length_prefixed_and_the_header_parses_back() {
        assert_eq!(
            stdin_payload(TOKEN, b"print(1)", b"in\n"),
            format!("{TOKEN} 8\nprint(1)in\n").as_bytes()
        );
        assert_eq!(
            stdin_payload(TOKEN, b"", b""),
            format!("{TOKEN} 0\n").as_bytes()
        );
        let token = new_token();
        assert!(
            token.len() == 32
                && token
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(token, new_token());
        let payload = stdin_payload(&token, b"abc", b"");
        let line = &payload[..payload.len() - 4];
        assert_eq!(
            Header::parse(line),
            Ok(Header {
                token,
                source_len: 3
            })
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let upper = TOKEN.to_uppercase();
        for (line, error) in [
            (TOKEN.to_string(), HeaderError::Token),
            (format!("{} 1", &TOKEN[1..]), HeaderError::Token),
            (format!("{upper} 1"), HeaderError::Token),
            (format!("{TOKEN} "), HeaderError::Length),
            (format!("{TOKEN} 123456789"), HeaderError::Length),
            (format!("{TOKEN} -1"), HeaderError::Length),
            (format!("{TOKEN} 1 2"), HeaderError::Length),
        ] {
            assert_eq!(Header::parse(line.as_bytes()), Err(error), "{line:?}");
        }
        assert_eq!(
            Header::parse(format!("{TOKEN} 99999999").as_bytes()).map(|h| h.source_len),
            Ok(99_999_999)
        );
    }

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
            format!("CODEBOX/2 END {TOKEN} 137 -\n")
        );
    }
}
