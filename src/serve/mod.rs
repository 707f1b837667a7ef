//! `runbook serve`: a runbook as a live notebook in the browser. The same
//! engine as `runbook run` (one session of kernels that stays alive), the
//! same file on disk, a page that shows both.

pub mod disk;
pub mod guard;
pub mod live;
pub mod page;
pub mod routes;

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
    let session = Session::new(&file, folder, start.0.clone(), options);
    let kernels = Kernels::new(shared.clone(), session, start, requests);
    tokio::task::spawn_local(live::ask_in_page(shared.clone(), prompts));
    tokio::task::spawn_local(kernels.serve());
    tokio::task::spawn_local(watch(shared.clone()));
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = routes::router(shared.clone(), Arc::new(guard));
    let server = axum::serve(listener, app);
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
