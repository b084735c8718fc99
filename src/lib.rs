#![deny(missing_docs)]
#![warn(unnameable_types)]
// Without `server` some crate-private parts have no user: the use case's token-checked
// requests and the request body's parsing serve the transport alone, and without `spycloud`
// the collector of the newest records and the tiles' aggregation have no use case. They stay
// compiled and unit-tested; the default build (`server`, everything) still reports dead code.
#![cfg_attr(not(feature = "server"), allow(dead_code, unused_imports))]
// The API docs are written for the whole crate (docs.rs builds them with every feature); built
// with fewer, links to what a feature adds have nothing to point to.
#![cfg_attr(not(feature = "server"), allow(rustdoc::broken_intra_doc_links))]
//! `spycloud_relay`: a Cisco SecureX / XDR Threat Response relay for the SpyCloud Enterprise API,
//! and the library other SOAR tools embed.
//!
//! - [`Relay`] (feature `spycloud`): observables in, findings out. [`Relay::builder`] makes the
//!   real pipeline over SpyCloud; [`Relay::lookup`] answers [`domain::Findings`] (what SpyCloud
//!   said, and the typed [`Error`] that stopped the request, if any), which
//!   [`domain::Findings::to_ctim`] renders as CTIM;
//! - [`domain`]: the pure model (observables, breach records, catalogs, credentials, module
//!   settings, CTIM, tiles) and the mapping, with no runtime, HTTP or crypto stack;
//! - [`ports`]: [`ports::BreachSource`] and [`ports::CredentialDecoder`], what the relay needs;
//! - [`adapters`]: SpyCloud over reqwest (`spycloud`), JWT over jsonwebtoken (`jwt`), a breach
//!   source in memory, and the HTTP(S) [`adapters::Server`] (`server`).
//!
//! ```
//! use spycloud_relay::domain::{Lookup, ObservableType};
//!
//! let lookup = Lookup::parse(ObservableType::Domain, "Example.COM.")?;
//! assert_eq!(lookup.to_string(), "example.com");
//! # Ok::<(), spycloud_relay::domain::InvalidLookup>(())
//! ```

pub mod adapters;
mod build_error;
#[cfg(feature = "spycloud")]
mod builder;
pub mod domain;
#[cfg(feature = "spycloud")]
mod flights;
pub mod ports;
#[cfg(feature = "spycloud")]
mod relay;
#[cfg(any(feature = "spycloud", feature = "jwt"))]
mod telemetry;

pub use build_error::BuildError;
#[cfg(feature = "spycloud")]
pub use builder::RelayBuilder;
pub use domain::Error;
#[cfg(feature = "spycloud")]
pub use relay::{Relay, RelaySettings};

/// The README's code, compiled by `cargo test` so the library section cannot rot.
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
