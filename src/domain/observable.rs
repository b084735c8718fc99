//! The observe request body: a JSON array of `{"type", "value"}` objects, read the way the
//! Python relay's schema read it (and with its error shape, `{"<index>": {"<field>": [...]}}`).
//! It is read before any token is checked, so every step is linear in the body's size.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::ctim::Observable;
use super::error::Error;

/// The `email` observable type's name.
pub const EMAIL: &str = "email";

/// Reads an observe body: the observables with their type lower-cased, exact duplicates
/// dropped, in order of first appearance.
///
/// # Errors
/// An invalid payload ([`Error::InvalidInput`]) when the body is not JSON, not an array, or an item lacks a
/// non-blank string `type` or `value` (other fields are ignored).
pub fn parse_observables(body: &[u8]) -> Result<Vec<Observable>, Error> {
    let invalid = |detail: Value| Error::invalid_payload(format!("{detail}."));
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        _ => return Err(invalid(json!({"_schema": ["Invalid input type."]}))),
    };
    let mut problems = Map::new();
    let mut observables = Vec::with_capacity(items.len());
    // Duplicates are found by hash: a body of 26 000 distinct observables costs 26 000 look-ups,
    // not 26 000 squared over two.
    let mut seen = HashSet::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match read_item(item) {
            Ok(observable) => {
                if seen.insert(observable.clone()) {
                    observables.push(observable);
                }
            }
            Err(problem) => {
                problems.insert(index.to_string(), problem);
            }
        }
    }
    if problems.is_empty() {
        Ok(observables)
    } else {
        Err(invalid(Value::Object(problems)))
    }
}

fn read_item(item: &Value) -> Result<Observable, Value> {
    let Value::Object(fields) = item else {
        return Err(json!({"_schema": ["Invalid input type."]}));
    };
    let mut problems = Map::new();
    let mut field = |name: &str| match fields.get(name) {
        None => {
            problems.insert(name.to_owned(), json!(["Missing data for required field."]));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            problems.insert(name.to_owned(), json!(["Field may not be blank."]));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.insert(name.to_owned(), json!(["Not a valid string."]));
            None
        }
    };
    let (kind, value) = (field("type"), field("value"));
    match (kind, value) {
        (Some(kind), Some(value)) => Ok(Observable {
            value: value.into(),
            kind: kind.to_lowercase().into(),
        }),
        _ => Err(Value::Object(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<Observable>, String> {
        parse_observables(body.as_bytes()).map_err(|e| e.message())
    }

    fn obs(kind: &str, value: &str) -> Observable {
        Observable {
            value: value.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn types_lower_cased_duplicates_dropped_order_kept() {
        let body = r#"[{"type":"EMAIL","value":"b@x.com"},{"type":"ip","value":"1.1.1.1","extra":1},
                       {"type":"email","value":"a@x.com"},{"type":"Email","value":"b@x.com"}]"#;
        assert_eq!(
            parse(body).unwrap(),
            [
                obs("email", "b@x.com"),
                obs("ip", "1.1.1.1"),
                obs("email", "a@x.com")
            ]
        );
        assert_eq!(parse("[]").unwrap(), []);
    }

    #[test]
    fn values_keep_their_case() {
        assert_eq!(
            parse(r#"[{"type":"email","value":"Bob@X.com"}]"#).unwrap(),
            [obs("email", "Bob@X.com")]
        );
    }

    // RULES R3
    #[test]
    fn anything_else_is_an_invalid_argument_that_says_where() {
        let cases = [
            ("", r#"{"_schema":["Invalid input type."]}"#),
            ("not json", r#"{"_schema":["Invalid input type."]}"#),
            (
                r#"{"type":"email","value":"a@x.com"}"#,
                r#"{"_schema":["Invalid input type."]}"#,
            ),
            (r#"[1]"#, r#"{"0":{"_schema":["Invalid input type."]}}"#),
            (
                r#"[{"type":"email"}]"#,
                r#"{"0":{"value":["Missing data for required field."]}}"#,
            ),
            (
                r#"[{"type":" ","value":"a"}]"#,
                r#"{"0":{"type":["Field may not be blank."]}}"#,
            ),
            (
                r#"[{"type":"email","value":1}]"#,
                r#"{"0":{"value":["Not a valid string."]}}"#,
            ),
        ];
        for (body, detail) in cases {
            assert_eq!(
                parse(body).unwrap_err(),
                format!("Invalid JSON payload received. {detail}."),
                "{body}"
            );
        }
    }

    #[test]
    fn many_distinct_observables_are_all_kept_in_order_and_repeats_dropped() {
        let items: Vec<String> = (0..30_000)
            .map(|n| format!(r#"{{"type":"email","value":"user{}@x.com"}}"#, n % 26_000))
            .collect();
        let parsed = parse(&format!("[{}]", items.join(","))).unwrap();
        assert_eq!(parsed.len(), 26_000);
        assert_eq!(parsed[0], obs("email", "user0@x.com"));
        assert_eq!(parsed[25_999], obs("email", "user25999@x.com"));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&body).is_err());
    }
}
