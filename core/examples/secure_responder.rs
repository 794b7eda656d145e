//! A secure server for one connection, built from the core alone: `secure::Secure`
//! (PROTOCOL.md §10) beneath a server `Session`, over a blocking `std::net` socket. It
//! is the peer `firmware/qemu-test.sh` runs the firmware's secure client against, and
//! prints what a test checks: the client's key and whether it is allowed, the
//! session's name, every message in order, and how it ended.
//!
//! ```text
//! secure_responder public SECRET              the public key of a secret key (64 hex digits each)
//! secure_responder serve --listen ADDR --key SECRET --allow PUBLIC [--tamper-resp]
//! ```
//!
//! `serve` takes one connection on ADDR (port 0: any; it prints `listening on ADDR`),
//! accepts the client only if its static key is PUBLIC, and acknowledges its messages.
//! `--tamper-resp` flips a bit of the handshake's answer, as a man in the middle who
//! does not hold the server's key would fail to produce it: the client must send
//! nothing more. Exit status 0 only for a session closed in order.
//!
//! Secret keys are 32 random bytes: `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'`.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use soquete_core::secure::{self, Alert, Event as SecureEvent, PublicKey, SecretKey, Secure, KEY_LEN};
use soquete_core::{Closure, Code, Config, Event, Instant, Session};

const USAGE: &str = "usage: secure_responder public SECRET\n       \
                     secure_responder serve --listen ADDR --key SECRET --allow PUBLIC [--tamper-resp]";

/// The secure layer's buffers: one whole record each way (and `max_record` 16,365).
const SECURE_BUF: usize = 16 * 1024;
/// The session's transmit buffer (acknowledgements and control frames).
const SESSION_TX: usize = 16 * 1024;
/// How long to wait for the client to close once the layer has failed.
const DRAIN: StdDuration = StdDuration::from_secs(5);

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("public") => public(&args[1..]),
        Some("serve") => serve(&args[1..]),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("secure_responder: {e}");
            ExitCode::from(2)
        }
    }
}

fn public(args: &[String]) -> Result<bool, Error> {
    let [secret] = args else {
        return Err(USAGE.into());
    };
    println!("{}", hex(SecretKey::from_bytes(key(secret)?).public_key().as_bytes()));
    Ok(true)
}

struct Options {
    listen: String,
    secret: SecretKey,
    allow: PublicKey,
    tamper_resp: bool,
}

fn options(args: &[String]) -> Result<Options, Error> {
    let (mut listen, mut secret, mut allow, mut tamper_resp) = (None, None, None, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(value()?.clone()),
            "--key" => secret = Some(SecretKey::from_bytes(key(value()?)?)),
            "--allow" => allow = Some(PublicKey::from_bytes(key(value()?)?)),
            "--tamper-resp" => tamper_resp = true,
            _ => return Err(format!("unknown argument {arg}\n{USAGE}").into()),
        }
    }
    match (listen, secret, allow) {
        (Some(listen), Some(secret), Some(allow)) => Ok(Options {
            listen,
            secret,
            allow,
            tamper_resp,
        }),
        _ => Err(USAGE.into()),
    }
}

/// Serves one connection; true if its session closed in order.
fn serve(args: &[String]) -> Result<bool, Error> {
    let opts = options(args)?;
    let listener = TcpListener::bind(&opts.listen)?;
    println!("listening on {}", listener.local_addr()?);
    let (stream, peer) = listener.accept()?;
    println!("connection from {peer}");
    let mut out = BufWriter::new(io::stdout().lock());
    let ok = Connection::new(stream, &opts)?.run(&mut out);
    out.flush()?;
    ok
}

struct Connection<'o> {
    stream: TcpStream,
    opts: &'o Options,
    start: StdInstant,
    layer: Secure<Vec<u8>, Vec<u8>>,
    session: Session<Vec<u8>, Vec<u8>>,
    messages: u64,
    /// The answer is still to be tampered with (`--tamper-resp`).
    tamper: bool,
}

impl<'o> Connection<'o> {
    fn new(stream: TcpStream, opts: &'o Options) -> Result<Self, Error> {
        let config = Config {
            allow_plain: false,
            ..Config::DEFAULT
        };
        let rx = vec![0; Session::<[u8; 1], [u8; 1]>::min_rx_len(config.max_message)];
        let layer = Secure::server(
            secure::Config::DEFAULT,
            &opts.secret,
            ephemeral()?,
            vec![0; SECURE_BUF],
            vec![0; SECURE_BUF],
            Instant::ZERO,
        )
        .map_err(|e| format!("secure layer: {e}"))?;
        let session =
            Session::server(config, rx, vec![0; SESSION_TX], Instant::ZERO).map_err(|e| format!("session: {e}"))?;
        // The read timeout paces the timers (handshake, keepalive, close).
        stream.set_read_timeout(Some(StdDuration::from_millis(20)))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            opts,
            start: StdInstant::now(),
            layer,
            session,
            messages: 0,
            tamper: opts.tamper_resp,
        })
    }

    fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Until the session ends or the layer fails; true for an orderly close.
    fn run(mut self, out: &mut impl Write) -> Result<bool, Error> {
        let mut buf = vec![0u8; 64 * 1024];
        let (mut pending, mut eof) = (0..0, false);
        loop {
            let now = self.now();
            if self.layer.poll_timeout().is_some_and(|t| t <= now) {
                self.layer.handle_timeout(now);
            }
            if self.session.poll_timeout().is_some_and(|t| t <= now) {
                self.session.handle_timeout(now);
            }
            if pending.is_empty() && !eof && self.layer.error().is_none() {
                match self.stream.read(&mut buf) {
                    Ok(0) => eof = true,
                    Ok(n) => pending = 0..n,
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}").into()),
                }
            }
            // Records in, plaintext to the session, its events; until nothing moves.
            let mut failed = None;
            loop {
                let mut moved = false;
                if !pending.is_empty() {
                    match self.layer.handle_input(now, &buf[pending.clone()]) {
                        Ok(n) => {
                            pending.start += n;
                            moved |= n > 0;
                        }
                        Err(e) => failed = Some(e),
                    }
                }
                self.decide(out)?;
                match self.layer.deliver(now, &mut self.session) {
                    Ok(n) => moved |= n > 0,
                    Err(e) => failed = failed.or(Some(e)),
                }
                self.events(now, out)?;
                if failed.is_some() || !moved {
                    break;
                }
            }
            if eof && pending.is_empty() && failed.is_none() && self.layer.poll_plaintext().is_empty() {
                if let Err(e) = self.layer.handle_eof(now) {
                    failed = Some(e);
                } else {
                    self.session.handle_eof(now);
                    self.events(now, out)?;
                }
            }
            if failed.is_none() {
                if let Err(e) = self.layer.seal_from(&mut self.session) {
                    failed = Some(e);
                }
            }
            // What the layer queued goes out, an ALERT after a failure included.
            self.transmit()?;
            if let Some(e) = failed.or(self.layer.error()) {
                writeln!(out, "secure layer failed: {e}")?;
                return self.drain(out).map(|()| false);
            }
            if self.session.is_finished() {
                let closure = self.session.closure();
                writeln!(out, "left ({}) after {} messages", describe(closure), self.messages)?;
                return Ok(matches!(closure, Some(Closure::Orderly { code: Code::Normal, .. })));
            }
            if eof && pending.is_empty() && self.layer.poll_transmit().is_empty() && self.session.is_closed() {
                writeln!(
                    out,
                    "left ({}) after {} messages",
                    describe(self.session.closure()),
                    self.messages
                )?;
                return Ok(false);
            }
        }
    }

    /// The client's key: allowed, or refused with UNKNOWN_KEY.
    fn decide(&mut self, out: &mut impl Write) -> Result<(), Error> {
        while let Some(event) = self.layer.poll_event() {
            match event {
                SecureEvent::ClientKey(key) if key == self.opts.allow => {
                    writeln!(out, "client key {}: allowed", hex(key.as_bytes()))?;
                    self.layer.accept().map_err(|e| format!("accept: {e}"))?;
                }
                SecureEvent::ClientKey(key) => {
                    writeln!(out, "client key {}: not allowed, refused", hex(key.as_bytes()))?;
                    self.layer
                        .refuse(Alert::UnknownKey)
                        .map_err(|e| format!("refuse: {e}"))?;
                }
                SecureEvent::Established => writeln!(out, "secure session established")?,
            }
        }
        Ok(())
    }

    fn events(&mut self, now: Instant, out: &mut impl Write) -> Result<(), Error> {
        while let Some(event) = self.session.poll_event(now) {
            match event {
                Event::Hello { name, .. } => {
                    writeln!(out, "connected as \"{name}\"")?;
                    self.session.accept(1, None).map_err(|e| format!("accept: {e}"))?;
                }
                Event::Message { payload, .. } => {
                    self.messages += 1;
                    writeln!(out, "message: {}", String::from_utf8_lossy(payload))?;
                }
                Event::PeerClosing(code) => writeln!(out, "peer closing: {code}")?,
                Event::Established { .. } | Event::Acked { .. } | Event::Closed(_) => {}
            }
        }
        Ok(())
    }

    fn transmit(&mut self) -> Result<(), Error> {
        let mut bytes = self.layer.poll_transmit().to_vec();
        if bytes.is_empty() {
            return Ok(());
        }
        if self.tamper && self.layer.error().is_none() {
            // The answer's last byte is in its tag: the client's check must fail.
            self.tamper = false;
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x01;
            }
        }
        self.stream.write_all(&bytes)?;
        self.layer.advance_transmit(bytes.len());
        Ok(())
    }

    /// After a failure: reads until the client closes (or [`DRAIN`] passes) and says
    /// how many bytes it still sent.
    fn drain(&mut self, out: &mut impl Write) -> Result<(), Error> {
        let deadline = StdInstant::now() + DRAIN;
        let mut buf = [0u8; 4096];
        let mut more = 0;
        while StdInstant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => more += n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        writeln!(
            out,
            "then the client sent {more} bytes and closed; {} messages",
            self.messages
        )?;
        Ok(())
    }
}

fn describe(closure: Option<Closure>) -> String {
    closure.map_or_else(|| "no session".to_owned(), |c| c.to_string())
}

/// 32 fresh bytes from the kernel's random source.
fn ephemeral() -> Result<[u8; KEY_LEN], Error> {
    let mut bytes = [0; KEY_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn key(s: &str) -> Result<[u8; KEY_LEN], Error> {
    let mut out = [0; KEY_LEN];
    if s.len() != 2 * KEY_LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("a key is {} hex digits: {s}", 2 * KEY_LEN).into());
    }
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair)?, 16)?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
