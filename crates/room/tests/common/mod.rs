//! Test helpers shared by the integration tests: a real yrs client that speaks y-protocols
//! to a [`Room`], an in-test model of the room's durable storage, and a small "world" that
//! routes frames between a room and its peers through per-socket FIFO queues.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use codebox_room::storage::{chunks, CommitPolicy, CHUNK_BYTES};
use codebox_room::{
    awareness, AwarenessEntry, ConnId, Effects, Limits, Message, Role, Room, StoreOp,
};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// The shared text's name, as the IDE's y-codemirror binding uses it.
pub(crate) const TEXT: &str = "codemirror";

/// The runtime's clock in tests that do not move it (Unix milliseconds).
pub(crate) const NOW: u64 = 1_700_000_000_000;

/// A room in which sockets 1 to 9 joined as editors.
pub(crate) fn editors_room(limits: Limits) -> Room {
    let mut room = Room::new(limits);
    for conn in 1..=9 {
        room.join(conn, Role::Edit);
    }
    room
}

/// One editor: a yrs document with a text, plus the awareness states it has seen.
pub(crate) struct Client {
    pub id: u64,
    pub doc: Doc,
    pub text: TextRef,
    /// client id -> (clock, JSON state or None when gone), as y-protocols' Awareness keeps it.
    pub awareness: HashMap<u64, (u32, Option<String>)>,
}

impl Client {
    pub(crate) fn new(id: u64) -> Self {
        let doc = Doc::with_client_id(id);
        let text = doc.get_or_insert_text(TEXT);
        Client {
            id,
            doc,
            text,
            awareness: HashMap::new(),
        }
    }

    /// SyncStep1 with this client's state vector.
    pub(crate) fn sync_step1(&self) -> Vec<u8> {
        let sv = self.doc.transact().state_vector().encode_v1();
        Message::SyncStep1(&sv).encode()
    }

    /// The client's whole state as a SyncStep2 (what it answers to an empty state vector).
    pub(crate) fn full_state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// Inserts `chunk` at `index` and returns the Update frame y-websocket would send.
    pub(crate) fn insert(&mut self, index: u32, chunk: &str) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        self.text.insert(&mut txn, index, chunk);
        txn.commit();
        let update = txn.encode_update_v1();
        Message::Update(&update).encode()
    }

    /// Deletes `len` characters at `index` and returns the Update frame.
    pub(crate) fn delete(&mut self, index: u32, len: u32) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        self.text.remove_range(&mut txn, index, len);
        txn.commit();
        let update = txn.encode_update_v1();
        Message::Update(&update).encode()
    }

    pub(crate) fn len(&self) -> u32 {
        self.text.len(&self.doc.transact())
    }

    pub(crate) fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    pub(crate) fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// An awareness frame announcing this client's own state.
    pub(crate) fn awareness_frame(&self, clock: u32, state: Option<&str>) -> Vec<u8> {
        awareness_frame(&[entry(self.id, clock, state)])
    }

    /// Sets this client's own awareness state (as y-protocols' `setLocalState` does) and
    /// returns the frame announcing it.
    pub(crate) fn announce(&mut self, clock: u32, state: Option<&str>) -> Vec<u8> {
        self.awareness
            .insert(self.id, (clock, state.map(String::from)));
        self.awareness_frame(clock, state)
    }

    /// Handles one frame from the room; returns the frames the client sends back.
    pub(crate) fn receive(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        match Message::decode(frame).expect("the room sends well-formed frames") {
            Message::SyncStep1(sv) => {
                let sv = StateVector::decode_v1(sv).expect("the room sends a valid state vector");
                let diff = self.doc.transact().encode_state_as_update_v1(&sv);
                vec![Message::SyncStep2(&diff).encode()]
            }
            Message::SyncStep2(update) | Message::Update(update) => {
                let update = Update::decode_v1(update).expect("the room sends valid updates");
                self.doc
                    .transact_mut()
                    .apply_update(update)
                    .expect("the room's updates apply");
                vec![]
            }
            Message::Awareness(payload) => {
                let entries = awareness::decode(payload).expect("the room sends valid awareness");
                for e in entries {
                    let wins = match self.awareness.get(&e.client) {
                        None => true,
                        Some((clock, state)) => {
                            *clock < e.clock
                                || (*clock == e.clock && e.state.is_none() && state.is_some())
                        }
                    };
                    if wins {
                        self.awareness
                            .insert(e.client, (e.clock, e.state.as_deref().map(String::from)));
                    }
                }
                vec![]
            }
            other => panic!("the room sent a client-only or unexpected message: {other:?}"),
        }
    }

    /// The client ids this client currently sees as present.
    pub(crate) fn present(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .awareness
            .iter()
            .filter(|(_, (_, s))| s.is_some())
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

pub(crate) fn entry(client: u64, clock: u32, state: Option<&str>) -> AwarenessEntry {
    AwarenessEntry {
        client,
        clock,
        state: state.map(Arc::from),
    }
}

pub(crate) fn awareness_frame(entries: &[AwarenessEntry]) -> Vec<u8> {
    Message::Awareness(&awareness::encode(entries.iter())).encode()
}

/// Decodes an awareness frame sent by the room, sorted by client id.
pub(crate) fn decode_awareness(frame: &[u8]) -> Vec<AwarenessEntry> {
    match Message::decode(frame).expect("well-formed frame") {
        Message::Awareness(payload) => {
            let mut entries = awareness::decode(payload).expect("valid awareness payload");
            entries.sort_by_key(|e| e.client);
            entries
        }
        other => panic!("expected an awareness frame, got {other:?}"),
    }
}

/// The text of a room's document.
pub(crate) fn room_text(room: &Room) -> String {
    let txn = room.doc().transact();
    txn.get_text(TEXT)
        .map(|t| t.get_string(&txn))
        .unwrap_or_default()
}

pub(crate) fn room_state_vector(room: &Room) -> StateVector {
    room.doc().transact().state_vector()
}

/// Whether applying `update` to a document holding `base` changes anything.
fn adds_to(base: &[u8], update: &[u8]) -> bool {
    let doc = Doc::with_client_id(2);
    doc.transact_mut()
        .apply_update(Update::decode_v1(base).unwrap())
        .unwrap();
    let mut txn = doc.transact_mut();
    txn.apply_update(Update::decode_v1(update).unwrap())
        .unwrap();
    txn.has_changes()
}

/// Asserts two rooms hold the same document: the same text and state vector, and neither
/// snapshot adds anything to the other. (Byte-identical snapshots are not guaranteed: yrs
/// squashes adjacent blocks depending on the order they were integrated in.)
pub(crate) fn assert_same_document(a: &Room, b: &Room) {
    assert_eq!(room_text(a), room_text(b));
    assert_eq!(room_state_vector(a), room_state_vector(b));
    let (sa, sb) = (a.snapshot(), b.snapshot());
    assert!(
        !adds_to(&sa, &sb),
        "the second room holds changes the first lacks"
    );
    assert!(
        !adds_to(&sb, &sa),
        "the first room holds changes the second lacks"
    );
}

/// What kind of message a frame is, for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    SyncStep1,
    SyncStep2,
    Update,
    Awareness,
    Auth,
    Query,
}

pub(crate) fn kind(frame: &[u8]) -> Kind {
    match Message::decode(frame).expect("the room sends well-formed frames") {
        Message::SyncStep1(_) => Kind::SyncStep1,
        Message::SyncStep2(_) => Kind::SyncStep2,
        Message::Update(_) => Kind::Update,
        Message::Awareness(_) => Kind::Awareness,
        Message::PermissionDenied(_) => Kind::Auth,
        Message::QueryAwareness => Kind::Query,
    }
}

pub(crate) fn kinds(frames: &[Vec<u8>]) -> Vec<Kind> {
    frames.iter().map(|f| kind(f)).collect()
}

/// Invariants every step of the room must keep, whatever the frame was.
pub(crate) fn check_effects(effects: &Effects) {
    let reply = kinds(&effects.reply);
    let broadcast = kinds(&effects.broadcast);
    assert!(
        !reply.contains(&Kind::Update),
        "an update is never echoed to its sender: {reply:?}"
    );
    assert!(
        broadcast
            .iter()
            .all(|k| matches!(k, Kind::Update | Kind::Awareness)),
        "only updates and awareness are broadcast: {broadcast:?}"
    );
    if effects.close.is_some() {
        assert!(effects.reply.is_empty(), "a closed socket gets no reply");
    }
}

/// The default limits, but each step writes what it accepted: most tests check storage step
/// by step; the commit window has tests of its own.
pub(crate) fn immediate() -> Limits {
    Limits {
        commit: CommitPolicy::IMMEDIATE,
        ..Limits::default()
    }
}

/// The durable form of a room as the runtime keeps it: snapshot rows and log entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stored {
    /// The snapshot, split into rows of at most [`CHUNK_BYTES`].
    pub snapshot_rows: Vec<Vec<u8>>,
    pub log: Vec<Vec<u8>>,
    /// Longest the log has ever been.
    pub max_log_len: usize,
    pub compactions: usize,
}

impl Stored {
    pub(crate) fn apply(&mut self, ops: &[StoreOp]) {
        for op in ops {
            match op {
                StoreOp::Append(update) => {
                    assert!(!update.is_empty());
                    self.log.push(update.clone());
                }
                StoreOp::Compact(snapshot) => {
                    self.snapshot_rows = chunks(snapshot).map(<[u8]>::to_vec).collect();
                    assert!(self
                        .snapshot_rows
                        .iter()
                        .all(|row| row.len() <= CHUNK_BYTES));
                    self.log.clear();
                    self.compactions += 1;
                }
            }
            self.max_log_len = self.max_log_len.max(self.log.len());
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<u8> {
        self.snapshot_rows.concat()
    }

    pub(crate) fn load(&self, limits: Limits) -> Room {
        Room::load(limits, &self.snapshot(), &self.log).expect("stored data loads")
    }
}

/// One peer of a [`World`]: a client and the queues of its socket.
pub(crate) struct Peer {
    pub client: Client,
    /// The current socket, if connected.
    pub conn: Option<ConnId>,
    /// Frames the room sent that the client has not read yet.
    pub inbox: VecDeque<Vec<u8>>,
    /// Frames the client sent that the room has not read yet.
    pub outbox: VecDeque<Vec<u8>>,
    /// Why the room last closed this peer's socket, if it did.
    pub closed: Option<codebox_room::CloseReason>,
    /// The role its sockets join with.
    pub role: Role,
}

/// A room, its storage and its peers, with frames moving only when a test says so.
pub(crate) struct World {
    pub room: Room,
    pub stored: Stored,
    pub limits: Limits,
    pub peers: Vec<Peer>,
    /// The runtime's clock; tests move it by hand.
    pub now_ms: u64,
    next_conn: ConnId,
}

impl World {
    pub(crate) fn new(limits: Limits, peers: usize) -> Self {
        World {
            room: Room::new(limits),
            stored: Stored::default(),
            limits,
            peers: (0..peers)
                .map(|i| Peer {
                    client: Client::new(100 + i as u64),
                    conn: None,
                    inbox: VecDeque::new(),
                    outbox: VecDeque::new(),
                    closed: None,
                    role: Role::Edit,
                })
                .collect(),
            now_ms: NOW,
            next_conn: 1,
        }
    }

    /// Opens a socket for peer `i`: the room greets it and the client sends its SyncStep1,
    /// as y-websocket does on open.
    pub(crate) fn connect(&mut self, i: usize) {
        assert!(self.peers[i].conn.is_none());
        let conn = self.next_conn;
        self.next_conn += 1;
        let greeting = self.room.join(conn, self.peers[i].role);
        let peer = &mut self.peers[i];
        peer.conn = Some(conn);
        peer.inbox.extend(greeting);
        peer.outbox.push_back(peer.client.sync_step1());
    }

    /// Closes peer `i`'s socket: queued frames either way are lost, as with a real socket.
    pub(crate) fn disconnect(&mut self, i: usize) -> Effects {
        let conn = self.peers[i].conn.take().expect("connected");
        self.peers[i].inbox.clear();
        self.peers[i].outbox.clear();
        let effects = self.room.disconnect(conn);
        assert!(effects.store.is_empty() && effects.reply.is_empty());
        self.route(i, &effects);
        effects
    }

    pub(crate) fn conn(&self, i: usize) -> ConnId {
        self.peers[i].conn.expect("connected")
    }

    /// Peer `i` sends a frame (queued until [`World::send_one`]).
    pub(crate) fn queue(&mut self, i: usize, frame: Vec<u8>) {
        self.peers[i].outbox.push_back(frame);
    }

    /// The room reads the oldest frame peer `i` sent. Returns the effects, or None if the
    /// outbox was empty.
    pub(crate) fn send_one(&mut self, i: usize) -> Option<Effects> {
        let frame = self.peers[i].outbox.pop_front()?;
        Some(self.send_now(i, &frame))
    }

    /// The room reads `frame` from peer `i` right away (bypassing the outbox).
    pub(crate) fn send_now(&mut self, i: usize, frame: &[u8]) -> Effects {
        let conn = self.conn(i);
        let effects = self.room.receive(conn, frame, self.now_ms);
        check_effects(&effects);
        self.stored.apply(&effects.store);
        self.peers[i].inbox.extend(effects.reply.iter().cloned());
        self.route(i, &effects);
        if let Some(reason) = &effects.close {
            self.peers[i].closed = Some(reason.clone());
            self.disconnect(i);
        }
        effects
    }

    fn route(&mut self, from: usize, effects: &Effects) {
        for (j, peer) in self.peers.iter_mut().enumerate() {
            if j != from && peer.conn.is_some() {
                peer.inbox.extend(effects.broadcast.iter().cloned());
            }
        }
    }

    /// Peer `i` reads the oldest frame the room sent it; its answers go to its outbox.
    pub(crate) fn deliver_one(&mut self, i: usize) -> bool {
        let Some(frame) = self.peers[i].inbox.pop_front() else {
            return false;
        };
        let answers = self.peers[i].client.receive(&frame);
        self.peers[i].outbox.extend(answers);
        true
    }

    /// Moves every queued frame until nothing is in flight.
    pub(crate) fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.peers.len() {
                while self.send_one(i).is_some() {
                    moved = true;
                }
                while self.deliver_one(i) {
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Asserts every connected peer, the room and a room reloaded from storage agree.
    pub(crate) fn assert_converged(&self) -> String {
        let text = room_text(&self.room);
        for (i, peer) in self.peers.iter().enumerate() {
            if peer.conn.is_some() {
                assert_eq!(peer.client.text(), text, "peer {i} diverged from the room");
                assert_eq!(
                    peer.client.state_vector(),
                    room_state_vector(&self.room),
                    "peer {i} state vector"
                );
            }
        }
        let reloaded = self.stored.load(self.limits);
        assert_eq!(
            room_text(&reloaded),
            text,
            "the stored room lost or changed edits"
        );
        assert_same_document(&reloaded, &self.room);
        text
    }
}
