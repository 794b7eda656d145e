//! TAP mode: the smoltcp side on a Linux TAP device, as a client of `soquete server` or
//! a server for `soquete client`, through the kernel's own TCP stack. Real time; the
//! loop sleeps on the TAP file descriptor until a packet or the next deadline.

use std::io::{self, BufRead, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant as WallInstant};

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketStorage};
use smoltcp::phy::{self, Medium, TunTapInterface};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint, Ipv4Address};
use soquete_core::{Role as SessionRole, Stats};
use soquete_text::{Format, Printer};

use crate::link::Faults;
use crate::node::{self, Ended, Node, Options, Role, SocketBuffers, Source};
use crate::Error;

/// How long to let TCP finish closing after the last session ended.
const LINGER: SmolDuration = SmolDuration::from_secs(2);
/// The smoltcp side's MAC address (locally administered).
const MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x5c, 0x02]);

/// What the smoltcp side does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TapRole {
    /// Connect to a server, send messages, wait for their acknowledgement, close.
    Client {
        /// The server.
        remote: IpEndpoint,
        /// The name to introduce the session with.
        name: String,
        /// `Some((count, size))`: that many demo messages; `None`: standard input's
        /// lines.
        generated: Option<(u64, usize)>,
    },
    /// Accept clients on a port and print what they send, as `soquete server` does.
    Server {
        /// The port.
        port: u16,
        /// Clients served at once (one listening socket each).
        max_clients: usize,
        /// Stop after this many sessions have ended.
        sessions: Option<u64>,
    },
}

/// TAP mode settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapConfig {
    /// The TAP device's name (it must exist, e.g. `ip tuntap add dev tap0 mode tap`).
    pub iface: String,
    /// The smoltcp side's address and prefix.
    pub address: IpCidr,
    /// Default gateway, for servers beyond the TAP's subnet.
    pub gateway: Option<Ipv4Address>,
    /// Client or server.
    pub role: TapRole,
    /// Leave out per-message lines.
    pub quiet: bool,
    /// Faults and capture.
    pub faults: Faults,
    /// Give up after this long.
    pub time_limit: Option<Duration>,
}

/// What a TAP run did.
#[derive(Clone, Debug)]
pub struct TapOutcome {
    /// Every session that ended.
    pub ended: Vec<Ended>,
    /// The clients' counters (client mode).
    pub client: Stats,
    /// How long it ran.
    pub elapsed: Duration,
    /// The time limit was reached first.
    pub timed_out: bool,
}

impl TapOutcome {
    /// True when the run ended by itself, every session closed cleanly, and every
    /// message a client sent was acknowledged.
    pub fn is_ok(&self) -> bool {
        !self.timed_out && self.ended.iter().all(Ended::is_clean) && self.client.acked == self.client.sent
    }
}

/// Runs the smoltcp side on the TAP device until its sessions are done, printing the
/// server's lines to `out`.
///
/// # Errors
/// The device cannot be opened (it must exist and the process needs CAP_NET_ADMIN),
/// waiting on it fails, or writing `out` fails.
pub fn run<W: Write>(config: &TapConfig, out: W) -> Result<TapOutcome, Error> {
    let tap = TunTapInterface::new(&config.iface, Medium::Ethernet).map_err(Error::Device)?;
    let fd = tap.as_raw_fd();
    let mut device = config.faults.wrap(tap, false).map_err(Error::Device)?;

    let epoch = WallInstant::now();
    let clock = || SmolInstant::from_micros(i64::try_from(epoch.elapsed().as_micros()).unwrap_or(i64::MAX));
    let mut iface_config = IfaceConfig::new(MAC.into());
    iface_config.random_seed = u64::from(nanos());
    let mut iface = Interface::new(iface_config, &mut device, clock());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(config.address);
    });
    if let Some(gateway) = config.gateway {
        iface
            .routes_mut()
            .add_default_ipv4_route(gateway)
            .map_err(|_| Error::Config("cannot add the default route".into()))?;
    }

    let (roles, max_sessions) = match &config.role {
        TapRole::Client {
            remote,
            name,
            generated,
        } => {
            let source = match generated {
                Some((count, size)) => Source::generated(0, *count, *size),
                None => Source::lines(stdin_lines()),
            };
            // A port of its own per run, so that a rerun does not meet the last
            // run's connection in the kernel's TIME-WAIT.
            let local_port = 49152 + (nanos() % 16000) as u16;
            let role = Role::Client {
                remote: *remote,
                local_port,
                name: name.clone(),
                source,
            };
            (vec![role], None)
        }
        TapRole::Server {
            port,
            max_clients,
            sessions,
        } => (
            (0..*max_clients).map(|_| Role::Server { port: *port }).collect(),
            *sessions,
        ),
    };
    let n = roles.len();
    let mut storage = (0..n).map(|_| SocketStorage::EMPTY).collect::<Vec<_>>();
    let mut buffers = vec![SocketBuffers::new(); n];
    let options = Options {
        printer: Printer::new(out, Format::Text),
        quiet: config.quiet,
        verifier: None,
        max_sessions,
        session: node::session_config(),
    };
    let mut node: Node<_, _> = Node::new(iface, device, &mut storage, &mut buffers, roles, options)?;
    if let TapRole::Server { port, .. } = config.role {
        node.printer()
            .listening(IpEndpoint::new(config.address.address(), port))
            .map_err(Error::Output)?;
        node.flush()?;
    }

    let limit = config
        .time_limit
        .map(|d| SmolInstant::ZERO + SmolDuration::from_micros(d.as_micros() as u64));
    let mut linger_until = None;
    let mut timed_out = false;
    loop {
        let now = clock();
        let progress = node.poll(now)?;
        let mut wake = node.poll_at(now);
        if node.sessions_done() {
            let until = *linger_until.get_or_insert(now + LINGER);
            if node.sockets_idle() || now >= until {
                break;
            }
            wake = Some(wake.map_or(until, |w| w.min(until)));
        }
        if let Some(limit) = limit {
            if now >= limit {
                timed_out = true;
                break;
            }
            wake = Some(wake.map_or(limit, |w| w.min(limit)));
        }
        if progress {
            continue;
        }
        let delay = wake.map(|at| if at > now { at - now } else { SmolDuration::ZERO });
        phy::wait(fd, delay).map_err(Error::Device)?;
    }
    node.flush()?;
    Ok(TapOutcome {
        ended: node.ended().to_vec(),
        client: node.totals(SessionRole::Client),
        elapsed: epoch.elapsed(),
        timed_out,
    })
}

/// The wall clock's nanoseconds: a seed that differs from run to run.
fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos())
}

/// Standard input's lines (without `\n` or `\r\n`), read on a thread of their own; the
/// channel closes at end of input.
fn stdin_lines() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::sync_channel(256);
    thread::spawn(move || {
        for line in io::stdin().lock().split(b'\n') {
            let Ok(mut line) = line else { break };
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
