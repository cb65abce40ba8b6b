//! How each language's runner builds and runs a program: the one definition of the
//! commands, read by the supervisor inside every runner image (`codebox-supervisor`, from
//! the `codebox-sandbox` crate). The runner images (`runners/*.Dockerfile`) install the
//! tools these name.
//!
//! A program is a project (Contract 2b; a single source is a project of one file named
//! [`Toolchain::source_file`]), written to /work as its names say:
//!
//! ```text
//! python      python3 runs main.py with /work first on sys.path: siblings and sub-folders
//!             import (`import util`, `from lib import helper`, packages with or without
//!             __init__.py); the check is main.py's
//! javascript  node --check main.js, then node main.js: require('./util'), require('./lib/x')
//! c, cpp      every .c (.cpp) file anywhere compiled together, with -I. and -I for each
//!             folder holding a header (.h; .h and .hpp), into ./main
//! go          go build -o main . : the top folder as package main (its build constraints
//!             hold; _test.go files are left out), GOPATH mode, offline
//! rust        rustc main.rs: `mod x;` finds x.rs or x/mod.rs, as rustc resolves modules
//! ```
//!
//! What a build hands back ([`Toolchain::artifact`]) is the compile step's ./main; python
//! and javascript have none (their check is the build, their sources the program).

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

/// In a compile command's `argv`, where the project's files go (see [`Inputs`]).
pub const INPUTS: &str = "{inputs}";

/// Which of the project's files a compile step is given, in place of [`INPUTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inputs {
    /// None: the command names what it reads itself (main.rs, main.js, the folder).
    Named,
    /// Every file ending in `source`, in the project's order, then `-I.` and `-I<folder>` for
    /// each folder holding a file ending in one of `headers`.
    Native {
        /// The ending of the files compiled.
        source: &'static str,
        /// The endings of header files.
        headers: &'static [&'static str],
    },
}

/// A compile step (or syntax check): its command and the files it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compile {
    /// The command, [`INPUTS`] standing for the files.
    pub command: Command,
    /// Which files.
    pub inputs: Inputs,
}

impl Compile {
    /// The command's arguments for a project of files named `names` (each already checked
    /// with `project::name_problem`).
    pub fn argv(&self, names: &[&str]) -> Vec<String> {
        let mut argv = Vec::with_capacity(self.command.argv.len() + names.len() + 2);
        for &arg in self.command.argv {
            if arg != INPUTS {
                argv.push(arg.to_string());
                continue;
            }
            let Inputs::Native { source, headers } = self.inputs else {
                continue;
            };
            // A name may start with '-': "./" keeps the compiler from reading it as an option.
            argv.extend(names.iter().filter(|n| n.ends_with(source)).map(|n| {
                if n.starts_with('-') {
                    format!("./{n}")
                } else {
                    n.to_string()
                }
            }));
            let mut folders = vec!["."];
            for name in names {
                if headers.iter().any(|h| name.ends_with(h)) {
                    let folder = name.rsplit_once('/').map_or(".", |(folder, _)| folder);
                    if !folders.contains(&folder) {
                        folders.push(folder);
                    }
                }
            }
            argv.extend(folders.into_iter().map(|f| format!("-I{f}")));
        }
        argv
    }
}

/// The steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// A compile step (or syntax check), its stdout and stderr merged into the report, then
    /// the program.
    CompileThenRun {
        /// The compile step.
        compile: Compile,
        /// The program.
        run: Command,
    },
    /// One process checks the source and runs it (python: one interpreter start instead
    /// of two). It is started with two more arguments, the numbers of two inherited pipe
    /// descriptors: on the first it writes "<status>\n<check output>" and closes it; on a
    /// status of 0 it then waits for a byte on the second before the program runs, and ends
    /// without running it if that pipe closes instead (a build).
    CheckThenRun(Command),
}

/// How one language's runner builds and runs a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolchain {
    /// The entry file: a single source is a project of this one file.
    pub source_file: &'static str,
    /// The file the compile step makes, which a build hands back and a run of that build
    /// gets (executable) in place of compiling; `None`: the sources are the program.
    pub artifact: Option<&'static str>,
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
        const NATIVE: Command = command(&["./main"]);
        let native = |source_file, compile: Command, inputs| Toolchain {
            source_file,
            artifact: Some("main"),
            steps: Steps::CompileThenRun {
                compile: Compile {
                    command: compile,
                    inputs,
                },
                run: NATIVE,
            },
        };
        match self {
            Language::Python => Toolchain {
                source_file: "main.py",
                artifact: None,
                steps: Steps::CheckThenRun(command(&[
                    "python3",
                    "/usr/local/lib/codebox/codebox-python",
                ])),
            },
            Language::Javascript => Toolchain {
                source_file: "main.js",
                artifact: None,
                steps: Steps::CompileThenRun {
                    compile: Compile {
                        command: command(&["node", "--check", "main.js"]),
                        inputs: Inputs::Named,
                    },
                    run: command(&["node", "main.js"]),
                },
            },
            Language::C => native(
                "main.c",
                command(&[
                    "gcc",
                    "-O2",
                    "-std=gnu17",
                    "-pipe",
                    "-o",
                    "main",
                    INPUTS,
                    "-lm",
                ]),
                Inputs::Native {
                    source: ".c",
                    headers: &[".h"],
                },
            ),
            Language::Cpp => native(
                "main.cpp",
                command(&["g++", "-O2", "-std=gnu++17", "-pipe", "-o", "main", INPUTS]),
                Inputs::Native {
                    source: ".cpp",
                    headers: &[".h", ".hpp"],
                },
            ),
            // No module download, no toolchain download, no cgo (the std is installed
            // without it). GOPATH mode builds the folder outside any GOPATH as a local
            // package.
            Language::Go => native(
                "main.go",
                Command {
                    argv: &["go", "build", "-o", "main", "."],
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
                Inputs::Named,
            ),
            // Without the standard library's debug info the program is 0.4 MB, not 10: what
            // a build hands back to every test's run. Panics still say where.
            Language::Rust => native(
                "main.rs",
                command(&[
                    "rustc",
                    "-O",
                    "--edition",
                    "2021",
                    "-C",
                    "strip=debuginfo",
                    "-o",
                    "main",
                    "main.rs",
                ]),
                Inputs::Named,
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
            assert_eq!(
                toolchain.artifact.is_some(),
                language.info().compiled,
                "{language}: a compiled language's build hands back its program"
            );
            if let Steps::CompileThenRun { compile, run } = toolchain.steps {
                let argv = compile.argv(&[toolchain.source_file]);
                assert!(
                    argv.iter().any(|a| a == toolchain.source_file || a == "."),
                    "{language}: the compile step reads the source: {argv:?}"
                );
                assert_eq!(
                    compile.command.argv.contains(&INPUTS),
                    compile.inputs != Inputs::Named,
                    "{language}: files go where the command says"
                );
                if let Some(artifact) = toolchain.artifact {
                    assert!(argv.windows(2).any(|w| w == ["-o", artifact]), "{language}");
                    assert_eq!(run.argv, [format!("./{artifact}")], "{language}");
                }
            }
        }
    }

    fn compile_argv(language: Language, names: &[&str]) -> Vec<String> {
        match language.toolchain().steps {
            Steps::CompileThenRun { compile, .. } => compile.argv(names),
            Steps::CheckThenRun(_) => panic!("{language} has no compile step"),
        }
    }

    #[test]
    fn a_single_c_source_compiles_as_it_always_did() {
        assert_eq!(
            compile_argv(Language::C, &["main.c"]),
            [
                "gcc",
                "-O2",
                "-std=gnu17",
                "-pipe",
                "-o",
                "main",
                "main.c",
                "-I.",
                "-lm"
            ]
        );
        assert_eq!(
            compile_argv(Language::Rust, &["main.rs", "greet.rs", "shapes/mod.rs"]),
            [
                "rustc",
                "-O",
                "--edition",
                "2021",
                "-C",
                "strip=debuginfo",
                "-o",
                "main",
                "main.rs"
            ]
        );
        assert_eq!(
            compile_argv(Language::Go, &["main.go", "greet.go"]),
            ["go", "build", "-o", "main", "."]
        );
    }

    #[test]
    fn native_projects_compile_every_source_with_each_header_folder() {
        assert_eq!(
            compile_argv(
                Language::C,
                &[
                    "main.c",
                    "include/util.h",
                    "src/util.c",
                    "README",
                    "src/x.h",
                    "include/more.h",
                    "-odd.c"
                ]
            ),
            [
                "gcc",
                "-O2",
                "-std=gnu17",
                "-pipe",
                "-o",
                "main",
                "main.c",
                "src/util.c",
                "./-odd.c",
                "-I.",
                "-Iinclude",
                "-Isrc",
                "-lm"
            ]
        );
        assert_eq!(
            compile_argv(
                Language::Cpp,
                &[
                    "main.cpp",
                    "lib/shape.hpp",
                    "lib/shape.cpp",
                    "util.h",
                    "other.c",
                    "deep/a/b.h"
                ]
            ),
            [
                "g++",
                "-O2",
                "-std=gnu++17",
                "-pipe",
                "-o",
                "main",
                "main.cpp",
                "lib/shape.cpp",
                "-I.",
                "-Ilib",
                "-Ideep/a"
            ]
        );
    }
}
