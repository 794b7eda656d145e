//! Loopback mode: a server and several clients in one process, over one smoltcp
//! interface on `smoltcp::phy::Loopback`, on a virtual clock.
//!
//! Time only moves when nothing else can: after a round in which nothing happened,
//! the clock jumps to the next deadline of smoltcp ([`Interface::poll_at`]) or of a
//! session ([`soquete_core::Session::poll_timeout`]), as smoltcp's `loopback.rs`
//! does. Runs are deterministic (the fault injector has a seed) and take as long as
//! the work, not as long as the timers.
//!
//! [`Interface::poll_at`]: smoltcp::iface::Interface::poll_at

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant as WallInstant};

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketStorage};
use smoltcp::phy::{Device, Loopback, Medium};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use soquete_core::Role as SessionRole;
use soquete_text::{Format, Printer};

use crate::link::{Checked, Faults};
use crate::node::{self, Ended, Node, Options, Role, SocketBuffersOf, Source, Verifier};
use crate::{payload, Error};

/// The interface's address; servers and clients share it.
pub const ADDR: IpAddress = IpAddress::v4(127, 0, 0, 1);
/// The servers' port.
pub const PORT: u16 = 8800;
/// First local port of the clients.
const CLIENT_PORT: u16 = 49152;
/// How long to let TCP finish closing after the last session ended.
const LINGER: SmolDuration = SmolDuration::from_secs(15);

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of clients, each on its own connection (and the server's as many
    /// listening sockets).
    pub clients: u32,
    /// Messages each client sends.
    pub messages: u64,
    /// Size of each message, at least its header (`client C message I `).
    pub size: usize,
    /// Leave out the server's per-message lines.
    pub quiet: bool,
    /// IP (no link layer) or Ethernet frames on the loopback.
    pub medium: Medium,
    /// Faults and capture.
    pub faults: Faults,
    /// Give up when the virtual clock passes this.
    pub time_limit: Duration,
    /// Each TCP socket's receive and transmit buffers, and each session's transmit
    /// buffer (the messages it may have unacknowledged): [`node::SOCKET_RX`] (the
    /// firmware's) or [`LARGE_SOCKET_BUFFERS`] (smoltcp's loopback benchmark's).
    pub socket_buffers: usize,
    /// smoltcp's `Loopback` as it is (65,535-byte MTU, no checksums) instead of an
    /// Ethernet-like link; refused with corruption, which checksums turn into loss.
    pub raw_link: bool,
}

/// The socket buffers of smoltcp's `examples/loopback_benchmark.rs`.
pub const LARGE_SOCKET_BUFFERS: usize = 65536;

impl Default for Config {
    fn default() -> Self {
        Config {
            clients: 4,
            messages: 1000,
            size: 32,
            quiet: false,
            medium: Medium::Ip,
            faults: Faults {
                seed: 1,
                ..Faults::default()
            },
            time_limit: Duration::from_secs(3600),
            socket_buffers: node::SOCKET_RX,
            raw_link: false,
        }
    }
}

/// The sessions' settings on the virtual clock: the demo's, with timeouts long enough
/// for TCP to retransmit through a lossy link without a session giving up first.
/// smoltcp doubles its RTT estimate at each retransmission, up to a 10 s timeout, and
/// only lowers it with new samples: at 20 % loss each way, one frame can take several
/// 10 s rounds. Waiting costs nothing on the virtual clock.
pub fn session_config() -> soquete_core::Config {
    soquete_core::Config {
        idle_timeout: soquete_core::Duration::from_secs(120),
        handshake_timeout: soquete_core::Duration::from_secs(60),
        close_timeout: soquete_core::Duration::from_secs(60),
        allow_plain: false,
        ..node::session_config()
    }
}

/// Why a run stopped before it completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The virtual clock passed [`Config::time_limit`].
    TimeLimit,
    /// Nothing was left to happen: no packet, no timer, and the sessions not done.
    Stalled,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Number of clients.
    pub clients: u32,
    /// Messages each client was to send.
    pub messages: u64,
    /// Message size asked for.
    pub size: usize,
    /// Messages the clients' sessions accepted for sending.
    pub sent: u64,
    /// Messages the server received intact, in order, once each.
    pub delivered: u64,
    /// Messages the server received that were not the next expected one.
    pub bad: u64,
    /// Messages the clients saw acknowledged.
    pub acked: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Bytes of soquete frames handed to TCP, both directions.
    pub wire_bytes: u64,
    /// Sessions that ended, both sides.
    pub sessions: usize,
    /// Of those, the ones that closed in order.
    pub clean: usize,
    /// How each of the others ended.
    pub unclean: Vec<String>,
    /// Time on the virtual clock.
    pub virtual_time: Duration,
    /// Time it took.
    pub wall_time: Duration,
    /// Why the run stopped early, if it did.
    pub stop: Option<Stop>,
}

impl Summary {
    /// Messages the clients were to send in all.
    pub fn expected(&self) -> u64 {
        u64::from(self.clients) * self.messages
    }

    /// What went wrong; empty when every message was delivered exactly once, in
    /// order, and acknowledged, and every session closed in order.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let expected = self.expected();
        match self.stop {
            Some(Stop::TimeLimit) => problems.push(format!(
                "virtual time limit exceeded at {:.3}s (raise --time-limit, or lower the faults)",
                self.virtual_time.as_secs_f64()
            )),
            Some(Stop::Stalled) => problems.push("stalled: no packet or timer left, sessions not done".into()),
            None => {}
        }
        if self.sent != expected {
            problems.push(format!("sent {} of {expected} messages", self.sent));
        }
        if self.delivered != expected {
            problems.push(format!("delivered {} of {expected} messages", self.delivered));
        }
        if self.bad > 0 {
            problems.push(format!("{} messages corrupted, duplicated or out of order", self.bad));
        }
        if self.acked != expected {
            problems.push(format!("acknowledged {} of {expected} messages", self.acked));
        }
        let sessions = 2 * self.clients as usize;
        if self.clean != sessions {
            problems.push(format!(
                "{} of {sessions} sessions closed in order ({})",
                self.clean,
                self.unclean.join(", ")
            ));
        }
        problems
    }

    /// True when [`Summary::problems`] is empty.
    pub fn is_ok(&self) -> bool {
        self.problems().is_empty()
    }
}

fn rate(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64()
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "clients:      {} x {} messages of {} bytes",
            self.clients, self.messages, self.size
        )?;
        writeln!(f, "sent:         {} messages, {} acknowledged", self.sent, self.acked)?;
        writeln!(
            f,
            "delivered:    {} messages, {} payload bytes, each once and in order ({} bad)",
            self.delivered, self.bytes, self.bad
        )?;
        writeln!(
            f,
            "sessions:     {} of {} closed in order; {} bytes of frames",
            self.clean, self.sessions, self.wire_bytes
        )?;
        for (name, time) in [("virtual time:", self.virtual_time), ("wall time:", self.wall_time)] {
            write!(f, "{name:<13} {:.3}s", time.as_secs_f64())?;
            if !time.is_zero() {
                write!(
                    f,
                    ", {:.0} msgs/s, {:.0} bytes/s",
                    rate(self.delivered, time),
                    rate(self.bytes, time)
                )?;
            }
            writeln!(f)?;
        }
        let problems = self.problems();
        if problems.is_empty() {
            write!(f, "result:       OK")
        } else {
            write!(f, "result:       FAILED: {}", problems.join("; "))
        }
    }
}

/// Runs the demo, printing the server's lines (as `soquete server` does) to `out`.
///
/// # Errors
/// Invalid settings, the capture file, or writing `out`. Lost or wrong messages are
/// not errors: they are in the [`Summary`].
pub fn run<W: Write>(config: &Config, out: W) -> Result<Summary, Error> {
    const _: () = assert!(node::SOCKET_RX == node::SOCKET_TX);
    match config.socket_buffers {
        node::SOCKET_RX => run_with::<W, { node::SOCKET_RX }>(config, out),
        LARGE_SOCKET_BUFFERS => run_with::<W, LARGE_SOCKET_BUFFERS>(config, out),
        other => Err(Error::Config(format!(
            "socket buffers of {other} bytes: only {} or {LARGE_SOCKET_BUFFERS}",
            node::SOCKET_RX
        ))),
    }
}

fn run_with<W: Write, const BUF: usize>(config: &Config, out: W) -> Result<Summary, Error> {
    if config.raw_link && config.faults.corrupt_chance > 0 {
        return Err(Error::Config(
            "a raw link has no checksums: corruption would reach the sessions as data".into(),
        ));
    }
    let max_clients = u32::from(u16::MAX - CLIENT_PORT);
    if config.clients == 0 || config.clients > max_clients {
        return Err(Error::Config(format!(
            "the number of clients must be 1 to {max_clients}"
        )));
    }
    if config.size > node::MAX_MESSAGE as usize {
        return Err(Error::Config(format!(
            "messages are at most {} bytes",
            node::MAX_MESSAGE
        )));
    }

    let link = if config.raw_link {
        Checked::raw(Loopback::new(config.medium))
    } else {
        Checked::new(Loopback::new(config.medium))
    };
    // Without faults or capture the middleware would only copy each packet once more
    // (a tenth of a run's time): the interface gets the link itself.
    if config.faults.is_none() {
        drive::<W, BUF, _>(config, link, out)
    } else {
        let device = config.faults.wrap(link, true).map_err(Error::Device)?;
        drive::<W, BUF, _>(config, device, out)
    }
}

fn drive<W: Write, const BUF: usize, D: Device>(config: &Config, mut device: D, out: W) -> Result<Summary, Error> {
    let hardware = match config.medium {
        Medium::Ethernet => HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 0x01])),
        _ => HardwareAddress::Ip,
    };
    let mut iface_config = IfaceConfig::new(hardware);
    iface_config.random_seed = u64::from(config.faults.seed);
    let mut iface = Interface::new(iface_config, &mut device, SmolInstant::ZERO);
    iface.update_ip_addrs(|addrs| {
        // The list has room for one address at least.
        let _ = addrs.push(IpCidr::new(ADDR, 8));
    });

    let n = config.clients as usize;
    let mut storage = (0..2 * n).map(|_| SocketStorage::EMPTY).collect::<Vec<_>>();
    let mut buffers: Vec<SocketBuffersOf<BUF, BUF>> = (0..2 * n).map(|_| SocketBuffersOf::new()).collect();
    let servers = (0..n).map(|_| Role::Server { port: PORT });
    let clients = (0..config.clients).map(|c| Role::Client {
        remote: IpEndpoint::new(ADDR, PORT),
        local_port: CLIENT_PORT + c as u16,
        name: payload::client_name(c),
        source: Source::generated(c, config.messages, config.size),
    });
    let options = Options {
        printer: Printer::new(out, Format::Text),
        quiet: config.quiet,
        verifier: Some(Verifier::new(config.clients, config.size)),
        max_sessions: Some(u64::from(config.clients)),
        session: session_config(),
    };
    let mut node: Node<_, _, BUF> = Node::new(
        iface,
        device,
        &mut storage,
        &mut buffers,
        servers.chain(clients).collect(),
        options,
    )?;
    node.printer()
        .listening(IpEndpoint::new(ADDR, PORT))
        .map_err(Error::Output)?;

    let wall = WallInstant::now();
    let limit = SmolInstant::ZERO + SmolDuration::from_millis(config.time_limit.as_millis() as u64);
    let mut now = SmolInstant::ZERO;
    let mut stop = None;
    let mut linger_until = None;
    loop {
        let progress = node.poll(now)?;
        if node.sessions_done() {
            let until = *linger_until.get_or_insert(now + LINGER);
            if node.sockets_idle() || now >= until {
                break;
            }
        }
        if progress {
            continue;
        }
        match node.poll_at(now) {
            // At least a millisecond: a deadline that is due but did nothing must not
            // hold the clock still.
            Some(at) => now = at.max(now + SmolDuration::from_millis(1)),
            // Sessions done, nothing left to time: TCP's teardown is not ours to wait for.
            None if node.sessions_done() => break,
            None => {
                stop = Some(Stop::Stalled);
                break;
            }
        }
        if now > limit {
            stop = Some(Stop::TimeLimit);
            break;
        }
    }
    let wall_time = wall.elapsed();
    node.flush()?;

    let client = node.totals(SessionRole::Client);
    let server = node.totals(SessionRole::Server);
    let verifier = node.verifier();
    Ok(Summary {
        clients: config.clients,
        messages: config.messages,
        size: config.size,
        sent: client.sent,
        delivered: verifier.map_or(0, |v| v.delivered),
        bad: verifier.map_or(0, |v| v.bad),
        acked: client.acked,
        bytes: verifier.map_or(0, |v| v.bytes),
        wire_bytes: client.bytes_out + server.bytes_out,
        sessions: node.ended().len(),
        clean: node.ended().iter().filter(|e| e.is_clean()).count(),
        unclean: node.ended().iter().filter(|e| !e.is_clean()).map(describe).collect(),
        virtual_time: Duration::from_millis(now.total_millis() as u64),
        wall_time,
        stop,
    })
}

fn describe(ended: &Ended) -> String {
    let at = |ep: Option<IpEndpoint>| ep.map_or("?".to_owned(), |ep| ep.to_string());
    let who = match ended.role {
        SessionRole::Client => format!("client {}", at(ended.local)),
        SessionRole::Server => format!("server #{} {}", ended.id, at(ended.peer)),
    };
    match ended.closure {
        Some(closure) => format!("{who}: {closure}"),
        None => format!("{who}: connection failed"),
    }
}
