//! Resource limits of a run (DESIGN.md, "Default limits").

use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The limits one run is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest accepted source, in bytes.
    pub max_source_bytes: usize,
    /// Largest accepted stdin, in bytes.
    pub max_stdin_bytes: usize,
    /// Wall-clock limit of the program's run.
    pub run_ms: u64,
    /// Wall-clock limit of the compile step.
    pub compile_ms: u64,
    /// Memory limit; swap is held equal, so there is no extra swap.
    pub memory_bytes: u64,
    /// Process and thread limit.
    pub pids: i64,
    /// Bytes kept per output stream; one more byte kills the run.
    pub output_bytes: usize,
    /// Size of the tmpfs work directory.
    pub work_dir_bytes: u64,
    /// CPU the run may use, in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: i64,
    /// Open file descriptors.
    pub open_files: u64,
    /// Largest file the program may write.
    pub file_size_bytes: u64,
    /// The time limits of a live run (Contract 4), which replace `run_ms`.
    pub interactive: InteractiveLimits,
    /// Most files in a project (Contract 2b).
    pub max_files: usize,
    /// Most bytes of a project's files together.
    pub max_project_bytes: usize,
    /// Most tests in a submission.
    pub max_tests: usize,
    /// Most bytes of one test's stdin, and of its expected output.
    pub max_test_bytes: usize,
}

/// The time limits of a live run (Contract 4), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractiveLimits {
    /// CPU time of the whole run.
    pub cpu_ms: u64,
    /// Wall time from the program's start.
    pub wall_ms: u64,
    /// Time with neither output nor input.
    pub idle_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: (64 * KIB) as usize,
            max_stdin_bytes: (64 * KIB) as usize,
            run_ms: 5_000,
            compile_ms: 10_000,
            memory_bytes: 256 * MIB,
            pids: 64,
            output_bytes: (64 * KIB) as usize,
            work_dir_bytes: 64 * MIB,
            nano_cpus: 1_000_000_000,
            open_files: 256,
            file_size_bytes: 16 * MIB,
            interactive: InteractiveLimits {
                cpu_ms: 5_000,
                wall_ms: 60_000,
                idle_ms: 20_000,
            },
            max_files: crate::project::MAX_FILES,
            max_project_bytes: crate::project::MAX_PROJECT_BYTES,
            max_tests: crate::judge::MAX_TESTS,
            max_test_bytes: crate::judge::MAX_TEST_BYTES,
        }
    }
}
