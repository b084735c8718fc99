//! Replicas on one Redis: two real relay processes against one wiremock SpyCloud and one real
//! `redis-server` (started by the test on a free port; skipped loudly when not installed).
//! They hold one rate limit per key, share catalogs and the tiles' scans, keep answering when
//! Redis dies and share again when it returns; Redis keys are namespaced and name no API key.

mod common;

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use common::app::{TestApp, sample, spawn_app_with};
use common::jwt::API_KEY;
use common::redis::{RedisServer, free_port};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, Request, ResponseTemplate};

/// The keyed-hash secret both replicas share.
const SECRET: &str = "replica-test-secret-0123456789";

fn email(value: &str) -> Value {
    json!({"type": "email", "value": value})
}

/// Two relays on `redis`, with `extra` settings each (the first also `first_only`).
async fn two_replicas(
    redis: &RedisServer,
    extra: &[(&str, &str)],
    first_only: &[(&str, &str)],
) -> (TestApp, TestApp) {
    let url = redis.url();
    let mut env = vec![
        ("RELAY_REDIS_URL", url.as_str()),
        ("RELAY_REDIS_KEY_SECRET", SECRET),
    ];
    env.extend_from_slice(extra);
    let second_env = env.clone();
    env.extend_from_slice(first_only);
    let first = spawn_app_with(&env).await;
    let second = first.spawn_replica(&second_env).await;
    (first, second)
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

/// Every email gets one record of catalog `1000 + n` for `user<n>@example.com`; every
/// catalog asked for exists.
async fn mount_one_record_per_user(app: &TestApp) {
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/data/emails/"))
        .respond_with(|request: &Request| {
            let address = request.url.path().rsplit('/').next().unwrap_or_default();
            let n: u64 = address
                .trim_start_matches("user")
                .split('@')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let record = json!({
                "email": address, "document_id": format!("doc-{n}"), "source_id": 1000 + n,
                "severity": 2, "spycloud_publish_date": "2020-01-01T00:00:00Z"
            });
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "hits": 1, "results": [record]}))
        })
        .mount(&app.upstream)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/catalog/[0-9,]+$"))
        .respond_with(|request: &Request| {
            let results: Vec<Value> = request
                .url
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .split(',')
                .filter_map(|id| id.parse::<u64>().ok())
                .map(|id| json!({"id": id, "title": format!("Breach {id}")}))
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "hits": results.len(), "results": results}))
        })
        .mount(&app.upstream)
        .await;
}

/// Observes `address` on `app` with `token` (minted once: RSA signing takes a while in a
/// debug build): the status and body.
async fn observe(app: &TestApp, token: &str, address: &str) -> (u16, Value) {
    app.post(
        "/observe/observables",
        Some(token),
        &json!([email(address)]).to_string(),
    )
    .await
}

/// Asserts the answer of one user's lookup is whole: 200, its sighting and indicator, no error.
fn assert_whole(status: u16, body: &Value, address: &str) {
    assert_eq!(status, 200, "{address}: {body}");
    assert!(body.get("errors").is_none(), "{address}: {body}");
    assert_eq!(body["data"]["sightings"]["count"], 1, "{address}: {body}");
    assert_eq!(body["data"]["indicators"]["count"], 1, "{address}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hold_one_rate_limit_for_one_key() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    const RATE: u64 = 4;
    let (a, b) = two_replicas(&redis, &[("SPYCLOUD_MAX_RPS", "4")], &[]).await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/data/emails/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "hits": 0, "results": []})),
        )
        .mount(&a.upstream)
        .await;
    // 24 lookups of one key at once, half through each replica: 6 s of calls at 4 a second
    // together, 3 s if each replica kept a limit of its own.
    let tokens = [a.token(), b.token()];
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let started = Instant::now();
    let lookups: Vec<_> = (0..24)
        .map(|n| {
            let app = if n % 2 == 0 { a.clone() } else { b.clone() };
            let token = tokens[n % 2].clone();
            tokio::spawn(
                async move { observe(&app, &token, &format!("user{n}@example.com")).await },
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = calls_to(&a, "/breach/data/emails/").await.len() as u64;
    let elapsed = started.elapsed().as_secs_f64();
    // GCRA: a burst of RATE, then one call every 1/RATE s; one more for clock granularity.
    let allowed = RATE + (RATE as f64 * elapsed).floor() as u64 + 1;
    assert!(
        seen <= allowed,
        "{seen} calls in {elapsed:.2} s: more than one limit of {RATE}/s allows ({allowed})"
    );
    assert!(seen >= RATE, "the burst went through: {seen}");
    for lookup in lookups {
        let (status, body) = lookup.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, json!({"data": {}}), "no records, no error");
    }
    assert_eq!(calls_to(&a, "/breach/data/emails/").await.len(), 24);
    let rate_keys: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|key| key.starts_with("spycloud-relay:rate:"))
        .collect();
    assert_eq!(
        rate_keys.len(),
        1,
        "one key, one shared limit: {rate_keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_catalogs_and_name_no_api_key_in_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&redis, &[], &[]).await;
    let alice = "alice@example.com";
    mount_alice(&a, alice).await;

    let first = a.observe(json!([email(alice)])).await;
    let catalog_calls = calls_to(&a, "/breach/catalog/").await.len();
    assert_eq!(catalog_calls, 1, "one batch for the four ids");
    let second = b.observe(json!([email(alice)])).await;
    assert_eq!(
        calls_to(&a, "/breach/catalog/").await.len(),
        catalog_calls,
        "the second replica found every catalog, and the missing one, in Redis"
    );
    // Same indicators (their ids are stable) and the same warning for the missing catalog.
    assert_eq!(first["data"]["indicators"], second["data"]["indicators"]);
    assert_eq!(first["errors"], second["errors"]);
    assert_eq!(
        second["errors"][0]["message"],
        "SpyCloud did not return results for 99999"
    );

    let keys = redis.keys();
    let digest: String = Sha256::digest(API_KEY.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("spycloud-relay:catalog:"))
    );
    assert!(keys.iter().any(|k| k.starts_with("spycloud-relay:rate:")));
    for key in &keys {
        assert!(key.starts_with("spycloud-relay:"), "{key}");
        assert!(!key.contains(API_KEY), "{key}");
        assert!(
            !key.contains(&digest[..16]),
            "the plain SHA-256 of the key: {key}"
        );
    }
    // Four catalog entries (three found, one missing) and one rate limit, nothing else.
    assert_eq!(keys.len(), 5, "{keys:?}");
}

/// Asks `app` for the four tiles of the last 7 days at once: their answers, each whole.
async fn four_tiles(app: &TestApp, token: &str) -> Vec<Value> {
    let asked = [
        "spycloud_exposure_summary",
        "spycloud_exposures_by_day",
        "spycloud_top_breaches",
        "spycloud_most_exposed_employees",
    ]
    .map(|id| {
        let body = json!({"tile_id": id, "period": "last_7_days"}).to_string();
        async move { app.post("/tiles/tile-data", Some(token), &body).await }
    });
    futures::future::join_all(asked)
        .await
        .into_iter()
        .map(|(status, answer)| {
            assert_eq!(status, 200, "{answer}");
            assert!(answer.get("errors").is_none(), "{answer}");
            answer
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_one_replica_made_serves_the_other_and_names_no_api_key_in_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&redis, &[], &[]).await;
    let hours_ago = |hours: i64| {
        (Utc::now() - chrono::Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let mut infected = sample::infostealer("alice@example.com");
    infected["spycloud_publish_date"] = json!(hours_ago(1));
    let mut breached = sample::breach("bob@example.com");
    breached["spycloud_publish_date"] = json!(hours_ago(30));
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/data/watchlist$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "hits": 2, "results": [infected, breached]})),
        )
        .mount(&a.upstream)
        .await;
    a.mount_catalogs(sample::catalogs()).await;

    // The four tiles on replica A: one scan (one page), one catalog call.
    let first = four_tiles(&a, &a.token()).await;
    assert_eq!(first[0]["data"]["data"][1]["value"], 2, "{}", first[0]);
    assert_eq!(calls_to(&a, "/breach/data/watchlist").await.len(), 1);
    assert_eq!(calls_to(&a, "/breach/catalog/").await.len(), 1);

    // Replica B answers the same, its times included, without a watchlist call (nor a
    // catalog call: the titles are shared too).
    let second = four_tiles(&b, &b.token()).await;
    assert_eq!(calls_to(&a, "/breach/data/watchlist").await.len(), 1);
    assert_eq!(calls_to(&a, "/breach/catalog/").await.len(), 1);
    assert_eq!(second, first);
    assert_eq!(
        second[0]["data"]["valid_time"],
        first[0]["data"]["valid_time"]
    );

    // One scan entry, named by the keyed hash, the period and the (empty) SEVERITY, expiring
    // with the scan (RELAY_TILES_CACHE_SECS, 600 s by default).
    let keys = redis.keys();
    let scans: Vec<&String> = keys
        .iter()
        .filter(|key| key.starts_with("spycloud-relay:scan:"))
        .collect();
    assert_eq!(scans.len(), 1, "{keys:?}");
    assert!(scans[0].ends_with(":last_7_days."), "{}", scans[0]);
    let left = redis.pttl(scans[0]);
    assert!(left > 500_000 && left <= 600_000, "{left} ms left");
    let digest: String = Sha256::digest(API_KEY.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    for key in &keys {
        assert!(key.starts_with("spycloud-relay:"), "{key}");
        assert!(!key.contains(API_KEY), "{key}");
        assert!(!key.contains(&digest[..16]), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_redis_dying_mid_load_and_share_again_after_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let metrics_port = free_port().to_string();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let (a, b) = two_replicas(
        &redis,
        // Info: the line saying sharing resumed.
        &[("SPYCLOUD_MAX_RPS", "1000"), ("RELAY_LOG", "info")],
        &[("RELAY_METRICS_LISTEN", &metrics_listen)],
    )
    .await;
    mount_one_record_per_user(&a).await;
    let tokens = [a.token(), b.token()];
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));

    // 40 lookups spread over about 2 s, both replicas; Redis is killed after about 0.6 s.
    let lookups: Vec<_> = (0..40u64)
        .map(|n| {
            let app = if n % 2 == 0 { a.clone() } else { b.clone() };
            let token = tokens[(n % 2) as usize].clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50 * n)).await;
                let address = format!("user{}@example.com", n % 10);
                let (status, body) = observe(&app, &token, &address).await;
                (address, status, body)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    redis.kill();
    for lookup in lookups {
        let (address, status, body) = lookup.await.unwrap();
        assert_whole(status, &body, &address);
    }
    // Each replica noticed, logged it once (at most one line per 30 s), and counted it.
    for app in [&a, &b] {
        let logs = app.log_text();
        assert_eq!(
            logs.matches("Redis is not answering").count(),
            1,
            "one outage line: {logs}"
        );
        assert!(!logs.contains(SECRET) && !logs.contains(API_KEY));
    }
    let metrics = reqwest::get(format!("http://{metrics_listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fallbacks: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("relay_redis_fallbacks_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(fallbacks > 0.0, "fallbacks counted: {metrics}");

    // Redis returns, empty: each replica reconnects by itself (after leaving Redis alone a
    // moment) and shares again: a catalog one fetches is not fetched by the other.
    assert!(redis.restart(), "redis-server restarts on its port");
    let mut fresh = 100..;
    for (app, token) in [&a, &b].into_iter().zip(&tokens) {
        for _ in 0..40 {
            if app.log_text().contains("Redis answers again") {
                break;
            }
            let address = format!("user{}@example.com", fresh.next().unwrap());
            let (status, body) = observe(app, token, &address).await;
            assert_whole(status, &body, &address);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(app.log_text().contains("Redis answers again"));
    }
    let n = fresh.next().unwrap();
    let address = format!("user{n}@example.com");
    let catalog = format!("/breach/catalog/{}", 1000 + n);
    let (status, body) = observe(&a, &tokens[0], &address).await;
    assert_whole(status, &body, &address);
    let (status, body) = observe(&b, &tokens[1], &address).await;
    assert_whole(status, &body, &address);
    assert_eq!(
        calls_to(&a, &catalog).await.len(),
        1,
        "the second replica found the catalog in Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_value_in_clear_and_a_tampered_moved_or_clear_value_is_a_miss() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&redis, &[], &[]).await;
    let alice = "alice@example.com";
    let hours_ago = |hours: i64| {
        (Utc::now() - chrono::Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let mut infected = sample::infostealer(alice);
    infected["spycloud_publish_date"] = json!(hours_ago(1));
    let mut breached = sample::breach("bob@example.com");
    breached["spycloud_publish_date"] = json!(hours_ago(30));
    Mock::given(method("GET"))
        .and(path_regex(r"^/breach/data/watchlist$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"cursor": "", "hits": 2, "results": [infected, breached]})),
        )
        .mount(&a.upstream)
        .await;
    mount_alice(&a, alice).await;
    let observed = a.observe(json!([email(alice)])).await;
    let tiles = four_tiles(&a, &a.token()).await;

    // Nothing the relay wrote reads in clear: no email, no catalog text, no figure's JSON.
    let keys = redis.keys();
    let named = |prefix: &str| -> Vec<String> {
        keys.iter()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect()
    };
    let (catalogs, scans) = (
        named("spycloud-relay:catalog:"),
        named("spycloud-relay:scan:"),
    );
    assert_eq!((catalogs.len(), scans.len()), (4, 1), "{keys:?}");
    for key in catalogs.iter().chain(&scans) {
        let value = redis.get(key).expect("a value");
        let text = String::from_utf8_lossy(&value);
        for clear in [
            "alice@example.com",
            "bob@example.com",
            "Cracking Forum",
            "Russian Password Stealer",
            "crackingforum.com",
        ] {
            assert!(!text.contains(clear), "{key} holds {clear:?}: {text}");
        }
        // Not JSON either (a ciphertext may hold any two bytes, `{"` included, by chance).
        assert!(
            serde_json::from_slice::<serde_json::Value>(&value).is_err(),
            "{key} holds JSON: {text}"
        );
    }

    // A predecessor's clear value, two values swapped between keys, one byte flipped.
    let key_of = |id: &str| {
        catalogs
            .iter()
            .find(|key| key.ends_with(&format!(":{id}")))
            .unwrap_or_else(|| panic!("catalog {id} in {catalogs:?}"))
            .clone()
    };
    let mut forged = sample::catalogs()[1].clone();
    forged["title"] = json!("Forged Title");
    redis.set(&key_of("2976"), forged.to_string().as_bytes(), 600_000);
    let (stealer, combo) = (key_of("17494"), key_of("16579"));
    let (stealer_value, combo_value) = (redis.get(&stealer).unwrap(), redis.get(&combo).unwrap());
    redis.set(&stealer, &combo_value, 600_000);
    redis.set(&combo, &stealer_value, 600_000);
    let mut scan_value = redis.get(&scans[0]).unwrap();
    let middle = scan_value.len() / 2;
    scan_value[middle] ^= 1;
    redis.set(&scans[0], &scan_value, 600_000);

    // Replica B: each is a miss, so it asks SpyCloud again and answers right.
    let catalog_calls = calls_to(&a, "/breach/catalog/").await.len();
    let scan_calls = calls_to(&a, "/breach/data/watchlist").await.len();
    let observed_again = b.observe(json!([email(alice)])).await;
    assert_eq!(
        observed_again["data"]["indicators"],
        observed["data"]["indicators"]
    );
    assert!(!observed_again.to_string().contains("Forged Title"));
    assert!(calls_to(&a, "/breach/catalog/").await.len() > catalog_calls);
    let tiles_again = four_tiles(&b, &b.token()).await;
    assert_eq!(
        calls_to(&a, "/breach/data/watchlist").await.len(),
        scan_calls + 1,
        "the flipped scan is scanned again"
    );
    for (again, first) in tiles_again.iter().zip(&tiles) {
        assert_eq!(again["data"]["data"], first["data"]["data"]);
    }
}

/// Alice's four kinds of record (a breach, an infostealer, a combo list, one whose catalog
/// SpyCloud lacks) and the sample catalogs, on `app`'s fake SpyCloud.
async fn mount_alice(app: &TestApp, alice: &str) {
    app.mount_email(
        alice,
        vec![json!([
            sample::breach(alice),
            sample::infostealer(alice),
            sample::combo(alice),
            sample::orphan(alice)
        ])],
    )
    .await;
    app.mount_catalogs(sample::catalogs()).await;
}
