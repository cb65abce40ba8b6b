//! The job message: what travels through the queue from the API to a worker.
//!
//! ```text
//! {"id", "language", "source" | "files": [{"name", "content"}], "stdin",
//!  "tests": [{"stdin", "expected_stdout"}], "room", "run_credential"}     the program inline
//! {"id", "language", "stdin": "", "payload": {"parts": N}, "room", ...}   the program stored
//! ```
//!
//! Every text travels base64-encoded, so a message's size has a fixed bound whatever
//! characters it holds (JSON escaping alone could blow a 64 KiB field of control characters
//! up six-fold). A program of one entry file and no tests is written as `source`, exactly as
//! before projects existed, so a worker of the previous version still runs it during a
//! rolling deploy. A program too large for a message (a project's 256 KiB and its tests'
//! megabytes, Contract 2b) waits in the [`crate::PayloadStore`] under the submission's id: the
//! message says in how many parts, and its bytes are [`Program::to_payload`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::judge::TestCase;
use crate::project::ProjectFile;
use crate::Language;

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The project's files (a single source is one file named the language's entry).
    pub files: Vec<ProjectFile>,
    /// The program's stdin (empty when not given, and for a tests run).
    pub stdin: String,
    /// The test cases (none: a plain run).
    pub tests: Vec<TestCase>,
}

/// Where a job's program is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// In the message.
    Inline(Program),
    /// In the payload store, in this many parts.
    Stored {
        /// How many parts.
        parts: u32,
    },
}

/// One run to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Message", into = "Message")]
pub struct Job {
    /// The submission id.
    pub id: String,
    /// The language.
    pub language: Language,
    /// The program, or where it is.
    pub payload: Payload,
    /// The room the run was started from, as the edge named it (absent for runs that came
    /// without one).
    pub room: Option<String>,
    /// The credential for the run's live channel into its room (Contract 4), when the room
    /// follows the run live: the worker runs it interactively and streams it there.
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

    /// This job with its program moved out of the message, and the bytes to store for it
    /// (`None` when it is stored already).
    pub fn into_stored(self) -> Result<(Job, Option<Vec<u8>>), MessageError> {
        match self.payload {
            Payload::Stored { .. } => Ok((self, None)),
            Payload::Inline(ref program) => {
                let bytes = program.to_payload(self.language)?;
                let parts = crate::payload_part_count(&bytes);
                let job = Job {
                    payload: Payload::Stored { parts },
                    ..self
                };
                Ok((job, Some(bytes)))
            }
        }
    }
}

impl Program {
    /// A program of one source file (the language's entry) and its stdin.
    pub fn single(language: Language, source: String, stdin: String) -> Program {
        Program {
            files: vec![ProjectFile {
                name: language.toolchain().source_file.to_owned(),
                content: source,
            }],
            stdin,
            tests: Vec::new(),
        }
    }

    /// The bytes stored for a program too large for a message.
    pub fn to_payload(&self, language: Language) -> Result<Vec<u8>, MessageError> {
        Ok(serde_json::to_vec(&WireProgram::from_program(
            self, language,
        ))?)
    }

    /// A program stored by [`Program::to_payload`].
    pub fn from_payload(language: Language, bytes: &[u8]) -> Result<Program, MalformedJob> {
        let wire: WireProgram = serde_json::from_slice(bytes)?;
        wire.into_program(language)
            .map_err(|e| MalformedJob(serde::de::Error::custom(e)))
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

/// The message as written: [`Job`] with its program in wire form.
#[derive(Serialize, Deserialize)]
struct Message {
    id: String,
    language: Language,
    #[serde(flatten)]
    program: WireProgram,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<StoredParts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_credential: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredParts {
    parts: u32,
}

/// A program's fields as a message (or a stored payload) writes them.
#[derive(Default, Serialize, Deserialize)]
struct WireProgram {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<Base64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<WireFile>,
    #[serde(default)]
    stdin: Base64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tests: Vec<WireTest>,
}

#[derive(Serialize, Deserialize)]
struct WireFile {
    name: String,
    content: Base64,
}

#[derive(Serialize, Deserialize)]
struct WireTest {
    stdin: Base64,
    expected_stdout: Base64,
}

/// A text as base64 of its UTF-8 bytes.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
struct Base64(String);

impl From<Base64> for String {
    fn from(text: Base64) -> String {
        STANDARD.encode(text.0.as_bytes())
    }
}

impl TryFrom<String> for Base64 {
    type Error = String;
    fn try_from(encoded: String) -> Result<Self, String> {
        let bytes = STANDARD.decode(encoded).map_err(|e| e.to_string())?;
        String::from_utf8(bytes)
            .map(Base64)
            .map_err(|e| e.to_string())
    }
}

impl WireProgram {
    fn from_program(program: &Program, language: Language) -> WireProgram {
        let entry = language.toolchain().source_file;
        let (source, files) = match program.files.as_slice() {
            [only] if only.name == entry && program.tests.is_empty() => {
                (Some(Base64(only.content.clone())), Vec::new())
            }
            files => (
                None,
                files
                    .iter()
                    .map(|f| WireFile {
                        name: f.name.clone(),
                        content: Base64(f.content.clone()),
                    })
                    .collect(),
            ),
        };
        WireProgram {
            source,
            files,
            stdin: Base64(program.stdin.clone()),
            tests: program
                .tests
                .iter()
                .map(|t| WireTest {
                    stdin: Base64(t.stdin.clone()),
                    expected_stdout: Base64(t.expected_stdout.clone()),
                })
                .collect(),
        }
    }

    fn into_program(self, language: Language) -> Result<Program, &'static str> {
        let files = match (self.source, self.files.is_empty()) {
            (Some(source), true) => Program::single(language, source.0, String::new()).files,
            (None, false) => self
                .files
                .into_iter()
                .map(|f| ProjectFile {
                    name: f.name,
                    content: f.content.0,
                })
                .collect(),
            (Some(_), false) => return Err("a job has a source or files, not both"),
            (None, true) => return Err("a job has a source, files, or a stored payload"),
        };
        Ok(Program {
            files,
            stdin: self.stdin.0,
            tests: self
                .tests
                .into_iter()
                .map(|t| TestCase {
                    stdin: t.stdin.0,
                    expected_stdout: t.expected_stdout.0,
                })
                .collect(),
        })
    }

    fn is_empty(&self) -> bool {
        self.source.is_none()
            && self.files.is_empty()
            && self.tests.is_empty()
            && self.stdin.0.is_empty()
    }
}

impl From<Job> for Message {
    fn from(job: Job) -> Message {
        let (program, payload) = match &job.payload {
            Payload::Inline(program) => (WireProgram::from_program(program, job.language), None),
            Payload::Stored { parts } => {
                (WireProgram::default(), Some(StoredParts { parts: *parts }))
            }
        };
        Message {
            id: job.id,
            language: job.language,
            program,
            payload,
            room: job.room,
            run_credential: job.run_credential,
        }
    }
}

impl TryFrom<Message> for Job {
    type Error = &'static str;
    fn try_from(message: Message) -> Result<Job, &'static str> {
        let payload = match message.payload {
            Some(StoredParts { parts }) if message.program.is_empty() => Payload::Stored { parts },
            Some(_) => return Err("a job with a stored payload carries no program"),
            None => Payload::Inline(message.program.into_program(message.language)?),
        };
        Ok(Job {
            id: message.id,
            language: message.language,
            payload,
            room: message.room,
            run_credential: message.run_credential,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{MAX_TESTS, MAX_TEST_BYTES};
    use crate::project::{MAX_FILES, MAX_PROJECT_BYTES};
    use crate::Limits;

    fn job(language: Language, program: Program) -> Job {
        Job {
            id: "x".into(),
            language,
            payload: Payload::Inline(program),
            room: None,
            run_credential: None,
        }
    }

    fn file(name: &str, content: &str) -> ProjectFile {
        ProjectFile {
            name: name.into(),
            content: content.into(),
        }
    }

    #[test]
    fn round_trips() {
        let single = job(
            Language::C,
            Program::single(Language::C, "int main(){}\n\u{0}é".into(), "".into()),
        );
        let message = single.to_message().unwrap();
        assert!(!message.contains("room"), "{message}");
        assert_eq!(Job::from_message(&message).unwrap(), single);
        let in_room = Job {
            room: Some("team_7-a".into()),
            ..single
        };
        let message = in_room.to_message().unwrap();
        assert!(message.contains(r#""room":"team_7-a""#), "{message}");
        assert_eq!(Job::from_message(&message).unwrap(), in_room);

        let project = job(
            Language::Python,
            Program {
                files: vec![file("main.py", "import util"), file("lib/util.py", "x = 1")],
                stdin: String::new(),
                tests: vec![TestCase {
                    stdin: "1\n".into(),
                    expected_stdout: "2\n".into(),
                }],
            },
        );
        let message = project.to_message().unwrap();
        assert!(!message.contains("source"), "{message}");
        assert_eq!(Job::from_message(&message).unwrap(), project);
    }

    #[test]
    fn a_single_source_is_written_as_before_projects() {
        let message = job(
            Language::Go,
            Program::single(Language::Go, "package main".into(), "in".into()),
        )
        .to_message()
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&message).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["id", "language", "source", "stdin"]);
        assert_eq!(value["source"], STANDARD.encode("package main"));
        // A message of the previous version reads as a one-file program.
        let old = r#"{"id":"x","language":"python","source":"cHJpbnQoMSk=","stdin":""}"#;
        let Payload::Inline(program) = Job::from_message(old).unwrap().payload else {
            panic!("inline");
        };
        assert_eq!(program.files, [file("main.py", "print(1)")]);
    }

    #[test]
    fn worst_case_single_source_message_is_well_under_the_sqs_limit() {
        let limits = Limits::default();
        let job = Job {
            id: "00000000-0000-0000-0000-000000000000".into(),
            room: Some("r".repeat(codebox_access::room::MAX_ROOM_NAME)),
            run_credential: Some("c".repeat(codebox_access::run_credential::MAX_CREDENTIAL_BYTES)),
            ..job(
                Language::Javascript,
                Program::single(
                    Language::Javascript,
                    "\u{1}".repeat(limits.max_source_bytes),
                    "\"".repeat(limits.max_stdin_bytes),
                ),
            )
        };
        let size = job.to_message().unwrap().len();
        assert!(size < 192 * 1024, "{size} bytes");
    }

    /// The largest program the API accepts: 32 files of 255-byte names holding 256 KiB, and
    /// 32 tests of 64 KiB in and out.
    fn largest_program() -> Program {
        let name = |i: usize| format!("{i:02}{}", "n".repeat(253));
        Program {
            files: (0..MAX_FILES)
                .map(|i| file(&name(i), &"\u{1}".repeat(MAX_PROJECT_BYTES / MAX_FILES)))
                .collect(),
            stdin: String::new(),
            tests: (0..MAX_TESTS)
                .map(|_| TestCase {
                    stdin: "\"".repeat(MAX_TEST_BYTES),
                    expected_stdout: "\\".repeat(MAX_TEST_BYTES),
                })
                .collect(),
        }
    }

    #[test]
    fn the_worst_case_is_stored_in_parts_and_its_message_is_small() {
        let program = largest_program();
        let inline = job(Language::Python, program.clone());
        let error = inline.to_message().unwrap_err();
        let MessageError::TooLarge { size } = error else {
            panic!("{error}");
        };
        println!("worst case inline: {size} bytes");
        let (stored, bytes) = inline.into_stored().unwrap();
        let bytes = bytes.unwrap();
        let message = stored.to_message().unwrap();
        println!(
            "worst case stored: message {} bytes, payload {} bytes in {} parts",
            message.len(),
            bytes.len(),
            crate::payload_part_count(&bytes)
        );
        assert!(message.len() < 1024, "{message}");
        assert_eq!(
            stored.payload,
            Payload::Stored {
                parts: crate::payload_part_count(&bytes)
            }
        );
        assert_eq!(Job::from_message(&message).unwrap(), stored);
        assert_eq!(
            Program::from_payload(Language::Python, &bytes).unwrap(),
            program
        );
        // Base64 bounds the payload whatever the characters: 4/3 of the texts, plus framing.
        let texts = MAX_PROJECT_BYTES + 2 * MAX_TESTS * MAX_TEST_BYTES;
        assert!(bytes.len() < texts * 4 / 3 + 64 * 1024, "{}", bytes.len());
    }

    #[test]
    fn the_worst_case_project_alone_does_not_fit_a_message() {
        // Why payloads are stored at all: 256 KiB of files is over 256 KiB once base64.
        let program = Program {
            tests: Vec::new(),
            ..largest_program()
        };
        assert!(matches!(
            job(Language::Python, program).to_message(),
            Err(MessageError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_job_that_cannot_be_a_message_is_an_error_not_an_empty_body() {
        let job = job(
            Language::Python,
            Program::single(
                Language::Python,
                "#".repeat(MAX_MESSAGE_BYTES),
                String::new(),
            ),
        );
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
        for bad in [
            "{",
            r#"{"id":"x","language":"c","source":"!!","stdin":""}"#,
            r#"{"id":"x","language":"c","stdin":""}"#,
            r#"{"id":"x","language":"c","source":"eA==","files":[{"name":"a.c","content":"eA=="}]}"#,
            r#"{"id":"x","language":"c","source":"eA==","payload":{"parts":1}}"#,
            r#"{"id":"x","language":"c","source":"/w==","stdin":""}"#,
        ] {
            assert!(Job::from_message(bad).is_err(), "{bad}");
        }
        assert!(Program::from_payload(Language::C, b"{}").is_err());
    }
}
