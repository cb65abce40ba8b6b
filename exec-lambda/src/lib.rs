//! The CodeBox exec API (DESIGN.md, "Contract 2").
//!
//! ```text
//! every route: gate (edge secret, or loopback locally) -> 401 | the client's key
//! POST /v1/submissions       room header -> rate counter (client, runs) -> 429 | validate
//!                            -> one more hit per test beyond the first -> 429
//!                            -> store.create(queued) -> the program stored beside its job
//!                            if it is too large for a message -> queue.send(job)
//!                            -> 202 {id, status}
//! GET  /v1/submissions/{id}  a UUID? -> store.get -> 200 record | 404
//! GET  /v1/languages         the languages and their versions
//! ```
//!
//! One axum [`Router`] serves both deployments: `main.rs` hands it to `lambda_http` under AWS
//! Lambda and to [`serve_local`] locally. The queue, store and rate counters are trait
//! objects, so the same router runs over SQS + DynamoDB or over the embedded SQLite backend.
//!
//! Modules: `gate` decides who may call and who the client is; `error` maps every failure to
//! its HTTP status in one place; [`config`] reads the environment (for `main.rs`).

pub mod config;
mod error;
mod gate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use chrono::Utc;
use codebox_access::headers::{ROOM_HEADER, RUN_CREDENTIAL_HEADER, SUBMISSION_HEADER};
use codebox_access::RateLimit;
use codebox_submission::request::MAX_BODY_BYTES;
use codebox_submission::{
    is_submission_id, parse_live_run, parse_request, parse_room, Job, JobQueue, Language, Limits,
    MessageError, Payload, PayloadStore, QueueError, RateCounter, RateHit, RequestError, RunResult,
    Submission, SubmissionStore,
};
use serde_json::json;
use tracing::{info, warn};

pub use gate::{EdgeSecret, Gate, WeakEdgeSecret};

use error::ApiError;
use gate::Admitted;

/// The rate-limit scope of runs (`POST /v1/submissions`).
pub(crate) const RUNS_SCOPE: &str = "runs";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Where jobs go.
    pub queue: Arc<dyn JobQueue>,
    /// Where records live.
    pub store: Arc<dyn SubmissionStore>,
    /// Where programs too large for a queue message wait for their worker.
    pub payloads: Arc<dyn PayloadStore>,
    /// Where the per-client run counters live, shared by every instance of the API.
    pub rates: Arc<dyn RateCounter>,
    /// Request limits.
    pub limits: Limits,
    /// Runs per client.
    pub run_limit: RateLimit,
    /// Who may call.
    pub gate: Gate,
}

/// The exec API, every route behind the gate.
pub fn router(state: AppState) -> Router {
    let gate = state.gate.clone();
    Router::new()
        .route("/v1/submissions", post(create_submission))
        .route("/v1/submissions/{id}", get(get_submission))
        .route("/v1/languages", get(languages))
        .fallback(|| async { ApiError::NotFound("this path".into()) })
        .layer(middleware::from_fn_with_state(gate, gate::admit))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, telling the gate each caller's address.
pub async fn serve_local(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn create_submission(
    State(state): State<AppState>,
    Extension(caller): Extension<Admitted>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    // The gate admitted the edge only, so the room it names is its word, and so are the id
    // and credential of a run the room follows live.
    let room = parse_room(headers.get(ROOM_HEADER).map(|v| v.as_bytes()))?;
    let live = parse_live_run(
        room.as_deref(),
        headers.get(SUBMISSION_HEADER).map(|v| v.as_bytes()),
        headers.get(RUN_CREDENTIAL_HEADER).map(|v| v.as_bytes()),
    )?;
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
    let hit = RateHit::new(RUNS_SCOPE, &caller.client, state.run_limit, now);
    if !state.rates.count(&hit).await? {
        info!(client = %caller.client, room = room.as_deref(), "run rate limit reached");
        return Err(ApiError::RateLimited {
            retry_after_s: hit.retry_after(),
        });
    }
    let limit = MAX_BODY_BYTES;
    let body = to_bytes(body, limit)
        .await
        .map_err(|_| RequestError::TooLarge {
            field: "body",
            size: limit + 1,
            limit,
        })?;
    let new = parse_request(&body, &state.limits)?;
    // Each test is a run of its own (the hit above counted the first), up to a whole window's
    // allowance, so that the largest submission still fits a fresh window.
    let tests = u32::try_from(new.program.tests.len()).unwrap_or(u32::MAX);
    if let Some(more) = tests.min(hit.limit).checked_sub(1).filter(|&n| n > 0) {
        let tests = hit.clone().weighing(more);
        if !state.rates.count(&tests).await? {
            info!(client = %caller.client, room = room.as_deref(), "run rate limit reached by tests");
            return Err(ApiError::RateLimited {
                retry_after_s: hit.retry_after(),
            });
        }
    }
    let (id, run_credential) = match live {
        Some(live) => (live.id, Some(live.credential)),
        None => (uuid::Uuid::new_v4().to_string(), None),
    };
    let record = Submission::queued(id, new.language, Utc::now());
    state.store.create(&record).await?;
    let (files, tests) = (new.program.files.len(), new.program.tests.len());
    let job = Job {
        id: record.id.clone(),
        language: new.language,
        payload: Payload::Inline(new.program),
        room: room.clone(),
        run_credential,
    };
    if let Err(error) = enqueue(&state, job, record.expires_at).await {
        // The record must not wait forever for a job that was never queued.
        let failed = RunResult::internal_error("the job could not be queued", Utc::now());
        if let Err(store_error) = state.store.finish(&record.id, &failed).await {
            warn!(submission = %record.id, %store_error, "could not mark an unqueued submission failed");
        }
        return Err(error);
    }
    info!(
        submission = %record.id,
        language = %new.language,
        room = room.as_deref(),
        files,
        tests,
        "submission queued"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": record.id, "status": record.status })),
    ))
}

/// Sends `job`, its program stored beside it first when it is too large for a message.
async fn enqueue(state: &AppState, job: Job, expires_at: i64) -> Result<(), ApiError> {
    let job = match job.to_message() {
        Err(MessageError::TooLarge { size }) => {
            let (job, payload) = job.into_stored().map_err(QueueError::Message)?;
            if let Some(payload) = payload {
                state
                    .payloads
                    .put_payload(&job.id, &payload, expires_at)
                    .await?;
                info!(
                    submission = %job.id,
                    inline_bytes = size,
                    payload_bytes = payload.len(),
                    "program stored beside its job"
                );
            }
            job
        }
        _ => job,
    };
    Ok(state.queue.send(&job).await?)
}

async fn get_submission(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Submission>, ApiError> {
    // Rate counters share the DynamoDB table under ids that are never UUIDs: only a
    // submission id is worth a read.
    if !is_submission_id(&id) {
        return Err(ApiError::NotFound(id));
    }
    match state.store.get(&id, Utc::now()).await? {
        Some(record) => Ok(Json(record)),
        None => Err(ApiError::NotFound(id)),
    }
}

/// The languages with their versions, and the limits every run is held to (the IDE names
/// them when a run hits one).
async fn languages(State(state): State<AppState>) -> Json<serde_json::Value> {
    let languages: Vec<_> = Language::ALL.into_iter().map(Language::info).collect();
    Json(json!({ "languages": languages, "limits": state.limits }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_ids_are_hyphenated_uuids() {
        let id = uuid::Uuid::new_v4();
        assert!(is_submission_id(&id.to_string()));
        for other in [
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
            id.to_string().to_uppercase(),
            "rate#runs:203.0.113.9:29000000".to_owned(),
            "nope".to_owned(),
            String::new(),
        ] {
            assert!(!is_submission_id(&other), "{other}");
        }
    }
}
