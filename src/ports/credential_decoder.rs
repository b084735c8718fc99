//! How a bearer token becomes credentials.

use async_trait::async_trait;

use crate::domain::{AuthError, Credentials};

/// Verifies a bearer token and reads the credentials it carries.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CredentialDecoder: Send + Sync {
    /// Verifies `token` (the part after `Bearer `) for `audience`.
    ///
    /// # Errors
    /// One [`AuthError`], checked in the contract's order: `WrongStructure`, `JwksHostMissing`,
    /// `WrongJwksHost`, `KidNotFound`, `WrongKey`, `WrongAudience`, `WrongPayload`,
    /// `Unauthorized`, `Expired`. (`MissingHeader` and `WrongType` are the caller's to check.)
    async fn decode(&self, token: &str, audience: &str) -> Result<Credentials, AuthError>;
}
