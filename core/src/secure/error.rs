//! Errors of the secure layer and the alert codes a server sends in clear before the
//! handshake completes (PROTOCOL.md §10.6).

use core::fmt;

/// Why a secure connection ended, or why a call was refused. Once the layer has
/// failed it stays failed: every later call reports the same error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// A buffer given to the constructor is shorter than [`MIN_BUFFER_LEN`](super::MIN_BUFFER_LEN).
    BufferTooSmall,
    /// The call does not fit the layer's role or state.
    WrongState,
    /// The peer did not start with the secure magic (§10.1): it does not speak the
    /// secure mode (a client talking to a server without it gets its plain answer).
    NotSecure,
    /// A record type this version does not know.
    UnknownRecord,
    /// A known record type where it is not allowed (§10.4).
    UnexpectedRecord,
    /// A record whose length does not fit its type, or a handshake payload that is
    /// not valid.
    Malformed,
    /// A record longer than this side accepts, rejected from its header.
    TooLarge,
    /// Server: the client's first handshake message did not decrypt. The client holds
    /// another server key than this server's (or the message was altered on the way).
    HandshakeFailed,
    /// Client: the server's answer did not decrypt: it does not hold the secret of the
    /// server key this client was given. A man in the middle, or the wrong server key
    /// configured. Nothing but the first handshake message (which only the genuine
    /// server can read) was sent.
    ServerNotAuthenticated,
    /// Client: the server refused in clear before authenticating itself (§10.6). The
    /// code is unauthenticated: anyone on the path could have sent it.
    Refused(Alert),
    /// Server: the application refused the client's key ([`Secure::refuse`](super::Secure::refuse)).
    KeyRefused(Alert),
    /// A data record that does not authenticate: altered, truncated, reordered,
    /// replayed, or encrypted under other keys.
    BadRecord,
    /// The stream ended in the middle of a record or of the handshake.
    Truncated,
    /// The handshake did not complete within the handshake timeout.
    HandshakeTimeout,
    /// 2^64 − 1 records in one direction: the keys must not be used further (never in
    /// practice).
    NonceExhausted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BufferTooSmall => f.write_str("buffer smaller than the secure layer's minimum"),
            Error::WrongState => f.write_str("call not valid in this state"),
            Error::NotSecure => f.write_str("peer does not speak the secure mode"),
            Error::UnknownRecord => f.write_str("unknown record type"),
            Error::UnexpectedRecord => f.write_str("unexpected record"),
            Error::Malformed => f.write_str("malformed record"),
            Error::TooLarge => f.write_str("record too large"),
            Error::HandshakeFailed => f.write_str("handshake failed: the client does not know this server's key"),
            Error::ServerNotAuthenticated => {
                f.write_str("server not authenticated: it does not hold the expected key (man in the middle?)")
            }
            Error::Refused(alert) => write!(f, "refused by the server (unauthenticated): {alert}"),
            Error::KeyRefused(alert) => write!(f, "client key refused: {alert}"),
            Error::BadRecord => f.write_str("record failed authentication (tampered or replayed)"),
            Error::Truncated => f.write_str("connection ended inside a record"),
            Error::HandshakeTimeout => f.write_str("secure handshake timeout"),
            Error::NonceExhausted => f.write_str("record counter exhausted"),
        }
    }
}

impl core::error::Error for Error {}

/// The reason in an ALERT record (§10.6), sent in clear by a server before the
/// handshake completes. Values shared with §5 keep their meaning there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Alert {
    /// 0x01: the server is shutting down.
    Shutdown,
    /// 0x03: the handshake did not complete in time.
    HandshakeTimeout,
    /// 0x10: no room for another connection.
    ServerFull,
    /// 0x20: a record whose length does not fit its type.
    Malformed,
    /// 0x21: an unknown record type.
    UnknownRecord,
    /// 0x22: a record longer than the server accepts.
    TooLarge,
    /// 0x24: a record out of place.
    Unexpected,
    /// 0x40: the first handshake message did not decrypt (the client has a wrong
    /// server key).
    HandshakeFailed,
    /// 0x41: the client's key is not among the server's allowed keys.
    UnknownKey,
    /// Any other value, kept as received.
    Other(u8),
}

impl Alert {
    /// The alert's byte on the wire.
    pub const fn to_u8(self) -> u8 {
        match self {
            Alert::Shutdown => 0x01,
            Alert::HandshakeTimeout => 0x03,
            Alert::ServerFull => 0x10,
            Alert::Malformed => 0x20,
            Alert::UnknownRecord => 0x21,
            Alert::TooLarge => 0x22,
            Alert::Unexpected => 0x24,
            Alert::HandshakeFailed => 0x40,
            Alert::UnknownKey => 0x41,
            Alert::Other(v) => v,
        }
    }

    /// The alert for a byte received (unknown values are kept as [`Alert::Other`]).
    pub const fn from_u8(v: u8) -> Self {
        match v {
            0x01 => Alert::Shutdown,
            0x03 => Alert::HandshakeTimeout,
            0x10 => Alert::ServerFull,
            0x20 => Alert::Malformed,
            0x21 => Alert::UnknownRecord,
            0x22 => Alert::TooLarge,
            0x24 => Alert::Unexpected,
            0x40 => Alert::HandshakeFailed,
            0x41 => Alert::UnknownKey,
            v => Alert::Other(v),
        }
    }

    /// The alert a server sends for a failure of its own layer before the handshake
    /// completes; `None` for failures it answers with silence.
    pub(crate) const fn for_error(e: Error) -> Option<Alert> {
        match e {
            Error::UnknownRecord => Some(Alert::UnknownRecord),
            Error::UnexpectedRecord => Some(Alert::Unexpected),
            Error::Malformed => Some(Alert::Malformed),
            Error::TooLarge => Some(Alert::TooLarge),
            Error::HandshakeFailed => Some(Alert::HandshakeFailed),
            Error::HandshakeTimeout => Some(Alert::HandshakeTimeout),
            Error::KeyRefused(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Alert::Shutdown => "server shutting down",
            Alert::HandshakeTimeout => "handshake timeout",
            Alert::ServerFull => "server full",
            Alert::Malformed => "malformed record",
            Alert::UnknownRecord => "unknown record type",
            Alert::TooLarge => "record too large",
            Alert::Unexpected => "unexpected record",
            Alert::HandshakeFailed => "handshake failed (wrong server key?)",
            Alert::UnknownKey => "unknown client key",
            Alert::Other(_) => "unknown reason",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_bytes_round_trip() {
        for v in 0..=u8::MAX {
            assert_eq!(Alert::from_u8(v).to_u8(), v);
        }
        assert_eq!(Alert::from_u8(0x41), Alert::UnknownKey);
        assert_eq!(Alert::from_u8(0x99), Alert::Other(0x99));
    }
}
