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
//!   `tx` is used as a ring: what an acknowledgement frees is room for the next
//!   message at once, and nothing queued is ever moved, whatever the buffer's size.
//!
//! The code is split by concern, each file owning its invariants: `config.rs`,
//! `event.rs` and `error.rs` (what the application sets and learns), `state.rs` (the
//! state enum and every transition), `input.rs` (what the received bytes are) and
//! `rx.rs` (the receive buffer), `tx_queue.rs` (this side's messages until
//! acknowledged), `control.rs` (control frames) and `timer.rs`. This file holds the
//! [`Session`] type and its API.

mod config;
mod control;
mod error;
mod event;
mod input;
mod rx;
mod state;
mod timer;
mod tx_queue;

#[cfg(test)]
mod tests;

pub use config::{Config, Mode, Role};
pub use error::{Error, Stats};
pub use event::{Closure, Event};

use control::Control;
use event::Notify;
use input::Step;
use rx::RxBuffer;
use state::State;
use timer::Timers;
use tx_queue::TxQueue;

use crate::time::{Duration, Instant};
use crate::wire::frame::msg_head;
use crate::wire::{Code, MAX_CONTROL_LEN, MAX_NAME_LEN, MSG_OVERHEAD};

/// Server sessions are compiled in (the `server` feature). Without it the server-only
/// states (Detect, AwaitHello, Pending) are never entered, and testing this constant
/// where they are handled lets the compiler drop their code.
const SERVER: bool = cfg!(feature = "server");

/// Explicit acknowledgement is compiled in (the `explicit-ack` feature); without it
/// the code that tests this constant compiles away.
const EXPLICIT_ACK: bool = cfg!(feature = "explicit-ack");

/// One soquete session over one connection. See the [module docs](self).
#[derive(Debug)]
pub struct Session<R, T> {
    role: Role,
    mode: Mode,
    config: Config,
    state: State,

    rx: RxBuffer<R>,
    eof: bool,
    flush_partial: bool,
    tx: TxQueue<T>,
    ctrl: Control,
    notify: Notify,
    timers: Timers,

    name: heapless::String<MAX_NAME_LEN>,
    token: u64,
    peer_max: u32,
    peer_idle: Duration,

    /// Next sequence number to assign to an outgoing message.
    next_seq: u64,
    /// Highest sequence number the peer acknowledged.
    acked: u64,
    /// Highest sequence number of ours completely transmitted on an earlier connection
    /// of this session: a resumed WELCOME may acknowledge up to it (§4.2).
    transmitted_before: u64,
    /// Highest sequence number received from the peer and handed to the application
    /// in an [`Event::Message`].
    taken: u64,
    /// Highest sequence number received from the peer and delivered: the application
    /// is done with it and it may be acknowledged (§1 "Acknowledged"). Implicitly the
    /// last message taken once `poll_event` is called again; with explicit
    /// acknowledgement, what [`Session::confirm`] says.
    delivered: u64,
    /// Explicit acknowledgement: at most this many messages taken and not confirmed;
    /// 0 for implicit acknowledgement.
    window: u32,
    /// Highest sequence number we acknowledged on the wire.
    ack_sent: u64,
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
        s.set_state(State::Detect { deadline });
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
            rx: RxBuffer::new(rx),
            eof: false,
            flush_partial: false,
            tx: TxQueue::new(tx),
            ctrl: Control::new(),
            notify: Notify::default(),
            timers: Timers::new(now),
            name: heapless::String::new(),
            token: 0,
            peer_max: 0,
            peer_idle: Duration::ZERO,
            next_seq: 1,
            acked: 0,
            transmitted_before: 0,
            taken: 0,
            delivered: 0,
            window: 0,
            ack_sent: 0,
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

    /// The client's name: on a server, as the peer's HELLO gave it (empty for a
    /// plain-text peer); on a client, its own.
    pub fn client_name(&self) -> &str {
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

    /// Messages taken from the peer ([`Event::Message`]) and not yet confirmed with
    /// [`Session::confirm`]; always 0 without explicit acknowledgement.
    pub fn unconfirmed(&self) -> u64 {
        if self.explicit_ack() {
            self.taken.saturating_sub(self.delivered)
        } else {
            0
        }
    }

    /// True in explicit acknowledgement mode (`Session::set_explicit_ack`).
    #[inline]
    fn explicit_ack(&self) -> bool {
        EXPLICIT_ACK && self.window > 0
    }

    /// True when no further message may be taken until the application confirms.
    fn window_full(&self) -> bool {
        self.explicit_ack() && self.unconfirmed() >= u64::from(self.window)
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// True when the session has bytes for the transport (without encoding pending
    /// control frames; [`Session::poll_transmit`] is the authority).
    pub fn wants_transmit(&self) -> bool {
        let open = matches!(self.state, State::Open | State::Closing { .. });
        self.ctrl.has_unsent()
            || self.ctrl.due != control::Due::default()
            || (open && self.mode() == Mode::Binary && self.delivered > self.ack_sent)
            || (self.tx.has_unsent() && (open || self.tx.is_partial()))
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
        self.rx.free_space()
    }

    /// Records that `n` bytes were written into [`Session::input_buffer`] at `now`.
    /// `n` larger than the free space is clamped.
    pub fn advance_input(&mut self, now: Instant, n: usize) {
        if n == 0 || self.is_closed() {
            return;
        }
        let n = self.rx.fill(n);
        self.timers.on_input(now);
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
        (self.rx.want > self.rx.capacity() && !self.is_closed()).then_some(self.rx.want)
    }

    /// The whole receive buffer, as given to the session (or to [`Session::replace_rx`]).
    ///
    /// A [`Event::Message`]'s payload lies in it. The bytes of messages taken stay where
    /// they are until [`Session::input_buffer`] makes room (it may move what is still
    /// buffered to the front) or the buffer is replaced: an application that swaps the
    /// buffer out first, with [`Session::replace_rx`], keeps every payload it was handed
    /// since the last read, at the offsets it found them, without copying them.
    pub fn rx_buffer(&self) -> &[u8] {
        self.rx.whole()
    }

    /// Bytes received and not yet consumed: a buffer given to [`Session::replace_rx`]
    /// must hold at least this many (and [`Session::MIN_RX_LEN`]).
    pub fn rx_buffered(&self) -> usize {
        self.rx.buffered()
    }

    /// True when `rx` is longer than `len` and a buffer of `len` bytes would serve as
    /// well now: it is at least [`Session::MIN_RX_LEN`], holds every buffered byte and
    /// the whole frame in progress. Ask after [`Session::poll_event`] has returned
    /// `None`, then shrink with [`Session::replace_rx`].
    pub fn rx_shrinkable(&self, len: usize) -> bool {
        len < self.rx.capacity() && len >= Self::MIN_RX_LEN && self.rx_buffered() <= len && self.rx.want <= len
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
    pub fn replace_rx(&mut self, rx: R) -> Result<R, R> {
        self.rx.replace(rx, Self::MIN_RX_LEN)
    }

    // ---------------------------------------------------------------- events

    /// The next event, or `None` when there is nothing to report until more input or
    /// a timeout. Call it until it returns `None` after every input and timeout: that
    /// is also what releases the previous message and lets its acknowledgement go out.
    pub fn poll_event(&mut self, now: Instant) -> Option<Event<'_>> {
        if let Some((len, seq)) = self.rx.held.take() {
            self.rx.consume(len);
            if !self.explicit_ack() {
                self.delivered = seq;
            }
            self.stats.received = self.stats.received.saturating_add(1);
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
                    let payload = self.rx.get(at, len);
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
        // With explicit acknowledgement the end waits until every message taken is
        // confirmed, so that the last ACK covers them (or the idle timeout ends it).
        if self.eof && !self.is_closed() && self.unconfirmed() == 0 {
            // A peer that only shut down its sending side still reads: it gets the
            // acknowledgement of everything delivered (PROTOCOL.md §4.5).
            if matches!(self.state, State::Open | State::Closing { .. }) && self.mode() == Mode::Binary {
                self.encode_ack();
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
        self.delivered = resume.unwrap_or(0);
        self.taken = self.delivered;
        self.ack_sent = self.delivered;
        if resume.is_some() {
            // §4.6: our numbering continues after what the client already has.
            self.acked = ack;
            self.next_seq = ack.saturating_add(1);
        }
        if self.mode() == Mode::Binary {
            self.ctrl.due.welcome = Some(resume.is_some());
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
        let cap = self.tx.capacity();
        let seq = self.next_seq;
        let queued = match self.mode() {
            Mode::Binary => {
                let room = cap.saturating_sub(MSG_OVERHEAD).min(self.peer_max as usize);
                if payload.len() > room {
                    return Err(Error::TooLarge {
                        max: u32::try_from(room).unwrap_or(u32::MAX),
                    });
                }
                let Ok(head) = msg_head(seq, payload.len()) else {
                    return Err(Error::Full);
                };
                self.tx.push(&head, payload)
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
                self.tx.push(payload, b"\n")
            }
        };
        if !queued {
            return Err(Error::Full);
        }
        self.next_seq = seq.saturating_add(1);
        self.stats.sent = self.stats.sent.saturating_add(1);
        Ok(seq)
    }

    /// Switches to explicit acknowledgement (PROTOCOL.md §1 "Acknowledged", §4.3): a
    /// message is *taken* when [`Session::poll_event`] returns it (its bytes are
    /// released at the next call, as always, so reception goes on) but acknowledged
    /// to the peer only once [`Session::confirm`] covers it. At most
    /// `max_unconfirmed` (at least 1) messages are taken and not confirmed: at that
    /// many the session takes no more, its receive buffer fills and the transport
    /// stops reading, so TCP slows the peer. That is backpressure, never an error;
    /// only the idle timeout ends a session whose application stops confirming.
    ///
    /// In this mode an orderly close (§4.5) is answered, and end of stream reported,
    /// only once every message taken is confirmed; a resume (§4.6) acknowledges only
    /// confirmed messages, so the peer sends the others again.
    ///
    /// Call it before the first message arrives (right after creating the session):
    /// messages released before it count as delivered. Needs the `explicit-ack`
    /// feature.
    #[cfg(feature = "explicit-ack")]
    pub fn set_explicit_ack(&mut self, max_unconfirmed: u32) {
        // Whatever was taken before counts as delivered, as it did then.
        if !self.explicit_ack() && self.rx.held.is_none() {
            self.delivered = self.taken;
        }
        self.window = max_unconfirmed.max(1);
    }

    /// Confirms every message up to and including `seq`: the application is done with
    /// them (stored, forwarded, acted on). The acknowledgement goes out at the next
    /// [`Session::poll_transmit`]; call [`Session::poll_event`] afterwards, as taking
    /// may resume and a close may complete. A `seq` already confirmed does nothing.
    ///
    /// Without explicit acknowledgement (`Session::set_explicit_ack`) messages are
    /// confirmed implicitly, and this only acknowledges a message early.
    ///
    /// # Errors
    /// [`Error::WrongState`] for a `seq` beyond the last message taken
    /// ([`Event::Message`]); nothing changes then.
    pub fn confirm(&mut self, seq: u64) -> Result<(), Error> {
        if seq > self.taken {
            return Err(Error::WrongState);
        }
        if seq > self.delivered {
            self.delivered = seq;
            self.progress_close();
        }
        Ok(())
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
                    close_queued: false,
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
        let transmitted = self.acked.saturating_add(self.tx.frames_sent());
        self.transmitted_before = self.transmitted_before.max(transmitted);
        self.rx.discard();
        self.eof = false;
        self.flush_partial = false;
        self.tx.rewind();
        self.ctrl = Control::new();
        self.notify = Notify::default();
        self.timers.on_input(now);
        self.timers.forget_pings();
        // Messages taken but not confirmed are not acknowledged: the peer sends them
        // again after the resume (§4.6).
        self.taken = self.delivered;
        self.ack_sent = self.delivered;
        self.start_handshake(now);
        Ok(())
    }

    // ---------------------------------------------------------------- output

    /// Bytes to write to the transport now (empty if none). Write as many as the
    /// transport takes, then call [`Session::advance_transmit`] with that count.
    pub fn poll_transmit(&mut self) -> &[u8] {
        if !self.tx.is_partial() {
            self.ctrl.reclaim();
            self.encode_ctrl();
            if self.ctrl.has_unsent() {
                return self.ctrl.unsent();
            }
        }
        if self.tx.is_partial() {
            // The frame in progress alone: control frames follow it at once, and after
            // an abort the peer can still parse the ERROR that follows it.
            return self.tx.rest_of_frame();
        }
        match self.state {
            State::Open | State::Closing { .. } => self.tx.unsent(),
            State::Closed(Closure::Orderly { .. }) if self.mode() == Mode::Plain => self.tx.unsent(),
            _ => &[],
        }
    }

    /// Records that the transport took `n` bytes of the last [`Session::poll_transmit`].
    pub fn advance_transmit(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.timers.tx_activity = true;
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(n as u64);
        if !self.tx.is_partial() && self.ctrl.has_unsent() {
            if self.ctrl.advance(n) {
                // Every PING encoded so far has left; one still due has not.
                let due = u32::from(self.ctrl.due.ping.is_some());
                self.timers.ping_sent = self.timers.nonce.wrapping_sub(due);
            }
            return;
        }
        self.tx.advance(n, self.mode() == Mode::Plain);
    }
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
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
