//! `soquete server --metrics HOST:PORT`: the server's counters in the Prometheus text
//! format (version 0.0.4), served over HTTP on a thread of its own.
//!
//! The event loop updates [`Metrics`] (atomic counters and gauges, so an update is a
//! few nanoseconds and never waits); the HTTP thread encodes them at each scrape. A
//! slow or hostile scraper therefore holds up nobody but itself: it is served one at
//! a time, with a deadline for its request.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{debug, warn};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use soquete_core::{Code, Mode};

/// How long a scraper gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read; the rest is ignored.
const MAX_REQUEST: usize = 8 * 1024;

/// `{mode="binary"}` or `{mode="plain"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// The session's mode: `binary` or `plain`.
    pub mode: &'static str,
}

/// `{reason="server_full"}` and the like: a reason code's name (PROTOCOL.md §5).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The reason code's name in snake case.
    pub reason: String,
}

/// Everything the server counts. Cloning is cheap and shares the counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Connections accepted from the listening socket.
    pub connections_accepted: Counter,
    /// Connections refused at accept, before any session (out of descriptors, or too
    /// many connections).
    pub connections_rejected: Counter,
    /// Connections open now (sessions, handshakes, closing ones).
    pub connections_open: Gauge,
    /// Connections open now that have not completed a handshake.
    pub handshakes_open: Gauge,
    /// Sessions accepted, by mode.
    pub sessions: Family<ModeLabels, Counter>,
    /// Sessions served now.
    pub sessions_open: Gauge,
    /// Messages received from clients and printed.
    pub messages_received: Counter,
    /// Payload bytes of those messages.
    pub message_bytes_received: Counter,
    /// Messages sent to clients (console lines and relayed messages).
    pub messages_sent: Counter,
    /// Payload bytes of those messages.
    pub message_bytes_sent: Counter,
    /// Bytes read from client connections.
    pub bytes_received: Counter,
    /// Bytes written to client connections.
    pub bytes_sent: Counter,
    /// Binary clients' messages acknowledged (their line written by the output).
    pub acknowledgements_sent: Counter,
    /// Acknowledgements received from clients for messages the server sent.
    pub acknowledgements_received: Counter,
    /// Sessions refused, by reason code.
    pub refusals: Family<ReasonLabels, Counter>,
    /// Sessions aborted (by the server or the peer), by reason code.
    pub aborts: Family<ReasonLabels, Counter>,
    /// Sessions resumed on a new connection.
    pub resumes: Counter,
    /// Resumes that took a session over from a connection still open.
    pub takeovers: Counter,
    /// Bytes of printed lines not yet written by the output.
    pub output_queue_bytes: Gauge,
    /// Messages waiting in the per-client queues to be sent to clients.
    pub client_queue_messages: Gauge,
    /// Clients closed because their queue was full (they did not read).
    pub clients_dropped_slow: Counter,
}

impl Metrics {
    /// The registry that names every metric, for the exposition.
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("soquete");
        let m = self.clone();
        r.register("connections_accepted", "Connections accepted", m.connections_accepted);
        r.register(
            "connections_rejected",
            "Connections closed at accept, before any session",
            m.connections_rejected,
        );
        r.register("connections_open", "Connections open", m.connections_open);
        r.register(
            "handshakes_open",
            "Connections open that have not completed a handshake",
            m.handshakes_open,
        );
        r.register("sessions", "Sessions accepted, by mode", m.sessions);
        r.register("sessions_open", "Sessions served now", m.sessions_open);
        r.register(
            "messages_received",
            "Messages received from clients",
            m.messages_received,
        );
        r.register(
            "message_bytes_received",
            "Payload bytes of the messages received from clients",
            m.message_bytes_received,
        );
        r.register("messages_sent", "Messages sent to clients", m.messages_sent);
        r.register(
            "message_bytes_sent",
            "Payload bytes of the messages sent to clients",
            m.message_bytes_sent,
        );
        r.register("bytes_received", "Bytes read from clients", m.bytes_received);
        r.register("bytes_sent", "Bytes written to clients", m.bytes_sent);
        r.register(
            "acknowledgements_sent",
            "Client messages acknowledged once their line was written",
            m.acknowledgements_sent,
        );
        r.register(
            "acknowledgements_received",
            "Server messages acknowledged by clients",
            m.acknowledgements_received,
        );
        r.register("refusals", "Sessions refused, by reason code", m.refusals);
        r.register("aborts", "Sessions aborted, by reason code", m.aborts);
        r.register("resumes", "Sessions resumed", m.resumes);
        r.register(
            "takeovers",
            "Resumes that took a session over from an open connection",
            m.takeovers,
        );
        r.register(
            "output_queue_bytes",
            "Bytes of printed lines not yet written by the output",
            m.output_queue_bytes,
        );
        r.register(
            "client_queue_messages",
            "Messages waiting in per-client queues",
            m.client_queue_messages,
        );
        r.register(
            "clients_dropped_slow",
            "Clients closed because they did not read and their queue filled",
            m.clients_dropped_slow,
        );
        r
    }

    /// A session accepted in `mode`.
    pub fn session_started(&self, mode: Mode) {
        let mode = match mode {
            Mode::Binary => "binary",
            Mode::Plain => "plain",
        };
        self.sessions.get_or_create(&ModeLabels { mode }).inc();
    }

    /// A session refused with `code`.
    pub fn refused(&self, code: Code) {
        self.refusals.get_or_create(&reason(code)).inc();
    }

    /// A session aborted with `code`.
    pub fn aborted(&self, code: Code) {
        self.aborts.get_or_create(&reason(code)).inc();
    }

    /// The exposition, as a scrape returns it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry());
        out
    }
}

/// A reason code as a label: its description in snake case (`server_full`).
fn reason(code: Code) -> ReasonLabels {
    let reason = match code {
        Code::Other(v) => format!("code_{v:#04x}"),
        code => code
            .describe()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect(),
    };
    ReasonLabels { reason }
}

/// Serves `metrics` on `listener` (`GET /metrics`, or any path) until the process
/// ends, on a thread of its own.
///
/// # Errors
/// The thread cannot be started.
pub fn serve(listener: TcpListener, metrics: Metrics) -> io::Result<()> {
    let metrics = Arc::new(metrics);
    // The listener may come non-blocking (bound as the server's is); this thread
    // waits in accept.
    listener.set_nonblocking(false)?;
    thread::Builder::new().name("soquete metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    if let Err(e) = answer(stream, &metrics) {
                        debug!("metrics: {e}");
                    }
                }
                Err(e) => {
                    warn!("metrics: cannot accept: {e}");
                    // Out of descriptors: do not spin.
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })?;
    Ok(())
}

/// Reads one request head and answers it.
fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.len() > MAX_REQUEST {
            break;
        }
    }
    let (status, content_type, body) = if head.starts_with(b"GET ") || head.starts_with(b"HEAD ") {
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.encode())
    } else {
        (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        )
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head.starts_with(b"HEAD ") {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::default();
        m.messages_received.inc_by(3);
        m.refused(Code::ServerFull);
        m.session_started(Mode::Plain);
        m.connections_open.set(2);
        let text = m.encode();
        assert!(
            text.contains("# TYPE soquete_messages_received_total counter\n"),
            "{text}"
        );
        assert!(text.contains("\nsoquete_messages_received_total 3\n"), "{text}");
        assert!(
            text.contains("\nsoquete_refusals_total{reason=\"server_full\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("\nsoquete_sessions_total{mode=\"plain\"} 1\n"), "{text}");
        assert!(text.contains("\nsoquete_connections_open 2\n"), "{text}");
    }

    #[test]
    fn unknown_codes_get_a_label_of_their_own() {
        assert_eq!(reason(Code::Other(0x7f)).reason, "code_0x7f");
        assert_eq!(reason(Code::IdleTimeout).reason, "idle_timeout");
    }
}
