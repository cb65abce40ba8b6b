//! How each language's runner builds and runs a program: the one definition of the
//! commands, read by the supervisor inside every runner image (`codebox-supervisor`, from
//! the `codebox-sandbox` crate). The runner images (`runners/*.Dockerfile`) install the
//! tools these name.

use crate::Language;

/// A command the supervisor starts in /work, with the environment it adds to the
/// sandbox's own (`codebox_sandbox::spec::ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments.
    pub argv: &'static [&'static str],
    /// Variables set for it.
    pub env: &'static [(&'static str, &'static str)],
}

/// The steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// A compile step (or syntax check), its stdout and stderr merged into the report, then
    /// the program.
    CompileThenRun {
        /// The compile step.
        compile: Command,
        /// The program.
        run: Command,
    },
    /// One process checks the source and runs it (python: one interpreter start instead
    /// of two). It is started with two more arguments, the numbers of two inherited pipe
    /// descriptors: on the first it writes "<status>\n<check output>" and closes it; on a
    /// status of 0 it then waits for a byte on the second before the program runs.
    CheckThenRun(Command),
}

/// How one language's runner builds and runs a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolchain {
    /// The file in /work the source is written to.
    pub source_file: &'static str,
    /// What runs.
    pub steps: Steps,
}

/// Where a compile step may keep scratch files; removed once it ends.
pub const SCRATCH_DIR: &str = "/work/.codebox";

const fn command(argv: &'static [&'static str]) -> Command {
    Command { argv, env: &[] }
}

impl Language {
    /// How this language's runner builds and runs a program.
    pub fn toolchain(self) -> Toolchain {
        let compile_then_run = |source_file, compile, run| Toolchain {
            source_file,
            steps: Steps::CompileThenRun { compile, run },
        };
        const NATIVE: Command = command(&["./main"]);
        match self {
            Language::Python => Toolchain {
                source_file: "main.py",
                steps: Steps::CheckThenRun(command(&[
                    "python3",
                    "/usr/local/lib/codebox/codebox-python",
                ])),
            },
            Language::Javascript => compile_then_run(
                "main.js",
                command(&["node", "--check", "main.js"]),
                command(&["node", "main.js"]),
            ),
            Language::C => compile_then_run(
                "main.c",
                command(&[
                    "gcc",
                    "-O2",
                    "-std=gnu17",
                    "-pipe",
                    "-o",
                    "main",
                    "main.c",
                    "-lm",
                ]),
                NATIVE,
            ),
            Language::Cpp => compile_then_run(
                "main.cpp",
                command(&[
                    "g++",
                    "-O2",
                    "-std=gnu++17",
                    "-pipe",
                    "-o",
                    "main",
                    "main.cpp",
                ]),
                NATIVE,
            ),
            // No module download, no toolchain download, no cgo (the std is installed
            // without it).
            Language::Go => compile_then_run(
                "main.go",
                Command {
                    argv: &["go", "build", "-o", "main", "main.go"],
                    env: &[
                        ("GOCACHE", "/work/.codebox/go-build"),
                        ("GOPATH", "/work/.codebox/gopath"),
                        ("GOTMPDIR", ""),
                        ("GOFLAGS", ""),
                        ("GOPROXY", "off"),
                        ("GOTOOLCHAIN", "local"),
                        ("GO111MODULE", "off"),
                        ("CGO_ENABLED", "0"),
                    ],
                },
                NATIVE,
            ),
            Language::Rust => compile_then_run(
                "main.rs",
                command(&["rustc", "-O", "--edition", "2021", "-o", "main", "main.rs"]),
                NATIVE,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_compiles_exactly_when_its_info_says_so() {
        for language in Language::ALL {
            let toolchain = language.toolchain();
            let separate_compile = matches!(toolchain.steps, Steps::CompileThenRun { .. });
            // Python checks in the same process; every other language has a step of its own.
            assert_eq!(separate_compile, language != Language::Python, "{language}");
            assert!(toolchain.source_file.starts_with("main."), "{language}");
            if let Steps::CompileThenRun { compile, .. } = toolchain.steps {
                assert!(
                    compile.argv.contains(&toolchain.source_file),
                    "{language}: the compile step reads the source"
                );
                assert_eq!(
                    language.info().compiled,
                    compile.argv.contains(&"main"),
                    "{language}: a compiled language builds ./main"
                );
            }
        }
    }
}
