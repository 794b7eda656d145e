//! The driver: moves bytes between a [`Session`] and an [`embedded_io`] transport.
//!
//! Two styles, same session:
//! * non-blocking pumping, for poll loops (smoltcp, mio): [`pump_read`] reads only while
//!   [`ReadReady::read_ready`] promises a read will not block, [`pump_write`] writes only
//!   while [`WriteReady::write_ready`] does;
//! * blocking, for a thread that owns its socket: [`read`] blocks in one `read`,
//!   [`write_all`] writes everything the session has.
//!
//! Between input and output, the caller polls the session's events (which is also what
//! lets acknowledgements go out).

use core::fmt;

use embedded_io::{Read, ReadReady, Write, WriteReady};

use crate::session::Session;
use crate::time::Instant;

/// A transport failure, or a transport that stopped taking bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<E> {
    /// The transport's own error.
    Transport(E),
    /// `write` returned `Ok(0)`: the transport can take no more bytes.
    WriteZero,
}

impl<E> From<E> for Error<E> {
    fn from(e: E) -> Self {
        Error::Transport(e)
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "transport error: {e:?}"),
            Error::WriteZero => f.write_str("transport accepted no bytes"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Reads from `transport` into the session while a read will not block and the
/// session has room. End of stream is passed on with [`Session::handle_eof`].
///
/// Returns the number of bytes read. When the session's receive buffer is full this
/// returns early: poll the session's events (and grow the buffer if
/// [`Session::rx_wanted`] asks), then pump again. Bytes may still be waiting then: with
/// edge-triggered readiness, pump again without waiting for a new event.
///
/// # Errors
/// The transport's read or readiness error.
pub fn pump_read<T, R, W>(
    session: &mut Session<R, W>,
    transport: &mut T,
    now: Instant,
) -> Result<usize, Error<T::Error>>
where
    T: Read + ReadReady,
    R: AsRef<[u8]> + AsMut<[u8]>,
    W: AsRef<[u8]> + AsMut<[u8]>,
{
    let mut total = 0;
    while !session.is_closed() && transport.read_ready()? {
        let buf = session.input_buffer();
        if buf.is_empty() {
            break;
        }
        let n = transport.read(buf)?;
        if n == 0 {
            session.handle_eof(now);
            break;
        }
        session.advance_input(now, n);
        total += n;
    }
    Ok(total)
}

/// Writes the session's pending bytes to `transport` while a write will not block.
/// Returns the number of bytes written.
///
/// # Errors
/// The transport's write or readiness error, or [`Error::WriteZero`].
pub fn pump_write<T, R, W>(session: &mut Session<R, W>, transport: &mut T) -> Result<usize, Error<T::Error>>
where
    T: Write + WriteReady,
    R: AsRef<[u8]> + AsMut<[u8]>,
    W: AsRef<[u8]> + AsMut<[u8]>,
{
    let mut total = 0;
    loop {
        let chunk = session.poll_transmit();
        if chunk.is_empty() || !transport.write_ready()? {
            break;
        }
        let n = transport.write(chunk)?;
        if n == 0 {
            return Err(Error::WriteZero);
        }
        session.advance_transmit(n);
        total += n;
    }
    Ok(total)
}

/// Blocks in one `read` of `transport` into the session. Returns the number of bytes
/// read; 0 means end of stream (already passed to the session) or a full receive
/// buffer (poll events first, and grow it if [`Session::rx_wanted`] asks).
///
/// # Errors
/// The transport's read error.
pub fn read<T, R, W>(session: &mut Session<R, W>, transport: &mut T, now: Instant) -> Result<usize, Error<T::Error>>
where
    T: Read,
    R: AsRef<[u8]> + AsMut<[u8]>,
    W: AsRef<[u8]> + AsMut<[u8]>,
{
    let buf = session.input_buffer();
    if buf.is_empty() {
        return Ok(0);
    }
    let n = transport.read(buf)?;
    if n == 0 {
        session.handle_eof(now);
    } else {
        session.advance_input(now, n);
    }
    Ok(n)
}

/// Writes everything the session has to transmit (blocking), then flushes.
/// Returns the number of bytes written.
///
/// # Errors
/// The transport's write or flush error, or [`Error::WriteZero`].
pub fn write_all<T, R, W>(session: &mut Session<R, W>, transport: &mut T) -> Result<usize, Error<T::Error>>
where
    T: Write,
    R: AsRef<[u8]> + AsMut<[u8]>,
    W: AsRef<[u8]> + AsMut<[u8]>,
{
    let mut total = 0;
    loop {
        let chunk = session.poll_transmit();
        if chunk.is_empty() {
            break;
        }
        let n = transport.write(chunk)?;
        if n == 0 {
            return Err(Error::WriteZero);
        }
        session.advance_transmit(n);
        total += n;
    }
    transport.flush()?;
    Ok(total)
}
