//! The composition root: command line -> runtime -> the command (serve, demo, lookup,
//! healthcheck). The binary's own modules (the command line, logging, serving, the demo, the
//! open-files limit) are under `src/cli/`; the library never sees them.

mod cli;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cli::{Cli, Command, demo, healthcheck, lookup, serve};

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
        Err(error) => return cli::fail(&error),
    };
    let outcome = match command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Lookup(args) => return runtime.block_on(lookup::run(args)),
        Command::Healthcheck(args) => return runtime.block_on(healthcheck::run(args)),
    };
    // Tasks still running (requests cut off at shutdown) are dropped, not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli::fail(error.as_ref()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
