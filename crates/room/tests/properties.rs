//! Property tests: convergence under any delivery order, no panic on any input, a viewer never
//! changes the document, and a renewed presence is never taken over.

mod common;

use codebox_room::{CloseReason, Message, Role, Room};
use common::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// (a) Convergence

#[derive(Debug, Clone)]
enum Action {
    /// Peer types `text` at `pos` (modulo its length + 1).
    Insert { peer: usize, pos: u32, text: String },
    /// Peer deletes up to `len` characters at `pos` (modulo its length).
    Delete { peer: usize, pos: u32, len: u32 },
    /// The room reads up to `n` frames from the peer's socket.
    Send { peer: usize, n: usize },
    /// The peer reads up to `n` frames the room sent it.
    Deliver { peer: usize, n: usize },
    /// The peer merges every update it has not sent yet into one frame.
    Batch { peer: usize },
    /// The socket drops (frames in flight are lost); the peer reconnects right away, or
    /// later when `stay_away` (its edits in between travel in the SyncStep2 of the handshake).
    Drop { peer: usize, stay_away: bool },
}

fn action(peers: usize) -> impl Strategy<Value = Action> {
    let peer = 0..peers;
    prop_oneof![
        6 => (peer.clone(), any::<u32>(), "[a-z \\n]{1,6}").prop_map(|(peer, pos, text)| Action::Insert { peer, pos, text }),
        2 => (peer.clone(), any::<u32>(), 1..5u32).prop_map(|(peer, pos, len)| Action::Delete { peer, pos, len }),
        5 => (peer.clone(), 1..4usize).prop_map(|(peer, n)| Action::Send { peer, n }),
        5 => (peer.clone(), 1..6usize).prop_map(|(peer, n)| Action::Deliver { peer, n }),
        1 => peer.clone().prop_map(|peer| Action::Batch { peer }),
        1 => (peer, any::<bool>()).prop_map(|(peer, stay_away)| Action::Drop { peer, stay_away }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Action>)> {
    (3..=4usize).prop_flat_map(|peers| (Just(peers), prop::collection::vec(action(peers), 1..120)))
}

/// Merges the peer's queued Update frames into one (other frames keep their order, first).
fn batch(world: &mut World, i: usize) {
    let outbox = std::mem::take(&mut world.peers[i].outbox);
    let mut updates = Vec::new();
    for frame in outbox {
        match Message::decode(&frame).unwrap() {
            Message::Update(u) => updates.push(u.to_vec()),
            _ => world.peers[i].outbox.push_back(frame),
        }
    }
    if !updates.is_empty() {
        let merged = yrs::merge_updates_v1(&updates).expect("merging valid updates");
        world.peers[i]
            .outbox
            .push_back(Message::Update(&merged).encode());
    }
}

fn run(peers: usize, actions: &[Action]) -> Result<(), TestCaseError> {
    // A small compaction policy so that compaction happens within a short scenario too.
    let mut limits = immediate();
    limits.compaction.max_log_entries = 16;
    let mut world = World::new(limits, peers);
    for i in 0..peers {
        world.connect(i);
    }
    for action in actions {
        match action.clone() {
            Action::Insert { peer, pos, text } => {
                let client = &mut world.peers[peer].client;
                let at = pos % (client.len() + 1);
                let frame = client.insert(at, &text);
                if world.peers[peer].conn.is_some() {
                    world.queue(peer, frame);
                }
            }
            Action::Delete { peer, pos, len } => {
                let client = &mut world.peers[peer].client;
                let total = client.len();
                if total == 0 {
                    continue;
                }
                let at = pos % total;
                let frame = client.delete(at, len.min(total - at));
                if world.peers[peer].conn.is_some() {
                    world.queue(peer, frame);
                }
            }
            Action::Send { peer, n } => {
                for _ in 0..n {
                    if world.peers[peer].conn.is_none() {
                        break;
                    }
                    if let Some(effects) = world.send_one(peer) {
                        prop_assert!(
                            effects.close.is_none(),
                            "a valid peer was closed: {:?}",
                            effects.close
                        );
                    }
                }
            }
            Action::Deliver { peer, n } => {
                for _ in 0..n {
                    world.deliver_one(peer);
                }
            }
            Action::Batch { peer } => batch(&mut world, peer),
            Action::Drop { peer, stay_away } => {
                if world.peers[peer].conn.is_some() {
                    world.disconnect(peer);
                }
                if !stay_away {
                    world.connect(peer);
                }
            }
        }
    }
    for i in 0..peers {
        if world.peers[i].conn.is_none() {
            world.connect(i);
        }
    }
    world.settle();
    for peer in &world.peers {
        prop_assert!(peer.closed.is_none());
    }
    // Every peer, the room and the room reloaded from its stored ops hold the same document.
    let text = world.assert_converged();
    let reloaded = world.stored.load(limits);
    prop_assert_eq!(room_text(&reloaded), text);
    assert_same_document(&reloaded, &world.room);
    prop_assert!(world.stored.max_log_len <= limits.compaction.max_log_entries);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn peers_converge_whatever_the_delivery_order((peers, actions) in scenario()) {
        run(peers, &actions)?;
    }
}

// ---------------------------------------------------------------------------------------------
// (b) No panic on any input

/// A room with some content from two authors, and its stored form.
fn populated() -> (Room, Stored) {
    let mut room = editors_room(immediate());
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    let mut bob = Client::new(101);
    for n in 0..8u32 {
        let (me, other) = if n % 2 == 0 {
            (&mut ada, &mut bob)
        } else {
            (&mut bob, &mut ada)
        };
        let frame = if n == 5 {
            me.delete(1, 3)
        } else {
            me.insert(me.len() / 2, &format!("[{n}]"))
        };
        let effects = room.receive(1 + n as u64 % 2, &frame, NOW);
        stored.apply(&effects.store);
        for f in &effects.broadcast {
            other.receive(f);
        }
    }
    room.receive(1, &ada.announce(1, Some(r#"{"user":"ada"}"#)), NOW);
    (room, stored)
}

/// Valid updates to mutate: one unrelated to the populated room's content (several blocks,
/// a deletion, two new clients), and edits made on top of that content by a synced client.
fn sample_update(which: bool) -> Vec<u8> {
    if which {
        let mut ada = Client::new(300);
        let mut bob = Client::new(301);
        ada.insert(0, "hello");
        bob.receive(&Message::SyncStep2(&ada.full_state()).encode());
        bob.insert(5, " world");
        bob.delete(0, 2);
        bob.full_state()
    } else {
        let (room, _) = populated();
        let mut carol = Client::new(302);
        carol.receive(&Message::SyncStep2(&room.snapshot()).encode());
        let before = carol.state_vector();
        carol.insert(3, "ab");
        carol.delete(1, 4);
        carol.insert(carol.len(), "z");
        use yrs::{ReadTxn, Transact};
        let diff = carol.doc.transact().encode_state_as_update_v1(&before);
        diff
    }
}

/// Cases per property: the default, or `PROPTEST_CASES` to run longer.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Feeds `frame` to a populated room from a stranger's editor socket: it must not panic,
/// storage and memory must agree afterwards, and a normal client must still be able to sync
/// and edit.
fn survives(frame: &[u8]) -> Result<(), TestCaseError> {
    let (mut room, mut stored) = populated();
    room.join(66, Role::Edit);
    let effects = room.receive(66, frame, NOW);
    check_effects(&effects);
    if let Some(reason) = &effects.close {
        prop_assert!(
            matches!(reason.code(), 1003 | 1007 | 1008 | 1009),
            "{reason}"
        );
        room.disconnect(66);
    }
    stored.apply(&effects.store);

    // Storage and memory agree, even if the garbage was (partly) a valid update.
    let reloaded = stored.load(immediate());
    prop_assert_eq!(room_text(&reloaded), room_text(&room));
    assert_same_document(&reloaded, &room);

    // A normal client syncs the whole document and its edits are accepted and relayed.
    let mut carol = Client::new(400);
    let effects = room.receive(7, &carol.sync_step1(), NOW);
    prop_assert!(effects.close.is_none());
    for reply in &effects.reply {
        carol.receive(reply);
    }
    prop_assert_eq!(carol.text(), room_text(&room));
    let effects = room.receive(7, &carol.insert(0, "still here"), NOW);
    prop_assert!(effects.close.is_none(), "{:?}", effects.close);
    prop_assert_eq!(kinds(&effects.broadcast), vec![Kind::Update]);
    prop_assert_eq!(carol.text(), room_text(&room));
    prop_assert!(room_text(&room).starts_with("still here"));
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Envelope {
    Raw,
    SyncStep1,
    SyncStep2,
    Update,
    Awareness,
}

fn wrap(envelope: Envelope, payload: &[u8]) -> Vec<u8> {
    match envelope {
        Envelope::Raw => payload.to_vec(),
        Envelope::SyncStep1 => Message::SyncStep1(payload).encode(),
        Envelope::SyncStep2 => Message::SyncStep2(payload).encode(),
        Envelope::Update => Message::Update(payload).encode(),
        Envelope::Awareness => Message::Awareness(payload).encode(),
    }
}

fn envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        Just(Envelope::Raw),
        Just(Envelope::SyncStep1),
        Just(Envelope::SyncStep2),
        Just(Envelope::Update),
        Just(Envelope::Awareness),
    ]
}

/// Edits to a valid update: flip, overwrite, insert or remove bytes, or cut it short.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Xor(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Set(i, b) if !bytes.is_empty() => bytes[i % len] = b,
            Mutation::Xor(i, b) if !bytes.is_empty() => bytes[i % len] ^= b,
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Remove(i) if !bytes.is_empty() => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(n) => bytes.truncate(n % len),
            _ => {}
        }
    }
    bytes
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Xor(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// An awareness payload that is structurally plausible, with arbitrary ids, clocks and text.
fn awareness_payload() -> impl Strategy<Value = Vec<u8>> {
    let state = prop_oneof![
        Just("null".to_string()),
        Just("{}".to_string()),
        ".{0,12}",
        r#"\{"user":\{"name":"[a-z]{0,5}"\}\}"#,
    ];
    prop::collection::vec((any::<u64>(), any::<u32>(), state), 0..5).prop_map(|entries| {
        use yrs::encoding::write::Write;
        let mut out = Vec::new();
        out.write_var(entries.len() as u64);
        for (client, clock, state) in entries {
            out.write_var(client);
            out.write_var(clock);
            out.write_string(&state);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic(frame in prop::collection::vec(any::<u8>(), 0..64)) {
        survives(&frame)?;
    }

    #[test]
    fn arbitrary_payloads_in_valid_envelopes_never_panic(
        envelope in envelope(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        survives(&wrap(envelope, &payload))?;
    }

    #[test]
    fn mutated_valid_updates_never_panic(
        envelope in prop_oneof![Just(Envelope::Update), Just(Envelope::SyncStep2)],
        which in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        survives(&wrap(envelope, &mutate(sample_update(which), &mutations)))?;
    }

    #[test]
    fn plausible_awareness_never_panics(payload in awareness_payload()) {
        survives(&Message::Awareness(&payload).encode())?;
    }
}

/// A state vector or update naming a client id of 2^53 or more: yrs `debug_assert!`s on it
/// and masks it in release builds (so it would alias another client). The room refuses it
/// before yrs sees it, in every build.
#[test]
fn client_ids_over_53_bits_are_refused_before_yrs_sees_them() {
    let (mut room, _) = populated();
    room.join(66, Role::Edit);
    let mut sv = vec![1];
    sv.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    sv.push(0);
    let effects = room.receive(66, &Message::SyncStep1(&sv).encode(), NOW);
    assert!(matches!(
        effects.close,
        Some(CloseReason::InvalidStateVector(_))
    ));
    let mut update = vec![1, 1];
    update.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    update.extend([0, 0, 1, 0]);
    let effects = room.receive(66, &Message::Update(&update).encode(), NOW);
    assert!(matches!(effects.close, Some(CloseReason::InvalidUpdate(_))));
    survives(&Message::SyncStep1(&sv).encode()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// (c) A viewer changes nothing

/// Feeds `frame` to a populated room from a viewer's socket: the document and what is stored
/// stay exactly as they were; at most the viewer is closed.
fn viewer_changes_nothing(frame: &[u8]) -> Result<(), TestCaseError> {
    let (mut room, _) = populated();
    room.join(66, Role::View);
    let before = room.snapshot();
    let effects = room.receive(66, frame, NOW);
    check_effects(&effects);
    prop_assert!(effects.store.is_empty(), "{:?}", effects.store);
    prop_assert!(!kinds(&effects.broadcast).contains(&Kind::Update));
    prop_assert_eq!(room.snapshot(), before);
    if let Some(reason) = &effects.close {
        prop_assert!(
            matches!(reason.code(), 1003 | 1007 | 1008 | 1009),
            "{reason}"
        );
    }
    Ok(())
}

/// What a viewer synced with the populated room sends after some edits of its own: its last
/// edit, or everything it has as a SyncStep2.
fn viewer_frame(edits: &[(bool, u32, u32)], everything: bool) -> Vec<u8> {
    let (room, _) = populated();
    let mut viewer = Client::new(400);
    viewer.receive(&Message::SyncStep2(&room.snapshot()).encode());
    let mut last = Message::SyncStep2(&[0, 0]).encode();
    for &(insert, at, len) in edits {
        let total = viewer.len();
        last = if insert || total == 0 {
            viewer.insert(at % (total + 1), "v")
        } else {
            let at = at % total;
            viewer.delete(at, len.clamp(1, total - at))
        };
    }
    if everything {
        Message::SyncStep2(&viewer.full_state()).encode()
    } else {
        last
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn a_viewers_edits_never_change_the_document(
        edits in prop::collection::vec((any::<bool>(), any::<u32>(), 1..4u32), 0..6),
        everything in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 0..3),
    ) {
        let frame = viewer_frame(&edits, everything);
        let frame = if mutations.is_empty() {
            frame
        } else {
            let Ok(Message::SyncStep2(payload) | Message::Update(payload)) = Message::decode(&frame) else {
                unreachable!("viewer_frame makes sync frames");
            };
            Message::Update(&mutate(payload.to_vec(), &mutations)).encode()
        };
        viewer_changes_nothing(&frame)?;
    }

    #[test]
    fn a_viewers_arbitrary_frames_never_change_the_document(
        envelope in envelope(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        viewer_changes_nothing(&wrap(envelope, &payload))?;
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Nobody takes over a live presence

/// Awareness entries another connection sends: the victim's id (100), its own ids, or others;
/// any clock (the last ones included); a state or a removal.
fn hostile_entries() -> impl Strategy<Value = Vec<(u64, u32, bool)>> {
    let client = prop_oneof![Just(100u64), 200..206u64, any::<u64>()];
    let clock = prop_oneof![0..8u32, (u32::MAX - 3)..=u32::MAX, any::<u32>()];
    prop::collection::vec((client, clock, any::<bool>()), 1..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    /// A victim renewing its presence at least every 15 seconds keeps it, whatever other
    /// connections (editors and viewers) send; no connection ever owns more than four ids.
    #[test]
    fn a_renewed_presence_is_never_taken_over(
        steps in prop::collection::vec((0..20_000u64, 2..6u64, hostile_entries()), 1..40),
    ) {
        const VICTIM: &str = r#"{"user":{"name":"victim"}}"#;
        let mut room = editors_room(immediate());
        for conn in [4, 5] {
            room.join(conn, Role::View);
        }
        let mut now = NOW;
        let (mut clock, mut renewed) = (5u32, now);
        let effects = room.receive(1, &awareness_frame(&[entry(100, clock, Some(VICTIM))]), now);
        prop_assert!(effects.close.is_none());
        for (wait, conn, entries) in steps {
            now += wait;
            if now - renewed >= 15_000 {
                clock += 1;
                renewed = now;
                let renewal = awareness_frame(&[entry(100, clock, Some(VICTIM))]);
                let effects = room.receive(1, &renewal, now);
                prop_assert!(effects.close.is_none());
            }
            // Renewals wait to be relayed together: the victim's own may go out in any step.
            let own = entry(100, clock, Some(VICTIM));
            let entries: Vec<_> = entries
                .into_iter()
                .map(|(client, clock, live)| entry(client, clock, live.then_some(r#"{"x":1}"#)))
                .collect();
            let effects = room.receive(conn, &awareness_frame(&entries), now);
            for frame in &effects.broadcast {
                prop_assert!(decode_awareness(frame).iter().all(|e| e.client != 100 || *e == own));
            }
            if effects.close.is_some() {
                room.disconnect(conn);
                room.join(conn, if conn >= 4 { Role::View } else { Role::Edit });
            }
            prop_assert_eq!(room.presence_of(1), vec![entry(100, clock, Some(VICTIM))]);
            for conn in 2..6 {
                prop_assert!(room.presence_of(conn).len() <= 4);
            }
        }
    }
}
