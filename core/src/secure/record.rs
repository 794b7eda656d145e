//! Record framing of the secure mode (PROTOCOL.md §10.1, §10.4): the magic, the 3-byte
//! record header and the size limits.

use super::Error;

/// The secure mode's magic, sent first by each side: `0xFE 'S' 'Q' 'N'`. It shares its
/// first three bytes with the binary magic (§2.1), so a server reads at most four bytes
/// to tell secure, binary and plain-text peers apart.
pub const MAGIC: [u8; 4] = [0xfe, 0x53, 0x51, 0x4e];

/// Record header: `type` (1 byte), body `length` (2 bytes, big-endian).
pub const HEADER_LEN: usize = 3;
const TYPE: usize = 0;
const LENGTH: usize = 1;

/// The AEAD tag that ends every encrypted body (ChaCha20-Poly1305).
pub const TAG_LEN: usize = 16;
/// X25519 public key length (an ephemeral key travels in clear).
pub const DH_LEN: usize = 32;
/// Handshake payload head: `max_record` (2 bytes, big-endian).
pub const PAYLOAD_HEAD_LEN: usize = 2;

/// Most session bytes one handshake message carries (early data, §10.3).
pub const MAX_EARLY: usize = 256;
/// INIT body without early data: `e`, encrypted `s` (32 + 16), payload head + tag.
pub const INIT_OVERHEAD: usize = DH_LEN + DH_LEN + TAG_LEN + PAYLOAD_HEAD_LEN + TAG_LEN;
/// RESP body without early data: `e`, payload head + tag.
pub const RESP_OVERHEAD: usize = DH_LEN + PAYLOAD_HEAD_LEN + TAG_LEN;
/// The largest plaintext of one DATA record the wire can express.
pub const MAX_RECORD: usize = u16::MAX as usize - TAG_LEN;
/// The smallest `max_record` a peer may announce.
pub const MIN_RECORD: usize = 64;

/// Record types (the header's first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 0x01, client → server: Noise IK message 1.
    Init,
    /// 0x02, server → client: Noise IK message 2.
    Resp,
    /// 0x03, both ways after the handshake: one encrypted chunk of the session's stream.
    Data,
    /// 0x04, server → client before the handshake completes: a reason in clear.
    Alert,
}

impl Kind {
    pub(crate) const fn to_u8(self) -> u8 {
        match self {
            Kind::Init => 0x01,
            Kind::Resp => 0x02,
            Kind::Data => 0x03,
            Kind::Alert => 0x04,
        }
    }

    const fn from_u8(v: u8) -> Option<Kind> {
        match v {
            0x01 => Some(Kind::Init),
            0x02 => Some(Kind::Resp),
            0x03 => Some(Kind::Data),
            0x04 => Some(Kind::Alert),
            _ => None,
        }
    }
}

/// A record header, read from its three bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) len: usize,
}

impl Header {
    /// Reads a header.
    ///
    /// # Errors
    /// [`Error::UnknownRecord`] for a type this version does not know.
    pub(crate) fn parse(bytes: [u8; HEADER_LEN]) -> Result<Header, Error> {
        let [kind, hi, lo] = bytes;
        let kind = Kind::from_u8(kind).ok_or(Error::UnknownRecord)?;
        Ok(Header {
            kind,
            len: usize::from(u16::from_be_bytes([hi, lo])),
        })
    }

    /// The header's bytes (`len` is at most `u16::MAX` by construction of every caller).
    pub(crate) fn emit(self) -> [u8; HEADER_LEN] {
        let [hi, lo] = u16::try_from(self.len).unwrap_or(u16::MAX).to_be_bytes();
        let mut out = [0u8; HEADER_LEN];
        out[TYPE] = self.kind.to_u8();
        out[LENGTH] = hi;
        out[LENGTH + 1] = lo;
        out
    }
}

/// What a server can tell from a connection's first bytes ([`detect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Detection {
    /// The secure magic: hand the connection to [`Secure::server`](super::Secure::server).
    Secure,
    /// Not the secure magic: a binary or plain-text peer for the session (§2.1).
    Other,
    /// A prefix of the secure magic: read more.
    Undecided,
}

/// Tells a secure peer from any other by the connection's first bytes (at most 4 are
/// looked at). The bytes are not consumed: hand them all to whichever layer is chosen.
pub fn detect(first: &[u8]) -> Detection {
    let n = first.len().min(MAGIC.len());
    match (first.get(..n), MAGIC.get(..n)) {
        (Some(a), Some(b)) if a == b => {
            if n == MAGIC.len() {
                Detection::Secure
            } else {
                Detection::Undecided
            }
        }
        _ => Detection::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_unknown_type() {
        let h = Header {
            kind: Kind::Data,
            len: 0x0102,
        };
        assert_eq!(h.emit(), [0x03, 0x01, 0x02]);
        assert_eq!(Header::parse(h.emit()), Ok(h));
        assert_eq!(Header::parse([0x05, 0, 0]), Err(Error::UnknownRecord));
        assert_eq!(Header::parse([0x00, 0, 0]), Err(Error::UnknownRecord));
    }

    #[test]
    fn detect_secure_binary_and_plain() {
        assert_eq!(detect(&[]), Detection::Undecided);
        assert_eq!(detect(&[0xfe, 0x53]), Detection::Undecided);
        assert_eq!(detect(&[0xfe, 0x53, 0x51, 0x4e, 0x01]), Detection::Secure);
        assert_eq!(detect(&[0xfe, 0x53, 0x51, 0x54]), Detection::Other);
        assert_eq!(detect(b"hello"), Detection::Other);
    }

    #[test]
    fn overheads_match_the_noise_ik_messages() {
        assert_eq!(INIT_OVERHEAD, 98);
        assert_eq!(RESP_OVERHEAD, 50);
    }
}
