//! soquete in Embassy tasks: the core's async driver (`soquete_core::io_async`) over
//! embassy-net TCP sockets, on `embassy-executor`'s std executor and a Linux TAP device.
//!
//! * `--connect ADDR --messages N`: a task sends N numbered messages to a soquete
//!   server, waits for their acknowledgement, closes in order.
//! * `--listen PORT --sessions K`: a task serves soquete clients one after another and
//!   prints what they send as `soquete server` does.
//!
//! Both may run at once, in one executor over one network stack. The process exits when
//! every task is done: 0 when every session closed in order (and, as a client, every
//! message was acknowledged), 1 otherwise.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::Parser;
use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_net::tcp::TcpSocket;
use embassy_net::{Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, Timer};
use soquete_core::io_async::Driver;
use soquete_core::{Closure, Code, Config, Event, Instant, Session};
use static_cell::StaticCell;

/// Receive buffer of a session: one whole frame of the largest message
/// (`Session::min_rx_len(1024)` is 1037 bytes).
const SESSION_RX: usize = 2048;
/// Transmit buffer of a session: messages in flight until acknowledged.
const SESSION_TX: usize = 4096;
/// Each TCP socket's own receive and transmit buffers.
const SOCKET_BUF: usize = 4096;
/// How much of the session's output one socket write takes.
const WRITE_CHUNK: usize = 1024;

type DemoSession = Session<[u8; SESSION_RX], [u8; SESSION_TX]>;

#[derive(Parser, Debug)]
#[command(version, about = "soquete's async driver in Embassy tasks over a TAP device")]
struct Args {
    /// TAP device to use (it must exist and be up).
    #[arg(long, default_value = "tap0")]
    tap: String,
    /// This side's IPv4 address and prefix length.
    #[arg(long, default_value = "192.168.69.2/24")]
    address: String,
    /// Default gateway, for peers beyond the subnet.
    #[arg(long)]
    gateway: Option<Ipv4Addr>,
    /// Client task: the soquete server to send to.
    #[arg(long)]
    connect: Option<SocketAddrV4>,
    /// Client task: how many messages to send.
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// Client task: the name it gives the server.
    #[arg(long, default_value = "embassy")]
    name: String,
    /// Server task: the port to listen on.
    #[arg(long)]
    listen: Option<u16>,
    /// Server task: how many sessions to serve before it ends.
    #[arg(long, default_value_t = 1)]
    sessions: u32,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
}

/// Tasks still running, and whether any failed: the last one to finish ends the process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicBool = AtomicBool::new(false);

fn finish(ok: bool) {
    if !ok {
        FAILED.store(true, Ordering::SeqCst);
    }
    if RUNNING.fetch_sub(1, Ordering::SeqCst) == 1 {
        exit(if FAILED.load(Ordering::SeqCst) { 1 } else { 0 });
    }
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The session's clock: embassy-time's, in milliseconds.
fn now() -> Instant {
    Instant::from_millis(embassy_time::Instant::now().as_millis())
}

/// Resolves at the session's next deadline, or never.
async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => Timer::at(embassy_time::Instant::from_millis(at.as_millis())).await,
        None => core::future::pending().await,
    }
}

/// Moves bytes until the session has something to report: the transport raced against
/// the session's timer (`drive` is cancel-safe, so losing the race loses nothing).
async fn step<const N: usize>(
    io: &mut Driver<embassy_net::tcp::TcpReader<'_>, embassy_net::tcp::TcpWriter<'_>, N>,
    session: &mut DemoSession,
) -> Result<(), soquete_core::io::Error<embassy_net::tcp::Error>> {
    let timeout = session.poll_timeout();
    match select(io.drive(session, now), deadline(timeout)).await {
        Either::First(progress) => progress.map(|_| ()),
        Either::Second(()) => {
            session.handle_timeout(now());
            Ok(())
        }
    }
}

/// Closes the socket after the session's last bytes and waits (bounded) for the peer
/// to take them.
async fn close_socket(socket: &mut TcpSocket<'_>) {
    socket.close();
    let _ = select(socket.flush(), Timer::after(Duration::from_secs(5))).await;
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

/// Sends `count` messages to `server`, then closes; fails the process unless all were
/// acknowledged and the session closed in order.
#[embassy_executor::task]
async fn client_task(stack: Stack<'static>, server: SocketAddrV4, name: String, count: u64) {
    let ok = match run_client(stack, server, &name, count).await {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("client: {e}");
            false
        }
    };
    finish(ok);
}

async fn run_client(stack: Stack<'static>, server: SocketAddrV4, name: &str, count: u64) -> Result<bool, String> {
    let (mut rx, mut tx) = ([0u8; SOCKET_BUF], [0u8; SOCKET_BUF]);
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    let started = now();
    socket
        .connect(server)
        .await
        .map_err(|e| format!("cannot connect to {server}: {e:?}"))?;
    let mut session: DemoSession = Session::client(Config::DEFAULT, name, [0; SESSION_RX], [0; SESSION_TX], now())
        .map_err(|e| format!("session: {e}"))?;
    let (mut next, mut acked, mut closure) = (1u64, 0u64, None);
    {
        let (reader, writer) = socket.split();
        let mut io = Driver::<_, _, WRITE_CHUNK>::new(reader, writer);
        loop {
            while let Some(event) = session.poll_event(now()) {
                match event {
                    Event::Acked { seq } => acked = seq,
                    Event::Closed(c) => closure = Some(c),
                    Event::Message { payload, .. } => println!("server: {}", payload.escape_ascii()),
                    Event::Established { .. } | Event::PeerClosing(_) | Event::Hello { .. } => {}
                }
            }
            while next <= count && session.is_open() {
                match session.send(format!("embassy message {next}").as_bytes()) {
                    Ok(_) => next += 1,
                    Err(soquete_core::session::Error::Full) => break,
                    Err(e) => return Err(format!("send: {e}")),
                }
            }
            if next > count && session.is_open() {
                // CLOSE leaves once every message is acknowledged (PROTOCOL.md §4.5).
                session.close(now(), Code::Normal);
            }
            if session.is_finished() {
                break;
            }
            step(&mut io, &mut session).await.map_err(|e| format!("{e}"))?;
        }
        io.flush().await.map_err(|e| format!("{e}"))?;
    }
    close_socket(&mut socket).await;
    let secs = now().saturating_since(started).as_millis() as f64 / 1000.0;
    let closure = closure.unwrap_or(Closure::Eof);
    println!(
        "sent {} messages, {acked} acknowledged, {closure}, in {secs:.2}s",
        next - 1
    );
    Ok(acked == count && next - 1 == count && closure.is_clean(session.mode()))
}

/// Serves `sessions` soquete clients, one after another, on `port`.
#[embassy_executor::task]
async fn server_task(stack: Stack<'static>, port: u16, sessions: u32) {
    let mut ok = true;
    for id in 1..=sessions {
        match serve_one(stack, port, id).await {
            Ok(clean) => ok &= clean,
            Err(e) => {
                eprintln!("server: {e}");
                ok = false;
            }
        }
    }
    finish(ok);
}

/// One session: prints what `soquete server` prints for it; true when it closed in
/// order.
async fn serve_one(stack: Stack<'static>, port: u16, id: u32) -> Result<bool, String> {
    let (mut rx, mut tx) = ([0u8; SOCKET_BUF], [0u8; SOCKET_BUF]);
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    if id == 1 {
        let address = stack.config_v4().map(|c| c.address.address());
        println!("listening on {}:{port}", address.unwrap_or(Ipv4Addr::UNSPECIFIED));
    }
    socket.accept(port).await.map_err(|e| format!("accept: {e:?}"))?;
    let peer = socket
        .remote_endpoint()
        .map_or_else(|| "?".to_string(), |e| e.to_string());
    let mut session: DemoSession = Session::server(Config::DEFAULT, [0; SESSION_RX], [0; SESSION_TX], now())
        .map_err(|e| format!("session: {e}"))?;
    let (mut received, mut closure) = (0u64, None);
    {
        let (reader, writer) = socket.split();
        let mut io = Driver::<_, _, WRITE_CHUNK>::new(reader, writer);
        loop {
            while let Some(event) = session.poll_event(now()) {
                match event {
                    Event::Hello { name, .. } => {
                        if name.is_empty() {
                            println!("#{id} {peer} connected");
                        } else {
                            println!("#{id} {peer} connected as \"{}\"", name.escape_default());
                        }
                        session
                            .accept(u64::from(id), None)
                            .map_err(|e| format!("accept: {e}"))?;
                    }
                    Event::Message { payload, .. } => {
                        received += 1;
                        println!("#{id} {peer}: {}", payload.escape_ascii());
                    }
                    Event::Closed(c) => closure = Some(c),
                    Event::Established { .. } | Event::Acked { .. } | Event::PeerClosing(_) => {}
                }
            }
            if session.is_finished() {
                break;
            }
            step(&mut io, &mut session).await.map_err(|e| format!("{e}"))?;
        }
        io.flush().await.map_err(|e| format!("{e}"))?;
    }
    close_socket(&mut socket).await;
    let closure = closure.unwrap_or(Closure::Eof);
    println!("#{id} {peer} left ({closure}) after {received} messages");
    Ok(closure.is_clean(session.mode()))
}

#[embassy_executor::task]
async fn time_limit(secs: u64) {
    Timer::after(Duration::from_secs(secs)).await;
    eprintln!("time limit of {secs}s reached");
    exit(1);
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s}: expected ADDRESS/PREFIX"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{s}: {e}"))?;
    let len: u8 = len.parse().map_err(|e| format!("{s}: {e}"))?;
    if len > 32 {
        return Err(format!("{s}: prefix longer than 32"));
    }
    Ok(Ipv4Cidr::new(addr, len))
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    env_logger::init();
    let args = Args::parse();
    if let Err(e) = start(spawner, args) {
        eprintln!("soquete-embassy-demo: {e}");
        exit(2);
    }
}

fn start(spawner: Spawner, args: Args) -> Result<(), String> {
    if args.connect.is_none() && args.listen.is_none() {
        return Err("nothing to do: give --connect ADDR, --listen PORT, or both".into());
    }
    let device = TunTapDevice::new(&args.tap).map_err(|e| format!("TAP device {}: {e}", args.tap))?;
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: parse_cidr(&args.address)?,
        gateway: args.gateway,
        dns_servers: Default::default(),
    });
    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let (stack, runner) = embassy_net::new(device, config, RESOURCES.init(StackResources::new()), seed);

    let jobs = usize::from(args.connect.is_some()) + usize::from(args.listen.is_some());
    RUNNING.store(jobs, Ordering::SeqCst);
    let spawn = |r: Result<(), embassy_executor::SpawnError>| r.map_err(|e| format!("spawn: {e:?}"));
    spawn(spawner.spawn(net_task(runner)))?;
    spawn(spawner.spawn(time_limit(args.time_limit)))?;
    if let Some(port) = args.listen {
        spawn(spawner.spawn(server_task(stack, port, args.sessions)))?;
    }
    if let Some(server) = args.connect {
        spawn(spawner.spawn(client_task(stack, server, args.name, args.messages)))?;
    }
    Ok(())
}
