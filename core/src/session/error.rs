//! Errors of the session's API and its counters.

use core::fmt;

use crate::wire::MAX_NAME_LEN;

/// Errors of the session's own API (misuse or a full buffer, never peer input:
/// peer misbehaviour ends the session with a [`Closure`](super::Closure)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// `rx` is shorter than [`Session::MIN_RX_LEN`](super::Session::MIN_RX_LEN).
    RxTooSmall,
    /// `tx` cannot hold one control frame.
    TxTooSmall,
    /// The client name is longer than [`MAX_NAME_LEN`] bytes.
    NameTooLong,
    /// The session is not established (still in the handshake, or closed).
    NotOpen,
    /// The session is closing: no new messages.
    Closing,
    /// The message is longer than the peer accepts or than `tx` could ever hold.
    TooLarge {
        /// The largest message that can be sent.
        max: u32,
    },
    /// `tx` has no room now; retry after the peer acknowledges (backpressure).
    Full,
    /// A plain-text message may not contain a newline.
    Newline,
    /// The call does not fit the session's role or state.
    WrongState,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RxTooSmall => f.write_str("receive buffer smaller than one control frame"),
            Error::TxTooSmall => f.write_str("transmit buffer smaller than one control frame"),
            Error::NameTooLong => write!(f, "name longer than {MAX_NAME_LEN} bytes"),
            Error::NotOpen => f.write_str("session not open"),
            Error::Closing => f.write_str("session closing"),
            Error::TooLarge { max } => write!(f, "message longer than the maximum of {max} bytes"),
            Error::Full => f.write_str("transmit buffer full"),
            Error::Newline => f.write_str("plain-text message contains a newline"),
            Error::WrongState => f.write_str("call not valid in this state"),
        }
    }
}

impl core::error::Error for Error {}

/// Counters over the session's life (they survive [`Session::reconnect`](super::Session::reconnect)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Messages accepted by [`Session::send`](super::Session::send).
    pub sent: u64,
    /// Of those, acknowledged by the peer (binary mode only).
    pub acked: u64,
    /// Messages handed to the application ([`Event::Message`](super::Event::Message)),
    /// counted when it polls again.
    pub received: u64,
    /// Bytes taken from the transport.
    pub bytes_in: u64,
    /// Bytes handed to the transport.
    pub bytes_out: u64,
}
