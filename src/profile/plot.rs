//! The timeline of one input as an SVG chart (plotters, SVG backend): bytes held by
//! reassembly, by the HTTP parsers and both together on the left axis, open connections on the
//! right axis, against capture time. Windows where a cap was hit carry a vertical line and a
//! marker per cap, named in the legend with its number of hits. (The heap is in the report, not
//! here: the entries waiting for their turn would flatten the lines that matter.)

use std::path::Path;

use plotters::prelude::*;

use super::{InputProfile, Sample};
use crate::http::Cap;

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

/// A byte count for an axis label.
fn axis_bytes(v: f64) -> String {
    const UNITS: [(f64, &str); 3] = [(1_073_741_824.0, "GiB"), (1_048_576.0, "MiB"), (1024.0, "KiB")];
    for (u, name) in UNITS {
        if v >= u {
            return format!("{:.1} {name}", v / u);
        }
    }
    format!("{v:.0} B")
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
    let y_max = points.iter().map(Sample::buffered).max().unwrap_or(0).max(1024) as f64 * 1.15;
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
        .y_desc("bytes held")
        .y_label_formatter(&|v| axis_bytes(*v))
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
    let series: [Series; 3] = [
        ("buffered (reassembly + HTTP)", RGBColor(0, 0, 0), Sample::buffered),
        ("reassembly (out-of-order bytes)", RGBColor(31, 119, 180), |s| s.reassembly_bytes),
        ("HTTP parsers", RGBColor(44, 160, 44), |s| s.http_bytes),
    ];
    for (name, color, f) in series {
        let data: Vec<(f64, f64)> = points.iter().map(|s| (s.t, f(s) as f64)).collect();
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_secondary_series(LineSeries::new(points.iter().map(|s| (s.t, s.live_flows as f64)), orange.stroke_width(2)))
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
