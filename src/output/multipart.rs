//! `multipart/form-data` bodies as HAR `postData.params`.

use super::json::write_bytes_str;

/// The parts of a multipart body as a JSON array of HAR params; `None` when the body does not
/// parse as multipart (split as for witnesses: [`crate::ir::body::multipart::parts`]). File
/// parts carry `fileName` and `contentType`; every part has a `value`: its content when that
/// is UTF-8 text, else the empty string (the whole body is in `postData.text`).
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
        // Every part has a `value` (har-to-k6 fails on a file part without one): its text when
        // it is UTF-8, else empty (the bytes are in `postData.text`, base64).
        out.extend_from_slice(b",\"value\":");
        super::json::write_str(&mut out, std::str::from_utf8(p.content).unwrap_or(""));
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
        assert_eq!(v[1]["value"], "", "a binary file part has an empty value, its file name kept");
        assert!(params(b"multipart/form-data", body).is_none());
        assert!(params(b"multipart/form-data; boundary=\"XyZ\"", b"junk").is_none());
    }
}
