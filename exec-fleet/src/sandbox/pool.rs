//! The warm pool: per language, containers started ahead of time whose supervisor said
//! READY and waits for its program on stdin. A warm container is still single-use: it takes
//! one program and is removed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use codebox_sandbox::protocol::{self, Session};
use codebox_sandbox::Failure;
use codebox_submission::Language;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::lifecycle::Started;
use super::{lock, Inner, SandboxError};

/// How long a fresh or warm container may take to say READY.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound on one refill back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first refill back-off.
const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// One language's warm containers.
#[derive(Default)]
pub(super) struct Pool {
    pub(super) warm: Mutex<VecDeque<Warm>>,
    /// Wakes the filler when a container was taken.
    pub(super) wake: Notify,
}

/// A started container whose supervisor said READY and waits for its program.
pub(super) struct Warm {
    pub(super) started: Started,
    pub(super) session: Session,
    /// The user id its processes run as.
    pub(super) uid: u32,
}

impl Inner {
    /// Starts a container and waits for its READY: a warm container.
    async fn start_warm(self: &Arc<Self>, language: Language) -> Result<Warm, SandboxError> {
        let (mut started, mut guard) = self.start(language).await?;
        let mut session = Session::new(self.config.limits.output_bytes, protocol::new_token());
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while !session.is_ready() {
                match started.output.next().await {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        session.on_stdout(&message).map_err(Failure::from)?;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(SandboxError::Docker(e)),
                    None => return Err(SandboxError::NotReady),
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| SandboxError::Timeout("waiting for a warm container's READY"))?;
        ready?;
        // The pool owns it now.
        let uid = guard.disarm();
        Ok(Warm {
            started,
            session,
            uid,
        })
    }

    /// Keeps one language's pool full until shutdown.
    pub(super) async fn fill(self: Arc<Self>, language: Language) {
        let Some(pool) = self.pools.get(&language) else {
            return;
        };
        let mut backoff = MIN_BACKOFF;
        loop {
            while !self.closing.load(Ordering::SeqCst)
                && lock(&pool.warm).len() < self.config.pool_size
            {
                match self.start_warm(language).await {
                    Ok(warm) => {
                        backoff = MIN_BACKOFF;
                        debug!(%language, container = %warm.started.id, "warm container ready");
                        if self.closing.load(Ordering::SeqCst) {
                            self.remove_later(warm.started.id, warm.uid);
                        } else {
                            lock(&pool.warm).push_back(warm);
                        }
                    }
                    Err(e) => {
                        warn!(%language, error = %e, backoff_ms = backoff.as_millis() as u64, "could not start a warm container");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            pool.wake.notified().await;
        }
    }

    /// A warm container that is still alive, if the pool has one.
    pub(super) fn take_warm(self: &Arc<Self>, language: Language) -> Option<Warm> {
        let pool = self.pools.get(&language)?;
        loop {
            let mut warm = lock(&pool.warm).pop_front()?;
            pool.wake.notify_one();
            // A warm container says nothing after READY; output or an end means it is broken.
            match warm.started.output.next().now_or_never() {
                None => return Some(warm),
                Some(_) => {
                    warn!(%language, container = %warm.started.id, "warm container died while waiting");
                    self.remove_later(warm.started.id, warm.uid);
                }
            }
        }
    }

    /// Removes every warm container (at shutdown).
    pub(super) fn drain_pools(self: &Arc<Self>) {
        for pool in self.pools.values() {
            let drained: Vec<Warm> = lock(&pool.warm).drain(..).collect();
            for warm in drained {
                self.remove_later(warm.started.id, warm.uid);
            }
        }
    }
}
