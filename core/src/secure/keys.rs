//! Static X25519 keys (PROTOCOL.md §10.2): a device's or a server's identity.

use core::fmt;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A public X25519 key: what a server lists for each allowed device, and what a client
/// is told about the server. Comparing two keys is all a peer's authentication needs
/// once the handshake has proven that the peer holds the matching secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// The key from its 32 bytes (as the handshake carries it).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// The key's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A secret X25519 key, with its public key computed once (the handshake needs it on
/// every connection). It never prints (its `Debug` shows no byte of it) and is only
/// read by the handshake.
#[derive(Clone)]
pub struct SecretKey {
    secret: [u8; KEY_LEN],
    public: PublicKey,
}

impl SecretKey {
    /// The key from 32 bytes: a stored key, or 32 bytes from a cryptographically secure
    /// random source for a new one (any 32 bytes are a valid key: X25519 clamps them).
    /// Computes the public key (one X25519).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey {
            secret: bytes,
            public: PublicKey(public_of(bytes)),
        }
    }

    /// The key's 32 bytes, to store it.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    /// The matching public key: X25519(secret, 9), the Montgomery ladder only.
    pub const fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Secret and public key together, as the handshake's DH functions take them.
    pub(crate) fn pair(&self) -> [u8; 2 * KEY_LEN] {
        let mut out = [0u8; 2 * KEY_LEN];
        for (dst, src) in out.iter_mut().zip(self.secret.iter().chain(self.public.0.iter())) {
            *dst = *src;
        }
        out
    }
}

/// X25519(secret, 9): with `noise-tables` through the precomputed base point table,
/// otherwise through the Montgomery ladder (x25519-dalek's `PublicKey::from` would link
/// the Edwards code on a firmware for nothing).
fn public_of(secret: [u8; KEY_LEN]) -> [u8; KEY_LEN] {
    #[cfg(feature = "noise-tables")]
    {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes()
    }
    #[cfg(not(feature = "noise-tables"))]
    {
        x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::format;

    #[test]
    fn public_key_matches_rfc7748_vector() {
        // RFC 7748 §6.1: Alice's private and public keys.
        let secret = SecretKey::from_bytes(hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let public = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(secret.public_key(), PublicKey::from_bytes(public));
    }

    #[test]
    fn public_key_is_the_ladder_on_the_base_point() {
        for i in 0..32u8 {
            let secret = [i.wrapping_mul(37); 32];
            let ladder = x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES);
            assert_eq!(SecretKey::from_bytes(secret).public_key().as_bytes(), &ladder);
        }
    }

    #[test]
    fn secret_key_never_prints() {
        let secret = SecretKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{secret:?}"), "SecretKey(..)");
        assert!(format!("{:?}", secret.public_key()).starts_with("PublicKey("));
    }

    pub(crate) fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
