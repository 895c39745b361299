//! Protobuf text format for the IR types: a parser and a printer.
//!
//! The parser reads what protobuf's text printers write (and what the test vectors use):
//! `name { ... }`, `name: { ... }` and the older `name < ... >` / `name: < ... >` for messages;
//! `name: scalar` with strings in single or double quotes (adjacent literals concatenate; escapes
//! `\n \t \r \a \b \f \v \\ \' \" \?`, octal `\NNN`, hex `\xNN`, `\uXXXX`, `\UXXXXXXXX`),
//! integers (decimal, `0x` hex, leading-`0` octal, optional `-`), floats (with optional `f`
//! suffix; `inf`, `infinity`, `nan` in any case, optional `-`), booleans (`true`, `True`, `t`,
//! `1` and their opposites), enum values by name or number; repeated fields written once per
//! element or as a list `name: [a, b]`; map entries as repeated `name { key: "k" value { ... } }`;
//! `#` comments; optional `,` or `;` after a field. `[extension]` and `Any` names are rejected.
//!
//! It builds a small borrowed tree first ([`Field`]) and then converts it per type
//! ([`TextFormat::merge_field`], hand-written for each message). Errors carry `line:column`
//! (1-based; columns count characters). Nesting is capped at [`MAX_DEPTH`] so hostile input cannot
//! exhaust the stack.
//!
//! The printer writes the format protobuf's own printers use: two-space indent, `name {`, scalar
//! fields only when set (oneof members always), map entries in key order, floats in their
//! shortest round-trip form, strings escaped so that the parser reads back the same value.

use std::collections::BTreeMap;
use std::fmt;

use super::pb;

/// Deepest message nesting the parser accepts.
pub const MAX_DEPTH: usize = 512;

/// A 1-based position in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A parse error at a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {msg}")]
pub struct TextError {
    pub pos: Pos,
    pub msg: String,
}

fn err<T>(pos: Pos, msg: impl Into<String>) -> Result<T, TextError> {
    Err(TextError { pos, msg: msg.into() })
}

// ---------------------------------------------------------------------------------------------
// Lexer.

#[derive(Debug, Clone, PartialEq)]
enum Tok<'s> {
    Ident(&'s str),
    Num(&'s str),
    Str(Vec<u8>),
    Punct(u8),
    Eof,
}

struct Lexer<'s> {
    src: &'s str,
    at: usize,
    line: u32,
    col: u32,
    peeked: Option<(Tok<'s>, Pos)>,
}

impl<'s> Lexer<'s> {
    fn new(src: &'s str) -> Self {
        Lexer { src, at: 0, line: 1, col: 1, peeked: None }
    }

    fn pos(&self) -> Pos {
        Pos { line: self.line, col: self.col }
    }

    fn byte(&self) -> Option<u8> {
        self.src.as_bytes().get(self.at).copied()
    }

    fn byte_at(&self, off: usize) -> Option<u8> {
        self.src.as_bytes().get(self.at + off).copied()
    }

    fn bump(&mut self) {
        let b = self.src.as_bytes()[self.at];
        self.at += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            // Count characters, not UTF-8 continuation bytes.
            self.col += 1;
        }
    }

    fn skip_space(&mut self) {
        while let Some(b) = self.byte() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => self.bump(),
                b'#' => {
                    while let Some(b) = self.byte() {
                        if b == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Result<&(Tok<'s>, Pos), TextError> {
        if self.peeked.is_none() {
            let t = self.lex()?;
            self.peeked = Some(t);
        }
        Ok(self.peeked.as_ref().expect("just set"))
    }

    fn next(&mut self) -> Result<(Tok<'s>, Pos), TextError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn lex(&mut self) -> Result<(Tok<'s>, Pos), TextError> {
        self.skip_space();
        let pos = self.pos();
        let Some(b) = self.byte() else {
            return Ok((Tok::Eof, pos));
        };
        let start = self.at;
        let tok = match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while matches!(self.byte(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_')) {
                    self.bump();
                }
                Tok::Ident(&self.src[start..self.at])
            }
            b'0'..=b'9' => self.number(start),
            b'.' if matches!(self.byte_at(1), Some(b'0'..=b'9')) => self.number(start),
            b'"' | b'\'' => Tok::Str(self.string(b)?),
            b'{' | b'}' | b'<' | b'>' | b'[' | b']' | b':' | b',' | b';' | b'-' | b'/' => {
                self.bump();
                Tok::Punct(b)
            }
            _ => {
                let c = self.src[self.at..].chars().next().unwrap_or('?');
                return err(pos, format!("unexpected character {c:?}"));
            }
        };
        Ok((tok, pos))
    }

    fn number(&mut self, start: usize) -> Tok<'s> {
        let hex = self.src[start..].starts_with("0x") || self.src[start..].starts_with("0X");
        while let Some(b) = self.byte() {
            let exp_sign = !hex && (b == b'+' || b == b'-') && matches!(self.src.as_bytes()[self.at - 1], b'e' | b'E');
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exp_sign {
                self.bump();
            } else {
                break;
            }
        }
        Tok::Num(&self.src[start..self.at])
    }

    fn string(&mut self, quote: u8) -> Result<Vec<u8>, TextError> {
        let open = self.pos();
        self.bump();
        let mut out = Vec::new();
        loop {
            let pos = self.pos();
            let Some(b) = self.byte() else {
                return err(open, "unterminated string");
            };
            match b {
                b'\n' => return err(open, "unterminated string (newline in string)"),
                b'\\' => {
                    self.bump();
                    self.escape(pos, &mut out)?;
                }
                _ if b == quote => {
                    self.bump();
                    return Ok(out);
                }
                _ => {
                    out.push(b);
                    self.bump();
                }
            }
        }
    }

    fn escape(&mut self, pos: Pos, out: &mut Vec<u8>) -> Result<(), TextError> {
        let Some(b) = self.byte() else {
            return err(pos, "unterminated escape");
        };
        self.bump();
        let simple = match b {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'v' => Some(0x0b),
            b'\\' | b'\'' | b'"' | b'?' => Some(b),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            return Ok(());
        }
        match b {
            b'0'..=b'7' => {
                let mut v = u32::from(b - b'0');
                for _ in 0..2 {
                    match self.byte() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.bump();
                        }
                        _ => break,
                    }
                }
                match u8::try_from(v) {
                    Ok(v) => out.push(v),
                    Err(_) => return err(pos, "octal escape out of range"),
                }
            }
            b'x' | b'X' => {
                let v = self.hex_digits(pos, 1, 2)?;
                out.push(v as u8);
            }
            b'u' | b'U' => {
                let n = if b == b'u' { 4 } else { 8 };
                let v = self.hex_digits(pos, n, n)?;
                match char::from_u32(v) {
                    Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    None => return err(pos, format!("invalid code point U+{v:X}")),
                }
            }
            _ => return err(pos, format!("unknown escape \\{}", char::from(b))),
        }
        Ok(())
    }

    fn hex_digits(&mut self, pos: Pos, min: usize, max: usize) -> Result<u32, TextError> {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            match self.byte().and_then(|b| char::from(b).to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    n += 1;
                    self.bump();
                }
                None => break,
            }
        }
        if n < min {
            return err(pos, "bad hex escape");
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Tree.

/// A scalar as written: the parse into the field's type happens in the conversion.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'s> {
    Str(Vec<u8>),
    Num { neg: bool, text: &'s str },
    Ident { neg: bool, text: &'s str },
}

#[derive(Debug, Clone, PartialEq)]
enum Value<'s> {
    Message(Vec<Field<'s>>),
    Scalar(Scalar<'s>),
    List(Vec<Item<'s>>),
}

/// One field as written in the text: its name, position and value (a message, a scalar or a
/// list). [`TextFormat::merge_field`] impls read it with the typed accessors.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'s> {
    name: &'s str,
    item: Item<'s>,
}

/// One value with its position (a field's value or a list element).
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'s> {
    pos: Pos,
    value: Value<'s>,
}

struct Parser<'s> {
    lx: Lexer<'s>,
    depth: usize,
}

impl<'s> Parser<'s> {
    /// Fields until `close` (or end of input when `close` is `None`).
    fn fields(&mut self, close: Option<u8>) -> Result<Vec<Field<'s>>, TextError> {
        let mut out = Vec::new();
        loop {
            let (tok, pos) = self.lx.next()?;
            match tok {
                Tok::Eof if close.is_none() => return Ok(out),
                Tok::Eof => {
                    return err(pos, format!("expected '{}'", char::from(close.unwrap_or(b'}'))));
                }
                Tok::Punct(c) if Some(c) == close => return Ok(out),
                Tok::Ident(name) => {
                    let item = self.field_value(name, pos)?;
                    out.push(Field { name, item });
                    if let (Tok::Punct(b',' | b';'), _) = self.lx.peek()? {
                        self.lx.next()?;
                    }
                }
                Tok::Punct(b'[') => {
                    return err(pos, "extension and Any field names are not supported");
                }
                other => {
                    return err(pos, format!("expected a field name, found {}", describe(&other)));
                }
            }
        }
    }

    fn field_value(&mut self, name: &str, name_pos: Pos) -> Result<Item<'s>, TextError> {
        let (tok, pos) = self.lx.peek()?.clone();
        match tok {
            Tok::Punct(b'{' | b'<') => self.message(),
            Tok::Punct(b':') => {
                self.lx.next()?;
                match self.lx.peek()? {
                    (Tok::Punct(b'{' | b'<'), _) => self.message(),
                    (Tok::Punct(b'['), _) => self.list(),
                    _ => self.scalar(),
                }
            }
            other => err(pos, format!("expected ':' or '{{' after field name `{name}` (at {name_pos}), found {}", describe(&other))),
        }
    }

    fn message(&mut self) -> Result<Item<'s>, TextError> {
        let (tok, pos) = self.lx.next()?;
        let close = match tok {
            Tok::Punct(b'{') => b'}',
            Tok::Punct(b'<') => b'>',
            other => return err(pos, format!("expected '{{', found {}", describe(&other))),
        };
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(pos, format!("nesting deeper than {MAX_DEPTH}"));
        }
        let fields = self.fields(Some(close))?;
        self.depth -= 1;
        Ok(Item { pos, value: Value::Message(fields) })
    }

    fn list(&mut self) -> Result<Item<'s>, TextError> {
        let (_, pos) = self.lx.next()?; // '['
        let mut items = Vec::new();
        if let (Tok::Punct(b']'), _) = self.lx.peek()? {
            self.lx.next()?;
            return Ok(Item { pos, value: Value::List(items) });
        }
        loop {
            let item = match self.lx.peek()? {
                (Tok::Punct(b'{' | b'<'), _) => self.message()?,
                _ => self.scalar()?,
            };
            items.push(item);
            match self.lx.next()? {
                (Tok::Punct(b','), _) => {}
                (Tok::Punct(b']'), _) => break,
                (other, p) => {
                    return err(p, format!("expected ',' or ']', found {}", describe(&other)));
                }
            }
        }
        Ok(Item { pos, value: Value::List(items) })
    }

    fn scalar(&mut self) -> Result<Item<'s>, TextError> {
        let (tok, pos) = self.lx.next()?;
        let s = match tok {
            Tok::Str(mut bytes) => {
                // Adjacent literals concatenate.
                while let (Tok::Str(_), _) = self.lx.peek()? {
                    if let (Tok::Str(more), _) = self.lx.next()? {
                        bytes.extend_from_slice(&more);
                    }
                }
                Scalar::Str(bytes)
            }
            Tok::Num(text) => Scalar::Num { neg: false, text },
            Tok::Ident(text) => Scalar::Ident { neg: false, text },
            Tok::Punct(b'-') => match self.lx.next()? {
                (Tok::Num(text), _) => Scalar::Num { neg: true, text },
                (Tok::Ident(text), _) => Scalar::Ident { neg: true, text },
                (other, p) => {
                    return err(p, format!("expected a number after '-', found {}", describe(&other)));
                }
            },
            other => return err(pos, format!("expected a value, found {}", describe(&other))),
        };
        Ok(Item { pos, value: Value::Scalar(s) })
    }
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Num(s) => format!("number `{s}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Punct(c) => format!("'{}'", char::from(*c)),
        Tok::Eof => "end of input".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Conversion: the tree into typed messages.

/// A message type that can be read from and written to text format.
pub trait TextFormat: Default {
    /// The message's name in the schema (for error messages).
    const NAME: &'static str;

    /// Reads one field (as written in the text) into `self`.
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError>;

    /// Prints the set fields of `self`.
    fn print_fields(&self, p: &mut Printer<'_>);
}

impl<T: TextFormat> TextFormat for Box<T> {
    const NAME: &'static str = T::NAME;

    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        (**self).merge_field(f)
    }

    fn print_fields(&self, p: &mut Printer<'_>) {
        (**self).print_fields(p)
    }
}

/// Parses `src` (a whole text) as a message of type `T`.
pub fn parse<T: TextFormat>(src: &str) -> Result<T, TextError> {
    let mut p = Parser { lx: Lexer::new(src), depth: 0 };
    let fields = p.fields(None)?;
    let mut m = T::default();
    for f in &fields {
        m.merge_field(f)?;
    }
    Ok(m)
}

/// The text form of `m`.
pub fn to_text<T: TextFormat>(m: &T) -> String {
    let mut out = String::new();
    write_text(m, &mut out);
    out
}

/// Appends the text form of `m` to `out`.
pub fn write_text<T: TextFormat>(m: &T, out: &mut String) {
    m.print_fields(&mut Printer { out, indent: 0 });
}

impl<'s> Item<'s> {
    /// Where the value starts.
    pub fn pos(&self) -> Pos {
        self.pos
    }

    fn scalar(&self, what: &str) -> Result<&Scalar<'s>, TextError> {
        match &self.value {
            Value::Scalar(s) => Ok(s),
            Value::Message(_) => err(self.pos, format!("expected {what}, found a message")),
            Value::List(_) => err(self.pos, format!("expected {what}, found a list")),
        }
    }

    /// The value as a scalar of type `T`.
    pub fn get<T: ScalarValue>(&self) -> Result<T, TextError> {
        T::from_item(self)
    }

    /// Reads the value, a message, into `m` (fields already set in `m` are kept or replaced).
    pub fn merge_into<T: TextFormat>(&self, m: &mut T) -> Result<(), TextError> {
        match &self.value {
            Value::Message(fields) => {
                for f in fields {
                    m.merge_field(f)?;
                }
                Ok(())
            }
            _ => err(self.pos, format!("expected a {} message", T::NAME)),
        }
    }

    /// The value as a message of type `T`.
    pub fn message<T: TextFormat>(&self) -> Result<T, TextError> {
        let mut m = T::default();
        self.merge_into(&mut m)?;
        Ok(m)
    }

    /// The value as a map entry `{ key: "k" value: ... }`; absent parts are defaults.
    fn entry<V: Default>(&self, mut value: impl FnMut(&Item<'s>) -> Result<V, TextError>) -> Result<(String, V), TextError> {
        let Value::Message(fields) = &self.value else {
            return err(self.pos, "expected a map entry { key: ... value: ... }");
        };
        let (mut k, mut v) = (String::new(), V::default());
        for f in fields {
            match f.name {
                "key" => k = f.single()?.get()?,
                "value" => v = value(f.single()?)?,
                other => {
                    return err(f.item.pos, format!("unknown field `{other}` in a map entry"));
                }
            }
        }
        Ok((k, v))
    }
}

impl<'s> Field<'s> {
    /// The field's name as written.
    pub fn name(&self) -> &'s str {
        self.name
    }

    /// Where the field's value starts.
    pub fn pos(&self) -> Pos {
        self.item.pos
    }

    /// The value of a singular field (a list is an error).
    pub fn single(&self) -> Result<&Item<'s>, TextError> {
        match self.item.value {
            Value::List(_) => err(self.item.pos, format!("field `{}` is not repeated", self.name)),
            _ => Ok(&self.item),
        }
    }

    /// The values of a repeated field: the list's elements, or the one value.
    pub fn items(&self) -> &[Item<'s>] {
        match &self.item.value {
            Value::List(items) => items,
            _ => std::slice::from_ref(&self.item),
        }
    }

    /// The error for a field that `T` does not have.
    pub fn unknown<T: TextFormat>(&self) -> TextError {
        TextError { pos: self.item.pos, msg: format!("unknown field `{}` in {}", self.name, T::NAME) }
    }

    /// Sets a singular scalar field.
    pub fn set<T: ScalarValue>(&self, slot: &mut T) -> Result<(), TextError> {
        *slot = self.single()?.get()?;
        Ok(())
    }

    /// Sets an enum field from a value name (via `from_name`) or number.
    pub fn set_enum(&self, slot: &mut i32, from_name: fn(&str) -> Option<i32>) -> Result<(), TextError> {
        let item = self.single()?;
        *slot = match item.scalar("an enum value")? {
            Scalar::Ident { neg: false, text } => match from_name(text) {
                Some(v) => v,
                None => {
                    return err(item.pos, format!("unknown value `{text}` for field `{}`", self.name));
                }
            },
            _ => item.get::<i32>()?,
        };
        Ok(())
    }

    /// Reads a singular message field into `slot` (merging into a value already there).
    pub fn set_message<T: TextFormat>(&self, slot: &mut Option<T>) -> Result<(), TextError> {
        self.single()?.merge_into(slot.get_or_insert_default())
    }

    /// Reads the field as a message (for oneof members).
    pub fn message<T: TextFormat>(&self) -> Result<T, TextError> {
        self.single()?.message()
    }

    /// Sets a `google.protobuf.*Value` wrapper field: `name { value: x }`.
    pub fn set_wrapper<T: ScalarValue>(&self, slot: &mut Option<T>) -> Result<(), TextError> {
        let item = self.single()?;
        let Value::Message(fields) = &item.value else {
            return err(item.pos, format!("expected a message {{ value: ... }} for `{}`", self.name));
        };
        let mut v = T::default();
        for f in fields {
            match f.name {
                "value" => f.set(&mut v)?,
                other => return err(f.item.pos, format!("unknown field `{other}` in a wrapper")),
            }
        }
        *slot = Some(v);
        Ok(())
    }

    /// Appends to a repeated scalar field.
    pub fn push<T: ScalarValue>(&self, v: &mut Vec<T>) -> Result<(), TextError> {
        for it in self.items() {
            v.push(it.get()?);
        }
        Ok(())
    }

    /// Appends to a repeated message field.
    pub fn push_message<T: TextFormat>(&self, v: &mut Vec<T>) -> Result<(), TextError> {
        for it in self.items() {
            v.push(it.message()?);
        }
        Ok(())
    }

    /// Adds entries to a map with scalar values.
    pub fn insert<V: ScalarValue>(&self, m: &mut BTreeMap<String, V>) -> Result<(), TextError> {
        for it in self.items() {
            let (k, v) = it.entry(|i| i.get())?;
            m.insert(k, v);
        }
        Ok(())
    }

    /// Adds entries to a map with message values.
    pub fn insert_message<V: TextFormat>(&self, m: &mut BTreeMap<String, V>) -> Result<(), TextError> {
        for it in self.items() {
            let (k, v) = it.entry(|i| i.message())?;
            m.insert(k, v);
        }
        Ok(())
    }
}

/// A scalar field type: how it reads from and writes to text, and which value is "unset".
pub trait ScalarValue: Sized + Default {
    fn from_item(item: &Item<'_>) -> Result<Self, TextError>;
    fn write(&self, out: &mut String);
    /// The proto3 zero value (`-0.0` included), which is not printed.
    fn is_zero(&self) -> bool;
}

impl ScalarValue for String {
    fn from_item(item: &Item<'_>) -> Result<Self, TextError> {
        match item.scalar("a string")? {
            Scalar::Str(b) => match std::str::from_utf8(b) {
                Ok(s) => Ok(s.to_owned()),
                Err(_) => err(item.pos, "string is not valid UTF-8"),
            },
            _ => err(item.pos, "expected a string"),
        }
    }
    fn write(&self, out: &mut String) {
        write_quoted(self.as_bytes(), true, out);
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl ScalarValue for Vec<u8> {
    fn from_item(item: &Item<'_>) -> Result<Self, TextError> {
        match item.scalar("a string")? {
            Scalar::Str(b) => Ok(b.clone()),
            _ => err(item.pos, "expected a string"),
        }
    }
    fn write(&self, out: &mut String) {
        write_quoted(self, false, out);
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl ScalarValue for bool {
    fn from_item(item: &Item<'_>) -> Result<Self, TextError> {
        match item.scalar("a bool")? {
            Scalar::Ident { neg: false, text: "true" | "True" | "t" } | Scalar::Num { neg: false, text: "1" } => Ok(true),
            Scalar::Ident { neg: false, text: "false" | "False" | "f" } | Scalar::Num { neg: false, text: "0" } => Ok(false),
            _ => err(item.pos, "expected true or false"),
        }
    }
    fn write(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
    fn is_zero(&self) -> bool {
        !*self
    }
}

fn int_value(item: &Item<'_>, what: &str) -> Result<i128, TextError> {
    let Scalar::Num { neg, text } = item.scalar(what)? else {
        return err(item.pos, format!("expected {what}"));
    };
    let (digits, radix) = if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        (h, 16)
    } else if text.len() > 1 && text.starts_with('0') {
        (&text[1..], 8)
    } else {
        (*text, 10)
    };
    if digits.starts_with('+') {
        return err(item.pos, format!("`{text}` is not {what}"));
    }
    match u64::from_str_radix(digits, radix) {
        Ok(m) => Ok(if *neg { -i128::from(m) } else { i128::from(m) }),
        Err(_) => err(item.pos, format!("`{text}` is not {what}")),
    }
}

macro_rules! int_scalar {
    ($($t:ty => $what:literal),*) => {$(
        impl ScalarValue for $t {
            fn from_item(item: &Item<'_>) -> Result<Self, TextError> {
                let v = int_value(item, $what)?;
                <$t>::try_from(v).or_else(|_| err(item.pos, format!("{v} is out of range for {}", $what)))
            }
            fn write(&self, out: &mut String) {
                use std::fmt::Write as _;
                let _ = write!(out, "{self}");
            }
            fn is_zero(&self) -> bool {
                *self == 0
            }
        }
    )*};
}
int_scalar!(i32 => "an int32", i64 => "an int64", u32 => "a uint32", u64 => "a uint64");

macro_rules! float_scalar {
    ($($t:ty),*) => {$(
        impl ScalarValue for $t {
            fn from_item(item: &Item<'_>) -> Result<Self, TextError> {
                let (neg, v) = match item.scalar("a number")? {
                    Scalar::Ident { neg, text } => {
                        let t = text.to_ascii_lowercase();
                        match t.as_str() {
                            "inf" | "infinity" => (*neg, <$t>::INFINITY),
                            "nan" => (*neg, <$t>::NAN),
                            _ => return err(item.pos, format!("`{text}` is not a number")),
                        }
                    }
                    Scalar::Num { neg, text } => {
                        let body = if text.starts_with("0x") || text.starts_with("0X") {
                            return int_value(item, "a number").map(|v| v as $t);
                        } else {
                            text.strip_suffix(['f', 'F']).unwrap_or(text)
                        };
                        match body.parse::<$t>() {
                            Ok(v) if !body.starts_with(['+', '-']) => (*neg, v),
                            _ => return err(item.pos, format!("`{text}` is not a number")),
                        }
                    }
                    Scalar::Str(_) => return err(item.pos, "expected a number, found a string"),
                };
                Ok(if neg { -v } else { v })
            }
            fn write(&self, out: &mut String) {
                use std::fmt::Write as _;
                if self.is_nan() {
                    out.push_str("nan");
                } else if self.is_infinite() {
                    out.push_str(if *self > 0.0 { "inf" } else { "-inf" });
                } else {
                    // Debug is the shortest text that reads back as the same value.
                    let _ = write!(out, "{self:?}");
                }
            }
            fn is_zero(&self) -> bool {
                *self == 0.0
            }
        }
    )*};
}
float_scalar!(f32, f64);

/// Writes `b` quoted; `utf8` keeps printable non-ASCII characters of a valid UTF-8 string.
fn write_quoted(b: &[u8], utf8: bool, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    if utf8 && let Ok(s) = std::str::from_utf8(b) {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\{b:03o}");
                    }
                }
                c => out.push(c),
            }
        }
    } else {
        for &c in b {
            match c {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x20..=0x7e => out.push(char::from(c)),
                _ => {
                    let _ = write!(out, "\\{c:03o}");
                }
            }
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Printer.

/// Writes fields in text format; [`TextFormat::print_fields`] impls call it.
pub struct Printer<'o> {
    out: &'o mut String,
    indent: usize,
}

impl Printer<'_> {
    fn start(&mut self, name: &str) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
        self.out.push_str(name);
    }

    fn open(&mut self, name: &str) {
        self.start(name);
        self.out.push_str(" {\n");
        self.indent += 1;
    }

    fn close(&mut self) {
        self.indent -= 1;
        self.start("}\n");
    }

    /// A scalar field, when not zero.
    pub fn scalar<T: ScalarValue>(&mut self, name: &str, v: &T) {
        if !v.is_zero() {
            self.scalar_always(name, v);
        }
    }

    /// A scalar field, even when zero (oneof members, map entries).
    pub fn scalar_always<T: ScalarValue>(&mut self, name: &str, v: &T) {
        self.start(name);
        self.out.push_str(": ");
        v.write(self.out);
        self.out.push('\n');
    }

    /// An enum field, by name when `to_name` knows the value, when not zero.
    pub fn enumeration(&mut self, name: &str, v: i32, to_name: fn(i32) -> Option<&'static str>) {
        if v != 0 {
            match to_name(v) {
                Some(n) => {
                    self.start(name);
                    self.out.push_str(": ");
                    self.out.push_str(n);
                    self.out.push('\n');
                }
                None => self.scalar_always(name, &v),
            }
        }
    }

    /// A message field, when present.
    pub fn message<T: TextFormat>(&mut self, name: &str, m: Option<&T>) {
        if let Some(m) = m {
            self.message_always(name, m);
        }
    }

    /// A message field (or oneof member), even when empty.
    pub fn message_always<T: TextFormat>(&mut self, name: &str, m: &T) {
        self.open(name);
        m.print_fields(self);
        self.close();
    }

    /// A `google.protobuf.*Value` wrapper, when present.
    pub fn wrapper<T: ScalarValue>(&mut self, name: &str, v: Option<&T>) {
        if let Some(v) = v {
            self.open(name);
            self.scalar("value", v);
            self.close();
        }
    }

    /// A repeated scalar field, one line per element.
    pub fn repeated<T: ScalarValue>(&mut self, name: &str, v: &[T]) {
        for x in v {
            self.scalar_always(name, x);
        }
    }

    /// A repeated message field.
    pub fn repeated_messages<T: TextFormat>(&mut self, name: &str, v: &[T]) {
        for x in v {
            self.message_always(name, x);
        }
    }

    /// A map with scalar values, one entry block per key, in key order.
    pub fn map<V: ScalarValue>(&mut self, name: &str, m: &BTreeMap<String, V>) {
        for (k, v) in m {
            self.open(name);
            self.scalar_always("key", k);
            self.scalar_always("value", v);
            self.close();
        }
    }

    /// A map with message values, one entry block per key, in key order.
    pub fn map_messages<V: TextFormat>(&mut self, name: &str, m: &BTreeMap<String, V>) {
        for (k, v) in m {
            self.open(name);
            self.scalar_always("key", k);
            self.message_always("value", v);
            self.close();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-message conversions.

fn api_type_from(s: &str) -> Option<i32> {
    pb::ApiType::from_str_name(s).map(i32::from)
}
fn api_type_name(v: i32) -> Option<&'static str> {
    pb::ApiType::try_from(v).ok().map(pb::ApiType::as_str_name)
}
fn auth_type_from(s: &str) -> Option<i32> {
    pb::http_auth::HttpAuthType::from_str_name(s).map(i32::from)
}
fn auth_type_name(v: i32) -> Option<&'static str> {
    pb::http_auth::HttpAuthType::try_from(v).ok().map(pb::http_auth::HttpAuthType::as_str_name)
}
fn content_type_from(s: &str) -> Option<i32> {
    pb::http_body::ContentType::from_str_name(s).map(i32::from)
}
fn content_type_name(v: i32) -> Option<&'static str> {
    pb::http_body::ContentType::try_from(v).ok().map(pb::http_body::ContentType::as_str_name)
}

impl TextFormat for pb::Witness {
    const NAME: &'static str = "Witness";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "method" => f.set_message(&mut self.method),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.message("method", self.method.as_ref());
    }
}

impl TextFormat for pb::ApiSpec {
    const NAME: &'static str = "APISpec";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "methods" => f.push_message(&mut self.methods),
            "tags" => f.insert(&mut self.tags),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.repeated_messages("methods", &self.methods);
        p.map("tags", &self.tags);
    }
}

impl TextFormat for pb::Method {
    const NAME: &'static str = "Method";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "id" => f.set_message(&mut self.id),
            "args" => f.insert_message(&mut self.args),
            "responses" => f.insert_message(&mut self.responses),
            "meta" => f.set_message(&mut self.meta),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.message("id", self.id.as_ref());
        p.map_messages("args", &self.args);
        p.map_messages("responses", &self.responses);
        p.message("meta", self.meta.as_ref());
    }
}

impl TextFormat for pb::MethodId {
    const NAME: &'static str = "MethodID";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "name" => f.set(&mut self.name),
            "api_type" => f.set_enum(&mut self.api_type, api_type_from),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.scalar("name", &self.name);
        p.enumeration("api_type", self.api_type, api_type_name);
    }
}

impl TextFormat for pb::MethodMeta {
    const NAME: &'static str = "MethodMeta";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        use pb::method_meta::Meta;
        self.meta = Some(match f.name() {
            "grpc" => Meta::Grpc(f.message()?),
            "http" => Meta::Http(f.message()?),
            _ => return Err(f.unknown::<Self>()),
        });
        Ok(())
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        use pb::method_meta::Meta;
        match &self.meta {
            Some(Meta::Grpc(x)) => p.message_always("grpc", x),
            Some(Meta::Http(x)) => p.message_always("http", x),
            None => {}
        }
    }
}

macro_rules! empty_text {
    ($($t:ty => $name:literal),*) => {$(
        impl TextFormat for $t {
            const NAME: &'static str = $name;
            fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
                Err(f.unknown::<Self>())
            }
            fn print_fields(&self, _: &mut Printer<'_>) {}
        }
    )*};
}
empty_text!(
    pb::GrpcMethodMeta => "GRPCMethodMeta",
    pb::GrpcMeta => "GRPCMeta",
    pb::HttpEmpty => "HTTPEmpty",
    pb::NoneValue => "None",
    pb::ExampleValue => "ExampleValue"
);

impl TextFormat for pb::HttpMethodMeta {
    const NAME: &'static str = "HTTPMethodMeta";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "method" => f.set(&mut self.method),
            "path_template" => f.set(&mut self.path_template),
            "host" => f.set(&mut self.host),
            "processing_latency" => f.set(&mut self.processing_latency),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.scalar("method", &self.method);
        p.scalar("path_template", &self.path_template);
        p.scalar("host", &self.host);
        p.scalar("processing_latency", &self.processing_latency);
    }
}

impl TextFormat for pb::Data {
    const NAME: &'static str = "Data";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        use pb::data::Value;
        let v = match f.name() {
            "primitive" => Value::Primitive(f.message()?),
            "struct" => Value::Struct(f.message()?),
            "list" => Value::List(f.message()?),
            "optional" => Value::Optional(f.message()?),
            "oneof" => Value::Oneof(f.message()?),
            "meta" => return f.set_message(&mut self.meta),
            "nullable" => return f.set(&mut self.nullable),
            "example_values" => return f.insert_message(&mut self.example_values),
            _ => return Err(f.unknown::<Self>()),
        };
        self.value = Some(v);
        Ok(())
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        use pb::data::Value;
        match &self.value {
            Some(Value::Primitive(x)) => p.message_always("primitive", x),
            Some(Value::Struct(x)) => p.message_always("struct", x),
            Some(Value::List(x)) => p.message_always("list", x),
            Some(Value::Optional(x)) => p.message_always("optional", x),
            Some(Value::Oneof(x)) => p.message_always("oneof", x),
            None => {}
        }
        p.message("meta", self.meta.as_ref());
        p.scalar("nullable", &self.nullable);
        p.map_messages("example_values", &self.example_values);
    }
}

impl TextFormat for pb::DataMeta {
    const NAME: &'static str = "DataMeta";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        use pb::data_meta::Meta;
        self.meta = Some(match f.name() {
            "grpc" => Meta::Grpc(f.message()?),
            "http" => Meta::Http(f.message()?),
            _ => return Err(f.unknown::<Self>()),
        });
        Ok(())
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        use pb::data_meta::Meta;
        match &self.meta {
            Some(Meta::Grpc(x)) => p.message_always("grpc", x),
            Some(Meta::Http(x)) => p.message_always("http", x),
            None => {}
        }
    }
}

impl TextFormat for pb::HttpMeta {
    const NAME: &'static str = "HTTPMeta";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        use pb::http_meta::Location as L;
        let v = match f.name() {
            "path" => L::Path(f.message()?),
            "query" => L::Query(f.message()?),
            "header" => L::Header(f.message()?),
            "cookie" => L::Cookie(f.message()?),
            "body" => L::Body(f.message()?),
            "empty" => L::Empty(f.message()?),
            "auth" => L::Auth(f.message()?),
            "multipart" => L::Multipart(f.message()?),
            "response_code" => return f.set(&mut self.response_code),
            _ => return Err(f.unknown::<Self>()),
        };
        self.location = Some(v);
        Ok(())
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        use pb::http_meta::Location as L;
        match &self.location {
            Some(L::Path(x)) => p.message_always("path", x),
            Some(L::Query(x)) => p.message_always("query", x),
            Some(L::Header(x)) => p.message_always("header", x),
            Some(L::Cookie(x)) => p.message_always("cookie", x),
            Some(L::Body(x)) => p.message_always("body", x),
            Some(L::Empty(x)) => p.message_always("empty", x),
            Some(L::Auth(x)) => p.message_always("auth", x),
            Some(L::Multipart(x)) => p.message_always("multipart", x),
            None => {}
        }
        p.scalar("response_code", &self.response_code);
    }
}

macro_rules! one_string_text {
    ($($t:ty => $name:literal, $field:ident, $text:literal);*) => {$(
        impl TextFormat for $t {
            const NAME: &'static str = $name;
            fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
                match f.name() {
                    $text => f.set(&mut self.$field),
                    _ => Err(f.unknown::<Self>()),
                }
            }
            fn print_fields(&self, p: &mut Printer<'_>) {
                p.scalar($text, &self.$field);
            }
        }
    )*};
}
one_string_text!(
    pb::HttpPath => "HTTPPath", key, "key";
    pb::HttpQuery => "HTTPQuery", key, "key";
    pb::HttpHeader => "HTTPHeader", key, "key";
    pb::HttpCookie => "HTTPCookie", key, "key";
    pb::HttpMultipart => "HTTPMultipart", r#type, "type"
);

impl TextFormat for pb::HttpAuth {
    const NAME: &'static str = "HTTPAuth";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "type" => f.set_enum(&mut self.r#type, auth_type_from),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.enumeration("type", self.r#type, auth_type_name);
    }
}

impl TextFormat for pb::HttpBody {
    const NAME: &'static str = "HTTPBody";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "content_type" => f.set_enum(&mut self.content_type, content_type_from),
            "other_type" => f.set(&mut self.other_type),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.enumeration("content_type", self.content_type, content_type_name);
        p.scalar("other_type", &self.other_type);
    }
}

impl TextFormat for pb::Primitive {
    const NAME: &'static str = "Primitive";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        use pb::primitive::Value as V;
        let v = match f.name() {
            "bool_value" => V::BoolValue(f.message()?),
            "bytes_value" => V::BytesValue(f.message()?),
            "string_value" => V::StringValue(f.message()?),
            "int32_value" => V::Int32Value(f.message()?),
            "int64_value" => V::Int64Value(f.message()?),
            "uint32_value" => V::Uint32Value(f.message()?),
            "uint64_value" => V::Uint64Value(f.message()?),
            "double_value" => V::DoubleValue(f.message()?),
            "float_value" => V::FloatValue(f.message()?),
            "type_hint" => return f.set(&mut self.type_hint),
            "akita_annotations" => return f.set_message(&mut self.akita_annotations),
            "contains_random_value" => return f.set(&mut self.contains_random_value),
            "formats" => return f.insert(&mut self.formats),
            "format_kind" => return f.set(&mut self.format_kind),
            _ => return Err(f.unknown::<Self>()),
        };
        self.value = Some(v);
        Ok(())
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        use pb::primitive::Value as V;
        p.scalar("type_hint", &self.type_hint);
        match &self.value {
            Some(V::BoolValue(x)) => p.message_always("bool_value", x),
            Some(V::BytesValue(x)) => p.message_always("bytes_value", x),
            Some(V::StringValue(x)) => p.message_always("string_value", x),
            Some(V::Int32Value(x)) => p.message_always("int32_value", x),
            Some(V::Int64Value(x)) => p.message_always("int64_value", x),
            Some(V::Uint32Value(x)) => p.message_always("uint32_value", x),
            Some(V::Uint64Value(x)) => p.message_always("uint64_value", x),
            Some(V::DoubleValue(x)) => p.message_always("double_value", x),
            Some(V::FloatValue(x)) => p.message_always("float_value", x),
            None => {}
        }
        p.message("akita_annotations", self.akita_annotations.as_ref());
        p.scalar("contains_random_value", &self.contains_random_value);
        p.map("formats", &self.formats);
        p.scalar("format_kind", &self.format_kind);
    }
}

/// `X { XType type [1]; x value [2] }`.
macro_rules! typed_value_text {
    ($($t:ty => $name:literal),*) => {$(
        impl TextFormat for $t {
            const NAME: &'static str = $name;
            fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
                match f.name() {
                    "type" => f.set_message(&mut self.r#type),
                    "value" => f.set(&mut self.value),
                    _ => Err(f.unknown::<Self>()),
                }
            }
            fn print_fields(&self, p: &mut Printer<'_>) {
                p.message("type", self.r#type.as_ref());
                p.scalar("value", &self.value);
            }
        }
    )*};
}
typed_value_text!(
    pb::Bool => "Bool",
    pb::Bytes => "Bytes",
    pb::Str => "String",
    pb::Int32 => "Int32",
    pb::Int64 => "Int64",
    pb::Uint32 => "Uint32",
    pb::Uint64 => "Uint64",
    pb::Double => "Double",
    pb::Float => "Float"
);

macro_rules! fixed_values_text {
    ($($t:ty => $name:literal),*) => {$(
        impl TextFormat for $t {
            const NAME: &'static str = $name;
            fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
                match f.name() {
                    "fixed_values" => f.push(&mut self.fixed_values),
                    _ => Err(f.unknown::<Self>()),
                }
            }
            fn print_fields(&self, p: &mut Printer<'_>) {
                p.repeated("fixed_values", &self.fixed_values);
            }
        }
    )*};
}
fixed_values_text!(pb::BoolType => "BoolType", pb::BytesType => "BytesType");

impl TextFormat for pb::StringType {
    const NAME: &'static str = "StringType";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "fixed_values" => f.push(&mut self.fixed_values),
            "regex" => f.set(&mut self.regex),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.repeated("fixed_values", &self.fixed_values);
        p.scalar("regex", &self.regex);
    }
}

macro_rules! numeric_type_text {
    ($($t:ty => $name:literal),*) => {$(
        impl TextFormat for $t {
            const NAME: &'static str = $name;
            fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
                match f.name() {
                    "fixed_values" => f.push(&mut self.fixed_values),
                    "min" => f.set_wrapper(&mut self.min),
                    "max" => f.set_wrapper(&mut self.max),
                    _ => Err(f.unknown::<Self>()),
                }
            }
            fn print_fields(&self, p: &mut Printer<'_>) {
                p.repeated("fixed_values", &self.fixed_values);
                p.wrapper("min", self.min.as_ref());
                p.wrapper("max", self.max.as_ref());
            }
        }
    )*};
}
numeric_type_text!(
    pb::Int32Type => "Int32Type",
    pb::Int64Type => "Int64Type",
    pb::Uint32Type => "Uint32Type",
    pb::Uint64Type => "Uint64Type",
    pb::DoubleType => "DoubleType",
    pb::FloatType => "FloatType"
);

impl TextFormat for pb::AkitaAnnotations {
    const NAME: &'static str = "AkitaAnnotations";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "is_free" => f.set(&mut self.is_free),
            "is_sensitive" => f.set(&mut self.is_sensitive),
            "format_option" => f.set_message(&mut self.format_option),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.scalar("is_free", &self.is_free);
        p.scalar("is_sensitive", &self.is_sensitive);
        p.message("format_option", self.format_option.as_ref());
    }
}

impl TextFormat for pb::FormatOption {
    const NAME: &'static str = "FormatOption";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        use pb::format_option::Format;
        match f.name() {
            "string_format" => {
                let mut s = String::new();
                f.set(&mut s)?;
                self.format = Some(Format::StringFormat(s));
                Ok(())
            }
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        use pb::format_option::Format;
        match &self.format {
            Some(Format::StringFormat(s)) => p.scalar_always("string_format", s),
            None => {}
        }
    }
}

impl TextFormat for pb::Struct {
    const NAME: &'static str = "Struct";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "fields" => f.insert_message(&mut self.fields),
            "map_type" => f.set_message(&mut self.map_type),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.map_messages("fields", &self.fields);
        p.message("map_type", self.map_type.as_ref());
    }
}

impl TextFormat for pb::MapData {
    const NAME: &'static str = "MapData";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "key" => f.set_message(&mut self.key),
            "value" => f.set_message(&mut self.value),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.message("key", self.key.as_ref());
        p.message("value", self.value.as_ref());
    }
}

impl TextFormat for pb::List {
    const NAME: &'static str = "List";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "elems" => f.push_message(&mut self.elems),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.repeated_messages("elems", &self.elems);
    }
}

impl TextFormat for pb::Optional {
    const NAME: &'static str = "Optional";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        use pb::optional::Value;
        self.value = Some(match f.name() {
            "data" => Value::Data(f.message()?),
            "none" => Value::None(f.message()?),
            _ => return Err(f.unknown::<Self>()),
        });
        Ok(())
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        use pb::optional::Value;
        match &self.value {
            Some(Value::Data(x)) => p.message_always("data", x),
            Some(Value::None(x)) => p.message_always("none", x),
            None => {}
        }
    }
}

impl TextFormat for pb::OneOf {
    const NAME: &'static str = "OneOf";
    fn merge_field(&mut self, f: &Field<'_>) -> Result<(), TextError> {
        match f.name() {
            "options" => f.insert_message(&mut self.options),
            "potential_conflict" => f.set(&mut self.potential_conflict),
            _ => Err(f.unknown::<Self>()),
        }
    }
    fn print_fields(&self, p: &mut Printer<'_>) {
        p.map_messages("options", &self.options);
        p.scalar("potential_conflict", &self.potential_conflict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn prim(src: &str) -> Result<pb::Primitive, TextError> {
        parse(src)
    }

    fn string_value(p: &pb::Primitive) -> &str {
        match &p.value {
            Some(pb::primitive::Value::StringValue(s)) => &s.value,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn string_escapes() {
        let p = prim(r#"string_value { value: "a\"b\\c\n\t\r\a\b\f\v\?\'" }"#).unwrap();
        assert_eq!(string_value(&p), "a\"b\\c\n\t\r\x07\x08\x0c\x0b?'");
        let p = prim(r#"string_value { value: "\101\60\0x\x41\x4g\u00e9\U0001F600" }"#).unwrap();
        assert_eq!(string_value(&p), "A0\0x\u{41}\u{4}gé😀");
        // Octal escapes of UTF-8 bytes make a UTF-8 string.
        let p = prim(r#"string_value { value: '\303\251' "!" }"#).unwrap();
        assert_eq!(string_value(&p), "é!");
        let p = prim(r#"bytes_value { value: "\377\000" }"#).unwrap();
        assert_eq!(p.value, Some(pb::primitive::Value::BytesValue(pb::Bytes { r#type: None, value: vec![0xff, 0] })));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = prim("string_value {\n  value: \"\\377\"\n}").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (2, 10));
        assert!(e.msg.contains("UTF-8"), "{e}");
        let e = prim("string_value {\n  valeu: \"x\"\n}").unwrap_err();
        assert_eq!(e.to_string(), "2:10: unknown field `valeu` in String");
        let e = prim("int32_value { value: 2147483648 }").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (1, 22));
        assert!(e.msg.contains("out of range"), "{e}");
        let e = prim("string_value { value: \"abc }").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (1, 23));
        let e = prim("string_value { value: \"é\" } @").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (1, 29));
        let e = prim("string_value {").unwrap_err();
        assert!(e.msg.contains("expected '}'"), "{e}");
        let e = prim("string_value < value: \"x\" }").unwrap_err();
        assert!(e.msg.contains("expected a field name"), "{e}");
        let e: TextError = parse::<pb::HttpAuth>("type: BEARR").unwrap_err();
        assert_eq!(e.to_string(), "1:7: unknown value `BEARR` for field `type`");
        let e = prim("[ext.foo] { }").unwrap_err();
        assert!(e.msg.contains("not supported"), "{e}");
        let e = prim("type_hint \"x\"").unwrap_err();
        assert!(e.msg.contains("expected ':'"), "{e}");
    }

    #[test]
    fn numbers_bools_enums_and_lists() {
        let t: pb::Int64Type =
            parse("fixed_values: [1, -2, 0x10, 010] fixed_values: -0x7fffffffffffffff min { value: -9223372036854775808 } max {}").unwrap();
        assert_eq!(t.fixed_values, vec![1, -2, 16, 8, -0x7fff_ffff_ffff_ffff]);
        assert_eq!((t.min, t.max), (Some(i64::MIN), Some(0)));
        let t: pb::Uint64Type = parse("fixed_values: 18446744073709551615").unwrap();
        assert_eq!(t.fixed_values, vec![u64::MAX]);
        assert!(parse::<pb::Uint64Type>("fixed_values: -1").is_err());
        let t: pb::FloatType = parse("fixed_values: [1.5f, -inf, Infinity, .25, 1e3, 4.3275556e-08, 7] min { value: -NaN }").unwrap();
        assert_eq!(t.fixed_values[0], 1.5);
        assert_eq!(t.fixed_values[1], f32::NEG_INFINITY);
        assert_eq!(t.fixed_values[2], f32::INFINITY);
        assert_eq!(&t.fixed_values[3..], &[0.25, 1000.0, 4.327_555_6e-8, 7.0]);
        assert!(t.min.unwrap().is_nan());
        let t: pb::BoolType = parse("fixed_values: [true, False, t, f, 1, 0]").unwrap();
        assert_eq!(t.fixed_values, vec![true, false, true, false, true, false]);
        let a: pb::HttpAuth = parse("type: 2").unwrap();
        assert_eq!(a.r#type, 2);
        let b: pb::HttpBody = parse("# comment\ncontent_type: FORM_URL_ENCODED; other_type: 'x',").unwrap();
        assert_eq!((b.content_type, b.other_type.as_str()), (2, "x"));
        let b: pb::HttpBody = parse("content_type: 42").unwrap();
        assert_eq!(text_of(&b), "content_type: 42\n");
        let s: pb::ApiSpec = parse("tags { key: \"a\" value: \"b\" } tags: [{ key: \"c\" }]").unwrap();
        assert_eq!(s.tags.get("a").map(String::as_str), Some("b"));
        assert_eq!(s.tags.get("c").map(String::as_str), Some(""));
    }

    fn text_of<T: TextFormat>(m: &T) -> String {
        to_text(m)
    }

    #[test]
    fn depth_is_capped() {
        let deep = "optional { data { ".repeat(MAX_DEPTH) + &"} } ".repeat(MAX_DEPTH);
        let e = parse::<pb::Data>(&deep).unwrap_err();
        assert!(e.msg.contains("nesting"), "{e}");
        let ok = "optional { data { ".repeat(MAX_DEPTH / 2 - 1) + &"} } ".repeat(MAX_DEPTH / 2 - 1);
        parse::<pb::Data>(&ok).unwrap();
    }

    #[test]
    fn printer_output() {
        let d = pb::Data {
            value: Some(pb::data::Value::Primitive(pb::Primitive {
                value: Some(pb::primitive::Value::StringValue(pb::Str::default())),
                formats: [("uuid".to_string(), false)].into_iter().collect(),
                akita_annotations: Some(pb::AkitaAnnotations {
                    format_option: Some(pb::FormatOption { format: Some(pb::format_option::Format::StringFormat(String::new())) }),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            meta: Some(pb::DataMeta {
                meta: Some(pb::data_meta::Meta::Http(pb::HttpMeta {
                    location: Some(pb::http_meta::Location::Empty(pb::HttpEmpty {})),
                    response_code: -1,
                })),
            }),
            ..Default::default()
        };
        let t = to_text(&d);
        assert_eq!(
            t,
            "primitive {\n  string_value {\n  }\n  akita_annotations {\n    format_option {\n      \
             string_format: \"\"\n    }\n  }\n  formats {\n    key: \"uuid\"\n    value: false\n  }\n}\n\
             meta {\n  http {\n    empty {\n    }\n    response_code: -1\n  }\n}\n"
        );
        assert_eq!(parse::<pb::Data>(&t).unwrap(), d);
    }

    #[test]
    fn quoting() {
        let mut s = String::new();
        write_quoted("a\"\\\n\u{1}é".as_bytes(), true, &mut s);
        assert_eq!(s, r#""a\"\\\n\001é""#);
        s.clear();
        write_quoted(&[b'a', 0xc3, 0xa9, 0xff, 0x7f], false, &mut s);
        assert_eq!(s, r#""a\303\251\377\177""#);
    }

    fn arb_f32() -> impl Strategy<Value = f32> {
        prop_oneof![
            any::<f32>().prop_filter("not NaN", |x| !x.is_nan()),
            (any::<u32>()).prop_map(f32::from_bits).prop_filter("not NaN", |x| !x.is_nan()),
        ]
    }

    fn arb_f64() -> impl Strategy<Value = f64> {
        any::<u64>().prop_map(f64::from_bits).prop_filter("not NaN", |x| !x.is_nan())
    }

    proptest! {
        #[test]
        fn scalars_round_trip(
            s in any::<String>(),
            b in proptest::collection::vec(any::<u8>(), 0..32),
            f in arb_f32(),
            d in arb_f64(),
            i in any::<i64>(),
            u in any::<u64>(),
            fixed in proptest::collection::vec(arb_f64(), 0..4),
            min in proptest::option::of(arb_f64()),
        ) {
            let w = pb::StringType { fixed_values: vec![s.clone()], regex: s };
            prop_assert_eq!(parse::<pb::StringType>(&to_text(&w)).unwrap(), w);
            let w = pb::BytesType { fixed_values: vec![b] };
            prop_assert_eq!(parse::<pb::BytesType>(&to_text(&w)).unwrap(), w);
            let w = pb::Float { r#type: None, value: f };
            let back = parse::<pb::Float>(&to_text(&w)).unwrap();
            // -0.0 is not printed (it is unset) and reads back as 0.0.
            prop_assert_eq!(back.value, f);
            let w = pb::DoubleType { fixed_values: fixed, min, max: Some(d) };
            prop_assert_eq!(parse::<pb::DoubleType>(&to_text(&w)).unwrap(), w);
            let w = pb::Int64Type { fixed_values: vec![i, 0], min: Some(i), max: None };
            prop_assert_eq!(parse::<pb::Int64Type>(&to_text(&w)).unwrap(), w);
            let w = pb::Uint64 { r#type: None, value: u };
            prop_assert_eq!(parse::<pb::Uint64>(&to_text(&w)).unwrap(), w);
        }

        #[test]
        fn parser_never_panics(src in "[a-z_{}<>:\\[\\],;\"'\\\\0-9. \n#-]{0,64}") {
            let _ = parse::<pb::Witness>(&src);
            let _ = parse::<pb::Data>(&src);
        }
    }
}
