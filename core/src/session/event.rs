//! What a session reports: [`Event`], [`Closure`], and the events waiting to be
//! reported.

use core::fmt;

use super::Mode;
use crate::wire::Code;

/// How a session ended; carried by [`Event::Closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Closure {
    /// Both sides completed the close handshake; `code` is the reason of the side that
    /// closed first. Every message either side sent was acknowledged.
    Orderly {
        /// The reason given by the side that started the close.
        code: Code,
        /// True if the peer started the close.
        by_peer: bool,
    },
    /// The transport reached end of stream. Normal for a plain-text peer; for a binary
    /// session it means the peer went away without closing.
    Eof,
    /// This side aborted the session, after sending ERROR (or an `ERR` line).
    Aborted(Code),
    /// The peer aborted the session with ERROR.
    PeerError(Code),
    /// The handshake was refused (by the server, with this reason).
    Refused(Code),
}

impl Closure {
    /// True for an end in which nothing went wrong: an orderly close, or end of stream
    /// from a plain-text peer.
    pub fn is_clean(&self, mode: Mode) -> bool {
        match self {
            Closure::Orderly { .. } => true,
            Closure::Eof => mode == Mode::Plain,
            _ => false,
        }
    }
}

impl fmt::Display for Closure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closure::Orderly { code, by_peer: true } => write!(f, "closed by peer: {}", code.describe()),
            Closure::Orderly { code, by_peer: false } => write!(f, "closed: {}", code.describe()),
            Closure::Eof => f.write_str("connection closed by peer"),
            Closure::Aborted(code) => write!(f, "aborted: {}", code.describe()),
            Closure::PeerError(code) => write!(f, "peer error: {}", code.describe()),
            Closure::Refused(code) => write!(f, "refused: {}", code.describe()),
        }
    }
}

/// Something the application should know about; see [`Session::poll_event`](super::Session::poll_event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// Server only: a peer introduced itself. Answer with
    #[cfg_attr(
        feature = "server",
        doc = "[`Session::accept`](super::Session::accept) or [`Session::refuse`](super::Session::refuse);"
    )]
    #[cfg_attr(not(feature = "server"), doc = "`Session::accept` or `Session::refuse`;")]
    /// until then the session waits (within the handshake timeout).
    Hello {
        /// Binary (a HELLO frame) or plain text (the first bytes were not the magic).
        mode: Mode,
        /// The client's name; empty for plain-text peers and unnamed clients.
        name: &'a str,
        /// The session token the client wants to resume, 0 for a new session.
        token: u64,
        /// Highest sequence number the client has received from this server in that
        /// session.
        ack: u64,
    },
    /// The session is open: messages may be sent and will arrive.
    Established {
        /// How the peer speaks.
        mode: Mode,
        /// True if an earlier session was resumed (§4.6).
        resumed: bool,
    },
    /// A message from the peer, now *taken*: its bytes are valid until the next
    /// `poll_event`. By default it counts as delivered (and is acknowledged) once the
    /// application calls `poll_event` again; with explicit acknowledgement
    /// (`Session::set_explicit_ack`), once
    /// [`Session::confirm`](super::Session::confirm)`(seq)` covers it.
    Message {
        /// Its sequence number (plain text: its line number in this session).
        seq: u64,
        /// Its bytes.
        payload: &'a [u8],
    },
    /// The peer acknowledged every message up to and including `seq`.
    Acked {
        /// Highest acknowledged sequence number.
        seq: u64,
    },
    /// The peer started an orderly close; [`Session::send`](super::Session::send) no longer accepts messages.
    PeerClosing(Code),
    /// The session ended. Always the last event. Send what [`Session::poll_transmit`](super::Session::poll_transmit)
    /// still has, then close the transport.
    Closed(Closure),
}

/// Events waiting to be returned by `poll_event`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Notify {
    pub(super) established: Option<bool>,
    pub(super) acked: bool,
    pub(super) peer_closing: Option<Code>,
    pub(super) closed: bool,
}
