#![no_main]
//! Server-side apply: never panics; re-applying the same configuration by the same manager is
//! a no-op (kube-apiserver does not write an unchanged object).

use libfuzzer_sys::fuzz_target;

#[path = "two_docs.rs"]
mod two_docs;

fuzz_target!(|data: &[u8]| {
    let Some((live, applied)) = two_docs::two_docs(data) else {
        return;
    };
    let keys = flotilla_core::patch::builtin_merge_keys("apps", "Deployment").expect("built-in");
    let now = "2024-01-01T00:00:00Z";
    let _ = flotilla_core::patch::server_side_apply(None, &applied, "fuzz", false, &keys, now);
    if let Ok(once) =
        flotilla_core::patch::server_side_apply(Some(&live), &applied, "fuzz", true, &keys, now)
    {
        let twice = flotilla_core::patch::server_side_apply(
            Some(&once),
            &applied,
            "fuzz",
            true,
            &keys,
            now,
        )
        .expect("re-apply succeeds");
        assert_eq!(once, twice);
        let _ = flotilla_core::patch::update_managed_fields(
            Some(&live),
            &once,
            "fuzz-update",
            &keys,
            now,
        );
    }
});
