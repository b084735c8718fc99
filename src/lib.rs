#![deny(missing_docs)]
//! `spycloud_relay`: a Cisco SecureX / XDR Threat Response relay for the SpyCloud Enterprise API.
//!
//! - [`domain`]: the pure model (lookups, breach, catalog, module settings, CTIM, tiles) and
//!   the mapping rules;
//! - [`ports`]: [`ports::BreachSource`] and [`ports::CredentialDecoder`], what the relay needs,
//!   and [`ports::RateLimiter`] and [`ports::SharedCache`], the state replicas may share;
//! - [`relay`]: the use case, [`Relay`]: observe, health and the dashboard's tiles over the
//!   ports, and [`Relay::builder`], the real pipeline in one call;
//! - [`config`]: the command line and its environment variables;
//! - [`adapters`]: SpyCloud over reqwest, JWT over jsonwebtoken, the warp transport, an
//!   in-memory breach source, and the shared state in the process or in Redis;
//! - [`telemetry`]: logging, text or JSON, on stderr;
//! - [`demo`]: the offline demo, the real relay over a bundled sample dataset.

pub mod adapters;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod demo;
pub mod domain;
#[cfg(feature = "spycloud")]
mod flights;
pub mod ports;
#[cfg(feature = "spycloud")]
pub mod relay;
#[cfg(any(feature = "spycloud", feature = "jwt"))]
pub mod telemetry;

pub use domain::Error;
#[cfg(feature = "spycloud")]
pub use relay::{BuildError, Caller, Relay, RelayBuilder, RelaySettings};

/// The README's code, compiled by `cargo test` so the library section cannot rot.
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
