//! A visitor over the witness IR.
//!
//! A [`Visitor`] has a defaulted hook for each kind of node; a [`Walker`] calls them in document
//! order (maps in key order) and passes a [`Context`]: the path from the method to the node
//! (argument/response keys, struct field names, list indices, oneof option keys) and the HTTP
//! location in effect (the innermost `Data.meta.http` on the way down). Each hook returns a
//! [`Walk`]: go on, skip this node's children, or stop the whole walk.
//!
//! Pairing: every `enter_*` that returns [`Walk::Continue`] or [`Walk::SkipChildren`] gets its
//! `leave_*`, unless the walk is stopped. `struct_field` and `list_elem` are asked before an
//! element's `Data` is entered; `SkipChildren` there skips that element entirely.
//!
//! The walker keeps its context on one stack that it owns and reuses: after the first walk has
//! grown it to the deepest nesting seen, walking allocates nothing. The walk recurses once per
//! nesting level of the IR; bound the nesting when building IR from untrusted input.

use std::fmt;
use std::ops::ControlFlow;

use super::pb::{self, data, data_meta, http_meta, optional};

/// What a hook asks the walker to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Walk {
    /// Visit this node's children (if any) and go on.
    #[default]
    Continue,
    /// Do not visit this node's children; go on with its next sibling.
    SkipChildren,
    /// End the walk now.
    Stop,
}

/// One step of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// The n-th method of a spec.
    Method(usize),
    /// An argument, by its map key.
    Arg(&'a str),
    /// A response, by its map key.
    Response(&'a str),
    /// A struct field, by name.
    Field(&'a str),
    /// The key type of a map-typed struct.
    MapKey,
    /// The value type of a map-typed struct.
    MapValue,
    /// A list element, by index.
    Elem(usize),
    /// A oneof option, by its map key.
    OneOfOption(&'a str),
    /// The value inside an optional.
    Some,
}

#[derive(Clone, Copy)]
struct Frame<'a> {
    seg: Seg<'a>,
    /// The innermost `HTTPMeta` on the way down to here.
    http: Option<&'a pb::HttpMeta>,
}

/// Where a hook is called: the path from the method (or the walk's root) and the HTTP location.
pub struct Context<'c, 'a> {
    /// `frames[0]` is the walk's root; the path is `frames[1..]`.
    frames: &'c [Frame<'a>],
    method: Option<&'a pb::Method>,
}

impl<'c, 'a> Context<'c, 'a> {
    /// The path to the node, displayable as e.g. `args[KEY].items[0].name`.
    pub fn path(&self) -> Path<'c, 'a> {
        Path(&self.frames[1..])
    }

    /// The number of path steps.
    pub fn depth(&self) -> usize {
        self.frames.len() - 1
    }

    /// The last path step, if any.
    pub fn last(&self) -> Option<Seg<'a>> {
        self.path().segs().next_back()
    }

    /// The method being walked, if the walk started at a method, witness or spec.
    pub fn method(&self) -> Option<&'a pb::Method> {
        self.method
    }

    /// The innermost HTTP metadata on the way down to this node.
    pub fn http(&self) -> Option<&'a pb::HttpMeta> {
        self.frames.last().and_then(|f| f.http)
    }

    /// Where in the HTTP exchange the node was seen (path, query, header, body, ...).
    pub fn location(&self) -> Option<&'a http_meta::Location> {
        self.http().and_then(|h| h.location.as_ref())
    }

    /// The response code of the enclosing HTTP metadata (0 for an argument, -1 for the
    /// default response).
    pub fn response_code(&self) -> Option<i32> {
        self.http().map(|h| h.response_code)
    }
}

/// A path of [`Seg`]s; `Display` writes `methods[0].args[KEY].field[3].oneof[KEY]?.x`-style text.
#[derive(Clone, Copy)]
pub struct Path<'c, 'a>(&'c [Frame<'a>]);

impl<'c, 'a> Path<'c, 'a> {
    /// The steps, outermost first.
    pub fn segs(&self) -> impl DoubleEndedIterator<Item = Seg<'a>> + ExactSizeIterator + 'c {
        self.0.iter().map(|f| f.seg)
    }
}

impl fmt::Display for Path<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segs().enumerate() {
            let dot = if i == 0 { "" } else { "." };
            match seg {
                Seg::Method(n) => write!(f, "{dot}methods[{n}]")?,
                Seg::Arg(k) => write!(f, "{dot}args[{k}]")?,
                Seg::Response(k) => write!(f, "{dot}responses[{k}]")?,
                Seg::Field(name) => write!(f, "{dot}{name}")?,
                Seg::MapKey => write!(f, "{dot}<key>")?,
                Seg::MapValue => write!(f, "{dot}<value>")?,
                Seg::Elem(n) => write!(f, "[{n}]")?,
                Seg::OneOfOption(k) => write!(f, "{dot}oneof[{k}]")?,
                Seg::Some => f.write_str("?")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Path<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({self})")
    }
}

/// Hooks called by a [`Walker`]; every hook defaults to [`Walk::Continue`].
#[allow(unused_variables)]
pub trait Visitor<'a> {
    fn enter_method(&mut self, cx: &Context<'_, 'a>, m: &'a pb::Method) -> Walk {
        Walk::Continue
    }
    fn leave_method(&mut self, cx: &Context<'_, 'a>, m: &'a pb::Method) -> Walk {
        Walk::Continue
    }
    fn enter_data(&mut self, cx: &Context<'_, 'a>, d: &'a pb::Data) -> Walk {
        Walk::Continue
    }
    fn leave_data(&mut self, cx: &Context<'_, 'a>, d: &'a pb::Data) -> Walk {
        Walk::Continue
    }
    /// A leaf: `SkipChildren` means the same as `Continue`.
    fn primitive(&mut self, cx: &Context<'_, 'a>, p: &'a pb::Primitive) -> Walk {
        Walk::Continue
    }
    fn enter_struct(&mut self, cx: &Context<'_, 'a>, s: &'a pb::Struct) -> Walk {
        Walk::Continue
    }
    fn leave_struct(&mut self, cx: &Context<'_, 'a>, s: &'a pb::Struct) -> Walk {
        Walk::Continue
    }
    /// Before a struct field's `Data` (the path already ends with the field).
    fn struct_field(&mut self, cx: &Context<'_, 'a>, name: &'a str, d: &'a pb::Data) -> Walk {
        Walk::Continue
    }
    fn enter_list(&mut self, cx: &Context<'_, 'a>, l: &'a pb::List) -> Walk {
        Walk::Continue
    }
    fn leave_list(&mut self, cx: &Context<'_, 'a>, l: &'a pb::List) -> Walk {
        Walk::Continue
    }
    /// Before a list element's `Data` (the path already ends with the index).
    fn list_elem(&mut self, cx: &Context<'_, 'a>, index: usize, d: &'a pb::Data) -> Walk {
        Walk::Continue
    }
    fn enter_optional(&mut self, cx: &Context<'_, 'a>, o: &'a pb::Optional) -> Walk {
        Walk::Continue
    }
    fn leave_optional(&mut self, cx: &Context<'_, 'a>, o: &'a pb::Optional) -> Walk {
        Walk::Continue
    }
    fn enter_oneof(&mut self, cx: &Context<'_, 'a>, o: &'a pb::OneOf) -> Walk {
        Walk::Continue
    }
    fn leave_oneof(&mut self, cx: &Context<'_, 'a>, o: &'a pb::OneOf) -> Walk {
        Walk::Continue
    }
}

/// `Continue(true)`: descend; `Continue(false)`: skip children; `Break`: stop.
fn flow(w: Walk) -> ControlFlow<(), bool> {
    match w {
        Walk::Continue => ControlFlow::Continue(true),
        Walk::SkipChildren => ControlFlow::Continue(false),
        Walk::Stop => ControlFlow::Break(()),
    }
}

/// Walks IR borrowed for `'a`, reusing its context stack from walk to walk.
pub struct Walker<'a> {
    stack: Vec<Frame<'a>>,
    method: Option<&'a pb::Method>,
}

impl Default for Walker<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Walker<'a> {
    /// A walker with room for 64 levels of nesting before its stack grows.
    pub fn new() -> Self {
        Self::with_capacity(64)
    }

    /// A walker with room for `depth` levels of nesting before its stack grows.
    pub fn with_capacity(depth: usize) -> Self {
        Walker { stack: Vec::with_capacity(depth + 1), method: None }
    }

    /// Walks a witness's method. `Break` when a hook stopped the walk.
    pub fn witness<V: Visitor<'a>>(&mut self, w: &'a pb::Witness, v: &mut V) -> ControlFlow<()> {
        match &w.method {
            Some(m) => self.method(m, v),
            None => ControlFlow::Continue(()),
        }
    }

    /// Walks every method of a spec; paths start with `methods[i]`.
    pub fn spec<V: Visitor<'a>>(&mut self, s: &'a pb::ApiSpec, v: &mut V) -> ControlFlow<()> {
        self.reset(None);
        let r = s.methods.iter().enumerate().try_for_each(|(i, m)| {
            self.method = Some(m);
            self.push(Seg::Method(i));
            self.walk_method(m, v)?;
            self.stack.pop();
            ControlFlow::Continue(())
        });
        self.reset(None);
        r
    }

    /// Walks one method: its arguments, then its responses.
    pub fn method<V: Visitor<'a>>(&mut self, m: &'a pb::Method, v: &mut V) -> ControlFlow<()> {
        self.reset(Some(m));
        let r = self.walk_method(m, v);
        self.reset(None);
        r
    }

    /// Walks one `Data` value (paths are relative to it).
    pub fn data<V: Visitor<'a>>(&mut self, d: &'a pb::Data, v: &mut V) -> ControlFlow<()> {
        self.reset(None);
        let r = self.walk_data(d, v);
        self.reset(None);
        r
    }

    fn reset(&mut self, method: Option<&'a pb::Method>) {
        self.stack.clear();
        self.stack.push(Frame { seg: Seg::Some, http: None });
        self.method = method;
    }

    fn cx(&self) -> Context<'_, 'a> {
        Context { frames: &self.stack, method: self.method }
    }

    #[inline]
    fn push(&mut self, seg: Seg<'a>) {
        let http = self.stack.last().and_then(|f| f.http);
        self.stack.push(Frame { seg, http });
    }

    fn walk_method<V: Visitor<'a>>(&mut self, m: &'a pb::Method, v: &mut V) -> ControlFlow<()> {
        if flow(v.enter_method(&self.cx(), m))? {
            for (k, d) in &m.args {
                self.push(Seg::Arg(k));
                self.walk_data(d, v)?;
                self.stack.pop();
            }
            for (k, d) in &m.responses {
                self.push(Seg::Response(k));
                self.walk_data(d, v)?;
                self.stack.pop();
            }
        }
        flow(v.leave_method(&self.cx(), m))?;
        ControlFlow::Continue(())
    }

    fn walk_data<V: Visitor<'a>>(&mut self, d: &'a pb::Data, v: &mut V) -> ControlFlow<()> {
        if let Some(pb::DataMeta { meta: Some(data_meta::Meta::Http(h)) }) = &d.meta
            && let Some(top) = self.stack.last_mut()
        {
            top.http = Some(h);
        }
        if flow(v.enter_data(&self.cx(), d))? {
            match &d.value {
                Some(data::Value::Primitive(p)) => {
                    flow(v.primitive(&self.cx(), p))?;
                }
                Some(data::Value::Struct(s)) => self.walk_struct(s, v)?,
                Some(data::Value::List(l)) => self.walk_list(l, v)?,
                Some(data::Value::Optional(o)) => self.walk_optional(o, v)?,
                Some(data::Value::Oneof(o)) => self.walk_oneof(o, v)?,
                None => {}
            }
        }
        flow(v.leave_data(&self.cx(), d))?;
        ControlFlow::Continue(())
    }

    fn walk_struct<V: Visitor<'a>>(&mut self, s: &'a pb::Struct, v: &mut V) -> ControlFlow<()> {
        if flow(v.enter_struct(&self.cx(), s))? {
            for (k, d) in &s.fields {
                self.push(Seg::Field(k));
                if flow(v.struct_field(&self.cx(), k, d))? {
                    self.walk_data(d, v)?;
                }
                self.stack.pop();
            }
            if let Some(mt) = &s.map_type {
                for (seg, d) in [(Seg::MapKey, &mt.key), (Seg::MapValue, &mt.value)] {
                    if let Some(d) = d {
                        self.push(seg);
                        self.walk_data(d, v)?;
                        self.stack.pop();
                    }
                }
            }
        }
        flow(v.leave_struct(&self.cx(), s))?;
        ControlFlow::Continue(())
    }

    fn walk_list<V: Visitor<'a>>(&mut self, l: &'a pb::List, v: &mut V) -> ControlFlow<()> {
        if flow(v.enter_list(&self.cx(), l))? {
            for (i, d) in l.elems.iter().enumerate() {
                self.push(Seg::Elem(i));
                if flow(v.list_elem(&self.cx(), i, d))? {
                    self.walk_data(d, v)?;
                }
                self.stack.pop();
            }
        }
        flow(v.leave_list(&self.cx(), l))?;
        ControlFlow::Continue(())
    }

    fn walk_optional<V: Visitor<'a>>(&mut self, o: &'a pb::Optional, v: &mut V) -> ControlFlow<()> {
        if flow(v.enter_optional(&self.cx(), o))?
            && let Some(optional::Value::Data(d)) = &o.value
        {
            self.push(Seg::Some);
            self.walk_data(d, v)?;
            self.stack.pop();
        }
        flow(v.leave_optional(&self.cx(), o))?;
        ControlFlow::Continue(())
    }

    fn walk_oneof<V: Visitor<'a>>(&mut self, o: &'a pb::OneOf, v: &mut V) -> ControlFlow<()> {
        if flow(v.enter_oneof(&self.cx(), o))? {
            for (k, d) in &o.options {
                self.push(Seg::OneOfOption(k));
                self.walk_data(d, v)?;
                self.stack.pop();
            }
        }
        flow(v.leave_oneof(&self.cx(), o))?;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::text;

    /// Counts primitives by value type.
    #[derive(Default, Debug, PartialEq)]
    struct CountPrimitives {
        counts: std::collections::BTreeMap<&'static str, usize>,
    }

    impl<'a> Visitor<'a> for CountPrimitives {
        fn primitive(&mut self, _: &Context<'_, 'a>, p: &'a pb::Primitive) -> Walk {
            *self.counts.entry(primitive_type(p)).or_default() += 1;
            Walk::Continue
        }
    }

    fn primitive_type(p: &pb::Primitive) -> &'static str {
        use pb::primitive::Value as V;
        match &p.value {
            Some(V::BoolValue(_)) => "bool",
            Some(V::BytesValue(_)) => "bytes",
            Some(V::StringValue(_)) => "string",
            Some(V::Int32Value(_)) => "int32",
            Some(V::Int64Value(_)) => "int64",
            Some(V::Uint32Value(_)) => "uint32",
            Some(V::Uint64Value(_)) => "uint64",
            Some(V::DoubleValue(_)) => "double",
            Some(V::FloatValue(_)) => "float",
            None => "none",
        }
    }

    /// Collects `path @ location = value` for every string value; optionally stops after `limit`.
    #[derive(Default)]
    struct StringPaths {
        out: Vec<String>,
        limit: Option<usize>,
        skip_fields: Vec<&'static str>,
    }

    impl<'a> Visitor<'a> for StringPaths {
        fn struct_field(&mut self, _: &Context<'_, 'a>, name: &'a str, _: &'a pb::Data) -> Walk {
            if self.skip_fields.contains(&name) { Walk::SkipChildren } else { Walk::Continue }
        }

        fn primitive(&mut self, cx: &Context<'_, 'a>, p: &'a pb::Primitive) -> Walk {
            if let Some(pb::primitive::Value::StringValue(s)) = &p.value {
                let loc = match cx.location() {
                    Some(http_meta::Location::Header(h)) => format!("header {}", h.key),
                    Some(http_meta::Location::Body(_)) => "body".to_string(),
                    Some(http_meta::Location::Query(q)) => format!("query {}", q.key),
                    Some(_) => "other".to_string(),
                    None => "-".to_string(),
                };
                self.out.push(format!("{} @ {loc} {} = {:?}", cx.path(), cx.response_code().unwrap_or(0), s.value));
                if self.limit.is_some_and(|l| self.out.len() >= l) {
                    return Walk::Stop;
                }
            }
            Walk::Continue
        }
    }

    const SAMPLE: &str = r#"
method {
  id { name: "get" api_type: HTTP_REST }
  args {
    key: "A"
    value {
      primitive { string_value { value: "curl" } }
      meta { http { header { key: "User-Agent" } } }
    }
  }
  args {
    key: "B"
    value {
      struct {
        fields { key: "name" value { primitive { string_value { value: "x" } } } }
        fields {
          key: "tags"
          value { list {
            elems { primitive { string_value { value: "t0" } } }
            elems { primitive { int64_value { value: 3 } } }
            elems { optional { data { primitive { string_value { value: "t2" } } } } }
          } }
        }
        fields { key: "n" value { optional { none {} } } }
      }
      meta { http { body { content_type: JSON } } }
    }
  }
  responses {
    key: "C"
    value {
      oneof {
        options { key: "o1" value { primitive { bool_value { value: true } } } }
        options { key: "o2" value { primitive { string_value { value: "s" } } } }
      }
      meta { http { body { content_type: JSON } response_code: 200 } }
    }
  }
  responses {
    key: "D"
    value {
      struct {
        map_type {
          key { primitive { string_value {} } }
          value { primitive { float_value { value: 1.5 } } }
        }
      }
      meta { http { header { key: "X-Map" } response_code: 404 } }
    }
  }
}
"#;

    fn sample() -> pb::Witness {
        text::parse(SAMPLE).expect("sample parses")
    }

    #[test]
    fn counts_primitives_by_type() {
        let w = sample();
        let mut c = CountPrimitives::default();
        let mut walker = Walker::new();
        assert_eq!(walker.witness(&w, &mut c), ControlFlow::Continue(()));
        let want: Vec<(&str, usize)> = vec![("bool", 1), ("float", 1), ("int64", 1), ("string", 6)];
        assert_eq!(c.counts.into_iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn collects_string_paths_with_locations() {
        let w = sample();
        let mut v = StringPaths::default();
        let mut walker = Walker::new();
        assert!(walker.witness(&w, &mut v).is_continue());
        assert_eq!(
            v.out,
            vec![
                r#"args[A] @ header User-Agent 0 = "curl""#,
                r#"args[B].name @ body 0 = "x""#,
                r#"args[B].tags[0] @ body 0 = "t0""#,
                r#"args[B].tags[2]? @ body 0 = "t2""#,
                r#"responses[C].oneof[o2] @ body 200 = "s""#,
                r#"responses[D].<key> @ header X-Map 404 = """#,
            ]
        );
    }

    #[test]
    fn stop_ends_the_walk() {
        let w = sample();
        let mut v = StringPaths { limit: Some(2), ..Default::default() };
        let mut walker = Walker::new();
        assert!(walker.witness(&w, &mut v).is_break());
        assert_eq!(v.out.len(), 2);
        // The walker is reusable after a stop.
        let mut c = CountPrimitives::default();
        assert!(walker.witness(&w, &mut c).is_continue());
        assert_eq!(c.counts["string"], 6);
    }

    #[test]
    fn skip_children_skips_a_field() {
        let w = sample();
        let mut v = StringPaths { skip_fields: vec!["tags"], ..Default::default() };
        assert!(Walker::new().witness(&w, &mut v).is_continue());
        assert_eq!(v.out.len(), 4);
        assert!(v.out.iter().all(|s| !s.contains("tags")));
    }

    /// Records enter/leave events to check pairing and skipping.
    #[derive(Default)]
    struct Events {
        log: Vec<String>,
        skip_lists: bool,
    }

    impl<'a> Visitor<'a> for Events {
        fn enter_data(&mut self, cx: &Context<'_, 'a>, _: &'a pb::Data) -> Walk {
            self.log.push(format!("+data {}", cx.path()));
            Walk::Continue
        }
        fn leave_data(&mut self, cx: &Context<'_, 'a>, _: &'a pb::Data) -> Walk {
            self.log.push(format!("-data {}", cx.path()));
            Walk::Continue
        }
        fn enter_list(&mut self, _: &Context<'_, 'a>, _: &'a pb::List) -> Walk {
            self.log.push("+list".into());
            if self.skip_lists { Walk::SkipChildren } else { Walk::Continue }
        }
        fn leave_list(&mut self, _: &Context<'_, 'a>, _: &'a pb::List) -> Walk {
            self.log.push("-list".into());
            Walk::Continue
        }
    }

    #[test]
    fn enter_and_leave_pair_up() {
        let w = sample();
        let m = w.method.as_ref().unwrap();
        let b = &m.args["B"];
        let mut v = Events { skip_lists: true, ..Default::default() };
        let mut walker = Walker::new();
        assert!(walker.data(b, &mut v).is_continue());
        assert_eq!(
            v.log,
            vec!["+data ", "+data n", "-data n", "+data name", "-data name", "+data tags", "+list", "-list", "-data tags", "-data ",]
        );
    }

    #[test]
    fn spec_paths_start_with_the_method() {
        let spec = pb::ApiSpec {
            methods: vec![pb::Witness::default().method.unwrap_or_default(), sample().method.unwrap()],
            tags: Default::default(),
        };
        let mut v = StringPaths::default();
        assert!(Walker::new().spec(&spec, &mut v).is_continue());
        assert_eq!(v.out.len(), 6);
        assert!(v.out[0].starts_with("methods[1].args[A] @"), "{}", v.out[0]);
    }

    #[test]
    fn context_reports_the_method() {
        struct M<'a>(Option<&'a pb::Method>);
        impl<'a> Visitor<'a> for M<'a> {
            fn primitive(&mut self, cx: &Context<'_, 'a>, _: &'a pb::Primitive) -> Walk {
                self.0 = cx.method();
                Walk::Stop
            }
        }
        let w = sample();
        let mut v = M(None);
        assert!(Walker::new().witness(&w, &mut v).is_break());
        assert!(std::ptr::eq(v.0.unwrap(), w.method.as_ref().unwrap()));
    }
}
