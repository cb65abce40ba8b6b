//! The room's SQLite tables in Durable Object storage, laid out as `codebox_room::storage` says.
//!
//! ```sql
//! room(id INTEGER PRIMARY KEY CHECK (id = 0), generation INTEGER, created_at INTEGER)
//! snapshot(part INTEGER PRIMARY KEY, data BLOB)            -- the snapshot, in parts
//! log(seq INTEGER, part INTEGER, data BLOB, PK(seq, part))   -- each logged update, in parts
//! ```
//!
//! `room` exists from `POST /rooms` on and holds the link generation; a room without it was
//! never created, and reading one creates nothing. Every write of one room step runs
//! synchronously with no await in between, so workerd commits it as one implicit transaction,
//! and its output gate holds the step's outgoing frames until that commit is durable: nothing
//! is relayed that storage could still lose.

use codebox_room::storage::chunks;
use codebox_room::StoreOp;
use worker::SqlStorage;

use crate::http::EdgeError;
use crate::sql::{blob, bytes, exec, int, integer, rows, table_exists};

/// The link generation of a new room.
pub const FIRST_GENERATION: u32 = 1;

/// The stored form of a room, as read back.
pub struct Stored {
    /// The current link generation.
    pub generation: u32,
    /// The snapshot, reassembled.
    pub snapshot: Vec<u8>,
    /// The logged updates in order, each reassembled.
    pub log: Vec<Vec<u8>>,
}

/// A room's tables.
pub struct RoomStore {
    sql: SqlStorage,
    next_seq: i64,
}

impl RoomStore {
    /// Creates a new room's tables at the first generation; `false` if the room exists.
    pub fn create(sql: &SqlStorage, now_s: u64) -> Result<bool, EdgeError> {
        if table_exists(sql, "room")? {
            return Ok(false);
        }
        exec(
            sql,
            "CREATE TABLE room (id INTEGER PRIMARY KEY CHECK (id = 0), \
             generation INTEGER NOT NULL, created_at INTEGER NOT NULL)",
            vec![],
        )?;
        exec(
            sql,
            "CREATE TABLE snapshot (part INTEGER PRIMARY KEY, data BLOB NOT NULL)",
            vec![],
        )?;
        exec(
            sql,
            "CREATE TABLE log (seq INTEGER NOT NULL, part INTEGER NOT NULL, \
             data BLOB NOT NULL, PRIMARY KEY (seq, part))",
            vec![],
        )?;
        exec(
            sql,
            "INSERT INTO room (id, generation, created_at) VALUES (0, ?, ?)",
            vec![int(FIRST_GENERATION.into()), int(now_s as i64)],
        )?;
        Ok(true)
    }

    /// Reads everything stored; `None` for a room that was never created (nothing is written).
    pub fn open(sql: SqlStorage) -> Result<Option<(Self, Stored)>, EdgeError> {
        if !table_exists(&sql, "room")? {
            return Ok(None);
        }
        let generation = rows(&sql, "SELECT generation FROM room WHERE id = 0", vec![])?
            .first()
            .map(|row| integer(row, 0))
            .transpose()?
            .and_then(|g| u32::try_from(g).ok())
            .ok_or_else(|| EdgeError::Storage("the room row is missing or corrupt".into()))?;
        let mut snapshot = Vec::new();
        for row in rows(&sql, "SELECT data FROM snapshot ORDER BY part", vec![])? {
            snapshot.extend_from_slice(&blob(&row, 0)?);
        }
        let mut log: Vec<Vec<u8>> = Vec::new();
        let mut last_seq = None;
        for row in rows(&sql, "SELECT seq, data FROM log ORDER BY seq, part", vec![])? {
            let seq = integer(&row, 0)?;
            let data = blob(&row, 1)?;
            match log.last_mut() {
                Some(entry) if last_seq == Some(seq) => entry.extend_from_slice(&data),
                _ => log.push(data),
            }
            last_seq = Some(seq);
        }
        let next_seq = last_seq.map_or(0, |seq| seq + 1);
        Ok(Some((
            RoomStore { sql, next_seq },
            Stored {
                generation,
                snapshot,
                log,
            },
        )))
    }

    /// Runs the writes of one room step, in order.
    pub fn apply(&mut self, ops: &[StoreOp]) -> Result<(), EdgeError> {
        for op in ops {
            match op {
                StoreOp::Append(update) => {
                    for (part, data) in chunks(update).enumerate() {
                        exec(
                            &self.sql,
                            "INSERT INTO log (seq, part, data) VALUES (?, ?, ?)",
                            vec![int(self.next_seq), int(part as i64), bytes(data)],
                        )?;
                    }
                    self.next_seq += 1;
                }
                StoreOp::Compact(snapshot) => {
                    exec(&self.sql, "DELETE FROM log", vec![])?;
                    exec(&self.sql, "DELETE FROM snapshot", vec![])?;
                    for (part, data) in chunks(snapshot).enumerate() {
                        exec(
                            &self.sql,
                            "INSERT INTO snapshot (part, data) VALUES (?, ?)",
                            vec![int(part as i64), bytes(data)],
                        )?;
                    }
                    self.next_seq = 0;
                }
            }
        }
        Ok(())
    }

    /// Records a new link generation.
    pub fn set_generation(&self, generation: u32) -> Result<(), EdgeError> {
        exec(
            &self.sql,
            "UPDATE room SET generation = ? WHERE id = 0",
            vec![int(generation.into())],
        )
    }
}
