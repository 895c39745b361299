//! A capture of the request and response forms that HAR readers trip over, made in-process
//! with the crate's TCP simulator (`apitool::synth`): request-targets with bytes a URL parser
//! would change or refuse, the four request-target forms, a request line without a target,
//! responses without a request, bodiless responses, a list of content codings, and a
//! multipart upload with a binary file part.

use std::io::{BufWriter, Write};
use std::path::Path;

use apitool::synth::http::{brotli_fast, gzip_fast};
use apitool::synth::pcap::{CaptureFormat, PcapOptions};
use apitool::synth::tcp::{Dir, TcpConfig, TcpConn};

/// The decoded body of the `gzip, br` and `gzip` responses.
pub const CODED_BODY: &[u8] = b"{\"coded\": \"twice, then once\"}";

/// The binary content of the multipart file part.
pub const FILE_PART: &[u8] = b"\x00\xff\xfe binary \x80";

/// One connection: its server, then (request, response) pairs; an empty request sends only the
/// response, an empty response leaves the request unanswered.
struct Conn {
    server: &'static str,
    exchanges: Vec<(Vec<u8>, Vec<u8>)>,
}

fn resp(status_line: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status_line}\r\n{headers}\r\n").into_bytes();
    r.extend_from_slice(body);
    r
}

fn ok(body: &[u8]) -> Vec<u8> {
    resp("200 OK", &format!("Content-Length: {}\r\n", body.len()), body)
}

fn conns() -> Vec<Conn> {
    let gz_br = brotli_fast(&gzip_fast(CODED_BODY));
    let gz = gzip_fast(CODED_BODY);
    let mut multipart = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"blob.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    multipart.extend_from_slice(FILE_PART);
    multipart.extend_from_slice(b"\r\n--XyZ--\r\n");
    let mut upload = format!(
        "POST /upload HTTP/1.1\r\nHost: api.test\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
        multipart.len()
    )
    .into_bytes();
    upload.extend_from_slice(&multipart);
    let get = |target: &[u8]| [b"GET ".as_slice(), target, b" HTTP/1.1\r\nHost: api.test\r\n\r\n"].concat();
    vec![
        Conn {
            server: "203.0.113.10:80",
            exchanges: vec![
                (get(b"/a|b\\c^d{e}\"f<g>h`i?x=1|2&y={z}"), ok(b"one")),
                (get(b"/caf\xc3\xa9/\x7f?q=\x01"), ok(b"two")),
                (b"OPTIONS * HTTP/1.1\r\nHost: api.test\r\n\r\n".to_vec(), ok(b"")),
                (b"HEAD /head HTTP/1.1\r\nHost: api.test\r\n\r\n".to_vec(), resp("200 OK", "Content-Length: 5\r\n", b"")),
                (get(b"/nothing"), resp("204 No Content", "", b"")),
                (get(b"/gzip-br"), resp("200 OK", &format!("Content-Encoding: gzip, br\r\nContent-Length: {}\r\n", gz_br.len()), &gz_br)),
                (get(b"/gzip"), resp("200 OK", &format!("Content-Encoding: gzip\r\nContent-Length: {}\r\n", gz.len()), &gz)),
                (upload, ok(b"stored")),
            ],
        },
        Conn {
            server: "203.0.113.20:3128",
            exchanges: vec![(
                b"CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
            )],
        },
        Conn {
            server: "203.0.113.21:3128",
            exchanges: vec![(
                b"CONNECT api.test:8443 HTTP/1.1\r\nHost: api.test:8443\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
            )],
        },
        // A request line with a method and a version, no target.
        Conn {
            server: "203.0.113.30:80",
            exchanges: vec![(
                b"OPTIONS HTTP/1.1\r\nHost: api.test\r\n\r\n".to_vec(),
                resp("400 Bad Request", "Content-Length: 0\r\n", b""),
            )],
        },
        // No Host header: the URL names the server, with its port unless it is 80.
        Conn { server: "203.0.113.31:8080", exchanges: vec![(b"GET /x HTTP/1.1\r\n\r\n".to_vec(), ok(b"x"))] },
        // Responses whose request is not in the capture.
        Conn { server: "203.0.113.40:80", exchanges: vec![(Vec::new(), ok(b"orphan"))] },
        Conn { server: "203.0.113.41:8080", exchanges: vec![(Vec::new(), ok(b"orphan"))] },
    ]
}

/// Writes the capture (pcap, Ethernet, µs) to `path`.
pub fn write_capture(path: &Path) {
    let file = std::fs::File::create(path).expect("create capture");
    let mut w = CaptureFormat::Pcap(PcapOptions::default()).writer(BufWriter::new(file)).expect("capture writer");
    let mut t = 1_700_000_000_000_000_000u64;
    for (i, c) in conns().into_iter().enumerate() {
        let client = format!("10.9.0.{}:{}", 1 + i, 41_000 + i).parse().unwrap();
        let mut conn = TcpConn::new(client, c.server.parse().unwrap(), 0, TcpConfig::default(), 1_000, 9_000_000);
        t = conn.handshake(t);
        for (req, res) in &c.exchanges {
            if !req.is_empty() {
                t = conn.send(Dir::ToServer, req, t + 1_000_000);
            }
            if !res.is_empty() {
                t = conn.send(Dir::ToClient, res, t + 1_000_000);
            }
        }
        t = conn.fin(Dir::ToClient, t + 1_000_000);
        while conn.emit_next(&mut w).expect("write packet") {}
        t += 10_000_000;
    }
    w.into_inner().flush().expect("flush capture");
}
