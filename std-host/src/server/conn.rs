//! One client connection: a non-blocking socket and the core session that speaks on it.
//!
//! Everything here moves bytes and events for a single connection; the event loop in
//! the parent module decides when (and how much) each connection gets to do.

use std::cell::OnceCell;
use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::ops::ControlFlow;

use log::{debug, info, warn};
use mio::Token;
use soquete_core::{Closure, Code, Event, Instant, Mode, Session, Stats};

use super::relay::{self, Outbox};
use super::Shared;
use crate::pump::{self, Endpoint, ReadStop, WriteStop};
use crate::secure::{Identity, Stream};
use crate::sink::forward::Found;

/// Most bytes read from one connection per loop iteration, so that a fast sender
/// cannot starve the others.
pub(super) const READ_BUDGET: usize = 64 * 1024;

/// The session type of one connection: buffers on the heap.
pub(super) type ServerSession = Session<Vec<u8>, Vec<u8>>;

/// Receive buffer of a new connection. It grows to the size of a larger frame when
/// one arrives (at most `min_rx_len(--max-message)`), and shrinks back once large
/// frames have stopped for [`RX_SHRINK_AFTER`], so that idle connections stay small.
pub(super) const RX_START: usize = 3072;
/// How long a new connection may stay silent while connection slots run short before
/// it is closed: much less than the handshake timeout, so that sockets that never
/// speak cannot hold the server's slots for long. (With room to spare, a person at
/// `nc` gets the whole handshake timeout to type a first line.)
pub(super) const SILENT_TIMEOUT: soquete_core::Duration = soquete_core::Duration::from_secs(3);
/// How long a grown receive buffer is kept after the last growth.
const RX_SHRINK_AFTER: soquete_core::Duration = soquete_core::Duration::from_secs(1);

/// Where a connection stands: the lifecycle, with each stage's data in its variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// No HELLO (or first plain-text byte) yet; or a resume waiting for the event
    /// loop to retire the connection that still serves its session.
    Handshake,
    /// Serving a session; counts against `--max-clients` until it leaves.
    Accepted(Served),
    /// Refused (its "refused" line is printed); the refusal is going out.
    Refused,
    /// The session is over, its last line printed and our side shut down: only the
    /// peer's last bytes are read (and dropped) until it closes or `until`, so that
    /// closing does not reset the connection and destroy our last frame in flight.
    Lingering { until: Instant },
    /// Nothing more to print about it (its "left" line is out, or it never had one).
    Gone,
}

/// An accepted session, as the server prints and resumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Served {
    /// The id printed in its lines.
    pub id: u64,
    /// The token under which it is resumable (0: not registered).
    pub token: u64,
    /// Messages printed for it (over all its connections).
    pub messages: u64,
    /// The highest sequence number printed.
    pub printed: u64,
    /// The highest sequence number written by the sink (and so acknowledged): what a
    /// resume continues after.
    pub last_seq: u64,
}

/// A resume whose session is still served by connection `old`: the event loop
/// retires `old`, then resumes the session on `new` ([`Conn::resume`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TakeOver {
    pub new: Token,
    pub old: Token,
    pub session: u64,
}

/// Why a connection went away, as printed in its "left" line.
#[derive(Debug)]
pub(super) enum Reason {
    /// The session ended as the core reports.
    Closure(Closure),
    /// The socket failed before the session ended.
    Io(String),
    /// The session did not end within the shutdown grace period.
    ShutdownTimeout,
    /// The client did not read: its queue of messages to send was full.
    Overflow(relay::Full),
    /// The session ended but the peer did not take its last bytes in time.
    Stalled,
}

impl Reason {
    /// True if the connection was lost rather than the session ended: the client may
    /// come back and resume it (PROTOCOL.md §4.6).
    fn is_loss(&self) -> bool {
        matches!(
            self,
            Reason::Io(_)
                | Reason::Stalled
                | Reason::Closure(Closure::Eof | Closure::Aborted(Code::IdleTimeout | Code::CloseTimeout))
        )
    }
}

/// The answer to a client's HELLO.
#[derive(Debug)]
enum Verdict {
    /// A new session with this id (its "connected" line is printed).
    Accept(u64),
    /// Resume the session of this token.
    Resume(u64),
    /// The session is still served by another connection.
    TakeOver(TakeOver),
    /// No room (`--max-clients`), or the server is shutting down.
    Refuse(Code),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Closure(c) => c.fmt(f),
            Reason::Io(e) => write!(f, "connection error: {e}"),
            Reason::ShutdownTimeout => f.write_str("server shut down before the session closed"),
            Reason::Stalled => f.write_str("peer stopped reading"),
            Reason::Overflow(full) => write!(
                f,
                "did not read: {} ({} bytes) waiting for it",
                soquete_text::plural(u64::try_from(full.messages).unwrap_or(u64::MAX), "message"),
                full.bytes
            ),
        }
    }
}

/// A connection and its session.
#[derive(Debug)]
pub(super) struct Conn {
    /// The socket, with the secure layer on a secure connection.
    pub stream: Stream,
    /// A secure peer's authenticated identity, once its key is accepted.
    identity: std::rc::Rc<OnceCell<Identity>>,
    /// This connection's key in the event loop.
    pub token: Token,
    pub peer: SocketAddr,
    pub session: ServerSession,
    pub state: State,
    /// The session ended (its `Closed` event was taken): the connection is dropped at
    /// this time whatever else happens, so that its last bytes get a bounded time to
    /// leave.
    pub give_up: Option<Instant>,
    /// The socket failed; the connection is dropped at the end of this iteration.
    pub error: Option<io::Error>,
    /// The peer finished sending (read returned 0).
    pub eof: bool,
    /// mio reported it readable and no read has returned `WouldBlock` since (mio is
    /// edge-triggered: nobody will tell us again).
    pub readable: bool,
    /// In the read queue.
    pub queued: bool,
    /// Counted among the connections in the handshake (`Server::handshakes`): set at
    /// accept, cleared once the state leaves `Handshake` or the connection goes.
    pub counted: bool,
    /// In this iteration's list of connections to write and check.
    pub dirty: bool,
    /// The deadline this connection has in the timer heap, if any.
    pub scheduled: Option<Instant>,
    /// Closed at this time if it has still sent nothing.
    silent_until: Instant,
    /// A takeover asked for on a secure connection not yet proven live: carried out
    /// once it is (PROTOCOL.md §10.5).
    parked: Option<TakeOver>,
    rx: RxBuffer,
    /// The client's name, for JSON message lines.
    name: String,
    /// Messages for the client that its session has no room for yet.
    pub outbox: Outbox,
    /// The session's counters when the metrics last took them.
    pub metered: Stats,
}

/// The size of a session's receive buffer, which grows for a large frame and shrinks
/// back once large frames have stopped.
#[derive(Debug)]
struct RxBuffer {
    len: usize,
    /// When it last grew.
    grown: Option<Instant>,
}

/// What [`Conn::read`] found.
#[derive(Debug, Default)]
pub(super) struct Reading {
    /// The socket may still have data: read again next iteration.
    pub more: bool,
    /// A resume that takes its session over from another connection.
    pub take_over: Option<TakeOver>,
}

impl Conn {
    pub fn new(
        stream: Stream,
        token: Token,
        peer: SocketAddr,
        session: ServerSession,
        rx_len: usize,
        now: Instant,
    ) -> Self {
        Conn {
            identity: stream.identity(),
            stream,
            token,
            peer,
            session,
            state: State::Handshake,
            give_up: None,
            error: None,
            eof: false,
            readable: false,
            queued: false,
            counted: false,
            dirty: false,
            scheduled: None,
            silent_until: now + SILENT_TIMEOUT,
            parked: None,
            rx: RxBuffer {
                len: rx_len,
                grown: None,
            },
            name: String::new(),
            outbox: Outbox::default(),
            metered: Stats::default(),
        }
    }

    /// The client's name (empty for plain-text peers and unnamed clients).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the session is over and only the peer's last bytes are read.
    pub fn is_lingering(&self) -> bool {
        matches!(self.state, State::Lingering { .. })
    }

    /// When this connection next needs attention without any I/O.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let State::Lingering { until } = self.state {
            return Some(until);
        }
        // A grown receive buffer is released after a quiet spell even if the peer
        // sends nothing more (no read would come to shrink it).
        let shrink = self.rx.grown.map(|t| t + RX_SHRINK_AFTER);
        let silent = self.is_silent().then_some(self.silent_until);
        [
            self.session.poll_timeout(),
            self.stream.poll_timeout(),
            self.give_up,
            shrink,
            silent,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Closing a connection that has sent nothing before its handshake timeout: tells
    /// it `ERR handshake timeout` (what the timeout itself would say to a peer that
    /// has not spoken), if its socket takes the line now, so that a person at `nc`
    /// learns why.
    pub fn tell_silent(&mut self) {
        let socket = self.stream.socket_mut();
        if let Err(e) = socket.write(super::limits::SILENT) {
            debug!("{}: cannot tell a silent connection: {e}", self.peer);
        }
        let _ = socket.shutdown(std::net::Shutdown::Write);
    }

    /// True while the connection has not sent a byte.
    pub fn is_silent(&self) -> bool {
        self.state == State::Handshake && self.session.stats().bytes_in == 0
    }

    /// A timer is due: releases a grown receive buffer that has been quiet long
    /// enough. The session's own timers are the event loop's business. Returns true
    /// if the connection has been silent too long while slots are `short`, and is to
    /// be closed.
    pub fn on_timer(&mut self, now: Instant, short: bool) -> bool {
        // A secure handshake past its deadline: the next flush reports it.
        self.stream.handle_timeout(now);
        if self.is_silent() && now >= self.silent_until {
            if short {
                return true;
            }
            // Looked at again later; the handshake timeout bounds it anyway.
            debug!("{}: silent, kept (slots to spare)", self.peer);
            self.silent_until = now + SILENT_TIMEOUT;
        }
        if self.rx.grown.is_some_and(|t| now >= t + RX_SHRINK_AFTER) && !self.shrink_rx(now) {
            // Part of a large frame is still buffered: try again after another quiet
            // spell rather than at every turn of the loop.
            self.rx.grown = Some(now);
        }
        false
    }

    /// Reads at most [`READ_BUDGET`] bytes into the session, handling events as they
    /// come.
    ///
    /// # Errors
    /// Only a failure to print (the output is gone).
    pub fn read(&mut self, shared: &mut Shared, now: Instant) -> io::Result<Reading> {
        if self.is_lingering() {
            return Ok(Reading {
                more: self.discard(shared, now),
                take_over: None,
            });
        }
        let (stream, mut serving) = self.split(shared, now);
        let outcome = pump::read(stream, &mut serving, now, READ_BUDGET);
        let Serving {
            printing, take_over, ..
        } = serving;
        printing?;
        if let Some(why) = self.stream.take_refusal() {
            if self.state == State::Handshake {
                let id = shared.next_id();
                shared.printer.refused(id, self.peer, &why)?;
                self.state = State::Refused;
            }
        }
        let more = match outcome.stop {
            // Spent, or stopped for a takeover: the rest waits for the next turn.
            ReadStop::Budget | ReadStop::Stopped => self.readable,
            // Closed (nothing more to read into it) or waiting for an answer: the
            // socket keeps its data until the session wants it.
            ReadStop::Full => false,
            ReadStop::WouldBlock => {
                self.readable = false;
                self.shrink_rx(now);
                false
            }
            ReadStop::Eof => {
                self.readable = false;
                self.eof = true;
                self.session.handle_eof(now);
                let take_over = self.drain(shared, now)?;
                if let Some(t) = self.hold_until_live(take_over) {
                    return Ok(Reading {
                        more: false,
                        take_over: Some(t),
                    });
                }
                false
            }
            ReadStop::Failed(e) => {
                debug!("{}: read: {e}", self.peer);
                self.readable = false;
                self.error = Some(e);
                false
            }
        };
        Ok(Reading {
            more,
            take_over: self.hold_until_live(take_over),
        })
    }

    /// A takeover waits until the connection that asks for it is proven live: a
    /// replayed INIT must not end the client's connection (PROTOCOL.md §10.5). The
    /// handshake is answered meanwhile, so that the client can prove it.
    fn hold_until_live(&mut self, take_over: Option<TakeOver>) -> Option<TakeOver> {
        if let Some(t) = take_over {
            if !self.stream.awaits_liveness() {
                return Some(t);
            }
            debug!("{}: resume held until the secure handshake completes", self.peer);
            self.stream.respond_early();
            self.parked = Some(t);
        }
        if self.stream.awaits_liveness() {
            return None;
        }
        self.parked.take()
    }

    /// The socket, and the rest of the connection at work on `shared`.
    fn split<'a>(&'a mut self, shared: &'a mut Shared, now: Instant) -> (&'a mut Stream, Serving<'a>) {
        let serving = Serving {
            session: &mut self.session,
            state: &mut self.state,
            give_up: &mut self.give_up,
            rx: &mut self.rx,
            name: &mut self.name,
            identity: &self.identity,
            token: self.token,
            peer: self.peer,
            shared,
            now,
            printing: Ok(()),
            take_over: None,
        };
        (&mut self.stream, serving)
    }

    /// Returns a grown receive buffer to [`RX_START`] once large frames have stopped.
    /// True if it did.
    fn shrink_rx(&mut self, now: Instant) -> bool {
        let quiet = self.rx.grown.is_some_and(|t| now >= t + RX_SHRINK_AFTER);
        let shrink = self.rx.len > RX_START && quiet && self.session.rx_shrinkable(RX_START);
        if shrink && self.session.replace_rx(vec![0; RX_START]).is_ok() {
            debug!("{}: receive buffer {} -> {RX_START} bytes", self.peer, self.rx.len);
            self.rx = RxBuffer {
                len: RX_START,
                grown: None,
            };
            return true;
        }
        false
    }

    /// Lingering: reads and drops what the peer still sends. Returns true if the socket
    /// may still have data.
    fn discard(&mut self, shared: &mut Shared, now: Instant) -> bool {
        let outcome = pump::read(
            self.stream.socket_mut(),
            &mut Discard(&mut shared.scratch),
            now,
            READ_BUDGET,
        );
        match outcome.stop {
            ReadStop::Budget => true,
            ReadStop::Eof => {
                self.eof = true;
                self.readable = false;
                false
            }
            ReadStop::Failed(e) => {
                self.readable = false;
                self.error = Some(e);
                false
            }
            ReadStop::WouldBlock | ReadStop::Full | ReadStop::Stopped => {
                self.readable = false;
                false
            }
        }
    }

    /// Takes every event the session has: prints messages, answers HELLO. Returns a
    /// takeover for the event loop to carry out, if a resume found its session served
    /// by another connection (the events after it wait until then).
    ///
    /// # Errors
    /// Only a failure to print.
    pub fn drain(&mut self, shared: &mut Shared, now: Instant) -> io::Result<Option<TakeOver>> {
        let (_, mut serving) = self.split(shared, now);
        serving.drain()?;
        Ok(serving.take_over)
    }

    /// Resumes the session of `token` (PROTOCOL.md §4.6) from where its last connection
    /// left off, then takes the events that follow. A session that is gone by now (it
    /// expired) starts afresh instead.
    ///
    /// # Errors
    /// Only a failure to print.
    pub fn resume(&mut self, shared: &mut Shared, token: u64, now: Instant) -> io::Result<Option<TakeOver>> {
        let (_, mut serving) = self.split(shared, now);
        serving.resume(token, 0)?;
        serving.drain()?;
        Ok(serving.take_over)
    }

    /// Forwarding: session `token`, which this server did not know when its client
    /// asked to resume it, is stored in the stream up to message `last`: the session
    /// resumes from there (PROTOCOL.md §4.6), then the events that follow are taken.
    /// Nothing happens if the handshake is over meanwhile (timed out, closed).
    ///
    /// # Errors
    /// Only a failure to print.
    pub fn resume_stored(&mut self, shared: &mut Shared, found: Found, now: Instant) -> io::Result<Option<TakeOver>> {
        if self.state != State::Handshake || self.session.is_closed() {
            return Ok(None);
        }
        let (_, mut serving) = self.split(shared, now);
        serving.resume_stored(found)?;
        serving.drain()?;
        Ok(serving.take_over)
    }

    /// Retires this connection because its client resumed the session on another one:
    /// the session stays registered with what was printed so far. Nothing more is read.
    /// Its "taken over" line names `by`, the new connection's address (no line if
    /// that connection is gone already).
    ///
    /// # Errors
    /// Only a failure to print.
    pub fn replaced(&mut self, shared: &mut Shared, by: Option<SocketAddr>, now: Instant) -> io::Result<()> {
        if let State::Accepted(served) = self.state {
            if let Some(by) = by {
                shared.printer.taken_over(served.id, self.peer, by, served.messages)?;
            }
            shared
                .registry
                .detach(served.token, served.last_seq, served.messages, now);
            shared.registry.printed(served.token, served.printed);
            shared.active = shared.active.saturating_sub(1);
        }
        self.state = State::Gone;
        Ok(())
    }

    /// The sink has written every message up to `seq`: acknowledges them, then takes
    /// the events this allows (messages held back by the unconfirmed cap, a close
    /// that waited for them).
    ///
    /// # Errors
    /// Only a failure to print.
    pub fn confirm(&mut self, shared: &mut Shared, seq: u64, now: Instant) -> io::Result<Option<TakeOver>> {
        if self.is_lingering() {
            return Ok(None);
        }
        if let Err(e) = self.session.confirm(seq) {
            debug!("{}: confirm {seq}: {e}", self.peer);
            return Ok(None);
        }
        if let State::Accepted(served) = &mut self.state {
            // One confirmation may cover several messages (the sink's marks).
            if self.session.mode() == Mode::Binary {
                shared
                    .metrics
                    .acknowledgements_sent
                    .inc_by(seq.saturating_sub(served.last_seq));
            }
            served.last_seq = served.last_seq.max(seq);
        }
        self.drain(shared, now)
    }

    /// Writes what the session has until the socket would block.
    pub fn write(&mut self) {
        if let WriteStop::Failed(e) = pump::write(&mut self.stream, &mut self.session).stop {
            debug!("{}: write: {e}", self.peer);
            self.error = Some(e);
            return;
        }
        // What the secure layer queued by itself, or its failure.
        match self.stream.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                debug!("{}: {e}", self.peer);
                self.error = Some(e);
            }
            _ => {}
        }
    }

    /// Prints the "left" line (once) and releases the session's `--max-clients` slot.
    /// A binary session whose connection was lost is kept for a resume instead, and
    /// its line says "lost".
    pub fn leave(&mut self, shared: &mut Shared, reason: Reason, now: Instant) -> io::Result<()> {
        if let State::Accepted(served) = self.state {
            let resumable = served.token != 0 && reason.is_loss() && !shared.shutting_down;
            if resumable && shared.registry.get(served.token).is_some() {
                let window = crate::time::human_core(shared.registry.window());
                shared
                    .registry
                    .detach(served.token, served.last_seq, served.messages, now);
                shared.registry.printed(served.token, served.printed);
                shared
                    .printer
                    .lost(served.id, self.peer, &reason, served.messages, window)?;
            } else {
                shared.registry.remove(served.token);
                shared.printer.left(served.id, self.peer, &reason, served.messages)?;
            }
            shared.active = shared.active.saturating_sub(1);
        }
        self.state = State::Gone;
        Ok(())
    }

    /// Our side is done: shuts it down and reads what the peer still sends until it
    /// closes or `LINGER` has passed.
    pub fn linger(&mut self, until: Instant) {
        if let Err(e) = self.stream.shutdown(std::net::Shutdown::Write) {
            debug!("{}: shutdown: {e}", self.peer);
        }
        self.state = State::Lingering { until };
    }

    /// Why the session is over, for its "left" line.
    pub fn reason(&self) -> Reason {
        match (self.session.closure(), &self.error) {
            (Some(c), _) => Reason::Closure(c),
            (None, Some(e)) => Reason::Io(e.to_string()),
            (None, None) => Reason::Stalled,
        }
    }
}

/// Lingering: bytes read into a scratch buffer and dropped.
struct Discard<'a>(&'a mut [u8]);

impl Endpoint for Discard<'_> {
    fn input_buffer(&mut self) -> &mut [u8] {
        self.0
    }

    fn received(&mut self, _now: Instant, _n: usize) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    fn output(&mut self) -> &[u8] {
        &[]
    }

    fn sent(&mut self, _n: usize) {}
}

/// One connection's session at work: the pump's endpoint while reading, and what
/// handles the session's events (printing, answering HELLO, resuming).
struct Serving<'a> {
    session: &'a mut ServerSession,
    state: &'a mut State,
    give_up: &'a mut Option<Instant>,
    rx: &'a mut RxBuffer,
    name: &'a mut String,
    /// A secure peer's authenticated identity.
    identity: &'a OnceCell<Identity>,
    token: Token,
    peer: SocketAddr,
    shared: &'a mut Shared,
    now: Instant,
    /// A print failed: reading stops and the error goes to the event loop.
    printing: io::Result<()>,
    /// A resume is waiting for the event loop to retire another connection.
    take_over: Option<TakeOver>,
}

impl Endpoint for Serving<'_> {
    fn input_buffer(&mut self) -> &mut [u8] {
        if self.session.input_buffer().is_empty() {
            self.grow_rx();
        }
        self.session.input_buffer()
    }

    fn received(&mut self, now: Instant, n: usize) -> ControlFlow<()> {
        self.session.advance_input(now, n);
        self.printing = self.drain();
        if self.printing.is_err() || self.take_over.is_some() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn output(&mut self) -> &[u8] {
        self.session.poll_transmit()
    }

    fn sent(&mut self, n: usize) {
        self.session.advance_transmit(n);
    }
}

impl Serving<'_> {
    /// Gives the session the bigger receive buffer it asks for (a frame larger than
    /// the current one is coming).
    fn grow_rx(&mut self) {
        let Some(want) = self.session.rx_wanted() else {
            return;
        };
        if self.session.replace_rx(vec![0; want]).is_ok() {
            debug!("{}: receive buffer {} -> {want} bytes", self.peer, self.rx.len);
            *self.rx = RxBuffer {
                len: want,
                grown: Some(self.now),
            };
        }
    }

    /// Takes every event the session has, until a takeover must wait for the loop.
    ///
    /// Long runs of payload that print as they are stay in the receive buffer (see
    /// [`Lines`](crate::sink::Lines)): if any did (and the buffer is not much larger
    /// than they are), the buffer goes with the lines, and the session goes on with a
    /// fresh one from the sink's pool before it reads again.
    fn drain(&mut self) -> io::Result<()> {
        let lines = self.shared.printer.get_mut();
        lines.splice_from(self.session.rx_buffer());
        let taken = self.take_events();
        if self.shared.printer.get_mut().end_splice(self.session.rx_buffer()) {
            let len = self.session.rx_buffer().len();
            let fresh = self.shared.sink.buffer(len);
            // Never refused: the fresh buffer is as long as the one it replaces.
            let old = self
                .session
                .replace_rx(fresh)
                .unwrap_or_else(|_| self.session.rx_buffer().to_vec());
            self.shared.printer.get_mut().attach(old);
        }
        taken
    }

    /// [`Serving::drain`]'s events, the receive buffer aside.
    fn take_events(&mut self) -> io::Result<()> {
        let (peer, now) = (self.peer, self.now);
        while self.take_over.is_none() {
            let Some(event) = self.session.poll_event(now) else {
                break;
            };
            let shared = &mut *self.shared;
            // What to do once the event (which borrows the session) is gone.
            let verdict = match event {
                Event::Hello { .. } if shared.shutting_down => Some(Verdict::Refuse(Code::Shutdown)),
                Event::Hello { .. } if shared.auth_required() && self.identity.get().is_none() => {
                    Some(Verdict::Refuse(Code::AuthRequired))
                }
                Event::Hello { mode, name, token, .. } => {
                    let key = self.identity.get().map(|i| i.key);
                    let known = shared
                        .registry
                        .get(token)
                        .filter(|_| mode == Mode::Binary && token != 0)
                        .filter(|_| shared.auth.as_ref().is_none_or(|a| a.may_resume(token, key)));
                    match known.map(|e| e.live) {
                        Some(Some(old)) if old != self.token => Some(Verdict::TakeOver(TakeOver {
                            new: self.token,
                            old,
                            session: token,
                        })),
                        // Forwarding: another server may have served it (or served
                        // it since it was lost here); the stream says where it stands
                        // (answered in `resume_stored`).
                        _ if token != 0
                            && mode == Mode::Binary
                            && shared.forward.is_some()
                            && shared.registry.enabled()
                            && shared.active < shared.max_clients =>
                        {
                            shared.lookup(self.token, token);
                            None
                        }
                        Some(_) => Some(Verdict::Resume(token)),
                        None if shared.active >= shared.max_clients => Some(Verdict::Refuse(Code::ServerFull)),
                        None => {
                            if token != 0 {
                                info!("{peer}: session {token:#x} is not known (any more); starting a new one");
                            }
                            let id = shared.next_id();
                            let auth = self.identity.get().map(|i| i.name.as_str());
                            shared.printer.connected_auth(id, peer, name, mode, auth)?;
                            Some(Verdict::Accept(id))
                        }
                    }
                }
                Event::Message { seq, payload } => {
                    let auth = self.identity.get();
                    let (id, session, again) = match self.state {
                        // Sent again after a resume, printed before the sink wrote it
                        // and the server could acknowledge it: printed once.
                        State::Accepted(served) if seq <= served.printed => (served.id, served.token, true),
                        State::Accepted(served) => {
                            served.messages += 1;
                            served.printed = seq;
                            (served.id, served.token, false)
                        }
                        _ => (0, 0, false),
                    };
                    // Acknowledged once its line is written or JetStream stored it
                    // (`Conn::confirm`).
                    shared.message(self.token, id, peer, self.name, auth, session, seq, payload, again)?;
                    if !again {
                        shared.on_message(self.token, id, self.name, payload);
                    }
                    None
                }
                Event::Established { mode, resumed } => {
                    debug!("{peer}: established ({mode:?}, resumed: {resumed})");
                    None
                }
                Event::Acked { .. } => None,
                Event::PeerClosing(code) => {
                    debug!("{peer}: peer closing: {code}");
                    None
                }
                Event::Closed(closure) => {
                    self.on_closed(closure)?;
                    None
                }
            };
            match verdict {
                Some(Verdict::Accept(id)) => self.accept_new(id)?,
                Some(Verdict::Resume(token)) => self.resume(token, 0)?,
                // The session waits in the handshake until the event loop has retired
                // the other connection and calls `resume`.
                Some(Verdict::TakeOver(t)) => self.take_over = Some(t),
                Some(Verdict::Refuse(code)) => self.refuse(code)?,
                None => {}
            }
        }
        Ok(())
    }

    fn accept_new(&mut self, id: u64) -> io::Result<()> {
        self.name.clear();
        self.name.push_str(self.session.client_name());
        let shared = &mut *self.shared;
        let token = shared.session_token();
        if let Err(e) = self.session.accept(token, None) {
            warn!("{}: cannot accept session: {e}", self.peer);
        }
        shared.active += 1;
        shared.metrics.session_started(self.session.mode());
        let resumable = self.session.mode() == Mode::Binary;
        *self.state = State::Accepted(Served {
            id,
            token: if resumable { token } else { 0 },
            messages: 0,
            printed: 0,
            last_seq: 0,
        });
        if resumable {
            self.keep_for_resume(token, id)?;
        }
        Ok(())
    }

    /// Keeps session `token` (#`id`) for a resume: bound to this peer's key in the
    /// secure mode, and in the registry, which may forget its oldest lost session.
    fn keep_for_resume(&mut self, token: u64, id: u64) -> io::Result<()> {
        let shared = &mut *self.shared;
        if let Some(auth) = &shared.auth {
            let registry = &shared.registry;
            let key = self.identity.get().map(|i| i.key);
            let limit = shared.max_clients.saturating_mul(8).saturating_add(128);
            auth.bind(token, key, limit, |t| registry.get(t).is_some());
        }
        if let Some(gone) = shared.registry.insert(token, id, self.peer, self.token) {
            shared
                .printer
                .left(gone.id, gone.peer, "not resumed: too many lost sessions", gone.messages)?;
        }
        Ok(())
    }

    /// Resumes session `token` from the registry, after message `stored` at least (what
    /// the stream holds of it, when forwarding).
    fn resume(&mut self, token: u64, stored: u64) -> io::Result<()> {
        let shared = &mut *self.shared;
        let entry = shared.registry.get(token).copied().filter(|e| e.live.is_none());
        let Some(entry) = entry else {
            let id = shared.next_id();
            let auth = self.identity.get().map(|i| i.name.as_str());
            shared
                .printer
                .connected_auth(id, self.peer, self.session.client_name(), Mode::Binary, auth)?;
            return self.accept_new(id);
        };
        if shared.shutting_down {
            return self.refuse(Code::Shutdown);
        }
        if shared.active >= shared.max_clients {
            return self.refuse(Code::ServerFull);
        }
        self.name.clear();
        self.name.push_str(self.session.client_name());
        let received = entry.received.max(stored);
        // Counted over every server it went through, when forwarding.
        let messages = entry.messages.max(stored);
        if let Err(e) = self.session.accept(token, Some(received)) {
            warn!("{}: cannot resume session: {e}", self.peer);
        }
        *self.state = State::Accepted(Served {
            id: entry.id,
            token,
            messages,
            printed: entry.printed.max(received),
            last_seq: received,
        });
        shared.active += 1;
        shared.metrics.resumes.inc();
        shared.registry.attach(token, self.peer, self.token);
        let auth = self.identity.get().map(|i| i.name.as_str());
        shared.printer.resumed_auth(entry.id, self.peer, messages, auth)
    }

    fn resume_stored(&mut self, found: Found) -> io::Result<()> {
        let Found { token, last, owner, .. } = found;
        let shared = &mut *self.shared;
        if shared.shutting_down {
            return self.refuse(Code::Shutdown);
        }
        let key = self.identity.get().map(|i| i.key);
        if !owner.admits(key) {
            // Opened by another key (or without one, or with one): not this peer's,
            // on this server or any other. A new session, as for a token not known.
            info!(
                "{}: session {token:#x} was opened by another peer; starting a new one",
                self.peer
            );
            if shared.active >= shared.max_clients {
                return self.refuse(Code::ServerFull);
            }
            let id = shared.next_id();
            let auth = self.identity.get().map(|i| i.name.as_str());
            let (name, mode) = (self.session.client_name(), self.session.mode());
            shared.printer.connected_auth(id, self.peer, name, mode, auth)?;
            return self.accept_new(id);
        }
        if shared.registry.get(token).is_some() && shared.auth.as_ref().is_some_and(|a| !a.may_resume(token, key)) {
            // Known here, and opened by another key (or none): not this peer's.
            return self.refuse(Code::UnknownSession);
        }
        if let Some(entry) = shared.registry.get(token) {
            // Another connection registered the session here meanwhile.
            return match entry.live {
                Some(old) if old != self.token => {
                    self.take_over = Some(TakeOver {
                        new: self.token,
                        old,
                        session: token,
                    });
                    Ok(())
                }
                _ => self.resume(token, last),
            };
        }
        if shared.active >= shared.max_clients {
            return self.refuse(Code::ServerFull);
        }
        let id = shared.next_id();
        self.name.clear();
        self.name.push_str(self.session.client_name());
        if let Err(e) = self.session.accept(token, Some(last)) {
            warn!("{}: cannot resume session: {e}", self.peer);
        }
        // Its key from now on, as for a session opened here.
        self.keep_for_resume(token, id)?;
        *self.state = State::Accepted(Served {
            id,
            token,
            messages: last,
            printed: last,
            last_seq: last,
        });
        self.shared.active += 1;
        info!(
            "{}: session {token:#x} resumed from the stream after message {last}",
            self.peer
        );
        let auth = self.identity.get().map(|i| i.name.as_str());
        self.shared.printer.resumed_auth(id, self.peer, last, auth)
    }

    fn refuse(&mut self, code: Code) -> io::Result<()> {
        let id = self.shared.next_id();
        if let Err(e) = self.session.refuse(code) {
            warn!("{}: cannot refuse session: {e}", self.peer);
        }
        self.shared.printer.refused(id, self.peer, code.describe())?;
        self.shared.metrics.refused(code);
        *self.state = State::Refused;
        Ok(())
    }

    fn on_closed(&mut self, closure: Closure) -> io::Result<()> {
        // The last bytes (ERROR, CLOSE, an ERR line) get a bounded time to leave.
        *self.give_up = Some(self.now + self.session.config().close_timeout);
        let who = match *self.state {
            State::Accepted(served) => format!("#{} {}", served.id, self.peer),
            _ => self.peer.to_string(),
        };
        if let Closure::Aborted(code) | Closure::PeerError(code) = closure {
            self.shared.metrics.aborted(code);
        }
        match closure {
            Closure::Aborted(Code::WrongProtocol) => {
                warn!("{who}: peer speaks another protocol (HTTP, TLS or binary data) on this port; closed")
            }
            Closure::Aborted(code) | Closure::PeerError(code) if self.session.mode() == Mode::Binary => {
                info!("{who}: {closure} ({code})")
            }
            _ => debug!("{who}: {closure}"),
        }
        if *self.state == State::Handshake {
            if let Closure::Refused(code) = closure {
                // Refused by the core itself (e.g. an unsupported protocol version).
                let id = self.shared.next_id();
                self.shared.printer.refused(id, self.peer, code.describe())?;
                self.shared.metrics.refused(code);
                *self.state = State::Refused;
            } else {
                if closure != Closure::Aborted(Code::WrongProtocol) {
                    info!("{}: {closure} before the handshake completed", self.peer);
                }
                *self.state = State::Gone;
            }
        }
        Ok(())
    }
}
