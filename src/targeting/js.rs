//! The JavaScript coercion rules GrowthBook's `evalCondition` relies on, without heap allocation.
//!
//! GrowthBook evaluates conditions with JavaScript operators (`value + "" === s`, `value * 1 === n`,
//! `a < b`, `RegExp.test(value)`), so a faithful port needs JavaScript's `ToString`, `ToNumber`,
//! truthiness and UTF-16 string ordering over JSON values. Everything here works on borrowed data:
//! strings are compared as streams, numbers are formatted into fixed-size stack buffers.

use std::cmp::Ordering;
use std::fmt::{self, Write};

use serde_json::{Number, Value};

/// `String({})` in JavaScript.
pub(crate) const OBJECT_STRING: &str = "[object Object]";

/// How deeply nested arrays are followed when converting them to strings; deeper values do not
/// match anything that needs their string form.
const MAX_STRING_DEPTH: usize = 128;

/// Static `null` standing in for a missing attribute (GrowthBook's `getPath` returns `null`).
pub(crate) static NULL: Value = Value::Null;

/// A JSON number as JavaScript sees it: an IEEE double.
pub(crate) fn num(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// JavaScript truthiness (`!!value`).
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            let x = num(n);
            x != 0.0 && !x.is_nan()
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// JavaScript `WhiteSpace` and `LineTerminator` code points (what `String.prototype.trim` removes).
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{A}' | '\u{B}' | '\u{C}' | '\u{D}' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// JavaScript `StringToNumber`: `Number("  12 ")` is 12, `Number("")` is 0, `Number("0x1f")` is
/// 31, `Number("12px")` is NaN.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let bytes = t.as_bytes();
    if let (Some(b'0'), Some(marker)) = (bytes.first(), bytes.get(1)) {
        let radix = match marker {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            b'b' | b'B' => 2,
            _ => 0,
        };
        if radix != 0 {
            return parse_radix(t.get(2..).unwrap_or(""), radix);
        }
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    // Rust's float grammar equals JavaScript's StrDecimalLiteral once the words Rust also accepts
    // (`inf`, `nan`, ...) are excluded, which this character filter does.
    if !bytes
        .iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// Digits of a `0x`/`0o`/`0b` literal; NaN when empty or when a digit is out of range.
fn parse_radix(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() {
        return f64::NAN;
    }
    let mut exact: Option<u128> = Some(0);
    let mut approx = 0.0_f64;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else {
            return f64::NAN;
        };
        exact = exact
            .and_then(|v| v.checked_mul(u128::from(radix)))
            .and_then(|v| v.checked_add(u128::from(d)));
        approx = approx * f64::from(radix) + f64::from(d);
    }
    // u128 -> f64 rounds to nearest, as JavaScript does; literals wider than 128 bits fall back to
    // repeated multiplication (within an ulp or so of JavaScript's value).
    #[allow(clippy::cast_precision_loss)] // rounding to the nearest double is the intent
    exact.map_or(approx, |v| v as f64)
}

/// JavaScript `ToNumber` of a JSON value (`value * 1`).
pub(crate) fn to_number(v: &Value) -> f64 {
    let mut cur = v;
    // Arrays convert through their string form: `[]` is "" (0), `[x]` is `String(x)`, and two or
    // more elements always contain a comma (NaN). So only single-element nesting needs following.
    loop {
        return match cur {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => num(n),
            Value::String(s) => string_to_number(s),
            Value::Object(_) => f64::NAN,
            Value::Array(items) => match items.as_slice() {
                [] => 0.0,
                [only] => match only {
                    // String(null) inside an array is "", and "" is 0; String(true) is NaN.
                    Value::Null => 0.0,
                    Value::Bool(_) => f64::NAN,
                    _ => {
                        cur = only;
                        continue;
                    }
                },
                _ => f64::NAN,
            },
        };
    }
}

/// The JavaScript type name GrowthBook's `getType` reports.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A fixed-capacity UTF-8 buffer on the stack; writing past capacity fails instead of growing.
pub(crate) struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    pub(crate) fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl<const N: usize> Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes `f` as JavaScript's `Number.prototype.toString()` does (`1e21`, `5e-7`, `0.1`, `100`).
pub(crate) fn write_js_number<W: Write + ?Sized>(f: f64, out: &mut W) -> fmt::Result {
    if f.is_nan() {
        return out.write_str("NaN");
    }
    if f == 0.0 {
        return out.write_str("0");
    }
    if f.is_infinite() {
        return out.write_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like JavaScript: "1.2345e3".
    let mut sci = StackBuf::<40>::new();
    write!(sci, "{:e}", f.abs())?;
    let (mantissa, exp) = sci.as_str().split_once('e').ok_or(fmt::Error)?;
    let exp: i32 = exp.parse().map_err(|_| fmt::Error)?;
    let mut digits = StackBuf::<24>::new();
    for part in mantissa.split('.') {
        digits.write_str(part)?;
    }
    let digits = digits.as_str();
    let k = i32::try_from(digits.len()).map_err(|_| fmt::Error)?;
    let n = exp + 1;
    if f < 0.0 {
        out.write_char('-')?;
    }
    if k <= n && n <= 21 {
        out.write_str(digits)?;
        for _ in 0..(n - k) {
            out.write_char('0')?;
        }
    } else if 0 < n && n <= 21 {
        let split = usize::try_from(n).map_err(|_| fmt::Error)?;
        let (int, frac) = digits.split_at_checked(split).ok_or(fmt::Error)?;
        out.write_str(int)?;
        out.write_char('.')?;
        out.write_str(frac)?;
    } else if -6 < n && n <= 0 {
        out.write_str("0.")?;
        for _ in 0..(-n) {
            out.write_char('0')?;
        }
        out.write_str(digits)?;
    } else {
        let (first, rest) = digits.split_at_checked(1).ok_or(fmt::Error)?;
        out.write_str(first)?;
        if !rest.is_empty() {
            out.write_char('.')?;
            out.write_str(rest)?;
        }
        let e = n - 1;
        write!(
            out,
            "e{}{}",
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        )?;
    }
    Ok(())
}

/// `String(value)` in JavaScript, as a `Display` (arrays join their elements with commas, `null`
/// elements become empty, objects are `[object Object]`).
#[cfg(test)]
pub(crate) struct JsString<'a>(pub(crate) &'a Value);

#[cfg(test)]
impl std::fmt::Display for JsString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_js_string(self.0, f, 0)
    }
}

fn write_js_string<W: Write + ?Sized>(v: &Value, out: &mut W, depth: usize) -> fmt::Result {
    match v {
        Value::Null => out.write_str("null"),
        Value::Bool(b) => out.write_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_js_number(num(n), out),
        Value::String(s) => out.write_str(s),
        Value::Object(_) => out.write_str(OBJECT_STRING),
        Value::Array(items) => {
            if depth >= MAX_STRING_DEPTH {
                return Err(fmt::Error);
            }
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                if !item.is_null() {
                    write_js_string(item, out, depth + 1)?;
                }
            }
            Ok(())
        }
    }
}

/// Runs `f` on `String(v)`. Strings are passed through; other values are formatted on the stack.
/// Only arrays whose string form exceeds 256 bytes are formatted into a heap `String`.
/// Returns `false` without calling `f` for arrays nested too deeply to convert.
pub(crate) fn with_js_string(v: &Value, f: impl FnOnce(&str) -> bool) -> bool {
    match v {
        Value::String(s) => f(s),
        Value::Null => f("null"),
        Value::Bool(b) => f(if *b { "true" } else { "false" }),
        Value::Object(_) => f(OBJECT_STRING),
        Value::Number(n) => {
            let mut buf = StackBuf::<40>::new();
            match write_js_number(num(n), &mut buf) {
                Ok(()) => f(buf.as_str()),
                Err(_) => false,
            }
        }
        Value::Array(_) => {
            let mut buf = StackBuf::<256>::new();
            if write_js_string(v, &mut buf, 0).is_ok() {
                return f(buf.as_str());
            }
            let mut heap = String::new();
            match write_js_string(v, &mut heap, 0) {
                Ok(()) => f(&heap),
                Err(_) => false,
            }
        }
    }
}

/// The order of two differing UTF-8 bytes at the first difference of two strings, as JavaScript's
/// UTF-16 code-unit comparison would order the characters they start.
///
/// UTF-8 byte order equals code-point order, which equals UTF-16 order except that U+E000..U+FFFF
/// (lead bytes 0xEE, 0xEF) sort after supplementary characters (lead bytes 0xF0..) in UTF-16,
/// whose high surrogates are 0xD800..0xDBFF. At the first difference both bytes are lead bytes or
/// both belong to characters of the same width, so looking at the two bytes is enough.
pub(crate) fn utf16_byte_order(x: u8, y: u8) -> Ordering {
    let bmp_high = |b: u8| b == 0xEE || b == 0xEF;
    if bmp_high(x) && y >= 0xF0 {
        Ordering::Greater
    } else if x >= 0xF0 && bmp_high(y) {
        Ordering::Less
    } else {
        x.cmp(&y)
    }
}

/// JavaScript's `<`/`>` order of two strings (UTF-16 code units).
pub(crate) fn js_cmp_str(a: &str, b: &str) -> Ordering {
    js_cmp_utf8(a.as_bytes(), b.as_bytes())
}

/// [`js_cmp_str`] on the UTF-8 bytes of two strings.
pub(crate) fn js_cmp_utf8(a: &[u8], b: &[u8]) -> Ordering {
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((&x, &y)) => utf16_byte_order(x, y),
        None => a.len().cmp(&b.len()),
    }
}

/// Compares a stream of UTF-8 bytes with a target in JavaScript string order.
#[cfg(test)]
pub(crate) fn js_cmp_bytes(a: impl Iterator<Item = u8>, b: impl Iterator<Item = u8>) -> Ordering {
    let mut b = b;
    for x in a {
        match b.next() {
            None => return Ordering::Greater,
            Some(y) if x != y => return utf16_byte_order(x, y),
            Some(_) => {}
        }
    }
    if b.next().is_some() {
        Ordering::Less
    } else {
        Ordering::Equal
    }
}

/// A `fmt::Write` sink comparing what is written with a target string in JavaScript order.
struct CmpSink<'t> {
    rest: &'t [u8],
    decided: Option<Ordering>,
}

impl Write for CmpSink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.decided.is_some() {
            return Err(fmt::Error);
        }
        let s = s.as_bytes();
        if let Some((&x, &y)) = s.iter().zip(self.rest).find(|(x, y)| x != y) {
            self.decided = Some(utf16_byte_order(x, y));
            return Err(fmt::Error);
        }
        if s.len() > self.rest.len() {
            self.decided = Some(Ordering::Greater);
            return Err(fmt::Error);
        }
        self.rest = self.rest.get(s.len()..).unwrap_or_default();
        Ok(())
    }
}

/// Compares `String(v)` for an array or other value with `target` in JavaScript order; `None`
/// when the value is nested too deeply to convert.
pub(crate) fn cmp_js_string(v: &Value, target: &str) -> Option<Ordering> {
    if let Value::String(s) = v {
        return Some(js_cmp_str(s, target));
    }
    let mut sink = CmpSink {
        rest: target.as_bytes(),
        decided: None,
    };
    let written = write_js_string(v, &mut sink, 0);
    match (sink.decided, written) {
        (Some(ord), _) => Some(ord),
        (None, Ok(())) if sink.rest.is_empty() => Some(Ordering::Equal),
        (None, Ok(())) => Some(Ordering::Less),
        (None, Err(_)) => None,
    }
}

/// Lowercases per character as `String.prototype.toLowerCase` does (without the final-sigma rule).
pub(crate) fn lowercase(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// A `fmt::Write` sink checking that the lowercase form of what is written equals a target that is
/// already lowercase.
struct LowerEqSink<'t> {
    rest: &'t str,
}

impl Write for LowerEqSink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars().flat_map(char::to_lowercase) {
            let mut rest = self.rest.chars();
            if rest.next() != Some(c) {
                return Err(fmt::Error);
            }
            self.rest = rest.as_str();
        }
        Ok(())
    }
}

/// `String(v).toLowerCase() === lower`, where `lower` is already lowercase.
pub(crate) fn lower_eq(v: &Value, lower: &str) -> bool {
    let mut sink = LowerEqSink { rest: lower };
    let ok = match v {
        Value::String(s) => sink.write_str(s),
        _ => write_js_string(v, &mut sink, 0),
    };
    ok.is_ok() && sink.rest.is_empty()
}

/// Writes the lowercase form of `s` into a stack buffer; `None` when it does not fit.
pub(crate) fn lowercase_on_stack<const N: usize>(s: &str) -> Option<StackBuf<N>> {
    let mut buf = StackBuf::<N>::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        buf.write_char(c).ok()?;
    }
    Some(buf)
}

/// JavaScript `String(x)` of a finite number, as an owned string (parse time only).
pub(crate) fn number_to_string(x: f64) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail and `write_js_number` only fails on its own buffers,
    // which are sized for any double.
    let _ = write_js_number(x, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn js(v: &Value) -> String {
        JsString(v).to_string()
    }

    #[test]
    fn number_to_string_follows_javascript() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (100.0, "100"),
            (0.1, "0.1"),
            (1234.5, "1234.5"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123_456_789_012_345_680_000.0, "123456789012345680000"),
            (0.000_001, "0.000001"),
            (5e-7, "5e-7"),
            (1.25e-10, "1.25e-10"),
            (f64::MAX, "1.7976931348623157e+308"),
        ];
        for (x, want) in cases {
            assert_eq!(number_to_string(*x), *want, "{x}");
        }
    }

    #[test]
    fn string_to_number_follows_javascript() {
        let cases: &[(&str, f64)] = &[
            ("", 0.0),
            ("   ", 0.0),
            (" 12 ", 12.0),
            ("\u{FEFF}7\n", 7.0),
            ("1.5", 1.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("-1e3", -1000.0),
            ("+.5", 0.5),
            ("0x1f", 31.0),
            ("0B101", 5.0),
            ("0o17", 15.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, want) in cases {
            assert_eq!(string_to_number(s), *want, "{s:?}");
        }
        for s in [
            "12px", "inf", "nan", "NaN", "infinity", "1e", ".", "0x", "-0x1", "1_000", "0xg", "e5",
        ] {
            assert!(string_to_number(s).is_nan(), "{s:?}");
        }
    }

    #[test]
    fn to_number_of_json_values() {
        assert_eq!(to_number(&json!(null)), 0.0);
        assert_eq!(to_number(&json!(true)), 1.0);
        assert_eq!(to_number(&json!(false)), 0.0);
        assert_eq!(to_number(&json!("42")), 42.0);
        assert_eq!(to_number(&json!([])), 0.0);
        assert_eq!(to_number(&json!([" 5 "])), 5.0);
        assert_eq!(to_number(&json!([[7]])), 7.0);
        assert_eq!(to_number(&json!([null])), 0.0);
        assert!(to_number(&json!([true])).is_nan());
        assert!(to_number(&json!([1, 2])).is_nan());
        assert!(to_number(&json!({})).is_nan());
        assert!(to_number(&json!("abc")).is_nan());
    }

    #[test]
    fn js_string_of_json_values() {
        assert_eq!(js(&json!(null)), "null");
        assert_eq!(
            js(&json!([1, null, "a", [2, [3]], {"k": 1}, true])),
            "1,,a,2,3,[object Object],true"
        );
        assert_eq!(js(&json!([])), "");
        assert_eq!(js(&json!(1e21)), "1e+21");
    }

    #[test]
    fn deeply_nested_arrays_do_not_convert() {
        let mut v = json!(1);
        for _ in 0..200 {
            v = Value::Array(vec![v]);
        }
        assert!(!with_js_string(&v, |_| true));
        assert_eq!(cmp_js_string(&v, "1"), None);
        assert!(!lower_eq(&v, "1"));
        // Single-element nesting converts to a number without building the string.
        assert_eq!(to_number(&v), 1.0);
    }

    #[test]
    fn string_order_is_utf16_order() {
        assert_eq!(js_cmp_str("a", "b"), Ordering::Less);
        assert_eq!(js_cmp_str("ab", "a"), Ordering::Greater);
        assert_eq!(js_cmp_str("Z", "a"), Ordering::Less);
        assert_eq!(js_cmp_str("", ""), Ordering::Equal);
        // U+FF21 is above U+1F600 in code points' UTF-16 form (0xFF21 > 0xD83D).
        assert_eq!(js_cmp_str("\u{FF21}", "\u{1F600}"), Ordering::Greater);
        assert_eq!(js_cmp_str("\u{1F600}", "\u{FF21}"), Ordering::Less);
        assert_eq!(js_cmp_str("\u{E9}", "\u{1F600}"), Ordering::Less);
        assert_eq!(js_cmp_bytes("ab".bytes(), "abc".bytes()), Ordering::Less);
        assert_eq!(
            js_cmp_bytes("\u{FF21}".bytes(), "\u{1F600}".bytes()),
            Ordering::Greater
        );
    }

    #[test]
    fn streamed_comparisons() {
        assert_eq!(cmp_js_string(&json!([1, 2]), "1,2"), Some(Ordering::Equal));
        assert_eq!(cmp_js_string(&json!([1, 2]), "1,3"), Some(Ordering::Less));
        assert_eq!(cmp_js_string(&json!([1, 2]), "1,"), Some(Ordering::Greater));
        assert_eq!(cmp_js_string(&json!([1]), "1,2"), Some(Ordering::Less));
        assert!(lower_eq(&json!("HeLLo"), "hello"));
        assert!(lower_eq(&json!(["A", "B"]), "a,b"));
        assert!(!lower_eq(&json!("hell"), "hello"));
        assert!(!lower_eq(&json!("helloo"), "hello"));
        assert!(lower_eq(&json!(true), "true"));
    }

    #[test]
    fn long_arrays_still_convert() {
        let v = Value::Array((0..200).map(|i| json!(format!("item{i}"))).collect());
        let expected = (0..200)
            .map(|i| format!("item{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(with_js_string(&v, |s| s == expected));
    }

    #[test]
    fn truthiness() {
        for v in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [json!(true), json!(-1), json!("0"), json!([]), json!({})] {
            assert!(truthy(&v), "{v}");
        }
    }

    #[test]
    fn lowercase_on_stack_overflows_cleanly() {
        assert_eq!(
            lowercase_on_stack::<8>("ABC").map(|b| b.as_str().to_owned()),
            Some("abc".into())
        );
        assert!(lowercase_on_stack::<4>("ABCDE").is_none());
        assert_eq!(lowercase("ÀB\u{130}"), "àbi\u{307}");
    }
}
