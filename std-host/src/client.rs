//! `soquete client`.

use std::process::ExitCode;

use crate::cli::ClientArgs;

/// Runs the client until end of input or `S`.
pub fn run(_args: &ClientArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
