//! The use case: observe and health over the two ports. It decides what is looked up, in which
//! order, how many at once, and what a failure keeps; the domain decides what the answers say.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::domain::mapping::{self, MappingOptions};
use crate::domain::{
    Breach, Bundle, Catalog, CatalogId, Credentials, EMAIL, Email, ErrorDoc, Observable,
    RelayError, Warning, bearer_token,
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
    /// The records of every email are fetched at once, then the catalogs of all of them in one
    /// batch, so a request costs two round trips however many emails it holds. The bundle still
    /// reads as if the emails had been looked up one after another: in input order, and a fatal
    /// error keeps exactly what came before it. Past the deadline it answers with that error
    /// alone.
    pub async fn observe_as(
        &self,
        credentials: &Credentials,
        observables: &[Observable],
    ) -> Bundle {
        let deadline = self.settings.deadline;
        match tokio::time::timeout(deadline, self.look_up_all(credentials, observables)).await {
            Ok(bundle) => bundle,
            Err(_) => Bundle::with_error(RelayError::Deadline(deadline.as_secs()).to_doc()),
        }
    }

    async fn look_up_all(&self, credentials: &Credentials, observables: &[Observable]) -> Bundle {
        // Boxed so the stream's type names no closure: keeps the future `Send` for any caller.
        let lookups: Vec<BoxFuture<'_, Result<Found<'_>, RelayError>>> = observables
            .iter()
            .filter(|o| is_email(o))
            .map(|o| self.records(credentials, o).boxed())
            .collect();
        let mut results = futures::stream::iter(lookups).buffered(self.settings.concurrency.max(1));
        let mut found = Vec::new();
        let mut fatal = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(records) => found.push(records),
                Err(error) => {
                    fatal = Some(error);
                    break;
                }
            }
        }
        drop(results);

        let mut ids: Vec<CatalogId> = found.iter().flat_map(Found::catalog_ids).collect();
        ids.sort_unstable();
        ids.dedup();
        let catalogs = if ids.is_empty() {
            Ok(HashMap::new())
        } else {
            let fetched = self.source.catalogs(&credentials.api_key, &ids).await;
            fetched.map(|list| list.into_iter().map(|c| (c.id, c)).collect())
        };

        let mut bundle = Bundle::default();
        let catalogs = catalogs.unwrap_or_else(|error| {
            // One by one, the fetch would have failed at the first email that needs a catalog.
            let first = found.iter().position(|f| f.catalog_ids().next().is_some());
            found.truncate(first.unwrap_or(found.len()));
            fatal = Some(error.into());
            HashMap::new()
        });
        for records in found {
            bundle.append(records.into_bundle(&catalogs, &self.settings.mapping));
        }
        if let Some(error) = fatal {
            bundle.errors.push(error.to_doc());
        }
        bundle
    }

    /// One email's records: newest first, cut to the limit; an invalid address is a warning.
    async fn records<'a>(
        &self,
        credentials: &Credentials,
        observable: &'a Observable,
    ) -> Result<Found<'a>, RelayError> {
        let email = match Email::parse(&observable.value) {
            Ok(email) => email,
            Err(invalid) => {
                let warning = Warning::InvalidEmail(invalid).to_doc();
                return Ok(Found {
                    observable,
                    breaches: Vec::new(),
                    warnings: vec![warning],
                });
            }
        };
        let records = self.source.breaches(&credentials.api_key, &email).await?;
        let mut warnings = Vec::new();
        let mut breaches: Vec<Breach> = records
            .into_iter()
            .filter_map(|record| {
                Breach::try_from(record)
                    .map_err(|why| {
                        warnings.push(Warning::SkippedRecord(email.clone(), why).to_doc())
                    })
                    .ok()
            })
            .collect();
        breaches.sort_by_key(|b| std::cmp::Reverse(b.published));
        breaches.truncate(credentials.entities_limit.get());
        Ok(Found {
            observable,
            breaches,
            warnings,
        })
    }
}

/// What one email's records gave, waiting for the catalogs.
struct Found<'a> {
    observable: &'a Observable,
    breaches: Vec<Breach>,
    warnings: Vec<ErrorDoc>,
}

impl Found<'_> {
    fn catalog_ids(&self) -> impl Iterator<Item = CatalogId> + '_ {
        self.breaches.iter().filter_map(|b| b.source_id)
    }

    fn into_bundle(
        self,
        catalogs: &HashMap<CatalogId, Catalog>,
        options: &MappingOptions,
    ) -> Bundle {
        let mut bundle = Bundle {
            errors: self.warnings,
            ..Bundle::default()
        };
        bundle.append(mapping::email_bundle(
            self.observable,
            self.breaches,
            catalogs,
            options,
        ));
        bundle
    }
}

fn is_email(observable: &Observable) -> bool {
    *observable.kind == *EMAIL
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ApiKey, AuthError, BreachRecord, EntitiesLimit, SourceError};
    use crate::ports::{MockBreachSource, MockCredentialDecoder};
    use async_trait::async_trait;
    use mockall::predicate::eq;
    use serde_json::{Value, json};

    const CALLER: Caller<'static> = Caller {
        authorization: Some("Bearer token"),
        audience: "http://relay",
    };

    fn observables(list: &[(&str, &str)]) -> Vec<Observable> {
        list.iter()
            .map(|(kind, value)| Observable {
                value: (*value).into(),
                kind: (*kind).into(),
            })
            .collect()
    }

    fn record(source_id: u64, date: &str) -> BreachRecord {
        serde_json::from_value(
            json!({"source_id": source_id, "spycloud_publish_date": date, "severity": 2}),
        )
        .unwrap()
    }

    fn catalog(id: u64) -> Catalog {
        serde_json::from_value(
            json!({"id": id, "uuid": format!("u{id}"), "title": format!("T{id}")}),
        )
        .unwrap()
    }

    fn decoder(limit: usize) -> MockCredentialDecoder {
        let mut decoder = MockCredentialDecoder::new();
        decoder.expect_decode().returning(move |_, _| {
            Ok(Credentials {
                api_key: ApiKey::parse("k").unwrap(),
                entities_limit: EntitiesLimit::new(limit).unwrap(),
            })
        });
        decoder
    }

    fn relay(source: impl BreachSource + 'static, decoder: MockCredentialDecoder) -> Relay {
        Relay::new(
            Arc::new(source),
            Arc::new(decoder),
            RelaySettings::default(),
        )
    }

    fn messages(bundle: &Bundle) -> Vec<(String, String)> {
        bundle
            .errors
            .iter()
            .map(|e| (e.code.clone(), e.message.clone()))
            .collect()
    }

    #[tokio::test]
    async fn no_supported_observable_answers_empty_without_looking_at_the_token() {
        let mut decoder = MockCredentialDecoder::new();
        decoder.expect_decode().times(0);
        let relay = relay(MockBreachSource::new(), decoder);
        let caller = Caller {
            authorization: None,
            audience: "x",
        };
        let bundle = relay
            .observe(
                &observables(&[("ip", "1.2.3.4"), ("domain", "x.com")]),
                &caller,
            )
            .await;
        assert_eq!(bundle.into_response(), json!({"data": {}}));
    }

    #[tokio::test]
    async fn authorization_failure_is_fatal_and_nothing_is_looked_up() {
        let mut decoder = MockCredentialDecoder::new();
        decoder
            .expect_decode()
            .returning(|_, _| Err(AuthError::Expired));
        let relay = relay(MockBreachSource::new(), decoder);
        let bundle = relay
            .observe(&observables(&[("email", "a@x.com")]), &CALLER)
            .await;
        assert_eq!(
            bundle.into_response(),
            json!({"errors": [{"type": "fatal", "code": "authorization error", "message": "Authorization failed: Token has expired"}]})
        );
        let missing = Caller {
            authorization: None,
            audience: "x",
        };
        let bundle = relay
            .observe(&observables(&[("email", "a@x.com")]), &missing)
            .await;
        assert_eq!(
            bundle.errors[0].message,
            "Authorization failed: Authorization header is missing"
        );
    }

    #[tokio::test]
    async fn newest_records_first_cut_to_the_limit_and_only_their_catalogs_fetched() {
        let mut source = MockBreachSource::new();
        source.expect_breaches().times(1).returning(|_, _| {
            Ok(vec![
                record(1, "2018-01-01T00:00:00Z"),
                record(2, "2021-01-01T00:00:00Z"),
                record(3, "2019-01-01T00:00:00Z"),
                record(2, "2020-01-01T00:00:00Z"),
            ])
        });
        source
            .expect_catalogs()
            .with(
                mockall::predicate::always(),
                eq(vec![CatalogId(2), CatalogId(3)]),
            )
            .times(1)
            .returning(|_, _| Ok(vec![catalog(2), catalog(3)]));
        let relay = relay(source, decoder(3));
        let bundle = relay
            .observe(&observables(&[("email", "a@x.com")]), &CALLER)
            .await;
        let dates: Vec<_> = bundle
            .sightings
            .iter()
            .map(|s| s.observed_time.start_time.to_string())
            .collect();
        assert_eq!(
            dates,
            [
                "2021-01-01T00:00:00.000000Z",
                "2020-01-01T00:00:00.000000Z",
                "2019-01-01T00:00:00.000000Z"
            ]
        );
        let indicators: Vec<_> = bundle
            .indicators
            .iter()
            .map(|i| i.title.clone().unwrap())
            .collect();
        assert_eq!(indicators, ["T2", "T3"]);
        assert_eq!(bundle.relationships.len(), 3);
        assert!(bundle.errors.is_empty());
    }

    #[tokio::test]
    async fn invalid_emails_warn_and_are_not_sent() {
        let mut source = MockBreachSource::new();
        source
            .expect_breaches()
            .withf(|_, e| e.as_str() == "ok@x.com")
            .times(1)
            .returning(|_, _| Ok(vec![]));
        let relay = relay(source, decoder(100));
        let bundle = relay
            .observe(
                &observables(&[("email", "not an email"), ("email", "ok@x.com")]),
                &CALLER,
            )
            .await;
        assert_eq!(
            bundle.into_response(),
            json!({"data": {}, "errors": [{"type": "warning", "code": "invalid argument", "message": "not an email is not a valid email address"}]})
        );
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_mapped_is_skipped_with_a_warning() {
        let mut source = MockBreachSource::new();
        source.expect_breaches().returning(|_, _| {
            let bad: BreachRecord = serde_json::from_value(json!({"source_id": 1})).unwrap();
            Ok(vec![bad, record(1, "2020-01-01T00:00:00Z")])
        });
        source
            .expect_catalogs()
            .returning(|_, _| Ok(vec![catalog(1)]));
        let relay = relay(source, decoder(100));
        let bundle = relay
            .observe(&observables(&[("email", "a@x.com")]), &CALLER)
            .await;
        assert_eq!(bundle.sightings.len(), 1);
        assert_eq!(
            messages(&bundle),
            [("unknown".into(), "Skipped a SpyCloud record of a@x.com: spycloud_publish_date is missing or not a date".into())]
        );
    }

    #[tokio::test]
    async fn health_probes_the_source_with_the_callers_key() {
        let mut source = MockBreachSource::new();
        source
            .expect_probe()
            .times(1)
            .returning(|_| Err(SourceError::Unauthorized("Invalid key".into())));
        let relay = relay(source, decoder(100));
        let error = relay.health(&CALLER).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (
                "authorization error",
                "Authorization failed: Invalid key".into()
            )
        );
    }

    /// A source whose answers take as long as the test says, to prove order under concurrency.
    struct SlowSource(HashMap<&'static str, (u64, Result<Vec<BreachRecord>, SourceError>)>);

    #[async_trait]
    impl BreachSource for SlowSource {
        async fn breaches(
            &self,
            _: &ApiKey,
            email: &Email,
        ) -> Result<Vec<BreachRecord>, SourceError> {
            let (millis, answer) = self.0[email.as_str()].clone();
            tokio::time::sleep(Duration::from_millis(millis)).await;
            answer
        }
        async fn catalogs(
            &self,
            _: &ApiKey,
            ids: &[CatalogId],
        ) -> Result<Vec<Catalog>, SourceError> {
            Ok(ids.iter().map(|id| catalog(id.0)).collect())
        }
        async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
            Ok(())
        }
    }

    fn sighting_emails(bundle: &Bundle) -> Vec<String> {
        bundle
            .sightings
            .iter()
            .map(|s| s.observables[0].value.to_string())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn input_order_is_kept_however_long_each_lookup_takes() {
        let source = SlowSource(HashMap::from([
            (
                "a@x.com",
                (300, Ok(vec![record(1, "2020-01-01T00:00:00Z")])),
            ),
            ("b@x.com", (10, Ok(vec![record(2, "2020-01-01T00:00:00Z")]))),
            (
                "c@x.com",
                (100, Ok(vec![record(3, "2020-01-01T00:00:00Z")])),
            ),
        ]));
        let relay = relay(source, decoder(100));
        let input = observables(&[
            ("email", "a@x.com"),
            ("email", "b@x.com"),
            ("email", "c@x.com"),
        ]);
        let bundle = relay.observe(&input, &CALLER).await;
        assert_eq!(sighting_emails(&bundle), ["a@x.com", "b@x.com", "c@x.com"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_keeps_exactly_what_came_before_it() {
        let source = SlowSource(HashMap::from([
            (
                "a@x.com",
                (300, Ok(vec![record(1, "2020-01-01T00:00:00Z")])),
            ),
            ("b@x.com", (10, Err(SourceError::Internal))),
            ("c@x.com", (1, Ok(vec![record(3, "2020-01-01T00:00:00Z")]))),
        ]));
        let relay = relay(source, decoder(100));
        let input = observables(&[
            ("email", "bad1"),
            ("email", "a@x.com"),
            ("email", "b@x.com"),
            ("email", "bad2"),
            ("email", "c@x.com"),
        ]);
        let bundle = relay.observe(&input, &CALLER).await;
        assert_eq!(sighting_emails(&bundle), ["a@x.com"]);
        assert_eq!(
            messages(&bundle),
            [
                (
                    "invalid argument".into(),
                    "bad1 is not a valid email address".into()
                ),
                (
                    "internal error".into(),
                    "The Spycloud internal error.".into()
                ),
            ]
        );
        let response = bundle.into_response();
        assert_eq!(response["data"]["sightings"]["count"], 1);
        assert_eq!(response["errors"][1]["type"], "fatal");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_the_answer_is_the_deadline_error() {
        let source = SlowSource(HashMap::from([
            ("a@x.com", (10, Ok(vec![record(1, "2020-01-01T00:00:00Z")]))),
            (
                "b@x.com",
                (60_000, Ok(vec![record(2, "2020-01-01T00:00:00Z")])),
            ),
        ]));
        let settings = RelaySettings {
            deadline: Duration::from_secs(25),
            ..RelaySettings::default()
        };
        let relay = Relay::new(Arc::new(source), Arc::new(decoder(100)), settings);
        let bundle = relay
            .observe(
                &observables(&[("email", "a@x.com"), ("email", "b@x.com")]),
                &CALLER,
            )
            .await;
        let response = bundle.into_response();
        assert_eq!(response.get("data"), None);
        assert_eq!(response["errors"].as_array().unwrap().len(), 1);
        let error: &Value = &response["errors"][0];
        assert_eq!(
            (&error["type"], &error["code"]),
            (&json!("fatal"), &json!("unknown"))
        );
        assert!(error["message"].as_str().unwrap().contains("25 s"));
    }

    #[tokio::test]
    async fn the_catalogs_of_all_emails_are_fetched_in_one_call() {
        let mut source = MockBreachSource::new();
        source.expect_breaches().times(3).returning(|_, email| {
            let id = match email.as_str() {
                "a@x.com" => 3,
                "b@x.com" => 1,
                _ => 3,
            };
            Ok(vec![
                record(id, "2020-01-01T00:00:00Z"),
                record(2, "2019-01-01T00:00:00Z"),
            ])
        });
        source
            .expect_catalogs()
            .with(
                mockall::predicate::always(),
                eq(vec![CatalogId(1), CatalogId(2), CatalogId(3)]),
            )
            .times(1)
            .returning(|_, ids| Ok(ids.iter().map(|id| catalog(id.0)).collect()));
        let relay = relay(source, decoder(100));
        let input = observables(&[
            ("email", "a@x.com"),
            ("email", "b@x.com"),
            ("email", "c@x.com"),
        ]);
        let bundle = relay.observe(&input, &CALLER).await;
        assert_eq!(bundle.sightings.len(), 6);
        // One indicator per distinct catalog of each email, in order of first appearance.
        let titles: Vec<_> = bundle
            .indicators
            .iter()
            .map(|i| i.title.clone().unwrap())
            .collect();
        assert_eq!(titles, ["T3", "T2", "T1", "T2", "T3", "T2"]);
    }

    #[tokio::test]
    async fn a_failed_catalog_fetch_keeps_the_emails_that_needed_no_catalog() {
        let mut source = MockBreachSource::new();
        source
            .expect_breaches()
            .returning(|_, email| match email.as_str() {
                "none@x.com" => Ok(vec![]),
                _ => Ok(vec![record(1, "2020-01-01T00:00:00Z")]),
            });
        source
            .expect_catalogs()
            .times(1)
            .returning(|_, _| Err(SourceError::RateLimited));
        let relay = relay(source, decoder(100));
        let input = observables(&[
            ("email", "bad"),
            ("email", "none@x.com"),
            ("email", "a@x.com"),
        ]);
        let bundle = relay.observe(&input, &CALLER).await;
        assert!(bundle.sightings.is_empty());
        let codes: Vec<_> = messages(&bundle)
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        assert_eq!(codes, ["invalid argument", "too many requests"]);
    }
}
