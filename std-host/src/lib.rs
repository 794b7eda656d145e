//! soquete on std TCP sockets: the `soquete server` and `soquete client` programs,
//! built on `soquete-core` sessions.

pub mod cli;
pub mod client;
pub mod keys;
pub mod metrics;
pub mod pump;
pub mod secure;
pub mod server;
pub mod sink;
pub mod time;
