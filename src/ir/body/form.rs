//! `application/x-www-form-urlencoded` bodies (and query strings): a struct of fields, a
//! repeated key a list of its values in order, each value categorised.

use super::Ctx;
use crate::ir::value::{Key, Val};

/// Percent-decodes `s`, `+` as a space when `plus_is_space`.
pub fn percent_decode(s: &[u8], plus_is_space: bool) -> std::borrow::Cow<'_, [u8]> {
    if !s.iter().any(|&c| c == b'%' || (plus_is_space && c == b'+')) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < s.len() && s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit() => {
                let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(h(s[i + 1]) * 16 + h(s[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// The decoded `(name, value)` pairs of `a=1&b=2`, empty pieces skipped.
pub fn pairs(q: &[u8]) -> impl Iterator<Item = (String, std::borrow::Cow<'_, [u8]>)> + '_ {
    q.split(|&c| c == b'&').filter(|p| !p.is_empty()).map(|part| {
        let (n, v) = match part.iter().position(|&c| c == b'=') {
            Some(p) => (&part[..p], &part[p + 1..]),
            None => (part, &b""[..]),
        };
        (String::from_utf8_lossy(&percent_decode(n, true)).into_owned(), percent_decode(v, true))
    })
}

/// A form body as a struct.
pub fn parse(cx: &mut Ctx<'_>, body: &[u8]) -> Val {
    let fields: Vec<(Key, Val)> = pairs(body)
        .map(|(k, v)| {
            let sensitive = cx.sensitive_name(&k);
            let p = cx.text(&v, sensitive);
            (cx.key(&k), Val::Prim(p))
        })
        .collect();
    Val::struct_grouped(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_lists() {
        let d = parse(&mut Ctx::new(None), b"name=J%C3%B6hn+Do%C3%A9&expr=a%2Bb%3Dc%26d&n=5&n=6&flag&bad=%zz%4");
        let t = crate::ir::body::flat_val(&d);
        for want in [
            r#""Jöhn Doé""#,
            r#""a+b=c&d""#,
            "int64_value { value: 5 }",
            "int64_value { value: 6 }",
            r#"key: "flag""#,
            r#""%zz%4""#,
            "list {",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
        assert_eq!(&*percent_decode(b"%41%4", false), b"A%4");
        assert_eq!(&*percent_decode(b"a+b%", false), b"a+b%");
    }

    #[test]
    fn sensitive_fields_are_redacted() {
        let r = crate::ir::redact::Redactor::builtin();
        let mut cx = Ctx::new(Some(&r));
        let t = crate::ir::body::flat_val(&parse(&mut cx, b"username=jo&password=p%40ss+w0rd&csrf_token=abc123"));
        assert!(!t.contains("p@ss") && !t.contains("abc123") && t.contains("\"jo\""), "{t}");
        assert_eq!(cx.stats.redactions, 2);
    }
}
