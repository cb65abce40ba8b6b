//! The CodeBox exec API (DESIGN.md, "Contract 2").
//!
//! ```text
//! POST /v1/submissions       validate -> store.create(queued) -> queue.send(job) -> 202 {id, status}
//! GET  /v1/submissions/{id}  store.get -> 200 record | 404
//! GET  /v1/languages         the languages and their versions
//! ```
//!
//! One axum [`Router`] serves both deployments: `main.rs` hands it to `lambda_http` under AWS
//! Lambda and to `axum::serve` locally. The queue and store are trait objects, so the same
//! router runs over SQS + DynamoDB or over the embedded SQLite backend.
//!
//! Modules: [`error`] maps every failure to its HTTP status in one place; [`rate_limit`] keeps
//! one client from flooding the queue.

pub mod error;
pub mod rate_limit;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use codebox_submission::request::max_body_bytes;
use codebox_submission::{
    parse_request, Job, JobQueue, Language, Limits, RequestError, RunResult, Submission,
    SubmissionStore,
};
use serde_json::json;
use tracing::{info, warn};

pub use error::ApiError;
pub use rate_limit::{RateLimit, RateLimiter};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Where jobs go.
    pub queue: Arc<dyn JobQueue>,
    /// Where records live.
    pub store: Arc<dyn SubmissionStore>,
    /// Request limits.
    pub limits: Limits,
    /// Per-client submission rate.
    pub rate_limiter: Arc<RateLimiter>,
    /// The secret the edge proxy proves itself with; `None`: no caller names its client
    /// ([`rate_limit::client_key`]).
    pub edge_secret: Option<Arc<str>>,
}

/// The exec API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/submissions", post(create_submission))
        .route("/v1/submissions/{id}", get(get_submission))
        .route("/v1/languages", get(languages))
        .fallback(|| async { ApiError::NotFound("this path".into()) })
        .with_state(state)
}

async fn create_submission(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    state
        .rate_limiter
        .check(
            rate_limit::client_key(&headers, state.edge_secret.as_deref()),
            Instant::now(),
        )
        .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
    let limit = max_body_bytes(&state.limits);
    let body = to_bytes(body, limit)
        .await
        .map_err(|_| RequestError::TooLarge {
            field: "body",
            size: limit + 1,
            limit,
        })?;
    let new = parse_request(&body, &state.limits)?;
    let now = Utc::now();
    let record = Submission::queued(uuid::Uuid::new_v4().to_string(), new.language, now);
    state.store.create(&record).await?;
    let job = Job {
        id: record.id.clone(),
        language: new.language,
        source: new.source,
        stdin: new.stdin,
    };
    if let Err(error) = state.queue.send(&job).await {
        // The record must not wait forever for a job that was never queued.
        let failed = RunResult::internal_error("the job could not be queued", Utc::now());
        if let Err(store_error) = state.store.finish(&record.id, &failed).await {
            warn!(submission = %record.id, %store_error, "could not mark an unqueued submission failed");
        }
        return Err(error.into());
    }
    info!(submission = %record.id, language = %new.language, "submission queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": record.id, "status": record.status })),
    ))
}

async fn get_submission(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Submission>, ApiError> {
    match state.store.get(&id, Utc::now()).await? {
        Some(record) => Ok(Json(record)),
        None => Err(ApiError::NotFound(id)),
    }
}

async fn languages() -> Json<serde_json::Value> {
    let languages: Vec<_> = Language::ALL.into_iter().map(Language::info).collect();
    Json(json!({ "languages": languages }))
}
