//! The poll loop: smoltcp over the LAN9118, one TCP socket, one soquete session on it,
//! moved by the core's blocking-free driver (`io::pump_read` / `io::pump_write`).
//!
//! Every round reads the clock, polls the interface, then moves the connection along
//! ([`Phase`]). A round in which nothing moved and smoltcp has nothing due ends in
//! [`idle::sleep`]: until a frame arrives or the next millisecond.

use cortex_m_semihosting::hprintln;
use smoltcp::iface::{Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use soquete_core::io::{pump_read, pump_write};
use soquete_core::{Closure, Code, Config, Event, Instant, Session};

use crate::clock::Clock;
use crate::idle;
use crate::lan9118::Lan9118;
use crate::params::{Params, Role};
use crate::tcp_io::TcpIo;

/// The session's settings: the core's defaults (1 KiB messages).
pub const SESSION_CONFIG: Config = Config {
    allow_plain: false,
    ..Config::DEFAULT
};
/// A session's receive buffer: one whole MSG frame of the largest message.
pub const SESSION_RX: usize = Session::<[u8; 1], [u8; 1]>::min_rx_len(SESSION_CONFIG.max_message);
/// A session's transmit buffer: the messages sent and not yet acknowledged.
pub const SESSION_TX: usize = 4096;

/// The firmware's session: buffers in static memory.
pub type FwSession = Session<&'static mut [u8], &'static mut [u8]>;

/// How long to wait for the TCP connection to finish closing after the session has.
const LINGER_MS: u64 = 2000;

/// The network side: interface, device, the socket and the clock.
pub struct Net<'a> {
    /// The IP interface.
    pub iface: Interface,
    /// The Ethernet controller.
    pub device: Lan9118,
    /// The one TCP socket.
    pub sockets: SocketSet<'a>,
    /// Its handle.
    pub tcp: SocketHandle,
    /// Milliseconds.
    pub clock: Clock,
}

impl core::fmt::Debug for Net<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl<'a> Net<'a> {
    /// Reads the clock and polls the interface; returns the time and whether a
    /// socket changed.
    fn poll(&mut self) -> (u64, bool) {
        let now = self.clock.now();
        let changed = self.iface.poll(smol_instant(now), &mut self.device, &mut self.sockets);
        (now, changed == PollResult::SocketStateChanged)
    }

    /// Sleeps unless smoltcp has something to send now.
    fn idle(&mut self, now: u64) {
        if self.iface.poll_delay(smol_instant(now), &self.sockets) != Some(smoltcp::time::Duration::ZERO) {
            idle::sleep(&self.device);
        }
    }

    fn socket(&mut self) -> &mut tcp::Socket<'a> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }
}

/// How a run ended badly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection: refused, reset, or no answer (client); nobody came (server).
    NoConnection,
    /// The time limit passed.
    Timeout,
    /// The session could not be created or driven (a bug).
    Core(soquete_core::session::Error),
    /// The socket refused a read or write the pumps made (a bug).
    Transport(crate::tcp_io::Error),
    /// The secure layer failed: refused, a server that does not hold the expected key,
    /// a record that does not authenticate, a handshake timeout...
    #[cfg(feature = "secure")]
    Secure(soquete_core::secure::Error),
}

/// What a run did; the verdict is [`Summary::passed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The role played.
    pub role: Role,
    /// Messages expected (client: to send).
    pub expected: u32,
    /// Client: messages sent. Server: messages received in order.
    pub messages: u64,
    /// Client: messages acknowledged. Server: messages received.
    pub acked: u64,
    /// Server: the number expected where another message arrived, the first time.
    pub out_of_order: Option<u32>,
    /// How the session ended, if it did.
    pub closure: Option<Closure>,
    /// Milliseconds from the session's start to its end.
    pub millis: u64,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
    /// The client ran through the secure layer.
    #[cfg(feature = "secure")]
    pub secure: bool,
    /// The secure handshake's times, if it completed.
    #[cfg(feature = "secure")]
    pub handshake: Option<crate::secure::Timing>,
}

impl Summary {
    /// True when every message went through in order, acknowledged, and the session
    /// closed in order.
    pub fn passed(&self) -> bool {
        let count = u64::from(self.expected);
        self.failure.is_none()
            && self.out_of_order.is_none()
            && self.messages == count
            && self.acked == count
            && matches!(self.closure, Some(Closure::Orderly { code: Code::Normal, .. }))
    }
}

/// Where the connection is.
// One of these, on the stack; there is no heap to box the session's ~500 bytes of state into.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Client: connecting. Server: listening.
    Opening,
    /// The session runs.
    Live { session: FwSession, since: u64 },
    /// The session has ended; the TCP connection is closing.
    Closing { until: u64 },
}

/// Role-specific progress.
pub(crate) struct Tally {
    role: Role,
    expected: u32,
    /// Client: the next message to send. Server: the next one expected.
    next: u32,
    /// Server: messages received.
    received: u64,
    out_of_order: Option<u32>,
}

/// Runs the role in `params` to its end. The buffers become the session's.
pub fn run(net: &mut Net<'_>, params: &Params<'_>, rx: &'static mut [u8], tx: &'static mut [u8]) -> Summary {
    let mut summary = Summary {
        role: params.role,
        expected: params.messages,
        messages: 0,
        acked: 0,
        out_of_order: None,
        closure: None,
        millis: 0,
        failure: None,
        #[cfg(feature = "secure")]
        secure: params.secure.is_some(),
        #[cfg(feature = "secure")]
        handshake: None,
    };
    let start = net.clock.now();
    let deadline = start + u64::from(params.time_secs) * 1000;
    match params.role {
        Role::Client => {
            let port = 49152 + (net.device.free_run() % 16384) as u16;
            let (ip, remote_port) = params.connect;
            let cx = net.iface.context();
            let socket = net.sockets.get_mut::<tcp::Socket>(net.tcp);
            if socket.connect(cx, (ip, remote_port), port).is_err() {
                summary.failure = Some(Failure::NoConnection);
                return summary;
            }
        }
        Role::Server => {
            if net.socket().listen(params.listen).is_err() {
                summary.failure = Some(Failure::NoConnection);
                return summary;
            }
            hprintln!("listening on {}:{}", params.ip.address(), params.listen);
        }
    }
    let mut tally = Tally {
        role: params.role,
        expected: params.messages,
        next: 1,
        received: 0,
        out_of_order: None,
    };
    let mut buffers = Some((rx, tx));
    #[cfg(feature = "secure")]
    let mut entropy = crate::secure::Entropy::new();
    #[cfg(feature = "secure")]
    entropy.stir_counters(net.device.free_run());
    #[cfg(feature = "secure")]
    let mut secure_buffers = params.secure.and_then(|_| crate::secure::buffers());
    // The secure layer, once the session runs (beside `phase`, which moves every round).
    #[cfg(feature = "secure")]
    let mut link: Option<crate::secure::Link> = None;
    let mut phase = Phase::Opening;
    loop {
        let (now, changed) = net.poll();
        let mut progress = changed;
        if now >= deadline {
            summary.failure.get_or_insert(Failure::Timeout);
            if let Phase::Live { session, since } = &phase {
                record(&mut summary, &tally, session, now - since);
            }
            return summary;
        }
        let socket = net.sockets.get_mut::<tcp::Socket>(net.tcp);
        phase = match phase {
            Phase::Opening => match socket.state() {
                tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived => {
                    // The rounds before the connection: their timing is the host's.
                    #[cfg(feature = "secure")]
                    entropy.stir_counters(net.device.free_run());
                    Phase::Opening
                }
                tcp::State::Closed => {
                    summary.failure = Some(Failure::NoConnection);
                    return summary;
                }
                // Established (or already closing: the session will see end of stream).
                _ => {
                    let Some((rx, tx)) = buffers.take() else {
                        return summary;
                    };
                    let t = Instant::from_millis(now);
                    let session = match params.role {
                        Role::Client => FwSession::client(SESSION_CONFIG, params.name, rx, tx, t),
                        #[cfg(feature = "server")]
                        Role::Server => FwSession::server(SESSION_CONFIG, rx, tx, t),
                        // Params::parse takes `role=server` only with the feature.
                        #[cfg(not(feature = "server"))]
                        Role::Server => Err(soquete_core::session::Error::WrongState),
                    };
                    progress = true;
                    let session = match session {
                        Ok(session) => session,
                        Err(e) => {
                            summary.failure = Some(Failure::Core(e));
                            return summary;
                        }
                    };
                    #[cfg(feature = "secure")]
                    if let Some(keys) = params.secure {
                        entropy.stir_counters(net.device.free_run());
                        // Never in plain text when keys were given: without buffers
                        // (taken once, so never) the run fails.
                        let made = secure_buffers
                            .take()
                            .ok_or(soquete_core::secure::Error::WrongState)
                            .and_then(|(rx, tx)| {
                                crate::secure::Link::new(&keys, &entropy, rx, tx, t, net.device.free_run())
                            });
                        match made {
                            Ok(l) => link = Some(l),
                            Err(e) => {
                                summary.failure = Some(Failure::Secure(e));
                                return summary;
                            }
                        }
                    }
                    Phase::Live { session, since: now }
                }
            },
            Phase::Live { mut session, since } => {
                let t = Instant::from_millis(now);
                #[cfg(feature = "secure")]
                let result = match link.as_mut() {
                    Some(link) => service_secure(link, &mut session, socket, &mut tally, t, &net.device),
                    None => service(&mut session, socket, &mut tally, t),
                };
                #[cfg(not(feature = "secure"))]
                let result = service(&mut session, socket, &mut tally, t);
                match result {
                    Ok(moved) => progress |= moved,
                    Err(failure) => summary.failure = Some(failure),
                }
                // What the secure layer has sealed goes out before the close.
                #[cfg(feature = "secure")]
                let drained = link.as_ref().is_none_or(crate::secure::Link::drained);
                #[cfg(not(feature = "secure"))]
                let drained = true;
                if summary.failure.is_some()
                    || session.is_finished() && drained
                    || !socket.may_send() && session.is_closed()
                {
                    record(&mut summary, &tally, &session, now - since);
                    #[cfg(feature = "secure")]
                    {
                        summary.handshake = link.as_ref().and_then(crate::secure::Link::timing);
                    }
                    socket.close();
                    Phase::Closing { until: now + LINGER_MS }
                } else {
                    Phase::Live { session, since }
                }
            }
            Phase::Closing { until } => {
                if matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait) || now >= until {
                    return summary;
                }
                Phase::Closing { until }
            }
        };
        if !progress {
            net.idle(now);
        }
    }
}

fn smol_instant(millis: u64) -> SmolInstant {
    SmolInstant::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

fn record(summary: &mut Summary, tally: &Tally, session: &FwSession, millis: u64) {
    let stats = session.stats();
    summary.closure = session.closure();
    summary.millis = millis;
    match tally.role {
        Role::Client => {
            summary.messages = stats.sent;
            summary.acked = stats.acked;
        }
        Role::Server => {
            summary.messages = u64::from(tally.next - 1);
            summary.acked = tally.received;
            summary.out_of_order = tally.out_of_order;
        }
    }
}

/// One round for a live session: timers, input, events, new messages, output. True
/// if bytes moved (the socket has something new to send, or room again).
fn service(
    session: &mut FwSession,
    socket: &mut tcp::Socket<'_>,
    tally: &mut Tally,
    now: Instant,
) -> Result<bool, Failure> {
    if session.poll_timeout().is_some_and(|t| t <= now) {
        session.handle_timeout(now);
    }
    let mut moved = false;
    loop {
        let n = pump_read(session, &mut TcpIo(socket), now).map_err(transport)?;
        events(session, tally, now)?;
        if n == 0 {
            break;
        }
        moved = true;
    }
    send_messages(session, tally, now)?;
    moved |= pump_write(session, &mut TcpIo(socket)).map_err(transport)? > 0;
    // The close may have happened while encoding output: take its event too.
    events(session, tally, now)?;
    Ok(moved)
}

/// [`service`] through the secure layer: the socket's bytes are records, opened and
/// sealed by `link`.
// Not inlined: the handshake's deep calls then use stack only while they run, not in
// the poll loop's own frame for the whole run.
#[cfg(feature = "secure")]
#[inline(never)]
fn service_secure(
    link: &mut crate::secure::Link,
    session: &mut FwSession,
    socket: &mut tcp::Socket<'_>,
    tally: &mut Tally,
    now: Instant,
    device: &Lan9118,
) -> Result<bool, Failure> {
    if session.poll_timeout().is_some_and(|t| t <= now) {
        session.handle_timeout(now);
    }
    let free_run = || device.free_run();
    let mut moved = link.receive(session, socket, tally, now, free_run)?;
    send_messages(session, tally, now)?;
    moved |= link.transmit(session, socket, free_run)?;
    events(session, tally, now)?;
    Ok(moved)
}

/// Client: queues the next numbered messages while the session takes them, then the
/// close.
fn send_messages(session: &mut FwSession, tally: &mut Tally, now: Instant) -> Result<(), Failure> {
    if tally.role == Role::Client && session.is_open() {
        let mut digits = [0u8; 10];
        while tally.next <= tally.expected {
            match session.send(decimal(tally.next, &mut digits)) {
                Ok(_) => tally.next += 1,
                Err(soquete_core::session::Error::Full) => break,
                Err(e) => return Err(Failure::Core(e)),
            }
        }
        if tally.next > tally.expected {
            // CLOSE goes out once every message is acknowledged (PROTOCOL.md §4.5).
            session.close(now, Code::Normal);
        }
    }
    Ok(())
}

fn transport(e: soquete_core::io::Error<crate::tcp_io::Error>) -> Failure {
    match e {
        soquete_core::io::Error::Transport(e) => Failure::Transport(e),
        soquete_core::io::Error::WriteZero => Failure::Transport(crate::tcp_io::Error::NotConnected),
    }
}

/// Takes every event (which also releases delivered messages, so their
/// acknowledgement can go out).
///
/// # Errors
/// Server: the session refused the accept (a bug).
pub(crate) fn events(session: &mut FwSession, tally: &mut Tally, now: Instant) -> Result<(), Failure> {
    while let Some(event) = session.poll_event(now) {
        match event {
            #[cfg(feature = "server")]
            Event::Hello { name, .. } => {
                hprintln!("session from \"{}\"", name);
                session.accept(1, None).map_err(Failure::Core)?;
            }
            Event::Message { payload, .. } => {
                tally.received += 1;
                let number = core::str::from_utf8(payload).ok().and_then(|s| s.parse::<u32>().ok());
                if number == Some(tally.next) {
                    tally.next += 1;
                } else if tally.out_of_order.is_none() {
                    tally.out_of_order = Some(tally.next);
                }
            }
            Event::Closed(closure) if !matches!(closure, Closure::Orderly { .. }) => {
                hprintln!("session ended: {}", closure);
            }
            // Hello comes only to a server session.
            #[cfg(not(feature = "server"))]
            Event::Hello { .. } => {}
            Event::Established { .. } | Event::Acked { .. } | Event::PeerClosing(_) | Event::Closed(_) => {}
        }
    }
    Ok(())
}

/// `n` in decimal ASCII, in `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}
