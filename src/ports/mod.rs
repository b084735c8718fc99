//! The ports: what the domain needs from the outside world, as traits adapters implement.

mod breach_source;
mod credential_decoder;
mod rate_limiter;
mod shared_cache;

pub use breach_source::{BreachSource, SourceError, WatchlistQuery};
pub use credential_decoder::CredentialDecoder;
pub use rate_limiter::RateLimiter;
pub use shared_cache::{CacheEntry, CacheKey, SharedCache};

#[cfg(any(test, feature = "mocks"))]
pub use breach_source::MockBreachSource;
#[cfg(any(test, feature = "mocks"))]
pub use credential_decoder::MockCredentialDecoder;
#[cfg(any(test, feature = "mocks"))]
pub use rate_limiter::MockRateLimiter;
#[cfg(any(test, feature = "mocks"))]
pub use shared_cache::MockSharedCache;
