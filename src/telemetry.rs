//! Logging: one subscriber for the whole process, text or JSON, filtered by `RELAY_LOG`.
//! Log lines go to stderr so `lookup` can print its JSON alone on stdout.

use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

use crate::config::{LogArgs, LogFormat};

/// Installs the global subscriber.
///
/// # Errors
/// A filter that does not parse, or a subscriber already installed.
pub fn init(args: &LogArgs) -> Result<(), Box<dyn std::error::Error>> {
    let filter = EnvFilter::try_new(&args.filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|error| error as Box<dyn std::error::Error>)
}

/// Says where the relay listens: a log line, and a plain line on stdout for scripts and tests.
pub fn announce(address: SocketAddr) {
    tracing::info!(%address, "spycloud-relay listening");
    println!("spycloud-relay listening on http://{address}");
}
