//! Adapters: the ports implemented over real transports, and the transport that serves them.
//!
//! - [`SpyCloudClient`]: [`BreachSource`](crate::ports::BreachSource) over SpyCloud's HTTP API
//!   (reqwest), with its rate limit and retries; [`Relay::builder`](crate::Relay::builder)
//!   puts a catalog cache in front of it and, with [`RedisSettings`], shares both with
//!   replicas;
//! - [`MemorySource`]: a breach source over a dataset in memory (the demo's sample);
//! - [`JwtDecoder`]: [`CredentialDecoder`](crate::ports::CredentialDecoder) for RS256 tokens
//!   checked against a JWKS;
//! - [`FixedCredentials`]: credentials known in advance (the `lookup` command, single-tenant
//!   embedders);
//! - [`Server`]: SecureX's routes over HTTP, or HTTPS with a [`ServerTls`].
//!
//! The offline pieces make a whole relay: the demo's dataset, one tenant's credentials.
//!
//! ```
//! use std::sync::Arc;
//! use spycloud_relay::{Relay, RelaySettings};
//! use spycloud_relay::adapters::{FixedCredentials, MemorySource};
//! use spycloud_relay::domain::{ApiKey, Credentials, Observable};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
//! let relay = Relay::new(
//!     Arc::new(MemorySource::sample()),
//!     Arc::new(FixedCredentials(credentials.clone())),
//!     RelaySettings::default(),
//! );
//! let findings = relay.lookup(&credentials, &[Observable::new("domain", "acme.test")]).await;
//! let bundle = findings.into_result()?.to_ctim(&relay.mapping(&credentials));
//! assert_eq!(bundle.sightings.len(), 3);
//! assert_eq!(bundle.sightings[0].description, "Present in Demo VPN Stealer Logs");
//! # Ok(()) }
//! ```

#[cfg(feature = "spycloud")]
pub(crate) mod cache;
mod fixed;
#[cfg(feature = "server")]
pub(crate) mod http;
#[cfg(feature = "jwt")]
pub(crate) mod jwt;
#[cfg(feature = "spycloud")]
pub(crate) mod local;
mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "spycloud")]
pub(crate) mod spycloud;
#[cfg(feature = "server")]
pub(crate) mod tls;

pub use fixed::FixedCredentials;
#[cfg(feature = "server")]
pub use http::{ConnectionLimits, HttpSettings, ServeError, Server};
#[cfg(feature = "jwt")]
pub use jwt::{JwtDecoder, JwtSettings};
pub use memory::MemorySource;
#[cfg(feature = "redis")]
pub use redis::RedisSettings;
#[cfg(feature = "spycloud")]
pub use spycloud::{RetryPolicy, SpyCloudClient, SpyCloudSettings};
#[cfg(feature = "server")]
pub use tls::ServerTls;
