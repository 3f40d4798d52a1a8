//! The template engine: Go-template strings (env values, args, `when`, trigger
//! params) rendered over a JSON context, with the StackPulse `$` paths and `secret`.
//!
//! Part of `engine` (pure: no I/O, no async, no cluster). Built on gtmpl 0.7.1. We lex
//! and parse templates ourselves (`template/lex.rs`, `parse.rs`) so errors point at
//! the author's line and column, rewrite them into plain Go templates
//! (`rewrite.rs`: StackPulse paths become calls to `__path`, see `paths.rs`), and
//! give gtmpl our functions (`funcs.rs`, `builtins.rs`, values in `value.rs`).
//!
//! Behaviour worth knowing:
//! - A missing key renders `<no value>` at any depth (`.a.b.c` with no `a` too), and
//!   `[0]` past the end is missing as well; reading a field of a string or a list is
//!   an error. `range` over a missing value runs zero times; maps print, range and
//!   serialise in key order. Unquoted keys may contain `-` (`.redis-info.x`).
//! - Comparisons: numbers compare by value (ints with floats too); a number against a
//!   numeric string (`gt .output 5` with `"12"`) compares as numbers; two strings
//!   compare as strings (as Go: `lt "9" "10"` is false; write `lt (int "9") 10`);
//!   `eq` of scalars of different kinds compares printed forms (`eq .flag "true"`);
//!   `eq`/`ne` with a missing value is false/true, while `lt`/`le`/`gt`/`ge`, `int`
//!   and `float` on a missing value are errors, so a `when` cannot pass on a typo.
//!   `and`/`or` short-circuit as in Go (`if and .x (gt .x.n 0)` is safe).
//! - `secret` works only in env values (`render_env`): it becomes a `$(VAR)` reference
//!   that Kubernetes expands from a `secretKeyRef` env var; the value is never read.
//!   In env values and args every `$` an action prints is doubled (`$$`), so data can
//!   never form a `$(VAR)` reference; the author's own text keeps its meaning.
//! - Not supported: `define`/`template`/`block`, `break`/`continue`, assignment with
//!   `=`, `else with`, functions beyond the list in `funcs.rs` (no `now`/`date`: the
//!   engine is pure, put times in the context). Fractions gtmpl_value cannot hold
//!   (negative ones, and ones below 2e-16) travel as text: they print and compare as
//!   numbers, but `toJson` writes them as strings.

mod budget;
mod builtins;
mod funcs;
mod lex;
mod parse;
mod paths;
mod rewrite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_budget;
#[cfg(test)]
mod tests_safety;
mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use budget::{Budget, Exceeded, MAX_OPS, MAX_OUTPUT_BYTES, MAX_TIME, with_deadline};

/// Private-use characters: the start and end of a secret marker in rendered text,
/// and the start of a deferred error (see `funcs.rs`). Every string coming from the
/// context, the source or a decoding function has them replaced.
pub(crate) const SENTINELS: [char; 3] = ['\u{E000}', '\u{E001}', '\u{E002}'];

/// A template problem, at a 1-based line and column (in characters) of the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// Set when the render went past its [`Budget`] (the message says which bound).
    pub exceeded: Option<Exceeded>,
}

/// Where a secret comes from: `secret "KEY"` (the Runner's Secret) or
/// `secret "name" "KEY"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// Explicit Secret name; None = the Runner's default Secret.
    pub secret: Option<String>,
    pub key: String,
}

/// A rendered env value: `text` holds `$(VAR)` where secrets go; each `(VAR, ref)`
/// must become a `secretKeyRef` env var listed before the env var that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    pub text: String,
    pub secrets: Vec<(String, SecretRef)>,
}

/// Env var names for secrets, shared by the env values of one container so the same
/// secret gets the same name and different secrets never share one. Names are
/// `SP_SECRET_[<SECRET>_]<KEY>` (upper case, other characters `_`), `_2`, `_3`...
/// on a collision; step env names starting with `SP_SECRET_` are best avoided.
#[derive(Debug, Clone, Default)]
pub struct SecretNames {
    by_ref: BTreeMap<SecretRef, String>,
}

impl SecretNames {
    pub fn new() -> Self {
        Self::default()
    }

    /// The env var name for `r`, assigning one if it has none yet.
    pub fn name_for(&mut self, r: &SecretRef) -> String {
        if let Some(n) = self.by_ref.get(r) {
            return n.clone();
        }
        let ident = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let mut base = "SP_SECRET_".to_string();
        if let Some(s) = &r.secret {
            base += &ident(s);
            base.push('_');
        }
        base += &ident(&r.key);
        let taken: BTreeSet<&String> = self.by_ref.values().collect();
        let name = (1..)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    format!("{base}_{n}")
                }
            })
            .find(|n| !taken.contains(n))
            .unwrap_or(base);
        self.by_ref.insert(r.clone(), name.clone());
        name
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Plain text (`when`, names, trigger params): no secrets, no escaping.
    Plain,
    /// Text Kubernetes expands `$(VAR)` in (args, command): `$` escaped, no secrets.
    Arg,
    /// Env values: `$` escaped, secrets allowed.
    Env,
}

/// Renders a template where secrets are not allowed (`secret` is an error).
/// Text without `{{` is returned as it is, here and in the other `render*`.
pub fn render(src: &str, ctx: &serde_json::Value) -> Result<String, TemplateError> {
    render_within(src, ctx, &Budget::default())
}

/// [`render`] with another [`Budget`] than the default (1,000,000 operations,
/// 1 MiB, 1 s); `time: None` makes the render deterministic (tests, fuzzing).
pub fn render_within(
    src: &str,
    ctx: &serde_json::Value,
    budget: &Budget,
) -> Result<String, TemplateError> {
    if !src.contains("{{") {
        return Ok(src.to_string());
    }
    Ok(without_sentinels(
        execute(src, ctx, Mode::Plain, budget)?.text,
    ))
}

/// Renders a container arg or command entry: like an env value, every `$` that an
/// action prints is escaped as `$$` (Kubernetes expands `$(VAR)` there too), but
/// `secret` is an error (a secret in argv is visible to every process on the node).
pub fn render_arg(src: &str, ctx: &serde_json::Value) -> Result<String, TemplateError> {
    if !src.contains("{{") {
        return Ok(src.to_string());
    }
    Ok(without_sentinels(
        execute(src, ctx, Mode::Arg, &Budget::default())?.text,
    ))
}

/// Renders one env value, where `secret` is allowed; names are unique to this value.
/// For all the env values of one container, use [`render_env_with`] and one
/// [`SecretNames`].
pub fn render_env(src: &str, ctx: &serde_json::Value) -> Result<Rendered, TemplateError> {
    render_env_with(src, ctx, &mut SecretNames::new())
}

/// [`render_env`] with env var names shared across calls.
pub fn render_env_with(
    src: &str,
    ctx: &serde_json::Value,
    names: &mut SecretNames,
) -> Result<Rendered, TemplateError> {
    if !src.contains("{{") {
        return Ok(Rendered {
            text: src.to_string(),
            secrets: Vec::new(),
        });
    }
    let out = execute(src, ctx, Mode::Env, &Budget::default())?;
    let mut text = String::with_capacity(out.text.len());
    let mut secrets: Vec<(String, SecretRef)> = Vec::new();
    let mut rest = out.text.as_str();
    while let Some(i) = rest.find(SENTINELS[0]) {
        text += &rest[..i];
        let after = &rest[i + SENTINELS[0].len_utf8()..];
        match parse_marker(after, out.nonce).and_then(|(i, len)| Some((out.secrets.get(i)?, len))) {
            Some((r, len)) => {
                let var = names.name_for(r);
                text += &format!("$({var})");
                if !secrets.iter().any(|(v, _)| *v == var) {
                    secrets.push((var, r.clone()));
                }
                rest = &after[len..];
            }
            None => {
                text.push('\u{FFFD}');
                rest = after;
            }
        }
    }
    text += rest;
    Ok(Rendered {
        text: without_sentinels(text),
        secrets,
    })
}

/// Stray sentinels (say, `printf "%c"` of a number) must not reach the caller.
/// (Plain text is returned as it is.)
fn without_sentinels(text: String) -> String {
    if text.contains(SENTINELS) {
        text.replace(SENTINELS, "\u{FFFD}")
    } else {
        text
    }
}

/// Renders a `when`/`break` condition: "true"/"false" in any case, trimmed; "" and
/// `<no value>` count as false; anything else is an error.
pub fn render_condition(src: &str, ctx: &serde_json::Value) -> Result<bool, TemplateError> {
    let out = render(src, ctx)?;
    let t = out.trim();
    if t.eq_ignore_ascii_case("true") {
        return Ok(true);
    }
    if t.is_empty() || t.eq_ignore_ascii_case("false") || t == "<no value>" {
        return Ok(false);
    }
    let shown: String = t.chars().take(80).collect();
    let more = if shown.len() < t.len() { "…" } else { "" };
    Err(error_at(
        src,
        src.find("{{").unwrap_or(0),
        format!("a condition must render true or false, but this one rendered {shown:?}{more}"),
    ))
}

/// The paths a template reads from the root of the context, without rendering it
/// (for lint): `$.'redis-info'.info.x` gives `["redis-info", "info", "x"]`. Steps
/// other than keys appear as `[0]`, `[:]`, `[1:3]`, `*`. Paths relative to a
/// `range`/`with` dot and paths read through variables are not included; nor are
/// `get` paths that are not literals. Also reports any parse error.
pub fn references(src: &str) -> Result<Vec<Vec<String>>, TemplateError> {
    if !src.contains("{{") {
        return Ok(Vec::new());
    }
    let opts = rewrite::Options {
        secrets: true,
        k8s: false,
    };
    let prog = rewrite::rewrite(src, &opts).map_err(|e| error_at(src, e.pos, e.msg))?;
    Ok(prog.refs)
}

struct Output {
    text: String,
    nonce: u64,
    secrets: Vec<SecretRef>,
}

fn execute(
    src: &str,
    ctx: &serde_json::Value,
    mode: Mode,
    budget: &Budget,
) -> Result<Output, TemplateError> {
    let opts = rewrite::Options {
        secrets: mode == Mode::Env,
        k8s: mode != Mode::Plain,
    };
    let prog = rewrite::rewrite(src, &opts).map_err(|e| error_at(src, e.pos, e.msg))?;
    // Errors without a better place are reported at the first action.
    let first = prog.actions.first().copied().unwrap_or(0);
    let data = context(ctx, prog.roots.as_ref()).map_err(|m| error_at(src, first, m))?;
    let mut tmpl = gtmpl::Template::default();
    tmpl.add_funcs(&funcs::table(mode == Mode::Env, mode != Mode::Plain));
    let nonce = new_nonce();
    funcs::reset(nonce, budget::Meter::start(*budget));
    // gtmpl must not panic on what the rewriter emits; if it ever does, the caller
    // gets an error rather than a crashed controller.
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<String, String> {
        tmpl.parse(prog.text.as_str())
            .map_err(|e| format!("cannot parse the template: {e}"))?;
        tmpl.render(&gtmpl::Context::from(data))
            .map_err(|e| e.to_string())
    }));
    let state = funcs::take();
    // gtmpl's execution errors carry no position: `__at` recorded which action was
    // running, and we report the `{{` of that action.
    let at = prog.actions.get(state.at).copied().unwrap_or(first);
    // Past a bound, whatever gtmpl made of the failed call, the budget is the reason.
    if let Some(e) = state.meter.exceeded() {
        return Err(TemplateError {
            exceeded: Some(e.clone()),
            ..error_at(src, at, e.to_string())
        });
    }
    match result {
        Ok(Ok(text)) => Ok(Output {
            text,
            nonce,
            secrets: state.secrets,
        }),
        Ok(Err(msg)) => Err(error_at(src, at, msg)),
        Err(_) => Err(error_at(src, at, "internal error in the template engine")),
    }
}

/// Converts the context, only the top-level keys the template reads when known.
fn context(
    ctx: &serde_json::Value,
    roots: Option<&BTreeSet<String>>,
) -> Result<gtmpl::Value, String> {
    match (ctx, roots) {
        (serde_json::Value::Object(o), Some(roots)) => {
            let mut m = HashMap::with_capacity(roots.len());
            for k in roots {
                if let Some(v) = o.get(k) {
                    m.insert(k.clone(), value::from_json(v)?);
                }
            }
            Ok(gtmpl::Value::Map(m))
        }
        _ => value::from_json(ctx),
    }
}

fn new_nonce() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `secret` returns START, the 20-digit nonce, the secret's index, END.
pub(crate) fn marker(nonce: u64, index: usize) -> String {
    format!("{}{nonce:020}{index}{}", SENTINELS[0], SENTINELS[1])
}

/// Reads a marker after its START; returns the secret index and the bytes used.
fn parse_marker(after: &str, nonce: u64) -> Option<(usize, usize)> {
    let end = after.find(SENTINELS[1])?;
    let digits = &after[..end];
    if digits.len() <= 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits[..20] != format!("{nonce:020}") {
        return None;
    }
    Some((digits[20..].parse().ok()?, end + SENTINELS[1].len_utf8()))
}

fn error_at(src: &str, pos: usize, message: impl Into<String>) -> TemplateError {
    let mut pos = pos.min(src.len());
    while !src.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &src[..pos];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    TemplateError {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        message: message.into(),
        exceeded: None,
    }
}
