//! The bench's plots, each as SVG and PNG: the latency distribution per cluster (a CDF, and
//! its percentiles on a logarithmic axis in `percentiles.rs`), requests served per instance,
//! the CPU each instance used during the run, and the run second by second (`timeline.rs`).
//! Every legend and label names the instance type.
//!
//! Text is drawn with DejaVu Sans, compiled in (`assets/`), so no system font library is needed.

mod percentiles;
mod scaling;
mod timeline;

pub(crate) use scaling::Scaling;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{ClusterResult, InstanceResult, Results};
use super::via::Comparison;
use crate::state::{self, StateError};

const SIZE: (u32, u32) = (960, 540);
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// At most this many points per CDF line: enough for a smooth curve, small SVGs.
const CDF_POINTS: usize = 500;

type Area<DB> = DrawingArea<DB, Shift>;
type Drawn = Result<(), String>;

/// `i-123 (t3.micro)`, or the bare name when the type is unknown.
fn instance_label(instance: &str, instance_type: Option<&str>) -> String {
    match instance_type {
        Some(t) => format!("{instance} ({t})"),
        None => instance.to_owned(),
    }
}

/// `cluster1 (2 x m4.large)`, or the bare name when no type is known.
fn cluster_label(cluster: &ClusterResult) -> String {
    match cluster.instance_types() {
        t if t.is_empty() => cluster.cluster.clone(),
        t => format!("{} ({t})", cluster.cluster),
    }
}

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters failed to draw.
    #[error("cannot draw {file}: {reason}")]
    Draw {
        /// The plot's file name.
        file: String,
        /// plotters' message.
        reason: String,
    },
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] StateError),
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::warn!("the built-in font is unreadable; plots will have no text");
        }
    });
}

/// The plots, each drawn the same way on every backend.
#[derive(Debug, Clone, Copy)]
enum Plot {
    Latency,
    Percentiles,
    Requests,
    Cpu,
    Timeline,
}

impl Plot {
    const ALL: [Plot; 5] = [
        Plot::Latency,
        Plot::Percentiles,
        Plot::Requests,
        Plot::Cpu,
        Plot::Timeline,
    ];

    fn name(self) -> &'static str {
        match self {
            Plot::Latency => "latency",
            Plot::Percentiles => "percentiles",
            Plot::Requests => "requests",
            Plot::Cpu => "cpu",
            Plot::Timeline => "timeline",
        }
    }

    /// In pixels; the timeline stacks four panels.
    fn size(self) -> (u32, u32) {
        match self {
            Plot::Timeline => (SIZE.0, 2 * SIZE.1),
            _ => SIZE,
        }
    }

    fn draw<DB: DrawingBackend>(self, area: Area<DB>, results: &Results) -> Drawn {
        match self {
            Plot::Latency => draw_latency(area, results),
            Plot::Percentiles => percentiles::draw(area, results),
            Plot::Requests => draw_requests(area, results),
            Plot::Cpu => draw_cpu(area, results),
            Plot::Timeline => timeline::draw(area, results),
        }
    }
}

/// Writes `latency`, `percentiles`, `requests`, `cpu` and `timeline` (and `scaling` when an
/// autoscaler changed a cluster during the run), each as `.svg` and `.png`, into `dir`;
/// returns the paths written.
pub(crate) fn write_all(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let mut written = Vec::new();
    for plot in Plot::ALL {
        written.extend(render(dir, &(plot, results))?);
    }
    // A cluster that an autoscaler scaled during the run (the first, when several were).
    if let Some(run) = results.clusters.iter().find_map(|c| c.scaling.as_ref()) {
        let figure = Scaling {
            run,
            objective_ms: None,
        };
        written.extend(render(dir, &figure)?);
    }
    Ok(written)
}

/// Writes `comparison.svg` and `.png` into `dir`: p50, p99 and p99.9 of each run (via or
/// algorithm) side by side; returns the paths written.
pub(crate) fn write_comparison(
    comparison: &Comparison,
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    Ok(render(dir, comparison)?.to_vec())
}

/// Writes `scaling.svg` and `.png` into `dir` (a run under an autoscaler); returns the paths
/// written.
pub(crate) fn write_scaling(figure: &Scaling, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    Ok(render(dir, figure)?.to_vec())
}

impl Figure for Scaling<'_> {
    fn name(&self) -> &'static str {
        "scaling"
    }

    fn size(&self) -> (u32, u32) {
        (SIZE.0, 2 * SIZE.1)
    }

    fn draw<DB: DrawingBackend>(&self, area: Area<DB>) -> Drawn {
        scaling::draw(area, self)
    }
}

/// Something drawn into a file of its own, the same way on every backend.
trait Figure {
    fn name(&self) -> &'static str;
    /// In pixels.
    fn size(&self) -> (u32, u32) {
        SIZE
    }
    fn draw<DB: DrawingBackend>(&self, area: Area<DB>) -> Drawn;
}

impl Figure for (Plot, &Results) {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn size(&self) -> (u32, u32) {
        self.0.size()
    }

    fn draw<DB: DrawingBackend>(&self, area: Area<DB>) -> Drawn {
        self.0.draw(area, self.1)
    }
}

impl Figure for Comparison {
    fn name(&self) -> &'static str {
        "comparison"
    }

    fn draw<DB: DrawingBackend>(&self, area: Area<DB>) -> Drawn {
        draw_comparison(area, self)
    }
}

/// Draws one figure twice: into an SVG string, and into a PNG next to its final name (the
/// bitmap encoder writes files only), each then moved into place in one step.
fn render(dir: &Path, plot: &impl Figure) -> Result<[PathBuf; 2], PlotError> {
    let name = plot.name();
    let failed = |file: &str| {
        let file = file.to_owned();
        move |reason| PlotError::Draw { file, reason }
    };
    let svg_path = dir.join(format!("{name}.svg"));
    let mut text = String::new();
    plot.draw(SVGBackend::with_string(&mut text, plot.size()).into_drawing_area())
        .map_err(failed(&format!("{name}.svg")))?;
    state::write_atomic(&svg_path, text.as_bytes(), 0o644)?;

    let png_path = dir.join(format!("{name}.png"));
    let tmp = dir.join(format!(".{name}.tmp.png"));
    let drawn = plot
        .draw(BitMapBackend::new(&tmp, plot.size()).into_drawing_area())
        .map_err(failed(&format!("{name}.png")));
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &png_path).map_err(|source| {
        PlotError::Write(StateError::Io {
            action: "renaming into",
            path: png_path.clone(),
            source,
        })
    })?;
    Ok([svg_path, png_path])
}

/// p50, p99 and p99.9 per run and cluster, on a logarithmic latency axis: a tail ten times
/// longer is as visible as one ten times shorter.
fn draw_comparison<DB: DrawingBackend>(area: Area<DB>, comparison: &Comparison) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let rows = &comparison.rows;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.via, r.cluster))
        .collect();
    let values = |r: &super::via::ViaRow| [r.latency_ms.p50, r.latency_ms.p99, r.latency_ms.p999];
    let (lo, hi) = rows
        .iter()
        .flat_map(values)
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 {
        (lo / 2.0, hi * 2.0)
    } else {
        (0.01, 1.0)
    };
    let n = rows.len().max(1);
    let mut chart = ChartBuilder::on(&area)
        .caption("Latency per run: p50, p99, p99.9", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(64)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            labels.get(i as usize).cloned().unwrap_or_default()
        })
        .y_desc("latency (ms, log scale)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, name) in ["p50", "p99", "p99.9"].into_iter().enumerate() {
        let style = color(k).filled();
        let points: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64 + (k as f64 - 1.0) * 0.15, values(r)[k].max(lo)))
            .collect();
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 6, style)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, style));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, 14)?;
    area.present().map_err(|e| e.to_string())
}

/// The series' legend box, at `position`, in `font_size` text: the same on every plot.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Drawn {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", font_size))
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

fn color(i: usize) -> RGBColor {
    let (r, g, b) = Palette99::COLORS[i % Palette99::COLORS.len()];
    RGBColor(r, g, b)
}

fn draw_latency<DB: DrawingBackend>(area: Area<DB>, results: &Results) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let max_ms = results
        .clusters
        .iter()
        .map(|c| c.latency_ms.max)
        .fold(0.0, f64::max)
        .max(0.001);
    let mut chart = ChartBuilder::on(&area)
        .caption("Latency distribution (CDF)", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..max_ms * 1.02, 0.0..100.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("requests answered within (%)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, cluster) in results.clusters.iter().enumerate() {
        let style = color(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(cdf(cluster), style))
            .map_err(|e| e.to_string())?
            .label(format!(
                "{}: p99 {:.2} ms",
                cluster_label(cluster),
                cluster.latency_ms.p99
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight, 14)?;
    area.present().map_err(|e| e.to_string())
}

/// The latencies of the cluster's answered requests, in µs, sorted.
fn sorted_latencies(cluster: &ClusterResult) -> Vec<u32> {
    let mut us: Vec<u32> = cluster
        .samples
        .iter()
        .filter(|s| s.status != 0)
        .map(|s| s.latency_us)
        .collect();
    us.sort_unstable();
    us
}

/// (latency ms, % of answered requests at or below it), at most [`CDF_POINTS`] points.
fn cdf(cluster: &ClusterResult) -> Vec<(f64, f64)> {
    let us = sorted_latencies(cluster);
    let n = us.len();
    let step = n.div_ceil(CDF_POINTS).max(1);
    let mut points: Vec<(f64, f64)> = (step - 1..n)
        .step_by(step)
        .map(|i| (f64::from(us[i]) / 1000.0, (i + 1) as f64 * 100.0 / n as f64))
        .collect();
    if let (Some(&last), Some(&(_, pct))) = (us.last(), points.last()) {
        if pct < 100.0 {
            points.push((f64::from(last) / 1000.0, 100.0));
        }
    }
    points
}

/// `instance (type)` labels and one value per instance, over every cluster.
fn per_instance(
    results: &Results,
    value: impl Fn(&InstanceResult) -> f64,
) -> (Vec<String>, Vec<f64>) {
    results
        .clusters
        .iter()
        .flat_map(|c| c.instances.iter())
        .map(|i| {
            (
                instance_label(&i.instance, i.instance_type.as_deref()),
                value(i),
            )
        })
        .unzip()
}

/// A bar chart over instances; each series is (legend, values, colour, bar margin in pixels),
/// drawn in order, so a narrower later bar shows in front of a wider earlier one. The y axis
/// ends at `y_max`, else a little above the highest bar.
fn bars<DB: DrawingBackend>(
    area: Area<DB>,
    (title, y_desc, y_max): (&str, &str, Option<f64>),
    labels: &[String],
    series: &[(&str, Vec<f64>, RGBColor, u32)],
) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let top = y_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|(_, v, _, _)| v.iter().copied())
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1
    });
    // A segmented 0..last range has a segment for every value of 0..=last.
    let last = labels.len().saturating_sub(1) as u32;
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((0u32..last).into_segmented(), 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
        .x_labels(labels.len().max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    for &(legend, ref values, colour, margin) in series {
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(colour.filled())
                    .margin(margin)
                    .data(values.iter().enumerate().map(|(i, v)| (i as u32, *v))),
            )
            .map_err(|e| e.to_string())?
            .label(legend)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::MiddleRight, 14)?;
    area.present().map_err(|e| e.to_string())
}

fn draw_requests<DB: DrawingBackend>(area: Area<DB>, results: &Results) -> Drawn {
    let (labels, served) = per_instance(results, |i| i.served as f64);
    bars(
        area,
        ("Requests served per instance", "requests", None),
        &labels,
        &[("served", served, color(0), 12)],
    )
}

fn draw_cpu<DB: DrawingBackend>(area: Area<DB>, results: &Results) -> Drawn {
    let (labels, used) = per_instance(results, |i| i.cpu_percent.unwrap_or(0.0));
    let (_, throttled) = per_instance(results, |i| i.throttled_percent.unwrap_or(0.0));
    let top = used.iter().copied().fold(100.0, f64::max) * 1.1;
    bars(
        area,
        (
            "CPU per instance during the run (its cgroup locally, the host on EC2)",
            "% of the instance's CPU capacity / % throttled",
            Some(top),
        ),
        &labels,
        &[
            ("CPU used, % of capacity", used, RGBColor(70, 110, 190), 8),
            (
                "time throttled, % of the host's CPU time",
                throttled,
                RGBColor(200, 60, 40),
                28,
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::results;

    #[test]
    fn every_plot_is_written_as_a_valid_svg_and_png() {
        let results = results();
        let dir = std::env::temp_dir().join(format!("elb-plot-test-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = write_all(&results, &dir).unwrap();
        assert_eq!(written.len(), 10);
        for path in &written {
            let bytes = std::fs::read(path).unwrap();
            match path.extension().and_then(|e| e.to_str()) {
                Some("svg") => {
                    let text = String::from_utf8(bytes).unwrap();
                    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
                    assert!(
                        text.contains("cluster1") || text.contains("t3.micro"),
                        "{}: labels are drawn",
                        path.display()
                    );
                    assert!(text.contains("t3.micro"), "{}: types", path.display());
                }
                _ => {
                    assert!(
                        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                        "{}",
                        path.display()
                    );
                    assert!(
                        bytes.len() > 5_000,
                        "{}: {} bytes",
                        path.display(),
                        bytes.len()
                    );
                }
            }
        }
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 10, "no temporary files left: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
