//! Peak memory of `Room::receive` on hostile frames, under a counting global allocator: count
//! bombs and deep nesting are refused before yrs allocates anything, and what yrs does decode
//! stays within a fixed multiple of the frame.
//!
//! Run with `-- --nocapture` to see the multiple each shape reaches.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use codebox_room::close::{INVALID_PAYLOAD, MESSAGE_TOO_BIG};
use codebox_room::{awareness, Limits, Message, Role, Room};
use common::*;
use proptest::prelude::*;
use yrs::encoding::write::Write;

/// The most `Room::receive` may hold at once per byte of frame. It guards the room's memory
/// against frames that pass the walk: yrs turns every few bytes of a valid update into a block,
/// a hash-map entry, a state-vector entry, and the room keeps the document, its state vector
/// and the delta it relays. The worst shape below is many clients with one GC run each, sized
/// just past a hash-table growth step; `-- --nocapture` prints what each shape reaches.
const MULTIPLE: usize = 80;
/// What `Room::receive` may hold at once beyond the multiple, whatever the frame.
const CONSTANT: usize = 64 * 1024;
/// What refusing a frame before yrs sees it may cost, however large the frame.
const REFUSAL: usize = 4 * 1024;
/// The largest frame the room accepts.
const MAX_FRAME: usize = 8 * 1024 * 1024;

/// Counts the bytes this thread has allocated and the most it held at once.
struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = CURRENT.try_with(|current| {
        let now = current.get() + delta;
        current.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes straight to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most this thread held at once while `f` ran, above what it held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as usize)
}

/// A room with some text, and socket 66 joined as an editor (the sender of every frame). Its
/// document may grow without limit, so that every valid frame is integrated and measured.
fn room() -> Room {
    let mut room = editors_room(Limits {
        max_document_bytes: usize::MAX / 2,
        ..immediate()
    });
    let mut ada = Client::new(100);
    for n in 0..20u32 {
        room.receive(1, &ada.insert(n, "x"), NOW);
    }
    room.join(66, Role::Edit);
    room
}

/// The room's peak while it handles `frame`, and the close code if it closed the sender.
fn receive(frame: &[u8]) -> (usize, Option<u16>) {
    let mut room = room();
    let (effects, peak) = peak_during(|| room.receive(66, frame, NOW));
    (peak, effects.close.map(|reason| reason.code()))
}

fn var(out: &mut Vec<u8>, value: u64) {
    out.write_var(value);
}

/// `payload` in a sync frame of type `sync` (0, 1 or 2).
fn sync_frame(sync: u8, payload: &[u8]) -> Vec<u8> {
    match sync {
        0 => Message::SyncStep1(payload),
        1 => Message::SyncStep2(payload),
        _ => Message::Update(payload),
    }
    .encode()
}

/// An update with one client (7, from clock 0) whose single Any item holds `any`.
fn any_item(any: &[u8]) -> Vec<u8> {
    let mut payload = vec![1, 1, 7, 0, 8, 1, 1, b'a', 1];
    payload.extend_from_slice(any);
    payload.push(0);
    payload
}

// ---------------------------------------------------------------------------------------------
// Refused before yrs: constant memory

/// Payloads (with their sync type) that declare far more than they hold.
fn bombs() -> Vec<(&'static str, u8, Vec<u8>)> {
    let huge = 1u64 << 31;
    let declare = |prefix: &[u8]| {
        let mut out = prefix.to_vec();
        var(&mut out, huge);
        out
    };
    let any = |tag: u8| any_item(&declare(&[tag]));
    let mut json = vec![1, 1, 7, 0, 0x02 | 0x20, 1, 1, b'a', 1, b'k'];
    var(&mut json, u32::MAX.into());
    vec![
        ("clients", 2, declare(&[])),
        ("structs", 2, {
            let mut p = vec![1];
            var(&mut p, u32::MAX.into());
            p.extend([7, 0]);
            p
        }),
        ("delete set clients", 2, declare(&[0])),
        ("deleted ranges", 2, declare(&[0, 1, 7])),
        ("state vector entries", 0, declare(&[])),
        ("Any array", 2, any(117)),
        ("Any map", 2, any(118)),
        ("Any string", 2, any(119)),
        ("Any buffer", 2, any(116)),
        ("Any content", 2, declare(&[1, 1, 7, 0, 8, 1, 1, b'a'])),
        ("JSON content", 2, json),
    ]
}

#[test]
fn count_bombs_are_refused_in_constant_memory() {
    for (what, sync, bomb) in bombs() {
        for size in [0, 64 * 1024, MAX_FRAME - 64] {
            let mut payload = bomb.clone();
            payload.resize(bomb.len().max(size), 0);
            let frame = sync_frame(sync, &payload);
            assert!(frame.len() <= MAX_FRAME);
            let (peak, close) = receive(&frame);
            assert_eq!(close, Some(INVALID_PAYLOAD), "{what}, {size} bytes");
            assert!(peak <= REFUSAL, "{what}, {size} bytes: {peak} bytes held");
        }
    }
    // An awareness update declaring 2^31 entries.
    let mut payload = Vec::new();
    var(&mut payload, 1 << 31);
    payload.resize(MAX_FRAME - 64, 0);
    let (peak, close) = receive(&Message::Awareness(&payload).encode());
    assert_eq!(close, Some(INVALID_PAYLOAD));
    assert!(peak <= REFUSAL, "awareness: {peak} bytes held");
}

#[test]
fn deep_nesting_is_refused_in_constant_memory() {
    // Arrays in arrays, maps in maps, to the frame limit: yrs would recurse once per level.
    let levels = (MAX_FRAME - 64) / 4;
    let arrays: Vec<u8> = [117, 1].repeat(levels * 2);
    let maps: Vec<u8> = [118, 1, 1, b'k'].repeat(levels);
    for (what, nested) in [("arrays", arrays), ("maps", maps)] {
        let frame = sync_frame(2, &any_item(&nested));
        assert!(frame.len() <= MAX_FRAME);
        let (peak, close) = receive(&frame);
        assert_eq!(close, Some(INVALID_PAYLOAD), "{what}");
        assert!(peak <= REFUSAL, "{what}: {peak} bytes held");
    }
    // A frame over the limit is refused before it is even decoded.
    let (peak, close) = receive(&vec![0; MAX_FRAME + 1]);
    assert_eq!(close, Some(MESSAGE_TOO_BIG));
    assert!(peak <= REFUSAL);
}

// ---------------------------------------------------------------------------------------------
// Decoded by yrs: within the multiple

/// Valid payloads of about `size` bytes made of the smallest things yrs allocates for, each
/// with its sync type: what an honest-looking client can send.
fn shapes(size: usize) -> Vec<(&'static str, u8, Vec<u8>)> {
    let mut shapes = Vec::new();
    // One client, many tiny items, each inserted right after the first: none can merge.
    {
        let n = size / 5;
        let mut p = vec![1];
        var(&mut p, n as u64);
        p.extend([7, 0, 4, 1, 1, b't', 1, b'a']);
        for _ in 1..n {
            p.extend([0x84, 7, 0, 1, b'b']);
        }
        p.push(0);
        shapes.push(("one client, many items", 2, p));
    }
    // Many clients, one item each.
    {
        let n = size / 11;
        let mut p = vec![];
        var(&mut p, n as u64);
        for c in 0..n as u64 {
            p.push(1);
            var(&mut p, 1 << 20 | c);
            p.extend([0, 4, 1, 1, b't', 1, b'a']);
        }
        p.push(0);
        shapes.push(("many clients, one item each", 2, p));
    }
    // Many clients, one GC run each.
    {
        let n = size / 7;
        let mut p = vec![];
        var(&mut p, n as u64);
        for c in 0..n as u64 {
            p.push(1);
            var(&mut p, 1 << 20 | c);
            p.extend([0, 0, 1]);
        }
        p.push(0);
        shapes.push(("many clients, one GC each", 2, p));
    }
    // One client listed over and over, with no structs.
    {
        let n = size / 3;
        let mut p = vec![];
        var(&mut p, n as u64);
        p.extend([0, 5, 0].repeat(n));
        p.push(0);
        shapes.push(("one client listed again and again", 2, p));
    }
    // Many map keys in one map.
    {
        let n = size / 13;
        let mut p = vec![1];
        var(&mut p, n as u64);
        p.extend([7, 0]);
        for k in 0..n as u64 {
            p.extend([0x28, 1, 1, b'm']);
            p.write_string(&format!("{k:06x}"));
            p.extend([1, 126]);
        }
        p.push(0);
        shapes.push(("many map keys", 2, p));
    }
    // Many deleted ranges, of content the room does not have.
    {
        let n = size / 5;
        let mut p = vec![0, 1, 7];
        var(&mut p, n as u64);
        for k in 0..n as u64 {
            var(&mut p, 1000 + 2 * k);
            p.push(1);
        }
        shapes.push(("many deleted ranges", 2, p));
    }
    // Any content of nulls, an Any array of nulls, an Any map, and an embedded JSON array.
    {
        let n = size;
        let mut p = vec![1, 1, 7, 0, 8, 1, 1, b'a'];
        var(&mut p, n as u64);
        p.extend(std::iter::repeat_n(126, n));
        p.push(0);
        shapes.push(("Any content of nulls", 2, p));
        let mut array = vec![117];
        var(&mut array, n as u64);
        array.extend(std::iter::repeat_n(126, n));
        shapes.push(("Any array of nulls", 2, any_item(&array)));
        let mut map = vec![118];
        var(&mut map, (n / 8) as u64);
        for k in 0..n / 8 {
            map.write_string(&format!("{k:06x}"));
            map.push(126);
        }
        shapes.push(("Any map", 2, any_item(&map)));
        let json = format!("[{}0]", "0,".repeat(n / 2));
        let mut p = vec![1, 1, 7, 0, 5, 1, 1, b'a'];
        p.write_string(&json);
        p.push(0);
        shapes.push(("embedded JSON array", 2, p));
    }
    // A state vector of many clients, and the same as a SyncStep2 of GC runs.
    {
        let n = size / 5;
        let mut p = vec![];
        var(&mut p, n as u64);
        for c in 0..n as u64 {
            var(&mut p, 1 << 20 | c);
            p.push(1);
        }
        shapes.push(("state vector of many clients", 0, p));
    }
    shapes
}

/// The most `Room::receive` may hold at once for a frame of `len` bytes.
fn bound(len: usize) -> usize {
    MULTIPLE * len + CONSTANT
}

#[test]
fn what_yrs_decodes_stays_within_the_multiple() {
    let mut worst = (0.0, "");
    // 200,720 bytes is just past a hash-table growth step for the many-clients shapes.
    for size in [256, 4 * 1024, 200_720, 256 * 1024, MAX_FRAME - 64] {
        for (what, sync, payload) in shapes(size) {
            let frame = sync_frame(sync, &payload);
            assert!(frame.len() <= MAX_FRAME, "{what}");
            let (peak, close) = receive(&frame);
            assert!(
                close.is_none(),
                "{what}, {size} bytes: closed with {close:?}"
            );
            let multiple = peak as f64 / frame.len() as f64;
            eprintln!(
                "{what:34} {:>8} bytes: peak {:>10} bytes, x{multiple:.1}",
                frame.len(),
                peak
            );
            if size > 4096 && multiple > worst.0 {
                worst = (multiple, what);
            }
            assert!(
                peak <= bound(frame.len()),
                "{what}, {} bytes: {peak} bytes held, x{multiple:.1}",
                frame.len()
            );
        }
    }
    eprintln!("worst: x{:.1} ({})", worst.0, worst.1);
}

#[test]
fn awareness_stays_within_the_multiple() {
    // The most entries a frame can hold: empty-object states, each its own client.
    let n = (MAX_FRAME - 64) / 8;
    let entries: Vec<_> = (0..n as u64)
        .map(|c| entry(1 << 20 | c, 1, Some("{}")))
        .collect();
    let frame = Message::Awareness(&awareness::encode(entries.iter())).encode();
    let (peak, close) = receive(&frame);
    assert_eq!(close, Some(1008), "over the ids budget");
    assert!(peak <= bound(frame.len()), "{peak} bytes held");
}

/// Valid updates to mutate: a text, a map and an array edited by two clients, with deletions.
fn sample_update() -> Vec<u8> {
    use yrs::{Array, Doc, Map, ReadTxn, StateVector, Text, Transact};
    let doc = Doc::with_client_id(300);
    let text = doc.get_or_insert_text(TEXT);
    let map = doc.get_or_insert_map("m");
    let array = doc.get_or_insert_array("a");
    for n in 0..40u32 {
        let mut txn = doc.transact_mut();
        let at = (n * 7) % (text.len(&txn) + 1);
        text.insert(&mut txn, at, "ab");
        map.insert(&mut txn, format!("k{}", n % 5), vec![n, n + 1]);
        array.insert(&mut txn, 0, n);
        if n % 3 == 2 {
            text.remove_range(&mut txn, 1, 2);
            array.remove(&mut txn, 1);
        }
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    update
}

/// Edits to a valid update: overwrite or insert bytes (large varints among them).
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<u32>()).prop_map(|(i, n)| {
            let mut b = Vec::new();
            b.write_var(n);
            Mutation::Insert(i, b)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a few mutations make of a valid update, the room stays within the multiple.
    #[test]
    fn mutated_updates_stay_within_the_multiple(
        sync in 1..3u8,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut payload = sample_update();
        for m in mutations {
            match m {
                Mutation::Set(i, b) => {
                    let len = payload.len();
                    payload[i % len] = b;
                }
                Mutation::Insert(i, b) => {
                    let at = i % (payload.len() + 1);
                    payload.splice(at..at, b);
                }
            }
        }
        let frame = sync_frame(sync, &payload);
        let (peak, _) = receive(&frame);
        prop_assert!(peak <= bound(frame.len()), "{} bytes held for {}", peak, frame.len());
    }
}
