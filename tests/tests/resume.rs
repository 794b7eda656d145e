//! Resuming sessions (PROTOCOL.md §4.6) against the server (in-process): a client
//! whose connection is cut comes back with its token, resends what was not
//! acknowledged, and the server shows every message exactly once.
//!
//! Readiness is always a printed line or a socket read; nothing sleeps.

use std::io::Read;
use std::net::Shutdown;

use soquete_core::{Closure, Code};
use soquete_tests::{messages_of, BinClient, Server, WAIT};

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|j| format!("m{j}")).collect()
}

#[test]
fn cut_connection_resumes_without_loss_or_repeats() {
    let mut server = Server::in_process(&[]);
    let mut c = BinClient::connect(server.addr, "cut");
    let id = server.named_session("cut");
    for j in 0..5 {
        c.send(format!("m{j}").as_bytes());
    }
    c.wait("the acknowledgements", |c| c.acked == 5);
    // Five more go out, but their acknowledgements are never read.
    for j in 5..10 {
        c.send(format!("m{j}").as_bytes());
    }
    c.cut();
    assert_eq!(c.closed, Some(Closure::Eof));
    let lost = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" lost ("));
    assert!(lost.contains("may resume within 60s"), "{lost}");

    c.reconnect(server.addr);
    assert_eq!(c.established, Some(true), "the server resumed the session");
    let resumed = server.wait_for(WAIT, |l| l.contains(" resumed after "));
    assert!(resumed.starts_with(&format!("{id} ")), "same session id: {resumed}");
    c.wait("the acknowledgements", |c| c.acked == 10);
    for j in 10..15 {
        c.send(format!("m{j}").as_bytes());
    }
    assert_eq!(
        c.close(),
        Closure::Orderly {
            code: Code::Normal,
            by_peer: false
        }
    );
    let left = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
    assert!(left.ends_with("after 15 messages"), "{left}");
    assert_eq!(messages_of(&server.seen, &id), numbered(0..15));
}

#[test]
fn resume_takes_over_a_connection_the_server_still_serves() {
    let mut server = Server::in_process(&[]);
    let mut c = BinClient::connect(server.addr, "twice");
    let id = server.named_session("twice");
    for j in 0..3 {
        c.send(format!("m{j}").as_bytes());
    }
    c.wait("the acknowledgements", |c| c.acked == 3);
    // Messages 3..6 are written on the first connection, which stays open: the
    // server may or may not have read them when the second one arrives.
    for j in 3..6 {
        c.send(format!("m{j}").as_bytes());
    }
    c.flush();
    let mut old = c.reconnect(server.addr);
    assert_eq!(c.established, Some(true));
    server.wait_for(WAIT, |l| {
        l.starts_with(&format!("{id} ")) && l.contains(" resumed after ")
    });
    // The server dropped the old connection.
    old.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = old.read_to_end(&mut rest);

    c.wait("the acknowledgements", |c| c.acked == 6);
    c.send(b"m6");
    c.close();
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
    assert_eq!(messages_of(&server.seen, &id), numbered(0..7));
    assert_eq!(server.seen.iter().filter(|l| l.contains(" connected")).count(), 1);
}

#[test]
fn lost_session_is_forgotten_after_the_resume_window() {
    let mut server = Server::in_process(&["--resume-window", "300ms"]);
    let mut c = BinClient::connect(server.addr, "gone");
    let id = server.named_session("gone");
    c.send(b"only");
    c.wait("the acknowledgement", |c| c.acked == 1);
    c.stream.shutdown(Shutdown::Both).unwrap();
    let lost = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" lost ("));
    assert!(lost.contains("may resume within 300ms"), "{lost}");
    let left = server.wait_for(WAIT, |l| l.starts_with(&format!("{id} ")) && l.contains(" left ("));
    assert!(
        left.ends_with("left (not resumed within 300ms) after 1 message"),
        "{left}"
    );

    // Coming back later starts a new session: the unacknowledged rest is renumbered.
    c.send(b"late");
    c.cut();
    c.reconnect(server.addr);
    assert_eq!(c.established, Some(false), "not resumed");
    let id2 = server.named_session("gone");
    assert_ne!(id, id2);
    c.wait("the acknowledgement", |c| c.acked >= 1);
    c.close();
    server.wait_for(WAIT, |l| l.starts_with(&format!("{id2} ")) && l.contains(" left ("));
    assert_eq!(messages_of(&server.seen, &id2), ["late"]);
}

#[test]
fn zero_resume_window_ends_sessions_at_once() {
    let mut server = Server::in_process(&["--resume-window", "0"]);
    let mut c = BinClient::connect(server.addr, "brief");
    let id = server.named_session("brief");
    c.send(b"x");
    c.wait("the acknowledgement", |c| c.acked == 1);
    c.stream.shutdown(Shutdown::Both).unwrap();
    let left = server.wait_for(WAIT, |l| {
        l.starts_with(&format!("{id} ")) && (l.contains(" left (") || l.contains(" lost ("))
    });
    assert!(
        left.contains("left (connection closed by peer) after 1 message"),
        "{left}"
    );
    c.cut();
    c.reconnect(server.addr);
    assert_eq!(c.established, Some(false));
}
