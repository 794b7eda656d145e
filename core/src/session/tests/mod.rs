//! Session tests, grouped by state, on a deterministic two-session harness.

use std::vec;
use std::vec::Vec as StdVec;

use heapless::Vec;

use super::control::{push_decimal, push_text, CTRL_CAP};
use super::timer::third;
use super::*;
use crate::wire::{Frame, Hello, Repr, Welcome, MAGIC};

#[cfg(feature = "server")]
mod faults;
#[cfg(feature = "server")]
mod pair;

#[cfg(feature = "server")]
use pair::Pair;

#[cfg(any(feature = "server", feature = "plain"))]
type TestSession = Session<[u8; 256], [u8; 512]>;

const CFG: Config = Config {
    max_message: 200,
    ..Config::DEFAULT
};

/// An event with its payload copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Hello {
        mode: Mode,
        name: std::string::String,
        token: u64,
    },
    Established {
        mode: Mode,
        resumed: bool,
    },
    Message(u64, StdVec<u8>),
    Acked(u64),
    PeerClosing(Code),
    Closed(Closure),
}

fn own(e: Event<'_>) -> Owned {
    match e {
        Event::Hello { mode, name, token, .. } => Owned::Hello {
            mode,
            name: name.into(),
            token,
        },
        Event::Established { mode, resumed } => Owned::Established { mode, resumed },
        Event::Message { seq, payload } => Owned::Message(seq, payload.to_vec()),
        Event::Acked { seq } => Owned::Acked(seq),
        Event::PeerClosing(c) => Owned::PeerClosing(c),
        Event::Closed(c) => Owned::Closed(c),
    }
}

fn drain<R, T>(s: &mut Session<R, T>, now: Instant) -> StdVec<Owned>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let mut out = StdVec::new();
    while let Some(e) = s.poll_event(now) {
        out.push(own(e));
        assert!(out.len() < 100_000, "event storm");
    }
    out
}

fn transmit<R, T>(s: &mut Session<R, T>, max: usize) -> StdVec<u8>
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let mut out = StdVec::new();
    loop {
        let chunk = s.poll_transmit();
        let n = chunk.len().min(max - out.len().min(max));
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&chunk[..n]);
        s.advance_transmit(n);
    }
}

#[cfg(feature = "server")]
mod handshake {
    use super::*;

    #[test]
    fn client_and_server_establish() {
        let mut p = Pair::new();
        p.run();
        assert_eq!(
            p.server_events,
            [
                Owned::Hello {
                    mode: Mode::Binary,
                    name: "ana".into(),
                    token: 0
                },
                Owned::Established {
                    mode: Mode::Binary,
                    resumed: false
                }
            ]
        );
        assert_eq!(
            p.client_events,
            [Owned::Established {
                mode: Mode::Binary,
                resumed: false
            }]
        );
        assert_eq!(p.client.token(), 42);
        assert_eq!(p.client.peer_max_message(), 200);
        assert_eq!(p.server.client_name(), "ana");
    }

    #[test]
    fn welcome_and_ack_are_reported_by_the_same_poll_that_reads_them() {
        let now = Instant::ZERO;
        let mut c: TestSession = Session::client(CFG, "", [0; 256], [0; 512], now).unwrap();
        let mut s: TestSession = Session::server(CFG, [0; 256], [0; 512], now).unwrap();
        s.handle_input(now, &transmit(&mut c, usize::MAX));
        assert!(matches!(s.poll_event(now), Some(Event::Hello { .. })));
        s.accept(5, None).unwrap();
        c.handle_input(now, &transmit(&mut s, usize::MAX));
        assert_eq!(
            c.poll_event(now).map(own),
            Some(Owned::Established {
                mode: Mode::Binary,
                resumed: false
            })
        );
        c.send(b"m").unwrap();
        s.handle_input(now, &transmit(&mut c, usize::MAX));
        drain(&mut s, now);
        c.handle_input(now, &transmit(&mut s, usize::MAX));
        assert_eq!(c.poll_event(now).map(own), Some(Owned::Acked(1)));
    }

    #[test]
    fn byte_by_byte_handshake() {
        let mut p = Pair::new();
        p.chunk = 1;
        p.run();
        assert!(p.client.is_open() && p.server.is_open());
    }

    #[test]
    fn refused_client_sees_reason() {
        let mut p = Pair::new();
        p.auto_accept = false;
        p.run();
        p.server.refuse(Code::ServerFull).unwrap();
        p.run();
        assert_eq!(p.client_events, [Owned::Closed(Closure::Refused(Code::ServerFull))]);
        assert!(p.server.is_finished());
    }

    #[test]
    fn silent_peer_in_detect_gets_a_text_error() {
        let mut r = Raw::server();
        r.at(r.now + CFG.handshake_timeout);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::HandshakeTimeout)));
        assert_eq!(r.out, b"ERR handshake timeout\n");
    }

    #[test]
    fn bad_version_refused_even_with_a_long_hello() {
        let mut r = Raw::server();
        r.feed(&MAGIC);
        r.feed(&[0x01, 0, 0, 0x10, 0, 2]);
        assert_eq!(r.closed(), Some(Closure::Refused(Code::BadVersion)));
        assert_eq!(r.out, [&MAGIC[..], &frame(Repr::Refuse(Code::BadVersion))].concat());
    }

    #[test]
    fn server_abort_during_handshake_reaches_the_client() {
        let mut p = Pair::new();
        p.auto_accept = false;
        p.run();
        p.server.close(p.now, Code::Shutdown);
        p.run();
        assert_eq!(p.client_events, [Owned::Closed(Closure::Refused(Code::Shutdown))]);
    }

    #[test]
    fn silent_client_times_out() {
        let now = Instant::ZERO;
        let mut s: TestSession = Session::server(CFG, [0; 256], [0; 512], now).unwrap();
        assert_eq!(s.poll_timeout(), Some(now + CFG.handshake_timeout));
        s.handle_timeout(now + CFG.handshake_timeout);
        assert_eq!(
            drain(&mut s, now),
            [Owned::Closed(Closure::Aborted(Code::HandshakeTimeout))]
        );
    }
}

#[cfg(feature = "server")]
mod open {
    use super::*;

    #[test]
    fn messages_arrive_in_order_and_are_acked() {
        let mut p = Pair::established();
        for i in 0..20u8 {
            p.client.send(&[i; 3]).unwrap();
        }
        p.run();
        let got = p.server_messages();
        assert_eq!(got.len(), 20);
        for (i, (seq, payload)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(payload, &[i as u8; 3]);
        }
        assert_eq!(p.client.unacked(), 0);
        assert_eq!(p.client.stats().acked, 20);
        assert!(p.client_events.contains(&Owned::Acked(20)));
    }

    #[test]
    fn empty_messages_keep_boundaries() {
        let mut p = Pair::established();
        for m in [&b"a"[..], b"", b"c"] {
            p.client.send(m).unwrap();
        }
        p.chunk = 3;
        p.run();
        assert_eq!(
            p.server_messages(),
            [(1, b"a".to_vec()), (2, vec![]), (3, b"c".to_vec())]
        );
    }

    #[test]
    fn full_buffer_is_backpressure_not_loss() {
        let mut p = Pair::established();
        let mut sent = 0;
        while p.client.send(&[7; 100]).is_ok() {
            sent += 1;
        }
        assert_eq!(p.client.send(&[7; 100]), Err(Error::Full));
        p.run();
        assert_eq!(p.server_messages().len(), sent);
        assert!(p.client.send(&[7; 100]).is_ok());
    }

    #[test]
    fn too_large_for_peer_is_refused_locally() {
        let mut p = Pair::established();
        assert_eq!(p.client.send(&[0; 201]), Err(Error::TooLarge { max: 200 }));
        assert!(p.client.send(&[0; 200]).is_ok());
    }
}

#[cfg(feature = "server")]
mod closing {
    use super::*;

    #[test]
    fn close_waits_for_acks_then_both_close() {
        let mut p = Pair::established();
        for _ in 0..5 {
            p.client.send(b"x").unwrap();
        }
        p.client.close(p.now, Code::Normal);
        assert_eq!(p.client.send(b"late"), Err(Error::Closing));
        p.run();
        assert_eq!(p.server_messages().len(), 5);
        assert!(p.client_events.contains(&Owned::Closed(Closure::Orderly {
            code: Code::Normal,
            by_peer: false
        })));
        assert!(p.server_events.contains(&Owned::Closed(Closure::Orderly {
            code: Code::Normal,
            by_peer: true
        })));
        assert!(p.client.is_finished() && p.server.is_finished());
    }

    #[test]
    fn server_shutdown_still_acks_clients_messages() {
        let mut p = Pair::established();
        for _ in 0..5 {
            p.client.send(b"x").unwrap();
        }
        p.server.close(p.now, Code::Shutdown);
        p.run();
        assert_eq!(p.server_messages().len(), 5);
        assert_eq!(p.client.unacked(), 0);
        assert!(p.client_events.contains(&Owned::PeerClosing(Code::Shutdown)));
        // Closing after the peer started keeps the peer as the initiator.
        assert!(p.client_events.contains(&Owned::Closed(Closure::Orderly {
            code: Code::Shutdown,
            by_peer: true
        })));
        assert!(p.server_events.contains(&Owned::Closed(Closure::Orderly {
            code: Code::Shutdown,
            by_peer: false
        })));
    }
}

/// A server session fed raw bytes, with its events and output collected.
#[cfg(feature = "server")]
struct Raw {
    s: TestSession,
    now: Instant,
    events: StdVec<Owned>,
    out: StdVec<u8>,
}

#[cfg(feature = "server")]
impl Raw {
    fn server() -> Raw {
        let now = Instant::from_millis(5_000);
        Raw {
            s: Session::server(CFG, [0; 256], [0; 512], now).unwrap(),
            now,
            events: StdVec::new(),
            out: StdVec::new(),
        }
    }

    /// A server session past the binary handshake.
    fn open_server() -> Raw {
        let mut r = Raw::server();
        r.feed(&MAGIC);
        r.feed(&hello_bytes("bo"));
        r.s.accept(9, None).unwrap();
        r.pump();
        assert!(r.s.is_open());
        r.events.clear();
        r.out.clear();
        r
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        for _ in 0..10_000 {
            let n = self.s.handle_input(self.now, rest);
            rest = &rest[n..];
            self.pump();
            if rest.is_empty() || self.s.is_closed() {
                return;
            }
        }
        panic!("input not consumed");
    }

    fn pump(&mut self) {
        let ev = drain(&mut self.s, self.now);
        self.events.extend(ev);
        self.out.extend(transmit(&mut self.s, usize::MAX));
    }

    fn eof(&mut self) {
        self.s.handle_eof(self.now);
        self.pump();
    }

    fn at(&mut self, now: Instant) {
        self.now = now;
        self.s.handle_timeout(now);
        self.pump();
    }

    fn messages(&self) -> StdVec<StdVec<u8>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Owned::Message(_, p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn closed(&self) -> Option<Closure> {
        self.events.iter().find_map(|e| match e {
            Owned::Closed(c) => Some(*c),
            _ => None,
        })
    }
}

fn frame(repr: Repr<'_>) -> StdVec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

fn hello_bytes(name: &str) -> StdVec<u8> {
    frame(Repr::Hello(Hello {
        max_message: 200,
        idle_timeout_ms: 30_000,
        token: 0,
        ack: 0,
        name,
    }))
}

fn msg(seq: u64, payload: &[u8]) -> StdVec<u8> {
    frame(Repr::Msg { seq, payload })
}

#[cfg(feature = "server")]
mod detect {
    use super::*;

    #[test]
    fn detect_magic_split_in_single_bytes() {
        let mut r = Raw::server();
        for b in MAGIC {
            r.feed(&[b]);
        }
        assert!(r.events.is_empty());
        r.feed(&hello_bytes(""));
        assert_eq!(
            r.events,
            [Owned::Hello {
                mode: Mode::Binary,
                name: "".into(),
                token: 0
            }]
        );
    }

    #[cfg(feature = "plain")]
    #[test]
    fn detect_text_is_plain() {
        let mut r = Raw::server();
        r.feed(b"hello\n");
        assert_eq!(
            r.events,
            [Owned::Hello {
                mode: Mode::Plain,
                name: "".into(),
                token: 0
            }]
        );
        r.s.accept(1, None).unwrap();
        r.pump();
        assert_eq!(r.messages(), [b"hello".to_vec()]);
        assert!(r.out.is_empty(), "plain peers get no acknowledgements");
    }

    #[cfg(feature = "plain")]
    #[test]
    fn detect_magic_prefix_then_text_is_plain() {
        let mut r = Raw::server();
        r.feed(&[0xFE, b'S', b'x', b'\n']);
        assert!(matches!(r.events[..], [Owned::Hello { mode: Mode::Plain, .. }]));
    }

    #[test]
    fn detect_plain_disallowed_is_bad_magic() {
        let now = Instant::ZERO;
        let cfg = Config {
            allow_plain: false,
            ..CFG
        };
        let mut s: TestSession = Session::server(cfg, [0; 256], [0; 512], now).unwrap();
        s.handle_input(now, b"hi\n");
        assert_eq!(drain(&mut s, now), [Owned::Closed(Closure::Aborted(Code::BadMagic))]);
        assert_eq!(transmit(&mut s, 100), b"ERR peer does not speak soquete\n");
    }

    #[test]
    fn detect_eof_before_any_byte_is_eof() {
        let mut r = Raw::server();
        r.eof();
        assert_eq!(r.closed(), Some(Closure::Eof));
    }
}

#[cfg(feature = "server")]
mod await_hello {
    use super::*;

    #[test]
    fn await_hello_rejects_other_frames() {
        let mut r = Raw::server();
        r.feed(&MAGIC);
        r.feed(&msg(1, b"early"));
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::UnexpectedFrame)));
        // The server's magic precedes its first frame, an ERROR too.
        assert_eq!(r.out, [&MAGIC[..], &frame(Repr::Error(Code::UnexpectedFrame))].concat());
    }

    #[test]
    fn await_hello_refuses_other_versions() {
        let mut r = Raw::server();
        r.feed(&MAGIC);
        let mut hello = hello_bytes("x");
        hello[5] = 9;
        r.feed(&hello);
        assert_eq!(r.closed(), Some(Closure::Refused(Code::BadVersion)));
        let mut expected = MAGIC.to_vec();
        expected.extend(frame(Repr::Refuse(Code::BadVersion)));
        assert_eq!(r.out, expected);
    }

    #[test]
    fn await_hello_dribbling_client_times_out() {
        let mut r = Raw::server();
        let deadline = r.now + CFG.handshake_timeout;
        let bytes = [&MAGIC[..], &hello_bytes("slow")[..]].concat();
        // One byte per second: activity does not extend the handshake deadline.
        for (i, b) in bytes.iter().take(9).enumerate() {
            r.at(Instant::from_millis(5_000 + 1_000 * i as u64));
            r.feed(&[*b]);
        }
        r.at(deadline);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::HandshakeTimeout)));
    }
}

#[cfg(feature = "server")]
mod open_errors {
    use super::*;

    #[test]
    fn open_oversize_length_rejected_from_header_alone() {
        let mut r = Raw::open_server();
        r.feed(&[0x10, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::TooLarge)));
        assert_eq!(r.out, frame(Repr::Error(Code::TooLarge)));
    }

    #[test]
    fn open_frame_longer_than_negotiated_max() {
        let mut r = Raw::open_server();
        r.feed(&msg(1, &[b'x'; 201])[..5]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::TooLarge)));
    }

    #[test]
    fn open_unknown_frame_type() {
        let mut r = Raw::open_server();
        r.feed(&[0x7e, 0, 0, 0, 0]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::UnknownFrame)));
    }

    #[test]
    fn open_sequence_must_not_skip_or_go_back() {
        let mut r = Raw::open_server();
        r.feed(&msg(1, b"a"));
        r.feed(&msg(3, b"c"));
        assert_eq!(r.messages(), [b"a".to_vec()]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::BadSequence)));

        let mut r = Raw::open_server();
        r.feed(&msg(1, b"a"));
        r.feed(&msg(1, b"a"));
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::BadSequence)));
    }

    #[test]
    fn open_ack_of_unsent_message() {
        let mut r = Raw::open_server();
        r.feed(&frame(Repr::Ack(1)));
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::BadAck)));
    }

    #[test]
    fn open_second_hello_is_unexpected() {
        let mut r = Raw::open_server();
        r.feed(&hello_bytes("again"));
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::UnexpectedFrame)));
    }

    #[test]
    fn open_malformed_ack_length() {
        let mut r = Raw::open_server();
        r.feed(&[0x11, 0, 0, 0, 2, 0, 1]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::Malformed)));
    }

    #[test]
    fn open_peer_error_ends_session_silently() {
        let mut r = Raw::open_server();
        r.feed(&frame(Repr::Error(Code::Overloaded)));
        assert_eq!(r.closed(), Some(Closure::PeerError(Code::Overloaded)));
        assert!(r.out.is_empty());
    }

    #[test]
    fn open_ping_is_answered() {
        let mut r = Raw::open_server();
        r.feed(&frame(Repr::Ping(77)));
        assert_eq!(r.out, frame(Repr::Pong(77)));
    }

    #[test]
    fn open_acks_are_cumulative_and_batched() {
        let mut r = Raw::open_server();
        let burst: StdVec<u8> = (1..=15).flat_map(|i| msg(i, b"m")).collect();
        r.feed(&burst);
        assert_eq!(r.messages().len(), 15);
        assert_eq!(r.out, frame(Repr::Ack(15)), "one ACK for the whole burst");
    }

    #[test]
    fn open_half_closed_peer_gets_the_final_ack() {
        let mut r = Raw::open_server();
        let burst: StdVec<u8> = (1..=3).flat_map(|i| msg(i, b"m")).collect();
        assert_eq!(r.s.handle_input(r.now, &burst), burst.len());
        r.eof();
        assert_eq!(r.messages().len(), 3);
        assert_eq!(r.out, frame(Repr::Ack(3)), "the peer may still read");
        assert_eq!(r.closed(), Some(Closure::Eof));
    }

    #[test]
    fn open_eof_mid_frame_is_eof() {
        let mut r = Raw::open_server();
        r.feed(&msg(1, b"whole"));
        r.feed(&msg(2, b"cut short")[..8]);
        r.eof();
        assert_eq!(r.messages(), [b"whole".to_vec()]);
        assert_eq!(r.closed(), Some(Closure::Eof));
    }
}

#[cfg(feature = "plain")]
mod plain {
    use super::*;

    #[cfg(feature = "server")]
    fn plain_server() -> Raw {
        let mut r = Raw::server();
        r.feed(b"x");
        r.s.accept(1, None).unwrap();
        r.events.clear();
        r
    }

    #[cfg(feature = "server")]
    #[test]
    fn plain_lines_crlf_and_empty() {
        let mut r = plain_server();
        r.feed(b"\r\nsecond\n\nlast\r\n");
        assert_eq!(
            r.messages(),
            [b"x".to_vec(), b"second".to_vec(), vec![], b"last".to_vec()]
        );
    }

    #[cfg(feature = "server")]
    #[test]
    fn plain_partial_line_after_gap() {
        let mut r = plain_server();
        let gap_at = r.now + CFG.line_gap;
        assert_eq!(r.s.poll_timeout(), Some(gap_at));
        r.at(gap_at);
        assert_eq!(r.messages(), [b"x".to_vec()]);
        // The flush covered only what was buffered: the next text waits for its own gap.
        r.feed(b"yz");
        assert_eq!(r.messages().len(), 1);
        r.at(r.now + CFG.line_gap);
        assert_eq!(r.messages(), [b"x".to_vec(), b"yz".to_vec()]);
    }

    #[cfg(feature = "server")]
    #[test]
    fn plain_partial_line_on_eof() {
        let mut r = plain_server();
        r.feed(b"abc\ndef");
        r.eof();
        assert_eq!(r.messages(), [b"xabc".to_vec(), b"def".to_vec()]);
        assert_eq!(r.closed(), Some(Closure::Eof));
    }

    #[cfg(feature = "server")]
    #[test]
    fn plain_line_too_long() {
        let mut r = plain_server();
        r.feed(&[b'y'; 300]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::TooLarge)));
        assert_eq!(r.out, b"ERR line too long (max 200 bytes)\n");
    }

    #[cfg(feature = "detect")]
    #[test]
    fn plain_http_request_is_recognised() {
        let mut r = Raw::server();
        r.feed(b"GET / HT");
        assert!(r.events.is_empty(), "waits for the request line");
        r.feed(b"TP/1.1\r\nHost: example\r\n\r\n");
        assert!(r.messages().is_empty());
        assert!(!r.events.iter().any(|e| matches!(e, Owned::Hello { .. })));
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::WrongProtocol)));
        assert_eq!(r.out, b"ERR wrong protocol\n");
    }

    #[cfg(feature = "detect")]
    #[test]
    fn plain_tls_client_hello_is_recognised() {
        let mut r = Raw::server();
        r.feed(&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::WrongProtocol)));
    }

    #[cfg(feature = "detect")]
    #[test]
    fn plain_binary_first_bytes_are_recognised() {
        // An MQTT CONNECT and a PostgreSQL StartupMessage, as their first segment.
        let mqtt = b"\x10\x12\x00\x04MQTT\x04\x02\x00\x3c\x00\x06client";
        let postgres = b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00ana\x00database\x00db\x00\x00";
        for first in [&mqtt[..], &postgres[..]] {
            let mut r = Raw::server();
            r.feed(first);
            assert!(!r.events.iter().any(|e| matches!(e, Owned::Hello { .. })));
            assert_eq!(r.closed(), Some(Closure::Aborted(Code::WrongProtocol)));
            assert_eq!(r.out, b"ERR wrong protocol\n");
        }
    }

    #[cfg(feature = "detect")]
    #[test]
    fn plain_control_later_in_the_first_line_is_binary() {
        // Detect saw only "x"; the rest of the first line is checked when it is whole.
        let mut r = plain_server();
        r.feed(b"\x01yz\nnext\n");
        assert!(r.messages().is_empty());
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::WrongProtocol)));
        assert_eq!(r.out, b"ERR wrong protocol\n");
    }

    #[cfg(feature = "detect")]
    #[test]
    fn plain_nul_in_a_later_line_ends_the_session_after_the_lines_before() {
        let mut r = plain_server();
        r.feed(b"abc\nol\xe1 \x01\x7f\nde\x00f\nlater\n");
        assert_eq!(r.messages(), [b"xabc".to_vec(), b"ol\xe1 \x01\x7f".to_vec()]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::WrongProtocol)));
        assert_eq!(r.out, b"ERR wrong protocol\n");
    }

    #[cfg(feature = "detect")]
    #[test]
    fn plain_nul_in_a_partial_line_is_binary() {
        let mut r = plain_server();
        r.feed(b"abc\nde\x00");
        r.eof();
        assert_eq!(r.messages(), [b"xabc".to_vec()]);
        assert_eq!(r.closed(), Some(Closure::Aborted(Code::WrongProtocol)));
    }

    #[cfg(all(feature = "plain", not(feature = "detect")))]
    #[test]
    fn plain_binary_is_text_without_detect() {
        let mut r = Raw::server();
        r.feed(b"\x00\x01bin\n");
        r.s.accept(1, None).unwrap();
        r.pump();
        assert_eq!(r.messages(), [b"\x00\x01bin".to_vec()]);
    }

    #[cfg(feature = "server")]
    #[test]
    fn plain_refused_gets_err_line() {
        let mut r = Raw::server();
        r.feed(b"hi\n");
        r.s.refuse(Code::ServerFull).unwrap();
        r.pump();
        assert_eq!(r.out, b"ERR server full\n");
        assert!(r.s.is_finished());
    }

    #[cfg(feature = "server")]
    #[test]
    fn plain_server_sends_lines() {
        let mut r = plain_server();
        assert_eq!(r.s.send(b"to you"), Ok(1));
        assert_eq!(r.s.send(b"a\nb"), Err(Error::Newline));
        r.pump();
        assert_eq!(r.out, b"to you\n");
    }

    #[test]
    fn plain_line_half_written_at_the_end_is_finished_not_stuck() {
        // Found by fuzz/server_session: the rest of a line after end of stream.
        let mut r = plain_server();
        r.s.send(b"hello").unwrap();
        r.s.send(b"more").unwrap();
        assert_eq!(transmit(&mut r.s, 2), b"he");
        r.eof();
        assert_eq!(r.closed(), Some(Closure::Eof));
        assert_eq!(r.out, b"llo\n", "the line in progress, not the next");
        assert!(!r.s.wants_transmit());
    }

    #[test]
    fn plain_sender_is_not_idle() {
        let now = Instant::ZERO;
        let mut c: TestSession = Session::plain_client(CFG, [0; 256], [0; 512], now).unwrap();
        drain(&mut c, now);
        let step = Duration::from_millis(CFG.idle_timeout.as_millis() / 2);
        let mut t = now;
        for _ in 0..6 {
            c.send(b"still here").unwrap();
            let _ = transmit(&mut c, usize::MAX);
            t = t + step;
            c.handle_timeout(t);
            assert!(c.is_open(), "sending counts as activity");
        }
        let silent_until = t + CFG.idle_timeout;
        c.handle_timeout(silent_until);
        c.handle_timeout(silent_until + step);
        assert_eq!(drain(&mut c, t), [Owned::Closed(Closure::Aborted(Code::IdleTimeout))]);
    }

    #[test]
    fn plain_client_speaks_lines() {
        let now = Instant::ZERO;
        let mut c: TestSession = Session::plain_client(CFG, [0; 256], [0; 512], now).unwrap();
        assert_eq!(
            drain(&mut c, now),
            [Owned::Established {
                mode: Mode::Plain,
                resumed: false
            }]
        );
        c.send(b"one").unwrap();
        c.send(b"two").unwrap();
        assert_eq!(transmit(&mut c, 100), b"one\ntwo\n");
        c.handle_input(now, b"reply\n");
        assert_eq!(drain(&mut c, now), [Owned::Message(1, b"reply".to_vec())]);
        c.close(now, Code::Normal);
        assert!(c.is_finished());
    }
}

#[cfg(feature = "server")]
mod keepalive {
    use super::*;

    #[test]
    fn idle_pair_stays_alive_with_pings() {
        let mut p = Pair::established();
        let start = p.now;
        for _ in 0..100 {
            p.advance_to_next_timeout();
            p.run();
        }
        assert!(p.now.saturating_since(start) > CFG.idle_timeout);
        assert!(p.client.is_open() && p.server.is_open());
    }

    #[test]
    fn silent_peer_hits_idle_timeout() {
        let mut p = Pair::established();
        // The server stops hearing anything: its idle timer fires.
        for _ in 0..10 {
            if p.server.is_closed() {
                break;
            }
            p.c2s.clear();
            p.advance_to_next_timeout();
            let _ = transmit(&mut p.client, usize::MAX);
            p.server_events.extend(drain(&mut p.server, p.now));
        }
        assert!(p
            .server_events
            .contains(&Owned::Closed(Closure::Aborted(Code::IdleTimeout))));
    }
}

#[cfg(feature = "server")]
mod resume {
    use super::*;

    /// The link is cut: bytes in flight are lost and the server side starts a new
    /// session object for the next connection.
    fn cut(p: &mut Pair) {
        p.c2s.clear();
        p.s2c.clear();
        p.server = Session::server(CFG, [0; 256], [0; 512], p.now).unwrap();
        p.client.reconnect(p.now).unwrap();
    }

    #[test]
    fn resumed_session_resends_only_unacknowledged() {
        let mut p = Pair::established();
        for i in 0..10u8 {
            p.client.send(&[i]).unwrap();
        }
        // Deliver only the first 5 frames (13 + 1 bytes each) and their ack.
        p.c2s.extend(transmit(&mut p.client, usize::MAX));
        let five = p.c2s.drain(..5 * 14).collect::<StdVec<u8>>();
        p.server.handle_input(p.now, &five);
        p.server_events.extend(drain(&mut p.server, p.now));
        let ack = transmit(&mut p.server, usize::MAX);
        p.client.handle_input(p.now, &ack);
        p.client_events.extend(drain(&mut p.client, p.now));
        assert_eq!(p.client.unacked(), 5);
        let received_before = p.server_messages();
        assert_eq!(received_before.len(), 5);

        cut(&mut p);
        p.auto_accept = false;
        p.run();
        let Some(Owned::Hello { token, .. }) = p.server_events.last().cloned() else {
            panic!("no hello")
        };
        assert_eq!(token, 42);
        p.server.accept(42, Some(5)).unwrap();
        p.run();
        let all = p.server_messages();
        let seqs: StdVec<u64> = all.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=10).collect::<StdVec<_>>(), "each message exactly once");
        assert_eq!(p.client.unacked(), 0);
        assert!(p.client_events.contains(&Owned::Established {
            mode: Mode::Binary,
            resumed: true
        }));
    }

    #[test]
    fn new_session_after_server_restart_renumbers() {
        let mut p = Pair::established();
        for i in 0..4u8 {
            p.client.send(&[i]).unwrap();
        }
        let _lost = transmit(&mut p.client, usize::MAX);
        cut(&mut p);
        p.run();
        let msgs = p.server_messages();
        assert_eq!(msgs, [(1, vec![0]), (2, vec![1]), (3, vec![2]), (4, vec![3])]);
        assert_eq!(p.client.unacked(), 0);
        assert_eq!(p.client.stats().acked, 4);
    }

    #[test]
    fn resume_with_ack_beyond_sent_is_rejected() {
        let mut p = Pair::established();
        p.client.send(b"one").unwrap();
        cut(&mut p);
        p.auto_accept = false;
        p.run();
        p.server.accept(42, Some(7)).unwrap();
        p.run();
        assert!(p.client_events.contains(&Owned::Closed(Closure::Aborted(Code::BadAck))));
    }
}

/// A client fed the server's side as raw bytes: these run without the `server` feature.
mod client {
    use super::*;

    pub(super) fn welcome_bytes(token: u64) -> StdVec<u8> {
        let welcome = Welcome {
            resumed: false,
            max_message: 200,
            idle_timeout_ms: 30_000,
            token,
            ack: 0,
        };
        [&MAGIC[..], &frame(Repr::Welcome(welcome))].concat()
    }

    /// A client past the handshake, with an `rx` of `rx_len` bytes.
    pub(super) fn open_client(rx_len: usize) -> Session<StdVec<u8>, [u8; 512]> {
        let now = Instant::ZERO;
        let mut c = Session::client(CFG, "cli", vec![0; rx_len], [0; 512], now).unwrap();
        assert_eq!(transmit(&mut c, usize::MAX), [&MAGIC[..], &hello_bytes("cli")].concat());
        let welcome = welcome_bytes(3);
        assert_eq!(c.handle_input(now, &welcome), welcome.len());
        assert_eq!(
            drain(&mut c, now),
            [Owned::Established {
                mode: Mode::Binary,
                resumed: false
            }]
        );
        c
    }

    #[test]
    fn client_receives_and_acknowledges_from_bytes() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.handle_input(now, &[msg(1, b"one"), msg(2, b"two")].concat());
        assert_eq!(
            drain(&mut c, now),
            [Owned::Message(1, b"one".to_vec()), Owned::Message(2, b"two".to_vec())]
        );
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(2)));
    }

    #[test]
    fn control_frames_wait_only_for_the_msg_in_progress() {
        // §4.3 "Batching": a MSG already partly written is finished first; the PONG
        // then goes before the MSGs still queued, not after all of them.
        let now = Instant::ZERO;
        let mut c = open_client(256);
        for p in [&b"one"[..], b"two", b"three"] {
            c.send(p).unwrap();
        }
        let (m1, m2, m3) = (msg(1, b"one"), msg(2, b"two"), msg(3, b"three"));
        assert_eq!(transmit(&mut c, m1.len() + 2), [&m1[..], &m2[..2]].concat());
        c.handle_input(now, &frame(Repr::Ping(9)));
        drain(&mut c, now);
        let rest = transmit(&mut c, usize::MAX);
        assert_eq!(rest, [&m2[2..], &frame(Repr::Pong(9)), &m3].concat());
    }

    #[test]
    fn client_checks_a_hello_before_calling_it_unexpected() {
        // §3.1: field checks (step 6) come before the state check (step 7), also in a
        // build without the server, which checks HELLO without decoding its name.
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.handle_input(now, &hello_bytes("srv"));
        assert_eq!(
            drain(&mut c, now),
            [Owned::Closed(Closure::Aborted(Code::UnexpectedFrame))]
        );

        for bad_name in [&[0xff][..], &[0xc0, 0x80], &[0xed, 0xa0, 0x80], &[0xe2, 0x82]] {
            let mut c = open_client(256);
            let mut hello = hello_bytes("");
            hello[4] += bad_name.len() as u8;
            *hello.last_mut().unwrap() = bad_name.len() as u8;
            hello.extend_from_slice(bad_name);
            c.handle_input(now, &hello);
            assert_eq!(
                drain(&mut c, now),
                [Owned::Closed(Closure::Aborted(Code::Malformed))],
                "{bad_name:x?}"
            );
        }
    }

    #[test]
    fn client_rx_below_the_minimum_is_refused() {
        type S = Session<StdVec<u8>, [u8; 512]>;
        let now = Instant::ZERO;
        let short = S::client(CFG, "", vec![0; S::MIN_RX_LEN - 1], [0; 512], now);
        assert_eq!(short.err(), Some(Error::RxTooSmall));
        assert!(S::client(CFG, "", vec![0; S::MIN_RX_LEN], [0; 512], now).is_ok());
    }

    #[test]
    fn compaction_moves_like_copy_within() {
        for len in 0..40 {
            for start in 0..=len {
                for end in start..=len {
                    let original: StdVec<u8> = (0..len as u8).collect();
                    let mut expected = original.clone();
                    expected.copy_within(start..end, 0);
                    let mut got = original.clone();
                    move_to_front(&mut got, start, end);
                    assert_eq!(got[..end - start], expected[..end - start], "{start}..{end} of {len}");
                }
            }
        }
    }

    #[test]
    fn err_line_numbers_in_decimal() {
        for (v, text) in [(0, "0"), (7, "7"), (10, "10"), (1024, "1024"), (u32::MAX, "4294967295")] {
            let mut line = Vec::<u8, CTRL_CAP>::new();
            push_decimal(&mut line, v).unwrap();
            assert_eq!(&line[..], text.as_bytes());
        }
        let mut full = Vec::<u8, CTRL_CAP>::new();
        assert!(push_text(&mut full, &[b'x'; CTRL_CAP - 2]).is_ok());
        assert!(push_decimal(&mut full, 12345).is_err());
        assert_eq!(&full[CTRL_CAP - 2..], b"12", "what fits stays");
    }

    #[test]
    fn keepalive_interval_is_an_exact_third() {
        for ms in [
            0,
            1,
            2,
            3,
            4,
            5,
            29_999,
            30_000,
            u64::from(u32::MAX) + 2,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(third(Duration::from_millis(ms)).as_millis(), ms / 3, "{ms}");
        }
    }
}

/// A peer that acknowledges, answers or resumes what this side never completely sent
/// (PROTOCOL.md §4.3, §3.7, §4.2): each is a protocol error decided before any state
/// changes, never a wedged session.
mod lying_peer {
    use super::client::open_client;
    use super::*;

    type Client = Session<StdVec<u8>, [u8; 512]>;

    /// The client with `payload` queued and the first `sent` bytes of its MSG written.
    fn with_msg(payload: &[u8], sent: usize) -> Client {
        let mut c = open_client(256);
        c.send(payload).unwrap();
        let out = transmit(&mut c, sent);
        assert_eq!(out.len(), sent);
        c
    }

    #[test]
    fn open_ack_before_the_msg_was_transmitted_is_bad_ack() {
        let now = Instant::ZERO;
        let mut c = with_msg(b"hello", 0);
        c.handle_input(now, &frame(Repr::Ack(1)));
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Aborted(Code::BadAck))]);
        assert_eq!(c.unacked(), 1, "nothing counted as acknowledged");
        assert_eq!(c.stats().acked, 0);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Error(Code::BadAck)));
    }

    #[test]
    fn open_ack_of_a_half_written_msg_is_bad_ack_and_the_error_still_leaves() {
        let now = Instant::ZERO;
        let full = msg(1, b"hello");
        let mut c = with_msg(b"hello", 3);
        c.handle_input(now, &frame(Repr::Ack(1)));
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Aborted(Code::BadAck))]);
        // The frame in progress is finished so that the ERROR starts on a boundary.
        let rest = transmit(&mut c, usize::MAX);
        assert_eq!(rest, [&full[3..], &frame(Repr::Error(Code::BadAck))[..]].concat());
        assert!(c.is_finished());
    }

    #[test]
    fn open_ack_of_the_complete_msg_before_a_partial_one_is_fine() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.send(b"one").unwrap();
        c.send(b"two").unwrap();
        let first = msg(1, b"one").len();
        assert_eq!(transmit(&mut c, first + 2).len(), first + 2);
        c.handle_input(now, &frame(Repr::Ack(1)));
        assert_eq!(drain(&mut c, now), [Owned::Acked(1)]);
        c.handle_input(now, &frame(Repr::Ack(2)));
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Aborted(Code::BadAck))]);
        assert_eq!(c.unacked(), 1);
    }

    #[test]
    fn open_ack_while_a_pong_waits_behind_a_partial_msg_never_wedges() {
        // The reported hang: a half-written MSG, an ACK covering it, then a PING.
        let now = Instant::ZERO;
        let mut c = with_msg(b"hello", 4);
        c.handle_input(now, &[frame(Repr::Ack(1)), frame(Repr::Ping(5))].concat());
        drain(&mut c, now);
        let out = transmit(&mut c, usize::MAX);
        assert!(!out.is_empty(), "poll_transmit stuck empty");
        assert!(!c.wants_transmit());
    }

    #[test]
    fn open_pong_without_a_ping_is_unexpected() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.handle_input(now, &frame(Repr::Pong(1)));
        assert_eq!(
            drain(&mut c, now),
            [Owned::Closed(Closure::Aborted(Code::UnexpectedFrame))]
        );
    }

    /// The client after its keepalive PING went out; returns the PING's nonce.
    fn pinged() -> (Client, u64, Instant) {
        let mut c = open_client(256);
        let now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        let out = transmit(&mut c, usize::MAX);
        let Ok(Repr::Ping(nonce)) = Repr::parse(&Frame::new_checked(&out[..]).unwrap()) else {
            panic!("no PING in {out:x?}");
        };
        (c, nonce, now)
    }

    #[test]
    fn open_pong_with_the_ping_nonce_is_accepted_once() {
        let (mut c, nonce, now) = pinged();
        c.handle_input(now, &frame(Repr::Pong(nonce)));
        assert_eq!(drain(&mut c, now), []);
        assert!(c.is_open());
        c.handle_input(now, &frame(Repr::Pong(nonce)));
        assert_eq!(
            drain(&mut c, now),
            [Owned::Closed(Closure::Aborted(Code::UnexpectedFrame))],
            "a PING is answered once"
        );
    }

    #[test]
    fn open_pong_with_another_nonce_is_unexpected() {
        let (mut c, nonce, now) = pinged();
        c.handle_input(now, &frame(Repr::Pong(nonce + 1)));
        assert_eq!(
            drain(&mut c, now),
            [Owned::Closed(Closure::Aborted(Code::UnexpectedFrame))]
        );
    }

    #[test]
    fn open_pong_for_a_ping_not_yet_written_is_unexpected() {
        let mut c = open_client(256);
        let now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        let ping = frame(Repr::Ping(1));
        assert_eq!(transmit(&mut c, ping.len() - 1), ping[..ping.len() - 1]);
        c.handle_input(now, &frame(Repr::Pong(1)));
        assert_eq!(
            drain(&mut c, now),
            [Owned::Closed(Closure::Aborted(Code::UnexpectedFrame))]
        );
    }

    fn welcome(resumed: bool, token: u64, ack: u64) -> StdVec<u8> {
        let w = Welcome {
            resumed,
            max_message: 200,
            idle_timeout_ms: 30_000,
            token,
            ack,
        };
        [&MAGIC[..], &frame(Repr::Welcome(w))].concat()
    }

    #[test]
    fn hello_sent_new_session_welcome_with_an_ack_is_bad_ack() {
        let now = Instant::ZERO;
        let mut c = Client::client(CFG, "cli", vec![0; 256], [0; 512], now).unwrap();
        transmit(&mut c, usize::MAX);
        c.handle_input(now, &welcome(false, 3, 1));
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Aborted(Code::BadAck))]);
    }

    #[test]
    fn hello_sent_resumed_welcome_acking_a_msg_never_transmitted_is_bad_ack() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.send(b"sent").unwrap();
        transmit(&mut c, usize::MAX);
        c.send(b"queued only").unwrap();
        c.reconnect(now).unwrap();
        transmit(&mut c, usize::MAX);
        c.handle_input(now, &welcome(true, 3, 2));
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Aborted(Code::BadAck))]);
        assert_eq!(c.unacked(), 2);
    }

    #[test]
    fn hello_sent_resumed_welcome_acking_what_was_transmitted_resends_the_rest() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.send(b"sent").unwrap();
        transmit(&mut c, usize::MAX);
        c.send(b"queued only").unwrap();
        c.reconnect(now).unwrap();
        transmit(&mut c, usize::MAX);
        c.handle_input(now, &welcome(true, 3, 1));
        assert_eq!(
            drain(&mut c, now),
            [
                Owned::Established {
                    mode: Mode::Binary,
                    resumed: true
                },
                Owned::Acked(1)
            ]
        );
        assert_eq!(transmit(&mut c, usize::MAX), msg(2, b"queued only"));
    }

    #[test]
    fn open_a_ping_answered_by_nothing_never_leaves_a_frame_due() {
        // Found by fuzz/client_session: a PONG due when the session closes can never
        // be sent, and must not keep `wants_transmit` true.
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.handle_input(
            now,
            &[frame(Repr::Ping(3)), frame(Repr::Error(Code::Shutdown))].concat(),
        );
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::PeerError(Code::Shutdown))]);
        assert_eq!(transmit(&mut c, usize::MAX), []);
        assert!(!c.wants_transmit(), "nothing is stuck waiting");

        let mut c = open_client(256);
        c.close(now, Code::Normal);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Close(Code::Normal)));
        c.handle_input(now, &[frame(Repr::Ping(4)), frame(Repr::Close(Code::Normal))].concat());
        drain(&mut c, now);
        assert!(c.is_closed());
        transmit(&mut c, usize::MAX);
        assert!(!c.wants_transmit());
    }

    #[test]
    fn reconnect_after_an_own_orderly_close_is_wrong_state() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.close(now, Code::Normal);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Close(Code::Normal)));
        c.handle_input(now, &frame(Repr::Close(Code::Normal)));
        assert_eq!(
            drain(&mut c, now),
            [Owned::Closed(Closure::Orderly {
                code: Code::Normal,
                by_peer: false
            })]
        );
        assert_eq!(c.reconnect(now), Err(Error::WrongState));
    }

    #[test]
    fn reconnect_after_a_lost_connection_is_allowed() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.handle_eof(now);
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Eof)]);
        assert_eq!(c.reconnect(now), Ok(()));
        assert_eq!(transmit(&mut c, usize::MAX)[..4], MAGIC);
    }

    #[cfg(feature = "server")]
    #[test]
    fn reconnect_on_a_server_is_wrong_state() {
        let mut r = Raw::open_server();
        assert_eq!(r.s.reconnect(r.now), Err(Error::WrongState));
    }
}

/// Explicit acknowledgement: messages taken, acknowledged once confirmed (§4.3).
#[cfg(feature = "explicit-ack")]
mod explicit_ack {
    use super::client::open_client;
    use super::*;

    type Client = Session<StdVec<u8>, [u8; 512]>;

    fn explicit(window: u32) -> Client {
        let mut c = open_client(256);
        c.set_explicit_ack(window);
        c
    }

    fn msgs(seqs: core::ops::RangeInclusive<u64>) -> StdVec<u8> {
        seqs.flat_map(|i| msg(i, &[i as u8])).collect()
    }

    fn seqs_of(events: &[Owned]) -> StdVec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Owned::Message(s, _) => Some(*s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn open_messages_are_acknowledged_only_once_confirmed() {
        let now = Instant::ZERO;
        let mut c = explicit(8);
        c.handle_input(now, &msgs(1..=3));
        assert_eq!(seqs_of(&drain(&mut c, now)), [1, 2, 3]);
        assert_eq!(c.unconfirmed(), 3);
        assert_eq!(c.rx_buffered(), 0, "taken messages leave rx");
        assert_eq!(transmit(&mut c, usize::MAX), [], "nothing confirmed, nothing acked");
        c.confirm(2).unwrap();
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(2)));
        assert_eq!(c.confirm(1), Ok(()), "already confirmed: nothing to do");
        assert_eq!(transmit(&mut c, usize::MAX), []);
        assert_eq!(c.confirm(4), Err(Error::WrongState), "4 was never taken");
        c.confirm(3).unwrap();
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(3)));
        assert_eq!(c.unconfirmed(), 0);
    }

    #[test]
    fn open_a_full_window_stops_taking_without_an_error() {
        let now = Instant::ZERO;
        let mut c = explicit(2);
        c.handle_input(now, &msgs(1..=5));
        assert_eq!(seqs_of(&drain(&mut c, now)), [1, 2]);
        assert!(c.is_open());
        assert_eq!(c.rx_buffered(), 3 * 14, "the rest waits in rx");
        c.confirm(1).unwrap();
        assert_eq!(seqs_of(&drain(&mut c, now)), [3]);
        c.confirm(3).unwrap();
        assert_eq!(seqs_of(&drain(&mut c, now)), [4, 5]);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(3)));
    }

    #[test]
    fn open_a_full_window_fills_rx_and_stops_reading() {
        let now = Instant::ZERO;
        let mut c = explicit(1);
        let stream = msgs(1..=40);
        let mut fed = 0;
        let mut seen = StdVec::new();
        for _ in 0..100 {
            fed += c.handle_input(now, &stream[fed..]);
            seen.extend(seqs_of(&drain(&mut c, now)));
            if c.input_buffer().is_empty() {
                break;
            }
        }
        assert!(c.input_buffer().is_empty(), "rx full: the transport stops reading");
        assert!(fed < stream.len() && c.is_open());
        assert_eq!(seen, [1]);
        for _ in 0..1000 {
            if let Some(&last) = seen.last() {
                c.confirm(last).unwrap();
            }
            fed += c.handle_input(now, &stream[fed..]);
            seen.extend(seqs_of(&drain(&mut c, now)));
            if seen.len() == 40 {
                break;
            }
        }
        assert_eq!(seen, (1..=40).collect::<StdVec<_>>());
    }

    #[test]
    fn closing_answers_the_peer_close_only_once_everything_is_confirmed() {
        let now = Instant::ZERO;
        let mut c = explicit(8);
        c.handle_input(now, &[msgs(1..=2), frame(Repr::Close(Code::Shutdown))].concat());
        let ev = drain(&mut c, now);
        assert_eq!(seqs_of(&ev), [1, 2]);
        assert!(ev.contains(&Owned::PeerClosing(Code::Shutdown)));
        assert_eq!(transmit(&mut c, usize::MAX), []);
        c.confirm(1).unwrap();
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(1)));
        assert!(!c.is_closed());
        c.confirm(2).unwrap();
        assert_eq!(
            transmit(&mut c, usize::MAX),
            [frame(Repr::Ack(2)), frame(Repr::Close(Code::Shutdown))].concat()
        );
        assert_eq!(
            drain(&mut c, now),
            [Owned::Closed(Closure::Orderly {
                code: Code::Shutdown,
                by_peer: true
            })]
        );
    }

    #[test]
    fn closing_an_own_close_waits_for_confirmation_too() {
        let now = Instant::ZERO;
        let mut c = explicit(8);
        c.handle_input(now, &msgs(1..=1));
        drain(&mut c, now);
        c.close(now, Code::Normal);
        assert_eq!(transmit(&mut c, usize::MAX), []);
        c.confirm(1).unwrap();
        assert_eq!(
            transmit(&mut c, usize::MAX),
            [frame(Repr::Ack(1)), frame(Repr::Close(Code::Normal))].concat()
        );
    }

    #[test]
    fn open_end_of_stream_waits_for_confirmation_then_acks() {
        let now = Instant::ZERO;
        let mut c = explicit(8);
        c.handle_input(now, &msgs(1..=2));
        c.handle_eof(now);
        assert_eq!(seqs_of(&drain(&mut c, now)), [1, 2]);
        assert!(!c.is_closed(), "the half-closed peer still waits for its ACK");
        c.confirm(2).unwrap();
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Eof)]);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(2)));
    }

    #[test]
    fn hello_sent_a_resume_acknowledges_only_what_was_confirmed() {
        let now = Instant::ZERO;
        let mut c = explicit(8);
        c.handle_input(now, &msgs(1..=3));
        drain(&mut c, now);
        c.confirm(2).unwrap();
        c.reconnect(now).unwrap();
        let out = transmit(&mut c, usize::MAX);
        let Ok(Repr::Hello(h)) = Repr::parse(&Frame::new_checked(&out[4..]).unwrap()) else {
            panic!("no HELLO in {out:x?}");
        };
        assert_eq!(h.ack, 2, "message 3 was taken but not confirmed");
        let welcome = [
            &MAGIC[..],
            &frame(Repr::Welcome(Welcome {
                resumed: true,
                max_message: 200,
                idle_timeout_ms: 30_000,
                token: 3,
                ack: 0,
            })),
        ]
        .concat();
        c.handle_input(now, &[welcome, msgs(3..=3)].concat());
        assert_eq!(seqs_of(&drain(&mut c, now)), [3], "3 again, after the resume");
    }

    #[test]
    fn implicit_mode_is_unchanged_and_confirm_acknowledges_early() {
        let now = Instant::ZERO;
        let mut c = open_client(256);
        c.handle_input(now, &msgs(1..=2));
        assert_eq!(c.poll_event(now).map(own), Some(Owned::Message(1, vec![1])));
        c.confirm(1).unwrap();
        assert_eq!(c.unconfirmed(), 0);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(1)));
        assert_eq!(seqs_of(&drain(&mut c, now)), [2]);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(2)));
    }
}

/// A receive buffer that starts small and grows on demand (`rx_wanted`, `replace_rx`).
mod lazy_rx {
    use super::client::open_client;
    use super::*;

    type Small = Session<StdVec<u8>, [u8; 512]>;
    const MIN: usize = Small::MIN_RX_LEN;

    /// Feeds `bytes` in chunks of at most `chunk`, growing `rx` when asked (after
    /// `delay` stalled rounds) and shrinking it back to `MIN` when it can.
    fn feed_growing(s: &mut Small, bytes: &[u8], chunk: usize, delay: usize) -> StdVec<Owned> {
        let now = Instant::ZERO;
        let mut events = StdVec::new();
        let mut rest = bytes;
        let mut stalled = 0;
        for _ in 0..100_000 {
            let n = s.handle_input(now, &rest[..rest.len().min(chunk)]);
            rest = &rest[n..];
            events.extend(drain(s, now));
            if let Some(want) = s.rx_wanted() {
                assert!(want <= Small::min_rx_len(CFG.max_message));
                stalled += 1;
                if stalled > delay {
                    let old = s.replace_rx(vec![0; want]).unwrap();
                    assert!(old.len() < want);
                    stalled = 0;
                }
            } else if s.rx_shrinkable(MIN) {
                s.replace_rx(vec![0; MIN]).unwrap();
            }
            if rest.is_empty() && s.rx_buffered() == 0 || s.is_closed() {
                return events;
            }
        }
        panic!("input not consumed");
    }

    #[test]
    fn small_rx_grows_for_a_frame_larger_than_it() {
        let now = Instant::ZERO;
        let mut c = open_client(MIN);
        let big = msg(1, &[b'b'; 150]);
        assert_eq!(c.handle_input(now, &big), MIN);
        assert_eq!(drain(&mut c, now), []);
        assert_eq!(c.rx_wanted(), Some(big.len()));
        assert!(c.input_buffer().is_empty());
        let old = c.replace_rx(vec![0; big.len()]).unwrap();
        assert_eq!(old.len(), MIN);
        assert_eq!(c.rx_buffered(), MIN);
        assert_eq!(c.handle_input(now, &big[MIN..]), big.len() - MIN);
        assert_eq!(drain(&mut c, now), [Owned::Message(1, vec![b'b'; 150])]);
        assert_eq!(c.rx_wanted(), None);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Ack(1)));
    }

    #[test]
    fn without_growth_the_session_waits_without_spinning() {
        let now = Instant::ZERO;
        let mut c = open_client(MIN);
        let big = msg(1, &[b'b'; 150]);
        c.handle_input(now, &big);
        for _ in 0..100 {
            assert_eq!(drain(&mut c, now), []);
            assert!(c.input_buffer().is_empty());
            assert_eq!(c.handle_input(now, &big[MIN..]), 0);
            assert_eq!(c.rx_wanted(), Some(big.len()));
        }
        // Timers still run: the keepalive goes out, then the idle timeout ends it.
        let mut t = now;
        while let Some(deadline) = c.poll_timeout() {
            assert!(deadline >= t);
            t = deadline;
            c.handle_timeout(t);
            let _ = transmit(&mut c, usize::MAX);
            if c.is_closed() {
                break;
            }
        }
        assert_eq!(drain(&mut c, t), [Owned::Closed(Closure::Aborted(Code::IdleTimeout))]);
        assert_eq!(c.rx_wanted(), None);
    }

    #[test]
    fn oversize_length_still_errors_from_the_header_alone() {
        let now = Instant::ZERO;
        let mut c = open_client(MIN);
        c.handle_input(now, &[0x10, 0, 0, 0x10, 0]);
        assert_eq!(drain(&mut c, now), [Owned::Closed(Closure::Aborted(Code::TooLarge))]);
        assert_eq!(c.rx_wanted(), None);
        assert_eq!(transmit(&mut c, usize::MAX), frame(Repr::Error(Code::TooLarge)));
    }

    #[test]
    fn shrinking_after_the_large_frame() {
        let now = Instant::ZERO;
        let mut c = open_client(MIN);
        let events = feed_growing(&mut c, &msg(1, &[7; 200]), usize::MAX, 0);
        assert_eq!(events, [Owned::Message(1, vec![7; 200])]);
        // `feed_growing` shrank it back once the frame was consumed.
        assert!(!c.rx_shrinkable(MIN));
        c.handle_input(now, &msg(2, b"small again"));
        assert_eq!(drain(&mut c, now), [Owned::Message(2, b"small again".to_vec())]);
        // Not shrinkable below what is buffered or the frame in progress.
        let mut c = open_client(MIN);
        c.replace_rx(vec![0; 300]).unwrap();
        c.handle_input(now, &msg(1, &[1; 150])[..100]);
        drain(&mut c, now);
        assert!(!c.rx_shrinkable(MIN), "frame in progress needs 163");
        assert!(c.rx_shrinkable(163));
        assert!(!c.rx_shrinkable(MIN - 1));
    }

    #[test]
    fn replace_rx_refuses_a_buffer_that_cannot_hold_what_is_buffered() {
        let now = Instant::ZERO;
        let mut c = open_client(MIN);
        c.replace_rx(vec![0; 300]).unwrap();
        let big = msg(1, &[3; 150]);
        c.handle_input(now, &big[..100]);
        drain(&mut c, now);
        assert_eq!(c.replace_rx(vec![0; 99]).map_err(|b| b.len()).err(), Some(99));
        assert_eq!(c.replace_rx(vec![0; MIN - 1]).map_err(|b| b.len()).err(), Some(MIN - 1));
        assert_eq!(c.rx_buffered(), 100);
        // Smaller than the frame is allowed: the session just asks again.
        assert_eq!(c.replace_rx(vec![0; 100]).map(|b| b.len()).ok(), Some(300));
        drain(&mut c, now);
        assert_eq!(c.rx_wanted(), Some(big.len()));
        c.replace_rx(vec![0; big.len()]).unwrap();
        c.handle_input(now, &big[100..]);
        assert_eq!(drain(&mut c, now), [Owned::Message(1, vec![3; 150])]);
    }

    #[test]
    fn replace_rx_while_a_message_is_held() {
        let now = Instant::ZERO;
        let mut c = open_client(MIN);
        let stream = [msg(1, b"first"), msg(2, &[9; 100])].concat();
        let n = c.handle_input(now, &stream);
        assert!(matches!(c.poll_event(now), Some(Event::Message { seq: 1, .. })));
        // The message's bytes are released by the next poll_event, in the new buffer.
        c.replace_rx(vec![0; 120]).unwrap();
        assert_eq!(c.poll_event(now), None);
        c.handle_input(now, &stream[n..]);
        assert_eq!(drain(&mut c, now), [Owned::Message(2, vec![9; 100])]);
    }

    #[test]
    fn payloads_taken_since_the_last_read_stay_in_the_buffer_swapped_out() {
        let now = Instant::ZERO;
        let mut c = open_client(MIN);
        c.replace_rx(vec![0; 400]).unwrap();
        let third = msg(3, &[7; 100]);
        let stream = [msg(1, &[5; 150]), msg(2, b"second"), third[..40].to_vec()].concat();
        assert_eq!(c.handle_input(now, &stream), stream.len());
        let base = c.rx_buffer().as_ptr() as usize;
        assert_eq!(c.rx_buffer().len(), 400);
        let mut taken = StdVec::new();
        while let Some(event) = c.poll_event(now) {
            if let Event::Message { seq, payload } = event {
                taken.push((seq, payload.as_ptr() as usize - base, payload.to_vec()));
            }
        }
        assert_eq!(taken.len(), 2);
        let old = c.replace_rx(vec![0; 400]).unwrap();
        for (seq, at, payload) in &taken {
            assert_eq!(&old[*at..*at + payload.len()], payload, "message {seq}");
        }
        // The new buffer holds only the frame in progress, and the session goes on.
        assert_eq!(c.rx_buffered(), 40);
        c.handle_input(now, &third[40..]);
        assert_eq!(drain(&mut c, now), [Owned::Message(3, vec![7; 100])]);
    }

    #[test]
    fn any_chunking_and_growth_delay_give_the_same_messages() {
        let payloads: StdVec<StdVec<u8>> = (0..12u8)
            .map(|i| vec![i; [0, 5, 200, 55, 56, 120][usize::from(i) % 6]])
            .collect();
        let stream: StdVec<u8> = payloads
            .iter()
            .enumerate()
            .flat_map(|(i, p)| msg(i as u64 + 1, p))
            .collect();
        let expected: StdVec<Owned> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Owned::Message(i as u64 + 1, p.clone()))
            .collect();
        for chunk in [1, 2, 7, 13, 64, 68, 100, 1000] {
            for delay in [0, 1, 3] {
                let mut c = open_client(MIN);
                assert_eq!(
                    feed_growing(&mut c, &stream, chunk, delay),
                    expected,
                    "chunk {chunk} delay {delay}"
                );
            }
        }
    }

    #[test]
    fn full_size_rx_never_asks() {
        let now = Instant::ZERO;
        let mut c = open_client(Small::min_rx_len(CFG.max_message));
        let big = msg(1, &[1; 200]);
        for b in &big {
            c.handle_input(now, &[*b]);
            drain(&mut c, now);
            assert_eq!(c.rx_wanted(), None);
        }
    }

    #[cfg(feature = "server")]
    #[test]
    fn server_handshake_fits_the_minimum() {
        let now = Instant::ZERO;
        let mut s: Small = Session::server(CFG, vec![0; MIN], [0; 512], now).unwrap();
        let longest = "n".repeat(MAX_NAME_LEN);
        let opening = [&MAGIC[..], &hello_bytes(&longest)].concat();
        assert_eq!(opening.len(), MIN);
        assert_eq!(s.handle_input(now, &opening), MIN);
        assert!(matches!(drain(&mut s, now)[..], [Owned::Hello { .. }]));
        assert_eq!(s.rx_wanted(), None);
    }

    #[cfg(all(feature = "server", feature = "plain"))]
    #[test]
    fn plain_line_longer_than_a_small_rx_asks_for_the_full_buffer() {
        let now = Instant::ZERO;
        let mut s: Small = Session::server(CFG, vec![0; MIN], [0; 512], now).unwrap();
        s.handle_input(now, b"x");
        drain(&mut s, now);
        s.accept(1, None).unwrap();
        drain(&mut s, now);
        let line = [&[b'y'; 150][..], b"\n"].concat();
        let n = s.handle_input(now, &line);
        assert_eq!(drain(&mut s, now), []);
        assert_eq!(s.rx_wanted(), Some(Small::min_rx_len(CFG.max_message)));
        s.replace_rx(vec![0; Small::min_rx_len(CFG.max_message)]).unwrap();
        s.handle_input(now, &line[n..]);
        let mut expected = vec![b'x'];
        expected.extend([b'y'; 150]);
        assert_eq!(drain(&mut s, now), [Owned::Message(1, expected)]);
        // Past the grown buffer, the line limit is max_message as ever.
        s.handle_input(now, &[b'z'; 250]);
        assert_eq!(drain(&mut s, now), [Owned::Closed(Closure::Aborted(Code::TooLarge))]);
    }
}
