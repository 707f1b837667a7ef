//! The run's side of replay and record: a folder of shims put first on the
//! cells' PATH, and a socket on which intercepted calls are answered from
//! the cassette (replay) or collected into it (record).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use crate::cassette::{Call, Cassette, Normalizer, Player};
use crate::executor::{MissLog, SecretLog};
use crate::secrets::Masker;
use crate::shim::{Request, Response, MODE_ENV, REAL_PATH_ENV, SOCKET_ENV};

/// The tools intercepted unless the front matter names others.
pub const DEFAULT_TOOLS: [&str; 3] = ["az", "kubectl", "helm"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replay,
    Record,
}

/// What the socket task shares with the run.
#[derive(Debug)]
pub struct Shared {
    mode: Mode,
    player: Player,
    recorded: Vec<Call>,
    /// Calls that had no recording since the last look.
    misses: Vec<String>,
    /// The run's secrets: a live call is masked before it is matched, so a
    /// recorded `[masked:NAME]` argument matches the secret's value.
    masker: Masker,
    /// `runbook run lab.md --record fixtures/lab`, with the real paths.
    record_hint: String,
}

pub struct Interceptor {
    pub mode: Mode,
    /// Holds the shims and the socket; removed on drop.
    dir: tempfile::TempDir,
    pub shared: Arc<Mutex<Shared>>,
    cassette_path: PathBuf,
    runbook_name: String,
    folder: PathBuf,
    /// GUIDs the runbook names literally: public, so never normalised.
    public_ids: std::collections::BTreeSet<String>,
    pub tools: Vec<String>,
}

impl Interceptor {
    /// Prepares the shims for `tools`; in replay mode loads the cassette.
    pub fn new(
        mode: Mode,
        cassette_path: PathBuf,
        runbook: &Path,
        folder: &Path,
        tools: Vec<String>,
    ) -> Result<Interceptor, String> {
        for tool in &tools {
            if let Some(why) = not_a_tool_name(tool) {
                return Err(format!(
                    "intercept: {tool:?} {why}; name the tools as they are called, e.g. [az, kubectl, helm]"
                ));
            }
        }
        let cassette = match mode {
            Mode::Replay => Cassette::load(&cassette_path)?,
            Mode::Record => Cassette::default(),
        };
        remove_stale_shim_folders();
        // Private whatever the umask: another user must neither ask the
        // socket nor replace a shim.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SHIM_PREFIX}{}-", std::process::id()))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| format!("cannot create the shim folder: {e}"))?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .map_err(|e| format!("cannot make the shim folder private: {e}"))?;
        let binary =
            std::env::current_exe().map_err(|e| format!("cannot find the runbook binary: {e}"))?;
        for tool in &tools {
            std::os::unix::fs::symlink(&binary, dir.path().join(tool))
                .map_err(|e| format!("cannot create the {tool} shim: {e}"))?;
        }
        Ok(Interceptor {
            mode,
            shared: Arc::new(Mutex::new(Shared {
                mode,
                player: Player::new(cassette, folder),
                recorded: Vec::new(),
                misses: Vec::new(),
                masker: Masker::default(),
                record_hint: format!(
                    "runbook run {} --record {}",
                    runbook.display(),
                    crate::paths::folder_of(&cassette_path).display()
                ),
            })),
            dir,
            cassette_path,
            runbook_name: runbook
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            folder: folder.to_path_buf(),
            public_ids: std::fs::read_to_string(runbook)
                .map(|text| crate::cassette::literal_guids(&text))
                .unwrap_or_default(),
            tools,
        })
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// The PATH for cells: the shims first.
    pub fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Environment the shims need.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (SOCKET_ENV.into(), self.socket().display().to_string()),
            (
                REAL_PATH_ENV.into(),
                std::env::var("PATH").unwrap_or_default(),
            ),
            (
                MODE_ENV.into(),
                match self.mode {
                    Mode::Replay => "replay".into(),
                    Mode::Record => "record".into(),
                },
            ),
        ]
    }

    /// Starts answering calls; must run inside the tokio runtime.
    pub fn serve(&self) -> std::io::Result<()> {
        let listener = UnixListener::bind(self.socket())?;
        std::fs::set_permissions(
            self.socket(),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut line = String::new();
                    if BufReader::new(read).read_line(&mut line).await.is_err() {
                        return;
                    }
                    let response = match serde_json::from_str::<Request>(&line) {
                        Ok(request) => shared.lock().expect("not poisoned").handle(request),
                        Err(e) => {
                            Response::error(format!("runbook: bad request from a shim: {e}\n"), 127)
                        }
                    };
                    let mut reply = serde_json::to_string(&response).expect("responses serialise");
                    reply.push('\n');
                    let _ = write.write_all(reply.as_bytes()).await;
                });
            }
        });
        Ok(())
    }

    /// Writes what was recorded (secrets masked, GUIDs and paths
    /// normalised) to the cassette.
    pub fn save(&self, masker: &Masker) -> Result<(), String> {
        let shared = self.shared.lock().expect("not poisoned");
        let mut normalizer = Normalizer::new(&self.folder, self.public_ids.clone());
        let cassette = Cassette {
            version: crate::cassette::VERSION,
            runbook: self.runbook_name.clone(),
            calls: shared
                .recorded
                .iter()
                .map(|c| normalizer.call(c.clone(), masker))
                .collect(),
        };
        if let Some(parent) = self.cassette_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        crate::atomic::write_if_changed(&self.cassette_path, cassette.to_json().as_bytes())
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.cassette_path.display()))
    }
}

impl Shared {
    fn handle(&mut self, request: Request) -> Response {
        if let Some(call) = request.recorded {
            let exit = call.exit;
            self.recorded.push(call);
            return Response {
                output: Vec::new(),
                exit,
            };
        }
        debug_assert_eq!(self.mode, Mode::Replay);
        let argv: Vec<String> = request.argv.iter().map(|a| self.masker.mask(a)).collect();
        let stdin = self.masker.mask(&request.stdin);
        match self.player.answer(&argv, &stdin) {
            Ok(call) => Response {
                output: call.chunks(),
                exit: call.exit,
            },
            Err(miss) => {
                let mut message = format!("runbook: no recording for `{}`", miss.command_line);
                if !request.stdin.is_empty() {
                    message.push_str(" with this stdin");
                }
                if !miss.closest.is_empty() {
                    message.push_str("\n  closest recorded calls:");
                    for line in &miss.closest {
                        message.push_str(&format!("\n    {line}"));
                    }
                }
                message.push_str(&format!("\n  hint: record it with `{}`", self.record_hint));
                // The cell's failure names the call; the closest calls and
                // the hint are in its output once.
                let mut short = format!("no recording for `{}`", miss.command_line);
                if !request.stdin.is_empty() {
                    short.push_str(" with this stdin");
                }
                self.misses.push(short);
                Response::error(format!("{message}\n"), 127)
            }
        }
    }
}

impl SecretLog for Arc<Mutex<Shared>> {
    fn learn(&self, masker: &Masker) {
        self.lock().expect("not poisoned").masker = masker.clone();
    }
}

/// Why `tool` cannot be the name of a shim in the shim folder, if it
/// cannot: a shim is a link named as the command it answers for, so the
/// name is one file name of printable characters, never a path (`a/b`,
/// `../../x`), a hidden name, the socket's, or runbook's own.
pub fn not_a_tool_name(tool: &str) -> Option<&'static str> {
    if tool.is_empty() {
        Some("is empty")
    } else if tool.contains('/') {
        Some("is a path, not a command name")
    } else if tool.starts_with('.') {
        Some("starts with a dot")
    } else if tool.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("holds a space or a control character")
    } else if tool.len() > 255 {
        Some("is too long for a file name")
    } else if tool == "socket" || tool == "runbook" || tool.starts_with("runbook-") {
        Some("is a name runbook uses itself")
    } else {
        None
    }
}

/// Shim folders are `runbook-shims-PID-XXXX` in the temp folder.
const SHIM_PREFIX: &str = "runbook-shims-";

/// Removes the shim folders of runs that no longer exist (a run killed
/// with SIGKILL cannot remove its own), if they are this user's.
fn remove_stale_shim_folders() {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SHIM_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl MissLog for Arc<Mutex<Shared>> {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().expect("not poisoned").misses)
    }
}
