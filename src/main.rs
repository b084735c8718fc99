//! The composition root: command line -> logging -> adapters -> serve (or demo, lookup,
//! healthcheck). The binary's own modules (the command line, logging, the demo, the open-files
//! limit) are under `src/cli/`; the library never sees them.

mod cli;

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use spycloud_relay::adapters::{
    ConnectionLimits, HttpSettings, JwtDecoder, JwtSettings, RedisSettings, RetryPolicy, Server,
    ServerTls, SpyCloudSettings,
};
use spycloud_relay::{Relay, RelaySettings};

use cli::open_files::{self, connections_within};
use cli::{Cli, Command, HealthcheckArgs, Passwords, ServeArgs, SpyCloudArgs, demo, logging};

/// mimalloc, which hands memory freed after a large answer back to the system; glibc's
/// allocator kept most of it (see `tests/hardening.rs`,
/// `memory_is_given_back_after_a_large_answer`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its v3 option list).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc give freed memory back at once. By default it waits a second, and only does
/// so when the thread allocates again: an idle relay would keep the peak of its last request.
fn give_memory_back_at_once() {
    // SAFETY: sets one option, before any other thread runs.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

fn main() -> ExitCode {
    give_memory_back_at_once();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    let threads = match &command {
        Command::Serve(args) => args.worker_threads.get(),
        Command::Demo(_) | Command::Lookup(_) | Command::Healthcheck(_) => 1,
    };
    let runtime = match runtime(threads) {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    let outcome = match command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Lookup(args) => return runtime.block_on(cli::lookup::run(args)),
        Command::Healthcheck(args) => return runtime.block_on(healthcheck(args)),
    };
    // Tasks still running (requests cut off at shutdown) are dropped, not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error.as_ref()),
    }
}

/// One event loop on this thread, or a pool of `threads` workers.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build()
}

fn fail(error: &dyn Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "spycloud-relay: {error}");
    ExitCode::FAILURE
}

/// The SpyCloud client's settings from the command line.
fn spycloud(args: &SpyCloudArgs) -> SpyCloudSettings {
    SpyCloudSettings {
        base_url: args.api_url.clone(),
        timeout: args.timeout(),
        max_rps: args.max_rps,
        retry: RetryPolicy::default(),
    }
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

async fn serve(args: ServeArgs) -> Result<(), Box<dyn Error>> {
    logging::init(&args.log)?;
    let files = open_files::raise();
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
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(args.header_timeout_secs.get()),
        body_read_timeout: Duration::from_secs(args.body_timeout_secs.get()),
        max_connections,
    };

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
        .spycloud(spycloud(&args.spycloud))
        .settings(settings)
        .decoder(Arc::new(decoder));
    if let Some(redis) = redis(&args) {
        builder = builder.redis(redis);
    }
    let relay = builder.build()?;
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

/// The most of an answer `healthcheck` reads: the relay's is a few dozen bytes.
const MAX_HEALTHCHECK_BYTES: usize = 4096;

/// `GET /watchdog` of the relay on this machine, with a `Health-Check` header it must echo:
/// 0 when it does, 1 (and why, on stderr) when not. At most [`MAX_HEALTHCHECK_BYTES`] of the
/// answer are read, whatever listens there.
async fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    const PROBE: &str = "spycloud-relay-healthcheck";
    let url = format!("http://{}/watchdog", args.target());
    let checked = async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout_secs.get()))
            .no_proxy()
            .build()?;
        let mut response = client
            .get(&url)
            .header("Health-Check", PROBE)
            .send()
            .await?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_HEALTHCHECK_BYTES {
                return Err(format!(
                    "{url} answered {status} with an answer larger than {MAX_HEALTHCHECK_BYTES} bytes"
                )
                .into());
            }
            body.extend_from_slice(&chunk);
        }
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        if status.is_success() && body["data"] == PROBE {
            Ok(())
        } else {
            Err(format!("{url} answered {status}: {}", escaped(&body.to_string())).into())
        }
    };
    let result: Result<(), Box<dyn Error>> = checked.await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "spycloud-relay: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `text` for a terminal: control characters (escape sequences, bells, carriage returns) and
/// the invisible characters that reorder or hide text shown as Rust escapes (`\u{1b}`), the
/// rest as it is. Upstream text is the upstream's, not the terminal's.
fn escaped(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    text.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_reordering_characters_are_escaped_for_the_terminal() {
        assert_eq!(
            escaped("a\u{1b}[31mb\u{7}\r\n\tc\u{202e}d\u{200b}"),
            r"a\u{1b}[31mb\u{7}\u{d}\u{a}\u{9}c\u{202e}d\u{200b}"
        );
        assert_eq!(
            escaped("Authorization failed: Forbidden é"),
            "Authorization failed: Forbidden é"
        );
    }

    #[test]
    fn the_option_set_is_the_purge_delay() {
        // SAFETY: reads an option.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        // mimalloc v3's default for it, which tells it from its neighbours.
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 1000, "purge delay (ms)");
        give_memory_back_at_once();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 0);
    }
}
