//! Submission statuses, and how the end of a run maps onto them.

use serde::{Deserialize, Serialize};

/// Where a submission stands. All but the first two are terminal: once written, never changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted and waiting in the queue.
    Queued,
    /// A worker has taken it.
    Running,
    /// Ran and exited 0.
    Ok,
    /// The compile step failed.
    CompileError,
    /// Exited non-zero or died by a signal.
    RuntimeError,
    /// Killed at the wall-clock limit.
    TimeLimitExceeded,
    /// Killed by the memory limit.
    MemoryLimitExceeded,
    /// Killed for writing more than the output cap.
    OutputLimitExceeded,
    /// CodeBox failed, not the program.
    InternalError,
    /// A test ended normally with other output than expected (Contract 2b).
    WrongAnswer,
    /// Every test passed (Contract 2b).
    Accepted,
}

/// The time limit that ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeLimit {
    /// The compile step's.
    Compile,
    /// A batch run's wall time.
    Run,
    /// An interactive run's wall time.
    Wall,
    /// An interactive run's idle time.
    Idle,
    /// An interactive run's CPU time.
    Cpu,
}

impl TimeLimit {
    /// Its name, as a result names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeLimit::Compile => "compile",
            TimeLimit::Run => "run",
            TimeLimit::Wall => "wall",
            TimeLimit::Idle => "idle",
            TimeLimit::Cpu => "cpu",
        }
    }
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 11] = [
        Status::Queued,
        Status::Running,
        Status::Ok,
        Status::CompileError,
        Status::RuntimeError,
        Status::TimeLimitExceeded,
        Status::MemoryLimitExceeded,
        Status::OutputLimitExceeded,
        Status::InternalError,
        Status::WrongAnswer,
        Status::Accepted,
    ];

    /// Whether this status is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }

    /// The wire name (`"time_limit_exceeded"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Ok => "ok",
            Status::CompileError => "compile_error",
            Status::RuntimeError => "runtime_error",
            Status::TimeLimitExceeded => "time_limit_exceeded",
            Status::MemoryLimitExceeded => "memory_limit_exceeded",
            Status::OutputLimitExceeded => "output_limit_exceeded",
            Status::InternalError => "internal_error",
            Status::WrongAnswer => "wrong_answer",
            Status::Accepted => "accepted",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The step a run ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The compile step (compiled languages; a syntax check for the others).
    Compile,
    /// The program itself.
    Run,
}

/// How a sandboxed run ended, as the sandbox observed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// The step it ended in.
    pub phase: Phase,
    /// The exit code, when the process exited.
    pub exit_code: Option<i64>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// The sandbox killed it at the wall-clock limit of `phase`.
    pub timed_out: bool,
    /// The kernel killed it for memory.
    pub oom_killed: bool,
    /// The sandbox killed it for passing the output cap.
    pub output_exceeded: bool,
}

impl Ending {
    /// The terminal status this ending means. The sandbox's own reasons for a kill come first
    /// (a kill shows up as SIGKILL too), then the kernel's, then the program's exit.
    pub fn status(&self) -> Status {
        let failed = self.signal.is_some() || self.exit_code != Some(0);
        match self.phase {
            Phase::Compile
                if self.timed_out || self.oom_killed || self.output_exceeded || failed =>
            {
                Status::CompileError
            }
            Phase::Compile => Status::InternalError, // a compile step that "succeeded" without running
            Phase::Run if self.output_exceeded => Status::OutputLimitExceeded,
            Phase::Run if self.timed_out => Status::TimeLimitExceeded,
            Phase::Run if self.oom_killed => Status::MemoryLimitExceeded,
            Phase::Run if failed => Status::RuntimeError,
            Phase::Run => Status::Ok,
        }
    }
}

/// Splits a container exit code into (exit code, signal): an init process reports death by
/// signal N as 128 + N, the shell convention.
pub fn split_exit_code(code: i64) -> (Option<i64>, Option<i32>) {
    if (129..=128 + 64).contains(&code) {
        (None, Some((code - 128) as i32))
    } else {
        (Some(code), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(exit_code: Option<i64>, signal: Option<i32>) -> Ending {
        Ending {
            phase: Phase::Run,
            exit_code,
            signal,
            timed_out: false,
            oom_killed: false,
            output_exceeded: false,
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
    }

    #[test]
    fn only_queued_and_running_are_open() {
        let open: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .collect();
        assert_eq!(open, vec![Status::Queued, Status::Running]);
    }

    #[test]
    fn maps_run_endings() {
        assert_eq!(run(Some(0), None).status(), Status::Ok);
        assert_eq!(run(Some(3), None).status(), Status::RuntimeError);
        assert_eq!(run(None, Some(11)).status(), Status::RuntimeError);
        assert_eq!(
            Ending {
                timed_out: true,
                ..run(None, Some(9))
            }
            .status(),
            Status::TimeLimitExceeded
        );
        assert_eq!(
            Ending {
                oom_killed: true,
                ..run(None, Some(9))
            }
            .status(),
            Status::MemoryLimitExceeded
        );
        let both = Ending {
            output_exceeded: true,
            timed_out: true,
            ..run(None, Some(9))
        };
        assert_eq!(
            both.status(),
            Status::OutputLimitExceeded,
            "the sandbox's own reason wins"
        );
    }

    #[test]
    fn maps_compile_endings() {
        let compile = Ending {
            phase: Phase::Compile,
            ..run(Some(1), None)
        };
        assert_eq!(compile.status(), Status::CompileError);
        assert_eq!(
            Ending {
                timed_out: true,
                ..compile
            }
            .status(),
            Status::CompileError
        );
    }

    #[test]
    fn splits_signal_exit_codes() {
        assert_eq!(split_exit_code(0), (Some(0), None));
        assert_eq!(split_exit_code(1), (Some(1), None));
        assert_eq!(split_exit_code(137), (None, Some(9)));
        assert_eq!(split_exit_code(139), (None, Some(11)));
        assert_eq!(split_exit_code(255), (Some(255), None));
    }
}
