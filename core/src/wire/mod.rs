//! The wire protocol: byte layouts of soquete frames (PROTOCOL.md §2–§4).
//!
//! Following smoltcp's split, [`Frame`] is a checked *view* over bytes (offsets and
//! getters, no copying) and [`Repr`] is the validated *representation* with `parse`,
//! `buffer_len` and `emit`. Nothing here keeps state; the session builds on it.

mod code;
pub(crate) mod frame;
pub mod plain;

pub use code::Code;
pub use frame::{Frame, FrameType, Hello, Repr, Welcome};

use core::fmt;

/// The four bytes each side sends before its first frame (PROTOCOL.md §2.1).
///
/// `0xFE` can never start UTF-8 text, so a server tells binary peers from plain-text
/// peers by the first byte alone.
pub const MAGIC: [u8; 4] = [0xFE, b'S', b'Q', b'T'];

/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;

/// Length of the frame header: type (1 byte) and body length (4 bytes, big endian).
pub const HEADER_LEN: usize = 5;

/// Longest client name, in bytes, that a HELLO may carry.
pub const MAX_NAME_LEN: usize = 32;

/// Bytes a MSG frame adds around its payload (header and sequence number).
pub const MSG_OVERHEAD: usize = HEADER_LEN + 8;

/// Largest frame other than MSG: a HELLO with the longest name, plus the magic.
pub const MAX_CONTROL_LEN: usize = MAGIC.len() + HEADER_LEN + frame::HELLO_FIXED_LEN + MAX_NAME_LEN;

/// What can be wrong with bytes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Fewer bytes than the header or the announced body needs; wait for more input.
    Truncated,
    /// A field has a value the protocol forbids (wrong body length, bad flag, bad name).
    Malformed,
    /// The frame type byte is not one PROTOCOL.md §3 defines.
    UnknownType(u8),
    /// The buffer given to `emit` is shorter than [`Repr::buffer_len`].
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("frame truncated"),
            Error::Malformed => f.write_str("malformed frame"),
            Error::UnknownType(t) => write!(f, "unknown frame type 0x{t:02x}"),
            Error::BufferTooSmall => f.write_str("buffer too small for frame"),
        }
    }
}

impl core::error::Error for Error {}
