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

/// `10s`, `1.5s` or `250ms`.
pub fn human(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A core duration written as [`human`] does.
pub fn human_core(d: Duration) -> String {
    human(std::time::Duration::from_millis(d.as_millis()))
}
