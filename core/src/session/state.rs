//! The protocol state machine (PROTOCOL.md §4): one [`State`] enum with each state's
//! data in its variant, the transitions on frames in one `match`, and every change of
//! state through [`Session::set_state`].

use super::control::Due;
use super::input::Step;
use super::{Closure, Mode, Session, SERVER};
use crate::time::{Duration, Instant};
use crate::wire::{Code, Hello, Repr, Welcome};

/// The protocol state (PROTOCOL.md §4). Data that only one state needs lives in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Server: no byte yet; the first one tells binary from plain text.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    Detect { deadline: Instant },
    /// Server: magic received, waiting for HELLO.
    AwaitHello { deadline: Instant },
    /// Server: HELLO (or plain text) received, waiting for the application's verdict.
    Pending { deadline: Instant, ack: u64 },
    /// Client: magic and HELLO queued, waiting for the server's magic and WELCOME.
    HelloSent { deadline: Instant, magic_seen: bool },
    /// Established.
    Open,
    /// Orderly close in progress: `local`/`peer` are the reasons each side gave (if it
    /// has), `close_queued` whether our CLOSE is queued (it goes out at the next
    /// transmit).
    Closing {
        local: Option<Code>,
        peer: Option<Code>,
        close_queued: bool,
        deadline: Instant,
    },
    /// Finished; only queued bytes remain to be transmitted.
    Closed(Closure),
}

impl State {
    /// The state's name in PROTOCOL.md §4, for logs (much cheaper to print than
    /// `Debug`).
    pub(super) fn name(&self) -> &'static str {
        match self {
            State::Detect { .. } => "Detect",
            State::AwaitHello { .. } => "AwaitHello",
            State::Pending { .. } => "Pending",
            State::HelloSent { .. } => "HelloSent",
            State::Open => "Open",
            State::Closing { .. } => "Closing",
            State::Closed(_) => "Closed",
        }
    }
}

impl<R, T> Session<R, T>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    /// A MSG: delivered if it is the next one (§4.3).
    pub(super) fn on_message(&mut self, seq: u64, at: usize, len: usize, total: usize) -> Step {
        match self.state {
            State::Open | State::Closing { peer: None, .. } => {}
            _ => return self.abort(Code::UnexpectedFrame),
        }
        if self.window_full() {
            // Backpressure, not an error: the MSG waits in `rx` until the application
            // confirms (§4.3).
            return Step::Idle;
        }
        if Some(seq) != self.taken.checked_add(1) {
            // In hex: decimal u64 formatting would cost a firmware that logs ~1 KiB.
            debug!("expected seq {:#x}, got {:#x}", self.taken.wrapping_add(1), seq);
            return self.abort(Code::BadSequence);
        }
        self.rx.held = Some((total, seq));
        self.taken = seq;
        Step::Message { at, len, seq }
    }

    /// Every frame but MSG, in every state that parses frames (the table of §4).
    pub(super) fn on_control(&mut self, repr: Repr<'_>, now: Instant) -> Step {
        match (self.state, repr) {
            // Server handshake (§4.1).
            (State::AwaitHello { deadline }, Repr::Hello(h)) if SERVER => self.on_hello(h, deadline),
            // Client handshake (§4.2).
            (State::HelloSent { .. }, Repr::Welcome(w)) => self.on_welcome(w),
            (State::HelloSent { .. }, Repr::Refuse(code)) => {
                self.set_state(State::Closed(Closure::Refused(code)));
                Step::Idle
            }
            // Established (§4.3, §4.4).
            (State::Open | State::Closing { .. }, Repr::Ack(seq)) => self.on_ack(seq),
            (State::Open | State::Closing { .. }, Repr::Ping(nonce)) => {
                self.ctrl.due.pong = Some(nonce);
                Step::Again
            }
            // A PONG answers a PING that completely left, once (§3.7).
            (State::Open | State::Closing { .. }, Repr::Pong(nonce)) if self.timers.take_pong(nonce) => Step::Again,
            // Orderly close (§4.5): remember the peer's reason, finish our side.
            (State::Open, Repr::Close(code)) => {
                self.notify.peer_closing = Some(code);
                self.set_state(State::Closing {
                    local: None,
                    peer: Some(code),
                    close_queued: false,
                    deadline: now + self.config.close_timeout,
                });
                self.progress_close();
                Step::Again
            }
            (
                State::Closing {
                    local,
                    peer: None,
                    close_queued,
                    deadline,
                },
                Repr::Close(code),
            ) => {
                self.set_state(State::Closing {
                    local,
                    peer: Some(code),
                    close_queued,
                    deadline,
                });
                self.progress_close();
                Step::Again
            }
            // Abortive close, in any state (§4.5).
            (_, Repr::Error(code)) => {
                self.rx.discard();
                self.set_state(State::Closed(Closure::PeerError(code)));
                Step::Idle
            }
            (state, repr) => {
                debug!("{:?} not allowed in {}", repr.frame_type(), state.name());
                self.abort(Code::UnexpectedFrame)
            }
        }
    }

    fn on_hello(&mut self, h: Hello<'_>, deadline: Instant) -> Step {
        self.peer_max = h.max_message;
        self.peer_idle = Duration::from_millis(h.idle_timeout_ms.into());
        self.acked = 0;
        self.set_state(State::Pending { deadline, ack: h.ack });
        // The client's ack is about messages of ours from a resumed session; a server
        // that resumes uses it in `accept` (nothing to resend in a new session).
        Step::Hello {
            token: h.token,
            ack: h.ack,
        }
    }

    fn on_welcome(&mut self, w: Welcome) -> Step {
        if w.resumed && w.token != self.token {
            debug!("server resumed a session we did not ask for");
            return self.abort(Code::UnknownSession);
        }
        if !w.resumed && w.ack != 0 {
            // A new session: nothing of it was sent yet (§3.3).
            return self.abort(Code::BadAck);
        }
        self.peer_max = w.max_message;
        self.peer_idle = Duration::from_millis(w.idle_timeout_ms.into());
        self.token = w.token;
        if w.resumed {
            // §4.6: the server has everything up to w.ack; resend the rest. It can
            // only have what completely left on an earlier connection (§4.2).
            if w.ack > self.transmitted_before || w.ack < self.acked {
                debug!("resumed WELCOME acknowledges {:#x}", w.ack);
                return self.abort(Code::BadAck);
            }
            self.notify.acked = w.ack > self.acked;
            self.drop_acked(w.ack);
        } else {
            // A new session: our unacknowledged messages are renumbered from 1 and the
            // server's numbering starts again (§4.6).
            self.next_seq = self.tx.renumber(1);
            self.acked = 0;
            self.transmitted_before = 0;
            self.taken = 0;
            self.delivered = 0;
            self.ack_sent = 0;
        }
        self.set_state(State::Open);
        self.notify.established = Some(w.resumed);
        Step::Again
    }

    fn on_ack(&mut self, seq: u64) -> Step {
        // Checked before anything changes: an ACK may cover only MSGs that completely
        // left on this connection (§4.3).
        if seq > self.acked.saturating_add(self.tx.frames_sent()) {
            debug!("ACK {:#x} of a message not completely sent", seq);
            return self.abort(Code::BadAck);
        }
        if seq > self.acked {
            self.drop_acked(seq);
            self.notify.acked = true;
            self.progress_close();
        }
        Step::Again
    }

    /// Orderly close bookkeeping (§4.5): CLOSE once all our messages are acknowledged,
    /// closed once both CLOSEs are exchanged.
    pub(super) fn progress_close(&mut self) {
        let State::Closing {
            local,
            peer,
            close_queued,
            deadline,
        } = self.state
        else {
            return;
        };
        // The CLOSE is encoded at the next transmit, after any ACK: so it answers the
        // peer only once every message taken from it is confirmed.
        let queued = close_queued || (self.unacked() == 0 && self.unconfirmed() == 0);
        if queued && !close_queued {
            self.ctrl.due.close = Some(local.or(peer).unwrap_or(Code::Normal));
            self.set_state(State::Closing {
                local,
                peer,
                close_queued: true,
                deadline,
            });
        }
        if let (true, Some(peer_code)) = (queued, peer) {
            let closure = match local {
                Some(code) => Closure::Orderly { code, by_peer: false },
                None => Closure::Orderly {
                    code: peer_code,
                    by_peer: true,
                },
            };
            self.set_state(State::Closed(closure));
        }
    }

    /// Ends the session because of `code`, telling the peer with ERROR (or an `ERR`
    /// line in plain text).
    pub(super) fn abort(&mut self, code: Code) -> Step {
        debug!("aborting session: {}", code.describe());
        self.rx.discard();
        self.ctrl.due = Due::default();
        // A peer still silent in Detect gets text: a binary client would have spoken.
        let text = self.mode() == Mode::Plain || (SERVER && matches!(self.state, State::Detect { .. }));
        if text {
            self.ctrl.push_err_line(code, self.config.max_message);
        } else {
            self.ctrl.push_magic_once();
            self.ctrl.push(Repr::Error(code));
        }
        self.set_state(State::Closed(Closure::Aborted(code)));
        Step::Idle
    }

    /// Ends the session without a word: the peer does not speak the protocol.
    pub(super) fn abort_silently(&mut self, code: Code) -> Step {
        self.rx.discard();
        self.ctrl.due = Due::default();
        self.set_state(State::Closed(Closure::Aborted(code)));
        Step::Idle
    }

    /// The one place the state changes (logged at trace level).
    pub(super) fn set_state(&mut self, state: State) {
        if let State::Closed(closure) = state {
            // Only the last ACK and CLOSE of an orderly close still go out (§4.5): a
            // frame due that never will would leave `wants_transmit` true forever.
            self.ctrl.due.ping = None;
            self.ctrl.due.pong = None;
            if !matches!(closure, Closure::Orderly { .. }) {
                self.ctrl.due.close = None;
            }
        }
        #[cfg(any(feature = "log", feature = "defmt"))]
        if self.state.name() != state.name() {
            trace!("{:?} session: {} -> {}", self.role, self.state.name(), state.name());
        }
        self.state = state;
    }

    /// Answers the peer with REFUSE (or an `ERR` line) and ends the session.
    pub(super) fn refuse_now(&mut self, code: Code) -> Step {
        self.rx.discard();
        self.ctrl.clear();
        match self.mode() {
            Mode::Binary => {
                self.ctrl.push_magic_once();
                self.ctrl.push(Repr::Refuse(code));
            }
            Mode::Plain => self.ctrl.push_err_line(code, self.config.max_message),
        }
        self.set_state(State::Closed(Closure::Refused(code)));
        Step::Idle
    }

    /// Queues magic + HELLO and waits for the server (§4.2).
    #[inline(never)]
    pub(super) fn start_handshake(&mut self, now: Instant) {
        self.ctrl.due.hello = true;
        self.set_state(State::HelloSent {
            deadline: now + self.config.handshake_timeout,
            magic_seen: false,
        });
    }

    /// Drops acknowledged MSGs up to `upto` from the transmit queue (§4.3).
    fn drop_acked(&mut self, upto: u64) {
        let dropped = self.tx.drop_front(upto.saturating_sub(self.acked));
        self.acked += dropped;
        self.stats.acked = self.stats.acked.saturating_add(dropped);
    }
}
