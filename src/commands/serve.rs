//! `runbook serve`: prepares the values, replay and listener as `run`
//! would, prints the page's URL, and hands over to the server.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;

use crate::cli::{RunArgs, ServeArgs};
use crate::commands::run::{
    check_targets, interceptor, replayed_tools, run_options, seed_from_last_run, starting_vars,
};
use crate::error::{Error, Result};
use crate::loader::{load, Loaded};
use crate::serve::guard::{is_loopback, new_token, Guard};
use crate::serve::live::{Origins, Shared};
use crate::serve::Server;

/// Ports tried after a busy default one, as Jupyter does.
const MORE_PORTS: u16 = 20;

pub fn serve(args: &ServeArgs) -> Result<i32> {
    crate::procs::ensure_system().map_err(Error::Usage)?;
    let loaded = load(&args.file)?;
    let run_args = RunArgs {
        file: args.file.clone(),
        set: args.set.clone(),
        params: args.params.clone(),
        secret: args.secret.clone(),
        yes: args.yes,
        max_output: args.max_output.clone(),
        replay: args.replay.clone(),
        no_replay: args.no_replay,
        ..RunArgs::default()
    };
    // The page writes outputs and edits into the file: it must be writable.
    check_targets(&loaded, &run_args)?;
    let mut vars = starting_vars(&loaded, &run_args)?;
    let mut origins = origins(&loaded, args, &vars);
    // As for `run --cell`: what the last run captured stands in for the
    // cells not run yet; the command line wins.
    let state = crate::state::load_for(&loaded.path).map_err(Error::Usage)?;
    for name in seed_from_last_run(&mut vars, &state) {
        origins.insert(name, "last run".into());
    }
    let interceptor = interceptor(&loaded, &run_args)?;
    let options = run_options(&loaded, &run_args, state.env.clone(), interceptor.as_ref())?;
    let listener = bind(&args.host, args.port)?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("cannot listen: {e}")))?
        .port();
    let token = new_token().map_err(|e| Error::Usage(format!("cannot make a token: {e}")))?;
    let shown_host = if args.host.contains(':') {
        format!("[{}]", args.host)
    } else {
        args.host.clone()
    };
    let url = format!("http://{shown_host}:{port}/?token={token}");
    if !is_loopback(&args.host) {
        crate::say_line!(
            "warning: listening on {}, not loopback: anyone who can reach this address and has the token can run the runbook's commands",
            args.host
        );
    }
    crate::say_line!(
        "serving {} (Ctrl-C stops it and ends every kernel); open:",
        loaded.display()
    );
    crate::terminal::out(&format!("{url}\n"));
    let _ = std::io::stdout().flush();
    if args.open {
        open_browser(&url);
    }
    let (requests_sender, requests) = tokio::sync::mpsc::unbounded_channel();
    let shared = Shared::new(
        loaded.path.clone(),
        replayed_tools(interceptor.as_ref()),
        requests_sender,
    );
    let server = Server {
        listener,
        guard: Guard::new(token, &shown_host, port),
        shared,
        requests,
        folder: loaded.folder(),
        file: loaded.display(),
        start: (vars, origins),
        options,
        interceptor,
    };
    crate::serve::serve(server).map_err(|e| Error::Usage(format!("serve: {e}")))?;
    Ok(0)
}

/// Listens on `host:port`; a busy default port moves on to the next ones.
fn bind(host: &str, port: u16) -> Result<TcpListener> {
    let tries = if port == ServeArgs::DEFAULT_PORT {
        MORE_PORTS
    } else {
        0
    };
    let mut last = None;
    for offset in 0..=tries {
        match TcpListener::bind((host, port + offset)) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(Error::Usage(format!("cannot listen on {host}:{port}: {e}"))),
        }
    }
    Err(Error::Usage(format!(
        "cannot listen on {host}:{port}: {}; pass --port N (0: any free port)",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// Where each starting value came from.
fn origins(loaded: &Loaded, args: &ServeArgs, vars: &crate::vars::Vars) -> Origins {
    let named = |list: &[String]| -> BTreeSet<String> {
        list.iter()
            .filter_map(|a| a.split_once('=').map(|(n, _)| n.to_string()))
            .collect()
    };
    let (set, secret) = (named(&args.set), named(&args.secret));
    let settings = &loaded.runbook.settings;
    vars.names()
        .into_iter()
        .map(|name| {
            let from = if secret.contains(&name) {
                "--secret"
            } else if set.contains(&name) {
                "--set"
            } else if settings.params.iter().any(|(n, _)| *n == name) {
                if args.params.is_empty() {
                    "param"
                } else {
                    "param or --params"
                }
            } else if settings.secrets.contains(&name) {
                "environment"
            } else {
                "--params"
            };
            (name, from.to_string())
        })
        .collect()
}

/// Opens the default browser. The opener is left to itself at once, so
/// the browser is never one of the processes the server ends.
fn open_browser(url: &str) {
    let opener = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
    let spawned = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$1" >/dev/null 2>&1 &"#)
        .arg(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .status();
    if !spawned.is_ok_and(|s| s.success()) {
        crate::say_line!("warning: could not start {opener}; open the URL above yourself");
    }
}
