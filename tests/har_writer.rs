//! What the HAR writer makes of the forms HAR readers trip over (the capture of
//! `tests/common/edge.rs`): URLs that keep the request-target as sent, the URL of each
//! request-target form, responses without a request, `text` on bodiless responses, a list of
//! content codings, multipart file parts. Expectations are written out by hand; the HAR is
//! also read by the `har` crate and checked by har-validator when it is installed (the
//! consumer programs read it in `tests/consumers.rs`).

mod common;

use serde_json::Value;

use common::*;

/// The capture converted, as JSON (read by the `har` crate and validated on the way).
fn edge_har() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (cap, out) = (dir.path().join("edge.pcap"), dir.path().join("edge.har"));
    edge::write_capture(&cap);
    let o = apitool([std::ffi::OsStr::new("convert"), cap.as_os_str(), "-o".as_ref(), out.as_os_str(), "--quiet".as_ref()]);
    assert!(o.status.success(), "convert failed: {}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    validate_hars(std::slice::from_ref(&out));
    read_har(&bytes, "edge.har")
}

fn entries(har: &Value) -> &Vec<Value> {
    har["log"]["entries"].as_array().unwrap()
}

/// The entry whose raw request-target is `target` (exactly one).
fn by_target<'a>(har: &'a Value, target: &str) -> &'a Value {
    let found: Vec<&Value> = entries(har).iter().filter(|e| e["_apitool"]["target"] == target).collect();
    assert_eq!(found.len(), 1, "one entry has the target {target:?}");
    found[0]
}

fn header<'a>(headers: &'a Value, name: &str) -> Vec<&'a str> {
    headers
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h["value"].as_str().unwrap())
        .collect()
}

#[test]
fn urls_keep_the_request_target_as_sent() {
    let har = edge_har();
    // Punctuation that URL parsers complain about but can hold stays as it was sent.
    let e = by_target(&har, "/a|b\\c^d{e}\"f<g>h`i?x=1|2&y={z}");
    assert_eq!(e["request"]["url"], "http://api.test/a|b\\c^d{e}\"f<g>h`i?x=1|2&y={z}");
    let q = &e["request"]["queryString"];
    assert_eq!((q[0]["name"].as_str(), q[0]["value"].as_str()), (Some("x"), Some("1|2")));
    assert_eq!((q[1]["name"].as_str(), q[1]["value"].as_str()), (Some("y"), Some("{z}")));
    // Non-ASCII bytes, DEL and controls cannot be in a URL: percent-encoded, byte by byte.
    let e = by_target(&har, "/caf\u{e9}/\u{7f}?q=\u{1}");
    assert_eq!(e["request"]["url"], "http://api.test/caf%C3%A9/%7F?q=%01");
    // No Host header: the server's address and its port.
    assert_eq!(by_target(&har, "/x")["request"]["url"], "http://203.0.113.31:8080/x");
}

#[test]
fn every_request_target_form_has_a_url() {
    let har = edge_har();
    let connect = by_target(&har, "api.test:443");
    assert_eq!(
        (connect["request"]["method"].as_str(), connect["request"]["url"].as_str()),
        (Some("CONNECT"), Some("https://api.test:443"))
    );
    assert_eq!(connect["response"]["status"], 200);
    assert_eq!(by_target(&har, "api.test:8443")["request"]["url"], "http://api.test:8443");
    // OPTIONS *: the origin, path `/`; the raw target is in _apitool.
    let star = by_target(&har, "*");
    assert_eq!((star["request"]["method"].as_str(), star["request"]["url"].as_str()), (Some("OPTIONS"), Some("http://api.test/")));
    // A request line without a target: the parser takes the version for the target (as
    // tshark does); the URL is the origin's and the version is the version.
    let bare = by_target(&har, "HTTP/1.1");
    let r = &bare["request"];
    assert_eq!(
        (r["method"].as_str(), r["url"].as_str(), r["httpVersion"].as_str()),
        (Some("OPTIONS"), Some("http://api.test/"), Some("HTTP/1.1"))
    );
    assert_eq!(bare["response"]["status"], 400);
}

#[test]
fn responses_without_a_request_are_kept() {
    let har = edge_har();
    let orphans: Vec<&Value> = entries(&har).iter().filter(|e| e["_apitool"]["noRequest"] == true).collect();
    let urls: Vec<&str> = orphans.iter().map(|e| e["request"]["url"].as_str().unwrap()).collect();
    assert_eq!(urls, ["http://203.0.113.40/", "http://203.0.113.41:8080/"], "no :80, the port otherwise");
    for e in orphans {
        assert_eq!(e["request"]["method"], "GET", "a method every HAR reader takes");
        assert!(e["request"]["comment"].as_str().unwrap().contains("not captured"));
        assert!(e["_apitool"].get("target").is_none());
        assert!(e["_apitool"]["anomalies"].as_array().unwrap().iter().any(|a| a == "no request"));
        assert_eq!((e["response"]["status"].as_u64(), e["response"]["content"]["text"].as_str()), (Some(200), Some("orphan")));
    }
    // Only those two.
    assert_eq!(entries(&har).iter().filter(|e| e["_apitool"].get("target").is_none()).count(), 2);
}

#[test]
fn bodiless_responses_have_an_empty_text() {
    let har = edge_har();
    for target in ["/head", "/nothing", "api.test:443", "*"] {
        let c = &by_target(&har, target)["response"]["content"];
        assert_eq!((c["text"].as_str(), c["size"].as_u64()), (Some(""), Some(0)), "{target}: {c}");
        assert!(c.get("encoding").is_none(), "{target}");
    }
    // HEAD: the Content-Length the server declared stays in the headers; the body is empty.
    let head = &by_target(&har, "/head")["response"];
    assert_eq!(header(&head["headers"], "content-length"), ["5"]);
    assert_eq!(head["bodySize"], 0);
}

#[test]
fn a_list_of_content_codings_moves_to_apitool() {
    let har = edge_har();
    let e = by_target(&har, "/gzip-br");
    let r = &e["response"];
    assert_eq!(har_text_bytes(&r["content"]).unwrap(), edge::CODED_BODY);
    assert_eq!(r["content"]["size"], edge::CODED_BODY.len());
    assert!(header(&r["headers"], "content-encoding").is_empty(), "the decoded text no longer has those codings");
    assert_eq!(e["_apitool"]["contentEncoding"], "gzip, br");
    // The response's head is still counted as sent.
    assert!(r["headersSize"].as_u64().unwrap() > 0);
    // One coding that readers apply again stays, as browsers' HAR exports have it.
    let e = by_target(&har, "/gzip");
    assert_eq!(har_text_bytes(&e["response"]["content"]).unwrap(), edge::CODED_BODY);
    assert_eq!(header(&e["response"]["headers"], "content-encoding"), ["gzip"]);
    assert!(e["_apitool"].get("contentEncoding").is_none());
}

#[test]
fn multipart_file_parts_have_a_value() {
    let har = edge_har();
    let pd = &by_target(&har, "/upload")["request"]["postData"];
    let params = pd["params"].as_array().unwrap();
    assert_eq!(params.len(), 2);
    assert_eq!((params[0]["name"].as_str(), params[0]["value"].as_str()), (Some("note"), Some("hello")));
    assert_eq!(params[1]["name"], "up");
    assert_eq!(params[1]["fileName"], "blob.bin");
    assert_eq!(params[1]["value"], "", "binary content: an empty value, the bytes are in text");
    let body = har_text_bytes(pd).unwrap();
    assert!(body.windows(edge::FILE_PART.len()).any(|w| w == edge::FILE_PART));
}
