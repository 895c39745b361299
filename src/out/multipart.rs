//! `multipart/form-data` bodies as HAR `postData.params`.

use super::json::write_bytes_str;

/// The parts of a multipart body as a JSON array of HAR params; `None` when the body does not
/// parse as multipart (split as for witnesses: [`crate::ir::body::multipart::parts`]). File
/// parts carry `fileName` and `contentType`; their value is kept when it is UTF-8 text.
pub fn params(content_type: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let parts = crate::ir::body::multipart::parts(content_type, body)?;
    let mut out = vec![b'['];
    for (n, p) in parts.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_bytes_str(&mut out, p.name.unwrap_or(b""));
        if let Some(f) = p.filename {
            out.extend_from_slice(b",\"fileName\":");
            write_bytes_str(&mut out, f);
        }
        if let Some(c) = p.content_type {
            out.extend_from_slice(b",\"contentType\":");
            write_bytes_str(&mut out, c);
        }
        if let Ok(text) = std::str::from_utf8(p.content) {
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
