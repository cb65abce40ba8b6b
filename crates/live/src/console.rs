//! A live run's console in the room's document: the one layout the room's object writes and
//! the IDE reads (`frontend/src/console.ts` reads it, and names this file).
//!
//! ```text
//! live            Y.Map, root      submission id -> its console (at most MAX_CONSOLES)
//!   {submission}  Y.Map
//!     state       "live"   the run's channel is open: output arrives as it is written
//!                 "lost"   the channel closed before the run's end: the result comes by polling
//!                 "ended"  the run ended; the transcript's output equals the stored result's
//!     started_at  number   ms since the epoch, when the channel first opened
//!     stdin_open  bool     input is still taken (until Ctrl-D, the run's end, or at once when
//!                          the run was given the stdin panel's text: that is its whole input)
//!     transcript  Y.Array  in the order things happened, each a plain object:
//!                          {"s": "out" | "err", "t": text}              output
//!                          {"s": "in", "t": line, "by", "color"}        a typed line (no newline)
//!                          {"s": "eof", "by", "color"}                  who ended the input
//!     out_bytes, err_bytes, in_bytes   number   UTF-8 bytes of each kind so far
//!     out_truncated, err_truncated     bool     the stream passed MAX_STREAM_BYTES
//!     status      string   when ended: the stored result's status (Contract 2)
//!     time_limit  string   when ended by a time limit: which one
//! ```
//!
//! Only the room's object writes here (as its own Yjs client, see `Room::with_writer`); it
//! refuses everything a browser socket sends for a run. Each write is one small transaction,
//! and output arrives already coalesced by the fleet ([`crate::coalesce`]), so a printing
//! loop makes at most one edit per stream per flush interval.

use std::collections::HashMap;

use yrs::{
    Any, Array, ArrayPrelim, ArrayRef, Doc, Map, MapPrelim, MapRef, Out, ReadTxn, Transact,
    TransactionMut,
};

use crate::frame::Stream;

/// The root map of consoles.
pub const LIVE: &str = "live";
/// Consoles a room keeps: the IDE's run history is as long.
pub const MAX_CONSOLES: usize = 20;
/// Output kept per stream, as the stored result keeps (Contract 2).
pub const MAX_STREAM_BYTES: usize = 64 * 1024;
/// Input one run may be typed, as much as its stdin may hold (Contract 2).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// The longest typed line, as the channel carries it (its newline included).
pub const MAX_LINE_BYTES: usize = crate::frame::MAX_LINE - 1;
/// What one transcript entry costs the encoded document beyond its text, at most.
pub const ENTRY_BYTES: usize = 160;

/// Where a run's console stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Output arrives as it is written.
    Live,
    /// The channel closed before the run ended.
    Lost,
    /// The run ended.
    Ended,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Lost => "lost",
            State::Ended => "ended",
        }
    }
}

/// Who typed a line, as the room shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Their display name.
    pub name: String,
    /// Their colour (`#rrggbb`).
    pub color: String,
}

/// What a participant typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// One line, without its newline.
    Line(String),
    /// Ctrl-D: the end of the input.
    EndOfInput,
}

/// How a run ended, from its stored result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The result's status.
    pub status: String,
    /// The time limit that ended it, if one did.
    pub time_limit: Option<String>,
    /// The stored stdout.
    pub stdout: String,
    /// The stored stderr.
    pub stderr: String,
    /// The stored stdout was cut at its cap.
    pub stdout_truncated: bool,
    /// The stored stderr was cut at its cap.
    pub stderr_truncated: bool,
}

/// Why the console refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No console for this submission.
    #[error("this run has no live console in the room")]
    Unknown,
    /// The run has ended (or its channel is gone).
    #[error("this run is not live")]
    NotLive,
    /// Its input was already ended.
    #[error("this run's input is closed")]
    InputClosed,
    /// A line with a newline or over [`MAX_LINE_BYTES`].
    #[error("a line is at most {MAX_LINE_BYTES} bytes, without newlines")]
    BadLine,
    /// The run's input would pass [`MAX_INPUT_BYTES`].
    #[error("a run takes at most {MAX_INPUT_BYTES} bytes of typed input")]
    InputFull,
    /// The run ended before: a channel may not reopen it.
    #[error("this run has ended")]
    Ended,
}

/// The consoles of one document, edited in one transaction.
pub struct Consoles<'t, 'doc> {
    txn: &'t mut TransactionMut<'doc>,
    live: MapRef,
}

impl<'t, 'doc> Consoles<'t, 'doc> {
    /// The consoles of the document `txn` edits.
    pub fn new(txn: &'t mut TransactionMut<'doc>) -> Self {
        use yrs::WriteTxn;
        let live = txn.get_or_insert_map(LIVE);
        Consoles { txn, live }
    }

    fn console(&self, submission: &str) -> Option<MapRef> {
        self.live.get(self.txn, submission)?.cast::<MapRef>().ok()
    }

    fn text(&self, console: &MapRef, key: &str) -> Option<String> {
        match console.get(self.txn, key)? {
            Out::Any(Any::String(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    fn number(&self, console: &MapRef, key: &str) -> usize {
        match console.get(self.txn, key) {
            Some(Out::Any(Any::Number(n))) => n
                .as_i64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0),
            _ => 0,
        }
    }

    fn flag(&self, console: &MapRef, key: &str) -> bool {
        matches!(console.get(self.txn, key), Some(Out::Any(Any::Bool(true))))
    }

    /// The state of `submission`'s console, if it has one.
    pub fn state(&self, submission: &str) -> Option<State> {
        let console = self.console(submission)?;
        Some(match self.text(&console, "state").as_deref() {
            Some("live") => State::Live,
            Some("ended") => State::Ended,
            _ => State::Lost,
        })
    }

    /// The run's channel opened at `now_ms`: its console is made (dropping the oldest beyond
    /// [`MAX_CONSOLES`]), or, after a lost channel, live again.
    pub fn open(&mut self, submission: &str, now_ms: u64) -> Result<(), Refused> {
        if let Some(console) = self.console(submission) {
            if self.state(submission) == Some(State::Ended) {
                return Err(Refused::Ended);
            }
            console.insert(self.txn, "state", State::Live.as_str());
            return Ok(());
        }
        self.make_space();
        let console = self.live.insert(self.txn, submission, MapPrelim::default());
        console.insert(self.txn, "state", State::Live.as_str());
        console.insert(self.txn, "started_at", now_ms as f64);
        console.insert(self.txn, "stdin_open", true);
        console.insert(self.txn, "transcript", ArrayPrelim::default());
        Ok(())
    }

    /// Drops the oldest consoles of runs no longer live until one more fits.
    fn make_space(&mut self) {
        let mut held: Vec<(f64, String, bool)> = self
            .live
            .iter(self.txn)
            .filter_map(|(key, value)| {
                let console = value.cast::<MapRef>().ok()?;
                let started = match console.get(self.txn, "started_at") {
                    Some(Out::Any(Any::Number(n))) => n.as_f64().unwrap_or(0.0),
                    _ => 0.0,
                };
                let live = self.text(&console, "state").as_deref() == Some("live");
                Some((started, key.to_owned(), live))
            })
            .collect();
        held.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut excess = (held.len() + 1).saturating_sub(MAX_CONSOLES);
        for (_, key, live) in held {
            if excess == 0 {
                break;
            }
            if !live {
                self.live.remove(self.txn, &key);
                excess -= 1;
            }
        }
    }

    fn transcript(&self, console: &MapRef) -> Option<ArrayRef> {
        console.get(self.txn, "transcript")?.cast::<ArrayRef>().ok()
    }

    fn push(&mut self, console: &MapRef, entry: Vec<(&str, Any)>) {
        if let Some(transcript) = self.transcript(console) {
            let entry: HashMap<String, Any> =
                entry.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            transcript.push_back(self.txn, Any::from(entry));
        }
    }

    /// Output the run wrote on `stream`, kept up to [`MAX_STREAM_BYTES`] (cut at a character
    /// boundary); returns the bytes kept. Output for a console that is not live is dropped.
    pub fn output(&mut self, submission: &str, stream: Stream, text: &str) -> usize {
        let Some(console) = self.console(submission) else {
            return 0;
        };
        if self.state(submission) != Some(State::Live) {
            return 0;
        }
        let (kind, count, cut) = match stream {
            Stream::Stdout => ("out", "out_bytes", "out_truncated"),
            Stream::Stderr => ("err", "err_bytes", "err_truncated"),
        };
        let taken = self.number(&console, count);
        let kept = prefix_within(text, MAX_STREAM_BYTES.saturating_sub(taken));
        if kept.len() < text.len() && !self.flag(&console, cut) {
            console.insert(self.txn, cut, true);
        }
        if kept.is_empty() {
            return 0;
        }
        console.insert(self.txn, count, (taken + kept.len()) as f64);
        self.push(&console, vec![("s", kind.into()), ("t", kept.into())]);
        kept.len()
    }

    /// A participant typed into the run: the line is recorded (with who typed it) for the
    /// room to pass to the run, or the input ended.
    pub fn input(&mut self, submission: &str, typed: &Typed, by: &Author) -> Result<(), Refused> {
        let console = self.console(submission).ok_or(Refused::Unknown)?;
        if self.state(submission) != Some(State::Live) {
            return Err(Refused::NotLive);
        }
        if !self.flag(&console, "stdin_open") {
            return Err(Refused::InputClosed);
        }
        let author = [
            ("by", by.name.as_str().into()),
            ("color", by.color.as_str().into()),
        ];
        match typed {
            Typed::Line(line) => {
                if line.len() > MAX_LINE_BYTES || line.contains(['\n', '\r']) {
                    return Err(Refused::BadLine);
                }
                let total = self.number(&console, "in_bytes") + line.len() + 1;
                if total > MAX_INPUT_BYTES {
                    return Err(Refused::InputFull);
                }
                console.insert(self.txn, "in_bytes", total as f64);
                let mut entry = vec![("s", "in".into()), ("t", line.as_str().into())];
                entry.extend(author);
                self.push(&console, entry);
            }
            Typed::EndOfInput => {
                console.insert(self.txn, "stdin_open", false);
                let mut entry = vec![("s", "eof".into())];
                entry.extend(author);
                self.push(&console, entry);
            }
        }
        Ok(())
    }

    /// The program's stdin closed without anyone typing Ctrl-D (it was given its input up
    /// front): the console stops taking input.
    pub fn close_input(&mut self, submission: &str) {
        if let Some(console) = self.console(submission) {
            if self.flag(&console, "stdin_open") {
                console.insert(self.txn, "stdin_open", false);
            }
        }
    }

    /// The run ended with its stored result. Output the channel did not bring (a tail lost
    /// to a failed send) is appended, so the transcript's output equals the result's.
    pub fn end(&mut self, submission: &str, ending: &Ending) {
        let Some(console) = self.console(submission) else {
            return;
        };
        if self.state(submission) == Some(State::Ended) {
            return;
        }
        for (stream, stored) in [
            (Stream::Stdout, &ending.stdout),
            (Stream::Stderr, &ending.stderr),
        ] {
            let shown = self.shown(&console, stream);
            if let Some(missing) = stored.strip_prefix(shown.as_str()) {
                if !missing.is_empty() && self.state(submission) == Some(State::Live) {
                    self.output(submission, stream, missing);
                }
            }
        }
        for (cut, key) in [
            (ending.stdout_truncated, "out_truncated"),
            (ending.stderr_truncated, "err_truncated"),
        ] {
            if cut && !self.flag(&console, key) {
                console.insert(self.txn, key, true);
            }
        }
        console.insert(self.txn, "state", State::Ended.as_str());
        console.insert(self.txn, "stdin_open", false);
        console.insert(self.txn, "status", ending.status.as_str());
        if let Some(limit) = &ending.time_limit {
            console.insert(self.txn, "time_limit", limit.as_str());
        }
    }

    /// The run's channel closed before its end.
    pub fn lose(&mut self, submission: &str) {
        if let Some(console) = self.console(submission) {
            if self.state(submission) == Some(State::Live) {
                console.insert(self.txn, "state", State::Lost.as_str());
                console.insert(self.txn, "stdin_open", false);
            }
        }
    }

    /// The output of `stream` in `submission`'s console so far.
    pub fn shown_output(&self, submission: &str, stream: Stream) -> Option<String> {
        let console = self.console(submission)?;
        Some(self.shown(&console, stream))
    }

    fn shown(&self, console: &MapRef, stream: Stream) -> String {
        let kind = match stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        let Some(transcript) = self.transcript(console) else {
            return String::new();
        };
        transcript
            .iter(self.txn)
            .filter_map(|entry| match entry {
                Out::Any(Any::Map(map)) => match (map.get("s"), map.get("t")) {
                    (Some(Any::String(s)), Some(Any::String(t))) if &**s == kind => {
                        Some(t.to_string())
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

/// The submissions whose consoles in `doc` are live.
pub fn live_runs(doc: &Doc) -> Vec<String> {
    let txn = doc.transact();
    let Some(live) = txn.get_map(LIVE) else {
        return Vec::new();
    };
    live.iter(&txn)
        .filter_map(|(key, value)| {
            let console = value.cast::<MapRef>().ok()?;
            let state = console.get(&txn, "state")?;
            matches!(state, Out::Any(Any::String(s)) if &*s == State::Live.as_str())
                .then(|| key.to_owned())
        })
        .collect()
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix_within(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// UTF-8 decoding of a stream that arrives in chunks: a character split across two chunks is
/// held back until its end arrives; invalid bytes become U+FFFD, as in the stored result.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `bytes` after what was held back; an incomplete last character is held.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.carry.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(_) => incomplete_tail_start(&self.carry),
        };
        let rest = self.carry.split_off(complete);
        let text = String::from_utf8_lossy(&self.carry).into_owned();
        self.carry = rest;
        text
    }

    /// What is held back, at the stream's end.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.carry).into_owned();
        self.carry.clear();
        text
    }
}

/// Where an incomplete character at the end of `bytes` starts (`bytes.len()` if none):
/// invalid bytes before it are left for lossy decoding.
fn incomplete_tail_start(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=3.min(len) {
        let start = len - back;
        let lead = bytes[start];
        let width = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            0x80..=0xBF => continue,
            _ => return len,
        };
        return if width > back
            && std::str::from_utf8(&bytes[start..])
                .err()
                .is_some_and(|e| e.error_len().is_none())
        {
            start
        } else {
            len
        };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> Author {
        Author {
            name: "Ada".into(),
            color: "#123456".into(),
        }
    }

    #[test]
    fn output_is_kept_in_order_and_capped_per_stream() {
        let doc = Doc::with_client_id(7);
        let mut txn = doc.transact_mut();
        let mut consoles = Consoles::new(&mut txn);
        consoles.open("s1", 1).unwrap();
        assert_eq!(consoles.output("s1", Stream::Stdout, "a"), 1);
        assert_eq!(consoles.output("s1", Stream::Stderr, "b"), 1);
        let big = "é".repeat(MAX_STREAM_BYTES);
        let kept = consoles.output("s1", Stream::Stdout, &big);
        assert_eq!(kept, MAX_STREAM_BYTES - 2, "a boundary below the cap");
        assert_eq!(
            consoles.output("s1", Stream::Stdout, "more"),
            1,
            "the last byte"
        );
        assert_eq!(consoles.output("s1", Stream::Stdout, "x"), 0);
        assert_eq!(consoles.output("s1", Stream::Stderr, "c"), 1);
        let out = consoles.shown_output("s1", Stream::Stdout).unwrap();
        assert!(out.starts_with("aé") && out.ends_with("ém"));
        assert_eq!(out.len(), MAX_STREAM_BYTES);
        assert_eq!(consoles.shown_output("s1", Stream::Stderr).unwrap(), "bc");
        assert_eq!(consoles.output("unknown", Stream::Stdout, "x"), 0);
    }

    #[test]
    fn input_is_refused_when_it_cannot_reach_the_run() {
        let doc = Doc::with_client_id(7);
        let mut txn = doc.transact_mut();
        let mut consoles = Consoles::new(&mut txn);
        let line = |s: &str| Typed::Line(s.into());
        assert_eq!(
            consoles.input("s1", &line("x"), &author()),
            Err(Refused::Unknown)
        );
        consoles.open("s1", 1).unwrap();
        consoles.input("s1", &line("Ada"), &author()).unwrap();
        assert_eq!(
            consoles.input("s1", &line("a\nb"), &author()),
            Err(Refused::BadLine)
        );
        assert_eq!(
            consoles.input("s1", &line(&"x".repeat(MAX_LINE_BYTES + 1)), &author()),
            Err(Refused::BadLine)
        );
        let long = "y".repeat(MAX_LINE_BYTES);
        let mut refused = None;
        for _ in 0..(MAX_INPUT_BYTES / MAX_LINE_BYTES + 1) {
            if let Err(e) = consoles.input("s1", &line(&long), &author()) {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused, Some(Refused::InputFull));
        consoles.input("s1", &Typed::EndOfInput, &author()).unwrap();
        consoles.close_input("s1");
        assert_eq!(
            consoles.input("s1", &line("late"), &author()),
            Err(Refused::InputClosed)
        );
        consoles.lose("s1");
        assert_eq!(consoles.state("s1"), Some(State::Lost));
        assert_eq!(
            consoles.input("s1", &Typed::EndOfInput, &author()),
            Err(Refused::NotLive)
        );
    }

    #[test]
    fn the_end_completes_the_output_and_a_channel_cannot_reopen_it() {
        let doc = Doc::with_client_id(7);
        let mut txn = doc.transact_mut();
        let mut consoles = Consoles::new(&mut txn);
        consoles.open("s1", 1).unwrap();
        consoles.output("s1", Stream::Stdout, "hel");
        consoles.end(
            "s1",
            &Ending {
                status: "time_limit_exceeded".into(),
                time_limit: Some("idle".into()),
                stdout: "hello".into(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: true,
            },
        );
        assert_eq!(consoles.state("s1"), Some(State::Ended));
        assert_eq!(
            consoles.shown_output("s1", Stream::Stdout).unwrap(),
            "hello"
        );
        assert_eq!(consoles.open("s1", 2), Err(Refused::Ended));
        assert_eq!(consoles.output("s1", Stream::Stdout, "x"), 0);
    }

    #[test]
    fn the_oldest_finished_consoles_make_way() {
        let doc = Doc::with_client_id(7);
        let mut txn = doc.transact_mut();
        let mut consoles = Consoles::new(&mut txn);
        for i in 0..MAX_CONSOLES + 5 {
            consoles.open(&format!("s{i}"), i as u64).unwrap();
            if i != 0 {
                consoles.lose(&format!("s{i}"));
            }
        }
        assert_eq!(consoles.live.len(consoles.txn) as usize, MAX_CONSOLES);
        assert_eq!(consoles.state("s0"), Some(State::Live), "a live one stays");
        assert_eq!(consoles.state("s1"), None);
        assert_eq!(
            consoles.state(&format!("s{}", MAX_CONSOLES + 4)),
            Some(State::Lost)
        );
    }

    #[test]
    fn live_runs_are_those_whose_channel_is_open() {
        let doc = Doc::with_client_id(7);
        assert!(live_runs(&doc).is_empty());
        {
            let mut txn = doc.transact_mut();
            let mut consoles = Consoles::new(&mut txn);
            consoles.open("s1", 1).unwrap();
            consoles.open("s2", 2).unwrap();
            consoles.lose("s2");
        }
        assert_eq!(live_runs(&doc), ["s1"]);
    }

    #[test]
    fn characters_split_across_chunks_are_joined() {
        let mut stream = Utf8Stream::default();
        let bytes = "aé€😀".as_bytes();
        let mut text = String::new();
        for byte in bytes {
            text.push_str(&stream.push(&[*byte]));
        }
        text.push_str(&stream.finish());
        assert_eq!(text, "aé€😀");
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.push(b"a\xffb\xe2\x82"), "a\u{fffd}b");
        assert_eq!(stream.push(b"\xac"), "€");
        assert_eq!(stream.push(b"\xe2"), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }
}
