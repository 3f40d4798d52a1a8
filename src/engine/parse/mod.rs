//! Output parsers: the step of the pipeline between reading a finished step's
//! container log and recording its outputs. `parse_output` turns what the step printed
//! into the JSON object that later templates read (merged at the root and under
//! `.steps.<id>.outputs`) and the Execution status records.
//!
//! Pure: no tokio, kube or I/O. The controller reads the log (bounded by `limitBytes`,
//! decoded lossily) and hands the text here; image parsers (any name that is an image
//! reference) run as Jobs elsewhere, so here they are only recognised and validated,
//! and what they print is checked to be JSON ([`parse_image_output`]).
//!
//! Every parser is total: any input gives a value or a [`ParseError`] whose message
//! says what was wrong with the output and what the step should print instead.
//!
//! The StackPulse convention (DESIGN.md §1 "How steps print output"): a step prints
//! logs, then a line `<-- END -->` (or the value of its `SP_END_MARKER` env), then its
//! output. Every built-in parser except `raw` reads only the text after the *last*
//! marker when there is one, so logs before it never break parsing; `raw` keeps all of
//! stdout, as StackPulse's `raw-output-parser` did.

#[cfg(test)]
mod fixtures;
pub mod jq;
mod json;
mod redis;
mod table;
#[cfg(test)]
mod tests;
mod text;
mod yaml;

use crate::api::OutputParser;
use regex::Regex;
use serde_json::{Map, Value};

/// The end marker a step prints before its output when `SP_END_MARKER` is not set.
pub const DEFAULT_END_MARKER: &str = "<-- END -->";

/// What an `outputParser` name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParserKind {
    /// Parsed in the controller.
    Builtin(Builtin),
    /// An image run as a parser Job with the raw output as its input.
    Image(String),
}

/// The parsers built into the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// The StackPulse SDK's JSON formatter (the default parser).
    Json,
    /// `{"output": "<all of stdout>"}`.
    Raw,
    /// YAML, wrapped like JSON.
    Yaml,
    /// `key=value` lines.
    Kv,
    /// `redis-cli INFO` sections to nested maps.
    RedisInfo,
    /// Named groups of a regular expression.
    Regex,
    /// `{"output": [lines]}`.
    Lines,
    /// Whitespace-aligned columns under a header row (`kubectl get` style).
    Table,
}

impl Builtin {
    /// Every built-in parser, in the order error messages list them.
    pub const ALL: [Builtin; 8] = [
        Builtin::Json,
        Builtin::Raw,
        Builtin::Yaml,
        Builtin::Kv,
        Builtin::RedisInfo,
        Builtin::Regex,
        Builtin::Lines,
        Builtin::Table,
    ];

    /// The name written in `outputParser.name`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Json => "json",
            Builtin::Raw => "raw",
            Builtin::Yaml => "yaml",
            Builtin::Kv => "kv",
            Builtin::RedisInfo => "redis-info",
            Builtin::Regex => "regex",
            Builtin::Lines => "lines",
            Builtin::Table => "table",
        }
    }

    fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Output that could not be parsed, or a parser spec that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What was wrong and what the step (or the playbook author) should do instead.
    pub message: String,
}

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        ParseError {
            message: message.into(),
        }
    }
}

/// Which parser `p` names. StackPulse's well-known parser images (`.../json-parser`,
/// `.../raw-output-parser`, any registry or tag) map to the built-ins they implement,
/// so converted playbooks parse in process instead of starting a Job per step.
pub fn kind(p: &OutputParser) -> ParserKind {
    if let Some(b) = Builtin::from_name(&p.name) {
        return ParserKind::Builtin(b);
    }
    match last_path_segment(&p.name) {
        "json-parser" => ParserKind::Builtin(Builtin::Json),
        "raw-output-parser" => ParserKind::Builtin(Builtin::Raw),
        _ => ParserKind::Image(p.name.clone()),
    }
}

/// `registry:5000/org/json-parser:v1@sha256:...` -> `json-parser`. A bare
/// `json-parser` is its own last segment, so it is accepted as an alias too.
fn last_path_segment(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

/// Whether a name that is not a built-in can be an image reference. A plain word
/// (`jsonn`) is far more likely a typo than an image on Docker Hub's library, so it
/// needs a `/`, `:` or `.` to count as one.
fn looks_like_image(name: &str) -> bool {
    name.contains(['/', ':', '.'])
        && !name.starts_with(['/', ':', '.', '@'])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks `p` without any output: the name is known, the options it needs are there,
/// the ones it does not use are absent, and its jq filter or pattern compiles.
pub fn validate(p: &OutputParser) -> Result<(), ParseError> {
    prepare(p).map(|_| ())
}

/// Parses a step's output (its whole log, lossily decoded) with `p`. `end_marker` is
/// the step's `SP_END_MARKER` env value; `None` or empty means `<-- END -->`.
/// On `Ok` the value is always a JSON object.
pub fn parse_output(
    p: &OutputParser,
    raw: &str,
    end_marker: Option<&str>,
) -> Result<Value, ParseError> {
    let Some(parser) = prepare(p)? else {
        return Err(ParseError::new(format!(
            "outputParser '{}' is an image: image parsers run as Jobs, not in the controller",
            p.name
        )));
    };
    let marker = end_marker
        .filter(|m| !m.is_empty())
        .unwrap_or(DEFAULT_END_MARKER);
    let out = Output::new(raw, marker);
    let value = match &parser {
        Prepared::Json(jq) => {
            let v = json::find_json(out.text, out.first_line, !out.after_marker)
                .map_err(|e| out.json_error(e))?;
            apply_jq(&p.name, jq.as_ref(), v)?
        }
        Prepared::Yaml(jq) => {
            let v = yaml::parse_yaml(out.text).map_err(|e| out.error(&e, "YAML"))?;
            apply_jq(&p.name, jq.as_ref(), v)?
        }
        Prepared::Raw => wrap(Value::String(raw.to_string())),
        Prepared::Lines => text::lines(out.text),
        Prepared::Kv(sep) => {
            text::kv(out.text, sep, out.first_line).map_err(|e| out.error(&e, "key=value lines"))?
        }
        Prepared::Regex(re) => {
            text::regex(re, out.text).map_err(|e| out.error(&e, "text the pattern matches"))?
        }
        Prepared::RedisInfo => redis::parse_info(out.text)
            .map_err(|e| out.error(&e, "the output of redis-cli INFO"))?,
        Prepared::Table => table::parse_table(out.text),
    };
    Ok(value)
}

/// What an image parser printed (its whole log): one JSON value and nothing else,
/// wrapped like a built-in parser's result (`{"output": v}` unless an object). The
/// log holds stderr too (the `pods/log` API merges both streams), so a parser must
/// not write anything else to either.
pub fn parse_image_output(image: &str, printed: &str) -> Result<Value, ParseError> {
    let text = printed.trim();
    if text.is_empty() {
        return Err(ParseError::new(format!(
            "output parser image '{image}' printed nothing: it must print the step's output as one JSON value on stdout"
        )));
    }
    serde_json::from_str::<Value>(text).map(wrap).map_err(|e| {
        ParseError::new(format!(
            "output parser image '{image}' did not print JSON ({e}); it printed {}: it must print one JSON value and nothing else (its stderr is part of the log too), so fix the parser image or use a built-in parser",
            excerpt(text)
        ))
    })
}

/// The parser of a step that names none (DESIGN §1): StackPulse steps print one JSON
/// object (after the end marker, or as their whole output) or plain text. Text with no
/// JSON in it at all becomes `{"output": "<text>"}` instead of failing the step; JSON
/// that is there but broken (e.g. cut short) is still an error, since that output is
/// not what the step meant to say. An explicit `json` parser stays strict.
pub fn parse_default(raw: &str, end_marker: Option<&str>) -> Result<Value, ParseError> {
    let marker = end_marker
        .filter(|m| !m.is_empty())
        .unwrap_or(DEFAULT_END_MARKER);
    let out = Output::new(raw, marker);
    match json::find_json(out.text, out.first_line, !out.after_marker) {
        Ok(v) => Ok(wrap(v)),
        Err(json::NotFound::Nothing) => Ok(wrap(Value::String(out.text.trim().to_string()))),
        Err(e) => Err(out.json_error(e)),
    }
}

/// A parser spec checked and compiled, ready to run.
#[derive(Debug)]
enum Prepared {
    Json(Option<jq::JqFilter>),
    Yaml(Option<jq::JqFilter>),
    Raw,
    Kv(String),
    RedisInfo,
    Regex(Regex),
    Lines,
    Table,
}

/// `Ok(None)`: a valid image parser (nothing to run here).
fn prepare(p: &OutputParser) -> Result<Option<Prepared>, ParseError> {
    let builtin = match kind(p) {
        ParserKind::Builtin(b) => b,
        ParserKind::Image(name) if looks_like_image(&name) => {
            for (option, given) in options(p) {
                if given {
                    return Err(ParseError::new(format!(
                        "outputParser '{name}' is an image parser and does not use '{option}' (only {} use it)",
                        users(option)
                    )));
                }
            }
            return Ok(None);
        }
        ParserKind::Image(name) => {
            let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
            // A near miss of a built-in (`jsn`, `JSON`) gets the name it most likely meant.
            let lower = name.to_lowercase();
            let hint = crate::engine::message::close_to(&lower, known.iter().copied())
                .first()
                .map(|b| format!(": did you mean '{b}'?"))
                .unwrap_or_default();
            return Err(ParseError::new(format!(
                "outputParser '{name}' is unknown (known: {}, or an image reference such as registry.example/parsers/name:1){hint}",
                known.join(", ")
            )));
        }
    };
    let uses = |option: &str| match option {
        "jq" => matches!(builtin, Builtin::Json | Builtin::Yaml),
        "pattern" => builtin == Builtin::Regex,
        _ => builtin == Builtin::Kv,
    };
    for (option, given) in options(p) {
        if given && !uses(option) {
            return Err(ParseError::new(format!(
                "outputParser '{}' does not use '{option}' (only {} use it)",
                p.name,
                users(option)
            )));
        }
    }
    let spec_error = |what: String| ParseError::new(format!("outputParser '{}': {what}", p.name));
    let jq = match p.jq.as_deref() {
        None => None,
        Some(code) if code.trim().is_empty() => {
            return Err(spec_error(
                "jq filter is empty (omit jq to keep the whole output)".into(),
            ));
        }
        Some(code) => Some(
            jq::compile(code)
                .map_err(|e| spec_error(format!("jq filter '{code}' does not compile: {e}")))?,
        ),
    };
    Ok(Some(match builtin {
        Builtin::Json => Prepared::Json(jq),
        Builtin::Yaml => Prepared::Yaml(jq),
        Builtin::Raw => Prepared::Raw,
        Builtin::Lines => Prepared::Lines,
        Builtin::Table => Prepared::Table,
        Builtin::RedisInfo => Prepared::RedisInfo,
        Builtin::Kv => match p.separator.as_deref() {
            None => Prepared::Kv("=".into()),
            Some("") => return Err(spec_error("separator must not be empty".into())),
            Some(sep) if sep.contains(['\n', '\r']) => {
                return Err(spec_error("separator must not contain a line break".into()));
            }
            Some(sep) => Prepared::Kv(sep.into()),
        },
        Builtin::Regex => {
            let Some(pattern) = p.pattern.as_deref() else {
                return Err(spec_error(
                    "pattern is required: a regular expression with named groups, e.g. '(?P<ready>\\d+)/(?P<total>\\d+)'".into(),
                ));
            };
            let re = Regex::new(pattern)
                .map_err(|e| spec_error(format!("pattern '{pattern}' does not compile: {e}")))?;
            if re.capture_names().flatten().next().is_none() {
                return Err(spec_error(format!(
                    "pattern '{pattern}' has no named groups, so it would capture nothing; name what to keep, e.g. '(?P<ready>\\d+)/(?P<total>\\d+)'"
                )));
            }
            Prepared::Regex(re)
        }
    }))
}

fn options(p: &OutputParser) -> [(&'static str, bool); 3] {
    [
        ("jq", p.jq.is_some()),
        ("pattern", p.pattern.is_some()),
        ("separator", p.separator.is_some()),
    ]
}

fn users(option: &str) -> &'static str {
    match option {
        "jq" => "json and yaml",
        "pattern" => "regex",
        _ => "kv",
    }
}

/// The part of a step's log a parser reads, and where it came from (for messages).
struct Output<'a> {
    /// After the last marker (without the marker line's own line break), or all.
    text: &'a str,
    marker: &'a str,
    /// Whether `text` follows a marker.
    after_marker: bool,
    /// 1-based line of the whole log on which `text` starts.
    first_line: usize,
}

impl<'a> Output<'a> {
    fn new(raw: &'a str, marker: &'a str) -> Self {
        match raw.rfind(marker) {
            Some(at) => {
                let rest = &raw[at + marker.len()..];
                // The rest of the marker's line (trailing blanks, the line break) is
                // not output; text right after the marker on its line is.
                let blank = rest.trim_start_matches([' ', '\t', '\r']);
                let rest = blank.strip_prefix('\n').unwrap_or(rest);
                let start = raw.len() - rest.len();
                Output {
                    text: rest,
                    marker,
                    after_marker: true,
                    first_line: raw.as_bytes()[..start]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1,
                }
            }
            None => Output {
                text: raw,
                marker,
                after_marker: false,
                first_line: 1,
            },
        }
    }

    /// "…: <problem> (print <what> after the line '<-- END -->')".
    fn error(&self, problem: &str, what: &str) -> ParseError {
        ParseError::new(format!("{} ({})", problem, self.hint(what)))
    }

    fn hint(&self, what: &str) -> String {
        if self.after_marker {
            format!(
                "the step should print {what} after the line '{}'",
                self.marker
            )
        } else {
            format!("print {what} after the line '{}'", self.marker)
        }
    }

    fn json_error(&self, e: json::NotFound) -> ParseError {
        let place = if self.after_marker {
            format!("after the end marker '{}'", self.marker)
        } else {
            "in step output".to_string()
        };
        let detail = match e {
            json::NotFound::Nothing => String::new(),
            json::NotFound::Invalid(problem) => format!("; {problem}"),
            json::NotFound::GaveUp => {
                "; gave up searching: too much text that looks like the start of JSON".into()
            }
        };
        ParseError::new(format!(
            "no JSON found {place}{detail} (print one JSON object after the line '{}')",
            self.marker
        ))
    }
}

/// Applies the optional jq filter, then wraps the result as an object.
fn apply_jq(name: &str, jq: Option<&jq::JqFilter>, v: Value) -> Result<Value, ParseError> {
    let Some(jq) = jq else {
        return Ok(wrap(v));
    };
    let mut outs = jq.run(&v).map_err(|e| {
        ParseError::new(format!(
            "outputParser '{name}': the jq filter failed on the step output: {e}"
        ))
    })?;
    // One value: as if the step had printed it. None or several: a list, so a filter
    // like `.items[] | select(...)` always reads as `.output` when it is not one object.
    Ok(if outs.len() == 1 {
        wrap(outs.remove(0))
    } else {
        wrap(Value::Array(outs))
    })
}

/// Objects are kept; anything else becomes `{"output": v}` (StackPulse's rule).
fn wrap(v: Value) -> Value {
    match v {
        Value::Object(_) => v,
        other => {
            let mut m = Map::new();
            m.insert("output".into(), other);
            Value::Object(m)
        }
    }
}

/// A short, escaped excerpt of step output for error messages (lines can be huge).
fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("'{out}'")
}

/// Values typed as the StackPulse SDK types env maps: `true`/`false` are booleans,
/// integers are numbers, everything else stays a string. Unlike Go's `Atoi`, digit
/// strings with leading zeros (`007`, a zip code, a git sha) stay strings, so nothing
/// is lost.
fn typed(s: &str) -> Value {
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => integer(s).map_or_else(|| Value::String(s.to_string()), Value::from),
    }
}

fn integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}
