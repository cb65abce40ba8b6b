//! The request on the container's stdin (see the module above for its layout): the fleet
//! encodes it, the supervisor decodes it as it reads, checking every count, size and name
//! before anything reaches the file system.

use std::io::{self, Read};

use codebox_submission::project::{
    name_problem, Clash, Names, ProjectFile, MAX_FILES, MAX_NAME_BYTES, MAX_PROJECT_BYTES,
};
use codebox_submission::Language;
use thiserror::Error;

use super::MAX_ARTIFACT_BYTES;

/// Digits in a run token.
const TOKEN_LEN: usize = 32;
/// Most digits of a number in a request line.
const MAX_DIGITS: usize = 8;
/// The longest request line (the header; a file's line is shorter).
pub(crate) const MAX_REQUEST_LINE: usize = 64;

/// What the supervisor is asked to do with a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compile (or check), then run the program with the stdin that follows.
    Run,
    /// Compile only, and hand the built program back.
    Build,
    /// Run a build's program, sent with the project, without compiling.
    Built,
}

impl Mode {
    /// Its word in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Build => "build",
            Mode::Built => "built",
        }
    }

    fn parse(word: &str) -> Option<Mode> {
        [Mode::Run, Mode::Build, Mode::Built]
            .into_iter()
            .find(|m| m.as_str() == word)
    }
}

/// One file of a request, as the fleet sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File<'a> {
    /// Its name under /work.
    pub name: &'a str,
    /// Its bytes.
    pub content: &'a [u8],
    /// Written with mode 0755 (a build's program) rather than 0644.
    pub executable: bool,
}

/// The bytes of a request: the header, the files, then the program's stdin.
pub fn stdin_payload(token: &str, mode: Mode, files: &[File<'_>], stdin: &[u8]) -> Vec<u8> {
    let size: usize = files
        .iter()
        .map(|f| f.name.len() + f.content.len() + 24)
        .sum();
    let mut payload = Vec::with_capacity(64 + size + stdin.len());
    payload.extend_from_slice(format!("{token} {} {}\n", mode.as_str(), files.len()).as_bytes());
    for file in files {
        let permissions = if file.executable { 755 } else { 644 };
        let line = format!("{} {} {permissions}\n", file.name.len(), file.content.len());
        payload.extend_from_slice(line.as_bytes());
        payload.extend_from_slice(file.name.as_bytes());
        payload.extend_from_slice(file.content);
    }
    payload.extend_from_slice(stdin);
    payload
}

/// What the fleet asks of one container.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The project's language.
    pub language: Language,
    /// What to do with it.
    pub mode: Mode,
    /// The project (checked with `check_project`).
    pub files: &'a [ProjectFile],
    /// A build's program, for [`Mode::Built`] (empty when the language has none).
    pub artifact: &'a [u8],
    /// The program's stdin (nothing for [`Mode::Build`]).
    pub stdin: &'a [u8],
}

impl<'a> Request<'a> {
    /// The files it sends: the project, and for [`Mode::Built`] the build's program under
    /// the toolchain's name, in place of a project file of that name (which the compile step
    /// had overwritten).
    pub fn files(&self) -> Vec<File<'a>> {
        let artifact = match (self.mode, self.language.toolchain().artifact) {
            (Mode::Built, Some(name)) => Some(name),
            _ => None,
        };
        let mut files: Vec<File<'a>> = self
            .files
            .iter()
            .filter(|f| Some(f.name.as_str()) != artifact)
            .map(|f| File {
                name: &f.name,
                content: f.content.as_bytes(),
                executable: false,
            })
            .collect();
        if let Some(name) = artifact {
            files.push(File {
                name,
                content: self.artifact,
                executable: true,
            });
        }
        files
    }

    /// Its bytes, for the run with this token.
    pub fn encode(&self, token: &str) -> Vec<u8> {
        stdin_payload(token, self.mode, &self.files(), self.stdin)
    }
}

/// The header line of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The run's token.
    pub token: String,
    /// What to do.
    pub mode: Mode,
    /// How many files follow.
    pub files: usize,
}

/// A file's line, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// Its name (checked).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Mode 0755 rather than 0644.
    pub executable: bool,
}

/// Why a request is refused: the supervisor says FAIL and runs nothing.
#[derive(Debug, Error)]
pub enum RequestError {
    /// Stdin ended before the request did.
    #[error("the request ended early: {0}")]
    Truncated(&'static str),
    /// A request line did not end within [`MAX_REQUEST_LINE`] bytes.
    #[error("a request line longer than {MAX_REQUEST_LINE} bytes")]
    LineTooLong,
    /// The token is not 32 lowercase hex digits.
    #[error("malformed run token")]
    Token,
    /// The mode is not `run`, `build` or `built`.
    #[error("unknown mode")]
    Mode,
    /// A number is not decimal ASCII of at most 8 digits, or a line has the wrong fields.
    #[error("malformed {0} line")]
    Malformed(&'static str),
    /// Too many files, or none.
    #[error("{0} files; a request holds 1 to {max}", max = MAX_FILES + 1)]
    FileCount(usize),
    /// A file's name breaks the rules.
    #[error("file {index}: the name {reason}")]
    BadName {
        /// Its position.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file's name clashes with an earlier one.
    #[error("file {index}: the name {clash}")]
    Clash {
        /// Its position.
        index: usize,
        /// How.
        clash: Clash,
    },
    /// The sources are too large together, or the program is.
    #[error("file {index}: {what} over {limit} bytes")]
    TooLarge {
        /// The file that passed the limit.
        index: usize,
        /// What passed it.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// An executable file outside a `built` request, or a second one.
    #[error("file {0}: only a built run's one program may be executable")]
    Executable(usize),
    /// Reading stdin or writing a file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One request line (without its newline), read a byte at a time: nothing after it may be
/// taken from the stream.
fn read_line(input: &mut impl Read, what: &'static str) -> Result<String, RequestError> {
    let mut line = Vec::with_capacity(MAX_REQUEST_LINE);
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(0) => return Err(RequestError::Truncated(what)),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < MAX_REQUEST_LINE => line.push(byte[0]),
            Ok(_) => return Err(RequestError::LineTooLong),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    String::from_utf8(line).map_err(|_| RequestError::Malformed(what))
}

/// A decimal field of at most [`MAX_DIGITS`] digits.
fn number(field: &str, what: &'static str) -> Result<usize, RequestError> {
    if field.is_empty() || field.len() > MAX_DIGITS || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::Malformed(what));
    }
    field.parse().map_err(|_| RequestError::Malformed(what))
}

impl Header {
    /// Parses "<T> <M> <N>" (without its newline).
    pub fn parse(line: &str) -> Result<Header, RequestError> {
        let mut fields = line.split(' ');
        let (Some(token), Some(mode), Some(count), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(RequestError::Malformed("header"));
        };
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if token.len() != TOKEN_LEN || !token.bytes().all(lower_hex) {
            return Err(RequestError::Token);
        }
        let mode = Mode::parse(mode).ok_or(RequestError::Mode)?;
        let files = number(count, "header")?;
        if files == 0 || files > MAX_FILES + 1 {
            return Err(RequestError::FileCount(files));
        }
        Ok(Header {
            token: token.to_string(),
            mode,
            files,
        })
    }
}

/// Reads a request's header and files from `input`, handing each file to `write` with a
/// reader of exactly its content; returns the header. Reads nothing past the last file, so
/// what follows is the program's stdin. Every name is checked before `write` sees it; `write`
/// should consume the content (whatever it leaves is skipped).
pub fn read_request<R: Read>(
    input: &mut R,
    mut write: impl FnMut(&FileHeader, &mut dyn Read) -> io::Result<()>,
) -> Result<Header, RequestError> {
    let header = Header::parse(&read_line(input, "header")?)?;
    let mut names = Names::default();
    let (mut sources, mut source_bytes, mut executables) = (0usize, 0usize, 0usize);
    for index in 0..header.files {
        let line = read_line(input, "file")?;
        let mut fields = line.split(' ');
        let (Some(name_len), Some(size), Some(permissions), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(RequestError::Malformed("file"));
        };
        let (name_len, size) = (number(name_len, "file")?, number(size, "file")?);
        let executable = match permissions {
            "644" => false,
            "755" => true,
            _ => return Err(RequestError::Malformed("file")),
        };
        if executable {
            executables += 1;
            if header.mode != Mode::Built || executables > 1 {
                return Err(RequestError::Executable(index));
            }
            if size > MAX_ARTIFACT_BYTES {
                return Err(RequestError::TooLarge {
                    index,
                    what: "the program is",
                    limit: MAX_ARTIFACT_BYTES,
                });
            }
        } else {
            sources += 1;
            source_bytes += size;
            if sources > MAX_FILES {
                return Err(RequestError::FileCount(sources));
            }
            if source_bytes > MAX_PROJECT_BYTES {
                return Err(RequestError::TooLarge {
                    index,
                    what: "the files are",
                    limit: MAX_PROJECT_BYTES,
                });
            }
        }
        if name_len > MAX_NAME_BYTES {
            return Err(RequestError::BadName {
                index,
                reason: "is longer than 255 bytes",
            });
        }
        let mut name = Vec::with_capacity(name_len);
        input.take(name_len as u64).read_to_end(&mut name)?;
        if name.len() != name_len {
            return Err(RequestError::Truncated("file name"));
        }
        let name = String::from_utf8(name).map_err(|_| RequestError::BadName {
            index,
            reason: "is not UTF-8",
        })?;
        if let Some(reason) = name_problem(&name) {
            return Err(RequestError::BadName { index, reason });
        }
        names
            .add(&name)
            .map_err(|clash| RequestError::Clash { index, clash })?;
        let file = FileHeader {
            name,
            size: size as u64,
            executable,
        };
        let mut content = input.take(file.size);
        write(&file, &mut content)?;
        io::copy(&mut content, &mut io::sink())?;
        if content.limit() != 0 {
            return Err(RequestError::Truncated("file content"));
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff";

    /// A request as read back: the header, each file and its content, what is left (stdin).
    type Decoded = (Header, Vec<(FileHeader, Vec<u8>)>, Vec<u8>);

    /// Decodes a whole request from bytes.
    fn decode(bytes: &[u8]) -> Result<Decoded, RequestError> {
        let mut input = bytes;
        let mut files = Vec::new();
        let header = read_request(&mut input, |file, content| {
            let mut bytes = Vec::new();
            content.read_to_end(&mut bytes)?;
            files.push((file.clone(), bytes));
            Ok(())
        })?;
        Ok((header, files, input.to_vec()))
    }

    fn file<'a>(name: &'a str, content: &'a [u8]) -> File<'a> {
        File {
            name,
            content,
            executable: false,
        }
    }

    fn project(names: &[(&str, &str)]) -> Vec<ProjectFile> {
        names
            .iter()
            .map(|(name, content)| ProjectFile {
                name: name.to_string(),
                content: content.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_request_is_framed_and_reads_back_exactly() {
        let files = [
            file("main.py", b"import util\n"),
            file("lib/util.py", b"x = 1\n"),
            file("empty", b""),
        ];
        let payload = stdin_payload(TOKEN, Mode::Run, &files, b"the stdin\n");
        assert!(payload.starts_with(format!("{TOKEN} run 3\n7 12 644\nmain.py").as_bytes()));
        let (header, read, rest) = decode(&payload).unwrap();
        assert_eq!(
            header,
            Header {
                token: TOKEN.into(),
                mode: Mode::Run,
                files: 3
            }
        );
        let got: Vec<(&str, &[u8], bool)> = read
            .iter()
            .map(|(h, c)| (h.name.as_str(), c.as_slice(), h.executable))
            .collect();
        assert_eq!(
            got,
            [
                ("main.py", &b"import util\n"[..], false),
                ("lib/util.py", b"x = 1\n", false),
                ("empty", b"", false)
            ]
        );
        assert_eq!(rest, b"the stdin\n", "stdin is left for the program");
        let token = super::super::new_token();
        assert_eq!(
            decode(&stdin_payload(&token, Mode::Build, &files[..1], b""))
                .unwrap()
                .0
                .token,
            token
        );
    }

    #[test]
    fn a_built_request_carries_the_program_executable_in_place_of_a_stale_one() {
        let files = project(&[
            ("main.c", "int main(void){}"),
            ("main", "stale"),
            ("data.txt", "1 2"),
        ]);
        let request = |language, mode, artifact: &'static [u8]| Request {
            language,
            mode,
            files: &files,
            artifact,
            stdin: b"in",
        };
        let built = request(Language::C, Mode::Built, b"\x7fELF...");
        let (header, read, rest) = decode(&built.encode(TOKEN)).unwrap();
        assert_eq!(header.mode, Mode::Built);
        let got: Vec<(&str, &[u8], bool)> = read
            .iter()
            .map(|(h, c)| (h.name.as_str(), c.as_slice(), h.executable))
            .collect();
        assert_eq!(
            got,
            [
                ("main.c", &b"int main(void){}"[..], false),
                ("data.txt", b"1 2", false),
                ("main", b"\x7fELF...", true)
            ]
        );
        assert_eq!(rest, b"in");
        // A run sends the project as it is; python has no program to send.
        assert_eq!(request(Language::C, Mode::Run, b"").files().len(), 3);
        let py = project(&[("main.py", "print(1)")]);
        let python = Request {
            files: &py,
            ..request(Language::Python, Mode::Built, b"")
        };
        assert_eq!(python.files(), [file("main.py", b"print(1)")]);
    }

    #[test]
    fn a_truncated_request_is_refused_wherever_it_stops() {
        let files = [
            file("main.c", b"int main(void) { return 0; }"),
            file("a/b.h", b"#pragma once"),
        ];
        let payload = stdin_payload(TOKEN, Mode::Build, &files, b"");
        for cut in 0..payload.len() {
            assert!(
                matches!(decode(&payload[..cut]), Err(RequestError::Truncated(_))),
                "cut at {cut}: {:?}",
                decode(&payload[..cut]).map(|(h, ..)| h)
            );
        }
        assert!(decode(&payload).is_ok());
    }

    #[test]
    fn malformed_headers_and_lines_are_refused() {
        let upper = TOKEN.to_uppercase();
        for (line, want) in [
            (format!("{TOKEN} run"), "Malformed"),
            (format!("{TOKEN} run 1 2"), "Malformed"),
            (format!("{} run 1", &TOKEN[1..]), "Token"),
            (format!("{upper} run 1"), "Token"),
            (format!("{TOKEN} walk 1"), "Mode"),
            (format!("{TOKEN} run 0"), "FileCount"),
            (format!("{TOKEN} run {}", MAX_FILES + 2), "FileCount"),
            (format!("{TOKEN} run -1"), "Malformed"),
            (format!("{TOKEN} run 123456789"), "Malformed"),
            (format!("{TOKEN} run 1\n7 1"), "Malformed"),
            (format!("{TOKEN} run 1\n7 1 777"), "Malformed"),
            (format!("{TOKEN} run 1\n7 +1 644"), "Malformed"),
            (
                format!("{TOKEN} run 1\n{}", "9".repeat(MAX_REQUEST_LINE + 1)),
                "LineTooLong",
            ),
        ] {
            let error = decode(format!("{line}\n").as_bytes())
                .map(|_| ())
                .unwrap_err();
            assert!(
                format!("{error:?}").starts_with(want),
                "{line:?}: {error:?}"
            );
        }
    }

    #[test]
    fn hostile_names_are_refused_before_anything_is_written() {
        for name in [
            "/etc/passwd",
            "../escape",
            "a/../../escape",
            "./main.py",
            "a//b",
            "dir/",
            "",
            "a\0b",
            "nul\n",
            ".tmp/x",
            ".codebox",
            "\u{fffd}.py",
        ] {
            let files = [file("main.py", b"ok"), file(name, b"evil")];
            let mut written = Vec::new();
            let payload = stdin_payload(TOKEN, Mode::Run, &files, b"");
            let error = read_request(&mut payload.as_slice(), |file, _| {
                written.push(file.name.clone());
                Ok(())
            })
            .unwrap_err();
            assert!(
                matches!(error, RequestError::BadName { index: 1, .. }),
                "{name:?}: {error}"
            );
            assert_eq!(written, ["main.py"], "{name:?}");
        }
        // Not UTF-8.
        let mut payload = format!("{TOKEN} run 1\n2 0 644\n").into_bytes();
        payload.extend_from_slice(b"\xff\xfe");
        assert!(matches!(
            decode(&payload),
            Err(RequestError::BadName { index: 0, .. })
        ));
        // Too long, said before it is read.
        let payload = format!("{TOKEN} run 1\n{} 0 644\n", MAX_NAME_BYTES + 1);
        assert!(matches!(
            decode(payload.as_bytes()),
            Err(RequestError::BadName { index: 0, .. })
        ));
        for names in [["lib", "lib/a.py"], ["lib/a.py", "lib"], ["a.py", "a.py"]] {
            let files = [
                file("main.py", b""),
                file(names[0], b""),
                file(names[1], b""),
            ];
            let payload = stdin_payload(TOKEN, Mode::Run, &files, b"");
            assert!(
                matches!(decode(&payload), Err(RequestError::Clash { index: 2, .. })),
                "{names:?}"
            );
        }
    }

    #[test]
    fn sizes_counts_and_programs_have_limits() {
        let half = vec![b'x'; MAX_PROJECT_BYTES / 2];
        let fits = [file("main.py", &half), file("b.py", &half)];
        assert!(decode(&stdin_payload(TOKEN, Mode::Run, &fits, b"")).is_ok());
        let over = [
            file("main.py", &half),
            file("b.py", &half),
            file("c.py", b"x"),
        ];
        assert!(matches!(
            decode(&stdin_payload(TOKEN, Mode::Run, &over, b"")),
            Err(RequestError::TooLarge { index: 2, .. })
        ));
        // Said before any of it is read: a huge size is refused at once.
        let huge = format!("{TOKEN} run 1\n7 99999999 644\nmain.py");
        assert!(matches!(
            decode(huge.as_bytes()),
            Err(RequestError::TooLarge { index: 0, .. })
        ));
        let names: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
        let many: Vec<File> = names.iter().map(|n| file(n, b"")).collect();
        assert!(matches!(
            decode(&stdin_payload(TOKEN, Mode::Run, &many, b"")),
            Err(RequestError::FileCount(n)) if n == MAX_FILES + 1
        ));
        // One executable, in a built request only, within its own limit.
        let program = File {
            name: "main",
            content: b"\x7fELF",
            executable: true,
        };
        let with_program = [file("main.c", b""), program];
        assert!(decode(&stdin_payload(TOKEN, Mode::Built, &with_program, b"")).is_ok());
        for mode in [Mode::Run, Mode::Build] {
            assert!(matches!(
                decode(&stdin_payload(TOKEN, mode, &with_program, b"")),
                Err(RequestError::Executable(1))
            ));
        }
        let two = [
            program,
            File {
                name: "other",
                ..program
            },
        ];
        assert!(matches!(
            decode(&stdin_payload(TOKEN, Mode::Built, &two, b"")),
            Err(RequestError::Executable(1))
        ));
        let big = format!("{TOKEN} built 1\n4 {} 755\nmain", MAX_ARTIFACT_BYTES + 1);
        assert!(matches!(
            decode(big.as_bytes()),
            Err(RequestError::TooLarge { index: 0, .. })
        ));
    }

    #[test]
    fn a_writer_that_stops_early_does_not_shift_the_framing() {
        let files = [file("main.py", b"0123456789"), file("b.py", b"second")];
        let payload = stdin_payload(TOKEN, Mode::Run, &files, b"stdin");
        let mut input = payload.as_slice();
        let mut seen = Vec::new();
        read_request(&mut input, |file, content| {
            let mut first = [0u8; 2];
            content.read_exact(&mut first)?;
            seen.push((file.name.clone(), first));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("main.py".to_string(), *b"01"),
                ("b.py".to_string(), *b"se")
            ]
        );
        assert_eq!(input, b"stdin");
    }
}
