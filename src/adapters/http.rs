//! The warp transport: SecureX's routes over HTTP. It turns requests into use-case calls and
//! results into the SecureX envelope; every answer is JSON, and every error but an unknown
//! path (404) or a wrong method (405) is HTTP 200 with the error in the body.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use warp::http::{HeaderMap, HeaderValue, Request, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::adapters::tls::ServerTls;
use crate::domain::tiles::{Definition, TileAnswer, parse_tile_request};
use crate::domain::{
    Bundle, Error, ErrorDoc, Observable, ObservableType, Period, TileId, parse_observables,
};
use crate::relay::{Caller, Relay};
use crate::telemetry;

/// The paths the relay serves, for telling a wrong method (405) from an unknown path (404).
const KNOWN_PATHS: [&str; 7] = [
    "/health",
    "/observe/observables",
    "/tiles",
    "/tiles/tile",
    "/tiles/tile-data",
    "/version",
    "/watchdog",
];

/// How a [`Server`] reads requests and stops.
///
/// ```
/// use std::time::Duration;
/// use spycloud_relay::adapters::{ConnectionLimits, HttpSettings};
///
/// let defaults = HttpSettings::default();
/// assert_eq!((defaults.audience, defaults.tls, defaults.jwks), (None, None, None));
/// assert_eq!((defaults.body_limit, defaults.grace), (1024 * 1024, Duration::from_secs(20)));
/// assert_eq!(defaults.connections, ConnectionLimits::default());
///
/// let behind_a_proxy = HttpSettings {
///     audience: Some("https://relay.example".to_owned()),
///     ..HttpSettings::default()
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// The audience tokens must carry; `None`: the request's own URL root.
    pub audience: Option<String>,
    /// The largest request body read, in bytes.
    pub body_limit: usize,
    /// What clients may hold.
    pub connections: ConnectionLimits,
    /// HTTPS only, with this certificate; `None`: plain HTTP.
    pub tls: Option<ServerTls>,
    /// How long requests in flight may finish once shutdown begins (`RELAY_SHUTDOWN_GRACE_SECS`).
    pub grace: Duration,
    /// A JWKS to publish at `GET /.well-known/jwks`, for tokens that name this relay as their
    /// `jwks_host` (the offline demo's); `None`: that path is a 404 like any other.
    pub jwks: Option<serde_json::Value>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            audience: None,
            body_limit: 1024 * 1024,
            connections: ConnectionLimits::default(),
            tls: None,
            grace: Duration::from_secs(20),
            jwks: None,
        }
    }
}

/// How many connections clients may hold, and for how long without sending what they owe.
///
/// ```
/// use std::time::Duration;
/// use spycloud_relay::adapters::ConnectionLimits;
///
/// let defaults = ConnectionLimits::default();
/// assert_eq!(defaults.header_read_timeout, Duration::from_secs(30));
/// assert_eq!(defaults.body_read_timeout, Duration::from_secs(10));
/// assert_eq!(defaults.max_connections, 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers, counted from its connection
    /// or from the previous answer on it; then the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its headers are in; then
    /// the request is refused and the connection closed.
    pub body_read_timeout: Duration,
    /// The most connections served at once; more clients wait to be accepted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Requests being served now: counted so that a shutdown can say how many it cut off.
#[derive(Debug, Clone, Default)]
struct InFlight(Arc<AtomicUsize>);

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

struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why serving failed or stopped with work undone.
///
/// ```
/// use spycloud_relay::adapters::ServeError;
///
/// let cut = ServeError::CutOff(2);
/// assert_eq!(cut.to_string(), "stopped with 2 request(s) in flight cut off");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The metrics port could not be served: a metrics recorder is already installed in this
    /// process.
    #[error("cannot serve metrics: {0}")]
    Metrics(String),
    /// Requests were still being served when the grace ended or a second signal came.
    #[error("stopped with {0} request(s) in flight cut off")]
    CutOff(usize),
}

/// The relay served to SecureX over HTTP(S): its routes, each request within the connection
/// limits and the relay's deadline, a request id in every log line, a graceful stop.
///
/// In production, [`Server::serve`] runs until SIGTERM or SIGINT, over
/// `Relay::builder().decoder(Arc::new(JwtDecoder::new(JwtSettings::default())?))`; here the
/// demo's relay is served until the example says stop:
///
/// ```
/// use std::sync::Arc;
/// use spycloud_relay::{Relay, RelaySettings};
/// use spycloud_relay::adapters::{FixedCredentials, HttpSettings, MemorySource, Server};
/// use spycloud_relay::domain::{ApiKey, Credentials};
/// use tokio::{net::TcpListener, sync::oneshot};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let decoder = Arc::new(FixedCredentials(Credentials::new(ApiKey::parse("demo-api-key")?)));
/// let relay = Relay::new(Arc::new(MemorySource::sample()), decoder, RelaySettings::default());
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let url = format!("http://{}/version", listener.local_addr()?);
/// let (stop, stopped) = oneshot::channel::<()>();
/// let server = Server::new(relay, HttpSettings::default());
/// let serving = tokio::spawn(server.serve_until(listener, async { stopped.await.ok(); }));
///
/// let answer: serde_json::Value = reqwest::Client::new().post(&url).send().await?.json().await?;
/// assert_eq!(answer, serde_json::json!({"version": env!("CARGO_PKG_VERSION")}));
///
/// stop.send(()).ok();
/// serving.await??; // stopped, no request cut off
/// # Ok(()) }
/// ```
#[must_use]
pub struct Server {
    relay: Arc<Relay>,
    settings: HttpSettings,
    metrics: Option<tokio::net::TcpListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("settings", &self.settings)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Connections the metrics port serves at once (a scraper needs one or two).
    pub const METRICS_CONNECTIONS: usize = 16;

    /// A server of `relay`'s routes.
    pub fn new(relay: Relay, settings: HttpSettings) -> Self {
        Self {
            relay: Arc::new(relay),
            settings,
            metrics: None,
        }
    }

    /// Also serves Prometheus metrics at `GET /metrics` on `listener` (plain HTTP, at most
    /// [`Server::METRICS_CONNECTIONS`] at once, the same timeouts), installing the process's metrics
    /// recorder when serving starts.
    pub fn metrics(self, listener: tokio::net::TcpListener) -> Self {
        Self {
            metrics: Some(listener),
            ..self
        }
    }

    /// Serves on `listener` until SIGTERM or SIGINT, then stops taking connections and gives
    /// requests in flight [`HttpSettings::grace`]; a second signal stops at once.
    ///
    /// # Errors
    /// [`ServeError::CutOff`] when requests were still in flight at the end (the grace, or a
    /// second signal); [`ServeError::Metrics`] when metrics cannot be served.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<(), ServeError> {
        let mut signals = Signals::new();
        let (first_tx, first) = tokio::sync::oneshot::channel::<()>();
        let (second_tx, second) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            signals.next().await;
            let _ = first_tx.send(());
            signals.next().await;
            let _ = second_tx.send(());
        });
        let shutdown = async {
            let _ = first.await;
        };
        let cut = async {
            let _ = second.await;
        };
        self.run(listener, shutdown, cut).await
    }

    /// Serves on `listener` until `shutdown` completes, then stops taking connections and gives
    /// requests in flight [`HttpSettings::grace`].
    ///
    /// # Errors
    /// As [`Server::serve`].
    pub async fn serve_until(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.run(listener, shutdown, std::future::pending()).await
    }

    /// Serves until `shutdown`, then for the grace or until `cut`, whichever is first.
    async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        cut: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            relay,
            settings,
            metrics,
        } = self;
        let limits = settings.connections;
        let grace = settings.grace;
        let tls = settings.tls.clone();
        if let Some(listener) = metrics {
            let handle = telemetry::install_metrics()
                .map_err(|error| ServeError::Metrics(error.to_string()))?;
            let metrics_limits = ConnectionLimits {
                max_connections: Self::METRICS_CONNECTIONS,
                ..limits
            };
            tokio::spawn(serve_listener(
                listener,
                telemetry::metrics_routes(handle),
                metrics_limits,
                "metrics",
                InFlight::default(),
                None,
                std::future::pending(),
            ));
        }
        graceful(
            listener,
            routes(relay, settings),
            limits,
            tls,
            grace,
            shutdown,
            cut,
        )
        .await
    }
}

/// Who sent a request, as the headers tell it.
#[derive(Debug, Clone)]
struct Incoming {
    authorization: Option<String>,
    audience: String,
    /// The announced body length, when it is a number.
    content_length: Option<u64>,
}

impl Incoming {
    fn caller(&self) -> Caller<'_> {
        Caller {
            authorization: self.authorization.as_deref(),
            audience: &self.audience,
        }
    }
}

/// The relay's routes, with the 404/405 fallback; the filter never rejects.
pub(crate) fn routes(
    relay: Arc<Relay>,
    settings: HttpSettings,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let settings = Arc::new(settings);
    jwks(settings.jwks.clone())
        .or(health(relay.clone(), settings.clone()))
        .or(observe(relay.clone(), settings.clone()))
        .or(tiles(relay.clone(), settings.clone()))
        .or(tile(relay.clone(), settings.clone()))
        .or(tile_data(relay, settings))
        .or(version())
        .or(watchdog())
        .or(fallback())
}

/// Serves any filter that never rejects on `listener`, named `name` in metrics and logs
/// (`main`, `metrics`), within `limits`, over `tls` when set, counting its requests in
/// `in_flight`, until `shutdown` completes; requests in flight then finish.
///
/// Every request is served in a `request` span with its id: the client's `X-Request-Id` when
/// it is a short printable value, else a new UUID; the answer carries it back in
/// `X-Request-Id`.
async fn serve_listener<F, R>(
    listener: tokio::net::TcpListener,
    filter: F,
    limits: ConnectionLimits,
    name: &'static str,
    in_flight: InFlight,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    // warp's own server reads request headers without a time limit: a client that sends them
    // a byte at a time, or nothing at all, would hold its connection for good. So connections
    // are served here, by hyper's HTTP/1 (what SecureX speaks) with a timer.
    let service = warp::service(filter);
    let connections = GracefulShutdown::new();
    // At the limit, no connection is accepted until one closes: clients wait in the
    // listener's backlog, and a flood of them cannot exhaust memory or file descriptors.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let header_read_timeout = limits.header_read_timeout;
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
        let service = TowerToHyperService::new(service.clone());
        let in_flight = in_flight.clone();
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
        let watcher = connections.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = telemetry::OpenConnection::new(name);
            let Some(stream) = secured(stream, tls.as_ref(), header_read_timeout).await else {
                return;
            };
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    // No new connections; those open finish their requests in flight.
    drop(listener);
    connections.shutdown().await;
}

/// The longest request id taken from a client; a longer one is replaced.
const MAX_REQUEST_ID: usize = 100;

/// The client's `X-Request-Id` when it is 1 to 100 printable ASCII characters, else a new UUID.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .map(HeaderValue::as_bytes)
        .filter(|id| {
            (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
        })
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
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
async fn graceful<F, R>(
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

/// SIGTERM and SIGINT (Ctrl-C), as often as they come.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            Self { unix }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((terminate, interrupt)) = &mut self.unix {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `GET /.well-known/jwks`: the JWKS of [`HttpSettings::jwks`]; without one, a rejection the
/// fallback answers 404.
fn jwks(
    jwks: Option<serde_json::Value>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let jwks = jwks.map(Arc::new);
    warp::path!(".well-known" / "jwks")
        .and(warp::get())
        .and_then(move || {
            let jwks = jwks.clone();
            async move {
                match jwks {
                    Some(jwks) => Ok(warp::reply::json(jwks.as_ref()).into_response()),
                    None => Err(warp::reject::not_found()),
                }
            }
        })
}

fn with<T: Clone + Send>(value: T) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

fn incoming(
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Incoming,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(move |headers: HeaderMap| Incoming {
        authorization: headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        audience: settings
            .audience
            .clone()
            .unwrap_or_else(|| request_root(&headers, settings.tls.is_some())),
        content_length: headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    })
}

/// `<scheme>://<Host>`: `https` when the relay serves TLS itself; else the scheme from
/// `X-Forwarded-Proto` (first value) when present, else http.
fn request_root(headers: &HeaderMap, tls: bool) -> String {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if tls {
        return format!("https://{}", text("host").unwrap_or_default());
    }
    let scheme = text("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("http");
    format!("{scheme}://{}", text("host").unwrap_or_default())
}

fn health(
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("health")
        .and(warp::post())
        .and(incoming(settings))
        .and(with(relay))
        .then(|incoming: Incoming, relay: Arc<Relay>| async move {
            let started = Instant::now();
            let caller = incoming.caller();
            let checked = health_request(&relay, &caller);
            let (outcome, upstream) = telemetry::counting_upstream_calls(checked).await;
            let outcome = outcome.map(|()| json!({"status": "ok"}));
            data_or_fatal("/health", started, &upstream, outcome)
        })
}

fn observe(
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    post_with_body(warp::path!("observe" / "observables"), relay, settings).then(
        |incoming: Incoming, started: Instant, body: Body, relay: Arc<Relay>| async move {
            let observed = async {
                let observables = parse_observables(&body?)?;
                Ok::<_, Error>(observe_request(&relay, &incoming.caller(), &observables).await)
            };
            let (outcome, upstream) = telemetry::counting_upstream_calls(observed).await;
            let route = "/observe/observables";
            match outcome {
                Ok(bundle) => {
                    answer_with_errors(route, started, &upstream, bundle.fatal(), &bundle)
                }
                Err(error) => fatal(route, started, Some(&upstream), &error),
            }
        },
    )
}

/// `/tiles`: the dashboard's tile definitions (the body is not read).
fn tiles(
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("tiles")
        .and(warp::post())
        .and(incoming(settings))
        .and(with(relay))
        .then(|incoming: Incoming, relay: Arc<Relay>| async move {
            let started = Instant::now();
            let caller = incoming.caller();
            let described = tiles_request(&relay, &caller);
            let (outcome, upstream) = telemetry::counting_upstream_calls(described).await;
            data_or_fatal("/tiles", started, &upstream, outcome)
        })
}

/// `/tiles/tile`: one tile's definition.
fn tile(
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    post_with_body(warp::path!("tiles" / "tile"), relay, settings).then(
        |incoming: Incoming, started: Instant, body: Body, relay: Arc<Relay>| async move {
            let described = async { tile_request(&relay, &incoming.caller(), &body?).await };
            let (outcome, upstream) = telemetry::counting_upstream_calls(described).await;
            data_or_fatal("/tiles/tile", started, &upstream, outcome)
        },
    )
}

/// `/tiles/tile-data`: one tile's figures for a period, with the token's invalid module
/// settings as warnings beside them.
fn tile_data(
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    post_with_body(warp::path!("tiles" / "tile-data"), relay, settings).then(
        |incoming: Incoming, started: Instant, body: Body, relay: Arc<Relay>| async move {
            let figures = async {
                Ok::<_, Error>(tile_data_request(&relay, &incoming.caller(), &body?).await)
            };
            let (outcome, upstream) = telemetry::counting_upstream_calls(figures).await;
            let route = "/tiles/tile-data";
            match outcome {
                Ok(figures) => {
                    answer_with_errors(route, started, &upstream, figures.fatal(), &figures)
                }
                Err(error) => fatal(route, started, Some(&upstream), &error),
            }
        },
    )
}

// The requests of the routes, in the contract's order: the token first, within the request's
// deadline (which the work that follows shares), then the body, then the use case.

/// `/health`: one authenticated call to SpyCloud.
pub(crate) async fn health_request(relay: &Relay, caller: &Caller<'_>) -> Result<(), Error> {
    let caller = relay.authorize(caller).await?;
    relay.health(&caller).await
}

/// `/observe/observables`: without a supported observable, an empty answer (the token is not
/// looked at); else the findings as CTIM, or the authorization failure alone.
pub(crate) async fn observe_request(
    relay: &Relay,
    caller: &Caller<'_>,
    observables: &[Observable],
) -> Bundle {
    if !observables
        .iter()
        .any(|o| ObservableType::of(&o.kind).is_some())
    {
        return Bundle::default();
    }
    match relay.authorize(caller).await {
        Ok(caller) => relay.observe(&caller, observables).await,
        Err(error) => Bundle::with_error(error.to_doc()),
    }
}

/// `/tiles`: the four tile definitions.
pub(crate) async fn tiles_request(
    relay: &Relay,
    caller: &Caller<'_>,
) -> Result<Vec<Definition>, Error> {
    relay.authorize(caller).await?;
    Ok(TileId::ALL.map(TileId::definition).to_vec())
}

/// `/tiles/tile`: the definition of the tile `body` names.
pub(crate) async fn tile_request(
    relay: &Relay,
    caller: &Caller<'_>,
    body: &[u8],
) -> Result<Definition, Error> {
    relay.authorize(caller).await?;
    Ok(parse_tile_request(body, false)?.tile.definition())
}

/// `/tiles/tile-data`: the figures of the tile and period `body` names (the default period
/// when it names none), the token's invalid module settings beside them; the fatal error,
/// if any, is the authorization failure, then the body's (invalid, unknown tile or period),
/// then the use case's.
pub(crate) async fn tile_data_request(
    relay: &Relay,
    caller: &Caller<'_>,
    body: &[u8],
) -> TileAnswer {
    let caller = match relay.authorize(caller).await {
        Ok(caller) => caller,
        Err(error) => return TileAnswer::failed(&error),
    };
    match parse_tile_request(body, true) {
        Ok(request) => {
            let period = request.period.unwrap_or(Period::DEFAULT);
            relay.tile_figures(&caller, request.tile, period).await
        }
        Err(error) => TileAnswer::of(&caller.credentials, Err(error)),
    }
}

/// A request body as read: its bytes, or why they cannot be read.
type Body = Result<Vec<u8>, Error>;

/// A POST to `path` with its body read, within the size limit and the body timeout: who sent
/// it, when it began, the body (or why it cannot be read) and the relay.
fn post_with_body(
    path: impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    relay: Arc<Relay>,
    settings: Arc<HttpSettings>,
) -> impl Filter<Extract = (Incoming, Instant, Body, Arc<Relay>), Error = Rejection> + Clone {
    let limit = settings.body_limit;
    let body_timeout = settings.connections.body_read_timeout;
    path.and(warp::post())
        .and(incoming(settings))
        .and(warp::body::stream())
        .then(move |incoming: Incoming, body| async move {
            let started = Instant::now();
            let body = read_body(incoming.content_length, body, limit, body_timeout).await;
            (incoming, started, body)
        })
        .untuple_one()
        .and(with(relay))
}

fn version() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("version").and(warp::post()).map(|| {
        let version = json!({"version": env!("CARGO_PKG_VERSION")});
        answer("/version", Instant::now(), None, ("ok", None), &version)
    })
}

fn watchdog() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("watchdog")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .map(|headers: HeaderMap| {
            let started = Instant::now();
            match headers.get("health-check") {
                Some(value) => {
                    let echo = json!({"data": String::from_utf8_lossy(value.as_bytes())});
                    answer("/watchdog", started, None, ("ok", None), &echo)
                }
                None => fatal("/watchdog", started, None, &Error::health_check()),
            }
        })
}

/// A known path with another method is 405; anything else 404.
fn fallback() -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::path::full().map(|path: warp::path::FullPath| {
        let status = if KNOWN_PATHS.contains(&path.as_str()) {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        telemetry::request_done(&telemetry::Done {
            route: "-",
            status: status.as_u16(),
            outcome: "-",
            reason: None,
            duration: Duration::ZERO,
            upstream: None,
        });
        status_reply(status)
    })
}

/// The Flask-style JSON body of a 404 or 405.
fn status_reply(status: StatusCode) -> Response {
    let reason = match status {
        StatusCode::METHOD_NOT_ALLOWED => "The method is not allowed for the requested URL.",
        _ => {
            "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
        }
    };
    let body = json!({
        "code": status.as_u16(),
        "message": status.canonical_reason().unwrap_or_default(),
        "reason": reason,
    });
    json_reply(&body, status)
}

/// An answer that stands, warnings and all: its outcome is its fatal error's, if it has one
/// (warnings do not change the outcome).
fn answer_with_errors(
    route: &'static str,
    started: Instant,
    upstream: &telemetry::UpstreamSummary,
    fatal: Option<&ErrorDoc>,
    body: &impl serde::Serialize,
) -> Response {
    let outcome = match fatal {
        Some(error) => (error.code.as_str(), Some(error.message.as_str())),
        None => ("ok", None),
    };
    answer(route, started, Some(upstream), outcome, body)
}

/// `{"data": ...}` on success, else the fatal error in the envelope.
fn data_or_fatal(
    route: &'static str,
    started: Instant,
    upstream: &telemetry::UpstreamSummary,
    outcome: Result<impl serde::Serialize, Error>,
) -> Response {
    /// The success envelope of the routes that answer one document.
    #[derive(serde::Serialize)]
    struct Data<T> {
        data: T,
    }
    match outcome {
        Ok(data) => answer(route, started, Some(upstream), ("ok", None), &Data { data }),
        Err(error) => fatal(route, started, Some(upstream), &error),
    }
}

/// Answers 200 with `error` alone in the SecureX envelope.
fn fatal(
    route: &'static str,
    started: Instant,
    upstream: Option<&telemetry::UpstreamSummary>,
    error: &Error,
) -> Response {
    let doc = error.to_doc();
    let body = Bundle::with_error(doc.clone());
    answer(
        route,
        started,
        upstream,
        (error.code(), Some(&doc.message)),
        &body,
    )
}

/// Answers 200 with `body`, after recording the request (never its headers or body) and its
/// outcome: `ok`, or the fatal error's code and message.
fn answer(
    route: &'static str,
    started: Instant,
    upstream: Option<&telemetry::UpstreamSummary>,
    (outcome, reason): (&str, Option<&str>),
    body: &impl serde::Serialize,
) -> Response {
    telemetry::request_done(&telemetry::Done {
        route,
        status: 200,
        outcome,
        reason,
        duration: started.elapsed(),
        upstream,
    });
    json_reply(body, StatusCode::OK)
}

/// `body` as a JSON response, written into one buffer sized for a typical observe answer
/// (warp's `reply::json` grows its buffer from empty, copying a large answer many times).
fn json_reply(body: &impl serde::Serialize, status: StatusCode) -> Response {
    let mut bytes = Vec::with_capacity(32 * 1024);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => {
            let mut response = Response::new(bytes.into());
            *response.status_mut() = status;
            response.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        // Only a type that cannot be JSON fails here, and the relay's types all can; even then
        // the caller gets the envelope, not a 500.
        Err(_) => {
            let error = json!({"errors": [{"type": "fatal", "code": "unknown",
                                           "message": "The relay could not write its answer."}]});
            warp::reply::json(&error).into_response()
        }
    }
}

/// The most of a refused body read and thrown away before answering, so that a client that
/// writes its whole body before reading (many HTTP clients do) reads the answer instead of a
/// broken connection: nginx's lingering close. A larger body is answered at once.
const MAX_DISCARDED_BODY: u64 = 4 * 1024 * 1024;

/// Reads at most `limit` bytes of body within `timeout`. A larger body is refused without
/// being kept (the rest of it read and thrown away, up to [`MAX_DISCARDED_BODY`] and the same
/// timeout); a body that does not arrive in time is refused, and its connection then closes.
async fn read_body<S, B>(
    declared: Option<u64>,
    body: S,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Error>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let too_large =
        || Error::invalid_payload(format!("The request body is larger than {limit} bytes."));
    let unreadable = || Error::invalid_payload("The request body could not be read.");
    futures::pin_mut!(body);
    if declared.is_some_and(|n| n > limit as u64) {
        discard_rest(body, 0, declared, deadline).await;
        return Err(too_large());
    }
    let mut buffer = BytesMut::new();
    loop {
        let mut chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) => return Err(unreadable()),
            Err(_) => {
                return Err(Error::invalid_payload(format!(
                    "The request body did not arrive within {} s.",
                    timeout.as_secs_f64()
                )));
            }
        };
        if buffer.len() + chunk.remaining() > limit {
            let read = (buffer.len() + chunk.remaining()) as u64;
            drop(buffer);
            discard_rest(body, read, declared, deadline).await;
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buffer.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buffer.to_vec())
}

/// Reads what is left of a refused body, `read` bytes of it in already, and throws it away:
/// unless it is announced or turns out larger than [`MAX_DISCARDED_BODY`], or `deadline`
/// passes first.
async fn discard_rest<S, B>(
    mut body: std::pin::Pin<&mut S>,
    mut read: u64,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
) where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if declared.is_some_and(|n| n > MAX_DISCARDED_BODY) {
        return;
    }
    while read <= MAX_DISCARDED_BODY {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.remaining() as u64,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ApiKey, AuthError, Credentials};
    use crate::ports::{MockBreachSource, MockCredentialDecoder};
    use crate::relay::RelaySettings;
    use serde_json::Value;

    fn relay_with(source: MockBreachSource, decoder: MockCredentialDecoder) -> Arc<Relay> {
        Arc::new(Relay::new(
            Arc::new(source),
            Arc::new(decoder),
            RelaySettings::default(),
        ))
    }

    fn idle_relay() -> Arc<Relay> {
        let mut decoder = MockCredentialDecoder::new();
        decoder.expect_decode().times(0);
        relay_with(MockBreachSource::new(), decoder)
    }

    /// A decoder that accepts any token, but only for `audience`.
    fn decoder_for(audience: &'static str) -> MockCredentialDecoder {
        let mut decoder = MockCredentialDecoder::new();
        decoder.expect_decode().returning(move |_, aud| {
            if aud == audience {
                Ok(Credentials::new(ApiKey::parse("k").unwrap()))
            } else {
                Err(AuthError::WrongAudience)
            }
        });
        decoder
    }

    async fn call(
        relay: Arc<Relay>,
        settings: HttpSettings,
        request: warp::test::RequestBuilder,
    ) -> (u16, Value) {
        let response = request.reply(&routes(relay, settings)).await;
        let body = serde_json::from_slice(response.body()).expect("every answer is JSON");
        (response.status().as_u16(), body)
    }

    fn post(path: &str) -> warp::test::RequestBuilder {
        warp::test::request().method("POST").path(path)
    }

    #[tokio::test]
    async fn version_answers_the_crate_version() {
        let (status, body) = call(idle_relay(), HttpSettings::default(), post("/version")).await;
        assert_eq!(
            (status, body),
            (200, json!({"version": env!("CARGO_PKG_VERSION")}))
        );
    }

    #[tokio::test]
    async fn watchdog_echoes_the_health_check_header() {
        let request = warp::test::request()
            .path("/watchdog")
            .header("Health-Check", "ping-42");
        let (status, body) = call(idle_relay(), HttpSettings::default(), request).await;
        assert_eq!((status, body), (200, json!({"data": "ping-42"})));
        let (status, body) = call(
            idle_relay(),
            HttpSettings::default(),
            warp::test::request().path("/watchdog"),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"errors": [{"type": "fatal", "code": "health check failed", "message": "Invalid Health Check"}]})
            )
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_wrong_methods_405_in_json() {
        let not_found = json!({
            "code": 404, "message": "Not Found",
            "reason": "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
        });
        let not_allowed = json!({"code": 405, "message": "Method Not Allowed", "reason": "The method is not allowed for the requested URL."});
        for (method, path, expected) in [
            ("GET", "/nope", (404, not_found.clone())),
            ("POST", "/observe", (404, not_found.clone())),
            ("POST", "/health/extra", (404, not_found.clone())),
            ("POST", "/tiles/other", (404, not_found)),
            ("GET", "/health", (405, not_allowed.clone())),
            ("GET", "/observe/observables", (405, not_allowed.clone())),
            ("GET", "/version", (405, not_allowed.clone())),
            ("POST", "/watchdog", (405, not_allowed.clone())),
            ("GET", "/tiles", (405, not_allowed.clone())),
            ("GET", "/tiles/tile", (405, not_allowed.clone())),
            ("PUT", "/tiles/tile-data", (405, not_allowed.clone())),
            ("DELETE", "/health", (405, not_allowed)),
        ] {
            let request = warp::test::request().method(method).path(path);
            assert_eq!(
                call(idle_relay(), HttpSettings::default(), request).await,
                expected,
                "{method} {path}"
            );
        }
    }

    #[tokio::test]
    async fn an_invalid_body_is_an_invalid_argument_in_the_envelope() {
        let (status, body) = call(
            idle_relay(),
            HttpSettings::default(),
            post("/observe/observables").body("{oops"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["errors"][0]["code"], "invalid argument");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JSON payload received.")
        );
        assert!(body.get("data").is_none());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let settings = HttpSettings {
            body_limit: 64,
            ..HttpSettings::default()
        };
        let big = format!(
            r#"[{{"type":"email","value":"{}@x.com"}}]"#,
            "a".repeat(100)
        );
        let (status, body) = call(
            idle_relay(),
            settings,
            post("/observe/observables").body(big),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["errors"][0]["message"],
            "Invalid JSON payload received. The request body is larger than 64 bytes."
        );
    }

    #[tokio::test]
    async fn observe_without_a_supported_observable_does_not_need_a_token() {
        let request = post("/observe/observables")
            .body(r#"[{"type":"sha256","value":"ab12"},{"type":"url","value":"x"}]"#);
        assert_eq!(
            call(idle_relay(), HttpSettings::default(), request).await,
            (200, json!({"data": {}}))
        );
    }

    #[test]
    fn served_over_tls_the_request_root_is_https_whatever_a_header_says() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "relay.example:9443".parse().unwrap());
        headers.insert("x-forwarded-proto", "http".parse().unwrap());
        assert_eq!(request_root(&headers, true), "https://relay.example:9443");
        assert_eq!(request_root(&headers, false), "http://relay.example:9443");
    }

    #[test]
    fn module_type_advertises_the_tiles_and_every_securex_route() {
        let module: Value = serde_json::from_str(include_str!("../../module_type.json")).unwrap();
        let apis: Vec<String> = module["properties"]["supported-apis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|api| format!("/{}", api.as_str().unwrap()))
            .collect();
        let securex: Vec<&str> = KNOWN_PATHS
            .into_iter()
            .filter(|path| !["/version", "/watchdog"].contains(path))
            .collect();
        assert_eq!(apis, securex);
        let capabilities: Vec<&str> = module["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(capabilities, ["health", "observe", "tiles"]);
    }

    #[tokio::test]
    async fn tile_routes_answer_in_the_envelope() {
        let mut source = MockBreachSource::new();
        source.expect_watchlist().times(1).returning(|_, _, into| {
            let record = serde_json::from_value(
                json!({"email": "a@x.com", "spycloud_publish_date": "2000-01-01T00:00:00Z"}),
            )
            .unwrap();
            into.hits(1);
            into.add(record);
            Ok(())
        });
        let relay = relay_with(source, decoder_for("http://relay"));
        let request = |path: &str| {
            post(path)
                .header("authorization", "Bearer t")
                .header("host", "relay")
        };
        let settings = HttpSettings::default;

        let (status, body) = call(relay.clone(), settings(), request("/tiles").body("x")).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"].as_array().unwrap().len(), 4);
        assert_eq!(body["data"][3]["type"], "markdown");

        let one = request("/tiles/tile").body(r#"{"tile_id":"spycloud_top_breaches"}"#);
        let (_, body) = call(relay.clone(), settings(), one).await;
        assert_eq!(body["data"]["id"], "spycloud_top_breaches");

        let unknown = request("/tiles/tile").body(r#"{"tile_id":"nope"}"#);
        let (status, body) = call(relay.clone(), settings(), unknown).await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"errors": [{"type": "fatal", "code": "invalid argument", "message": "Unknown tile_id: nope"}]})
            )
        );

        let figures = request("/tiles/tile-data")
            .body(r#"{"tile_id":"spycloud_most_exposed_employees","period":"last_7_days"}"#);
        let (_, body) = call(relay.clone(), settings(), figures).await;
        assert_eq!(
            body["data"]["data"],
            json!(["No exposures in this period."])
        );
        assert_eq!(body["data"]["cache_scope"], "org");

        let unauthorized = post("/tiles/tile-data").body("{}");
        let (_, body) = call(relay, settings(), unauthorized).await;
        assert_eq!(
            body["errors"][0]["message"],
            "Authorization failed: Authorization header is missing"
        );
    }

    #[tokio::test]
    async fn the_audience_is_the_request_root_unless_configured() {
        let health = || {
            let mut source = MockBreachSource::new();
            source.expect_probe().returning(|_| Ok(()));
            source
        };
        let ok = json!({"data": {"status": "ok"}});
        let request = || {
            post("/health")
                .header("authorization", "Bearer t")
                .header("host", "relay.example:9090")
        };

        let relay = relay_with(health(), decoder_for("http://relay.example:9090"));
        assert_eq!(
            call(relay, HttpSettings::default(), request()).await,
            (200, ok.clone())
        );

        let relay = relay_with(health(), decoder_for("https://relay.example:9090"));
        let forwarded = request().header("x-forwarded-proto", "https");
        assert_eq!(
            call(relay, HttpSettings::default(), forwarded).await,
            (200, ok.clone())
        );

        let relay = relay_with(health(), decoder_for("https://configured"));
        let settings = HttpSettings {
            audience: Some("https://configured".into()),
            ..HttpSettings::default()
        };
        assert_eq!(call(relay, settings, request()).await, (200, ok));

        let relay = relay_with(health(), decoder_for("https://configured"));
        let (_, body) = call(relay, HttpSettings::default(), request()).await;
        assert_eq!(
            body["errors"][0]["message"],
            "Authorization failed: Wrong configuration-token-audience"
        );
    }

    #[tokio::test]
    async fn a_jwks_is_published_only_when_set() {
        let jwks = serde_json::json!({"keys": [{"kid": "k"}]});
        let get = || {
            warp::test::request()
                .method("GET")
                .path("/.well-known/jwks")
        };
        let published = HttpSettings {
            jwks: Some(jwks.clone()),
            ..HttpSettings::default()
        };
        assert_eq!(call(idle_relay(), published, get()).await, (200, jwks));
        let (status, _) = call(idle_relay(), HttpSettings::default(), get()).await;
        assert_eq!(status, 404);
    }

    #[test]
    fn a_short_printable_request_id_is_kept_and_anything_else_replaced() {
        let id = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-request-id", HeaderValue::from_str(value).unwrap());
            request_id(&headers)
        };
        assert_eq!(id("abc-123"), "abc-123");
        for replaced in ["", "a b", &"x".repeat(101)] {
            let new = id(replaced);
            assert!(uuid::Uuid::parse_str(&new).is_ok(), "{replaced:?} -> {new}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(&HeaderMap::new())).is_ok());
    }
}
