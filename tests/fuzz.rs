//! The fuzz targets' properties (see `fuzz/`), run as bounded property
//! tests so CI checks them on every change without a fuzzing toolchain:
//! the attribute parser, the writer and the wildcard matcher never panic,
//! written outputs read back exactly, and matching stays fast.

use proptest::prelude::*;
use runbook::parser::parse;
use runbook::snapshot::matches;
use runbook::writer::{apply, Edit, Output};

/// Text made of what matters to Markdown, attributes and wildcards.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("`".to_string()),
            Just("```".to_string()),
            Just("~~~".to_string()),
            Just("\n".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("> ".to_string()),
            Just("- ".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("=".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("#".to_string()),
            Just("[..]".to_string()),
            Just("...".to_string()),
            Just("\n...\n".to_string()),
            Just("output".to_string()),
            Just("bash".to_string()),
            Just("id".to_string()),
            Just("é".to_string()),
            Just("\u{b}".to_string()),
            Just("\u{a0}".to_string()),
            Just(":".to_string()),
            "[a-z0-9]{1,3}",
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_attribute_parser_never_panics(info in text(12)) {
        match runbook::attrs::parse_info(&info) {
            Ok(parsed) => {
                for attr in &parsed.attrs {
                    prop_assert!(attr.span.end <= info.len());
                }
            }
            Err(error) => prop_assert!(error.span.end <= info.len()),
        }
    }

    #[test]
    fn any_output_reads_back_exactly(output in text(16)) {
        let output = output.replace('\r', "").trim_end_matches('\n').to_string();
        for doc in ["```bash\necho\n```\n", "> ```bash\n> echo\n> ```\n", "- x\n\n  ```bash\n  echo\n  ```\n"] {
            let runbook = parse(doc).unwrap();
            let edit = Edit { cell: 0, output: Some(Output { text: output.clone(), exit: 0, literal: false }) };
            let written = apply(doc, &runbook, &[edit]);
            let reparsed = parse(&written).expect("a written document parses");
            prop_assert_eq!(reparsed.cells.len(), 1, "{:?}", written);
            let read = reparsed.cells[0].output.as_ref().map(|o| o.text.clone()).unwrap_or_default();
            prop_assert_eq!(&read, &output, "{:?}", written);
        }
    }

    #[test]
    fn wildcard_matching_never_panics_and_every_pattern_matches_itself(pattern in text(24), actual in text(24)) {
        let _ = matches(&pattern, &actual);
        prop_assert!(matches(&pattern, &pattern));
    }
}
