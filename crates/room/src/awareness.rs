//! Awareness (presence): who is in the room, their names, colours and cursors.
//!
//! Awareness is the y-protocols side channel that is never stored. Each client id carries a
//! clock and a JSON state; a higher clock wins, and the JSON `null` at an equal or higher clock
//! means "gone". This module keeps the room's view of it and, unlike a plain relay, remembers
//! which connection owns each live client id, so that when a socket drops without saying
//! goodbye the others are told exactly those ids are gone, and no others.
//!
//! Ownership: a connection may change an id it owns, or introduce a new one (an id never seen,
//! or one that is gone and owned by nobody). An entry for an id another connection owns is
//! dropped without a word: an honest client that reconnected on a new socket while its old one
//! is still half-open sends exactly that, and so does every stock client that times out a peer
//! it has not heard from. One exception follows y-protocols' own timeout: an id its owner has
//! not renewed for [`OUTDATED_MS`] may be taken over (stock clients renew every 15 seconds).
//! So no connection can remove or overwrite another's live presence.
//!
//! Renewals: a stock client re-sends its unchanged state every 15 seconds so that peers, which
//! drop a state not heard of for [`OUTDATED_MS`], keep it. Such an entry changes nothing the
//! room keeps across hibernation, so it is not saved with the socket; and when many arrive at
//! once (providers that joined together renew together) relaying each to every socket would
//! send N² frames. So the first renewal after a quiet [`RENEWAL_WINDOW_MS`] is relayed at once
//! and the ones that follow within the window wait and go out together, in one frame to every
//! socket (the sender's own is its echo), when the window closes: [`Renewals`].
//!
//! Unsaved renewals leave a gap after a wake: a state restored from its socket's attachment
//! carries the clock of its last change, and its client may have renewed it many times since.
//! A removal announced at that clock plus one would lose to what every peer holds, and they
//! would show a departed client until they time it out. So a restored state that its owner has
//! not renewed since the wake is announced gone [`RESTORED_CLOCK_MARGIN`] past its clock. Should
//! the client still be alive (it reconnected with the same id), its next entry loses to that
//! removal; the room then tells it the removal ([`Accepted::contested`]), and the client, as
//! y-protocols does when it hears itself removed, raises its clock past it and announces
//! itself again. The same answer brings back at once a client that reconnects after an
//! ordinary close, which stock servers show again only after two renewals.
//!
//! Limits (a refused frame changes nothing and closes its sender): a state is valid JSON of at
//! most [`MAX_STATE_BYTES`]; one connection owns at most [`MAX_IDS_PER_CONNECTION`] ids and
//! [`MAX_BYTES_PER_CONNECTION`] of states; the room holds at most [`MAX_ROOM_BYTES`] of live
//! states; a clock is below `u32::MAX`, and the removal the room announces on close (the clock
//! plus one, but never past what a client may send, since clients echo it) never wraps. A
//! viewer's state must be a JSON object, and the room marks it with `"role":"view"` (see
//! `stamp_viewer`); everything the room keeps and relays stays within these limits, so that
//! no client is closed for echoing it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use codebox_access::Role;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::{CloseReason, ConnId};

/// Largest awareness state (its JSON text) a client may send.
pub const MAX_STATE_BYTES: usize = 4 * 1024;
/// The most awareness client ids one connection may own at once (a browser tab uses one).
pub const MAX_IDS_PER_CONNECTION: usize = 4;
/// The most state bytes one connection may own in all.
pub const MAX_BYTES_PER_CONNECTION: usize = 8 * 1024;
/// The most live state bytes a room holds in all.
pub const MAX_ROOM_BYTES: usize = 1024 * 1024;
/// How long an owner may go without renewing an id before another connection may take it
/// over: y-protocols' `outdatedTimeout`, after which every peer drops the state anyway.
pub const OUTDATED_MS: u64 = 30_000;
/// Renewals that follow one another within this window are relayed together. Well within
/// [`OUTDATED_MS`] less the 15-second renewal period, so no peer times a state out.
pub const RENEWAL_WINDOW_MS: u64 = 1000;
/// How far past a state's restored clock its removal is announced (see the module's
/// explanation): more renewals than a client makes in 11 days at y-protocols' 15 s.
pub const RESTORED_CLOCK_MARGIN: u32 = 1 << 16;
/// The highest clock a client may send, and the highest the room announces.
const MAX_CLOCK: u32 = u32::MAX - 1;
/// How many "gone" entries are remembered (to reject stale updates) before they are forgotten.
const MAX_TOMBSTONES: usize = 4096;
/// The JSON state that means "this client is gone".
const GONE: &str = "null";
/// The key the room sets in a viewer's state.
const ROLE_KEY: &str = "role";

/// One awareness entry as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwarenessEntry {
    /// The Yjs client id (53 bits in practice).
    pub client: u64,
    /// Logical clock; a higher one wins.
    pub clock: u32,
    /// The JSON state, or `None` when the client is gone.
    pub state: Option<Arc<str>>,
}

/// Why an awareness update was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwarenessError {
    /// The update's binary layout is broken.
    #[error("malformed awareness update")]
    Malformed,
    /// A state was not valid JSON.
    #[error("awareness state for client {0} is not valid JSON")]
    InvalidJson(u64),
    /// A clock of `u32::MAX` or more.
    #[error("awareness clock for client {0} is out of range")]
    ClockOutOfRange(u64),
    /// A state over [`MAX_STATE_BYTES`].
    #[error("awareness state for client {client} is {size} bytes, over the {limit}-byte limit")]
    StateTooLarge {
        /// The client id.
        client: u64,
        /// The state's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A viewer's state that is not a JSON object.
    #[error("awareness state for client {0} must be a JSON object")]
    NotAnObject(u64),
}

/// Why an awareness update was refused: it would take its sender or the room over a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// The connection would own too many client ids.
    #[error("one connection may own at most {limit} awareness client ids")]
    TooManyIds {
        /// The limit.
        limit: usize,
    },
    /// The connection's states would be too large in all.
    #[error("awareness states of one connection may take at most {limit} bytes")]
    ConnectionBytes {
        /// The limit.
        limit: usize,
    },
    /// The room's live states would be too large in all.
    #[error("room presence is full: live awareness states may take at most {limit} bytes")]
    RoomBytes {
        /// The limit.
        limit: usize,
    },
}

/// What [`Presence::apply`] accepted of an update.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Entries that changed a state (or removed one): relayed at once, saved with the socket.
    pub(crate) changed: Vec<AwarenessEntry>,
    /// Entries that renewed their owner's state unchanged, with a higher clock.
    pub(crate) renewed: Vec<AwarenessEntry>,
    /// Removals that beat a state the sender claimed for a gone id: told to the sender alone,
    /// so that a client still alive raises its clock past them.
    pub(crate) contested: Vec<AwarenessEntry>,
}

/// Renewals waiting to be relayed together (see the module's explanation).
#[derive(Debug, Default)]
pub(crate) struct Renewals {
    /// The latest waiting renewal of each client id.
    waiting: BTreeMap<u64, AwarenessEntry>,
    /// When renewals were last relayed.
    relayed_at_ms: Option<u64>,
}

impl Renewals {
    /// Queues renewals accepted at `now_ms`.
    pub(crate) fn add(&mut self, entries: Vec<AwarenessEntry>, now_ms: u64) {
        if entries.is_empty() {
            return;
        }
        for entry in entries {
            self.waiting.insert(entry.client, entry);
        }
        // The first renewal after a quiet window is due at once.
        if self
            .relayed_at_ms
            .is_none_or(|at| now_ms.saturating_sub(at) >= RENEWAL_WINDOW_MS)
        {
            self.relayed_at_ms = Some(now_ms.saturating_sub(RENEWAL_WINDOW_MS));
        }
    }

    /// When the waiting renewals are due, if any wait.
    pub(crate) fn deadline(&self) -> Option<u64> {
        if self.waiting.is_empty() {
            return None;
        }
        Some(self.relayed_at_ms.map_or(0, |at| at + RENEWAL_WINDOW_MS))
    }

    /// Whether renewals are due at `now_ms`.
    pub(crate) fn is_due(&self, now_ms: u64) -> bool {
        self.deadline().is_some_and(|at| at <= now_ms)
    }

    /// Takes the waiting renewals, relayed at `now_ms`.
    pub(crate) fn take(&mut self, now_ms: u64) -> Vec<AwarenessEntry> {
        self.relayed_at_ms = Some(now_ms);
        std::mem::take(&mut self.waiting).into_values().collect()
    }
}

/// Decodes an awareness update (the payload of a type-1 message).
pub fn decode(payload: &[u8]) -> Result<Vec<AwarenessEntry>, AwarenessError> {
    let mut cursor = Cursor::new(payload);
    let count: u64 = cursor.read_var().map_err(|_| AwarenessError::Malformed)?;
    // Grown as entries decode: `count` is only the sender's claim.
    let mut entries = Vec::new();
    for _ in 0..count {
        let client: u64 = cursor.read_var().map_err(|_| AwarenessError::Malformed)?;
        let clock: u64 = cursor.read_var().map_err(|_| AwarenessError::Malformed)?;
        let clock = u32::try_from(clock)
            .ok()
            .filter(|&clock| clock <= MAX_CLOCK)
            .ok_or(AwarenessError::ClockOutOfRange(client))?;
        let json = cursor
            .read_string()
            .map_err(|_| AwarenessError::Malformed)?;
        if json.len() > MAX_STATE_BYTES {
            return Err(AwarenessError::StateTooLarge {
                client,
                size: json.len(),
                limit: MAX_STATE_BYTES,
            });
        }
        let state = if json == GONE {
            None
        } else {
            if serde_json::from_str::<serde::de::IgnoredAny>(json).is_err() {
                return Err(AwarenessError::InvalidJson(client));
            }
            Some(Arc::from(json))
        };
        entries.push(AwarenessEntry {
            client,
            clock,
            state,
        });
    }
    if cursor.has_content() {
        return Err(AwarenessError::Malformed);
    }
    Ok(entries)
}

/// Encodes entries as an awareness update payload.
pub fn encode<'a>(entries: impl ExactSizeIterator<Item = &'a AwarenessEntry>) -> Vec<u8> {
    let mut out = Vec::new();
    out.write_var(entries.len() as u64);
    for entry in entries {
        out.write_var(entry.client);
        out.write_var(entry.clock);
        out.write_string(entry.state.as_deref().unwrap_or(GONE));
    }
    out
}

/// Cuts `entries` to fit `budget` bytes of saved state (a Durable Object socket attachment
/// holds at most 16 KiB): the largest states are dropped first, ids and clocks are kept, so
/// ownership (and the removal on close) survives even when the state does not.
pub fn fit_budget(entries: &mut [AwarenessEntry], budget: usize) {
    const PER_ENTRY: usize = 24; // id, clock and framing, generously
    let size = |e: &AwarenessEntry| PER_ENTRY + e.state.as_ref().map_or(0, |s| s.len());
    let mut total: usize = entries.iter().map(size).sum();
    let mut by_size: Vec<usize> = (0..entries.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(size(&entries[i])));
    for i in by_size {
        if total <= budget {
            break;
        }
        total -= entries[i].state.take().map_or(0, |s| s.len());
    }
}

/// Rewrites a viewer's state so that everyone sees it is read-only: the JSON object it sent,
/// with `"role":"view"` first (replacing any `role` the client put there) and its other keys
/// after it in their order, their values byte for byte.
/// The stamped state is held to [`MAX_STATE_BYTES`] too, since every client echoes it back.
pub(crate) fn stamp_viewer(client: u64, state: &str) -> Result<Arc<str>, AwarenessError> {
    let not_an_object = |_| AwarenessError::NotAnObject(client);
    let Fields(fields) = serde_json::from_str(state).map_err(not_an_object)?;
    let role = serde_json::to_string(Role::View.as_str()).map_err(not_an_object)?;
    let mut out = String::with_capacity(state.len() + ROLE_KEY.len() + role.len() + 4);
    out.push_str("{\"");
    out.push_str(ROLE_KEY);
    out.push_str("\":");
    out.push_str(&role);
    for (key, value) in fields {
        if key != ROLE_KEY {
            out.push(',');
            out.push_str(&serde_json::to_string(&key).map_err(not_an_object)?);
            out.push(':');
            out.push_str(value.get());
        }
    }
    out.push('}');
    if out.len() > MAX_STATE_BYTES {
        return Err(AwarenessError::StateTooLarge {
            client,
            size: out.len(),
            limit: MAX_STATE_BYTES,
        });
    }
    Ok(Arc::from(out))
}

/// A JSON object's members in their order, values unparsed.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    fields.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[derive(Debug, Clone)]
struct Slot {
    clock: u32,
    state: Option<Arc<str>>,
    owner: Option<ConnId>,
    /// When its owner last renewed it; `None` until the first frame after a rejoin.
    renewed_at_ms: Option<u64>,
    /// Restored from its socket's attachment and not sent by its owner since: its client's
    /// clock may be ahead of this one by the renewals made since it was saved.
    restored: bool,
}

/// What one slot adds to the room's and its owner's totals.
#[derive(Clone, Copy)]
struct Tally {
    owner: Option<ConnId>,
    bytes: usize,
    tombstone: bool,
}

impl Tally {
    fn of(slot: &Slot) -> Self {
        Tally {
            owner: slot.owner,
            bytes: slot.state.as_ref().map_or(0, |s| s.len()),
            tombstone: slot.state.is_none() && slot.owner.is_none(),
        }
    }
}

/// The ids one connection owns and the bytes of their states.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Holdings {
    ids: BTreeSet<u64>,
    bytes: usize,
}

/// What one connection holds, and the room in all, against the budgets.
#[derive(Debug, Clone, Copy)]
struct Usage {
    ids: usize,
    bytes: usize,
    room_bytes: usize,
}

/// The room's awareness states and which connection owns each live one.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    slots: HashMap<u64, Slot>,
    owners: HashMap<ConnId, Holdings>,
    live_bytes: usize,
    tombstones: usize,
    /// Some slots were restored and wait for the first clock reading to count as renewed.
    unstamped: bool,
}

impl Presence {
    /// Applies entries sent by `conn` at `now_ms`; returns the entries that were accepted (to
    /// relay), split into changes and renewals, or refuses the whole update, changing nothing, if it would pass a budget or, from
    /// a viewer, carries a state it may apply that is not a JSON object. A viewer's states are
    /// stamped (see [`stamp_viewer`]); those of other clients it echoes, which it may not
    /// apply, are dropped unread.
    ///
    /// Follows y-protocols' `applyAwarenessUpdate` (an entry wins with a higher clock, or with
    /// an equal clock when it removes a live state), within the ownership rules above.
    pub(crate) fn apply(
        &mut self,
        conn: ConnId,
        entries: Vec<AwarenessEntry>,
        now_ms: u64,
        viewer: bool,
    ) -> Result<Accepted, CloseReason> {
        self.stamp_restored(now_ms);
        let before = self.usage(conn);
        let mut undo = Vec::new();
        let mut accepted = Accepted::default();
        let mut outcome = Ok(());
        for mut entry in entries {
            if !self.may_apply(conn, &entry, now_ms) {
                accepted.contested.extend(self.removal_beating(&entry));
                continue;
            }
            if let (true, Some(state)) = (viewer, &entry.state) {
                match stamp_viewer(entry.client, state) {
                    Ok(stamped) => entry.state = Some(stamped),
                    Err(invalid) => {
                        outcome = Err(invalid.into());
                        break;
                    }
                }
            }
            let slot = Slot {
                clock: entry.clock,
                state: entry.state.clone(),
                owner: entry.state.as_ref().map(|_| conn),
                renewed_at_ms: Some(now_ms),
                restored: false,
            };
            let old = self.put(entry.client, Some(slot));
            let renewal = old.as_ref().is_some_and(|old| {
                old.owner == Some(conn) && old.state.is_some() && old.state == entry.state
            });
            undo.push((entry.client, old));
            if renewal {
                accepted.renewed.push(entry);
            } else {
                accepted.changed.push(entry);
            }
        }
        if let Err(reason) = outcome.and_then(|()| Ok(self.within_budget(conn, before)?)) {
            for (client, old) in undo.into_iter().rev() {
                self.put(client, old);
            }
            return Err(reason);
        }
        self.forget_tombstones_if_many();
        Ok(accepted)
    }

    /// Marks every id owned by `conn` as gone; returns the removal entries (to relay).
    pub(crate) fn remove_connection(&mut self, conn: ConnId) -> Vec<AwarenessEntry> {
        let owned: Vec<u64> = self
            .owners
            .get(&conn)
            .map(|held| held.ids.iter().copied().collect())
            .unwrap_or_default();
        let mut removed = Vec::with_capacity(owned.len());
        for client in owned {
            let Some((clock, restored)) = self.slots.get(&client).map(|s| (s.clock, s.restored))
            else {
                continue;
            };
            // One more (past a restored clock, the margin), as far as a client may send: stock
            // clients echo the removal back, and an equal clock removes a live state just as
            // well. Never wraps.
            let step = if restored { RESTORED_CLOCK_MARGIN } else { 1 };
            let clock = clock.saturating_add(step).min(MAX_CLOCK);
            let gone = Slot {
                clock,
                state: None,
                owner: None,
                renewed_at_ms: None,
                restored: false,
            };
            self.put(client, Some(gone));
            removed.push(AwarenessEntry {
                client,
                clock,
                state: None,
            });
        }
        removed.sort_by_key(|e| e.client);
        self.forget_tombstones_if_many();
        removed
    }

    /// Whether `entry` is still the live state of its client id (not changed or gone since).
    pub(crate) fn is_current(&self, entry: &AwarenessEntry) -> bool {
        self.slots
            .get(&entry.client)
            .is_some_and(|slot| slot.clock == entry.clock && slot.state.is_some())
    }

    /// Every live state, as entries, by client id.
    pub(crate) fn live(&self) -> Vec<AwarenessEntry> {
        let mut live: Vec<_> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.state.is_some())
            .map(|(&client, slot)| entry(client, slot))
            .collect();
        live.sort_by_key(|e| e.client);
        live
    }

    /// The entries `conn` owns (what must survive hibernation for it), by client id.
    pub(crate) fn owned_by(&self, conn: ConnId) -> Vec<AwarenessEntry> {
        let Some(held) = self.owners.get(&conn) else {
            return Vec::new();
        };
        held.ids
            .iter()
            .filter_map(|&client| Some(entry(client, self.slots.get(&client)?)))
            .collect()
    }

    /// Re-registers entries owned by `conn`, as saved before hibernation; they count as
    /// renewed at the first frame that follows. An entry saved without its state (it did not
    /// fit the attachment) is not shown to newcomers, but its removal is still announced when
    /// `conn` closes. Where two connections saved the same id, the higher clock owns it.
    pub(crate) fn restore(&mut self, conn: ConnId, entries: Vec<AwarenessEntry>) {
        for entry in entries {
            let newer = self
                .slots
                .get(&entry.client)
                .is_some_and(|s| s.clock > entry.clock);
            if !newer {
                let slot = Slot {
                    clock: entry.clock,
                    state: entry.state,
                    owner: Some(conn),
                    renewed_at_ms: None,
                    restored: true,
                };
                self.put(entry.client, Some(slot));
                self.unstamped = true;
            }
        }
    }

    /// Whether `conn` may apply `entry` now: it must win by clock, and the id must be its own,
    /// new (a removal of an id nobody owns changes nothing), or left unrenewed by its owner.
    fn may_apply(&self, conn: ConnId, entry: &AwarenessEntry, now_ms: u64) -> bool {
        let Some(slot) = self.slots.get(&entry.client) else {
            return entry.state.is_some();
        };
        let wins = slot.clock < entry.clock
            || (slot.clock == entry.clock && entry.state.is_none() && slot.state.is_some());
        wins && match slot.owner {
            Some(owner) if owner == conn => true,
            Some(_) => slot
                .renewed_at_ms
                .is_some_and(|renewed| now_ms.saturating_sub(renewed) >= OUTDATED_MS),
            None => entry.state.is_some(),
        }
    }

    /// The room's removal of `entry`'s id, if `entry` claims a state for that gone id and
    /// loses to the removal by clock.
    fn removal_beating(&self, entry: &AwarenessEntry) -> Option<AwarenessEntry> {
        let slot = self.slots.get(&entry.client)?;
        let gone = slot.state.is_none() && slot.owner.is_none();
        (gone && entry.state.is_some() && slot.clock >= entry.clock)
            .then(|| self::entry(entry.client, slot))
    }

    /// Refuses the outcome of `conn`'s update if it grew `conn`'s holdings or the room's
    /// states past a limit (`before` is how things stood before it).
    fn within_budget(&self, conn: ConnId, before: Usage) -> Result<(), OverBudget> {
        let after = self.usage(conn);
        if after.ids > MAX_IDS_PER_CONNECTION && after.ids > before.ids {
            return Err(OverBudget::TooManyIds {
                limit: MAX_IDS_PER_CONNECTION,
            });
        }
        if after.bytes > MAX_BYTES_PER_CONNECTION && after.bytes > before.bytes {
            return Err(OverBudget::ConnectionBytes {
                limit: MAX_BYTES_PER_CONNECTION,
            });
        }
        if after.room_bytes > MAX_ROOM_BYTES && after.room_bytes > before.room_bytes {
            return Err(OverBudget::RoomBytes {
                limit: MAX_ROOM_BYTES,
            });
        }
        Ok(())
    }

    fn usage(&self, conn: ConnId) -> Usage {
        let held = self.owners.get(&conn);
        Usage {
            ids: held.map_or(0, |held| held.ids.len()),
            bytes: held.map_or(0, |held| held.bytes),
            room_bytes: self.live_bytes,
        }
    }

    /// Gives restored slots the time of the first frame after a rejoin.
    fn stamp_restored(&mut self, now_ms: u64) {
        if std::mem::take(&mut self.unstamped) {
            for slot in self.slots.values_mut() {
                if slot.owner.is_some() && slot.renewed_at_ms.is_none() {
                    slot.renewed_at_ms = Some(now_ms);
                }
            }
        }
    }

    /// Sets (or, with `None`, forgets) the slot of `client`, keeping the totals; returns the
    /// slot it replaced.
    fn put(&mut self, client: u64, slot: Option<Slot>) -> Option<Slot> {
        let new = slot.as_ref().map(Tally::of);
        let old = match slot {
            Some(slot) => self.slots.insert(client, slot),
            None => self.slots.remove(&client),
        };
        if let Some(old) = old.as_ref().map(Tally::of) {
            self.count(client, old, false);
        }
        if let Some(new) = new {
            self.count(client, new, true);
        }
        old
    }

    fn count(&mut self, client: u64, tally: Tally, add: bool) {
        if add {
            self.live_bytes += tally.bytes;
            self.tombstones += usize::from(tally.tombstone);
        } else {
            self.live_bytes -= tally.bytes;
            self.tombstones -= usize::from(tally.tombstone);
        }
        let Some(owner) = tally.owner else {
            return;
        };
        let holdings = self.owners.entry(owner).or_default();
        if add {
            holdings.ids.insert(client);
            holdings.bytes += tally.bytes;
        } else {
            holdings.ids.remove(&client);
            holdings.bytes -= tally.bytes;
            if holdings.ids.is_empty() {
                self.owners.remove(&owner);
            }
        }
    }

    fn forget_tombstones_if_many(&mut self) {
        if self.tombstones > MAX_TOMBSTONES {
            self.slots
                .retain(|_, slot| slot.state.is_some() || slot.owner.is_some());
            self.tombstones = 0;
        }
    }
}

fn entry(client: u64, slot: &Slot) -> AwarenessEntry {
    AwarenessEntry {
        client,
        clock: slot.clock,
        state: slot.state.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    impl Presence {
        /// `apply`, with the changes and the renewals it accepted in one list.
        fn apply_all(
            &mut self,
            conn: ConnId,
            entries: Vec<AwarenessEntry>,
            now_ms: u64,
            viewer: bool,
        ) -> Result<Vec<AwarenessEntry>, CloseReason> {
            let accepted = self.apply(conn, entries, now_ms, viewer)?;
            Ok(accepted
                .changed
                .into_iter()
                .chain(accepted.renewed)
                .collect())
        }
    }

    fn live(client: u64, clock: u32, json: &str) -> AwarenessEntry {
        AwarenessEntry {
            client,
            clock,
            state: Some(Arc::from(json)),
        }
    }

    fn gone(client: u64, clock: u32) -> AwarenessEntry {
        AwarenessEntry {
            client,
            clock,
            state: None,
        }
    }

    fn ids(entries: &[AwarenessEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.client).collect()
    }

    /// The totals kept incrementally match a count from scratch.
    fn assert_totals(presence: &Presence) {
        let live_bytes: usize = presence
            .slots
            .values()
            .map(|s| s.state.as_ref().map_or(0, |s| s.len()))
            .sum();
        assert_eq!(presence.live_bytes, live_bytes);
        let tombstones = presence.slots.values().filter(|s| Tally::of(s).tombstone);
        assert_eq!(presence.tombstones, tombstones.count());
        let mut owners: HashMap<ConnId, Holdings> = HashMap::new();
        for (&client, slot) in &presence.slots {
            if let Some(owner) = slot.owner {
                let held = owners.entry(owner).or_default();
                held.ids.insert(client);
                held.bytes += Tally::of(slot).bytes;
            }
        }
        assert_eq!(presence.owners, owners);
    }

    #[test]
    fn round_trips_through_the_wire_format() {
        let entries = vec![live(1, 3, r#"{"user":{"name":"ada"}}"#), gone(2, 7)];
        assert_eq!(decode(&encode(entries.iter())).unwrap(), entries);
    }

    #[test]
    fn an_unchanged_state_with_a_higher_clock_is_a_renewal() {
        let mut presence = Presence::default();
        let first = presence.apply(1, vec![live(10, 1, r#"{"a":1}"#)], NOW, false);
        assert_eq!(
            first.map(|a| (a.changed.len(), a.renewed.len())),
            Ok((1, 0))
        );
        let renewed = presence
            .apply(1, vec![live(10, 2, r#"{"a":1}"#)], NOW + 15_000, false)
            .unwrap();
        assert_eq!(
            (renewed.changed, renewed.renewed),
            (vec![], vec![live(10, 2, r#"{"a":1}"#)])
        );
        let moved = presence
            .apply(1, vec![live(10, 3, r#"{"a":2}"#)], NOW + 16_000, false)
            .unwrap();
        assert_eq!((moved.changed.len(), moved.renewed.len()), (1, 0));
        let left = presence
            .apply(1, vec![gone(10, 4)], NOW + 17_000, false)
            .unwrap();
        assert_eq!(
            (left.changed.len(), left.renewed.len()),
            (1, 0),
            "a removal is a change"
        );
        assert!(!presence.is_current(&live(10, 3, r#"{"a":2}"#)));
    }

    #[test]
    fn the_first_renewal_after_a_quiet_window_is_due_at_once_and_the_rest_wait_for_it() {
        let mut renewals = Renewals::default();
        assert_eq!(renewals.deadline(), None);
        renewals.add(vec![live(1, 2, "{}")], NOW);
        assert!(
            renewals.is_due(NOW),
            "nothing was relayed in the last window"
        );
        assert_eq!(ids(&renewals.take(NOW)), vec![1]);
        renewals.add(vec![live(2, 2, "{}")], NOW + 10);
        renewals.add(vec![live(3, 2, "{}"), live(2, 3, "{}")], NOW + 20);
        assert_eq!(renewals.deadline(), Some(NOW + RENEWAL_WINDOW_MS));
        assert!(!renewals.is_due(NOW + RENEWAL_WINDOW_MS - 1));
        let together = renewals.take(NOW + RENEWAL_WINDOW_MS);
        assert_eq!(
            together,
            vec![live(2, 3, "{}"), live(3, 2, "{}")],
            "the latest of each id"
        );
        assert_eq!(renewals.deadline(), None);
        renewals.add(vec![live(1, 3, "{}")], NOW + 3 * RENEWAL_WINDOW_MS);
        assert!(renewals.is_due(NOW + 3 * RENEWAL_WINDOW_MS));
    }

    #[test]
    fn rejects_invalid_json_trailing_bytes_big_states_and_the_last_clock() {
        let bad = encode([live(5, 1, "{not json")].iter());
        assert_eq!(decode(&bad), Err(AwarenessError::InvalidJson(5)));
        let mut trailing = encode([live(5, 1, "{}")].iter());
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(AwarenessError::Malformed));
        assert_eq!(decode(&[0xff]), Err(AwarenessError::Malformed));

        let fits = format!("\"{}\"", "x".repeat(MAX_STATE_BYTES - 2));
        assert!(decode(&encode([live(5, 1, &fits)].iter())).is_ok());
        let big = format!("\"{}\"", "x".repeat(MAX_STATE_BYTES - 1));
        assert_eq!(
            decode(&encode([live(5, 1, &big)].iter())),
            Err(AwarenessError::StateTooLarge {
                client: 5,
                size: MAX_STATE_BYTES + 1,
                limit: MAX_STATE_BYTES
            })
        );

        assert!(decode(&encode([gone(5, u32::MAX - 1)].iter())).is_ok());
        assert_eq!(
            decode(&encode([gone(5, u32::MAX)].iter())),
            Err(AwarenessError::ClockOutOfRange(5))
        );
        let mut wide = Vec::new();
        wide.write_var(1u64);
        wide.write_var(5u64);
        wide.write_var(1u64 << 32);
        wide.write_string("{}");
        assert_eq!(decode(&wide), Err(AwarenessError::ClockOutOfRange(5)));
    }

    #[test]
    fn higher_clock_wins_and_stale_updates_are_dropped() {
        let mut presence = Presence::default();
        assert_eq!(
            presence
                .apply_all(1, vec![live(10, 2, "{}")], NOW, false)
                .unwrap()
                .len(),
            1
        );
        assert!(presence
            .apply_all(1, vec![live(10, 1, "{\"old\":1}")], NOW, false)
            .unwrap()
            .is_empty());
        assert_eq!(
            presence
                .apply_all(1, vec![gone(10, 2)], NOW, false)
                .unwrap()
                .len(),
            1,
            "equal clock removes"
        );
        assert!(presence.live().is_empty());
        assert_totals(&presence);
    }

    #[test]
    fn closing_a_connection_removes_only_its_ids() {
        let mut presence = Presence::default();
        presence
            .apply_all(1, vec![live(10, 1, "{}")], NOW, false)
            .unwrap();
        presence
            .apply_all(2, vec![live(20, 1, "{}")], NOW, false)
            .unwrap();
        let removed = presence.remove_connection(1);
        assert_eq!(removed, vec![gone(10, 2)]);
        assert_eq!(ids(&presence.live()), vec![20]);
        assert!(
            presence.remove_connection(1).is_empty(),
            "second close is a no-op"
        );
        assert_totals(&presence);
    }

    #[test]
    fn another_connections_live_id_is_dropped_until_its_owner_goes_quiet() {
        let mut presence = Presence::default();
        presence
            .apply_all(1, vec![live(10, 1, r#"{"a":1}"#)], NOW, false)
            .unwrap();
        // The same client on a new socket while the old one is half-open: dropped, no close.
        let reconnected = presence.apply_all(2, vec![live(10, 2, r#"{"b":2}"#)], NOW + 1000, false);
        assert_eq!(reconnected, Ok(vec![]));
        // So is a stock client's timeout removal of a peer it has not heard from.
        assert_eq!(
            presence.apply_all(3, vec![gone(10, 1)], NOW + 1000, false),
            Ok(vec![])
        );
        assert_eq!(presence.live(), vec![live(10, 1, r#"{"a":1}"#)]);

        // The owner renews; another connection still cannot take it just before the timeout.
        presence
            .apply_all(1, vec![live(10, 3, r#"{"a":1}"#)], NOW + 5000, false)
            .unwrap();
        let early = NOW + 5000 + OUTDATED_MS - 1;
        assert_eq!(
            presence.apply_all(2, vec![live(10, 4, "{}")], early, false),
            Ok(vec![])
        );
        // At the timeout it may, and the old socket's close no longer removes it.
        let late = NOW + 5000 + OUTDATED_MS;
        assert_eq!(
            presence.apply_all(2, vec![live(10, 4, r#"{"b":2}"#)], late, false),
            Ok(vec![live(10, 4, r#"{"b":2}"#)])
        );
        assert!(presence.remove_connection(1).is_empty());
        assert_eq!(presence.owned_by(2), vec![live(10, 4, r#"{"b":2}"#)]);
        assert_totals(&presence);
    }

    #[test]
    fn a_gone_id_nobody_owns_may_be_introduced_again_but_not_removed_again() {
        let mut presence = Presence::default();
        presence
            .apply_all(1, vec![live(10, 1, "{}")], NOW, false)
            .unwrap();
        presence.remove_connection(1);
        assert_eq!(
            presence.apply_all(2, vec![gone(10, 9)], NOW, false),
            Ok(vec![])
        );
        assert_eq!(
            presence.apply_all(2, vec![gone(11, 9)], NOW, false),
            Ok(vec![]),
            "unknown id"
        );
        assert_eq!(
            presence.apply_all(2, vec![live(10, 2, "{}")], NOW, false),
            Ok(vec![]),
            "the tombstone's clock still wins"
        );
        assert_eq!(
            presence
                .apply_all(2, vec![live(10, 3, "{}")], NOW, false)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(ids(&presence.owned_by(2)), vec![10]);
        assert_totals(&presence);
    }

    #[test]
    fn a_hijack_at_the_last_clocks_leaves_the_victim_alone() {
        let mut presence = Presence::default();
        let victim = live(10, 5, r#"{"user":"victim"}"#);
        presence
            .apply_all(1, vec![victim.clone()], NOW, false)
            .unwrap();
        for attack in [
            vec![live(10, u32::MAX - 1, r#"{"user":"mallory"}"#)],
            vec![gone(10, u32::MAX - 1)],
            vec![live(10, 6, "{}"), gone(10, 7)],
        ] {
            assert_eq!(presence.apply_all(2, attack, NOW + 1, false), Ok(vec![]));
        }
        assert_eq!(presence.live(), vec![victim]);
        // Its own id at the last clock is fine, and the removal on close keeps that clock
        // (clients send it back, and must not be refused for it) rather than wrap.
        presence
            .apply_all(2, vec![live(20, u32::MAX - 1, "{}")], NOW, false)
            .unwrap();
        assert_eq!(presence.remove_connection(2), vec![gone(20, u32::MAX - 1)]);
        assert!(decode(&encode([gone(20, u32::MAX - 1)].iter())).is_ok());
    }

    #[test]
    fn budgets_refuse_the_whole_update_and_change_nothing() {
        let mut presence = Presence::default();
        let four: Vec<_> = (0..4).map(|c| live(c, 1, "{}")).collect();
        assert_eq!(presence.apply_all(1, four, NOW, false).unwrap().len(), 4);
        let before = presence.owned_by(1);
        // A fifth id, even alongside changes that would have been fine.
        let fifth = vec![live(0, 2, r#"{"x":1}"#), live(99, 1, "{}")];
        assert_eq!(
            presence.apply_all(1, fifth, NOW, false),
            Err(CloseReason::PresenceOverBudget(OverBudget::TooManyIds {
                limit: 4
            }))
        );
        assert_eq!(presence.owned_by(1), before);
        // Swapping one id for another in one update stays within four.
        let swap = vec![gone(3, 1), live(99, 1, "{}")];
        assert_eq!(presence.apply_all(1, swap, NOW, false).unwrap().len(), 2);
        assert_totals(&presence);

        let state = |n: usize| format!("\"{}\"", "y".repeat(n - 2));
        let mut presence = Presence::default();
        let big = state(MAX_STATE_BYTES);
        let two = vec![live(1, 1, &big), live(2, 1, &big)];
        assert_eq!(presence.apply_all(1, two, NOW, false).unwrap().len(), 2);
        assert_eq!(
            presence.apply_all(1, vec![live(3, 1, "1")], NOW, false),
            Err(CloseReason::PresenceOverBudget(
                OverBudget::ConnectionBytes {
                    limit: MAX_BYTES_PER_CONNECTION
                }
            ))
        );
        // Shrinking is always allowed.
        assert!(presence
            .apply_all(1, vec![live(1, 2, "{}")], NOW, false)
            .is_ok());
        assert_totals(&presence);

        let mut presence = Presence::default();
        let per_conn = MAX_BYTES_PER_CONNECTION / MAX_STATE_BYTES;
        let conns = MAX_ROOM_BYTES / MAX_BYTES_PER_CONNECTION;
        for conn in 0..conns as u64 {
            let mine: Vec<_> = (0..per_conn as u64)
                .map(|i| live(conn * 10 + i, 1, &big))
                .collect();
            assert!(
                presence.apply_all(conn, mine, NOW, false).is_ok(),
                "conn {conn}"
            );
        }
        assert_eq!(presence.live_bytes, MAX_ROOM_BYTES);
        assert_eq!(
            presence.apply_all(9999, vec![live(99_999, 1, "1")], NOW, false),
            Err(CloseReason::PresenceOverBudget(OverBudget::RoomBytes {
                limit: MAX_ROOM_BYTES
            }))
        );
        assert!(presence.owned_by(9999).is_empty());
        assert_totals(&presence);
    }

    #[test]
    fn fit_budget_drops_the_largest_states_first() {
        let mut entries = vec![
            live(1, 1, &format!("\"{}\"", "x".repeat(1000))),
            live(2, 1, "{}"),
        ];
        fit_budget(&mut entries, 200);
        assert_eq!(entries[0].state, None);
        assert_eq!(entries[1].state.as_deref(), Some("{}"));
        assert_eq!(entries.len(), 2, "ids are kept");
    }

    #[test]
    fn a_restored_state_not_sent_since_the_wake_is_announced_gone_past_the_margin() {
        let mut presence = Presence::default();
        presence.restore(7, vec![live(10, 4, "{}")]);
        presence.restore(8, vec![live(20, 4, "{}")]);
        // 20's owner renews after the wake: its clock is known again.
        presence
            .apply_all(8, vec![live(20, 9, "{}")], NOW, false)
            .unwrap();
        assert_eq!(
            presence.remove_connection(7),
            vec![gone(10, 4 + RESTORED_CLOCK_MARGIN)]
        );
        assert_eq!(presence.remove_connection(8), vec![gone(20, 10)]);
        assert_totals(&presence);
    }

    #[test]
    fn a_gone_id_claimed_below_its_removal_gets_the_removal_back() {
        let mut presence = Presence::default();
        presence
            .apply_all(1, vec![live(10, 4, "{}")], NOW, false)
            .unwrap();
        assert_eq!(presence.remove_connection(1), vec![gone(10, 5)]);
        // Its client reconnects (conn 2) with its own clock, then an equal one: each loses and
        // is answered with the removal; nothing is relayed.
        for clock in [4, 5] {
            let accepted = presence
                .apply(2, vec![live(10, clock, "{}")], NOW, false)
                .unwrap();
            assert!(accepted.changed.is_empty() && accepted.renewed.is_empty());
            assert_eq!(accepted.contested, vec![gone(10, 5)]);
        }
        // It raises its clock past the removal, as y-protocols does: back.
        let accepted = presence
            .apply(2, vec![live(10, 6, "{}")], NOW, false)
            .unwrap();
        assert_eq!(accepted.changed, vec![live(10, 6, "{}")]);
        assert!(accepted.contested.is_empty());
        // A live id of another connection, or a removal that loses, gets no answer.
        for entry in [live(10, 6, "{}"), gone(10, 5)] {
            let accepted = presence.apply(3, vec![entry], NOW, false).unwrap();
            assert_eq!(accepted, Accepted::default());
        }
        assert_totals(&presence);
    }

    #[test]
    fn restore_keeps_ownership_for_removal_and_counts_as_renewed_at_the_next_frame() {
        let mut presence = Presence::default();
        presence.restore(7, vec![live(10, 4, "{}"), gone(11, 1)]);
        assert_eq!(ids(&presence.live()), vec![10]);
        assert_totals(&presence);
        // Long after the last renewal before hibernation, but the wake is what counts.
        let wake = NOW + 10 * OUTDATED_MS;
        assert_eq!(
            presence.apply_all(8, vec![live(10, 5, "{}")], wake, false),
            Ok(vec![])
        );
        let later = wake + OUTDATED_MS;
        assert_eq!(
            presence
                .apply_all(8, vec![live(10, 5, "{}")], later, false)
                .unwrap()
                .len(),
            1
        );
        // 11 was not sent since the wake: its removal goes past the margin.
        assert_eq!(
            presence.remove_connection(7),
            vec![gone(11, 1 + RESTORED_CLOCK_MARGIN)]
        );
        assert_totals(&presence);

        // Two attachments naming one id: the higher clock owns it, in either order.
        for order in [[(1, 3), (2, 5)], [(2, 5), (1, 3)]] {
            let mut presence = Presence::default();
            for (conn, clock) in order {
                presence.restore(conn, vec![live(10, clock, "{}")]);
            }
            assert_eq!(ids(&presence.owned_by(2)), vec![10]);
            assert!(presence.owned_by(1).is_empty());
            assert_totals(&presence);
        }
    }

    #[test]
    fn a_viewers_states_are_stamped_and_what_it_may_not_apply_is_not_read() {
        let mut presence = Presence::default();
        presence
            .apply_all(1, vec![live(10, 1, "7")], NOW, false)
            .unwrap();
        // The viewer echoes the editor's state (not an object): dropped unread, not refused.
        let echo = vec![live(10, 1, "7"), live(20, 1, r#"{"name":"v"}"#)];
        let accepted = presence.apply_all(2, echo, NOW, true).unwrap();
        assert_eq!(accepted, vec![live(20, 1, r#"{"role":"view","name":"v"}"#)]);
        assert_eq!(presence.owned_by(2), accepted);
        // Its own state must be an object; the refusal changes nothing.
        let bad = vec![live(20, 2, r#"{"name":"w"}"#), live(21, 1, "[]")];
        assert_eq!(
            presence.apply_all(2, bad, NOW, true),
            Err(CloseReason::InvalidAwareness(AwarenessError::NotAnObject(
                21
            )))
        );
        assert_eq!(presence.owned_by(2), accepted);
        assert_totals(&presence);
    }

    #[test]
    fn viewer_states_are_stamped_in_order() {
        let stamp = |s: &str| stamp_viewer(1, s).map(|s| s.to_string());
        assert_eq!(stamp("{}").unwrap(), r#"{"role":"view"}"#);
        assert_eq!(
            stamp(r#" { "user" : {"name":"ada", "color":"red"}, "role":"edit", "cursor":null } "#)
                .unwrap(),
            r#"{"role":"view","user":{"name":"ada", "color":"red"},"cursor":null}"#
        );
        // Escaped spellings of the key and duplicates are caught too.
        assert_eq!(
            stamp(r#"{"r\u006fle":"edit","a":1,"a":2,"role":3}"#).unwrap(),
            r#"{"role":"view","a":1,"a":2}"#
        );
        assert_eq!(
            stamp(r#"{"k\"ey":"v"}"#).unwrap(),
            r#"{"role":"view","k\"ey":"v"}"#
        );
        for not_object in ["[]", "1", "\"s\"", "true"] {
            assert_eq!(stamp(not_object), Err(AwarenessError::NotAnObject(1)));
        }
        // The stamp counts against the size limit: every client echoes the stamped state.
        let fits = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_STATE_BYTES - 24));
        assert!(stamp(&fits).is_ok());
        let over = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_STATE_BYTES - 8));
        assert!(decode(&encode([live(1, 1, &over)].iter())).is_ok());
        assert!(matches!(
            stamp(&over),
            Err(AwarenessError::StateTooLarge { client: 1, .. })
        ));
        let stamped = stamp(r#"{"user":{"name":"ada"}}"#).unwrap();
        let value: serde_json::Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(value["role"], "view");
        assert_eq!(value["user"]["name"], "ada");
    }
}
