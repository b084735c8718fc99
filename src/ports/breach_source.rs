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
///
/// ```
/// use spycloud_relay::adapters::MemorySource;
/// use spycloud_relay::domain::{ApiKey, RawRecord, SeverityFilter, Timestamp};
/// use spycloud_relay::ports::{BreachSource, WatchlistQuery};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let records: Vec<RawRecord> = serde_json::from_str(r#"[
///     {"email": "pat@example.com", "severity": 25, "spycloud_publish_date": "2024-05-30T00:00:00Z"},
///     {"email": "lee@example.com", "severity": 2, "spycloud_publish_date": "2024-05-31T00:00:00Z"},
///     {"email": "sam@example.com", "severity": 25, "spycloud_publish_date": "2024-04-01T00:00:00Z"}
/// ]"#)?;
/// let source = MemorySource::sample().with_watchlist(records);
/// let query = WatchlistQuery {
///     since: Timestamp::parse("2024-05-01T00:00:00Z")?.day(),
///     severity: SeverityFilter::parse("20,25"),
/// };
/// let mut found: Vec<RawRecord> = Vec::new();
/// source.watchlist(&ApiKey::parse("demo-api-key")?, &query, &mut found).await?;
/// let emails: Vec<_> = found.iter().filter_map(|record| record.text("email")).collect();
/// assert_eq!(emails, ["pat@example.com"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchlistQuery {
    /// The first UTC day of records wanted (SpyCloud's `since`).
    pub since: Day,
    /// Only records of these SpyCloud severity codes (the module setting `SEVERITY`, sent as
    /// `severity=`); `None`: every severity.
    pub severity: Option<SeverityFilter>,
}

/// A source of SpyCloud breach data. The [`ports`](crate::ports) module shows one over a
/// `Vec`; here one whose quota is spent, and what the relay makes of its errors:
///
/// ```
/// use std::sync::Arc;
/// use spycloud_relay::ports::async_trait;
/// use spycloud_relay::{Error, Relay, RelaySettings};
/// use spycloud_relay::adapters::FixedCredentials;
/// use spycloud_relay::domain::*;
/// use spycloud_relay::ports::BreachSource;
///
/// struct QuotaSpent;
///
/// #[async_trait]
/// impl BreachSource for QuotaSpent {
///     async fn breaches(
///         &self, _: &ApiKey, _: &Lookup, _: &BreachQuery, _: &mut (dyn RecordSink + 'static),
///     ) -> Result<(), SourceError> {
///         Err(SourceError::RateLimited)
///     }
///     async fn catalogs(&self, _: &ApiKey, _: &[CatalogId]) -> Result<Vec<Catalog>, SourceError> {
///         Err(SourceError::RateLimited)
///     }
///     async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
///         Err(SourceError::RateLimited)
///     }
///     // `watchlist` keeps its default: this source has none.
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
/// # let decoder = Arc::new(FixedCredentials(credentials.clone()));
/// let relay = Relay::new(Arc::new(QuotaSpent), decoder, RelaySettings::default());
///
/// let looked_up = relay.lookup(&credentials, &[Observable::new("ip", "203.0.113.77")]).await;
/// assert_eq!(looked_up.fatal, Some(Error::RateLimited));
///
/// let tile = relay.tile_data_as(&credentials, TileId::ExposureSummary, Period::DEFAULT).await;
/// let no_watchlist = SourceError::Unexpected("This breach source has no watchlist to scan.".into());
/// assert_eq!(tile.unwrap_err(), Error::Upstream(no_watchlist));
/// # Ok(()) }
/// ```
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
