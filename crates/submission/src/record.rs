//! The submission record: what the store keeps and `GET /v1/submissions/{id}` returns, and the
//! result a worker writes into it.
//!
//! The fields a run's result fills in are listed once, in the `record_types!` invocation below:
//! [`Submission`] and [`RunResult`] are both declared from that list, and
//! [`Submission::finish`] copies exactly those fields. The stores derive their layouts from the
//! same types through serde (the embedded store keeps the record's JSON, the DynamoDB store maps
//! each field to one attribute), so no store lists the fields again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::judge::TestResult;
use crate::{Language, Status, TimeLimit};

/// How long a record lives (DynamoDB TTL on `expires_at`; readers ignore expired records).
pub const RECORD_TTL: Duration = Duration::hours(24);

/// Declares [`Submission`] and [`RunResult`] around one list of the fields a run's result
/// writes into its record, and [`Submission::finish`], which copies them.
macro_rules! record_types {
    ($( $(#[$doc:meta])* $field:ident: $type:ty, )*) => {
        /// One submission, as stored and as served (DESIGN.md, Contract 2).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Submission {
            /// Opaque id (a UUID).
            pub id: String,
            /// The language it was submitted in.
            pub language: Language,
            $( $(#[$doc])* pub $field: $type, )*
            /// When it was accepted.
            pub created_at: DateTime<Utc>,
            /// When a worker took it.
            pub started_at: Option<DateTime<Utc>>,
            /// When it reached a terminal status.
            pub finished_at: Option<DateTime<Utc>>,
            /// After this the record is gone (epoch seconds; stored, not part of the API).
            #[serde(skip_serializing, default)]
            pub expires_at: i64,
        }

        /// The terminal result a worker writes: the record's result fields, under the same
        /// names, and when it finished.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct RunResult {
            $( $(#[$doc])* pub $field: $type, )*
            /// When it finished.
            pub finished_at: DateTime<Utc>,
        }

        impl Submission {
            /// Copies a run's result into the record.
            pub fn finish(&mut self, result: &RunResult) {
                $( self.$field = result.$field.clone(); )*
                self.finished_at = Some(result.finished_at);
            }
        }
    };
}

record_types! {
    /// Where it stands (in a [`RunResult`], a terminal status).
    status: Status,
    /// Exit code, when the program exited.
    exit_code: Option<i64>,
    /// Signal that killed the program, when one did.
    signal: Option<i32>,
    /// Captured stdout (invalid UTF-8 replaced by U+FFFD).
    stdout: String,
    /// Captured stderr (invalid UTF-8 replaced by U+FFFD).
    stderr: String,
    /// stdout passed the cap and was cut.
    stdout_truncated: bool,
    /// stderr passed the cap and was cut.
    stderr_truncated: bool,
    /// The compile step's output, for compiled languages.
    compile_output: Option<String>,
    /// Wall time of the program's run, in milliseconds.
    time_ms: Option<u64>,
    /// The time limit that ended it, when one did (`compile`, `run`; an interactive run's
    /// `wall`, `idle` or `cpu`).
    #[serde(default)]
    time_limit: Option<TimeLimit>,
    /// A tests run's tests, in the request's order (Contract 2b; absent otherwise). The
    /// fields above are then the deciding test's, and `time_ms` the slowest test's.
    #[serde(default)]
    tests: Option<Vec<TestResult>>,
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
            time_limit: None,
            tests: None,
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
            time_limit: None,
            tests: None,
            finished_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(value: &serde_json::Value) -> Vec<String> {
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn api_json_has_the_contract_fields_and_no_ttl() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let record = Submission::queued("abc".into(), Language::Python, now);
        let json = serde_json::to_value(&record).unwrap();
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
            "time_limit",
            "tests",
            "created_at",
            "started_at",
            "finished_at",
        ];
        expected.sort();
        assert_eq!(keys(&json), expected);
        assert_eq!(json["status"], "queued");
        assert_eq!(record.expires_at, now.timestamp() + 86_400);
        assert!(!record.is_expired(now));
        assert!(record.is_expired(now + RECORD_TTL));
    }

    #[test]
    fn a_result_names_only_record_fields_and_finish_copies_every_one() {
        let now = Utc::now();
        let mut record = Submission::queued("abc".into(), Language::C, now);
        let result = RunResult {
            status: Status::RuntimeError,
            exit_code: Some(3),
            signal: Some(9),
            stdout: "out".into(),
            stderr: "err".into(),
            stdout_truncated: true,
            stderr_truncated: true,
            compile_output: Some("cc".into()),
            time_ms: Some(7),
            time_limit: Some(TimeLimit::Idle),
            tests: Some(vec![]),
            finished_at: now,
        };
        record.finish(&result);
        let record = serde_json::to_value(&record).unwrap();
        let result = serde_json::to_value(&result).unwrap();
        for (field, value) in result.as_object().unwrap() {
            assert_eq!(&record[field], value, "{field}");
        }
        assert!(keys(&result).len() < keys(&record).len());
    }
}
