//! The pure core: SecureX's and SpyCloud's concepts and the rules between them. No I/O, no
//! clock reads, no HTTP types; all of it builds without features.
//!
//! - what is looked up: [`Observable`] (a CTIM observable as sent), [`Lookup`] (one valid
//!   [`Email`], [`Domain`], IP address or [`Username`], of an [`ObservableType`]), or an
//!   [`InvalidLookup`] with the contract's warning;
//! - who asks: [`Credentials`] ([`ApiKey`], [`EntitiesLimit`], [`ModuleSettings`]), and the
//!   [`AuthError`] that refuses a token;
//! - what SpyCloud sends: a [`RawRecord`] as sent, typed into a [`BreachRecord`] (one leaked
//!   record, with the infected [`Device`] it names), from the breach its [`Catalog`] entry
//!   describes; a [`BreachSource`] feeds records
//!   into a [`RecordSink`] for a [`BreachQuery`];
//! - what a lookup found: [`Findings`], per observable an [`ObservableFindings`] (records,
//!   catalogs, warnings), and the fatal error, if any; every output format renders them;
//! - what SecureX reads: a [`Bundle`] of [`Sighting`]s, [`Indicator`]s and [`Relationship`]s,
//!   with [`ErrorDoc`]s, made by [`Findings::to_ctim`] under [`MappingOptions`];
//! - what threat-intel platforms read: a STIX 2.1 bundle, made by [`Findings::to_stix`],
//!   marked with a [`Tlp`] level;
//! - the dashboard: a [`TileId`] over a [`Period`] gives [`TileData`];
//! - failures: [`Error`] (a request's fatal error, typed) and [`SourceError`] (a breach
//!   source's).
//!
//! [`BreachSource`]: crate::ports::BreachSource
//!
//! ```
//! use spycloud_relay::domain::{
//!     BreachRecord, Catalog, Findings, MappingOptions, Observable, ObservableFindings, RawRecord,
//! };
//!
//! let record: RawRecord = serde_json::from_str(
//!     r#"{"email": "pat@example.com", "source_id": 7, "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#,
//! )?;
//! let catalog: Catalog = serde_json::from_str(r#"{"id": 7, "title": "Example Forum"}"#)?;
//! let findings = Findings {
//!     observables: vec![ObservableFindings {
//!         observable: Observable::new("email", "pat@example.com"),
//!         records: vec![BreachRecord::try_from(record)?],
//!         catalogs: vec![catalog],
//!         warnings: Vec::new(),
//!     }],
//!     ..Findings::default()
//! };
//! let bundle = findings.to_ctim(&MappingOptions::default());
//! assert_eq!(bundle.sightings[0].description, "Present in Example Forum");
//! assert_eq!(bundle.relationships[0].target_ref, bundle.indicators[0].id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod breach;
pub(crate) mod catalog;
pub(crate) mod collector;
pub(crate) mod credentials;
pub(crate) mod ctim;
pub(crate) mod device;
pub(crate) mod email;
pub(crate) mod error;
pub(crate) mod findings;
pub(crate) mod hashed;
pub(crate) mod lookup;
pub(crate) mod mapping;
pub(crate) mod observable;
pub(crate) mod settings;
pub(crate) mod stix;
pub(crate) mod tiles;
pub(crate) mod time;

pub use breach::{BreachRecord, InvalidRecord, RawRecord};
pub use catalog::{Catalog, CatalogId};
pub use collector::RecordSink;
pub use credentials::{ApiKey, AuthError, Credentials, EntitiesLimit};
pub use ctim::{
    Bundle, Column, DataTable, ErrorDoc, ErrorType, ExternalReference, Indicator, Observable,
    ObservedTime, Relation, Relationship, Sighting, Target, ValidTime,
};
pub use device::Device;
pub use email::Email;
pub use error::{Error, SourceError};
pub use findings::{Findings, ObservableFindings};
pub use lookup::{Domain, InvalidLookup, Lookup, ObservableType, Username};
pub use mapping::{MappingOptions, PasswordPolicy};
pub use settings::{BreachQuery, ModuleSettings, SeverityFilter};
pub use stix::Tlp;
pub use tiles::{Period, TileData, TileId};
pub use time::{Day, InvalidTimestamp, Timestamp};

pub(crate) use collector::BreachCollector;
pub(crate) use credentials::{KeyFingerprint, bearer_token};
pub(crate) use error::Warning;
pub(crate) use observable::parse_observables;

#[cfg(test)]
mod properties;
