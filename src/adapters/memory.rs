//! [`BreachSource`] over a dataset held in memory: the offline demo, and tests that want real
//! relay behaviour without a network.
//!
//! The dataset is written the way SpyCloud answers, so what works against it works against the
//! API: each email maps to the pages SpyCloud would send for it, in order, and a page's `cursor`
//! names the page that follows it. Lookups follow that cursor chain from the first page, as the
//! SpyCloud adapter does over HTTP. The chain is checked once, when the dataset is loaded, so a
//! lookup cannot loop or lose a page.
//!
//! ```json
//! {"emails": {"a@example.com": [{"cursor": "c2", "hits": 1, "results": [{...}]},
//!                               {"cursor": "", "hits": 1, "results": [{...}]}]},
//!  "catalogs": [{"id": 1, "uuid": "...", "title": "...", ...}]}
//! ```

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use serde::Deserialize;

use crate::domain::{ApiKey, BreachRecord, Catalog, CatalogId, Email};
use crate::ports::{BreachSource, SourceError};

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
}

/// One email's answers: the first page, and every other page under the cursor that leads to it.
#[derive(Debug, Clone)]
struct Pages {
    first: Page,
    by_cursor: HashMap<String, Page>,
}

impl Pages {
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
    emails: HashMap<String, Pages>,
    catalogs: HashMap<CatalogId, Catalog>,
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
            let chain = Pages::chain(&email, pages)?;
            emails.insert(key, chain);
        }
        let mut catalogs = HashMap::new();
        for catalog in dataset.catalogs {
            if let Some(duplicate) = catalogs.insert(catalog.id, catalog) {
                return Err(DatasetError::DuplicateCatalog(duplicate.id));
            }
        }
        Ok(Self { emails, catalogs })
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
            .map(Pages::records)
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

    async fn probe(&self, _key: &ApiKey) -> Result<(), SourceError> {
        Ok(())
    }
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
