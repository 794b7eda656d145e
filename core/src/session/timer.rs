//! Timers (PROTOCOL.md §4, §4.4, §4.5, §7.1): handshake, idle, keepalive, close and
//! plain-text line gap. The session owns no clock: the caller passes `now`.

use super::{Mode, Session, State};
use crate::time::{Duration, Instant};
use crate::wire::Code;

/// When traffic was last seen, and the keepalive PINGs (§4.4).
#[derive(Clone, Copy, Debug)]
pub(super) struct Timers {
    /// When bytes were last received.
    pub(super) last_rx: Instant,
    /// When bytes were last seen leaving (noted at the next timer run): a plain-text
    /// session has no keepalive, so its idle timer counts traffic both ways (§7.1).
    pub(super) last_tx: Instant,
    pub(super) tx_activity: bool,
    /// A PING is due or out, and nothing was received since.
    pub(super) ping_out: bool,
    /// Nonce of the last PING queued (§3.7): they count 1, 2, ... per session (32
    /// bits are ample at one PING per keepalive interval).
    pub(super) nonce: u32,
    /// Highest PING nonce whose frame has completely left; a PONG may name only a
    /// nonce in `pong_seen + 1..=ping_sent`.
    pub(super) ping_sent: u32,
    /// Highest nonce a PONG has answered.
    pub(super) pong_seen: u32,
}

impl Timers {
    pub(super) const fn new(now: Instant) -> Self {
        Timers {
            last_rx: now,
            last_tx: now,
            tx_activity: false,
            ping_out: false,
            nonce: 0,
            ping_sent: 0,
            pong_seen: 0,
        }
    }

    /// Received bytes re-arm the idle timer and the keepalive.
    pub(super) fn on_input(&mut self, now: Instant) {
        self.last_rx = now;
        self.ping_out = false;
    }

    /// True for a PONG that answers an outstanding PING (§3.7); it counts as answered.
    pub(super) fn take_pong(&mut self, nonce: u64) -> bool {
        match u32::try_from(nonce) {
            Ok(n) if n > self.pong_seen && n <= self.ping_sent => {
                self.pong_seen = n;
                true
            }
            _ => false,
        }
    }

    /// A new connection: PINGs of the old one can no longer be answered.
    pub(super) fn forget_pings(&mut self) {
        self.ping_sent = self.nonce;
        self.pong_seen = self.nonce;
        self.ping_out = false;
    }
}

impl<R, T> Session<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// When [`Session::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Detect { deadline }
            | State::AwaitHello { deadline }
            | State::Pending { deadline, .. }
            | State::HelloSent { deadline, .. } => Some(deadline),
            State::Open => self.idle_deadlines(),
            State::Closing { deadline, .. } => Some(self.idle_deadlines().map_or(deadline, |d| d.min(deadline))),
            State::Closed(_) => None,
        }
    }

    /// The earliest of the idle, keepalive and line-gap deadlines in force.
    fn idle_deadlines(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(idle) = self.idle_timeout() {
            consider(self.last_activity() + idle);
            if self.mode() == Mode::Binary && !self.timers.ping_out {
                consider(self.timers.last_rx + third(idle));
            }
        }
        if self.mode() == Mode::Plain && self.rx.buffered() > 0 && !self.config.line_gap.is_zero() {
            consider(self.timers.last_rx + self.config.line_gap);
        }
        next
    }

    /// Last traffic the idle timer counts: received bytes; for plain text, sent too.
    fn last_activity(&self) -> Instant {
        match self.mode() {
            Mode::Binary => self.timers.last_rx,
            Mode::Plain => self.timers.last_rx.max(self.timers.last_tx),
        }
    }

    /// The idle timeout in force: the smaller non-zero one of the two sides (§4.4).
    fn idle_timeout(&self) -> Option<Duration> {
        let own = self.config.idle_timeout;
        let peer = if self.mode() == Mode::Binary {
            self.peer_idle
        } else {
            Duration::ZERO
        };
        match (own.is_zero(), peer.is_zero()) {
            (true, true) => None,
            (false, true) => Some(own),
            (true, false) => Some(peer),
            (false, false) => Some(own.min(peer)),
        }
    }

    /// Runs the timers that are due at `now`: handshake, idle, keepalive, close, line gap.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Detect { deadline }
            | State::AwaitHello { deadline }
            | State::Pending { deadline, .. }
            | State::HelloSent { deadline, .. } => {
                if now >= deadline {
                    self.abort(Code::HandshakeTimeout);
                }
                return;
            }
            State::Closing { deadline, .. } if now >= deadline => {
                self.abort(Code::CloseTimeout);
                return;
            }
            State::Open | State::Closing { .. } => {}
            State::Closed(_) => return,
        }
        if let Some(idle) = self.idle_timeout() {
            if self.mode() == Mode::Plain && core::mem::take(&mut self.timers.tx_activity) {
                self.timers.last_tx = now;
            }
            if now >= self.last_activity() + idle {
                self.abort(Code::IdleTimeout);
                return;
            }
            if self.mode() == Mode::Binary && !self.timers.ping_out && now >= self.timers.last_rx + third(idle) {
                self.timers.nonce = self.timers.nonce.wrapping_add(1);
                self.ctrl.due.ping = Some(self.timers.nonce.into());
                self.timers.ping_out = true;
            }
        }
        if self.mode() == Mode::Plain && self.rx.buffered() > 0 && now >= self.timers.last_rx + self.config.line_gap {
            self.flush_partial = true;
        }
    }
}

/// A third of `d`, the keepalive interval (§4.4). Exact, but without a 64-bit division,
/// which would cost a 32-bit firmware about 1 KiB of compiler-builtins.
pub(super) fn third(d: Duration) -> Duration {
    let ms = d.as_millis();
    // 2^32 = 1 (mod 3), so the remainder comes from the two halves; what is left is a
    // multiple of 3, which multiplying by the inverse of 3 (mod 2^64) divides exactly.
    let rem = ((ms >> 32) as u32 % 3 + ms as u32 % 3) % 3;
    Duration::from_millis((ms - u64::from(rem)).wrapping_mul(0xaaaa_aaaa_aaaa_aaab))
}
