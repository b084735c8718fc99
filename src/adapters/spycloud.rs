//! SpyCloud Enterprise API over reqwest: the production [`BreachSource`].
//!
//! Everything that is about talking to SpyCloud lives here and nowhere else: the URLs and their
//! encoding, the headers, following cursors, retrying what is worth retrying, staying under the
//! per-key request rate, and turning every HTTP status and transport failure into one
//! [`SourceError`] (in `status_error` and `transport_error`). The relay above only ever sees
//! records, catalogs and those errors.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::email::truncate;
use crate::domain::{ApiKey, BreachRecord, Catalog, CatalogId, Email, KeyFingerprint};
use crate::ports::{BreachSource, Pages, SourceError, WatchlistPage, WatchlistQuery};
use crate::telemetry;

/// The SpyCloud Enterprise API the contract names by default (`SPYCLOUD_API_URL`).
pub const DEFAULT_BASE_URL: &str = "https://api.spycloud.io/enterprise-v2";

/// SpyCloud answers at most this many ids per catalog request.
const CATALOG_BATCH: usize = 10;
/// A cursor chain longer than this is a broken upstream, not a big breach.
const MAX_PAGES: usize = 100;
/// The same for a watchlist scan, which reads up to 100 times as many records (and stops at
/// its record limit long before this with pages of 100 records or more).
const MAX_SCAN_PAGES: usize = 10_000;
/// The most of a response body read into memory; a hostile upstream cannot exhaust it.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The most of an error answer's body read: enough for its message, and a huge one still
/// gives the error its status stands for.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// How much of an unexpected answer's body becomes the error message.
const MAX_ERROR_CHARS: usize = 1000;
/// Drop idle keys from the rate limiter every this many requests.
const RETAIN_EVERY: u64 = 1024;

/// The email goes in a path segment: `@` and unreserved characters stay, everything else
/// (`/ ? # % +`, spaces, non-ASCII) is percent-encoded.
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
/// A comma-separated list in a query value: the commas stay literal too.
const QUERY_LIST: &AsciiSet = &QUERY_VALUE.remove(b',');

/// How the client reaches SpyCloud; [`SpyCloudSettings::default`] holds the contract's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpyCloudSettings {
    /// The API base, e.g. `https://api.spycloud.io/enterprise-v2`; a trailing slash is fine.
    pub base_url: String,
    /// How long one upstream call (one HTTP attempt, body included) may take.
    pub timeout: Duration,
    /// Requests per second per API key, also the burst.
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
pub enum SpyCloudBuildError {
    /// `base_url` is not an absolute http(s) URL.
    #[error("invalid SpyCloud API URL {0:?}")]
    InvalidUrl(String),
    /// The HTTP client could not be set up (TLS backend, system configuration).
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The SpyCloud Enterprise API as a [`BreachSource`].
///
/// Holds one connection pool and one rate limiter; share it (`Arc`) across requests so both
/// are shared too.
pub struct SpyCloudClient {
    http: Client,
    base: String,
    timeout: Duration,
    retry: RetryPolicy,
    limiter: Arc<DefaultKeyedRateLimiter<KeyFingerprint>>,
    attempts: AtomicU64,
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
    /// [`SpyCloudBuildError::InvalidUrl`] when the base is not an http(s) URL,
    /// [`SpyCloudBuildError::Client`] when reqwest cannot build its client.
    pub fn new(settings: SpyCloudSettings) -> Result<Self, SpyCloudBuildError> {
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
        let quota = Quota::per_second(settings.max_rps).allow_burst(settings.max_rps);
        Ok(Self {
            http,
            base,
            timeout: settings.timeout,
            retry: settings.retry,
            limiter: Arc::new(RateLimiter::keyed(quota)),
            attempts: AtomicU64::new(0),
        })
    }

    /// Every page of `url`, following cursors: the results, each read as a `T`.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        key: &ApiKey,
        url: &str,
        lookup: Lookup,
    ) -> Result<Vec<T>, SourceError> {
        let mut results = Vec::new();
        self.each_page(key, url, lookup, MAX_PAGES, |page: Page<T>| {
            results.extend(page.results);
            ControlFlow::Continue(())
        })
        .await?;
        Ok(results)
    }

    /// Every page of `url`, following cursors (at most `max_pages`), handed to `on_page` as it
    /// arrives, until the pages end or `on_page` breaks.
    async fn each_page<T: DeserializeOwned>(
        &self,
        key: &ApiKey,
        url: &str,
        lookup: Lookup,
        max_pages: usize,
        mut on_page: impl FnMut(Page<T>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let mut seen = HashSet::new();
        let mut next = url.to_owned();
        // The cursor joins the query the URL already has (the watchlist's `since`), if any.
        let separator = if url.contains('?') { '&' } else { '?' };
        for _ in 0..max_pages {
            let answer = self.get(key, &next).await?;
            if lookup == Lookup::Email && answer.status == StatusCode::BAD_REQUEST {
                // SpyCloud refuses the address: no results (or, after a cursor, no more).
                return Ok(());
            }
            let mut page: Page<T> = parse_page(&success_body(answer)?)?;
            let cursor = page.cursor.take();
            if on_page(page).is_break() {
                return Ok(());
            }
            match cursor {
                Some(Value::String(cursor)) if !cursor.is_empty() => {
                    let url_for_cursor = format!(
                        "{url}{separator}cursor={}",
                        utf8_percent_encode(&cursor, QUERY_VALUE)
                    );
                    if !seen.insert(cursor) {
                        // Following it would loop; stopping would drop records without a word.
                        return Err(SourceError::InvalidResponse(
                            "SpyCloud repeated a page cursor".to_owned(),
                        ));
                    }
                    next = url_for_cursor;
                }
                _ => return Ok(()),
            }
        }
        Err(SourceError::InvalidResponse(format!(
            "SpyCloud kept paginating past {max_pages} pages"
        )))
    }

    /// Catalogs of one batch of at most [`CATALOG_BATCH`] ids.
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
        let values: Vec<Value> = self.all_pages(key, &url, Lookup::Other).await?;
        Ok(values
            .into_iter()
            .filter_map(|value| match serde_json::from_value::<Catalog>(value) {
                Ok(catalog) => Some(catalog),
                Err(error) => {
                    tracing::debug!(%error, "skipping a catalog SpyCloud sent in an unknown shape");
                    None
                }
            })
            .collect())
    }

    /// One GET with rate limiting and retries; the final answer whatever its status.
    async fn get(&self, key: &ApiKey, url: &str) -> Result<Answer, SourceError> {
        let fingerprint = key.fingerprint();
        let mut attempt = 0;
        loop {
            self.wait_for_turn(&fingerprint).await;
            if self.attempts.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
                self.limiter.retain_recent();
            }
            let outcome = self.attempt(key, url).await;
            let wait = match &outcome {
                Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => {
                    if answer.quota_spent {
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
                    tracing::debug!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying a SpyCloud call"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return outcome,
            }
        }
    }

    /// Waits until the key's token bucket allows a call. On tokio's timer rather than
    /// governor's `until_key_ready`, whose timer runs a thread of its own.
    async fn wait_for_turn(&self, fingerprint: &KeyFingerprint) {
        while let Err(not_until) = self.limiter.check_key(fingerprint) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(self.limiter.clock()));
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP attempt; transport failures are already mapped.
    async fn attempt(&self, key: &ApiKey, url: &str) -> Result<Answer, SourceError> {
        let mut key_header = HeaderValue::from_str(key.expose())
            .map_err(|_| SourceError::Unauthorized("Unauthorized".to_owned()))?;
        key_header.set_sensitive(true);
        let mut response = self
            .http
            .get(url)
            .header("X-API-Key", key_header)
            .send()
            .await
            .map_err(|error| {
                telemetry::upstream_call(endpoint_of(url), "error");
                transport_error(&error, self.timeout)
            })?;
        let status = response.status();
        telemetry::upstream_call(endpoint_of(url), status.as_str());
        let headers = response.headers();
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let quota_spent = headers
            .get("x-amzn-ErrorType")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("LimitExceededException"));
        // A success is read whole or refused; of an error answer, only its start is read.
        let success = status.is_success();
        let limit = if success {
            MAX_BODY_BYTES
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let announced = response.content_length().unwrap_or(0);
        if success && announced > limit as u64 {
            return Err(too_big());
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
                    return Err(too_big());
                }
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            retry_after,
            quota_spent,
            body,
        })
    }
}

#[async_trait]
impl BreachSource for SpyCloudClient {
    async fn breaches(
        &self,
        key: &ApiKey,
        email: &Email,
    ) -> Result<Vec<BreachRecord>, SourceError> {
        let url = format!(
            "{}/breach/data/emails/{}",
            self.base,
            utf8_percent_encode(email.as_str(), PATH_SEGMENT)
        );
        self.all_pages(key, &url, Lookup::Email).await
    }

    async fn catalogs(&self, key: &ApiKey, ids: &[CatalogId]) -> Result<Vec<Catalog>, SourceError> {
        let mut seen = HashSet::new();
        let unique: Vec<CatalogId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let batches = unique
            .chunks(CATALOG_BATCH)
            .map(|batch| self.catalog_batch(key, batch));
        Ok(try_join_all(batches).await?.into_iter().flatten().collect())
    }

    async fn watchlist(
        &self,
        key: &ApiKey,
        query: &WatchlistQuery,
        on_page: &mut Pages,
    ) -> Result<(), SourceError> {
        let mut url = format!("{}/breach/data/watchlist?since={}", self.base, query.since);
        if let Some(severity) = &query.severity {
            url.push_str("&severity=");
            url.extend(utf8_percent_encode(severity, QUERY_LIST));
        }
        self.each_page(
            key,
            &url,
            Lookup::Other,
            MAX_SCAN_PAGES,
            |page: Page<BreachRecord>| {
                on_page.page(WatchlistPage {
                    hits: page.hits.as_ref().and_then(Value::as_u64),
                    records: page.results,
                })
            },
        )
        .await
    }

    async fn probe(&self, key: &ApiKey) -> Result<(), SourceError> {
        // The call the Python relay's health check made: cheap, and it needs a valid key.
        let url = format!("{}/watchlist/example.org", self.base);
        let answer = self.get(key, &url).await?;
        if answer.status == StatusCode::BAD_REQUEST {
            return Ok(());
        }
        success_body(answer).map(drop)
    }
}

/// The endpoint a URL calls, as a metrics label.
fn endpoint_of(url: &str) -> &'static str {
    if url.contains("/breach/data/emails/") {
        "emails"
    } else if url.contains("/breach/catalog/") {
        "catalog"
    } else {
        "watchlist"
    }
}

/// Whether a 400 means "no results" (email lookups) or is an error like any other status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Email,
    Other,
}

/// What one HTTP attempt brought back.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// `x-amzn-ErrorType: LimitExceededException`: the key's quota is spent, waiting won't help.
    quota_spent: bool,
    body: Vec<u8>,
}

/// SpyCloud's page envelope.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default)]
    cursor: Option<Value>,
    /// How many records the whole answer holds (read by the watchlist scan only).
    #[serde(default)]
    hits: Option<Value>,
    results: Vec<T>,
}

/// One pass straight into typed results (UTF-8 checked once for the whole body, not per
/// string). Only a page that does not fit is read again, to say why.
fn parse_page<T: DeserializeOwned>(body: &[u8]) -> Result<Page<T>, SourceError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| {
            SourceError::InvalidResponse(
                match serde_json::from_slice::<Page<Value>>(body) {
                    Err(error) if error.is_data() => "SpyCloud's answer has no results array",
                    Err(_) => "SpyCloud answered with invalid JSON",
                    Ok(_) => "a breach record is not a JSON object",
                }
                .to_owned(),
            )
        })
}

/// The body of a 2xx answer, or the error its status stands for.
fn success_body(answer: Answer) -> Result<Vec<u8>, SourceError> {
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

fn too_big() -> SourceError {
    SourceError::InvalidResponse(format!(
        "SpyCloud's answer is larger than {} MiB",
        MAX_BODY_BYTES / (1024 * 1024)
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
                Err(SpyCloudBuildError::InvalidUrl(_))
            ));
        }
    }
}
