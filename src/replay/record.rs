//! `--record`: the responses received, written as a new HAR baseline.
//!
//! Contract: one entry per exchange that was sent (skipped entries with nothing to send and
//! exchanges not run are left out), in recording order. The request is the recorded request
//! object, unchanged, so the new file replays exactly as the old one; the response is the one
//! received, its body decoded (`text`, or base64 when not UTF-8) and its header fields as
//! received (names in the case received), with the address it came from in
//! `serverIPAddress`. The recorded connection is kept (`connection` and
//! `_apitool.flow`), so a replay of the new file groups requests the same way. An exchange that
//! failed gets status 0 and its error in `_apitool.error`; a body cut at `--max-body` is marked
//! with the same anomaly `convert` uses, so it is not compared later.

use std::io::{self, Write};
use std::time::SystemTime;

use base64::Engine;
use serde_json::{Value, json};

use super::{ExchangeReport, Outcome, RunReport};
use crate::output::har::HarWriter;

fn iso(t: SystemTime) -> String {
    let ns = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let mut b = Vec::new();
    crate::output::time::iso8601(&mut b, crate::capture::Ts(ns));
    String::from_utf8_lossy(&b).into_owned()
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Writes the HAR document: the entries made by [`entry_bytes`] as each exchange ended.
pub fn write_har(w: &mut dyn Write, report: &RunReport) -> io::Result<()> {
    let comment = format!("responses of {} recorded by apitool replay from {}", report.target, report.recording);
    let mut har = HarWriter::new(w, env!("CARGO_PKG_VERSION"), Some(&comment))?;
    for x in &report.exchanges {
        if let Some(bytes) = &x.record {
            har.entry(bytes)?;
        }
    }
    har.finish()?;
    Ok(())
}

/// The baseline entry of an exchange that ended, as compact JSON (made when it ends, so that
/// only these bytes are kept until the end, not the request and the response); `None` for an
/// exchange left out (nothing sent).
pub fn entry_bytes(x: &ExchangeReport) -> io::Result<Option<Vec<u8>>> {
    {
        if matches!(x.outcome, Outcome::NotRun) || (x.received.is_none() && x.error_kind.is_none()) {
            return Ok(None);
        }
        let request = x.request_json.clone().unwrap_or(Value::Null);
        let mut private = json!({ "exchange": x.entry - 1, "anomalies": [] });
        if let Some(f) = &x.flow_json {
            private["flow"] = f.clone();
        }
        let entry = match &x.received {
            Some(got) => {
                let text = std::str::from_utf8(&got.body).ok();
                let mut content = json!({
                    "size": got.body.len(),
                    "mimeType": super::compare::header(&got.headers, "content-type").unwrap_or("x-unknown"),
                });
                if !got.body.is_empty() {
                    match text {
                        Some(t) => content["text"] = Value::String(t.to_string()),
                        None => {
                            content["text"] = Value::String(base64::engine::general_purpose::STANDARD.encode(&got.body));
                            content["encoding"] = Value::String("base64".into());
                        }
                    }
                }
                if got.truncated {
                    private["anomalies"] = json!(["response: body truncated at the decoded size cap"]);
                }
                let headers: Vec<Value> = got.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
                json!({
                    "startedDateTime": iso(got.started),
                    "time": ms(got.elapsed),
                    "request": request,
                    "response": {
                        "status": got.status,
                        "statusText": got.reason,
                        "httpVersion": got.version,
                        "cookies": [],
                        "headers": headers,
                        "content": content,
                        "redirectURL": super::compare::header(&got.headers, "location").unwrap_or(""),
                        "headersSize": -1,
                        "bodySize": got.wire_len,
                    },
                    "cache": {},
                    "timings": {"send": 0, "wait": ms(got.wait), "receive": ms(got.elapsed.saturating_sub(got.wait))},
                    "serverIPAddress": got.server_ip,
                })
            }
            None => {
                private["error"] = Value::String(x.error.clone().unwrap_or_default());
                json!({
                    "startedDateTime": iso(SystemTime::now()),
                    "time": 0,
                    "request": request,
                    "response": {
                        "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
                        "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1, "bodySize": -1,
                    },
                    "cache": {},
                    "timings": {"send": 0, "wait": 0, "receive": 0},
                })
            }
        };
        let mut entry = entry;
        if let Some(c) = &x.connection {
            entry["connection"] = Value::String(c.clone());
        }
        if let Some(got) = x.received.as_ref().filter(|g| !g.trailers.is_empty()) {
            private["trailers"] = got.trailers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
        }
        entry["_apitool"] = private;
        serde_json::to_vec(&entry).map(Some).map_err(io::Error::other)
    }
}
