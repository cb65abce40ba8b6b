//! The room's SQLite tables in Durable Object storage, laid out as `codebox_room::storage` says.
//!
//! ```sql
//! snapshot(part INTEGER PRIMARY KEY, data BLOB)          -- the snapshot, in parts
//! log(seq INTEGER, part INTEGER, data BLOB, PK(seq, part)) -- each logged update, in parts
//! ```
//!
//! Every write of one room step runs synchronously with no await in between, so workerd
//! commits it as one implicit transaction, and its output gate holds the step's outgoing
//! frames until that commit is durable: nothing is relayed that storage could still lose.

use codebox_room::storage::chunks;
use codebox_room::StoreOp;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::{SqlStorage, SqlStorageValue};

use crate::http::EdgeError;

/// The stored form of a room, as read back.
pub struct Stored {
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
    /// Opens (creating if needed) the tables and reads everything stored.
    pub fn open(sql: SqlStorage) -> Result<(Self, Stored), EdgeError> {
        exec(
            &sql,
            "CREATE TABLE IF NOT EXISTS snapshot (part INTEGER PRIMARY KEY, data BLOB NOT NULL)",
            vec![],
        )?;
        exec(
            &sql,
            "CREATE TABLE IF NOT EXISTS log (seq INTEGER NOT NULL, part INTEGER NOT NULL, \
             data BLOB NOT NULL, PRIMARY KEY (seq, part))",
            vec![],
        )?;
        let mut snapshot = Vec::new();
        for row in rows(&sql, "SELECT data FROM snapshot ORDER BY part")? {
            snapshot.extend_from_slice(&blob(&row, 0)?);
        }
        let mut log: Vec<Vec<u8>> = Vec::new();
        let mut last_seq = None;
        for row in rows(&sql, "SELECT seq, data FROM log ORDER BY seq, part")? {
            let seq = integer(&row, 0)?;
            let data = blob(&row, 1)?;
            match log.last_mut() {
                Some(entry) if last_seq == Some(seq) => entry.extend_from_slice(&data),
                _ => log.push(data),
            }
            last_seq = Some(seq);
        }
        let next_seq = last_seq.map_or(0, |seq| seq + 1);
        Ok((RoomStore { sql, next_seq }, Stored { snapshot, log }))
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
}

fn int(value: i64) -> JsValue {
    // A JS number, not a BigInt: sequence numbers and parts stay far below 2^53.
    JsValue::from_f64(value as f64)
}

fn bytes(data: &[u8]) -> JsValue {
    // SQLite stores an ArrayBuffer binding as a BLOB.
    Uint8Array::from(data).buffer().into()
}

fn exec(sql: &SqlStorage, query: &str, bindings: Vec<JsValue>) -> Result<(), EdgeError> {
    sql.exec_raw(query, bindings)
        .map(|_| ())
        .map_err(|e| EdgeError::Storage(format!("{query}: {e}")))
}

fn rows(sql: &SqlStorage, query: &str) -> Result<Vec<Vec<SqlStorageValue>>, EdgeError> {
    let cursor = sql
        .exec(query, None)
        .map_err(|e| EdgeError::Storage(format!("{query}: {e}")))?;
    cursor
        .raw()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EdgeError::Storage(format!("{query}: {e}")))
}

fn blob(row: &[SqlStorageValue], column: usize) -> Result<Vec<u8>, EdgeError> {
    match row.get(column) {
        Some(SqlStorageValue::Blob(data)) => Ok(data.clone()),
        other => Err(EdgeError::Storage(format!(
            "expected a BLOB in column {column}, got {other:?}"
        ))),
    }
}

fn integer(row: &[SqlStorageValue], column: usize) -> Result<i64, EdgeError> {
    match row.get(column) {
        Some(SqlStorageValue::Integer(value)) => Ok(*value),
        other => Err(EdgeError::Storage(format!(
            "expected an INTEGER in column {column}, got {other:?}"
        ))),
    }
}
