//! Step `if` conditions, the subset of KubeVela's expressions Flotilla evaluates. Pure.
//!
//! - `always`: run whatever happened before.
//! - `status.<step>.<flag>` and `status["<step-name>"].<flag>`, where flag is `succeeded`,
//!   `failed`, `timeout` or `skipped` (`phase` compares as a string: `status.a.phase == "failed"`).
//! - `true`, `false`, string literals, `==`, `!=`, `!`, `&&`, `||`, parentheses.
//!
//! `inputs.*` and other CUE expressions are not supported: such a condition fails the step with
//! a message naming the unsupported part.

use flotilla_apis::{StepStatus, step_phase};

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("if {condition:?}: {message}")]
pub struct Error {
    /// The condition text.
    pub condition: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Bool(bool),
    Str(String),
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
            Some(Token::Ident(word)) => {
                self.at += 1;
                match word.as_str() {
                    "true" | "always" => Ok(Val::Bool(true)),
                    "false" => Ok(Val::Bool(false)),
                    "status" => self.step_field(),
                    other => Err(format!("unsupported name {other:?}")),
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
    /// After `status`: `.name.flag` or `["name"].flag`.
    fn step_field(&mut self) -> Result<Val, String> {
        let name = if self.eat(".") {
            self.ident()?
        } else if self.eat("[") {
            let Some(Token::Str(s)) = self.tokens.get(self.at).cloned() else {
                return Err("expected a quoted step name".into());
            };
            self.at += 1;
            if !self.eat("]") {
                return Err("missing ]".into());
            }
            s
        } else {
            return Err("expected .<step> or [\"<step>\"] after status".into());
        };
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
    }
}

/// The reason a timed-out step carries.
pub const TIMEOUT_REASON: &str = "Timeout";

/// Evaluates `condition` over the steps' statuses.
pub fn evaluate(condition: &str, steps: &[StepStatus]) -> Result<bool, Error> {
    let err = |message: String| Error {
        condition: condition.to_string(),
        message,
    };
    let tokens = tokenize(condition).map_err(err)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        steps,
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
        let eval = |c: &str| evaluate(c, &steps);
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
        let e = eval("inputs.ready == \"yes\"").unwrap_err();
        assert!(e.to_string().contains("unsupported name \"inputs\""), "{e}");
        assert!(
            eval("status.nope.failed")
                .unwrap_err()
                .message
                .contains("no step")
        );
        assert!(eval("status.apply.phase").is_err());
        assert!(eval("status.apply.failed )").is_err());
    }
}
