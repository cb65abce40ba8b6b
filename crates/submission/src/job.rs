//! The job message: what travels through the queue from the API to a worker.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::Language;

/// One run to do. Source and stdin travel base64-encoded, so the message size has a fixed
/// bound (two 64 KiB fields are under 180 KB) whatever characters they hold; JSON escaping
/// alone could blow a 64 KiB field of control characters up six-fold, past SQS's 256 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The submission id.
    pub id: String,
    /// The language.
    pub language: Language,
    /// The program, base64 of its UTF-8 bytes.
    #[serde(with = "base64_string")]
    pub source: String,
    /// The program's stdin, base64 of its UTF-8 bytes.
    #[serde(with = "base64_string")]
    pub stdin: String,
    /// The room the run was started from, as the edge named it (absent for runs that came
    /// without one, and in messages written before rooms were carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// Why a queue message is not a job.
#[derive(Debug, thiserror::Error)]
#[error("malformed job message: {0}")]
pub struct MalformedJob(#[from] serde_json::Error);

impl Job {
    /// The message body.
    pub fn to_message(&self) -> String {
        // Serialising plain strings and enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a message body.
    pub fn from_message(body: &str) -> Result<Job, MalformedJob> {
        Ok(serde_json::from_str(body)?)
    }
}

mod base64_string {
    use super::*;
    use serde::{de::Error, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value.as_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let encoded = String::deserialize(d)?;
        let bytes = STANDARD.decode(encoded).map_err(D::Error::custom)?;
        String::from_utf8(bytes).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    #[test]
    fn round_trips() {
        let job = Job {
            id: "x".into(),
            language: Language::C,
            source: "int main(){}\n\u{0}é".into(),
            stdin: "".into(),
            room: None,
        };
        let message = job.to_message();
        assert!(!message.contains("room"), "{message}");
        assert_eq!(Job::from_message(&message).unwrap(), job);
        let in_room = Job {
            room: Some("team_7-a".into()),
            ..job
        };
        let message = in_room.to_message();
        assert!(message.contains(r#""room":"team_7-a""#), "{message}");
        assert_eq!(Job::from_message(&message).unwrap(), in_room);
    }

    #[test]
    fn worst_case_message_is_well_under_the_sqs_limit() {
        let limits = Limits::default();
        let job = Job {
            id: "00000000-0000-0000-0000-000000000000".into(),
            language: Language::Javascript,
            source: "\u{1}".repeat(limits.max_source_bytes),
            stdin: "\"".repeat(limits.max_stdin_bytes),
            room: Some("r".repeat(codebox_access::room::MAX_ROOM_NAME)),
        };
        let size = job.to_message().len();
        assert!(size < 192 * 1024, "{size} bytes");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Job::from_message("{").is_err());
        assert!(
            Job::from_message(r#"{"id":"x","language":"c","source":"!!","stdin":""}"#).is_err()
        );
    }
}
