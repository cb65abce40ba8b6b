//! One run in one container, as a state machine without I/O: the fleet's adapter feeds it
//! what happened ([`Input`]) with the time it happened, and does what it answers
//! ([`Action`]). Every timing, kill and retry rule lives here, testable with a fake clock.
//!
//! ```text
//! Streaming ── stdout/stderr ──> Session (protocol)     clock: compile limit from the start,
//!    │                                                  run limit from the program's start
//!    ├─ deadline passed / output over the cap ──> Kill ──> Killed ── Exited ──> Done
//!    ├─ END on both streams, plain exit, no OOM ─────────────────────────────> Done (exiting)
//!    ├─ streams closed without a conclusive END ──> AwaitExit(deadline) ── Exited ──> Done
//!    │                                                  └─ deadline passed ──> Kill ...
//!    ├─ stream or protocol failure ──> Abandon (retry on a fresh container if a warm one
//!    │                                 failed before it took the program)
//!    └─ a warm container whose output ended before it took the program ──> Abandon, retry
//! ```
//!
//! Which limit holds when is [`crate::clock`]'s business. The run's time is from the program's start (RUN, or its first stderr byte) to the first
//! sign of its end: END, the fleet's kill, or the engine's exit, whichever came first.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use codebox_submission::{Language, Limits, RunResult};

use crate::clock::{Clock, Due, TimeLimit, Timer};
use crate::outcome::{self, Build, Kill, Observed};
use crate::protocol::{Event, ProtocolError, Session};

/// Something that happened to the run's container.
#[derive(Debug)]
pub enum Input<'a> {
    /// Bytes from its stdout.
    Stdout(&'a [u8]),
    /// Bytes from its stderr.
    Stderr(&'a [u8]),
    /// Its output streams ended.
    StreamsClosed,
    /// Reading its output failed.
    StreamFailed(String),
    /// [`Run::deadline`] passed.
    DeadlinePassed,
    /// A line of input (or the end of input) reached the program's stdin.
    InputSent,
    /// The container has used this much CPU time (asked for with [`Action::SampleCpu`]).
    CpuUsed(Duration),
    /// It is not running any more: the engine's exit code (`None`: unknown) and OOM flag.
    Exited {
        /// Its init's exit code (128+N for death by signal N).
        exit_code: Option<i64>,
        /// Whether the kernel's OOM killer struck in it.
        oom_killed: bool,
    },
}

/// What the adapter must do next.
#[derive(Debug)]
pub enum Action {
    /// Keep reading its streams; send [`Input::DeadlinePassed`] at [`Run::deadline`].
    ReadStreams,
    /// Read the container's CPU time and send it as [`Input::CpuUsed`]; keep reading its
    /// streams meanwhile.
    SampleCpu,
    /// Stop reading its streams and wait for it to exit; send [`Input::DeadlinePassed`] if it
    /// has not by `until`, else [`Input::Exited`].
    AwaitExit {
        /// The run's deadline.
        until: Instant,
    },
    /// Stop reading its streams, SIGKILL it, wait for it to stop, then send
    /// [`Input::Exited`].
    Kill,
    /// Give up on this container (kill it): retry on a fresh one if `retry`, else fail.
    Abandon {
        /// Whether nothing of the program ran, so a fresh container may take it.
        retry: bool,
        /// What went wrong.
        reason: Failure,
    },
    /// The run is over: [`Run::into_result`] has its result. `exiting`: the container is
    /// ending by itself (END came first), so removing it may wait for that rather than kill.
    Done {
        /// The container ends by itself.
        exiting: bool,
    },
}

/// Why a container was given up on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The supervisor broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Reading the container's output failed.
    #[error("reading the container's output failed: {0}")]
    Stream(String),
    /// A warm container's output ended before it took the program.
    #[error("the warm container's output ended before it took the program")]
    DeadOnArrival,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Streaming,
    AwaitingExit,
    Killed,
    Done { exiting: bool },
    Abandoned { retry: bool, reason: Failure },
}

/// One run in one container. Feed it with [`Run::handle`].
#[derive(Debug)]
pub struct Run {
    language: Language,
    limits: Limits,
    /// A warm container: one that fails before it took the program is retried.
    warm: bool,
    session: Session,
    phase: Phase,
    timer: Timer,
    program_started: Option<Instant>,
    /// The first sign of the program's end.
    ended: Option<Instant>,
    observed: Observed,
}

impl Run {
    /// A run whose program was just sent to a started container (`warm`: from the pool),
    /// whose supervisor has said what `session` holds so far.
    pub fn new(
        language: Language,
        limits: Limits,
        clock: Clock,
        session: Session,
        warm: bool,
        now: Instant,
    ) -> Run {
        Run {
            language,
            limits,
            warm,
            session,
            phase: Phase::Streaming,
            timer: Timer::new(clock, &limits, now),
            program_started: None,
            ended: None,
            observed: Observed::default(),
        }
    }

    /// When the current clock runs out (see [`crate::clock`]), or the next CPU sample of an
    /// interactive run is due.
    pub fn deadline(&self) -> Instant {
        self.timer.deadline()
    }

    /// The program's output kept so far (stdout, stderr): what a live run relays as it grows.
    pub fn output(&self) -> (&[u8], &[u8]) {
        (self.session.stdout().bytes(), self.session.stderr().bytes())
    }

    /// The time limit that ended the run, if one did.
    pub fn time_limit(&self) -> Option<TimeLimit> {
        match self.observed.kill {
            Some(Kill::Time(limit)) => Some(limit),
            _ => None,
        }
    }

    /// Takes what happened at `now`; returns what to do.
    pub fn handle(&mut self, input: Input, now: Instant) -> Action {
        match (self.phase.clone(), input) {
            (Phase::Streaming, Input::Stdout(bytes)) => {
                let before = self.program_output();
                match self.session.on_stdout(bytes) {
                    Ok(events) => self.on_output(before, events, now),
                    Err(e) => self.abandon(Failure::Protocol(e)),
                }
            }
            (Phase::Streaming, Input::Stderr(bytes)) => {
                let before = self.program_output();
                let events = self.session.on_stderr(bytes);
                self.on_output(before, events, now)
            }
            (Phase::Streaming | Phase::AwaitingExit, Input::InputSent) => {
                self.timer.activity(now);
                self.current()
            }
            (Phase::Streaming, Input::CpuUsed(cpu)) => match self.timer.cpu_used(cpu) {
                Some(limit) => self.kill(Kill::Time(limit), now),
                None => self.current(),
            },
            (Phase::Streaming, Input::StreamsClosed) => self.streams_done(),
            (Phase::Streaming, Input::StreamFailed(e)) => self.abandon(Failure::Stream(e)),
            (Phase::Streaming | Phase::AwaitingExit, Input::DeadlinePassed) => {
                match self.timer.due(now) {
                    Due::Nothing => self.current(),
                    Due::SampleCpu => Action::SampleCpu,
                    Due::Limit(limit) => self.kill(Kill::Time(limit), now),
                }
            }
            (
                Phase::AwaitingExit | Phase::Killed,
                Input::Exited {
                    exit_code,
                    oom_killed,
                },
            ) => {
                if self.phase == Phase::AwaitingExit {
                    self.ended.get_or_insert(now);
                }
                self.observed.exit_code = exit_code;
                // The engine's OOM flag comes from an event that can lose the race with the
                // exit; the supervisor's count, read from the cgroup after the program ended,
                // does not. (A program could only forge it against itself.)
                self.observed.oom_killed = oom_killed || self.session.oom_reported();
                self.finish(false)
            }
            // Late or repeated news (bytes after the streams were dropped, a deadline
            // while a kill is under way): nothing changes.
            _ => self.current(),
        }
    }

    /// What to do, restated (for inputs that change nothing).
    fn current(&self) -> Action {
        match self.phase {
            Phase::Streaming => Action::ReadStreams,
            Phase::AwaitingExit => Action::AwaitExit {
                until: self.timer.deadline(),
            },
            Phase::Killed => Action::Kill,
            Phase::Done { exiting } => Action::Done { exiting },
            Phase::Abandoned { retry, ref reason } => Action::Abandon {
                retry,
                reason: reason.clone(),
            },
        }
    }

    /// Bytes of the program's output so far, kept or not.
    fn program_output(&self) -> u64 {
        self.session.stdout().total() + self.session.stderr().total()
    }

    /// Output arrived: the program's own bytes count as activity.
    fn on_output(&mut self, before: u64, events: Vec<Event>, now: Instant) -> Action {
        let action = self.on_events(events, now);
        if self.program_output() > before {
            self.timer.activity(now);
        }
        action
    }

    fn on_events(&mut self, events: Vec<Event>, now: Instant) -> Action {
        for event in events {
            match event {
                Event::ProgramStarted => {
                    self.program_started = Some(now);
                    self.timer.program_started(now);
                }
                Event::OutputExceeded => return self.kill(Kill::OutputLimit, now),
                Event::Ended(_) => {
                    self.ended = Some(now);
                    return self.streams_done();
                }
                Event::Ready
                | Event::CompileStarted
                | Event::Compiled { .. }
                | Event::SupervisorFailed(_) => {}
            }
        }
        Action::ReadStreams
    }

    /// The streams are done with (ended, or END came on both).
    fn streams_done(&mut self) -> Action {
        self.session.close_streams();
        if self.warm && !self.session.compile_started() && self.session.failure().is_none() {
            // The output ended before the supervisor took the program: the warm container
            // was dead on arrival (or died just now). Nothing of the program ran.
            return self.abandon(Failure::DeadOnArrival);
        }
        // The supervisor's END settles a plain exit at once: the engine sees the container's
        // end later. Otherwise the engine decides.
        match self.session.end().filter(|end| end.is_conclusive()) {
            Some(end) => {
                self.observed.exit_code = Some(end.status);
                self.finish(true)
            }
            None => {
                self.phase = Phase::AwaitingExit;
                self.timer.stop_sampling();
                Action::AwaitExit {
                    until: self.timer.deadline(),
                }
            }
        }
    }

    fn kill(&mut self, why: Kill, now: Instant) -> Action {
        self.session.close_streams();
        self.timer.stop_sampling();
        self.observed.kill = Some(why);
        self.ended.get_or_insert(now);
        self.phase = Phase::Killed;
        Action::Kill
    }

    fn abandon(&mut self, reason: Failure) -> Action {
        let retry = self.warm && !self.session.compile_started();
        self.phase = Phase::Abandoned {
            retry,
            reason: reason.clone(),
        };
        Action::Abandon { retry, reason }
    }

    fn finish(&mut self, exiting: bool) -> Action {
        self.phase = Phase::Done { exiting };
        self.observed.run_time = self
            .program_started
            .zip(self.ended)
            .map(|(start, end)| end.saturating_duration_since(start));
        Action::Done { exiting }
    }

    /// The run's result, finished at `at` (wall clock). Before [`Action::Done`] it says
    /// the run is unfinished, as an internal error.
    pub fn into_result(self, at: DateTime<Utc>) -> RunResult {
        if !self.is_done() {
            return unfinished(at);
        }
        outcome::run_result(
            self.language,
            &self.limits,
            &self.session,
            &self.observed,
            at,
        )
    }

    /// A build's outcome (the request's mode was `build`), finished at `at`: the program it
    /// handed back, or the result to report when it did not succeed (a compile error, a
    /// compile step past its limit, CodeBox's failure).
    pub fn into_build(mut self, at: DateTime<Utc>) -> Result<Build, Box<RunResult>> {
        if !self.is_done() {
            return Err(Box::new(unfinished(at)));
        }
        outcome::build_result(
            self.language,
            &self.limits,
            &mut self.session,
            &self.observed,
            at,
        )
    }

    fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }
}

fn unfinished(at: DateTime<Utc>) -> RunResult {
    RunResult::internal_error("the sandbox gave up on the run before it ended", at)
}
