//! File cells write inside the runbook's folder only, even while someone
//! changes the folder under the run: each test swaps links as the file
//! cells are written and checks that nothing lands outside.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{walk, Test};

/// How many file cells the race runs; each is a chance to write outside.
const CELLS: usize = 300;

/// Swaps `link` between pointing at each of `targets`, atomically (a new
/// link renamed over the old one), until `stop` is set.
fn swap_link(link: &Path, targets: &[&str], stop: &AtomicBool) {
    let temp = link.with_extension("swap");
    while !stop.load(Ordering::Relaxed) {
        for target in targets {
            let _ = std::fs::remove_file(&temp);
            std::os::unix::fs::symlink(target, &temp).unwrap();
            std::fs::rename(&temp, link).unwrap();
        }
    }
}

/// Runs `runbook ARGS` in `folder` while `swapper` runs beside it, killing
/// the run if it takes over a minute.
fn run_while(
    folder: &Path,
    args: &[&str],
    swapper: impl FnOnce(&AtomicBool) + Send + 'static,
) -> crate::support::Run {
    let stop = Arc::new(AtomicBool::new(false));
    let swapping = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || swapper(&stop))
    };
    // Let the swapper get going before the first file cell.
    std::thread::sleep(Duration::from_millis(50));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(folder)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runbook starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            stop.store(true, Ordering::Relaxed);
            panic!("runbook {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    swapping.join().unwrap();
    crate::support::Run::from(child.wait_with_output().unwrap())
}

/// A runbook of `CELLS` file cells `PREFIX/fN.yaml`, each free to fail.
fn file_cells(prefix: &str) -> String {
    let mut doc = String::from("# Race\n");
    for n in 1..=CELLS {
        doc.push_str(&format!(
            "\n```yaml {{file={prefix}/f{n}.yaml continue-on-error}}\nn: {n}\n```\n"
        ));
    }
    doc
}

/// Every file cell either wrote its file in `real` or said it was refused
/// because a link leads out.
fn each_cell_wrote_inside_or_was_refused(real: &Path, stderr: &str) {
    let mut written = 0;
    for n in 1..=CELLS {
        let file = real.join(format!("f{n}.yaml"));
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                assert_eq!(text, format!("n: {n}\n"));
                written += 1;
            }
            Err(_) => assert!(
                stderr.contains(&format!("file path d/f{n}.yaml leads out")),
                "f{n}.yaml neither written nor refused:\n{stderr}"
            ),
        }
    }
    assert!(written > 0, "no file cell was written:\n{stderr}");
}

#[test]
fn a_link_swapped_while_file_cells_are_written_never_leads_out() {
    let test = Test::new();
    let book = test.path("book");
    let outside = test.path("outside");
    std::fs::create_dir_all(book.join("d.real")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink("d.real", book.join("d")).unwrap();
    std::fs::write(book.join("race.md"), file_cells("d")).unwrap();
    let link = book.join("d");
    let run = run_while(&book, &["run", "race.md", "--no-write"], move |stop| {
        swap_link(&link, &["../outside", "d.real"], stop)
    })
    .code(0);
    nothing_escaped(&test, &outside, &book.join("d.real"), &run.stderr);
}

#[test]
fn a_folder_exchanged_with_a_link_while_file_cells_are_written_never_leads_out() {
    // `d` a real folder one moment, a link out the next (the two swapped
    // in one step): a file cell that found the folder must not follow the
    // link in its place.
    let test = Test::new();
    let book = test.path("book");
    let outside = test.path("outside");
    std::fs::create_dir_all(book.join("d")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink("../outside", book.join("d.out")).unwrap();
    std::fs::write(book.join("race.md"), file_cells("d")).unwrap();
    let (folder, link) = (book.join("d"), book.join("d.out"));
    let run = run_while(&book, &["run", "race.md", "--no-write"], move |stop| {
        while !stop.load(Ordering::Relaxed) {
            runbook::document::atomic::exchange(&folder, &link).unwrap();
        }
    })
    .code(0);
    // The real folder is `d` or `d.out` now, whichever the swapper left.
    let real = ["d", "d.out"]
        .iter()
        .map(|name| book.join(name))
        .find(|path| std::fs::symlink_metadata(path).unwrap().is_dir())
        .unwrap();
    nothing_escaped(&test, &outside, &real, &run.stderr);
}

/// Nothing was written in `outside`, every cell wrote into `real` or was
/// refused, and no temp file is left anywhere.
fn nothing_escaped(test: &Test, outside: &Path, real: &Path, stderr: &str) {
    let escaped = walk(outside);
    assert!(
        escaped.is_empty(),
        "{} files written outside the folder: {escaped:?}",
        escaped.len()
    );
    each_cell_wrote_inside_or_was_refused(real, stderr);
    let temps: Vec<_> = walk(test.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
fn a_file_cell_follows_a_link_that_stays_inside_and_keeps_its_mode() {
    let test = Test::new();
    std::fs::create_dir_all(test.path("real/sub")).unwrap();
    std::os::unix::fs::symlink("real/sub", test.path("k8s")).unwrap();
    // The file itself a link to a file elsewhere in the folder.
    test.write("real/app.yaml", "old\n");
    std::os::unix::fs::symlink("../app.yaml", test.path("real/sub/app.yaml")).unwrap();
    test.write(
        "doc.md",
        "```yaml {file=k8s/ns.yaml mode=0600}\nns: 1\n```\n\n```yaml {file=k8s/app.yaml}\napp: 1\n```\n",
    );
    test.run(&["run", "doc.md"]).code(0);
    assert_eq!(test.read("real/sub/ns.yaml"), "ns: 1\n");
    let mode = std::fs::metadata(test.path("real/sub/ns.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
    // Written through the link, which stays a link.
    assert_eq!(test.read("real/app.yaml"), "app: 1\n");
    assert!(std::fs::symlink_metadata(test.path("real/sub/app.yaml"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A link in a link that climbs out, and an absolute one elsewhere.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("../../..", test.path("real/sub/up")).unwrap();
    std::os::unix::fs::symlink(outside.path(), test.path("real/abs")).unwrap();
    for path in ["k8s/up/x.yaml", "real/abs/x.yaml"] {
        test.write("doc.md", &format!("```yaml {{file={path}}}\nx: 1\n```\n"));
        let run = test.run(&["run", "doc.md"]).code(1);
        assert!(
            run.stderr.contains("through a link"),
            "{path}: {}",
            run.stderr
        );
    }
    assert!(walk(outside.path()).is_empty());
    assert!(!test.dir.path().parent().unwrap().join("x.yaml").exists());
}
