//! The two-session harness with faults: delay, cuts with reconnect and resume, a
//! lying peer; and random schedules of them (proptest).

use std::vec::Vec as StdVec;

use proptest::prelude::*;

use super::pair::{Pair, TOKEN};
use super::{frame, Owned};
use crate::session::{Closure, Error, Mode};
use crate::time::Duration;
use crate::wire::{Code, Repr, Welcome};

/// The client application: sends `wanted` numbered messages, as `send` takes them.
#[derive(Default)]
struct Sender {
    wanted: u32,
    next: u32,
}

impl Sender {
    fn pump(&mut self, p: &mut Pair) {
        while self.next < self.wanted {
            match p.client.send(&self.next.to_be_bytes()) {
                Ok(_) => self.next += 1,
                Err(Error::Full | Error::NotOpen) => return,
                Err(e) => panic!("send: {e}"),
            }
        }
    }

    fn done(&self, p: &Pair) -> bool {
        self.next == self.wanted && p.client.unacked() == 0
    }
}

fn numbered(n: u32) -> StdVec<StdVec<u8>> {
    (0..n).map(|i| i.to_be_bytes().to_vec()).collect()
}

/// Runs until every wanted message is sent and acknowledged (bounded), the server
/// application confirming all it took each round.
fn finish(p: &mut Pair, s: &mut Sender) {
    for _ in 0..1_000 {
        p.confirm_all();
        s.pump(p);
        p.run();
        if s.done(p) && p.server_taken.is_empty() {
            return;
        }
    }
    panic!(
        "not finished: sent {} of {}, {} unacked",
        s.next,
        s.wanted,
        p.client.unacked()
    );
}

fn no_errors(p: &Pair) {
    for e in p.client_events.iter().chain(&p.server_events) {
        assert!(!matches!(e, Owned::Closed(_)), "unexpected end: {e:?}");
    }
}

#[test]
fn a_slow_link_in_small_chunks_delivers_everything_in_order() {
    let mut p = Pair::new();
    p.latency = Duration::from_millis(40);
    p.chunk = 7;
    let mut s = Sender { wanted: 60, next: 0 };
    finish(&mut p, &mut s);
    assert_eq!(p.stored, numbered(60));
    assert_eq!(p.client.stats().acked, 60);
    no_errors(&p);
}

#[test]
fn a_cut_mid_stream_then_resume_delivers_each_message_once() {
    let mut p = Pair::new();
    p.resume = true;
    p.chunk = 20;
    let mut s = Sender { wanted: 12, next: 0 };
    p.run();
    s.pump(&mut p);
    for _ in 0..3 {
        p.step();
    }
    assert!(
        !p.stored.is_empty() && p.client.unacked() > 0,
        "cut with messages in flight"
    );
    p.cut();
    finish(&mut p, &mut s);
    assert_eq!(p.stored, numbered(12));
    assert!(p.client_events.contains(&Owned::Established {
        mode: Mode::Binary,
        resumed: true
    }));
}

#[test]
fn a_cut_during_the_handshake_then_reconnect_establishes() {
    let mut p = Pair::new();
    p.resume = true;
    p.step();
    p.cut();
    let mut s = Sender { wanted: 3, next: 0 };
    finish(&mut p, &mut s);
    assert_eq!(p.stored, numbered(3));
    assert_eq!(p.client.token(), TOKEN);
}

#[test]
fn a_lying_server_acking_ahead_gets_bad_ack_and_nothing_wedges() {
    let mut p = Pair::established();
    p.client.send(b"one").unwrap();
    // Arrives as the client writes MSG 1: ACK 2 is ahead of anything it sent.
    p.inject_to_client(&frame(Repr::Ack(2)));
    p.run();
    assert!(p.client_events.contains(&Owned::Closed(Closure::Aborted(Code::BadAck))));
    assert!(!p.client_events.iter().any(|e| matches!(e, Owned::Acked(_))));
    assert!(p
        .server_events
        .contains(&Owned::Closed(Closure::PeerError(Code::BadAck))));
    assert!(p.client.is_finished() && p.server.is_finished());
}

#[test]
fn a_lying_server_with_a_pong_nobody_asked_for_is_unexpected() {
    let mut p = Pair::established();
    p.inject_to_client(&frame(Repr::Pong(77)));
    p.run();
    assert!(p
        .client_events
        .contains(&Owned::Closed(Closure::Aborted(Code::UnexpectedFrame))));
    assert!(p
        .server_events
        .contains(&Owned::Closed(Closure::PeerError(Code::UnexpectedFrame))));
}

#[test]
fn keepalive_pongs_through_a_delayed_link_are_accepted() {
    let mut p = Pair::established();
    p.latency = Duration::from_millis(300);
    for _ in 0..6 {
        p.advance_to_next_timeout();
        p.run();
    }
    assert!(p.client.is_open() && p.server.is_open());
    assert!(p.client_events.is_empty() && p.server_events.is_empty());
}

#[test]
fn a_lying_server_repeating_welcome_is_unexpected() {
    let welcome = Welcome {
        resumed: false,
        max_message: 200,
        idle_timeout_ms: 30_000,
        token: TOKEN,
        ack: 0,
    };
    let mut p = Pair::established();
    p.inject_to_client(&frame(Repr::Welcome(welcome)));
    p.run();
    assert_eq!(
        p.client_events,
        [Owned::Closed(Closure::Aborted(Code::UnexpectedFrame))]
    );
}

#[cfg(feature = "explicit-ack")]
mod explicit {
    use super::*;

    #[test]
    fn only_confirmed_messages_are_acknowledged_and_the_cap_holds() {
        let mut p = Pair::new().explicit(3);
        let mut s = Sender { wanted: 10, next: 0 };
        p.run();
        s.pump(&mut p);
        p.run();
        assert_eq!(p.server_taken.len(), 3, "the cap stops taking");
        assert_eq!(p.client.unacked(), 10, "nothing confirmed, nothing acknowledged");
        no_errors(&p);
        finish(&mut p, &mut s);
        assert_eq!(p.stored, numbered(10));
    }

    /// The receiving application may confirm only what a later message completes (a
    /// "commit"): an acknowledgement that frees room at the front of a full `tx` must
    /// let that message through at once, however much is still unacknowledged, or
    /// nothing would ever move again.
    #[test]
    fn room_freed_at_the_front_takes_the_next_message_at_once() {
        let mut p = Pair::new().explicit(16);
        p.run();
        // 50-byte frames until the 512-byte tx is full: ten of them.
        let mut sent = 0;
        while p.client.send(&[b'm'; 37]).is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 10);
        p.run();
        assert_eq!(p.server_taken.len(), 10);
        // The application confirms the first message only.
        p.server.confirm(1).unwrap();
        p.run();
        assert_eq!(p.client.unacked(), 9);
        assert!(p.client.send(b"commit: 37 bytes of payload, like m..").is_ok());
    }

    #[test]
    fn a_cut_with_unconfirmed_messages_has_them_sent_again() {
        let mut p = Pair::new().explicit(4);
        p.resume = true;
        let mut s = Sender { wanted: 8, next: 0 };
        p.run();
        s.pump(&mut p);
        p.run();
        p.confirm_all();
        p.run();
        assert_eq!(p.stored.len(), 4);
        assert_eq!(p.server_taken.len(), 4, "taken, not confirmed");
        p.cut();
        finish(&mut p, &mut s);
        assert_eq!(p.stored, numbered(8), "each message stored once");
    }
}

/// One thing that happens in a random schedule.
#[derive(Clone, Debug)]
enum Op {
    /// The client application wants this many more messages sent.
    Send(u8),
    /// This many harness rounds.
    Step(u8),
    /// The connection is cut; the client reconnects and resumes.
    Cut,
    /// The server application confirms what it took.
    Confirm,
    /// Reads are at most this large.
    Chunk(u8),
    /// The link's one-way delay, in milliseconds.
    Latency(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..8).prop_map(Op::Send),
        4 => (1u8..12).prop_map(Op::Step),
        1 => Just(Op::Cut),
        2 => Just(Op::Confirm),
        1 => (1u8..64).prop_map(Op::Chunk),
        1 => (0u8..40).prop_map(Op::Latency),
    ]
}

fn schedule(ops: &[Op], window: u32) {
    let mut p = Pair::new();
    #[cfg(feature = "explicit-ack")]
    if window > 0 {
        p = p.explicit(window);
    }
    #[cfg(not(feature = "explicit-ack"))]
    let _ = window;
    p.resume = true;
    let mut s = Sender::default();
    for op in ops {
        match *op {
            Op::Send(n) => s.wanted += u32::from(n),
            Op::Step(n) => {
                for _ in 0..n {
                    p.step();
                }
            }
            Op::Cut => p.cut(),
            Op::Confirm => p.confirm_all(),
            Op::Chunk(n) => p.chunk = usize::from(n),
            Op::Latency(ms) => p.latency = Duration::from_millis(ms.into()),
        }
        s.pump(&mut p);
    }
    finish(&mut p, &mut s);
    // Exactly once, in order, across every cut.
    assert_eq!(p.stored, numbered(s.wanted), "after {} cuts", p.cuts);
    assert_eq!(p.client.stats().sent, u64::from(s.wanted));
    no_errors(&p);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_deliver_every_message_exactly_once_in_order(
        ops in prop::collection::vec(op(), 0..40),
    ) {
        schedule(&ops, 0);
    }

    #[test]
    fn random_schedules_with_explicit_acknowledgement_deliver_exactly_once(
        ops in prop::collection::vec(op(), 0..40),
        window in 1u32..6,
    ) {
        schedule(&ops, window);
    }
}
