//! The secure layer (PROTOCOL.md §10): a Noise IK handshake and encrypted records
//! directly beneath the [`Session`], sans-IO like it.
//!
//! Ciphertext from the transport goes in ([`Secure::handle_input`]); the session's
//! plaintext stream comes out ([`Secure::poll_plaintext`], or [`Secure::deliver`]
//! straight into a session). The session's output is sealed into records
//! ([`Secure::seal`], [`Secure::seal_from`]) and read out for the transport
//! ([`Secure::poll_transmit`]). The session itself does not change: it sees the same
//! byte stream as over a plain connection.
//!
//! * The client knows the server's public key in advance. The handshake's first
//!   message carries the session's first bytes (magic + HELLO), the answer the server
//!   session's (magic + WELCOME): one round trip, then messages flow (§10.3).
//! * The server learns the client's public key from the first message
//!   ([`Event::ClientKey`]) and [`accept`](Secure::accept)s or
//!   [`refuse`](Secure::refuse)s it before any of the client's bytes reach its session.
//! * A client whose server cannot prove the expected key fails with
//!   [`Error::ServerNotAuthenticated`] and sends nothing more.
//! * Buffers are the caller's, of fixed size; randomness is the caller's (the
//!   ephemeral key); time is the caller's `now`.
//!
//! ```
//! use soquete_core::secure::{Event, PublicKey, Secure, SecretKey};
//! use soquete_core::{Config, Instant, Session};
//!
//! let now = Instant::ZERO;
//! let server_key = SecretKey::from_bytes([1; 32]); // from a random source in practice
//! let client_key = SecretKey::from_bytes([2; 32]);
//! let cfg = soquete_core::secure::Config::DEFAULT;
//!
//! let mut client = Secure::client(cfg, &client_key, server_key.public_key(), [3; 32], [0u8; 1024], [0u8; 1024], now).unwrap();
//! let mut server = Secure::server(cfg, &server_key, [4; 32], [0u8; 1024], [0u8; 1024], now).unwrap();
//! let mut session = Session::client(Config::DEFAULT, "ana", [0u8; 1100], [0u8; 2048], now).unwrap();
//!
//! // The first handshake message carries the session's magic and HELLO.
//! client.seal_from(&mut session).unwrap();
//! let init = client.poll_transmit().to_vec();
//! client.advance_transmit(init.len());
//! server.handle_input(now, &init).unwrap();
//! assert_eq!(server.poll_event(), Some(Event::ClientKey(client_key.public_key())));
//! server.accept().unwrap();
//! assert!(server.poll_plaintext().starts_with(&[0xfe, 0x53, 0x51, 0x54]));
//! ```

mod curve;
mod error;
mod handshake;
mod keys;
mod record;

use core::fmt;
use core::mem;

#[cfg(feature = "std")]
pub use curve::Memo;
pub use curve::{Curve, Ladder};
pub use error::{Alert, Error};
pub use keys::{PublicKey, SecretKey, KEY_LEN};
pub use record::{detect, Detection, HEADER_LEN, MAGIC, MAX_EARLY, MAX_RECORD, MIN_RECORD, TAG_LEN};

use handshake::{Cipher, Handshake};
use record::{Header, Kind, INIT_OVERHEAD, PAYLOAD_HEAD_LEN, RESP_OVERHEAD};

use crate::{Duration, Instant, Role, Session};

/// The smallest `rx` and `tx` the layer accepts (384 bytes): room for the magic and the
/// largest handshake message with [`MAX_EARLY`] bytes, and the client's first data
/// record after it.
pub const MIN_BUFFER_LEN: usize = 384;

const _: () = {
    assert!(MIN_BUFFER_LEN >= MAGIC.len() + HEADER_LEN + INIT_OVERHEAD + MAX_EARLY);
    assert!(MIN_BUFFER_LEN >= HEADER_LEN + INIT_OVERHEAD + MAX_EARLY + HEADER_LEN + TAG_LEN);
    assert!(MIN_BUFFER_LEN - HEADER_LEN - TAG_LEN >= MIN_RECORD);
};

/// Settings of the secure layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// From construction until the handshake is complete: the server's until the
    /// client's first data record authenticates (§10.3), the client's until the
    /// server's answer does. Then [`Error::HandshakeTimeout`].
    pub handshake_timeout: Duration,
}

impl Config {
    /// A 10 s handshake timeout, as the session's (§8).
    pub const DEFAULT: Config = Config {
        handshake_timeout: Duration::from_secs(10),
    };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// What the layer reports to its application ([`Secure::poll_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// Server: the client proved it holds the secret of this key (first handshake
    /// message). Call [`Secure::accept`] or [`Secure::refuse`]; until then none of the
    /// client's bytes are released. The first message can be replayed by anyone who
    /// recorded it, so the connection is not yet proven live: that is
    /// [`Event::Established`].
    ClientKey(PublicKey),
    /// The handshake is complete. Client: the server proved its key. Server: the
    /// client's first data record authenticated, so the connection is live (not a
    /// replay).
    Established,
}

enum State<C: Curve> {
    /// Client: the first handshake message is not written yet (it carries the
    /// session's first bytes, [`Secure::seal`]).
    Start(Handshake<C>),
    /// Client: first message sent; waiting for the server's answer.
    AwaitResp(Handshake<C>),
    /// Server: waiting for the client's first message.
    AwaitInit(Handshake<C>),
    /// Server: the client's key is known; the application decides.
    Decide(Handshake<C>),
    /// Server: key accepted; the answer goes out with the session's first bytes.
    Respond(Handshake<C>),
    /// Handshake done: records in both directions.
    Transport {
        send: Cipher,
        recv: Cipher,
        /// Server: a data record from the client authenticated (always true on a
        /// client).
        confirmed: bool,
    },
    /// Failed or refused; the error stays.
    Failed(Error),
    /// Only while a record or call is being handled (the handshake state is moved out).
    Busy,
}

impl<C: Curve> State<C> {
    fn name(&self) -> &'static str {
        match self {
            State::Start(_) => "Start",
            State::AwaitResp(_) => "AwaitResp",
            State::AwaitInit(_) => "AwaitInit",
            State::Decide(_) => "Decide",
            State::Respond(_) => "Respond",
            State::Transport { .. } => "Transport",
            State::Failed(_) => "Failed",
            State::Busy => "Busy",
        }
    }
}

/// One secure connection: handshake, then encrypted records. See the
/// [module docs](self).
pub struct Secure<R, T, C: Curve = Ladder> {
    role: Role,
    state: State<C>,
    config: Config,
    /// Handshake deadline; `None` once the handshake is complete.
    deadline: Option<Instant>,
    peer: Option<PublicKey>,
    /// Largest DATA plaintext the peer accepts (from its handshake payload).
    peer_max: usize,
    /// Bytes of the peer's magic seen so far.
    magic_seen: usize,
    magic_sent: bool,
    /// This side has its transport keys (server: answer written; client: answer read).
    keyed: bool,
    notify_key: bool,
    notify_established: bool,

    rx: R,
    /// Decrypted bytes not yet taken: `rx[plain_start..plain_end]`, before `rx_start`.
    plain_start: usize,
    plain_end: usize,
    /// Received bytes not yet decoded: `rx[rx_start..rx_end]`.
    rx_start: usize,
    rx_end: usize,
    eof: bool,

    tx: T,
    tx_start: usize,
    tx_end: usize,
}

impl<R, T, C: Curve> fmt::Debug for Secure<R, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secure")
            .field("role", &self.role)
            .field("state", &self.state.name())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<R, T> Secure<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// A client that will talk to the server whose public key is `server`.
    /// `ephemeral` must be 32 fresh bytes from a cryptographically secure random source,
    /// never reused. The first handshake message goes out at the first
    /// [`seal`](Self::seal) (or [`seal_from`](Self::seal_from)), with the session's
    /// first bytes in it.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `rx` or `tx` is shorter than [`MIN_BUFFER_LEN`].
    pub fn client(
        config: Config,
        secret: &SecretKey,
        server: PublicKey,
        ephemeral: [u8; KEY_LEN],
        rx: R,
        tx: T,
        now: Instant,
    ) -> Result<Self, Error> {
        Self::client_with(config, secret, server, ephemeral, rx, tx, now)
    }

    /// A server with its static key. `ephemeral` as for [`client`](Self::client).
    /// Hand it the connection's bytes from the first one (the magic included, see
    /// [`detect`]).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `rx` or `tx` is shorter than [`MIN_BUFFER_LEN`].
    pub fn server(
        config: Config,
        secret: &SecretKey,
        ephemeral: [u8; KEY_LEN],
        rx: R,
        tx: T,
        now: Instant,
    ) -> Result<Self, Error> {
        Self::server_with(config, secret, ephemeral, rx, tx, now)
    }
}

impl<R, T, C> Secure<R, T, C>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
    C: Curve,
{
    /// [`Secure::client`] with the X25519 of `C` (another [`Curve`] than the default
    /// [`Ladder`]): `Secure::<_, _, C>::client_with(…)`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `rx` or `tx` is shorter than [`MIN_BUFFER_LEN`].
    pub fn client_with(
        config: Config,
        secret: &SecretKey,
        server: PublicKey,
        ephemeral: [u8; KEY_LEN],
        rx: R,
        tx: T,
        now: Instant,
    ) -> Result<Self, Error> {
        let hs = handshake::initiator::<C>(secret, ephemeral, &server);
        let mut s = Self::new(Role::Client, State::Start(hs), config, rx, tx, now)?;
        s.peer = Some(server);
        Ok(s)
    }

    /// [`Secure::server`] with the X25519 of `C`: `Secure::<_, _, C>::server_with(…)`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `rx` or `tx` is shorter than [`MIN_BUFFER_LEN`].
    pub fn server_with(
        config: Config,
        secret: &SecretKey,
        ephemeral: [u8; KEY_LEN],
        rx: R,
        tx: T,
        now: Instant,
    ) -> Result<Self, Error> {
        let hs = handshake::responder::<C>(secret, ephemeral);
        Self::new(Role::Server, State::AwaitInit(hs), config, rx, tx, now)
    }

    fn new(role: Role, state: State<C>, config: Config, rx: R, tx: T, now: Instant) -> Result<Self, Error> {
        if rx.as_ref().len() < MIN_BUFFER_LEN || tx.as_ref().len() < MIN_BUFFER_LEN {
            return Err(Error::BufferTooSmall);
        }
        Ok(Secure {
            role,
            state,
            config,
            deadline: Some(now + config.handshake_timeout),
            peer: None,
            peer_max: 0,
            magic_seen: 0,
            magic_sent: false,
            keyed: false,
            notify_key: false,
            notify_established: false,
            rx,
            plain_start: 0,
            plain_end: 0,
            rx_start: 0,
            rx_end: 0,
            eof: false,
            tx,
            tx_start: 0,
            tx_end: 0,
        })
    }

    /// The settings it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's static key: on a client the server key it was given; on a server the
    /// client's, once its first message decrypted (`None` before).
    pub fn peer_key(&self) -> Option<PublicKey> {
        self.peer
    }

    /// The handshake is complete ([`Event::Established`] has happened).
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Transport { confirmed: true, .. })
    }

    /// Why the layer failed, if it did. The caller transmits what is queued (an alert,
    /// on a server before the handshake completes) and closes the connection.
    pub fn error(&self) -> Option<Error> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Failed, and nothing is left to transmit: close the connection.
    pub fn is_finished(&self) -> bool {
        self.error().is_some() && self.tx_start == self.tx_end
    }

    /// The largest plaintext one data record to the peer carries (0 before the
    /// handshake). Longer input is split over several records.
    pub fn peer_max_record(&self) -> usize {
        self.peer_max
    }

    fn own_max_record(&self) -> usize {
        self.rx
            .as_ref()
            .len()
            .saturating_sub(HEADER_LEN + TAG_LEN)
            .min(MAX_RECORD)
    }

    fn set_state(&mut self, next: State<C>) {
        log_at!(
            trace,
            "secure {}: {} -> {}",
            self.role_name(),
            self.state.name(),
            next.name()
        );
        self.state = next;
    }

    fn role_name(&self) -> &'static str {
        match self.role {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    fn check(&self) -> Result<(), Error> {
        match self.state {
            State::Failed(e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Fails with `e`. A server whose handshake is not complete tells the client why in
    /// an ALERT (§10.6); otherwise nothing more is sent. Returns `e`.
    fn fail(&mut self, e: Error) -> Error {
        if let State::Failed(first) = self.state {
            return first;
        }
        log_at!(debug, "secure {}: {}", self.role_name(), e);
        let before_keys = !self.keyed;
        self.plain_start = self.plain_end;
        self.deadline = None;
        self.notify_key = false;
        self.notify_established = false;
        self.set_state(State::Failed(e));
        if self.role == Role::Server && before_keys {
            if let Some(alert) = Alert::for_error(e) {
                self.push_magic();
                let header = Header {
                    kind: Kind::Alert,
                    len: 1,
                };
                let mut rec = [0u8; HEADER_LEN + 1];
                if let Some((h, body)) = rec.split_first_chunk_mut::<HEADER_LEN>() {
                    *h = header.emit();
                    if let Some(b) = body.first_mut() {
                        *b = alert.to_u8();
                    }
                }
                self.push_tx(&rec);
            }
        }
        e
    }

    fn push_magic(&mut self) {
        if !self.magic_sent {
            self.magic_sent = true;
            self.push_tx(&MAGIC);
        }
    }

    /// Appends to `tx` (callers have checked the room, or write less than
    /// [`MIN_BUFFER_LEN`] into an empty buffer).
    fn push_tx(&mut self, bytes: &[u8]) {
        self.compact_tx();
        let end = self.tx_end + bytes.len();
        if let Some(dst) = self.tx.as_mut().get_mut(self.tx_end..end) {
            dst.copy_from_slice(bytes);
            self.tx_end = end;
        }
    }

    fn compact_tx(&mut self) {
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        } else if self.tx_start > 0 {
            self.tx.as_mut().copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
    }

    // ---- input ----

    /// Takes ciphertext received from the transport; returns how many bytes were taken
    /// (fewer than offered when `rx` is full: take the plaintext out first).
    ///
    /// # Errors
    /// The layer's failure, now or earlier (see [`Error`]): transmit what is queued,
    /// then close.
    pub fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<usize, Error> {
        self.check()?;
        if self.plain_start == self.plain_end && self.rx_start > 0 {
            self.rx.as_mut().copy_within(self.rx_start..self.rx_end, 0);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
            self.plain_start = 0;
            self.plain_end = 0;
        }
        let free = self.rx.as_ref().len().saturating_sub(self.rx_end);
        let n = free.min(data.len());
        let end = self.rx_end + n;
        if let (Some(dst), Some(src)) = (self.rx.as_mut().get_mut(self.rx_end..end), data.get(..n)) {
            dst.copy_from_slice(src);
            self.rx_end = end;
        }
        self.process().map_err(|e| self.fail(e))?;
        Ok(n)
    }

    /// The transport reached its end of stream.
    ///
    /// # Errors
    /// [`Error::Truncated`] if it ended inside a record or before the handshake was
    /// complete; an earlier failure.
    pub fn handle_eof(&mut self, _now: Instant) -> Result<(), Error> {
        self.check()?;
        self.eof = true;
        let complete = matches!(self.state, State::Transport { .. });
        if !complete || self.rx_start < self.rx_end {
            return Err(self.fail(Error::Truncated));
        }
        Ok(())
    }

    /// Decrypted session bytes ready to be taken (empty while the server's application
    /// has not accepted the client's key).
    pub fn poll_plaintext(&self) -> &[u8] {
        if matches!(self.state, State::Decide(_) | State::Failed(_)) {
            return &[];
        }
        self.rx.as_ref().get(self.plain_start..self.plain_end).unwrap_or(&[])
    }

    /// Marks `n` bytes of [`poll_plaintext`](Self::poll_plaintext) as taken; the next
    /// buffered record is then decrypted.
    ///
    /// # Errors
    /// As [`handle_input`](Self::handle_input), for that next record.
    pub fn advance_plaintext(&mut self, n: usize) -> Result<(), Error> {
        self.check()?;
        self.plain_start = (self.plain_start + n).min(self.plain_end);
        self.process().map_err(|e| self.fail(e))
    }

    /// Moves decrypted bytes into `session` ([`Session::handle_input`]) until it takes
    /// no more; returns how many.
    ///
    /// # Errors
    /// As [`advance_plaintext`](Self::advance_plaintext).
    pub fn deliver<SR, ST>(&mut self, now: Instant, session: &mut Session<SR, ST>) -> Result<usize, Error>
    where
        SR: AsRef<[u8]> + AsMut<[u8]>,
        ST: AsRef<[u8]> + AsMut<[u8]>,
    {
        let mut total = 0;
        loop {
            let plain = self.poll_plaintext();
            if plain.is_empty() {
                return Ok(total);
            }
            let n = session.handle_input(now, plain);
            if n == 0 {
                return Ok(total);
            }
            total += n;
            self.advance_plaintext(n)?;
        }
    }

    /// Decodes buffered records while no plaintext is waiting (records are decrypted in
    /// place, one at a time).
    fn process(&mut self) -> Result<(), Error> {
        loop {
            if self.plain_start < self.plain_end {
                return Ok(());
            }
            while self.magic_seen < MAGIC.len() {
                let Some(&b) = self.rx.as_ref().get(self.rx_start..self.rx_end).and_then(<[u8]>::first) else {
                    return Ok(());
                };
                if MAGIC.get(self.magic_seen) != Some(&b) {
                    return Err(Error::NotSecure);
                }
                self.magic_seen += 1;
                self.rx_start += 1;
            }
            let avail = self.rx_end - self.rx_start;
            let Some(head) = self
                .rx
                .as_ref()
                .get(self.rx_start..)
                .and_then(|b| b.first_chunk::<HEADER_LEN>())
                .filter(|_| avail >= HEADER_LEN)
            else {
                return Ok(());
            };
            let head = *head;
            let header = Header::parse(head)?;
            self.check_header(header)?;
            let total = HEADER_LEN + header.len;
            if avail < total {
                return Ok(());
            }
            let body = self.rx_start + HEADER_LEN..self.rx_start + total;
            self.rx_start += total;
            self.handle_record(header.kind, head, body)?;
        }
    }

    /// Checks a record's type and length from its header, before its body is buffered
    /// (§10.4).
    fn check_header(&self, h: Header) -> Result<(), Error> {
        let (lo, hi) = match (&self.state, h.kind) {
            (State::AwaitInit(_), Kind::Init) => (INIT_OVERHEAD, INIT_OVERHEAD + MAX_EARLY),
            (State::AwaitResp(_), Kind::Resp) => (RESP_OVERHEAD, RESP_OVERHEAD + MAX_EARLY),
            (State::AwaitResp(_), Kind::Alert) => (1, 1),
            (State::Transport { .. }, Kind::Data) => (TAG_LEN, TAG_LEN + self.own_max_record()),
            _ => return Err(Error::UnexpectedRecord),
        };
        if h.len > hi {
            Err(if h.kind == Kind::Data {
                Error::TooLarge
            } else {
                Error::Malformed
            })
        } else if h.len < lo {
            Err(Error::Malformed)
        } else {
            Ok(())
        }
    }

    fn handle_record(
        &mut self,
        kind: Kind,
        head: [u8; HEADER_LEN],
        body: core::ops::Range<usize>,
    ) -> Result<(), Error> {
        let state = mem::replace(&mut self.state, State::Busy);
        match (state, kind) {
            // The client's first message: learn its key, hold its early data (§10.3).
            (State::AwaitInit(mut hs), Kind::Init) => {
                let (early, max) = self
                    .read_handshake(&mut hs, body, INIT_OVERHEAD - PAYLOAD_HEAD_LEN - TAG_LEN)
                    .map_err(|e| {
                        if e == Error::Malformed {
                            e
                        } else {
                            Error::HandshakeFailed
                        }
                    })?;
                self.peer = hs.get_rs().map(PublicKey::from_bytes);
                self.peer_max = max;
                self.plain_start = early.start;
                self.plain_end = early.end;
                self.notify_key = true;
                self.set_state(State::Decide(hs));
            }
            // The server's answer: it proved its key; keys for both directions.
            (State::AwaitResp(mut hs), Kind::Resp) => {
                let (early, max) = self
                    .read_handshake(&mut hs, body, RESP_OVERHEAD - PAYLOAD_HEAD_LEN - TAG_LEN)
                    .map_err(|e| {
                        if e == Error::Malformed {
                            e
                        } else {
                            Error::ServerNotAuthenticated
                        }
                    })?;
                let (send, recv) = hs.get_ciphers();
                self.keyed = true;
                self.peer_max = max;
                self.plain_start = early.start;
                self.plain_end = early.end;
                self.deadline = None;
                self.notify_established = true;
                self.set_state(State::Transport {
                    send,
                    recv,
                    confirmed: true,
                });
                // Key confirmation: the server counts the connection live at our first
                // data record, even an empty one.
                self.seal_record(&[])?;
            }
            (State::AwaitResp(_), Kind::Alert) => {
                let code = self.rx.as_ref().get(body.start).copied().unwrap_or(0);
                return Err(Error::Refused(Alert::from_u8(code)));
            }
            (
                State::Transport {
                    send,
                    mut recv,
                    confirmed,
                },
                Kind::Data,
            ) => {
                if recv.get_next_n() == u64::MAX {
                    return Err(Error::NonceExhausted);
                }
                let len = body.len();
                let start = body.start;
                let Some(buf) = self.rx.as_mut().get_mut(body) else {
                    return Err(Error::Malformed);
                };
                let plain = recv
                    .decrypt_ad_in_place(&head, buf, len)
                    .map_err(|()| Error::BadRecord)?;
                self.plain_start = start;
                self.plain_end = start + plain;
                if !confirmed {
                    self.deadline = None;
                    self.notify_established = true;
                }
                self.state = State::Transport {
                    send,
                    recv,
                    confirmed: true,
                };
                if !confirmed {
                    log_at!(trace, "secure server: established");
                }
            }
            (state, _) => {
                self.state = state;
                return Err(Error::UnexpectedRecord);
            }
        }
        Ok(())
    }

    /// Reads a handshake message at `body` of `rx`; its payload (`max_record`, then
    /// early data) is decrypted and the early data copied to the body's start. Returns
    /// where the early data is and the peer's `max_record`.
    fn read_handshake(
        &mut self,
        hs: &mut Handshake<C>,
        body: core::ops::Range<usize>,
        keys_len: usize,
    ) -> Result<(core::ops::Range<usize>, usize), Error> {
        let mut payload = [0u8; PAYLOAD_HEAD_LEN + MAX_EARLY];
        let msg = self.rx.as_ref().get(body.clone()).ok_or(Error::Malformed)?;
        // `check_header` bounds the length: the payload fits and is at least its head.
        let plen = msg
            .len()
            .checked_sub(keys_len + TAG_LEN)
            .filter(|n| (PAYLOAD_HEAD_LEN..=payload.len()).contains(n))
            .ok_or(Error::Malformed)?;
        let out = payload.get_mut(..plen).ok_or(Error::Malformed)?;
        hs.read_message(msg, out).map_err(|_| Error::HandshakeFailed)?;
        let (head, early) = out.split_first_chunk::<PAYLOAD_HEAD_LEN>().ok_or(Error::Malformed)?;
        let max = usize::from(u16::from_be_bytes(*head));
        if max < MIN_RECORD {
            return Err(Error::Malformed);
        }
        let dst = body.start..body.start + early.len();
        self.rx
            .as_mut()
            .get_mut(dst.clone())
            .ok_or(Error::Malformed)?
            .copy_from_slice(early);
        Ok((dst, max))
    }

    // ---- decisions (server) ----

    /// Server: the next thing to report, once each.
    pub fn poll_event(&mut self) -> Option<Event> {
        if mem::take(&mut self.notify_key) {
            if let Some(key) = self.peer {
                return Some(Event::ClientKey(key));
            }
        }
        if mem::take(&mut self.notify_established) {
            return Some(Event::Established);
        }
        None
    }

    /// Server: accept the client's key ([`Event::ClientKey`]). Its early data is
    /// released to [`poll_plaintext`](Self::poll_plaintext); the answer goes out with
    /// the session's first bytes ([`seal`](Self::seal)).
    ///
    /// # Errors
    /// [`Error::WrongState`] unless a client key is waiting for a decision; an earlier
    /// failure.
    pub fn accept(&mut self) -> Result<(), Error> {
        self.check()?;
        match mem::replace(&mut self.state, State::Busy) {
            State::Decide(hs) => {
                self.set_state(State::Respond(hs));
                self.process().map_err(|e| self.fail(e))
            }
            other => {
                self.state = other;
                Err(Error::WrongState)
            }
        }
    }

    /// Server, key accepted: writes the answer (RESP) now, without waiting for the
    /// session's first bytes, which then follow in data records. For a server that
    /// must not act on the session's first request before the connection is proven
    /// live (§10.3 step 7; a resume that would take over another connection, §10.5):
    /// it answers the handshake, holds the request until [`Event::Established`], and
    /// answers it then.
    ///
    /// # Errors
    /// [`Error::WrongState`] unless a key was accepted and the answer is not written
    /// yet; an earlier failure.
    pub fn respond(&mut self) -> Result<(), Error> {
        self.check()?;
        match mem::replace(&mut self.state, State::Busy) {
            State::Respond(mut hs) => {
                if let Err(e) = self.write_handshake(&mut hs, Kind::Resp, &[]) {
                    return Err(self.fail(e));
                }
                self.server_keyed(hs);
                Ok(())
            }
            other => {
                self.state = other;
                Err(Error::WrongState)
            }
        }
    }

    /// Server: the answer is written, the transport keys are known; records may flow.
    fn server_keyed(&mut self, hs: Handshake<C>) {
        // Noise's split: the first cipher is client → server.
        let (recv, send) = hs.get_ciphers();
        self.keyed = true;
        self.set_state(State::Transport {
            send,
            recv,
            confirmed: false,
        });
    }

    /// Server: refuse the client (for its key, or for any reason before the handshake
    /// completes): an ALERT with `alert` is queued (§10.6), and the layer fails with
    /// [`Error::KeyRefused`]. The client's bytes never reach the session.
    ///
    /// # Errors
    /// [`Error::WrongState`] on a client or once the handshake has completed; an
    /// earlier failure.
    pub fn refuse(&mut self, alert: Alert) -> Result<(), Error> {
        self.check()?;
        match self.state {
            State::AwaitInit(_) | State::Decide(_) | State::Respond(_) => {
                self.fail(Error::KeyRefused(alert));
                Ok(())
            }
            _ => Err(Error::WrongState),
        }
    }

    // ---- output ----

    /// Seals session bytes for the peer; returns how many were taken (fewer when `tx`
    /// is full: write out [`poll_transmit`](Self::poll_transmit) first).
    ///
    /// * Client, first call: writes the magic and the first handshake message with up
    ///   to [`MAX_EARLY`] of these bytes in it (even with none).
    /// * Server, key accepted: writes the magic and the answer with up to
    ///   [`MAX_EARLY`] of them, once there are some.
    /// * Either, once the keys are known: data records of at most
    ///   [`peer_max_record`](Self::peer_max_record) bytes each.
    /// * Otherwise (waiting for the peer) takes nothing.
    ///
    /// # Errors
    /// An earlier failure; [`Error::NonceExhausted`].
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<usize, Error> {
        self.check()?;
        let state = mem::replace(&mut self.state, State::Busy);
        match state {
            State::Start(mut hs) => {
                let n = self.write_handshake(&mut hs, Kind::Init, plaintext)?;
                self.set_state(State::AwaitResp(hs));
                Ok(n)
            }
            State::Respond(mut hs) if !plaintext.is_empty() => {
                let n = self.write_handshake(&mut hs, Kind::Resp, plaintext)?;
                self.server_keyed(hs);
                Ok(n + self.seal(plaintext.get(n..).unwrap_or(&[]))?)
            }
            State::Transport { .. } => {
                self.state = state;
                let mut taken = 0;
                while let Some(rest) = plaintext.get(taken..).filter(|r| !r.is_empty()) {
                    let n = self.seal_record(rest)?;
                    if n == 0 {
                        break;
                    }
                    taken += n;
                }
                Ok(taken)
            }
            other => {
                self.state = other;
                Ok(0)
            }
        }
    }

    /// Seals what `session` has to transmit ([`Session::poll_transmit`]) and advances
    /// it; returns how many bytes were taken.
    ///
    /// # Errors
    /// As [`seal`](Self::seal).
    pub fn seal_from<SR, ST>(&mut self, session: &mut Session<SR, ST>) -> Result<usize, Error>
    where
        SR: AsRef<[u8]> + AsMut<[u8]>,
        ST: AsRef<[u8]> + AsMut<[u8]>,
    {
        let mut total = 0;
        loop {
            let first = matches!(self.state, State::Start(_));
            let out = session.poll_transmit();
            if out.is_empty() && !first {
                return Ok(total);
            }
            let n = self.seal(out)?;
            session.advance_transmit(n);
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Writes the magic and a handshake message carrying up to [`MAX_EARLY`] bytes of
    /// `plaintext`; returns how many.
    fn write_handshake(&mut self, hs: &mut Handshake<C>, kind: Kind, plaintext: &[u8]) -> Result<usize, Error> {
        let early = plaintext.len().min(MAX_EARLY);
        let overhead = match kind {
            Kind::Init => INIT_OVERHEAD,
            _ => RESP_OVERHEAD,
        };
        let mut payload = [0u8; PAYLOAD_HEAD_LEN + MAX_EARLY];
        let max = u16::try_from(self.own_max_record()).unwrap_or(u16::MAX);
        let plen = PAYLOAD_HEAD_LEN + early;
        if let Some((head, body)) = payload.split_first_chunk_mut::<PAYLOAD_HEAD_LEN>() {
            *head = max.to_be_bytes();
            if let (Some(dst), Some(src)) = (body.get_mut(..early), plaintext.get(..early)) {
                dst.copy_from_slice(src);
            }
        }
        let mut msg = [0u8; HEADER_LEN + INIT_OVERHEAD + MAX_EARLY];
        let len = overhead + early;
        let Some((head, rest)) = msg.split_first_chunk_mut::<HEADER_LEN>() else {
            return Err(Error::WrongState);
        };
        *head = Header { kind, len }.emit();
        let (Some(out), Some(payload)) = (rest.get_mut(..len), payload.get(..plen)) else {
            return Err(Error::WrongState);
        };
        hs.write_message(payload, out).map_err(|_| Error::HandshakeFailed)?;
        // Nothing is in `tx` before the first handshake message of either side, and
        // MIN_BUFFER_LEN holds the magic and the largest one.
        self.push_magic();
        self.push_tx(msg.get(..HEADER_LEN + len).unwrap_or(&[]));
        Ok(early)
    }

    /// Seals one data record with as much of `plaintext` as fits; returns how much.
    /// An empty `plaintext` makes an empty record (key confirmation, §10.3).
    fn seal_record(&mut self, plaintext: &[u8]) -> Result<usize, Error> {
        let State::Transport { send, .. } = &mut self.state else {
            return Ok(0);
        };
        if send.get_next_n() == u64::MAX {
            return Err(Error::NonceExhausted);
        }
        self.compact_tx();
        let free = self.tx.as_ref().len().saturating_sub(self.tx_end);
        if free < HEADER_LEN + TAG_LEN + usize::from(!plaintext.is_empty()) {
            return Ok(0);
        }
        let n = plaintext.len().min(self.peer_max).min(free - HEADER_LEN - TAG_LEN);
        let head = Header {
            kind: Kind::Data,
            len: n + TAG_LEN,
        }
        .emit();
        let start = self.tx_end;
        let end = start + HEADER_LEN + n + TAG_LEN;
        let (Some(dst), Some(src)) = (self.tx.as_mut().get_mut(start..end), plaintext.get(..n)) else {
            return Ok(0);
        };
        let Some((h, body)) = dst.split_first_chunk_mut::<HEADER_LEN>() else {
            return Ok(0);
        };
        *h = head;
        if let Some(b) = body.get_mut(..n) {
            b.copy_from_slice(src);
        }
        let State::Transport { send, .. } = &mut self.state else {
            return Ok(0);
        };
        send.encrypt_ad_in_place(&head, body, n);
        self.tx_end = end;
        Ok(n)
    }

    /// Bytes to write to the transport, in order.
    pub fn poll_transmit(&self) -> &[u8] {
        self.tx.as_ref().get(self.tx_start..self.tx_end).unwrap_or(&[])
    }

    /// Marks `n` bytes of [`poll_transmit`](Self::poll_transmit) as written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.tx_start = (self.tx_start + n).min(self.tx_end);
    }

    // ---- time ----

    /// When [`handle_timeout`](Self::handle_timeout) must next run: the handshake
    /// deadline, or `None` once the handshake is complete.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Runs the handshake timer: past the deadline the layer fails with
    /// [`Error::HandshakeTimeout`] (a server queues an ALERT).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.fail(Error::HandshakeTimeout);
        }
    }
}

#[cfg(test)]
mod tests;
