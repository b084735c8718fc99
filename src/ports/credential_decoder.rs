//! How a bearer token becomes credentials.

use async_trait::async_trait;

use crate::domain::{AuthError, Credentials};

/// Verifies a bearer token and reads the credentials it carries.
///
/// An embedder that checks callers itself can map its own tokens to SpyCloud keys:
///
/// ```
/// use std::collections::HashMap;
/// use spycloud_relay::ports::async_trait;
/// use spycloud_relay::domain::{ApiKey, AuthError, Credentials};
/// use spycloud_relay::ports::CredentialDecoder;
///
/// /// Opaque tokens, each standing for one tenant's SpyCloud key.
/// struct Tenants(HashMap<&'static str, Credentials>);
///
/// #[async_trait]
/// impl CredentialDecoder for Tenants {
///     async fn decode(&self, token: &str, _audience: &str) -> Result<Credentials, AuthError> {
///         self.0.get(token).cloned().ok_or(AuthError::Unauthorized)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let acme = Credentials::new(ApiKey::parse("acme-spycloud-key")?);
/// let tenants = Tenants(HashMap::from([("t-acme", acme.clone())]));
/// assert_eq!(tenants.decode("t-acme", "https://relay.example").await, Ok(acme));
/// let refused = tenants.decode("t-other", "https://relay.example").await.unwrap_err();
/// assert_eq!(refused.to_string(), "Unauthorized");
/// # Ok(()) }
/// ```
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CredentialDecoder: Send + Sync {
    /// Verifies `token` (the part after `Bearer `) for `audience`.
    ///
    /// # Errors
    /// One [`AuthError`], checked in the contract's order: `WrongStructure`, `JwksHostMissing`,
    /// `WrongJwksHost`, `KidNotFound`, `WrongKey`, `WrongAudience`, `WrongPayload`,
    /// `Unauthorized`, `Expired`, `NotYetValid`. (`MissingHeader` and `WrongType` are the
    /// caller's to check.)
    async fn decode(&self, token: &str, audience: &str) -> Result<Credentials, AuthError>;
}
