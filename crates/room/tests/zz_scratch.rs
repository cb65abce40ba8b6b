mod common;
use codebox_room::{Limits, Message, Room};
use common::*;
use yrs::updates::decoder::Decode;

fn sample_update() -> Vec<u8> {
    let mut ada = Client::new(300);
    let mut bob = Client::new(301);
    ada.insert(0, "hello");
    bob.receive(&Message::SyncStep2(&ada.full_state()).encode());
    bob.insert(5, " world");
    bob.delete(0, 2);
    bob.full_state()
}

#[test]
fn scratch() {
    let u = sample_update();
    println!("update {:?} len {}", u, u.len());
    let i = (13879973022766185604usize) % u.len();
    let mut m = u.clone();
    m[i] ^= 1;
    println!("flip at {i}: {:?}", m);
    println!("decoded: {:?}", yrs::Update::decode_v1(&m));
    let mut room = Room::new(Limits::default());
    let mut stored = Stored::default();
    let e = room.receive(66, &Message::Update(&m).encode());
    println!("effects {:?}", e);
    stored.apply(&e.store);
    println!("room text {:?}", room_text(&room));
    let re = stored.load(Limits::default());
    println!("reloaded text {:?}", room_text(&re));
    println!("room snapshot {:?}", room.snapshot());
    println!("pending? {:?}", yrs::ReadTxn::has_missing_updates(&yrs::Transact::transact(room.doc())));
}

#[test]
fn scratch2() {
    use yrs::{Doc, Transact, ReadTxn, Update, StateVector};
    let m: Vec<u8> = vec![2, 1, 173, 2, 1, 132, 172, 2, 4, 6, 32, 119, 111, 114, 108, 100, 2, 172, 2, 0, 1, 1, 10, 99, 111, 100, 101, 109, 105, 114, 114, 111, 114, 2, 132, 172, 2, 1, 3, 108, 108, 111, 1, 172, 2, 1, 0, 2];
    let doc = Doc::with_client_id(1);
    let mut txn = doc.transact_mut();
    let r = txn.apply_update(Update::decode_v1(&m).unwrap());
    println!("apply {:?}", r);
    println!("insert_set {:?}", txn.insert_set());
    println!("delete_set {:?}", txn.delete_set());
    println!("before {:?}", txn.before_state());
    println!("after {:?}", txn.after_state());
    println!("sv {:?}", txn.state_vector());
    println!("delta {:?}", txn.encode_update_v1());
    println!("diff {:?}", txn.encode_diff_v1(&StateVector::default()));
}

#[test]
fn scratch3() {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = || { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; seed };
    for round in 0..20000 {
        let len = (next() % 64) as usize;
        let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let env = next() % 4;
        let frame = match env { 0 => Message::SyncStep1(&payload).encode(), 1 => Message::SyncStep2(&payload).encode(), 2 => Message::Update(&payload).encode(), _ => Message::Awareness(&payload).encode() };
        let mut room = Room::new(Limits::default());
        let t = std::time::Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| room.receive(1, &frame)));
        let el = t.elapsed();
        if el.as_millis() > 20 { println!("round {round} env {env} {:?} took {:?} ok={}", payload, el, r.is_ok()); }
    }
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with("VmHWM")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn scratch4() {
    use yrs::encoding::write::Write;
    let which = std::env::var("WHICH").unwrap();
    let n: u64 = std::env::var("N").unwrap().parse().unwrap();
    let mut p = Vec::new();
    p.write_var(n);
    let frame = match which.as_str() {
        "sv" => Message::SyncStep1(&p).encode(),
        "clients" => Message::Update(&p).encode(),
        "blocks" => { let mut q = vec![1u8]; q.write_var(n); q.push(5); q.push(0); Message::Update(&q).encode() }
        "ds" => { let mut q = vec![0u8]; q.write_var(n); Message::Update(&q).encode() }
        _ => panic!(),
    };
    let before = rss_kb();
    let mut room = Room::new(Limits::default());
    let t = std::time::Instant::now();
    let e = room.receive(1, &frame);
    println!("{which} n={n} frame={} bytes: {:?} in {:?}, peak RSS {} -> {} KB", frame.len(), e.close.map(|c| c.reason()), t.elapsed(), before, rss_kb());
}

#[test]
fn scratch5() {
    use yrs::{Doc, Transact, ReadTxn, Update, StateVector, Text, GetString};
    let h = Client::new(10);
    let mut h = h;
    let base = h.insert(0, "hello");
    let mut x = Client::new(50);
    x.receive(&base);
    let u1 = x.insert(1, "1"); // after 'h'
    let u2 = x.insert(4, "2"); // after 'e' ... "h1el2lo"? 
    println!("x text {:?}", x.text());
    let upd = |f: &[u8]| match Message::decode(f).unwrap() { Message::Update(u) => u.to_vec(), _ => panic!() };
    let (u1, u2, base) = (upd(&u1), upd(&u2), upd(&base));
    println!("u1 {:?}\nu2 {:?}", yrs::Update::decode_v1(&u1).unwrap(), yrs::Update::decode_v1(&u2).unwrap());
    let doc = Doc::with_client_id(1);
    let text = doc.get_or_insert_text(TEXT);
    doc.transact_mut().apply_update(Update::decode_v1(&base).unwrap()).unwrap();
    {
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(&u2).unwrap()).unwrap();
        println!("after u2: text {:?} sv {:?} pending {}", text.get_string(&txn), txn.state_vector(), txn.has_missing_updates());
    }
    {
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(&u1).unwrap()).unwrap();
        println!("after u1: text {:?} sv {:?} pending {} changes {}", text.get_string(&txn), txn.state_vector(), txn.has_missing_updates(), txn.has_changes());
    }
    println!("expected {:?}", x.text());
    let full = doc.transact().encode_state_as_update_v1(&StateVector::default());
    println!("doc full {:?}", yrs::Update::decode_v1(&full).unwrap());
}
