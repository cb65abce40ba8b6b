//! Per-client rate limits that hold across every edge isolate: one `Limiter` Durable Object per
//! client key (an IPv4 address or an IPv6 /64), counting that client's actions per fixed window
//! (`codebox_access::rate`).
//!
//! A Durable Object is one instance worldwide, so its count is exact however many Worker
//! isolates ask; the counts live in its SQLite storage, so an eviction or a restart does not
//! reset a window. One row per client and scope (the current window's count).

use codebox_access::RateLimit;
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, RequestInit, Response, Result,
    State,
};

use crate::auth::now_s;
use crate::http::{EdgeError, StorageError};
use crate::sql::{exec, int, integer, rows, text};

/// The binding of the Limiter Durable Object namespace (wrangler.toml).
const LIMITERS_BINDING: &str = "LIMITERS";

/// What a client's action counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    /// `POST /rooms`.
    Rooms,
    /// Runs started through the edge.
    Runs,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Rooms => "rooms",
            Scope::Runs => "runs",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Hit {
    scope: Scope,
    limit: u32,
    window_s: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Verdict {
    allowed: bool,
    retry_after: u64,
}

/// Counts one `scope` action of `client` against `limit`; a refusal is
/// [`EdgeError::RateLimited`] with the seconds until the next window.
pub(crate) async fn count(
    env: &Env,
    client: &str,
    scope: Scope,
    limit: RateLimit,
) -> Result<(), EdgeError> {
    let hit = Hit {
        scope,
        limit: limit.limit,
        window_s: limit.window_s,
    };
    let body = serde_json::to_string(&hit).map_err(|e| EdgeError::Config(e.to_string()))?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let request = Request::new_with_init("https://limiter.internal/hit", &init)?;
    let stub = env
        .durable_object(LIMITERS_BINDING)?
        .id_from_name(client)?
        .get_stub()?;
    let mut response = stub.fetch_with_request(request).await?;
    let verdict: Verdict = response.json().await?;
    if verdict.allowed {
        Ok(())
    } else {
        Err(EdgeError::RateLimited(verdict.retry_after))
    }
}

/// The Durable Object behind [`count`].
#[durable_object]
pub struct Limiter {
    state: State,
}

impl DurableObject for Limiter {
    fn new(state: State, _env: Env) -> Self {
        crate::log::init();
        Limiter { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let hit: Hit = match req.json().await {
            Ok(hit) => hit,
            Err(error) => return EdgeError::InvalidBody(error.to_string()).into_response(),
        };
        match self.hit(&hit) {
            Ok(verdict) => Response::from_json(&verdict),
            Err(error) => error.into_response(),
        }
    }
}

impl Limiter {
    fn hit(&self, hit: &Hit) -> Result<Verdict, EdgeError> {
        let limit = RateLimit {
            limit: hit.limit,
            window_s: hit.window_s,
        };
        let now = now_s();
        let window = limit.window(now);
        let sql = self.state.storage().sql();
        exec(
            &sql,
            "CREATE TABLE IF NOT EXISTS hits (scope TEXT PRIMARY KEY, window INTEGER NOT NULL, \
             count INTEGER NOT NULL)",
            vec![],
        )?;
        // One statement: a new window starts at 1, the current one counts up.
        let counted = rows(
            &sql,
            "INSERT INTO hits (scope, window, count) VALUES (?, ?, 1) \
             ON CONFLICT (scope) DO UPDATE SET \
             count = CASE WHEN window = excluded.window THEN count + 1 ELSE 1 END, \
             window = excluded.window \
             RETURNING count",
            vec![text(hit.scope.as_str()), int(window.index as i64)],
        )?;
        let count = counted
            .first()
            .map(|row| integer(row, 0))
            .transpose()?
            .ok_or(StorageError::NoRow("counting a hit"))?;
        let allowed = u32::try_from(count - 1).is_ok_and(|before| limit.allows(before));
        Ok(Verdict {
            allowed,
            retry_after: if allowed { 0 } else { window.retry_after(now) },
        })
    }
}
