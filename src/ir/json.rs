//! Witnesses as JSON, following protobuf's JSON mapping: lowerCamelCase field names, fields
//! left out when unset (oneof members always written), 64-bit integers as strings, bytes as
//! base64, enums by name, non-finite floats as `"NaN"`, `"Infinity"`, `"-Infinity"`. The
//! type constraints of generalized primitives (`string_value.type.fixed_values`…), which built
//! witnesses never have, are left out.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::pb;

fn obj() -> Map<String, Value> {
    Map::new()
}

fn f64_json(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

fn f32_json(v: f32) -> Value {
    if v.is_finite() { json!(v) } else { f64_json(f64::from(v)) }
}

fn put_str(m: &mut Map<String, Value>, k: &str, v: &str) {
    if !v.is_empty() {
        m.insert(k.into(), json!(v));
    }
}

pub fn witness(w: &pb::Witness) -> Value {
    let mut m = obj();
    if let Some(x) = &w.method {
        m.insert("method".into(), method(x));
    }
    Value::Object(m)
}

pub fn method(x: &pb::Method) -> Value {
    let mut m = obj();
    if let Some(id) = &x.id {
        let mut o = obj();
        put_str(&mut o, "name", &id.name);
        if id.api_type != 0 {
            o.insert("apiType".into(), json!(pb::ApiType::try_from(id.api_type).map_or("GRPC", |t| t.as_str_name())));
        }
        m.insert("id".into(), Value::Object(o));
    }
    if !x.args.is_empty() {
        m.insert("args".into(), Value::Object(x.args.iter().map(|(k, v)| (k.clone(), data(v))).collect()));
    }
    if !x.responses.is_empty() {
        m.insert("responses".into(), Value::Object(x.responses.iter().map(|(k, v)| (k.clone(), data(v))).collect()));
    }
    if let Some(meta) = &x.meta {
        let mut o = obj();
        match &meta.meta {
            Some(pb::method_meta::Meta::Grpc(_)) => {
                o.insert("grpc".into(), json!({}));
            }
            Some(pb::method_meta::Meta::Http(h)) => {
                let mut ho = obj();
                put_str(&mut ho, "method", &h.method);
                put_str(&mut ho, "pathTemplate", &h.path_template);
                put_str(&mut ho, "host", &h.host);
                if h.processing_latency != 0.0 {
                    ho.insert("processingLatency".into(), f32_json(h.processing_latency));
                }
                o.insert("http".into(), Value::Object(ho));
            }
            None => {}
        }
        m.insert("meta".into(), Value::Object(o));
    }
    Value::Object(m)
}

pub fn data(d: &pb::Data) -> Value {
    use pb::data::Value as D;
    let mut m = obj();
    match &d.value {
        Some(D::Primitive(p)) => {
            m.insert("primitive".into(), primitive(p));
        }
        Some(D::Struct(s)) => {
            let mut o = obj();
            if !s.fields.is_empty() {
                o.insert("fields".into(), Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), data(v))).collect()));
            }
            if let Some(mt) = &s.map_type {
                let mut mo = obj();
                if let Some(k) = &mt.key {
                    mo.insert("key".into(), data(k));
                }
                if let Some(v) = &mt.value {
                    mo.insert("value".into(), data(v));
                }
                o.insert("mapType".into(), Value::Object(mo));
            }
            m.insert("struct".into(), Value::Object(o));
        }
        Some(D::List(l)) => {
            let mut o = obj();
            if !l.elems.is_empty() {
                o.insert("elems".into(), Value::Array(l.elems.iter().map(data).collect()));
            }
            m.insert("list".into(), Value::Object(o));
        }
        Some(D::Optional(opt)) => {
            let o = match &opt.value {
                Some(pb::optional::Value::Data(x)) => json!({ "data": data(x) }),
                Some(pb::optional::Value::None(_)) => json!({ "none": {} }),
                None => json!({}),
            };
            m.insert("optional".into(), o);
        }
        Some(D::Oneof(o)) => {
            let mut oo = obj();
            if !o.options.is_empty() {
                oo.insert("options".into(), Value::Object(o.options.iter().map(|(k, v)| (k.clone(), data(v))).collect()));
            }
            if o.potential_conflict {
                oo.insert("potentialConflict".into(), json!(true));
            }
            m.insert("oneof".into(), Value::Object(oo));
        }
        None => {}
    }
    if let Some(meta) = &d.meta {
        m.insert("meta".into(), data_meta(meta));
    }
    if d.nullable {
        m.insert("nullable".into(), json!(true));
    }
    if !d.example_values.is_empty() {
        m.insert("exampleValues".into(), Value::Object(d.example_values.keys().map(|k| (k.clone(), json!({}))).collect()));
    }
    Value::Object(m)
}

fn data_meta(meta: &pb::DataMeta) -> Value {
    use pb::http_meta::Location as L;
    match &meta.meta {
        Some(pb::data_meta::Meta::Grpc(_)) => json!({ "grpc": {} }),
        Some(pb::data_meta::Meta::Http(h)) => {
            let mut o = obj();
            let key = |k: &str| json!({ "key": k });
            let (name, v) = match &h.location {
                Some(L::Path(x)) => ("path", key(&x.key)),
                Some(L::Query(x)) => ("query", key(&x.key)),
                Some(L::Header(x)) => ("header", key(&x.key)),
                Some(L::Cookie(x)) => ("cookie", key(&x.key)),
                Some(L::Body(b)) => {
                    let mut bo = obj();
                    if b.content_type != 0 {
                        let ct = pb::http_body::ContentType::try_from(b.content_type).map_or("UNKNOWN", |c| c.as_str_name());
                        bo.insert("contentType".into(), json!(ct));
                    }
                    put_str(&mut bo, "otherType", &b.other_type);
                    ("body", Value::Object(bo))
                }
                Some(L::Empty(_)) => ("empty", json!({})),
                Some(L::Auth(a)) => {
                    let t = pb::http_auth::HttpAuthType::try_from(a.r#type).map_or("UNKNOWN", |t| t.as_str_name());
                    ("auth", if a.r#type != 0 { json!({ "type": t }) } else { json!({}) })
                }
                Some(L::Multipart(x)) => ("multipart", if x.r#type.is_empty() { json!({}) } else { json!({ "type": x.r#type }) }),
                None => ("", Value::Null),
            };
            if !name.is_empty() {
                o.insert(name.into(), v);
            }
            if h.response_code != 0 {
                o.insert("responseCode".into(), json!(h.response_code));
            }
            json!({ "http": Value::Object(o) })
        }
        None => json!({}),
    }
}

fn primitive(p: &pb::Primitive) -> Value {
    use pb::primitive::Value as V;
    let mut m = obj();
    put_str(&mut m, "typeHint", &p.type_hint);
    let typed = |name: &str, v: Value, zero: bool| -> (String, Value) {
        // The typed message's own `type` field is not built here; a value is written unless zero.
        (name.to_string(), if zero { json!({}) } else { json!({ "value": v }) })
    };
    let (k, v) = match &p.value {
        Some(V::BoolValue(x)) => typed("boolValue", json!(x.value), !x.value),
        Some(V::BytesValue(x)) => {
            typed("bytesValue", json!(base64::engine::general_purpose::STANDARD.encode(&x.value)), x.value.is_empty())
        }
        Some(V::StringValue(x)) => typed("stringValue", json!(x.value), x.value.is_empty()),
        Some(V::Int32Value(x)) => typed("int32Value", json!(x.value), x.value == 0),
        Some(V::Int64Value(x)) => typed("int64Value", json!(x.value.to_string()), x.value == 0),
        Some(V::Uint32Value(x)) => typed("uint32Value", json!(x.value), x.value == 0),
        Some(V::Uint64Value(x)) => typed("uint64Value", json!(x.value.to_string()), x.value == 0),
        Some(V::DoubleValue(x)) => typed("doubleValue", f64_json(x.value), x.value == 0.0),
        Some(V::FloatValue(x)) => typed("floatValue", f32_json(x.value), x.value == 0.0),
        None => (String::new(), Value::Null),
    };
    if !k.is_empty() {
        m.insert(k, v);
    }
    if let Some(a) = &p.akita_annotations {
        let mut o = obj();
        if a.is_free {
            o.insert("isFree".into(), json!(true));
        }
        if a.is_sensitive {
            o.insert("isSensitive".into(), json!(true));
        }
        if let Some(pb::FormatOption { format: Some(pb::format_option::Format::StringFormat(f)) }) = &a.format_option {
            o.insert("formatOption".into(), json!({ "stringFormat": f }));
        }
        m.insert("akitaAnnotations".into(), Value::Object(o));
    }
    if p.contains_random_value {
        m.insert("containsRandomValue".into(), json!(true));
    }
    if !p.formats.is_empty() {
        m.insert("formats".into(), Value::Object(p.formats.iter().map(|(k, v)| (k.clone(), json!(v))).collect()));
    }
    put_str(&mut m, "formatKind", &p.format_kind);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let w: pb::Witness = crate::ir::text::parse(
            r#"method { id { api_type: HTTP_REST }
               args { key: "k" value { primitive { int64_value { value: 5 } formats { key: "x" value: true } } meta { http { query { key: "q" } } } } }
               responses { key: "r" value { struct { fields { key: "a" value { optional { none {} } } } } meta { http { body { content_type: JSON } response_code: 200 } } } }
               meta { http { method: "GET" path_template: "/" host: "h" } } }"#,
        )
        .unwrap();
        let v = witness(&w);
        assert_eq!(v["method"]["id"]["apiType"], "HTTP_REST");
        assert_eq!(v["method"]["args"]["k"]["primitive"]["int64Value"]["value"], "5");
        assert_eq!(v["method"]["args"]["k"]["meta"]["http"]["query"]["key"], "q");
        assert_eq!(v["method"]["responses"]["r"]["meta"]["http"]["body"]["contentType"], "JSON");
        assert_eq!(v["method"]["responses"]["r"]["meta"]["http"]["responseCode"], 200);
        assert_eq!(v["method"]["responses"]["r"]["struct"]["fields"]["a"]["optional"]["none"], json!({}));
        assert_eq!(v["method"]["meta"]["http"]["pathTemplate"], "/");
    }
}
