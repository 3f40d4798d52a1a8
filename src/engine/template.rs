//! STUB until the template engine lands: the contract only.
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}
impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}
impl std::error::Error for TemplateError {}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub secret: Option<String>,
    pub key: String,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub secrets: Vec<(String, SecretRef)>,
}
pub fn render(src: &str, _ctx: &Value) -> Result<String, TemplateError> {
    Ok(src.to_string())
}
pub fn render_env(src: &str, _ctx: &Value) -> Result<Rendered, TemplateError> {
    Ok(Rendered { text: src.to_string(), secrets: vec![] })
}
pub fn render_condition(src: &str, _ctx: &Value) -> Result<bool, TemplateError> {
    Ok(src.trim() == "true")
}
pub fn references(_src: &str) -> Result<Vec<Vec<String>>, TemplateError> {
    Ok(vec![])
}
