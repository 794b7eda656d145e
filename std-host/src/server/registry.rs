//! Sessions that a client may resume (PROTOCOL.md §4.6), by token.
//!
//! An accepted binary session is registered under its token while its connection is
//! live. When the connection is lost (end of stream without CLOSE, a socket error, a
//! timeout), the session is *detached*: it keeps the highest sequence number the server
//! printed and waits up to the resume window for the client to come back with that
//! token. An orderly close or a protocol violation removes it for good, and so does
//! the window running out.
//!
//! Memory is bounded: at most `capacity` sessions are kept; registering one more
//! evicts the detached session that was lost first (a live one is never evicted, and
//! live sessions are bounded by the connection limit).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use mio::Token;
use soquete_core::{Duration, Instant};

/// What the server remembers of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// The id printed in the session's lines.
    pub id: u64,
    /// The address of its latest connection.
    pub peer: SocketAddr,
    /// The highest sequence number written by the sink (and acknowledged): what a
    /// resume continues after.
    pub received: u64,
    /// The highest sequence number printed (at least `received`): messages up to it
    /// that the client sends again after a resume are not printed twice.
    pub printed: u64,
    /// Messages printed in the whole session.
    pub messages: u64,
    /// The connection currently serving it; `None` while detached.
    pub live: Option<Token>,
    /// While detached: when it is forgotten.
    expires: Option<Instant>,
}

/// The resumable sessions.
#[derive(Debug)]
pub(super) struct Registry {
    entries: HashMap<u64, Entry>,
    /// Detached sessions in the order they expire (the window is fixed, so that is the
    /// order they were detached). An entry re-attached and detached again appears twice;
    /// the stale one is recognised by its deadline and skipped.
    expiry: VecDeque<(Instant, u64)>,
    window: Duration,
    capacity: usize,
}

impl Registry {
    /// Sessions detached for `window` are forgotten; at most `capacity` are kept. A zero
    /// window disables resume.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Registry {
            entries: HashMap::new(),
            expiry: VecDeque::new(),
            window,
            capacity: capacity.max(1),
        }
    }

    /// How long a lost session waits for its client.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// True if lost sessions can be resumed at all.
    pub fn enabled(&self) -> bool {
        self.window > Duration::ZERO
    }

    /// The session of `token`, if known.
    pub fn get(&self, token: u64) -> Option<&Entry> {
        self.entries.get(&token)
    }

    /// Registers a new session served by connection `conn`. Returns the detached
    /// session evicted to make room, if any (its "left" line is the caller's to print).
    pub fn insert(&mut self, token: u64, id: u64, peer: SocketAddr, conn: Token) -> Option<Entry> {
        if !self.enabled() {
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity {
            self.evict_oldest()
        } else {
            None
        };
        let entry = Entry {
            id,
            peer,
            received: 0,
            printed: 0,
            messages: 0,
            live: Some(conn),
            expires: None,
        };
        self.entries.insert(token, entry);
        evicted
    }

    /// The session of `token` is now served by `conn`.
    pub fn attach(&mut self, token: u64, peer: SocketAddr, conn: Token) {
        if let Some(e) = self.entries.get_mut(&token) {
            e.live = Some(conn);
            e.peer = peer;
            e.expires = None;
        }
    }

    /// The connection of `token` was lost after printing messages up to `received`
    /// (`messages` in all): it waits for a resume until `now` + the window.
    pub fn detach(&mut self, token: u64, received: u64, messages: u64, now: Instant) {
        if let Some(e) = self.entries.get_mut(&token) {
            let expires = now + self.window;
            e.live = None;
            e.received = received;
            e.messages = messages;
            e.expires = Some(expires);
            self.expiry.push_back((expires, token));
        }
    }

    /// The session of `token` has printed messages up to `printed`.
    pub fn printed(&mut self, token: u64, printed: u64) {
        if let Some(e) = self.entries.get_mut(&token) {
            e.printed = e.printed.max(printed);
        }
    }

    /// Forgets the session of `token` (closed for good).
    pub fn remove(&mut self, token: u64) {
        self.entries.remove(&token);
    }

    /// Removes and returns the sessions whose window ran out by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Entry> {
        let mut gone = Vec::new();
        while let Some(&(t, token)) = self.expiry.front() {
            if t > now {
                break;
            }
            self.expiry.pop_front();
            if let Some(e) = self.take_if_detached(token, t) {
                gone.push(e);
            }
        }
        gone
    }

    /// When the next detached session expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.front().map(|&(t, _)| t)
    }

    /// Number of sessions kept (live and detached).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn evict_oldest(&mut self) -> Option<Entry> {
        while let Some((t, token)) = self.expiry.pop_front() {
            if let Some(e) = self.take_if_detached(token, t) {
                return Some(e);
            }
        }
        None
    }

    /// Removes `token`'s entry if it is still detached with deadline `t` (else the
    /// queue entry is stale).
    fn take_if_detached(&mut self, token: u64, t: Instant) -> Option<Entry> {
        let e = self.entries.get(&token)?;
        if e.live.is_some() || e.expires != Some(t) {
            return None;
        }
        self.entries.remove(&token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn at(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    #[test]
    fn detached_session_keeps_its_counters_until_the_window_ends() {
        let mut r = Registry::new(WINDOW, 8);
        r.insert(7, 1, peer(), Token(2));
        r.detach(7, 41, 41, at(1));
        let e = r.get(7).copied().unwrap();
        assert_eq!((e.id, e.received, e.messages, e.live), (1, 41, 41, None));
        assert_eq!(r.next_expiry(), Some(at(61)));
        assert!(r.expire(at(60)).is_empty());
        let gone = r.expire(at(61));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].id, 1);
        assert!(r.get(7).is_none());
    }

    #[test]
    fn reattached_session_does_not_expire_on_its_old_deadline() {
        let mut r = Registry::new(WINDOW, 8);
        r.insert(7, 1, peer(), Token(2));
        r.detach(7, 3, 3, at(1));
        r.attach(7, peer(), Token(3));
        assert!(r.expire(at(100)).is_empty());
        assert_eq!(r.get(7).unwrap().live, Some(Token(3)));
        r.detach(7, 5, 5, at(100));
        assert!(r.expire(at(159)).is_empty());
        assert_eq!(r.expire(at(160)).len(), 1);
    }

    #[test]
    fn full_registry_evicts_the_oldest_detached_session_never_a_live_one() {
        let mut r = Registry::new(WINDOW, 3);
        r.insert(1, 1, peer(), Token(2));
        r.insert(2, 2, peer(), Token(3));
        r.insert(3, 3, peer(), Token(4));
        r.detach(2, 0, 0, at(1));
        r.detach(3, 0, 0, at(2));
        let evicted = r.insert(4, 4, peer(), Token(5)).unwrap();
        assert_eq!(evicted.id, 2);
        assert_eq!(r.len(), 3);
        assert!(r.get(1).is_some() && r.get(3).is_some() && r.get(4).is_some());
    }

    #[test]
    fn zero_window_keeps_nothing() {
        let mut r = Registry::new(Duration::ZERO, 8);
        assert!(!r.enabled());
        r.insert(1, 1, peer(), Token(2));
        assert!(r.get(1).is_none());
    }
}
