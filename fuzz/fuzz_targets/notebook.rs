//! Any notebook: what its import runs is exactly the visible source of its
//! code cells, in order, with no attribute, no front matter and no file
//! cell, whatever its markdown, kernel names or kept runbook metadata
//! hold; the images it writes stay in the runbook's folder.
//!
//! The input is a notebook (JSON), or, to reach deeper, cells separated by
//! NUL bytes: a first character `m` makes a markdown cell, `r` a raw cell,
//! `k` a code cell whose first line is its kernel name, `p` a code cell
//! with runbook metadata whose kept bytes are its second part (after a
//! `|`), anything else a code cell; `h` sets the kept document head.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../notebook_property.rs");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problem) = check(&notebook_from(text)) {
        panic!("{problem}");
    }
});
