//! The pure core: SecureX's and SpyCloud's concepts and the rules between them. No I/O, no
//! clock reads, no HTTP types.
//!
//! - [`email`]: the `Email` observable, only constructible valid;
//! - [`lookup`]: what can be looked up (email, domain, IPv4, IPv6, username), each only
//!   constructible valid;
//! - [`observable`]: the observe request body;
//! - [`credentials`]: API key, entities limit, module settings and the authorization failures;
//! - [`settings`]: a module instance's settings (`SEVERITY`, `SINCE_DAYS`, `PASSWORDS`);
//! - [`breach`], [`catalog`], [`time`]: what SpyCloud sends;
//! - [`collector`]: one lookup's records folded into the newest N as pages arrive;
//! - [`ctim`]: what SecureX reads, and the response envelope;
//! - [`mapping`]: SpyCloud to CTIM;
//! - [`tiles`]: the Employee ATO dashboard: tiles, periods, and a watchlist scan's figures;
//! - [`error`]: every error and warning with its SecureX code and message.

pub mod breach;
pub mod catalog;
pub mod collector;
pub mod credentials;
pub mod ctim;
pub mod email;
pub mod error;
pub mod lookup;
pub mod mapping;
pub mod observable;
pub mod settings;
pub mod tiles;
pub mod time;

pub use breach::{Breach, BreachRecord, InvalidBreach, SeverityBand};
pub use catalog::{Catalog, CatalogId};
pub use collector::{BreachCollector, Collected, RecordSink};
pub use credentials::{
    ApiKey, AuthError, Credentials, EntitiesLimit, KeyFingerprint, bearer_token,
};
pub use ctim::{Bundle, ErrorDoc, ErrorKind, Observable};
pub use email::{Email, InvalidEmail};
pub use error::{Error, RelayError, SourceError, Warning};
pub use lookup::{Domain, InvalidLookup, Lookup, ObservableType, Username};
pub use mapping::{MappingOptions, PasswordPolicy};
pub use observable::{EMAIL, parse_observables};
pub use settings::{BreachQuery, ModuleSettings, SeverityFilter, SinceDays};
pub use time::{Day, InvalidTimestamp, Timestamp};
