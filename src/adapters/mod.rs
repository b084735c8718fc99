//! Adapters: the ports implemented over real transports, and the transport that serves them.
//!
//! - [`spycloud`]: [`crate::ports::BreachSource`] over SpyCloud's HTTP API (reqwest);
//! - [`cache`]: a catalog cache in front of any breach source;
//! - [`memory`]: [`crate::ports::BreachSource`] over a dataset in memory (the demo's sample);
//! - [`fixed`]: credentials known in advance (the `lookup` command, single-tenant embedders);
//! - [`jwt`]: [`crate::ports::CredentialDecoder`] for RS256 tokens checked against a JWKS;
//! - [`http`]: the warp routes SecureX calls.

#[cfg(feature = "spycloud")]
pub mod cache;
pub mod fixed;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod memory;
#[cfg(feature = "spycloud")]
pub mod spycloud;
