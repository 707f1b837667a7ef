//! Process-tree control: signalling a cell's process group, adopting
//! orphans as a subreaper, and making sure nothing outlives the run.

use std::collections::HashMap;
use std::fs;
use std::sync::OnceLock;

/// The fewest open files runbook needs for itself: its runtime, signal
/// handling, the pipes of a kernel and the files it writes.
pub const MIN_OPEN_FILES: u64 = 64;

/// The open-files limit the caller gave, when runbook raised its own
/// (cells get the caller's back).
static CALLERS_OPEN_FILES: OnceLock<libc::rlimit> = OnceLock::new();

/// Makes sure runbook can open the files it needs: below
/// [`MIN_OPEN_FILES`], the limit is raised for runbook itself when the
/// hard limit allows (cells still get the caller's, see
/// [`restore_open_files`]), and is an error otherwise.
fn ensure_open_files() -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur >= MIN_OPEN_FILES
    {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: MIN_OPEN_FILES,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if limit.rlim_max >= MIN_OPEN_FILES
        && unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0
    {
        let _ = CALLERS_OPEN_FILES.set(limit);
        return Ok(());
    }
    Err(format!(
        "too few open files allowed (ulimit -n is {}); runbook needs at least {MIN_OPEN_FILES}: raise it with `ulimit -n {MIN_OPEN_FILES}`",
        limit.rlim_cur
    ))
}

/// Makes sure the system gives runbook what it relies on, before anything
/// runs: enough open files, `/dev/null` (every cell's stdin) and `/proc`
/// (how it finds, and ends, every process a cell started, and tells a
/// running run's files from those a killed one left).
pub fn ensure_system() -> Result<(), String> {
    ensure_open_files()?;
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    let is_device = null
        .and_then(|f| f.metadata())
        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()));
    if !is_device {
        return Err(
            "/dev/null is missing or not a device: cells read their stdin from it; nothing ran"
                .into(),
        );
    }
    if fs::metadata(format!("/proc/{}/stat", std::process::id())).is_err() {
        return Err(
            "/proc is not mounted: runbook needs it to find and end every process a cell starts; nothing ran"
                .into(),
        );
    }
    Ok(())
}

/// The open-files limit cells get: the caller's.
pub fn cells_open_files() -> u64 {
    if let Some(limit) = CALLERS_OPEN_FILES.get() {
        return limit.rlim_cur;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    }
}

/// In a child before exec: gives it back the caller's open-files limit,
/// if runbook raised its own. Async-signal-safe.
pub fn restore_open_files() {
    if let Some(limit) = CALLERS_OPEN_FILES.get() {
        // SAFETY: setrlimit only reads the struct; it is async-signal-safe.
        unsafe {
            libc::setrlimit(libc::RLIMIT_NOFILE, limit);
        }
    }
}

/// Makes this process the reaper of its orphaned descendants, so a child
/// that daemonises (double fork, `setsid`) stays findable and killable.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers and
    // only changes this process's own attribute.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Sends `signal` to every process in group `pgid`.
pub fn signal_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; it
        // has no memory effects in this process.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// One row of the process table.
struct Proc {
    pid: i32,
    ppid: i32,
    zombie: bool,
}

/// Every process visible in /proc.
fn processes() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is in parentheses and may hold spaces.
            let after = &stat[stat.rfind(')')? + 1..];
            let mut fields = after.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some(Proc {
                pid,
                ppid,
                zombie: state == "Z" || state == "X",
            })
        })
        .collect()
}

/// Live descendants of this process, and its own zombie children (orphans
/// it adopted that have exited), in one pass over /proc.
fn family() -> (Vec<i32>, Vec<i32>) {
    let me = std::process::id() as i32;
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut zombies = Vec::new();
    for proc in processes() {
        if proc.zombie {
            if proc.ppid == me {
                zombies.push(proc.pid);
            }
        } else {
            children.entry(proc.ppid).or_default().push(proc.pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![me];
    while let Some(pid) = queue.pop() {
        for &kid in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            found.push(kid);
            queue.push(kid);
        }
    }
    (found, zombies)
}

/// SIGKILLs every descendant whose environment carries `NAME=value`: the
/// processes one kernel started, even those that left its process group
/// or were orphaned and adopted by this process.
pub fn kill_tagged(name: &str, value: &str) {
    let needle = format!("{name}={value}").into_bytes();
    for _ in 0..4 {
        let (alive, _) = family();
        let tagged: Vec<i32> = alive
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|entry| entry == needle))
            })
            .collect();
        if tagged.is_empty() {
            break;
        }
        for &pid in &tagged {
            // SAFETY: kill(2) on a pid; no memory effects here.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// SIGKILLs every descendant except `keep`, then reaps the orphans this
/// process adopted (never `keep`, which their owners wait for).
pub fn kill_descendants(keep: &[i32]) {
    for attempt in 0..4 {
        let (alive, zombies) = family();
        for &pid in zombies.iter().filter(|p| !keep.contains(p)) {
            let mut status = 0;
            // SAFETY: waitpid on a zombie child of ours, WNOHANG.
            unsafe {
                libc::waitpid(pid, &mut status, libc::WNOHANG);
            }
        }
        let victims: Vec<i32> = alive.into_iter().filter(|p| !keep.contains(p)).collect();
        if victims.is_empty() || attempt == 3 {
            break;
        }
        for &pid in &victims {
            // SAFETY: kill(2) on a pid; no memory effects here.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
