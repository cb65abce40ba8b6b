//! Interactive runs (Contract 4) against the real engine and runner images: lines typed while
//! the program runs reach it in order, output comes out as it is written, the end of input
//! is an EOF, and the interactive limits (idle, wall, CPU) end a run. Needs what
//! tests/sandbox.rs needs.

mod common;

use std::time::{Duration, Instant};

use codebox_exec_fleet::sandbox::Live;
use codebox_live::frame::{FromRun, Stream, ToRun};
use codebox_sandbox::InteractiveLimits;
use codebox_submission::{Language, RunResult, Status};
use tokio::sync::mpsc;

use common::*;

/// A live run in progress: its input, what it printed so far, and its result to come.
struct LiveRun {
    input: Option<mpsc::Sender<ToRun>>,
    output: mpsc::UnboundedReceiver<FromRun>,
    stdout: Vec<u8>,
    result: tokio::task::JoinHandle<RunResult>,
}

impl LiveRun {
    fn start(source: &str, stdin: &str, limits: InteractiveLimits) -> LiveRun {
        let (input, lines) = mpsc::channel(16);
        let (out, output) = mpsc::unbounded_channel();
        let live = Live {
            input: lines,
            output: out,
            limits,
        };
        let (source, stdin) = (source.to_string(), stdin.to_string());
        // Connected here, on the test's thread: connecting blocks on the runtime.
        let sandbox = shared().clone();
        let result = runtime().spawn(async move {
            sandbox
                .run_live(
                    Language::Python,
                    &single(Language::Python, &source),
                    &stdin,
                    live,
                )
                .await
        });
        LiveRun {
            input: Some(input),
            output,
            stdout: Vec::new(),
            result,
        }
    }

    /// Waits until the program's stdout holds `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&self.stdout).contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in {:?}",
                String::from_utf8_lossy(&self.stdout)
            );
            let frame = runtime().block_on(async {
                tokio::time::timeout(Duration::from_millis(200), self.output.recv()).await
            });
            if let Ok(Some(FromRun::Output {
                stream: Stream::Stdout,
                bytes,
            })) = frame
            {
                self.stdout.extend(bytes);
            }
        }
    }

    fn send(&self, frame: ToRun) {
        let input = self.input.clone().expect("input open");
        runtime()
            .block_on(input.send(frame))
            .expect("the run takes input");
    }

    /// Everyone left the room: the channel's input side is gone.
    fn hang_up(mut self) -> Self {
        self.input = None;
        self
    }

    /// Waits for the result (the input stays open: someone could still type).
    fn finish(mut self) -> (RunResult, Vec<u8>) {
        let result = runtime().block_on(&mut self.result).expect("the run task");
        while let Ok(frame) = self.output.try_recv() {
            if let FromRun::Output {
                stream: Stream::Stdout,
                bytes,
            } = frame
            {
                self.stdout.extend(bytes);
            }
        }
        runtime().block_on(shared().settle());
        (result, self.stdout)
    }
}

#[test]
fn lines_typed_while_it_runs_reach_the_program_in_order() {
    let source = "name = input('name? ')\nprint(f'hello {name}', flush=True)\nagain = input('again? ')\nprint(f'bye {again}')\n";
    let mut run = LiveRun::start(source, "", InteractiveLimits::default());
    run.wait_for("name? ");
    run.send(ToRun::Line(b"Ada\n".to_vec()));
    run.wait_for("hello Ada\n");
    run.send(ToRun::Line(b"Bob\n".to_vec()));
    run.send(ToRun::EndOfInput);
    let (result, relayed) = run.finish();
    expect(&result, Status::Ok);
    assert_eq!(result.stdout, "name? hello Ada\nagain? bye Bob\n");
    assert_eq!(
        String::from_utf8_lossy(&relayed),
        result.stdout,
        "what was relayed is the result"
    );
}

#[test]
fn the_end_of_input_is_an_eof_after_the_stdin_given_first() {
    let source = "import sys\nprint(sys.stdin.read().split())\n";
    let run = LiveRun::start(source, "a\nb\n", InteractiveLimits::default());
    run.send(ToRun::Line(b"c\n".to_vec()));
    run.send(ToRun::EndOfInput);
    let (result, _) = run.finish();
    expect(&result, Status::Ok);
    assert_eq!(result.stdout, "['a', 'b', 'c']\n");
}

#[test]
fn nobody_left_to_type_closes_the_input() {
    let source = "import sys\nprint(repr(sys.stdin.read()))\n";
    let run = LiveRun::start(source, "x", InteractiveLimits::default());
    let (result, _) = run.hang_up().finish();
    expect(&result, Status::Ok);
    assert_eq!(result.stdout, "'x'\n");
}

/// Each limit ends a run on its own; the others are set far enough out that a loaded machine
/// cannot reach them first, so the time tells which limit it was.
#[test]
fn interactive_limits_end_a_run() {
    let far = Duration::from_secs(30);
    let time = |result: &RunResult| result.time_ms.unwrap_or_default();

    // Waiting for input nobody types: the idle limit.
    let idle = InteractiveLimits {
        cpu: far,
        wall: far,
        idle: Duration::from_secs(1),
    };
    let mut waiting = LiveRun::start("input('? ')\n", "", idle);
    waiting.wait_for("? ");
    let (result, _) = waiting.finish();
    expect(&result, Status::TimeLimitExceeded);
    assert!((1_000..5_000).contains(&time(&result)), "idle: {result:?}");

    // Talking every 200 ms but never ending: the wall limit.
    let wall = InteractiveLimits {
        cpu: far,
        wall: Duration::from_secs(3),
        idle: Duration::from_secs(10),
    };
    let chatty = "import time\nwhile True:\n    print('.', flush=True)\n    time.sleep(0.2)\n";
    let (result, _) = LiveRun::start(chatty, "", wall).finish();
    expect(&result, Status::TimeLimitExceeded);
    assert!((3_000..8_000).contains(&time(&result)), "wall: {result:?}");

    // Spinning, with output so it is never idle: the CPU limit, well before the others.
    let cpu = InteractiveLimits {
        cpu: Duration::from_millis(800),
        wall: far,
        idle: Duration::from_secs(10),
    };
    let spinning = "import time\nt = time.time()\nwhile True:\n    if time.time() - t > 0.1:\n        print('.', flush=True)\n        t = time.time()\n";
    let (result, _) = LiveRun::start(spinning, "", cpu).finish();
    expect(&result, Status::TimeLimitExceeded);
    // The container's CPU time counts from its start (the interpreter's start and the syntax
    // check included), so the program itself may have spun a little less than the limit.
    assert!((400..10_000).contains(&time(&result)), "cpu: {result:?}");
}
