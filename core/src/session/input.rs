//! The receive path: what the next bytes in the receive buffer are (magic, a frame,
//! a plain-text line) and how each is checked before the state machine sees it
//! (PROTOCOL.md §2.1, §3.1, §7).

use super::{Event, Mode, Session, State, SERVER};
use crate::time::Instant;
use crate::wire::frame::{self, peek_header};
#[cfg(feature = "detect")]
use crate::wire::plain::{detect_foreign, might_be_foreign};
use crate::wire::plain::{is_binary, split_line};
use crate::wire::{self, Code, Frame, FrameType, Hello, Repr, MAGIC};

/// What `step` found.
pub(super) enum Step {
    /// Something was handled; look again.
    Again,
    /// Nothing more to do until more input.
    Idle,
    /// A message at `rx[at..at + len]`.
    Message { at: usize, len: usize, seq: u64 },
    /// A HELLO (or plain text) awaits the application's verdict.
    Hello { token: u64, ack: u64 },
}

impl<R, T> Session<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// A pending Established or Acked event.
    pub(super) fn take_notice(&mut self) -> Option<Event<'static>> {
        if let Some(resumed) = self.notify.established.take() {
            return Some(Event::Established {
                mode: self.mode(),
                resumed,
            });
        }
        core::mem::take(&mut self.notify.acked).then_some(Event::Acked { seq: self.acked })
    }

    /// Handles what is next in the receive buffer.
    pub(super) fn step(&mut self, now: Instant) -> Step {
        self.rx.want = 0;
        let avail = self.rx.avail();
        if avail.is_empty() {
            return Step::Idle;
        }
        match (self.state, self.mode()) {
            (State::Detect { deadline }, _) if SERVER => self.detect(deadline),
            (State::Pending { .. }, _) => Step::Idle,
            (
                State::HelloSent {
                    deadline,
                    magic_seen: false,
                },
                _,
            ) => {
                if !is_magic_prefix(avail) {
                    return self.abort_silently(Code::BadMagic);
                }
                if avail.len() < MAGIC.len() {
                    return Step::Idle;
                }
                self.rx.consume(MAGIC.len());
                self.set_state(State::HelloSent {
                    deadline,
                    magic_seen: true,
                });
                Step::Again
            }
            (State::Open | State::Closing { .. }, Mode::Plain) => self.step_plain(),
            (State::Closed(_), Mode::Plain) if self.flush_partial || split_line(avail).is_some() => self.step_plain(),
            (State::Closed(_), _) => Step::Idle,
            _ => self.step_frame(now),
        }
    }

    /// Server, first bytes: magic → binary, anything else → plain text (§2.1, §7).
    fn detect(&mut self, deadline: Instant) -> Step {
        let avail = self.rx.avail();
        if is_magic_prefix(avail) {
            if avail.len() < MAGIC.len() {
                return Step::Idle;
            }
            self.rx.consume(MAGIC.len());
            self.set_state(State::AwaitHello { deadline });
            return Step::Again;
        }
        if !cfg!(feature = "plain") || !self.config.allow_plain {
            return self.abort(Code::BadMagic);
        }
        // §7.3: HTTP, TLS and binary data are recognised before the peer counts as a client.
        #[cfg(feature = "detect")]
        {
            let line = split_line(avail).map(|(l, _)| l);
            if let Some(foreign) = detect_foreign(avail, line) {
                info!("peer speaks another protocol ({:?})", foreign);
                self.mode = Mode::Plain;
                return self.abort(Code::WrongProtocol);
            }
            if line.is_none() && !self.eof && might_be_foreign(avail) {
                return Step::Idle;
            }
        }
        self.mode = Mode::Plain;
        self.set_state(State::Pending { deadline, ack: 0 });
        Step::Hello { token: 0, ack: 0 }
    }

    /// Binary mode: handles one complete frame, if there is one.
    fn step_frame(&mut self, now: Instant) -> Step {
        let avail = self.rx.avail();
        let Some((ty, body_len)) = peek_header(avail) else {
            return Step::Idle;
        };
        let Some(frame_type) = FrameType::from_u8(ty) else {
            debug!("unknown frame type {:#x}", ty);
            return self.abort(Code::UnknownFrame);
        };
        // §3.2: a HELLO of another version is refused on its first body byte, whatever
        // its length.
        if SERVER && frame_type == FrameType::Hello && matches!(self.state, State::AwaitHello { .. }) {
            match avail.get(wire::HEADER_LEN) {
                _ if body_len == 0 => return self.abort(Code::Malformed),
                None => return Step::Idle,
                Some(&v) if v != wire::VERSION => {
                    debug!("client speaks version {}", v);
                    return self.refuse_now(Code::BadVersion);
                }
                Some(_) => {}
            }
        }
        // §3.1: reject an oversize length from the header alone, before buffering it.
        let max = frame_type.max_body_len(self.config.max_message);
        let body_len = usize::try_from(body_len).unwrap_or(usize::MAX);
        if body_len > max {
            debug!("{:?} body of {} bytes exceeds {}", frame_type, body_len, max);
            return self.abort(Code::TooLarge);
        }
        let total = wire::HEADER_LEN + body_len;
        let at = self.rx.start();
        let Ok(frame) = Frame::new_checked(avail) else {
            self.rx.want = total;
            return Step::Idle;
        };
        if !SERVER && frame_type == FrameType::Hello {
            // Only a server takes HELLO, but its fields are checked first (§3.1 step 6
            // before 7); this way without decoding the name (see `check_hello`).
            let valid = frame::check_hello(frame.body_ref()).is_ok();
            return self.abort(if valid { Code::UnexpectedFrame } else { Code::Malformed });
        }
        let repr = match Repr::parse_body(frame_type, frame.body_ref()) {
            Ok(repr) => repr,
            Err(e) => {
                debug!("bad {:?} frame: {}", frame_type, e);
                return self.abort(Code::Malformed);
            }
        };
        // Frames other than MSG are consumed now; a MSG stays until the application
        // has seen it (released by the next poll_event).
        let repr: Repr<'static> = match repr {
            Repr::Msg { seq, payload } => {
                let len = payload.len();
                return self.on_message(seq, at + wire::MSG_OVERHEAD, len, total);
            }
            Repr::Hello(h) => {
                // The name is copied out so that the frame's bytes can be released.
                self.name = heapless::String::try_from(h.name).unwrap_or_default();
                Repr::Hello(Hello { name: "", ..h })
            }
            Repr::Welcome(w) => Repr::Welcome(w),
            Repr::Refuse(c) => Repr::Refuse(c),
            Repr::Ack(v) => Repr::Ack(v),
            Repr::Ping(v) => Repr::Ping(v),
            Repr::Pong(v) => Repr::Pong(v),
            Repr::Close(c) => Repr::Close(c),
            Repr::Error(c) => Repr::Error(c),
        };
        self.rx.consume(total);
        self.on_control(repr, now)
    }

    /// Plain-text mode: delivers the next line, or a partial line when flushing.
    fn step_plain(&mut self) -> Step {
        let avail = self.rx.avail();
        let at = self.rx.start();
        // Lengths only, so that the buffer is free to change below.
        let line = split_line(avail).map(|(line, used)| (line.len(), used));
        let (held, unended) = (avail.len(), avail.strip_suffix(b"\r").unwrap_or(avail).len());
        let seq = self.taken.saturating_add(1);
        let max = self.config.max_message as usize;
        if self.window_full() {
            return Step::Idle;
        }
        match line {
            Some((len, _)) if len > max => self.abort(Code::TooLarge),
            Some((len, _)) if self.is_binary_line(len, seq) => self.abort(Code::WrongProtocol),
            Some((len, used)) => {
                self.rx.held = Some((used, seq));
                self.taken = seq;
                Step::Message { at, len, seq }
            }
            // Room for the longest line and its "\r\n" is guaranteed by min_rx_len;
            // max + 1 bytes are fine only if the last is the "\r" of a split "\r\n".
            None if held > max.saturating_add(1) || (held > max && unended == held) => self.abort(Code::TooLarge),
            None if self.flush_partial && self.is_binary_line(unended, seq) => self.abort(Code::WrongProtocol),
            None if self.flush_partial => {
                self.flush_partial = self.eof;
                self.rx.held = Some((held, seq));
                self.taken = seq;
                Step::Message { at, len: unended, seq }
            }
            None => {
                // A smaller rx (full by now, or the check above would have fired) grows
                // at once to the full size: a line announces no length.
                if held >= self.rx.capacity() {
                    self.rx.want = Self::min_rx_len(self.config.max_message);
                }
                Step::Idle
            }
        }
    }
}

impl<R, T> Session<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// True when the line `seq` of a plain-text client, the first `len` bytes received,
    /// is binary data, which ends the session (§7.3). Only a server with `detect`
    /// checks, and only while the session is not closed.
    fn is_binary_line(&self, len: usize, seq: u64) -> bool {
        cfg!(feature = "detect")
            && SERVER
            && !matches!(self.state, State::Closed(_))
            && self.rx.avail().get(..len).is_some_and(|line| is_binary(line, seq == 1))
    }
}

/// True when `bytes` start with the magic, or are a prefix of it (§2.1). Byte by byte:
/// a slice comparison would take `memcmp` for four bytes.
fn is_magic_prefix(bytes: &[u8]) -> bool {
    bytes.iter().zip(MAGIC).all(|(&b, m)| b == m)
}
