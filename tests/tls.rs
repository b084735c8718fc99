//! HTTPS served by the real binary with certificates the tests make (rcgen): it answers over
//! TLS and not over plain HTTP, takes the `https://` audience, serves a renewed certificate
//! after SIGHUP (and keeps its pair when the new one is bad), covers the handshake with the
//! header timeout and the connection limit, and refuses to start on a bad pair, naming the file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::app::{TestApp, spawn_app_with};
use serde_json::json;

/// A directory of its own for one test's files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("spycloud-relay-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("written");
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// A client that trusts `cert` and nothing else.
fn trusting(cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).expect("PEM")])
        .build()
        .expect("a client")
}

/// The relay over HTTPS with the pair in `dir` (`cert.pem`, `key.pem`), logging at info.
async fn spawn_tls_app(dir: &Dir, cert: &str, extra: &[(&str, &str)]) -> TestApp {
    let cert_path = dir.path("cert.pem").to_string_lossy().into_owned();
    let key_path = dir.path("key.pem").to_string_lossy().into_owned();
    let mut env = vec![
        ("RELAY_TLS_CERT", cert_path.as_str()),
        ("RELAY_TLS_KEY", key_path.as_str()),
        ("RELAY_LOG", "info"),
    ];
    env.extend_from_slice(extra);
    let mut app = spawn_app_with(&env).await;
    app.client = trusting(cert);
    app
}

/// `/version` through `client`: whether it answered 200.
async fn version_answers(app: &TestApp, client: &reqwest::Client) -> bool {
    client
        .post(format!("{}/version", app.address))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
}

#[tokio::test]
async fn https_answers_plain_http_does_not_and_sighup_serves_a_renewed_certificate() {
    let dir = Dir::new("renewal");
    let (first_cert, first_key) = certificate();
    dir.write("cert.pem", &first_cert);
    dir.write("key.pem", &first_key);
    let app = spawn_tls_app(&dir, &first_cert, &[]).await;
    assert!(
        app.address.starts_with("https://127.0.0.1:"),
        "{}",
        app.address
    );

    // HTTPS answers, and the default audience is https://<Host>: the token minted for the
    // relay's https:// root passes.
    app.mount_status("/watchlist/", 200, json!({"results": []}))
        .await;
    let token = app.token();
    assert!(app.audience().starts_with("https://"));
    let (status, body) = app.post("/health", Some(&token), "").await;
    assert_eq!((status, body), (200, json!({"data": {"status": "ok"}})));

    // TLS 1.2 and 1.3 both.
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let pinned = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(first_cert.as_bytes()).unwrap()])
            .tls_version_min(version)
            .tls_version_max(version)
            .build()
            .unwrap();
        assert!(version_answers(&app, &pinned).await, "{version:?}");
    }

    // Plain HTTP on the same port gets no HTTP answer.
    let plain = app.address.replacen("https://", "http://", 1);
    let refused = reqwest::Client::new()
        .post(format!("{plain}/version"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(refused.is_err(), "plain HTTP answered: {refused:?}");

    // A renewed pair, SIGHUP: new connections get the new certificate.
    let (renewed_cert, renewed_key) = certificate();
    dir.write("cert.pem", &renewed_cert);
    dir.write("key.pem", &renewed_key);
    app.hang_up();
    app.wait_for_log("TLS certificate and key reloaded").await;
    assert!(version_answers(&app, &trusting(&renewed_cert)).await);
    assert!(
        !version_answers(&app, &trusting(&first_cert)).await,
        "the old certificate is no longer served"
    );

    // A bad pair (a key of another certificate), SIGHUP: the renewed pair stays, and the log
    // says why, naming the files.
    let (_, stray_key) = certificate();
    dir.write("key.pem", &stray_key);
    app.hang_up();
    app.wait_for_log("not reloaded").await;
    let logs = app.log_text();
    assert!(logs.contains("does not belong"), "{logs}");
    assert!(logs.contains("key.pem"), "{logs}");
    assert!(version_answers(&app, &trusting(&renewed_cert)).await);
}

#[tokio::test]
async fn the_header_timeout_and_the_connection_limit_cover_the_handshake() {
    use tokio::io::AsyncReadExt;
    let dir = Dir::new("handshake");
    let (cert, key) = certificate();
    dir.write("cert.pem", &cert);
    dir.write("key.pem", &key);
    let app = spawn_tls_app(
        &dir,
        &cert,
        &[
            ("RELAY_HEADER_TIMEOUT_SECS", "3"),
            ("RELAY_MAX_CONNECTIONS", "1"),
        ],
    )
    .await;
    let host = app.address.trim_start_matches("https://").to_owned();
    // A client that connects and never begins its handshake holds the only slot...
    let mut silent = tokio::net::TcpStream::connect(&host).await.unwrap();
    let waiting = app
        .client
        .post(format!("{}/version", app.address))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .unwrap_err();
    assert!(waiting.is_timeout(), "{waiting:?}");
    // ...until the header time is up: the relay closes it...
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut received))
        .await
        .expect("the relay must close a stalled handshake")
        .unwrap();
    assert!(received.is_empty());
    // ...and serves the next client.
    assert!(version_answers(&app, &app.client).await);
}

/// Runs `serve` with `env` until it exits (20 s at most): its exit code and stderr.
fn start_and_fail(env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"));
    command
        .arg("serve")
        .env_clear()
        .env("RELAY_LISTEN", "127.0.0.1:0")
        .env("RELAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the relay binary starts");
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
    panic!("the relay started with {env:?}");
}

#[test]
fn a_missing_unreadable_or_mismatched_pair_stops_the_relay_naming_the_file() {
    let dir = Dir::new("refusal");
    let (cert, key) = certificate();
    let (_, other_key) = certificate();
    let cert_path = dir.write("cert.pem", &cert);
    let key_path = dir.write("key.pem", &key);
    let stray_key = dir.write("stray-key.pem", &other_key);
    let missing = dir.path("missing-cert.pem");
    let not_pem = dir.write("not-a-key.pem", "hello");
    let directory = dir.path("");

    let cases: [(&Path, &Path, &Path, &str); 5] = [
        (&missing, &key_path, &missing, "could not read"),
        (&cert_path, &stray_key, &stray_key, "does not belong"),
        (&cert_path, &not_pem, &not_pem, "no usable PEM private key"),
        (&key_path, &key_path, &key_path, "no usable PEM certificate"),
        (&cert_path, &directory, &directory, "could not read"),
    ];
    for (cert, key, named, why) in cases {
        let (code, stderr) = start_and_fail(&[("RELAY_TLS_CERT", cert), ("RELAY_TLS_KEY", key)]);
        assert_ne!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains(&*named.to_string_lossy()),
            "{named:?} named: {stderr}"
        );
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }

    // Both or neither.
    let (code, stderr) = start_and_fail(&[("RELAY_TLS_CERT", &cert_path)]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

/// `/watchdog` through `client` answers within 10 s.
async fn watchdog_answers(app: &TestApp, client: &reqwest::Client) -> bool {
    client
        .get(format!("{}/watchdog", app.address))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
}

#[tokio::test]
async fn sighup_refuses_a_fifo_or_an_oversized_file_and_keeps_serving_the_old_pair() {
    let dir = Dir::new("hostile-reload");
    let (cert, key) = certificate();
    dir.write("cert.pem", &cert);
    dir.write("key.pem", &key);
    // One event loop: a reload that blocked it would stall every answer.
    let app = spawn_tls_app(&dir, &cert, &[("RELAY_WORKER_THREADS", "1")]).await;
    assert!(watchdog_answers(&app, &app.client).await);

    // The certificate replaced by a FIFO no one writes to: opening it for reading would wait
    // for a writer.
    std::fs::remove_file(dir.path("cert.pem")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(dir.path("cert.pem"))
        .status()
        .expect("mkfifo runs");
    assert!(fifo.success());
    app.hang_up();
    assert!(
        watchdog_answers(&app, &app.client).await,
        "the relay answers"
    );
    app.wait_for_log("not a regular file").await;
    assert!(version_answers(&app, &trusting(&cert)).await);
    let logs = app.log_text();
    assert!(
        logs.contains("cert.pem") && logs.contains("not reloaded"),
        "{logs}"
    );

    // A renewed pair whose certificate file is over 1 MiB (PEM text around the sections is
    // ignored, so it would load): refused, the old pair stays.
    let (renewed_cert, renewed_key) = certificate();
    std::fs::remove_file(dir.path("cert.pem")).unwrap();
    let padding = "#".repeat(1024 * 1024);
    dir.write("cert.pem", &format!("{renewed_cert}{padding}\n"));
    dir.write("key.pem", &renewed_key);
    app.hang_up();
    app.wait_for_log("over 1048576 bytes").await;
    assert!(watchdog_answers(&app, &app.client).await);
    assert!(
        version_answers(&app, &trusting(&cert)).await,
        "the old pair is served"
    );
    assert!(!version_answers(&app, &trusting(&renewed_cert)).await);

    // The same renewed pair within the bound is served.
    dir.write("cert.pem", &renewed_cert);
    app.hang_up();
    app.wait_for_log("TLS certificate and key reloaded").await;
    assert!(version_answers(&app, &trusting(&renewed_cert)).await);
}
