//! The CTIM rules every answer the suite produces is held to (threatgrid/ctim 1.3.28, as the
//! contract's "Every answer is valid CTIM" words them): the snapshot helper and the end-to-end
//! helpers pass each answer through [`assert_valid`], so a rule broken anywhere fails the suite.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// CTIM's `HighMedLow`: a sighting's and an indicator's `confidence`.
const HIGH_MED_LOW: [&str; 6] = ["Info", "Low", "Medium", "High", "None", "Unknown"];
/// CTIM's `Severity`: a sighting's `severity`.
const SEVERITY: [&str; 7] = [
    "Info", "Low", "Medium", "High", "Critical", "None", "Unknown",
];
/// The CTIM observable types the relay writes (lookups, the record's email, the leaked-from
/// site, the infected device).
const OBSERVABLE_TYPES: [&str; 7] = [
    "email",
    "domain",
    "ip",
    "ipv6",
    "user",
    "hostname",
    "mac_address",
];
/// CTIM's string limits, in UTF-16 code units: ShortString, MedString, Markdown.
const LIMITS: [(&str, usize); 3] = [
    ("title", 1024),
    ("short_description", 2048),
    ("description", 5000),
];

/// Panics, naming every broken rule, unless each SecureX answer in `value` is valid CTIM.
/// `value` may be one answer (`{"data": ..., "errors": ...}`) or hold answers anywhere inside
/// (a snapshot of several): each object with a `data` object is checked.
pub fn assert_valid(value: &Value) {
    let problems = problems(value);
    assert!(
        problems.is_empty(),
        "not valid CTIM:\n  {}\n{value:#}",
        problems.join("\n  ")
    );
}

/// What [`assert_valid`] finds wrong, one line per broken rule.
pub fn problems(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, &mut found);
    found
}

fn walk(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => match object.get("data") {
            Some(Value::Object(data)) if is_bundle(data) => check_bundle(data, found),
            _ => object.values().for_each(|child| walk(child, found)),
        },
        Value::Array(items) => items.iter().for_each(|child| walk(child, found)),
        _ => {}
    }
}

fn is_bundle(data: &Map<String, Value>) -> bool {
    data.is_empty()
        || ["sightings", "indicators", "relationships"]
            .iter()
            .any(|key| data.contains_key(*key))
}

fn docs<'a>(data: &'a Map<String, Value>, key: &str, found: &mut Vec<String>) -> &'a [Value] {
    let Some(list) = data.get(key) else {
        return &[];
    };
    let docs = list["docs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if docs.is_empty() {
        found.push(format!("{key}: present but without docs"));
    }
    if list["count"].as_u64() != Some(docs.len() as u64) {
        found.push(format!(
            "{key}: count {} for {} docs",
            list["count"],
            docs.len()
        ));
    }
    docs
}

fn check_bundle(data: &Map<String, Value>, found: &mut Vec<String>) {
    let sightings = docs(data, "sightings", found);
    let indicators = docs(data, "indicators", found);
    let relationships = docs(data, "relationships", found);
    let mut ids = HashSet::new();
    for doc in sightings.iter().chain(indicators).chain(relationships) {
        match doc["id"].as_str() {
            Some(id) if ids.insert(id) => {}
            Some(id) => found.push(format!("id {id} twice in one answer")),
            None => found.push(format!("a document without an id: {doc}")),
        }
        check_lengths(doc, found);
    }
    let ids_of = |list: &[Value]| -> HashSet<String> {
        list.iter()
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect()
    };
    let (sighting_ids, indicator_ids) = (ids_of(sightings), ids_of(indicators));
    for relationship in relationships {
        for (key, among) in [
            ("source_ref", &sighting_ids),
            ("target_ref", &indicator_ids),
        ] {
            let reference = relationship[key].as_str().unwrap_or_default();
            if !among.contains(reference) {
                found.push(format!(
                    "relationship {}: {key} {reference} is no document of the answer",
                    relationship["id"]
                ));
            }
        }
    }
    for sighting in sightings {
        check_sighting(sighting, found);
    }
    for indicator in indicators {
        vocabulary(&indicator["confidence"], &HIGH_MED_LOW, "confidence", found);
        for reference in indicator["external_references"]
            .as_array()
            .into_iter()
            .flatten()
        {
            check_lengths(reference, found);
            check_url(&reference["url"], "external_references url", found);
        }
    }
}

fn check_sighting(sighting: &Value, found: &mut Vec<String>) {
    vocabulary(&sighting["confidence"], &HIGH_MED_LOW, "confidence", found);
    vocabulary(&sighting["severity"], &SEVERITY, "severity", found);
    if let Some(uri) = sighting.get("source_uri") {
        check_url(uri, "source_uri", found);
    }
    let mut observables: Vec<&Value> = Vec::new();
    observables.extend(sighting["observables"].as_array().into_iter().flatten());
    for target in sighting["targets"].as_array().into_iter().flatten() {
        observables.extend(target["observables"].as_array().into_iter().flatten());
    }
    for relation in sighting["relations"].as_array().into_iter().flatten() {
        observables.push(&relation["source"]);
        observables.push(&relation["related"]);
    }
    for observable in observables {
        vocabulary(
            &observable["type"],
            &OBSERVABLE_TYPES,
            "observable type",
            found,
        );
        if observable["value"].as_str().is_none_or(str::is_empty) {
            found.push(format!("an observable without a value: {observable}"));
        }
    }
    let table = &sighting["data"];
    let columns = table["columns"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for row in table["rows"].as_array().into_iter().flatten() {
        let cells = row.as_array().map(Vec::as_slice).unwrap_or_default();
        if cells.len() != columns.len() {
            found.push(format!(
                "a data row of {} cells for {} columns",
                cells.len(),
                columns.len()
            ));
        }
        for (column, cell) in columns.iter().zip(cells) {
            let required = column.get("required") != Some(&Value::Bool(false));
            if required && cell.is_null() {
                found.push(format!("null in the required column {}", column["name"]));
            }
        }
    }
}

fn check_lengths(doc: &Value, found: &mut Vec<String>) {
    for (field, limit) in LIMITS {
        if let Some(text) = doc[field].as_str() {
            let units = text.encode_utf16().count();
            if units > limit {
                found.push(format!(
                    "{field} of {units} UTF-16 code units, over {limit}"
                ));
            }
        }
    }
}

fn check_url(url: &Value, what: &str, found: &mut Vec<String>) {
    let Some(text) = url.as_str() else {
        found.push(format!("{what} {url} is not a string"));
        return;
    };
    let web = fluent_uri::Uri::parse(text).is_ok_and(|uri| {
        let scheme = uri.scheme().as_str().to_ascii_lowercase();
        (scheme == "http" || scheme == "https")
            && uri.authority().is_some_and(|a| !a.host().is_empty())
    });
    if !web {
        found.push(format!("{what} {text:?} is not an absolute http(s) URI"));
    }
}

fn vocabulary(value: &Value, allowed: &[&str], what: &str, found: &mut Vec<String>) {
    if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
        found.push(format!("{what} {value} is not one of {allowed:?}"));
    }
}
