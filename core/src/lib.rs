//! soquete's core: the wire protocol and the session state machine, for any byte
//! transport, with no heap and no standard library.
//!
//! * [`wire`] — byte layouts of frames and plain-text lines (PROTOCOL.md §2–§3, §7).
//! * [`session`] — the sans-IO [`Session`]: bytes and `now` in; bytes, events and the
//!   next deadline out (PROTOCOL.md §4).
//! * [`io`] — a thin driver that moves bytes between a session and any
//!   [`embedded_io`] transport, blocking or non-blocking.
//!
//! Time is [`Instant`] in milliseconds from the caller's clock. Buffers are the
//! caller's, fixed in size. No input can make the core panic or grow.
//!
//! ```
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

#![no_std]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod io;
pub mod session;
pub mod time;
pub mod wire;

pub use session::{Closure, Config, Event, Mode, Role, Session, Stats};
pub use time::{Duration, Instant};
pub use wire::Code;
