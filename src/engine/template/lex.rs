//! Template lexer: splits a template into text and `{{ }}` actions and tokenizes each
//! action, Go `text/template` rules plus the StackPulse path syntax.
//!
//! Part of `engine::template`. `parse.rs` parses these tokens; nothing
//! here knows about gtmpl. Every token keeps its byte offset in the ORIGINAL source so
//! errors point at what the author wrote. Literals are decoded here (strings, numbers,
//! quoted path ids), so gtmpl only ever sees the canonical forms the rewriter emits.

use super::paths::{MAX_STEPS, Seg};
use super::value;

/// A lexing or parsing problem at a byte offset of the original source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrcError {
    pub pos: usize,
    pub msg: String,
}

pub(crate) fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, SrcError> {
    Err(SrcError {
        pos,
        msg: msg.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Space,
    /// Identifier or keyword (`if`, `eq`, `true`...).
    Word(String),
    /// Decoded string literal (from `"..."` or a raw `` `...` `` string).
    Str(String),
    /// Number literal, already in the canonical text gtmpl should see.
    Num(String),
    /// `.` on its own, or the `.` that roots a path like `.a.b`.
    Dot,
    /// `$` or `$name`.
    Var(String),
    /// A path step glued to the token before it.
    Seg(Seg),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub end: usize,
}

#[derive(Debug)]
pub(crate) struct Action {
    /// Offset of the `{{`.
    pub open: usize,
    pub trim_left: bool,
    pub trim_right: bool,
    pub comment: bool,
    pub toks: Vec<Token>,
}

#[derive(Debug)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Action(Action),
}

/// Go's space characters (`text/template` uses exactly these, not Unicode spaces).
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits `src` into text and actions. The first `{{` always opens an action, as in Go.
pub(crate) fn scan(src: &str) -> Result<Vec<Piece<'_>>, SrcError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = src[pos..].find("{{") {
        let open = pos + i;
        if open > pos {
            out.push(Piece::Text(&src[pos..open]));
        }
        let (action, end) = Lexer { src, pos: open + 2 }.action(open)?;
        out.push(Piece::Action(action));
        pos = end;
    }
    if pos < src.len() {
        out.push(Piece::Text(&src[pos..]));
    }
    Ok(out)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Lexes one action whose `{{` is at `open`; returns it and the offset after `}}`.
    fn action(mut self, open: usize) -> Result<(Action, usize), SrcError> {
        let mut a = Action {
            open,
            trim_left: false,
            trim_right: false,
            comment: false,
            toks: Vec::new(),
        };
        if self.peek() == Some('-') && self.peek2().is_some_and(is_space) {
            a.trim_left = true;
            self.pos += 1;
        }
        let unclosed = || err(open, "unclosed action: this `{{` has no matching `}}`");
        // A comment must follow the delimiter (and trim marker) directly, as in Go.
        let after_space = self.rest().trim_start_matches(is_space);
        if self.rest().starts_with("/*") || (a.trim_left && after_space.starts_with("/*")) {
            self.pos = self.src.len() - after_space.len();
            let Some(end) = self.rest().find("*/") else {
                return err(self.pos, "unclosed comment: `/*` has no matching `*/`");
            };
            self.pos += end + 2;
            if let Some(end) = self.right_delim(&mut a) {
                a.comment = true;
                return Ok((a, end));
            }
            return err(
                self.pos,
                "a comment must end right before `}}`: write `/* ... */}}`",
            );
        }
        loop {
            if let Some(end) = self.right_delim(&mut a) {
                return Ok((a, end));
            }
            let start = self.pos;
            let Some(c) = self.bump() else {
                return unclosed();
            };
            let tok = match c {
                c if is_space(c) => {
                    while self.peek().is_some_and(is_space) {
                        self.pos += 1;
                    }
                    Tok::Space
                }
                '"' | '`' => Tok::Str(self.string(c, start)?),
                '\'' => self.char_const(start)?,
                '$' => {
                    let n = self
                        .rest()
                        .find(|c| !is_word(c))
                        .unwrap_or(self.rest().len());
                    self.pos += n;
                    Tok::Var(self.src[start..self.pos].to_string())
                }
                '.' if self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                    self.pos = start;
                    self.number()?
                }
                '.' => {
                    self.pos = start;
                    a.toks.push(Token {
                        tok: Tok::Dot,
                        pos: start,
                        end: start + 1,
                    });
                    // `.` followed by a name/quote/`*`/`[` roots a path; bare `.` is dot.
                    if matches!(self.peek2(), Some(c) if is_word(c) || "'\"*[".contains(c)) {
                        self.segments(&mut a.toks)?;
                    } else {
                        self.pos += 1;
                    }
                    continue;
                }
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                '|' => Tok::Pipe,
                ',' => Tok::Comma,
                '=' => Tok::Assign,
                ':' if self.peek() == Some('=') => {
                    self.pos += 1;
                    Tok::Declare
                }
                '-' if self.rest().starts_with("}}") => {
                    return err(start, "put a space before the trim marker: ` -}}`");
                }
                '+' | '-' | '0'..='9' => {
                    self.pos = start;
                    self.number()?
                }
                c if is_word(c) => {
                    let n = self
                        .rest()
                        .find(|c| !is_word(c))
                        .unwrap_or(self.rest().len());
                    self.pos += n;
                    Tok::Word(self.src[start..self.pos].to_string())
                }
                '}' => return err(start, "unexpected `}` in action: close it with `}}`"),
                '/' if self.peek() == Some('*') => {
                    return err(
                        start,
                        "a comment must start right after `{{`: write `{{/* ... */}}`",
                    );
                }
                c => return err(start, format!("unexpected character {c:?} in action")),
            };
            let glue = matches!(tok, Tok::Var(_) | Tok::RParen | Tok::Word(_));
            let literal = matches!(tok, Tok::Str(_) | Tok::Num(_));
            a.toks.push(Token {
                tok,
                pos: start,
                end: self.pos,
            });
            if matches!(self.peek(), Some('.' | '[')) {
                if glue {
                    self.segments(&mut a.toks)?;
                } else if literal {
                    return err(self.pos, "a path step cannot follow a literal");
                }
            }
        }
    }

    /// At `}}` or a space run followed by `-}}`: consumes it and returns the end offset.
    fn right_delim(&mut self, a: &mut Action) -> Option<usize> {
        if self.rest().starts_with("}}") {
            return Some(self.pos + 2);
        }
        let spaces = self.rest().len() - self.rest().trim_start_matches(is_space).len();
        if spaces > 0 && self.rest()[spaces..].starts_with("-}}") {
            a.trim_right = true;
            return Some(self.pos + spaces + 3);
        }
        None
    }

    /// Path steps glued together: `.a.'b-c'[0][:].*`.
    fn segments(&mut self, toks: &mut Vec<Token>) -> Result<(), SrcError> {
        loop {
            let start = self.pos;
            let seg = match (self.peek(), self.peek2()) {
                (Some('.'), Some('[')) => {
                    self.pos += 1;
                    continue;
                }
                (Some('['), _) => self.bracket()?,
                (Some('.'), Some('*')) => {
                    self.pos += 2;
                    Seg::All
                }
                (Some('.'), Some(q @ ('\'' | '"'))) => {
                    self.pos += 1;
                    let qstart = self.pos;
                    self.pos += 1;
                    Seg::Key(self.quoted(q, qstart)?)
                }
                (Some('.'), Some(c)) if is_word(c) => {
                    self.pos += 1;
                    Seg::Key(self.key())
                }
                (Some('.'), _) => return err(start, "a `.` in a path must be followed by a name"),
                _ => return Ok(()),
            };
            toks.push(Token {
                tok: Tok::Seg(seg),
                pos: start,
                end: self.pos,
            });
        }
    }

    /// An unquoted key: word characters, plus `-` between them (`.redis-info`).
    fn key(&mut self) -> String {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(c) if is_word(c) => {
                    self.bump();
                }
                Some('-') if self.peek2().is_some_and(is_word) => self.pos += 1,
                _ => break,
            }
        }
        self.src[start..self.pos].to_string()
    }

    /// `[0]`, `[-1]`, `[:]`, `[*]`, `[1:3]`, `['key']`.
    fn bracket(&mut self) -> Result<Seg, SrcError> {
        let start = self.pos;
        let Some(close) = self.rest().find(']') else {
            return err(start, "unclosed `[` in path");
        };
        let inner = &self.src[start + 1..start + close];
        let bad = || {
            err(
                start,
                format!("bad path index `[{inner}]`: use [0], [-1], [:], [*], [1:3] or ['key']"),
            )
        };
        let int = |s: &str| s.trim().parse::<i64>().ok();
        let seg = if inner == "*" || inner == ":" {
            if inner == "*" {
                Seg::All
            } else {
                Seg::Slice(None, None)
            }
        } else if let Some(q @ ('\'' | '"')) = inner.chars().next() {
            self.pos += 1;
            let key = self.quoted(q, start + 1)?;
            if self.peek() != Some(']') {
                return bad();
            }
            self.pos += 1;
            return Ok(Seg::Key(key));
        } else if let Some((a, b)) = inner.split_once(':') {
            let bound = |s: &str| {
                if s.trim().is_empty() {
                    Some(None)
                } else {
                    int(s).map(Some)
                }
            };
            match (bound(a), bound(b)) {
                (Some(a), Some(b)) => Seg::Slice(a, b),
                _ => return bad(),
            }
        } else {
            match int(inner) {
                Some(i) => Seg::Index(i),
                None => return bad(),
            }
        };
        self.pos = start + close + 1;
        Ok(seg)
    }

    /// A quoted path id; `self.pos` is just after the opening quote at `qstart`.
    fn quoted(&mut self, q: char, qstart: usize) -> Result<String, SrcError> {
        self.pos = qstart;
        let s = self.string(q, qstart)?;
        if s.is_empty() {
            return err(qstart, "empty quoted name in path");
        }
        Ok(s)
    }

    /// Decodes a literal whose opening quote `q` is at `start`; leaves `pos` after it.
    /// Go rules: raw strings (`` ` ``) take everything verbatim (CRs dropped); quoted
    /// strings take Go escapes and may not span lines.
    fn string(&mut self, q: char, start: usize) -> Result<String, SrcError> {
        self.pos = start + 1;
        if q == '`' {
            let Some(end) = self.rest().find('`') else {
                return err(start, "unterminated raw string: add the closing `");
            };
            let s = self.rest()[..end].replace('\r', "");
            self.pos += end + 1;
            return Ok(clean(&s));
        }
        let mut bytes = Vec::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None | Some('\n') => {
                    return err(start, format!("unterminated string: add the closing {q}"));
                }
                Some(c) if c == q => break,
                Some('\\') => self.escape(q, at, &mut bytes)?,
                Some(c) => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        match String::from_utf8(bytes) {
            Ok(s) => Ok(clean(&s)),
            Err(_) => err(start, "string escapes do not form valid UTF-8"),
        }
    }

    fn escape(&mut self, q: char, at: usize, out: &mut Vec<u8>) -> Result<(), SrcError> {
        let bad = |m: &str| err(at, format!("bad escape in string: {m}"));
        let simple = match self.bump() {
            Some('a') => Some('\u{7}'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('v') => Some('\u{b}'),
            Some('\\') => Some('\\'),
            Some(c) if c == q => Some(c),
            Some(c @ ('x' | 'u' | 'U')) => {
                let n = match c {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits = self
                    .rest()
                    .get(..n)
                    .filter(|d| d.chars().all(|c| c.is_ascii_hexdigit()));
                let Some(digits) = digits else {
                    return bad(&format!("\\{c} needs {n} hex digits"));
                };
                let v = u32::from_str_radix(digits, 16).unwrap_or(u32::MAX);
                self.pos += n;
                if c == 'x' {
                    out.push(v as u8);
                    return Ok(());
                }
                match char::from_u32(v) {
                    Some(ch) => Some(ch),
                    None => return bad("not a valid Unicode code point"),
                }
            }
            Some(c @ '0'..='7') => {
                let digits = self.src.get(self.pos - 1..self.pos + 2).unwrap_or("");
                match u8::from_str_radix(digits, 8) {
                    Ok(v) if digits.len() == 3 => {
                        self.pos += 2;
                        out.push(v);
                        return Ok(());
                    }
                    _ => return bad(&format!("\\{c} must be three octal digits below \\400")),
                }
            }
            Some(c) => return bad(&format!("unknown escape \\{c}")),
            None => return bad("string ends after \\"),
        };
        if let Some(ch) = simple {
            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
        }
        Ok(())
    }

    /// A Go character constant `'x'` is a number (its code point).
    fn char_const(&mut self, start: usize) -> Result<Tok, SrcError> {
        let s = self.string('\'', start)?;
        let mut it = s.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => Ok(Tok::Num((c as u32).to_string())),
            _ => err(
                start,
                "a character constant holds one character; for a quoted name write `$.'name'`",
            ),
        }
    }

    /// Go number syntax (sign, 0x/0o/0b, `_`, fraction, exponent), canonicalised.
    fn number(&mut self) -> Result<Tok, SrcError> {
        let start = self.pos;
        let n = self
            .rest()
            .char_indices()
            .find(|&(i, c)| {
                let prev = self.rest()[..i].chars().last();
                !(c.is_ascii_alphanumeric()
                    || c == '_'
                    || c == '.'
                    || (i == 0 && (c == '+' || c == '-'))
                    || ((c == '+' || c == '-') && matches!(prev, Some('e' | 'E'))))
            })
            .map_or(self.rest().len(), |(i, _)| i);
        let text = &self.src[start..start + n];
        self.pos = start + n;
        match value::canonical_number(text) {
            Some(t) => Ok(Tok::Num(t)),
            None => err(start, format!("bad number `{text}`")),
        }
    }
}

/// Replaces the engine's private sentinel characters, so no input can forge one.
pub(crate) fn clean(s: &str) -> String {
    if s.contains(super::SENTINELS) {
        s.replace(super::SENTINELS, "\u{FFFD}")
    } else {
        s.to_string()
    }
}

/// Parses a path given as a string (`get "$.event.Type"`, `.a.b`, or bare `a.b`).
/// Returns whether it is rooted at dot (`.`) rather than `$`, and its steps.
pub(crate) fn parse_path(s: &str) -> Option<(bool, Vec<Seg>)> {
    let s = s.trim();
    let (dot, body) = if let Some(rest) = s.strip_prefix('$') {
        (false, rest.to_string())
    } else if s.starts_with('.') {
        (true, s.to_string())
    } else if s.is_empty() {
        return None;
    } else {
        (false, format!(".{s}"))
    };
    if body.is_empty() || body == "." {
        return Some((dot, Vec::new()));
    }
    let mut lx = Lexer { src: &body, pos: 0 };
    let mut toks = Vec::new();
    lx.segments(&mut toks).ok()?;
    if lx.pos != body.len() {
        return None;
    }
    if toks.len() > MAX_STEPS {
        return None;
    }
    let segs = toks
        .into_iter()
        .filter_map(|t| match t.tok {
            Tok::Seg(s) => Some(s),
            _ => None,
        })
        .collect();
    Some((dot, segs))
}
