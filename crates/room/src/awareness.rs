//! Awareness (presence): who is in the room, their names, colours and cursors.
//!
//! Awareness is the y-protocols side channel that is never stored. Each client id carries a
//! clock and a JSON state; a higher clock wins, and the JSON `null` at an equal or higher clock
//! means "gone". This module keeps the room's view of it and, unlike a plain relay, remembers
//! which connection introduced each client id, so that when a socket drops without saying
//! goodbye the others are told exactly those ids are gone, and no others.
//!
//! Ownership moves with the latest accepted update: a client that reconnects on a new socket
//! while its old socket is still half-open takes its ids over, and the old socket's eventual
//! close does not wipe the reconnected client's presence.
//!
//! Hostile clients: states must be valid JSON (every stock client parses them and would throw
//! on the rest), and one connection may own at most [`MAX_IDS_PER_CONNECTION`] live ids.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::ConnId;

/// The most awareness client ids one connection may keep alive at once (a browser tab uses one).
pub const MAX_IDS_PER_CONNECTION: usize = 16;
/// How many "gone" entries are remembered (to reject stale updates) before they are forgotten.
const MAX_TOMBSTONES: usize = 4096;
/// The JSON state that means "this client is gone".
const GONE: &str = "null";

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
}

/// Decodes an awareness update (the payload of a type-1 message).
pub fn decode(payload: &[u8]) -> Result<Vec<AwarenessEntry>, AwarenessError> {
    let mut cursor = Cursor::new(payload);
    let count: u64 = cursor.read_var().map_err(|_| AwarenessError::Malformed)?;
    // Each entry takes at least three bytes: never trust `count` for an allocation.
    let mut entries = Vec::with_capacity((count as usize).min(payload.len() / 3));
    for _ in 0..count {
        let client: u64 = cursor.read_var().map_err(|_| AwarenessError::Malformed)?;
        let clock: u32 = cursor.read_var().map_err(|_| AwarenessError::Malformed)?;
        let json = cursor
            .read_string()
            .map_err(|_| AwarenessError::Malformed)?;
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

#[derive(Debug, Clone)]
struct Slot {
    clock: u32,
    state: Option<Arc<str>>,
    owner: Option<ConnId>,
}

/// The room's awareness states and which connection owns each live one.
#[derive(Debug, Default)]
pub struct Presence {
    slots: HashMap<u64, Slot>,
    tombstones: usize,
}

impl Presence {
    /// Applies entries sent by `conn`; returns the entries that were accepted (to relay).
    ///
    /// Follows y-protocols' `applyAwarenessUpdate`: an entry wins with a higher clock, or with
    /// an equal clock when it removes a live state. Entries that would push `conn` past
    /// [`MAX_IDS_PER_CONNECTION`] live ids are dropped.
    pub fn apply(&mut self, conn: ConnId, entries: Vec<AwarenessEntry>) -> Vec<AwarenessEntry> {
        let mut accepted = Vec::new();
        for entry in entries {
            let current = self.slots.get(&entry.client);
            let wins = match current {
                None => true,
                Some(slot) => {
                    slot.clock < entry.clock
                        || (slot.clock == entry.clock
                            && entry.state.is_none()
                            && slot.state.is_some())
                }
            };
            if !wins {
                continue;
            }
            let already_owned = current.is_some_and(|s| s.owner == Some(conn));
            if entry.state.is_some()
                && !already_owned
                && self.owned_count(conn) >= MAX_IDS_PER_CONNECTION
            {
                continue;
            }
            self.set(entry.client, entry.clock, entry.state.clone(), conn);
            accepted.push(entry);
        }
        self.forget_tombstones_if_many();
        accepted
    }

    /// Marks every live id owned by `conn` as gone; returns the removal entries (to relay).
    pub fn remove_connection(&mut self, conn: ConnId) -> Vec<AwarenessEntry> {
        let mut removed = Vec::new();
        for (&client, slot) in self.slots.iter_mut() {
            if slot.owner == Some(conn) {
                if slot.state.is_none() {
                    self.tombstones -= 1; // a restored entry whose state did not fit
                }
                slot.clock = slot.clock.wrapping_add(1);
                slot.state = None;
                slot.owner = None;
                self.tombstones += 1;
                removed.push(AwarenessEntry {
                    client,
                    clock: slot.clock,
                    state: None,
                });
            }
        }
        self.forget_tombstones_if_many();
        removed
    }

    /// Every live state, as entries.
    pub fn live(&self) -> Vec<AwarenessEntry> {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.state.is_some())
            .map(|(&client, slot)| AwarenessEntry {
                client,
                clock: slot.clock,
                state: slot.state.clone(),
            })
            .collect()
    }

    /// The live entries `conn` owns (what must survive hibernation for it).
    pub fn owned_by(&self, conn: ConnId) -> Vec<AwarenessEntry> {
        let mut owned: Vec<_> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.owner == Some(conn))
            .map(|(&client, slot)| AwarenessEntry {
                client,
                clock: slot.clock,
                state: slot.state.clone(),
            })
            .collect();
        owned.sort_by_key(|e| e.client);
        owned
    }

    /// Re-registers entries owned by `conn`, as saved before hibernation. An entry saved
    /// without its state (it did not fit the attachment) is not shown to newcomers, but its
    /// removal is still announced when `conn` closes.
    pub fn restore(&mut self, conn: ConnId, entries: Vec<AwarenessEntry>) {
        for entry in entries {
            let newer = self
                .slots
                .get(&entry.client)
                .is_some_and(|s| s.clock > entry.clock);
            if !newer {
                self.set(entry.client, entry.clock, entry.state, conn);
                if let Some(slot) = self.slots.get_mut(&entry.client) {
                    slot.owner = Some(conn);
                }
            }
        }
    }

    fn set(&mut self, client: u64, clock: u32, state: Option<Arc<str>>, conn: ConnId) {
        let owner = state.as_ref().map(|_| conn);
        let was_tombstone = self.slots.get(&client).is_some_and(|s| s.state.is_none());
        let is_tombstone = state.is_none();
        self.slots.insert(
            client,
            Slot {
                clock,
                state,
                owner,
            },
        );
        match (was_tombstone, is_tombstone) {
            (false, true) => self.tombstones += 1,
            (true, false) => self.tombstones -= 1,
            _ => {}
        }
    }

    fn owned_count(&self, conn: ConnId) -> usize {
        self.slots
            .values()
            .filter(|s| s.owner == Some(conn))
            .count()
    }

    fn forget_tombstones_if_many(&mut self) {
        if self.tombstones > MAX_TOMBSTONES {
            self.slots
                .retain(|_, slot| slot.state.is_some() || slot.owner.is_some());
            self.tombstones = self.slots.values().filter(|s| s.state.is_none()).count();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn round_trips_through_the_wire_format() {
        let entries = vec![live(1, 3, r#"{"user":{"name":"ada"}}"#), gone(2, 7)];
        assert_eq!(decode(&encode(entries.iter())).unwrap(), entries);
    }

    #[test]
    fn rejects_invalid_json_and_trailing_bytes() {
        let bad = encode([live(5, 1, "{not json")].iter());
        assert_eq!(decode(&bad), Err(AwarenessError::InvalidJson(5)));
        let mut trailing = encode([live(5, 1, "{}")].iter());
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(AwarenessError::Malformed));
        assert_eq!(decode(&[0xff]), Err(AwarenessError::Malformed));
    }

    #[test]
    fn higher_clock_wins_and_stale_updates_are_dropped() {
        let mut presence = Presence::default();
        assert_eq!(presence.apply(1, vec![live(10, 2, "{}")]).len(), 1);
        assert!(presence
            .apply(1, vec![live(10, 1, "{\"old\":1}")])
            .is_empty());
        assert_eq!(
            presence.apply(1, vec![gone(10, 2)]).len(),
            1,
            "equal clock removes"
        );
        assert!(presence.live().is_empty());
    }

    #[test]
    fn closing_a_connection_removes_only_its_ids() {
        let mut presence = Presence::default();
        presence.apply(1, vec![live(10, 1, "{}")]);
        presence.apply(2, vec![live(20, 1, "{}")]);
        let removed = presence.remove_connection(1);
        assert_eq!(removed, vec![gone(10, 2)]);
        assert_eq!(
            presence.live().iter().map(|e| e.client).collect::<Vec<_>>(),
            vec![20]
        );
        assert!(
            presence.remove_connection(1).is_empty(),
            "second close is a no-op"
        );
    }

    #[test]
    fn a_reconnected_client_keeps_its_presence_when_the_old_socket_closes() {
        let mut presence = Presence::default();
        presence.apply(1, vec![live(10, 1, "{}")]);
        presence.apply(2, vec![live(10, 2, "{}")]);
        assert!(presence.remove_connection(1).is_empty());
        assert_eq!(presence.live().len(), 1);
    }

    #[test]
    fn one_connection_cannot_flood_ids() {
        let mut presence = Presence::default();
        let flood: Vec<_> = (0..100).map(|c| live(c, 1, "{}")).collect();
        assert_eq!(presence.apply(1, flood).len(), MAX_IDS_PER_CONNECTION);
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
    fn restore_keeps_ownership_for_removal() {
        let mut presence = Presence::default();
        presence.restore(7, vec![live(10, 4, "{}"), gone(11, 1)]);
        assert_eq!(presence.remove_connection(7).len(), 2);
    }
}
