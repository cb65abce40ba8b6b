//! Small helpers over Durable Object SQLite storage, shared by the objects' tables.
//!
//! Every statement runs synchronously; an object's writes between two awaits commit together,
//! and workerd's output gate holds what the object sends until they are durable.

use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::{SqlStorage, SqlStorageValue};

use crate::http::{EdgeError, StorageError};

/// One row of a result, column by column.
pub(crate) type Row = Vec<SqlStorageValue>;

/// An integer binding (a JS number: every integer stored here stays far below 2^53).
pub(crate) fn int(value: i64) -> JsValue {
    JsValue::from_f64(value as f64)
}

/// A text binding.
pub(crate) fn text(value: &str) -> JsValue {
    JsValue::from_str(value)
}

/// A BLOB binding (SQLite stores an ArrayBuffer binding as a BLOB).
pub(crate) fn bytes(data: &[u8]) -> JsValue {
    Uint8Array::from(data).buffer().into()
}

/// Runs a statement that returns no rows; returns the rows it wrote (as billed: index rows
/// included).
pub(crate) fn exec(
    sql: &SqlStorage,
    query: &str,
    bindings: Vec<JsValue>,
) -> Result<usize, EdgeError> {
    sql.exec_raw(query, bindings)
        .map(|cursor| cursor.rows_written())
        .map_err(|e| statement(query, e))
}

/// Runs a query and collects its rows.
pub(crate) fn rows(
    sql: &SqlStorage,
    query: &str,
    bindings: Vec<JsValue>,
) -> Result<Vec<Row>, EdgeError> {
    let cursor = sql
        .exec_raw(query, bindings)
        .map_err(|e| statement(query, e))?;
    cursor
        .raw()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| statement(query, e))
}

/// Whether a table exists (a read: it creates nothing).
pub(crate) fn table_exists(sql: &SqlStorage, table: &str) -> Result<bool, EdgeError> {
    let found = rows(
        sql,
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        vec![text(table)],
    )?;
    Ok(!found.is_empty())
}

/// Column `column` of `row` as a BLOB.
pub(crate) fn blob(row: &[SqlStorageValue], column: usize) -> Result<Vec<u8>, EdgeError> {
    match row.get(column) {
        Some(SqlStorageValue::Blob(data)) => Ok(data.clone()),
        other => Err(unexpected("BLOB", column, other)),
    }
}

/// Column `column` of `row` as an INTEGER.
pub(crate) fn integer(row: &[SqlStorageValue], column: usize) -> Result<i64, EdgeError> {
    match row.get(column) {
        Some(SqlStorageValue::Integer(value)) => Ok(*value),
        other => Err(unexpected("INTEGER", column, other)),
    }
}

/// Column `column` of `row` as TEXT, or `None` for NULL.
pub(crate) fn optional_text(
    row: &[SqlStorageValue],
    column: usize,
) -> Result<Option<String>, EdgeError> {
    match row.get(column) {
        Some(SqlStorageValue::String(value)) => Ok(Some(value.clone())),
        Some(SqlStorageValue::Null) => Ok(None),
        other => Err(unexpected("TEXT or NULL", column, other)),
    }
}

fn unexpected(expected: &'static str, column: usize, found: Option<&SqlStorageValue>) -> EdgeError {
    StorageError::Column {
        expected,
        column,
        found: found.cloned(),
    }
    .into()
}

fn statement(query: &str, source: worker::Error) -> EdgeError {
    StorageError::Statement {
        query: query.to_owned(),
        source,
    }
    .into()
}
