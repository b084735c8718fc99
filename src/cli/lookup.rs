//! `lookup`: one look-up from the command line, its bundle on stdout as JSON — CTIM (the
//! default) or STIX 2.1 (`--format stix`) — from SpyCloud, or (`--demo`) from the demo's
//! bundled sample dataset, offline and without an API key.
//!
//! The steps, in order: the credentials, the observables, the relay, the findings, the bundle
//! on stdout, then what went wrong on stderr and the exit status: 0, 1 on a fatal error (the
//! bundle still holds what was found before it), 2 on a value that cannot be looked up.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;
use spycloud_relay::adapters::{FixedCredentials, MemorySource};
use spycloud_relay::domain::{
    ApiKey, Credentials, EntitiesLimit, Findings, MappingOptions, ModuleSettings, Observable,
};
use spycloud_relay::{BuildError, Relay, RelaySettings};

use super::demo::{DEMO_API_KEY, samples};
use super::{Format, LookupArgs, logging};

/// Runs `lookup`.
pub async fn run(args: LookupArgs) -> ExitCode {
    if let Err(error) = logging::init(&args.log) {
        return super::fail(error.as_ref());
    }
    let request = credentials(&args).and_then(|credentials| Ok((credentials, observables(&args)?)));
    let (credentials, observables) = match request {
        Ok(request) => request,
        Err(problems) => {
            for problem in problems {
                let _ = writeln!(std::io::stderr(), "spycloud-relay: {problem}");
            }
            return ExitCode::from(2);
        }
    };
    let relay = match relay(&args, &credentials) {
        Ok(relay) => relay,
        Err(error) => return super::fail(&error),
    };
    let findings = relay.lookup(&credentials, &observables).await;
    let options = MappingOptions {
        tlp: args.tlp,
        ..relay.mapping(&credentials)
    };
    let bundle = match render(&findings, args.format, &options) {
        Ok(bundle) => bundle,
        Err(error) => return super::fail(&error),
    };
    if print(&bundle).is_err() {
        return ExitCode::FAILURE;
    }
    drop(bundle);
    report(&findings, args.format)
}

/// The API key (the demo's with `--demo`) and the entities limit.
fn credentials(args: &LookupArgs) -> Result<Credentials, Vec<String>> {
    let key = if args.demo {
        DEMO_API_KEY
    } else {
        args.api_key.as_deref().unwrap_or_default()
    };
    let (Ok(api_key), Some(entities_limit)) = (ApiKey::parse(key), EntitiesLimit::new(args.limit))
    else {
        return Err(vec![
            "SPYCLOUD_API_KEY must be a usable key and --limit above 0".to_owned(),
        ]);
    };
    Ok(Credentials {
        api_key,
        entities_limit,
        settings: ModuleSettings::default(),
    })
}

/// The values as observables; with `--demo` and none given, every value of the sample dataset.
fn observables(args: &LookupArgs) -> Result<Vec<Observable>, Vec<String>> {
    if args.demo && args.values.is_empty() {
        let dataset = MemorySource::sample();
        return Ok(samples(&dataset)
            .into_iter()
            .map(|(kind, value)| Observable::new(kind, &value))
            .collect());
    }
    // The domain's own message for a value not valid for its type, one line each.
    args.observables()
}

/// The relay over SpyCloud, or over the sample dataset with `--demo`.
fn relay(args: &LookupArgs, credentials: &Credentials) -> Result<Relay, BuildError> {
    let settings = RelaySettings {
        mapping: args.output.mapping(),
        max_records: args.max_records.get(),
        ..RelaySettings::default()
    };
    if args.demo {
        let decoder = FixedCredentials(credentials.clone());
        return Ok(Relay::new(
            Arc::new(MemorySource::sample()),
            Arc::new(decoder),
            settings,
        ));
    }
    Relay::builder()
        .spycloud(args.spycloud.settings())
        .settings(settings)
        .build()
}

/// The findings as the bundle of `format`.
fn render(
    findings: &Findings,
    format: Format,
    options: &MappingOptions,
) -> Result<Value, serde_json::Error> {
    match format {
        Format::Ctim => findings.to_ctim(options).into_response(),
        Format::Stix => Ok(findings.to_stix(options)),
    }
}

/// Writes `bundle` to stdout, pretty-printed, with a final newline: straight into the output,
/// not into a text of its own first (a big answer would be in memory twice).
fn print(bundle: &Value) -> std::io::Result<()> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut stdout, bundle)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// What the bundle cannot say, on stderr: the fatal error (exit 1) and, for STIX (which has no
/// error object), every warning first. A CTIM bundle carries its warnings itself.
fn report(findings: &Findings, format: Format) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    if format == Format::Stix {
        for warning in findings.all_warnings() {
            let _ = writeln!(
                stderr,
                "spycloud-relay: warning: {}",
                super::escaped(&warning.message)
            );
        }
    }
    match &findings.fatal {
        Some(error) => {
            let _ = writeln!(
                stderr,
                "spycloud-relay: {}: {}",
                super::escaped(error.code()),
                super::escaped(&error.message())
            );
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
