//! The use case: observe and health over the two ports. It decides what is looked up, in which
//! order, how many at once, and what a failure keeps; the domain decides what the answers say.
//!
//! - [`Relay`] (here): the ports and settings every use case shares, authentication, health;
//! - `observe`: observe requests.

mod observe;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::mapping::MappingOptions;
use crate::domain::{Credentials, RelayError, bearer_token};
use crate::ports::{BreachSource, CredentialDecoder};

/// How the relay behaves, beyond its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Portal links and password handling.
    pub mapping: MappingOptions,
    /// Emails of one request looked up at once.
    pub concurrency: usize,
    /// Time one observe or health request may take, the token check included, before it
    /// answers with what it has.
    pub deadline: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            mapping: MappingOptions::default(),
            concurrency: 8,
            deadline: Duration::from_secs(25),
        }
    }
}

/// Who is asking: the `Authorization` header and the audience its token must name.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The audience the token must carry.
    pub audience: &'a str,
}

/// The relay: SecureX questions in, CTIM out.
#[derive(Clone)]
pub struct Relay {
    source: Arc<dyn BreachSource>,
    decoder: Arc<dyn CredentialDecoder>,
    settings: RelaySettings,
}

impl Relay {
    /// A relay over `source` that authenticates callers with `decoder`.
    pub fn new(
        source: Arc<dyn BreachSource>,
        decoder: Arc<dyn CredentialDecoder>,
        settings: RelaySettings,
    ) -> Self {
        Self {
            source,
            decoder,
            settings,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RelaySettings {
        &self.settings
    }

    /// Verifies the caller's bearer token.
    ///
    /// # Errors
    /// [`RelayError::Auth`] with the first failing check.
    pub async fn authenticate(&self, caller: &Caller<'_>) -> Result<Credentials, RelayError> {
        let token = bearer_token(caller.authorization)?;
        Ok(self.decoder.decode(token, caller.audience).await?)
    }

    /// Authenticates the caller, then makes one authenticated call to the source.
    /// Within the deadline, like an observe request.
    ///
    /// # Errors
    /// The authorization failure, the source's failure, or the deadline.
    pub async fn health(&self, caller: &Caller<'_>) -> Result<(), RelayError> {
        let checked = async {
            let credentials = self.authenticate(caller).await?;
            Ok(self.source.probe(&credentials.api_key).await?)
        };
        tokio::time::timeout(self.settings.deadline, checked)
            .await
            .unwrap_or_else(|_| Err(self.deadline_passed()))
    }

    /// The error of a request still running at the deadline.
    fn deadline_passed(&self) -> RelayError {
        RelayError::Deadline(self.settings.deadline.as_secs())
    }
}
