//! Kubernetes label and field selectors: parsing, validation and matching.
//!
//! Label selectors come in two forms that compile to the same [`LabelSelector`]:
//! - the string form of `?labelSelector=` and `kubectl -l` ([`LabelSelector::parse`]):
//!   `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a` (does not exist),
//!   `a>1`, `a<1`, requirements joined by `,` (AND), whitespace tolerated;
//! - the `meta/v1 LabelSelector` object used in specs ([`LabelSelector::from_json`]):
//!   `matchLabels` plus `matchExpressions` with `In`/`NotIn`/`Exists`/`DoesNotExist`.
//!
//! Field selectors ([`FieldSelector::parse`]) are `path=value`, `path==value`, `path!=value`
//! terms joined by `,`, matched against dotted paths of a JSON object (a missing field is the
//! empty string, as in Kubernetes). Which field labels a resource supports is the server's choice:
//! [`FieldSelector::check_supported`] with [`supported_field_labels`] yields
//! `field label not supported: X` for the others.
//!
//! Error messages follow the wording of `k8s.io/apimachinery` so kubectl users see what a real
//! cluster would say; the API server turns any [`SelectorError`] into a 400 `BadRequest`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// Why a selector could not be parsed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A syntax error in a label selector string, e.g. `found ')', expected: identifier`.
    #[error("{0}")]
    LabelSyntax(String),
    /// A requirement that parsed but is not valid (bad key, bad value, wrong value count).
    #[error("unable to parse requirement: {0}")]
    InvalidRequirement(String),
    /// A `meta/v1 LabelSelector` object that is not valid.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// A field selector term without a known operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldSyntax {
        /// The whole field selector.
        selector: String,
        /// The term without an operator.
        term: String,
    },
    /// A bad escape in a field selector value.
    #[error("invalid field selector: {0}")]
    FieldEscape(String),
    /// A field the resource cannot be filtered on.
    #[error("field label not supported: {0}")]
    FieldNotSupported(String),
}

/// Result of selector operations.
pub type Result<T, E = SelectorError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------
// Validation of label keys and values (also used by the API server for metadata.labels).
// ---------------------------------------------------------------------------------------------

const QUALIFIED_NAME_FMT: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_FMT: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const DNS1123_SUBDOMAIN_FMT: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Checks a label key (a qualified name: optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 characters). Returns the Kubernetes messages for each problem; empty means valid.
pub fn validate_label_key(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if !is_dns1123_subdomain(prefix) {
                errs.push(format!("prefix part {DNS1123_SUBDOMAIN_FMT}"));
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_FMT} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !is_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_FMT}"));
    }
    errs
}

/// Checks a label value (empty, or at most 63 characters of the name alphabet).
/// Returns the Kubernetes messages for each problem; empty means valid.
pub fn validate_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_name_part(value) {
        errs.push(LABEL_VALUE_FMT.to_string());
    }
    errs
}

fn field_invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: \"{value}\": {detail}")
}

fn aggregate(errs: Vec<String>) -> Option<String> {
    match errs.len() {
        0 => None,
        1 => errs.into_iter().next(),
        _ => Some(format!("[{}]", errs.join(", "))),
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A label selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    /// `=`, `==` or `In` with one value: the label exists and has one of the values.
    In,
    /// `!=` or `NotIn`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>n`: the label is an integer greater than n.
    GreaterThan,
    /// `key<n`: the label is an integer less than n.
    LessThan,
}

/// One requirement of a label selector. Values are sorted and unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// The written form of the operator (`=`, `==`, `!=`, `in`, ...), kept for [`fmt::Display`].
    op_text: OpText,
    pub values: Vec<String>,
    /// What [`LabelSelector::may_match_json`] looks for in stored JSON, quoted once here.
    needles: JsonNeedles,
}

/// The quoted JSON strings a stored object must contain to possibly satisfy a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JsonNeedles {
    /// The requirement does not demand a label present: every object may match.
    Unjudged,
    /// The label's key must occur.
    Key(Vec<u8>),
    /// The label's key and one of the values must occur.
    KeyAndAnyValue(Vec<u8>, Vec<Vec<u8>>),
}

impl JsonNeedles {
    fn of(key: &str, operator: Operator, values: &[String]) -> Self {
        let quoted = |s: &str| format!("\"{s}\"").into_bytes();
        match operator {
            Operator::Exists => JsonNeedles::Key(quoted(key)),
            // A value that could also be written as a JSON literal (`5`, `true`, `null`, the
            // empty string of a null label) may be stored unquoted: judged by key only.
            Operator::In if values.iter().any(|v| v.is_empty() || is_json_literal(v)) => {
                JsonNeedles::Key(quoted(key))
            }
            Operator::In => {
                JsonNeedles::KeyAndAnyValue(quoted(key), values.iter().map(|v| quoted(v)).collect())
            }
            _ => JsonNeedles::Unjudged,
        }
    }

    fn may_match(&self, text: &[u8]) -> bool {
        match self {
            JsonNeedles::Unjudged => true,
            JsonNeedles::Key(key) => contains(text, key),
            JsonNeedles::KeyAndAnyValue(key, values) => {
                contains(text, key) && values.iter().any(|v| contains(text, v))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpText {
    Equals,
    DoubleEquals,
    NotEquals,
    Set,
    Unary,
    Cmp,
}

impl Requirement {
    /// Builds and validates a requirement (key syntax, value syntax, value count).
    pub(crate) fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self> {
        let text = match operator {
            Operator::In | Operator::NotIn => OpText::Set,
            Operator::Exists | Operator::DoesNotExist => OpText::Unary,
            Operator::GreaterThan | Operator::LessThan => OpText::Cmp,
        };
        Self::build(key, operator, text, values)
    }

    fn build(key: &str, operator: Operator, op_text: OpText, values: Vec<String>) -> Result<Self> {
        let values: Vec<String> = values
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut errs: Vec<String> = validate_label_key(key)
            .iter()
            .map(|m| field_invalid("key", key, m))
            .collect();
        let shown = format!("[{}]", values.join(" "));
        match (operator, op_text) {
            (Operator::In | Operator::NotIn, OpText::Set) => {
                if values.is_empty() {
                    errs.push(field_invalid(
                        "values",
                        &shown,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            (Operator::In | Operator::NotIn, _) => {
                if values.len() != 1 {
                    errs.push(field_invalid(
                        "values",
                        &shown,
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            (Operator::Exists | Operator::DoesNotExist, _) => {
                if !values.is_empty() {
                    errs.push(field_invalid(
                        "values",
                        &shown,
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            (Operator::GreaterThan | Operator::LessThan, _) => {
                if values.len() != 1 {
                    errs.push(field_invalid(
                        "values",
                        &shown,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(field_invalid(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            for m in validate_label_value(v) {
                errs.push(field_invalid(&format!("values[{i}]"), v, &m));
            }
        }
        if let Some(msg) = aggregate(errs) {
            return Err(SelectorError::InvalidRequirement(msg));
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            op_text,
            needles: JsonNeedles::of(key, operator, &values),
            values,
        })
    }

    /// Whether a label set satisfies this requirement.
    pub(crate) fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key).map(label_text);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(&v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(&v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

fn is_json_literal(v: &str) -> bool {
    serde_json::from_str::<Value>(v).is_ok_and(|l| !l.is_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.operator, self.op_text) {
            (Operator::DoesNotExist, _) => write!(f, "!{}", self.key),
            (Operator::Exists, _) => write!(f, "{}", self.key),
            (Operator::In, OpText::Set) => write!(f, "{} in ({})", self.key, self.values.join(",")),
            (Operator::NotIn, OpText::Set) => {
                write!(f, "{} notin ({})", self.key, self.values.join(","))
            }
            (Operator::In, OpText::DoubleEquals) => {
                write!(f, "{}=={}", self.key, self.values.join(","))
            }
            (Operator::In, _) => write!(f, "{}={}", self.key, self.values.join(",")),
            (Operator::NotIn, _) => write!(f, "{}!={}", self.key, self.values.join(",")),
            (Operator::GreaterThan, _) => write!(f, "{}>{}", self.key, self.values.join(",")),
            (Operator::LessThan, _) => write!(f, "{}<{}", self.key, self.values.join(",")),
        }
    }
}

/// A compiled label selector: every requirement must hold (AND).
///
/// The empty selector matches everything; [`LabelSelector::nothing`] (a `null` selector object)
/// matches nothing, as `metav1.LabelSelectorAsSelector` does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// `None` = matches nothing.
    requirements: Option<Vec<Requirement>>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector {
            requirements: Some(Vec::new()),
        }
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        LabelSelector { requirements: None }
    }

    /// Builds a selector from requirements (all must hold). Requirements are kept sorted by
    /// key, as apimachinery does, so [`fmt::Display`] prints what kube-apiserver prints (e.g.
    /// a Scale's `status.selector`).
    pub(crate) fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements: Some(requirements),
        }
    }

    /// Parses the string form; see the module docs for the grammar.
    pub fn parse(s: &str) -> Result<Self> {
        let tokens = lex(s)?;
        let mut p = Parser { tokens, pos: 0 };
        Ok(Self::from_requirements(p.parse()?))
    }

    /// Compiles a `map[string]string` selector (Service `spec.selector`, `matchLabels`).
    /// Values that are not strings are rejected.
    pub fn from_match_labels(map: &Map<String, Value>) -> Result<Self> {
        let mut reqs = Vec::new();
        for (k, v) in map {
            let Value::String(v) = v else {
                return Err(SelectorError::InvalidLabelSelector(format!(
                    "matchLabels.{k}: Invalid value: {v}: must be a string"
                )));
            };
            reqs.push(Requirement::build(
                k,
                Operator::In,
                OpText::Equals,
                vec![v.clone()],
            )?);
        }
        Ok(Self::from_requirements(reqs))
    }

    /// Compiles a `meta/v1 LabelSelector` object. `null` matches nothing; `{}` matches everything.
    pub fn from_json(selector: &Value) -> Result<Self> {
        let obj = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            other => {
                return Err(SelectorError::InvalidLabelSelector(format!(
                    "invalid label selector: expected an object, got {other}"
                )));
            }
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                reqs.extend(Self::from_match_labels(m)?.requirements.unwrap_or_default())
            }
            Some(other) => {
                return Err(SelectorError::InvalidLabelSelector(format!(
                    "matchLabels: Invalid value: {other}: must be an object"
                )));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, e) in exprs.iter().enumerate() {
                    reqs.push(expression(i, e)?);
                }
            }
            Some(other) => {
                return Err(SelectorError::InvalidLabelSelector(format!(
                    "matchExpressions: Invalid value: {other}: must be a list"
                )));
            }
        }
        Ok(Self::from_requirements(reqs))
    }

    /// True for the selector that matches every object.
    pub fn is_everything(&self) -> bool {
        self.requirements.as_ref().is_some_and(|r| r.is_empty())
    }

    /// Whether a label map (`metadata.labels`) satisfies the selector.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        match &self.requirements {
            None => false,
            Some(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// Whether an object stored as JSON text may satisfy the selector, judged from its bytes
    /// without decoding it: false only when a label the selector requires (`key`, `key=value`,
    /// `key in (...)`) cannot be among them because its key, or every one of its values, is
    /// missing from the text as a JSON string. A list with a label selector reads every object
    /// of its namespace; this lets it decode only the few that can match (label keys and
    /// values are never escaped in JSON, so a label present is always found).
    pub fn may_match_json(&self, text: &[u8]) -> bool {
        match &self.requirements {
            None => false,
            Some(reqs) => reqs.iter().all(|r| r.needles.may_match(text)),
        }
    }

    /// Whether an object's `metadata.labels` satisfy the selector (no labels = empty map).
    pub fn matches_object(&self, object: &Value) -> bool {
        match object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
        {
            Some(labels) => self.matches(labels),
            None => self.matches(&Map::new()),
        }
    }
}

fn expression(i: usize, e: &Value) -> Result<Requirement> {
    let path = format!("matchExpressions[{i}]");
    let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
    let op = e
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let values: Vec<String> = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(SelectorError::InvalidLabelSelector(format!(
                    "{path}.values: Invalid value: {other}: must be a string"
                ))),
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(SelectorError::InvalidLabelSelector(format!(
                "{path}.values: Invalid value: {other}: must be a list"
            )));
        }
    };
    let operator = match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError::InvalidLabelSelector(format!(
                "\"{other}\" is not a valid label selector operator"
            )));
        }
    };
    Requirement::new(key, operator, values)
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.requirements {
            None => Ok(()),
            Some(reqs) => {
                let parts: Vec<String> = reqs.iter().map(|r| r.to_string()).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Comma,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    End,
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::Comma => ",",
            Token::Not => "!",
            Token::Eq => "=",
            Token::DoubleEq => "==",
            Token::NotEq => "!=",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::Open => "(",
            Token::Close => ")",
            Token::End => "",
        }
    }
}

/// apimachinery's lexer skips exactly these; any other character (form feed included) is part
/// of an identifier.
fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn symbol(s: &str) -> Option<Token> {
    Some(match s {
        "," => Token::Comma,
        "!" => Token::Not,
        "=" => Token::Eq,
        "==" => Token::DoubleEq,
        "!=" => Token::NotEq,
        ">" => Token::Gt,
        "<" => Token::Lt,
        "(" => Token::Open,
        ")" => Token::Close,
        _ => return None,
    })
}

/// Splits a selector into tokens the way apimachinery's lexer does: runs of special symbols
/// take the longest known operator, everything else up to whitespace or a symbol is an identifier.
fn lex(s: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_whitespace(c) {
            i += 1;
        } else if is_special(c) {
            let mut best: Option<(Token, usize)> = None;
            let mut buf = String::new();
            let mut j = i;
            while j < chars.len() && is_special(chars[j]) {
                buf.push(chars[j]);
                if let Some(t) = symbol(&buf) {
                    best = Some((t, j + 1));
                } else if best.is_some() {
                    break;
                }
                j += 1;
            }
            match best {
                Some((t, end)) => {
                    out.push(t);
                    i = end;
                }
                None => {
                    return Err(SelectorError::LabelSyntax(format!(
                        "error expected: keyword found '{buf}'"
                    )));
                }
            }
        } else {
            let start = i;
            while i < chars.len() && !is_special(chars[i]) && !is_whitespace(chars[i]) {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        }
    }
    out.push(Token::End);
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn syntax(msg: String) -> SelectorError {
    SelectorError::LabelSyntax(msg)
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>> {
        let mut reqs = Vec::new();
        loop {
            match self.peek() {
                Token::Ident(_) | Token::Not => {
                    reqs.push(self.requirement()?);
                    match self.next() {
                        Token::End => return Ok(reqs),
                        Token::Comma => match self.peek() {
                            Token::Ident(_) | Token::Not => {}
                            t => {
                                return Err(syntax(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.text()
                                )));
                            }
                        },
                        t => {
                            return Err(syntax(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.text()
                            )));
                        }
                    }
                }
                Token::End => return Ok(reqs),
                t => {
                    return Err(syntax(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.text()
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement> {
        let mut negated = false;
        let mut tok = self.next();
        if tok == Token::Not {
            negated = true;
            tok = self.next();
        }
        let Token::Ident(key) = tok else {
            return Err(SelectorError::InvalidRequirement(format!(
                "found '{}', expected: identifier",
                tok.text()
            )));
        };
        let unary = matches!(self.peek(), Token::End | Token::Comma);
        if negated || unary {
            // `!a=b` parses as `!a` and then fails on the `=` like apimachinery does.
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::build(&key, op, OpText::Unary, Vec::new());
        }
        let op_tok = self.next();
        let (op, text) = match &op_tok {
            Token::Ident(w) if w == "in" => (Operator::In, OpText::Set),
            Token::Ident(w) if w == "notin" => (Operator::NotIn, OpText::Set),
            Token::Eq => (Operator::In, OpText::Equals),
            Token::DoubleEq => (Operator::In, OpText::DoubleEquals),
            Token::NotEq => (Operator::NotIn, OpText::NotEquals),
            Token::Gt => (Operator::GreaterThan, OpText::Cmp),
            Token::Lt => (Operator::LessThan, OpText::Cmp),
            t => {
                return Err(SelectorError::InvalidRequirement(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.text()
                )));
            }
        };
        let values = if text == OpText::Set {
            self.set_values()
        } else {
            self.exact_value()
        }
        .map_err(SelectorError::InvalidRequirement)?;
        Requirement::build(&key, op, text, values)
    }

    fn exact_value(&mut self) -> std::result::Result<Vec<String>, String> {
        match self.peek() {
            Token::End | Token::Comma => Ok(vec![String::new()]),
            _ => match self.next() {
                Token::Ident(v) => Ok(vec![v]),
                t => Err(format!("found '{}', expected: identifier", t.text())),
            },
        }
    }

    fn set_values(&mut self) -> std::result::Result<Vec<String>, String> {
        let t = self.next();
        if t != Token::Open {
            return Err(format!("found '{}' expected: '('", t.text()));
        }
        match self.peek().clone() {
            Token::Close => {
                self.next();
                // apimachinery turns `()` into the set {""}.
                Ok(vec![String::new()])
            }
            Token::Ident(_) | Token::Comma => {
                let mut vals = Vec::new();
                loop {
                    match self.next() {
                        Token::Ident(v) => {
                            vals.push(v);
                            match self.peek() {
                                Token::Comma => {}
                                Token::Close => break,
                                t => {
                                    return Err(format!(
                                        "found '{}', expected: ',' or ')'",
                                        t.text()
                                    ));
                                }
                            }
                        }
                        Token::Comma => {
                            if vals.is_empty() {
                                vals.push(String::new());
                            }
                            match self.peek() {
                                Token::Close => {
                                    vals.push(String::new());
                                    break;
                                }
                                Token::Comma => {
                                    self.next();
                                    vals.push(String::new());
                                }
                                _ => {}
                            }
                        }
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',', or identifier",
                                t.text()
                            ));
                        }
                    }
                }
                match self.next() {
                    Token::Close => Ok(vals),
                    t => Err(format!("found '{}', expected: ')'", t.text())),
                }
            }
            t => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.text()
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// One `field=value` / `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted path, e.g. `metadata.name` or `involvedObject.uid`.
    pub field: String,
    /// True for `!=`.
    pub negated: bool,
    /// The unescaped value.
    pub value: String,
}

/// A compiled field selector: every term must hold (AND). Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// The terms, in the order given.
    pub requirements: Vec<FieldRequirement>,
}

/// The field labels a resource can be filtered on: `metadata.name` and `metadata.namespace`
/// (all CRDs get) plus `kind_labels`, the ones kube-apiserver registers for a built-in kind
/// (the API server's strategy of the kind declares them).
pub fn supported_field_labels(kind_labels: &[&'static str]) -> Vec<&'static str> {
    let mut out = vec!["metadata.name", "metadata.namespace"];
    out.extend_from_slice(kind_labels);
    out
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    parts.push(cur);
    parts
}

fn unescape_value(s: &str) -> Result<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError::FieldEscape(format!(
                        "invalid escape sequence: \\{e}"
                    )));
                }
                None => {
                    return Err(SelectorError::FieldEscape(
                        "unterminated escape sequence".to_string(),
                    ));
                }
            },
            ',' | '=' => {
                return Err(SelectorError::FieldEscape(format!(
                    "unescaped {c} in value"
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses `?fieldSelector=` (`a=b`, `a==b`, `a!=b`, comma AND; `\,` `\=` `\\` escapes).
    pub fn parse(s: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        for term in split_unescaped(s, ',') {
            if term.trim().is_empty() {
                continue;
            }
            let Some((lhs, negated, rhs)) = split_term(&term) else {
                return Err(SelectorError::FieldSyntax {
                    selector: s.to_string(),
                    term,
                });
            };
            let field = lhs.trim();
            // Field labels are dotted names; anything else cannot be a supported field.
            let valid = !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
            if !valid {
                return Err(SelectorError::FieldSyntax {
                    selector: s.to_string(),
                    term,
                });
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                negated,
                value: unescape_value(rhs.trim())?,
            });
        }
        requirements.sort_by(|a, b| a.field.cmp(&b.field));
        Ok(FieldSelector { requirements })
    }

    /// True when there is no term.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Fails with `field label not supported: X` for the first term whose field is not listed.
    pub fn check_supported(&self, supported: &[&str]) -> Result<()> {
        for r in &self.requirements {
            if !supported.contains(&r.field.as_str()) {
                return Err(SelectorError::FieldNotSupported(r.field.clone()));
            }
        }
        Ok(())
    }

    /// The value a field must equal, if some `=`/`==` term pins it (e.g. `metadata.name`),
    /// so the server can turn a list into a point read.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Whether an object satisfies every term. A missing field reads as the empty string,
    /// booleans and numbers as their JSON text; an object or list never equals a value.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_text(object, &r.field);
            let equal = actual.as_deref() == Some(r.value.as_str());
            equal != r.negated
        })
    }
}

fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if rest.starts_with("!=") {
            return Some((&term[..i], true, &term[i + 2..]));
        }
        if rest.starts_with("==") {
            return Some((&term[..i], false, &term[i + 2..]));
        }
        if rest.starts_with('=') {
            return Some((&term[..i], false, &term[i + 1..]));
        }
    }
    None
}

/// The field-selector text of a dotted path; `None` for an object or list.
fn field_text(object: &Value, path: &str) -> Option<String> {
    // Kubernetes' `source` field label on events reads `source.component`.
    let path = if path == "source" && object.get("involvedObject").is_some() {
        "source.component"
    } else {
        path
    };
    let mut cur = object;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return Some(String::new()),
        }
    }
    match cur {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(_) | Value::Array(_) => None,
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let v = r
                    .value
                    .replace('\\', "\\\\")
                    .replace(',', "\\,")
                    .replace('=', "\\=");
                format!("{}{}{}", r.field, if r.negated { "!=" } else { "=" }, v)
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    /// The byte check never rejects an object the selector matches, and rejects objects that
    /// lack a required label or value.
    #[test]
    fn may_match_json_never_rejects_a_match() {
        let objects = [
            json!({"metadata": {"name": "a", "labels": {"app.oam.dev/name": "app-1", "t": "x"}}}),
            json!({"metadata": {"name": "app-1", "labels": {"app.oam.dev/name": "app-10"}}}),
            json!({"metadata": {"name": "b", "labels": {"n": 5, "e": null, "b": true}}}),
            json!({"metadata": {"name": "c"}}),
        ];
        let selectors = [
            "app.oam.dev/name=app-1",
            "app.oam.dev/name in (app-1,app-10)",
            "app.oam.dev/name",
            "!app.oam.dev/name",
            "app.oam.dev/name!=app-1",
            "t=x,app.oam.dev/name=app-1",
            "n=5",
            "b=true",
            "e=",
            "n>4",
            "",
        ];
        let mut rejected = 0;
        for text in selectors {
            let selector = LabelSelector::parse(text).unwrap();
            for object in &objects {
                let bytes = serde_json::to_vec(object).unwrap();
                let may = selector.may_match_json(&bytes);
                assert!(
                    may || !selector.matches_object(object),
                    "{text} rejected {object}"
                );
                rejected += usize::from(!may);
            }
        }
        // =app-1, in and exists: the two objects without the key; t=x,...: all but the first;
        // n=5, b=true, e= (judged by key only): all but the third; the others are not judged.
        assert_eq!(rejected, 2 + 2 + 2 + 3 + 3 + 3 + 3);
        let nothing = LabelSelector::nothing();
        assert!(!nothing.may_match_json(b"{}"));
    }

    /// (selector, labels, matches) — semantics of `kubectl get -l` against kube-apiserver.
    #[test]
    fn label_selector_string_matching() {
        let cases: &[(&str, Value, bool)] = &[
            // empty selector selects everything
            ("", json!({}), true),
            ("   ", json!({"a": "b"}), true),
            // equality forms
            ("app=web", json!({"app": "web"}), true),
            ("app==web", json!({"app": "web"}), true),
            ("app=web", json!({"app": "db"}), false),
            ("app=web", json!({}), false),
            // != matches objects that lack the label (kubectl get -l 'tier!=fe')
            ("app!=web", json!({}), true),
            ("app!=web", json!({"app": "db"}), true),
            ("app!=web", json!({"app": "web"}), false),
            // set-based
            ("env in (prod, staging)", json!({"env": "staging"}), true),
            ("env in (prod,staging)", json!({"env": "dev"}), false),
            ("env in (prod)", json!({}), false),
            ("env notin (prod)", json!({}), true),
            ("env notin (prod,dev)", json!({"env": "dev"}), false),
            // existence
            ("app", json!({"app": ""}), true),
            ("app", json!({}), false),
            ("!app", json!({}), true),
            ("!app", json!({"app": "x"}), false),
            // comma = AND, whitespace tolerated
            (
                "app=web, tier != db",
                json!({"app": "web", "tier": "fe"}),
                true,
            ),
            (
                "app=web,tier!=db",
                json!({"app": "web", "tier": "db"}),
                false,
            ),
            (" app = web ", json!({"app": "web"}), true),
            // empty value: `a=` means the label equals ""
            ("a=", json!({"a": ""}), true),
            ("a=", json!({"a": "x"}), false),
            // numeric comparison
            ("n>5", json!({"n": "10"}), true),
            ("n>5", json!({"n": "3"}), false),
            ("n<5", json!({"n": "3"}), true),
            ("n>5", json!({"n": "x"}), false),
            ("n>5", json!({}), false),
            // prefixed keys
            (
                "app.kubernetes.io/name=web",
                json!({"app.kubernetes.io/name": "web"}),
                true,
            ),
            // `in` and `notin` are plain identifiers in value position
            ("a in (in,notin)", json!({"a": "notin"}), true),
        ];
        for (sel, l, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&labels(l.clone())), *want, "{sel} vs {l}");
        }
    }

    /// Selectors kube-apiserver rejects with 400 and the message it prints.
    #[test]
    fn label_selector_string_errors() {
        let cases: &[(&str, &str)] = &[
            ("a in b", "found 'b' expected: '('"),
            ("a in ()x", "found 'x', expected: ',' or 'end of string'"),
            ("a in (b", "found '', expected: ',' or ')'"),
            ("a,", "found '', expected: identifier after ','"),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("a b", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
            ("a=b=c", "found '=', expected: ',' or 'end of string'"),
            ("-a=b", "name part must consist of alphanumeric characters"),
            ("a=-b", "a valid label must be an empty string"),
            ("a/b/c=d", "a qualified name must consist"),
            ("Foo.com/a=b", "prefix part a lowercase RFC 1123 subdomain"),
            ("/a=b", "prefix part must be non-empty"),
            (
                "n>x",
                "for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("a=(b)", "found '(', expected: identifier"),
            ("a===b", "found '=', expected: identifier"),
        ];
        for (sel, want) in cases {
            let err = LabelSelector::parse(sel).expect_err(sel).to_string();
            assert!(err.contains(want), "{sel}: got {err:?}, want {want:?}");
        }
        // Found by fuzzing: a form feed once made the lexer loop forever. It is an identifier
        // character for apimachinery, so it fails key validation instead.
        assert!(LabelSelector::parse("\x0c").is_err());
        assert!(LabelSelector::parse("a=\x0cb").is_err());
        assert!(LabelSelector::parse("\u{a0}").is_err());
        let long = format!("a={}", "x".repeat(64));
        assert!(
            LabelSelector::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("must be no more than 63 characters")
        );
        let long_key = format!("{}=b", "k".repeat(64));
        assert!(
            LabelSelector::parse(&long_key)
                .unwrap_err()
                .to_string()
                .contains("name part must be no more than 63 characters")
        );
    }

    #[test]
    fn label_selector_display_round_trips() {
        // apimachinery sorts requirements by key.
        assert_eq!(
            LabelSelector::parse("tier=fe,app=web").unwrap().to_string(),
            "app=web,tier=fe"
        );
        for s in [
            "a=b",
            "a==b",
            "a!=b",
            "a in (x,y)",
            "a notin (x)",
            "a",
            "!a",
            "n>3",
            "a=b,!c",
        ] {
            let sel = LabelSelector::parse(s).unwrap();
            assert_eq!(sel.to_string(), s);
            assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
        }
    }

    /// `metav1.LabelSelector` semantics (Deployment spec.selector, Policy clusterLabelSelector).
    #[test]
    fn label_selector_json_form() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]}
            ]
        });
        let s = LabelSelector::from_json(&sel).unwrap();
        // Printed like metav1.LabelSelectorAsSelector(...).String(): sorted by key.
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env in (prod,staging),tier,zone notin (b)"
        );
        let obj = |l: Value| json!({"metadata": {"labels": l}});
        assert!(s.matches_object(&obj(
            json!({"app": "web", "env": "prod", "tier": "x", "zone": "a"})
        )));
        assert!(!s.matches_object(&obj(
            json!({"app": "web", "env": "prod", "tier": "x", "canary": "1"})
        )));
        assert!(!s.matches_object(&obj(json!({"app": "web", "env": "prod"}))));
        assert!(!s.matches_object(&json!({"metadata": {}})));
        // empty selector object selects everything, null selects nothing
        assert!(
            LabelSelector::from_json(&json!({}))
                .unwrap()
                .matches_object(&json!({}))
        );
        assert!(
            !LabelSelector::from_json(&Value::Null)
                .unwrap()
                .matches_object(&json!({}))
        );
        // validation like ValidateLabelSelector
        for (bad, want) in [
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "values set must be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
                "\"Equals\" is not a valid label selector operator",
            ),
            (json!({"matchLabels": {"a": 1}}), "must be a string"),
            (
                json!({"matchLabels": {"a b": "c"}}),
                "name part must consist",
            ),
            (json!("app=web"), "expected an object"),
        ] {
            let err = LabelSelector::from_json(&bad)
                .expect_err("invalid")
                .to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }

    #[test]
    fn field_selector_matching() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "", "hostNetwork": false},
            "status": {"phase": "Running"}
        });
        let event = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u1"},
            "source": {"component": "kubelet"}
        });
        let cases: &[(&str, &Value, bool)] = &[
            ("", &pod, true),
            ("metadata.name=web-1", &pod, true),
            ("metadata.name==web-1", &pod, true),
            ("metadata.name=web-2", &pod, false),
            ("metadata.namespace!=kube-system", &pod, true),
            ("metadata.namespace!=default", &pod, false),
            ("metadata.name=web-1,status.phase=Running", &pod, true),
            ("metadata.name=web-1,status.phase!=Running", &pod, false),
            // unscheduled pods: kubectl uses spec.nodeName= ; missing fields read as ""
            ("spec.nodeName=", &pod, true),
            ("status.podIP=", &pod, true),
            ("spec.hostNetwork=false", &pod, true),
            // kubectl describe pod: events by involvedObject
            (
                "involvedObject.name=web-1,involvedObject.kind=Pod",
                &event,
                true,
            ),
            ("involvedObject.uid=u2", &event, false),
            ("source=kubelet", &event, true),
            // escaped comma in a value
            (
                "metadata.name=a\\,b",
                &json!({"metadata": {"name": "a,b"}}),
                true,
            ),
        ];
        for (sel, obj, want) in cases {
            let s = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(obj), *want, "{sel}");
        }
    }

    #[test]
    fn field_selector_errors_and_support() {
        assert_eq!(
            FieldSelector::parse("metadata.name")
                .unwrap_err()
                .to_string(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert!(FieldSelector::parse("=x").is_err());
        // Found by fuzzing: `!\n=` must not parse as a field named `!`.
        assert!(FieldSelector::parse("!\n=").is_err());
        assert!(FieldSelector::parse("a=b\\").is_err());
        assert!(FieldSelector::parse("a=b\\q").is_err());
        let s = FieldSelector::parse("spec.replicas=3").unwrap();
        assert_eq!(
            s.check_supported(&supported_field_labels(&[]))
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.replicas"
        );
        let ev = FieldSelector::parse("involvedObject.name=x").unwrap();
        assert!(
            ev.check_supported(&supported_field_labels(&["involvedObject.name"]))
                .is_ok()
        );
        let n = FieldSelector::parse("metadata.name=x,metadata.namespace!=y").unwrap();
        assert_eq!(n.exact_value("metadata.name"), Some("x"));
        assert_eq!(n.exact_value("metadata.namespace"), None);
        assert_eq!(n.to_string(), "metadata.name=x,metadata.namespace!=y");
    }

    #[test]
    fn built_requirements() {
        let sel = LabelSelector::from_requirements(vec![
            Requirement::new("env", Operator::In, vec!["b".into(), "a".into()]).unwrap(),
            Requirement::new("tier", Operator::DoesNotExist, vec![]).unwrap(),
        ]);
        assert_eq!(sel.to_string(), "env in (a,b),!tier");
        assert!(sel.matches(&labels(json!({"app": "web", "env": "a"}))));
        assert!(Requirement::new("bad key", Operator::Exists, vec![]).is_err());
        assert!(Requirement::new("a", Operator::In, vec![]).is_err());
    }

    #[test]
    fn label_key_and_value_validation() {
        assert!(validate_label_key("app.kubernetes.io/name").is_empty());
        assert!(validate_label_key("a_b.c-d").is_empty());
        assert!(!validate_label_key("").is_empty());
        assert!(!validate_label_key("a_").is_empty());
        assert!(validate_label_value("").is_empty());
        assert!(validate_label_value("v1.2_3-x").is_empty());
        assert!(!validate_label_value("a b").is_empty());
        assert!(!validate_label_value(&"v".repeat(64)).is_empty());
    }
}
