//! smoltcp's own loopback benchmark, to set the demo's bytes/s beside it: one TCP
//! connection over `smoltcp::phy::Loopback` in one process, the sender filling its
//! buffer and the receiver draining it, as fast as the stack goes.
//!
//! Adapted from `examples/loopback_benchmark.rs` of smoltcp 0.12.0 (0BSD licence,
//! <https://github.com/smoltcp-rs/smoltcp>), the version the demo is built with. The
//! changes: the option parsing of smoltcp's `examples/utils.rs` is replaced by
//! `--socket-buffers BYTES`, `--link raw|ethernet-like`, `--medium ip|ethernet` and
//! `--bytes N` (so that it runs on the demo's links too), and the result is a
//! `key=value` line of bytes per second.
//!
//! `cargo run --release -p soquete-smoltcp-demo --example loopback_benchmark -- --socket-buffers 4096`

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, Loopback, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
use soquete_smoltcp_demo::link::Checked;

fn main() {
    let mut socket_buffers = 65536;
    let mut raw = true;
    let mut medium = Medium::Ethernet;
    let mut total: usize = 1024 * 1024 * 1024;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match (arg.as_str(), value.as_str()) {
            ("--socket-buffers", v) => socket_buffers = v.parse().expect("--socket-buffers BYTES"),
            ("--link", "raw") => raw = true,
            ("--link", "ethernet-like") => raw = false,
            ("--medium", "ip") => medium = Medium::Ip,
            ("--medium", "ethernet") => medium = Medium::Ethernet,
            ("--bytes", v) => total = v.parse().expect("--bytes N"),
            _ => {
                eprintln!(
                    "usage: loopback_benchmark [--socket-buffers BYTES] [--link raw|ethernet-like] \
                     [--medium ip|ethernet] [--bytes N]"
                );
                std::process::exit(2);
            }
        }
    }
    let mut device = if raw {
        Checked::raw(Loopback::new(medium))
    } else {
        Checked::new(Loopback::new(medium))
    };

    // Create interface
    let config = match device.capabilities().medium {
        Medium::Ethernet => Config::new(EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]).into()),
        _ => Config::new(smoltcp::wire::HardwareAddress::Ip),
    };

    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|ip_addrs| {
        ip_addrs.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
    });

    // Create sockets
    let server_socket = {
        let tcp_rx_buffer = tcp::SocketBuffer::new(vec![0; socket_buffers]);
        let tcp_tx_buffer = tcp::SocketBuffer::new(vec![0; socket_buffers]);
        tcp::Socket::new(tcp_rx_buffer, tcp_tx_buffer)
    };

    let client_socket = {
        let tcp_rx_buffer = tcp::SocketBuffer::new(vec![0; socket_buffers]);
        let tcp_tx_buffer = tcp::SocketBuffer::new(vec![0; socket_buffers]);
        tcp::Socket::new(tcp_rx_buffer, tcp_tx_buffer)
    };

    let mut sockets: [_; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut sockets[..]);
    let server_handle = sockets.add(server_socket);
    let client_handle = sockets.add(client_socket);

    let start_time = std::time::Instant::now();

    let mut did_listen = false;
    let mut did_connect = false;
    let mut processed = 0;
    while processed < total {
        iface.poll(Instant::now(), &mut device, &mut sockets);

        let socket = sockets.get_mut::<tcp::Socket>(server_handle);
        if !socket.is_active() && !socket.is_listening() && !did_listen {
            socket.listen(1234).unwrap();
            did_listen = true;
        }

        while socket.can_recv() {
            let received = socket.recv(|buffer| (buffer.len(), buffer.len())).unwrap();
            processed += received;
        }

        let socket = sockets.get_mut::<tcp::Socket>(client_handle);
        let cx = iface.context();
        if !socket.is_open() && !did_connect {
            socket.connect(cx, (IpAddress::v4(127, 0, 0, 1), 1234), 65000).unwrap();
            did_connect = true;
        }

        while socket.can_send() {
            socket.send(|buffer| (buffer.len(), ())).unwrap();
        }
    }

    let secs = start_time.elapsed().as_secs_f64();
    println!(
        "smoltcp_loopback_benchmark socket_buffers={socket_buffers} link={} bytes={processed} secs={secs:.3} \
         bytes_per_s={:.0} gbit_per_s={:.3}",
        if raw { "raw" } else { "ethernet-like" },
        processed as f64 / secs,
        processed as f64 * 8.0 / secs / 1e9
    );
}
