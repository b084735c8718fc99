//! Why a part of the relay could not be built.

/// Why a part of the relay could not be built: the pipeline ([`Relay::builder`]), an adapter,
/// a certificate, a dataset. The variant names the part; the message names the setting or file
/// at fault and why.
///
/// [`Relay::builder`]: crate::Relay::builder
///
/// ```
/// use spycloud_relay::BuildError;
/// use spycloud_relay::adapters::MemorySource;
///
/// let refused = MemorySource::from_json("not JSON");
/// assert!(matches!(refused, Err(BuildError::Dataset(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The SpyCloud client: an API URL that is not absolute http(s), or no HTTP client.
    #[error("{0}")]
    SpyCloud(String),
    /// The JWT decoder: a JWKS host allow-list or scheme it cannot use, or no HTTP client.
    #[error("{0}")]
    Jwt(String),
    /// The Redis settings: a URL that is not `redis://` or `rediss://`, or a weak key secret.
    #[error("{0}")]
    Redis(String),
    /// The TLS certificate or key: a file that cannot be read or used, named.
    #[error("{0}")]
    Tls(String),
    /// An in-memory dataset not of the documented shape.
    #[error("{0}")]
    Dataset(String),
}
