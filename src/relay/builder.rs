//! One call to the real pipeline: the SpyCloud client (retries, per-key rate limit), the catalog
//! cache in front of it, optionally shared with other replicas through Redis (the tiles' scans
//! too), and the relay over them. The server, the `lookup` command and embedders all build it here.

use std::num::NonZeroU32;
use std::sync::Arc;

use crate::BuildError;
use crate::adapters::cache::{CacheSettings, CachedCatalogs};
use crate::adapters::local::{LocalCache, LocalRateLimiter};
#[cfg(feature = "redis")]
use crate::adapters::redis::{Redis, RedisSettings};
use crate::adapters::spycloud::{SpyCloudClient, SpyCloudSettings};
use crate::ports::{BreachSource, CredentialDecoder, RateLimiter, SharedCache};

use super::{Relay, RelaySettings};

/// Builds a [`Relay`] over SpyCloud's API: [`Relay::builder`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use spycloud_relay::Relay;
/// use spycloud_relay::domain::{ApiKey, Credentials, Observable};
///
/// let relay = Relay::builder().build()?;
/// let credentials = Credentials::new(ApiKey::parse("my SpyCloud API key")?);
/// let observables = [
///     Observable::new("email", "alex@example.com"),
///     Observable::new("domain", "example.com"),
///     Observable::new("ip", "203.0.113.7"),
/// ];
/// let bundle = relay.lookup(&credentials, &observables).await?;
/// println!("{} sightings", bundle.sightings.len());
/// # Ok(())
/// # }
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
    /// Redis, falling back to the process's own when it fails.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, settings: RedisSettings) -> Self {
        self.redis = Some(settings);
        self
    }

    /// The relay.
    ///
    /// # Errors
    /// [`BuildError`]: an API URL that is not absolute http(s), or bad Redis settings.
    pub fn build(self) -> Result<Relay, BuildError> {
        let limiter: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::new(self.spycloud.max_rps));
        let cache: Arc<dyn SharedCache> = Arc::new(LocalCache::new(self.cache.capacity));
        #[cfg(feature = "redis")]
        let (limiter, cache) = match &self.redis {
            Some(settings) => {
                let redis = Redis::new(settings)?;
                let limiter: Arc<dyn RateLimiter> =
                    Arc::new(redis.rate_limiter(self.spycloud.max_rps, limiter));
                let cache: Arc<dyn SharedCache> = Arc::new(redis.cache(cache));
                (limiter, cache)
            }
            None => (limiter, cache),
        };
        let client = SpyCloudClient::with_rate_limiter(self.spycloud, limiter)?;
        let source: Arc<dyn BreachSource> = Arc::new(CachedCatalogs::with_store(
            Arc::new(client),
            self.cache,
            cache.clone(),
        ));
        Ok(Relay::assemble(source, self.decoder, self.settings, cache))
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

    #[test]
    fn the_defaults_are_the_contracts() {
        let builder = Relay::builder();
        assert_eq!(builder.spycloud, SpyCloudSettings::default());
        assert_eq!(builder.settings, RelaySettings::default());
        assert!(builder.decoder.is_none());
    }
}
