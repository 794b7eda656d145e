//! The sans-IO session state machine (PROTOCOL.md §4).
//!
//! A [`Session`] owns no socket and no clock. The caller moves bytes in
//! ([`Session::input_buffer`] then [`Session::advance_input`], or
//! [`Session::handle_input`]), takes events out ([`Session::poll_event`]), moves bytes
//! out ([`Session::poll_transmit`] then [`Session::advance_transmit`]) and keeps time
//! ([`Session::poll_timeout`], [`Session::handle_timeout`]). The same code serves a std
//! host with mio, a smoltcp poll loop and the deterministic tests.
//!
//! Buffers are supplied by the caller as anything that derefs to a byte slice: arrays or
//! `&'static mut [u8]` in firmware, `Vec<u8>` on a host. Their length is the session's
//! capacity; the session never grows them itself.
//!
//! * `rx` holds received bytes until their frames are handled. To receive every frame
//!   the peer may send it must hold one whole MSG frame of `config.max_message` bytes
//!   ([`Session::min_rx_len`]). A host with many idle connections may start smaller
//!   (at least [`Session::MIN_RX_LEN`]) and grow it on demand: see
//!   [`Session::rx_wanted`] and [`Session::replace_rx`].
//! * `tx` holds this side's MSG frames from the moment [`Session::send`] accepts them
//!   until the peer acknowledges them, so that they can be resent after a reconnect.
//!   A full `tx` makes `send` return [`Error::Full`]: that is the backpressure signal.

use core::fmt;

use heapless::Vec;

use crate::time::{Duration, Instant};
use crate::wire::frame::{self, peek_header};
use crate::wire::plain::split_line;
#[cfg(feature = "detect")]
use crate::wire::plain::{detect_foreign, might_be_foreign};
use crate::wire::{
    self, Code, Frame, FrameType, Hello, Repr, Welcome, MAGIC, MAX_CONTROL_LEN, MAX_NAME_LEN, MSG_OVERHEAD,
};

#[cfg(test)]
mod tests;

/// Server sessions are compiled in (the `server` feature). Without it the server-only
/// states (Detect, AwaitHello, Pending) are never entered, and testing this constant
/// where they are handled lets the compiler drop their code.
const SERVER: bool = cfg!(feature = "server");

/// Capacity of the small buffer for control frames and plain-text `ERR` lines.
const CTRL_CAP: usize = MAX_CONTROL_LEN + 64;

/// Settings of one session. Both sides advertise theirs in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Largest message payload this side accepts, in bytes (PROTOCOL.md §3.2).
    pub max_message: u32,
    /// Close the session after this long without receiving anything; zero disables.
    /// Binary peers keep the session alive with PING at a third of the smaller of the
    /// two sides' timeouts (§4.4).
    pub idle_timeout: Duration,
    /// Time allowed from connection to an established session (§4.1).
    pub handshake_timeout: Duration,
    /// Time allowed for an orderly close to complete before the session aborts (§4.5).
    pub close_timeout: Duration,
    /// Plain-text sessions deliver a partial line after this long without input (§7.1).
    pub line_gap: Duration,
    /// A server accepts plain-text peers (§7); when false they get BAD_MAGIC.
    pub allow_plain: bool,
}

impl Config {
    /// Defaults suited to a small device: 1 KiB messages, 30 s idle timeout, 10 s
    /// handshake and close timeouts, 100 ms line gap, plain text allowed.
    pub const DEFAULT: Config = Config {
        max_message: 1024,
        idle_timeout: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(10),
        line_gap: Duration::from_millis(100),
        allow_plain: true,
    };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Which end of the connection this session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// Opens the connection and sends HELLO.
    Client,
    /// Accepts the connection and answers WELCOME or REFUSE.
    Server,
}

/// How the peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// The soquete binary protocol: framed, sequenced, acknowledged.
    Binary,
    /// One message per text line, no acknowledgements (PROTOCOL.md §7).
    Plain,
}

/// How a session ended; carried by [`Event::Closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Closure {
    /// Both sides completed the close handshake; `code` is the reason of the side that
    /// closed first. Every message either side sent was acknowledged.
    Orderly {
        /// The reason given by the side that started the close.
        code: Code,
        /// True if the peer started the close.
        by_peer: bool,
    },
    /// The transport reached end of stream. Normal for a plain-text peer; for a binary
    /// session it means the peer went away without closing.
    Eof,
    /// This side aborted the session, after sending ERROR (or an `ERR` line).
    Aborted(Code),
    /// The peer aborted the session with ERROR.
    PeerError(Code),
    /// The handshake was refused (by the server, with this reason).
    Refused(Code),
}

impl Closure {
    /// True for an end in which nothing went wrong: an orderly close, or end of stream
    /// from a plain-text peer.
    pub fn is_clean(&self, mode: Mode) -> bool {
        match self {
            Closure::Orderly { .. } => true,
            Closure::Eof => mode == Mode::Plain,
            _ => false,
        }
    }
}

impl fmt::Display for Closure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closure::Orderly { code, by_peer: true } => write!(f, "closed by peer: {}", code.describe()),
            Closure::Orderly { code, by_peer: false } => write!(f, "closed: {}", code.describe()),
            Closure::Eof => f.write_str("connection closed by peer"),
            Closure::Aborted(code) => write!(f, "aborted: {}", code.describe()),
            Closure::PeerError(code) => write!(f, "peer error: {}", code.describe()),
            Closure::Refused(code) => write!(f, "refused: {}", code.describe()),
        }
    }
}

/// Something the application should know about; see [`Session::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// Server only: a peer introduced itself. Answer with
    #[cfg_attr(feature = "server", doc = "[`Session::accept`] or [`Session::refuse`];")]
    #[cfg_attr(not(feature = "server"), doc = "`Session::accept` or `Session::refuse`;")]
    /// until then the session waits (within the handshake timeout).
    Hello {
        /// Binary (a HELLO frame) or plain text (the first bytes were not the magic).
        mode: Mode,
        /// The client's name; empty for plain-text peers and unnamed clients.
        name: &'a str,
        /// The session token the client wants to resume, 0 for a new session.
        token: u64,
        /// Highest sequence number the client has received from this server in that
        /// session.
        ack: u64,
    },
    /// The session is open: messages may be sent and will arrive.
    Established {
        /// How the peer speaks.
        mode: Mode,
        /// True if an earlier session was resumed (§4.6).
        resumed: bool,
    },
    /// A message from the peer. It counts as delivered (and is acknowledged) once the
    /// application calls `poll_event` again.
    Message {
        /// Its sequence number (plain text: its line number in this session).
        seq: u64,
        /// Its bytes.
        payload: &'a [u8],
    },
    /// The peer acknowledged every message up to and including `seq`.
    Acked {
        /// Highest acknowledged sequence number.
        seq: u64,
    },
    /// The peer started an orderly close; [`Session::send`] no longer accepts messages.
    PeerClosing(Code),
    /// The session ended. Always the last event. Send what [`Session::poll_transmit`]
    /// still has, then close the transport.
    Closed(Closure),
}

/// Errors of the session's own API (misuse or a full buffer, never peer input:
/// peer misbehaviour ends the session with a [`Closure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// `rx` is shorter than [`Session::MIN_RX_LEN`].
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

/// Counters over the session's life (they survive [`Session::reconnect`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Messages accepted by [`Session::send`].
    pub sent: u64,
    /// Of those, acknowledged by the peer (binary mode only).
    pub acked: u64,
    /// Messages delivered to the application.
    pub received: u64,
    /// Bytes taken from the transport.
    pub bytes_in: u64,
    /// Bytes handed to the transport.
    pub bytes_out: u64,
}

/// The protocol state (PROTOCOL.md §4). Data that only one state needs lives in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Server: no byte yet; the first one tells binary from plain text.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    Detect { deadline: Instant },
    /// Server: magic received, waiting for HELLO.
    AwaitHello { deadline: Instant },
    /// Server: HELLO (or plain text) received, waiting for the application's verdict.
    Pending { deadline: Instant, ack: u64 },
    /// Client: magic and HELLO queued, waiting for the server's magic and WELCOME.
    HelloSent { deadline: Instant, magic_seen: bool },
    /// Established.
    Open,
    /// Orderly close in progress: `local`/`peer` are the reasons each side gave (if it
    /// has), `sent` whether our CLOSE is queued.
    Closing {
        local: Option<Code>,
        peer: Option<Code>,
        sent: bool,
        deadline: Instant,
    },
    /// Finished; only queued bytes remain to be transmitted.
    Closed(Closure),
}

impl State {
    /// The state's name in PROTOCOL.md §4, for logs (much cheaper to print than
    /// `Debug`).
    fn name(&self) -> &'static str {
        match self {
            State::Detect { .. } => "Detect",
            State::AwaitHello { .. } => "AwaitHello",
            State::Pending { .. } => "Pending",
            State::HelloSent { .. } => "HelloSent",
            State::Open => "Open",
            State::Closing { .. } => "Closing",
            State::Closed(_) => "Closed",
        }
    }
}

/// Control frames waiting to be encoded into `ctrl` (encoded late so that an ACK
/// always carries the newest sequence number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pending {
    hello: bool,
    welcome: Option<bool>,
    ping: Option<u64>,
    pong: Option<u64>,
    close: Option<Code>,
}

/// Events waiting to be returned by `poll_event`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Notify {
    established: Option<bool>,
    acked: bool,
    peer_closing: Option<Code>,
    closed: bool,
}

/// One soquete session over one connection. See the [module docs](self).
#[derive(Debug)]
pub struct Session<R, T> {
    role: Role,
    mode: Mode,
    config: Config,
    state: State,

    rx: R,
    rx_start: usize,
    rx_end: usize,
    /// Length of the frame at `rx_start` once its header is in and its body is not (0
    /// otherwise), or the full `min_rx_len` for a plain-text line that fills `rx`.
    rx_want: usize,
    /// Bytes of the message last returned by `poll_event`, dropped at the next call.
    release: Option<(usize, u64)>,
    eof: bool,
    flush_partial: bool,
    last_rx: Instant,
    /// When bytes were last seen leaving (noted at the next timer run): a plain-text
    /// session has no keepalive, so its idle timer counts traffic both ways (§7.1).
    last_tx: Instant,
    tx_activity: bool,

    tx: T,
    tx_start: usize,
    tx_sent: usize,
    tx_end: usize,
    /// A write stopped inside a MSG frame: control frames must wait for its end.
    tx_partial: bool,
    ctrl: Vec<u8, CTRL_CAP>,
    ctrl_sent: usize,
    /// Our magic has been queued (it precedes our first frame, §2.1).
    magic_sent: bool,
    pending: Pending,
    notify: Notify,

    name: heapless::String<MAX_NAME_LEN>,
    token: u64,
    peer_max: u32,
    peer_idle: Duration,
    ping_out: bool,
    /// Nonce of the last PING queued (§3.7): they count 1, 2, ... per session.
    nonce: u64,
    /// Highest PING nonce whose frame has completely left; a PONG may name only a
    /// nonce in `pong_seen + 1..=ping_sent`.
    ping_sent: u64,
    /// Highest nonce a PONG has answered.
    pong_seen: u64,

    /// Next sequence number to assign to an outgoing message.
    next_seq: u64,
    /// Highest sequence number the peer acknowledged.
    acked: u64,
    /// Highest sequence number received and delivered to the application.
    received: u64,
    /// Highest sequence number we acknowledged on the wire.
    ack_sent: u64,
    /// Highest sequence number of ours completely transmitted on an earlier connection
    /// of this session: a resumed WELCOME may acknowledge up to it (§4.2).
    transmitted_before: u64,
    stats: Stats,
}

impl<R, T> Session<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// The smallest `rx` a session accepts (68 bytes): room for the magic and the
    /// longest HELLO, so for the handshake and every frame other than MSG, and for the
    /// first bytes a server looks at to recognise HTTP (§7.3).
    ///
    /// An `rx` between this and [`Session::min_rx_len`] must be grown when
    /// [`Session::rx_wanted`] asks for it. A few KiB is a better start for a server:
    /// small messages then never ask, and an HTTP request line that arrives whole is
    /// seen whole.
    pub const MIN_RX_LEN: usize = {
        #[cfg(feature = "detect")]
        assert!(MAX_CONTROL_LEN >= crate::wire::plain::SNIFF_LIMIT);
        MAX_CONTROL_LEN
    };

    /// The `rx` that can hold one MSG frame of `max_message` bytes (and any control
    /// frame, and a plain-text line of `max_message` bytes with its `\r\n`): with it, a
    /// session never asks for more ([`Session::rx_wanted`] is always `None`).
    pub const fn min_rx_len(max_message: u32) -> usize {
        let msg = MSG_OVERHEAD + max_message as usize;
        if msg > MAX_CONTROL_LEN {
            msg
        } else {
            MAX_CONTROL_LEN
        }
    }

    /// A client session that will open with magic and HELLO (`name` may be empty).
    ///
    /// `rx` should be [`Session::min_rx_len`]`(config.max_message)` long, or at least
    /// [`Session::MIN_RX_LEN`] if the caller grows it on [`Session::rx_wanted`].
    ///
    /// # Errors
    /// [`Error::RxTooSmall`] for an `rx` shorter than [`Session::MIN_RX_LEN`],
    /// [`Error::TxTooSmall`] for a `tx` that cannot hold an empty MSG frame,
    /// [`Error::NameTooLong`] for a name over [`MAX_NAME_LEN`] bytes.
    #[inline(never)]
    pub fn client(config: Config, name: &str, rx: R, tx: T, now: Instant) -> Result<Self, Error> {
        let mut s = Self::new(Role::Client, Mode::Binary, config, rx, tx, now)?;
        s.name = heapless::String::try_from(name).map_err(|_| Error::NameTooLong)?;
        s.start_handshake(now);
        Ok(s)
    }

    /// A client session that speaks plain text lines to any line-based server
    /// (PROTOCOL.md §7): established at once, no handshake, no acknowledgements.
    ///
    /// Needs the `plain` feature.
    ///
    /// # Errors
    /// As [`Session::client`].
    #[cfg(feature = "plain")]
    #[inline(never)]
    pub fn plain_client(config: Config, rx: R, tx: T, now: Instant) -> Result<Self, Error> {
        let mut s = Self::new(Role::Client, Mode::Plain, config, rx, tx, now)?;
        s.set_state(State::Open);
        s.notify.established = Some(false);
        Ok(s)
    }

    /// A server session for a newly accepted connection. Needs the `server` feature.
    ///
    /// # Errors
    /// As [`Session::client`].
    #[cfg(feature = "server")]
    #[inline(never)]
    pub fn server(config: Config, rx: R, tx: T, now: Instant) -> Result<Self, Error> {
        let deadline = now + config.handshake_timeout;
        let mut s = Self::new(Role::Server, Mode::Binary, config, rx, tx, now)?;
        s.state = State::Detect { deadline };
        Ok(s)
    }

    // Out of line, as are the constructors: inlined into a firmware's setup, the
    // session's known first state gets specialised into its main loop, costing
    // flash for nothing (bench/footprint.sh).
    #[inline(never)]
    fn new(role: Role, mode: Mode, config: Config, rx: R, tx: T, now: Instant) -> Result<Self, Error> {
        if rx.as_ref().len() < Self::MIN_RX_LEN {
            return Err(Error::RxTooSmall);
        }
        if tx.as_ref().len() < MSG_OVERHEAD {
            return Err(Error::TxTooSmall);
        }
        Ok(Session {
            role,
            mode,
            config,
            state: State::Closed(Closure::Eof),
            rx,
            rx_start: 0,
            rx_end: 0,
            rx_want: 0,
            release: None,
            eof: false,
            flush_partial: false,
            last_rx: now,
            last_tx: now,
            tx_activity: false,
            tx,
            tx_start: 0,
            tx_sent: 0,
            tx_end: 0,
            tx_partial: false,
            ctrl: Vec::new(),
            ctrl_sent: 0,
            magic_sent: false,
            pending: Pending::default(),
            notify: Notify::default(),
            name: heapless::String::new(),
            token: 0,
            peer_max: 0,
            peer_idle: Duration::ZERO,
            ping_out: false,
            nonce: 0,
            ping_sent: 0,
            pong_seen: 0,
            next_seq: 1,
            acked: 0,
            received: 0,
            ack_sent: 0,
            transmitted_before: 0,
            stats: Stats::default(),
        })
    }

    // ---------------------------------------------------------------- queries

    /// This session's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Binary or plain text (a server knows only after the first bytes). Always
    /// [`Mode::Binary`] without the `plain` feature.
    #[inline]
    pub fn mode(&self) -> Mode {
        // A constant without `plain`, so that every plain-text branch compiles away.
        if cfg!(feature = "plain") {
            self.mode
        } else {
            Mode::Binary
        }
    }

    /// The session's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The client's name: on a server, as the peer's HELLO gave it; on a client, its own.
    pub fn peer_name(&self) -> &str {
        &self.name
    }

    /// The session token (0 until the server assigned one).
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The largest message the peer accepts (0 before the handshake; unlimited in
    /// plain mode, where it reports this side's own maximum).
    pub fn peer_max_message(&self) -> u32 {
        match self.mode() {
            Mode::Plain => self.config.max_message,
            Mode::Binary => self.peer_max,
        }
    }

    /// True once the session can send messages (and until it starts closing).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// True once the session has ended; see [`Session::closure`].
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// How the session ended, once it has.
    pub fn closure(&self) -> Option<Closure> {
        match self.state {
            State::Closed(c) => Some(c),
            _ => None,
        }
    }

    /// Messages sent but not yet acknowledged (binary mode).
    pub fn unacked(&self) -> u64 {
        match self.mode() {
            Mode::Binary => self.next_seq.saturating_sub(1).saturating_sub(self.acked),
            Mode::Plain => 0,
        }
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// True when the session has bytes for the transport (without encoding pending
    /// control frames; [`Session::poll_transmit`] is the authority).
    pub fn wants_transmit(&self) -> bool {
        let open = matches!(self.state, State::Open | State::Closing { .. });
        self.ctrl_sent < self.ctrl.len()
            || self.pending != Pending::default()
            || (open && self.mode() == Mode::Binary && self.received > self.ack_sent)
            || (self.tx_sent < self.tx_end && (open || self.tx_partial))
    }

    /// True when the session has ended and has nothing left to transmit: close the
    /// transport now.
    pub fn is_finished(&mut self) -> bool {
        self.is_closed() && self.poll_transmit().is_empty()
    }

    // ---------------------------------------------------------------- input

    /// Free space for received bytes: read from the transport straight into it, then
    /// call [`Session::advance_input`]. Empty when the buffer is full (stop reading
    /// until the application has polled events) or the session is closed.
    pub fn input_buffer(&mut self) -> &mut [u8] {
        if self.is_closed() {
            return &mut [];
        }
        if self.rx_start > 0 && self.release.is_none() {
            move_to_front(self.rx.as_mut(), self.rx_start, self.rx_end);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
        }
        let end = self.rx_end;
        self.rx.as_mut().get_mut(end..).unwrap_or(&mut [])
    }

    /// Records that `n` bytes were written into [`Session::input_buffer`] at `now`.
    /// `n` larger than the free space is clamped.
    pub fn advance_input(&mut self, now: Instant, n: usize) {
        if n == 0 || self.is_closed() {
            return;
        }
        let free = self.rx.as_ref().len().saturating_sub(self.rx_end);
        let n = n.min(free);
        self.rx_end += n;
        self.last_rx = now;
        self.ping_out = false;
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(n as u64);
    }

    /// Copies as much of `data` as fits into the receive buffer; returns how much.
    /// Call [`Session::poll_event`] and retry with the rest when it returns less.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> usize {
        let buf = self.input_buffer();
        let n = buf.len().min(data.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), data.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.advance_input(now, n);
        n
    }

    /// The transport reached end of stream (the peer closed or shut down its sending
    /// side). Bytes already received are still delivered before [`Event::Closed`].
    pub fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
        self.flush_partial = true;
    }

    // ---------------------------------------------------------------- receive buffer size

    /// The `rx` length the frame in progress needs, when it is more than `rx` has.
    ///
    /// `Some(n)` once the header of a frame longer than `rx` is in and has passed its
    /// checks (its length is within `config.max_message`, PROTOCOL.md §3.1, so `n` is
    /// at most [`Session::min_rx_len`]`(config.max_message)`); in plain text, once a
    /// line with no end yet fills `rx` (`n` is then the full `min_rx_len`). Give the
    /// session a buffer of at least `n` bytes with [`Session::replace_rx`] before
    /// reading more: until then [`Session::input_buffer`] runs empty once `rx` is full,
    /// and the session waits (it neither fails nor spins; the idle timeout still runs).
    ///
    /// Look after [`Session::poll_event`] has returned `None`: that is when the session
    /// has examined what it holds. Always `None` once the session is closed, and for an
    /// `rx` of [`Session::min_rx_len`]`(config.max_message)` bytes or more.
    pub fn rx_wanted(&self) -> Option<usize> {
        (self.rx_want > self.rx.as_ref().len() && !self.is_closed()).then_some(self.rx_want)
    }

    /// Bytes received and not yet consumed: a buffer given to [`Session::replace_rx`]
    /// must hold at least this many (and [`Session::MIN_RX_LEN`]).
    pub fn rx_buffered(&self) -> usize {
        self.rx_end.saturating_sub(self.rx_start)
    }

    /// True when `rx` is longer than `len` and a buffer of `len` bytes would serve as
    /// well now: it is at least [`Session::MIN_RX_LEN`], holds every buffered byte and
    /// the whole frame in progress. Ask after [`Session::poll_event`] has returned
    /// `None`, then shrink with [`Session::replace_rx`].
    pub fn rx_shrinkable(&self, len: usize) -> bool {
        len < self.rx.as_ref().len() && len >= Self::MIN_RX_LEN && self.rx_buffered() <= len && self.rx_want <= len
    }

    /// Swaps in a new receive buffer, larger or smaller, and hands back the old one.
    ///
    /// The session moves its buffered bytes ([`Session::rx_buffered`]) to the start of
    /// `rx` (the rest of `rx` may hold anything) and goes on with it as if it had been
    /// there from the start. Any time is fine, also between a [`Event::Message`] and the
    /// next [`Session::poll_event`]. Nothing is re-examined until the next
    /// `poll_event`.
    ///
    /// # Errors
    /// `Err(rx)`, with nothing changed, when `rx` is shorter than
    /// [`Session::MIN_RX_LEN`] or than [`Session::rx_buffered`].
    pub fn replace_rx(&mut self, mut rx: R) -> Result<R, R> {
        let held = self.rx_buffered();
        if rx.as_ref().len() < held.max(Self::MIN_RX_LEN) {
            return Err(rx);
        }
        let src = self.rx.as_ref().get(self.rx_start..self.rx_end).unwrap_or(&[]);
        if let Some(dst) = rx.as_mut().get_mut(..src.len()) {
            dst.copy_from_slice(src);
        }
        self.rx_start = 0;
        self.rx_end = held;
        Ok(core::mem::replace(&mut self.rx, rx))
    }

    // ---------------------------------------------------------------- events

    /// The next event, or `None` when there is nothing to report until more input or
    /// a timeout. Call it until it returns `None` after every input and timeout: that
    /// is also what releases the previous message and lets its acknowledgement go out.
    pub fn poll_event(&mut self, now: Instant) -> Option<Event<'_>> {
        if let Some((len, seq)) = self.release.take() {
            self.rx_start = self.rx_start.saturating_add(len).min(self.rx_end);
            self.received = seq;
            self.stats.received = self.stats.received.saturating_add(1);
        }
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        }
        if let Some(event) = self.take_notice() {
            return Some(event);
        }
        loop {
            match self.step(now) {
                Step::Again => {}
                Step::Idle => {
                    // A flush (line gap, close) covers what was buffered when it fired.
                    self.flush_partial = self.eof;
                    break;
                }
                Step::Message { at, len, seq } => {
                    let payload = self.rx.as_ref().get(at..at.saturating_add(len)).unwrap_or(&[]);
                    return Some(Event::Message { seq, payload });
                }
                Step::Hello { token, ack } => {
                    return Some(Event::Hello {
                        mode: self.mode(),
                        name: &self.name,
                        token,
                        ack,
                    });
                }
            }
        }
        // Frames handled just now (WELCOME, ACK) may have something to report.
        if let Some(event) = self.take_notice() {
            return Some(event);
        }
        if let Some(code) = self.notify.peer_closing.take() {
            return Some(Event::PeerClosing(code));
        }
        if self.eof && !self.is_closed() {
            // A peer that only shut down its sending side still reads: it gets the
            // acknowledgement of everything delivered (PROTOCOL.md §4.5).
            let open = matches!(self.state, State::Open | State::Closing { .. });
            if open
                && self.mode() == Mode::Binary
                && self.received > self.ack_sent
                && push_ctrl(&mut self.ctrl, Repr::Ack(self.received))
            {
                self.ack_sent = self.received;
            }
            self.set_state(State::Closed(Closure::Eof));
        }
        match self.state {
            State::Closed(c) if !self.notify.closed => {
                self.notify.closed = true;
                Some(Event::Closed(c))
            }
            _ => None,
        }
    }

    /// A pending Established or Acked event.
    fn take_notice(&mut self) -> Option<Event<'static>> {
        if let Some(resumed) = self.notify.established.take() {
            return Some(Event::Established {
                mode: self.mode(),
                resumed,
            });
        }
        core::mem::take(&mut self.notify.acked).then_some(Event::Acked { seq: self.acked })
    }

    /// Handles what is next in the receive buffer.
    fn step(&mut self, now: Instant) -> Step {
        self.rx_want = 0;
        let avail = self.rx.as_ref().get(self.rx_start..self.rx_end).unwrap_or(&[]);
        if avail.is_empty() {
            return Step::Idle;
        }
        match (self.state, self.mode()) {
            (State::Detect { deadline }, _) if SERVER => self.detect(deadline),
            (State::Pending { .. }, _) => Step::Idle,
            (
                State::HelloSent {
                    deadline,
                    magic_seen: false,
                },
                _,
            ) => {
                if !is_magic_prefix(avail) {
                    return self.abort_silently(Code::BadMagic);
                }
                if avail.len() < MAGIC.len() {
                    return Step::Idle;
                }
                self.rx_start += MAGIC.len();
                self.state = State::HelloSent {
                    deadline,
                    magic_seen: true,
                };
                Step::Again
            }
            (State::Open | State::Closing { .. }, Mode::Plain) => self.step_plain(),
            (State::Closed(_), Mode::Plain) if self.flush_partial || split_line(avail).is_some() => self.step_plain(),
            (State::Closed(_), _) => Step::Idle,
            _ => self.step_frame(now),
        }
    }

    /// Server, first bytes: magic → binary, anything else → plain text (§2.1, §7).
    fn detect(&mut self, deadline: Instant) -> Step {
        let avail = self.rx.as_ref().get(self.rx_start..self.rx_end).unwrap_or(&[]);
        if is_magic_prefix(avail) {
            if avail.len() < MAGIC.len() {
                return Step::Idle;
            }
            self.rx_start += MAGIC.len();
            self.set_state(State::AwaitHello { deadline });
            return Step::Again;
        }
        if !cfg!(feature = "plain") || !self.config.allow_plain {
            return self.abort(Code::BadMagic);
        }
        // §7.3: HTTP and TLS are recognised before the peer counts as a client.
        #[cfg(feature = "detect")]
        {
            let line = split_line(avail).map(|(l, _)| l);
            if detect_foreign(avail, line).is_some() {
                log_at!(info, "peer speaks another protocol (HTTP or TLS)");
                self.mode = Mode::Plain;
                return self.abort(Code::WrongProtocol);
            }
            if line.is_none() && !self.eof && might_be_foreign(avail) {
                return Step::Idle;
            }
        }
        self.mode = Mode::Plain;
        self.set_state(State::Pending { deadline, ack: 0 });
        Step::Hello { token: 0, ack: 0 }
    }

    /// Binary mode: handles one complete frame, if there is one.
    fn step_frame(&mut self, now: Instant) -> Step {
        let avail = self.rx.as_ref().get(self.rx_start..self.rx_end).unwrap_or(&[]);
        let Some((ty, body_len)) = peek_header(avail) else {
            return Step::Idle;
        };
        let Some(frame_type) = FrameType::from_u8(ty) else {
            log_at!(debug, "unknown frame type 0x{ty:02x}");
            return self.abort(Code::UnknownFrame);
        };
        // §3.2: a HELLO of another version is refused on its first body byte, whatever
        // its length.
        if SERVER && frame_type == FrameType::Hello && matches!(self.state, State::AwaitHello { .. }) {
            match avail.get(wire::HEADER_LEN) {
                _ if body_len == 0 => return self.abort(Code::Malformed),
                None => return Step::Idle,
                Some(&v) if v != wire::VERSION => {
                    log_at!(debug, "client speaks version {v}");
                    return self.refuse_now(Code::BadVersion);
                }
                Some(_) => {}
            }
        }
        // §3.1: reject an oversize length from the header alone, before buffering it.
        let max = frame_type.max_body_len(self.config.max_message);
        let body_len = usize::try_from(body_len).unwrap_or(usize::MAX);
        if body_len > max {
            log_at!(debug, "{frame_type:?} body of {body_len} bytes exceeds {max}");
            return self.abort(Code::TooLarge);
        }
        let total = wire::HEADER_LEN + body_len;
        let at = self.rx_start;
        let Ok(frame) = Frame::new_checked(avail) else {
            self.rx_want = total;
            return Step::Idle;
        };
        if !SERVER && frame_type == FrameType::Hello {
            // Only a server takes HELLO, but its fields are checked first (§3.1 step 6
            // before 7); this way without decoding the name (see `check_hello`).
            let valid = frame::check_hello(frame.body_ref()).is_ok();
            return self.abort(if valid { Code::UnexpectedFrame } else { Code::Malformed });
        }
        let repr = match Repr::parse_body(frame_type, frame.body_ref()) {
            Ok(repr) => repr,
            Err(e) => {
                log_at!(debug, "bad {frame_type:?} frame: {e}");
                return self.abort(Code::Malformed);
            }
        };
        // Frames other than MSG are consumed now; a MSG stays until the application
        // has seen it (released by the next poll_event).
        let repr: Repr<'static> = match repr {
            Repr::Msg { seq, payload } => {
                let len = payload.len();
                return self.on_message(seq, at + wire::MSG_OVERHEAD, len, total);
            }
            Repr::Hello(h) => {
                // The name is copied out so that the frame's bytes can be released.
                self.name = heapless::String::try_from(h.name).unwrap_or_default();
                Repr::Hello(Hello { name: "", ..h })
            }
            Repr::Welcome(w) => Repr::Welcome(w),
            Repr::Refuse(c) => Repr::Refuse(c),
            Repr::Ack(v) => Repr::Ack(v),
            Repr::Ping(v) => Repr::Ping(v),
            Repr::Pong(v) => Repr::Pong(v),
            Repr::Close(c) => Repr::Close(c),
            Repr::Error(c) => Repr::Error(c),
        };
        self.rx_start += total;
        self.on_control(repr, now)
    }

    fn on_message(&mut self, seq: u64, at: usize, len: usize, total: usize) -> Step {
        match self.state {
            State::Open | State::Closing { peer: None, .. } => {}
            _ => return self.abort(Code::UnexpectedFrame),
        }
        if Some(seq) != self.received.checked_add(1) {
            // In hex: decimal u64 formatting would cost a firmware that logs ~1 KiB.
            log_at!(debug, "expected seq {:#x}, got {seq:#x}", self.received.wrapping_add(1));
            return self.abort(Code::BadSequence);
        }
        self.release = Some((total, seq));
        Step::Message { at, len, seq }
    }

    fn on_control(&mut self, repr: Repr<'_>, now: Instant) -> Step {
        match (self.state, repr) {
            // Server handshake (§4.1).
            (State::AwaitHello { deadline }, Repr::Hello(h)) if SERVER => self.on_hello(h, deadline),
            // Client handshake (§4.2).
            (State::HelloSent { .. }, Repr::Welcome(w)) => self.on_welcome(w),
            (State::HelloSent { .. }, Repr::Refuse(code)) => {
                self.set_state(State::Closed(Closure::Refused(code)));
                Step::Idle
            }
            // Established (§4.3, §4.4).
            (State::Open | State::Closing { .. }, Repr::Ack(seq)) => self.on_ack(seq),
            (State::Open | State::Closing { .. }, Repr::Ping(nonce)) => {
                self.pending.pong = Some(nonce);
                Step::Again
            }
            // A PONG answers a PING that completely left, once (§3.7).
            (State::Open | State::Closing { .. }, Repr::Pong(nonce))
                if nonce > self.pong_seen && nonce <= self.ping_sent =>
            {
                self.pong_seen = nonce;
                Step::Again
            }
            // Orderly close (§4.5): remember the peer's reason, finish our side.
            (State::Open, Repr::Close(code)) => {
                self.notify.peer_closing = Some(code);
                self.set_state(State::Closing {
                    local: None,
                    peer: Some(code),
                    sent: false,
                    deadline: now + self.config.close_timeout,
                });
                self.progress_close();
                Step::Again
            }
            (
                State::Closing {
                    local,
                    peer: None,
                    sent,
                    deadline,
                },
                Repr::Close(code),
            ) => {
                self.set_state(State::Closing {
                    local,
                    peer: Some(code),
                    sent,
                    deadline,
                });
                self.progress_close();
                Step::Again
            }
            // Abortive close, in any state (§4.5).
            (_, Repr::Error(code)) => {
                self.rx_start = self.rx_end;
                self.set_state(State::Closed(Closure::PeerError(code)));
                Step::Idle
            }
            (state, repr) => {
                log_at!(debug, "{:?} not allowed in {}", repr.frame_type(), state.name());
                self.abort(Code::UnexpectedFrame)
            }
        }
    }

    fn on_hello(&mut self, h: Hello<'_>, deadline: Instant) -> Step {
        self.peer_max = h.max_message;
        self.peer_idle = Duration::from_millis(h.idle_timeout_ms.into());
        self.acked = 0;
        self.set_state(State::Pending { deadline, ack: h.ack });
        // The client's ack is about messages of ours from a resumed session; a server
        // that resumes uses it in `accept` (nothing to resend in a new session).
        Step::Hello {
            token: h.token,
            ack: h.ack,
        }
    }

    fn on_welcome(&mut self, w: Welcome) -> Step {
        if w.resumed && w.token != self.token {
            log_at!(debug, "server resumed a session we did not ask for");
            return self.abort(Code::UnknownSession);
        }
        if !w.resumed && w.ack != 0 {
            // A new session: nothing of it was sent yet (§3.3).
            return self.abort(Code::BadAck);
        }
        self.peer_max = w.max_message;
        self.peer_idle = Duration::from_millis(w.idle_timeout_ms.into());
        self.token = w.token;
        if w.resumed {
            // §4.6: the server has everything up to w.ack; resend the rest. It can
            // only have what completely left on an earlier connection (§4.2).
            if w.ack > self.transmitted_before || w.ack < self.acked {
                log_at!(debug, "resumed WELCOME acknowledges {:#x}", w.ack);
                return self.abort(Code::BadAck);
            }
            self.notify.acked = w.ack > self.acked;
            self.drop_acked(w.ack);
        } else {
            // A new session: our unacknowledged messages are renumbered from 1 and the
            // server's numbering starts again (§4.6).
            self.renumber();
            self.received = 0;
            self.ack_sent = 0;
        }
        self.set_state(State::Open);
        self.notify.established = Some(w.resumed);
        Step::Again
    }

    fn on_ack(&mut self, seq: u64) -> Step {
        // Checked before anything changes: an ACK may cover only MSGs that completely
        // left on this connection (§4.3).
        if seq > self.transmitted() {
            log_at!(debug, "ACK {:#x} of a message not completely sent", seq);
            return self.abort(Code::BadAck);
        }
        if seq > self.acked {
            self.drop_acked(seq);
            self.notify.acked = true;
            self.progress_close();
        }
        Step::Again
    }

    /// Plain-text mode: delivers the next line, or a partial line when flushing.
    fn step_plain(&mut self) -> Step {
        let avail = self.rx.as_ref().get(self.rx_start..self.rx_end).unwrap_or(&[]);
        let at = self.rx_start;
        let line = split_line(avail);
        let seq = self.received.saturating_add(1);
        let max = self.config.max_message as usize;
        match line {
            Some((line, _)) if line.len() > max => self.abort(Code::TooLarge),
            Some((line, used)) => {
                self.release = Some((used, seq));
                Step::Message {
                    at,
                    len: line.len(),
                    seq,
                }
            }
            // Room for the longest line and its "\r\n" is guaranteed by min_rx_len;
            // max + 1 bytes are fine only if the last is the "\r" of a split "\r\n".
            None if avail.len() > max.saturating_add(1) || (avail.len() > max && avail.last() != Some(&b'\r')) => {
                self.abort(Code::TooLarge)
            }
            None if self.flush_partial => {
                self.flush_partial = self.eof;
                let len = avail.strip_suffix(b"\r").unwrap_or(avail).len();
                self.release = Some((avail.len(), seq));
                Step::Message { at, len, seq }
            }
            None => {
                // A smaller rx (full by now, or the check above would have fired) grows
                // at once to the full size: a line announces no length.
                if avail.len() >= self.rx.as_ref().len() {
                    self.rx_want = Self::min_rx_len(self.config.max_message);
                }
                Step::Idle
            }
        }
    }

    // ---------------------------------------------------------------- application calls

    /// Server: accepts the peer announced by [`Event::Hello`].
    ///
    /// `token` names the session (the client may later resume it); `resume` is
    /// `Some(received)` when the server resumes an earlier session of this token and has
    /// delivered its messages up to `received` (§4.6), `None` for a new session.
    ///
    /// # Errors
    /// [`Error::WrongState`] unless a [`Event::Hello`] is waiting for an answer.
    #[cfg(feature = "server")]
    pub fn accept(&mut self, token: u64, resume: Option<u64>) -> Result<(), Error> {
        let State::Pending { ack, .. } = self.state else {
            return Err(Error::WrongState);
        };
        if token == 0 && self.mode() == Mode::Binary {
            return Err(Error::WrongState);
        }
        self.token = token;
        self.received = resume.unwrap_or(0);
        self.ack_sent = self.received;
        if resume.is_some() {
            // §4.6: our numbering continues after what the client already has.
            self.acked = ack;
            self.next_seq = ack.saturating_add(1);
        }
        if self.mode() == Mode::Binary {
            self.pending.welcome = Some(resume.is_some());
        }
        self.set_state(State::Open);
        self.notify.established = Some(resume.is_some());
        Ok(())
    }

    /// Server: refuses the peer announced by [`Event::Hello`] with REFUSE (or an `ERR`
    /// line for plain text) and ends the session.
    ///
    /// # Errors
    /// [`Error::WrongState`] unless a [`Event::Hello`] is waiting for an answer.
    #[cfg(feature = "server")]
    pub fn refuse(&mut self, code: Code) -> Result<(), Error> {
        let State::Pending { .. } = self.state else {
            return Err(Error::WrongState);
        };
        self.refuse_now(code);
        Ok(())
    }

    fn refuse_now(&mut self, code: Code) -> Step {
        self.rx_start = self.rx_end;
        self.ctrl.clear();
        self.ctrl_sent = 0;
        match self.mode() {
            Mode::Binary => {
                self.push_magic_once();
                push_ctrl(&mut self.ctrl, Repr::Refuse(code));
            }
            Mode::Plain => self.push_err_line(code),
        }
        self.set_state(State::Closed(Closure::Refused(code)));
        Step::Idle
    }

    /// Queues one message; returns its sequence number. The message stays in `tx`
    /// until acknowledged.
    ///
    /// # Errors
    /// [`Error::NotOpen`] before the handshake completes or after the end;
    /// [`Error::Closing`] once either side started closing; [`Error::TooLarge`] if the
    /// peer would not accept it or `tx` could never hold it; [`Error::Full`] when `tx`
    /// has no room now (retry after [`Event::Acked`]); [`Error::Newline`] for a
    /// plain-text message containing `\n`.
    pub fn send(&mut self, payload: &[u8]) -> Result<u64, Error> {
        match self.state {
            State::Open => {}
            State::Closing { .. } => return Err(Error::Closing),
            _ => return Err(Error::NotOpen),
        }
        let cap = self.tx.as_ref().len();
        let seq = self.next_seq;
        let need = match self.mode() {
            Mode::Binary => {
                let room = cap.saturating_sub(MSG_OVERHEAD).min(self.peer_max as usize);
                if payload.len() > room {
                    return Err(Error::TooLarge {
                        max: u32::try_from(room).unwrap_or(u32::MAX),
                    });
                }
                MSG_OVERHEAD + payload.len()
            }
            Mode::Plain => {
                if payload.contains(&b'\n') {
                    return Err(Error::Newline);
                }
                if payload.len() >= cap {
                    return Err(Error::TooLarge {
                        max: u32::try_from(cap.saturating_sub(1)).unwrap_or(u32::MAX),
                    });
                }
                payload.len() + 1
            }
        };
        if self.tx_end + need > cap {
            self.compact_tx();
            if self.tx_end + need > cap {
                return Err(Error::Full);
            }
        }
        let end = self.tx_end + need;
        let mode = self.mode();
        let Some(dst) = self.tx.as_mut().get_mut(self.tx_end..end) else {
            return Err(Error::Full);
        };
        match mode {
            Mode::Binary => {
                if (Repr::Msg { seq, payload }).emit(dst).is_err() {
                    return Err(Error::Full);
                }
            }
            Mode::Plain => {
                if let Some((last, body)) = dst.split_last_mut() {
                    body.copy_from_slice(payload);
                    *last = b'\n';
                }
            }
        }
        self.tx_end = end;
        self.next_seq = seq.saturating_add(1);
        self.stats.sent = self.stats.sent.saturating_add(1);
        Ok(seq)
    }

    /// Starts an orderly close with `code` (§4.5): no new messages; CLOSE goes out once
    /// every message sent so far is acknowledged; the session ends when the peer's
    /// CLOSE arrives (or aborts with CLOSE_TIMEOUT after `config.close_timeout`).
    /// A plain-text session ends at once (after transmitting what is queued). During the
    /// handshake it aborts with ERROR(`code`). Once either side is closing, it does
    /// nothing.
    pub fn close(&mut self, now: Instant, code: Code) {
        match (self.state, self.mode()) {
            (State::Open, Mode::Binary) => {
                let deadline = now + self.config.close_timeout;
                self.set_state(State::Closing {
                    local: Some(code),
                    peer: None,
                    sent: false,
                    deadline,
                });
                self.progress_close();
            }
            (State::Open, Mode::Plain) => {
                self.flush_partial = true;
                self.set_state(State::Closed(Closure::Orderly { code, by_peer: false }));
            }
            (State::Pending { .. }, _) if SERVER => {
                self.refuse_now(code);
            }
            (State::Detect { .. } | State::AwaitHello { .. } | State::HelloSent { .. }, _) => {
                self.abort(code);
            }
            // Already closing (whoever started it keeps its reason) or closed; Pending
            // here only without `server`, where it cannot happen.
            (State::Closing { .. } | State::Closed(_) | State::Pending { .. }, _) => {}
        }
    }

    /// Client: starts over on a new connection after the old one was lost (§4.6).
    ///
    /// Unacknowledged messages stay in `tx` and are resent after the new WELCOME, from
    /// the server's acknowledgement on; the HELLO carries the session token and the
    /// last sequence number received, so the server can drop duplicates. Counters and
    /// sequence numbers carry over.
    ///
    /// Call it once the transport is gone, whatever the state: after
    /// [`Event::Closed`] (end of stream, a timeout, a peer's ERROR or REFUSE), or on a
    /// transport error while the session still thinks it is open.
    ///
    /// # Errors
    /// [`Error::WrongState`] for a server, a plain-text session, or a session that this
    /// side closed in order (every message was acknowledged; nothing to resume).
    pub fn reconnect(&mut self, now: Instant) -> Result<(), Error> {
        if self.role != Role::Client
            || self.mode() != Mode::Binary
            || matches!(self.state, State::Closed(Closure::Orderly { by_peer: false, .. }))
        {
            return Err(Error::WrongState);
        }
        self.transmitted_before = self.transmitted_before.max(self.transmitted());
        // PINGs of the old connection can no longer be answered.
        self.ping_sent = self.nonce;
        self.pong_seen = self.nonce;
        self.rx_start = 0;
        self.rx_end = 0;
        self.rx_want = 0;
        self.release = None;
        self.eof = false;
        self.flush_partial = false;
        self.last_rx = now;
        self.tx_sent = self.tx_start;
        self.tx_partial = false;
        self.ctrl.clear();
        self.ctrl_sent = 0;
        self.pending = Pending::default();
        self.notify = Notify::default();
        self.magic_sent = false;
        self.ping_out = false;
        self.ack_sent = self.received;
        self.start_handshake(now);
        Ok(())
    }

    #[inline(never)]
    fn start_handshake(&mut self, now: Instant) {
        self.pending.hello = true;
        self.set_state(State::HelloSent {
            deadline: now + self.config.handshake_timeout,
            magic_seen: false,
        });
    }

    // ---------------------------------------------------------------- output

    /// Bytes to write to the transport now (empty if none). Write as many as the
    /// transport takes, then call [`Session::advance_transmit`] with that count.
    pub fn poll_transmit(&mut self) -> &[u8] {
        if !self.tx_partial {
            if self.ctrl_sent >= self.ctrl.len() {
                self.ctrl.clear();
                self.ctrl_sent = 0;
            }
            self.encode_ctrl();
            if self.ctrl_sent < self.ctrl.len() {
                return self.ctrl.get(self.ctrl_sent..).unwrap_or(&[]);
            }
        }
        let end = match self.state {
            State::Open | State::Closing { .. } => self.tx_end,
            State::Closed(Closure::Orderly { .. }) if self.mode() == Mode::Plain => self.tx_end,
            // After an abort, only finish a frame already started, so the peer can
            // still parse the ERROR that follows it.
            State::Closed(_) if self.tx_partial => self.frame_end_after(self.tx_sent),
            _ => return &[],
        };
        self.tx.as_ref().get(self.tx_sent..end).unwrap_or(&[])
    }

    /// Records that the transport took `n` bytes of the last [`Session::poll_transmit`].
    pub fn advance_transmit(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.tx_activity = true;
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(n as u64);
        if !self.tx_partial && self.ctrl_sent < self.ctrl.len() {
            self.ctrl_sent = self.ctrl_sent.saturating_add(n).min(self.ctrl.len());
            if self.ctrl_sent == self.ctrl.len() {
                // Every PING encoded so far has left; one still pending has not.
                self.ping_sent = self.nonce.wrapping_sub(u64::from(self.pending.ping.is_some()));
            }
            return;
        }
        let chunk_end = match self.state {
            State::Closed(_) if self.mode() == Mode::Binary => self.frame_end_after(self.tx_sent),
            _ => self.tx_end,
        };
        self.tx_sent = self.tx_sent.saturating_add(n).min(chunk_end);
        self.tx_partial = self.tx_sent < chunk_end;
        if self.mode() == Mode::Plain {
            // Plain text is never acknowledged: sent bytes are done with.
            self.tx_start = self.tx_sent;
        }
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_sent = 0;
            self.tx_end = 0;
        }
    }

    /// Encodes pending control frames into `ctrl`, most urgent first, as room allows.
    fn encode_ctrl(&mut self) {
        if self.pending.hello {
            let hello = Repr::Hello(Hello {
                max_message: self.config.max_message,
                idle_timeout_ms: millis_u32(self.config.idle_timeout),
                token: self.token,
                ack: self.received,
                name: &self.name,
            });
            if self.ctrl.extend_from_slice(&MAGIC).is_ok() && push_ctrl(&mut self.ctrl, hello) {
                self.pending.hello = false;
                self.magic_sent = true;
            }
        }
        if let (true, Some(resumed)) = (SERVER, self.pending.welcome) {
            let welcome = Repr::Welcome(Welcome {
                resumed,
                max_message: self.config.max_message,
                idle_timeout_ms: millis_u32(self.config.idle_timeout),
                token: self.token,
                ack: self.received,
            });
            if self.ctrl.extend_from_slice(&MAGIC).is_ok() && push_ctrl(&mut self.ctrl, welcome) {
                self.pending.welcome = None;
                self.magic_sent = true;
            }
        }
        if self.mode() == Mode::Plain {
            return;
        }
        let open = matches!(self.state, State::Open | State::Closing { .. });
        if !open && !matches!(self.state, State::Closed(Closure::Orderly { .. })) {
            return;
        }
        // After an orderly close only the final ACK and CLOSE can still be due; the
        // state never changes here, so `Event::Closed` comes from `poll_event`.
        if self.received > self.ack_sent && push_ctrl(&mut self.ctrl, Repr::Ack(self.received)) {
            self.ack_sent = self.received;
        }
        if let Some(code) = self.pending.close {
            if push_ctrl(&mut self.ctrl, Repr::Close(code)) {
                self.pending.close = None;
            }
        }
        if !open {
            return;
        }
        if let Some(nonce) = self.pending.pong {
            if push_ctrl(&mut self.ctrl, Repr::Pong(nonce)) {
                self.pending.pong = None;
            }
        }
        if let Some(nonce) = self.pending.ping {
            if push_ctrl(&mut self.ctrl, Repr::Ping(nonce)) {
                self.pending.ping = None;
            }
        }
    }

    /// Queues the `ERR` line for `code` (§7.2); text that does not fit is cut.
    /// Written without `core::fmt`, which would cost a firmware more than the rest of
    /// this function.
    fn push_err_line(&mut self, code: Code) {
        let line = &mut self.ctrl;
        let _ = match code {
            Code::TooLarge => push_text(line, b"ERR line too long (max ")
                .and_then(|()| push_decimal(line, self.config.max_message))
                .and_then(|()| push_text(line, b" bytes)\n")),
            code => push_text(line, b"ERR ")
                .and_then(|()| push_text(line, code.describe().as_bytes()))
                .and_then(|()| push_text(line, b"\n")),
        };
    }

    /// Drops acknowledged MSG frames from the front of `tx`: they are consecutive, the
    /// first carrying `acked + 1` (§4.3).
    fn drop_acked(&mut self, upto: u64) {
        while self.acked < upto {
            let front = self.tx.as_ref().get(self.tx_start..self.tx_end).unwrap_or(&[]);
            let Some((_, body_len)) = peek_header(front) else { break };
            self.tx_start = self
                .tx_start
                .saturating_add(wire::HEADER_LEN + body_len as usize)
                .min(self.tx_end);
            self.acked += 1;
            self.stats.acked = self.stats.acked.saturating_add(1);
        }
        if self.tx_sent < self.tx_start {
            // Only reachable from a resumed WELCOME, where nothing is in flight.
            self.tx_sent = self.tx_start;
        }
    }

    /// Highest sequence number of ours whose MSG frame has completely left on this
    /// connection (the frames in `tx` carry `acked + 1`, `acked + 2`, ...).
    fn transmitted(&self) -> u64 {
        let mut at = self.tx_start;
        let mut seq = self.acked;
        while let Some((_, body_len)) = self.tx.as_ref().get(at..self.tx_sent).and_then(peek_header) {
            at = at.saturating_add(wire::HEADER_LEN + body_len as usize);
            if at > self.tx_sent {
                break;
            }
            seq += 1;
        }
        seq
    }

    /// Rewrites the sequence numbers of unacknowledged frames as 1, 2, ... (§4.6).
    fn renumber(&mut self) {
        let mut at = self.tx_start;
        let mut seq = 1u64;
        let end = self.tx_end;
        while let Some((_, body_len)) = self.tx.as_ref().get(at..end).and_then(peek_header) {
            let seq_at = at + wire::HEADER_LEN;
            if let Some(field) = self.tx.as_mut().get_mut(seq_at..seq_at + 8) {
                field.copy_from_slice(&seq.to_be_bytes());
            }
            at = at.saturating_add(wire::HEADER_LEN + body_len as usize);
            seq += 1;
        }
        self.acked = 0;
        self.transmitted_before = 0;
        self.next_seq = seq;
    }

    fn compact_tx(&mut self) {
        if self.tx_start == 0 {
            return;
        }
        move_to_front(self.tx.as_mut(), self.tx_start, self.tx_end);
        self.tx_sent -= self.tx_start;
        self.tx_end -= self.tx_start;
        self.tx_start = 0;
    }

    /// End of the MSG frame that contains byte `pos` of `tx`.
    fn frame_end_after(&self, pos: usize) -> usize {
        let mut at = self.tx_start;
        while at < self.tx_end {
            let Some((_, body_len)) = self.tx.as_ref().get(at..self.tx_end).and_then(peek_header) else {
                break;
            };
            let end = at.saturating_add(wire::HEADER_LEN + body_len as usize).min(self.tx_end);
            if end > pos {
                return end;
            }
            at = end;
        }
        pos
    }

    // ---------------------------------------------------------------- time

    /// When [`Session::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Detect { deadline }
            | State::AwaitHello { deadline }
            | State::Pending { deadline, .. }
            | State::HelloSent { deadline, .. } => Some(deadline),
            State::Open => self.idle_deadlines(),
            State::Closing { deadline, .. } => Some(self.idle_deadlines().map_or(deadline, |d| d.min(deadline))),
            State::Closed(_) => None,
        }
    }

    fn idle_deadlines(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(idle) = self.idle_timeout() {
            consider(self.last_activity() + idle);
            if self.mode() == Mode::Binary && !self.ping_out {
                consider(self.last_rx + third(idle));
            }
        }
        if self.mode() == Mode::Plain && self.rx_end > self.rx_start && !self.config.line_gap.is_zero() {
            consider(self.last_rx + self.config.line_gap);
        }
        next
    }

    /// Last traffic the idle timer counts: received bytes; for plain text, sent too.
    fn last_activity(&self) -> Instant {
        match self.mode() {
            Mode::Binary => self.last_rx,
            Mode::Plain => self.last_rx.max(self.last_tx),
        }
    }

    /// The idle timeout in force: the smaller non-zero one of the two sides (§4.4).
    fn idle_timeout(&self) -> Option<Duration> {
        let own = self.config.idle_timeout;
        let peer = if self.mode() == Mode::Binary {
            self.peer_idle
        } else {
            Duration::ZERO
        };
        match (own.is_zero(), peer.is_zero()) {
            (true, true) => None,
            (false, true) => Some(own),
            (true, false) => Some(peer),
            (false, false) => Some(own.min(peer)),
        }
    }

    /// Runs the timers that are due at `now`: handshake, idle, keepalive, close, line gap.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Detect { deadline }
            | State::AwaitHello { deadline }
            | State::Pending { deadline, .. }
            | State::HelloSent { deadline, .. } => {
                if now >= deadline {
                    self.abort(Code::HandshakeTimeout);
                }
                return;
            }
            State::Closing { deadline, .. } if now >= deadline => {
                self.abort(Code::CloseTimeout);
                return;
            }
            State::Open | State::Closing { .. } => {}
            State::Closed(_) => return,
        }
        if let Some(idle) = self.idle_timeout() {
            if self.mode() == Mode::Plain && core::mem::take(&mut self.tx_activity) {
                self.last_tx = now;
            }
            if now >= self.last_activity() + idle {
                self.abort(Code::IdleTimeout);
                return;
            }
            if self.mode() == Mode::Binary && !self.ping_out && now >= self.last_rx + third(idle) {
                self.nonce = self.nonce.wrapping_add(1);
                self.pending.ping = Some(self.nonce);
                self.ping_out = true;
            }
        }
        if self.mode() == Mode::Plain && self.rx_end > self.rx_start && now >= self.last_rx + self.config.line_gap {
            self.flush_partial = true;
        }
    }

    // ---------------------------------------------------------------- transitions

    /// Orderly close bookkeeping (§4.5): CLOSE once all our messages are acknowledged,
    /// closed once both CLOSEs are exchanged.
    fn progress_close(&mut self) {
        let State::Closing { local, peer, sent, .. } = self.state else {
            return;
        };
        // `sent` means queued: the CLOSE is encoded at the next transmit, after any ACK.
        let sent = sent || self.unacked() == 0;
        if sent && !matches!(self.state, State::Closing { sent: true, .. }) {
            self.pending.close = Some(local.or(peer).unwrap_or(Code::Normal));
            if let State::Closing {
                local, peer, deadline, ..
            } = self.state
            {
                self.set_state(State::Closing {
                    local,
                    peer,
                    sent: true,
                    deadline,
                });
            }
        }
        if let (true, Some(peer_code)) = (sent, peer) {
            let closure = match local {
                Some(code) => Closure::Orderly { code, by_peer: false },
                None => Closure::Orderly {
                    code: peer_code,
                    by_peer: true,
                },
            };
            self.set_state(State::Closed(closure));
        }
    }

    /// Ends the session because of `code`, telling the peer with ERROR (or an `ERR`
    /// line in plain text).
    fn abort(&mut self, code: Code) -> Step {
        log_at!(debug, "aborting session: {}", code.describe());
        self.rx_start = self.rx_end;
        self.release = None;
        self.pending = Pending::default();
        // A peer still silent in Detect gets text: a binary client would have spoken.
        let text = self.mode() == Mode::Plain || (SERVER && matches!(self.state, State::Detect { .. }));
        if text {
            self.push_err_line(code);
        } else {
            self.push_magic_once();
            push_ctrl(&mut self.ctrl, Repr::Error(code));
        }
        self.set_state(State::Closed(Closure::Aborted(code)));
        Step::Idle
    }

    /// Queues our magic if it has not gone out yet: it precedes our first frame, also
    /// a REFUSE or an ERROR (§2.1).
    fn push_magic_once(&mut self) {
        if !self.magic_sent && self.ctrl.extend_from_slice(&MAGIC).is_ok() {
            self.magic_sent = true;
        }
    }

    /// Ends the session without a word: the peer does not speak the protocol.
    fn abort_silently(&mut self, code: Code) -> Step {
        self.rx_start = self.rx_end;
        self.pending = Pending::default();
        self.set_state(State::Closed(Closure::Aborted(code)));
        Step::Idle
    }

    fn set_state(&mut self, state: State) {
        #[cfg(feature = "log")]
        if log::log_enabled!(log::Level::Trace) && self.state != state {
            log::trace!("{:?} session: {} -> {}", self.role, self.state.name(), state.name());
        }
        self.state = state;
    }
}

/// What `step` found.
enum Step {
    /// Something was handled; look again.
    Again,
    /// Nothing more to do until more input.
    Idle,
    /// A message at `rx[at..at + len]`.
    Message { at: usize, len: usize, seq: u64 },
    /// A HELLO (or plain text) awaits the application's verdict.
    Hello { token: u64, ack: u64 },
}

/// True when `bytes` start with the magic, or are a prefix of it (§2.1). Byte by byte:
/// a slice comparison would take `memcmp` for four bytes.
fn is_magic_prefix(bytes: &[u8]) -> bool {
    bytes.iter().zip(MAGIC).all(|(&b, m)| b == m)
}

/// Appends one encoded frame to the control buffer; false (and nothing appended) when
/// it does not fit.
fn push_ctrl(ctrl: &mut Vec<u8, CTRL_CAP>, repr: Repr<'_>) -> bool {
    // Encoded on the stack, then copied: `resize`d room would be zeroed first, which
    // takes more code than the copy (~200 bytes, bench/footprint.sh).
    let mut frame = [0u8; MAX_CONTROL_LEN];
    let Ok(n) = repr.emit(&mut frame) else { return false };
    frame.get(..n).is_some_and(|f| ctrl.extend_from_slice(f).is_ok())
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Appends text to the control buffer byte by byte; `Err` once it is full (what fits
/// stays, so that a long line is cut rather than lost).
fn push_text(ctrl: &mut Vec<u8, CTRL_CAP>, text: &[u8]) -> Result<(), ()> {
    text.iter().try_for_each(|&b| ctrl.push(b).map_err(drop))
}

/// Appends `v` in decimal, as [`push_text`].
fn push_decimal(ctrl: &mut Vec<u8, CTRL_CAP>, mut v: u32) -> Result<(), ()> {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
        start -= 1;
        if v == 0 {
            break;
        }
    }
    push_text(ctrl, digits.get(start..).unwrap_or(&[]))
}

/// A third of `d`, the keepalive interval (§4.4). Exact, but without a 64-bit division,
/// which would cost a 32-bit firmware about 1 KiB of compiler-builtins.
fn third(d: Duration) -> Duration {
    let ms = d.as_millis();
    // 2^32 = 1 (mod 3), so the remainder comes from the two halves; what is left is a
    // multiple of 3, which multiplying by the inverse of 3 (mod 2^64) divides exactly.
    let rem = ((ms >> 32) as u32 % 3 + ms as u32 % 3) % 3;
    Duration::from_millis((ms - u64::from(rem)).wrapping_mul(0xaaaa_aaaa_aaaa_aaab))
}

/// `buf.copy_within(start..end, 0)`, in pieces that do not overlap so that it takes
/// `memcpy` (which every user of the core links) rather than `memmove` (1.5 KiB more on
/// a Cortex-M). Each piece is at most `start` bytes long.
fn move_to_front(buf: &mut [u8], start: usize, end: usize) {
    let mut to = 0usize;
    while start > 0 && to.saturating_add(start) < end {
        let from = to + start;
        let n = start.min(end - from);
        let Some((dst, src)) = buf.split_at_mut_checked(from) else {
            return;
        };
        match (dst.get_mut(to..to + n), src.get(..n)) {
            (Some(dst), Some(src)) => dst.copy_from_slice(src),
            _ => return,
        }
        to += n;
    }
}
