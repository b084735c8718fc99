//! The use case: observe, health and the tiles over the ports, for callers the transport has
//! authorized ([`Relay::authorize`]) with typed requests. It decides what is looked up, in which
//! order, how many at once, and what a failure keeps; the domain decides what the answers say.
//!
//! - [`Relay`] (here): the ports and settings every use case shares, authentication, health;
//! - `observe`: [`Relay::lookup`], the findings of observables, and observe requests (the
//!   findings rendered as CTIM);
//! - `tiles`: the Employee ATO dashboard, over watchlist scans shared per key and period (and
//!   with other replicas, through the [`SharedCache`]).

mod observe;
mod tiles;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::mapping::MappingOptions;
use crate::domain::{AuthError, Credentials, Error, Timestamp, bearer_token};
use crate::ports::{BreachSource, CredentialDecoder, SharedCache};

use tiles::Scans;

/// Where the relay reads the time: the system clock, or a fixed one in tests.
pub(crate) type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub(crate) fn system_clock() -> Clock {
    Arc::new(|| Timestamp::from_utc(chrono::Utc::now()))
}

/// How the relay behaves, beyond its ports.
///
/// ```
/// use std::time::Duration;
/// use spycloud_relay::RelaySettings;
///
/// let defaults = RelaySettings::default();
/// assert_eq!((defaults.concurrency, defaults.deadline), (8, Duration::from_secs(25)));
/// assert_eq!(defaults.max_records, RelaySettings::DEFAULT_MAX_RECORDS);
/// assert_eq!(defaults.max_lookups, 100);
/// assert_eq!(defaults.tiles_cache, Duration::from_secs(600));
///
/// let quick = RelaySettings { deadline: Duration::from_secs(5), ..RelaySettings::default() };
/// assert_eq!(quick.mapping, defaults.mapping);
/// ```
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

/// A caller whose token was checked ([`Relay::authorize`]): its credentials, and the deadline of
/// its request.
#[derive(Debug)]
pub(crate) struct Authorized {
    /// What the token carries.
    pub credentials: Credentials,
    /// When the request must have answered.
    pub deadline: tokio::time::Instant,
}

/// The relay: SecureX questions in, CTIM out. [`Relay::builder`] makes it over SpyCloud,
/// [`Relay::new`] over any [`BreachSource`] and [`CredentialDecoder`]; see their examples.
#[derive(Clone)]
pub struct Relay {
    source: Arc<dyn BreachSource>,
    decoder: Option<Arc<dyn CredentialDecoder>>,
    settings: RelaySettings,
    scans: Arc<Scans>,
    /// What the tiles' scans are shared through with other replicas (Redis), if anything:
    /// without it a scan is kept once, in [`Scans`].
    shared: Option<Arc<dyn SharedCache>>,
    clock: Clock,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("settings", &self.settings)
            .field("decoder", &self.decoder.is_some())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay over `source` that authenticates callers with `decoder`, its tiles' scans
    /// kept in a cache of its own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use spycloud_relay::{Relay, RelaySettings};
    /// use spycloud_relay::adapters::{FixedCredentials, MemorySource};
    /// use spycloud_relay::domain::{ApiKey, Credentials, Observable};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
    /// let settings = RelaySettings { max_lookups: 1, ..RelaySettings::default() };
    /// let relay = Relay::new(
    ///     Arc::new(MemorySource::sample()),
    ///     Arc::new(FixedCredentials(credentials.clone())),
    ///     settings,
    /// );
    /// assert_eq!(relay.settings().max_lookups, 1);
    ///
    /// let observables = [
    ///     Observable::new("ip", "203.0.113.77"),
    ///     Observable::new("domain", "acme.test"), // past `max_lookups`: a warning
    /// ];
    /// let findings = relay.lookup(&credentials, &observables).await.into_result()?;
    /// let bundle = findings.to_ctim(&relay.mapping(&credentials));
    /// assert_eq!(bundle.sightings.len(), 1);
    /// assert_eq!(bundle.indicators[0].title.as_deref(), Some("Demo VPN Stealer Logs"));
    /// assert_eq!(
    ///     bundle.errors[0].message,
    ///     "The relay looks up at most 1 observables per request; the other 1 were not looked up."
    /// );
    /// # Ok(()) }
    /// ```
    pub fn new(
        source: Arc<dyn BreachSource>,
        decoder: Arc<dyn CredentialDecoder>,
        settings: RelaySettings,
    ) -> Self {
        Self::assemble(source, Some(decoder), settings, None)
    }

    /// The relay over its ports, with the tiles' scans kept per `settings` (and shared through
    /// `shared`, if given) and the system clock.
    pub(crate) fn assemble(
        source: Arc<dyn BreachSource>,
        decoder: Option<Arc<dyn CredentialDecoder>>,
        settings: RelaySettings,
        shared: Option<Arc<dyn SharedCache>>,
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

    /// The same relay reading the time from `clock`: the tiles' periods and the day the module
    /// setting `SINCE_DAYS` counts back from (tests fix it, to answer for a known day).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use spycloud_relay::{Relay, RelaySettings};
    /// use spycloud_relay::adapters::{FixedCredentials, MemorySource};
    /// use spycloud_relay::domain::{ApiKey, Credentials, Period, TileId, Timestamp};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
    /// # let decoder = Arc::new(FixedCredentials(credentials.clone()));
    /// let now = Timestamp::parse("2024-06-01T12:00:00Z")?;
    /// let source = Arc::new(MemorySource::sample_at(now));
    /// let relay = Relay::new(source, decoder, RelaySettings::default()).with_clock(move || now);
    ///
    /// // The tiles' periods end at the clock's time.
    /// let tile = relay.tile_data_as(&credentials, TileId::ExposureSummary, Period::Last7Days).await?;
    /// let observed = &serde_json::to_value(&tile)?["observed_time"];
    /// assert_eq!(observed["start_time"], "2024-05-25T12:00:00.000000Z");
    /// assert_eq!(observed["end_time"], "2024-06-01T12:00:00.000000Z");
    /// # Ok(()) }
    /// ```
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
            shared: Some(cache),
            ..self
        }
    }

    /// What the tiles' scans are shared through, if anything.
    #[cfg(test)]
    pub(crate) fn shares_scans(&self) -> Option<&Arc<dyn SharedCache>> {
        self.shared.as_ref()
    }

    /// The settings in use (see [`Relay::new`]'s example).
    pub fn settings(&self) -> &RelaySettings {
        &self.settings
    }

    /// Verifies the caller's bearer token.
    ///
    /// # Errors
    /// [`Error::Authorization`] with the first failing check; `Unauthorized` for any token when the
    /// relay was built without a decoder.
    pub(crate) async fn authenticate(&self, caller: &Caller<'_>) -> Result<Credentials, Error> {
        let token = bearer_token(caller.authorization)?;
        let decoder = self.decoder.as_ref().ok_or(AuthError::Unauthorized)?;
        Ok(decoder.decode(token, caller.audience).await?)
    }

    /// When a request beginning now must have answered.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.settings.deadline
    }

    /// `work` within `deadline`: its outcome, or [`Error::Deadline`].
    ///
    /// # Errors
    /// `work`'s failure, or the deadline.
    pub(crate) async fn within<T>(
        &self,
        deadline: tokio::time::Instant,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| Err(self.deadline_passed()))
    }

    /// Checks the caller's token within the deadline of a request beginning now: the
    /// credentials, and the deadline the work that follows shares (the token check, a JWKS
    /// fetch, counts against it too).
    ///
    /// # Errors
    /// The authorization failure, or [`Error::Deadline`].
    pub(crate) async fn authorize(&self, caller: &Caller<'_>) -> Result<Authorized, Error> {
        let deadline = self.deadline();
        let credentials = self.within(deadline, self.authenticate(caller)).await?;
        Ok(Authorized {
            credentials,
            deadline,
        })
    }

    /// One authenticated call to SpyCloud with the API key of `credentials`, within the
    /// relay's deadline: what `/health` answers.
    ///
    /// # Errors
    /// The typed [`Error`] of what failed: the key refused (`Authorization`, `InvalidApiKey`,
    /// `IpNotAllowed`, `QuotaUsedUp`), the rate limit, SpyCloud unreachable, or the deadline.
    pub async fn health(&self, credentials: &Credentials) -> Result<(), Error> {
        self.health_until(credentials, self.deadline()).await
    }

    /// One authenticated call to the source, within `deadline` (a request's).
    ///
    /// # Errors
    /// The source's failure, or the deadline.
    pub(crate) async fn health_until(
        &self,
        credentials: &Credentials,
        deadline: tokio::time::Instant,
    ) -> Result<(), Error> {
        let probe = async { Ok(self.source.probe(&credentials.api_key).await?) };
        self.within(deadline, probe).await
    }

    /// The error of a request still running at the deadline.
    fn deadline_passed(&self) -> Error {
        Error::Deadline {
            secs: self.settings.deadline.as_secs(),
        }
    }
}

/// The transport's requests (token, then body, then the use case), for the use case's tests.
#[cfg(all(test, feature = "server"))]
impl Relay {
    pub(crate) async fn observe_request(
        &self,
        observables: &[crate::domain::Observable],
        caller: &Caller<'_>,
    ) -> crate::domain::Bundle {
        crate::adapters::http::observe_request(self, caller, observables).await
    }

    pub(crate) async fn health_request(&self, caller: &Caller<'_>) -> Result<(), Error> {
        crate::adapters::http::health_request(self, caller).await
    }

    pub(crate) async fn tiles_request(
        &self,
        caller: &Caller<'_>,
    ) -> Result<Vec<crate::domain::tiles::Definition>, Error> {
        crate::adapters::http::tiles_request(self, caller).await
    }

    pub(crate) async fn tile_request(
        &self,
        caller: &Caller<'_>,
        body: &[u8],
    ) -> Result<crate::domain::tiles::Definition, Error> {
        crate::adapters::http::tile_request(self, caller, body).await
    }

    pub(crate) async fn tile_data_request(
        &self,
        caller: &Caller<'_>,
        body: &[u8],
    ) -> crate::domain::tiles::TileAnswer {
        crate::adapters::http::tile_data_request(self, caller, body).await
    }
}
