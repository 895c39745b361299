//! The report of a run: text for people, JSON for programs, JUnit XML for CI systems.
//!
//! Contract: all three show the same exchanges in recording order. Text: one line per
//! changed, failed or skipped exchange (every exchange with `--verbose`), its
//! differences and notes indented below, then one line of counts; ANSI colour only when
//! asked. JSON: [`RunReport`] as it is. JUnit: one `testcase` per exchange; a change is a
//! `failure`, a failed request an `error`, skipped and not run are `skipped`; text that XML
//! cannot hold (control characters) is replaced, so the document is always well-formed.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{ExchangeReport, Outcome, RunReport, Verbosity};
use crate::replay::compare::Difference;

const RESET: &str = "\x1b[0m";
const BOLD_RED: &str = "\x1b[1;31m";
const BOLD_YELLOW: &str = "\x1b[1;33m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";

fn paint(s: &str, color: &str, on: bool) -> String {
    if on { format!("{color}{s}{RESET}") } else { s.to_string() }
}

fn secs(ms: f64) -> String {
    format!("{:.2}s", ms / 1e3)
}

/// The closing line: `12 exchanges: 9 unchanged, 2 changed, 1 failed (against URL, 0.42s)`.
pub fn summary_line(r: &RunReport) -> String {
    let c = &r.counts;
    let mut s = format!(
        "{} exchange{}: {} unchanged, {} changed, {} failed",
        c.exchanges,
        if c.exchanges == 1 { "" } else { "s" },
        c.unchanged,
        c.changed,
        c.failed
    );
    if c.skipped > 0 {
        let _ = write!(s, ", {} skipped", c.skipped);
    }
    if c.not_run > 0 {
        let _ = write!(s, ", {} not run", c.not_run);
    }
    if c.filtered_out > 0 {
        let _ = write!(s, " ({} filtered out)", c.filtered_out);
    }
    let _ = write!(s, " replaying {} against {} in {}", r.recording, r.target, secs(r.duration_ms));
    if r.interrupted {
        s.push_str("; interrupted");
    }
    s
}

fn diff_line(d: &Difference, color: bool) -> String {
    format!("{}: {} -> {}", d.what(), paint(&d.show_side(&d.recorded), RED, color), paint(&d.show_side(&d.received), GREEN, color))
}

/// The text report.
pub fn text(r: &RunReport, color: bool, verbosity: Verbosity) -> String {
    let mut out = String::new();
    if verbosity != Verbosity::Quiet {
        for x in &r.exchanges {
            if matches!(x.outcome, Outcome::Unchanged | Outcome::NotRun) && verbosity != Verbosity::Verbose {
                continue;
            }
            let label_color = match x.outcome {
                Outcome::Changed => BOLD_YELLOW,
                Outcome::Failed => BOLD_RED,
                Outcome::Unchanged => GREEN,
                Outcome::Skipped | Outcome::NotRun => DIM,
            };
            let label = paint(&format!("{:<8}", x.outcome.label()), label_color, color);
            let mut head = format!("{label} {}", x.title());
            if let Some(c) = &x.connection {
                let _ = write!(head, "  [connection {c}]");
            }
            if let (Some(a), Some(b)) = (x.recorded_status, x.received_status)
                && a == b
                && x.outcome != Outcome::Unchanged
            {
                let _ = write!(head, "  {a}");
            }
            let _ = writeln!(out, "{}", head.trim_end());
            if let Some(e) = &x.error {
                let _ = writeln!(out, "    {e}");
            }
            for d in &x.differences {
                let _ = writeln!(out, "    {}", diff_line(d, color));
            }
            if x.more_differences > 0 {
                let _ = writeln!(out, "    ... and {} more differences", x.more_differences);
            }
            for n in &x.notes {
                let _ = writeln!(out, "    {}", paint(&format!("note: {n}"), DIM, color));
            }
        }
    }
    let _ = writeln!(out, "{}", summary_line(r));
    out
}

/// The JSON report.
pub fn write_json(w: &mut dyn Write, r: &RunReport) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, r).map_err(io::Error::other)?;
    w.write_all(b"\n")
}

/// Appends `s` escaped for XML text (`attr`: for an attribute value). Characters XML 1.0
/// cannot hold become U+FFFD.
fn xml(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' if attr => out.push_str("&#13;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn attr(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"");
    xml(out, value, true);
    out.push('"');
}

/// What a failing test case says: every difference, error and note, one a line.
fn details(x: &ExchangeReport) -> String {
    let mut s = String::new();
    if let Some(e) = &x.error {
        let _ = writeln!(s, "{e}");
    }
    for d in &x.differences {
        let _ = writeln!(s, "{}", d.describe());
    }
    if x.more_differences > 0 {
        let _ = writeln!(s, "... and {} more differences", x.more_differences);
    }
    for n in &x.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(s, "recorded URL: {}", x.url);
    s
}

/// The JUnit XML report: one test suite, one test case per exchange.
pub fn junit(r: &RunReport) -> String {
    let c = &r.counts;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
    let time = format!("{:.3}", r.duration_ms / 1e3);
    let skipped = (c.skipped + c.not_run).to_string();
    attr(&mut out, "name", "apitool replay");
    attr(&mut out, "tests", &c.exchanges.to_string());
    attr(&mut out, "failures", &c.changed.to_string());
    attr(&mut out, "errors", &c.failed.to_string());
    attr(&mut out, "skipped", &skipped);
    attr(&mut out, "time", &time);
    out.push_str(">\n  <testsuite");
    attr(&mut out, "name", &format!("replay {} against {}", r.recording, r.target));
    attr(&mut out, "tests", &c.exchanges.to_string());
    attr(&mut out, "failures", &c.changed.to_string());
    attr(&mut out, "errors", &c.failed.to_string());
    attr(&mut out, "skipped", &skipped);
    attr(&mut out, "time", &time);
    attr(&mut out, "timestamp", r.started.trim_end_matches('Z').split('.').next().unwrap_or(""));
    out.push_str(">\n");
    for x in &r.exchanges {
        out.push_str("    <testcase");
        attr(&mut out, "name", &x.title());
        let class = match &x.connection {
            Some(c) => format!("replay.connection-{}", c.replace('.', "_")),
            None => "replay".to_string(),
        };
        attr(&mut out, "classname", &class);
        attr(&mut out, "time", &format!("{:.3}", x.time_ms.unwrap_or(0.0) / 1e3));
        match x.outcome {
            Outcome::Unchanged => out.push_str("/>\n"),
            Outcome::Changed => {
                out.push_str(">\n      <failure");
                let first = x.differences.first().map(Difference::describe).unwrap_or_default();
                let n = x.differences.len() + x.more_differences;
                let msg = if n > 1 { format!("{first} (and {} more)", n - 1) } else { first };
                attr(&mut out, "message", &msg);
                attr(&mut out, "type", "changed");
                out.push('>');
                xml(&mut out, &details(x), false);
                out.push_str("</failure>\n    </testcase>\n");
            }
            Outcome::Failed => {
                out.push_str(">\n      <error");
                attr(&mut out, "message", x.error.as_deref().unwrap_or("failed"));
                attr(&mut out, "type", x.error_kind.unwrap_or("failed"));
                out.push('>');
                xml(&mut out, &details(x), false);
                out.push_str("</error>\n    </testcase>\n");
            }
            Outcome::Skipped | Outcome::NotRun => {
                out.push_str(">\n      <skipped");
                attr(&mut out, "message", x.error.as_deref().unwrap_or("skipped"));
                out.push_str("/>\n    </testcase>\n");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escaping() {
        let mut s = String::new();
        xml(&mut s, "a<b>&\"'\u{1}\n", true);
        assert_eq!(s, "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}&#10;");
        s.clear();
        xml(&mut s, "x\ny\u{0}", false);
        assert_eq!(s, "x\ny\u{FFFD}");
    }
}
