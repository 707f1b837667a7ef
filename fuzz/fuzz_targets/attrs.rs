//! Any info string: the attribute parser never panics, and the spans it
//! gives lie inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match runbook::attrs::parse_info(text) {
        Ok(info) => {
            for attr in &info.attrs {
                assert!(attr.span.end <= text.len());
            }
        }
        Err(error) => assert!(error.span.end <= text.len()),
    }
});
