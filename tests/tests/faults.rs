//! Faults on the wire and at the server, with real `soquete client --reconnect`
//! processes: connections cut mid-frame by a proxy, and a server stopped with SIGTERM
//! under load and started again. In both, every line must be shown exactly once, in
//! order, and every client must exit 0 with everything acknowledged.
//!
//! Bounded: a fixed number of lines and cuts; every wait has a limit.

use std::collections::HashMap;
use std::time::Duration;

use soquete_tests::proxy::{Faults, Proxy};
use soquete_tests::{ClientProcess, Server};

/// Longest wait for one client or server to finish.
const LIMIT: Duration = Duration::from_secs(60);

/// `c{k} {n}` for n in 0..lines, one per line.
fn input(k: usize, lines: usize) -> Vec<u8> {
    (0..lines).flat_map(|n| format!("c{k} {n}\n").into_bytes()).collect()
}

/// For each client `k`, the numbers of its lines in the order the server(s) printed
/// them.
fn printed(seen: &[String]) -> HashMap<usize, Vec<usize>> {
    let mut by_client: HashMap<usize, Vec<usize>> = HashMap::new();
    for line in seen {
        // `#ID PEER: TEXT`, where TEXT is `cK N`.
        let Some((_, text)) = line.split_once(": ") else {
            continue;
        };
        let Some((k, n)) = text.strip_prefix('c').and_then(|t| t.split_once(' ')) else {
            continue;
        };
        if let (Ok(k), Ok(n)) = (k.parse(), n.parse()) {
            by_client.entry(k).or_default().push(n);
        }
    }
    by_client
}

/// Checks that client `k`'s lines were each printed once, in order. Returns (lost,
/// duplicated) for the report.
fn check_exactly_once(by_client: &HashMap<usize, Vec<usize>>, k: usize, lines: usize) -> (usize, usize) {
    let got = by_client.get(&k).map(Vec::as_slice).unwrap_or_default();
    let mut count = vec![0usize; lines];
    for &n in got {
        count[n] += 1;
    }
    let lost = count.iter().filter(|&&c| c == 0).count();
    let duplicated = count.iter().map(|&c| c.saturating_sub(1)).sum();
    let in_order = got.windows(2).all(|w| w[0] < w[1]);
    assert!(
        lost == 0 && duplicated == 0 && in_order,
        "client {k}: {lost} lost, {duplicated} duplicated, in order: {in_order}"
    );
    (lost, duplicated)
}

fn start_clients(addr: &str, clients: usize, lines: usize) -> Vec<ClientProcess> {
    (0..clients)
        .map(|k| {
            let name = format!("c{k}");
            let mut c = ClientProcess::start(addr, &["--name", &name, "--reconnect", "--reconnect-for", "30s"], LIMIT);
            c.feed(input(k, lines));
            c
        })
        .collect()
}

fn expect_all_acknowledged(clients: Vec<ClientProcess>, lines: usize) -> Vec<String> {
    clients
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            let (code, _, stderr) = c.wait();
            assert_eq!(code, 0, "client {k} failed: {stderr}");
            assert!(
                stderr.contains(&format!("sent {lines} messages, {lines} acknowledged")),
                "client {k}: {stderr}"
            );
            stderr
        })
        .collect()
}

#[test]
fn reconnecting_clients_survive_cut_connections_exactly_once() {
    const CLIENTS: usize = 6;
    const LINES: usize = 3000;
    const CUTS: u64 = 120;
    let seed = std::env::var("SOQUETE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_50c4_e7e5);
    let mut server = Server::in_process(&[]);
    let proxy = Proxy::start(
        server.addr,
        Faults {
            seed,
            cuts: CUTS,
            max_bytes: 6000,
        },
    );
    let clients = start_clients(&proxy.addr.to_string(), CLIENTS, LINES);
    let reports = expect_all_acknowledged(clients, LINES);

    // Each client's last session ends in an orderly close.
    for _ in 0..CLIENTS {
        server.wait_for(LIMIT, |l| l.contains(" left (closed by peer: normal close)"));
    }
    let by_client = printed(&server.seen);
    let (mut lost, mut duplicated) = (0, 0);
    for k in 0..CLIENTS {
        let (l, d) = check_exactly_once(&by_client, k, LINES);
        lost += l;
        duplicated += d;
    }
    let (closed, reset) = proxy.cuts();
    let resumed = server.seen.iter().filter(|l| l.contains(" resumed after ")).count();
    eprintln!(
        "fault test (seed {seed:#x}): {} connections, {closed} closed and {reset} reset mid-stream, \
         {resumed} sessions resumed; {} messages, lost {lost}, duplicated {duplicated}",
        proxy.counts.connections.load(std::sync::atomic::Ordering::SeqCst),
        CLIENTS * LINES
    );
    assert!(closed + reset >= CUTS / 2, "the proxy cut too little to test anything");
    assert!(resumed > 0, "no session was resumed:\n{}", reports.join("\n"));
}

#[test]
fn sigterm_under_load_keeps_unacknowledged_lines_for_the_next_server() {
    const CLIENTS: usize = 4;
    const LINES: usize = 20_000;
    let mut first = Server::start(&[]);
    let addr = first.addr.to_string();
    let clients = start_clients(&addr, CLIENTS, LINES);

    // Stop the server while the clients are sending.
    let mut printed_lines = 0;
    first.wait_for(LIMIT, |l| {
        printed_lines += usize::from(l.contains(": c"));
        printed_lines >= 2000
    });
    first.signal("TERM");
    let status = first.finish(LIMIT);
    assert!(status.success(), "{status:?}");
    let before = printed(&first.seen);
    let shown_first: usize = before.values().map(Vec::len).sum();
    assert!(shown_first < CLIENTS * LINES, "the clients finished before the signal");
    for k in 0..CLIENTS {
        let got = before.get(&k).map(Vec::as_slice).unwrap_or_default();
        assert!(
            got.iter().enumerate().all(|(i, &n)| i == n),
            "client {k}: a gap before the stop"
        );
    }

    // The clients wait (and retry) until a server is back on the same address.
    let mut second = Server::start_on(&addr, &[]);
    expect_all_acknowledged(clients, LINES);
    let mut shown_second = 0;
    second.wait_for(LIMIT, |l| {
        shown_second += usize::from(l.contains(": c"));
        shown_first + shown_second >= CLIENTS * LINES
    });
    let mut all = first.seen.clone();
    all.extend(second.seen.iter().cloned());
    let by_client = printed(&all);
    for k in 0..CLIENTS {
        check_exactly_once(&by_client, k, LINES);
    }
    eprintln!(
        "shutdown test: {shown_first} of {} lines shown before SIGTERM, the rest after the restart; \
         none lost or repeated",
        CLIENTS * LINES
    );
}
