#![no_main]
//! Label and field selector parsers: never panic; what parses prints back to an equal selector.

use flotilla_core::selector::{parse_field_selector, parse_label_selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sel) = parse_label_selector(text) {
        let printed = sel.to_string();
        let again = parse_label_selector(&printed).expect("a printed selector parses");
        assert_eq!(again.to_string(), printed);
        let _ = sel.matches_object(&serde_json::json!({"metadata": {"labels": {"a": "b"}}}));
    }
    if let Ok(sel) = parse_field_selector(text) {
        let printed = sel.to_string();
        let again = parse_field_selector(&printed).expect("a printed field selector parses");
        assert_eq!(again, sel);
        let _ = sel.matches(&serde_json::json!({"metadata": {"name": "x"}}));
    }
});
