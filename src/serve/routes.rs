//! The HTTP routes: the page and its assets, the model, the event stream,
//! and the requests that change something (POST only).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use super::guard::{check, Guard};
use super::live::{Request, Shared, Which};
use super::page;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

pub fn router(shared: Arc<Shared>, guard: Arc<Guard>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/files/{*path}", get(file))
        .route("/api/model", get(model))
        .route("/api/events", get(events))
        .route("/api/run", post(run))
        .route("/api/stop", post(stop))
        .route("/api/restart", post(restart))
        .route("/api/cells/{name}", post(edit))
        .route("/api/answer", post(answer))
        .route("/api/secret", post(secret))
        .layer(axum::middleware::from_fn_with_state(guard, check))
        .with_state(shared)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The page's model of the document as it is on disk now. While the file
/// does not parse (an editor saved it half-way), the page keeps showing it
/// as it last parsed, with the error on top.
pub fn build_model(shared: &Shared) -> page::Model {
    let live = shared.live().clone();
    let path = &shared.path;
    let display = path.display().to_string();
    let source = match super::disk::read(path) {
        Ok(source) => source,
        Err(message) => {
            let diagnostic = crate::diagnostic::Diagnostic::error(message, 0..0);
            return page::broken(display, "", &[diagnostic], live);
        }
    };
    let mut last_good = shared.last_good.lock().unwrap_or_else(|e| e.into_inner());
    let (loaded, broken) = match crate::parser::parse(&source) {
        Ok(runbook) => {
            let loaded = crate::loader::Loaded {
                path: path.clone(),
                source,
                runbook,
            };
            *last_good = Some(loaded.clone());
            (loaded, None)
        }
        Err(diagnostics) => match last_good.clone() {
            Some(loaded) => (loaded, Some((source, diagnostics))),
            None => return page::broken(display, &source, &diagnostics, live),
        },
    };
    drop(last_good);
    let state = crate::state::load_for(path).unwrap_or_default();
    let vars = shared
        .vars
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let context = page::Context {
        state: &state,
        vars: &vars,
        intercepted: &shared.intercepted,
    };
    let mut model = page::model(&loaded, &context, live);
    if let Some((source, diagnostics)) = broken {
        model.problems = diagnostics
            .iter()
            .map(|d| {
                let mut problem = page::Problem::from(d, &source);
                problem.message = format!(
                    "{} (the file does not parse now; the page shows it as it last parsed, and nothing runs until it does)",
                    problem.message
                );
                problem
            })
            .collect();
    }
    model
}

/// An image beside the runbook (a notebook's rich output, a diagram),
/// inside its folder only.
async fn file(State(shared): State<Arc<Shared>>, Path(path): Path<String>) -> Response {
    let not_found =
        || (StatusCode::NOT_FOUND, "no such image beside the runbook\n").into_response();
    let Some(content_type) = page::image_type(&path) else {
        return not_found();
    };
    let folder = crate::paths::folder_of(&shared.path);
    let Ok(target) = crate::paths::inside(folder, &path) else {
        return not_found();
    };
    match tokio::fs::read(&target).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(_) => not_found(),
    }
}

async fn model(State(shared): State<Arc<Shared>>) -> Response {
    let model = build_model(&shared);
    Json(model).into_response()
}

async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let updates = BroadcastStream::new(shared.events.subscribe()).map(|message| {
        // A page that fell behind fetches the whole model again.
        message.unwrap_or_else(|_| r#"{"type":"model"}"#.to_string())
    });
    // The first message says the stream is open: the page fetches the
    // model then, so nothing between the two is missed.
    let stream = tokio_stream::once(r#"{"type":"hello"}"#.to_string())
        .chain(updates)
        .map(|text| Ok(SseEvent::default().data(text)));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct RunBody {
    /// `cell`, `all`, `from` or `to`.
    what: String,
    cell: Option<String>,
}

async fn run(State(shared): State<Arc<Shared>>, Json(body): Json<RunBody>) -> Response {
    let cell = body.cell.unwrap_or_default();
    let which = match body.what.as_str() {
        "all" => Which::All,
        "cell" => Which::Cell(cell),
        "from" => Which::From(cell),
        "to" => Which::To(cell),
        _ => return (StatusCode::BAD_REQUEST, "what: cell, all, from or to\n").into_response(),
    };
    shared.run(which);
    StatusCode::ACCEPTED.into_response()
}

/// A body of `{}`: every change takes JSON, which no cross-site form sends.
#[derive(Deserialize)]
struct Empty {}

async fn stop(State(shared): State<Arc<Shared>>, Json(_): Json<Empty>) -> StatusCode {
    shared.stop();
    StatusCode::ACCEPTED
}

async fn restart(State(shared): State<Arc<Shared>>, Json(_): Json<Empty>) -> StatusCode {
    shared.stop();
    let _ = shared.requests.send(Request::Restart);
    StatusCode::ACCEPTED
}

#[derive(Deserialize)]
struct EditBody {
    /// The code the page showed, which must still be on disk.
    was: String,
    body: String,
}

async fn edit(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Json(body): Json<EditBody>,
) -> Response {
    let written = {
        let _guard = shared.disk.lock().unwrap_or_else(|e| e.into_inner());
        super::disk::edit_body(&shared.path, &name, &body.was, &body.body)
    };
    shared.changed();
    match written {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => (StatusCode::CONFLICT, message).into_response(),
    }
}

#[derive(Deserialize)]
struct AnswerBody {
    id: u64,
    yes: bool,
}

async fn answer(State(shared): State<Arc<Shared>>, Json(body): Json<AnswerBody>) -> StatusCode {
    if shared.answer(body.id, body.yes) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CONFLICT
    }
}

#[derive(Deserialize)]
struct SecretBody {
    name: String,
    value: String,
}

async fn secret(State(shared): State<Arc<Shared>>, Json(body): Json<SecretBody>) -> Response {
    let declared = crate::loader::load(&shared.path)
        .map(|loaded| loaded.runbook.settings.secrets.contains(&body.name))
        .unwrap_or(false);
    if !declared {
        return (
            StatusCode::BAD_REQUEST,
            "only secrets the front matter declares are asked for\n",
        )
            .into_response();
    }
    let _ = shared.requests.send(Request::Secret {
        name: body.name,
        value: body.value,
    });
    StatusCode::ACCEPTED.into_response()
}
