//! The secure client (feature `secure`, `role=secure-client`): the same session as the
//! plain client, its bytes sealed into records by the core's secure layer
//! (`soquete_core::secure`, PROTOCOL.md §10) and the server's records opened by it.
//!
//! The session does not know: it sees the byte stream it would see over a plain
//! connection. The handshake carries its HELLO and the server's WELCOME (§10.3), so
//! the first message goes out one round trip after the TCP connection, as in plain
//! mode. A server that cannot prove the key in `server-key=` gets nothing but the
//! first handshake message: the layer fails and the client closes.
//!
//! **Randomness.** The ephemeral key comes from a ChaCha20 generator seeded from what
//! QEMU's boards offer: the LAN9118's free-running 25 MHz counter and SysTick's
//! current value, read at moments that depend on the host (boot, each round of the
//! TCP connection's opening). That is a few bits of real unpredictability at best:
//! good enough to exercise the handshake, **not for production**. A real firmware
//! seeds the generator from a hardware TRNG (or takes the 32 bytes from it).

use core::fmt;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use smoltcp::socket::tcp;
use soquete_core::secure::{self, PublicKey, SecretKey, Secure, KEY_LEN};
use soquete_core::Instant;
use static_cell::ConstStaticCell;

use crate::app::{events, Failure, FwSession, Tally};

/// The secure layer's receive buffer: one whole record from the server (its length
/// less 19 is the `max_record` this side announces, §10.4).
pub const SECURE_RX: usize = 1024;
/// Its transmit buffer: sealed records not yet taken by the socket.
pub const SECURE_TX: usize = 2048;

/// The firmware's secure layer: buffers in static memory.
pub type FwSecure = Secure<&'static mut [u8], &'static mut [u8]>;

static SECURE_RX_BUFFER: ConstStaticCell<[u8; SECURE_RX]> = ConstStaticCell::new([0; SECURE_RX]);
static SECURE_TX_BUFFER: ConstStaticCell<[u8; SECURE_TX]> = ConstStaticCell::new([0; SECURE_TX]);

/// The layer's static buffers, the first time (`None` after).
pub fn buffers() -> Option<(&'static mut [u8], &'static mut [u8])> {
    Some((
        &mut SECURE_RX_BUFFER.try_take()?[..],
        &mut SECURE_TX_BUFFER.try_take()?[..],
    ))
}

/// The client's static secret key and the server's public key, from the command line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    secret: [u8; KEY_LEN],
    server: [u8; KEY_LEN],
}

impl Keys {
    /// The device's secret key and the server's public key.
    pub fn new(secret: [u8; KEY_LEN], server: [u8; KEY_LEN]) -> Self {
        Keys { secret, server }
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("server", &PublicKey::from_bytes(self.server))
            .finish_non_exhaustive()
    }
}

/// Samples of the board's counters, folded into a 32-byte seed (see the module docs:
/// not a source of real randomness).
#[derive(Debug)]
pub struct Entropy {
    pool: [u8; 32],
    next: usize,
}

impl Entropy {
    /// An empty pool.
    pub const fn new() -> Self {
        Entropy { pool: [0; 32], next: 0 }
    }

    /// Folds in one sample (XOR over the next four bytes of the pool, in turn).
    pub fn stir(&mut self, sample: u32) {
        for b in sample.to_le_bytes() {
            if let Some(p) = self.pool.get_mut(self.next % 32) {
                *p ^= b;
            }
            self.next = self.next.wrapping_add(1);
        }
    }

    /// Folds in the LAN9118's free-running counter and SysTick's current value.
    pub fn stir_counters(&mut self, free_run: u32) {
        self.stir(free_run);
        self.stir(cortex_m::peripheral::SYST::get_current());
    }

    /// 32 bytes from a ChaCha20 generator seeded with the pool.
    pub fn ephemeral(&self) -> [u8; KEY_LEN] {
        let mut out = [0; KEY_LEN];
        ChaCha20Rng::from_seed(self.pool).fill_bytes(&mut out);
        out
    }
}

/// Microseconds between two readings of the LAN9118's 25 MHz free-running counter.
fn micros(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from) / 25
}

/// How long the handshake took, in microseconds (from the 25 MHz counter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// From the TCP connection's establishment to the server's answer authenticated.
    pub handshake: u32,
    /// Writing the first handshake message (three X25519: the ephemeral public key,
    /// `es`, `ss`).
    pub init: u32,
    /// Reading the answer (two X25519: `ee`, `se`), with the first DATA record.
    pub resp: u32,
}

/// The layer and what the client keeps about it.
#[derive(Debug)]
pub struct Link {
    layer: FwSecure,
    /// The counter when the TCP connection was established.
    start: u32,
    timing: Timing,
    init_written: bool,
    /// The server's end of stream was handed to the layer and the session.
    eof: bool,
}

impl Link {
    /// A client layer for `keys`, its ephemeral key from `entropy`.
    ///
    /// # Errors
    /// [`secure::Error::BufferTooSmall`] (a bug: the buffers are constants).
    // Not inlined: the handshake state is built in this frame, not the poll loop's.
    #[inline(never)]
    pub fn new(
        keys: &Keys,
        entropy: &Entropy,
        rx: &'static mut [u8],
        tx: &'static mut [u8],
        now: Instant,
        free_run: u32,
    ) -> Result<Self, secure::Error> {
        let layer = Secure::client(
            secure::Config::DEFAULT,
            &SecretKey::from_bytes(keys.secret),
            PublicKey::from_bytes(keys.server),
            entropy.ephemeral(),
            rx,
            tx,
            now,
        )?;
        Ok(Link {
            layer,
            start: free_run,
            timing: Timing::default(),
            init_written: false,
            eof: false,
        })
    }

    /// The handshake's times, once it is complete.
    pub fn timing(&self) -> Option<Timing> {
        self.layer.is_established().then_some(self.timing)
    }

    /// Nothing sealed is waiting for the socket.
    pub fn drained(&self) -> bool {
        self.layer.poll_transmit().is_empty()
    }

    /// Takes what the socket received: opens records, hands their plaintext to the
    /// session, and takes the session's events. True if bytes moved.
    ///
    /// # Errors
    /// The layer's failure (a refusal, a server that is not the expected one, a record
    /// that does not authenticate, ...): the connection is to be closed, nothing more
    /// sent. The session's, as [`events`].
    pub fn receive(
        &mut self,
        session: &mut FwSession,
        socket: &mut tcp::Socket<'_>,
        tally: &mut Tally,
        now: Instant,
        free_run: impl Fn() -> u32,
    ) -> Result<bool, Failure> {
        if self.layer.poll_timeout().is_some_and(|t| t <= now) {
            self.layer.handle_timeout(now);
        }
        let mut moved = false;
        loop {
            let before = free_run();
            let established = self.layer.is_established();
            let mut taken = 0;
            if socket.can_recv() {
                let result = socket.recv(|buf| match self.layer.handle_input(now, buf) {
                    Ok(n) => (n, Ok(n)),
                    Err(e) => (0, Err(e)),
                });
                // `recv` fails only on a socket that cannot receive: end of stream, below.
                taken = result.unwrap_or(Ok(0)).map_err(Failure::Secure)?;
            }
            if let Some(error) = self.layer.error() {
                return Err(Failure::Secure(error));
            }
            if !established && self.layer.is_established() {
                let after = free_run();
                self.timing.resp = micros(before, after);
                self.timing.handshake = micros(self.start, after);
            }
            let delivered = self.layer.deliver(now, session).map_err(Failure::Secure)?;
            // A client hears only Established, which `is_established` covers.
            while self.layer.poll_event().is_some() {}
            events(session, tally, now)?;
            if taken == 0 && delivered == 0 {
                break;
            }
            moved = true;
        }
        // The server's end of stream, once every record before it is delivered.
        if !socket.may_recv() && !self.eof && self.layer.poll_plaintext().is_empty() {
            self.eof = true;
            self.layer.handle_eof(now).map_err(Failure::Secure)?;
            session.handle_eof(now);
            events(session, tally, now)?;
            moved = true;
        }
        Ok(moved)
    }

    /// Seals what the session has to send and gives the socket what it takes. True if
    /// bytes moved. The first call writes the first handshake message.
    ///
    /// # Errors
    /// The layer's failure.
    pub fn transmit(
        &mut self,
        session: &mut FwSession,
        socket: &mut tcp::Socket<'_>,
        free_run: impl Fn() -> u32,
    ) -> Result<bool, Failure> {
        let mut moved = false;
        loop {
            let before = free_run();
            let sealed = self.layer.seal_from(session).map_err(Failure::Secure)?;
            if !self.init_written {
                // The first call writes INIT, whatever the session had to say.
                self.init_written = true;
                self.timing.init = micros(before, free_run());
            }
            let out = self.layer.poll_transmit();
            let sent = if out.is_empty() {
                0
            } else {
                socket.send_slice(out).unwrap_or(0)
            };
            self.layer.advance_transmit(sent);
            if sealed == 0 && sent == 0 {
                return Ok(moved);
            }
            moved = true;
        }
    }
}
