//! The SpyCloud adapter against a fake SpyCloud (wiremock): URLs, headers, paging, batching,
//! retries and the contract's status table.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use spycloud_relay::adapters::{RetryPolicy, SpyCloudClient, SpyCloudSettings};
use spycloud_relay::domain::SourceError;
use spycloud_relay::domain::{
    ApiKey, BreachQuery, CatalogId, Lookup, ObservableType, RawRecord, RecordSink, SeverityFilter,
    Timestamp,
};
use spycloud_relay::ports::{BreachSource, WatchlistQuery};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

const KEY: &str = "test-key-123";

fn settings(base_url: String) -> SpyCloudSettings {
    SpyCloudSettings {
        base_url,
        timeout: Duration::from_secs(5),
        max_rps: NonZeroU32::new(100).unwrap(),
        retry: RetryPolicy {
            max_retries: 2,
            base_backoff: Duration::from_millis(10),
            max_retry_after: Duration::from_millis(50),
        },
    }
}

fn client(server: &MockServer) -> SpyCloudClient {
    SpyCloudClient::new(settings(server.uri())).unwrap()
}

fn key() -> ApiKey {
    ApiKey::parse(KEY).unwrap()
}

fn email(value: &str) -> Lookup {
    Lookup::parse(ObservableType::Email, value).unwrap()
}

/// Every record a source hands over for a lookup without filters, as SpyCloud sent them.
trait AllRecords {
    async fn all_records(&self, lookup: &Lookup) -> Result<Vec<RawRecord>, SourceError>;
}

impl<S: BreachSource> AllRecords for S {
    async fn all_records(&self, lookup: &Lookup) -> Result<Vec<RawRecord>, SourceError> {
        let mut records = Vec::new();
        self.breaches(&key(), lookup, &BreachQuery::default(), &mut records)
            .await?;
        Ok(records)
    }
}

fn page(cursor: &str, results: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"cursor": cursor, "hits": results.as_array().unwrap().len(), "results": results}),
    )
}

/// Looks up `a@example.com` against a server answering `response` on every call.
async fn breaches_answering(response: ResponseTemplate, expected_calls: u64) -> SourceError {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/emails/a@example.com"))
        .respond_with(response)
        .expect(expected_calls)
        .mount(&server)
        .await;
    let error = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap_err();
    server.verify().await;
    assert!(!format!("{error:?}").contains(KEY), "{error:?}");
    error
}

/// A server whose email lookup answers `failures` once each, in turn, then one page of a
/// record; each answer is expected exactly once.
async fn failing_then_answering(failures: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    let at = || path("/breach/data/emails/a@example.com");
    for failure in failures {
        Mock::given(method("GET"))
            .and(at())
            .respond_with(failure)
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(at())
        .respond_with(page("", json!([{"n": 1}])))
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn ids(list: impl IntoIterator<Item = u64>) -> Vec<CatalogId> {
    list.into_iter().map(CatalogId).collect()
}

fn id_list(list: impl IntoIterator<Item = u64>) -> String {
    list.into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn catalogs_json(list: impl IntoIterator<Item = u64>) -> Value {
    list.into_iter()
        .map(|id| json!({"id": id, "title": format!("breach {id}")}))
        .collect()
}

#[tokio::test]
async fn every_request_carries_the_key_accept_and_user_agent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/emails/a@example.com"))
        .and(header("X-API-Key", KEY))
        .and(header("Accept", "application/json"))
        .and(header(
            "User-Agent",
            concat!("spycloud-relay/", env!("CARGO_PKG_VERSION")),
        ))
        .respond_with(page("", json!([{"document_id": "d1"}])))
        .expect(1)
        .mount(&server)
        .await;
    let records = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn the_email_is_percent_encoded_as_one_path_segment() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/breach/data/emails/a%2Bb%2Fc%3Fd%23e%25f@example.com",
        ))
        .respond_with(page("", json!([])))
        .expect(1)
        .mount(&server)
        .await;
    let records = client(&server)
        .all_records(&email("a+b/c?d#e%f@example.com"))
        .await
        .unwrap();
    assert!(records.is_empty());
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[0].url.path(),
        "/breach/data/emails/a%2Bb%2Fc%3Fd%23e%25f@example.com"
    );
    assert_eq!(requests[0].url.query(), None);
}

#[tokio::test]
async fn a_trailing_slash_on_the_base_url_is_tolerated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/enterprise-v2/breach/data/emails/a@example.com"))
        .respond_with(page("", json!([])))
        .expect(1)
        .mount(&server)
        .await;
    let client = SpyCloudClient::new(settings(format!("{}/enterprise-v2/", server.uri()))).unwrap();
    client.all_records(&email("a@example.com")).await.unwrap();
}

#[tokio::test]
async fn all_pages_are_followed_in_order() {
    let server = MockServer::start().await;
    let at = || path("/breach/data/emails/a@example.com");
    Mock::given(method("GET"))
        .and(at())
        .and(query_param_is_missing("cursor"))
        .respond_with(page("c 2/+", json!([{"n": 1}, {"n": 2}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(at())
        .and(query_param("cursor", "c 2/+"))
        .respond_with(page("c3", json!([{"n": 3}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(at())
        .and(query_param("cursor", "c3"))
        .respond_with(page("", json!([{"n": 4}, {"n": 5}])))
        .expect(1)
        .mount(&server)
        .await;
    let records = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap();
    let order: Vec<_> = records.iter().map(|r| r.0["n"].clone()).collect();
    assert_eq!(order, [json!(1), json!(2), json!(3), json!(4), json!(5)]);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[1].url.query(), Some("cursor=c%202%2F%2B"));
}

// RULES R12
#[tokio::test]
async fn a_repeated_cursor_is_an_invalid_response() {
    let server = MockServer::start().await;
    let at = || path("/breach/data/emails/a@example.com");
    Mock::given(method("GET"))
        .and(at())
        .and(query_param_is_missing("cursor"))
        .respond_with(page("again", json!([{"n": 1}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(at())
        .and(query_param("cursor", "again"))
        .respond_with(page("again", json!([{"n": 2}])))
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SourceError::InvalidResponse("SpyCloud repeated a page cursor".into())
    );
    server.verify().await;
}

/// Pages without end: each names a new cursor.
struct EndlessPages(AtomicUsize);

impl Respond for EndlessPages {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        page(&format!("page-{n}"), json!([{"n": n}]))
    }
}

// RULES R12
#[tokio::test]
async fn paging_past_100_pages_is_an_invalid_response() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(EndlessPages(AtomicUsize::new(0)))
        .expect(100)
        .mount(&server)
        .await;
    let client = SpyCloudClient::new(SpyCloudSettings {
        max_rps: NonZeroU32::new(1000).unwrap(),
        ..settings(server.uri())
    })
    .unwrap();
    let error = client
        .all_records(&email("a@example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SourceError::InvalidResponse("SpyCloud kept paginating past 100 pages".into())
    );
    server.verify().await;
}

#[tokio::test]
async fn record_fields_keep_spycloud_order() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/emails/a@example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"cursor":"","hits":1,"results":[{"zeta":1,"alpha":2,"mid":3}]}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let records = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap();
    let names: Vec<_> = records[0].0.keys().map(String::as_str).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[tokio::test]
async fn bad_request_on_an_email_lookup_means_no_results() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/emails/a@example.com"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "bad email"})))
        .expect(1)
        .mount(&server)
        .await;
    let records = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap();
    assert!(records.is_empty());
}

#[tokio::test]
async fn unauthorized_with_and_without_a_message() {
    let with = ResponseTemplate::new(401).set_body_json(json!({"message": "Invalid key"}));
    assert_eq!(
        breaches_answering(with, 1).await,
        SourceError::Unauthorized("Invalid key".into())
    );
    let without = ResponseTemplate::new(401).set_body_string("nope");
    assert_eq!(
        breaches_answering(without, 1).await,
        SourceError::Unauthorized("Unauthorized".into())
    );
}

#[tokio::test]
async fn forbidden_with_and_without_a_message() {
    let with = ResponseTemplate::new(403).set_body_json(json!({"message": "Not your plan"}));
    assert_eq!(
        breaches_answering(with, 1).await,
        SourceError::Forbidden("Not your plan".into())
    );
    let without = ResponseTemplate::new(403).set_body_json(json!({"message": 3}));
    assert_eq!(
        breaches_answering(without, 1).await,
        SourceError::Forbidden("Forbidden".into())
    );
}

#[tokio::test]
async fn not_found_and_internal_error() {
    assert_eq!(
        breaches_answering(ResponseTemplate::new(404), 1).await,
        SourceError::NotFound
    );
    assert_eq!(
        breaches_answering(ResponseTemplate::new(500).set_body_string("boom"), 1).await,
        SourceError::Internal
    );
}

// RULES R13
#[tokio::test]
async fn any_other_status_gives_the_body_as_text() {
    let teapot = ResponseTemplate::new(418).set_body_string("I'm a teapot");
    assert_eq!(
        breaches_answering(teapot, 1).await,
        SourceError::Unexpected("I'm a teapot".into())
    );
}

// RULES R18
#[tokio::test]
async fn too_many_requests_is_retried_then_rate_limited() {
    // Retry-After: 30 is capped to the policy's 50 ms, or this test would take a minute.
    let busy = ResponseTemplate::new(429).insert_header("Retry-After", "30");
    let error = tokio::time::timeout(Duration::from_secs(10), breaches_answering(busy, 3))
        .await
        .expect("Retry-After must be capped by max_retry_after");
    assert_eq!(error, SourceError::RateLimited);
}

// RULES R18
#[tokio::test]
async fn a_spent_quota_is_not_retried_and_says_so() {
    let spent = ResponseTemplate::new(429)
        .insert_header("x-amzn-ErrorType", "LimitExceededException:http://internal")
        .set_body_json(json!({"message": "Limit Exceeded"}));
    assert_eq!(breaches_answering(spent, 1).await, SourceError::QuotaUsedUp);
    // Throttling is retried as any 429.
    let throttled = ResponseTemplate::new(429)
        .insert_header("x-amzn-ErrorType", "TooManyRequestsException")
        .insert_header("Retry-After", "0");
    assert_eq!(
        breaches_answering(throttled, 3).await,
        SourceError::RateLimited
    );
}

#[tokio::test]
async fn a_403_names_spyclouds_reason_when_its_header_gives_one() {
    let refused = |reason: &str| {
        ResponseTemplate::new(403)
            .insert_header("SpyCloud-Error", reason)
            .set_body_json(json!({"message": "Forbidden"}))
    };
    assert_eq!(
        breaches_answering(refused("Invalid IP"), 1).await,
        SourceError::IpNotAllowed
    );
    assert_eq!(
        breaches_answering(refused("Invalid API key"), 1).await,
        SourceError::InvalidApiKey
    );
    assert_eq!(
        breaches_answering(refused("Something else"), 1).await,
        SourceError::Forbidden("Forbidden".into())
    );
}

#[tokio::test]
async fn unavailable_after_the_last_retry_is_unexpected() {
    let down = ResponseTemplate::new(503).set_body_string("down for maintenance");
    assert_eq!(
        breaches_answering(down, 3).await,
        SourceError::Unexpected("down for maintenance".into())
    );
}

#[tokio::test]
async fn unavailable_twice_then_ok_succeeds() {
    let server = failing_then_answering(vec![ResponseTemplate::new(503); 2]).await;
    let records = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    server.verify().await;
}

// RULES R18
#[tokio::test]
async fn bad_gateway_and_gateway_timeout_are_retried() {
    let server =
        failing_then_answering(vec![ResponseTemplate::new(502), ResponseTemplate::new(504)]).await;
    let records = client(&server)
        .all_records(&email("a@example.com"))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    server.verify().await;
}

// RULES R18
#[tokio::test]
async fn a_retry_after_below_the_cap_is_waited_for() {
    let busy = ResponseTemplate::new(429).insert_header("Retry-After", "1");
    let server = failing_then_answering(vec![busy]).await;
    let mut settings = settings(server.uri());
    settings.retry.max_retry_after = Duration::from_secs(5);
    let client = SpyCloudClient::new(settings).unwrap();
    let started = std::time::Instant::now();
    let records = client.all_records(&email("a@example.com")).await.unwrap();
    // Only a lower bound: the retry came no sooner than SpyCloud asked.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(records.len(), 1);
    server.verify().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    // A port nothing listens on yet; SpyCloud comes up there well before the first retry.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let server = MockServer::builder().listener(listener).start().await;
        Mock::given(method("GET"))
            .respond_with(page("", json!([{"n": 1}])))
            .mount(&server)
            .await;
        server
    });
    let mut settings = settings(format!("http://127.0.0.1:{port}"));
    settings.retry.base_backoff = Duration::from_millis(500);
    settings.retry.max_retry_after = Duration::from_secs(2);
    let records = SpyCloudClient::new(settings)
        .unwrap()
        .all_records(&email("a@example.com"))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let server = server.await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

// RULES R13
#[tokio::test]
async fn an_error_answer_of_any_size_keeps_the_error_of_its_status() {
    let huge = "x".repeat(20 * 1024 * 1024);
    let internal = ResponseTemplate::new(500).set_body_string(huge.clone());
    assert_eq!(breaches_answering(internal, 1).await, SourceError::Internal);
    let unauthorized = ResponseTemplate::new(401).set_body_string(huge.clone());
    assert_eq!(
        breaches_answering(unauthorized, 1).await,
        SourceError::Unauthorized("Unauthorized".into())
    );
    let teapot = ResponseTemplate::new(418).set_body_string(huge);
    assert_eq!(
        breaches_answering(teapot, 1).await,
        SourceError::Unexpected("x".repeat(1000))
    );
}

// RULES R12
#[tokio::test]
async fn a_success_that_is_not_the_documented_json_is_invalid() {
    let invalid = |message: &str| SourceError::InvalidResponse(message.to_owned());
    let malformed = ResponseTemplate::new(200).set_body_string("{not json");
    assert_eq!(
        breaches_answering(malformed, 1).await,
        invalid("SpyCloud answered with invalid JSON")
    );
    let not_utf8 = ResponseTemplate::new(200).set_body_raw(
        b"{\"cursor\": \"\", \"results\": [\"\xff\"]}".to_vec(),
        "application/json",
    );
    assert_eq!(
        breaches_answering(not_utf8, 1).await,
        invalid("SpyCloud answered with invalid JSON")
    );
    let no_results = ResponseTemplate::new(200).set_body_json(json!({"cursor": "", "hits": 0}));
    assert_eq!(
        breaches_answering(no_results, 1).await,
        invalid("SpyCloud's answer has no results array")
    );
    let results_not_an_array =
        ResponseTemplate::new(200).set_body_json(json!({"cursor": "", "results": "none"}));
    assert_eq!(
        breaches_answering(results_not_an_array, 1).await,
        invalid("SpyCloud's answer has no results array")
    );
    let not_an_object = ResponseTemplate::new(200).set_body_json(json!([{"n": 1}]));
    assert_eq!(
        breaches_answering(not_an_object, 1).await,
        invalid("SpyCloud's answer has no results array")
    );
    let not_objects = page("", json!([{"source_id": 1}, 2]));
    assert_eq!(
        breaches_answering(not_objects, 1).await,
        invalid("a breach record is not a JSON object")
    );
}

// RULES R18
#[tokio::test]
async fn no_answer_in_time_is_a_timeout_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(page("", json!([])).set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&server)
        .await;
    let client = SpyCloudClient::new(SpyCloudSettings {
        timeout: Duration::from_millis(300),
        ..settings(server.uri())
    })
    .unwrap();
    let error = client
        .all_records(&email("a@example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SourceError::Timeout("SpyCloud did not answer within 0.3 s".into())
    );
    server.verify().await;
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = SpyCloudClient::new(settings(format!("http://127.0.0.1:{port}"))).unwrap();
    let error = client
        .all_records(&email("a@example.com"))
        .await
        .unwrap_err();
    match &error {
        SourceError::Connection(message) => {
            assert!(
                message.starts_with("could not connect to SpyCloud: "),
                "{message}"
            );
            assert!(!message.contains(KEY));
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_to_a_plain_http_server_is_a_tls_error() {
    let server = MockServer::start().await;
    let https = server.uri().replace("http://", "https://");
    let client = SpyCloudClient::new(settings(https)).unwrap();
    let error = client.probe(&key()).await.unwrap_err();
    assert!(matches!(error, SourceError::Tls(_)), "{error:?}");
}

#[tokio::test]
async fn catalogs_are_deduplicated_and_fetched_ten_at_a_time() {
    let server = MockServer::start().await;
    for batch in [1..=10, 11..=20, 21..=25] {
        let found = batch.clone().filter(|id| id % 7 != 0);
        Mock::given(method("GET"))
            .and(path(format!("/breach/catalog/{}", id_list(batch))))
            .and(header("X-API-Key", KEY))
            .respond_with(page("", catalogs_json(found)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let mut wanted = ids(1..=25);
    wanted.extend(ids([3, 25, 1]));
    let mut found: Vec<u64> = client(&server)
        .catalogs(&key(), &wanted)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.0)
        .collect();
    found.sort_unstable();
    let expected: Vec<u64> = (1..=25).filter(|id| id % 7 != 0).collect();
    assert_eq!(found, expected);
    server.verify().await;
}

#[tokio::test]
async fn catalogs_skip_what_does_not_parse_and_follow_cursors() {
    let server = MockServer::start().await;
    let at = || path("/breach/catalog/1,2,3");
    Mock::given(method("GET"))
        .and(at())
        .and(query_param_is_missing("cursor"))
        .respond_with(page(
            "next",
            json!([{"id": 1, "title": "one"}, {"title": "no id"}, "not an object"]),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(at())
        .and(query_param("cursor", "next"))
        .respond_with(page("", json!([{"id": "2", "title": "two"}])))
        .expect(1)
        .mount(&server)
        .await;
    let catalogs = client(&server)
        .catalogs(&key(), &ids([1, 2, 3]))
        .await
        .unwrap();
    let found: Vec<_> = catalogs
        .iter()
        .map(|c| (c.id.0, c.title.as_deref()))
        .collect();
    assert_eq!(found, [(1, Some("one")), (2, Some("two"))]);
}

#[tokio::test]
async fn catalog_errors_stop_the_fetch() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/catalog/1"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server)
        .catalogs(&key(), &ids([1]))
        .await
        .unwrap_err();
    assert_eq!(error, SourceError::Forbidden("Forbidden".into()));
}

#[tokio::test]
async fn no_ids_no_request() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let catalogs = client(&server).catalogs(&key(), &[]).await.unwrap();
    assert!(catalogs.is_empty());
}

#[tokio::test]
async fn probe_asks_for_the_example_watchlist() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/watchlist/example.org"))
        .and(header("X-API-Key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .expect(1)
        .mount(&server)
        .await;
    client(&server).probe(&key()).await.unwrap();
}

#[tokio::test]
async fn probe_accepts_bad_request_and_maps_the_rest() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/watchlist/example.org"))
        .respond_with(ResponseTemplate::new(400))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/watchlist/example.org"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Bad key"})))
        .mount(&server)
        .await;
    let client = client(&server);
    client.probe(&key()).await.unwrap();
    assert_eq!(
        client.probe(&key()).await,
        Err(SourceError::Unauthorized("Bad key".into()))
    );
}

#[tokio::test]
async fn calls_above_the_rate_wait_instead_of_failing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/watchlist/example.org"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .expect(3)
        .mount(&server)
        .await;
    let client = Arc::new(
        SpyCloudClient::new(SpyCloudSettings {
            max_rps: NonZeroU32::new(2).unwrap(),
            ..settings(server.uri())
        })
        .unwrap(),
    );
    let calls = (0..3).map(|_| {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.probe(&key()).await })
    });
    for outcome in futures::future::join_all(calls).await {
        outcome.unwrap().unwrap();
    }
    server.verify().await;
}

#[tokio::test]
async fn the_rate_limit_holds_back_one_key_and_not_another() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/watchlist/example.org"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .mount(&server)
        .await;
    let client = Arc::new(
        SpyCloudClient::new(SpyCloudSettings {
            max_rps: NonZeroU32::new(1).unwrap(),
            ..settings(server.uri())
        })
        .unwrap(),
    );
    let call = |key: &'static str| {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.probe(&ApiKey::parse(key).unwrap()).await })
    };
    let calls = [call("key-a"), call("key-a"), call("key-b")];
    // One call a second per key, burst one: the second call of key-a is held back a second,
    // key-b's goes at once. Looked at well inside that second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keys_seen = |requests: Vec<wiremock::Request>| {
        let mut keys: Vec<String> = requests
            .iter()
            .map(|r| r.headers["x-api-key"].to_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys_seen(server.received_requests().await.unwrap()),
        ["key-a", "key-b"]
    );
    for outcome in futures::future::join_all(calls).await {
        outcome.unwrap().unwrap();
    }
    assert_eq!(
        keys_seen(server.received_requests().await.unwrap()),
        ["key-a", "key-a", "key-b"]
    );
}

/// What a watchlist scan fed: each page's hits and the records' numbers; it wants at most
/// `max` records.
struct Scanned {
    hits: Vec<u64>,
    numbers: Vec<Value>,
    max: usize,
}

impl RecordSink for Scanned {
    fn wants_more(&self) -> bool {
        self.numbers.len() < self.max
    }

    fn hits(&mut self, hits: u64) {
        self.hits.push(hits);
    }

    fn add(&mut self, record: RawRecord) {
        self.numbers
            .push(record.0.get("n").cloned().unwrap_or(Value::Null));
    }
}

fn collect(max: usize) -> Scanned {
    Scanned {
        hits: Vec::new(),
        numbers: Vec::new(),
        max,
    }
}

fn watchlist_query(since: &str, severity: Option<&str>) -> WatchlistQuery {
    WatchlistQuery {
        since: Timestamp::parse(&format!("{since}T00:00:00"))
            .unwrap()
            .day(),
        severity: severity.map(|codes| SeverityFilter::parse(codes).unwrap()),
    }
}

/// A watchlist page that says SpyCloud holds `hits` records in all.
fn watchlist_page(cursor: &str, hits: u64, results: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"cursor": cursor, "hits": hits, "results": results}))
}

#[tokio::test]
async fn the_watchlist_scan_asks_since_a_day_with_the_severity_and_hands_every_page_over() {
    let server = MockServer::start().await;
    let scan = || {
        Mock::given(method("GET"))
            .and(path("/breach/data/watchlist"))
            .and(header("X-API-Key", KEY))
            .and(query_param("since", "2026-03-03"))
            .and(query_param("severity", "20,25"))
    };
    scan()
        .and(query_param_is_missing("cursor"))
        .respond_with(watchlist_page("c 2", 5, json!([{"n": 1}, {"n": 2}])))
        .expect(1)
        .mount(&server)
        .await;
    scan()
        .and(query_param("cursor", "c 2"))
        .respond_with(watchlist_page("c3", 5, json!([{"n": 3}, {"n": 4}])))
        .expect(1)
        .mount(&server)
        .await;
    scan()
        .and(query_param("cursor", "c3"))
        .respond_with(watchlist_page("", 5, json!([{"n": 5}])))
        .expect(1)
        .mount(&server)
        .await;
    let mut pages = collect(usize::MAX);
    client(&server)
        .watchlist(
            &key(),
            &watchlist_query("2026-03-03", Some("20,25")),
            &mut pages,
        )
        .await
        .unwrap();
    assert_eq!(pages.hits, [5, 5, 5]);
    assert_eq!(pages.numbers, [1, 2, 3, 4, 5].map(|n| json!(n)));
    server.verify().await;
    // The severity is sent as on the lookups' calls; the cursor joins the query with `&`.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[0].url.query(),
        Some("since=2026-03-03&severity=20%2C25")
    );
    assert_eq!(
        requests[1].url.query(),
        Some("since=2026-03-03&severity=20%2C25&cursor=c%202")
    );
}

#[tokio::test]
async fn the_watchlist_scan_without_severity_sends_none_and_stops_when_told() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/watchlist"))
        .and(query_param("since", "2025-12-10"))
        .and(query_param_is_missing("severity"))
        .and(query_param_is_missing("cursor"))
        .respond_with(watchlist_page("more", 9, json!([{"n": 1}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/breach/data/watchlist"))
        .and(query_param("cursor", "more"))
        .respond_with(watchlist_page("", 9, json!([{"n": 2}])))
        .expect(0)
        .mount(&server)
        .await;
    let mut pages = collect(1);
    client(&server)
        .watchlist(&key(), &watchlist_query("2025-12-10", None), &mut pages)
        .await
        .unwrap();
    assert_eq!((pages.hits, pages.numbers), (vec![9], vec![json!(1)]));
    server.verify().await;
}

// RULES R29
#[tokio::test]
async fn watchlist_failures_are_the_status_tables_and_the_cursor_guards_hold() {
    for (status, expected) in [
        (401, SourceError::Unauthorized("Unauthorized".into())),
        (500, SourceError::Internal),
        // Unlike an email lookup, a refused scan is not "no results".
        (400, SourceError::Unexpected("bad since".into())),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/breach/data/watchlist"))
            .respond_with(ResponseTemplate::new(status).set_body_string("bad since"))
            .mount(&server)
            .await;
        let error = client(&server)
            .watchlist(
                &key(),
                &watchlist_query("2026-01-01", None),
                &mut collect(9),
            )
            .await
            .unwrap_err();
        assert_eq!(error, expected, "{status}");
    }

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/watchlist"))
        .respond_with(watchlist_page("again", 2, json!([{"n": 1}])))
        .expect(2)
        .mount(&server)
        .await;
    let mut pages = collect(usize::MAX);
    let error = client(&server)
        .watchlist(&key(), &watchlist_query("2026-01-01", None), &mut pages)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SourceError::InvalidResponse("SpyCloud repeated a page cursor".into())
    );
    // What came before the broken cursor was fed.
    assert_eq!(pages.numbers.len(), 2);
    server.verify().await;
}

fn lookup(kind: ObservableType, value: &str) -> Lookup {
    Lookup::parse(kind, value).unwrap()
}

#[tokio::test]
async fn each_type_asks_its_endpoint_with_the_value_encoded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(page("", json!([])))
        .mount(&server)
        .await;
    let cases = [
        (
            ObservableType::Email,
            "a+b@example.com",
            "/breach/data/emails/a%2Bb@example.com",
        ),
        (
            ObservableType::Domain,
            "Example.COM.",
            "/breach/data/domains/example.com",
        ),
        (
            ObservableType::Ip,
            "192.0.2.1",
            "/breach/data/ips/192.0.2.1",
        ),
        (
            ObservableType::Ipv6,
            "2001:DB8:0:0:0:0:0:1",
            "/breach/data/ips/2001%3Adb8%3A%3A1",
        ),
        (
            ObservableType::User,
            "jörg/admin ?#",
            "/breach/data/usernames/j%C3%B6rg%2Fadmin%20%3F%23",
        ),
    ];
    let client = client(&server);
    for (kind, value, _) in &cases {
        client.all_records(&lookup(*kind, value)).await.unwrap();
    }
    let requests = server.received_requests().await.unwrap();
    let paths: Vec<_> = requests.iter().map(|r| r.url.path().to_owned()).collect();
    let expected: Vec<_> = cases.iter().map(|(_, _, path)| path.to_owned()).collect();
    assert_eq!(paths, expected);
    assert!(requests.iter().all(|r| r.url.query().is_none()));
}

#[tokio::test]
async fn severity_and_since_are_sent_on_every_page() {
    let server = MockServer::start().await;
    let at = || path("/breach/data/domains/example.com");
    Mock::given(method("GET"))
        .and(at())
        .and(query_param_is_missing("cursor"))
        .respond_with(page("c2", json!([{"n": 1}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(at())
        .and(query_param("cursor", "c2"))
        .respond_with(page("", json!([{"n": 2}])))
        .expect(1)
        .mount(&server)
        .await;
    let query = BreachQuery {
        severity: SeverityFilter::parse("20, 25,30"),
        since: "2024-02-29".parse().ok(),
    };
    let mut records: Vec<RawRecord> = Vec::new();
    client(&server)
        .breaches(
            &key(),
            &lookup(ObservableType::Domain, "example.com"),
            &query,
            &mut records,
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    let queries: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.query().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        queries,
        [
            "severity=20%2C25%2C30&since=2024-02-29",
            "severity=20%2C25%2C30&since=2024-02-29&cursor=c2"
        ]
    );
    server.verify().await;

    let only_since = BreachQuery {
        severity: None,
        since: "2023-01-05".parse().ok(),
    };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/ips/192.0.2.1"))
        .and(query_param("since", "2023-01-05"))
        .and(query_param_is_missing("severity"))
        .respond_with(page("", json!([])))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .breaches(
            &key(),
            &lookup(ObservableType::Ip, "192.0.2.1"),
            &only_since,
            &mut Vec::new(),
        )
        .await
        .unwrap();
    server.verify().await;
}

#[tokio::test]
async fn bad_request_on_any_lookup_means_no_results() {
    for (kind, value) in [
        (ObservableType::Domain, "example.com"),
        (ObservableType::Ip, "192.0.2.1"),
        (ObservableType::Ipv6, "::1"),
        (ObservableType::User, "bob"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "bad"})))
            .expect(1)
            .mount(&server)
            .await;
        let records = client(&server).all_records(&lookup(kind, value)).await;
        assert_eq!(records, Ok(vec![]), "{kind}");
        server.verify().await;
    }
}

/// Pages of `per_page` dated records each, without end, `hits` saying 1 000 000; the newest
/// dates come last.
struct ManyPages {
    per_page: usize,
    served: AtomicUsize,
}

impl Respond for ManyPages {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let results: Vec<Value> = (0..self.per_page)
            .map(|i| {
                let day = n * self.per_page + i;
                json!({"document_id": day.to_string(), "spycloud_publish_date":
                    format!("{}-01-01T00:00:00Z", 2000 + day)})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(
            json!({"cursor": format!("page-{}", n + 1), "hits": 1_000_000, "results": results}),
        )
    }
}

#[tokio::test]
async fn a_full_sink_stops_the_paging_and_the_rest_of_a_page_is_not_read() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ManyPages {
            per_page: 4,
            served: AtomicUsize::new(0),
        })
        .expect(3)
        .mount(&server)
        .await;
    // 10 records: two whole pages and half of the third; the fourth is never asked for.
    let mut sink = collect(10);
    client(&server)
        .breaches(
            &key(),
            &lookup(ObservableType::Domain, "example.com"),
            &BreachQuery::default(),
            &mut sink,
        )
        .await
        .unwrap();
    server.verify().await;
    assert_eq!(sink.numbers.len(), 10);
    assert_eq!(sink.hits, [1_000_000; 3]);
}

// RULES R29
#[tokio::test]
async fn a_watchlist_scan_follows_more_pages_than_a_lookup_may() {
    let endless = || ManyPages {
        per_page: 1,
        served: AtomicUsize::new(0),
    };
    // A scan reads up to 100 x RELAY_MAX_RECORDS records: 150 pages are no broken upstream.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/breach/data/watchlist"))
        .respond_with(endless())
        .expect(150)
        .mount(&server)
        .await;
    let mut scanned = collect(150);
    client(&server)
        .watchlist(&key(), &watchlist_query("2026-01-01", None), &mut scanned)
        .await
        .unwrap();
    assert_eq!(scanned.numbers.len(), 150);
    server.verify().await;
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[149].url.query(),
        Some("since=2026-01-01&cursor=page-149")
    );

    // A lookup's chain still stops at 100 pages.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(endless())
        .expect(100)
        .mount(&server)
        .await;
    let error = client(&server)
        .breaches(
            &key(),
            &lookup(ObservableType::Domain, "example.com"),
            &BreachQuery::default(),
            &mut collect(150),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SourceError::InvalidResponse("SpyCloud kept paginating past 100 pages".into())
    );
}
