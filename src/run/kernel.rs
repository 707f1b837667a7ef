//! Interpreter processes that run cells. Shells and Python are long-lived
//! kernels (state carries from cell to cell, like a notebook); PowerShell
//! runs one process per cell.
//!
//! A kernel reads each cell's code from its stdin, which it moves to a high
//! file descriptor before pointing stdin at /dev/null, so cells never read
//! the next cell. It keeps copies of its stdout and stderr there too: after
//! a cell it puts them back (whatever the cell did with `exec >...` or
//! `exec 1>&-`) and prints a marker with the exit status on both; output
//! before the markers belongs to the cell.
//!
//! PowerShell gets its code on a pipe, never on the command line, where any
//! local user could read it (and the secrets in it) in `ps`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::document::Interpreter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a running cell produced next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Output(Stream, Vec<u8>),
    /// The cell finished with this exit status; the kernel lives on.
    Done(i32),
    /// The interpreter itself ended (e.g. `exit 3`) with this status.
    Exited(i32),
}

/// How to start an interpreter.
#[derive(Debug, Clone)]
pub struct Launch {
    pub interpreter: Interpreter,
    /// Working directory the kernel starts in (the runbook's folder).
    pub cwd: std::path::PathBuf,
    /// Variables for its environment.
    pub env: BTreeMap<String, String>,
    /// A PATH to use instead of the inherited one.
    pub path: Option<String>,
}

pub struct Kernel {
    interpreter: Interpreter,
    child: Option<Child>,
    control: Option<ChildStdin>,
    chunks: mpsc::Receiver<(Stream, Option<Vec<u8>>)>,
    marker: Vec<u8>,
    /// Bytes read but not yet handed out, per stream.
    pending: [Vec<u8>; 2],
    /// Exit status seen in each stream's marker for the running cell.
    finished: [Option<i32>; 2],
    closed: [bool; 2],
    /// Environment values the kernel already holds.
    exported: BTreeMap<String, String>,
    persistent: bool,
    launch: Launch,
    /// Set in the environment of the interpreter, so every process it
    /// starts can be found again, even one that left its process group.
    tag: String,
}

/// The environment variable that tags a kernel's processes.
pub const TAG_ENV: &str = "RUNBOOK_KERNEL";

/// Why a value that came out of a run (a capture, or the captures and
/// exports a state file holds) may not set the environment variable
/// `name` of later cells, if it may not: such a value would choose which
/// programs and libraries run, or make shells and interpreters run code,
/// so captured output would run as code. Names people set themselves
/// (params, `--set`, `export` in a cell) are not limited.
pub fn reserved(name: &str) -> Option<&'static str> {
    const RUN_CODE: [&str; 15] = [
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PROMPT_COMMAND",
        "PS4",
        "IFS",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
    ];
    // Where programs read configuration, start-up files and plugins from,
    // or the commands they run for credentials and hooks.
    const CONFIGURES: [&str; 21] = [
        "HOME",
        "ZDOTDIR",
        "INPUTRC",
        "KUBECONFIG",
        "AZURE_CONFIG_DIR",
        "DOCKER_CONFIG",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "GCONV_PATH",
        "LOCPATH",
        "OPENSSL_CONF",
        "CURL_HOME",
        "WGETRC",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "LESSOPEN",
        "LESSCLOSE",
        "SHELL",
        "TMPDIR",
        "CDPATH",
    ];
    const CONFIGURES_PREFIXES: [&str; 8] = [
        "PYTHON",
        "PERL5",
        "RUBY",
        "NODE_",
        "NPM_CONFIG_",
        "XDG_",
        "GIT_",
        "HELM_",
    ];
    if name == "PATH" {
        Some("it chooses which programs run")
    } else if name.starts_with("LD_") || name.starts_with("DYLD_") {
        Some("it loads libraries into every program")
    } else if RUN_CODE.contains(&name) || name.starts_with("BASH_FUNC_") {
        Some("it makes shells and interpreters run code")
    } else if CONFIGURES.contains(&name) || CONFIGURES_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        Some("it chooses the start-up files, configuration or plugins programs run")
    } else if name.starts_with("RUNBOOK_") {
        Some("runbook's own machinery uses it")
    } else {
        None
    }
}

/// Chunks of output in flight between the pipes and the run; a full
/// channel makes the cell wait, so memory stays bounded.
const CHANNEL: usize = 64;

impl Kernel {
    pub async fn start(launch: Launch) -> std::io::Result<Kernel> {
        let nonce = format!("{:x}{:x}", std::process::id(), rand_u64());
        let marker = format!("\x1eRB{nonce}:").into_bytes();
        let persistent = launch.interpreter != Interpreter::Pwsh;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let mut kernel = Kernel {
            interpreter: launch.interpreter,
            child: None,
            control: None,
            chunks: rx,
            marker,
            pending: [Vec::new(), Vec::new()],
            finished: [None, None],
            closed: [false, false],
            exported: launch.env.clone(),
            persistent,
            launch,
            tag: nonce.clone(),
        };
        if persistent {
            let bootstrap = bootstrap(kernel.interpreter, &nonce);
            let mut command = kernel.command(&bootstrap);
            command.stdin(Stdio::piped());
            kernel.attach(command, tx)?;
        }
        Ok(kernel)
    }

    pub fn interpreter(&self) -> Interpreter {
        self.interpreter
    }

    /// The value of [`TAG_ENV`] in this kernel's processes.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Process id of the interpreter, which leads its process group.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref()?.id().map(|p| p as i32)
    }

    fn command(&self, program_arg: &str) -> Command {
        let launch = &self.launch;
        let mut command = Command::new(launch.interpreter.program());
        match launch.interpreter {
            Interpreter::Bash => command.args(["--noprofile", "--norc", "-c", program_arg]),
            Interpreter::Zsh => command.args(["-f", "-c", program_arg]),
            Interpreter::Sh => command.args(["-c", program_arg]),
            Interpreter::Python => command.args(["-u", "-c", program_arg]),
            Interpreter::Pwsh => command.args([
                "-NoLogo",
                "-NoProfile",
                "-NonInteractive",
                "-Command",
                program_arg,
            ]),
        };
        command
            .current_dir(&launch.cwd)
            .envs(
                launch
                    .env
                    .iter()
                    .filter(|(name, _)| crate::parser::is_variable_name(name)),
            )
            .env(TAG_ENV, &self.tag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(path) = &launch.path {
            command.env("PATH", path);
        }
        // SAFETY: prctl only sets an attribute of the new process; it is
        // async-signal-safe and allocates nothing.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                crate::procs::restore_open_files();
                Ok(())
            });
        }
        command
    }

    fn attach(
        &mut self,
        mut command: Command,
        tx: mpsc::Sender<(Stream, Option<Vec<u8>>)>,
    ) -> std::io::Result<()> {
        let mut child = command.spawn()?;
        self.control = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(pump(stdout, Stream::Stdout, tx.clone()));
        tokio::spawn(pump(stderr, Stream::Stderr, tx));
        self.child = Some(child);
        self.closed = [false, false];
        Ok(())
    }

    /// Starts running `code`; its output then comes from [`Kernel::next`].
    /// `env` is the environment the cell should see, `cwd` a folder to run
    /// this one cell in.
    pub async fn run(
        &mut self,
        code: &str,
        env: &BTreeMap<String, String>,
        cwd: Option<&Path>,
    ) -> std::io::Result<()> {
        self.finished = [None, None];
        if !self.persistent {
            return self.run_once(code, env, cwd);
        }
        let script = self.script(code, env, cwd);
        let payload = match self.interpreter {
            Interpreter::Bash => {
                let mut bytes = script.into_bytes();
                bytes.retain(|&b| b != 0);
                bytes.push(0);
                bytes
            }
            _ => {
                let mut bytes = format!("{}\n", script.len()).into_bytes();
                bytes.extend(script.into_bytes());
                bytes
            }
        };
        let control = self
            .control
            .as_mut()
            .ok_or_else(|| std::io::Error::other("kernel has no control pipe"))?;
        control.write_all(&payload).await?;
        control.flush().await?;
        Ok(())
    }

    /// Starts a one-cell process that reads its code from a pipe on its
    /// stdin, which is then at its end: the cell reads nothing.
    fn run_once(
        &mut self,
        code: &str,
        env: &BTreeMap<String, String>,
        cwd: Option<&Path>,
    ) -> std::io::Result<()> {
        let mut command = self.command(PWSH_BOOTSTRAP);
        command.envs(env).stdin(Stdio::piped());
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let (tx, rx) = mpsc::channel(CHANNEL);
        self.chunks = rx;
        self.attach(command, tx)?;
        if let Some(mut input) = self.control.take() {
            let code = code.as_bytes().to_vec();
            tokio::spawn(async move {
                let _ = input.write_all(&code).await;
            });
        }
        Ok(())
    }

    /// The text sent to a persistent kernel for one cell: exports of
    /// changed variables, then the cell, run in `cwd` if given.
    fn script(&mut self, code: &str, env: &BTreeMap<String, String>, cwd: Option<&Path>) -> String {
        let changed: Vec<(&String, &String)> = env
            .iter()
            .filter(|(k, v)| self.exported.get(*k) != Some(*v))
            .collect();
        let mut script = String::new();
        if self.interpreter == Interpreter::Python {
            if !changed.is_empty() {
                let map: serde_json::Map<String, serde_json::Value> = changed
                    .iter()
                    .map(|(k, v)| ((*k).clone(), serde_json::Value::from(v.as_str())))
                    .collect();
                script.push_str(&format!(
                    "__import__('os').environ.update({})\n",
                    serde_json::Value::Object(map)
                ));
            }
            match cwd {
                Some(dir) => {
                    let dir = serde_json::Value::from(dir.to_string_lossy().as_ref()).to_string();
                    let code = serde_json::Value::from(code).to_string();
                    script.push_str(&format!("__rb_run({code}, {dir})\n"));
                }
                None => script.push_str(code),
            }
        } else {
            // Only names a shell can hold: nothing else is ever set, and
            // no name can add code to the script.
            for (name, value) in changed
                .iter()
                .filter(|(name, _)| crate::parser::is_variable_name(name))
            {
                script.push_str(&format!(
                    "export {name}={}\n",
                    crate::template::shell_quote(value)
                ));
            }
            match cwd {
                Some(dir) => {
                    let dir = crate::template::shell_quote(&dir.to_string_lossy());
                    script.push_str(&format!(
                        "__rb_prev=$PWD; cd -- {dir} && {{\n{code}\n}}; __rb_status=$?; cd -- \"$__rb_prev\"; (exit $__rb_status)\n"
                    ));
                }
                None => script.push_str(code),
            }
        }
        for (name, value) in changed {
            self.exported.insert(name.clone(), value.clone());
        }
        script
    }

    /// The next piece of output, or the cell's end.
    pub async fn next(&mut self) -> Step {
        let mut streams = [Stream::Stdout, Stream::Stderr];
        loop {
            for stream in streams {
                if let Some(step) = self.take_pending(stream) {
                    return step;
                }
            }
            if self.finished.iter().all(Option::is_some) {
                let status = self.finished[0].expect("checked");
                self.finished = [None, None];
                return Step::Done(status);
            }
            if self.closed.iter().all(|c| *c) {
                let status = match self.child.as_mut() {
                    Some(child) => child.wait().await.map(exit_code).unwrap_or(-1),
                    None => -1,
                };
                self.control = None;
                return if self.persistent {
                    Step::Exited(status)
                } else {
                    Step::Done(status)
                };
            }
            match self.chunks.recv().await {
                Some((stream, Some(bytes))) => {
                    self.pending[stream as usize].extend(bytes);
                    // Hand out what just arrived first, to keep the order
                    // in which the two streams were written.
                    streams = if stream == Stream::Stdout {
                        [Stream::Stdout, Stream::Stderr]
                    } else {
                        [Stream::Stderr, Stream::Stdout]
                    };
                }
                Some((stream, None)) => self.closed[stream as usize] = true,
                None => self.closed = [true, true],
            }
        }
    }

    /// Hands out buffered bytes up to a marker (or up to a possible start
    /// of one), recording the status a complete marker carries.
    fn take_pending(&mut self, stream: Stream) -> Option<Step> {
        let i = stream as usize;
        {
            if self.finished[i].is_some() || self.pending[i].is_empty() {
                return None;
            }
            let buffer = &mut self.pending[i];
            if let Some(at) = find(buffer, &self.marker) {
                let rest = &buffer[at + self.marker.len()..];
                if let Some(end) = find(rest, b"\x1e\n") {
                    let status = std::str::from_utf8(&rest[..end])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(-1);
                    let output: Vec<u8> = buffer[..at].to_vec();
                    let after = at + self.marker.len() + end + 2;
                    buffer.drain(..after);
                    self.finished[i] = Some(status);
                    return (!output.is_empty()).then_some(Step::Output(stream, output));
                }
            }
            // Hold back from a record separator that may start a marker.
            let keep_from = match buffer.iter().rposition(|&b| b == 0x1e) {
                Some(pos)
                    if self
                        .marker
                        .starts_with(&buffer[pos..buffer.len().min(pos + self.marker.len())])
                        || find(&buffer[pos..], b"\n").is_none() =>
                {
                    pos
                }
                _ => buffer.len(),
            };
            if keep_from > 0 {
                let output: Vec<u8> = buffer.drain(..keep_from).collect();
                return Some(Step::Output(stream, output));
            }
        }
        None
    }

    /// Whether the interpreter itself has exited; what it started in the
    /// background may still hold its pipes open.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))))
    }

    /// Lets go of a kernel whose interpreter has exited, leaving what it
    /// started in the background running until the run ends.
    pub async fn release(mut self) {
        self.control = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.wait().await;
        }
    }

    /// Ends the kernel: closes its input, then kills its process group.
    pub async fn shutdown(mut self) {
        self.control = None;
        if let Some(pid) = self.pid() {
            crate::procs::signal_group(pid, libc::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait().await;
        }
    }
}

async fn pump(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Option<Vec<u8>>)>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = tx.send((stream, None)).await;
                return;
            }
            Ok(n) => {
                if tx.send((stream, Some(buffer[..n].to_vec()))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// What `pwsh -Command` runs: the cell's code, read from stdin to its end
/// and dot-sourced, so `exit N` and `$?` behave as in a script.
const PWSH_BOOTSTRAP: &str =
    "$__rb_code = [Console]::In.ReadToEnd(); . ([scriptblock]::Create($__rb_code))";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The loop a persistent kernel runs. The descriptors it keeps for itself
/// are high ones (63, 62, 61) that cells leave alone, or the highest the
/// open-files limit allows; when it cannot keep them the kernel says so and
/// exits with 126, so a cell never passes without having run.
fn bootstrap(interpreter: Interpreter, nonce: &str) -> String {
    let marker = format!(r"printf '\036RB{nonce}:%s\036\n' ");
    let top = crate::procs::cells_open_files().clamp(6, 64) - 1;
    let (control, out, err) = (top, top - 1, top - 2);
    let cannot = format!(
        "|| {{ echo \"runbook: the kernel cannot keep its descriptors {control}, {out} and {err} (open files limit: $(ulimit -n))\" >&2; exit 126; }}"
    );
    match interpreter {
        // bash takes descriptors above 9; sh (dash) only single digits.
        Interpreter::Bash => format!(
            "exec {control}<&0 {out}>&1 {err}>&2 {cannot}\n\
             exec 0</dev/null\n\
             while IFS= read -r -d '' -u {control} __rb_cmd; do\n\
             eval \"$__rb_cmd\"\n\
             __rb_rc=$?\n\
             exec 1>&{out} 2>&{err}\n\
             {marker}\"$__rb_rc\"\n\
             {marker}\"$__rb_rc\" >&2\n\
             done\n"
        ),
        Interpreter::Sh | Interpreter::Zsh => format!(
            "exec 9<&0 8>&1 7>&2 {cannot}\n\
             exec 0</dev/null\n\
             while IFS= read -r __rb_n <&9; do\n\
             __rb_cmd=$(head -c \"$__rb_n\" <&9)\n\
             eval \"$__rb_cmd\"\n\
             __rb_rc=$?\n\
             exec 1>&8 2>&7\n\
             {marker}\"$__rb_rc\"\n\
             {marker}\"$__rb_rc\" >&2\n\
             done\n"
        ),
        Interpreter::Python => format!(
            r#"
import sys
# The kernel's own modules come from the standard library, never from a
# file of the same name in the runbook's folder; cells still import from it.
__rb_path = sys.path[:]
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
import os, traceback
sys.path[:] = __rb_path
__rb_ctl = os.fdopen(os.dup2(0, {control}, inheritable=False), "rb", buffering=0)
__rb_out = os.dup2(1, {out}, inheritable=False)
__rb_err = os.dup2(2, {err}, inheritable=False)
__rb_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(__rb_null, 0)
sys.stdin = open(os.devnull)
def __rb_run(code, cwd=None):
    before = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        exec(compile(code, "<cell>", "exec"), __rb_globals)
    finally:
        if cwd is not None:
            os.chdir(before)
__rb_globals = {{"__name__": "__main__", "__rb_run": __rb_run}}
def __rb_read(n):
    data = b""
    while len(data) < n:
        chunk = __rb_ctl.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
while True:
    header = b""
    while not header.endswith(b"\n"):
        c = __rb_ctl.read(1)
        if not c:
            sys.exit(0)
        header += c
    code = __rb_read(int(header)).decode()
    rc = 0
    try:
        exec(compile(code, "<cell>", "exec"), __rb_globals)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        rc = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os.dup2(__rb_out, 1)
    os.dup2(__rb_err, 2)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    mark = ("\x1eRB{nonce}:%d\x1e\n" % rc).encode()
    os.write(1, mark)
    os.write(2, mark)
"#
        ),
        Interpreter::Pwsh => String::new(),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}
