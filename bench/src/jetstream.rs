//! `soquete-bench jetstream`: messages into NATS JetStream through `soquete server
//! --forward`, beside a client publishing the same load straight to JetStream (the
//! anchor), and the server's CPU time per message with each of its sinks.
//!
//! Starts a `nats-server -js` on 127.0.0.1 (storage in a new temp directory, removed
//! after) and, for each sink, the real `soquete server` binary; drives it with the
//! load generator's soquete connections; reads the server's CPU time (all threads)
//! from `/proc/PID/task/*/schedstat` before and after the run. Every process it starts it stops.
//! The figures of one run are measured on the same machine at the same time: on a
//! loaded machine, compare their ratios, not their absolute values.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use soquete_host::sink::nats::{Client, Options};

use crate::load::{Driver, RunParams};
use crate::proto::Target;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Params {
    /// Messages per measurement.
    pub count: u64,
    /// Message size in bytes.
    pub size: usize,
    /// Connections to the soquete server.
    pub connections: usize,
    /// Messages in flight per connection.
    pub window: usize,
    /// The `soquete` binary.
    pub soquete: PathBuf,
    /// Turns of the direct client and the forwarding server.
    pub rounds: usize,
}

/// A child process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temp directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs every measurement and prints one `key=value` line each, then the ratios.
///
/// # Errors
/// A process cannot be started, or a measurement fails.
pub fn run(p: &Params) -> anyhow::Result<()> {
    if p.count == 0 || p.size == 0 || p.connections == 0 || p.window == 0 {
        bail!("--count, --size, --connections and --window must be at least 1");
    }
    let dir = TempDir(std::env::temp_dir().join(format!("soquete-jetstream-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).context("temp dir")?;
    let (_nats, nats_addr) = start_nats(&dir.0)?;

    let file = dir.0.join("file.log");
    let file = file.to_str().context("temp path")?;
    let fsynced = dir.0.join("fsync.log");
    let fsynced = fsynced.to_str().context("temp path")?;
    let forward = format!("nats://{nats_addr}");
    let sinks: [(&str, Vec<&str>); 4] = [
        ("stdout-text", vec![]),
        ("stdout-json", vec!["--json"]),
        ("output-file", vec!["--output", file]),
        ("output-fsync", vec!["--output", fsynced, "--fsync"]),
    ];
    for (name, args) in &sinks {
        let output = args.windows(2).find(|w| w[0] == "--output").map(|w| Path::new(w[1]));
        let m = through_soquete(p, args, output)?;
        print_sink(name, p, &m);
    }
    // The direct client and the forwarding server take turns, so that both see the
    // same load from the rest of the machine.
    let (mut direct_rates, mut forward_rates) = (Vec::new(), Vec::new());
    for round in 0..p.rounds {
        let secs = direct(&nats_addr, p, round)?;
        let rate = p.count as f64 / secs;
        println!(
            "jetstream sink=direct-client round={round} msgs={} s={} in_flight={} secs={secs:.3} msgs_per_s={rate:.0}",
            p.count,
            p.size,
            Options::default().max_in_flight
        );
        direct_rates.push(rate);
        let m = through_soquete(p, &["--forward", &forward], None)?;
        print_sink("forward", p, &m);
        forward_rates.push(m.acked as f64 / m.secs);
    }
    let (direct, forward) = (median(&mut direct_rates), median(&mut forward_rates));
    println!(
        "jetstream median_msgs_per_s direct_client={direct:.0} through_soquete={forward:.0} ratio={:.2} \
         (over {} rounds of {} messages)",
        forward / direct,
        p.rounds,
        p.count
    );
    Ok(())
}

fn print_sink(name: &str, p: &Params, m: &Measured) {
    println!(
        "jetstream sink={name} msgs={} s={} n={} w={} secs={:.3} msgs_per_s={:.0} server_cpu_us_per_msg={:.2}",
        m.acked,
        p.size,
        p.connections,
        p.window,
        m.secs,
        m.acked as f64 / m.secs,
        m.cpu_us_per_msg
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Starts `nats-server -js` on a free port; returns it and its address once its log
/// says it is ready.
fn start_nats(dir: &Path) -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start nats-server (Debian package nats-server)")?;
    let stderr = child.stderr.take().context("nats-server stderr")?;
    let nats = Proc(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut addr = None;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(wait).context("nats-server did not start")?;
        if let Some((_, a)) = line.split_once("Listening for client connections on ") {
            addr = Some(a.trim().to_owned());
        }
        if line.contains("Server is ready") {
            break;
        }
    }
    Ok((nats, addr.context("nats-server gave no address")?))
}

/// Publishes the load straight to JetStream, pipelined, and waits for every
/// acknowledgement; returns the seconds it took.
fn direct(addr: &str, p: &Params, round: usize) -> anyhow::Result<f64> {
    let mut nats = Client::connect(addr, Options::default()).context("connect to nats-server")?;
    nats.ensure_stream("BENCH", &["bench.>"]).context("create the stream")?;
    let payload = vec![b'x'; p.size];
    let start = Instant::now();
    for i in 0..p.count {
        nats.publish("bench.direct", &format!("{round}.{i}"), &payload)
            .context("publish")?;
    }
    nats.wait_stored(p.count, Instant::now() + Duration::from_secs(120))
        .context("acknowledgements")?;
    Ok(start.elapsed().as_secs_f64())
}

struct Measured {
    acked: u64,
    secs: f64,
    cpu_us_per_msg: f64,
}

/// Starts `soquete server EXTRA...`, sends the load through it and measures.
fn through_soquete(p: &Params, extra: &[&str], output: Option<&Path>) -> anyhow::Result<Measured> {
    if let Some(path) = output {
        // Its first line must be this server's.
        let _ = std::fs::remove_file(path);
    }
    let mut child = Command::new(&p.soquete)
        .args(["server", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", p.soquete.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let server = Proc(child);
    let pid = server.0.id();
    let addr = listening(stdout, output)?;

    let mut driver = Driver::new(Target::Soquete, addr, p.size, p.window, 0)?;
    let est = driver.establish(p.connections, 256, Duration::from_secs(15));
    if est.ready < p.connections {
        bail!(
            "{} of {} connections failed: {}",
            p.connections - est.ready,
            p.connections,
            est.first_error.unwrap_or_default()
        );
    }
    let cpu_before = cpu_ns(pid)?;
    let r = driver.run(RunParams {
        window: p.window,
        total: Some(p.count),
        deadline: Instant::now() + Duration::from_secs(120),
    });
    let cpu_after = cpu_ns(pid)?;
    driver.finish(Duration::from_secs(1));
    drop(server);
    if r.acked == 0 {
        bail!("no message was acknowledged");
    }
    Ok(Measured {
        acked: r.acked,
        secs: r.elapsed.as_secs_f64().max(1e-9),
        cpu_us_per_msg: cpu_after.saturating_sub(cpu_before) as f64 / 1e3 / r.acked as f64,
    })
}

/// Reads the "listening on ADDR" line from standard output, or from the `--output`
/// file, then drains standard output on a thread (it is a pipe, as a server's stdout
/// often is).
fn listening(stdout: ChildStdout, output: Option<&Path>) -> anyhow::Result<SocketAddr> {
    let mut out = BufReader::new(stdout);
    let mut first = String::new();
    match output {
        None => {
            out.read_line(&mut first).context("the server's first line")?;
        }
        Some(path) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !first.ends_with('\n') {
                if Instant::now() > deadline {
                    bail!("{} holds no line", path.display());
                }
                // A file has no readiness signal: polled.
                thread::sleep(Duration::from_millis(5));
                first = std::fs::read_to_string(path).unwrap_or_default();
                first.truncate(first.find('\n').map_or(0, |i| i + 1));
            }
        }
    }
    let addr = first
        .trim_end()
        .strip_prefix("listening on ")
        .or_else(|| {
            first
                .split_once(r#""event":"listening","addr":""#)
                .and_then(|(_, s)| s.trim_end().strip_suffix(r#""}"#))
        })
        .with_context(|| format!("unexpected first line {first:?}"))?
        .parse()
        .context("listen address")?;
    thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        while matches!(out.read(&mut buf), Ok(n) if n > 0) {}
    });
    Ok(addr)
}

/// CPU time of every thread of process `pid` so far, in nanoseconds (the first field
/// of `/proc/PID/task/TID/schedstat`: nanosecond resolution, where `/proc/PID/stat`
/// counts 10 ms ticks).
fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("process {pid}"))? {
        let path = task?.path().join("schedstat");
        // A thread that ended meanwhile took its time with it; the rest count.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ns: u64 = stat
            .split_whitespace()
            .next()
            .context("schedstat")?
            .parse()
            .context("schedstat")?;
        total += ns;
    }
    Ok(total)
}
