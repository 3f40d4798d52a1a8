//! The template function table, the per-render state functions share, deferred
//! errors, `secret`, and the internal helpers the rewriter emits (`__path`,
//! `__print`, `__at`...). The functions themselves are in `builtins.rs`.
//!
//! Part of `engine::template`. gtmpl functions are plain `fn` pointers, so the little
//! state a render needs (the action being run, the secret marker nonce, the secrets
//! seen) lives in a thread-local that `template.rs` resets and takes around each render.
//!
//! Deferred errors: gtmpl evaluates every argument of `and`/`or`, while Go stops at
//! the first deciding one (`{{ if and .x (gt .x.n 0) }}` must not fail when `.x` is
//! missing). So a function's error is returned as a "poison" value that raises the
//! error when anything uses it: another function, a condition, a declaration or the
//! printer. Only `and`/`or` can pass over one without using it.

use std::cell::RefCell;

use gtmpl::{Func, FuncError, Value};

use super::budget::{self, Exceeded, Meter};
use super::builtins as b;
use super::lex;
use super::paths::{Seg, walk};
use super::value::{self, describe, fmt_go, is_secret};
use super::{SENTINELS, SecretRef};

/// Functions a template may call (gtmpl keeps `and or not print println printf urlquery`).
pub(crate) const FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "ieq",
    "ine",
    "len",
    "index",
    "slice",
    "get",
    "print",
    "println",
    "printf",
    "urlquery",
    "default",
    "empty",
    "rest",
    "quote",
    "shellQuote",
    "toJson",
    "toPrettyJson",
    "fromJson",
    "b64enc",
    "b64dec",
    "upper",
    "lower",
    "trim",
    "replace",
    "kebabcase",
    "int",
    "float",
    "secret",
];

/// Ok if `name` is a function a template may call; else a message with near names.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if FUNCS.contains(&name) {
        return Ok(());
    }
    let near: Vec<&str> = FUNCS
        .iter()
        .copied()
        .filter(|f| {
            f.eq_ignore_ascii_case(name)
                || crate::engine::message::edit_distance(f, name)
                    <= if name.len() > 4 { 2 } else { 1 }
        })
        .collect();
    if near.is_empty() {
        Err(format!(
            "unknown function `{name}`; the functions are: {}",
            FUNCS.join(", ")
        ))
    } else {
        Err(format!(
            "unknown function `{name}`; did you mean `{}`?",
            near.join("`, `")
        ))
    }
}

/// Wraps a function so that an argument holding a deferred error raises it, and its
/// own error is deferred (see the module doc).
macro_rules! lazy {
    ($f:path) => {{
        fn wrapped(args: &[Value]) -> Result<Value, FuncError> {
            charge(1)?;
            raise(args)?;
            let v = $f(args).unwrap_or_else(|e| Value::String(format!("{}{e}", SENTINELS[2])));
            // A text over the budget is refused once made (functions that could
            // make a huge one check before they build it).
            if let Value::String(s) = &v {
                meter(|m| m.text(s.len()))?;
            }
            Ok(v)
        }
        wrapped as Func
    }};
}

/// `lazy!` for gtmpl's own builtins, whose messages do not name the function.
macro_rules! go {
    ($name:literal, $f:path) => {{
        fn named(args: &[Value]) -> Result<Value, FuncError> {
            $f(args).or_else(|e| fail(format!("{}: {e}", $name)))
        }
        lazy!(named)
    }};
}

/// The function table for one render. `env`: `secret` works; `k8s`: printing escapes `$`.
pub(crate) fn table(env: bool, k8s: bool) -> Vec<(&'static str, Func)> {
    vec![
        ("and", counted_and as Func),
        ("or", counted_or),
        ("not", go!("not", gtmpl::funcs::not)),
        ("eq", lazy!(b::eq)),
        ("ne", lazy!(b::ne)),
        ("lt", lazy!(b::lt)),
        ("le", lazy!(b::le)),
        ("gt", lazy!(b::gt)),
        ("ge", lazy!(b::ge)),
        ("ieq", lazy!(b::ieq)),
        ("ine", lazy!(b::ine)),
        ("len", lazy!(b::len)),
        ("index", lazy!(b::index)),
        ("slice", lazy!(b::slice)),
        ("print", go!("print", gtmpl::funcs::print)),
        ("println", go!("println", gtmpl::funcs::println)),
        ("printf", go!("printf", printf)),
        ("urlquery", go!("urlquery", gtmpl::funcs::urlquery)),
        ("default", lazy!(b::default)),
        ("empty", lazy!(b::empty_fn)),
        ("rest", lazy!(b::rest)),
        ("quote", lazy!(b::quote)),
        ("shellQuote", lazy!(b::shell_quote)),
        ("toJson", lazy!(b::to_json)),
        ("toPrettyJson", lazy!(b::to_pretty_json)),
        ("fromJson", lazy!(b::from_json)),
        ("b64enc", lazy!(b::b64enc)),
        ("b64dec", lazy!(b::b64dec)),
        ("upper", lazy!(b::upper)),
        ("lower", lazy!(b::lower)),
        ("trim", lazy!(b::trim)),
        ("replace", lazy!(b::replace)),
        ("kebabcase", lazy!(b::kebabcase)),
        ("int", lazy!(b::int)),
        ("float", lazy!(b::float)),
        ("secret", if env { lazy!(secret) } else { no_secret }),
        ("__at", at),
        ("__text", text),
        ("__check", check),
        ("__path", lazy!(path)),
        ("__get", lazy!(get)),
        (
            "__print",
            if k8s {
                lazy!(print_k8s)
            } else {
                lazy!(print_plain)
            },
        ),
        ("__iter", lazy!(iter)),
        ("__entries", lazy!(entries)),
        ("__one", lazy!(one)),
    ]
}

/// Raises the first deferred error among `args`.
pub(crate) fn raise(args: &[Value]) -> Result<(), FuncError> {
    for a in args {
        if let Value::String(s) = a
            && let Some(msg) = s.strip_prefix(SENTINELS[2])
        {
            return fail(msg);
        }
    }
    Ok(())
}

/// Ends conditions and declarations: a deferred error must surface there.
fn check(args: &[Value]) -> Result<Value, FuncError> {
    charge(1)?;
    raise(args)?;
    Ok(args.last().cloned().unwrap_or(Value::NoValue))
}

/// Per-render state shared with the functions.
#[derive(Default)]
pub(crate) struct State {
    /// Index of the action being executed (set by `__at`).
    pub at: usize,
    /// Random per render, inside every secret marker: text can't forge a marker.
    pub nonce: u64,
    pub secrets: Vec<SecretRef>,
    /// What the render has used of its budget.
    pub meter: Meter,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

pub(crate) fn reset(nonce: u64, meter: Meter) {
    STATE.with(|s| {
        *s.borrow_mut() = State {
            nonce,
            meter,
            ..State::default()
        }
    });
}

/// Applies `f` to the render's meter; a bound passed is an error that is never
/// deferred (it ends the render, see `budget.rs`).
pub(crate) fn meter(f: impl FnOnce(&mut Meter) -> Result<(), Exceeded>) -> Result<(), FuncError> {
    STATE
        .with(|s| f(&mut s.borrow_mut().meter))
        .map_err(|e| FuncError::Generic(e.to_string()))
}

/// The render's output budget, in bytes.
pub(crate) fn output_budget() -> usize {
    STATE.with(|s| s.borrow().meter.output_budget())
}

/// Charges `n` operations of the budget.
pub(crate) fn charge(n: u64) -> Result<(), FuncError> {
    meter(|m| m.ops(n))
}

fn counted_and(args: &[Value]) -> Result<Value, FuncError> {
    charge(1)?;
    b::and(args)
}

fn counted_or(args: &[Value]) -> Result<Value, FuncError> {
    charge(1)?;
    b::or(args)
}

/// `__text N`: the author's text of a loop body, N bytes, printed once more.
fn text(args: &[Value]) -> Result<Value, FuncError> {
    let n = match args.first() {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(u64::MAX),
        _ => 0,
    };
    meter(|m| m.output(usize::try_from(n).unwrap_or(usize::MAX)))?;
    Ok(Value::String(String::new()))
}

/// gtmpl's `printf`, once the padding its format asks for fits the output budget.
fn printf(args: &[Value]) -> Result<Value, FuncError> {
    if let Some(Value::String(format)) = args.first() {
        let ints = args[1..].iter().filter_map(|v| match v {
            Value::Number(n) => n.as_i64().map(i64::unsigned_abs).or_else(|| n.as_u64()),
            _ => None,
        });
        let pad = budget::printf_padding(format, ints);
        meter(|m| m.text(usize::try_from(pad).unwrap_or(usize::MAX)))?;
    }
    gtmpl::funcs::printf(args)
}

pub(crate) fn take() -> State {
    STATE.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

pub(crate) fn fail<T>(msg: impl Into<String>) -> Result<T, FuncError> {
    Err(FuncError::Generic(msg.into()))
}

pub(crate) fn arity(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        fail(format!("{name} takes {n} argument(s), got {}", args.len()))
    }
}

pub(crate) fn no_secrets(name: &str, args: &[Value]) -> Result<(), FuncError> {
    match args.iter().any(is_secret) {
        true => Err(secret_error(name)),
        false => Ok(()),
    }
}

pub(crate) fn secret_error(name: &str) -> FuncError {
    FuncError::Generic(format!(
        "{name} cannot use a secret: Kubernetes fills a secret in only where it stands as-is in the value"
    ))
}

fn at(args: &[Value]) -> Result<Value, FuncError> {
    charge(1)?;
    if let Some(Value::Number(n)) = args.first() {
        let i = n.as_u64().unwrap_or(0) as usize;
        STATE.with(|s| s.borrow_mut().at = i);
    }
    Ok(Value::String(String::new()))
}

fn path(args: &[Value]) -> Result<Value, FuncError> {
    let Some((root, steps)) = args.split_first() else {
        return fail("path needs a root");
    };
    let mut segs = Vec::new();
    for s in steps {
        match s {
            Value::String(s) => {
                segs.push(Seg::decode(s).ok_or_else(|| FuncError::Generic("bad path".into()))?)
            }
            _ => return fail("bad path"),
        }
    }
    walk(root, &segs).or_else(fail)
}

/// `get "$.a.b"` (a path in a string; literals are resolved by the rewriter, this is
/// the dynamic case) or Sprig's `get MAP KEY`. Called as `__get $ . args...`.
fn get(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [root, dot, Value::String(p)] => match lex::parse_path(p) {
            Some((is_dot, segs)) => walk(if is_dot { dot } else { root }, &segs).or_else(fail),
            None => fail(format!("get: {p:?} is not a path like \"$.event.Type\"")),
        },
        [_, _, map, key] => b::index(&[map.clone(), key.clone()]),
        _ => fail("get takes a path string (`get \"$.event.Type\"`) or a map and a key"),
    }
}

fn print_plain(args: &[Value]) -> Result<Value, FuncError> {
    let s = args.last().map(fmt_go).unwrap_or_default();
    meter(|m| m.output(s.len()))?;
    Ok(Value::String(s))
}

/// Printing for text Kubernetes expands: every `$` an action prints is doubled, so
/// data can never form a `$(VAR)` reference (secret markers contain no `$`).
fn print_k8s(args: &[Value]) -> Result<Value, FuncError> {
    let s = args
        .last()
        .map(fmt_go)
        .unwrap_or_default()
        .replace('$', "$$");
    meter(|m| m.output(s.len()))?;
    Ok(Value::String(s))
}

/// `range` goes through here: maps in key order (gtmpl's order is random), missing
/// is empty (as in Go), an integer n ranges 0..n (Go 1.22).
fn iter(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(
        pairs(args)?.into_iter().map(|(_, v)| v).collect(),
    ))
}

/// `range $k, $v :=` goes through here: a list of `[key, value]`.
fn entries(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(
        pairs(args)?
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
    ))
}

/// Every item a `range` will visit is charged here, before the loop runs: gtmpl
/// iterates an empty body without calling us.
fn pairs(args: &[Value]) -> Result<Vec<(Value, Value)>, FuncError> {
    let items = match args.last() {
        Some(Value::Array(a)) => a.len() as u64,
        Some(Value::Map(m) | Value::Object(m)) => m.len() as u64,
        // Past 100000 the error below says so, rather than the budget.
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0).min(100_001),
        _ => 0,
    };
    charge(items)?;
    match args.last() {
        Some(Value::Array(a)) => Ok(a
            .iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v.clone()))
            .collect()),
        Some(Value::Map(m) | Value::Object(m)) => Ok(value::sorted(m)
            .into_iter()
            .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
            .collect()),
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            // A count can come from alert data: bound what one `range` may do.
            let n = n.as_u64().unwrap_or(0);
            if n > 100_000 {
                return fail(format!(
                    "range: {n} iterations is too many (at most 100000)"
                ));
            }
            Ok((0..n).map(|i| (Value::from(i), Value::from(i))).collect())
        }
        Some(Value::NoValue | Value::Nil) | None => Ok(Vec::new()),
        Some(v) => fail(format!("range: cannot range over {}", describe(v))),
    }
}

fn one(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.iter().take(1).cloned().collect()))
}

fn no_secret(_: &[Value]) -> Result<Value, FuncError> {
    fail("secret can only be used in env values")
}

/// `secret "KEY"` (the Runner's Secret) or `secret "name" "KEY"`: returns a marker
/// that `template.rs` turns into `$(VAR)` after rendering; the value is never read.
fn secret(args: &[Value]) -> Result<Value, FuncError> {
    let strs: Vec<&str> = args
        .iter()
        .map(|v| match v {
            Value::String(s) if !is_secret(v) => Ok(s.as_str()),
            v => fail(format!(
                "secret: the key must be a string, not {} (check the parameter it comes from)",
                describe(v)
            )),
        })
        .collect::<Result<_, _>>()?;
    let r = match strs.as_slice() {
        [key] => SecretRef {
            secret: None,
            key: key.to_string(),
        },
        [name, key] => SecretRef {
            secret: Some(name.to_string()),
            key: key.to_string(),
        },
        _ => return fail("secret takes a key, or a Secret name and a key"),
    };
    let key_ok = |k: &str| {
        k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    };
    if r.key.is_empty() || r.key.len() > 253 || !key_ok(&r.key) {
        return fail(format!(
            "secret: {:?} is not a valid Secret key (letters, digits, '-', '_', '.')",
            r.key
        ));
    }
    if let Some(n) = &r.secret {
        let dns = n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if n.len() > 253 || !dns || !ends(n.chars().next()) || !ends(n.chars().last()) {
            return fail(format!(
                "secret: {n:?} is not a valid Secret name (lowercase letters, digits, '-', '.')"
            ));
        }
    }
    let marker = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let i = match s.secrets.iter().position(|x| *x == r) {
            Some(i) => i,
            None => {
                s.secrets.push(r);
                s.secrets.len() - 1
            }
        };
        super::marker(s.nonce, i)
    });
    Ok(Value::String(marker))
}
