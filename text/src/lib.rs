//! How soquete's programs write and read text: received bytes escaped for a terminal
//! ([`mod@escape`]), the server's event lines as text or JSON ([`printer`]), and durations
//! on a command line ([`duration`]).
//!
//! Needs `std::io` and nothing of an operating system's networking or signals, so
//! that the host programs and the smoltcp demo print the same lines.

pub mod duration;
pub mod escape;
pub mod printer;

pub use duration::parse_duration;
pub use escape::{escape, write_escaped, write_quoted};
pub use printer::{plural, write_u64, Format, Printer};
