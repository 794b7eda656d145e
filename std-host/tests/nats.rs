//! The JetStream publisher against a real `nats-server -js` (Debian package
//! `nats-server`), started by each test on 127.0.0.1 with storage in a temp dir.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use soquete_host::sink::nats::{Client, Error, Options};

/// A `nats-server` child process, killed on drop.
struct NatsServer {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a port of its choosing (`-p -1`) and waits until its log
    /// says it is ready, then until it accepts a client.
    fn start(jetstream: bool) -> NatsServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", "-1"]);
        if jetstream {
            cmd.arg("-js").arg("-sd").arg(dir.path());
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server (Debian package nats-server) must be installed");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut server = NatsServer {
            child,
            addr: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(wait).expect("nats-server did not start");
            if let Some((_, addr)) = line.split_once("Listening for client connections on ") {
                server.addr = addr.trim().to_owned();
            }
            if line.contains("Server is ready") {
                break;
            }
        }
        assert!(!server.addr.is_empty(), "nats-server gave no address");
        server
    }

    fn client(&self) -> Client {
        Client::connect(self.addr.as_str(), options()).unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn options() -> Options {
    Options {
        timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[test]
fn stream_is_created_then_checked() {
    let server = NatsServer::start(true);
    let mut nats = server.client();
    let state = nats.ensure_stream("EVENTS", &["soquete.>"]).unwrap();
    assert_eq!(state.messages, 0);
    let mut other = server.client();
    assert_eq!(other.ensure_stream("EVENTS", &["soquete.>"]).unwrap(), state);
    let err = other.ensure_stream("EVENTS", &["elsewhere.>"]).unwrap_err();
    assert!(matches!(err, Error::StreamMismatch(_)), "{err}");
    let err = other.stream_state("NOSUCH").unwrap_err();
    assert!(matches!(err, Error::Api { code: 404, .. }), "{err}");
    let err = other.last_on_subject("NOSUCH", "soquete.a").unwrap_err();
    assert!(matches!(err, Error::Api { code: 404, .. }), "{err}");
}

#[test]
fn ten_thousand_pipelined_publishes_are_acknowledged_in_order() {
    let server = NatsServer::start(true);
    let mut nats = server.client();
    nats.ensure_stream("EVENTS", &["soquete.>"]).unwrap();
    let mut most_in_flight = 0;
    for i in 0..10_000u64 {
        let index = nats
            .publish("soquete.dev", &format!("tok.{i}"), format!("line {i}").as_bytes())
            .unwrap();
        assert_eq!(index, i);
        most_in_flight = most_in_flight.max(nats.in_flight());
    }
    assert!(most_in_flight > 1, "publishes were not pipelined");
    assert_eq!(nats.wait_stored(10_000, deadline()).unwrap(), 10_000);
    let last = nats.last_ack().unwrap();
    assert_eq!((last.stream.as_str(), last.seq), ("EVENTS", 10_000));
    assert_eq!(nats.duplicates(), 0);
    assert_eq!(nats.stream_state("EVENTS").unwrap().messages, 10_000);
}

#[test]
fn republish_is_a_duplicate_stored_once_and_last_by_subject_finds_the_last() {
    let server = NatsServer::start(true);
    let mut nats = server.client();
    nats.ensure_stream("EVENTS", &["soquete.>"]).unwrap();
    assert_eq!(nats.last_on_subject("EVENTS", "soquete.a").unwrap(), None);

    nats.publish("soquete.a", "tok.1", b"one").unwrap();
    nats.publish("soquete.a", "tok.2", b"two").unwrap();
    nats.publish("soquete.b", "other.1", b"elsewhere").unwrap();
    nats.wait_stored(3, deadline()).unwrap();
    assert!(!nats.last_ack().unwrap().duplicate);

    nats.publish("soquete.a", "tok.2", b"two").unwrap();
    nats.wait_stored(4, deadline()).unwrap();
    let ack = nats.last_ack().unwrap();
    assert!(ack.duplicate, "{ack:?}");
    assert_eq!(ack.seq, 2);
    assert_eq!(nats.duplicates(), 1);
    assert_eq!(nats.stream_state("EVENTS").unwrap().messages, 3);

    let last = nats.last_on_subject("EVENTS", "soquete.a").unwrap().unwrap();
    assert_eq!(last.seq, 2);
    assert_eq!(last.subject, "soquete.a");
    assert_eq!(last.msg_id(), Some("tok.2"));
    assert_eq!(last.data, b"two");

    let all = nats.messages("EVENTS", 1, 4).unwrap();
    let data: Vec<Option<&[u8]>> = all.iter().map(|m| m.as_ref().map(|m| &m.data[..])).collect();
    assert_eq!(data, [Some(&b"one"[..]), Some(b"two"), Some(b"elsewhere"), None]);
    assert_eq!(all[2].as_ref().unwrap().msg_id(), Some("other.1"));
}

#[test]
fn without_jetstream_nothing_counts_as_stored() {
    let server = NatsServer::start(false);
    let mut nats = server.client();
    let err = nats.ensure_stream("EVENTS", &["soquete.>"]).unwrap_err();
    assert!(matches!(err, Error::NoResponders), "{err}");
    nats.publish("soquete.a", "tok.1", b"one").unwrap();
    let err = nats.wait_stored(1, deadline()).unwrap_err();
    assert!(matches!(err, Error::Rejected { index: 0, .. }), "{err}");
    assert_eq!(nats.stored(), 0);
}

#[test]
fn a_publish_to_a_subject_no_stream_takes_is_rejected() {
    let server = NatsServer::start(true);
    let mut nats = server.client();
    nats.ensure_stream("EVENTS", &["soquete.>"]).unwrap();
    nats.publish("soquete.a", "tok.1", b"one").unwrap();
    nats.publish("nowhere.a", "tok.2", b"two").unwrap();
    let err = nats.wait_stored(2, deadline()).unwrap_err();
    assert!(matches!(err, Error::Rejected { index: 1, .. }), "{err}");
    assert_eq!(nats.stored(), 1);
}

#[test]
fn server_killed_mid_stream_is_a_clean_error() {
    let mut server = NatsServer::start(true);
    let mut nats = server.client();
    nats.ensure_stream("EVENTS", &["soquete.>"]).unwrap();
    let mut failed = None;
    let mut sent = 0;
    for i in 0..1_000_000u64 {
        if i == 2_000 {
            server.kill();
        }
        let r = nats
            .publish("soquete.dev", &format!("tok.{i}"), b"payload")
            .and_then(|_| nats.flush());
        match r {
            Ok(()) => sent = i + 1,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
        if i > 2_000 && i % 100 == 0 {
            if let Err(e) = nats.poll(Instant::now() + Duration::from_millis(1)) {
                failed = Some(e);
                break;
            }
        }
    }
    let err = match failed {
        Some(e) => e,
        None => nats.wait_stored(sent, deadline()).unwrap_err(),
    };
    assert!(matches!(err, Error::Closed | Error::Io(_) | Error::Timeout), "{err}");
    assert!(nats.stored() <= 2_000, "stored {} after the kill", nats.stored());
    // Every later call fails too, within its deadline.
    assert!(nats.wait_stored(sent + 1, deadline()).is_err());
}

/// Publishes/s acknowledged, for 100,000 small messages:
/// `cargo test --release -p soquete-host --test nats -- --ignored --nocapture`
#[test]
#[ignore = "a figure, not a check"]
fn throughput() {
    let server = NatsServer::start(true);
    let mut nats = server.client();
    nats.ensure_stream("BENCH", &["bench.>"]).unwrap();
    const N: u64 = 100_000;
    let payload = [b'x'; 64];
    let start = Instant::now();
    for i in 0..N {
        nats.publish("bench.dev", &format!("tok.{i}"), &payload).unwrap();
    }
    nats.wait_stored(N, Instant::now() + Duration::from_secs(120)).unwrap();
    let took = start.elapsed();
    println!(
        "{N} publishes of {} bytes acknowledged in {:.2} s: {:.0} publishes/s",
        payload.len(),
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );
}
