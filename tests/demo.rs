//! The `demo` subcommand, black-box: the real binary on 127.0.0.1:0, driven with the token and
//! the observables it prints, as a person following its instructions would.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// The sample observables, and how many records each has in `demo/sample.json`.
const SAMPLE: [(&str, &str, usize); 7] = [
    ("email", "alex.rivera@example.com", 5),
    ("email", "casey.nguyen@example.net", 0),
    ("email", "jordan.lee@example.org", 2),
    ("email", "sam.taylor@acme.test", 1),
    ("domain", "acme.test", 3),
    ("ip", "203.0.113.77", 1),
    ("user", "arivera", 1),
];

/// Kills the demo when the test ends, however it ends.
struct Demo {
    child: Child,
    base: String,
    token: String,
    printed: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `spycloud-relay demo --listen 127.0.0.1:0` and reads what it prints up to the
/// `listening on` line.
fn start_demo() -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("RELAY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut demo = Demo {
        child,
        base: String::new(),
        token: String::new(),
        printed: Vec::new(),
    };
    loop {
        // A guard against a hung child, not a timing assertion.
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the demo stopped printing: {:#?}", demo.printed));
        if let Some(token) = line.strip_prefix("Authorization: Bearer ") {
            demo.token = token.trim().to_owned();
        }
        if let Some(address) = line.strip_prefix("spycloud-relay listening on ") {
            demo.base = address.trim().to_owned();
            demo.printed.push(line);
            break;
        }
        demo.printed.push(line);
    }
    assert!(!demo.token.is_empty(), "no token in {:#?}", demo.printed);
    demo
}

async fn post(demo: &Demo, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().post(format!("{}{path}", demo.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the demo answers");
    assert_eq!(response.status(), 200, "{path}");
    let answer = response.json().await.expect("a JSON answer");
    common::ctim::assert_valid(&answer);
    answer
}

fn sample_observables() -> Value {
    SAMPLE
        .iter()
        .map(|(kind, value, _)| json!({"type": kind, "value": value}))
        .collect()
}

#[tokio::test]
async fn the_demo_prints_its_observables_and_answers_with_the_token_it_prints() {
    let demo = start_demo();
    assert!(demo.base.starts_with("http://127.0.0.1:"), "{}", demo.base);
    for (kind, value, _) in SAMPLE {
        assert!(
            demo.printed
                .iter()
                .any(|line| line.split_whitespace().eq([kind, value])),
            "{kind} {value} is listed"
        );
    }
    for path in ["/observe/observables", "/health", "/version"] {
        let curl = format!("curl -s -X POST {}{path}", demo.base);
        assert!(
            demo.printed.iter().any(|line| line.contains(&curl)),
            "a curl line for {path}"
        );
    }

    let token = Some(demo.token.as_str());
    let answer = post(
        &demo,
        "/observe/observables",
        token,
        Some(sample_observables()),
    )
    .await;
    let data = &answer["data"];
    let sightings = data["sightings"]["docs"].as_array().expect("sightings");
    let records: usize = SAMPLE.iter().map(|(_, _, n)| n).sum();
    assert_eq!(data["sightings"]["count"], records);
    for (kind, value, expected) in SAMPLE {
        let found = sightings
            .iter()
            .filter(|s| s["observables"][0] == json!({"type": kind, "value": value}))
            .count();
        // Alex's records are spread over three pages, acme.test's over two: all are there.
        assert_eq!(found, expected, "sightings of {value}");
        // Beyond emails, each sighting names the employee's email too.
        if kind != "email" && expected > 0 {
            let first = sightings
                .iter()
                .find(|s| s["observables"][0]["value"] == value)
                .unwrap();
            assert_eq!(first["observables"][1]["type"], "email", "{value}");
        }
    }
    // One indicator per catalog in the whole answer, however many observables share it (the
    // source_id without a catalog gives none): 5 breaches, each once.
    let indicators = data["indicators"]["docs"].as_array().expect("indicators");
    let ids: std::collections::HashSet<_> = indicators.iter().map(|i| &i["id"]).collect();
    assert_eq!(data["indicators"]["count"], 5);
    assert_eq!((indicators.len(), ids.len()), (5, 5));
    for relationship in data["relationships"]["docs"]
        .as_array()
        .expect("relationships")
    {
        assert!(ids.contains(&relationship["target_ref"]), "{relationship}");
    }
    assert_eq!(data["relationships"]["count"], records - 1);
    assert_eq!(
        answer["errors"],
        json!([{"type": "warning", "code": "not found", "message": "SpyCloud did not return results for 99001"}])
    );

    let severity = |document_id: &str| {
        sightings
            .iter()
            .find(|s| s["external_ids"][0] == document_id)
            .map(|s| s["severity"].clone())
            .unwrap_or_else(|| panic!("a sighting of {document_id}"))
    };
    // The infostealer records, the IP's among them, name the infected device as a second
    // target; other records have the email target alone.
    let devices: Vec<_> = sightings
        .iter()
        .filter(|s| s["targets"].as_array().unwrap().len() == 2)
        .map(|s| {
            (
                s["observables"][0]["value"].clone(),
                s["targets"][1].clone(),
            )
        })
        .collect();
    for (value, device) in &devices {
        assert_eq!(device["type"], "endpoint", "{value}");
        assert_eq!(device["observables"][0]["type"], "hostname", "{value}");
        assert!(device["os"].is_string(), "{value}");
    }
    let with_device = |value: &str| devices.iter().any(|(v, _)| v == value);
    assert!(with_device("203.0.113.77"));
    assert!(with_device("alex.rivera@example.com"));
    assert!(with_device("sam.taylor@acme.test"));
    assert!(!with_device("jordan.lee@example.org"));

    // Severity 25, an infostealer: High; 20 in a combo list: Medium; 2: Low; 30: High.
    assert_eq!(severity("0d1e8b2a-5c4f-4a6e-9b1d-3f2a7c8e9d01"), "High");
    assert_eq!(severity("0d1e8b2a-5c4f-4a6e-9b1d-3f2a7c8e9d05"), "Medium");
    assert_eq!(severity("7c2a9e41-1b3d-4f5e-8a6b-demo00000011"), "Low");
    assert_eq!(severity("a4b3c2d1-0e9f-4a8b-9c7d-demo00000021"), "High");

    assert_eq!(
        post(&demo, "/health", token, None).await,
        json!({"data": {"status": "ok"}})
    );
    assert_eq!(
        post(&demo, "/version", None, None).await,
        json!({"version": env!("CARGO_PKG_VERSION")})
    );
}

#[tokio::test]
async fn the_demo_checks_tokens_for_real() {
    let demo = start_demo();
    let missing = post(&demo, "/health", None, None).await;
    assert_eq!(
        missing["errors"][0]["message"],
        "Authorization failed: Authorization header is missing"
    );
    // The same token with its signature cut off does not verify.
    let (signed, _) = demo.token.rsplit_once('.').expect("a JWT");
    let forged = format!("{signed}.AAAA");
    let refused = post(
        &demo,
        "/observe/observables",
        Some(&forged),
        Some(sample_observables()),
    )
    .await;
    assert_eq!(refused["errors"][0]["code"], "authorization error");
    assert!(refused.get("data").is_none());

    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks", demo.base))
        .await
        .expect("the demo serves its JWKS")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks["keys"][0]["kid"], "spycloud-relay-demo");
}

#[tokio::test]
async fn the_demo_shows_every_tile_of_the_dashboard_for_every_period() {
    let demo = start_demo();
    for path in ["/tiles", "/tiles/tile", "/tiles/tile-data"] {
        let curl = format!("curl -s -X POST {}{path} ", demo.base);
        assert!(
            demo.printed.iter().any(|line| line.contains(&curl)),
            "a curl line for {path}"
        );
    }
    let token = Some(demo.token.as_str());
    let tiles = post(&demo, "/tiles", token, None).await;
    let ids: Vec<&str> = tiles["data"]
        .as_array()
        .expect("definitions")
        .iter()
        .map(|tile| tile["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids.len(), 4);
    for period in [
        "last_24_hours",
        "last_7_days",
        "last_30_days",
        "last_90_days",
    ] {
        let mut answers = Vec::new();
        for id in &ids {
            let body = json!({"tile_id": id, "period": period});
            let answer = post(&demo, "/tiles/tile-data", token, Some(body)).await;
            assert!(answer.get("errors").is_none(), "{id} {period}: {answer}");
            answers.push(answer["data"]["data"].clone());
        }
        let records = answers[0][1]["value"].as_u64().expect("a record count");
        assert!(records > 0, "records in {period}");
        for label in [
            "Exposed employees",
            "Plaintext passwords",
            "Infected devices",
        ] {
            let metric = answers[0]
                .as_array()
                .expect("metrics")
                .iter()
                .find(|m| m["label"] == label)
                .expect(label);
            assert!(metric["value"].as_u64() > Some(0), "{label} in {period}");
        }
        let by_day: u64 = answers[1]
            .as_array()
            .expect("days")
            .iter()
            .map(|day| day["value"].as_u64().expect("a count"))
            .sum();
        assert_eq!(by_day, records, "{period}");
        assert!(!answers[2].as_array().expect("breaches").is_empty());
        assert!(
            answers[3][2]
                .as_str()
                .expect("a row")
                .starts_with("| alex.rivera@example.com |"),
            "{period}: {}",
            answers[3]
        );
    }
}
