//! Command-line interface: loopback mode by default, TAP mode with `--tap`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use smoltcp::phy::Medium;
use smoltcp::wire::{IpCidr, IpEndpoint, Ipv4Address};
use soquete_text::parse_duration;

use crate::link::Faults;
use crate::loopback;
use crate::node::MAX_MESSAGE;
use crate::tap::{TapConfig, TapRole};

/// soquete over smoltcp. By default, a server and clients in one process over a
/// loopback link on a virtual clock; with --tap, one side on a TAP device talking to
/// `soquete server` / `soquete client` through the kernel.
#[derive(Debug, Parser)]
#[command(name = "soquete-smoltcp-demo", version, about)]
pub struct Cli {
    /// Loopback: number of clients (each with its own connection).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16383), conflicts_with = "tap")]
    pub clients: u32,
    /// Messages each client sends.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Size of each message in bytes (at least its header, `client C message I `).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(0..=MAX_MESSAGE as i64))]
    pub size: u32,
    /// Leave out the server's per-message lines.
    #[arg(long)]
    pub quiet: bool,
    /// Loopback: link layer of the loopback device.
    #[arg(long, value_enum, default_value_t = LinkMedium::Ip, conflicts_with = "tap")]
    pub medium: LinkMedium,
    /// Loopback: each TCP socket's receive and transmit buffer, and each session's
    /// transmit buffer, in bytes: 4096 (a firmware's) or 65536 (smoltcp's loopback
    /// benchmark's).
    #[arg(long, default_value_t = 4096, conflicts_with = "tap")]
    pub socket_buffers: u32,
    /// Loopback: smoltcp's Loopback device as it is (65,535-byte MTU, no checksums),
    /// as in smoltcp's loopback benchmark, instead of an Ethernet-like link. With
    /// --pcap or a fault flag, smoltcp's fault injector holds the MTU at 1,536 bytes.
    #[arg(long, conflicts_with_all = ["tap", "corrupt_chance"])]
    pub raw_link: bool,
    /// Give up after this long (virtual time in loopback mode, real time with --tap;
    /// e.g. 30s). Loopback default: 3600s (virtual: costs no real time).
    #[arg(long, value_parser = parse_duration)]
    pub time_limit: Option<Duration>,

    /// Chance of dropping each packet, in percent (applied on send and on receive).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100), value_name = "PERCENT")]
    pub drop_chance: u8,
    /// Chance of flipping a bit in each packet, in percent.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100), value_name = "PERCENT")]
    pub corrupt_chance: u8,
    /// Drop packets larger than this many bytes (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub size_limit: usize,
    /// Packets sent per shaping interval; more are dropped (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "PACKETS")]
    pub tx_rate_limit: u64,
    /// Packets received per shaping interval; more are dropped (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "PACKETS")]
    pub rx_rate_limit: u64,
    /// Interval of the rate limits, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub shaping_interval: u64,
    /// Seed of the fault injector (and, in loopback mode, of smoltcp's random numbers).
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Write the packets to this pcap file (open with Wireshark or tcpdump -r).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// TAP mode: the TAP device to use (it must exist: ip tuntap add dev tap0 mode tap).
    #[arg(long, value_name = "IFACE", requires = "address")]
    pub tap: Option<String>,
    /// TAP: the smoltcp side's address, e.g. 192.168.69.2/24.
    #[arg(long, value_name = "CIDR", requires = "tap", value_parser = parse_cidr)]
    pub address: Option<IpCidr>,
    /// TAP: default gateway.
    #[arg(long, value_name = "IP", requires = "tap")]
    pub gateway: Option<Ipv4Address>,
    /// TAP client: the server to connect to.
    #[arg(long, value_name = "HOST:PORT", requires = "tap", conflicts_with = "listen", value_parser = parse_endpoint)]
    pub connect: Option<IpEndpoint>,
    /// TAP client: send standard input's lines instead of --messages demo messages.
    #[arg(long, requires = "connect")]
    pub stdin: bool,
    /// TAP client: the name to introduce the session with.
    #[arg(long, default_value = "smoltcp", requires = "connect")]
    pub name: String,
    /// TAP server: the port to listen on.
    #[arg(long, value_name = "PORT", requires = "tap", value_parser = clap::value_parser!(u16).range(1..))]
    pub listen: Option<u16>,
    /// TAP server: exit after this many sessions have ended.
    #[arg(long, value_name = "K", requires = "listen")]
    pub sessions: Option<u64>,
    /// TAP server: clients served at once (one listening socket each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024), requires = "listen")]
    pub max_clients: u32,
}

/// `--medium`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LinkMedium {
    /// IP packets, no link layer.
    Ip,
    /// Ethernet frames.
    Ethernet,
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Run {
    /// In one process over a loopback link.
    Loopback(loopback::Config),
    /// On a TAP device.
    Tap(TapConfig),
}

fn parse_cidr(s: &str) -> Result<IpCidr, String> {
    s.parse()
        .map_err(|()| format!("invalid address {s:?}: expected e.g. 192.168.69.2/24"))
}

fn parse_endpoint(s: &str) -> Result<IpEndpoint, String> {
    s.parse()
        .map_err(|()| format!("invalid endpoint {s:?}: expected e.g. 192.168.69.1:8800"))
}

impl Cli {
    /// The run these options describe.
    ///
    /// # Errors
    /// A message for the user when TAP mode lacks --connect or --listen.
    pub fn run(&self) -> Result<Run, String> {
        let faults = Faults {
            drop_chance: self.drop_chance,
            corrupt_chance: self.corrupt_chance,
            size_limit: self.size_limit,
            tx_rate_limit: self.tx_rate_limit,
            rx_rate_limit: self.rx_rate_limit,
            shaping_interval_ms: self.shaping_interval,
            seed: self.seed,
            pcap: self.pcap.clone(),
        };
        let Some(iface) = &self.tap else {
            let defaults = loopback::Config::default();
            return Ok(Run::Loopback(loopback::Config {
                clients: self.clients,
                messages: self.messages,
                size: self.size as usize,
                quiet: self.quiet,
                medium: match self.medium {
                    LinkMedium::Ip => Medium::Ip,
                    LinkMedium::Ethernet => Medium::Ethernet,
                },
                faults,
                time_limit: self.time_limit.unwrap_or(defaults.time_limit),
                socket_buffers: self.socket_buffers as usize,
                raw_link: self.raw_link,
            }));
        };
        let role = match (self.connect, self.listen) {
            (Some(remote), None) => TapRole::Client {
                remote,
                name: self.name.clone(),
                generated: (!self.stdin).then_some((self.messages, self.size as usize)),
            },
            (None, Some(port)) => TapRole::Server {
                port,
                max_clients: self.max_clients as usize,
                sessions: self.sessions,
            },
            _ => return Err("--tap needs --connect HOST:PORT (client) or --listen PORT (server)".into()),
        };
        Ok(Run::Tap(TapConfig {
            iface: iface.clone(),
            address: self.address.ok_or("--tap needs --address CIDR")?,
            gateway: self.gateway,
            role,
            quiet: self.quiet,
            faults,
            time_limit: self.time_limit,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Run, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("demo").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        cli.run()
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn loopback_by_default() {
        let Ok(Run::Loopback(c)) = parse(&["--clients", "2", "--drop-chance", "10", "--time-limit", "30s"]) else {
            panic!("not loopback");
        };
        assert_eq!(c.clients, 2);
        assert_eq!(c.faults.drop_chance, 10);
        assert_eq!(c.time_limit, Duration::from_secs(30));
    }

    #[test]
    fn tap_needs_a_role_and_an_address() {
        assert!(parse(&["--tap", "tap0", "--address", "10.77.0.2/24"]).is_err());
        assert!(parse(&["--tap", "tap0", "--connect", "10.77.0.1:8800"]).is_err());
        assert!(parse(&["--connect", "10.77.0.1:8800"]).is_err());
        assert!(parse(&[
            "--tap",
            "tap0",
            "--address",
            "10.77.0.2/24",
            "--clients",
            "3",
            "--listen",
            "1"
        ])
        .is_err());
        let Ok(Run::Tap(c)) = parse(&[
            "--tap",
            "tap0",
            "--address",
            "10.77.0.2/24",
            "--listen",
            "8800",
            "--sessions",
            "1",
        ]) else {
            panic!("not tap");
        };
        assert_eq!(
            c.role,
            TapRole::Server {
                port: 8800,
                max_clients: 4,
                sessions: Some(1)
            }
        );
    }
}
