//! `soquete server` end to end on 127.0.0.1 — in this process through `server::run`,
//! and the real binary where signals matter — driven by raw sockets (plain text) and
//! by core client sessions over blocking sockets (binary protocol).
//!
//! Nothing here sleeps to synchronise: tests wait for printed lines or socket reads,
//! every wait bounded.

use std::io::{Read as _, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use soquete_core::{Closure, Code};
use soquete_host::server::Stopped;
use soquete_tests::watched::Watched;
use soquete_tests::{messages_of, plain, read_to_eof, soquete, BinClient as Client, Exit, Server, WAIT};

/// Bound of a wait for a server to work through a flood, a safety stop only.
const DRAIN: Duration = Duration::from_secs(60);

#[test]
fn plain_text_lines_and_partial_line_after_the_gap() {
    let mut server = Server::in_process(&["--line-gap", "50ms"]);
    let mut s = plain(server.addr);
    s.write_all(b"hello\nworld\r\n").unwrap();
    let id = server.session_id(|l| l.ends_with("connected (plain text)"));
    server.wait_for(WAIT, |l| l == format!("{id} {}: world", s.local_addr().unwrap()));

    // No newline: shown once the line gap has passed.
    s.write_all(b"no newline yet").unwrap();
    server.wait_for(WAIT, |l| l.ends_with(": no newline yet"));
    s.write_all(b"last\n").unwrap();
    server.wait_for(WAIT, |l| l.ends_with(": last"));
    s.shutdown(Shutdown::Write).unwrap();
    let left = server.wait_for(WAIT, |l| l.contains(" left "));
    assert_eq!(
        left,
        format!(
            "{id} {} left (connection closed by peer) after 4 messages",
            s.local_addr().unwrap()
        )
    );
    assert_eq!(
        messages_of(&server.seen, &id),
        ["hello", "world", "no newline yet", "last"]
    );
    // The server sends nothing to a plain-text peer and closes after it did.
    assert!(read_to_eof(&mut s).is_empty());
}

#[test]
fn plain_text_partial_line_is_shown_at_close() {
    let mut server = Server::in_process(&["--line-gap", "1m"]);
    let mut s = plain(server.addr);
    s.write_all(b"one\ntwo, unfinished").unwrap();
    let id = server.session_id(|_| true);
    server.wait_for(WAIT, |l| l.ends_with(": one"));
    s.shutdown(Shutdown::Write).unwrap();
    server.wait_for(WAIT, |l| l.contains(" left "));
    assert_eq!(messages_of(&server.seen, &id), ["one", "two, unfinished"]);
    assert!(read_to_eof(&mut s).is_empty());
}

#[test]
fn concurrent_binary_clients_each_message_printed_once_in_order() {
    const CLIENTS: usize = 4;
    const MESSAGES: usize = 2000;
    let mut server = Server::in_process(&[]);
    let addr = server.addr;
    let started = StdInstant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            thread::spawn(move || {
                let mut c = Client::connect(addr, &format!("c{k}"));
                for j in 0..MESSAGES {
                    c.send(format!("c{k} m{j}").as_bytes());
                    if j % 64 == 0 {
                        c.flush();
                    }
                }
                let closure = c.close();
                assert_eq!(
                    closure,
                    Closure::Orderly {
                        code: Code::Normal,
                        by_peer: false
                    }
                );
                assert_eq!(c.acked, MESSAGES as u64);
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    let elapsed = started.elapsed();
    for _ in 0..CLIENTS {
        server.wait_for(WAIT, |l| l.contains(" left "));
    }
    eprintln!(
        "{} messages from {CLIENTS} concurrent clients in {elapsed:?} ({:.0} messages/s)",
        CLIENTS * MESSAGES,
        (CLIENTS * MESSAGES) as f64 / elapsed.as_secs_f64()
    );
    let seen = server.seen.clone();
    for k in 0..CLIENTS {
        let connected = seen
            .iter()
            .find(|l| l.ends_with(&format!("connected as \"c{k}\"")))
            .expect("connected line");
        let id = connected.split(' ').next().unwrap();
        let expected: Vec<String> = (0..MESSAGES).map(|j| format!("c{k} m{j}")).collect();
        assert_eq!(messages_of(&seen, id), expected, "messages of c{k}");
        assert!(
            seen.iter().any(|l| l.starts_with(&format!("{id} "))
                && l.ends_with(&format!(
                    "left (closed by peer: normal close) after {MESSAGES} messages"
                ))),
            "left line of c{k}"
        );
    }
}

#[test]
fn control_characters_and_invalid_utf8_are_escaped() {
    let mut server = Server::in_process(&[]);
    let mut s = plain(server.addr);
    s.write_all(b"\x1b[31mred\x07 \xff\xfe back\\slash\ttab\n").unwrap();
    server.wait_for(WAIT, |l| l.ends_with(r": \e[31mred\x07 \xff\xfe back\\slash\ttab"));

    let mut c = Client::connect(server.addr, "esc\x1b[2J");
    server.wait_for(WAIT, |l| l.ends_with(r#"connected as "esc\e[2J""#));
    c.send(b"multi\nline \x1b]0;title\x07 \xc3\x28");
    c.wait("the acknowledgement", |c| c.acked == 1);
    server.wait_for(WAIT, |l| l.ends_with(r": multi\nline \e]0;title\x07 \xc3("));
    // Every printed line is one line of printable text.
    assert!(server.seen.iter().all(|l| !l.chars().any(char::is_control)));
}

#[test]
fn max_clients_refuses_with_server_full() {
    let mut server = Server::in_process(&["--max-clients", "1"]);
    let mut first = Client::connect(server.addr, "first");
    assert!(first.session.is_open());
    server.wait_for(WAIT, |l| l.ends_with("connected as \"first\""));

    let second = Client::connect(server.addr, "second");
    assert_eq!(second.closed, Some(Closure::Refused(Code::ServerFull)));
    server.wait_for(WAIT, |l| l.ends_with("refused (server full)"));

    let mut p = plain(server.addr);
    p.write_all(b"let me in\n").unwrap();
    assert_eq!(read_to_eof(&mut p), b"ERR server full\n");
    server.wait_for(WAIT, |l| l.ends_with("refused (server full)"));

    // The first client is undisturbed.
    first.send(b"still here");
    first.wait("the acknowledgement", |c| c.acked == 1);
    server.wait_for(WAIT, |l| l.ends_with(": still here"));
    first.close();
    server.wait_for(WAIT, |l| {
        l.contains("left (closed by peer: normal close) after 1 message")
    });

    // Its slot is free again.
    let mut third = Client::connect(server.addr, "third");
    assert!(third.session.is_open(), "{:?}", third.closed);
    third.close();
}

#[test]
fn http_and_tls_get_an_err_line_and_are_closed() {
    let mut server = Server::in_process(&[]);
    let mut http = plain(server.addr);
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_to_eof(&mut http), b"ERR wrong protocol\n");

    let mut tls = plain(server.addr);
    tls.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])
        .unwrap();
    assert_eq!(read_to_eof(&mut tls), b"ERR wrong protocol\n");

    // A real plain-text peer afterwards: everything before it has been printed (or not).
    let mut p = plain(server.addr);
    p.write_all(b"GET milk\n").unwrap();
    server.wait_for(WAIT, |l| l.ends_with(": GET milk"));
    let messages: Vec<&String> = server.seen.iter().filter(|l| l.contains(": ")).collect();
    assert_eq!(messages.len(), 1, "foreign requests are not messages: {messages:?}");
    // Foreign peers never became clients; if the core reports them as sessions, their
    // end must say why.
    for line in server.seen.iter().filter(|l| l.contains(" left ")) {
        assert!(
            line.contains("left (aborted: wrong protocol) after 0 messages"),
            "{line}"
        );
    }
}

#[test]
fn sigterm_closes_sessions_after_acknowledging_in_flight_messages() {
    const MESSAGES: usize = 300;
    let mut server = Server::start(&[]);
    let mut c = Client::connect(server.addr, "stayer");
    let id = server.session_id(|l| l.ends_with("as \"stayer\""));
    let mut p = plain(server.addr);
    p.write_all(b"plain one\n").unwrap();
    server.wait_for(WAIT, |l| l.ends_with(": plain one"));

    for j in 0..MESSAGES {
        c.send(format!("m{j}").as_bytes());
    }
    c.flush();
    let signalled = StdInstant::now();
    server.signal("TERM");
    c.wait("the server's close", |c| c.closed.is_some());
    assert_eq!(c.peer_closing, Some(Code::Shutdown));
    assert_eq!(
        c.closed,
        Some(Closure::Orderly {
            code: Code::Shutdown,
            by_peer: true
        })
    );
    assert_eq!(c.acked, MESSAGES as u64, "every message acknowledged before the close");
    drop(c);
    assert!(read_to_eof(&mut p).is_empty(), "plain-text peer is just closed");

    let status = server.finish(WAIT);
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    let expected: Vec<String> = (0..MESSAGES).map(|j| format!("m{j}")).collect();
    assert_eq!(messages_of(&server.seen, &id), expected);
    assert!(server.seen.iter().any(|l| l.starts_with(&format!("{id} "))
        && l.ends_with(&format!(
            "left (closed: server shutting down) after {MESSAGES} messages"
        ))));
}

#[test]
fn stop_requests_end_run_gracefully_then_at_once() {
    let mut server = Server::in_process(&[]);
    let mut c = Client::connect(server.addr, "stayer");
    let id = server.named_session("stayer");
    c.send(b"one");
    c.wait("the acknowledgement", |c| c.acked == 1);
    server.stop();
    c.wait("the server's close", |c| c.closed.is_some());
    assert_eq!(
        c.closed,
        Some(Closure::Orderly {
            code: Code::Shutdown,
            by_peer: true
        })
    );
    let exit = server.finish(WAIT);
    assert!(exit.success(), "{exit:?}");
    assert!(server.seen.iter().any(
        |l| l.starts_with(&format!("{id} ")) && l.ends_with("left (closed: server shutting down) after 1 message")
    ));

    // A second request does not wait for a session that will not close.
    let mut server = Server::in_process(&[]);
    let _silent = Client::connect(server.addr, "silent");
    server.named_session("silent");
    server.stop();
    server.stop();
    match server.finish(WAIT) {
        Exit::InProcess(Ok(Stopped::AtOnce { signal: None })) => {}
        other => panic!("{other:?}"),
    }
}

/// The real binary at the default log level, its console off.
fn default_binary(extra: &[&str]) -> Watched {
    let mut cmd = soquete();
    cmd.args(["server", "--listen", "127.0.0.1:0", "--no-console"])
        .args(extra)
        .env_remove("RUST_LOG");
    Watched::start(cmd)
}

fn kill(server: &Watched, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn the_binary_says_how_it_stopped() {
    // The line is in the log (stderr): the output stays events only.
    let mut server = default_binary(&[]);
    let mut clients: Vec<Client> = ["ana", "bea"].iter().map(|n| Client::connect(server.addr, n)).collect();
    for c in &mut clients {
        c.send(b"one");
        c.wait("the acknowledgement", |c| c.acked == 1);
    }
    kill(&server, "TERM");
    for c in &mut clients {
        c.wait("the server's close", |c| c.closed.is_some());
    }
    let line = server.stderr_line(|l| l.contains("stopped ("));
    assert!(
        line.ends_with("stopped (SIGTERM): 2 sessions closed in order, 0 lost"),
        "{line}"
    );
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
    assert!(server.stdout.try_iter().all(|l| !l.contains("stopped")));

    // A second request: the session that did not answer the close is lost.
    let mut server = default_binary(&[]);
    let deaf = Client::connect(server.addr, "deaf");
    server.stdout_line(|l| l.contains("deaf"));
    kill(&server, "INT");
    // The server's close arriving says the first request was taken; the client does
    // not answer it.
    let deadline = StdInstant::now() + WAIT;
    let mut byte = [0; 1];
    while !matches!((&deaf.stream).read(&mut byte), Ok(1)) {
        assert!(StdInstant::now() < deadline, "no close from the server");
    }
    kill(&server, "INT");
    let line = server.stderr_line(|l| l.contains("stopped ("));
    assert!(
        line.ends_with("stopped (SIGINT): 0 sessions closed in order, 1 lost"),
        "{line}"
    );
}

#[test]
fn json_lines_parse() {
    let mut server = Server::in_process(&["--json"]);
    let mut p = plain(server.addr);
    p.write_all(b"hi \"there\"\x1b\n").unwrap();
    p.shutdown(Shutdown::Write).unwrap();
    read_to_eof(&mut p);
    server.wait_for(WAIT, |l| l.contains(r#""event":"left""#));
    let mut c = Client::connect(server.addr, "j\"son");
    c.send(b"bin\\ary");
    c.close();
    server.wait_for(WAIT, |l| l.contains(r#""event":"left""#) && l.contains(r#""id":2"#));

    let lines: Vec<serde_json::Value> = server
        .seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let of = |event: &str| -> Vec<&serde_json::Value> { lines.iter().filter(|v| v["event"] == event).collect() };
    let connected = of("connected");
    assert_eq!(connected[0]["mode"], "plain");
    assert_eq!(connected[1]["mode"], "binary");
    assert_eq!(connected[1]["name"], "j\"son");
    let messages = of("message");
    assert_eq!(messages[0]["text"], "hi \"there\"\x1b");
    assert_eq!(messages[0]["seq"], 1);
    assert_eq!(messages[0]["session"], serde_json::Value::Null);
    assert_eq!(messages[1]["text"], r"bin\ary");
    assert_eq!(messages[1]["id"], 2);
    assert_eq!(messages[1]["name"], "j\"son");
    assert_eq!(messages[1]["session"].as_str().map(str::len), Some(16));
    assert!(lines
        .iter()
        .all(|l| l["v"] == 1 && l["ts"].as_str().is_some_and(|t| t.len() == 24)));
    let left = of("left");
    assert_eq!(left[0]["reason"], "connection closed by peer");
    assert_eq!(left[1]["reason"], "closed by peer: normal close");
    assert_eq!(left[1]["messages"], 1);
    assert_eq!(
        messages[1]["peer"].as_str().unwrap(),
        c.stream.local_addr().unwrap().to_string()
    );
}

/// Hostile texts come back exactly from the JSON lines: as `text` when they are
/// UTF-8, as `payload_b64` when not.
#[test]
fn json_lines_carry_hostile_texts_exactly() {
    use base64::Engine as _;
    let hostile: [&[u8]; 10] = [
        b"tab\there",
        b"back\\slash \\\\ two",
        b"\"quotes\" and 'single'",
        b"\x00\x01\x07\x1b[31mred\x1b[0m\x7f",
        b"new\nline\r\n",
        b"\xff\xfe not UTF-8 \xc3",
        "emoji \u{1F600} and \u{200B}zero-width, \u{202E}bidi".as_bytes(),
        b"\\u0041 looks like an escape",
        b"",
        b"</script>{\"event\":\"fake\"}",
    ];
    let mut server = Server::in_process(&["--json"]);
    let mut c = Client::connect(server.addr, "h\u{1F600}\\\"");
    for text in hostile {
        c.send(text);
    }
    c.wait("the acknowledgements", |c| c.acked == hostile.len() as u64);
    c.close();
    server.wait_for(WAIT, |l| l.contains(r#""event":"left""#));
    let messages: Vec<serde_json::Value> = server
        .seen
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter(|v| v["event"] == "message")
        .collect();
    assert_eq!(messages.len(), hostile.len());
    for (m, sent) in messages.iter().zip(hostile) {
        let got = match (m["text"].as_str(), m["payload_b64"].as_str()) {
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
            _ => panic!("neither text nor payload_b64: {m}"),
        };
        assert_eq!(got, sent, "{m}");
        assert_eq!(m["name"], "h\u{1F600}\\\"");
    }
}

#[test]
fn bad_frames_get_error_and_close_while_others_continue() {
    let mut server = Server::in_process(&["--max-message", "1000"]);
    let mut good = Client::connect(server.addr, "good");
    good.send(b"before");

    // A MSG header announcing 4 GiB.
    let mut big = Client::connect(server.addr, "big");
    big.stream.write_all(&[0x10, 0xff, 0xff, 0xff, 0xff]).unwrap();
    big.wait("the server's error", |c| c.closed.is_some());
    assert_eq!(big.closed, Some(Closure::PeerError(Code::TooLarge)));
    server.wait_for(WAIT, |l| l.contains("left (aborted: message too large)"));

    // A frame type nobody defined.
    let mut odd = Client::connect(server.addr, "odd");
    odd.stream.write_all(&[0x7f, 0, 0, 0, 0]).unwrap();
    odd.wait("the server's error", |c| c.closed.is_some());
    assert_eq!(odd.closed, Some(Closure::PeerError(Code::UnknownFrame)));
    server.wait_for(WAIT, |l| l.contains("left (aborted: unknown frame type)"));

    good.send(b"after");
    good.wait("the acknowledgements", |c| c.acked == 2);
    assert_eq!(
        good.close(),
        Closure::Orderly {
            code: Code::Normal,
            by_peer: false
        }
    );
    let id = server
        .seen
        .iter()
        .find(|l| l.ends_with("as \"good\""))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .unwrap();
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left "));
    assert_eq!(messages_of(&server.seen, &id), ["before", "after"]);
}

#[test]
fn silent_partial_and_flooding_peers_do_not_hold_up_others() {
    let mut server = Server::in_process(&[]);
    let _silent = TcpStream::connect(server.addr).unwrap();
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial.write_all(&[0xFE, b'S']).unwrap();

    // A plain-text peer writing 4 MB as fast as it can.
    let addr = server.addr;
    let flooder = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let chunk: Vec<u8> = line.repeat(400);
        for _ in 0..100 {
            s.write_all(&chunk).unwrap();
        }
        s.shutdown(Shutdown::Write).unwrap();
        read_to_eof(&mut s);
    });

    let mut c = Client::connect(server.addr, "calm");
    for j in 0..200 {
        c.send(format!("calm {j}").as_bytes());
    }
    c.wait("the acknowledgements", |c| c.acked == 200);
    c.close();
    flooder.join().expect("flooder");
    // Printing 40,000 lines takes a debug build on a busy machine more than WAIT: this
    // bound only stops a broken run, the calm client's timing was checked above.
    server.wait_for(DRAIN, |l| {
        l.contains("left (connection closed by peer) after 40000 messages")
    });
    let id = server
        .seen
        .iter()
        .find(|l| l.ends_with("as \"calm\""))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .unwrap();
    let expected: Vec<String> = (0..200).map(|j| format!("calm {j}")).collect();
    assert_eq!(messages_of(&server.seen, &id), expected);
}

#[test]
fn messages_larger_than_the_first_buffer_arrive_whole() {
    let mut server = Server::in_process(&[]);
    let mut c = Client::connect(server.addr, "big");
    let id = server.session_id(|l| l.ends_with("as \"big\""));
    let sizes = [10, 5000, 12000, 3, 9000, 4096, 4097, 1];
    let texts: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| format!("{i}{}", "x".repeat(n)))
        .collect();
    for t in &texts {
        c.send(t.as_bytes());
    }
    c.wait("the acknowledgements", |c| c.acked == sizes.len() as u64);
    c.close();
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left "));
    assert_eq!(messages_of(&server.seen, &id), texts);
}

/// Long messages, whose runs of plain text the server writes from its receive buffers,
/// print exactly as the escaper prints them, with escaped bytes between the runs and
/// several clients' lines interleaved; in JSON lines too, from the binary.
#[test]
fn long_messages_print_exactly_from_several_clients() {
    const CLIENTS: usize = 3;
    const MESSAGES: usize = 40;
    let payload = |k: usize, j: usize| -> Vec<u8> {
        // Up to the test client's largest message (16,371 bytes).
        let size = 3000 + (k * 7919 + j * 104_729) % 13_000;
        let mut p: Vec<u8> = (0..size).map(|i| b'a' + ((i + j) % 26) as u8).collect();
        // An escaped byte now and then: a tab, an escape, a quote, a backslash, a
        // character JSON keeps and the text escaper rewrites.
        for (n, special) in [&b"\t"[..], b"\x1b", b"\"", b"\\", "\u{202e}".as_bytes()]
            .iter()
            .enumerate()
        {
            let at = (n * 9973 + j * 31) % size;
            if (j + n) % 3 == 0 {
                p.splice(at..at, special.iter().copied());
            }
        }
        p
    };
    // In-process (output through a channel), then the binary: JSON lines to its
    // standard output, a pipe, written with `writev`.
    for json in [false, true] {
        let mut server = if json {
            Server::start(&["--json"])
        } else {
            Server::in_process(&[])
        };
        let addr = server.addr;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|k| {
                thread::spawn(move || {
                    let mut c = Client::connect(addr, &format!("long{k}"));
                    for j in 0..MESSAGES {
                        c.send(&payload(k, j));
                    }
                    c.wait("the acknowledgements", |c| c.acked == MESSAGES as u64);
                    c.close();
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        for _ in 0..CLIENTS {
            server.wait_for(DRAIN, |l| l.contains(" left ") || l.contains(r#""event":"left""#));
        }
        for k in 0..CLIENTS {
            let expected: Vec<Vec<u8>> = (0..MESSAGES).map(|j| payload(k, j)).collect();
            if json {
                let got: Vec<Vec<u8>> = server
                    .seen
                    .iter()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}")))
                    .filter(|v| v["event"] == "message" && v["name"] == format!("long{k}"))
                    .map(|v| v["text"].as_str().expect("UTF-8 text").as_bytes().to_vec())
                    .collect();
                assert!(got == expected, "client {k}: JSON texts differ");
            } else {
                let connected = server.seen.iter().find(|l| l.ends_with(&format!("as \"long{k}\"")));
                let id = connected.and_then(|l| l.split(' ').next()).expect("connected line");
                let expected: Vec<String> = expected.iter().map(|p| soquete_text::escape::escape(p)).collect();
                assert!(messages_of(&server.seen, id) == expected, "client {k}: lines differ");
            }
        }
    }
}

/// Long plain-text lines, in one stream and in pieces of any size: each prints exactly
/// as the escaper prints it, whether its runs went from the receive buffer (which
/// grows to the longest line allowed) or were copied because they were too few for
/// that buffer's size.
#[test]
fn long_plain_text_lines_print_exactly() {
    let lines: Vec<Vec<u8>> = (0..60usize)
        .map(|j| {
            let size = 100 + (j * 104_729) % 30_000;
            let mut line: Vec<u8> = (0..size).map(|i| b'A' + ((i + j) % 26) as u8).collect();
            if j % 4 == 1 {
                line.splice(size / 2..size / 2, *b"\t\x1b\\");
            }
            line
        })
        .collect();
    let stream: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    // The default receive buffer for a long line (64 KiB) and a 1 MiB one.
    for max in ["65536", "1048576"] {
        print_long_lines(&["--max-message", max], &lines, &stream);
    }
}

fn print_long_lines(flags: &[&str], lines: &[Vec<u8>], stream: &[u8]) {
    let mut server = Server::in_process(flags);
    let mut s = plain(server.addr);
    // Writes of uneven sizes, so that reads end anywhere in a line.
    let mut sent = 0;
    for (k, size) in [1, 4095, 4096, 70_000, 12_345, 7].iter().cycle().enumerate() {
        let end = (sent + size).min(stream.len());
        s.write_all(&stream[sent..end]).unwrap();
        sent = end;
        if sent == stream.len() || k > 10_000 {
            break;
        }
    }
    s.shutdown(Shutdown::Write).unwrap();
    read_to_eof(&mut s);
    let id = server.session_id(|l| l.ends_with("connected (plain text)"));
    server.wait_for(DRAIN, |l| l.starts_with(&format!("{id} ")) && l.contains(" left "));
    let expected: Vec<String> = lines.iter().map(|l| soquete_text::escape::escape(l)).collect();
    assert!(messages_of(&server.seen, &id) == expected, "lines differ");
}
