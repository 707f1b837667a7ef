//! The intercepted tool: when runbook is started under the name of a tool
//! it intercepts (`az`, `kubectl`, `helm`, through a link in the run's shim
//! folder), it asks the running runbook for the recorded answer instead of
//! starting the tool, or, when recording, runs the real tool and reports
//! what it did.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// Where the running runbook listens for intercepted calls.
pub const SOCKET_ENV: &str = "RUNBOOK_SHIM_SOCKET";
/// The PATH without the shim folder, to find the real tools when recording.
pub const REAL_PATH_ENV: &str = "RUNBOOK_SHIM_REAL_PATH";
/// `replay` or `record`.
pub const MODE_ENV: &str = "RUNBOOK_SHIM_MODE";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub argv: Vec<String>,
    pub stdin: String,
    /// When recording: what the real tool did.
    pub recorded: Option<crate::cassette::Call>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub stdout: String,
    pub stderr: String,
    pub exit: i32,
}

/// Runs as the shim when started under a tool's name inside a run; returns
/// the exit status, or `None` when this process is not a shim.
pub fn main_if_shim() -> Option<i32> {
    let socket = std::env::var_os(SOCKET_ENV)?;
    let argv0 = std::env::args_os().next()?;
    let name = Path::new(&argv0)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if name == "runbook" || name.starts_with("runbook-") {
        return None;
    }
    let mut argv: Vec<String> = std::env::args().collect();
    argv[0] = name.clone();
    let stdin = if reads_stdin(&argv) {
        read_stdin()
    } else {
        String::new()
    };
    let recorded = match std::env::var(MODE_ENV).as_deref() {
        Ok("record") => match run_real(&name, &argv, &stdin) {
            Ok(call) => Some(call),
            Err(message) => {
                eprintln!("runbook: {message}");
                return Some(127);
            }
        },
        _ => None,
    };
    let request = Request {
        argv,
        stdin,
        recorded: recorded.clone(),
    };
    let response = match ask(Path::new(&socket), &request) {
        Ok(response) => response,
        Err(e) => {
            eprintln!("runbook: cannot reach the run that intercepts {name}: {e}");
            return Some(127);
        }
    };
    if recorded.is_none() {
        // Like the real tool, die of SIGPIPE when the reader goes away
        // (`kubectl get pods | head -1`), rather than fail on the error.
        // (When recording, the call is reported before anything can die.)
        // SAFETY: restoring a signal's default disposition; no memory effects.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let _ = std::io::stdout().write_all(response.stdout.as_bytes());
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().write_all(response.stderr.as_bytes());
    }
    Some(response.exit)
}

/// Whether the call reads stdin: one of its arguments is `-`, ends in `=-`
/// or `@-`, or is `/dev/stdin` (`kubectl apply -f -`, `helm -f -`,
/// `az ... --body @-`). Other calls leave stdin alone, as the real tools
/// would, so a surrounding `while read` loop keeps its input.
pub fn reads_stdin(argv: &[String]) -> bool {
    argv.iter()
        .skip(1)
        .any(|a| a == "-" || a.ends_with("=-") || a.ends_with("@-") || a == "/dev/stdin")
}

fn read_stdin() -> String {
    let mut bytes = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn ask(socket: &Path, request: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(&reply).map_err(std::io::Error::other)
}

/// Runs the real tool, passing its output through live, and returns what
/// it did.
fn run_real(name: &str, argv: &[String], stdin: &str) -> Result<crate::cassette::Call, String> {
    let real_path = std::env::var(REAL_PATH_ENV).unwrap_or_default();
    let program = crate::tools::find_on_path(name, Some(&real_path))
        .ok_or_else(|| format!("cannot record {name}: it is not on the PATH"))?;
    let mut child = Command::new(program)
        .args(&argv[1..])
        .env("PATH", &real_path)
        .stdin(if stdin.is_empty() {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        let stdin = stdin.to_string();
        std::thread::spawn(move || {
            let _ = input.write_all(stdin.as_bytes());
        });
    }
    let tee = |mut from: Box<dyn Read + Send>, to_stderr: bool| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buffer = [0u8; 8192];
            while let Ok(n) = from.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buffer[..n]);
                if to_stderr {
                    let _ = std::io::stderr().write_all(&buffer[..n]);
                } else {
                    let _ = std::io::stdout().write_all(&buffer[..n]);
                    let _ = std::io::stdout().flush();
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        })
    };
    let out = tee(Box::new(child.stdout.take().expect("piped")), false);
    let err = tee(Box::new(child.stderr.take().expect("piped")), true);
    let status = child.wait().map_err(|e| format!("{name}: {e}"))?;
    Ok(crate::cassette::Call {
        argv: argv.to_vec(),
        stdin: stdin.to_string(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        exit: status.code().unwrap_or(1),
    })
}
