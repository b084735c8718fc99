//! The composition root: command line -> runtime -> the command (serve, demo, lookup,
//! healthcheck). The binary's own modules (the command line, logging, serving, the demo, the
//! open-files limit) are under `src/cli/`; the library never sees them.

mod cli;

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use spycloud_relay::adapters::{RetryPolicy, SpyCloudSettings};

use cli::{Cli, Command, HealthcheckArgs, SpyCloudArgs, demo, serve};

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
        Command::Serve(args) => runtime.block_on(serve::run(args)),
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
