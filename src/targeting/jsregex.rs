//! JavaScript regular expressions (`$regex`, `$regexi`, `$notRegex`, `$notRegexi`) on top of the
//! `regex` crate.
//!
//! The few JavaScript constructs whose meaning differs in the `regex` crate are rewritten before
//! compiling; what the `regex` crate cannot do at all (look-around, back-references) is rejected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use regex::{Regex, RegexBuilder};

/// The most one `$regex` pattern may compile to, in bytes: `.{800}` (any 800 characters) fits, in about 3 ms;
/// `(a{1000}){1000}` does not, and is refused in well under a millisecond.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// What all the regexes of one condition may compile to together, in bytes. A pattern that compiles
/// within 64 KiB (nearly all do) is charged 64 KiB, a larger one its 1 MiB limit, so a condition
/// holds 64 ordinary patterns or four large ones: parsing one condition stays within a few
/// megabytes and milliseconds (400 × `.{800}` took 1–2 s and 239 MiB).
pub const REGEX_BUDGET: usize = 4 << 20;
/// The charge of a pattern that compiles within it.
const SMALL_REGEX: usize = 64 << 10;

/// A compiled `$regex`, `$regexi`, `$notRegex` or `$notRegexi` pattern.
#[derive(Debug, Clone)]
pub(crate) struct JsRegex {
    pattern: Box<str>,
    insensitive: bool,
    re: Arc<Regex>,
}

impl PartialEq for JsRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.insensitive == other.insensitive
    }
}

/// Rewrites the JavaScript escapes whose meaning differs in the `regex` crate: JavaScript's `\d`,
/// `\w` and `\b` are ASCII-only, and inside a class `[` is a literal (the `regex` crate would nest a
/// class) as are `&` and `~` (set operators there). `[]` matches nothing and `[^]` anything.
fn translate_js_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') => out.push_str("[0-9]"),
                Some('D') => out.push_str("[^0-9]"),
                Some('w') => out.push_str("[0-9A-Za-z_]"),
                Some('W') => out.push_str("[^0-9A-Za-z_]"),
                Some('b') if !in_class => out.push_str(r"(?-u:\b)"),
                Some('B') if !in_class => out.push_str(r"(?-u:\B)"),
                // Inside a class JavaScript's `\b` is a backspace.
                Some('b') => out.push_str(r"\x08"),
                Some('/') => out.push('/'),
                Some('0') if !chars.peek().is_some_and(char::is_ascii_digit) => {
                    out.push_str(r"\x00");
                }
                Some('c') if chars.peek().is_some_and(char::is_ascii_alphabetic) => {
                    let letter = chars.next().map_or(0, |l| u32::from(l) % 32);
                    out.push_str(&format!(r"\x{{{letter:02X}}}"));
                }
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                let negated = chars.next_if_eq(&'^').is_some();
                if chars.next_if_eq(&']').is_some() {
                    out.push_str(if negated { r"[\s\S]" } else { r"[^\s\S]" });
                } else {
                    in_class = true;
                    out.push_str(if negated { "[^" } else { "[" });
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            // Outside a counted repetition (`{2}`, `{2,}`, `{2,5}`) JavaScript reads braces as
            // literals.
            '{' if !in_class && !is_counted_repetition(chars.clone()) => out.push_str(r"\{"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether the characters after a `{` complete a counted repetition: `n}`, `n,}` or `n,m}`.
fn is_counted_repetition(mut rest: impl Iterator<Item = char>) -> bool {
    let mut digits = 0;
    let mut comma = false;
    for c in rest.by_ref() {
        match c {
            '0'..='9' => digits += 1,
            ',' if digits > 0 && !comma => comma = true,
            '}' => return digits > 0,
            _ => return false,
        }
    }
    false
}

impl JsRegex {
    /// Compiles a JavaScript pattern on its own (a full [`REGEX_BUDGET`]); the error is a
    /// one-line reason.
    #[cfg(test)]
    pub(crate) fn new(pattern: &str, insensitive: bool) -> Result<Self, String> {
        let mut budget = REGEX_BUDGET;
        Self::within(pattern, insensitive, &mut budget)
    }

    /// Compiles a JavaScript pattern, charging what it may take to `budget` (the bytes the
    /// condition's regexes have left, see [`REGEX_BUDGET`]); the error is a one-line reason.
    pub(crate) fn within(
        pattern: &str,
        insensitive: bool,
        budget: &mut usize,
    ) -> Result<Self, String> {
        let exhausted = || {
            format!(
                "the condition's regexes together exceed the budget of {} MiB compiled \
                 (64 ordinary patterns or 4 large ones); split the condition into audiences",
                REGEX_BUDGET >> 20
            )
        };
        if *budget < SMALL_REGEX {
            return Err(exhausted());
        }
        // A pattern some live condition already uses is shared, not compiled again: a write
        // that re-reads and re-parses a record costs no regex compile.
        let (re, charge) = match cached(pattern, insensitive) {
            Some(hit) => hit,
            None => {
                let compiled = compile(pattern, insensitive, *budget, exhausted)?;
                remember(pattern, insensitive, &compiled);
                compiled
            }
        };
        if charge > *budget {
            return Err(exhausted());
        }
        *budget -= charge;
        Ok(Self {
            pattern: pattern.into(),
            insensitive,
            re,
        })
    }

    /// Whether the pattern matches somewhere in `s` (JavaScript's `RegExp.prototype.test`).
    pub(crate) fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

/// Compiles `pattern`, within 64 KiB (charged 64 KiB) or else within [`REGEX_SIZE_LIMIT`]
/// (charged that limit) when `budget` allows it.
fn compile(
    pattern: &str,
    insensitive: bool,
    budget: usize,
    exhausted: impl Fn() -> String,
) -> Result<(Arc<Regex>, usize), String> {
    let source = translate_js_regex(pattern);
    let build = |limit: usize| {
        RegexBuilder::new(&source)
            .case_insensitive(insensitive)
            .size_limit(limit)
            .build()
            .map(Arc::new)
    };
    match build(SMALL_REGEX) {
        Ok(re) => Ok((re, SMALL_REGEX)),
        Err(regex::Error::CompiledTooBig(_)) if budget < REGEX_SIZE_LIMIT => Err(exhausted()),
        Err(regex::Error::CompiledTooBig(_)) => match build(REGEX_SIZE_LIMIT) {
            Ok(re) => Ok((re, REGEX_SIZE_LIMIT)),
            Err(regex::Error::CompiledTooBig(_)) => Err(format!(
                "it compiles to more than the limit of {} MiB; use smaller repetition counts",
                REGEX_SIZE_LIMIT >> 20
            )),
            Err(e) => Err(regex_reason(&e)),
        },
        Err(e) => Err(regex_reason(&e)),
    }
}

/// Compiled patterns that some parsed condition holds, by (pattern, case-insensitive), with
/// their charge. Entries are weak: a pattern no condition uses any more is freed, and its
/// entry swept once dead entries outnumber live ones.
#[derive(Default)]
struct Cache {
    entries: HashMap<(Box<str>, bool), (Weak<Regex>, usize)>,
    /// Live entries at the last sweep.
    live: usize,
}

fn cache() -> MutexGuard<'static, Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn cached(pattern: &str, insensitive: bool) -> Option<(Arc<Regex>, usize)> {
    let key = (Box::<str>::from(pattern), insensitive);
    let c = cache();
    let (weak, charge) = c.entries.get(&key)?;
    weak.upgrade().map(|re| (re, *charge))
}

fn remember(pattern: &str, insensitive: bool, (re, charge): &(Arc<Regex>, usize)) {
    let mut c = cache();
    c.entries
        .insert((pattern.into(), insensitive), (Arc::downgrade(re), *charge));
    if c.entries.len() > 2 * c.live + 64 {
        c.entries.retain(|_, (w, _)| w.strong_count() > 0);
        c.live = c.entries.len();
    }
}

/// The one-line reason from the `regex` crate's multi-line error.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_translation() {
        assert_eq!(translate_js_regex(r"^\d+$"), "^[0-9]+$");
        assert_eq!(
            translate_js_regex(r"\w\W\D"),
            "[0-9A-Za-z_][^0-9A-Za-z_][^0-9]"
        );
        assert_eq!(translate_js_regex(r"\bx\B"), r"(?-u:\b)x(?-u:\B)");
        assert_eq!(translate_js_regex(r"a\/b"), "a/b");
        assert_eq!(translate_js_regex(r"[[&~\d]"), r"[\[\&\~[0-9]]");
        assert_eq!(translate_js_regex(r"x[]y[^]"), r"x[^\s\S]y[\s\S]");
        assert_eq!(translate_js_regex(r"[\b]\0\cJ\c"), r"[\x08]\x00\x{0A}\c");
        assert_eq!(translate_js_regex(r"a{2}b{2,}c{2,5}"), r"a{2}b{2,}c{2,5}");
        assert_eq!(translate_js_regex(r"{x}a{,3}b{"), r"\{x}a\{,3}b\{");
        for p in [
            r"^\d+$",
            r"[[&~\d]",
            r"\bx\B",
            r"x[]y[^]",
            r"[\w-]",
            r"[\b]\0\cJ",
            r"{x}a{,3}b{",
        ] {
            assert!(Regex::new(&translate_js_regex(p)).is_ok(), "{p}");
        }
    }

    #[test]
    fn compile_errors_are_one_line() {
        let reason = JsRegex::new("(unclosed", false).unwrap_err();
        assert_eq!(reason, "unclosed group");
        assert!(
            JsRegex::new("a(?=b)", false)
                .unwrap_err()
                .contains("look-around")
        );
        let ci = JsRegex::new("^AB", true).unwrap();
        assert!(ci.is_match("abc") && !ci.is_match("cab"));
        assert_eq!(ci, JsRegex::new("^AB", true).unwrap());
        assert_ne!(ci, JsRegex::new("^AB", false).unwrap());
    }

    #[test]
    fn one_condition_has_a_regex_budget() {
        use crate::targeting::{Condition, ConditionError};
        use serde_json::json;
        // 400 × ".{800}": refused at the fifth, naming where and why.
        let many: Vec<_> = (0..400)
            .map(|_| json!({"a": {"$regex": ".{800}"}}))
            .collect();
        match Condition::parse(&json!({"$and": many})) {
            Err(ConditionError::InvalidRegex {
                path,
                pattern,
                reason,
            }) => {
                assert_eq!(path, "/$and/4/a/$regex");
                assert_eq!(pattern, ".{800}");
                assert!(reason.contains("budget of 4 MiB"), "{reason}");
            }
            other => panic!("expected the budget to run out, got {other:?}"),
        }
        // Four large ones fit; so do 64 ordinary ones.
        let four: Vec<_> = (0..4).map(|_| json!({"a": {"$regex": ".{800}"}})).collect();
        assert!(Condition::parse(&json!({"$and": four})).is_ok());
        let ordinary: Vec<_> = (0..64)
            .map(|i| json!({"email": {"$regexi": format!("^user{i}@example\\.(com|org)$")}}))
            .collect();
        assert!(Condition::parse(&json!({"$or": ordinary.clone()})).is_ok());
        let mut over = ordinary;
        over.push(json!({"email": {"$regex": "x"}}));
        assert!(matches!(
            Condition::parse(&json!({"$or": over})),
            Err(ConditionError::InvalidRegex { reason, .. }) if reason.contains("budget")
        ));
        // One pattern beyond the per-pattern limit.
        let err = JsRegex::new("(a{1000}){1000}", false).unwrap_err();
        assert!(err.contains("more than the limit of 1 MiB"), "{err}");
        let message = Condition::parse(&json!({"a": {"$regex": "(a{1000}){1000}"}}))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("condition at /a/$regex: invalid regex"),
            "{message}"
        );
    }

    #[test]
    fn a_live_pattern_is_shared_not_recompiled() {
        let p = "^reuse-test-[0-9]{3}$";
        let a = JsRegex::new(p, false).unwrap();
        let b = JsRegex::new(p, false).unwrap();
        assert!(
            Arc::ptr_eq(&a.re, &b.re),
            "the second parse reuses the first's regex"
        );
        let ci = JsRegex::new(p, true).unwrap();
        assert!(
            !Arc::ptr_eq(&a.re, &ci.re),
            "case-insensitivity is part of the key"
        );
        // A reused pattern is charged like a compiled one (the charge is deterministic).
        let mut budget = SMALL_REGEX;
        JsRegex::within(p, false, &mut budget).unwrap();
        assert_eq!(budget, 0);
        assert!(JsRegex::within(p, false, &mut budget).is_err());
        assert!(a.is_match("reuse-test-123") && !b.is_match("reuse-test-12"));
        // Once no condition holds it, it is freed.
        let weak = Arc::downgrade(&a.re);
        drop((a, b));
        assert!(weak.upgrade().is_none());
    }
}
