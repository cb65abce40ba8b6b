//! The submission record: what the store keeps and `GET /v1/submissions/{id}` returns.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{Language, Status};

/// How long a record lives (DynamoDB TTL on `expires_at`; readers ignore expired records).
pub const RECORD_TTL: Duration = Duration::hours(24);

/// One submission, as stored and as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// Opaque id (a UUID).
    pub id: String,
    /// The language it was submitted in.
    pub language: Language,
    /// Where it stands.
    pub status: Status,
    /// Exit code, when the program exited.
    pub exit_code: Option<i64>,
    /// Signal that killed the program, when one did.
    pub signal: Option<i32>,
    /// Captured stdout (invalid UTF-8 replaced by U+FFFD).
    pub stdout: String,
    /// Captured stderr (invalid UTF-8 replaced by U+FFFD).
    pub stderr: String,
    /// stdout passed the cap and was cut.
    pub stdout_truncated: bool,
    /// stderr passed the cap and was cut.
    pub stderr_truncated: bool,
    /// The compile step's output, for compiled languages.
    pub compile_output: Option<String>,
    /// Wall time of the program's run, in milliseconds.
    pub time_ms: Option<u64>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When a worker took it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
    /// After this the record is gone (epoch seconds; not part of the API).
    #[serde(skip_serializing, default)]
    pub expires_at: i64,
}

impl Submission {
    /// A fresh `queued` record.
    pub fn queued(id: String, language: Language, now: DateTime<Utc>) -> Self {
        Submission {
            id,
            language,
            status: Status::Queued,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            compile_output: None,
            time_ms: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            expires_at: (now + RECORD_TTL).timestamp(),
        }
    }

    /// Whether the record has outlived its TTL at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now.timestamp()
    }

    /// Copies a run's result into the record.
    pub fn finish(&mut self, result: &RunResult) {
        self.status = result.status;
        self.exit_code = result.exit_code;
        self.signal = result.signal;
        self.stdout = result.stdout.clone();
        self.stderr = result.stderr.clone();
        self.stdout_truncated = result.stdout_truncated;
        self.stderr_truncated = result.stderr_truncated;
        self.compile_output = result.compile_output.clone();
        self.time_ms = result.time_ms;
        self.finished_at = Some(result.finished_at);
    }
}

/// The terminal result a worker writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// A terminal status.
    pub status: Status,
    /// Exit code, when the program exited.
    pub exit_code: Option<i64>,
    /// Signal that killed the program, when one did.
    pub signal: Option<i32>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// stderr was cut at the cap.
    pub stderr_truncated: bool,
    /// Compile step output.
    pub compile_output: Option<String>,
    /// Run wall time in milliseconds.
    pub time_ms: Option<u64>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
}

impl RunResult {
    /// An `internal_error` result with `message` on stderr, for failures of CodeBox itself.
    pub fn internal_error(message: impl Into<String>, now: DateTime<Utc>) -> Self {
        RunResult {
            status: Status::InternalError,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: message.into(),
            stdout_truncated: false,
            stderr_truncated: false,
            compile_output: None,
            time_ms: None,
            finished_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_json_has_the_contract_fields_and_no_ttl() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let record = Submission::queued("abc".into(), Language::Python, now);
        let json = serde_json::to_value(&record).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut expected = vec![
            "id",
            "language",
            "status",
            "exit_code",
            "signal",
            "stdout",
            "stderr",
            "stdout_truncated",
            "stderr_truncated",
            "compile_output",
            "time_ms",
            "created_at",
            "started_at",
            "finished_at",
        ];
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(json["status"], "queued");
        assert_eq!(record.expires_at, now.timestamp() + 86_400);
        assert!(!record.is_expired(now));
        assert!(record.is_expired(now + RECORD_TTL));
    }
}
