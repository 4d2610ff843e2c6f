//! `kvhost`: the command-line front end.
//!
//! A thin layer over the libraries; imports run one way, from the commands down to the
//! helpers:
//! - [`cli`] declares the commands and flags ([`units`] parses sizes and durations).
//! - [`setup`] turns flags and `kvhost.toml` into one [`kvhost::Config`] (read once per
//!   process), and that into a [`kvhost::Registry`]: `--bucket` flags through
//!   [`bucket_spec`], Spin's runtime config through [`spin_config`].
//! - [`run`] runs a component and [`serve`] serves an HTTP component, both on the engine of
//!   [`engine`] (components renamed by [`wit_versions`]) with the instance state of [`host`]
//!   (outgoing HTTP refused by [`outgoing_http`]), stopped by [`signals`].
//!   `serve` counts into [`metrics`]; [`hyper_timer`] serves both of its listeners.
//! - [`admin`] is the admin API and web console (`serve --admin`, `kvhost admin`).
//! - [`watch`] runs `watch-service` components (`kvhost watch`, `serve --watcher`).
//! - [`kv`] implements `kvhost kv ...`, locally or through a running server's admin API:
//!   [`check`] walks damaged buckets, [`import`] writes entries in batches, [`jsonl`] is the
//!   export format, [`spin_sqlite`] reads Spin's SQLite files.
//!
//! Exit status: 0 on success, 1 when `kv get` finds no such key, 2 on any error (printed to
//! stderr with what to do next), as clap does for usage errors; `run` has its own (see
//! `kvhost run --help`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod admin;
mod bucket_spec;
mod check;
mod cli;
mod engine;
mod host;
mod hyper_timer;
mod import;
mod jsonl;
mod kv;
mod metrics;
mod outgoing_http;
mod run;
mod serve;
mod setup;
mod signals;
mod spin_config;
mod spin_sqlite;
mod units;
mod watch;
mod wit_versions;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// What a successful command tells the shell.
pub(crate) enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 1: the thing looked for does not exist (like `grep` finding nothing).
    NotFound,
    /// Exit with this status (a guest's own, or what became of it).
    Exit(u8),
}

fn main() -> ExitCode {
    quiet_contained_panics();
    let cli = Cli::parse();
    init_logging(match cli.command {
        Command::Serve(_) | Command::Admin(_) | Command::Watch(_) => "info",
        _ => "warn",
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Kv(args) => kv::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Serve(args) => serve::serve(*args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Watch(args) => watch::run(args).await,
        }
    });
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(1),
        Ok(Outcome::Exit(status)) => ExitCode::from(status),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// A panic that kvhost turns into a "store damaged" error (see
/// `kvhost::backend::embedded::containing_panic`) is reported as that error; printing the
/// panic too would look like a crash. Every other panic is printed as usual.
fn quiet_contained_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !kvhost::backend::embedded::containing_panic() {
            default(info);
        }
    }));
}

/// Log lines go to stderr, filtered by `$KVHOST_LOG` (e.g. `debug`, `kvhost=debug,info`),
/// else by `default` (serve logs each request at `info`; other commands only warnings).
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KVHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
