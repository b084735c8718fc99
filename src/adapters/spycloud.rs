//! SpyCloud Enterprise API over reqwest: the production [`BreachSource`].
//!
//! Everything that is about talking to SpyCloud lives here and nowhere else: the URLs and their
//! encoding, the headers, following cursors, retrying what is worth retrying, staying under the
//! per-key request rate, and turning every HTTP status and transport failure into one
//! [`SourceError`] (in `status_error` and `transport_error`). The relay above only ever sees
//! records, catalogs and those errors.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::BuildError;
use crate::adapters::local::LocalRateLimiter;
use crate::domain::SourceError;
use crate::domain::email::truncate;
use crate::domain::hashed::{Hashes, Table};
use crate::domain::{
    ApiKey, BreachQuery, Catalog, CatalogId, Lookup, RawRecord, RecordSink, SeverityFilter,
};
use crate::ports::{BreachSource, RateLimiter, WatchlistQuery};
use crate::telemetry::{self, CATALOG, WATCHLIST};

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

/// A looked-up value goes in a path segment: `@` and unreserved characters stay, everything
/// else (`/ ? # % + :`, spaces, non-ASCII) is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');
/// A query value: only unreserved characters stay literal.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How the client reaches SpyCloud; [`SpyCloudSettings::default`] holds the contract's defaults.
///
/// ```
/// use std::time::Duration;
/// use spycloud_relay::Relay;
/// use spycloud_relay::adapters::SpyCloudSettings;
///
/// let defaults = SpyCloudSettings::default();
/// assert_eq!(defaults.base_url, "https://api.spycloud.io/enterprise-v2");
/// assert_eq!((defaults.timeout, defaults.max_rps.get()), (Duration::from_secs(10), 10));
///
/// let eu = SpyCloudSettings {
///     base_url: "https://api.eu.spycloud.example/enterprise-v2/".to_owned(),
///     timeout: Duration::from_secs(5),
///     ..defaults
/// };
/// let relay = Relay::builder().spycloud(eu).build()?;
/// # Ok::<(), spycloud_relay::BuildError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpyCloudSettings {
    /// The API base, e.g. `https://api.spycloud.io/enterprise-v2`; a trailing slash is fine.
    pub base_url: String,
    /// How long one upstream call (one HTTP attempt, body included) may take.
    pub timeout: Duration,
    /// Requests per second per API key, also the burst (`SPYCLOUD_MAX_RPS`): per process, or
    /// shared by every replica when the relay is built with Redis.
    pub max_rps: NonZeroU32,
    /// What to retry and how long to wait in between.
    pub retry: RetryPolicy,
}

impl Default for SpyCloudSettings {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(10),
            max_rps: NonZeroU32::new(10).expect("10 is not zero"),
            retry: RetryPolicy::default(),
        }
    }
}

/// Retries of 429 (unless the quota is spent), 502/503/504 and connection failures.
/// Timeouts are not retried: the relay has an overall deadline.
///
/// Here SpyCloud (a stand-in) is unavailable once, then answers:
///
/// ```
/// use std::time::Duration;
/// use spycloud_relay::adapters::{RetryPolicy, SpyCloudClient, SpyCloudSettings};
/// use spycloud_relay::domain::{ApiKey, BreachQuery, Lookup, ObservableType, RawRecord};
/// use spycloud_relay::ports::BreachSource;
/// # use serde_json::json;
/// # use wiremock::matchers::path;
/// # use wiremock::{Mock, MockServer, ResponseTemplate};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let spycloud = MockServer::start().await;
/// # Mock::given(path("/breach/data/emails/pat@example.com"))
/// #     .respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&spycloud).await;
/// # let record = json!({"spycloud_publish_date": "2024-03-01T00:00:00Z"});
/// # Mock::given(path("/breach/data/emails/pat@example.com"))
/// #     .respond_with(ResponseTemplate::new(200).set_body_json(json!({"cursor": "", "hits": 1, "results": [record]})))
/// #     .mount(&spycloud).await;
/// let defaults = RetryPolicy::default();
/// assert_eq!((defaults.max_retries, defaults.base_backoff), (2, Duration::from_millis(200)));
/// assert_eq!(defaults.max_retry_after, Duration::from_secs(5));
///
/// let retry = RetryPolicy { base_backoff: Duration::from_millis(10), ..defaults };
/// let base_url = spycloud.uri();
/// let client = SpyCloudClient::new(SpyCloudSettings { base_url, retry, ..Default::default() })?;
/// let key = ApiKey::parse("my key")?;
/// let pat = Lookup::parse(ObservableType::Email, "pat@example.com")?;
/// let mut records: Vec<RawRecord> = Vec::new();
/// client.breaches(&key, &pat, &BreachQuery::default(), &mut records).await?;
/// assert_eq!(records.len(), 1); // on the second attempt
/// # assert_eq!(spycloud.received_requests().await.unwrap().len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first one.
    pub max_retries: u32,
    /// The first backoff; it doubles each retry and gets random jitter on top.
    pub base_backoff: Duration,
    /// The longest wait a `Retry-After` header (or a backoff) may impose.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt + 1`: `base * 2^attempt` plus up to half of that
    /// again as jitter, never above `max_retry_after`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt));
        let jitter_ms = u64::try_from(exp.as_millis() / 2).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(rand::rng().random_range(0..=jitter_ms));
        exp.saturating_add(jitter).min(self.max_retry_after)
    }
}

/// Why a [`SpyCloudClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpyCloudBuildError {
    /// `base_url` is not an absolute http(s) URL.
    #[error("invalid SpyCloud API URL {0:?}")]
    InvalidUrl(String),
    /// The HTTP client could not be set up (TLS backend, system configuration).
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl From<SpyCloudBuildError> for BuildError {
    fn from(error: SpyCloudBuildError) -> Self {
        Self::SpyCloud(error.to_string())
    }
}

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

    /// One GET with rate limiting and retries, a success's body read up to `max_bytes`; the
    /// final answer whatever its status. `endpoint` names the call in logs and metrics
    /// (`emails`, `catalog`, `watchlist`, ...).
    async fn get(
        &self,
        key: &ApiKey,
        endpoint: &'static str,
        url: &str,
        max_bytes: usize,
    ) -> Result<Answer, SourceError> {
        let fingerprint = key.fingerprint();
        let mut attempt = 0;
        loop {
            self.limiter.until_ready(&fingerprint).await;
            let outcome = self.attempt(key, endpoint, url, max_bytes).await;
            let wait = match &outcome {
                Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => {
                    if answer.signal.is_some() {
                        None
                    } else {
                        Some(
                            answer
                                .retry_after
                                .map(|wait| wait.min(self.retry.max_retry_after))
                                .unwrap_or_else(|| self.retry.backoff(attempt)),
                        )
                    }
                }
                Ok(answer)
                    if matches!(
                        answer.status,
                        StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    ) =>
                {
                    Some(self.retry.backoff(attempt))
                }
                Err(SourceError::Connection(_)) => Some(self.retry.backoff(attempt)),
                _ => None,
            };
            match wait {
                Some(wait) if attempt < self.retry.max_retries => {
                    let status = match &outcome {
                        Ok(answer) => answer.status.as_str().to_owned(),
                        Err(_) => "error".to_owned(),
                    };
                    tracing::info!(
                        endpoint,
                        status,
                        retry = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        "retrying a SpyCloud call"
                    );
                    telemetry::upstream_retry(endpoint);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return outcome,
            }
        }
    }

    /// One HTTP attempt (a success's body read up to `max_bytes`); transport failures are
    /// already mapped.
    async fn attempt(
        &self,
        key: &ApiKey,
        endpoint: &'static str,
        url: &str,
        max_bytes: usize,
    ) -> Result<Answer, SourceError> {
        let mut key_header = HeaderValue::from_str(key.expose())
            .map_err(|_| SourceError::Unauthorized("Unauthorized".to_owned()))?;
        key_header.set_sensitive(true);
        let started = std::time::Instant::now();
        let mut response = self
            .http
            .get(url)
            .header("X-API-Key", key_header)
            .send()
            .await
            .map_err(|error| {
                telemetry::upstream_call(endpoint, "error", None, started.elapsed());
                transport_error(&error, self.timeout)
            })?;
        let status = response.status();
        let headers = response.headers();
        let signal = Signal::of(status, headers);
        telemetry::upstream_call(
            endpoint,
            status.as_str(),
            signal.map(Signal::name),
            started.elapsed(),
        );
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // A success is read whole or refused; of an error answer, only its start is read.
        let success = status.is_success();
        let limit = if success {
            max_bytes
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let announced = response.content_length().unwrap_or(0);
        if success && announced > limit as u64 {
            return Err(too_big(endpoint, limit));
        }
        // Sized once from the announced length (already checked against the cap).
        let mut body = Vec::with_capacity(announced.min(limit as u64) as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| transport_error(&error, self.timeout))?
        {
            let room = limit - body.len();
            if chunk.len() > room {
                if success {
                    return Err(too_big(endpoint, limit));
                }
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            retry_after,
            signal,
            body,
        })
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

/// `{base}/breach/data/<endpoint>/<value, percent-encoded>`, with `severity=` and `since=`
/// when the query sets them.
fn breach_data_url(base: &str, lookup: &Lookup, query: &BreachQuery) -> String {
    let value = lookup.to_string();
    let mut url = format!(
        "{base}/breach/data/{}/{}",
        lookup.kind().endpoint(),
        utf8_percent_encode(&value, PATH_SEGMENT)
    );
    let mut separator = '?';
    if let Some(severity) = &query.severity {
        url.push(separator);
        push_severity(&mut url, severity);
        separator = '&';
    }
    if let Some(since) = query.since {
        url.push(separator);
        url.push_str(&format!("since={}", since.format("%Y-%m-%d")));
    }
    url
}

/// `{base}/breach/data/watchlist?since=<day>`, with `&severity=` when the query sets it.
fn watchlist_url(base: &str, query: &WatchlistQuery) -> String {
    let mut url = format!("{base}/breach/data/watchlist?since={}", query.since);
    if let Some(severity) = &query.severity {
        url.push('&');
        push_severity(&mut url, severity);
    }
    url
}

/// `severity=<codes>`, the module setting `SEVERITY` on a breach-data call.
fn push_severity(url: &mut String, severity: &SeverityFilter) {
    url.push_str("severity=");
    url.extend(utf8_percent_encode(&severity.query_value(), QUERY_VALUE));
}

/// How one paged breach-data call follows its pages.
#[derive(Debug, Clone, Copy)]
struct Paging {
    /// The most pages it follows ([`Cursors`]).
    max_pages: usize,
    /// Whether a 400 means no (more) records, SpyCloud refusing the looked-up value, rather
    /// than an error.
    refused_is_empty: bool,
}

impl Paging {
    /// A lookup (email, domain, IP, username): SpyCloud's 400 refuses the value.
    const LOOKUP: Self = Self {
        max_pages: MAX_PAGES,
        refused_is_empty: true,
    };
    /// The watchlist scan: there is no value to refuse, so a 400 is an error like any other.
    const SCAN: Self = Self {
        max_pages: MAX_SCAN_PAGES,
        refused_is_empty: false,
    };
}

/// The cursors of one paged call: each leads to the next page's URL (the cursor joins the
/// query the URL already has, if any), none may repeat, and a chain may not pass its page cap
/// ([`MAX_PAGES`] for a lookup or a catalog call, [`MAX_SCAN_PAGES`] for a watchlist scan).
///
/// Cursors are remembered by a 64-bit seeded hash, so a chain of long cursors costs 8 bytes
/// a page; two different cursors with the same hash would be taken for a repeat (a chance of
/// about 1 in 10^11 for a 10 000-page chain).
struct Cursors<'a> {
    url: &'a str,
    seen: Table<()>,
    hashes: Hashes,
    pages: usize,
    max_pages: usize,
}

impl<'a> Cursors<'a> {
    /// The cursors of the call to `url`, which may follow `max_pages` pages in all.
    fn new(url: &'a str, max_pages: usize) -> Self {
        Self {
            url,
            seen: Table::default(),
            hashes: Hashes::default(),
            pages: 1,
            max_pages,
        }
    }

    /// The URL of the page a page's `cursor` names; `None` after the last page.
    ///
    /// # Errors
    /// A repeated cursor, or one more page than the cap: following them would loop or
    /// exhaust the relay, and stopping would drop records without a word.
    fn follow(&mut self, cursor: Option<Value>) -> Result<Option<String>, SourceError> {
        let cursor = match cursor {
            Some(Value::String(cursor)) if !cursor.is_empty() => cursor,
            _ => return Ok(None),
        };
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let next = format!(
            "{}{separator}cursor={}",
            self.url,
            utf8_percent_encode(&cursor, QUERY_VALUE)
        );
        if !self.seen.insert(self.hashes.of(&cursor)) {
            return Err(SourceError::InvalidResponse(
                "SpyCloud repeated a page cursor".to_owned(),
            ));
        }
        if self.pages >= self.max_pages {
            return Err(SourceError::InvalidResponse(format!(
                "SpyCloud kept paginating past {} pages",
                self.max_pages
            )));
        }
        self.pages += 1;
        Ok(Some(next))
    }
}

/// What one HTTP attempt brought back.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// What SpyCloud's headers said beside a 429 or 403, if they named a cause.
    signal: Option<Signal>,
    body: Vec<u8>,
}

/// The causes SpyCloud names in headers beside its status (other integrations read them too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// 429 with `x-amzn-ErrorType: LimitExceededException`: the key's monthly quota is used
    /// up; waiting won't help, so it is not retried.
    QuotaUsedUp,
    /// 403 with `SpyCloud-Error: Invalid IP`.
    InvalidIp,
    /// 403 with `SpyCloud-Error: Invalid API key`.
    InvalidKey,
}

impl Signal {
    /// The signal of an answer's status and headers, if it carries one.
    fn of(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        match status {
            StatusCode::TOO_MANY_REQUESTS => header("x-amzn-ErrorType")
                .is_some_and(|kind| kind.trim().starts_with("LimitExceededException"))
                .then_some(Self::QuotaUsedUp),
            StatusCode::FORBIDDEN => match header("SpyCloud-Error").map(str::trim) {
                Some(reason) if reason.eq_ignore_ascii_case("Invalid IP") => Some(Self::InvalidIp),
                Some(reason) if reason.eq_ignore_ascii_case("Invalid API key") => {
                    Some(Self::InvalidKey)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// How the request's log line names it.
    fn name(self) -> &'static str {
        match self {
            Self::QuotaUsedUp => "LimitExceededException",
            Self::InvalidIp => "Invalid IP",
            Self::InvalidKey => "Invalid API key",
        }
    }

    fn error(self) -> SourceError {
        match self {
            Self::QuotaUsedUp => SourceError::QuotaUsedUp,
            Self::InvalidIp => SourceError::IpNotAllowed,
            Self::InvalidKey => SourceError::InvalidApiKey,
        }
    }
}

/// Folds one breach-data page into `into`, record by record as the JSON is read, and returns
/// its cursor. Records past what `into` wants are skipped unread.
fn fold_breach_page(body: &[u8], into: &mut dyn RecordSink) -> Result<Option<Value>, SourceError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid_json())?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let mut shape = PageShape::default();
    let folded = BreachPage {
        into,
        shape: &mut shape,
    }
    .deserialize(&mut reader)
    .and_then(|cursor| reader.end().map(|()| cursor));
    match folded {
        Ok(cursor) if shape.results => Ok(cursor),
        Ok(_) => Err(SourceError::InvalidResponse(
            "SpyCloud's answer has no results array".to_owned(),
        )),
        Err(error) if error.is_data() && shape.in_results => Err(SourceError::InvalidResponse(
            "a breach record is not a JSON object".to_owned(),
        )),
        Err(error) if error.is_data() => Err(SourceError::InvalidResponse(
            "SpyCloud's answer has no results array".to_owned(),
        )),
        Err(_) => Err(invalid_json()),
    }
}

fn invalid_json() -> SourceError {
    SourceError::InvalidResponse("SpyCloud answered with invalid JSON".to_owned())
}

/// Folds one catalog page into `found`, catalog by catalog as the JSON is read: the catalogs of
/// `wanted` not yet found are kept, everything else (other ids, a second answer for an id, a
/// catalog in an unknown shape) is dropped once read. Returns the page's cursor.
fn fold_catalog_page(
    body: &[u8],
    wanted: &[CatalogId],
    found: &mut Vec<Catalog>,
) -> Result<Option<Value>, SourceError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid_json())?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let mut results = false;
    let folded = CatalogPage {
        wanted,
        found,
        results: &mut results,
    }
    .deserialize(&mut reader)
    .and_then(|cursor| reader.end().map(|()| cursor));
    match folded {
        Ok(cursor) if results => Ok(cursor),
        Err(error) if !error.is_data() => Err(invalid_json()),
        _ => Err(SourceError::InvalidResponse(
            "SpyCloud's answer has no results array".to_owned(),
        )),
    }
}

/// A catalog page `{"cursor", "hits", "results": [...]}` read into the catalogs asked for;
/// its value is the cursor.
struct CatalogPage<'s> {
    wanted: &'s [CatalogId],
    found: &'s mut Vec<Catalog>,
    /// A `results` array was read to its end.
    results: &'s mut bool,
}

impl<'de> DeserializeSeed<'de> for CatalogPage<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        reader.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CatalogPage<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a page of breach catalogs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<Self::Value, A::Error> {
        let mut cursor = None;
        while let Some(field) = fields.next_key::<PageField>()? {
            match field {
                PageField::Cursor => cursor = fields.next_value::<Option<Value>>()?,
                PageField::Results => {
                    fields.next_value_seed(Catalogs {
                        wanted: self.wanted,
                        found: &mut *self.found,
                    })?;
                    *self.results = true;
                }
                PageField::Hits | PageField::Other => {
                    fields.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(cursor)
    }
}

/// A catalog page's `results` array, each catalog asked for kept as soon as it is read.
struct Catalogs<'s> {
    wanted: &'s [CatalogId],
    found: &'s mut Vec<Catalog>,
}

impl<'de> DeserializeSeed<'de> for Catalogs<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Catalogs<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of breach catalogs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut catalogs: A) -> Result<(), A::Error> {
        // One catalog's JSON at a time (a page is at most MAX_CATALOG_BYTES): its id decides
        // whether it is read into a catalog or dropped.
        while let Some(value) = catalogs.next_element::<Value>()? {
            let id = value.get("id").and_then(CatalogId::from_value);
            let wanted = id.is_some_and(|id| {
                self.wanted.contains(&id) && !self.found.iter().any(|found| found.id == id)
            });
            if !wanted {
                continue;
            }
            match serde_json::from_value::<Catalog>(value) {
                Ok(catalog) => self.found.push(catalog),
                Err(error) => {
                    tracing::debug!(%error, "skipping a catalog SpyCloud sent in an unknown shape");
                }
            }
        }
        Ok(())
    }
}

/// What reading a page showed about its shape, to say what was wrong with it.
#[derive(Default)]
struct PageShape {
    /// A `results` array was read to its end.
    results: bool,
    /// Reading was inside the `results` array.
    in_results: bool,
}

/// The fields of a page the relay reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum PageField {
    Cursor,
    Hits,
    Results,
    #[serde(other)]
    Other,
}

/// A page `{"cursor", "hits", "results": [...]}` read into a sink; its value is the cursor.
struct BreachPage<'s> {
    into: &'s mut dyn RecordSink,
    shape: &'s mut PageShape,
}

impl<'de> DeserializeSeed<'de> for BreachPage<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        reader.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BreachPage<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a page of breach records")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<Self::Value, A::Error> {
        let mut cursor = None;
        while let Some(field) = fields.next_key::<PageField>()? {
            match field {
                PageField::Cursor => cursor = fields.next_value::<Option<Value>>()?,
                PageField::Hits => {
                    if let Some(hits) = fields.next_value::<Value>()?.as_u64() {
                        self.into.hits(hits);
                    }
                }
                PageField::Results => {
                    fields.next_value_seed(Records {
                        into: &mut *self.into,
                        shape: &mut *self.shape,
                    })?;
                    self.shape.in_results = false;
                    self.shape.results = true;
                }
                PageField::Other => {
                    fields.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(cursor)
    }
}

/// A `results` array, each record handed to the sink as soon as it is read.
struct Records<'s> {
    into: &'s mut dyn RecordSink,
    shape: &'s mut PageShape,
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of breach records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut records: A) -> Result<(), A::Error> {
        self.shape.in_results = true;
        while self.into.wants_more() {
            match records.next_element::<RawRecord>()? {
                Some(record) => self.into.add(record),
                None => return Ok(()),
            }
        }
        // The sink is full: the rest of the page is skipped, not built.
        while records.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// The body of a 2xx answer, or the error its status stands for.
fn success_body(answer: Answer) -> Result<Vec<u8>, SourceError> {
    if let Some(signal) = answer.signal {
        return Err(signal.error());
    }
    match status_error(answer.status, &answer.body) {
        None => Ok(answer.body),
        Some(error) => Err(error),
    }
}

/// The contract's status table: `None` for success, else the error the status stands for.
fn status_error(status: StatusCode, body: &[u8]) -> Option<SourceError> {
    if status.is_success() {
        return None;
    }
    let message = |fallback: &str| upstream_message(body).unwrap_or_else(|| fallback.to_owned());
    Some(match status {
        StatusCode::UNAUTHORIZED => SourceError::Unauthorized(message("Unauthorized")),
        StatusCode::FORBIDDEN => SourceError::Forbidden(message("Forbidden")),
        StatusCode::NOT_FOUND => SourceError::NotFound,
        StatusCode::INTERNAL_SERVER_ERROR => SourceError::Internal,
        StatusCode::TOO_MANY_REQUESTS => SourceError::RateLimited,
        _ => SourceError::Unexpected(
            truncate(&String::from_utf8_lossy(body), MAX_ERROR_CHARS).to_owned(),
        ),
    })
}

/// The `"message"` string of a JSON error body.
fn upstream_message(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body).ok()?.get("message")? {
        Value::String(message) => Some(message.clone()),
        _ => None,
    }
}

/// A success of a call to `endpoint` over `limit` bytes (a whole number of MiB).
fn too_big(endpoint: &str, limit: usize) -> SourceError {
    let answer = if endpoint == CATALOG {
        "catalog answer"
    } else {
        "answer"
    };
    SourceError::InvalidResponse(format!(
        "SpyCloud's {answer} is larger than {} MiB",
        limit / (1024 * 1024)
    ))
}

/// A reqwest failure as the contract's error. Messages name the cause, never the key (reqwest
/// errors do not carry headers) nor the URL (it holds the email).
fn transport_error(error: &reqwest::Error, timeout: Duration) -> SourceError {
    if error.is_timeout() {
        return SourceError::Timeout(format!(
            "SpyCloud did not answer within {} s",
            timeout.as_secs_f64()
        ));
    }
    if let Some(reason) = tls_failure(error) {
        return SourceError::Tls(reason);
    }
    let reason = root_cause(error);
    if error.is_connect() {
        SourceError::Connection(format!("could not connect to SpyCloud: {reason}"))
    } else {
        SourceError::Connection(format!("the connection to SpyCloud failed: {reason}"))
    }
}

/// The reason of a TLS failure anywhere in the error's source chain, if it is one.
///
/// rustls is not a direct dependency, so its errors are recognised by what they say (and by
/// the `InvalidData` I/O error hyper-rustls wraps them in).
fn tls_failure(error: &reqwest::Error) -> Option<String> {
    const TLS_WORDS: [&str; 5] = ["certificate", "tls", "ssl", "handshake", "corrupt message"];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        let lower = text.to_ascii_lowercase();
        let invalid_data = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if invalid_data || TLS_WORDS.iter().any(|word| lower.contains(word)) {
            return Some(root_cause(error));
        }
        source = cause.source();
    }
    None
}

/// The innermost message of the chain: the one that says what actually happened.
fn root_cause(error: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = error;
    while let Some(cause) = last.source() {
        last = cause;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_path_segment_encoding() {
        let encode = |s| utf8_percent_encode(s, PATH_SEGMENT).to_string();
        assert_eq!(encode("a.b-c_d~e@example.com"), "a.b-c_d~e@example.com");
        assert_eq!(
            encode("a+b/c?d#e%f g@example.com"),
            "a%2Bb%2Fc%3Fd%23e%25f%20g@example.com"
        );
    }

    #[test]
    fn each_lookup_calls_the_endpoint_of_its_type() {
        use crate::domain::ObservableType as T;
        for (kind, value, endpoint) in [
            (T::Email, "a@b.co", "emails"),
            (T::Domain, "b.co", "domains"),
            (T::Ip, "192.0.2.1", "ips"),
            (T::Ipv6, "::1", "ips"),
            (T::User, "emails", "usernames"),
        ] {
            let lookup = Lookup::parse(kind, value).unwrap();
            let url = breach_data_url("https://api.test/v2", &lookup, &BreachQuery::default());
            assert_eq!(lookup.kind().endpoint(), endpoint, "{url}");
            assert!(
                url.starts_with(&format!("https://api.test/v2/breach/data/{endpoint}/")),
                "{url}"
            );
        }
        assert_eq!(
            telemetry::endpoints(),
            [
                "emails",
                "domains",
                "ips",
                "usernames",
                "catalog",
                "watchlist"
            ]
        );
    }

    #[test]
    fn status_table() {
        let unauthorized = status_error(StatusCode::UNAUTHORIZED, br#"{"message":"bad key"}"#);
        assert_eq!(
            unauthorized,
            Some(SourceError::Unauthorized("bad key".into()))
        );
        assert_eq!(
            status_error(StatusCode::FORBIDDEN, br#"{"message":7}"#),
            Some(SourceError::Forbidden("Forbidden".into()))
        );
        assert_eq!(status_error(StatusCode::OK, b""), None);
        let long = "x".repeat(5000);
        assert_eq!(
            status_error(StatusCode::IM_A_TEAPOT, long.as_bytes()),
            Some(SourceError::Unexpected("x".repeat(MAX_ERROR_CHARS)))
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_retries: 2,
            base_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_millis(300),
        };
        let first = policy.backoff(0);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(150));
        assert_eq!(policy.backoff(5), Duration::from_millis(300));
    }

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
