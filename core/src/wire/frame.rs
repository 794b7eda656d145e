//! Frame layouts (PROTOCOL.md §3): the checked [`Frame`] view and the [`Repr`] values.

use super::{Code, Error, HEADER_LEN, MAX_NAME_LEN, VERSION};

type Result<T> = core::result::Result<T, Error>;

/// Header field offsets (PROTOCOL.md §3.1).
mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const LENGTH: Range<usize> = 1..5;
}

/// HELLO body field offsets (PROTOCOL.md §3.2).
mod hello {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const FLAGS: usize = 1;
    pub const MAX_MESSAGE: Range<usize> = 2..6;
    pub const IDLE_TIMEOUT: Range<usize> = 6..10;
    pub const TOKEN: Range<usize> = 10..18;
    pub const ACK: Range<usize> = 18..26;
    pub const NAME_LEN: usize = 26;
    pub const NAME: usize = 27;
}

/// WELCOME body field offsets (PROTOCOL.md §3.3); the first 26 bytes mirror HELLO.
mod welcome {
    pub const LEN: usize = super::hello::NAME_LEN;
    /// Bit 0 of FLAGS: the server resumed the session named by the client's token.
    pub const FLAG_RESUMED: u8 = 0x01;
}

/// MSG body field offsets (PROTOCOL.md §3.5).
mod msg {
    use core::ops::Range;
    pub const SEQ: Range<usize> = 0..8;
}

/// HELLO body length without the name.
pub(crate) const HELLO_FIXED_LEN: usize = hello::NAME;
/// Body length of frames that carry one `u64` (MSG's sequence number, ACK, PING, PONG).
const U64_LEN: usize = 8;
/// Body length of frames that carry one reason code (REFUSE, CLOSE, ERROR).
const CODE_LEN: usize = 1;

/// The frame types of PROTOCOL.md §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum FrameType {
    /// Client's opening frame.
    Hello = 0x01,
    /// Server accepts the session.
    Welcome = 0x02,
    /// Server refuses the session.
    Refuse = 0x03,
    /// One message with its sequence number.
    Msg = 0x10,
    /// Cumulative acknowledgement.
    Ack = 0x11,
    /// Keepalive request.
    Ping = 0x20,
    /// Keepalive answer.
    Pong = 0x21,
    /// Orderly close.
    Close = 0x30,
    /// Abortive close.
    Error = 0x31,
}

impl FrameType {
    /// The frame type a wire byte names, if any.
    pub const fn from_u8(v: u8) -> Option<FrameType> {
        Some(match v {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Welcome,
            0x03 => FrameType::Refuse,
            0x10 => FrameType::Msg,
            0x11 => FrameType::Ack,
            0x20 => FrameType::Ping,
            0x21 => FrameType::Pong,
            0x30 => FrameType::Close,
            0x31 => FrameType::Error,
            _ => return None,
        })
    }

    /// The largest body this type may have; for MSG, `8 + max_message`.
    ///
    /// A receiver checks this as soon as the header is in, so that a huge length field
    /// is rejected before any of its body is buffered (PROTOCOL.md §3.1).
    pub const fn max_body_len(self, max_message: u32) -> usize {
        match self {
            FrameType::Hello => HELLO_FIXED_LEN + MAX_NAME_LEN,
            FrameType::Welcome => welcome::LEN,
            FrameType::Refuse | FrameType::Close | FrameType::Error => CODE_LEN,
            FrameType::Msg => U64_LEN + max_message as usize,
            FrameType::Ack | FrameType::Ping | FrameType::Pong => U64_LEN,
        }
    }
}

/// A read-only view of one frame at the start of a byte buffer.
///
/// Built with [`Frame::new_checked`], the getters never read past the buffer. The
/// buffer may hold more bytes after the frame (the next frames of a stream).
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; getters then return zeroes or empty slices
    /// for fields the buffer is too short to hold.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer that holds at least one whole frame.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the header or the body it announces is not all there.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Frame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the header and the whole body.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it does not.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.total_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The raw type byte.
    pub fn frame_type(&self) -> u8 {
        self.buffer.as_ref().get(field::TYPE).copied().unwrap_or(0)
    }

    /// The body length announced by the header.
    pub fn body_len(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::LENGTH.start).unwrap_or(0)
    }

    /// Header plus body length; saturates rather than overflowing on 16-bit targets.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.body_len())
            .unwrap_or(usize::MAX)
            .saturating_add(HEADER_LEN)
    }

    /// The body bytes (empty if the buffer is shorter than the frame).
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..self.total_len()).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// A MSG frame's sequence number (0 if the buffer is too short to hold it).
    pub fn msg_seq(&self) -> u64 {
        read_u64(self.body(), msg::SEQ.start).unwrap_or(0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Rewrites a MSG frame's sequence number in place (nothing if the buffer is too
    /// short to hold it).
    pub fn set_msg_seq(&mut self, seq: u64) {
        let at = HEADER_LEN + msg::SEQ.start;
        if let Some(field) = self.buffer.as_mut().get_mut(at..at + U64_LEN) {
            field.copy_from_slice(&seq.to_be_bytes());
        }
    }
}

impl<'a> Frame<&'a [u8]> {
    /// The body, borrowed for as long as the underlying buffer.
    pub fn body_ref(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer;
        buffer.get(HEADER_LEN..self.total_len()).unwrap_or(&[])
    }
}

/// The type byte and body length at the start of `buf`, once all five header bytes are
/// there.
pub(crate) fn peek_header(buf: &[u8]) -> Option<(u8, u32)> {
    let ty = *buf.first()?;
    Some((ty, read_u32(buf, field::LENGTH.start).ok()?))
}

/// The fields of a HELLO frame (PROTOCOL.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hello<'a> {
    /// Largest payload the client accepts in one message.
    pub max_message: u32,
    /// The client's idle timeout in milliseconds (0 = none).
    pub idle_timeout_ms: u32,
    /// Session token to resume, or 0 for a new session.
    pub token: u64,
    /// Highest sequence number the client received from the server in the resumed
    /// session (0 for a new session).
    pub ack: u64,
    /// The client's name: UTF-8, at most [`MAX_NAME_LEN`] bytes, possibly empty.
    pub name: &'a str,
}

/// The fields of a WELCOME frame (PROTOCOL.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Welcome {
    /// True if the server resumed the session named by the client's token.
    pub resumed: bool,
    /// Largest payload the server accepts in one message.
    pub max_message: u32,
    /// The server's idle timeout in milliseconds (0 = none).
    pub idle_timeout_ms: u32,
    /// The session's token, for a later resume.
    pub token: u64,
    /// Highest sequence number the server received from the client in this session;
    /// the client resends everything after it.
    pub ack: u64,
}

/// A validated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Repr<'a> {
    /// Client → server, first frame after the magic.
    Hello(Hello<'a>),
    /// Server → client, the session is open.
    Welcome(Welcome),
    /// Server → client, the session is refused.
    Refuse(Code),
    /// One message.
    Msg {
        /// Sequence number: 1 for a session's first message, then +1 each.
        seq: u64,
        /// The message bytes; may be empty.
        payload: &'a [u8],
    },
    /// Every message up to and including this sequence number was delivered.
    Ack(u64),
    /// Keepalive; the receiver answers PONG with the same nonce.
    Ping(u64),
    /// Answer to a PING.
    Pong(u64),
    /// Orderly close with a reason.
    Close(Code),
    /// Abortive close with a reason; the sender closes the connection after it.
    Error(Code),
}

impl<'a> Repr<'a> {
    /// Parses a checked frame.
    ///
    /// # Errors
    /// [`Error::UnknownType`] for a type byte outside §3, [`Error::Malformed`] for a
    /// body of the wrong length, a HELLO with an unsupported version, a name that is
    /// too long or not UTF-8.
    pub fn parse(frame: &Frame<&'a [u8]>) -> Result<Repr<'a>> {
        let ty = FrameType::from_u8(frame.frame_type()).ok_or(Error::UnknownType(frame.frame_type()))?;
        Repr::parse_body(ty, frame.body_ref())
    }

    /// [`Repr::parse`] for a frame whose type the caller has already read.
    #[inline]
    pub(crate) fn parse_body(ty: FrameType, body: &'a [u8]) -> Result<Repr<'a>> {
        match ty {
            FrameType::Hello => parse_hello(body).map(Repr::Hello),
            FrameType::Welcome => {
                if body.len() != welcome::LEN || body.get(hello::VERSION) != Some(&VERSION) {
                    return Err(Error::Malformed);
                }
                let flags = body.get(hello::FLAGS).copied().unwrap_or(0);
                Ok(Repr::Welcome(Welcome {
                    resumed: flags & welcome::FLAG_RESUMED != 0,
                    max_message: read_u32(body, hello::MAX_MESSAGE.start)?,
                    idle_timeout_ms: read_u32(body, hello::IDLE_TIMEOUT.start)?,
                    token: read_u64(body, hello::TOKEN.start)?,
                    ack: read_u64(body, hello::ACK.start)?,
                }))
            }
            FrameType::Msg => {
                let (seq, payload) = body.split_first_chunk::<U64_LEN>().ok_or(Error::Malformed)?;
                Ok(Repr::Msg {
                    seq: u64::from_be_bytes(*seq),
                    payload,
                })
            }
            FrameType::Ack => exact_u64(body).map(Repr::Ack),
            FrameType::Ping => exact_u64(body).map(Repr::Ping),
            FrameType::Pong => exact_u64(body).map(Repr::Pong),
            FrameType::Refuse => exact_code(body).map(Repr::Refuse),
            FrameType::Close => exact_code(body).map(Repr::Close),
            FrameType::Error => exact_code(body).map(Repr::Error),
        }
    }

    /// The frame type of this representation.
    pub const fn frame_type(&self) -> FrameType {
        match self {
            Repr::Hello(_) => FrameType::Hello,
            Repr::Welcome(_) => FrameType::Welcome,
            Repr::Refuse(_) => FrameType::Refuse,
            Repr::Msg { .. } => FrameType::Msg,
            Repr::Ack(_) => FrameType::Ack,
            Repr::Ping(_) => FrameType::Ping,
            Repr::Pong(_) => FrameType::Pong,
            Repr::Close(_) => FrameType::Close,
            Repr::Error(_) => FrameType::Error,
        }
    }

    /// Body length of the emitted frame.
    pub fn body_len(&self) -> usize {
        match self {
            Repr::Hello(h) => HELLO_FIXED_LEN + h.name.len(),
            Repr::Welcome(_) => welcome::LEN,
            Repr::Msg { payload, .. } => U64_LEN + payload.len(),
            Repr::Ack(_) | Repr::Ping(_) | Repr::Pong(_) => U64_LEN,
            Repr::Refuse(_) | Repr::Close(_) | Repr::Error(_) => CODE_LEN,
        }
    }

    /// Bytes [`Repr::emit`] writes: header plus body.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Writes the frame at the start of `buf` and returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`Repr::buffer_len`]
    /// (nothing useful is written then); [`Error::Malformed`] for a HELLO name longer
    /// than [`MAX_NAME_LEN`] or a body longer than `u32::MAX`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let body_len = u32::try_from(self.body_len()).map_err(|_| Error::Malformed)?;
        let mut w = Writer { buf, pos: 0 };
        w.put(&[self.frame_type() as u8])?;
        w.put(&body_len.to_be_bytes())?;
        match *self {
            Repr::Hello(h) => {
                let name_len = u8::try_from(h.name.len())
                    .ok()
                    .filter(|&n| usize::from(n) <= MAX_NAME_LEN)
                    .ok_or(Error::Malformed)?;
                w.put(&[VERSION, 0])?;
                w.put(&h.max_message.to_be_bytes())?;
                w.put(&h.idle_timeout_ms.to_be_bytes())?;
                w.put(&h.token.to_be_bytes())?;
                w.put(&h.ack.to_be_bytes())?;
                w.put(&[name_len])?;
                w.put(h.name.as_bytes())?;
            }
            Repr::Welcome(wl) => {
                let flags = if wl.resumed { welcome::FLAG_RESUMED } else { 0 };
                w.put(&[VERSION, flags])?;
                w.put(&wl.max_message.to_be_bytes())?;
                w.put(&wl.idle_timeout_ms.to_be_bytes())?;
                w.put(&wl.token.to_be_bytes())?;
                w.put(&wl.ack.to_be_bytes())?;
            }
            Repr::Msg { seq, payload } => {
                w.put(&seq.to_be_bytes())?;
                w.put(payload)?;
            }
            Repr::Ack(v) | Repr::Ping(v) | Repr::Pong(v) => w.put(&v.to_be_bytes())?,
            Repr::Refuse(c) | Repr::Close(c) | Repr::Error(c) => w.put(&[c.to_u8()])?,
        }
        Ok(w.pos)
    }
}

/// The version byte of a HELLO body, read before anything else so that a server can
/// refuse a newer client with BAD_VERSION whatever the rest of its layout
/// (PROTOCOL.md §3.2).
pub(crate) fn hello_version(body: &[u8]) -> Option<u8> {
    body.get(hello::VERSION).copied()
}

fn parse_hello(body: &[u8]) -> Result<Hello<'_>> {
    let name = hello_name(body)?;
    Ok(Hello {
        max_message: read_u32(body, hello::MAX_MESSAGE.start)?,
        idle_timeout_ms: read_u32(body, hello::IDLE_TIMEOUT.start)?,
        token: read_u64(body, hello::TOKEN.start)?,
        ack: read_u64(body, hello::ACK.start)?,
        name: core::str::from_utf8(name).map_err(|_| Error::Malformed)?,
    })
}

/// The name bytes of a HELLO body whose version, name length and body length are valid.
fn hello_name(body: &[u8]) -> Result<&[u8]> {
    if hello_version(body) != Some(VERSION) {
        return Err(Error::Malformed);
    }
    let name_len = usize::from(*body.get(hello::NAME_LEN).ok_or(Error::Malformed)?);
    if name_len > MAX_NAME_LEN || body.len() != HELLO_FIXED_LEN + name_len {
        return Err(Error::Malformed);
    }
    body.get(hello::NAME..).ok_or(Error::Malformed)
}

/// Checks a HELLO body exactly as [`Repr::parse`] does, but without building the
/// name's `&str`: `core::str::from_utf8` and its tables cost a firmware most of a
/// kilobyte, and a client only needs to know whether the frame is valid (§3.1 step 6).
pub(crate) fn check_hello(body: &[u8]) -> Result<()> {
    if is_utf8(hello_name(body)?) {
        Ok(())
    } else {
        Err(Error::Malformed)
    }
}

/// Whether `bytes` are UTF-8 as `core::str::from_utf8` defines it: shortest forms only,
/// no surrogates, nothing above U+10FFFF.
fn is_utf8(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some((&lead, tail)) = rest.split_first() {
        let (extra, min, mut cp) = match lead {
            0x00..=0x7f => (0, 0, u32::from(lead)),
            0xc0..=0xdf => (1, 0x80, u32::from(lead & 0x1f)),
            0xe0..=0xef => (2, 0x800, u32::from(lead & 0x0f)),
            0xf0..=0xf7 => (3, 0x1_0000, u32::from(lead & 0x07)),
            _ => return false,
        };
        let Some((cont, after)) = tail.split_at_checked(extra) else {
            return false;
        };
        for &b in cont {
            if b & 0xc0 != 0x80 {
                return false;
            }
            cp = cp << 6 | u32::from(b & 0x3f);
        }
        if cp < min || cp > 0x10_ffff || (0xd800..=0xdfff).contains(&cp) {
            return false;
        }
        rest = after;
    }
    true
}

fn exact_u64(body: &[u8]) -> Result<u64> {
    let bytes: [u8; U64_LEN] = body.try_into().map_err(|_| Error::Malformed)?;
    Ok(u64::from_be_bytes(bytes))
}

fn exact_code(body: &[u8]) -> Result<Code> {
    match body {
        [c] => Ok(Code::from_u8(*c)),
        _ => Err(Error::Malformed),
    }
}

fn read_u32(buf: &[u8], at: usize) -> Result<u32> {
    let bytes = buf
        .get(at..)
        .and_then(|b| b.first_chunk::<4>())
        .ok_or(Error::Truncated)?;
    Ok(u32::from_be_bytes(*bytes))
}

fn read_u64(buf: &[u8], at: usize) -> Result<u64> {
    let bytes = buf
        .get(at..)
        .and_then(|b| b.first_chunk::<8>())
        .ok_or(Error::Truncated)?;
    Ok(u64::from_be_bytes(*bytes))
}

/// The first [`MSG_OVERHEAD`](super::MSG_OVERHEAD) bytes of a MSG frame that carries
/// `payload_len` bytes: its header and sequence number, for a sender that places the
/// payload itself (the transmit queue, whose free room may wrap around its end).
///
/// # Errors
/// [`Error::Malformed`] for a body longer than `u32::MAX`.
pub(crate) fn msg_head(seq: u64, payload_len: usize) -> Result<[u8; super::MSG_OVERHEAD]> {
    let body_len = payload_len
        .checked_add(U64_LEN)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(Error::Malformed)?;
    let mut head = [0u8; super::MSG_OVERHEAD];
    let mut w = Writer { buf: &mut head, pos: 0 };
    w.put(&[FrameType::Msg as u8])?;
    w.put(&body_len.to_be_bytes())?;
    w.put(&seq.to_be_bytes())?;
    Ok(head)
}

/// Appends to a byte slice without indexing past its end.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.pos.checked_add(bytes.len()).ok_or(Error::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md §6.2: HELLO from client "ana", new session, max 65536, idle 30 s.
    pub(crate) const HELLO_ANA: [u8; 35] = [
        0x01, 0x00, 0x00, 0x00, 0x1e, // HELLO, body 30
        0x01, 0x00, // version 1, flags 0
        0x00, 0x01, 0x00, 0x00, // max_message 65536
        0x00, 0x00, 0x75, 0x30, // idle 30000 ms
        0, 0, 0, 0, 0, 0, 0, 0, // token 0
        0, 0, 0, 0, 0, 0, 0, 0, // ack 0
        0x03, b'a', b'n', b'a', // name "ana"
    ];

    /// PROTOCOL.md §6.3: WELCOME, new session, token 0x0102030405060708.
    const WELCOME_NEW: [u8; 31] = [
        0x02, 0x00, 0x00, 0x00, 0x1a, // WELCOME, body 26
        0x01, 0x00, // version 1, not resumed
        0x00, 0x01, 0x00, 0x00, // max_message 65536
        0x00, 0x00, 0x75, 0x30, // idle 30000 ms
        1, 2, 3, 4, 5, 6, 7, 8, // token
        0, 0, 0, 0, 0, 0, 0, 0, // ack 0
    ];

    /// PROTOCOL.md §6.4: MSG seq 1 "hi".
    const MSG_HI: [u8; 15] = [0x10, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 1, b'h', b'i'];

    /// PROTOCOL.md §6.4: ACK 1.
    const ACK_1: [u8; 13] = [0x11, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1];

    /// PROTOCOL.md §6.5: CLOSE normal, ERROR too large.
    const CLOSE_NORMAL: [u8; 6] = [0x30, 0, 0, 0, 1, 0x00];
    const ERROR_TOO_LARGE: [u8; 6] = [0x31, 0, 0, 0, 1, 0x22];

    fn round_trip(bytes: &[u8], expected: Repr<'_>) {
        let frame = Frame::new_checked(bytes).unwrap();
        assert_eq!(frame.total_len(), bytes.len());
        assert_eq!(Repr::parse(&frame).unwrap(), expected);
        let mut out = [0u8; 64];
        let n = expected.emit(&mut out).unwrap();
        assert_eq!(n, expected.buffer_len());
        assert_eq!(&out[..n], bytes);
    }

    #[test]
    fn spec_hello_example() {
        round_trip(
            &HELLO_ANA,
            Repr::Hello(Hello {
                max_message: 65536,
                idle_timeout_ms: 30_000,
                token: 0,
                ack: 0,
                name: "ana",
            }),
        );
    }

    #[test]
    fn spec_welcome_example() {
        round_trip(
            &WELCOME_NEW,
            Repr::Welcome(Welcome {
                resumed: false,
                max_message: 65536,
                idle_timeout_ms: 30_000,
                token: 0x0102_0304_0506_0708,
                ack: 0,
            }),
        );
    }

    #[test]
    fn spec_msg_ack_close_error_examples() {
        round_trip(&MSG_HI, Repr::Msg { seq: 1, payload: b"hi" });
        round_trip(&ACK_1, Repr::Ack(1));
        round_trip(&CLOSE_NORMAL, Repr::Close(Code::Normal));
        round_trip(&ERROR_TOO_LARGE, Repr::Error(Code::TooLarge));
    }

    #[test]
    fn msg_seq_is_read_and_rewritten_in_place() {
        let mut bytes = MSG_HI;
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(frame.msg_seq(), 1);
        frame.set_msg_seq(0x0102_0304_0506_0708);
        assert_eq!(bytes[5..13], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(bytes[13..], *b"hi", "the payload is untouched");
        let mut short = [0x10, 0, 0, 0, 8, 0, 0];
        Frame::new_unchecked(&mut short[..]).set_msg_seq(9);
        assert_eq!(short, [0x10, 0, 0, 0, 8, 0, 0], "too short: nothing written");
    }

    #[test]
    fn truncated_frames_are_reported_not_read() {
        for cut in 0..MSG_HI.len() {
            assert_eq!(Frame::new_checked(&MSG_HI[..cut]).unwrap_err(), Error::Truncated);
        }
    }

    #[test]
    fn wrong_body_lengths_are_malformed() {
        let ack_short = [0x11, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 1];
        let f = Frame::new_checked(&ack_short[..]).unwrap();
        assert_eq!(Repr::parse(&f), Err(Error::Malformed));
        let msg_no_seq = [0x10, 0, 0, 0, 2, 0, 0];
        let f = Frame::new_checked(&msg_no_seq[..]).unwrap();
        assert_eq!(Repr::parse(&f), Err(Error::Malformed));
    }

    #[test]
    fn unknown_type_is_named() {
        let f = Frame::new_checked(&[0x7f, 0, 0, 0, 0][..]).unwrap();
        assert_eq!(Repr::parse(&f), Err(Error::UnknownType(0x7f)));
    }

    #[test]
    fn hello_rejects_bad_name_and_version() {
        let mut bad_utf8 = HELLO_ANA;
        bad_utf8[32] = 0xff;
        let f = Frame::new_checked(&bad_utf8[..]).unwrap();
        assert_eq!(Repr::parse(&f), Err(Error::Malformed));
        let mut v2 = HELLO_ANA;
        v2[5] = 2;
        let f = Frame::new_checked(&v2[..]).unwrap();
        assert_eq!(hello_version(f.body()), Some(2));
        assert_eq!(Repr::parse(&f), Err(Error::Malformed));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let h = Repr::Hello(Hello {
            max_message: 1,
            idle_timeout_ms: 0,
            token: 0,
            ack: 0,
            name: &long,
        });
        assert_eq!(h.emit(&mut [0u8; 128]), Err(Error::Malformed));
    }

    #[test]
    fn emit_into_short_buffer_fails() {
        let m = Repr::Msg {
            seq: 9,
            payload: b"hello",
        };
        assert_eq!(m.emit(&mut [0u8; 10]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn utf8_check_agrees_with_core_str() {
        let agrees = |b: &[u8]| assert_eq!(is_utf8(b), core::str::from_utf8(b).is_ok(), "{b:x?}");
        for a in 0..=255u8 {
            agrees(&[a]);
            for b in 0..=255u8 {
                agrees(&[a, b]);
            }
        }
        // Every lead byte of a 3- or 4-byte form with every second and third byte.
        for a in 0xe0..=0xff {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    agrees(&[a, b, c]);
                    agrees(&[a, b, c, 0x80]);
                    agrees(&[a, b, c, 0xbf, b'x']);
                }
            }
        }
        agrees("añ€😀 ok".as_bytes());
    }

    #[test]
    fn hello_check_agrees_with_parse() {
        let mut cases = std::vec![HELLO_ANA.to_vec()];
        let mut v2 = HELLO_ANA;
        v2[5] = 2;
        cases.push(v2.to_vec());
        let mut bad = HELLO_ANA;
        bad[33] = 0xc3;
        cases.push(bad.to_vec());
        let mut long_len = HELLO_ANA;
        long_len[31] = 4;
        cases.push(long_len.to_vec());
        cases.push(HELLO_ANA[..20].to_vec());
        for case in cases {
            let body = case.get(HEADER_LEN..).unwrap_or(&[]);
            assert_eq!(check_hello(body).is_ok(), parse_hello(body).is_ok(), "{case:x?}");
        }
    }

    #[test]
    fn max_body_len_bounds_every_type() {
        assert_eq!(FrameType::Msg.max_body_len(100), 108);
        assert_eq!(FrameType::Hello.max_body_len(0), HELLO_FIXED_LEN + MAX_NAME_LEN);
        assert_eq!(FrameType::Close.max_body_len(u32::MAX), 1);
    }
}
