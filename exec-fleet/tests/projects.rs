//! Projects (Contract 2b) against the real engine and runner images: several files in every
//! language, and "compile once, run many": a build, then a run of its program per test, each
//! in a container of its own, with no compile step. Needs what tests/sandbox.rs needs.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use codebox_exec_fleet::sandbox::{Built, Sandbox, SandboxConfig};
use codebox_submission::project::ProjectFile;
use codebox_submission::{Language, Limits, RunResult, Status, TimeLimit};
use futures_util::future::join_all;

use common::*;

/// Each language's project, and what it prints.
fn projects() -> Vec<(Language, Vec<ProjectFile>, &'static str)> {
    vec![
        (
            Language::C,
            project(&[
                (
                    "main.c",
                    "#include <stdio.h>\n#include \"util.h\"\n#include \"include/util.h\"\nint main(void) { printf(\"c %d %s\\n\", twice(21), NAME); return 0; }\n",
                ),
                ("src/util.c", "#include \"util.h\"\nint twice(int x) { return 2 * x; }\n"),
                ("include/util.h", "#pragma once\n#include \"names.h\"\nint twice(int x);\n"),
                ("include/names/names.h", "#define NAME \"from a header folder\"\n"),
                ("README.md", "not compiled\n"),
            ]),
            "c 42 from a header folder\n",
        ),
        (
            Language::Cpp,
            project(&[
                (
                    "main.cpp",
                    "#include <iostream>\n#include \"shape.hpp\"\n#include \"greet.h\"\nint main() { std::cout << greet() << ' ' << Square(3).area() << std::endl; }\n",
                ),
                ("shapes/shape.hpp", "#pragma once\nstruct Square { int side; explicit Square(int s); int area() const; };\n"),
                ("shapes/shape.cpp", "#include \"shape.hpp\"\nSquare::Square(int s) : side(s) {}\nint Square::area() const { return side * side; }\n"),
                ("lib/greet.h", "#pragma once\n#include <string>\ninline std::string greet() { return \"cpp\"; }\n"),
            ]),
            "cpp 9\n",
        ),
        (
            Language::Go,
            project(&[
                ("main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(greet(\"go\"), answer) }\n"),
                ("greet.go", "package main\n\nfunc greet(s string) string { return \"hello \" + s }\n"),
                ("answer.go", "package main\n\nconst answer = 42\n"),
                // Not part of the build: a test file, and a file its build constraint leaves out.
                ("main_test.go", "package main\n\nfunc main() {}\n"),
                ("gen.go", "//go:build ignore\n\npackage main\n\nfunc main() {}\n"),
            ]),
            "hello go 42\n",
        ),
        (
            Language::Rust,
            project(&[
                (
                    "main.rs",
                    "mod greet;\nmod shapes;\nmod util;\nfn main() { println!(\"{} {} {}\", greet::hello(\"rust\"), shapes::circle::area(2), util::inner::twice(21)); }\n",
                ),
                ("greet.rs", "pub fn hello(s: &str) -> String { format!(\"hello {s}\") }\n"),
                ("shapes/mod.rs", "pub mod circle;\n"),
                ("shapes/circle.rs", "pub fn area(r: u32) -> u32 { 3 * r * r }\n"),
                ("util.rs", "pub mod inner;\n"),
                ("util/inner.rs", "pub fn twice(x: u32) -> u32 { 2 * x }\n"),
            ]),
            "hello rust 12 42\n",
        ),
        (
            Language::Python,
            project(&[
                (
                    "main.py",
                    "import util\nfrom lib import helper\nfrom pkg.sub import deep\nprint(util.name(), helper.name(), deep.name())\n",
                ),
                ("util.py", "def name():\n    return 'sibling'\n"),
                ("lib/helper.py", "import util\ndef name():\n    return 'folder+' + util.name()\n"),
                ("pkg/__init__.py", ""),
                ("pkg/sub/__init__.py", ""),
                ("pkg/sub/deep.py", "def name():\n    return 'package'\n"),
            ]),
            "sibling folder+sibling package\n",
        ),
        (
            Language::Javascript,
            project(&[
                (
                    "main.js",
                    "const util = require('./util');\nconst helper = require('./lib/helper');\nconsole.log(util.name(), helper.name());\n",
                ),
                ("util.js", "exports.name = () => 'sibling';\n"),
                ("lib/helper.js", "const util = require('../util');\nexports.name = () => 'folder+' + util.name();\n"),
            ]),
            "sibling folder+sibling\n",
        ),
    ]
}

#[test]
fn multi_file_projects_run_in_every_language() {
    let sandbox = shared();
    let projects = projects();
    let results = runtime().block_on(async {
        let runs = projects
            .iter()
            .map(|(language, files, _)| sandbox.run(*language, files, ""));
        let results = join_all(runs).await;
        sandbox.settle().await;
        results
    });
    for ((language, _, wants), result) in projects.iter().zip(&results) {
        expect(result, Status::Ok);
        assert_eq!(result.stdout, *wants, "{language}: {result:#?}");
    }
}

#[test]
fn every_language_builds_once_and_runs_its_build() {
    let sandbox = shared();
    let projects = projects();
    runtime().block_on(async {
        let builds = join_all(
            projects
                .iter()
                .map(|(language, files, _)| sandbox.build(*language, files)),
        )
        .await;
        let runs = projects
            .iter()
            .zip(&builds)
            .map(|((language, _, _), built)| {
                let built = built
                    .as_ref()
                    .unwrap_or_else(|r| panic!("{language}: {r:#?}"));
                assert_eq!(built.language(), *language);
                sandbox.run_built(built, "")
            });
        for ((language, _, wants), result) in projects.iter().zip(join_all(runs).await) {
            expect(&result, Status::Ok);
            assert_eq!(result.stdout, *wants, "{language}");
        }
        for ((language, _, _), built) in projects.iter().zip(&builds) {
            let built = built.as_ref().unwrap_or_else(|r| panic!("{r:?}"));
            // Python and JavaScript hand back nothing: their sources are the program.
            assert_eq!(
                built.program_bytes() > 0,
                language.info().compiled,
                "{language}: {built:?}"
            );
        }
        sandbox.settle().await;
    });
}

/// A C program that says whether its container was used before (a marker it leaves in
/// /work), which container it is (Docker's per-container mounts name it), what a project
/// file holds and what its stdin says.
const FRESHNESS: &str = r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "numbers.h"

static void container_id(char *id) {
  char line[4096];
  FILE *f = fopen("/proc/self/mountinfo", "r");
  strcpy(id, "unknown");
  while (f && fgets(line, sizeof line, f)) {
    char *at = strstr(line, "/containers/");
    if (at && strlen(at) > 12 + 64) { memcpy(id, at + 12, 64); id[64] = 0; break; }
  }
  if (f) fclose(f);
}

int main(void) {
  const char *state = access("marker", F_OK) == 0 ? "reused" : "fresh";
  FILE *marker = fopen("marker", "w");
  if (marker) fclose(marker);
  char data[64] = "", id[65];
  FILE *f = fopen("data/input.txt", "r");
  if (f) { if (!fgets(data, sizeof data, f)) data[0] = 0; fclose(f); }
  data[strcspn(data, "\n")] = 0;
  int n = 0;
  if (scanf("%d", &n) != 1) n = -1;
  container_id(id);
  printf("%s %s %d %s\n", state, data, times(n), id);
  return 0;
}
"#;

fn freshness_project() -> Vec<ProjectFile> {
    project(&[
        ("main.c", FRESHNESS),
        (
            "numbers.c",
            "#include \"numbers.h\"\nint times(int n) { return n * FACTOR; }\n",
        ),
        ("numbers.h", "#define FACTOR 3\nint times(int n);\n"),
        ("data/input.txt", "from the project\n"),
    ])
}

/// Runs `built` once per stdin, all at once; returns each run's (state, data, result, container).
fn run_each(
    sandbox: &Sandbox,
    built: &Built,
    stdins: &[&str],
) -> Vec<(String, String, String, String)> {
    let results = runtime().block_on(join_all(
        stdins.iter().map(|stdin| sandbox.run_built(built, stdin)),
    ));
    results
        .into_iter()
        .map(|result| {
            expect(&result, Status::Ok);
            let fields: Vec<String> = result
                .stdout
                .split_whitespace()
                .map(str::to_string)
                .collect();
            assert_eq!(fields.len(), 6, "{result:#?}");
            (
                fields[0].clone(),
                format!("{} {} {}", fields[1], fields[2], fields[3]),
                fields[4].clone(),
                fields[5].clone(),
            )
        })
        .collect()
}

#[test]
fn each_run_of_a_build_has_a_fresh_container_warm_or_not() {
    // A pool of its own: the build and the first runs take warm containers, the rest fresh.
    let sandbox = connect(SandboxConfig {
        pool_size: 2,
        pool_languages: vec![Language::C],
        ..SandboxConfig::default()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox
        .warm_counts()
        .get(&Language::C)
        .copied()
        .unwrap_or_default()
        < 2
    {
        assert!(Instant::now() < deadline, "the pool did not fill");
        std::thread::sleep(Duration::from_millis(50));
    }
    let built = runtime()
        .block_on(sandbox.build(Language::C, &freshness_project()))
        .unwrap_or_else(|r| panic!("{r:#?}"));
    let runs = run_each(&sandbox, &built, &["1", "2", "3", "4"]);
    let mut ids = HashSet::new();
    for (i, (state, data, result, id)) in runs.iter().enumerate() {
        assert_eq!(
            state, "fresh",
            "run {i}: the marker of an earlier run is not there"
        );
        assert_eq!(
            data, "from the project",
            "run {i}: the project's files are there"
        );
        assert_eq!(
            result,
            &((i as i32 + 1) * 3).to_string(),
            "run {i}: its own stdin"
        );
        assert_eq!(id.len(), 64, "run {i}: {id}");
        ids.insert(id.clone());
    }
    // And later runs of the same build (the pool refilled meanwhile) are fresh too.
    for (state, _, _, id) in run_each(&sandbox, &built, &["5", "6"]) {
        assert_eq!(state, "fresh");
        ids.insert(id);
    }
    assert_eq!(
        ids.len(),
        6,
        "every run had a container of its own: {ids:?}"
    );
    // A plain run on a warm container still compiles and runs.
    let files = freshness_project();
    let plain = runtime().block_on(sandbox.run(Language::C, &files, "7"));
    expect(&plain, Status::Ok);
    assert!(
        plain.stdout.starts_with("fresh from the project 21 "),
        "{plain:#?}"
    );
    runtime().block_on(sandbox.shutdown());
    let label = format!("codebox.sandbox.instance={}", sandbox.instance());
    assert_eq!(containers_labelled(&label), Vec::<String>::new());
}

/// Builds on `sandbox` (the shared one: take it with `shared()` outside the runtime, which
/// connects it on first use), and waits until its container is removed.
async fn build_on_shared(
    sandbox: &Sandbox,
    language: Language,
    files: &[ProjectFile],
) -> Result<Built, RunResult> {
    let built = sandbox.build(language, files).await;
    sandbox.settle().await;
    built
}

/// A build that must succeed.
fn build(language: Language, files: &[ProjectFile]) -> Built {
    runtime()
        .block_on(build_on_shared(shared(), language, files))
        .unwrap_or_else(|result| panic!("{language}: {result:#?}"))
}

/// A build that must fail: the result it reports.
fn build_error(language: Language, files: &[ProjectFile]) -> RunResult {
    match runtime().block_on(build_on_shared(shared(), language, files)) {
        Ok(built) => panic!("{language} built: {built:?}"),
        Err(result) => result,
    }
}

#[test]
fn a_build_that_fails_says_why_as_a_run_would() {
    let c = project(&[
        (
            "main.c",
            "int helper(void);\nint main(void) { return helper(); }\n",
        ),
        ("lib/helper.c", "int helper(void) { return 0 }\n"),
    ]);
    let error = build_error(Language::C, &c);
    expect(&error, Status::CompileError);
    let output = error.compile_output.as_deref().unwrap_or_default();
    assert!(
        output.contains("lib/helper.c:1:") && output.contains("expected ‘;’"),
        "{output}"
    );
    assert_eq!((error.exit_code, error.time_ms), (None, None));

    // A link error is a build error too: every file was compiled, one symbol is missing.
    let unlinked = project(&[(
        "main.c",
        "int missing(void);\nint main(void) { return missing(); }\n",
    )]);
    let error = build_error(Language::C, &unlinked);
    expect(&error, Status::CompileError);
    assert!(error
        .compile_output
        .unwrap_or_default()
        .contains("undefined reference to `missing'"));

    let python = project(&[
        ("main.py", "import util\nprint(util.x\n"),
        ("util.py", "x = 1\n"),
    ]);
    let error = build_error(Language::Python, &python);
    expect(&error, Status::CompileError);
    assert!(error
        .compile_output
        .unwrap_or_default()
        .contains("SyntaxError"));

    let rust = project(&[("main.rs", "mod missing;\nfn main() {}\n")]);
    let error = build_error(Language::Rust, &rust);
    expect(&error, Status::CompileError);
    assert!(
        error.compile_output.unwrap_or_default().contains("E0583"),
        "file not found for module"
    );
}

#[test]
fn a_built_program_over_the_cap_fails_its_build_but_not_a_run() {
    // Room for the compiler's object file and the 34 MiB program (a folder, files that
    // large, the memory they take).
    let limits = Limits {
        work_dir_bytes: 160 << 20,
        file_size_bytes: 64 << 20,
        memory_bytes: 512 << 20,
        ..Limits::default()
    };
    let sandbox = connect(SandboxConfig {
        pool_size: 0,
        limits,
        ..SandboxConfig::default()
    });
    let big = project(&[(
        "main.c",
        "#include <stdio.h>\nstatic char big[34 << 20] = {1};\nint main(void) { volatile int i = 0; printf(\"%d\\n\", big[i]); return 0; }\n",
    )]);
    let (built, ran) = runtime().block_on(async {
        let built = sandbox.build(Language::C, &big).await;
        let ran = sandbox.run(Language::C, &big, "").await;
        (built, ran)
    });
    let error = built.unwrap_err();
    expect(&error, Status::CompileError);
    let output = error.compile_output.unwrap_or_default();
    assert!(
        output.contains("a build hands back at most 33554432"),
        "{output}"
    );
    expect(&ran, Status::Ok);
    assert_eq!(ran.stdout, "1\n");
    runtime().block_on(sandbox.shutdown());
}

#[test]
fn a_run_of_a_build_ends_as_runs_do_and_shows_the_builds_output() {
    let sandbox = shared();
    // Calls a function it does not declare: gcc builds it, with a warning.
    let program = project(&[
        (
            "main.c",
            "#include <stdio.h>\n#include <string.h>\nint main(void) {\n  char mode[16] = \"\";\n  if (scanf(\"%15s\", mode) != 1) return 2;\n  if (!strcmp(mode, \"spin\")) for (volatile unsigned long n = 0;; n++) {}\n  if (!strcmp(mode, \"crash\")) { volatile int *p = 0; *p = 1; }\n  if (!strcmp(mode, \"fail\")) { fputs(\"failing\\n\", stderr); return 3; }\n  printf(\"%d\\n\", helper());\n  return 0;\n}\n",
        ),
        ("helper.c", "int helper(void) { return 7; }\n"),
    ]);
    let built = build(Language::C, &program);
    let warning = built.compile_output().unwrap_or_default().to_string();
    assert!(
        warning.contains("implicit declaration of function ‘helper’"),
        "{warning}"
    );
    let started = Instant::now();
    let results = runtime().block_on(async {
        let results =
            join_all(["ok", "spin", "crash", "fail"].map(|mode| sandbox.run_built(&built, mode)))
                .await;
        sandbox.settle().await;
        results
    });
    expect(&results[0], Status::Ok);
    assert_eq!(results[0].stdout, "7\n");
    expect(&results[1], Status::TimeLimitExceeded);
    assert_eq!(results[1].time_limit, Some(TimeLimit::Run));
    let limit = Limits::default().run_ms;
    assert!(
        results[1]
            .time_ms
            .is_some_and(|t| (limit..limit + 2_000).contains(&t)),
        "{:?}",
        results[1]
    );
    expect(&results[2], Status::RuntimeError);
    assert_eq!((results[2].exit_code, results[2].signal), (None, Some(11)));
    expect(&results[3], Status::RuntimeError);
    assert_eq!(
        (results[3].exit_code, results[3].stderr.as_str()),
        (Some(3), "failing\n")
    );
    for result in &results {
        assert_eq!(
            result.compile_output.as_deref(),
            Some(warning.as_str()),
            "{result:#?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The median of some durations, in milliseconds.
fn p50(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// Build once, then run the build several times, one at a time: the figures (build, a run of
/// the build, a whole run that compiles) are printed, not asserted; the outputs are.
#[test]
fn built_programs_run_without_their_compile_step() {
    const RUNS: usize = 5;
    let sandbox = shared();
    println!("language    build p50   run_built p50   run p50   program bytes");
    for (language, files, wants) in projects() {
        let (mut builds, mut built_runs, mut runs) = (Vec::new(), Vec::new(), Vec::new());
        let mut program_bytes = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let built = runtime()
                .block_on(sandbox.build(language, &files))
                .unwrap_or_else(|r| panic!("{language}: {r:#?}"));
            builds.push(t.elapsed());
            program_bytes = built.program_bytes();
            let t = Instant::now();
            let result = runtime().block_on(sandbox.run_built(&built, ""));
            built_runs.push(t.elapsed());
            assert_eq!(result.stdout, wants, "{language}: {result:#?}");
            let t = Instant::now();
            let result = runtime().block_on(sandbox.run(language, &files, ""));
            runs.push(t.elapsed());
            assert_eq!(result.stdout, wants, "{language}: {result:#?}");
            runtime().block_on(sandbox.settle());
        }
        println!(
            "{:<11} {:>7.0} ms  {:>10.0} ms  {:>6.0} ms  {:>13}",
            language.id(),
            p50(builds),
            p50(built_runs),
            p50(runs),
            program_bytes
        );
    }
}
