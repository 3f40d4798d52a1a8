//! STUB until the output parsers land: the contract only.
use crate::api::OutputParser;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
}
impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for ParseError {}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Json,
    Raw,
    Yaml,
    Kv,
    RedisInfo,
    Regex,
    Lines,
    Table,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParserKind {
    Builtin(Builtin),
    Image(String),
}
pub fn kind(p: &OutputParser) -> ParserKind {
    if p.name == "json" {
        ParserKind::Builtin(Builtin::Json)
    } else {
        ParserKind::Image(p.name.clone())
    }
}
pub fn validate(_p: &OutputParser) -> Result<(), ParseError> {
    Ok(())
}
pub fn parse_output(
    _p: &OutputParser,
    raw: &str,
    _end_marker: Option<&str>,
) -> Result<Value, ParseError> {
    serde_json::from_str(raw).map_err(|e| ParseError {
        message: e.to_string(),
    })
}
