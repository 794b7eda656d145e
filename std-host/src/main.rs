use std::process::ExitCode;

use clap::Parser;
use soquete_host::cli::{self, Cli};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    match cli::run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("soquete: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
