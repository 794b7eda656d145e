//! soquete's no_std core over smoltcp, the TCP/IP stack firmware uses.
//!
//! * [`adapter`] — a smoltcp TCP socket as an [`embedded_io`] stream, honouring its
//!   readiness contract, for the core's own driver ([`soquete_core::io`]).
//! * [`node`] — one interface, its sockets and a session per socket: the poll loop's
//!   body, with buffers of fixed size as a firmware holds them.
//! * [`loopback`] — servers and clients in one process over `smoltcp::phy::Loopback`,
//!   on a virtual clock, optionally through smoltcp's fault injector; checks that every
//!   message arrives exactly once, in order, and is acknowledged.
//! * [`tap`] — one side on a Linux TAP device, talking to `soquete server` or
//!   `soquete client` through the kernel's TCP stack, on real time.
//! * [`link`] — the device stack: capture and fault injection.

use std::fmt;
use std::io;

use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

pub mod adapter;
pub mod cli;
pub mod link;
pub mod loopback;
pub mod node;
pub mod payload;
pub mod tap;

/// What can stop a demo run (as opposed to a run that completes and reports failed
/// deliveries in its summary).
#[derive(Debug)]
pub enum Error {
    /// Writing the server's lines failed.
    Output(io::Error),
    /// Opening the TAP device, waiting on it, or creating the capture file failed.
    Device(io::Error),
    /// The socket adapter refused a read or write the driver made (a bug: the driver
    /// only calls them when ready).
    Transport(soquete_core::io::Error<adapter::Error>),
    /// A session could not be created or accept a peer (a bug in the demo's sizes).
    Session(soquete_core::session::Error),
    /// smoltcp refused to connect to this endpoint.
    Connect(IpEndpoint, tcp::ConnectError),
    /// smoltcp refused to listen on this port.
    Listen(u16),
    /// The settings do not make sense.
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Output(e) => write!(f, "cannot write output: {e}"),
            Error::Device(e) => write!(f, "network device: {e}"),
            Error::Transport(e) => write!(f, "socket adapter: {e}"),
            Error::Session(e) => write!(f, "session: {e}"),
            Error::Connect(ep, e) => write!(f, "cannot connect to {ep}: {e}"),
            Error::Listen(port) => write!(f, "cannot listen on port {port}"),
            Error::Config(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Output(e) | Error::Device(e) => Some(e),
            Error::Transport(e) => Some(e),
            Error::Session(e) => Some(e),
            Error::Connect(_, e) => Some(e),
            Error::Listen(_) | Error::Config(_) => None,
        }
    }
}

impl From<soquete_core::io::Error<adapter::Error>> for Error {
    fn from(e: soquete_core::io::Error<adapter::Error>) -> Self {
        Error::Transport(e)
    }
}
