//! The room's SQLite tables in Durable Object storage, laid out as `codebox_room::storage` says.
//!
//! ```sql
//! room(id INTEGER PRIMARY KEY CHECK (id = 0), generation INTEGER, created_at INTEGER,
//!      epoch INTEGER)                                     -- the link generation, the log's epoch
//! snapshot(part INTEGER PRIMARY KEY, data BLOB)           -- the snapshot, in parts
//! updates(slot INTEGER PRIMARY KEY, epoch INTEGER, last INTEGER, data BLOB)
//!                                                         -- the log: one commit per run of slots
//! ```
//!
//! `room` exists from `POST /rooms` on and holds the link generation; a room without it was
//! never created, and reading one creates nothing.
//!
//! Storage is billed per row written, index rows and deletions included, so the log is laid
//! out to write one row per commit and nothing else: `slot` is the table's integer key (no
//! second index), and a compaction deletes nothing. It writes the snapshot and moves the room
//! to a new `epoch`; the log is the rows of the current epoch in slot order (a commit over
//! [`codebox_room::storage::CHUNK_BYTES`] takes several slots, the last one marked), and the next commits overwrite
//! the old epoch's rows from slot 0 in place. The table so keeps as many rows as the longest
//! log ever held (bounded by the compaction policy), and a compaction costs the snapshot's
//! rows plus one.
//!
//! Every write of one room step runs synchronously with no await in between, so workerd
//! commits it as one implicit transaction: a compaction's snapshot and epoch land together.

use codebox_room::storage::chunks;
use codebox_room::StoreOp;
use worker::SqlStorage;

use crate::http::{EdgeError, StorageError};
use crate::sql::{blob, bytes, exec, int, integer, rows, table_exists};

/// The link generation of a new room.
pub(crate) const FIRST_GENERATION: u32 = 1;

/// The stored document, as read back.
pub(crate) struct StoredDocument {
    /// The snapshot, reassembled.
    pub snapshot: Vec<u8>,
    /// The logged commits in order, each reassembled.
    pub log: Vec<Vec<u8>>,
}

/// A room's tables.
pub(crate) struct RoomStore {
    sql: SqlStorage,
    epoch: i64,
    /// Where the next commit goes, and the snapshot's parts: known once the document was read.
    layout: Option<Layout>,
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    next_slot: i64,
    snapshot_parts: i64,
}

impl RoomStore {
    /// Creates a new room's tables at the first generation; `false` if the room exists.
    pub(crate) fn create(sql: &SqlStorage, now_s: u64) -> Result<bool, EdgeError> {
        if table_exists(sql, "room")? {
            return Ok(false);
        }
        exec(
            sql,
            "CREATE TABLE room (id INTEGER PRIMARY KEY CHECK (id = 0), \
             generation INTEGER NOT NULL, created_at INTEGER NOT NULL, \
             epoch INTEGER NOT NULL DEFAULT 0)",
            vec![],
        )?;
        exec(
            sql,
            "CREATE TABLE snapshot (part INTEGER PRIMARY KEY, data BLOB NOT NULL)",
            vec![],
        )?;
        create_updates_table(sql)?;
        exec(
            sql,
            "INSERT INTO room (id, generation, created_at) VALUES (0, ?, ?)",
            vec![int(FIRST_GENERATION.into()), int(now_s as i64)],
        )?;
        Ok(true)
    }

    /// Opens the room's tables and reads its link generation (one row: the document waits for
    /// [`RoomStore::read_document`]); `None` for a room that was never created (nothing is
    /// written).
    pub(crate) fn open(sql: SqlStorage) -> Result<Option<(Self, u32)>, EdgeError> {
        if !table_exists(&sql, "room")? {
            return Ok(None);
        }
        if table_exists(&sql, "log")? {
            upgrade_log_layout(&sql)?;
        }
        let row = rows(
            &sql,
            "SELECT generation, epoch FROM room WHERE id = 0",
            vec![],
        )?;
        let (generation, epoch) = row
            .first()
            .map(|row| Ok::<_, EdgeError>((integer(row, 0)?, integer(row, 1)?)))
            .transpose()?
            .and_then(|(g, e)| Some((u32::try_from(g).ok()?, e)))
            .ok_or(StorageError::RoomRow)?;
        let store = RoomStore {
            sql,
            epoch,
            layout: None,
        };
        Ok(Some((store, generation)))
    }

    /// Reads the document: the snapshot and the current epoch's log.
    pub(crate) fn read_document(&mut self) -> Result<StoredDocument, EdgeError> {
        let (sql, epoch) = (&self.sql, self.epoch);
        let mut snapshot = Vec::new();
        let mut snapshot_parts = 0;
        for row in rows(sql, "SELECT data FROM snapshot ORDER BY part", vec![])? {
            snapshot.extend_from_slice(&blob(&row, 0)?);
            snapshot_parts += 1;
        }
        let mut log: Vec<Vec<u8>> = Vec::new();
        let mut open_entry = false;
        let mut next_slot = 0;
        for row in rows(
            sql,
            "SELECT slot, last, data FROM updates WHERE epoch = ? ORDER BY slot",
            vec![int(epoch)],
        )? {
            let slot = integer(&row, 0)?;
            if slot != next_slot {
                return Err(StorageError::MissingLogSlot {
                    slot: next_slot,
                    epoch,
                }
                .into());
            }
            let data = blob(&row, 2)?;
            match log.last_mut() {
                Some(entry) if open_entry => entry.extend_from_slice(&data),
                _ => log.push(data),
            }
            open_entry = integer(&row, 1)? == 0;
            next_slot += 1;
        }
        if open_entry {
            return Err(StorageError::IncompleteLogEntry(epoch).into());
        }
        self.layout = Some(Layout {
            next_slot,
            snapshot_parts,
        });
        Ok(StoredDocument { snapshot, log })
    }

    /// Runs the writes of one room step, in order; returns the rows written. Only after
    /// [`RoomStore::read_document`]: where a commit goes depends on what is there.
    pub(crate) fn apply(&mut self, ops: &[StoreOp]) -> Result<usize, EdgeError> {
        let Some(mut layout) = self.layout else {
            return Err(StorageError::WriteBeforeRead.into());
        };
        let mut written = 0;
        for op in ops {
            match op {
                StoreOp::Append(update) => {
                    let parts: Vec<&[u8]> = chunks(update).collect();
                    for (i, data) in parts.iter().enumerate() {
                        let last = i + 1 == parts.len();
                        written += exec(
                            &self.sql,
                            "INSERT INTO updates (slot, epoch, last, data) VALUES (?, ?, ?, ?) \
                             ON CONFLICT (slot) DO UPDATE SET epoch = excluded.epoch, \
                             last = excluded.last, data = excluded.data",
                            vec![
                                int(layout.next_slot),
                                int(self.epoch),
                                int(last.into()),
                                bytes(data),
                            ],
                        )?;
                        layout.next_slot += 1;
                    }
                }
                StoreOp::Compact(snapshot) => {
                    let mut parts = 0;
                    for (part, data) in chunks(snapshot).enumerate() {
                        written += exec(
                            &self.sql,
                            "INSERT INTO snapshot (part, data) VALUES (?, ?) \
                             ON CONFLICT (part) DO UPDATE SET data = excluded.data",
                            vec![int(part as i64), bytes(data)],
                        )?;
                        parts += 1;
                    }
                    if parts < layout.snapshot_parts {
                        written += exec(
                            &self.sql,
                            "DELETE FROM snapshot WHERE part >= ?",
                            vec![int(parts)],
                        )?;
                    }
                    self.epoch += 1;
                    written += exec(
                        &self.sql,
                        "UPDATE room SET epoch = ? WHERE id = 0",
                        vec![int(self.epoch)],
                    )?;
                    layout = Layout {
                        next_slot: 0,
                        snapshot_parts: parts,
                    };
                }
            }
            self.layout = Some(layout);
        }
        Ok(written)
    }

    /// Records a new link generation.
    pub(crate) fn set_generation(&self, generation: u32) -> Result<(), EdgeError> {
        exec(
            &self.sql,
            "UPDATE room SET generation = ? WHERE id = 0",
            vec![int(generation.into())],
        )
        .map(drop)
    }
}

fn create_updates_table(sql: &SqlStorage) -> Result<(), EdgeError> {
    exec(
        sql,
        "CREATE TABLE updates (slot INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, \
         last INTEGER NOT NULL, data BLOB NOT NULL)",
        vec![],
    )
    .map(drop)
}

/// Moves a room stored by an earlier version (`log(seq, part, data)` keyed by both, and no
/// epoch) to this layout, once: its log entries become epoch 0's slots, in order.
fn upgrade_log_layout(sql: &SqlStorage) -> Result<(), EdgeError> {
    exec(
        sql,
        "ALTER TABLE room ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        vec![],
    )?;
    create_updates_table(sql)?;
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut last_seq = None;
    for row in rows(sql, "SELECT seq, data FROM log ORDER BY seq, part", vec![])? {
        let seq = integer(&row, 0)?;
        let data = blob(&row, 1)?;
        match entries.last_mut() {
            Some(entry) if last_seq == Some(seq) => entry.extend_from_slice(&data),
            _ => entries.push(data),
        }
        last_seq = Some(seq);
    }
    let mut store = RoomStore {
        sql: sql.clone(),
        epoch: 0,
        layout: Some(Layout {
            next_slot: 0,
            snapshot_parts: 0,
        }),
    };
    let appends: Vec<StoreOp> = entries.into_iter().map(StoreOp::Append).collect();
    store.apply(&appends)?;
    exec(sql, "DROP TABLE log", vec![]).map(drop)
}
