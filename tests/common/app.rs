//! The real relay binary on a loopback port, against one wiremock server that plays both
//! SpyCloud and the SecureX JWKS host. Set `TEST_LOG=1` to see the relay's logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::jwt::{KID_1, TokenMinter, default_claims, jwks_host, mount_jwks};

/// A running relay and its fake upstreams; the relay process is killed on drop.
pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the relay.
    pub address: String,
    /// SpyCloud and the JWKS host (shared by the replicas of [`TestApp::spawn_replica`]).
    pub upstream: Arc<MockServer>,
    /// A client for calling the relay.
    pub client: reqwest::Client,
    /// Everything the relay logged so far (stderr).
    pub logs: Arc<Mutex<String>>,
    /// The thread that copies the relay's stderr into `logs`: it ends when the relay exits.
    log_reader: Option<std::thread::JoinHandle<()>>,
    child: ChildGuard,
}

/// Kills the relay process when dropped, also when a test fails half-way through setup.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the relay binary on 127.0.0.1:0 with `extra_env` on top of test defaults.
pub async fn spawn_app_with(extra_env: &[(&str, &str)]) -> TestApp {
    spawn_app_adjusted(extra_env, |_| {}).await
}

/// [`spawn_app_with`], with `adjust` applied to the command before it starts.
pub async fn spawn_app_adjusted(
    extra_env: &[(&str, &str)],
    adjust: impl FnOnce(&mut Command),
) -> TestApp {
    let upstream = MockServer::start().await;
    mount_jwks(&upstream).await;
    spawn_relay(Arc::new(upstream), extra_env, adjust).await
}

/// Starts the relay binary against `upstream` (its JWKS mounted), `adjust` applied to the
/// command before it starts.
async fn spawn_relay(
    upstream: Arc<MockServer>,
    extra_env: &[(&str, &str)],
    adjust: impl FnOnce(&mut Command),
) -> TestApp {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"));
    command
        .arg("serve")
        .env_clear()
        .env("RELAY_LISTEN", "127.0.0.1:0")
        .env("SPYCLOUD_API_URL", upstream.uri())
        .env("SPYCLOUD_PORTAL_URL", "https://portal.spycloud.test")
        .env("RELAY_JWKS_HOSTS", jwks_host(&upstream))
        .env("RELAY_JWKS_SCHEME", "http")
        .env("SPYCLOUD_TIMEOUT_SECS", "2")
        .env(
            "RELAY_LOG",
            if std::env::var_os("TEST_LOG").is_some() {
                "debug"
            } else {
                "warn"
            },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in extra_env {
        command.env(name, value);
    }
    adjust(&mut command);
    let mut child = ChildGuard(command.spawn().expect("the relay binary starts"));
    let logs = Arc::new(Mutex::new(String::new()));
    let stderr = child.0.stderr.take().expect("piped stderr");
    let sink = logs.clone();
    let log_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            let mut logs = sink.lock().expect("log buffer");
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let stdout = child.0.stdout.take().expect("piped stdout");
    let address = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .expect("the relay prints its address")
            .expect("utf-8");
        let address = line.rsplit(' ').next().expect("an address").to_owned();
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        address
    })
    .await
    .expect("reader thread");
    assert!(
        address.starts_with("http://127.0.0.1:") || address.starts_with("https://127.0.0.1:"),
        "unexpected address line: {address}"
    );
    TestApp {
        address,
        upstream,
        client: reqwest::Client::new(),
        logs,
        log_reader: Some(log_reader),
        child,
    }
}

/// Starts the relay with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    /// Another relay process against the same upstream, with `extra_env` on top of the test
    /// defaults: a second replica.
    pub async fn spawn_replica(&self, extra_env: &[(&str, &str)]) -> TestApp {
        spawn_relay(self.upstream.clone(), extra_env, |_| {}).await
    }

    /// Sends SIGTERM and waits for the relay to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.0.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = self.child.0.wait().expect("the relay exits");
        // Every line the relay wrote before it exited is in `logs` once its reader is done.
        if let Some(reader) = self.log_reader.take() {
            let _ = reader.join();
        }
        status
    }

    /// Sends SIGTERM (or `signal`) without waiting.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.0.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// The relay's exit status, if it exits within `within`.
    pub fn wait_for_exit(&mut self, within: std::time::Duration) -> Option<ExitStatus> {
        let until = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Whether the relay's log shows `needle` within `within` (the log is read by a thread of
    /// its own, a moment behind the relay).
    pub fn log_shows(&self, needle: &str, within: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + within;
        while !self.log_text().contains(needle) {
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// `host:port` of the relay.
    pub fn socket_address(&self) -> std::net::SocketAddr {
        self.address
            .trim_start_matches("http://")
            .parse()
            .expect("an IP:port")
    }

    /// Sends SIGHUP (the relay reloads its TLS certificate).
    pub fn hang_up(&self) {
        self.signal("HUP");
    }

    /// Waits (20 s at most) until the relay's log holds `text`.
    pub async fn wait_for_log(&self, text: &str) {
        for _ in 0..200 {
            if self.log_text().contains(text) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the relay never logged {text:?}: {}", self.log_text());
    }

    /// The relay's log so far.
    pub fn log_text(&self) -> String {
        self.logs.lock().expect("log buffer").clone()
    }

    /// The audience the relay expects by default: its own URL root.
    pub fn audience(&self) -> String {
        self.address.clone()
    }

    /// A valid token for this relay, with `changes` merged into the default claims.
    pub fn token_with(&self, changes: Value) -> String {
        let mut claims = default_claims(&jwks_host(&self.upstream), &self.audience());
        for (name, value) in changes.as_object().expect("claims object") {
            claims[name] = value.clone();
        }
        TokenMinter.mint(KID_1, &claims)
    }

    /// A valid token for this relay.
    pub fn token(&self) -> String {
        self.token_with(json!({}))
    }

    /// POSTs `body` to `route` with `token`; returns status and JSON body.
    pub async fn post(&self, route: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{route}", self.address))
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the relay answers");
        let status = response.status().as_u16();
        let body = response.json().await.expect("a JSON body");
        super::ctim::assert_valid(&body);
        (status, body)
    }

    /// POSTs observables to `/observe/observables` with a valid token.
    pub async fn observe(&self, observables: Value) -> Value {
        let token = self.token();
        let (status, body) = self
            .post(
                "/observe/observables",
                Some(&token),
                &observables.to_string(),
            )
            .await;
        assert_eq!(status, 200);
        body
    }

    /// Serves `pages` (each a `results` list) for `email`, chained by cursors.
    pub async fn mount_email(&self, email: &str, pages: Vec<Value>) {
        self.mount_lookup("emails", email, pages).await;
    }

    /// Serves `pages` (each a `results` list) at `breach/data/<endpoint>/<value>` (the value as
    /// it appears in the request's path), chained by cursors.
    pub async fn mount_lookup(&self, endpoint: &str, value: &str, pages: Vec<Value>) {
        let count = pages.len();
        for (index, results) in pages.into_iter().enumerate() {
            let cursor = if index + 1 < count {
                format!("page-{}", index + 1)
            } else {
                String::new()
            };
            let body = json!({"cursor": cursor, "hits": results.as_array().map_or(0, Vec::len), "results": results});
            let mut mock =
                Mock::given(method("GET")).and(path(format!("/breach/data/{endpoint}/{value}")));
            if index > 0 {
                mock = mock.and(query_param("cursor", format!("page-{index}")));
            }
            mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
                .with_priority(if index > 0 { 1 } else { 5 })
                .mount(&self.upstream)
                .await;
        }
    }

    /// Answers every catalog request with those of `catalogs` whose ids were asked for.
    pub async fn mount_catalogs(&self, catalogs: Vec<Value>) {
        Mock::given(method("GET"))
            .and(wiremock::matchers::path_regex(r"^/breach/catalog/[0-9,]+$"))
            .respond_with(move |request: &wiremock::Request| {
                let ids: Vec<&str> = request
                    .url
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect();
                let results: Vec<&Value> = catalogs
                    .iter()
                    .filter(|c| ids.contains(&c["id"].to_string().as_str()))
                    .collect();
                ResponseTemplate::new(200)
                    .set_body_json(json!({"cursor": "", "hits": results.len(), "results": results}))
            })
            .mount(&self.upstream)
            .await;
    }

    /// Answers `status` with `body` to every request under `path_prefix`.
    pub async fn mount_status(&self, path_prefix: &str, status: u16, body: Value) {
        Mock::given(wiremock::matchers::path_regex(format!("^{path_prefix}")))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&self.upstream)
            .await;
    }
}

/// A relay whose SpyCloud knows Alice's four records (an infostealer, a breach, a combo list,
/// one whose catalog is missing) and the catalogs.
pub async fn app_with_alice() -> TestApp {
    let app = spawn_app().await;
    let alice = "alice@example.com";
    app.mount_email(
        alice,
        vec![
            json!([sample::breach(alice), sample::infostealer(alice)]),
            json!([sample::combo(alice)]),
            json!([sample::orphan(alice)]),
        ],
    )
    .await;
    app.mount_catalogs(sample::catalogs()).await;
    app
}

/// A relay whose SpyCloud knows the domain `example.com`, the IP addresses `192.0.2.1` and
/// `2001:db8::1`, and the username `alice77`: each with a record of an employee's email and
/// one without an email.
pub async fn app_with_every_type() -> TestApp {
    let app = spawn_app().await;
    app.mount_every_type().await;
    app.mount_catalogs(sample::catalogs()).await;
    app
}

impl TestApp {
    /// Mounts the records of `example.com`, `192.0.2.1`, `2001:db8::1` and `alice77`: each an
    /// employee's breach and infostealer records, then one record without an email.
    pub async fn mount_every_type(&self) {
        let no_email = json!({
            "document_id": "doc-no-email", "source_id": 2976, "username": "alice77", "severity": 3,
            "spycloud_publish_date": "2016-05-05T00:00:00Z"
        });
        for (endpoint, value) in [
            ("domains", "example.com"),
            ("ips", "192.0.2.1"),
            ("ips", "2001%3Adb8%3A%3A1"),
            ("usernames", "alice77"),
        ] {
            let alice = "alice@example.com";
            self.mount_lookup(
                endpoint,
                value,
                vec![
                    json!([sample::breach(alice), sample::infostealer(alice)]),
                    json!([no_email.clone()]),
                ],
            )
            .await;
        }
    }
}

/// SpyCloud-like sample data for the scenarios.
pub mod sample {
    use serde_json::{Value, json};

    /// An infostealer record (machine details, no catalog site).
    pub fn infostealer(email: &str) -> Value {
        json!({
            "email": email, "email_domain": "example.com", "email_username": "alice", "domain": "example.com",
            "document_id": "doc-infostealer-1", "source_id": 17494, "infected_machine_id": "machine-42",
            "infected_path": "C:\\Users\\alice\\AppData\\Local\\Temp\\stealer.exe", "user_hostname": "ALICE-PC",
            "user_os": "Windows 10 Pro", "ip_addresses": ["198.51.100.7"], "target_url": "https://login.example.com",
            "user_browser": "Chrome", "password": "Sup3rSecret!", "password_plaintext": "Sup3rSecret!",
            "password_type": "plaintext", "severity": 25, "sighting": 2,
            "spycloud_publish_date": "2021-06-01T00:00:00Z"
        })
    }

    /// A plain breach record of a described site.
    pub fn breach(email: &str) -> Value {
        json!({
            "email": email, "document_id": "doc-breach-1", "source_id": 2976, "username": "alice77",
            "password": "5f4dcc3b5aa765d61d8327deb882cf99", "password_type": "md5", "salt": null,
            "severity": 2, "spycloud_publish_date": "2017-01-31T00:00:00Z", "email_domain": "example.com",
            "domain": "example.com", "email_username": "alice"
        })
    }

    /// A combo-list record with a high score (the catalog makes it Medium).
    pub fn combo(email: &str) -> Value {
        json!({
            "email": email, "document_id": "doc-combo-1", "source_id": 16579, "password": "hunter2",
            "severity": 30, "sighting": 0, "spycloud_publish_date": "2019-02-06T00:00:00Z"
        })
    }

    /// A record whose catalog SpyCloud does not know.
    pub fn orphan(email: &str) -> Value {
        json!({
            "email": email, "document_id": "doc-orphan-1", "source_id": 99999, "severity": 5,
            "spycloud_publish_date": "2020-03-03T03:03:03Z"
        })
    }

    /// The catalogs of the records above (99999 has none).
    pub fn catalogs() -> Vec<Value> {
        vec![
            json!({
                "id": 17494, "uuid": "1293a093-5b3b-42c5-aa90-d5784ea8374f", "title": "Russian Password Stealer",
                "description": "An information stealer targeting Windows users.", "site": "n/a",
                "site_description": "No site: malware.", "confidence": 3, "combo_list_flag": "NO",
                "spycloud_publish_date": "2020-04-02T00:00:00Z",
                "assets": {"username": 10, "target_url": 10, "infected_machine_id": 10, "password": 10}
            }),
            json!({
                "id": 2976, "uuid": "a01f1bcb-bfe3-4684-9bf7-79f3e9ac9c2b", "title": "Cracking Forum",
                "description": "In 2015 a hacker forum's user database was breached.", "site": "crackingforum.com",
                "site_description": "A hacker forum.", "confidence": 2, "combo_list_flag": "NO",
                "spycloud_publish_date": "2017-01-31T00:00:00Z", "assets": {"password": 5, "email": 5}
            }),
            json!({
                "id": 16579, "uuid": "71db3f29-006d-4158-a3f0-8102652fbf57", "title": "Collection #5 Combo List",
                "description": "A large combo list.", "site": "n/a", "site_description": "Combo lists.",
                "confidence": 1, "combo_list_flag": "YES", "spycloud_publish_date": "2019-02-06T00:00:00Z",
                "assets": {"password": 1, "source_file": 1, "email": 1}
            }),
        ]
    }
}
