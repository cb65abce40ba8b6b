//! The exec API through its real router over the embedded backend: the contract's happy
//! paths, and every refusal with its status, its JSON error, and nothing enqueued.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use codebox_submission::embedded::Embedded;
use codebox_submission::{JobQueue, Limits};
use exec_lambda::{router, AppState, RateLimit, RateLimiter};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Api {
    app: axum::Router,
    backend: Embedded,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new(rate: RateLimit) -> Api {
        Api::with_edge_secret(rate, None)
    }

    fn with_edge_secret(rate: RateLimit, edge_secret: Option<&str>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let backend = Embedded::open(&dir.path().join("api.db"), 3).unwrap();
        let app = router(AppState {
            queue: Arc::new(backend.clone()),
            store: Arc::new(backend.clone()),
            limits: Limits::default(),
            rate_limiter: Arc::new(RateLimiter::new(rate)),
            edge_secret: edge_secret.map(Arc::from),
        });
        Api {
            app,
            backend,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        self.call_with(method, uri, body, &[("x-forwarded-for", "203.0.113.7")])
            .await
    }

    async fn call_with(
        &self,
        method: &str,
        uri: &str,
        body: impl Into<Body>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.into()).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, body: impl Into<Body>) -> (StatusCode, Value) {
        self.call("POST", "/v1/submissions", body).await
    }

    async fn queued_jobs(&self) -> usize {
        self.backend
            .receive(10, Duration::ZERO, Duration::from_secs(60))
            .await
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn accepts_a_submission_and_serves_its_record() {
    let api = Api::new(RateLimit::default());
    let (status, body) = api
        .post(json!({"language": "python", "source": "print(input())", "stdin": "hi"}).to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().unwrap().to_owned();

    let (status, record) = api
        .call("GET", &format!("/v1/submissions/{id}"), Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
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

    let jobs = api
        .backend
        .receive(10, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let job = jobs[0].job.as_ref().unwrap();
    assert_eq!(
        (job.id.as_str(), job.source.as_str(), job.stdin.as_str()),
        (id.as_str(), "print(input())", "hi")
    );
}

#[tokio::test]
async fn lists_languages_with_versions() {
    let api = Api::new(RateLimit::default());
    let (status, body) = api.call("GET", "/v1/languages", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
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

#[tokio::test]
async fn unknown_ids_and_paths_are_404() {
    let api = Api::new(RateLimit::default());
    let (status, body) = api.call("GET", "/v1/submissions/nope", Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        api.call("GET", "/v2/anything", Body::empty()).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_requests_get_their_error_and_enqueue_nothing() {
    let api = Api::new(RateLimit::default());
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
            "x".repeat(2 * 1024 * 1024),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, error) = api.post(body.clone()).await;
        let shown: String = body.chars().take(40).collect();
        assert_eq!(status, want_status, "{shown}");
        assert_eq!(error["error"]["code"], want_code, "{shown}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{shown}"
        );
    }
    assert_eq!(
        api.queued_jobs().await,
        0,
        "nothing is enqueued for a rejected request"
    );
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited() {
    let api = Api::new(RateLimit {
        per_second: 0.5,
        burst: 2.0,
    });
    let body = || json!({"language": "python", "source": "print(1)"}).to_string();
    assert_eq!(api.post(body()).await.0, StatusCode::ACCEPTED);
    assert_eq!(api.post(body()).await.0, StatusCode::ACCEPTED);
    let (status, error) = api.post(body()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["error"]["code"], "rate_limited");
    assert_eq!(api.queued_jobs().await, 2);
}

#[tokio::test]
async fn a_caller_cannot_dodge_the_limit_by_naming_other_clients() {
    let api = Api::with_edge_secret(
        RateLimit {
            per_second: 0.5,
            burst: 2.0,
        },
        Some("s3cret"),
    );
    let body = || json!({"language": "python", "source": "print(1)"}).to_string();
    let post = |first_hop: &'static str, secret: Option<&'static str>| {
        let xff = format!("{first_hop}, 203.0.113.9");
        let body = body();
        let api = &api;
        async move {
            let mut headers = vec![("x-forwarded-for", xff.as_str())];
            if let Some(secret) = secret {
                headers.push(("x-codebox-edge-secret", secret));
            }
            api.call_with("POST", "/v1/submissions", body, &headers)
                .await
                .0
        }
    };
    // Straight to the API: every invented first hop lands in the caller's own bucket.
    assert_eq!(post("198.51.100.1", None).await, StatusCode::ACCEPTED);
    assert_eq!(post("198.51.100.2", None).await, StatusCode::ACCEPTED);
    assert_eq!(
        post("198.51.100.3", None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        post("198.51.100.4", Some("guess")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Through the edge (the secret), its clients are told apart by the first hop.
    assert_eq!(
        post("198.51.100.5", Some("s3cret")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post("198.51.100.6", Some("s3cret")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(api.queued_jobs().await, 4);
}
