//! Validation of `POST /v1/submissions` requests: the body, and the room the edge names.
//!
//! ```text
//! {"language", "source": "..." | "files": [{"name", "content"}],   one or the other
//!  "stdin": "...",                                                 optional; not with tests
//!  "tests": [{"stdin", "expected_stdout"}]}                        optional (Contract 2b)
//! ```
//!
//! Each refusal names the field, down to the item (`files[3].name`, `tests[0].stdin`): 413
//! for a size over its limit, 422 for anything else (DESIGN.md, Contract 2 and 2b).

use codebox_access::headers::{
    MAX_SUBMISSION_BODY_BYTES, ROOM_HEADER, RUN_CREDENTIAL_HEADER, SUBMISSION_HEADER,
};
use codebox_access::is_valid_room_name;
use codebox_access::run_credential::MAX_CREDENTIAL_BYTES;
use serde_json::{Map, Value};

use crate::judge::{TestCase, MAX_TESTS, MAX_TEST_BYTES};
use crate::project::{check_project, ProjectError, ProjectFile};
use crate::{Language, Limits, Program};

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubmission {
    /// The language.
    pub language: Language,
    /// The program: its files, stdin and tests.
    pub program: Program,
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
    /// An item of a list (`files[2].content`, `tests[0]`) has the wrong type, or is over its
    /// size limit (`limit`).
    #[error("invalid `{field}`: {reason}")]
    InvalidItem {
        /// The item's path.
        field: String,
        /// What is wrong.
        reason: String,
        /// The size limit it passed, when that is what is wrong.
        limit: Option<usize>,
    },
    /// The files do not make a project.
    #[error(transparent)]
    Project(#[from] ProjectError),
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
            RequestError::InvalidItem { limit: None, .. } => "invalid_value",
            RequestError::InvalidItem { limit: Some(_), .. } => "too_large",
            RequestError::Project(e) if e.is_too_large() => "too_large",
            RequestError::Project(_) => "invalid_value",
        }
    }

    /// Whether the request is refused for its size (413) rather than its shape (422).
    pub fn is_too_large(&self) -> bool {
        self.code() == "too_large"
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

/// The largest request body read (the edge reads no more either). Past every field's limit
/// with room for JSON escaping, and within what a Lambda function is handed (6 MB).
pub const MAX_BODY_BYTES: usize = MAX_SUBMISSION_BODY_BYTES;

/// A JSON object's fields, read with errors that name them.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// Where the object is (`""` for the body, `files[2].` for an item).
    path: String,
}

impl<'a> Fields<'a> {
    /// The text `field`, `None` when absent or null.
    fn text(&self, field: &'static str) -> Result<Option<&'a str>, RequestError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) if self.path.is_empty() => Err(RequestError::InvalidValue {
                field,
                reason: "must be a string",
            }),
            Some(_) => Err(self.item(field, "must be a string".into(), None)),
        }
    }

    /// The text `field` of an item, which must be present and at most `limit` bytes.
    fn item_text(&self, field: &'static str, limit: usize) -> Result<String, RequestError> {
        let text = self
            .text(field)?
            .ok_or_else(|| self.item(field, "is missing".into(), None))?;
        if text.len() > limit {
            let reason = format!("is {} bytes; the limit is {limit}", text.len());
            return Err(self.item(field, reason, Some(limit)));
        }
        Ok(text.to_owned())
    }

    fn item(&self, field: &str, reason: String, limit: Option<usize>) -> RequestError {
        RequestError::InvalidItem {
            field: format!("{}{field}", self.path),
            reason,
            limit,
        }
    }
}

/// The objects of the list `field`, each with its path, or why it is not a list of objects.
fn objects<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<Fields<'a>>>, RequestError> {
    let items = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(RequestError::InvalidValue {
                field,
                reason: "must be a list of objects",
            })
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(object) => Ok(Fields {
                object,
                path: format!("{field}[{index}]."),
            }),
            _ => Err(RequestError::InvalidItem {
                field: format!("{field}[{index}]"),
                reason: "must be an object".into(),
                limit: None,
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Validates a request body against `limits`.
pub fn parse_request(body: &[u8], limits: &Limits) -> Result<NewSubmission, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::TooLarge {
            field: "body",
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RequestError::MalformedJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| RequestError::MalformedJson("expected an object".into()))?;
    let fields = Fields {
        object,
        path: String::new(),
    };
    let language = fields
        .text("language")?
        .ok_or(RequestError::MissingField("language"))?;
    let source = fields.text("source")?;
    let files = objects(object, "files")?;
    let stdin = fields.text("stdin")?.unwrap_or("");
    let tests = objects(object, "tests")?.unwrap_or_default();
    let language = Language::from_id(language)
        .ok_or_else(|| RequestError::UnknownLanguage(language.to_owned()))?;
    let files = match (source, files) {
        (Some(_), Some(_)) => {
            return Err(RequestError::InvalidValue {
                field: "files",
                reason: "a submission has `source` or `files`, not both",
            })
        }
        (None, None) => return Err(RequestError::MissingField("source")),
        (Some(source), None) => {
            if source.len() > limits.max_source_bytes {
                return Err(RequestError::TooLarge {
                    field: "source",
                    size: source.len(),
                    limit: limits.max_source_bytes,
                });
            }
            if source.trim().is_empty() {
                return Err(RequestError::InvalidValue {
                    field: "source",
                    reason: "must not be empty",
                });
            }
            Program::single(language, source.to_owned(), String::new()).files
        }
        (None, Some(items)) => {
            let files = items
                .iter()
                .map(|item| {
                    Ok(ProjectFile {
                        name: item.item_text("name", usize::MAX)?,
                        content: item.item_text("content", usize::MAX)?,
                    })
                })
                .collect::<Result<Vec<_>, RequestError>>()?;
            check_project(language, &files)?;
            files
        }
    };
    if stdin.len() > limits.max_stdin_bytes {
        return Err(RequestError::TooLarge {
            field: "stdin",
            size: stdin.len(),
            limit: limits.max_stdin_bytes,
        });
    }
    if tests.len() > MAX_TESTS {
        return Err(RequestError::InvalidItem {
            field: "tests".into(),
            reason: format!("holds {} tests; the limit is {MAX_TESTS}", tests.len()),
            limit: None,
        });
    }
    if !tests.is_empty() && !stdin.is_empty() {
        return Err(RequestError::InvalidValue {
            field: "stdin",
            reason: "a submission with tests gives each test its own stdin",
        });
    }
    let tests = tests
        .iter()
        .map(|test| {
            Ok(TestCase {
                stdin: match test.text("stdin")? {
                    Some(_) => test.item_text("stdin", MAX_TEST_BYTES)?,
                    None => String::new(),
                },
                expected_stdout: test.item_text("expected_stdout", MAX_TEST_BYTES)?,
            })
        })
        .collect::<Result<Vec<_>, RequestError>>()?;
    Ok(NewSubmission {
        language,
        program: Program {
            files,
            stdin: stdin.to_owned(),
            tests,
        },
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
                program: Program {
                    stdin: "x".into(),
                    ..Program::single(Language::Python, "print(1)".into(), String::new())
                },
            }
        );
        assert_eq!(
            parse(r#"{"language":"c","source":"int main(){}"}"#)
                .unwrap()
                .program
                .stdin,
            ""
        );
    }

    #[test]
    fn accepts_a_project_with_tests() {
        let ok = parse(
            r#"{"language":"c","files":[{"name":"main.c","content":"int main(){}"},
                {"name":"include/util.h","content":""}],
                "tests":[{"stdin":"1\n","expected_stdout":"2\n"},{"expected_stdout":""}]}"#,
        )
        .unwrap();
        assert_eq!(ok.program.files.len(), 2);
        assert_eq!(ok.program.files[1].name, "include/util.h");
        assert_eq!(
            ok.program.tests,
            [
                TestCase {
                    stdin: "1\n".into(),
                    expected_stdout: "2\n".into()
                },
                TestCase {
                    stdin: "".into(),
                    expected_stdout: "".into()
                }
            ]
        );
        // No tests is a plain run.
        assert!(parse(r#"{"language":"go","source":"x","tests":[]}"#)
            .unwrap()
            .program
            .tests
            .is_empty());
    }

    /// The refusal of `body`: its code, the field named in its message.
    fn refusal(body: &str) -> (&'static str, String) {
        let error = parse(body).unwrap_err();
        (error.code(), error.to_string())
    }

    #[test]
    fn every_refused_project_or_test_names_its_field() {
        let big = "x".repeat(MAX_TEST_BYTES + 1);
        for (body, code, names) in [
            (
                r#"{"language":"c","source":"x","files":[]}"#.to_owned(),
                "invalid_value",
                "`files`",
            ),
            (
                r#"{"language":"c","files":{}}"#.into(),
                "invalid_value",
                "`files`",
            ),
            (
                r#"{"language":"c","files":[1]}"#.into(),
                "invalid_value",
                "`files[0]`",
            ),
            (
                r#"{"language":"c","files":[{"name":"a.c"}]}"#.into(),
                "invalid_value",
                "`files[0].content`",
            ),
            (
                r#"{"language":"c","files":[{"name":"a.c","content":""},{"name":7,"content":""}]}"#
                    .into(),
                "invalid_value",
                "`files[1].name`",
            ),
            (
                r#"{"language":"c","files":[{"name":"a.c","content":""},{"name":"../b.c","content":""}]}"#
                    .into(),
                "invalid_value",
                "`files[1].name`",
            ),
            (
                r#"{"language":"c","files":[{"name":"a.h","content":""}]}"#.into(),
                "invalid_value",
                "a c project needs",
            ),
            (
                r#"{"language":"c","files":[]}"#.into(),
                "invalid_value",
                "1 to 32 files",
            ),
            (
                format!(
                    r#"{{"language":"c","files":[{{"name":"a.c","content":"{}"}}]}}"#,
                    "x".repeat(crate::project::MAX_PROJECT_BYTES + 1)
                ),
                "too_large",
                "at most 262144",
            ),
            (
                r#"{"language":"c","source":"x","tests":{}}"#.into(),
                "invalid_value",
                "`tests`",
            ),
            (
                r#"{"language":"c","source":"x","tests":[{"stdin":""}]}"#.into(),
                "invalid_value",
                "`tests[0].expected_stdout`",
            ),
            (
                r#"{"language":"c","source":"x","tests":[{"stdin":1,"expected_stdout":""}]}"#
                    .into(),
                "invalid_value",
                "`tests[0].stdin`",
            ),
            (
                format!(
                    r#"{{"language":"c","source":"x","tests":[{{"expected_stdout":""}},{{"stdin":"{big}","expected_stdout":""}}]}}"#
                ),
                "too_large",
                "`tests[1].stdin`",
            ),
            (
                format!(
                    r#"{{"language":"c","source":"x","tests":[{{"expected_stdout":"{big}"}}]}}"#
                ),
                "too_large",
                "`tests[0].expected_stdout`",
            ),
            (
                format!(
                    r#"{{"language":"c","source":"x","tests":[{}]}}"#,
                    vec![r#"{"expected_stdout":""}"#; MAX_TESTS + 1].join(",")
                ),
                "invalid_value",
                "`tests`",
            ),
            (
                r#"{"language":"c","source":"x","stdin":"1","tests":[{"expected_stdout":""}]}"#
                    .into(),
                "invalid_value",
                "`stdin`",
            ),
        ] {
            let (got, message) = refusal(&body);
            assert_eq!(got, code, "{message}");
            assert!(message.contains(names), "{message} should name {names}");
        }
        let error = parse(&format!(
            r#"{{"language":"c","files":[{{"name":"a.c","content":"{}"}}]}}"#,
            "x".repeat(crate::project::MAX_PROJECT_BYTES + 1)
        ))
        .unwrap_err();
        assert!(error.is_too_large());
        assert!(!parse(r#"{"language":"c","files":[]}"#)
            .unwrap_err()
            .is_too_large());
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
