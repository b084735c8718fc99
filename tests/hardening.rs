//! What an exposed relay must withstand: the real binary on a loopback port against hostile
//! (or just slow) clients, JWKS hosts and SpyCloud. Each test pins one fix of the hardening
//! issue and fails without it; every wait in them is bounded.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::app::{TestApp, sample, spawn_app, spawn_app_adjusted, spawn_app_with};
use common::jwt::{JWKS_PATH, KID_1, TokenMinter, default_claims, jwks, jwks_host};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Reads from `stream` until the relay closes it; `None` if it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&answer).into_owned()),
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Restricts the relay's open files to `limit` (soft and hard).
fn limit_open_files(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A free loopback address for the metrics port.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Alice's records and their catalogs on the app's fake SpyCloud.
async fn mount_alice(app: &TestApp) {
    let alice = "alice@example.com";
    app.mount_email(
        alice,
        vec![json!([sample::breach(alice), sample::combo(alice)])],
    )
    .await;
    app.mount_catalogs(sample::catalogs()).await;
}

fn alice() -> String {
    json!([{"type": "email", "value": "alice@example.com"}]).to_string()
}

// RULES R5
// 1. A body that never arrives.
#[tokio::test]
async fn a_body_that_never_arrives_is_refused_and_its_connection_closed() {
    let app = spawn_app_with(&[("RELAY_BODY_TIMEOUT_SECS", "1")]).await;

    // Headers announcing 10 bytes, then nothing.
    let started = Instant::now();
    let mut stream = TcpStream::connect(app.socket_address()).await.unwrap();
    stream
        .write_all(
            b"POST /observe/observables HTTP/1.1\r\nHost: relay\r\nContent-Length: 10\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(6))
        .await
        .expect("the connection is closed after the body timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.contains("The request body did not arrive within 1 s."),
        "{answer}"
    );

    // A chunked body that never ends: a byte every 100 ms.
    let started = Instant::now();
    let mut stream = TcpStream::connect(app.socket_address()).await.unwrap();
    stream
        .write_all(
            b"POST /observe/observables HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "an endless body still holds its connection"
        );
        if stream.write_all(b"1\r\n \r\n").await.is_err() {
            break;
        }
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer));
        if let Ok(Ok(0) | Err(_)) = read.await {
            break;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

// RULES R4
// 8. A refusal the client can read.
#[tokio::test]
async fn a_client_that_writes_a_body_over_the_limit_before_reading_gets_the_refusal() {
    let app = spawn_app_with(&[]).await;
    let address = app.socket_address();
    for announced in [true, false] {
        let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(address)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.set_write_timeout(Some(Duration::from_secs(10)))?;
            let body = vec![b' '; 3 * 1024 * 1024];
            let framing = if announced {
                format!("Content-Length: {}", body.len())
            } else {
                "Transfer-Encoding: chunked".to_owned()
            };
            let head = format!(
                "POST /observe/observables HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n{framing}\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
            if announced {
                stream.write_all(&body)?;
            } else {
                for chunk in body.chunks(64 * 1024) {
                    stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                    stream.write_all(chunk)?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")?;
            }
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .await
        .unwrap();
        let answer = answer.unwrap_or_else(|error| {
            panic!("writing the whole body, then reading (announced: {announced}): {error}")
        });
        assert!(
            answer.contains("The request body is larger than 1048576 bytes."),
            "{answer}"
        );
    }
}

// 4. File descriptors.
#[tokio::test]
async fn a_connection_flood_leaves_descriptors_for_the_relays_own_calls() {
    let app = spawn_app_adjusted(&[("RELAY_LOG", "info")], |command| {
        limit_open_files(command, 256);
    })
    .await;
    mount_alice(&app).await;
    // A client connected before the flood.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let version = client
        .post(format!("{}/version", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 200);

    // More idle connections than the relay has descriptors.
    let mut flood = Vec::new();
    for _ in 0..400 {
        let connected = tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(app.socket_address()),
        );
        match connected.await {
            Ok(Ok(stream)) => flood.push(stream),
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Its calls to the JWKS host and SpyCloud still have descriptors.
    let started = Instant::now();
    let response = client
        .post(format!("{}/observe/observables", app.address))
        .bearer_auth(app.token())
        .body(alice())
        .send()
        .await
        .expect("the client connected before the flood is answered");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["sightings"]["count"], 2, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    drop(flood);

    let logs = app.log_text();
    assert!(
        logs.contains("RELAY_MAX_CONNECTIONS lowered") && logs.contains("serving=160"),
        "the startup log says the cap was lowered to fit 256 open files:\n{logs}"
    );
    assert!(
        logs.contains("open_files_limit=256"),
        "the startup line names the limit:\n{logs}"
    );
    assert!(
        !logs.contains("could not accept"),
        "within the cap no accept fails:\n{logs}"
    );
}

// 5. The metrics port: the main port's limits, /metrics only.
#[tokio::test]
async fn the_metrics_port_closes_idle_connections_and_serves_only_metrics() {
    let metrics = free_address();
    let app = spawn_app_with(&[
        ("RELAY_METRICS_LISTEN", &metrics),
        ("RELAY_HEADER_TIMEOUT_SECS", "1"),
    ])
    .await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(&metrics).await.unwrap();
    read_until_closed(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle client of the metrics port is let go");
    assert!(started.elapsed() < Duration::from_secs(4));

    let get = |path: &str| reqwest::get(format!("http://{metrics}{path}"));
    let scrape = get("/metrics").await.unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape
            .text()
            .await
            .unwrap()
            .contains("# HELP relay_requests_total")
    );
    for other in ["/", "/metric", "/metrics/x", "/anything"] {
        assert_eq!(get(other).await.unwrap().status(), 404, "{other}");
    }
    drop(app);
}

#[tokio::test]
async fn a_flood_of_the_metrics_port_neither_starves_the_main_port_nor_floods_the_log() {
    let metrics = free_address();
    let app = spawn_app_adjusted(
        &[("RELAY_METRICS_LISTEN", &metrics), ("RELAY_LOG", "info")],
        |command| limit_open_files(command, 256),
    )
    .await;
    mount_alice(&app).await;
    let mut flood = Vec::new();
    for _ in 0..400 {
        let connected = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&metrics));
        match connected.await {
            Ok(Ok(stream)) => flood.push(stream),
            // The backlog is full: the metrics port stopped accepting.
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/observe/observables", app.address))
        .bearer_auth(app.token())
        .body(alice())
        .send()
        .await
        .expect("the main port still accepts");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["sightings"]["count"], 2, "{body}");
    drop(flood);

    let logs = app.log_text();
    let accept_errors = logs.matches("could not accept").count();
    assert!(
        accept_errors <= 1,
        "{accept_errors} accept-error lines:\n{}",
        &logs[..logs.len().min(3000)]
    );
}

// 6. JWKS hosts that fail, or are slow.
#[tokio::test]
async fn a_failing_jwks_host_is_asked_at_most_once_per_5_s() {
    let app = spawn_app_with(&[]).await;
    app.upstream.reset().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.upstream)
        .await;
    let token = app.token();
    for _ in 0..5 {
        let (_, body) = app.post("/health", Some(&token), "").await;
        assert_eq!(
            body["errors"][0]["message"],
            "Authorization failed: Wrong jwks_host in JWT payload. Make sure domain follows the visibility.<region>.cisco.com structure"
        );
    }
    let fetches = app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == JWKS_PATH)
        .count();
    assert_eq!(fetches, 1, "the failure is remembered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refetch_for_an_unknown_kid_does_not_hold_back_known_keys() {
    let app = spawn_app_with(&[]).await;
    let probe = || {
        Mock::given(method("GET"))
            .and(path_regex("^/watchlist/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
    };
    probe().mount(&app.upstream).await;
    let token = app.token();
    let ok = json!({"data": {"status": "ok"}});
    assert_eq!(app.post("/health", Some(&token), "").await.1, ok);
    // An unknown kid may make the relay ask again once the refetch interval (5 s) is over.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    app.upstream.reset().await;
    probe().mount(&app.upstream).await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks())
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&app.upstream)
        .await;
    let claims = default_claims(&jwks_host(&app.upstream), &app.audience());
    let unknown = TokenMinter.mint_as(KID_1, Some("unknown-kid"), &claims);
    let refetch = {
        let (client, address) = (app.client.clone(), app.address.clone());
        tokio::spawn(async move {
            client
                .post(format!("{address}/health"))
                .bearer_auth(unknown)
                .send()
                .await
        })
    };
    while !app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path() == JWKS_PATH)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    assert_eq!(app.post("/health", Some(&token), "").await.1, ok);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a known kid waited {:?} for another token's refetch",
        started.elapsed()
    );
    let refetched: Value = refetch.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        refetched["errors"][0]["message"],
        "Authorization failed: kid from JWT header not found in API response"
    );
}

// RULES R20
// 7. Log lines of attacker-chosen size.
#[tokio::test]
async fn caller_supplied_values_are_cut_in_log_lines() {
    let mut app = spawn_app_with(&[("RELAY_LOG", "debug")]).await;
    let host = format!("{}.example", "h".repeat(20_000));
    let token = app.token_with(json!({"jwks_host": host}));
    let response = app
        .client
        .post(format!("{}/health", app.address))
        .bearer_auth(&token)
        .header("X-Request-Id", "r".repeat(5_000))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(id.len() <= 100, "a long request id is replaced: {id}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "authorization error");
    app.terminate();
    let logs = app.log_text();
    assert!(
        logs.contains(&"h".repeat(100)),
        "the host is logged, cut:\n{logs}"
    );
    for line in logs.lines() {
        assert!(line.len() < 2_000, "a line of {} bytes", line.len());
    }
}

// 9. The deadline covers the JWKS fetch, and /health.
async fn slow_jwks(app: &TestApp, delay: Duration) {
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks())
                .set_delay(delay),
        )
        .with_priority(1)
        .mount(&app.upstream)
        .await;
}

// RULES R16
#[tokio::test]
async fn the_deadline_counts_from_the_request_not_from_the_token_check() {
    let app = spawn_app_with(&[
        ("RELAY_REQUEST_TIMEOUT_SECS", "2"),
        ("SPYCLOUD_TIMEOUT_SECS", "5"),
    ])
    .await;
    slow_jwks(&app, Duration::from_millis(1500)).await;
    let slow = ResponseTemplate::new(200)
        .set_body_json(json!({"cursor": "", "results": [sample::breach("alice@example.com")]}))
        .set_delay(Duration::from_millis(1500));
    Mock::given(method("GET"))
        .and(path_regex("^/breach/data/emails/"))
        .respond_with(slow)
        .mount(&app.upstream)
        .await;
    app.mount_catalogs(sample::catalogs()).await;
    let started = Instant::now();
    let body = app
        .observe(json!([{"type": "email", "value": "alice@example.com"}]))
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2700),
        "answered after {took:?}"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "SpyCloud did not answer everything within the relay's 2 s deadline.",
        "{body}"
    );
}

#[tokio::test]
async fn health_ends_within_the_deadline() {
    let app = spawn_app_with(&[
        ("RELAY_REQUEST_TIMEOUT_SECS", "2"),
        ("SPYCLOUD_TIMEOUT_SECS", "5"),
    ])
    .await;
    slow_jwks(&app, Duration::from_millis(1500)).await;
    Mock::given(method("GET"))
        .and(path_regex("^/watchlist/"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)))
        .mount(&app.upstream)
        .await;
    let started = Instant::now();
    let (_, body) = app.post("/health", Some(&app.token()), "").await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2700),
        "answered after {took:?}"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "SpyCloud did not answer everything within the relay's 2 s deadline.",
        "{body}"
    );
}

// 10. Stopping.
/// A relay with a request in flight that SpyCloud answers only after 10 s.
async fn app_with_a_stuck_request(grace_secs: &str) -> (TestApp, tokio::task::JoinHandle<()>) {
    let app = spawn_app_with(&[
        ("RELAY_SHUTDOWN_GRACE_SECS", grace_secs),
        ("SPYCLOUD_TIMEOUT_SECS", "30"),
        ("RELAY_LOG", "info"),
    ])
    .await;
    Mock::given(method("GET"))
        .and(path_regex("^/breach/data/emails/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "results": []}))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&app.upstream)
        .await;
    let request = app
        .client
        .post(format!("{}/observe/observables", app.address))
        .bearer_auth(app.token())
        .body(alice())
        .send();
    let in_flight = tokio::spawn(async move {
        let _ = request.await;
    });
    while !app
        .upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path().starts_with("/breach/data/emails/"))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (app, in_flight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    let (mut app, in_flight) = app_with_a_stuck_request("30").await;
    app.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::task::block_in_place(|| app.wait_for_exit(Duration::ZERO)).is_none(),
        "the first signal lets the request finish"
    );
    app.signal("INT");
    let status = tokio::task::block_in_place(|| app.wait_for_exit(Duration::from_secs(3)))
        .expect("the second signal stops the relay at once");
    assert!(!status.success(), "a request was cut off: {status}");
    assert!(
        app.log_shows(
            "a second signal came: stopping with 1 request(s) in flight cut off",
            Duration::from_secs(2)
        ),
        "{}",
        app.log_text()
    );
    in_flight.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_off_at_the_end_of_the_grace_fail_the_exit_status() {
    let (mut app, in_flight) = app_with_a_stuck_request("1").await;
    app.signal("TERM");
    let status = tokio::task::block_in_place(|| app.wait_for_exit(Duration::from_secs(5)))
        .expect("the relay stops at the end of the grace");
    assert!(!status.success(), "a request was cut off: {status}");
    assert!(
        app.log_shows(
            "the grace period ended: stopping with 1 request(s) in flight cut off",
            Duration::from_secs(2)
        ),
        "{}",
        app.log_text()
    );
    in_flight.abort();
}

// 11. `lookup` with a stdout that closes.
#[tokio::test]
async fn lookup_exits_quietly_when_its_stdout_closes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"cursor": "", "results": []})),
        )
        .mount(&server)
        .await;
    let uri = server.uri();
    let outcomes = tokio::task::spawn_blocking(move || {
        let command = || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"));
            command
                .args(["lookup", "alice@example.com"])
                .env_clear()
                .env("SPYCLOUD_API_URL", &uri)
                .env("SPYCLOUD_API_KEY", "cli-key")
                .env("RELAY_LOG", "warn")
                .stderr(Stdio::piped());
            command
        };
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let to_full = command().stdout(full).output().unwrap();
        let mut closed = command().stdout(Stdio::piped()).spawn().unwrap();
        drop(closed.stdout.take());
        let to_closed = closed.wait_with_output().unwrap();
        [to_full, to_closed]
    })
    .await
    .unwrap();
    for output in outcomes {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

// 3. Memory given back after a large answer.
fn resident_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn memory_is_given_back_after_a_large_answer() {
    let app = spawn_app_with(&[]).await;
    mount_alice(&app).await;
    let big = "big@example.com";
    let pages: Vec<Value> = (0..20)
        .map(|page| {
            Value::Array(
                (0..1000)
                    .map(|n| {
                        let mut record = sample::breach(big);
                        record["document_id"] = json!(format!("doc-{page}-{n}"));
                        record["source_id"] = json!(2976);
                        record["target_url"] =
                            json!(format!("https://site-{n}.example/{}", "p".repeat(4000)));
                        record
                    })
                    .collect(),
            )
        })
        .collect();
    app.mount_email(big, pages).await;
    // Warm: the relay's pools, caches and buffers as after any request.
    app.observe(serde_json::from_str(&alice()).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_kib(app.pid(), "VmRSS:");

    let body = app.observe(json!([{"type": "email", "value": big}])).await;
    assert_eq!(
        body["data"]["sightings"]["count"], 20,
        "cut to the token's limit"
    );
    let peak = resident_kib(app.pid(), "VmHWM:");
    assert!(
        peak > before + 4 * 1024,
        "the answer should cost memory while it is made: {before} -> {peak} KiB"
    );
    // Idle: nothing else runs in the relay that could make its allocator tidy up. Allow a few
    // seconds on a loaded machine; glibc's allocator keeps the peak however long it waits.
    let kept = |rss: u64| rss >= before + (peak - before) / 3;
    let mut after = resident_kib(app.pid(), "VmRSS:");
    for _ in 0..25 {
        if !kept(after) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = resident_kib(app.pid(), "VmRSS:");
    }
    eprintln!("RSS before {before} KiB, peak {peak} KiB, after {after} KiB");
    assert!(
        !kept(after),
        "memory kept after the answer: before {before} KiB, peak {peak} KiB, after {after} KiB"
    );
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// RULES R14
#[tokio::test]
async fn exp_and_nbf_that_are_not_numbers_on_the_right_side_of_now_refuse_the_token() {
    let app = spawn_app().await;
    mount_alice(&app).await;
    let observe = |claims: Value| {
        let token = app.token_with(claims);
        let app = &app;
        async move {
            let (status, answer) = app
                .post("/observe/observables", Some(&token), &alice())
                .await;
            assert_eq!(status, 200, "{answer}");
            answer
        }
    };
    let reason = |answer: &Value| {
        answer["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let now = unix_now();
    let odd = [
        json!([now + 600]),
        json!({"at": now + 600}),
        json!("9999999999"),
        json!(null),
        json!(true),
    ];
    for exp in odd.iter().cloned().chain([json!(now - 10)]) {
        let answer = observe(json!({"exp": exp})).await;
        assert_eq!(
            reason(&answer),
            "Authorization failed: Token has expired",
            "exp {exp}: {answer}"
        );
    }
    for nbf in odd.iter().cloned().chain([json!(now + 600)]) {
        let answer = observe(json!({"nbf": nbf})).await;
        assert_eq!(
            reason(&answer),
            "Authorization failed: Token is not yet valid",
            "nbf {nbf}: {answer}"
        );
        assert_eq!(answer["errors"][0]["code"], "authorization error");
    }
    // The contract's order: an expired token is expired before it is not yet valid.
    let answer = observe(json!({"exp": now - 10, "nbf": now + 600})).await;
    assert_eq!(reason(&answer), "Authorization failed: Token has expired");
    // An aud that is not this relay's comes first.
    let answer = observe(json!({"aud": "https://other", "exp": [1], "nbf": [1]})).await;
    assert_eq!(
        reason(&answer),
        "Authorization failed: Wrong configuration-token-audience"
    );
    // Numbers on the right side of now pass.
    let answer = observe(json!({"exp": now + 600, "nbf": now - 10})).await;
    assert!(answer["errors"].is_null(), "{answer}");
    assert!(
        answer["data"]["sightings"]["count"].as_u64() > Some(0),
        "{answer}"
    );
}

// 11. Many JWKS hosts: an allow-list with `*` names as many as an attacker likes.
/// What a host of a [`JwksFarm`] does with a request.
#[derive(Clone, Copy)]
enum Host {
    /// Answers the fixture JWKS after a moment.
    Serves,
    /// Answers HTTP 500.
    Fails,
    /// Accepts the connection and never answers.
    Tarpit,
}

/// JWKS hosts on distinct loopback addresses (`127.0.x.y`) sharing one port, so that a
/// wildcard allow-list `127.0.*.*:<port>` admits them all; counts what the relay asks.
struct JwksFarm {
    port: u16,
    hosts: Vec<std::net::Ipv4Addr>,
    stats: std::sync::Arc<FarmStats>,
}

#[derive(Default)]
struct FarmStats {
    /// Requests read, by host.
    requests: std::sync::Mutex<std::collections::HashMap<std::net::Ipv4Addr, usize>>,
    /// Requests being answered (or held) now, and the most at once.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

impl JwksFarm {
    /// `count` hosts, the `i`-th doing `behaviour(i)`.
    async fn start(count: usize, behaviour: impl Fn(usize) -> Host) -> Self {
        // Enough descriptors for the listeners and their connections.
        rlimit::increase_nofile_limit(1 << 16).unwrap();
        let address =
            |i: usize| std::net::Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
        'port: loop {
            let first = tokio::net::TcpListener::bind((address(0), 0))
                .await
                .unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![first];
            for i in 1..count {
                match tokio::net::TcpListener::bind((address(i), port)).await {
                    Ok(listener) => listeners.push(listener),
                    Err(_) => continue 'port,
                }
            }
            let stats = std::sync::Arc::new(FarmStats::default());
            let body = jwks().to_string();
            for (i, listener) in listeners.into_iter().enumerate() {
                let (what, stats, body) = (behaviour(i), stats.clone(), body.clone());
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let (stats, body) = (stats.clone(), body.clone());
                        tokio::spawn(farm_answer(stream, what, stats, body));
                    }
                });
            }
            return Self {
                port,
                hosts: (0..count).map(address).collect(),
                stats,
            };
        }
    }

    /// The allow-list admitting every host of the farm.
    fn allow_list(&self) -> String {
        format!("127.0.*.*:{}", self.port)
    }

    /// The `jwks_host` of the `i`-th host.
    fn host(&self, i: usize) -> String {
        format!("{}:{}", self.hosts[i], self.port)
    }

    /// Requests the `i`-th host has read.
    fn requests(&self, i: usize) -> usize {
        let requests = self.stats.requests.lock().unwrap();
        requests.get(&self.hosts[i]).copied().unwrap_or(0)
    }

    fn most_in_flight(&self) -> usize {
        self.stats
            .most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn in_flight(&self) -> usize {
        self.stats
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn farm_answer(
    mut stream: TcpStream,
    what: Host,
    stats: std::sync::Arc<FarmStats>,
    body: String,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let std::net::IpAddr::V4(host) = stream.local_addr().unwrap().ip() else {
        return;
    };
    *stats.requests.lock().unwrap().entry(host).or_default() += 1;
    let now = stats.in_flight.fetch_add(1, SeqCst) + 1;
    stats.most_in_flight.fetch_max(now, SeqCst);
    let answer = match what {
        Host::Serves => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        Host::Fails => {
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .to_owned()
        }
        Host::Tarpit => {
            // Held until the relay gives up.
            let _ = stream.read(&mut buffer).await;
            stats.in_flight.fetch_sub(1, SeqCst);
            return;
        }
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    stats.in_flight.fetch_sub(1, SeqCst);
}

/// A token for `app` whose keys are at `jwks_host`, signed (slow in a debug build) or not.
fn token_at(app: &TestApp, jwks_host: &str) -> String {
    TokenMinter.mint(KID_1, &default_claims(jwks_host, &app.audience()))
}

/// A token naming `jwks_host` with a made-up signature: enough to make the relay fetch the JWKS,
/// and cheap to make by the thousand.
fn unsigned_token_at(app: &TestApp, jwks_host: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        part(json!({"alg": "RS256", "kid": KID_1})),
        part(default_claims(jwks_host, &app.audience()))
    )
}

/// Asks `/health` once with a token naming each of `hosts`, `at_once` requests at a time.
async fn ask_each(app: &TestApp, farm: &JwksFarm, hosts: std::ops::Range<usize>, at_once: usize) {
    use futures::StreamExt;
    futures::stream::iter(hosts)
        .map(|i| {
            let (client, url, token) = (
                app.client.clone(),
                format!("{}/health", app.address),
                unsigned_token_at(app, &farm.host(i)),
            );
            async move {
                let _ = client.post(url).bearer_auth(token).send().await;
            }
        })
        .buffer_unordered(at_once)
        .collect::<()>()
        .await;
}

/// A relay whose allow-list admits every host of `farm`, whose requests end within 1 s.
async fn app_for(farm: &JwksFarm) -> TestApp {
    spawn_app_with(&[
        ("RELAY_JWKS_HOSTS", &farm.allow_list()),
        ("RELAY_REQUEST_TIMEOUT_SECS", "1"),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_jwks_hosts_asked_twice_are_each_fetched_at_most_once_and_a_few_at_a_time() {
    let farm = JwksFarm::start(1_200, |_| Host::Serves).await;
    let app = app_for(&farm).await;
    for _ in 0..2 {
        ask_each(&app, &farm, 0..1_200, 400).await;
    }
    let fetched: Vec<usize> = (0..1_200).map(|i| farm.requests(i)).collect();
    let twice = fetched.iter().filter(|&&n| n > 1).count();
    assert_eq!(
        twice, 0,
        "{twice} hosts were fetched more than once within 5 s"
    );
    assert!(fetched.contains(&1), "no host was fetched at all");
    assert!(
        farm.most_in_flight() <= 32,
        "{} JWKS fetches at once",
        farm.most_in_flight()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_jwks_host_is_asked_once_per_5_s_however_many_hosts_are_asked_meanwhile() {
    let farm = JwksFarm::start(1_200, |i| if i == 0 { Host::Fails } else { Host::Serves }).await;
    let app = app_for(&farm).await;
    let failing = unsigned_token_at(&app, &farm.host(0));
    assert_eq!(
        app.post("/health", Some(&failing), "").await.1["errors"][0]["message"],
        "Authorization failed: Wrong jwks_host in JWT payload. Make sure domain follows the visibility.<region>.cisco.com structure"
    );
    ask_each(&app, &farm, 1..1_200, 400).await;
    for _ in 0..3 {
        app.post("/health", Some(&failing), "").await;
    }
    assert_eq!(farm.requests(0), 1, "the failure is remembered for 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarpit_jwks_hosts_hold_neither_descriptors_nor_a_token_whose_keys_are_cached() {
    const TARPITS: usize = 300;
    let farm = JwksFarm::start(TARPITS + 1, |i| {
        if i == 0 { Host::Serves } else { Host::Tarpit }
    })
    .await;
    let app = spawn_app_adjusted(&[("RELAY_JWKS_HOSTS", &farm.allow_list())], |command| {
        limit_open_files(command, 512)
    })
    .await;
    Mock::given(method("GET"))
        .and(path_regex("^/watchlist/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .mount(&app.upstream)
        .await;
    let valid = token_at(&app, &farm.host(0));
    let ok = json!({"data": {"status": "ok"}});
    assert_eq!(app.post("/health", Some(&valid), "").await.1, ok);

    let tarpitted: Vec<_> = (1..=TARPITS)
        .map(|i| {
            let (client, url, token) = (
                reqwest::Client::new(),
                format!("{}/health", app.address),
                unsigned_token_at(&app, &farm.host(i)),
            );
            tokio::spawn(async move { client.post(url).bearer_auth(token).send().await })
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(5);
    while farm.in_flight() < 32 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the relay time to take every tarpit it would.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        app.post("/health", Some(&valid), ""),
    )
    .await;
    let held = farm.in_flight();
    for request in tarpitted {
        request.abort();
    }
    assert_eq!(answer.expect("a cached token is answered at once").1, ok);
    assert!(held <= 32, "{held} tarpits held at once");
}
