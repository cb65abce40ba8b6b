//! One run over bollard: the thin adapter that feeds a container's streams, its deadline and
//! its end to [`codebox_sandbox::Run`] and does what it answers. The rules (clocks, kills,
//! retries, the output cap) are all in the core; this file only moves bytes and calls the
//! engine.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use codebox_live::frame::{FromRun, Stream, ToRun};
use codebox_sandbox::protocol::{self, Request, Session};
use codebox_sandbox::{Action, Clock, Failure, Input, InteractiveLimits, Mode, Run};
use codebox_submission::project::{check_project, ProjectFile};
use codebox_submission::Language;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::lifecycle::Input as ContainerInput;
use super::lifecycle::{self, Existence, RemoveOnDrop, Started};
use super::{Inner, SandboxError};

/// How long to wait for a killed container to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a container is asked to do: owned, so the run goes on if its caller stops waiting.
pub(super) struct Program {
    pub(super) language: Language,
    pub(super) mode: Mode,
    pub(super) files: Arc<[ProjectFile]>,
    /// A build's program, for [`Mode::Built`] (empty otherwise).
    pub(super) artifact: Arc<[u8]>,
    pub(super) stdin: Vec<u8>,
}

impl Program {
    /// A request in `mode` for a project and its stdin.
    pub(super) fn new(
        language: Language,
        mode: Mode,
        files: &[ProjectFile],
        stdin: &str,
    ) -> Program {
        Program {
            language,
            mode,
            files: files.into(),
            artifact: Arc::from([]),
            stdin: stdin.as_bytes().to_vec(),
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            language: self.language,
            mode: self.mode,
            files: &self.files,
            artifact: &self.artifact,
            stdin: &self.stdin,
        }
    }
}

/// A started container claimed for one run, and what its supervisor said so far.
struct Claimed {
    started: Started,
    session: Session,
    guard: RemoveOnDrop,
    /// From the warm pool.
    warm: bool,
}

/// How one container's attempt at a run ended.
enum Attempt {
    /// The run is over: its result or build is in it.
    Done(Box<Run>),
    /// A warm container failed before it took the program: try a fresh one.
    Retry(Failure),
}

/// A run's live channel (Contract 4): input lines in while it runs, output out as it comes.
#[derive(Debug)]
pub struct Live {
    /// Lines for the program's stdin, then the end of input. The program's stdin closes when
    /// this says so or is dropped (nobody can type any more).
    pub input: mpsc::Receiver<ToRun>,
    /// The program's output as it grows (up to the output cap).
    pub output: mpsc::UnboundedSender<FromRun>,
    /// Its time limits.
    pub limits: InteractiveLimits,
}

/// Writes the program (and the stdin given up front) to the container, then a live run's
/// lines as they come, telling `sent` after each; then closes the container's stdin.
async fn write_stdin(
    mut stdin: ContainerInput,
    payload: Vec<u8>,
    lines: Option<&mut mpsc::Receiver<ToRun>>,
    sent: mpsc::UnboundedSender<()>,
) {
    let written = async {
        stdin.write_all(&payload).await?;
        stdin.flush().await?;
        if let Some(lines) = lines {
            while let Some(ToRun::Line(line)) = lines.recv().await {
                stdin.write_all(&line).await?;
                stdin.flush().await?;
                let _ = sent.send(());
            }
            let _ = sent.send(());
        }
        stdin.shutdown().await
    }
    .await;
    if let Err(e) = written {
        debug!(error = %e, "stdin write ended early");
    }
}

/// Sends what the program wrote since the last call (`relayed`: bytes sent per stream).
fn relay(run: &Run, relayed: &mut [usize; 2], to: &mpsc::UnboundedSender<FromRun>) {
    let (stdout, stderr) = run.output();
    for (sent, (stream, bytes)) in relayed
        .iter_mut()
        .zip([(Stream::Stdout, stdout), (Stream::Stderr, stderr)])
    {
        if bytes.len() > *sent {
            for frame in FromRun::output(stream, &bytes[*sent..]) {
                // A closed channel is the live path failing: the run goes on.
                let _ = to.send(frame);
            }
            *sent = bytes.len();
        }
    }
}

fn now() -> std::time::Instant {
    std::time::Instant::now()
}

impl Inner {
    /// Runs a program on a warm container if there is one, else (or if the warm one turns
    /// out dead) on a fresh one; returns the finished run.
    pub(super) async fn run(
        self: &Arc<Self>,
        program: &Program,
        mut live: Option<Live>,
    ) -> Result<Run, SandboxError> {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SandboxError::ShutDown);
        }
        let limits = &self.config.limits;
        let language = program.language;
        check_project(language, &program.files)?;
        if program.stdin.len() > limits.max_stdin_bytes {
            return Err(SandboxError::StdinTooLarge(program.stdin.len()));
        }
        if let Some(warm) = self.take_warm(language) {
            tracing::Span::current().record("warm", true);
            let claimed = Claimed {
                guard: RemoveOnDrop::new(
                    self,
                    warm.started.id.clone(),
                    Existence::Created,
                    warm.uid,
                ),
                started: warm.started,
                session: warm.session,
                warm: true,
            };
            match self.drive(claimed, program, live.as_mut()).await? {
                Attempt::Done(run) => return Ok(*run),
                Attempt::Retry(why) => {
                    warn!(%language, reason = %why, "warm container failed; using a fresh one")
                }
            }
        }
        tracing::Span::current().record("warm", false);
        let (started, guard) = self.start(language).await?;
        let claimed = Claimed {
            started,
            session: Session::new(limits.output_bytes, protocol::new_token()),
            guard,
            warm: false,
        };
        match self.drive(claimed, program, live.as_mut()).await? {
            Attempt::Done(run) => Ok(*run),
            Attempt::Retry(why) => Err(why.into()),
        }
    }

    /// Sends the request to a started container and watches it to the end.
    async fn drive(
        self: &Arc<Self>,
        claimed: Claimed,
        program: &Program,
        live: Option<&mut Live>,
    ) -> Result<Attempt, SandboxError> {
        let Claimed {
            started:
                Started {
                    id,
                    mut output,
                    input,
                },
            mut session,
            mut guard,
            warm,
        } = claimed;
        tracing::Span::current().record("container", id.as_str());
        let docker = &self.docker;

        let payload = session.request(&program.request());
        let (clock, lines, relay_to) = match live {
            Some(live) => (
                Clock::Interactive(live.limits),
                Some(&mut live.input),
                Some(live.output.clone()),
            ),
            None => (Clock::Batch, None, None),
        };
        // Writing may block if the program never reads its stdin; it must not hold up the
        // clocks, and it ends with the run: it is polled beside the streams, never awaited.
        let (sent_tx, mut sent) = mpsc::unbounded_channel();
        let mut writer = Box::pin(write_stdin(input, payload, lines, sent_tx));
        let mut writing = true;
        let mut relayed = [0; 2];

        let mut run = Run::new(
            program.language,
            self.config.limits,
            clock,
            session,
            warm,
            now(),
        );
        // A CPU sample in flight: the engine's stats take up to a second (it answers at its
        // next collection), and the streams and the input must not wait for it.
        let mut sampling: Option<Pin<Box<dyn Future<Output = _> + Send + '_>>> = None;
        let mut action = Action::ReadStreams;
        loop {
            action = match action {
                Action::ReadStreams | Action::SampleCpu => {
                    if matches!(action, Action::SampleCpu) && sampling.is_none() {
                        sampling = Some(Box::pin(lifecycle::cpu_used(docker, &id)));
                    }
                    let deadline = tokio::time::Instant::from_std(run.deadline());
                    tokio::select! {
                        cpu = async {
                            match sampling.as_mut() {
                                Some(sample) => sample.await,
                                None => std::future::pending().await,
                            }
                        }, if sampling.is_some() => {
                            sampling = None;
                            match cpu {
                                Ok(cpu) => run.handle(Input::CpuUsed(cpu), now()),
                                // The wall and idle limits still hold; the next sample may work.
                                Err(e) => {
                                    debug!(error = %e, "reading the container's CPU time failed");
                                    Action::ReadStreams
                                }
                            }
                        }
                        frame = output.next() => match frame {
                            Some(Ok(LogOutput::StdOut { message })) => {
                                run.handle(Input::Stdout(&message), now())
                            }
                            Some(Ok(LogOutput::StdErr { message })) => {
                                run.handle(Input::Stderr(&message), now())
                            }
                            Some(Ok(_)) => Action::ReadStreams,
                            Some(Err(e)) => run.handle(Input::StreamFailed(e.to_string()), now()),
                            None => run.handle(Input::StreamsClosed, now()),
                        },
                        _ = tokio::time::sleep_until(deadline) => {
                            run.handle(Input::DeadlinePassed, now())
                        }
                        () = &mut writer, if writing => {
                            writing = false;
                            Action::ReadStreams
                        }
                        Some(()) = sent.recv() => run.handle(Input::InputSent, now()),
                    }
                }
                _ => break,
            };
            if let Some(to) = &relay_to {
                relay(&run, &mut relayed, to);
            }
        }
        if let Some(to) = &relay_to {
            relay(&run, &mut relayed, to);
        }
        // Done with the streams. Closing the attach connection matters after a kill: the
        // engine does not finish a container's exit while its attach copy is blocked on a
        // reader that stopped reading.
        drop(output);
        drop(writer);
        drop(sent);
        drop(sampling);

        loop {
            action = match action {
                Action::Done { exiting } => {
                    if exiting {
                        guard.existence = Existence::Exiting;
                    }
                    return Ok(Attempt::Done(Box::new(run)));
                }
                Action::Abandon { retry, reason } => {
                    lifecycle::kill(docker, &id).await;
                    return if retry {
                        Ok(Attempt::Retry(reason))
                    } else {
                        Err(reason.into())
                    };
                }
                Action::AwaitExit { until } => {
                    // The output can end before the container does (a program may close
                    // stdout and stderr and carry on): the clock still runs until it exits.
                    let until = tokio::time::Instant::from_std(until);
                    match tokio::time::timeout_at(until, lifecycle::wait_exit(docker, &id)).await {
                        Ok(waited) => {
                            let at = now();
                            waited?;
                            self.exited(&mut run, &id, at).await?
                        }
                        Err(_) => run.handle(Input::DeadlinePassed, now()),
                    }
                }
                // The streams are gone, so a run that still wants them is killed.
                Action::Kill | Action::ReadStreams | Action::SampleCpu => {
                    lifecycle::kill(docker, &id).await;
                    tokio::time::timeout(STOP_TIMEOUT, lifecycle::wait_exit(docker, &id))
                        .await
                        .map_err(|_| {
                            SandboxError::Timeout("waiting for a killed container to stop")
                        })??;
                    self.exited(&mut run, &id, now()).await?
                }
            };
        }
    }

    /// Tells the run the container exited (`at`), with the engine's exit code and OOM flag.
    async fn exited(
        &self,
        run: &mut Run,
        id: &str,
        at: std::time::Instant,
    ) -> Result<Action, SandboxError> {
        let (exit_code, oom_killed) = lifecycle::exit_state(&self.docker, id).await?;
        debug!(exit_code, oom_killed, "container ended");
        Ok(run.handle(
            Input::Exited {
                exit_code,
                oom_killed,
            },
            at,
        ))
    }
}
