//! The functions templates call: Go's builtins where gtmpl's differ from Go or from
//! what playbooks need (comparisons, `len`, `index`, `slice`, short-circuit `and`/`or`)
//! and the Sprig subset (`default quote toJson ... int float ieq ine`), and
//! `shellQuote`.
//!
//! Part of `engine::template`; `funcs.rs` registers them. Each is a plain
//! `fn(&[Value])`; gtmpl appends a piped value as the last argument, which is why
//! Sprig puts the subject last (`replace OLD NEW S`).

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gtmpl::{FuncError, Value};

use super::budget;
use super::funcs::{arity, fail, meter, no_secrets, output_budget, raise, secret_error};
use super::lex;
use super::value::{
    self, Num, as_num, describe, empty, fmt_go, is_missing, is_secret, num_value, string_arg, truth,
};

/// Go's `and`: the first false argument, else the last. Arguments after a false one
/// are not used, so an error they deferred does not surface (Go short-circuits).
pub(crate) fn and(args: &[Value]) -> Result<Value, FuncError> {
    for a in args {
        raise(std::slice::from_ref(a))?;
        if !truth(a) {
            return Ok(a.clone());
        }
    }
    args.last()
        .cloned()
        .map_or_else(|| fail("and takes at least 1 argument"), Ok)
}

/// Go's `or`: the first true argument, else the last.
pub(crate) fn or(args: &[Value]) -> Result<Value, FuncError> {
    for a in args {
        raise(std::slice::from_ref(a))?;
        if truth(a) {
            return Ok(a.clone());
        }
    }
    args.last()
        .cloned()
        .map_or_else(|| fail("or takes at least 1 argument"), Ok)
}

/// Equality: numbers (and numeric strings against numbers) by value, missing equals
/// only missing, scalars of different kinds by printed form (`eq .flag "true"`).
fn equal(a: &Value, b: &Value) -> Result<bool, FuncError> {
    if is_secret(a) || is_secret(b) {
        return Err(secret_error("a comparison"));
    }
    if is_missing(a) || is_missing(b) {
        return Ok(is_missing(a) && is_missing(b));
    }
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    if (matches!(a, Value::Number(_)) || matches!(b, Value::Number(_)))
        && let (Some(x), Some(y)) = (as_num(a), as_num(b))
    {
        return Ok(x.cmp(&y) == Some(Ordering::Equal));
    }
    if scalar(a) && scalar(b) {
        return Ok(fmt_go(a) == fmt_go(b));
    }
    Ok(a == b)
}

/// Go's `eq x a b c`: x equals any of the others.
pub(crate) fn eq(args: &[Value]) -> Result<Value, FuncError> {
    let Some((x, rest)) = args.split_first().filter(|(_, r)| !r.is_empty()) else {
        return fail("eq takes at least 2 arguments");
    };
    for y in rest {
        if equal(x, y)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

pub(crate) fn ne(args: &[Value]) -> Result<Value, FuncError> {
    arity("ne", args, 2)?;
    Ok(Value::Bool(!equal(&args[0], &args[1])?))
}

/// Ordering: numbers (numeric strings count when the other side is a number) by
/// value, two strings lexically (as Go); missing values and other kinds are errors.
fn order(name: &str, args: &[Value]) -> Result<Ordering, FuncError> {
    arity(name, args, 2)?;
    let (a, b) = (&args[0], &args[1]);
    no_secrets(name, args)?;
    if let Some(m) = [a, b].into_iter().find(|v| is_missing(v)) {
        return fail(format!(
            "{name}: cannot compare {} (check the path, or give it a `default`)",
            describe(m)
        ));
    }
    let numeric = matches!(a, Value::Number(_)) || matches!(b, Value::Number(_));
    match (a, b) {
        (Value::String(x), Value::String(y)) => return Ok(x.cmp(y)),
        _ if numeric => {
            if let Some(o) = as_num(a).zip(as_num(b)).and_then(|(x, y)| x.cmp(&y)) {
                return Ok(o);
            }
        }
        _ => {}
    }
    fail(format!(
        "{name}: cannot compare {} with {}",
        describe(a),
        describe(b)
    ))
}

pub(crate) fn lt(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(order("lt", args)? == Ordering::Less))
}

pub(crate) fn le(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(order("le", args)? != Ordering::Greater))
}

pub(crate) fn gt(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(order("gt", args)? == Ordering::Greater))
}

pub(crate) fn ge(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(order("ge", args)? != Ordering::Less))
}

/// Case-insensitive equality of the printed forms (StackPulse's `ieq`).
fn iequal(name: &str, args: &[Value]) -> Result<bool, FuncError> {
    arity(name, args, 2)?;
    no_secrets(name, args)?;
    let (a, b) = (&args[0], &args[1]);
    if is_missing(a) || is_missing(b) {
        return Ok(is_missing(a) && is_missing(b));
    }
    Ok(fmt_go(a).to_lowercase() == fmt_go(b).to_lowercase())
}

pub(crate) fn ieq(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(iequal("ieq", args)?))
}

pub(crate) fn ine(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(!iequal("ine", args)?))
}

/// Go's len (bytes of a string); a missing value has length 0.
pub(crate) fn len(args: &[Value]) -> Result<Value, FuncError> {
    arity("len", args, 1)?;
    no_secrets("len", args)?;
    match &args[0] {
        Value::String(s) => Ok(Value::from(s.len())),
        Value::Array(a) => Ok(Value::from(a.len())),
        Value::Map(m) | Value::Object(m) => Ok(Value::from(m.len())),
        Value::NoValue | Value::Nil => Ok(Value::from(0u64)),
        v => fail(format!("len: {} has no length", describe(v))),
    }
}

/// Go's index: `index x 1 "a"` is x[1]["a"]; out of range is an error as in Go, a
/// missing map key (or a missing collection) is `<no value>`.
pub(crate) fn index(args: &[Value]) -> Result<Value, FuncError> {
    let Some((mut cur, keys)) = args.split_first().map(|(c, k)| (c.clone(), k)) else {
        return fail("index takes a collection and keys");
    };
    for key in keys {
        cur = match (&cur, key) {
            (Value::NoValue | Value::Nil, _) => Value::NoValue,
            (Value::Map(m) | Value::Object(m), k @ (Value::String(_) | Value::Number(_))) => {
                m.get(&fmt_go(k)).cloned().unwrap_or(Value::NoValue)
            }
            (Value::Array(a), Value::Number(n)) => match n.as_u64().and_then(|i| a.get(i as usize))
            {
                Some(v) => v.clone(),
                None => {
                    return fail(format!(
                        "index out of range: {n} (the list has {})",
                        a.len()
                    ));
                }
            },
            (c, k) => {
                return fail(format!(
                    "index: cannot index {} with {}",
                    describe(c),
                    describe(k)
                ));
            }
        };
    }
    Ok(cur)
}

/// Go's slice: `slice x 1 3` is x[1:3], for lists and strings (byte offsets).
pub(crate) fn slice(args: &[Value]) -> Result<Value, FuncError> {
    let Some((x, idx)) = args.split_first() else {
        return fail("slice takes a list or string and up to 2 indexes");
    };
    no_secrets("slice", args)?;
    if idx.len() > 2 {
        return fail("slice takes at most 2 indexes (a capacity is not supported)");
    }
    let mut bounds = Vec::new();
    for i in idx {
        match i {
            Value::Number(n) if n.as_u64().is_some() => {
                bounds.push(n.as_u64().unwrap_or(0) as usize)
            }
            v => {
                return fail(format!(
                    "slice: index must be a non-negative integer, not {}",
                    describe(v)
                ));
            }
        }
    }
    let len = match x {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        Value::NoValue | Value::Nil => return Ok(Value::NoValue),
        v => return fail(format!("slice: cannot slice {}", describe(v))),
    };
    let from = bounds.first().copied().unwrap_or(0);
    let to = bounds.get(1).copied().unwrap_or(len);
    if from > to || to > len {
        return fail(format!(
            "slice: [{from}:{to}] is out of range for length {len}"
        ));
    }
    match x {
        Value::String(s) => match s.get(from..to) {
            Some(sub) => Ok(Value::from(sub)),
            None => fail(format!(
                "slice: [{from}:{to}] cuts a character of {s:?} in two"
            )),
        },
        Value::Array(a) => Ok(Value::Array(a[from..to].to_vec())),
        _ => Ok(Value::NoValue),
    }
}

/// Sprig's `default D V`: V unless it is empty, then D.
pub(crate) fn default(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [d] => Ok(d.clone()),
        [d, v] => Ok(if empty(v) { d.clone() } else { v.clone() }),
        _ => fail("default takes a default and a value"),
    }
}

pub(crate) fn empty_fn(args: &[Value]) -> Result<Value, FuncError> {
    arity("empty", args, 1)?;
    no_secrets("empty", args)?;
    Ok(Value::Bool(empty(&args[0])))
}

pub(crate) fn rest(args: &[Value]) -> Result<Value, FuncError> {
    arity("rest", args, 1)?;
    match &args[0] {
        Value::Array(a) => Ok(Value::Array(a.iter().skip(1).cloned().collect())),
        Value::NoValue | Value::Nil => Ok(Value::Array(Vec::new())),
        v => fail(format!("rest: needs a list, not {}", describe(v))),
    }
}

/// Sprig's quote: each non-missing argument Go-quoted, joined by spaces.
pub(crate) fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|v| !is_missing(v))
        .map(|v| value::go_quote(&fmt_go(v)))
        .collect();
    Ok(Value::String(parts.join(" ")))
}

/// POSIX shell quoting: each argument in single quotes, inside which a shell expands
/// nothing (`$(...)`, backticks, `;`, `|`), with `'` written as `'\''`. Unlike `quote`
/// (Go double quotes, inside which `sh -c` still runs `$(...)`), the result is one
/// literal word however hostile the alert text. A secret is refused: Kubernetes puts
/// its value in after rendering, where no quoting applies. A missing value is `''`, an
/// empty word, so the words after it keep their places.
pub(crate) fn shell_quote(args: &[Value]) -> Result<Value, FuncError> {
    no_secrets("shellQuote", args)?;
    let parts: Vec<String> = args
        .iter()
        .map(|v| format!("'{}'", string_arg(v).replace('\'', r"'\''")))
        .collect();
    Ok(Value::String(parts.join(" ")))
}

pub(crate) fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    arity("toJson", args, 1)?;
    json_text(&args[0], false)
}

pub(crate) fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    arity("toPrettyJson", args, 1)?;
    json_text(&args[0], true)
}

/// Indentation can make JSON text far larger than its data: it is written only up
/// to the output budget.
fn json_text(v: &Value, pretty: bool) -> Result<Value, FuncError> {
    let limit = output_budget();
    match budget::json_within(&value::to_json(v), pretty, limit) {
        Some(s) => Ok(Value::String(s)),
        None => meter(|m| m.text(limit.saturating_add(1))).map(|()| Value::NoValue),
    }
}

/// Unlike Sprig (which yields an empty map), invalid JSON is an error.
pub(crate) fn from_json(args: &[Value]) -> Result<Value, FuncError> {
    arity("fromJson", args, 1)?;
    no_secrets("fromJson", args)?;
    let s = string_arg(&args[0]);
    match serde_json::from_str::<serde_json::Value>(&s) {
        Ok(j) => value::from_json(&j).or_else(fail),
        Err(e) => fail(format!("fromJson: not valid JSON: {e}")),
    }
}

pub(crate) fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    arity("b64enc", args, 1)?;
    no_secrets("b64enc", args)?;
    Ok(Value::String(STANDARD.encode(string_arg(&args[0]))))
}

pub(crate) fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    arity("b64dec", args, 1)?;
    no_secrets("b64dec", args)?;
    let s = string_arg(&args[0]);
    let bytes = STANDARD
        .decode(s.trim())
        .map_err(|e| FuncError::Generic(format!("b64dec: not base64: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Value::String(lex::clean(&s))),
        Err(_) => fail("b64dec: the decoded bytes are not UTF-8 text"),
    }
}

pub(crate) fn upper(args: &[Value]) -> Result<Value, FuncError> {
    arity("upper", args, 1)?;
    Ok(Value::String(string_arg(&args[0]).to_uppercase()))
}

pub(crate) fn lower(args: &[Value]) -> Result<Value, FuncError> {
    arity("lower", args, 1)?;
    Ok(Value::String(string_arg(&args[0]).to_lowercase()))
}

pub(crate) fn trim(args: &[Value]) -> Result<Value, FuncError> {
    arity("trim", args, 1)?;
    Ok(Value::String(string_arg(&args[0]).trim().to_string()))
}

/// Sprig's `replace OLD NEW S` (so `S | replace OLD NEW` reads naturally).
pub(crate) fn replace(args: &[Value]) -> Result<Value, FuncError> {
    arity("replace", args, 3)?;
    no_secrets("replace", args)?;
    let (old, new, s) = (
        string_arg(&args[0]),
        string_arg(&args[1]),
        string_arg(&args[2]),
    );
    if old.is_empty() {
        return Ok(Value::String(s));
    }
    meter(|m| m.text(budget::replaced_len(&s, &old, &new)))?;
    Ok(Value::String(s.replace(&old, &new)))
}

/// Sprig's kebabcase: words split at separators and case changes, lowercased, `-`.
pub(crate) fn kebabcase(args: &[Value]) -> Result<Value, FuncError> {
    arity("kebabcase", args, 1)?;
    no_secrets("kebabcase", args)?;
    let chars: Vec<char> = string_arg(&args[0]).chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            words.extend((!cur.is_empty()).then(|| std::mem::take(&mut cur)));
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    words.extend((!cur.is_empty()).then_some(cur));
    Ok(Value::String(words.join("-")))
}

fn number_of(name: &str, v: &Value) -> Result<Num, FuncError> {
    no_secrets(name, std::slice::from_ref(v))?;
    match v {
        Value::Bool(b) => Ok(Num::I(i128::from(*b))),
        v if is_missing(v) => fail(format!("{name}: the value is missing (<no value>)")),
        v => as_num(v).map_or_else(
            || fail(format!("{name}: {} is not a number", describe(v))),
            Ok,
        ),
    }
}

/// Sprig's int, but a missing or non-numeric value is an error (Sprig says 0, which
/// would make `lt (int .missing) 1` true).
pub(crate) fn int(args: &[Value]) -> Result<Value, FuncError> {
    arity("int", args, 1)?;
    let n = match number_of("int", &args[0])? {
        Num::I(i) => i,
        Num::F(f) => f.trunc() as i128,
    };
    if n < i128::from(i64::MIN) || n > i128::from(u64::MAX) {
        return fail(format!("int: {n} is out of range"));
    }
    Ok(num_value(Num::I(n)))
}

pub(crate) fn float(args: &[Value]) -> Result<Value, FuncError> {
    arity("float", args, 1)?;
    Ok(num_value(match number_of("float", &args[0])? {
        Num::I(i) => Num::F(i as f64),
        f => f,
    }))
}
