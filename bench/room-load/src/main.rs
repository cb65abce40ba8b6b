//! `room-load`: the room fan-out benchmark.
//!
//! One writer and N readers join one room. The writer keeps a yrs `Doc` and makes one small
//! text insert per tick at `--rate` edits/s, sending each as a y-protocols Update frame and
//! recording its send time. Readers keep no document: they decode only the message type and
//! sync type of each frame and timestamp every Update. The server relays each socket's
//! updates in order, so the k-th Update a reader receives is the writer's k-th edit; each
//! insert also carries its sequence number as text (`<00000042>`), which readers look for
//! in the frame's bytes to check that (a cheap byte scan, no decoding of the update).
//! Latency = receive time - send time, both from this process's monotonic clock.
//!
//! ```text
//! room-load --url ws://127.0.0.1:8787/rooms --room ROOM --token EDIT_TOKEN --readers 49 \
//!           --rate 50 --seconds 20 [--warmup 2] [--server-pid PID]... [--server-tree PID]...
//! ```
//!
//! The room URL is `{url}/{room}?token={token}`, so the same tool drives the edge
//! (`ws://host/rooms`) and `@y/websocket-server` (`ws://host:port`, no token: it ignores the
//! query). The edge opens only rooms it created, to holders of their tokens (DESIGN.md,
//! Contract 3): make the room first with `curl -s -X POST http://host/rooms` and pass its
//! `room` and `edit_token`. Every socket sends the one token given; the writer needs an edit
//! token (readers send nothing, so a view token would serve them too).
//!
//! Ticks use `MissedTickBehavior::Burst`: a tick that falls behind is sent as soon as
//! possible, so the offered load stays at `rate` edits/s on average; how late sends were
//! against their schedule is printed too.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use codebox_room::Message;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{interval_at, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const USAGE: &str = "usage: room-load --url ws://HOST:PORT/rooms --room NAME [--token T] [--readers 49] [--rate 50] \
[--seconds 20] [--warmup 2] [--drain 5] [--threads 1] [--label TEXT] [--server-pid PID]... [--server-tree PID]...

  --url          base URL; the room URL is {url}/{room}?token={token}
  --room         the room: for the edge, the `room` of `POST /rooms`
  --token        the room's token, sent by every socket (for the edge, the `edit_token` of
                 `POST /rooms`); none by default
  --readers      reader sockets (default 49); plus one writer
  --rate         writer edits per second (default 50)
  --seconds      measured seconds (default 20), after --warmup seconds (default 2) not counted
  --drain        seconds to wait after the last edit for deliveries (default 5)
  --threads      tokio worker threads; 1 = current-thread runtime (default 1)
  --server-pid   a server process whose CPU time to report (repeatable)
  --server-tree  a process and all its descendants, e.g. wrangler and its workerd (repeatable)
  --label        a title for the result block";

#[derive(Debug, Clone)]
struct Args {
    url: String,
    room: String,
    token: Option<String>,
    readers: usize,
    rate: f64,
    seconds: f64,
    warmup: f64,
    drain: f64,
    threads: usize,
    label: Option<String>,
    server_pids: Vec<u32>,
    server_trees: Vec<u32>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        url: String::new(),
        room: String::new(),
        token: None,
        readers: 49,
        rate: 50.0,
        seconds: 20.0,
        warmup: 2.0,
        drain: 5.0,
        threads: 1,
        label: None,
        server_pids: Vec::new(),
        server_trees: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}"))
        };
        match name.as_str() {
            "--url" => args.url = value()?,
            "--room" => args.room = value()?,
            "--token" => args.token = Some(value()?),
            "--readers" => args.readers = value()?.parse().context("--readers")?,
            "--rate" => args.rate = value()?.parse().context("--rate")?,
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--warmup" => args.warmup = value()?.parse().context("--warmup")?,
            "--drain" => args.drain = value()?.parse().context("--drain")?,
            "--threads" => args.threads = value()?.parse().context("--threads")?,
            "--label" => args.label = Some(value()?),
            "--server-pid" => args
                .server_pids
                .push(value()?.parse().context("--server-pid")?),
            "--server-tree" => args
                .server_trees
                .push(value()?.parse().context("--server-tree")?),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.url.is_empty() || args.room.is_empty() {
        bail!("--url and --room are required\n{USAGE}");
    }
    let valid = args.rate.is_finite()
        && args.rate > 0.0
        && args.seconds.is_finite()
        && args.seconds > 0.0
        && args.warmup.is_finite()
        && args.warmup >= 0.0
        && args.readers > 0;
    if !valid {
        bail!("--rate, --seconds and --readers must be positive, --warmup not negative");
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

// ---------------------------------------------------------------------------------------
// CPU accounting from /proc (utime + stime of every thread of a process).

/// Clock ticks per second of /proc/*/stat times: 100 on every Linux x86_64 and arm64 build.
const CLK_TCK: f64 = 100.0;

struct ProcStat {
    comm: String,
    ppid: u32,
    ticks: u64,
}

fn proc_stat(pid: &str) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcStat {
        comm,
        ppid,
        ticks: utime + stime,
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and every process below it.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Some(stat) = proc_stat(name) {
                children
                    .entry(stat.ppid)
                    .or_default()
                    .push(name.parse().unwrap_or(0));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids.iter().copied());
        }
        i += 1;
    }
    out
}

/// Busy and total CPU seconds of the whole machine (all cores), from /proc/stat.
fn machine_cpu() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some(((total - idle) as f64 / CLK_TCK, total as f64 / CLK_TCK))
}

fn cpu_seconds(pid: &str) -> Option<f64> {
    proc_stat(pid).map(|s| s.ticks as f64 / CLK_TCK)
}

// ---------------------------------------------------------------------------------------
// The run.

/// What each reader saw.
#[derive(Default)]
struct ReaderLog {
    /// Receive time of each Update, in arrival order.
    updates: Vec<Instant>,
    /// Updates whose embedded sequence number was not their arrival index.
    out_of_order: u64,
    /// Updates in which no sequence marker was found.
    unmarked: u64,
    sync_step1: u64,
    sync_step2: u64,
    awareness: u64,
    other: u64,
    decode_errors: u64,
    /// Set if the socket closed or failed before the end of the run.
    ended_early: Option<String>,
}

/// The URL every socket opens, with the token as the query (`?token=`, as the stock
/// y-websocket provider's `params: { token }` sends it).
fn room_url(base: &str, room: &str, token: Option<&str>) -> String {
    let url = format!("{}/{}", base.trim_end_matches('/'), room);
    match token {
        Some(token) => format!("{url}?token={}", query_escape(token)),
        None => url,
    }
}

/// Percent-encodes everything but URL-safe characters (room tokens are URL-safe already).
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Opens `url`; errors name it as `shown` (without the token).
async fn connect(url: &str, shown: &str) -> Result<Ws> {
    // Nagle off: a 30-byte frame must not wait for the previous one's ACK.
    let (ws, _) = timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(url, None, true),
    )
    .await
    .map_err(|_| anyhow!("connecting to {shown} timed out"))?
    .with_context(|| format!("connecting to {shown}"))?;
    Ok(ws)
}

/// Waits for the server's greeting SyncStep1 (proof the server has registered the socket).
/// Returns frames that arrived before it, already counted into `log`.
async fn await_sync_step1(ws: &mut Ws, log: &mut ReaderLog) -> Result<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = timeout(left, ws.next())
            .await
            .map_err(|_| anyhow!("no SyncStep1 from the server within 10 s"))?;
        match frame {
            Some(Ok(WsMessage::Binary(bytes))) => match Message::decode(&bytes) {
                Ok(Message::SyncStep1(sv)) => {
                    log.sync_step1 += 1;
                    return Ok(sv.to_vec());
                }
                Ok(Message::Awareness(_)) => log.awareness += 1,
                Ok(other) => bail!("unexpected frame before SyncStep1: {other:?}"),
                Err(e) => bail!("undecodable frame before SyncStep1: {e}"),
            },
            Some(Ok(WsMessage::Close(c))) => bail!("closed before SyncStep1: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("socket error before SyncStep1: {e}"),
            None => bail!("socket ended before SyncStep1"),
        }
    }
}

/// Finds `<dddddddd>` in an update's bytes: the sequence number the writer inserted.
fn find_marker(frame: &[u8]) -> Option<u64> {
    frame.windows(10).find_map(|w| {
        if w[0] == b'<' && w[9] == b'>' && w[1..9].iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(&w[1..9]).ok()?.parse().ok()
        } else {
            None
        }
    })
}

/// Counts one frame; true if it was an Update.
fn count_frame(log: &mut ReaderLog, bytes: &[u8], now: Instant) -> bool {
    match Message::decode(bytes) {
        Ok(Message::Update(_)) => {
            let index = log.updates.len() as u64;
            log.updates.push(now);
            match find_marker(bytes) {
                Some(seq) if seq != index => log.out_of_order += 1,
                Some(_) => {}
                None => log.unmarked += 1,
            }
            return true;
        }
        Ok(Message::SyncStep1(_)) => log.sync_step1 += 1,
        Ok(Message::SyncStep2(_)) => log.sync_step2 += 1,
        Ok(Message::Awareness(_)) => log.awareness += 1,
        Ok(_) => log.other += 1,
        Err(_) => log.decode_errors += 1,
    }
    false
}

async fn reader(
    mut ws: Ws,
    mut log: ReaderLog,
    received: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> ReaderLog {
    loop {
        tokio::select! {
            biased;
            frame = ws.next() => {
                let now = Instant::now();
                match frame {
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        if count_frame(&mut log, &bytes, now) {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(WsMessage::Close(c))) => {
                        log.ended_early = Some(format!("closed by the server: {c:?}"));
                        return log;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        log.ended_early = Some(format!("socket error: {e}"));
                        return log;
                    }
                    None => {
                        log.ended_early = Some("socket ended".into());
                        return log;
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
    log
}

/// What the writer did.
struct WriterLog {
    /// Send time of edit k (taken just before the frame is handed to the socket).
    sent: Vec<Instant>,
    /// How late each send was against its tick's schedule.
    lateness_ms: Vec<f64>,
    /// Updates the server sent back to the writer (the edge must never echo).
    echoes: u64,
    other_frames: BTreeMap<&'static str, u64>,
    update_bytes: usize,
    final_text_len: u32,
}

fn frame_kind(bytes: &[u8]) -> &'static str {
    match Message::decode(bytes) {
        Ok(Message::SyncStep1(_)) => "SyncStep1",
        Ok(Message::SyncStep2(_)) => "SyncStep2",
        Ok(Message::Update(_)) => "Update",
        Ok(Message::Awareness(_)) => "Awareness",
        Ok(Message::PermissionDenied(_)) => "Auth",
        Ok(Message::QueryAwareness) => "QueryAwareness",
        Err(_) => "undecodable",
    }
}

async fn writer(
    mut ws: Ws,
    server_sv: Vec<u8>,
    start: Instant,
    edits: u64,
    period: Duration,
) -> Result<(Ws, WriterLog)> {
    let doc = Doc::new();
    let text = doc.get_or_insert_text("bench");
    // Answer the server's SyncStep1 with what it lacks of our (empty) document.
    let sv = StateVector::decode_v1(&server_sv).context("server's state vector")?;
    let diff = doc.transact().encode_diff_v1(&sv);
    ws.send(WsMessage::Binary(Message::SyncStep2(&diff).encode().into()))
        .await?;

    let mut log = WriterLog {
        sent: Vec::with_capacity(edits as usize),
        lateness_ms: Vec::with_capacity(edits as usize),
        echoes: 0,
        other_frames: BTreeMap::new(),
        update_bytes: 0,
        final_text_len: 0,
    };
    let mut ticks = interval_at(start.into(), period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let (mut sink, mut stream) = ws.split();
    let mut seq = 0u64;
    while seq < edits {
        tokio::select! {
            biased;
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    let kind = frame_kind(&bytes);
                    if kind == "Update" { log.echoes += 1 } else { *log.other_frames.entry(kind).or_default() += 1 }
                }
                Some(Ok(WsMessage::Close(c))) => bail!("writer closed by the server after {seq} edits: {c:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("writer socket error after {seq} edits: {e}"),
                None => bail!("writer socket ended after {seq} edits"),
            },
            scheduled = ticks.tick() => {
                let update = {
                    let mut txn = doc.transact_mut();
                    let len = text.len(&txn);
                    text.insert(&mut txn, len, &format!("<{seq:08}>"));
                    txn.encode_update_v1()
                };
                let frame = Message::Update(&update).encode();
                log.update_bytes += frame.len();
                let now = Instant::now();
                log.lateness_ms.push(ms(now.saturating_duration_since(scheduled.into_std())));
                log.sent.push(now);
                sink.send(WsMessage::Binary(frame.into())).await
                    .with_context(|| format!("sending edit {seq}"))?;
                seq += 1;
            }
        }
    }
    log.final_text_len = text.get_string(&doc.transact()).len() as u32;
    let ws = sink
        .reunite(stream)
        .map_err(|_| anyhow!("reuniting the writer socket"))?;
    Ok((ws, log))
}

/// Keeps reading the writer's socket after its last edit, to catch late echoes.
async fn writer_drain(
    mut ws: Ws,
    mut log: WriterLog,
    mut stop: watch::Receiver<bool>,
) -> WriterLog {
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    let kind = frame_kind(&bytes);
                    if kind == "Update" { log.echoes += 1 } else { *log.other_frames.entry(kind).or_default() += 1 }
                }
                Some(Ok(_)) => {}
                _ => return log,
            },
            _ = stop.changed() => break,
        }
    }
    let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
    log
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct ServerProc {
    pid: u32,
    comm: String,
    before: f64,
}

fn server_procs(args: &Args) -> Vec<ServerProc> {
    let mut pids: Vec<u32> = args.server_pids.clone();
    for &root in &args.server_trees {
        pids.extend(descendants(root));
    }
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter_map(|pid| {
            let stat = proc_stat(&pid.to_string())?;
            Some(ServerProc {
                pid,
                comm: stat.comm,
                before: stat.ticks as f64 / CLK_TCK,
            })
        })
        .collect()
}

async fn run(args: Args) -> Result<()> {
    let url = room_url(&args.url, &args.room, args.token.as_deref());
    // What the report shows: the URL without the token (tokens are never printed).
    let shown_url = match &args.token {
        Some(_) => format!("{}?token=<token>", room_url(&args.url, &args.room, None)),
        None => url.clone(),
    };
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let warmup_edits = (args.warmup * args.rate).round() as u64;
    let measured_edits = (args.seconds * args.rate).round() as u64;
    let edits = warmup_edits + measured_edits;
    let cpu_at_launch = cpu_seconds("self").unwrap_or(f64::NAN);

    // Readers first, each confirmed by the server's SyncStep1, so none misses the first edit.
    let connect_started = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::with_capacity(args.readers);
    for i in 0..args.readers {
        let mut ws = connect(&url, &shown_url)
            .await
            .with_context(|| format!("reader {i}"))?;
        let mut log = ReaderLog {
            updates: Vec::with_capacity(edits as usize),
            ..Default::default()
        };
        await_sync_step1(&mut ws, &mut log)
            .await
            .with_context(|| format!("reader {i}"))?;
        readers.push(tokio::spawn(reader(
            ws,
            log,
            received.clone(),
            stop_rx.clone(),
        )));
    }
    let mut writer_ws = connect(&url, &shown_url).await.context("writer")?;
    let mut writer_greeting = ReaderLog::default();
    let server_sv = await_sync_step1(&mut writer_ws, &mut writer_greeting)
        .await
        .context("writer")?;
    let connect_ms = ms(connect_started.elapsed());

    // Edits start on a fresh tick; the measured window starts after the warm-up edits.
    let start = Instant::now() + Duration::from_millis(100);
    let measure_start = start + period.mul_f64(warmup_edits as f64);
    let writer_task = tokio::spawn(writer(writer_ws, server_sv, start, edits, period));
    // Take the "before" CPU readings when the measured window opens.
    tokio::time::sleep_until(measure_start.into()).await;
    let cpu_self_at_measure = cpu_seconds("self").unwrap_or(f64::NAN);
    let machine_before = machine_cpu();
    let servers = server_procs(&args);
    let (writer_ws, wlog) = writer_task
        .await
        .map_err(|e| anyhow!("writer task: {e}"))??;
    let last_send = *wlog.sent.last().unwrap_or(&measure_start);

    // Wait until every reader has every edit, or the drain time runs out.
    let want = edits * args.readers as u64;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    while received.load(Ordering::Relaxed) < want && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let measure_end = Instant::now();
    let cpu_self_end = cpu_seconds("self").unwrap_or(f64::NAN);
    let machine_after = machine_cpu();
    let server_after: Vec<(f64, Option<u64>)> = servers
        .iter()
        .map(|s| {
            (
                cpu_seconds(&s.pid.to_string()).unwrap_or(f64::NAN),
                rss_kib(s.pid),
            )
        })
        .collect();

    let (wstop_tx, wstop_rx) = watch::channel(false);
    let drain = tokio::spawn(writer_drain(writer_ws, wlog, wstop_rx));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);
    let _ = wstop_tx.send(true);
    let mut logs = Vec::with_capacity(readers.len());
    for r in readers {
        logs.push(r.await.map_err(|e| anyhow!("reader task: {e}"))?);
    }
    let wlog = drain.await.map_err(|e| anyhow!("writer drain: {e}"))?;

    // Latencies of the measured edits.
    let mut latencies = Vec::with_capacity((measured_edits as usize) * logs.len());
    let mut extra = 0u64;
    let mut early = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        for (k, t) in log.updates.iter().enumerate() {
            let k = k as u64;
            if k >= edits {
                extra += 1;
            } else if k >= warmup_edits {
                latencies.push(ms(t.saturating_duration_since(wlog.sent[k as usize])));
            }
        }
        if let Some(why) = &log.ended_early {
            early.push(format!("reader {i}: {why}"));
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let expected = measured_edits * logs.len() as u64;
    let delivered = latencies.len() as u64;
    let warmup_delivered: u64 = logs
        .iter()
        .map(|l| (l.updates.len() as u64).min(warmup_edits))
        .sum();
    let sum = |f: fn(&ReaderLog) -> u64| logs.iter().map(f).sum::<u64>();
    let mut lateness = wlog.lateness_ms.clone();
    lateness.sort_by(|a, b| a.partial_cmp(b).unwrap());

    let window = (measure_end - measure_start).as_secs_f64();
    let send_span = (last_send - measure_start).as_secs_f64();
    let title = args.label.clone().unwrap_or_else(|| shown_url.clone());
    println!("== {title}");
    println!("url                 {shown_url}");
    println!(
        "sockets             1 writer + {} readers (connected and greeted in {:.0} ms)",
        logs.len(),
        connect_ms
    );
    println!(
        "edits sent          {} measured + {} warm-up at {} edits/s (MissedTickBehavior::Burst); measured sends span {:.2} s",
        measured_edits, warmup_edits, args.rate, send_span
    );
    println!(
        "update frame        {:.1} bytes on average; writer text {} chars at the end",
        wlog.update_bytes as f64 / edits.max(1) as f64,
        wlog.final_text_len
    );
    println!(
        "send lateness       p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (send time vs tick schedule)",
        pct(&lateness, 50.0),
        pct(&lateness, 99.0),
        pct(&lateness, 100.0)
    );
    println!(
        "deliveries          expected {}, received {}, lost {} (warm-up: {} of {})",
        expected,
        delivered,
        expected.saturating_sub(delivered),
        warmup_delivered,
        warmup_edits * logs.len() as u64
    );
    println!(
        "unexpected          extra updates {}, out of order {}, unmarked {}, echoes to writer {}, decode errors {}, SyncStep2 to readers {}",
        extra,
        sum(|l| l.out_of_order),
        sum(|l| l.unmarked),
        wlog.echoes,
        sum(|l| l.decode_errors),
        sum(|l| l.sync_step2)
    );
    println!(
        "other frames        readers: SyncStep1 {}, awareness {}, other {}; writer: {:?}",
        sum(|l| l.sync_step1),
        sum(|l| l.awareness),
        sum(|l| l.other),
        wlog.other_frames
    );
    if !early.is_empty() {
        println!("sockets ended early {}", early.len());
        for line in early.iter().take(5) {
            println!("                    {line}");
        }
    }
    if latencies.is_empty() {
        println!("fan-out latency     no deliveries");
    } else {
        let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
        println!(
            "fan-out latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (mean {:.2}, n {})",
            pct(&latencies, 50.0),
            pct(&latencies, 90.0),
            pct(&latencies, 99.0),
            pct(&latencies, 100.0),
            mean,
            latencies.len()
        );
    }
    let self_window = cpu_self_end - cpu_self_at_measure;
    println!(
        "load generator CPU  {:.2} s in the {:.2} s measured window ({:.1}% of one core); {:.2} s whole run ({} runtime)",
        self_window,
        window,
        100.0 * self_window / window,
        cpu_self_end - cpu_at_launch,
        if args.threads <= 1 { "current-thread".to_string() } else { format!("{}-thread", args.threads) }
    );
    let mut servers_total = 0.0;
    if !servers.is_empty() {
        let mut total = 0.0;
        for (s, (after, rss)) in servers.iter().zip(&server_after) {
            let used = after - s.before;
            if used.is_finite() {
                total += used;
            }
            println!(
                "server CPU          pid {} ({}): {:.2} s ({:.1}% of one core), RSS {} MiB at the end",
                s.pid,
                s.comm,
                used,
                100.0 * used / window,
                rss.map(|k| format!("{:.1}", k as f64 / 1024.0)).unwrap_or_else(|| "?".into())
            );
        }
        println!(
            "server CPU total    {:.2} s in the {:.2} s measured window ({:.1}% of one core; /proc ticks are 10 ms)",
            total,
            window,
            100.0 * total / window
        );
        servers_total = total;
    }
    if let (Some((busy0, total0)), Some((busy1, total1))) = (machine_before, machine_after) {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let busy = busy1 - busy0;
        let server_and_self = self_window + servers_total;
        println!(
            "machine CPU         {:.2} s busy of {:.2} s on {} cores ({:.0}%); {:.2} s of it neither this load generator nor the server",
            busy,
            total1 - total0,
            cores,
            100.0 * busy / (total1 - total0).max(f64::MIN_POSITIVE),
            (busy - server_and_self).max(0.0)
        );
    }
    let lost = expected.saturating_sub(delivered);
    if lost > 0 || extra > 0 || !early.is_empty() {
        println!(
            "RESULT              FAIL: lost {lost}, extra {extra}, sockets ended early {}",
            early.len()
        );
        std::process::exit(2);
    }
    println!("RESULT              ok");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_in_the_query() {
        assert_eq!(room_url("ws://h/rooms/", "r1", None), "ws://h/rooms/r1");
        assert_eq!(
            room_url("ws://h/rooms", "r1", Some("aB-_9")),
            "ws://h/rooms/r1?token=aB-_9"
        );
        assert_eq!(
            room_url("ws://h", "r", Some("a+b/=")),
            "ws://h/r?token=a%2Bb%2F%3D"
        );
    }
}
