//! The whole execution pipeline with real parts: the exec API's router, the embedded queue and
//! store (SQLite, one connection per side as the two local processes hold), the worker loop,
//! and the Docker sandbox. Also the fleet binary itself, stopped by SIGTERM mid-run.
//!
//! Needs the Docker engine and runner images (scripts/docker.sh, scripts/images.sh).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use codebox_access::RateLimit;
use codebox_exec_fleet::sandbox::{Sandbox, SandboxConfig};
use codebox_exec_fleet::worker::{
    reap_dead_letters, run_worker, SandboxRunner, Stores, WorkerConfig,
};
use codebox_submission::embedded::Embedded;
use codebox_submission::{
    Job, JobQueue, Language, Limits, Payload, Program, Status, SubmissionStore,
};
use exec_lambda::{router, AppState, Gate};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt;

const MAX_RECEIVES: u32 = 2;
/// The API serves loopback callers when no edge secret is set: these requests come from one.
const LOCAL_CALLER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The API and (optionally) a running worker and dead-letter reaper over one database file.
struct Stack {
    api: axum::Router,
    /// The fleet's side of the database, for playing a worker by hand.
    fleet_db: Embedded,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
}

/// A worker that notices a lost job quickly.
fn fast_worker() -> WorkerConfig {
    WorkerConfig {
        concurrency: 2,
        poll_wait: Duration::from_millis(200),
        visibility: Duration::from_secs(2),
        extend_every: Duration::from_millis(700),
    }
}

impl Stack {
    async fn start(with_fleet: bool) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("codebox.db");
        let api_db = Embedded::open(&db, MAX_RECEIVES).unwrap();
        let fleet_db = Embedded::open(&db, MAX_RECEIVES).unwrap();
        let api = router(AppState {
            queue: Arc::new(api_db.clone()),
            store: Arc::new(api_db.clone()),
            payloads: Arc::new(api_db.clone()),
            rates: Arc::new(api_db),
            limits: Limits::default(),
            run_limit: RateLimit::RUNS,
            gate: Gate::Loopback,
        });
        let sandbox = Sandbox::connect(SandboxConfig { pool_size: 0, ..SandboxConfig::default() })
            .await
            .expect("the pipeline tests need the Docker engine and runner images (scripts/docker.sh, scripts/images.sh)");
        let (stop, _) = watch::channel(false);
        let mut stack = Stack {
            api,
            fleet_db,
            stop,
            tasks: Vec::new(),
            sandbox,
            _dir: dir,
        };
        if with_fleet {
            stack.start_worker();
            stack.start_reaper();
        }
        stack
    }

    fn start_worker(&mut self) {
        let db = Arc::new(self.fleet_db.clone());
        let worker = run_worker(
            Stores {
                queue: db.clone(),
                records: db.clone(),
                payloads: db,
            },
            Arc::new(SandboxRunner {
                sandbox: self.sandbox.clone(),
                edge: None,
                tests_at_once: 2,
            }),
            fast_worker(),
            self.stop.subscribe(),
        );
        self.tasks.push(tokio::spawn(worker));
    }

    fn start_reaper(&mut self) {
        let db = Arc::new(self.fleet_db.clone());
        self.tasks.push(tokio::spawn(reap_dead_letters(
            db.clone(),
            db,
            Duration::from_millis(200),
            self.stop.subscribe(),
        )));
    }

    async fn call(&self, method: &str, uri: &str, body: Value) -> Value {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(LOCAL_CALLER));
        let response = self.api.clone().oneshot(request).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn submit(&self, language: &str, source: &str, stdin: &str) -> String {
        let accepted = self
            .call(
                "POST",
                "/v1/submissions",
                json!({"language": language, "source": source, "stdin": stdin}),
            )
            .await;
        assert_eq!(accepted["status"], "queued", "{accepted}");
        accepted["id"].as_str().unwrap().to_owned()
    }

    async fn record(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/submissions/{id}"), Value::Null)
            .await
    }

    async fn wait_terminal(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let record = self.record(id).await;
            let status =
                Status::parse(record["status"].as_str().unwrap_or_default()).expect("a status");
            if status.is_terminal() {
                return record;
            }
            assert!(Instant::now() < deadline, "{id} never finished: {record}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.sandbox.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_runs_to_its_result() {
    let stack = Stack::start(true).await;
    let id = stack
        .submit(
            "python",
            "import sys\nprint(sys.stdin.read().upper(), end='')",
            "hello",
        )
        .await;
    let record = stack.wait_terminal(&id).await;
    assert_eq!(record["status"], "ok", "{record}");
    assert_eq!(record["stdout"], "HELLO");
    assert_eq!(record["exit_code"], 0);
    for stamp in ["created_at", "started_at", "finished_at"] {
        assert!(record[stamp].is_string(), "{stamp}: {record}");
    }
    let compiled = stack.submit("c", "int main(void){ return 3; }", "").await;
    let record = stack.wait_terminal(&compiled).await;
    assert_eq!(
        (record["status"].as_str(), record["exit_code"].as_i64()),
        (Some("runtime_error"), Some(3)),
        "{record}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_job_never_replaces_a_terminal_result() {
    let stack = Stack::start(true).await;
    let id = stack
        .submit("python", "import random\nprint(random.random())", "")
        .await;
    let first = stack.wait_terminal(&id).await;
    assert_eq!(first["status"], "ok");
    // The same job again, as SQS may deliver it twice: the worker must drop it.
    let duplicate = Job {
        id: id.clone(),
        language: Language::Python,
        payload: Payload::Inline(Program::single(
            Language::Python,
            "print('second')".into(),
            String::new(),
        )),
        room: None,
        run_credential: None,
    };
    stack.fleet_db.send(&duplicate).await.unwrap();
    // The worker polls every 200 ms; give it ample time, then the message must be gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = stack
        .fleet_db
        .receive(1, Duration::ZERO, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(left.is_empty(), "the worker deleted the duplicate");
    let after = stack.record(&id).await;
    assert_eq!(after, first, "the terminal record never changes");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_run_again() {
    let mut stack = Stack::start(false).await;
    let id = stack.submit("python", "print('survived')", "").await;
    // A worker takes the job, marks it running and dies without a result.
    let taken = stack
        .fleet_db
        .receive(1, Duration::from_secs(2), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    stack
        .fleet_db
        .mark_running(&id, chrono::Utc::now())
        .await
        .unwrap();
    // A live worker picks the job up once its visibility runs out.
    stack.start_worker();
    let record = stack.wait_terminal(&id).await;
    assert_eq!(
        (record["status"].as_str(), record["stdout"].as_str()),
        (Some("ok"), Some("survived\n")),
        "{record}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_ends_as_internal_error() {
    let mut stack = Stack::start(false).await;
    let id = stack.submit("python", "print(1)", "").await;
    // Workers that die holding the job, MAX_RECEIVES times.
    for _ in 0..MAX_RECEIVES {
        let taken = stack
            .fleet_db
            .receive(1, Duration::from_secs(3), Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let again = stack
        .fleet_db
        .receive(1, Duration::from_millis(300), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(again.is_empty(), "dead-lettered");
    stack.start_reaper();
    let record = stack.wait_terminal(&id).await;
    assert_eq!(record["status"], "internal_error", "{record}");
    assert!(
        record["stderr"]
            .as_str()
            .unwrap()
            .contains("dead-letter queue"),
        "{record}"
    );
    stack.stop().await;
}

/// The fleet binary finishes the run it holds when told to stop, then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_fleet_finish_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("codebox.db");
    let api_db = Embedded::open(&db, 3).unwrap();
    let api = router(AppState {
        queue: Arc::new(api_db.clone()),
        store: Arc::new(api_db.clone()),
        payloads: Arc::new(api_db.clone()),
        rates: Arc::new(api_db.clone()),
        limits: Limits::default(),
        run_limit: RateLimit::RUNS,
        gate: Gate::Loopback,
    });
    let mut fleet = spawn_fleet(&db);
    let mut request = Request::builder()
        .method("POST")
        .uri("/v1/submissions")
        .body(Body::from(
            json!({"language": "python", "source": "import time\ntime.sleep(1.5)\nprint('done')"})
                .to_string(),
        ))
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(LOCAL_CALLER));
    let accepted: Value = serde_json::from_slice(
        &api.oneshot(request)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while api_db
        .get(&id, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap()
        .status
        != Status::Running
    {
        assert!(Instant::now() < deadline, "the fleet never took the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = fleet.id().expect("pid") as i32;
    assert_eq!(send_sigterm(pid), 0, "SIGTERM sent");
    let status = tokio::time::timeout(Duration::from_secs(30), fleet.wait())
        .await
        .expect("the fleet exits")
        .unwrap();
    assert!(status.success(), "{status}");
    let record = api_db.get(&id, chrono::Utc::now()).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.stdout.as_str()),
        (Status::Ok, "done\n")
    );
}

fn spawn_fleet(db: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_exec-fleet"))
        .env(codebox_submission::config::BACKEND, "embedded")
        .env(codebox_submission::config::DB, db)
        .env(codebox_exec_fleet::config::POOL_SIZE, "0")
        .env(codebox_exec_fleet::config::POLL_WAIT_MS, "200")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("starting the fleet binary")
}

fn send_sigterm(pid: i32) -> i32 {
    // `kill` from the shell keeps this test free of libc bindings.
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map_or(-1, |s| s.code().unwrap_or(-1))
}
