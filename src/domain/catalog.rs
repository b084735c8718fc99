//! A SpyCloud breach catalog entry: what a breach was, as the indicator tells it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::time::Timestamp;

/// The id of a breach catalog (a record's `source_id`).
///
/// ```
/// use spycloud_relay::domain::CatalogId;
/// use serde_json::json;
///
/// assert_eq!(CatalogId::from_value(&json!(" 36512")), Some(CatalogId(36512)));
/// assert_eq!(CatalogId::from_value(&json!(-1)), None);
/// assert_eq!(CatalogId(36512).to_string(), "36512");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CatalogId(pub u64);

impl CatalogId {
    /// Reads an id SpyCloud sent as a number or as a string of digits.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_u64().map(Self),
            Value::String(s) => s.trim().parse().ok().map(Self),
            _ => None,
        }
    }
}

impl fmt::Display for CatalogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for CatalogId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for CatalogId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(&value)
            .ok_or_else(|| serde::de::Error::custom(format!("{value} is not a catalog id")))
    }
}

/// A breach catalog entry. Every field but `id` may be missing: SpyCloud's data is not always
/// complete, and a missing field leaves its CTIM field out rather than failing the lookup.
/// It serializes to JSON it reads back as itself (the shared catalog cache stores it so).
///
/// ```
/// use spycloud_relay::domain::{Catalog, CatalogId};
///
/// let catalog: Catalog = serde_json::from_str(r#"{
///     "id": 7, "title": "Example Forum", "site": "n/a", "confidence": 1,
///     "combo_list_flag": "YES", "spycloud_publish_date": 20240301
/// }"#)?;
/// assert_eq!((catalog.id, catalog.title.as_deref()), (CatalogId(7), Some("Example Forum")));
/// assert!(catalog.is_combo_list());
/// assert_eq!(catalog.usable_site(), None); // `n/a` is no site
/// assert_eq!(catalog.spycloud_publish_date, None); // not a date: left out, not an error
///
/// let stored = serde_json::to_string(&catalog)?;
/// assert_eq!(serde_json::from_str::<Catalog>(&stored)?, catalog);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Catalog {
    /// The catalog id records refer to as `source_id`.
    pub id: CatalogId,
    /// The catalog's uuid, used in portal links.
    #[serde(default, deserialize_with = "identifier")]
    pub uuid: Option<String>,
    /// Short name of the breach.
    #[serde(default, deserialize_with = "short_text")]
    pub title: Option<String>,
    /// Long description of the breach.
    #[serde(default, deserialize_with = "long_text")]
    pub description: Option<String>,
    /// The breached site (`n/a` when unknown).
    #[serde(default, deserialize_with = "identifier")]
    pub site: Option<String>,
    /// What the breached site is.
    #[serde(default, deserialize_with = "short_text")]
    pub site_description: Option<String>,
    /// 1 (high) to 3 (low); anything else is treated as low.
    #[serde(default, deserialize_with = "scalar")]
    pub confidence: Option<Value>,
    /// `YES`/`NO` (or a boolean): whether the breach is a combo list.
    #[serde(default, deserialize_with = "scalar")]
    pub combo_list_flag: Option<Value>,
    /// When SpyCloud published the catalog.
    #[serde(default, deserialize_with = "lenient_time")]
    pub spycloud_publish_date: Option<Timestamp>,
    /// The kinds of data the breach holds, with counts.
    #[serde(default, deserialize_with = "assets")]
    pub assets: Option<Map<String, Value>>,
}

/// The most characters of a catalog's description kept; of its title and site description,
/// [`MAX_TEXT`]. Real descriptions are a few hundred characters: a longer one is cut, so a
/// catalog read (and kept in the catalog cache) is a few tens of KiB at most, whatever SpyCloud
/// sends. Both are above the longest CTIM limit these texts feed (5000 UTF-16 units), so a text
/// cut here is still too long there and the CTIM mapping cuts it again, with its `…`: what an
/// answer shows is the same as if the whole text had been kept.
const MAX_LONG_TEXT: usize = 8192;
/// The most characters of a catalog's title and site description kept (see [`MAX_LONG_TEXT`]).
const MAX_TEXT: usize = 5001;
/// The most characters of a catalog's uuid and site: a longer one is not cut (a cut one would
/// make a link to somewhere else) but left out.
const MAX_IDENTIFIER: usize = 1024;
/// The most `assets` kinds kept (real catalogs name a dozen or two), each name at most
/// [`MAX_ASSET_NAME`] characters and its count a scalar (else `null`).
const MAX_ASSETS: usize = 128;
/// The most characters of an asset kind's name; a longer one is left out.
const MAX_ASSET_NAME: usize = 128;
/// The longest string `confidence` or `combo_list_flag` may be; a longer one (or an array or
/// object) is left out.
const MAX_FLAG: usize = 64;

impl Catalog {
    /// Whether the catalog is a combo list: `combo_list_flag` is `YES` (any case) or `true`.
    pub fn is_combo_list(&self) -> bool {
        match &self.combo_list_flag {
            Some(Value::String(flag)) => flag.trim().eq_ignore_ascii_case("yes"),
            Some(Value::Bool(flag)) => *flag,
            _ => false,
        }
    }

    /// The breached site, when it is a real one (not empty, not `n/a`).
    pub fn usable_site(&self) -> Option<&str> {
        self.site
            .as_deref()
            .map(str::trim)
            .filter(|site| !site.is_empty() && !site.eq_ignore_ascii_case("n/a"))
    }
}

/// A field of the wrong type reads as absent instead of failing the whole catalog.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// A text, cut to `max` characters.
fn text<'de, D: Deserializer<'de>>(
    deserializer: D,
    max: usize,
) -> Result<Option<String>, D::Error> {
    let text: Option<String> = lenient(deserializer)?;
    Ok(text.map(|mut text| {
        let kept = super::email::truncate(&text, max).len();
        text.truncate(kept);
        text
    }))
}

/// A text of at most [`MAX_IDENTIFIER`] characters; a longer one reads as absent.
fn identifier<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text: Option<String> = lenient(deserializer)?;
    Ok(text.filter(|text| text.chars().nth(MAX_IDENTIFIER).is_none()))
}

fn short_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    text(deserializer, MAX_TEXT)
}

fn long_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    text(deserializer, MAX_LONG_TEXT)
}

/// Whether `value` is a number, a boolean or a string of at most `max` characters.
fn is_scalar(value: &Value, max: usize) -> bool {
    match value {
        Value::Number(_) | Value::Bool(_) => true,
        Value::String(text) => text.chars().nth(max).is_none(),
        _ => false,
    }
}

/// A number, a boolean or a short string; anything else reads as absent.
fn scalar<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(is_scalar(&value, MAX_FLAG).then_some(value))
}

/// The first [`MAX_ASSETS`] kinds with names of at most [`MAX_ASSET_NAME`] characters, each
/// count kept when it is a scalar, else `null`.
fn assets<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Map<String, Value>>, D::Error> {
    let assets: Option<Map<String, Value>> = lenient(deserializer)?;
    Ok(assets.map(|assets| {
        assets
            .into_iter()
            .filter(|(name, _)| name.chars().nth(MAX_ASSET_NAME).is_none())
            .take(MAX_ASSETS)
            .map(|(name, count)| {
                let count = if is_scalar(&count, MAX_FLAG) {
                    count
                } else {
                    Value::Null
                };
                (name, count)
            })
            .collect()
    }))
}

fn lenient_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
    let value: Option<String> = lenient(deserializer)?;
    Ok(value.and_then(|v| Timestamp::parse(&v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog(value: Value) -> Catalog {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reads_a_full_catalog() {
        let c = catalog(json!({
            "id": 5, "uuid": "u-1", "title": "T", "description": "D", "site": "ex.com",
            "site_description": "SD", "confidence": 2, "combo_list_flag": "NO",
            "spycloud_publish_date": "2020-01-02T03:04:05Z", "assets": {"email": 3, "password": 2}
        }));
        assert_eq!(c.id, CatalogId(5));
        assert_eq!(
            c.spycloud_publish_date.unwrap().to_string(),
            "2020-01-02T03:04:05.000000Z"
        );
        assert_eq!(
            c.assets.unwrap().keys().collect::<Vec<_>>(),
            ["email", "password"]
        );
    }

    // RULES R10
    #[test]
    fn the_id_is_required_and_the_rest_is_lenient() {
        assert!(serde_json::from_value::<Catalog>(json!({"title": "T"})).is_err());
        let c = catalog(json!({"id": "9", "title": 3, "assets": [], "spycloud_publish_date": 1}));
        assert_eq!(
            (c.id, c.title, c.assets, c.spycloud_publish_date),
            (CatalogId(9), None, None, None)
        );
    }

    #[test]
    fn a_catalog_dated_in_any_of_spyclouds_three_forms_is_dated() {
        for (date, text) in [
            ("2020-01-02T03:04:05Z", "2020-01-02T03:04:05.000000Z"),
            ("2020-01-02 03:04:05", "2020-01-02T03:04:05.000000Z"),
            ("2020-01-02", "2020-01-02T00:00:00.000000Z"),
        ] {
            let c = catalog(json!({"id": 1, "spycloud_publish_date": date}));
            let published = c.spycloud_publish_date.map(|t| t.to_string());
            assert_eq!(published.as_deref(), Some(text), "{date}");
        }
    }

    #[test]
    fn a_catalog_reads_back_as_itself() {
        for value in [
            json!({
                "id": 5, "uuid": "u-1", "title": "T", "description": "D", "site": "ex.com",
                "site_description": "SD", "confidence": 2, "combo_list_flag": "NO",
                "spycloud_publish_date": "2020-01-02T03:04:05Z", "assets": {"b": 3, "a": 2}
            }),
            json!({"id": 7}),
        ] {
            let c = catalog(value);
            let text = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Catalog>(&text).unwrap(), c, "{text}");
        }
    }

    #[test]
    fn combo_list_only_for_yes_or_true() {
        for (flag, expected) in [
            (json!("YES"), true),
            (json!("yes"), true),
            (json!(true), true),
            (json!("NO"), false),
            (json!("no"), false),
            (json!(false), false),
            (json!(""), false),
            (json!(null), false),
        ] {
            assert_eq!(
                catalog(json!({"id": 1, "combo_list_flag": flag})).is_combo_list(),
                expected,
                "{flag}"
            );
        }
        assert!(!catalog(json!({"id": 1})).is_combo_list());
    }

    #[test]
    fn usable_site_skips_n_a_and_blank() {
        assert_eq!(
            catalog(json!({"id": 1, "site": "ex.com"})).usable_site(),
            Some("ex.com")
        );
        for site in [json!("n/a"), json!("N/A"), json!(""), json!(null)] {
            assert_eq!(catalog(json!({"id": 1, "site": site})).usable_site(), None);
        }
    }

    // RULES R11
    #[test]
    fn what_a_catalog_keeps_is_bounded_whatever_spycloud_sends() {
        let assets: Map<String, Value> = (0..500)
            .map(|n| (format!("kind{n}"), json!(n)))
            .chain([
                ("k".repeat(200), json!(1)),
                ("nested".to_owned(), json!([1, 2])),
            ])
            .collect();
        let c = catalog(json!({
            "id": 1, "uuid": "u".repeat(5000), "title": "é".repeat(9000),
            "description": "d".repeat(100_000), "site": "s".repeat(5000),
            "site_description": "x".repeat(9000), "confidence": [1, 2],
            "combo_list_flag": "Y".repeat(1000), "assets": assets
        }));
        assert_eq!((c.uuid, c.site), (None, None));
        assert_eq!(c.title.unwrap().chars().count(), MAX_TEXT);
        assert_eq!(c.description.unwrap().len(), MAX_LONG_TEXT);
        assert_eq!(c.site_description.unwrap().len(), MAX_TEXT);
        let at_most = catalog(json!({"id": 3, "uuid": "u".repeat(MAX_IDENTIFIER),
                                     "site": "s".repeat(MAX_IDENTIFIER)}));
        assert_eq!(at_most.uuid.map(|uuid| uuid.len()), Some(MAX_IDENTIFIER));
        assert_eq!(at_most.site.map(|site| site.len()), Some(MAX_IDENTIFIER));
        assert_eq!((c.confidence, c.combo_list_flag), (None, None));
        let assets = c.assets.unwrap();
        assert_eq!(assets.len(), MAX_ASSETS);
        assert_eq!(assets.keys().next().map(String::as_str), Some("kind0"));
        let small = catalog(json!({"id": 2, "confidence": 1, "combo_list_flag": "YES",
                                   "assets": {"email": 3, "odd": {"a": 1}}}));
        assert_eq!(small.confidence, Some(json!(1)));
        assert!(small.is_combo_list());
        assert_eq!(small.assets.unwrap()["odd"], Value::Null);
    }
}
