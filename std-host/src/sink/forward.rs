//! Forwarding messages into NATS JetStream: the event loop's end ([`Forward`]) and the
//! publisher thread behind it.
//!
//! The loop hands over one record per message (subject, `Nats-Msg-Id`, payload) with
//! its mark, as it would print a line; the thread publishes them pipelined on one
//! [`Client`] and reports how many are stored, in order, as JetStream acknowledges
//! them. A message is confirmed (and so acknowledged to its client) only then.
//!
//! When NATS goes away the thread keeps every record not yet acknowledged, connects
//! again with backoff (saying so once per outage, not per try) and publishes them
//! again with the same `Nats-Msg-Id`: JetStream stores a resent record once if the
//! first copy is still within the stream's duplicate window. Meanwhile nothing is
//! confirmed, the backlog grows to its bound and the loop stops reading clients (TCP
//! backpressure).
//!
//! The thread also answers the loop's look-ups: the last sequence number stored for a
//! session, from the last message on the session's subject (so any server forwarding
//! to the stream can resume any session), and who opened it: a secure peer's messages
//! carry its key (`Soquete-Key`), and a session resumes only for the same key.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::{Token, Waker};

use soquete_core::secure::PublicKey;

use super::nats::{self, header, Client, StoredMessage};
use super::{Mark, QUEUE_BYTES};
use crate::keys;
use crate::secure::Identity;
use soquete_text::plural;

/// Records handed over and not yet stored past which the loop stops taking messages
/// (besides [`QUEUE_BYTES`]).
pub const QUEUE_RECORDS: usize = 64 * 1024;
/// Bytes a record counts for besides its payload (subject, id, headers).
const RECORD_OVERHEAD: u64 = 96;
/// Room for a publish's headers: `NATS/1.0` (10 bytes with its line end),
/// `Nats-Msg-Id: ` and the id (13 + 37), `Soquete-Auth: ` with an authenticated name
/// of up to 32 bytes (16 + 32), `Soquete-Key: ` and a key (15 + 55), the end (4).
const HEADERS_LEN: usize = 182;
/// First pause before connecting again after NATS went away; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between two tries to connect.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long the publisher waits for news when it has nothing in flight (it then
/// answers the server's keepalives).
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long one wait for acknowledgements lasts before new records are taken.
const ACK_WAIT: Duration = Duration::from_millis(20);
/// Look-ups waiting while NATS is away, past which the oldest are dropped (their
/// clients' handshakes time out, and they try again).
const MAX_LOOKUPS: usize = 4096;

/// Where and how to forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The NATS server, `HOST:PORT`.
    pub server: String,
    /// The JetStream stream, created if it does not exist.
    pub stream: String,
    /// Each message's subject.
    pub subject: Template,
    /// The stream's duplicate window when this server creates it.
    pub duplicate_window: Duration,
    /// The longest wait for NATS: connecting, an API answer, progress of the
    /// acknowledgements of publishes in flight.
    pub timeout: Duration,
    /// The largest message a client may send (the server's `--max-message`): NATS
    /// must take it with its headers.
    pub max_message: usize,
}

impl Options {
    /// Forwarding to `server` with the defaults: stream `SOQUETE`, subject
    /// `soquete.{name}.{token}`, a duplicate window of 2 minutes, a 5 s timeout.
    pub fn new(server: impl Into<String>) -> Self {
        Options {
            server: server.into(),
            stream: "SOQUETE".into(),
            subject: Template::default(),
            duplicate_window: Duration::from_secs(120),
            timeout: Duration::from_secs(5),
            max_message: 65536,
        }
    }
}

/// A subject made of `.`-separated tokens, each literal or a field: `{name}` (the
/// client's name, encoded by [`encode_name`]), `{auth}` (a secure peer's
/// authenticated name, encoded the same way; `%`, the empty name's token, for a peer
/// that is not authenticated: an authenticated name is never empty) or `{token}` (the
/// session token, 16 lowercase hex digits). `{token}` must appear, so that each session has subjects of
/// its own (a resume finds its last message there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Name,
    Auth,
    Token,
}

impl Default for Template {
    /// `soquete.{name}.{token}`.
    fn default() -> Self {
        Template {
            parts: vec![Part::Literal("soquete".into()), Part::Name, Part::Token],
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match part {
                Part::Literal(s) => f.write_str(s)?,
                Part::Name => f.write_str("{name}")?,
                Part::Auth => f.write_str("{auth}")?,
                Part::Token => f.write_str("{token}")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Template {
    type Err = String;

    /// Parses a template such as `soquete.{name}.{token}` or `devices.{token}`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        for token in text.split('.') {
            let part = match token {
                "{name}" => Part::Name,
                "{auth}" => Part::Auth,
                "{token}" => Part::Token,
                "" => return Err(format!("{text:?}: empty token (two dots, or a dot at an end)")),
                _ if token.contains(['{', '}']) => {
                    return Err(format!(
                        "{text:?}: a field is a whole token, {{name}}, {{auth}} or {{token}} (not {token:?})"
                    ))
                }
                _ if !token.bytes().all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>') => {
                    return Err(format!("{text:?}: {token:?} is not a literal subject token"))
                }
                _ => Part::Literal(token.to_owned()),
            };
            parts.push(part);
        }
        if !parts.contains(&Part::Token) {
            return Err(format!(
                "{text:?} has no {{token}}: each session needs subjects of its own (e.g. soquete.{{name}}.{{token}})"
            ));
        }
        Ok(Template { parts })
    }
}

impl Template {
    /// The subject of a message of session `token` from client `name`, authenticated
    /// as `auth` (a secure peer's authenticated name).
    pub fn subject(&self, name: &str, auth: Option<&str>, token: u64) -> String {
        self.render(|part, out| match part {
            Part::Name => encode_name_into(name.as_bytes(), out),
            Part::Auth => encode_name_into(auth.unwrap_or_default().as_bytes(), out),
            Part::Token | Part::Literal(_) => out.push_str(&format!("{token:016x}")),
        })
    }

    /// The subjects of every message of session `token`, whatever name it was sent
    /// under: the template with `*` for `{name}` and `{auth}`. A resume looks there,
    /// so that a peer cannot hide a session's owner by calling itself otherwise.
    pub fn session_filter(&self, token: u64) -> String {
        self.render(|part, out| match part {
            Part::Name | Part::Auth => out.push('*'),
            Part::Token | Part::Literal(_) => out.push_str(&format!("{token:016x}")),
        })
    }

    /// The subjects of all messages: the template with `*` for each field, as the
    /// stream takes them.
    pub fn filter(&self) -> String {
        self.render(|_, out| out.push('*'))
    }

    /// The template's tokens joined by dots: literals as they are, each field as
    /// `field` writes it (it is never given a literal).
    fn render(&self, mut field: impl FnMut(&Part, &mut String)) -> String {
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Name | Part::Auth | Part::Token => field(part, &mut out),
            }
        }
        out
    }
}

/// A client name as one subject token: `A`–`Z`, `a`–`z`, `0`–`9`, `-` and `_` stay as
/// they are, every other byte becomes `%XX` (two uppercase hex digits), and the empty
/// name is `%`. Injective: `%` is never kept, and is followed by two hex digits except
/// in the empty name's token.
pub fn encode_name(name: &[u8]) -> String {
    let mut out = String::new();
    encode_name_into(name, &mut out);
    out
}

fn encode_name_into(name: &[u8], out: &mut String) {
    if name.is_empty() {
        out.push('%');
        return;
    }
    for &b in name {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The `Nats-Msg-Id` of message `seq` of session `token`: `TOKEN.SEQ`, the token in
/// 16 lowercase hex digits, the sequence number in decimal.
pub fn msg_id(token: u64, seq: u64) -> String {
    format!("{token:016x}.{seq}")
}

/// The session token and sequence number in a `Nats-Msg-Id` made by [`msg_id`].
pub fn parse_msg_id(id: &str) -> Option<(u64, u64)> {
    let (token, seq) = id.split_once('.')?;
    if token.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(token, 16).ok()?, seq.parse().ok()?))
}

/// One message to publish.
#[derive(Debug)]
struct Record {
    subject: String,
    msg_id: String,
    /// A secure peer's name and key, for its `Soquete-Auth` and `Soquete-Key` headers.
    auth: Option<Identity>,
    payload: Vec<u8>,
}

/// A look-up's question: the last sequence number stored on a session's subject.
#[derive(Debug)]
struct Lookup {
    conn: Token,
    token: u64,
    subject: String,
}

/// The answer to [`Forward::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// The connection that asked.
    pub conn: Token,
    /// The session token.
    pub token: u64,
    /// The highest sequence number of the session stored in the stream (0: none).
    pub last: u64,
    /// Who opened the session, as its last stored message says.
    pub owner: Owner,
}

/// Who opened a session, from its last message in the stream: a session resumes
/// from the stream only for the peer that opened it (PROTOCOL.md §10.5), on any
/// server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Nothing of the session is stored.
    Nobody,
    /// A peer that was not secure (no `Soquete-Key` header).
    Clear,
    /// A secure peer with this key.
    Key(PublicKey),
    /// A `Soquete-Key` header that is not a key: nobody may resume it.
    Unreadable,
}

impl Owner {
    /// Whether a peer with `key` (`None`: not secure) may resume the session.
    pub fn admits(self, key: Option<PublicKey>) -> bool {
        match self {
            Owner::Nobody => true,
            Owner::Clear => key.is_none(),
            Owner::Key(owner) => key == Some(owner),
            Owner::Unreadable => false,
        }
    }
}

enum Job {
    Publish(Vec<Record>),
    Lookup(Lookup),
}

enum Report {
    /// The first `n` records handed over are stored.
    Stored(u64),
    Found(Found),
}

/// The publisher thread's end in the event loop.
pub struct Forward {
    template: Template,
    /// Records not handed over yet.
    batch: Vec<Record>,
    /// Records handed over or in `batch`, since the start.
    records: u64,
    /// Records stored, as last reported.
    stored: u64,
    /// Bytes of the records so far, and of those stored.
    bytes: u64,
    stored_bytes: u64,
    /// One per record not yet confirmed, with the byte count up to its end.
    marks: VecDeque<(Mark, u64)>,
    found: Vec<Found>,
    jobs: Option<Sender<Job>>,
    reports: Receiver<Report>,
    thread: Option<JoinHandle<()>>,
    _waker: Arc<Waker>,
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("records", &self.records)
            .field("stored", &self.stored)
            .finish_non_exhaustive()
    }
}

impl Forward {
    /// Connects to NATS, checks that the stream exists and takes the template's
    /// subjects (creating it if it does not exist), and starts the publisher thread,
    /// which wakes the loop with `waker` when records are stored or a look-up is
    /// answered.
    ///
    /// # Errors
    /// NATS cannot be reached, takes messages smaller than `options.max_message`, or
    /// the stream cannot be created or does not take the subjects: at start that is a
    /// mistake to fix, not an outage to wait out.
    pub fn start(options: Options, waker: Arc<Waker>) -> Result<Forward, nats::Error> {
        let (client, state) = connect(&options)?;
        info!(
            "forwarding to NATS {} stream {} ({}), subjects {}",
            options.server,
            options.stream,
            plural(state.messages, "message"),
            options.subject
        );
        let (jobs, job_rx) = mpsc::channel();
        let (report_tx, reports) = mpsc::channel();
        let template = options.subject.clone();
        let keep = Arc::clone(&waker);
        let mut publisher = Publisher {
            options,
            client: Some(client),
            unacked: VecDeque::new(),
            sent: 0,
            stored: 0,
            base: 0,
            lookups: VecDeque::new(),
            outage: None,
            backoff: FIRST_BACKOFF,
            next_try: Instant::now(),
            progress: Instant::now(),
            reports: report_tx,
            waker,
        };
        let thread = thread::Builder::new()
            .name("soquete nats".into())
            .spawn(move || publisher.serve(&job_rx))
            .map_err(nats::Error::Io)?;
        Ok(Forward {
            template,
            batch: Vec::new(),
            records: 0,
            stored: 0,
            bytes: 0,
            stored_bytes: 0,
            marks: VecDeque::new(),
            found: Vec::new(),
            jobs: Some(jobs),
            reports,
            thread: Some(thread),
            _waker: keep,
        })
    }

    /// Queues message `seq` of session `token` from client `name` (authenticated as
    /// `auth`, recorded in the `Soquete-Auth` and `Soquete-Key` headers), taken on
    /// connection `conn`: confirmed once JetStream has stored it.
    pub fn publish(&mut self, conn: Token, name: &str, auth: Option<&Identity>, token: u64, seq: u64, payload: &[u8]) {
        self.batch.push(Record {
            subject: self.template.subject(name, auth.map(|a| a.name.as_str()), token),
            msg_id: msg_id(token, seq),
            auth: auth.cloned(),
            payload: payload.to_vec(),
        });
        self.records += 1;
        self.bytes += payload.len() as u64 + RECORD_OVERHEAD;
        let mark = Mark {
            end: self.records,
            conn,
            seq,
        };
        self.marks.push_back((mark, self.bytes));
    }

    /// Asks for the last sequence number stored for session `token`, and who opened
    /// it, from its last message under any name (see [`Template::session_filter`]);
    /// the answer comes through [`Forward::found`].
    pub fn lookup(&mut self, conn: Token, token: u64) {
        let subject = self.template.session_filter(token);
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Lookup(Lookup { conn, token, subject }));
        }
    }

    /// Too much is waiting: take no more messages until JetStream catches up.
    pub fn is_full(&self) -> bool {
        self.bytes - self.stored_bytes >= QUEUE_BYTES || self.marks.len() >= QUEUE_RECORDS
    }

    /// Hands the queued records to the publisher.
    pub fn submit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Publish(std::mem::take(&mut self.batch)));
        }
    }

    /// Takes the publisher's reports: the messages now stored, in order, into `out`,
    /// and the look-ups answered, kept for [`Forward::found`].
    pub fn confirmed(&mut self, out: &mut Vec<Mark>) {
        while let Ok(report) = self.reports.try_recv() {
            match report {
                Report::Stored(n) => self.stored = self.stored.max(n),
                Report::Found(found) => self.found.push(found),
            }
        }
        while let Some((mark, bytes)) = self.marks.front() {
            if mark.end > self.stored {
                break;
            }
            self.stored_bytes = *bytes;
            out.push(*mark);
            self.marks.pop_front();
        }
    }

    /// The look-ups answered since the last call.
    pub fn found(&mut self) -> Vec<Found> {
        std::mem::take(&mut self.found)
    }

    /// Hands over what is left and waits up to `limit` for JetStream to store it.
    pub fn finish(&mut self, limit: Duration) {
        self.submit();
        let deadline = Instant::now() + limit;
        while self.stored < self.records {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(Report::Stored(n)) => self.stored = self.stored.max(n),
                Ok(Report::Found(_)) => {}
                Err(_) => {
                    warn!(
                        "NATS: {} not stored after {limit:?}; exiting without them \
                         (their clients were not told they were delivered)",
                        plural(self.records - self.stored, "message")
                    );
                    // The thread may be waiting for NATS: it ends with the process.
                    self.jobs = None;
                    return;
                }
            }
        }
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn connect(options: &Options) -> Result<(Client, nats::StreamState), nats::Error> {
    let client_options = nats::Options {
        timeout: options.timeout,
        name: "soquete server".into(),
        ..nats::Options::default()
    };
    let mut client = Client::connect(options.server.as_str(), client_options)?;
    // Else one large message would be refused again at every try, and stop
    // everything behind it.
    let needed = options.max_message.saturating_add(HEADERS_LEN);
    if client.max_payload() < needed {
        return Err(nats::Error::PayloadLimit {
            max_payload: client.max_payload(),
            needed,
        });
    }
    let state = client.ensure_stream_with(
        &options.stream,
        &[options.subject.filter().as_str()],
        options.duplicate_window,
    )?;
    Ok((client, state))
}

/// The publisher thread.
struct Publisher {
    options: Options,
    /// `None` while NATS is away.
    client: Option<Client>,
    /// Records handed over and not yet stored, oldest first.
    unacked: VecDeque<Record>,
    /// Of `unacked`, how many are published on the current connection.
    sent: usize,
    /// Records stored since the start.
    stored: u64,
    /// `stored` when the current connection was made (its `Client::stored` counts
    /// from there).
    base: u64,
    lookups: VecDeque<Lookup>,
    /// Since when NATS is away, if it is.
    outage: Option<Instant>,
    backoff: Duration,
    next_try: Instant,
    /// When the publishes in flight last made progress.
    progress: Instant,
    reports: Sender<Report>,
    waker: Arc<Waker>,
}

impl Publisher {
    fn serve(&mut self, jobs: &Receiver<Job>) {
        let mut open = true;
        loop {
            let busy = !self.unacked.is_empty() || !self.lookups.is_empty();
            if !open && self.unacked.is_empty() {
                return;
            }
            let wait = match (&self.client, busy) {
                (None, _) => self.next_try.saturating_duration_since(Instant::now()),
                (Some(_), false) => IDLE_WAIT,
                (Some(_), true) => Duration::ZERO,
            };
            if open {
                match jobs.recv_timeout(wait) {
                    Ok(job) => self.take(job),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
                while let Ok(job) = jobs.try_recv() {
                    self.take(job);
                }
            } else if self.client.is_none() {
                thread::sleep(wait);
            }
            if self.client.is_none() && Instant::now() >= self.next_try {
                self.reconnect();
            }
            if let Err(e) = self.work() {
                self.lost(&e);
            }
        }
    }

    fn take(&mut self, job: Job) {
        match job {
            Job::Publish(records) => self.unacked.extend(records),
            Job::Lookup(lookup) => {
                if self.lookups.len() >= MAX_LOOKUPS {
                    self.lookups.pop_front();
                }
                self.lookups.push_back(lookup);
            }
        }
    }

    /// Publishes what is not yet published, answers look-ups, and takes in the
    /// acknowledgements that have come.
    fn work(&mut self) -> Result<(), nats::Error> {
        let Some(client) = &mut self.client else {
            return Ok(());
        };
        let was_idle = client.in_flight() == 0;
        while let Some(record) = self.unacked.get(self.sent) {
            let key = record.auth.as_ref().map(|a| keys::public_to_text(&a.key));
            let auth = record
                .auth
                .as_ref()
                .zip(key.as_deref())
                .map(|(a, key)| (a.name.as_str(), key));
            client.publish_auth(&record.subject, &record.msg_id, auth, &record.payload)?;
            self.sent += 1;
        }
        if was_idle {
            self.progress = Instant::now();
        }
        while let Some(lookup) = self.lookups.front() {
            let last = client.last_on_subject(&self.options.stream, &lookup.subject)?;
            let (last, owner) = stored_state(last.as_ref(), lookup.token);
            let found = Found {
                conn: lookup.conn,
                token: lookup.token,
                last,
                owner,
            };
            debug!("NATS: session {:#x} stored up to {last}", lookup.token);
            self.lookups.pop_front();
            report_to(&self.reports, &self.waker, Report::Found(found));
        }
        let wait = if client.in_flight() > 0 {
            ACK_WAIT
        } else {
            Duration::ZERO
        };
        client.poll(Instant::now() + wait.max(Duration::from_millis(1)))?;
        let stored = self.base + client.stored();
        if stored > self.stored {
            let n = usize::try_from(stored - self.stored).unwrap_or(usize::MAX);
            self.unacked.drain(..n.min(self.unacked.len()));
            self.sent = self.sent.saturating_sub(n);
            self.stored = stored;
            self.progress = Instant::now();
            self.report(Report::Stored(stored));
            if self.outage.is_some() {
                self.recovered();
            }
        } else if client.in_flight() > 0 && self.progress.elapsed() >= self.options.timeout {
            return Err(nats::Error::Timeout);
        }
        Ok(())
    }

    fn report(&self, report: Report) {
        report_to(&self.reports, &self.waker, report);
    }

    /// NATS works again (if it did not).
    fn recovered(&mut self) {
        if let Some(since) = self.outage.take() {
            // At the outage warning's level: an operator sees both or neither.
            warn!(
                "NATS {} back after {:.1} s",
                self.options.server,
                since.elapsed().as_secs_f64()
            );
        }
        self.backoff = FIRST_BACKOFF;
    }

    /// The connection failed: everything not acknowledged waits for the next one.
    fn lost(&mut self, e: &nats::Error) {
        self.client = None;
        self.sent = 0;
        let now = Instant::now();
        if self.outage.is_none() {
            warn!(
                "NATS {}: {}; acknowledgements paused, {} waiting, connecting again",
                self.options.server,
                Outage(e),
                plural(u64::try_from(self.unacked.len()).unwrap_or(u64::MAX), "message")
            );
            self.outage = Some(now);
        } else {
            debug!("NATS {}: {e}", self.options.server);
        }
        self.next_try = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn reconnect(&mut self) {
        match connect(&self.options) {
            Ok((client, _)) => {
                debug!(
                    "NATS {}: connected; publishing {} messages not acknowledged again",
                    self.options.server,
                    self.unacked.len()
                );
                self.client = Some(client);
                self.base = self.stored;
                self.sent = 0;
                self.progress = Instant::now();
                // With messages waiting, the outage is over once one is stored: a
                // publish refused at every try is one outage, said once, with the
                // backoff growing.
                if self.unacked.is_empty() {
                    self.recovered();
                }
            }
            Err(e) => self.lost(&e),
        }
    }
}

/// What a lost connection's warning says: a publish that no stream answers, right
/// after a NATS restart, is JetStream still loading its streams.
struct Outage<'a>(&'a nats::Error);

impl fmt::Display for Outage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_not_ready() {
            f.write_str("JetStream not ready yet (no stream answers; it may be loading after a restart)")
        } else {
            self.0.fmt(f)
        }
    }
}

fn report_to(reports: &Sender<Report>, waker: &Waker, report: Report) {
    if reports.send(report).is_ok() {
        if let Err(e) = waker.wake() {
            error!("cannot wake the event loop: {e}");
        }
    }
}

/// The sequence number of session `token` in the last message on its subject (0 if
/// none, or if it was not published by a soquete server), and who opened the session.
fn stored_state(last: Option<&StoredMessage>, token: u64) -> (u64, Owner) {
    let Some((message, seq)) = last.and_then(|m| {
        m.msg_id()
            .and_then(parse_msg_id)
            .filter(|(t, _)| *t == token)
            .map(|(_, seq)| (m, seq))
    }) else {
        return (0, Owner::Nobody);
    };
    let owner = match header(&message.headers, "Soquete-Key") {
        None => Owner::Clear,
        Some(text) => keys::public_from_text(text).map_or(Owner::Unreadable, Owner::Key),
    };
    (seq, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_nothing_answers_is_jetstream_not_ready() {
        let not_ready = nats::Error::Rejected {
            index: 1019,
            reason: "no stream takes this subject".into(),
        };
        assert!(Outage(&not_ready).to_string().starts_with("JetStream not ready yet"));
        assert!(Outage(&nats::Error::NoResponders)
            .to_string()
            .starts_with("JetStream not ready yet"));
        let refused = nats::Error::Rejected {
            index: 3,
            reason: "maximum messages exceeded".into(),
        };
        assert_eq!(
            Outage(&refused).to_string(),
            "JetStream refused publish 3: maximum messages exceeded"
        );
        assert_eq!(
            Outage(&nats::Error::Closed).to_string(),
            nats::Error::Closed.to_string()
        );
    }

    #[test]
    fn templates_parse_and_render() {
        let t: Template = "soquete.{name}.{token}".parse().unwrap();
        assert_eq!(t, Template::default());
        assert_eq!(t.to_string(), "soquete.{name}.{token}");
        assert_eq!(t.subject("dev 1", None, 0xab), "soquete.dev%201.00000000000000ab");
        assert_eq!(t.filter(), "soquete.*.*");
        let t: Template = "a.{token}".parse().unwrap();
        assert_eq!(t.subject("x", Some("s"), 1), "a.0000000000000001");
        let t: Template = "d.{auth}.{name}.{token}".parse().unwrap();
        assert_eq!(t.to_string(), "d.{auth}.{name}.{token}");
        assert_eq!(t.filter(), "d.*.*.*");
        assert_eq!(
            t.subject("ana", Some("sensor.1"), 2),
            "d.sensor%2E1.ana.0000000000000002"
        );
        // Not authenticated: the empty name's token, which no authenticated name has.
        assert_eq!(t.subject("ana", None, 2), "d.%.ana.0000000000000002");
        for bad in [
            "soquete.{name}",
            "a..{token}",
            "a.{token}.",
            "a.x{token}",
            "a.{auth}",
            "a.{Auth}.{token}",
            "a b.{token}",
            "a.*.{token}",
            ">.{token}",
            "",
        ] {
            assert!(bad.parse::<Template>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_encode_injectively_into_one_subject_token() {
        assert_eq!(encode_name(b"sensor-1_a"), "sensor-1_a");
        assert_eq!(encode_name(b""), "%");
        assert_eq!(encode_name(b"a.b*c>d e%"), "a%2Eb%2Ac%3Ed%20e%25");
        assert_eq!(encode_name("é\n".as_bytes()), "%C3%A9%0A");
        // Distinct names, distinct tokens; every token is a valid subject token.
        let names: [&[u8]; 8] = [b"", b"%", b"%25", b"a", b"A", b"a.b", b"a%2Eb", b"\x00"];
        let encoded: std::collections::HashSet<String> = names.iter().map(|n| encode_name(n)).collect();
        assert_eq!(encoded.len(), names.len());
        for e in &encoded {
            assert!(!e.is_empty() && e.bytes().all(|b| b.is_ascii_graphic() && !b".*>".contains(&b)));
        }
    }

    #[test]
    fn msg_ids_round_trip() {
        let id = msg_id(0xdead_beef, 42);
        assert_eq!(id, "00000000deadbeef.42");
        assert_eq!(parse_msg_id(&id), Some((0xdead_beef, 42)));
        assert_eq!(parse_msg_id("beef.42"), None);
        assert_eq!(parse_msg_id("00000000deadbeef"), None);
    }

    #[test]
    fn the_stored_state_needs_the_sessions_own_id_and_says_who_opened_it() {
        let msg = |id: &str, extra: &str| StoredMessage {
            subject: "s".into(),
            seq: 9,
            headers: format!("NATS/1.0\r\nNats-Msg-Id: {id}{extra}\r\n\r\n").into_bytes(),
            data: Vec::new(),
        };
        assert_eq!(stored_state(Some(&msg(&msg_id(7, 41), "")), 7), (41, Owner::Clear));
        assert_eq!(stored_state(Some(&msg(&msg_id(8, 41), "")), 7), (0, Owner::Nobody));
        assert_eq!(stored_state(Some(&msg("other", "")), 7), (0, Owner::Nobody));
        assert_eq!(stored_state(None, 7), (0, Owner::Nobody));

        let key = PublicKey::from_bytes([7; 32]);
        let with_key = format!("\r\nSoquete-Auth: ana\r\nSoquete-Key: {}", keys::public_to_text(&key));
        assert_eq!(
            stored_state(Some(&msg(&msg_id(7, 3), &with_key)), 7),
            (3, Owner::Key(key))
        );
        let bad = "\r\nSoquete-Key: soquete-pk:nonsense";
        assert_eq!(stored_state(Some(&msg(&msg_id(7, 3), bad)), 7), (3, Owner::Unreadable));
    }

    #[test]
    fn a_session_resumes_only_for_the_peer_that_opened_it() {
        let a = PublicKey::from_bytes([1; 32]);
        let b = PublicKey::from_bytes([2; 32]);
        assert!(Owner::Nobody.admits(None) && Owner::Nobody.admits(Some(a)));
        assert!(Owner::Clear.admits(None) && !Owner::Clear.admits(Some(a)));
        assert!(Owner::Key(a).admits(Some(a)));
        assert!(!Owner::Key(a).admits(Some(b)) && !Owner::Key(a).admits(None));
        assert!(!Owner::Unreadable.admits(None) && !Owner::Unreadable.admits(Some(a)));
    }
}
