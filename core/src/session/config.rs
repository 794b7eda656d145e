//! What the application chooses and learns about a session: [`Config`], [`Role`],
//! [`Mode`].

use crate::time::Duration;

/// Settings of one session. Both sides advertise theirs in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Largest message payload this side accepts, in bytes (PROTOCOL.md §3.2).
    pub max_message: u32,
    /// Close the session after this long without receiving anything; zero disables.
    /// Binary peers keep the session alive with PING at a third of the smaller of the
    /// two sides' timeouts (§4.4).
    pub idle_timeout: Duration,
    /// Time allowed from connection to an established session (§4.1).
    pub handshake_timeout: Duration,
    /// Time allowed for an orderly close to complete before the session aborts (§4.5).
    pub close_timeout: Duration,
    /// Plain-text sessions deliver a partial line after this long without input (§7.1).
    pub line_gap: Duration,
    /// A server accepts plain-text peers (§7); when false they get BAD_MAGIC.
    pub allow_plain: bool,
}

impl Config {
    /// Defaults suited to a small device: 1 KiB messages, 30 s idle timeout, 10 s
    /// handshake and close timeouts, 100 ms line gap, plain text allowed.
    pub const DEFAULT: Config = Config {
        max_message: 1024,
        idle_timeout: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(10),
        line_gap: Duration::from_millis(100),
        allow_plain: true,
    };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Which end of the connection this session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// Opens the connection and sends HELLO.
    Client,
    /// Accepts the connection and answers WELCOME or REFUSE.
    Server,
}

/// How the peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// The soquete binary protocol: framed, sequenced, acknowledged.
    Binary,
    /// One message per text line, no acknowledgements (PROTOCOL.md §7).
    Plain,
}
