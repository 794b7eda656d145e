//! Property tests of the public API: round trips, splits and hostile bytes.

use proptest::prelude::*;
use soquete_core::wire::{Frame, Hello, Repr, Welcome, MAGIC, MAX_NAME_LEN};
use soquete_core::{Code, Config, Instant, Mode, Session};
#[cfg(feature = "server")]
use soquete_core::{Duration, Event};

type S = Session<[u8; 600], [u8; 2048]>;
/// A session whose receive buffer can be swapped for a larger or smaller one.
#[cfg(feature = "server")]
type V = Session<Vec<u8>, Vec<u8>>;

const CFG: Config = Config {
    max_message: 512,
    ..Config::DEFAULT
};

fn code() -> impl Strategy<Value = Code> {
    any::<u8>().prop_map(Code::from_u8)
}

fn emit(repr: &Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0; repr.buffer_len()];
    assert_eq!(repr.emit(&mut buf), Ok(buf.len()));
    buf
}

/// Feeds `stream` to a fresh server in chunks of the given sizes (cycled), accepting
/// whatever says hello; returns the messages and whether the session ended.
#[cfg(feature = "server")]
fn serve(stream: &[u8], chunks: &[usize]) -> (Vec<Vec<u8>>, Option<soquete_core::Closure>) {
    let now = Instant::from_millis(1);
    serve_with(
        S::server(CFG, [0; 600], [0; 2048], now).unwrap(),
        stream,
        chunks,
        |_, _| {},
    )
}

/// [`serve`] with an `rx` that starts at `MIN_RX_LEN` and grows when the session asks,
/// after `delay` rounds of waiting; after round `i` it shrinks back to `MIN_RX_LEN`
/// when it can and `shrink[i]` (cycled) says so.
#[cfg(feature = "server")]
fn serve_lazily(
    stream: &[u8],
    chunks: &[usize],
    delay: usize,
    shrink: &[bool],
) -> (Vec<Vec<u8>>, Option<soquete_core::Closure>) {
    let now = Instant::from_millis(1);
    let s = V::server(CFG, vec![0; V::MIN_RX_LEN], vec![0; 2048], now).unwrap();
    let mut waited = 0;
    serve_with(s, stream, chunks, |s, round| {
        if let Some(want) = s.rx_wanted() {
            // Never more than a full-size buffer: a peer cannot make it grow further.
            assert!(want <= V::min_rx_len(CFG.max_message));
            waited += 1;
            if waited > delay {
                s.replace_rx(vec![0; want]).unwrap();
                waited = 0;
            }
        } else if shrink[round % shrink.len()] && s.rx_shrinkable(V::MIN_RX_LEN) {
            s.replace_rx(vec![0; V::MIN_RX_LEN]).unwrap();
        }
    })
}

/// The loop of [`serve`]: `each_round` runs after the events of every round.
#[cfg(feature = "server")]
fn serve_with<R, T>(
    mut s: Session<R, T>,
    stream: &[u8],
    chunks: &[usize],
    mut each_round: impl FnMut(&mut Session<R, T>, usize),
) -> (Vec<Vec<u8>>, Option<soquete_core::Closure>)
where
    R: AsRef<[u8]> + AsMut<[u8]>,
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let mut now = Instant::from_millis(1);
    let mut msgs = Vec::new();
    let mut closed = None;
    let mut rest = stream;
    let mut i = 0;
    let mut stalls = 0;
    while closed.is_none() {
        let want = chunks[i % chunks.len()].max(1).min(rest.len());
        i += 1;
        let took = s.handle_input(now, &rest[..want]);
        rest = &rest[took..];
        let mut count = 0;
        while let Some(e) = s.poll_event(now) {
            count += 1;
            assert!(count < 10_000, "event storm");
            match e {
                Event::Hello { .. } => s.accept(1, None).unwrap(),
                Event::Message { payload, .. } => msgs.push(payload.to_vec()),
                Event::Closed(c) => closed = Some(c),
                _ => {}
            }
        }
        each_round(&mut s, i);
        // Drain output as a transport would; it must stay bounded.
        let mut out = 0;
        loop {
            let n = s.poll_transmit().len();
            if n == 0 {
                break;
            }
            out += n;
            assert!(out < 1 << 20);
            s.advance_transmit(n);
        }
        if rest.is_empty() {
            if took == 0 {
                break;
            }
        } else if took == 0 {
            stalls += 1;
            if stalls > 8 {
                break;
            }
        } else {
            stalls = 0;
        }
        now = now + Duration::from_millis(7);
    }
    if closed.is_none() {
        s.handle_eof(now);
        while let Some(e) = s.poll_event(now) {
            match e {
                Event::Message { payload, .. } => msgs.push(payload.to_vec()),
                Event::Closed(c) => closed = Some(c),
                _ => {}
            }
        }
    }
    (msgs, closed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn repr_round_trips(
        kind in 0u8..9, a in any::<u64>(), b in any::<u64>(), m in any::<u32>(), idle in any::<u32>(),
        resumed in any::<bool>(), c in code(), name in "[a-zá-ú0-9 ]{0,10}", payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        prop_assume!(name.len() <= MAX_NAME_LEN);
        let repr = match kind {
            0 => Repr::Hello(Hello { max_message: m, idle_timeout_ms: idle, token: a, ack: b, name: &name }),
            1 => Repr::Welcome(Welcome { resumed, max_message: m, idle_timeout_ms: idle, token: a, ack: b }),
            2 => Repr::Refuse(c),
            3 => Repr::Msg { seq: a, payload: &payload },
            4 => Repr::Ack(a),
            5 => Repr::Ping(a),
            6 => Repr::Pong(a),
            7 => Repr::Close(c),
            _ => Repr::Error(c),
        };
        let bytes = emit(&repr);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(Repr::parse(&frame).unwrap(), repr);
    }

    #[cfg(feature = "server")]
    #[test]
    fn any_split_gives_the_same_messages(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=512), 0..40),
        chunks in prop::collection::vec(1usize..700, 1..20),
    ) {
        let mut stream = MAGIC.to_vec();
        stream.extend(emit(&Repr::Hello(Hello { max_message: 512, idle_timeout_ms: 0, token: 0, ack: 0, name: "p" })));
        for (i, m) in msgs.iter().enumerate() {
            stream.extend(emit(&Repr::Msg { seq: i as u64 + 1, payload: m }));
        }
        stream.extend(emit(&Repr::Close(Code::Normal)));
        let (got, closed) = serve(&stream, &chunks);
        prop_assert_eq!(got, msgs);
        prop_assert!(matches!(closed, Some(soquete_core::Closure::Orderly { by_peer: true, .. })), "{:?}", closed);
    }

    #[cfg(all(feature = "server", feature = "plain"))]
    #[test]
    fn any_split_of_plain_text_gives_the_same_lines(
        lines in prop::collection::vec("[ -~]{0,100}", 1..30),
        chunks in prop::collection::vec(1usize..300, 1..20),
    ) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        // Text must not start like the magic or like HTTP/TLS; a leading letter is enough.
        let text = format!("x{text}");
        let (got, _) = serve(text.as_bytes(), &chunks);
        let mut expected: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
        expected[0].insert(0, b'x');
        prop_assert_eq!(got, expected);
    }

    /// Binary data ends a plain-text session at the same line whatever the split: the
    /// lines before it are delivered, then `ERR wrong protocol` (§7.3).
    #[cfg(feature = "detect")]
    #[test]
    fn any_split_of_plain_text_with_binary_data_ends_at_the_same_line(
        lines in prop::collection::vec("[ -~]{0,100}", 1..10),
        bad_line in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select((0u8..0x20).filter(|b| !matches!(b, b'\n' | b'\r')).collect::<Vec<_>>()),
        chunks in prop::collection::vec(1usize..300, 1..20),
    ) {
        let mut lines: Vec<Vec<u8>> = lines.into_iter().map(String::into_bytes).collect();
        lines[0].insert(0, b'x');
        let bad_line = bad_line.index(lines.len());
        let bad = &mut lines[bad_line];
        bad.insert(at.index(bad.len() + 1), byte);
        let text: Vec<u8> = lines.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect();
        let (got, closed) = serve(&text, &chunks);
        let first_binary = lines
            .iter()
            .enumerate()
            .position(|(i, l)| soquete_core::wire::plain::is_binary(l, i == 0));
        let expected = lines[..first_binary.unwrap_or(lines.len())].to_vec();
        prop_assert_eq!(got, expected);
        if first_binary.is_some() {
            prop_assert_eq!(closed, Some(soquete_core::Closure::Aborted(soquete_core::Code::WrongProtocol)));
        }
    }

    #[cfg(feature = "server")]
    #[test]
    fn any_split_and_lazy_rx_growth_give_the_same_messages(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=512), 0..40),
        chunks in prop::collection::vec(1usize..700, 1..20),
        delay in 0usize..3,
        shrink in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let mut stream = MAGIC.to_vec();
        stream.extend(emit(&Repr::Hello(Hello { max_message: 512, idle_timeout_ms: 0, token: 0, ack: 0, name: "p" })));
        for (i, m) in msgs.iter().enumerate() {
            stream.extend(emit(&Repr::Msg { seq: i as u64 + 1, payload: m }));
        }
        stream.extend(emit(&Repr::Close(Code::Normal)));
        let (got, closed) = serve_lazily(&stream, &chunks, delay, &shrink);
        prop_assert_eq!(got, msgs);
        prop_assert!(matches!(closed, Some(soquete_core::Closure::Orderly { by_peer: true, .. })), "{:?}", closed);
    }

    #[cfg(all(feature = "server", feature = "plain"))]
    #[test]
    fn any_split_of_plain_text_and_lazy_rx_growth_give_the_same_lines(
        lines in prop::collection::vec("[ -~]{0,300}", 1..30),
        chunks in prop::collection::vec(1usize..300, 1..20),
        delay in 0usize..3,
        shrink in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let text = format!("x{text}");
        let (got, _) = serve_lazily(text.as_bytes(), &chunks, delay, &shrink);
        let mut expected: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
        expected[0].insert(0, b'x');
        prop_assert_eq!(got, expected);
    }

    #[cfg(feature = "server")]
    #[test]
    fn random_bytes_never_panic(
        prefix in 0u8..3,
        noise in prop::collection::vec(any::<u8>(), 0..3000),
        chunks in prop::collection::vec(1usize..700, 1..20),
    ) {
        let mut stream = Vec::new();
        if prefix >= 1 {
            stream.extend(MAGIC);
        }
        if prefix == 2 {
            stream.extend(emit(&Repr::Hello(Hello { max_message: 512, idle_timeout_ms: 10, token: 0, ack: 0, name: "" })));
        }
        stream.extend(noise);
        let _ = serve(&stream, &chunks);
        let _ = serve_lazily(&stream, &chunks, 0, &[true]);
    }

    #[test]
    fn random_bytes_to_a_client_never_panic(
        welcome in any::<bool>(),
        noise in prop::collection::vec(any::<u8>(), 0..2000),
        sends in 0usize..20,
    ) {
        let now = Instant::ZERO;
        let mut c = S::client(CFG, "c", [0; 600], [0; 2048], now).unwrap();
        let mut input = Vec::new();
        if welcome {
            input.extend(MAGIC);
            input.extend(emit(&Repr::Welcome(Welcome { resumed: false, max_message: 100, idle_timeout_ms: 5, token: 3, ack: 0 })));
        }
        input.extend(noise);
        let mut rest = &input[..];
        for step in 0..200u64 {
            let t = Instant::from_millis(step * 3);
            for _ in 0..sends { let _ = c.send(b"payload"); }
            let n = c.handle_input(t, rest);
            rest = &rest[n..];
            let mut count = 0;
            while c.poll_event(t).is_some() { count += 1; prop_assert!(count < 10_000); }
            c.handle_timeout(t);
            loop { let n = c.poll_transmit().len(); if n == 0 { break; } c.advance_transmit(n); }
            if c.is_closed() { break; }
        }
        prop_assert!(c.mode() == Mode::Binary);
    }
}
