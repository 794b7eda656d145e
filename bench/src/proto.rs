//! The client side of each protocol under test, as byte codecs with no socket.
//!
//! Every target is driven the same way by the load loop: bytes read from the socket go
//! into [`Conn::read_buf`] / [`Conn::on_read`], which reports how many messages the peer
//! acknowledged; [`Conn::queue`] encodes one message; [`Conn::out`] / [`Conn::wrote`]
//! hand out the bytes to write. What counts as the acknowledgement is each protocol's
//! own confirmation that it took the message.

use std::fmt;
use std::str::FromStr;

use soquete_core::{Code, Config, Duration, Event, Instant, Session};

/// Which server the load is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `soquete server`: MSG frames, cumulative ACK frames.
    Soquete,
    /// Redis: `RPUSH key payload`, the integer reply is the ack.
    Redis,
    /// NATS with `verbose`: `PUB subject len`, each `+OK` is the ack.
    Nats,
    /// MQTT 3.1.1 (mosquitto): QoS 1 PUBLISH, PUBACK is the ack.
    Mqtt,
    /// A raw TCP echo server: the echoed payload is the ack.
    Echo,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "soquete" => Ok(Target::Soquete),
            "redis" => Ok(Target::Redis),
            "nats" => Ok(Target::Nats),
            "mqtt" | "mosquitto" => Ok(Target::Mqtt),
            "echo" => Ok(Target::Echo),
            _ => Err(format!("unknown target {s:?}: use soquete, redis, nats, mqtt or echo")),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Soquete => "soquete",
            Target::Redis => "redis",
            Target::Nats => "nats",
            Target::Mqtt => "mqtt",
            Target::Echo => "echo",
        })
    }
}

/// Size of the receive buffer of the text/binary peers (their replies are small; echo
/// is consumed as it arrives).
const RX_CAP: usize = 32 * 1024;

/// One connection's protocol state.
#[derive(Debug)]
pub enum Conn {
    /// The soquete client session (boxed: it is much larger than the other variant).
    Soquete(Box<SoqueteConn>),
    /// Every other target.
    Simple(SimpleConn),
}

impl Conn {
    /// A connection for `target` that will send messages of `size` bytes with at most
    /// `window` of them unacknowledged. `id` names it (Redis key, MQTT client id).
    pub fn new(target: Target, id: usize, size: usize, window: usize) -> anyhow::Result<Conn> {
        Ok(match target {
            Target::Soquete => Conn::Soquete(Box::new(SoqueteConn::new(size, window)?)),
            _ => Conn::Simple(SimpleConn::new(target, id, size)),
        })
    }

    /// Free space to read into (empty: process first, see [`Conn::on_read`]).
    pub fn read_buf(&mut self) -> &mut [u8] {
        match self {
            Conn::Soquete(c) => c.session.input_buffer(),
            Conn::Simple(c) => c.read_buf(),
        }
    }

    /// `n` bytes were read into [`Conn::read_buf`]; returns the number of messages newly
    /// acknowledged.
    ///
    /// # Errors
    /// A description of what the peer did wrong (an error reply, a closed session).
    pub fn on_read(&mut self, n: usize, now: Instant) -> Result<u64, String> {
        match self {
            Conn::Soquete(c) => c.on_read(n, now),
            Conn::Simple(c) => c.on_read(n),
        }
    }

    /// True once the handshake (if any) is done and messages may be queued.
    pub fn is_ready(&self) -> bool {
        match self {
            Conn::Soquete(c) => c.ready,
            Conn::Simple(c) => c.ready,
        }
    }

    /// Encodes one message; false if it cannot be queued now.
    pub fn queue(&mut self, payload: &[u8]) -> bool {
        match self {
            Conn::Soquete(c) => c.session.send(payload).is_ok(),
            Conn::Simple(c) => c.queue(payload),
        }
    }

    /// Bytes waiting to be written.
    pub fn out(&mut self) -> &[u8] {
        match self {
            Conn::Soquete(c) => c.session.poll_transmit(),
            Conn::Simple(c) => c.tx.get(c.tx_pos..).unwrap_or(&[]),
        }
    }

    /// The socket took `n` bytes of [`Conn::out`].
    pub fn wrote(&mut self, n: usize) {
        match self {
            Conn::Soquete(c) => c.session.advance_transmit(n),
            Conn::Simple(c) => {
                c.tx_pos += n;
                if c.tx_pos >= c.tx.len() {
                    c.tx.clear();
                    c.tx_pos = 0;
                }
            }
        }
    }

    /// Starts an orderly close where the protocol has one (soquete's CLOSE exchange).
    pub fn close(&mut self, now: Instant) {
        if let Conn::Soquete(c) = self {
            c.session.close(now, Code::Normal);
            c.drain_events(now);
        }
    }

    /// True when nothing more is expected from the peer after [`Conn::close`].
    pub fn is_closed(&self) -> bool {
        match self {
            Conn::Soquete(c) => c.closed,
            Conn::Simple(_) => true,
        }
    }
}

/// A soquete client session with heap buffers.
#[derive(Debug)]
pub struct SoqueteConn {
    session: Session<Vec<u8>, Vec<u8>>,
    ready: bool,
    closed: bool,
    acked: u64,
    error: Option<String>,
}

impl SoqueteConn {
    fn new(size: usize, window: usize) -> anyhow::Result<Self> {
        let config = Config {
            // The server sends nothing but control frames; a small rx suffices.
            max_message: 1024,
            // The server's own idle timeout governs; the generator runs no timers.
            idle_timeout: Duration::ZERO,
            handshake_timeout: Duration::from_secs(60),
            ..Config::DEFAULT
        };
        let rx = vec![0; Session::<Vec<u8>, Vec<u8>>::min_rx_len(config.max_message)];
        // Room for the whole window, so `send` never reports Full within it.
        let tx = vec![0; window.max(1) * (size + soquete_core::wire::MSG_OVERHEAD)];
        let session = Session::client(config, "bench", rx, tx, Instant::ZERO)
            .map_err(|e| anyhow::anyhow!("cannot create soquete session: {e}"))?;
        Ok(SoqueteConn {
            session,
            ready: false,
            closed: false,
            acked: 0,
            error: None,
        })
    }

    fn on_read(&mut self, n: usize, now: Instant) -> Result<u64, String> {
        self.session.advance_input(now, n);
        let before = self.acked;
        self.drain_events(now);
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.acked - before),
        }
    }

    fn drain_events(&mut self, now: Instant) {
        // `poll_event` reports an Established or Acked raised by a frame of this very
        // input only on the *next* call (it checks its notifications before parsing),
        // so one `None` does not mean "nothing more": stop at the second in a row.
        let mut idle = 0;
        while idle < 2 {
            let Some(event) = self.session.poll_event(now) else {
                idle += 1;
                continue;
            };
            idle = 0;
            match event {
                Event::Established { .. } => self.ready = true,
                Event::Acked { seq } => self.acked = self.acked.max(seq),
                Event::Closed(closure) => {
                    self.closed = true;
                    if !closure.is_clean(soquete_core::Mode::Binary) {
                        self.error = Some(format!("soquete session ended: {closure}"));
                    }
                }
                Event::PeerClosing(code) => self.error = Some(format!("server is closing: {}", code.describe())),
                Event::Message { .. } | Event::Hello { .. } => {}
            }
        }
    }
}

/// Handshake progress of the text and MQTT peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// NATS: waiting for the server's INFO line.
    AwaitInfo,
    /// NATS: CONNECT sent, waiting for its `+OK`. MQTT: CONNECT sent, waiting for CONNACK.
    AwaitOk,
    /// Messages flow.
    Ready,
}

/// The client of Redis, NATS, MQTT or echo: an output buffer, an input buffer and a
/// parser for the replies.
#[derive(Debug)]
pub struct SimpleConn {
    target: Target,
    size: usize,
    phase: Phase,
    ready: bool,
    /// Encoded bytes not yet written, from `tx_pos`.
    tx: Vec<u8>,
    tx_pos: usize,
    rx: Box<[u8]>,
    rx_start: usize,
    rx_end: usize,
    /// Per-message prefix (everything before the payload) that does not change.
    header: Vec<u8>,
    /// Echo: bytes of a message partially echoed back.
    echo_partial: usize,
    /// MQTT: the next packet identifier (1..=65535).
    packet_id: u16,
    topic: Vec<u8>,
}

impl SimpleConn {
    fn new(target: Target, id: usize, size: usize) -> Self {
        let mut c = SimpleConn {
            target,
            size,
            phase: Phase::Ready,
            ready: false,
            tx: Vec::with_capacity(64 * 1024),
            tx_pos: 0,
            rx: vec![0; RX_CAP].into_boxed_slice(),
            rx_start: 0,
            rx_end: 0,
            header: Vec::new(),
            echo_partial: 0,
            packet_id: 1,
            topic: format!("bench/{id}").into_bytes(),
        };
        match target {
            Target::Redis => {
                let key = format!("bench:{id}");
                c.header = format!("*3\r\n$5\r\nRPUSH\r\n${}\r\n{key}\r\n${size}\r\n", key.len()).into_bytes();
                c.ready = true;
            }
            Target::Nats => {
                c.header = format!("PUB bench.{id} {size}\r\n").into_bytes();
                c.phase = Phase::AwaitInfo;
            }
            Target::Mqtt => {
                c.tx.extend_from_slice(&mqtt_connect(&format!("bench-{id}")));
                c.phase = Phase::AwaitOk;
            }
            Target::Echo | Target::Soquete => c.ready = true,
        }
        c
    }

    fn read_buf(&mut self) -> &mut [u8] {
        if self.rx_start > 0 {
            self.rx.copy_within(self.rx_start..self.rx_end, 0);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
        }
        self.rx.get_mut(self.rx_end..).unwrap_or(&mut [])
    }

    fn queue(&mut self, payload: &[u8]) -> bool {
        match self.target {
            Target::Redis | Target::Nats => {
                self.tx.extend_from_slice(&self.header);
                self.tx.extend_from_slice(payload);
                self.tx.extend_from_slice(b"\r\n");
            }
            Target::Mqtt => {
                // PUBLISH, QoS 1 (MQTT 3.1.1 §3.3): topic, packet id, payload.
                let remaining = 2 + self.topic.len() + 2 + payload.len();
                self.tx.push(0x32);
                push_varint(&mut self.tx, remaining);
                self.tx.extend_from_slice(&(self.topic.len() as u16).to_be_bytes());
                self.tx.extend_from_slice(&self.topic);
                self.tx.extend_from_slice(&self.packet_id.to_be_bytes());
                self.packet_id = self.packet_id.checked_add(1).unwrap_or(1);
                self.tx.extend_from_slice(payload);
            }
            Target::Echo | Target::Soquete => self.tx.extend_from_slice(payload),
        }
        true
    }

    fn on_read(&mut self, n: usize) -> Result<u64, String> {
        self.rx_end = (self.rx_end + n).min(self.rx.len());
        match self.target {
            Target::Echo => {
                let total = self.echo_partial + (self.rx_end - self.rx_start);
                self.rx_start = 0;
                self.rx_end = 0;
                self.echo_partial = total % self.size;
                Ok((total / self.size) as u64)
            }
            Target::Redis | Target::Nats => self.on_lines(),
            Target::Mqtt => self.on_mqtt(),
            Target::Soquete => Ok(0),
        }
    }

    fn on_lines(&mut self) -> Result<u64, String> {
        let mut acks = 0;
        while let Some(pos) = find_crlf(&self.rx[self.rx_start..self.rx_end]) {
            let line = &self.rx[self.rx_start..self.rx_start + pos];
            let first = line.first().copied().unwrap_or(b' ');
            match (self.target, self.phase, first) {
                (Target::Redis, _, b':') => acks += 1,
                (Target::Nats, Phase::AwaitInfo, b'I') => {
                    self.tx
                        .extend_from_slice(b"CONNECT {\"verbose\":true,\"pedantic\":false,\"name\":\"bench\"}\r\n");
                    self.phase = Phase::AwaitOk;
                }
                (Target::Nats, Phase::AwaitOk, b'+') => {
                    self.phase = Phase::Ready;
                    self.ready = true;
                }
                (Target::Nats, Phase::Ready, b'+') => acks += 1,
                (Target::Nats, _, b'I') => {}
                (Target::Nats, _, b'P') if line.starts_with(b"PING") => self.tx.extend_from_slice(b"PONG\r\n"),
                (Target::Nats, _, b'P') => {}
                _ => return Err(format!("{} replied {:?}", self.target, String::from_utf8_lossy(line))),
            }
            self.rx_start += pos + 2;
        }
        Ok(acks)
    }

    fn on_mqtt(&mut self) -> Result<u64, String> {
        let mut acks = 0;
        loop {
            let avail = &self.rx[self.rx_start..self.rx_end];
            let Some((kind, body, used)) = mqtt_packet(avail) else {
                break;
            };
            match kind >> 4 {
                // CONNACK: return code in the second byte.
                2 => {
                    if body.get(1) != Some(&0) {
                        return Err(format!("mosquitto refused CONNECT: {body:02x?}"));
                    }
                    self.phase = Phase::Ready;
                    self.ready = true;
                }
                // PUBACK
                4 => acks += 1,
                // PINGRESP and anything else this client does not care about.
                _ => {}
            }
            self.rx_start += used;
        }
        Ok(acks)
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// MQTT "remaining length" variable byte integer (§2.2.3).
fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

/// One complete MQTT packet at the start of `buf`: (first byte, body, bytes used).
fn mqtt_packet(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let kind = *buf.first()?;
    let mut len = 0usize;
    let mut shift = 0;
    let mut at = 1;
    loop {
        let b = *buf.get(at)?;
        len |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
    let body = buf.get(at..at + len)?;
    Some((kind, body, at + len))
}

/// MQTT 3.1.1 CONNECT with a clean session and a 60 s keepalive.
fn mqtt_connect(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 4]);
    body.extend_from_slice(b"MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(0x02); // clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10];
    push_varint(&mut packet, body.len());
    packet.extend_from_slice(&body);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips() {
        for n in [0usize, 127, 128, 16383, 16384, 16_500, 2_097_151] {
            let mut v = vec![0x40];
            push_varint(&mut v, n);
            v.resize(v.len() + n, 0);
            let (kind, body, used) = mqtt_packet(&v).unwrap();
            assert_eq!((kind, body.len(), used), (0x40, n, v.len()));
        }
    }

    #[test]
    fn redis_counts_integer_replies() {
        let mut c = SimpleConn::new(Target::Redis, 3, 4);
        assert!(c.queue(b"abcd"));
        assert_eq!(c.tx, b"*3\r\n$5\r\nRPUSH\r\n$7\r\nbench:3\r\n$4\r\nabcd\r\n");
        let reply = b":1\r\n:2\r\n:3";
        c.read_buf()[..reply.len()].copy_from_slice(reply);
        assert_eq!(c.on_read(reply.len()), Ok(2));
        c.read_buf()[..2].copy_from_slice(b"\r\n");
        assert_eq!(c.on_read(2), Ok(1));
    }

    #[test]
    fn nats_handshake_then_acks() {
        let mut c = SimpleConn::new(Target::Nats, 0, 2);
        let input = b"INFO {}\r\n+OK\r\nPING\r\n+OK\r\n";
        c.read_buf()[..input.len()].copy_from_slice(input);
        assert_eq!(c.on_read(input.len()), Ok(1));
        assert!(c.ready);
        assert!(c.tx.ends_with(b"PONG\r\n"));
    }

    #[test]
    fn soquete_handshake_and_cumulative_acks() {
        let now = Instant::ZERO;
        let mut client = Conn::new(Target::Soquete, 0, 8, 4).unwrap();
        let mut server = Session::server(Config::DEFAULT, vec![0; 2048], vec![0; 256], now).unwrap();
        let pump = |client: &mut Conn, server: &mut Session<Vec<u8>, Vec<u8>>| -> u64 {
            let out = client.out().to_vec();
            client.wrote(out.len());
            assert_eq!(server.handle_input(now, &out), out.len());
            while let Some(event) = server.poll_event(now) {
                if let Event::Hello { .. } = event {
                    server.accept(1, None).unwrap();
                }
            }
            let back = server.poll_transmit().to_vec();
            server.advance_transmit(back.len());
            client.read_buf()[..back.len()].copy_from_slice(&back);
            client.on_read(back.len(), now).unwrap()
        };
        assert_eq!(pump(&mut client, &mut server), 0);
        assert!(client.is_ready());
        for _ in 0..3 {
            assert!(client.queue(b"12345678"));
        }
        assert_eq!(pump(&mut client, &mut server), 3);
    }

    #[test]
    fn echo_counts_whole_messages() {
        let mut c = SimpleConn::new(Target::Echo, 0, 10);
        assert_eq!(c.on_read(15), Ok(1));
        assert_eq!(c.on_read(5), Ok(1));
    }
}
