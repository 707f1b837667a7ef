//! `runbook serve` figures: the server's time to build the lab's page
//! model (what the page fetches: parse, checks, prose to sanitised HTML,
//! JSON), the time from a cell printing a line to that line reaching a
//! connected client, and the server's memory with the lab open and run.
//!
//! Run with `cargo bench --bench serve`. Prints the figures; asserts
//! nothing, since timings on shared machines are noisy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Server {
    child: Child,
    port: u16,
    cookie: String,
}

impl Server {
    fn start(dir: &Path, file: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(["serve", file, "--port", "0"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut url = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        let rest = url.trim().trim_start_matches("http://127.0.0.1:");
        let port: u16 = rest.split('/').next().unwrap().parse().unwrap();
        let token = rest.split("token=").nth(1).unwrap().to_string();
        Server {
            child,
            port,
            cookie: format!("runbook-token-{port}={token}"),
        }
    }

    fn request(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            self.cookie,
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    fn events(&self) -> BufReader<TcpStream> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {}\r\n\r\n",
            self.port, self.cookie
        )
        .unwrap();
        BufReader::new(stream)
    }

    fn wait_idle(&self) {
        loop {
            let model = self.request("GET", "/api/model", "");
            if model.contains("\"queued\":0,\"busy\":false") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn memory(&self) -> (String, String) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_string())
                .unwrap_or_default()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for folder in ["runbooks", "fixtures"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        runbook::testing::copy_folder(&root.join(folder), &dir.path().join(folder)).unwrap();
    }

    // 1. The lab's page model, in the server (GET /api/model over loopback).
    let lab = Server::start(dir.path(), "runbooks/aks-workload-identity.md");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..100 {
        let started = Instant::now();
        size = lab.request("GET", "/api/model", "").len();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "lab page model (51 cells, {} KB): median {:.2} ms, p95 {:.2} ms over 100 requests",
        size / 1024,
        percentile(&times, 0.5),
        percentile(&times, 0.95)
    );

    // 3. Memory with the lab open (a stream connected), then run in full.
    let _stream = lab.events();
    let (rss, _) = lab.memory();
    lab.request("POST", "/api/run", r#"{"what":"all"}"#);
    lab.wait_idle();
    let (after, peak) = lab.memory();
    println!("server memory with the lab open: {rss} RSS; after Run all: {after} RSS, peak {peak}");
    drop(lab);

    // 2. From a line printed to the line at a connected client.
    std::fs::write(
        dir.path().join("ticks.md"),
        "```bash {id=ticks output=none}\nfor i in $(seq 300); do echo \"tick $(date +%s%N)\"; sleep 0.005; done\n```\n",
    )
    .unwrap();
    let ticks = Server::start(dir.path(), "ticks.md");
    let mut events = ticks.events();
    let mut line = String::new();
    while !line.contains("hello") {
        line.clear();
        events.read_line(&mut line).unwrap();
    }
    ticks.request("POST", "/api/run", r#"{"what":"cell","cell":"ticks"}"#);
    let mut delays = Vec::new();
    while delays.len() < 300 {
        line.clear();
        if events.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as f64;
        for part in line.split("tick ").skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(printed) = digits.parse::<f64>() {
                delays.push((now - printed) / 1e6);
            }
        }
    }
    delays.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "printed line to connected client ({} lines): median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.95),
        delays.last().unwrap()
    );
}
