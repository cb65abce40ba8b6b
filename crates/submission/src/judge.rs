//! Judging a submission's tests (Contract 2b): when a test's output is right, and the
//! submission's verdict.
//!
//! A test that ran and exited normally passes when its stdout matches the expected output,
//! compared line by line with trailing whitespace ignored: each line is compared without the
//! spaces, tabs and carriage returns at its end, and blank lines at the end of either output do
//! not count (so a missing final newline, CRLF line ends and trailing spaces all pass; a
//! difference anywhere else, leading spaces included, does not). A test that did not end
//! normally keeps its own status (a time limit, a runtime error...). The verdict is
//! `accepted` when every test passed, else the first failing test's status.
//!
//! A tests run's result ([`judged`]): the record's `tests` holds one [`TestResult`] per test,
//! in the request's order, each output cut to [`TEST_OUTPUT_BYTES`] so that 32 of them stay
//! well inside a DynamoDB item (the comparison itself sees the whole output). The record's own
//! fields are the deciding test's (the first failing one, else the last): its status is the
//! verdict. A build that fails ends every test with its status, once for all.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{RunResult, Status, TimeLimit};

/// Most tests in one submission.
pub const MAX_TESTS: usize = 32;
/// Most bytes of one test's stdin, and of its expected output.
pub const MAX_TEST_BYTES: usize = 64 * 1024;
/// Most bytes of each output stream a test's entry in the record keeps.
pub const TEST_OUTPUT_BYTES: usize = 4 * 1024;

/// One test case of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCase {
    /// What the program reads.
    pub stdin: String,
    /// What it should print.
    pub expected_stdout: String,
}

/// How one test ended, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// `accepted`, `wrong_answer`, or how the run ended otherwise.
    pub status: Status,
    /// Wall time of the run, in milliseconds.
    pub time_ms: Option<u64>,
    /// Exit code, when the program exited.
    pub exit_code: Option<i64>,
    /// Signal that killed the program, when one did.
    pub signal: Option<i32>,
    /// Its stdout, cut to [`TEST_OUTPUT_BYTES`].
    pub stdout: String,
    /// Its stderr, cut to [`TEST_OUTPUT_BYTES`].
    pub stderr: String,
    /// stdout was cut (here, or by the run's output cap).
    pub stdout_truncated: bool,
    /// stderr was cut (here, or by the run's output cap).
    pub stderr_truncated: bool,
    /// The time limit that ended it, when one did.
    pub time_limit: Option<TimeLimit>,
}

/// `text` cut to at most `limit` bytes at a character boundary, and whether it was cut.
fn cut(text: &str, limit: usize) -> (String, bool) {
    if text.len() <= limit {
        return (text.to_owned(), false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

impl TestResult {
    /// Judges the run of `test`.
    pub fn judge(test: &TestCase, run: &RunResult) -> TestResult {
        let (stdout, stdout_cut) = cut(&run.stdout, TEST_OUTPUT_BYTES);
        let (stderr, stderr_cut) = cut(&run.stderr, TEST_OUTPUT_BYTES);
        TestResult {
            status: test_status(run.status, &test.expected_stdout, &run.stdout),
            time_ms: run.time_ms,
            exit_code: run.exit_code,
            signal: run.signal,
            stdout,
            stderr,
            stdout_truncated: run.stdout_truncated || stdout_cut,
            stderr_truncated: run.stderr_truncated || stderr_cut,
            time_limit: run.time_limit,
        }
    }

    /// A test that never ran because the build ended with `build` (a compile error...).
    pub fn not_run(build: &RunResult) -> TestResult {
        TestResult {
            status: build.status,
            time_ms: None,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            time_limit: build.time_limit,
        }
    }
}

/// The result of a tests run: the record's fields are the deciding test's (the first that
/// failed, else the last), its status the verdict, `compile_output` the build's, and `tests`
/// every test's. `tests` must not be empty.
pub fn judged(
    tests: Vec<TestResult>,
    compile_output: Option<String>,
    now: DateTime<Utc>,
) -> RunResult {
    let status = verdict(tests.iter().map(|t| t.status));
    let deciding = tests
        .iter()
        .find(|t| t.status != Status::Accepted)
        .or(tests.last());
    let field = |f: fn(&TestResult) -> String| deciding.map(f).unwrap_or_default();
    RunResult {
        status,
        exit_code: deciding.and_then(|t| t.exit_code),
        signal: deciding.and_then(|t| t.signal),
        stdout: field(|t| t.stdout.clone()),
        stderr: field(|t| t.stderr.clone()),
        stdout_truncated: deciding.is_some_and(|t| t.stdout_truncated),
        stderr_truncated: deciding.is_some_and(|t| t.stderr_truncated),
        compile_output,
        time_ms: tests.iter().filter_map(|t| t.time_ms).max(),
        time_limit: deciding.and_then(|t| t.time_limit),
        tests: Some(tests),
        finished_at: now,
    }
}

/// The result of a tests run whose build ended with `build` instead of a program: every test
/// gets the build's status, which is the verdict.
pub fn unbuilt(tests: &[TestCase], build: RunResult) -> RunResult {
    RunResult {
        tests: Some(tests.iter().map(|_| TestResult::not_run(&build)).collect()),
        ..build
    }
}

/// The lines of `output` as the comparison sees them.
fn lines(output: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = output
        .split('\n')
        .map(|line| line.trim_end_matches([' ', '\t', '\r']))
        .collect();
    while lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    lines
}

/// Whether `actual` is the `expected` output.
pub fn output_matches(expected: &str, actual: &str) -> bool {
    lines(expected) == lines(actual)
}

/// A test's status: a normal end (`ok`) is `accepted` or `wrong_answer` by its output; any
/// other end is kept.
pub fn test_status(ended: Status, expected: &str, stdout: &str) -> Status {
    match ended {
        Status::Ok if output_matches(expected, stdout) => Status::Accepted,
        Status::Ok => Status::WrongAnswer,
        other => other,
    }
}

/// The verdict of tests whose statuses are `statuses`, in order: `accepted` when all are,
/// else the first other one.
pub fn verdict(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses
        .into_iter()
        .find(|status| *status != Status::Accepted)
        .unwrap_or(Status::Accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_spaces_are_ignored_leading_ones_are_not() {
        assert!(output_matches("1 2\n3\n", "1 2   \n3\t\n"));
        assert!(!output_matches("1 2\n", " 1 2\n"));
        assert!(!output_matches("1 2\n", "1  2\n"), "inner spaces count");
    }

    #[test]
    fn a_missing_final_newline_and_trailing_blank_lines_are_ignored() {
        assert!(output_matches("a\nb\n", "a\nb"));
        assert!(output_matches("a\nb", "a\nb\n\n\n"));
        assert!(
            !output_matches("a\n\nb\n", "a\nb\n"),
            "inner blank lines count"
        );
        assert!(output_matches("", "\n  \n"));
        assert!(!output_matches("", "x"));
    }

    #[test]
    fn crlf_line_ends_match_lf() {
        assert!(output_matches("a\nb\n", "a\r\nb\r\n"));
        assert!(output_matches("a\r\nb", "a\nb\n"));
        assert!(
            !output_matches("a\nb\n", "a\rb\n"),
            "a lone CR is not a line end"
        );
    }

    #[test]
    fn statuses_and_the_verdict() {
        assert_eq!(test_status(Status::Ok, "4\n", "4"), Status::Accepted);
        assert_eq!(test_status(Status::Ok, "4\n", "5\n"), Status::WrongAnswer);
        assert_eq!(
            test_status(Status::TimeLimitExceeded, "4\n", "4\n"),
            Status::TimeLimitExceeded
        );
        assert_eq!(
            test_status(Status::RuntimeError, "", ""),
            Status::RuntimeError
        );
        assert_eq!(
            verdict([Status::Accepted, Status::Accepted]),
            Status::Accepted
        );
        assert_eq!(
            verdict([
                Status::Accepted,
                Status::WrongAnswer,
                Status::TimeLimitExceeded
            ]),
            Status::WrongAnswer
        );
        assert_eq!(verdict([]), Status::Accepted);
    }

    fn ran(status: Status, stdout: &str) -> RunResult {
        RunResult {
            stdout: stdout.into(),
            exit_code: Some(0),
            ..RunResult::internal_error("", Utc::now())
        }
        .with_status(status)
    }

    impl RunResult {
        fn with_status(self, status: Status) -> RunResult {
            RunResult { status, ..self }
        }
    }

    fn case(expected: &str) -> TestCase {
        TestCase {
            stdin: String::new(),
            expected_stdout: expected.into(),
        }
    }

    #[test]
    fn a_test_is_judged_on_its_whole_output_and_keeps_a_cut_of_it() {
        let long = "é".repeat(TEST_OUTPUT_BYTES); // two bytes each
        let judged = TestResult::judge(&case(&long), &ran(Status::Ok, &long));
        assert_eq!(judged.status, Status::Accepted);
        assert!(judged.stdout_truncated);
        assert_eq!(judged.stdout.len(), TEST_OUTPUT_BYTES);
        let mut wrong = long.clone();
        wrong.push('x');
        let judged = TestResult::judge(&case(&long), &ran(Status::Ok, &wrong));
        assert_eq!(judged.status, Status::WrongAnswer, "past the kept cut");
        // A cut in the middle of a character keeps whole characters.
        let odd = format!("x{long}");
        let judged = TestResult::judge(&case(""), &ran(Status::Ok, &odd));
        assert_eq!(judged.stdout.len(), TEST_OUTPUT_BYTES - 1);
    }

    #[test]
    fn the_record_takes_the_deciding_test_and_the_verdict() {
        let tests = vec![
            TestResult::judge(&case("1"), &ran(Status::Ok, "1\n")),
            TestResult::judge(&case("2"), &ran(Status::Ok, "3\n")),
            TestResult::judge(&case("3"), &ran(Status::RuntimeError, "")),
        ];
        let result = judged(tests, Some("warning".into()), Utc::now());
        assert_eq!(result.status, Status::WrongAnswer);
        assert_eq!(result.stdout, "3\n", "the first failing test's");
        assert_eq!(result.compile_output.as_deref(), Some("warning"));
        let statuses: Vec<_> = result.tests.unwrap().iter().map(|t| t.status).collect();
        assert_eq!(
            statuses,
            [Status::Accepted, Status::WrongAnswer, Status::RuntimeError]
        );

        let all_pass = judged(
            vec![
                TestResult::judge(&case("1"), &ran(Status::Ok, "1")),
                TestResult::judge(
                    &case("2"),
                    &RunResult {
                        time_ms: Some(9),
                        ..ran(Status::Ok, "2")
                    },
                ),
            ],
            None,
            Utc::now(),
        );
        assert_eq!(all_pass.status, Status::Accepted);
        assert_eq!(all_pass.stdout, "2", "the last test's");
        assert_eq!(all_pass.time_ms, Some(9), "the slowest test's");
    }

    #[test]
    fn a_failed_build_ends_every_test_once_for_all() {
        let build = RunResult {
            compile_output: Some("main.c:1: error".into()),
            ..ran(Status::CompileError, "")
        };
        let result = unbuilt(&[case("1"), case("2")], build);
        assert_eq!(result.status, Status::CompileError);
        assert_eq!(result.compile_output.as_deref(), Some("main.c:1: error"));
        let tests = result.tests.unwrap();
        assert_eq!(tests.len(), 2);
        assert!(tests
            .iter()
            .all(|t| t.status == Status::CompileError && t.time_ms.is_none()));
    }

    #[test]
    fn the_largest_tests_record_fits_a_dynamodb_item() {
        // Every output at its cap, 32 tests, the compile output at the supervisor's cap. JSON
        // of ASCII text is no smaller than the item (names and values, UTF-8).
        let full = "x".repeat(64 * 1024);
        let run = RunResult {
            stderr: full.clone(),
            signal: Some(9),
            time_ms: Some(5_000),
            time_limit: Some(TimeLimit::Run),
            ..ran(Status::Ok, &full)
        };
        let tests = (0..MAX_TESTS)
            .map(|_| TestResult::judge(&case("y"), &run))
            .collect();
        let result = judged(tests, Some(full.clone()), Utc::now());
        let record = crate::Submission {
            id: "00000000-0000-0000-0000-000000000000".into(),
            language: crate::Language::Cpp,
            ..crate::Submission::queued(String::new(), crate::Language::Cpp, Utc::now())
        };
        let mut record = record;
        record.finish(&result);
        let size = serde_json::to_string(&record).unwrap().len();
        println!("largest tests record: {size} bytes");
        assert!(size < 400 * 1024, "{size} bytes");
    }
}
