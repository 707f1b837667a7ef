//! A crash harness: runs that write large outputs are killed with SIGKILL
//! at random moments; each time the document must be a whole one (the old
//! or a newer, never half of one), and the next run must clean up after
//! the killed one and pass.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use runbook::parser::parse;
use runbook::writer::{apply, Edit};

use crate::support::Test;

/// A document of cells that print a lot, so every write is large.
fn document(cells: usize) -> String {
    (0..cells)
        .map(|i| format!("## Step {i}\n\n```bash\nseq 1 1500 | sed 's/^/cell {i}: a long output, line /'\n```\n\n"))
        .collect()
}

/// The document with every output block taken out.
fn without_outputs(text: &str) -> String {
    let runbook = parse(text).unwrap_or_else(|e| panic!("the document does not parse: {e:?}"));
    let edits: Vec<Edit> = (0..runbook.cells.len())
        .map(|cell| Edit { cell, output: None })
        .collect();
    apply(text, &runbook, &edits)
}

/// A small random number from the clock and a counter, without a crate.
fn random_below(limit: u64, seed: &mut u64) -> u64 {
    *seed ^= std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) % limit
}

fn leftovers(test: &Test) -> Vec<String> {
    std::fs::read_dir(test.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn two_hundred_sigkills_never_leave_half_a_document() {
    const KILLS: usize = 200;
    let test = Test::new();
    let original = document(12);
    test.write("doc.md", &original);
    let mut seed = 0x5eed;
    let (mut killed, mut finished) = (0, 0);
    let mut round = 0;
    while killed < KILLS {
        round += 1;
        assert!(round < 4 * KILLS, "runs end before they can be killed");
        let mut child = test
            .command(&["run", "doc.md", "--max-output", "2000,256KiB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(random_below(220, &mut seed)));
        // SAFETY: kill(2) on the child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let status = child.wait().unwrap();
        if status.signal() == Some(libc::SIGKILL) {
            killed += 1;
        } else {
            finished += 1;
        }
        let text = test.read("doc.md");
        assert_eq!(
            without_outputs(&text),
            original,
            "round {round}: not the old document nor a newer one"
        );
        if round % 25 == 0 {
            // The next run cleans up what the killed ones left, and passes.
            let run = test.run(&["run", "doc.md", "--max-output", "2000,256KiB"]);
            assert_eq!(run.code, 0, "round {round}: {}", run.stderr);
            assert!(
                leftovers(&test).is_empty(),
                "round {round}: {:?}",
                leftovers(&test)
            );
            let text = test.read("doc.md");
            assert_eq!(without_outputs(&text), original);
            assert_eq!(
                parse(&text)
                    .unwrap()
                    .cells
                    .iter()
                    .filter(|c| c.output.is_some())
                    .count(),
                12
            );
        }
    }
    eprintln!(
        "crash harness: {killed} runs killed mid-run, {finished} finished first, 0 documents broken"
    );
}
