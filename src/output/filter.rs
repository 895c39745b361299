//! Which exchanges are written: allow and deny lists of regular expressions on the host and
//! the path, applied to both outputs.
//!
//! The host is the Host header without its port (else the server address); the path is the
//! request-target's path without the query (an absolute-form target loses its scheme and
//! authority). An exchange is kept when its host matches one of the allowed host patterns (or
//! none is given) and none of the denied ones, and likewise for its path. A pattern matches
//! anywhere unless anchored (`^api\.`). A response without its request has neither and is kept
//! only when no allow pattern is given.

use regex::Regex;

use crate::proto::http1::Exchange;
use crate::proto::http1::decode::trim;

/// Allow and deny patterns for hosts and paths.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub host_allow: Vec<Regex>,
    pub host_deny: Vec<Regex>,
    pub path_allow: Vec<Regex>,
    pub path_deny: Vec<Regex>,
}

fn passes(allow: &[Regex], deny: &[Regex], v: Option<&str>) -> bool {
    match v {
        Some(v) => (allow.is_empty() || allow.iter().any(|r| r.is_match(v))) && !deny.iter().any(|r| r.is_match(v)),
        None => allow.is_empty(),
    }
}

impl Filter {
    /// Builds a filter from pattern texts; a pattern that starts with `!` denies.
    pub fn from_patterns(hosts: &[String], paths: &[String]) -> Result<Filter, String> {
        let mut f = Filter::default();
        let compile = |p: &str, flag: &str| Regex::new(p).map_err(|e| format!("{flag} {p:?}: {e}"));
        for h in hosts {
            match h.strip_prefix('!') {
                Some(p) => f.host_deny.push(compile(p, "--host")?),
                None => f.host_allow.push(compile(h, "--host")?),
            }
        }
        for p in paths {
            match p.strip_prefix('!') {
                Some(q) => f.path_deny.push(compile(q, "--path")?),
                None => f.path_allow.push(compile(p, "--path")?),
            }
        }
        Ok(f)
    }

    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.host_allow.is_empty() && self.host_deny.is_empty() && self.path_allow.is_empty() && self.path_deny.is_empty()
    }

    /// Whether an exchange is kept.
    pub fn keep(&self, ex: &Exchange) -> bool {
        let req = ex.request.as_ref();
        let host = req.map(|r| {
            let (_, _, authority) = crate::ir::build::split_target(r.head.target());
            match r.head.field("host").map(trim).filter(|h| !h.is_empty()).or(authority) {
                Some(h) => strip_port(&String::from_utf8_lossy(h)).to_string(),
                None => ex.conn.server.addr().to_string(),
            }
        });
        let path = req.map(|r| String::from_utf8_lossy(crate::ir::build::split_target(r.head.target()).0).into_owned());
        passes(&self.host_allow, &self.host_deny, host.as_deref()) && passes(&self.path_allow, &self.path_deny, path.as_deref())
    }
}

/// `host:port` → `host` (`[v6]:port` → `[v6]`).
fn strip_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &h[..end + 2],
            None => h,
        };
    }
    match h.rfind(':') {
        Some(p) if !h[..p].contains(':') && h[p + 1..].bytes().all(|c| c.is_ascii_digit()) => &h[..p],
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(strip_port("a.example:8080"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn allow_and_deny() {
        let f = Filter::from_patterns(&["example\\.com$".into(), "!^internal\\.".into()], &["!^/health".into()]).unwrap();
        assert!(passes(&f.host_allow, &f.host_deny, Some("api.example.com")));
        assert!(!passes(&f.host_allow, &f.host_deny, Some("internal.example.com")));
        assert!(!passes(&f.host_allow, &f.host_deny, Some("other.org")));
        assert!(!passes(&f.host_allow, &f.host_deny, None));
        assert!(passes(&f.path_allow, &f.path_deny, Some("/users")));
        assert!(!passes(&f.path_allow, &f.path_deny, Some("/healthz")));
        assert!(passes(&f.path_allow, &f.path_deny, None));
        assert!(Filter::from_patterns(&["(".into()], &[]).unwrap_err().starts_with("--host"));
    }
}
