//! `exec-load`: the code-execution benchmark client (bench/run-exec-bench.sh drives it).
//!
//! ```text
//! exec-load latency    --url URL --program python|c [--runs 50] [--warmup 5] [--poll-ms 3] [--gap-ms 0] [--docker-events]
//! exec-load throughput --url URL --program python   [--runs 200] [--poll-ms 25] [--window 32] [--timeout-s 300]
//! exec-load baseline   --program python|c [--variant bare|docker|both] [--runs 50] [--warmup 3]
//! exec-load report     FILE
//! ```
//!
//! - `latency`: one submission at a time: POST /v1/submissions, then GET the record every
//!   `--poll-ms` until its status is terminal; submit-to-result = POST sent to terminal record
//!   seen; the next submission goes `--gap-ms` after that (0: at once). Every run must end `ok` with the expected stdout. Besides the client's figures it
//!   splits each run with the record's own timestamps (same host, same clock): accept (client
//!   send -> `created_at`), queue (`created_at` -> `started_at`: the fleet's poll and pick-up),
//!   sandbox (`started_at` -> `finished_at`), and seen (`finished_at` -> the poll that saw it).
//!   With `--docker-events` it also watches `docker events` for the sandbox containers and splits
//!   the sandbox step at the container's `die` event.
//! - `throughput`: all `--runs` submissions sent at once (concurrently), then the oldest
//!   `--window` unfinished ones polled every `--poll-ms` until all are terminal or
//!   `--timeout-s` passes. Throughput = runs that ended `ok` with the expected stdout / (first
//!   POST -> last result seen). Lost = runs - those (a rejected POST, another status, wrong
//!   output, or no result by the timeout).
//! - `baseline`: the same program without CodeBox: `bare` runs it as a host process
//!   (`python3 main.py`; for C `gcc -O2 -std=gnu17 -pipe -o main main.c -lm && ./main`, the
//!   runner image's flags), `docker` runs `docker run --rm -i --network none IMAGE` per run: the
//!   runner image's own command, the CodeBox supervisor, fed the program on stdin in its
//!   protocol, so it does the sandbox's steps (python: syntax check + run; C: compile + run).
//! - `report`: reads the JSON lines the other modes appended with `--json-out FILE` and prints
//!   one table against the targets (p50 within 3x of the bare process, at least 15 runs/s,
//!   0 lost). Exits 1 if a target is missed or a run failed verification.
//!
//! Every mode verifies each run's output; a mode with a failed run exits 1 after printing.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use codebox_sandbox::protocol::{stdin_payload, File, Mode, PROTOCOL};
use codebox_submission::Language;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinSet;

const USAGE: &str = "usage:
  exec-load latency    --url URL --program python|c [--runs 50] [--warmup 5] [--poll-ms 3] [--gap-ms 0] [--docker-events]
  exec-load throughput --url URL --program python [--runs 200] [--poll-ms 25] [--window 32] [--timeout-s 300]
  exec-load baseline   --program python|c [--variant bare|docker|both] [--runs 50] [--warmup 3]
                       [--python /usr/bin/python3] [--gcc gcc]
  exec-load report     FILE

  --url        the exec API, e.g. http://127.0.0.1:8788
  --program    a built-in program: python = print(1), c = a hello world
  --language, --source, --expect
               override the program's language, source and expected stdout
  --json-out   append this run's result as one JSON line to FILE (for `report`)";

/// A program to run and what it must print.
#[derive(Debug, Clone)]
struct Program {
    name: String,
    language: String,
    source: String,
    expect: String,
}

const C_HELLO: &str =
    "#include <stdio.h>\n\nint main(void) {\n    puts(\"hello, world\");\n    return 0;\n}\n";

fn program(opts: &Opts) -> Result<Program> {
    let name = opts.get("program").unwrap_or("python").to_string();
    let mut p = match name.as_str() {
        "python" => Program {
            name,
            language: "python".into(),
            source: "print(1)\n".into(),
            expect: "1\n".into(),
        },
        "c" => Program {
            name,
            language: "c".into(),
            source: C_HELLO.into(),
            expect: "hello, world\n".into(),
        },
        other => Program {
            name: other.into(),
            language: other.into(),
            source: String::new(),
            expect: String::new(),
        },
    };
    if let Some(l) = opts.get("language") {
        p.language = l.into();
    }
    if let Some(s) = opts.get("source") {
        p.source = s.into();
    }
    if let Some(e) = opts.get("expect") {
        p.expect = e.into();
    }
    if p.source.is_empty() {
        bail!(
            "program '{}' is not built in: give --language, --source and --expect",
            p.name
        );
    }
    Ok(p)
}

/// `--key value` options and `--flag`s.
struct Opts {
    values: BTreeMap<String, String>,
    flags: Vec<String>,
}

const FLAGS: [&str; 1] = ["docker-events"];

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut opts = Opts {
            values: BTreeMap::new(),
            flags: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| anyhow!("unexpected argument '{arg}'\n{USAGE}"))?;
            if FLAGS.contains(&key) {
                opts.flags.push(key.to_string());
            } else {
                let value = it
                    .next()
                    .ok_or_else(|| anyhow!("--{key} needs a value\n{USAGE}"))?;
                opts.values.insert(key.to_string(), value.clone());
            }
        }
        Ok(opts)
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
    fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow!("--{key}: '{v}' is not a number")),
        }
    }
    fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }
    fn url(&self) -> Result<String> {
        Ok(self
            .get("url")
            .ok_or_else(|| anyhow!("--url is required\n{USAGE}"))?
            .trim_end_matches('/')
            .to_string())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("exec-load: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// Ok(false): the mode ran but a run failed verification (or, for `report`, a target was missed).
fn run(args: &[String]) -> Result<bool> {
    let Some(mode) = args.first() else {
        bail!("{USAGE}")
    };
    if mode == "report" {
        let path = args
            .get(1)
            .ok_or_else(|| anyhow!("report needs a FILE\n{USAGE}"))?;
        return report(path);
    }
    if mode == "-h" || mode == "--help" {
        println!("{USAGE}");
        return Ok(true);
    }
    let opts = Opts::parse(&args[1..])?;
    // One thread: the client should take as little of the machine as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (ok, result) = match mode.as_str() {
        "latency" => rt.block_on(latency(&opts))?,
        "throughput" => rt.block_on(throughput(&opts))?,
        "baseline" => baseline(&opts)?,
        other => bail!("unknown mode '{other}'\n{USAGE}"),
    };
    if let Some(path) = opts.get("json-out") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {path}"))?;
        writeln!(file, "{result}")?;
    }
    Ok(ok)
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of unsorted samples (NaN when empty).
fn pct(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

fn summary(samples: &[f64]) -> Value {
    json!({
        "n": samples.len(),
        "p50_ms": round(pct(samples, 50.0)),
        "p90_ms": round(pct(samples, 90.0)),
        "p99_ms": round(pct(samples, 99.0)),
        "max_ms": round(pct(samples, 100.0)),
        "min_ms": round(pct(samples, 0.0)),
    })
}

fn round(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 10.0).round() / 10.0)
    } else {
        Value::Null
    }
}

fn line(label: &str, samples: &[f64]) -> String {
    format!(
        "{label:<28} p50 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1}  min {:>7.1} ms  (n={})",
        pct(samples, 50.0),
        pct(samples, 90.0),
        pct(samples, 99.0),
        pct(samples, 100.0),
        pct(samples, 0.0),
        samples.len()
    )
}

/// CPU seconds this process has used (utime + stime; /proc counts in USER_HZ = 100).
fn self_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after_name.split(' ').collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn wall_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn record_nanos(record: &Value, field: &str) -> Option<i64> {
    record
        .get(field)?
        .as_str()?
        .parse::<DateTime<Utc>>()
        .ok()?
        .timestamp_nanos_opt()
}

// ---------------------------------------------------------------------------------------------
// The exec API

type Http = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> Http {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn call(http: &Http, method: Method, uri: &str, body: Vec<u8>) -> Result<(u16, Value)> {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = http
        .request(request)
        .await
        .with_context(|| format!("requesting {uri}"))?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((status, value))
}

async fn submit(http: &Http, url: &str, p: &Program) -> Result<String> {
    let body =
        serde_json::to_vec(&json!({ "language": p.language, "source": p.source, "stdin": "" }))?;
    let (status, value) = call(http, Method::POST, &format!("{url}/v1/submissions"), body).await?;
    if status != 202 {
        bail!("POST /v1/submissions answered {status}: {value}");
    }
    value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no id in {value}"))
}

async fn fetch(http: &Http, url: &str, id: &str) -> Result<Value> {
    let (status, value) = call(
        http,
        Method::GET,
        &format!("{url}/v1/submissions/{id}"),
        Vec::new(),
    )
    .await?;
    if status != 200 {
        bail!("GET /v1/submissions/{id} answered {status}: {value}");
    }
    Ok(value)
}

fn status_of(record: &Value) -> &str {
    record.get("status").and_then(Value::as_str).unwrap_or("?")
}

fn is_terminal(status: &str) -> bool {
    !matches!(status, "queued" | "running")
}

/// None if the record is `ok` with the expected stdout, else why not.
fn check(record: &Value, p: &Program) -> Option<String> {
    let status = status_of(record);
    let stdout = record.get("stdout").and_then(Value::as_str).unwrap_or("");
    if status != "ok" {
        let stderr = record.get("stderr").and_then(Value::as_str).unwrap_or("");
        let compile = record
            .get("compile_output")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Some(format!(
            "status {status} (stderr {stderr:?}, compile output {compile:?})"
        ));
    }
    if stdout != p.expect {
        return Some(format!("stdout {stdout:?}, expected {:?}", p.expect));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// latency

/// `docker events` for sandbox containers: (action, time in ns since the epoch).
struct DockerEvents {
    events: Arc<Mutex<Vec<(String, i64)>>>,
    child: tokio::process::Child,
}

impl DockerEvents {
    async fn start() -> Result<DockerEvents> {
        let mut child = tokio::process::Command::new("docker")
            .args([
                "events",
                "--filter",
                "type=container",
                "--filter",
                "label=codebox.sandbox=1",
                "--format",
                "{{.Action}} {{.TimeNano}}",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting `docker events`")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut parts = line.split_whitespace();
                if let (Some(action), Some(t)) = (parts.next(), parts.next()) {
                    if let Ok(t) = t.parse::<i64>() {
                        sink.lock().unwrap().push((action.to_string(), t));
                    }
                }
            }
        });
        // `docker events` subscribes asynchronously; give it a moment before the first run.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(DockerEvents { events, child })
    }

    /// The first `action` event in [from, to] (ns).
    fn first(&self, action: &str, from: i64, to: i64) -> Option<i64> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, t)| a == action && *t >= from && *t <= to)
            .map(|(_, t)| *t)
            .min()
    }

    fn count(&self, action: &str, from: i64, to: i64) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, t)| a == action && *t >= from && *t <= to)
            .count()
    }
}

async fn latency(opts: &Opts) -> Result<(bool, Value)> {
    let url = opts.url()?;
    let p = program(opts)?;
    let runs: usize = opts.num("runs", 50)?;
    let warmup: usize = opts.num("warmup", 5)?;
    let poll = Duration::from_micros((opts.num::<f64>("poll-ms", 3.0)? * 1000.0) as u64);
    let gap = Duration::from_micros((opts.num::<f64>("gap-ms", 0.0)? * 1000.0) as u64);
    let http = http_client();
    let mut events = if opts.flag("docker-events") {
        Some(DockerEvents::start().await?)
    } else {
        None
    };

    let mut total = Vec::new();
    let mut post = Vec::new();
    let (mut accept, mut queue, mut sandbox, mut seen) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut to_die, mut die_to_result, mut starts_during) = (Vec::new(), Vec::new(), Vec::new());
    // Submit-to-result split by whether another container started (the pool refilling)
    // while this run's container was running.
    let (mut with_start, mut without_start) = (Vec::new(), Vec::new());
    let mut fleet_time = Vec::new();
    let mut polls = Vec::new();
    let mut failures = Vec::new();

    for i in 0..warmup + runs {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        let sent_wall = SystemTime::now();
        let t0 = Instant::now();
        let id = submit(&http, &url, &p).await?;
        let posted = t0.elapsed();
        let mut n_polls = 0;
        let record = loop {
            tokio::time::sleep(poll).await;
            n_polls += 1;
            let record = fetch(&http, &url, &id).await?;
            if is_terminal(status_of(&record)) {
                break record;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!(
                    "submission {id} not finished after 60 s (status {})",
                    status_of(&record)
                );
            }
        };
        let elapsed = t0.elapsed();
        let seen_wall = wall_nanos(SystemTime::now());
        if i < warmup {
            if let Some(why) = check(&record, &p) {
                eprintln!("warm-up run {i}: {why}");
            }
            continue;
        }
        if let Some(why) = check(&record, &p) {
            failures.push(format!("run {i} ({id}): {why}"));
            continue;
        }
        total.push(ms(elapsed));
        post.push(ms(posted));
        polls.push(n_polls as f64);
        if let Some(t) = record.get("time_ms").and_then(Value::as_f64) {
            fleet_time.push(t);
        }
        let (c, s, f) = (
            record_nanos(&record, "created_at"),
            record_nanos(&record, "started_at"),
            record_nanos(&record, "finished_at"),
        );
        if let (Some(c), Some(s), Some(f)) = (c, s, f) {
            let sent = wall_nanos(sent_wall);
            accept.push((c - sent) as f64 / 1e6);
            queue.push((s - c) as f64 / 1e6);
            sandbox.push((f - s) as f64 / 1e6);
            seen.push((seen_wall - f) as f64 / 1e6);
            if let Some(ev) = &events {
                // Other containers' starts land in this window too (the pool refilling).
                starts_during.push(ev.count("start", s, f) as f64);
                let die = ev.first("die", s, f + 1_000_000);
                if let Some(die) = die {
                    to_die.push((die - s) as f64 / 1e6);
                    die_to_result.push((f - die) as f64 / 1e6);
                }
                if ev.count("start", s, die.unwrap_or(f)) > 0 {
                    with_start.push(ms(elapsed));
                } else {
                    without_start.push(ms(elapsed));
                }
            }
        }
    }
    if let Some(ev) = events.as_mut() {
        let _ = ev.child.kill().await;
    }

    println!("## latency: {} through the exec API ({url})", p.name);
    println!(
        "{runs} sequential runs after {warmup} warm-up, {:.0} ms apart; GET every {:.1} ms until terminal",
        ms(gap),
        ms(poll)
    );
    println!("{}", line("submit-to-result", &total));
    println!("{}", line("  POST round trip", &post));
    println!("{}", line("  accept (send->created_at)", &accept));
    println!("{}", line("  queue (created->started)", &queue));
    println!("{}", line("  sandbox (started->finished)", &sandbox));
    if !to_die.is_empty() {
        println!("{}", line("    started->container die", &to_die));
        println!(
            "{}",
            line(
                "    container die->finished (<0: result first)",
                &die_to_result
            )
        );
        println!(
            "    container starts during a run: mean {:.2}",
            starts_during.iter().sum::<f64>() / starts_during.len().max(1) as f64
        );
        println!("{}", line("  runs overlapping a start", &with_start));
        println!("{}", line("  runs without one", &without_start));
    }
    println!("{}", line("  seen (finished->poll saw)", &seen));
    println!("{}", line("fleet time_ms (RUN->END or exit)", &fleet_time));
    println!(
        "GETs per run: median {}; client CPU {:.2} s",
        pct(&polls, 50.0),
        self_cpu_s()
    );
    for f in &failures {
        println!("FAILED {f}");
    }
    println!();
    let result = json!({
        "kind": "latency",
        "program": p.name,
        "runs": runs,
        "warmup": warmup,
        "poll_ms": ms(poll),
        "gap_ms": ms(gap),
        "failures": failures.len(),
        "total": summary(&total),
        "phases_p50_ms": {
            "post": round(pct(&post, 50.0)),
            "accept": round(pct(&accept, 50.0)),
            "queue": round(pct(&queue, 50.0)),
            "sandbox": round(pct(&sandbox, 50.0)),
            "started_to_die": round(pct(&to_die, 50.0)),
            "die_to_finished": round(pct(&die_to_result, 50.0)),
            "seen": round(pct(&seen, 50.0)),
        },
        "overlapping_start": summary(&with_start),
        "without_start": summary(&without_start),
        "client_cpu_s": round(self_cpu_s()),
        "fleet_time_ms_p50": round(pct(&fleet_time, 50.0)),
    });
    Ok((failures.is_empty(), result))
}

// ---------------------------------------------------------------------------------------------
// throughput

async fn throughput(opts: &Opts) -> Result<(bool, Value)> {
    let url = opts.url()?;
    let p = program(opts)?;
    let runs: usize = opts.num("runs", 200)?;
    let window: usize = opts.num("window", 32)?;
    let poll = Duration::from_micros((opts.num::<f64>("poll-ms", 25.0)? * 1000.0) as u64);
    let timeout = Duration::from_secs_f64(opts.num("timeout-s", 300.0)?);
    let http = http_client();

    let t0 = Instant::now();
    let mut submits = JoinSet::new();
    for i in 0..runs {
        let (http, url, p) = (http.clone(), url.clone(), p.clone());
        submits.spawn(async move { (i, submit(&http, &url, &p).await, Instant::now()) });
    }
    let mut pending: Vec<(usize, String, Instant)> = Vec::new(); // (index, id, when accepted)
    let mut rejected = Vec::new();
    let mut last_accepted = t0;
    while let Some(joined) = submits.join_next().await {
        let (i, result, at) = joined?;
        last_accepted = last_accepted.max(at);
        match result {
            Ok(id) => pending.push((i, id, at)),
            Err(e) => rejected.push(format!("submission {i}: {e:#}")),
        }
    }
    pending.sort_by_key(|(i, _, _)| *i);
    let submit_span = last_accepted - t0;

    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut ok = 0usize;
    let mut last_result = t0;
    let mut turnaround = Vec::new(); // accepted -> result seen
    let (mut first_created, mut last_finished) = (i64::MAX, i64::MIN);
    let mut gets = 0usize;
    while !pending.is_empty() && t0.elapsed() < timeout {
        let mut round = JoinSet::new();
        for (slot, (_, id, _)) in pending.iter().take(window).enumerate() {
            let (http, url, id) = (http.clone(), url.clone(), id.clone());
            round.spawn(async move { (slot, fetch(&http, &url, &id).await, Instant::now()) });
        }
        let mut done = Vec::new();
        while let Some(joined) = round.join_next().await {
            let (slot, record, at) = joined?;
            gets += 1;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("poll failed: {e:#}");
                    continue;
                }
            };
            let status = status_of(&record).to_string();
            if !is_terminal(&status) {
                continue;
            }
            let (i, id, accepted) = &pending[slot];
            *statuses.entry(status).or_default() += 1;
            match check(&record, &p) {
                None => {
                    ok += 1;
                    last_result = last_result.max(at);
                    turnaround.push(ms(at - *accepted));
                }
                Some(why) => failures.push(format!("submission {i} ({id}): {why}")),
            }
            if let Some(c) = record_nanos(&record, "created_at") {
                first_created = first_created.min(c);
            }
            if let Some(f) = record_nanos(&record, "finished_at") {
                last_finished = last_finished.max(f);
            }
            done.push(slot);
        }
        done.sort_unstable();
        for slot in done.into_iter().rev() {
            pending.remove(slot);
        }
        if !pending.is_empty() {
            tokio::time::sleep(poll).await;
        }
    }
    for (i, id, _) in &pending {
        failures.push(format!(
            "submission {i} ({id}): no terminal status after {:.0} s",
            timeout.as_secs_f64()
        ));
    }
    let lost = runs - ok;
    let wall = last_result - t0;
    let rate = if ok > 0 {
        ok as f64 / wall.as_secs_f64()
    } else {
        0.0
    };
    let server_span = (last_finished - first_created) as f64 / 1e9;
    let server_rate = if ok > 0 && server_span > 0.0 {
        ok as f64 / server_span
    } else {
        0.0
    };

    println!(
        "## throughput: {runs} x {} submitted at once through the exec API ({url})",
        p.name
    );
    println!(
        "all {runs} POSTs answered {:.0} ms after the first was sent; {} rejected",
        ms(submit_span),
        rejected.len()
    );
    println!(
        "first POST -> last result seen: {:.2} s => {:.1} runs/s ({} ok, {} lost)",
        wall.as_secs_f64(),
        rate,
        ok,
        lost
    );
    println!("first created_at -> last finished_at (server clock): {server_span:.2} s => {server_rate:.1} runs/s");
    println!("{}", line("accepted -> result seen", &turnaround));
    println!(
        "statuses: {statuses:?}; {gets} GETs (oldest {window} pending polled every {:.0} ms); client CPU {:.2} s",
        ms(poll),
        self_cpu_s()
    );
    for f in rejected.iter().chain(&failures).take(20) {
        println!("FAILED {f}");
    }
    println!();
    let result = json!({
        "kind": "throughput",
        "program": p.name,
        "runs": runs,
        "ok": ok,
        "lost": lost,
        "rejected": rejected.len(),
        "wall_s": round(wall.as_secs_f64() * 1000.0).as_f64().map(|x| x / 1000.0),
        "runs_per_s": round(rate),
        "server_runs_per_s": round(server_rate),
        "submit_span_ms": round(ms(submit_span)),
        "turnaround": summary(&turnaround),
        "statuses": statuses,
        "client_cpu_s": round(self_cpu_s()),
    });
    Ok((lost == 0, result))
}

// ---------------------------------------------------------------------------------------------
// baseline

fn baseline(opts: &Opts) -> Result<(bool, Value)> {
    let p = program(opts)?;
    let runs: usize = opts.num("runs", 50)?;
    let warmup: usize = opts.num("warmup", 3)?;
    let variant = opts.get("variant").unwrap_or("both");
    let mut ok = true;
    let mut result =
        json!({ "kind": "baseline", "program": p.name, "runs": runs, "warmup": warmup });
    if variant == "bare" || variant == "both" {
        let (samples, failures) = bare(opts, &p, runs, warmup)?;
        println!("## baseline: {} as a bare host process", p.name);
        println!("{}", line(&format!("{} bare", p.name), &samples));
        for f in &failures {
            println!("FAILED {f}");
        }
        println!();
        ok &= failures.is_empty();
        result["bare"] = summary(&samples);
        result["bare"]["failures"] = json!(failures.len());
    }
    if variant == "docker" || variant == "both" {
        let (samples, failures) = docker_run(&p, runs, warmup)?;
        println!(
            "## baseline: {} with `docker run --rm -i --network none` per run",
            p.name
        );
        println!("{}", line(&format!("{} docker run", p.name), &samples));
        for f in &failures {
            println!("FAILED {f}");
        }
        println!();
        ok &= failures.is_empty();
        result["docker"] = summary(&samples);
        result["docker"]["failures"] = json!(failures.len());
    }
    Ok((ok, result))
}

fn bare(opts: &Opts, p: &Program, runs: usize, warmup: usize) -> Result<(Vec<f64>, Vec<String>)> {
    let dir = std::env::temp_dir().join(format!("exec-load-{}-{}", std::process::id(), p.name));
    std::fs::create_dir_all(&dir)?;
    let python = opts.get("python").unwrap_or("/usr/bin/python3").to_string();
    let gcc = opts.get("gcc").unwrap_or("gcc").to_string();
    let (file, steps): (&str, Vec<Vec<String>>) = match p.language.as_str() {
        "python" => ("main.py", vec![vec![python, "main.py".into()]]),
        "c" => (
            "main.c",
            vec![
                ["-O2", "-std=gnu17", "-pipe", "-o", "main", "main.c", "-lm"]
                    .iter()
                    .fold(vec![gcc], |mut v, a| {
                        v.push(a.to_string());
                        v
                    }),
                vec!["./main".into()],
            ],
        ),
        other => bail!("no bare baseline for language '{other}'"),
    };
    std::fs::write(dir.join(file), &p.source)?;
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for i in 0..warmup + runs {
        let t0 = Instant::now();
        let mut stdout = Vec::new();
        let mut failed = None;
        for step in &steps {
            let out = Command::new(&step[0])
                .args(&step[1..])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {}", step[0]))?;
            if !out.status.success() {
                failed = Some(format!(
                    "{} exited {}: {}",
                    step[0],
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
                break;
            }
            stdout = out.stdout;
        }
        let elapsed = t0.elapsed();
        if i < warmup {
            continue;
        }
        match failed {
            Some(why) => failures.push(format!("run {i}: {why}")),
            None if stdout != p.expect.as_bytes() => failures.push(format!(
                "run {i}: stdout {:?}, expected {:?}",
                String::from_utf8_lossy(&stdout),
                p.expect
            )),
            None => samples.push(ms(elapsed)),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((samples, failures))
}

/// The label on the containers `docker run` makes here, so a script can find leftovers.
const BENCH_LABEL: &str = "codebox.bench=exec-load";

fn docker_run(p: &Program, runs: usize, warmup: usize) -> Result<(Vec<f64>, Vec<String>)> {
    let image = format!("codebox-runner-{}:latest", p.language);
    // The supervisor's protocol (codebox_sandbox::protocol): a request of one file, then
    // EOF; the program's output runs from RUN to END.
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let language = Language::from_id(&p.language)
        .ok_or_else(|| anyhow!("unknown language {:?}", p.language))?;
    let entry = File {
        name: language.toolchain().source_file,
        content: p.source.as_bytes(),
        executable: false,
    };
    let input = stdin_payload(TOKEN, Mode::Run, &[entry], b"");
    let (run_marker, end_marker) = (
        format!("CODEBOX/{PROTOCOL} RUN\n"),
        format!("CODEBOX/{PROTOCOL} END {TOKEN} "),
    );
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for i in 0..warmup + runs {
        let t0 = Instant::now();
        let mut child = Command::new("docker")
            .args([
                "run",
                "--rm",
                "-i",
                "--network",
                "none",
                "--label",
                BENCH_LABEL,
                &image,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running docker")?;
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no stdin"))?
            .write_all(&input)?; // dropped: EOF
        let out = child.wait_with_output()?;
        let elapsed = t0.elapsed();
        if i < warmup {
            continue;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let program_out = stdout
            .split_once(&run_marker)
            .and_then(|(_, rest)| rest.split_once(&end_marker))
            .map(|(output, _)| output);
        match program_out {
            Some(o) if out.status.success() && o == p.expect => samples.push(ms(elapsed)),
            _ => failures.push(format!(
                "run {i}: exit {}, stdout {stdout:?}, stderr {:?}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    Ok((samples, failures))
}

// ---------------------------------------------------------------------------------------------
// report

fn report(path: &str) -> Result<bool> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let results: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let find = |kind: &str, program: &str| {
        results
            .iter()
            .rev()
            .find(|r| r["kind"] == kind && r["program"] == program)
    };
    let f = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    let mut all_ok = true;

    println!("| program | bare process p50 / p99 | `docker run --rm` p50 / p99 | CodeBox stack p50 / p99 (max) | stack p50 / bare p50 | target p50 <= 3x bare |");
    println!("|---|---|---|---|---|---|");
    let mut programs: Vec<&str> = Vec::new();
    for r in &results {
        if let Some(p) = r["program"].as_str() {
            if r["kind"] != "throughput" && !programs.contains(&p) {
                programs.push(p);
            }
        }
    }
    for program in &programs {
        let base = find("baseline", program);
        let lat = find("latency", program);
        let bare = base.map(|b| &b["bare"]);
        let docker = base.map(|b| &b["docker"]);
        let cell = |v: Option<&Value>| match v {
            Some(v) if !v.is_null() => format!("{} / {} ms", f(&v["p50_ms"]), f(&v["p99_ms"])),
            _ => "-".into(),
        };
        let stack = lat.map(|l| {
            format!(
                "{} / {} ms ({})",
                f(&l["total"]["p50_ms"]),
                f(&l["total"]["p99_ms"]),
                f(&l["total"]["max_ms"])
            )
        });
        let ratio = match (
            bare.and_then(|b| b["p50_ms"].as_f64()),
            lat.and_then(|l| l["total"]["p50_ms"].as_f64()),
        ) {
            (Some(b), Some(s)) if b > 0.0 => Some(s / b),
            _ => None,
        };
        let met = ratio.map(|r| r <= 3.0);
        if met != Some(true) {
            all_ok = false;
        }
        for r in [base, lat].into_iter().flatten() {
            let failures = r["failures"].as_u64().unwrap_or(0)
                + r["bare"]["failures"].as_u64().unwrap_or(0)
                + r["docker"]["failures"].as_u64().unwrap_or(0);
            if failures > 0 {
                all_ok = false;
            }
        }
        println!(
            "| {program} | {} | {} | {} | {} | {} |",
            cell(bare),
            cell(docker),
            stack.unwrap_or_else(|| "-".into()),
            ratio
                .map(|r| format!("{r:.1}x"))
                .unwrap_or_else(|| "-".into()),
            match met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "-",
            }
        );
    }
    println!();
    for program in &programs {
        if let Some(l) = find("latency", program) {
            let ph = &l["phases_p50_ms"];
            println!(
                "{program} stack p50 phases (ms): POST {}, accept {}, queue {}, sandbox {} (started->die {}, die->finished {}), seen {}; fleet time_ms p50 {}",
                f(&ph["post"]),
                f(&ph["accept"]),
                f(&ph["queue"]),
                f(&ph["sandbox"]),
                f(&ph["started_to_die"]),
                f(&ph["die_to_finished"]),
                f(&ph["seen"]),
                f(&l["fleet_time_ms_p50"])
            );
            if l["overlapping_start"]["n"].as_u64().unwrap_or(0)
                + l["without_start"]["n"].as_u64().unwrap_or(0)
                > 0
            {
                println!(
                    "{program} stack p50 of runs during which another container started (the pool refilling): {} ms (n={}); of the others: {} ms (n={})",
                    f(&l["overlapping_start"]["p50_ms"]),
                    l["overlapping_start"]["n"],
                    f(&l["without_start"]["p50_ms"]),
                    l["without_start"]["n"]
                );
            }
        }
    }
    println!();
    println!("| throughput run | runs/s (client) | runs/s (server clock) | ok | lost | target |");
    println!("|---|---|---|---|---|---|");
    for r in results.iter().filter(|r| r["kind"] == "throughput") {
        let rate = r["runs_per_s"].as_f64().unwrap_or(0.0);
        let lost = r["lost"].as_u64().unwrap_or(u64::MAX);
        let met = rate >= 15.0 && lost == 0;
        all_ok &= met;
        println!(
            "| {} x {} at once | {} | {} | {} | {} | >= 15 runs/s, 0 lost: {} |",
            r["runs"],
            r["program"].as_str().unwrap_or("?"),
            f(&r["runs_per_s"]),
            f(&r["server_runs_per_s"]),
            r["ok"],
            r["lost"],
            if met { "met" } else { "**missed**" }
        );
    }
    Ok(all_ok)
}
