//! The warp transport: SecureX's routes over HTTP. It turns requests into use-case calls and
//! results into the SecureX envelope; every answer is JSON, and every error but an unknown
//! path (404) or a wrong method (405) is HTTP 200 with the error in the body.
//!
//! This file holds what an embedder sets and starts (the settings, the [`Server`]); each
//! concern of the transport has its own file:
//! - `routes`: the route table (path, method, token or not, handler) and the handlers; the
//!   table also drives the 404/405 fallback and the route labels of the metrics, so a new
//!   route is one handler and one entry;
//! - `envelope`: the SecureX reply envelope, and the metrics of each answer;
//! - `connections`: the accept loop, connection limits, the TLS handshake, the graceful stop;
//! - `body`: reading a request body within its size limit and timeout;
//! - `signals`: SIGTERM and SIGINT;
//! - `request_id`: the id of each request in logs and answers;
//! - `metrics`: the metrics listener.

mod body;
mod connections;
mod envelope;
mod metrics;
mod request_id;
mod routes;
mod signals;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::adapters::tls::ServerTls;
use crate::relay::Relay;
use connections::graceful;
use routes::routes;
#[cfg(test)]
pub(crate) use routes::{
    health_request, observe_request, tile_data_request, tile_request, tiles_request,
};
use signals::Signals;

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
            metrics::serve(listener, limits)?;
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
