//! A room's run slots: at most [`MAX_RUNS_PER_ROOM`] runs queued or running per room.
//!
//! Each run started here is followed live (Contract 4): the room names its submission id and
//! signs a run credential for it, which the exec API puts in the job; the fleet worker opens
//! the run's channel with it (`room_object`), and only a run holding a slot may. The channel's
//! end frees the slot at once.
//!
//! A run started through the edge takes a slot in the room's object before it is forwarded to
//! the exec API, synchronously (so two concurrent starts cannot both take the last slot), and
//! gives it back if the exec API refuses it. A slot is freed lazily: only when the room is
//! full does the object ask the exec API about each held run, and every slot whose run has
//! ended (or that the exec API no longer knows) is freed. So an idle room does no work, and a
//! run's end needs no message from the fleet.
//!
//! ```sql
//! runs(slot INTEGER PRIMARY KEY, submission TEXT, reserved_at INTEGER, checked_at INTEGER)
//! ```

use codebox_access::run_credential::new_submission_id;
use codebox_access::RunClaims;
use serde::Deserialize;
use worker::{Method, Response, SqlStorage};

use crate::auth::now_s;
use crate::config::Config;
use crate::exec_proxy::{submission_status, LiveHeaders, Upstream};
use crate::http::{EdgeError, StorageError};
use crate::internal::FromWorker;
use crate::room_object::Room;
use crate::sql::{exec, int, integer, optional_text, rows, text};

/// Runs one room may have queued or running at once (Contract 3).
pub(crate) const MAX_RUNS_PER_ROOM: usize = 4;
/// What a refused run is told to wait, in seconds: about one short run.
const RETRY_AFTER_S: u64 = 3;
/// A slot reserved this long ago whose forward never reported back (the request died) is free.
const ABANDONED_RESERVATION_S: i64 = 30;
/// A held run is asked about at most this often (seconds), however often the room is full.
const RECHECK_AFTER_S: i64 = 2;
/// How long a run credential opens the run's channel (seconds): the queue, a compile and an
/// interactive run's wall time fit with room to spare.
const RUN_CREDENTIAL_TTL_S: u64 = 300;
/// Contract 2's statuses in which a run still holds its slot.
const ACTIVE_STATUSES: [&str; 2] = ["queued", "running"];

struct Slot {
    slot: i64,
    submission: Option<String>,
    reserved_at: i64,
    checked_at: i64,
}

struct Slots {
    sql: SqlStorage,
}

impl Slots {
    fn open(sql: SqlStorage) -> Result<Self, EdgeError> {
        exec(
            &sql,
            "CREATE TABLE IF NOT EXISTS runs (slot INTEGER PRIMARY KEY, submission TEXT, \
             reserved_at INTEGER NOT NULL, checked_at INTEGER NOT NULL)",
            vec![],
        )?;
        Ok(Slots { sql })
    }

    fn held(&self) -> Result<Vec<Slot>, EdgeError> {
        rows(
            &self.sql,
            "SELECT slot, submission, reserved_at, checked_at FROM runs",
            vec![],
        )?
        .iter()
        .map(|row| {
            Ok(Slot {
                slot: integer(row, 0)?,
                submission: optional_text(row, 1)?,
                reserved_at: integer(row, 2)?,
                checked_at: integer(row, 3)?,
            })
        })
        .collect()
    }

    /// Takes a free slot, or `None` when the room is full.
    fn reserve(&self, now: i64) -> Result<Option<i64>, EdgeError> {
        if self.held()?.len() >= MAX_RUNS_PER_ROOM {
            return Ok(None);
        }
        let inserted = rows(
            &self.sql,
            "INSERT INTO runs (submission, reserved_at, checked_at) VALUES (NULL, ?, 0) \
             RETURNING slot",
            vec![int(now)],
        )?;
        let slot = inserted
            .first()
            .map(|row| integer(row, 0))
            .transpose()?
            .ok_or(StorageError::NoRow("reserving a run slot"))?;
        Ok(Some(slot))
    }

    fn assign(&self, slot: i64, submission: &str) -> Result<(), EdgeError> {
        exec(
            &self.sql,
            "UPDATE runs SET submission = ? WHERE slot = ?",
            vec![text(submission), int(slot)],
        )
        .map(drop)
    }

    fn release(&self, slot: i64) -> Result<(), EdgeError> {
        exec(
            &self.sql,
            "DELETE FROM runs WHERE slot = ?",
            vec![int(slot)],
        )
        .map(drop)
    }

    fn checked(&self, slot: i64, now: i64) -> Result<(), EdgeError> {
        exec(
            &self.sql,
            "UPDATE runs SET checked_at = ? WHERE slot = ?",
            vec![int(now), int(slot)],
        )
        .map(drop)
    }
}

/// Whether the room holds a slot for `submission` (only such a run may stream into it).
pub(crate) fn holds(room: &Room, submission: &str) -> Result<bool, EdgeError> {
    let slots = Slots::open(room.sql())?;
    Ok(slots
        .held()?
        .iter()
        .any(|held| held.submission.as_deref() == Some(submission)))
}

/// `submission` ended (its channel said so): its slot is free at once.
pub(crate) fn finished(room: &Room, submission: &str) -> Result<(), EdgeError> {
    exec(
        &room.sql(),
        "DELETE FROM runs WHERE submission = ?",
        vec![text(submission)],
    )
    .map(drop)
}

/// Starts a run from the room: checks the caller's link generation, takes a slot, forwards the
/// submission to the exec API with the room's id, and keeps the slot if it was accepted.
pub(crate) async fn start(
    room: &Room,
    config: &Config,
    call: &FromWorker,
    body: Vec<u8>,
) -> Result<Response, EdgeError> {
    room.check(call.claims()?)?;
    let slots = Slots::open(room.sql())?;
    let slot = match slots.reserve(now_s() as i64)? {
        Some(slot) => slot,
        None => {
            free_ended(&slots, config).await?;
            // The room may have been rotated, or filled by another start, while we awaited.
            room.check(call.claims()?)?;
            slots
                .reserve(now_s() as i64)?
                .ok_or(EdgeError::TooManyRuns {
                    limit: MAX_RUNS_PER_ROOM,
                    retry_after: RETRY_AFTER_S,
                })?
        }
    };
    // The room follows the run live: it names the run, and signs the fleet's way in.
    let mut random = [0u8; 16];
    getrandom::getrandom(&mut random)
        .map_err(|e| EdgeError::Config(format!("no randomness: {e}")))?;
    let submission = new_submission_id(random);
    let credential = config.run_key.sign(&RunClaims {
        room: call.room.clone(),
        submission: submission.clone(),
        expires_at: now_s() + RUN_CREDENTIAL_TTL_S,
    });
    slots.assign(slot, &submission)?;
    let forwarded = Upstream {
        method: Method::Post,
        path: "/v1/submissions",
        body: Some(&body),
        client_ip: call.client_ip.as_deref(),
        room: Some(&call.room),
        live: Some(LiveHeaders {
            submission: &submission,
            credential: &credential,
        }),
    }
    .send(config)
    .await;
    let mut response = match forwarded {
        Ok(response) => response,
        Err(error) => {
            slots.release(slot)?;
            return Err(error);
        }
    };
    let status = response.status_code();
    let answer = response.bytes().await?;
    match accepted_id(status, &answer) {
        Some(id) if id == submission => {
            tracing::info!(room = %call.room, submission = %id, "run started");
        }
        Some(id) => {
            // An exec API that names its own ids runs this one without a live channel.
            slots.assign(slot, &id)?;
            tracing::warn!(room = %call.room, submission = %id, "run started under another id");
        }
        None => slots.release(slot)?,
    }
    let mut relayed = Response::from_bytes(answer)?.with_status(status);
    for (name, value) in response.headers() {
        if matches!(name.as_str(), "content-type" | "retry-after") {
            relayed.headers_mut().set(&name, &value)?;
        }
    }
    Ok(relayed)
}

/// The submission id of an exec API answer that accepted a run.
fn accepted_id(status: u16, answer: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Accepted {
        id: String,
    }
    if !(200..300).contains(&status) {
        return None;
    }
    serde_json::from_slice::<Accepted>(answer)
        .ok()
        .map(|a| a.id)
}

/// Frees every slot whose run has ended, or whose reservation was abandoned.
async fn free_ended(slots: &Slots, config: &Config) -> Result<(), EdgeError> {
    let now = now_s() as i64;
    for held in slots.held()? {
        let Some(id) = &held.submission else {
            if now - held.reserved_at >= ABANDONED_RESERVATION_S {
                slots.release(held.slot)?;
            }
            continue;
        };
        if now - held.checked_at < RECHECK_AFTER_S {
            continue;
        }
        match submission_status(config, id).await? {
            Some(status) if ACTIVE_STATUSES.contains(&status.as_str()) => {
                slots.checked(held.slot, now)?
            }
            _ => slots.release(held.slot)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accepted_answer_keeps_its_slot() {
        assert_eq!(
            accepted_id(202, br#"{"id":"abc","status":"queued"}"#),
            Some("abc".into())
        );
        assert_eq!(
            accepted_id(429, br#"{"error":{"code":"rate_limited"}}"#),
            None
        );
        assert_eq!(accepted_id(202, b"not json"), None);
    }
}
