//! A run's clocks: which time limit holds when, and which one ended the run.
//!
//! ```text
//! batch (Contract 2)        compile limit from the start, then the run limit (wall) from
//!                           the program's start
//! interactive (Contract 4)  compile limit from the start, then from the program's start:
//!                           wall time, idle time (neither output nor input), CPU time
//!                           (sampled from the container's cgroup every CPU_SAMPLE_EVERY)
//! ```

use std::time::{Duration, Instant};

use codebox_submission::Limits;
pub use codebox_submission::TimeLimit;

/// How often an interactive run's CPU time is read.
pub const CPU_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// How a run's program is clocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Its stdin is sent whole at the start; it is held to [`Limits::run_ms`] of wall time.
    Batch,
    /// Input arrives while it runs (a room's console).
    Interactive(InteractiveLimits),
}

/// The limits of an interactive run (Contract 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InteractiveLimits {
    /// CPU time of the whole container.
    pub cpu: Duration,
    /// Wall time from the program's start.
    pub wall: Duration,
    /// Time with neither output nor input.
    pub idle: Duration,
}

impl Default for InteractiveLimits {
    /// Contract 4's, as `Limits` states them.
    fn default() -> Self {
        let limits = Limits::default().interactive;
        InteractiveLimits {
            cpu: Duration::from_millis(limits.cpu_ms),
            wall: Duration::from_millis(limits.wall_ms),
            idle: Duration::from_millis(limits.idle_ms),
        }
    }
}

/// What came due at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing yet (a timer for an older deadline).
    Nothing,
    /// Time to read the container's CPU time.
    SampleCpu,
    /// A limit passed.
    Limit(TimeLimit),
}

/// The clocks of one run.
#[derive(Debug, Clone)]
pub(crate) struct Timer {
    clock: Clock,
    compile_until: Instant,
    run_limit: Duration,
    program_started: Option<Instant>,
    last_activity: Instant,
    /// When the CPU time is next read (interactive runs while their streams are read).
    next_sample: Option<Instant>,
}

impl Timer {
    /// The clocks of a run whose program was sent at `now`.
    pub(crate) fn new(clock: Clock, limits: &Limits, now: Instant) -> Timer {
        Timer {
            clock,
            compile_until: now + Duration::from_millis(limits.compile_ms),
            run_limit: Duration::from_millis(limits.run_ms),
            program_started: None,
            last_activity: now,
            next_sample: None,
        }
    }

    /// The program started.
    pub(crate) fn program_started(&mut self, now: Instant) {
        self.program_started = Some(now);
        self.last_activity = now;
        if let Clock::Interactive(_) = self.clock {
            self.next_sample = Some(now + CPU_SAMPLE_EVERY);
        }
    }

    /// Output or input happened.
    pub(crate) fn activity(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    /// No more CPU samples (the streams are done with).
    pub(crate) fn stop_sampling(&mut self) {
        self.next_sample = None;
    }

    /// The limit that holds now and when it passes.
    fn limit(&self) -> (TimeLimit, Instant) {
        let Some(started) = self.program_started else {
            return (TimeLimit::Compile, self.compile_until);
        };
        match self.clock {
            Clock::Batch => (TimeLimit::Run, started + self.run_limit),
            Clock::Interactive(limits) => {
                let wall = started + limits.wall;
                let idle = self.last_activity + limits.idle;
                if idle < wall {
                    (TimeLimit::Idle, idle)
                } else {
                    (TimeLimit::Wall, wall)
                }
            }
        }
    }

    /// When something next comes due: a limit, or a CPU sample.
    pub(crate) fn deadline(&self) -> Instant {
        let (_, limit) = self.limit();
        self.next_sample.map_or(limit, |sample| sample.min(limit))
    }

    /// What is due at `now`.
    pub(crate) fn due(&mut self, now: Instant) -> Due {
        let (limit, at) = self.limit();
        if now >= at {
            return Due::Limit(limit);
        }
        match self.next_sample {
            Some(sample) if now >= sample => {
                self.next_sample = Some(now + CPU_SAMPLE_EVERY);
                Due::SampleCpu
            }
            _ => Due::Nothing,
        }
    }

    /// The container has used `cpu`: the CPU limit, if it passed.
    pub(crate) fn cpu_used(&self, cpu: Duration) -> Option<TimeLimit> {
        match self.clock {
            Clock::Interactive(limits) if self.program_started.is_some() && cpu >= limits.cpu => {
                Some(TimeLimit::Cpu)
            }
            _ => None,
        }
    }
}
