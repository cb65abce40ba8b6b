//! How a room's document is made durable: group commits into an update log, compacted into
//! snapshots.
//!
//! The room never waits on storage; it *plans* writes as [`StoreOp`]s and the runtime runs
//! them, in order. The layout a runtime keeps:
//!
//! - the **snapshot**: the whole document as one Yjs v1 update, split into parts of at most
//!   [`CHUNK_BYTES`] (Durable Object SQLite rows must stay under 2 MB);
//! - the **log**: every commit since the snapshot, each one Yjs v1 update split the same way.
//!
//! **Group commit.** Storage is billed per row written, and a keystroke is one update: writing
//! each as it comes costs a row per keystroke. So accepted updates are relayed at once and
//! wait in memory ([`Pending`]) for at most [`CommitPolicy::window_ms`]; then they are merged
//! into one update and written as one log entry. The runtime learns when to come back from
//! `Effects::wake_at` (an alarm) and also commits on any frame that finds the window elapsed,
//! when the pending bytes pass [`CommitPolicy::max_pending_bytes`], and when the last socket
//! leaves. The durability promise that follows: a crash loses at most the window's updates on
//! the server, and every client still connected has them and sends them again in its sync
//! step when it reconnects (y-protocols SyncStep1/SyncStep2); so with anyone connected no
//! edit is lost, and with everyone gone at most one window is.
//!
//! Loading applies the snapshot, then the log in order. Compaction replaces both with a new
//! snapshot once the log holds as many bytes as the snapshot, or once it holds enough updates:
//! [`Compaction::max_log_entries`], raised for large documents so that rewriting the snapshot
//! costs at most [`Compaction::snapshot_bytes_per_entry`] per logged update. Writes stay
//! within a small multiple of the update volume, and the row count stays bounded (at most
//! 16,384 log rows for the largest, 32 MiB, document) however long a room lives.

/// Largest part of a stored blob: well under the 2 MB SQLite row limit of Durable Objects.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// One write the runtime must make durable before it sends anything of the same step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Append this Yjs v1 update to the log.
    Append(Vec<u8>),
    /// Replace the snapshot and the whole log with this one snapshot (a Yjs v1 update).
    Compact(Vec<u8>),
}

impl StoreOp {
    /// The bytes it writes.
    pub fn bytes(&self) -> usize {
        match self {
            StoreOp::Append(update) => update.len(),
            StoreOp::Compact(snapshot) => snapshot.len(),
        }
    }
}

/// How long accepted updates may wait in memory before they are written, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPolicy {
    /// The commit window: the most an accepted update waits before it is written.
    pub window_ms: u64,
    /// Pending bytes that are written at once, without waiting for the window.
    pub max_pending_bytes: usize,
}

impl CommitPolicy {
    /// Every step writes what it accepted (each step's updates are one log entry).
    pub const IMMEDIATE: CommitPolicy = CommitPolicy {
        window_ms: 0,
        max_pending_bytes: 0,
    };
}

impl Default for CommitPolicy {
    fn default() -> Self {
        CommitPolicy {
            window_ms: 1000,
            max_pending_bytes: 256 * 1024,
        }
    }
}

/// Accepted updates not yet written, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    updates: Vec<Vec<u8>>,
    bytes: usize,
    /// When the oldest pending update was accepted.
    since_ms: Option<u64>,
}

impl Pending {
    /// Adds an accepted update at `now_ms`.
    pub(crate) fn push(&mut self, update: Vec<u8>, now_ms: u64) {
        self.bytes += update.len();
        self.updates.push(update);
        self.since_ms.get_or_insert(now_ms);
    }

    /// When the pending updates must be written, if there are any.
    pub(crate) fn deadline(&self, policy: &CommitPolicy) -> Option<u64> {
        self.since_ms
            .map(|since| since.saturating_add(policy.window_ms))
    }

    /// Whether they must be written at `now_ms`.
    pub(crate) fn is_due(&self, policy: &CommitPolicy, now_ms: u64) -> bool {
        !self.updates.is_empty()
            && (self.bytes >= policy.max_pending_bytes
                || self.deadline(policy).is_some_and(|at| at <= now_ms))
    }

    /// Takes the pending updates as one: a single update as it is, several merged (or, should
    /// yrs refuse to merge them, each as it is).
    pub(crate) fn take(&mut self) -> Vec<Vec<u8>> {
        self.bytes = 0;
        self.since_ms = None;
        let updates = std::mem::take(&mut self.updates);
        if updates.len() < 2 {
            return updates;
        }
        match yrs::merge_updates_v1(&updates) {
            Ok(merged) => vec![merged],
            Err(_) => updates,
        }
    }

    /// Forgets the pending updates (a compaction wrote them into the snapshot).
    pub(crate) fn clear(&mut self) {
        self.updates.clear();
        self.bytes = 0;
        self.since_ms = None;
    }
}

/// When the log is folded into a new snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Compact once the log holds this many updates.
    pub max_log_entries: usize,
    /// Never compact for bytes alone below this log size.
    pub min_log_bytes: usize,
    /// For large snapshots, wait for `snapshot_bytes / snapshot_bytes_per_entry` updates, so a
    /// rewrite of the snapshot is paid for by that many updates.
    pub snapshot_bytes_per_entry: usize,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            max_log_entries: 512,
            min_log_bytes: 256 * 1024,
            snapshot_bytes_per_entry: 2048,
        }
    }
}

/// What the room knows of its stored form, to decide on compaction and the size limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredSize {
    /// Bytes of the current snapshot.
    pub snapshot_bytes: usize,
    /// Updates in the log.
    pub log_entries: usize,
    /// Bytes of the updates in the log.
    pub log_bytes: usize,
}

impl StoredSize {
    /// An upper bound on the encoded document size: the snapshot plus every logged update.
    pub fn upper_bound(&self) -> usize {
        self.snapshot_bytes + self.log_bytes
    }

    /// Whether the log should now be folded into a snapshot.
    pub fn should_compact(&self, policy: &Compaction) -> bool {
        let max_entries = policy
            .max_log_entries
            .max(self.snapshot_bytes / policy.snapshot_bytes_per_entry);
        self.log_entries >= max_entries
            || self.log_bytes >= self.snapshot_bytes.max(policy.min_log_bytes)
    }
}

/// Splits a blob into parts of at most [`CHUNK_BYTES`]; an empty blob is one empty part.
pub fn chunks(blob: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let first = blob.is_empty().then_some(empty);
    first.into_iter().chain(blob.chunks(CHUNK_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_blob_in_order() {
        let blob: Vec<u8> = (0..(CHUNK_BYTES * 2 + 5)).map(|i| i as u8).collect();
        let parts: Vec<_> = chunks(&blob).collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() <= CHUNK_BYTES));
        assert_eq!(parts.concat(), blob);
        assert_eq!(chunks(&[]).count(), 1);
    }

    #[test]
    fn compacts_on_entries_or_bytes() {
        let policy = Compaction {
            max_log_entries: 10,
            min_log_bytes: 100,
            snapshot_bytes_per_entry: 1000,
        };
        let size = |snapshot_bytes, log_entries, log_bytes| StoredSize {
            snapshot_bytes,
            log_entries,
            log_bytes,
        };
        assert!(!size(1000, 9, 999).should_compact(&policy));
        assert!(size(1000, 10, 5).should_compact(&policy));
        assert!(size(1000, 2, 1000).should_compact(&policy));
        assert!(
            !size(0, 2, 99).should_compact(&policy),
            "tiny logs wait for min_log_bytes"
        );
        assert!(size(0, 2, 100).should_compact(&policy));
    }

    #[test]
    fn large_snapshots_wait_for_more_updates() {
        let policy = Compaction {
            max_log_entries: 10,
            min_log_bytes: 100,
            snapshot_bytes_per_entry: 50,
        };
        let size = |log_entries| StoredSize {
            snapshot_bytes: 5000,
            log_entries,
            log_bytes: 1000,
        };
        assert!(
            !size(99).should_compact(&policy),
            "5000 / 50 = 100 updates pay for a rewrite"
        );
        assert!(size(100).should_compact(&policy));
    }
}
