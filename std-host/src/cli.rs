//! Command-line interface.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use soquete_text::parse_duration;

/// soquete: TCP messaging with message boundaries, acknowledgements and plain-text peers.
#[derive(Debug, Parser)]
#[command(name = "soquete", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accept clients and print every message they send.
    Server(ServerArgs),
    /// Send each line of standard input as one message.
    Client(ClientArgs),
}

/// `soquete server` options.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8800", value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// Most clients served at once; more are refused with "server full".
    #[arg(long, default_value_t = 1024)]
    pub max_clients: usize,
    /// Largest message a client may send, in bytes.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024))]
    pub max_message: u32,
    /// Close a session after this long without traffic (e.g. 60s, 500ms; 0 disables).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Plain-text clients: show a partial line (no newline yet) after this long without
    /// input (e.g. 100ms; 0 waits for the newline or the end of the connection).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub line_gap: Duration,
    /// How long a binary session whose connection was lost waits for its client to
    /// reconnect and resume it, losing and repeating nothing (0 disables resume).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub resume_window: Duration,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `soquete client` options.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8800", value_name = "HOST:PORT")]
    pub connect: String,
    /// Name to introduce this client with (at most 32 bytes).
    #[arg(long, value_parser = crate::client::parse_name)]
    pub name: Option<String>,
    /// Longest wait for connecting and, at the end, for acknowledgements (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Speak plain text lines (for `nc -l` or any line-based server): no handshake, no
    /// acknowledgements.
    #[arg(long)]
    pub plain: bool,
    /// When the connection is lost, connect again (with backoff) and resume the
    /// session: unacknowledged messages are resent, none is shown twice.
    #[arg(long, conflicts_with = "plain")]
    pub reconnect: bool,
    /// With --reconnect: give up after this long without a session (0: never).
    #[arg(long, default_value = "60s", value_parser = parse_duration, requires = "reconnect")]
    pub reconnect_for: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
