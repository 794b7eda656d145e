//! The `soquete` command line: clap's types, turned into the plain options of
//! [`server`] and [`client`], and the program around them (binding the address,
//! standard output, signals, the exit status).

use std::io::{self, IsTerminal as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use soquete_text::{parse_duration, Format};

use crate::{client, keys, server};

/// soquete: TCP messaging with message boundaries, acknowledgements and plain-text peers.
#[derive(Debug, Parser)]
#[command(name = "soquete", version, about, after_help = TOP_HELP)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accept clients and print every message they send; lines typed at it go to them.
    #[command(after_help = SERVER_HELP)]
    Server(ServerArgs),
    /// Send each line of standard input as one message.
    // The last of a repeated flag wins, as in most Unix tools (handy behind an alias).
    #[command(after_help = CLIENT_HELP, args_override_self = true)]
    Client(ClientArgs),
    /// Print the completion script for SHELL to standard output.
    #[command(hide = true)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff) to standard output: soquete(1), or soquete-PAGE(1).
    #[command(hide = true)]
    Man {
        /// The subcommand whose page to print.
        page: Option<ManPage>,
    },
    /// Make a new device or server key: write the secret key to a new file (mode 0600)
    /// and print the public key.
    Keygen {
        /// Where to write the secret key; an existing file is never overwritten.
        #[arg(long, value_name = "PATH", default_value = "soquete.key")]
        out: PathBuf,
    },
    /// Print the public key of a secret key file.
    Pubkey {
        /// The secret key file, as `soquete keygen` writes it.
        path: PathBuf,
    },
}

/// The man pages besides soquete(1), one per subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ManPage {
    /// soquete-server(1).
    Server,
    /// soquete-client(1).
    Client,
    /// soquete-keygen(1).
    Keygen,
    /// soquete-pubkey(1).
    Pubkey,
}

/// `soquete server` options.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on, in the forms [`parse_listen`] takes.
    #[arg(
        long,
        default_value = "127.0.0.1:8800",
        value_name = "HOST:PORT",
        value_parser = parse_listen,
        help = "Address to listen on: HOST:PORT, [IPV6]:PORT or a bare PORT (on 127.0.0.1), e.g. \
                localhost:8800, 0.0.0.0:8800, [::]:8800 (port 0 picks a free port; the address bound is printed)"
    )]
    pub listen: Listen,
    /// Most clients served at once (at least 1); more are refused with "server full".
    #[arg(long, default_value_t = 1024, value_parser = parse_max_clients)]
    pub max_clients: usize,
    /// Largest message a client may send, in bytes (1 to 16777216; `soquete client`
    /// sends at most 262131).
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024))]
    pub max_message: u32,
    /// Close a session after this long without traffic (e.g. 60s, 2m; a bare number
    /// is seconds; at least 1s, or 0 to disable).
    #[arg(long, default_value = "120s", value_parser = parse_idle_timeout)]
    pub idle_timeout: Duration,
    /// Plain-text clients: show a partial line (no newline yet) after this long without
    /// input (e.g. 100ms; a bare number is seconds; at least 1ms, or 0 to wait for the
    /// newline or the end of the connection).
    #[arg(long, default_value = "100ms", value_parser = parse_line_gap)]
    pub line_gap: Duration,
    /// How long a binary session whose connection was lost waits for its client to
    /// reconnect and resume it, losing and repeating nothing (e.g. 60s, 5m; a bare
    /// number is seconds; at least 100ms, or 0 to disable resume).
    #[arg(long, default_value = "60s", value_parser = parse_resume_window)]
    pub resume_window: Duration,
    /// Print events as JSON lines instead of text (schema in the README).
    #[arg(long)]
    pub json: bool,
    /// Start each text line with the time (RFC 3339, UTC, milliseconds); JSON lines
    /// always carry it.
    #[arg(long)]
    pub timestamps: bool,
    /// Append the lines to this file instead of standard output; SIGHUP opens it
    /// again (after a log rotation renamed it).
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// With --output: a message is acknowledged only once its line is fsynced.
    #[arg(long, requires = "output")]
    pub fsync: bool,
    /// Forward each message to NATS JetStream (nats://HOST:PORT, or HOST:PORT; port
    /// 4222 if none) instead of printing it; a message is acknowledged only once
    /// JetStream has stored it. Events (connected, left...) are still printed. NATS
    /// must be reachable at start; later outages pause acknowledgements and are
    /// retried.
    #[arg(long, value_name = "URL", value_parser = parse_nats_url)]
    pub forward: Option<String>,
    /// With --forward: the JetStream stream (a name without whitespace, '.', '*', '>',
    /// '/' or '\'), created (file storage) if it does not exist, checked to take the
    /// subjects if it does.
    #[arg(long, value_name = "NAME", default_value = "SOQUETE", requires = "forward", value_parser = parse_stream_name)]
    pub forward_stream: String,
    /// With --forward: each message's subject. Tokens separated by dots, each literal
    /// or a field: {token} (the session token, 16 hex digits; required), {name}
    /// (the client's name; bytes other than A-Z a-z 0-9 - _ as %XX, the empty name
    /// as %) or {auth} (with --allowed-keys: the peer's authenticated name, encoded
    /// as {name}; % for a peer that is not authenticated). A message from an
    /// authenticated peer also carries a header Soquete-Auth: NAME.
    #[arg(
        long,
        value_name = "TEMPLATE",
        default_value = "soquete.{name}.{token}",
        value_parser = clap::value_parser!(crate::sink::forward::Template),
        requires = "forward"
    )]
    pub forward_subject: crate::sink::forward::Template,
    /// With --forward: the stream's duplicate window when this server creates it: a
    /// message published again (after a NATS outage) is stored once if its first copy
    /// is younger than this (e.g. 2m, 1h; a bare number is seconds; at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duplicate_window, requires = "forward")]
    pub forward_duplicate_window: Duration,
    /// The server's secret key (from `soquete keygen`): turns on the secure mode,
    /// beside binary and plain-text peers. Needs --allowed-keys.
    #[arg(long, value_name = "FILE", requires = "allowed_keys")]
    pub key: Option<PathBuf>,
    /// The client keys let in, one `soquete-pk:… NAME` line each (`#` starts a
    /// comment); NAME is shown as the client's authenticated name. SIGHUP reads it
    /// again.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub allowed_keys: Option<PathBuf>,
    /// Refuse every peer that does not authenticate with an allowed key (binary and
    /// plain-text peers get "authentication required").
    #[arg(long, requires = "key")]
    pub require_auth: bool,
    /// Chat room: each client's messages are also sent to every other client, as
    /// `NAME: text` (`#ID: text` for a client without a name).
    #[arg(long)]
    pub relay: bool,
    /// Messages waiting for one client at most (console lines, relayed messages), and
    /// 8 MiB; a client that lets more pile up does not read, and is closed.
    #[arg(long, default_value_t = 65536, value_name = "MESSAGES", value_parser = clap::value_parser!(u32).range(1..))]
    pub client_queue: u32,
    /// Do not read console lines from standard input.
    #[arg(long)]
    pub no_console: bool,
    /// Serve metrics in the Prometheus text format at http://HOST:PORT/metrics
    /// (e.g. 127.0.0.1:9800).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_listen)]
    pub metrics: Option<Listen>,
}

/// Parses `--max-clients`: a server that takes no client is a mistake.
fn parse_max_clients(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1 (e.g. 1024)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number of clients (e.g. 1024)")),
    }
}

/// A duration of at least `min` (0 too if `zero` says what it does): shorter ones
/// are typing mistakes (`5ms` for `5s`) that would close every session at once.
fn duration_at_least(text: &str, min: Duration, zero: Option<&str>) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return match zero {
            Some(_) => Ok(d),
            None => Err(format!("must be at least {min:?}")),
        };
    }
    if d < min {
        return Err(match zero {
            Some(what) => format!("{text:?} is too short: at least {min:?} (e.g. 30s), or 0 {what}"),
            None => format!("{text:?} is too short: at least {min:?} (e.g. 2m)"),
        });
    }
    Ok(d)
}

fn parse_idle_timeout(text: &str) -> Result<Duration, String> {
    duration_at_least(text, Duration::from_secs(1), Some("to disable"))
}

fn parse_line_gap(text: &str) -> Result<Duration, String> {
    duration_at_least(text, Duration::from_millis(1), Some("to wait for the newline"))
}

fn parse_resume_window(text: &str) -> Result<Duration, String> {
    duration_at_least(text, Duration::from_millis(100), Some("to disable resume"))
}

fn parse_duplicate_window(text: &str) -> Result<Duration, String> {
    duration_at_least(text, Duration::from_secs(1), None)
}

/// Checks `--forward-stream` as JetStream checks a stream's name: 1 to 255 bytes,
/// printable, none of whitespace, `.`, `*`, `>`, `/` and `\\` (the name is a token
/// of the API's subjects and a directory name).
///
/// # Errors
/// A name JetStream would not take, saying why.
pub fn parse_stream_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 255 {
        return Err(format!("{text:?}: a stream name has 1 to 255 bytes"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(format!(
            "{text:?}: a stream name cannot contain {c:?} (nor whitespace, '.', '*', '>', '/', '\\')"
        ));
    }
    Ok(text.to_owned())
}

/// Parses `--forward`: `nats://HOST:PORT`, `nats://HOST`, `HOST:PORT` or `HOST`, as
/// `HOST:PORT` (port 4222 by default).
///
/// # Errors
/// Another scheme, user information, a path, or no host.
pub fn parse_nats_url(text: &str) -> Result<String, String> {
    let rest = match text.split_once("://") {
        Some(("nats", rest)) => rest,
        Some((scheme, _)) => return Err(format!("{scheme}:// is not supported (nats://HOST:PORT; no TLS)")),
        None => text,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '@', ' ', ',']) {
        return Err(format!("{text:?}: expected nats://HOST:PORT"));
    }
    let has_port = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && (!host.contains(':') || host.ends_with(']')) => {
            port.parse::<u16>()
                .map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
            true
        }
        _ => false,
    };
    Ok(if has_port {
        rest.to_owned()
    } else {
        format!("{rest}:4222")
    })
}

/// The hidden subcommands, after `soquete --help`'s list.
const TOP_HELP: &str = "\
Shell completions: soquete completions SHELL (bash, zsh, fish, elvish, powershell).
Man pages: soquete man [server|client|keygen|pubkey] (roff; e.g. soquete man | man -l -).";

/// The console, after `soquete server --help`'s options.
const SERVER_HELP: &str = "\
Console: each line typed at the server (or piped to its standard input) is sent to the
clients as a message, acknowledged like any other:
  text         to every client
  #3 text      to session #3 (the number in the server's lines)
  @ana text    to every client named ana
  \\#3 text     to every client, as \"#3 text\": a leading \\ is removed
A line that reaches nobody, or is longer than 4 KiB, is reported on stderr (and not
sent). The end of standard input ends the
console, not the server (a service runs with standard input on /dev/null); in a
background job, or with --no-console, the console is off.";

/// The input rule and the exit status, after `soquete client --help`'s options.
const CLIENT_HELP: &str = "\
Input: each line of standard input is one message (its \\n or \\r\\n is not sent), of
at most 262131 bytes (and the server's --max-message). A line that is just S (or s) ends
the input: the lines after it are not sent, and when standard input is not a terminal
the client says at which line it stopped and how many lines were left. --stop-word WORD
changes the word, --stop-word none sends every line.

Exit status:
  0  every line of the input (up to the stop word) was sent and acknowledged (with
     --plain: written, and the server answered no line with ERR before it closed or
     --timeout passed), and the session closed in order
  1  anything else: cannot connect, refused, a timeout, a line too long, messages not
     acknowledged, a lost connection; the last line on stderr says what happened
  2  usage error (an unknown flag or a bad value)
  3  with --server-key: the server could not prove it holds that key (a man in the
     middle, or the wrong key); nothing but the encrypted handshake was sent";

/// `soquete client` options.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server address: HOST:PORT or [IPV6]:PORT (the name is resolved when connecting).
    #[arg(long, default_value = "127.0.0.1:8800", value_name = "HOST:PORT", value_parser = parse_connect)]
    pub connect: String,
    /// Name to introduce this client with (at most 32 bytes).
    #[arg(long, value_parser = client::parse_name)]
    pub name: Option<String>,
    /// Longest wait for progress: connecting, the handshake, the next acknowledgement,
    /// the close (e.g. 10s, 500ms; not 0).
    #[arg(long, default_value = "10s", value_parser = client::parse_timeout)]
    pub timeout: Duration,
    /// Speak plain text lines (for `nc -l` or any line-based server): no handshake, no
    /// acknowledgements. After the input ends, the client shuts down its sending side
    /// and reads the server's answer until it closes, for at most --timeout (then it
    /// says so and ends as if it had closed).
    #[arg(long)]
    pub plain: bool,
    /// When the connection is lost, connect again (with backoff) and resume the
    /// session: unacknowledged messages are resent, none is shown twice.
    #[arg(long, conflicts_with = "plain")]
    pub reconnect: bool,
    /// With --reconnect: give up after this long without progress (no acknowledgement,
    /// however many connections were made; 0: never).
    #[arg(long, default_value = "60s", value_parser = parse_duration, requires = "reconnect")]
    pub reconnect_for: Duration,
    /// A line equal to WORD (in any case) ends the input; `none`: every line is sent.
    #[arg(long, default_value = "S", value_name = "WORD|none")]
    pub stop_word: String,
    /// This client's secret key (from `soquete keygen`): speak the secure mode
    /// (authenticated, encrypted). Needs --server-key.
    #[arg(long, value_name = "FILE", requires = "server_key", conflicts_with = "plain")]
    pub key: Option<PathBuf>,
    /// The server's public key, `soquete-pk:…`, or a file holding it (as `soquete
    /// pubkey` prints it). The client sends nothing more unless the server proves it.
    #[arg(long, value_name = "soquete-pk:…|FILE", requires = "key")]
    pub server_key: Option<String>,
}

impl ServerArgs {
    /// The server's options (everything but the address).
    pub fn options(&self) -> server::Options {
        server::Options {
            max_clients: self.max_clients,
            max_message: self.max_message,
            idle_timeout: self.idle_timeout,
            line_gap: self.line_gap,
            resume_window: self.resume_window,
            format: if self.json { Format::Json } else { Format::Text },
            timestamps: self.timestamps,
            forward: self.forward.as_ref().map(|server| server::Forwarding {
                stream: self.forward_stream.clone(),
                subject: self.forward_subject.clone(),
                duplicate_window: self.forward_duplicate_window,
                ..server::Forwarding::new(server.clone())
            }),
            auth: match (&self.key, &self.allowed_keys) {
                (Some(key), Some(allowed)) => Some(server::AuthFiles {
                    key: key.clone(),
                    allowed_keys: allowed.clone(),
                    require: self.require_auth,
                }),
                _ => None,
            },
            relay: self.relay,
            client_queue: server::ClientQueue {
                messages: self.client_queue as usize,
                ..server::ClientQueue::default()
            },
        }
    }
}

impl ClientArgs {
    /// The client's options.
    pub fn options(&self) -> client::Options {
        client::Options {
            connect: self.connect.clone(),
            name: self.name.clone(),
            timeout: self.timeout,
            plain: self.plain,
            reconnect: self.reconnect.then_some(self.reconnect_for),
            stop_word: (self.stop_word != "none").then(|| self.stop_word.clone()),
            key: self.key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

/// Runs what the command line asks for; returns the exit status.
///
/// # Errors
/// What stopped the program, as a message for its user.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Server(args) => serve(&args),
        Command::Client(args) => match client::run(&args.options()) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.downcast_ref::<client::ServerNotAuthenticated>().is_some() => {
                eprintln!("soquete: error: {e:#}");
                Ok(ExitCode::from(client::EXIT_NOT_AUTHENTICATED))
            }
            Err(e) => Err(e),
        },
        Command::Completions { shell } => print_completions(shell),
        Command::Man { page } => print_man(page),
        Command::Keygen { out } => keygen(&out),
        Command::Pubkey { path } => pubkey(&path),
    }
}

/// `soquete keygen`: a new secret key in a new file, its public key on standard output.
fn keygen(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let key = keys::generate()?;
    keys::write_secret(out, &key)?;
    eprintln!("soquete: secret key written to {} (mode 0600)", out.display());
    println!("{}", keys::public_to_text(&key.public_key()));
    Ok(ExitCode::SUCCESS)
}

/// `soquete pubkey PATH`: the public key of a secret key file.
fn pubkey(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let key = keys::read_secret(path)?;
    println!("{}", keys::public_to_text(&key.public_key()));
    Ok(ExitCode::SUCCESS)
}

/// `soquete server`: until SIGINT/SIGTERM, printing to standard output.
fn serve(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let listener = args.listen.bind("--listen")?;
    let shutdown = server::Shutdown::on_signals().context("cannot handle signals")?;
    let (output, what) = match &args.output {
        Some(path) => (
            server::Output::File {
                path: path.clone(),
                fsync: args.fsync,
            },
            path.display().to_string(),
        ),
        None => (server::Output::from(io::stdout()), "standard output".to_string()),
    };
    let metrics = match &args.metrics {
        Some(listen) => Some(listen.bind("--metrics")?),
        None => None,
    };
    let console: Option<Box<dyn io::Read + Send>> = if args.no_console || in_background() {
        None
    } else {
        Some(Box::new(io::stdin()))
    };
    let extras = server::Extras { console, metrics };
    let stopped = match server::run_with(listener, &args.options(), output, shutdown, extras) {
        Ok(stopped) => stopped,
        Err(server::Error::Output(e)) => {
            return Err(e).with_context(|| {
                format!("cannot write to {what}; no message after the last one written was acknowledged, and the server stopped")
            })
        }
        Err(server::Error::Setup("open the output", e)) => {
            return Err(e).with_context(|| format!("cannot open {what} for appending"))
        }
        Err(server::Error::Forward(e)) => {
            let to = args.forward.as_deref().unwrap_or_default();
            let hint = match e {
                crate::sink::nats::Error::Io(_)
                | crate::sink::nats::Error::Closed
                | crate::sink::nats::Error::Timeout
                | crate::sink::nats::Error::NoResponders => ": is nats-server running there with -js?",
                _ => "",
            };
            let stream = &args.forward_stream;
            return Err(e).with_context(|| format!("cannot forward to NATS JetStream at {to}, stream {stream}{hint}"));
        }
        Err(e) => return Err(e.into()),
    };
    match stopped {
        server::Stopped::Gracefully => Ok(ExitCode::SUCCESS),
        // As a shell reports a process killed by the signal.
        server::Stopped::AtOnce { signal } => Ok(ExitCode::from(
            128u8.saturating_add(signal.and_then(|s| u8::try_from(s).ok()).unwrap_or(0)),
        )),
    }
}

/// True if standard input is a terminal of which this process is not in the
/// foreground (`soquete server &`): reading it would stop the process (SIGTTIN).
fn in_background() -> bool {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return false;
    }
    rustix::termios::tcgetpgrp(&stdin).is_ok_and(|pgrp| pgrp != rustix::process::getpgrp())
}

/// Where `soquete server` listens, as `--listen` wrote it: its form is checked when
/// the command line is parsed, a host name is resolved when [`Listen::bind`] binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A host name and port.
    Name(String, u16),
}

/// The forms `--listen` takes, shown when a value has none of them.
const LISTEN_FORMS: &str = "expected HOST:PORT, [IPV6]:PORT or PORT, for example \
localhost:8800, 0.0.0.0:8800 (every IPv4 address), [::]:8800 (every address) or 8800 \
(same as 127.0.0.1:8800)";

/// The forms `--connect` takes, with examples (its usage error).
const CONNECT_FORMS: &str = "expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535, \
for example localhost:8800, 127.0.0.1:8800 or [::1]:8800";

/// Parses `--connect`: `IP:PORT`, `[IPV6]:PORT` or `NAME:PORT`, with a port that can be
/// connected to (not 0). The name is only checked for its form: it is resolved when
/// connecting.
///
/// # Errors
/// None of these forms, with the forms and an example.
pub fn parse_connect(text: &str) -> Result<String, String> {
    match parse_listen(text) {
        // A bare port is a `--listen` shorthand, not an address to connect to.
        Ok(_) if text.parse::<u16>().is_ok() => Err(CONNECT_FORMS.to_owned()),
        Ok(Listen::Addr(addr)) if addr.port() != 0 => Ok(text.to_owned()),
        Ok(Listen::Name(_, port)) if port != 0 => Ok(text.to_owned()),
        _ => Err(CONNECT_FORMS.to_owned()),
    }
}

/// Parses `--listen`: `IP:PORT`, `[IPV6]:PORT`, `NAME:PORT`, or a bare `PORT`, which
/// means `127.0.0.1:PORT` (loopback, as the default: every address must be asked for).
///
/// # Errors
/// None of these forms, with the forms and an example.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(Listen::Addr(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Listen::Addr(addr));
    }
    let name = text.rsplit_once(':').and_then(|(host, port)| {
        let is_name = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        Some((host, port.parse::<u16>().ok()?)).filter(|_| is_name)
    });
    match name {
        Some((host, port)) => Ok(Listen::Name(host.to_owned(), port)),
        None => Err(LISTEN_FORMS.to_owned()),
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Addr(addr) => write!(f, "{addr}"),
            Listen::Name(host, port) => write!(f, "{host}:{port}"),
        }
    }
}

impl Listen {
    /// A listening socket ([`server::bind`]) on the first of the addresses this one
    /// resolves to that can be bound, in the resolver's order; the others are not
    /// tried once one is bound (its `local_addr` says which).
    ///
    /// # Errors
    /// The name does not resolve, or no address can be bound.
    pub fn bind(&self, flag: &str) -> anyhow::Result<std::net::TcpListener> {
        let addrs: Vec<SocketAddr> = match self {
            Listen::Addr(addr) => vec![*addr],
            Listen::Name(host, port) => std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))
                .with_context(|| format!("cannot listen on {self}: the name does not resolve"))?
                .collect(),
        };
        bind_first(&addrs, self, flag)
    }
}

/// A listening socket ([`server::bind`]) on the first of `addrs` that can be bound;
/// `what` is the value they come from and `flag` the option that gave it, for messages.
fn bind_first(addrs: &[SocketAddr], what: &Listen, flag: &str) -> anyhow::Result<std::net::TcpListener> {
    let mut failed = None;
    for (i, addr) in addrs.iter().enumerate() {
        match server::bind(*addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                if i + 1 < addrs.len() {
                    log::warn!("cannot listen on {addr} ({e}), trying the next address of {what}");
                }
                failed = Some((*addr, e));
            }
        }
    }
    let Some((addr, e)) = failed else {
        anyhow::bail!("cannot listen on {what} ({flag}): the name resolves to no address");
    };
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => "is another server running there? ",
        io::ErrorKind::AddrNotAvailable => "it is not an address of this machine. ",
        io::ErrorKind::PermissionDenied => "ports below 1024 need privileges. ",
        _ => "",
    };
    Err(anyhow::Error::new(e))
        .with_context(|| format!("cannot listen on {addr} ({flag}): {hint}Choose another address with {flag}"))
}

/// `soquete completions SHELL`.
fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cli = <Cli as clap::CommandFactory>::command();
    // Into memory first: `generate` panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli, "soquete", &mut script);
    print_all(&script)
}

/// `soquete man [PAGE]`.
fn print_man(page: Option<ManPage>) -> anyhow::Result<ExitCode> {
    let mut cli = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    // Gives subcommands their display names (soquete-server) for their pages' titles.
    cli.build();
    let cmd = match page {
        None => cli,
        Some(page) => {
            let name = match page {
                ManPage::Server => "server",
                ManPage::Client => "client",
                ManPage::Keygen => "keygen",
                ManPage::Pubkey => "pubkey",
            };
            cli.find_subcommand(name)
                .cloned()
                .with_context(|| format!("no subcommand {name}"))?
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(cmd)
        .source(concat!("soquete ", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .context("cannot render the man page")?;
    print_all(&roff)
}

/// Writes `bytes` to standard output; a reader that stopped early (`| head`) is not
/// an error.
fn print_all(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match io::Write::write_all(&mut out, bytes).and_then(|()| io::Write::flush(&mut out)) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("cannot write to standard output"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_gives_the_client_s_longest_message() {
        let max = crate::client::MAX_LINE.to_string();
        assert!(CLIENT_HELP.contains(&format!("at most {max} bytes")), "client --help");
        let server = <Cli as clap::CommandFactory>::command()
            .find_subcommand_mut("server")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        assert!(server.contains(&format!("sends at most {max})")), "server --help");
    }

    #[test]
    fn nats_urls_become_host_and_port() {
        assert_eq!(parse_nats_url("nats://127.0.0.1:4333").unwrap(), "127.0.0.1:4333");
        assert_eq!(parse_nats_url("nats://localhost").unwrap(), "localhost:4222");
        assert_eq!(parse_nats_url("nats.example:4222/").unwrap(), "nats.example:4222");
        assert_eq!(parse_nats_url("[::1]:5000").unwrap(), "[::1]:5000");
        assert_eq!(parse_nats_url("[::1]").unwrap(), "[::1]:4222");
        for bad in [
            "tls://h:1",
            "nats://",
            "nats://u:p@h:1",
            "h:port",
            "h:99999",
            "nats://h:1/x",
        ] {
            assert!(parse_nats_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_names_are_checked_as_jetstream_does() {
        for good in ["SOQUETE", "dev-2_a", "ÉTÉ"] {
            assert_eq!(parse_stream_name(good).unwrap(), good);
        }
        for bad in [
            "",
            "bad.name",
            "bad name",
            "a*",
            "a>",
            "a/b",
            "a\\b",
            "tab\there",
            &"x".repeat(256),
        ] {
            assert!(parse_stream_name(bad).is_err(), "{bad}");
        }
        let err = parse_stream_name("bad.name").unwrap_err();
        assert!(err.contains("cannot contain '.'"), "{err}");
    }

    #[test]
    fn defaults_are_the_libraries_defaults() {
        let cli = Cli::try_parse_from(["soquete", "server"]).unwrap();
        let Command::Server(args) = cli.command else {
            panic!("not server")
        };
        assert_eq!(args.options(), server::Options::default());
    }

    #[test]
    fn client_flags_become_options() {
        let cli = Cli::try_parse_from([
            "soquete",
            "client",
            "--name",
            "ana",
            "--timeout",
            "1m30s",
            "--reconnect",
            "--reconnect-for",
            "1h",
        ])
        .unwrap();
        let Command::Client(args) = cli.command else {
            panic!("not client")
        };
        assert_eq!(
            args.options(),
            client::Options {
                connect: "127.0.0.1:8800".into(),
                name: Some("ana".into()),
                timeout: Duration::from_secs(90),
                plain: false,
                reconnect: Some(Duration::from_secs(3600)),
                stop_word: Some("S".into()),
                key: None,
                server_key: None,
            }
        );
    }

    #[test]
    fn client_defaults_are_the_libraries_defaults() {
        let cli = Cli::try_parse_from(["soquete", "client"]).unwrap();
        let Command::Client(args) = cli.command else {
            panic!("not client")
        };
        assert_eq!(args.options(), client::Options::default());
    }

    #[test]
    fn stop_word_none_turns_it_off() {
        let parse = |word: &str| {
            let cli = Cli::try_parse_from(["soquete", "client", "--stop-word", word]).unwrap();
            let Command::Client(args) = cli.command else {
                panic!("not client")
            };
            args.options().stop_word
        };
        assert_eq!(parse("none"), None);
        assert_eq!(parse("END"), Some("END".into()));
    }

    #[test]
    fn server_durations_take_bare_seconds_zero_and_sane_minimums() {
        let parse = |args: &[&str]| Cli::try_parse_from(["soquete", "server"].iter().chain(args));
        let Command::Server(s) = parse(&["--idle-timeout", "5", "--resume-window", "0.1"])
            .unwrap()
            .command
        else {
            panic!("not a server");
        };
        assert_eq!(s.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.resume_window, Duration::from_millis(100));
        let Command::Server(s) = parse(&["--idle-timeout", "0", "--line-gap", "0", "--max-clients", "1"])
            .unwrap()
            .command
        else {
            panic!("not a server");
        };
        assert_eq!(
            (s.idle_timeout, s.line_gap, s.max_clients),
            (Duration::ZERO, Duration::ZERO, 1)
        );
        assert!(parse(&["--idle-timeout", "999ms"]).is_err());
        assert!(parse(&["--max-clients", "0"]).is_err());
    }

    #[test]
    fn zero_timeout_is_a_usage_error() {
        let err = Cli::try_parse_from(["soquete", "client", "--timeout", "0"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(Cli::try_parse_from(["soquete", "client", "--timeout", "1ms"]).is_ok());
    }

    #[test]
    fn listen_takes_the_forms_of_connect() {
        let parse = |text: &str| parse_listen(text).map_err(|_| text.to_owned());
        let addr = |text: &str| Ok(Listen::Addr(text.parse().unwrap()));
        assert_eq!(parse("8800"), addr("127.0.0.1:8800"));
        assert_eq!(parse("0"), addr("127.0.0.1:0"));
        assert_eq!(parse("0.0.0.0:8800"), addr("0.0.0.0:8800"));
        assert_eq!(parse("[::]:8800"), addr("[::]:8800"));
        assert_eq!(parse("[::1]:0"), addr("[::1]:0"));
        assert_eq!(parse("localhost:8800"), Ok(Listen::Name("localhost".into(), 8800)));
        assert_eq!(
            parse("my-host.example_1:1"),
            Ok(Listen::Name("my-host.example_1".into(), 1))
        );
        for bad in [
            "",
            ":8800",
            "localhost",
            "localhost:",
            "localhost:65536",
            "::1:8800",
            "[::1]",
            "[localhost]:80",
            "a b:80",
            "host:80:80",
            "-1",
            "65536",
            "1.2.3.4:x",
        ] {
            assert_eq!(parse(bad), Err(bad.to_owned()), "{bad:?} was accepted");
        }
    }

    #[test]
    fn connect_takes_an_address_with_a_port() {
        for good in ["127.0.0.1:8800", "[::1]:1", "localhost:65535", "my-host.example_1:80"] {
            assert_eq!(parse_connect(good), Ok(good.to_owned()));
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "8800",
            "localhost",
            "[::1]",
            ":80",
            "",
        ] {
            assert_eq!(
                parse_connect(bad),
                Err(CONNECT_FORMS.to_owned()),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn listen_errors_show_the_forms() {
        let err = Cli::try_parse_from(["soquete", "server", "--listen", "localhost"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let text = err.to_string();
        assert!(text.contains("[::]:8800") && text.contains("localhost:8800"), "{text}");
    }

    #[test]
    fn listen_binds_a_name_and_says_where() {
        let listener = Listen::Name("localhost".into(), 0).bind("--listen").unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn listen_binds_the_first_address_that_works() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap();
        let what = Listen::Name("example".into(), busy.port());
        let free: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listener = bind_first(&[busy, free], &what, "--listen").unwrap();
        let bound = listener.local_addr().unwrap();
        assert_ne!(bound, busy);
        assert!(bound.ip().is_loopback());

        let err = bind_first(&[busy, busy], &what, "--listen").unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("cannot listen on {busy}")),
            "{err:#}"
        );
        let err = bind_first(&[], &what, "--listen").unwrap_err();
        assert!(format!("{err:#}").contains("resolves to no address"), "{err:#}");
    }

    #[test]
    fn listen_reports_an_address_in_use() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Listen::Addr(addr).bind("--metrics").unwrap_err();
        assert!(
            format!("{err:#}").contains("is another server running there? Choose another address with --metrics"),
            "{err:#}"
        );
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
