//! Refusing connections the server cannot serve, with an answer whenever the socket
//! can take one (PROTOCOL.md §9.4).
//!
//! - Over the connection cap (`--max-clients` plus some slack), a new connection is
//!   told `ERR server full` and closed.
//! - Out of descriptors (EMFILE), the classic reserve descriptor: one is kept open
//!   for the purpose, closed to accept the waiting connection, which is told
//!   `ERR server full` and closed, then opened again. Without it the connection
//!   would wait in the backlog with no word until something else closes.
//! - Connections that have not completed a handshake have a small bound of their
//!   own, so that sockets that never speak cannot take the places of real clients:
//!   at the bound, the oldest connection that has sent nothing is closed.

use std::fs::File;
use std::io::{self, Write};

use log::debug;
use mio::net::{TcpListener, TcpStream};

/// What a refused connection is told (PROTOCOL.md §7.2: a peer still in Detect gets
/// an `ERR` line; a binary client reads it as a refusal).
pub(super) const FULL: &[u8] = b"ERR server full\n";

/// What a connection closed for its silence is told (PROTOCOL.md §9.4): the handshake
/// timeout's line, as it has not spoken.
pub(super) const SILENT: &[u8] = b"ERR handshake timeout\n";

/// Connections at most in the handshake for `max_clients`: an eighth of it, at least
/// 16 and at most 256.
pub(super) fn handshake_limit(max_clients: usize) -> usize {
    (max_clients / 8).clamp(16, 256)
}

/// Tells `stream` it is refused, if its socket takes the line now, and closes it.
pub(super) fn refuse(mut stream: TcpStream) {
    // A fresh socket's send buffer is empty: the line goes, or the peer is gone.
    if let Err(e) = stream.write(FULL) {
        debug!("cannot tell a refused connection: {e}");
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The reserve descriptor.
#[derive(Debug)]
pub(super) struct Spare(Option<File>);

impl Spare {
    /// Opens the reserve (on `/dev/null`); without one, EMFILE refusals go unanswered.
    pub fn open() -> Spare {
        match File::open("/dev/null") {
            Ok(f) => Spare(Some(f)),
            Err(e) => {
                debug!("no reserve descriptor: {e}");
                Spare(None)
            }
        }
    }

    /// Out of descriptors: frees the reserve, accepts one waiting connection, refuses
    /// it, and takes the reserve back.
    pub fn refuse_one(&mut self, listener: &TcpListener) -> Refused {
        if self.0.take().is_none() {
            return Refused::Unable;
        }
        let refused = match listener.accept() {
            Ok((stream, peer)) => {
                debug!("{peer}: out of descriptors; refused");
                refuse(stream);
                Refused::One
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Refused::NoneWaiting,
            Err(e) => {
                debug!("accept with the reserve descriptor: {e}");
                Refused::Unable
            }
        };
        *self = Spare::open();
        refused
    }
}

/// What [`Spare::refuse_one`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// A connection was answered and closed; the backlog may hold more.
    One,
    /// The backlog is empty.
    NoneWaiting,
    /// No reserve descriptor, or accepting failed even with it.
    Unable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_limit_is_small_and_bounded() {
        assert_eq!(handshake_limit(1), 16);
        assert_eq!(handshake_limit(1024), 128);
        assert_eq!(handshake_limit(100_000), 256);
    }
}
