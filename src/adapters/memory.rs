//! [`BreachSource`] over a dataset held in memory: the offline demo, and tests that want real
//! relay behaviour without a network.
//!
//! The dataset is written the way SpyCloud answers, so what works against it works against the
//! API: each email maps to the pages SpyCloud would send for it, in order, and a page's `cursor`
//! names the page that follows it. Lookups follow that cursor chain from the first page, as the
//! SpyCloud adapter does over HTTP. The chain is checked once, when the dataset is loaded, so a
//! lookup cannot loop or lose a page.
//!
//! The watchlist (every employee's records, for the dashboard) is a plain list of records,
//! served in pages of [`WATCHLIST_PAGE`]; the demo's is generated around the time it starts
//! ([`sample_watchlist`]), so every period of the dashboard has records.
//!
//! ```json
//! {"emails": {"a@example.com": [{"cursor": "c2", "hits": 1, "results": [{...}]},
//!                               {"cursor": "", "hits": 1, "results": [{...}]}]},
//!  "catalogs": [{"id": 1, "uuid": "...", "title": "...", ...}],
//!  "watchlist": [{...}, {...}]}
//! ```

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use serde::Deserialize;

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::domain::{ApiKey, BreachRecord, Catalog, CatalogId, Email, Timestamp};
use crate::ports::{BreachSource, Pages, SourceError, WatchlistPage, WatchlistQuery};

/// Records per page of a watchlist scan.
pub const WATCHLIST_PAGE: usize = 100;

/// The dataset bundled with the crate: invented records and catalogs for the demo.
pub const SAMPLE_JSON: &str = include_str!("../../demo/sample.json");

/// Why a dataset cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Not JSON, or not the documented shape (a record that is not an object, a catalog
    /// without an `id`, ...).
    #[error("the dataset is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// An email with no page at all: SpyCloud always answers at least one.
    #[error("{0} has no pages")]
    NoPages(String),
    /// The same email twice, differing only in case.
    #[error("{0} appears more than once (emails are compared case-insensitively)")]
    DuplicateEmail(String),
    /// The last page of an email still names a cursor: the page it points to is missing.
    #[error("the last page of {email} has cursor {cursor:?}, but no page follows it")]
    DanglingCursor {
        /// The email whose chain is broken.
        email: String,
        /// The cursor with no page.
        cursor: String,
    },
    /// A page before the last has no cursor: the pages after it could never be reached.
    #[error("page {page} of {email} has no cursor, so the pages after it are unreachable")]
    UnreachablePages {
        /// The email whose chain is broken.
        email: String,
        /// The 1-based number of the page without a cursor.
        page: usize,
    },
    /// Two pages of an email share a cursor: following it would loop.
    #[error("{email} uses cursor {cursor:?} twice")]
    RepeatedCursor {
        /// The email whose chain is broken.
        email: String,
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
    results: Vec<BreachRecord>,
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
    catalogs: Vec<Catalog>,
    #[serde(default)]
    watchlist: Vec<BreachRecord>,
}

/// One email's answers: the first page, and every other page under the cursor that leads to it.
#[derive(Debug, Clone)]
struct EmailPages {
    first: Page,
    by_cursor: HashMap<String, Page>,
}

impl EmailPages {
    /// Checks that the pages form one chain, first to last, and indexes them by cursor.
    fn chain(email: &str, pages: Vec<Page>) -> Result<Self, DatasetError> {
        let mut pages = pages.into_iter();
        let first = pages
            .next()
            .ok_or_else(|| DatasetError::NoPages(email.into()))?;
        let mut cursor = first.next().map(str::to_owned);
        let mut by_cursor = HashMap::new();
        for (index, page) in pages.enumerate() {
            let Some(leading) = cursor.take() else {
                return Err(DatasetError::UnreachablePages {
                    email: email.into(),
                    page: index + 1,
                });
            };
            if by_cursor.contains_key(&leading) {
                return Err(DatasetError::RepeatedCursor {
                    email: email.into(),
                    cursor: leading,
                });
            }
            cursor = page.next().map(str::to_owned);
            by_cursor.insert(leading, page);
        }
        match cursor {
            Some(cursor) => Err(DatasetError::DanglingCursor {
                email: email.into(),
                cursor,
            }),
            None => Ok(Self { first, by_cursor }),
        }
    }

    /// Every record, following the cursors from the first page.
    fn records(&self) -> Vec<BreachRecord> {
        let mut records = Vec::new();
        let mut page = &self.first;
        loop {
            records.extend(page.results.iter().cloned());
            // `chain` proved every cursor leads to a page and none repeats.
            match page.next().and_then(|cursor| self.by_cursor.get(cursor)) {
                Some(next) => page = next,
                None => return records,
            }
        }
    }
}

/// A [`BreachSource`] answering from a dataset in memory; every API key is accepted.
#[derive(Debug, Clone)]
pub struct MemorySource {
    /// Keyed by the lower-cased email.
    emails: HashMap<String, EmailPages>,
    catalogs: HashMap<CatalogId, Catalog>,
    watchlist: Vec<BreachRecord>,
}

impl MemorySource {
    /// Loads a dataset shaped like SpyCloud's answers (see the module documentation).
    ///
    /// # Errors
    /// [`DatasetError`]: JSON that is not the documented shape, or a cursor chain that is not
    /// one straight line from the first page to a last page without a cursor.
    pub fn from_json(json: &str) -> Result<Self, DatasetError> {
        let dataset: Dataset = serde_json::from_str(json)?;
        let mut emails = HashMap::new();
        for (email, pages) in dataset.emails {
            let pages: Vec<Page> = serde_json::from_value(pages)?;
            let key = email.to_lowercase();
            if emails.contains_key(&key) {
                return Err(DatasetError::DuplicateEmail(email));
            }
            let chain = EmailPages::chain(&email, pages)?;
            emails.insert(key, chain);
        }
        let mut catalogs = HashMap::new();
        for catalog in dataset.catalogs {
            if let Some(duplicate) = catalogs.insert(catalog.id, catalog) {
                return Err(DatasetError::DuplicateCatalog(duplicate.id));
            }
        }
        Ok(Self {
            emails,
            catalogs,
            watchlist: dataset.watchlist,
        })
    }

    /// The same dataset with `records` as its watchlist.
    pub fn with_watchlist(self, records: Vec<BreachRecord>) -> Self {
        Self {
            watchlist: records,
            ..self
        }
    }

    /// The bundled sample dataset with [`sample_watchlist`] around `now`: the demo's data.
    pub fn sample_at(now: Timestamp) -> Self {
        Self::sample().with_watchlist(sample_watchlist(now))
    }

    /// The bundled sample dataset ([`SAMPLE_JSON`]).
    pub fn sample() -> Self {
        Self::from_json(SAMPLE_JSON).expect("demo/sample.json is a valid dataset")
    }

    /// The emails the dataset knows, lower-cased and sorted.
    pub fn emails(&self) -> Vec<&str> {
        let mut emails: Vec<&str> = self.emails.keys().map(String::as_str).collect();
        emails.sort_unstable();
        emails
    }
}

#[async_trait]
impl BreachSource for MemorySource {
    async fn breaches(
        &self,
        _key: &ApiKey,
        email: &Email,
    ) -> Result<Vec<BreachRecord>, SourceError> {
        Ok(self
            .emails
            .get(&email.as_str().to_lowercase())
            .map(EmailPages::records)
            .unwrap_or_default())
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
    /// asked for), in pages of [`WATCHLIST_PAGE`], each saying how many there are in all.
    async fn watchlist(
        &self,
        _key: &ApiKey,
        query: &WatchlistQuery,
        on_page: &mut Pages,
    ) -> Result<(), SourceError> {
        let codes: Option<Vec<u64>> = query.severity.as_ref().map(|list| {
            list.split(',')
                .filter_map(|code| code.trim().parse().ok())
                .collect()
        });
        let matching: Vec<&BreachRecord> = self
            .watchlist
            .iter()
            .filter(|record| {
                record
                    .published()
                    .is_some_and(|published| published.day() >= query.since)
                    && codes.as_ref().is_none_or(|codes| {
                        record.severity().is_some_and(|code| codes.contains(&code))
                    })
            })
            .collect();
        let hits = Some(matching.len() as u64);
        for page in matching.chunks(WATCHLIST_PAGE) {
            let records = page.iter().map(|&record| record.clone()).collect();
            if on_page.page(WatchlistPage { hits, records }).is_break() {
                break;
            }
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
pub fn sample_watchlist(now: Timestamp) -> Vec<BreachRecord> {
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
            BreachRecord(match record {
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

    fn email(value: &str) -> Email {
        Email::parse(value).unwrap()
    }

    fn record(id: &str) -> Value {
        json!({"document_id": id, "spycloud_publish_date": "2020-01-01T00:00:00Z"})
    }

    fn page(cursor: &str, results: &[&str]) -> Value {
        let results: Vec<Value> = results.iter().map(|id| record(id)).collect();
        json!({"cursor": cursor, "hits": results.len(), "results": results})
    }

    fn load(emails: Value) -> Result<MemorySource, DatasetError> {
        MemorySource::from_json(&json!({"emails": emails, "catalogs": []}).to_string())
    }

    fn ids(records: &[BreachRecord]) -> Vec<&str> {
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
        let records = source.breaches(&key(), &email("a@x.com")).await.unwrap();
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
            let records = source.breaches(&key(), &email(address)).await.unwrap();
            assert_eq!(ids(&records), [expected]);
        }
    }

    #[tokio::test]
    async fn emails_are_looked_up_case_insensitively_and_unknown_ones_have_no_records() {
        let source = load(json!({"Mixed.Case@Example.com": [page("", &["1"])]})).unwrap();
        let records = source
            .breaches(&key(), &email("mixed.case@EXAMPLE.COM"))
            .await
            .unwrap();
        assert_eq!(ids(&records), ["1"]);
        let none = source
            .breaches(&key(), &email("nobody@x.com"))
            .await
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(source.emails(), ["mixed.case@example.com"]);
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
            matches!(duplicate, DatasetError::DuplicateEmail(_)),
            "{duplicate}"
        );
        let not_object = load(json!({"a@x.com": [{"cursor": "", "results": [1]}]})).unwrap_err();
        assert!(matches!(not_object, DatasetError::Json(_)), "{not_object}");
        assert!(matches!(
            MemorySource::from_json("not json"),
            Err(DatasetError::Json(_))
        ));
        let twice = MemorySource::from_json(r#"{"catalogs": [{"id": 1}, {"id": "1"}]}"#);
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

    /// Every page a scan of `source` hands over for `query`.
    async fn scan(source: &MemorySource, query: &WatchlistQuery) -> Vec<WatchlistPage> {
        struct Collect(Vec<WatchlistPage>);
        impl crate::ports::PageSink for Collect {
            fn page(&mut self, page: WatchlistPage) -> std::ops::ControlFlow<()> {
                self.0.push(page);
                std::ops::ControlFlow::Continue(())
            }
        }
        let mut pages = Collect(Vec::new());
        source.watchlist(&key(), query, &mut pages).await.unwrap();
        pages.0
    }

    #[tokio::test]
    async fn the_watchlist_answers_since_a_day_of_some_severities_in_pages() {
        let now = Timestamp::parse("2026-03-10T12:00:00Z").unwrap();
        let source = MemorySource::from_json("{}")
            .unwrap()
            .with_watchlist(sample_watchlist(now));
        let everything = WatchlistQuery {
            since: now.minus(TimeDelta::days(90)).day(),
            severity: None,
        };
        let pages = scan(&source, &everything).await;
        let sizes: Vec<_> = pages.iter().map(|p| (p.hits, p.records.len())).collect();
        assert_eq!(
            sizes,
            [
                (Some(360), 100),
                (Some(360), 100),
                (Some(360), 100),
                (Some(360), 60)
            ]
        );
        let recent = WatchlistQuery {
            since: now.day(),
            severity: Some("2,5".to_owned()),
        };
        let pages = scan(&source, &recent).await;
        assert_eq!(pages.len(), 1);
        assert!(!pages[0].records.is_empty());
        for record in &pages[0].records {
            assert!(record.published().unwrap().day() >= now.day());
            assert!(matches!(record.severity(), Some(2 | 5)));
        }
    }

    #[tokio::test]
    async fn a_source_without_a_watchlist_answers_empty_pages_of_none() {
        let pages = scan(
            &MemorySource::sample(),
            &WatchlistQuery {
                since: Timestamp::parse("2020-01-01T00:00:00").unwrap().day(),
                severity: None,
            },
        )
        .await;
        assert!(pages.is_empty());
    }

    #[tokio::test]
    async fn the_sample_has_what_the_demo_shows() {
        let source = MemorySource::sample();
        assert_eq!(source.emails().len(), 4);
        assert_eq!(source.emails["alex.rivera@example.com"].by_cursor.len(), 2);

        let mut severities = Vec::new();
        let mut source_ids = Vec::new();
        let mut infostealer = false;
        for address in source.emails() {
            for record in source.breaches(&key(), &email(address)).await.unwrap() {
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
                crate::domain::Breach::try_from(record.clone()).expect("every record maps");
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
