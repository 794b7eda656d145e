//! The server as an operator runs it: what it tells about takeovers, what it holds
//! for idle connections, how it copes with its limits.
//!
//! Readiness is always a printed line or a socket read; nothing sleeps.

use soquete_tests::{BinClient, Server, WAIT};

#[test]
fn takeover_is_printed_with_the_new_address() {
    let mut server = Server::in_process(&[]);
    let mut c = BinClient::connect(server.addr, "twice");
    let id = server.named_session("twice");
    c.send(b"m0");
    c.wait("the acknowledgement", |c| c.acked == 1);
    let old_addr = c.stream.local_addr().unwrap();
    let _old = c.reconnect(server.addr);
    assert_eq!(c.established, Some(true));
    let new_addr = c.stream.local_addr().unwrap();
    let line = server.wait_for(WAIT, |l| l.contains(" taken over "));
    assert_eq!(
        line,
        format!("{id} {old_addr} taken over by {new_addr} after 1 messages")
    );
    // The takeover comes before the session goes on from the new address.
    let resumed = server.wait_for(WAIT, |l| l.contains(" resumed after "));
    assert_eq!(resumed, format!("{id} {new_addr} resumed after 1 messages"));
}

#[test]
fn takeover_is_a_json_event() {
    let mut server = Server::start(&["--json"]);
    let mut c = BinClient::connect(server.addr, "twice");
    c.send(b"m0");
    c.wait("the acknowledgement", |c| c.acked == 1);
    let old_addr = c.stream.local_addr().unwrap();
    let _old = c.reconnect(server.addr);
    let new_addr = c.stream.local_addr().unwrap();
    let line = server.wait_for(WAIT, |l| l.contains(r#""event":"taken_over""#));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    let connected = server
        .seen
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["event"] == "connected")
        .expect("a connected event");
    assert_eq!(v["id"], connected["id"]);
    assert_eq!(v["peer"], old_addr.to_string());
    assert_eq!(v["by"], new_addr.to_string());
    assert_eq!(v["messages"], 1);
}
