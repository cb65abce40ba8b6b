//! Fixed-window rate limits: at most `limit` actions per client in each `window_s` window.
//!
//! A fixed window needs one counter per client and window, and one atomic "add one if below
//! the limit" on it: a conditional update in DynamoDB, one SQL statement in SQLite, a field
//! of a Durable Object. That is what makes the limit hold across every instance of a service,
//! which a token bucket kept in process memory cannot. The price is that a client may spend
//! two windows' worth across a window boundary; the limits are set with that in mind.

use std::fmt;
use std::str::FromStr;

/// How many actions one client may take per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Actions allowed in one window.
    pub limit: u32,
    /// Window length in seconds.
    pub window_s: u64,
}

/// One window of a [`RateLimit`]: the counter to increment and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The window's number since the Unix epoch (its counter's name).
    pub index: u64,
    /// Unix second at which the next window starts.
    pub ends_at: u64,
}

impl RateLimit {
    /// Room creations per client (`POST /rooms`): a person makes a few an hour; a class behind
    /// one address makes a few dozen at the start of a lesson.
    pub const ROOMS: RateLimit = RateLimit {
        limit: 30,
        window_s: 600,
    };
    /// Runs per client, counted at the edge and again at the exec API: one press of Run every
    /// two seconds, sustained. With at most 4 runs per room in flight this keeps one client's
    /// share of the fleet to what a few busy rooms use.
    pub const RUNS: RateLimit = RateLimit {
        limit: 30,
        window_s: 60,
    };

    /// The window `now` (Unix seconds) falls in.
    pub fn window(&self, now: u64) -> Window {
        let window_s = self.window_s.max(1);
        let index = now / window_s;
        Window {
            index,
            ends_at: (index + 1) * window_s,
        }
    }

    /// Whether one more action is allowed after `count` in the current window.
    pub fn allows(&self, count: u32) -> bool {
        count < self.limit
    }
}

impl Window {
    /// Seconds until the next window (at least 1): the `Retry-After` of a refusal.
    pub fn retry_after(&self, now: u64) -> u64 {
        self.ends_at.saturating_sub(now).max(1)
    }

    /// The counter key for `scope` (e.g. "runs") and `client` in this window.
    pub fn key(&self, scope: &str, client: &str) -> String {
        format!("{scope}:{client}:{}", self.index)
    }
}

/// Why a rate limit could not be read from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a rate limit: expected LIMIT/SECONDS, e.g. 30/60")]
pub struct InvalidRateLimit(pub String);

impl FromStr for RateLimit {
    type Err = InvalidRateLimit;

    /// `LIMIT/SECONDS`, e.g. `30/60` (the form configuration uses).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRateLimit(text.to_owned());
        let (limit, window) = text.trim().split_once('/').ok_or_else(invalid)?;
        let limit = limit.trim().parse().map_err(|_| invalid())?;
        let window_s: u64 = window.trim().parse().map_err(|_| invalid())?;
        if window_s == 0 {
            return Err(invalid());
        }
        Ok(RateLimit { limit, window_s })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.window_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_say_when_to_retry() {
        let limit = RateLimit {
            limit: 2,
            window_s: 60,
        };
        let w = limit.window(125);
        assert_eq!(
            w,
            Window {
                index: 2,
                ends_at: 180
            }
        );
        assert_eq!(w.retry_after(125), 55);
        assert_eq!(w.retry_after(180), 1, "never zero");
        assert_eq!(limit.window(179).index, 2);
        assert_eq!(limit.window(180).index, 3);
        assert_eq!(w.key("runs", "203.0.113.9"), "runs:203.0.113.9:2");
    }

    #[test]
    fn allows_up_to_the_limit() {
        let limit = RateLimit {
            limit: 2,
            window_s: 1,
        };
        assert!(limit.allows(0));
        assert!(limit.allows(1));
        assert!(!limit.allows(2));
    }

    #[test]
    fn parses_configuration() {
        assert_eq!(
            "30/60".parse(),
            Ok(RateLimit {
                limit: 30,
                window_s: 60
            })
        );
        assert_eq!(RateLimit::RUNS.to_string().parse(), Ok(RateLimit::RUNS));
        for bad in ["", "30", "a/60", "30/0", "30/x", "-1/60"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
    }
}
