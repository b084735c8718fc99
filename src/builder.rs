//! Composition: one call to the real pipeline, the SpyCloud client (retries, per-key rate
//! limit), the catalog cache in front of it, optionally shared with other replicas through
//! Redis (the tiles' scans too), and the relay over them. The server, the `lookup` command and
//! embedders all build it here; the use case (`relay`) only receives its ports.

use std::num::NonZeroU32;
use std::sync::Arc;

use crate::BuildError;
use crate::adapters::cache::{CacheSettings, CachedCatalogs};
use crate::adapters::local::{LocalCache, LocalRateLimiter};
#[cfg(feature = "redis")]
use crate::adapters::redis::{Redis, RedisSettings};
use crate::adapters::spycloud::{SpyCloudClient, SpyCloudSettings};
use crate::ports::{BreachSource, CredentialDecoder, RateLimiter, SharedCache};

use crate::{Relay, RelaySettings};

/// Builds a [`Relay`] over SpyCloud's API: [`Relay::builder`].
///
/// Here a stand-in for SpyCloud (wiremock) knows one record of `alex@example.com`, from the
/// breach its catalog 7 describes; without [`RelayBuilder::api_url`] the relay asks SpyCloud's
/// API itself.
///
/// ```
/// use spycloud_relay::Relay;
/// use spycloud_relay::domain::{ApiKey, Credentials, Observable};
/// # use serde_json::json;
/// # use wiremock::matchers::{header, method, path};
/// # use wiremock::{Mock, MockServer, ResponseTemplate};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let spycloud = MockServer::start().await;
/// # let answer = |body| ResponseTemplate::new(200).set_body_json(body);
/// # let record = json!({"document_id": "d-1", "source_id": 7, "severity": 20,
/// #     "email": "alex@example.com", "spycloud_publish_date": "2024-03-01T00:00:00Z"});
/// # Mock::given(method("GET"))
/// #     .and(path("/breach/data/emails/alex@example.com"))
/// #     .and(header("X-API-Key", "my SpyCloud API key"))
/// #     .respond_with(answer(json!({"cursor": "", "hits": 1, "results": [record]})))
/// #     .mount(&spycloud).await;
/// # let catalog = json!({"id": 7, "uuid": "0b1c", "title": "Example Forum", "site": "forum.example"});
/// # Mock::given(method("GET"))
/// #     .and(path("/breach/catalog/7"))
/// #     .and(header("X-API-Key", "my SpyCloud API key"))
/// #     .respond_with(answer(json!({"hits": 1, "results": [catalog]})))
/// #     .mount(&spycloud).await;
/// let relay = Relay::builder().api_url(spycloud.uri()).build()?;
/// let credentials = Credentials::new(ApiKey::parse("my SpyCloud API key")?);
/// let observables = [Observable::new("email", "alex@example.com")];
///
/// let findings = relay.lookup(&credentials, &observables).await.into_result()?;
/// let bundle = findings.to_ctim(&relay.mapping(&credentials));
/// assert_eq!(bundle.sightings.len(), 1);
/// assert_eq!(bundle.sightings[0].severity, "High");
/// assert_eq!(bundle.indicators[0].title.as_deref(), Some("Example Forum"));
/// assert_eq!(bundle.relationships[0].target_ref, bundle.indicators[0].id);
/// # Ok(()) }
/// ```
#[must_use]
pub struct RelayBuilder {
    spycloud: SpyCloudSettings,
    cache: CacheSettings,
    settings: RelaySettings,
    decoder: Option<Arc<dyn CredentialDecoder>>,
    #[cfg(feature = "redis")]
    redis: Option<RedisSettings>,
}

impl std::fmt::Debug for RelayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayBuilder")
            .field("spycloud", &self.spycloud)
            .field("cache", &self.cache)
            .field("settings", &self.settings)
            .field("decoder", &self.decoder.is_some())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// The real pipeline, with the contract's defaults (SpyCloud's API, 10 calls a second per
    /// key, a 10 s timeout per call, catalogs cached in the process, no token decoder).
    /// [`RelayBuilder`]'s example looks up an email through it.
    ///
    /// ```
    /// use std::{num::NonZeroU32, sync::Arc, time::Duration};
    /// use spycloud_relay::{Relay, RelaySettings};
    /// use spycloud_relay::adapters::FixedCredentials;
    /// use spycloud_relay::domain::{ApiKey, Credentials};
    ///
    /// let single_tenant = FixedCredentials(Credentials::new(ApiKey::parse("my SpyCloud API key")?));
    /// let relay = Relay::builder()
    ///     .max_rps(NonZeroU32::new(5).unwrap())
    ///     .settings(RelaySettings { deadline: Duration::from_secs(10), ..RelaySettings::default() })
    ///     .decoder(Arc::new(single_tenant))
    ///     .build()?;
    /// assert_eq!(relay.settings().deadline, Duration::from_secs(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RelayBuilder {
        RelayBuilder {
            spycloud: SpyCloudSettings::default(),
            cache: CacheSettings::default(),
            settings: RelaySettings::default(),
            decoder: None,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl RelayBuilder {
    /// The SpyCloud client's settings: API URL, timeout, rate per key, retries.
    pub fn spycloud(mut self, settings: SpyCloudSettings) -> Self {
        self.spycloud = settings;
        self
    }

    /// The SpyCloud Enterprise API base (`SPYCLOUD_API_URL`).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.spycloud.base_url = url.into();
        self
    }

    /// Calls per second per API key, also the burst (`SPYCLOUD_MAX_RPS`).
    pub fn max_rps(mut self, rate: NonZeroU32) -> Self {
        self.spycloud.max_rps = rate;
        self
    }

    /// The relay's own settings: mapping, concurrency, deadline, record limits.
    pub fn settings(mut self, settings: RelaySettings) -> Self {
        self.settings = settings;
        self
    }

    /// How callers' bearer tokens are checked when the relay is served
    /// ([`Server`](crate::adapters::Server)); without one, every token is refused
    /// (`Unauthorized`) and only calls with known credentials ([`Relay::lookup`]) work.
    pub fn decoder(mut self, decoder: Arc<dyn CredentialDecoder>) -> Self {
        self.decoder = Some(decoder);
        self
    }

    /// Shares the rate limit, the catalog cache and the tiles' scans with every replica on this
    /// Redis, falling back to the process's own when it fails. [`RelayBuilder::build`] is
    /// then called inside a tokio runtime (outside one it fails with [`BuildError::Redis`]).
    #[cfg(feature = "redis")]
    pub fn redis(mut self, settings: RedisSettings) -> Self {
        self.redis = Some(settings);
        self
    }

    /// The relay.
    ///
    /// # Errors
    /// [`BuildError`]: an API URL that is not absolute http(s); bad Redis settings, or Redis
    /// settings outside a tokio runtime.
    ///
    /// ```
    /// use spycloud_relay::{BuildError, Relay};
    ///
    /// let refused = Relay::builder().api_url("api.spycloud.io/enterprise-v2").build().err();
    /// let why = r#"invalid SpyCloud API URL "api.spycloud.io/enterprise-v2""#;
    /// assert_eq!(refused, Some(BuildError::SpyCloud(why.to_owned())));
    /// ```
    pub fn build(self) -> Result<Relay, BuildError> {
        let limiter: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::new(self.spycloud.max_rps));
        let cache: Arc<dyn SharedCache> = Arc::new(LocalCache::new(self.cache.capacity));
        // What the tiles' scans are shared through: nothing without Redis (the relay keeps
        // each scan once, itself).
        let shared: Option<Arc<dyn SharedCache>> = None;
        #[cfg(feature = "redis")]
        let (limiter, cache, shared) = match &self.redis {
            Some(settings) => {
                let redis = Redis::new(settings)?;
                let limiter: Arc<dyn RateLimiter> =
                    Arc::new(redis.rate_limiter(self.spycloud.max_rps, limiter));
                let cache: Arc<dyn SharedCache> = Arc::new(redis.cache(cache));
                (limiter, cache.clone(), Some(cache))
            }
            None => (limiter, cache, shared),
        };
        let client = SpyCloudClient::with_rate_limiter(self.spycloud, limiter)?;
        let source: Arc<dyn BreachSource> = Arc::new(CachedCatalogs::with_store(
            Arc::new(client),
            self.cache,
            cache.clone(),
        ));
        Ok(Relay::assemble(source, self.decoder, self.settings, shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_api_url_is_refused() {
        let built = Relay::builder().api_url("not a url").build();
        assert!(matches!(built, Err(BuildError::SpyCloud(_))));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_outside_a_runtime_is_an_error_not_a_panic() {
        let settings = RedisSettings::new("redis://127.0.0.1:1", "0123456789abcdef");
        let built = Relay::builder().redis(settings).build();
        assert_eq!(
            built.err(),
            Some(BuildError::Redis(
                "the Redis adapters must be built inside a tokio runtime".to_owned()
            ))
        );
    }

    #[test]
    fn without_redis_a_scan_is_kept_once_by_the_relay_alone() {
        let relay = Relay::builder().build().unwrap();
        assert!(relay.shares_scans().is_none());
        let source = Arc::new(crate::adapters::MemorySource::sample());
        let credentials =
            crate::domain::Credentials::new(crate::domain::ApiKey::parse("demo-api-key").unwrap());
        let decoder = Arc::new(crate::adapters::FixedCredentials(credentials));
        let relay = Relay::new(source, decoder, RelaySettings::default());
        assert!(relay.shares_scans().is_none());
    }

    #[test]
    fn the_defaults_are_the_contracts() {
        let builder = Relay::builder();
        assert_eq!(builder.spycloud, SpyCloudSettings::default());
        assert_eq!(builder.settings, RelaySettings::default());
        assert!(builder.decoder.is_none());
    }
}
