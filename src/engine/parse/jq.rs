//! The `jq` option of the `json` and `yaml` parsers: compiles a filter with jaq and
//! runs it over the parsed step output, converting between `serde_json::Value` and
//! jaq's own value type.
//!
//! Parsing happens inside the controller, so a filter must not be able to reach the
//! controller's process: `env` (the operator's environment, not the step's), `halt`
//! (jaq's helper for it exits the process), the clock and local time zone (parsing
//! must give the same result when a restarted controller parses a log again) and the
//! log/stderr side effects are replaced by harmless versions before compiling.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::Fun;
use jaq_core::{Compiler, Ctx, Native, ValXs, Vars, data};
use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};
use std::sync::OnceLock;

type Data = data::JustLut<Val>;

/// At most this many values are collected from one filter run; a filter such as
/// `repeat(.)` would otherwise grow memory until the controller dies.
const MAX_OUTPUTS: usize = 10_000;

/// Deeper results are refused rather than converted: the conversion recurses, and
/// status objects this deep are useless anyway (serde_json reads at most 128 levels).
const MAX_DEPTH: usize = 128;

/// Runs a jq filter somewhere other than the calling thread: see [`isolate`].
pub type Evaluator = fn(code: &str, input: &Value) -> Result<Vec<Value>, String>;

static EVALUATOR: OnceLock<Evaluator> = OnceLock::new();

/// From now on every filter run goes through `evaluator` instead of running in this
/// process. jq is a complete programming language, so a playbook's filter can loop,
/// recurse without end (a stack overflow aborts the whole process: no Rust code can
/// catch it) or allocate without bound; the operator installs an evaluator that runs
/// it in a child process with limits (`crate::jq_sandbox`), so a bad filter fails
/// one step instead of the controller. Tests and offline commands run in process.
/// Only the first call has an effect.
pub fn isolate(evaluator: Evaluator) {
    let _ = EVALUATOR.set(evaluator);
}

/// Compiles and runs `code` on `input` here, whatever [`isolate`] said: what an
/// evaluator runs on its side.
pub fn run_here(code: &str, input: &Value) -> Result<Vec<Value>, String> {
    compile(code)?.run_here(input)
}

/// A compiled jq filter, ready to run on any number of inputs.
pub(super) struct JqFilter {
    code: String,
    filter: jaq_core::Filter<Data>,
}

impl std::fmt::Debug for JqFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JqFilter")
    }
}

/// Compiles `code`; the error is a human-readable description of what is wrong.
pub(super) fn compile(code: &str) -> Result<JqFilter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .map(sandbox);
    let arena = Arena::default();
    let loader = Loader::new(defs);
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errs| describe_load_errors(code, errs))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            let parts: Vec<String> = errs
                .into_iter()
                .flat_map(|(_, es)| es)
                .map(|(name, undefined)| format!("undefined {} '{}'", undefined.as_str(), name))
                .collect();
            parts.join("; ")
        })?;
    Ok(JqFilter {
        code: code.to_string(),
        filter,
    })
}

/// Replaces the natives that would act on the controller process.
fn sandbox((name, args, native): Fun<Data>) -> Fun<Data> {
    let native = match name {
        // Errors instead of exiting the controller or leaking its environment.
        "halt" => Native::new(|_| {
            refuse("halt is not available in an outputParser jq filter; use error(...) instead")
        }),
        "env" => Native::new(|_| {
            refuse(
                "env is not available in an outputParser jq filter (it would read the controller's environment, not the step's)",
            )
        }),
        // Parsing is a pure function of the log: a controller that restarts and
        // parses the same log again must get the same output.
        "now" | "localtime" | "strflocaltime" => Native::new(|_| {
            refuse(
                "now and local time are not available in an outputParser jq filter (parsing must give the same result every time); compare times in a template instead",
            )
        }),
        // `debug` and `stderr` are defined over these: they stay identities, silently.
        "debug_empty" | "stderr_empty" => Native::new(|_| Box::new(std::iter::empty())),
        _ => native,
    };
    (name, args, native)
}

fn refuse<'a>(msg: &str) -> ValXs<'a, Val> {
    let err = jaq_core::Error::new(Val::from(msg.to_string()));
    Box::new(std::iter::once(Err(err.into())))
}

/// Lexer and parser errors point at the rest of the code where they happened; turn
/// that into a column so the message says where to look.
fn describe_load_errors(code: &str, errs: jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let column = |rest: &str| {
        // `rest` is a suffix of `code`; count characters before it (1-based).
        let offset = code.len().saturating_sub(rest.len());
        code.get(..offset).map_or(0, |s| s.chars().count()) + 1
    };
    let mut parts = Vec::new();
    for (_, err) in errs {
        match err {
            Error::Io(es) => parts.extend(es.into_iter().map(|(path, e)| {
                format!("cannot import '{path}': {e} (imports are not available)")
            })),
            Error::Lex(es) => parts.extend(es.into_iter().map(|(expect, rest)| {
                format!(
                    "expected {} at column {}",
                    lex_expect(&expect),
                    column(rest)
                )
            })),
            Error::Parse(es) => parts.extend(es.into_iter().map(|(expect, rest)| {
                let found = if rest.is_empty() {
                    "end of filter".to_string()
                } else {
                    format!("'{}'", rest.chars().take(20).collect::<String>())
                };
                format!(
                    "expected {} at column {}, found {}",
                    expect.as_str(),
                    column(rest),
                    found
                )
            })),
        }
    }
    if parts.is_empty() {
        parts.push("invalid filter".to_string());
    }
    parts.join("; ")
}

/// jaq's own `as_str` panics on an unexpected delimiter; describe it without that risk.
fn lex_expect(e: &jaq_core::load::lex::Expect<&str>) -> String {
    use jaq_core::load::lex::Expect;
    match e {
        Expect::Delim(d) => match *d {
            "(" => "closing parenthesis".into(),
            "[" => "closing bracket".into(),
            "{" => "closing brace".into(),
            "\"" => "closing quote".into(),
            other => format!("closing delimiter for '{other}'"),
        },
        other => other.as_str().into(),
    }
}

impl JqFilter {
    /// Runs the filter on `input` and returns every value it produced: through the
    /// evaluator when one is installed ([`isolate`]), else here.
    pub(super) fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        match EVALUATOR.get() {
            Some(evaluate) => evaluate(&self.code, input),
            None => self.run_here(input),
        }
    }

    fn run_here(&self, input: &Value) -> Result<Vec<Value>, String> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        for item in self.filter.id.run((ctx, to_jaq(input))) {
            // Not `jaq_core::unwrap_valr`: on `halt` it exits the process.
            let val = item.map_err(|exn| match exn.get_err() {
                // `error("text")` carries a string: show it without JSON quotes.
                Ok(err) => match err.into_val() {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(&b).into_owned(),
                    other => other.to_string(),
                },
                Err(_) => "the filter stopped without a value (halt or break)".to_string(),
            })?;
            if out.len() == MAX_OUTPUTS {
                return Err(format!(
                    "the filter produced more than {MAX_OUTPUTS} values"
                ));
            }
            out.push(from_jaq(&val, 0)?);
        }
        Ok(out)
    }
}

fn to_jaq(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(if let Some(i) = n.as_i64() {
            Num::from_integral(i)
        } else if let Some(u) = n.as_u64() {
            Num::from_integral(u)
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        Value::String(s) => Val::utf8_str(s.clone().into_bytes()),
        Value::Array(a) => a.iter().map(to_jaq).collect(),
        Value::Object(o) => Val::obj(
            o.iter()
                .map(|(k, v)| (Val::utf8_str(k.clone().into_bytes()), to_jaq(v)))
                .collect(),
        ),
    }
}

fn from_jaq(v: &Val, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the result is nested deeper than {MAX_DEPTH} levels"
        ));
    }
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => number(n),
        Val::BStr(b) | Val::TStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(
            a.iter()
                .map(|x| from_jaq(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Val::Obj(o) => {
            let mut map = Map::new();
            for (k, x) in o.iter() {
                // jaq allows non-string keys; JSON does not, so use their text.
                let key = match k {
                    Val::BStr(b) | Val::TStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => other.to_string(),
                };
                map.insert(key, from_jaq(x, depth + 1)?);
            }
            Value::Object(map)
        }
    })
}

fn number(n: &Num) -> Value {
    let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
    match n {
        Num::Int(i) => Value::Number((*i as i64).into()),
        // Big integers and decimal literals: keep them exact when they fit.
        other => {
            let text = other.to_string();
            if let Ok(i) = text.parse::<i64>() {
                Value::Number(i.into())
            } else if let Ok(u) = text.parse::<u64>() {
                Value::Number(u.into())
            } else {
                match other {
                    Num::Float(f) => float(*f),
                    _ => text.parse::<f64>().map_or(Value::Null, float),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(code: &str, input: Value) -> Result<Vec<Value>, String> {
        compile(code)?.run(&input)
    }

    #[test]
    fn runs_common_filters() {
        let pods = json!({"items": [
            {"metadata": {"name": "redis-0"}, "status": {"phase": "Running"}},
            {"metadata": {"name": "redis-1"}, "status": {"phase": "Pending"}}
        ]});
        assert_eq!(
            run(
                ".items[] | select(.status.phase != \"Running\") | .metadata.name",
                pods.clone()
            ),
            Ok(vec![json!("redis-1")])
        );
        assert_eq!(
            run(
                "{names: [.items[].metadata.name], count: (.items | length)}",
                pods
            ),
            Ok(vec![json!({"names": ["redis-0", "redis-1"], "count": 2})])
        );
        assert_eq!(run("empty", json!(1)), Ok(vec![]));
        assert_eq!(run(".a / 2", json!({"a": 3})), Ok(vec![json!(1.5)]));
        assert_eq!(
            run("[.[] | tostring]", json!([1, "x"])),
            Ok(vec![json!(["1", "x"])])
        );
        assert_eq!(run("ascii_downcase", json!("AbC")), Ok(vec![json!("abc")]));
        assert_eq!(run("test(\"^re\")", json!("redis")), Ok(vec![json!(true)]));
    }

    #[test]
    fn numbers_round_trip() {
        let input = json!({"i": -5, "u": u64::MAX, "f": 0.25, "big": 1e300});
        assert_eq!(run(".", input.clone()), Ok(vec![input]));
        assert_eq!(
            run("1 / 0 | isinfinite", json!(null)).map(|v| v.len()),
            Ok(1)
        );
        // NaN has no JSON form: null, like jq prints it.
        assert_eq!(run("nan", json!(null)), Ok(vec![Value::Null]));
        assert_eq!(
            run("100000000000000000000000", json!(null)).map(|v| v[0].is_number()),
            Ok(true)
        );
    }

    #[test]
    fn compile_errors_say_where() {
        let e = compile(".items[").unwrap_err();
        assert!(
            e.contains("closing bracket") || e.contains("expected"),
            "{e}"
        );
        let e = compile(".a | nosuchfn").unwrap_err();
        assert_eq!(e, "undefined filter 'nosuchfn'");
        let e = compile(".a |").unwrap_err();
        assert!(e.contains("column"), "{e}");
        assert!(compile("import \"x\" as x; .").is_err());
        assert!(compile("$ENV").is_err());
        assert!(compile("input").is_err());
    }

    #[test]
    fn runtime_errors_are_values() {
        assert_eq!(run("error(\"boom\")", json!(1)), Err("boom".to_string()));
        assert!(run(".a", json!([1])).unwrap_err().contains("cannot"));
    }

    #[test]
    fn sandboxed_builtins() {
        assert!(
            run("halt", json!(1))
                .unwrap_err()
                .contains("halt is not available")
        );
        assert!(
            run("halt_error", json!(1))
                .unwrap_err()
                .contains("halt is not available")
        );
        assert!(
            run("now", json!(1))
                .unwrap_err()
                .contains("now and local time are not available")
        );
        assert!(run("0 | localtime", json!(1)).is_err());
        assert_eq!(
            run("0 | todate", json!(1)),
            Ok(vec![json!("1970-01-01T00:00:00Z")])
        );
        assert!(
            run("env", json!(1))
                .unwrap_err()
                .contains("env is not available")
        );
        assert_eq!(run("debug | . + 1", json!(1)), Ok(vec![json!(2)]));
        assert_eq!(run("stderr", json!(1)), Ok(vec![json!(1)]));
    }

    #[test]
    fn runaway_filters_are_bounded() {
        assert!(
            run("repeat(1)", json!(1))
                .unwrap_err()
                .contains("more than")
        );
        let deep = run("reduce range(1000) as $i (null; [.])", json!(1)).unwrap_err();
        assert!(deep.contains("deeper"), "{deep}");
    }

    #[test]
    fn garbage_filters_never_panic() {
        for code in [
            "",
            " ",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "\"\\",
            "\"\\u",
            "\"\\uD800\"",
            "@",
            "$",
            "$__loc__",
            ".[",
            "..",
            "...",
            "|",
            "def",
            "def f: ",
            "reduce",
            "foreach",
            "if",
            "try",
            "label",
            "break",
            "break $x",
            "label $x | break $x",
            "#",
            "\u{0}",
            "💣",
            "§",
            "&",
            ".a.b.c[0:1][-1]",
            "[.[] | ",
            "{(.):1}",
            "@base64d",
            "@nope",
            "limit(-1; 1)",
            "getpath([\"a\",0])",
            "tojson|fromjson",
            "ltrimstr(1)",
            "splits(\"(\")",
            "test(\"[\")",
            "input_filename",
            "now|type",
            "$ENV.PATH",
            "tostream",
            "fromstream(tostream)",
            "paths",
            "..|numbers",
            "@sh",
            "@csv",
            "@json \"x\\(.)\"",
            "implode",
            "explode|implode",
            "infinite|floor",
            "-infinite|tostring",
        ] {
            if let Ok(f) = compile(code) {
                for input in [
                    json!(null),
                    json!(1),
                    json!("s"),
                    json!([1, [2]]),
                    json!({"a": {"b": []}}),
                ] {
                    let _ = f.run(&input);
                }
            }
        }
    }
}
