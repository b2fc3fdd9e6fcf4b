//! GrowthBook's padded version strings for `$veq`, `$vne`, `$vgt`, `$vgte`, `$vlt`, `$vlte`.
//!
//! A version is normalised as GrowthBook's `paddedVersionString` does: a leading `v` and build
//! metadata (`+...`) are removed, the rest is split on `-` and `.`, a `~` part is appended when
//! there are exactly three parts (so a release sorts after its pre-releases), numeric parts are
//! left-padded with spaces to five characters, and the parts are joined with `-`. The padded
//! strings are then compared as JavaScript strings. The condition's side is padded once at parse;
//! the attribute's side is padded lazily as a byte stream, without allocating.

use std::cmp::Ordering;

use serde_json::Value;

use super::js;

/// Width numeric parts are padded to.
const PAD: usize = 5;

/// Removes a leading `v` and the build metadata, as `replace(/(^v|\+.*$)/g, "")` does: the `+`
/// removed is the first one after the last line terminator (`.` does not cross line terminators).
fn core(input: &str) -> &str {
    let s = input.strip_prefix('v').unwrap_or(input);
    let bytes = s.as_bytes();
    if !bytes.contains(&b'+') {
        return s;
    }
    // Line terminators: \n, \r, U+2028 and U+2029 (E2 80 A8 / E2 80 A9 in UTF-8).
    let start = bytes
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, &b)| match b {
            b'\n' | b'\r' => Some(i + 1),
            0xA8 | 0xA9 if i >= 2 && bytes.get(i - 2..i) == Some(&[0xE2, 0x80][..]) => Some(i + 1),
            _ => None,
        })
        .unwrap_or(0);
    match bytes
        .get(start..)
        .and_then(|tail| tail.iter().position(|&b| b == b'+'))
    {
        Some(p) => s.get(..start + p).unwrap_or(s),
        None => s,
    }
}

fn is_numeric(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
}

/// The padded form of `input` as a stream of UTF-8 bytes.
fn padded_bytes(input: &str) -> impl Iterator<Item = u8> + '_ {
    let core = core(input);
    let parts = core.split(['-', '.']);
    let tilde = (parts.clone().count() == 3).then_some("~");
    parts.chain(tilde).enumerate().flat_map(|(i, part)| {
        let sep = (i > 0).then_some(b'-');
        let pad = if is_numeric(part) {
            PAD.saturating_sub(part.len())
        } else {
            0
        };
        sep.into_iter()
            .chain(std::iter::repeat_n(b' ', pad))
            .chain(part.bytes())
    })
}

/// Compares the padded form of `input` with a padded version, producing the padded form part by
/// part and stopping at the first difference.
fn compare_str(input: &str, expected_padded: &str) -> Ordering {
    const SPACES: &[u8; PAD] = b"     ";
    let core = core(input).as_bytes();
    let is_sep = |b: &u8| *b == b'-' || *b == b'.';
    let mut rest = expected_padded.as_bytes();
    // Feeds the next chunk of the padded form; `Some` once the order is decided.
    let mut feed = |chunk: &[u8]| -> Option<Ordering> {
        if let Some((&x, &y)) = chunk.iter().zip(rest).find(|(x, y)| x != y) {
            return Some(js::utf16_byte_order(x, y));
        }
        match rest.get(chunk.len()..) {
            Some(tail) => {
                rest = tail;
                None
            }
            None => Some(Ordering::Greater),
        }
    };
    for (i, part) in core.split(is_sep).enumerate() {
        if i > 0
            && let Some(ord) = feed(b"-")
        {
            return ord;
        }
        if !part.is_empty()
            && part.iter().all(u8::is_ascii_digit)
            && let Some(ord) = feed(SPACES.get(part.len().min(PAD)..).unwrap_or_default())
        {
            return ord;
        }
        if let Some(ord) = feed(part) {
            return ord;
        }
    }
    if core.iter().filter(|b| is_sep(b)).count() == 2
        && let Some(ord) = feed(b"-~")
    {
        return ord;
    }
    if rest.is_empty() {
        Ordering::Equal
    } else {
        Ordering::Less
    }
}

/// The padded form of a version string (parse time).
pub(crate) fn padded(input: &str) -> String {
    let bytes: Vec<u8> = padded_bytes(input).collect();
    // Parts are substrings split on ASCII separators, so the bytes are valid UTF-8.
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Checks that a condition's version operand looks like a version; returns why it does not.
pub(crate) fn validate(input: &str) -> Result<(), &'static str> {
    let core = core(input);
    match core.chars().next() {
        None => Err("a version needs at least one number"),
        Some(c) if !c.is_ascii_digit() => {
            Err("a version starts with a digit, optionally after a 'v'")
        }
        Some(_) if core.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err("a version contains no whitespace or control characters")
        }
        Some(_) => Ok(()),
    }
}

/// Compares an attribute value, taken as a version, with a padded condition version.
///
/// As in GrowthBook, numbers are converted with JavaScript's `String(n)`, and anything that is not
/// a non-empty string or a number counts as version `"0"`.
pub(crate) fn compare(actual: &Value, expected_padded: &str) -> Ordering {
    match actual {
        Value::String(s) if !s.is_empty() => compare_str(s, expected_padded),
        Value::Number(n) => {
            let mut buf = js::StackBuf::<40>::new();
            if js::write_js_number(js::num(n), &mut buf).is_ok() {
                compare_str(buf.as_str(), expected_padded)
            } else {
                compare_str("0", expected_padded)
            }
        }
        _ => compare_str("0", expected_padded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn padding_matches_growthbook() {
        assert_eq!(padded("1.2.3"), "    1-    2-    3-~");
        assert_eq!(padded("v1.2.3-rc.1+build123"), "    1-    2-    3-rc-    1");
        assert_eq!(padded("1.0.0--"), "    1-    0-    0--");
        assert_eq!(padded("123456.0.0"), "123456-    0-    0-~");
        assert_eq!(padded("1-2-3"), "    1-    2-    3-~");
        assert_eq!(padded("a.b.c.d.e.f"), "a-b-c-d-e-f");
        assert_eq!(padded(""), "");
        // Build metadata before a line break stays (JavaScript's `.` does not cross it).
        assert_eq!(padded("1+a\n2+b"), "1+a\n2");
        assert_eq!(padded("1+a\u{2028}2+b"), "1+a\u{2028}2");
        assert_eq!(padded("1+a\r2.3"), "1+a\r2-    3");
        assert_eq!(padded("vv1"), "v1");
    }

    #[test]
    fn compare_streams_equal_padded_strings() {
        for (a, b) in [
            ("1.2.3", "1.2.4"),
            ("1.0.0-alpha", "1.0.0"),
            ("10.0.0", "9.0.0"),
            ("1.0.0-beta.2", "1.0.0-beta.11"),
            ("v1.2.3", "1.2.3+build"),
            ("1.2", "1.2.0"),
        ] {
            let want = js::js_cmp_str(&padded(a), &padded(b));
            assert_eq!(compare(&json!(a), &padded(b)), want, "{a} vs {b}");
        }
    }

    #[test]
    fn part_wise_and_streamed_comparisons_agree() {
        let long = format!("1.2.3-{}", "x".repeat(200));
        let inputs = [
            "1.2.3",
            "v1.2.3-rc.1+b",
            "1.0.0--",
            "",
            "123456.1",
            "1.2.3\u{2028}+x",
            "é.1.ü",
            "1.2",
            "1.2.3.4",
            "1.2.3-",
            "\u{FF21}",
            "\u{1F600}",
            &long,
        ];
        for v in inputs {
            for other in inputs {
                let want = js::js_cmp_bytes(padded_bytes(v), padded(other).bytes());
                assert_eq!(compare_str(v, &padded(other)), want, "{v} vs {other}");
            }
        }
    }

    #[test]
    fn non_strings_are_versions_too() {
        assert_eq!(compare(&json!(2), &padded("2")), Ordering::Equal);
        assert_eq!(compare(&json!(1.5), &padded("1.5")), Ordering::Equal);
        assert_eq!(compare(&json!(null), &padded("0")), Ordering::Equal);
        assert_eq!(compare(&json!(""), &padded("0")), Ordering::Equal);
        assert_eq!(compare(&json!(true), &padded("0")), Ordering::Equal);
        assert_eq!(compare(&json!([1]), &padded("0.0.1")), Ordering::Less);
    }

    #[test]
    fn validation() {
        assert!(validate("1.2.3").is_ok());
        assert!(validate("v1.2.3-beta+build").is_ok());
        assert!(validate("1.0.0--").is_ok());
        assert!(validate("").is_err());
        assert!(validate("v").is_err());
        assert!(validate("+build").is_err());
        assert!(validate("latest").is_err());
        assert!(validate("-1").is_err());
        assert!(validate("1.2 .3").is_err());
    }
}
