//! [`BreachSource`] over a dataset held in memory: the offline demo, and tests that want real
//! relay behaviour without a network.
//!
//! The dataset is written the way SpyCloud answers, so what works against it works against the
//! API: each value of each endpoint (`emails`, `domains`, `ips`, `usernames`) maps to the pages
//! SpyCloud would send for it, in order, and a page's `cursor` names the page that follows it.
//! Lookups follow that cursor chain from the first page, as the SpyCloud adapter does over HTTP,
//! and keep, as SpyCloud would, only the records of the query's `severity` codes published on
//! or after its `since` date. The chain is checked once, when the dataset is loaded, so a lookup
//! cannot loop or lose a page. Values are compared case-insensitively; an IPv6 address is
//! written in its canonical compressed form (as the relay sends it).
//!
//! The watchlist (every employee's records, for the dashboard) is a plain list of records,
//! filtered the same way; the demo's is generated around the time it starts
//! ([`sample_watchlist`]), so every period of the dashboard has records.
//!
//! ```json
//! {"emails": {"a@example.com": [{"cursor": "c2", "hits": 1, "results": [{...}]},
//!                               {"cursor": "", "hits": 1, "results": [{...}]}]},
//!  "domains": {"example.com": [...]}, "ips": {"192.0.2.1": [...]}, "usernames": {"bob": [...]},
//!  "catalogs": [{"id": 1, "uuid": "...", "title": "...", ...}],
//!  "watchlist": [{...}, {...}]}
//! ```

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use serde::Deserialize;

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::BuildError;
use crate::domain::SourceError;
use crate::domain::{
    ApiKey, BreachQuery, Catalog, CatalogId, Lookup, RawRecord, RecordSink, Timestamp,
};
use crate::ports::{BreachSource, WatchlistQuery};

/// The dataset bundled with the crate: invented records and catalogs for the demo.
pub const SAMPLE_JSON: &str = include_str!("../../demo/sample.json");

/// Why a dataset cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DatasetError {
    /// Not JSON, or not the documented shape (a record that is not an object, a catalog
    /// without an `id`, ...).
    #[error("the dataset is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// A value with no page at all: SpyCloud always answers at least one.
    #[error("{0} has no pages")]
    NoPages(String),
    /// The same value of an endpoint twice, differing only in case.
    #[error("{0} appears more than once (values are compared case-insensitively)")]
    DuplicateValue(String),
    /// The last page of a value still names a cursor: the page it points to is missing.
    #[error("the last page of {value} has cursor {cursor:?}, but no page follows it")]
    DanglingCursor {
        /// The value whose chain is broken.
        value: String,
        /// The cursor with no page.
        cursor: String,
    },
    /// A page before the last has no cursor: the pages after it could never be reached.
    #[error("page {page} of {value} has no cursor, so the pages after it are unreachable")]
    UnreachablePages {
        /// The value whose chain is broken.
        value: String,
        /// The 1-based number of the page without a cursor.
        page: usize,
    },
    /// Two pages of a value share a cursor: following it would loop.
    #[error("{value} uses cursor {cursor:?} twice")]
    RepeatedCursor {
        /// The value whose chain is broken.
        value: String,
        /// The cursor used twice.
        cursor: String,
    },
    /// Two catalogs with the same id.
    #[error("catalog {0} appears more than once")]
    DuplicateCatalog(CatalogId),
}

/// One page as SpyCloud sends it; `hits` is informative only and not read.
#[derive(Debug, Clone, Deserialize)]
struct Page {
    #[serde(default)]
    cursor: Option<String>,
    results: Vec<RawRecord>,
}

impl Page {
    /// The cursor of the next page, if there is one (SpyCloud sends `""` on the last page).
    fn next(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

#[derive(Debug, Deserialize)]
struct Dataset {
    #[serde(default)]
    emails: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    domains: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    ips: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    usernames: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    catalogs: Vec<Catalog>,
    #[serde(default)]
    watchlist: Vec<RawRecord>,
}

/// The SpyCloud endpoint a lookup asks, as the dataset names it.
fn endpoint(lookup: &Lookup) -> &'static str {
    lookup.kind().endpoint()
}

/// Whether SpyCloud would send `record` for `query`: a severity among its codes, a publish
/// date on or after its `since`.
fn matches(record: &RawRecord, query: &BreachQuery) -> bool {
    let severity_ok = query.severity.as_ref().is_none_or(|codes| {
        record
            .0
            .get("severity")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|severity| {
                codes
                    .codes()
                    .iter()
                    .any(|&code| u64::from(code) == severity)
            })
    });
    let since_ok = query.since.is_none_or(|since| {
        record
            .0
            .get("spycloud_publish_date")
            .and_then(serde_json::Value::as_str)
            .and_then(|date| Timestamp::parse(date).ok())
            .is_some_and(|published| published.date() >= since)
    });
    severity_ok && since_ok
}

/// One email's answers: the first page, and every other page under the cursor that leads to it.
#[derive(Debug, Clone)]
struct Pages {
    first: Page,
    by_cursor: HashMap<String, Page>,
}

impl Pages {
    /// Checks that the pages form one chain, first to last, and indexes them by cursor.
    fn chain(value: &str, pages: Vec<Page>) -> Result<Self, DatasetError> {
        let mut pages = pages.into_iter();
        let first = pages
            .next()
            .ok_or_else(|| DatasetError::NoPages(value.into()))?;
        let mut cursor = first.next().map(str::to_owned);
        let mut by_cursor = HashMap::new();
        for (index, page) in pages.enumerate() {
            let Some(leading) = cursor.take() else {
                return Err(DatasetError::UnreachablePages {
                    value: value.into(),
                    page: index + 1,
                });
            };
            if by_cursor.contains_key(&leading) {
                return Err(DatasetError::RepeatedCursor {
                    value: value.into(),
                    cursor: leading,
                });
            }
            cursor = page.next().map(str::to_owned);
            by_cursor.insert(leading, page);
        }
        match cursor {
            Some(cursor) => Err(DatasetError::DanglingCursor {
                value: value.into(),
                cursor,
            }),
            None => Ok(Self { first, by_cursor }),
        }
    }

    /// Every record, following the cursors from the first page.
    fn records(&self) -> impl Iterator<Item = &RawRecord> {
        // `chain` proved every cursor leads to a page and none repeats.
        std::iter::successors(Some(&self.first), |page| {
            page.next().and_then(|cursor| self.by_cursor.get(cursor))
        })
        .flat_map(|page| page.results.iter())
    }
}

/// A [`BreachSource`] answering from a dataset in memory; every API key is accepted.
/// [`MemorySource::from_json`] loads one, [`MemorySource::sample`] is the demo's.
#[derive(Debug, Clone)]
pub struct MemorySource {
    /// Keyed by endpoint and the lower-cased value.
    values: HashMap<(&'static str, String), Pages>,
    catalogs: HashMap<CatalogId, Catalog>,
    watchlist: Vec<RawRecord>,
}

impl MemorySource {
    /// Loads a dataset shaped like SpyCloud's answers (see the module documentation).
    ///
    /// # Errors
    /// [`BuildError::Dataset`]: JSON that is not the documented shape, or a cursor chain that is
    /// not one straight line from the first page to a last page without a cursor.
    ///
    /// ```
    /// use spycloud_relay::BuildError;
    /// use spycloud_relay::adapters::MemorySource;
    /// use spycloud_relay::domain::{
    ///     ApiKey, BreachQuery, CatalogId, Lookup, ObservableType, RawRecord,
    /// };
    /// use spycloud_relay::ports::BreachSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let source = MemorySource::from_json(r#"{
    ///     "emails": {"Pat@Example.com": [
    ///         {"cursor": "p2", "results": [{"spycloud_publish_date": "2024-03-01T00:00:00Z"}]},
    ///         {"cursor": "", "results": [{"spycloud_publish_date": "2024-05-01T00:00:00Z"}]}
    ///     ]},
    ///     "catalogs": [{"id": 7, "title": "Example Forum"}]
    /// }"#)?;
    /// assert_eq!(source.emails(), ["pat@example.com"]);
    ///
    /// let key = ApiKey::parse("any key")?;
    /// let pat = Lookup::parse(ObservableType::Email, "PAT@example.com")?;
    /// let mut records: Vec<RawRecord> = Vec::new();
    /// source.breaches(&key, &pat, &BreachQuery::default(), &mut records).await?;
    /// assert_eq!(records.len(), 2); // both pages, following the cursor
    /// let found = source.catalogs(&key, &[CatalogId(7), CatalogId(8)]).await?;
    /// assert_eq!(found.len(), 1);
    ///
    /// let broken = r#"{"emails": {"pat@example.com": [{"cursor": "p2", "results": []}]}}"#;
    /// let why = r#"the last page of pat@example.com has cursor "p2", but no page follows it"#;
    /// assert_eq!(MemorySource::from_json(broken).unwrap_err(), BuildError::Dataset(why.into()));
    /// # Ok(()) }
    /// ```
    pub fn from_json(json: &str) -> Result<Self, BuildError> {
        Self::parse(json).map_err(|error| BuildError::Dataset(error.to_string()))
    }

    fn parse(json: &str) -> Result<Self, DatasetError> {
        let dataset: Dataset = serde_json::from_str(json)?;
        let mut values = HashMap::new();
        for (endpoint, entries) in [
            ("emails", dataset.emails),
            ("domains", dataset.domains),
            ("ips", dataset.ips),
            ("usernames", dataset.usernames),
        ] {
            for (value, pages) in entries {
                let pages: Vec<Page> = serde_json::from_value(pages)?;
                let key = (endpoint, value.to_lowercase());
                if values.contains_key(&key) {
                    return Err(DatasetError::DuplicateValue(value));
                }
                let chain = Pages::chain(&value, pages)?;
                values.insert(key, chain);
            }
        }
        let mut catalogs = HashMap::new();
        for catalog in dataset.catalogs {
            if let Some(duplicate) = catalogs.insert(catalog.id, catalog) {
                return Err(DatasetError::DuplicateCatalog(duplicate.id));
            }
        }
        Ok(Self {
            values,
            catalogs,
            watchlist: dataset.watchlist,
        })
    }

    /// The same dataset with `records` as its watchlist ([`WatchlistQuery`]'s example reads
    /// one).
    pub fn with_watchlist(self, records: Vec<RawRecord>) -> Self {
        Self {
            watchlist: records,
            ..self
        }
    }

    /// The bundled sample dataset with a watchlist of twelve employees spread over the 90 days
    /// before `now`: the demo's data.
    ///
    /// ```
    /// use spycloud_relay::adapters::MemorySource;
    /// use spycloud_relay::domain::{ApiKey, RawRecord, Timestamp};
    /// use spycloud_relay::ports::{BreachSource, WatchlistQuery};
    /// use chrono::TimeDelta;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let now = Timestamp::parse("2024-06-01T12:00:00Z")?;
    /// let source = MemorySource::sample_at(now);
    /// let ninety_days_ago = WatchlistQuery {
    ///     since: now.minus(TimeDelta::days(90)).day(),
    ///     severity: None,
    /// };
    /// let mut records: Vec<RawRecord> = Vec::new();
    /// source.watchlist(&ApiKey::parse("demo-api-key")?, &ninety_days_ago, &mut records).await?;
    /// assert_eq!(records.len(), 360);
    /// assert!(records.iter().all(|record| record.published() <= Some(now)));
    /// # Ok(()) }
    /// ```
    pub fn sample_at(now: Timestamp) -> Self {
        Self::sample().with_watchlist(sample_watchlist(now))
    }

    /// The bundled sample dataset (`demo/sample.json`), without a watchlist.
    ///
    /// ```
    /// use spycloud_relay::adapters::MemorySource;
    ///
    /// let demo = MemorySource::sample();
    /// assert_eq!(demo.emails(), [
    ///     "alex.rivera@example.com",
    ///     "casey.nguyen@example.net",
    ///     "jordan.lee@example.org",
    ///     "sam.taylor@acme.test",
    /// ]);
    /// assert_eq!(demo.values_of("domains"), ["acme.test"]);
    /// assert_eq!(demo.values_of("ips"), ["203.0.113.77"]);
    /// assert_eq!(demo.values_of("usernames"), ["arivera"]);
    /// ```
    pub fn sample() -> Self {
        Self::from_json(SAMPLE_JSON).expect("demo/sample.json is a valid dataset")
    }

    /// The emails the dataset knows, lower-cased and sorted.
    pub fn emails(&self) -> Vec<&str> {
        self.values_of("emails")
    }

    /// The values the dataset knows for one endpoint (`emails`, `domains`, `ips`,
    /// `usernames`), lower-cased and sorted.
    pub fn values_of(&self, endpoint: &str) -> Vec<&str> {
        let mut values: Vec<&str> = self
            .values
            .keys()
            .filter(|(of, _)| *of == endpoint)
            .map(|(_, value)| value.as_str())
            .collect();
        values.sort_unstable();
        values
    }
}

#[async_trait]
impl BreachSource for MemorySource {
    async fn breaches(
        &self,
        _key: &ApiKey,
        lookup: &Lookup,
        query: &BreachQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        let key = (endpoint(lookup), lookup.to_string().to_lowercase());
        let Some(pages) = self.values.get(&key) else {
            return Ok(());
        };
        let matching = || pages.records().filter(|record| matches(record, query));
        into.hits(matching().count() as u64);
        for record in matching() {
            if !into.wants_more() {
                break;
            }
            into.add(record.clone());
        }
        Ok(())
    }

    async fn catalogs(
        &self,
        _key: &ApiKey,
        ids: &[CatalogId],
    ) -> Result<Vec<Catalog>, SourceError> {
        let mut seen = HashSet::new();
        Ok(ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| self.catalogs.get(id).cloned())
            .collect())
    }

    /// The watchlist's records published on or after `since` (and of the `severity` codes
    /// asked for), as the lookups' records: `hits` first, then each record while wanted.
    async fn watchlist(
        &self,
        _key: &ApiKey,
        query: &WatchlistQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        let query = BreachQuery {
            severity: query.severity.clone(),
            since: Some(query.since.date()),
        };
        let matching = || {
            self.watchlist
                .iter()
                .filter(|record| matches(record, &query))
        };
        into.hits(matching().count() as u64);
        for record in matching() {
            if !into.wants_more() {
                break;
            }
            into.add(record.clone());
        }
        Ok(())
    }

    async fn probe(&self, _key: &ApiKey) -> Result<(), SourceError> {
        Ok(())
    }
}

/// The employees of the demo's watchlist; the first is exposed most.
const DEMO_EMPLOYEES: [&str; 12] = [
    "alex.rivera",
    "jordan.lee",
    "sam.taylor",
    "casey.nguyen",
    "morgan.smith",
    "riley.chen",
    "taylor.brooks",
    "jamie.ortiz",
    "drew.patel",
    "quinn.murphy",
    "avery.kim",
    "reese.walker",
];

/// The demo's watchlist: 360 invented records of `example.com` employees, spread evenly over
/// the 90 days before `now` (the newest at `now` itself): infostealer records with machines
/// and plaintext passwords, breach and combo-list records, records of a catalog SpyCloud does
/// not know, and every severity band. Deterministic for a given `now`.
pub fn sample_watchlist(now: Timestamp) -> Vec<RawRecord> {
    const RECORDS: i64 = 360;
    const SPAN_MINUTES: i64 = 90 * 24 * 60;
    (0..RECORDS)
        .map(|i| {
            let published = now.minus(TimeDelta::minutes(i * SPAN_MINUTES / RECORDS + i % 7));
            let employee = if i % 4 == 0 {
                0
            } else {
                (i as usize * 5 + i as usize / 12) % DEMO_EMPLOYEES.len()
            };
            let name = DEMO_EMPLOYEES[employee];
            // Now and then the address comes in another case: it is still one employee.
            let email = if i % 9 == 0 {
                format!("{}@Example.com", name.to_uppercase())
            } else {
                format!("{name}@example.com")
            };
            let mut record = json!({
                "document_id": format!("demo-watchlist-{i}"),
                "email": email,
                "email_domain": "example.com",
                "email_username": name,
                "domain": "example.com",
                "spycloud_publish_date": published.to_string(),
            });
            let stealer_severity = [25, 26, 30][(i % 3) as usize];
            let kind = match i % 5 {
                0 => json!({
                    "source_id": if i % 2 == 0 { 36512 } else { 41234 },
                    "password": "Winter2024!", "password_plaintext": "Winter2024!",
                    "password_type": "plaintext", "target_url": "https://login.example.com",
                    "infected_machine_id": format!("demo-machine-{employee}-{}", i % 3),
                    "user_hostname": format!("{}-PC", name.to_uppercase()),
                    "severity": stealer_severity,
                }),
                1 => json!({
                    "source_id": 18001, "password": "5f4dcc3b5aa765d61d8327deb882cf99",
                    "password_type": "md5", "severity": 5,
                }),
                2 => json!({
                    "source_id": 20555, "password": "hunter2", "password_type": "plaintext",
                    "severity": 20,
                }),
                3 => json!({"source_id": 40777, "password_type": "bcrypt", "severity": 2}),
                _ => json!({"source_id": 99001}),
            };
            if let (Value::Object(fields), Value::Object(more)) = (&mut record, kind) {
                fields.extend(more);
            }
            RawRecord(match record {
                Value::Object(fields) => fields,
                _ => serde_json::Map::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn key() -> ApiKey {
        ApiKey::parse("any-key").unwrap()
    }

    fn email(value: &str) -> Lookup {
        Lookup::parse(crate::domain::ObservableType::Email, value).unwrap()
    }

    /// Every record of `lookup` matching `query`, as the source hands them over.
    async fn records_of(
        source: &MemorySource,
        lookup: &Lookup,
        query: &BreachQuery,
    ) -> Vec<RawRecord> {
        let mut records = Vec::new();
        source
            .breaches(&key(), lookup, query, &mut records)
            .await
            .unwrap();
        records
    }

    fn record(id: &str) -> Value {
        json!({"document_id": id, "spycloud_publish_date": "2020-01-01T00:00:00Z"})
    }

    fn page(cursor: &str, results: &[&str]) -> Value {
        let results: Vec<Value> = results.iter().map(|id| record(id)).collect();
        json!({"cursor": cursor, "hits": results.len(), "results": results})
    }

    fn load(emails: Value) -> Result<MemorySource, DatasetError> {
        MemorySource::parse(&json!({"emails": emails, "catalogs": []}).to_string())
    }

    fn ids(records: &[RawRecord]) -> Vec<&str> {
        records
            .iter()
            .map(|r| r.0["document_id"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn follows_the_cursor_chain_from_the_first_page() {
        let source = load(json!({"a@x.com": [
            page("c2", &["1", "2"]),
            page("c3", &["3"]),
            page("", &["4"]),
        ]}))
        .unwrap();
        let records = records_of(&source, &email("a@x.com"), &BreachQuery::default()).await;
        assert_eq!(ids(&records), ["1", "2", "3", "4"]);
    }

    #[tokio::test]
    async fn a_missing_or_null_cursor_also_ends_the_chain() {
        let source = load(json!({
            "a@x.com": [{"results": [record("1")]}],
            "b@x.com": [{"cursor": null, "results": [record("2")]}],
        }))
        .unwrap();
        for (address, expected) in [("a@x.com", "1"), ("b@x.com", "2")] {
            let records = records_of(&source, &email(address), &BreachQuery::default()).await;
            assert_eq!(ids(&records), [expected]);
        }
    }

    #[tokio::test]
    async fn emails_are_looked_up_case_insensitively_and_unknown_ones_have_no_records() {
        let source = load(json!({"Mixed.Case@Example.com": [page("", &["1"])]})).unwrap();
        let records = records_of(
            &source,
            &email("mixed.case@EXAMPLE.COM"),
            &BreachQuery::default(),
        )
        .await;
        assert_eq!(ids(&records), ["1"]);
        let none = records_of(&source, &email("nobody@x.com"), &BreachQuery::default()).await;
        assert!(none.is_empty());
        assert_eq!(source.emails(), ["mixed.case@example.com"]);
    }

    fn lookup(kind: crate::domain::ObservableType, value: &str) -> Lookup {
        Lookup::parse(kind, value).unwrap()
    }

    #[tokio::test]
    async fn each_endpoint_has_its_own_values() {
        use crate::domain::ObservableType::{Domain, Ip, Ipv6, User};
        let source = MemorySource::from_json(
            &json!({
                "domains": {"Example.com": [page("", &["d"])]},
                "ips": {"192.0.2.1": [page("", &["4"])], "2001:db8::1": [page("", &["6"])]},
                "usernames": {"example.com": [page("", &["u"])]},
            })
            .to_string(),
        )
        .unwrap();
        let all = BreachQuery::default();
        for (lookup, expected) in [
            (lookup(Domain, "EXAMPLE.com."), vec!["d"]),
            (lookup(User, "example.com"), vec!["u"]),
            (lookup(Ip, "192.0.2.1"), vec!["4"]),
            (lookup(Ipv6, "2001:DB8:0::1"), vec!["6"]),
            (lookup(Domain, "other.com"), vec![]),
        ] {
            assert_eq!(
                ids(&records_of(&source, &lookup, &all).await),
                expected,
                "{lookup}"
            );
        }
    }

    // RULES R9
    #[tokio::test]
    async fn only_records_of_the_querys_severities_and_dates_are_sent() {
        let dated = |id: &str, severity: u64, date: &str| json!({"document_id": id, "severity": severity, "spycloud_publish_date": date});
        let source = load(json!({"a@x.com": [{"cursor": "", "results": [
            dated("old-20", 20, "2020-01-01T00:00:00Z"),
            dated("new-20", 20, "2024-02-29T00:00:00Z"),
            dated("new-2", 2, "2024-03-01T00:00:00Z"),
            {"document_id": "no-severity", "spycloud_publish_date": "2024-03-01T00:00:00Z"},
        ]}]}))
        .unwrap();
        let query = |severity: Option<&str>, since: Option<&str>| BreachQuery {
            severity: severity.and_then(crate::domain::SeverityFilter::parse),
            since: since.map(|date| date.parse().unwrap()),
        };
        let a = email("a@x.com");
        for (q, expected) in [
            (query(Some("20,25"), None), "old-20 new-20"),
            (query(None, Some("2024-02-29")), "new-20 new-2 no-severity"),
            (query(Some("2"), Some("2024-02-29")), "new-2"),
        ] {
            assert_eq!(ids(&records_of(&source, &a, &q).await).join(" "), expected);
        }
    }

    // RULES R9
    #[tokio::test]
    async fn a_full_sink_is_not_fed_more_and_hits_counts_what_matches() {
        let source = load(json!({"a@x.com": [page("c2", &["1", "2"]), page("", &["3"])]})).unwrap();
        let mut collector = crate::domain::BreachCollector::new(10, 2);
        source
            .breaches(
                &key(),
                &email("a@x.com"),
                &BreachQuery::default(),
                &mut collector,
            )
            .await
            .unwrap();
        let collected = collector.finish();
        assert_eq!((collected.read, collected.hits), (2, Some(3)));
    }

    #[test]
    fn broken_cursor_chains_are_refused_at_load() {
        let dangling = load(json!({"a@x.com": [page("c2", &["1"])]})).unwrap_err();
        assert!(
            matches!(&dangling, DatasetError::DanglingCursor { cursor, .. } if cursor == "c2"),
            "{dangling}"
        );
        let unreachable =
            load(json!({"a@x.com": [page("", &["1"]), page("", &["2"])]})).unwrap_err();
        assert!(
            matches!(unreachable, DatasetError::UnreachablePages { page: 1, .. }),
            "{unreachable}"
        );
        let repeated = load(json!({"a@x.com": [
            page("c", &["1"]),
            page("c", &["2"]),
            page("", &["3"]),
        ]}))
        .unwrap_err();
        assert!(
            matches!(&repeated, DatasetError::RepeatedCursor { cursor, .. } if cursor == "c"),
            "{repeated}"
        );
        let empty = load(json!({"a@x.com": []})).unwrap_err();
        assert!(matches!(empty, DatasetError::NoPages(_)), "{empty}");
    }

    #[test]
    fn malformed_datasets_are_refused() {
        let duplicate = load(json!({
            "a@x.com": [page("", &["1"])],
            "A@X.com": [page("", &["2"])],
        }))
        .unwrap_err();
        assert!(
            matches!(duplicate, DatasetError::DuplicateValue(_)),
            "{duplicate}"
        );
        let not_object = load(json!({"a@x.com": [{"cursor": "", "results": [1]}]})).unwrap_err();
        assert!(matches!(not_object, DatasetError::Json(_)), "{not_object}");
        assert!(matches!(
            MemorySource::parse("not json"),
            Err(DatasetError::Json(_))
        ));
        let twice = MemorySource::parse(r#"{"catalogs": [{"id": 1}, {"id": "1"}]}"#);
        assert!(matches!(
            twice,
            Err(DatasetError::DuplicateCatalog(CatalogId(1)))
        ));
    }

    #[tokio::test]
    async fn catalogs_returns_the_known_ones_once_each() {
        let source = MemorySource::from_json(
            r#"{"catalogs": [{"id": 1, "title": "One"}, {"id": 2, "title": "Two"}]}"#,
        )
        .unwrap();
        let found = source
            .catalogs(
                &key(),
                &[CatalogId(2), CatalogId(9), CatalogId(2), CatalogId(1)],
            )
            .await
            .unwrap();
        let found: Vec<_> = found.iter().map(|c| c.id).collect();
        assert_eq!(found, [CatalogId(2), CatalogId(1)]);
        assert!(source.probe(&key()).await.is_ok());
    }

    /// Every record a scan of `source` feeds for `query`, and the hits it said.
    async fn scan(source: &MemorySource, query: &WatchlistQuery) -> (Vec<u64>, Vec<RawRecord>) {
        struct Collect(Vec<u64>, Vec<RawRecord>);
        impl RecordSink for Collect {
            fn wants_more(&self) -> bool {
                true
            }
            fn hits(&mut self, hits: u64) {
                self.0.push(hits);
            }
            fn add(&mut self, record: RawRecord) {
                self.1.push(record);
            }
        }
        let mut fed = Collect(Vec::new(), Vec::new());
        source.watchlist(&key(), query, &mut fed).await.unwrap();
        (fed.0, fed.1)
    }

    #[tokio::test]
    async fn the_watchlist_answers_since_a_day_of_some_severities() {
        let now = Timestamp::parse("2026-03-10T12:00:00Z").unwrap();
        let source = MemorySource::from_json("{}")
            .unwrap()
            .with_watchlist(sample_watchlist(now));
        let everything = WatchlistQuery {
            since: now.minus(TimeDelta::days(90)).day(),
            severity: None,
        };
        let (hits, records) = scan(&source, &everything).await;
        assert_eq!((hits, records.len()), (vec![360], 360));
        let recent = WatchlistQuery {
            since: now.day(),
            severity: crate::domain::SeverityFilter::parse("2,5"),
        };
        let (hits, records) = scan(&source, &recent).await;
        assert!(!records.is_empty());
        assert_eq!(hits, [records.len() as u64]);
        for record in &records {
            assert!(record.published().unwrap().day() >= now.day());
            assert!(matches!(record.severity(), Some(2 | 5)));
        }
        // A full sink is fed no more.
        let mut few = crate::domain::BreachCollector::new(10, 7);
        source
            .watchlist(&key(), &everything, &mut few)
            .await
            .unwrap();
        let few = few.finish();
        assert_eq!((few.read, few.hits), (7, Some(360)));
    }

    #[tokio::test]
    async fn a_source_without_a_watchlist_feeds_no_record() {
        let (hits, records) = scan(
            &MemorySource::sample(),
            &WatchlistQuery {
                since: Timestamp::parse("2020-01-01T00:00:00").unwrap().day(),
                severity: None,
            },
        )
        .await;
        assert_eq!((hits, records.len()), (vec![0], 0));
    }

    #[tokio::test]
    async fn the_sample_has_what_the_demo_shows() {
        let source = MemorySource::sample();
        assert_eq!(source.emails().len(), 4);
        assert_eq!(source.values_of("domains"), ["acme.test"]);
        assert_eq!(source.values_of("ips"), ["203.0.113.77"]);
        assert_eq!(source.values_of("usernames"), ["arivera"]);
        assert_eq!(
            source.values[&("emails", "alex.rivera@example.com".to_owned())]
                .by_cursor
                .len(),
            2
        );

        let mut severities = Vec::new();
        let mut source_ids = Vec::new();
        let mut infostealer = false;
        let mut lookups: Vec<Lookup> = source.emails().into_iter().map(email).collect();
        lookups.push(lookup(crate::domain::ObservableType::Domain, "acme.test"));
        lookups.push(lookup(crate::domain::ObservableType::Ip, "203.0.113.77"));
        lookups.push(lookup(crate::domain::ObservableType::User, "arivera"));
        for lookup in &lookups {
            let records = records_of(&source, lookup, &BreachQuery::default()).await;
            assert!(!records.is_empty() || lookup.to_string() == "casey.nguyen@example.net");
            for record in records {
                let fields = &record.0;
                severities.extend(fields.get("severity").and_then(Value::as_u64));
                source_ids.extend(fields.get("source_id").and_then(CatalogId::from_value));
                infostealer |= [
                    "infected_machine_id",
                    "infected_path",
                    "user_hostname",
                    "user_os",
                    "ip_addresses",
                    "target_url",
                    "user_browser",
                ]
                .iter()
                .all(|field| fields.contains_key(*field));
                crate::domain::BreachRecord::try_from(record.clone()).expect("every record maps");
            }
        }
        severities.sort_unstable();
        severities.dedup();
        for severity in [2, 5, 20, 25, 26, 30] {
            assert!(severities.contains(&severity), "severity {severity}");
        }
        assert!(infostealer, "an infostealer record with machine details");

        source_ids.sort_unstable();
        source_ids.dedup();
        let found = source.catalogs(&key(), &source_ids).await.unwrap();
        assert_eq!(
            found.len() + 1,
            source_ids.len(),
            "exactly one source_id has no catalog"
        );
        assert!(found.iter().any(Catalog::is_combo_list));
        assert!(found.iter().any(|c| c.usable_site().is_some()));
    }
}
