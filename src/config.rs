//! The command line: `serve` (the default), `demo` and `lookup`. Every setting is a `--flag`
//! and the environment variable of the contract; `--help` lists them with their defaults.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::{MappingOptions, PasswordPolicy};

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
pub enum Command {
    /// Serve the relay for SecureX (the default).
    Serve(ServeArgs),
    /// Serve the relay offline over a bundled sample dataset, with a ready token.
    Demo(DemoArgs),
    /// Look up email addresses once and print the CTIM bundle as JSON.
    Lookup(LookupArgs),
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
    #[arg(long, env = "SPYCLOUD_TIMEOUT_SECS", default_value_t = 10)]
    pub timeout_secs: u64,
    /// Upstream requests per second per API key (token bucket, same burst).
    #[arg(long, env = "SPYCLOUD_MAX_RPS", default_value_t = NonZeroU32::new(10).unwrap())]
    pub max_rps: NonZeroU32,
}

impl SpyCloudArgs {
    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// `serve`'s settings.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to serve on.
    #[arg(long, env = "RELAY_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: String,
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
    #[arg(long, env = "RELAY_REQUEST_TIMEOUT_SECS", default_value_t = 25)]
    pub request_timeout_secs: u64,
    /// Seconds requests in flight get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "RELAY_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// Seconds a client has to send a request's headers (or its first byte); then its
    /// connection is closed, so idle or trickling clients cannot hold connections for good.
    #[arg(long, env = "RELAY_HEADER_TIMEOUT_SECS", default_value_t = NonZeroU64::new(30).unwrap())]
    pub header_timeout_secs: NonZeroU64,
    /// Connections served at once; more clients wait to be accepted. Bounds what a flood of
    /// connections can take.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", default_value_t = NonZeroUsize::new(1024).unwrap())]
    pub max_connections: NonZeroUsize,
    /// Threads serving requests. 1 (one event loop) suits SecureX's load: a request costs
    /// about half a millisecond of CPU, and more threads cost wake-ups and memory.
    #[arg(long, env = "RELAY_WORKER_THREADS", default_value_t = NonZeroUsize::new(1).unwrap())]
    pub worker_threads: NonZeroUsize,
    /// Address of the Prometheus `/metrics` endpoint; unset: off.
    #[arg(long, env = "RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Breach records read for one observable at most; a tiles' watchlist scan reads 100
    /// times as many.
    #[arg(long, env = "RELAY_MAX_RECORDS", default_value_t = NonZeroUsize::new(10_000).unwrap())]
    pub max_records: NonZeroUsize,
    /// Seconds one watchlist scan serves the dashboard's tiles.
    #[arg(long, env = "RELAY_TILES_CACHE_SECS", default_value_t = 600)]
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
    /// Address to serve on.
    #[arg(long, env = "RELAY_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: String,
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
    /// The email addresses to look up.
    #[arg(required = true)]
    pub emails: Vec<String>,
    /// The SpyCloud API key.
    #[arg(long, env = "SPYCLOUD_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Breach records per email (newest first).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
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

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(serve.listen, "0.0.0.0:9090");
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
        assert_eq!(serve.max_connections.get(), 1024);
        assert_eq!(serve.output.passwords, Passwords::Plaintext);
        assert_eq!(serve.output.mapping().passwords, PasswordPolicy::Plaintext);
        assert_eq!(serve.worker_threads.get(), 1);
        assert_eq!(serve.metrics_listen, None);
        assert_eq!(serve.log.format, LogFormat::Text);
        assert_eq!(serve.max_records.get(), 10_000);
        assert_eq!(serve.tiles_cache_secs, 600);
    }

    #[test]
    fn lookup_takes_100_records_per_email_by_default() {
        let cli = parse(&["spycloud-relay", "lookup", "--api-key", "k", "a@x.com"]).unwrap();
        let Some(Command::Lookup(lookup)) = cli.command else {
            panic!("lookup expected")
        };
        assert_eq!(lookup.emails, ["a@x.com"]);
        assert_eq!(lookup.api_key, "k");
        assert_eq!(lookup.limit, 100);
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
                ("request-timeout-secs", "RELAY_REQUEST_TIMEOUT_SECS"),
                ("shutdown-grace-secs", "RELAY_SHUTDOWN_GRACE_SECS"),
                ("tiles-cache-secs", "RELAY_TILES_CACHE_SECS"),
                ("timeout-secs", "SPYCLOUD_TIMEOUT_SECS"),
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
            "--max-connections",
            "16",
            "--passwords",
            "omitted",
            "--worker-threads",
            "2",
            "--metrics-listen",
            "127.0.0.1:9100",
            "--max-records",
            "50",
            "--tiles-cache-secs",
            "30",
            "--log",
            "debug",
            "--log-format",
            "json",
        ];
        for subcommand in [&[][..], &["serve"]] {
            let args: Vec<&str> = ["spycloud-relay"]
                .iter()
                .chain(subcommand)
                .chain(&flags)
                .copied()
                .collect();
            let serve = serve_args(parse(&args).unwrap());
            assert_eq!(serve.listen, "127.0.0.1:0");
            assert_eq!(serve.spycloud.api_url, "http://spycloud.test/v2");
            assert_eq!(
                serve.output.mapping(),
                MappingOptions {
                    portal_url: "http://portal.test".into(),
                    passwords: PasswordPolicy::Omitted,
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
            assert_eq!(serve.max_connections.get(), 16);
            assert_eq!(serve.worker_threads.get(), 2);
            assert_eq!(serve.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
            assert_eq!(serve.max_records.get(), 50);
            assert_eq!(serve.tiles_cache_secs, 30);
            assert_eq!(serve.log.filter, "debug");
            assert_eq!(serve.log.format, LogFormat::Json);
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
        assert_eq!(serve.listen, "127.0.0.1:0");
        assert_eq!(serve.jwks_scheme, "http");
        assert_eq!(serve.audience.as_deref(), Some("https://relay"));
        assert_eq!(serve.spycloud.max_rps.get(), 3);
        assert_eq!(serve.output.mapping().passwords, PasswordPolicy::Masked);
        assert!(parse(&["spycloud-relay", "serve", "--jwks-scheme", "ftp"]).is_err());
    }
}
