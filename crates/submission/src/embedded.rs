//! The embedded queue, store and rate counters: one SQLite file, shared by the local exec API
//! and fleet processes, so `make dev` needs no AWS and no emulator.
//!
//! It keeps the semantics of the AWS adapters (visibility timeouts, receive counts, a
//! dead-letter queue after `max_receives`, conditional status writes, rate counters that hold
//! across processes). Every state change runs in a `BEGIN IMMEDIATE` transaction, which SQLite
//! serialises across processes, so two workers never receive the same visible message, never
//! both win a conditional write, and two API processes never both take a counter's last hit.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::ServiceError;
use crate::job::Job;
use crate::queue::{Delivery, JobQueue, QueueError};
use crate::store::{
    payload_part_count, payload_parts, PayloadStore, RateCounter, RateHit, StoreError,
    SubmissionStore, Transition, Unreadable,
};
use crate::{RunResult, Status, Submission};

/// How often an empty long poll looks again (a job waits for a worker at most this long).
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// The same for dead letters, which nobody waits for.
const DEAD_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a dead-letter message stays hidden after it is received.
const DEAD_VISIBILITY: Duration = Duration::from_secs(30);
/// How long a statement waits for another process's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT UNIQUE,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (dead, visible_at_ms, seq);
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_counters (
    key TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    ends_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_counters_ended ON rate_counters (ends_at);
CREATE TABLE IF NOT EXISTS payloads (
    id TEXT NOT NULL,
    part INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (id, part)
);
";

/// The SQLite-backed queue, store and rate counters.
#[derive(Clone)]
pub struct Embedded {
    conn: Arc<Mutex<Connection>>,
    max_receives: u32,
}

impl Embedded {
    /// Opens (creating if needed) the database at `path`. Messages move to the dead-letter
    /// queue when received more than `max_receives` times.
    pub fn open(path: &Path, max_receives: u32) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Embedded {
            conn: Arc::new(Mutex::new(conn)),
            max_receives,
        })
    }

    /// Runs `f` on the connection off the async runtime.
    async fn with_conn<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static + From<ServiceError>,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| ServiceError::Poisoned)?;
            f(&mut guard)
        })
        .await
        .map_err(ServiceError::from)?
    }

    /// One attempt at taking ready messages (live or dead).
    async fn take(
        &self,
        max: usize,
        visibility: Duration,
        dead: bool,
    ) -> Result<Vec<Delivery>, QueueError> {
        let max_receives = self.max_receives;
        self.with_conn(move |conn| {
            let now = now_ms();
            // A look without the write lock first: idle pollers (every worker each
            // POLL_INTERVAL, the dead-letter reaper each DEAD_POLL_INTERVAL) then take it only
            // when there is something to take.
            let ready: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM jobs WHERE dead = ?1 AND visible_at_ms <= ?2)",
                )
                .and_then(|mut look| look.query_row(params![dead, now], |r| r.get(0)))
                ?;
            if !ready {
                return Ok(Vec::new());
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut taken = Vec::new();
            {
                let mut select = tx
                    .prepare_cached(
                        "SELECT seq, body, receive_count FROM jobs
                         WHERE dead = ?1 AND visible_at_ms <= ?2 ORDER BY seq LIMIT ?3",
                    )
                    ?;
                let rows = select
                    .query_map(params![dead, now, (max * 2) as i64], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?))
                    })
                    ?
                    .collect::<Result<Vec<_>, _>>()
                    ?;
                for (seq, body, count) in rows {
                    if taken.len() == max {
                        break;
                    }
                    if !dead && count >= max_receives {
                        // Received too often without a delete: move it to the dead-letter queue.
                        tx.execute("UPDATE jobs SET dead = 1, receipt = NULL, visible_at_ms = ?2 WHERE seq = ?1", params![seq, now])
                            ?;
                        continue;
                    }
                    let receipt = format!("{seq}-{}", uuid::Uuid::new_v4().simple());
                    let hidden = if dead { DEAD_VISIBILITY } else { visibility };
                    tx.execute(
                        "UPDATE jobs SET receive_count = receive_count + 1, receipt = ?2, visible_at_ms = ?3 WHERE seq = ?1",
                        params![seq, receipt, now + hidden.as_millis() as i64],
                    )
                    ?;
                    taken.push(Delivery { job: Job::from_message(&body), body, receipt, receive_count: count + 1 });
                }
            }
            tx.commit()?;
            Ok(taken)
        })
        .await
    }

    async fn poll(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
        dead: bool,
    ) -> Result<Vec<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let taken = self.take(max.max(1), visibility, dead).await?;
            if !taken.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(taken);
            }
            let interval = if dead {
                DEAD_POLL_INTERVAL
            } else {
                POLL_INTERVAL
            };
            tokio::time::sleep(interval).await;
        }
    }

    async fn delete_where(&self, receipt: &str, dead: bool) -> Result<(), QueueError> {
        let receipt = receipt.to_owned();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "DELETE FROM jobs WHERE receipt = ?1 AND dead = ?2",
                params![receipt, dead],
            )?;
            if n == 0 {
                Err(QueueError::UnknownReceipt)
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Reads, checks and rewrites one record in a single immediate transaction.
    async fn transition<F>(
        &self,
        id: &str,
        allowed: fn(Status) -> bool,
        change: F,
    ) -> Result<Transition, StoreError>
    where
        F: FnOnce(&mut Submission) + Send + 'static,
    {
        let id = id.to_owned();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut record) = read(&tx, &id, Utc::now())? else {
                return Ok(Transition::NotFound);
            };
            if !allowed(record.status) {
                return Ok(Transition::Refused(record.status));
            }
            change(&mut record);
            let json = serde_json::to_string(&record).map_err(ServiceError::from)?;
            tx.execute(
                "UPDATE submissions SET status = ?2, record = ?3 WHERE id = ?1",
                params![id, record.status.as_str(), json],
            )?;
            tx.commit()?;
            Ok(Transition::Applied)
        })
        .await
    }
}

#[async_trait]
impl JobQueue for Embedded {
    async fn send(&self, job: &Job) -> Result<(), QueueError> {
        let body = job.to_message()?;
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO jobs (body, visible_at_ms) VALUES (?1, ?2)",
                params![body, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.poll(max, wait, visibility, false).await
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete_where(receipt, false).await
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        let receipt = receipt.to_owned();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE jobs SET visible_at_ms = ?2 WHERE receipt = ?1 AND dead = 0",
                params![receipt, now_ms() + visibility.as_millis() as i64],
            )?;
            if n == 0 {
                Err(QueueError::UnknownReceipt)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn receive_dead(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.poll(max, wait, DEAD_VISIBILITY, true).await
    }

    async fn delete_dead(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete_where(receipt, true).await
    }
}

#[async_trait]
impl SubmissionStore for Embedded {
    async fn create(&self, record: &Submission) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(ServiceError::from)?;
        let (id, status, expires_at) = (record.id.clone(), record.status, record.expires_at);
        self.with_conn(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO submissions (id, status, expires_at, record) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO NOTHING",
                params![id, status.as_str(), expires_at, json],
            )?;
            if inserted == 0 {
                Err(StoreError::AlreadyExists(id))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn get(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Submission>, StoreError> {
        let id = id.to_owned();
        self.with_conn(move |conn| read(conn, &id, now)).await
    }

    async fn mark_running(&self, id: &str, at: DateTime<Utc>) -> Result<Transition, StoreError> {
        self.transition(
            id,
            |s| s == Status::Queued,
            move |r| {
                r.status = Status::Running;
                r.started_at = Some(at);
            },
        )
        .await
    }

    async fn finish(&self, id: &str, result: &RunResult) -> Result<Transition, StoreError> {
        let result = result.clone();
        self.transition(id, |s| !s.is_terminal(), move |r| r.finish(&result))
            .await
    }
}

#[async_trait]
impl PayloadStore for Embedded {
    async fn put_payload(
        &self,
        id: &str,
        payload: &[u8],
        expires_at: i64,
    ) -> Result<u32, StoreError> {
        let (id, payload) = (id.to_owned(), payload.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            for (part, bytes) in payload_parts(&payload) {
                tx.execute(
                    "INSERT OR REPLACE INTO payloads (id, part, bytes, expires_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    params![id, part, bytes, expires_at],
                )?;
            }
            tx.commit()?;
            Ok(payload_part_count(&payload))
        })
        .await
    }

    async fn payload(&self, id: &str, parts: u32) -> Result<Vec<u8>, StoreError> {
        let id = id.to_owned();
        self.with_conn(move |conn| {
            let mut payload = Vec::new();
            for part in 0..parts {
                let bytes: Option<Vec<u8>> = conn
                    .query_row(
                        "SELECT bytes FROM payloads WHERE id = ?1 AND part = ?2",
                        params![id, part],
                        |row| row.get(0),
                    )
                    .optional()?;
                let bytes = bytes.ok_or_else(|| StoreError::MissingPayload {
                    id: id.clone(),
                    part,
                })?;
                payload.extend_from_slice(&bytes);
            }
            Ok(payload)
        })
        .await
    }
}

#[async_trait]
impl RateCounter for Embedded {
    async fn count(&self, hit: &RateHit) -> Result<bool, StoreError> {
        let hit = hit.clone();
        self.with_conn(move |conn| count_hit(conn, &hit)).await
    }
}

/// Drops the counters of windows that have ended, then counts `hit`, in one immediate
/// transaction. The upsert inserts a first hit (unless the limit is zero) or adds one to a
/// counter below the limit; a refused hit changes no row.
fn count_hit(conn: &mut Connection, hit: &RateHit) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached("DELETE FROM rate_counters WHERE ends_at <= ?1")
        .and_then(|mut prune| prune.execute(params![unix_s(hit.now)]))?;
    let counted = tx
        .prepare_cached(
            "INSERT INTO rate_counters (key, hits, ends_at) SELECT ?1, ?4, ?2 WHERE ?4 <= ?3
             ON CONFLICT (key) DO UPDATE SET hits = hits + ?4 WHERE hits + ?4 <= ?3",
        )
        .and_then(|mut upsert| {
            upsert.execute(params![
                hit.key,
                unix_s(hit.window.ends_at),
                hit.limit,
                hit.weight
            ])
        })?;
    tx.commit()?;
    Ok(counted == 1)
}

/// Unix seconds as SQLite stores integers.
fn unix_s(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn read(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<Option<Submission>, StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT record, expires_at FROM submissions WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((json, expires_at)) = row else {
        return Ok(None);
    };
    let mut record: Submission = serde_path_to_error::deserialize(
        &mut serde_json::Deserializer::from_str(&json),
    )
    .map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        source: Unreadable::from(e),
    })?;
    record.expires_at = expires_at;
    Ok((!record.is_expired(now)).then_some(record))
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Unavailable(error.into())
    }
}

impl From<rusqlite::Error> for QueueError {
    fn from(error: rusqlite::Error) -> Self {
        QueueError::Unavailable(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codebox_access::RateLimit;

    const LIMIT: RateLimit = RateLimit {
        limit: 2,
        window_s: 60,
    };

    fn counters(db: &Embedded) -> Vec<(String, i64, i64)> {
        let conn = db.conn.lock().unwrap();
        let mut rows = conn
            .prepare("SELECT key, hits, ends_at FROM rate_counters ORDER BY key")
            .unwrap();
        rows.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn counts_up_to_the_limit_and_prunes_ended_windows() {
        let dir = tempfile::tempdir().unwrap();
        let db = Embedded::open(&dir.path().join("rates.db"), 3).unwrap();
        let first = RateHit::new("runs", "203.0.113.9", LIMIT, 130);
        assert!(db.count(&first).await.unwrap());
        assert!(db.count(&first).await.unwrap());
        assert!(!db.count(&first).await.unwrap(), "over the limit");
        let other = RateHit::new("runs", "198.51.100.1", LIMIT, 179);
        assert!(db.count(&other).await.unwrap(), "clients are counted apart");
        assert_eq!(
            counters(&db),
            [
                ("runs:198.51.100.1:2".to_owned(), 1, 180),
                ("runs:203.0.113.9:2".to_owned(), 2, 180),
            ],
            "a refused hit is not counted"
        );

        // The next window: a fresh counter, and the ended window's counters are gone.
        let next = RateHit::new("runs", "203.0.113.9", LIMIT, 180);
        assert!(db.count(&next).await.unwrap());
        assert_eq!(counters(&db), [("runs:203.0.113.9:3".to_owned(), 1, 240)]);
    }

    #[tokio::test]
    async fn a_zero_limit_refuses_everything() {
        let dir = tempfile::tempdir().unwrap();
        let db = Embedded::open(&dir.path().join("rates.db"), 3).unwrap();
        let closed = RateLimit {
            limit: 0,
            window_s: 60,
        };
        assert!(!db
            .count(&RateHit::new("runs", "a", closed, 0))
            .await
            .unwrap());
        assert!(counters(&db).is_empty());
    }
}
