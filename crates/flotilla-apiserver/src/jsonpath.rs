//! The subset of Kubernetes JSONPath used by CRD printer columns: `.a.b`, `.a[0]`,
//! `.a[*].b`, `.a[?(@.type=="Ready")].status`, escaped dots (`app\.kubernetes\.io/name`)
//! and an optional `{...}` wrapper.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter {
        field: Vec<String>,
        value: String,
        negate: bool,
    },
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        name.push(chars[i + 1]);
                        i += 2;
                    } else {
                        name.push(chars[i]);
                        i += 1;
                    }
                }
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(expr) =
                    inner.strip_prefix("?(").and_then(|e| e.strip_suffix(')'))
                {
                    let (lhs, rhs, negate) = if let Some((l, r)) = expr.split_once("!=") {
                        (l, r, true)
                    } else {
                        let (l, r) = expr.split_once("==")?;
                        (l, r, false)
                    };
                    let field = lhs
                        .trim()
                        .strip_prefix("@.")?
                        .split('.')
                        .map(str::to_string)
                        .collect();
                    let value = rhs
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_string();
                    steps.push(Step::Filter {
                        field,
                        value,
                        negate,
                    });
                } else {
                    let name = inner.trim_matches(|c| c == '"' || c == '\'');
                    steps.push(Step::Field(name.to_string()));
                }
                i = end + 1;
            }
            _ => {
                // A path without a leading dot.
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    name.push(chars[i]);
                    i += 1;
                }
                steps.push(Step::Field(name));
            }
        }
    }
    Some(steps)
}

/// Every value `path` selects in `obj` (empty if none or the path is not understood).
pub(crate) fn evaluate<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => {
                    if let Some(x) = v.get(name.as_str()) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Some(x) = v.get(*n) {
                        next.push(x);
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter {
                    field,
                    value,
                    negate,
                } => {
                    if let Value::Array(a) = v {
                        for item in a {
                            let mut cur = Some(item);
                            for f in field {
                                cur = cur.and_then(|c| c.get(f.as_str()));
                            }
                            let text = match cur {
                                Some(Value::String(s)) => Some(s.clone()),
                                Some(other) => Some(other.to_string()),
                                None => None,
                            };
                            if (text.as_deref() == Some(value.as_str())) != *negate {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printer_column_paths() {
        let o = json!({"metadata":{"labels":{"app.kubernetes.io/name":"x"}},
            "spec":{"components":[{"name":"a","type":"webservice"},{"name":"b","type":"worker"}]},
            "status":{"conditions":[{"type":"Ready","status":"True"}],"phase":"running"}});
        assert_eq!(evaluate(&o, ".status.phase"), vec![&json!("running")]);
        assert_eq!(evaluate(&o, ".spec.components[0].name"), vec![&json!("a")]);
        assert_eq!(evaluate(&o, ".spec.components[*].type").len(), 2);
        assert_eq!(
            evaluate(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![&json!("True")]
        );
        assert_eq!(
            evaluate(&o, ".metadata.labels.app\\.kubernetes\\.io/name"),
            vec![&json!("x")]
        );
        assert!(evaluate(&o, ".nope.x").is_empty());
    }
}
