//! The ports: what the domain needs from the outside world, as traits adapters implement.

mod breach_source;
mod credential_decoder;

pub use breach_source::{BreachSource, SourceError, WatchlistQuery};
pub use credential_decoder::CredentialDecoder;

#[cfg(any(test, feature = "mocks"))]
pub use breach_source::MockBreachSource;
#[cfg(any(test, feature = "mocks"))]
pub use credential_decoder::MockCredentialDecoder;
