//! The SVG chart of a run: messages/s and server CPU per message, per case and
//! server, from the `key=value` lines `bench/run.sh` keeps in `results.txt`.

use std::path::Path;

use anyhow::Context as _;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The servers in the table's order, with their bar colours.
const SERVERS: [(&str, RGBColor); 7] = [
    ("soquete", RGBColor(0x1f, 0x77, 0xb4)),
    ("soquete-json", RGBColor(0x6b, 0xae, 0xd6)),
    ("soquete-ref", RGBColor(0x9e, 0xca, 0xe1)),
    ("redis", RGBColor(0xd6, 0x27, 0x28)),
    ("nats", RGBColor(0x2c, 0xa0, 0x2c)),
    ("mqtt", RGBColor(0x94, 0x67, 0xbd)),
    ("echo", RGBColor(0x7f, 0x7f, 0x7f)),
];

/// One cell of the table.
#[derive(Debug)]
struct Cell {
    server: String,
    case: String,
    rate: f64,
    cpu_us: Option<f64>,
}

fn parse(text: &str) -> Vec<Cell> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let server = words.next()?.to_owned();
            let fields: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
            let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
            let case = format!("N={} W={} S={}", get("n")?, get("w")?, get("s")?);
            Some(Cell {
                server,
                case,
                rate: get("msgs_per_s")?.parse().ok()?,
                cpu_us: get("server_us_per_msg").and_then(|v| v.parse().ok()),
            })
        })
        .collect()
}

/// Writes the chart of `results` (a run's `results.txt`) to `out`.
///
/// # Errors
/// `results` cannot be read or holds no cell, or the SVG cannot be written.
pub fn write(results: &Path, out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(results).with_context(|| format!("reading {}", results.display()))?;
    let cells = parse(&text);
    let mut cases: Vec<String> = Vec::new();
    for c in &cells {
        if !cases.contains(&c.case) {
            cases.push(c.case.clone());
        }
    }
    anyhow::ensure!(!cases.is_empty(), "no cell in {}", results.display());
    let root = SVGBackend::new(out, (1100, 860)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(430);
    panel(&top, "messages per second (log scale)", &cases, &cells, true, |c| {
        Some(c.rate)
    })?;
    panel(
        &bottom,
        "server CPU per message, microseconds (user + system; log scale)",
        &cases,
        &cells,
        false,
        |c| c.cpu_us,
    )?;
    root.present().with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// One bar chart: a group of bars per case, a bar per server (and the legend).
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    cases: &[String],
    cells: &[Cell],
    legend: bool,
    value: impl Fn(&Cell) -> Option<f64>,
) -> anyhow::Result<()> {
    let values: Vec<f64> = cells.iter().filter_map(&value).filter(|v| *v > 0.0).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil()))
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..cases.len() as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|v| format_value(*v))
        .draw()?;
    let width = 0.8 / SERVERS.len() as f64;
    for (k, (server, colour)) in SERVERS.iter().enumerate() {
        let bars = cases.iter().enumerate().filter_map(|(i, case)| {
            let cell = cells.iter().find(|c| c.server == *server && c.case == *case)?;
            let v = value(cell)?;
            let x0 = i as f64 + 0.1 + k as f64 * width;
            Some(Rectangle::new(
                [(x0, lo), (x0 + width * 0.9, v.max(lo))],
                colour.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(*server)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    label_cases(area, &chart, cases, lo)?;
    Ok(())
}

/// The case names under their groups of bars.
fn label_cases(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>,
    cases: &[String],
    lo: f64,
) -> anyhow::Result<()> {
    let style = TextStyle::from(("sans-serif", 14)).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, case) in cases.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        area.draw(&Text::new(case.clone(), (x, y + 8), style.clone()))?;
    }
    Ok(())
}

fn format_value(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_come_from_result_lines() {
        let cells = parse(
            "soquete target=soquete n=50 w=32 s=64 threads=2 msgs=1 secs=3 msgs_per_s=604400 \
             mb_per_s=38 server_us_per_msg=0.827\n\
             redis target=redis n=1 w=1 s=64 msgs_per_s=25000\n\
             c100k scale connections=10\n",
        );
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].server, "soquete");
        assert_eq!(cells[0].case, "N=50 W=32 S=64");
        assert_eq!(cells[0].rate, 604_400.0);
        assert_eq!(cells[0].cpu_us, Some(0.827));
        assert_eq!(cells[1].cpu_us, None);
    }
}
