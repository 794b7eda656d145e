//! `soquete-bench`: load generator for soquete and the brokers it is compared with.
//!
//! * `load` — N connections, W messages of S bytes in flight on each, for a fixed time
//!   or count; prints messages/s, MB/s and ack latency percentiles as one
//!   `key=value` line (what `bench/run.sh` parses).
//! * `scale` — many soquete connections: server RSS per connection and throughput.
//! * `echo-server` — the raw TCP echo peer.
//! * `ref-server` — the core's server session on bare mio, printing nothing.
//! * `session-size` — RAM of one core session next to its buffer capacity.
//! * `jetstream` — messages into NATS JetStream through `soquete server --forward`
//!   beside a direct JetStream publisher, and the server's CPU per message per sink.
//! * `chart` — a run's table as an SVG chart.

mod chart;
mod cpu;
mod echo;
mod handshakes;
mod jetstream;
mod load;
mod proto;
mod refserver;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;

use load::{Driver, RunParams};
use proto::Target;

/// Load generator and probes for soquete.
#[derive(Debug, Parser)]
#[command(name = "soquete-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Keep W messages of S bytes in flight on each of N connections; report rate and
    /// ack latency.
    Load(LoadArgs),
    /// Open many soquete connections: server RSS per connection and throughput at scale.
    Scale(ScaleArgs),
    /// Echo every byte back (the raw TCP floor).
    EchoServer(EchoArgs),
    /// A bare soquete server (core session on mio, no output): the protocol's own cost.
    RefServer(RefArgs),
    /// Print the RAM of one core session against its buffer capacity.
    SessionSize,
    /// Messages into NATS JetStream through `soquete server --forward` beside a client
    /// publishing straight to JetStream, and the server's CPU per message per sink.
    Jetstream(JetstreamArgs),
    /// Draw a run's table as an SVG chart (messages/s and server CPU per message).
    Chart(ChartArgs),
    /// Secure responder handshakes per second of CPU on one core, for each X25519.
    Handshakes(HandshakesArgs),
}

#[derive(Debug, Args)]
struct HandshakesArgs {
    /// Handshakes per round (five rounds per row).
    #[arg(long, default_value_t = 1000)]
    count: usize,
}

#[derive(Debug, Args)]
struct JetstreamArgs {
    /// Messages per measurement.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Connections to the soquete server.
    #[arg(short = 'n', long, default_value_t = 4)]
    connections: usize,
    /// Messages in flight per connection.
    #[arg(short = 'w', long, default_value_t = 64)]
    window: usize,
    /// The soquete binary (default: next to this one).
    #[arg(long)]
    soquete: Option<std::path::PathBuf>,
    /// Turns of the direct client and the forwarding server (the medians are compared).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Debug, Args)]
struct ChartArgs {
    /// The run's `results.txt` (one `SERVER key=value...` line per cell).
    #[arg(long)]
    results: std::path::PathBuf,
    /// The SVG file to write.
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// soquete, redis, nats, mqtt or echo.
    #[arg(long, default_value = "soquete")]
    target: Target,
    /// Server address (127.0.0.1 only).
    #[arg(long)]
    addr: SocketAddr,
    /// Connections.
    #[arg(short = 'n', long, default_value_t = 1)]
    connections: usize,
    /// Messages in flight per connection (1 = request/ack).
    #[arg(short = 'w', long, default_value_t = 1)]
    window: usize,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Length of the measured run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Stop after this many messages (the time bound still applies).
    #[arg(long)]
    count: Option<u64>,
    /// Generator threads (connections are spread over them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// soquete's secure mode: this client secret key file (`soquete keygen`).
    #[arg(long, value_name = "FILE", requires = "server_key")]
    key: Option<std::path::PathBuf>,
    /// With --key: the server's public key, `soquete-pk:…` or a file holding it.
    #[arg(long, value_name = "KEY|FILE", requires = "key")]
    server_key: Option<String>,
    /// Server process whose CPU time (user + system, all threads) is read at the start
    /// and the end of the measured run.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, Args)]
struct ScaleArgs {
    /// soquete server address (127.0.0.1 only).
    #[arg(long)]
    addr: SocketAddr,
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    connections: usize,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Server process whose VmRSS is read before and after connecting.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections connecting or in the handshake at once.
    #[arg(long, default_value_t = 256)]
    concurrent: usize,
    /// Length of the timed W=1 run over all connections after the one-shot round.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Time allowed for connecting, and for the one-shot round.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Connect from this many local addresses, 127.0.0.2 onwards, in turn (0: let the
    /// kernel choose): each has its own ~28,000 ephemeral ports.
    #[arg(long, default_value_t = 0)]
    sources: u8,
}

#[derive(Debug, Args)]
struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7007")]
    listen: SocketAddr,
    /// Exit after this many seconds even if nobody stops it.
    #[arg(long, default_value_t = 900.0)]
    max_seconds: f64,
}

#[derive(Debug, Args)]
struct RefArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7008")]
    listen: SocketAddr,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 65536)]
    max_message: u32,
    /// Exit after this many seconds even if nobody stops it.
    #[arg(long, default_value_t = 900.0)]
    max_seconds: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(a) => load_cmd(&a),
        Command::Scale(a) => scale_cmd(&a),
        Command::EchoServer(a) => echo::run(a.listen, secs(a.max_seconds)),
        Command::RefServer(a) => refserver::run(a.listen, a.max_message, secs(a.max_seconds)),
        Command::Jetstream(a) => jetstream_cmd(a),
        Command::Chart(a) => chart::write(&a.results, &a.out),
        Command::Handshakes(a) => handshakes::run(a.count),
        Command::SessionSize => {
            session_size();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soquete-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn jetstream_cmd(a: JetstreamArgs) -> anyhow::Result<()> {
    let soquete = match a.soquete {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("the directory of soquete-bench")?
            .join("soquete"),
    };
    jetstream::run(&jetstream::Params {
        count: a.count,
        size: a.size,
        connections: a.connections,
        window: a.window,
        soquete,
        rounds: a.rounds.max(1),
    })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 86_400.0))
}

fn check_local(addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address: this benchmark only runs against 127.0.0.1");
    }
    Ok(())
}

/// Nanoseconds as microseconds with one decimal.
fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn load_cmd(a: &LoadArgs) -> anyhow::Result<()> {
    check_local(a.addr)?;
    if a.connections == 0 || a.size == 0 {
        bail!("--connections and --size must be at least 1");
    }
    let keys = match (&a.key, &a.server_key) {
        (Some(key), Some(server)) => Some(soquete_host::secure::ClientKeys::load(key, server)?),
        _ => None,
    };
    let threads = a.threads.clamp(1, a.connections);
    // The generator threads and this one meet once every connection is ready and
    // again when the measured run is over, so that CPU times cover the run alone.
    let start_line = Arc::new(Barrier::new(threads + 1));
    let end_line = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for t in 0..threads {
        // Spread connections (and the count) evenly over the threads.
        let n = a.connections / threads + usize::from(t < a.connections % threads);
        let count = a
            .count
            .map(|c| c / threads as u64 + u64::from((t as u64) < c % threads as u64));
        let (target, addr, size, window, seconds) = (a.target, a.addr, a.size, a.window, a.seconds);
        let (start_line, end_line) = (Arc::clone(&start_line), Arc::clone(&end_line));
        let keys = keys.clone();
        let id_base = t * 1_000_000 + std::process::id() as usize % 1000 * 1000;
        handles.push(thread::spawn(move || -> anyhow::Result<load::RunResult> {
            let driver = Driver::new(target, addr, size, window, id_base);
            let (mut driver, est) = match driver {
                Ok(d) => {
                    let mut d = d.secure(keys);
                    let est = d.establish(n, 256, Duration::from_secs(15));
                    (d, est)
                }
                Err(e) => {
                    // Every thread must reach both lines, or the others wait forever.
                    start_line.wait();
                    end_line.wait();
                    return Err(e);
                }
            };
            start_line.wait();
            if est.failed > 0 || est.ready < n {
                end_line.wait();
                bail!(
                    "{target} at {addr}: {} of {n} connections failed: {}",
                    n - est.ready,
                    est.first_error.unwrap_or_default()
                );
            }
            let deadline = Instant::now() + secs(seconds);
            let result = driver.run(RunParams {
                window,
                total: count,
                deadline,
            });
            end_line.wait();
            driver.finish(Duration::from_secs(1));
            Ok(result)
        }));
    }
    start_line.wait();
    let cpu_start = (cpu::process(None), a.server_pid.map(|p| cpu::process(Some(p))));
    let t0 = Instant::now();
    end_line.wait();
    let wall = t0.elapsed();
    let cpu_end = (cpu::process(None), a.server_pid.map(|p| cpu::process(Some(p))));
    let mut acked = 0;
    let mut elapsed = Duration::ZERO;
    let mut hist = load::new_histogram();
    let mut failures = 0;
    let mut first_error = None;
    for h in handles {
        let r = h.join().map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
        acked += r.acked;
        elapsed = elapsed.max(r.elapsed);
        hist.add(&r.hist).context("merging histograms")?;
        failures += r.failures;
        first_error = first_error.or(r.first_error);
    }
    if failures > 0 {
        bail!(
            "{} at {}: {failures} connections failed during the run: {}",
            a.target,
            a.addr,
            first_error.unwrap_or_default()
        );
    }
    if acked == 0 {
        bail!("{} at {}: no message was acknowledged", a.target, a.addr);
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut line = format!(
        "target={} n={} w={} s={} threads={threads} msgs={acked} secs={secs:.3} msgs_per_s={:.0} mb_per_s={:.2} {}",
        a.target,
        a.connections,
        a.window,
        a.size,
        acked as f64 / secs,
        acked as f64 * a.size as f64 / secs / 1e6,
        percentiles(&hist),
    );
    line += &cpu::report("gen", &cpu_start.0, &cpu_end.0, acked, a.size, wall, Some(threads));
    if let (Some(before), Some(after)) = (&cpu_start.1, &cpu_end.1) {
        line += &cpu::report("server", before, after, acked, a.size, wall, None);
    }
    println!("{line}");
    Ok(())
}

fn percentiles(hist: &Histogram<u64>) -> String {
    format!(
        "p50_us={} p99_us={} p999_us={} max_us={}",
        us(hist.value_at_quantile(0.5)),
        us(hist.value_at_quantile(0.99)),
        us(hist.value_at_quantile(0.999)),
        us(hist.max()),
    )
}

/// VmRSS of a process, in KiB, from its `/proc/PID/status`. The file is opened once
/// and read again from the start each time: once the connections have taken every
/// descriptor the process may have, no new file could be opened.
fn rss_kib(status: &mut std::fs::File) -> anyhow::Result<u64> {
    use std::io::{Read as _, Seek as _};
    let mut text = String::new();
    status.rewind().context("rewinding the server's status")?;
    status
        .read_to_string(&mut text)
        .context("reading the server's status")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in the server's status")
}

fn scale_cmd(a: &ScaleArgs) -> anyhow::Result<()> {
    check_local(a.addr)?;
    let mut status = a
        .server_pid
        .map(|pid| std::fs::File::open(format!("/proc/{pid}/status")).with_context(|| format!("process {pid}")))
        .transpose()?;
    let rss_before = status.as_mut().map(rss_kib).transpose()?;
    let mut driver = Driver::new(Target::Soquete, a.addr, a.size, 1, 0)?;
    if a.sources > 0 {
        if !matches!(a.addr, SocketAddr::V4(_)) {
            bail!("--sources spreads over 127.0.0.2 onwards: the server must be on IPv4 loopback");
        }
        let last = a.sources.min(253);
        driver.set_sources(
            (0..last)
                .map(|i| std::net::Ipv4Addr::new(127, 0, 0, 2 + i).into())
                .collect(),
        );
    }
    let t0 = Instant::now();
    let est = driver.establish(a.connections, a.concurrent, secs(a.timeout));
    let connect_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "scale: {} of {} connections established in {connect_secs:.2}s ({} failed{})",
        est.ready,
        a.connections,
        est.failed,
        est.first_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
    );
    if est.ready == 0 {
        bail!("no connection to {} was established", a.addr);
    }
    // Let the server finish its bookkeeping (and print its lines) before measuring.
    thread::sleep(Duration::from_millis(500));
    let rss_after = status.as_mut().map(rss_kib).transpose()?;

    // Every connection sends one message.
    let ready = est.ready as u64;
    let one = driver.run(RunParams {
        window: 1,
        total: Some(ready),
        deadline: Instant::now() + secs(a.timeout),
    });
    // Then all of them keep one message in flight for a while.
    let timed = driver.run(RunParams {
        window: 1,
        total: None,
        deadline: Instant::now() + secs(a.seconds),
    });
    let rss_peak = status.as_mut().map(rss_kib).transpose()?;
    driver.finish(Duration::from_secs(5));

    let mut line = format!(
        "scale connections={} ready={} failed={} connect_secs={connect_secs:.2} accept_per_s={:.0}",
        a.connections,
        est.ready,
        est.failed,
        est.ready as f64 / connect_secs.max(1e-9)
    );
    if let (Some(before), Some(after), Some(peak)) = (rss_before, rss_after, rss_peak) {
        let per_conn = after.saturating_sub(before) as f64 * 1024.0 / est.ready as f64;
        line += &format!(
            " rss_before_kib={before} rss_after_kib={after} rss_load_kib={peak} rss_per_conn_bytes={per_conn:.0}"
        );
    }
    let one_secs = one.elapsed.as_secs_f64().max(1e-9);
    let timed_secs = timed.elapsed.as_secs_f64().max(1e-9);
    line += &format!(
        " oneshot_acked={} oneshot_secs={one_secs:.3} oneshot_msgs_per_s={:.0} oneshot_p99_us={} \
         timed_msgs_per_s={:.0} timed_p50_us={} timed_p99_us={} failures={}",
        one.acked,
        one.acked as f64 / one_secs,
        us(one.hist.value_at_quantile(0.99)),
        timed.acked as f64 / timed_secs,
        us(timed.hist.value_at_quantile(0.5)),
        us(timed.hist.value_at_quantile(0.99)),
        timed.failures,
    );
    println!("{line}");
    if let Some(e) = timed.first_error {
        eprintln!("scale: first failure: {e}");
    }
    eprintln!("scale: {} messages sent in all", driver.total_sent());
    Ok(())
}

/// Host-side `size_of` of a session next to its buffers: the overhead is what one
/// session costs beyond its message capacity.
fn session_size() {
    use soquete_core::Session;
    fn row<const R: usize, const T: usize>() {
        let size = core::mem::size_of::<Session<[u8; R], [u8; T]>>();
        println!(
            "session rx={R} tx={T} size_of={size} overhead={} (x86_64)",
            size - R - T
        );
    }
    // Config::DEFAULT (1 KiB messages): the smallest rx for it, tx for one message.
    const DEFAULT_RX: usize = Session::<[u8; 1], [u8; 1]>::min_rx_len(soquete_core::Config::DEFAULT.max_message);
    row::<DEFAULT_RX, DEFAULT_RX>();
    row::<DEFAULT_RX, 2048>();
    row::<DEFAULT_RX, 4096>();
    row::<{ Session::<[u8; 1], [u8; 1]>::min_rx_len(64) }, 256>();
}
