//! A small NATS client for publishing into JetStream, over one blocking
//! [`TcpStream`] on the thread that owns it.
//!
//! It speaks the NATS client protocol (`INFO`, `CONNECT`, `PING`/`PONG`, `SUB`,
//! `HPUB`, `MSG`/`HMSG`, `+OK`/`-ERR`) and the few JetStream API requests a sink
//! needs: check or create a stream, read its state, fetch the last message on a
//! subject. Publishes are pipelined: each carries its own reply subject in one
//! inbox (`_INBOX.<random>.<n>`), the acknowledgements are matched by that suffix
//! and counted in order as a contiguous "stored up to" figure ([`Client::stored`]).
//!
//! Everything is bounded: the publishes in flight ([`Options::max_in_flight`]), a
//! control line ([`MAX_LINE`]), a message (the server's `max_payload`, at most
//! [`MAX_MESSAGE`]). Every wait has a deadline ([`Options::timeout`]); a server that
//! goes away or says something unparsable is an [`Error`], never a panic or a hang.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use base64::Engine as _;
use log::{debug, warn};
use serde_json::{json, Value};

/// Longest control line accepted from the server (an `INFO` is about 1 KiB).
pub const MAX_LINE: usize = 16 * 1024;
/// Largest message accepted from the server, whatever its `INFO` says.
pub const MAX_MESSAGE: usize = 8 * 1024 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// The subscription id of the client's one inbox subscription.
const INBOX_SID: &str = "1";
/// Answers to requests kept until taken ([`Client::messages`] has this many in flight
/// at most).
const MAX_ANSWERS: usize = 1024;
/// JetStream's `err_code` for a message get that finds nothing.
const NO_MESSAGE_FOUND: u64 = 10037;

/// How to talk to the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// The longest any single wait (connect, a read, an acknowledgement) may take.
    pub timeout: Duration,
    /// Publishes sent and not yet acknowledged past which [`Client::publish`] waits.
    pub max_in_flight: usize,
    /// The client's name, shown by the server's monitoring.
    pub name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(5),
            max_in_flight: 4096,
            name: "soquete".into(),
        }
    }
}

/// What went wrong talking to NATS.
#[derive(Debug)]
pub enum Error {
    /// The socket failed.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// The server did not answer in time.
    Timeout,
    /// The server sent something that is not the NATS protocol.
    Protocol(&'static str),
    /// The server refused something (`-ERR`).
    Server(String),
    /// The server needs something this client does not do (TLS, authentication,
    /// headers).
    Unsupported(&'static str),
    /// A JetStream API request failed (e.g. a stream name already used with other
    /// subjects).
    Api {
        /// The API's error code (HTTP-like: 400, 404, 503…).
        code: u64,
        /// JetStream's finer code (10059: stream not found, 10037: no message
        /// found…), 0 if none.
        err_code: u64,
        /// What the server says.
        description: String,
    },
    /// Nothing answers on that subject: no stream takes it, or JetStream is off.
    NoResponders,
    /// A publish was refused by JetStream; nothing from it on is stored.
    Rejected {
        /// Its number in the order of publishing (0 for the first).
        index: u64,
        /// What the server says.
        reason: String,
    },
    /// The stream exists but does not take this subject.
    StreamMismatch(String),
    /// The server takes smaller messages than a client may send.
    PayloadLimit {
        /// The server's `max_payload`.
        max_payload: usize,
        /// What a message may need, headers included.
        needed: usize,
    },
    /// A message is larger than the server accepts.
    TooLarge,
}

impl Error {
    /// Nothing answers JetStream requests or publishes: JetStream is off, or not
    /// ready yet (loading its streams after a restart).
    #[must_use]
    pub fn is_not_ready(&self) -> bool {
        match self {
            Error::NoResponders => true,
            Error::Rejected { reason, .. } => reason == NO_STREAM,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "NATS connection: {e}"),
            Error::Closed => f.write_str("NATS server closed the connection"),
            Error::Timeout => f.write_str("NATS server did not answer in time"),
            Error::Protocol(what) => write!(f, "NATS protocol error: {what}"),
            Error::Server(what) => write!(f, "NATS server error: {what}"),
            Error::Unsupported(what) => write!(f, "NATS server needs {what}, not supported"),
            Error::Api {
                code,
                err_code,
                description,
            } => {
                write!(f, "JetStream error {code} ({err_code}): {description}")
            }
            Error::NoResponders => f.write_str("no JetStream stream answers (is the server started with -js?)"),
            Error::Rejected { index, reason } => {
                write!(f, "JetStream refused publish {index}: {reason}")
            }
            Error::StreamMismatch(what) => write!(f, "JetStream stream {what}"),
            Error::TooLarge => f.write_str("message larger than the NATS server accepts"),
            Error::PayloadLimit { max_payload, needed } => write!(
                f,
                "the NATS server takes messages of at most {max_payload} bytes, {needed} are needed \
                 (raise its max_payload, or lower --max-message)"
            ),
        }
    }
}

// `Display` already says what the I/O error was: no `source`, or chains of causes
// would say it twice.
impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::Closed,
            _ => Error::Io(e),
        }
    }
}

/// One operation from the server, borrowing from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// `INFO {json}`.
    Info(&'a [u8]),
    /// `MSG` or `HMSG`.
    Msg {
        /// The subject it was published on.
        subject: &'a [u8],
        /// The subscription it is for.
        sid: &'a [u8],
        /// Its reply subject, if any.
        reply: Option<&'a [u8]>,
        /// Its header block (`NATS/1.0 …\r\n…\r\n\r\n`), for an `HMSG`.
        headers: Option<&'a [u8]>,
        /// Its payload.
        payload: &'a [u8],
    },
    /// `PING`: answer `PONG`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK`.
    Ok,
    /// `-ERR 'text'`.
    Err(&'a [u8]),
}

/// Parses one operation at the start of `buf`.
///
/// Returns the operation and the bytes it takes, or `None` if `buf` holds only part
/// of one (read more and call again).
///
/// # Errors
/// [`Error::Protocol`] for anything that is not the server side of the NATS
/// protocol, a control line longer than [`MAX_LINE`] or a message larger than
/// `max_message`.
pub fn parse(buf: &[u8], max_message: usize) -> Result<Option<(Op<'_>, usize)>, Error> {
    let Some(eol) = find_crlf(buf) else {
        if buf.len() > MAX_LINE {
            return Err(Error::Protocol("control line too long"));
        }
        return Ok(None);
    };
    if eol > MAX_LINE {
        return Err(Error::Protocol("control line too long"));
    }
    let line = buf.get(..eol).ok_or(Error::Protocol("line"))?;
    let after = eol + 2;
    let (verb, rest) = match line.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(i) => (line.get(..i).unwrap_or_default(), line.get(i + 1..).unwrap_or_default()),
        None => (line, &[][..]),
    };
    let is = |name: &str| verb.eq_ignore_ascii_case(name.as_bytes());
    if is("PING") {
        return Ok(Some((Op::Ping, after)));
    }
    if is("PONG") {
        return Ok(Some((Op::Pong, after)));
    }
    if is("+OK") {
        return Ok(Some((Op::Ok, after)));
    }
    if is("-ERR") {
        return Ok(Some((Op::Err(trim(rest)), after)));
    }
    if is("INFO") {
        return Ok(Some((Op::Info(trim(rest)), after)));
    }
    let with_headers = is("HMSG");
    if !with_headers && !is("MSG") {
        return Err(Error::Protocol("unknown operation"));
    }
    let mut args: [&[u8]; 5] = [&[]; 5];
    let mut n = 0;
    for arg in rest.split(|b| *b == b' ' || *b == b'\t').filter(|a| !a.is_empty()) {
        let slot = args.get_mut(n).ok_or(Error::Protocol("too many arguments"))?;
        *slot = arg;
        n += 1;
    }
    let sizes = if with_headers { 2 } else { 1 };
    let (subject, sid, reply) = match n.checked_sub(sizes) {
        Some(2) => (args[0], args[1], None),
        Some(3) => (args[0], args[1], Some(args[2])),
        _ => return Err(Error::Protocol("wrong number of arguments")),
    };
    let total = number(args[n - 1]).ok_or(Error::Protocol("bad size"))?;
    let header_len = if with_headers {
        number(args[n - 2]).ok_or(Error::Protocol("bad size"))?
    } else {
        0
    };
    if total > max_message || header_len > total {
        return Err(Error::Protocol("message too large"));
    }
    let end = after + total;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if buf.get(end..end + 2) != Some(b"\r\n") {
        return Err(Error::Protocol("message not followed by CRLF"));
    }
    let body = buf.get(after..end).ok_or(Error::Protocol("body"))?;
    let (headers, payload) = body.split_at(header_len);
    let headers = with_headers.then_some(headers);
    let op = Op::Msg {
        subject,
        sid,
        reply,
        headers,
        payload,
    };
    Ok(Some((op, end + 2)))
}

/// Where the first `\r\n` in `buf` starts.
fn find_crlf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + buf.get(from..)?.iter().position(|&b| b == b'\n')?;
        if at > 0 && buf.get(at - 1) == Some(&b'\r') {
            return Some(at - 1);
        }
        from = at + 1;
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

fn number(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 12 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// The status code of a header block (`NATS/1.0 503` → 503), if it has one.
fn status(headers: &[u8]) -> Option<u16> {
    let first = headers.split(|b| *b == b'\r').next()?;
    let code = first.strip_prefix(b"NATS/1.0")?.trim_ascii_start();
    let code = code.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// The value of header `name` in a header block, if present.
pub fn header<'a>(headers: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(headers).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

/// JetStream's acknowledgement of one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubAck {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence number in that stream.
    pub seq: u64,
    /// It had been stored already (same `Nats-Msg-Id` within the stream's
    /// de-duplication window): this publish stored nothing.
    pub duplicate: bool,
}

/// A stream's state, from `$JS.API.STREAM.INFO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamState {
    /// Messages held.
    pub messages: u64,
    /// Sequence number of the last one stored (0 if none).
    pub last_seq: u64,
}

/// A message read back from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its subject.
    pub subject: String,
    /// Its sequence number in the stream.
    pub seq: u64,
    /// Its header block, empty if none.
    pub headers: Vec<u8>,
    /// Its payload.
    pub data: Vec<u8>,
}

impl StoredMessage {
    /// Its `Nats-Msg-Id`, if it was published with one.
    pub fn msg_id(&self) -> Option<&str> {
        header(&self.headers, "Nats-Msg-Id")
    }
}

/// The outcome of a message received on the inbox, kept until taken in order.
#[derive(Debug)]
enum Reply {
    Ack(PubAck),
    Refused(String),
}

/// A connection to a NATS server.
#[derive(Debug)]
pub struct Client {
    sock: TcpStream,
    opts: Options,
    /// The inbox prefix, `_INBOX.<random>.`.
    inbox: String,
    /// Bytes received are `rx[start..end]`; the rest of `rx` is room for the next
    /// read (kept, so that it is not zeroed again at every read).
    rx: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes to send.
    tx: Vec<u8>,
    max_message: usize,
    /// Publishes numbered `stored..stored + in_flight.len()`, answered or not.
    in_flight: VecDeque<Option<Reply>>,
    stored: u64,
    duplicates: u64,
    last_ack: Option<PubAck>,
    /// The last request's number, and the answers come and not yet taken (at most
    /// [`MAX_ANSWERS`]).
    request: u64,
    answers: std::collections::BTreeMap<u64, Answer>,
    pongs: u64,
    /// The last `INFO`, until read.
    info: Option<Vec<u8>>,
}

/// The answer to a request: headers and payload.
#[derive(Debug)]
struct Answer {
    headers: Option<Vec<u8>>,
    payload: Vec<u8>,
}

impl Client {
    /// Connects to the server at `addr`, and subscribes to a new inbox.
    ///
    /// # Errors
    /// The server cannot be reached or does not answer within `opts.timeout`, needs
    /// TLS or authentication, or does not support headers.
    pub fn connect(addr: impl ToSocketAddrs, opts: Options) -> Result<Client, Error> {
        let mut last = Error::Protocol("no address");
        let mut sock = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, opts.timeout) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = e.into(),
            }
        }
        let sock = sock.ok_or(last)?;
        sock.set_nodelay(true)?;
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).map_err(|e| Error::Io(io::Error::other(e)))?;
        let inbox = format!(
            "_INBOX.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let mut client = Client {
            sock,
            opts,
            inbox,
            rx: Vec::new(),
            start: 0,
            end: 0,
            tx: Vec::new(),
            max_message: MAX_MESSAGE,
            in_flight: VecDeque::new(),
            stored: 0,
            duplicates: 0,
            last_ack: None,
            request: 0,
            answers: std::collections::BTreeMap::new(),
            pongs: 0,
            info: None,
        };
        client.handshake()?;
        Ok(client)
    }

    fn handshake(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + self.opts.timeout;
        let info: Value = loop {
            if let Some(json) = self.info.take() {
                break serde_json::from_slice(&json).map_err(|_| Error::Protocol("INFO is not JSON"))?;
            }
            self.step(deadline)?;
        };
        if info["tls_required"].as_bool() == Some(true) {
            return Err(Error::Unsupported("TLS"));
        }
        if info["auth_required"].as_bool() == Some(true) {
            return Err(Error::Unsupported("authentication"));
        }
        if info["headers"].as_bool() != Some(true) {
            return Err(Error::Unsupported("a server with headers (2.2 or later)"));
        }
        if let Some(max) = info["max_payload"].as_u64() {
            self.max_message = usize::try_from(max).unwrap_or(MAX_MESSAGE).min(MAX_MESSAGE);
        }
        let connect = json!({
            "verbose": false,
            "pedantic": false,
            "tls_required": false,
            "headers": true,
            "no_responders": true,
            "lang": "rust",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": 1,
            "name": self.opts.name,
        });
        self.tx.extend_from_slice(b"CONNECT ");
        self.tx.extend_from_slice(connect.to_string().as_bytes());
        self.tx.extend_from_slice(b"\r\n");
        self.tx
            .extend_from_slice(format!("SUB {}* {INBOX_SID}\r\n", self.inbox).as_bytes());
        self.ping(deadline)
    }

    /// Sends `PING` and waits for its `PONG`: everything sent before is processed.
    fn ping(&mut self, deadline: Instant) -> Result<(), Error> {
        let want = self.pongs + 1;
        self.tx.extend_from_slice(b"PING\r\n");
        self.flush()?;
        while self.pongs < want {
            self.step(deadline)?;
        }
        Ok(())
    }

    /// Round trip to the server within the timeout.
    ///
    /// # Errors
    /// The connection failed or the server did not answer in time.
    pub fn check(&mut self) -> Result<(), Error> {
        self.ping(Instant::now() + self.opts.timeout)
    }

    /// Publishes `payload` on `subject` with header `Nats-Msg-Id: msg_id`, without
    /// waiting for its acknowledgement, and returns its number (0 for the first).
    /// Waits for acknowledgements first if [`Options::max_in_flight`] are pending.
    ///
    /// The bytes are buffered: call [`Client::flush`] (or any wait) to send them.
    ///
    /// # Errors
    /// A waiting acknowledgement failed or did not come in time, the message is too
    /// large, or the connection failed.
    pub fn publish(&mut self, subject: &str, msg_id: &str, payload: &[u8]) -> Result<u64, Error> {
        self.publish_auth(subject, msg_id, None, payload)
    }

    /// [`Client::publish`] with, for `auth` = (name, key), the headers `Soquete-Auth:
    /// NAME` and `Soquete-Key: KEY` as well: the authenticated name and the public key
    /// of the peer the message came from.
    ///
    /// # Errors
    /// As [`Client::publish`]; a message id or name with a line break is refused.
    pub fn publish_auth(
        &mut self,
        subject: &str,
        msg_id: &str,
        auth: Option<(&str, &str)>,
        payload: &[u8],
    ) -> Result<u64, Error> {
        if self.in_flight.len() >= self.opts.max_in_flight {
            let want = self.stored + 1;
            self.wait_stored(want, Instant::now() + self.opts.timeout)?;
        }
        let index = self.stored + self.in_flight.len() as u64;
        const HEAD: &[u8] = b"NATS/1.0\r\nNats-Msg-Id: ";
        const AUTH: &[u8] = b"\r\nSoquete-Auth: ";
        const KEY: &[u8] = b"\r\nSoquete-Key: ";
        const END: &[u8] = b"\r\n\r\n";
        let auth_len = auth.map_or(0, |(name, key)| AUTH.len() + name.len() + KEY.len() + key.len());
        let header_len = HEAD.len() + msg_id.len() + auth_len + END.len();
        let total = header_len + payload.len();
        if total > self.max_message {
            return Err(Error::TooLarge);
        }
        if subject.is_empty() || subject.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(Error::Protocol("subject empty or with white space"));
        }
        if msg_id.contains(['\r', '\n'])
            || auth.is_some_and(|(name, key)| name.contains(['\r', '\n']) || key.contains(['\r', '\n']))
        {
            return Err(Error::Protocol("message id or name with a line break"));
        }
        // Written straight into the send buffer: no allocation per message.
        write!(self.tx, "HPUB {subject} {}{index} {header_len} {total}\r\n", self.inbox)?;
        self.tx.extend_from_slice(HEAD);
        self.tx.extend_from_slice(msg_id.as_bytes());
        if let Some((name, key)) = auth {
            self.tx.extend_from_slice(AUTH);
            self.tx.extend_from_slice(name.as_bytes());
            self.tx.extend_from_slice(KEY);
            self.tx.extend_from_slice(key.as_bytes());
        }
        self.tx.extend_from_slice(END);
        self.tx.extend_from_slice(payload);
        self.tx.extend_from_slice(b"\r\n");
        if self.tx.len() >= READ_CHUNK {
            self.flush()?;
        }
        self.in_flight.push_back(None);
        Ok(index)
    }

    /// Sends what is buffered.
    ///
    /// # Errors
    /// The connection failed.
    pub fn flush(&mut self) -> Result<(), Error> {
        if !self.tx.is_empty() {
            self.sock.set_write_timeout(Some(self.opts.timeout))?;
            let r = self.sock.write_all(&self.tx);
            self.tx.clear();
            r?;
        }
        Ok(())
    }

    /// The largest message (headers and payload) the server takes.
    pub fn max_payload(&self) -> usize {
        self.max_message
    }

    /// Publishes acknowledged in order: all of the first `stored()` are stored.
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// Publishes sent and not yet counted in [`Client::stored`].
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Of the publishes counted in [`Client::stored`], how many JetStream had stored
    /// already.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The last acknowledgement counted in [`Client::stored`].
    pub fn last_ack(&self) -> Option<&PubAck> {
        self.last_ack.as_ref()
    }

    /// Sends what is buffered, takes in what the server has sent (waiting at most
    /// until `deadline` for something) and returns [`Client::stored`].
    ///
    /// # Errors
    /// A publish was refused ([`Error::Rejected`]) or the connection failed.
    /// Reaching `deadline` is not an error here.
    pub fn poll(&mut self, deadline: Instant) -> Result<u64, Error> {
        self.flush()?;
        match self.step(deadline) {
            Ok(()) | Err(Error::Timeout) => Ok(self.stored),
            Err(e) => Err(e),
        }
    }

    /// Waits until the first `count` publishes are stored.
    ///
    /// # Errors
    /// [`Error::Timeout`] at `deadline`, [`Error::Rejected`] if one was refused,
    /// or the connection failed.
    pub fn wait_stored(&mut self, count: u64, deadline: Instant) -> Result<u64, Error> {
        self.flush()?;
        while self.stored < count {
            if self.in_flight.is_empty() {
                return Err(Error::Protocol("waiting for publishes never sent"));
            }
            self.step(deadline)?;
        }
        Ok(self.stored)
    }

    /// Checks that stream `name` exists and takes `subjects`, creating it (file
    /// storage, the server's defaults otherwise) if it does not exist.
    ///
    /// # Errors
    /// The stream exists without one of these subjects ([`Error::StreamMismatch`]),
    /// JetStream refuses ([`Error::Api`], [`Error::NoResponders`]) or the connection
    /// failed.
    pub fn ensure_stream(&mut self, name: &str, subjects: &[&str]) -> Result<StreamState, Error> {
        self.ensure_stream_with(name, subjects, Duration::ZERO)
    }

    /// [`Client::ensure_stream`], creating the stream with this de-duplication window
    /// (`Nats-Msg-Id`s remembered this long; zero: JetStream's default, 2 minutes).
    /// An existing stream keeps its own window.
    ///
    /// # Errors
    /// As [`Client::ensure_stream`].
    pub fn ensure_stream_with(
        &mut self,
        name: &str,
        subjects: &[&str],
        duplicate_window: Duration,
    ) -> Result<StreamState, Error> {
        let info = match self.api(&format!("$JS.API.STREAM.INFO.{name}"), b"") {
            Ok(info) => info,
            Err(Error::Api { code: 404, .. }) => {
                let mut config = json!({ "name": name, "subjects": subjects, "storage": "file" });
                if !duplicate_window.is_zero() {
                    let nanos = u64::try_from(duplicate_window.as_nanos()).unwrap_or(u64::MAX);
                    config["duplicate_window"] = json!(nanos);
                }
                self.api(&format!("$JS.API.STREAM.CREATE.{name}"), config.to_string().as_bytes())?
            }
            Err(e) => return Err(e),
        };
        let taken: Vec<&str> = info["config"]["subjects"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(missing) = subjects.iter().find(|s| !taken.contains(s)) {
            return Err(Error::StreamMismatch(format!(
                "{name} exists without subject {missing} (it takes {taken:?})"
            )));
        }
        state(&info)
    }

    /// The state of stream `name`.
    ///
    /// # Errors
    /// No such stream (`Error::Api` with code 404), JetStream refuses, or the
    /// connection failed.
    pub fn stream_state(&mut self, name: &str) -> Result<StreamState, Error> {
        let info = self.api(&format!("$JS.API.STREAM.INFO.{name}"), b"")?;
        state(&info)
    }

    /// The last message stored on `subject` in stream `stream`, if any.
    ///
    /// # Errors
    /// No such stream, JetStream refuses, or the connection failed.
    pub fn last_on_subject(&mut self, stream: &str, subject: &str) -> Result<Option<StoredMessage>, Error> {
        self.get_message(stream, &json!({ "last_by_subj": subject }))
    }

    /// The message of sequence number `seq` in stream `stream`, if it holds one.
    ///
    /// # Errors
    /// No such stream, JetStream refuses, or the connection failed.
    pub fn message(&mut self, stream: &str, seq: u64) -> Result<Option<StoredMessage>, Error> {
        self.get_message(stream, &json!({ "seq": seq }))
    }

    /// The messages of sequence numbers `first..first + count` in stream `stream`
    /// (`None` for a number it does not hold), with the requests pipelined: for
    /// reading a stream back.
    ///
    /// # Errors
    /// No such stream, JetStream refuses, or the connection failed.
    pub fn messages(&mut self, stream: &str, first: u64, count: usize) -> Result<Vec<Option<StoredMessage>>, Error> {
        let subject = format!("$JS.API.STREAM.MSG.GET.{stream}");
        let mut out = Vec::with_capacity(count);
        let mut next = first;
        let end = first.saturating_add(count as u64);
        while next < end {
            let batch = (end - next).min(MAX_ANSWERS as u64);
            let mut ids = Vec::new();
            for seq in next..next + batch {
                ids.push(self.request(&subject, json!({ "seq": seq }).to_string().as_bytes())?);
            }
            self.flush()?;
            let deadline = Instant::now() + self.opts.timeout;
            for id in ids {
                out.push(stored_message(self.answer(id, deadline))?);
            }
            next += batch;
        }
        Ok(out)
    }

    fn get_message(&mut self, stream: &str, request: &Value) -> Result<Option<StoredMessage>, Error> {
        let request = request.to_string();
        stored_message(self.api(&format!("$JS.API.STREAM.MSG.GET.{stream}"), request.as_bytes()))
    }

    /// A JetStream API request: its JSON answer, or its error.
    fn api(&mut self, subject: &str, payload: &[u8]) -> Result<Value, Error> {
        let deadline = Instant::now() + self.opts.timeout;
        let id = self.request(subject, payload)?;
        self.flush()?;
        self.answer(id, deadline)
    }

    /// Buffers a request; returns its number.
    fn request(&mut self, subject: &str, payload: &[u8]) -> Result<u64, Error> {
        if payload.len() > self.max_message {
            return Err(Error::TooLarge);
        }
        self.request += 1;
        let id = self.request;
        let line = format!("PUB {subject} {}r{id} {}\r\n", self.inbox, payload.len());
        self.tx.extend_from_slice(line.as_bytes());
        self.tx.extend_from_slice(payload);
        self.tx.extend_from_slice(b"\r\n");
        Ok(id)
    }

    /// Waits for the answer to request `id`: its JSON, or its error.
    fn answer(&mut self, id: u64, deadline: Instant) -> Result<Value, Error> {
        let answer = loop {
            match self.answers.remove(&id) {
                Some(a) => break a,
                None => self.step(deadline)?,
            }
        };
        // Answers to requests given up on are never taken.
        self.answers.retain(|k, _| *k > id);
        if let Some(code) = answer.headers.as_deref().and_then(status) {
            if code == 503 {
                return Err(Error::NoResponders);
            }
            if code >= 400 {
                return Err(Error::Api {
                    code: code.into(),
                    err_code: 0,
                    description: "status header".into(),
                });
            }
        }
        let value: Value =
            serde_json::from_slice(&answer.payload).map_err(|_| Error::Protocol("JetStream answer is not JSON"))?;
        if let Some(err) = value.get("error") {
            return Err(Error::Api {
                code: err["code"].as_u64().unwrap_or(0),
                err_code: err["err_code"].as_u64().unwrap_or(0),
                description: err["description"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(value)
    }

    /// Handles the operations already received or, if there are none, reads once
    /// (waiting at most until `deadline`) and handles what came.
    fn step(&mut self, deadline: Instant) -> Result<(), Error> {
        if !self.drain()? {
            self.read(deadline)?;
            self.drain()?;
        }
        self.flush()
    }

    /// Handles every complete operation received; tells whether there was one.
    fn drain(&mut self) -> Result<bool, Error> {
        // Taken out while its operations, which borrow from it, are handled.
        let rx = std::mem::take(&mut self.rx);
        let result = self.drain_from(&rx);
        self.rx = rx;
        result
    }

    fn drain_from(&mut self, rx: &[u8]) -> Result<bool, Error> {
        let mut any = false;
        loop {
            let rest = rx.get(self.start..self.end).unwrap_or_default();
            let Some((op, used)) = parse(rest, self.max_message)? else {
                return Ok(any);
            };
            self.start += used;
            any = true;
            self.handle(op)?;
        }
    }

    fn read(&mut self, deadline: Instant) -> Result<(), Error> {
        if self.start > 0 {
            self.rx.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Err(Error::Timeout);
        }
        self.sock.set_read_timeout(Some(wait))?;
        let have = self.end;
        if have >= MAX_LINE + self.max_message + 2 + MAX_LINE {
            return Err(Error::Protocol("receive buffer full"));
        }
        if self.rx.len() < have + READ_CHUNK {
            self.rx.resize(have + READ_CHUNK, 0);
        }
        let r = self.sock.read(self.rx.get_mut(have..).unwrap_or_default());
        let n = match r {
            Ok(0) => return Err(Error::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e.into()),
        };
        self.end = have + n;
        Ok(())
    }

    fn handle(&mut self, op: Op<'_>) -> Result<(), Error> {
        match op {
            Op::Ping => self.tx.extend_from_slice(b"PONG\r\n"),
            Op::Pong => self.pongs += 1,
            Op::Ok => {}
            Op::Info(json) => self.info = Some(json.to_vec()),
            Op::Err(text) => {
                let text = String::from_utf8_lossy(text).trim_matches('\'').to_owned();
                // Permission errors leave the connection open; the rest close it.
                warn!("NATS server: {text}");
                return Err(Error::Server(text));
            }
            Op::Msg {
                subject,
                headers,
                payload,
                ..
            } => self.on_message(subject, headers, payload)?,
        }
        Ok(())
    }

    fn on_message(&mut self, subject: &[u8], headers: Option<&[u8]>, payload: &[u8]) -> Result<(), Error> {
        let Some(token) = subject.strip_prefix(self.inbox.as_bytes()) else {
            debug!("NATS: message on an unexpected subject");
            return Ok(());
        };
        if let Some(id) = token.strip_prefix(b"r") {
            let id = number(id).map(|n| n as u64);
            if let Some(id) = id.filter(|id| *id <= self.request && self.answers.len() < MAX_ANSWERS) {
                self.answers.insert(
                    id,
                    Answer {
                        headers: headers.map(<[u8]>::to_vec),
                        payload: payload.to_vec(),
                    },
                );
            }
            return Ok(());
        }
        let Some(index) = number(token).map(|n| n as u64) else {
            return Ok(());
        };
        let Some(slot) = index
            .checked_sub(self.stored)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.in_flight.get_mut(i))
        else {
            debug!("NATS: acknowledgement {index} for no publish in flight");
            return Ok(());
        };
        *slot = Some(pub_reply(headers, payload));
        while let Some(Some(_)) = self.in_flight.front() {
            match self.in_flight.pop_front() {
                Some(Some(Reply::Ack(ack))) => {
                    self.stored += 1;
                    if ack.duplicate {
                        self.duplicates += 1;
                    }
                    self.last_ack = Some(ack);
                }
                Some(Some(Reply::Refused(reason))) => {
                    return Err(Error::Rejected {
                        index: self.stored,
                        reason,
                    });
                }
                _ => break,
            }
        }
        Ok(())
    }
}

/// A message get's answer as a message, `None` if there is none.
fn stored_message(answer: Result<Value, Error>) -> Result<Option<StoredMessage>, Error> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(Error::Api {
            err_code: NO_MESSAGE_FOUND,
            ..
        }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let msg = &answer["message"];
    let b64 = |field: &str| -> Result<Vec<u8>, Error> {
        match msg[field].as_str() {
            None => Ok(Vec::new()),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| Error::Protocol("message not in base64")),
        }
    };
    Ok(Some(StoredMessage {
        subject: msg["subject"].as_str().unwrap_or_default().to_owned(),
        seq: msg["seq"].as_u64().ok_or(Error::Protocol("message without seq"))?,
        headers: b64("hdrs")?,
        data: b64("data")?,
    }))
}

/// A publish's refusal when nothing answers it (status 503).
const NO_STREAM: &str = "no stream takes this subject";

/// What a publish's reply says.
fn pub_reply(headers: Option<&[u8]>, payload: &[u8]) -> Reply {
    if let Some(code) = headers.and_then(status) {
        if code == 503 {
            return Reply::Refused(NO_STREAM.into());
        }
        if code >= 400 {
            return Reply::Refused(format!("status {code}"));
        }
    }
    let Ok(value) = serde_json::from_slice::<Value>(payload) else {
        return Reply::Refused("acknowledgement is not JSON".into());
    };
    if let Some(err) = value.get("error") {
        let text = err["description"].as_str().unwrap_or("unknown error");
        return Reply::Refused(text.to_owned());
    }
    match (value["stream"].as_str(), value["seq"].as_u64()) {
        (Some(stream), Some(seq)) => Reply::Ack(PubAck {
            stream: stream.to_owned(),
            seq,
            duplicate: value["duplicate"].as_bool() == Some(true),
        }),
        _ => Reply::Refused("acknowledgement without stream and seq".into()),
    }
}

fn state(info: &Value) -> Result<StreamState, Error> {
    let s = &info["state"];
    Ok(StreamState {
        messages: s["messages"]
            .as_u64()
            .ok_or(Error::Protocol("stream info without state"))?,
        last_seq: s["last_seq"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024 * 1024;

    fn ops(mut buf: &[u8]) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        while let Some((op, used)) = parse(buf, MAX)? {
            out.push(format!("{op:?}"));
            buf = &buf[used..];
        }
        Ok(out)
    }

    const STREAM: &[u8] = b"INFO {\"headers\":true}\r\nPING\r\n+OK\r\n\
        MSG a.b 1 _INBOX.x.3 5\r\nhello\r\n\
        HMSG a.b 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
        HMSG _INBOX.x.1 1 _r 16 16\r\nNATS/1.0 503\r\n\r\n\r\n\
        -ERR 'Slow Consumer'\r\nPONG\r\n";

    #[test]
    fn parses_every_operation() {
        let got = ops(STREAM).unwrap();
        assert_eq!(got.len(), 8);
        let at = STREAM.windows(3).position(|w| w == b"MSG").unwrap();
        let (op, _) = parse(&STREAM[at..], MAX).unwrap().unwrap();
        assert_eq!(
            op,
            Op::Msg {
                subject: b"a.b",
                sid: b"1",
                reply: Some(b"_INBOX.x.3"),
                headers: None,
                payload: b"hello",
            }
        );
        let hmsg = b"HMSG a.b 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let (op, used) = parse(hmsg, MAX).unwrap().unwrap();
        assert_eq!(used, hmsg.len());
        assert_eq!(
            op,
            Op::Msg {
                subject: b"a.b",
                sid: b"1",
                reply: None,
                headers: Some(b"NATS/1.0\r\n\r\n"),
                payload: b"hi",
            }
        );
        assert_eq!(status(b"NATS/1.0 503\r\n\r\n"), Some(503));
        assert_eq!(status(b"NATS/1.0\r\n\r\n"), None);
    }

    #[test]
    fn any_split_gives_the_same_operations() {
        let whole = ops(STREAM).unwrap();
        for cut in 0..STREAM.len() {
            // What parses from the first part alone is a prefix of the whole.
            let first = ops(&STREAM[..cut]).unwrap();
            assert_eq!(first[..], whole[..first.len()], "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_or_incomplete_never_a_panic() {
        let cases: &[&[u8]] = &[
            b"HELLO\r\n",
            b"MSG\r\n",
            b"MSG a 1 x\r\n",
            b"MSG a 1 99999999999999999999\r\n",
            b"HMSG a 1 10 5\r\n12345\r\n",
            b"MSG a 1 3\r\nabcXY",
            b"MSG a 1 b c d e f 3\r\n",
            b"\r\n",
            b"HMSG a 1 2000000 2000000\r\n",
        ];
        for case in cases {
            assert!(parse(case, MAX).is_err(), "{:?}", String::from_utf8_lossy(case));
        }
        assert!(parse(&[b'x'; MAX_LINE + 1], MAX).is_err());
        assert!(matches!(parse(b"MSG a 1 3\r\nab", MAX), Ok(None)));
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 64)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"MSG HPUB 0123 \r\n+-OKx"[(seed % 21) as usize]
                })
                .collect();
            let _ = ops(&bytes);
        }
    }

    #[test]
    fn headers_are_found_by_name() {
        let h = b"NATS/1.0\r\nNats-Msg-Id: abc.7\r\nOther: x\r\n\r\n";
        assert_eq!(header(h, "nats-msg-id"), Some("abc.7"));
        assert_eq!(header(h, "Missing"), None);
    }

    #[test]
    fn publish_replies_are_understood() {
        let ack = pub_reply(None, br#"{"stream":"S","seq":7,"duplicate":true}"#);
        assert!(matches!(
            ack,
            Reply::Ack(PubAck {
                seq: 7,
                duplicate: true,
                ..
            })
        ));
        let err = pub_reply(None, br#"{"error":{"code":503,"description":"no space"}}"#);
        assert!(matches!(err, Reply::Refused(r) if r == "no space"));
        let none = pub_reply(Some(b"NATS/1.0 503\r\n\r\n"), b"");
        assert!(matches!(none, Reply::Refused(_)));
        assert!(matches!(pub_reply(None, b"{"), Reply::Refused(_)));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = ops(&bytes);
        }

        #[test]
        fn any_two_cuts_give_a_prefix_of_the_whole(a in 0..STREAM.len(), b in 0..STREAM.len()) {
            let whole = ops(STREAM).unwrap();
            let (lo, hi) = (a.min(b), a.max(b));
            let mut got = ops(&STREAM[..lo]).unwrap();
            let consumed: usize = {
                let mut buf = &STREAM[..lo];
                let mut n = 0;
                while let Some((_, used)) = parse(buf, MAX).unwrap() {
                    buf = &buf[used..];
                    n += used;
                }
                n
            };
            got.extend(ops(&STREAM[consumed..hi]).unwrap());
            proptest::prop_assert_eq!(&got[..], &whole[..got.len()]);
        }
    }
}
