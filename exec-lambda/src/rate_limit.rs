//! A token bucket per client, so one client cannot flood the queue. Per process: in production
//! API Gateway's throttling is the fleet-wide limit and this is the backstop.

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
}
