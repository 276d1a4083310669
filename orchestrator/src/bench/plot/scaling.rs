//! `scaling`: a run under an autoscaler in three panels over one time axis: the rate offered
//! and the rate served, the p99 of each second's requests (from when they were due, on a
//! logarithmic axis) against the objective, and the cluster's instances; every scaling event
//! is a vertical line through all three.

use plotters::prelude::*;

use super::{color, legend, Area, Drawn};
use crate::bench::scaling::ScalingRun;

/// The figure: the run and the p99 objective it is judged against, if any.
pub(crate) struct Scaling<'a> {
    pub(crate) run: &'a ScalingRun,
    pub(crate) objective_ms: Option<f64>,
}

type Points = Vec<(f64, f64)>;

pub(super) fn draw<DB: DrawingBackend>(area: Area<DB>, figure: &Scaling) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let run = figure.run;
    let end = (run.per_second.len() as f64).max(1.0);
    let at = |s: u64| s as f64 + 0.5;
    let offered: Points = run
        .per_second
        .iter()
        .map(|s| (at(s.second), s.offered as f64))
        .collect();
    let served: Points = run
        .per_second
        .iter()
        .map(|s| (at(s.second), s.served as f64))
        .collect();
    let p99: Points = run
        .per_second
        .iter()
        .filter_map(|s| Some((at(s.second), s.p99_ms?.max(0.01))))
        .collect();
    let instances: Points = run
        .per_second
        .iter()
        .filter_map(|s| Some((s.second as f64, f64::from(s.instances?))))
        .collect();
    let events: Vec<f64> = run.events.iter().map(|e| e.second).collect();
    let panels = area.split_evenly((3, 1));
    let top = offered
        .iter()
        .chain(&served)
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.15;
    let p99_high = p99
        .iter()
        .map(|p| p.1)
        .fold(figure.objective_ms.unwrap_or(1.0), f64::max)
        * 2.0;
    let most = instances.iter().map(|p| p.1).fold(1.0, f64::max) + 1.0;

    let mut rate = ChartBuilder::on(&panels[0])
        .caption("Load offered and served (requests/s)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, 0.0..top)
        .map_err(|e| e.to_string())?;
    rate.configure_mesh()
        .y_desc("req/s")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, points)) in [("offered", offered), ("served (2xx)", served)]
        .into_iter()
        .enumerate()
    {
        let style = color(i).stroke_width(2);
        rate.draw_series(LineSeries::new(points, style))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    markers(&mut rate, &events, top)?;
    legend(&mut rate, SeriesLabelPosition::UpperRight, 12)?;

    let mut latency = ChartBuilder::on(&panels[1])
        .caption(
            "p99 of each second's requests, from when due (ms, logarithmic)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, (0.01..p99_high).log_scale())
        .map_err(|e| e.to_string())?;
    latency
        .configure_mesh()
        .y_desc("ms")
        .y_label_formatter(&|v| format!("{v}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let style = color(2).stroke_width(2);
    latency
        .draw_series(LineSeries::new(p99, style))
        .map_err(|e| e.to_string())?
        .label("p99")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    if let Some(objective) = figure.objective_ms {
        latency
            .draw_series(LineSeries::new(
                [(0.0, objective), (end, objective)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("objective {objective} ms"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    }
    markers(&mut latency, &events, p99_high)?;
    legend(&mut latency, SeriesLabelPosition::UpperRight, 12)?;

    let mut size = ChartBuilder::on(&panels[2])
        .caption(
            "Instances (vertical lines: scaling decisions)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, 0.0..most)
        .map_err(|e| e.to_string())?;
    size.configure_mesh()
        .x_desc("seconds since the load began")
        .y_desc("instances")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let steps: Points = instances
        .windows(2)
        .flat_map(|w| [w[0], (w[1].0, w[0].1)])
        .chain(instances.last().map(|&(x, y)| (x + 1.0, y)))
        .collect();
    size.draw_series(LineSeries::new(steps, color(3).stroke_width(2)))
        .map_err(|e| e.to_string())?;
    markers(&mut size, &events, most)?;
    area.present().map_err(|e| e.to_string())
}

/// A thin grey vertical line at each event.
fn markers<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, impl Ranged<ValueType = f64>>,
    >,
    events: &[f64],
    top: f64,
) -> Drawn {
    let low = chart.y_range().start;
    for &x in events {
        chart
            .draw_series(LineSeries::new(
                [(x, low), (x, top)],
                RGBColor(150, 150, 150).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
