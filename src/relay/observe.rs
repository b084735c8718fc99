//! Observe: the observables of a request looked up at once, answered in input order.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{Authorized, Relay};
use crate::domain::mapping::MappingOptions;
use crate::domain::{
    ApiKey, BreachCollector, BreachQuery, Bundle, Catalog, CatalogId, Credentials, Error, ErrorDoc,
    Findings, Lookup, Observable, ObservableFindings, ObservableType, SourceError, Warning,
};
use crate::flights::Flights;
use crate::ports::BreachSource;

/// One step of a request's findings, in input order: a lookup, or a warning ready at once.
type Step<'a> = BoxFuture<'a, Result<ObservableFindings, Error>>;

impl Relay {
    /// An authorized caller's observe request: the findings, within its request's deadline,
    /// rendered as CTIM for it.
    pub(crate) async fn observe(&self, caller: &Authorized, observables: &[Observable]) -> Bundle {
        let credentials = &caller.credentials;
        self.lookup_until(credentials, observables, caller.deadline)
            .await
            .to_ctim(&self.mapping(credentials))
    }

    /// Looks up the supported observables (`email`, `domain`, `ip`, `ipv6`, `user`; other
    /// types are skipped) with known credentials, within the request deadline: what SpyCloud
    /// said of each, and the fatal error that stopped the request, if one did. The embedder's
    /// entry point; see [`Relay::builder`]. [`Findings::to_ctim`] renders them as SecureX
    /// reads them, under [`Relay::mapping`].
    ///
    /// Each value is parsed for its type once, here: an invalid one is a warning and is not
    /// sent. At most [`super::RelaySettings::max_lookups`] are looked up; the rest give one
    /// warning. The lookups run at once (up to the concurrency setting), and each asks for its
    /// catalogs as soon as its records are in; a catalog another lookup of the request already
    /// asked for is awaited, not asked for again. So a request costs two round trips however
    /// many observables it holds. The findings still read as if the observables had been
    /// looked up one after another: in input order, and a fatal error (the deadline's
    /// included) keeps exactly what came before it. The token's invalid module settings come
    /// first, as warnings. The module setting `SINCE_DAYS` counts back from the relay's clock's
    /// UTC date.
    ///
    /// Here SpyCloud (a stand-in) answers the first email and refuses the second:
    ///
    /// ```
    /// use spycloud_relay::{Error, Relay};
    /// use spycloud_relay::domain::{ApiKey, Credentials, Observable};
    /// # use serde_json::json;
    /// # use wiremock::matchers::path;
    /// # use wiremock::{Mock, MockServer, ResponseTemplate};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let spycloud = MockServer::start().await;
    /// # let record = json!({"source_id": 7, "spycloud_publish_date": "2024-03-01T00:00:00Z"});
    /// # let answer = |status, body| ResponseTemplate::new(status).set_body_json(body);
    /// # Mock::given(path("/breach/data/emails/alex@example.com"))
    /// #     .respond_with(answer(200, json!({"cursor": "", "hits": 1, "results": [record]})))
    /// #     .mount(&spycloud).await;
    /// # Mock::given(path("/breach/catalog/7"))
    /// #     .respond_with(answer(200, json!({"hits": 1, "results": [{"id": 7, "title": "Example Forum"}]})))
    /// #     .mount(&spycloud).await;
    /// # Mock::given(path("/breach/data/emails/sam@example.com"))
    /// #     .respond_with(answer(403, json!({"message": "Not entitled"})))
    /// #     .mount(&spycloud).await;
    /// let relay = Relay::builder().api_url(spycloud.uri()).build()?;
    /// let credentials = Credentials::new(ApiKey::parse("my SpyCloud API key")?);
    /// let observables = [
    ///     Observable::new("email", "alex@example.com"),
    ///     Observable::new("email", "sam@example.com"),
    /// ];
    ///
    /// // The findings keep what came before the fatal error, typed.
    /// let findings = relay.lookup(&credentials, &observables).await;
    /// assert_eq!(findings.observables.len(), 1);
    /// assert_eq!(findings.fatal, Some(Error::Authorization { reason: "Not entitled".to_owned() }));
    ///
    /// // SecureX's answer: the fatal error comes last.
    /// let bundle = findings.to_ctim(&relay.mapping(&credentials));
    /// assert_eq!(bundle.sightings[0].description, "Present in Example Forum");
    /// assert_eq!(bundle.fatal_code(), Some("authorization error"));
    /// assert_eq!(bundle.errors.last().unwrap().message, "Authorization failed: Not entitled");
    /// # Ok(()) }
    /// ```
    ///
    /// Warnings ride along with what was found:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use spycloud_relay::{Relay, RelaySettings};
    /// use spycloud_relay::adapters::{FixedCredentials, MemorySource};
    /// use spycloud_relay::domain::{ApiKey, Credentials, ErrorType, Observable};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
    /// # let decoder = Arc::new(FixedCredentials(credentials.clone()));
    /// let relay = Relay::new(Arc::new(MemorySource::sample()), decoder, RelaySettings::default());
    /// let observables = [
    ///     Observable::new("email", "jordan.lee@example.org"),
    ///     Observable::new("email", "jordan.lee"),           // invalid: a warning
    ///     Observable::new("sha256", "e3b0c44298fc1c14..."), // not SpyCloud's: skipped
    /// ];
    /// let findings = relay.lookup(&credentials, &observables).await;
    /// assert_eq!(findings.fatal, None);
    /// let bundle = findings.to_ctim(&relay.mapping(&credentials));
    /// assert_eq!(bundle.sightings.len(), 2);
    /// assert_eq!(bundle.indicators.len(), 1); // one record's catalog is unknown to SpyCloud
    /// let warnings: Vec<_> = bundle.errors.iter().map(|e| (e.kind, e.message.as_str())).collect();
    /// assert_eq!(warnings, [
    ///     (ErrorType::Warning, "SpyCloud did not return results for 99001"),
    ///     (ErrorType::Warning, "jordan.lee is not a valid email address"),
    /// ]);
    /// # Ok(()) }
    /// ```
    pub async fn lookup(&self, credentials: &Credentials, observables: &[Observable]) -> Findings {
        self.lookup_until(credentials, observables, self.deadline())
            .await
    }

    /// How the findings of `credentials` are rendered: the relay's mapping options, the
    /// password policy of their module setting `PASSWORDS` first.
    pub fn mapping(&self, credentials: &Credentials) -> MappingOptions {
        MappingOptions {
            passwords: credentials
                .settings
                .passwords
                .unwrap_or(self.settings.mapping.passwords),
            ..self.settings.mapping.clone()
        }
    }

    /// [`Relay::lookup`] within a deadline set by the caller.
    async fn lookup_until(
        &self,
        credentials: &Credentials,
        observables: &[Observable],
        deadline: tokio::time::Instant,
    ) -> Findings {
        let today = (self.clock)().date();
        let query = credentials.settings.breach_query(today);
        let fetches = CatalogFetches::new(self.source.as_ref(), &credentials.api_key);
        let lookup = |observable, lookup| {
            let request = Request {
                fetches: &fetches,
                credentials,
                query: &query,
            };
            self.look_up_one(request, observable, lookup).boxed()
        };
        let steps = self.steps(observables, lookup);
        let mut results = futures::stream::iter(steps).buffered(self.settings.concurrency.max(1));
        let mut findings = Findings {
            warnings: credentials.settings.warnings(),
            ..Findings::default()
        };
        let fatal = loop {
            match tokio::time::timeout_at(deadline, results.next()).await {
                Ok(Some(Ok(found))) => findings.observables.push(found),
                Ok(None) => return findings,
                Ok(Some(Err(error))) => break error,
                Err(_) => break self.deadline_passed(),
            }
        };
        findings.fatal = Some(fatal);
        findings
    }

    /// The steps of a request in input order: each supported observable's lookup, or the
    /// warning for its invalid value; past the lookup limit, one warning for the rest (on the
    /// first observable left out).
    fn steps<'a>(
        &self,
        observables: &'a [Observable],
        mut look_up: impl FnMut(&'a Observable, Lookup) -> Step<'a>,
    ) -> Vec<Step<'a>> {
        let warning = |observable: &Observable, warning: Warning| -> Step<'a> {
            let found = ObservableFindings::warned(observable, warning.to_doc());
            futures::future::ready(Ok(found)).boxed()
        };
        let max = self.settings.max_lookups;
        let mut supported = observables
            .iter()
            .filter_map(|o| Some((o, ObservableType::of(&o.kind)?)));
        let mut steps = Vec::new();
        let mut looked_up = 0;
        while let Some((observable, kind)) = supported.next() {
            match Lookup::parse(kind, &observable.value) {
                Err(invalid) => steps.push(warning(observable, Warning::InvalidValue(invalid))),
                Ok(_) if looked_up == max => {
                    let left_out = 1 + supported.count();
                    let too_many = Warning::TooManyObservables { max, left_out };
                    steps.push(warning(observable, too_many));
                    break;
                }
                Ok(lookup) => {
                    looked_up += 1;
                    steps.push(look_up(observable, lookup));
                }
            }
        }
        steps
    }

    /// One observable: its records, then their catalogs.
    async fn look_up_one(
        &self,
        request: Request<'_, '_>,
        observable: &Observable,
        lookup: Lookup,
    ) -> Result<ObservableFindings, Error> {
        let mut found = self.records(&request, observable, &lookup).await?;
        let mut ids: Vec<CatalogId> = found.records.iter().filter_map(|b| b.source_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let fetched = request.fetches.of(&ids).await?;
        let catalogs: HashMap<CatalogId, &Catalog> = fetched
            .iter()
            .flat_map(|batch| batch.iter())
            .map(|catalog| (catalog.id, catalog))
            .collect();
        found.catalogs = ids
            .iter()
            .filter_map(|id| catalogs.get(id).map(|&catalog| catalog.clone()))
            .collect();
        Ok(found)
    }

    /// One lookup's records, folded as they arrive into the newest (the entities limit), of at
    /// most `max_records` read; unreadable records and a cut-short answer are warnings.
    async fn records(
        &self,
        request: &Request<'_, '_>,
        observable: &Observable,
        lookup: &Lookup,
    ) -> Result<ObservableFindings, Error> {
        let credentials = request.credentials;
        let mut collector =
            BreachCollector::new(credentials.entities_limit.get(), self.settings.max_records);
        self.source
            .breaches(&credentials.api_key, lookup, request.query, &mut collector)
            .await?;
        let collected = collector.finish();
        let value = observable.value.to_string();
        let mut warnings: Vec<ErrorDoc> = collected
            .skipped
            .iter()
            .map(|(why, count)| {
                Warning::SkippedRecords {
                    value: value.clone(),
                    why: why.clone(),
                    count: *count,
                }
                .to_doc()
            })
            .collect();
        if let Some(hits) = collected.cut_short() {
            let read = collected.read;
            warnings.push(Warning::TooManyResults { value, hits, read }.to_doc());
        }
        Ok(ObservableFindings {
            observable: observable.clone(),
            records: collected.breaches,
            catalogs: Vec::new(),
            warnings,
        })
    }
}

/// What every lookup of one request shares.
#[derive(Clone, Copy)]
struct Request<'a, 'f> {
    fetches: &'a CatalogFetches<'f>,
    credentials: &'a Credentials,
    query: &'a BreachQuery,
}

/// One catalog call's answer, shared by every lookup of the request that waits for it.
type Fetched = Result<Arc<Vec<Catalog>>, SourceError>;

/// The catalog calls of one request, each id asked for once: a lookup asks for the ids no
/// call of the request has asked for yet, and waits for the calls that did ask for the others.
struct CatalogFetches<'a> {
    source: &'a dyn BreachSource,
    key: &'a ApiKey,
    calls: Flights<'a, CatalogId, Fetched>,
}

impl<'a> CatalogFetches<'a> {
    fn new(source: &'a dyn BreachSource, key: &'a ApiKey) -> Self {
        Self {
            source,
            key,
            calls: Flights::new(),
        }
    }

    /// The answers of the calls that cover `ids`, starting one for the ids not yet asked for.
    ///
    /// # Errors
    /// The error of any of those calls.
    async fn of(&self, ids: &[CatalogId]) -> Result<Vec<Arc<Vec<Catalog>>>, SourceError> {
        let (source, key) = (self.source, self.key);
        let calls = self.calls.covering(ids, |asked| {
            async move { source.catalogs(key, &asked).await.map(Arc::new) }.boxed()
        });
        futures::future::try_join_all(calls).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        ApiKey, AuthError, EntitiesLimit, ModuleSettings, RawRecord, RecordSink, SourceError,
    };
    use crate::ports::{MockBreachSource, MockCredentialDecoder};
    use crate::relay::Caller;
    use crate::relay::RelaySettings;
    use async_trait::async_trait;
    use chrono::NaiveDate;
    use mockall::predicate::eq;
    use serde_json::{Value, json};
    use std::time::Duration;

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

    fn record(source_id: u64, date: &str) -> RawRecord {
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

    fn credentials(limit: usize) -> Credentials {
        Credentials {
            api_key: ApiKey::parse("k").unwrap(),
            entities_limit: EntitiesLimit::new(limit).unwrap(),
            settings: ModuleSettings::default(),
        }
    }

    fn decoder(limit: usize) -> MockCredentialDecoder {
        let mut decoder = MockCredentialDecoder::new();
        decoder
            .expect_decode()
            .returning(move |_, _| Ok(credentials(limit)));
        decoder
    }

    /// Feeds `records` into a source's sink, as a source answering them in one page would.
    fn answer(into: &mut dyn RecordSink, records: Vec<RawRecord>) -> Result<(), SourceError> {
        for record in records {
            if into.wants_more() {
                into.add(record);
            }
        }
        Ok(())
    }

    fn relay(source: impl BreachSource + 'static, decoder: MockCredentialDecoder) -> Relay {
        Relay::new(
            Arc::new(source),
            Arc::new(decoder),
            RelaySettings::default(),
        )
    }

    /// A relay over a source the test keeps a handle on, with a token limit of 100.
    fn watched_relay(source: Arc<dyn BreachSource>) -> Relay {
        Relay::new(source, Arc::new(decoder(100)), RelaySettings::default())
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
            .observe_request(
                &observables(&[
                    ("sha256", "ab12"),
                    ("url", "https://x.com"),
                    ("e-mail", "a@x.com"),
                ]),
                &caller,
            )
            .await;
        assert_eq!(bundle.into_response().unwrap(), json!({"data": {}}));
    }

    #[tokio::test]
    async fn authorization_failure_is_fatal_and_nothing_is_looked_up() {
        let mut decoder = MockCredentialDecoder::new();
        decoder
            .expect_decode()
            .returning(|_, _| Err(AuthError::Expired));
        let relay = relay(MockBreachSource::new(), decoder);
        let bundle = relay
            .observe_request(&observables(&[("email", "a@x.com")]), &CALLER)
            .await;
        assert_eq!(
            bundle.into_response().unwrap(),
            json!({"errors": [{"type": "fatal", "code": "authorization error", "message": "Authorization failed: Token has expired"}]})
        );
        let missing = Caller {
            authorization: None,
            audience: "x",
        };
        let bundle = relay
            .observe_request(&observables(&[("email", "a@x.com")]), &missing)
            .await;
        assert_eq!(
            bundle.errors[0].message,
            "Authorization failed: Authorization header is missing"
        );
    }

    #[tokio::test]
    async fn newest_records_first_cut_to_the_limit_and_only_their_catalogs_fetched() {
        let mut source = MockBreachSource::new();
        source
            .expect_breaches()
            .times(1)
            .returning(|_, _, _, into| {
                answer(
                    into,
                    vec![
                        record(1, "2018-01-01T00:00:00Z"),
                        record(2, "2021-01-01T00:00:00Z"),
                        record(3, "2019-01-01T00:00:00Z"),
                        record(2, "2020-01-01T00:00:00Z"),
                    ],
                )
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
            .observe_request(&observables(&[("email", "a@x.com")]), &CALLER)
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

    // RULES R2
    #[tokio::test]
    async fn invalid_emails_warn_and_are_not_sent() {
        let mut source = MockBreachSource::new();
        source
            .expect_breaches()
            .withf(|_, lookup, _, _| lookup.to_string() == "ok@x.com")
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let relay = relay(source, decoder(100));
        let bundle = relay
            .observe_request(
                &observables(&[("email", "not an email"), ("email", "ok@x.com")]),
                &CALLER,
            )
            .await;
        assert_eq!(
            bundle.into_response().unwrap(),
            json!({"data": {}, "errors": [{"type": "warning", "code": "invalid argument", "message": "not an email is not a valid email address"}]})
        );
    }

    // RULES R6
    #[tokio::test]
    async fn a_record_that_cannot_be_mapped_is_skipped_with_a_warning() {
        let mut source = MockBreachSource::new();
        source.expect_breaches().returning(|_, _, _, into| {
            let bad: RawRecord = serde_json::from_value(json!({"source_id": 1})).unwrap();
            answer(into, vec![bad, record(1, "2020-01-01T00:00:00Z")])
        });
        source
            .expect_catalogs()
            .returning(|_, _| Ok(vec![catalog(1)]));
        let relay = relay(source, decoder(100));
        let bundle = relay
            .observe_request(&observables(&[("email", "a@x.com")]), &CALLER)
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
        let error = relay.health_request(&CALLER).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (
                "authorization error",
                "Authorization failed: Invalid key".into()
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_librarys_health_probes_with_the_given_key_and_keeps_the_deadline() {
        let mut source = MockBreachSource::new();
        source
            .expect_probe()
            .with(eq(ApiKey::parse("k").unwrap()))
            .times(1)
            .returning(|_| Err(SourceError::Unauthorized("Invalid key".into())));
        let relay = relay(source, MockCredentialDecoder::new());
        let error = relay.health(&credentials(100)).await.unwrap_err();
        assert_eq!(error.message(), "Authorization failed: Invalid key");

        /// A source whose probe never answers.
        struct Hanging;
        #[async_trait]
        impl BreachSource for Hanging {
            async fn breaches(
                &self,
                _: &ApiKey,
                _: &Lookup,
                _: &BreachQuery,
                _: &mut (dyn RecordSink + 'static),
            ) -> Result<(), SourceError> {
                Ok(())
            }
            async fn catalogs(
                &self,
                _: &ApiKey,
                _: &[CatalogId],
            ) -> Result<Vec<Catalog>, SourceError> {
                Ok(Vec::new())
            }
            async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
                std::future::pending().await
            }
        }
        let never = Relay::new(
            Arc::new(Hanging),
            Arc::new(MockCredentialDecoder::new()),
            RelaySettings {
                deadline: Duration::from_secs(3),
                ..RelaySettings::default()
            },
        );
        let error = never.health(&credentials(100)).await.unwrap_err();
        assert_eq!(error, Error::Deadline { secs: 3 });
    }

    /// A source whose answers take as long as the test says, to prove order under concurrency.
    struct SlowSource(HashMap<&'static str, (u64, Result<Vec<RawRecord>, SourceError>)>);

    #[async_trait]
    impl BreachSource for SlowSource {
        async fn breaches(
            &self,
            _: &ApiKey,
            lookup: &Lookup,
            _: &BreachQuery,
            into: &mut (dyn RecordSink + 'static),
        ) -> Result<(), SourceError> {
            let (millis, records) = self.0[lookup.to_string().as_str()].clone();
            tokio::time::sleep(Duration::from_millis(millis)).await;
            answer(into, records?)
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
        let bundle = relay.observe_request(&input, &CALLER).await;
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
        let bundle = relay.observe_request(&input, &CALLER).await;
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
        let response = bundle.into_response().unwrap();
        assert_eq!(response["data"]["sightings"]["count"], 1);
        assert_eq!(response["errors"][1]["type"], "fatal");
    }

    // RULES R16
    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_the_answer_keeps_what_came_before_and_ends_with_the_deadline_error()
    {
        let source = SlowSource(HashMap::from([
            ("a@x.com", (10, Ok(vec![record(1, "2020-01-01T00:00:00Z")]))),
            (
                "b@x.com",
                (60_000, Ok(vec![record(2, "2020-01-01T00:00:00Z")])),
            ),
            ("c@x.com", (10, Ok(vec![record(3, "2020-01-01T00:00:00Z")]))),
        ]));
        let settings = RelaySettings {
            deadline: Duration::from_secs(25),
            ..RelaySettings::default()
        };
        let relay = Relay::new(Arc::new(source), Arc::new(decoder(100)), settings);
        let started = tokio::time::Instant::now();
        let bundle = relay
            .observe_request(
                &observables(&[
                    ("email", "a@x.com"),
                    ("email", "b@x.com"),
                    ("email", "c@x.com"),
                ]),
                &CALLER,
            )
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(25));
        assert_eq!(sighting_emails(&bundle), ["a@x.com"]);
        let response = bundle.into_response().unwrap();
        assert_eq!(response["errors"].as_array().unwrap().len(), 1);
        let error: &Value = &response["errors"][0];
        assert_eq!(
            (&error["type"], &error["code"]),
            (&json!("fatal"), &json!("unknown"))
        );
        assert!(error["message"].as_str().unwrap().contains("25 s"));
    }

    /// Records after a delay per email, catalogs after `catalog_delay`; remembers when each
    /// catalog call started and what it asked for. A call asking for a `failing` id fails.
    struct RecordingSource {
        records: HashMap<&'static str, (u64, Vec<u64>)>,
        catalog_delay: u64,
        failing: Vec<u64>,
        calls: std::sync::Mutex<Vec<(Duration, Vec<u64>)>>,
        started: tokio::time::Instant,
    }

    impl RecordingSource {
        fn new(records: &[(&'static str, u64, &[u64])], catalog_delay: u64) -> Self {
            Self {
                records: records
                    .iter()
                    .map(|&(email, delay, ids)| (email, (delay, ids.to_vec())))
                    .collect(),
                catalog_delay,
                failing: Vec::new(),
                calls: std::sync::Mutex::default(),
                started: tokio::time::Instant::now(),
            }
        }

        fn failing(self, ids: &[u64]) -> Self {
            Self {
                failing: ids.to_vec(),
                ..self
            }
        }
    }

    #[async_trait]
    impl BreachSource for RecordingSource {
        async fn breaches(
            &self,
            _: &ApiKey,
            lookup: &Lookup,
            _: &BreachQuery,
            into: &mut (dyn RecordSink + 'static),
        ) -> Result<(), SourceError> {
            let (delay, ids) = &self.records[lookup.to_string().as_str()];
            tokio::time::sleep(Duration::from_millis(*delay)).await;
            let records = ids
                .iter()
                .map(|&id| record(id, "2020-01-01T00:00:00Z"))
                .collect();
            answer(into, records)
        }
        async fn catalogs(
            &self,
            _: &ApiKey,
            ids: &[CatalogId],
        ) -> Result<Vec<Catalog>, SourceError> {
            let asked: Vec<u64> = ids.iter().map(|id| id.0).collect();
            let fails = asked.iter().any(|id| self.failing.contains(id));
            self.calls
                .lock()
                .unwrap()
                .push((self.started.elapsed(), asked));
            tokio::time::sleep(Duration::from_millis(self.catalog_delay)).await;
            if fails {
                return Err(SourceError::Internal);
            }
            Ok(ids.iter().map(|id| catalog(id.0)).collect())
        }
        async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_emails_catalogs_are_asked_for_as_soon_as_its_records_are_in() {
        let source = Arc::new(RecordingSource::new(
            &[("a@x.com", 300, &[1]), ("b@x.com", 10, &[2])],
            50,
        ));
        let relay = watched_relay(source.clone());
        let input = observables(&[("email", "a@x.com"), ("email", "b@x.com")]);
        let bundle = relay.observe_request(&input, &CALLER).await;
        assert_eq!(sighting_emails(&bundle), ["a@x.com", "b@x.com"]);
        assert_eq!(
            *source.calls.lock().unwrap(),
            [
                (Duration::from_millis(10), vec![2]),
                (Duration::from_millis(300), vec![1])
            ]
        );
    }

    // RULES R15
    #[tokio::test(start_paused = true)]
    async fn each_catalog_is_asked_for_once_per_request_and_waited_for_by_every_email() {
        let source = Arc::new(RecordingSource::new(
            &[
                ("a@x.com", 10, &[3, 2]),
                ("b@x.com", 20, &[1, 2]),
                ("c@x.com", 30, &[3, 2]),
            ],
            100,
        ));
        let relay = watched_relay(source.clone());
        let input = observables(&[
            ("email", "a@x.com"),
            ("email", "b@x.com"),
            ("email", "c@x.com"),
        ]);
        let started = tokio::time::Instant::now();
        let bundle = relay.observe_request(&input, &CALLER).await;
        // b@x.com asks only for 1 and waits for the call that asked for 2; c@x.com asks nothing.
        assert_eq!(
            *source.calls.lock().unwrap(),
            [
                (Duration::from_millis(10), vec![2, 3]),
                (Duration::from_millis(20), vec![1])
            ]
        );
        assert_eq!(started.elapsed(), Duration::from_millis(120));
        assert_eq!(bundle.sightings.len(), 6);
        assert_eq!(bundle.relationships.len(), 6);
        // One indicator per catalog in the answer, in order of first appearance across the
        // emails; every relationship points at one of them.
        let titles: Vec<_> = bundle
            .indicators
            .iter()
            .map(|i| i.title.clone().unwrap())
            .collect();
        assert_eq!(titles, ["T3", "T2", "T1"]);
        let response = bundle.into_response().unwrap();
        assert_eq!(response["data"]["indicators"]["count"], 3);
        let ids: Vec<_> = response["data"]["indicators"]["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        for relationship in response["data"]["relationships"]["docs"]
            .as_array()
            .unwrap()
        {
            assert!(ids.contains(&relationship["target_ref"]), "{relationship}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_fatal_error_the_indicators_kept_are_each_there_once() {
        let source = RecordingSource::new(
            &[
                ("a@x.com", 1, &[1, 2]),
                ("b@x.com", 2, &[2, 3]),
                ("c@x.com", 3, &[9]),
                ("d@x.com", 4, &[1]),
            ],
            10,
        )
        .failing(&[9]);
        let relay = watched_relay(Arc::new(source));
        let input = observables(&[
            ("email", "a@x.com"),
            ("email", "b@x.com"),
            ("email", "c@x.com"),
            ("email", "d@x.com"),
        ]);
        let bundle = relay.observe_request(&input, &CALLER).await;
        assert_eq!(
            sighting_emails(&bundle),
            ["a@x.com", "a@x.com", "b@x.com", "b@x.com"]
        );
        let titles: Vec<_> = bundle
            .indicators
            .iter()
            .map(|i| i.title.clone().unwrap())
            .collect();
        assert_eq!(titles, ["T1", "T2", "T3"]);
        assert_eq!(bundle.relationships.len(), 4);
        assert_eq!(bundle.fatal_code(), Some("internal error"));
    }

    // RULES R15
    #[tokio::test(start_paused = true)]
    async fn a_failed_catalog_call_is_reported_once_at_the_first_email_that_needed_it() {
        // c@x.com asks for 9 first and the call fails; b@x.com, before it in input order, needs
        // 9 too but its records come in only after that. d@x.com, between them, is done before
        // the call fails: it would be kept if the failure were c@x.com's or the first to come.
        let source = Arc::new(
            RecordingSource::new(
                &[
                    ("a@x.com", 5, &[1]),
                    ("b@x.com", 50, &[9]),
                    ("d@x.com", 2, &[2]),
                    ("c@x.com", 10, &[9]),
                ],
                20,
            )
            .failing(&[9]),
        );
        let relay = watched_relay(source.clone());
        let input = observables(&[
            ("email", "a@x.com"),
            ("email", "b@x.com"),
            ("email", "d@x.com"),
            ("email", "c@x.com"),
        ]);
        let bundle = relay.observe_request(&input, &CALLER).await;
        assert_eq!(
            *source.calls.lock().unwrap(),
            [
                (Duration::from_millis(2), vec![2]),
                (Duration::from_millis(5), vec![1]),
                (Duration::from_millis(10), vec![9])
            ]
        );
        assert_eq!(sighting_emails(&bundle), ["a@x.com"]);
        let titles: Vec<_> = bundle
            .indicators
            .iter()
            .map(|i| i.title.clone().unwrap())
            .collect();
        assert_eq!(titles, ["T1"]);
        assert_eq!(bundle.relationships.len(), 1);
        assert_eq!(
            messages(&bundle),
            [(
                "internal error".into(),
                "The Spycloud internal error.".into()
            )]
        );
        assert_eq!(
            bundle.into_response().unwrap()["errors"][0]["type"],
            "fatal"
        );
    }

    /// How long an observe request for nine emails takes when each one's records take 100 ms.
    async fn nine_emails_of_100_ms(settings: RelaySettings) -> Duration {
        const EMAILS: [&str; 9] = [
            "e1@x.com", "e2@x.com", "e3@x.com", "e4@x.com", "e5@x.com", "e6@x.com", "e7@x.com",
            "e8@x.com", "e9@x.com",
        ];
        let records: Vec<(&'static str, u64, &[u64])> =
            EMAILS.iter().map(|&email| (email, 100, &[][..])).collect();
        let source = Arc::new(RecordingSource::new(&records, 0));
        let relay = Relay::new(source.clone(), Arc::new(decoder(100)), settings);
        let input: Vec<_> = EMAILS.iter().map(|&email| ("email", email)).collect();
        let started = tokio::time::Instant::now();
        let bundle = relay.observe_request(&observables(&input), &CALLER).await;
        assert_eq!(bundle.errors, []);
        assert_eq!(*source.calls.lock().unwrap(), []);
        started.elapsed()
    }

    // RULES R15
    #[tokio::test(start_paused = true)]
    async fn eight_emails_are_looked_up_at_once_by_default() {
        assert_eq!(
            nine_emails_of_100_ms(RelaySettings::default()).await,
            Duration::from_millis(200)
        );
        let nine_at_once = RelaySettings {
            concurrency: 9,
            ..RelaySettings::default()
        };
        assert_eq!(
            nine_emails_of_100_ms(nine_at_once).await,
            Duration::from_millis(100)
        );
    }

    #[tokio::test]
    async fn a_failed_catalog_fetch_keeps_the_emails_that_needed_no_catalog() {
        let mut source = MockBreachSource::new();
        source.expect_breaches().returning(|_, lookup, _, into| {
            match lookup.to_string().as_str() {
                "none@x.com" => Ok(()),
                _ => answer(into, vec![record(1, "2020-01-01T00:00:00Z")]),
            }
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
        let bundle = relay.observe_request(&input, &CALLER).await;
        assert!(bundle.sightings.is_empty());
        let codes: Vec<_> = messages(&bundle)
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        assert_eq!(codes, ["invalid argument", "too many requests"]);
    }

    fn settings_from(claims: Value) -> ModuleSettings {
        ModuleSettings::from_claims(claims.as_object().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn every_type_is_looked_up_in_input_order_with_its_own_value() {
        let source = SlowSource(HashMap::from([
            (
                "example.com",
                (300, Ok(vec![record(1, "2020-01-01T00:00:00Z")])),
            ),
            (
                "192.0.2.1",
                (10, Ok(vec![record(2, "2020-01-01T00:00:00Z")])),
            ),
            (
                "2001:db8::1",
                (100, Ok(vec![record(3, "2020-01-01T00:00:00Z")])),
            ),
            ("Alice", (50, Ok(vec![record(4, "2020-01-01T00:00:00Z")]))),
            ("a@x.com", (1, Ok(vec![record(5, "2020-01-01T00:00:00Z")]))),
        ]));
        let relay = relay(source, decoder(100));
        let input = observables(&[
            ("domain", "Example.COM."),
            ("ip", "192.0.2.1"),
            ("sha256", "ignored"),
            ("ipv6", "2001:DB8:0:0:0:0:0:1"),
            ("ip", "2001:db8::1"),
            ("user", "Alice"),
            ("email", "a@x.com"),
        ]);
        let bundle = relay.observe_request(&input, &CALLER).await;
        let looked_up: Vec<_> = bundle
            .sightings
            .iter()
            .map(|s| {
                (
                    s.observables[0].kind.to_string(),
                    s.observables[0].value.to_string(),
                )
            })
            .collect();
        // The sighting names the observable as given; SpyCloud was asked for its sent form.
        assert_eq!(
            looked_up,
            [
                ("domain".into(), "Example.COM.".into()),
                ("ip".into(), "192.0.2.1".into()),
                ("ipv6".into(), "2001:DB8:0:0:0:0:0:1".into()),
                ("user".into(), "Alice".into()),
                ("email".into(), "a@x.com".into()),
            ]
        );
        assert_eq!(
            messages(&bundle),
            [(
                "invalid argument".into(),
                "2001:db8::1 is not a valid IPv4 address".into()
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_in_a_mixed_request_keeps_what_came_before_it() {
        let source = SlowSource(HashMap::from([
            (
                "example.com",
                (300, Ok(vec![record(1, "2020-01-01T00:00:00Z")])),
            ),
            ("192.0.2.1", (10, Err(SourceError::NotFound))),
            ("bob", (1, Ok(vec![record(3, "2020-01-01T00:00:00Z")]))),
        ]));
        let relay = relay(source, decoder(100));
        let input = observables(&[
            ("user", "\u{7}bell"),
            ("domain", "example.com"),
            ("domain", "not_a_domain"),
            ("ip", "192.0.2.1"),
            ("user", "bob"),
        ]);
        let bundle = relay.observe_request(&input, &CALLER).await;
        assert_eq!(sighting_emails(&bundle), ["example.com"]);
        assert_eq!(
            messages(&bundle),
            [
                (
                    "invalid argument".into(),
                    "\u{7}bell is not a valid username".into()
                ),
                (
                    "invalid argument".into(),
                    "not_a_domain is not a valid domain".into()
                ),
                ("not found".into(), "The Spycloud not found.".into()),
            ]
        );
    }

    #[tokio::test]
    async fn severity_and_since_go_to_the_source_and_invalid_settings_warn_first() {
        let mut source = MockBreachSource::new();
        source
            .expect_breaches()
            .withf(|_, lookup, query, _| {
                lookup.to_string() == "example.com"
                    && query.severity.as_ref().map(|s| s.query_value()).as_deref() == Some("20,25")
                    && query.since == NaiveDate::from_ymd_opt(2024, 2, 29)
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let relay = relay(source, decoder(100));
        let credentials = Credentials {
            settings: settings_from(
                json!({"SEVERITY": "20,25", "SINCE_DAYS": 1, "PASSWORDS": "secret"}),
            ),
            ..credentials(100)
        };
        let today = crate::domain::Timestamp::parse("2024-03-01T12:00:00Z").unwrap();
        let relay = relay.with_clock(move || today);
        let bundle = relay
            .lookup(
                &credentials,
                &observables(&[("domain", "example.com"), ("ip", "999.1.1.1")]),
            )
            .await
            .to_ctim(&relay.mapping(&credentials));
        assert_eq!(
            messages(&bundle),
            [
                (
                    "invalid argument".into(),
                    "The module setting PASSWORDS is not valid and was ignored: secret".into()
                ),
                (
                    "invalid argument".into(),
                    "999.1.1.1 is not a valid IPv4 address".into()
                ),
            ]
        );
    }

    #[tokio::test]
    async fn since_days_counts_back_from_the_relays_clock() {
        let mut source = MockBreachSource::new();
        source
            .expect_breaches()
            .withf(|_, _, query, _| query.since == NaiveDate::from_ymd_opt(2024, 1, 31))
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let now = crate::domain::Timestamp::parse("2024-03-01T23:59:59Z").unwrap();
        let relay = relay(source, decoder(100)).with_clock(move || now);
        let credentials = Credentials {
            settings: settings_from(json!({"SINCE_DAYS": 30})),
            ..credentials(100)
        };
        let bundle = relay
            .lookup(&credentials, &observables(&[("domain", "example.com")]))
            .await
            .into_result()
            .unwrap()
            .to_ctim(&relay.mapping(&credentials));
        assert!(bundle.errors.is_empty(), "{:?}", bundle.errors);
    }

    #[tokio::test]
    async fn the_passwords_setting_overrides_the_relays_policy() {
        let answered = |policy: &str| {
            let mut source = MockBreachSource::new();
            source.expect_breaches().returning(|_, _, _, into| {
                let record: RawRecord = serde_json::from_value(json!({
                    "password": "hunter22", "spycloud_publish_date": "2020-01-01T00:00:00Z"
                }))
                .unwrap();
                answer(into, vec![record])
            });
            let relay = relay(source, decoder(100));
            let credentials = Credentials {
                settings: settings_from(json!({"PASSWORDS": policy})),
                ..credentials(100)
            };
            async move {
                let bundle = relay
                    .lookup(&credentials, &observables(&[("user", "bob")]))
                    .await
                    .to_ctim(&relay.mapping(&credentials));
                bundle.sightings[0].data.rows[0].clone()
            }
        };
        assert_eq!(answered("masked").await, [json!("hu******")]);
        assert_eq!(answered("omitted").await, Vec::<Value>::new());
        assert_eq!(answered("plaintext").await, [json!("hunter22")]);
        // Without the setting, the relay's own policy.
        assert_eq!(answered("").await, [json!("hunter22")]);
    }

    // RULES R7
    #[tokio::test]
    async fn past_the_lookup_limit_the_rest_are_one_warning() {
        let mut source = MockBreachSource::new();
        source
            .expect_breaches()
            .times(2)
            .returning(|_, _, _, _| Ok(()));
        let settings = RelaySettings {
            max_lookups: 2,
            ..RelaySettings::default()
        };
        let relay = Relay::new(Arc::new(source), Arc::new(decoder(100)), settings);
        let input = observables(&[
            ("email", "a@x.com"),
            ("ip", "bad"),
            ("ip", "192.0.2.1"),
            ("sha256", "not counted"),
            ("user", "carol"),
            ("domain", "also_bad"),
            ("email", "d@x.com"),
        ]);
        let bundle = relay.observe_request(&input, &CALLER).await;
        assert_eq!(
            messages(&bundle),
            [
                ("invalid argument".into(), "bad is not a valid IPv4 address".into()),
                (
                    "invalid argument".into(),
                    "The relay looks up at most 2 observables per request; the other 3 were not looked up.".into()
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_big_answer_keeps_the_newest_of_what_was_read_and_says_spycloud_holds_more() {
        let mut source = MockBreachSource::new();
        source.expect_breaches().returning(|_, _, _, into| {
            into.hits(250_000);
            // Oldest first: the newest are at the end of what is read.
            let mut n = 0;
            while into.wants_more() {
                into.add(record(n, &format!("20{:02}-01-01T00:00:00Z", n % 100)));
                n += 1;
            }
            Ok(())
        });
        source
            .expect_catalogs()
            .returning(|_, ids| Ok(ids.iter().map(|id| catalog(id.0)).collect()));
        let settings = RelaySettings {
            max_records: 150,
            ..RelaySettings::default()
        };
        let relay = Relay::new(Arc::new(source), Arc::new(decoder(3)), settings);
        let bundle = relay
            .observe_request(&observables(&[("domain", "example.com")]), &CALLER)
            .await;
        let dates: Vec<_> = bundle
            .sightings
            .iter()
            .map(|s| s.observed_time.start_time.to_string()[..4].to_owned())
            .collect();
        assert_eq!(dates, ["2099", "2098", "2097"]);
        assert_eq!(
            messages(&bundle),
            [(
                "too many results".into(),
                "SpyCloud holds 250000 records for example.com; the relay read 150. Narrow them with the SEVERITY or SINCE_DAYS module settings.".into()
            )]
        );
    }

    // RULES R6
    #[tokio::test]
    async fn unreadable_records_are_one_warning_per_reason_saying_how_many() {
        let mut source = MockBreachSource::new();
        source.expect_breaches().returning(|_, _, _, into| {
            let no_date: RawRecord = serde_json::from_value(json!({"source_id": 1})).unwrap();
            let bad_severity: RawRecord = serde_json::from_value(
                json!({"spycloud_publish_date": "2020-01-01T00:00:00Z", "severity": "high"}),
            )
            .unwrap();
            let mut records = vec![no_date; 500];
            records.push(bad_severity);
            answer(into, records)
        });
        let relay = relay(source, decoder(100));
        let bundle = relay
            .observe_request(&observables(&[("ip", "192.0.2.1")]), &CALLER)
            .await;
        assert_eq!(
            messages(&bundle),
            [
                (
                    "unknown".into(),
                    "Skipped 500 SpyCloud records of 192.0.2.1: spycloud_publish_date is missing or not a date".into()
                ),
                (
                    "unknown".into(),
                    "Skipped a SpyCloud record of 192.0.2.1: severity has an unexpected value".into()
                ),
            ]
        );
    }
}
