//! [`SubmissionStore`] and [`RateCounter`] on DynamoDB: one item per submission, keyed by
//! `id`, and one per rate counter in the same table.
//!
//! A submission item's attributes are the record's fields, under the same names: strings as
//! `S`, numbers as `N`, flags as `BOOL`, timestamps as RFC 3339 `S`, and `NULL` for an absent
//! optional. `expires_at` (`N`, epoch seconds) is the table's TTL attribute. DynamoDB deletes
//! expired items lazily (up to days later), so reads and status writes treat an item whose
//! `expires_at` has passed as absent.
//!
//! A rate counter item has the id `rate#<scope>:<client>:<window>` (never a UUID, so never a
//! submission id), `hits` (`N`) and `expires_at`, set past the window's end so TTL deletes
//! it. One `UpdateItem` counts a hit: `ADD hits :one` on the condition that the counter is
//! absent or below the limit; a failed condition is a refusal and changes nothing.

use std::collections::HashMap;
use std::str::FromStr;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};

use super::describe;
use crate::store::{RateCounter, RateHit, StoreError, SubmissionStore, Transition};
use crate::{Language, RunResult, Status, Submission};

/// The hash key.
pub(super) const ID: &str = "id";
/// The TTL attribute.
pub(super) const EXPIRES_AT: &str = "expires_at";
const STATUS: &str = "status";
/// A rate counter's hits.
const HITS: &str = "hits";
/// What starts a rate counter's id.
const RATE_ID_PREFIX: &str = "rate#";
/// How long a rate counter outlives its window, so that an instance whose clock runs behind
/// still finds it rather than a fresh one.
const RATE_TTL_MARGIN_S: u64 = 600;

/// A stored item.
type Item = HashMap<String, AttributeValue>;

/// The submission store on DynamoDB (see the module documentation for the item layout).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    /// The DynamoDB client.
    pub client: Client,
    /// The table: hash key `id` (S), TTL on `expires_at`.
    pub table: String,
}

impl DynamoStore {
    /// The adapter over an existing table.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// `SET`s `fields` on the item `id` if its status is one of `allowed` and it has not
    /// expired; when the condition fails, says why from the item as it was.
    async fn conditional_update(
        &self,
        id: &str,
        fields: Vec<(&'static str, AttributeValue)>,
        allowed: &[Status],
    ) -> Result<Transition, StoreError> {
        let now = Utc::now();
        let mut names = HashMap::from([
            (format!("#{STATUS}"), STATUS.to_owned()),
            (format!("#{EXPIRES_AT}"), EXPIRES_AT.to_owned()),
        ]);
        let mut values = HashMap::from([(":now".to_owned(), number(now.timestamp()))]);
        let mut sets = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            // Every name goes through a placeholder: `status`, `signal` and others are
            // DynamoDB reserved words.
            sets.push(format!("#{name} = :{name}"));
            names.insert(format!("#{name}"), name.to_owned());
            values.insert(format!(":{name}"), value);
        }
        let mut allowed_values = Vec::with_capacity(allowed.len());
        for status in allowed {
            let placeholder = format!(":allowed_{}", status.as_str());
            values.insert(
                placeholder.clone(),
                AttributeValue::S(status.as_str().to_owned()),
            );
            allowed_values.push(placeholder);
        }
        let condition = format!(
            "#{STATUS} IN ({}) AND #{EXPIRES_AT} > :now",
            allowed_values.join(", ")
        );

        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(id.to_owned()))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match outcome {
            Ok(_) => return Ok(Transition::Applied),
            Err(error) => error,
        };
        let Some(UpdateItemError::ConditionalCheckFailedException(refusal)) =
            error.as_service_error()
        else {
            return Err(StoreError::Unavailable(describe(
                "DynamoDB UpdateItem",
                &error,
            )));
        };
        // The item as the condition saw it; a stand-in that does not return it (or an absent
        // item, for which there is nothing to return) costs one consistent read.
        let current = match refusal.item() {
            Some(item) if !item.is_empty() => Some(item.clone()),
            _ => self.get_item(id).await?,
        };
        let Some(current) = current else {
            return Ok(Transition::NotFound);
        };
        let expires_at: i64 =
            read_number(&current, EXPIRES_AT).map_err(|detail| corrupt(id, detail))?;
        if expires_at <= now.timestamp() {
            return Ok(Transition::NotFound);
        }
        Ok(Transition::Refused(
            read_status(&current).map_err(|detail| corrupt(id, detail))?,
        ))
    }

    /// The raw item, read consistently.
    async fn get_item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map(|output| output.item)
            .map_err(|e| StoreError::Unavailable(describe("DynamoDB GetItem", &e)))
    }
}

#[async_trait]
impl SubmissionStore for DynamoStore {
    async fn create(&self, record: &Submission) -> Result<(), StoreError> {
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", ID)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::AlreadyExists(record.id.clone()))
            }
            Err(e) => Err(StoreError::Unavailable(describe("DynamoDB PutItem", &e))),
        }
    }

    async fn get(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Submission>, StoreError> {
        let Some(item) = self.get_item(id).await? else {
            return Ok(None);
        };
        let record = from_item(&item).map_err(|detail| corrupt(id, detail))?;
        Ok((!record.is_expired(now)).then_some(record))
    }

    async fn mark_running(&self, id: &str, at: DateTime<Utc>) -> Result<Transition, StoreError> {
        let fields = vec![
            (STATUS, string(Status::Running.as_str())),
            ("started_at", timestamp(at)),
        ];
        self.conditional_update(id, fields, &[Status::Queued]).await
    }

    async fn finish(&self, id: &str, result: &RunResult) -> Result<Transition, StoreError> {
        let fields = vec![
            (STATUS, string(result.status.as_str())),
            ("exit_code", optional(result.exit_code, number)),
            ("signal", optional(result.signal, number)),
            ("stdout", string(&result.stdout)),
            ("stderr", string(&result.stderr)),
            (
                "stdout_truncated",
                AttributeValue::Bool(result.stdout_truncated),
            ),
            (
                "stderr_truncated",
                AttributeValue::Bool(result.stderr_truncated),
            ),
            (
                "compile_output",
                optional(result.compile_output.as_deref(), string),
            ),
            ("time_ms", optional(result.time_ms, number)),
            ("finished_at", timestamp(result.finished_at)),
        ];
        self.conditional_update(id, fields, &[Status::Queued, Status::Running])
            .await
    }
}

#[async_trait]
impl RateCounter for DynamoStore {
    async fn count(&self, hit: &RateHit) -> Result<bool, StoreError> {
        // The condition lets a first hit through whatever the limit: a zero limit is decided here.
        if hit.limit == 0 {
            return Ok(false);
        }
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, string(&rate_id(hit)))
            .update_expression(format!("ADD #{HITS} :one SET #{EXPIRES_AT} = :expires_at"))
            .condition_expression(format!("attribute_not_exists(#{HITS}) OR #{HITS} < :limit"))
            .expression_attribute_names(format!("#{HITS}"), HITS)
            .expression_attribute_names(format!("#{EXPIRES_AT}"), EXPIRES_AT)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":limit", number(hit.limit))
            .expression_attribute_values(":expires_at", number(rate_expires_at(hit)))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::Unavailable(describe(
                "DynamoDB UpdateItem (rate counter)",
                &e,
            ))),
        }
    }
}

/// The item id of `hit`'s counter.
fn rate_id(hit: &RateHit) -> String {
    format!("{RATE_ID_PREFIX}{}", hit.key)
}

/// When TTL may delete `hit`'s counter (epoch seconds).
fn rate_expires_at(hit: &RateHit) -> u64 {
    hit.window.ends_at + RATE_TTL_MARGIN_S
}

/// A record as an item.
fn to_item(record: &Submission) -> Item {
    HashMap::from([
        (ID.to_owned(), string(&record.id)),
        ("language".to_owned(), string(record.language.id())),
        (STATUS.to_owned(), string(record.status.as_str())),
        ("exit_code".to_owned(), optional(record.exit_code, number)),
        ("signal".to_owned(), optional(record.signal, number)),
        ("stdout".to_owned(), string(&record.stdout)),
        ("stderr".to_owned(), string(&record.stderr)),
        (
            "stdout_truncated".to_owned(),
            AttributeValue::Bool(record.stdout_truncated),
        ),
        (
            "stderr_truncated".to_owned(),
            AttributeValue::Bool(record.stderr_truncated),
        ),
        (
            "compile_output".to_owned(),
            optional(record.compile_output.as_deref(), string),
        ),
        ("time_ms".to_owned(), optional(record.time_ms, number)),
        ("created_at".to_owned(), timestamp(record.created_at)),
        (
            "started_at".to_owned(),
            optional(record.started_at, timestamp),
        ),
        (
            "finished_at".to_owned(),
            optional(record.finished_at, timestamp),
        ),
        (EXPIRES_AT.to_owned(), number(record.expires_at)),
    ])
}

/// An item as a record, or what is wrong with it.
fn from_item(item: &Item) -> Result<Submission, String> {
    let language = read_string(item, "language")?;
    Ok(Submission {
        id: read_string(item, ID)?.to_owned(),
        language: Language::from_id(language)
            .ok_or_else(|| format!("unknown language {language:?}"))?,
        status: read_status(item)?,
        exit_code: read_optional(item, "exit_code", read_number)?,
        signal: read_optional(item, "signal", read_number)?,
        stdout: read_string(item, "stdout")?.to_owned(),
        stderr: read_string(item, "stderr")?.to_owned(),
        stdout_truncated: read_bool(item, "stdout_truncated")?,
        stderr_truncated: read_bool(item, "stderr_truncated")?,
        compile_output: read_optional(item, "compile_output", |item, name| {
            read_string(item, name).map(str::to_owned)
        })?,
        time_ms: read_optional(item, "time_ms", read_number)?,
        created_at: read_timestamp(item, "created_at")?,
        started_at: read_optional(item, "started_at", read_timestamp)?,
        finished_at: read_optional(item, "finished_at", read_timestamp)?,
        expires_at: read_number(item, EXPIRES_AT)?,
    })
}

fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// RFC 3339 in UTC, with as many fractional digits as it takes to round-trip exactly.
fn timestamp(value: DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(value.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn optional<T>(value: Option<T>, present: impl FnOnce(T) -> AttributeValue) -> AttributeValue {
    value.map_or(AttributeValue::Null(true), present)
}

fn attribute<'a>(item: &'a Item, name: &str) -> Result<&'a AttributeValue, String> {
    item.get(name)
        .ok_or_else(|| format!("attribute {name} is missing"))
}

fn read_string<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    match attribute(item, name)? {
        AttributeValue::S(value) => Ok(value),
        other => Err(format!("attribute {name} is not a string: {other:?}")),
    }
}

fn read_number<T: FromStr>(item: &Item, name: &str) -> Result<T, String> {
    match attribute(item, name)? {
        AttributeValue::N(value) => value
            .parse()
            .map_err(|_| format!("attribute {name} is out of range: {value}")),
        other => Err(format!("attribute {name} is not a number: {other:?}")),
    }
}

fn read_bool(item: &Item, name: &str) -> Result<bool, String> {
    match attribute(item, name)? {
        AttributeValue::Bool(value) => Ok(*value),
        other => Err(format!("attribute {name} is not a boolean: {other:?}")),
    }
}

fn read_timestamp(item: &Item, name: &str) -> Result<DateTime<Utc>, String> {
    let value = read_string(item, name)?;
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("attribute {name} is not an RFC 3339 time ({e}): {value}"))
}

/// An optional field: `NULL` or missing is `None`.
fn read_optional<T>(
    item: &Item,
    name: &str,
    present: impl FnOnce(&Item, &str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => present(item, name).map(Some),
    }
}

fn read_status(item: &Item) -> Result<Status, String> {
    let status = read_string(item, STATUS)?;
    Status::parse(status).ok_or_else(|| format!("unknown status {status:?}"))
}

fn corrupt(id: &str, detail: String) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_every_field() {
        let now = Utc::now();
        let mut record = Submission::queued("abc".into(), Language::Rust, now);
        assert_eq!(from_item(&to_item(&record)).unwrap(), record);
        record.started_at = Some(now);
        record.finish(&RunResult {
            status: Status::RuntimeError,
            exit_code: Some(-3),
            signal: Some(9),
            stdout: String::new(),
            stderr: "é\u{0}".into(),
            stdout_truncated: true,
            stderr_truncated: false,
            compile_output: Some(String::new()),
            time_ms: Some(u64::MAX),
            finished_at: now,
        });
        let item = to_item(&record);
        assert_eq!(from_item(&item).unwrap(), record);
        assert_eq!(
            item[EXPIRES_AT],
            AttributeValue::N(record.expires_at.to_string())
        );
        assert_eq!(item["signal"], AttributeValue::N("9".into()));
    }

    #[test]
    fn rate_counters_are_keyed_by_scope_client_and_window_and_outlive_it() {
        let limit = codebox_access::RateLimit {
            limit: 30,
            window_s: 60,
        };
        let hit = RateHit::new("runs", "2001:db8:1:2::/64", limit, 1_000_010);
        assert_eq!(rate_id(&hit), "rate#runs:2001:db8:1:2::/64:16666");
        assert_eq!(hit.window.ends_at, 1_000_020);
        assert_eq!(rate_expires_at(&hit), 1_000_020 + RATE_TTL_MARGIN_S);
        assert!(
            uuid::Uuid::try_parse(&rate_id(&hit)).is_err(),
            "never a submission id"
        );
        let next = RateHit::new("runs", "2001:db8:1:2::/64", limit, 1_000_020);
        assert_ne!(
            rate_id(&next),
            rate_id(&hit),
            "each window has its own counter"
        );
    }

    #[test]
    fn missing_or_mistyped_attributes_are_reported() {
        let record = Submission::queued("abc".into(), Language::Go, Utc::now());
        let mut item = to_item(&record);
        item.insert(STATUS.into(), AttributeValue::N("1".into()));
        assert!(from_item(&item).unwrap_err().contains("status"));
        item.remove(STATUS);
        assert!(from_item(&item).unwrap_err().contains("missing"));
    }
}
