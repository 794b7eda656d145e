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
    let stat = std::fs::read_to_string(path).ok()?;
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
