//! The composition root: command line -> logging -> adapters -> serve (or demo, or lookup).

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use spycloud_relay::adapters::cache::CachedCatalogs;
use spycloud_relay::adapters::fixed::FixedCredentials;
use spycloud_relay::adapters::http::{self, ConnectionLimits, HttpSettings};
use spycloud_relay::adapters::jwt::{JwtDecoder, JwtSettings};
use spycloud_relay::adapters::spycloud::{RetryPolicy, SpyCloudClient, SpyCloudSettings};
use spycloud_relay::config::{Cli, Command, LookupArgs, ServeArgs, SpyCloudArgs};
use spycloud_relay::domain::{
    ApiKey, Credentials, EMAIL, Email, EntitiesLimit, ErrorKind, Observable,
};
use spycloud_relay::ports::BreachSource;
use spycloud_relay::{Relay, RelaySettings, demo, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    let threads = match &command {
        Command::Serve(args) => args.worker_threads.get(),
        Command::Demo(_) | Command::Lookup(_) => 1,
    };
    let runtime = match runtime(threads) {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    let outcome = match command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Lookup(args) => return runtime.block_on(lookup(args)),
    };
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
    eprintln!("spycloud-relay: {error}");
    ExitCode::FAILURE
}

fn spycloud(args: &SpyCloudArgs) -> Result<Arc<dyn BreachSource>, Box<dyn Error>> {
    let client = SpyCloudClient::new(SpyCloudSettings {
        base_url: args.api_url.clone(),
        timeout: args.timeout(),
        max_rps: args.max_rps,
        retry: RetryPolicy::default(),
    })?;
    Ok(Arc::new(CachedCatalogs::new(Arc::new(client))))
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn Error>> {
    telemetry::init(&args.log)?;
    let decoder = JwtDecoder::new(JwtSettings {
        allow_list: args.jwks_hosts.parse()?,
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
    let relay = Arc::new(Relay::new(
        spycloud(&args.spycloud)?,
        Arc::new(decoder),
        settings,
    ));
    if let Some(address) = &args.metrics_listen {
        telemetry::serve_metrics(address.parse()?)?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    telemetry::announce(listener.local_addr()?);
    let http = HttpSettings {
        audience: args.audience.clone(),
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(args.header_timeout_secs.get()),
            max_connections: args.max_connections.get(),
        },
        ..HttpSettings::default()
    };
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    http::serve_until_signal(listener, relay, http, grace).await;
    Ok(())
}

/// One-shot lookup: prints the bundle; fails on a fatal error or a value that is not an email.
async fn lookup(args: LookupArgs) -> ExitCode {
    if let Err(error) = telemetry::init(&args.log) {
        return fail(error.as_ref());
    }
    let (Ok(api_key), Some(entities_limit)) =
        (ApiKey::parse(&args.api_key), EntitiesLimit::new(args.limit))
    else {
        eprintln!("spycloud-relay: SPYCLOUD_API_KEY must be a usable key and --limit above 0");
        return ExitCode::from(2);
    };
    // The domain's own message for a value that is not an address, one line each.
    let invalid: Vec<_> = args
        .emails
        .iter()
        .filter_map(|e| Email::parse(e).err())
        .collect();
    if !invalid.is_empty() {
        for error in invalid {
            eprintln!("spycloud-relay: {error}");
        }
        return ExitCode::from(2);
    }
    let credentials = Credentials {
        api_key,
        entities_limit,
    };
    let source = match spycloud(&args.spycloud) {
        Ok(source) => source,
        Err(error) => return fail(error.as_ref()),
    };
    let settings = RelaySettings {
        mapping: args.output.mapping(),
        ..RelaySettings::default()
    };
    let relay = Relay::new(
        source,
        Arc::new(FixedCredentials(credentials.clone())),
        settings,
    );
    let observables: Vec<_> = args
        .emails
        .iter()
        .map(|value| Observable {
            value: value.as_str().into(),
            kind: EMAIL.into(),
        })
        .collect();
    let bundle = relay.observe_as(&credentials, &observables).await;
    let fatal = bundle
        .errors
        .iter()
        .find(|e| e.kind == ErrorKind::Fatal)
        .cloned();
    println!("{:#}", bundle.into_response());
    match fatal {
        Some(error) => {
            eprintln!("spycloud-relay: {}: {}", error.code, error.message);
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
