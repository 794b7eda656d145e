//! Secure layer tests: handshakes through the layer, refusals, damaged records, timers,
//! the spec's test vectors (PROTOCOL.md §10.8) and two sessions over two layers.

use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::secure::keys::tests::hex32;

type Layer = Secure<[u8; 2048], [u8; 2048]>;

const T0: Instant = Instant::from_millis(1_000);

/// PROTOCOL.md §10.8: the server's and the client's static keys are RFC 7748 §6.1's
/// Bob and Alice; the ephemeral keys are the bytes 0x20…0x3f and 0x40…0x5f.
fn server_secret() -> SecretKey {
    SecretKey::from_bytes(hex32(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ))
}
fn client_secret() -> SecretKey {
    SecretKey::from_bytes(hex32(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ))
}
fn seq32(first: u8) -> [u8; 32] {
    core::array::from_fn(|i| first + i as u8)
}

fn client_with(server: PublicKey) -> Layer {
    Secure::client(
        Config::DEFAULT,
        &client_secret(),
        server,
        seq32(0x20),
        [0; 2048],
        [0; 2048],
        T0,
    )
    .unwrap()
}
fn client() -> Layer {
    client_with(server_secret().public_key())
}
fn server() -> Layer {
    Secure::server(Config::DEFAULT, &server_secret(), seq32(0x40), [0; 2048], [0; 2048], T0).unwrap()
}

/// Everything `from` has to transmit.
fn drain(from: &mut Layer) -> Vec<u8> {
    let out = from.poll_transmit().to_vec();
    from.advance_transmit(out.len());
    out
}

/// The plaintext `layer` holds, taken.
fn take_plain(layer: &mut Layer) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let p = layer.poll_plaintext().to_vec();
        if p.is_empty() {
            return all;
        }
        all.extend_from_slice(&p);
        layer.advance_plaintext(p.len()).unwrap();
    }
}

/// Client and server layers through the handshake: the client's early data is
/// `hello`, the server answers with `welcome`. Returns the wire bytes of each step.
struct Handshook {
    client: Layer,
    server: Layer,
    init: Vec<u8>,
    resp: Vec<u8>,
    confirm: Vec<u8>,
}

fn handshake(hello: &[u8], welcome: &[u8]) -> Handshook {
    let mut client = client();
    let mut server = server();
    assert_eq!(client.seal(hello), Ok(hello.len()));
    let init = drain(&mut client);
    assert_eq!(server.handle_input(T0, &init), Ok(init.len()));
    assert_eq!(
        server.poll_event(),
        Some(Event::ClientKey(client_secret().public_key()))
    );
    assert!(server.poll_plaintext().is_empty(), "held until accepted");
    server.accept().unwrap();
    assert_eq!(take_plain(&mut server), hello);
    assert_eq!(server.seal(welcome), Ok(welcome.len()));
    let resp = drain(&mut server);
    assert_eq!(client.handle_input(T0, &resp), Ok(resp.len()));
    assert_eq!(client.poll_event(), Some(Event::Established));
    assert_eq!(take_plain(&mut client), welcome);
    let confirm = drain(&mut client);
    assert!(!server.is_established());
    server.handle_input(T0, &confirm).unwrap();
    assert_eq!(server.poll_event(), Some(Event::Established));
    assert!(server.is_established() && client.is_established());
    assert_eq!(server.poll_timeout(), None);
    Handshook {
        client,
        server,
        init,
        resp,
        confirm,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    let s: std::string::String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// PROTOCOL.md §6.1: magic + HELLO "ana", magic + WELCOME, MSG 1 "hi".
const HELLO_ANA: &str = "fe535154 01 0000001e 01 00 00010000 00007530 0000000000000000 0000000000000000 03 616e61";
const WELCOME_NEW: &str = "fe535154 02 0000001a 01 00 00010000 00007530 0102030405060708 0000000000000000";
const MSG_HI: &str = "10 0000000a 0000000000000001 6869";

// ---- handshake ----

#[test]
fn handshake_carries_early_data_both_ways() {
    let h = handshake(b"hello", b"welcome");
    assert!(h.init.starts_with(&MAGIC) && h.resp.starts_with(&MAGIC));
    for (wire, clear) in [(&h.init, &b"hello"[..]), (&h.resp, &b"welcome"[..])] {
        assert!(!wire.windows(clear.len()).any(|w| w == clear), "early data in clear");
    }
    let client_public = client_secret().public_key();
    assert!(
        !h.init.windows(32).any(|w| w == client_public.as_bytes()),
        "client key in clear"
    );
    assert_eq!(h.init.len(), 4 + 3 + 98 + 5);
    assert_eq!(h.resp.len(), 4 + 3 + 50 + 7);
    assert_eq!(h.confirm.len(), HEADER_LEN + TAG_LEN, "an empty data record");
    assert_eq!(h.server.peer_key(), Some(client_secret().public_key()));
    assert_eq!(h.client.peer_max_record(), 2048 - 19);
}

#[test]
fn a_server_can_answer_the_handshake_before_its_session_does() {
    let mut client = client();
    let mut server = server();
    client.seal(b"hello").unwrap();
    let init = drain(&mut client);
    server.handle_input(T0, &init).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::ClientKey(_))));
    assert_eq!(
        server.respond(),
        Err(Error::WrongState),
        "not before the key is accepted"
    );
    server.accept().unwrap();
    assert_eq!(take_plain(&mut server), b"hello");
    // The session's answer waits for step 7; the handshake does not.
    server.respond().unwrap();
    let resp = drain(&mut server);
    assert_eq!(resp.len(), 4 + 3 + 50, "RESP without early data");
    assert_eq!(server.respond(), Err(Error::WrongState), "once");
    client.handle_input(T0, &resp).unwrap();
    assert_eq!(client.poll_event(), Some(Event::Established));
    assert!(take_plain(&mut client).is_empty());
    server.handle_input(T0, &drain(&mut client)).unwrap();
    assert_eq!(server.poll_event(), Some(Event::Established));
    // Now the answer, in a data record.
    assert_eq!(server.seal(b"welcome"), Ok(7));
    client.handle_input(T0, &drain(&mut server)).unwrap();
    assert_eq!(take_plain(&mut client), b"welcome");
}

#[test]
fn records_flow_both_ways_after_the_handshake() {
    let mut h = handshake(b"", b"w");
    assert_eq!(h.client.seal(b"from client"), Ok(11));
    let rec = drain(&mut h.client);
    assert!(!rec.windows(4).any(|w| w == b"from"), "encrypted on the wire");
    h.server.handle_input(T0, &rec).unwrap();
    assert_eq!(take_plain(&mut h.server), b"from client");
    assert_eq!(h.server.seal(b"from server"), Ok(11));
    let rec = drain(&mut h.server);
    h.client.handle_input(T0, &rec).unwrap();
    assert_eq!(take_plain(&mut h.client), b"from server");
}

#[test]
fn long_input_is_split_into_records_of_the_peer_maximum() {
    let mut h = handshake(b"", b"w");
    let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    while sent < data.len() {
        sent += h.client.seal(&data[sent..]).unwrap();
        let wire = drain(&mut h.client);
        let mut off = 0;
        while off < wire.len() {
            off += h.server.handle_input(T0, &wire[off..]).unwrap();
            got.extend(take_plain(&mut h.server));
        }
    }
    assert_eq!(got, data);
}

#[test]
fn buffers_below_the_minimum_are_refused() {
    let e = Secure::server(Config::DEFAULT, &server_secret(), [0; 32], [0u8; 383], [0u8; 384], T0);
    assert_eq!(e.unwrap_err(), Error::BufferTooSmall);
}

// ---- keys ----

#[test]
fn wrong_server_key_fails_on_the_server_and_is_refused_to_the_client() {
    let other = SecretKey::from_bytes([9; 32]).public_key();
    let mut client = client_with(other);
    let mut server = server();
    client.seal(b"secret hello").unwrap();
    let init = drain(&mut client);
    assert_eq!(server.handle_input(T0, &init), Err(Error::HandshakeFailed));
    assert_eq!(server.poll_event(), None, "no key reported");
    let alert = drain(&mut server);
    assert_eq!(alert, unhex("fe53514e 04 0001 40"));
    assert!(server.is_finished());
    assert_eq!(
        client.handle_input(T0, &alert),
        Err(Error::Refused(Alert::HandshakeFailed))
    );
    assert!(client.poll_transmit().is_empty());
}

#[test]
fn server_without_the_key_is_not_authenticated_and_gets_nothing() {
    // A man in the middle answers with its own key: it cannot read the client's first
    // message, so its answer cannot decrypt.
    let mut client = client();
    client.seal(b"hello").unwrap();
    let _ = drain(&mut client);
    let mitm_key = SecretKey::from_bytes([7; 32]);
    let mut mitm_client = Secure::<[u8; 2048], [u8; 2048]>::client(
        Config::DEFAULT,
        &client_secret(),
        mitm_key.public_key(),
        [1; 32],
        [0; 2048],
        [0; 2048],
        T0,
    )
    .unwrap();
    let mut mitm =
        Secure::<[u8; 2048], [u8; 2048]>::server(Config::DEFAULT, &mitm_key, [2; 32], [0; 2048], [0; 2048], T0)
            .unwrap();
    mitm_client.seal(b"").unwrap();
    mitm.handle_input(T0, &drain(&mut mitm_client)).unwrap();
    mitm.accept().unwrap();
    mitm.seal(b"welcome").unwrap();
    let forged = drain(&mut mitm);
    assert_eq!(client.handle_input(T0, &forged), Err(Error::ServerNotAuthenticated));
    assert!(client.poll_plaintext().is_empty());
    assert_eq!(client.seal(b"message"), Err(Error::ServerNotAuthenticated));
    assert!(client.poll_transmit().is_empty(), "sends nothing more");
}

#[test]
fn unknown_client_key_is_refused_before_its_bytes_reach_the_session() {
    let mut client = client();
    let mut server = server();
    client.seal(b"hello").unwrap();
    server.handle_input(T0, &drain(&mut client)).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::ClientKey(_))));
    server.refuse(Alert::UnknownKey).unwrap();
    assert!(server.poll_plaintext().is_empty());
    assert_eq!(server.error(), Some(Error::KeyRefused(Alert::UnknownKey)));
    let alert = drain(&mut server);
    assert_eq!(alert, unhex("fe53514e 04 0001 41"));
    assert_eq!(client.handle_input(T0, &alert), Err(Error::Refused(Alert::UnknownKey)));
    assert_eq!(server.accept(), Err(Error::KeyRefused(Alert::UnknownKey)));
}

#[test]
fn accept_and_refuse_outside_their_state_are_wrong_state() {
    let mut h = handshake(b"", b"w");
    assert_eq!(h.server.accept(), Err(Error::WrongState));
    assert_eq!(h.server.refuse(Alert::UnknownKey), Err(Error::WrongState));
    let mut s = server();
    assert_eq!(s.accept(), Err(Error::WrongState));
}

// ---- bad records ----

#[test]
fn every_flipped_byte_of_a_data_record_is_an_error() {
    let h = handshake(b"", b"w");
    let mut client = h.client;
    client.seal(b"payload").unwrap();
    let rec = drain(&mut client);
    for i in 0..rec.len() {
        for bit in [0x01, 0x80] {
            let mut server = handshake(b"", b"w").server;
            let mut bad = rec.clone();
            bad[i] ^= bit;
            let r = server.handle_input(T0, &bad);
            let eof = server.handle_eof(T0);
            assert!(r.is_err() || eof.is_err(), "byte {i} bit {bit:#x} accepted");
            assert!(take_plain(&mut server).is_empty());
            assert!(server.poll_transmit().is_empty(), "no alert after the handshake");
        }
    }
}

#[test]
fn truncated_record_at_end_of_stream_is_truncated() {
    let mut h = handshake(b"", b"w");
    h.client.seal(b"payload").unwrap();
    let rec = drain(&mut h.client);
    assert_eq!(h.server.handle_input(T0, &rec[..rec.len() - 1]), Ok(rec.len() - 1));
    assert!(take_plain(&mut h.server).is_empty());
    assert_eq!(h.server.handle_eof(T0), Err(Error::Truncated));
}

#[test]
fn reordered_records_are_bad() {
    let mut h = handshake(b"", b"w");
    h.client.seal(b"one").unwrap();
    let one = drain(&mut h.client);
    h.client.seal(b"two").unwrap();
    let two = drain(&mut h.client);
    assert_eq!(h.server.handle_input(T0, &two), Err(Error::BadRecord));
    assert_eq!(h.server.handle_input(T0, &one), Err(Error::BadRecord), "stays failed");
}

#[test]
fn replayed_record_is_bad() {
    let mut h = handshake(b"", b"w");
    h.client.seal(b"one").unwrap();
    let one = drain(&mut h.client);
    h.server.handle_input(T0, &one).unwrap();
    assert_eq!(take_plain(&mut h.server), b"one");
    assert_eq!(h.server.handle_input(T0, &one), Err(Error::BadRecord));
}

#[test]
fn oversize_record_is_refused_from_its_header() {
    let mut h = handshake(b"", b"w");
    let max = 2048 - HEADER_LEN - TAG_LEN;
    let len = (max + TAG_LEN + 1) as u16;
    let [hi, lo] = len.to_be_bytes();
    assert_eq!(h.server.handle_input(T0, &[0x03, hi, lo]), Err(Error::TooLarge));
}

#[test]
fn records_out_of_place_are_unexpected_and_unknown_types_unknown() {
    let mut h = handshake(b"", b"w");
    assert_eq!(
        h.server.handle_input(T0, &unhex("04 0001 41")),
        Err(Error::UnexpectedRecord)
    );
    let mut s = server();
    assert_eq!(
        s.handle_input(T0, &unhex("fe53514e 03 0010")),
        Err(Error::UnexpectedRecord)
    );
    assert_eq!(drain(&mut s), unhex("fe53514e 04 0001 24"));
    let mut s = server();
    assert_eq!(
        s.handle_input(T0, &unhex("fe53514e 09 0000")),
        Err(Error::UnknownRecord)
    );
    let mut s = server();
    assert_eq!(s.handle_input(T0, &unhex("fe53514e 01 0010")), Err(Error::Malformed));
    let mut s = server();
    assert_eq!(s.handle_input(T0, &unhex("fe53514e 01 ffff")), Err(Error::Malformed));
    assert_eq!(drain(&mut s), unhex("fe53514e 04 0001 20"));
    let mut s = server();
    assert_eq!(s.handle_input(T0, &unhex("fe535154")), Err(Error::NotSecure));
    assert!(s.poll_transmit().is_empty());
}

#[test]
fn client_rejects_an_answer_without_the_magic() {
    let mut c = client();
    c.seal(b"").unwrap();
    assert_eq!(
        c.handle_input(T0, b"ERR peer does not speak soquete\n"),
        Err(Error::NotSecure)
    );
}

// ---- replay and timers ----

#[test]
fn replayed_handshake_never_establishes_and_times_out() {
    let h = handshake(b"hello", b"welcome");
    // Someone recorded the first message and the client's records, and replays them
    // to the same server on a new connection.
    let mut replay = Secure::<[u8; 2048], [u8; 2048]>::server(
        Config::DEFAULT,
        &server_secret(),
        seq32(0x60),
        [0; 2048],
        [0; 2048],
        T0,
    )
    .unwrap();
    replay.handle_input(T0, &h.init).unwrap();
    assert!(matches!(replay.poll_event(), Some(Event::ClientKey(_))));
    replay.accept().unwrap();
    let _ = take_plain(&mut replay);
    replay.seal(b"welcome").unwrap();
    let _ = drain(&mut replay);
    assert!(!replay.is_established());
    assert_eq!(replay.handle_input(T0, &h.confirm), Err(Error::BadRecord));

    let mut replay = server();
    replay.handle_input(T0, &h.init).unwrap();
    replay.accept().unwrap();
    replay.seal(b"welcome").unwrap();
    let _ = drain(&mut replay);
    let deadline = replay.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + Duration::from_secs(10));
    replay.handle_timeout(deadline);
    assert_eq!(replay.error(), Some(Error::HandshakeTimeout));
    assert_eq!(replay.poll_event(), None);
}

#[test]
fn handshake_timeout_on_both_sides() {
    let mut s = server();
    s.handle_input(T0, &MAGIC[..2]).unwrap();
    s.handle_timeout(T0 + Duration::from_millis(9_999));
    assert_eq!(s.error(), None);
    s.handle_timeout(T0 + Duration::from_secs(10));
    assert_eq!(s.error(), Some(Error::HandshakeTimeout));
    assert_eq!(drain(&mut s), unhex("fe53514e 04 0001 03"));

    let mut c = client();
    c.seal(b"").unwrap();
    let _ = drain(&mut c);
    c.handle_timeout(T0 + Duration::from_secs(10));
    assert_eq!(c.error(), Some(Error::HandshakeTimeout));
    assert!(c.poll_transmit().is_empty());
}

#[test]
fn end_of_stream_during_the_handshake_is_truncated() {
    let mut s = server();
    s.handle_input(T0, &MAGIC).unwrap();
    assert_eq!(s.handle_eof(T0), Err(Error::Truncated));
    let mut h = handshake(b"", b"w");
    assert_eq!(h.server.handle_eof(T0), Ok(()), "between records");
}

// ---- test vectors (PROTOCOL.md §10.8) ----

const VECTOR_INIT: &str = "fe53514e010089358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd16625445ebcfe320f8f3c75e17816cb3038c44066fffbe4455a122d24f9d63f3beafda2fbc8f1ecd1e158804da994da0e7dab03c06e1fc2cc2f2482dbb5c460d94f08a4580d185fa0df4733498e6df5e5f7718d600d096a513d20319de31daddd4eaff659d93f99519aa87e9";
const VECTOR_RESP: &str = "fe53514e02005579a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a218d7d349ac1b42c31b401eefe0263bd2a3d5ccff849a9ecd8de97e0fe36ef127dff903a68c900060ac571c865b9c5cc111f46e8f6";
const VECTOR_CONFIRM: &str = "03001081a98f59c4643a78570228e836e7e513";
const VECTOR_MSG_HI: &str = "03001f2ff81db30974366b87a461a99b0b6d2870bda4a13a4aa5bf7917c3b5ebc152";

#[test]
fn spec_test_vectors() {
    let mut h = handshake(&unhex(HELLO_ANA), &unhex(WELCOME_NEW));
    h.client.seal(&unhex(MSG_HI)).unwrap();
    let msg = drain(&mut h.client);
    assert_eq!(
        server_secret().public_key(),
        PublicKey::from_bytes(hex32(
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
        ))
    );
    assert_eq!(h.init, unhex(VECTOR_INIT));
    assert_eq!(h.resp, unhex(VECTOR_RESP));
    assert_eq!(h.confirm, unhex(VECTOR_CONFIRM));
    assert_eq!(msg, unhex(VECTOR_MSG_HI));
    h.server.handle_input(T0, &msg).unwrap();
    assert_eq!(take_plain(&mut h.server), unhex(MSG_HI));
}

// ---- two sessions over two layers ----

#[cfg(feature = "server")]
mod sessions {
    use super::*;
    use crate::{Config as SessionConfig, Event as SessionEvent};

    type Sess = Session<[u8; 1100], [u8; 2048]>;

    fn session_config() -> SessionConfig {
        SessionConfig {
            max_message: 65536,
            idle_timeout: crate::Duration::from_secs(30),
            ..SessionConfig::DEFAULT
        }
    }
    fn client_session() -> Sess {
        Session::client(session_config(), "ana", [0; 1100], [0; 2048], T0).unwrap()
    }
    fn server_session() -> Sess {
        Session::server(session_config(), [0; 1100], [0; 2048], T0).unwrap()
    }

    struct Pair {
        c: Layer,
        s: Layer,
        cs: Sess,
        ss: Sess,
    }

    fn cross(now: Instant, wire: &[u8], chunk: usize, to: &mut Layer, sess: &mut Sess) {
        let mut off = 0;
        while off < wire.len() {
            let end = (off + chunk).min(wire.len());
            off += to.handle_input(now, &wire[off..end]).unwrap();
            to.deliver(now, sess).unwrap();
        }
        to.deliver(now, sess).unwrap();
    }

    impl Pair {
        /// One round: each side seals its session's output, the bytes cross (in chunks of
        /// `chunk`), and each layer delivers to its session.
        fn step(&mut self, now: Instant, chunk: usize) {
            self.c.seal_from(&mut self.cs).unwrap();
            self.s.seal_from(&mut self.ss).unwrap();
            let to_server = drain(&mut self.c);
            let to_client = drain(&mut self.s);
            cross(now, &to_server, chunk, &mut self.s, &mut self.ss);
            cross(now, &to_client, chunk, &mut self.c, &mut self.cs);
            while let Some(e) = self.s.poll_event() {
                if let Event::ClientKey(_) = e {
                    self.s.accept().unwrap();
                }
            }
            while self.c.poll_event().is_some() {}
        }
    }

    #[test]
    fn two_sessions_talk_through_two_secure_layers() {
        let mut p = Pair {
            c: client(),
            s: server(),
            cs: client_session(),
            ss: server_session(),
        };
        let mut got_server = Vec::new();
        let mut got_client = Vec::new();
        let mut sent = 0;
        for round in 0..40 {
            let now = T0 + Duration::from_millis(round);
            p.step(now, 7);
            while let Some(e) = p.ss.poll_event(now) {
                match e {
                    SessionEvent::Hello { name, .. } => {
                        assert_eq!(name, "ana");
                        p.ss.accept(0x0102030405060708, None).unwrap();
                    }
                    SessionEvent::Message { payload, .. } => got_server.push(payload.to_vec()),
                    _ => {}
                }
            }
            while let Some(e) = p.cs.poll_event(now) {
                if let SessionEvent::Message { payload, .. } = e {
                    got_client.push(payload.to_vec());
                }
            }
            if p.cs.is_open() && sent < 5 {
                p.cs.send(std::format!("c{sent}").as_bytes()).unwrap();
                p.ss.send(std::format!("s{sent}").as_bytes()).unwrap();
                sent += 1;
            }
        }
        assert!(p.c.is_established() && p.s.is_established());
        let want = |c: char| (0..5).map(|i| std::format!("{c}{i}").into_bytes()).collect::<Vec<_>>();
        assert_eq!(got_server, want('c'));
        assert_eq!(got_client, want('s'));
        assert_eq!(p.cs.unacked(), 0);
        assert_eq!(p.ss.unacked(), 0);
    }

    #[test]
    fn first_message_goes_out_one_round_trip_after_connecting() {
        let mut p = Pair {
            c: client(),
            s: server(),
            cs: client_session(),
            ss: server_session(),
        };
        // C → S: INIT with magic + HELLO.
        p.c.seal_from(&mut p.cs).unwrap();
        p.s.handle_input(T0, &drain(&mut p.c)).unwrap();
        assert!(matches!(p.s.poll_event(), Some(Event::ClientKey(_))));
        p.s.accept().unwrap();
        p.s.deliver(T0, &mut p.ss).unwrap();
        assert!(matches!(p.ss.poll_event(T0), Some(SessionEvent::Hello { .. })));
        p.ss.accept(7, None).unwrap();
        // S → C: RESP with magic + WELCOME.
        p.s.seal_from(&mut p.ss).unwrap();
        p.c.handle_input(T0, &drain(&mut p.s)).unwrap();
        p.c.deliver(T0, &mut p.cs).unwrap();
        while p.cs.poll_event(T0).is_some() {}
        assert!(p.cs.is_open(), "one round trip");
        assert_eq!(p.cs.send(b"hi"), Ok(1));
    }
}

// ---- properties ----

proptest! {
    /// Any split of the ciphertext stream gives the same plaintext.
    #[test]
    fn any_split_gives_the_same_plaintext(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
        cuts in proptest::collection::vec(1usize..200, 1..20),
    ) {
        let mut h = handshake(b"", b"w");
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for c in &chunks {
            prop_assert_eq!(h.client.seal(c), Ok(c.len()));
            wire.extend(drain(&mut h.client));
            want.extend_from_slice(c);
        }
        let mut got = Vec::new();
        let mut off = 0;
        for cut in cuts.iter().cycle() {
            if off >= wire.len() { break; }
            let end = (off + cut).min(wire.len());
            off += h.server.handle_input(T0, &wire[off..end]).unwrap();
            got.extend(take_plain(&mut h.server));
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(h.server.handle_eof(T0), Ok(()));
    }

    /// Arbitrary bytes after the magic never panic and never take more than `rx`.
    #[test]
    fn random_bytes_are_a_clean_error(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut s = server();
        let mut input = MAGIC.to_vec();
        input.extend(bytes);
        let mut off = 0;
        while off < input.len() {
            match s.handle_input(T0, &input[off..]) {
                Ok(0) => break,
                Ok(n) => off += n,
                Err(_) => break,
            }
            if s.poll_event().is_some() {
                let _ = s.accept();
            }
            let _ = take_plain(&mut s);
        }
        prop_assert!(s.poll_transmit().len() <= 8);
    }
}
