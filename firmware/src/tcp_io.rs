//! A smoltcp TCP socket as an [`embedded_io`] byte stream, for the core's
//! [`pump_read`](soquete_core::io::pump_read) and
//! [`pump_write`](soquete_core::io::pump_write).
//!
//! A smoltcp socket never blocks, so the readiness traits carry the embedded-io
//! contract: `read_ready()` is true when bytes are waiting or the receive half has
//! ended (end of stream counts as ready, and then `read` returns `Ok(0)`);
//! `write_ready()` is true when the send buffer has room. A read or write that would
//! have to wait is [`Error::WouldBlock`], never a false `Ok(0)`; the pumps only call
//! them when ready. Pump a socket only once it is established: before that, its
//! receive half reads as ended.

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use smoltcp::socket::tcp;

/// Why a read or write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not ready: no bytes waiting, or no room. Check readiness first.
    WouldBlock,
    /// The sending half is closed.
    NotConnected,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::WouldBlock => "socket not ready",
            Error::NotConnected => "sending half closed",
        })
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::WouldBlock => ErrorKind::Other,
            Error::NotConnected => ErrorKind::NotConnected,
        }
    }
}

/// A borrowed socket, for one round of pumping between two polls of the interface.
#[derive(Debug)]
pub struct TcpIo<'s, 'a>(pub &'s mut tcp::Socket<'a>);

impl ErrorType for TcpIo<'_, '_> {
    type Error = Error;
}

impl ReadReady for TcpIo<'_, '_> {
    fn read_ready(&mut self) -> Result<bool, Error> {
        Ok(self.0.can_recv() || !self.0.may_recv())
    }
}

impl Read for TcpIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() || !self.0.may_recv() {
            return Ok(0);
        }
        match self.0.recv_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::RecvError::Finished | tcp::RecvError::InvalidState) => Ok(0),
        }
    }
}

impl WriteReady for TcpIo<'_, '_> {
    fn write_ready(&mut self) -> Result<bool, Error> {
        Ok(self.0.can_send())
    }
}

impl Write for TcpIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.0.send_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) => Err(Error::NotConnected),
        }
    }

    /// Done once the peer has acknowledged everything queued (or the sending half
    /// has closed); the interface's next poll sends what is queued.
    fn flush(&mut self) -> Result<(), Error> {
        if self.0.send_queue() == 0 || !self.0.may_send() {
            Ok(())
        } else {
            Err(Error::WouldBlock)
        }
    }
}
