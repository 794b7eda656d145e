//! The host's clock for the core: milliseconds since the program started.

use std::sync::OnceLock;
use std::time::Instant as StdInstant;

use soquete_core::{Duration, Instant};

fn epoch() -> StdInstant {
    static EPOCH: OnceLock<StdInstant> = OnceLock::new();
    *EPOCH.get_or_init(StdInstant::now)
}

/// Now, as the core counts time.
pub fn now() -> Instant {
    Instant::from_millis(u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// How long from `now` until `deadline` (zero if it has passed), as std counts time.
pub fn until(deadline: Instant, now: Instant) -> std::time::Duration {
    std::time::Duration::from_millis(deadline.saturating_since(now).as_millis())
}

/// A std duration as the core counts time.
pub fn to_core(d: std::time::Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
