//! The use case: observe and health over the two ports. It decides what is looked up, in which
//! order, how many at once, and what a failure keeps; the domain decides what the answers say.
//!
//! - [`Relay`] (here): the ports and settings every use case shares, authentication, health;
//! - `observe`: observe requests, and [`Relay::lookup`] for embedders;
//! - `builder`: [`Relay::builder`], the real pipeline over SpyCloud in one call.
//! - `tiles`: the Employee ATO dashboard, over watchlist scans shared per key and period (and
//!   with other replicas, through the [`SharedCache`]).

mod builder;
mod observe;
mod tiles;

pub use builder::RelayBuilder;

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::cache::CacheSettings;
use crate::adapters::local::LocalCache;
use crate::domain::mapping::MappingOptions;
use crate::domain::{AuthError, Credentials, RelayError, Timestamp, bearer_token};
use crate::ports::{BreachSource, CredentialDecoder, SharedCache};

use tiles::Scans;

/// Where the relay reads the time: the system clock, or a fixed one in tests.
pub(crate) type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub(crate) fn system_clock() -> Clock {
    Arc::new(|| Timestamp::from_utc(chrono::Utc::now()))
}

/// How the relay behaves, beyond its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Portal links and password handling.
    pub mapping: MappingOptions,
    /// Observables of one request looked up at once.
    pub concurrency: usize,
    /// Time one observe, health or tile-data request may take, the token check included,
    /// before it answers with what it has.
    pub deadline: Duration,
    /// Breach records read for one observable at most (`RELAY_MAX_RECORDS`); a watchlist
    /// scan reads 100 times as many.
    pub max_records: u64,
    /// Observables looked up per request at most; the rest give one warning. Bounds what one
    /// request can make the relay (and SpyCloud) do.
    pub max_lookups: usize,
    /// How long one watchlist scan serves the tiles (`RELAY_TILES_CACHE_SECS`).
    pub tiles_cache: Duration,
}

impl RelaySettings {
    /// The contract's `RELAY_MAX_RECORDS` default.
    pub const DEFAULT_MAX_RECORDS: u64 = 10_000;
    /// The default [`RelaySettings::max_lookups`].
    pub const DEFAULT_MAX_LOOKUPS: usize = 100;
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            mapping: MappingOptions::default(),
            concurrency: 8,
            deadline: Duration::from_secs(25),
            max_records: Self::DEFAULT_MAX_RECORDS,
            max_lookups: Self::DEFAULT_MAX_LOOKUPS,
            tiles_cache: Duration::from_secs(600),
        }
    }
}

/// Who is asking: the `Authorization` header and the audience its token must name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The audience the token must carry.
    pub audience: &'a str,
}

/// The relay: SecureX questions in, CTIM out.
#[derive(Clone)]
pub struct Relay {
    source: Arc<dyn BreachSource>,
    decoder: Option<Arc<dyn CredentialDecoder>>,
    settings: RelaySettings,
    scans: Arc<Scans>,
    /// What the tiles' scans are shared through (the builder's: Redis with replicas).
    shared: Arc<dyn SharedCache>,
    clock: Clock,
}

impl Relay {
    /// A relay over `source` that authenticates callers with `decoder`, its tiles' scans
    /// kept in a cache of its own.
    pub fn new(
        source: Arc<dyn BreachSource>,
        decoder: Arc<dyn CredentialDecoder>,
        settings: RelaySettings,
    ) -> Self {
        let shared = Arc::new(LocalCache::new(CacheSettings::default().capacity));
        Self::assemble(source, Some(decoder), settings, shared)
    }

    /// The relay over its parts, with the tiles' scans kept per `settings` and the system clock.
    fn assemble(
        source: Arc<dyn BreachSource>,
        decoder: Option<Arc<dyn CredentialDecoder>>,
        settings: RelaySettings,
        shared: Arc<dyn SharedCache>,
    ) -> Self {
        Self {
            source,
            decoder,
            scans: Arc::new(Scans::new(settings.tiles_cache)),
            settings,
            shared,
            clock: system_clock(),
        }
    }

    /// The same relay reading the time from `clock` (tests fix it, to draw the tiles of a
    /// known day).
    pub fn with_clock(self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self {
            clock: Arc::new(clock),
            ..self
        }
    }

    /// The same relay sharing its tiles' scans through `cache`: relays on one cache (one
    /// Redis) answer from the scan any of them made, until it expires.
    #[cfg(test)]
    pub(crate) fn with_shared_cache(self, cache: Arc<dyn SharedCache>) -> Self {
        Self {
            shared: cache,
            ..self
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RelaySettings {
        &self.settings
    }

    /// Verifies the caller's bearer token.
    ///
    /// # Errors
    /// [`RelayError::Auth`] with the first failing check; `Unauthorized` for any token when the
    /// relay was built without a decoder.
    pub(crate) async fn authenticate(
        &self,
        caller: &Caller<'_>,
    ) -> Result<Credentials, RelayError> {
        let token = bearer_token(caller.authorization)?;
        let decoder = self.decoder.as_ref().ok_or(AuthError::Unauthorized)?;
        Ok(decoder.decode(token, caller.audience).await?)
    }

    /// Authenticates the caller, then makes one authenticated call to the source.
    /// Within the deadline, like an observe request.
    ///
    /// # Errors
    /// The authorization failure, the source's failure, or the deadline.
    pub(crate) async fn health(&self, caller: &Caller<'_>) -> Result<(), RelayError> {
        let checked = async {
            let credentials = self.authenticate(caller).await?;
            Ok(self.source.probe(&credentials.api_key).await?)
        };
        tokio::time::timeout(self.settings.deadline, checked)
            .await
            .unwrap_or_else(|_| Err(self.deadline_passed()))
    }

    /// The error of a request still running at the deadline.
    fn deadline_passed(&self) -> RelayError {
        RelayError::Deadline(self.settings.deadline.as_secs())
    }
}
