//! The room: one shared Yjs document, its awareness, and what each frame makes happen.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, IdSet, ReadTxn, StateVector, Transact, TransactionMut, Update};

use crate::awareness::{self, AwarenessEntry, Presence, Renewals};
use crate::protocol::Message;
use crate::storage::{CommitPolicy, Compaction, Pending, StoreOp, StoredSize};
use crate::update_check::{self, Splits};
use crate::{CloseReason, ConnId, Role};

/// The most updates a room holds while they wait for a gap to fill.
const MAX_HELD_UPDATES: usize = 256;
/// The most held updates one connection may have waiting.
const MAX_HELD_PER_CONNECTION: usize = 64;
/// What a held update costs beyond its bytes: the entry, its place in the indexes.
const HELD_ENTRY_COST: usize = 256;
/// What each gap a held update waits for costs.
const HELD_GAP_COST: usize = std::mem::size_of::<(ClientID, u32)>();
/// Near the size limit the room measures the document exactly at most once per this fraction
/// of the limit in accepted updates (and once after each refusal).
const MEASURE_FRACTION: usize = 64;
/// What splitting one block in two can add to the encoded document: a second header, with
/// two ids and a length.
const SPLIT_BYTES: usize = 40;

/// The client id of a room that never edits.
const READ_ONLY_WRITER: u32 = 1;

/// Size limits of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted from a client; also what held updates may take in all.
    pub max_frame_bytes: usize,
    /// Largest encoded document; an update that would pass it is refused.
    pub max_document_bytes: usize,
    /// When the update log is folded into a snapshot.
    pub compaction: Compaction,
    /// How long accepted updates wait in memory to be written together.
    pub commit: CommitPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 8 * 1024 * 1024,
            max_document_bytes: 32 * 1024 * 1024,
            compaction: Compaction::default(),
            commit: CommitPolicy::default(),
        }
    }
}

/// What one step of the room asks the runtime to do, in this order: make `store` durable,
/// send `reply` to the sender and `broadcast` to every other socket, then close the sender
/// if `close` is set; and come back through [`Room::tick`] at `wake_at`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Writes to make durable (what is relayed need not wait for them: see [`crate::storage`]).
    pub store: Vec<StoreOp>,
    /// Frames for the socket that sent the frame.
    pub reply: Vec<Vec<u8>>,
    /// Frames for every other socket in the room (after a [`Room::tick`]: every socket).
    pub broadcast: Vec<Vec<u8>>,
    /// Call [`Room::tick`] at this time (Unix ms) or soon after, unless a call is already due
    /// earlier: updates wait to be written, or renewals to be relayed.
    pub wake_at: Option<u64>,
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
    /// The role each socket joined with; a socket not in here is treated as a viewer.
    roles: HashMap<ConnId, Role>,
    limits: Limits,
    stored: StoredSize,
    size: DocSize,
    /// The document's state vector, kept up to date here: yrs builds it afresh on each call,
    /// at a cost that grows with every client id the room has ever seen.
    known: StateVector,
    held: Held,
    /// What viewers' updates are compared with; built when first needed, dropped whenever an
    /// update reaches the document.
    contents: Option<Contents>,
    /// Accepted updates not yet written (group commit).
    pending: Pending,
    /// Awareness renewals waiting to be relayed together.
    renewals: Renewals,
}

impl Room {
    /// An empty room that never edits its document itself (its client id, 1, is never
    /// written anywhere).
    pub fn new(limits: Limits) -> Self {
        Room::with_writer(limits, READ_ONLY_WRITER)
    }

    /// An empty room whose own edits ([`Room::edit`]) are made as client `writer`. A Yjs
    /// client id must never be reused with other content, and what a room wrote may be lost
    /// with it (a crash before the commit window closed) while clients keep it: so `writer`
    /// must be fresh for every instance (random; 32 bits, as Yjs' own, so every client can
    /// read it as a number).
    pub fn with_writer(limits: Limits, writer: u32) -> Self {
        Room {
            doc: Doc::with_client_id(u64::from(writer)),
            presence: Presence::default(),
            roles: HashMap::new(),
            limits,
            stored: StoredSize::default(),
            size: DocSize::default(),
            known: StateVector::default(),
            held: Held::new(HeldCaps {
                updates: MAX_HELD_UPDATES,
                per_connection: MAX_HELD_PER_CONNECTION,
                bytes: limits.max_frame_bytes,
            }),
            contents: None,
            pending: Pending::default(),
            renewals: Renewals::default(),
        }
    }

    /// Rebuilds a room from its stored snapshot and the log written since.
    pub fn load<L, B>(limits: Limits, snapshot: &[u8], log: L) -> Result<Self, LoadError>
    where
        L: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let mut room = Room::new(limits);
        room.load_document(snapshot, log)?;
        Ok(room)
    }

    /// Loads the stored document into a room made with [`Room::new`] that has handled only
    /// presence so far (see [`Message::touches_document`]): a runtime woken by an awareness
    /// frame need not read the document.
    pub fn load_document<L, B>(&mut self, snapshot: &[u8], log: L) -> Result<(), LoadError>
    where
        L: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        if !snapshot.is_empty() {
            self.apply_stored(snapshot).map_err(LoadError::Snapshot)?;
        }
        self.stored.snapshot_bytes = snapshot.len();
        self.size.estimate = snapshot.len();
        for (index, entry) in log.into_iter().enumerate() {
            let entry = entry.as_ref();
            self.apply_stored(entry)
                .map_err(|detail| LoadError::LogEntry { index, detail })?;
            self.stored.log_entries += 1;
            self.stored.log_bytes += entry.len();
            // From above: as if every block it names were split (stored entries passed the
            // walk when they arrived; should one not, as if every byte were a block).
            let splits = update_check::check_update(entry, &|_, _| true)
                .unwrap_or(Splits(entry.len() as u64));
            self.size.estimate = self
                .size
                .estimate
                .saturating_add(growth_bound(entry.len(), splits));
        }
        if self.stored.log_entries > 0 {
            // That estimate may run far ahead: allow one measurement as soon as it matters.
            self.size.accepted = self.measure_step();
        }
        self.known = self.doc.transact().state_vector();
        Ok(())
    }

    /// Registers a new socket with its role; returns its greeting: SyncStep1 and, if anyone is
    /// here, their awareness.
    pub fn join(&mut self, conn: ConnId, role: Role) -> Vec<Vec<u8>> {
        self.roles.insert(conn, role);
        let state_vector = self.known.encode_v1();
        let mut frames = vec![Message::SyncStep1(&state_vector).encode()];
        let live = self.presence.live();
        if !live.is_empty() {
            frames.push(Message::Awareness(&awareness::encode(live.iter())).encode());
        }
        frames
    }

    /// Re-registers a socket after hibernation with what [`Room::presence_of`] saved for it.
    pub fn rejoin(&mut self, conn: ConnId, role: Role, presence: Vec<AwarenessEntry>) {
        self.roles.insert(conn, role);
        self.presence.restore(conn, presence);
    }

    /// Handles one binary frame from `conn` at `now_ms` (Unix milliseconds, the runtime's clock).
    pub fn receive(&mut self, conn: ConnId, frame: &[u8], now_ms: u64) -> Effects {
        let mut effects = Effects::default();
        if let Err(reason) = self.dispatch(conn, frame, now_ms, &mut effects) {
            effects.close = Some(reason);
        }
        if let Some(frame) = self.due_work(now_ms, &mut effects.store) {
            // Renewals go to every socket (the sender's own is its echo), but one being closed.
            if effects.close.is_none() {
                effects.reply.push(frame.clone());
            }
            effects.broadcast.push(frame);
        }
        effects.wake_at = self.wake_at();
        effects
    }

    /// Does what is due at `now_ms` (the runtime's timer, asked for by `Effects::wake_at`):
    /// writes pending updates whose window has passed, relays renewals whose window has.
    /// Here `broadcast` is for every socket.
    pub fn tick(&mut self, now_ms: u64) -> Effects {
        let mut effects = Effects::default();
        effects
            .broadcast
            .extend(self.due_work(now_ms, &mut effects.store));
        effects.wake_at = self.wake_at();
        effects
    }

    /// Writes everything pending now, due or not (before the runtime lets the room go).
    pub fn commit(&mut self) -> Vec<StoreOp> {
        let mut store = Vec::new();
        self.commit_into(&mut store);
        store
    }

    /// Whether accepted updates wait to be written.
    pub fn has_pending_writes(&self) -> bool {
        self.pending.deadline(&self.limits.commit).is_some()
    }

    /// Handles a text frame from `conn`: the protocol is binary only.
    pub fn receive_text(&mut self, _conn: ConnId) -> Effects {
        Effects {
            close: Some(CloseReason::TextFrame),
            ..Effects::default()
        }
    }

    /// Forgets `conn`, its role and the updates it left waiting; tells the others its
    /// awareness clients are gone.
    pub fn disconnect(&mut self, conn: ConnId) -> Effects {
        self.roles.remove(&conn);
        self.held.disconnect(conn);
        let removed = self.presence.remove_connection(conn);
        let mut effects = Effects::default();
        if !removed.is_empty() {
            effects
                .broadcast
                .push(Message::Awareness(&awareness::encode(removed.iter())).encode());
        }
        if self.roles.is_empty() {
            // Nobody is left to re-send what a crash would lose: write it now.
            self.commit_into(&mut effects.store);
            self.renewals = Renewals::default();
        }
        effects.wake_at = self.wake_at();
        effects
    }

    /// The awareness entries `conn` owns, to save with the socket across hibernation.
    pub fn presence_of(&self, conn: ConnId) -> Vec<AwarenessEntry> {
        self.presence.owned_by(conn)
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

    /// The underlying document (read it; edit it through [`Room::edit`]).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The room's own edit of its document (a live run's output, say: `codebox-live`), made
    /// at `now_ms` by `edit` in one transaction, as the room's writer (see
    /// [`Room::with_writer`]). The change is relayed to every socket (`broadcast`) and
    /// written as a client's would be. `growth` bounds what the edit adds to the encoded
    /// document; an edit that could take it past its size limit is not made (`None`).
    pub fn edit<T>(
        &mut self,
        now_ms: u64,
        growth: usize,
        edit: impl FnOnce(&mut TransactionMut) -> T,
    ) -> Option<(T, Effects)> {
        debug_assert_ne!(
            self.doc.client_id(),
            ClientID::new(u64::from(READ_ONLY_WRITER))
        );
        self.make_room_for(growth).ok()?;
        let mut effects = Effects::default();
        let mut txn = self.doc.transact_mut();
        let answer = edit(&mut txn);
        txn.commit();
        let delta = txn.has_changes().then(|| txn.encode_update_v1());
        let advanced = advance(&mut self.known, &txn);
        drop(txn);
        self.note_change(
            delta,
            advanced,
            growth,
            now_ms,
            &mut effects,
            &mut VecDeque::new(),
        );
        if self.pending.is_due(&self.limits.commit, now_ms) {
            self.commit_into(&mut effects.store);
        }
        effects.wake_at = self.wake_at();
        Some((answer, effects))
    }

    fn role_of(&self, conn: ConnId) -> Role {
        self.roles.get(&conn).copied().unwrap_or(Role::View)
    }

    fn dispatch(
        &mut self,
        conn: ConnId,
        frame: &[u8],
        now_ms: u64,
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
                let invalid = |e: String| CloseReason::InvalidStateVector(e);
                update_check::check_state_vector(state_vector)
                    .map_err(|e| invalid(e.to_string()))?;
                let state_vector =
                    StateVector::decode_v1(state_vector).map_err(|e| invalid(e.to_string()))?;
                let diff = self.doc.transact().encode_state_as_update_v1(&state_vector);
                effects.reply.push(Message::SyncStep2(&diff).encode());
            }
            Message::SyncStep2(update) | Message::Update(update) => {
                let invalid = |e: String| CloseReason::InvalidUpdate(e);
                let splits = self.walk(update).map_err(|e| invalid(e.to_string()))?;
                let decoded = Update::decode_v1(update).map_err(|e| invalid(e.to_string()))?;
                match self.role_of(conn) {
                    Role::Edit => {
                        self.apply_client_update(conn, update, splits, decoded, now_ms, effects)?
                    }
                    Role::View if self.would_change(&decoded) => return Err(CloseReason::ReadOnly),
                    Role::View => {}
                }
            }
            Message::Awareness(payload) => {
                let entries = awareness::decode(payload)?;
                let viewer = self.role_of(conn) == Role::View;
                let accepted = self.presence.apply(conn, entries, now_ms, viewer)?;
                if !accepted.changed.is_empty() {
                    let frame =
                        Message::Awareness(&awareness::encode(accepted.changed.iter())).encode();
                    // Echoed to the sender too, as y-websocket's server does: the stock
                    // provider drops a connection that hears nothing for 30 s, and a client
                    // alone in a room hears only its own 15-second awareness renewals.
                    effects.reply.push(frame.clone());
                    effects.broadcast.push(frame);
                    effects.presence_changed = true;
                }
                // A renewal changes no state: it is not saved with the socket, and it is
                // relayed with the others of its window (see `Renewals`).
                self.renewals.add(accepted.renewed, now_ms);
                if !accepted.contested.is_empty() {
                    let removals = awareness::encode(accepted.contested.iter());
                    effects.reply.push(Message::Awareness(&removals).encode());
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

    /// Applies an update from an editor. What is stored and relayed is the change it actually
    /// made (Yjs' own "update" event): duplicates cost nothing, and an update whose
    /// dependencies are missing waits inside the document until they arrive. An update that
    /// skips clocks of one of its clients waits in the room instead (see [`Held`]).
    fn apply_client_update(
        &mut self,
        conn: ConnId,
        update: &[u8],
        splits: Splits,
        decoded: Update,
        now_ms: u64,
        effects: &mut Effects,
    ) -> Result<(), CloseReason> {
        let growth = growth_bound(update.len(), splits);
        if let Err(full) = self.make_room_for(growth) {
            // The sender is closed: the next check may measure again.
            self.size.refused = true;
            return Err(full);
        }
        let gaps = gaps(&decoded.insertions(true), &self.known);
        if !gaps.is_empty() {
            self.held.hold(conn, update.to_vec(), gaps);
            return Ok(());
        }
        let mut ready = VecDeque::new();
        let applied = self.integrate(decoded, growth, now_ms, effects, &mut ready);
        // Updates the integration unblocked, walked again against what the room holds now.
        // Their senders may be gone, so a refusal drops the update rather than closing a
        // bystander.
        while let Some(update) = ready.pop_front() {
            let Ok(splits) = self.walk(&update) else {
                continue;
            };
            let growth = growth_bound(update.len(), splits);
            if self.make_room_for(growth).is_ok() {
                if let Ok(decoded) = Update::decode_v1(&update) {
                    let _ = self.integrate(decoded, growth, now_ms, effects, &mut ready);
                }
            }
        }
        applied
    }

    /// Checks an update before yrs sees it; returns how many existing blocks it may split.
    fn walk(&self, update: &[u8]) -> Result<Splits, update_check::WireError> {
        let known = &self.known;
        update_check::check_update(update, &|client, clock| {
            clock < known.get(&ClientID::new(client))
        })
    }

    /// Whether a viewer's update would change the room: an insertion the room has neither
    /// integrated nor pending, or a deletion of something not already deleted. Decided without
    /// integrating, since yrs cannot roll back.
    fn would_change(&mut self, update: &Update) -> bool {
        let inserts = update.insertions(true);
        let beyond: Vec<(ClientID, Range<u32>)> = inserts
            .iter()
            .flat_map(|(client, ranges)| {
                let known = self.known.get(client);
                ranges
                    .iter()
                    .filter(move |range| range.end > known)
                    .map(move |range| (*client, range.start.max(known)..range.end))
            })
            .collect();
        let deletes = update.delete_set();
        if beyond.is_empty() && deletes.is_empty() {
            return false;
        }
        let contents = self.contents.get_or_insert_with(|| Contents::of(&self.doc));
        beyond
            .iter()
            .any(|(client, range)| !covers(&contents.pending, client, range))
            || deletes.iter().any(|(client, ranges)| {
                ranges
                    .iter()
                    .any(|range| !covers(&contents.deleted, client, range))
            })
    }

    /// Refuses an update that may grow the document by `growth` bytes if that could take it
    /// past its size limit.
    fn make_room_for(&mut self, growth: usize) -> Result<(), CloseReason> {
        let limit = self.limits.max_document_bytes;
        if self.size.estimate.saturating_add(growth) <= limit {
            return Ok(());
        }
        let changed = self.size.accepted > 0;
        if self.size.accepted >= self.measure_step() || (self.size.refused && changed) {
            // Measured, never stored: a snapshot is written only when the log is compacted.
            self.size = DocSize::measured(self.snapshot().len());
            if self.size.estimate.saturating_add(growth) <= limit {
                return Ok(());
            }
        }
        Err(CloseReason::RoomFull { limit })
    }

    fn measure_step(&self) -> usize {
        (self.limits.max_document_bytes / MEASURE_FRACTION).max(1)
    }

    /// Integrates an update whose clocks leave no gap and that may grow the document by
    /// `growth` bytes; queues the held updates it unblocks.
    fn integrate(
        &mut self,
        decoded: Update,
        growth: usize,
        now_ms: u64,
        effects: &mut Effects,
        ready: &mut VecDeque<Vec<u8>>,
    ) -> Result<(), CloseReason> {
        let mut txn = self.doc.transact_mut();
        let applied = txn.apply_update(decoded);
        txn.commit();
        // Even a failed apply may have integrated part of the update: store what changed so
        // memory and storage never disagree.
        let delta = txn.has_changes().then(|| txn.encode_update_v1());
        // What yrs keeps pending is part of the encoded document too.
        let store = txn.store();
        let grew =
            delta.is_some() || store.pending_update().is_some() || store.pending_ds().is_some();
        // Held updates never reach yrs, so what it integrated is contiguous with what it had.
        let advanced = advance(&mut self.known, &txn);
        drop(txn);
        let growth = if grew { growth } else { 0 };
        self.note_change(delta, advanced, growth, now_ms, effects, ready);
        applied.map_err(|e| CloseReason::InvalidUpdate(e.to_string()))
    }

    /// After a transaction: `delta` (what it changed, if anything) is relayed and waits to be
    /// written, the clients whose clocks `advanced` may release held updates into `ready`,
    /// and the size estimate grows by `growth`.
    fn note_change(
        &mut self,
        delta: Option<Vec<u8>>,
        advanced: Vec<ClientID>,
        growth: usize,
        now_ms: u64,
        effects: &mut Effects,
        ready: &mut VecDeque<Vec<u8>>,
    ) {
        self.contents = None;
        for client in advanced {
            self.held.advance(client, &self.known, ready);
        }
        self.size.estimate = self.size.estimate.saturating_add(growth);
        self.size.accepted = self.size.accepted.saturating_add(growth);
        if let Some(delta) = delta {
            effects.broadcast.push(Message::Update(&delta).encode());
            self.pending.push(delta, now_ms);
        }
    }

    /// Writes what is due at `now_ms` into `store`; returns the frame of renewals due.
    fn due_work(&mut self, now_ms: u64, store: &mut Vec<StoreOp>) -> Option<Vec<u8>> {
        if self.pending.is_due(&self.limits.commit, now_ms) {
            self.commit_into(store);
        }
        if !self.renewals.is_due(now_ms) {
            return None;
        }
        let current: Vec<AwarenessEntry> = self
            .renewals
            .take(now_ms)
            .into_iter()
            .filter(|entry| self.presence.is_current(entry))
            .collect();
        (!current.is_empty())
            .then(|| Message::Awareness(&awareness::encode(current.iter())).encode())
    }

    /// When [`Room::tick`] has work next.
    fn wake_at(&self) -> Option<u64> {
        let commit = self.pending.deadline(&self.limits.commit);
        let relay = self.renewals.deadline();
        commit.into_iter().chain(relay).min()
    }

    /// Writes the pending updates as one log entry, or folds everything into a new snapshot
    /// when the log has grown enough.
    fn commit_into(&mut self, store: &mut Vec<StoreOp>) {
        let updates = self.pending.take();
        if updates.is_empty() {
            return;
        }
        for update in updates {
            self.stored.log_entries += 1;
            self.stored.log_bytes += update.len();
            store.push(StoreOp::Append(update));
        }
        if self.stored.should_compact(&self.limits.compaction) {
            let snapshot = self.snapshot();
            self.compact_into(snapshot, store);
        }
    }

    fn compact_into(&mut self, snapshot: Vec<u8>, store: &mut Vec<StoreOp>) {
        self.stored = StoredSize {
            snapshot_bytes: snapshot.len(),
            log_entries: 0,
            log_bytes: 0,
        };
        self.size = DocSize::measured(snapshot.len());
        // A compaction replaces everything stored so far, including appends of this commit.
        self.pending.clear();
        store.retain(|op| !matches!(op, StoreOp::Append(_)));
        store.push(StoreOp::Compact(snapshot));
    }

    fn apply_stored(&mut self, update: &[u8]) -> Result<(), String> {
        let decoded = Update::decode_v1(update).map_err(|e| e.to_string())?;
        self.doc
            .transact_mut()
            .apply_update(decoded)
            .map_err(|e| e.to_string())
    }
}

/// The encoded document's size as last measured plus a bound on what every update accepted
/// since can have added: never below the true size, and free to keep. Near the limit an exact
/// measurement (an encode of the whole document) corrects it, at most once per step of
/// accepted growth, and once after each refusal (which closes its sender, so a client pays a
/// reconnect for each measurement it causes); without the latter a room whose estimate ran
/// ahead of it would refuse everything, deletions included, until its next compaction.
#[derive(Debug, Default, Clone, Copy)]
struct DocSize {
    /// Bytes: the last measurement plus the growth bounds of what was accepted since.
    estimate: usize,
    /// Growth bounds accepted since the last measurement.
    accepted: usize,
    /// A client's update was refused since the last measurement.
    refused: bool,
}

impl DocSize {
    fn measured(bytes: usize) -> Self {
        DocSize {
            estimate: bytes,
            accepted: 0,
            refused: false,
        }
    }
}

/// Moves `known` past what `txn` inserted; returns the clients whose clocks moved.
fn advance(known: &mut StateVector, txn: &TransactionMut) -> Vec<ClientID> {
    let mut advanced = Vec::new();
    for (client, ranges) in txn.insert_set().iter() {
        if let Some(range) = ranges.iter().next_back() {
            known.set_max(*client, range.end);
            advanced.push(*client);
        }
    }
    advanced
}

/// An upper bound on how much an update of `len` bytes can grow the encoded document: its own
/// bytes (pending content included), and a header for every existing block it may split.
fn growth_bound(len: usize, Splits(splits): Splits) -> usize {
    let splits = usize::try_from(splits).unwrap_or(usize::MAX);
    len.saturating_add(splits.saturating_mul(SPLIT_BYTES))
}

/// The clocks the room must reach before blocks with ids `inserts` can be integrated without
/// a gap: per client, the start of its last range (its earlier ranges start below that).
fn gaps(inserts: &IdSet, known: &StateVector) -> Vec<(ClientID, u32)> {
    inserts
        .iter()
        .filter_map(|(client, ranges)| {
            let start = ranges.iter().next_back()?.start;
            (start > known.get(client)).then_some((*client, start))
        })
        .collect()
}

/// Whether `set` holds every id of `client` in `range`.
fn covers(set: &IdSet, client: &ClientID, range: &Range<u32>) -> bool {
    if range.is_empty() {
        return true;
    }
    let Some(ranges) = set.get(client) else {
        return false;
    };
    // Ranges in a set are sorted and coalesced: a covered range lies within one of them.
    let ranges = ranges.as_slice();
    let i = ranges.partition_point(|(r, _)| r.start <= range.start);
    i > 0 && ranges[i - 1].0.end >= range.end
}

/// What the room holds besides its state vector, for judging viewers' updates.
struct Contents {
    /// Ids of blocks yrs keeps pending, waiting for what they depend on.
    pending: IdSet,
    /// Ids deleted in the document or pending deletion.
    deleted: IdSet,
}

impl Contents {
    /// One pass over the document, as answering a SyncStep1 takes.
    fn of(doc: &Doc) -> Self {
        let txn = doc.transact();
        let mut deleted = txn.snapshot().delete_set;
        let store = txn.store();
        if let Some(pending) = store.pending_ds() {
            deleted.merge_with(pending.clone());
        }
        let pending = store
            .pending_update()
            .map(|pending| pending.update.insertions(true))
            .unwrap_or_default();
        Contents { pending, deleted }
    }
}

/// Updates that skip clocks of one of their clients, waiting until the gap is filled.
///
/// Yjs keeps such blocks pending; yrs 0.28 instead integrates them at once behind a `Skip`,
/// after which its state vector, the transaction's delta (what the room stores and relays)
/// and even the ids of later blocks of that client go wrong. Honest clients send them: the
/// stock provider sends each edit as soon as its socket opens, before it has answered the
/// room's SyncStep1 with the SyncStep2 that carries the edits made while it was away. So the
/// room holds them in memory and applies them once the gap is filled.
///
/// Bounded per room and per connection, in entries and in bytes (each entry costs its bytes
/// and a fixed overhead); past a bound the oldest update of whoever holds most is dropped,
/// which costs an honest client nothing: its SyncStep2 re-sends everything the room lacks.
/// A connection's held updates go when it does. Each update is indexed by the one clock it
/// waits for, so an integration revisits only the updates its clocks unblock.
struct Held {
    /// By arrival: the first is the oldest.
    updates: BTreeMap<u64, HeldUpdate>,
    by_conn: HashMap<ConnId, ConnHeld>,
    /// Per client, the (clock, update) pairs waiting for that client to reach the clock.
    waiting: HashMap<ClientID, BTreeSet<(u32, u64)>>,
    cost: usize,
    next: u64,
    caps: HeldCaps,
}

/// The bounds of [`Held`].
#[derive(Debug, Clone, Copy)]
struct HeldCaps {
    updates: usize,
    per_connection: usize,
    bytes: usize,
}

struct HeldUpdate {
    conn: ConnId,
    update: Vec<u8>,
    /// The clocks to reach, from [`gaps`]; all before `next_gap` are reached.
    gaps: Vec<(ClientID, u32)>,
    next_gap: usize,
    cost: usize,
}

#[derive(Default)]
struct ConnHeld {
    ids: BTreeSet<u64>,
    cost: usize,
}

impl Held {
    fn new(caps: HeldCaps) -> Self {
        Held {
            updates: BTreeMap::new(),
            by_conn: HashMap::new(),
            waiting: HashMap::new(),
            cost: 0,
            next: 0,
            caps,
        }
    }

    /// Holds `update` from `conn` until every clock in `gaps` (not empty) is reached.
    fn hold(&mut self, conn: ConnId, update: Vec<u8>, gaps: Vec<(ClientID, u32)>) {
        let Some(&(client, clock)) = gaps.first() else {
            return;
        };
        let id = self.next;
        self.next += 1;
        let cost = update.len() + HELD_ENTRY_COST + gaps.len() * HELD_GAP_COST;
        self.waiting.entry(client).or_default().insert((clock, id));
        self.updates.insert(
            id,
            HeldUpdate {
                conn,
                update,
                gaps,
                next_gap: 0,
                cost,
            },
        );
        let held = self.by_conn.entry(conn).or_default();
        held.ids.insert(id);
        held.cost += cost;
        self.cost += cost;

        while self
            .by_conn
            .get(&conn)
            .is_some_and(|held| held.ids.len() > self.caps.per_connection)
        {
            self.drop_oldest_of(conn);
        }
        while self.updates.len() > self.caps.updates || self.cost > self.caps.bytes {
            let Some(largest) = self
                .by_conn
                .iter()
                .max_by_key(|(conn, held)| (held.cost, Reverse(**conn)))
                .map(|(conn, _)| *conn)
            else {
                break;
            };
            self.drop_oldest_of(largest);
        }
    }

    /// `client` has advanced in `known`: re-indexes the updates waiting on it, and queues
    /// those with no gap left.
    fn advance(&mut self, client: ClientID, known: &StateVector, ready: &mut VecDeque<Vec<u8>>) {
        let clock = known.get(&client);
        let Some(waiting) = self.waiting.get_mut(&client) else {
            return;
        };
        let unblocked: Vec<(u32, u64)> = waiting.range(..=(clock, u64::MAX)).copied().collect();
        for key in &unblocked {
            waiting.remove(key);
        }
        if waiting.is_empty() {
            self.waiting.remove(&client);
        }
        for (_, id) in unblocked {
            let Some(entry) = self.updates.get_mut(&id) else {
                continue;
            };
            entry.next_gap += 1;
            while entry
                .gaps
                .get(entry.next_gap)
                .is_some_and(|&(client, clock)| known.get(&client) >= clock)
            {
                entry.next_gap += 1;
            }
            match entry.gaps.get(entry.next_gap) {
                Some(&(client, clock)) => {
                    self.waiting.entry(client).or_default().insert((clock, id));
                }
                None => {
                    if let Some(entry) = self.forget(id) {
                        ready.push_back(entry.update);
                    }
                }
            }
        }
    }

    /// Drops every update `conn` left waiting.
    fn disconnect(&mut self, conn: ConnId) {
        let ids: Vec<u64> = self
            .by_conn
            .get(&conn)
            .map(|held| held.ids.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.forget(id);
        }
    }

    fn drop_oldest_of(&mut self, conn: ConnId) {
        let oldest = self
            .by_conn
            .get(&conn)
            .and_then(|held| held.ids.first().copied());
        if let Some(id) = oldest {
            self.forget(id);
        }
    }

    /// Removes an update from every index.
    fn forget(&mut self, id: u64) -> Option<HeldUpdate> {
        let entry = self.updates.remove(&id)?;
        if let Some(&(client, clock)) = entry.gaps.get(entry.next_gap) {
            if let Some(waiting) = self.waiting.get_mut(&client) {
                waiting.remove(&(clock, id));
                if waiting.is_empty() {
                    self.waiting.remove(&client);
                }
            }
        }
        if let Some(held) = self.by_conn.get_mut(&entry.conn) {
            held.ids.remove(&id);
            held.cost -= entry.cost;
            if held.ids.is_empty() {
                self.by_conn.remove(&entry.conn);
            }
        }
        self.cost -= entry.cost;
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use yrs::{GetString, Text, TextRef};

    const NOW: u64 = 1_000_000;

    /// An editor whose updates can be sent or kept back (to open gaps).
    struct Editor {
        doc: Doc,
        text: TextRef,
    }

    impl Editor {
        fn new(id: u64) -> Self {
            let doc = Doc::with_client_id(id);
            let text = doc.get_or_insert_text("t");
            Editor { doc, text }
        }

        /// Appends `s`; returns the Update frame.
        fn type_(&self, s: &str) -> Vec<u8> {
            let mut txn = self.doc.transact_mut();
            let len = self.text.len(&txn);
            self.text.insert(&mut txn, len, s);
            txn.commit();
            Message::Update(&txn.encode_update_v1()).encode()
        }

        /// Everything it has, as a SyncStep2 frame.
        fn everything(&self) -> Vec<u8> {
            let state = self
                .doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            Message::SyncStep2(&state).encode()
        }
    }

    fn text(room: &Room) -> String {
        let txn = room.doc.transact();
        txn.get_text("t")
            .map(|t| t.get_string(&txn))
            .unwrap_or_default()
    }

    /// The held indexes agree with each other and with the caps.
    fn assert_held_consistent(held: &Held) {
        assert!(held.updates.len() <= held.caps.updates);
        assert!(held.cost <= held.caps.bytes);
        assert_eq!(
            held.cost,
            held.updates.values().map(|e| e.cost).sum::<usize>()
        );
        let waiting: usize = held.waiting.values().map(BTreeSet::len).sum();
        assert_eq!(
            waiting,
            held.updates.len(),
            "each update waits on exactly one clock"
        );
        for (id, entry) in &held.updates {
            let (client, clock) = entry.gaps[entry.next_gap];
            assert!(held.waiting[&client].contains(&(clock, *id)));
            assert!(held.by_conn[&entry.conn].ids.contains(id));
        }
        for held_by in held.by_conn.values() {
            assert!(!held_by.ids.is_empty());
            assert!(held_by.ids.len() <= held.caps.per_connection);
        }
    }

    #[test]
    fn held_updates_wait_and_are_indexed_by_the_clock_they_need() {
        let mut room = Room::new(Limits::default());
        room.join(1, Role::Edit);
        let ada = Editor::new(100);
        let bob = Editor::new(200);
        let ada_first = ada.type_("a");
        let ada_later: Vec<_> = (0..3).map(|_| ada.type_("b")).collect();
        let bob_first = bob.type_("x");
        let bob_later = bob.type_("y");
        for frame in ada_later.iter().chain([&bob_later]) {
            assert_eq!(room.receive(1, frame, NOW), Effects::default());
        }
        assert_held_consistent(&room.held);
        assert_eq!(room.held.updates.len(), 4);
        assert_eq!(room.held.waiting[&ClientID::new(100)].len(), 3);

        // Bob's gap fills: only Bob's update is released; Ada's stay as they were.
        let effects = room.receive(1, &bob_first, NOW);
        assert_eq!(effects.broadcast.len(), 2);
        assert_eq!(room.held.updates.len(), 3);
        assert!(!room.held.waiting.contains_key(&ClientID::new(200)));
        assert_held_consistent(&room.held);

        let effects = room.receive(1, &ada_first, NOW);
        assert_eq!(effects.broadcast.len(), 4);
        assert!(room.held.updates.is_empty() && room.held.waiting.is_empty());
        assert!(room.held.by_conn.is_empty());
        assert_eq!(room.held.cost, 0);
        assert!(text(&room).contains("abbb") && text(&room).contains("xy"));
    }

    #[test]
    fn an_update_with_two_gaps_waits_for_the_second_after_the_first() {
        let mut room = Room::new(Limits::default());
        room.join(1, Role::Edit);
        let ada = Editor::new(100);
        let bob = Editor::new(200);
        let (a1, b1) = (ada.type_("a"), bob.type_("x"));
        // One update carrying later edits of both (merged), so it has a gap in each client.
        let updates: Vec<Vec<u8>> = [ada.type_("b"), bob.type_("y")]
            .iter()
            .map(|frame| match Message::decode(frame).unwrap() {
                Message::Update(u) => u.to_vec(),
                _ => unreachable!(),
            })
            .collect();
        let merged = yrs::merge_updates_v1(&updates).unwrap();
        assert_eq!(
            room.receive(1, &Message::Update(&merged).encode(), NOW),
            Effects::default()
        );
        room.receive(1, &a1, NOW);
        assert_eq!(room.held.updates.len(), 1, "still waits for Bob");
        assert!(room.held.waiting.contains_key(&ClientID::new(200)));
        assert_held_consistent(&room.held);
        let effects = room.receive(1, &b1, NOW);
        assert_eq!(effects.broadcast.len(), 2);
        assert!(room.held.updates.is_empty());
    }

    #[test]
    fn held_updates_go_with_their_connection_and_caps_drop_the_largest_holders_oldest() {
        let mut room = Room::new(Limits::default());
        room.held.caps = HeldCaps {
            updates: 5,
            per_connection: 3,
            bytes: usize::MAX,
        };
        for conn in 1..=3 {
            room.join(conn, Role::Edit);
        }
        let ada = Editor::new(100);
        let _gap = ada.type_("a");
        let frames: Vec<_> = (0..10).map(|_| ada.type_("b")).collect();
        // Connection 1 sends four: its oldest is dropped at the per-connection cap.
        for frame in &frames[..4] {
            room.receive(1, frame, NOW);
        }
        assert_eq!(room.held.by_conn[&1].ids.len(), 3);
        assert_eq!(room.held.by_conn[&1].ids.first(), Some(&1));
        // Connection 2 sends two: five in the room. A third from connection 3 drops the
        // oldest of the largest holder (connection 1), not connection 3's own.
        room.receive(2, &frames[4], NOW);
        room.receive(2, &frames[5], NOW);
        room.receive(3, &frames[6], NOW);
        assert_eq!(room.held.updates.len(), 5);
        assert_eq!(room.held.by_conn[&1].ids.len(), 2);
        assert_eq!(room.held.by_conn[&3].ids.len(), 1);
        assert_held_consistent(&room.held);

        room.disconnect(1);
        assert!(!room.held.by_conn.contains_key(&1));
        assert_eq!(room.held.updates.len(), 3);
        assert_held_consistent(&room.held);
        room.disconnect(2);
        room.disconnect(3);
        assert!(room.held.updates.is_empty() && room.held.waiting.is_empty());
        assert_eq!(room.held.cost, 0);
    }

    #[test]
    fn held_bytes_count_a_fixed_cost_per_update() {
        let mut room = Room::new(Limits::default());
        room.join(1, Role::Edit);
        let ada = Editor::new(100);
        let _gap = ada.type_("a");
        let frame = ada.type_("b");
        room.receive(1, &frame, NOW);
        let entry = room.held.updates.values().next().unwrap();
        assert_eq!(
            entry.cost,
            entry.update.len() + HELD_ENTRY_COST + HELD_GAP_COST
        );
        // A byte cap that fits no entry at all holds nothing.
        room.held.caps.bytes = HELD_ENTRY_COST;
        room.receive(1, &ada.type_("c"), NOW);
        assert!(room.held.updates.is_empty());
        assert_held_consistent(&room.held);
    }

    #[test]
    fn near_the_limit_the_room_measures_at_most_once_per_step_and_never_stores_for_it() {
        let limits = Limits {
            max_document_bytes: 64 * 1024,
            compaction: Compaction {
                max_log_entries: usize::MAX,
                min_log_bytes: usize::MAX,
                snapshot_bytes_per_entry: usize::MAX,
            },
            ..Limits::default()
        };
        let mut room = Room::new(limits);
        room.join(1, Role::Edit);
        let ada = Editor::new(100);
        let step = room.measure_step();
        let chunk = "0123456789abcdef".repeat(4);
        let mut measured = 0;
        let refused = (0..5000).find_map(|_| {
            let before = room.size;
            let effects = room.receive(1, &ada.type_(&chunk), NOW);
            assert!(effects
                .store
                .iter()
                .all(|op| matches!(op, StoreOp::Append(_))));
            if room.size.accepted < before.accepted {
                measured += 1;
                assert!(before.accepted >= step, "measured again within a step");
            }
            assert!(room.size.estimate >= room.snapshot().len());
            effects.close
        });
        assert_eq!(
            refused,
            Some(CloseReason::RoomFull {
                limit: limits.max_document_bytes
            })
        );
        assert!(measured >= 2, "{measured}");
        assert!(room.snapshot().len() <= limits.max_document_bytes);
    }

    #[test]
    fn a_deletion_lets_a_full_room_measure_again() {
        let limits = Limits {
            max_document_bytes: 16 * 1024,
            ..Limits::default()
        };
        let mut room = Room::new(limits);
        room.join(1, Role::Edit);
        let ada = Editor::new(100);
        let chunk = "z".repeat(1024);
        let mut accepted = 0;
        loop {
            let effects = room.receive(1, &ada.type_(&chunk), NOW);
            if effects.close.is_some() {
                break;
            }
            accepted += 1;
        }
        // The refused chunk stays in Ada's document; a fresh editor syncs what the room has.
        let bob = Editor::new(200);
        let sync = room.snapshot();
        bob.doc
            .transact_mut()
            .apply_update(Update::decode_v1(&sync).unwrap())
            .unwrap();
        let delete = {
            let mut txn = bob.doc.transact_mut();
            bob.text.remove_range(&mut txn, 0, 8 * 1024);
            txn.commit();
            Message::Update(&txn.encode_update_v1()).encode()
        };
        room.join(2, Role::Edit);
        assert!(room.receive(2, &delete, NOW).close.is_none());
        let effects = room.receive(2, &bob.type_(&chunk), NOW);
        assert!(
            effects.close.is_none(),
            "{:?} after {accepted}",
            effects.close
        );
    }

    /// One edit of the size-bound property: insert, delete, format or set a map key, at a
    /// position taken modulo the text's length; sent at once, or later merged with the next.
    #[derive(Debug, Clone)]
    struct Edit {
        who: usize,
        kind: u8,
        at: u32,
        len: u32,
        send: bool,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        (0..3usize, 0..4u8, any::<u32>(), 1..6u32, any::<bool>()).prop_map(
            |(who, kind, at, len, send)| Edit {
                who,
                kind,
                at,
                len,
                send,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The size estimate never falls below the encoded document, whatever the edits (in
        /// the middle of others' text, deletions splitting items, formatting, maps, several
        /// edits merged into one update).
        #[test]
        fn the_size_estimate_never_falls_below_the_document(
            edits in prop::collection::vec(edit(), 1..150),
        ) {
            let mut room = Room::new(Limits::default());
            let editors: Vec<Editor> = (0..3).map(|i| Editor::new(100 + i as u64)).collect();
            let mut unsent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
            for conn in 0..3 {
                room.join(conn, Role::Edit);
            }
            let last = edits.len() - 1;
            for (n, edit) in edits.into_iter().enumerate() {
                let editor = &editors[edit.who];
                let update = {
                    let mut txn = editor.doc.transact_mut();
                    let len = editor.text.len(&txn);
                    let at = edit.at % (len + 1);
                    let span = edit.len.min(len - at.min(len));
                    match edit.kind {
                        0 => editor.text.insert(&mut txn, at, &"xyz"[..edit.len.min(3) as usize]),
                        1 if span > 0 => editor.text.remove_range(&mut txn, at, span),
                        2 if span > 0 => editor.text.format(
                            &mut txn,
                            at,
                            span,
                            [("b".into(), yrs::Any::Bool(edit.len % 2 == 0))].into(),
                        ),
                        _ => {
                            let map = yrs::WriteTxn::get_or_insert_map(&mut txn, "m");
                            yrs::Map::insert(&map, &mut txn, format!("k{}", edit.at % 4), edit.len);
                        }
                    }
                    txn.commit();
                    txn.encode_update_v1()
                };
                unsent[edit.who].push(update);
                if !edit.send && n != last {
                    continue;
                }
                let update = yrs::merge_updates_v1(std::mem::take(&mut unsent[edit.who])).unwrap();
                let effects = room.receive(edit.who as u64, &Message::Update(&update).encode(), NOW);
                prop_assert!(effects.close.is_none());
                for (i, other) in editors.iter().enumerate() {
                    if i != edit.who {
                        for frame in &effects.broadcast {
                            if let Message::Update(u) = Message::decode(frame).unwrap() {
                                other.doc.transact_mut().apply_update(Update::decode_v1(u).unwrap()).unwrap();
                            }
                        }
                    }
                }
                prop_assert!(room.size.estimate >= room.snapshot().len());
            }
        }
    }

    /// One step of a held-updates scenario.
    #[derive(Debug, Clone)]
    enum Step {
        /// Editor `who` types; the room gets it over connection `conn` unless `kept` back.
        Type { who: usize, conn: u64, kept: bool },
        /// Editor `who` sends everything it has over `conn` (what its SyncStep2 would carry).
        Sync { who: usize, conn: u64 },
        /// Connection `conn` closes.
        Close { conn: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..3usize, 1..5u64, prop::bool::weighted(0.3))
                .prop_map(|(who, conn, kept)| Step::Type { who, conn, kept }),
            1 => (0..3usize, 1..5u64).prop_map(|(who, conn)| Step::Sync { who, conn }),
            1 => (1..5u64).prop_map(|conn| Step::Close { conn }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Under any interleaving of held updates, closes and syncs, the caps hold and the
        /// indexes agree; once everyone syncs, the room holds every edit.
        #[test]
        fn held_caps_hold_under_any_interleaving(
            steps in prop::collection::vec(step(), 1..200),
            updates in 2..8usize,
            per_connection in 1..4usize,
            bytes in 600..3000usize,
        ) {
            let mut room = Room::new(Limits::default());
            room.held.caps = HeldCaps { updates, per_connection, bytes };
            let editors: Vec<Editor> = (0..3).map(|i| Editor::new(100 + i as u64)).collect();
            for step in steps {
                match step {
                    Step::Type { who, conn, kept } => {
                        let frame = editors[who].type_("ab");
                        if !kept {
                            room.join(conn, Role::Edit);
                            let effects = room.receive(conn, &frame, NOW);
                            prop_assert!(effects.close.is_none());
                        }
                    }
                    Step::Sync { who, conn } => {
                        room.join(conn, Role::Edit);
                        let effects = room.receive(conn, &editors[who].everything(), NOW);
                        prop_assert!(effects.close.is_none());
                    }
                    Step::Close { conn } => {
                        room.disconnect(conn);
                        prop_assert!(!room.held.by_conn.contains_key(&conn));
                    }
                }
                assert_held_consistent(&room.held);
            }
            room.join(9, Role::Edit);
            for editor in &editors {
                room.receive(9, &editor.everything(), NOW);
            }
            let mut typed = 0;
            for editor in &editors {
                typed += editor.text.get_string(&editor.doc.transact()).len();
                let client = editor.doc.client_id();
                prop_assert_eq!(
                    room.known.get(&client),
                    editor.doc.transact().state_vector().get(&client)
                );
            }
            prop_assert_eq!(text(&room).len(), typed);
            assert_held_consistent(&room.held);
        }
    }
}
