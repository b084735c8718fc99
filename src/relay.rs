//! The use case: observe and health over the two ports. It decides what is looked up, in which
//! order, how many at once, and what a failure keeps; the domain decides what the answers say.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::domain::mapping::{self, MappingOptions};
use crate::domain::{
    Breach, Bundle, Credentials, EMAIL, Email, Observable, RelayError, Warning, bearer_token,
};
use crate::ports::{BreachSource, CredentialDecoder};

/// How the relay behaves, beyond its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Portal links and password handling.
    pub mapping: MappingOptions,
    /// Emails of one request looked up at once.
    pub concurrency: usize,
    /// Time one observe request may take before it answers with what it has.
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
    ///
    /// # Errors
    /// The authorization failure, or the source's failure.
    pub async fn health(&self, caller: &Caller<'_>) -> Result<(), RelayError> {
        let credentials = self.authenticate(caller).await?;
        Ok(self.source.probe(&credentials.api_key).await?)
    }

    /// Answers an observe request. Without a supported observable the token is not looked at.
    pub async fn observe(&self, observables: &[Observable], caller: &Caller<'_>) -> Bundle {
        if !observables.iter().any(is_email) {
            return Bundle::default();
        }
        match self.authenticate(caller).await {
            Ok(credentials) => self.observe_as(&credentials, observables).await,
            Err(error) => Bundle::with_error(error.to_doc()),
        }
    }

    /// Looks up the email observables with known credentials (the CLI and embedders use this).
    ///
    /// Emails are looked up concurrently, yet the bundle reads as if they had been looked up
    /// one after another: in input order, and a fatal error keeps exactly what came before it.
    pub async fn observe_as(
        &self,
        credentials: &Credentials,
        observables: &[Observable],
    ) -> Bundle {
        let lookups = observables
            .iter()
            .filter(|o| is_email(o))
            .map(|o| self.lookup(credentials, o));
        let mut results = futures::stream::iter(lookups).buffered(self.settings.concurrency.max(1));
        let deadline = tokio::time::sleep(self.settings.deadline);
        tokio::pin!(deadline);
        let mut bundle = Bundle::default();
        loop {
            let next = tokio::select! {
                next = results.next() => next,
                () = &mut deadline => Some(Err(RelayError::Deadline(self.settings.deadline.as_secs()))),
            };
            match next {
                None => break,
                Some(Ok(found)) => bundle.append(found),
                Some(Err(error)) => {
                    bundle.errors.push(error.to_doc());
                    break;
                }
            }
        }
        bundle
    }

    /// One email: its records (newest first, cut to the limit), their catalogs, the entities.
    async fn lookup(
        &self,
        credentials: &Credentials,
        observable: &Observable,
    ) -> Result<Bundle, RelayError> {
        let email = match Email::parse(&observable.value) {
            Ok(email) => email,
            Err(invalid) => return Ok(Bundle::with_error(Warning::InvalidEmail(invalid).to_doc())),
        };
        let records = self.source.breaches(&credentials.api_key, &email).await?;
        let mut skipped = Vec::new();
        let mut breaches: Vec<Breach> = records
            .into_iter()
            .filter_map(|record| {
                Breach::try_from(record)
                    .map_err(|why| {
                        skipped.push(Warning::SkippedRecord(email.clone(), why).to_doc())
                    })
                    .ok()
            })
            .collect();
        breaches.sort_by_key(|b| std::cmp::Reverse(b.published));
        breaches.truncate(credentials.entities_limit.get());

        let mut ids: Vec<_> = breaches.iter().filter_map(|b| b.source_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let catalogs = if ids.is_empty() {
            HashMap::new()
        } else {
            let found = self.source.catalogs(&credentials.api_key, &ids).await?;
            found.into_iter().map(|c| (c.id, c)).collect()
        };
        let mut bundle = Bundle {
            errors: skipped,
            ..Bundle::default()
        };
        bundle.append(mapping::email_bundle(
            observable,
            &breaches,
            &catalogs,
            &self.settings.mapping,
        ));
        Ok(bundle)
    }
}

fn is_email(observable: &Observable) -> bool {
    observable.kind == EMAIL
}
