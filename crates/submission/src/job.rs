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
    /// The credential for the run's live channel into its room (Contract 4), when the room
    /// follows the run live: the worker runs it interactively and streams it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_credential: Option<String>,
}

/// The largest message body a queue takes (SQS's limit; the embedded queue keeps it too).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Why a queue message is not a job.
#[derive(Debug, thiserror::Error)]
#[error("malformed job message: {0}")]
pub struct MalformedJob(#[from] serde_json::Error);

/// Why a job cannot be sent as a message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// It could not be written as JSON.
    #[error("the job cannot be written as a message: {0}")]
    Encode(#[from] serde_json::Error),
    /// Its message would be over [`MAX_MESSAGE_BYTES`].
    #[error("the job's message is {size} bytes; a queue takes at most {MAX_MESSAGE_BYTES}")]
    TooLarge {
        /// The message's size in bytes.
        size: usize,
    },
}

impl Job {
    /// The message body, or why there is none.
    pub fn to_message(&self) -> Result<String, MessageError> {
        encode(self)
    }

    /// Parses a message body.
    pub fn from_message(body: &str) -> Result<Job, MalformedJob> {
        Ok(serde_json::from_str(body)?)
    }
}

/// `value` as a message body no larger than [`MAX_MESSAGE_BYTES`].
fn encode(value: &impl Serialize) -> Result<String, MessageError> {
    let body = serde_json::to_string(value)?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { size: body.len() });
    }
    Ok(body)
}

mod base64_string {
    use super::*;
    use serde::{de::Error, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value.as_bytes()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
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
            run_credential: None,
        };
        let message = job.to_message().unwrap();
        assert!(!message.contains("room"), "{message}");
        assert_eq!(Job::from_message(&message).unwrap(), job);
        let in_room = Job {
            room: Some("team_7-a".into()),
            ..job
        };
        let message = in_room.to_message().unwrap();
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
            run_credential: Some("c".repeat(codebox_access::run_credential::MAX_CREDENTIAL_BYTES)),
        };
        let size = job.to_message().unwrap().len();
        assert!(size < 192 * 1024, "{size} bytes");
    }

    #[test]
    fn a_job_that_cannot_be_a_message_is_an_error_not_an_empty_body() {
        let job = Job {
            id: "x".into(),
            language: Language::Python,
            source: "#".repeat(MAX_MESSAGE_BYTES),
            stdin: String::new(),
            room: None,
            run_credential: None,
        };
        let error = job.to_message().unwrap_err();
        assert!(
            matches!(error, MessageError::TooLarge { size } if size > MAX_MESSAGE_BYTES),
            "{error}"
        );

        /// A value serde_json refuses: a map with keys that are not strings.
        struct Unencodable;
        impl Serialize for Unencodable {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(&[1u8], &0)?;
                map.end()
            }
        }
        let error = encode(&Unencodable).unwrap_err();
        assert!(matches!(error, MessageError::Encode(_)), "{error}");
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Job::from_message("{").is_err());
        assert!(
            Job::from_message(r#"{"id":"x","language":"c","source":"!!","stdin":""}"#).is_err()
        );
    }
}
