//! The Noise IK handshake (PROTOCOL.md §10.3): `Noise_IK_25519_ChaChaPoly_BLAKE2s`
//! through `noise-protocol`, with RustCrypto's X25519, ChaCha20-Poly1305 and BLAKE2s
//! behind its traits. Nothing here is cryptography of our own: this file only adapts
//! the primitives' APIs to the traits, without panicking on any length.

use core::marker::PhantomData;

use blake2::Digest;
use chacha20poly1305::{AeadInPlace, ChaCha20Poly1305, KeyInit};
use noise_protocol::{patterns::noise_ik, CipherState, HandshakeState};

use super::curve::Curve;
use super::keys::{PublicKey, SecretKey, KEY_LEN};
use super::record::{MAGIC, TAG_LEN};

/// Handshake state of one connection.
pub(crate) type Handshake<C> = HandshakeState<X25519<C>, ChaChaPoly, Blake2s>;
/// Transport key and nonce of one direction.
pub(crate) type Cipher = CipherState<ChaChaPoly>;

/// The Noise prologue: the secure magic, so that the handshake also authenticates how
/// the connection was recognised.
const PROLOGUE: [u8; 4] = MAGIC;

/// The client's handshake: it knows the server's static key in advance (IK).
#[inline(never)]
pub(crate) fn initiator<C: Curve>(s: &SecretKey, e: [u8; KEY_LEN], rs: &PublicKey) -> Handshake<C> {
    HandshakeState::new(
        noise_ik(),
        true,
        PROLOGUE,
        Some(s.pair()),
        Some(SecretKey::from_bytes(e).pair()),
        Some(*rs.as_bytes()),
        None,
    )
}

/// The server's handshake.
pub(crate) fn responder<C: Curve>(s: &SecretKey, e: [u8; KEY_LEN]) -> Handshake<C> {
    HandshakeState::new(
        noise_ik(),
        false,
        PROLOGUE,
        Some(s.pair()),
        Some(SecretKey::from_bytes(e).pair()),
        None,
        None,
    )
}

/// X25519 through a [`Curve`] (x25519-dalek's ladder by default). A private key is
/// kept with its public key (secret ‖ public, [`SecretKey::pair`]): `noise-protocol`
/// asks for a key's public half several times per handshake, and each would otherwise
/// be one more X25519.
#[derive(Debug)]
pub(crate) struct X25519<C>(PhantomData<C>);

fn halves(k: &[u8; 2 * KEY_LEN]) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let mut secret = [0u8; KEY_LEN];
    let mut public = [0u8; KEY_LEN];
    let (a, b) = k.split_at(KEY_LEN);
    secret.copy_from_slice(a);
    public.copy_from_slice(b);
    (secret, public)
}

impl<C: Curve> noise_protocol::DH for X25519<C> {
    type Key = [u8; 2 * KEY_LEN];
    type Pubkey = [u8; KEY_LEN];
    type Output = [u8; KEY_LEN];

    fn name() -> &'static str {
        "25519"
    }

    /// Never called: both constructors above pass the ephemeral key, which the caller
    /// draws from its random source (the core has none).
    fn genkey() -> Self::Key {
        unreachable!("the ephemeral key is always supplied")
    }

    fn pubkey(k: &Self::Key) -> Self::Pubkey {
        halves(k).1
    }

    /// A low-order peer key gives the all-zero output; Noise allows refusing it, and we
    /// do, so that a peer cannot force a known shared secret.
    // Not inlined (nor is `initiator`): with the curve generic, inlining it grows the
    // secure client firmware by about 600 bytes (bench/footprint.sh).
    #[inline(never)]
    fn dh(k: &Self::Key, pk: &Self::Pubkey) -> Result<Self::Output, ()> {
        let (secret, public) = halves(k);
        let out = C::x25519(&secret, &public, pk);
        if out.iter().fold(0u8, |acc, b| acc | b) == 0 {
            Err(())
        } else {
            Ok(out)
        }
    }
}

/// ChaCha20-Poly1305 with Noise's nonce: 32 zero bits, then the counter little-endian.
#[derive(Debug)]
pub(crate) enum ChaChaPoly {}

fn nonce(n: u64) -> chacha20poly1305::Nonce {
    let mut full = [0u8; 12];
    for (dst, src) in full.iter_mut().skip(4).zip(n.to_le_bytes()) {
        *dst = src;
    }
    full.into()
}

impl noise_protocol::Cipher for ChaChaPoly {
    type Key = [u8; KEY_LEN];

    fn name() -> &'static str {
        "ChaChaPoly"
    }

    fn encrypt(k: &Self::Key, n: u64, ad: &[u8], plaintext: &[u8], out: &mut [u8]) {
        if let Some(body) = out.get_mut(..plaintext.len()) {
            body.copy_from_slice(plaintext);
            Self::encrypt_in_place(k, n, ad, out, plaintext.len());
        }
    }

    fn encrypt_in_place(k: &Self::Key, n: u64, ad: &[u8], in_out: &mut [u8], plaintext_len: usize) -> usize {
        let Some((body, rest)) = in_out.split_at_mut_checked(plaintext_len) else {
            return 0;
        };
        let Some(tag_out) = rest.get_mut(..TAG_LEN) else {
            return 0;
        };
        // Fails only for a plaintext over 256 GiB.
        if let Ok(tag) = ChaCha20Poly1305::new(k.into()).encrypt_in_place_detached(&nonce(n), ad, body) {
            tag_out.copy_from_slice(&tag);
        }
        plaintext_len + TAG_LEN
    }

    fn decrypt(k: &Self::Key, n: u64, ad: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<(), ()> {
        let len = ciphertext.len().checked_sub(TAG_LEN).ok_or(())?;
        let (body, tag) = ciphertext.split_at_checked(len).ok_or(())?;
        if out.len() != body.len() {
            return Err(());
        }
        out.copy_from_slice(body);
        ChaCha20Poly1305::new(k.into())
            .decrypt_in_place_detached(&nonce(n), ad, out, tag.into())
            .map_err(|_| ())
    }

    fn decrypt_in_place(
        k: &Self::Key,
        n: u64,
        ad: &[u8],
        in_out: &mut [u8],
        ciphertext_len: usize,
    ) -> Result<usize, ()> {
        let len = ciphertext_len.checked_sub(TAG_LEN).ok_or(())?;
        let record = in_out.get_mut(..ciphertext_len).ok_or(())?;
        let (body, tag) = record.split_at_mut_checked(len).ok_or(())?;
        ChaCha20Poly1305::new(k.into())
            .decrypt_in_place_detached(&nonce(n), ad, body, (&*tag).into())
            .map_err(|_| ())?;
        Ok(len)
    }
}

/// BLAKE2s-256.
#[derive(Debug, Default)]
pub(crate) struct Blake2s(blake2::Blake2s256);

impl noise_protocol::Hash for Blake2s {
    type Block = [u8; 64];
    type Output = [u8; 32];

    fn name() -> &'static str {
        "BLAKE2s"
    }

    fn input(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn result(&mut self) -> Self::Output {
        self.0.finalize_reset().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noise_protocol::{Cipher as _, Hash as _, DH as _};

    #[test]
    fn blake2s_matches_rfc7693_abc() {
        // RFC 7693 Appendix B: BLAKE2s-256("abc").
        let want =
            crate::secure::keys::tests::hex32("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
        assert_eq!(Blake2s::hash(b"abc"), want);
    }

    #[test]
    fn chachapoly_round_trip_and_rejects_a_flipped_bit() {
        let k = [7u8; 32];
        let mut buf = [0u8; 5 + TAG_LEN];
        buf[..5].copy_from_slice(b"hello");
        assert_eq!(ChaChaPoly::encrypt_in_place(&k, 3, b"ad", &mut buf, 5), 21);
        let mut copy = buf;
        assert_eq!(ChaChaPoly::decrypt_in_place(&k, 3, b"ad", &mut copy, 21), Ok(5));
        assert_eq!(&copy[..5], b"hello");
        for (n, ad) in [(4, &b"ad"[..]), (3, &b"ae"[..])] {
            let mut copy = buf;
            assert_eq!(ChaChaPoly::decrypt_in_place(&k, n, ad, &mut copy, 21), Err(()));
        }
        let mut copy = buf;
        copy[0] ^= 1;
        assert_eq!(ChaChaPoly::decrypt_in_place(&k, 3, b"ad", &mut copy, 21), Err(()));
        // Lengths that do not fit are errors, not panics.
        assert_eq!(ChaChaPoly::decrypt_in_place(&k, 3, b"ad", &mut copy, 15), Err(()));
        assert_eq!(ChaChaPoly::decrypt_in_place(&k, 3, b"ad", &mut copy, 99), Err(()));
    }

    #[test]
    fn low_order_point_is_refused() {
        assert_eq!(X25519::<crate::secure::Ladder>::dh(&[9u8; 64], &[0u8; 32]), Err(()));
    }
}
