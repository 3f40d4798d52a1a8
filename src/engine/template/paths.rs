//! StackPulse paths: the steps after a root (`.a`, `.'quoted-id'`, `[0]`, `[:]`,
//! `.*`) and how they walk a value.
//!
//! Part of `engine::template`. The lexer produces `Seg`s, the rewriter passes them to
//! the `__path` helper as strings (`encode`/`decode`), `references()` reports them
//! (`label`), and `walk` runs them at render time.

use gtmpl::Value;

use super::value::{describe, sorted};

/// Steps in one path (walking them recurses at projections).
pub(crate) const MAX_STEPS: usize = 100;

/// One step of a path after its root.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    Key(String),
    /// `[n]`; negative counts from the end (JSONPath).
    Index(i64),
    /// `[a:b]`, `[a:]`, `[:b]`; `[:]` is a projection over the whole list.
    Slice(Option<i64>, Option<i64>),
    /// `.*` / `[*]`: every value of a map or list, as a projection.
    All,
}

impl Seg {
    /// How a step travels to the `__path` helper as a gtmpl string argument.
    pub(crate) fn encode(&self) -> String {
        match self {
            Seg::Key(k) => format!(".{k}"),
            Seg::Index(i) => format!("#{i}"),
            Seg::Slice(a, b) => format!("#{}:{}", opt(a), opt(b)),
            Seg::All => "*".to_string(),
        }
    }

    pub(crate) fn decode(s: &str) -> Option<Seg> {
        if let Some(k) = s.strip_prefix('.') {
            return Some(Seg::Key(k.to_string()));
        }
        if s == "*" {
            return Some(Seg::All);
        }
        let s = s.strip_prefix('#')?;
        let bound = |b: &str| {
            if b.is_empty() {
                Some(None)
            } else {
                b.parse().ok().map(Some)
            }
        };
        match s.split_once(':') {
            Some((a, b)) => Some(Seg::Slice(bound(a)?, bound(b)?)),
            None => s.parse().ok().map(Seg::Index),
        }
    }

    /// The step as `references()` reports it: keys as-is, others in path syntax.
    pub(crate) fn label(&self) -> String {
        match self {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => format!("[{i}]"),
            Seg::Slice(a, b) => format!("[{}:{}]", opt(a), opt(b)),
            Seg::All => "*".to_string(),
        }
    }
}

fn opt(v: &Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Follows a path. A missing key or index gives `<no value>` at any depth;
/// `[:]`/`.*`/`[a:b]` project the rest of the path over each element (JSONPath:
/// results are flattened, elements without the rest are skipped). Reading a field of
/// a list, a string or a number is an error.
pub(crate) fn walk(v: &Value, segs: &[Seg]) -> Result<Value, String> {
    let mut cur = v;
    for (i, seg) in segs.iter().enumerate() {
        let next = match (seg, cur) {
            (Seg::Slice(..) | Seg::All, _) => return project(cur, seg, &segs[i + 1..]),
            (_, Value::NoValue | Value::Nil) => return Ok(Value::NoValue),
            (Seg::Key(k), Value::Map(m) | Value::Object(m)) => m.get(k),
            (Seg::Key(k), Value::Array(_)) => {
                return Err(format!(
                    "`.{k}`: this value is a list; pick one element with [0] or all of them with [:]"
                ));
            }
            (Seg::Key(k), other) => {
                return Err(format!(
                    "`.{k}`: cannot read a field of {}",
                    describe(other)
                ));
            }
            (Seg::Index(n), Value::Array(a)) => {
                let at = if *n < 0 { a.len() as i64 + n } else { *n };
                usize::try_from(at).ok().and_then(|at| a.get(at))
            }
            (Seg::Index(n), Value::Map(m) | Value::Object(m)) => m.get(&n.to_string()),
            (Seg::Index(n), other) => {
                return Err(format!("`[{n}]`: cannot index {}", describe(other)));
            }
        };
        match next {
            Some(n) => cur = n,
            None => return Ok(Value::NoValue),
        }
    }
    Ok(cur.clone())
}

fn project(v: &Value, seg: &Seg, rest: &[Seg]) -> Result<Value, String> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => match seg {
            Seg::Slice(from, to) => {
                let len = a.len() as i64;
                let fix = |b: i64| if b < 0 { (len + b).max(0) } else { b.min(len) };
                let (from, to) = (from.map_or(0, fix), to.map_or(len, fix));
                a.iter()
                    .skip(from as usize)
                    .take((to - from).max(0) as usize)
                    .collect()
            }
            _ => a.iter().collect(),
        },
        Value::Map(m) | Value::Object(m) => sorted(m).into_iter().map(|(_, v)| v).collect(),
        Value::NoValue | Value::Nil => Vec::new(),
        other => {
            let what = describe(other);
            return Err(format!(
                "`{}`: cannot list the elements of {what}",
                seg.label()
            ));
        }
    };
    let nested = rest.iter().any(|s| matches!(s, Seg::Slice(..) | Seg::All));
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match walk(item, rest) {
            Ok(Value::NoValue) | Err(_) => {}
            Ok(Value::Array(a)) if nested => out.extend(a),
            Ok(x) => out.push(x),
        }
    }
    Ok(Value::Array(out))
}
