//! The pure core: SecureX's and SpyCloud's concepts and the rules between them. No I/O, no
//! clock reads, no HTTP types.

pub mod breach;
pub mod catalog;
pub mod credentials;
pub mod email;
pub mod time;

pub use breach::{Breach, BreachRecord, InvalidBreach};
pub use catalog::{Catalog, CatalogId};
pub use credentials::{
    ApiKey, AuthError, Credentials, EntitiesLimit, KeyFingerprint, bearer_token,
};
pub use email::{Email, InvalidEmail};
pub use time::{InvalidTimestamp, Timestamp};
