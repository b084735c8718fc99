//! Running the relay: logs without secrets, graceful shutdown, the one-shot `lookup` command.

mod common;

use std::process::Command;
use std::time::Duration;

use common::app::{sample, spawn_app_with};
use common::jwt::API_KEY;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn logs_never_show_a_key_token_password_or_email() {
    let mut app = spawn_app_with(&[("RELAY_LOG", "trace")]).await;
    let alice = "alice.secret@example.com";
    app.mount_email(
        alice,
        vec![json!([sample::infostealer(alice), sample::breach(alice)])],
    )
    .await;
    app.mount_catalogs(sample::catalogs()).await;
    let token = app.token();
    let observables = json!([{"type": "email", "value": alice}]).to_string();
    let (_, body) = app
        .post("/observe/observables", Some(&token), &observables)
        .await;
    assert_eq!(
        body["data"]["sightings"]["count"], 2,
        "the lookup really ran"
    );
    app.post("/health", Some(&token), "").await;
    app.post("/health", Some("Bearer-less-garbage.token.here"), "")
        .await;
    app.terminate();

    let logs = app.log_text();
    assert!(
        logs.contains("/observe/observables"),
        "one line per request is logged:\n{logs}"
    );
    let token_signature = token.rsplit('.').next().unwrap();
    for secret in [
        API_KEY,
        token.as_str(),
        token_signature,
        "Sup3rSecret!",
        "5f4dcc3b5aa765d61d8327deb882cf99",
        "alice.secret",
    ] {
        assert!(!logs.contains(secret), "the log shows {secret:?}:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    let mut app = spawn_app_with(&[]).await;
    let slow = "slow@example.com";
    Mock::given(method("GET"))
        .and(path_regex(format!("^/breach/data/emails/{slow}$")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "results": [sample::breach(slow)]}))
                .set_delay(Duration::from_millis(800)),
        )
        .mount(&app.upstream)
        .await;
    app.mount_catalogs(sample::catalogs()).await;
    let token = app.token();
    let request = app
        .client
        .post(format!("{}/observe/observables", app.address))
        .bearer_auth(token)
        .body(json!([{"type": "email", "value": slow}]).to_string())
        .send();
    let in_flight = tokio::spawn(request);
    // Let the request reach the relay before the signal.
    while app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .all(|r| !r.url.path().contains(slow))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = tokio::task::block_in_place(|| app.terminate());
    let response = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["sightings"]["count"], 1);
    assert!(status.success(), "exit status {status}");
    assert!(
        app.client
            .post(format!("{}/version", app.address))
            .send()
            .await
            .is_err(),
        "no new connections"
    );
}

fn lookup(args: &[&str], api_url: &str, key: &str) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"))
        .arg("lookup")
        .args(args)
        .env_clear()
        .env("SPYCLOUD_API_URL", api_url)
        .env("SPYCLOUD_API_KEY", key)
        .env("SPYCLOUD_TIMEOUT_SECS", "2")
        .env("RELAY_LOG", "warn")
        .output()
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn fake_spycloud() -> MockServer {
    let server = MockServer::start().await;
    let alice = "alice@example.com";
    Mock::given(method("GET"))
        .and(path_regex(format!("^/breach/data/emails/{alice}$")))
        .and(wiremock::matchers::header("x-api-key", "cli-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "cursor": "", "results": [sample::breach(alice), sample::combo(alice), sample::infostealer(alice)]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/breach/catalog/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "results": sample::catalogs()})),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn lookup_prints_the_bundle() {
    let server = fake_spycloud().await;
    let uri = server.uri();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        lookup(&["alice@example.com", "--limit", "2"], &uri, "cli-key")
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let bundle: Value = serde_json::from_str(&stdout).expect("stdout is the JSON bundle alone");
    assert_eq!(bundle["data"]["sightings"]["count"], 2);
    assert_eq!(bundle["data"]["indicators"]["count"], 2);
    assert_eq!(bundle["data"]["relationships"]["count"], 2);
}

#[tokio::test]
async fn lookup_types_each_value_by_its_form_or_by_type() {
    let server = fake_spycloud().await;
    for (endpoint, value) in [
        ("domains", "example.com"),
        ("ips", "192.0.2.1"),
        ("ips", "2001%3Adb8%3A%3A1"),
        ("usernames", "alice77"),
    ] {
        Mock::given(method("GET"))
            .and(path_regex(format!("^/breach/data/{endpoint}/{value}$")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "cursor": "", "results": [sample::breach("alice@example.com")]
            })))
            .mount(&server)
            .await;
    }
    let uri = server.uri();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        lookup(
            &[
                "Example.com",
                "192.0.2.1",
                "2001:DB8::1",
                "alice@example.com",
            ],
            &uri,
            "cli-key",
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let bundle: Value = serde_json::from_str(&stdout).unwrap();
    let looked_up: Vec<(String, String)> = bundle["data"]["sightings"]["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let observable = &s["observables"][0];
            (
                observable["type"].to_string(),
                observable["value"].to_string(),
            )
        })
        .collect();
    let first_of = |kind: &str| {
        looked_up
            .iter()
            .find(|(k, _)| k == &format!("\"{kind}\""))
            .cloned()
    };
    assert!(first_of("domain").is_some(), "{looked_up:?}");
    assert!(first_of("ip").is_some(), "{looked_up:?}");
    assert!(first_of("ipv6").is_some(), "{looked_up:?}");
    assert!(first_of("email").is_some(), "{looked_up:?}");

    let uri = server.uri();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        lookup(&["--type", "user", "alice77"], &uri, "cli-key")
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let bundle: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        bundle["data"]["sightings"]["docs"][0]["observables"],
        json!([{"type": "user", "value": "alice77"}, {"type": "email", "value": "alice@example.com"}])
    );
}

#[tokio::test]
async fn lookup_fails_cleanly() {
    let server = fake_spycloud().await;
    let uri = server.uri();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        lookup(
            &["not-an-email@", "alice", "--type", "ip", "2001:db8::1"],
            &uri,
            "cli-key",
        )
    })
    .await
    .unwrap();
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.contains("not-an-email@ is not a valid IPv4 address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("alice is not a valid IPv4 address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2001:db8::1 is not a valid IPv4 address"),
        "{stderr}"
    );

    let uri = server.uri();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        lookup(
            &["not-an-email@", "alice", "a.example.com"],
            &uri,
            "cli-key",
        )
    })
    .await
    .unwrap();
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.contains("not-an-email@ is not a valid email address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cannot tell what alice is: give its type with --type"),
        "{stderr}"
    );
    assert!(!stderr.contains("a.example.com"), "{stderr}");

    let uri = server.uri();
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || lookup(&["nobody@example.com"], &uri, "wrong-key"))
            .await
            .unwrap();
    assert_eq!(code, 1, "a fatal error fails the command");
    assert!(
        stderr.contains("not found: The Spycloud not found."),
        "{stderr}"
    );
    let bundle: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(bundle["errors"][0]["type"], "fatal");
    assert!(!stderr.contains("wrong-key"));
}

#[tokio::test]
async fn metrics_and_the_request_log_show_what_happened() {
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
    let alice = "alice@example.com";
    app.mount_email(
        alice,
        vec![json!([sample::breach(alice), sample::combo(alice)])],
    )
    .await;
    app.mount_catalogs(sample::catalogs()).await;
    for _ in 0..2 {
        app.observe(json!([{"type": "email", "value": alice}]))
            .await;
    }
    let orphan = "orphan@example.com";
    app.mount_email(orphan, vec![json!([sample::orphan(orphan)])])
        .await;
    let warned = app
        .observe(json!([{"type": "email", "value": orphan}]))
        .await;
    assert_eq!(warned["errors"][0]["type"], "warning");
    app.post(
        "/observe/observables",
        None,
        &json!([{"type": "email", "value": alice}]).to_string(),
    )
    .await;

    let metrics = reqwest::get(format!("http://{metrics_address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"relay_requests_total{route="/observe/observables",outcome="ok"} 3"#,
        r#"relay_requests_total{route="/observe/observables",outcome="authorization error"} 1"#,
        r#"relay_upstream_calls_total{endpoint="emails",status="200"} 3"#,
        r#"relay_upstream_calls_total{endpoint="catalog",status="200"} 2"#,
        "relay_catalog_cache_hits_total 2",
        "relay_catalog_cache_misses_total 3",
        r#"relay_request_duration_seconds_bucket{route="/observe/observables",le="0.5"}"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in:\n{metrics}"
        );
    }
    assert!(!metrics.contains(API_KEY) && !metrics.contains(alice));

    app.terminate();
    let logs = app.log_text();
    let lines: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("/observe/observables"))
        .collect();
    assert_eq!(lines.len(), 4, "one line per request:\n{logs}");
    assert!(
        lines[0].contains("upstream_calls=2") && lines[0].contains("outcome=\"ok\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("upstream_calls=1"),
        "catalogs came from the cache: {}",
        lines[1]
    );
    assert!(
        lines[2].contains("outcome=\"ok\""),
        "a warning is no failure: {}",
        lines[2]
    );
    assert!(lines[3].contains("authorization error"), "{}", lines[3]);
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let mut app = spawn_app_with(&[("RELAY_LOG_FORMAT", "json"), ("RELAY_LOG", "info")]).await;
    app.post("/version", None, "").await;
    app.terminate();
    let logs = app.log_text();
    let request: Value = logs
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("every line is JSON"))
        .find(|line| line["route"] == "/version")
        .expect("the request line");
    assert_eq!(
        (request["status"].as_u64(), request["outcome"].as_str()),
        (Some(200), Some("ok"))
    );
}
