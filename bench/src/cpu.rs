//! CPU time of a process (user + system, summed over its threads) from
//! `/proc/PID/stat`, and the per-message cost derived from it.

use std::fmt::Write as _;
use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat` times: `USER_HZ`, fixed at 100 in the
/// Linux ABI for every architecture this benchmark runs on.
const USER_HZ: f64 = 100.0;

/// User and system CPU time of a process, in clock ticks; `None` where the process is
/// gone or `/proc` cannot be read (the report then leaves its fields out).
pub type Ticks = Option<(u64, u64)>;

/// Reads the CPU time of `pid`, or of this process.
pub fn process(pid: Option<u32>) -> Ticks {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// User and system time from the text of a `/proc/PID/stat`.
fn parse_stat(stat: &str) -> Ticks {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `key=value` fields for one process over a run: CPU seconds, the share of `cores`
/// it kept busy (when given), and microseconds of CPU per message and per MB.
pub fn report(
    name: &str,
    before: &Ticks,
    after: &Ticks,
    msgs: u64,
    size: usize,
    wall: Duration,
    cores: Option<usize>,
) -> String {
    let (Some((u0, s0)), Some((u1, s1))) = (before, after) else {
        return String::new();
    };
    let user = u1.saturating_sub(*u0) as f64 / USER_HZ;
    let sys = s1.saturating_sub(*s0) as f64 / USER_HZ;
    let cpu = user + sys;
    let mut out = format!(" {name}_cpu_s={cpu:.2} {name}_user_s={user:.2} {name}_sys_s={sys:.2}");
    let wall = wall.as_secs_f64().max(1e-9);
    let _ = write!(out, " {name}_cores={:.2}", cpu / wall);
    if let Some(cores) = cores {
        let _ = write!(out, " {name}_busy={:.2}", cpu / wall / cores.max(1) as f64);
    }
    if msgs > 0 {
        let mb = msgs as f64 * size as f64 / 1e6;
        let _ = write!(
            out,
            " {name}_us_per_msg={:.3} {name}_us_per_mb={:.0}",
            cpu * 1e6 / msgs as f64,
            cpu * 1e6 / mb
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn times_come_after_the_last_parenthesis() {
        // A command name may hold spaces and parentheses.
        let stat = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 52 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat(stat), Some((731, 52)));
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_accrues_cpu_time_while_it_works() {
        let (u0, s0) = process(None).unwrap();
        // Spin until a clock tick (10 ms) is charged to this process, within a bound.
        let start = Instant::now();
        let mut x = 0u64;
        let mut now = (u0, s0);
        while now.0 + now.1 == u0 + s0 && start.elapsed().as_secs() < 5 {
            for i in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            now = process(None).unwrap();
        }
        assert!(
            now.0 + now.1 > u0 + s0,
            "no CPU time charged after {:?}",
            start.elapsed()
        );
        let line = report("gen", &Some((u0, s0)), &Some(now), 10, 64, start.elapsed(), Some(1));
        assert!(
            line.contains(" gen_cpu_s=") && line.contains(" gen_us_per_msg="),
            "{line}"
        );
    }
}
