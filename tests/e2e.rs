//! End to end: the real binary on a loopback port against wiremock SpyCloud and JWKS. Each
//! scenario pins a whole response as a snapshot in `snapshots/` (random ids redacted) and
//! asserts the rules a snapshot cannot show (ids that link, calls made).

mod common;

use common::app::{app_with_alice, sample, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

fn email(value: &str) -> Value {
    json!({"type": "email", "value": value})
}

// RULES R1
#[tokio::test]
async fn observe_maps_every_kind_of_record() {
    let app = app_with_alice().await;
    let body = app
        .observe(json!([email("alice@example.com"), {"type": "sha256", "value": "e3b0c442"}]))
        .await;

    // Newest first across all three pages; the orphan's catalog is missing: one warning.
    let sightings = body["data"]["sightings"]["docs"].as_array().unwrap();
    let ids: Vec<_> = sightings
        .iter()
        .map(|s| s["external_ids"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "doc-infostealer-1",
            "doc-orphan-1",
            "doc-combo-1",
            "doc-breach-1"
        ]
    );
    let relationships = body["data"]["relationships"]["docs"].as_array().unwrap();
    assert_eq!(relationships.len(), 3);
    for relationship in relationships {
        let sighting = sightings
            .iter()
            .find(|s| s["id"] == relationship["source_ref"])
            .expect("links a sighting");
        assert_ne!(sighting["external_ids"][0], "doc-orphan-1");
    }
    contract_snapshot!("observe_every_kind_of_record", body);
}

#[tokio::test]
async fn observe_keeps_input_order_and_warns_about_invalid_emails() {
    let app = app_with_alice().await;
    let bob = "bob@example.com";
    app.mount_email(bob, vec![json!([sample::breach(bob)])])
        .await;
    let body = app
        .observe(json!([email(bob), email("not-an-email"), {"type": "EMAIL", "value": "alice@example.com"}, email(bob)]))
        .await;
    let owners: Vec<_> = body["data"]["sightings"]["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["observables"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        owners,
        [
            bob,
            "alice@example.com",
            "alice@example.com",
            "alice@example.com",
            "alice@example.com"
        ]
    );
    contract_snapshot!("observe_order_and_invalid_email", body);
}

#[tokio::test]
async fn the_entities_limit_of_the_token_applies_per_email() {
    let app = app_with_alice().await;
    let token = app.token_with(json!({"CTR_ENTITIES_LIMIT": "2"}));
    let (_, body) = app
        .post(
            "/observe/observables",
            Some(&token),
            &json!([email("alice@example.com")]).to_string(),
        )
        .await;
    assert_eq!(body["data"]["sightings"]["count"], 2);
    contract_snapshot!("observe_entities_limit_2", body);
}

#[tokio::test]
async fn a_fatal_upstream_error_keeps_the_emails_before_it() {
    let app = app_with_alice().await;
    Mock::given(method("GET"))
        .and(path_regex("^/breach/data/emails/broken@example.com$"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.upstream)
        .await;
    let body = app
        .observe(json!([
            email("alice@example.com"),
            email("broken@example.com"),
            email("later@example.com")
        ]))
        .await;
    assert_eq!(
        body["errors"].as_array().unwrap().last().unwrap()["type"],
        "fatal"
    );
    contract_snapshot!("observe_partial_data_on_fatal_error", body);
}

#[tokio::test]
async fn an_infostealer_record_names_the_infected_device_as_a_second_target() {
    let app = spawn_app().await;
    let mut record = sample::infostealer("alice@example.com");
    record["ip_addresses"] = json!(["198.51.100.7", "198.51.100.300", "2001:DB8::7"]);
    record["mac_address"] = json!("00:1A:2B:3C:4D:5E");
    record["infected_time"] = json!("2021-05-30 22:10:05");
    let plain = sample::breach("alice@example.com");
    app.mount_email("alice@example.com", vec![json!([record, plain])])
        .await;
    app.mount_catalogs(sample::catalogs()).await;
    let body = app.observe(json!([email("alice@example.com")])).await;
    let sightings = body["data"]["sightings"]["docs"].as_array().unwrap();
    let device = &sightings[0]["targets"][1];
    assert_eq!(
        device["observables"],
        json!([
            {"type": "hostname", "value": "ALICE-PC"},
            {"type": "ip", "value": "198.51.100.7"},
            {"type": "ipv6", "value": "2001:db8::7"},
            {"type": "mac_address", "value": "00:1A:2B:3C:4D:5E"}
        ])
    );
    assert_eq!(
        device["observed_time"]["start_time"],
        "2021-05-30T22:10:05.000000Z"
    );
    // A record without device fields has the email target alone.
    assert_eq!(sightings[1]["targets"].as_array().unwrap().len(), 1);
    contract_snapshot!("observe_infected_device", body);
}

#[tokio::test]
async fn upstream_statuses_become_securex_errors() {
    for (status, upstream_body, name) in [
        (
            401,
            json!({"message": "Invalid API key"}),
            "observe_upstream_401",
        ),
        (403, json!({}), "observe_upstream_403"),
        (404, json!({}), "observe_upstream_404"),
        (429, json!({}), "observe_upstream_429"),
        (418, json!({"teapot": true}), "observe_upstream_418"),
    ] {
        let app = spawn_app_with(&[]).await;
        app.mount_status("/breach/", status, upstream_body).await;
        let body = app.observe(json!([email("alice@example.com")])).await;
        contract_snapshot!(name, body);
    }
}

#[tokio::test]
async fn spyclouds_error_signals_give_their_own_messages_on_observe_and_health() {
    let quota = "The SpyCloud API key's monthly quota is used up. Please, contact SpyCloud.";
    let ip = "Authorization failed: SpyCloud does not accept calls from this relay's IP address for this API key. Ask SpyCloud to allow it.";
    let key = "Authorization failed: The SpyCloud API key is not valid.";
    for (status, header, value, code, message) in [
        (
            429,
            "x-amzn-ErrorType",
            "LimitExceededException",
            "too many requests",
            quota,
        ),
        (
            403,
            "SpyCloud-Error",
            "Invalid IP",
            "authorization error",
            ip,
        ),
        (
            403,
            "SpyCloud-Error",
            "Invalid API key",
            "authorization error",
            key,
        ),
    ] {
        let app = spawn_app_with(&[]).await;
        Mock::given(method("GET"))
            .and(path_regex("^/(breach|watchlist)/"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header(header, value)
                    .set_body_json(json!({"message": "Forbidden"})),
            )
            .mount(&app.upstream)
            .await;
        let fatal = json!({"errors": [{"type": "fatal", "code": code, "message": message}]});
        let body = app.observe(json!([email("alice@example.com")])).await;
        assert_eq!(body, fatal, "observe, {value}");
        let (_, body) = app.post("/health", Some(&app.token()), "").await;
        assert_eq!(body, fatal, "/health, {value}");
        // The quota is not retried: one call for observe, one for /health.
        let requests = app.upstream.received_requests().await.unwrap();
        let calls = requests
            .iter()
            .filter(|r| !r.url.path().starts_with("/.well-known"))
            .count();
        assert_eq!(calls, 2, "{value}");
    }
}

/// The CTIM checks every answer of the suite goes through catch each rule broken.
#[test]
fn the_ctim_checks_catch_every_broken_rule() {
    let valid = || {
        json!({"data": {
            "sightings": {"count": 1, "docs": [{
                "id": "s1", "confidence": "High", "severity": "Medium",
                "source_uri": "https://portal.test/breach/catalog/u",
                "observables": [{"type": "email", "value": "a@example.com"}],
                "targets": [{"type": "email", "observables": [{"type": "email", "value": "a@example.com"}]}],
                "relations": [],
                "description": "Present in X",
                "data": {"columns": [{"name": "salt", "type": "string", "required": false},
                                     {"name": "password", "type": "string"}],
                         "rows": [[null, "p"]]}
            }]},
            "indicators": {"count": 1, "docs": [{
                "id": "i1", "confidence": "Low", "title": "X",
                "external_references": [{"description": "d", "url": "https://example.com"}]
            }]},
            "relationships": {"count": 1, "docs": [{"id": "r1", "source_ref": "s1", "target_ref": "i1"}]}
        }})
    };
    assert_eq!(common::ctim::problems(&valid()), Vec::<String>::new());
    type Breaks = fn(&mut Value);
    let broken: [(&str, Breaks); 10] = [
        ("twice", |v| {
            v["data"]["relationships"]["docs"][0]["id"] = json!("i1")
        }),
        ("count 2", |v| v["data"]["indicators"]["count"] = json!(2)),
        ("target_ref", |v| {
            v["data"]["relationships"]["docs"][0]["target_ref"] = json!("i2")
        }),
        ("required column", |v| {
            v["data"]["sightings"]["docs"][0]["data"]["rows"][0][1] = Value::Null
        }),
        ("title of 1025", |v| {
            v["data"]["indicators"]["docs"][0]["title"] = json!("😀".repeat(512) + "x")
        }),
        ("description of 5001", |v| {
            v["data"]["indicators"]["docs"][0]["external_references"][0]["description"] =
                json!("d".repeat(5001))
        }),
        ("not an absolute http(s) URI", |v| {
            v["data"]["indicators"]["docs"][0]["external_references"][0]["url"] =
                json!("https://exa mple.test")
        }),
        ("source_uri", |v| {
            v["data"]["sightings"]["docs"][0]["source_uri"] = json!("ftp://portal.test")
        }),
        ("observable type", |v| {
            v["data"]["sightings"]["docs"][0]["observables"][0]["type"] = json!("e-mail")
        }),
        ("severity", |v| {
            v["data"]["sightings"]["docs"][0]["severity"] = json!("Severe")
        }),
    ];
    for (problem, break_it) in broken {
        let mut answer = valid();
        break_it(&mut answer);
        // Nested inside a snapshot of several answers too.
        let problems = common::ctim::problems(&json!({"answers": [answer]}));
        assert!(
            problems.iter().any(|p| p.contains(problem)),
            "{problem}: {problems:?}"
        );
    }
}

#[tokio::test]
async fn no_supported_observable_needs_no_token() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/observe/observables",
            None,
            &json!([{"type": "sha256", "value": "e3b0c442"}, {"type": "url", "value": "https://x"}]).to_string(),
        )
        .await;
    assert_eq!((status, body), (200, json!({"data": {}})));
}

// RULES R3
#[tokio::test]
async fn an_invalid_body_is_an_invalid_argument() {
    let app = spawn_app().await;
    let token = app.token();
    let (status, body) = app
        .post(
            "/observe/observables",
            Some(&token),
            r#"[{"type": "email"}]"#,
        )
        .await;
    assert_eq!(status, 200);
    contract_snapshot!("observe_invalid_payload", body);
}

#[tokio::test]
async fn authorization_failures_in_the_envelope() {
    let app = spawn_app().await;
    let body = json!([email("alice@example.com")]).to_string();
    let mut answers = serde_json::Map::new();
    let no_header = app.post("/observe/observables", None, &body).await;
    answers.insert("no header".into(), no_header.1);
    let wrong_audience = app.token_with(json!({"aud": "http://elsewhere"}));
    answers.insert(
        "wrong audience".into(),
        app.post("/observe/observables", Some(&wrong_audience), &body)
            .await
            .1,
    );
    let expired = app.token_with(json!({"exp": 1_000_000_000}));
    answers.insert(
        "expired".into(),
        app.post("/health", Some(&expired), "").await.1,
    );
    let garbage = app.post("/health", Some("not.a.jwt"), "").await;
    answers.insert("garbage".into(), garbage.1);
    let response = app
        .client
        .post(format!("{}/health", app.address))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    answers.insert("basic".into(), response.json().await.unwrap());
    contract_snapshot!("authorization_failures", Value::Object(answers));
}

#[tokio::test]
async fn health_asks_spycloud_with_the_token_key() {
    let app = spawn_app().await;
    Mock::given(method("GET"))
        .and(path_regex("^/watchlist/example.org$"))
        .and(wiremock::matchers::header(
            "x-api-key",
            common::jwt::API_KEY,
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .expect(1)
        .mount(&app.upstream)
        .await;
    let token = app.token();
    assert_eq!(
        app.post("/health", Some(&token), "").await,
        (200, json!({"data": {"status": "ok"}}))
    );
}

#[tokio::test]
async fn health_reports_an_upstream_refusal() {
    let app = spawn_app().await;
    app.mount_status("/watchlist/", 403, json!({"message": "Key disabled"}))
        .await;
    let token = app.token();
    let (status, body) = app.post("/health", Some(&token), "").await;
    assert_eq!(status, 200);
    contract_snapshot!("health_upstream_403", body);
}

#[tokio::test]
async fn version_watchdog_and_unknown_routes() {
    let app = spawn_app().await;
    let mut answers = serde_json::Map::new();
    let (status, version) = app.post("/version", None, "").await;
    assert_eq!(
        (status, &version),
        (200, &json!({"version": env!("CARGO_PKG_VERSION")}))
    );
    let watchdog = |header: Option<&str>| {
        let mut request = app.client.get(format!("{}/watchdog", app.address));
        if let Some(value) = header {
            request = request.header("Health-Check", value);
        }
        request.send()
    };
    answers.insert(
        "watchdog".into(),
        watchdog(Some("ping")).await.unwrap().json().await.unwrap(),
    );
    answers.insert(
        "watchdog without header".into(),
        watchdog(None).await.unwrap().json().await.unwrap(),
    );
    let not_found = app
        .client
        .get(format!("{}/nowhere", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status().as_u16(), 404);
    answers.insert("unknown path".into(), not_found.json().await.unwrap());
    let wrong_method = app
        .client
        .get(format!("{}/observe/observables", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    answers.insert("wrong method".into(), wrong_method.json().await.unwrap());
    contract_snapshot!("routes", Value::Object(answers));
}

// RULES R15
#[tokio::test]
async fn five_emails_sharing_catalogs_cost_five_lookups_and_one_catalog_call() {
    let app = spawn_app().await;
    let emails: Vec<String> = (1..=5).map(|i| format!("user{i}@example.com")).collect();
    for address in &emails {
        let records = json!([
            sample::breach(address),
            sample::combo(address),
            sample::infostealer(address)
        ]);
        app.mount_email(address, vec![records]).await;
    }
    app.mount_catalogs(sample::catalogs()).await;
    let body = app
        .observe(emails.iter().map(|e| email(e)).collect::<Vec<_>>().into())
        .await;
    assert_eq!(body["data"]["sightings"]["count"], 15);
    // Three catalogs shared by five emails: each indicator once.
    assert_eq!(body["data"]["indicators"]["count"], 3);
    assert_eq!(body.get("errors"), None);
    let requests = app.upstream.received_requests().await.unwrap();
    let calls = |prefix: &str| {
        requests
            .iter()
            .filter(|r| r.url.path().starts_with(prefix))
            .count()
    };
    assert_eq!(calls("/breach/data/emails/"), 5);
    assert_eq!(calls("/breach/catalog/"), 1);
}

#[tokio::test]
async fn jwks_and_catalogs_are_fetched_once_for_repeated_requests() {
    let app = spawn_app().await;
    let alice = "alice@example.com";
    app.mount_email(
        alice,
        vec![json!([sample::breach(alice), sample::combo(alice)])],
    )
    .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/catalog/2976,16579$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "results": sample::catalogs()})),
        )
        .expect(1)
        .mount(&app.upstream)
        .await;
    let first = app.observe(json!([email(alice)])).await;
    let second = app.observe(json!([email(alice)])).await;
    assert_eq!(first["data"]["indicators"], second["data"]["indicators"]);
    let jwks_fetches = app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == common::jwt::JWKS_PATH)
        .count();
    assert_eq!(jwks_fetches, 1);
}

#[tokio::test]
async fn the_server_stays_up_after_hostile_requests() {
    let app = spawn_app().await;
    let token = app.token();
    let hostile = [
        "\u{0}\u{1}".to_owned(),
        "[".repeat(200_000),
        format!(
            r#"[{{"type":"email","value":"{}"}}]"#,
            "a".repeat(900 * 1024)
        ),
        r#"[{"type":"email","value":"x@y.z","extra":{"deep":[[[[[[[[[[1]]]]]]]]]]}},1]"#.to_owned(),
        "9".repeat(10_000),
    ];
    for body in hostile {
        let (status, answer) = app.post("/observe/observables", Some(&token), &body).await;
        assert_eq!(status, 200);
        assert_eq!(answer["errors"][0]["code"], "invalid argument", "{answer}");
    }
    let response = app
        .client
        .post(format!("{}/observe/observables", app.address))
        .header("Authorization", b"Bearer \xff\xfe".as_slice())
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.post("/version", None, "").await.0, 200);
}

// RULES R4
#[tokio::test]
async fn a_body_over_one_mib_is_refused_before_it_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // Announce 2 MiB and send none of it: the answer must come anyway.
    let head = format!(
        "POST /observe/observables HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(
            "Invalid JSON payload received. The request body is larger than 1048576 bytes."
        ),
        "{answer}"
    );
    assert_eq!(app.post("/version", None, "").await.0, 200);
}

#[tokio::test]
async fn passwords_can_be_masked_or_omitted() {
    for (policy, expected) in [("masked", Some(json!("Su**********"))), ("omitted", None)] {
        let app = spawn_app_with(&[("RELAY_PASSWORDS", policy)]).await;
        let alice = "alice@example.com";
        app.mount_email(alice, vec![json!([sample::infostealer(alice)])])
            .await;
        app.mount_catalogs(sample::catalogs()).await;
        let body = app.observe(json!([email(alice)])).await;
        let data = &body["data"]["sightings"]["docs"][0]["data"];
        let columns: Vec<_> = data["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let position = columns.iter().position(|c| *c == "password");
        assert_eq!(
            position.map(|i| data["rows"][0][i].clone()),
            expected,
            "{policy}"
        );
        assert!(!body.to_string().contains("Sup3rSecret!"), "{policy}");
    }
}

// RULES R16
#[tokio::test]
async fn a_slow_spycloud_gets_an_answer_within_the_request_deadline() {
    let app = spawn_app_with(&[
        ("RELAY_REQUEST_TIMEOUT_SECS", "1"),
        ("SPYCLOUD_TIMEOUT_SECS", "10"),
    ])
    .await;
    app.mount_email(
        "alice@example.com",
        vec![json!([sample::breach("alice@example.com")])],
    )
    .await;
    app.mount_catalogs(sample::catalogs()).await;
    Mock::given(method("GET"))
        .and(path("/breach/data/emails/bob@example.com"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"results": []}))
                .set_delay(std::time::Duration::from_secs(5)),
        )
        .mount(&app.upstream)
        .await;
    let started = std::time::Instant::now();
    let body = app
        .observe(json!([
            email("bob@example.com"),
            email("alice@example.com")
        ]))
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(
        body,
        json!({"errors": [{"type": "fatal", "code": "unknown",
                           "message": "SpyCloud did not answer everything within the relay's 1 s deadline."}]})
    );
    // Like any fatal error, the deadline keeps what came before the unfinished email.
    let body = app
        .observe(json!([
            email("alice@example.com"),
            email("bob@example.com")
        ]))
        .await;
    assert_eq!(body["data"]["sightings"]["count"], 1);
    assert_eq!(body["data"]["indicators"]["count"], 1);
    assert_eq!(
        body["errors"],
        json!([{"type": "fatal", "code": "unknown",
                "message": "SpyCloud did not answer everything within the relay's 1 s deadline."}])
    );
}

#[tokio::test]
async fn idle_and_trickling_clients_are_disconnected_and_the_server_stays_up() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&[("RELAY_HEADER_TIMEOUT_SECS", "1")]).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    // Each client's connection must be closed by the relay; the client only reads.
    let closed_by_the_relay = |opening: &'static [u8]| {
        let host = host.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
            stream.write_all(opening).await.unwrap();
            let mut received = Vec::new();
            tokio::time::timeout(
                std::time::Duration::from_secs(20),
                stream.read_to_end(&mut received),
            )
            .await
            .expect("the relay must close the connection")
            .unwrap();
            String::from_utf8_lossy(&received).into_owned()
        }
    };
    let (silent, partial, kept_alive) = tokio::join!(
        closed_by_the_relay(b""),
        closed_by_the_relay(b"POST /observe/observables HTTP/1.1\r\nHost: relay\r\n"),
        closed_by_the_relay(b"POST /version HTTP/1.1\r\nHost: relay\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_eq!(silent, "");
    assert_eq!(partial, "");
    // The complete request was answered; then the idle connection was closed all the same.
    assert!(kept_alive.starts_with("HTTP/1.1 200 OK"), "{kept_alive}");
    let (status, body) = app.post("/version", None, "").await;
    assert_eq!(status, 200);
    assert!(body["version"].is_string());
}

#[tokio::test]
async fn past_the_connection_limit_clients_wait_until_a_connection_closes() {
    let app = spawn_app_with(&[
        ("RELAY_MAX_CONNECTIONS", "2"),
        ("RELAY_HEADER_TIMEOUT_SECS", "60"),
    ])
    .await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let first = tokio::net::TcpStream::connect(&host).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&host).await.unwrap();
    // Both slots are held by clients that say nothing: a third is not served...
    let version = || {
        app.client
            .post(format!("{}/version", app.address))
            .timeout(std::time::Duration::from_secs(1))
            .send()
    };
    let waiting = version().await.unwrap_err();
    assert!(waiting.is_timeout(), "{waiting:?}");
    // ...until one of them goes.
    drop(first);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if let Ok(answer) = version().await {
                return answer;
            }
        }
    })
    .await
    .expect("a freed slot must serve the next client");
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn hostile_tokens_get_authorization_errors_and_the_server_stays_up() {
    let app = spawn_app().await;
    let body = json!([email("alice@example.com")]).to_string();
    let long = "a".repeat(8 * 1024);
    let hostile = [
        "Bearer ".to_owned(),
        "Bearer \ttoken".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer eyJhbGciOiJub25lIn0.e30.".to_owned(),
        "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLy4uIn0.eyJqd2tzX2hvc3QiOiJldmlsLmV4YW1wbGUvQCJ9.x"
            .to_owned(),
        format!("Bearer {long}.{long}.{long}"),
        "bearer".to_owned(),
    ];
    for header in hostile {
        let response = app
            .client
            .post(format!("{}/observe/observables", app.address))
            .header("Authorization", header.as_str())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{header}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["errors"][0]["code"], "authorization error",
            "{header}: {answer}"
        );
    }
    assert_eq!(app.post("/version", None, "").await.0, 200);
    let upstream_calls = app.upstream.received_requests().await.unwrap();
    assert!(
        upstream_calls
            .iter()
            .all(|r| r.url.path() == common::jwt::JWKS_PATH),
        "no SpyCloud call without a valid token"
    );
}

#[tokio::test]
async fn relay_audience_replaces_the_request_root() {
    let app = spawn_app_with(&[("RELAY_AUDIENCE", "https://relay.configured")]).await;
    app.mount_status("/watchlist/", 200, json!({"results": []}))
        .await;
    let configured = app.token_with(json!({"aud": "https://relay.configured"}));
    assert_eq!(
        app.post("/health", Some(&configured), "").await.1,
        json!({"data": {"status": "ok"}})
    );
    let own_root = app.token();
    let (_, body) = app.post("/health", Some(&own_root), "").await;
    assert_eq!(
        body["errors"][0]["message"],
        "Authorization failed: Wrong configuration-token-audience"
    );
}

#[tokio::test]
async fn spycloud_timeout_bounds_each_upstream_call() {
    let app = spawn_app_with(&[("SPYCLOUD_TIMEOUT_SECS", "1")]).await;
    Mock::given(method("GET"))
        .and(path_regex("^/breach/data/emails/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"results": []}))
                .set_delay(std::time::Duration::from_secs(4)),
        )
        .mount(&app.upstream)
        .await;
    let body = app.observe(json!([email("alice@example.com")])).await;
    assert_eq!(body["errors"][0]["code"], "unknown");
    assert_eq!(
        body["errors"][0]["message"],
        "SpyCloud did not answer within 1 s"
    );
}

#[tokio::test]
async fn concurrent_requests_keep_their_own_entities_limit() {
    let app = app_with_alice().await;
    let body = json!([email("alice@example.com")]).to_string();
    let (one, three) = (
        app.token_with(json!({"CTR_ENTITIES_LIMIT": 1})),
        app.token_with(json!({"CTR_ENTITIES_LIMIT": 3})),
    );
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            app.post("/observe/observables", Some(&one), &body),
            app.post("/observe/observables", Some(&three), &body),
        );
        assert_eq!(
            (
                a.1["data"]["sightings"]["count"].as_u64(),
                b.1["data"]["sightings"]["count"].as_u64()
            ),
            (Some(1), Some(3))
        );
    }
}

#[tokio::test]
async fn a_pool_of_worker_threads_serves_the_same_answers() {
    let app = spawn_app_with(&[("RELAY_WORKER_THREADS", "2")]).await;
    let alice = "alice@example.com";
    app.mount_email(
        alice,
        vec![json!([sample::breach(alice), sample::combo(alice)])],
    )
    .await;
    app.mount_catalogs(sample::catalogs()).await;
    let body = app.observe(json!([email(alice)])).await;
    assert_eq!(
        (
            body["data"]["sightings"]["count"].as_u64(),
            body["data"]["relationships"]["count"].as_u64()
        ),
        (Some(2), Some(2))
    );
}
