//! `timeline`: the run second by second, per instance, in four panels over one time axis:
//! requests that ended each second and their p99 (the client's bins), the instance's CPU use
//! as a share of its capacity and the time it was throttled (the agents' intervals, drawn as
//! steps over the interval each covers). Clusters run one after the other, so the axis is
//! seconds since the first one began. A t3.micro's quota shows as CPU pinned at 100% with
//! throttling, and as p99 spikes where it stalls.

use plotters::prelude::*;

use super::{color, instance_label, Area, Drawn};
use crate::bench::report::Results;
use crate::bench::timeline::{AgentInterval, ClientSecond, InstanceSeries};

/// One line: its legend, colour and points.
struct Line {
    label: String,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Every instance series of the results with its time offset (seconds since the first
/// cluster's run began) and a colour of its own.
fn series(results: &Results) -> Vec<(f64, &InstanceSeries, RGBColor)> {
    let first = results
        .clusters
        .iter()
        .map(|c| c.started_at_unix_ms)
        .filter(|&t| t > 0)
        .min();
    let mut out = Vec::new();
    let mut unknown_start = 0.0;
    for c in &results.clusters {
        let offset = match first {
            Some(first) if c.started_at_unix_ms > 0 => {
                (c.started_at_unix_ms - first.min(c.started_at_unix_ms)) as f64 / 1000.0
            }
            // No start time recorded: place the runs end to end.
            _ => unknown_start,
        };
        unknown_start = offset + c.elapsed_secs;
        for s in &c.timeline {
            out.push((offset, s, color(out.len())));
        }
    }
    out
}

fn label(s: &InstanceSeries) -> String {
    match &s.instance {
        Some(name) => instance_label(name, s.instance_type.as_deref()),
        None => "no instance named".to_owned(),
    }
}

/// The four panels' lines.
fn lines(results: &Results) -> [Vec<Line>; 4] {
    let mut panels: [Vec<Line>; 4] = Default::default();
    for (offset, s, colour) in series(results) {
        let client = |value: &dyn Fn(&ClientSecond) -> Option<f64>| {
            s.client
                .iter()
                .filter_map(|b| value(b).map(|v| (offset + b.second as f64 + 0.5, v)))
                .collect::<Vec<_>>()
        };
        let steps = |value: &dyn Fn(&AgentInterval) -> Option<f64>| {
            s.agent
                .iter()
                .filter_map(|i| {
                    value(i).map(|v| [(offset + i.from_secs, v), (offset + i.to_secs, v)])
                })
                .flatten()
                .collect::<Vec<_>>()
        };
        let all = [
            client(&|b: &ClientSecond| Some(b.requests as f64)),
            client(&|b: &ClientSecond| b.p99_ms),
            steps(&|i: &AgentInterval| Some(i.cpu_percent)),
            steps(&|i: &AgentInterval| i.throttled_percent),
        ];
        for (panel, points) in panels.iter_mut().zip(all) {
            if !points.is_empty() {
                panel.push(Line {
                    label: label(s),
                    colour,
                    points,
                });
            }
        }
    }
    panels
}

/// One panel: `lines` over `x`, the y axis from 0 to a little above the highest point (or
/// `at_least`), the legend only where `legend` says.
fn panel<DB: DrawingBackend>(
    area: &Area<DB>,
    (title, y_desc, at_least): (&str, &str, f64),
    x: std::ops::Range<f64>,
    lines: &[Line],
    legend: bool,
) -> Drawn {
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|&(_, y)| y))
        .fold(at_least, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(x, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first run began")
        .y_desc(y_desc)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    for line in lines {
        let style = line.colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))
            .map_err(|e| e.to_string())?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    if legend && !lines.is_empty() {
        super::legend(&mut chart, SeriesLabelPosition::UpperRight, 12)?;
    }
    Ok(())
}

pub(super) fn draw<DB: DrawingBackend>(area: Area<DB>, results: &Results) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = lines(results);
    let end = panels
        .iter()
        .flatten()
        .flat_map(|l| l.points.iter().map(|&(x, _)| x))
        .fold(1.0, f64::max);
    let start = panels
        .iter()
        .flatten()
        .flat_map(|l| l.points.iter().map(|&(x, _)| x))
        .fold(0.0, f64::min);
    let titles = [
        ("Requests per second, per instance", "requests / s", 1.0),
        ("p99 latency per second", "p99 (ms)", 0.1),
        ("CPU used, % of the instance's capacity", "CPU %", 100.0),
        (
            "Time throttled (stolen on EC2), % of the host's CPU time",
            "throttled %",
            10.0,
        ),
    ];
    let areas = area.split_evenly((4, 1));
    for (i, ((area, title), lines)) in areas.iter().zip(titles).zip(&panels).enumerate() {
        panel(area, title, start..end, lines, i == 0)?;
    }
    area.present().map_err(|e| e.to_string())
}
