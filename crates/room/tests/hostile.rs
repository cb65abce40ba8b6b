//! Black-box tests of the rules against hostile clients: viewers, awareness ownership and
//! budgets, held updates and a nearly full room.

mod common;

use codebox_room::awareness::{
    MAX_BYTES_PER_CONNECTION, MAX_IDS_PER_CONNECTION, MAX_ROOM_BYTES, MAX_STATE_BYTES, OUTDATED_MS,
};
use codebox_room::close::{INVALID_PAYLOAD, MESSAGE_TOO_BIG, POLICY_VIOLATION};
use codebox_room::storage::Compaction;
use codebox_room::{CloseReason, Effects, Limits, Message, Role, Room, StoreOp, StoredSize};
use common::*;
use yrs::encoding::write::Write;
use yrs::{ReadTxn, StateVector, Transact};

/// A world with an editor (0) who typed and deleted, and a viewer (1), both connected and
/// synced; peer 2 is a second editor, not connected.
fn world_with_a_viewer() -> World {
    let mut world = World::new(immediate(), 3);
    world.peers[1].role = Role::View;
    world.connect(0);
    for (at, chunk) in [(0, "fn main() {\n"), (12, "}\n"), (12, "    let x = 1;\n")] {
        let f = world.peers[0].client.insert(at, chunk);
        world.queue(0, f);
    }
    let f = world.peers[0].client.delete(16, 4);
    world.queue(0, f);
    world.settle();
    world.connect(1);
    world.settle();
    world
}

fn update_payload(frame: &[u8]) -> Vec<u8> {
    match Message::decode(frame).unwrap() {
        Message::Update(u) | Message::SyncStep2(u) => u.to_vec(),
        other => panic!("expected an update, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Viewers

#[test]
fn a_viewer_receives_everything_and_its_handshake_changes_nothing() {
    let mut world = World::new(immediate(), 2);
    world.peers[1].role = Role::View;
    world.connect(0);
    let f = world.peers[0].client.insert(0, "hello world");
    world.queue(0, f);
    let f = world.peers[0].client.delete(0, 6);
    world.queue(0, f);
    world.settle();
    let stored = world.stored.log.len();

    // The viewer's SyncStep2 carries its whole delete set (Yjs always sends it): ignored.
    world.connect(1);
    world.deliver_one(1); // the room's SyncStep1; the answer queues behind the viewer's own
    world.send_one(1); // the viewer's SyncStep1
    let effects = world.send_one(1).unwrap(); // its SyncStep2: nothing the room lacks
    assert_eq!(effects, Effects::default());
    world.settle();
    assert_eq!(world.peers[1].client.text(), "world");

    // It keeps receiving edits, and is never closed.
    let f = world.peers[0].client.insert(5, "!");
    world.queue(0, f);
    world.settle();
    assert_eq!(world.peers[1].client.text(), "world!");
    assert!(world.peers[1].closed.is_none());
    assert_eq!(world.stored.log.len(), stored + 1);
    world.assert_converged();
}

/// Something a viewer does to its own copy, returning the frame it sends.
type Change = fn(&mut Client) -> Vec<u8>;

#[test]
fn a_viewers_change_closes_it_read_only_and_changes_nothing() {
    let changes: [(&str, Change); 4] = [
        ("an insert", |c| c.insert(0, "x")),
        ("a delete", |c| c.delete(0, 2)),
        ("an offline edit in its SyncStep2", |c| {
            let _ = c.insert(3, "offline");
            Message::SyncStep2(&c.full_state()).encode()
        }),
        (
            "a delete of something already deleted plus a new one",
            |c| {
                let _ = c.delete(0, 1);
                Message::SyncStep2(&c.full_state()).encode()
            },
        ),
    ];
    for (what, change) in changes {
        let mut world = world_with_a_viewer();
        let before = world.room.snapshot();
        let frame = change(&mut world.peers[1].client);
        let effects = world.send_now(1, &frame);
        assert_eq!(effects.close, Some(CloseReason::ReadOnly), "{what}");
        let reason = effects.close.as_ref().unwrap();
        assert_eq!(
            (reason.code(), reason.reason().as_str()),
            (POLICY_VIOLATION, "read-only")
        );
        assert!(
            effects.store.is_empty() && effects.broadcast.is_empty(),
            "{what}"
        );
        assert_eq!(
            world.room.snapshot(),
            before,
            "{what}: the document changed"
        );
        world.settle();
        world.assert_converged();
    }
}

#[test]
fn a_viewers_update_that_changes_nothing_is_ignored() {
    let mut world = world_with_a_viewer();
    let viewer = world.conn(1);
    // The stock provider's empty SyncStep2.
    assert_eq!(
        world.room.receive(viewer, &[0, 1, 2, 0, 0], NOW),
        Effects::default()
    );
    // A re-send of content the room has, from the editor's own updates or its whole state.
    let mut replay = Client::new(100);
    replay.receive(&Message::SyncStep2(&world.room.snapshot()).encode());
    let full = Message::SyncStep2(&replay.full_state()).encode();
    assert_eq!(world.room.receive(viewer, &full, NOW), Effects::default());
    let sv = world.peers[0].client.state_vector();
    let since_start = world.peers[0]
        .client
        .doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let as_update = Message::Update(&since_start).encode();
    assert_eq!(
        world.room.receive(viewer, &as_update, NOW),
        Effects::default()
    );
    assert_eq!(room_state_vector(&world.room), sv);
    assert!(world.peers[1].closed.is_none());
}

#[test]
fn a_socket_that_never_joined_is_a_viewer() {
    let mut world = world_with_a_viewer();
    let before = world.room.snapshot();
    let mut stranger = Client::new(300);
    let effects = world.room.receive(77, &stranger.insert(0, "x"), NOW);
    assert_eq!(effects.close, Some(CloseReason::ReadOnly));
    // It may still sync and query awareness.
    let effects = world.room.receive(77, &stranger.sync_step1(), NOW);
    assert_eq!(kinds(&effects.reply), [Kind::SyncStep2]);
    let effects = world
        .room
        .receive(77, &Message::QueryAwareness.encode(), NOW);
    assert_eq!(kinds(&effects.reply), [Kind::Awareness]);
    assert_eq!(world.room.snapshot(), before);

    // An editor that disconnected is forgotten: its id alone grants nothing.
    let editor = world.conn(0);
    world.disconnect(0);
    let effects = world
        .room
        .receive(editor, &world.peers[0].client.insert(0, "x"), NOW);
    assert_eq!(effects.close, Some(CloseReason::ReadOnly));
}

#[test]
fn content_the_room_keeps_pending_does_not_count_as_a_viewers_change() {
    // Bob edits on top of Ada's text, which reached him but not the room: the room keeps his
    // edit pending inside the document and serves it to newcomers, whose SyncStep2 then
    // carries it back.
    let mut room = editors_room(immediate());
    let mut ada = Client::new(100);
    let mut bob = Client::new(101);
    let unsent = ada.insert(0, "ada");
    bob.receive(&unsent);
    let effects = room.receive(2, &bob.insert(3, " and bob"), NOW);
    assert!(effects.close.is_none() && effects.broadcast.is_empty());
    assert!(room_text(&room).is_empty(), "pending, not integrated");

    room.join(20, Role::View);
    let mut viewer = Client::new(200);
    let sync = room.receive(20, &viewer.sync_step1(), NOW);
    viewer.receive(&sync.reply[0]);
    let answer = viewer.receive(&room.join(21, Role::View)[0]);
    assert_eq!(room.receive(20, &answer[0], NOW), Effects::default());

    // Once Ada's text arrives, both integrate; a viewer's re-send is still nothing new.
    room.receive(1, &unsent, NOW);
    assert_eq!(room_text(&room), "ada and bob");
    assert_eq!(room.receive(20, &answer[0], NOW), Effects::default());
}

#[test]
fn an_insertion_the_room_holds_but_has_not_applied_is_a_change() {
    let mut room = editors_room(immediate());
    let mut ada = Client::new(100);
    let _first = ada.insert(0, "a");
    let held = ada.insert(1, "b");
    assert_eq!(room.receive(1, &held, NOW), Effects::default());
    room.join(20, Role::View);
    let effects = room.receive(20, &held, NOW);
    assert_eq!(effects.close, Some(CloseReason::ReadOnly));
}

#[test]
fn roles_survive_hibernation() {
    let mut world = world_with_a_viewer();
    let (editor, viewer) = (world.conn(0), world.conn(1));
    let mut room = world.stored.load(immediate());
    room.rejoin(editor, Role::Edit, vec![]);
    room.rejoin(viewer, Role::View, vec![]);
    let effects = room.receive(viewer, &world.peers[1].client.insert(0, "no"), NOW);
    assert_eq!(effects.close, Some(CloseReason::ReadOnly));
    let effects = room.receive(editor, &world.peers[0].client.insert(0, "yes"), NOW);
    assert_eq!(kinds(&effects.broadcast), [Kind::Update]);
}

#[test]
fn a_viewers_presence_is_stamped_read_only_and_an_editors_is_relayed_as_sent() {
    let mut world = world_with_a_viewer();
    let viewer = world.conn(1);
    let sent = r#"{"user":{"name":"vic","color":"teal"},"role":"edit","cursor":null}"#;
    let stamped = r#"{"role":"view","user":{"name":"vic","color":"teal"},"cursor":null}"#;
    let effects = world.send_now(1, &world.peers[1].client.awareness_frame(1, Some(sent)));
    assert!(effects.close.is_none(), "{:?}", effects.close);
    let relayed = [entry(101, 1, Some(stamped))];
    assert_eq!(decode_awareness(&effects.broadcast[0]), relayed);
    assert_eq!(decode_awareness(&effects.reply[0]), relayed);
    assert_eq!(world.room.presence_of(viewer), relayed);
    let greeting = world.room.join(50, Role::Edit);
    assert_eq!(decode_awareness(&greeting[1]), relayed);

    // An editor's state travels byte for byte, odd spacing and a claimed role included.
    let odd = "{ \"role\" : \"view\",\n \"n\":1.50 }";
    let effects = world.send_now(0, &world.peers[0].client.awareness_frame(1, Some(odd)));
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 1, Some(odd))]
    );

    // A viewer's stock client echoes everyone's states back; an editor's that is not an
    // object is dropped like any echo, and the viewer is not closed for it.
    let effects = world.send_now(0, &world.peers[0].client.awareness_frame(2, Some("7")));
    assert!(effects.close.is_none());
    let echo = awareness_frame(&[entry(100, 2, Some("7"))]);
    assert_eq!(world.send_now(1, &echo), Effects::default());

    // A viewer's own state must be an object.
    for not_object in ["[1]", "\"hi\"", "3"] {
        let mut world = world_with_a_viewer();
        let effects = world.send_now(1, &awareness_frame(&[entry(101, 1, Some(not_object))]));
        assert_eq!(
            effects.close.as_ref().map(CloseReason::code),
            Some(INVALID_PAYLOAD),
            "{not_object}"
        );
        assert!(effects.broadcast.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Awareness ownership

/// A room where socket 1 (the victim) owns client 100 with a live state, and socket 2 is an
/// attacker; both editors.
fn victim_room() -> Room {
    let mut room = editors_room(immediate());
    let effects = room.receive(1, &awareness_frame(&[entry(100, 5, Some(VICTIM))]), NOW);
    assert!(effects.close.is_none());
    room
}

const VICTIM: &str = r#"{"user":{"name":"victim"}}"#;

fn live_states(room: &mut Room) -> Vec<codebox_room::AwarenessEntry> {
    let greeting = room.join(90, Role::View);
    greeting
        .get(1)
        .map(|f| decode_awareness(f))
        .unwrap_or_default()
}

#[test]
fn another_connection_cannot_take_over_a_live_id_even_at_the_last_clocks() {
    let mut room = victim_room();
    let near_max = awareness_frame(&[entry(100, 0xFFFF_FFFE, Some(r#"{"user":"mallory"}"#))]);
    assert_eq!(room.receive(2, &near_max, NOW), Effects::default());
    let removal = awareness_frame(&[entry(100, 0xFFFF_FFFF, None)]);
    let effects = room.receive(2, &removal, NOW);
    assert_eq!(
        effects.close.as_ref().map(CloseReason::code),
        Some(INVALID_PAYLOAD)
    );
    assert!(effects.broadcast.is_empty());
    room.disconnect(2);
    for (clock, state) in [(6, Some("{}")), (6, None), (1000, None), (5, None)] {
        let frame = awareness_frame(&[entry(100, clock, state)]);
        assert_eq!(
            room.receive(3, &frame, NOW),
            Effects::default(),
            "{clock} {state:?}"
        );
    }
    assert_eq!(live_states(&mut room), [entry(100, 5, Some(VICTIM))]);
    assert!(room.presence_of(3).is_empty());

    // The victim carries on, and its close still announces it gone.
    let effects = room.receive(1, &awareness_frame(&[entry(100, 6, Some(VICTIM))]), NOW);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 6, Some(VICTIM))]
    );
    let effects = room.disconnect(1);
    assert_eq!(
        decode_awareness(&effects.broadcast[0]),
        [entry(100, 7, None)]
    );
}

#[test]
fn a_presence_at_the_last_clock_is_announced_gone_at_it_and_its_echo_closes_nobody() {
    let mut room = victim_room();
    let last = awareness_frame(&[entry(300, 0xFFFF_FFFE, Some("{}"))]);
    assert!(room.receive(2, &last, NOW).close.is_none());
    let effects = room.disconnect(2);
    let removal = decode_awareness(&effects.broadcast[0]);
    assert_eq!(removal, [entry(300, 0xFFFF_FFFE, None)], "never wraps");
    // A stock client applies it and sends it back as it is.
    assert_eq!(
        room.receive(3, &awareness_frame(&removal), NOW),
        Effects::default()
    );
}

#[test]
fn a_reconnected_client_takes_its_id_back_once_the_old_socket_goes_quiet_or_closes() {
    let mut world = World::new(immediate(), 2);
    world.connect(0);
    world.connect(1);
    let f = world.peers[0].client.announce(1, Some(r#"{"v":1}"#));
    world.queue(0, f);
    world.settle();
    let old = world.conn(0);

    // Peer 0 reconnects on a new socket while the old one is half-open (the room has not seen
    // it close): its state there is dropped without a close, so it does not loop.
    world.peers[0].conn = None;
    world.connect(0);
    world.now_ms += 15_000;
    let f = world.peers[0].client.announce(2, Some(r#"{"v":2}"#));
    let effects = world.send_now(0, &f);
    assert_eq!(effects, Effects::default());
    world.settle();
    assert_eq!(world.peers[1].client.awareness[&100].0, 1);

    // Thirty seconds after the old socket's last renewal, the new socket takes it over.
    world.now_ms += OUTDATED_MS - 15_000;
    let f = world.peers[0].client.announce(3, Some(r#"{"v":3}"#));
    let effects = world.send_now(0, &f);
    assert_eq!(kinds(&effects.broadcast), [Kind::Awareness]);
    world.settle();
    assert_eq!(
        world.peers[1].client.awareness[&100],
        (3, Some(r#"{"v":3}"#.into()))
    );
    // The old socket's close removes nothing now.
    assert_eq!(world.room.disconnect(old), Effects::default());
    world.settle();
    assert_eq!(world.peers[1].client.present(), [100]);
}

#[test]
fn presence_over_a_budget_closes_its_sender_and_is_never_relayed() {
    let big = |n: usize| format!("\"{}\"", "x".repeat(n - 2));
    // One state too large: 1009.
    let mut room = victim_room();
    let effects = room.receive(
        2,
        &awareness_frame(&[entry(200, 1, Some(&big(MAX_STATE_BYTES + 1)))]),
        NOW,
    );
    assert_eq!(
        effects.close.as_ref().map(CloseReason::code),
        Some(MESSAGE_TOO_BIG)
    );
    assert!(effects.broadcast.is_empty() && effects.reply.is_empty());

    // Too many ids, or too many bytes, for one connection: 1008, and nothing applied.
    let too_many: Vec<_> = (0..=MAX_IDS_PER_CONNECTION as u64)
        .map(|c| entry(200 + c, 1, Some("{}")))
        .collect();
    let per_conn = MAX_BYTES_PER_CONNECTION / MAX_STATE_BYTES;
    let too_big: Vec<_> = (0..=per_conn as u64)
        .map(|c| entry(300 + c, 1, Some(&big(MAX_STATE_BYTES))))
        .collect();
    for (what, entries) in [("ids", too_many), ("bytes", too_big)] {
        let mut room = victim_room();
        let effects = room.receive(2, &awareness_frame(&entries), NOW);
        assert_eq!(
            effects.close.as_ref().map(CloseReason::code),
            Some(POLICY_VIOLATION),
            "{what}"
        );
        assert!(
            effects.broadcast.is_empty() && effects.reply.is_empty(),
            "{what}"
        );
        assert!(room.presence_of(2).is_empty(), "{what}");
        assert_eq!(live_states(&mut room).len(), 1, "{what}");
    }

    // The whole room's live states: 1008 for whoever would pass the budget.
    let mut room = editors_room(immediate());
    let conns = (MAX_ROOM_BYTES / MAX_BYTES_PER_CONNECTION) as u64;
    for conn in 0..conns {
        room.join(100 + conn, Role::Edit);
        let entries: Vec<_> = (0..per_conn as u64)
            .map(|i| entry(1000 + conn * 10 + i, 1, Some(&big(MAX_STATE_BYTES))))
            .collect();
        let effects = room.receive(100 + conn, &awareness_frame(&entries), NOW);
        assert!(effects.close.is_none(), "conn {conn}");
    }
    let effects = room.receive(1, &awareness_frame(&[entry(7, 1, Some("{}"))]), NOW);
    let reason = effects.close.expect("closed");
    assert_eq!(reason.code(), POLICY_VIOLATION);
    assert!(reason.reason().contains("presence is full"), "{reason}");
    assert!(effects.broadcast.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Held updates

#[test]
fn held_updates_go_with_their_socket() {
    let mut world = World::new(immediate(), 2);
    world.connect(0);
    world.connect(1);
    world.settle();
    let first = world.peers[0].client.insert(0, "a");
    let held = world.peers[0].client.insert(1, "b");
    assert_eq!(world.send_now(0, &held), Effects::default());
    world.disconnect(0);
    // The gap fills from elsewhere (peer 1 got it from peer 0 directly); the held update
    // left with its socket.
    world.peers[1].client.receive(&first);
    let effects = world.send_now(1, &first);
    assert_eq!(kinds(&effects.broadcast), [Kind::Update]);
    assert_eq!(room_text(&world.room), "a");
    // Its author's SyncStep2 on reconnecting brings the rest.
    world.connect(0);
    world.settle();
    assert_eq!(world.assert_converged(), "ab");
}

// ---------------------------------------------------------------------------------------------
// A nearly full room

#[test]
fn a_nearly_full_room_refuses_growth_without_rewriting_its_snapshot() {
    const LIMIT: usize = 48 * 1024;
    let no_compaction = Compaction {
        max_log_entries: usize::MAX,
        min_log_bytes: usize::MAX,
        snapshot_bytes_per_entry: usize::MAX,
    };
    for compaction in [no_compaction, Compaction::default()] {
        let limits = Limits {
            max_document_bytes: LIMIT,
            compaction,
            ..immediate()
        };
        let mut world = World::new(limits, 3);
        for i in 0..3 {
            world.connect(i);
        }
        world.settle();
        let (mut accepted, mut refused) = (0, 0);
        for n in 0..3000u32 {
            let i = (n % 2) as usize;
            if world.peers[i].conn.is_none() {
                // Refused before: reconnect; the handshake re-sends what the room lacks.
                world.connect(i);
                world.settle();
                if world.peers[i].conn.is_none() {
                    continue;
                }
            }
            let client = &mut world.peers[i].client;
            let len = client.len();
            let frame = if n % 7 == 6 && len > 4 {
                client.delete((n * 31) % (len - 2), 2)
            } else {
                client.insert((n * 13) % (len + 1), "abcdefghijklmnop")
            };
            let before = world.room.stored_size();
            let effects = world.send_now(i, &frame);
            if effects
                .store
                .iter()
                .any(|op| matches!(op, StoreOp::Compact(_)))
            {
                // Exactly what the policy asks for after logging this one update.
                let delta = update_payload(&effects.broadcast[0]).len();
                let logged = StoredSize {
                    log_entries: before.log_entries + 1,
                    log_bytes: before.log_bytes + delta,
                    ..before
                };
                assert!(
                    logged.should_compact(&limits.compaction),
                    "a Compact the policy did not ask for, at update {n}"
                );
            }
            match effects.close {
                Some(reason) => {
                    assert_eq!(reason.code(), MESSAGE_TOO_BIG);
                    assert!(reason.reason().contains("room is full"), "{reason}");
                    assert!(effects.store.is_empty() && effects.broadcast.is_empty());
                    refused += 1;
                }
                None => accepted += 1,
            }
            let size = world.room.snapshot().len();
            assert!(size <= LIMIT, "{size} bytes, over the limit, at update {n}");
            world.settle();
        }
        assert!(refused > 0, "never full");
        assert!(accepted > 1000, "only {accepted} edits accepted");
        assert!(world.room.snapshot().len() > LIMIT * 9 / 10);
        if compaction == no_compaction {
            assert_eq!(world.stored.compactions, 0);
        }
        // Storage replay rebuilds the same room, which refuses the same way.
        let mut reloaded = world.stored.load(limits);
        assert_eq!(reloaded.snapshot(), world.room.snapshot());
        assert_same_document(&reloaded, &world.room);
        reloaded.join(1, Role::Edit);
        let big = Client::new(500).insert(0, &"z".repeat(LIMIT / 8));
        let effects = reloaded.receive(1, &big, NOW);
        assert_eq!(
            effects.close.as_ref().map(CloseReason::code),
            Some(MESSAGE_TOO_BIG)
        );
        assert!(effects.store.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Nesting

/// How deep the walk lets `Any` values and embedded JSON nest (`update_check::MAX_ANY_DEPTH`).
const MAX_DEPTH: usize = 64;

#[test]
fn the_deepest_values_the_walk_lets_through_fit_a_small_stack() {
    // yrs decodes, encodes and drops `Any` values (and the `Any` it parses embedded JSON into)
    // recursively. The deepest the walk lets through must fit a stack half a wasm module's,
    // in a debug build.
    let nested = |depth: usize| {
        let mut any = Vec::new();
        for level in 0..depth {
            if level % 2 == 0 {
                any.extend([117, 1]);
            } else {
                any.extend([118, 1, 1, b'k']);
            }
        }
        any.push(126);
        let mut update = vec![1, 1, 7, 0, 8, 1, 1, b'a', 1];
        update.extend(&any);
        update.push(0);
        Message::Update(&update).encode()
    };
    let embed = |depth: usize| {
        let json = "[{\"k\":".repeat(depth / 2) + "0" + &"}]".repeat(depth / 2);
        let mut update = vec![1, 1, 8, 0, 5, 1, 1, b'a'];
        update.write_string(&json);
        update.push(0);
        Message::Update(&update).encode()
    };
    let frames = [
        nested(MAX_DEPTH),
        embed(MAX_DEPTH),
        nested(MAX_DEPTH + 1),
        embed(MAX_DEPTH + 2),
    ];
    let outcome = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let mut room = editors_room(immediate());
            let closes: Vec<_> = frames
                .iter()
                .map(|frame| room.receive(1, frame, NOW).close)
                .collect();
            let snapshot = room.snapshot();
            let mut copy = editors_room(immediate());
            let reloaded = copy.receive(2, &Message::SyncStep2(&snapshot).encode(), NOW);
            drop((room, copy));
            (closes, reloaded.close, snapshot.len())
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    let (closes, reloaded, snapshot) = outcome;
    assert_eq!(closes[..2], [None, None]);
    for close in &closes[2..] {
        assert!(
            matches!(close, Some(CloseReason::InvalidUpdate(_))),
            "{close:?}"
        );
    }
    assert_eq!(
        reloaded, None,
        "the snapshot holding both passes the walk too"
    );
    assert!(snapshot > 2 * MAX_DEPTH);
}
