//! A SpyCloud breach record: the typed fields the mapping reads, and every other field in the
//! order SpyCloud sent it (those become the sighting's data table).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::catalog::CatalogId;
use super::device::Device;
use super::time::Timestamp;

/// One record exactly as SpyCloud returned it, field order kept.
///
/// ```
/// use spycloud_relay::domain::{CatalogId, RawRecord, Timestamp};
///
/// let record: RawRecord = serde_json::from_str(
///     r#"{"source_id": "7", "severity": "20", "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#,
/// )?;
/// assert_eq!(record.source_id(), Some(CatalogId(7)));
/// assert_eq!(record.severity(), Some(20));
/// assert_eq!(record.published(), Some(Timestamp::parse("2024-03-01T00:00:00Z").unwrap()));
/// assert_eq!(record.0.keys().next().map(String::as_str), Some("source_id"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct RawRecord(pub Map<String, Value>);

/// Room for the fields of a typical record (about 20, infostealer records a few more): the map
/// is filled without growing, which halves the allocations of reading a page.
const TYPICAL_FIELDS: usize = 32;

impl<'de> Deserialize<'de> for RawRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;

        impl<'de> Visitor<'de> for Fields {
            type Value = RawRecord;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a breach record object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<RawRecord, A::Error> {
                let mut fields = Map::with_capacity(access.size_hint().unwrap_or(TYPICAL_FIELDS));
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    fields.insert(name, value);
                }
                Ok(RawRecord(fields))
            }
        }

        deserializer.deserialize_map(Fields)
    }
}

/// Fields that never go into the data table: they are mapped elsewhere or are noise.
pub const NOT_IN_DATA_TABLE: [&str; 9] = [
    "sighting",
    "infected_machine_id",
    "email_domain",
    "domain",
    "email_username",
    "document_id",
    "source_id",
    "spycloud_publish_date",
    "severity",
];

/// A breach record the mapping can use, typed from a [`RawRecord`]: the fields the mapping
/// reads are taken out, the others stay in `data`, in SpyCloud's order.
///
/// ```
/// use spycloud_relay::domain::{BreachRecord, CatalogId, RawRecord};
///
/// let raw: RawRecord = serde_json::from_str(r#"{
///     "document_id": "d-1", "source_id": 7, "severity": 25, "sighting": 3,
///     "email": "pat@example.com", "password_plaintext": "hunter2",
///     "spycloud_publish_date": "2024-03-01T00:00:00Z"
/// }"#)?;
/// let record = BreachRecord::try_from(raw)?;
/// assert_eq!(record.source_id, Some(CatalogId(7)));
/// assert_eq!((record.severity, record.sighting_count), (Some(25), 3));
/// assert_eq!(record.published.to_string(), "2024-03-01T00:00:00.000000Z");
/// let rest: Vec<&str> = record.data.keys().map(String::as_str).collect();
/// assert_eq!(rest, ["email", "password_plaintext"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BreachRecord {
    /// SpyCloud's id of the record.
    pub document_id: Option<String>,
    /// The breach catalog the record comes from.
    pub source_id: Option<CatalogId>,
    /// When SpyCloud published the record.
    pub published: Timestamp,
    /// SpyCloud's severity score, when given.
    pub severity: Option<u64>,
    /// How many times the record was seen; at least 1.
    pub sighting_count: u64,
    /// The infected machine, for infostealer records.
    pub infected_machine_id: Option<String>,
    /// The infected device the record names (infostealer records), its fields still in `data`.
    pub device: Option<Device>,
    /// Every other field, in SpyCloud's order.
    pub data: Map<String, Value>,
}

/// Why a record cannot become a sighting.
///
/// ```
/// use spycloud_relay::domain::{BreachRecord, InvalidRecord, RawRecord};
///
/// let undated: RawRecord = serde_json::from_str(r#"{"email": "pat@example.com"}"#)?;
/// let refused = BreachRecord::try_from(undated).unwrap_err();
/// assert_eq!(refused, InvalidRecord::PublishDate);
/// assert_eq!(refused.to_string(), "spycloud_publish_date is missing or not a date");
///
/// let odd: RawRecord = serde_json::from_str(
///     r#"{"severity": "high", "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#,
/// )?;
/// assert_eq!(BreachRecord::try_from(odd), Err(InvalidRecord::Field("severity")));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    /// `spycloud_publish_date` is absent or not a timestamp.
    #[error("spycloud_publish_date is missing or not a date")]
    PublishDate,
    /// A typed field holds a value of the wrong kind.
    #[error("{0} has an unexpected value")]
    Field(&'static str),
}

impl TryFrom<RawRecord> for BreachRecord {
    type Error = InvalidRecord;

    fn try_from(RawRecord(mut fields): RawRecord) -> Result<Self, Self::Error> {
        let published = match fields.get("spycloud_publish_date") {
            Some(Value::String(s)) => {
                Timestamp::parse(s).map_err(|_| InvalidRecord::PublishDate)?
            }
            _ => return Err(InvalidRecord::PublishDate),
        };
        let severity = optional(&fields, "severity", whole_number)?;
        let sighting_count = optional(&fields, "sighting", whole_number)?
            .filter(|&n| n > 0)
            .unwrap_or(1);
        let document_id = optional(&fields, "document_id", text)?;
        let infected_machine_id = optional(&fields, "infected_machine_id", text)?;
        let source_id = optional(&fields, "source_id", CatalogId::from_value)?;
        let device = Device::of(&fields, infected_machine_id.as_deref());
        fields.retain(|name, _| !NOT_IN_DATA_TABLE.contains(&name.as_str()));
        Ok(Self {
            document_id,
            source_id,
            published,
            severity,
            sighting_count,
            infected_machine_id,
            device,
            data: fields,
        })
    }
}

/// SpyCloud's severity score in the contract's bands: 0–2 low, 3–5 medium, above 5 high, and
/// unknown without a score. Sightings and the dashboard both read scores through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeverityBand {
    /// Above 5.
    High,
    /// 3–5.
    Medium,
    /// 0–2.
    Low,
    /// No score.
    Unknown,
}

impl SeverityBand {
    /// Every band, highest first (the dashboard's order).
    pub const ALL: [Self; 4] = [Self::High, Self::Medium, Self::Low, Self::Unknown];

    /// The band of a score.
    pub fn of(score: Option<u64>) -> Self {
        match score {
            None => Self::Unknown,
            Some(0..=2) => Self::Low,
            Some(3..=5) => Self::Medium,
            Some(_) => Self::High,
        }
    }

    /// The CTIM severity: `High`, `Medium`, `Low`, `Unknown`.
    pub fn label(self) -> &'static str {
        match self {
            Self::High => "High",
            Self::Medium => "Medium",
            Self::Low => "Low",
            Self::Unknown => "Unknown",
        }
    }

    /// The lower-case key the dashboard's charts use.
    pub fn key(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Unknown => "unknown",
        }
    }
}

impl RawRecord {
    /// The record's severity score, read as [`BreachRecord`] reads it (a number sent as a string
    /// counts); `None` when absent or not a whole number.
    pub fn severity(&self) -> Option<u64> {
        self.0.get("severity").and_then(whole_number)
    }

    /// A string field, when present and not empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// When SpyCloud published the record, if it says so readably.
    pub fn published(&self) -> Option<Timestamp> {
        self.text("spycloud_publish_date")
            .and_then(|s| Timestamp::parse(s).ok())
    }

    /// The catalog the record comes from, if it names one readably.
    pub fn source_id(&self) -> Option<CatalogId> {
        self.0.get("source_id").and_then(CatalogId::from_value)
    }
}

/// Reads an optional field: absent or null is `None`, a value `read` refuses is an error.
fn optional<T>(
    fields: &Map<String, Value>,
    name: &'static str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, InvalidRecord> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => read(value).map(Some).ok_or(InvalidRecord::Field(name)),
    }
}

/// A non-negative whole number, also when SpyCloud sends it as a string or as `5.0`.
fn whole_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string, or a number written as one (ids are sometimes numeric).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> RawRecord {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_record_is_read_from_an_object_only_and_keeps_the_last_of_a_repeated_field() {
        for not_an_object in ["[1]", "\"x\"", "1", "null"] {
            assert!(serde_json::from_str::<RawRecord>(not_an_object).is_err());
        }
        let record: RawRecord = serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(serde_json::to_string(&record).unwrap(), r#"{"b":3,"a":2}"#);
    }

    #[test]
    fn typed_fields_are_read_and_the_rest_kept_in_order() {
        let breach = BreachRecord::try_from(record(json!({
            "username": "bob",
            "document_id": "doc-1",
            "password": "hunter2",
            "source_id": 1234,
            "email_domain": "example.com",
            "spycloud_publish_date": "2020-05-01T00:00:00Z",
            "severity": 25,
            "sighting": 3,
            "domain": "example.com",
            "email_username": "bob",
            "infected_machine_id": "m-1",
            "email": "bob@example.com"
        })))
        .unwrap();
        assert_eq!(breach.document_id.as_deref(), Some("doc-1"));
        assert_eq!(breach.source_id, Some(CatalogId(1234)));
        assert_eq!(breach.severity, Some(25));
        assert_eq!(breach.sighting_count, 3);
        assert_eq!(breach.infected_machine_id.as_deref(), Some("m-1"));
        let names: Vec<_> = breach.data.keys().map(String::as_str).collect();
        assert_eq!(names, ["username", "password", "email"]);
    }

    #[test]
    fn sighting_count_is_one_when_absent_null_or_zero() {
        for sighting in [json!(null), json!(0)] {
            let breach = BreachRecord::try_from(record(json!({
                "spycloud_publish_date": "2020-05-01T00:00:00Z", "sighting": sighting
            })))
            .unwrap();
            assert_eq!(breach.sighting_count, 1);
        }
        let breach = BreachRecord::try_from(record(
            json!({"spycloud_publish_date": "2020-05-01T00:00:00Z"}),
        ))
        .unwrap();
        assert_eq!(
            (breach.sighting_count, breach.severity, breach.source_id),
            (1, None, None)
        );
    }

    // RULES R6
    #[test]
    fn lenient_about_numbers_sent_as_strings() {
        let breach = BreachRecord::try_from(record(json!({
            "spycloud_publish_date": "2020-05-01T00:00:00Z", "severity": "5", "source_id": "77"
        })))
        .unwrap();
        assert_eq!(
            (breach.severity, breach.source_id),
            (Some(5), Some(CatalogId(77)))
        );
    }

    // RULES R33
    #[test]
    fn severity_bands_and_raw_reads() {
        let bands: Vec<_> = [None, Some(0), Some(2), Some(3), Some(5), Some(6), Some(30)]
            .into_iter()
            .map(|score| SeverityBand::of(score).key())
            .collect();
        assert_eq!(
            bands,
            ["unknown", "low", "low", "medium", "medium", "high", "high"]
        );
        let raw = record(json!({
            "severity": "5", "source_id": "12", "email": "", "spycloud_publish_date": "2020-05-01T00:00:00Z"
        }));
        assert_eq!(raw.severity(), Some(5));
        assert_eq!(raw.source_id(), Some(CatalogId(12)));
        assert_eq!(raw.text("email"), None);
        assert_eq!(
            raw.published(),
            Some(Timestamp::parse("2020-05-01T00:00:00").unwrap())
        );
        for not_a_score in [json!("high"), json!(-1), json!(2.5), json!(null)] {
            assert_eq!(record(json!({"severity": not_a_score})).severity(), None);
        }
    }

    #[test]
    fn a_record_dated_in_any_of_spyclouds_three_forms_is_mapped() {
        for (date, text) in [
            ("2020-05-01T08:09:10Z", "2020-05-01T08:09:10.000000Z"),
            ("2020-05-01 08:09:10", "2020-05-01T08:09:10.000000Z"),
            ("2020-05-01", "2020-05-01T00:00:00.000000Z"),
        ] {
            let raw = record(json!({"spycloud_publish_date": date}));
            assert_eq!(
                raw.published().map(|t| t.to_string()).as_deref(),
                Some(text)
            );
            let breach = BreachRecord::try_from(raw).unwrap();
            assert_eq!(breach.published.to_string(), text, "{date}");
        }
    }

    #[test]
    fn records_that_cannot_be_mapped_say_why() {
        let no_date = record(json!({"severity": 2}));
        assert_eq!(
            BreachRecord::try_from(no_date),
            Err(InvalidRecord::PublishDate)
        );
        let bad_date = record(json!({"spycloud_publish_date": "soon"}));
        assert_eq!(
            BreachRecord::try_from(bad_date),
            Err(InvalidRecord::PublishDate)
        );
        let bad_severity =
            record(json!({"spycloud_publish_date": "2020-05-01T00:00:00Z", "severity": "high"}));
        assert_eq!(
            BreachRecord::try_from(bad_severity),
            Err(InvalidRecord::Field("severity"))
        );
        let bad_source =
            record(json!({"spycloud_publish_date": "2020-05-01T00:00:00Z", "source_id": [1]}));
        assert_eq!(
            BreachRecord::try_from(bad_source),
            Err(InvalidRecord::Field("source_id"))
        );
    }
}
