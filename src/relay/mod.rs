//! The use case: observe and health over the two ports. It decides what is looked up, in which
//! order, how many at once, and what a failure keeps; the domain decides what the answers say.
//!
//! - [`Relay`] (here): the ports and settings every use case shares, authentication, health;
//! - `observe`: observe requests;
//! - `tiles`: the Employee ATO dashboard, over watchlist scans shared per key and period.

mod observe;
mod tiles;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::mapping::MappingOptions;
use crate::domain::{Credentials, RelayError, Timestamp, bearer_token};
use crate::ports::{BreachSource, CredentialDecoder};

use tiles::Scans;

/// Where the relay reads the time: the system clock, or a fixed one in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp::from_utc(chrono::Utc::now()))
}

/// How the relay behaves, beyond its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Portal links and password handling.
    pub mapping: MappingOptions,
    /// Emails of one request looked up at once.
    pub concurrency: usize,
    /// Time one observe or tile-data request may take before it answers with what it has.
    pub deadline: Duration,
    /// Breach records read for one observable at most; a watchlist scan reads 100 times as
    /// many (`RELAY_MAX_RECORDS`).
    pub max_records: usize,
    /// How long one watchlist scan serves the tiles (`RELAY_TILES_CACHE_SECS`).
    pub tiles_cache: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            mapping: MappingOptions::default(),
            concurrency: 8,
            deadline: Duration::from_secs(25),
            max_records: 10_000,
            tiles_cache: Duration::from_secs(600),
        }
    }
}

/// Who is asking: the `Authorization` header and the audience its token must name.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The audience the token must carry.
    pub audience: &'a str,
}

/// The relay: SecureX questions in, CTIM out.
#[derive(Clone)]
pub struct Relay {
    source: Arc<dyn BreachSource>,
    decoder: Arc<dyn CredentialDecoder>,
    settings: RelaySettings,
    scans: Arc<Scans>,
    clock: Clock,
}

impl Relay {
    /// A relay over `source` that authenticates callers with `decoder`.
    pub fn new(
        source: Arc<dyn BreachSource>,
        decoder: Arc<dyn CredentialDecoder>,
        settings: RelaySettings,
    ) -> Self {
        let scans = Arc::new(Scans::new(settings.tiles_cache));
        Self {
            source,
            decoder,
            settings,
            scans,
            clock: system_clock(),
        }
    }

    /// The same relay reading the time from `clock` (tests fix it).
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RelaySettings {
        &self.settings
    }

    /// Verifies the caller's bearer token.
    ///
    /// # Errors
    /// [`RelayError::Auth`] with the first failing check.
    pub async fn authenticate(&self, caller: &Caller<'_>) -> Result<Credentials, RelayError> {
        let token = bearer_token(caller.authorization)?;
        Ok(self.decoder.decode(token, caller.audience).await?)
    }

    /// Authenticates the caller, then makes one authenticated call to the source.
    ///
    /// # Errors
    /// The authorization failure, or the source's failure.
    pub async fn health(&self, caller: &Caller<'_>) -> Result<(), RelayError> {
        let credentials = self.authenticate(caller).await?;
        Ok(self.source.probe(&credentials.api_key).await?)
    }
}
