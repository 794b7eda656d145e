//! Control frames and plain-text `ERR` lines: what is due, and its encoding.
//!
//! Control frames are encoded late, at the next [`Session::poll_transmit`], so that an
//! ACK always carries the newest sequence number, and they go out before queued MSGs
//! (PROTOCOL.md §4.3 "Batching").

use heapless::Vec;

use super::{millis_u32, Closure, Mode, Session, State, SERVER};
use crate::wire::{Code, Hello, Repr, Welcome, MAGIC, MAX_CONTROL_LEN};

/// Capacity of the control buffer: one HELLO with its magic, and then some.
pub(super) const CTRL_CAP: usize = MAX_CONTROL_LEN + 64;

/// Control frames due, waiting to be encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Due {
    pub(super) hello: bool,
    /// WELCOME, with its `resumed` flag.
    pub(super) welcome: Option<bool>,
    pub(super) ping: Option<u64>,
    pub(super) pong: Option<u64>,
    pub(super) close: Option<Code>,
}

/// Encoded control frames (or an `ERR` line) and how far they have been sent.
#[derive(Debug)]
pub(super) struct Control {
    buf: Vec<u8, CTRL_CAP>,
    sent: usize,
    pub(super) due: Due,
    /// Our magic has been queued (it precedes our first frame, §2.1).
    pub(super) magic_sent: bool,
}

impl Control {
    pub(super) const fn new() -> Self {
        Control {
            buf: Vec::new(),
            sent: 0,
            due: Due {
                hello: false,
                welcome: None,
                ping: None,
                pong: None,
                close: None,
            },
            magic_sent: false,
        }
    }

    /// Encoded bytes not yet handed to the transport.
    pub(super) fn unsent(&self) -> &[u8] {
        self.buf.get(self.sent..).unwrap_or(&[])
    }

    pub(super) fn has_unsent(&self) -> bool {
        self.sent < self.buf.len()
    }

    /// Records that the transport took `n` bytes; true once everything encoded has
    /// left.
    pub(super) fn advance(&mut self, n: usize) -> bool {
        self.sent = self.sent.saturating_add(n).min(self.buf.len());
        self.sent == self.buf.len()
    }

    /// Starts the buffer over once everything in it has left.
    pub(super) fn reclaim(&mut self) {
        if !self.has_unsent() {
            self.clear();
        }
    }

    /// Forgets everything encoded, sent or not.
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.sent = 0;
    }

    /// Appends one encoded frame; false (and nothing appended) when it does not fit.
    pub(super) fn push(&mut self, repr: Repr<'_>) -> bool {
        // Encoded on the stack, then copied: `resize`d room would be zeroed first, which
        // takes more code than the copy (~200 bytes, bench/footprint.sh).
        let mut frame = [0u8; MAX_CONTROL_LEN];
        let Ok(n) = repr.emit(&mut frame) else { return false };
        frame.get(..n).is_some_and(|f| self.buf.extend_from_slice(f).is_ok())
    }

    /// Appends the magic and then a handshake frame (§2.1).
    fn push_with_magic(&mut self, repr: Repr<'_>) -> bool {
        let pushed = self.buf.extend_from_slice(&MAGIC).is_ok() && self.push(repr);
        self.magic_sent |= pushed;
        pushed
    }

    /// Queues our magic if it has not gone out yet: it precedes our first frame, also
    /// a REFUSE or an ERROR (§2.1).
    pub(super) fn push_magic_once(&mut self) {
        if !self.magic_sent && self.buf.extend_from_slice(&MAGIC).is_ok() {
            self.magic_sent = true;
        }
    }

    /// Queues the `ERR` line for `code` (§7.2); text that does not fit is cut.
    /// Written without `core::fmt`, which would cost a firmware more than the rest of
    /// this function.
    pub(super) fn push_err_line(&mut self, code: Code, max_message: u32) {
        let line = &mut self.buf;
        let _ = match code {
            Code::TooLarge => push_text(line, b"ERR line too long (max ")
                .and_then(|()| push_decimal(line, max_message))
                .and_then(|()| push_text(line, b" bytes)\n")),
            code => push_text(line, b"ERR ")
                .and_then(|()| push_text(line, code.describe().as_bytes()))
                .and_then(|()| push_text(line, b"\n")),
        };
    }
}

impl<R, T> Session<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// Encodes due control frames, most urgent first, as room allows.
    pub(super) fn encode_ctrl(&mut self) {
        if self.ctrl.due.hello {
            let hello = Repr::Hello(Hello {
                max_message: self.config.max_message,
                idle_timeout_ms: millis_u32(self.config.idle_timeout),
                token: self.token,
                ack: self.delivered,
                name: &self.name,
            });
            if self.ctrl.push_with_magic(hello) {
                self.ctrl.due.hello = false;
            }
        }
        if let (true, Some(resumed)) = (SERVER, self.ctrl.due.welcome) {
            let welcome = Repr::Welcome(Welcome {
                resumed,
                max_message: self.config.max_message,
                idle_timeout_ms: millis_u32(self.config.idle_timeout),
                token: self.token,
                ack: self.delivered,
            });
            if self.ctrl.push_with_magic(welcome) {
                self.ctrl.due.welcome = None;
            }
        }
        if self.mode() == Mode::Plain {
            return;
        }
        let open = matches!(self.state, State::Open | State::Closing { .. });
        if !open && !matches!(self.state, State::Closed(Closure::Orderly { .. })) {
            return;
        }
        // After an orderly close only the final ACK and CLOSE can still be due; the
        // state never changes here, so `Event::Closed` comes from `poll_event`.
        self.encode_ack();
        if let Some(code) = self.ctrl.due.close {
            if self.ctrl.push(Repr::Close(code)) {
                self.ctrl.due.close = None;
            }
        }
        if !open {
            return;
        }
        if let Some(nonce) = self.ctrl.due.pong {
            if self.ctrl.push(Repr::Pong(nonce)) {
                self.ctrl.due.pong = None;
            }
        }
        if let Some(nonce) = self.ctrl.due.ping {
            if self.ctrl.push(Repr::Ping(nonce)) {
                self.ctrl.due.ping = None;
            }
        }
    }

    /// Encodes an ACK of everything delivered, if that is more than the last ACK
    /// (§4.3 "Batching").
    pub(super) fn encode_ack(&mut self) {
        if self.delivered > self.ack_sent && self.ctrl.push(Repr::Ack(self.delivered)) {
            self.ack_sent = self.delivered;
        }
    }
}

/// Appends text byte by byte; `Err` once the buffer is full (what fits stays, so that
/// a long line is cut rather than lost).
pub(super) fn push_text(ctrl: &mut Vec<u8, CTRL_CAP>, text: &[u8]) -> Result<(), ()> {
    text.iter().try_for_each(|&b| ctrl.push(b).map_err(drop))
}

/// Appends `v` in decimal, as [`push_text`].
pub(super) fn push_decimal(ctrl: &mut Vec<u8, CTRL_CAP>, mut v: u32) -> Result<(), ()> {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
        start -= 1;
        if v == 0 {
            break;
        }
    }
    push_text(ctrl, digits.get(start..).unwrap_or(&[]))
}
