//! Durations on a command line: `250ms`, `10s`, `1m30s`, `1h` ([`humantime`]'s
//! syntax), a decimal with one unit (`1.5s`, `0.5m`), and a bare number of seconds
//! (`0` disables a timeout).

use std::time::Duration;

/// Parses a duration written for humans: `250ms`, `10s`, `1m30s`, `2h`, a decimal
/// with one unit (`1.5s`, `0.25m`, `2.5`), or a bare number of seconds (`0`, `3`).
///
/// # Errors
/// Anything else, as a message for the command line's user.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("duration {s:?} out of range"));
    }
    if let Some(d) = parse_decimal(s)? {
        return Ok(d);
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?} ({e}): expected e.g. 500ms, 10s, 1m30s"))
}

/// `1.5s`, `0.25m`, `2.5` (seconds): a number with a fraction and at most one unit, which
/// humantime does not take. `None` when `s` has no decimal point.
fn parse_decimal(s: &str) -> Result<Option<Duration>, String> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if !number.contains('.') {
        return Ok(None);
    }
    let scale = match unit {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: a decimal takes one unit, ms, s, m or h"
            ))
        }
    };
    let secs = number
        .parse::<f64>()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 1.5s"))?
        * scale;
    Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|_| format!("duration {s:?} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("0.5ms"), Ok(Duration::from_micros(500)));
        assert!(parse_duration("1.5x").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }
}
