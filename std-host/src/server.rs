//! `soquete server`.

use std::process::ExitCode;

use crate::cli::ServerArgs;

/// Runs the server until SIGINT/SIGTERM.
pub fn run(_args: &ServerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
