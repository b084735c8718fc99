//! The dashboard's routes served on loopback, over a watchlist in memory and a fixed clock: each
//! tile's whole answer is pinned as a snapshot in `snapshots/` (the contract's memory).

mod common;

use std::sync::Arc;

use serde_json::{Value, json};
use spycloud_relay::adapters::FixedCredentials;
use spycloud_relay::adapters::MemorySource;
use spycloud_relay::adapters::{HttpSettings, Server};
use spycloud_relay::domain::{ApiKey, Credentials, EntitiesLimit, ModuleSettings, Timestamp};
use spycloud_relay::{Relay, RelaySettings};

/// The dashboard's "now" in every scenario.
const NOW: &str = "2026-03-10T12:00:00Z";

fn record(date: &str, fields: Value) -> Value {
    let mut record = json!({"spycloud_publish_date": date});
    record
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    record
}

/// A small company's watchlist: every rule of the tiles shows in it.
fn watchlist() -> Vec<Value> {
    vec![
        // Alice: an infostealer infection (two records, one machine), plaintext passwords.
        record(
            "2026-03-10T08:00:00Z",
            json!({"email": "alice@example.com", "source_id": 2, "severity": 25,
                   "infected_machine_id": "m-alice", "password_plaintext": "Winter2026!"}),
        ),
        record(
            "2026-03-09T13:00:00Z",
            json!({"email": "Alice@Example.com", "source_id": 2, "severity": 30,
                   "infected_machine_id": "m-alice", "password": "hunter2", "password_type": "PlainText"}),
        ),
        // Bob: a hashed password and a combo list (its own severity counts here: 20 is high).
        record(
            "2026-03-08T00:00:00Z",
            json!({"email": "bob@example.com", "source_id": 1, "severity": 5,
                   "password": "5f4dcc3b", "password_type": "md5"}),
        ),
        record(
            "2026-03-05T23:59:59Z",
            json!({"email": "bob@example.com", "source_id": 3, "severity": 20,
                   "password": "letmein", "password_type": "plaintext"}),
        ),
        // Carol|Dave: a pipe in the address; a low and an unscored record.
        record(
            "2026-03-07T10:00:00Z",
            json!({"email": "carol|dave@example.com", "source_id": 1, "severity": 2}),
        ),
        record(
            "2026-03-04T10:00:00Z",
            json!({"email": "carol|dave@example.com", "source_id": 1}),
        ),
        // No email: a record, but no employee.
        record(
            "2026-03-06T00:00:00Z",
            json!({"source_id": 4, "severity": 1, "infected_machine_id": "m-kiosk"}),
        ),
        // Older than a week, within 30 days.
        record(
            "2026-02-20T00:00:00Z",
            json!({"email": "erin@example.com", "source_id": 1, "severity": 3}),
        ),
        record(
            "2026-02-15T00:00:00Z",
            json!({"email": "erin@example.com", "source_id": 4, "severity": 6}),
        ),
        // Just before the 7-day period starts (2026-03-03T12:00:00).
        record(
            "2026-03-03T11:59:59Z",
            json!({"email": "frank@example.com", "source_id": 2, "severity": 25}),
        ),
    ]
}

fn catalogs() -> Vec<Value> {
    vec![
        json!({"id": 1, "title": "Example Forum", "uuid": "11111111-1111-4111-8111-111111111111"}),
        json!({"id": 2, "title": "Stealer Logs", "uuid": "22222222-2222-4222-8222-222222222222"}),
        json!({"id": 4, "uuid": "44444444-4444-4444-8444-444444444444"}),
    ]
}

fn relay_over(watchlist: Vec<Value>, settings: RelaySettings) -> Arc<Relay> {
    relay_for(watchlist, settings, json!({}))
}

/// A relay whose every token carries `claims` (the module settings among them).
fn relay_for(watchlist: Vec<Value>, settings: RelaySettings, claims: Value) -> Arc<Relay> {
    let dataset = json!({"catalogs": catalogs(), "watchlist": watchlist});
    let source = MemorySource::from_json(&dataset.to_string()).expect("a valid dataset");
    let credentials = Credentials {
        api_key: ApiKey::parse("tiles-test-key").unwrap(),
        entities_limit: EntitiesLimit::DEFAULT,
        settings: ModuleSettings::from_claims(claims.as_object().unwrap()),
    };
    let now = Timestamp::parse(NOW).unwrap();
    let relay = Relay::new(
        Arc::new(source),
        Arc::new(FixedCredentials(credentials)),
        settings,
    )
    .with_clock(move || now);
    Arc::new(relay)
}

/// `body` posted to `path` of a server of `relay` on a loopback port of its own.
async fn post(relay: &Arc<Relay>, path: &str, body: Value) -> Value {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = Server::new(Relay::clone(relay), HttpSettings::default());
    tokio::spawn(server.serve_until(listener, std::future::pending()));
    let response = reqwest::Client::new()
        .post(format!("http://{address}{path}"))
        .header("authorization", "Bearer any")
        .body(body.to_string())
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a JSON answer")
}

async fn tile_data(relay: &Arc<Relay>, tile: &str, period: &str) -> Value {
    post(
        relay,
        "/tiles/tile-data",
        json!({"tile_id": tile, "period": period}),
    )
    .await
}

#[tokio::test]
async fn the_tile_definitions() {
    let relay = relay_over(watchlist(), RelaySettings::default());
    let all = post(&relay, "/tiles", json!(null)).await;
    let one = post(
        &relay,
        "/tiles/tile",
        json!({"tile_id": "spycloud_exposures_by_day"}),
    )
    .await;
    assert_eq!(one["data"], all["data"][1]);
    contract_snapshot!("tiles_definitions", all);
}

// RULES R34
#[tokio::test]
async fn the_exposure_summary_of_the_last_7_days() {
    let relay = relay_over(watchlist(), RelaySettings::default());
    let answer = tile_data(&relay, "spycloud_exposure_summary", "last_7_days").await;
    // Alice (twice, in two cases), Bob, Carol|Dave; 7 records; 3 plaintext; 2 machines.
    let values: Vec<_> = answer["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].clone())
        .collect();
    assert_eq!(values, [json!(3), json!(7), json!(3), json!(2)]);
    contract_snapshot!("tile_exposure_summary_last_7_days", answer);
}

#[tokio::test]
async fn the_exposures_by_day_of_the_last_7_days() {
    let relay = relay_over(watchlist(), RelaySettings::default());
    let answer = tile_data(&relay, "spycloud_exposures_by_day", "last_7_days").await;
    assert_eq!(answer["data"]["data"].as_array().unwrap().len(), 8);
    contract_snapshot!("tile_exposures_by_day_last_7_days", answer);
}

#[tokio::test]
async fn the_top_breaches_of_the_last_30_days() {
    let relay = relay_over(watchlist(), RelaySettings::default());
    let answer = tile_data(&relay, "spycloud_top_breaches", "last_30_days").await;
    let labels: Vec<_> = answer["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bar| bar["label"].as_str().unwrap().to_owned())
        .collect();
    // 1 has 4 records, 2 has 3, 4 has 2 (its catalog has no title), 3 has 1 (no catalog).
    assert_eq!(
        labels,
        ["Example Forum", "Stealer Logs", "Breach 4", "Breach 3"]
    );
    contract_snapshot!("tile_top_breaches_last_30_days", answer);
}

#[tokio::test]
async fn the_most_exposed_employees_of_the_last_30_days() {
    let relay = relay_over(watchlist(), RelaySettings::default());
    let answer = tile_data(&relay, "spycloud_most_exposed_employees", "last_30_days").await;
    contract_snapshot!("tile_most_exposed_employees_last_30_days", answer);
}

#[tokio::test]
async fn a_scan_cut_short_and_an_empty_period() {
    let many: Vec<Value> = (0..150)
        .map(|n| {
            record(
                "2026-03-10T11:00:00Z",
                json!({"email": format!("e{n}@example.com"), "source_id": 1}),
            )
        })
        .collect();
    let settings = RelaySettings {
        max_records: 1,
        ..RelaySettings::default()
    };
    let cut = tile_data(
        &relay_over(many, settings),
        "spycloud_exposure_summary",
        "last_24_hours",
    )
    .await;
    assert_eq!(cut["data"]["data"][4]["value"], 50);

    let quiet = relay_over(
        vec![record(
            "2025-01-01T00:00:00Z",
            json!({"email": "old@example.com"}),
        )],
        RelaySettings::default(),
    );
    let mut answers = serde_json::Map::new();
    answers.insert("summary cut short at 100 records".into(), cut);
    for tile in [
        "spycloud_exposure_summary",
        "spycloud_exposures_by_day",
        "spycloud_top_breaches",
        "spycloud_most_exposed_employees",
    ] {
        let answer = tile_data(&quiet, tile, "last_24_hours").await;
        answers.insert(format!("{tile} of an empty period"), answer);
    }
    contract_snapshot!("tiles_cut_short_and_empty", Value::Object(answers));
}

#[tokio::test]
async fn tile_errors() {
    let relay = relay_over(watchlist(), RelaySettings::default());
    let mut answers = serde_json::Map::new();
    for (name, path, body) in [
        ("tile: not an object", "/tiles/tile", json!(["x"])),
        ("tile: no tile_id", "/tiles/tile", json!({"id": "x"})),
        (
            "tile: unknown tile",
            "/tiles/tile",
            json!({"tile_id": "x".repeat(120)}),
        ),
        (
            "tile-data: tile_id not a string",
            "/tiles/tile-data",
            json!({"tile_id": 1, "period": "last_7_days"}),
        ),
        (
            "tile-data: no period",
            "/tiles/tile-data",
            json!({"tile_id": "spycloud_top_breaches"}),
        ),
        (
            "tile-data: unknown period",
            "/tiles/tile-data",
            json!({"tile_id": "spycloud_top_breaches", "period": "last_year"}),
        ),
    ] {
        answers.insert(name.into(), post(&relay, path, body).await);
    }
    contract_snapshot!("tile_errors", Value::Object(answers));
}

// RULES R25
#[tokio::test]
async fn a_tile_with_invalid_module_settings_warns_of_each() {
    // SEVERITY not a list of codes, PASSWORDS not a policy: both ignored, one warning each,
    // beside the figures of every severity (as without the setting).
    let claims = json!({"SEVERITY": "high,25", "SINCE_DAYS": 7, "PASSWORDS": "hidden"});
    let relay = relay_for(watchlist(), RelaySettings::default(), claims);
    let answer = tile_data(&relay, "spycloud_exposure_summary", "last_7_days").await;
    let plain = tile_data(
        &relay_over(watchlist(), RelaySettings::default()),
        "spycloud_exposure_summary",
        "last_7_days",
    )
    .await;
    assert_eq!(answer["data"], plain["data"]);
    contract_snapshot!("tile_data_invalid_module_settings", answer);
}

#[tokio::test]
async fn a_tile_counts_only_the_severities_the_instance_asks_for() {
    // SEVERITY 25,30: Alice's two infostealer records and Frank's (outside the week) only.
    let claims = json!({"SEVERITY": "25,30"});
    let relay = relay_for(watchlist(), RelaySettings::default(), claims);
    let answer = tile_data(&relay, "spycloud_exposure_summary", "last_7_days").await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    let values: Vec<&Value> = answer["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|metric| &metric["value"])
        .collect();
    assert_eq!(values, [&json!(1), &json!(2), &json!(2), &json!(1)]);
}

/// End to end: the real binary against wiremock SpyCloud.
mod binary {
    use chrono::{Duration, SecondsFormat, Utc};
    use serde_json::{Value, json};
    use wiremock::matchers::{method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, ResponseTemplate};

    use crate::common::app::{TestApp, sample, spawn_app_with};
    use crate::common::jwt::{API_KEY, JWKS_PATH, jwks};

    /// SpyCloud's time text for `hours` ago.
    fn hours_ago(hours: i64) -> String {
        (Utc::now() - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The date of the 7-day period's start, as `since=` names it.
    fn week_start() -> String {
        (Utc::now() - Duration::days(7))
            .format("%Y-%m-%d")
            .to_string()
    }

    /// The watchlist of the last 7 days in two pages; the newest record's time.
    async fn mount_week(app: &TestApp) -> String {
        let newest = hours_ago(1);
        let mut first = sample::infostealer("alice@example.com");
        first["spycloud_publish_date"] = json!(newest);
        let mut second = sample::breach("Alice@Example.com");
        second["spycloud_publish_date"] = json!(hours_ago(30));
        let mut third = sample::breach("bob@example.com");
        third["spycloud_publish_date"] = json!(hours_ago(50));
        let page = |cursor: &str, results: Value| {
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": cursor, "hits": 3, "results": results}))
        };
        Mock::given(method("GET"))
            .and(path("/breach/data/watchlist"))
            .and(query_param_is_missing("cursor"))
            .respond_with(page("page-2", json!([first, second])))
            .mount(&app.upstream)
            .await;
        Mock::given(method("GET"))
            .and(path("/breach/data/watchlist"))
            .and(query_param("cursor", "page-2"))
            .respond_with(page("", json!([third])))
            .mount(&app.upstream)
            .await;
        newest
    }

    async fn calls(app: &TestApp, prefix: &str) -> usize {
        let requests = app.upstream.received_requests().await.unwrap();
        requests
            .iter()
            .filter(|r| r.url.path().starts_with(prefix))
            .count()
    }

    #[tokio::test]
    async fn four_tiles_at_once_cost_one_scan_and_one_catalog_call() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let metrics_address = format!("127.0.0.1:{port}");
        let mut app = spawn_app_with(&[
            ("RELAY_METRICS_LISTEN", &metrics_address),
            ("RELAY_LOG", "info"),
        ])
        .await;
        let week_at_mount = week_start();
        let newest = mount_week(&app).await;
        app.mount_catalogs(sample::catalogs()).await;
        let token = app.token();

        let (status, tiles) = app.post("/tiles", Some(&token), "").await;
        assert_eq!(status, 200);
        assert_eq!(tiles["data"].as_array().unwrap().len(), 4);
        let (_, tile) = app
            .post(
                "/tiles/tile",
                Some(&token),
                r#"{"tile_id":"spycloud_most_exposed_employees"}"#,
            )
            .await;
        assert_eq!(tile["data"], tiles["data"][3]);

        let ids = [
            "spycloud_exposure_summary",
            "spycloud_exposures_by_day",
            "spycloud_top_breaches",
            "spycloud_most_exposed_employees",
        ];
        let asked = ids.map(|id| {
            let body = json!({"tile_id": id, "period": "last_7_days"}).to_string();
            let (app, token) = (&app, &token);
            async move { app.post("/tiles/tile-data", Some(token), &body).await }
        });
        let answers = futures::future::join_all(asked).await;
        for (status, answer) in &answers {
            assert_eq!(*status, 200);
            assert!(answer.get("errors").is_none(), "{answer}");
        }
        assert_eq!(calls(&app, "/breach/data/watchlist").await, 2);
        assert_eq!(calls(&app, "/breach/catalog/").await, 1);
        // Both pages ask since the period start's date (the test's clock may have passed a
        // midnight in between: either date of the two is the relay's).
        let requests = app.upstream.received_requests().await.unwrap();
        for request in requests
            .iter()
            .filter(|r| r.url.path() == "/breach/data/watchlist")
        {
            let since: Vec<_> = request
                .url
                .query_pairs()
                .filter(|(name, _)| name == "since")
                .map(|(_, value)| value.into_owned())
                .collect();
            assert!(
                since == [week_at_mount.clone()] || since == [week_start()],
                "{since:?}"
            );
        }

        let summary = &answers[0].1["data"]["data"];
        let values: Vec<_> = summary
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_u64().unwrap())
            .collect();
        assert_eq!(values, [2, 3, 1, 1]);
        let breaches = &answers[2].1["data"]["data"];
        assert_eq!(breaches[0]["label"], "Cracking Forum");
        assert_eq!(breaches[0]["value"], 2);
        let rows = &answers[3].1["data"]["data"];
        assert_eq!(
            rows[2],
            "| alice@example.com | 2 | 1 | 1 | ".to_owned() + &newest[..10] + " |"
        );
        // valid_time ends when the scan expires: RELAY_TILES_CACHE_SECS (600) after it began.
        let valid = &answers[1].1["data"]["valid_time"];
        let start =
            chrono::DateTime::parse_from_rfc3339(valid["start_time"].as_str().unwrap()).unwrap();
        let end =
            chrono::DateTime::parse_from_rfc3339(valid["end_time"].as_str().unwrap()).unwrap();
        assert_eq!((end - start).num_seconds(), 600);

        // Later: the kept scan answers.
        let body = json!({"tile_id": ids[0], "period": "last_7_days"}).to_string();
        let (_, again) = app.post("/tiles/tile-data", Some(&token), &body).await;
        assert_eq!(again["data"]["data"], *summary);
        assert_eq!(calls(&app, "/breach/data/watchlist").await, 2);

        let metrics = reqwest::get(format!("http://{metrics_address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for expected in [
            r#"relay_requests_total{route="/tiles",outcome="ok"} 1"#,
            r#"relay_requests_total{route="/tiles/tile",outcome="ok"} 1"#,
            r#"relay_requests_total{route="/tiles/tile-data",outcome="ok"} 5"#,
            r#"relay_upstream_calls_total{endpoint="watchlist",status="200"} 2"#,
            r#"relay_tile_scans_total{period="last_7_days",outcome="ok"} 1"#,
        ] {
            assert!(
                metrics.contains(expected),
                "missing {expected} in:\n{metrics}"
            );
        }

        app.terminate();
        let logs = app.log_text();
        let lines: Vec<_> = logs
            .lines()
            .filter(|l| l.contains("route=\"/tiles/tile-data\""))
            .collect();
        assert_eq!(lines.len(), 5, "one line per request:\n{logs}");
        let upstream: u32 = lines
            .iter()
            .map(|line| {
                let (_, rest) = line.split_once("upstream_calls=").expect("a count");
                rest.split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
            })
            .sum();
        assert_eq!(upstream, 3, "two pages and one catalog call:\n{logs}");
        for secret in [API_KEY, "alice@example.com", "Sup3rSecret!"] {
            assert!(!logs.contains(secret), "{secret} logged");
        }
    }

    #[tokio::test]
    async fn a_failing_scan_and_a_missing_token_are_fatal_errors() {
        let app = spawn_app_with(&[]).await;
        app.mount_status("/breach/data/watchlist", 500, json!({}))
            .await;
        let body = r#"{"tile_id":"spycloud_exposure_summary","period":"last_90_days"}"#;
        let (status, answer) = app.post("/tiles/tile-data", Some(&app.token()), body).await;
        assert_eq!(
            (status, answer),
            (
                200,
                json!({"errors": [{"type": "fatal", "code": "internal error", "message": "The Spycloud internal error."}]})
            )
        );
        let (_, answer) = app.post("/tiles", None, "").await;
        assert_eq!(
            answer["errors"][0]["message"],
            "Authorization failed: Authorization header is missing"
        );
        let wrong = app
            .client
            .get(format!("{}/tiles/tile-data", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 405);
    }

    #[tokio::test]
    async fn the_instances_severity_reaches_the_scan_and_keys_it_and_a_bad_one_is_warned() {
        let app = spawn_app_with(&[]).await;
        let page = |severity: u64| {
            let mut record = sample::infostealer("alice@example.com");
            record["spycloud_publish_date"] = json!(hours_ago(2));
            record["severity"] = json!(severity);
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "hits": 1, "results": [record]}))
        };
        Mock::given(method("GET"))
            .and(path("/breach/data/watchlist"))
            .and(query_param("severity", "20,25"))
            .respond_with(page(25))
            .mount(&app.upstream)
            .await;
        Mock::given(method("GET"))
            .and(path("/breach/data/watchlist"))
            .and(query_param_is_missing("severity"))
            .respond_with(page(2))
            .mount(&app.upstream)
            .await;
        app.mount_catalogs(sample::catalogs()).await;
        let ask = |token: String, tile: &'static str| {
            let body = json!({"tile_id": tile, "period": "last_7_days"}).to_string();
            let app = &app;
            async move { app.post("/tiles/tile-data", Some(&token), &body).await.1 }
        };
        let watchlist_queries = || async {
            let requests = app.upstream.received_requests().await.unwrap();
            requests
                .iter()
                .filter(|r| r.url.path() == "/breach/data/watchlist")
                .map(|r| r.url.query().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };

        // SEVERITY is sent; SINCE_DAYS is not (the period decides how far back).
        let severe = app.token_with(json!({"SEVERITY": "20,25", "SINCE_DAYS": 3}));
        let answer = ask(severe.clone(), "spycloud_exposures_by_day").await;
        assert_eq!(answer.get("errors"), None, "{answer}");
        let today = answer["data"]["data"].as_array().unwrap().last().unwrap();
        assert_eq!(today["values"][0], json!({"key": "high", "value": 1}));
        assert_eq!(
            watchlist_queries().await,
            [format!("since={}&severity=20%2C25", week_start())]
        );
        // The scan is kept for that severity: another tile of the token scans nothing ...
        ask(severe, "spycloud_exposure_summary").await;
        assert_eq!(watchlist_queries().await.len(), 1);
        // ... and a token without it (here: an invalid one, ignored) has a scan of its own,
        // with a warning beside its figures.
        let answer = ask(
            app.token_with(json!({"SEVERITY": "critical"})),
            "spycloud_exposures_by_day",
        )
        .await;
        assert_eq!(
            answer["errors"],
            json!([{"type": "warning", "code": "invalid argument", "message": "The module setting SEVERITY is not valid and was ignored: critical"}])
        );
        let today = answer["data"]["data"].as_array().unwrap().last().unwrap();
        assert_eq!(today["values"][2], json!({"key": "low", "value": 1}));
        assert_eq!(
            watchlist_queries().await[1],
            format!("since={}", week_start())
        );
    }

    // RULES R26
    #[tokio::test]
    async fn the_tile_data_deadline_counts_from_the_request_not_from_the_token_check() {
        let app = spawn_app_with(&[
            ("RELAY_REQUEST_TIMEOUT_SECS", "2"),
            ("SPYCLOUD_TIMEOUT_SECS", "5"),
        ])
        .await;
        Mock::given(method("GET"))
            .and(path(JWKS_PATH))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(jwks())
                    .set_delay(std::time::Duration::from_millis(1500)),
            )
            .with_priority(1)
            .mount(&app.upstream)
            .await;
        Mock::given(method("GET"))
            .and(path("/breach/data/watchlist"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"cursor": "", "results": []}))
                    .set_delay(std::time::Duration::from_millis(1500)),
            )
            .mount(&app.upstream)
            .await;
        let started = std::time::Instant::now();
        let body = r#"{"tile_id":"spycloud_exposure_summary","period":"last_7_days"}"#;
        let (_, answer) = app.post("/tiles/tile-data", Some(&app.token()), body).await;
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_millis(2700),
            "answered after {took:?}"
        );
        assert_eq!(
            answer,
            json!({"errors": [{"type": "fatal", "code": "unknown", "message": "SpyCloud did not answer everything within the relay's 2 s deadline."}]})
        );
    }
}
