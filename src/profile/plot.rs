//! The timeline of one input as an SVG chart (plotters, SVG backend), against capture time:
//! what holds memory on the left axis (the heap's peak in each window when the counting
//! allocator ran, the entries waiting for their turn, the bytes held by reassembly, by the
//! HTTP parsers and both together), open connections on the right axis. Each sample is the
//! state over the window that ends at its time, so the series are drawn as steps (flat over
//! the window, vertical between windows), not as straight lines between sparse samples. The
//! byte axis is in one unit (B, KiB, MiB or GiB, chosen by the largest value) so its ticks are
//! round numbers of it. Windows where a cap was hit carry a vertical line and a marker per cap,
//! named in the legend with its number of hits.

use std::path::Path;

use plotters::prelude::*;

use super::{InputProfile, Sample};
use crate::proto::http1::Cap;

const SIZE: (u32, u32) = (1200, 640);

fn cap_color(cap: Cap) -> RGBColor {
    match cap {
        Cap::MaxOooPerConn => RGBColor(214, 39, 40),
        Cap::MaxOooTotal => RGBColor(148, 103, 189),
        Cap::MaxFlows => RGBColor(140, 86, 75),
        Cap::IdleTimeout => RGBColor(127, 127, 127),
        Cap::MaxBody => RGBColor(227, 119, 194),
        Cap::MaxBodiesTotal => RGBColor(23, 190, 207),
        Cap::MaxHead => RGBColor(188, 189, 34),
    }
}

/// The unit of the byte axis for values up to `max`: its size and name.
fn byte_unit(max: f64) -> (f64, &'static str) {
    const UNITS: [(f64, &str); 3] = [(1_073_741_824.0, "GiB"), (1_048_576.0, "MiB"), (1024.0, "KiB")];
    UNITS.into_iter().find(|(u, _)| max >= 2.0 * u).unwrap_or((1.0, "B"))
}

/// A tick label: a round number without trailing zeros (`2`, `2.5`, `0.25`).
fn tick(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Step points: each sample's value held over the window that ends at its time.
fn steps(points: &[Sample], f: impl Fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    let mut prev_t = 0.0;
    for s in points {
        let v = f(s);
        out.push((prev_t, v));
        out.push((s.t, v));
        prev_t = s.t;
    }
    out
}

/// Writes the chart of `p`'s timeline to `path`.
pub fn write_svg(path: &Path, p: &InputProfile) -> Result<(), String> {
    // Nothing is held before the first packet: the lines start from zero.
    let mut points: Vec<Sample> = Vec::with_capacity(p.timeline.len() + 1);
    if p.timeline.first().is_none_or(|s| s.t > 0.0) {
        points.push(Sample::default());
    }
    points.extend(p.timeline.iter().cloned());
    let t_max = points.iter().map(|s| s.t).fold(0.0f64, f64::max).max(1e-3);
    let heap = |s: &Sample| s.heap_peak.or(s.heap_live).unwrap_or(0);
    let top = points.iter().map(|s| Sample::buffered(s).max(s.pending_entry_bytes).max(heap(s))).max().unwrap_or(0).max(1024) as f64;
    let (unit, unit_name) = byte_unit(top);
    let y_max = top / unit * 1.15;
    let flows_max = (points.iter().map(|s| s.live_flows).max().unwrap_or(0).max(1) as f64 * 1.1).ceil();
    // Whole connections only: no more labels than there are integers on the axis.
    let flow_labels = (flows_max as usize + 1).min(11);

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("apitool profile: {}", p.input), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(90)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|x| e(&x))?
        .set_secondary_coord(0.0..t_max, 0.0..flows_max);
    chart
        .configure_mesh()
        .x_desc("capture time since the first packet (s)")
        .y_desc(format!("{unit_name} held"))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(&x))?;
    chart
        .configure_secondary_axes()
        .y_desc("open connections")
        .y_labels(flow_labels)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;

    type Series = (&'static str, RGBColor, fn(&Sample) -> u64);
    let mut series: Vec<Series> = Vec::new();
    if points.iter().any(|s| s.heap_peak.or(s.heap_live).is_some()) {
        series.push(("heap (peak in each window)", RGBColor(214, 39, 40), |s| s.heap_peak.or(s.heap_live).unwrap_or(0)));
    }
    series.extend([
        ("entries waiting for their turn", RGBColor(148, 103, 189), (|s| s.pending_entry_bytes) as fn(&Sample) -> u64),
        ("buffered (reassembly + HTTP)", RGBColor(0, 0, 0), Sample::buffered),
        ("reassembly (out-of-order bytes)", RGBColor(31, 119, 180), |s| s.reassembly_bytes),
        ("HTTP parsers", RGBColor(44, 160, 44), |s| s.http_bytes),
    ]);
    for (name, color, f) in series {
        let data = steps(&points, |s| f(s) as f64 / unit);
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_secondary_series(LineSeries::new(steps(&points, |s| s.live_flows as f64), orange.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label("open connections (right axis)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));

    // Each cap its own row of markers along the top, and a line down through the chart.
    let mut row = 0;
    for cap in Cap::ALL {
        let at: Vec<f64> = points.iter().filter(|s| s.cap_hits.contains_key(&cap)).map(|s| s.t).collect();
        if at.is_empty() {
            continue;
        }
        let n = p.caps.iter().find(|c| c.cap == cap).map_or(0, |c| c.hits);
        let color = cap_color(cap);
        let y = y_max * (0.97 - 0.035 * row as f64);
        row += 1;
        chart
            .draw_series(at.iter().map(|&x| PathElement::new(vec![(x, 0.0), (x, y)], color.mix(0.5).stroke_width(1))))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(at.iter().map(move |&x| TriangleMarker::new((x, y), 7, color.filled())))
            .map_err(|x| e(&x))?
            .label(format!("cap hit: {} ({n} hits)", cap.flag()))
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
