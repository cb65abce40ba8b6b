//! What one keystroke costs the room: a one-character Update frame through `Room::receive`
//! (decode the frame, size checks, integrate, re-encode the change for storage and relay,
//! and the amortised compaction), into rooms holding a ~10 KB and a ~1 MB document.
//!
//! - `room`: everything, with the default limits (compaction every 512 updates, amortised).
//! - `room_without_compaction`: the same with compaction switched off.
//! - `bare_doc`: the baseline, the same update decoded and applied to a bare yrs `Doc`.
//! - `bare_doc+delta`: the baseline plus the re-encode of the change the room must store and
//!   relay, so `room_without_compaction - bare_doc+delta` is the room's own bookkeeping.
//!
//! Run: `cargo bench -p codebox-room --bench apply_update`

use std::hint::black_box;
use std::time::{Duration, Instant};

use codebox_room::storage::{CommitPolicy, Compaction};
use codebox_room::{Limits, Message, Role, Room};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, TextRef, Transact, Update};

const TEXT: &str = "codemirror";

/// A document shaped by editing, not by one paste: three authors insert a few lines at a time
/// at pseudo-random places and now and then delete a few characters, until the text reaches
/// `target` bytes. Returns the document as one update.
fn build_document(target: usize) -> Vec<u8> {
    let docs: Vec<(Doc, TextRef)> = (0..3)
        .map(|i| {
            let doc = Doc::with_client_id(10 + i);
            let text = doc.get_or_insert_text(TEXT);
            (doc, text)
        })
        .collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut step = 0usize;
    loop {
        let (doc, text) = &docs[step % 3];
        let len = text.len(&doc.transact());
        if len as usize >= target {
            break;
        }
        let update = {
            let mut txn = doc.transact_mut();
            if step % 7 == 6 && len > 10 {
                text.remove_range(&mut txn, rng.below(len - 5), 3);
            } else {
                let lines: String = (0..4)
                    .map(|i| {
                        format!(
                            "    let value_{step}_{i} = compute({step}, \"some text\"); // note\n"
                        )
                    })
                    .collect();
                text.insert(&mut txn, rng.below(len + 1), &lines);
            }
            txn.commit();
            txn.encode_update_v1()
        };
        for (other, _) in docs
            .iter()
            .filter(|(d, _)| d.client_id() != doc.client_id())
        {
            other
                .transact_mut()
                .apply_update(Update::decode_v1(&update).unwrap())
                .unwrap();
        }
        step += 1;
    }
    let document = docs[0]
        .0
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    document
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as u32
    }
}

/// The keystrokes of someone editing the document: runs of 1 to 40 characters typed at one
/// place, then the cursor moves elsewhere. Each is the Update payload y-websocket would send.
fn keystrokes(document: &[u8], n: usize) -> Vec<Vec<u8>> {
    let doc = Doc::with_client_id(77);
    let text = doc.get_or_insert_text(TEXT);
    doc.transact_mut()
        .apply_update(Update::decode_v1(document).unwrap())
        .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut cursor, mut run) = (0, 0);
    (0..n)
        .map(|i| {
            let mut txn = doc.transact_mut();
            if run == 0 {
                cursor = rng.below(text.len(&txn) + 1);
                run = 1 + rng.below(40);
            }
            text.insert(
                &mut txn,
                cursor,
                ["a", "b", "c", " ", "e", "(", ")", ";"][i % 8],
            );
            cursor += 1;
            run -= 1;
            txn.commit();
            txn.encode_update_v1()
        })
        .collect()
}

/// How many keystrokes are typed into one copy of the document before it is reloaded, so the
/// document stays near its size however many iterations criterion asks for.
const POOL: usize = 4096;

/// Runs `apply` over `iters` keystrokes, on fresh copies of the state `setup` makes (outside
/// the timed part), and returns the time spent in `apply` only.
fn timed<S>(
    iters: u64,
    pool: &[Vec<u8>],
    setup: impl Fn() -> S,
    mut apply: impl FnMut(&mut S, &[u8]),
) -> Duration {
    let mut left = iters as usize;
    let mut total = Duration::ZERO;
    while left > 0 {
        let mut state = setup();
        let n = left.min(pool.len());
        let start = Instant::now();
        for keystroke in &pool[..n] {
            apply(&mut state, keystroke);
        }
        total += start.elapsed();
        left -= n;
        black_box(state);
    }
    total
}

/// The runtime's clock at the first keystroke.
const NOW: u64 = 1_700_000_000_000;
/// Milliseconds between keystrokes where the benchmark types at 10 keystrokes/s.
const KEYSTROKE_MS: u64 = 100;

/// A room loaded with `document`, with socket 1 joined as an editor.
fn editor_room(limits: Limits, document: &[u8]) -> Room {
    let mut room = Room::load(limits, document, Vec::<Vec<u8>>::new()).unwrap();
    room.join(1, Role::Edit);
    room
}

fn bare_doc(document: &[u8]) -> Doc {
    let doc = Doc::with_client_id(1);
    doc.transact_mut()
        .apply_update(Update::decode_v1(document).unwrap())
        .unwrap();
    doc
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_update");
    // Each keystroke written as it comes: the most storage work per keystroke.
    let per_keystroke = Limits {
        commit: CommitPolicy::IMMEDIATE,
        ..Limits::default()
    };
    let no_compaction = Limits {
        compaction: Compaction {
            max_log_entries: usize::MAX,
            min_log_bytes: usize::MAX,
            snapshot_bytes_per_entry: usize::MAX,
        },
        ..per_keystroke
    };
    for (label, target) in [("10KB", 10 * 1024), ("1MB", 1024 * 1024)] {
        let document = build_document(target);
        let updates = keystrokes(&document, POOL);
        let frames: Vec<Vec<u8>> = updates
            .iter()
            .map(|u| Message::Update(u).encode())
            .collect();
        let mean = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() / v.len();
        eprintln!(
            "{label} document: {} bytes encoded; a keystroke: {} byte update, {} byte frame (mean)",
            document.len(),
            mean(&updates),
            mean(&frames)
        );

        // Everything the room does per keystroke, each written as it comes, compaction
        // included (amortised).
        group.bench_function(BenchmarkId::new("room", label), |b| {
            let setup = || editor_room(per_keystroke, &document);
            b.iter_custom(|iters| {
                timed(iters, &frames, setup, |room, frame| {
                    black_box(room.receive(1, frame, NOW));
                })
            })
        });
        // As built: typing at 10 keystrokes/s, written together once per 1 s window (each
        // tenth keystroke finds the window elapsed and commits the merged ten).
        group.bench_function(BenchmarkId::new("room_group_commit", label), |b| {
            let setup = || editor_room(Limits::default(), &document);
            b.iter_custom(|iters| {
                let mut now = NOW;
                timed(iters, &frames, setup, |room, frame| {
                    now += KEYSTROKE_MS;
                    black_box(room.receive(1, frame, now));
                })
            })
        });
        // The same without compaction: decode, size checks, integrate, re-encode, frame.
        group.bench_function(BenchmarkId::new("room_without_compaction", label), |b| {
            let setup = || editor_room(no_compaction, &document);
            b.iter_custom(|iters| {
                timed(iters, &frames, setup, |room, frame| {
                    black_box(room.receive(1, frame, NOW));
                })
            })
        });
        // Baseline: decode and integrate into a bare yrs Doc.
        group.bench_function(BenchmarkId::new("bare_doc", label), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &updates,
                    || bare_doc(&document),
                    |doc, update| {
                        doc.transact_mut()
                            .apply_update(Update::decode_v1(update).unwrap())
                            .unwrap();
                    },
                )
            })
        });
        // Baseline plus the re-encode of the change, which the room needs to store and relay.
        group.bench_function(BenchmarkId::new("bare_doc+delta", label), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &updates,
                    || bare_doc(&document),
                    |doc, update| {
                        let mut txn = doc.transact_mut();
                        txn.apply_update(Update::decode_v1(update).unwrap())
                            .unwrap();
                        txn.commit();
                        black_box(txn.encode_update_v1());
                    },
                )
            })
        });

        // The room and a bare doc end in the same state after the same keystrokes.
        let mut room = editor_room(per_keystroke, &document);
        let doc = bare_doc(&document);
        for (frame, update) in frames.iter().zip(&updates) {
            let effects = room.receive(1, frame, NOW);
            assert!(
                effects.close.is_none()
                    && effects.broadcast.len() == 1
                    && !effects.store.is_empty()
            );
            doc.transact_mut()
                .apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }
        let room_text = {
            let txn = room.doc().transact();
            txn.get_text(TEXT).unwrap().get_string(&txn)
        };
        assert_eq!(
            room_text,
            doc.get_or_insert_text(TEXT).get_string(&doc.transact())
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
