//! Any text: the parser never panics, and a document it accepts round-trips
//! through the writer (no edit leaves every byte; outputs written then
//! removed give back the document without its outputs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::parser::parse;
use runbook::writer::{apply, Edit, Output};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(runbook) = parse(text) else {
        return;
    };
    assert_eq!(apply(text, &runbook, &[]), text);
    let cells = runbook.cells.len();
    let remove: Vec<Edit> = (0..cells).map(|cell| Edit { cell, output: None }).collect();
    let bare = apply(text, &runbook, &remove);
    let outputs: Vec<Edit> = (0..cells)
        .map(|cell| Edit {
            cell,
            output: Some(Output {
                text: format!("out {cell}\n````\n..."),
                exit: cell as i32 % 3,
                literal: true,
            }),
        })
        .collect();
    let written = apply(text, &runbook, &outputs);
    let reparsed = parse(&written).expect("a written document parses");
    assert_eq!(reparsed.cells.len(), cells);
    let remove: Vec<Edit> = (0..cells).map(|cell| Edit { cell, output: None }).collect();
    assert_eq!(apply(&written, &reparsed, &remove), bare);
});
