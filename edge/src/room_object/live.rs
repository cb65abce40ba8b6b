//! A room's live runs (Contract 4), as the room's object binds them: each run's channel (a
//! socket of the fleet worker running it, opened with its run credential), what its frames do
//! to the run's console in the document (`codebox_live::console`), and the input participants
//! type. The console is edited by the room itself (`codebox_room::Room::edit`): stored, relayed
//! and capped like any update.

use codebox_access::Role;
use codebox_live::console::{live_runs, Author, Consoles, Ending, Refused, Typed, ENTRY_BYTES};
use codebox_live::frame::{FromRun, ToRun};
use codebox_room::close::{INVALID_PAYLOAD, UNSUPPORTED_DATA};
use serde::Deserialize;
use tracing::{info, warn};
use worker::{Date, Response, WebSocket, WebSocketIncomingMessage};

use super::{broadcast, write, Loaded, Part, Room, SocketState, INTERNAL_ERROR};
use crate::http::{EdgeError, StorageError};
use crate::internal::FromWorker;
use crate::runs;

impl Room {
    /// Opens a run's live channel (the Worker checked its credential): only a run the room
    /// holds a slot for, whose console has not ended; a second channel replaces the first.
    pub(super) fn open_run_channel(
        &self,
        call: &FromWorker,
    ) -> Result<(Response, Option<u64>), EdgeError> {
        let submission = call.run()?;
        if !call.upgrade {
            return Err(EdgeError::UpgradeRequired);
        }
        if !runs::holds(self, submission)? {
            return Err(Refused::Unknown.into());
        }
        let mut guard = self.loaded.borrow_mut();
        let loaded = self.ensure_loaded(&mut guard, &call.room, Part::Document)?;
        if let Some(at) = loaded.runs.iter().position(|(s, _)| s == submission) {
            let (_, old) = loaded.runs.remove(at);
            let _ = old.close(Some(1000), Some("replaced by a newer channel"));
        }
        let now = Date::now().as_millis();
        let (opened, wake_at) =
            edit_consoles(&mut guard, ENTRY_BYTES * 4, |c| c.open(submission, now))?;
        opened?;
        let loaded = guard.as_mut().ok_or(StorageError::NotLoaded)?;
        let (_, pair) = self.accept(
            loaded,
            SocketState {
                conn: 0,
                room: call.room.clone(),
                role: Role::View,
                generation: 0,
                presence: Vec::new(),
                run: Some(submission.to_owned()),
            },
        )?;
        loaded.runs.push((submission.to_owned(), pair.server));
        info!(room = %call.room, submission, "run channel opened");
        Ok((Response::from_websocket(pair.client)?, wake_at))
    }

    /// One frame of a run's channel: output into its console, or its end (which closes the
    /// channel and frees the run's slot). Returns when the room next has work.
    pub(super) fn run_frame(
        &self,
        ws: &WebSocket,
        room: &str,
        submission: &str,
        message: WebSocketIncomingMessage,
    ) -> Option<u64> {
        let frame = match &message {
            WebSocketIncomingMessage::Binary(frame) => FromRun::decode(frame),
            WebSocketIncomingMessage::String(_) => {
                let _ = ws.close(Some(UNSUPPORTED_DATA), Some("a run channel is binary"));
                return None;
            }
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                warn!(room, submission, %error, "closing a run channel");
                let _ = ws.close(Some(INVALID_PAYLOAD), Some(&error.to_string()));
                return None;
            }
        };
        let mut guard = self.loaded.borrow_mut();
        if let Err(error) = self.ensure_loaded(&mut guard, room, Part::Document) {
            warn!(room, %error, "room failed to load");
            let _ = ws.close(Some(INTERNAL_ERROR), Some("room storage failed"));
            return None;
        }
        let edited = match frame {
            FromRun::Output { stream, bytes } => {
                let text = String::from_utf8_lossy(&bytes);
                edit_consoles(&mut guard, text.len() + ENTRY_BYTES, |c| {
                    c.output(submission, stream, &text);
                })
            }
            FromRun::InputClosed => {
                edit_consoles(&mut guard, ENTRY_BYTES, |c| c.close_input(submission))
            }
            FromRun::Ended(json) => {
                let ending = ending_of(&json);
                let growth = ending.stdout.len() + ending.stderr.len() + ENTRY_BYTES * 4;
                let edited = edit_consoles(&mut guard, growth, |c| c.end(submission, &ending));
                if let Some(loaded) = guard.as_mut() {
                    loaded.runs.retain(|(s, _)| s != submission);
                }
                drop(guard);
                if let Err(error) = runs::finished(self, submission) {
                    warn!(room, submission, %error, "freeing the run's slot failed");
                }
                info!(room, submission, status = %ending.status, "run ended live");
                let _ = ws.close(Some(1000), Some("run ended"));
                return edited.ok().and_then(|(_, at)| at);
            }
        };
        match edited {
            Ok(((), at)) => at,
            Err(error) => {
                warn!(room, submission, %error, "run output not written");
                None
            }
        }
    }

    /// A run's channel closed: if the run had not ended, its console says the output is no
    /// longer live (its result still comes by polling).
    pub(super) fn lose_run(&self, room: &str, submission: &str) -> Option<u64> {
        let mut guard = self.loaded.borrow_mut();
        let loaded = match self.ensure_loaded(&mut guard, room, Part::Document) {
            Ok(loaded) => loaded,
            Err(error) => {
                warn!(room, %error, "room failed to load on a run channel's close");
                return None;
            }
        };
        loaded.runs.retain(|(s, _)| s != submission);
        info!(room, submission, "run channel closed");
        match edit_consoles(&mut guard, ENTRY_BYTES, |c| c.lose(submission)) {
            Ok(((), at)) => at,
            Err(error) => {
                warn!(room, submission, %error, "marking the run's console lost failed");
                None
            }
        }
    }

    /// A participant with edit rights typed into a live run: the line (or the end of input) is
    /// recorded in the console, with who typed it, and sent to the run.
    pub(super) fn run_input(
        &self,
        call: &FromWorker,
        body: &[u8],
    ) -> Result<Option<u64>, EdgeError> {
        let submission = call.run()?;
        let input = TypedInput::parse(body)?;
        let mut guard = self.loaded.borrow_mut();
        let loaded = self.admit(&mut guard, call.claims()?, Part::Document)?;
        let channel = loaded
            .runs
            .iter()
            .find(|(s, _)| s == submission)
            .map(|(_, ws)| ws.clone())
            .ok_or(Refused::NotLive)?;
        let growth = input.bytes() + ENTRY_BYTES;
        let (accepted, wake_at) = edit_consoles(&mut guard, growth, |c| {
            c.input(submission, &input.typed, &input.author)
        })?;
        accepted?;
        let frame = match &input.typed {
            Typed::Line(line) => ToRun::Line(format!("{line}\n").into_bytes()),
            Typed::EndOfInput => ToRun::EndOfInput,
        };
        if let Err(error) = channel.send_with_bytes(frame.encode()) {
            warn!(room = %call.room, submission, %error, "input could not reach the run");
        }
        Ok(wake_at)
    }
}

/// A console is live only while its run's channel is open: one the room lost with its
/// channels (a crash, a restart of the runtime) says so at the next client's sync (SyncStep2),
/// which follows every load. Returns when the room next has work.
pub(super) fn lose_orphaned_runs(slot: &mut Option<Loaded>) -> Option<u64> {
    let loaded = slot.as_mut()?;
    let open: Vec<String> = loaded.runs.iter().map(|(s, _)| s.clone()).collect();
    let name = loaded.name.clone();
    let orphaned: Vec<String> = live_runs(loaded.room.doc())
        .into_iter()
        .filter(|submission| !open.contains(submission))
        .collect();
    if orphaned.is_empty() {
        return None;
    }
    let lost = edit_consoles(slot, ENTRY_BYTES * orphaned.len(), |c| {
        for submission in &orphaned {
            c.lose(submission);
        }
    });
    match lost {
        Ok(((), at)) => {
            info!(room = %name, runs = orphaned.len(), "consoles without a channel marked lost");
            at
        }
        Err(error) => {
            warn!(room = %name, %error, "marking orphaned consoles lost failed");
            None
        }
    }
}

/// Edits the room's run consoles in one transaction (`growth`: a bound on what it adds) and
/// makes the change durable and heard, as a client's update would be. Returns `edit`'s answer
/// and when the room next has work.
fn edit_consoles<T>(
    slot: &mut Option<Loaded>,
    growth: usize,
    edit: impl FnOnce(&mut Consoles<'_, '_>) -> T,
) -> Result<(T, Option<u64>), EdgeError> {
    let loaded = slot.as_mut().ok_or(StorageError::NotLoaded)?;
    let (answer, effects) = loaded
        .room
        .edit(Date::now().as_millis(), growth, |txn| {
            edit(&mut Consoles::new(txn))
        })
        .ok_or(EdgeError::RoomFull)?;
    if !write(slot, &effects.store) {
        return Err(StorageError::WriteFailed.into());
    }
    if let Some(loaded) = slot.as_ref() {
        broadcast(loaded, None, &effects.broadcast);
    }
    Ok((answer, effects.wake_at))
}

/// How a run ended, from the stored result its channel sent (as JSON; what cannot be read
/// is left empty, and the console shows the run ended all the same).
fn ending_of(json: &str) -> Ending {
    #[derive(Deserialize)]
    struct Stored {
        status: String,
        #[serde(default)]
        time_limit: Option<String>,
        #[serde(default)]
        stdout: String,
        #[serde(default)]
        stderr: String,
        #[serde(default)]
        stdout_truncated: bool,
        #[serde(default)]
        stderr_truncated: bool,
    }
    match serde_json::from_str::<Stored>(json) {
        Ok(stored) => Ending {
            status: stored.status,
            time_limit: stored.time_limit,
            stdout: stored.stdout,
            stderr: stored.stderr,
            stdout_truncated: stored.stdout_truncated,
            stderr_truncated: stored.stderr_truncated,
        },
        Err(error) => {
            warn!(%error, "a run's end carried an unreadable result");
            Ending {
                status: "internal_error".into(),
                time_limit: None,
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
            }
        }
    }
}

/// The body of `POST /rooms/{room}/runs/{id}/input`: `{"line": "...", "by", "color"}` or
/// `{"eof": true, "by", "color"}`.
struct TypedInput {
    typed: Typed,
    author: Author,
}

impl TypedInput {
    /// The longest name shown with a line.
    const MAX_NAME_CHARS: usize = 64;

    fn parse(body: &[u8]) -> Result<Self, EdgeError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            line: Option<String>,
            #[serde(default)]
            eof: bool,
            by: String,
            color: String,
        }
        let body: Body =
            serde_json::from_slice(body).map_err(|e| EdgeError::InvalidBody(e.to_string()))?;
        let typed = match (body.line, body.eof) {
            (Some(line), false) => Typed::Line(line),
            (None, true) => Typed::EndOfInput,
            _ => {
                return Err(EdgeError::InvalidBody(
                    "give either `line` or `\"eof\": true`".into(),
                ))
            }
        };
        let name = body.by.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_NAME_CHARS {
            return Err(EdgeError::InvalidValue {
                field: "by",
                reason: format!("a name of 1 to {} characters", Self::MAX_NAME_CHARS),
            });
        }
        let color = &body.color;
        if color.len() != 7
            || !color.starts_with('#')
            || !color[1..].bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(EdgeError::InvalidValue {
                field: "color",
                reason: "a colour #rrggbb".into(),
            });
        }
        Ok(TypedInput {
            typed,
            author: Author {
                name: name.to_owned(),
                color: color.to_owned(),
            },
        })
    }

    fn bytes(&self) -> usize {
        let typed = match &self.typed {
            Typed::Line(line) => line.len(),
            Typed::EndOfInput => 0,
        };
        typed + self.author.name.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_input_is_a_line_or_the_end_with_a_name_and_a_colour() {
        let line =
            TypedInput::parse(br##"{"line":"Ada","by":" Grace ","color":"#12a594"}"##).unwrap();
        assert_eq!(line.typed, Typed::Line("Ada".into()));
        assert_eq!(line.author.name, "Grace");
        let end = TypedInput::parse(br##"{"eof":true,"by":"G","color":"#000000"}"##).unwrap();
        assert_eq!(end.typed, Typed::EndOfInput);
        for (body, code) in [
            (&br#"not json"#[..], "invalid_body"),
            (br##"{"by":"G","color":"#000000"}"##, "invalid_body"),
            (
                br##"{"line":"x","eof":true,"by":"G","color":"#000000"}"##,
                "invalid_body",
            ),
            (
                br##"{"line":"x","by":"G","color":"#000000","extra":1}"##,
                "invalid_body",
            ),
            (
                br##"{"line":"x","by":"  ","color":"#000000"}"##,
                "invalid_value",
            ),
            (br##"{"line":"x","by":"G","color":"red"}"##, "invalid_value"),
            (
                br##"{"line":"x","by":"G","color":"#00000g"}"##,
                "invalid_value",
            ),
        ] {
            let error = TypedInput::parse(body).err().expect("refused");
            assert_eq!(
                error.status_and_code().1,
                code,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(
            r##"{{"line":"x","by":"{}","color":"#000000"}}"##,
            "n".repeat(65)
        );
        assert!(TypedInput::parse(long.as_bytes()).is_err());
    }

    #[test]
    fn a_runs_end_reads_the_stored_result_and_survives_a_bad_one() {
        let ending = ending_of(
            r#"{"status":"time_limit_exceeded","time_limit":"idle","stdout":"a","stderr":"","stdout_truncated":true,"exit_code":null}"#,
        );
        assert_eq!(ending.status, "time_limit_exceeded");
        assert_eq!(ending.time_limit.as_deref(), Some("idle"));
        assert!(ending.stdout_truncated && !ending.stderr_truncated);
        assert_eq!(ending_of("{").status, "internal_error");
    }
}
