//! The X25519 function (RFC 7748) as the handshake computes it, and where its results
//! may come from: computed every time ([`Ladder`], the default) or, on a host, kept for
//! pairs of static keys ([`Memo`], feature `std`).
//!
//! A responder's IK handshake (PROTOCOL.md §10.3) runs four X25519: `es`, `ss`, `ee`
//! and `se`. Three involve a fresh ephemeral key; `ss`, between the server's static key
//! and the device's, is the same on every connection of that device. WireGuard keeps it
//! per peer; [`Memo`] does the same, so that a device that connects again costs the
//! server three X25519 instead of four. Only the results change where they come from:
//! the bytes on the wire are the same.

use super::keys::KEY_LEN;

/// X25519 as the handshake calls it. Implement it to supply results from elsewhere;
/// every implementation must return exactly RFC 7748's X25519 (the handshake checks
/// the all-zero output itself).
pub trait Curve {
    /// X25519(`secret`, `peer`). `public` is `secret`'s own public key, given so that
    /// an implementation can look up a result it keeps without hashing the secret.
    fn x25519(secret: &[u8; KEY_LEN], public: &[u8; KEY_LEN], peer: &[u8; KEY_LEN]) -> [u8; KEY_LEN];
}

/// x25519-dalek's Montgomery ladder, every time: no state, no tables. What a
/// firmware uses (the default of [`Secure`](super::Secure)).
#[derive(Debug)]
pub enum Ladder {}

impl Curve for Ladder {
    fn x25519(secret: &[u8; KEY_LEN], _public: &[u8; KEY_LEN], peer: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
        #[cfg(test)]
        tests::LADDERS.with(|n| n.set(n.get() + 1));
        x25519_dalek::x25519(*secret, *peer)
    }
}

#[cfg(feature = "std")]
pub use memo::Memo;

#[cfg(feature = "std")]
mod memo {
    use core::marker::PhantomData;
    use std::collections::BTreeMap;
    use std::sync::RwLock;
    use std::vec::Vec;

    use super::{Curve, Ladder, KEY_LEN};
    use crate::secure::{PublicKey, SecretKey};

    type Pair = ([u8; KEY_LEN], [u8; KEY_LEN]);

    /// X25519 results of (own public key, peer's key) pairs that were
    /// [`remember`](Memo::remember)ed; one map for the whole process.
    static KEPT: RwLock<BTreeMap<Pair, [u8; KEY_LEN]>> = RwLock::new(BTreeMap::new());

    /// `C` (the [`Ladder`] by default), except for pairs of static keys the
    /// application has asked to keep with [`Memo::remember`]: their result comes from a
    /// map. A server
    /// remembers a device's key once it has accepted it, a client the server's key;
    /// every later handshake between the two skips one X25519 of four.
    ///
    /// The map is a cache of values derived from the secret key, no more secret than
    /// the key itself. A handshake is one X25519 faster when it meets a remembered
    /// pair, and a peer can make it meet one: someone who knows a device's public key
    /// and sends it as its ephemeral key can tell from the server's timing whether the
    /// server remembers that device (it has connected since the server started or last
    /// changed its allowed keys). Without the memo a forged handshake tells nothing of
    /// the kind.
    #[derive(Debug)]
    pub struct Memo<C = Ladder>(PhantomData<C>);

    impl<C: Curve> Memo<C> {
        /// Computes X25519(`secret`, `peer`) once, with `C`, and keeps it. `false` if
        /// the map is full ([`Memo::CAPACITY`] pairs); the handshake then computes it
        /// every time.
        pub fn remember(secret: &SecretKey, peer: &PublicKey) -> bool {
            let pair = (*secret.public_key().as_bytes(), *peer.as_bytes());
            if Memo::kept(&pair).is_some() {
                return true;
            }
            let shared = C::x25519(secret.as_bytes(), &pair.0, &pair.1);
            let Ok(mut map) = KEPT.write() else {
                return false;
            };
            if map.len() >= Memo::CAPACITY {
                return false;
            }
            map.insert(pair, shared);
            true
        }
    }

    impl Memo {
        /// At most this many pairs are kept (about 150 bytes each with the map's own).
        pub const CAPACITY: usize = 1 << 20;

        /// Keeps only the pairs of `own` key whose peer `keep` answers `true` for
        /// (after the allowed keys have changed); pairs of other own keys stay. `keep`
        /// runs without the map locked.
        pub fn retain(own: &PublicKey, mut keep: impl FnMut(&PublicKey) -> bool) {
            let peers: Vec<[u8; KEY_LEN]> = match KEPT.read() {
                Ok(map) => map
                    .keys()
                    .filter(|(ours, _)| ours == own.as_bytes())
                    .map(|(_, peer)| *peer)
                    .collect(),
                Err(_) => return,
            };
            let gone: Vec<Pair> = peers
                .into_iter()
                .filter(|peer| !keep(&PublicKey::from_bytes(*peer)))
                .map(|peer| (*own.as_bytes(), peer))
                .collect();
            if let Ok(mut map) = KEPT.write() {
                for pair in &gone {
                    map.remove(pair);
                }
            }
        }

        /// Whether the result for (`own`, `peer`) is kept.
        pub fn is_kept(own: &PublicKey, peer: &PublicKey) -> bool {
            Self::kept(&(*own.as_bytes(), *peer.as_bytes())).is_some()
        }

        /// Number of pairs kept, over all own keys.
        pub fn len() -> usize {
            KEPT.read().map(|map| map.len()).unwrap_or(0)
        }

        fn kept(pair: &Pair) -> Option<[u8; KEY_LEN]> {
            KEPT.read().ok()?.get(pair).copied()
        }
    }

    impl<C: Curve> Curve for Memo<C> {
        fn x25519(secret: &[u8; KEY_LEN], public: &[u8; KEY_LEN], peer: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
            match Memo::kept(&(*public, *peer)) {
                Some(shared) => shared,
                None => C::x25519(secret, public, peer),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use core::cell::Cell;

    std::thread_local! {
        /// Ladders run on this thread (each test runs on a thread of its own).
        pub(crate) static LADDERS: Cell<usize> = const { Cell::new(0) };
    }

    #[cfg(feature = "std")]
    mod memo {
        use std::vec::Vec;

        use super::super::{Curve, Ladder, Memo};
        use super::LADDERS;
        use crate::secure::{Config, Event, SecretKey, Secure};
        use crate::Instant;

        const T0: Instant = Instant::from_millis(1_000);

        /// One handshake with `C` on both sides: the INIT and RESP records, and the
        /// ladders it ran.
        fn handshake<C: Curve>(server: &SecretKey, client: &SecretKey) -> (Vec<u8>, Vec<u8>, usize) {
            let before = LADDERS.with(Cell::get);
            let mut c = Secure::<[u8; 1024], [u8; 1024], C>::client_with(
                Config::DEFAULT,
                client,
                server.public_key(),
                [3; 32],
                [0; 1024],
                [0; 1024],
                T0,
            )
            .unwrap();
            let mut s = Secure::<[u8; 1024], [u8; 1024], C>::server_with(
                Config::DEFAULT,
                server,
                [4; 32],
                [0; 1024],
                [0; 1024],
                T0,
            )
            .unwrap();
            c.seal(b"hello").unwrap();
            let init = c.poll_transmit().to_vec();
            c.advance_transmit(init.len());
            s.handle_input(T0, &init).unwrap();
            assert_eq!(s.poll_event(), Some(Event::ClientKey(client.public_key())));
            s.accept().unwrap();
            assert_eq!(s.poll_plaintext(), b"hello");
            s.seal(b"welcome").unwrap();
            let resp = s.poll_transmit().to_vec();
            s.advance_transmit(resp.len());
            c.handle_input(T0, &resp).unwrap();
            assert_eq!(c.poll_plaintext(), b"welcome");
            (init, resp, LADDERS.with(Cell::get) - before)
        }

        use core::cell::Cell;

        #[test]
        fn memo_gives_the_ladders_bytes_with_one_ladder_fewer_per_side() {
            let server = SecretKey::from_bytes([0x51; 32]);
            let client = SecretKey::from_bytes([0x52; 32]);
            let (init, resp, ladders) = handshake::<Ladder>(&server, &client);
            assert_eq!(ladders, 8, "four X25519 on each side");

            // Nothing remembered: the memo is the ladder.
            assert_eq!(handshake::<Memo>(&server, &client), (init.clone(), resp.clone(), 8));

            assert!(<Memo>::remember(&server, &client.public_key()));
            assert!(<Memo>::remember(&client, &server.public_key()));
            assert!(Memo::is_kept(&server.public_key(), &client.public_key()));
            assert_eq!(handshake::<Memo>(&server, &client), (init.clone(), resp.clone(), 6));

            // Forgetting one side's pairs leaves the other's.
            Memo::retain(&server.public_key(), |_| false);
            assert!(!Memo::is_kept(&server.public_key(), &client.public_key()));
            assert!(Memo::is_kept(&client.public_key(), &server.public_key()));
            assert_eq!(handshake::<Memo>(&server, &client), (init, resp, 7));
        }

        #[test]
        fn retain_keeps_the_peers_it_is_told_to() {
            let own = SecretKey::from_bytes([0x61; 32]);
            let keep = SecretKey::from_bytes([0x62; 32]).public_key();
            let drop = SecretKey::from_bytes([0x63; 32]).public_key();
            assert!(<Memo>::remember(&own, &keep) && <Memo>::remember(&own, &drop));
            assert!(Memo::len() >= 2);
            Memo::retain(&own.public_key(), |peer| *peer == keep);
            assert!(Memo::is_kept(&own.public_key(), &keep));
            assert!(!Memo::is_kept(&own.public_key(), &drop));
        }
    }
}
