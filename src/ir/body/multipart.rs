//! `multipart/*` bodies: a struct keyed by part name (`form-data`) or by position (`mixed` and
//! the others: `"0"`, `"1"`…), each part parsed by its own Content-Type (a part without one is
//! text, categorised; a file part without one is a sample). A name used by several parts maps
//! to a list of them.

use super::{Ctx, value_of};
use crate::ir::value::Val;
use crate::proto::http1::decode::trim;

/// A parameter of a header value (`boundary=x`, `name="y"`), quotes removed.
pub fn param<'a>(value: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    value.split(|&c| c == b';').skip(1).find_map(|p| {
        let p = trim(p);
        let eq = p.iter().position(|&c| c == b'=')?;
        if !trim(&p[..eq]).eq_ignore_ascii_case(key) {
            return None;
        }
        let v = trim(&p[eq + 1..]);
        Some(v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v))
    })
}

/// One part: its headers' name, file name and content type, and its content.
pub struct Part<'a> {
    pub name: Option<&'a [u8]>,
    pub filename: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub head: &'a [u8],
    pub content: &'a [u8],
}

/// The parts of a multipart body; `None` when it does not parse as multipart.
pub fn parts<'a>(content_type: &[u8], body: &'a [u8]) -> Option<Vec<Part<'a>>> {
    let b = param(content_type, b"boundary")?;
    if b.is_empty() || b.len() > 200 {
        return None;
    }
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(b);
    let starts: Vec<usize> = memchr::memmem::find_iter(body, &delim).collect();
    if starts.len() < 2 {
        return None;
    }
    let mut out = Vec::with_capacity(starts.len() - 1);
    for w in starts.windows(2) {
        let mut part = &body[w[0] + delim.len()..w[1]];
        part = part.strip_prefix(b"\r\n").or_else(|| part.strip_prefix(b"\n")).unwrap_or(part);
        part = part.strip_suffix(b"\r\n").or_else(|| part.strip_suffix(b"\n")).unwrap_or(part);
        let (head_end, sep) = match memchr::memmem::find(part, b"\r\n\r\n") {
            Some(p) => (p, 4),
            None => match memchr::memmem::find(part, b"\n\n") {
                Some(p) => (p, 2),
                // A part without headers: all content.
                None if part.starts_with(b"\r\n") => (0, 2),
                None => return None,
            },
        };
        let head = &part[..head_end];
        let mut p = Part { name: None, filename: None, content_type: None, head, content: &part[head_end + sep..] };
        for line in head.split(|&c| c == b'\n') {
            let line = trim(line);
            let Some(colon) = line.iter().position(|&c| c == b':') else { continue };
            let (k, v) = (&line[..colon], trim(&line[colon + 1..]));
            if k.eq_ignore_ascii_case(b"content-disposition") {
                p.name = param(v, b"name");
                p.filename = param(v, b"filename");
            } else if k.eq_ignore_ascii_case(b"content-type") {
                p.content_type = Some(v);
            }
        }
        out.push(p);
    }
    Some(out)
}

/// A multipart body as a struct, parts nested `depth` levels deep.
pub fn parse(cx: &mut Ctx<'_>, content_type: &[u8], body: &[u8], depth: usize) -> Option<Val> {
    let parts = parts(content_type, body)?;
    let mut fields = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let key = match p.name {
            Some(n) => String::from_utf8_lossy(n).into_owned(),
            None => i.to_string(),
        };
        let sensitive = cx.sensitive_name(&key);
        let v = match (p.content_type, p.filename) {
            (None, None) => Val::Prim(cx.text(p.content, sensitive)),
            (ct, _) => value_of(cx, ct.or(Some(b"application/octet-stream")), p.content, depth + 1, sensitive),
        };
        fields.push((cx.key(&key), v));
    }
    Some(Val::struct_grouped(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_by_type() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n42\r\n--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"kind\":\"upload\"}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.bin\"\r\n\r\n\x00\xff\x01\r\n--XyZ--\r\n";
        let mut cx = Ctx::new(None);
        let d = parse(&mut cx, b"multipart/form-data; boundary=XyZ", body, 0).unwrap();
        let t = crate::ir::body::flat_val(&d);
        for want in ["key: \"n\"", "int64_value { value: 42 }", "key: \"kind\"", "\"upload\"", "key: \"up\"", "bytes_value"] {
            assert!(t.contains(want), "{want} in {t}");
        }
        assert!(parse(&mut cx, b"multipart/form-data", body, 0).is_none());
        assert!(parse(&mut cx, b"multipart/form-data; boundary=Q", body, 0).is_none());
    }

    #[test]
    fn mixed_parts_by_position() {
        let body = b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/json\r\n\r\n[1]\r\n--b--";
        let d = parse(&mut Ctx::new(None), b"multipart/mixed; boundary=\"b\"", body, 0).unwrap();
        let t = crate::ir::body::flat_val(&d);
        assert!(t.contains("key: \"0\"") && t.contains("\"hello\"") && t.contains("key: \"1\"") && t.contains("list {"), "{t}");
    }
}
