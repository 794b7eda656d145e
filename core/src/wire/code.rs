//! Reason codes carried by REFUSE, CLOSE and ERROR frames (PROTOCOL.md §5).

use core::fmt;

/// Why a session was refused, closed or aborted. One namespace for all three frames.
///
/// Unknown values received from a peer are kept as [`Code::Other`] so that a newer
/// peer's reason is still reported, not rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Code {
    /// 0x00: orderly end, nothing wrong.
    Normal,
    /// 0x01: the server is shutting down.
    Shutdown,
    /// 0x02: nothing was received for the idle timeout.
    IdleTimeout,
    /// 0x03: the handshake did not complete in time.
    HandshakeTimeout,
    /// 0x04: the peer did not complete an orderly close in time.
    CloseTimeout,
    /// 0x10: the server has no room for another session.
    ServerFull,
    /// 0x11: the peer's protocol version is not supported.
    BadVersion,
    /// 0x12: the resume token is not known to the server.
    UnknownSession,
    /// 0x13: the server accepts only authenticated (secure, PROTOCOL.md §10) peers.
    AuthRequired,
    /// 0x20: a frame's fields are invalid.
    Malformed,
    /// 0x21: a frame type the receiver does not know.
    UnknownFrame,
    /// 0x22: a frame or line longer than the receiver's maximum.
    TooLarge,
    /// 0x23: a MSG whose sequence number is not the next expected one.
    BadSequence,
    /// 0x24: a valid frame that is not allowed in the current state.
    UnexpectedFrame,
    /// 0x25: an ACK for a message that was never sent.
    BadAck,
    /// 0x26: the peer did not start with the magic bytes.
    BadMagic,
    /// 0x30: the receiver cannot keep up (its buffers for this peer are full).
    Overloaded,
    /// 0x31: the peer speaks another protocol (HTTP, TLS, ...) on this port.
    WrongProtocol,
    /// Any other value, kept as received.
    Other(u8),
}

impl Code {
    /// The byte that represents this code on the wire.
    pub const fn to_u8(self) -> u8 {
        match self {
            Code::Normal => 0x00,
            Code::Shutdown => 0x01,
            Code::IdleTimeout => 0x02,
            Code::HandshakeTimeout => 0x03,
            Code::CloseTimeout => 0x04,
            Code::ServerFull => 0x10,
            Code::BadVersion => 0x11,
            Code::UnknownSession => 0x12,
            Code::AuthRequired => 0x13,
            Code::Malformed => 0x20,
            Code::UnknownFrame => 0x21,
            Code::TooLarge => 0x22,
            Code::BadSequence => 0x23,
            Code::UnexpectedFrame => 0x24,
            Code::BadAck => 0x25,
            Code::BadMagic => 0x26,
            Code::Overloaded => 0x30,
            Code::WrongProtocol => 0x31,
            Code::Other(v) => v,
        }
    }

    /// The code a wire byte stands for; never fails.
    pub const fn from_u8(v: u8) -> Code {
        match v {
            0x00 => Code::Normal,
            0x01 => Code::Shutdown,
            0x02 => Code::IdleTimeout,
            0x03 => Code::HandshakeTimeout,
            0x04 => Code::CloseTimeout,
            0x10 => Code::ServerFull,
            0x11 => Code::BadVersion,
            0x12 => Code::UnknownSession,
            0x13 => Code::AuthRequired,
            0x20 => Code::Malformed,
            0x21 => Code::UnknownFrame,
            0x22 => Code::TooLarge,
            0x23 => Code::BadSequence,
            0x24 => Code::UnexpectedFrame,
            0x25 => Code::BadAck,
            0x26 => Code::BadMagic,
            0x30 => Code::Overloaded,
            0x31 => Code::WrongProtocol,
            v => Code::Other(v),
        }
    }

    /// A short human-readable description, used in logs and in plain-text `ERR` lines.
    pub const fn describe(self) -> &'static str {
        match self {
            Code::Normal => "normal close",
            Code::Shutdown => "server shutting down",
            Code::IdleTimeout => "idle timeout",
            Code::HandshakeTimeout => "handshake timeout",
            Code::CloseTimeout => "close timeout",
            Code::ServerFull => "server full",
            Code::BadVersion => "unsupported protocol version",
            Code::UnknownSession => "unknown session",
            Code::AuthRequired => "authentication required (secure clients only)",
            Code::Malformed => "malformed frame",
            Code::UnknownFrame => "unknown frame type",
            Code::TooLarge => "message too large",
            Code::BadSequence => "bad sequence number",
            Code::UnexpectedFrame => "unexpected frame",
            Code::BadAck => "acknowledgement of an unsent message",
            Code::BadMagic => "peer does not speak soquete",
            Code::Overloaded => "peer overloaded",
            Code::WrongProtocol => "wrong protocol",
            Code::Other(_) => "unknown reason",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.describe(), self.to_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for v in 0..=u8::MAX {
            assert_eq!(Code::from_u8(v).to_u8(), v);
        }
    }
}
