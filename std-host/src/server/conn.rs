//! One client connection: a non-blocking socket and the core session that speaks on it.
//!
//! Everything here moves bytes and events for a single connection; the event loop in
//! the parent module decides when (and how much) each connection gets to do.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::Token;
use soquete_core::{Closure, Code, Event, Instant, Mode, Session};

use super::Shared;

/// Most bytes read from one connection per loop iteration, so that a fast sender
/// cannot starve the others.
pub(super) const READ_BUDGET: usize = 64 * 1024;

/// The session type of one connection: buffers on the heap.
pub(super) type ServerSession = Session<Vec<u8>, Vec<u8>>;

/// Receive buffer of a new connection. It grows to the size of a larger frame when
/// one arrives (at most `min_rx_len(--max-message)`), and shrinks back once large
/// frames have stopped for [`RX_SHRINK_AFTER`], so that idle connections stay small.
pub(super) const RX_START: usize = 4096;
/// How long a grown receive buffer is kept after the last growth.
const RX_SHRINK_AFTER: soquete_core::Duration = soquete_core::Duration::from_secs(1);

/// Where a connection stands with the application (what has been printed about it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// No HELLO (or first plain-text byte) yet.
    Handshake,
    /// Accepted as session `id`; counts against `--max-clients` until it leaves.
    Accepted { id: u64 },
    /// Refused (a "refused" line was printed).
    Refused,
    /// Its "left" line was printed (or it never had one).
    Gone,
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
    /// The session of this token is still served by another connection: the event
    /// loop retires that one first, then calls [`Conn::resume`].
    TakeOver(u64, Token),
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
        }
    }
}

/// A connection and its session.
#[derive(Debug)]
pub(super) struct Conn {
    pub stream: TcpStream,
    /// This connection's key in the event loop.
    pub token: Token,
    pub peer: SocketAddr,
    pub session: ServerSession,
    pub phase: Phase,
    /// Messages printed for this session (over all its connections).
    pub messages: u64,
    /// The highest sequence number printed: what a resume continues after.
    pub last_seq: u64,
    /// The token under which the session is resumable (0: not registered).
    pub session_token: u64,
    /// Set by `Event::Closed`.
    pub closure: Option<Closure>,
    /// The socket failed; the connection is dropped at the end of this iteration.
    pub error: Option<io::Error>,
    /// mio reported it readable and no read has returned `WouldBlock` since (mio is
    /// edge-triggered: nobody will tell us again).
    pub readable: bool,
    /// In the read queue.
    pub queued: bool,
    /// In this iteration's list of connections to write and check.
    pub dirty: bool,
    /// The peer finished sending (read returned 0).
    pub eof: bool,
    /// The session is over and our side is shut down: only discarding the peer's last
    /// bytes (so that closing does not reset the connection and lose our last frame).
    pub lingering: bool,
    /// The connection is dropped at this time whatever state it is in.
    pub give_up: Option<Instant>,
    /// The deadline this connection has in the timer heap, if any.
    pub scheduled: Option<Instant>,
    /// Length of the session's receive buffer.
    rx_len: usize,
    /// When the receive buffer last grew.
    rx_grown: Option<Instant>,
}

impl Conn {
    pub fn new(stream: TcpStream, token: Token, peer: SocketAddr, session: ServerSession, rx_len: usize) -> Self {
        Conn {
            stream,
            token,
            peer,
            session,
            phase: Phase::Handshake,
            messages: 0,
            last_seq: 0,
            session_token: 0,
            closure: None,
            error: None,
            readable: false,
            queued: false,
            dirty: false,
            eof: false,
            lingering: false,
            give_up: None,
            scheduled: None,
            rx_len,
            rx_grown: None,
        }
    }

    /// When this connection next needs attention without any I/O.
    pub fn next_deadline(&self) -> Option<Instant> {
        let session = if self.lingering {
            None
        } else {
            self.session.poll_timeout()
        };
        match (session, self.give_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads at most [`READ_BUDGET`] bytes into the session, handling events as they
    /// come. Returns true if the socket may still have data (read again next time).
    pub fn read(&mut self, shared: &mut Shared, now: Instant) -> io::Result<bool> {
        if self.lingering {
            return Ok(self.discard(shared));
        }
        let mut budget = READ_BUDGET;
        while budget > 0 && self.error.is_none() {
            if self.session.input_buffer().is_empty() && !self.grow_rx(now) {
                // Closed (nothing more to read into it) or waiting for an answer: the
                // socket keeps its data until the session wants it.
                return Ok(false);
            }
            let buf = self.session.input_buffer();
            let want = buf.len().min(budget);
            let Some(buf) = buf.get_mut(..want) else { break };
            match self.stream.read(buf) {
                Ok(0) => {
                    self.readable = false;
                    self.eof = true;
                    self.session.handle_eof(now);
                    self.drain(shared, now)?;
                    return Ok(false);
                }
                Ok(n) => {
                    self.session.advance_input(now, n);
                    budget -= n;
                    self.drain(shared, now)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    self.shrink_rx(now);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{}: read: {e}", self.peer);
                    self.readable = false;
                    self.error = Some(e);
                }
            }
        }
        Ok(self.readable && self.error.is_none())
    }

    /// Gives the session the bigger receive buffer it asks for (a frame larger than
    /// the current one is coming). Returns true if it got one.
    fn grow_rx(&mut self, now: Instant) -> bool {
        let Some(want) = self.session.rx_wanted() else {
            return false;
        };
        match self.session.replace_rx(vec![0; want]) {
            Ok(_) => {
                debug!("{}: receive buffer {} -> {want} bytes", self.peer, self.rx_len);
                self.rx_len = want;
                self.rx_grown = Some(now);
                true
            }
            Err(_) => false,
        }
    }

    /// Returns a grown receive buffer to [`RX_START`] once large frames have stopped.
    fn shrink_rx(&mut self, now: Instant) {
        let quiet = self.rx_grown.is_some_and(|t| now >= t + RX_SHRINK_AFTER);
        let shrink = self.rx_len > RX_START && quiet && self.session.rx_shrinkable(RX_START);
        if shrink && self.session.replace_rx(vec![0; RX_START]).is_ok() {
            self.rx_len = RX_START;
            self.rx_grown = None;
        }
    }

    /// Lingering: reads and drops what the peer still sends. Returns true if the socket
    /// may still have data.
    fn discard(&mut self, shared: &mut Shared) -> bool {
        let mut budget = READ_BUDGET;
        while budget > 0 {
            match self.stream.read(&mut shared.scratch) {
                Ok(0) => {
                    self.eof = true;
                    self.readable = false;
                    return false;
                }
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.readable = false;
                    self.error = Some(e);
                    return false;
                }
            }
        }
        true
    }

    /// Takes every event the session has: prints messages, answers HELLO.
    ///
    /// # Errors
    /// Only a failure to print (standard output is gone).
    pub fn drain(&mut self, shared: &mut Shared, now: Instant) -> io::Result<()> {
        let peer = self.peer;
        while let Some(event) = self.session.poll_event(now) {
            // What to do once the event (which borrows the session) is gone.
            let verdict = match event {
                Event::Hello { .. } if shared.shutting_down => Some(Verdict::Refuse(Code::Shutdown)),
                Event::Hello { mode, name, token, .. } => {
                    let known = shared
                        .registry
                        .get(token)
                        .filter(|_| mode == Mode::Binary && token != 0);
                    match known.map(|e| e.live) {
                        Some(Some(other)) if other != self.token => Some(Verdict::TakeOver(token, other)),
                        Some(_) => Some(Verdict::Resume(token)),
                        None if shared.active >= shared.max_clients => Some(Verdict::Refuse(Code::ServerFull)),
                        None => {
                            if token != 0 {
                                info!("{peer}: session {token:#x} is not known (any more); starting a new one");
                            }
                            let id = shared.next_id();
                            shared.printer.connected(id, peer, name, mode)?;
                            Some(Verdict::Accept(id))
                        }
                    }
                }
                Event::Message { seq, payload } => {
                    let id = match self.phase {
                        Phase::Accepted { id } => id,
                        _ => 0,
                    };
                    shared.printer.message(id, peer, seq, payload)?;
                    self.messages += 1;
                    self.last_seq = seq;
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
                    self.on_closed(shared, closure, now)?;
                    None
                }
            };
            match verdict {
                Some(Verdict::Accept(id)) => self.accept_new(shared, id)?,
                Some(Verdict::Resume(token)) => self.resume(shared, token)?,
                Some(Verdict::TakeOver(token, other)) => {
                    // The session waits in the handshake until the event loop has
                    // retired `other` and calls `resume`.
                    shared.takeovers.push((self.token, token, other));
                    return Ok(());
                }
                Some(Verdict::Refuse(code)) => self.refuse(shared, code)?,
                None => {}
            }
        }
        Ok(())
    }

    fn accept_new(&mut self, shared: &mut Shared, id: u64) -> io::Result<()> {
        let token = shared.session_token();
        if let Err(e) = self.session.accept(token, None) {
            warn!("{}: cannot accept session: {e}", self.peer);
        }
        self.phase = Phase::Accepted { id };
        shared.active += 1;
        if self.session.mode() == Mode::Binary {
            self.session_token = token;
            if let Some(gone) = shared.registry.insert(token, id, self.peer, self.token) {
                shared
                    .printer
                    .left(gone.id, gone.peer, "not resumed: too many lost sessions", gone.messages)?;
            }
        }
        Ok(())
    }

    /// Resumes the session of `token` (PROTOCOL.md §4.6) from where its last connection
    /// left off, then takes the events that follow. A session that is gone by now (it
    /// expired) starts afresh instead.
    ///
    /// # Errors
    /// Only a failure to print.
    pub fn resume(&mut self, shared: &mut Shared, token: u64) -> io::Result<()> {
        let entry = shared.registry.get(token).copied().filter(|e| e.live.is_none());
        let Some(entry) = entry else {
            let id = shared.next_id();
            shared
                .printer
                .connected(id, self.peer, self.session.client_name(), Mode::Binary)?;
            return self.accept_new(shared, id);
        };
        if shared.shutting_down {
            return self.refuse(shared, Code::Shutdown);
        }
        if shared.active >= shared.max_clients {
            return self.refuse(shared, Code::ServerFull);
        }
        if let Err(e) = self.session.accept(token, Some(entry.received)) {
            warn!("{}: cannot resume session: {e}", self.peer);
        }
        self.phase = Phase::Accepted { id: entry.id };
        self.messages = entry.messages;
        self.last_seq = entry.received;
        self.session_token = token;
        shared.active += 1;
        shared.registry.attach(token, self.peer, self.token);
        shared.printer.resumed(entry.id, self.peer, entry.messages)?;
        Ok(())
    }

    fn refuse(&mut self, shared: &mut Shared, code: Code) -> io::Result<()> {
        let id = shared.next_id();
        if let Err(e) = self.session.refuse(code) {
            warn!("{}: cannot refuse session: {e}", self.peer);
        }
        shared.printer.refused(id, self.peer, code.describe())?;
        self.phase = Phase::Refused;
        Ok(())
    }

    /// Retires this connection because its client resumed the session on another one:
    /// the session stays registered with what was printed so far. Nothing more is read.
    pub fn replaced(&mut self, shared: &mut Shared, now: Instant) {
        if let Phase::Accepted { id } = self.phase {
            debug!("#{id} {}: replaced by a resumed connection", self.peer);
            shared
                .registry
                .detach(self.session_token, self.last_seq, self.messages, now);
            shared.active = shared.active.saturating_sub(1);
        }
        self.phase = Phase::Gone;
    }

    fn on_closed(&mut self, shared: &mut Shared, closure: Closure, now: Instant) -> io::Result<()> {
        self.closure = Some(closure);
        // The last bytes (ERROR, CLOSE, an ERR line) get a bounded time to leave.
        self.give_up = Some(now + self.session.config().close_timeout);
        let who = match self.phase {
            Phase::Accepted { id } => format!("#{id} {}", self.peer),
            _ => self.peer.to_string(),
        };
        match closure {
            Closure::Aborted(Code::WrongProtocol) => {
                warn!("{who}: peer speaks another protocol (HTTP or TLS?) on this port; closed")
            }
            Closure::Aborted(code) | Closure::PeerError(code) if self.session.mode() == Mode::Binary => {
                info!("{who}: {closure} ({code})")
            }
            _ => debug!("{who}: {closure}"),
        }
        if self.phase == Phase::Handshake {
            if let Closure::Refused(code) = closure {
                // Refused by the core itself (e.g. an unsupported protocol version).
                let id = shared.next_id();
                shared.printer.refused(id, self.peer, code.describe())?;
                self.phase = Phase::Refused;
            } else {
                if closure != Closure::Aborted(Code::WrongProtocol) {
                    info!("{}: {closure} before the handshake completed", self.peer);
                }
                self.phase = Phase::Gone;
            }
        }
        Ok(())
    }

    /// Writes what the session has until the socket would block.
    pub fn write(&mut self) {
        while self.error.is_none() {
            let chunk = self.session.poll_transmit();
            if chunk.is_empty() {
                return;
            }
            match self.stream.write(chunk) {
                Ok(0) => self.error = Some(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.session.advance_transmit(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{}: write: {e}", self.peer);
                    self.error = Some(e);
                }
            }
        }
    }

    /// Prints the "left" line (once) and releases the session's `--max-clients` slot.
    /// A binary session whose connection was lost is kept for a resume instead, and
    /// its line says "lost".
    pub fn leave(&mut self, shared: &mut Shared, reason: Reason, now: Instant) -> io::Result<()> {
        if let Phase::Accepted { id } = self.phase {
            let resumable = self.session_token != 0 && reason.is_loss() && !shared.shutting_down;
            if resumable && shared.registry.get(self.session_token).is_some() {
                let window = crate::time::human_core(shared.registry.window());
                shared
                    .registry
                    .detach(self.session_token, self.last_seq, self.messages, now);
                shared.printer.lost(id, self.peer, &reason, self.messages, window)?;
            } else {
                shared.registry.remove(self.session_token);
                shared.printer.left(id, self.peer, &reason, self.messages)?;
            }
            shared.active = shared.active.saturating_sub(1);
        }
        self.phase = Phase::Gone;
        Ok(())
    }

    /// Why the session is over, for its "left" line.
    pub fn reason(&self) -> Reason {
        match (self.closure.or(self.session.closure()), &self.error) {
            (Some(c), _) => Reason::Closure(c),
            (None, Some(e)) => Reason::Io(e.to_string()),
            (None, None) => Reason::Stalled,
        }
    }
}
