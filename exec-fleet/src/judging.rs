//! A submission with tests (Contract 2b): its program is built once, then each test runs in a
//! container of its own (never one used before) under the run limits, and is judged against
//! its expected output (`codebox_submission::judge`: the comparison rule, the record's shape).
//!
//! ```text
//! Sandbox::build ──Err(result)──> judge::unbuilt: every test ends with the build's status
//!      │ Ok(built)
//!      v
//! Sandbox::run_built(built, test.stdin)   `at_once` tests at a time (the job's slot and the
//!      │                                  spare ones it borrowed), results in order
//!      v
//! TestResult::judge(test, run) ──> judge::judged: the verdict and the deciding test
//! ```

use chrono::Utc;
use codebox_submission::judge::{self, TestResult};
use codebox_submission::{Language, Program, RunResult};
use futures_util::{stream, StreamExt};
use tracing::info;

use crate::sandbox::Sandbox;

/// Runs `program`'s tests, at most `at_once` at a time (at least one).
pub(crate) async fn run_tests(
    sandbox: &Sandbox,
    language: Language,
    program: &Program,
    at_once: usize,
) -> RunResult {
    let built = match sandbox.build(language, &program.files).await {
        Ok(built) => built,
        Err(failed) => return judge::unbuilt(&program.tests, failed),
    };
    // Indices, not references, into the tests: a closure over `&TestCase` inside the worker's
    // boxed future trips rustc's higher-ranked lifetime check (rust-lang/rust#64552).
    let runs: Vec<RunResult> = stream::iter(0..program.tests.len())
        .map(|i| sandbox.run_built(&built, &program.tests[i].stdin))
        .buffered(at_once.max(1))
        .collect()
        .await;
    let tests: Vec<TestResult> = program
        .tests
        .iter()
        .zip(&runs)
        .map(|(test, run)| TestResult::judge(test, run))
        .collect();
    let result = judge::judged(tests, built.compile_output().map(str::to_owned), Utc::now());
    info!(
        %language,
        tests = program.tests.len(),
        verdict = result.status.as_str(),
        "tests judged"
    );
    result
}
