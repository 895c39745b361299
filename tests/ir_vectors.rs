//! The witness IR against the shared test vectors: derived hash values, the map keys of the
//! `generalize_witnesses` files (each the hash of the `Data` it keys), prost wire round trips
//! and text-format round trips.

use std::path::{Path, PathBuf};

use apitool::ir::hash::{Digest, ObjectHasher, digest, digest_text};
use apitool::ir::pb::{self, data, http_body, http_meta, primitive};
use apitool::ir::text;
use apitool::ir::visit::{Context, Visitor, Walk, Walker};
use prost::Message;

/// The vector folder, or `None` (with a notice) when this checkout has no `shared/` beside it.
fn vector_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ir-vectors/generalize_witnesses");
    if dir.is_dir() {
        Some(dir)
    } else {
        {
            // Past the test harness's capture, so the skip shows in the normal output.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "notice: {} not found; skipping the vector files", dir.display());
        }
        None
    }
}

enum Doc {
    Witness(pb::Witness),
    Spec(pb::ApiSpec),
}

impl Doc {
    fn methods(&self) -> Vec<&pb::Method> {
        match self {
            Doc::Witness(w) => w.method.iter().collect(),
            Doc::Spec(s) => s.methods.iter().collect(),
        }
    }
}

/// Every `*.pb.txt` file in the vector folder, parsed (a spec when its top field is `methods`).
fn load_all(dir: &Path) -> Vec<(String, String, Doc)> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("read vector dir")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("utf-8 name"))
        .filter(|n| n.ends_with(".pb.txt"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no vector files in {}", dir.display());
    names
        .into_iter()
        .map(|name| {
            let src = std::fs::read_to_string(dir.join(&name)).expect("read vector");
            let doc = if src.trim_start().starts_with("methods") {
                Doc::Spec(text::parse(&src).unwrap_or_else(|e| panic!("{name}:{e}")))
            } else {
                Doc::Witness(text::parse(&src).unwrap_or_else(|e| panic!("{name}:{e}")))
            };
            (name, src, doc)
        })
        .collect()
}

fn prim(v: primitive::Value) -> pb::Primitive {
    pb::Primitive { value: Some(v), ..Default::default() }
}

#[test]
#[expect(clippy::approx_constant, reason = "the vector is -3.14, not pi")]
fn derived_vectors() {
    assert_eq!(digest(&pb::Witness::default()).to_text(), "UADY8pB9FOQ=");
    assert_eq!(digest(&pb::Witness::default()).bytes(), 0x5000d8f2907d14e4u64.to_be_bytes());
    let cases: Vec<(pb::Primitive, &str)> = vec![
        (prim(primitive::Value::StringValue(pb::Str { r#type: None, value: "abcdef".into() })), "kd067C5DRVk="),
        (prim(primitive::Value::Int64Value(pb::Int64 { r#type: None, value: 5 })), "uDlKaeFIkV4="),
        (prim(primitive::Value::Int32Value(pb::Int32 { r#type: None, value: -3 })), "MQgu5UbUaZ0="),
        (prim(primitive::Value::BoolValue(pb::Bool { r#type: None, value: true })), "0iQVr6-wwpU="),
        (prim(primitive::Value::DoubleValue(pb::Double { r#type: None, value: 1.1e-100 })), "_3ue0fe-Mjo="),
        (prim(primitive::Value::FloatValue(pb::Float { r#type: None, value: -3.14 })), "jboDaRIg2eI="),
    ];
    for (p, want) in &cases {
        assert_eq!(digest_text(p), *want, "{p:?}");
    }
    let body = pb::HttpBody { content_type: http_body::ContentType::Json.into(), other_type: String::new() };
    assert_eq!(digest_text(&body), "z1bxymQT9Io=");
    let meta = pb::HttpMeta { location: Some(http_meta::Location::Body(body)), response_code: 200 };
    assert_eq!(digest_text(&meta), "YVmET_al_WU=");

    // The same values read from text.
    let p: pb::Primitive = text::parse("string_value { value: \"abc\" 'def' }").unwrap();
    assert_eq!(digest_text(&p), "kd067C5DRVk=");
    let p: pb::Primitive = text::parse("float_value: < value: -3.14 >").unwrap();
    assert_eq!(digest_text(&p), "jboDaRIg2eI=");
    let m: pb::HttpMeta = text::parse("body { content_type: JSON } response_code: 200").unwrap();
    assert_eq!(digest_text(&m), "YVmET_al_WU=");
}

#[derive(Default)]
struct KeyCheck {
    args: usize,
    responses: usize,
    options: usize,
    mismatches: Vec<(String, String, String)>,
}

impl KeyCheck {
    fn check(&mut self, h: &mut ObjectHasher, file: &str, key: &str, d: &pb::Data) {
        let got = h.digest(d).to_text();
        if got != key {
            self.mismatches.push((file.to_owned(), key.to_owned(), got));
        }
    }

    fn method(&mut self, h: &mut ObjectHasher, file: &str, m: &pb::Method) {
        for (k, d) in &m.args {
            self.args += 1;
            self.check(h, file, k, d);
            self.data(h, file, d);
        }
        for (k, d) in &m.responses {
            self.responses += 1;
            self.check(h, file, k, d);
            self.data(h, file, d);
        }
    }

    fn data(&mut self, h: &mut ObjectHasher, file: &str, d: &pb::Data) {
        match &d.value {
            Some(data::Value::Struct(s)) => {
                for v in s.fields.values() {
                    self.data(h, file, v);
                }
                if let Some(mt) = &s.map_type {
                    for v in mt.key.iter().chain(mt.value.iter()) {
                        self.data(h, file, v);
                    }
                }
            }
            Some(data::Value::List(l)) => {
                for v in &l.elems {
                    self.data(h, file, v);
                }
            }
            Some(data::Value::Optional(o)) => {
                if let Some(pb::optional::Value::Data(v)) = &o.value {
                    self.data(h, file, v);
                }
            }
            Some(data::Value::Oneof(o)) => {
                for (k, v) in &o.options {
                    self.options += 1;
                    self.check(h, file, k, v);
                    self.data(h, file, v);
                }
            }
            Some(data::Value::Primitive(_)) | None => {}
        }
    }
}

#[test]
fn vector_map_keys_are_hashes_of_their_data() {
    let Some(dir) = vector_dir() else { return };
    let docs = load_all(&dir);
    assert_eq!(docs.len(), 17);
    let mut c = KeyCheck::default();
    let mut h = ObjectHasher::new();
    for (name, _, doc) in &docs {
        for m in doc.methods() {
            c.method(&mut h, name, m);
        }
    }
    let total = c.args + c.responses + c.options;
    eprintln!(
        "map keys: {} args + {} responses + {} options = {total}; {} match, mismatches: {:?}",
        c.args,
        c.responses,
        c.options,
        total - c.mismatches.len(),
        c.mismatches
    );
    assert_eq!((c.args, c.responses, c.options), (135, 277, 4));
    assert_eq!(total, 416);
    assert_eq!(total - c.mismatches.len(), 415);
    assert_eq!(c.mismatches.len(), 1);
    let (file, key, _) = &c.mismatches[0];
    assert_eq!((file.as_str(), key.as_str()), ("spec.pb.txt", "va5tP-fnZF8="));

    // The stale key is the hash of primitive{uint64_value{}}, not of the int64 stored.
    let stale =
        pb::Data { value: Some(data::Value::Primitive(prim(primitive::Value::Uint64Value(pb::Uint64::default())))), ..Default::default() };
    assert_eq!(digest_text(&stale), "va5tP-fnZF8=");
}

#[test]
fn vector_witnesses_wire_round_trip() {
    let Some(dir) = vector_dir() else { return };
    for (name, _, doc) in load_all(&dir) {
        match doc {
            Doc::Witness(w) => {
                let bytes = w.encode_to_vec();
                let back = pb::Witness::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(back, w, "{name}");
                assert_eq!(back.encode_to_vec(), bytes, "{name}: re-encoding differs");
                assert_eq!(digest(&back), digest(&w));
            }
            Doc::Spec(s) => {
                let bytes = s.encode_to_vec();
                let back = pb::ApiSpec::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(back, s, "{name}");
            }
        }
    }
}

#[test]
fn vector_text_round_trip() {
    let Some(dir) = vector_dir() else { return };
    for (name, _, doc) in load_all(&dir) {
        match doc {
            Doc::Witness(w) => {
                let t = text::to_text(&w);
                let back: pb::Witness = text::parse(&t).unwrap_or_else(|e| panic!("{name}: {e}\n{t}"));
                assert_eq!(back, w, "{name}");
                assert_eq!(text::to_text(&back), t, "{name}: printing is not stable");
            }
            Doc::Spec(s) => {
                let t = text::to_text(&s);
                let back: pb::ApiSpec = text::parse(&t).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(back, s, "{name}");
            }
        }
    }
}

/// Reads a varint at `*at`.
fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let x = b[*at];
        *at += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// Splits a message into (field number, wire type, payload bytes or varint value).
fn fields(b: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at);
        let (num, wt) = (key >> 3, key & 7);
        let payload = match wt {
            0 => varint(b, &mut at).to_le_bytes().to_vec(),
            1 => {
                at += 8;
                b[at - 8..at].to_vec()
            }
            2 => {
                let n = varint(b, &mut at) as usize;
                at += n;
                b[at - n..at].to_vec()
            }
            5 => {
                at += 4;
                b[at - 4..at].to_vec()
            }
            _ => panic!("unexpected wire type {wt}"),
        };
        out.push((num, wt, payload));
    }
    out
}

#[test]
fn wire_layout_spot_checks() {
    // Witness{method{id{name:"m" api_type:HTTP_REST} args{"k": Data{...}} meta{http{method:"GET"}}}}
    let mut args = std::collections::BTreeMap::new();
    args.insert(
        "k".to_string(),
        pb::Data {
            value: Some(data::Value::Primitive(pb::Primitive {
                value: Some(primitive::Value::FloatValue(pb::Float { r#type: None, value: 1.5 })),
                format_kind: "x".into(),
                ..Default::default()
            })),
            meta: Some(pb::DataMeta {
                meta: Some(pb::data_meta::Meta::Http(pb::HttpMeta {
                    location: Some(http_meta::Location::Auth(pb::HttpAuth { r#type: 2 })),
                    response_code: -1,
                })),
            }),
            nullable: true,
            ..Default::default()
        },
    );
    let w = pb::Witness {
        method: Some(pb::Method {
            id: Some(pb::MethodId { name: "m".into(), api_type: pb::ApiType::HttpRest.into() }),
            args,
            responses: Default::default(),
            meta: Some(pb::MethodMeta {
                meta: Some(pb::method_meta::Meta::Http(pb::HttpMethodMeta { method: "GET".into(), ..Default::default() })),
            }),
        }),
    };
    let bytes = w.encode_to_vec();
    assert_eq!(bytes[0], 0x0a, "Witness.method is field 1, length-delimited");
    let top = fields(&bytes);
    assert_eq!(top.len(), 1);
    let method = fields(&top[0].2);
    let nums: Vec<_> = method.iter().map(|(n, wt, _)| (*n, *wt)).collect();
    assert_eq!(nums, vec![(1, 2), (2, 2), (4, 2)]);
    // MethodID: name [1] "m", api_type [2] varint 1.
    assert_eq!(method[0].2, vec![0x0a, 0x01, b'm', 0x10, 0x01]);
    // A map entry: key [1], value [2].
    let entry = fields(&method[1].2);
    assert_eq!(entry[0], (1, 2, b"k".to_vec()));
    let data = fields(&entry[1].2);
    let nums: Vec<_> = data.iter().map(|(n, wt, _)| (*n, *wt)).collect();
    assert_eq!(nums, vec![(1, 2), (5, 2), (7, 0)]);
    // Primitive.float_value [10] holding Float.value [2] as fixed32; format_kind [14].
    let p = fields(&data[0].2);
    assert_eq!(p[0].0, 10);
    assert_eq!(p[0].2, [vec![0x15], 1.5f32.to_le_bytes().to_vec()].concat());
    assert_eq!(p[1], (14, 2, b"x".to_vec()));
    // DataMeta.http [2] -> HTTPMeta { auth [8] { type [1] = 2 }; response_code [7] = -1 (a
    // 10-byte varint) }. prost writes a oneof where the struct declares it, so auth [8] comes
    // before response_code [7]; decoders accept fields in any order.
    let dm = fields(&data[1].2);
    assert_eq!((dm[0].0, dm[0].1), (2, 2));
    let hm = fields(&dm[0].2);
    assert_eq!(hm[0], (8, 2, vec![0x08, 0x02]));
    assert_eq!((hm[1].0, hm[1].1), (7, 0));
    assert_eq!(u64::from_le_bytes(hm[1].2.clone().try_into().unwrap()), u64::MAX);
    let mut reordered = vec![0x38];
    reordered.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    reordered.extend_from_slice(&[0x42, 0x02, 0x08, 0x02]);
    let d = pb::HttpMeta::decode(reordered.as_slice()).unwrap();
    assert_eq!(d.response_code, -1);
    assert_eq!(d.location, Some(http_meta::Location::Auth(pb::HttpAuth { r#type: 2 })));
    // MethodMeta.http [2] -> HTTPMethodMeta.method [1].
    assert_eq!(method[2].2, vec![0x12, 0x05, 0x0a, 0x03, b'G', b'E', b'T']);

    // Hand-written bytes decode: OneOf{options{"a": Data{optional{none{}}}} potential_conflict:true}.
    let data_bytes = [0x22, 0x02, 0x12, 0x00]; // Data.optional [4] { none [2] {} }
    let mut entry = vec![0x0a, 0x01, b'a', 0x12, data_bytes.len() as u8];
    entry.extend_from_slice(&data_bytes);
    let mut oneof = vec![0x0a, entry.len() as u8];
    oneof.extend_from_slice(&entry);
    oneof.extend_from_slice(&[0x10, 0x01]);
    let o = pb::OneOf::decode(oneof.as_slice()).unwrap();
    assert!(o.potential_conflict);
    assert_eq!(
        o.options["a"].value,
        Some(data::Value::Optional(pb::Optional { value: Some(pb::optional::Value::None(pb::NoneValue {})) }))
    );
    assert_eq!(o.encode_to_vec(), oneof);

    // Wrappers are messages holding field 1; packed repeated ints.
    let t = pb::Int64Type { fixed_values: vec![1, 2], min: Some(0), max: Some(3) };
    assert_eq!(t.encode_to_vec(), vec![0x0a, 0x02, 0x01, 0x02, 0x12, 0x00, 0x1a, 0x02, 0x08, 0x03]);
}

#[test]
fn whole_witness_hash_is_stable() {
    let Some(dir) = vector_dir() else { return };
    let mut h = ObjectHasher::new();
    for (name, _, doc) in load_all(&dir) {
        if let Doc::Witness(w) = doc {
            let a = h.digest(&w);
            // The hash of a witness is that of its Method, wrapped as field 1.
            let m = w.method.as_ref().expect("method");
            let inner = digest(m);
            let mut buf = vec![b'd'];
            buf.extend_from_slice(&xxh64_key(1));
            buf.extend_from_slice(&inner.bytes());
            assert_eq!(a.bytes(), xxhash_rust::xxh64::xxh64(&buf, 0).to_be_bytes(), "{name}");
            // Example values and latency do not count.
            let mut w2 = w.clone();
            if let Some(pb::method_meta::Meta::Http(hm)) = w2.method.as_mut().and_then(|m| m.meta.as_mut()).and_then(|m| m.meta.as_mut()) {
                hm.processing_latency = 12.5;
            }
            if let Some(d) = w2.method.as_mut().and_then(|m| m.args.values_mut().next()) {
                d.example_values.insert("x".into(), pb::ExampleValue {});
            }
            assert_eq!(h.digest(&w2), a, "{name}");
        }
    }
}

fn xxh64_key(n: u32) -> [u8; 8] {
    xxhash_rust::xxh64::xxh64(format!("i{n}").as_bytes(), 0).to_be_bytes()
}

#[test]
fn digest_text_parses_back() {
    let d: Digest = "UADY8pB9FOQ=".parse().unwrap();
    assert_eq!(d, digest(&pb::Witness::default()));
}

/// Counts primitives by value type with the visitor.
#[derive(Default)]
struct PrimitiveCounts(std::collections::BTreeMap<&'static str, usize>);

impl<'a> Visitor<'a> for PrimitiveCounts {
    fn primitive(&mut self, _: &Context<'_, 'a>, p: &'a pb::Primitive) -> Walk {
        use primitive::Value as V;
        let k = match &p.value {
            Some(V::BoolValue(_)) => "bool_value",
            Some(V::BytesValue(_)) => "bytes_value",
            Some(V::StringValue(_)) => "string_value",
            Some(V::Int32Value(_)) => "int32_value",
            Some(V::Int64Value(_)) => "int64_value",
            Some(V::Uint32Value(_)) => "uint32_value",
            Some(V::Uint64Value(_)) => "uint64_value",
            Some(V::DoubleValue(_)) => "double_value",
            Some(V::FloatValue(_)) => "float_value",
            None => "none",
        };
        *self.0.entry(k).or_default() += 1;
        Walk::Continue
    }
}

/// Collects the paths of string values.
#[derive(Default)]
struct StringPaths(Vec<String>);

impl<'a> Visitor<'a> for StringPaths {
    fn primitive(&mut self, cx: &Context<'_, 'a>, p: &'a pb::Primitive) -> Walk {
        if let Some(primitive::Value::StringValue(_)) = &p.value {
            assert!(cx.http().is_some(), "{}: no HTTP location", cx.path());
            self.0.push(cx.path().to_string());
        }
        Walk::Continue
    }
}

#[test]
fn visitor_over_vectors() {
    let Some(dir) = vector_dir() else { return };
    let docs = load_all(&dir);
    // One walker (and its stack) for all the witnesses.
    let mut walker = Walker::new();
    let mut total_strings = 0;
    for (name, src, doc) in &docs {
        // What the text says: one `<kind>_value` line per primitive.
        let mut want = std::collections::BTreeMap::new();
        for line in src.lines() {
            let t = line.trim_start();
            for kind in [
                "bool_value",
                "bytes_value",
                "string_value",
                "int32_value",
                "int64_value",
                "uint32_value",
                "uint64_value",
                "double_value",
                "float_value",
            ] {
                if t.strip_prefix(kind).is_some_and(|r| r.starts_with([':', ' '])) {
                    *want.entry(kind).or_insert(0usize) += 1;
                }
            }
        }
        let mut counts = PrimitiveCounts::default();
        let mut paths = StringPaths::default();
        match doc {
            Doc::Witness(w) => {
                assert!(walker.witness(w, &mut counts).is_continue());
                assert!(walker.witness(w, &mut paths).is_continue());
            }
            Doc::Spec(s) => {
                let mut walker = Walker::new();
                assert!(walker.spec(s, &mut counts).is_continue());
                assert!(walker.spec(s, &mut paths).is_continue());
            }
        }
        assert_eq!(counts.0, want, "{name}");
        assert_eq!(paths.0.len(), want.get("string_value").copied().unwrap_or(0), "{name}");
        let root = if name == "spec.pb.txt" { "methods[" } else { "args[" };
        assert!(paths.0.iter().all(|p| p.starts_with(root) || p.starts_with("responses[")), "{name}: {:?}", paths.0);
        total_strings += paths.0.len();
    }
    assert_eq!(total_strings, 991);
}
