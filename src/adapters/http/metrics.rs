//! The metrics listener: Prometheus text at `GET /metrics`, on a port of its own, within the
//! main listener's timeouts and a few connections.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::connections::{InFlight, serve_listener};
use super::{ConnectionLimits, ServeError, Server, routes};
use crate::telemetry;

/// Installs the process's metrics recorder, with the request metrics of every route, and serves
/// it on `listener` within `limits` (but [`Server::METRICS_CONNECTIONS`] at once) until the
/// process ends.
pub(super) fn serve(
    listener: tokio::net::TcpListener,
    limits: ConnectionLimits,
) -> Result<(), ServeError> {
    let handle = telemetry::install_metrics(&routes::paths())
        .map_err(|error| ServeError::Metrics(error.to_string()))?;
    let metrics_limits = ConnectionLimits {
        max_connections: Server::METRICS_CONNECTIONS,
        ..limits
    };
    tokio::spawn(serve_listener(
        listener,
        metrics_routes(handle),
        metrics_limits,
        "metrics",
        InFlight::default(),
        None,
        std::future::pending(),
    ));
    Ok(())
}

/// `GET /metrics`: Prometheus text; any other path 404, any other method 405.
fn metrics_routes(
    handle: metrics_exporter_prometheus::PrometheusHandle,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(handle.render(), "content-type", "text/plain; version=0.0.4")
            .into_response()
    });
    let other = warp::path::full().map(|path: warp::path::FullPath| {
        let status = if path.as_str() == "/metrics" {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        warp::reply::with_status(status.canonical_reason().unwrap_or_default(), status)
            .into_response()
    });
    metrics.or(other).unify()
}
