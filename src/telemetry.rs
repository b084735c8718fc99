//! Logging and metrics. One log subscriber for the whole process, text or JSON, filtered by
//! `RELAY_LOG`, writing to stderr so `lookup` can print its JSON alone on stdout. Metrics go
//! through the `metrics` facade (free when no recorder is installed) and are served as
//! Prometheus text when `RELAY_METRICS_LISTEN` is set. Nothing here ever sees a secret: labels
//! are routes, outcome codes, endpoint names and statuses.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Installs the global subscriber.
#[cfg(feature = "server")]
///
/// # Errors
/// A filter that does not parse, or a subscriber already installed.
pub fn init(args: &crate::config::LogArgs) -> Result<(), Box<dyn std::error::Error>> {
    use crate::config::LogFormat;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = match args.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|error| error as Box<dyn std::error::Error>)
}

#[cfg(feature = "server")]
/// Says where the relay listens: a log line, and a plain line on stdout for scripts and tests.
pub fn announce(address: std::net::SocketAddr) {
    tracing::info!(%address, "spycloud-relay listening");
    println!("spycloud-relay listening on http://{address}");
}

tokio::task_local! {
    /// Upstream calls made while serving the current request.
    static UPSTREAM_CALLS: Arc<AtomicU32>;
}

/// Runs `work` counting the upstream calls it makes (for the request's log line).
pub async fn counting_upstream_calls<F: Future>(work: F) -> (F::Output, u32) {
    let calls = Arc::new(AtomicU32::new(0));
    let output = UPSTREAM_CALLS.scope(calls.clone(), work).await;
    (output, calls.load(Ordering::Relaxed))
}

/// `work` with its upstream calls counted for the request being served now, if any: for work a
/// request hands to a task of its own.
pub fn counted_for_this_request<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let calls = UPSTREAM_CALLS.try_with(Arc::clone).ok();
    async move {
        match calls {
            Some(calls) => UPSTREAM_CALLS.scope(calls, work).await,
            None => work.await,
        }
    }
}

/// Records one HTTP call to SpyCloud: `endpoint` (`emails`, `catalog`, `watchlist`) and the
/// status it got (`200`, `429`, ..., or `error` when there was no answer).
pub fn upstream_call(endpoint: &'static str, status: &str) {
    let _ = UPSTREAM_CALLS.try_with(|calls| calls.fetch_add(1, Ordering::Relaxed));
    metrics::counter!("relay_upstream_calls_total", "endpoint" => endpoint, "status" => status.to_owned())
        .increment(1);
}

/// Records catalog cache lookups.
pub fn catalog_cache(hits: u64, misses: u64) {
    metrics::counter!("relay_catalog_cache_hits_total").increment(hits);
    metrics::counter!("relay_catalog_cache_misses_total").increment(misses);
}

/// Records one answered request and logs its line: route, status, duration, upstream calls
/// and outcome (`ok`, or the code of the fatal error).
pub fn request_done(
    route: &'static str,
    status: u16,
    outcome: &str,
    duration: Duration,
    upstream_calls: u32,
) {
    tracing::info!(
        route,
        status,
        duration_ms = duration.as_millis() as u64,
        upstream_calls,
        outcome,
        "request"
    );
    metrics::counter!("relay_requests_total", "route" => route, "outcome" => outcome.to_owned())
        .increment(1);
    metrics::histogram!("relay_request_duration_seconds", "route" => route)
        .record(duration.as_secs_f64());
}

#[cfg(feature = "server")]
/// Serves Prometheus text on `address` (any path, `/metrics` included). Call inside the runtime.
///
/// # Errors
/// When the recorder cannot be installed or the address bound.
pub fn serve_metrics(address: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".to_owned()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
            ],
        )?
        .install()?;
    tracing::info!(%address, "metrics at /metrics");
    Ok(())
}

/// Records one watchlist scan made for the tiles: its period and `ok` or `error`.
pub fn tile_scan(period: &'static str, outcome: &'static str) {
    metrics::counter!("relay_tile_scans_total", "period" => period, "outcome" => outcome)
        .increment(1);
}
