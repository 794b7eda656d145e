use std::process::ExitCode;

use clap::Parser;
use soquete_host::cli::{Cli, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => soquete_host::server::run(&args),
        Command::Client(args) => soquete_host::client::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("soquete: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
