//! How the client reaches SpyCloud: the base URL, the timeout, the request rate and the retry
//! policy, with the contract's defaults.

use std::num::NonZeroU32;
use std::time::Duration;

use rand::Rng;

use super::DEFAULT_BASE_URL;
use crate::BuildError;

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
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt));
        let jitter_ms = u64::try_from(exp.as_millis() / 2).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(rand::rng().random_range(0..=jitter_ms));
        exp.saturating_add(jitter).min(self.max_retry_after)
    }
}

/// Why a [`SpyCloudClient`](super::SpyCloudClient) could not be built.
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

#[cfg(test)]
mod tests {
    use super::*;

    // RULES R18
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
}
