//! Step `inputs` and `outputs`, KubeVela's subset Flotilla supports. Pure.
//!
//! - An output's `valueFrom` is a path into the step's output, `output.value…` (for
//!   `apply-component`: the component's first object as read back from its cluster), with
//!   `.field`, `["field"]` and `[index]` segments, or a quoted string literal. Other CUE
//!   expressions are refused with a message. Outputs are kept by name in
//!   `status.workflow.outputs` for the rest of the run.
//! - An input names an output (`from`) and where in the step's properties it goes
//!   (`parameterKey`, the same path syntax without `output`); missing objects on the way are
//!   created. An input whose output does not exist fails the step.

use std::collections::BTreeMap;

use flotilla_apis::WorkflowStep;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Splits `a.b["c.d"][0]` into segments.
fn parse_path(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = text.trim();
    let bad = || format!("unsupported path {text:?} (use a.b, a[\"b\"], a[0])");
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(bad)?;
            let inner = after[..end].trim();
            segments.push(
                match inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Some(key) => Segment::Key(key.to_string()),
                    None => Segment::Index(inner.parse().map_err(|_| bad())?),
                },
            );
            rest = &after[end + 1..];
        } else {
            let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
            let key = &rest_trimmed[..end];
            let valid = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(bad());
            }
            segments.push(Segment::Key(key.to_string()));
            rest = &rest_trimmed[end..];
        }
    }
    if segments.is_empty() {
        return Err(bad());
    }
    Ok(segments)
}

/// Evaluates an output's `valueFrom` against the step's output (`{"value": ...}`).
pub(crate) fn evaluate(value_from: &str, output: &Value) -> Result<Value, String> {
    let text = value_from.trim();
    if let Some(literal) = text.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Ok(Value::String(literal.to_string()));
    }
    let segments = parse_path(text)?;
    if segments.first() != Some(&Segment::Key("output".into())) {
        return Err(format!(
            "valueFrom {text:?}: only paths into output (output.value...) are supported"
        ));
    }
    let mut cursor = &Value::Object(Map::from_iter([("output".to_string(), output.clone())]));
    for segment in &segments {
        let next = match segment {
            Segment::Key(k) => cursor.get(k),
            Segment::Index(i) => cursor.get(*i),
        };
        cursor = next.ok_or_else(|| format!("valueFrom {text:?}: not in the step's output"))?;
    }
    Ok(cursor.clone())
}

/// The step with its inputs set into its properties.
pub(crate) fn with_inputs(
    step: &WorkflowStep,
    outputs: &BTreeMap<String, Value>,
) -> Result<WorkflowStep, String> {
    let mut step = step.clone();
    for input in &step.inputs.clone() {
        let value = outputs.get(&input.from).ok_or_else(|| {
            format!(
                "input {:?}: no earlier step has an output of that name",
                input.from
            )
        })?;
        let properties = step
            .properties
            .get_or_insert_with(|| Value::Object(Map::new()));
        set(
            properties,
            &parse_path(&input.parameter_key)?,
            value.clone(),
        )
        .map_err(|e| format!("input {:?}: {e}", input.from))?;
    }
    Ok(step)
}

fn set(target: &mut Value, segments: &[Segment], value: Value) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        *target = value;
        return Ok(());
    };
    let slot = match first {
        Segment::Key(k) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            target
                .as_object_mut()
                .map(|m| m.entry(k.clone()).or_insert(Value::Null))
        }
        Segment::Index(i) => target.get_mut(*i),
    };
    let slot = slot.ok_or_else(|| "parameterKey index out of range".to_string())?;
    set(slot, rest, value)
}

/// Records the step's outputs from its output (`None`: the step has none to give).
pub(crate) fn record_outputs(
    step: &WorkflowStep,
    output: Option<&Value>,
    outputs: &mut BTreeMap<String, Value>,
) -> Result<(), String> {
    for out in &step.outputs {
        let Some(output) = output else {
            return Err(format!(
                "output {:?}: a {} step has no output",
                out.name, step.step_type
            ));
        };
        outputs.insert(out.name.clone(), evaluate(&out.value_from, output)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_are_paths_into_the_output() {
        let output = json!({"value": {"metadata": {"name": "x", "labels": {"a.b/c": "1"}},
                                      "spec": {"ports": [{"port": 80}]}}});
        assert_eq!(
            evaluate("output.value.metadata.name", &output),
            Ok(json!("x"))
        );
        assert_eq!(
            evaluate(r#"output.value.metadata.labels["a.b/c"]"#, &output),
            Ok(json!("1"))
        );
        assert_eq!(
            evaluate("output.value.spec.ports[0].port", &output),
            Ok(json!(80))
        );
        assert_eq!(evaluate(r#""fixed""#, &output), Ok(json!("fixed")));
        assert!(
            evaluate("context.name", &output)
                .unwrap_err()
                .contains("only paths")
        );
        assert!(evaluate("output.value.nope", &output).is_err());
        assert!(evaluate("output.value + 1", &output).is_err());
    }

    #[test]
    fn inputs_go_into_properties() {
        let step: WorkflowStep = serde_json::from_value(json!({
            "name": "n", "type": "notification",
            "properties": {"slack": {"message": {"text": "old"}}},
            "inputs": [{"from": "name", "parameterKey": "slack.message.text"},
                       {"from": "name", "parameterKey": "extra[\"k\"]"}],
        }))
        .unwrap();
        let outputs = BTreeMap::from([("name".to_string(), json!("web"))]);
        let got = with_inputs(&step, &outputs).unwrap();
        assert_eq!(
            got.properties,
            Some(json!({"slack": {"message": {"text": "web"}}, "extra": {"k": "web"}}))
        );
        let missing = with_inputs(&step, &BTreeMap::new()).unwrap_err();
        assert!(missing.contains("no earlier step"), "{missing}");
    }

    #[test]
    fn outputs_need_an_output() {
        let step: WorkflowStep = serde_json::from_value(json!({
            "name": "d", "type": "deploy",
            "outputs": [{"name": "o", "valueFrom": "output.value"}],
        }))
        .unwrap();
        let mut outputs = BTreeMap::new();
        assert!(record_outputs(&step, None, &mut outputs).is_err());
        record_outputs(&step, Some(&json!({"value": 1})), &mut outputs).unwrap();
        assert_eq!(outputs["o"], json!(1));
    }
}
