//! A token bucket per client, so one client cannot flood the queue. Per process: in production
//! API Gateway's throttling is the fleet-wide limit and this is the backstop.
//!
//! Who the client is comes from `X-Forwarded-For` ([`client_key`]). Each proxy appends the
//! address of whoever called it, so only the last hop was written by a proxy of ours (API
//! Gateway, about its direct caller); the hops before it are whatever that caller sent. They
//! are trusted only from the edge, which proves itself with a shared secret
//! ([`EDGE_SECRET_HEADER`]) and sends one hop: its client's address (`CF-Connecting-IP`).
//! Without the secret every caller is keyed by the last hop, so a caller that writes its
//! own `X-Forwarded-For` gains nothing. Locally the edge calls the exec API directly and its
//! one hop is first and last.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// How fast one client may submit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained submissions per second.
    pub per_second: f64,
    /// Submissions allowed at once.
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 300.0,
        }
    }
}

/// Buckets by client key.
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    /// A limiter applying `limit` to every client.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`, or says how many seconds until one is available.
    pub fn check(&self, client: &str, now: Instant) -> Result<(), u64> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(client) {
            let limit = self.limit;
            // A full bucket is an idle client: forgetting it changes nothing.
            buckets.retain(|_, (tokens, at)| refill(limit, *tokens, *at, now) < limit.burst);
        }
        let (tokens, at) = buckets
            .entry(client.to_owned())
            .or_insert((self.limit.burst, now));
        let available = refill(self.limit, *tokens, *at, now);
        if available >= 1.0 {
            *tokens = available - 1.0;
            *at = now;
            Ok(())
        } else {
            Err(((1.0 - available) / self.limit.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// The header in which the edge proxy sends the shared secret (`CODEBOX_EDGE_SECRET` here,
/// `EXEC_API_EDGE_SECRET` at the edge).
pub const EDGE_SECRET_HEADER: &str = "x-codebox-edge-secret";

/// The rate-limit key of a request: the first `X-Forwarded-For` hop when the request carries
/// `edge_secret`, else the last; "unknown" (one shared bucket) without the header.
pub fn client_key<'a>(headers: &'a axum::http::HeaderMap, edge_secret: Option<&str>) -> &'a str {
    let from_edge = edge_secret.is_some_and(|secret| {
        headers
            .get(EDGE_SECRET_HEADER)
            .is_some_and(|sent| constant_time_eq(sent.as_bytes(), secret.as_bytes()))
    });
    let hops = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let hop = if from_edge {
        hops.split(',').next()
    } else {
        hops.rsplit(',').next()
    };
    hop.map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or("unknown")
}

/// Compares without an early exit, so the time taken says nothing about the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn refill(limit: RateLimit, tokens: f64, at: Instant, now: Instant) -> f64 {
    (tokens + now.duration_since(at).as_secs_f64() * limit.per_second).min(limit.burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_the_burst_then_refills() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3.0,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", start).is_ok());
        }
        assert_eq!(limiter.check("a", start), Err(1));
        assert!(limiter.check("b", start).is_ok(), "clients are independent");
        assert!(limiter
            .check("a", start + Duration::from_millis(500))
            .is_ok());
    }

    fn headers(pairs: &[(&str, &str)]) -> axum::http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    axum::http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn only_the_edge_may_name_the_client() {
        let xff = ("x-forwarded-for", "198.51.100.1, 203.0.113.9");
        let secret = Some("s3cret");
        // A direct caller's own hops are ignored: API Gateway's last hop names it.
        assert_eq!(client_key(&headers(&[xff]), secret), "203.0.113.9");
        assert_eq!(client_key(&headers(&[xff]), None), "203.0.113.9");
        let wrong = (EDGE_SECRET_HEADER, "guess");
        assert_eq!(client_key(&headers(&[xff, wrong]), secret), "203.0.113.9");
        let prefix = (EDGE_SECRET_HEADER, "s3cre");
        assert_eq!(client_key(&headers(&[xff, prefix]), secret), "203.0.113.9");
        // With the secret, the edge's hop is the client.
        let right = (EDGE_SECRET_HEADER, "s3cret");
        assert_eq!(client_key(&headers(&[xff, right]), secret), "198.51.100.1");
        // Secrets are only honoured when one is configured.
        assert_eq!(client_key(&headers(&[xff, right]), None), "203.0.113.9");
        // The local stack: the edge's one hop.
        assert_eq!(
            client_key(&headers(&[("x-forwarded-for", "127.0.0.1")]), None),
            "127.0.0.1"
        );
        assert_eq!(client_key(&headers(&[]), secret), "unknown");
        assert_eq!(
            client_key(&headers(&[("x-forwarded-for", " ")]), None),
            "unknown"
        );
    }
}
