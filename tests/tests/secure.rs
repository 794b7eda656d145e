//! The secure mode (PROTOCOL.md §10) through the real `soquete` binary: keys made
//! with `soquete keygen`, a server with `--key` and `--allowed-keys`, clients with
//! `--key` and `--server-key`, and a proxy on 127.0.0.1 between them that records
//! the bytes, flips one, or cuts the connection.
//!
//! Readiness is always a printed line, a socket read or a process's exit; nothing
//! sleeps.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use soquete_tests::{keygen, messages_of, plain, read_to_eof, soquete, ClientProcess, Server, WAIT};

/// Longest a client process may take in these tests.
const LIMIT: Duration = Duration::from_secs(30);

/// A fresh, empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("secure-{test}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server's keys and one allowed device ("sensor-1"), plus a device not allowed.
struct Keys {
    dir: PathBuf,
    server: String,
    server_pub: String,
    device: String,
    stranger: String,
    stranger_pub: String,
    allowed: String,
}

impl Keys {
    fn new(test: &str) -> Keys {
        let dir = scratch(test);
        let (server, server_pub) = keygen(&dir, "server");
        let (device, device_pub) = keygen(&dir, "device");
        let (stranger, stranger_pub) = keygen(&dir, "stranger");
        let allowed = dir.join("allowed").to_str().unwrap().to_owned();
        fs::write(&allowed, format!("# devices\n{device_pub} sensor-1\n")).unwrap();
        Keys {
            dir,
            server,
            server_pub,
            device,
            stranger,
            stranger_pub,
            allowed,
        }
    }

    /// `--key SERVER --allowed-keys ALLOWED`, then `extra`.
    fn server_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--key", self.server.as_str(), "--allowed-keys", self.allowed.as_str()];
        args.extend_from_slice(extra);
        args
    }

    /// `--key KEY --server-key SERVER_PUB`, then `extra`.
    fn client_args<'a>(&'a self, key: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--key", key, "--server-key", self.server_pub.as_str()];
        args.extend_from_slice(extra);
        args
    }
}

/// Runs a client with `lines` as its input; returns exit code, stdout, stderr.
fn client(addr: SocketAddr, args: &[&str], lines: &[String]) -> (i32, String, String) {
    let mut c = ClientProcess::start(&addr.to_string(), args, LIMIT);
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let feeder = c.feed(input.into_bytes());
    let result = c.wait();
    let _ = feeder.join();
    result
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|j| format!("{prefix}-{j:04}-confidential")).collect()
}

/// Bytes recorded by a proxy thread while the test reads them.
type Recording = Arc<Mutex<Vec<u8>>>;

/// What a [`Proxy`] does to one direction of its first connection.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Forward faithfully.
    None,
    /// Flip a byte inside the DATA record with this index (0: the first after the
    /// handshake message), client to server.
    FlipUp(usize),
    /// The same, server to client.
    FlipDown(usize),
    /// Close both sides after this many bytes from the client.
    CutAfter(usize),
}

/// A proxy on 127.0.0.1 that records both directions of every connection and applies
/// its fault to the first one.
struct Proxy {
    addr: SocketAddr,
    /// Client-to-server and server-to-client bytes, over all connections.
    up: Arc<Mutex<Vec<u8>>>,
    down: Arc<Mutex<Vec<u8>>>,
    /// Both sockets of every connection, for [`Proxy::cut`].
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    /// Client-to-server bytes of each connection.
    each_up: Arc<Mutex<Vec<Recording>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (u, d, s, all) = (
            Arc::clone(&up),
            Arc::clone(&down),
            Arc::clone(&stop),
            Arc::clone(&sockets),
        );
        let each_up = Arc::new(Mutex::new(Vec::new()));
        let each = Arc::clone(&each_up);
        thread::spawn(move || {
            let mut fault = fault;
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let this = std::mem::replace(&mut fault, Fault::None);
                let (flip_up, flip_down, cut) = match this {
                    Fault::None => (None, None, None),
                    Fault::FlipUp(k) => (Some(k), None, None),
                    Fault::FlipDown(k) => (None, Some(k), None),
                    Fault::CutAfter(n) => (None, None, Some(n)),
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                all.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let d = Arc::clone(&d);
                thread::spawn(move || forward(s2, c2, &[d], flip_down, None));
                let mine = Arc::new(Mutex::new(Vec::new()));
                each.lock().unwrap().push(Arc::clone(&mine));
                let u = Arc::clone(&u);
                thread::spawn(move || forward(client, server, &[u, mine], flip_up, cut));
            }
        });
        Proxy {
            addr,
            up,
            down,
            sockets,
            each_up,
            stop,
        }
    }

    /// What the client of connection `i` (from 0) sent so far.
    fn up_of(&self, i: usize) -> Vec<u8> {
        self.each_up.lock().unwrap()[i].lock().unwrap().clone()
    }

    /// Closes both sides of every connection so far.
    fn cut(&self) {
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) -> Vec<u8> {
        self.up.lock().unwrap().clone()
    }

    fn down(&self) -> Vec<u8> {
        self.down.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Where the byte to flip is in a secure stream seen so far: inside the body of the
/// DATA record `k` (records after the magic; record 0 is the handshake message).
fn flip_offset(stream: &[u8], k: usize) -> Option<usize> {
    let mut pos = 4;
    let mut index = 0;
    loop {
        let head = stream.get(pos..pos + 3)?;
        if index == k + 1 {
            return Some(pos + 5);
        }
        pos += 3 + usize::from(u16::from_be_bytes([head[1], head[2]]));
        index += 1;
    }
}

/// Copies `from` to `to`, recording what passes; flips one byte of DATA record
/// `flip`, or closes both sides after `cut` bytes.
fn forward(mut from: TcpStream, mut to: TcpStream, records: &[Recording], flip: Option<usize>, cut: Option<usize>) {
    let mut seen = Vec::new();
    let mut flipped = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let want = cut.map_or(buf.len(), |c| buf.len().min(c - seen.len()));
        let n = match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let start = seen.len();
        seen.extend_from_slice(&buf[..n]);
        for record in records {
            record.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        if let (Some(k), false) = (flip, flipped) {
            if let Some(at) = flip_offset(&seen, k).filter(|&at| at >= start && at < start + n) {
                buf[at - start] ^= 0x01;
                flipped = true;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if cut.is_some_and(|c| seen.len() >= c) {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn allowed_key_is_shown_under_its_authenticated_name_and_the_wire_shows_nothing() {
    let keys = Keys::new("allowed");
    let mut server = Server::start(&keys.server_args(&[]));
    let proxy = Proxy::start(server.addr, Fault::None);
    let lines = numbered("secret-message", 20);
    let name = "ana-the-self-declared";
    let (code, _, stderr) = client(proxy.addr, &keys.client_args(&keys.device, &["--name", name]), &lines);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("sent 20 messages, 20 acknowledged"), "{stderr}");

    let connected = server.wait_for(WAIT, |l| l.contains(" connected"));
    assert!(
        connected.ends_with(&format!("connected as \"{name}\" (authenticated as \"sensor-1\")")),
        "{connected}"
    );
    let id = connected.split(' ').next().unwrap().to_owned();
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
    assert_eq!(messages_of(&server.seen, &id), lines);

    let (up, down) = (proxy.up(), proxy.down());
    assert!(up.starts_with(&[0xfe, 0x53, 0x51, 0x4e]) && down.starts_with(&[0xfe, 0x53, 0x51, 0x4e]));
    for text in lines
        .iter()
        .map(String::as_bytes)
        .chain([name.as_bytes(), b"confidential"])
    {
        assert!(
            !contains(&up, text) && !contains(&down, text),
            "{:?} on the wire",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn json_lines_record_the_authenticated_name_apart_from_the_declared_one_and_the_token_stays_off_the_wire() {
    let keys = Keys::new("json");
    let mut server = Server::start(&keys.server_args(&["--json"]));
    let proxy = Proxy::start(server.addr, Fault::None);
    let lines = numbered("json-message", 3);
    let (code, _, stderr) = client(
        proxy.addr,
        &keys.client_args(&keys.device, &["--name", "ana-json-client"]),
        &lines,
    );
    assert_eq!(code, 0, "{stderr}");

    let json = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap();
    let connected = json(&server.wait_for(WAIT, |l| l.contains(r#""event":"connected""#)));
    assert_eq!(connected["mode"], "binary");
    assert_eq!(connected["name"], "ana-json-client");
    assert_eq!(connected["auth"], "sensor-1");
    let message = json(&server.wait_for(WAIT, |l| l.contains(r#""event":"message""#)));
    assert_eq!(
        (&message["name"], &message["auth"]),
        (&"ana-json-client".into(), &"sensor-1".into())
    );
    assert_eq!(message["text"], lines[0].as_str());

    let token = u64::from_str_radix(message["session"].as_str().unwrap(), 16).unwrap();
    let (up, down) = (proxy.up(), proxy.down());
    for bytes in [token.to_be_bytes(), token.to_le_bytes()] {
        assert!(
            !contains(&up, &bytes) && !contains(&down, &bytes),
            "the token on the wire"
        );
    }
}

#[test]
fn unknown_key_is_refused_and_the_server_names_it() {
    let keys = Keys::new("unknown");
    let mut server = Server::start(&keys.server_args(&[]));
    let (code, _, stderr) = client(server.addr, &keys.client_args(&keys.stranger, &[]), &numbered("x", 1));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refused this client's key"), "{stderr}");
    assert!(stderr.contains(&keys.stranger_pub), "says which key: {stderr}");
    let refused = server.wait_for(WAIT, |l| l.contains(" refused ("));
    assert!(
        refused.ends_with(&format!("refused (unknown key {})", keys.stranger_pub)),
        "{refused}"
    );
    assert!(
        !server.seen.iter().any(|l| l.contains(" connected")),
        "{:?}",
        server.seen
    );
}

#[test]
fn wrong_server_key_is_detected_and_the_client_sends_nothing_but_its_handshake() {
    let keys = Keys::new("wrong-server");
    let mut server = Server::start(&keys.server_args(&[]));
    let proxy = Proxy::start(server.addr, Fault::None);
    // The client expects the key of another server (here, another device's).
    let args = [
        "--key",
        keys.device.as_str(),
        "--server-key",
        keys.stranger_pub.as_str(),
    ];
    let (code, _, stderr) = client(proxy.addr, &args, &numbered("never-sent", 5));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("could not prove its identity"), "{stderr}");
    assert!(stderr.contains("man in the middle"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(!last.contains('('), "one sentence, no nested parentheses: {last}");
    let refused = server.wait_for(WAIT, |l| l.contains(" refused ("));
    assert!(refused.contains("handshake failed"), "{refused}");

    // Magic, then exactly one record: INIT.
    let up = proxy.up();
    assert_eq!(up.get(4), Some(&0x01), "INIT first");
    let len = usize::from(u16::from_be_bytes([up[5], up[6]]));
    assert_eq!(up.len(), 4 + 3 + len, "nothing after INIT");
}

#[test]
fn require_auth_refuses_plain_and_binary_peers_and_lets_secure_ones_in() {
    let keys = Keys::new("require");
    let mut server = Server::start(&keys.server_args(&["--require-auth"]));

    let mut nc = plain(server.addr);
    nc.write_all(b"hello from nc\n").unwrap();
    let answer = read_to_eof(&mut nc);
    assert_eq!(answer, b"ERR authentication required (secure clients only)\n");
    let refused = server.wait_for(WAIT, |l| l.contains(" refused ("));
    assert!(
        refused.ends_with("refused (authentication required (secure clients only))"),
        "{refused}"
    );

    let (code, _, stderr) = client(server.addr, &["--name", "bin"], &numbered("b", 1));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refused the session: authentication required"),
        "{stderr}"
    );
    server.wait_for(WAIT, |l| l.contains(" refused (authentication required"));

    let (code, _, stderr) = client(
        server.addr,
        &keys.client_args(&keys.device, &["--name", "sec"]),
        &numbered("s", 2),
    );
    assert_eq!(code, 0, "{stderr}");
    let connected = server.wait_for(WAIT, |l| l.contains(" connected"));
    assert!(
        connected.ends_with("connected as \"sec\" (authenticated as \"sensor-1\")"),
        "{connected}"
    );
    assert!(!server
        .seen
        .iter()
        .any(|l| l.contains("hello from nc") || l.contains(": b-")));
}

#[test]
fn without_require_auth_secure_binary_and_plain_peers_are_served_side_by_side() {
    let keys = Keys::new("side-by-side");
    let mut server = Server::start(&keys.server_args(&[]));
    let (code, _, stderr) = client(server.addr, &["--name", "bin"], &numbered("b", 1));
    assert_eq!(code, 0, "{stderr}");
    let bin = server.wait_for(WAIT, |l| l.contains(" connected"));
    assert!(bin.ends_with("connected as \"bin\""), "{bin}");
    // The server's key from a file, as `soquete keygen` printed it.
    let server_pub = keys.dir.join("server.pub");
    fs::write(&server_pub, format!("{}\n", keys.server_pub)).unwrap();
    let args = [
        "--key",
        &keys.device,
        "--server-key",
        server_pub.to_str().unwrap(),
        "--name",
        "sec",
    ];
    let (code, _, stderr) = client(server.addr, &args, &numbered("s", 1));
    assert_eq!(code, 0, "{stderr}");
    let sec = server.wait_for(WAIT, |l| l.contains(" connected"));
    assert!(
        sec.ends_with("connected as \"sec\" (authenticated as \"sensor-1\")"),
        "{sec}"
    );
    let mut nc = plain(server.addr);
    nc.write_all(b"plain line\n").unwrap();
    nc.shutdown(Shutdown::Write).unwrap();
    let pl = server.wait_for(WAIT, |l| l.contains(" connected"));
    assert!(pl.ends_with("connected (plain text)"), "{pl}");
    server.wait_for(WAIT, |l| l.ends_with(": plain line"));
}

#[test]
fn a_flipped_byte_from_the_server_aborts_the_session_and_the_client_says_so() {
    let keys = Keys::new("flip-down");
    let mut server = Server::start(&keys.server_args(&[]));
    let proxy = Proxy::start(server.addr, Fault::FlipDown(0));
    let (code, _, stderr) = client(
        proxy.addr,
        &keys.client_args(&keys.device, &["--name", "flip"]),
        &numbered("f", 20),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("record failed authentication"), "{stderr}");
    let id = server.named_session_auth("flip");
    server.wait_for(WAIT, |l| {
        l.starts_with(&format!("{id} ")) && (l.contains(" lost (") || l.contains(" left ("))
    });
}

#[test]
fn a_flipped_byte_from_the_client_aborts_the_session_on_the_server() {
    let keys = Keys::new("flip-up");
    let mut server = Server::start(&keys.server_args(&[]));
    // Record 0 is the key confirmation; record 1 carries the first messages.
    let proxy = Proxy::start(server.addr, Fault::FlipUp(1));
    let lines = numbered("u", 50);
    let (code, _, stderr) = client(proxy.addr, &keys.client_args(&keys.device, &["--name", "flop"]), &lines);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not acknowledged"), "{stderr}");
    let id = server.named_session_auth("flop");
    let lost = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" lost ("));
    assert!(lost.contains("record failed authentication"), "{lost}");
    // What the server printed is a prefix of what was sent, nothing altered.
    let printed = messages_of(&server.seen, &id);
    assert!(
        printed.len() < lines.len() && lines.starts_with(&printed),
        "{printed:?}"
    );
}

#[test]
fn resume_across_a_new_handshake_loses_and_repeats_nothing() {
    let keys = Keys::new("resume");
    let mut server = Server::start(&keys.server_args(&[]));
    // Cut the first connection in the middle of its stream of records.
    let proxy = Proxy::start(server.addr, Fault::CutAfter(3000));
    let lines = numbered("r", 400);
    let (code, _, stderr) = client(
        proxy.addr,
        &keys.client_args(&keys.device, &["--name", "resumer", "--reconnect"]),
        &lines,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("sent 400 messages, 400 acknowledged, 0 received (1 reconnect, 1 session resumed)"),
        "{stderr}"
    );
    let id = server.named_session_auth("resumer");
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
    assert!(server
        .seen
        .iter()
        .any(|l| l.starts_with(&format!("{id} ")) && l.contains(" resumed after ")));
    assert_eq!(messages_of(&server.seen, &id), lines);
}

/// A server binary whose stderr (with `RUST_LOG=info`) the test reads too.
fn server_with_log(args: &[&str]) -> (Child, SocketAddr, Receiver<String>, Receiver<String>) {
    let mut child = soquete()
        .env("RUST_LOG", "info")
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = |r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        rx
    };
    let out = lines(Box::new(child.stdout.take().unwrap()));
    let err = lines(Box::new(child.stderr.take().unwrap()));
    let first = out.recv_timeout(WAIT).unwrap();
    let addr = first.strip_prefix("listening on ").unwrap().parse().unwrap();
    (child, addr, out, err)
}

fn wait_line(rx: &Receiver<String>, what: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no line with {what:?}"));
        if line.contains(what) {
            return line;
        }
    }
}

#[test]
fn sighup_reads_the_allowed_keys_again() {
    let keys = Keys::new("sighup");
    let (mut child, addr, out, err) = server_with_log(&keys.server_args(&[]));
    let (code, _, stderr) = client(addr, &keys.client_args(&keys.stranger, &[]), &numbered("n", 1));
    assert_eq!(code, 1, "{stderr}");
    wait_line(&out, &format!("refused (unknown key {})", keys.stranger_pub));
    // The server's log says how to let it in.
    let hint = wait_line(&err, "unknown client key");
    assert!(hint.contains(&format!("\"{} NAME\"", keys.stranger_pub)), "{hint}");

    let mut file = fs::OpenOptions::new().append(true).open(&keys.allowed).unwrap();
    writeln!(file, "{} newcomer", keys.stranger_pub).unwrap();
    drop(file);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_line(&err, "allowed keys read again: 2 keys");

    let (code, _, stderr) = client(
        addr,
        &keys.client_args(&keys.stranger, &["--name", "n"]),
        &numbered("n", 2),
    );
    assert_eq!(code, 0, "{stderr}");
    let connected = wait_line(&out, " connected");
    assert!(
        connected.ends_with("connected as \"n\" (authenticated as \"newcomer\")"),
        "{connected}"
    );
    let _ = fs::remove_dir_all(&keys.dir);
    let _ = child.kill();
    let _ = child.wait();
}

/// The session id of a connected line for a client named `name`, authenticated or not.
trait NamedAuth {
    fn named_session_auth(&mut self, name: &str) -> String;
}

impl NamedAuth for Server {
    fn named_session_auth(&mut self, name: &str) -> String {
        let needle = format!("connected as \"{name}\" (authenticated as ");
        self.session_id(|l| l.contains(&needle))
    }
}

#[test]
fn a_secure_session_does_not_resume_for_a_peer_without_its_key() {
    let keys = Keys::new("resume-key");
    let mut server = Server::start(&keys.server_args(&["--json"]));
    // The secure client's connection is cut after its first message: its session
    // waits for a resume.
    let proxy = Proxy::start(server.addr, Fault::None);
    let mut owner = ClientProcess::start(
        &proxy.addr.to_string(),
        &keys.client_args(&keys.device, &["--name", "owner"]),
        LIMIT,
    );
    let _ = owner.write(b"first\n".to_vec()).join();
    let json = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap();
    let message = json(&server.wait_for(WAIT, |l| l.contains(r#""event":"message""#)));
    let token = u64::from_str_radix(message["session"].as_str().unwrap(), 16).unwrap();
    proxy.cut();
    let lost = json(&server.wait_for(WAIT, |l| l.contains(r#""event":"lost""#)));
    owner.close_stdin();
    let (code, _, stderr) = owner.wait();
    assert_eq!(code, 1, "{stderr}");

    // A binary peer that knows the token (it is in the server's output) asks to resume.
    let mut hello = vec![0xfe, 0x53, 0x51, 0x54, 0x01, 0, 0, 0, 27 + 7];
    hello.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0x75, 0x30]);
    hello.extend_from_slice(&token.to_be_bytes());
    hello.extend_from_slice(&[0; 8]);
    hello.push(7);
    hello.extend_from_slice(b"mallory");
    let mut peer = plain(server.addr);
    peer.write_all(&hello).unwrap();
    let mut welcome = [0u8; 4 + 5 + 26];
    peer.read_exact(&mut welcome).unwrap();
    assert_eq!(welcome[4], 0x02, "WELCOME: {welcome:02x?}");
    assert_eq!(welcome[10] & 1, 0, "not resumed");
    assert_ne!(welcome[15..23], token.to_be_bytes(), "another session's token");
    let connected = json(&server.wait_for(WAIT, |l| l.contains(r#""event":"connected""#) && l.contains("mallory")));
    assert_ne!(connected["id"], lost["id"]);
    assert!(connected.get("auth").is_none());
    assert!(
        !server.seen.iter().any(|l| l.contains(r#""event":"resumed""#)),
        "{:?}",
        server.seen
    );
}

#[test]
fn a_replayed_handshake_does_not_take_over_the_live_connection() {
    let keys = Keys::new("replay");
    let mut server = Server::start(&keys.server_args(&[]));
    let proxy = Proxy::start(server.addr, Fault::None);
    let mut c = ClientProcess::start(
        &proxy.addr.to_string(),
        &keys.client_args(&keys.device, &["--name", "replayed", "--reconnect"]),
        LIMIT,
    );
    let _ = c.write(b"one\n".to_vec()).join();
    let id = server.named_session_auth("replayed");
    server.wait_for(WAIT, |l| l.ends_with(": one"));
    // The client resumes on a second connection, whose INIT carries the token.
    proxy.cut();
    server.wait_for(WAIT, |l| {
        l.starts_with(&format!("{id} ")) && l.contains(" resumed after ")
    });
    let _ = c.write(b"two\n".to_vec()).join();
    server.wait_for(WAIT, |l| l.ends_with(": two"));

    // Someone who recorded that INIT plays it again, straight to the server.
    let up = proxy.up_of(1);
    let init_len = 4 + 3 + usize::from(u16::from_be_bytes([up[5], up[6]]));
    let mut replay = plain(server.addr);
    replay.write_all(&up[..init_len]).unwrap();
    // The server answers the handshake (the replayer cannot read the answer)...
    let mut resp = [0u8; 4 + 3];
    replay.read_exact(&mut resp).unwrap();
    assert_eq!(&resp[..5], &[0xfe, 0x53, 0x51, 0x4e, 0x02], "RESP");

    // ...but the live connection goes on: nothing is taken over or lost.
    let _ = c.write(b"three\n".to_vec()).join();
    server.wait_for(WAIT, |l| l.ends_with(": three"));
    c.close_stdin();
    let (code, _, stderr) = c.wait();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("sent 3 messages, 3 acknowledged, 0 received (1 reconnect, 1 session resumed)"),
        "{stderr}"
    );
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
    assert_eq!(messages_of(&server.seen, &id), ["one", "two", "three"]);
    assert!(
        !server.seen.iter().any(|l| l.contains("taken over")),
        "{:?}",
        server.seen
    );
}

#[test]
fn a_handshake_that_never_finishes_ends_at_the_handshake_timeout() {
    let keys = Keys::new("stalled");
    let mut server = Server::start(&keys.server_args(&[]));
    let mut peer = TcpStream::connect(server.addr).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The magic and the start of an INIT, then nothing.
    peer.write_all(&[0xfe, 0x53, 0x51, 0x4e, 0x01, 0x00, 0x62, 0xaa, 0xbb])
        .unwrap();
    let started = std::time::Instant::now();
    let answer = read_to_eof(&mut peer);
    // magic + ALERT HANDSHAKE_TIMEOUT, in clear (nothing was authenticated).
    assert_eq!(answer, [0xfe, 0x53, 0x51, 0x4e, 0x04, 0x00, 0x01, 0x03]);
    assert!(started.elapsed() >= Duration::from_secs(5), "{:?}", started.elapsed());
    // A connection that never became a session prints nothing.
    assert!(server.next_line(Duration::ZERO).is_none(), "{:?}", server.seen);
}

#[test]
fn a_secure_client_says_so_when_the_server_has_no_secure_mode() {
    let keys = Keys::new("no-secure-mode");
    let server = Server::start(&[]);
    let (code, _, stderr) = client(server.addr, &keys.client_args(&keys.device, &[]), &numbered("x", 1));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not speak the secure mode"), "{stderr}");
}
