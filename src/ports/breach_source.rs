//! Where breach data comes from: SpyCloud in production, memory in the demo, anything an
//! embedder brings.

// mockall's copy of `&mut (dyn RecordSink + 'static)` sees the parentheses as unneeded; they
// are not (without them the `+` is ambiguous).
#![allow(unused_parens)]

use async_trait::async_trait;

use crate::domain::{
    ApiKey, BreachQuery, Catalog, CatalogId, Day, Lookup, RecordSink, SeverityFilter, SourceError,
};

/// What a watchlist scan asks for: the records published since a day, optionally only some
/// severities. (The module setting `SINCE_DAYS` does not apply: the tile's period decides.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchlistQuery {
    /// The first UTC day of records wanted (SpyCloud's `since`).
    pub since: Day,
    /// Only records of these SpyCloud severity codes (the module setting `SEVERITY`, sent as
    /// `severity=`); `None`: every severity.
    pub severity: Option<SeverityFilter>,
}

/// A source of SpyCloud breach data.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BreachSource: Send + Sync {
    /// Feeds the breach records of `lookup` that match `query` into `into`, page after page as
    /// they arrive (following cursors), each page's `hits` too; stops asking for records once
    /// `into` wants no more ([`RecordSink::wants_more`]). The relay's sink keeps the newest
    /// records the answer holds, so no lookup holds more records than it returns.
    ///
    /// # Errors
    /// Any [`SourceError`]; a value the source refuses as malformed (SpyCloud's 400) is not an
    /// error but no (more) records.
    async fn breaches(
        &self,
        key: &ApiKey,
        lookup: &Lookup,
        query: &BreachQuery,
        // 'static: sinks own what they collect, and mockall needs a named object lifetime.
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError>;

    /// The catalogs among `ids` that exist, in any order; an id with no catalog is left out.
    ///
    /// # Errors
    /// Any [`SourceError`] that stops the whole fetch.
    async fn catalogs(&self, key: &ApiKey, ids: &[CatalogId]) -> Result<Vec<Catalog>, SourceError>;

    /// Feeds the breach records of the key's whole watchlist (every employee) that `query` asks
    /// for into `into`, page after page as they arrive (following cursors), each page's `hits`
    /// too, so the caller holds at most one record at a time; stops asking for records once
    /// `into` wants no more ([`RecordSink::wants_more`]).
    ///
    /// A source without a watchlist keeps this default, which answers
    /// [`SourceError::Unexpected`]: the dashboard then shows that error.
    ///
    /// # Errors
    /// Any [`SourceError`]; records fed before it stay fed.
    async fn watchlist(
        &self,
        key: &ApiKey,
        query: &WatchlistQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        let _ = (key, query, into);
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
