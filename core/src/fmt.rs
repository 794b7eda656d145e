//! The core's diagnostics, through `defmt` or `log` (embassy-net's `src/fmt.rs` is the
//! pattern): `trace!`, `debug!`, `info!`, `warn!` and `error!` take a literal format
//! string and positional arguments only (`"{} -> {}", a, b`; defmt rejects inline
//! ones such as `{a}`), and forward to
//!
//! * `defmt`'s macro of that level with the `defmt` feature,
//! * else `log`'s with the `log` feature,
//! * else nothing: the arguments are borrowed so that they count as used, and no
//!   formatting code is built.
//!
//! With both features `defmt` wins: a firmware that asks for `defmt` gets it even if
//! `log` is also on (say through the core's default features); nothing is logged
//! twice and the build does not fail.
#![macro_use]
#![allow(unused_macros)]

macro_rules! log_with {
    ($level:ident, $s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($s $(, $x)*);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        ::log::$level!($s $(, $x)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        let _ = ($(&$x),*);
    }};
}

macro_rules! trace {
    ($($arg:tt)+) => { log_with!(trace, $($arg)+) };
}

macro_rules! debug {
    ($($arg:tt)+) => { log_with!(debug, $($arg)+) };
}

macro_rules! info {
    ($($arg:tt)+) => { log_with!(info, $($arg)+) };
}

macro_rules! warn {
    ($($arg:tt)+) => { log_with!(warn, $($arg)+) };
}

macro_rules! error {
    ($($arg:tt)+) => { log_with!(error, $($arg)+) };
}

/// `log_at!(debug, "...", args)`: the same as `debug!("...", args)`.
macro_rules! log_at {
    ($level:ident, $($arg:tt)+) => { log_with!($level, $($arg)+) };
}
