//! The profile as a table for people or as JSON for machines.

use std::fmt::Write as _;

use super::{CapUse, InputProfile, Report, Sample, SweepTable, Totals};

/// Timeline rows in the table (the JSON has every point).
pub const TABLE_ROWS: usize = 20;

/// A byte count: `4 MiB` when exact, `1.2 MiB` otherwise.
pub fn size(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (u, name) in UNITS {
        if n >= u {
            return if n.is_multiple_of(u) { format!("{} {name}", n / u) } else { format!("{:.1} {name}", n as f64 / u as f64) };
        }
    }
    format!("{n} B")
}

fn secs(t: f64) -> String {
    if t >= 100.0 { format!("{t:.0} s") } else { format!("{t:.1} s") }
}

/// Columns: the first left-aligned, the others right-aligned; each line indented by two.
fn grid(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            if i == 0 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(out, header.to_vec());
    for r in rows {
        line(out, r.iter().map(String::as_str).collect());
    }
}

fn cap_table(out: &mut String, caps: &[CapUse]) {
    let rows: Vec<Vec<String>> = caps
        .iter()
        .map(|c| {
            let held = match (c.cap, c.peak_held) {
                (crate::proto::http1::Cap::MaxFlows, Some(n)) => format!("{n} conns"),
                (_, Some(n)) => size(n),
                (_, None) => "-".into(),
            };
            vec![c.flag.to_string(), c.limit.clone(), held, c.hits.to_string(), c.exchanges_damaged.to_string()]
        })
        .collect();
    grid(out, &["cap", "limit", "peak held", "hits", "exchanges damaged"], &rows);
}

fn heap_text(h: Option<super::Heap>) -> String {
    match h {
        Some(h) => format!("peak {}, {} allocations", size(h.peak_bytes), h.allocations),
        None => "not counted (the counting allocator is not installed)".into(),
    }
}

/// Folds the timeline into at most `n` points (each the later time and the larger figures of
/// the points it covers, their cap hits added).
pub fn fold(timeline: &[Sample], n: usize) -> Vec<Sample> {
    let per = timeline.len().div_ceil(n.max(1)).max(1);
    timeline
        .chunks(per)
        .map(|c| {
            let mut s = c[0].clone();
            for x in &c[1..] {
                s.merge(x);
            }
            s
        })
        .collect()
}

/// Every number among the fields of `v` (a struct of counters), named `prefix.field`.
fn counter_rows(rows: &mut Vec<Vec<String>>, prefix: &str, v: &impl serde::Serialize) {
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(v) {
        for (k, x) in m {
            if let Some(n) = x.as_u64() {
                rows.push(vec![format!("{prefix}.{k}"), n.to_string()]);
            }
        }
    }
}

fn input_block(out: &mut String, p: &InputProfile, verbose: bool) {
    let _ = writeln!(
        out,
        "{}: {}, {}, {} frames, {} connections, {} exchanges ({} damaged, {} by caps), {} of capture time",
        p.input,
        p.format,
        size(p.bytes),
        p.frames,
        p.connections,
        p.exchanges,
        p.exchanges_damaged,
        p.exchanges_damaged_by_caps,
        secs(p.duration)
    );
    let _ = writeln!(
        out,
        "  peak buffered between windows: {} at {} (reassembly peak {}, HTTP parsers peak {})",
        size(p.peak_buffered_bytes),
        secs(p.peak_buffered_at),
        size(p.peak_reassembly_bytes),
        size(p.peak_http_bytes),
    );
    let _ = writeln!(out, "  peak out-of-order bytes of one connection: {}", size(p.peak_conn_reassembly_bytes));
    let _ = writeln!(out, "  peak entries waiting for their turn: {}", size(p.peak_pending_entry_bytes));
    let _ = writeln!(
        out,
        "  entries spilled to a temporary file (past --order-mem): {} ({}; at most {} on disk at once)",
        p.entries_spilled,
        size(p.bytes_spilled),
        size(p.peak_spill_file_bytes)
    );
    let _ = writeln!(
        out,
        "  peak open connections: {} ({} tracked, with those that ended in the window)",
        p.peak_live_flows, p.peak_open_flows
    );
    let _ = writeln!(out, "  heap: {}", heap_text(p.heap));
    out.push('\n');
    cap_table(out, &p.caps);
    if !p.top_connections.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = p.top_connections.iter().map(|c| vec![format!("#{}", c.id), size(c.peak_bytes), secs(c.at)]).collect();
        grid(out, &["top connections", "peak held", "at"], &rows);
    }
    if verbose {
        // -v: every counter of the conversion, those at zero too.
        out.push('\n');
        let mut rows = Vec::new();
        counter_rows(&mut rows, "tcp", &p.tcp);
        counter_rows(&mut rows, "http", &p.http);
        grid(out, &["counter", "count"], &rows);
    }
    if !p.timeline.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = fold(&p.timeline, if verbose { usize::MAX } else { TABLE_ROWS })
            .iter()
            .map(|s| {
                let hits: Vec<String> = s.cap_hits.iter().map(|(c, n)| format!("{} x{n}", c.flag())).collect();
                vec![
                    secs(s.t),
                    s.live_flows.to_string(),
                    size(s.reassembly_bytes),
                    size(s.http_bytes),
                    size(s.pending_entry_bytes),
                    s.heap_peak.map_or("-".into(), size),
                    if hits.is_empty() { "-".into() } else { hits.join(" ") },
                ]
            })
            .collect();
        grid(out, &["capture time", "open conns", "reassembly", "HTTP", "entries waiting", "heap peak", "cap hits"], &rows);
    }
}

fn corpus_block(out: &mut String, inputs: &[InputProfile], t: &Totals) {
    let _ = writeln!(out, "corpus: {} inputs", t.inputs);
    let mut rows: Vec<Vec<String>> = inputs
        .iter()
        .map(|p| {
            vec![
                p.input.clone(),
                size(p.bytes),
                p.exchanges.to_string(),
                p.exchanges_damaged.to_string(),
                p.exchanges_damaged_by_caps.to_string(),
                size(p.peak_buffered_bytes),
                size(p.peak_pending_entry_bytes),
                size(p.bytes_spilled),
                p.peak_live_flows.to_string(),
                p.heap.map_or("-".into(), |h| size(h.peak_bytes)),
                p.caps.iter().map(|c| c.hits).sum::<u64>().to_string(),
            ]
        })
        .collect();
    rows.push(vec![
        "total".into(),
        size(t.bytes),
        t.exchanges.to_string(),
        t.exchanges_damaged.to_string(),
        t.exchanges_damaged_by_caps.to_string(),
        size(t.peak_buffered_bytes),
        size(t.peak_pending_entry_bytes),
        size(t.bytes_spilled),
        t.peak_live_flows.to_string(),
        t.heap.map_or("-".into(), |h| size(h.peak_bytes)),
        t.caps.iter().map(|c| c.hits).sum::<u64>().to_string(),
    ]);
    grid(
        out,
        &[
            "input",
            "size",
            "exchanges",
            "damaged",
            "by caps",
            "peak buffered",
            "peak waiting",
            "spilled",
            "peak conns",
            "peak heap",
            "cap hits",
        ],
        &rows,
    );
    out.push('\n');
    cap_table(out, &t.caps);
}

fn sweep_block(out: &mut String, s: &SweepTable) {
    let _ = writeln!(out, "sweep of {}: each value run over every input (peaks: the largest of any input)", s.flag);
    let rows: Vec<Vec<String>> = s
        .rows
        .iter()
        .map(|r| {
            vec![
                r.value.clone(),
                size(r.peak_buffered_bytes),
                size(r.peak_reassembly_bytes),
                size(r.peak_conn_reassembly_bytes),
                r.peak_live_flows.to_string(),
                r.peak_heap_bytes.map_or("-".into(), size),
                r.exchanges.to_string(),
                r.exchanges_damaged_by_caps.to_string(),
                r.exchanges_damaged_by_this_cap.to_string(),
                r.hits.to_string(),
            ]
        })
        .collect();
    grid(
        out,
        &[
            "value",
            "peak buffered",
            "peak reassembly",
            "peak per conn",
            "peak conns",
            "peak heap",
            "exchanges",
            "damaged by caps",
            "by this cap",
            "cap hits",
        ],
        &rows,
    );
}

/// The report as text.
pub fn table(r: &Report) -> String {
    table_with(r, false)
}

/// The report as text; `verbose` (`-v`) adds every counter of each input (those at zero too)
/// and shows every point of the timeline instead of [`TABLE_ROWS`].
pub fn table_with(r: &Report, verbose: bool) -> String {
    let mut out = String::new();
    for (i, p) in r.inputs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        input_block(&mut out, p, verbose);
    }
    if let Some(t) = &r.total {
        if r.inputs.len() > 1 {
            out.push('\n');
            corpus_block(&mut out, &r.inputs, t);
        }
        if let Some(rss) = t.peak_rss_bytes {
            let _ = writeln!(out, "\nprocess peak RSS: {}", size(rss));
        }
    }
    for (i, s) in r.sweeps.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        sweep_block(&mut out, s);
    }
    if r.interrupted {
        out.push_str("\ninterrupted: the profile covers what was read before the signal\n");
    }
    out
}

/// The report as JSON (one document, ending with a newline).
pub fn json(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).expect("the report serializes");
    s.push('\n');
    s
}
