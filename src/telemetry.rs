//! Logging and metrics. One log subscriber for the whole process, text or JSON, filtered by
//! `RELAY_LOG`, writing to stderr so `lookup` can print its JSON alone on stdout. Metrics go
//! through the `metrics` facade (free when no recorder is installed) and are served as
//! Prometheus text when `RELAY_METRICS_LISTEN` is set. Nothing here ever sees a secret: labels
//! are routes, outcome codes, endpoint names and statuses.
//!
//! Every request is served inside a `request` span carrying its id (see the transport), so
//! every line logged while serving it names the request; work a request hands to a task of its
//! own keeps the span through [`counted_for_this_request`].

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument;

/// The most characters of a caller-supplied value a log line shows.
pub const MAX_LOGGED_CHARS: usize = 100;

/// `value` cut to [`MAX_LOGGED_CHARS`] characters, with `…` when cut: for any value a caller
/// chose (a `jwks_host`, a request id) before it goes into a log line.
pub fn cut(value: &str) -> std::borrow::Cow<'_, str> {
    cut_to(value, MAX_LOGGED_CHARS)
}

/// `value` cut to `max` characters, with `…` when cut.
pub fn cut_to(value: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &value[..end]).into(),
        None => value.into(),
    }
}

/// What the upstream calls made while serving one request came to.
#[derive(Debug, Default)]
pub struct UpstreamSummary {
    calls: AtomicU32,
    /// The last call that failed: its endpoint and status (`429`, `error`, ...), with the cause
    /// SpyCloud named (`429 LimitExceededException`, `403 Invalid IP`, ...).
    last_failure: Mutex<Option<(&'static str, String)>>,
}

impl UpstreamSummary {
    /// Calls made.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// `"<endpoint> <status>"` of the last call that did not succeed, if any.
    pub fn last_failure(&self) -> Option<String> {
        let failure = self.last_failure.lock().ok()?;
        failure
            .as_ref()
            .map(|(endpoint, status)| format!("{endpoint} {status}"))
    }
}

tokio::task_local! {
    /// The upstream calls of the request being served now.
    static UPSTREAM: Arc<UpstreamSummary>;
}

/// Runs `work` counting the upstream calls it makes (for the request's log line).
pub async fn counting_upstream_calls<F: Future>(work: F) -> (F::Output, Arc<UpstreamSummary>) {
    let summary = Arc::new(UpstreamSummary::default());
    let output = UPSTREAM.scope(summary.clone(), work).await;
    (output, summary)
}

/// `work` with its upstream calls counted, and its log lines in the span, of the request being
/// served now, if any: for work a request hands to a task of its own.
pub fn counted_for_this_request<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let summary = UPSTREAM.try_with(Arc::clone).ok();
    let span = tracing::Span::current();
    async move {
        match summary {
            Some(summary) => UPSTREAM.scope(summary, work).await,
            None => work.await,
        }
    }
    .instrument(span)
}

/// Records one HTTP call to SpyCloud: `endpoint` (`emails`, `catalog`, `watchlist`), the
/// status it got (`200`, `429`, ..., or `error` when there was no answer), the cause SpyCloud's
/// headers named beside it (`LimitExceededException`, `Invalid IP`, ...; for the request's log
/// line, not the metrics) and how long it took.
pub fn upstream_call(
    endpoint: &'static str,
    status: &str,
    signal: Option<&str>,
    duration: Duration,
) {
    let _ = UPSTREAM.try_with(|summary| {
        summary.calls.fetch_add(1, Ordering::Relaxed);
        if !status.starts_with('2')
            && let Ok(mut failure) = summary.last_failure.lock()
        {
            let status = match signal {
                Some(signal) => format!("{status} {signal}"),
                None => status.to_owned(),
            };
            *failure = Some((endpoint, status));
        }
    });
    metrics::counter!("relay_upstream_calls_total", "endpoint" => endpoint, "status" => status.to_owned())
        .increment(1);
    metrics::histogram!("relay_upstream_call_duration_seconds", "endpoint" => endpoint)
        .record(duration.as_secs_f64());
}

/// Records a SpyCloud call about to be retried.
pub fn upstream_retry(endpoint: &'static str) {
    metrics::counter!("relay_upstream_retries_total", "endpoint" => endpoint).increment(1);
}

/// Records a SpyCloud call that waited for the per-key rate limit.
pub fn rate_limit_wait() {
    metrics::counter!("relay_rate_limit_waits_total").increment(1);
}

/// Records one JWKS fetch and whether it failed.
pub fn jwks_fetch(failed: bool) {
    metrics::counter!("relay_jwks_fetches_total").increment(1);
    if failed {
        metrics::counter!("relay_jwks_fetch_failures_total").increment(1);
    }
}

/// Records catalog cache lookups.
pub fn catalog_cache(hits: u64, misses: u64) {
    metrics::counter!("relay_catalog_cache_hits_total").increment(hits);
    metrics::counter!("relay_catalog_cache_misses_total").increment(misses);
}

/// A connection opened on `listener` (`main` or `metrics`); it counts as open until dropped.
pub struct OpenConnection(&'static str);

impl OpenConnection {
    /// Counts a connection as open.
    pub fn new(listener: &'static str) -> Self {
        metrics::gauge!("relay_open_connections", "listener" => listener).increment(1.0);
        Self(listener)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("relay_open_connections", "listener" => self.0).decrement(1.0);
    }
}

/// How one request ended, for its log line and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Done<'a> {
    /// The route, or `-` for an unknown path.
    pub route: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// `ok`, or the code of the fatal error.
    pub outcome: &'a str,
    /// Why it failed, in words (never a secret; caller-supplied parts cut), if it did.
    pub reason: Option<&'a str>,
    /// How long it took.
    pub duration: Duration,
    /// The SpyCloud calls it made.
    pub upstream: Option<&'a UpstreamSummary>,
}

/// Records one answered request and logs its line: route, status, duration (milliseconds with
/// microseconds), upstream calls, outcome (`ok`, or the code of the fatal error), and for a
/// failure its reason and the last SpyCloud call that failed (endpoint and status).
pub fn request_done(done: &Done<'_>) {
    let duration_ms = done.duration.as_micros() as f64 / 1000.0;
    let upstream_calls = done.upstream.map_or(0, UpstreamSummary::calls);
    let upstream_failure = done.upstream.and_then(UpstreamSummary::last_failure);
    match (done.reason, upstream_failure) {
        (None, None) => tracing::info!(
            route = done.route,
            status = done.status,
            duration_ms,
            upstream_calls,
            outcome = done.outcome,
            "request"
        ),
        (reason, failure) => tracing::info!(
            route = done.route,
            status = done.status,
            duration_ms,
            upstream_calls,
            outcome = done.outcome,
            reason = reason
                .map(|reason| cut_to(reason, 2 * MAX_LOGGED_CHARS))
                .as_deref(),
            upstream_failure = failure.as_deref(),
            "request"
        ),
    }
    metrics::counter!("relay_requests_total", "route" => done.route, "outcome" => done.outcome.to_owned())
        .increment(1);
    metrics::histogram!("relay_request_duration_seconds", "route" => done.route)
        .record(done.duration.as_secs_f64());
}

/// The upstream metrics' label of catalog calls.
pub const CATALOG: &str = "catalog";
/// The upstream metrics' label of watchlist calls (the dashboard's scans, the health probe).
pub const WATCHLIST: &str = "watchlist";

/// The SpyCloud endpoints of the upstream metrics, zeroed at start: each observable type's
/// (once), then the catalog's and the watchlist's.
pub fn endpoints() -> Vec<&'static str> {
    let mut endpoints: Vec<&'static str> = Vec::new();
    for kind in crate::domain::ObservableType::ALL {
        if !endpoints.contains(&kind.endpoint()) {
            endpoints.push(kind.endpoint());
        }
    }
    endpoints.extend([CATALOG, WATCHLIST]);
    endpoints
}

/// Records one Redis call served by the process's own state instead (`what`: `rate_limit` or
/// `cache`), because Redis failed, timed out or rests after a failure.
pub fn redis_fallback(what: &'static str) {
    metrics::counter!("relay_redis_fallbacks_total", "use" => what).increment(1);
}

/// Describes every metric family (Prometheus `# HELP`) and sets each to zero, so a scrape
/// shows them all from the start, before anything happened; the request metrics of each of
/// `routes` (the transport's paths).
pub fn describe_metrics(routes: &[&'static str]) {
    for family in FAMILIES {
        family.describe();
    }
    zero_requests(routes);
    zero_upstream_calls();
    zero_the_others();
}

/// How a metric family counts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    /// A histogram of durations, in seconds.
    Seconds,
}

/// A metric family as a scrape describes it.
#[derive(Debug, Clone, Copy)]
struct Family {
    kind: Kind,
    name: &'static str,
    /// Its `# HELP` text.
    help: &'static str,
}

impl Family {
    fn describe(self) {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        match self.kind {
            Kind::Counter => describe_counter!(self.name, self.help),
            Kind::Gauge => describe_gauge!(self.name, self.help),
            Kind::Seconds => describe_histogram!(self.name, Unit::Seconds, self.help),
        }
    }
}

/// Every metric family of the relay, in the order `describe_metrics` describes them.
const FAMILIES: [Family; 14] = [
    Family {
        kind: Kind::Counter,
        name: "relay_requests_total",
        help: "Requests answered, by route and outcome (ok, or the fatal error's code).",
    },
    Family {
        kind: Kind::Seconds,
        name: "relay_request_duration_seconds",
        help: "Time to answer a request, by route.",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_upstream_calls_total",
        help: "HTTP calls to SpyCloud, by endpoint and status (error: no answer).",
    },
    Family {
        kind: Kind::Seconds,
        name: "relay_upstream_call_duration_seconds",
        help: "Time of one HTTP call to SpyCloud, until its answer's headers, by endpoint.",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_upstream_retries_total",
        help: "SpyCloud calls retried (429, 502, 503, 504, connection failures), by endpoint.",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_rate_limit_waits_total",
        help: "SpyCloud calls that waited for the per-key request rate.",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_jwks_fetches_total",
        help: "JWKS documents fetched from SecureX hosts, failures included.",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_jwks_fetch_failures_total",
        help: "JWKS fetches that failed (no answer, an error status, not a JWKS).",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_catalog_cache_hits_total",
        help: "Breach catalogs found in the cache.",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_catalog_cache_misses_total",
        help: "Breach catalogs not in the cache, asked of SpyCloud.",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_tile_scans_total",
        help: "Watchlist scans made for the dashboard's tiles, by period and outcome (ok, error).",
    },
    Family {
        kind: Kind::Gauge,
        name: "relay_open_connections",
        help: "Client connections open now, by listener (main, metrics).",
    },
    Family {
        kind: Kind::Counter,
        name: "relay_redis_fallbacks_total",
        help: "Redis calls served by the process's own limiter or cache instead, by use (rate_limit, cache).",
    },
    Family {
        kind: Kind::Gauge,
        name: "relay_build_info",
        help: "Always 1; the relay's version is the label.",
    },
];

/// The request metrics of each of `routes`, at zero.
fn zero_requests(routes: &[&'static str]) {
    for &route in routes {
        metrics::counter!("relay_requests_total", "route" => route, "outcome" => "ok").absolute(0);
        let _ = metrics::histogram!("relay_request_duration_seconds", "route" => route);
    }
}

/// The upstream metrics of each SpyCloud endpoint, at zero.
fn zero_upstream_calls() {
    for endpoint in endpoints() {
        metrics::counter!("relay_upstream_calls_total", "endpoint" => endpoint, "status" => "200")
            .absolute(0);
        let _ = metrics::histogram!("relay_upstream_call_duration_seconds", "endpoint" => endpoint);
        metrics::counter!("relay_upstream_retries_total", "endpoint" => endpoint).absolute(0);
    }
}

/// The other families (rate limits, JWKS, catalogs, Redis, scans, connections) at zero, and the
/// build info at one.
fn zero_the_others() {
    for name in [
        "relay_rate_limit_waits_total",
        "relay_jwks_fetches_total",
        "relay_jwks_fetch_failures_total",
        "relay_catalog_cache_hits_total",
        "relay_catalog_cache_misses_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    for what in ["rate_limit", "cache"] {
        metrics::counter!("relay_redis_fallbacks_total", "use" => what).absolute(0);
    }
    for period in crate::domain::tiles::Period::ALL {
        metrics::counter!("relay_tile_scans_total", "period" => period.as_str(), "outcome" => "ok")
            .absolute(0);
    }
    for listener in ["main", "metrics"] {
        metrics::gauge!("relay_open_connections", "listener" => listener).set(0.0);
    }
    metrics::gauge!("relay_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

#[cfg(feature = "server")]
/// Installs the Prometheus recorder, with every family described and zeroed (the request
/// metrics for each of `routes`), and keeps its histograms current. Call inside the runtime;
/// the transport's metrics listener serves the handle.
///
/// # Errors
/// When a recorder is already installed.
pub fn install_metrics(
    routes: &[&'static str],
) -> Result<metrics_exporter_prometheus::PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".to_owned()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
            ],
        )?
        .install_recorder()?;
    describe_metrics(routes);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Records one watchlist scan made for the tiles: its period and `ok` or `error`.
pub fn tile_scan(period: &'static str, outcome: &'static str) {
    metrics::counter!("relay_tile_scans_total", "period" => period, "outcome" => outcome)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    // RULES R20
    #[test]
    fn long_values_are_cut_to_100_characters() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(300);
        let logged = cut(&long);
        assert_eq!(logged.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(logged.ends_with('…'));
    }
}
