//! The worker loop: queue -> record `running` -> sandbox -> terminal result -> delete.
//!
//! Delivery is at-least-once (SQS), so every step is safe to repeat:
//! - a job whose record is already terminal is deleted without running;
//! - a job whose program waits in the payload store (too large for its message) is read back
//!   first; if the store cannot be reached the job is left to come back, and if the payload is
//!   gone or unreadable the job ends `internal_error`;
//! - the terminal write is conditional (only over `queued`/`running`), so a redelivered job
//!   never replaces a result another worker stored;
//! - the message is deleted only after the result is stored: if the store fails, the job comes
//!   back after its visibility timeout and runs again;
//! - while a run is in flight its visibility is extended, so a long compile+run is not handed
//!   to a second worker;
//! - jobs that exhaust their receives land in the dead-letter queue, where [`reap_dead_letters`]
//!   records them as `internal_error` instead of leaving them `queued` forever.
//!
//! On shutdown (SIGTERM) the loop stops taking jobs and finishes the ones it holds.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use codebox_submission::{
    Delivery, Job, JobQueue, Payload, PayloadStore, Program, RunResult, Status, StoreError,
    SubmissionStore, Transition,
};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::judging;
use crate::live::{self, EdgeUrl};
use crate::sandbox::Sandbox;

/// Runs one job to its result. [`SandboxRunner`] is the implementation; the trait is the seam
/// the worker loop is written against.
#[async_trait]
pub trait Runner: Send + Sync + 'static {
    /// Runs `job`'s `program`, which may borrow `spare` job slots while it runs; failures of
    /// the runner itself come back as `internal_error` results.
    async fn run(&self, job: &Job, program: &Program, spare: &SpareSlots) -> RunResult;
}

/// The worker's job slots that no job holds: a job with tests borrows some to run its tests
/// side by side, so a worker never runs more containers than it has slots.
#[derive(Clone)]
pub struct SpareSlots(Arc<Semaphore>);

impl SpareSlots {
    /// Up to `at_most` slots free right now, held until the returned permits drop.
    pub fn borrow(&self, at_most: usize) -> Vec<OwnedSemaphorePermit> {
        std::iter::from_fn(|| self.0.clone().try_acquire_owned().ok())
            .take(at_most)
            .collect()
    }
}

/// The fleet's runner: its sandboxes, and the edge that rooms' runs stream into.
#[derive(Clone)]
pub struct SandboxRunner {
    /// Where programs run.
    pub sandbox: Sandbox,
    /// The edge, for live runs (without it every run is a batch run).
    pub edge: Option<EdgeUrl>,
    /// The most tests of one submission that run at once (its share of the worker's slots).
    pub tests_at_once: usize,
}

#[async_trait]
impl Runner for SandboxRunner {
    async fn run(&self, job: &Job, program: &Program, spare: &SpareSlots) -> RunResult {
        if program.tests.is_empty() {
            live::run(&self.sandbox, self.edge.as_ref(), job, program).await
        } else {
            // The job's own slot runs one test; slots nobody holds run more, up to its share.
            let borrowed = spare.borrow(self.tests_at_once.saturating_sub(1));
            let at_once = 1 + borrowed.len();
            judging::run_tests(&self.sandbox, job.language, program, at_once).await
        }
    }
}

/// Where the worker loop reads and writes: the queue, the records, and the programs stored
/// beside their jobs.
#[derive(Clone)]
pub struct Stores {
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The submission records.
    pub records: Arc<dyn SubmissionStore>,
    /// Programs too large for their message.
    pub payloads: Arc<dyn PayloadStore>,
}

/// How a worker polls and holds jobs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    /// Longest wait of one receive (long polling).
    pub poll_wait: Duration,
    /// How long a received job stays hidden from other workers.
    pub visibility: Duration,
    /// How often a job in flight has its visibility extended.
    pub extend_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 4,
            poll_wait: Duration::from_secs(10),
            // Covers a compile and a run at their limits (`Limits`) with margin, even if one
            // extension is missed.
            visibility: Duration::from_secs(45),
            extend_every: Duration::from_secs(15),
        }
    }
}

/// Takes jobs until `shutdown` turns true, then finishes the ones in flight.
pub async fn run_worker(
    stores: Stores,
    runner: Arc<dyn Runner>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let queue = stores.queue.clone();
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let mut in_flight = JoinSet::new();
    while !*shutdown.borrow() {
        // Wait for a free slot (or shutdown) before asking for work we could not start.
        let free = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            changed = shutdown.changed() => if changed.is_err() { break } else { continue },
        };
        let want = 1 + slots.available_permits().min(9);
        let deliveries = tokio::select! {
            received = queue.receive(want, config.poll_wait, config.visibility) => received,
            changed = shutdown.changed() => if changed.is_err() { break } else { continue },
        };
        let deliveries = match deliveries {
            Ok(deliveries) => deliveries,
            Err(error) => {
                warn!(%error, "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut first = Some(free);
        for delivery in deliveries {
            let permit = match first.take() {
                Some(permit) => permit,
                None => match slots.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    // Never hold more than we can run: let it come back to someone else.
                    Err(_) => break,
                },
            };
            let (stores, runner, config) = (stores.clone(), runner.clone(), config.clone());
            let spare = SpareSlots(slots.clone());
            in_flight.spawn(async move {
                handle(&stores, &*runner, &config, &spare, delivery).await;
                drop(permit);
            });
        }
        while in_flight.try_join_next().is_some() {}
    }
    info!(
        in_flight = in_flight.len(),
        "stopping: finishing jobs in flight"
    );
    while in_flight.join_next().await.is_some() {}
    info!("worker stopped");
}

/// The program `job` runs, read from the payload store if it waits there.
async fn program_of<'a>(
    payloads: &dyn PayloadStore,
    job: &'a Job,
) -> Result<Cow<'a, Program>, ProgramError> {
    match &job.payload {
        Payload::Inline(program) => Ok(Cow::Borrowed(program)),
        Payload::Stored { parts } => {
            let bytes = payloads.payload(&job.id, *parts).await?;
            Program::from_payload(job.language, &bytes)
                .map(Cow::Owned)
                .map_err(|e| ProgramError::Unreadable(e.to_string()))
        }
    }
}

/// Why a job's program could not be had.
#[derive(Debug, thiserror::Error)]
enum ProgramError {
    /// The payload store failed (the job may succeed later) or the payload is gone.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored payload is not a program.
    #[error("the stored program is unreadable: {0}")]
    Unreadable(String),
}

/// Runs one delivery to its end.
async fn handle(
    stores: &Stores,
    runner: &dyn Runner,
    config: &WorkerConfig,
    spare: &SpareSlots,
    delivery: Delivery,
) {
    let (queue, store) = (&*stores.queue, &*stores.records);
    let job = match &delivery.job {
        Ok(job) => job,
        Err(error) => {
            // It can never succeed, and it names no record to fail.
            error!(%error, body_bytes = delivery.body.len(), "dropping a malformed job message");
            delete(queue, &delivery.receipt, "malformed").await;
            return;
        }
    };
    let submission = job.id.as_str();
    match store.mark_running(submission, Utc::now()).await {
        Ok(Transition::Applied) => {}
        // A redelivery after a worker died or stalled: still not terminal, so run it again.
        Ok(Transition::Refused(Status::Running)) => {
            info!(
                submission,
                receive_count = delivery.receive_count,
                "re-running a redelivered job"
            );
        }
        Ok(Transition::Refused(status)) => {
            info!(
                submission,
                status = status.as_str(),
                "already finished; dropping the redelivery"
            );
            delete(queue, &delivery.receipt, submission).await;
            return;
        }
        Ok(Transition::NotFound) => {
            warn!(submission, "no live record (expired?); dropping the job");
            delete(queue, &delivery.receipt, submission).await;
            return;
        }
        Err(error) => {
            // Leave the message: it comes back after its visibility timeout.
            warn!(submission, %error, "store unavailable; the job will be retried");
            return;
        }
    }

    let program = match program_of(&*stores.payloads, job).await {
        Ok(program) => Some(program),
        Err(ProgramError::Store(StoreError::Unavailable(error))) => {
            warn!(submission, %error, "payload store unavailable; the job will be retried");
            return;
        }
        Err(error) => {
            error!(submission, %error, "the job's program cannot be read");
            None
        }
    };
    let result = match &program {
        None => RunResult::internal_error(
            "CodeBox lost this submission's program before it ran",
            Utc::now(),
        ),
        Some(program) => {
            let keep_hidden = async {
                let mut every = tokio::time::interval(config.extend_every);
                every.tick().await;
                loop {
                    every.tick().await;
                    if let Err(error) = queue.extend(&delivery.receipt, config.visibility).await {
                        warn!(submission, %error, "could not extend visibility");
                    }
                }
            };
            tokio::select! {
                result = runner.run(job, program, spare) => result,
                _ = keep_hidden => unreachable!("the extender never returns"),
            }
        }
    };

    match store.finish(submission, &result).await {
        Ok(Transition::Applied) => {
            info!(
                submission,
                status = result.status.as_str(),
                time_ms = result.time_ms,
                "finished"
            );
            delete(queue, &delivery.receipt, submission).await;
        }
        Ok(Transition::Refused(status)) => {
            info!(
                submission,
                kept = status.as_str(),
                "another worker stored the result first"
            );
            delete(queue, &delivery.receipt, submission).await;
        }
        Ok(Transition::NotFound) => {
            warn!(submission, "record vanished before its result was stored");
            delete(queue, &delivery.receipt, submission).await;
        }
        Err(error) => {
            warn!(submission, %error, "storing the result failed; the job will be retried")
        }
    }
}

async fn delete(queue: &dyn JobQueue, receipt: &str, submission: &str) {
    if let Err(error) = queue.delete(receipt).await {
        warn!(submission, %error, "could not delete the message; it may be delivered again");
    }
}

/// Records jobs that reached the dead-letter queue as `internal_error`, until `shutdown`.
pub async fn reap_dead_letters(
    queue: Arc<dyn JobQueue>,
    store: Arc<dyn SubmissionStore>,
    poll_wait: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let dead = tokio::select! {
            dead = queue.receive_dead(10, poll_wait) => dead,
            changed = shutdown.changed() => if changed.is_err() { break } else { continue },
        };
        let dead = match dead {
            Ok(dead) => dead,
            Err(error) => {
                warn!(%error, "dead-letter receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for delivery in dead {
            if let Ok(job) = &delivery.job {
                let message = "CodeBox could not run this submission: every worker that took it \
                               stopped before storing a result, and it was given up (dead-letter queue)";
                match store
                    .finish(&job.id, &RunResult::internal_error(message, Utc::now()))
                    .await
                {
                    Ok(transition) => {
                        info!(submission = %job.id, ?transition, "dead-lettered job recorded")
                    }
                    Err(error) => {
                        warn!(submission = %job.id, %error, "could not record a dead-lettered job");
                        continue; // keep it for the next pass
                    }
                }
            }
            if let Err(error) = queue.delete_dead(&delivery.receipt).await {
                warn!(%error, "could not delete a dead letter");
            }
        }
    }
}
