//! Template rewriter: walks the lexed template, checks the `if`/`range`/`with`/`end`
//! structure, parses each action (`parse.rs`) and emits the plain Go template gtmpl
//! runs, plus what `references()` and the renderer need to know.
//!
//! Part of `engine::template`. What changes on the way to gtmpl:
//! - every path (`.a.b`, `$.'x-y'[0].z`, `$v.a`, `(f).a`) becomes
//!   `(__path ROOT "step"...)`, so quoted ids, indexes, `[:]` and `.*` work and a
//!   missing key at any depth is `<no value>`; `get "$.a.b"` with a literal too;
//! - printing actions end in `| __print` (Go-style printing with maps in key order;
//!   in env/arg mode it also escapes `$`), conditions and declarations in `| __check`
//!   (raises an error a function deferred, see `funcs.rs`), and every action is
//!   preceded by `{{__at N}}`, so an execution error can name the action it came from;
//! - `else if` becomes `else` + nested `if` (Go's own desugaring); `range` goes
//!   through `__iter`/`__entries` (maps in key order, missing = empty) and keeps its
//!   list in `$__rN`, because gtmpl runs a range's `else` even after iterating;
//! - trims, comments and newlines inside actions (which gtmpl cannot lex) are dealt
//!   with here, and literals are re-emitted in the only forms gtmpl unquotes safely.

use std::collections::BTreeSet;

use super::lex::{self, Action, Piece, SrcError, Tok, Token, err, is_space};
use super::parse::{Cmd, KEYWORDS, MAX_DEPTH, Operand, Parser, Pipe, Term};
use super::paths::Seg;

pub(crate) struct Options {
    /// `secret` may be used (env values).
    pub secrets: bool,
    /// Kubernetes expands `$(VAR)` in the result: escape `$` in what actions print.
    pub k8s: bool,
}

pub(crate) struct Program {
    /// The template gtmpl parses.
    pub text: String,
    /// Source offset of each action's `{{`, indexed by the `__at` argument.
    pub actions: Vec<usize>,
    pub refs: Vec<Vec<String>>,
    /// Top-level context keys the template reads; None = it may read anything.
    pub roots: Option<BTreeSet<String>>,
}

pub(crate) fn rewrite(src: &str, opts: &Options) -> Result<Program, SrcError> {
    let mut w = Writer {
        src,
        opts,
        out: String::new(),
        text: String::new(),
        trim_next: false,
        frames: Vec::new(),
        vars: Vec::new(),
        actions: Vec::new(),
        refs: Vec::new(),
        roots: Some(BTreeSet::new()),
    };
    for piece in lex::scan(src)? {
        match piece {
            Piece::Text(t) => {
                let trim = std::mem::take(&mut w.trim_next);
                w.text += &lex::clean(if trim {
                    t.trim_start_matches(is_space)
                } else {
                    t
                });
            }
            Piece::Action(a) => w.action(&a)?,
        }
    }
    if let Some(f) = w.frames.last() {
        return err(
            f.open,
            format!("`{}` is never closed: add `{{{{ end }}}}`", f.kind),
        );
    }
    w.flush(false);
    Ok(Program {
        text: w.out,
        actions: w.actions,
        refs: w.refs,
        roots: w.roots,
    })
}

struct Frame {
    kind: &'static str,
    open: usize,
    /// `end`s owed for `else if`s turned into nested `if`s.
    extra_ends: usize,
    /// A two-variable `range`, desugared with an inner `range` that `else`/`end` close.
    entries: bool,
    /// For a `range`: the number of its `$__rN` variable.
    range_var: Option<usize>,
    else_seen: bool,
    /// Dot is rebound here (body of `range`/`with`), so `.x` is not a root path.
    rebinds: bool,
    vars_len: usize,
    /// Bytes of author text in this `range`'s body, printed once per iteration
    /// (charged by a `__text` call there, see `budget.rs`).
    loop_text: usize,
}

/// The `__text N` call that ends a `range` body with author text in it.
fn loop_text(f: &Frame) -> String {
    if f.range_var.is_some() && !f.else_seen && f.loop_text > 0 {
        format!("{{{{__text {}}}}}", f.loop_text)
    } else {
        String::new()
    }
}

struct Writer<'a> {
    src: &'a str,
    opts: &'a Options,
    out: String,
    /// Author text not yet written (comments join the text around them).
    text: String,
    trim_next: bool,
    frames: Vec<Frame>,
    vars: Vec<String>,
    actions: Vec<usize>,
    refs: Vec<Vec<String>>,
    roots: Option<BTreeSet<String>>,
}

impl Writer<'_> {
    fn action(&mut self, a: &Action) -> Result<(), SrcError> {
        if a.trim_left {
            let kept = self.text.trim_end_matches(is_space).len();
            self.text.truncate(kept);
        }
        self.trim_next = a.trim_right;
        if a.comment {
            return Ok(());
        }
        self.flush(true);
        let vars = self.vars.clone();
        let mut p = Parser {
            src: self.src,
            toks: &a.toks,
            i: 0,
            end: a.toks.last().map_or(a.open + 2, |t| t.end),
            depth: self.nesting(),
            vars: &vars,
            secrets: self.opts.secrets,
        };
        let Some(first) = p.peek_ns().cloned() else {
            return err(
                a.open,
                "empty action `{{ }}`: put an expression inside, or remove it",
            );
        };
        let kw = match &first.tok {
            Tok::Word(w) if KEYWORDS.contains(&w.as_str()) => w.as_str(),
            _ => "",
        };
        if !kw.is_empty() {
            p.i += 1;
        }
        let nest_err = || {
            err(
                first.pos,
                format!("template nests more than {MAX_DEPTH} levels deep"),
            )
        };
        match kw {
            "" => {
                let pipe = p.pipeline(1, "missing a value after `:=`")?;
                let at = self.at(a.open);
                let tail = if pipe.decl.is_empty() {
                    " | __print"
                } else {
                    " | __check"
                };
                let body = self.pipe_text(&pipe);
                self.out += &format!("{at}{{{{{body}{tail}}}}}");
                self.vars.extend(pipe.decl);
            }
            "if" | "with" | "range" => {
                if self.nesting() >= MAX_DEPTH {
                    return nest_err();
                }
                let vars_len = self.vars.len();
                let decls = if kw == "range" { 2 } else { 1 };
                let pipe = p.pipeline(decls, &format!("`{kw}` needs a value"))?;
                let at = self.at(a.open);
                let n = self.actions.len();
                let body = self.pipe_text(&pipe);
                let value = match body.split_once(" := ") {
                    Some((_, v)) if !pipe.decl.is_empty() => v,
                    _ => body.as_str(),
                };
                let entries = pipe.decl.len() == 2;
                self.out += &at;
                self.out += &match (kw, pipe.decl.as_slice()) {
                    ("range", [k, v]) => format!(
                        "{{{{$__r{n} := {value} | __entries}}}}{{{{range $__e{n} := $__r{n}}}}}\
                         {{{{{k} := index $__e{n} 0}}}}{{{{{v} := index $__e{n} 1}}}}\
                         {{{{range __one {v}}}}}"
                    ),
                    ("range", decl) => {
                        let decl = decl.first().map(|d| format!("{d} := ")).unwrap_or_default();
                        format!("{{{{$__r{n} := {value} | __iter}}}}{{{{range {decl}$__r{n}}}}}")
                    }
                    _ => format!("{{{{{kw} {body} | __check}}}}"),
                };
                self.vars.extend(pipe.decl);
                self.frames.push(Frame {
                    kind: if kw == "if" {
                        "if"
                    } else if kw == "with" {
                        "with"
                    } else {
                        "range"
                    },
                    open: a.open,
                    extra_ends: 0,
                    entries,
                    range_var: (kw == "range").then_some(n),
                    else_seen: false,
                    rebinds: kw != "if",
                    vars_len,
                    loop_text: 0,
                });
            }
            "else" => {
                let is_if =
                    matches!(p.peek_ns(), Some(Token { tok: Tok::Word(w), .. }) if w == "if");
                let nesting = self.nesting();
                let Some(f) = self.frames.last_mut() else {
                    return err(
                        first.pos,
                        "`else` without a matching `if`, `range` or `with`",
                    );
                };
                if f.else_seen {
                    return err(
                        first.pos,
                        format!("a second `else` in the same `{}`", f.kind),
                    );
                }
                if is_if {
                    if f.kind != "if" {
                        return err(
                            first.pos,
                            format!("`else if` cannot continue a `{}`", f.kind),
                        );
                    }
                    if nesting >= MAX_DEPTH {
                        return nest_err();
                    }
                    f.extra_ends += 1;
                    p.i += 1;
                    let pipe = p.pipeline(1, "`else if` needs a value")?;
                    let at = self.at(a.open);
                    let body = self.pipe_text(&pipe);
                    self.out += &format!("{{{{else}}}}{at}{{{{if {body} | __check}}}}");
                    self.vars.extend(pipe.decl);
                } else {
                    p.expect_end("else")?;
                    self.out += &loop_text(f);
                    f.else_seen = true;
                    f.rebinds = false;
                    self.out += &match f.range_var {
                        Some(n) if f.entries => {
                            format!("{{{{end}}}}{{{{end}}}}{{{{if not $__r{n}}}}}")
                        }
                        Some(n) => format!("{{{{end}}}}{{{{if not $__r{n}}}}}"),
                        None => "{{else}}".to_string(),
                    };
                }
            }
            "end" => {
                p.expect_end("end")?;
                let Some(f) = self.frames.pop() else {
                    return err(
                        first.pos,
                        "`end` without a matching `if`, `range` or `with`",
                    );
                };
                let n = 1 + f.extra_ends + usize::from(f.entries && !f.else_seen);
                self.out += &loop_text(&f);
                self.out += &"{{end}}".repeat(n);
                self.vars.truncate(f.vars_len);
            }
            "break" | "continue" => {
                return err(
                    first.pos,
                    format!("`{kw}` is not supported; use `if` inside the `range`"),
                );
            }
            _ => {
                return err(
                    first.pos,
                    format!("`{kw}` is not supported in playbook templates"),
                );
            }
        }
        Ok(())
    }

    /// Writes pending author text. In Kubernetes mode a `$` that the text leaves open
    /// to what follows (an unclosed `$(` or a trailing `$` before an action) is doubled,
    /// so data printed next to it can never complete a `$(VAR)` reference.
    fn flush(&mut self, before_action: bool) {
        let mut t = std::mem::take(&mut self.text);
        if self.opts.k8s && t.contains('$') {
            t = escape_open_dollars(&t, before_action);
        }
        // A text ending in `{` right before our `{{` would read as `{{{`: print it.
        if before_action && t.ends_with('{') {
            t.pop();
            t += "{{\"{\"}}";
        }
        if let Some(f) = self
            .frames
            .iter_mut()
            .rev()
            .find(|f| f.range_var.is_some() && !f.else_seen)
        {
            f.loop_text += t.len();
        }
        self.out += &t;
    }

    fn at(&mut self, open: usize) -> String {
        self.actions.push(open);
        format!("{{{{__at {}}}}}", self.actions.len() - 1)
    }

    /// Levels gtmpl will recurse through: open blocks plus `else if`s (nested `if`s).
    fn nesting(&self) -> usize {
        self.frames.iter().map(|f| 1 + f.extra_ends).sum()
    }

    fn rebound(&self) -> bool {
        self.frames.iter().any(|f| f.rebinds)
    }

    /// Records a root path for `references()` and the top-level keys to convert.
    fn note_path(&mut self, segs: &[Seg]) {
        match (segs.first(), &mut self.roots) {
            (Some(Seg::Key(k)), Some(roots)) => {
                roots.insert(k.clone());
            }
            _ => self.roots = None,
        }
        let path: Vec<String> = segs.iter().map(Seg::label).collect();
        if !path.is_empty() && !self.refs.contains(&path) {
            self.refs.push(path);
        }
    }

    fn pipe_text(&mut self, pipe: &Pipe) -> String {
        let mut s = String::new();
        if !pipe.decl.is_empty() {
            s += &pipe.decl.join(", ");
            s += " := ";
        }
        let cmds: Vec<String> = pipe.cmds.iter().map(|c| self.cmd_text(c)).collect();
        s + &cmds.join(" | ")
    }

    fn cmd_text(&mut self, c: &Cmd) -> String {
        let is_get = matches!(&c.args[0], Operand { term: Term::Func(f), segs } if f == "get" && segs.is_empty());
        if !is_get {
            let args: Vec<String> = c.args.iter().map(|o| self.operand_text(o)).collect();
            return args.join(" ");
        }
        // `get "$.a.b"`: a literal path is resolved now, like a written path.
        if let [
            _,
            Operand {
                term: Term::Str(s),
                segs,
            },
        ] = c.args.as_slice()
            && segs.is_empty()
            && let Some((dot, path)) = lex::parse_path(s)
        {
            if !dot || !self.rebound() {
                self.note_path(&path);
            }
            return path_text(if dot { "." } else { "$" }, &path);
        }
        self.roots = None;
        let mut text = "__get $ .".to_string();
        for o in &c.args[1..] {
            text.push(' ');
            text += &self.operand_text(o);
        }
        text
    }

    fn operand_text(&mut self, op: &Operand) -> String {
        let root = match &op.term {
            Term::Dot => ".".to_string(),
            Term::Var(v) => v.clone(),
            Term::Func(f) if f == "get" => {
                self.roots = None;
                "(__get $ .)".to_string()
            }
            Term::Func(f) => f.clone(),
            Term::Str(s) => quote(s),
            Term::Num(n) => n.clone(),
            Term::Bool(b) => b.to_string(),
            Term::Nil => "nil".to_string(),
            Term::Sub(p) => format!("({})", self.pipe_text(p)),
        };
        let from_root = match &op.term {
            Term::Var(v) => v == "$",
            Term::Dot => !self.rebound(),
            _ => false,
        };
        if from_root {
            self.note_path(&op.segs);
        }
        path_text(&root, &op.segs)
    }
}

fn path_text(root: &str, segs: &[Seg]) -> String {
    if segs.is_empty() {
        return root.to_string();
    }
    let steps: Vec<String> = segs.iter().map(|s| quote(&s.encode())).collect();
    format!("(__path {root} {})", steps.join(" "))
}

/// A Go string literal gtmpl's unquoting handles: only `\\`, `\"`, `\n`, `\r` escapes.
pub(crate) fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '\\' => q += "\\\\",
            '"' => q += "\\\"",
            '\n' => q += "\\n",
            '\r' => q += "\\r",
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Author text keeps its Kubernetes meaning (`$$`, a complete `$(NAME)`, a `$`
/// before an ordinary character) except where it is left open to what an action
/// prints after it: a `$(` without its `)` and a trailing `$` are doubled.
fn escape_open_dollars(t: &str, before_action: bool) -> String {
    let mut out = String::with_capacity(t.len() + 4);
    let mut rest = t;
    while let Some(i) = rest.find('$') {
        out += &rest[..i];
        let tail = &rest[i..];
        let used = match (tail.as_bytes().get(1), tail.find(')')) {
            (Some(b'$'), _) => {
                out += "$$";
                2
            }
            (Some(b'('), Some(j)) => {
                out += &tail[..=j];
                j + 1
            }
            (Some(b'('), None) => {
                out += "$$";
                1
            }
            (None, _) if before_action => {
                out += "$$";
                1
            }
            _ => {
                out.push('$');
                1
            }
        };
        rest = &tail[used..];
    }
    out + rest
}
