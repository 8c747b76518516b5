#![no_main]
//! JSON merge patch: never panics, and applying the same patch twice changes nothing more
//! (RFC 7386 patches are idempotent).

use libfuzzer_sys::fuzz_target;

#[path = "two_docs.rs"]
mod two_docs;

fuzz_target!(|data: &[u8]| {
    if let Some((doc, patch)) = two_docs::two_docs(data)
        && let Ok(once) = flotilla_core::patch::merge_patch(&doc, &patch)
    {
        let twice = flotilla_core::patch::merge_patch(&once, &patch).expect("patch is an object");
        assert_eq!(once, twice);
    }
});
