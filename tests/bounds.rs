//! Bounded against hostile upstreams and settings (issue 18, second hardening round): the real
//! binary against wiremock SpyCloud (and a real `redis-server` where Redis is the attacker).
//! Each test pins one bound and fails without it; memory itself is the benchmark's to measure,
//! so these pin the structural bounds (a cap reached gives a clear error, a forged value is a
//! miss).

mod common;

use chrono::{SecondsFormat, Utc};
use common::app::{TestApp, sample, spawn_app_with};
use common::redis::{RedisServer, Sealer};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, Request, ResponseTemplate};

/// SpyCloud's time text for `hours` ago.
fn hours_ago(hours: i64) -> String {
    (Utc::now() - chrono::Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Upstream requests whose path starts with `prefix`.
async fn calls_to(app: &TestApp, prefix: &str) -> Vec<Request> {
    app.upstream
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|request| request.url.path().starts_with(prefix))
        .collect()
}

/// The `severity=` values of `requests`, `None` where there is none.
fn severities(requests: &[Request]) -> Vec<Option<String>> {
    requests
        .iter()
        .map(|request| {
            request
                .url
                .query_pairs()
                .find(|(name, _)| name == "severity")
                .map(|(_, value)| value.into_owned())
        })
        .collect()
}

/// A one-page watchlist of Alice's infostealer record, an hour old.
async fn mount_watchlist(app: &TestApp) {
    let mut record = sample::infostealer("alice@example.com");
    record["spycloud_publish_date"] = json!(hours_ago(1));
    Mock::given(method("GET"))
        .and(path("/breach/data/watchlist"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "hits": 1, "results": [record]})),
        )
        .mount(&app.upstream)
        .await;
    app.mount_catalogs(sample::catalogs()).await;
}

async fn summary(app: &TestApp, token: &str, period: &str) -> Value {
    let body = json!({"tile_id": "spycloud_exposure_summary", "period": period}).to_string();
    let (status, answer) = app.post("/tiles/tile-data", Some(token), &body).await;
    assert_eq!(status, 200);
    answer
}

// RULES R27
// 3. SEVERITY is normalised before it keys anything.
#[tokio::test]
async fn severity_spellings_of_one_set_of_codes_are_one_scan_and_one_upstream_value() {
    let app = spawn_app_with(&[]).await;
    mount_watchlist(&app).await;
    let alice = "alice@example.com";
    app.mount_email(alice, vec![json!([sample::breach(alice)])])
        .await;
    for spelling in ["25,20", "20,20,25", " 25 , 20 ,25"] {
        let token = app.token_with(json!({"SEVERITY": spelling}));
        let answer = summary(&app, &token, "last_7_days").await;
        assert_eq!(answer.get("errors"), None, "{spelling}: {answer}");
        let observables = json!([{"type": "email", "value": alice}]).to_string();
        let (_, observed) = app
            .post("/observe/observables", Some(&token), &observables)
            .await;
        assert_eq!(observed.get("errors"), None, "{spelling}: {observed}");
    }
    let scans = calls_to(&app, "/breach/data/watchlist").await;
    assert_eq!(severities(&scans), [Some("20,25".to_owned())], "one scan");
    let lookups = calls_to(&app, "/breach/data/emails/").await;
    assert_eq!(
        severities(&lookups),
        vec![Some("20,25".to_owned()); 3],
        "every lookup asks for the same codes"
    );
}

// 10. More than 32 distinct SEVERITY codes is not a valid setting.
#[tokio::test]
async fn more_than_32_severity_codes_are_warned_about_and_the_lookups_go_on_without_them() {
    let app = spawn_app_with(&[]).await;
    mount_watchlist(&app).await;
    let alice = "alice@example.com";
    app.mount_email(alice, vec![json!([sample::breach(alice)])])
        .await;
    // 32 distinct codes (repeated) are a setting; 33 are not.
    let most: String = (0..64)
        .map(|n| (n % 32).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let too_many: String = (100..133)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let observables = json!([{"type": "email", "value": alice}]).to_string();

    let (_, observed) = app
        .post(
            "/observe/observables",
            Some(&app.token_with(json!({"SEVERITY": most}))),
            &observables,
        )
        .await;
    assert_eq!(observed.get("errors"), None, "{observed}");

    let token = app.token_with(json!({"SEVERITY": too_many}));
    let (status, observed) = app
        .post("/observe/observables", Some(&token), &observables)
        .await;
    assert_eq!(status, 200);
    let warning = format!(
        "The module setting SEVERITY is not valid and was ignored: {}",
        &too_many[..100]
    );
    assert_eq!(
        observed["errors"],
        json!([{"type": "warning", "code": "invalid argument", "message": warning}])
    );
    assert_eq!(observed["data"]["sightings"]["count"], 1, "{observed}");
    let answer = summary(&app, &token, "last_7_days").await;
    assert_eq!(answer["errors"][0]["message"], warning);
    assert_eq!(answer["data"]["data"][1]["value"], 1, "{answer}");

    let all: Vec<String> = (0..32).map(|n| n.to_string()).collect();
    let lookups = calls_to(&app, "/breach/data/emails/").await;
    assert_eq!(severities(&lookups), [Some(all.join(",")), None]);
    let scans = calls_to(&app, "/breach/data/watchlist").await;
    assert_eq!(severities(&scans), [None]);
}

// 5. A scan read back from Redis is checked against what the contract allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_scan_in_redis_is_a_miss_recomputed_and_never_served() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let secret = "bounds-test-secret-0123456789";
    let sealer = Sealer::new(secret);
    let env = [
        ("RELAY_REDIS_URL", url.as_str()),
        ("RELAY_REDIS_KEY_SECRET", secret),
    ];
    let a = spawn_app_with(&env).await;
    let b = a.spawn_replica(&env).await;
    mount_watchlist(&a).await;
    let first = summary(&a, &a.token(), "last_7_days").await;
    assert_eq!(first["data"]["data"][1]["value"], 1, "{first}");
    let keys = redis.keys();
    let key = keys
        .iter()
        .find(|key| key.starts_with("spycloud-relay:scan:"))
        .expect("the scan is shared");
    let shared = redis.get(key).expect("a value");
    let shared = sealer.open(key, &shared).expect("sealed under the secret");
    assert!(
        serde_json::from_slice::<Value>(&shared).is_ok(),
        "this test forges a value as the relay writes it: JSON, sealed"
    );

    // What the issue's attacker wrote: 5 000 breaches in the summary, 2 000 days, 502
    // employees and as many catalogs in the top tables.
    let end = Utc::now() - chrono::Duration::minutes(1);
    let start = end - chrono::Duration::days(7);
    let time = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let days: Vec<Value> = (0..2_000)
        .map(|n| {
            let day = (start + chrono::Duration::days(n))
                .format("%Y-%m-%d")
                .to_string();
            json!({"day": day, "counts": [1, 1, 0, 0]})
        })
        .collect();
    let employees: Vec<Value> = (0..502)
        .map(|n| {
            json!({"email": format!("forged{n:03}@example.com"), "records": 10, "plaintext": 0,
                   "devices": 0, "latest": end.format("%Y-%m-%d").to_string()})
        })
        .collect();
    let breaches: Vec<Value> = (0..502).map(|n| json!([n + 1, 10])).collect();
    let forged = json!({
        "figures": {
            "start": time(start), "end": time(end), "employees": 502, "records": 5_000,
            "plaintext": 0, "devices": 0, "not_read": null, "days": days,
            "top_breaches": breaches, "top_employees": employees
        },
        "expires": time(end + chrono::Duration::minutes(9)),
    });
    // Sealed under the secret: whoever wrote it held the secret (a replica gone wrong, say),
    // so only the check of what the contract allows stands between it and an answer.
    redis.overwrite(key, &sealer.seal(key, forged.to_string().as_bytes()));

    // Replica B never made nor kept that scan: it reads the forged value, refuses it and
    // scans again, and answers the watchlist's figures.
    let token = b.token();
    let answer = summary(&b, &token, "last_7_days").await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    assert_eq!(answer["data"]["data"][1]["value"], 1, "{answer}");
    let body = json!({"tile_id": "spycloud_most_exposed_employees", "period": "last_7_days"});
    let (_, rows) = b
        .post("/tiles/tile-data", Some(&token), &body.to_string())
        .await;
    assert_eq!(
        rows["data"]["data"].as_array().map(Vec::len),
        Some(3),
        "{rows}"
    );
    let body = json!({"tile_id": "spycloud_top_breaches", "period": "last_7_days"});
    let (_, bars) = b
        .post("/tiles/tile-data", Some(&token), &body.to_string())
        .await;
    assert_eq!(bars["data"]["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(calls_to(&a, "/breach/data/watchlist").await.len(), 2);
    assert!(calls_to(&a, "/breach/catalog/").await.len() <= 2);
    // The recomputed scan replaced the forged value.
    let replaced = sealer.open(key, &redis.get(key).unwrap()).expect("sealed");
    let replaced: Value = serde_json::from_slice(&replaced).unwrap();
    assert_eq!(replaced["figures"]["records"], 1);
}

/// Alice's one breach record (catalog 2976) on the app's fake SpyCloud; the catalog endpoint
/// is the test's.
async fn mount_alice_without_catalogs(app: &TestApp) {
    let alice = "alice@example.com";
    app.mount_email(alice, vec![json!([sample::breach(alice)])])
        .await;
}

/// Observes Alice; the answer.
async fn observe_alice(app: &TestApp) -> Value {
    let observables = json!([{"type": "email", "value": "alice@example.com"}]).to_string();
    let (status, answer) = app
        .post("/observe/observables", Some(&app.token()), &observables)
        .await;
    assert_eq!(status, 200);
    answer
}

// RULES R11
// 1. Catalog answers are bounded: bytes per page ...
#[tokio::test]
async fn a_catalog_page_over_its_cap_is_refused_after_one_call() {
    let app = spawn_app_with(&[]).await;
    mount_alice_without_catalogs(&app).await;
    // 2 MiB of a catalog nobody asked for, and a cursor to more.
    let huge = json!({"cursor": "more", "hits": 1, "results": [
        {"id": 999, "description": "x".repeat(2 * 1024 * 1024)}
    ]});
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/catalog/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(huge))
        .mount(&app.upstream)
        .await;
    let answer = observe_alice(&app).await;
    assert_eq!(
        answer["errors"],
        json!([{"type": "fatal", "code": "unknown", "message":
            "SpyCloud sent a response the relay cannot read: SpyCloud's catalog answer is larger than 1 MiB"}]),
        "{answer}"
    );
    assert_eq!(calls_to(&app, "/breach/catalog/").await.len(), 1);
}

// RULES R11
// ... and pages per call.
#[tokio::test]
async fn a_catalog_answer_that_pages_on_is_refused_after_10_pages() {
    let app = spawn_app_with(&[]).await;
    mount_alice_without_catalogs(&app).await;
    // Each page names the next; none holds the catalog asked for.
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/catalog/"))
        .respond_with(|request: &Request| {
            let page: u64 = request
                .url
                .query_pairs()
                .find(|(name, _)| name == "cursor")
                .and_then(|(_, cursor)| cursor.parse().ok())
                .unwrap_or(0);
            let unasked: Vec<Value> = (0..100).map(|n| json!({"id": 100_000 + n})).collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": (page + 1).to_string(), "results": unasked}))
        })
        .mount(&app.upstream)
        .await;
    let answer = observe_alice(&app).await;
    assert_eq!(
        answer["errors"][0]["message"],
        "SpyCloud sent a response the relay cannot read: SpyCloud kept paginating past 10 pages",
        "{answer}"
    );
    assert_eq!(calls_to(&app, "/breach/catalog/").await.len(), 10);
}

// RULES R11
// ... and only the catalogs asked for are kept.
#[tokio::test]
async fn only_the_catalogs_asked_for_are_kept_from_a_catalog_answer() {
    let app = spawn_app_with(&[]).await;
    mount_alice_without_catalogs(&app).await;
    let mut results: Vec<Value> = (0..300)
        .map(|n| json!({"id": 100_000 + n, "title": "not asked for"}))
        .collect();
    results.insert(150, sample::catalogs()[1].clone());
    results.push(json!({"id": 2976, "title": "a second answer for 2976"}));
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/catalog/"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"cursor": "", "results": results})),
        )
        .mount(&app.upstream)
        .await;
    let answer = observe_alice(&app).await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    let indicators = &answer["data"]["indicators"];
    assert_eq!(indicators["count"], 1, "{answer}");
    assert_eq!(indicators["docs"][0]["title"], "Cracking Forum");
}

// RULES R27
// 3. The scans running at once are bounded, and a scan no request waits for stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_4_scans_run_at_once_and_a_scan_nobody_waits_for_stops() {
    let app = spawn_app_with(&[
        ("RELAY_REQUEST_TIMEOUT_SECS", "3"),
        ("SPYCLOUD_TIMEOUT_SECS", "10"),
    ])
    .await;
    // A slow watchlist that always has another page.
    Mock::given(method("GET"))
        .and(path("/breach/data/watchlist"))
        .respond_with(|request: &Request| {
            let page: u64 = request
                .url
                .query_pairs()
                .find(|(name, _)| name == "cursor")
                .and_then(|(_, cursor)| cursor.parse().ok())
                .unwrap_or(0);
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": (page + 1).to_string(), "results": []}))
                .set_delay(std::time::Duration::from_secs(5))
        })
        .mount(&app.upstream)
        .await;
    // The JWKS fetched once beforehand, so the requests below reach their scans at once.
    let (status, _) = app.post("/tiles", Some(&app.token()), "").await;
    assert_eq!(status, 200);
    // Eight SEVERITY settings: eight scans wanted at once.
    let tokens: Vec<String> = (1..=8)
        .map(|code| app.token_with(json!({"SEVERITY": code.to_string()})))
        .collect();
    let asked = futures::future::join_all(
        tokens
            .iter()
            .map(|token| summary(&app, token, "last_90_days")),
    );
    let counted = async {
        // Midway through the deadline: four scans wait for their first page, four for a turn.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        calls_to(&app, "/breach/data/watchlist").await.len()
    };
    let (answers, running) = futures::future::join(asked, counted).await;
    assert!(running <= 4, "{running} scans ran at once");
    for answer in &answers {
        assert_eq!(
            answer["errors"][0]["message"],
            "SpyCloud did not answer everything within the relay's 3 s deadline.",
            "{answer}"
        );
    }
    // Every request gave up at its deadline, so every scan stopped: none follows the cursor
    // of its first page (which would have come 5 s after it was asked for).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let pages = calls_to(&app, "/breach/data/watchlist").await;
    assert!(pages.len() <= 8, "{:?}", severities(&pages));
    assert!(
        pages
            .iter()
            .all(|page| !page.url.query().unwrap_or_default().contains("cursor")),
        "{:?}",
        pages
            .iter()
            .map(|page| page.url.query())
            .collect::<Vec<_>>()
    );
}

// RULES R30
// 2. A scan keeps strings only for what an answer shows, cut; it counts the rest by hash.
#[tokio::test]
async fn a_scan_of_long_strings_counts_them_and_shows_emails_cut() {
    let app = spawn_app_with(&[]).await;
    let local = "x".repeat(20_000);
    // Five pages chained by 60 KB cursors; each page one record of one of two employees with
    // 20 KB emails (differing in case only past the cut, or in one letter) and machine ids.
    let cursor = |page: usize| format!("{page}{}", "c".repeat(60_000));
    for page in 0..5 {
        let email = match page % 3 {
            0 => format!("{local}@example.com"),
            1 => format!("{}@EXAMPLE.com", local.to_uppercase()),
            _ => format!("{local}y@example.com"),
        };
        let mut record = sample::infostealer(&email);
        record["spycloud_publish_date"] = json!(hours_ago(1 + page as i64));
        record["infected_machine_id"] = json!(format!("{page}{}", "m".repeat(20_000)));
        let next = if page < 4 {
            cursor(page + 1)
        } else {
            String::new()
        };
        let mut mock = Mock::given(method("GET")).and(path("/breach/data/watchlist"));
        if page > 0 {
            mock = mock.and(wiremock::matchers::query_param("cursor", cursor(page)));
        }
        mock.respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": next, "hits": 5, "results": [record]})),
        )
        .with_priority(if page > 0 { 1 } else { 5 })
        .mount(&app.upstream)
        .await;
    }
    let token = app.token();
    let answer = summary(&app, &token, "last_7_days").await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    let values: Vec<&Value> = answer["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|metric| &metric["value"])
        .collect();
    assert_eq!(values, [&json!(2), &json!(5), &json!(5), &json!(5)]);
    let body = json!({"tile_id": "spycloud_most_exposed_employees", "period": "last_7_days"});
    let (_, rows) = app
        .post("/tiles/tile-data", Some(&token), &body.to_string())
        .await;
    let rows = rows["data"]["data"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let cut = "x".repeat(256);
    assert!(
        rows[2]
            .as_str()
            .unwrap()
            .starts_with(&format!("| {cut} | 4 | 4 | 4 |")),
        "{}",
        &rows[2].as_str().unwrap()[..300.min(rows[2].as_str().unwrap().len())]
    );
    assert!(
        rows[3]
            .as_str()
            .unwrap()
            .starts_with(&format!("| {cut} | 1 |"))
    );
    assert_eq!(calls_to(&app, "/breach/data/watchlist").await.len(), 5);
}
