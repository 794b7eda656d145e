//! Messages the server sends to its clients (console lines, and in relay mode every
//! client's messages to the others), and the bounded queue each client has for them.
//!
//! A message goes into the session ([`Session::send`](soquete_core::Session::send))
//! while its transmit buffer has room, and waits in the client's [`Outbox`] otherwise
//! (the buffer keeps messages until the client acknowledges them). The outbox is
//! bounded in messages and bytes: a client whose outbox is full does not read, and is
//! closed, so that the others never wait for it and its memory stays bounded.
//!
//! A relayed message is acknowledged to its sender when the server's output has
//! written its line, as any message: relaying neither holds it back nor waits for the
//! other clients.

use std::collections::VecDeque;
use std::sync::Arc;

use log::debug;
use soquete_core::session::Error;

use super::conn::ServerSession;

/// How much a client's queue holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Messages waiting at most.
    pub messages: usize,
    /// Payload bytes waiting at most.
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            messages: 65536,
            bytes: 8 * 1024 * 1024,
        }
    }
}

/// The queue was full: the message was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Full {
    pub messages: usize,
    pub bytes: usize,
}

/// What [`Outbox::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Flushed {
    /// Messages handed to the session.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

/// Messages for one client that its session has no room for yet.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    queue: VecDeque<Arc<[u8]>>,
    bytes: usize,
}

impl Outbox {
    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues `msg`.
    ///
    /// # Errors
    /// The queue is at its limit (it is left as it was).
    pub fn push(&mut self, msg: Arc<[u8]>, limits: Limits) -> Result<(), Full> {
        if self.queue.len() >= limits.messages || self.bytes.saturating_add(msg.len()) > limits.bytes {
            return Err(Full {
                messages: self.queue.len(),
                bytes: self.bytes,
            });
        }
        self.bytes += msg.len();
        self.queue.push_back(msg);
        Ok(())
    }

    /// Hands the session as many queued messages as it has room for, in order. A
    /// message the client would never accept (larger than its maximum) is dropped
    /// with a note in the log; a session that no longer sends drops them all.
    pub fn flush(&mut self, session: &mut ServerSession) -> Flushed {
        let mut done = Flushed::default();
        while let Some(msg) = self.queue.front() {
            match session.send(msg) {
                Ok(_) => {
                    done.messages += 1;
                    done.bytes += msg.len() as u64;
                }
                Err(Error::Full) => break,
                Err(Error::TooLarge { max }) => {
                    debug!(
                        "a message of {} bytes is too large for this client (max {max}); not sent",
                        msg.len()
                    );
                }
                Err(Error::Newline) => debug!("a message with a newline cannot go to a plain-text client"),
                Err(e) => {
                    debug!("{} messages not sent: {e}", self.queue.len());
                    self.queue.clear();
                    self.bytes = 0;
                    break;
                }
            }
            if let Some(msg) = self.queue.pop_front() {
                self.bytes -= msg.len();
            }
        }
        done
    }
}

/// A relayed message as the others receive it: `NAME: text`, where NAME is the
/// sender's name, or `#ID` for a client without one (plain-text peers).
pub(super) fn relayed(id: u64, name: &str, payload: &[u8]) -> Arc<[u8]> {
    let from = if name.is_empty() {
        format!("#{id}")
    } else {
        name.to_string()
    };
    let mut msg = Vec::with_capacity(from.len() + 2 + payload.len());
    msg.extend_from_slice(from.as_bytes());
    msg.extend_from_slice(b": ");
    msg.extend_from_slice(payload);
    msg.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_in_messages_and_bytes() {
        let limits = Limits { messages: 2, bytes: 10 };
        let mut q = Outbox::default();
        q.push(Arc::from(&b"12345"[..]), limits).unwrap();
        assert_eq!(
            q.push(Arc::from(&b"123456"[..]), limits),
            Err(Full { messages: 1, bytes: 5 })
        );
        q.push(Arc::from(&b"12345"[..]), limits).unwrap();
        assert_eq!(
            q.push(Arc::from(&b""[..]), limits),
            Err(Full { messages: 2, bytes: 10 })
        );
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn relayed_message_names_its_sender() {
        assert_eq!(&*relayed(3, "ana", b"hi"), b"ana: hi");
        assert_eq!(&*relayed(3, "", b"hi"), b"#3: hi");
    }
}
