//! The room: one shared Yjs document, its awareness, and what each frame makes happen.

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, IdSet, ReadTxn, StateVector, Transact, Update};

use crate::awareness::{self, AwarenessEntry, Presence};
use crate::protocol::Message;
use crate::storage::{Compaction, StoreOp, StoredSize};
use crate::{CloseReason, ConnId};

/// Size limits of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted from a client.
    pub max_frame_bytes: usize,
    /// Largest encoded document; an update that would pass it is refused.
    pub max_document_bytes: usize,
    /// When the update log is folded into a snapshot.
    pub compaction: Compaction,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 8 * 1024 * 1024,
            max_document_bytes: 32 * 1024 * 1024,
            compaction: Compaction::default(),
        }
    }
}

/// What one step of the room asks the runtime to do, in this order: make `store` durable,
/// send `reply` to the sender and `broadcast` to every other socket, then close the sender
/// if `close` is set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Writes to make durable before anything is sent.
    pub store: Vec<StoreOp>,
    /// Frames for the socket that sent the frame.
    pub reply: Vec<Vec<u8>>,
    /// Frames for every other socket in the room.
    pub broadcast: Vec<Vec<u8>>,
    /// The sender's awareness ownership changed: re-save its per-socket state.
    pub presence_changed: bool,
    /// Close the sender with this code and reason.
    pub close: Option<CloseReason>,
}

/// Why stored room data could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The snapshot is not a valid Yjs v1 update.
    #[error("stored snapshot is corrupt: {0}")]
    Snapshot(String),
    /// A log entry is not a valid Yjs v1 update.
    #[error("stored log entry {index} is corrupt: {detail}")]
    LogEntry {
        /// Position in the log.
        index: usize,
        /// The decoder's complaint.
        detail: String,
    },
}

/// One collaborative room, with no I/O: feed it frames, run the [`Effects`] it returns.
pub struct Room {
    doc: Doc,
    presence: Presence,
    limits: Limits,
    stored: StoredSize,
    /// The document's state vector, kept up to date here: yrs builds it afresh on each call,
    /// at a cost that grows with every client id the room has ever seen.
    known: StateVector,
    held: Held,
}

/// Updates that skip clocks of one of their clients, waiting until the gap is filled.
///
/// Yjs keeps such blocks pending; yrs 0.28 instead integrates them at once behind a `Skip`,
/// after which its state vector, the transaction's delta (what the room stores and relays)
/// and even the ids of later blocks of that client go wrong. Honest clients send them: the
/// stock provider sends each edit as soon as its socket opens, before it has answered the
/// room's SyncStep1 with the SyncStep2 that carries the edits made while it was away. So the
/// room holds them (in memory, bounded) and applies them once the gap is filled.
#[derive(Default)]
struct Held {
    updates: Vec<(Vec<u8>, IdSet)>,
    bytes: usize,
}

impl Held {
    /// Holds `update`, dropping the oldest held updates to stay within `budget` bytes.
    fn hold(&mut self, update: Vec<u8>, inserts: IdSet, budget: usize) {
        self.bytes += update.len();
        self.updates.push((update, inserts));
        while self.bytes > budget {
            let (oldest, _) = self.updates.remove(0);
            self.bytes -= oldest.len();
        }
    }

    /// Takes out the first held update that no longer opens a gap.
    fn take_ready(&mut self, state_vector: &StateVector) -> Option<Vec<u8>> {
        let i = self
            .updates
            .iter()
            .position(|(_, inserts)| !opens_gap(inserts, state_vector))?;
        let (update, _) = self.updates.remove(i);
        self.bytes -= update.len();
        Some(update)
    }
}

/// Whether blocks with these ids would leave a hole in some client's clocks after `known`.
fn opens_gap(inserts: &IdSet, known: &StateVector) -> bool {
    inserts.iter().any(|(client, ranges)| {
        let mut clock = known.get(client);
        ranges.iter().any(|range| {
            let gap = range.start > clock;
            clock = clock.max(range.end);
            gap
        })
    })
}

impl Room {
    /// An empty room.
    pub fn new(limits: Limits) -> Self {
        Room {
            // The server never edits, so its own client id is never written anywhere.
            doc: Doc::with_client_id(1),
            presence: Presence::default(),
            limits,
            stored: StoredSize::default(),
            known: StateVector::default(),
            held: Held::default(),
        }
    }

    /// Rebuilds a room from its stored snapshot and the log written since.
    pub fn load<L, B>(limits: Limits, snapshot: &[u8], log: L) -> Result<Self, LoadError>
    where
        L: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let mut room = Room::new(limits);
        if !snapshot.is_empty() {
            room.apply_stored(snapshot).map_err(LoadError::Snapshot)?;
        }
        room.stored.snapshot_bytes = snapshot.len();
        for (index, entry) in log.into_iter().enumerate() {
            let entry = entry.as_ref();
            room.apply_stored(entry)
                .map_err(|detail| LoadError::LogEntry { index, detail })?;
            room.stored.log_entries += 1;
            room.stored.log_bytes += entry.len();
        }
        room.known = room.doc.transact().state_vector();
        Ok(room)
    }

    /// The frames a newly opened socket gets: SyncStep1 and, if anyone is here, their awareness.
    pub fn greeting(&self) -> Vec<Vec<u8>> {
        let state_vector = self.doc.transact().state_vector().encode_v1();
        let mut frames = vec![Message::SyncStep1(&state_vector).encode()];
        let live = self.presence.live();
        if !live.is_empty() {
            frames.push(Message::Awareness(&awareness::encode(live.iter())).encode());
        }
        frames
    }

    /// Handles one binary frame from `conn`.
    pub fn receive(&mut self, conn: ConnId, frame: &[u8]) -> Effects {
        let mut effects = Effects::default();
        if let Err(reason) = self.dispatch(conn, frame, &mut effects) {
            effects.close = Some(reason);
        }
        effects
    }

    /// Handles a text frame from `conn`: the protocol is binary only.
    pub fn receive_text(&mut self, _conn: ConnId) -> Effects {
        Effects {
            close: Some(CloseReason::TextFrame),
            ..Effects::default()
        }
    }

    /// Forgets `conn`; tells the others its awareness clients are gone.
    pub fn disconnect(&mut self, conn: ConnId) -> Effects {
        let removed = self.presence.remove_connection(conn);
        let mut effects = Effects::default();
        if !removed.is_empty() {
            effects
                .broadcast
                .push(Message::Awareness(&awareness::encode(removed.iter())).encode());
        }
        effects
    }

    /// The live awareness entries `conn` owns, to save with the socket across hibernation.
    pub fn presence_of(&self, conn: ConnId) -> Vec<AwarenessEntry> {
        self.presence.owned_by(conn)
    }

    /// Restores what [`Room::presence_of`] saved for `conn` before hibernation.
    pub fn restore_presence(&mut self, conn: ConnId, entries: Vec<AwarenessEntry>) {
        self.presence.restore(conn, entries);
    }

    /// The whole document as one Yjs v1 update.
    pub fn snapshot(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// What the room knows of its stored form.
    pub fn stored_size(&self) -> StoredSize {
        self.stored
    }

    /// The underlying document (read it; edits must arrive as frames).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    fn dispatch(
        &mut self,
        conn: ConnId,
        frame: &[u8],
        effects: &mut Effects,
    ) -> Result<(), CloseReason> {
        if frame.len() > self.limits.max_frame_bytes {
            return Err(CloseReason::FrameTooLarge {
                size: frame.len(),
                limit: self.limits.max_frame_bytes,
            });
        }
        match Message::decode(frame)? {
            Message::SyncStep1(state_vector) => {
                let state_vector = StateVector::decode_v1(state_vector)
                    .map_err(|e| CloseReason::InvalidStateVector(e.to_string()))?;
                let diff = self.doc.transact().encode_state_as_update_v1(&state_vector);
                effects.reply.push(Message::SyncStep2(&diff).encode());
            }
            Message::SyncStep2(update) | Message::Update(update) => {
                self.apply_client_update(update, effects)?
            }
            Message::Awareness(payload) => {
                let entries = awareness::decode(payload)?;
                let accepted = self.presence.apply(conn, entries);
                if !accepted.is_empty() {
                    let frame = Message::Awareness(&awareness::encode(accepted.iter())).encode();
                    // Echoed to the sender too, as y-websocket's server does: the stock
                    // provider drops a connection that hears nothing for 30 s, and a client
                    // alone in a room hears only its own 15-second awareness renewals.
                    effects.reply.push(frame.clone());
                    effects.broadcast.push(frame);
                    effects.presence_changed = true;
                }
            }
            Message::QueryAwareness => {
                let live = self.presence.live();
                effects
                    .reply
                    .push(Message::Awareness(&awareness::encode(live.iter())).encode());
            }
            Message::PermissionDenied(_) => return Err(CloseReason::ServerOnlyMessage),
        }
        Ok(())
    }

    /// Applies an update from a client. What is stored and relayed is the change it actually
    /// made (Yjs' own "update" event): duplicates cost nothing, and an update whose
    /// dependencies are missing waits inside the document until they arrive. An update that
    /// skips clocks of one of its clients waits in the room instead (see [`Held`]).
    fn apply_client_update(
        &mut self,
        update: &[u8],
        effects: &mut Effects,
    ) -> Result<(), CloseReason> {
        self.make_room_for(update.len(), effects)?;
        let decoded =
            Update::decode_v1(update).map_err(|e| CloseReason::InvalidUpdate(e.to_string()))?;
        let inserts = decoded.insertions(true);
        if opens_gap(&inserts, &self.known) {
            self.held
                .hold(update.to_vec(), inserts, self.limits.max_frame_bytes);
            return Ok(());
        }
        let applied = self.integrate(decoded, effects);
        self.release_held(effects);
        applied
    }

    /// Refuses an update of `len` bytes if it could take the document past its size limit.
    fn make_room_for(&mut self, len: usize, effects: &mut Effects) -> Result<(), CloseReason> {
        let limit = self.limits.max_document_bytes;
        if self.stored.upper_bound() + len > limit {
            // The running total overestimates; measure exactly before refusing, and keep
            // the measurement as the new snapshot so the estimate is exact again.
            let snapshot = self.snapshot();
            if snapshot.len() + len > limit {
                return Err(CloseReason::RoomFull { limit });
            }
            self.compact_into(snapshot, effects);
        }
        Ok(())
    }

    fn integrate(&mut self, decoded: Update, effects: &mut Effects) -> Result<(), CloseReason> {
        let mut txn = self.doc.transact_mut();
        let applied = txn.apply_update(decoded);
        txn.commit();
        // Even a failed apply may have integrated part of the update: store what changed so
        // memory and storage never disagree.
        let delta = txn.has_changes().then(|| txn.encode_update_v1());
        // Held updates never reach yrs, so what it integrated is contiguous with what it had.
        for (client, ranges) in txn.insert_set().iter() {
            if let Some(range) = ranges.iter().next_back() {
                self.known.set_max(*client, range.end);
            }
        }
        drop(txn);
        if let Some(delta) = delta {
            self.stored.log_entries += 1;
            self.stored.log_bytes += delta.len();
            effects.broadcast.push(Message::Update(&delta).encode());
            if self.stored.should_compact(&self.limits.compaction) {
                let snapshot = self.snapshot();
                self.compact_into(snapshot, effects);
            } else {
                effects.store.push(StoreOp::Append(delta));
            }
        }
        applied.map_err(|e| CloseReason::InvalidUpdate(e.to_string()))
    }

    /// Applies every held update whose gap the document has filled since it arrived.
    fn release_held(&mut self, effects: &mut Effects) {
        while !self.held.updates.is_empty() {
            let Some(update) = self.held.take_ready(&self.known) else {
                break;
            };
            if self.make_room_for(update.len(), effects).is_err() {
                continue; // its sender may be gone: drop it rather than close a bystander
            }
            if let Ok(decoded) = Update::decode_v1(&update) {
                let _ = self.integrate(decoded, effects);
            }
        }
    }

    fn compact_into(&mut self, snapshot: Vec<u8>, effects: &mut Effects) {
        self.stored = StoredSize {
            snapshot_bytes: snapshot.len(),
            log_entries: 0,
            log_bytes: 0,
        };
        // A compaction replaces everything stored so far, including appends of this step.
        effects.store.retain(|op| !matches!(op, StoreOp::Append(_)));
        effects.store.push(StoreOp::Compact(snapshot));
    }

    fn apply_stored(&mut self, update: &[u8]) -> Result<(), String> {
        let decoded = Update::decode_v1(update).map_err(|e| e.to_string())?;
        self.doc
            .transact_mut()
            .apply_update(decoded)
            .map_err(|e| e.to_string())
    }
}
