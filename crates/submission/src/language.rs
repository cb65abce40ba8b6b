//! The languages CodeBox runs, and what each needs from its runner image.

use serde::{Deserialize, Serialize};

/// A supported language. The wire name is the lowercase variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// CPython 3.
    Python,
    /// Node.js.
    Javascript,
    /// C (gcc).
    C,
    /// C++ (g++).
    Cpp,
    /// Go.
    Go,
    /// Rust (rustc).
    Rust,
}

/// What `GET /v1/languages` says of one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LanguageInfo {
    /// The wire name, as sent in `language`.
    pub id: Language,
    /// Human name.
    pub name: &'static str,
    /// Toolchain and version in the runner image (checked against the image by the sandbox tests).
    pub version: &'static str,
    /// Whether a separate compile step runs first.
    pub compiled: bool,
}

impl Language {
    /// Every supported language, in display order.
    pub const ALL: [Language; 6] = [
        Language::Python,
        Language::Javascript,
        Language::C,
        Language::Cpp,
        Language::Go,
        Language::Rust,
    ];

    /// Parses a wire name (`"python"`, ...).
    pub fn from_id(id: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.id() == id)
    }

    /// The wire name.
    pub fn id(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Javascript => "javascript",
            Language::C => "c",
            Language::Cpp => "cpp",
            Language::Go => "go",
            Language::Rust => "rust",
        }
    }

    /// The runner image (built from `runners/`) that runs this language.
    pub fn image(self) -> String {
        format!("codebox-runner-{}:latest", self.id())
    }

    /// Name, version and whether it compiles.
    pub fn info(self) -> LanguageInfo {
        let (name, version, compiled) = match self {
            Language::Python => ("Python", "3.11", false),
            Language::Javascript => ("JavaScript (Node.js)", "18", false),
            Language::C => ("C (gcc, C17)", "12", true),
            Language::Cpp => ("C++ (g++, C++17)", "12", true),
            Language::Go => ("Go", "1.19", true),
            Language::Rust => ("Rust (rustc, 2021)", "1.96", true),
        };
        LanguageInfo {
            id: self,
            name,
            version,
            compiled,
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for language in Language::ALL {
            assert_eq!(Language::from_id(language.id()), Some(language));
            let json = serde_json::to_string(&language).unwrap();
            assert_eq!(json, format!("\"{}\"", language.id()));
        }
        assert_eq!(Language::from_id("Python"), None);
        assert_eq!(Language::from_id("cobol"), None);
    }
}
