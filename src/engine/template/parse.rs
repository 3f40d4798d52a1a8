//! Pipeline parser: the tokens of one action into a small syntax tree, with the
//! checks Go's parser makes (known functions, declared variables, arguments only
//! after a function, parentheses) and messages that say what to change.
//!
//! Part of `engine::template`: `rewrite.rs` drives it action by action (it owns the
//! `if`/`range`/`end` structure) and emits gtmpl text from the tree.

use super::funcs;
use super::lex::{SrcError, Tok, Token, err};
use super::paths::{MAX_STEPS, Seg};

/// Nesting of `if`/`range`/`with` plus parentheses; deeper templates are refused so
/// neither this parser nor gtmpl's recursive one can exhaust the stack.
pub(crate) const MAX_DEPTH: usize = 50;

pub(crate) const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

pub(crate) struct Pipe {
    pub decl: Vec<String>,
    pub cmds: Vec<Cmd>,
}

pub(crate) struct Cmd {
    pub args: Vec<Operand>,
}

pub(crate) struct Operand {
    pub term: Term,
    pub segs: Vec<Seg>,
}

pub(crate) enum Term {
    Dot,
    Var(String),
    Func(String),
    Str(String),
    Num(String),
    Bool(bool),
    Nil,
    Sub(Pipe),
}

/// A cursor over one action's tokens.
pub(crate) struct Parser<'a> {
    pub src: &'a str,
    pub toks: &'a [Token],
    pub i: usize,
    /// Offset reported for "missing ..." at the end of the action.
    pub end: usize,
    pub depth: usize,
    /// Variables in scope.
    pub vars: &'a [String],
    /// `secret` is allowed (env values).
    pub secrets: bool,
}

impl Parser<'_> {
    pub(crate) fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn skip_ns(&mut self) {
        while matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Space,
                ..
            })
        ) {
            self.i += 1;
        }
    }

    pub(crate) fn peek_ns(&mut self) -> Option<&Token> {
        self.skip_ns();
        self.peek()
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn text(&self, from: usize, to: usize) -> &str {
        self.src.get(from..to).unwrap_or("?")
    }

    /// Nothing may follow `else` / `end`.
    pub(crate) fn expect_end(&mut self, kw: &str) -> Result<(), SrcError> {
        match self.peek_ns() {
            None => Ok(()),
            Some(t) => {
                let (pos, end) = (t.pos, t.end);
                err(
                    pos,
                    format!("unexpected `{}` after `{kw}`", self.text(pos, end)),
                )
            }
        }
    }

    /// `[decls :=] command (| command)*`; `what` is the error when it is empty.
    pub(crate) fn pipeline(&mut self, max_decls: usize, what: &str) -> Result<Pipe, SrcError> {
        let decl = self.decls(max_decls)?;
        let mut cmds = Vec::new();
        let mut bar = None;
        loop {
            let (cmd, spans) = self.command()?;
            let Some(first) = cmd.args.first() else {
                return match bar {
                    Some(pos) => err(pos, "`|` must be followed by a function"),
                    None => err(self.here(), what),
                };
            };
            let (pos, end) = spans[0];
            let shown = self.text(pos, end);
            let is_fn = matches!(first.term, Term::Func(_)) && first.segs.is_empty();
            if !is_fn && bar.is_some() {
                return err(
                    pos,
                    format!("only a function can follow `|`, not `{shown}`"),
                );
            }
            if !is_fn && cmd.args.len() > 1 {
                let msg = format!(
                    "`{shown}` is a value, not a function, so it cannot take arguments \
                     (missing `|`, or a function such as `eq` before it?)"
                );
                return err(pos, msg);
            }
            if matches!(first.term, Term::Nil) && cmd.args.len() == 1 {
                return err(pos, "`nil` is not a command");
            }
            cmds.push(cmd);
            match self.peek_ns() {
                Some(Token {
                    tok: Tok::Pipe,
                    pos,
                    ..
                }) => {
                    bar = Some(*pos);
                    self.i += 1;
                }
                _ => break,
            }
        }
        Ok(Pipe { decl, cmds })
    }

    /// `$x :=` or (range only) `$k, $v :=` at the start of a pipeline.
    fn decls(&mut self, max: usize) -> Result<Vec<String>, SrcError> {
        let start = self.i;
        let mut names = Vec::new();
        while let Some(Token {
            tok: Tok::Var(name),
            pos,
            ..
        }) = self.peek_ns().cloned()
        {
            self.i += 1;
            match self.peek_ns().map(|t| t.tok.clone()) {
                Some(Tok::Declare | Tok::Comma) if name == "$" => {
                    return err(pos, "`$` cannot be declared");
                }
                Some(Tok::Declare | Tok::Comma) if name.starts_with("$__") => {
                    return err(pos, "variable names starting with `$__` are reserved");
                }
                Some(Tok::Assign) => {
                    let msg = format!(
                        "assigning with `=` is not supported; declare a new variable: `{name} := ...`"
                    );
                    return err(pos, msg);
                }
                Some(Tok::Declare) => {
                    names.push(name);
                    self.i += 1;
                    break;
                }
                Some(Tok::Comma) if max == 2 && names.is_empty() => {
                    names.push(name);
                    self.i += 1;
                }
                Some(Tok::Comma) if max == 2 => {
                    return err(
                        pos,
                        "`range` declares at most two variables: `$key, $value :=`",
                    );
                }
                Some(Tok::Comma) => return err(pos, "only `range` can declare two variables"),
                _ if names.is_empty() => {
                    self.i = start;
                    break;
                }
                _ => return err(pos, "expected `:=` after the variables"),
            }
        }
        if names.len() > max {
            return err(self.here(), "this pipeline cannot declare a variable");
        }
        Ok(names)
    }

    /// Operands up to `|`, `)` or the end; also each operand's source span.
    fn command(&mut self) -> Result<(Cmd, Vec<(usize, usize)>), SrcError> {
        let mut args = Vec::new();
        let mut spans = Vec::new();
        loop {
            self.skip_ns();
            let Some(t) = self.peek().cloned() else { break };
            match t.tok {
                Tok::Pipe | Tok::RParen => break,
                Tok::Declare | Tok::Assign | Tok::Comma => {
                    return err(t.pos, format!("unexpected `{}`", self.text(t.pos, t.end)));
                }
                _ => {}
            }
            let (op, span) = self.operand()?;
            args.push(op);
            spans.push(span);
            if let Some(t) = self.peek()
                && !matches!(t.tok, Tok::Space | Tok::Pipe | Tok::RParen)
            {
                return err(t.pos, "put a space between arguments");
            }
        }
        Ok((Cmd { args }, spans))
    }

    fn operand(&mut self) -> Result<(Operand, (usize, usize)), SrcError> {
        let Some(t) = self.next() else {
            return err(self.here(), "unexpected end of action");
        };
        let term = match t.tok {
            Tok::Word(w) => match w.as_str() {
                "true" | "false" => Term::Bool(w == "true"),
                "nil" => Term::Nil,
                k if KEYWORDS.contains(&k) => {
                    return err(t.pos, format!("unexpected keyword `{k}`"));
                }
                "secret" if !self.secrets => {
                    return err(t.pos, "secret can only be used in env values");
                }
                f => {
                    funcs::check_name(f).or_else(|m| err(t.pos, m))?;
                    Term::Func(w)
                }
            },
            Tok::Dot => Term::Dot,
            Tok::Var(v) => {
                if v != "$" && !self.vars.contains(&v) {
                    let msg = format!(
                        "undefined variable `{v}`: declare it first with `{{{{ {v} := ... }}}}`"
                    );
                    return err(t.pos, msg);
                }
                Term::Var(v)
            }
            Tok::Str(s) => Term::Str(s),
            Tok::Num(n) => Term::Num(n),
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return err(
                        t.pos,
                        format!("template nests more than {MAX_DEPTH} levels deep"),
                    );
                }
                let pipe = self.pipeline(0, "empty parentheses: put an expression inside")?;
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => {}
                    _ => return err(t.pos, "unclosed `(`: add `)`"),
                }
                self.depth -= 1;
                Term::Sub(pipe)
            }
            Tok::RParen => return err(t.pos, "unexpected `)`"),
            _ => return err(t.pos, format!("unexpected `{}`", self.text(t.pos, t.end))),
        };
        let mut segs = Vec::new();
        let mut end = t.end;
        while let Some(Token {
            tok: Tok::Seg(s),
            end: e,
            ..
        }) = self.peek().cloned()
        {
            self.i += 1;
            segs.push(s);
            end = e;
        }
        if segs.len() > MAX_STEPS {
            return err(t.pos, format!("a path may have at most {MAX_STEPS} steps"));
        }
        if !segs.is_empty() && matches!(term, Term::Bool(_) | Term::Nil) {
            return err(t.pos, "a path step cannot follow a literal");
        }
        Ok((Operand { term, segs }, (t.pos, end)))
    }
}
