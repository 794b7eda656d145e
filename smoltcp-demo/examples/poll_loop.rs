//! The README's blocking poll loop ("Use it in your firmware"), compiled against the
//! core and smoltcp so that it stays true: the text between the `README` markers is
//! the README's, word for word (`tests/tests/readme.rs` compares them). It uses
//! `firmware/src/tcp_io.rs`, the adapter the README says to copy.
//!
//! Compiled, not run: a firmware gives it its own interface, device, clock and static
//! buffers (`firmware/src/main.rs`).

#![allow(dead_code, reason = "compiled to check the README's text, not run")]
#![allow(unused_variables, reason = "the README's match arms name what each event carries")]

#[path = "../../firmware/src/tcp_io.rs"]
mod tcp_io;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use tcp_io::TcpIo;

/// A millisecond clock, as a firmware has one (SysTick, a timer peripheral).
trait Clock {
    fn now(&self) -> u64;
}

/// Why the loop stopped early: the session refused its settings, or the socket failed.
#[derive(Debug)]
enum Error {
    Session(soquete_core::session::Error),
    Io(soquete_core::io::Error<tcp_io::Error>),
}

impl From<soquete_core::session::Error> for Error {
    fn from(e: soquete_core::session::Error) -> Self {
        Error::Session(e)
    }
}

impl From<soquete_core::io::Error<tcp_io::Error>> for Error {
    fn from(e: soquete_core::io::Error<tcp_io::Error>) -> Self {
        Error::Io(e)
    }
}

fn client_loop(
    iface: &mut Interface,
    device: &mut impl Device,
    sockets: &mut SocketSet<'_>,
    handle: SocketHandle,
    clock: &impl Clock,
    rx: &'static mut [u8],
    tx: &'static mut [u8],
) -> Result<(), Error> {
    // README: poll-loop begin
    use soquete_core::io::{pump_read, pump_write};
    use soquete_core::{Code, Config, Event, Instant, Session};

    // `handle`: a TCP socket already established (`connect`, then `may_send()`).
    // Buffers: any `AsMut<[u8]>`, here `&'static mut [u8]` from statics. rx holds one
    // whole frame of the largest message: `Session::min_rx_len(config.max_message)`
    // bytes, 1,037 for the default 1 KiB. tx holds the messages not yet acknowledged.
    // `?` needs an error type that both `session::Error` and `io::Error<_>` convert into.
    let mut session = Session::client(Config::DEFAULT, "sensor-7", rx, tx, Instant::from_millis(clock.now()))?;
    let mut sent = 0;

    loop {
        let ms = clock.now();
        iface.poll(smoltcp::time::Instant::from_millis(ms as i64), device, sockets);
        let socket = sockets.get_mut::<tcp::Socket>(handle);
        let now = Instant::from_millis(ms);
        if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now);
        }
        loop {
            let n = pump_read(&mut session, &mut TcpIo(socket), now)?;
            // Taking events also lets acknowledgements go out.
            while let Some(event) = session.poll_event(now) {
                match event {
                    Event::Message { payload, .. } => { /* a message from the peer */ }
                    Event::Acked { seq } => { /* messages up to `seq` delivered */ }
                    Event::Closed(closure) => { /* ended: `closure` says how */ }
                    _ => {}
                }
            }
            if n == 0 {
                break;
            }
        }
        if session.is_open() && sent < 100 {
            // Err(session::Error::Full): tx holds only unacknowledged messages; retry
            // after an `Event::Acked`.
            if session.send(b"temperature=21.5").is_ok() {
                sent += 1;
            }
        } else if session.is_open() {
            // All queued: the CLOSE goes out once every message is acknowledged.
            session.close(now, Code::Normal);
        }
        pump_write(&mut session, &mut TcpIo(socket))?;
        if session.is_finished() {
            socket.close();
            break;
        }
        // Nothing to do until a packet arrives or the earlier of `iface.poll_delay(..)`
        // and `session.poll_timeout()`: sleep till then (`firmware/src/idle.rs` waits
        // with `wfi` for the Ethernet interrupt or the tick).
    }
    // README: poll-loop end
    Ok(())
}

fn main() {}
