//! Path templates: identifier segments of a request path become `{id}`.
//!
//! A segment is an identifier when it is a number, a UUID, a hexadecimal string of 8 or more
//! digits with at least one decimal digit (hashes, object ids: `af3c09…`), or a long random
//! token (16 or more letters, digits, `-` and `_`, with digits among them and no vowel-rich word
//! shape). The rule looks at one segment at a time, never at other witnesses, so the same
//! concrete path always gives the same template, whatever else the capture holds:
//! `/users/1234/orders/af3c09e1` → `/users/{id}/orders/{id}`.

/// The placeholder written for an identifier segment.
pub const PLACEHOLDER: &str = "{id}";

/// Whether a (percent-decoded or raw) path segment is an identifier.
pub fn is_identifier(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if super::formats::is_uuid(b) {
        return true;
    }
    let hex = b.iter().all(u8::is_ascii_hexdigit);
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if hex && b.len() >= 8 && digits > 0 {
        return true;
    }
    if b.len() >= 16 && digits >= 2 && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        // A slug (`release-notes-2024-edition`) is words and numbers between separators; a
        // token mixes letters and digits within its pieces.
        let slug = b.split(|&c| c == b'-' || c == b'_').all(|p| p.iter().all(u8::is_ascii_lowercase) || p.iter().all(u8::is_ascii_digit));
        return !slug;
    }
    false
}

/// The template of `path` (no query) and the identifier segments it replaced, in order.
pub fn template(path: &str) -> (String, Vec<&str>) {
    let mut out = String::with_capacity(path.len());
    let mut ids = Vec::new();
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_identifier(seg) {
            out.push_str(PLACEHOLDER);
            ids.push(seg);
        } else {
            out.push_str(seg);
        }
    }
    (out, ids)
}

/// The name of the `n`-th (from 0) path parameter: `id`, `id_2`, `id_3`…
pub fn param_name(n: usize) -> String {
    if n == 0 { "id".to_string() } else { format!("id_{}", n + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for s in [
            "1234",
            "0",
            "123e4567-e89b-12d3-a456-426614174000",
            "af3c09e1",
            "5f2b8c9e1a4d3b7c6e0f1a2b",
            "d41d8cd98f00b204e9800998ecf8427e",
            "Xk9_2mQpL7vR-4tZ",
        ] {
            assert!(is_identifier(s), "{s}");
        }
        for s in ["", "users", "v1", "api", "deadbeef", "orders", "release-notes-2024-edition", "me", "index.html", "abcdef12"] {
            let id = is_identifier(s);
            if s == "abcdef12" {
                assert!(id, "hex with digits");
            } else {
                assert!(!id, "{s}");
            }
        }
    }

    #[test]
    fn templates_are_consistent() {
        let (t, ids) = template("/users/1234/orders/af3c09e1");
        assert_eq!(t, "/users/{id}/orders/{id}");
        assert_eq!(ids, ["1234", "af3c09e1"]);
        assert_eq!(template("/users/99/orders/0bb1f00d").0, t);
        assert_eq!(template("/api/v1/users").0, "/api/v1/users");
        assert_eq!(template("/").0, "/");
        assert_eq!(template("/a//7/").0, "/a//{id}/");
        assert_eq!(param_name(0), "id");
        assert_eq!(param_name(1), "id_2");
    }
}
