//! `soquete client`: sends each line of standard input as one message.
//!
//! Two threads. The `input` thread reads standard input in big chunks and hands over
//! blocks of whole lines through a bounded channel, waking the main loop with a
//! [`mio::Waker`]. The main loop drives one core [`Session`] over a non-blocking
//! [`TcpStream`]: socket bytes in, events out, lines in, bytes out, timers.
//!
//! Memory stays bounded: the session's `tx` holds messages until the server
//! acknowledges them; when it is full ([`SendError::Full`]) the loop keeps the line and
//! takes no more input until an acknowledgement frees room, so the channel fills up
//! and the reader thread blocks.
//!
//! With `--reconnect`, a lost connection is not the end: the unacknowledged messages
//! stay in `tx`, the loop connects again with exponential backoff and resumes the
//! session ([`Session::reconnect`], PROTOCOL.md §4.6); the server continues after the
//! last message it printed, so nothing is lost or shown twice. Input waits meanwhile.
//!
//! Every wait is bounded by `--timeout` measured from the last progress (an
//! acknowledgement, or for plain text a byte written), not from the start of the wait:
//! a server that keeps the connection alive but acknowledges nothing is given up on.

mod input;

use std::fmt::Write as _;
use std::io::{self, BufWriter, ErrorKind, IsTerminal as _, Stdout, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, bail, Context as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use soquete_core::session::Error as SendError;
use soquete_core::wire::{MAX_NAME_LEN, MSG_OVERHEAD};
use soquete_core::{Closure, Code, Config, Duration, Event, Instant, Mode, Session};

use self::input::Input;
use crate::keys;
use crate::pump::{self, OneRead, ReadStop, WriteStop};
use crate::secure::{self, ClientKeys, SecureError, Stream};
use crate::time::{self, human};
use soquete_text::{plural, write_escaped};

/// Largest message accepted from the server.
const MAX_MESSAGE: u32 = 65536;
/// Capacity of the session's transmit buffer: messages wait here until acknowledged.
const TX_LEN: usize = 256 * 1024;

/// The longest message the client sends in the binary protocol (its `--help` says so).
pub(crate) const MAX_LINE: usize = TX_LEN - MSG_OVERHEAD;
/// Blocks of lines waiting between the reader thread and the main loop.
const INPUT_BLOCKS: usize = 4;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// `--reconnect`: the first wait before connecting again, and the longest.
const BACKOFF_MIN: StdDuration = StdDuration::from_millis(20);
const BACKOFF_MAX: StdDuration = StdDuration::from_secs(2);

/// The longest line kept of those a plain-text server sends after the input ended.
const LATE_LINE_MAX: usize = 64 * 1024;

/// How long the rest of the input is read, after the stop word, to count its lines.
const COUNT_UNREAD_FOR: StdDuration = StdDuration::from_secs(1);
/// Piped input still going after this long gets a progress line (stderr a terminal).
const PROGRESS_AFTER: StdDuration = StdDuration::from_secs(1);
/// The progress line is redrawn at most this often.
const PROGRESS_EVERY: StdDuration = StdDuration::from_millis(200);

type ClientSession = Session<Vec<u8>, Vec<u8>>;

/// How a client behaves: `soquete client`'s flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Server address, `HOST:PORT`.
    pub connect: String,
    /// Name to introduce this client with (at most [`MAX_NAME_LEN`] bytes).
    pub name: Option<String>,
    /// Longest wait for progress: connecting, the handshake, the next acknowledgement,
    /// the close. Not zero.
    pub timeout: StdDuration,
    /// Speak plain text lines: no handshake, no acknowledgements.
    pub plain: bool,
    /// When the connection is lost, connect again and resume the session, giving up
    /// after this long without progress (zero: never). `None`: a loss is the end.
    pub reconnect: Option<StdDuration>,
    /// A line equal to this (ignoring ASCII case) ends the input; `None`: every line
    /// is sent.
    pub stop_word: Option<String>,
    /// The secure mode (PROTOCOL.md §10): this client's secret key file.
    pub key: Option<std::path::PathBuf>,
    /// With `key`: the server's public key, `soquete-pk:…` or a file holding it.
    pub server_key: Option<String>,
}

/// The exit status of `soquete client` when the server could not prove its key.
pub const EXIT_NOT_AUTHENTICATED: u8 = 3;

/// The server could not prove it holds the key the client was given: a man in the
/// middle, or the wrong `--server-key`. Nothing but the first handshake message (which
/// only the holder of that key can read) was sent.
#[derive(Debug)]
pub struct ServerNotAuthenticated {
    /// The server's address as given.
    pub target: String,
    /// The key it was expected to hold, in text form.
    pub expected: String,
    /// What the secure layer saw.
    pub cause: SecureError,
}

impl std::fmt::Display for ServerNotAuthenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.cause {
            SecureError::Refused(secure::Alert::HandshakeFailed) => {
                "it refused the handshake, which only the holder of that key can read".to_owned()
            }
            SecureError::ServerNotAuthenticated => "its answer to the handshake is not signed by that key".to_owned(),
            ref other => format!("the handshake ended with: {other}"),
        };
        write!(
            f,
            "{} could not prove its identity: {how}, so it does not hold the server key {}; \
             it is the wrong --server-key or a man in the middle, and nothing was sent but \
             the encrypted handshake",
            self.target, self.expected
        )
    }
}

impl std::error::Error for ServerNotAuthenticated {}

/// Reads `--key` and `--server-key`.
fn client_keys(options: &Options) -> anyhow::Result<Option<ClientKeys>> {
    match (&options.key, &options.server_key) {
        (Some(key), Some(server)) => ClientKeys::load(key, server).map(Some),
        _ => Ok(None),
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect: "127.0.0.1:8800".into(),
            name: None,
            timeout: StdDuration::from_secs(10),
            plain: false,
            reconnect: None,
            stop_word: Some("S".into()),
            key: None,
            server_key: None,
        }
    }
}

/// Runs the client until end of input or the stop word, then closes the session.
///
/// # Errors
/// Anything that keeps the lines from being delivered and acknowledged, with a message
/// for the user; the summary is on stderr already.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let keys = client_keys(options)?;
    // Without --reconnect, failing to connect is the end; with it, the loop retries.
    let first = if options.reconnect.is_some() {
        None
    } else {
        Some(connect(&options.connect, options.timeout)?)
    };
    let mut client = Client::new(options, first, keys)?;
    let closure = client.run()?;
    client.finish(closure)
}

/// `--name` values: at most [`MAX_NAME_LEN`] bytes (the HELLO frame's limit).
///
/// # Errors
/// A name that is too long, as a message for clap.
pub fn parse_name(s: &str) -> Result<String, String> {
    if s.len() > MAX_NAME_LEN {
        return Err(format!("at most {MAX_NAME_LEN} bytes, got {}", s.len()));
    }
    Ok(s.to_owned())
}

/// `--timeout` values: a duration that is not zero (a wait of nothing would fail at
/// once).
///
/// # Errors
/// Not a duration, or zero, as a message for clap.
pub fn parse_timeout(s: &str) -> Result<StdDuration, String> {
    let d = soquete_text::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0 (e.g. 10s, 500ms)".into());
    }
    Ok(d)
}

/// Resolves `target` and connects to the first address that answers within `timeout`.
fn connect(target: &str, timeout: StdDuration) -> anyhow::Result<(TcpStream, SocketAddr)> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {target:?} (expected HOST:PORT)"))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match std::net::TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                return Ok((TcpStream::from_std(stream), *addr));
            }
            Err(e) => {
                log::debug!("connect {addr}: {e}");
                last = Some(e);
            }
        }
    }
    let why = match last {
        None => return Err(anyhow!("cannot resolve {target:?}: no addresses")),
        Some(e) if e.kind() == ErrorKind::ConnectionRefused => {
            "connection refused — is soquete server running?".to_owned()
        }
        Some(e) if e.kind() == ErrorKind::TimedOut => format!("no answer within {}", human(timeout)),
        Some(e) => e.to_string(),
    };
    Err(anyhow!("cannot connect to {target}: {why}"))
}

/// Why the client stopped taking input.
#[derive(Debug)]
enum Stop {
    /// End of input.
    EndOfInput,
    /// The stop word, as this line of the input.
    Word { line: u64 },
    /// A line the server would not accept.
    TooLarge { line: u64, len: u64, max: u32 },
    /// Standard input failed.
    InputError(io::Error),
    /// The server started an orderly close.
    PeerClosing(Code),
}

/// Where the client stands with the server.
#[derive(Debug)]
enum Link {
    /// A connection carries the session.
    Connected(Connection),
    /// `--reconnect`: no connection; the next attempt is at `at`.
    BackingOff { at: Instant },
}

/// One connection to the server and what is known of it.
#[derive(Debug)]
struct Connection {
    stream: Stream,
    peer: SocketAddr,
    /// The session was established (or resumed) on it.
    established: bool,
    /// The session was told to close on it.
    closing: bool,
    /// End of stream (or an error) seen on the socket.
    read_closed: bool,
    /// The socket failed.
    error: Option<io::Error>,
    /// After the session ended: until when its last bytes may take to leave.
    linger: Option<Instant>,
    /// The first bytes the server sent on it (at most [`FIRST_BYTES`]), to quote
    /// an answer that is not soquete (`ERR server full`, PROTOCOL.md §7.2).
    first: Vec<u8>,
}

/// How many of a connection's first bytes are kept.
const FIRST_BYTES: usize = 64;

/// The session as the pump sees it, keeping a copy of the connection's first bytes.
struct Peek<'a> {
    session: &'a mut ClientSession,
    first: &'a mut Vec<u8>,
}

impl pump::Endpoint for Peek<'_> {
    fn input_buffer(&mut self) -> &mut [u8] {
        self.session.input_buffer()
    }

    fn received(&mut self, now: Instant, n: usize) -> std::ops::ControlFlow<()> {
        let room = FIRST_BYTES.saturating_sub(self.first.len()).min(n);
        if room > 0 {
            let got = self.session.input_buffer().get(..room).unwrap_or_default();
            self.first.extend_from_slice(got);
        }
        pump::Endpoint::received(self.session, now, n)
    }

    fn output(&mut self) -> &[u8] {
        pump::Endpoint::output(self.session)
    }

    fn sent(&mut self, n: usize) {
        pump::Endpoint::sent(self.session, n);
    }
}

impl Connection {
    fn new(stream: Stream, peer: SocketAddr) -> Self {
        Connection {
            stream,
            peer,
            established: false,
            closing: false,
            read_closed: false,
            error: None,
            linger: None,
            first: Vec::new(),
        }
    }
}

struct Client {
    session: ClientSession,
    link: Link,
    /// Some connection was made (a later one is a reconnect).
    ever_connected: bool,
    target: String,
    timeout: StdDuration,
    poll: Poll,
    /// `--reconnect`: the state of getting a connection back.
    retry: Option<Retry>,
    /// Kept here too: the reader thread ends after its last wake, and closing the
    /// waker's fd then would take the pending wake-up out of the poll with it.
    _waker: Arc<Waker>,
    input: Receiver<Input>,
    /// The block of lines being sent, and where its next line starts.
    block: Vec<u8>,
    pos: usize,
    /// Lines taken from the input so far (the number of the last one).
    line_no: u64,
    /// Some connection got as far as an established session.
    ever_established: bool,
    stop: Option<Stop>,
    /// `--stop-word`: a line equal to it (ignoring ASCII case) ends the input.
    stop_word: Option<Vec<u8>>,
    /// Standard input is a terminal: someone types the lines.
    typed: bool,
    /// The start-up line was shown (typed input only).
    announced: bool,
    /// The last progress, for `--timeout`.
    progress: Progress,
    /// Without `--reconnect`: the client gave up waiting for progress.
    stalled: Option<String>,
    /// Plain text: the server's `ERR` lines (PROTOCOL.md §7.2), how many and the first.
    rejected: Option<(u64, Vec<u8>)>,
    /// Plain text: lines the server sent after the client's input ended.
    late_lines: u64,
    /// Plain text: the server had not closed the connection `--timeout` after the
    /// client's input ended.
    unclosed: bool,
    /// The progress line for long piped input, when stderr is a terminal.
    meter: Meter,
    out: BufWriter<Stdout>,
    out_failed: bool,
    /// The secure mode's keys.
    keys: Option<ClientKeys>,
    /// A secure handshake failed in a way another attempt would not repair.
    secure_failure: Option<SecureError>,
}

/// What the client had seen at its last progress.
#[derive(Debug, Clone, Copy)]
struct Progress {
    at: Instant,
    acked: u64,
    bytes_out: u64,
    bytes_in: u64,
}

/// The progress line of a long piped input.
#[derive(Debug)]
enum Meter {
    /// Never shown: stderr is not a terminal, or the input is typed.
    Off,
    /// Shown once the input is still going at `from`.
    Waiting { from: std::time::Instant },
    /// On screen since `since`; redrawn after `next`.
    Shown {
        bar: ProgressBar,
        since: std::time::Instant,
        next: std::time::Instant,
    },
}

impl Meter {
    /// Shows or refreshes the line with the session's figures (at most every
    /// [`PROGRESS_EVERY`]).
    fn update(&mut self, session: &ClientSession) {
        let now = std::time::Instant::now();
        match self {
            Meter::Off => {}
            Meter::Waiting { from } => {
                if now >= *from {
                    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                        bar.set_style(style);
                    }
                    // The rate counts from the start of the input, like the summary.
                    let since = *from - PROGRESS_AFTER;
                    *self = Meter::Shown { bar, since, next: now };
                    self.update(session);
                }
            }
            Meter::Shown { bar, since, next } => {
                if now >= *next {
                    let stats = session.stats();
                    let secs = now.duration_since(*since).as_secs_f64().max(0.001);
                    bar.set_message(match session.mode() {
                        Mode::Binary => format!(
                            "sent {}, {} acknowledged ({:.0}/s)",
                            plural(stats.sent, "message"),
                            stats.acked,
                            stats.acked as f64 / secs
                        ),
                        Mode::Plain => {
                            format!(
                                "sent {} ({:.0}/s)",
                                plural(stats.sent, "line"),
                                stats.sent as f64 / secs
                            )
                        }
                    });
                    bar.tick();
                    *next = now + PROGRESS_EVERY;
                }
            }
        }
    }

    /// Takes the line off the screen, for the summary.
    fn clear(&mut self) {
        if let Meter::Shown { bar, .. } = std::mem::replace(self, Meter::Off) {
            bar.finish_and_clear();
        }
    }
}

/// `--reconnect` bookkeeping.
#[derive(Debug)]
struct Retry {
    /// Give up after this long without progress (`--reconnect-for`; zero: never).
    limit: StdDuration,
    /// The next wait after a failed attempt.
    backoff: StdDuration,
    /// Since when the client has made no progress (`None`: it is making progress).
    since: Option<Instant>,
    /// Sessions lost after they were established.
    losses: u64,
    /// What went wrong last: a lost session or a failed connection attempt.
    last: String,
    /// Connections made after the first.
    reconnects: u64,
    /// Of those, resumed by the server (the others started a new session).
    resumed: u64,
    /// Set when the client gave up: why.
    gave_up: Option<String>,
    /// Pseudo-random jitter state, so that clients cut at once do not retry in step.
    jitter: u64,
}

impl Retry {
    /// The wait before the next attempt (the backoff, less up to half of it at random),
    /// doubling the backoff for the time after.
    fn next_wait(&mut self) -> StdDuration {
        // xorshift64: plenty for spreading retries.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        let half = u64::try_from(base.as_micros() / 2).unwrap_or(u64::MAX).max(1);
        base - StdDuration::from_micros(self.jitter % half)
    }
}

impl Client {
    fn new(args: &Options, first: Option<(TcpStream, SocketAddr)>, keys: Option<ClientKeys>) -> anyhow::Result<Client> {
        let now = time::now();
        let timeout = time::to_core(args.timeout);
        let config = Config {
            max_message: MAX_MESSAGE,
            // A plain-text server (`nc -l`) may never send a byte: receiving nothing
            // is no reason to give up on it.
            idle_timeout: if args.plain { Duration::ZERO } else { IDLE_TIMEOUT },
            handshake_timeout: timeout,
            close_timeout: timeout,
            ..Config::DEFAULT
        };
        let rx = vec![0; ClientSession::min_rx_len(MAX_MESSAGE)];
        let tx = vec![0; TX_LEN];
        let session = if args.plain {
            Session::plain_client(config, rx, tx, now)
        } else {
            Session::client(config, args.name.as_deref().unwrap_or(""), rx, tx, now)
        }
        .map_err(|e| anyhow!("cannot start the session: {e}"))?;

        let poll = Poll::new()?;
        let link = match first {
            Some((stream, peer)) => {
                let mut stream = wrap(stream, keys.as_ref())?;
                poll.registry()
                    .register(&mut stream, SOCKET, Interest::READABLE | Interest::WRITABLE)?;
                Link::Connected(Connection::new(stream, peer))
            }
            None => Link::BackingOff { at: now },
        };
        let retry = args.reconnect.map(|limit| Retry {
            limit,
            backoff: BACKOFF_MIN,
            since: Some(now),
            losses: 0,
            last: String::new(),
            reconnects: 0,
            resumed: 0,
            gave_up: None,
            jitter: u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        });
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (to_main, from_reader) = mpsc::sync_channel(INPUT_BLOCKS);
        input::spawn(io::stdin(), to_main, Arc::clone(&waker), TX_LEN).context("cannot start the input thread")?;
        let typed = io::stdin().is_terminal();
        let meter = if !typed && io::stderr().is_terminal() {
            Meter::Waiting {
                from: std::time::Instant::now() + PROGRESS_AFTER,
            }
        } else {
            Meter::Off
        };

        Ok(Client {
            ever_connected: matches!(link, Link::Connected(_)),
            session,
            link,
            target: args.connect.clone(),
            timeout: args.timeout,
            poll,
            retry,
            _waker: waker,
            input: from_reader,
            block: Vec::new(),
            pos: 0,
            line_no: 0,
            ever_established: false,
            stop: None,
            stop_word: args.stop_word.as_ref().map(|w| w.as_bytes().to_vec()),
            typed,
            announced: false,
            progress: Progress {
                at: now,
                acked: 0,
                bytes_out: 0,
                bytes_in: 0,
            },
            stalled: None,
            rejected: None,
            late_lines: 0,
            unclosed: false,
            meter,
            out: BufWriter::new(io::stdout()),
            out_failed: false,
            keys,
            secure_failure: None,
        })
    }

    /// Drives the session until it has ended and its last bytes are out (or cannot go
    /// out). Returns how it ended.
    fn run(&mut self) -> anyhow::Result<Closure> {
        let mut events = Events::with_capacity(16);
        loop {
            let now = time::now();
            if let Link::BackingOff { at } = self.link {
                if now >= at {
                    if let Err(closure) = self.reconnect(now) {
                        return Ok(closure);
                    }
                }
            }
            if let Link::Connected(_) = self.link {
                self.receive(now);
                self.feed(now);
                self.transmit(now);
                self.check_progress(now);
                self.meter.update(&self.session);
                if let Some(closure) = self.session.closure() {
                    if self.wants_resume(closure) {
                        self.disconnect(now);
                        continue;
                    }
                    let finished = self.session.is_finished();
                    let timeout = time::to_core(self.timeout);
                    if let Link::Connected(conn) = &mut self.link {
                        let deadline = *conn.linger.get_or_insert(now + timeout);
                        if finished || conn.error.is_some() || now >= deadline {
                            if !finished && conn.error.is_none() && self.stalled.is_none() {
                                // A plain-text server that stopped reading keeps our
                                // last lines: that is a failure, not an orderly end.
                                self.stalled =
                                    Some(format!("{} took no input for {}", self.target, human(self.timeout)));
                            }
                            // The peer sees end of stream after our last frame.
                            let _ = conn.stream.shutdown(Shutdown::Write);
                            let answer_left = self.session.mode() == Mode::Plain
                                && finished
                                && conn.error.is_none()
                                && !conn.read_closed;
                            if answer_left {
                                self.read_plain_answer();
                            }
                            self.flush_out();
                            return Ok(closure);
                        }
                    }
                }
                if self.session.poll_timeout().is_some_and(|t| t <= now) {
                    self.session.handle_timeout(now);
                    self.drain_events(now);
                    continue;
                }
            }
            let wake = match &self.link {
                Link::Connected(conn) => [self.session.poll_timeout(), conn.linger, self.progress_deadline()]
                    .into_iter()
                    .flatten()
                    .min(),
                Link::BackingOff { at } => Some(*at),
            };
            // The progress line is redrawn on time even when nothing else happens.
            let wake = match self.meter {
                Meter::Off => wake,
                _ => Some(wake.map_or(now + time::to_core(PROGRESS_EVERY), |w| {
                    w.min(now + time::to_core(PROGRESS_EVERY))
                })),
            };
            self.flush_out();
            match self.poll.poll(&mut events, wake.map(|t| time::until(t, now))) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("poll failed"),
            }
        }
    }

    /// True while the client waits for the server: messages not acknowledged, or (plain
    /// text) bytes not written.
    fn waiting(&self) -> bool {
        match self.session.mode() {
            Mode::Binary => self.session.unacked() > 0,
            Mode::Plain => self.session.wants_transmit(),
        }
    }

    /// When the client gives up waiting for progress, if it is waiting on an
    /// established session (the handshake and the close have the core's own timers).
    fn progress_deadline(&self) -> Option<Instant> {
        let established = matches!(&self.link, Link::Connected(conn) if conn.established);
        (established && self.waiting()).then(|| self.progress.at + time::to_core(self.timeout))
    }

    /// Notes progress, or gives up after `--timeout` without any: a server that keeps
    /// the connection alive (answering PINGs) but acknowledges nothing would otherwise
    /// keep the client forever.
    fn check_progress(&mut self, now: Instant) {
        let stats = self.session.stats();
        let moved = stats.acked != self.progress.acked
            || (self.session.mode() == Mode::Plain && stats.bytes_out != self.progress.bytes_out);
        if moved || !self.waiting() {
            self.progressed(now);
            return;
        }
        let failed = matches!(&self.link, Link::Connected(conn) if conn.error.is_some());
        let Some(deadline) = self.progress_deadline().filter(|_| !failed) else {
            return;
        };
        if now < deadline {
            return;
        }
        let mut why = match self.session.mode() {
            Mode::Binary => format!("no acknowledgement from {} for {}", self.target, human(self.timeout)),
            Mode::Plain => format!("{} took no input for {}", self.target, human(self.timeout)),
        };
        if stats.bytes_in != self.progress.bytes_in {
            why.push_str(" although it keeps the connection alive");
        }
        if self.retry.is_none() {
            self.stalled = Some(why.clone());
        }
        self.lost(now, io::Error::new(ErrorKind::TimedOut, why));
    }

    /// Something moved: the `--timeout` and `--reconnect-for` clocks start again.
    fn progressed(&mut self, now: Instant) {
        let stats = self.session.stats();
        self.progress = Progress {
            at: now,
            acked: stats.acked,
            bytes_out: stats.bytes_out,
            bytes_in: stats.bytes_in,
        };
        let established = matches!(&self.link, Link::Connected(conn) if conn.established);
        if let Some(retry) = &mut self.retry {
            if established {
                retry.since = None;
                retry.backoff = BACKOFF_MIN;
            }
        }
    }

    /// `--reconnect`: true if the session ended in a way that another connection can
    /// repair, and there is something left to deliver.
    fn wants_resume(&self, closure: Closure) -> bool {
        if self.retry.is_none() || self.session.mode() != Mode::Binary || self.secure_failure.is_some() {
            return false;
        }
        let input_done = matches!(
            self.stop,
            Some(Stop::EndOfInput | Stop::Word { .. } | Stop::TooLarge { .. } | Stop::InputError(_))
        );
        let work_left = self.session.unacked() > 0 || !input_done;
        match closure {
            // The connection went away, or the server stopped answering.
            Closure::Eof
            | Closure::Aborted(Code::IdleTimeout | Code::HandshakeTimeout | Code::CloseTimeout)
            | Closure::Refused(Code::ServerFull | Code::Shutdown)
            | Closure::PeerError(Code::Shutdown) => work_left,
            // A server shutting down closes in order; it may be back.
            Closure::Orderly {
                code: Code::Shutdown,
                by_peer: true,
            } => work_left,
            _ => false,
        }
    }

    /// Drops the lost connection and schedules the next attempt.
    fn disconnect(&mut self, now: Instant) {
        let Some(retry) = &mut self.retry else {
            return;
        };
        let mut wait = retry.next_wait();
        if let (false, Some(since)) = (retry.limit.is_zero(), retry.since) {
            // Giving up is checked at the next attempt: not later than the limit.
            wait = wait.min(retry.limit.saturating_sub(elapsed(since, now)));
        }
        let at = now + time::to_core(wait);
        if let Link::Connected(mut conn) = std::mem::replace(&mut self.link, Link::BackingOff { at }) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            let why = match (&conn.error, self.session.closure()) {
                (Some(e), _) => e.to_string(),
                (None, Some(c)) => c.to_string(),
                (None, None) => "unknown".to_owned(),
            };
            log::info!(
                "connection lost ({why}); {} messages not acknowledged; reconnecting",
                self.session.unacked()
            );
            if conn.established {
                retry.losses += 1;
                retry.last = format!("the session was lost ({why})");
            }
        }
        retry.since.get_or_insert(now);
        self.flush_out();
    }

    /// `--reconnect`: connects again, resuming the session. Returns the closure to end
    /// with once the client gives up.
    fn reconnect(&mut self, now: Instant) -> Result<(), Closure> {
        let Some(retry) = &mut self.retry else {
            return Err(self.session.closure().unwrap_or(Closure::Eof));
        };
        let waited = retry.since.map_or(StdDuration::ZERO, |since| elapsed(since, now));
        if !retry.limit.is_zero() && waited >= retry.limit {
            let lost = match retry.losses {
                0 => String::new(),
                1 => "; 1 session lost".to_owned(),
                n => format!("; {n} sessions lost"),
            };
            retry.gave_up = Some(format!(
                "no progress with {} for {}{lost}; last: {}",
                self.target,
                human(waited),
                retry.last
            ));
            return Err(self.session.closure().unwrap_or(Closure::Eof));
        }
        let budget = if retry.limit.is_zero() {
            self.timeout
        } else {
            retry.limit.saturating_sub(waited).min(self.timeout)
        };
        let attempt = if budget.is_zero() {
            Err(anyhow!("no time left"))
        } else {
            connect(&self.target, budget).and_then(|(s, peer)| Ok((wrap(s, self.keys.as_ref())?, peer)))
        };
        match attempt {
            Ok((mut stream, peer)) => {
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut stream, SOCKET, Interest::READABLE | Interest::WRITABLE)
                {
                    log::warn!("cannot watch the connection: {e}");
                    self.link = Link::BackingOff {
                        at: now + time::to_core(retry.next_wait()),
                    };
                    return Ok(());
                }
                log::info!("connected to {peer}");
                if self.ever_connected {
                    retry.reconnects += 1;
                }
                // HELLO again, with the session's token once it has one; unacknowledged
                // messages wait for the WELCOME (cannot fail: a binary client).
                let _ = self.session.reconnect(now);
                self.link = Link::Connected(Connection::new(stream, peer));
                self.ever_connected = true;
                if matches!(self.stop, Some(Stop::PeerClosing(_))) {
                    self.stop = None;
                }
                Ok(())
            }
            Err(e) => {
                let waited = retry
                    .since
                    .map_or(StdDuration::ZERO, |since| elapsed(since, time::now()));
                log::debug!("reconnect: {e:#}");
                retry.last = format!("{e:#}");
                // Not past the limit: giving up is checked at the next attempt.
                let mut wait = retry.next_wait();
                if !retry.limit.is_zero() {
                    wait = wait.min(retry.limit.saturating_sub(waited));
                }
                self.link = Link::BackingOff {
                    at: time::now() + time::to_core(wait),
                };
                Ok(())
            }
        }
    }

    /// Reads what the socket has into the session, handling events after each read.
    fn receive(&mut self, now: Instant) {
        while !self.session.is_closed() {
            let Link::Connected(conn) = &mut self.link else { break };
            if conn.read_closed {
                break;
            }
            // One read at a time: the events of each are handled before the next.
            let mut peek = Peek {
                session: &mut self.session,
                first: &mut conn.first,
            };
            let outcome = pump::read(&mut conn.stream, &mut OneRead(&mut peek), now, usize::MAX);
            match outcome.stop {
                ReadStop::Stopped | ReadStop::Budget => {}
                ReadStop::Full => {
                    // Full of frames the events below will consume.
                    if self.drain_events(now) == 0 {
                        break;
                    }
                    continue;
                }
                ReadStop::WouldBlock => break,
                ReadStop::Eof => {
                    conn.read_closed = true;
                    // A plain-text server that stops talking may still be listening
                    // (`nc -l < /dev/null`): keep sending until a write fails.
                    // One that said `ERR` (PROTOCOL.md §7.2) has closed for good.
                    if self.session.mode() == Mode::Binary || self.rejected.is_some() {
                        self.session.handle_eof(now);
                    }
                }
                ReadStop::Failed(e) => self.lost(now, e),
            }
            self.drain_events(now);
        }
        self.drain_events(now);
    }

    /// Writes what the session has to send until the socket would block.
    fn transmit(&mut self, now: Instant) {
        if let Link::Connected(conn) = &mut self.link {
            if conn.error.is_none() {
                let mut failed = match pump::write(&mut conn.stream, &mut self.session).stop {
                    WriteStop::Failed(e) => Some(e),
                    _ => None,
                };
                // What the secure layer queued by itself (the key confirmation).
                if failed.is_none() {
                    failed = conn.stream.flush().err().filter(|e| e.kind() != ErrorKind::WouldBlock);
                }
                if let Some(e) = failed {
                    self.lost(now, e);
                }
            }
        }
        // Sending can complete a close (our CLOSE went out after the peer's).
        self.drain_events(now);
    }

    /// The connection failed: the session ends as at end of stream.
    fn lost(&mut self, now: Instant, e: io::Error) {
        log::debug!("connection lost: {e}");
        if let Some(failure) = secure::secure_error(&e) {
            // Another attempt would meet the same key: not worth a reconnect.
            let fatal = matches!(
                failure,
                SecureError::ServerNotAuthenticated
                    | SecureError::NotSecure
                    | SecureError::Refused(
                        secure::Alert::HandshakeFailed | secure::Alert::UnknownKey | secure::Alert::Unexpected
                    )
            );
            if fatal {
                self.secure_failure.get_or_insert(failure);
            }
        }
        self.session.handle_eof(now);
        if let Link::Connected(conn) = &mut self.link {
            conn.read_closed = true;
            conn.error.get_or_insert(e);
        }
    }

    /// Handles every pending event; returns how many there were.
    fn drain_events(&mut self, now: Instant) -> usize {
        let mut count = 0;
        let mode = self.session.mode();
        while let Some(event) = self.session.poll_event(now) {
            count += 1;
            match event {
                Event::Established { mode, resumed } => {
                    if let Link::Connected(conn) = &mut self.link {
                        log::info!("session established with {} ({mode:?}, resumed: {resumed})", conn.peer);
                        conn.established = true;
                        if self.typed && !self.announced {
                            self.announced = true;
                            let end = match &self.stop_word {
                                Some(word) => format!("a line {} to end", String::from_utf8_lossy(word)),
                                None => "Ctrl-D to end".to_owned(),
                            };
                            let secure = if conn.stream.is_secure() {
                                " (secure: the server proved its key)"
                            } else {
                                ""
                            };
                            eprintln!("connected to {}{secure}; type lines, {end}", conn.peer);
                        }
                    }
                    self.ever_established = true;
                    // The wait for acknowledgements starts now, not at the connection's
                    // loss; whether the session makes progress is for check_progress.
                    self.progress.at = now;
                    if let Some(retry) = &mut self.retry {
                        if resumed {
                            retry.resumed += 1;
                        }
                    }
                }
                Event::Message { payload, .. } => {
                    let payload = payload.to_vec();
                    self.server_line(mode, &payload);
                }
                Event::Acked { seq } => log::trace!("acknowledged up to {seq}"),
                Event::PeerClosing(code) => {
                    log::info!("server closing the session: {}", code.describe());
                    self.stop.get_or_insert(Stop::PeerClosing(code));
                }
                Event::Hello { .. } | Event::Closed(_) => {}
            }
        }
        count
    }

    /// Prints a message or line from the server; notes a plain-text `ERR` line.
    fn server_line(&mut self, mode: Mode, payload: &[u8]) {
        if mode == Mode::Plain && (payload == b"ERR" || payload.starts_with(b"ERR ")) {
            match &mut self.rejected {
                Some((n, _)) => *n += 1,
                None => self.rejected = Some((1, payload.to_vec())),
            }
        }
        let printed = write_escaped(&mut self.out, payload).and_then(|()| self.out.write_all(b"\n"));
        if let Err(e) = printed {
            if !self.out_failed {
                log::warn!("cannot print messages from the server: {e}");
                self.out_failed = true;
            }
        }
    }

    /// Plain text, after the input ended and was written (the write side is shut
    /// down): reads the server's lines until it closes, for at most `--timeout`, so
    /// that an `ERR` answer to the last lines is always seen. Lines longer than
    /// [`LATE_LINE_MAX`] are cut there.
    fn read_plain_answer(&mut self) {
        let deadline = std::time::Instant::now() + self.timeout;
        let mut events = Events::with_capacity(4);
        let mut line = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Link::Connected(conn) = &mut self.link else { return };
            let got = match io::Read::read(&mut conn.stream, &mut buf) {
                Ok(0) => None,
                Ok(n) => Some(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        self.unclosed = true;
                        break;
                    }
                    match self.poll.poll(&mut events, Some(left)) {
                        Ok(()) => continue,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => {
                            log::debug!("poll failed: {e}");
                            break;
                        }
                    }
                }
                Err(e) => {
                    log::debug!("reading the server's answer: {e}");
                    None
                }
            };
            let Some(bytes) = got else {
                conn.read_closed = true;
                break;
            };
            let mut complete = Vec::new();
            for &b in bytes {
                if b == b'\n' {
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    complete.push(std::mem::take(&mut line));
                } else if line.len() < LATE_LINE_MAX {
                    line.push(b);
                }
            }
            for l in complete {
                self.late_lines += 1;
                self.server_line(Mode::Plain, &l);
            }
        }
        if !line.is_empty() {
            self.late_lines += 1;
            self.server_line(Mode::Plain, &line);
        }
    }

    /// Sends lines until the input runs dry or the session has no room; starts the
    /// close once there is nothing more to send.
    fn feed(&mut self, now: Instant) {
        if !matches!(&self.link, Link::Connected(conn) if conn.established) {
            return;
        }
        while self.stop.is_none() && self.session.is_open() {
            let Some(rest) = self.block.get(self.pos..).filter(|r| !r.is_empty()) else {
                match self.input.try_recv() {
                    Ok(Input::Lines(block)) => {
                        self.block = block;
                        self.pos = 0;
                    }
                    Ok(Input::Long(len)) => {
                        self.line_no += 1;
                        self.stop = Some(Stop::TooLarge {
                            line: self.line_no,
                            len,
                            max: self.send_limit(),
                        });
                    }
                    Ok(Input::End) | Err(TryRecvError::Disconnected) => self.stop = Some(Stop::EndOfInput),
                    Ok(Input::Error(e)) => self.stop = Some(Stop::InputError(e)),
                    Err(TryRecvError::Empty) => break,
                }
                continue;
            };
            let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let raw = rest.get(..len).unwrap_or(rest);
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if self.stop_word.as_deref().is_some_and(|w| line.eq_ignore_ascii_case(w)) {
                self.pos += len + 1;
                self.line_no += 1;
                self.stop = Some(Stop::Word { line: self.line_no });
                break;
            }
            match self.session.send(line) {
                Ok(_) => {
                    self.pos += len + 1;
                    self.line_no += 1;
                }
                // Backpressure: keep the line until an acknowledgement makes room.
                Err(SendError::Full) => break,
                Err(SendError::TooLarge { max }) => {
                    self.stop = Some(Stop::TooLarge {
                        line: self.line_no + 1,
                        len: line.len() as u64,
                        max,
                    });
                }
                // Closing or closed: the events say why.
                Err(e) => {
                    log::debug!("send: {e}");
                    break;
                }
            }
        }
        let ours = matches!(
            self.stop,
            Some(Stop::EndOfInput | Stop::Word { .. } | Stop::TooLarge { .. } | Stop::InputError(_))
        );
        // The close starts once everything is acknowledged: until then `--timeout`
        // counts from the last acknowledgement (check_progress), and the close's own
        // timeout (the core's, from the CLOSE on) is left for the CLOSE alone.
        let acked = self.session.unacked() == 0;
        if let Link::Connected(conn) = &mut self.link {
            if ours && acked && !conn.closing {
                conn.closing = true;
                self.session.close(now, Code::Normal);
                self.drain_events(now);
            }
        }
    }

    /// The longest line the session would send (as [`SendError::TooLarge`] reports).
    fn send_limit(&self) -> u32 {
        let own = match self.session.mode() {
            Mode::Binary => MAX_LINE,
            Mode::Plain => TX_LEN - 1,
        };
        u32::try_from(own).unwrap_or(u32::MAX).min(match self.session.mode() {
            Mode::Binary => self.session.peer_max_message(),
            Mode::Plain => u32::MAX,
        })
    }

    /// Lines not sent: the rest of the current block, the blocks waiting in the
    /// channel, and what the input gives within `bound` (zero: only what has been read
    /// already). The flag is false when more input may follow.
    fn unsent_lines(&mut self, bound: StdDuration) -> (u64, bool) {
        let count = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count() as u64;
        let mut n = self.block.get(self.pos..).map_or(0, count);
        self.block.clear();
        self.pos = 0;
        let until = std::time::Instant::now() + bound;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let next = if left.is_zero() {
                self.input
                    .try_recv()
                    .map_err(|e| matches!(e, TryRecvError::Disconnected))
            } else {
                self.input
                    .recv_timeout(left)
                    .map_err(|e| matches!(e, mpsc::RecvTimeoutError::Disconnected))
            };
            match next {
                Ok(Input::Lines(b)) => n += count(&b),
                Ok(Input::Long(_)) => n += 1,
                Ok(Input::End | Input::Error(_)) | Err(true) => return (n, true),
                Err(false) => return (n, false),
            }
        }
    }

    /// How far the input got, for a connection that ended before it was all sent:
    /// `N of M lines, K not sent` when the input was piped and has ended (within
    /// [`COUNT_UNREAD_FOR`]), else `N lines, input not finished`.
    fn input_left(&mut self, sent: u64) -> String {
        let read_all = matches!(self.stop, Some(Stop::EndOfInput | Stop::Word { .. }));
        let (n, complete) = if read_all {
            (0, true)
        } else if self.typed || self.stop.is_some() {
            (0, false)
        } else {
            self.unsent_lines(COUNT_UNREAD_FOR)
        };
        if complete {
            format!("{sent} of {} lines, {n} not sent", sent + n)
        } else {
            format!("{}, input not finished", plural(sent, "line"))
        }
    }

    /// After the stop word, on piped input: where the input stopped and how much of it
    /// was left, so that a stray `S` line in a file does not drop the rest silently.
    fn stop_notice(&mut self) {
        let Some(Stop::Word { line }) = self.stop else { return };
        if self.typed {
            return;
        }
        let word = String::from_utf8_lossy(self.stop_word.as_deref().unwrap_or_default()).into_owned();
        let (n, complete) = self.unsent_lines(COUNT_UNREAD_FOR);
        let lines = if n == 1 { "line" } else { "lines" };
        let left = if complete {
            format!("{n} {lines} left unread")
        } else {
            format!("{n} {lines} and the rest of the input (still open) left unread")
        };
        eprintln!("stopped at line {line}, a line {word:?} (--stop-word none sends every line): {left}");
    }

    fn flush_out(&mut self) {
        if let Err(e) = self.out.flush() {
            if !self.out_failed {
                log::warn!("cannot print messages from the server: {e}");
                self.out_failed = true;
            }
        }
    }

    /// Prints the summary and turns the way the session ended into the exit status.
    fn finish(mut self, closure: Closure) -> anyhow::Result<()> {
        let stats = self.session.stats();
        let mode = self.session.mode();
        let unacked = self.session.unacked();
        self.meter.clear();
        self.stop_notice();
        if self.ever_established {
            let reconnects = match &self.retry {
                Some(r) if r.reconnects > 0 => {
                    format!(
                        " ({}, {} resumed)",
                        plural(r.reconnects, "reconnect"),
                        plural(r.resumed, "session")
                    )
                }
                _ => String::new(),
            };
            match mode {
                Mode::Binary => eprintln!(
                    "sent {}, {} acknowledged, {} received{reconnects}",
                    plural(stats.sent, "message"),
                    stats.acked,
                    stats.received
                ),
                Mode::Plain => eprintln!(
                    "sent {} (plain text: no acknowledgements), {} received",
                    plural(stats.sent, "line"),
                    stats.received + self.late_lines
                ),
            }
        }
        let not_acked = format!("{unacked} of {} messages not acknowledged", stats.sent);
        // What an abort left behind, if anything: ": 3 of 5 messages not acknowledged".
        let left = if unacked > 0 {
            format!(": {not_acked}")
        } else {
            String::new()
        };
        if let Some(failure) = self.secure_failure.take() {
            return Err(self.secure_failure_error(failure));
        }
        if let Some(why) = self.retry.as_mut().and_then(|r| r.gave_up.take()) {
            bail!("gave up reconnecting: {why}; {not_acked}");
        }
        if let Some(why) = self.stalled.take() {
            match mode {
                Mode::Binary => bail!("{why}: {not_acked}"),
                Mode::Plain => bail!("{why}: of {} lines sent, the last ones were not written", stats.sent),
            }
        }
        let timeout = human(self.timeout);
        let target = self.target.clone();
        // A plain-text server says no with a line `ERR ...` (PROTOCOL.md §7.2), then
        // usually closes: that, not the close, is what happened.
        if let Some((n, first)) = self.rejected.take() {
            let mut answer = Vec::new();
            let _ = write_escaped(&mut answer, &first);
            let times = if n == 1 { String::new() } else { format!(" ({n} times)") };
            bail!(
                "{target} rejected input: it answered \"{}\"{times}",
                String::from_utf8_lossy(&answer)
            )
        }
        if self.unclosed {
            eprintln!(
                "{target} did not close the connection within {timeout} of the end of the input; \
                 it answered no line with ERR until then"
            );
        }
        let answer = match &self.link {
            Link::Connected(conn) => conn.first.clone(),
            _ => Vec::new(),
        };
        match closure {
            Closure::Refused(code) => {
                let mut msg = format!("{target} refused the session: {}", code.describe());
                if code == Code::ServerFull {
                    msg.push_str("; try again later");
                }
                bail!(msg)
            }
            Closure::Aborted(Code::BadMagic) if answer.starts_with(b"ERR ") => {
                let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
                let mut quoted = Vec::new();
                let _ = write_escaped(&mut quoted, line);
                let mut msg = format!(
                    "{target} refused the connection: it answered \"{}\"",
                    String::from_utf8_lossy(&quoted)
                );
                if line == b"ERR server full" {
                    msg.push_str("; try again later");
                }
                bail!(msg)
            }
            Closure::Aborted(Code::BadMagic) => bail!(
                "{target} does not speak soquete (it answered with something else); \
                 to send plain text lines to it, use --plain"
            ),
            Closure::Aborted(Code::HandshakeTimeout) => {
                bail!("{target} did not answer the soquete handshake within {timeout}")
            }
            Closure::Aborted(Code::CloseTimeout) if unacked == 0 => bail!(
                "{target} acknowledged all {} messages but did not answer the close within {timeout}",
                stats.sent
            ),
            Closure::Aborted(Code::CloseTimeout) => {
                bail!("timed out after {timeout} waiting for acknowledgements: {not_acked}")
            }
            Closure::Aborted(Code::IdleTimeout) => {
                bail!("the server stopped answering (idle timeout){left}")
            }
            Closure::Aborted(code) => bail!("session aborted ({}){left}", code.describe()),
            Closure::PeerError(code) => {
                bail!("the server aborted the session ({}){left}", code.describe())
            }
            Closure::Eof => {
                let error = match &self.link {
                    Link::Connected(conn) => conn.error.as_ref(),
                    Link::BackingOff { .. } => None,
                };
                let how = match error {
                    Some(e) => format!("connection to {target} lost ({e})"),
                    None => format!("{target} closed the connection"),
                };
                if !self.ever_established {
                    bail!("{how} during the handshake: no line was sent");
                }
                let mut msg = format!("{how} after {}", self.input_left(stats.sent));
                if mode == Mode::Binary && unacked > 0 {
                    let _ = write!(msg, "; {not_acked}");
                }
                bail!(msg)
            }
            Closure::Orderly { code, by_peer } => {
                let peer_closing = match self.stop {
                    Some(Stop::PeerClosing(c)) => Some(c),
                    // The server closing first after acknowledging every line of an
                    // input that had ended: nothing was lost (the client's own close
                    // waits for the last acknowledgement, so the server may be first).
                    _ if by_peer && (self.stop.is_none() || unacked > 0) => Some(code),
                    _ => None,
                };
                if let Some(code) = peer_closing {
                    let (unsent, complete) = self.unsent_lines(StdDuration::ZERO);
                    let mut msg = format!("the server closed the session ({})", code.describe());
                    let _ = match (unsent, complete) {
                        (0, true) => Ok(()),
                        (n, true) => write!(msg, ": {n} lines of input not sent"),
                        (0, false) => write!(msg, ": the rest of the input was not sent"),
                        (n, false) => write!(msg, ": {} read and the rest of the input not sent", plural(n, "line")),
                    };
                    bail!(msg)
                }
                match self.stop.take() {
                    Some(Stop::TooLarge { line, len, max }) => {
                        let whose = if mode == Mode::Binary && max == self.session.peer_max_message() {
                            "the server's maximum"
                        } else {
                            "the most this client can send"
                        };
                        bail!(
                            "line {line} is {len} bytes, longer than {whose} of {max} bytes; \
                             it was not sent, and neither was any line after it"
                        )
                    }
                    Some(Stop::InputError(e)) => Err(e).context("cannot read standard input"),
                    _ if unacked > 0 => bail!("{not_acked}"),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl Client {
    /// What a failed secure handshake means for the user.
    fn secure_failure_error(&self, failure: SecureError) -> anyhow::Error {
        let target = self.target.clone();
        let (ours, expected) = match &self.keys {
            Some(k) => (
                keys::public_to_text(&k.secret.public_key()),
                keys::public_to_text(&k.server),
            ),
            None => (String::new(), String::new()),
        };
        match failure {
            SecureError::ServerNotAuthenticated | SecureError::Refused(secure::Alert::HandshakeFailed) => {
                ServerNotAuthenticated {
                    target,
                    expected,
                    cause: failure,
                }
                .into()
            }
            SecureError::Refused(secure::Alert::UnknownKey) => anyhow!(
                "{target} refused this client's key {ours}: it is not among the server's allowed keys; \
                 its operator can add the line \"{ours} NAME\" to them"
            ),
            SecureError::NotSecure => anyhow!(
                "{target} does not speak the secure mode (a server started without --key?); \
                 nothing was sent but the encrypted handshake"
            ),
            other => anyhow!("{target}: secure handshake failed: {other}"),
        }
    }
}

/// The socket as the session speaks on it: through the secure layer with `keys`.
fn wrap(stream: TcpStream, keys: Option<&ClientKeys>) -> anyhow::Result<Stream> {
    match keys {
        Some(keys) => Stream::client(stream, keys).context("cannot start the secure mode"),
        None => Ok(Stream::clear(stream)),
    }
}

/// Time from `since` to `now`.
fn elapsed(since: Instant, now: Instant) -> StdDuration {
    time::until(now, since)
}
