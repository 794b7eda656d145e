//! `soquete server --metrics`: scraped during a real run, the counters match what
//! the test did. Readiness is a log line or a scrape that shows the count; nothing
//! sleeps.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use soquete_tests::watched::Watched;
use soquete_tests::{plain, BinClient, WAIT};

/// One scrape: the response's status line, content type and samples.
fn scrape(addr: SocketAddr) -> (String, String, HashMap<String, f64>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.lines().next().unwrap().to_string();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_string();
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("NAME VALUE");
            (name.to_string(), value.parse::<f64>().expect("a number"))
        })
        .collect();
    (status, content_type, samples)
}

/// The endpoint's address, from the server's "metrics on http://…/metrics" line.
fn metrics_addr(server: &mut Watched) -> SocketAddr {
    let line = server.stderr_line(|l| l.contains("metrics on http://"));
    line.split("http://")
        .nth(1)
        .and_then(|s| s.strip_suffix("/metrics"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// Scrapes until `name` reaches `value` (the loop counts asynchronously to the
/// clients' view); fails after [`WAIT`].
fn until(addr: SocketAddr, name: &str, value: f64) -> HashMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, _, samples) = scrape(addr);
        if samples.get(name) == Some(&value) {
            return samples;
        }
        assert!(Instant::now() < deadline, "{name} never reached {value}: {samples:?}");
    }
}

#[test]
fn scrape_counts_what_the_clients_did() {
    let mut server = Watched::server(
        &["--metrics", "127.0.0.1:0", "--max-clients", "2"],
        "soquete_host::server=info",
    );
    let metrics = metrics_addr(&mut server);

    let (status, content_type, before) = scrape(metrics);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(before["soquete_messages_received_total"], 0.0);

    let mut ana = BinClient::connect(server.addr, "ana");
    for m in [&b"a"[..], b"bb", b"ccc"] {
        ana.send(m);
    }
    ana.wait("three acknowledgements", |c| c.acked == 3);
    let mut peer = plain(server.addr);
    peer.write_all(b"x\n").unwrap();
    server.stdout_line(|l| l.ends_with(": x"));
    server.type_line("@ana hi");
    ana.wait("the console line", |c| c.received.len() == 1);
    // A third client: refused, the server being full.
    let third = BinClient::connect(server.addr, "third");
    assert!(third.closed.is_some());
    server.stdout_line(|l| l.contains("refused (server full)"));

    let m = until(metrics, "soquete_acknowledgements_received_total", 1.0);
    let expect = [
        ("soquete_connections_accepted_total", 3.0),
        ("soquete_sessions_total{mode=\"binary\"}", 1.0),
        ("soquete_sessions_total{mode=\"plain\"}", 1.0),
        ("soquete_sessions_open", 2.0),
        ("soquete_messages_received_total", 4.0),
        ("soquete_message_bytes_received_total", 7.0),
        ("soquete_acknowledgements_sent_total", 3.0),
        ("soquete_messages_sent_total", 1.0),
        ("soquete_message_bytes_sent_total", 2.0),
        ("soquete_refusals_total{reason=\"server_full\"}", 1.0),
        ("soquete_resumes_total", 0.0),
        ("soquete_takeovers_total", 0.0),
        ("soquete_client_queue_messages", 0.0),
    ];
    for (name, value) in expect {
        assert_eq!(m.get(name), Some(&value), "{name} in {m:?}");
    }
    assert!(m["soquete_bytes_received_total"] >= 30.0, "{m:?}");
    // All three handshakes are over (two accepted, one refused); the gauge follows
    // at the end of the loop's turn, which a scrape can come before.
    until(metrics, "soquete_handshakes_open", 0.0);
    assert!(m["soquete_bytes_sent_total"] >= 20.0, "{m:?}");

    // An abort by reason: a plain-text peer that speaks HTTP.
    let mut http = plain(server.addr);
    http.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    until(metrics, "soquete_aborts_total{reason=\"wrong_protocol\"}", 1.0);
}

#[test]
fn other_methods_are_refused() {
    let mut server = Watched::server(&["--metrics", "127.0.0.1:0"], "soquete_host::server=info");
    let addr = metrics_addr(&mut server);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
}

#[test]
fn the_endpoint_waits_quietly_for_scrapes() {
    // The metrics listener once came non-blocking, and its thread logged a failed
    // accept ten times a second for the whole run.
    let mut server = Watched::server(
        &["--metrics", "127.0.0.1:0"],
        "soquete_host=warn,soquete_host::server=info,soquete::stopped=info",
    );
    let addr = metrics_addr(&mut server);
    let (status, _, _) = scrape(addr);
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    let (status, _, _) = scrape(addr);
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.stderr_line(|l| l.contains("stopped (SIGTERM)"));
    let noise: Vec<_> = server.seen.iter().filter(|l| l.contains("metrics:")).collect();
    assert!(noise.is_empty(), "{noise:?}");
}
