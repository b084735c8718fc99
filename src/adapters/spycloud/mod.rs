//! SpyCloud Enterprise API over reqwest: the production [`BreachSource`].
//!
//! Everything that is about talking to SpyCloud lives here and nowhere else, one concern a file:
//! - this file: the client, its limits, and the three calls of [`BreachSource`] (paged
//!   breach data, catalogs in batches, the probe);
//! - `settings`: how the client reaches SpyCloud ([`SpyCloudSettings`], [`RetryPolicy`]);
//! - `urls`: the URLs and their encoding, and the cursors that lead from page to page;
//! - `calls`: one GET with rate limiting and retries, the causes SpyCloud names in headers,
//!   and every HTTP status and transport failure as one [`SourceError`] (`status_error`,
//!   `transport_error`);
//! - `pages`: a page's JSON envelope read straight into records or catalogs.
//!
//! The relay above only ever sees records, catalogs and those errors.

mod calls;
mod pages;
mod settings;
mod urls;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, USER_AGENT};
use reqwest::{Client, StatusCode};

use crate::BuildError;
use crate::adapters::local::LocalRateLimiter;
use crate::domain::SourceError;
use crate::domain::{ApiKey, BreachQuery, Catalog, CatalogId, Lookup, RecordSink};
use crate::ports::{BreachSource, RateLimiter, WatchlistQuery};
use crate::telemetry::{CATALOG, WATCHLIST};

use calls::success_body;
use pages::{fold_breach_page, fold_catalog_page};
pub(crate) use settings::SpyCloudBuildError;
pub use settings::{RetryPolicy, SpyCloudSettings};
use urls::{Cursors, Paging, breach_data_url, watchlist_url};

/// The SpyCloud Enterprise API the contract names by default (`SPYCLOUD_API_URL`).
pub const DEFAULT_BASE_URL: &str = "https://api.spycloud.io/enterprise-v2";

/// SpyCloud answers at most this many ids per catalog request.
const CATALOG_BATCH: usize = 10;
/// A cursor chain longer than this is a broken upstream, not a big breach.
const MAX_PAGES: usize = 100;
/// The same for a watchlist scan, which reads up to 100 times as many records as a lookup
/// (100 x `RELAY_MAX_RECORDS`), so may follow 100 times as many pages.
const MAX_SCAN_PAGES: usize = 100 * MAX_PAGES;
/// The most of a response body read into memory; a hostile upstream cannot exhaust it.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The most of one catalog page read: a batch asks for at most [`CATALOG_BATCH`] catalogs of a
/// few KiB each, so an honest page is far below it.
const MAX_CATALOG_BYTES: usize = 1024 * 1024;
/// The most pages one catalog batch follows: SpyCloud answers ten ids in one.
const MAX_CATALOG_PAGES: usize = 10;
/// The catalog batches of one call asked at once: a call's memory is at most this many pages.
const CATALOG_BATCHES_AT_ONCE: usize = 4;
/// The most of an error answer's body read: enough for its message, and a huge one still
/// gives the error its status stands for.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// How much of an unexpected answer's body becomes the error message.
const MAX_ERROR_CHARS: usize = 1000;

/// The SpyCloud Enterprise API as a [`BreachSource`] ([`SpyCloudClient::new`] and
/// [`RetryPolicy`] show it at work). [`Relay::builder`](crate::Relay::builder) makes one
/// with a catalog cache in front; an embedder may use it alone.
///
/// Holds one connection pool and one rate limiter; share it (`Arc`) across requests so both
/// are shared too. Which limiter (this process's, or one shared by replicas) it does not know.
pub struct SpyCloudClient {
    http: Client,
    base: String,
    timeout: Duration,
    retry: RetryPolicy,
    limiter: Arc<dyn RateLimiter>,
}

impl std::fmt::Debug for SpyCloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpyCloudClient")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl SpyCloudClient {
    /// A client for `settings.base_url`.
    ///
    /// # Errors
    /// [`BuildError::SpyCloud`] when the base is not an http(s) URL, or when reqwest cannot
    /// build its client.
    ///
    /// ```
    /// use spycloud_relay::BuildError;
    /// use spycloud_relay::adapters::{SpyCloudClient, SpyCloudSettings};
    /// use spycloud_relay::domain::{ApiKey, SourceError};
    /// use spycloud_relay::ports::BreachSource;
    /// # use serde_json::json;
    /// # use wiremock::matchers::{header, path};
    /// # use wiremock::{Mock, MockServer, ResponseTemplate};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let spycloud = MockServer::start().await;
    /// # Mock::given(path("/watchlist/example.org")).and(header("X-API-Key", "my key"))
    /// #     .respond_with(ResponseTemplate::new(200).set_body_json(json!({"cursor": "", "hits": 0, "results": []})))
    /// #     .mount(&spycloud).await;
    /// # Mock::given(path("/watchlist/example.org")).and(header("X-API-Key", "revoked key"))
    /// #     .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid API key"})))
    /// #     .mount(&spycloud).await;
    /// let settings = SpyCloudSettings { base_url: spycloud.uri(), ..SpyCloudSettings::default() };
    /// let client = SpyCloudClient::new(settings)?;
    /// // One cheap authenticated call: does the key work?
    /// client.probe(&ApiKey::parse("my key")?).await?;
    /// let refused = client.probe(&ApiKey::parse("revoked key")?).await;
    /// assert_eq!(refused, Err(SourceError::Unauthorized("Invalid API key".to_owned())));
    ///
    /// let base_url = "ftp://api.spycloud.io".to_owned();
    /// let ftp = SpyCloudSettings { base_url, ..SpyCloudSettings::default() };
    /// let why = r#"invalid SpyCloud API URL "ftp://api.spycloud.io""#;
    /// assert_eq!(SpyCloudClient::new(ftp).unwrap_err(), BuildError::SpyCloud(why.to_owned()));
    /// # Ok(()) }
    /// ```
    pub fn new(settings: SpyCloudSettings) -> Result<Self, BuildError> {
        let limiter = Arc::new(LocalRateLimiter::new(settings.max_rps));
        Ok(Self::with_rate_limiter(settings, limiter)?)
    }

    /// A client for `settings.base_url` that waits for `limiter` before every call
    /// (`settings.max_rps` is then the limiter's business).
    ///
    /// # Errors
    /// As [`SpyCloudClient::new`].
    pub(crate) fn with_rate_limiter(
        settings: SpyCloudSettings,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<Self, SpyCloudBuildError> {
        let base = settings.base_url.trim().trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => return Err(SpyCloudBuildError::InvalidUrl(settings.base_url)),
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("spycloud-relay/", env!("CARGO_PKG_VERSION"))),
        );
        let http = Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .build()?;
        Ok(Self {
            http,
            base,
            timeout: settings.timeout,
            retry: settings.retry,
            limiter,
        })
    }

    /// The pages of a breach-data `url`, each folded into `into` as it arrives (records are
    /// read one by one out of the page, so a page never exists as a list of records); stops
    /// when `into` wants no more. `paging` says how many pages at most and what a 400 means.
    async fn breach_pages(
        &self,
        key: &ApiKey,
        endpoint: &'static str,
        url: &str,
        paging: Paging,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        let mut cursors = Cursors::new(url, paging.max_pages);
        let mut next = url.to_owned();
        while into.wants_more() {
            let answer = self.get(key, endpoint, &next, MAX_BODY_BYTES).await?;
            if paging.refused_is_empty && answer.status == StatusCode::BAD_REQUEST {
                // SpyCloud refuses the value: no results (or, after a cursor, no more).
                return Ok(());
            }
            let cursor = fold_breach_page(&success_body(answer)?, into)?;
            match cursors.follow(cursor)? {
                Some(url) => next = url,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// Catalogs of one batch of at most [`CATALOG_BATCH`] ids: each page read straight into
    /// the catalogs asked for (one catalog at a time; the others, and a second answer for an
    /// id, are skipped), at most [`MAX_CATALOG_PAGES`] pages of [`MAX_CATALOG_BYTES`] each,
    /// and no page after the one that completed the batch.
    async fn catalog_batch(
        &self,
        key: &ApiKey,
        ids: &[CatalogId],
    ) -> Result<Vec<Catalog>, SourceError> {
        let list = ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let url = format!("{}/breach/catalog/{list}", self.base);
        let mut found = Vec::with_capacity(ids.len());
        let mut cursors = Cursors::new(&url, MAX_CATALOG_PAGES);
        let mut next = url.clone();
        loop {
            let answer = self.get(key, CATALOG, &next, MAX_CATALOG_BYTES).await?;
            let cursor = fold_catalog_page(&success_body(answer)?, ids, &mut found)?;
            if found.len() == ids.len() {
                return Ok(found);
            }
            match cursors.follow(cursor)? {
                Some(url) => next = url,
                None => return Ok(found),
            }
        }
    }
}

#[async_trait]
impl BreachSource for SpyCloudClient {
    async fn breaches(
        &self,
        key: &ApiKey,
        lookup: &Lookup,
        query: &BreachQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        let url = breach_data_url(&self.base, lookup, query);
        self.breach_pages(key, lookup.kind().endpoint(), &url, Paging::LOOKUP, into)
            .await
    }

    async fn catalogs(&self, key: &ApiKey, ids: &[CatalogId]) -> Result<Vec<Catalog>, SourceError> {
        let mut seen = HashSet::new();
        let unique: Vec<CatalogId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let batches: Vec<Vec<CatalogId>> =
            unique.chunks(CATALOG_BATCH).map(<[_]>::to_vec).collect();
        let batches = futures::stream::iter(batches)
            .map(|batch| async move { self.catalog_batch(key, &batch).await })
            .buffer_unordered(CATALOG_BATCHES_AT_ONCE);
        let found: Vec<Vec<Catalog>> = batches.try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn watchlist(
        &self,
        key: &ApiKey,
        query: &WatchlistQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        let url = watchlist_url(&self.base, query);
        self.breach_pages(key, WATCHLIST, &url, Paging::SCAN, into)
            .await
    }

    async fn probe(&self, key: &ApiKey) -> Result<(), SourceError> {
        // The call the Python relay's health check made: cheap, and it needs a valid key.
        let url = format!("{}/watchlist/example.org", self.base);
        let answer = self.get(key, WATCHLIST, &url, MAX_BODY_BYTES).await?;
        if answer.status == StatusCode::BAD_REQUEST {
            return Ok(());
        }
        success_body(answer).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_base_urls_are_refused() {
        for base in ["", "not a url", "ftp://example.org"] {
            let settings = SpyCloudSettings {
                base_url: base.to_owned(),
                ..SpyCloudSettings::default()
            };
            assert!(matches!(
                SpyCloudClient::new(settings),
                Err(BuildError::SpyCloud(_))
            ));
        }
    }
}
