//! The process's logging: one subscriber, text or JSON, filtered by `RELAY_LOG`, on stderr so
//! `lookup` prints its JSON alone on stdout; and the line that says where the relay listens.

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;

use super::{LogArgs, LogFormat};

/// Installs the global subscriber.
///
/// # Errors
/// A filter that does not parse, or a subscriber already installed.
pub fn init(args: &LogArgs) -> Result<(), Box<dyn Error>> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = match args.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|error| error as Box<dyn Error>)
}

/// Says where the relay listens (`https` when it serves TLS): a log line, and a plain line on
/// stdout for scripts and tests. A closed stdout is no reason to stop serving: the line is then
/// only logged.
pub fn announce(address: SocketAddr, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    tracing::info!(%address, scheme, "spycloud-relay listening");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "spycloud-relay listening on {scheme}://{address}");
    let _ = stdout.flush();
}
