//! The command line: `serve` (the default), `demo`, `lookup` and `healthcheck`. Every setting
//! is a `--flag` and the environment variable of the contract; `--help` lists them with their
//! defaults. The binary's own modules live here, out of the library:
//!
//! - [`demo`]: the offline demo over the bundled sample;
//! - [`healthcheck`]: the container's HEALTHCHECK;
//! - [`logging`]: the process's log subscriber;
//! - [`lookup`]: one look-up, its bundle (CTIM or STIX 2.1) on stdout;
//! - [`open_files`]: the open-files limit and the connections that fit in it;
//! - [`serve`]: the server, composed from the command line.

pub mod demo;
pub mod healthcheck;
pub mod logging;
pub mod lookup;
pub mod open_files;
pub mod serve;

use std::io::Write;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use spycloud_relay::adapters::{RetryPolicy, SpyCloudSettings};

use spycloud_relay::domain::{
    Lookup, MappingOptions, Observable, ObservableType, PasswordPolicy, Tlp,
};

/// The bounds of every duration and count setting: a value outside them (or not a whole
/// number) is refused when parsed, naming the setting, exit status 2. Timeouts are at most a
/// day: anything longer is a mistake, and an `Instant` that far away must not overflow.
pub mod bounds {
    /// A day, in seconds: the longest timeout or grace.
    pub const DAY_SECS: u64 = 24 * 60 * 60;
    /// A year, in seconds: the longest a scan serves the tiles.
    pub const YEAR_SECS: u64 = 365 * DAY_SECS;
    /// Upstream requests per second per API key.
    pub const MAX_RPS: u64 = 10_000;
    /// Connections served at once (the open-files limit is raised to 2^20 at most).
    pub const MAX_CONNECTIONS: u64 = 1 << 20;
    /// Threads serving requests.
    pub const MAX_WORKER_THREADS: u64 = 256;
    /// Breach records read for one observable (a scan reads 100 times as many).
    pub const MAX_RECORDS: u64 = 1_000_000;
    /// Breach records per value of `lookup --limit`.
    pub const MAX_LOOKUP_LIMIT: u64 = 1_000_000;
}

/// A parser of whole numbers from `min` to `max` for the setting `name` (its variable, or its
/// flag when it has none): the error names it and its bounds.
fn within<T>(
    name: &'static str,
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr,
{
    move |text: &str| {
        let why = || format!("{name} must be a whole number from {min} to {max}");
        let value: u64 = text.parse().map_err(|_| why())?;
        if !(min..=max).contains(&value) {
            return Err(why());
        }
        // Within the bounds, the value fits the setting's type (`max` does).
        text.parse().map_err(|_| why())
    }
}

/// The relay's command line.
#[derive(Debug, Parser)]
#[command(
    name = "spycloud-relay",
    version,
    about = "SecureX / XDR Threat Response relay for SpyCloud"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve`'s settings, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve the relay for SecureX (the default).
    Serve(ServeArgs),
    /// Serve the relay offline over a bundled sample dataset, with a ready token.
    Demo(DemoArgs),
    /// Look up emails, domains, IP addresses or usernames once and print the bundle as JSON
    /// (CTIM, or STIX 2.1 with `--format stix`), from SpyCloud or (`--demo`) the sample dataset.
    Lookup(LookupArgs),
    /// Ask a relay on this machine whether it answers (`GET /watchdog`): exit 0 if it does,
    /// 1 if not. For container health checks.
    Healthcheck(HealthcheckArgs),
}

/// Log settings, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long = "log", env = "RELAY_LOG", default_value = "info")]
    pub filter: String,
    /// Log line format.
    #[arg(long = "log-format", env = "RELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// What the mapping shows.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Base of the SpyCloud portal links in the CTIM output.
    #[arg(
        long,
        env = "SPYCLOUD_PORTAL_URL",
        default_value = "https://portal.spycloud.com"
    )]
    pub portal_url: String,
    /// How passwords, salts and payment-card fields appear in sightings.
    #[arg(long, env = "RELAY_PASSWORDS", value_enum, default_value_t = Passwords::Plaintext)]
    pub passwords: Passwords,
}

/// [`PasswordPolicy`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Passwords {
    /// As SpyCloud sent them.
    Plaintext,
    /// First two characters, then stars.
    Masked,
    /// Left out.
    Omitted,
}

impl OutputArgs {
    /// The mapping options these arguments set.
    pub fn mapping(&self) -> MappingOptions {
        MappingOptions {
            portal_url: self.portal_url.clone(),
            passwords: match self.passwords {
                Passwords::Plaintext => PasswordPolicy::Plaintext,
                Passwords::Masked => PasswordPolicy::Masked,
                Passwords::Omitted => PasswordPolicy::Omitted,
            },
            ..MappingOptions::default()
        }
    }
}

/// How the relay talks to SpyCloud.
#[derive(Debug, Clone, Args)]
pub struct SpyCloudArgs {
    /// SpyCloud Enterprise API base.
    #[arg(
        long,
        env = "SPYCLOUD_API_URL",
        default_value = "https://api.spycloud.io/enterprise-v2"
    )]
    pub api_url: String,
    /// Seconds one upstream call may take.
    #[arg(long, env = "SPYCLOUD_TIMEOUT_SECS", default_value_t = 10,
        value_parser = within::<u64>("SPYCLOUD_TIMEOUT_SECS", 1, bounds::DAY_SECS))]
    pub timeout_secs: u64,
    /// Upstream requests per second per API key (token bucket, same burst).
    #[arg(long, env = "SPYCLOUD_MAX_RPS", default_value_t = NonZeroU32::new(10).unwrap(),
        value_parser = within::<NonZeroU32>("SPYCLOUD_MAX_RPS", 1, bounds::MAX_RPS))]
    pub max_rps: NonZeroU32,
}

impl SpyCloudArgs {
    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The SpyCloud client's settings.
    pub fn settings(&self) -> SpyCloudSettings {
        SpyCloudSettings {
            base_url: self.api_url.clone(),
            timeout: self.timeout(),
            max_rps: self.max_rps,
            retry: RetryPolicy::default(),
        }
    }
}

/// `serve`'s settings.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to serve on (IP:port).
    #[arg(long, env = "RELAY_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
    /// Allowed `jwks_host` values; `*` matches one DNS label; a port must match exactly.
    #[arg(
        long,
        env = "RELAY_JWKS_HOSTS",
        default_value = "visibility.amp.cisco.com,visibility.*.amp.cisco.com"
    )]
    pub jwks_hosts: String,
    /// Scheme of JWKS URLs (`http` only for local testing).
    #[arg(long, env = "RELAY_JWKS_SCHEME", default_value = "https", value_parser = ["https", "http"])]
    pub jwks_scheme: String,
    /// Expected `aud`; unset: the request's own URL root.
    #[arg(long, env = "RELAY_AUDIENCE")]
    pub audience: Option<String>,
    /// Seconds one observe request may take before it answers with what it has.
    #[arg(long, env = "RELAY_REQUEST_TIMEOUT_SECS", default_value_t = 25,
        value_parser = within::<u64>("RELAY_REQUEST_TIMEOUT_SECS", 1, bounds::DAY_SECS))]
    pub request_timeout_secs: u64,
    /// Seconds requests in flight get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "RELAY_SHUTDOWN_GRACE_SECS", default_value_t = 20,
        value_parser = within::<u64>("RELAY_SHUTDOWN_GRACE_SECS", 0, bounds::DAY_SECS))]
    pub shutdown_grace_secs: u64,
    /// Seconds a client has to send a request's headers (or its first byte); then its
    /// connection is closed, so idle or trickling clients cannot hold connections for good.
    #[arg(long, env = "RELAY_HEADER_TIMEOUT_SECS", default_value_t = NonZeroU64::new(30).unwrap(),
        value_parser = within::<NonZeroU64>("RELAY_HEADER_TIMEOUT_SECS", 1, bounds::DAY_SECS))]
    pub header_timeout_secs: NonZeroU64,
    /// Seconds a client has to send a request's body, once its headers are in; then the
    /// request is refused and its connection closed, so a body that never comes cannot hold
    /// a connection.
    #[arg(long, env = "RELAY_BODY_TIMEOUT_SECS", default_value_t = NonZeroU64::new(10).unwrap(),
        value_parser = within::<NonZeroU64>("RELAY_BODY_TIMEOUT_SECS", 1, bounds::DAY_SECS))]
    pub body_timeout_secs: NonZeroU64,
    /// Connections served at once; more clients wait to be accepted. Bounds what a flood of
    /// connections can take. Lowered at start when the open-files limit cannot hold it with
    /// room for the relay's own calls.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", default_value_t = NonZeroUsize::new(1024).unwrap(),
        value_parser = within::<NonZeroUsize>("RELAY_MAX_CONNECTIONS", 1, bounds::MAX_CONNECTIONS))]
    pub max_connections: NonZeroUsize,
    /// Threads serving requests. 1 (one event loop) suits SecureX's load: a request costs
    /// about half a millisecond of CPU, and more threads cost wake-ups and memory.
    #[arg(long, env = "RELAY_WORKER_THREADS", default_value_t = NonZeroUsize::new(1).unwrap(),
        value_parser = within::<NonZeroUsize>("RELAY_WORKER_THREADS", 1, bounds::MAX_WORKER_THREADS))]
    pub worker_threads: NonZeroUsize,
    /// Address (IP:port) of the Prometheus `/metrics` endpoint; unset: off.
    #[arg(long, env = "RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Breach records read for one observable at most; SpyCloud's `hits` beyond it give the
    /// `too many results` warning. A tiles' watchlist scan reads 100 times as many.
    #[arg(long, env = "RELAY_MAX_RECORDS", default_value_t = NonZeroU64::new(10_000).unwrap(),
        value_parser = within::<NonZeroU64>("RELAY_MAX_RECORDS", 1, bounds::MAX_RECORDS))]
    pub max_records: NonZeroU64,
    /// PEM certificate chain to serve HTTPS with (TLS 1.2 and 1.3; with the key, or neither);
    /// SIGHUP reloads it.
    #[arg(long, env = "RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Redis every replica shares rate limits and caches through (`redis://` or `rediss://`);
    /// unset: all state in the process.
    #[arg(long, env = "RELAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Key of the keyed hash that names API keys in Redis (16 bytes or more, the same on every
    /// replica); required with the Redis URL.
    #[arg(long, env = "RELAY_REDIS_KEY_SECRET", hide_env_values = true)]
    pub redis_key_secret: Option<String>,
    /// Seconds one watchlist scan serves the dashboard's tiles.
    #[arg(long, env = "RELAY_TILES_CACHE_SECS", default_value_t = 600,
        value_parser = within::<u64>("RELAY_TILES_CACHE_SECS", 0, bounds::YEAR_SECS))]
    pub tiles_cache_secs: u64,
    /// SpyCloud settings.
    #[command(flatten)]
    pub spycloud: SpyCloudArgs,
    /// Output settings.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Log settings.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `demo`'s settings.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address to serve on (IP:port). Loopback by default: the demo's key and token are public.
    #[arg(long, env = "RELAY_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Output settings.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Log settings.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `lookup`'s settings.
#[derive(Debug, Clone, Args)]
pub struct LookupArgs {
    /// The values to look up, each typed by its form: an address with `@` is an email, an IP
    /// literal an `ip` or `ipv6`, a dotted name a domain (`--type` for anything else). With
    /// `--demo` and no value, every value the sample dataset knows.
    #[arg(required_unless_present = "demo", value_name = "VALUE")]
    pub values: Vec<String>,
    /// The type of every value, whatever its form (`--type user` for usernames).
    #[arg(long = "type", value_parser = observable_type(), value_name = "TYPE")]
    pub kind: Option<ObservableType>,
    /// The SpyCloud API key (not needed with `--demo`).
    #[arg(
        long,
        env = "SPYCLOUD_API_KEY",
        hide_env_values = true,
        required_unless_present = "demo"
    )]
    pub api_key: Option<String>,
    /// Look up in the demo's bundled sample dataset instead of SpyCloud: offline, no API key.
    #[arg(long)]
    pub demo: bool,
    /// What the bundle is written in: CTIM for SecureX/XDR, or STIX 2.1.
    #[arg(long = "format", id = "bundle_format", value_enum, default_value_t = Format::Ctim)]
    pub format: Format,
    /// The TLP marking of every object of a STIX bundle.
    #[arg(long, value_parser = tlp(), default_value = "amber", value_name = "LEVEL")]
    pub tlp: Tlp,
    /// Breach records per value (newest first).
    #[arg(long, default_value_t = 100,
        value_parser = within::<usize>("--limit", 1, bounds::MAX_LOOKUP_LIMIT))]
    pub limit: usize,
    /// Breach records read for one value at most.
    #[arg(long, env = "RELAY_MAX_RECORDS", default_value_t = NonZeroU64::new(10_000).unwrap(),
        value_parser = within::<NonZeroU64>("RELAY_MAX_RECORDS", 1, bounds::MAX_RECORDS))]
    pub max_records: NonZeroU64,
    /// SpyCloud settings.
    #[command(flatten)]
    pub spycloud: SpyCloudArgs,
    /// Output settings.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Log settings.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The language of `lookup`'s bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Cisco's CTIM, as the relay answers SecureX.
    Ctim,
    /// OASIS STIX 2.1, for OpenCTI, MISP and other threat-intel platforms.
    Stix,
}

/// `--tlp`: one of STIX 2.1's predefined TLP levels, by name.
fn tlp() -> impl TypedValueParser<Value = Tlp> {
    PossibleValuesParser::new(Tlp::ALL.map(Tlp::name))
        .try_map(|name| Tlp::of(&name).ok_or("not a TLP level"))
}

/// `--type`: one of the observable types, by name (`email`, `domain`, `ip`, `ipv6`, `user`).
fn observable_type() -> impl TypedValueParser<Value = ObservableType> {
    let names = ObservableType::ALL.map(|kind| PossibleValue::new(kind.name()).help(kind.what()));
    PossibleValuesParser::new(names)
        .try_map(|name| ObservableType::of(&name).ok_or("not an observable type"))
}

impl LookupArgs {
    /// The values as observables, each of `--type` or typed by its form.
    ///
    /// # Errors
    /// One line per value whose type cannot be told or that is not valid for its type, naming
    /// the value (cut to 100 characters).
    pub fn observables(&self) -> Result<Vec<Observable>, Vec<String>> {
        let mut problems = Vec::new();
        let mut observables = Vec::new();
        for value in &self.values {
            let kind = self.kind.or_else(|| ObservableType::by_form(value));
            let Some(kind) = kind else {
                problems.push(format!(
                    "cannot tell what {} is: give its type with --type ({})",
                    value.chars().take(100).collect::<String>(),
                    ObservableType::ALL.map(ObservableType::name).join(", ")
                ));
                continue;
            };
            match Lookup::parse(kind, value) {
                Ok(_) => observables.push(Observable {
                    value: value.as_str().into(),
                    kind: kind.name().into(),
                }),
                Err(invalid) => problems.push(invalid.to_string()),
            }
        }
        if problems.is_empty() {
            Ok(observables)
        } else {
            Err(problems)
        }
    }
}

/// `healthcheck`'s settings.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The address the relay serves on (IP:port), as `serve` reads it; an unspecified address
    /// (`0.0.0.0`, `::`) is reached over loopback.
    #[arg(long, env = "RELAY_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = NonZeroU64::new(5).unwrap(),
        value_parser = within::<NonZeroU64>("--timeout-secs", 1, bounds::DAY_SECS))]
    pub timeout_secs: NonZeroU64,
}

impl HealthcheckArgs {
    /// Where to ask: the listen address, over loopback when it names every interface.
    pub fn target(&self) -> SocketAddr {
        let mut target = self.listen;
        if target.ip().is_unspecified() {
            target.set_ip(match target.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        target
    }
}

/// Says `error` on stderr, prefixed with the program's name: the command failed.
pub fn fail(error: &dyn std::error::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "spycloud-relay: {error}");
    ExitCode::FAILURE
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
    use clap::{CommandFactory, FromArgMatches};

    /// Parses `args` as if none of the relay's variables were set: what the environment of
    /// whoever runs the tests holds must not change what they see.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        fn without_env(command: clap::Command) -> clap::Command {
            command
                .mut_args(|arg| arg.env(None))
                .mut_subcommands(without_env)
        }
        let matches = without_env(Cli::command()).try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    /// `serve`'s settings, whether `serve` was named or left out (as `main` reads them).
    fn serve_args(cli: Cli) -> ServeArgs {
        match cli.command {
            None => cli.serve,
            Some(Command::Serve(serve)) => serve,
            Some(other) => panic!("serve expected, got {other:?}"),
        }
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_the_contract_defaults() {
        let cli = parse(&["spycloud-relay"]).unwrap();
        assert!(cli.command.is_none());
        let serve = cli.serve;
        assert_eq!(serve.listen.to_string(), "0.0.0.0:9090");
        assert_eq!(
            serve.jwks_hosts,
            "visibility.amp.cisco.com,visibility.*.amp.cisco.com"
        );
        assert_eq!(serve.jwks_scheme, "https");
        assert_eq!(serve.audience, None);
        assert_eq!(
            serve.spycloud.api_url,
            "https://api.spycloud.io/enterprise-v2"
        );
        assert_eq!(serve.spycloud.timeout_secs, 10);
        assert_eq!(serve.spycloud.max_rps.get(), 10);
        assert_eq!(serve.output.portal_url, "https://portal.spycloud.com");
        assert_eq!(serve.log.filter, "info");
        // The README's own settings.
        assert_eq!(serve.request_timeout_secs, 25);
        assert_eq!(serve.shutdown_grace_secs, 20);
        assert_eq!(serve.header_timeout_secs.get(), 30);
        assert_eq!(serve.body_timeout_secs.get(), 10);
        assert_eq!(serve.max_connections.get(), 1024);
        assert_eq!(serve.output.passwords, Passwords::Plaintext);
        assert_eq!(serve.output.mapping().passwords, PasswordPolicy::Plaintext);
        assert_eq!(serve.worker_threads.get(), 1);
        assert_eq!(serve.metrics_listen, None);
        assert_eq!(serve.max_records.get(), 10_000);
        assert_eq!(serve.log.format, LogFormat::Text);
        assert_eq!(serve.redis_url, None);
        assert_eq!(serve.redis_key_secret, None);
        assert_eq!((serve.tls_cert, serve.tls_key), (None, None));
        assert_eq!(serve.tiles_cache_secs, 600);
    }

    #[test]
    fn lookup_takes_100_records_per_email_by_default() {
        let cli = parse(&["spycloud-relay", "lookup", "--api-key", "k", "a@x.com"]).unwrap();
        let Some(Command::Lookup(lookup)) = cli.command else {
            panic!("lookup expected")
        };
        assert_eq!(lookup.values, ["a@x.com"]);
        assert_eq!(lookup.api_key.as_deref(), Some("k"));
        assert_eq!(lookup.limit, 100);
        assert_eq!(lookup.max_records.get(), 10_000);
        assert_eq!(lookup.kind, None);
        // CTIM unless told; a STIX bundle is TLP:AMBER unless told.
        assert_eq!(
            (lookup.format, lookup.tlp, lookup.demo),
            (Format::Ctim, Tlp::Amber, false)
        );
        let command = Cli::command();
        let api_key = command
            .find_subcommand("lookup")
            .unwrap()
            .get_arguments()
            .find(|arg| arg.get_long() == Some("api-key"))
            .unwrap();
        assert_eq!(
            api_key.get_env().and_then(|env| env.to_str()),
            Some("SPYCLOUD_API_KEY")
        );
    }

    // RULES R46
    #[test]
    fn lookup_takes_a_format_a_tlp_level_and_the_demo_dataset_without_a_key() {
        let lookup = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Some(Command::Lookup(lookup))) => Ok(lookup),
            Ok(other) => panic!("lookup expected, got {other:?}"),
            Err(error) => Err(error.kind()),
        };
        let stix = lookup(&[
            "spycloud-relay",
            "lookup",
            "--demo",
            "--format",
            "stix",
            "--tlp",
            "red",
        ]);
        let stix = stix.unwrap();
        assert_eq!(
            (stix.format, stix.tlp, stix.demo),
            (Format::Stix, Tlp::Red, true)
        );
        assert!(stix.values.is_empty() && stix.api_key.is_none());
        // Without --demo, a value and a key are needed; no other format or level is taken.
        let missing = clap::error::ErrorKind::MissingRequiredArgument;
        assert_eq!(
            lookup(&["spycloud-relay", "lookup", "a@x.com"]).err(),
            Some(missing)
        );
        assert_eq!(
            lookup(&["spycloud-relay", "lookup", "--api-key", "k"]).err(),
            Some(missing)
        );
        let invalid = clap::error::ErrorKind::InvalidValue;
        for bad in [["--format", "misp"], ["--tlp", "clear"]] {
            let args = ["spycloud-relay", "lookup", "--demo", bad[0], bad[1]];
            assert_eq!(lookup(&args).err(), Some(invalid), "{bad:?}");
        }
    }

    #[test]
    fn every_serve_setting_reads_the_readme_variable() {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        let mut pairs: Vec<_> = serve
            .get_arguments()
            .filter_map(|arg| Some((arg.get_long()?, arg.get_env()?.to_str()?)))
            .collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            [
                ("api-url", "SPYCLOUD_API_URL"),
                ("audience", "RELAY_AUDIENCE"),
                ("body-timeout-secs", "RELAY_BODY_TIMEOUT_SECS"),
                ("header-timeout-secs", "RELAY_HEADER_TIMEOUT_SECS"),
                ("jwks-hosts", "RELAY_JWKS_HOSTS"),
                ("jwks-scheme", "RELAY_JWKS_SCHEME"),
                ("listen", "RELAY_LISTEN"),
                ("log", "RELAY_LOG"),
                ("log-format", "RELAY_LOG_FORMAT"),
                ("max-connections", "RELAY_MAX_CONNECTIONS"),
                ("max-records", "RELAY_MAX_RECORDS"),
                ("max-rps", "SPYCLOUD_MAX_RPS"),
                ("metrics-listen", "RELAY_METRICS_LISTEN"),
                ("passwords", "RELAY_PASSWORDS"),
                ("portal-url", "SPYCLOUD_PORTAL_URL"),
                ("redis-key-secret", "RELAY_REDIS_KEY_SECRET"),
                ("redis-url", "RELAY_REDIS_URL"),
                ("request-timeout-secs", "RELAY_REQUEST_TIMEOUT_SECS"),
                ("shutdown-grace-secs", "RELAY_SHUTDOWN_GRACE_SECS"),
                ("tiles-cache-secs", "RELAY_TILES_CACHE_SECS"),
                ("timeout-secs", "SPYCLOUD_TIMEOUT_SECS"),
                ("tls-cert", "RELAY_TLS_CERT"),
                ("tls-key", "RELAY_TLS_KEY"),
                ("worker-threads", "RELAY_WORKER_THREADS"),
            ]
        );
    }

    #[test]
    fn every_serve_flag_sets_its_setting() {
        let flags = [
            "--listen",
            "127.0.0.1:0",
            "--api-url",
            "http://spycloud.test/v2",
            "--portal-url",
            "http://portal.test",
            "--jwks-hosts",
            "jwks.test:8443",
            "--jwks-scheme",
            "http",
            "--audience",
            "https://relay",
            "--timeout-secs",
            "7",
            "--max-rps",
            "3",
            "--request-timeout-secs",
            "12",
            "--shutdown-grace-secs",
            "4",
            "--header-timeout-secs",
            "9",
            "--body-timeout-secs",
            "3",
            "--max-connections",
            "16",
            "--passwords",
            "omitted",
            "--worker-threads",
            "2",
            "--metrics-listen",
            "127.0.0.1:9100",
            "--max-records",
            "2500",
            "--tiles-cache-secs",
            "30",
            "--log",
            "debug",
            "--log-format",
            "json",
            "--redis-url",
            "rediss://redis.test:6380/2",
            "--redis-key-secret",
            "0123456789abcdef",
            "--tls-cert",
            "/etc/relay/cert.pem",
            "--tls-key",
            "/etc/relay/key.pem",
        ];
        for subcommand in [&[][..], &["serve"]] {
            let args: Vec<&str> = ["spycloud-relay"]
                .iter()
                .chain(subcommand)
                .chain(&flags)
                .copied()
                .collect();
            let serve = serve_args(parse(&args).unwrap());
            assert_eq!(serve.listen.to_string(), "127.0.0.1:0");
            assert_eq!(serve.spycloud.api_url, "http://spycloud.test/v2");
            assert_eq!(
                serve.output.mapping(),
                MappingOptions {
                    portal_url: "http://portal.test".into(),
                    passwords: PasswordPolicy::Omitted,
                    ..MappingOptions::default()
                }
            );
            assert_eq!(serve.jwks_hosts, "jwks.test:8443");
            assert_eq!(serve.jwks_scheme, "http");
            assert_eq!(serve.audience.as_deref(), Some("https://relay"));
            assert_eq!(serve.spycloud.timeout(), Duration::from_secs(7));
            assert_eq!(serve.spycloud.max_rps.get(), 3);
            assert_eq!(serve.request_timeout_secs, 12);
            assert_eq!(serve.shutdown_grace_secs, 4);
            assert_eq!(serve.header_timeout_secs.get(), 9);
            assert_eq!(serve.body_timeout_secs.get(), 3);
            assert_eq!(serve.max_connections.get(), 16);
            assert_eq!(serve.worker_threads.get(), 2);
            assert_eq!(
                serve.metrics_listen.map(|a| a.to_string()).as_deref(),
                Some("127.0.0.1:9100")
            );
            assert_eq!(serve.max_records.get(), 2500);
            assert_eq!(serve.tiles_cache_secs, 30);
            assert_eq!(serve.log.filter, "debug");
            assert_eq!(serve.log.format, LogFormat::Json);
            assert_eq!(
                serve.redis_url.as_deref(),
                Some("rediss://redis.test:6380/2")
            );
            assert_eq!(serve.redis_key_secret.as_deref(), Some("0123456789abcdef"));
            assert_eq!(
                serve.tls_cert.as_deref(),
                Some(std::path::Path::new("/etc/relay/cert.pem"))
            );
            assert_eq!(
                serve.tls_key.as_deref(),
                Some(std::path::Path::new("/etc/relay/key.pem"))
            );
        }
    }

    #[test]
    fn flags_set_what_the_variables_set() {
        let cli = parse(&[
            "spycloud-relay",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwks-scheme",
            "http",
            "--audience",
            "https://relay",
            "--max-rps",
            "3",
            "--passwords",
            "masked",
        ])
        .unwrap();
        let Some(Command::Serve(serve)) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(serve.listen.to_string(), "127.0.0.1:0");
        assert_eq!(serve.jwks_scheme, "http");
        assert_eq!(serve.audience.as_deref(), Some("https://relay"));
        assert_eq!(serve.spycloud.max_rps.get(), 3);
        assert_eq!(serve.output.mapping().passwords, PasswordPolicy::Masked);
        assert!(parse(&["spycloud-relay", "serve", "--jwks-scheme", "ftp"]).is_err());
        // A certificate without its key, or a key without its certificate, is refused.
        assert!(parse(&["spycloud-relay", "--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["spycloud-relay", "serve", "--tls-key", "k.pem"]).is_err());
    }

    fn lookup_args(args: &[&str]) -> LookupArgs {
        let all: Vec<&str> = ["spycloud-relay", "lookup", "--api-key", "k"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        match parse(&all).unwrap().command {
            Some(Command::Lookup(lookup)) => lookup,
            other => panic!("lookup expected, got {other:?}"),
        }
    }

    fn typed(args: &[&str]) -> Result<Vec<(String, String)>, Vec<String>> {
        lookup_args(args).observables().map(|list| {
            list.into_iter()
                .map(|o| (o.kind.to_string(), o.value.to_string()))
                .collect()
        })
    }

    #[test]
    fn lookup_types_values_by_their_form_unless_told() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            typed(&["a@x.com", "192.0.2.1", "2001:db8::1", "Example.com"]).unwrap(),
            [
                pair("email", "a@x.com"),
                pair("ip", "192.0.2.1"),
                pair("ipv6", "2001:db8::1"),
                pair("domain", "Example.com")
            ]
        );
        assert_eq!(
            typed(&["--type", "user", "alice", "a@x.com"]).unwrap(),
            [pair("user", "alice"), pair("user", "a@x.com")]
        );
        assert_eq!(
            typed(&["alice", "a@", "--type", "domain"]).unwrap_err(),
            ["alice is not a valid domain", "a@ is not a valid domain"]
        );
        assert_eq!(
            typed(&["alice", "a@", "192.0.2.300"]).unwrap_err(),
            [
                "cannot tell what alice is: give its type with --type (email, domain, ip, ipv6, user)",
                "a@ is not a valid email address",
                "cannot tell what 192.0.2.300 is: give its type with --type (email, domain, ip, ipv6, user)",
            ]
        );
        assert!(
            parse(&[
                "spycloud-relay",
                "lookup",
                "--api-key",
                "k",
                "--type",
                "hash",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn duration_and_count_settings_are_bounded_naming_the_setting() {
        let serve = |flag: &str, value: &str| {
            parse(&["spycloud-relay", "serve", &format!("{flag}={value}")]).map(serve_args)
        };
        for (flag, name, lowest, highest) in [
            (
                "--timeout-secs",
                "SPYCLOUD_TIMEOUT_SECS",
                1,
                bounds::DAY_SECS,
            ),
            ("--max-rps", "SPYCLOUD_MAX_RPS", 1, bounds::MAX_RPS),
            (
                "--request-timeout-secs",
                "RELAY_REQUEST_TIMEOUT_SECS",
                1,
                bounds::DAY_SECS,
            ),
            (
                "--shutdown-grace-secs",
                "RELAY_SHUTDOWN_GRACE_SECS",
                0,
                bounds::DAY_SECS,
            ),
            (
                "--header-timeout-secs",
                "RELAY_HEADER_TIMEOUT_SECS",
                1,
                bounds::DAY_SECS,
            ),
            (
                "--body-timeout-secs",
                "RELAY_BODY_TIMEOUT_SECS",
                1,
                bounds::DAY_SECS,
            ),
            (
                "--max-connections",
                "RELAY_MAX_CONNECTIONS",
                1,
                bounds::MAX_CONNECTIONS,
            ),
            (
                "--worker-threads",
                "RELAY_WORKER_THREADS",
                1,
                bounds::MAX_WORKER_THREADS,
            ),
            ("--max-records", "RELAY_MAX_RECORDS", 1, bounds::MAX_RECORDS),
            (
                "--tiles-cache-secs",
                "RELAY_TILES_CACHE_SECS",
                0,
                bounds::YEAR_SECS,
            ),
        ] {
            for within in [lowest, highest] {
                assert!(serve(flag, &within.to_string()).is_ok(), "{flag} {within}");
            }
            let outside = [Some(highest + 1), lowest.checked_sub(1), Some(u64::MAX)];
            for value in outside.into_iter().flatten().map(|v| v.to_string()).chain([
                "-1".to_owned(),
                "1.5".to_owned(),
                "".to_owned(),
                "18446744073709551616".to_owned(),
            ]) {
                let error = serve(flag, &value).unwrap_err();
                assert_eq!(error.exit_code(), 2, "{flag} {value}");
                let text = error.to_string();
                assert!(
                    text.contains(&format!(
                        "{name} must be a whole number from {lowest} to {highest}"
                    )),
                    "{flag} {value}: {text}"
                );
            }
        }
        for (subcommand, flag) in [("healthcheck", "--timeout-secs"), ("lookup", "--limit")] {
            let mut args = vec!["spycloud-relay", subcommand, flag, "0"];
            if subcommand == "lookup" {
                args.extend(["--api-key", "k", "a@x.com"]);
            }
            let error = parse(&args).unwrap_err();
            assert!(
                error.to_string().contains(&format!("{flag} must be")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_bad_address_names_its_flag() {
        for (flag, value) in [("--listen", "nope"), ("--metrics-listen", "1.2.3.4")] {
            let error = parse(&["spycloud-relay", "serve", flag, value]).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(error.to_string().contains(flag), "{error}");
            assert_eq!(error.exit_code(), 2);
        }
    }

    #[test]
    fn the_demo_listens_on_loopback_by_default() {
        let Some(Command::Demo(demo)) = parse(&["spycloud-relay", "demo"]).unwrap().command else {
            panic!("demo expected")
        };
        assert_eq!(demo.listen.to_string(), "127.0.0.1:9090");
    }

    #[test]
    fn healthcheck_asks_over_loopback_when_serve_listens_everywhere() {
        let target = |args: &[&str]| {
            let mut all = vec!["spycloud-relay", "healthcheck"];
            all.extend_from_slice(args);
            let Some(Command::Healthcheck(check)) = parse(&all).unwrap().command else {
                panic!("healthcheck expected")
            };
            check.target().to_string()
        };
        assert_eq!(target(&[]), "127.0.0.1:9090");
        assert_eq!(target(&["--listen", "[::]:80"]), "[::1]:80");
        assert_eq!(target(&["--listen", "192.0.2.1:9000"]), "192.0.2.1:9000");
    }
}
