//! One smoltcp interface and its TCP sockets, each carrying one soquete session at a
//! time: the poll loop's body, shared by the loopback and TAP modes.
//!
//! Every round [`Node::poll`] polls the interface, then services each connection:
//! timeouts, [`pump_read`] into the session, the session's events (printing, checking,
//! accepting), new messages for clients, [`pump_write`] out of the session. Time comes
//! from the caller — virtual in loopback mode, real in TAP mode — and
//! [`Node::poll_at`] says when to call again: the earliest of smoltcp's and the
//! sessions' deadlines.

use std::fmt;
use std::io::Write;
use std::sync::mpsc::{Receiver, TryRecvError};

use smoltcp::iface::{Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::IpEndpoint;
use soquete_core::io::{pump_read, pump_write};
use soquete_core::{Closure, Code, Event, Instant, Mode, Session, Stats};
use soquete_text::Printer;

use crate::adapter::TcpIo;
use crate::{payload, Error};

/// Largest message payload the demo's sessions accept.
pub const MAX_MESSAGE: u32 = 1024;
/// A session's receive buffer: one whole MSG frame of [`MAX_MESSAGE`] bytes, and a bit.
pub const SESSION_RX: usize = 2048;
/// A session's transmit buffer: the messages sent and not yet acknowledged.
pub const SESSION_TX: usize = 4096;
/// A TCP socket's receive buffer (its receive window).
pub const SOCKET_RX: usize = 4096;
/// A TCP socket's transmit buffer.
pub const SOCKET_TX: usize = 4096;

/// The sessions, with their buffers inline, as a firmware holds them in a static.
///
/// `TX` other than [`SESSION_TX`] is for comparing with smoltcp's own benchmark at its
/// buffer sizes.
pub type DemoSession<const TX: usize = SESSION_TX> = Session<[u8; SESSION_RX], [u8; TX]>;

const _: () = assert!(SESSION_RX >= DemoSession::<SESSION_TX>::min_rx_len(MAX_MESSAGE));

/// The session settings of the demo: the core's defaults with [`MAX_MESSAGE`].
pub const fn session_config() -> soquete_core::Config {
    soquete_core::Config {
        max_message: MAX_MESSAGE,
        ..soquete_core::Config::DEFAULT
    }
}

/// The memory of one connection's TCP socket buffers, as a firmware would reserve it
/// (a `static` array of these, one per socket): [`SOCKET_RX`] and [`SOCKET_TX`] bytes.
pub type SocketBuffers = SocketBuffersOf<SOCKET_RX, SOCKET_TX>;

/// One connection's TCP socket buffers of `RX` and `TX` bytes ([`SocketBuffers`] is
/// the demo's size; others are for comparing with smoltcp's own benchmark).
#[derive(Clone, Debug)]
pub struct SocketBuffersOf<const RX: usize, const TX: usize> {
    rx: [u8; RX],
    tx: [u8; TX],
}

impl<const RX: usize, const TX: usize> SocketBuffersOf<RX, TX> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        SocketBuffersOf {
            rx: [0; RX],
            tx: [0; TX],
        }
    }
}

impl<const RX: usize, const TX: usize> Default for SocketBuffersOf<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// RAM one connection takes, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ram {
    /// The session, buffers included (`size_of::<DemoSession>()`).
    pub session: usize,
    /// Of which the session's receive and transmit buffers.
    pub session_buffers: usize,
    /// The smoltcp TCP socket's own state (`size_of::<tcp::Socket>()`).
    pub socket: usize,
    /// The TCP socket's receive and transmit buffers.
    pub socket_buffers: usize,
}

impl Ram {
    /// The demo's figures.
    pub const fn per_connection() -> Ram {
        Ram {
            session: size_of::<DemoSession<SESSION_TX>>(),
            session_buffers: SESSION_RX + SESSION_TX,
            socket: size_of::<tcp::Socket<'static>>(),
            socket_buffers: size_of::<SocketBuffers>(),
        }
    }

    /// Everything together.
    pub const fn total(&self) -> usize {
        self.session + self.socket + self.socket_buffers
    }
}

impl fmt::Display for Ram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RAM per connection: session {} bytes (buffers {} + state {}), TCP socket {} bytes \
             (buffers {} + state {}), total {} bytes",
            self.session,
            self.session_buffers,
            self.session - self.session_buffers,
            self.socket_buffers + self.socket,
            self.socket_buffers,
            self.socket,
            self.total()
        )
    }
}

/// The core's clock from smoltcp's (both count from the same epoch, which the caller
/// keeps at or after zero).
pub fn core_instant(t: SmolInstant) -> Instant {
    Instant::from_millis(u64::try_from(t.total_millis()).unwrap_or(0))
}

/// smoltcp's clock from the core's.
pub fn smol_instant(t: Instant) -> SmolInstant {
    SmolInstant::from_millis(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
}

/// Where a client's messages come from.
#[derive(Debug)]
pub enum Source {
    /// `count` demo messages of `size` bytes that name `client` and their index.
    Generated {
        /// The client's number.
        client: u32,
        /// How many.
        count: u64,
        /// How long each is (at least its header).
        size: usize,
        /// The next one to send.
        next: u64,
        /// Message `next` once made, or empty (a message is never empty: it has a
        /// header). A full session refuses it; it is offered again later without being
        /// made again.
        made: Vec<u8>,
    },
    /// Lines from a reader thread (standard input); the channel closes at its end.
    Lines {
        /// The lines.
        rx: Receiver<Vec<u8>>,
        /// A line taken from the channel and not yet accepted by the session.
        held: Option<Vec<u8>>,
        /// The channel has closed.
        done: bool,
    },
}

impl Source {
    /// Demo messages.
    pub fn generated(client: u32, count: u64, size: usize) -> Self {
        Source::Generated {
            client,
            count,
            size,
            next: 0,
            made: Vec::new(),
        }
    }

    /// Lines received on `rx`.
    pub fn lines(rx: Receiver<Vec<u8>>) -> Self {
        Source::Lines {
            rx,
            held: None,
            done: false,
        }
    }

    /// The next message, without consuming it.
    fn peek(&mut self) -> Option<&[u8]> {
        match self {
            Source::Generated {
                client,
                count,
                size,
                next,
                made,
            } => {
                if *next >= *count {
                    return None;
                }
                if made.is_empty() {
                    made.resize((*size).max(payload::MAX_HEADER), 0);
                    let len = payload::write(made, *client, *next, *size).len();
                    made.truncate(len);
                }
                Some(made)
            }
            Source::Lines { rx, held, done } => {
                if held.is_none() && !*done {
                    match rx.try_recv() {
                        Ok(line) => *held = Some(line),
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => *done = true,
                    }
                }
                held.as_deref()
            }
        }
    }

    /// Consumes the message [`Source::peek`] returned.
    fn advance(&mut self) {
        match self {
            Source::Generated { next, made, .. } => {
                *next += 1;
                made.clear();
            }
            Source::Lines { held, .. } => *held = None,
        }
    }

    /// True once every message has been taken.
    fn is_exhausted(&self) -> bool {
        match self {
            Source::Generated { count, next, .. } => next >= count,
            Source::Lines { held, done, .. } => *done && held.is_none(),
        }
    }

    /// True while messages may arrive without any network event (so the loop must not
    /// sleep long).
    fn is_live(&self) -> bool {
        matches!(self, Source::Lines { done: false, .. })
    }
}

/// What a connection slot does.
#[derive(Debug)]
pub enum Role {
    /// Accepts connections on `port`, one at a time, and prints what they send.
    Server {
        /// The port to listen on.
        port: u16,
    },
    /// Connects once to `remote`, sends its messages, waits for their acknowledgement
    /// and closes.
    Client {
        /// The server.
        remote: IpEndpoint,
        /// The local port to connect from.
        local_port: u16,
        /// The name the session introduces itself with.
        name: String,
        /// The messages.
        source: Source,
    },
}

/// Where a slot is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Server: not listening (yet, or again).
    Idle,
    /// Listening, or connecting.
    Waiting,
    /// A session is running.
    Live,
    /// Client: finished.
    Done,
}

/// One TCP socket and the session on it.
#[derive(Debug)]
struct Conn<const STX: usize> {
    handle: SocketHandle,
    role: Role,
    phase: Phase,
    session: Option<DemoSession<STX>>,
    /// The number `soquete server` would print for this session.
    id: u64,
    peer: Option<IpEndpoint>,
    local: Option<IpEndpoint>,
    /// Client: when it started connecting (it gives up after the handshake timeout).
    connecting_since: Option<Instant>,
    /// The demo client the peer says it is (from its name), for checking payloads.
    client: Option<u32>,
}

/// Checks that demo messages arrive exactly once and in order.
#[derive(Debug, Default)]
pub struct Verifier {
    size: usize,
    /// Next index expected from each client.
    next: Vec<u64>,
    /// Messages that were the next expected one.
    pub delivered: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Messages that were not: wrong content, duplicated, out of order, unknown sender.
    pub bad: u64,
}

impl Verifier {
    /// Expects messages of `size` bytes from clients `0..clients`.
    pub fn new(clients: u32, size: usize) -> Self {
        Verifier {
            size,
            next: vec![0; clients as usize],
            ..Verifier::default()
        }
    }

    fn check(&mut self, client: Option<u32>, payload: &[u8]) {
        let slot = client.and_then(|c| Some((c, self.next.get_mut(c as usize)?)));
        match slot {
            Some((c, next)) if payload::matches(payload, c, *next, self.size) => {
                *next += 1;
                self.delivered += 1;
                self.bytes += payload.len() as u64;
            }
            _ => {
                log::error!(
                    "unexpected message from client {client:?}: {:?}",
                    payload.escape_ascii().to_string()
                );
                self.bad += 1;
            }
        }
    }
}

/// How one session ended.
#[derive(Clone, Debug)]
pub struct Ended {
    /// Server or client side.
    pub role: soquete_core::Role,
    /// Its number (server side).
    pub id: u64,
    /// The other end.
    pub peer: Option<IpEndpoint>,
    /// This end.
    pub local: Option<IpEndpoint>,
    /// Binary or plain text.
    pub mode: Mode,
    /// How it ended; `None` when the connection failed before a session started.
    pub closure: Option<Closure>,
    /// Its counters.
    pub stats: Stats,
}

impl Ended {
    /// True for an end in which nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.closure.is_some_and(|c| c.is_clean(self.mode))
    }
}

/// Output, checking and bookkeeping shared by the connections.
#[derive(Debug)]
struct App<W: Write> {
    printer: Printer<W>,
    quiet: bool,
    verifier: Option<Verifier>,
    next_id: u64,
    /// Server: accept this many sessions, then stop listening.
    max_sessions: Option<u64>,
    ended: Vec<Ended>,
}

impl<W: Write> App<W> {
    fn accepting(&self) -> bool {
        self.max_sessions.is_none_or(|max| self.next_id <= max)
    }
}

/// Options of a [`Node`].
#[derive(Debug)]
pub struct Options<W: Write> {
    /// Where the server's lines go.
    pub printer: Printer<W>,
    /// Leave out the per-message lines.
    pub quiet: bool,
    /// Check demo messages.
    pub verifier: Option<Verifier>,
    /// Server: stop accepting after this many sessions.
    pub max_sessions: Option<u64>,
    /// The sessions' settings.
    pub session: soquete_core::Config,
}

/// An interface, its device, and the sockets with their sessions.
pub struct Node<'a, D: Device, W: Write, const STX: usize = SESSION_TX> {
    iface: Interface,
    device: D,
    sockets: SocketSet<'a>,
    conns: Vec<Conn<STX>>,
    app: App<W>,
    session_config: soquete_core::Config,
}

impl<D: Device, W: Write, const STX: usize> fmt::Debug for Node<'_, D, W, STX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("conns", &self.conns)
            .field("ended", &self.app.ended.len())
            .finish_non_exhaustive()
    }
}

impl<'a, D: Device, W: Write, const STX: usize> Node<'a, D, W, STX> {
    /// One socket per role, each on its own `buffers` slot; clients start connecting.
    ///
    /// # Errors
    /// A client cannot connect (no route, bad port) or a server port is 0.
    ///
    /// # Panics
    /// If `storage` or `buffers` is shorter than `roles`.
    pub fn new<const RX: usize, const TX: usize>(
        mut iface: Interface,
        device: D,
        storage: &'a mut [SocketStorage<'a>],
        buffers: &'a mut [SocketBuffersOf<RX, TX>],
        roles: Vec<Role>,
        options: Options<W>,
    ) -> Result<Self, Error> {
        assert!(storage.len() >= roles.len() && buffers.len() >= roles.len());
        let mut sockets = SocketSet::new(storage);
        let mut conns = Vec::with_capacity(roles.len());
        for (role, buf) in roles.into_iter().zip(buffers.iter_mut()) {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(&mut buf.rx[..]),
                tcp::SocketBuffer::new(&mut buf.tx[..]),
            );
            // smoltcp 0.12 sends no zero-window probes: if the ACK that reopens a full
            // receive window is lost, the sender would wait for the session's PING
            // (a third of the idle timeout). A keep-alive makes the peer repeat its
            // window sooner.
            socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(5)));
            let phase = match &role {
                Role::Server { .. } => Phase::Idle,
                Role::Client { remote, local_port, .. } => {
                    socket
                        .connect(iface.context(), *remote, *local_port)
                        .map_err(|e| Error::Connect(*remote, e))?;
                    Phase::Waiting
                }
            };
            let handle = sockets.add(socket);
            conns.push(Conn {
                handle,
                role,
                phase,
                session: None,
                id: 0,
                peer: None,
                local: None,
                connecting_since: None,
                client: None,
            });
        }
        Ok(Node {
            iface,
            device,
            sockets,
            conns,
            app: App {
                printer: options.printer,
                quiet: options.quiet,
                verifier: options.verifier,
                next_id: 1,
                max_sessions: options.max_sessions,
                ended: Vec::new(),
            },
            session_config: options.session,
        })
    }

    /// One round: polls the interface, then services every connection. Returns true
    /// if anything moved (poll again at once), false if the node waits for time to
    /// pass or packets to arrive.
    ///
    /// # Errors
    /// Printing failed, or the socket adapter refused a read or write (a bug).
    pub fn poll(&mut self, now: SmolInstant) -> Result<bool, Error> {
        let changed = self.iface.poll(now, &mut self.device, &mut self.sockets);
        let mut progress = changed == smoltcp::iface::PollResult::SocketStateChanged;
        let core_now = core_instant(now);
        for conn in &mut self.conns {
            let socket = self.sockets.get_mut::<tcp::Socket>(conn.handle);
            progress |= service(conn, socket, &mut self.app, &self.session_config, core_now)?;
        }
        Ok(progress)
    }

    /// When to poll next: the earliest of smoltcp's and the sessions' deadlines (and
    /// soon, while a client's input may bring messages). `None`: nothing will happen
    /// until a packet arrives.
    pub fn poll_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        let mut at = self.iface.poll_at(now, &self.sockets);
        let mut consider = |t: SmolInstant| at = Some(at.map_or(t, |a| a.min(t)));
        for conn in &self.conns {
            if let Some(t) = conn.session.as_ref().and_then(|s| s.poll_timeout()) {
                consider(smol_instant(t));
            }
            if let (Phase::Waiting, Role::Client { .. }, Some(since)) = (conn.phase, &conn.role, conn.connecting_since)
            {
                consider(smol_instant(since + self.session_config.handshake_timeout));
            }
            if let Role::Client { source, .. } = &conn.role {
                if source.is_live() && conn.phase == Phase::Live {
                    consider(now + smoltcp::time::Duration::from_millis(20));
                }
            }
        }
        at
    }

    /// True when no session runs and none will start: every client has finished and
    /// a server has accepted all the sessions it was to accept (never, without a
    /// limit).
    pub fn sessions_done(&self) -> bool {
        self.conns.iter().all(|c| match c.role {
            Role::Client { .. } => c.phase == Phase::Done,
            Role::Server { .. } => c.session.is_none() && !self.app.accepting(),
        })
    }

    /// True when every TCP connection has finished closing, too.
    pub fn sockets_idle(&self) -> bool {
        self.conns
            .iter()
            .all(|c| !self.sockets.get::<tcp::Socket>(c.handle).is_active())
    }

    /// Sessions that have ended, in order.
    pub fn ended(&self) -> &[Ended] {
        &self.app.ended
    }

    /// The counters of every session of `role`, ended or running, added up.
    pub fn totals(&self, role: soquete_core::Role) -> Stats {
        let ended = self.app.ended.iter().filter(|e| e.role == role).map(|e| e.stats);
        let live = self
            .conns
            .iter()
            .filter_map(|c| c.session.as_ref())
            .filter(|s| s.role() == role);
        ended
            .chain(live.map(|s| s.stats()))
            .fold(Stats::default(), |a, b| Stats {
                sent: a.sent + b.sent,
                acked: a.acked + b.acked,
                received: a.received + b.received,
                bytes_in: a.bytes_in + b.bytes_in,
                bytes_out: a.bytes_out + b.bytes_out,
            })
    }

    /// The checker of demo messages, if any.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.app.verifier.as_ref()
    }

    /// Flushes the printer.
    ///
    /// # Errors
    /// Writing failed.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.app.printer.flush().map_err(Error::Output)
    }

    /// Printer access (for lines around the sessions' own).
    pub fn printer(&mut self) -> &mut Printer<W> {
        &mut self.app.printer
    }
}

/// Moves one connection along; true if anything moved.
fn service<W: Write, const STX: usize>(
    conn: &mut Conn<STX>,
    socket: &mut tcp::Socket<'_>,
    app: &mut App<W>,
    config: &soquete_core::Config,
    now: Instant,
) -> Result<bool, Error> {
    if conn.session.is_none() && !open_session(conn, socket, app, config, now)? {
        return Ok(false);
    }
    let Some(session) = conn.session.as_mut() else {
        return Ok(true);
    };
    if session.poll_timeout().is_some_and(|t| t <= now) {
        session.handle_timeout(now);
    }
    let mut progress = false;
    loop {
        let n = pump_read(session, &mut TcpIo::new(socket), now)?;
        progress |= handle_events(conn.id, conn.peer, &mut conn.client, session, app, now)?;
        if n == 0 {
            break;
        }
        progress = true;
    }
    if progress {
        // What was printed is out before its acknowledgement goes.
        app.printer.flush().map_err(Error::Output)?;
    }
    if let Role::Client { source, .. } = &mut conn.role {
        progress |= feed(session, source, now);
    }
    progress |= pump_write(session, &mut TcpIo::new(socket))? > 0;

    // Finished: closed, its last event taken (the close may have happened while
    // encoding output: poll_transmit ends an orderly close), its last bytes handed to
    // TCP (or TCP can take no more).
    if session.is_closed() && handle_events(conn.id, conn.peer, &mut conn.client, session, app, now)? {
        app.printer.flush().map_err(Error::Output)?;
    }
    if session.is_closed() && (session.poll_transmit().is_empty() || !socket.may_send()) {
        app.ended.push(Ended {
            role: session.role(),
            id: conn.id,
            peer: conn.peer,
            local: conn.local,
            mode: session.mode(),
            closure: session.closure(),
            stats: session.stats(),
        });
        socket.close();
        conn.session = None;
        conn.phase = match conn.role {
            Role::Server { .. } => Phase::Idle,
            Role::Client { .. } => Phase::Done,
        };
        progress = true;
    }
    Ok(progress)
}

/// Before a session: listens, notices an established connection (and starts a session
/// on it) or a failed one. True if something changed.
fn open_session<W: Write, const STX: usize>(
    conn: &mut Conn<STX>,
    socket: &mut tcp::Socket<'_>,
    app: &mut App<W>,
    config: &soquete_core::Config,
    now: Instant,
) -> Result<bool, Error> {
    match (conn.phase, &conn.role) {
        (Phase::Idle, Role::Server { port }) if !socket.is_open() && app.accepting() => {
            socket.listen(*port).map_err(|_| Error::Listen(*port))?;
            conn.phase = Phase::Waiting;
            Ok(true)
        }
        (Phase::Waiting, role) => {
            use tcp::State::{Closed, Listen, SynReceived, SynSent};
            let is_client = matches!(role, Role::Client { .. });
            let since = *conn.connecting_since.get_or_insert(now);
            if is_client && now >= since + config.handshake_timeout && socket.state() == SynSent {
                log::warn!(
                    "no answer from {} in {}",
                    Peer(socket.remote_endpoint()),
                    config.handshake_timeout
                );
                socket.abort();
            }
            match socket.state() {
                Listen | SynSent | SynReceived => Ok(false),
                Closed => {
                    // The connection was refused or reset before it was established.
                    if let Role::Client { remote, .. } = role {
                        log::warn!("connection to {remote} failed");
                        app.ended.push(Ended {
                            role: soquete_core::Role::Client,
                            id: 0,
                            peer: Some(*remote),
                            local: None,
                            mode: Mode::Binary,
                            closure: None,
                            stats: Stats::default(),
                        });
                        conn.phase = Phase::Done;
                    } else {
                        conn.phase = Phase::Idle;
                    }
                    Ok(true)
                }
                // Established (perhaps already closing: the session will see EOF).
                _ => {
                    conn.peer = socket.remote_endpoint();
                    conn.local = socket.local_endpoint();
                    let session = match &conn.role {
                        Role::Server { .. } => {
                            conn.id = app.next_id;
                            app.next_id += 1;
                            Session::server(*config, [0; SESSION_RX], [0; STX], now)
                        }
                        Role::Client { name, .. } => Session::client(*config, name, [0; SESSION_RX], [0; STX], now),
                    };
                    conn.session = Some(session.map_err(Error::Session)?);
                    conn.phase = Phase::Live;
                    Ok(true)
                }
            }
        }
        _ => Ok(false),
    }
}

/// Takes every event the session has (which also releases delivered messages, so
/// their acknowledgement can go out). True if there was any.
fn handle_events<W: Write, const STX: usize>(
    id: u64,
    peer: Option<IpEndpoint>,
    client: &mut Option<u32>,
    session: &mut DemoSession<STX>,
    app: &mut App<W>,
    now: Instant,
) -> Result<bool, Error> {
    let peer = Peer(peer);
    let mut any = false;
    while let Some(event) = session.poll_event(now) {
        any = true;
        match event {
            Event::Hello { mode, name, .. } => {
                let name = name.to_owned();
                *client = payload::client_of_name(&name);
                app.printer.connected(id, peer, &name, mode).map_err(Error::Output)?;
                session.accept(id, None).map_err(Error::Session)?;
            }
            Event::Message { seq, payload } => {
                if let Some(verifier) = &mut app.verifier {
                    verifier.check(*client, payload);
                }
                if !app.quiet {
                    app.printer.message(id, peer, seq, payload).map_err(Error::Output)?;
                }
            }
            Event::Closed(closure) => {
                if session.role() == soquete_core::Role::Server {
                    let received = session.stats().received;
                    app.printer.left(id, peer, closure, received).map_err(Error::Output)?;
                } else if !closure.is_clean(session.mode()) {
                    log::warn!("session to {peer} ended: {closure}");
                }
            }
            Event::Established { .. } | Event::Acked { .. } | Event::PeerClosing(_) => {}
        }
    }
    Ok(any)
}

/// Client: queues messages while the session takes them; closes once all are sent and
/// acknowledged. True if anything was queued.
fn feed<const STX: usize>(session: &mut DemoSession<STX>, source: &mut Source, now: Instant) -> bool {
    if !session.is_open() {
        return false;
    }
    let mut any = false;
    while let Some(message) = source.peek() {
        match session.send(message) {
            Ok(_) => {
                source.advance();
                any = true;
            }
            Err(soquete_core::session::Error::Full) => break,
            Err(e) => {
                log::warn!("message not sent ({e}): {:?}", message.escape_ascii().to_string());
                source.advance();
            }
        }
    }
    if source.is_exhausted() && session.unacked() == 0 {
        session.close(now, Code::Normal);
        any = true;
    }
    any
}

/// An endpoint as `soquete server` prints it.
#[derive(Clone, Copy, Debug)]
struct Peer(Option<IpEndpoint>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ep) => write!(f, "{ep}"),
            None => f.write_str("?"),
        }
    }
}
