//! `runbook serve`: a runbook as a live notebook in the browser. The same
//! engine as `runbook run` (one session of kernels that stays alive), the
//! same file on disk, a page that shows both.

pub mod disk;
pub mod guard;
pub mod live;
pub mod page;
pub mod routes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::executor::{Options, Session};
use crate::vars::Vars;

use guard::Guard;
use live::{Kernels, Origins, Shared};

/// Everything the server needs, prepared by the command.
pub struct Server {
    pub listener: std::net::TcpListener,
    pub guard: Guard,
    pub shared: Shared,
    pub requests: mpsc::UnboundedReceiver<live::Request>,
    /// Where kernels start and how reports name the runbook.
    pub folder: std::path::PathBuf,
    pub file: String,
    pub start: (Vars, Origins),
    pub options: Options,
    pub interceptor: Option<crate::interceptor::Interceptor>,
}

/// Serves until SIGINT, SIGTERM or SIGHUP; then ends every kernel and
/// every process they started.
pub fn serve(server: Server) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run(server))
}

async fn run(server: Server) -> std::io::Result<()> {
    let Server {
        listener,
        guard,
        shared,
        requests,
        folder,
        file,
        start,
        mut options,
        interceptor,
    } = server;
    if let Some(interceptor) = &interceptor {
        interceptor.serve()?;
    }
    let shared = Arc::new(shared);
    let (prompt_sender, prompts) = mpsc::unbounded_channel();
    options.stop = Some(shared.stop.subscribe());
    options.prompts = Some(prompt_sender);
    let requests = Arc::new(tokio::sync::Mutex::new(requests));
    let kernels = {
        let shared = shared.clone();
        let mut again = false;
        move || {
            if std::mem::replace(&mut again, true) {
                // The failed task's kernels are gone: so goes what they started.
                crate::procs::kill_descendants(&[]);
            }
            let session = Session::new(&file, folder.clone(), start.0.clone(), options.clone());
            Kernels::new(shared.clone(), session, start.clone(), requests.clone()).serve()
        }
    };
    tokio::task::spawn_local(live::ask_in_page(shared.clone(), prompts));
    tokio::task::spawn_local(live::supervise(shared.clone(), kernels));
    tokio::task::spawn_local(watch(shared.clone()));
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = routes::router(shared.clone(), Arc::new(guard));
    let server = accept(listener, app);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::select! {
        result = server => result?,
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = hangup.recv() => {}
    }
    crate::say_line!("stopping: ending every kernel");
    shared.stop();
    let (done, ended) = oneshot::channel();
    if shared.requests.send(live::Request::Quit(done)).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(10), ended).await;
    }
    crate::procs::kill_descendants(&[]);
    drop(interceptor);
    Ok(())
}

/// Connections open at once, at most: a quarter of the file descriptors
/// the process may open, so kernels and their pipes keep the rest, and
/// never more than 256. Past this, the oldest connection that has not yet
/// been answered with a success (a page shows the token at once) is closed
/// to make room, so idle connections from anyone cannot starve the page.
fn max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let open_files = if known {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (open_files / 4).clamp(8, 256)
}
/// How long a connection may take to send the head of a request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection being served.
struct Connection {
    /// It has been answered with a success: a page's, with the token.
    trusted: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Accepts connections for ever: each is served by hyper with a time
/// limit on request heads, at most [`max_connections`] at once.
async fn accept(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    let cap = max_connections();
    let mut open: BTreeMap<u64, Connection> = BTreeMap::new();
    let mut next: u64 = 0;
    loop {
        let accepted = listener.accept().await;
        open.retain(|_, connection| !connection.task.is_finished());
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, say: make room, then try again.
                close_oldest_untrusted(&mut open);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.len() >= cap && !close_oldest_untrusted(&mut open) {
            // Every connection is a page's: this one waits for none.
            drop(stream);
            continue;
        }
        let trusted = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(serve_connection(stream, app.clone(), trusted.clone()));
        open.insert(next, Connection { trusted, task });
        next = next.wrapping_add(1);
    }
}

/// Closes the oldest connection not yet answered with a success; whether
/// there was one.
fn close_oldest_untrusted(open: &mut BTreeMap<u64, Connection>) -> bool {
    let oldest = open
        .iter()
        .find(|(_, c)| !c.trusted.load(Ordering::Relaxed))
        .map(|(id, _)| *id);
    match oldest.and_then(|id| open.remove(&id)) {
        Some(connection) => {
            connection.task.abort();
            true
        }
        None => false,
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: axum::Router,
    trusted: Arc<AtomicBool>,
) {
    let inner = hyper_util::service::TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |request| {
        let response = hyper::service::Service::call(&inner, request);
        let trusted = trusted.clone();
        async move {
            let response = response.await?;
            let status = response.status();
            if status.is_success() || status.is_redirection() {
                trusted.store(true, Ordering::Relaxed);
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let _ = builder
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// Tells the pages when the file changes on disk (an editor saved it),
/// looking a few times a second.
async fn watch(shared: Arc<Shared>) {
    let look = |path: &std::path::Path| {
        std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        })
    };
    let mut last = look(&shared.path);
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        ticker.tick().await;
        let now = look(&shared.path);
        if now != last {
            last = now;
            shared.changed();
        }
    }
}
