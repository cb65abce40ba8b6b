//! The run state machine, black-box, with a fake clock: what the fleet's adapter is told to
//! do, and the result, for every way a run can go.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use codebox_sandbox::protocol::{say, Mode, Request, Session};
use codebox_sandbox::{Action, Clock, Failure, Input, InteractiveLimits, Run, TimeLimit};
use codebox_submission::{Language, Limits, RunResult, Status};
use proptest::prelude::*;

const TOKEN: &str = "00112233445566778899aabbccddeeff";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A run and its clock's zero.
struct Fixture {
    run: Run,
    t0: Instant,
}

impl Fixture {
    fn new(language: Language, warm: bool) -> Fixture {
        Fixture::with_limits(language, warm, Limits::default())
    }

    fn with_limits(language: Language, warm: bool, limits: Limits) -> Fixture {
        Fixture::clocked(language, warm, limits, Clock::Batch)
    }

    fn interactive(language: Language) -> Fixture {
        let clock = Clock::Interactive(InteractiveLimits::default());
        Fixture::clocked(language, false, Limits::default(), clock)
    }

    fn clocked(language: Language, warm: bool, limits: Limits, clock: Clock) -> Fixture {
        Fixture::asked(language, warm, limits, clock, Mode::Run)
    }

    /// A build of a project: the supervisor is asked to hand the program back.
    fn building(language: Language) -> Fixture {
        Fixture::asked(
            language,
            false,
            Limits::default(),
            Clock::Batch,
            Mode::Build,
        )
    }

    fn asked(language: Language, warm: bool, limits: Limits, clock: Clock, mode: Mode) -> Fixture {
        let t0 = Instant::now();
        let mut session = Session::new(limits.output_bytes, TOKEN.to_string());
        session.request(&Request {
            language,
            mode,
            files: &[],
            artifact: b"",
            stdin: b"",
        });
        Fixture {
            run: Run::new(language, limits, clock, session, warm, t0),
            t0,
        }
    }

    fn stdout(&mut self, t: u64, bytes: &[u8]) -> Action {
        self.run.handle(Input::Stdout(bytes), self.t0 + ms(t))
    }

    fn stderr(&mut self, t: u64, bytes: &[u8]) -> Action {
        self.run.handle(Input::Stderr(bytes), self.t0 + ms(t))
    }

    fn at(&mut self, t: u64, input: Input) -> Action {
        self.run.handle(input, self.t0 + ms(t))
    }

    /// READY, COMPILE, COMPILED 0, RUN at `t`.
    fn start_program(&mut self, t: u64) -> Action {
        let words = [
            say::ready(),
            say::compile(),
            say::compiled(0, 0, 0),
            say::run(),
        ]
        .concat();
        self.stdout(t, words.as_bytes())
    }

    /// END on both streams at `t`.
    fn end(&mut self, t: u64, status: i64, ooms: Option<u64>) -> Action {
        let action = self.stdout(t, say::end_stdout(TOKEN, status, ooms).as_bytes());
        assert!(matches!(action, Action::ReadStreams), "{action:?}");
        self.stderr(t, say::end_stderr(TOKEN).as_bytes())
    }

    fn result(self) -> RunResult {
        self.run.into_result(at())
    }
}

fn exited(exit_code: i64, oom_killed: bool) -> Input<'static> {
    Input::Exited {
        exit_code: Some(exit_code),
        oom_killed,
    }
}

#[test]
fn a_plain_exit_is_settled_by_end_with_the_time_from_run_to_end() {
    let mut f = Fixture::new(Language::C, false);
    assert!(matches!(f.start_program(3), Action::ReadStreams));
    assert!(matches!(f.stdout(5, b"hi\n"), Action::ReadStreams));
    assert!(matches!(f.stderr(6, b"warn\n"), Action::ReadStreams));
    assert!(matches!(
        f.end(15, 0, Some(0)),
        Action::Done { exiting: true }
    ));
    let r = f.result();
    assert_eq!((r.status, r.time_ms), (Status::Ok, Some(12)));
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("hi\n", "warn\n"));
    assert_eq!(r.finished_at, at());
}

#[test]
fn a_runtime_error_is_settled_by_end_too() {
    let mut f = Fixture::new(Language::Python, false);
    f.start_program(0);
    assert!(matches!(
        f.end(40, 1, Some(0)),
        Action::Done { exiting: true }
    ));
    let r = f.result();
    assert_eq!(
        (r.status, r.exit_code, r.time_ms),
        (Status::RuntimeError, Some(1), Some(40))
    );
}

#[test]
fn the_compile_clock_runs_from_the_start_and_the_run_clock_from_the_programs_start() {
    let limits = Limits::default();
    let mut f = Fixture::new(Language::Rust, false);
    assert_eq!(f.run.deadline(), f.t0 + ms(limits.compile_ms));
    f.start_program(7_000);
    assert_eq!(f.run.deadline(), f.t0 + ms(7_000 + limits.run_ms));
    // A timer that fires for the old deadline changes nothing.
    assert!(matches!(
        f.at(limits.compile_ms, Input::DeadlinePassed),
        Action::ReadStreams
    ));
    assert!(matches!(
        f.at(7_000 + limits.run_ms, Input::DeadlinePassed),
        Action::Kill
    ));
    // Late bytes and a second deadline while the kill is under way change nothing.
    assert!(matches!(f.stdout(12_500, b"late"), Action::Kill));
    assert!(matches!(f.at(12_600, Input::DeadlinePassed), Action::Kill));
    assert!(matches!(
        f.at(12_900, exited(137, false)),
        Action::Done { exiting: false }
    ));
    let r = f.result();
    assert_eq!(r.status, Status::TimeLimitExceeded);
    assert_eq!(
        r.time_ms,
        Some(limits.run_ms),
        "the kill, not the engine's exit, ends the time"
    );
    assert_eq!(r.stdout, "", "bytes after the kill are not the run's");
}

#[test]
fn a_compile_step_past_its_limit_is_killed_and_reported_as_a_compile_error() {
    let mut f = Fixture::new(Language::Cpp, false);
    let words = [say::ready(), say::compile()].concat();
    f.stdout(1, words.as_bytes());
    assert!(matches!(f.at(10_000, Input::DeadlinePassed), Action::Kill));
    assert!(matches!(
        f.at(10_020, exited(137, false)),
        Action::Done { exiting: false }
    ));
    let r = f.result();
    assert_eq!(r.status, Status::CompileError);
    assert!(r.compile_output.unwrap().contains("time limit (10000 ms)"));
    assert_eq!(r.time_ms, None);
}

#[test]
fn output_over_the_cap_kills_at_once() {
    let limits = Limits {
        output_bytes: 8,
        ..Limits::default()
    };
    let mut f = Fixture::with_limits(Language::C, false, limits);
    f.start_program(10);
    assert!(matches!(f.stdout(20, b"12345678"), Action::ReadStreams));
    assert!(matches!(f.stdout(30, b"9"), Action::Kill));
    assert!(matches!(f.at(45, exited(137, false)), Action::Done { .. }));
    let r = f.result();
    assert_eq!(r.status, Status::OutputLimitExceeded);
    assert_eq!((r.stdout.as_str(), r.stdout_truncated), ("12345678", true));
    assert_eq!(r.time_ms, Some(20));
}

#[test]
fn without_end_the_engine_decides_and_its_exit_ends_the_time() {
    let mut f = Fixture::new(Language::Go, false);
    f.start_program(100);
    let deadline = f.run.deadline();
    match f.at(300, Input::StreamsClosed) {
        Action::AwaitExit { until } => assert_eq!(until, deadline),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.at(900, exited(3, false)),
        Action::Done { exiting: false }
    ));
    let r = f.result();
    assert_eq!(
        (r.status, r.exit_code, r.time_ms),
        (Status::RuntimeError, Some(3), Some(800))
    );
}

#[test]
fn a_program_that_closes_its_streams_and_spins_is_killed_at_its_deadline() {
    let limits = Limits::default();
    let mut f = Fixture::new(Language::C, false);
    f.start_program(0);
    assert!(matches!(
        f.at(10, Input::StreamsClosed),
        Action::AwaitExit { .. }
    ));
    assert!(matches!(
        f.at(limits.run_ms, Input::DeadlinePassed),
        Action::Kill
    ));
    f.at(limits.run_ms + 30, exited(137, false));
    let r = f.result();
    assert_eq!(
        (r.status, r.time_ms),
        (Status::TimeLimitExceeded, Some(limits.run_ms))
    );
}

#[test]
fn sigkill_or_an_oom_kill_in_end_needs_the_engines_word() {
    // The OOM killer's SIGKILL: END says 137; the engine says OOM.
    let mut f = Fixture::new(Language::C, false);
    f.start_program(0);
    assert!(matches!(f.end(50, 137, Some(0)), Action::AwaitExit { .. }));
    assert!(matches!(f.at(75, exited(137, true)), Action::Done { .. }));
    let r = f.result();
    assert_eq!(
        (r.status, r.time_ms),
        (Status::MemoryLimitExceeded, Some(50))
    );

    // A child was OOM-killed, the program exited 0: the supervisor's count is enough even
    // when the engine's flag lost its race.
    let mut f = Fixture::new(Language::Python, false);
    f.start_program(0);
    assert!(matches!(f.end(50, 0, Some(1)), Action::AwaitExit { .. }));
    f.at(70, exited(0, false));
    assert_eq!(f.result().status, Status::MemoryLimitExceeded);
}

#[test]
fn a_forged_end_is_the_programs_output() {
    let mut f = Fixture::new(Language::C, false);
    f.start_program(0);
    let forged = say::end_stdout("ffffffffffffffffffffffffffffffff", 0, Some(0));
    assert!(matches!(
        f.stdout(5, forged.as_bytes()),
        Action::ReadStreams
    ));
    let forged_err = say::end_stderr("ffffffffffffffffffffffffffffffff");
    assert!(matches!(
        f.stderr(5, forged_err.as_bytes()),
        Action::ReadStreams
    ));
    assert!(matches!(f.at(5_000, Input::DeadlinePassed), Action::Kill));
    f.at(5_010, exited(137, false));
    let r = f.result();
    assert_eq!(
        (r.status, r.time_ms),
        (Status::TimeLimitExceeded, Some(5_000))
    );
    assert_eq!(r.stdout, forged);
}

#[test]
fn a_warm_container_that_dies_before_taking_the_program_is_retried() {
    let mut f = Fixture::new(Language::Python, true);
    f.stdout(0, say::ready().as_bytes());
    match f.at(3, Input::StreamsClosed) {
        Action::Abandon {
            retry: true,
            reason,
        } => assert_eq!(reason, Failure::DeadOnArrival),
        other => panic!("{other:?}"),
    }
    // A fresh one is not retried: the engine's word decides, and the result says what died.
    let mut f = Fixture::new(Language::Python, false);
    f.stdout(0, say::ready().as_bytes());
    assert!(matches!(
        f.at(3, Input::StreamsClosed),
        Action::AwaitExit { .. }
    ));
    f.at(4, exited(1, false));
    let r = f.result();
    assert_eq!(r.status, Status::InternalError);
    assert!(
        r.stderr.contains("ended before its program arrived"),
        "{}",
        r.stderr
    );
}

#[test]
fn broken_streams_abandon_the_container_and_retry_only_what_never_started() {
    let mut warm = Fixture::new(Language::C, true);
    warm.stdout(0, say::ready().as_bytes());
    match warm.stdout(1, b"garbage\n") {
        Action::Abandon {
            retry: true,
            reason: Failure::Protocol(_),
        } => {}
        other => panic!("{other:?}"),
    }
    let mut started = Fixture::new(Language::C, true);
    started.start_program(0);
    match started.at(1, Input::StreamFailed("connection reset".into())) {
        Action::Abandon {
            retry: false,
            reason,
        } => {
            assert!(reason.to_string().contains("connection reset"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let r = started.result();
    assert_eq!(
        r.status,
        Status::InternalError,
        "an abandoned run has no result of its own"
    );
}

#[test]
fn a_supervisor_failure_is_an_internal_error_naming_it() {
    let mut f = Fixture::new(Language::Go, true);
    let words = [say::ready(), say::fail("cannot enter /work")].concat();
    assert!(matches!(f.stdout(0, words.as_bytes()), Action::ReadStreams));
    assert!(matches!(
        f.at(2, Input::StreamsClosed),
        Action::AwaitExit { .. }
    ));
    f.at(3, exited(125, false));
    let r = f.result();
    assert_eq!(r.status, Status::InternalError);
    assert!(r.stderr.contains("cannot enter /work"), "{}", r.stderr);
}

/// Splits `bytes` at the given cut points (taken modulo its length).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.extend([0, bytes.len()]);
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

proptest! {
    /// However the streams are cut, and whatever the program prints (marker look-alikes
    /// included), the result is the same: every byte, the status END gave, the time to END.
    #[test]
    fn any_chunking_gives_the_same_result(
        out in proptest::collection::vec(prop_oneof![
            Just(b"CODEBOX/3 END ".to_vec()),
            Just(TOKEN.as_bytes().to_vec()),
            Just(b"\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..20),
        ], 0..12).prop_map(|parts| parts.concat()),
        err in proptest::collection::vec(any::<u8>(), 0..64),
        status in 0i64..=255,
        out_cuts in proptest::collection::vec(any::<usize>(), 0..8),
        err_cuts in proptest::collection::vec(any::<usize>(), 0..8),
        run_ms in 1u64..4_000,
    ) {
        // A program's output can never contain its own run's END: the token is secret.
        prop_assume!(!out.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
        let mut f = Fixture::new(Language::C, true);
        f.start_program(0);
        let stdout = [out.clone(), say::end_stdout(TOKEN, status, Some(0)).into_bytes()].concat();
        let stderr = [err.clone(), say::end_stderr(TOKEN).into_bytes()].concat();
        let mut last = Action::ReadStreams;
        for chunk in chunks(&stdout, &out_cuts) {
            last = f.stdout(run_ms, &chunk);
        }
        for chunk in chunks(&stderr, &err_cuts) {
            last = f.stderr(run_ms, &chunk);
        }
        let conclusive = status != 137;
        prop_assert!(match last {
            Action::Done { exiting } => conclusive && exiting,
            Action::AwaitExit { .. } => !conclusive,
            _ => false,
        }, "{last:?}");
        if !conclusive {
            f.at(run_ms + 5, exited(137, false));
        }
        let r = f.result();
        prop_assert_eq!(r.stdout, String::from_utf8_lossy(&out).into_owned());
        prop_assert_eq!(r.stderr, String::from_utf8_lossy(&err).into_owned());
        prop_assert_eq!(r.time_ms, Some(run_ms));
    }

    /// Timer wake-ups before the deadline never kill; the one at the deadline does, and the
    /// time is exactly the limit however late the engine's exit comes.
    #[test]
    fn only_the_deadline_kills(
        started in 0u64..10_000,
        early in proptest::collection::vec(0u64..5_000, 0..6),
        engine_late in 0u64..15_000,
    ) {
        let limits = Limits::default();
        let mut f = Fixture::new(Language::C, false);
        f.start_program(started);
        for t in early {
            let action = f.at(started + t.min(limits.run_ms - 1), Input::DeadlinePassed);
            prop_assert!(matches!(action, Action::ReadStreams), "{action:?}");
        }
        let action = f.at(started + limits.run_ms, Input::DeadlinePassed);
        prop_assert!(matches!(action, Action::Kill), "{action:?}");
        f.at(started + limits.run_ms + engine_late, exited(137, false));
        let r = f.result();
        prop_assert_eq!(r.status, Status::TimeLimitExceeded);
        prop_assert_eq!(r.time_ms, Some(limits.run_ms));
    }
}

/// Runs a started interactive program's timer wake-ups up to `until` ms, answering every
/// CPU sample with `cpu`; returns the first action that is neither a sample nor read-on.
fn tick_until(f: &mut Fixture, from: u64, until: u64, cpu: Duration) -> Action {
    let mut t = from;
    while t <= until {
        match f.at(t, Input::DeadlinePassed) {
            Action::SampleCpu => match f.at(t, Input::CpuUsed(cpu)) {
                Action::ReadStreams => {}
                other => return other,
            },
            Action::ReadStreams => {}
            other => return other,
        }
        t += 100;
    }
    Action::ReadStreams
}

#[test]
fn an_interactive_run_ends_after_its_idle_time_without_output_or_input() {
    let mut f = Fixture::interactive(Language::Python);
    f.start_program(0);
    assert_eq!(f.run.deadline(), f.t0 + ms(100), "the first CPU sample");
    assert!(matches!(f.stdout(5_000, b"name? "), Action::ReadStreams));
    assert!(matches!(
        f.at(15_000, Input::InputSent),
        Action::ReadStreams
    ));
    // Idle since 15 s: nothing ends it before 35 s.
    assert!(matches!(
        tick_until(&mut f, 100, 34_900, ms(50)),
        Action::ReadStreams
    ));
    assert!(matches!(f.at(35_000, Input::DeadlinePassed), Action::Kill));
    assert_eq!(f.run.time_limit(), Some(TimeLimit::Idle));
    f.at(35_010, exited(137, false));
    let r = f.result();
    assert_eq!(
        (r.status, r.time_ms),
        (Status::TimeLimitExceeded, Some(35_000))
    );
    assert_eq!(r.stdout, "name? ");
}

#[test]
fn an_interactive_run_that_keeps_talking_ends_at_its_wall_time() {
    let mut f = Fixture::interactive(Language::Python);
    f.start_program(1_000);
    for t in (11_000..61_000).step_by(10_000) {
        assert!(matches!(f.stderr(t, b"."), Action::ReadStreams));
    }
    assert!(matches!(
        tick_until(&mut f, 1_100, 60_900, ms(10)),
        Action::ReadStreams
    ));
    assert!(matches!(f.at(61_000, Input::DeadlinePassed), Action::Kill));
    assert_eq!(f.run.time_limit(), Some(TimeLimit::Wall));
    f.at(61_020, exited(137, false));
    assert_eq!(f.result().time_ms, Some(60_000));
}

#[test]
fn an_interactive_run_ends_when_its_cpu_time_passes_the_limit() {
    let mut f = Fixture::interactive(Language::C);
    f.start_program(0);
    assert!(matches!(
        f.at(100, Input::DeadlinePassed),
        Action::SampleCpu
    ));
    assert_eq!(f.run.deadline(), f.t0 + ms(200), "the next sample");
    assert!(matches!(
        f.at(100, Input::CpuUsed(ms(4_999))),
        Action::ReadStreams
    ));
    assert!(matches!(f.at(200, Input::CpuUsed(ms(5_000))), Action::Kill));
    assert_eq!(f.run.time_limit(), Some(TimeLimit::Cpu));
    f.at(230, exited(137, false));
    let r = f.result();
    assert_eq!(
        (r.status, r.time_ms),
        (Status::TimeLimitExceeded, Some(200))
    );
}

#[test]
fn batch_runs_never_sample_cpu_and_name_their_limits() {
    let limits = Limits::default();
    let mut f = Fixture::new(Language::C, false);
    f.start_program(10);
    assert_eq!(f.run.deadline(), f.t0 + ms(10 + limits.run_ms));
    assert!(matches!(
        f.at(10 + limits.run_ms, Input::DeadlinePassed),
        Action::Kill
    ));
    assert_eq!(f.run.time_limit(), Some(TimeLimit::Run));
    let mut compiling = Fixture::new(Language::Rust, false);
    compiling.stdout(0, [say::ready(), say::compile()].concat().as_bytes());
    assert!(matches!(
        compiling.at(limits.compile_ms, Input::DeadlinePassed),
        Action::Kill
    ));
    assert_eq!(compiling.run.time_limit(), Some(TimeLimit::Compile));
    assert_eq!(TimeLimit::Idle.as_str(), "idle");
}

/// READY, COMPILE, COMPILED 0 and ARTIFACT with `program` (or its first `sent` bytes).
fn built(program: &[u8], sent: usize) -> Vec<u8> {
    let mut words = [
        say::ready(),
        say::compile(),
        say::compiled(0, 5, 5),
        "warn\n".to_string(),
        say::artifact(program.len() as u64),
    ]
    .concat()
    .into_bytes();
    words.extend_from_slice(&program[..sent]);
    words
}

#[test]
fn a_build_ends_with_its_program_and_the_compile_output() {
    let program = b"\x7fELF and more";
    let mut f = Fixture::building(Language::Rust);
    assert!(matches!(
        f.stdout(5, &built(program, program.len())),
        Action::ReadStreams
    ));
    assert!(matches!(
        f.end(900, 0, Some(0)),
        Action::Done { exiting: true }
    ));
    let build = f.run.into_build(at()).expect("a build");
    assert_eq!(build.program, program);
    assert_eq!(build.compile_output.as_deref(), Some("warn\n"));

    // Python: the check is the build, and there is no program to hand back.
    let mut f = Fixture::building(Language::Python);
    let words = [
        say::ready(),
        say::compile(),
        say::compiled(0, 0, 0),
        say::artifact(0),
    ]
    .concat();
    f.stdout(5, words.as_bytes());
    f.end(40, 0, Some(0));
    let build = f.run.into_build(at()).expect("a build");
    assert_eq!((build.program.len(), build.compile_output), (0, None));
}

#[test]
fn a_build_that_does_not_succeed_says_why_as_a_run_would() {
    // A compile error.
    let mut f = Fixture::building(Language::C);
    let words = [
        say::ready(),
        say::compile(),
        say::compiled(1, 6, 6),
        "error!".into(),
    ]
    .concat();
    f.stdout(5, words.as_bytes());
    f.end(300, 1, Some(0));
    let r = f.run.into_build(at()).unwrap_err();
    assert_eq!(
        (r.status, r.compile_output.as_deref()),
        (Status::CompileError, Some("error!"))
    );

    // Past the compile limit while the program was still coming: the compile step's limit.
    let mut f = Fixture::building(Language::Go);
    f.stdout(5, &built(b"0123456789", 4));
    assert!(matches!(f.at(10_000, Input::DeadlinePassed), Action::Kill));
    f.at(10_010, exited(137, false));
    let r = f.run.into_build(at()).unwrap_err();
    assert_eq!(
        (r.status, r.time_limit),
        (Status::CompileError, Some(TimeLimit::Compile))
    );

    // The whole program, then no clean END: CodeBox failed, whatever arrived.
    let mut f = Fixture::building(Language::Cpp);
    f.stdout(5, &built(b"0123456789", 10));
    assert!(matches!(
        f.at(50, Input::StreamsClosed),
        Action::AwaitExit { .. }
    ));
    f.at(60, exited(125, false));
    let r = f.run.into_build(at()).unwrap_err();
    assert_eq!(r.status, Status::InternalError, "{r:?}");

    // A build never started a program: RUN is a protocol violation.
    let mut f = Fixture::building(Language::C);
    let words = [
        say::ready(),
        say::compile(),
        say::compiled(0, 0, 0),
        say::run(),
    ]
    .concat();
    assert!(matches!(
        f.stdout(5, words.as_bytes()),
        Action::Abandon { retry: false, .. }
    ));
}
