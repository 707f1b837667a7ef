//! `runbook serve` over real HTTP: the guard's refusals, live kernels,
//! streaming, edits, secrets, prompts, reloads and shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{assert_no_process, Test};

/// A running `runbook serve`.
struct Served {
    child: Child,
    port: u16,
    token: String,
    url: String,
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Served {
    fn start(test: &Test, file: &str, extra: &[&str]) -> Served {
        let mut args = vec!["serve", file, "--port", "0"];
        args.extend_from_slice(extra);
        let served = Served::launch(test.command(&args));
        assert!(
            served.url.starts_with("http://127.0.0.1:"),
            "printed {:?}",
            served.url
        );
        served
    }

    /// Starts `command` (a `runbook serve`) and reads the URL it prints.
    fn launch(mut command: Command) -> Served {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("runbook serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        let port = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|host| host.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("printed {url:?}"));
        let token = url.split("token=").nth(1).unwrap().to_string();
        Served {
            child,
            port,
            token,
            url,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cookie(&self) -> String {
        format!("runbook-token-{}={}", self.port, self.token)
    }

    /// A request with the cookie and this server's Host, plus `headers`.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let cookie = self.cookie();
        let host = self.host();
        let mut all: Vec<(&str, &str)> = vec![("Host", &host), ("Cookie", &cookie)];
        for (name, value) in headers {
            all.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            all.push((name, value));
        }
        all.retain(|(_, v)| !v.is_empty());
        let body = body.map(|b| b.to_string());
        if body.is_some()
            && !all
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            all.push(("Content-Type", "application/json"));
        }
        raw(self.port, method, path, &all, body.as_deref().unwrap_or(""))
    }

    fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], None)
    }

    fn post(&self, path: &str, body: Value) -> Response {
        self.send("POST", path, &[], Some(body))
    }

    fn model(&self) -> Value {
        let response = self.get("/api/model");
        assert_eq!(response.status, 200, "{}", response.body);
        serde_json::from_str(&response.body).unwrap()
    }

    /// Waits (up to 30 s) for the model to satisfy `ready`.
    #[track_caller]
    fn wait_for(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let model = self.model();
            if ready(&model) {
                return model;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; model: {model:#}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Runs cells and waits until nothing runs or waits.
    fn run(&self, what: &str, cell: &str) -> Value {
        let response = self.post("/api/run", json!({"what": what, "cell": cell}));
        assert_eq!(response.status, 202, "{}", response.body);
        self.idle()
    }

    fn idle(&self) -> Value {
        self.wait_for("the kernels to be idle", |m| {
            m["busy"] == false && m["queued"] == 0
        })
    }

    fn events(&self) -> Events {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.host(),
            self.cookie()
        )
        .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Events {
            stream,
            seen: String::new(),
        }
    }

    /// Ctrl-C, as a terminal sends it; returns the exit status and what
    /// the server printed on stderr.
    fn interrupt(mut self) -> (i32, String) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).unwrap();
        }
        (code, stderr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The event stream as it arrives.
struct Events {
    stream: TcpStream,
    seen: String,
}

impl Events {
    /// Reads until `needle` has arrived (up to 30 s); returns all so far.
    #[track_caller]
    fn until(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buffer = [0u8; 4096];
        while !self.seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the stream:\n{}",
                self.seen
            );
            match self.stream.read(&mut buffer) {
                Ok(0) => panic!("stream closed:\n{}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
                Err(_) => {}
            }
        }
        self.seen.clone()
    }
}

/// One HTTP/1.1 request on a fresh connection.
fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

const SIMPLE: &str = "# Demo\n\n```bash {id=set}\nX=42\nexport GREETING=hello\necho set\n```\n\n```bash {id=use}\necho \"X is $X, $GREETING\"\n```\n";

#[test]
fn every_request_needs_the_token_the_host_and_no_foreign_origin() {
    let test = Test::new();
    test.write("doc.md", "```bash\ntouch ran\n```\n");
    let served = Served::start(&test, "doc.md", &[]);
    let host = served.host();
    let no_cookie = [("Cookie", "")];

    // No token, a wrong token (cookie or URL), or a token from another port.
    assert_eq!(served.send("GET", "/", &no_cookie, None).status, 403);
    assert_eq!(
        served.send("GET", "/api/model", &no_cookie, None).status,
        403
    );
    let wrong = format!("runbook-token-{}={}", served.port, "0".repeat(64));
    assert_eq!(
        served
            .send("GET", "/api/model", &[("Cookie", &wrong)], None)
            .status,
        403
    );
    assert_eq!(
        served.send("GET", "/?token=abc", &no_cookie, None).status,
        403
    );
    let other_port = format!("runbook-token-1={}", served.token);
    assert_eq!(
        served
            .send("GET", "/api/model", &[("Cookie", &other_port)], None)
            .status,
        403
    );

    // The URL's token becomes an HttpOnly, SameSite=Strict cookie.
    let first = served.send(
        "GET",
        &format!("/?token={}", served.token),
        &no_cookie,
        None,
    );
    assert_eq!(first.status, 303);
    assert!(first.head.contains("location: /\r\n"), "{}", first.head);
    let cookie_line = format!(
        "set-cookie: {}; httponly; samesite=strict; path=/",
        served.cookie().to_ascii_lowercase()
    );
    assert!(first.head.contains(&cookie_line), "{}", first.head);
    // ... which counts on every later request.
    let page = served.get("/");
    assert_eq!(page.status, 200);
    assert!(page
        .body
        .contains("<script type=\"module\" src=\"/app.js\"></script>"));

    // Wrong Host (DNS rebinding), even with the token.
    for bad in [
        "evil.example:80",
        "evil.example",
        "127.0.0.1:1",
        "127.0.0.1.evil.example",
    ] {
        assert_eq!(
            served
                .send("GET", "/api/model", &[("Host", bad)], None)
                .status,
            403,
            "{bad}"
        );
    }
    let localhost = format!("localhost:{}", served.port);
    assert_eq!(
        served
            .send("GET", "/api/model", &[("Host", &localhost)], None)
            .status,
        200
    );

    // A foreign Origin, on a read, on a change and on the stream.
    for origin in [
        "http://evil.example",
        "null",
        "https://127.0.0.1.evil.example",
    ] {
        for (method, path, body) in [
            ("GET", "/api/model", None),
            ("GET", "/api/events", None),
            ("POST", "/api/run", Some(json!({"what": "all"}))),
        ] {
            let response = served.send(method, path, &[("Origin", origin)], body);
            assert_eq!(response.status, 403, "{method} {path} from {origin}");
        }
    }
    // Another site, or another port of this host (same-site to a browser).
    for site in ["cross-site", "same-site"] {
        let response = served.send(
            "POST",
            "/api/run",
            &[("Sec-Fetch-Site", site)],
            Some(json!({"what": "all"})),
        );
        assert_eq!(response.status, 403, "{site}");
    }
    for site in ["same-origin", "none"] {
        assert_eq!(
            served
                .send("GET", "/api/model", &[("Sec-Fetch-Site", site)], None)
                .status,
            200,
            "{site}"
        );
    }
    let own = format!("http://{host}");
    assert_eq!(
        served
            .send("GET", "/api/model", &[("Origin", &own)], None)
            .status,
        200
    );

    // Changes are POST only, and a form's content type is not accepted.
    for path in [
        "/api/run",
        "/api/stop",
        "/api/restart",
        "/api/cells/1",
        "/api/answer",
        "/api/secret",
    ] {
        assert_eq!(served.get(path).status, 405, "GET {path}");
    }
    let form = served.send(
        "POST",
        "/api/run",
        &[("Content-Type", "text/plain")],
        Some(json!({"what": "all"})),
    );
    assert_eq!(form.status, 415);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!test.path("ran").exists(), "a refused request ran a cell");
    assert_eq!(test.read("doc.md"), "```bash\ntouch ran\n```\n");

    // Every response carries the policy that forbids inline script.
    for response in [page, first, served.get("/app.js")] {
        assert!(
            response
                .head
                .contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{}",
            response.head
        );
        assert!(!response.head.contains("unsafe-inline"));
        assert!(response.head.contains("x-content-type-options: nosniff"));
    }
    // The page itself holds no inline script or style to allow.
    let html = served.get("/").body;
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains(" on") || !html.contains("onclick="));
    assert!(!html.contains("style="));

    // With the token, the same request runs.
    served.run("all", "");
    assert!(test.path("ran").exists());
}

#[test]
fn markdown_from_the_internet_cannot_script_the_page() {
    let test = Test::new();
    test.write(
        "doc.md",
        "# Lab\n\n<script>fetch('/api/run',{method:'POST'})</script>\n\n<img src=x onerror=\"fetch('/api/run')\">\n\n[click](javascript:alert(1))\n\n<iframe src=\"https://evil.example\"></iframe>\n\n<form action=\"/api/run\" method=\"post\"><button>go</button></form>\n\n<a href=\"#\" onclick=\"alert(1)\" style=\"position:fixed\">x</a>\n\n<details><summary>Kept</summary>\n\n*fine*\n\n</details>\n\n```bash\necho '<script>alert(1)</script>'\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    let model = served.model();
    let prose: String = model["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["html"].as_str())
        .collect();
    for bad in [
        "<script",
        "onerror",
        "onclick",
        "javascript:",
        "<iframe",
        "<form",
        "style=",
        "fetch(",
    ] {
        assert!(!prose.contains(bad), "{bad} reached the page: {prose}");
    }
    assert!(
        prose.contains("<details>") && prose.contains("<em>fine</em>"),
        "{prose}"
    );
    // Code is sent as data, for the page to show as text.
    assert_eq!(
        model["cells"][0]["body"],
        "echo '<script>alert(1)</script>'\n"
    );
}

#[test]
fn kernels_live_between_requests_and_the_file_is_the_notebook() {
    let test = Test::new();
    test.write("doc.md", SIMPLE);
    test.write("copy/doc.md", SIMPLE);
    let served = Served::start(&test, "doc.md", &[]);
    served.run("cell", "set");
    let model = served.run("cell", "use");
    // The second request ran in the kernel the first one left.
    assert_eq!(model["cells"][1]["output"]["text"], "X is 42, hello");
    assert_eq!(model["cells"][1]["status"], "passed");
    assert_eq!(model["cells"][1]["stale"], false);
    let greeting = model["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "GREETING")
        .expect("exported variable listed");
    assert_eq!(greeting["value"], "hello");
    assert_eq!(greeting["from"], "cell set");
    assert!(model["variables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["name"] != "RUNBOOK_KERNEL"));
    // Exactly what `runbook run` writes.
    test.command(&["run", "copy/doc.md"]).output().unwrap();
    assert_eq!(test.read("doc.md"), test.read("copy/doc.md"));
    // `runbook status` reads the same state.
    let status = test.run(&["status", "doc.md"]).code(0);
    assert!(status.stdout.contains("passed"), "{}", status.stdout);

    // Restart: a fresh kernel without the shell's variables.
    assert_eq!(served.post("/api/restart", json!({})).status, 202);
    std::thread::sleep(Duration::from_millis(200));
    let model = served.run("cell", "use");
    assert_eq!(model["cells"][1]["output"]["text"], "X is , ");
}

#[test]
fn set_and_params_work_as_for_run() {
    let test = Test::new();
    test.write(
        "doc.md",
        "---\nrunbook:\n  params:\n    A: from-front-matter\n    B: b\n    C: c\n---\n```bash {id=show}\necho \"$A {{ B }} $C\"\n```\n",
    );
    test.write("values.yaml", "B: from-params-file\n");
    let served = Served::start(
        &test,
        "doc.md",
        &["--set", "C=from-set", "--params", "values.yaml"],
    );
    let model = served.run("cell", "show");
    assert_eq!(
        model["cells"][0]["output"]["text"],
        "from-front-matter from-params-file from-set"
    );
    let from: Vec<(String, String)> = model["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().into(),
                v["from"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(from.contains(&("C".into(), "--set".into())), "{from:?}");
}

#[test]
fn run_to_here_and_run_from_here_take_their_ranges() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {id=a}\ntouch a\n```\n\n```bash {id=b}\ntouch b\n```\n\n```bash {id=c}\ntouch c\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    served.run("to", "b");
    assert!(test.path("a").exists() && test.path("b").exists() && !test.path("c").exists());
    std::fs::remove_file(test.path("a")).unwrap();
    std::fs::remove_file(test.path("b")).unwrap();
    served.run("from", "c");
    assert!(!test.path("a").exists() && !test.path("b").exists() && test.path("c").exists());
    let bad = served.post("/api/run", json!({"what": "sideways"}));
    assert_eq!(bad.status, 400);
    served.post("/api/run", json!({"what": "cell", "cell": "nope"}));
    let model = served.wait_for("the refusal", |m| {
        !m["refused"].as_array().unwrap().is_empty()
    });
    assert!(
        model["refused"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{model:#}"
    );
}

#[test]
fn output_streams_to_the_page_while_the_cell_prints() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {id=slow}\necho first\nwhile [ ! -e go ]; do sleep 0.02; done\necho second\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    let mut events = served.events();
    events.until("hello");
    served.post("/api/run", json!({"what": "cell", "cell": "slow"}));
    // The first line arrives while the cell is still waiting to go on.
    let seen = events.until(r#""text":"first\n""#);
    assert!(!seen.contains("second"));
    let model = served.model();
    assert_eq!(model["running"], "slow");
    assert_eq!(model["cells"][0]["run"]["text"], "first\n");
    // A second page opened now sees the same run.
    let mut other = served.events();
    std::fs::write(test.path("go"), "").unwrap();
    other.until(r#""text":"second\n""#);
    events.until(r#""text":"second\n""#);
    let model = served.idle();
    assert_eq!(model["cells"][0]["output"]["text"], "first\nsecond");
}

#[test]
fn stop_interrupts_the_running_cell_and_drops_the_queue() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {id=nap}\necho napping\nsleep 30 # serve-stop-marker\n```\n\n```bash {id=after}\ntouch after-ran\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    served.post("/api/run", json!({"what": "all"}));
    served.post("/api/run", json!({"what": "cell", "cell": "after"}));
    served.wait_for("the nap to start", |m| {
        m["cells"][0]["run"]["text"] == "napping\n"
    });
    assert_eq!(served.post("/api/stop", json!({})).status, 202);
    let model = served.idle();
    assert_eq!(model["cells"][0]["status"], "interrupted");
    assert_eq!(model["cells"][0]["output"]["exit"], 130);
    assert!(
        !test.path("after-ran").exists(),
        "a queued request ran after stop"
    );
    assert_no_process("serve-stop-marker");
    // The next request runs as usual.
    served.run("cell", "after");
    assert!(test.path("after-ran").exists());
}

#[test]
fn an_edit_in_the_page_splices_that_cell_only() {
    let test = Test::new();
    let source = "---\ntitle: kept\n---\n# T\n\n- step\n\n  ```bash {id=a}\n  echo one\n  ```\n\n```sh {id=b}\necho two\n```\n";
    test.write("doc.md", source);
    let served = Served::start(&test, "doc.md", &[]);
    let saved = served.post(
        "/api/cells/a",
        json!({"was": "echo one\n", "body": "echo uno\n\necho dos\n"}),
    );
    assert_eq!(saved.status, 204, "{}", saved.body);
    assert_eq!(
        test.read("doc.md"),
        source.replace("  echo one\n", "  echo uno\n\n  echo dos\n")
    );
    // Code the page showed that is no longer on disk is not overwritten.
    let stale = served.post(
        "/api/cells/a",
        json!({"was": "echo one\n", "body": "echo mine\n"}),
    );
    assert_eq!(stale.status, 409);
    assert!(stale.body.contains("changed on disk"), "{}", stale.body);
    // Nor is code that would close the fence and change the document.
    let breaking = served.post(
        "/api/cells/b",
        json!({"was": "echo two\n", "body": "echo x\n```\n\n```bash\nrm -rf ~\n"}),
    );
    assert_eq!(breaking.status, 409);
    assert_eq!(
        test.read("doc.md"),
        source.replace("  echo one\n", "  echo uno\n\n  echo dos\n")
    );
    let model = served.run("cell", "a");
    assert_eq!(model["cells"][0]["output"]["text"], "uno\ndos");
}

#[test]
fn a_file_saved_by_an_editor_reloads_the_page_and_is_never_overwritten() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {id=a}\necho a\nwhile [ ! -e go ]; do sleep 0.02; done\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    let mut events = served.events();
    events.until("hello");
    assert!(!events.seen.contains("model"));
    test.write(
        "doc.md",
        "Intro.\n\n```bash {id=a}\necho a\nwhile [ ! -e go ]; do sleep 0.02; done\n```\n",
    );
    // The stream tells the page; the page fetches the model again.
    events.until(r#"{"type":"model"}"#);
    served.wait_for("the new prose", |m| {
        m["pieces"][0]["html"] == "<p>Intro.</p>\n"
    });

    // An edit saved while the cell runs keeps its text; the output that
    // no longer belongs to it is not recorded.
    served.post("/api/run", json!({"what": "cell", "cell": "a"}));
    served.wait_for("the cell to start", |m| m["running"] == "a");
    let edited = "Intro.\n\n```bash {id=a}\necho b\n```\n";
    test.write("doc.md", edited);
    std::fs::write(test.path("go"), "").unwrap();
    let model = served.idle();
    assert_eq!(test.read("doc.md"), edited);
    let message = model["cells"][0]["run"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("changed on disk while it ran"),
        "{model:#}"
    );
}

#[test]
fn a_cell_renumbered_by_an_edit_does_not_take_the_old_cells_run() {
    let test = Test::new();
    test.write("doc.md", "```bash\necho first\n```\n");
    let served = Served::start(&test, "doc.md", &[]);
    let model = served.run("cell", "1");
    assert_eq!(model["cells"][0]["run"]["text"], "first\n");
    test.write(
        "doc.md",
        "```bash\necho new\n```\n\n```bash\necho first\n```\n```output\nfirst\n```\n",
    );
    let model = served.wait_for("the new cell", |m| {
        m["cells"].as_array().unwrap().len() == 2
    });
    assert!(model["cells"][0]["run"].is_null(), "{model:#}");
    // The state knows a cell 1 ran, with other code: stale.
    assert_eq!(model["cells"][0]["stale"], true);
}

#[test]
fn secrets_never_reach_the_page() {
    let test = Test::new();
    test.write(
        "doc.md",
        "---\nrunbook:\n  secrets: [PW, API_KEY]\n---\n```bash {id=login}\necho \"pw=$PW\"\n```\n\n```bash {id=token capture=TOKEN secret}\necho tok\"\"-9f8e7d6c5b4a\n```\n\n```bash {id=use}\necho \"token {{ TOKEN }} key $API_KEY\"\n```\n",
    );
    let served = Served::start(&test, "doc.md", &["--secret", "PW=hunter2-horse-battery"]);
    let mut events = served.events();
    events.until("hello");
    // API_KEY has no value: the page asks for it, and runs are refused.
    let model = served.model();
    assert_eq!(model["missing_secrets"], json!(["API_KEY"]));
    served.post("/api/run", json!({"what": "all"}));
    let model = served.wait_for("the refusal", |m| {
        !m["refused"].as_array().unwrap().is_empty()
    });
    assert!(
        model["refused"][0]["message"]
            .as_str()
            .unwrap()
            .contains("API_KEY"),
        "{model:#}"
    );
    // Only declared secrets are taken.
    assert_eq!(
        served
            .post("/api/secret", json!({"name": "PATH", "value": "/x"}))
            .status,
        400
    );
    assert_eq!(
        served
            .post(
                "/api/secret",
                json!({"name": "API_KEY", "value": "key-5a4b3c2d1e"})
            )
            .status,
        202
    );
    served.wait_for("the secret", |m| m["missing_secrets"] == json!([]));
    let model = served.run("all", "");
    assert_eq!(model["cells"][2]["status"], "passed", "{model:#}");
    let mut everything = events.until(r#""cell":"use""#);
    everything.push_str(&model.to_string());
    everything.push_str(&served.get("/api/model").body);
    everything.push_str(&test.read("doc.md"));
    for file in crate::support::walk(test.dir.path()) {
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(file).unwrap()));
    }
    for secret in [
        "hunter2-horse-battery",
        "tok-9f8e7d6c5b4a",
        "key-5a4b3c2d1e",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} reached the page or the disk"
        );
    }
    let variables = model["variables"].to_string();
    for name in ["PW", "TOKEN", "API_KEY"] {
        assert!(
            variables.contains(&format!("[masked:{name}]")),
            "{variables}"
        );
    }
    assert!(test
        .read("doc.md")
        .contains("token [masked:TOKEN] key [masked:API_KEY]"));
}

#[test]
fn a_confirm_cell_asks_in_the_page() {
    let test = Test::new();
    test.write("doc.md", "```bash {id=risky confirm}\ntouch yes-ran\n```\n");
    let served = Served::start(&test, "doc.md", &[]);
    served.post("/api/run", json!({"what": "cell", "cell": "risky"}));
    let model = served.wait_for("the question", |m| !m["prompt"].is_null());
    assert_eq!(model["prompt"]["cell"], "risky");
    assert!(model["prompt"]["text"]
        .as_str()
        .unwrap()
        .contains("Run cell risky"));
    assert!(!test.path("yes-ran").exists());
    let id = model["prompt"]["id"].clone();
    assert_eq!(
        served
            .post("/api/answer", json!({"id": 999, "yes": true}))
            .status,
        409
    );
    assert_eq!(
        served
            .post("/api/answer", json!({"id": id, "yes": false}))
            .status,
        204
    );
    let model = served.idle();
    assert_eq!(model["cells"][0]["status"], "skipped");
    assert!(!test.path("yes-ran").exists());
    served.post("/api/run", json!({"what": "cell", "cell": "risky"}));
    let model = served.wait_for("the question", |m| !m["prompt"].is_null());
    served.post(
        "/api/answer",
        json!({"id": model["prompt"]["id"], "yes": true}),
    );
    let model = served.idle();
    assert_eq!(model["cells"][0]["status"], "passed");
    assert!(test.path("yes-ran").exists());
}

#[test]
fn errors_show_at_the_cell_they_belong_to() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {id=fine}\necho ok\n```\n\n```bash {id=bad}\necho {{ NOPE }}\n```\n\n```helm {id=tool}\nhelm version\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    let model = served.model();
    let problems = |i: usize| model["cells"][i]["problems"].to_string();
    assert_eq!(model["cells"][0]["problems"], json!([]));
    assert!(problems(1).contains("NOPE"), "{}", problems(1));
    assert_eq!(model["cells"][1]["problems"][0]["line"], 6);
    if which("helm").is_none() {
        assert!(problems(2).contains("helm"), "{}", problems(2));
    }
    served.post("/api/run", json!({"what": "cell", "cell": "bad"}));
    let model = served.wait_for("the refusal", |m| {
        !m["refused"].as_array().unwrap().is_empty()
    });
    assert!(model["refused"].to_string().contains("NOPE"));
    // A document that stops parsing shows why, at its line.
    test.write("doc.md", "# T\n\n```bash {timeout=forever}\necho\n```\n");
    let model = served.wait_for("the parse error", |m| {
        !m["problems"].as_array().unwrap().is_empty()
    });
    // The page keeps the document as it last parsed, the error on top.
    assert_eq!(model["cells"].as_array().unwrap().len(), 3);
    assert_eq!(model["problems"][0]["line"], 3);
    assert!(model["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("does not parse now"));
    // ... and nothing runs until it parses.
    served.post("/api/run", json!({"what": "cell", "cell": "fine"}));
    let model = served.wait_for("the refusal", |m| {
        m["refused"].to_string().contains("forever")
    });
    assert!(model["cells"][0]["run"].is_null());
    assert!(model["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("forever"));
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn ctrl_c_ends_every_kernel_and_what_they_started() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {id=bg}\nsleep 300 & # serve-ctrl-c-bg\necho started\n```\n\n```python {id=py}\nimport time\nprint('py', flush=True)\ntime.sleep(200) # serve-ctrl-c-py\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    served.run("cell", "bg");
    served.post("/api/run", json!({"what": "cell", "cell": "py"}));
    served.wait_for("python to print", |m| {
        m["cells"][1]["run"]["text"] == "py\n"
    });
    assert_eq!(served.interrupt().0, 0);
    assert_no_process("serve-ctrl-c-bg");
    assert_no_process("serve-ctrl-c-py");
    assert!(test.read("doc.md").contains("```output\nstarted\n```"));
}

#[test]
fn the_lab_runs_in_the_page_to_its_committed_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let test = Test::new();
    for folder in ["runbooks", "fixtures"] {
        std::fs::create_dir_all(test.path(folder)).unwrap();
        runbook::testing::copy_folder(&root.join(folder), &test.path(folder)).unwrap();
    }
    let served = Served::start(&test, "runbooks/aks-workload-identity.md", &[]);
    let model = served.run("all", "");
    let statuses: Vec<&str> = model["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap_or("never run"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "passed").count(),
        50,
        "{statuses:?}"
    );
    let committed =
        std::fs::read_to_string(root.join("runbooks/aks-workload-identity.md")).unwrap();
    assert_eq!(test.read("runbooks/aks-workload-identity.md"), committed);
}

#[test]
fn open_hands_the_url_to_the_browser_which_outlives_the_server() {
    let test = Test::new();
    test.write("doc.md", "```bash\necho hi\n```\n");
    let browser = test.write(
        "browser.sh",
        "#!/bin/sh\nprintf '%s' \"$1\" > opened.txt\nexec sleep 29\n",
    );
    crate::support::executable(&browser);
    let mut command = test.command(&["serve", "doc.md", "--port", "0", "--open"]);
    command.env("BROWSER", &browser);
    let served = Served::launch(command);
    let opened = test.path("opened.txt");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !opened.exists() || std::fs::read_to_string(&opened).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the browser was not started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), served.url);
    assert_eq!(served.interrupt().0, 0);
    // The browser is the user's: the server leaves it running.
    assert!(!crate::support::processes_with("sleep 29").is_empty());
    let _ = Command::new("pkill").args(["-f", "sleep 29"]).status();
}

#[test]
fn bad_input_is_refused_before_the_server_starts() {
    let test = Test::new();
    let doc = test.write("doc.md", "```bash\necho hi\n```\n");
    std::fs::set_permissions(&doc, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let run = test.run(&["serve", "doc.md", "--port", "0"]).code(2);
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
    assert_eq!(run.stdout, "", "no URL for a server that did not start");
    test.write("bad.md", "```bash {timeout=soon}\necho\n```\n");
    let run = test.run(&["serve", "bad.md", "--port", "0"]).code(2);
    assert!(run.stderr.contains("bad.md:1"), "{}", run.stderr);
    test.write("ok.md", "```bash\necho\n```\n");
    let run = test
        .run(&["serve", "ok.md", "--port", "0", "--max-output", "0"])
        .code(2);
    assert!(run.stderr.contains("output limit"), "{}", run.stderr);
    let run = test.run(&["serve", "missing.md", "--port", "0"]).code(2);
    assert!(run.stderr.contains("missing.md"), "{}", run.stderr);
}

#[test]
fn a_non_loopback_address_is_served_with_a_warning() {
    let test = Test::new();
    test.write("doc.md", "```bash\necho hi\n```\n");
    let served =
        Served::launch(test.command(&["serve", "doc.md", "--port", "0", "--host", "0.0.0.0"]));
    assert!(served.url.starts_with("http://0.0.0.0:"), "{}", served.url);
    let (port, cookie) = (served.port, served.cookie());
    // Reached by an address, allowed; by a name that is not this machine's, refused.
    let by_ip = raw(
        port,
        "GET",
        "/api/model",
        &[("Host", &format!("127.0.0.1:{port}")), ("Cookie", &cookie)],
        "",
    );
    assert_eq!(by_ip.status, 200);
    let by_name = raw(
        port,
        "GET",
        "/api/model",
        &[
            ("Host", &format!("rebound.example:{port}")),
            ("Cookie", &cookie),
        ],
        "",
    );
    assert_eq!(by_name.status, 403);
    let (code, stderr) = served.interrupt();
    assert_eq!(code, 0);
    assert!(
        stderr.contains("warning: listening on 0.0.0.0, not loopback"),
        "{stderr}"
    );
}

/// `GET path` with the page's cookie, answered within `limit` (tried
/// again while the server does not answer); its status, or why not.
fn get_within(served: &Served, path: &str, limit: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = (|| -> std::io::Result<u16> {
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], served.port));
            let mut stream = TcpStream::connect_timeout(&address, left)?;
            stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nConnection: close\r\n\r\n",
                served.host(),
                served.cookie()
            )?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0))
        })();
        match attempt {
            Ok(status) if status != 0 => return Ok(status),
            Ok(_) => last = "an empty answer".into(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last)
}

#[test]
fn idle_and_half_open_connections_cannot_starve_the_page() {
    let test = Test::new();
    test.write("doc.md", SIMPLE);
    // Fewer file descriptors than connections, as a default `ulimit -n`
    // of 1024 is fewer than the connections any local user may open.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n 256; exec '{}' serve doc.md --port 0",
            env!("CARGO_BIN_EXE_runbook")
        ))
        .current_dir(test.dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let served = Served::launch(command);
    assert_eq!(
        get_within(&served, "/api/model", Duration::from_secs(30)),
        Ok(200)
    );
    // 1,000 connections to loopback: half say nothing, half send half a
    // request head. Opening stops early if the server stops accepting.
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], served.port));
    let mut idle = Vec::new();
    let mut refused_in_a_row = 0;
    for i in 0..1000 {
        match TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(mut stream) => {
                refused_in_a_row = 0;
                if i % 2 == 1 {
                    let _ = stream.write_all(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                }
                idle.push(stream);
            }
            Err(_) => {
                refused_in_a_row += 1;
                if refused_in_a_row == 20 {
                    break;
                }
            }
        }
    }
    // The page is still answered while they all stay open.
    assert_eq!(
        get_within(&served, "/api/model", Duration::from_secs(30)),
        Ok(200),
        "{} idle connections open",
        idle.len()
    );
    let model = served.run("all", "");
    assert_eq!(model["cells"][1]["status"], "passed", "{model:#}");
    drop(idle);
}

#[test]
fn huge_numbers_in_documents_and_requests_never_panic_the_server() {
    let test = Test::new();
    test.write(
        "doc.md",
        "```bash {#a timeout=99999999999h}\necho a\n```\n\n```bash {#b retries=4294967295 retry-delay=18446744073709551615}\necho b\n```\n",
    );
    // A duration no clock can hold is refused up front, as by `run`.
    let run = test.run(&["run", "doc.md"]).code(2);
    assert!(run.stderr.contains("invalid duration"), "{}", run.stderr);
    test.write(
        "doc.md",
        "```bash {#a timeout=720h}\necho a\n```\n\n```bash {#b retries=4294967295 retry-delay=720h}\necho b\n```\n",
    );
    let served = Served::start(&test, "doc.md", &[]);
    for body in [
        json!({"what": "cell", "cell": "18446744073709551616"}),
        json!({"what": "cell", "cell": "99999999999999999999999999"}),
        json!({"what": "cell", "cell": "0"}),
        json!({"what": "from", "cell": "-1"}),
        json!({"what": "to", "cell": "4294967296"}),
        json!({"what": "cell", "cell": 1e308}),
        json!({"what": 18446744073709551615u64}),
    ] {
        let response = served.post("/api/run", body.clone());
        assert!(
            [202, 400, 422].contains(&response.status),
            "{body}: {}",
            response.status
        );
        served.idle();
    }
    for body in [
        json!({"id": 18446744073709551615u64, "yes": true}),
        json!({"id": -1, "yes": true}),
        json!({"id": 1e308, "yes": true}),
    ] {
        let status = served.post("/api/answer", body.clone()).status;
        assert!([409, 422].contains(&status), "{body}: {status}");
    }
    let response = served.post(
        "/api/cells/99999999999999999999",
        json!({"was": "", "body": "x"}),
    );
    assert_eq!(response.status, 409, "{}", response.body);
    // And the cells still run, with their long timeout.
    let model = served.run("all", "");
    assert_eq!(model["cells"][0]["status"], "passed", "{model:#}");
    assert_eq!(model["cells"][1]["status"], "passed", "{model:#}");
}

#[test]
fn a_connection_that_never_finishes_a_request_head_is_closed() {
    let test = Test::new();
    test.write("doc.md", SIMPLE);
    let served = Served::start(&test, "doc.md", &[]);
    let mut silent = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    half.write_all(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    // The server closes both once the time for a request head is up
    // (10 s); a minute is the bound for a hang.
    for stream in [&mut silent, &mut half] {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let started = Instant::now();
        let mut text = String::new();
        let closed = stream.read_to_string(&mut text);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still open after a minute ({closed:?})"
        );
        assert!(!text.contains("200 OK"), "{text}");
    }
}
