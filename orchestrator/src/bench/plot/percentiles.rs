//! `percentiles`: latency against percentile, both on logarithmic axes, p50 to p99.99, one
//! line per cluster. The percentile axis counts nines (`log10(1 / (1 - q))`: p90 is 1, p99 2),
//! so the tail, which a linear CDF squeezes into its last pixel, gets as much room as the
//! median.

use plotters::prelude::*;

use super::{cluster_label, color, legend, sorted_latencies, Area, Drawn};
use crate::bench::report::{percentile, Results};

/// p50, in nines.
const FIRST: f64 = std::f64::consts::LOG10_2;
/// p99.99.
const LAST: f64 = 4.0;
/// Points per line.
const STEPS: usize = 200;

/// The percentile `nines` stands for, as its label (`p50`, `p99.9`).
fn label(nines: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-nines));
    let text = format!("{q:.4}");
    format!("p{}", text.trim_end_matches('0').trim_end_matches('.'))
}

/// (nines, latency ms) from p50 up to the last percentile `us` (sorted) can tell apart from
/// its maximum: `1 - 1/n` for `n` requests.
fn points(us: &[u32]) -> Vec<(f64, f64)> {
    if us.is_empty() {
        return Vec::new();
    }
    let last = (us.len() as f64).log10().clamp(FIRST, LAST);
    (0..=STEPS)
        .map(|i| FIRST + (last - FIRST) * i as f64 / STEPS as f64)
        .map(|nines| {
            let q = 1.0 - 10f64.powf(-nines);
            (nines, (f64::from(percentile(us, q)) / 1000.0).max(0.001))
        })
        .collect()
}

pub(super) fn draw<DB: DrawingBackend>(area: Area<DB>, results: &Results) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let lines: Vec<(String, Vec<(f64, f64)>)> = results
        .clusters
        .iter()
        .map(|c| (cluster_label(c), points(&sorted_latencies(c))))
        .collect();
    let ys = || lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let low = ys().fold(f64::INFINITY, f64::min).min(1.0) * 0.8;
    let high = ys().fold(0.0, f64::max).max(low * 10.0) * 1.25;
    let mut chart = ChartBuilder::on(&area)
        .caption("Latency percentiles (logarithmic axes)", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(FIRST..LAST, (low..high).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile (from p50)")
        // Whole nines: p90, p99, p99.9, p99.99.
        .x_labels(4)
        .y_desc("latency (ms)")
        .x_label_formatter(&|v| label(*v))
        .y_label_formatter(&|v| format!("{v}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, line)) in lines.into_iter().enumerate() {
        let style = color(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(line, style))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, 14)?;
    area.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_is_labelled_with_percentiles() {
        assert_eq!(label(FIRST), "p50");
        assert_eq!(label(1.0), "p90");
        assert_eq!(label(3.0), "p99.9");
        assert_eq!(label(LAST), "p99.99");
    }

    #[test]
    fn lines_stop_at_the_last_percentile_the_requests_can_tell() {
        let us: Vec<u32> = (1..=1000).collect();
        let p = points(&us);
        assert_eq!(p.len(), STEPS + 1);
        assert_eq!(p[0], (FIRST, 0.5));
        let (nines, ms) = *p.last().unwrap();
        assert!(
            (nines - 3.0).abs() < 1e-9,
            "1000 requests tell p99.9: {nines}"
        );
        assert!((0.999..=1.0).contains(&ms), "{ms}");
        assert!(points(&[]).is_empty());
    }
}
