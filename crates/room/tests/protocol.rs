//! Black-box tests of `codebox-room` through its public API, with real yrs clients.

mod common;

use codebox_room::awareness::{RENEWAL_WINDOW_MS, RESTORED_CLOCK_MARGIN};
use codebox_room::close::{INVALID_PAYLOAD, MESSAGE_TOO_BIG, UNSUPPORTED_DATA};
use codebox_room::storage::Compaction;
use codebox_room::{
    awareness, AwarenessEntry, CloseReason, Effects, Limits, LoadError, Message, Role, Room,
    StoreOp,
};
use common::*;
use yrs::updates::decoder::Decode;
use yrs::{StateVector, Text, WriteTxn};

fn sv_of(frame: &[u8]) -> StateVector {
    match Message::decode(frame).unwrap() {
        Message::SyncStep1(sv) => StateVector::decode_v1(sv).unwrap(),
        other => panic!("expected SyncStep1, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Greeting and sync

#[test]
fn greeting_is_sync_step1_plus_awareness_only_when_someone_is_present() {
    let mut room = editors_room(immediate());
    let greeting = room.join(201, Role::View);
    assert_eq!(
        kinds(&greeting),
        [Kind::SyncStep1],
        "empty room: no awareness frame"
    );
    assert_eq!(sv_of(&greeting[0]), StateVector::default());

    let mut ada = Client::new(100);
    room.receive(1, &ada.insert(0, "fn main() {}"), NOW);
    let greeting = room.join(202, Role::View);
    assert_eq!(
        kinds(&greeting),
        [Kind::SyncStep1],
        "content alone adds no awareness frame"
    );
    assert_eq!(sv_of(&greeting[0]), ada.state_vector());

    room.receive(
        1,
        &ada.awareness_frame(1, Some(r#"{"user":{"name":"ada"}}"#)),
        NOW,
    );
    let greeting = room.join(203, Role::View);
    assert_eq!(kinds(&greeting), [Kind::SyncStep1, Kind::Awareness]);
    assert_eq!(
        decode_awareness(&greeting[1]),
        [entry(100, 1, Some(r#"{"user":{"name":"ada"}}"#))]
    );

    room.disconnect(1);
    assert_eq!(
        kinds(&room.join(204, Role::View)),
        [Kind::SyncStep1],
        "nobody left: no awareness frame"
    );
}

#[test]
fn sync_step1_is_answered_with_sync_step2_to_the_sender_only() {
    let mut room = editors_room(immediate());
    let mut ada = Client::new(100);
    room.receive(1, &ada.insert(0, "hello"), NOW);
    room.receive(1, &ada.insert(5, " world"), NOW);

    let mut bob = Client::new(101);
    let effects = room.receive(2, &bob.sync_step1(), NOW);
    check_effects(&effects);
    assert_eq!(kinds(&effects.reply), [Kind::SyncStep2]);
    assert!(
        effects.broadcast.is_empty(),
        "a SyncStep2 is never broadcast"
    );
    assert!(effects.store.is_empty());
    assert!(effects.close.is_none());
    assert!(!effects.presence_changed);
    assert!(bob.receive(&effects.reply[0]).is_empty());
    assert_eq!(bob.text(), "hello world");

    // An up-to-date client still gets its (empty) SyncStep2, and nothing else happens.
    let effects = room.receive(2, &bob.sync_step1(), NOW);
    assert_eq!(kinds(&effects.reply), [Kind::SyncStep2]);
    assert!(effects.broadcast.is_empty() && effects.store.is_empty());
}

#[test]
fn the_servers_sync_step1_is_answered_by_a_client_with_its_offline_edits() {
    let mut world = World::new(immediate(), 2);
    // Peer 0 edits while offline, then connects: it answers the greeting's SyncStep1 with a
    // SyncStep2 holding those edits, which the room stores and relays as an Update.
    world.connect(1);
    world.settle();
    let offline = world.peers[0].client.insert(0, "written offline");
    drop(offline);
    world.connect(0);
    world.deliver_one(0); // the greeting's SyncStep1 -> SyncStep2 queued after its SyncStep1
    world.send_one(0); // SyncStep1
    let effects = world.send_one(0).unwrap(); // SyncStep2 with the offline edit
    assert!(matches!(effects.store.as_slice(), [StoreOp::Append(_)]));
    assert_eq!(
        kinds(&effects.broadcast),
        [Kind::Update],
        "relayed as an Update"
    );
    assert!(effects.reply.is_empty());
    world.settle();
    assert_eq!(world.assert_converged(), "written offline");
}

#[test]
fn an_update_is_stored_before_it_is_relayed_and_never_echoed() {
    let mut room = editors_room(immediate());
    let mut ada = Client::new(100);
    let mut bob = Client::new(101);
    let frame = ada.insert(0, "x");
    let effects = room.receive(1, &frame, NOW);
    check_effects(&effects);
    assert!(effects.reply.is_empty(), "no echo");
    assert_eq!(kinds(&effects.broadcast), [Kind::Update]);
    let [StoreOp::Append(stored)] = effects.store.as_slice() else {
        panic!("expected one Append, got {:?}", effects.store)
    };
    assert!(effects.close.is_none());

    // What is stored and what is relayed are the same change.
    let Message::Update(relayed) = Message::decode(&effects.broadcast[0]).unwrap() else {
        unreachable!()
    };
    assert_eq!(relayed, stored.as_slice());
    bob.receive(&effects.broadcast[0]);
    assert_eq!(bob.text(), "x");
    let mut stored_only = Client::new(102);
    stored_only.receive(&Message::Update(stored).encode());
    assert_eq!(stored_only.text(), "x");
    assert_eq!(room_text(&room), "x");
}

#[test]
fn a_duplicate_update_stores_and_relays_nothing() {
    let mut room = editors_room(immediate());
    let mut ada = Client::new(100);
    let frame = ada.insert(0, "once");
    assert!(!room.receive(1, &frame, NOW).broadcast.is_empty());
    assert_eq!(
        room.receive(1, &frame, NOW),
        Effects::default(),
        "same socket again"
    );
    assert_eq!(
        room.receive(2, &frame, NOW),
        Effects::default(),
        "another socket relaying it"
    );
    // A full-state SyncStep2 of an already-known document is a duplicate too.
    let full = Message::SyncStep2(&ada.full_state()).encode();
    assert_eq!(room.receive(3, &full, NOW), Effects::default());
    assert_eq!(room_text(&room), "once");
    assert_eq!(room.stored_size().log_entries, 1);
}

#[test]
fn an_update_with_missing_dependencies_waits_and_is_relayed_once_complete() {
    let mut room = editors_room(immediate());
    let mut ada = Client::new(100);
    let first = ada.insert(0, "ab");
    let second = ada.insert(2, "cd");
    // The second arrives first (e.g. via a different socket of the same user).
    let effects = room.receive(1, &second, NOW);
    check_effects(&effects);
    assert!(effects.close.is_none());
    let effects = room.receive(1, &first, NOW);
    check_effects(&effects);
    assert_eq!(room_text(&room), "abcd");
    let mut bob = Client::new(101);
    let mut relayed = Client::new(102);
    for f in &effects.broadcast {
        relayed.receive(f);
    }
    assert_eq!(
        relayed.text(),
        "abcd",
        "the relayed change carries the integrated pending part"
    );
    for reply in room.receive(2, &bob.sync_step1(), NOW).reply {
        bob.receive(&reply);
    }
    assert_eq!(bob.text(), "abcd");
}

#[test]
fn edits_sent_on_reconnect_before_the_handshake_wait_for_the_offline_edits() {
    // The stock provider sends each edit as soon as its socket is open, before it answers the
    // room's SyncStep1 with the SyncStep2 holding what it typed while away. Until then those
    // edits skip clocks the room has not seen: the room holds them, then applies them in order.
    let mut world = World::new(immediate(), 2);
    world.connect(0);
    world.connect(1);
    let f = world.peers[0].client.insert(0, "hello");
    world.queue(0, f);
    world.settle();

    world.disconnect(0);
    let _lost = world.peers[0].client.insert(5, " world"); // typed while away
    world.connect(0);
    let f = world.peers[0].client.insert(11, "!"); // typed right after reconnecting
    world.queue(0, f);
    world.send_one(0); // its SyncStep1
    let effects = world.send_one(0).unwrap(); // the "!" that skips " world"
    assert_eq!(
        effects,
        Effects::default(),
        "held: nothing stored, relayed or closed"
    );
    assert_eq!(room_text(&world.room), "hello");

    world.deliver_one(0); // the room's SyncStep1; the SyncStep2 answer is queued
    let effects = world.send_one(0).unwrap();
    assert!(!effects.store.is_empty());
    assert!(kinds(&effects.broadcast).iter().all(|k| *k == Kind::Update));
    world.settle();
    assert_eq!(world.assert_converged(), "hello world!");
}

#[test]
fn a_held_update_is_applied_stored_and_relayed_once_its_gap_is_filled() {
    let mut room = editors_room(immediate());
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    let mut bob = Client::new(101);
    let effects = room.receive(1, &ada.insert(0, "hello"), NOW);
    stored.apply(&effects.store);
    for f in &effects.broadcast {
        bob.receive(f);
    }
    let world = ada.insert(5, " world");
    let bang = ada.insert(11, "!");
    let wave = ada.insert(0, "~");
    // Out of order, over two sockets (a reconnecting client): the later ones wait.
    assert_eq!(room.receive(2, &wave, NOW), Effects::default());
    assert_eq!(room.receive(1, &bang, NOW), Effects::default());
    assert_eq!(room_text(&room), "hello");

    let effects = room.receive(2, &world, NOW);
    check_effects(&effects);
    assert!(effects.close.is_none());
    stored.apply(&effects.store);
    assert_eq!(
        effects.store.len(),
        1,
        "the step's three updates are stored as one: {:?}",
        effects.store
    );
    assert_eq!(kinds(&effects.broadcast), [Kind::Update; 3]);
    for f in &effects.broadcast {
        bob.receive(f);
    }
    assert_eq!(room_text(&room), "~hello world!");
    assert_eq!(bob.text(), "~hello world!");
    assert_eq!(room_state_vector(&room), ada.state_vector());
    assert_same_document(&stored.load(immediate()), &room);

    // An update whose gap is never filled changes nothing and closes nobody.
    let mut ghost = Client::new(500);
    let _never_sent = ghost.insert(0, "lost");
    assert_eq!(
        room.receive(3, &ghost.insert(0, "ahead"), NOW),
        Effects::default()
    );
    assert_eq!(room_text(&room), "~hello world!");
    let mut carol = Client::new(102);
    for reply in room.receive(4, &carol.sync_step1(), NOW).reply {
        carol.receive(&reply);
    }
    assert_eq!(
        carol.text(),
        "~hello world!",
        "held updates are not served either"
    );
}

// ---------------------------------------------------------------------------------------------
// Convergence

#[test]
fn three_clients_editing_concurrently_converge_and_a_late_joiner_gets_everything() {
    let mut world = World::new(immediate(), 4);
    for i in 0..3 {
        world.connect(i);
    }
    world.settle();
    // Each peer types (and later deletes) without seeing the others' edits yet.
    for round in 0..10u32 {
        for i in 0..3 {
            let client = &mut world.peers[i].client;
            let len = client.len();
            let frame = if round >= 5 && round % 2 == 1 && len > 2 {
                client.delete((round * 7 + i as u32) % (len - 1), 2)
            } else {
                client.insert(
                    (round * 5 + i as u32 * 3) % (len + 1),
                    &format!("<{i}.{round}>"),
                )
            };
            world.queue(i, frame);
        }
        // Interleave: the room reads some sockets, some peers read some of what was relayed.
        world.send_one((round as usize) % 3);
        world.deliver_one((round as usize + 1) % 3);
        world.send_one((round as usize + 2) % 3);
        world.deliver_one((round as usize) % 3);
        if round == 4 {
            // Before any delete: every insert of every peer made it everywhere.
            world.settle();
            let text = world.assert_converged();
            // Inserts land inside each other's markers, so compare the characters.
            let mut expected: Vec<char> = (0..3)
                .flat_map(|i| {
                    (0..5).flat_map(move |r| format!("<{i}.{r}>").chars().collect::<Vec<_>>())
                })
                .collect();
            let mut got: Vec<char> = text.chars().collect();
            expected.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, expected, "an insert was lost or doubled: {text:?}");
        }
    }
    world.settle();
    let text = world.assert_converged();
    assert!(!text.is_empty());

    // A late joiner's SyncStep1 brings it the whole document.
    world.connect(3);
    world.settle();
    assert_eq!(world.peers[3].client.text(), text);
    world.assert_converged();
}

// ---------------------------------------------------------------------------------------------
// Awareness

#[test]
fn awareness_is_relayed_and_only_the_closed_sockets_ids_are_removed() {
    let mut room = editors_room(immediate());
    let ada = Client::new(100);
    let bob = Client::new(101);

    let effects = room.receive(
        1,
        &ada.awareness_frame(3, Some(r#"{"user":{"name":"ada"}}"#)),
        NOW,
    );
    check_effects(&effects);
    assert!(effects.presence_changed);
    assert!(effects.store.is_empty(), "awareness is never stored");
    assert_eq!(kinds(&effects.broadcast), [Kind::Awareness]);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 3, Some(r#"{"user":{"name":"ada"}}"#))]
    );
    // Echoed to the sender too (y-websocket's server does; it feeds the client's liveness check).
    assert_eq!(effects.reply, effects.broadcast);

    room.receive(
        2,
        &bob.awareness_frame(1, Some(r#"{"user":{"name":"bob"}}"#)),
        NOW,
    );
    // A stale state is dropped: nothing relayed, nothing changed.
    let stale = room.receive(1, &ada.awareness_frame(2, Some(r#"{"old":true}"#)), NOW);
    assert_eq!(stale, Effects::default());

    let effects = room.disconnect(1);
    assert!(effects.store.is_empty() && effects.reply.is_empty());
    assert_eq!(kinds(&effects.broadcast), [Kind::Awareness]);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 4, None)],
        "null state, clock + 1"
    );
    assert_eq!(
        room.disconnect(1),
        Effects::default(),
        "a second close says nothing"
    );

    let greeting = room.join(205, Role::View);
    assert_eq!(
        decode_awareness(&greeting[1]),
        [entry(101, 1, Some(r#"{"user":{"name":"bob"}}"#))]
    );

    // A socket that never announced anything closes silently.
    assert_eq!(room.disconnect(3), Effects::default());
}

#[test]
fn peers_see_each_other_come_and_go() {
    let mut world = World::new(immediate(), 3);
    for i in 0..3 {
        world.connect(i);
        let frame = world.peers[i]
            .client
            .announce(1, Some(&format!(r#"{{"user":{{"id":{i}}}}}"#)));
        world.queue(i, frame);
        world.settle();
    }
    for i in 0..3 {
        assert_eq!(world.peers[i].client.present(), [100, 101, 102], "peer {i}");
    }
    world.disconnect(1);
    world.settle();
    assert_eq!(world.peers[0].client.present(), [100, 102]);
    assert_eq!(world.peers[2].client.present(), [100, 102]);
    assert_eq!(world.peers[0].client.awareness[&101], (2, None));
}

#[test]
fn a_client_that_leaves_explicitly_is_not_removed_twice() {
    let mut room = editors_room(immediate());
    let ada = Client::new(100);
    room.receive(1, &ada.awareness_frame(1, Some("{}")), NOW);
    let effects = room.receive(1, &ada.awareness_frame(2, None), NOW);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 2, None)]
    );
    assert_eq!(room.disconnect(1), Effects::default());
}

#[test]
fn query_awareness_returns_the_live_states_to_the_asker_only() {
    let mut room = editors_room(immediate());
    let query = Message::QueryAwareness.encode();
    let effects = room.receive(9, &query, NOW);
    assert_eq!(kinds(&effects.reply), [Kind::Awareness]);
    assert!(decode_awareness(&effects.reply[0]).is_empty());

    room.receive(
        1,
        &Client::new(100).awareness_frame(1, Some(r#"{"a":1}"#)),
        NOW,
    );
    room.receive(
        2,
        &Client::new(101).awareness_frame(5, Some(r#"{"b":2}"#)),
        NOW,
    );
    room.receive(3, &Client::new(102).awareness_frame(1, Some("{}")), NOW);
    room.disconnect(3);
    let effects = room.receive(9, &query, NOW);
    check_effects(&effects);
    assert!(effects.broadcast.is_empty() && effects.store.is_empty() && effects.close.is_none());
    assert_eq!(
        decode_awareness(&effects.reply[0]),
        [
            entry(100, 1, Some(r#"{"a":1}"#)),
            entry(101, 5, Some(r#"{"b":2}"#))
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed frames and limits

/// A world with content and two healthy peers (0, 1) plus a peer (2) that misbehaves.
fn world_with_a_bad_peer(limits: Limits) -> World {
    let mut world = World::new(limits, 4);
    for i in 0..3 {
        world.connect(i);
    }
    let f = world.peers[0].client.insert(0, "shared text");
    world.queue(0, f);
    let f = world.peers[1]
        .client
        .awareness_frame(1, Some(r#"{"user":"bob"}"#));
    world.queue(1, f);
    world.settle();
    world
}

/// The bad peer was closed with `code`; the room and the other peers carry on.
fn assert_only_the_sender_is_closed(world: &mut World, effects: &Effects, code: u16, what: &str) {
    let reason = effects
        .close
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: not closed"));
    assert_eq!(reason.code(), code, "{what}: {reason}");
    assert!(!reason.reason().is_empty() && reason.reason().len() <= 123);
    assert!(effects.reply.is_empty(), "{what}");
    assert!(
        kinds(&effects.broadcast)
            .iter()
            .all(|k| *k == Kind::Awareness),
        "{what}: nothing of the bad frame is relayed"
    );
    assert!(
        world.peers[2].conn.is_none(),
        "{what}: the world closed the socket"
    );
    assert_eq!(
        room_text(&world.room),
        "shared text",
        "{what}: the document is unchanged"
    );

    // The others carry on: edit, relay, and a newcomer syncs everything.
    let f = world.peers[1].client.insert(0, ">");
    world.queue(1, f);
    world.settle();
    assert_eq!(world.peers[0].client.text(), ">shared text", "{what}");
    world.connect(3);
    world.settle();
    assert_eq!(world.peers[3].client.text(), ">shared text", "{what}");
    assert_eq!(world.peers[3].client.present(), [101], "{what}");
    world.assert_converged();
}

#[test]
fn malformed_frames_close_only_their_socket_with_the_right_code() {
    let mut garbage_update = vec![0u8, 2];
    let bad_update: &[u8] = &[3, 1, 2, 3, 4, 5, 6, 7];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty frame", vec![], INVALID_PAYLOAD),
        ("truncated varint", vec![0x80], INVALID_PAYLOAD),
        ("unknown message type", vec![9], UNSUPPORTED_DATA),
        (
            "unknown message type, multi-byte",
            vec![0xc8, 0x01],
            UNSUPPORTED_DATA,
        ),
        ("unknown sync type", vec![0, 7, 0], UNSUPPORTED_DATA),
        ("sync without payload", vec![0, 2], INVALID_PAYLOAD),
        (
            "length prefix past the end",
            vec![0, 2, 5, 1],
            INVALID_PAYLOAD,
        ),
        ("trailing bytes", vec![3, 0], INVALID_PAYLOAD),
        (
            "garbage Yjs update",
            Message::Update(bad_update).encode(),
            INVALID_PAYLOAD,
        ),
        (
            "garbage SyncStep2",
            Message::SyncStep2(&[0xff, 0x7f]).encode(),
            INVALID_PAYLOAD,
        ),
        (
            "garbage state vector",
            Message::SyncStep1(&[5, 1]).encode(),
            INVALID_PAYLOAD,
        ),
        (
            "awareness with invalid JSON",
            awareness_frame(&[entry(7, 1, Some("{not json"))]),
            INVALID_PAYLOAD,
        ),
        (
            "awareness, broken layout",
            Message::Awareness(&[2, 7]).encode(),
            INVALID_PAYLOAD,
        ),
        (
            "auth from a client",
            Message::PermissionDenied("let me in").encode(),
            UNSUPPORTED_DATA,
        ),
        ("auth from a client, raw", vec![2, 0, 0], UNSUPPORTED_DATA),
    ];
    garbage_update.extend([0x03, 0xde, 0xad, 0x00]);
    let mut cases = cases;
    cases.push(("update that is not Yjs v1", garbage_update, INVALID_PAYLOAD));

    for (what, frame, code) in cases {
        let mut world = world_with_a_bad_peer(immediate());
        let effects = world.send_now(2, &frame);
        assert_only_the_sender_is_closed(&mut world, &effects, code, what);
    }

    let mut world = world_with_a_bad_peer(immediate());
    let conn = world.conn(2);
    let effects = world.room.receive_text(conn);
    assert_eq!(effects.close, Some(CloseReason::TextFrame));
    assert_eq!(effects.close.as_ref().unwrap().code(), UNSUPPORTED_DATA);
    world.disconnect(2);
    world.peers[2].closed = effects.close.clone();
    assert_only_the_sender_is_closed(&mut world, &effects, UNSUPPORTED_DATA, "text frame");
}

#[test]
fn random_bytes_close_the_sender_with_1003_or_1007() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..64 {
        let len = (next() % 40) as usize;
        let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Skip the (rare) frames that happen to be valid and harmless.
        if let Ok(Message::QueryAwareness | Message::SyncStep1(_)) = Message::decode(&frame) {
            frame.push(0xff);
        }
        let mut world = world_with_a_bad_peer(immediate());
        let effects = world.send_now(2, &frame);
        let code = effects.close.as_ref().map(CloseReason::code);
        assert!(
            matches!(code, Some(1003 | 1007)),
            "round {round}: {frame:?} -> {:?}",
            effects.close
        );
        assert_only_the_sender_is_closed(&mut world, &effects, code.unwrap(), "random bytes");
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_with_1009() {
    let limits = Limits {
        max_frame_bytes: 1024,
        ..immediate()
    };
    let mut world = world_with_a_bad_peer(limits);
    let big = world.peers[2].client.insert(0, &"x".repeat(2000));
    let effects = world.send_now(2, &big);
    assert!(
        matches!(effects.close, Some(CloseReason::FrameTooLarge { size, limit: 1024 }) if size == big.len()),
        "{:?}",
        effects.close
    );
    assert!(effects.store.is_empty());
    assert_only_the_sender_is_closed(
        &mut world,
        &effects,
        MESSAGE_TOO_BIG,
        "frame over the limit",
    );

    // A frame of exactly the limit is accepted: find an insert whose frame is 1024 bytes.
    let mut room = editors_room(limits);
    let exact = (900..1100)
        .map(|n| Client::new(7).insert(0, &"y".repeat(n)))
        .find(|f| f.len() == 1024)
        .expect("some insert encodes to exactly 1024 bytes");
    let effects = room.receive(1, &exact, NOW);
    assert!(effects.close.is_none(), "{:?}", effects.close);
    assert_eq!(kinds(&effects.broadcast), [Kind::Update]);
}

#[test]
fn an_update_that_would_pass_the_document_limit_is_refused_and_changes_nothing() {
    const LIMIT: usize = 64 * 1024;
    let limits = Limits {
        max_document_bytes: LIMIT,
        ..immediate()
    };
    let mut world = world_with_a_bad_peer(limits);
    let chunk = "0123456789abcdef".repeat(512); // 8 KiB
    let mut accepted = 0;
    let refused = loop {
        let frame = world.peers[2].client.insert(0, &chunk);
        let before = world.room.snapshot();
        let effects = world.send_now(2, &frame);
        if let Some(reason) = &effects.close {
            assert_eq!(
                world.room.snapshot(),
                before,
                "a refused update leaves the document unchanged"
            );
            break reason.clone();
        }
        accepted += 1;
        assert!(accepted < 100, "never refused");
        world.settle();
    };
    assert_eq!(refused.code(), MESSAGE_TOO_BIG);
    assert!(
        refused.reason().contains("room is full"),
        "{}",
        refused.reason()
    );
    assert!(
        accepted >= 6,
        "only {accepted} chunks accepted before the 64 KiB limit"
    );
    let size = world.room.snapshot().len();
    assert!(size <= LIMIT, "the document passed its limit: {size}");

    // The room carries on: a small edit that fits is still accepted and relayed.
    let content = room_text(&world.room);
    let f = world.peers[1].client.insert(0, ">");
    world.queue(1, f);
    world.settle();
    assert_eq!(world.peers[0].client.text(), format!(">{content}"));
    world.connect(3);
    world.settle();
    world.assert_converged();
}

// ---------------------------------------------------------------------------------------------
// Persistence

#[test]
fn replaying_the_store_ops_rebuilds_a_byte_identical_room() {
    let mut world = World::new(immediate(), 3);
    for i in 0..3 {
        world.connect(i);
    }
    world.settle();
    for step in 0..60u32 {
        let i = (step % 3) as usize;
        let client = &mut world.peers[i].client;
        let len = client.len();
        let frame = if step % 4 == 3 && len > 3 {
            client.delete(step % (len - 2), 3)
        } else {
            client.insert((step * 13) % (len + 1), &format!("line {step}\n"))
        };
        world.queue(i, frame);
        if step % 5 == 0 {
            world.settle();
        }
    }
    world.settle();
    let text = world.assert_converged();
    assert!(!world.stored.log.is_empty());

    let mut reloaded = world.stored.load(immediate());
    assert_eq!(
        reloaded.snapshot(),
        world.room.snapshot(),
        "byte-identical snapshot"
    );
    assert_eq!(room_text(&reloaded), text);
    assert_eq!(reloaded.stored_size().log_entries, world.stored.log.len());
    assert_eq!(
        reloaded.join(206, Role::View)[0],
        world.room.join(207, Role::View)[0],
        "same state vector"
    );

    // The reloaded room carries on where the old one stopped.
    let mut room = reloaded;
    let mut late = Client::new(200);
    room.join(9, Role::Edit);
    for reply in room.receive(9, &late.sync_step1(), NOW).reply {
        late.receive(&reply);
    }
    assert_eq!(late.text(), text);
    let effects = room.receive(9, &late.insert(0, "!"), NOW);
    assert_eq!(kinds(&effects.broadcast), [Kind::Update]);
}

#[test]
fn compaction_keeps_the_log_bounded_over_many_small_updates() {
    let limits = immediate();
    let mut room = editors_room(limits);
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    for n in 0..10_000u32 {
        let len = ada.len();
        let frame = if n % 10 == 9 {
            ada.delete(len / 2, 1)
        } else {
            ada.insert(len / 2, "k")
        };
        let effects = room.receive(1, &frame, NOW);
        check_effects(&effects);
        assert!(effects.close.is_none());
        assert!(!effects.store.is_empty(), "update {n} was not stored");
        stored.apply(&effects.store);
        assert!(
            stored.log.len() <= limits.compaction.max_log_entries,
            "log grew to {} entries",
            stored.log.len()
        );
    }
    assert!(stored.max_log_len <= limits.compaction.max_log_entries);
    assert!(stored.compactions >= 10_000 / limits.compaction.max_log_entries);
    let reloaded = stored.load(limits);
    assert_eq!(room_text(&reloaded), ada.text());
    assert_eq!(reloaded.snapshot(), room.snapshot());
    assert_eq!(reloaded.stored_size(), room.stored_size());
}

#[test]
fn compaction_by_bytes_folds_a_log_as_big_as_the_snapshot() {
    let limits = Limits {
        compaction: Compaction {
            max_log_entries: 1_000_000,
            min_log_bytes: 4096,
            snapshot_bytes_per_entry: usize::MAX,
        },
        ..immediate()
    };
    let mut room = editors_room(limits);
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    for n in 0..400u32 {
        let effects = room.receive(1, &ada.insert(n, "0123456789"), NOW);
        stored.apply(&effects.store);
        let log_bytes: usize = stored.log.iter().map(Vec::len).sum();
        assert!(
            log_bytes < stored.snapshot().len().max(4096),
            "log of {log_bytes} bytes not folded"
        );
    }
    assert!(stored.compactions > 0);
    assert_eq!(room_text(&stored.load(limits)), ada.text());
}

#[test]
fn a_document_of_many_megabytes_survives_store_and_load() {
    let limits = immediate();
    let mut room = editors_room(limits);
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    let mut bob = Client::new(101);
    let mega = |c: char| c.to_string().repeat(1024 * 1024);
    for (n, c) in ['a', 'b', 'c', 'd', 'e', 'f'].into_iter().enumerate() {
        // Alternate authors and positions so the document is more than one block.
        let (me, other) = if n % 2 == 0 {
            (&mut ada, &mut bob)
        } else {
            (&mut bob, &mut ada)
        };
        let at = me.len() / 2;
        let frame = me.insert(at, &mega(c));
        assert!(frame.len() < limits.max_frame_bytes);
        let effects = room.receive(1 + n as u64 % 2, &frame, NOW);
        check_effects(&effects);
        assert!(effects.close.is_none(), "{:?}", effects.close);
        stored.apply(&effects.store);
        for f in &effects.broadcast {
            other.receive(f);
        }
    }
    let snapshot = room.snapshot();
    assert!(
        snapshot.len() > 5 * 1024 * 1024,
        "only {} bytes",
        snapshot.len()
    );
    assert!(stored.snapshot_rows.len() + stored.log.len() > 1);

    let reloaded = stored.load(limits);
    assert_eq!(
        reloaded.snapshot(),
        snapshot,
        "byte-identical after store + load"
    );
    let text = room_text(&reloaded);
    assert_eq!(text.len(), 6 * 1024 * 1024);
    assert_eq!(text, ada.text());
    assert_eq!(text, bob.text());
}

#[test]
fn corrupt_storage_is_reported_not_loaded() {
    let mut ada = Client::new(100);
    let frame = ada.insert(0, "ok");
    let Message::Update(good) = Message::decode(&frame).unwrap() else {
        unreachable!()
    };
    assert!(
        Room::load(immediate(), &[], Vec::<Vec<u8>>::new()).is_ok(),
        "an empty room loads"
    );
    assert!(matches!(
        Room::load(immediate(), &[7, 7, 7], [&good]),
        Err(LoadError::Snapshot(_))
    ));
    let loaded = Room::load(immediate(), good, [&[0u8, 0][..], &[3, 1, 2, 3][..]]);
    assert!(
        matches!(loaded, Err(LoadError::LogEntry { index: 1, .. })),
        "{:?}",
        loaded.err()
    );
}

#[test]
fn presence_saved_across_hibernation_is_still_announced_gone_on_close() {
    let mut world = World::new(immediate(), 2);
    world.connect(0);
    world.connect(1);
    let f = world.peers[0].client.insert(0, "doc");
    world.queue(0, f);
    let f = world.peers[0]
        .client
        .awareness_frame(4, Some(r#"{"cursor":{"anchor":1}}"#));
    world.queue(0, f);
    let f = world.peers[1]
        .client
        .awareness_frame(2, Some(r#"{"cursor":null}"#));
    world.queue(1, f);
    world.settle();
    let (conn0, conn1) = (world.conn(0), world.conn(1));

    // The runtime saves each socket's presence in its attachment (as JSON) ...
    let saved0 = serde_json::to_string(&world.room.presence_of(conn0)).unwrap();
    let saved1 = serde_json::to_string(&world.room.presence_of(conn1)).unwrap();
    assert_eq!(
        world.room.presence_of(conn0),
        [entry(100, 4, Some(r#"{"cursor":{"anchor":1}}"#))]
    );

    // ... hibernates, and wakes with a room rebuilt from storage.
    let mut room = world.stored.load(immediate());
    assert_eq!(room_text(&room), "doc");
    assert_eq!(
        kinds(&room.join(208, Role::View)),
        [Kind::SyncStep1],
        "presence is not stored with the doc"
    );
    let restored0: Vec<AwarenessEntry> = serde_json::from_str(&saved0).unwrap();
    let restored1: Vec<AwarenessEntry> = serde_json::from_str(&saved1).unwrap();
    room.rejoin(conn0, Role::Edit, restored0);
    room.rejoin(conn1, Role::Edit, restored1);
    assert_eq!(room.presence_of(conn0), world.room.presence_of(conn0));
    let greeting = room.join(209, Role::View);
    assert_eq!(decode_awareness(&greeting[1]).len(), 2);

    // Renewals are not saved, so the client's clock may be ahead of the saved one: its
    // removal goes past the margin, where every peer takes it.
    let effects = room.disconnect(conn0);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 4 + RESTORED_CLOCK_MARGIN, None)]
    );
    assert_eq!(
        decode_awareness(&room.join(210, Role::View)[1]),
        [entry(101, 2, Some(r#"{"cursor":null}"#))]
    );

    // A state saved without its JSON (it did not fit the attachment) is still announced gone.
    let mut room = world.stored.load(immediate());
    room.rejoin(conn0, Role::Edit, vec![entry(100, 4, None)]);
    assert_eq!(kinds(&room.join(211, Role::View)), [Kind::SyncStep1]);
    let effects = room.disconnect(conn0);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 4 + RESTORED_CLOCK_MARGIN, None)]
    );
}

#[test]
fn a_client_that_reconnects_after_its_removal_is_told_it_and_comes_back_above_it() {
    let mut room = Room::new(immediate());
    room.join(1, Role::Edit);
    room.join(2, Role::Edit);
    let state = Some(r#"{"user":"ada"}"#);
    let frame =
        |clock| Message::Awareness(&awareness::encode([entry(100, clock, state)].iter())).encode();
    room.receive(1, &frame(4), NOW);
    let gone = room.disconnect(1);
    assert_eq!(decode_awareness(&gone.broadcast[0]), [entry(100, 5, None)]);

    // The same page on a new socket announces itself at its own clock: it loses to the
    // removal, so the room answers with the removal and relays nothing.
    room.join(3, Role::Edit);
    let effects = room.receive(3, &frame(4), NOW);
    assert!(effects.broadcast.is_empty());
    assert_eq!(effects.reply.len(), 1);
    assert_eq!(decode_awareness(&effects.reply[0]), [entry(100, 5, None)]);

    // y-protocols, hearing itself removed while alive, announces itself past the removal.
    let effects = room.receive(3, &frame(6), NOW);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 6, state)]
    );
    assert_eq!(room.presence_of(3), [entry(100, 6, state)]);
}

// ---------------------------------------------------------------------------------------------
// Group commit and coalesced renewals

#[test]
fn updates_are_relayed_at_once_and_written_together_when_the_window_closes() {
    let limits = Limits::default();
    let window = limits.commit.window_ms;
    let mut room = editors_room(limits);
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    let mut bob = Client::new(101);
    // Ten keystrokes a second.
    for n in 0..10u32 {
        let effects = room.receive(1, &ada.insert(n, "x"), NOW + 100 * u64::from(n));
        assert!(
            effects.store.is_empty(),
            "keystroke {n} waits to be written"
        );
        assert_eq!(
            kinds(&effects.broadcast),
            [Kind::Update],
            "but is relayed at once"
        );
        assert_eq!(effects.wake_at, Some(NOW + window));
        bob.receive(&effects.broadcast[0]);
    }
    assert!(room.has_pending_writes());
    assert_eq!(
        room.tick(NOW + window - 1),
        Effects {
            wake_at: Some(NOW + window),
            ..Effects::default()
        }
    );
    let effects = room.tick(NOW + window);
    assert!(
        matches!(effects.store.as_slice(), [StoreOp::Append(_)]),
        "{:?}",
        effects.store
    );
    assert!(effects.broadcast.is_empty() && effects.wake_at.is_none());
    assert!(!room.has_pending_writes());
    stored.apply(&effects.store);
    assert_eq!(stored.log.len(), 1, "ten keystrokes, one log entry");
    assert_same_document(&stored.load(limits), &room);
    assert_eq!(bob.text(), "xxxxxxxxxx");

    // A frame that finds the window elapsed writes without waiting for the timer.
    let later = NOW + 10 * window;
    room.receive(1, &ada.insert(0, "a"), later);
    let effects = room.receive(1, &ada.insert(0, "b"), later + window);
    stored.apply(&effects.store);
    assert_eq!(stored.log.len(), 2);
    assert_eq!(effects.wake_at, None);
    assert_same_document(&stored.load(limits), &room);
}

#[test]
fn the_last_socket_to_leave_takes_nothing_unwritten_with_it() {
    let mut room = Room::new(Limits::default());
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    room.join(1, Role::Edit);
    room.join(2, Role::View);
    assert!(room
        .receive(1, &ada.insert(0, "kept"), NOW)
        .store
        .is_empty());
    let effects = room.disconnect(2);
    assert!(
        effects.store.is_empty(),
        "someone who has the update is still here"
    );
    let effects = room.disconnect(1);
    stored.apply(&effects.store);
    assert_eq!(effects.wake_at, None);
    assert_eq!(room_text(&stored.load(Limits::default())), "kept");
}

#[test]
fn pending_bytes_past_the_limit_are_written_at_once() {
    let limits = Limits::default();
    let mut room = editors_room(limits);
    let mut ada = Client::new(100);
    let big = "y".repeat(limits.commit.max_pending_bytes);
    let effects = room.receive(1, &ada.insert(0, &big), NOW);
    assert!(
        !effects.store.is_empty(),
        "written (here, compacted) at once"
    );
    assert_eq!(effects.wake_at, None);
}

#[test]
fn renewals_that_arrive_together_are_relayed_together_and_change_no_saved_state() {
    let mut room = editors_room(Limits::default());
    let clients: Vec<Client> = (0..4).map(|i| Client::new(100 + i)).collect();
    let state = |i: usize| format!(r#"{{"user":{{"name":"p{i}"}}}}"#);
    for (i, client) in clients.iter().enumerate() {
        let effects = room.receive(
            1 + i as u64,
            &client.awareness_frame(1, Some(&state(i))),
            NOW,
        );
        assert!(effects.presence_changed);
    }
    // Fifteen seconds later every provider renews, within a few milliseconds of the others.
    let at = NOW + 15_000;
    let first = room.receive(1, &clients[0].awareness_frame(2, Some(&state(0))), at);
    assert!(
        !first.presence_changed,
        "a renewal is not saved with the socket"
    );
    assert_eq!(
        decode_awareness(&first.broadcast[0]),
        [entry(100, 2, Some(&state(0)))]
    );
    assert_eq!(
        first.reply, first.broadcast,
        "relayed at once after a quiet window, echo included"
    );
    for (i, client) in clients.iter().enumerate().skip(1) {
        let effects = room.receive(
            1 + i as u64,
            &client.awareness_frame(2, Some(&state(i))),
            at + i as u64,
        );
        assert!(
            effects.broadcast.is_empty() && effects.reply.is_empty() && !effects.presence_changed
        );
        assert_eq!(effects.wake_at, Some(at + RENEWAL_WINDOW_MS));
    }
    // One changes its state meanwhile: that goes out at once, and its renewal is dropped.
    let moved = room.receive(
        4,
        &clients[3].awareness_frame(3, Some(r#"{"moved":1}"#)),
        at + 5,
    );
    assert!(moved.presence_changed);
    assert_eq!(
        decode_awareness(&moved.broadcast[0]),
        [entry(103, 3, Some(r#"{"moved":1}"#))]
    );
    let effects = room.tick(at + RENEWAL_WINDOW_MS);
    assert_eq!(effects.broadcast.len(), 1, "one frame, for every socket");
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [
            entry(101, 2, Some(&state(1))),
            entry(102, 2, Some(&state(2)))
        ]
    );
    assert!(effects.store.is_empty() && effects.wake_at.is_none());
}

#[test]
fn presence_is_served_before_the_document_is_loaded() {
    let mut world = World::new(immediate(), 1);
    world.connect(0);
    while world.send_one(0).is_some() {}
    world.send_now(0, &Client::new(100).insert(0, "stored text"));
    let ada = Client::new(100);
    let renewal = ada.awareness_frame(1, Some("{}"));
    assert!(!Message::touches_document(&renewal));
    assert!(!Message::touches_document(
        &Message::QueryAwareness.encode()
    ));
    assert!(Message::touches_document(&ada.sync_step1()));
    assert!(
        Message::touches_document(&[0xff]),
        "what does not decode is not presence"
    );

    // A wake for an awareness frame: presence only, then the document when a frame needs it.
    let mut room = Room::new(immediate());
    room.rejoin(7, Role::Edit, Vec::new());
    let effects = room.receive(7, &renewal, NOW);
    assert_eq!(kinds(&effects.broadcast), [Kind::Awareness]);
    room.load_document(&world.stored.snapshot(), &world.stored.log)
        .expect("stored data loads");
    assert_eq!(room_text(&room), "stored text");
    assert_eq!(room.presence_of(7).len(), 1, "presence survives the load");
}

#[test]
fn many_updates_in_one_window_are_written_as_one_that_loads_whole() {
    let limits = Limits::default();
    let mut room = editors_room(limits);
    let mut stored = Stored::default();
    let mut ada = Client::new(100);
    for n in 0..10_000u32 {
        let letter = char::from(b'a' + (n % 26) as u8).to_string();
        let effects = room.receive(1, &ada.insert(n, &letter), NOW);
        stored.apply(&effects.store);
    }
    stored.apply(&room.commit());
    assert_eq!(room_text(&stored.load(limits)).len(), 10_000);
    assert_same_document(&stored.load(limits), &room);
}

#[test]
fn the_rooms_own_edit_is_relayed_to_everyone_stored_and_merges_with_clients() {
    let mut room = Room::with_writer(immediate(), 0xC0DE);
    room.join(1, Role::Edit);
    let mut ada = Client::new(100);
    let mut stored = Stored::default();
    stored.apply(&room.receive(1, &ada.insert(0, "ab"), NOW).store);
    let (answer, effects) = room
        .edit(NOW, 64, |txn| {
            let text = txn.get_or_insert_text(TEXT);
            text.insert(txn, 1, "-");
            "done"
        })
        .expect("within the size limit");
    assert_eq!(answer, "done");
    check_effects(&effects);
    assert!(effects.reply.is_empty());
    assert_eq!(kinds(&effects.broadcast), [Kind::Update], "to every socket");
    assert!(matches!(effects.store.as_slice(), [StoreOp::Append(_)]));
    stored.apply(&effects.store);
    ada.receive(&effects.broadcast[0]);
    assert_eq!(ada.text(), "a-b");
    assert_eq!(room_text(&room), "a-b");
    // A client's next edit builds on the room's, and the stored log replays it.
    room.receive(1, &ada.insert(3, "c"), NOW);
    assert_eq!(room_text(&room), "a-bc");
    assert_eq!(room_text(&stored.load(immediate())), "a-b");
    // An edit that could pass the size limit is not made.
    let limits = Limits {
        max_document_bytes: 10,
        ..immediate()
    };
    let mut small = Room::with_writer(limits, 0xC0DE);
    assert!(small.edit(NOW, 64, |_| ()).is_none());
}
