//! Invariants a session promises whatever its peer sends (PROTOCOL.md §4.3), checked
//! from the outside by the session fuzz targets.

use soquete_core::wire::{Frame, Repr, MAGIC};
use soquete_core::{Event, Mode, Session};

/// How many bytes the "transport" takes in one round, cycled from the plan.
pub fn chunk(plan: &[u8], i: usize) -> usize {
    usize::from(plan[i % plan.len()] % 48) + 1
}

/// Watches one session: its output (parsed as frames while it is binary) and its
/// events.
#[derive(Default)]
pub struct Checker {
    /// Output not yet parsed into whole frames.
    out: Vec<u8>,
    /// The output started with the magic: it is frames, and is parsed.
    framed: Option<bool>,
    /// Highest sequence number of a MSG that completely left.
    sent_complete: u64,
    last_acked: u64,
    last_delivered: u64,
    /// Bytes handed out in total (bounded).
    total_out: usize,
}

impl Checker {
    /// Moves up to `budget` bytes of what the session has to transmit (a transport
    /// that takes only so much now), and checks that it is not stuck: when
    /// `poll_transmit` is empty, nothing waits.
    pub fn transmit<R, T>(&mut self, s: &mut Session<R, T>, budget: usize)
    where
        R: AsRef<[u8]> + AsMut<[u8]> + core::fmt::Debug,
        T: AsRef<[u8]> + AsMut<[u8]> + core::fmt::Debug,
    {
        let mut left = budget;
        loop {
            let mode = s.mode();
            let bytes = s.poll_transmit();
            if bytes.is_empty() {
                assert!(
                    !s.wants_transmit(),
                    "poll_transmit stuck empty while something waits: {:?}",
                    s
                );
                return;
            }
            let n = bytes.len().min(left);
            if n == 0 {
                return;
            }
            self.record(&bytes[..n], mode);
            s.advance_transmit(n);
            left -= n;
            self.total_out += n;
            assert!(self.total_out < 1 << 20, "unbounded output");
        }
    }

    fn record(&mut self, bytes: &[u8], mode: Mode) {
        if mode == Mode::Plain || self.framed == Some(false) {
            return;
        }
        self.out.extend_from_slice(bytes);
        if self.framed.is_none() {
            if self.out.len() < MAGIC.len() {
                return;
            }
            let framed = self.out[..MAGIC.len()] == MAGIC;
            self.framed = Some(framed);
            if !framed {
                return;
            }
            self.out.drain(..MAGIC.len());
        }
        loop {
            let Ok(frame) = Frame::new_checked(&self.out[..]) else {
                return;
            };
            let len = frame.total_len();
            match Repr::parse(&frame) {
                Ok(Repr::Msg { seq, .. }) => {
                    assert_eq!(seq, self.sent_complete + 1, "own MSGs numbered in order");
                    self.sent_complete = seq;
                }
                Ok(_) => {}
                Err(e) => panic!("the session emitted an invalid frame: {e}"),
            }
            self.out.drain(..len);
        }
    }

    /// Checks one event against what went out and came in before it.
    pub fn event(&mut self, e: &Event<'_>) {
        match *e {
            Event::Acked { seq } => {
                assert!(seq > self.last_acked, "Acked goes forward");
                if self.framed == Some(true) {
                    assert!(
                        seq <= self.sent_complete,
                        "acked {seq}, only {} completely sent",
                        self.sent_complete
                    );
                }
                self.last_acked = seq;
            }
            Event::Message { seq, .. } => {
                assert_eq!(
                    seq,
                    self.last_delivered + 1,
                    "delivered sequence numbers are consecutive"
                );
                self.last_delivered = seq;
            }
            _ => {}
        }
    }

    /// Buffers stay within what the caller gave.
    pub fn bounded<R, T>(&self, s: &Session<R, T>, rx_len: usize, window: u32)
    where
        R: AsRef<[u8]> + AsMut<[u8]>,
        T: AsRef<[u8]> + AsMut<[u8]>,
    {
        assert!(s.rx_buffered() <= rx_len);
        if window > 0 {
            assert!(s.unconfirmed() <= u64::from(window), "more taken than the cap");
        }
    }
}
