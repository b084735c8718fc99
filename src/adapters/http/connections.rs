//! Connections and their limits: the accept loop, the TLS handshake, the graceful stop, and
//! the requests in flight.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use warp::http::{HeaderValue, Request};
use warp::{Filter, Reply};

use super::request_id::request_id;
use super::{ConnectionLimits, ServeError};
use crate::adapters::tls::ServerTls;
use crate::telemetry;

/// Requests being served now: counted so that a shutdown can say how many it cut off.
#[derive(Debug, Clone, Default)]
pub(super) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Requests being served now.
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.0.clone())
    }
}

pub(super) struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves any filter that never rejects on `listener`, named `name` in metrics and logs
/// (`main`, `metrics`), within `limits`, over `tls` when set, counting its requests in
/// `in_flight`, until `shutdown` completes; requests in flight then finish.
///
/// Every request is served in a `request` span with its id: the client's `X-Request-Id` when
/// it is a short printable value, else a new UUID; the answer carries it back in
/// `X-Request-Id`.
pub(super) async fn serve_listener<F, R>(
    listener: tokio::net::TcpListener,
    filter: F,
    limits: ConnectionLimits,
    name: &'static str,
    in_flight: InFlight,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    // warp's own server reads request headers without a time limit: a client that sends them
    // a byte at a time, or nothing at all, would hold its connection for good. So connections
    // are served here, by hyper's HTTP/1 (what SecureX speaks) with a timer.
    let connections = GracefulShutdown::new();
    // At the limit, no connection is accepted until one closes: clients wait in the
    // listener's backlog, and a flood of them cannot exhaust memory or file descriptors.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut failures = AcceptFailures::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (slot, stream) = tokio::select! {
            accepted = accept(&listener, &slots) => match accepted {
                Ok(accepted) => {
                    failures.recovered();
                    accepted
                }
                Err(error) => {
                    failures.failed(name, &error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let accepted = Accepted {
            stream,
            slot,
            listener: name,
            tls: tls.clone(),
            header_read_timeout: limits.header_read_timeout,
            watcher: connections.watcher(),
        };
        tokio::spawn(serve_connection(
            accepted,
            filter.clone(),
            in_flight.clone(),
        ));
    }
    // No new connections; those open finish their requests in flight.
    drop(listener);
    connections.shutdown().await;
}

/// A connection just accepted, and what serving it needs.
struct Accepted {
    stream: tokio::net::TcpStream,
    /// Its place among the connections served at once, given back when it closes.
    slot: OwnedSemaphorePermit,
    /// The listener's name in metrics (`main`, `metrics`).
    listener: &'static str,
    tls: Option<ServerTls>,
    header_read_timeout: Duration,
    /// Lets the graceful stop wait for the connection's requests in flight.
    watcher: Watcher,
}

/// Serves one connection's requests with `filter`, after its TLS handshake when there is one;
/// each request in a `request` span with its id, counted in `in_flight` while it is served.
async fn serve_connection<F, R>(accepted: Accepted, filter: F, in_flight: InFlight)
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let _slot = accepted.slot;
    let _open = telemetry::OpenConnection::new(accepted.listener);
    let header_read_timeout = accepted.header_read_timeout;
    let Some(stream) = secured(accepted.stream, accepted.tls.as_ref(), header_read_timeout).await
    else {
        return;
    };
    let service = TowerToHyperService::new(warp::service(filter));
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let id = request_id(request.headers());
        let span = tracing::info_span!("request", id = %id);
        let guard = in_flight.enter();
        let call = span.in_scope(|| hyper::service::Service::call(&service, request));
        async move {
            let mut response = call.instrument(span).await?;
            drop(guard);
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert("x-request-id", value);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = accepted.watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A stream both plain and TLS connections are served over.
trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}

/// The connection as it is served: as accepted, or after its TLS handshake when `tls` is set.
/// The handshake counts against the header time (and holds its connection slot), so a client
/// that stalls it is dropped like one that stalls its headers; `None` then.
async fn secured(
    stream: tokio::net::TcpStream,
    tls: Option<&ServerTls>,
    header_read_timeout: Duration,
) -> Option<Box<dyn Connection>> {
    let Some(tls) = tls else {
        return Some(Box::new(stream));
    };
    match tokio::time::timeout(header_read_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake not done within the header time");
            None
        }
    }
}

/// The next connection, once a slot is free for it.
async fn accept(
    listener: &tokio::net::TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(OwnedSemaphorePermit, tokio::net::TcpStream)> {
    // The semaphore is never closed.
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (stream, _) = listener.accept().await?;
    Ok((slot, stream))
}

/// Failed accepts in a row: they back off (10 ms doubling to 1 s) rather than spin, and are
/// logged at most once a minute, with how many there were, rather than once each.
#[derive(Debug, Default)]
struct AcceptFailures {
    /// The pause before the next attempt.
    backoff: Option<Duration>,
    /// When a failure was last logged.
    logged_at: Option<Instant>,
    /// Failures since then, not logged.
    unlogged: u64,
}

impl AcceptFailures {
    const FIRST_BACKOFF: Duration = Duration::from_millis(10);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(60);

    /// A client that went away is nothing; anything else (out of file descriptors, say) pauses
    /// accepting.
    async fn failed(&mut self, listener: &'static str, error: &std::io::Error) {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            error.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        self.unlogged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Self::LOG_EVERY)
        {
            tracing::warn!(
                listener,
                %error,
                failures = self.unlogged,
                "could not accept connections; pausing (logged at most once a minute)"
            );
            self.logged_at = Some(Instant::now());
            self.unlogged = 0;
        }
        let backoff = self
            .backoff
            .map_or(Self::FIRST_BACKOFF, |b| (b * 2).min(Self::MAX_BACKOFF));
        self.backoff = Some(backoff);
        tokio::time::sleep(backoff).await;
    }

    fn recovered(&mut self) {
        self.backoff = None;
    }
}

/// Serves `filter` until `shutdown` completes, then gives requests in flight `grace` to
/// finish, or stops at once when `cut` completes first (a second signal).
pub(super) async fn graceful<F, R>(
    listener: tokio::net::TcpListener,
    filter: F,
    limits: ConnectionLimits,
    tls: Option<ServerTls>,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    cut: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let in_flight = InFlight::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve_listener(
        listener,
        filter,
        limits,
        "main",
        in_flight.clone(),
        tls,
        async {
            let _ = stopped.await;
        },
    ));
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        _ = &mut server => return Ok(()),
        () = &mut shutdown => {}
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: no new connections, finishing requests in flight (a second signal stops at once)"
    );
    let _ = stop.send(());
    let why = tokio::select! {
        _ = &mut server => return Ok(()),
        () = tokio::time::sleep(grace) => "the grace period ended",
        () = cut => "a second signal came",
    };
    server.abort();
    match in_flight.count() {
        0 => Ok(()),
        requests => {
            tracing::warn!(
                requests,
                "{why}: stopping with {requests} request(s) in flight cut off"
            );
            Err(ServeError::CutOff(requests))
        }
    }
}
