//! End-to-end tests of `soquete client`: the real binary against small servers built
//! here on `soquete-core` sessions (so they do not depend on `soquete server`), raw
//! line-based listeners, and the real server.
//!
//! Synchronisation is by what the peers see (messages, end of stream, exit), never by
//! sleeping; every wait is bounded by [`LIMIT`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use soquete_core::wire::{Frame, Repr, Welcome, MAGIC};
use soquete_core::{Closure, Code, Config, Event, Instant, Session};
use soquete_tests::{soquete, ClientProcess as Client, Server};

/// Upper bound of any wait in these tests.
const LIMIT: Duration = Duration::from_secs(15);

/// Asserts that the client's standard error contains `what`.
#[track_caller]
fn says(stderr: &str, what: &str) {
    assert!(stderr.contains(what), "stderr: {stderr}");
}

/// What the in-test server does with its one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// Accept, take and acknowledge every message, finish the close the client starts.
    Serve,
    /// Refuse the handshake with this code.
    Refuse(Code),
    /// Take this many messages without acknowledging any, then drop the connection.
    Vanish(usize),
    /// Start an orderly close (server shutting down) after this many messages.
    CloseAfter(usize),
}

/// What the in-test server reports, as it happens.
#[derive(Debug)]
enum Seen {
    Message(Vec<u8>),
    Done { name: String, closure: Option<Closure> },
}

/// A soquete server for one client on `127.0.0.1:0`, on a core session in a thread.
fn core_server(max_message: u32, behaviour: Behaviour) -> (SocketAddr, Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        serve(stream, max_message, behaviour, &tx);
    });
    (addr, rx)
}

fn serve(mut stream: TcpStream, max_message: u32, behaviour: Behaviour, seen: &Sender<Seen>) {
    stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
    let start = StdInstant::now();
    let clock = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let config = Config {
        max_message,
        ..Config::DEFAULT
    };
    let rx = vec![0; Session::<Vec<u8>, Vec<u8>>::min_rx_len(max_message)];
    let mut session = Session::server(config, rx, vec![0; 64 * 1024], clock()).expect("session");
    let (mut name, mut messages, mut closure) = (String::new(), 0, None);
    loop {
        let now = clock();
        loop {
            let mut hello = None;
            match session.poll_event(now) {
                None => break,
                Some(Event::Hello { name: n, .. }) => hello = Some(n.to_owned()),
                Some(Event::Message { payload, .. }) => {
                    messages += 1;
                    let _ = seen.send(Seen::Message(payload.to_vec()));
                }
                Some(Event::Closed(c)) => closure = Some(c),
                Some(_) => {}
            }
            if let Some(n) = hello {
                name = n;
                match behaviour {
                    Behaviour::Refuse(code) => session.refuse(code).expect("refuse"),
                    _ => session.accept(1, None).expect("accept"),
                }
            }
            if behaviour == Behaviour::CloseAfter(messages) {
                session.close(now, Code::Shutdown);
            }
        }
        if let Behaviour::Vanish(n) = behaviour {
            if messages >= n {
                break;
            }
        }
        // A vanishing server never acknowledges: it writes nothing after the WELCOME.
        if !(matches!(behaviour, Behaviour::Vanish(_)) && messages > 0) {
            loop {
                let out = session.poll_transmit();
                if out.is_empty() {
                    break;
                }
                let n = out.len();
                if stream.write_all(out).is_err() {
                    break;
                }
                session.advance_transmit(n);
            }
        }
        if session.is_finished() {
            // Writing our CLOSE may have completed the close: collect the last event.
            while let Some(event) = session.poll_event(clock()) {
                if let Event::Closed(c) = event {
                    closure = Some(c);
                }
            }
            break;
        }
        match stream.read(session.input_buffer()) {
            Ok(0) => session.handle_eof(now),
            Ok(n) => session.advance_input(now, n),
            Err(_) => break,
        }
    }
    let _ = seen.send(Seen::Done { name, closure });
}

/// Collects the server's report: the messages it took, the client's name and how the
/// session ended.
fn collect(seen: &Receiver<Seen>) -> (Vec<Vec<u8>>, String, Option<Closure>) {
    let mut messages = Vec::new();
    loop {
        match seen.recv_timeout(LIMIT).expect("test server did not finish") {
            Seen::Message(m) => messages.push(m),
            Seen::Done { name, closure } => return (messages, name, closure),
        }
    }
}

/// The next message the server took, within [`LIMIT`].
fn next_message(seen: &Receiver<Seen>) -> Vec<u8> {
    match seen.recv_timeout(LIMIT).expect("no message") {
        Seen::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Runs the client with `input` on stdin (then end of input) and waits for it.
fn run_client(addr: SocketAddr, extra: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut client = Client::start(&addr.to_string(), extra, LIMIT);
    let writer = client.write(input.to_vec());
    client.close_stdin();
    let result = client.wait();
    writer.join().expect("stdin writer");
    result
}

/// Asserts that the fake server's next `n` messages are `line 1` to `line n`.
#[track_caller]
fn expect_lines(seen: &Receiver<Vec<u8>>, n: usize) {
    for i in 1..=n {
        assert_eq!(
            seen.recv_timeout(LIMIT).expect("message"),
            format!("line {i}").as_bytes()
        );
    }
}

fn lines(n: usize) -> Vec<u8> {
    (1..=n).flat_map(|i| format!("line {i}\n").into_bytes()).collect()
}

#[test]
fn piped_lines_all_arrive_in_order_and_are_acknowledged() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, stdout, stderr) = run_client(addr, &["--name", "tester"], &lines(5000));
    let (messages, name, closure) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(messages.len(), 5000);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m, format!("line {}", i + 1).as_bytes());
    }
    assert_eq!(name, "tester");
    assert!(matches!(
        closure,
        Some(Closure::Orderly {
            code: Code::Normal,
            by_peer: true
        })
    ));
    says(&stderr, "sent 5000 messages, 5000 acknowledged");
    assert_eq!(stdout, "");
}

#[test]
fn terminators_are_stripped_and_bytes_kept() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, _, stderr) = run_client(addr, &[], b"crlf\r\n\n\xff\xfe raw\nlast without newline");
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    let expected: [&[u8]; 4] = [b"crlf", b"", b"\xff\xfe raw", b"last without newline"];
    assert_eq!(messages, expected);
}

#[test]
fn s_line_ends_the_session() {
    for stop in ["S", "s", "s\r"] {
        let (addr, seen) = core_server(65536, Behaviour::Serve);
        let input = format!("one\ntwo\n{stop}\nthree\n");
        let (code, _, stderr) = run_client(addr, &[], input.as_bytes());
        let (messages, _, _) = collect(&seen);
        assert_eq!(code, 0, "stderr: {stderr}");
        assert_eq!(messages, [b"one".to_vec(), b"two".to_vec()], "stop line {stop:?}");
        says(&stderr, "sent 2 messages, 2 acknowledged");
    }
}

#[test]
fn typed_lines_are_sent_one_by_one() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let mut client = Client::start(&addr.to_string(), &[], LIMIT);
    // Each line arrives before the next is typed: nothing waits for end of input.
    for line in ["first", "second", "third"] {
        client.write(format!("{line}\n").into_bytes()).join().expect("write");
        assert_eq!(next_message(&seen), line.as_bytes());
    }
    client.write(b"S\n".to_vec()).join().expect("write");
    let (code, _, stderr) = client.wait();
    assert_eq!(code, 0, "stderr: {stderr}");
    says(&stderr, "sent 3 messages, 3 acknowledged");
    let (rest, _, _) = collect(&seen);
    assert!(rest.is_empty());
}

#[test]
fn empty_input_closes_cleanly() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, _, stderr) = run_client(addr, &[], b"");
    let (messages, _, closure) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(messages.is_empty());
    assert!(matches!(closure, Some(Closure::Orderly { .. })));
    says(&stderr, "sent 0 messages, 0 acknowledged");
}

#[test]
fn connection_refused_is_explained() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let (code, _, stderr) = run_client(addr, &[], b"hello\n");
    assert_eq!(code, 1);
    says(
        &stderr,
        &format!("soquete: error: cannot connect to {addr}: connection refused — is soquete server running?"),
    );
}

#[test]
fn server_full_is_explained() {
    let (addr, seen) = core_server(65536, Behaviour::Refuse(Code::ServerFull));
    let (code, _, stderr) = run_client(addr, &[], b"hello\n");
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 1);
    assert!(messages.is_empty());
    says(&stderr, "soquete: error:");
    says(&stderr, "refused the session: server full");
}

#[test]
fn line_over_the_servers_maximum_is_not_truncated() {
    let (addr, seen) = core_server(100, Behaviour::Serve);
    let mut input = b"short\n".to_vec();
    input.extend_from_slice(&[b'x'; 150]);
    input.extend_from_slice(b"\nafter\n");
    let (code, _, stderr) = run_client(addr, &[], &input);
    let (messages, _, closure) = collect(&seen);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert_eq!(messages, [b"short".to_vec()]);
    assert!(matches!(closure, Some(Closure::Orderly { .. })), "{closure:?}");
    says(
        &stderr,
        "line 2 is 150 bytes, longer than the server's maximum of 100 bytes",
    );
    says(&stderr, "sent 1 message, 1 acknowledged");
}

#[test]
fn line_longer_than_any_buffer_is_measured() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let mut input = b"short\n".to_vec();
    input.extend(std::iter::repeat_n(b'y', 1 << 20));
    input.push(b'\n');
    let (code, _, stderr) = run_client(addr, &[], &input);
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert_eq!(messages, [b"short".to_vec()]);
    says(&stderr, "line 2 is 1048576 bytes, longer than");
}

#[test]
fn server_vanishing_reports_unacknowledged_messages() {
    let (addr, seen) = core_server(65536, Behaviour::Vanish(3));
    let (code, _, stderr) = run_client(addr, &[], &lines(10));
    let (messages, _, _) = collect(&seen);
    assert!(messages.len() >= 3);
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "sent 10 messages, 0 acknowledged");
    says(
        &stderr,
        "closed the connection after 10 of 10 lines, 0 not sent; 10 of 10 messages not acknowledged",
    );
}

#[test]
fn connection_lost_mid_input_says_how_many_lines_were_not_sent() {
    // 400 lines of 1000 bytes: more than the client holds unacknowledged, so that
    // some lines are still unsent when the server vanishes.
    let input: Vec<u8> = (1..=400).flat_map(|i| format!("{i:0>1000}\n").into_bytes()).collect();
    let (addr, seen) = core_server(65536, Behaviour::Vanish(3));
    let (code, _, stderr) = run_client(addr, &[], &input);
    let _ = collect(&seen);
    assert_eq!(code, 1, "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let after = last.split(" after ").nth(1).expect("after N of M lines");
    let words: Vec<&str> = after.split([' ', ',', ';']).filter(|w| !w.is_empty()).collect();
    let (sent, total, unsent) = match words.as_slice() {
        [n, "of", m, "lines", k, "not", "sent", ..] => (
            n.parse::<u64>().expect("N"),
            m.parse::<u64>().expect("M"),
            k.parse::<u64>().expect("K"),
        ),
        _ => panic!("stderr: {stderr}"),
    };
    assert_eq!(total, 400, "{last}");
    assert_eq!(sent + unsent, 400, "{last}");
    assert!(unsent > 0, "{last}");
    says(&stderr, &format!("sent {sent} messages, 0 acknowledged"));
    assert!(
        last.ends_with(&format!("; {sent} of {sent} messages not acknowledged")),
        "{last}"
    );
}

#[test]
fn connection_closed_during_the_handshake_says_nothing_was_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = thread::spawn(move || drop(listener.accept().expect("accept")));
    let (code, _, stderr) = run_client(addr, &[], b"hi\n");
    accepted.join().expect("listener");
    assert_eq!(code, 1, "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.ends_with("during the handshake: no line was sent"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("acknowledged"), "stderr: {stderr}");
}

#[test]
fn server_shutting_down_stops_the_client() {
    let (addr, seen) = core_server(65536, Behaviour::CloseAfter(3));
    let mut client = Client::start(&addr.to_string(), &[], LIMIT);
    // Input stays open: the server's close, not end of input, ends the session.
    client.write(lines(3)).join().expect("write");
    let (code, _, stderr) = client.wait();
    let (messages, _, closure) = collect(&seen);
    assert_eq!(messages.len(), 3);
    assert!(matches!(
        closure,
        Some(Closure::Orderly {
            code: Code::Shutdown,
            by_peer: false
        })
    ));
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "sent 3 messages, 3 acknowledged");
    says(&stderr, "the server closed the session (server shutting down)");
}

/// A line-based listener for one client on `127.0.0.1:0`: it writes `greeting`, then
/// reads until the client closes and sends everything it read.
fn line_listener(greeting: &'static [u8]) -> (SocketAddr, Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        stream.write_all(greeting).expect("greet");
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got);
        let _ = tx.send(got);
    });
    (addr, rx)
}

#[test]
fn plain_mode_talks_to_a_line_based_listener() {
    let (addr, rx) = line_listener(b"welcome, plain peer\n");
    let (code, stdout, stderr) = run_client(addr, &["--plain"], b"one\r\ntwo\nS\nthree\n");
    let got = rx.recv_timeout(LIMIT).expect("listener finished");
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(got, b"one\ntwo\n");
    says(&stderr, "sent 2 lines (plain text: no acknowledgements)");
    // The greeting may or may not have arrived before the client closed; if it did,
    // it is printed whole.
    assert!(
        stdout.is_empty() || stdout == "welcome, plain peer\n",
        "stdout: {stdout:?}"
    );
}

/// A line-based server for one client on `127.0.0.1:0` that reads one line, answers
/// `answer`, then closes (`close`) or keeps the connection open until the returned
/// sender is dropped. Reports the line it read.
fn answering_listener(answer: &'static [u8], close: bool) -> (SocketAddr, Receiver<Vec<u8>>, Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    let (hold, held) = mpsc::channel::<()>();
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut reader = std::io::BufReader::new(&stream);
        let mut line = Vec::new();
        let _ = std::io::BufRead::read_until(&mut reader, b'\n', &mut line);
        (&stream).write_all(answer).expect("answer");
        let _ = tx.send(line);
        if !close {
            let _ = held.recv_timeout(LIMIT);
        }
    });
    (addr, rx, hold)
}

#[test]
fn plain_err_answer_after_the_input_ended_is_a_failure() {
    // The input ends at once: the ERR comes after the client's last line left.
    let (addr, rx, _hold) = answering_listener(b"ERR not allowed\n", true);
    let (code, stdout, stderr) = run_client(addr, &["--plain"], b"hello\n");
    assert_eq!(rx.recv_timeout(LIMIT).expect("listener finished"), b"hello\n");
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "sent 1 line (plain text: no acknowledgements), 1 received");
    says(&stderr, "rejected input: it answered \"ERR not allowed\"");
    assert_eq!(stdout, "ERR not allowed\n");
}

#[test]
fn plain_answer_is_read_until_the_server_closes() {
    let (addr, rx, _hold) = answering_listener(b"OK\nbye", true);
    let (code, stdout, stderr) = run_client(addr, &["--plain"], b"hello\n");
    assert_eq!(rx.recv_timeout(LIMIT).expect("listener finished"), b"hello\n");
    assert_eq!(code, 0, "stderr: {stderr}");
    says(&stderr, "sent 1 line (plain text: no acknowledgements), 2 received");
    assert_eq!(stdout, "OK\nbye\n");
}

#[test]
fn plain_server_that_never_closes_is_noted_after_the_timeout() {
    let (addr, rx, hold) = answering_listener(b"OK\n", false);
    let (code, stdout, stderr) = run_client(addr, &["--plain", "--timeout", "300ms"], b"hello\n");
    drop(hold);
    assert_eq!(rx.recv_timeout(LIMIT).expect("listener read"), b"hello\n");
    assert_eq!(code, 0, "stderr: {stderr}");
    says(
        &stderr,
        "did not close the connection within 300ms of the end of the input",
    );
    assert_eq!(stdout, "OK\n");
}

#[test]
fn plain_text_server_gets_a_hint_to_use_plain() {
    let (addr, rx) = line_listener(b"hello\n");
    let (code, _, stderr) = run_client(addr, &[], b"one\n");
    let got = rx.recv_timeout(LIMIT).expect("listener finished");
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "does not speak soquete");
    says(&stderr, "--plain");
    // At most the handshake went out (if it left before "hello" arrived), no message.
    assert!(got.is_empty() || got.starts_with(&[0xFE, b'S', b'Q', b'T']), "{got:?}");
    assert!(!got.windows(3).any(|w| w == b"one"));
}

#[test]
fn usage_errors_exit_2() {
    let out = soquete()
        .args(["client", "--name", &"n".repeat(33)])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 32 bytes"));
}

#[test]
fn connect_without_a_usable_port_is_a_usage_error() {
    for bad in ["127.0.0.1", "127.0.0.1:99999", "localhost"] {
        let out = soquete()
            .args(["client", "--connect", bad])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        says(&stderr, "expected HOST:PORT");
        says(&stderr, "for example localhost:8800");
    }
}

#[test]
fn one_message_is_counted_in_the_singular() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, _, stderr) = run_client(addr, &[], b"only\n");
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(messages, [b"only".to_vec()]);
    says(&stderr, "sent 1 message, 1 acknowledged, 0 received");
}

#[test]
fn one_line_is_counted_in_the_singular() {
    let (addr, rx) = line_listener(b"");
    let (code, _, stderr) = run_client(addr, &["--plain"], b"only\n");
    assert_eq!(rx.recv_timeout(LIMIT).expect("listener finished"), b"only\n");
    assert_eq!(code, 0, "stderr: {stderr}");
    says(&stderr, "sent 1 line (plain text: no acknowledgements)");
}

/// A new directory for `test`'s files under the target's scratch directory.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("client-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

#[test]
fn key_problems_are_told_once_and_plainly() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("keys");
    let key = dir.join("device.key");
    let key = key.to_str().expect("utf-8 path");
    let out = soquete().args(["keygen", "--out", key]).output().expect("keygen");
    assert!(out.status.success(), "{out:?}");
    let client = |server_key: &str| {
        let out = soquete()
            .args(["client", "--key", key, "--server-key", server_key])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    let (code, stderr) = client("garbage");
    assert_eq!(code, Some(1), "{stderr}");
    says(
        &stderr,
        "--server-key garbage is neither a key (soquete-pk:…) nor a file that can be read",
    );

    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stderr) = client("garbage");
    assert_eq!(code, Some(1), "{stderr}");
    says(&stderr, "secret key file has mode 0644");
    assert_eq!(stderr.matches(&format!("{key}:")).count(), 1, "the path once: {stderr}");
}

// ------------------------------------------------------------- the stop word

#[test]
fn stop_word_on_piped_input_says_where_and_what_was_left() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, _, stderr) = run_client(addr, &[], b"one\nS\nthree\nfour\nfive");
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(messages, [b"one".to_vec()]);
    says(
        &stderr,
        "stopped at line 2, a line \"S\" (--stop-word none sends every line): 3 lines left unread",
    );
    says(&stderr, "sent 1 message, 1 acknowledged");
}

#[test]
fn stop_word_as_the_last_line_leaves_nothing() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, _, stderr) = run_client(addr, &[], b"one\ntwo\ns\n");
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(messages.len(), 2);
    says(
        &stderr,
        "stopped at line 3, a line \"S\" (--stop-word none sends every line): 0 lines left unread",
    );
}

#[test]
fn stop_word_with_input_still_open_counts_what_was_there() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let mut client = Client::start(&addr.to_string(), &[], LIMIT);
    // One write, so one read: the line after S is there; the input stays open.
    client.write(b"one\nS\nthree\n".to_vec()).join().expect("write");
    let (code, _, stderr) = client.wait();
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(messages, [b"one".to_vec()]);
    says(
        &stderr,
        "stopped at line 2, a line \"S\" (--stop-word none sends every line): \
             1 line and the rest of the input (still open) left unread",
    );
}

#[test]
fn stop_word_none_sends_every_line() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, _, stderr) = run_client(addr, &["--stop-word", "none"], b"one\nS\nthree\n");
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(messages, [b"one".to_vec(), b"S".to_vec(), b"three".to_vec()]);
    assert!(!stderr.contains("stopped"), "stderr: {stderr}");
    says(&stderr, "sent 3 messages, 3 acknowledged");
}

#[test]
fn stop_word_can_be_another_word() {
    let (addr, seen) = core_server(65536, Behaviour::Serve);
    let (code, _, stderr) = run_client(addr, &["--stop-word", "END"], b"S\nend\nafter\n");
    let (messages, _, _) = collect(&seen);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(messages, [b"S".to_vec()]);
    says(
        &stderr,
        "stopped at line 2, a line \"END\" (--stop-word none sends every line): 1 line left unread",
    );
}

#[test]
fn help_states_the_stop_word_and_the_exit_status() {
    let out = soquete().args(["client", "--help"]).output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    // Compared with the line breaks as spaces: where the text wraps is not the point.
    let flowing = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flowing.contains("A line that is just S (or s) ends the input"),
        "{help}"
    );
    assert!(help.contains("--stop-word <WORD|none>"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
    for code in ["  0  ", "  1  ", "  2  "] {
        assert!(help.contains(code), "{help}");
    }
}

#[test]
fn zero_timeout_is_a_usage_error() {
    let out = soquete()
        .args(["client", "--timeout", "0"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    says(&stderr, "must be more than 0");
}

// ------------------------------------------------- fake servers and timeouts

/// How a hand-written server (frames built with `soquete_core::wire`) misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Keeps the connection alive (answers PINGs, sends its own) and acknowledges
    /// nothing.
    NoAcks,
    /// Drops every connection right after its WELCOME.
    DropAfterWelcome,
    /// Acknowledges every message and never answers CLOSE.
    NoCloseAnswer,
}

/// A fake server on `127.0.0.1:0`: every connection is served by `fault` in its own
/// thread. Reports each message it takes; counts the connections.
fn fake_server(fault: Fault) -> (SocketAddr, Receiver<Vec<u8>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    thread::spawn(move || {
        // Bounded: no test makes more connections than this.
        for stream in listener.incoming().take(1000) {
            let Ok(stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            thread::spawn(move || fake_session(stream, fault, &tx));
        }
    });
    (addr, rx, connections)
}

fn send_frame(stream: &mut TcpStream, repr: &Repr<'_>) -> std::io::Result<()> {
    let mut buf = vec![0; repr.buffer_len()];
    let n = repr.emit(&mut buf).expect("emit");
    stream.write_all(&buf[..n])
}

fn fake_session(mut stream: TcpStream, fault: Fault, seen: &Sender<Vec<u8>>) {
    // The read timeout is the fake server's clock: it pings when reads time out.
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let start = StdInstant::now();
    let mut buf = Vec::new();
    let mut magic_seen = false;
    let mut chunk = [0u8; 4096];
    let mut nonce = 0;
    while start.elapsed() < LIMIT {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if fault == Fault::NoAcks && magic_seen {
                    nonce += 1;
                    if send_frame(&mut stream, &Repr::Ping(nonce)).is_err() {
                        return;
                    }
                }
                continue;
            }
            Err(_) => return,
        }
        if !magic_seen {
            if buf.len() < MAGIC.len() {
                continue;
            }
            assert_eq!(buf[..MAGIC.len()], MAGIC, "client magic");
            buf.drain(..MAGIC.len());
            magic_seen = true;
        }
        while let Ok(frame) = Frame::new_checked(&buf[..]) {
            let len = frame.total_len();
            let answer = match Repr::parse(&frame).expect("valid frame") {
                Repr::Hello(_) => {
                    let welcome = Repr::Welcome(Welcome {
                        resumed: false,
                        max_message: 65536,
                        idle_timeout_ms: 0,
                        token: 7,
                        ack: 0,
                    });
                    let mut bytes = MAGIC.to_vec();
                    let mut frame = vec![0; welcome.buffer_len()];
                    welcome.emit(&mut frame).expect("emit");
                    bytes.extend_from_slice(&frame);
                    if stream.write_all(&bytes).is_err() || fault == Fault::DropAfterWelcome {
                        return;
                    }
                    None
                }
                Repr::Msg { seq, payload } => {
                    let _ = seen.send(payload.to_vec());
                    (fault != Fault::NoAcks).then_some(Repr::Ack(seq))
                }
                Repr::Ping(n) => Some(Repr::Pong(n)),
                // NoCloseAnswer: the point; the others never get that far.
                _ => None,
            };
            if let Some(answer) = answer {
                if send_frame(&mut stream, &answer).is_err() {
                    return;
                }
            }
            buf.drain(..len);
        }
    }
}

#[test]
fn acknowledgements_that_never_come_end_the_wait() {
    let (addr, seen, _) = fake_server(Fault::NoAcks);
    let mut client = Client::start(&addr.to_string(), &["--timeout", "1s"], LIMIT);
    // Input stays open: the client is not closing, it waits for acknowledgements.
    client.write(lines(5)).join().expect("write");
    expect_lines(&seen, 5);
    let (code, _, stderr) = client.wait();
    assert_eq!(code, 1, "stderr: {stderr}");
    says(
        &stderr,
        &format!(
            "no acknowledgement from {addr} for 1s although it keeps the connection alive: \
             5 of 5 messages not acknowledged"
        ),
    );
}

#[test]
fn acknowledgements_that_never_come_end_the_wait_after_end_of_input() {
    let (addr, seen, _) = fake_server(Fault::NoAcks);
    let (code, _, stderr) = run_client(addr, &["--timeout", "1s"], &lines(5));
    expect_lines(&seen, 5);
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "sent 5 messages, 0 acknowledged");
    says(&stderr, &format!("no acknowledgement from {addr} for 1s"));
    says(&stderr, ": 5 of 5 messages not acknowledged");
}

#[test]
fn reconnect_for_counts_time_without_progress() {
    let (addr, _seen, connections) = fake_server(Fault::DropAfterWelcome);
    let mut client = Client::start(
        &addr.to_string(),
        &["--timeout", "1s", "--reconnect", "--reconnect-for", "2s"],
        LIMIT,
    );
    client.write(lines(3)).join().expect("write");
    let (code, _, stderr) = client.wait();
    assert_eq!(code, 1, "stderr: {stderr}");
    let made = connections.load(Ordering::SeqCst);
    assert!(made >= 2, "{made} connections");
    says(&stderr, &format!("gave up reconnecting: no progress with {addr} for "));
    says(&stderr, "sessions lost; last: the session was lost");
    says(&stderr, "3 of 3 messages not acknowledged");
}

#[test]
fn close_never_answered_is_reported_as_such() {
    let (addr, seen, _) = fake_server(Fault::NoCloseAnswer);
    let (code, _, stderr) = run_client(addr, &["--timeout", "1s"], &lines(5));
    expect_lines(&seen, 5);
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "sent 5 messages, 5 acknowledged");
    says(
        &stderr,
        &format!("{addr} acknowledged all 5 messages but did not answer the close within 1s"),
    );
    assert!(!stderr.contains("not acknowledged"), "stderr: {stderr}");
}

#[test]
fn plain_server_that_stops_reading_ends_the_wait() {
    // A small receive buffer (inherited by the accepted socket): the kernel cannot
    // keep taking bytes for a while by itself, so the stall is soon a fact.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(1).expect("listen");
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // Holds the connection open and reads nothing until the test is done.
        let (stream, _) = listener.accept().expect("accept");
        let _ = rx.recv_timeout(LIMIT);
        drop(stream);
    });
    let mut client = Client::start(&addr.to_string(), &["--plain", "--timeout", "1s"], LIMIT);
    // More than the socket buffers hold; the client reads its input only as it sends.
    let line = [b"x".repeat(999), b"\n".to_vec()].concat();
    let writer = client.feed(line.repeat(64 * 1024));
    let (code, _, stderr) = client.wait();
    let _ = tx.send(());
    drop(writer);
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, &format!("{addr} took no input for 1s: of "));
    says(&stderr, "lines sent, the last ones were not written");
}

#[test]
fn plain_server_answering_err_fails_the_client() {
    let mut server = Server::in_process(&["--max-message", "100"]);
    let mut client = Client::start(&server.addr.to_string(), &["--plain"], LIMIT);
    // Input stays open: the server's ERR and close end the client.
    let mut input = b"fine\n".to_vec();
    input.extend_from_slice(&[b'x'; 150]);
    input.push(b'\n');
    client.write(input).join().expect("write");
    let (code, stdout, stderr) = client.wait();
    assert_eq!(code, 1, "stderr: {stderr}");
    assert_eq!(stdout, "ERR line too long (max 100 bytes)\n");
    says(
        &stderr,
        &format!(
            "{} rejected input: it answered \"ERR line too long (max 100 bytes)\"",
            server.addr
        ),
    );
    server.wait_for(LIMIT, |l| l.ends_with(": fine"));
}

// ------------------------------------------------------------- the real server

#[test]
fn real_server_prints_every_line() {
    let mut server = Server::in_process(&[]);
    let (code, _, stderr) = run_client(server.addr, &["--name", "e2e"], &lines(1000));
    assert_eq!(code, 0, "stderr: {stderr}");
    says(&stderr, "sent 1000 messages, 1000 acknowledged");
    server.wait_for(LIMIT, |l| l.contains("connected as \"e2e\""));
    for i in 1..=1000 {
        let want = format!(": line {i}");
        let line = server.wait_for(LIMIT, |l| l.contains(": line "));
        assert!(line.ends_with(&want), "expected {want:?}, got {line:?}");
    }
    server.wait_for(LIMIT, |l| l.contains("left") && l.contains("after 1000 messages"));
}

#[test]
fn real_server_full_and_shutting_down() {
    let mut server = Server::start(&["--max-clients", "1"]);
    let mut first = Client::start(&server.addr.to_string(), &[], LIMIT);
    first.write(b"hello\n".to_vec()).join().expect("write");
    server.wait_for(LIMIT, |l| l.ends_with(": hello"));

    let (code, _, stderr) = run_client(server.addr, &[], b"rejected\n");
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "refused the session: server full");

    // The first client's input is still open: the server's shutdown ends its session.
    server.signal("TERM");
    let (code, _, stderr) = first.wait();
    assert_eq!(code, 1, "stderr: {stderr}");
    says(&stderr, "sent 1 message, 1 acknowledged");
    says(&stderr, "the server closed the session (server shutting down)");
    assert!(server.finish(LIMIT).success());
}
