//! Values as DynamoDB items, derived from their serde form, so the item layout follows the
//! record's type and is written nowhere else: each field is one attribute under its own name;
//! strings are `S`, integers `N`, flags `BOOL`, absent optionals `NULL`, timestamps RFC 3339
//! strings in UTC (as chrono's serde writes them), lists `L` and nested values `M`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::store::Unreadable;

/// A stored item.
pub(super) type Item = HashMap<String, AttributeValue>;

/// `value`'s fields as attributes. `value` must serialise as a map (a struct).
pub(super) fn to_item(value: &impl Serialize) -> Result<Item, serde_json::Error> {
    match serde_json::to_value(value)? {
        Value::Object(fields) => Ok(fields
            .into_iter()
            .map(|(name, value)| (name, attribute(value)))
            .collect()),
        _ => Err(serde::ser::Error::custom(
            "an item is written from a struct",
        )),
    }
}

/// The value `item` holds, or what is wrong with it.
pub(super) fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, Unreadable> {
    let fields = item
        .iter()
        .map(|(name, value)| Ok((name.clone(), json(name, value)?)))
        .collect::<Result<Map<_, _>, Unreadable>>()?;
    Ok(serde_path_to_error::deserialize(Value::Object(fields))?)
}

fn attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(flag) => AttributeValue::Bool(flag),
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(text) => AttributeValue::S(text),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(attribute).collect()),
        Value::Object(fields) => AttributeValue::M(
            fields
                .into_iter()
                .map(|(name, value)| (name, attribute(value)))
                .collect(),
        ),
    }
}

fn json(name: &str, value: &AttributeValue) -> Result<Value, Unreadable> {
    Ok(match value {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::N(text) => {
            Value::Number(integer(text).ok_or_else(|| Unreadable::Number {
                name: name.to_owned(),
                value: text.clone(),
            })?)
        }
        AttributeValue::L(items) => Value::Array(
            items
                .iter()
                .map(|item| json(name, item))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(fields) => Value::Object(
            fields
                .iter()
                .map(|(field, value)| Ok((field.clone(), json(field, value)?)))
                .collect::<Result<_, Unreadable>>()?,
        ),
        _ => {
            return Err(Unreadable::AttributeType {
                name: name.to_owned(),
            })
        }
    })
}

/// A number attribute as JSON: every number a record holds is an integer (`i64` or `u64`).
fn integer(text: &str) -> Option<Number> {
    match text.parse::<i64>() {
        Ok(value) => Some(value.into()),
        Err(_) => text.parse::<u64>().ok().map(Number::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        text: String,
        small: i32,
        big: u64,
        negative: i64,
        flag: bool,
        absent: Option<String>,
        list: Vec<u8>,
        nested: Inner,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        name: String,
    }

    #[test]
    fn values_round_trip_through_items() {
        let sample = Sample {
            text: "é\u{0}".into(),
            small: 9,
            big: u64::MAX,
            negative: i64::MIN,
            flag: true,
            absent: None,
            list: vec![1, 2],
            nested: Inner { name: "n".into() },
        };
        let item = to_item(&sample).unwrap();
        assert_eq!(item["small"], AttributeValue::N("9".into()));
        assert_eq!(item["big"], AttributeValue::N(u64::MAX.to_string()));
        assert_eq!(item["flag"], AttributeValue::Bool(true));
        assert_eq!(item["absent"], AttributeValue::Null(true));
        assert_eq!(item["text"], AttributeValue::S("é\u{0}".into()));
        assert_eq!(from_item::<Sample>(&item).unwrap(), sample);
    }

    #[test]
    fn what_is_wrong_names_the_attribute() {
        let sample = Sample {
            text: String::new(),
            small: 0,
            big: 0,
            negative: 0,
            flag: false,
            absent: None,
            list: vec![],
            nested: Inner { name: "n".into() },
        };
        let mut item = to_item(&sample).unwrap();
        item.insert("small".into(), AttributeValue::S("nine".into()));
        let error = from_item::<Sample>(&item).unwrap_err();
        assert!(error.to_string().contains("small"), "{error}");
        item.insert("small".into(), AttributeValue::N("1.5".into()));
        let error = from_item::<Sample>(&item).unwrap_err();
        assert!(
            matches!(&error, Unreadable::Number { name, .. } if name == "small"),
            "{error}"
        );
        item.insert("small".into(), AttributeValue::Ss(vec!["a".into()]));
        let error = from_item::<Sample>(&item).unwrap_err();
        assert!(matches!(error, Unreadable::AttributeType { .. }), "{error}");
        assert!(to_item(&"not a struct").is_err());
    }
}
