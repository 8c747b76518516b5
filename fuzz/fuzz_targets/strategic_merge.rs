#![no_main]
//! Strategic merge patch with the Deployment schema: never panics, and the result never
//! carries a `$patch` directive.

use libfuzzer_sys::fuzz_target;

#[path = "two_docs.rs"]
mod two_docs;

fn has_directive(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => {
            m.keys().any(|k| {
                k == "$patch"
                    || k == "$retainKeys"
                    || k.starts_with("$setElementOrder/")
                    || k.starts_with("$deleteFromPrimitiveList/")
            }) || m.values().any(has_directive)
        }
        serde_json::Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((doc, patch)) = two_docs::two_docs(data) else {
        return;
    };
    let keys = flotilla_core::patch::builtin_merge_keys("apps", "Deployment").expect("built-in");
    if let Ok(out) = flotilla_core::patch::strategic_merge(&doc, &patch, &keys)
        && !has_directive(&doc)
    {
        assert!(!has_directive(&out), "directive leaked: {out}");
    }
});
