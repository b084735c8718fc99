//! Where breach data comes from: SpyCloud in production, memory in the demo, anything an
//! embedder brings.

use std::ops::ControlFlow;

use async_trait::async_trait;

pub use crate::domain::SourceError;
use crate::domain::tiles::Tally;
use crate::domain::{ApiKey, BreachRecord, Catalog, CatalogId, Day, Email};

/// What a watchlist scan asks for: the records published since a day, optionally only some
/// severities.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchlistQuery {
    /// The first UTC day of records wanted (SpyCloud's `since`).
    pub since: Day,
    /// A comma-separated list of SpyCloud severity codes (SpyCloud's `severity`), already
    /// checked; `None`: every severity.
    pub severity: Option<String>,
}

/// Takes a scan's pages as they arrive; any `FnMut(WatchlistPage) -> ControlFlow<()>` is one.
pub trait PageSink: Send {
    /// Takes one page; [`ControlFlow::Break`] stops the scan (no further page is fetched).
    fn page(&mut self, page: WatchlistPage) -> ControlFlow<()>;
}

impl<F: FnMut(WatchlistPage) -> ControlFlow<()> + Send> PageSink for F {
    fn page(&mut self, page: WatchlistPage) -> ControlFlow<()> {
        self(page)
    }
}

impl PageSink for Tally {
    fn page(&mut self, page: WatchlistPage) -> ControlFlow<()> {
        Tally::page(self, page.hits, page.records)
    }
}

/// Where a scan's pages go: an owned [`PageSink`] (a `'static` one, so the ports can be
/// mocked).
pub type Pages = dyn PageSink + 'static;

/// One page of a watchlist scan, as it arrives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WatchlistPage {
    /// How many records the source says the whole scan holds, when it says.
    pub hits: Option<u64>,
    /// The page's records.
    pub records: Vec<BreachRecord>,
}

/// A source of SpyCloud breach data.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BreachSource: Send + Sync {
    /// Every breach record of `email`, all pages, in any order.
    ///
    /// # Errors
    /// Any [`SourceError`]; an email the source refuses as malformed (SpyCloud's 400) is not an
    /// error but an empty list.
    async fn breaches(&self, key: &ApiKey, email: &Email)
    -> Result<Vec<BreachRecord>, SourceError>;

    /// The catalogs among `ids` that exist, in any order; an id with no catalog is left out.
    ///
    /// # Errors
    /// Any [`SourceError`] that stops the whole fetch.
    async fn catalogs(&self, key: &ApiKey, ids: &[CatalogId]) -> Result<Vec<Catalog>, SourceError>;

    /// The breach records of the key's whole watchlist (every employee) that `query` asks for,
    /// handed to `on_page` page by page as they arrive, so the caller holds one page at a
    /// time. Stops when the pages end or `on_page` breaks.
    ///
    /// A source without a watchlist keeps this default, which answers
    /// [`SourceError::Unexpected`]: the dashboard then shows that error.
    ///
    /// # Errors
    /// Any [`SourceError`]; pages handed over before it stay handed over.
    async fn watchlist(
        &self,
        key: &ApiKey,
        query: &WatchlistQuery,
        on_page: &mut Pages,
    ) -> Result<(), SourceError> {
        let _ = (key, query, on_page);
        Err(SourceError::Unexpected(
            "This breach source has no watchlist to scan.".to_owned(),
        ))
    }

    /// One authenticated call that proves the key works and the source answers.
    ///
    /// # Errors
    /// Any [`SourceError`].
    async fn probe(&self, key: &ApiKey) -> Result<(), SourceError>;
}
