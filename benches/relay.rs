//! The relay's benchmark: the release binary, run as its own process, against a local fake
//! SpyCloud that answers every call after 50 ms.
//!
//! The lookup is the issue's: one observe request with 5 emails, 20 breach records each, spread
//! over 8 catalogs. The report gives cold and warm wall time against the round-trip floor, the
//! upstream calls made, the relay's CPU time per warm one-email request and its peak RSS after 8
//! concurrent clients, each against its target. Then the big lookups: a corporate domain of
//! 25 000 records of about 1 KB in pages of 1 000 (time and peak RSS), and a 1 MiB request body
//! of 26 000 distinct observables (the CPU it costs before any token is checked). Then the
//! dashboard: a fresh relay scans a 90-day watchlist of 200 000 records (after a 7-day scan of
//! a fraction of them, so the two peaks show whether memory follows the records read), and the
//! report gives the scan's time, its SpyCloud calls and the peak RSS. Then what stays bounded
//! whatever SpyCloud sends, each on a fresh relay: a scan of 1 000 000 records of as many
//! employees, and an observe whose catalog comes on the last of 10 pages of about 1 MiB (their
//! peak RSS). Missed targets are reported, not failed: the
//! exit status is non-zero only when the benchmark itself could not run. `benches/README.md`
//! says how to run it and what each figure means.

// The test keys, JWKS and token minter the integration tests use.
#[allow(dead_code)]
#[path = "../tests/common/jwt.rs"]
mod jwt;

// A redis-server of the benchmark's own, as the replica tests start one.
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// SpyCloud's answer time for every call.
const UPSTREAM_DELAY: Duration = Duration::from_millis(50);
/// The lookup: this many emails ...
const EMAILS: usize = 5;
/// ... with this many records each ...
const RECORDS_PER_EMAIL: usize = 20;
/// ... spread over this many catalogs.
const CATALOGS: u64 = 8;
/// The first catalog id; the others follow.
const FIRST_CATALOG: u64 = 40_000;
/// The audience the relay is told to expect and tokens carry.
const AUDIENCE: &str = "http://bench";
/// The relay's `SPYCLOUD_MAX_RPS`: checked on every call as in production, but high enough that
/// it never makes a bench request wait (the fake is local). A wait would put a pause inside the
/// CPU phase, and pauses are measured on their own (`PAUSE`).
const RELAY_MAX_RPS: &str = "1000";
/// The idle time before each request of the spaced CPU phase.
const PAUSE: Duration = Duration::from_millis(10);
/// The big domain of the last phases.
const BIG_DOMAIN: &str = "bigcorp.example.com";
/// Its records per page, as SpyCloud pages them.
const BIG_PAGE: usize = 1000;
/// The relay's `RELAY_MAX_RECORDS`: enough to read every record of the big domain.
const RELAY_MAX_RECORDS: &str = "25000";
/// `SPYCLOUD_MAX_RPS` of the two replicas whose shared rate limit is measured.
const REPLICA_RATE: u64 = 20;
/// The Redis key secret of the replicas.
const REDIS_KEY_SECRET: &str = "bench-redis-key-secret-0123456789";
/// Records per page of the fake's watchlist.
const SCAN_PAGE: usize = 1000;
/// Employees of the fake's watchlist ...
const SCAN_EMPLOYEES: usize = 2000;
/// ... and the catalogs their records come from.
const SCAN_CATALOGS: u64 = 50;
/// The `SEVERITY` of the tokens of the distinct-employee scan: the fake answers its watchlist
/// call (`severity=99`) with that watchlist.
const DISTINCT_SEVERITY: &str = "99";
/// The relay's `RELAY_MAX_RECORDS` in the distinct-employee scan: the default, so a scan reads
/// 1 000 000 records at most.
const DEFAULT_MAX_RECORDS: &str = "10000";
/// The email of the paged-catalog lookup: its records are all of catalog [`PAGED_CATALOG`] ...
const PAGED_EMAIL: &str = "paged.bench@example.com";
/// ... which the fake answers in [`CATALOG_PAGES`] pages of about 1 MiB (the most the relay
/// reads of one), chained by cursors, the catalog asked for on the last.
const PAGED_CATALOG: u64 = 49_999;
/// The most pages the relay follows for one catalog batch.
const CATALOG_PAGES: usize = 10;
/// The relay's request deadline in the dashboard phase: a 200-page scan at 50 ms a page takes
/// longer than the default 25 s allows on a busy machine, and the deadline is not measured.
const SCAN_DEADLINE_SECS: &str = "300";

/// How much work each phase does; each can be changed with the environment variable named.
struct Plan {
    /// `BENCH_WARM_RUNS`: warm 5-email requests whose median is the warm time.
    warm_runs: usize,
    /// `BENCH_CPU_REQUESTS`: back-to-back warm one-email requests whose CPU time is averaged.
    cpu_requests: usize,
    /// `BENCH_SPACED_REQUESTS`: the same request, each after a `PAUSE` of idle time.
    spaced_requests: usize,
    /// `BENCH_CLIENTS`: concurrent clients of the RSS phase.
    clients: usize,
    /// `BENCH_CLIENT_REQUESTS`: warm 5-email requests each of those clients makes.
    client_requests: usize,
    /// `BENCH_DOMAIN_RECORDS`: records of the big domain (pages of 1 000).
    domain_records: usize,
    /// `BENCH_LOOKUP_LIMIT`: records of the big domain `lookup` renders, as CTIM and as STIX.
    lookup_limit: usize,
    /// `BENCH_BODY_REQUESTS`: 1 MiB bodies of 26 000 observables sent without a token.
    body_requests: usize,
    /// `BENCH_REDIS_REQUESTS`: back-to-back warm one-email requests, with and without Redis.
    redis_requests: usize,
    /// `BENCH_RATE_SECS`: how long the two replicas are driven above their shared rate.
    rate_secs: usize,
    /// `BENCH_SCAN_RECORDS`: records of the watchlist, spread over the 90 days before the
    /// benchmark started.
    scan_records: usize,
    /// `BENCH_DISTINCT_RECORDS`: records of the second watchlist, each of an employee of its
    /// own.
    distinct_records: usize,
    /// `BENCH_DISTINCT_DEVICES_EVERY`: every so many of its records has a machine id of its own.
    distinct_devices_every: usize,
}

impl Plan {
    /// The plan under `cargo bench`; under `cargo test` (no `--bench` argument, a debug
    /// build) a smoke run that only shows the benchmark still works, like criterion's test mode.
    fn from_env(full: bool) -> Result<Self> {
        let pick = |bench, smoke| if full { bench } else { smoke };
        Ok(Self {
            warm_runs: setting("BENCH_WARM_RUNS", pick(20, 2))?,
            cpu_requests: setting("BENCH_CPU_REQUESTS", pick(2000, 5))?,
            spaced_requests: setting("BENCH_SPACED_REQUESTS", pick(300, 3))?,
            clients: setting("BENCH_CLIENTS", pick(8, 2))?,
            client_requests: setting("BENCH_CLIENT_REQUESTS", pick(50, 2))?,
            domain_records: setting("BENCH_DOMAIN_RECORDS", pick(25_000, 2_000))?,
            lookup_limit: setting("BENCH_LOOKUP_LIMIT", pick(5_000, 100))?,
            body_requests: setting("BENCH_BODY_REQUESTS", pick(20, 1))?,
            redis_requests: setting("BENCH_REDIS_REQUESTS", pick(1000, 3))?,
            rate_secs: setting("BENCH_RATE_SECS", pick(5, 1))?,
            scan_records: setting("BENCH_SCAN_RECORDS", pick(200_000, 3_000))?,
            distinct_records: setting("BENCH_DISTINCT_RECORDS", pick(1_000_000, 3_000))?,
            distinct_devices_every: setting("BENCH_DISTINCT_DEVICES_EVERY", 4)?,
        })
    }
}

fn setting(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name} must be a whole number above 0, not {value:?}").into()),
        },
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("relay bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<String> {
    let full = std::env::args().any(|arg| arg == "--bench");
    if !full {
        eprintln!("relay bench: not run by `cargo bench`: a smoke run, figures mean nothing");
    }
    let plan = Plan::from_env(full)?;
    let fake = FakeSpyCloud::start(&plan).await;
    let relay = RelayProcess::start(&fake, &[("SPYCLOUD_MAX_RPS", RELAY_MAX_RPS)])?;
    let client = reqwest::Client::new();
    let jwks_host = fake.server.address().to_string();
    let mut claims = jwt::default_claims(&jwks_host, AUDIENCE);
    claims["CTR_ENTITIES_LIMIT"] = json!(100);
    let bench = Bench {
        client,
        url: format!("{}/observe/observables", relay.base_url),
        token: jwt::TokenMinter.mint(jwt::KID_1, &claims),
        all: observables(&fake.emails),
        one: observables(&fake.emails[..1]),
    };
    let startup_rss = memory(relay.pid())?;

    // 1. Cold: nothing cached, neither the JWKS nor a catalog.
    let before = fake.calls();
    let started = Instant::now();
    bench.observe(&bench.all, EMAILS).await?;
    let cold = started.elapsed();
    let cold_calls = fake.calls() - before;

    // 2. Warm: the same request again, JWKS and catalogs cached.
    let before = fake.calls();
    let mut warm = Vec::with_capacity(plan.warm_runs);
    for _ in 0..plan.warm_runs {
        let started = Instant::now();
        bench.observe(&bench.all, EMAILS).await?;
        warm.push(started.elapsed());
    }
    let warm_calls = fake.calls() - before;
    let warm = Summary::of(warm);

    // 3. CPU per warm one-email request: back to back, then each after a pause. The fake answers
    // at once: the relay's CPU time is the same either way, and the phase takes less wall time.
    fake.set_delay(Duration::ZERO);
    bench.observe(&bench.one, 1).await?;
    let (cpu, cpu_wall) = bench
        .cpu_per_request(relay.pid(), plan.cpu_requests, None)
        .await?;
    let (spaced_cpu, _) = bench
        .cpu_per_request(relay.pid(), plan.spaced_requests, Some(PAUSE))
        .await?;
    let slowdown = idle_slowdown(&fake, plan.spaced_requests).await;
    fake.set_delay(UPSTREAM_DELAY);

    // 4. Peak RSS under concurrent clients doing the warm 5-email request.
    let bench = Arc::new(bench);
    let started = Instant::now();
    let clients: Vec<_> = (0..plan.clients)
        .map(|_| {
            let bench = bench.clone();
            let requests = plan.client_requests;
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(requests);
                for _ in 0..requests {
                    let started = Instant::now();
                    bench.observe(&bench.all, EMAILS).await?;
                    times.push(started.elapsed());
                }
                Ok::<_, Box<dyn Error + Send + Sync>>(times)
            })
        })
        .collect();
    let mut times = Vec::new();
    for client in clients {
        times.extend(client.await??);
    }
    let concurrent_wall = started.elapsed();
    let concurrent = Summary::of(times);
    let after_rss = memory(relay.pid())?;

    // 5. The big domain: every page read (1 000 records each, after the delay), folded into the
    // newest 100. The peak so far was the concurrent phase's; a higher one is this lookup's.
    let before = fake.calls();
    let started = Instant::now();
    bench.observe_domain(plan.domain_records).await?;
    let domain_wall = started.elapsed();
    let domain_pages = (fake.calls() - before).other;
    let domain_rss = memory(relay.pid())?;

    // 6. A 1 MiB body of 26 000 distinct observables, without a token: read, parsed and
    // deduplicated before the token is looked at. Its CPU time per request.
    let body = huge_body();
    let before_cpu = cpu_time(relay.pid())?;
    for _ in 0..plan.body_requests {
        bench.refused_without_token(&body).await?;
    }
    let body_cpu = (cpu_time(relay.pid())? - before_cpu) / plan.body_requests as u32;

    // The report.
    let floor_cold = UPSTREAM_DELAY * 2;
    let cold_ratio = ratio(cold, floor_cold);
    let warm_ratio = ratio(warm.median, UPSTREAM_DELAY);
    let cpu_ms = millis(cpu);
    let peak_mib = after_rss.peak_kib as f64 / 1024.0;
    let mut rows = vec![
        Row::new(
            "cold 5-email request",
            format!(
                "{:.1} ms = {cold_ratio:.2}x floor {} ms",
                millis(cold),
                floor_cold.as_millis()
            ),
            "<= 1.5x floor",
            Some(cold_ratio <= 1.5),
        ),
        Row::new(
            "upstream calls, cold request",
            format!(
                "{} ({} email, {} catalog); JWKS {}",
                cold_calls.spycloud(),
                cold_calls.emails,
                cold_calls.catalogs,
                cold_calls.jwks
            ),
            "<= 6",
            Some(cold_calls.spycloud() <= 6),
        ),
        Row::new(
            format!("warm 5-email request, median of {}", plan.warm_runs),
            format!(
                "{:.1} ms = {warm_ratio:.2}x one trip {} ms",
                millis(warm.median),
                UPSTREAM_DELAY.as_millis()
            ),
            "<= 2x one trip",
            Some(warm_ratio <= 2.0),
        ),
        Row::new(
            "  warm min / p90 / max",
            format!(
                "{:.1} / {:.1} / {:.1} ms",
                millis(warm.min),
                millis(warm.p90),
                millis(warm.max)
            ),
            "",
            None,
        ),
        Row::new(
            "upstream calls per warm request",
            format!(
                "{:.1} email, {:.1} catalog; JWKS {}",
                per(warm_calls.emails, plan.warm_runs),
                per(warm_calls.catalogs, plan.warm_runs),
                warm_calls.jwks
            ),
            "",
            None,
        ),
        Row::new(
            format!("CPU per warm 1-email request (n={})", plan.cpu_requests),
            format!(
                "{cpu_ms:.3} ms ({:.2} ms wall each, back to back, upstream delay 0)",
                millis(cpu_wall) / plan.cpu_requests as f64
            ),
            "<= 1 ms",
            Some(cpu_ms <= 1.0),
        ),
        Row::new(
            format!(
                "  the same, {} ms apart (n={})",
                PAUSE.as_millis(),
                plan.spaced_requests
            ),
            format!(
                "{:.3} ms; fixed work runs {slowdown:.2}x slower here after such a pause",
                millis(spaced_cpu)
            ),
            "",
            None,
        ),
        Row::new(
            format!(
                "peak RSS (VmHWM), {} clients x {} warm",
                plan.clients, plan.client_requests
            ),
            format!(
                "{peak_mib:.1} MiB (at start {:.1}, now {:.1}; {} threads)",
                startup_rss.rss_kib as f64 / 1024.0,
                after_rss.rss_kib as f64 / 1024.0,
                after_rss.threads
            ),
            "<= 32 MiB",
            Some(peak_mib <= 32.0),
        ),
        Row::new(
            "  concurrent median / p90 / max",
            format!(
                "{:.0} / {:.0} / {:.0} ms; {:.1} req/s",
                millis(concurrent.median),
                millis(concurrent.p90),
                millis(concurrent.max),
                concurrent.count as f64 / concurrent_wall.as_secs_f64()
            ),
            "",
            None,
        ),
    ];
    let domain_peak_mib = domain_rss.peak_kib as f64 / 1024.0;
    let domain_floor = UPSTREAM_DELAY * domain_pages as u32;
    rows.push(Row::new(
        format!(
            "big domain: {} records of ~1 KB, {BIG_PAGE} a page",
            plan.domain_records
        ),
        format!(
            "{:.0} ms for {domain_pages} pages (floor {} ms: one trip each)",
            millis(domain_wall),
            domain_floor.as_millis()
        ),
        "",
        None,
    ));
    rows.push(Row::new(
        "  peak RSS (VmHWM) after it",
        format!(
            "{domain_peak_mib:.1} MiB (now {:.1})",
            domain_rss.rss_kib as f64 / 1024.0
        ),
        "< 40 MiB",
        Some(domain_peak_mib < 40.0),
    ));
    rows.push(Row::new(
        format!(
            "CPU per 1 MiB body of 26 000 observables (n={})",
            plan.body_requests
        ),
        format!("{:.1} ms, refused for its missing token", millis(body_cpu)),
        "",
        None,
    ));

    // 6b. `lookup` of the big domain's newest records, as CTIM and as STIX 2.1: each format's
    // rendering of the same findings, in a process of its own.
    rows.extend(lookup_formats(&fake, plan.lookup_limit.min(plan.domain_records)).await?);

    // 7. Replicas on one Redis: what sharing costs a request, and the rate two replicas hold.
    rows.extend(replicas(&fake, &bench, relay.pid(), &plan).await?);
    let total_calls = fake.calls();

    rows.push(Row::new(
        "upstream calls, whole run",
        format!(
            "{} email, {} catalog, {} other; JWKS {}",
            total_calls.emails, total_calls.catalogs, total_calls.other, total_calls.jwks
        ),
        "",
        None,
    ));
    relay.stop();

    // 7. The dashboard, on a fresh relay so its peak RSS is the scans' alone.
    rows.extend(dashboard(&fake, &bench.token, plan.scan_records).await?);

    // 8. Bounded whatever SpyCloud sends: a scan of as many employees as records, and a catalog
    // answer of the most pages of the most bytes the relay reads, each on a fresh relay.
    rows.extend(distinct_scan(&fake, plan.distinct_records, plan.distinct_devices_every).await?);
    rows.push(paged_catalogs(&fake).await?);
    Ok(report(&rows))
}

/// A 7-day scan, then a 90-day scan of every record (the first tile alone, then the four at
/// once, served by the kept scan), each checked; rows for time, calls and memory.
async fn dashboard(fake: &FakeSpyCloud, token: &str, records: usize) -> Result<Vec<Row>> {
    let relay = RelayProcess::start(
        fake,
        &[
            ("SPYCLOUD_MAX_RPS", RELAY_MAX_RPS),
            ("RELAY_REQUEST_TIMEOUT_SECS", SCAN_DEADLINE_SECS),
        ],
    )?;
    let client = reqwest::Client::new();
    let url = format!("{}/tiles/tile-data", relay.base_url);
    let tile = |id: &'static str, period: &'static str| {
        let request = client
            .post(&url)
            .bearer_auth(token)
            .json(&json!({"tile_id": id, "period": period}));
        async move {
            let response = request.send().await?;
            let body: Value = response.json().await?;
            if body.get("errors").is_some() || body["data"]["data"].is_null() {
                let mut shown = body.to_string();
                shown.truncate(500);
                return Err(format!("the tile {id} of {period} failed: {shown}").into());
            }
            Ok::<Value, Box<dyn Error + Send + Sync>>(body)
        }
    };
    let summary = "spycloud_exposure_summary";
    let counted = |answer: &Value| answer["data"]["data"][1]["value"].as_u64().unwrap_or(0);
    let startup = memory(relay.pid())?;

    let before = fake.calls();
    let week = tile(summary, "last_7_days").await?;
    let week_calls = fake.calls() - before;
    let week_peak = memory(relay.pid())?;

    let before = fake.calls();
    let started = Instant::now();
    let quarter = tile(summary, "last_90_days").await?;
    let scan_time = started.elapsed();
    let scan_calls = fake.calls() - before;
    let started = Instant::now();
    let four = futures::future::try_join_all(
        [
            summary,
            "spycloud_exposures_by_day",
            "spycloud_top_breaches",
            "spycloud_most_exposed_employees",
        ]
        .map(|id| tile(id, "last_90_days")),
    )
    .await?;
    let kept_time = started.elapsed();
    let kept_calls = fake.calls() - before - scan_calls;
    let quarter_peak = memory(relay.pid())?;
    relay.stop();

    if counted(&quarter) != records as u64 || four[0] != quarter {
        return Err(format!(
            "the 90-day summary counted {} records, not {records}",
            counted(&quarter)
        )
        .into());
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak = mib(quarter_peak.peak_kib);
    Ok(vec![
        Row::new(
            format!("tiles: 90-day scan of {records} records"),
            format!(
                "{:.2} s for {} pages of {SCAN_PAGE} ({:.0} records/s)",
                scan_time.as_secs_f64(),
                scan_calls.watchlist,
                records as f64 / scan_time.as_secs_f64()
            ),
            "",
            None,
        ),
        Row::new(
            "  SpyCloud calls of that scan",
            format!(
                "{} (one per page, {} ms each); then the four tiles at once: {} watchlist, {} catalog",
                scan_calls.spycloud(),
                UPSTREAM_DELAY.as_millis(),
                kept_calls.watchlist,
                kept_calls.catalogs
            ),
            "pages + 1 catalog",
            Some(
                scan_calls.spycloud() == scan_calls.watchlist
                    && kept_calls.watchlist == 0
                    && kept_calls.catalogs == 1,
            ),
        ),
        Row::new(
            "  four tiles from the kept scan, at once",
            format!(
                "{:.1} ms wall (one catalog call of {} ms)",
                millis(kept_time),
                UPSTREAM_DELAY.as_millis()
            ),
            "",
            None,
        ),
        Row::new(
            "  peak RSS after the 90-day scan",
            format!(
                "{peak:.1} MiB; after a 7-day scan of {} records ({} pages) {:.1}; at start {:.1}",
                counted(&week),
                week_calls.watchlist,
                mib(week_peak.peak_kib),
                mib(startup.rss_kib)
            ),
            "<= 32 MiB",
            Some(peak <= 32.0),
        ),
    ])
}

/// The 90-day summary of the watchlist of distinct employees (the fake answering at once), on a
/// fresh relay with the default `RELAY_MAX_RECORDS`; rows for its time and peak RSS.
async fn distinct_scan(
    fake: &FakeSpyCloud,
    records: usize,
    devices_every: usize,
) -> Result<Vec<Row>> {
    let relay = RelayProcess::start(
        fake,
        &[
            ("SPYCLOUD_MAX_RPS", RELAY_MAX_RPS),
            ("RELAY_REQUEST_TIMEOUT_SECS", SCAN_DEADLINE_SECS),
            ("RELAY_MAX_RECORDS", DEFAULT_MAX_RECORDS),
        ],
    )?;
    let jwks_host = fake.server.address().to_string();
    let mut claims = jwt::default_claims(&jwks_host, AUDIENCE);
    claims["SEVERITY"] = json!(DISTINCT_SEVERITY);
    let token = jwt::TokenMinter.mint(jwt::KID_1, &claims);
    let client = reqwest::Client::new();
    let url = format!("{}/tiles/tile-data", relay.base_url);
    let startup = memory(relay.pid())?;
    fake.set_delay(Duration::ZERO);
    let before = fake.calls();
    let started = Instant::now();
    let tile = |id: &str| {
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"tile_id": id, "period": "last_90_days"}))
            .send()
    };
    let summary: Value = tile("spycloud_exposure_summary").await?.json().await?;
    let scan_time = started.elapsed();
    let pages = (fake.calls() - before).watchlist;
    let table: Value = tile("spycloud_most_exposed_employees")
        .await?
        .json()
        .await?;
    fake.set_delay(UPSTREAM_DELAY);
    let peak = memory(relay.pid())?;
    relay.stop();
    let figures: Vec<u64> = (0..2)
        .map(|n| summary["data"]["data"][n]["value"].as_u64().unwrap_or(0))
        .collect();
    let rows = table["data"]["data"].as_array().map_or(0, Vec::len);
    if figures != [records as u64, records as u64] || rows != 12 {
        let mut shown = format!("{summary} {table}");
        shown.truncate(500);
        return Err(format!("the scan of {records} distinct employees answered {shown}").into());
    }
    let peak = peak.peak_kib as f64 / 1024.0;
    Ok(vec![
        Row::new(
            format!(
                "tiles: 90-day scan of {records} records of as many employees, \
                 a device of its own every {devices_every}"
            ),
            format!(
                "{:.2} s for {pages} pages of {SCAN_PAGE}, the fake answering at once \
                 ({:.0} records/s)",
                scan_time.as_secs_f64(),
                records as f64 / scan_time.as_secs_f64()
            ),
            "",
            None,
        ),
        Row::new(
            "  peak RSS after it",
            format!(
                "{peak:.1} MiB; at start {:.1}",
                startup.rss_kib as f64 / 1024.0
            ),
            "< 64 MiB",
            Some(peak < 64.0),
        ),
    ])
}

/// One observe of [`PAGED_EMAIL`], whose catalog comes on the last of [`CATALOG_PAGES`] pages
/// of about 1 MiB, on a fresh relay; a row for its peak RSS.
async fn paged_catalogs(fake: &FakeSpyCloud) -> Result<Row> {
    let relay = RelayProcess::start(fake, &[("SPYCLOUD_MAX_RPS", RELAY_MAX_RPS)])?;
    let jwks_host = fake.server.address().to_string();
    let claims = jwt::default_claims(&jwks_host, AUDIENCE);
    let bench = Bench {
        client: reqwest::Client::new(),
        url: format!("{}/observe/observables", relay.base_url),
        token: jwt::TokenMinter.mint(jwt::KID_1, &claims),
        all: Value::Null,
        one: Value::Null,
    };
    let startup = memory(relay.pid())?;
    let before = fake.calls();
    let started = Instant::now();
    let response = bench
        .client
        .post(&bench.url)
        .bearer_auth(&bench.token)
        .json(&observables(&[PAGED_EMAIL.to_owned()]))
        .send()
        .await?;
    let answer: Value = response.json().await?;
    let wall = started.elapsed();
    let calls = (fake.calls() - before).catalogs;
    let peak = memory(relay.pid())?;
    relay.stop();
    if answer.get("errors").is_some() || answer["data"]["indicators"]["count"] != 1 {
        let mut shown = answer.to_string();
        shown.truncate(500);
        return Err(format!("the paged-catalog lookup answered {shown}").into());
    }
    let peak = peak.peak_kib as f64 / 1024.0;
    Ok(Row::new(
        format!("paged catalog: one observe, its catalog on page {CATALOG_PAGES} of ~1 MiB each"),
        format!(
            "{peak:.1} MiB peak RSS ({calls} catalog calls, {:.0} ms; at start {:.1})",
            millis(wall),
            startup.rss_kib as f64 / 1024.0
        ),
        "< 40 MiB",
        Some(peak < 40.0),
    ))
}

/// What the benchmark sends, and where.
struct Bench {
    client: reqwest::Client,
    url: String,
    token: String,
    all: Value,
    one: Value,
}

impl Bench {
    /// The same requests, sent to the relay at `base_url`.
    fn at(&self, base_url: &str) -> Self {
        Self {
            client: self.client.clone(),
            url: format!("{base_url}/observe/observables"),
            token: self.token.clone(),
            all: self.all.clone(),
            one: self.one.clone(),
        }
    }

    /// One observe request, checked: every record of every email came back, without errors.
    async fn observe(&self, observables: &Value, emails: usize) -> Result<()> {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(observables)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        let sightings = body["data"]["sightings"]["count"].as_u64();
        let expected = (emails * RECORDS_PER_EMAIL) as u64;
        if !status.is_success() || body.get("errors").is_some() || sightings != Some(expected) {
            let mut shown = body.to_string();
            shown.truncate(500);
            return Err(format!(
                "the relay answered HTTP {status} without the {expected} sightings expected: {shown}"
            )
            .into());
        }
        Ok(())
    }
}

impl Bench {
    /// The big domain's lookup, checked: the newest 100 of `records`, newest first, no errors.
    async fn observe_domain(&self, records: usize) -> Result<()> {
        let observables = json!([{"type": "domain", "value": BIG_DOMAIN}]);
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&observables)
            .send()
            .await?;
        let body: Value = response.json().await?;
        let sightings = body["data"]["sightings"]["docs"].as_array();
        let newest = sightings
            .and_then(|list| list.first())
            .and_then(|s| s["observed_time"]["start_time"].as_str());
        let expected_newest = format!("{}.000000Z", newest_domain_date(records));
        if body.get("errors").is_some()
            || sightings.map(Vec::len) != Some(100.min(records))
            || newest != Some(expected_newest.as_str())
        {
            let mut shown = body.to_string();
            shown.truncate(500);
            return Err(format!("the big domain's answer is not its newest 100: {shown}").into());
        }
        Ok(())
    }

    /// Sends `body` without a token: the relay must answer with the missing-header error.
    async fn refused_without_token(&self, body: &str) -> Result<()> {
        let response = self
            .client
            .post(&self.url)
            .body(body.to_owned())
            .send()
            .await?;
        let answer: Value = response.json().await?;
        if answer["errors"][0]["message"] != "Authorization failed: Authorization header is missing"
        {
            let mut shown = answer.to_string();
            shown.truncate(500);
            return Err(format!("a body without a token was not refused: {shown}").into());
        }
        Ok(())
    }
}

/// A 1 MiB observe body: 26 000 distinct email observables.
fn huge_body() -> String {
    let items: Vec<Value> = (0..26_000)
        .map(|n| json!({"type": "email", "value": format!("e{n:05}@x.co")}))
        .collect();
    Value::Array(items).to_string()
}

impl Bench {
    /// The relay's CPU time per warm one-email request over `requests` of them, each after
    /// `pause` of idle time if given; and the wall time of the whole run.
    async fn cpu_per_request(
        &self,
        pid: u32,
        requests: usize,
        pause: Option<Duration>,
    ) -> Result<(Duration, Duration)> {
        let before = cpu_time(pid)?;
        let started = Instant::now();
        for _ in 0..requests {
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
            self.observe(&self.one, 1).await?;
        }
        let wall = started.elapsed();
        Ok(((cpu_time(pid)? - before) / requests as u32, wall))
    }
}

/// Two relays on one `redis-server` (started here; the rows say so when it is not installed):
/// the wall and CPU time of a warm one-email request with the rate limit and catalog cache in
/// Redis against `local` (the relay above, all in its process), and the upstream calls two
/// replicas at `REPLICA_RATE` each make when driven above it together.
async fn replicas(
    fake: &FakeSpyCloud,
    local: &Bench,
    local_pid: u32,
    plan: &Plan,
) -> Result<Vec<Row>> {
    let Some(redis) = redis_server::RedisServer::start() else {
        return Ok(vec![Row::new(
            "replicas on one Redis",
            "not measured: redis-server is not installed".to_owned(),
            "",
            None,
        )]);
    };
    let url = redis.url();
    let shared = [
        ("RELAY_REDIS_URL", url.as_str()),
        ("RELAY_REDIS_KEY_SECRET", REDIS_KEY_SECRET),
    ];
    fake.set_delay(Duration::ZERO);

    // a. A request's cost of Redis: two round trips for a one-email lookup (the rate limit's
    // script before the SpyCloud call, one MGET of its catalogs), the relay answering at once.
    let with = |rate| [shared[0], shared[1], ("SPYCLOUD_MAX_RPS", rate)];
    let on_redis = RelayProcess::start(fake, &with(RELAY_MAX_RPS))?;
    let remote = local.at(&on_redis.base_url);
    remote.observe(&remote.one, 1).await?;
    let mut walls = Vec::new();
    for bench in [local, &remote] {
        let mut times = Vec::with_capacity(plan.redis_requests);
        for _ in 0..plan.redis_requests {
            let started = Instant::now();
            bench.observe(&bench.one, 1).await?;
            times.push(started.elapsed());
        }
        walls.push(Summary::of(times).median);
    }
    let (local_cpu, _) = local
        .cpu_per_request(local_pid, plan.redis_requests, None)
        .await?;
    let (redis_cpu, _) = remote
        .cpu_per_request(on_redis.pid(), plan.redis_requests, None)
        .await?;
    on_redis.stop();

    // b. Two replicas at REPLICA_RATE each, eight clients over both, for `rate_secs`: the
    // calls SpyCloud sees against what one limit allows (a burst of the rate, then the rate).
    let rate = REPLICA_RATE.to_string();
    let first = RelayProcess::start(fake, &with(&rate))?;
    let second = RelayProcess::start(fake, &with(&rate))?;
    let benches = [
        Arc::new(local.at(&first.base_url)),
        Arc::new(local.at(&second.base_url)),
    ];
    // Catalogs into Redis, then a second for the bucket to fill again.
    benches[0].observe(&benches[0].one, 1).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fake.calls();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(plan.rate_secs as u64);
    let clients: Vec<_> = (0..8)
        .map(|n| {
            let bench = benches[n % 2].clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    bench.observe(&bench.one, 1).await?;
                }
                Ok::<_, Box<dyn Error + Send + Sync>>(())
            })
        })
        .collect();
    tokio::time::sleep_until(deadline.into()).await;
    let calls = (fake.calls() - before).emails;
    let elapsed = started.elapsed().as_secs_f64();
    for client in clients {
        client.await??;
    }
    first.stop();
    second.stop();
    fake.set_delay(UPSTREAM_DELAY);
    drop(redis);

    let allowed = REPLICA_RATE as f64 * (1.0 + elapsed);
    Ok(vec![
        Row::new(
            format!("warm 1-email request, median of {}", plan.redis_requests),
            format!(
                "{:.3} ms with Redis, {:.3} ms in the process: {:+.3} ms for 2 round trips",
                millis(walls[1]),
                millis(walls[0]),
                millis(walls[1]) - millis(walls[0])
            ),
            "",
            None,
        ),
        Row::new(
            "  CPU per request, Redis / in the process",
            format!(
                "{:.3} / {:.3} ms: {:+.3} ms",
                millis(redis_cpu),
                millis(local_cpu),
                millis(redis_cpu) - millis(local_cpu)
            ),
            "",
            None,
        ),
        Row::new(
            format!("2 replicas at {REPLICA_RATE}/s on one Redis, 8 clients"),
            format!(
                "{calls} SpyCloud calls in {elapsed:.2} s = {:.1}/s; one limit allows {allowed:.0}",
                calls as f64 / elapsed
            ),
            "<= burst + rate x time",
            Some(calls as f64 <= allowed + 1.0),
        ),
    ])
}

/// How much slower this machine runs a fixed computation (reading and writing one email's page
/// of records, in this process) right after a `PAUSE` of idle time than back to back: median
/// against median. Caches gone cold and a virtual CPU woken up again cost CPU time that no
/// program can avoid; this shows how much of the spaced figure that is.
async fn idle_slowdown(fake: &FakeSpyCloud, runs: usize) -> f64 {
    let page = fake
        .upstream
        .breaches
        .get(&fake.emails[0])
        .cloned()
        .unwrap_or_default();
    let work = || {
        let started = Instant::now();
        let parsed: Value = serde_json::from_slice(&page).unwrap_or_default();
        std::hint::black_box(parsed.to_string());
        started.elapsed()
    };
    let back_to_back = Summary::of((0..runs).map(|_| work()).collect()).median;
    let mut after_pause = Vec::with_capacity(runs);
    for _ in 0..runs {
        tokio::time::sleep(PAUSE).await;
        after_pause.push(work());
    }
    ratio(Summary::of(after_pause).median, back_to_back)
}

fn observables(emails: &[String]) -> Value {
    emails
        .iter()
        .map(|email| json!({"type": "email", "value": email}))
        .collect()
}

/// Calls the fake answered so far, per endpoint.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    emails: u64,
    catalogs: u64,
    watchlist: u64,
    jwks: u64,
    other: u64,
}

impl Calls {
    /// Calls to SpyCloud itself (the JWKS belongs to SecureX).
    fn spycloud(&self) -> u64 {
        self.emails + self.catalogs + self.watchlist + self.other
    }
}

impl std::ops::Sub for Calls {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            emails: self.emails - earlier.emails,
            catalogs: self.catalogs - earlier.catalogs,
            watchlist: self.watchlist - earlier.watchlist,
            jwks: self.jwks - earlier.jwks,
            other: self.other - earlier.other,
        }
    }
}

/// The fake's state: its answers, its delay, and what it was asked.
struct Upstream {
    delay_ms: AtomicU64,
    breaches: HashMap<String, Vec<u8>>,
    /// The big domain's pages, by the cursor that asks for them (`""` for the first).
    domain_pages: HashMap<String, Vec<u8>>,
    jwks: Vec<u8>,
    watchlist: Watchlist,
    /// The watchlist of as many employees as records, served for `severity=99`.
    distinct: Watchlist,
    emails: AtomicU64,
    catalogs: AtomicU64,
    watchlist_pages: AtomicU64,
    jwks_fetches: AtomicU64,
    other: AtomicU64,
}

/// The fake's watchlist: `records` records spread evenly over the 89 days before `now` (so all
/// stay inside a 90-day period however long the phases before the scan take), newest first,
/// made up page by page as they are asked for (holding them would take this process hundreds
/// of MiB).
struct Watchlist {
    now: chrono::DateTime<chrono::Utc>,
    records: usize,
    /// Record `n` is of employee `n mod employees`.
    employees: usize,
    /// With as many employees as records: every so many records has a machine id of its own.
    devices_every: usize,
}

impl Watchlist {
    fn step(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::days(89) / self.records.max(1) as i32
    }

    /// The page after `cursor` (none: the first) of the records published since the day
    /// `since` (`YYYY-MM-DD`), as SpyCloud would send it.
    fn page(&self, since: &str, cursor: Option<&str>) -> Vec<u8> {
        let since = chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d")
            .map(|day| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
            .unwrap_or(self.now);
        let reach = (self.now - since).num_milliseconds().max(0);
        let step = self.step().num_milliseconds().max(1);
        let matching = self.records.min((reach / step) as usize + 1);
        let first = cursor.and_then(|c| c.parse::<usize>().ok()).unwrap_or(0) * SCAN_PAGE;
        let last = (first + SCAN_PAGE).min(matching);
        let results: Vec<Value> = (first..last).map(|n| self.record(n)).collect();
        let cursor = if last < matching {
            (first / SCAN_PAGE + 1).to_string()
        } else {
            String::new()
        };
        json!({"cursor": cursor, "hits": matching, "results": results})
            .to_string()
            .into_bytes()
    }

    /// Record `n`: employee `n mod employees`, catalog `n mod 50`, an infostealer record every
    /// fourth. With as many employees as records, emails and machine ids are long (about 100
    /// characters) and each of its own.
    fn record(&self, n: usize) -> Value {
        let published = self.now - self.step() * n as i32;
        let employee = n % self.employees;
        let severity = [2, 5, 20, 25][n % 4];
        let mut record = json!({
            "document_id": format!("5ca1ab1e-{n:08}-4d7a-9b3f-0123456789ab"),
            "source_id": FIRST_CATALOG + (n as u64 % SCAN_CATALOGS),
            "email": format!("employee{employee}@bench.example.com"),
            "email_domain": "bench.example.com",
            "email_username": format!("employee{employee}"),
            "domain": "bench.example.com",
            "username": format!("employee{employee}"),
            "password": format!("hunter{n}!"),
            "password_type": if n.is_multiple_of(3) { "plaintext" } else { "sha1" },
            "target_url": format!("https://login.site{}.example.org/account", n % 8),
            "ip_addresses": [format!("203.0.113.{}", n % 250)],
            "severity": severity,
            "spycloud_publish_date": published.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
        if n % 4 == 3 {
            record["infected_machine_id"] = json!(format!("c0ffee{employee:04}-{}", n % 3));
            record["password_plaintext"] = json!(format!("hunter{n}!"));
            record["user_hostname"] = json!("DESKTOP-BENCH");
        }
        if self.employees == self.records {
            let local = format!("employee{n:08}.{}", "x".repeat(64));
            record["email"] = json!(format!("{local}@bench.example.com"));
            record["email_username"] = json!(local);
            if n % self.devices_every == self.devices_every - 1 {
                record["infected_machine_id"] = json!(format!("{n:08}-{}", "m".repeat(90)));
            }
        }
        record
    }
}

/// A wiremock responder over [`Upstream`]: SpyCloud's two endpoints after the delay, the JWKS
/// at once.
struct Responder(Arc<Upstream>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let upstream = &self.0;
        let path = percent_encoding::percent_decode_str(request.url.path())
            .decode_utf8_lossy()
            .into_owned();
        let delay = Duration::from_millis(upstream.delay_ms.load(Ordering::Relaxed));
        let json = |body: Vec<u8>| {
            ResponseTemplate::new(200)
                .set_body_raw(body, "application/json")
                .set_delay(delay)
        };
        if path == jwt::JWKS_PATH {
            upstream.jwks_fetches.fetch_add(1, Ordering::Relaxed);
            return ResponseTemplate::new(200)
                .set_body_raw(upstream.jwks.clone(), "application/json");
        }
        if let Some(email) = path.strip_prefix("/breach/data/emails/") {
            upstream.emails.fetch_add(1, Ordering::Relaxed);
            let body = upstream
                .breaches
                .get(email)
                .cloned()
                .unwrap_or_else(|| page(Vec::new()));
            return json(body);
        }
        if path == "/breach/data/watchlist" {
            upstream.watchlist_pages.fetch_add(1, Ordering::Relaxed);
            let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
            let since = query.get("since").map_or("", String::as_str);
            let watchlist = if query.get("severity").map(String::as_str) == Some(DISTINCT_SEVERITY)
            {
                &upstream.distinct
            } else {
                &upstream.watchlist
            };
            let body = watchlist.page(since, query.get("cursor").map(String::as_str));
            return json(body);
        }
        if path == format!("/breach/data/domains/{BIG_DOMAIN}") {
            upstream.other.fetch_add(1, Ordering::Relaxed);
            let cursor = request
                .url
                .query_pairs()
                .find(|(name, _)| name == "cursor")
                .map(|(_, cursor)| cursor.into_owned())
                .unwrap_or_default();
            if let Some(page) = upstream.domain_pages.get(&cursor) {
                return json(page.clone());
            }
        }
        if let Some(list) = path.strip_prefix("/breach/catalog/") {
            upstream.catalogs.fetch_add(1, Ordering::Relaxed);
            if list == PAGED_CATALOG.to_string() {
                let cursor = request
                    .url
                    .query_pairs()
                    .find(|(name, _)| name == "cursor")
                    .and_then(|(_, cursor)| cursor.parse::<usize>().ok())
                    .unwrap_or(0);
                return json(paged_catalog_page(cursor));
            }
            let found = list
                .split(',')
                .filter_map(|id| id.trim().parse::<u64>().ok())
                .filter(|id| {
                    (FIRST_CATALOG..FIRST_CATALOG + CATALOGS.max(SCAN_CATALOGS)).contains(id)
                })
                .map(catalog)
                .collect();
            return json(page(found));
        }
        upstream.other.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(404)
            .set_body_json(json!({"message": "Not Found"}))
            .set_delay(delay)
    }
}

/// SpyCloud and the SecureX JWKS on one loopback wiremock server.
struct FakeSpyCloud {
    server: MockServer,
    upstream: Arc<Upstream>,
    emails: Vec<String>,
}

impl FakeSpyCloud {
    async fn start(plan: &Plan) -> Self {
        let (domain_records, scan_records) = (plan.domain_records, plan.scan_records);
        let emails: Vec<String> = (0..EMAILS)
            .map(|i| format!("user{i}.bench@example.com"))
            .collect();
        let paged: Vec<Value> = (0..RECORDS_PER_EMAIL)
            .map(|n| {
                let mut record = breach_record(PAGED_EMAIL, n);
                record["source_id"] = json!(PAGED_CATALOG);
                record
            })
            .collect();
        let breaches = emails
            .iter()
            .enumerate()
            .map(|(i, email)| {
                let records = (0..RECORDS_PER_EMAIL)
                    .map(|j| breach_record(email, i * RECORDS_PER_EMAIL + j))
                    .collect();
                (email.clone(), page(records))
            })
            .chain([(PAGED_EMAIL.to_owned(), page(paged))])
            .collect();
        let upstream = Arc::new(Upstream {
            delay_ms: AtomicU64::new(UPSTREAM_DELAY.as_millis() as u64),
            breaches,
            domain_pages: domain_pages(domain_records),
            jwks: jwt::jwks().to_string().into_bytes(),
            watchlist: Watchlist {
                now: chrono::Utc::now(),
                records: scan_records,
                employees: SCAN_EMPLOYEES,
                devices_every: 4,
            },
            distinct: Watchlist {
                now: chrono::Utc::now(),
                records: plan.distinct_records,
                employees: plan.distinct_records,
                devices_every: plan.distinct_devices_every,
            },
            emails: AtomicU64::new(0),
            catalogs: AtomicU64::new(0),
            watchlist_pages: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            other: AtomicU64::new(0),
        });
        // Recording would keep every request in this process for nothing.
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(any())
            .respond_with(Responder(upstream.clone()))
            .mount(&server)
            .await;
        Self {
            server,
            upstream,
            emails,
        }
    }

    fn set_delay(&self, delay: Duration) {
        self.upstream
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    fn calls(&self) -> Calls {
        let upstream = &self.upstream;
        Calls {
            emails: upstream.emails.load(Ordering::Relaxed),
            catalogs: upstream.catalogs.load(Ordering::Relaxed),
            watchlist: upstream.watchlist_pages.load(Ordering::Relaxed),
            jwks: upstream.jwks_fetches.load(Ordering::Relaxed),
            other: upstream.other.load(Ordering::Relaxed),
        }
    }
}

/// Page `number` of the answer for [`PAGED_CATALOG`]: about 1 MiB of catalogs not asked for
/// (200, each with a 4 000-character description), the next page's cursor, and on the last page the catalog.
fn paged_catalog_page(number: usize) -> Vec<u8> {
    let mut results: Vec<Value> = (0..200)
        .map(|n| {
            let mut other = catalog(FIRST_CATALOG + (n % CATALOGS));
            other["id"] = json!(100_000 + number * 1_000 + n as usize);
            other["description"] = json!("d".repeat(4_000));
            other
        })
        .collect();
    let last = number + 1 >= CATALOG_PAGES;
    if last {
        let mut wanted = catalog(FIRST_CATALOG);
        wanted["id"] = json!(PAGED_CATALOG);
        results.push(wanted);
    }
    let cursor = if last {
        String::new()
    } else {
        (number + 1).to_string()
    };
    json!({"cursor": cursor, "hits": results.len(), "results": results})
        .to_string()
        .into_bytes()
}

/// SpyCloud's page envelope, one page only.
fn page(results: Vec<Value>) -> Vec<u8> {
    json!({"cursor": "", "hits": results.len(), "results": results})
        .to_string()
        .into_bytes()
}

/// The big domain's pages of [`BIG_PAGE`] records, each about 1 KB, chained by cursors, keyed by
/// the cursor that asks for each.
fn domain_pages(records: usize) -> HashMap<String, Vec<u8>> {
    let pages = records.div_ceil(BIG_PAGE);
    (0..pages)
        .map(|number| {
            let results: Vec<Value> = (number * BIG_PAGE..records.min((number + 1) * BIG_PAGE))
                .map(domain_record)
                .collect();
            let cursor = if number + 1 < pages {
                format!("page-{}", number + 1)
            } else {
                String::new()
            };
            let key = if number == 0 {
                String::new()
            } else {
                format!("page-{number}")
            };
            let body = json!({"cursor": cursor, "hits": records, "results": results});
            (key, body.to_string().into_bytes())
        })
        .collect()
}

/// The publish date of the big domain's record `n`: spread over 2015–2024, in no order.
fn domain_date(n: usize) -> String {
    let m = (n * 7919) % 3650;
    format!(
        "{}-{:02}-{:02}T00:00:00",
        2015 + m / 365,
        1 + (m % 365) / 31 % 12,
        1 + m % 28
    )
}

/// The newest date among the big domain's first `records` records.
fn newest_domain_date(records: usize) -> String {
    (0..records).map(domain_date).max().unwrap_or_default()
}

/// Record `n` of the big domain: an employee's infostealer record of about 1 KB.
fn domain_record(n: usize) -> Value {
    let mut record = breach_record(&format!("employee{n}@{BIG_DOMAIN}"), n);
    record["spycloud_publish_date"] = json!(format!("{}Z", domain_date(n)));
    let size = record.to_string().len();
    // Pads to about 1 KB, as SpyCloud's infostealer records with their machine details are.
    record["user_agent"] = json!("Mozilla/5.0 ".repeat(1000usize.saturating_sub(size) / 12));
    record
}

/// Record number `n` of the whole data set: an email breach or an infostealer record, with the
/// fields SpyCloud sends; record `n` belongs to catalog `n mod 8`.
fn breach_record(email: &str, n: usize) -> Value {
    let (user, domain) = email.split_once('@').unwrap_or((email, "example.com"));
    let source_id = FIRST_CATALOG + (n as u64 % CATALOGS);
    let day = 1 + n % 28;
    let month = 1 + n % 12;
    let severity = [2, 5, 20, 25][n % 4];
    let mut record = json!({
        "document_id": format!("8f2b{n:04}-5c1e-4d7a-9b3f-{:012x}", n * 7919),
        "source_id": source_id,
        "email": email,
        "email_domain": domain,
        "email_username": user,
        "domain": domain,
        "username": format!("{user}{n}"),
        "full_name": "Bench User",
        "password": format!("hunter{n}!"),
        "password_plaintext": format!("hunter{n}!"),
        "password_type": "plaintext",
        "target_url": format!("https://login.site{}.example.org/account", n % 8),
        "ip_addresses": [format!("203.0.113.{}", n % 250)],
        "country": "United States",
        "country_code": "US",
        "sighting": 1 + n % 3,
        "severity": severity,
        "spycloud_publish_date": format!("2023-{month:02}-{day:02}T00:00:00Z"),
    });
    if n % 4 == 3 {
        record["infected_machine_id"] = json!(format!("c0ffee{n:04}-aaaa-bbbb-cccc-0123456789ab"));
        record["infected_path"] = json!("C:\\Users\\bench\\AppData\\Local\\Temp\\stealer.exe");
        record["infected_time"] = json!(format!("2023-{month:02}-{day:02}T03:14:15Z"));
        record["user_browser"] = json!("Google Chrome New");
        record["user_os"] = json!("Windows 10 Pro [x64]");
        record["user_hostname"] = json!("DESKTOP-BENCH");
    }
    record
}

/// The catalog entry of `id`, with the fields SpyCloud sends.
fn catalog(id: u64) -> Value {
    let n = id - FIRST_CATALOG;
    json!({
        "id": id,
        "uuid": format!("5f1e{n:04}-0d6c-4b59-a1b2-{id:012}"),
        "title": format!("Site {n} Breach"),
        "short_title": format!("Site {n}"),
        "description": format!("In 2022, site {n} suffered a breach exposing emails and passwords of its users."),
        "site": if n.is_multiple_of(4) { "n/a".to_owned() } else { format!("site{n}.example.org") },
        "site_description": format!("Site {n} is an online community."),
        "confidence": 1 + n % 3,
        "combo_list_flag": if n == 5 { "YES" } else { "NO" },
        "type": "PUBLIC",
        "num_records": 1_000_000 + n * 1_234,
        "acquisition_date": "2022-11-02T00:00:00Z",
        "spycloud_publish_date": "2022-12-01T00:00:00Z",
        "assets": {"email": 1_000_000, "password": 900_000, "username": 800_000, "ip_addresses": 12_000},
        "tlp": "amber",
    })
}

/// `spycloud-relay lookup` of the big domain's newest `limit` records, once per format: rows
/// with its wall time, CPU time and peak RSS (its own rusage) and the size of what it printed,
/// after checking that it printed `limit` sightings or incidents.
async fn lookup_formats(fake: &FakeSpyCloud, limit: usize) -> Result<Vec<Row>> {
    let address = fake.server.address().to_string();
    let mut rows = Vec::new();
    for format in ["ctim", "stix"] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spycloud-relay"));
        command
            .args([
                "lookup",
                "--format",
                format,
                "--limit",
                &limit.to_string(),
                BIG_DOMAIN,
            ])
            .env("SPYCLOUD_API_URL", format!("http://{address}"))
            .env("SPYCLOUD_API_KEY", "bench-api-key")
            .env("SPYCLOUD_MAX_RPS", RELAY_MAX_RPS)
            .env("RELAY_MAX_RECORDS", RELAY_MAX_RECORDS)
            .env("RELAY_LOG", "error");
        let started = Instant::now();
        let (printed, usage) = tokio::task::spawn_blocking(move || measured(command))
            .await
            .map_err(|error| format!("the lookup's thread failed: {error}"))??;
        let wall = started.elapsed();
        let answer: Value = serde_json::from_slice(&printed)?;
        let found = match format {
            "ctim" => answer["data"]["sightings"]["docs"].as_array().map(Vec::len),
            _ => answer["objects"]
                .as_array()
                .map(|objects| objects.iter().filter(|o| o["type"] == "incident").count()),
        };
        if found != Some(limit) {
            return Err(format!("lookup --format {format} found {found:?}, not {limit}").into());
        }
        let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
        rows.push(Row::new(
            format!("lookup --format {format}: the big domain's newest {limit}"),
            format!(
                "{:.0} ms, {:.0} ms CPU, peak RSS {:.1} MiB, {:.1} MB printed",
                millis(wall),
                millis(cpu),
                usage.ru_maxrss as f64 / 1024.0,
                printed.len() as f64 / 1e6
            ),
            "",
            None,
        ));
    }
    Ok(rows)
}

/// Runs `command` to its end: what it printed on stdout, and its resource usage.
fn measured(mut command: Command) -> Result<(Vec<u8>, libc::rusage)> {
    use std::io::Read as _;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut printed = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_end(&mut printed)?;
    }
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: all zeros is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        return Err(std::io::Error::last_os_error().into());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("{command:?} failed: status {status}").into());
    }
    Ok((printed, usage))
}

fn timeval(time: libc::timeval) -> Duration {
    Duration::from_secs(time.tv_sec as u64) + Duration::from_micros(time.tv_usec as u64)
}

/// The release binary of the relay, started as its own process, killed when dropped.
struct RelayProcess {
    child: Child,
    base_url: String,
    // Kept open: the relay must not find its stdout closed.
    _stdout: BufReader<ChildStdout>,
}

impl RelayProcess {
    /// The relay against `fake`, with `env` on top of the benchmark's settings.
    fn start(fake: &FakeSpyCloud, env: &[(&str, &str)]) -> Result<Self> {
        let binary = env!("CARGO_BIN_EXE_spycloud-relay");
        let address = fake.server.address().to_string();
        let mut command = Command::new(binary);
        let mut child = command
            .arg("serve")
            .env("RELAY_LISTEN", "127.0.0.1:0")
            .env("SPYCLOUD_API_URL", format!("http://{address}"))
            .env("RELAY_JWKS_HOSTS", &address)
            .env("RELAY_JWKS_SCHEME", "http")
            .env("RELAY_AUDIENCE", AUDIENCE)
            .env("RELAY_LOG", "warn")
            .env("RELAY_MAX_RECORDS", RELAY_MAX_RECORDS)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start {binary}: {error}"))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err("the relay's stdout is not piped".into());
        };
        let mut process = Self {
            child,
            base_url: String::new(),
            _stdout: BufReader::new(stdout),
        };
        let mut line = String::new();
        process._stdout.read_line(&mut line)?;
        match line
            .trim()
            .strip_prefix("spycloud-relay listening on ")
            .filter(|url| url.starts_with("http://"))
        {
            Some(url) => process.base_url = url.to_owned(),
            None => return Err(format!("the relay did not announce its address: {line:?}").into()),
        }
        Ok(process)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User plus system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it do not.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the state (field 3) is fields[0].
    let ticks = |index: usize| -> Result<u64> {
        Ok(fields
            .get(index)
            .ok_or("short /proc/<pid>/stat")?
            .parse::<u64>()?)
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(100);
    Ok(Duration::from_nanos(total * 1_000_000_000 / per_second))
}

/// Memory figures of process `pid`, from `/proc/<pid>/status`.
struct Memory {
    peak_kib: u64,
    rss_kib: u64,
    threads: u64,
}

fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status").into())
    };
    Ok(Memory {
        peak_kib: field("VmHWM:")?,
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
    })
}

/// Order statistics of a phase's wall times.
struct Summary {
    count: usize,
    min: Duration,
    median: Duration,
    p90: Duration,
    max: Duration,
}

impl Summary {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort_unstable();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        Self {
            count: times.len(),
            min: at(0.0),
            median: at(0.5),
            p90: at(0.9),
            max: at(1.0),
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn ratio(measured: Duration, reference: Duration) -> f64 {
    measured.as_secs_f64() / reference.as_secs_f64()
}

fn per(count: u64, runs: usize) -> f64 {
    count as f64 / runs as f64
}

/// One line of the report.
struct Row {
    metric: String,
    measured: String,
    target: &'static str,
    met: Option<bool>,
}

impl Row {
    fn new(
        metric: impl Into<String>,
        measured: String,
        target: &'static str,
        met: Option<bool>,
    ) -> Self {
        Self {
            metric: metric.into(),
            measured,
            target,
            met,
        }
    }
}

fn report(rows: &[Row]) -> String {
    let width = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (metric, measured, target) = (
        width(|r| r.metric.len()).max(6),
        width(|r| r.measured.len()).max(8),
        width(|r| r.target.len()).max(6),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "spycloud-relay bench: {EMAILS} emails x {RECORDS_PER_EMAIL} records over {CATALOGS} catalogs; \
         fake SpyCloud answers after {} ms",
        UPSTREAM_DELAY.as_millis()
    );
    let _ = writeln!(
        out,
        "{:metric$}  {:measured$}  {:target$}  result",
        "metric", "measured", "target"
    );
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(metric + measured + target + 6 + "result".len())
    );
    for row in rows {
        let result = match row.met {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "",
        };
        let line = format!(
            "{:metric$}  {:measured$}  {:target$}  {result}",
            row.metric, row.measured, row.target
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let missed = rows.iter().filter(|r| r.met == Some(false)).count();
    let _ = write!(
        out,
        "{} of {} targets met",
        rows.iter().filter(|r| r.met == Some(true)).count(),
        rows.iter().filter(|r| r.met.is_some()).count()
    );
    if missed > 0 {
        let _ = write!(out, " ({missed} missed)");
    }
    out
}
