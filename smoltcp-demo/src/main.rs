use std::io::{self, BufWriter};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use soquete_smoltcp_demo::cli::{Cli, Run};
use soquete_smoltcp_demo::node::Ram;
use soquete_smoltcp_demo::tap::{TapConfig, TapRole};
use soquete_smoltcp_demo::{loopback, tap};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let run = cli.run().unwrap_or_else(|msg| {
        Cli::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, msg)
            .exit()
    });
    let result = match run {
        Run::Loopback(config) => run_loopback(&config),
        Run::Tap(config) => run_tap(&config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("soquete-smoltcp-demo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_loopback(config: &loopback::Config) -> anyhow::Result<ExitCode> {
    println!("{}", Ram::per_connection());
    let summary = loopback::run(config, BufWriter::new(io::stdout().lock())).context("loopback run failed")?;
    println!("{summary}");
    Ok(if summary.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_tap(config: &TapConfig) -> anyhow::Result<ExitCode> {
    let outcome = tap::run(config, BufWriter::new(io::stdout().lock())).with_context(|| {
        format!(
            "on TAP device {} (it must exist, e.g. `ip tuntap add dev {0} mode tap`, and this needs CAP_NET_ADMIN)",
            config.iface
        )
    })?;
    if let TapRole::Client { .. } = config.role {
        let closure = outcome.ended.first().map_or("not connected".to_owned(), |e| {
            e.closure.map_or("connection failed".to_owned(), |c| c.to_string())
        });
        eprintln!(
            "sent {} messages, {} acknowledged, in {:.3}s ({closure})",
            outcome.client.sent,
            outcome.client.acked,
            outcome.elapsed.as_secs_f64()
        );
    }
    if outcome.timed_out {
        eprintln!("soquete-smoltcp-demo: time limit reached");
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
