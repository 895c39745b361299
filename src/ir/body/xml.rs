//! XML bodies (the reference tooling never parsed them).
//!
//! The document becomes a struct holding its root element by name. An element with neither
//! attributes nor child elements is its text, categorised (`<n>5</n>` is an int64). Any other
//! element is a struct: attributes as `@name`, child elements by name (a name repeated among
//! siblings maps to a list of them, in order), and non-blank text as `#text`. Namespace prefixes
//! are kept as written. Comments, processing instructions and the doctype are left out; entity
//! references other than the five predefined ones and character references stay as written
//! (nothing is expanded from a DTD, so entity bombs cannot grow). Elements nested past
//! [`Ctx::max_depth`] are skipped and counted. The parse keeps an explicit stack: no recursion.

use quick_xml::events::Event;

use super::Ctx;
use crate::ir::value::{Key, Val};

struct Elem {
    name: String,
    attrs: Vec<(String, Val)>,
    children: Vec<(String, Val)>,
    text: String,
    sensitive: bool,
}

impl Elem {
    fn new(cx: &mut Ctx<'_>, e: &quick_xml::events::BytesStart<'_>, parent_sensitive: bool) -> Option<Elem> {
        let name = e.name().as_ref().to_string();
        let sensitive = parent_sensitive || cx.sensitive_name(&name);
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.ok()?;
            let key = a.key.as_ref().to_string();
            let v = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok()?;
            let s = sensitive || cx.sensitive_name(&key);
            attrs.push((format!("@{key}"), Val::Prim(cx.text(v.as_bytes(), s))));
        }
        Some(Elem { name, attrs, children: Vec::new(), text: String::new(), sensitive })
    }

    fn finish(self, cx: &mut Ctx<'_>) -> (String, Val) {
        let text = self.text.trim();
        if self.attrs.is_empty() && self.children.is_empty() {
            return (self.name, Val::Prim(cx.text(text.as_bytes(), self.sensitive)));
        }
        let mut fields: Vec<(Key, Val)> = self.attrs.into_iter().chain(self.children).map(|(k, v)| (cx.key(&k), v)).collect();
        if !text.is_empty() {
            fields.push((cx.key("#text"), Val::Prim(cx.text(text.as_bytes(), self.sensitive))));
        }
        (self.name, Val::struct_grouped(fields))
    }
}

/// An XML body as `Data`; `None` when it is not well-formed XML.
pub fn parse(cx: &mut Ctx<'_>, body: &[u8]) -> Option<Val> {
    parse_at(cx, body, 0)
}

/// Like [`parse`] for a document nested `depth` levels deep.
pub fn parse_at(cx: &mut Ctx<'_>, body: &[u8], depth: usize) -> Option<Val> {
    let saved = cx.stats;
    let r = build(cx, body, depth);
    if r.is_none() {
        cx.stats = saved;
    }
    r
}

fn build(cx: &mut Ctx<'_>, body: &[u8], depth: usize) -> Option<Val> {
    let src = std::str::from_utf8(body).ok()?;
    let mut rd = quick_xml::Reader::from_str(src);
    rd.config_mut().check_end_names = true;
    let mut stack: Vec<Elem> = Vec::new();
    let mut root: Option<(String, Val)> = None;
    // Elements below the cap: how deep we are inside the skipped subtree.
    let mut skipping = 0usize;
    let room = cx.max_depth.saturating_sub(depth).max(1);
    loop {
        let ev = rd.read_event().ok()?;
        match ev {
            Event::Start(_) if skipping > 0 || stack.len() >= room => {
                if skipping == 0 {
                    cx.stats.depth_capped += 1;
                }
                skipping += 1;
            }
            Event::Empty(_) if skipping > 0 || stack.len() >= room => {
                if skipping == 0 {
                    cx.stats.depth_capped += 1;
                }
            }
            Event::Start(e) => {
                if root.is_some() && stack.is_empty() {
                    return None;
                }
                let parent = stack.last().is_some_and(|p| p.sensitive);
                stack.push(Elem::new(cx, &e, parent)?);
            }
            Event::Empty(e) => {
                if root.is_some() && stack.is_empty() {
                    return None;
                }
                let parent = stack.last().is_some_and(|p| p.sensitive);
                let el = Elem::new(cx, &e, parent)?.finish(cx);
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) if skipping > 0 => skipping -= 1,
            Event::End(_) => {
                let el = stack.pop()?.finish(cx);
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if skipping == 0 {
                    match stack.last_mut() {
                        Some(p) => p.text.push_str(&t.xml10_content()),
                        None if t.xml10_content().trim().is_empty() => {}
                        None => return None,
                    }
                }
            }
            Event::CData(t) => {
                if skipping == 0 {
                    stack.last_mut()?.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if skipping == 0 {
                    let p = stack.last_mut()?;
                    match &*r.xml10_content() {
                        "amp" => p.text.push('&'),
                        "lt" => p.text.push('<'),
                        "gt" => p.text.push('>'),
                        "quot" => p.text.push('"'),
                        "apos" => p.text.push('\''),
                        other => match r.resolve_char_ref() {
                            Ok(Some(c)) => p.text.push(c),
                            _ => {
                                p.text.push('&');
                                p.text.push_str(other);
                                p.text.push(';');
                            }
                        },
                    }
                }
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return None;
    }
    let (name, d) = root?;
    Some(Val::Struct(vec![(cx.key(&name), d)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_attributes_and_text() {
        let mut cx = Ctx::new(None);
        let body = br#"<?xml version="1.0"?>
<!-- a comment -->
<order id="17" xmlns:x="urn:x">
  <item sku="A1">pen &amp; ink</item>
  <item sku="B2"/>
  <total>4.5</total>
  <x:note><![CDATA[<fragile>]]></x:note>
  <when>2024-02-29T10:33:00Z</when>
  text &#65;
</order>"#;
        let d = parse(&mut cx, body).unwrap();
        let t = crate::ir::body::flat_val(&d);
        for want in [
            r#"key: "order""#,
            r#"key: "@id""#,
            "int64_value { value: 17 }",
            r#"key: "item""#,
            "list {",
            r#""pen & ink""#,
            "double_value { value: 4.5 }",
            r#"key: "x:note""#,
            r#""<fragile>""#,
            "rfc_3339",
            r##"key: "#text""##,
            r#""text A""#,
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
        assert_eq!(cx.stats.unparsed_bodies.total(), 0);
    }

    #[test]
    fn malformed_xml_is_none() {
        let mut cx = Ctx::new(None);
        for bad in [&b"<a><b></a>"[..], b"<a>", b"plain text", b"<a/><b/>", b"\xff<a/>", b""] {
            assert!(parse(&mut cx, bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn entities_are_not_expanded_and_nesting_is_capped() {
        let mut cx = Ctx::new(None);
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><l>&b;</l>"#;
        let t = crate::ir::body::flat_val(&parse(&mut cx, bomb).unwrap());
        assert!(t.contains(r#""&b;""#), "{t}");
        cx.max_depth = 3;
        let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        let d = parse(&mut cx, deep.as_bytes()).unwrap();
        assert_eq!(cx.stats.depth_capped, 1);
        assert!(crate::ir::body::flat_val(&d).matches("key: \"a\"").count() <= 4);
    }
}
