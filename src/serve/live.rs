//! The live side of a served document: one session of kernels that stays
//! alive between clicks, fed by a queue of requests, and what the page
//! shows of it (each cell's last run here, the variables, a question
//! waiting for an answer). Everything here is already masked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::commands::run::{problems, record_state, Checks};
use crate::events::{Event, RunStatus, Sink, Status};
use crate::executor::{Emitter, Outcome, Prompt, Session};
use crate::loader::{load, Loaded};
use crate::lock::{self, Lock, LockError};
use crate::selection::{select, Selection};
use crate::state::{self, State, Tracker};
use crate::vars::Vars;

use super::page::Problem;

/// Most output the page keeps of one cell's run (its tail).
const LIVE_OUTPUT: usize = 256 * 1024;

/// What the page shows of the live kernels.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Live {
    /// Each cell's last run in this server, by cell name.
    #[serde(skip)]
    pub cells: BTreeMap<String, LiveCell>,
    /// The cell running now.
    pub running: Option<String>,
    /// Requests waiting behind it.
    pub queued: usize,
    /// A request to run is being worked on (between its cells too).
    pub busy: bool,
    pub variables: Vec<Variable>,
    /// A `confirm` cell's question.
    pub prompt: Option<Question>,
    /// Declared secrets nothing gives a value yet: the page asks for them.
    pub missing_secrets: Vec<String>,
    /// Why the last request to run did not run.
    pub refused: Vec<Problem>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct LiveCell {
    pub status: Option<String>,
    pub exit: Option<i32>,
    pub duration_ms: Option<u64>,
    /// What it printed, both streams in the order read (the tail, when long).
    pub text: String,
    pub message: Option<String>,
    /// The code that ran: the record belongs to a cell of that name
    /// only while it holds this code.
    #[serde(skip)]
    pub body: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Variable {
    pub name: String,
    /// The value; `[masked:NAME]` for a secret.
    pub value: String,
    /// Where it came from: `param`, `--set`, `cell oidc`, ...
    pub from: String,
    pub exported: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Question {
    pub id: u64,
    pub cell: String,
    pub text: String,
}

/// Which cells a request runs.
#[derive(Debug, Clone)]
pub enum Which {
    Cell(String),
    All,
    From(String),
    To(String),
}

pub enum Request {
    Run { which: Which, generation: u64 },
    Restart,
    Secret { name: String, value: String },
    Quit(oneshot::Sender<()>),
}

/// What the handlers and the kernels' task share.
pub struct Shared {
    pub path: PathBuf,
    pub intercepted: Vec<String>,
    pub live: Mutex<Live>,
    /// Values as the page may see them: defined names and public values.
    pub vars: Mutex<Vars>,
    /// Serialises the page's writes to the document.
    pub disk: Mutex<()>,
    /// The document as it last parsed.
    pub last_good: Mutex<Option<crate::loader::Loaded>>,
    /// JSON messages to every open page.
    pub events: broadcast::Sender<String>,
    pub requests: mpsc::UnboundedSender<Request>,
    /// Each stop request bumps it.
    pub stop: watch::Sender<u64>,
    replies: Mutex<Option<(u64, oneshot::Sender<bool>)>>,
}

impl Shared {
    pub fn new(
        path: PathBuf,
        intercepted: Vec<String>,
        requests: mpsc::UnboundedSender<Request>,
    ) -> Shared {
        Shared {
            path,
            intercepted,
            live: Mutex::new(Live::default()),
            vars: Mutex::new(Vars::default()),
            disk: Mutex::new(()),
            last_good: Mutex::new(None),
            events: broadcast::channel(1024).0,
            requests,
            stop: watch::channel(0).0,
            replies: Mutex::new(None),
        }
    }

    pub fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells every page to fetch the model again.
    pub fn changed(&self) {
        let _ = self.events.send(json!({"type": "model"}).to_string());
    }

    pub fn run(&self, which: Which) {
        let generation = *self.stop.borrow();
        self.live().queued += 1;
        let _ = self.requests.send(Request::Run { which, generation });
        self.changed();
    }

    /// Interrupts the running cell and drops the queued requests.
    pub fn stop(&self) {
        self.stop.send_modify(|g| *g += 1);
    }

    /// Answers the question `id`; false when it is no longer asked.
    pub fn answer(&self, id: u64, yes: bool) -> bool {
        let reply = self
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match reply {
            Some((asked, reply)) if asked == id => {
                let _ = reply.send(yes);
                self.live().prompt = None;
                self.changed();
                true
            }
            other => {
                *self.replies.lock().unwrap_or_else(|e| e.into_inner()) = other;
                false
            }
        }
    }
}

/// Where each starting value came from, for the variables panel.
pub type Origins = BTreeMap<String, String>;

/// The kernels' task: takes requests one at a time until told to quit.
pub struct Kernels {
    shared: Arc<Shared>,
    session: Session,
    /// The values a restart begins again from, and where each came from.
    start: (Vars, Origins),
    /// Shared with the task that starts this one again if it fails, so no
    /// request is lost with it.
    requests: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Request>>>,
    /// Where each variable came from, for the panel.
    origins: Origins,
    /// Secrets typed into the page: kept across restarts, as `--secret`.
    given: Vec<(String, String)>,
    /// What the kernels exported: masked value and the cell that set it.
    exported: BTreeMap<String, (String, String)>,
}

/// Runs the task `start` makes, and when it fails (a panic) tells the
/// page and the terminal why and starts it again: a failure never leaves
/// the page waiting on a task that is gone. Ends when the task ends by
/// itself.
pub async fn supervise<F, T>(shared: Arc<Shared>, mut start: F)
where
    F: FnMut() -> T,
    T: std::future::Future<Output = ()> + 'static,
{
    loop {
        let failure = match tokio::task::spawn_local(start()).await {
            Ok(()) => return,
            Err(error) if error.is_panic() => {
                let payload = error.into_panic();
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into())
            }
            Err(_) => return,
        };
        let message = format!(
            "the kernels' task failed ({failure}) and was started again: variables, functions and the working directory of earlier cells are gone; run them again"
        );
        crate::say_line!("error: {message}");
        {
            let mut live = shared.live();
            live.running = None;
            live.busy = false;
            live.refused = vec![message_problem(message)];
        }
        shared.changed();
    }
}

/// Puts `confirm` cells' questions to the page while the session waits
/// for the answer.
pub async fn ask_in_page(shared: Arc<Shared>, mut prompts: mpsc::UnboundedReceiver<Prompt>) {
    let mut next_question = 0u64;
    while let Some(prompt) = prompts.recv().await {
        next_question += 1;
        let name = shared
            .live()
            .running
            .clone()
            .unwrap_or_else(|| (prompt.index + 1).to_string());
        shared.live().prompt = Some(Question {
            id: next_question,
            cell: name,
            text: prompt.question,
        });
        *shared.replies.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((next_question, prompt.reply));
        shared.changed();
    }
}

impl Kernels {
    pub fn new(
        shared: Arc<Shared>,
        session: Session,
        start: (Vars, Origins),
        requests: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Request>>>,
    ) -> Kernels {
        Kernels {
            shared,
            session,
            origins: start.1.clone(),
            start,
            requests,
            given: Vec::new(),
            exported: BTreeMap::new(),
        }
    }

    pub async fn serve(mut self) {
        self.publish();
        loop {
            let next = self.requests.lock().await.recv().await;
            let Some(request) = next else { break };
            match request {
                Request::Run { which, generation } => {
                    {
                        let mut live = self.shared.live();
                        live.queued = live.queued.saturating_sub(1);
                        live.busy = true;
                    }
                    if generation == *self.shared.stop.borrow() {
                        self.run(which, generation).await;
                    }
                    self.shared.live().busy = false;
                }
                Request::Restart => {
                    self.session.end_kernels().await;
                    self.session.reset_vars(self.start.0.clone());
                    self.origins = self.start.1.clone();
                    for (name, value) in &self.given {
                        self.session
                            .set_var(name, serde_json::Value::String(value.clone()), true);
                        self.origins.insert(name.clone(), "the page".into());
                    }
                    self.exported.clear();
                    let mut live = self.shared.live();
                    live.cells.clear();
                    live.refused.clear();
                }
                Request::Secret { name, value } => {
                    self.session
                        .set_var(&name, serde_json::Value::String(value.clone()), true);
                    self.given.retain(|(n, _)| *n != name);
                    self.given.push((name.clone(), value));
                    self.origins.insert(name, "the page".into());
                    self.shared.live().refused.clear();
                }
                Request::Quit(done) => {
                    self.session.end_kernels().await;
                    let _ = done.send(());
                    return;
                }
            }
            self.publish();
        }
        self.session.end_kernels().await;
    }

    /// Puts the variables where the page sees them.
    fn publish(&self) {
        let (origins, exported) = (&self.origins, &self.exported);
        let vars = self.session.vars();
        let mut rows: Vec<Variable> = vars
            .iter()
            .map(|(name, var)| Variable {
                name: name.clone(),
                value: if var.secret {
                    format!("[masked:{name}]")
                } else {
                    self.session.masker().mask(&var.env_text())
                },
                from: origins.get(name).cloned().unwrap_or_default(),
                exported: false,
            })
            .collect();
        for (name, (value, from)) in exported {
            if !vars.contains(name) {
                rows.push(Variable {
                    name: name.clone(),
                    value: value.clone(),
                    from: from.clone(),
                    exported: true,
                });
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        *self.shared.vars.lock().unwrap_or_else(|e| e.into_inner()) = public(vars);
        let mut live = self.shared.live();
        live.variables = rows;
        drop(live);
        self.shared.changed();
    }

    /// The document as it is now, the cells `which` names, and the state
    /// of the last runs; or why they cannot run (what `run` would refuse).
    fn choose(&self, which: &Which) -> Result<(Loaded, Vec<usize>, State), Vec<Problem>> {
        let loaded = match load(&self.shared.path) {
            Ok(loaded) => loaded,
            Err(crate::error::Error::Document {
                source_text,
                diagnostics,
                ..
            }) => {
                return Err(diagnostics
                    .iter()
                    .map(|d| Problem::from(d, &source_text))
                    .collect());
            }
            Err(error) => return Err(vec![message_problem(error.to_string())]),
        };
        let state = state::load_for(&loaded.path).unwrap_or_default();
        let selection = match which {
            Which::Cell(name) => Selection {
                cells: vec![name.clone()],
                ..Selection::default()
            },
            Which::All => Selection::default(),
            Which::From(name) => Selection {
                from: Some(name.clone()),
                ..Selection::default()
            },
            Which::To(name) => Selection {
                to: Some(name.clone()),
                ..Selection::default()
            },
        };
        let cells = select(&loaded.runbook, &selection, &state)
            .map_err(|message| vec![message_problem(message)])?;
        let defined: BTreeSet<String> = self.session.vars().names().into_iter().collect();
        let errors: Vec<Problem> = problems(
            &loaded,
            &cells,
            &defined,
            Checks {
                partial: selection.is_partial(),
                runs: true,
                // The page asks `confirm` cells; no terminal is needed.
                yes: true,
                intercepted: &self.shared.intercepted,
            },
        )
        .iter()
        .filter(|d| d.is_error())
        .map(|d| Problem::from(d, &loaded.source))
        .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((loaded, cells, state))
    }

    async fn run(&mut self, which: Which, generation: u64) {
        let refuse = |shared: &Shared, problems: Vec<Problem>| {
            shared.live().refused = problems;
            shared.changed();
        };
        let (loaded, cells, mut state) = match self.choose(&which) {
            Ok(chosen) => chosen,
            Err(problems) => return refuse(&self.shared, problems),
        };
        let state_path = state::path_for(&loaded.path);
        self.shared.live().refused.clear();
        let _lock = match Lock::acquire(&lock::path_for(&loaded.path), &loaded.display()) {
            Ok(lock) => Some(lock),
            Err(LockError::Busy(message)) => {
                return refuse(&self.shared, vec![message_problem(message)]);
            }
            Err(LockError::Unavailable(_)) => None,
        };
        self.session.forget_stops();
        for &index in &cells {
            if *self.shared.stop.borrow() != generation {
                break;
            }
            let cell = &loaded.runbook.cells[index];
            let mut tracker = Tracker::default();
            let mut page = PageSink {
                shared: &self.shared,
                loaded: &loaded,
            };
            let sinks: Vec<&mut dyn Sink> = vec![&mut tracker, &mut page];
            let status = self
                .session
                .run(&loaded.runbook, &[index], Emitter { sinks })
                .await;
            if let Some(capture) = &cell.options.capture {
                if self.session.vars().contains(&capture.name) && tracker_passed(&tracker) {
                    self.origins
                        .insert(capture.name.clone(), format!("cell {}", cell.name()));
                }
            }
            let now = if status == RunStatus::Interrupted {
                BTreeMap::new()
            } else {
                self.session.exported().await
            };
            for (name, value) in &now {
                let masked = self.session.masker().mask(value);
                if self.exported.get(name).map(|(v, _)| v) != Some(&masked) {
                    self.exported
                        .insert(name.clone(), (masked, format!("cell {}", cell.name())));
                }
            }
            let outcome = Outcome {
                status,
                vars: self.session.vars().clone(),
                masker: self.session.masker().clone(),
                exported: now,
            };
            record_state(&mut state, &loaded, &tracker, &outcome);
            if let Err(e) = state.save(&state_path, self.session.masker()) {
                self.shared.live().refused = vec![message_problem(format!(
                    "could not save {}: {e}",
                    state_path.display()
                ))];
            }
            self.publish();
            if status != RunStatus::Passed {
                break;
            }
        }
    }
}

fn tracker_passed(tracker: &Tracker) -> bool {
    tracker
        .records
        .values()
        .all(|record| record.status == Status::Passed)
}

fn message_problem(message: String) -> Problem {
    Problem {
        line: 0,
        error: true,
        message,
    }
}

/// The values with every secret standing in as `[masked:NAME]`.
fn public(vars: &Vars) -> Vars {
    let mut public = Vars::default();
    for (name, var) in vars.iter() {
        let value = if var.secret {
            serde_json::Value::String(format!("[masked:{name}]"))
        } else {
            var.value.clone()
        };
        public.set(name, value, var.secret);
    }
    public
}

/// Streams a run to the pages and records each finished cell's output in
/// the document on disk.
struct PageSink<'a> {
    shared: &'a Shared,
    loaded: &'a Loaded,
}

impl Sink for PageSink<'_> {
    fn event(&mut self, event: &Event) {
        let cells = &self.loaded.runbook.cells;
        match event {
            Event::CellStarted { index, .. } => {
                let name = cells[*index].name();
                let mut live = self.shared.live();
                live.running = Some(name.clone());
                live.cells.insert(
                    name.clone(),
                    LiveCell {
                        status: Some("running".into()),
                        body: cells[*index].body.clone(),
                        ..LiveCell::default()
                    },
                );
                drop(live);
                self.shared.changed();
            }
            Event::Output {
                index,
                stream,
                text,
            } => {
                let name = cells[*index].name();
                let mut live = self.shared.live();
                if let Some(cell) = live.cells.get_mut(&name) {
                    cell.text.push_str(text);
                    if cell.text.len() > LIVE_OUTPUT {
                        let mut cut = cell.text.len() - LIVE_OUTPUT;
                        while !cell.text.is_char_boundary(cut) {
                            cut += 1;
                        }
                        cell.text.drain(..cut);
                    }
                }
                drop(live);
                let stream = match stream {
                    crate::kernel::Stream::Stdout => "stdout",
                    crate::kernel::Stream::Stderr => "stderr",
                };
                let _ = self.shared.events.send(
                    json!({"type": "output", "cell": name, "stream": stream, "text": text})
                        .to_string(),
                );
            }
            Event::CellFinished {
                index,
                status,
                exit,
                duration_ms,
                recorded,
                message,
                ..
            } => {
                let cell = &cells[*index];
                let mut note = message.clone();
                if let Some(text) = recorded {
                    let _guard = self.shared.disk.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(error) =
                        super::disk::record_output(&self.loaded.path, cell, text, *exit)
                    {
                        note = Some(match note {
                            Some(message) => format!("{message}\n{error}"),
                            None => error,
                        });
                    }
                }
                let mut live = self.shared.live();
                live.running = None;
                live.prompt = None;
                let entry = live.cells.entry(cell.name()).or_default();
                entry.status = Some(status.name().to_string());
                entry.exit = Some(*exit);
                entry.duration_ms = Some(*duration_ms);
                entry.message = note;
                drop(live);
                self.shared.changed();
            }
            Event::RunStarted { .. } | Event::RunFinished { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_kernels_task_is_started_again_and_says_why() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (requests, _) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(PathBuf::from("doc.md"), Vec::new(), requests));
        shared.live().busy = true;
        shared.live().running = Some("deploy".into());
        let mut updates = shared.events.subscribe();
        let starts = std::rc::Rc::new(std::cell::Cell::new(0));
        let counted = starts.clone();
        let task = move || {
            counted.set(counted.get() + 1);
            let first = counted.get() == 1;
            async move {
                if first {
                    panic!("index out of bounds");
                }
            }
        };
        tokio::task::LocalSet::new().block_on(&runtime, supervise(shared.clone(), task));
        assert_eq!(starts.get(), 2);
        let live = shared.live().clone();
        assert!(!live.busy && live.running.is_none());
        assert!(
            live.refused[0].message.contains("index out of bounds")
                && live.refused[0].message.contains("started again"),
            "{:?}",
            live.refused
        );
        assert!(updates.try_recv().is_ok(), "the page is told");
    }
}
