//! Any output text: written under a cell, it reads back exactly, whatever
//! fences or container prefixes it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::parser::parse;
use runbook::writer::{apply, Edit, Output};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Recorded text never holds a carriage return or ends in a newline.
    let text = text.replace('\r', "").trim_end_matches('\n').to_string();
    for doc in [
        "```bash\necho\n```\n",
        "> ```bash\n> echo\n> ```\n",
        "- x\n\n  ```bash\n  echo\n  ```\n",
    ] {
        let runbook = parse(doc).unwrap();
        let output = Output {
            text: text.clone(),
            exit: 0,
            literal: false,
        };
        let written = apply(
            doc,
            &runbook,
            &[Edit {
                cell: 0,
                output: Some(output),
            }],
        );
        let reparsed = parse(&written).expect("a written document parses");
        assert_eq!(reparsed.cells.len(), 1, "{written:?}");
        let read = reparsed.cells[0]
            .output
            .as_ref()
            .map(|o| o.text.clone())
            .unwrap_or_default();
        assert_eq!(read, text, "{written:?}");
    }
});
