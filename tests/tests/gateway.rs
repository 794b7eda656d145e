//! The server as a gateway into NATS JetStream (`soquete server --forward`), with the
//! real binaries: `soquete server`, `soquete client --reconnect` and `nats-server -js`
//! (Debian package `nats-server`), each started and stopped by the test on 127.0.0.1,
//! JetStream's storage in a temp dir. Every line must end up in the stream exactly
//! once, and a client is told a line is delivered only once it is stored.
//!
//! Bounded: a fixed number of lines; every wait has a limit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use soquete_host::sink::forward::{encode_name, parse_msg_id};
use soquete_host::sink::nats::{header, Client, Options};
use soquete_tests::watched::Watched;
use soquete_tests::{keygen, plain, soquete, BinClient, ClientProcess, Server, WAIT};

/// Longest wait for one client or server to finish.
const LIMIT: Duration = Duration::from_secs(60);
const STREAM: &str = "SOQUETE";

/// A `nats-server -js` child process, killed on drop; its storage outlives a restart.
struct Nats {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    addr: String,
    dir: tempfile::TempDir,
}

impl Nats {
    /// Starts a server on a free port of its choosing.
    fn start() -> Nats {
        let mut nats = Nats {
            child: None,
            addr: String::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        nats.run("-1");
        nats
    }

    /// Starts `nats-server` on `port` with the storage directory, and waits for its log
    /// to say it is ready.
    fn run(&mut self, port: &str) {
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", port, "-js", "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server (Debian package nats-server) must be installed");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the test stops listening, so the server never
                // blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(wait).expect("nats-server did not start");
            if let Some((_, addr)) = line.split_once("Listening for client connections on ") {
                self.addr = addr.trim().to_owned();
            }
            if line.contains("Server is ready") {
                break;
            }
        }
        assert!(!self.addr.is_empty(), "nats-server gave no address");
        self.child = Some(child);
    }

    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same storage.
    fn restart(&mut self) {
        let port = self.addr.rsplit_once(':').expect("HOST:PORT").1.to_owned();
        self.run(&port);
    }

    fn client(&self) -> Client {
        Client::connect(self.addr.as_str(), Options::default()).expect("connect to nats-server")
    }

    /// Waits until the stream holds at least `n` messages.
    fn wait_stored(&self, n: u64) {
        let mut client = self.client();
        let deadline = Instant::now() + LIMIT;
        loop {
            match client.stream_state(STREAM) {
                Ok(state) if state.messages >= n => return,
                Ok(_) | Err(_) => {}
            }
            assert!(Instant::now() < deadline, "the stream never held {n} messages");
            // Polled: the stream has no readiness signal to wait on.
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `c{k} {n}` for n in 0..lines, one per line.
fn input(k: usize, lines: usize) -> Vec<u8> {
    (0..lines).flat_map(|n| format!("c{k} {n}\n").into_bytes()).collect()
}

/// Client `k`'s name: a space, a dot and a non-ASCII letter, which a subject token
/// cannot hold as they are.
fn name(k: usize) -> String {
    format!("dev.{k} é")
}

fn start_clients(addr: &str, clients: usize, lines: usize) -> Vec<ClientProcess> {
    (0..clients)
        .map(|k| {
            let name = name(k);
            let mut c = ClientProcess::start(addr, &["--name", &name, "--reconnect", "--reconnect-for", "30s"], LIMIT);
            c.feed(input(k, lines));
            c
        })
        .collect()
}

fn expect_all_acknowledged(clients: Vec<ClientProcess>, lines: usize) {
    for (k, c) in clients.into_iter().enumerate() {
        let (code, _, stderr) = c.wait();
        assert_eq!(code, 0, "client {k} failed: {stderr}");
        assert!(
            stderr.contains(&format!("sent {lines} messages, {lines} acknowledged")),
            "client {k}: {stderr}"
        );
    }
}

/// Reads the whole stream back and checks that it holds each client's lines exactly
/// once, in order, each on its session's subject with the `Nats-Msg-Id` of its
/// sequence number.
fn expect_exactly_once(nats: &Nats, clients: usize, lines: usize) {
    let mut client = nats.client();
    let state = client.stream_state(STREAM).expect("stream state");
    let mut seen: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut tokens: HashMap<usize, u64> = HashMap::new();
    let count = usize::try_from(state.last_seq).expect("a small stream");
    let stored = client.messages(STREAM, 1, count).expect("read the stream");
    for (seq, msg) in (1..).zip(stored) {
        let msg = msg.unwrap_or_else(|| panic!("stream message {seq} missing"));
        let text = String::from_utf8(msg.data.clone()).expect("UTF-8");
        let (k, n) = text
            .strip_prefix('c')
            .and_then(|t| t.split_once(' '))
            .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("unexpected message {text:?}"));
        let (token, msg_seq) = msg
            .msg_id()
            .and_then(parse_msg_id)
            .unwrap_or_else(|| panic!("{text:?} without a soquete Nats-Msg-Id"));
        assert_eq!(msg_seq, n as u64 + 1, "{text:?}: Nats-Msg-Id {:?}", msg.msg_id());
        let session = *tokens.entry(k).or_insert(token);
        assert_eq!(token, session, "client {k}'s lines in two sessions");
        assert_eq!(
            msg.subject,
            format!("soquete.{}.{token:016x}", encode_name(name(k).as_bytes()))
        );
        seen.entry(k).or_default().push(n);
    }
    for k in 0..clients {
        let got = seen.remove(&k).unwrap_or_default();
        let in_order = got.windows(2).all(|w| w[0] + 1 == w[1]);
        assert!(
            got.len() == lines && in_order && got.first() == Some(&0),
            "client {k}: {} of {lines} lines stored, each once and in order: {in_order}",
            got.len()
        );
    }
    assert!(seen.is_empty(), "lines of unknown clients");
    assert_eq!(state.messages, (clients * lines) as u64);
}

#[test]
fn nats_killed_and_restarted_mid_stream_stores_every_line_once() {
    const CLIENTS: usize = 4;
    const LINES: usize = 10_000;
    let mut nats = Nats::start();
    // At the default log level: the operator's view of the outage.
    let mut server = Watched::server(&["--forward", &nats.url()], "warn");
    let clients = start_clients(&server.addr.to_string(), CLIENTS, LINES);

    nats.wait_stored((CLIENTS * LINES / 4) as u64);
    nats.kill();
    nats.restart();

    expect_all_acknowledged(clients, LINES);
    expect_exactly_once(&nats, CLIENTS, LINES);

    // One warning for the outage, one line for the recovery, at the same level.
    let paused = server.stderr_line(|l| l.contains("acknowledgements paused"));
    let back = server.stderr_line(|l| l.contains(" back after "));
    assert!(paused.contains("WARN"), "{paused}");
    assert!(back.contains("WARN"), "{back}");
    assert!(
        !paused.contains("refused publish"),
        "a restart is not a refusal: {paused}"
    );
    let again: Vec<String> = server
        .stderr
        .try_iter()
        .filter(|l| l.contains("acknowledgements paused"))
        .collect();
    assert!(again.is_empty(), "one warning per outage: {again:?}");
}

#[test]
fn clients_of_a_killed_server_resume_on_another_exactly_once() {
    const CLIENTS: usize = 4;
    const LINES: usize = 5_000;
    let nats = Nats::start();
    let mut first = Server::start(&["--forward", &nats.url()]);
    let addr = first.addr.to_string();
    let clients = start_clients(&addr, CLIENTS, LINES);

    nats.wait_stored((CLIENTS * LINES / 4) as u64);
    first.signal("KILL");
    let _ = first.finish(LIMIT);
    // Another server (standing for another machine) on the same address.
    let mut second = Server::start_on(&addr, &["--forward", &nats.url()]);

    expect_all_acknowledged(clients, LINES);
    expect_exactly_once(&nats, CLIENTS, LINES);
    second.wait_for(LIMIT, |l| l.contains(" resumed after "));
}

#[test]
fn nothing_is_acknowledged_while_nats_is_unreachable() {
    // Unreachable at start: the server says so and exits.
    let nats = Nats::start();
    let addr = nats.addr.clone();
    drop(nats);
    let out = soquete()
        .args(["server", "--listen", "127.0.0.1:0", "--forward", &addr])
        .stdin(Stdio::null())
        .output()
        .expect("run soquete server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot forward to NATS JetStream at"), "{stderr}");

    // A NATS that takes smaller messages than clients may send: said at start too,
    // rather than one large message stopping everything behind it later.
    let mut nats = Nats::start();
    let out = soquete()
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--max-message",
            "2000000",
            "--forward",
            &nats.url(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run soquete server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lower --max-message"), "{stderr}");

    // Gone after start: nothing is acknowledged, the client gives up.
    let server = Server::start(&["--forward", &nats.url()]);
    nats.kill();
    let mut c = ClientProcess::start(&server.addr.to_string(), &["--timeout", "1s"], LIMIT);
    c.feed(input(0, 3));
    let (code, _, stderr) = c.wait();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("3 of 3 messages not acknowledged"), "{stderr}");
}

#[test]
fn a_session_moving_between_servers_and_back_resumes_where_the_stream_stands() {
    let nats = Nats::start();
    let mut servers = [
        Server::in_process(&["--forward", &nats.url()]),
        Server::in_process(&["--forward", &nats.url()]),
    ];
    let mut c = BinClient::connect(servers[0].addr, "roamer");
    let mut sent = 0;
    // On A, then on B (which never saw the session), then on A again, which saw it
    // only up to where it was lost there: the stream knows better.
    for (i, last) in [(0, false), (1, false), (0, true)] {
        let server = &mut servers[i];
        if sent > 0 {
            c.reconnect(server.addr);
            assert_eq!(c.established, Some(true), "session not resumed: {:?}", c.closed);
            server.wait_for(WAIT, |l| l.contains(&format!(" resumed after {sent} messages")));
        }
        for _ in 0..10 {
            c.send(format!("m{sent}").as_bytes());
            sent += 1;
        }
        c.wait("the acknowledgements", |c| c.acked == sent);
        if !last {
            c.cut();
            server.wait_for(WAIT, |l| l.contains(" lost ("));
        }
    }
    c.close();

    let mut reader = nats.client();
    let stored = reader.messages(STREAM, 1, 31).expect("read the stream");
    let texts: Vec<String> = stored
        .iter()
        .flatten()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect();
    let expected: Vec<String> = (0..30).map(|n| format!("m{n}")).collect();
    assert_eq!(texts, expected);
    let ids: Vec<u64> = stored
        .iter()
        .flatten()
        .filter_map(|m| m.msg_id().and_then(parse_msg_id))
        .map(|(_, seq)| seq)
        .collect();
    assert_eq!(ids, (1..=30).collect::<Vec<u64>>());
}

/// A server's key pair and an allowed device's ("sensor-1"), in a temp dir.
struct Keys {
    _dir: tempfile::TempDir,
    server: String,
    server_pub: String,
    device: String,
    allowed: String,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, server_pub) = keygen(dir.path(), "server");
        let (device, device_pub) = keygen(dir.path(), "device");
        let allowed = dir.path().join("allowed");
        std::fs::write(&allowed, format!("{device_pub} sensor-1\n")).expect("write allowed keys");
        Keys {
            server,
            server_pub,
            device,
            allowed: allowed.to_str().expect("UTF-8 path").to_owned(),
            _dir: dir,
        }
    }
}

/// Every stored message, as (subject, `Soquete-Auth` header, text, session token,
/// sequence number).
fn stored(nats: &Nats) -> Vec<(String, Option<String>, String, u64, u64)> {
    let mut client = nats.client();
    let state = client.stream_state(STREAM).expect("stream state");
    let count = usize::try_from(state.last_seq).expect("a small stream");
    let stored = client.messages(STREAM, 1, count).expect("read the stream");
    (1..)
        .zip(stored)
        .map(|(seq, msg)| {
            let msg = msg.unwrap_or_else(|| panic!("stream message {seq} missing"));
            let (token, msg_seq) = msg
                .msg_id()
                .and_then(parse_msg_id)
                .unwrap_or_else(|| panic!("message {seq} without a soquete Nats-Msg-Id"));
            let auth = header(&msg.headers, "Soquete-Auth").map(str::to_owned);
            let text = String::from_utf8(msg.data).expect("UTF-8");
            (msg.subject, auth, text, token, msg_seq)
        })
        .collect()
}

#[test]
fn messages_of_authenticated_peers_carry_their_name_and_others_none() {
    let keys = Keys::new();
    let nats = Nats::start();
    let url = nats.url();
    let server = Server::start(&[
        "--forward",
        &url,
        "--forward-subject",
        "soquete.{auth}.{name}.{token}",
        "--key",
        &keys.server,
        "--allowed-keys",
        &keys.allowed,
    ]);
    let addr = server.addr.to_string();
    // A secure peer that calls itself "ana", and one that is not secure.
    let secure = [
        "--key",
        keys.device.as_str(),
        "--server-key",
        keys.server_pub.as_str(),
        "--name",
        "ana",
    ];
    for args in [&secure[..], &["--name", "bob"][..]] {
        let mut c = ClientProcess::start(&addr, args, LIMIT);
        c.feed(input(0, 5));
        let (code, _, stderr) = c.wait();
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(stderr.contains("sent 5 messages, 5 acknowledged"), "{stderr}");
    }

    let stored = stored(&nats);
    assert_eq!(stored.len(), 10, "{stored:?}");
    for (i, (subject, auth, text, token, seq)) in stored.iter().enumerate() {
        let n = i % 5;
        assert_eq!(text, &format!("c0 {n}"));
        assert_eq!(*seq, n as u64 + 1);
        if i < 5 {
            assert_eq!(auth.as_deref(), Some("sensor-1"), "{text}");
            assert_eq!(subject, &format!("soquete.sensor-1.ana.{token:016x}"));
        } else {
            // Not authenticated: no header, and `%` for `{auth}`.
            assert_eq!(auth.as_deref(), None, "{text}");
            assert_eq!(subject, &format!("soquete.%.bob.{token:016x}"));
        }
    }
}

#[test]
fn an_authenticated_session_resumes_on_another_server_under_its_name_exactly_once() {
    const HALF: usize = 2_000;
    let keys = Keys::new();
    let nats = Nats::start();
    let url = nats.url();
    let args = [
        "--forward",
        &url,
        "--forward-subject",
        "soquete.{auth}.{token}",
        "--key",
        &keys.server,
        "--allowed-keys",
        &keys.allowed,
        "--require-auth",
        "--json",
    ];
    let mut first = Server::start(&args);
    let addr = first.addr.to_string();
    let mut c = ClientProcess::start(
        &addr,
        &[
            "--key",
            &keys.device,
            "--server-key",
            &keys.server_pub,
            "--name",
            "ana",
            "--reconnect",
            "--reconnect-for",
            "30s",
        ],
        LIMIT,
    );
    let mut lines = (0..2).map(|k| {
        (0..HALF)
            .flat_map(move |n| format!("c0 {}\n", k * HALF + n).into_bytes())
            .collect::<Vec<u8>>()
    });
    // The first half stored; then the server dies with the client still connected,
    // and another takes its address: it knows the session only from the stream,
    // on the subject of the client's authenticated name.
    let _ = c.write(lines.next().expect("first half"));
    nats.wait_stored(HALF as u64);
    first.signal("KILL");
    let _ = first.finish(LIMIT);
    let mut second = Server::start_on(&addr, &args);
    let _ = c.feed(lines.next().expect("second half"));
    let (code, _, stderr) = c.wait();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("sent {0} messages, {0} acknowledged", 2 * HALF)),
        "{stderr}"
    );

    let resumed = second.wait_for(LIMIT, |l| l.contains(r#""event":"resumed""#));
    let resumed: serde_json::Value = serde_json::from_str(&resumed).expect("a JSON line");
    assert_eq!(resumed["auth"], "sensor-1", "{resumed}");
    assert_eq!(resumed["messages"], HALF as u64, "{resumed}");

    let stored = stored(&nats);
    assert_eq!(stored.len(), 2 * HALF, "each line stored once");
    let token = stored[0].3;
    for (n, (subject, auth, text, t, seq)) in stored.iter().enumerate() {
        assert_eq!(text, &format!("c0 {n}"));
        assert_eq!((*t, *seq), (token, n as u64 + 1), "{text}");
        assert_eq!(auth.as_deref(), Some("sensor-1"), "{text}");
        assert_eq!(subject, &format!("soquete.sensor-1.{token:016x}"));
    }
}

#[test]
fn a_secure_session_does_not_resume_from_the_stream_for_a_peer_without_its_key() {
    let keys = Keys::new();
    let nats = Nats::start();
    let url = nats.url();
    let args = [
        "--forward",
        &url,
        "--key",
        &keys.server,
        "--allowed-keys",
        &keys.allowed,
        "--json",
    ];
    let mut first = Server::start(&args);
    let mut owner = ClientProcess::start(
        &first.addr.to_string(),
        &[
            "--key",
            &keys.device,
            "--server-key",
            &keys.server_pub,
            "--name",
            "owner",
        ],
        LIMIT,
    );
    let _ = owner.write(b"first\n".to_vec());
    let json = |l: &str| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line");
    // The token is in the stream (the `Nats-Msg-Id` of each message).
    nats.wait_stored(1);
    let stored = stored(&nats);
    assert_eq!(stored[0].1.as_deref(), Some("sensor-1"));
    let token = stored[0].3;
    // The server dies; a second one knows the session only from the stream.
    first.signal("KILL");
    let _ = first.finish(LIMIT);
    let (code, _, stderr) = owner.wait();
    assert_ne!(code, 0, "{stderr}");
    let mut second = Server::start(&args);

    // Binary peers that are not secure ask to resume there with the token: under the
    // owner's name (the session's own subject) and under another (whose subject holds
    // nothing): the server finds the session's last message either way, and in it
    // whose session it is.
    for name in ["owner", "mallory"] {
        let mut hello = vec![0xfe, 0x53, 0x51, 0x54, 0x01, 0, 0, 0, 27 + name.len() as u8];
        hello.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0x75, 0x30]);
        hello.extend_from_slice(&token.to_be_bytes());
        hello.extend_from_slice(&[0; 8]);
        hello.push(name.len() as u8);
        hello.extend_from_slice(name.as_bytes());
        let mut peer = plain(second.addr);
        peer.write_all(&hello).expect("send HELLO");
        let mut welcome = [0u8; 4 + 5 + 26];
        peer.read_exact(&mut welcome).expect("WELCOME");
        assert_eq!(welcome[4], 0x02, "{name}: WELCOME: {welcome:02x?}");
        assert_eq!(welcome[10] & 1, 0, "{name}: not resumed");
        assert_ne!(welcome[15..23], token.to_be_bytes(), "{name}: another session's token");
        let connected = json(&second.wait_for(LIMIT, |l| {
            l.contains(r#""event":"connected""#) && l.contains(&format!(r#""name":"{name}""#))
        }));
        assert!(connected.get("auth").is_none(), "{connected}");
    }
    assert!(
        !second.seen.iter().any(|l| l.contains(r#""event":"resumed""#)),
        "{:?}",
        second.seen
    );
}
