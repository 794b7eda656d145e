use std::process::ExitCode;

use clap::Parser;
use soquete_host::cli::{self, Cli};
use soquete_host::server::STOPPED_TARGET;

fn main() -> ExitCode {
    // Warnings, and the line that says the server stopped.
    let default = format!("warn,{STOPPED_TARGET}=info");
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
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
