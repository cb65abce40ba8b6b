//! Projects (Contract 2b): a submission's `files` instead of its `source`, checked once here.
//!
//! ```text
//! files   1..=MAX_FILES of {"name", "content"}, MAX_PROJECT_BYTES of content in all
//! name    a relative path: segments of [A-Za-z0-9._-] joined by '/', no '.' or '..' segment,
//!         no leading or trailing '/', at most MAX_NAME_BYTES; no two files share one, and
//!         no name is both a file and a folder ("a" and "a/b"); the top-level names
//!         RESERVED are the sandbox's own (its temporary and scratch folders)
//! entry   python main.py, javascript main.js, go main.go, rust main.rs (at the top level);
//!         c and cpp: every .c / .cpp file is compiled together (at least one)
//! ```
//!
//! Each refusal names the file and what is wrong with it, as the API's 422/413 say it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::Language;

/// Most files in one project.
pub const MAX_FILES: usize = 32;
/// Most bytes of content in one project, all files together.
pub const MAX_PROJECT_BYTES: usize = 256 * 1024;
/// Longest file name (its whole path).
pub const MAX_NAME_BYTES: usize = 255;
/// Top-level names the sandbox keeps for itself in the project's folder: its temporary
/// folder (`TMPDIR`) and the compile step's scratch folder, removed after it.
pub const RESERVED: [&str; 2] = [".tmp", ".codebox"];

/// One file of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectFile {
    /// Its path, relative to the project's folder.
    pub name: String,
    /// Its text.
    pub content: String,
}

/// Why a project was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    /// No files, or more than [`MAX_FILES`].
    #[error("a project has 1 to {MAX_FILES} files; this one has {0}")]
    FileCount(usize),
    /// More than [`MAX_PROJECT_BYTES`] of content.
    #[error("the files hold {0} bytes; a project holds at most {MAX_PROJECT_BYTES}")]
    TooLarge(usize),
    /// A file's name breaks the rules.
    #[error("`files[{index}].name` {reason}")]
    BadName {
        /// The file's position in `files`.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files share a name, or one's name is a folder of the other's.
    #[error("`files[{index}].name` {clash}")]
    Clash {
        /// The later file's position.
        index: usize,
        /// How it clashes.
        clash: Clash,
    },
    /// The language's entry file is missing.
    #[error("a {language} project needs {needs}")]
    NoEntry {
        /// The project's language.
        language: Language,
        /// What it needs.
        needs: &'static str,
    },
}

impl ProjectError {
    /// Whether the refusal is about size (413) rather than shape (422).
    pub fn is_too_large(&self) -> bool {
        matches!(self, ProjectError::TooLarge(_))
    }
}

/// Why `name` is not a file name a project may hold (`None`: it may). The supervisor checks
/// every name it writes with this too, whatever the fleet sent.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return Some("is longer than 255 bytes");
    }
    if name.starts_with('/') {
        return Some("must be relative (no leading '/')");
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Some("has an empty segment ('//' or a trailing '/')");
        }
        if segment == "." || segment == ".." {
            return Some("may not hold '.' or '..' segments");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Some("may hold only A-Z, a-z, 0-9, '.', '_', '-' and '/'");
        }
    }
    let top = name.split('/').next().unwrap_or(name);
    if RESERVED.contains(&top) {
        return Some("starts with a name the sandbox keeps for itself (.tmp, .codebox)");
    }
    None
}

/// How a name clashes with the names before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Clash {
    /// Another file has this name.
    #[error("repeats {0:?}")]
    Repeated(String),
    /// This name is a folder of an earlier file, or an earlier file is a folder of it.
    #[error("{0:?} would be both a file and a folder")]
    FileAndFolder(String),
}

/// The names of a project's files, taken one at a time: a project is a tree of files, so no
/// name may repeat and none may be another's folder ("a" and "a/b").
#[derive(Debug, Default)]
pub struct Names {
    files: HashSet<String>,
    folders: HashSet<String>,
}

impl Names {
    /// Adds `name` (already checked with [`name_problem`]), or says how it clashes.
    pub fn add(&mut self, name: &str) -> Result<(), Clash> {
        if self.files.contains(name) {
            return Err(Clash::Repeated(name.to_string()));
        }
        if self.folders.contains(name) {
            return Err(Clash::FileAndFolder(name.to_string()));
        }
        let folders: Vec<&str> = name.match_indices('/').map(|(at, _)| &name[..at]).collect();
        if let Some(file) = folders.iter().find(|f| self.files.contains(**f)) {
            return Err(Clash::FileAndFolder((*file).to_string()));
        }
        self.folders.extend(folders.into_iter().map(str::to_string));
        self.files.insert(name.to_string());
        Ok(())
    }
}

/// What `language` needs among `names` to build.
fn entry_problem(language: Language, names: &[&str]) -> Option<&'static str> {
    let has = |wanted: &str| names.contains(&wanted);
    let any_with = |ext: &str| names.iter().any(|n| n.ends_with(ext));
    match language {
        Language::Python if !has("main.py") => Some("a main.py at the top level"),
        Language::Javascript if !has("main.js") => Some("a main.js at the top level"),
        Language::Go if !has("main.go") => Some("a main.go at the top level"),
        Language::Rust if !has("main.rs") => Some("a main.rs at the top level"),
        Language::C if !any_with(".c") => Some("at least one .c file"),
        Language::Cpp if !any_with(".cpp") => Some("at least one .cpp file"),
        _ => None,
    }
}

/// Checks a project of `language`.
pub fn check_project(language: Language, files: &[ProjectFile]) -> Result<(), ProjectError> {
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(ProjectError::FileCount(files.len()));
    }
    let total: usize = files.iter().map(|f| f.content.len()).sum();
    if total > MAX_PROJECT_BYTES {
        return Err(ProjectError::TooLarge(total));
    }
    let mut names = Names::default();
    for (index, file) in files.iter().enumerate() {
        if let Some(reason) = name_problem(&file.name) {
            return Err(ProjectError::BadName { index, reason });
        }
        names
            .add(&file.name)
            .map_err(|clash| ProjectError::Clash { index, clash })?;
    }
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    match entry_problem(language, &names) {
        Some(needs) => Err(ProjectError::NoEntry { language, needs }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &str) -> ProjectFile {
        ProjectFile {
            name: name.into(),
            content: content.into(),
        }
    }

    #[test]
    fn each_language_names_its_entry() {
        let ok = |language, names: &[&str]| {
            let files: Vec<_> = names.iter().map(|n| file(n, "x")).collect();
            check_project(language, &files)
        };
        assert_eq!(ok(Language::Python, &["main.py", "lib/util.py"]), Ok(()));
        assert_eq!(ok(Language::Javascript, &["main.js", "a.js"]), Ok(()));
        assert_eq!(ok(Language::Go, &["main.go", "greet.go"]), Ok(()));
        assert_eq!(ok(Language::Rust, &["main.rs", "greet.rs"]), Ok(()));
        assert_eq!(ok(Language::C, &["src/a.c", "include/a.h"]), Ok(()));
        assert_eq!(ok(Language::Cpp, &["a.cpp", "a.hpp"]), Ok(()));
        for (language, names) in [
            (Language::Python, &["lib/main.py"][..]),
            (Language::Javascript, &["main.py"]),
            (Language::Go, &["cmd/main.go"]),
            (Language::Rust, &["lib.rs"]),
            (Language::C, &["a.h"]),
            (Language::Cpp, &["a.c"]),
        ] {
            assert!(
                matches!(ok(language, names), Err(ProjectError::NoEntry { .. })),
                "{language} {names:?}"
            );
        }
    }

    #[test]
    fn every_refused_name_says_which_file_and_why() {
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "dir/",
            "../x",
            "a/../b",
            "./a",
            "a b",
            "ü.py",
            "a\\b",
            "a\0",
        ] {
            let files = [file("main.py", "x"), file(bad, "y")];
            match check_project(Language::Python, &files) {
                Err(ProjectError::BadName { index: 1, reason }) => assert!(!reason.is_empty()),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(
            check_project(Language::Python, &[file("main.py", ""), file(&long, "")]),
            Err(ProjectError::BadName { index: 1, .. })
        ));
        let error = check_project(
            Language::Python,
            &[file("main.py", ""), file("main.py", "")],
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "`files[1].name` repeats \"main.py\"");
        assert!(check_project(
            Language::Python,
            &[
                file("main.py", ""),
                file(".hidden-ok", ""),
                file("a/.tmp", "")
            ]
        )
        .is_ok());
        for reserved in [".tmp", ".codebox", ".tmp/x.py", ".codebox/go-build"] {
            assert!(
                matches!(
                    check_project(Language::Python, &[file("main.py", ""), file(reserved, "")]),
                    Err(ProjectError::BadName { index: 1, .. })
                ),
                "{reserved}"
            );
        }
    }

    #[test]
    fn a_name_is_a_file_or_a_folder_never_both() {
        let names = |list: &[&str]| {
            let files: Vec<_> = list.iter().map(|n| file(n, "")).collect();
            check_project(Language::Python, &files)
        };
        assert_eq!(
            names(&["main.py", "lib/a.py", "lib/b/c.py", "lib/b/d.py"]),
            Ok(())
        );
        for (list, culprit) in [
            (&["main.py", "lib", "lib/a.py"][..], "lib"),
            (&["main.py", "lib/a.py", "lib"], "lib"),
            (&["main.py", "a/b/c.py", "a/b"], "a/b"),
            (&["main.py", "a/b", "a/b/c/d.py"], "a/b"),
            (&["main.py", "main.py/x.py"], "main.py"),
        ] {
            match names(list) {
                Err(ProjectError::Clash {
                    clash: Clash::FileAndFolder(name),
                    ..
                }) => assert_eq!(name, culprit, "{list:?}"),
                other => panic!("{list:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn counts_and_sizes_have_limits() {
        assert_eq!(
            check_project(Language::Python, &[]),
            Err(ProjectError::FileCount(0))
        );
        let many: Vec<_> = (0..=MAX_FILES)
            .map(|i| file(&format!("f{i}.py"), ""))
            .collect();
        assert_eq!(
            check_project(Language::Python, &many),
            Err(ProjectError::FileCount(MAX_FILES + 1))
        );
        let half = "x".repeat(MAX_PROJECT_BYTES / 2);
        let files = [file("main.py", &half), file("b.py", &half)];
        assert_eq!(check_project(Language::Python, &files), Ok(()));
        let files = [file("main.py", &half), file("b.py", &(half.clone() + "x"))];
        let error = check_project(Language::Python, &files).unwrap_err();
        assert!(error.is_too_large());
    }
}
