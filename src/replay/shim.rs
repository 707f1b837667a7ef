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

use crate::cassette::Chunk;

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
    /// What to print, stream by stream, in order.
    pub output: Vec<Chunk>,
    pub exit: i32,
}

impl Response {
    /// An answer that only says something on stderr.
    pub fn error(message: String, exit: i32) -> Response {
        Response {
            output: vec![Chunk::Stderr(message)],
            exit,
        }
    }
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
        print_in_order(&response.output);
    }
    Some(response.exit)
}

/// Prints the chunks on their streams in order. Between two streams it
/// waits a moment, so a reader of both pipes sees them in that order too.
fn print_in_order(chunks: &[Chunk]) {
    let mut last: Option<bool> = None;
    for chunk in chunks {
        let is_stdout = matches!(chunk, Chunk::Stdout(_));
        if last.is_some_and(|was| was != is_stdout) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        last = Some(is_stdout);
        if is_stdout {
            let _ = std::io::stdout().write_all(chunk.text().as_bytes());
            let _ = std::io::stdout().flush();
        } else {
            let _ = std::io::stderr().write_all(chunk.text().as_bytes());
        }
    }
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
    // Both streams pass through live, and are kept in the order they came.
    let chunks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let tee = |mut from: Box<dyn Read + Send>, to_stderr: bool| {
        let chunks = chunks.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = from.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                let mut chunks = chunks.lock().expect("not poisoned");
                if to_stderr {
                    let _ = std::io::stderr().write_all(&buffer[..n]);
                    crate::cassette::push_chunk(&mut chunks, Chunk::Stderr(text));
                } else {
                    let _ = std::io::stdout().write_all(&buffer[..n]);
                    let _ = std::io::stdout().flush();
                    crate::cassette::push_chunk(&mut chunks, Chunk::Stdout(text));
                }
            }
        })
    };
    let out = tee(Box::new(child.stdout.take().expect("piped")), false);
    let err = tee(Box::new(child.stderr.take().expect("piped")), true);
    let status = child.wait().map_err(|e| format!("{name}: {e}"))?;
    let _ = (out.join(), err.join());
    let output = std::mem::take(&mut *chunks.lock().expect("not poisoned"));
    Ok(crate::cassette::Call {
        argv: argv.to_vec(),
        stdin: stdin.to_string(),
        stdout: String::new(),
        stderr: String::new(),
        output,
        exit: status.code().unwrap_or(1),
    })
}
