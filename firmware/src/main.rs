//! soquete on QEMU's MPS2 boards: the unchanged `soquete-core` over smoltcp over the
//! boards' LAN9118 Ethernet controller, as a client that sends numbered messages to a
//! `soquete server` or as a server that a `soquete client` sends to. With the `secure`
//! feature, also as a client whose session runs through the core's secure layer
//! (`src/secure.rs`, PROTOCOL.md §10).
//!
//! Parameters come from QEMU's `-append` (see [`params`]); output goes to the host
//! through semihosting, and so does the verdict: QEMU exits 0 when every message went
//! through in order, acknowledged, and the session closed in order, 1 otherwise.
#![no_std]
#![no_main]

mod app;
mod clock;
mod idle;
mod lan9118;
mod params;
#[cfg(feature = "secure")]
mod secure;
mod semihost;
mod stack;
mod tcp_io;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
// Prints the panic message through semihosting and exits QEMU with status 1.
use panic_semihosting as _;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpCidr};
use static_cell::ConstStaticCell;

use crate::app::{Net, Summary, SESSION_RX, SESSION_TX};
use crate::clock::Clock;
use crate::lan9118::Lan9118;
use crate::params::{Params, Role};

/// A TCP socket's receive buffer (its window).
const SOCKET_RX: usize = 4096;
/// A TCP socket's transmit buffer.
const SOCKET_TX: usize = 4096;

// Static memory, as a firmware reserves it: statics initialised at link time (in .bss;
// the socket storage, whose empty value is not all zeros, in .data), each handed out
// once. No copy of them passes through the stack.
static ETHERNET_BUFFERS: ConstStaticCell<lan9118::Buffers> = ConstStaticCell::new(lan9118::Buffers::new());
static SOCKET_RX_BUFFER: ConstStaticCell<[u8; SOCKET_RX]> = ConstStaticCell::new([0; SOCKET_RX]);
static SOCKET_TX_BUFFER: ConstStaticCell<[u8; SOCKET_TX]> = ConstStaticCell::new([0; SOCKET_TX]);
static SESSION_RX_BUFFER: ConstStaticCell<[u8; SESSION_RX]> = ConstStaticCell::new([0; SESSION_RX]);
static SESSION_TX_BUFFER: ConstStaticCell<[u8; SESSION_TX]> = ConstStaticCell::new([0; SESSION_TX]);
static SOCKET_STORAGE: ConstStaticCell<[SocketStorage<'static>; 1]> = ConstStaticCell::new([SocketStorage::EMPTY]);

#[entry]
fn main() -> ! {
    let ok = run();
    hprintln!("stack high-water mark: {} bytes", stack::high_water());
    debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

fn run() -> bool {
    let Some(core) = cortex_m::Peripherals::take() else {
        return false;
    };
    let clock = Clock::start(core.SYST);

    // Room for every parameter, the two 64-digit keys of the secure client included.
    let mut line = [0u8; 512];
    let params = match semihost::cmdline(&mut line).map(Params::parse) {
        Some(Ok(params)) => params,
        Some(Err(bad)) => {
            hprintln!("FAIL: {}", bad);
            return false;
        }
        // No command line at all: the defaults.
        None => Params::default(),
    };

    let (Some(ethernet), Some(socket_rx), Some(socket_tx), Some(session_rx), Some(session_tx), Some(storage)) = (
        ETHERNET_BUFFERS.try_take(),
        SOCKET_RX_BUFFER.try_take(),
        SOCKET_TX_BUFFER.try_take(),
        SESSION_RX_BUFFER.try_take(),
        SESSION_TX_BUFFER.try_take(),
        SOCKET_STORAGE.try_take(),
    ) else {
        return false;
    };

    let mut device = match Lan9118::take(ethernet) {
        Ok(device) => device,
        Err(e) => {
            hprintln!("no Ethernet controller: {:?}", e);
            return false;
        }
    };
    idle::enable();
    let mac = device.mac();
    hprintln!(
        "soquete firmware: LAN9118 (id {:#010x}) at {}, address {}",
        device.id_rev(),
        mac,
        params.ip
    );

    let mut config = IfaceConfig::new(HardwareAddress::Ethernet(mac));
    config.random_seed = u64::from(device.free_run());
    let mut iface = Interface::new(config, &mut device, SmolInstant::ZERO);
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::Ipv4(params.ip));
    });
    if let Some(gateway) = params.gateway {
        let _ = iface.routes_mut().add_default_ipv4_route(gateway);
    }
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(&mut socket_rx[..]),
        tcp::SocketBuffer::new(&mut socket_tx[..]),
    );
    // smoltcp 0.12 sends no zero-window probes: a keep-alive makes the peer repeat a
    // window update that was lost.
    socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(5)));
    let tcp = sockets.add(socket);
    let mut net = Net {
        iface,
        device,
        sockets,
        tcp,
        clock,
    };

    let summary = app::run(&mut net, &params, &mut session_rx[..], &mut session_tx[..]);
    report(&summary, &net);
    summary.passed()
}

fn report(s: &Summary, net: &Net<'_>) {
    let verdict = if s.passed() { "PASS" } else { "FAIL" };
    let rate = (s.messages * 1000).checked_div(s.millis).unwrap_or(0);
    #[cfg(feature = "secure")]
    let client = if s.secure { "secure client" } else { "client" };
    #[cfg(not(feature = "secure"))]
    let client = "client";
    match s.role {
        Role::Client => hprintln!(
            "{} {}: {} of {} messages sent, {} acknowledged, in {}.{:03} s ({} msg/s)",
            verdict,
            client,
            s.messages,
            s.expected,
            s.acked,
            s.millis / 1000,
            s.millis % 1000,
            rate
        ),
        Role::Server => hprintln!(
            "{} server: {} of {} messages received in order ({} in all), in {}.{:03} s ({} msg/s)",
            verdict,
            s.messages,
            s.expected,
            s.acked,
            s.millis / 1000,
            s.millis % 1000,
            rate
        ),
    }
    if let Some(expected) = s.out_of_order {
        hprintln!("  out of order: expected message {} and got another", expected);
    }
    match s.closure {
        Some(closure) => hprintln!("  session {}", closure),
        None => hprintln!("  no session"),
    }
    #[cfg(feature = "secure")]
    if let Some(t) = s.handshake {
        hprintln!(
            "  secure handshake: {}.{:03} ms from the TCP connection to the server authenticated; \
             computing here: INIT {}.{:03} ms, RESP {}.{:03} ms",
            t.handshake / 1000,
            t.handshake % 1000,
            t.init / 1000,
            t.init % 1000,
            t.resp / 1000,
            t.resp % 1000
        );
    }
    if let Some(failure) = s.failure {
        hprintln!("  failure: {:?}", failure);
        #[cfg(feature = "secure")]
        if let app::Failure::Secure(e) = failure {
            hprintln!("  secure layer: {}", e);
        }
    }
    hprintln!("  LAN9118: {:?}", net.device.counters());
}
