//! Session tests, grouped by state, on a deterministic two-session harness.

use std::vec;
use std::vec::Vec as StdVec;

use super::*;

type TestSession = Session<[u8; 256], [u8; 512]>;

const CFG: Config = Config {
    max_message: 200,
    ..Config::DEFAULT
};

/// Two sessions joined by in-memory pipes on virtual time (quinn's `Pair`).
struct Pair {
    client: TestSession,
    server: TestSession,
    now: Instant,
    /// Bytes in flight client → server and server → client.
    c2s: StdVec<u8>,
    s2c: StdVec<u8>,
    /// Largest chunk moved per step (to exercise splits).
    chunk: usize,
    client_events: StdVec<Owned>,
    server_events: StdVec<Owned>,
    auto_accept: bool,
}

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

fn drain(s: &mut TestSession, now: Instant) -> StdVec<Owned> {
    let mut out = StdVec::new();
    while let Some(e) = s.poll_event(now) {
        out.push(own(e));
        assert!(out.len() < 100_000, "event storm");
    }
    out
}

fn transmit(s: &mut TestSession, max: usize) -> StdVec<u8> {
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

impl Pair {
    fn new() -> Pair {
        Pair::with(CFG, CFG, "ana")
    }

    fn with(ccfg: Config, scfg: Config, name: &str) -> Pair {
        let now = Instant::from_millis(1_000);
        Pair {
            client: Session::client(ccfg, name, [0; 256], [0; 512], now).unwrap(),
            server: Session::server(scfg, [0; 256], [0; 512], now).unwrap(),
            now,
            c2s: StdVec::new(),
            s2c: StdVec::new(),
            chunk: usize::MAX,
            client_events: StdVec::new(),
            server_events: StdVec::new(),
            auto_accept: true,
        }
    }

    /// One round: each side transmits, bytes move (at most `chunk` per direction),
    /// each side takes input and reports events. Returns whether anything moved.
    fn step(&mut self) -> bool {
        let now = self.now;
        self.c2s.extend(transmit(&mut self.client, usize::MAX));
        self.s2c.extend(transmit(&mut self.server, usize::MAX));
        let mut moved = false;
        for (bytes, to) in [(&mut self.c2s, &mut self.server), (&mut self.s2c, &mut self.client)] {
            let n = bytes.len().min(self.chunk);
            if n > 0 {
                let took = to.handle_input(now, &bytes[..n]);
                bytes.drain(..took);
                moved |= took > 0;
            }
        }
        let ev = drain(&mut self.server, now);
        for e in &ev {
            if let (Owned::Hello { .. }, true) = (e, self.auto_accept) {
                self.server.accept(42, None).unwrap();
            }
        }
        moved |= !ev.is_empty();
        self.server_events.extend(ev);
        let ev = drain(&mut self.client, now);
        moved |= !ev.is_empty();
        self.client_events.extend(ev);
        moved || self.client.wants_transmit() || self.server.wants_transmit()
    }

    /// Steps until nothing moves (bounded).
    fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("pair did not settle");
    }

    /// Advances virtual time to the earliest deadline and fires it.
    fn advance_to_next_timeout(&mut self) {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let next = next.expect("no timer");
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    fn established() -> Pair {
        let mut p = Pair::new();
        p.run();
        assert!(p.client.is_open() && p.server.is_open());
        p.client_events.clear();
        p.server_events.clear();
        p
    }

    fn server_messages(&self) -> StdVec<(u64, StdVec<u8>)> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                Owned::Message(s, p) => Some((*s, p.clone())),
                _ => None,
            })
            .collect()
    }
}

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
        assert_eq!(p.server.peer_name(), "ana");
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
        assert!(p.server_events.contains(&Owned::Closed(Closure::Orderly {
            code: Code::Shutdown,
            by_peer: false
        })));
    }
}
