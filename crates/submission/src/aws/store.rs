//! [`SubmissionStore`] and [`RateCounter`] on DynamoDB: one item per submission, keyed by
//! `id`, and one per rate counter in the same table.
//!
//! A submission item's attributes are the record's fields, under the same names, mapped from
//! [`Submission`]'s serde form by `item` (strings as `S`, numbers as `N`, flags as `BOOL`,
//! timestamps as RFC 3339 `S`, and `NULL` for an absent optional); a status write `SET`s the
//! fields of its own type ([`RunResult`], or `Started`) the same way. `expires_at` (`N`, epoch
//! seconds) is the table's TTL attribute. DynamoDB deletes
//! expired items lazily (up to days later), so reads and status writes treat an item whose
//! `expires_at` has passed as absent.
//!
//! A rate counter item has the id `rate#<scope>:<client>:<window>` (never a UUID, so never a
//! submission id), `hits` (`N`) and `expires_at`, set past the window's end so TTL deletes
//! it. One `UpdateItem` counts a hit: `ADD hits :one` on the condition that the counter is
//! absent or below the limit; a failed condition is a refusal and changes nothing.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, to_item, Item};
use super::AwsError;
use crate::error::ServiceError;
use crate::store::{
    payload_part_count, payload_parts, PayloadStore, RateCounter, RateHit, StoreError,
    SubmissionStore, Transition, Unreadable,
};
use crate::{RunResult, Status, Submission};

/// The hash key.
pub(super) const ID: &str = "id";
/// The TTL attribute.
pub(super) const EXPIRES_AT: &str = "expires_at";
/// The status attribute, which every status write is conditional on.
const STATUS: &str = "status";
/// A rate counter's hits.
const HITS: &str = "hits";
/// What starts a rate counter's id.
const RATE_ID_PREFIX: &str = "rate#";
/// What a payload part's id is, after the submission's: `{id}#payload#{part}` (never a UUID,
/// so never read as a record).
const PAYLOAD_ID_INFIX: &str = "#payload#";
/// A payload part's bytes.
const BYTES: &str = "bytes";
/// How long a rate counter outlives its window, so that an instance whose clock runs behind
/// still finds it rather than a fresh one.
const RATE_TTL_MARGIN_S: u64 = 600;

/// What `queued -> running` writes.
#[derive(Serialize)]
struct Started {
    status: Status,
    started_at: DateTime<Utc>,
}

/// What a refused status write needs to know of the item as it was.
#[derive(Deserialize)]
struct Standing {
    status: Status,
    expires_at: i64,
}

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

    /// `SET`s the fields of `write` on the item `id` if its status is one of `allowed` and it
    /// has not expired; when the condition fails, says why from the item as it was.
    async fn conditional_update(
        &self,
        id: &str,
        write: &impl Serialize,
        allowed: &[Status],
    ) -> Result<Transition, StoreError> {
        let fields = to_item(write).map_err(|e| StoreError::Unavailable(e.into()))?;
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
            values.insert(format!(":{name}"), value);
            names.insert(format!("#{name}"), name);
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
            return Err(AwsError::new("DynamoDB UpdateItem", error).into());
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
        let standing: Standing = from_item(&current).map_err(|source| corrupt(id, source))?;
        if standing.expires_at <= now.timestamp() {
            return Ok(Transition::NotFound);
        }
        Ok(Transition::Refused(standing.status))
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
            .map_err(|e| AwsError::new("DynamoDB GetItem", e).into())
    }
}

#[async_trait]
impl SubmissionStore for DynamoStore {
    async fn create(&self, record: &Submission) -> Result<(), StoreError> {
        let item = record_item(record).map_err(|e| StoreError::Unavailable(e.into()))?;
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
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
            Err(e) => Err(AwsError::new("DynamoDB PutItem", e).into()),
        }
    }

    async fn get(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Submission>, StoreError> {
        let Some(item) = self.get_item(id).await? else {
            return Ok(None);
        };
        let record = record_of(&item).map_err(|source| corrupt(id, source))?;
        Ok((!record.is_expired(now)).then_some(record))
    }

    async fn mark_running(&self, id: &str, at: DateTime<Utc>) -> Result<Transition, StoreError> {
        let started = Started {
            status: Status::Running,
            started_at: at,
        };
        self.conditional_update(id, &started, &[Status::Queued])
            .await
    }

    async fn finish(&self, id: &str, result: &RunResult) -> Result<Transition, StoreError> {
        self.conditional_update(id, result, &[Status::Queued, Status::Running])
            .await
    }
}

fn payload_key(id: &str, part: u32) -> AttributeValue {
    AttributeValue::S(format!("{id}{PAYLOAD_ID_INFIX}{part}"))
}

#[async_trait]
impl PayloadStore for DynamoStore {
    async fn put_payload(
        &self,
        id: &str,
        payload: &[u8],
        expires_at: i64,
    ) -> Result<u32, StoreError> {
        for (part, bytes) in payload_parts(payload) {
            self.client
                .put_item()
                .table_name(&self.table)
                .item(ID, payload_key(id, part))
                .item(BYTES, AttributeValue::B(bytes.to_vec().into()))
                .item(EXPIRES_AT, AttributeValue::N(expires_at.to_string()))
                .send()
                .await
                .map_err(|e| AwsError::new("DynamoDB PutItem", e))?;
        }
        Ok(payload_part_count(payload))
    }

    async fn payload(&self, id: &str, parts: u32) -> Result<Vec<u8>, StoreError> {
        let mut payload = Vec::new();
        for part in 0..parts {
            let item = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(ID, payload_key(id, part))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| AwsError::new("DynamoDB GetItem", e))?
                .item;
            let missing = || StoreError::MissingPayload {
                id: id.to_owned(),
                part,
            };
            match item.as_ref().and_then(|item| item.get(BYTES)) {
                Some(AttributeValue::B(bytes)) => payload.extend_from_slice(bytes.as_ref()),
                _ => return Err(missing()),
            }
        }
        Ok(payload)
    }
}

#[async_trait]
impl RateCounter for DynamoStore {
    async fn count(&self, hit: &RateHit) -> Result<bool, StoreError> {
        // The condition lets a first hit through whatever the limit: a hit heavier than the
        // whole limit is decided here. A condition cannot add, so it compares with the room
        // the counter must have left.
        let Some(room) = hit.limit.checked_sub(hit.weight) else {
            return Ok(false);
        };
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ID, AttributeValue::S(rate_id(hit)))
            .update_expression(format!(
                "ADD #{HITS} :weight SET #{EXPIRES_AT} = :expires_at"
            ))
            .condition_expression(format!("attribute_not_exists(#{HITS}) OR #{HITS} <= :room"))
            .expression_attribute_names(format!("#{HITS}"), HITS)
            .expression_attribute_names(format!("#{EXPIRES_AT}"), EXPIRES_AT)
            .expression_attribute_values(":weight", number(hit.weight))
            .expression_attribute_values(":room", number(room))
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
            Err(e) => Err(AwsError::new("DynamoDB UpdateItem (rate counter)", e).into()),
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

/// A record as an item: its fields, and the TTL attribute the API never shows.
fn record_item(record: &Submission) -> Result<Item, serde_json::Error> {
    let mut item = to_item(record)?;
    item.insert(EXPIRES_AT.to_owned(), number(record.expires_at));
    Ok(item)
}

/// An item as a record, or what is wrong with it.
fn record_of(item: &Item) -> Result<Submission, Unreadable> {
    if !item.contains_key(EXPIRES_AT) {
        return Err(Unreadable::Missing(EXPIRES_AT));
    }
    from_item(item)
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn corrupt(id: &str, source: Unreadable) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        source,
    }
}

impl From<AwsError> for StoreError {
    fn from(error: AwsError) -> Self {
        StoreError::Unavailable(ServiceError::from(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Language;

    #[test]
    fn items_round_trip_every_field() {
        let now = Utc::now();
        let mut record = Submission::queued("abc".into(), Language::Rust, now);
        assert_eq!(record_of(&record_item(&record).unwrap()).unwrap(), record);
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
            time_limit: Some(crate::TimeLimit::Cpu),
            tests: None,
            finished_at: now,
        });
        let item = record_item(&record).unwrap();
        assert_eq!(record_of(&item).unwrap(), record);
        assert_eq!(
            item[EXPIRES_AT],
            AttributeValue::N(record.expires_at.to_string())
        );
        assert_eq!(item["signal"], AttributeValue::N("9".into()));
    }

    /// The layout items had before the mapping was derived from the type, attribute for
    /// attribute: such items still read, and records are still written so (with the one
    /// attribute added since).
    #[test]
    fn the_item_layout_is_unchanged() {
        let item: Item = HashMap::from(
            [
                ("id", AttributeValue::S("abc".into())),
                ("language", AttributeValue::S("cpp".into())),
                ("status", AttributeValue::S("runtime_error".into())),
                ("exit_code", AttributeValue::Null(true)),
                ("signal", AttributeValue::N("9".into())),
                ("stdout", AttributeValue::S("out".into())),
                ("stderr", AttributeValue::S(String::new())),
                ("stdout_truncated", AttributeValue::Bool(true)),
                ("stderr_truncated", AttributeValue::Bool(false)),
                ("compile_output", AttributeValue::S("cc1plus".into())),
                ("time_ms", AttributeValue::N("42".into())),
                (
                    "created_at",
                    AttributeValue::S("2026-11-26T12:00:00Z".into()),
                ),
                (
                    "started_at",
                    AttributeValue::S("2026-11-26T12:00:00.250Z".into()),
                ),
                (
                    "finished_at",
                    AttributeValue::S("2026-11-26T12:00:01.123456789Z".into()),
                ),
                ("expires_at", AttributeValue::N("1795780800".into())),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        let record = record_of(&item).unwrap();
        assert_eq!(record.language, Language::Cpp);
        assert_eq!(record.signal, Some(9));
        assert_eq!(record.expires_at, 1_795_780_800);
        assert_eq!(
            record.finished_at.unwrap().timestamp_subsec_nanos(),
            123_456_789
        );
        assert_eq!(record.time_limit, None);
        assert_eq!(record.tests, None);
        // Written back, it gains only the attributes added since (issues 13 and 14).
        let mut written = record_item(&record).unwrap();
        for added in ["time_limit", "tests"] {
            assert_eq!(
                written.remove(added),
                Some(AttributeValue::Null(true)),
                "{added}"
            );
        }
        assert_eq!(written, item);
    }

    #[test]
    fn status_writes_set_the_record_fields_of_their_type() {
        let now = Utc::now();
        let result = RunResult::internal_error("x", now);
        let fields = to_item(&result).unwrap();
        let record = record_item(&Submission::queued("a".into(), Language::C, now)).unwrap();
        for name in fields.keys() {
            assert!(record.contains_key(name), "{name}");
        }
        let started = to_item(&Started {
            status: Status::Running,
            started_at: now,
        })
        .unwrap();
        assert!(started.keys().all(|name| record.contains_key(name)));
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
        let mut item = record_item(&record).unwrap();
        item.insert(STATUS.into(), AttributeValue::N("1".into()));
        assert!(record_of(&item).unwrap_err().to_string().contains("status"));
        item.remove(STATUS);
        assert!(record_of(&item)
            .unwrap_err()
            .to_string()
            .contains("missing"));
        let mut item = record_item(&record).unwrap();
        item.remove(EXPIRES_AT);
        assert!(matches!(
            record_of(&item),
            Err(Unreadable::Missing(EXPIRES_AT))
        ));
    }
}
