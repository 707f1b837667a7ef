//! One run of a runbook at a time: an advisory lock on
//! `.runbook/FILE.lock` (`lab.md.lock`). The kernel drops the lock when its holder dies, so
//! a lock left by a killed run is simply taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held for as long as the run lasts; dropping it releases the lock.
pub struct Lock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another run holds it.
    Busy(String),
    /// The lock file cannot be made (a read-only folder, say).
    Unavailable(String),
}

impl Lock {
    /// Takes the lock or says who holds it.
    pub fn acquire(path: &Path, runbook: &str) -> Result<Lock, LockError> {
        let unavailable =
            |e: std::io::Error| LockError::Unavailable(format!("{}: {e}", path.display()));
        if let Some(parent) = path.parent() {
            crate::state::make_folder(parent).map_err(unavailable)?;
        }
        // A link in the lock's place is never followed (and so never
        // truncates what it points at).
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(unavailable)?;
        if !file.metadata().map_err(unavailable)?.is_file() {
            return Err(unavailable(std::io::Error::other("not a regular file")));
        }
        // SAFETY: flock on a file descriptor this function owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(LockError::Busy(format!(
                "{runbook} is being run by another runbook process{who}; wait for it to finish or stop it"
            )));
        }
        file.set_len(0).map_err(unavailable)?;
        file.rewind().map_err(unavailable)?;
        writeln!(file, "{}", std::process::id()).map_err(unavailable)?;
        Ok(Lock { _file: file })
    }
}

/// Where the lock of the runbook at `runbook` lives.
pub fn path_for(runbook: &Path) -> PathBuf {
    crate::state::path_for(runbook).with_extension("lock")
}
