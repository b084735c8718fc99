//! Running the relay: logs without secrets, graceful shutdown, the one-shot `lookup` command.

mod common;

use std::process::Command;
use std::time::Duration;

use common::app::{sample, spawn_app_with};
use common::jwt::API_KEY;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

// RULES R20
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
    common::ctim::assert_valid(&bundle);
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
async fn lookup_names_spyclouds_refusal() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).insert_header("SpyCloud-Error", "Invalid IP"))
        .mount(&server)
        .await;
    let uri = server.uri();
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || lookup(&["alice@example.com"], &uri, "cli-key"))
            .await
            .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("Authorization failed: SpyCloud does not accept calls from this relay's IP address for this API key. Ask SpyCloud to allow it."),
        "{stderr}"
    );
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
    let id = request["span"]["id"].as_str().expect("the request's id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{request}");
}

// ---- What operators see ----

#[tokio::test]
async fn every_line_of_a_request_names_its_id_and_the_answer_carries_it() {
    let mut app = spawn_app_with(&[("RELAY_LOG", "info")]).await;
    // A token naming a host outside the allow-list: a warning inside the request, then its line.
    let token = app.token_with(json!({"jwks_host": "elsewhere.example"}));
    let response = app
        .client
        .post(format!("{}/health", app.address))
        .bearer_auth(&token)
        .header("X-Request-Id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let made = app
        .client
        .post(format!("{}/version", app.address))
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a new id: {id}");
    app.terminate();

    let logs = app.log_text();
    let tagged: Vec<_> = logs.lines().filter(|l| l.contains("req-42")).collect();
    assert_eq!(tagged.len(), 2, "the warning and the request line:\n{logs}");
    assert!(
        tagged[0].contains("jwks_host is not in the allow-list"),
        "{logs}"
    );
    assert!(tagged[1].contains("route=\"/health\""), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains(&id) && l.contains("route=\"/version\"")),
        "{logs}"
    );
}

#[tokio::test]
async fn failed_requests_say_why_and_retries_are_logged_at_info() {
    let mut app = spawn_app_with(&[("RELAY_LOG", "info")]).await;
    let token = app.token();
    // Authorization: the contract's reason.
    app.post("/health", Some(&token.replace('.', "")), "").await;
    // SpyCloud: a 503 retried, then a 429 with the quota spent.
    let busy = "busy@example.com";
    Mock::given(method("GET"))
        .and(path_regex(format!("^/breach/data/emails/{busy}$")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&app.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(format!("^/breach/data/emails/{busy}$")))
        .respond_with(
            ResponseTemplate::new(429).insert_header("x-amzn-ErrorType", "LimitExceededException"),
        )
        .mount(&app.upstream)
        .await;
    let body = app.observe(json!([{"type": "email", "value": busy}])).await;
    assert_eq!(body["errors"][0]["code"], "too many requests");
    app.terminate();

    let logs = app.log_text();
    let line = |route: &str, outcome: &str| {
        logs.lines()
            .find(|l| l.contains(&format!("route=\"{route}\"")) && l.contains(outcome))
            .unwrap_or_else(|| panic!("no {route} line with {outcome}:\n{logs}"))
            .to_owned()
    };
    let refused = line("/health", "authorization error");
    assert!(
        refused.contains("reason=\"Authorization failed: Wrong JWT structure\""),
        "{refused}"
    );
    let limited = line("/observe/observables", "too many requests");
    assert!(
        limited.contains("upstream_failure=\"emails 429 LimitExceededException\"")
            && limited.contains("reason=\"The SpyCloud API key's monthly quota is used up."),
        "{limited}"
    );
    let retry = logs
        .lines()
        .find(|l| l.contains("retrying a SpyCloud call"))
        .unwrap_or_else(|| panic!("no retry line:\n{logs}"));
    assert!(
        retry.contains("INFO")
            && retry.contains("endpoint=\"emails\"")
            && retry.contains("status=\"503\""),
        "{retry}"
    );
    // Durations below the millisecond show.
    let version_like = line("/observe/observables", "duration_ms=");
    let duration = version_like
        .split("duration_ms=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert!(duration.contains('.'), "{version_like}");
}

#[tokio::test]
async fn the_startup_line_lists_the_settings_in_effect() {
    let mut app = spawn_app_with(&[("RELAY_LOG", "info"), ("RELAY_BODY_TIMEOUT_SECS", "7")]).await;
    app.terminate();
    let logs = app.log_text();
    let settings = logs
        .lines()
        .find(|l| l.contains(" settings "))
        .unwrap_or_else(|| panic!("no settings line:\n{logs}"));
    for expected in [
        "listen=127.0.0.1:0",
        "body_timeout_secs=7",
        "header_timeout_secs=30",
        "request_timeout_secs=25",
        "max_connections=1024",
        "spycloud_timeout_secs=2",
        "passwords=\"plaintext\"",
        "open_files_limit=",
    ] {
        assert!(settings.contains(expected), "{expected} in {settings}");
    }
}

#[tokio::test]
async fn metrics_are_described_and_present_from_the_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_address = format!("127.0.0.1:{port}");
    let app = spawn_app_with(&[("RELAY_METRICS_LISTEN", &metrics_address)]).await;
    let scrape = || async {
        reqwest::get(format!("http://{metrics_address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let first = scrape().await;
    let families = [
        "relay_requests_total",
        "relay_request_duration_seconds",
        "relay_upstream_calls_total",
        "relay_upstream_call_duration_seconds",
        "relay_upstream_retries_total",
        "relay_rate_limit_waits_total",
        "relay_jwks_fetches_total",
        "relay_jwks_fetch_failures_total",
        "relay_catalog_cache_hits_total",
        "relay_catalog_cache_misses_total",
        "relay_tile_scans_total",
        "relay_open_connections",
        "relay_build_info",
    ];
    for family in families {
        assert!(
            first.contains(&format!("# HELP {family} ")),
            "no HELP for {family}:\n{first}"
        );
        assert!(
            first
                .lines()
                .any(|l| l.starts_with(family) && !l.starts_with('#')),
            "no sample of {family} before any request:\n{first}"
        );
    }
    assert!(
        first.contains(&format!(
            "relay_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{first}"
    );
    // Every family line is described: no family without HELP.
    for line in first.lines().filter(|l| l.starts_with("# TYPE ")) {
        let family = line.split(' ').nth(2).unwrap();
        assert!(first.contains(&format!("# HELP {family} ")), "{family}");
    }

    let alice = "alice@example.com";
    app.mount_email(alice, vec![json!([sample::breach(alice)])])
        .await;
    app.mount_catalogs(sample::catalogs()).await;
    app.observe(json!([{"type": "email", "value": alice}]))
        .await;
    let after = scrape().await;
    for expected in [
        "relay_jwks_fetches_total 1",
        "relay_jwks_fetch_failures_total 0",
        r#"relay_upstream_call_duration_seconds_count{endpoint="emails"} 1"#,
        r#"relay_open_connections{listener="metrics"} "#,
        r#"relay_open_connections{listener="main"} "#,
    ] {
        assert!(after.contains(expected), "missing {expected} in:\n{after}");
    }
    let status = reqwest::get(format!("http://{metrics_address}/other"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_addresses_name_their_flag_and_a_failed_bind_names_the_address() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"))
            .args(args)
            .env_clear()
            .env("RELAY_LOG", "warn")
            .output()
            .expect("the binary runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["serve", "--listen", "localhost"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    let (code, stderr) = run(&["serve", "--metrics-listen", "9100"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--metrics-listen"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(&["serve", "--listen", &address]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn healthcheck_exits_0_when_the_relay_answers_and_1_when_not() {
    let app = spawn_app_with(&[]).await;
    let listen = app.address.trim_start_matches("http://").to_owned();
    let check = move |listen: String| {
        Command::new(env!("CARGO_BIN_EXE_spycloud-relay"))
            .args(["healthcheck", "--listen", &listen, "--timeout-secs", "2"])
            .env_clear()
            .output()
            .expect("the binary runs")
    };
    let up = {
        let listen = listen.clone();
        tokio::task::spawn_blocking(move || check(listen))
            .await
            .unwrap()
    };
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    drop(app);
    let down = tokio::task::spawn_blocking(move || check(listen))
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/watchdog"));
}

#[tokio::test]
async fn sighup_without_tls_is_logged_and_otherwise_ignored() {
    let mut app = spawn_app_with(&[("RELAY_LOG", "info")]).await;
    app.hang_up();
    app.wait_for_log("SIGHUP").await;
    assert_eq!(
        app.wait_for_exit(Duration::from_millis(200)),
        None,
        "the relay lives on"
    );
    let logs = app.log_text();
    assert!(logs.contains("no TLS"), "{logs}");
    let (status, _) = app.post("/version", None, "").await;
    assert_eq!(status, 200);
    // Again: each is handled.
    app.hang_up();
    let (status, _) = app.post("/version", None, "").await;
    assert_eq!(status, 200);
    assert!(app.terminate().success());
}

#[test]
fn a_setting_out_of_its_bounds_stops_the_relay_naming_it_exit_2() {
    // The relay must stop by itself: one that starts is killed after 20 s and fails the test.
    let run = |name: &str, value: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"))
            .arg("serve")
            .env_clear()
            .env("RELAY_LISTEN", "127.0.0.1:0")
            .env("RELAY_LOG", "warn")
            .env(name, value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary runs");
        for _ in 0..200 {
            if child.try_wait().expect("wait").is_some() {
                let output = child.wait_with_output().expect("output");
                return (
                    output.status.code(),
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        (None, "the relay started".to_owned())
    };
    for (name, value) in [
        ("RELAY_REQUEST_TIMEOUT_SECS", "18446744073709551615"),
        ("RELAY_HEADER_TIMEOUT_SECS", "18446744073709551615"),
        ("RELAY_BODY_TIMEOUT_SECS", "86401"),
        ("RELAY_SHUTDOWN_GRACE_SECS", "86401"),
        ("SPYCLOUD_TIMEOUT_SECS", "86401"),
        ("RELAY_TILES_CACHE_SECS", "31536001"),
        ("RELAY_MAX_RECORDS", "18446744073709551615"),
        ("RELAY_MAX_CONNECTIONS", "1048577"),
        ("RELAY_WORKER_THREADS", "257"),
        ("SPYCLOUD_MAX_RPS", "10001"),
        ("RELAY_REQUEST_TIMEOUT_SECS", "ten"),
    ] {
        let (code, stderr) = run(name, value);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

#[tokio::test]
async fn healthcheck_reads_a_few_kib_of_an_endless_answer_and_fails_clearly() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = listener.local_addr().unwrap().to_string();
    // A hostile listener: a JSON body that never ends, as fast as it is read.
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"data\":\"";
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'a'; 64 * 1024];
        while stream.write_all(&chunk).is_ok() {}
    });
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_spycloud-relay"))
            .args(["healthcheck", "--listen", &listen, "--timeout-secs", "600"])
            .env_clear()
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/watchdog"), "{stderr}");
    assert!(stderr.contains("answer larger than 4096 bytes"), "{stderr}");
}

#[tokio::test]
async fn lookup_escapes_control_characters_in_upstream_error_text() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"message": "\u{1b}]0;owned\u{7}\u{1b}[2J\rfake prompt $ \u{202e}"}),
        ))
        .mount(&server)
        .await;
    let uri = server.uri();
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || lookup(&["alice@example.com"], &uri, "cli-key"))
            .await
            .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Authorization failed"), "{stderr:?}");
    for raw in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(!stderr.contains(raw), "{raw:?} printed raw: {stderr:?}");
    }
    assert!(stderr.contains(r"\u{1b}]0;owned\u{7}"), "{stderr:?}");
}
