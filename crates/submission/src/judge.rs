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

use crate::Status;

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
}
