#![no_main]
//! JSON patch: any document and any patch give a result or an error, never a panic.

use libfuzzer_sys::fuzz_target;

#[path = "two_docs.rs"]
mod two_docs;

fuzz_target!(|data: &[u8]| {
    if let Some((doc, patch)) = two_docs::two_docs(data) {
        let _ = flotilla_core::patch::json_patch(&doc, &patch);
    }
});
