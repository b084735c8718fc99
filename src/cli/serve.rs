//! `serve`: the relay's server, composed from the command line in steps: logging and the
//! open-files limit, the connection limits that fit in it, the relay (SpyCloud, JWT, Redis),
//! the listeners and TLS, then the server until a signal stops it.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spycloud_relay::adapters::{
    ConnectionLimits, HttpSettings, JwtDecoder, JwtSettings, RedisSettings, Server, ServerTls,
};
use spycloud_relay::{Relay, RelaySettings};

use super::open_files::{self, connections_within};
use super::{Passwords, ServeArgs, logging};

/// Serves until SIGTERM or SIGINT (and the grace after it).
///
/// # Errors
/// A setting that cannot be served (the JWT or SpyCloud settings, the TLS pair, Redis), an
/// address that cannot be bound, or the server failing.
pub async fn run(args: ServeArgs) -> Result<(), Box<dyn Error>> {
    logging::init(&args.log)?;
    let files = open_files::raise();
    let limits = connection_limits(&args, &files);
    let relay = relay(&args)?;
    let metrics = match args.metrics_listen {
        Some(address) => Some(bind(address, "RELAY_METRICS_LISTEN").await?),
        None => None,
    };
    let tls = tls(&args)?;
    let listener = bind(args.listen, "RELAY_LISTEN").await?;
    log_settings(&args, &limits, &files);
    let http = HttpSettings {
        audience: args.audience.clone(),
        connections: limits,
        tls,
        grace: Duration::from_secs(args.shutdown_grace_secs),
        ..HttpSettings::default()
    };
    let announced = (listener.local_addr()?, http.tls.is_some());
    let mut server = Server::new(relay, http);
    if let Some(metrics) = metrics {
        tracing::info!(address = %metrics.local_addr()?, "metrics at /metrics");
        server = server.metrics(metrics);
    }
    logging::announce(announced.0, announced.1);
    server.serve(listener).await?;
    Ok(())
}

/// The timeouts and the most connections served: `RELAY_MAX_CONNECTIONS`, lowered (with a
/// warning) when the open-files limit has no room for them and the relay's own calls.
fn connection_limits(args: &ServeArgs, files: &open_files::Raised) -> ConnectionLimits {
    let metrics_connections = if args.metrics_listen.is_some() {
        Server::METRICS_CONNECTIONS
    } else {
        0
    };
    let max_connections = match files.limit {
        Some(limit) => connections_within(limit, args.max_connections.get(), metrics_connections),
        None => args.max_connections.get(),
    };
    if max_connections < args.max_connections.get() {
        tracing::warn!(
            configured = args.max_connections.get(),
            serving = max_connections,
            open_files_limit = files.limit,
            "RELAY_MAX_CONNECTIONS lowered to fit the open-files limit with room for the relay's own calls; raise the hard limit (ulimit -Hn) to serve more"
        );
    }
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(args.header_timeout_secs.get()),
        body_read_timeout: Duration::from_secs(args.body_timeout_secs.get()),
        max_connections,
    }
}

/// The relay: SpyCloud, tokens checked against the JWKS hosts, and Redis when it is set.
fn relay(args: &ServeArgs) -> Result<Relay, Box<dyn Error>> {
    let decoder = JwtDecoder::new(JwtSettings {
        jwks_hosts: args.jwks_hosts.clone(),
        scheme: args.jwks_scheme.clone(),
        ..JwtSettings::default()
    })?;
    let settings = RelaySettings {
        mapping: args.output.mapping(),
        deadline: Duration::from_secs(args.request_timeout_secs),
        max_records: args.max_records.get(),
        tiles_cache: Duration::from_secs(args.tiles_cache_secs),
        ..RelaySettings::default()
    };
    let mut builder = Relay::builder()
        .spycloud(args.spycloud.settings())
        .settings(settings)
        .decoder(Arc::new(decoder));
    if let Some(redis) = redis(args) {
        builder = builder.redis(redis);
    }
    Ok(builder.build()?)
}

/// The Redis of `RELAY_REDIS_URL`, if set.
fn redis(args: &ServeArgs) -> Option<RedisSettings> {
    let url = args.redis_url.as_ref()?;
    tracing::info!("rate limits and caches are shared through Redis");
    Some(RedisSettings::new(
        url.clone(),
        args.redis_key_secret.clone().unwrap_or_default(),
    ))
}

/// Binds `address`, saying which one in the error.
async fn bind(address: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, Box<dyn Error>> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen on {address} ({what}): {error}").into())
}

/// HTTPS with `RELAY_TLS_CERT` and `RELAY_TLS_KEY` (clap makes sure both or neither are set),
/// reloaded on SIGHUP; a pair that cannot be served stops the relay here, naming the file.
/// Without TLS, SIGHUP is logged and otherwise ignored (its default action ends the process).
fn tls(args: &ServeArgs) -> Result<Option<ServerTls>, Box<dyn Error>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        #[cfg(unix)]
        ignore_sighup()?;
        return Ok(None);
    };
    let tls = ServerTls::load(cert, key)
        .map_err(|error| format!("RELAY_TLS_CERT/RELAY_TLS_KEY: {error}"))?;
    #[cfg(unix)]
    tls.reload_on_sighup()?;
    Ok(Some(tls))
}

/// Logs each SIGHUP, for as long as the runtime runs: there is no certificate to reload.
#[cfg(unix)]
fn ignore_sighup() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: no TLS certificate to reload (RELAY_TLS_CERT unset); ignored");
        }
    });
    Ok(())
}

/// One line with the settings in effect (none of them is a secret: the API key comes with
/// each token).
fn log_settings(args: &ServeArgs, limits: &ConnectionLimits, files: &open_files::Raised) {
    let passwords = match args.output.passwords {
        Passwords::Plaintext => "plaintext",
        Passwords::Masked => "masked",
        Passwords::Omitted => "omitted",
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %args.listen,
        metrics_listen = args.metrics_listen.map(|a| a.to_string()),
        jwks_hosts = %args.jwks_hosts,
        jwks_scheme = %args.jwks_scheme,
        audience = args.audience.as_deref().unwrap_or("(the request's own URL root)"),
        spycloud_api_url = %without_credentials(&args.spycloud.api_url),
        spycloud_timeout_secs = args.spycloud.timeout_secs,
        spycloud_max_rps = args.spycloud.max_rps.get(),
        portal_url = %without_credentials(&args.output.portal_url),
        passwords,
        request_timeout_secs = args.request_timeout_secs,
        shutdown_grace_secs = args.shutdown_grace_secs,
        header_timeout_secs = limits.header_read_timeout.as_secs(),
        body_timeout_secs = limits.body_read_timeout.as_secs(),
        max_connections = limits.max_connections,
        worker_threads = args.worker_threads.get(),
        max_records = args.max_records.get(),
        tiles_cache_secs = args.tiles_cache_secs,
        open_files_limit = files.limit,
        open_files_raised_from = files.raised_from,
        "settings"
    );
}

/// A URL without any user or password it may carry.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
