//! JSON and YAML bodies, built straight into IR by a serde `DeserializeSeed`: no intermediate
//! `serde_json::Value` tree, one allocation per string and per container.
//!
//! Objects become `Struct`s (a repeated key keeps its last value, as JSON parsers do), arrays
//! `List`s, `null` an `Optional` holding `None`, numbers int64, else uint64, else double,
//! strings a string with its format. Nesting past [`Ctx::max_depth`] is skipped (read, not
//! kept: the subtree becomes an empty struct or list) and counted, and so are the elements of
//! a list past [`Ctx::max_list`]. serde_json's own recursion
//! limit (128) and serde_norway's bound the parser's stack on hostile input; YAML aliases are
//! expanded within serde_norway's repetition limit.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Ctx;
use crate::ir::value::{Key, Prim, Scalar as P, Val};

/// A JSON body as `Data`; `None` when it is not JSON.
pub fn parse_json(cx: &mut Ctx<'_>, body: &[u8]) -> Option<Val> {
    parse_json_at(cx, body, 0)
}

/// Like [`parse_json`] for a value nested `depth` levels deep (a multipart part).
///
/// The value is hashed and encoded as it is read ([`super::fastjson`]): a [`Val::Encoded`];
/// bodies nested deeper than prost decodes are built as trees.
pub fn parse_json_at(cx: &mut Ctx<'_>, body: &[u8], depth: usize) -> Option<Val> {
    // JSON is UTF-8: checked once for the whole body, so that the parser need not check each
    // string again.
    let text = std::str::from_utf8(body).ok()?;
    match super::fastjson::parse(cx, text, depth) {
        super::fastjson::Parsed::Value(v) => Some(v),
        super::fastjson::Parsed::NotJson => None,
        super::fastjson::Parsed::TooDeep => {
            let mut v = parse_json_tree(cx, body, depth)?;
            if cx.zero_values {
                crate::ir::build::zero_val(&mut v);
            }
            Some(v)
        }
    }
}

/// A JSON body built as a tree of values by serde_json, the reference for the one-pass
/// parser (tests and fuzzing compare them); zeroing is left to the caller.
#[doc(hidden)]
pub fn parse_json_tree(cx: &mut Ctx<'_>, body: &[u8], depth: usize) -> Option<Val> {
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let saved = cx.stats;
    let d = DataSeed { cx: &mut *cx, depth, sensitive: false }.deserialize(&mut de).ok();
    match d {
        Some(d) if de.end().is_ok() => Some(d),
        _ => {
            // Counters of a failed parse do not count.
            cx.stats = saved;
            None
        }
    }
}

/// A YAML body (its first document) as `Data`; `None` when it is not YAML.
pub fn parse_yaml(cx: &mut Ctx<'_>, body: &[u8]) -> Option<Val> {
    parse_yaml_at(cx, body, 0)
}

/// Like [`parse_yaml`] for a value nested `depth` levels deep.
pub fn parse_yaml_at(cx: &mut Ctx<'_>, body: &[u8], depth: usize) -> Option<Val> {
    let saved = cx.stats;
    let mut docs = serde_norway::Deserializer::from_slice(body);
    let d = match docs.next() {
        Some(doc) => DataSeed { cx: &mut *cx, depth, sensitive: false }.deserialize(doc).ok(),
        None => Some(Val::Null),
    };
    if d.is_none() {
        cx.stats = saved;
    }
    d
}

/// Builds one value; `sensitive` when a field name above it was.
struct DataSeed<'c, 'r> {
    cx: &'c mut Ctx<'r>,
    depth: usize,
    sensitive: bool,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = Val;

    fn deserialize<Des: de::Deserializer<'de>>(self, d: Des) -> Result<Val, Des::Error> {
        d.deserialize_any(self)
    }
}

impl DataSeed<'_, '_> {
    fn number(self, v: P) -> Val {
        let mut p = Prim::new(v);
        self.cx.check(&mut p, self.sensitive);
        Val::Prim(p)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, '_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val, E> {
        Ok(self.number(P::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
        Ok(self.number(P::I64(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => self.number(P::I64(i)),
            Err(_) => self.number(P::U64(v)),
        })
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Val, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => match u64::try_from(v) {
                Ok(u) => self.visit_u64(u),
                Err(_) => self.visit_f64(v as f64),
            },
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Val, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val, E> {
        Ok(self.number(P::F64(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Prim(self.cx.string(v.into(), self.sensitive)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Val, E> {
        Ok(Val::Prim(self.cx.string(v.into(), self.sensitive)))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Val, E> {
        Ok(Val::Prim(self.cx.text(v, self.sensitive)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        self.visit_unit()
    }

    fn visit_some<Des: de::Deserializer<'de>>(self, d: Des) -> Result<Val, Des::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<Des: de::Deserializer<'de>>(self, d: Des) -> Result<Val, Des::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut elems = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        if self.depth >= self.cx.max_depth {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            self.cx.stats.depth_capped += 1;
        } else {
            let cap = if self.cx.max_list == 0 { usize::MAX } else { self.cx.max_list };
            while elems.len() < cap {
                match seq.next_element_seed(DataSeed { cx: &mut *self.cx, depth: self.depth + 1, sensitive: self.sensitive })? {
                    Some(d) => elems.push(d),
                    None => return Ok(Val::List(elems)),
                }
            }
            // Past the cap: read (the body must still be valid), counted, not kept.
            let mut dropped = 0u64;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                dropped += 1;
            }
            self.cx.stats.list_elements_dropped += dropped;
        }
        Ok(Val::List(elems))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        if self.depth >= self.cx.max_depth {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            self.cx.stats.depth_capped += 1;
        } else {
            while let Some(k) = map.next_key_seed(NameSeed(&mut self.cx.names))? {
                let sensitive = self.sensitive || self.cx.sensitive_name(&k.name);
                let v = map.next_value_seed(DataSeed { cx: &mut *self.cx, depth: self.depth + 1, sensitive })?;
                fields.push((k, v));
            }
        }
        Ok(Val::struct_last_wins(fields))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Val, A::Error> {
        // A YAML tagged value (`!tag value`): a struct of one field named after the tag.
        use de::VariantAccess;
        let (tag, variant): (String, _) = data.variant_seed(KeySeed)?;
        let depth = self.depth + 1;
        let sensitive = self.sensitive;
        let cx = self.cx;
        let v = variant.newtype_variant_seed(DataSeed { cx, depth, sensitive })?;
        Ok(Val::Struct(vec![(Key::from(tag), v)]))
    }
}

/// Reads a map key as a shared [`Key`] without allocating for names seen before.
struct NameSeed<'c>(&'c mut crate::ir::value::Interner);

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = Key;

    fn deserialize<Des: de::Deserializer<'de>>(self, d: Des) -> Result<Key, Des::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(self.0.key(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        Ok(self.0.key(&v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        Ok(self.0.key(&v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(self.0.key(&v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
        Ok(self.0.key(&v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(self.0.key("null"))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key, E> {
        Ok(self.0.key(&String::from_utf8_lossy(v)))
    }
}

/// Reads a map key of any scalar type as a string (YAML keys may be numbers or booleans).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<Des: de::Deserializer<'de>>(self, d: Des) -> Result<String, Des::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok("null".to_owned())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<String, E> {
        Ok(String::from_utf8_lossy(v).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::text;

    fn json(s: &str) -> Val {
        parse_json(&mut Ctx::new(None), s.as_bytes()).expect("parses")
    }

    #[test]
    fn values_become_ir() {
        let d = json(
            r#"{"n": 42, "big": 18446744073709551615, "neg": -1, "f": 1.5, "ok": true, "none": null, "s": "2024-02-29", "l": [1, "x"], "o": {"k": {}}}"#,
        );
        let mut want = String::new();
        for line in [
            r#"struct {"#,
            r#"  fields { key: "big" value { primitive { uint64_value { value: 18446744073709551615 } } } }"#,
            r#"  fields { key: "f" value { primitive { double_value { value: 1.5 } } } }"#,
            r#"  fields { key: "l" value { list { elems { primitive { int64_value { value: 1 } } } elems { primitive { string_value { value: "x" } } } } } }"#,
            r#"  fields { key: "n" value { primitive { int64_value { value: 42 } } } }"#,
            r#"  fields { key: "neg" value { primitive { int64_value { value: -1 } } } }"#,
            r#"  fields { key: "none" value { optional { none {} } } }"#,
            r#"  fields { key: "o" value { struct { fields { key: "k" value { struct {} } } } } }"#,
            r#"  fields { key: "ok" value { primitive { bool_value { value: true } } } }"#,
            r#"  fields { key: "s" value { primitive { string_value { value: "2024-02-29" } formats { key: "date" value: true } format_kind: "datetime" } } }"#,
            r#"}"#,
        ] {
            want.push_str(line);
            want.push('\n');
        }
        let want: crate::ir::pb::Data = text::parse(&want).unwrap();
        assert_eq!(d.to_pb(), want);
        // A JSON string holding a number stays a string.
        let s = json(r#""12""#).to_pb();
        assert!(
            matches!(s.value, Some(crate::ir::pb::data::Value::Primitive(p)) if matches!(p.value, Some(crate::ir::pb::primitive::Value::StringValue(_))))
        );
    }

    #[test]
    fn invalid_json_is_none() {
        let mut cx = Ctx::new(None);
        for bad in ["", "{", "[1,]", "{\"a\":1} trailing", "nul"] {
            assert!(parse_json(&mut cx, bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn nesting_is_capped_and_counted() {
        let mut cx = Ctx::new(None);
        cx.max_depth = 3;
        let d = parse_json(&mut cx, b"[[[[[1]]]], {\"a\": {\"b\": {\"c\": {}}}}]").unwrap();
        assert_eq!(cx.stats.depth_capped, 2);
        let t = crate::ir::body::flat_val(&d);
        assert!(!t.contains("int64_value"), "{t}");
        // Hostile nesting past serde_json's own limit fails cleanly.
        let deep = "[".repeat(100_000);
        assert!(parse_json(&mut cx, deep.as_bytes()).is_none());
    }

    #[test]
    fn long_lists_keep_their_first_elements() {
        let mut cx = Ctx::new(None);
        cx.max_list = 3;
        let d = parse_json(&mut cx, b"[1, 2, 3, 4, [5, 6, 7, 8, 9]]").unwrap();
        assert_eq!(crate::ir::body::flat_val(&d).matches("int64_value").count(), 3);
        assert_eq!(cx.stats.list_elements_dropped, 2);
        // What is dropped must still be JSON.
        assert!(parse_json(&mut cx, b"[1, 2, 3, 4, {]").is_none());
        cx.max_list = 0;
        let d = parse_json(&mut cx, b"[1, 2, 3, 4, 5]").unwrap();
        assert_eq!(crate::ir::body::flat_val(&d).matches("int64_value").count(), 5);
    }

    #[test]
    fn yaml() {
        let mut cx = Ctx::new(None);
        let d = parse_yaml(&mut cx, b"name: x\ncount: 3\n1: one\ntags: [a, b]\nwhen: 2024-02-29T10:33:00Z\nnothing: ~\n").unwrap();
        let t = crate::ir::body::flat_val(&d);
        for want in ["key: \"1\"", "key: \"count\"", "int64_value", "rfc_3339", "none {"] {
            assert!(t.contains(want), "{want} in {t}");
        }
        assert!(parse_yaml(&mut cx, b"a: [1, 2").is_none());
        // Alias bombs stop at serde_norway's repetition limit.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 { "a".to_string() } else { format!("b{}", i - 1) };
            bomb.push_str(&format!(
                "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(parse_yaml(&mut cx, bomb.as_bytes()).is_none());
    }

    #[test]
    fn sensitive_fields_are_redacted() {
        let r = crate::ir::redact::Redactor::builtin();
        let mut cx = Ctx::new(Some(&r));
        let d = parse_json(
            &mut cx,
            br#"{"user": "jo", "password": "hunter2", "auth": {"token": "abc", "n": 5}, "card": "4111 1111 1111 1111"}"#,
        )
        .unwrap();
        let t = crate::ir::body::flat_val(&d);
        for secret in ["hunter2", "abc", "4111"] {
            assert!(!t.contains(secret), "{secret} in {t}");
        }
        assert!(t.contains("\"jo\"") && !t.contains("value: 5"), "{t}");
        // `auth` is a sensitive name: its whole subtree is redacted.
        assert_eq!(cx.stats.redactions, 4, "{t}");
    }
}
