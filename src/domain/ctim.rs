//! The CTIM entities SecureX reads, and the envelope they travel in. Field order follows the
//! Python relay's documents, so a response reads the same side by side.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::time::Timestamp;

/// The CTIM schema version of every entity.
pub const SCHEMA_VERSION: &str = "1.0.17";
/// How the relay names SpyCloud as a source and producer.
pub const SOURCE_NAME: &str = "Spycloud";

/// CTIM's `ShortString`: at most 1024 characters (an indicator's `title`).
pub(crate) const SHORT_STRING: usize = 1024;
/// CTIM's `MedString`: at most 2048 characters (an indicator's `short_description`).
pub(crate) const MED_STRING: usize = 2048;
/// CTIM's `Markdown`: at most 5000 characters (every `description`).
pub(crate) const MARKDOWN: usize = 5000;

/// `text` within `limit` characters as CTIM counts them (UTF-16 code units, as JavaScript's
/// `length`): whole when it fits, else its longest prefix that leaves room for a closing `…`,
/// never cut inside a character. Every length-limited text the relay writes goes through here.
pub(crate) fn within_limit(mut text: String, limit: usize) -> String {
    // A character takes no more UTF-16 code units than UTF-8 bytes: most texts stop here.
    if text.len() <= limit || text.encode_utf16().count() <= limit {
        return text;
    }
    let room = limit.saturating_sub(1);
    let mut units = 0;
    let end = text
        .char_indices()
        .find(|&(_, c)| {
            units += c.len_utf16();
            units > room
        })
        .map_or(text.len(), |(at, _)| at);
    text.truncate(end);
    text.push('…');
    text
}

/// `url` when it is what CTIM's URL fields hold: an absolute `http` or `https` URL with a host,
/// that parses as an RFC 3986 URI. Every URL the relay writes goes through here.
pub(crate) fn web_url(url: String) -> Option<String> {
    let uri = fluent_uri::Uri::parse(url.as_str()).ok()?;
    let scheme = uri.scheme().as_str();
    let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let host = uri.authority().is_some_and(|a| !a.host().is_empty());
    (web && host).then_some(url)
}

/// An observable as SecureX sends and receives it. Cheap to clone: every sighting of an observable
/// repeats it three times.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Observable {
    /// The observable's value, as given.
    pub value: Arc<str>,
    /// The observable's type, lower-cased.
    #[serde(rename = "type")]
    pub kind: Arc<str>,
}

impl Observable {
    /// An observable of type `kind` (compared case-insensitively, as SecureX's are) and `value`.
    ///
    /// ```
    /// use spycloud_relay::domain::Observable;
    ///
    /// let ip = Observable::new("IP", "203.0.113.77");
    /// assert_eq!((&*ip.kind, &*ip.value), ("ip", "203.0.113.77"));
    /// ```
    pub fn new(kind: &str, value: &str) -> Self {
        Self {
            value: value.into(),
            kind: kind.to_lowercase().into(),
        }
    }
}

/// When a sighting was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ObservedTime {
    /// Start of the observation.
    pub start_time: Timestamp,
    /// End of the observation.
    pub end_time: Timestamp,
}

/// From when an indicator holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ValidTime {
    /// Start of validity; absent when SpyCloud gave no publish date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
}

/// A link from the observable to something else, e.g. the domain it leaked from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relation {
    /// Who asserts the relation.
    pub origin: &'static str,
    /// The observable the relation starts from.
    pub source: Observable,
    /// The related observable.
    pub related: Observable,
    /// What the relation is.
    pub relation: &'static str,
}

/// What a sighting targeted: the email account, and for an infostealer record the infected
/// device (`endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The kind of target.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The target's observables.
    pub observables: Vec<Observable>,
    /// When the target was observed.
    pub observed_time: ObservedTime,
    /// The operating system of an `endpoint` target, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
}

/// A column of a sighting's data table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The field name.
    pub name: String,
    /// Always `string`: SecureX shows values as text.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether the column's cells are never null (CTIM's default); written only when false,
    /// for a column whose cell is null.
    #[serde(skip_serializing_if = "is_true")]
    pub required: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A sighting's data table: one row of the record's other fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataTable {
    /// One column per field.
    pub columns: Vec<Column>,
    /// One row with the values as SpyCloud sent them.
    pub rows: Vec<Vec<Value>>,
}

/// A reference to more information outside SecureX.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalReference {
    /// Always `Spycloud`.
    pub source_name: &'static str,
    /// What the reference is about.
    pub description: String,
    /// Where it is.
    pub url: String,
    /// The id at the source, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A CTIM sighting: the looked-up observable seen in one breach record.
///
/// ```
/// use spycloud_relay::domain::{Catalog, Findings, MappingOptions, Observable, ObservableFindings, RawRecord};
///
/// let record: RawRecord = serde_json::from_str(r#"{
///     "document_id": "d-1", "source_id": 7, "severity": 25, "email": "pat@acme.test",
///     "username": "pat", "spycloud_publish_date": "2024-03-01T00:00:00Z"
/// }"#)?;
/// let catalog: Catalog = serde_json::from_str(
///     r#"{"id": 7, "uuid": "0b1c", "title": "Example Forum", "site": "forum.example"}"#,
/// )?;
/// let acme = Observable::new("domain", "acme.test");
/// let findings = Findings {
///     observables: vec![ObservableFindings {
///         observable: acme.clone(),
///         records: vec![record.try_into()?],
///         catalogs: vec![catalog],
///         warnings: Vec::new(),
///     }],
///     ..Findings::default()
/// };
/// let bundle = findings.to_ctim(&MappingOptions::default());
///
/// let sighting = &bundle.sightings[0];
/// assert!(sighting.id.starts_with("transient:sighting-"));
/// assert_eq!((sighting.severity, sighting.count), ("High", 1));
/// assert_eq!(sighting.external_ids, ["d-1", "7"]);
/// // The domain looked up, and the account the record names.
/// assert_eq!(sighting.targets[0].observables, [acme, Observable::new("email", "pat@acme.test")]);
/// assert_eq!(&*sighting.relations[0].related.value, "forum.example"); // Leaked_From
/// let columns: Vec<_> = sighting.data.columns.iter().map(|c| c.name.as_str()).collect();
/// assert_eq!(columns, ["email", "username"]);
/// let portal = "https://portal.spycloud.com/breach/catalog/0b1c";
/// assert_eq!(sighting.source_uri.as_deref(), Some(portal));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sighting {
    /// `transient:sighting-<uuid>`.
    pub id: String,
    /// How often the record was seen.
    pub count: u64,
    /// The looked-up observable, and the record's email for other types.
    pub observables: Vec<Observable>,
    /// When SpyCloud published the record.
    pub observed_time: ObservedTime,
    /// The domain it leaked from, when known.
    pub relations: Vec<Relation>,
    /// document_id, source_id, infected_machine_id, those present.
    pub external_ids: Vec<String>,
    /// `Low`, `Medium`, `High` or `Unknown`.
    pub severity: &'static str,
    /// The target: an email account, with the sighting's observables.
    pub targets: Vec<Target>,
    /// The record's other fields.
    pub data: DataTable,
    /// `Present in <catalog title>`.
    pub description: String,
    /// `sighting`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// CTIM schema version.
    pub schema_version: &'static str,
    /// `Spycloud`.
    pub source: &'static str,
    /// `High`.
    pub confidence: &'static str,
    /// `Reported to Spycloud`.
    pub title: &'static str,
    /// Always false.
    pub internal: bool,
    /// The catalog in the SpyCloud portal, when the catalog is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<String>,
}

/// A CTIM indicator: one breach catalog. Its id depends on the catalog id alone, so every
/// answer names a breach alike.
///
/// ```
/// use spycloud_relay::domain::{
///     Catalog, Findings, MappingOptions, Observable, ObservableFindings, RawRecord, Timestamp,
/// };
///
/// let catalog: Catalog = serde_json::from_str(r#"{
///     "id": 7, "uuid": "0b1c", "title": "Example Forum", "description": "A forum's users",
///     "confidence": 2, "spycloud_publish_date": "2024-02-01T00:00:00Z",
///     "assets": {"email": 100, "password": 80}
/// }"#)?;
/// let record: RawRecord =
///     serde_json::from_str(r#"{"source_id": 7, "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#)?;
/// let findings = Findings {
///     observables: vec![ObservableFindings {
///         observable: Observable::new("email", "pat@example.com"),
///         records: vec![record.try_into()?],
///         catalogs: vec![catalog],
///         warnings: Vec::new(),
///     }],
///     ..Findings::default()
/// };
/// let bundle = findings.to_ctim(&MappingOptions::default());
///
/// let indicator = &bundle.indicators[0];
/// assert_eq!(indicator.id, "transient:indicator-d8ca2052-b949-5309-beeb-9ae3d4214b57");
/// assert_eq!((indicator.confidence, indicator.title.as_deref()), ("Medium", Some("Example Forum")));
/// assert_eq!(indicator.external_ids, ["7", "0b1c"]);
/// let portal = &indicator.external_references[0];
/// assert_eq!(portal.url, "https://portal.spycloud.com/breach/catalog/0b1c");
/// assert_eq!(portal.description, "A forum's users");
/// assert_eq!(indicator.tags, ["email", "password"]);
/// assert_eq!(indicator.valid_time.start_time, Some(Timestamp::parse("2024-02-01T00:00:00Z")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicator {
    /// `transient:indicator-<uuid5 of the catalog id>`.
    pub id: String,
    /// From the catalog's publish date.
    pub valid_time: ValidTime,
    /// From the catalog's confidence.
    pub confidence: &'static str,
    /// The catalog title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The catalog description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The catalog title again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    /// Catalog id and uuid.
    pub external_ids: Vec<String>,
    /// The breached site and the portal page.
    pub external_references: Vec<ExternalReference>,
    /// The kinds of assets in the breach.
    pub tags: Vec<String>,
    /// `indicator`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// CTIM schema version.
    pub schema_version: &'static str,
    /// `Spycloud`.
    pub producer: &'static str,
}

/// A CTIM relationship: a sighting is a sighting of an indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relationship {
    /// `transient:relationship-<uuid>`.
    pub id: String,
    /// `relationship`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// CTIM schema version.
    pub schema_version: &'static str,
    /// `sighting-of`.
    pub relationship_type: &'static str,
    /// The sighting id.
    pub source_ref: String,
    /// The indicator id.
    pub target_ref: String,
    /// `Spycloud`.
    pub source: &'static str,
}

/// Whether an error ends the request or rides along with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorType {
    /// The request ended here.
    Fatal,
    /// Something was left out; the rest stands.
    Warning,
}

/// One entry of the `errors` list SecureX reads.
///
/// ```
/// use spycloud_relay::Error;
/// use serde_json::json;
///
/// let doc = Error::Deadline { secs: 25 }.to_doc();
/// assert_eq!(serde_json::to_value(&doc)?, json!({
///     "type": "fatal",
///     "code": "unknown",
///     "message": "SpyCloud did not answer everything within the relay's 25 s deadline.",
/// }));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDoc {
    /// Fatal or warning.
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// Machine-readable code, e.g. `authorization error`.
    pub code: String,
    /// What happened, for a person.
    pub message: String,
}

/// A list of entities with its length, the way SecureX wants it.
#[derive(Debug, Serialize)]
struct Docs<'a, T> {
    count: usize,
    docs: &'a [T],
}

impl<'a, T> Docs<'a, T> {
    fn of(docs: &'a [T]) -> Option<Self> {
        (!docs.is_empty()).then_some(Self {
            count: docs.len(),
            docs,
        })
    }
}

/// The `data` of the envelope: each entity list only when non-empty.
#[derive(Debug, Serialize)]
struct Data<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sightings: Option<Docs<'a, Sighting>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    indicators: Option<Docs<'a, Indicator>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relationships: Option<Docs<'a, Relationship>>,
}

/// The SecureX envelope, borrowed from a bundle: serialized once, straight to bytes.
#[derive(Debug, Serialize)]
struct Envelope<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data<'a>>,
    #[serde(skip_serializing_if = "<[ErrorDoc]>::is_empty")]
    errors: &'a [ErrorDoc],
}

/// Everything one observe request found, before it is put in the envelope.
///
/// ```
/// use spycloud_relay::Error;
/// use spycloud_relay::domain::Bundle;
///
/// let mut bundle = Bundle::default();
/// assert_eq!(bundle.fatal_code(), None);
/// // What came before a fatal error stands; the fatal error comes last.
/// bundle.append(Bundle::with_error(Error::NotFound.to_doc()));
/// assert_eq!(bundle.fatal_code(), Some("not found"));
/// assert_eq!(bundle.errors[0].message, "The Spycloud not found.");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bundle {
    /// One per breach record.
    pub sightings: Vec<Sighting>,
    /// One per distinct catalog of the whole answer, in order of first appearance.
    pub indicators: Vec<Indicator>,
    /// One per sighting whose catalog was found.
    pub relationships: Vec<Relationship>,
    /// Warnings, then at most one fatal error, last.
    pub errors: Vec<ErrorDoc>,
}

impl Bundle {
    /// A bundle holding only `error`.
    pub fn with_error(error: ErrorDoc) -> Self {
        Self {
            errors: vec![error],
            ..Self::default()
        }
    }

    /// Adds `other`'s entities and errors after this bundle's; an indicator already here is not
    /// added again (a CTIM id is unique in an answer, and relationships name indicators by id).
    pub fn append(&mut self, mut other: Bundle) {
        self.sightings.append(&mut other.sightings);
        let known: HashSet<&str> = self.indicators.iter().map(|i| i.id.as_str()).collect();
        let mut added = HashSet::new();
        other
            .indicators
            .retain(|i| !known.contains(i.id.as_str()) && added.insert(i.id.clone()));
        self.indicators.append(&mut other.indicators);
        self.relationships.append(&mut other.relationships);
        self.errors.append(&mut other.errors);
    }

    /// The fatal error that ended the request, if one did.
    pub fn fatal(&self) -> Option<&ErrorDoc> {
        self.errors.iter().find(|e| e.kind == ErrorType::Fatal)
    }

    /// The code of the fatal error that ended the request, if one did.
    pub fn fatal_code(&self) -> Option<&str> {
        self.fatal().map(|e| e.code.as_str())
    }

    /// The SecureX envelope as a JSON value (see the `Serialize` impl for the rules).
    ///
    /// # Errors
    /// A value serde_json cannot represent (none the relay makes); never a silent `null`.
    ///
    /// ```
    /// use spycloud_relay::Error;
    /// use spycloud_relay::domain::{
    ///     Bundle, Findings, MappingOptions, Observable, ObservableFindings, RawRecord,
    /// };
    /// use serde_json::json;
    ///
    /// // Each entity list sits in `data` with its count, only when it is not empty.
    /// let record: RawRecord = serde_json::from_str(
    ///     r#"{"source_id": 7, "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#,
    /// )?;
    /// let findings = Findings {
    ///     observables: vec![ObservableFindings {
    ///         observable: Observable::new("email", "pat@example.com"),
    ///         records: vec![record.try_into()?],
    ///         catalogs: Vec::new(),
    ///         warnings: Vec::new(),
    ///     }],
    ///     ..Findings::default()
    /// };
    /// let found = findings.to_ctim(&MappingOptions::default());
    /// let envelope = found.into_response()?;
    /// assert_eq!(envelope["data"]["sightings"]["count"], 1);
    /// assert_eq!(envelope["data"]["sightings"]["docs"][0]["type"], "sighting");
    /// assert!(envelope["data"].get("indicators").is_none()); // catalog 7 is unknown:
    /// assert_eq!(envelope["errors"][0]["type"], "warning");
    ///
    /// // After a fatal error with nothing found, no `data` at all.
    /// assert_eq!(
    ///     Bundle::with_error(Error::RateLimited.to_doc()).into_response()?,
    ///     json!({"errors": [{
    ///         "type": "fatal",
    ///         "code": "too many requests",
    ///         "message": "Too many requests have been made to Spycloud. Please, try again later.",
    ///     }]})
    /// );
    /// assert_eq!(Bundle::default().into_response()?, json!({"data": {}}));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_response(self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(&self)
    }
}

/// Serializes as the SecureX envelope: `data` holds each non-empty entity list; `errors` sits
/// beside it when there are any. After a fatal error an empty `data` is left out.
impl Serialize for Bundle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let data = Data {
            sightings: Docs::of(&self.sightings),
            indicators: Docs::of(&self.indicators),
            relationships: Docs::of(&self.relationships),
        };
        let empty =
            data.sightings.is_none() && data.indicators.is_none() && data.relationships.is_none();
        let envelope = Envelope {
            data: (!(self.fatal_code().is_some() && empty)).then_some(data),
            errors: &self.errors,
        };
        envelope.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn warning() -> ErrorDoc {
        ErrorDoc {
            kind: ErrorType::Warning,
            code: "w".into(),
            message: "m".into(),
        }
    }

    fn fatal() -> ErrorDoc {
        ErrorDoc {
            kind: ErrorType::Fatal,
            code: "f".into(),
            message: "m".into(),
        }
    }

    fn units(text: &str) -> usize {
        text.encode_utf16().count()
    }

    #[test]
    fn a_text_within_its_limit_is_kept_whole() {
        for text in [
            "",
            "short",
            "é".repeat(10).as_str(),
            "😀".repeat(512).as_str(),
        ] {
            assert_eq!(within_limit(text.to_owned(), SHORT_STRING), text);
        }
        // 1024 UTF-16 code units in 4096 bytes: within a ShortString.
        assert_eq!(units(&"😀".repeat(512)), SHORT_STRING);
    }

    #[test]
    fn a_longer_text_is_cut_in_utf16_code_units_never_inside_a_character_and_ends_with_an_ellipsis()
    {
        for (text, limit) in [
            ("a".repeat(3000), SHORT_STRING),
            ("a".repeat(12_000), MARKDOWN),
            ("é".repeat(3000), MED_STRING),
            // Astral-plane characters are two code units each: 513 of them are 1026 units.
            ("😀".repeat(513), SHORT_STRING),
            (format!("a{}", "😀".repeat(600)), SHORT_STRING),
            (format!("{}😀", "a".repeat(1023)), SHORT_STRING),
        ] {
            let cut = within_limit(text.clone(), limit);
            assert!(units(&cut) <= limit, "{} > {limit}", units(&cut));
            assert!(units(&cut) >= limit - 2, "{} cut too short", units(&cut));
            let kept = cut.strip_suffix('…').expect("ends with an ellipsis");
            assert!(text.starts_with(kept));
            assert!(!kept.contains('\u{FFFD}'));
        }
        assert_eq!(within_limit("😀😀😀".to_owned(), 4), "😀…");
        assert_eq!(within_limit("abcde".to_owned(), 4), "abc…");
        assert_eq!(within_limit("abcd".to_owned(), 4), "abcd");
    }

    #[test]
    fn nothing_found_is_empty_data() {
        assert_eq!(
            Bundle::default().into_response().unwrap(),
            json!({"data": {}})
        );
    }

    #[test]
    fn warnings_ride_along_with_data_even_when_empty() {
        let bundle = Bundle {
            errors: vec![warning()],
            ..Bundle::default()
        };
        assert_eq!(
            bundle.into_response().unwrap(),
            json!({"data": {}, "errors": [{"type": "warning", "code": "w", "message": "m"}]})
        );
    }

    #[test]
    fn a_fatal_error_drops_empty_data() {
        let bundle = Bundle {
            errors: vec![warning(), fatal()],
            ..Bundle::default()
        };
        let response = bundle.into_response().unwrap();
        assert_eq!(response.get("data"), None);
        assert_eq!(response["errors"][1]["type"], "fatal");
    }

    fn indicator(id: &str) -> Indicator {
        Indicator {
            id: id.into(),
            valid_time: ValidTime { start_time: None },
            confidence: "Low",
            title: None,
            description: None,
            short_description: None,
            external_ids: Vec::new(),
            external_references: Vec::new(),
            tags: Vec::new(),
            kind: "indicator",
            schema_version: SCHEMA_VERSION,
            producer: SOURCE_NAME,
        }
    }

    #[test]
    fn an_answer_holds_each_indicator_once_in_order_of_first_appearance() {
        let of = |ids: &[&str]| Bundle {
            indicators: ids.iter().map(|id| indicator(id)).collect(),
            ..Bundle::default()
        };
        let mut bundle = of(&["a", "b"]);
        bundle.append(of(&["c", "b", "a"]));
        bundle.append(of(&["d", "c"]));
        let ids: Vec<_> = bundle.indicators.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(
            bundle.into_response().unwrap()["data"]["indicators"]["count"],
            4
        );
    }

    #[test]
    fn relationship_keys_only_when_present() {
        let relationship = Relationship {
            id: "r".into(),
            kind: "relationship",
            schema_version: SCHEMA_VERSION,
            relationship_type: "sighting-of",
            source_ref: "s".into(),
            target_ref: "i".into(),
            source: SOURCE_NAME,
        };
        let bundle = Bundle {
            relationships: vec![relationship],
            errors: vec![fatal()],
            ..Bundle::default()
        };
        let response = bundle.into_response().unwrap();
        assert_eq!(response["data"]["relationships"]["count"], 1);
        assert_eq!(response["data"].as_object().unwrap().len(), 1);
    }
}
