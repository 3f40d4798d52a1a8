//! Template values: JSON <-> gtmpl `Value`, Go-style printing, truth, numbers.
//!
//! Part of `engine::template`; used by `funcs.rs` and `template.rs`. JSON objects
//! become `Value::Map`, whose missing keys are `<no value>` as with Go maps. Maps are
//! printed and serialised in key order, so renders are deterministic.

use std::cmp::Ordering;
use std::collections::HashMap;

use gtmpl::Value;

use super::lex::clean;

/// Deeper JSON is refused: every walk over values here is recursive.
const MAX_DEPTH: usize = 200;

pub(crate) fn from_json(j: &serde_json::Value) -> Result<Value, String> {
    convert(j, 0)
}

fn convert(j: &serde_json::Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("the data nests more than {MAX_DEPTH} levels deep"));
    }
    Ok(match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (_, Some(i), _) => Value::from(i),
            (_, _, Some(f)) => num_value(Num::F(f)),
            _ => Value::String(n.to_string()),
        },
        serde_json::Value::String(s) => Value::String(clean(s)),
        serde_json::Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| convert(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => {
            let mut m = HashMap::with_capacity(o.len());
            for (k, v) in o {
                m.insert(clean(k), convert(v, depth + 1)?);
            }
            Value::Map(m)
        }
    })
}

/// JSON for `toJson`: missing and nil are null, keys inserted in sorted order (so
/// even with serde_json's `preserve_order` the output is stable).
pub(crate) fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.into(),
            (_, Some(i), _) => i.into(),
            (_, _, Some(f)) => {
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
            }
            _ => serde_json::Value::Null,
        },
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Map(m) | Value::Object(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in sorted(m) {
                o.insert(k.clone(), to_json(v));
            }
            serde_json::Value::Object(o)
        }
    }
}

pub(crate) fn sorted(m: &HashMap<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Go's `%v`: `[a b]` for lists, `map[k:v]` in key order, `<no value>`, `<nil>`.
pub(crate) fn fmt_go(v: &Value) -> String {
    let mut s = String::new();
    write_go(v, &mut s);
    s
}

fn write_go(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(x, out);
            }
            out.push(']');
        }
        Value::Map(m) | Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, x)) in sorted(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(x, out);
            }
            out.push(']');
        }
        Value::Nil => out.push_str("<nil>"),
        Value::Function(_) => out.push_str("<func>"),
        v => out.push_str(&v.to_string()),
    }
}

/// A string argument for the text functions: missing is "", others print Go-style.
pub(crate) fn string_arg(v: &Value) -> String {
    if is_missing(v) {
        String::new()
    } else {
        fmt_go(v)
    }
}

/// Go's strconv.Quote (what Sprig's quote uses).
pub(crate) fn go_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            '\u{7}' => q.push_str("\\a"),
            '\u{8}' => q.push_str("\\b"),
            '\u{c}' => q.push_str("\\f"),
            '\u{b}' => q.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => q.push_str(&format!("\\x{:02x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Go's truth, as gtmpl's `if` applies it: false, 0, "", empty, missing and nil
/// are false.
pub(crate) fn truth(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) | Value::Object(m) => !m.is_empty(),
        Value::Number(n) => n.as_u64().is_none_or(|u| u != 0),
        Value::Function(_) => true,
        Value::NoValue | Value::Nil => false,
    }
}

pub(crate) fn is_missing(v: &Value) -> bool {
    matches!(v, Value::NoValue | Value::Nil)
}

pub(crate) fn is_secret(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains(super::SENTINELS[0]))
}

/// Sprig's `empty`: missing, nil, false, 0, "", and empty lists and maps.
pub(crate) fn empty(v: &Value) -> bool {
    match v {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(_) => {
            matches!(as_num(v), Some(Num::I(0))) || matches!(as_num(v), Some(Num::F(f)) if f == 0.0)
        }
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Function(_) => false,
    }
}

pub(crate) fn describe(v: &Value) -> String {
    let shown = |s: String| {
        let more = if s.chars().count() > 60 { "…" } else { "" };
        s.chars().take(60).collect::<String>() + more
    };
    match v {
        Value::NoValue => "a missing value (<no value>)".into(),
        Value::Nil => "null".into(),
        Value::Bool(b) => format!("{b} (a boolean)"),
        Value::Number(n) => format!("{n} (a number)"),
        Value::String(s) => format!("{} (a string)", shown(go_quote(s))),
        Value::Array(a) => format!("a list of {}", a.len()),
        Value::Map(m) | Value::Object(m) => format!("a map of {} keys", m.len()),
        Value::Function(_) => "a function".into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    I(i128),
    F(f64),
}

impl Num {
    pub(crate) fn cmp(&self, other: &Num) -> Option<Ordering> {
        match (*self, *other) {
            (Num::I(a), Num::I(b)) => Some(a.cmp(&b)),
            (a, b) => a.f().partial_cmp(&b.f()),
        }
    }
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

/// A number, or a string holding one (outputs often carry "12").
pub(crate) fn as_num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| Num::I(i.into()))
            .or_else(|| n.as_u64().map(|u| Num::I(u.into())))
            .or_else(|| n.as_f64().map(Num::F)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i128>()
                .ok()
                .map(Num::I)
                .or_else(|| s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::F))
        }
        _ => None,
    }
}

/// Whether gtmpl_value keeps this float: its `From<f64>` truncates negative fractions,
/// saturates big values and rounds a fraction below `f64::EPSILON` to an integer.
fn gtmpl_keeps(f: f64) -> bool {
    f > 0.0 && f < 9.0e15 && f.fract() >= f64::EPSILON
}

/// A number as a gtmpl value; one gtmpl_value cannot hold is carried as its decimal
/// text (comparisons still read it as a number).
pub(crate) fn num_value(n: Num) -> Value {
    match n {
        Num::I(i) if i >= 0 && i <= i128::from(u64::MAX) => Value::from(i as u64),
        Num::I(i) if i >= i128::from(i64::MIN) && i < 0 => Value::from(i as i64),
        Num::I(i) => Value::String(i.to_string()),
        Num::F(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => num_value(Num::I(f as i128)),
        Num::F(f) if gtmpl_keeps(f) => Value::from(f),
        Num::F(f) => Value::String(f.to_string()),
    }
}

/// The text gtmpl should see for a Go number literal, or None if it is not one.
/// A fraction gtmpl_value cannot hold (see `gtmpl_keeps`) becomes a string literal
/// (comparisons still treat it as a number); integers past u64 are rejected.
pub(crate) fn canonical_number(text: &str) -> Option<String> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let clean = body.replace('_', "");
    let lower = clean.to_ascii_lowercase();
    let radix = |p: &str, r| {
        lower
            .strip_prefix(p)
            .and_then(|d| i128::from_str_radix(d, r).ok())
    };
    let int = if let Some(v) = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
    {
        Some(v)
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        Some(i128::from_str_radix(&lower[1..], 8).ok()?)
    } else if lower.bytes().all(|b| b.is_ascii_digit()) {
        Some(lower.parse::<i128>().ok()?)
    } else {
        None
    };
    let in_range = |v: i128| v >= i64::MIN as i128 && v <= u64::MAX as i128;
    if let Some(v) = int {
        let v = if neg { -v } else { v };
        return in_range(v).then(|| v.to_string());
    }
    if lower.starts_with("0x")
        || !lower
            .bytes()
            .all(|b| b.is_ascii_digit() || b".e+-".contains(&b))
    {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    let f = if neg { -f } else { f };
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 {
        return in_range(f as i128)
            .then(|| (f as i128).to_string())
            .filter(|_| f.abs() < 1.8e19);
    }
    Some(if gtmpl_keeps(f) {
        format!("{f}")
    } else {
        format!("\"{f}\"")
    })
}
