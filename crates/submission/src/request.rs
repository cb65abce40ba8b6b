//! Validation of `POST /v1/submissions` requests: the body, and the room the edge names.

use codebox_access::headers::{ROOM_HEADER, RUN_CREDENTIAL_HEADER, SUBMISSION_HEADER};
use codebox_access::is_valid_room_name;
use codebox_access::run_credential::MAX_CREDENTIAL_BYTES;
use serde_json::Value;

use crate::{Language, Limits};

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubmission {
    /// The language.
    pub language: Language,
    /// The program.
    pub source: String,
    /// The program's stdin (empty when not given).
    pub stdin: String,
}

/// Why a request was refused. Each maps to one HTTP status in `exec-lambda`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON, or not a JSON object.
    #[error("request body is not a JSON object: {0}")]
    MalformedJson(String),
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field is over its size limit.
    #[error("`{field}` is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The language is not one CodeBox runs.
    #[error("unknown language `{0}`; see GET /v1/languages")]
    UnknownLanguage(String),
    /// A field has the wrong type or an unusable value.
    #[error("invalid `{field}`: {reason}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl RequestError {
    /// The machine-readable error code of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::MalformedJson(_) => "malformed_json",
            RequestError::MissingField(_) => "missing_field",
            RequestError::TooLarge { .. } => "too_large",
            RequestError::UnknownLanguage(_) => "unknown_language",
            RequestError::InvalidValue { .. } => "invalid_value",
        }
    }
}

/// A run its room follows live (Contract 4), as the edge named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRun {
    /// The submission id the edge chose (a hyphenated UUID).
    pub id: String,
    /// The credential the edge signed for the run's channel (opaque here).
    pub credential: String,
}

/// Validates [`SUBMISSION_HEADER`] and [`RUN_CREDENTIAL_HEADER`], which come together or not
/// at all, and only with a room.
pub fn parse_live_run(
    room: Option<&str>,
    id: Option<&[u8]>,
    credential: Option<&[u8]>,
) -> Result<Option<LiveRun>, RequestError> {
    let (id, credential) = match (id, credential) {
        (None, None) => return Ok(None),
        (Some(id), Some(credential)) if room.is_some() => (id, credential),
        _ => {
            return Err(RequestError::InvalidValue {
                field: RUN_CREDENTIAL_HEADER,
                reason: "a live run names its room, its submission id and its credential",
            })
        }
    };
    let id = std::str::from_utf8(id)
        .ok()
        .filter(|id| is_submission_id(id))
        .ok_or(RequestError::InvalidValue {
            field: SUBMISSION_HEADER,
            reason: "must be a hyphenated lowercase UUID",
        })?;
    let credential = std::str::from_utf8(credential)
        .ok()
        .filter(|c| {
            (1..=MAX_CREDENTIAL_BYTES).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or(RequestError::InvalidValue {
            field: RUN_CREDENTIAL_HEADER,
            reason: "must be an unpadded URL-safe base64 credential",
        })?;
    Ok(Some(LiveRun {
        id: id.to_owned(),
        credential: credential.to_owned(),
    }))
}

/// Whether `id` has the form of the ids submissions are given (hyphenated lowercase UUIDs).
pub fn is_submission_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)
}

/// Validates the room id the edge sent in [`ROOM_HEADER`] (`None`: no header): a room name as
/// `/rooms/{room}` accepts it.
pub fn parse_room(header: Option<&[u8]>) -> Result<Option<String>, RequestError> {
    let Some(bytes) = header else {
        return Ok(None);
    };
    match std::str::from_utf8(bytes) {
        Ok(room) if is_valid_room_name(room) => Ok(Some(room.to_owned())),
        _ => Err(RequestError::InvalidValue {
            field: ROOM_HEADER,
            reason: "must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'",
        }),
    }
}

/// The largest request body worth parsing: both fields at their limit, JSON-escaped at worst.
pub fn max_body_bytes(limits: &Limits) -> usize {
    (limits.max_source_bytes + limits.max_stdin_bytes) * 6 + 4096
}

/// Validates a request body against `limits`.
pub fn parse_request(body: &[u8], limits: &Limits) -> Result<NewSubmission, RequestError> {
    if body.len() > max_body_bytes(limits) {
        return Err(RequestError::TooLarge {
            field: "body",
            size: body.len(),
            limit: max_body_bytes(limits),
        });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RequestError::MalformedJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| RequestError::MalformedJson("expected an object".into()))?;
    let text = |field: &'static str| -> Result<Option<&str>, RequestError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RequestError::InvalidValue {
                field,
                reason: "must be a string",
            }),
        }
    };
    let language = text("language")?.ok_or(RequestError::MissingField("language"))?;
    let source = text("source")?.ok_or(RequestError::MissingField("source"))?;
    let stdin = text("stdin")?.unwrap_or("");
    let language = Language::from_id(language)
        .ok_or_else(|| RequestError::UnknownLanguage(language.to_owned()))?;
    if source.len() > limits.max_source_bytes {
        return Err(RequestError::TooLarge {
            field: "source",
            size: source.len(),
            limit: limits.max_source_bytes,
        });
    }
    if stdin.len() > limits.max_stdin_bytes {
        return Err(RequestError::TooLarge {
            field: "stdin",
            size: stdin.len(),
            limit: limits.max_stdin_bytes,
        });
    }
    if source.trim().is_empty() {
        return Err(RequestError::InvalidValue {
            field: "source",
            reason: "must not be empty",
        });
    }
    Ok(NewSubmission {
        language,
        source: source.to_owned(),
        stdin: stdin.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_run_needs_its_room_a_uuid_and_a_credential_together() {
        let id = b"0b6f3c1e-8d4a-4f21-9c3e-5a7b9d1f2e4c".as_slice();
        let credential = b"Ugo8X-_9".as_slice();
        assert_eq!(parse_live_run(None, None, None), Ok(None));
        assert_eq!(
            parse_live_run(Some("r"), Some(id), Some(credential)),
            Ok(Some(LiveRun {
                id: String::from_utf8(id.to_vec()).unwrap(),
                credential: "Ugo8X-_9".into(),
            }))
        );
        let refused = |room: Option<&str>, id: Option<&[u8]>, credential: Option<&[u8]>| {
            matches!(
                parse_live_run(room, id, credential),
                Err(RequestError::InvalidValue { .. })
            )
        };
        assert!(refused(None, Some(id), Some(credential)), "no room");
        assert!(refused(Some("r"), Some(id), None));
        assert!(refused(Some("r"), None, Some(credential)));
        assert!(refused(Some("r"), Some(b"../x"), Some(credential)));
        assert!(refused(
            Some("r"),
            Some(b"0B6F3C1E-8D4A-4F21-9C3E-5A7B9D1F2E4C"),
            Some(credential)
        ));
        assert!(refused(Some("r"), Some(id), Some(b"a=b")));
        assert!(refused(Some("r"), Some(id), Some(b"")));
        let long = vec![b'a'; MAX_CREDENTIAL_BYTES + 1];
        assert!(refused(Some("r"), Some(id), Some(&long)));
    }

    fn parse(body: &str) -> Result<NewSubmission, RequestError> {
        parse_request(body.as_bytes(), &Limits::default())
    }

    #[test]
    fn accepts_a_valid_request() {
        let ok = parse(r#"{"language":"python","source":"print(1)","stdin":"x"}"#).unwrap();
        assert_eq!(
            ok,
            NewSubmission {
                language: Language::Python,
                source: "print(1)".into(),
                stdin: "x".into()
            }
        );
        assert_eq!(
            parse(r#"{"language":"c","source":"int main(){}"}"#)
                .unwrap()
                .stdin,
            ""
        );
    }

    #[test]
    fn refuses_each_kind_of_bad_request() {
        assert!(matches!(parse("{"), Err(RequestError::MalformedJson(_))));
        assert!(matches!(parse("[1]"), Err(RequestError::MalformedJson(_))));
        assert_eq!(
            parse(r#"{"source":"x"}"#),
            Err(RequestError::MissingField("language"))
        );
        assert_eq!(
            parse(r#"{"language":"go"}"#),
            Err(RequestError::MissingField("source"))
        );
        assert_eq!(
            parse(r#"{"language":"cobol","source":"x"}"#),
            Err(RequestError::UnknownLanguage("cobol".into()))
        );
        assert!(matches!(
            parse(r#"{"language":7,"source":"x"}"#),
            Err(RequestError::InvalidValue {
                field: "language",
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"language":"go","source":"x","stdin":[]}"#),
            Err(RequestError::InvalidValue { field: "stdin", .. })
        ));
        assert!(matches!(
            parse(r#"{"language":"go","source":"  "}"#),
            Err(RequestError::InvalidValue {
                field: "source",
                ..
            })
        ));
    }

    #[test]
    fn room_ids_follow_the_room_name_rule() {
        assert_eq!(parse_room(None), Ok(None));
        let longest = "a".repeat(codebox_access::room::MAX_ROOM_NAME);
        for good in ["r", "Team_7-a", longest.as_str()] {
            assert_eq!(parse_room(Some(good.as_bytes())), Ok(Some(good.to_owned())));
        }
        let too_long = "a".repeat(codebox_access::room::MAX_ROOM_NAME + 1);
        for bad in ["", "a b", "a/b", "é", "room.1", too_long.as_str()] {
            assert!(
                matches!(
                    parse_room(Some(bad.as_bytes())),
                    Err(RequestError::InvalidValue {
                        field: ROOM_HEADER,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert!(parse_room(Some(&[0xff])).is_err());
    }

    #[test]
    fn enforces_size_limits() {
        let big = "x".repeat(64 * 1024 + 1);
        let body = format!(r#"{{"language":"python","source":"{big}"}}"#);
        assert!(matches!(
            parse(&body),
            Err(RequestError::TooLarge {
                field: "source",
                ..
            })
        ));
        let body = format!(r#"{{"language":"python","source":"x","stdin":"{big}"}}"#);
        assert!(matches!(
            parse(&body),
            Err(RequestError::TooLarge { field: "stdin", .. })
        ));
        let exact = "x".repeat(64 * 1024);
        assert!(parse(&format!(r#"{{"language":"python","source":"{exact}"}}"#)).is_ok());
    }
}
