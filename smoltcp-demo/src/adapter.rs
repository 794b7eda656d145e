//! [`embedded_io`] over a smoltcp TCP socket, for the core's driver
//! ([`soquete_core::io::pump_read`], [`soquete_core::io::pump_write`]).
//!
//! smoltcp never blocks: its sockets are buffers that [`Interface::poll`] fills and
//! drains. The readiness traits carry the embedded-io contract instead, with
//! embassy-net's mapping:
//!
//! * `read_ready()` is `can_recv() || !may_recv()`: data is waiting, or the receive half
//!   is closed — end of stream counts as ready, so the next `read` returns `Ok(0)`;
//! * `write_ready()` is `can_send()`: the send half is open and the buffer has room.
//!
//! A `read` or `write` that would have to wait returns [`Error::WouldBlock`] rather than
//! pretending: `read` returns `Ok(0)` only at end of stream, `write` never returns
//! `Ok(0)` for a non-empty buffer. A poll loop calls them only when ready, which is what
//! the core's pump functions do.
//!
//! Only pump a socket once its connection has been established: before that (`Listen`,
//! `SynSent`, `SynReceived`) `may_recv()` is false, which reads as end of stream.
//!
//! [`Interface::poll`]: smoltcp::iface::Interface::poll

use core::fmt;

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use smoltcp::socket::tcp;

/// Why a read or write on [`TcpIo`] did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The call would have to wait (no data yet, or no room), and a smoltcp socket
    /// cannot wait inside a call. Check `read_ready` / `write_ready` first.
    WouldBlock,
    /// A write on a connection whose sending half is closed (or not yet open).
    NotConnected,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => f.write_str("the socket is not ready (call read/write only when ready)"),
            Error::NotConnected => f.write_str("the connection's sending half is closed"),
        }
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            // embedded-io 0.7 has no WouldBlock kind: its reads and writes block.
            Error::WouldBlock => ErrorKind::Other,
            Error::NotConnected => ErrorKind::NotConnected,
        }
    }
}

/// A smoltcp TCP socket seen as an embedded-io byte stream. Borrow it for one round of
/// pumping, between two polls of the interface.
#[derive(Debug)]
pub struct TcpIo<'s, 'a> {
    socket: &'s mut tcp::Socket<'a>,
}

impl<'s, 'a> TcpIo<'s, 'a> {
    /// Wraps `socket`.
    pub fn new(socket: &'s mut tcp::Socket<'a>) -> Self {
        TcpIo { socket }
    }
}

impl ErrorType for TcpIo<'_, '_> {
    type Error = Error;
}

impl ReadReady for TcpIo<'_, '_> {
    fn read_ready(&mut self) -> Result<bool, Error> {
        Ok(self.socket.can_recv() || !self.socket.may_recv())
    }
}

impl Read for TcpIo<'_, '_> {
    /// Copies received bytes into `buf`. `Ok(0)` means end of stream (or an empty
    /// `buf`); with no data and the connection still open this is
    /// [`Error::WouldBlock`].
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() || !self.socket.may_recv() {
            return Ok(0);
        }
        match self.socket.recv_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            // Unreachable after the may_recv check above; both mean the stream ended.
            Err(tcp::RecvError::Finished | tcp::RecvError::InvalidState) => Ok(0),
        }
    }
}

impl WriteReady for TcpIo<'_, '_> {
    fn write_ready(&mut self) -> Result<bool, Error> {
        Ok(self.socket.can_send())
    }
}

impl Write for TcpIo<'_, '_> {
    /// Queues as much of `buf` as the send buffer takes. [`Error::WouldBlock`] when it
    /// is full, [`Error::NotConnected`] when the sending half is closed.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.socket.send_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) => Err(Error::NotConnected),
        }
    }

    /// smoltcp sends queued bytes on the next poll of the interface; there is nothing
    /// to push here. Succeeds once everything queued has been acknowledged by the peer
    /// (or the connection can no longer send), [`Error::WouldBlock`] before.
    fn flush(&mut self) -> Result<(), Error> {
        if self.socket.send_queue() == 0 || !self.socket.may_send() {
            Ok(())
        } else {
            Err(Error::WouldBlock)
        }
    }
}

#[cfg(test)]
mod tests {
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
    use smoltcp::phy::{Loopback, Medium};
    use smoltcp::time::Instant;
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    use super::*;

    const ADDR: IpAddress = IpAddress::v4(127, 0, 0, 1);

    /// A connected client/server pair over a loopback interface.
    struct Pair<'a> {
        iface: Interface,
        device: Loopback,
        sockets: SocketSet<'a>,
        client: SocketHandle,
        server: SocketHandle,
        now: Instant,
    }

    impl<'a> Pair<'a> {
        fn new(storage: &'a mut [SocketStorage<'a>]) -> Self {
            let mut device = Loopback::new(Medium::Ip);
            let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
            iface.update_ip_addrs(|a| a.push(IpCidr::new(ADDR, 8)).unwrap());
            let socket = || {
                tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 256]),
                    tcp::SocketBuffer::new(vec![0; 256]),
                )
            };
            let mut sockets = SocketSet::new(storage);
            let server = sockets.add(socket());
            let client = sockets.add(socket());
            sockets.get_mut::<tcp::Socket>(server).listen(7).unwrap();
            sockets
                .get_mut::<tcp::Socket>(client)
                .connect(iface.context(), (ADDR, 7), 40000)
                .unwrap();
            let mut pair = Pair {
                iface,
                device,
                sockets,
                client,
                server,
                now: Instant::ZERO,
            };
            pair.settle();
            assert_eq!(pair.socket(client).state(), tcp::State::Established);
            assert_eq!(pair.socket(server).state(), tcp::State::Established);
            pair
        }

        /// Polls until nothing moves (delayed ACKs included).
        fn settle(&mut self) {
            for _ in 0..100 {
                self.iface.poll(self.now, &mut self.device, &mut self.sockets);
                match self.iface.poll_delay(self.now, &self.sockets) {
                    Some(d) => self.now += d.max(smoltcp::time::Duration::from_millis(1)),
                    None => return,
                }
            }
        }

        fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'a> {
            self.sockets.get_mut::<tcp::Socket>(h)
        }
    }

    #[test]
    fn open_and_empty_is_not_read_ready_and_read_would_block() {
        let mut storage: [SocketStorage; 2] = Default::default();
        let mut pair = Pair::new(&mut storage);
        let server = pair.server;
        let mut io = TcpIo::new(pair.socket(server));
        assert!(!io.read_ready().unwrap());
        let mut buf = [0u8; 16];
        assert_eq!(io.read(&mut buf), Err(Error::WouldBlock), "no Ok(0) while open");
        assert!(io.write_ready().unwrap());
    }

    #[test]
    fn data_then_eof_reads_data_then_zero() {
        let mut storage: [SocketStorage; 2] = Default::default();
        let mut pair = Pair::new(&mut storage);
        let (client, server) = (pair.client, pair.server);
        assert_eq!(TcpIo::new(pair.socket(client)).write(b"hello"), Ok(5));
        pair.socket(client).close();
        pair.settle();

        let mut io = TcpIo::new(pair.socket(server));
        let mut buf = [0u8; 16];
        assert!(io.read_ready().unwrap());
        assert_eq!(io.read(&mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");
        // The FIN has arrived: end of stream is ready and reads as Ok(0), repeatedly.
        assert!(io.read_ready().unwrap());
        assert_eq!(io.read(&mut buf), Ok(0));
        assert_eq!(io.read(&mut buf), Ok(0));
        // The server may still send (CLOSE-WAIT).
        assert!(io.write_ready().unwrap());
    }

    #[test]
    fn closed_sending_half_refuses_writes() {
        let mut storage: [SocketStorage; 2] = Default::default();
        let mut pair = Pair::new(&mut storage);
        let client = pair.client;
        pair.socket(client).close();
        let mut io = TcpIo::new(pair.socket(client));
        assert!(!io.write_ready().unwrap());
        assert_eq!(io.write(b"late"), Err(Error::NotConnected));
        // FIN-WAIT: the receiving half is still open and empty.
        assert!(!io.read_ready().unwrap());
    }

    #[test]
    fn full_send_buffer_is_not_write_ready() {
        let mut storage: [SocketStorage; 2] = Default::default();
        let mut pair = Pair::new(&mut storage);
        let client = pair.client;
        let mut io = TcpIo::new(pair.socket(client));
        assert_eq!(io.write(&[b'x'; 300]), Ok(256));
        assert!(!io.write_ready().unwrap());
        assert_eq!(io.write(b"y"), Err(Error::WouldBlock));
        assert_eq!(io.flush(), Err(Error::WouldBlock));
        pair.settle();
        assert_eq!(TcpIo::new(pair.socket(client)).flush(), Ok(()));
    }

    #[test]
    fn closed_socket_reads_as_eof() {
        let mut storage: [SocketStorage; 2] = Default::default();
        let mut pair = Pair::new(&mut storage);
        let server = pair.server;
        pair.socket(server).abort();
        let mut io = TcpIo::new(pair.socket(server));
        assert!(io.read_ready().unwrap());
        assert_eq!(io.read(&mut [0u8; 4]), Ok(0));
        assert!(!io.write_ready().unwrap());
    }
}
