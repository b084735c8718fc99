//! Credentials known in advance: for the `lookup` command and for embedders that serve one
//! SpyCloud tenant and authenticate callers themselves.

use async_trait::async_trait;

use crate::domain::{AuthError, Credentials};
use crate::ports::CredentialDecoder;

/// A [`CredentialDecoder`] that grants the same credentials to every caller, whatever the token.
///
/// ```
/// use spycloud_relay::adapters::FixedCredentials;
/// use spycloud_relay::domain::{ApiKey, Credentials};
/// use spycloud_relay::ports::CredentialDecoder;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
/// let decoder = FixedCredentials(credentials.clone());
/// assert_eq!(decoder.decode("any token at all", "any audience").await, Ok(credentials));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FixedCredentials(pub Credentials);

#[async_trait]
impl CredentialDecoder for FixedCredentials {
    async fn decode(&self, _token: &str, _audience: &str) -> Result<Credentials, AuthError> {
        Ok(self.0.clone())
    }
}
