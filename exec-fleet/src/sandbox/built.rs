//! A successful build ([`Sandbox::build`](super::Sandbox::build)): what every run of it
//! ([`Sandbox::run_built`](super::Sandbox::run_built)) is sent, so a submission's tests
//! compile once.

use std::sync::Arc;

use codebox_sandbox::{Build, Mode};
use codebox_submission::project::ProjectFile;
use codebox_submission::Language;

use super::drive::Program;

/// A successful build: the project and the program built from it. Cheap to share among the
/// runs of a submission's tests (`Arc` inside, `Clone`).
#[derive(Clone)]
pub struct Built {
    language: Language,
    files: Arc<[ProjectFile]>,
    /// The toolchain's artifact (empty for python and javascript, whose sources are the
    /// program).
    program: Arc<[u8]>,
    compile_output: Option<Arc<str>>,
}

impl Built {
    pub(super) fn new(language: Language, files: Arc<[ProjectFile]>, build: Build) -> Built {
        Built {
            language,
            files,
            program: build.program.into(),
            compile_output: build.compile_output.map(Arc::from),
        }
    }

    /// The project's language.
    pub fn language(&self) -> Language {
        self.language
    }

    /// The compile step's output, as a run's result shows it (`None` for a clean check of
    /// python or javascript).
    pub fn compile_output(&self) -> Option<&str> {
        self.compile_output.as_deref()
    }

    /// The size of the built program in bytes (0 when the sources are the program).
    pub fn program_bytes(&self) -> usize {
        self.program.len()
    }

    /// A run of it with `stdin`.
    pub(super) fn program(&self, stdin: &str) -> Program {
        Program {
            language: self.language,
            mode: Mode::Built,
            files: self.files.clone(),
            artifact: self.program.clone(),
            stdin: stdin.as_bytes().to_vec(),
        }
    }
}

impl std::fmt::Debug for Built {
    /// Sizes, not the program's bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("language", &self.language)
            .field("files", &self.files.len())
            .field("program_bytes", &self.program.len())
            .field("compile_output", &self.compile_output)
            .finish()
    }
}
