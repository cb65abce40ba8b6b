//! The exec API through its real router over the embedded backend: the contract's happy
//! paths, every refusal with its status, its JSON error and nothing enqueued, the gate (the
//! edge secret, loopback callers locally), who the client is, and run limits shared by every
//! router over one database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::Utc;
use codebox_access::headers::{EDGE_SECRET_HEADER, ROOM_HEADER as ROOM};
use codebox_access::RateLimit;
use codebox_submission::aws::DynamoStore;
use codebox_submission::embedded::Embedded;
use codebox_submission::judge::TestCase;
use codebox_submission::project::ProjectFile;
use codebox_submission::{
    Job, JobQueue, Language, Limits, Payload, PayloadStore, Program, SubmissionStore,
};
use exec_lambda::{router, serve_local, AppState, EdgeSecret, Gate};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SECRET: &str = "edge-secret-for-the-api-tests-0123456789";

/// A window no test outlives, so counts never reset mid-test.
const LONG_WINDOW_S: u64 = 1_000_000_000;

fn limit(limit: u32) -> RateLimit {
    RateLimit {
        limit,
        window_s: LONG_WINDOW_S,
    }
}

fn edge_gate() -> Gate {
    Gate::EdgeSecret(EdgeSecret::new(SECRET).unwrap())
}

fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

/// One router over a database of its own (or a shared one).
struct Api {
    app: axum::Router,
    backend: Embedded,
    _dir: Option<tempfile::TempDir>,
}

impl Api {
    /// The local stack's API: no secret, the contract's run limit.
    fn new() -> Api {
        Api::with(Gate::Loopback, RateLimit::RUNS)
    }

    fn with(gate: Gate, run_limit: RateLimit) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let backend = Embedded::open(&dir.path().join("api.db"), 3).unwrap();
        Api {
            _dir: Some(dir),
            ..Api::over(backend, gate, run_limit)
        }
    }

    fn over(backend: Embedded, gate: Gate, run_limit: RateLimit) -> Api {
        let app = router(AppState {
            queue: Arc::new(backend.clone()),
            store: Arc::new(backend.clone()),
            payloads: Arc::new(backend.clone()),
            rates: Arc::new(backend.clone()),
            limits: Limits::default(),
            run_limit,
            gate,
        });
        Api {
            app,
            backend,
            _dir: None,
        }
    }

    async fn send(&self, call: Call) -> Reply {
        let mut request = Request::builder()
            .method(call.method)
            .uri(call.uri)
            .header("content-type", "application/json");
        for (name, value) in &call.headers {
            request = request.header(*name, value.as_str());
        }
        let mut request = request.body(Body::from(call.body)).unwrap();
        if let Some(peer) = call.peer {
            // What `serve_local` gives every request.
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn post(&self, body: impl Into<String>) -> Reply {
        self.send(post().body(body)).await
    }

    async fn queued_jobs(&self) -> Vec<Job> {
        self.backend
            .receive(10, Duration::ZERO, Duration::from_secs(60))
            .await
            .unwrap()
            .into_iter()
            .map(|delivery| delivery.job.unwrap())
            .collect()
    }
}

/// A request: from a loopback caller unless told otherwise.
struct Call {
    method: &'static str,
    uri: String,
    body: String,
    headers: Vec<(&'static str, String)>,
    peer: Option<SocketAddr>,
}

fn call(method: &'static str, uri: impl Into<String>) -> Call {
    Call {
        method,
        uri: uri.into(),
        body: String::new(),
        headers: Vec::new(),
        peer: Some(peer("127.0.0.1")),
    }
}

/// A valid run.
fn post() -> Call {
    call("POST", "/v1/submissions").body(run())
}

fn run() -> String {
    json!({"language": "python", "source": "print(1)"}).to_string()
}

impl Call {
    fn body(mut self, body: impl Into<String>) -> Call {
        self.body = body.into();
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.headers.push((name, value.into()));
        self
    }

    fn from(mut self, peer: Option<SocketAddr>) -> Call {
        self.peer = peer;
        self
    }

    /// As the edge sends it in production: the secret, its client first in
    /// `X-Forwarded-For`, the edge's own address appended by API Gateway; Lambda knows no peer.
    fn via_edge(self, client: &str) -> Call {
        self.header(EDGE_SECRET_HEADER, SECRET)
            .header("x-forwarded-for", format!("{client}, 198.18.0.1"))
            .from(None)
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

#[tokio::test]
async fn accepts_a_submission_and_serves_its_record() {
    let api = Api::new();
    let reply = api
        .post(json!({"language": "python", "source": "print(input())", "stdin": "hi"}).to_string())
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["status"], "queued");
    let id = reply.body["id"].as_str().unwrap().to_owned();

    let reply = api.send(call("GET", format!("/v1/submissions/{id}"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let record = reply.body;
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["language"], "python");
    assert_eq!(record["status"], "queued");
    for field in [
        "exit_code",
        "signal",
        "compile_output",
        "time_ms",
        "started_at",
        "finished_at",
    ] {
        assert!(record[field].is_null(), "{field}");
    }
    assert!(record.get("expires_at").is_none());

    let jobs = api.queued_jobs().await;
    assert_eq!(jobs.len(), 1);
    let program = Program {
        stdin: "hi".into(),
        ..Program::single(Language::Python, "print(input())".into(), String::new())
    };
    assert_eq!(
        (
            jobs[0].id.as_str(),
            &jobs[0].payload,
            jobs[0].room.as_deref()
        ),
        (id.as_str(), &Payload::Inline(program), None)
    );
}

fn file(name: &str, content: &str) -> ProjectFile {
    ProjectFile {
        name: name.into(),
        content: content.into(),
    }
}

#[tokio::test]
async fn a_project_with_tests_travels_in_its_job() {
    let api = Api::new();
    let reply = api
        .post(
            json!({"language": "c",
                "files": [{"name": "main.c", "content": "#include \"util.h\"\nint main(){}"},
                          {"name": "include/util.h", "content": "int twice(int);"}],
                "tests": [{"stdin": "2\n", "expected_stdout": "4\n"}]})
            .to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let record = api
        .send(call(
            "GET",
            format!("/v1/submissions/{}", reply.body["id"].as_str().unwrap()),
        ))
        .await
        .body;
    assert!(record["tests"].is_null(), "no tests have run yet");
    let jobs = api.queued_jobs().await;
    let Payload::Inline(program) = &jobs[0].payload else {
        panic!("a small project fits its message");
    };
    assert_eq!(program.files[1], file("include/util.h", "int twice(int);"));
    assert_eq!(
        program.tests,
        [TestCase {
            stdin: "2\n".into(),
            expected_stdout: "4\n".into()
        }]
    );
}

#[tokio::test]
async fn the_largest_program_waits_in_the_payload_store() {
    let api = Api::new();
    // 32 files holding 256 KiB and 32 tests of 64 KiB each way: megabytes, as the contract
    // allows, far past a queue message.
    let files: Vec<_> = (0..32)
        .map(|i| {
            let name = if i == 0 {
                "main.py".to_owned()
            } else {
                format!("lib/m{i}.py")
            };
            json!({"name": name, "content": "#".repeat(8 * 1024)})
        })
        .collect();
    let tests: Vec<_> = (0..32)
        .map(|i| json!({"stdin": format!("{i}").repeat(64 * 1024 / 2), "expected_stdout": "y".repeat(64 * 1024)}))
        .collect();
    let body = json!({"language": "python", "files": files, "tests": tests}).to_string();
    println!("request body: {} bytes", body.len());
    let reply = api.post(body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let jobs = api.queued_jobs().await;
    let Payload::Stored { parts } = jobs[0].payload else {
        panic!("the largest program is stored beside its job");
    };
    let stored = api.backend.payload(&id, parts).await.unwrap();
    let program = Program::from_payload(Language::Python, &stored).unwrap();
    println!("stored payload: {} bytes in {parts} parts", stored.len());
    assert_eq!(program.files.len(), 32);
    assert_eq!(program.files[31], file("lib/m31.py", &"#".repeat(8 * 1024)));
    assert_eq!(program.tests.len(), 32);
    assert_eq!(program.tests[7].stdin, "7".repeat(32 * 1024));
}

#[tokio::test]
async fn lists_languages_with_versions() {
    let api = Api::new();
    let body = api.send(call("GET", "/v1/languages")).await.body;
    let ids: Vec<_> = body["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["python", "javascript", "c", "cpp", "go", "rust"]);
    assert!(body["languages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["version"].as_str().is_some_and(|v| !v.is_empty())));
}

/// The limits the IDE names when a run hits one come from here, not from a copy.
#[tokio::test]
async fn languages_come_with_the_run_limits() {
    let api = Api::new();
    let body = api.send(call("GET", "/v1/languages")).await.body;
    let limits = Limits::default();
    assert_eq!(body["limits"]["run_ms"], limits.run_ms);
    assert_eq!(body["limits"]["compile_ms"], limits.compile_ms);
    assert_eq!(body["limits"]["memory_bytes"], limits.memory_bytes);
    assert_eq!(body["limits"]["output_bytes"], limits.output_bytes as u64);
    assert_eq!(
        body["limits"]["max_source_bytes"],
        limits.max_source_bytes as u64
    );
}

#[tokio::test]
async fn unknown_ids_and_paths_are_404() {
    let api = Api::new();
    let unknown = uuid::Uuid::new_v4();
    for id in [
        unknown.to_string(),
        unknown.simple().to_string(),
        "nope".to_owned(),
        "rate%23runs%3A127.0.0.1%3A0".to_owned(),
    ] {
        let reply = api.send(call("GET", format!("/v1/submissions/{id}"))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(reply.code(), "not_found", "{id}");
    }
    assert_eq!(
        api.send(call("GET", "/v2/anything")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Rate counters share the DynamoDB table: an id that is not a UUID must not reach it. Over a
/// store that cannot be reached, a UUID is a read that fails (503) and anything else is a 404
/// without one.
#[tokio::test]
async fn only_uuids_are_looked_up() {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(format!("http://127.0.0.1:{closed_port}"))
        .retry_config(RetryConfig::disabled())
        .build();
    let unreachable: Arc<dyn SubmissionStore> = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        "submissions",
    ));
    let api = Api::new();
    let app = router(AppState {
        queue: Arc::new(api.backend.clone()),
        store: unreachable,
        payloads: Arc::new(api.backend.clone()),
        rates: Arc::new(api.backend.clone()),
        limits: Limits::default(),
        run_limit: RateLimit::RUNS,
        gate: Gate::Loopback,
    });
    let api = Api { app, ..api };

    let uuid = uuid::Uuid::new_v4();
    let read = api
        .send(call("GET", format!("/v1/submissions/{uuid}")))
        .await;
    assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(read.code(), "store_unavailable");
    for id in [
        "rate%23runs%3A127.0.0.1%3A0",
        "nope",
        &uuid.simple().to_string(),
    ] {
        let reply = api.send(call("GET", format!("/v1/submissions/{id}"))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn bad_requests_get_their_error_and_enqueue_nothing() {
    let api = Api::new();
    let big = "x".repeat(64 * 1024 + 1);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        ("".into(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("[]".into(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            json!({"source": "x"}).to_string(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({"language": "python"}).to_string(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({"language": "cobol", "source": "x"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_language",
        ),
        (
            json!({"language": 3, "source": "x"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            json!({"language": "c", "source": "x", "stdin": 5}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            json!({"language": "c", "source": ""}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            json!({"language": "c", "source": big}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"language": "c", "source": "x", "stdin": big}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "x".repeat(7 * 1024 * 1024),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"language": "c", "source": "x", "files": [{"name": "a.c", "content": "x"}]})
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            json!({"language": "c", "files": [{"name": "../a.c", "content": "x"}]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            json!({"language": "go", "files": [{"name": "cmd/main.go", "content": "x"}]})
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
        (
            json!({"language": "c", "files": [{"name": "a.c", "content": "x".repeat(256 * 1024 + 1)}]})
                .to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"language": "c", "source": "x", "tests": [{"expected_stdout": big}]})
                .to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"language": "c", "source": "x", "stdin": "1", "tests": [{"expected_stdout": ""}]})
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let reply = api.post(body.clone()).await;
        let shown: String = body.chars().take(40).collect();
        assert_eq!(reply.status, want_status, "{shown}");
        assert_eq!(reply.code(), want_code, "{shown}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{shown}"
        );
    }
    assert!(
        api.queued_jobs().await.is_empty(),
        "nothing is enqueued for a rejected request"
    );
}

#[tokio::test]
async fn a_flooding_client_is_refused_until_the_window_ends() {
    let api = Api::with(Gate::Loopback, limit(2));
    assert_eq!(api.post(run()).await.status, StatusCode::ACCEPTED);
    assert_eq!(api.post(run()).await.status, StatusCode::ACCEPTED);
    let before = Utc::now().timestamp() as u64;
    let refused = api.post(run()).await;
    let after = Utc::now().timestamp() as u64;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let ends_at = (before / LONG_WINDOW_S + 1) * LONG_WINDOW_S;
    assert!(
        (ends_at - after..=ends_at - before).contains(&retry_after),
        "Retry-After {retry_after} is not the time left in the window"
    );
    assert_eq!(api.queued_jobs().await.len(), 2);
    // Reads are not runs.
    assert_eq!(
        api.send(call("GET", "/v1/languages")).await.status,
        StatusCode::OK
    );
}

/// A submission's tests count as runs, up to a whole window's allowance.
#[tokio::test]
async fn each_test_counts_as_a_run() {
    let tests = |n: usize| {
        json!({"language": "python", "source": "print(1)",
               "tests": vec![json!({"expected_stdout": "1"}); n]})
        .to_string()
    };
    let api = Api::with(Gate::Loopback, limit(5));
    assert_eq!(api.post(tests(3)).await.status, StatusCode::ACCEPTED);
    let refused = api.post(tests(3)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "3 + 3 > 5");
    assert_eq!(refused.code(), "rate_limited");
    assert_eq!(api.queued_jobs().await.len(), 1);
    // The largest test set still fits a fresh window: it counts as the whole allowance.
    let api = Api::with(Gate::Loopback, limit(5));
    assert_eq!(api.post(tests(32)).await.status, StatusCode::ACCEPTED);
    assert_eq!(api.post(run()).await.status, StatusCode::TOO_MANY_REQUESTS);
}

/// With a secret configured, every route (and every unknown path) answers 401 to a request
/// without it, whoever sends it, and nothing is queued.
#[tokio::test]
async fn with_a_secret_every_route_needs_it() {
    let api = Api::with(edge_gate(), RateLimit::RUNS);
    let id = uuid::Uuid::new_v4();
    let routes = || {
        [
            post(),
            call("GET", format!("/v1/submissions/{id}")),
            call("GET", "/v1/languages"),
            call("GET", "/v2/anything"),
        ]
    };
    let wrong_secrets = [
        None,
        Some(String::new()),
        Some("guess".to_owned()),
        Some(SECRET[..SECRET.len() - 1].to_owned()),
        Some(format!("{SECRET}0")),
        Some(SECRET.to_uppercase()),
    ];
    for secret in &wrong_secrets {
        for route in routes() {
            let shown = format!("{} {} with {secret:?}", route.method, route.uri);
            let route = match secret {
                Some(secret) => route.header(EDGE_SECRET_HEADER, secret.clone()),
                None => route,
            };
            let reply = api.send(route).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{shown}");
            assert_eq!(reply.code(), "unauthorized", "{shown}");
        }
    }
    assert!(api.queued_jobs().await.is_empty());

    let served: Vec<_> = statuses(&api, routes().map(|r| r.via_edge("203.0.113.9"))).await;
    assert_eq!(
        served,
        [
            StatusCode::ACCEPTED,
            StatusCode::NOT_FOUND,
            StatusCode::OK,
            StatusCode::NOT_FOUND
        ]
    );
}

async fn statuses(api: &Api, calls: impl IntoIterator<Item = Call>) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(api.send(call).await.status);
    }
    statuses
}

/// Without a secret (the local stack), loopback callers are served and no one else.
#[tokio::test]
async fn without_a_secret_only_loopback_callers_are_served() {
    let api = Api::new();
    for ip in ["127.0.0.1", "127.0.0.2", "::1"] {
        let reply = api
            .send(call("GET", "/v1/languages").from(Some(peer(ip))))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{ip}");
    }
    let strangers = [
        Some(peer("10.0.0.5")),
        Some(peer("203.0.113.9")),
        Some(peer("2001:db8::1")),
        None,
    ];
    for stranger in strangers {
        for route in [post(), call("GET", "/v1/languages")] {
            let reply = api
                .send(
                    route
                        .header("x-forwarded-for", "127.0.0.1")
                        .header(EDGE_SECRET_HEADER, SECRET)
                        .from(stranger),
                )
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{stranger:?}");
            assert_eq!(reply.code(), "unauthorized");
        }
    }
    assert!(api.queued_jobs().await.is_empty());
}

/// The real local server tells the gate who calls: a loopback caller over TCP is served.
#[tokio::test]
async fn the_local_server_serves_its_loopback_callers() {
    let api = Api::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_local(listener, api.app.clone(), async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /v1/languages HTTP/1.1\r\nHost: codebox\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"python\""), "{response}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Clients are IPv4 addresses or IPv6 /64s: addresses in one /64 share a limit.
#[tokio::test]
async fn an_ipv6_client_is_its_64() {
    let api = Api::with(edge_gate(), limit(2));
    let status = |client: &'static str| {
        let api = &api;
        async move { api.send(post().via_edge(client)).await.status }
    };
    assert_eq!(status("2001:db8:1:2::1").await, StatusCode::ACCEPTED);
    assert_eq!(
        status("2001:db8:1:2:ffff:ffff:ffff:ffff").await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        status("2001:db8:1:2::abcd").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status("2001:db8:1:3::1").await,
        StatusCode::ACCEPTED,
        "another /64"
    );
    assert_eq!(status("::ffff:192.0.2.1").await, StatusCode::ACCEPTED);
    assert_eq!(
        status("192.0.2.1").await,
        StatusCode::ACCEPTED,
        "the same IPv4 client"
    );
    assert_eq!(status("192.0.2.1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        status("192.0.2.2").await,
        StatusCode::ACCEPTED,
        "another address"
    );
}

/// The edge's first hop names its client; a direct caller writing `X-Forwarded-For` is
/// refused before anything is counted, so it neither escapes its limit nor spends another's.
#[tokio::test]
async fn a_caller_gains_nothing_by_naming_other_clients() {
    let api = Api::with(edge_gate(), limit(1));
    // Behind the edge (one address as API Gateway's last hop), clients are told apart.
    for client in ["198.51.100.5", "198.51.100.6"] {
        assert_eq!(
            api.send(post().via_edge(client)).await.status,
            StatusCode::ACCEPTED
        );
    }
    // A direct caller naming a victim first, with no secret or a wrong one.
    let victim = "198.51.100.7";
    for secret in [None, Some("guess"), Some(&SECRET[1..])] {
        let mut spoof = post()
            .header("x-forwarded-for", format!("{victim}, 203.0.113.66"))
            .from(None);
        if let Some(secret) = secret {
            spoof = spoof.header(EDGE_SECRET_HEADER, secret);
        }
        assert_eq!(api.send(spoof).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        api.send(post().via_edge(victim)).await.status,
        StatusCode::ACCEPTED,
        "the victim's run is still its own to spend"
    );
    assert_eq!(api.queued_jobs().await.len(), 3);

    // Locally, a caller from another machine naming a loopback client fares no better.
    let local = Api::with(Gate::Loopback, limit(1));
    let spoof = post()
        .header("x-forwarded-for", "127.0.0.1")
        .from(Some(peer("192.0.2.10")));
    assert_eq!(local.send(spoof).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(local.post(run()).await.status, StatusCode::ACCEPTED);
}

/// The room comes from the edge, is checked, and travels in the job.
#[tokio::test]
async fn the_edge_names_the_room_and_it_lands_in_the_job() {
    let api = Api::with(edge_gate(), RateLimit::RUNS);
    let reply = api
        .send(post().via_edge("203.0.113.9").header(ROOM, "team_7-A"))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let roomless = api.send(post().via_edge("203.0.113.9")).await;
    assert_eq!(roomless.status, StatusCode::ACCEPTED);
    let jobs = api.queued_jobs().await;
    let room_of = |id: &Value| {
        jobs.iter()
            .find(|job| job.id == id.as_str().unwrap())
            .map(|job| job.room.clone())
    };
    assert_eq!(
        room_of(&reply.body["id"]),
        Some(Some("team_7-A".to_owned()))
    );
    assert_eq!(room_of(&roomless.body["id"]), Some(None));

    for bad in ["", "two words", "a/b", "room.1", &"r".repeat(65)] {
        let reply = api
            .send(post().via_edge("203.0.113.9").header(ROOM, bad))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert_eq!(reply.code(), "invalid_value");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(ROOM), "{message}");
    }
    // Not from the edge: refused, room and all.
    let reply = api
        .send(
            post()
                .header(ROOM, "team_7-A")
                .from(Some(peer("203.0.113.9"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(api.queued_jobs().await.is_empty());

    // Locally the edge is a loopback caller.
    let local = Api::new();
    assert_eq!(
        local.send(post().header(ROOM, "local")).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(local.queued_jobs().await[0].room.as_deref(), Some("local"));
}

/// Two API processes over one database file share one limit: requests alternating between
/// them are accepted exactly `limit` times.
#[tokio::test]
async fn routers_over_one_database_share_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let limit = limit(3);
    let apis = [
        Api::over(Embedded::open(&db, 3).unwrap(), edge_gate(), limit),
        Api::over(Embedded::open(&db, 3).unwrap(), edge_gate(), limit),
    ];
    let mut accepted = 0;
    for i in 0..8 {
        let reply = apis[i % 2].send(post().via_edge("203.0.113.9")).await;
        match reply.status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("request {i}: {other}"),
        }
    }
    assert_eq!(accepted, limit.limit);
}
