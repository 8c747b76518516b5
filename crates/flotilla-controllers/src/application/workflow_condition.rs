//! Step `if` conditions, the subset of KubeVela's expressions Flotilla evaluates. Pure.
//!
//! - `always`: run whatever happened before.
//! - `status.<step>.<flag>` and `status["<step-name>"].<flag>`, where flag is `succeeded`,
//!   `failed`, `timeout` or `skipped` (`phase` compares as a string: `status.a.phase == "failed"`).
//! - `inputs.<name>` and `inputs["<name>"]`: the value of the step's input `from: <name>` (an
//!   earlier step's output). It compares with `==`/`!=` against string, number and boolean
//!   literals; alone it must be a boolean (`if: inputs.ready`). A name that is not one of the
//!   step's inputs (or whose output does not exist yet) fails the step with a message.
//! - `true`, `false`, string and number literals, `==`, `!=`, `!`, `&&`, `||`, parentheses.
//!
//! Other CUE expressions (`context.*`, arithmetic, `<`, functions) are not supported: such a
//! condition fails the step with a message naming the unsupported part.

use std::collections::BTreeMap;

use flotilla_apis::{StepStatus, step_phase};
use serde_json::Value;

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("if {condition:?}: {message}")]
pub(crate) struct Error {
    /// The condition text.
    pub condition: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Bool(bool),
    Str(String),
    Num(f64),
    /// An input holding null, an object or an array: equal only to the same value.
    Json(Value),
}

impl Val {
    fn from_json(v: &Value) -> Val {
        match v {
            Value::Bool(b) => Val::Bool(*b),
            Value::String(s) => Val::Str(s.clone()),
            Value::Number(n) => n.as_f64().map_or_else(|| Val::Json(v.clone()), Val::Num),
            other => Val::Json(other.clone()),
        }
    }
}

/// The length of the number literal at the start of `chars` (`-`, digits, one `.`), if any.
fn number_len(chars: &[char]) -> usize {
    let sign = usize::from(chars.first() == Some(&'-'));
    if !chars.get(sign).is_some_and(char::is_ascii_digit) {
        return 0;
    }
    let mut len = sign;
    let mut dot = false;
    while let Some(&c) = chars.get(len) {
        let next_digit = chars.get(len + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() || (c == '.' && !dot && next_digit) {
            dot |= c == '.';
            len += 1;
        } else {
            break;
        }
    }
    len
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if c.is_whitespace() {
            i += 1;
        } else if let Some(op) = ["&&", "||", "==", "!="].into_iter().find(|o| *o == two) {
            out.push(Token::Op(op));
            i += 2;
        } else if let Some(op) = ["!", "(", ")", ".", "[", "]"]
            .into_iter()
            .find(|o| o.starts_with(c))
        {
            out.push(Token::Op(op));
            i += 1;
        } else if c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '"')
                .ok_or("unterminated string")?;
            out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if out.last() != Some(&Token::Op(".")) && number_len(&chars[i..]) > 0 {
            // After a `.` a leading digit starts a name (`status.2nd.failed`), not a number.
            let len = number_len(&chars[i..]);
            let text: String = chars[i..i + len].iter().collect();
            out.push(Token::Num(text.parse().map_err(|_| "bad number")?));
            i += len;
        } else if c.is_alphanumeric() || c == '_' || c == '-' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_-".contains(chars[i])) {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected {c:?}"));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    steps: &'a [StepStatus],
    inputs: &'a BTreeMap<String, Value>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn eat(&mut self, op: &str) -> bool {
        if self.peek()
            == Some(&Token::Op(match op {
                "&&" => "&&",
                "||" => "||",
                "==" => "==",
                "!=" => "!=",
                "!" => "!",
                "(" => "(",
                ")" => ")",
                "." => ".",
                "[" => "[",
                _ => "]",
            }))
        {
            self.at += 1;
            return true;
        }
        false
    }
    fn or(&mut self) -> Result<Val, String> {
        let mut v = self.and()?;
        while self.eat("||") {
            let r = self.and()?;
            v = Val::Bool(truth(&v)? || truth(&r)?);
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<Val, String> {
        let mut v = self.unary()?;
        while self.eat("&&") {
            let r = self.unary()?;
            v = Val::Bool(truth(&v)? && truth(&r)?);
        }
        Ok(v)
    }
    fn unary(&mut self) -> Result<Val, String> {
        if self.eat("!") {
            return Ok(Val::Bool(!truth(&self.unary()?)?));
        }
        let left = self.operand()?;
        if self.eat("==") {
            return Ok(Val::Bool(left == self.operand()?));
        }
        if self.eat("!=") {
            return Ok(Val::Bool(left != self.operand()?));
        }
        Ok(left)
    }
    fn operand(&mut self) -> Result<Val, String> {
        if self.eat("(") {
            let v = self.or()?;
            if !self.eat(")") {
                return Err("missing )".into());
            }
            return Ok(v);
        }
        match self.tokens.get(self.at).cloned() {
            Some(Token::Str(s)) => {
                self.at += 1;
                Ok(Val::Str(s))
            }
            Some(Token::Num(n)) => {
                self.at += 1;
                Ok(Val::Num(n))
            }
            Some(Token::Ident(word)) => {
                self.at += 1;
                match word.as_str() {
                    "true" | "always" => Ok(Val::Bool(true)),
                    "false" => Ok(Val::Bool(false)),
                    "status" => self.step_field(),
                    "inputs" => self.input(),
                    other => Err(format!("unsupported name {other:?}")),
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
    /// `.name` or `["name"]` after `status` or `inputs` (`what`).
    fn member(&mut self, what: &str) -> Result<String, String> {
        if self.eat(".") {
            return self.ident();
        }
        if !self.eat("[") {
            return Err(format!("expected .<name> or [\"<name>\"] after {what}"));
        }
        let Some(Token::Str(s)) = self.tokens.get(self.at).cloned() else {
            return Err(format!("expected a quoted name in {what}[...]"));
        };
        self.at += 1;
        if !self.eat("]") {
            return Err("missing ]".into());
        }
        Ok(s)
    }
    /// After `inputs`: `.name` or `["name"]`, the value of the step's input of that name.
    fn input(&mut self) -> Result<Val, String> {
        let name = self.member("inputs")?;
        let value = self.inputs.get(&name).ok_or_else(|| {
            let known: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
            format!("unknown input {name:?} (the step's inputs with a value: {known:?})")
        })?;
        Ok(Val::from_json(value))
    }
    /// After `status`: `.name.flag` or `["name"].flag`.
    fn step_field(&mut self) -> Result<Val, String> {
        let name = self.member("status")?;
        if !self.eat(".") {
            return Err(format!("expected .<field> after status.{name}"));
        }
        let field = self.ident()?;
        let step = self
            .steps
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("no step {name:?}"))?;
        let timed_out = step.phase == step_phase::FAILED && step.reason == TIMEOUT_REASON;
        Ok(match field.as_str() {
            "succeeded" => Val::Bool(step.phase == step_phase::SUCCEEDED),
            "failed" => Val::Bool(step.phase == step_phase::FAILED),
            "timeout" => Val::Bool(timed_out),
            "skipped" => Val::Bool(step.phase == step_phase::SKIPPED),
            "phase" => Val::Str(step.phase.clone()),
            "message" => Val::Str(step.message.clone()),
            other => return Err(format!("unsupported step field {other:?}")),
        })
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Ident(s)) => {
                self.at += 1;
                Ok(s)
            }
            other => Err(format!("expected a name, got {other:?}")),
        }
    }
}

fn truth(v: &Val) -> Result<bool, String> {
    match v {
        Val::Bool(b) => Ok(*b),
        Val::Str(s) => Err(format!("{s:?} is not a boolean")),
        Val::Num(n) => Err(format!("{n} is not a boolean")),
        Val::Json(v) => Err(format!("{v} is not a boolean")),
    }
}

/// The reason a timed-out step carries.
pub(crate) const TIMEOUT_REASON: &str = "Timeout";

/// Evaluates `condition` over the steps' statuses and the step's resolved inputs (input name,
/// its `from`, to the output's value).
pub(crate) fn evaluate(
    condition: &str,
    steps: &[StepStatus],
    inputs: &BTreeMap<String, Value>,
) -> Result<bool, Error> {
    let err = |message: String| Error {
        condition: condition.to_string(),
        message,
    };
    let tokens = tokenize(condition).map_err(err)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        steps,
        inputs,
    };
    let v = parser.or().map_err(err)?;
    if parser.at != parser.tokens.len() {
        return Err(err("unexpected trailing input".into()));
    }
    truth(&v).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, phase: &str, reason: &str) -> StepStatus {
        StepStatus {
            name: name.into(),
            phase: phase.into(),
            reason: reason.into(),
            ..Default::default()
        }
    }

    #[test]
    fn conditions_over_earlier_steps() {
        let steps = [
            step("apply", step_phase::FAILED, TIMEOUT_REASON),
            step("deploy-prod", step_phase::SUCCEEDED, ""),
        ];
        let none = BTreeMap::new();
        let eval = |c: &str| evaluate(c, &steps, &none);
        assert_eq!(eval("always"), Ok(true));
        assert_eq!(eval("status.apply.timeout"), Ok(true));
        assert_eq!(
            eval("status.apply.failed && !status.apply.succeeded"),
            Ok(true)
        );
        assert_eq!(eval("status[\"deploy-prod\"].succeeded"), Ok(true));
        assert_eq!(
            eval("status.apply.succeeded || status[\"deploy-prod\"].failed"),
            Ok(false)
        );
        assert_eq!(eval("(status.apply.phase == \"failed\") && true"), Ok(true));
        assert_eq!(eval("status.apply.phase != \"failed\""), Ok(false));
        let e = eval("context.name == \"yes\"").unwrap_err();
        assert!(
            e.to_string().contains("unsupported name \"context\""),
            "{e}"
        );
        assert!(
            eval("status.nope.failed")
                .unwrap_err()
                .message
                .contains("no step")
        );
        assert!(eval("status.apply.phase").is_err());
        assert!(eval("status.apply.failed )").is_err());
    }

    #[test]
    fn conditions_over_inputs() {
        let steps = [
            step("apply", step_phase::SUCCEEDED, ""),
            step("2nd", "", ""),
        ];
        let inputs = BTreeMap::from([
            ("env".to_string(), serde_json::json!("prod")),
            ("replicas".to_string(), serde_json::json!(3)),
            ("ready".to_string(), serde_json::json!(true)),
            ("image-tag".to_string(), serde_json::json!("v1.2")),
            ("labels".to_string(), serde_json::json!({"a": "b"})),
        ]);
        let eval = |c: &str| evaluate(c, &steps, &inputs);
        assert_eq!(eval(r#"inputs.env == "prod""#), Ok(true));
        assert_eq!(eval(r#"inputs["env"] != "prod""#), Ok(false));
        assert_eq!(eval(r#"inputs["image-tag"] == "v1.2""#), Ok(true));
        assert_eq!(eval("inputs.replicas == 3"), Ok(true));
        assert_eq!(eval("inputs.replicas == 3.0"), Ok(true));
        assert_eq!(eval("inputs.replicas != -3.5"), Ok(true));
        assert_eq!(eval(r#"inputs.replicas == "3""#), Ok(false));
        assert_eq!(eval("inputs.ready"), Ok(true));
        assert_eq!(eval("!inputs.ready || inputs.ready == false"), Ok(false));
        assert_eq!(
            eval(r#"status.apply.succeeded && inputs.env == "prod""#),
            Ok(true)
        );
        assert_eq!(eval("status[\"2nd\"].skipped"), Ok(false));
        assert_eq!(eval("status.2nd.skipped"), Ok(false));
        assert_eq!(eval(r#"inputs.labels == "b""#), Ok(false));
        let e = eval("inputs.nope == \"x\"").unwrap_err();
        assert!(e.message.contains("unknown input \"nope\""), "{e}");
        assert!(e.message.contains("\"env\""), "{e}");
        let e = eval("inputs.env").unwrap_err();
        assert!(e.message.contains("not a boolean"), "{e}");
        assert!(eval("inputs").is_err());
        assert!(eval("inputs[env]").is_err());
        assert!(eval("inputs.replicas").is_err());
    }
}
