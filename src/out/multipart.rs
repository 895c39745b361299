//! `multipart/form-data` bodies as HAR `postData.params`.

use super::json::write_bytes_str;

/// The boundary parameter of a multipart Content-Type.
fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    content_type.split(|&c| c == b';').skip(1).find_map(|p| {
        let p = crate::http::decode::trim(p);
        let eq = p.iter().position(|&c| c == b'=')?;
        if !p[..eq].eq_ignore_ascii_case(b"boundary") {
            return None;
        }
        let v = crate::http::decode::trim(&p[eq + 1..]);
        Some(v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v))
    })
}

/// A parameter of a Content-Disposition value (`name="x"`).
fn disposition_param<'a>(cd: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    cd.split(|&c| c == b';').skip(1).find_map(|p| {
        let p = crate::http::decode::trim(p);
        let eq = p.iter().position(|&c| c == b'=')?;
        if !crate::http::decode::trim(&p[..eq]).eq_ignore_ascii_case(key) {
            return None;
        }
        let v = crate::http::decode::trim(&p[eq + 1..]);
        Some(v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v))
    })
}

/// The parts of a multipart body as a JSON array of HAR params; `None` when the body does not
/// parse as multipart. File parts carry `fileName` and `contentType`; their value is kept when
/// it is UTF-8 text.
pub fn params(content_type: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let b = boundary(content_type)?;
    if b.is_empty() {
        return None;
    }
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(b);
    let finder = memchr::memmem::Finder::new(&delim);
    let starts: Vec<usize> = finder.find_iter(body).collect();
    if starts.len() < 2 {
        return None;
    }
    let mut out = vec![b'['];
    let mut n = 0;
    for w in starts.windows(2) {
        let mut part = &body[w[0] + delim.len()..w[1]];
        part = part.strip_prefix(b"\r\n").or_else(|| part.strip_prefix(b"\n")).unwrap_or(part);
        part = part.strip_suffix(b"\r\n").or_else(|| part.strip_suffix(b"\n")).unwrap_or(part);
        let (head_end, sep) = match memchr::memmem::find(part, b"\r\n\r\n") {
            Some(p) => (p, 4),
            None => (memchr::memmem::find(part, b"\n\n")?, 2),
        };
        let head = &part[..head_end];
        let value = &part[head_end + sep..];
        let mut name = None;
        let mut file = None;
        let mut ctype = None;
        for line in head.split(|&c| c == b'\n') {
            let line = crate::http::decode::trim(line);
            let Some(colon) = line.iter().position(|&c| c == b':') else { continue };
            let (k, v) = (&line[..colon], crate::http::decode::trim(&line[colon + 1..]));
            if k.eq_ignore_ascii_case(b"content-disposition") {
                name = disposition_param(v, b"name");
                file = disposition_param(v, b"filename");
            } else if k.eq_ignore_ascii_case(b"content-type") {
                ctype = Some(v);
            }
        }
        if n > 0 {
            out.push(b',');
        }
        n += 1;
        out.extend_from_slice(b"{\"name\":");
        write_bytes_str(&mut out, name.unwrap_or(b""));
        if let Some(f) = file {
            out.extend_from_slice(b",\"fileName\":");
            write_bytes_str(&mut out, f);
        }
        if let Some(c) = ctype {
            out.extend_from_slice(b",\"contentType\":");
            write_bytes_str(&mut out, c);
        }
        if let Ok(text) = std::str::from_utf8(value) {
            out.extend_from_slice(b",\"value\":");
            super::json::write_str(&mut out, text);
        }
        out.push(b'}');
    }
    out.push(b']');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_become_params() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue 1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\x01\r\n--XyZ--\r\n";
        let p = params(b"multipart/form-data; boundary=XyZ", body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v[0]["name"], "field");
        assert_eq!(v[0]["value"], "value 1");
        assert_eq!(v[1]["fileName"], "a.bin");
        assert_eq!(v[1]["contentType"], "application/octet-stream");
        assert!(v[1].get("value").is_none());
        assert!(params(b"multipart/form-data", body).is_none());
        assert!(params(b"multipart/form-data; boundary=\"XyZ\"", b"junk").is_none());
    }
}
