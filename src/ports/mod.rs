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

mod breach_source;
mod credential_decoder;
#[cfg(feature = "spycloud")]
mod rate_limiter;
#[cfg(feature = "spycloud")]
mod shared_cache;

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
