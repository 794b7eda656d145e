//! `soquete server`: one thread, one mio event loop, one core session per connection.
//!
//! Each loop iteration:
//! 1. waits for socket readiness, a stop request ([`Shutdown`]), or the earliest
//!    session deadline;
//! 2. accepts new connections (a bounded batch);
//! 3. runs due timers (`handle_timeout`);
//! 4. reads from each readable connection, at most `conn::READ_BUDGET` bytes, printing
//!    the messages; a connection with more to read waits for the next iteration;
//! 5. hands what was printed to the sink ([`crate::sink`]), which writes it on a thread
//!    of its own;
//! 6. writes each touched connection's output.
//!
//! Sessions use explicit acknowledgement (PROTOCOL.md §4.3): a message is acknowledged
//! when the sink reports its line written (the sink's waker wakes the loop), never
//! before. Each session takes at most [`MAX_UNCONFIRMED`] messages ahead of the sink,
//! and while the sink's queue is full no accepted session is read at all: its clients
//! are slowed by TCP, while handshakes, timers, refusals and shutdown go on.
//!
//! With [`Options::forward`], messages go to NATS JetStream through
//! [`crate::sink::forward`] instead of the printer, and are confirmed by JetStream's
//! acknowledgements; a binary client resuming a session this server does not know
//! waits in its handshake while the publisher looks up where the session stands in
//! the stream ([`Server::on_found`] resumes it from there).
//!
//! A connection never blocks the loop: reads and writes stop at `WouldBlock`, and mio's
//! edge-triggered readiness is remembered per connection (`Conn::readable`).
//!
//! The library's entry point is [`run`]: a listener, [`Options`], an [`Output`] and a
//! [`Shutdown`]; the `soquete server` program passes standard output (or a file) and
//! SIGINT/SIGTERM/SIGHUP, tests pass a pipe of lines and a [`Trigger`].

mod conn;
mod console;
mod limits;
mod registry;
mod relay;
mod shutdown;

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::io::Read;
use std::sync::Arc;

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use soquete_core::{Code, Config, Duration, Instant, Session};
use soquete_text::{plural, Format, Printer};

use crate::metrics::Metrics;
use crate::secure::{Identity, ServerAuth, Stream};
pub use crate::sink::forward::Options as Forwarding;
use crate::sink::forward::{Forward, Found};
use crate::sink::nats;
pub use crate::sink::Output;
use crate::sink::{Lines, Mark, Sink};
use crate::time;
use conn::{Conn, Reason, ServerSession, State, TakeOver};
use console::{Console, Input, Target};
use registry::Registry;
pub use relay::Limits as ClientQueue;
use shutdown::Request;
pub use shutdown::{Shutdown, Trigger};

const LISTENER: Token = Token(0);
const SHUTDOWN: Token = Token(1);
/// The sink's writer thread wrote something, or the console has lines (mio allows
/// one waker per event loop).
const SINK: Token = Token(2);
const FIRST_CONN: usize = 3;

/// Messages a session takes ahead of the sink; at that many it takes no more until
/// the sink has written them (TCP slows its client).
pub const MAX_UNCONFIRMED: u32 = 128;

/// Connections accepted beyond `--max-clients`, so that refusals go out in-protocol
/// ("server full") instead of as a reset.
const ACCEPT_SLACK: usize = 64;
/// Most connections accepted per loop iteration.
const ACCEPT_BATCH: usize = 64;
/// Pause before accepting again after an error such as EMFILE.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Descriptors the server holds besides its connections (standard streams, the
/// listener, the event loop, the output, the stop signals), with room to spare.
const FDS_BESIDES_CONNS: u64 = 32;
/// Transmit buffer of a session when the server sends no messages of its own (no
/// console, no relay): room for its control frames.
const TX_LEN: usize = 1024;
/// Longest console line sent without `--relay` (whose buffers take the longest
/// message a client may send).
const CONSOLE_MAX_LINE: usize = 4096;
/// Room for a relayed message's `NAME: ` (a name has at most 32 bytes).
const RELAY_PREFIX: usize = 64;
/// How long a finished connection keeps reading (and dropping) the peer's last bytes.
const LINGER: Duration = Duration::from_secs(1);
/// How long sessions get to close after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a server behaves: `soquete server`'s flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Sessions served at once; more are refused with "server full".
    pub max_clients: usize,
    /// Largest message a client may send, in bytes.
    pub max_message: u32,
    /// Close a session after this long without traffic (zero: never).
    pub idle_timeout: std::time::Duration,
    /// Plain-text peers: show a partial line after this long without input (zero:
    /// wait for the newline or the end of the connection).
    pub line_gap: std::time::Duration,
    /// How long a lost binary session waits to be resumed (zero: resume disabled).
    pub resume_window: std::time::Duration,
    /// Text lines or JSON lines.
    pub format: Format,
    /// Text lines start with the time (JSON lines always have it).
    pub timestamps: bool,
    /// Forward messages to NATS JetStream instead of printing them: a message is
    /// acknowledged once JetStream has stored it, and a session this server does not
    /// know is resumed from what the stream holds.
    pub forward: Option<Forwarding>,
    /// The secure mode (PROTOCOL.md §10): the server's key and the allowed client
    /// keys; `None`: no secure peers.
    pub auth: Option<AuthFiles>,
    /// Chat room: each client's messages are also sent to every other client.
    pub relay: bool,
    /// How much each client's queue of messages from the server holds; a client
    /// whose queue is full is closed.
    pub client_queue: ClientQueue,
}

/// Where the secure mode's keys are, and whether every peer must use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFiles {
    /// The server's secret key file (`soquete keygen`).
    pub key: std::path::PathBuf,
    /// Allowed client keys: `soquete-pk:… NAME` per line; read again on SIGHUP.
    pub allowed_keys: std::path::PathBuf,
    /// Refuse every peer that is not secure (binary or plain text) with
    /// AUTH_REQUIRED.
    pub require: bool,
}

impl Default for Options {
    /// `soquete server`'s defaults.
    fn default() -> Self {
        Options {
            max_clients: 1024,
            max_message: 65536,
            idle_timeout: std::time::Duration::from_secs(120),
            line_gap: std::time::Duration::from_millis(100),
            resume_window: std::time::Duration::from_secs(60),
            format: Format::Text,
            timestamps: false,
            forward: None,
            auth: None,
            relay: false,
            client_queue: ClientQueue::default(),
        }
    }
}

/// The log target of the line that says the server stopped (`stopped (SIGTERM): 3
/// sessions closed in order, 0 lost`), at the info level: a program that logs only
/// warnings can still show it.
pub const STOPPED_TARGET: &str = "soquete::stopped";

/// How [`run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every session closed (or the grace period ran out) after a stop request.
    Gracefully,
    /// A second request stopped the server at once.
    AtOnce {
        /// The signal, if the request was one.
        signal: Option<i32>,
    },
}

/// Why [`run`] failed; the I/O error that caused it is its `source`.
#[derive(Debug)]
pub enum Error {
    /// The event loop could not be set up: what could not be done, and why.
    Setup(&'static str, io::Error),
    /// Waiting for events failed.
    Poll(io::Error),
    /// The output failed. The server stops: it has acknowledged only what was written.
    Output(io::Error),
    /// NATS JetStream cannot be reached at start, or its stream cannot be used.
    Forward(nats::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Setup(what, _) => write!(f, "cannot {what}"),
            Error::Poll(_) => f.write_str("event loop failed"),
            Error::Output(_) => f.write_str("cannot write the output"),
            Error::Forward(_) => f.write_str("cannot forward to NATS JetStream"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Setup(_, e) | Error::Poll(e) | Error::Output(e) => Some(e),
            Error::Forward(e) => Some(e),
        }
    }
}

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Lines not yet handed to the sink.
    printer: Printer<Lines>,
    sink: Sink,
    /// With `--forward`: where messages go instead of the printer.
    forward: Option<Forward>,
    /// Accepted sessions that have not left yet.
    active: usize,
    max_clients: usize,
    next_id: u64,
    tokens: RandomState,
    token_counter: u64,
    /// Where lingering connections' bytes go.
    scratch: Vec<u8>,
    /// Sessions that clients may resume.
    registry: Registry,
    /// SIGINT/SIGTERM arrived: lost sessions are not kept for a resume.
    shutting_down: bool,
    /// The secure mode's keys, if it is on.
    auth: Option<std::rc::Rc<ServerAuth>>,
    metrics: Metrics,
    /// Relay mode: messages received are also for the other clients.
    relay: bool,
    /// Messages received this iteration, to relay: the sender's connection and the
    /// message as the others get it.
    relayed: Vec<(Token, Arc<[u8]>)>,
    /// Messages (and their payload bytes) received since the metrics were last
    /// updated: added to the shared counters once per hand-over, not with an atomic
    /// operation per message.
    received: (u64, u64),
}

impl Shared {
    /// Hands what was printed to the sink's writer, and the messages to forward to
    /// the publisher.
    fn submit(&mut self) {
        // Counted before the lines go out, so that whoever has seen a line (or its
        // acknowledgement) finds its message in the metrics.
        let (messages, bytes) = std::mem::take(&mut self.received);
        if messages > 0 {
            self.metrics.messages_received.inc_by(messages);
            self.metrics.message_bytes_received.inc_by(bytes);
        }
        self.sink.submit(self.printer.get_mut());
        if let Some(forward) = &mut self.forward {
            forward.submit();
        }
    }

    /// The sink's queue (or the publisher's) is full: accepted sessions must wait.
    fn sink_full(&self) -> bool {
        self.sink.is_full(self.printer.get_ref()) || self.forward.as_ref().is_some_and(Forward::is_full)
    }

    /// Takes message `seq` of session `id` (token `session`, 0 for plain text; `auth`:
    /// a secure peer's authenticated name and key) from connection `conn`: printed, or forwarded. It is confirmed once its line is
    /// written or JetStream has stored it. `again`: sent again after a resume and
    /// printed before (not printed twice; forwarded again, JetStream keeps one copy).
    #[allow(clippy::too_many_arguments)]
    fn message(
        &mut self,
        conn: Token,
        id: u64,
        peer: std::net::SocketAddr,
        name: &str,
        auth: Option<&Identity>,
        session: u64,
        seq: u64,
        payload: &[u8],
        again: bool,
    ) -> io::Result<()> {
        if self.forward.is_some() {
            // A plain-text session has no token: one made from its id stands in, so
            // that its `Nats-Msg-Id`s are its own.
            let token = if session == 0 { self.plain_token(id) } else { session };
            if let Some(forward) = &mut self.forward {
                forward.publish(conn, name, auth, token, seq, payload);
            }
            return Ok(());
        }
        if !again {
            let auth = auth.map(|a| a.name.as_str());
            self.printer.message_auth(id, peer, name, auth, session, seq, payload)?;
        }
        let pending = self.printer.get_ref().len();
        self.sink.mark(pending, conn, seq);
        Ok(())
    }

    /// Forwarding: a binary client resumes session `token` that this server does not
    /// know. Asks the publisher for the session's last stored message; the answer
    /// comes to [`Server::on_found`].
    fn lookup(&mut self, conn: Token, token: u64) {
        if let Some(forward) = &mut self.forward {
            forward.lookup(conn, token);
        }
    }

    /// A stand-in token for plain-text session `id`, distinct from every other
    /// session's with overwhelming probability.
    fn plain_token(&self, id: u64) -> u64 {
        let mut h = self.tokens.build_hasher();
        h.write_u64(u64::MAX);
        h.write_u64(id);
        h.finish().max(1)
    }

    /// `--require-auth`: peers that are not secure are refused.
    fn auth_required(&self) -> bool {
        self.auth.as_ref().is_some_and(|a| a.required())
    }

    /// A client's message was printed: counted, and kept for the relay.
    fn on_message(&mut self, from: Token, id: u64, name: &str, payload: &[u8]) {
        self.received.0 += 1;
        self.received.1 += payload.len() as u64;
        if self.relay {
            self.relayed.push((from, relay::relayed(id, name, payload)));
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh, unpredictable, nonzero session token.
    fn session_token(&mut self) -> u64 {
        self.token_counter += 1;
        let mut h = self.tokens.build_hasher();
        h.write_u64(self.token_counter);
        h.finish().max(1)
    }
}

/// A listening socket on `addr`, as [`run`] wants it: with `SO_REUSEADDR`, so that a
/// restarted server gets its address back while the last one's connections are in
/// TIME_WAIT.
///
/// # Errors
/// The address cannot be bound (in use, not local, no permission).
pub fn bind(addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    TcpListener::bind(addr).map(std::net::TcpListener::from)
}

/// Serves clients on `listener` until `shutdown` asks to stop, printing every event
/// to `output` ("listening on ADDR" first): a writer (standard output, anything
/// `Write + Send`) or a file. The output is written on a thread of its own; a message
/// is acknowledged once its line is written (and flushed, or `fsync`ed if asked).
///
/// # Errors
/// The event loop fails, or `output` does: then the server stops at once, having
/// acknowledged nothing that was not written.
pub fn run(
    listener: std::net::TcpListener,
    options: &Options,
    output: impl Into<Output>,
    shutdown: Shutdown,
) -> Result<Stopped, Error> {
    run_with(listener, options, output, shutdown, Extras::default())
}

/// What a server may have besides its clients and its output.
#[derive(Default)]
pub struct Extras {
    /// Console lines to send to clients (`soquete server` passes standard input;
    /// PROTOCOL.md §9.5): `text` to all, `#ID text` to one session, `@NAME text` to
    /// the clients of that name. Its end ends the console, not the server.
    pub console: Option<Box<dyn Read + Send>>,
    /// Serves the server's metrics in the Prometheus text format on this socket
    /// ([`crate::metrics`]).
    pub metrics: Option<std::net::TcpListener>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("console", &self.console.is_some())
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// [`run`], with a console and metrics if `extras` has them.
///
/// # Errors
/// As [`run`]; also when the console or the metrics cannot be set up.
pub fn run_with(
    listener: std::net::TcpListener,
    options: &Options,
    output: impl Into<Output>,
    shutdown: Shutdown,
    extras: Extras,
) -> Result<Stopped, Error> {
    let config = Config {
        max_message: options.max_message,
        idle_timeout: time::to_core(options.idle_timeout),
        handshake_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(10),
        line_gap: time::to_core(options.line_gap),
        allow_plain: true,
    };
    let mut server = Server::new(listener, options, config, output.into(), shutdown, extras)?;
    let result = server.run();
    let limit = match result {
        Ok(Stopped::Gracefully) => std::time::Duration::from_secs(5),
        _ => std::time::Duration::from_secs(1),
    };
    let shared = &mut server.shared;
    if let Some(forward) = &mut shared.forward {
        forward.finish(limit);
    }
    let finished = shared
        .sink
        .finish(shared.printer.get_mut(), limit)
        .map_err(Error::Output);
    result.and_then(|stopped| finished.map(|()| stopped))
}

/// The event loop and everything it owns.
struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    shutdown: Shutdown,
    config: Config,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    shared: Shared,
    /// Console lines to read, until its input ends.
    console: Option<Console>,
    /// Transmit buffer of a new session.
    tx_len: usize,
    client_queue: ClientQueue,
    /// Messages waiting in the clients' outboxes.
    queued: usize,
    /// Connections in the handshake, as of the last accept.
    handshakes: usize,
    handshake_limit: usize,
    /// The reserve descriptor, to answer connections refused at EMFILE.
    spare: limits::Spare,
    /// Accepted connections with input to read, waiting for the sink's queue to drain.
    held: Vec<Token>,
    /// Messages the sink reported written, to confirm.
    written: Vec<Mark>,
    /// Earliest deadline first; entries whose deadline no longer matches the
    /// connection's `scheduled` are stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, Token)>>,
    /// Connections that may have more to read.
    read_queue: VecDeque<Token>,
    /// Connections touched this iteration: to write, check and reschedule.
    dirty: Vec<Token>,
    /// The listener has connections waiting (edge-triggered: remembered here).
    accept_pending: bool,
    accept_paused_until: Option<Instant>,
    /// Accepting fails (e.g. EMFILE): it was said once, and is not said again until
    /// a connection has been accepted.
    accept_failing: bool,
    /// Set once SIGINT/SIGTERM arrived: the time by which the server exits.
    shutdown_deadline: Option<Instant>,
    /// The first stop request, and how many sessions it asked to close.
    stopping: Option<(Request, usize)>,
}

impl Server {
    fn new(
        listener: std::net::TcpListener,
        options: &Options,
        config: Config,
        output: Output,
        mut shutdown: Shutdown,
        extras: Extras,
    ) -> Result<Self, Error> {
        raise_open_file_limit(options.max_clients);
        let poll = Poll::new().map_err(|e| Error::Setup("create the event loop", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Setup("make the listening socket non-blocking", e))?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::Setup("watch the listening socket", e))?;
        shutdown
            .register(poll.registry(), SHUTDOWN)
            .map_err(|e| Error::Setup("watch for stop requests", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Setup("read the listening address", e))?;

        let auth = match &options.auth {
            Some(files) => {
                let auth = ServerAuth::load(&files.key, &files.allowed_keys, files.require)
                    .map_err(|e| Error::Setup("read the secure mode's keys", io::Error::other(format!("{e:#}"))))?;
                info!(
                    "secure mode: server key {}, {} allowed client keys{}",
                    crate::keys::public_to_text(&auth.public_key()),
                    auth.allowed_len(),
                    if files.require {
                        "; every peer must authenticate"
                    } else {
                        ""
                    }
                );
                Some(std::rc::Rc::new(auth))
            }
            None => None,
        };
        let waker = Waker::new(poll.registry(), SINK).map_err(|e| Error::Setup("create the output's waker", e))?;
        let waker = Arc::new(waker);
        let forward = match &options.forward {
            Some(forwarding) => {
                let forwarding = crate::sink::forward::Options {
                    max_message: options.max_message as usize,
                    ..forwarding.clone()
                };
                Some(Forward::start(forwarding, Arc::clone(&waker)).map_err(Error::Forward)?)
            }
            None => None,
        };
        let mut sink = Sink::start(output, Arc::clone(&waker)).map_err(|e| Error::Setup("open the output", e))?;
        let mut printer =
            Printer::new(Lines::with_capacity(64 * 1024), options.format).with_timestamps(options.timestamps);
        let registry = Registry::new(
            time::to_core(options.resume_window),
            options.max_clients.saturating_mul(4).saturating_add(ACCEPT_SLACK),
        );
        let metrics = Metrics::default();
        if let Some(listener) = extras.metrics {
            let addr = listener
                .local_addr()
                .map_err(|e| Error::Setup("read the metrics address", e))?;
            crate::metrics::serve(listener, metrics.clone()).map_err(|e| Error::Setup("serve the metrics", e))?;
            info!("metrics on http://{addr}/metrics");
        }
        let console = match extras.console {
            Some(input) => Some(Console::start(input, waker).map_err(|e| Error::Setup("start the console", e))?),
            None => None,
        };
        // The server sends messages only from the console or the relay. Relaying,
        // a session's transmit buffer holds the largest message a client may send
        // with its sender's name; for the console alone, a line of
        // CONSOLE_MAX_LINE bytes (every connection has this buffer).
        let tx_len = if options.relay {
            soquete_core::wire::MSG_OVERHEAD + options.max_message.max(CONSOLE_MAX_LINE as u32) as usize + RELAY_PREFIX
        } else if console.is_some() {
            soquete_core::wire::MSG_OVERHEAD + CONSOLE_MAX_LINE
        } else {
            TX_LEN
        };
        printer.listening(local).map_err(Error::Output)?;
        sink.submit(printer.get_mut());
        info!("listening on {local}, at most {} clients", options.max_clients);

        Ok(Server {
            poll,
            listener: Some(listener),
            shutdown,
            config,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            shared: Shared {
                printer,
                sink,
                forward,
                active: 0,
                max_clients: options.max_clients,
                next_id: 0,
                tokens: RandomState::new(),
                token_counter: 0,
                scratch: vec![0; conn::READ_BUDGET],
                registry,
                shutting_down: false,
                auth,
                metrics,
                relay: options.relay,
                relayed: Vec::new(),
                received: (0, 0),
            },
            console,
            tx_len,
            client_queue: options.client_queue,
            queued: 0,
            handshakes: 0,
            handshake_limit: limits::handshake_limit(options.max_clients),
            spare: limits::Spare::open(),
            held: Vec::new(),
            written: Vec::new(),
            timers: BinaryHeap::new(),
            read_queue: VecDeque::new(),
            dirty: Vec::new(),
            accept_pending: false,
            accept_paused_until: None,
            accept_failing: false,
            shutdown_deadline: None,
            stopping: None,
        })
    }

    fn run(&mut self) -> Result<Stopped, Error> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = time::now();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    self.say_stopped(0);
                    break;
                }
                if now >= deadline {
                    warn!("{} did not close in time; exiting", sessions(self.conns.len()));
                    let lost = self.conns.len();
                    self.drop_all().map_err(Error::Output)?;
                    self.say_stopped(lost);
                    break;
                }
            }
            match self.poll.poll(&mut events, self.poll_timeout(now)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Poll(e)),
            }
            let now = time::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_pending = true,
                    SINK => {
                        self.on_written(now)?;
                        self.on_console(now).map_err(Error::Output)?;
                    }
                    SHUTDOWN => {
                        if let Some(stopped) = self.on_stop_requests(now).map_err(Error::Output)? {
                            return Ok(stopped);
                        }
                    }
                    token => {
                        let Some(conn) = self.conns.get_mut(&token) else {
                            continue;
                        };
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            conn.stream.readable(event.is_read_closed() || event.is_error());
                            conn.readable = true;
                            if !conn.queued {
                                conn.queued = true;
                                self.read_queue.push_back(token);
                            }
                        }
                        if event.is_writable() || event.is_write_closed() {
                            mark_dirty(&mut self.dirty, conn, token);
                        }
                    }
                }
            }
            self.iterate(now).map_err(Error::Output)?;
            // A message sent again after a resume, whose line the sink wrote before,
            // waits for no report of the writer: confirm it now.
            if self.shared.sink.has_written_marks() {
                self.on_written(now)?;
            }
        }
        Ok(Stopped::Gracefully)
    }

    /// Steps 2–6 of the module docs.
    fn iterate(&mut self, now: Instant) -> io::Result<()> {
        self.accept(now);
        self.run_timers(now)?;
        for _ in 0..self.read_queue.len() {
            let Some(token) = self.read_queue.pop_front() else {
                break;
            };
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if matches!(conn.state, State::Accepted(_)) && self.shared.sink_full() {
                self.held.push(token);
                continue;
            }
            let reading = conn.read(&mut self.shared, now)?;
            mark_dirty(&mut self.dirty, conn, token);
            if reading.more {
                self.read_queue.push_back(token);
            } else {
                conn.queued = false;
            }
            self.take_over(reading.take_over, now)?;
        }
        self.relay(now)?;
        self.expire_sessions(now)?;
        self.shared.submit();
        for token in std::mem::take(&mut self.dirty) {
            self.service(token, now)?;
        }
        self.shared.submit();
        self.compact_timers();
        let m = &self.shared.metrics;
        m.connections_open.set(gauge(self.conns.len()));
        m.handshakes_open.set(gauge(self.handshakes));
        m.sessions_open.set(gauge(self.shared.active));
        m.client_queue_messages.set(gauge(self.queued));
        m.output_queue_bytes
            .set(i64::try_from(self.shared.sink.backlog(self.shared.printer.get_ref().len())).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The sink wrote something: acknowledges the messages it has written, and lets
    /// sessions held back for it go on.
    fn on_written(&mut self, now: Instant) -> Result<(), Error> {
        let mut written = std::mem::take(&mut self.written);
        if let Err(e) = self.shared.sink.confirmed(&mut written) {
            log::error!("the output failed ({e}): acknowledging nothing more");
            return Err(Error::Output(e));
        }
        if let Some(forward) = &mut self.shared.forward {
            forward.confirmed(&mut written);
            for found in forward.found() {
                self.on_found(found, now).map_err(Error::Output)?;
            }
        }
        for mark in written.drain(..) {
            let Some(conn) = self.conns.get_mut(&mark.conn) else {
                continue;
            };
            let take_over = conn.confirm(&mut self.shared, mark.seq, now).map_err(Error::Output)?;
            // The session may take the rest of what it has read, and ACKs go out.
            if conn.readable && !conn.queued {
                conn.queued = true;
                self.read_queue.push_back(mark.conn);
            }
            mark_dirty(&mut self.dirty, conn, mark.conn);
            self.take_over(take_over, now).map_err(Error::Output)?;
        }
        self.written = written;
        if !self.shared.sink_full() {
            self.read_queue.extend(self.held.drain(..));
        }
        // The writer is free again: give it what has piled up.
        self.shared.submit();
        Ok(())
    }

    /// The publisher found where a session this server did not know stands in the
    /// stream: its client resumes it from there.
    fn on_found(&mut self, found: Found, now: Instant) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&found.conn) else {
            return Ok(());
        };
        let take_over = conn.resume_stored(&mut self.shared, found, now)?;
        mark_dirty(&mut self.dirty, conn, found.conn);
        if conn.readable && !conn.queued {
            conn.queued = true;
            self.read_queue.push_back(found.conn);
        }
        self.take_over(take_over, now)
    }

    /// The console has input: sends each line to its clients.
    fn on_console(&mut self, now: Instant) -> io::Result<()> {
        while let Some(input) = self.console.as_ref().and_then(Console::next) {
            match input {
                Input::Line(line) => self.console_line(&line, now)?,
                Input::End(why) => {
                    match why {
                        Some(e) => warn!("console: cannot read standard input: {e}; the console is closed"),
                        None => info!("console: end of input; the server goes on"),
                    }
                    self.console = None;
                    // Sessions opened from now on need no room for console lines
                    // (a server under a service manager, stdin /dev/null: 3 KB less
                    // per connection).
                    if !self.shared.relay {
                        self.tx_len = TX_LEN;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends one console line (PROTOCOL.md §9.5) to the clients it names, or says on
    /// stderr why it went nowhere.
    fn console_line(&mut self, line: &[u8], now: Instant) -> io::Result<()> {
        let line = console::parse(line);
        let max = self.tx_len - soquete_core::wire::MSG_OVERHEAD;
        if line.text.len() > max {
            warn!(
                "console: a line of {} bytes is longer than {max} bytes; not sent",
                line.text.len()
            );
            return Ok(());
        }
        let to: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.session.is_open())
            .filter(|(_, c)| match (&line.target, c.state) {
                (Target::All, State::Accepted(_)) => true,
                (Target::Id(id), State::Accepted(served)) => served.id == *id,
                (Target::Name(name), State::Accepted(_)) => c.name().as_bytes() == name.as_slice(),
                _ => false,
            })
            .map(|(token, _)| *token)
            .collect();
        if to.is_empty() {
            match &line.target {
                Target::All => warn!("console: no client is connected; line not sent"),
                Target::Id(id) => warn!("console: no session #{id} is connected; line not sent"),
                Target::Name(name) => warn!(
                    "console: no client named \"{}\" is connected; line not sent",
                    String::from_utf8_lossy(name)
                ),
            }
            return Ok(());
        }
        debug!("console: a line of {} bytes to {} clients", line.text.len(), to.len());
        let msg: Arc<[u8]> = line.text.into();
        self.send_to(&to, &msg, now)
    }

    /// Relays the messages received this iteration to every other client.
    fn relay(&mut self, now: Instant) -> io::Result<()> {
        if self.shared.relayed.is_empty() {
            return Ok(());
        }
        let relayed = std::mem::take(&mut self.shared.relayed);
        let clients: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Accepted(_)) && c.session.is_open())
            .map(|(token, _)| *token)
            .collect();
        for (from, msg) in &relayed {
            let to: Vec<Token> = clients.iter().copied().filter(|t| t != from).collect();
            self.send_to(&to, msg, now)?;
        }
        Ok(())
    }

    /// Queues `msg` for each client of `to`. A client whose queue is full has not
    /// read for a long while: it is closed (its "left" line gives the reason), so
    /// that it holds up nobody and its memory stays bounded.
    fn send_to(&mut self, to: &[Token], msg: &Arc<[u8]>, now: Instant) -> io::Result<()> {
        for &token in to {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            match conn.outbox.push(Arc::clone(msg), self.client_queue) {
                Ok(()) => {
                    self.queued += 1;
                    mark_dirty(&mut self.dirty, conn, token);
                }
                Err(full) => {
                    warn!(
                        "{}: does not read ({}, {} bytes waiting for it); closed",
                        conn.peer,
                        plural(u64::try_from(full.messages).unwrap_or(u64::MAX), "message"),
                        full.bytes
                    );
                    self.shared.metrics.clients_dropped_slow.inc();
                    // Said if the socket takes it; not waited for.
                    conn.session.close(now, Code::Overloaded);
                    conn.write();
                    conn.leave(&mut self.shared, Reason::Overflow(full), now)?;
                    self.remove(token);
                }
            }
        }
        Ok(())
    }

    /// How long the next poll may wait: not at all if work is queued, else until the
    /// earliest deadline.
    fn poll_timeout(&self, now: Instant) -> Option<std::time::Duration> {
        let accept_ready = self.accept_pending && self.accept_paused_until.is_none_or(|t| now >= t);
        let relaying = !self.shared.relayed.is_empty();
        if !self.read_queue.is_empty() || !self.dirty.is_empty() || accept_ready || relaying {
            return Some(std::time::Duration::ZERO);
        }
        let mut next = self.timers.peek().map(|Reverse((t, _))| *t);
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.accept_pending {
            consider(self.accept_paused_until);
        }
        consider(self.shared.registry.next_expiry());
        consider(self.shutdown_deadline);
        next.map(|t| time::until(t, now))
    }

    /// Accepts a batch of waiting connections.
    fn accept(&mut self, now: Instant) {
        if !self.accept_pending || self.accept_paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.accept_paused_until = None;
        self.recount_handshakes();
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else {
                self.accept_pending = false;
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if std::mem::take(&mut self.accept_failing) {
                        info!("accepting connections again");
                    }
                    if self.conns.len() >= self.shared.max_clients.saturating_add(ACCEPT_SLACK) {
                        warn!("{peer}: too many connections ({}); refused", self.conns.len());
                        self.shared.metrics.connections_rejected.inc();
                        limits::refuse(stream);
                        continue;
                    }
                    if self.handshakes >= self.handshake_limit && !self.evict_silent() {
                        // Not a warning each time: a flood of these would flood stderr.
                        debug!("{peer}: {} connections in the handshake; refused", self.handshakes);
                        self.shared.metrics.connections_rejected.inc();
                        limits::refuse(stream);
                        continue;
                    }
                    if let Some(conn) = self.add_conn(stream, peer, now) {
                        conn.counted = true;
                        self.handshakes += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // Out of descriptors: the waiting connection is answered with
                    // the reserve descriptor, then the next one is tried.
                    match self.spare.refuse_one(listener) {
                        limits::Refused::One => {
                            if !self.accept_failing {
                                warn!("cannot accept connections: {e}; new clients are told \"server full\"");
                                self.accept_failing = true;
                            }
                            self.shared.metrics.connections_rejected.inc();
                            continue;
                        }
                        limits::Refused::NoneWaiting => {
                            self.accept_pending = false;
                            return;
                        }
                        limits::Refused::Unable => {}
                    }
                    // Some other failure (or no reserve): the connection stays in the
                    // backlog; try again shortly rather than spin, and say so once,
                    // not at every try.
                    if self.accept_failing {
                        debug!("cannot accept a connection: {e}");
                    } else {
                        warn!(
                            "cannot accept connections: {e}; new clients wait until some leave \
                             (retrying every {ACCEPT_PAUSE})"
                        );
                        self.accept_failing = true;
                    }
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// The handshake bound is reached: closes the oldest connection that has sent
    /// nothing (tokens grow with time), if there is one, to make room.
    fn evict_silent(&mut self) -> bool {
        let oldest = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_silent())
            .map(|(token, _)| *token)
            .min();
        let Some(token) = oldest else {
            return false;
        };
        if let Some(conn) = self.conns.get_mut(&token) {
            debug!(
                "{}: sent nothing, and {} connections are in the handshake; closed",
                conn.peer, self.handshakes
            );
            conn.tell_silent();
        }
        self.remove(token);
        true
    }

    /// Counts the connections in the handshake again (each connection's `counted`
    /// follows its state).
    fn recount_handshakes(&mut self) {
        let mut n = 0;
        for conn in self.conns.values_mut() {
            conn.counted = conn.state == State::Handshake;
            n += usize::from(conn.counted);
        }
        self.handshakes = n;
    }

    /// Starts serving an accepted connection; `None` if it cannot be.
    fn add_conn(&mut self, mut stream: TcpStream, peer: std::net::SocketAddr, now: Instant) -> Option<&mut Conn> {
        // Acknowledgements are small and should leave at once.
        if let Err(e) = stream.set_nodelay(true) {
            debug!("{peer}: cannot set TCP_NODELAY: {e}");
        }
        let rx_len = conn::RX_START.min(ServerSession::min_rx_len(self.config.max_message));
        let rx = vec![0; rx_len];
        let mut session = match Session::server(self.config, rx, vec![0; self.tx_len], now) {
            Ok(s) => s,
            Err(e) => {
                warn!("{peer}: cannot start a session: {e}");
                return None;
            }
        };
        session.set_explicit_ack(MAX_UNCONFIRMED);
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            warn!("{peer}: cannot watch the connection: {e}");
            return None;
        }
        debug!("{peer}: connected");
        let mut stream = Stream::server(stream, self.shared.auth.clone());
        stream.edge_triggered();
        self.shared.metrics.connections_accepted.inc();
        let mut conn = Conn::new(stream, token, peer, session, rx_len, now);
        conn.dirty = true;
        self.dirty.push(token);
        self.conns.insert(token, conn);
        self.conns.get_mut(&token)
    }

    /// Runs every due timer.
    fn run_timers(&mut self, now: Instant) -> io::Result<()> {
        // Half the connection slots taken, or half the handshake places: silent
        // connections must make room.
        let due = self.timers.peek().is_some_and(|Reverse((t, _))| *t <= now);
        if due && self.handshakes >= self.handshake_limit / 2 {
            // Some may have completed since they were last looked at.
            self.recount_handshakes();
        }
        let slots_short =
            self.conns.len() >= (self.shared.max_clients / 2).max(1) || self.handshakes >= self.handshake_limit / 2;
        while let Some(&Reverse((t, token))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if conn.scheduled != Some(t) {
                continue;
            }
            conn.scheduled = None;
            let mut take_over = None;
            if !conn.is_lingering() {
                if conn.on_timer(now, slots_short) {
                    debug!(
                        "{}: sent nothing in {}; closed",
                        conn.peer,
                        time::human_core(conn::SILENT_TIMEOUT)
                    );
                    conn.tell_silent();
                    self.remove(token);
                    continue;
                }
                conn.session.handle_timeout(now);
                take_over = conn.drain(&mut self.shared, now)?;
            }
            mark_dirty(&mut self.dirty, conn, token);
            self.take_over(take_over, now)?;
        }
        Ok(())
    }

    /// Drops stale timer entries once they outnumber the live ones, so that the heap
    /// stays proportional to the number of connections.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.conns.len() + 64 {
            return;
        }
        self.timers = self
            .conns
            .iter()
            .filter_map(|(token, conn)| conn.scheduled.map(|t| Reverse((t, *token))))
            .collect();
    }

    /// Writes a touched connection's output, retires it if it is done, and reschedules
    /// its timer.
    fn service(&mut self, token: Token, now: Instant) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        conn.dirty = false;
        if conn.counted && conn.state != State::Handshake {
            conn.counted = false;
            self.handshakes = self.handshakes.saturating_sub(1);
        }
        if !conn.is_lingering() && conn.error.is_none() {
            // Messages for the client go in as the session has room (acknowledged
            // ones leave it, or in plain text, written ones).
            let waiting = conn.outbox.len();
            let flushed = conn.outbox.flush(&mut conn.session);
            conn.write();
            let again = conn.outbox.flush(&mut conn.session);
            if again.messages > 0 {
                conn.write();
            }
            let sent = flushed.messages + again.messages;
            // Sent, or dropped (too large for this client, or its session closing).
            self.queued = self.queued.saturating_sub(waiting - conn.outbox.len());
            let m = &self.shared.metrics;
            m.messages_sent.inc_by(sent);
            m.message_bytes_sent.inc_by(flushed.bytes + again.bytes);
            meter(m, conn);
            if conn.session.is_closed() {
                // Sending our CLOSE can complete an orderly close: take its event.
                let take_over = conn.drain(&mut self.shared, now)?;
                if take_over.is_some() {
                    return self.take_over(take_over, now);
                }
            }
        }
        let given_up = match conn.state {
            State::Lingering { until } => now >= until,
            _ => conn.give_up.is_some_and(|t| now >= t),
        };
        if conn.is_lingering() {
            if conn.eof || conn.error.is_some() || given_up {
                self.remove(token);
                return Ok(());
            }
        } else if conn.error.is_some() || conn.session.is_finished() || given_up {
            let reason = if given_up && conn.error.is_none() && !conn.session.is_finished() {
                Reason::Stalled
            } else {
                conn.reason()
            };
            conn.leave(&mut self.shared, reason, now)?;
            if conn.error.is_some() || conn.eof || given_up {
                self.remove(token);
                return Ok(());
            }
            // Our side is done; read what the peer still sends until it closes, so
            // that the kernel does not answer it with a reset that could destroy our
            // last frame in flight.
            conn.linger(now + LINGER);
            if conn.readable && !conn.queued {
                conn.queued = true;
                self.read_queue.push_back(token);
            }
        }
        let next = conn.next_deadline();
        if let Some(t) = next {
            if conn.scheduled.is_none_or(|s| t < s) {
                conn.scheduled = Some(t);
                self.timers.push(Reverse((t, token)));
            }
        }
        Ok(())
    }

    /// A resume found its session still served by an older connection: that
    /// connection is dropped (its client has moved on; whatever it still had in flight
    /// is resent on the new one) and the new one continues the session.
    fn take_over(&mut self, mut take_over: Option<TakeOver>, now: Instant) -> io::Result<()> {
        while let Some(TakeOver { new, old, session }) = take_over.take() {
            self.shared.metrics.takeovers.inc();
            let by = self.conns.get(&new).map(|c| c.peer);
            if let Some(conn) = self.conns.get_mut(&old) {
                conn.replaced(&mut self.shared, by, now)?;
            }
            self.remove(old);
            if let Some(conn) = self.conns.get_mut(&new) {
                take_over = conn.resume(&mut self.shared, session, now)?;
                mark_dirty(&mut self.dirty, conn, new);
            }
        }
        Ok(())
    }

    /// Forgets lost sessions whose resume window ran out.
    fn expire_sessions(&mut self, now: Instant) -> io::Result<()> {
        for entry in self.shared.registry.expire(now) {
            let reason = format!("not resumed within {}", time::human_core(self.shared.registry.window()));
            self.shared.printer.left(entry.id, entry.peer, reason, entry.messages)?;
        }
        Ok(())
    }

    fn remove(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            if conn.counted {
                self.handshakes = self.handshakes.saturating_sub(1);
            }
            meter(&self.shared.metrics, &mut conn);
            self.queued = self.queued.saturating_sub(conn.outbox.len());
            if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
                debug!("{}: deregister: {e}", conn.peer);
            }
            debug!("{}: connection closed", conn.peer);
        }
    }

    /// Handles pending stop requests; returns how the server stopped if it must stop
    /// now.
    fn on_stop_requests(&mut self, now: Instant) -> io::Result<Option<Stopped>> {
        for request in self.shutdown.requests() {
            if request == Request::Reopen {
                info!("SIGHUP: opening the output again");
                self.shared.sink.reopen();
                if let Some(auth) = &self.shared.auth {
                    match auth.reload() {
                        Ok(n) => info!(
                            "SIGHUP: allowed keys read again: {}",
                            plural(u64::try_from(n).unwrap_or(u64::MAX), "key")
                        ),
                        Err(e) => warn!("SIGHUP: cannot read the allowed keys again, the old list stays: {e:#}"),
                    }
                }
                continue;
            }
            if self.shutdown_deadline.is_some() {
                warn!(
                    "second stop request: exiting without waiting for {}",
                    sessions(self.conns.len())
                );
                let signal = match request {
                    Request::Signal(signal) => Some(signal),
                    Request::Trigger | Request::Reopen => None,
                };
                self.say_stopped(self.conns.len());
                return Ok(Some(Stopped::AtOnce { signal }));
            }
            self.begin_shutdown(now)?;
            self.stopping = Some((request, self.conns.len()));
        }
        Ok(None)
    }

    /// Stops accepting and closes every session with SHUTDOWN; they still receive (and
    /// acknowledge) what their clients already sent.
    fn begin_shutdown(&mut self, now: Instant) -> io::Result<()> {
        info!("shutting down: closing {}", sessions(self.conns.len()));
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_pending = false;
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        self.shared.shutting_down = true;
        // Connections that have not sent a byte have nothing to lose and nobody to
        // tell: closed at once, so that they do not hold the exit for the grace period.
        let silent: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_silent())
            .map(|(token, _)| *token)
            .collect();
        if !silent.is_empty() {
            debug!("closing {} connections that sent nothing", silent.len());
        }
        for token in silent {
            self.remove(token);
        }
        for (token, conn) in &mut self.conns {
            // A connection still in the handshake is refused with SHUTDOWN once it has
            // said whether it speaks binary or plain text, so that its client can tell
            // what happened (an error sent before that could only be plain text).
            if !conn.is_lingering() && conn.state != State::Handshake {
                conn.session.close(now, Code::Shutdown);
                // Shutting down: a HELLO is refused, so nothing is taken over.
                let _ = conn.drain(&mut self.shared, now)?;
            }
            mark_dirty(&mut self.dirty, conn, *token);
        }
        Ok(())
    }

    /// The one line that says the server stopped, how, and what became of the
    /// sessions it was serving (`lost` of them did not close in order). It goes to
    /// the log target [`STOPPED_TARGET`], which `soquete server` shows by default.
    fn say_stopped(&self, lost: usize) {
        let Some((request, serving)) = self.stopping else {
            return;
        };
        let how = match request {
            Request::Signal(signal) => shutdown::signal_name(signal),
            Request::Trigger | Request::Reopen => "stop requested",
        };
        let closed = serving.saturating_sub(lost);
        info!(
            target: STOPPED_TARGET,
            "stopped ({how}): {} closed in order, {lost} lost",
            sessions(closed)
        );
    }

    /// The shutdown grace period is over: every remaining session leaves now.
    fn drop_all(&mut self) -> io::Result<()> {
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            if let Some(conn) = self.conns.get_mut(&token) {
                let reason = if conn.session.is_finished() {
                    conn.reason()
                } else {
                    Reason::ShutdownTimeout
                };
                conn.leave(&mut self.shared, reason, time::now())?;
            }
            self.remove(token);
        }
        Ok(())
    }
}

/// `N sessions`, `1 session`.
fn sessions(n: usize) -> String {
    plural(u64::try_from(n).unwrap_or(u64::MAX), "session")
}

/// Raises the soft open-file limit to the hard limit, so that the server is not held
/// to a low default (1024 under systemd) when it may have more; warns if
/// `max_clients` still does not fit.
fn raise_open_file_limit(max_clients: usize) {
    let want = u64::try_from(max_clients)
        .unwrap_or(u64::MAX)
        .saturating_add(ACCEPT_SLACK as u64)
        .saturating_add(FDS_BESIDES_CONNS);
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            warn!("cannot raise the open-file limit: {e}");
            match rlimit::Resource::NOFILE.get_soft() {
                Ok(limit) => limit,
                Err(_) => return,
            }
        }
    };
    if limit < want {
        warn!(
            "the open-file limit is {limit}, too low for --max-clients {max_clients} (about {want} needed): \
             raise it (ulimit -n, or LimitNOFILE= in a systemd unit) or lower --max-clients"
        );
    } else {
        debug!("open-file limit {limit}");
    }
}

/// Adds what the connection's session counted since the last time to the metrics.
fn meter(m: &Metrics, conn: &mut Conn) {
    let now = conn.session.stats();
    let then = std::mem::replace(&mut conn.metered, now);
    m.bytes_received.inc_by(now.bytes_in.saturating_sub(then.bytes_in));
    m.bytes_sent.inc_by(now.bytes_out.saturating_sub(then.bytes_out));
    m.acknowledgements_received.inc_by(now.acked.saturating_sub(then.acked));
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn mark_dirty(dirty: &mut Vec<Token>, conn: &mut Conn, token: Token) {
    if !conn.dirty {
        conn.dirty = true;
        dirty.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_are_nonzero_and_distinct() {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), SINK).unwrap());
        let mut shared = Shared {
            printer: Printer::new(Lines::default(), Format::Text),
            sink: Sink::start(Output::from(io::sink()), waker).unwrap(),
            forward: None,
            active: 0,
            max_clients: 1,
            next_id: 0,
            tokens: RandomState::new(),
            token_counter: 0,
            scratch: Vec::new(),
            registry: Registry::new(Duration::ZERO, 1),
            shutting_down: false,
            auth: None,
            metrics: Metrics::default(),
            relay: false,
            relayed: Vec::new(),
            received: (0, 0),
        };
        let a = shared.session_token();
        let b = shared.session_token();
        assert!(a != 0 && b != 0 && a != b);
    }
}
