//! The ports: what the relay needs from the outside world, as traits adapters implement.
//!
//! - [`BreachSource`]: where breach records and catalogs come from (SpyCloud, memory, anything
//!   an embedder brings);
//! - [`CredentialDecoder`]: how a caller's bearer token becomes [`Credentials`].
//!
//! With the `mocks` feature, `MockBreachSource` and `MockCredentialDecoder` (mockall) stand in
//! for either in an embedder's tests.
//!
//! [`Credentials`]: crate::domain::Credentials
//!
//! An embedder's own breach source, here records held in a `Vec`, serves a whole relay:
//!
//! ```
//! use std::sync::Arc;
//! use spycloud_relay::ports::async_trait;
//! use spycloud_relay::{Relay, RelaySettings};
//! use spycloud_relay::adapters::FixedCredentials;
//! use spycloud_relay::domain::*;
//! use spycloud_relay::ports::BreachSource;
//!
//! /// Records by the value they were found for; no catalogs.
//! struct Records(Vec<(&'static str, RawRecord)>);
//!
//! #[async_trait]
//! impl BreachSource for Records {
//!     async fn breaches(
//!         &self, _: &ApiKey, lookup: &Lookup, _: &BreachQuery, into: &mut (dyn RecordSink + 'static),
//!     ) -> Result<(), SourceError> {
//!         for (value, record) in &self.0 {
//!             if *value == lookup.to_string() && into.wants_more() {
//!                 into.add(record.clone());
//!             }
//!         }
//!         Ok(())
//!     }
//!     async fn catalogs(&self, _: &ApiKey, _: &[CatalogId]) -> Result<Vec<Catalog>, SourceError> {
//!         Ok(Vec::new())
//!     }
//!     async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let record = serde_json::from_str(r#"{"spycloud_publish_date": "2024-03-01T00:00:00Z"}"#)?;
//! let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
//! # let decoder = Arc::new(FixedCredentials(credentials.clone()));
//! let source = Records(vec![("pat@example.com", record)]);
//! let relay = Relay::new(Arc::new(source), decoder, RelaySettings::default());
//!
//! let findings = relay.lookup(&credentials, &[Observable::new("email", "pat@example.com")]).await;
//! let bundle = findings.into_result()?.to_ctim(&relay.mapping(&credentials));
//! assert_eq!(bundle.sightings.len(), 1);
//! let seen = bundle.sightings[0].observed_time.start_time;
//! assert_eq!(seen.to_string(), "2024-03-01T00:00:00.000000Z");
//! # Ok(()) }
//! ```

mod breach_source;
mod credential_decoder;
#[cfg(feature = "spycloud")]
mod rate_limiter;
#[cfg(feature = "spycloud")]
mod shared_cache;

/// The attribute the ports are declared with: implement them with `#[async_trait]` without
/// adding `async-trait` to your own manifest.
pub use async_trait::async_trait;
pub use breach_source::{BreachSource, WatchlistQuery};
pub use credential_decoder::CredentialDecoder;
#[cfg(feature = "spycloud")]
pub(crate) use rate_limiter::RateLimiter;
#[cfg(feature = "spycloud")]
pub(crate) use shared_cache::{CacheEntry, CacheKey, SharedCache};

#[cfg(any(test, feature = "mocks"))]
pub use breach_source::MockBreachSource;
#[cfg(any(test, feature = "mocks"))]
pub use credential_decoder::MockCredentialDecoder;
