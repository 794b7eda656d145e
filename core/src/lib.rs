//! soquete's core: the wire protocol and the session state machine, for any byte
//! transport, with no heap and no standard library.
//!
//! * [`wire`] — byte layouts of frames and plain-text lines (PROTOCOL.md §2–§3, §7).
//! * [`session`] — the sans-IO [`Session`]: bytes and `now` in; bytes, events and the
//!   next deadline out (PROTOCOL.md §4).
//! * [`io`] — a thin driver that moves bytes between a session and any
//!   [`embedded_io`] transport, blocking or non-blocking.
//! * `io_async` (feature `async`) — the same over `embedded_io_async`, for Embassy and
//!   other executors.
//!
//! Time is [`Instant`] in milliseconds from the caller's clock. Buffers are the
//! caller's, and the session never resizes them; a host may swap in a larger or smaller
//! receive buffer when the session asks ([`Session::rx_wanted`]). No input can make the
//! core panic, or ask for more than [`Session::min_rx_len`]`(max_message)` bytes of
//! receive buffer.
//!
#![cfg_attr(feature = "server", doc = "```")]
#![cfg_attr(not(feature = "server"), doc = "```ignore")]
//! use soquete_core::{Config, Event, Instant, Session};
//!
//! let now = Instant::ZERO;
//! let mut client = Session::client(Config::DEFAULT, "ana", [0u8; 1100], [0u8; 2048], now).unwrap();
//! let mut server = Session::server(Config::DEFAULT, [0u8; 1100], [0u8; 2048], now).unwrap();
//!
//! // Move the client's magic + HELLO to the server.
//! let hello = client.poll_transmit().to_vec();
//! client.advance_transmit(hello.len());
//! server.handle_input(now, &hello);
//! assert!(matches!(server.poll_event(now), Some(Event::Hello { name: "ana", .. })));
//! server.accept(7, None).unwrap();
//! ```
//!
//! # Cargo features
//!
//! `server`, `plain`, `detect`, `explicit-ack` and `log` are on by default; a firmware that counts its
//! flash turns them off (`default-features = false`) and adds back what it uses. None
//! changes the wire protocol. `bench/footprint.sh` measures a client built without any
//! of them.
//!
//! * `server` — `Session::server`, `Session::accept`, `Session::refuse` and the
//!   server's handshake states. A client-only firmware leaves it out.
//! * `plain` — plain-text peers (PROTOCOL.md §7): `Session::plain_client`, and a server
//!   that takes text lines when [`Config::allow_plain`] is set. Without it
//!   [`Session::mode`] is always [`Mode::Binary`] and a server answers any first byte
//!   other than the magic with `ERR peer does not speak soquete` (BAD_MAGIC), as with
//!   `allow_plain: false`.
//! * `detect` (implies `server` and `plain`) — a plain-text server recognises HTTP,
//!   TLS and binary data and answers `ERR wrong protocol` (§7.3); also
//!   `wire::plain::{detect_foreign, might_be_foreign, Foreign}`. Without it such peers
//!   are plain-text peers like any other.
//! * `explicit-ack` — `Session::set_explicit_ack` and [`Session::confirm`] as
//!   described below (without it `confirm` exists but only acknowledges early).
//! * `log` — log through the [`log`](https://docs.rs/log) crate: state changes at trace
//!   level, the reason for an abort at debug level. Without it (and without `defmt`)
//!   the core makes no log calls at all, whatever the rest of the firmware logs. The
//!   messages print names and small integers, not `Debug` of large types, so a
//!   firmware that installs a logger pays mostly for `core::fmt` itself.
//! * `defmt` (off by default) — the same diagnostics through
//!   [`defmt`](https://docs.rs/defmt) instead, and `defmt::Format` for the public
//!   types. With both `defmt` and `log` on, `defmt` wins: nothing goes to `log`, and
//!   the build does not fail. A firmware uses `default-features = false, features =
//!   ["defmt"]`.
//! * `async` (off by default) — `io_async`, a driver over
//!   [`embedded_io_async`](https://docs.rs/embedded-io-async)`::{Read, Write}` tied to
//!   no executor and no timer; adds the `embedded-io-async` dependency.
//! * `noise` (off by default) — `secure`, the authenticated and encrypted layer
//!   (PROTOCOL.md §10): Noise IK through `noise-protocol`, X25519, ChaCha20-Poly1305
//!   and BLAKE2s from RustCrypto.
//! * `noise-tables` (implies `noise`; for hosts) — the ephemeral public key from a
//!   precomputed base point table: faster, about 30 KB more.
//! * `std` (for hosts) — with `noise`, `secure::Memo`: the static–static X25519 of
//!   remembered pairs of keys kept in a map, one X25519 fewer per handshake.
//!
//! # Acknowledgement
//!
//! A message is acknowledged to the peer once it is *delivered* (PROTOCOL.md §1): by
//! default, when the application calls [`Session::poll_event`] again after the
//! [`Event::Message`] — right for a firmware that handles each message in place. A
//! host that hands messages on to something slower (a blocked stdout, a file, a
//! broker) turns on explicit acknowledgement with `Session::set_explicit_ack`: each
//! message is then *taken* by the event (its bytes leave the receive buffer at the
//! next `poll_event`, so reception goes on) and acknowledged only when
//! [`Session::confirm`]`(seq)` says the application is done with everything up to
//! `seq`. At most `max_unconfirmed` messages are taken and unconfirmed; at that many
//! the session takes no more and the transport stops reading, so TCP slows the peer.
//!
#![cfg_attr(all(feature = "server", feature = "explicit-ack"), doc = "```")]
#![cfg_attr(not(all(feature = "server", feature = "explicit-ack")), doc = "```ignore")]
//! use soquete_core::{Config, Event, Instant, Session};
//! # let now = Instant::ZERO;
//! # let mut client = Session::client(Config::DEFAULT, "ana", [0u8; 1100], [0u8; 2048], now).unwrap();
//! let mut server = Session::server(Config::DEFAULT, [0u8; 1100], [0u8; 2048], now).unwrap();
//! server.set_explicit_ack(64);
//! # let hello = client.poll_transmit().to_vec();
//! # client.advance_transmit(hello.len());
//! # server.handle_input(now, &hello);
//! # while let Some(Event::Hello { .. }) = server.poll_event(now) { server.accept(7, None).unwrap(); }
//! # let out = server.poll_transmit().to_vec();
//! # server.advance_transmit(out.len());
//! # client.handle_input(now, &out);
//! # while client.poll_event(now).is_some() {}
//! # client.send(b"hello").unwrap();
//! # let out = client.poll_transmit().to_vec();
//! # client.advance_transmit(out.len());
//! # server.handle_input(now, &out);
//! let mut stored = Vec::new();
//! while let Some(event) = server.poll_event(now) {
//!     if let Event::Message { seq, payload } = event {
//!         stored.push((seq, payload.to_vec())); // handed on; confirmed later
//!     }
//! }
//! assert!(server.poll_transmit().is_empty()); // no ACK yet
//! let (last, _) = stored.last().unwrap();
//! server.confirm(*last).unwrap();             // the sink has them all
//! assert!(!server.poll_transmit().is_empty()); // ACK 1
//! ```
//!
//! Whatever the features, the core links neither `core::fmt` (other than through `log`
//! messages and the `Display` impls a caller uses) nor 64-bit division.

#![no_std]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]
#![deny(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

// First: its macros are visible in the modules after it.
mod fmt;

pub mod io;
#[cfg(feature = "async")]
pub mod io_async;
#[cfg(feature = "noise")]
pub mod secure;
pub mod session;
pub mod time;
pub mod wire;

pub use session::{Closure, Config, Event, Mode, Role, Session, Stats};
pub use time::{Duration, Instant};
pub use wire::Code;
