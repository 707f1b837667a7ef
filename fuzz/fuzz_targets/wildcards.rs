//! Any pattern and text: matching never panics, ends quickly however many
//! `...` lines there are, and every pattern matches itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::snapshot::matches;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, actual) = text.split_once('\0').unwrap_or((text, ""));
    let _ = matches(pattern, actual);
    assert!(matches(pattern, pattern));
});
