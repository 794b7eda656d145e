//! `soquete server --relay`: a chat room. Every client's messages go to the others;
//! a client that does not read is closed once its queue is full, and the others go
//! on without waiting for it. The real binary; readiness is a printed line or a
//! message received.

use std::io::Write;

use soquete_tests::watched::Watched;
use soquete_tests::{plain, BinClient};

/// Messages per round: the reading client gets each round before the next is sent,
/// so that it never has more waiting than its queue and transmit buffer hold.
const ROUND: usize = 32;
const ROUNDS: usize = 20;

#[test]
fn a_client_that_does_not_read_is_closed_and_the_others_go_on() {
    let mut server = Watched::server(&["--relay", "--client-queue", "64"], "warn");
    // Connects, then never reads (and so never acknowledges) again.
    let mute = BinClient::connect(server.addr, "mute");
    let mute_line = server.stdout_line(|l| l.ends_with("connected as \"mute\""));
    let mute_id = mute_line.split(' ').next().unwrap().to_string();
    let mut bob = BinClient::connect(server.addr, "bob");
    server.stdout_line(|l| l.ends_with("connected as \"bob\""));
    let mut ana = plain(server.addr);
    let ana_addr = ana.local_addr().unwrap();

    let filler = "x".repeat(200);
    let mut expected = Vec::new();
    for round in 0..ROUNDS {
        let mut batch = String::new();
        for i in 0..ROUND {
            let text = format!("m{} {filler}", round * ROUND + i);
            batch.push_str(&text);
            batch.push('\n');
            expected.push(text);
        }
        ana.write_all(batch.as_bytes()).unwrap();
        let n = expected.len();
        bob.wait("the round relayed", |c| c.received.len() >= n);
    }
    // The sender was never held back: all of it printed.
    let last = format!("{ana_addr}: {}", expected.last().unwrap());
    server.stdout_line(|l| l.ends_with(&last));

    // The mute client's queue filled long before the end: closed, with a reason.
    let mute_left = format!("stdout: {mute_id} ");
    let left = server
        .seen
        .iter()
        .find(|l| l.starts_with(&mute_left) && l.contains(" left ("))
        .cloned()
        .unwrap_or_else(|| panic!("no left line for {mute_id}: {:?}", server.seen));
    assert!(
        left.contains("left (did not read: 64 messages (") && left.ends_with("bytes) waiting for it) after 0 messages"),
        "{left}"
    );
    server.stderr_line(|l| l.contains("does not read (64 messages"));

    // The reader got every message, in order, named by its sender (`#ID: text`,
    // the plain-text peer having no name).
    let ana_line = server
        .seen
        .iter()
        .find(|l| l.contains(&format!("{ana_addr} connected")))
        .cloned();
    let ana_id = match ana_line {
        Some(l) => l["stdout: ".len()..].split(' ').next().unwrap().to_string(),
        None => panic!("no connected line for the plain peer: {:?}", server.seen),
    };
    let got: Vec<String> = bob
        .received
        .iter()
        .map(|m| String::from_utf8(m.clone()).unwrap())
        .collect();
    let want: Vec<String> = expected.iter().map(|t| format!("{ana_id}: {t}")).collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "first difference at {:?}",
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
    drop(mute);
}

#[test]
fn relayed_messages_reach_binary_and_plain_clients_but_not_their_sender() {
    let mut server = Watched::server(&["--relay"], "warn");
    let mut ana = BinClient::connect(server.addr, "ana");
    server.stdout_line(|l| l.ends_with("connected as \"ana\""));
    let mut peer = plain(server.addr);
    peer.write_all(b"hi from nc\n").unwrap();
    let line = server.stdout_line(|l| l.ends_with(": hi from nc"));
    let peer_id = line.split(' ').next().unwrap().to_string();
    ana.wait("the relayed line", |c| !c.received.is_empty());
    assert_eq!(ana.received, [format!("{peer_id}: hi from nc").into_bytes()]);

    ana.send(b"hello nc");
    ana.wait("the acknowledgement", |c| c.acked == 1);
    let mut got = String::new();
    let mut reader = std::io::BufReader::new(peer.try_clone().unwrap());
    std::io::BufRead::read_line(&mut reader, &mut got).unwrap();
    assert_eq!(got, "ana: hello nc\n");
    // Nothing came back to ana.
    assert_eq!(ana.received.len(), 1);
}

#[test]
fn a_plain_text_peer_that_does_not_read_is_closed_once_the_socket_and_its_queue_are_full() {
    let mut server = Watched::server(&["--relay", "--client-queue", "64"], "warn");
    // Says one line, then never reads: the kernel's buffers fill first, then its queue.
    let mut mute = plain(server.addr);
    mute.write_all(b"i am mute\n").unwrap();
    let mute_addr = mute.local_addr().unwrap();
    server.stdout_line(|l| l.ends_with(&format!("{mute_addr}: i am mute")));
    let mut bob = BinClient::connect(server.addr, "bob");
    server.stdout_line(|l| l.ends_with("connected as \"bob\""));
    let mut ana = plain(server.addr);

    let filler = "y".repeat(1000);
    // Bob connected after the mute peer's line: he did not get it.
    let mut sent = 0;
    let mut closed = None;
    // Bounded: 500 rounds of 32 KB; loopback buffers hold a few MB.
    for round in 0..500 {
        let mut batch = String::new();
        for i in 0..ROUND {
            batch.push_str(&format!("p{} {filler}\n", round * ROUND + i));
        }
        ana.write_all(batch.as_bytes()).unwrap();
        sent += ROUND;
        bob.wait("the round relayed", |c| c.received.len() >= sent);
        if let Ok(line) = server.stderr.try_recv() {
            if line.contains(&format!("{mute_addr}: does not read (64 messages")) {
                closed = Some(sent);
                break;
            }
            server.seen.push(format!("stderr: {line}"));
        }
    }
    let closed = closed.unwrap_or_else(|| panic!("never closed after {sent} messages; saw {:?}", server.seen));
    // The kernel's buffers took most of them; the queue only the last 64.
    assert!(closed > 64 + 1, "closed after {closed} messages");
    // The others go on: one more round reaches bob.
    ana.write_all(format!("after {filler}\n").as_bytes()).unwrap();
    bob.wait("the last message", |c| c.received.len() > sent);
    let last = bob.received.last().unwrap();
    assert!(last.ends_with(format!("after {filler}").as_bytes()));
}
