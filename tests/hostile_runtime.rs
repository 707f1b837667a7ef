//! Foreign documents are untrusted: what a run records, where it writes,
//! what it reads back from its state, and how it meets exhausted
//! resources. Each test tries an attack on the real binary and checks
//! that it fails.

use serde_json::Value;

use crate::support::Test;

/// The recorded block under the only cell of `doc`.
fn recorded_block(doc: &str) -> &str {
    let start = doc.find("```output\n").expect("an output block") + "```output\n".len();
    let end = doc[start..].rfind("\n```").expect("a closing fence") + start;
    &doc[start..end]
}

/// The JSON events a `--json` run printed.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
        .collect()
}

#[test]
fn outputs_are_recorded_byte_for_byte_tabs_included() {
    let test = Test::new();
    // Every byte value 0x09-0x7e on a line of its own, between colons, then
    // UTF-8 of every length.
    let mut printed = Vec::new();
    let mut expected = String::new();
    for byte in 0x09u8..=0x7e {
        printed.extend_from_slice(format!("{byte:02x}:").as_bytes());
        printed.push(byte);
        printed.extend_from_slice(b":\n");
        let line = match byte {
            // A line feed ends the line.
            b'\n' => "0a:\n:".to_string(),
            // What follows a carriage return overwrites the line.
            b'\r' => ":".to_string(),
            // ESC starts an escape sequence (`ESC :`), which goes.
            0x1b => "1b:".to_string(),
            // The other control characters are terminal controls and go.
            0x0b..=0x1f if byte != b'\t' => format!("{byte:02x}::"),
            _ => format!("{byte:02x}:{}:", char::from(byte)),
        };
        expected.push_str(&line);
        expected.push('\n');
    }
    let utf8 = "é ß ñ ¼ ÿ\t日本語\tΩ≈ç√\t🙂👍🏽\t\u{a0}nbsp";
    printed.extend_from_slice(utf8.as_bytes());
    printed.push(b'\n');
    expected.push_str(utf8);
    // Columns of `-o tsv` output stay apart.
    let tsv = "rg-dev\teastus\tSucceeded\n\tleading\ttrailing\t";
    printed.extend_from_slice(tsv.as_bytes());
    expected.push('\n');
    expected.push_str(tsv);
    std::fs::write(test.path("bytes.bin"), &printed).unwrap();
    test.write("doc.md", "# Bytes\n\n```bash\ncat bytes.bin\n```\n");
    let run = test.run(&["run", "doc.md", "--json"]).code(0);
    let doc = test.read("doc.md");
    assert_eq!(recorded_block(&doc), expected, "{doc}");
    let events = events(&run.stdout);
    // The live output is what the cell printed, every byte of it.
    let live: String = events
        .iter()
        .filter(|e| e["event"] == "output")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(live.as_bytes(), &printed[..]);
    let finished = events
        .iter()
        .find(|e| e["event"] == "cell-finished")
        .unwrap();
    assert_eq!(finished["recorded"], expected.as_str());
    // The terminal echo too.
    let run = test.run(&["run", "doc.md", "--no-write"]).code(0);
    assert!(run.stdout.contains("rg-dev\teastus\tSucceeded\n"), "{}", run.stdout);
    // Recording again changes nothing, and `test` agrees with what it recorded.
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("doc.md"), doc);
    test.run(&["test", "doc.md"]).code(0);
}
