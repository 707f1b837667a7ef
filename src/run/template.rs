//! minijinja templating of cells: the environment, shell-safe quoting of
//! values in shell cells, and the static analysis of which variables a cell
//! uses.
//!
//! Secrets never enter the engine as values: a secret variable is a
//! [`Secret`], which knows only its name. In a shell cell it renders as a
//! reference to its environment variable (`"${TOKEN}"`, or what the quoting
//! around it needs), in a pwsh cell as `${env:TOKEN}`; anything else done
//! with it (a filter, a slice, a loop, a comparison, `~`, a field of a JSON
//! secret) is an error that says to do it in the shell, and a file cell,
//! a python cell or a param refuses it.
//!
//! Rendering is bounded: a fuel budget of instructions, a recursion limit
//! and a cap on the rendered text, so no template can hang or exhaust
//! whatever renders it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use regex::Regex;

use crate::quoting;

/// Template names starting with this are rendered with shell quoting.
const SHELL_PREFIX: &str = "shell:";

/// Characters a value may hold and still be pasted into shell code unquoted.
pub fn is_shell_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c))
}

/// Quotes a value for POSIX shells unless it is plain.
pub fn shell_quote(value: &str) -> String {
    if is_shell_plain(value) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Instructions one rendering may execute: far more than any runbook's
/// templates need, few enough that a loop over millions ends at once.
pub const FUEL: u64 = 50_000;

/// How deeply macros, includes and recursive loops may nest.
const RECURSION_LIMIT: usize = 64;

/// The most text one rendering may produce.
pub const MAX_RENDERED: usize = 4 * 1024 * 1024;

/// The most a rendering may allocate, all its allocations added up: a
/// rendering over it is stopped where it stands (see [`budget`]).
pub const MAX_ALLOCATED: usize = 256 * 1024 * 1024;

/// How long a rendering may take where nothing else bounds it (`check`,
/// `status`, `serve`, dry runs, cells without a timeout).
pub const RENDER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a template renders into, which decides how a secret stands in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A bash, sh or zsh cell: values are quoted for where they stand.
    Shell,
    Pwsh,
    Python,
    /// A file cell's contents.
    File,
    /// A param's default.
    Param,
}

impl Target {
    /// The target a cell renders into.
    pub fn of(cell: &crate::document::Cell) -> Target {
        use crate::document::{CellKind, Interpreter};
        match &cell.kind {
            CellKind::File { .. } => Target::File,
            CellKind::Code { interpreter } => match interpreter {
                Interpreter::Pwsh => Target::Pwsh,
                Interpreter::Python => Target::Python,
                Interpreter::Bash | Interpreter::Sh | Interpreter::Zsh => Target::Shell,
            },
        }
    }

    const ALL: [Target; 5] = [
        Target::Shell,
        Target::Pwsh,
        Target::Python,
        Target::File,
        Target::Param,
    ];

    fn template_name(self) -> &'static str {
        match self {
            Target::Shell => "shell:cell",
            Target::Pwsh => "pwsh:cell",
            Target::Python => "python:cell",
            Target::File => "file:cell",
            Target::Param => "param:value",
        }
    }

    fn from_template_name(name: &str) -> Target {
        Target::ALL
            .into_iter()
            .find(|t| t.template_name() == name)
            .unwrap_or(Target::File)
    }
}

/// `true` for a shell cell, `false` for a file.
impl From<bool> for Target {
    fn from(shell: bool) -> Target {
        if shell {
            Target::Shell
        } else {
            Target::File
        }
    }
}

/// A secret variable as templates see it: the name of the environment
/// variable holding it, never its value, so nothing a template does can
/// derive text from the value.
#[derive(Debug)]
pub struct Secret {
    /// The environment variable.
    pub name: String,
    /// `CREDS.password` when a field of a JSON secret was asked for.
    pub field: Option<String>,
}

impl Secret {
    pub fn value(name: &str) -> Value {
        Value::from_object(Secret {
            name: name.to_string(),
            field: None,
        })
    }

    fn path(&self) -> &str {
        self.field.as_deref().unwrap_or(&self.name)
    }

    /// The secret itself; a field of it cannot be referenced.
    fn whole(&self) -> Result<&str, minijinja::Error> {
        match &self.field {
            None => Ok(&self.name),
            Some(field) => Err(secret_error(
                &self.name,
                field_message(&self.name, &field[self.name.len()..]),
            )),
        }
    }
}

impl minijinja::value::Object for Secret {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let path = match key.as_str() {
            Some(field) => format!("{}.{field}", self.path()),
            None => format!("{}[{key}]", self.path()),
        };
        Some(Value::from_object(Secret {
            name: self.name.clone(),
            field: Some(path),
        }))
    }

    /// Reached only when a template turns the secret into text some other
    /// way than placing it (a filter, `~`, a comparison): the rendering
    /// then fails. The text holds the name only.
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        TALLY.with(|t| {
            t.borrow_mut()
                .transformed
                .get_or_insert_with(|| self.name.clone());
        });
        write!(f, "[secret {}]", self.path())
    }
}

/// The secret a value stands for, if it is one.
fn as_secret(value: &Value) -> Option<&Secret> {
    value.downcast_object_ref::<Secret>()
}

/// Brackets a reference to a secret in the rendered text until the
/// rendering is checked: text the template transformed after placing a
/// reference no longer matches one. Noncharacters, which no template may
/// hold.
const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';
/// Between a reference and the rendering's seal: lowercase letters a
/// filter changing case (or anything else) would not leave alone.
const SEAL: char = '\u{FDD2}';

/// What one rendering did with secrets, kept by the thread rendering.
#[derive(Debug, Default)]
struct Tally {
    /// (secret, the reference placed), in order.
    references: Vec<(String, String)>,
    /// A secret turned into text other than by placing it.
    transformed: Option<String>,
    /// A secret placed where it is refused (file cell, python cell, param).
    refused: Option<String>,
    /// Letters closing each reference of this rendering.
    seal: String,
}

impl Tally {
    fn new() -> Tally {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
        Tally {
            seal: format!("{seed:016x}")
                .chars()
                .map(|c| (b'g' + c.to_digit(16).unwrap_or(0) as u8) as char)
                .collect(),
            ..Tally::default()
        }
    }
}

thread_local! {
    static TALLY: RefCell<Tally> = RefCell::default();
}

/// A reference to secret `name`, bracketed and tallied.
fn reference(name: &str, text: String) -> Value {
    let seal = TALLY.with(|t| {
        let mut tally = t.borrow_mut();
        tally.references.push((name.to_string(), text.clone()));
        tally.seal.clone()
    });
    Value::from_safe_string(format!("{OPEN}{text}{SEAL}{seal}{CLOSE}"))
}

fn secret_error(name: &str, message: String) -> minijinja::Error {
    TALLY.with(|t| {
        t.borrow_mut()
            .refused
            .get_or_insert_with(|| name.to_string());
    });
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message)
}

fn field_message(name: &str, field: &str) -> String {
    let filter = if field.starts_with('.') || field.starts_with('[') {
        field.to_string()
    } else {
        format!(".{field}")
    };
    format!(
        "secret {name} is JSON whose fields are not templated (a template never holds a secret's value): read the field in the shell, e.g. \"$(jq -r '{filter}' <<<\"${name}\")\""
    )
}

/// How a secret stands at a place of shell code: a reference to its
/// environment variable, quoted for the place, or why it cannot stand there.
fn shell_reference(secret: &Secret, quoting: &quoting::Quoting) -> Result<Value, minijinja::Error> {
    use quoting::Quoting;
    let name = secret.whole()?;
    let text = match quoting {
        Quoting::Unquoted => format!("\"${{{name}}}\""),
        // Close the quote, reference, reopen: `'a'"${S}"'b'`.
        Quoting::Single => format!("'\"${{{name}}}\"'"),
        Quoting::AnsiC => format!("'\"${{{name}}}\"$'"),
        Quoting::Double | Quoting::Heredoc => format!("${{{name}}}"),
        Quoting::LiteralHeredoc => return Err(secret_error(name, format!(
            "secret {name} stands in a here-document whose delimiter is quoted, where nothing expands, so no reference to ${name} can work there (and its value is never pasted): unquote the delimiter"
        ))),
        Quoting::Arithmetic => return Err(secret_error(name, format!(
            "secret {name} stands in arithmetic, where a variable's value runs as code: compute with \"${name}\" in the shell, e.g. $(( 10#${name} ))"
        ))),
        Quoting::PlainOnly(place) => return Err(secret_error(name, format!(
            "secret {name} stands {place}, where no reference to it can be placed safely: write \"${name}\" in the shell code instead"
        ))),
    };
    Ok(reference(name, text))
}

/// Why a secret cannot stand in `target` at all.
fn refusal_for(target: Target, name: &str) -> String {
    match target {
        Target::File => format!(
            "a file cell never holds a secret, and {name} is one: pass it from a shell cell, e.g. `kubectl create secret ... --from-literal=key=\"${name}\"`"
        ),
        Target::Python => format!(
            "secret {name} is not templated into python cells: read it from the environment, os.environ[\"{name}\"]"
        ),
        Target::Param => format!("a param cannot be built from secret {name}"),
        Target::Shell | Target::Pwsh => format!("secret {name} cannot stand here"),
    }
}

/// The environment every cell is rendered in: strict undefined variables,
/// `{## ##}` comments (since `${#var}` is bash), trailing newlines kept,
/// the `raw` filter to opt out of quoting, secrets placed as references,
/// and a budget of fuel and recursion.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_syntax(
        SyntaxConfig::builder()
            .comment_delimiters("{##", "##}")
            .build()
            .expect("valid delimiters"),
    );
    env.set_auto_escape_callback(|name| {
        if name.starts_with(SHELL_PREFIX) {
            AutoEscape::Custom("shell")
        } else {
            AutoEscape::None
        }
    });
    let write_failed =
        |_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed");
    env.set_formatter(move |out, state, value| {
        if let Some(secret) = as_secret(value) {
            let placed = match Target::from_template_name(state.name()) {
                Target::Shell => shell_reference(secret, &quoting::Quoting::Unquoted)?,
                Target::Pwsh => {
                    let name = secret.whole()?;
                    reference(name, format!("${{env:{name}}}"))
                }
                target => {
                    return Err(secret_error(
                        &secret.name,
                        refusal_for(target, &secret.name),
                    ))
                }
            };
            return out
                .write_str(placed.as_str().unwrap_or_default())
                .map_err(write_failed);
        }
        if state.auto_escape() == AutoEscape::Custom("shell") && !value.is_safe() {
            if value.is_undefined() || value.is_none() {
                return minijinja::escape_formatter(out, state, value);
            }
            out.write_str(&shell_quote(&value.to_string()))
                .map_err(write_failed)
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env.add_filter("raw", |value: Value| {
        if let Some(secret) = as_secret(&value) {
            return Err(secret_error(
                &secret.name,
                format!(
                    "`raw` does not apply to secret {}: it is placed as a reference to its environment variable",
                    secret.name
                ),
            ));
        }
        Ok(Value::from_safe_string(value.to_string()))
    });
    let escaper = |quoting: quoting::Quoting, escape: fn(&str) -> String| {
        move |value: Value| {
            if let Some(secret) = as_secret(&value) {
                return shell_reference(secret, &quoting);
            }
            if value.is_safe() {
                Ok(value)
            } else {
                Ok(Value::from_safe_string(escape(&value.to_string())))
            }
        }
    };
    use quoting::Quoting;
    type Escape = fn(&str) -> String;
    let escapers: [(&'static str, Quoting, Escape); 5] = [
        ("__rb_single", Quoting::Single, quoting::escape_single),
        ("__rb_double", Quoting::Double, quoting::escape_double),
        ("__rb_heredoc", Quoting::Heredoc, quoting::escape_heredoc),
        ("__rb_ansi_c", Quoting::AnsiC, quoting::escape_ansi_c),
        ("__rb_literal", Quoting::LiteralHeredoc, str::to_string),
    ];
    for (name, quoting, escape) in escapers {
        env.add_filter(name, escaper(quoting, escape));
    }
    env.add_filter("__rb_arith", |value: Value| {
        if let Some(secret) = as_secret(&value) {
            return shell_reference(secret, &Quoting::Arithmetic);
        }
        let text = value.to_string();
        if value.is_safe() || quoting::is_number(&text) {
            return Ok(Value::from_safe_string(text));
        }
        Err(refusal(
            "stands in arithmetic ($(( )), (( )), let, an array subscript or a [[ -eq ]] operand), where names and subscripts run as code; a value there must be a whole number",
        ))
    });
    env.add_filter("__rb_plain", |value: Value, place: String| {
        if let Some(secret) = as_secret(&value) {
            let name = secret.whole()?;
            return Err(secret_error(name, format!(
                "secret {name} stands {place}, where no reference to it can be placed safely: write \"${name}\" in the shell code instead"
            )));
        }
        let text = value.to_string();
        if value.is_safe() || is_shell_plain(&text) {
            return Ok(Value::from_safe_string(text));
        }
        Err(refusal(&format!(
            "stands {place}, where no quoting holds every value; a value there must be plain ([A-Za-z0-9_./:@%+=,-] only)"
        )))
    });
    env.add_filter(
        "__rb_ends",
        |value: Value, delimiter: String, strip_tabs: bool| {
            // A reference expands after the here-document is read: whatever
            // the secret holds cannot end it.
            if as_secret(&value).is_some() {
                return Ok(value);
            }
            let terminator = quoting::Terminator {
                delimiter,
                strip_tabs,
            };
            if terminator.ends_in(&value.to_string()) {
                return Err(refusal(&format!(
                    "holds the line `{}`, which would end the here-document and run what follows",
                    terminator.delimiter
                )));
            }
            Ok(value)
        },
    );
    env
}

/// The error for a value no quoting can hold where it stands. The value
/// itself is not shown: it may be a secret.
fn refusal(why: &str) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("a value {why}"),
    )
}

/// Rewrites each `{{ expr }}` of shell code that stands inside quotes, a
/// here-document or a place no quoting can hold, to pass through the
/// escaping (or refusing) filter for that place.
fn escape_by_context(template: &str) -> String {
    let mut out = template.to_string();
    for (start, context) in quoting::contexts(template).into_iter().rev() {
        let mut filters: Vec<String> = match &context.quoting {
            quoting::Quoting::Unquoted => Vec::new(),
            quoting::Quoting::LiteralHeredoc => vec!["__rb_literal".into()],
            quoting::Quoting::Single => vec!["__rb_single".into()],
            quoting::Quoting::Double => vec!["__rb_double".into()],
            quoting::Quoting::AnsiC => vec!["__rb_ansi_c".into()],
            quoting::Quoting::Heredoc => vec!["__rb_heredoc".into()],
            quoting::Quoting::Arithmetic => vec!["__rb_arith".into()],
            quoting::Quoting::PlainOnly(place) => {
                vec![format!("__rb_plain({})", serde_json::Value::from(*place))]
            }
        };
        for t in &context.heredocs {
            let delimiter = serde_json::Value::from(t.delimiter.as_str());
            filters.push(format!("__rb_ends({delimiter}, {})", t.strip_tabs));
        }
        if filters.is_empty() {
            continue;
        }
        let Some(length) = template[start..].find("}}") else {
            continue;
        };
        let inner = &template[start + 2..start + length];
        let (open, inner) = match inner.strip_prefix(['-', '+']) {
            Some(rest) => (&inner[..1], rest),
            None => ("", inner),
        };
        let (inner, close) = match inner.strip_suffix(['-', '+']) {
            Some(rest) => (rest, &inner[inner.len() - 1..]),
            None => (inner, ""),
        };
        let rewritten = format!(
            "{{{{{open} ({}) | {} {close}}}}}",
            inner.trim(),
            filters.join(" | ")
        );
        out.replace_range(start..start + length + 2, &rewritten);
    }
    out
}

/// A template error with the 1-based line within the template, if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub line: Option<usize>,
    /// The secret the template tried to put where no secret may stand (a
    /// file cell, a python cell, a param) or to transform.
    pub secret: Option<String>,
    /// The rendering went over its budget: fuel, recursion, size or time.
    pub budget: bool,
}

impl From<minijinja::Error> for TemplateError {
    fn from(error: minijinja::Error) -> TemplateError {
        let mut message = match error.kind() {
            minijinja::ErrorKind::OutOfFuel => format!(
                "the template ran out of its budget of {FUEL} steps (a loop too long, or endless?)"
            ),
            kind => kind.to_string(),
        };
        if let Some(detail) = error.detail() {
            message = format!("{message}: {detail}");
        }
        let budget = error.kind() == minijinja::ErrorKind::OutOfFuel
            || error.detail().is_some_and(|detail| {
                detail.contains("recursion limit exceeded")
                    || detail.contains("too large")
                    || detail.contains("too many elements")
            });
        TemplateError {
            message,
            line: error.line(),
            secret: None,
            budget,
        }
    }
}

/// How long all the renderings of one document may take together in
/// [`with_document_budget`] (a `check`, a `status`, a dry run, a page).
pub const DOCUMENT_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

thread_local! {
    /// When the document being rendered on this thread runs out of time.
    static DOCUMENT_DEADLINE: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `work` with every [`render`] on this thread sharing one
/// [`DOCUMENT_BUDGET`], so a document of many slow templates cannot hold
/// up a command for 5 s a cell. Nested calls share the outer budget.
pub fn with_document_budget<T>(work: impl FnOnce() -> T) -> T {
    let outer = DOCUMENT_DEADLINE.with(|d| d.get());
    if outer.is_none() {
        let deadline = std::time::Instant::now() + DOCUMENT_BUDGET;
        DOCUMENT_DEADLINE.with(|d| d.set(Some(deadline)));
    }
    let result = work();
    DOCUMENT_DEADLINE.with(|d| d.set(outer));
    result
}

/// Renders a template with `vars` for `target`, on a thread of its own so
/// that no template can hold up the caller longer than
/// [`RENDER_DEADLINE`], nor past the document's budget.
pub fn render(
    env: &Environment<'static>,
    template: &str,
    vars: &BTreeMap<String, Value>,
    target: impl Into<Target>,
) -> Result<String, TemplateError> {
    let target = target.into();
    if !has_template(template) {
        return Ok(template.to_string());
    }
    let left = DOCUMENT_DEADLINE
        .with(|d| d.get())
        .map(|deadline| deadline.saturating_duration_since(std::time::Instant::now()));
    if left.is_some_and(|left| left.is_zero()) {
        return Err(TemplateError {
            message: format!(
                "the document's templates took longer than {} to render in all",
                crate::duration::format_duration(DOCUMENT_BUDGET)
            ),
            line: None,
            secret: None,
            budget: true,
        });
    }
    let limit = left.map_or(RENDER_DEADLINE, |left| left.min(RENDER_DEADLINE));
    render_in_background(env, template, vars, target)
        .wait(limit)
        .unwrap_or_else(|| Err(too_slow(limit)))
}

/// A cell's code as it runs: its body rendered for the cell's target, or
/// the body as written under `templates: false`.
pub fn render_cell(
    env: &Environment<'static>,
    cell: &crate::document::Cell,
    vars: &BTreeMap<String, Value>,
) -> Result<String, TemplateError> {
    if cell.templated {
        render(env, &cell.body, vars, Target::of(cell))
    } else {
        Ok(cell.body.clone())
    }
}

/// The error for a rendering that did not end in time.
pub fn too_slow(deadline: std::time::Duration) -> TemplateError {
    TemplateError {
        message: format!(
            "the template took longer than {} to render",
            crate::duration::format_duration(deadline)
        ),
        line: None,
        secret: None,
        budget: true,
    }
}

/// A rendering under way on a thread of its own.
pub struct Rendering {
    receiver: std::sync::mpsc::Receiver<Result<String, TemplateError>>,
    /// Set when the rendering went over [`MAX_ALLOCATED`] and was stopped.
    over: Arc<std::sync::atomic::AtomicBool>,
}

impl Rendering {
    /// The result, or `None` when `limit` passes first. A rendering
    /// stopped for allocating too much is an error at once.
    pub fn wait(&self, limit: std::time::Duration) -> Option<Result<String, TemplateError>> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            let step = (deadline - now).min(std::time::Duration::from_millis(20));
            match self.receiver.recv_timeout(step) {
                Ok(result) => return Some(result),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Some(Err(TemplateError {
                        message: "the rendering failed".into(),
                        line: None,
                        secret: None,
                        budget: false,
                    }))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if self.over.load(std::sync::atomic::Ordering::SeqCst) {
                        return Some(Err(TemplateError {
                            message: format!(
                                "the template allocates more than {} MiB to render",
                                MAX_ALLOCATED / (1024 * 1024)
                            ),
                            line: None,
                            secret: None,
                            budget: true,
                        }));
                    }
                }
            }
        }
    }
}

/// Starts rendering on a thread of its own, with a budget of
/// [`MAX_ALLOCATED`] bytes. A rendering nobody waits for any longer ends
/// by itself when its fuel runs out, or stays stopped if it went over.
pub fn render_in_background(
    env: &Environment<'static>,
    template: &str,
    vars: &BTreeMap<String, Value>,
    target: Target,
) -> Rendering {
    let (sender, receiver) = std::sync::mpsc::channel();
    let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rendering = Rendering {
        receiver,
        over: over.clone(),
    };
    if !has_template(template) {
        let _ = sender.send(Ok(template.to_string()));
        return rendering;
    }
    let env = env.clone();
    let template = template.to_string();
    let vars = vars.clone();
    let spawned = std::thread::Builder::new()
        .name("render".into())
        .spawn(move || {
            budget::start(MAX_ALLOCATED, &over);
            let result = render_here(&env, &template, &vars, target);
            budget::stop();
            let _ = sender.send(result);
        });
    if let Err(error) = spawned {
        let (sender, receiver) = std::sync::mpsc::channel();
        let _ = sender.send(Err(TemplateError {
            message: format!("cannot start rendering: {error}"),
            line: None,
            secret: None,
            budget: false,
        }));
        return Rendering {
            receiver,
            over: rendering.over,
        };
    }
    rendering
}

/// A cap on what a rendering thread allocates, all its allocations added
/// up. minijinja bounds the steps a template takes (fuel) but not what one
/// step allocates (`'x' * 10**8`, then `a ~ a`, `| list`, `indent(10**9)`):
/// the process's allocator charges each allocation of a rendering thread to
/// its budget, and a thread over budget is stopped where it stands (it
/// sleeps, holding what it has, at most the budget) and flags it, so the
/// caller reports an error at once instead of the process running out of
/// memory. Threads that do not render are not charged.
mod budget {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The system allocator, charging rendering threads.
    pub struct Budgeted;

    /// `usize::MAX` on a thread that is not charged.
    const UNCHARGED: usize = usize::MAX;

    thread_local! {
        static LEFT: Cell<usize> = const { Cell::new(UNCHARGED) };
        static OVER: Cell<*const AtomicBool> = const { Cell::new(std::ptr::null()) };
    }

    /// Charges this thread from now on, `bytes` at most; `over` is set
    /// when it goes over. `over` must outlive the thread's charging.
    pub fn start(bytes: usize, over: &AtomicBool) {
        OVER.with(|o| o.set(over));
        LEFT.with(|left| left.set(bytes.min(UNCHARGED - 1)));
    }

    /// Stops charging this thread.
    pub fn stop() {
        LEFT.with(|left| left.set(UNCHARGED));
        OVER.with(|o| o.set(std::ptr::null()));
    }

    fn charge(bytes: usize) {
        let over = LEFT
            .try_with(|left| match left.get() {
                UNCHARGED => false,
                remaining if remaining >= bytes => {
                    left.set(remaining - bytes);
                    false
                }
                _ => true,
            })
            .unwrap_or(false);
        if !over {
            return;
        }
        let _ = OVER.try_with(|o| {
            let flag = o.get();
            if !flag.is_null() {
                // SAFETY: `start`'s caller keeps the flag alive while the
                // thread is charged, and a stopped thread never returns.
                unsafe { (*flag).store(true, Ordering::SeqCst) };
            }
        });
        loop {
            // SAFETY: a plain system call; nothing is allocated here.
            unsafe {
                libc::sleep(3600);
            }
        }
    }

    // SAFETY: every call goes to the system allocator unchanged; charging
    // only counts, or stops the calling thread before it allocates.
    unsafe impl GlobalAlloc for Budgeted {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            charge(layout.size());
            System.alloc(layout)
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            charge(layout.size());
            System.alloc_zeroed(layout)
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            charge(new_size.saturating_sub(layout.size()));
            System.realloc(ptr, layout, new_size)
        }
    }
}

#[global_allocator]
static ALLOCATOR: budget::Budgeted = budget::Budgeted;

/// Renders on the calling thread.
fn render_here(
    env: &Environment<'static>,
    template: &str,
    vars: &BTreeMap<String, Value>,
    target: Target,
) -> Result<String, TemplateError> {
    if template.contains([OPEN, CLOSE]) {
        return Err(TemplateError {
            message:
                "the text holds the noncharacter U+FDD0 or U+FDD1, which templates may not hold"
                    .into(),
            line: template
                .find([OPEN, CLOSE])
                .map(|at| template[..at].matches('\n').count() + 1),
            secret: None,
            budget: false,
        });
    }
    let secrets: BTreeSet<String> = vars
        .values()
        .filter_map(|v| as_secret(v).map(|s| s.name.clone()))
        .chain(secrets_in_env(vars))
        .collect();
    refuse_transformations(template, &secrets, target)?;
    TALLY.with(|t| *t.borrow_mut() = Tally::new());
    let result = render_bounded(env, template, vars, target);
    let tally = TALLY.with(|t| std::mem::take(&mut *t.borrow_mut()));
    let rendered = match result {
        Ok(rendered) => rendered,
        Err(mut error) => {
            error.secret = tally.refused.or(tally.transformed);
            return Err(error);
        }
    };
    if let Some(name) = tally.transformed {
        return Err(transformed(template, &name, None));
    }
    resolve_references(rendered, &tally.references, &tally.seal)
        .map_err(|name| transformed(template, &name, None))
}

/// Names of the secrets `env` stands in for.
fn secrets_in_env(vars: &BTreeMap<String, Value>) -> Vec<String> {
    let Some(env) = vars.get("env") else {
        return Vec::new();
    };
    let Ok(keys) = env.try_iter() else {
        return Vec::new();
    };
    keys.filter(|key| env.get_item(key).is_ok_and(|v| as_secret(&v).is_some()))
        .filter_map(|key| key.as_str().map(str::to_string))
        .collect()
}

/// Compiles and renders, the output capped at [`MAX_RENDERED`].
fn render_bounded(
    env: &Environment<'static>,
    template: &str,
    vars: &BTreeMap<String, Value>,
    target: Target,
) -> Result<String, TemplateError> {
    let source = if target == Target::Shell {
        escape_by_context(template)
    } else {
        template.to_string()
    };
    let compiled = env.template_from_named_str(target.template_name(), &source)?;
    let mut out = Capped::default();
    let result = compiled.render_captured_to(vars, &mut out).map(|_| ());
    match result {
        Ok(_) => String::from_utf8(out.text).map_err(|_| TemplateError {
            message: "the template rendered to text that is not UTF-8".into(),
            line: None,
            secret: None,
            budget: false,
        }),
        Err(error) if out.overflowed => Err(TemplateError {
            message: format!(
                "the template renders to more than {} MiB",
                MAX_RENDERED / (1024 * 1024)
            ),
            line: error.line(),
            secret: None,
            budget: true,
        }),
        Err(error) => Err(error.into()),
    }
}

/// A writer that takes at most [`MAX_RENDERED`] bytes.
#[derive(Default)]
struct Capped {
    text: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + bytes.len() > MAX_RENDERED {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text too long"));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The error for a secret the template did more with than place it.
fn transformed(template: &str, name: &str, expression: Option<&str>) -> TemplateError {
    let what = match expression {
        Some(expression) => format!("`{expression}` transforms secret {name}"),
        None => format!("the template transforms secret {name}"),
    };
    TemplateError {
        message: format!(
            "{what}, but a template never holds a secret's value: it only places a reference to ${name}; transform it in the shell instead, e.g. \"$(printf %s \"${name}\" | ...)\""
        ),
        line: line_of_use(template, name),
        secret: Some(name.to_string()),
        budget: false,
    }
}

/// Refuses, before rendering, every expression and statement that does
/// more with a secret than place it (`{{ S }}`, `{{ env.S }}`), and any
/// secret at all where none may stand.
fn refuse_transformations(
    template: &str,
    secrets: &BTreeSet<String>,
    target: Target,
) -> Result<(), TemplateError> {
    if secrets.is_empty() {
        return Ok(());
    }
    let mut rest = 0;
    while let Some(found) = template[rest..].find(['{']) {
        let start = rest + found;
        let tail = &template[start..];
        let close = if tail.starts_with("{{") {
            "}}"
        } else if tail.starts_with("{%") {
            "%}"
        } else {
            rest = start + 1;
            continue;
        };
        let Some(length) = tail.find(close) else {
            break;
        };
        let inner = &tail[2..length];
        rest = start + length + 2;
        let Some(name) = secrets.iter().find(|name| mentions(inner, name)) else {
            continue;
        };
        let line = Some(template[..start].matches('\n').count() + 1);
        let expression = inner
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+'])
            .trim();
        let placed = close == "}}"
            && [
                name.clone(),
                format!("env.{name}"),
                format!("env[\"{name}\"]"),
                format!("env['{name}']"),
            ]
            .contains(&expression.to_string());
        if placed {
            if matches!(target, Target::File | Target::Python | Target::Param) {
                return Err(TemplateError {
                    message: refusal_for(target, name),
                    line,
                    secret: Some(name.clone()),
                    budget: false,
                });
            }
            continue;
        }
        if let Some(field) = expression
            .strip_prefix(name.as_str())
            .filter(|f| f.starts_with(['.', '[']))
            .filter(|f| !f.contains(['|', '~', ' ', '(', ':', '+', '*']))
        {
            return Err(TemplateError {
                message: field_message(name, field),
                line,
                secret: Some(name.clone()),
                budget: false,
            });
        }
        let shown = if close == "}}" {
            format!("{{{{ {expression} }}}}")
        } else {
            format!("{{% {expression} %}}")
        };
        let mut error = transformed(template, name, Some(&shown));
        error.line = line;
        return Err(error);
    }
    Ok(())
}

/// Whether `text` names `name` as a whole word.
fn mentions(text: &str, name: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(is_word)
            && !text[at + name.len()..].chars().next().is_some_and(is_word)
    })
}

/// Removes the brackets around each reference to a secret; `Err(name)`
/// when the template changed one, dropped one or made one up.
fn resolve_references(
    rendered: String,
    references: &[(String, String)],
    seal: &str,
) -> Result<String, String> {
    let first = || {
        references
            .first()
            .map_or_else(|| "?".to_string(), |(n, _)| n.clone())
    };
    if references.is_empty() && !rendered.contains([OPEN, CLOSE]) {
        return Ok(rendered);
    }
    let mut out = String::with_capacity(rendered.len());
    let mut rest = rendered.as_str();
    let mut found = 0;
    while let Some(start) = rest.find(OPEN) {
        if rest[..start].contains(CLOSE) {
            return Err(first());
        }
        let after = &rest[start + OPEN.len_utf8()..];
        let Some(end) = after.find(CLOSE) else {
            return Err(first());
        };
        let Some(text) = after[..end]
            .strip_suffix(seal)
            .and_then(|t| t.strip_suffix(SEAL))
        else {
            return Err(first());
        };
        if text.contains(OPEN) || !references.iter().any(|(_, r)| r == text) {
            return Err(first());
        }
        out.push_str(&rest[..start]);
        out.push_str(text);
        found += 1;
        rest = &after[end + CLOSE.len_utf8()..];
    }
    if rest.contains(CLOSE) || found != references.len() {
        return Err(first());
    }
    out.push_str(rest);
    Ok(out)
}

/// Variables a template reads (top-level names only), or its syntax error.
pub fn template_variables(template: &str) -> Result<BTreeSet<String>, TemplateError> {
    if !has_template(template) {
        return Ok(BTreeSet::new());
    }
    let env = shared_environment();
    let compiled = env.template_from_str(template)?;
    Ok(compiled.undeclared_variables(false).into_iter().collect())
}

fn shared_environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(environment)
}

/// Names a shell cell reads as `$NAME` or `${NAME...}`.
pub fn shell_references(code: &str) -> BTreeSet<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)").expect("valid regex"));
    re.captures_iter(code).map(|c| c[1].to_string()).collect()
}

/// 1-based line of the template where `name` is first used, if found.
pub fn line_of_use(template: &str, name: &str) -> Option<usize> {
    let offset = offset_of_use(template, name)?;
    Some(template[..offset].matches('\n').count() + 1)
}

/// Byte offset of the first `{{`/`{%` that reads `name`, if found.
pub fn offset_of_use(template: &str, name: &str) -> Option<usize> {
    let re = Regex::new(&format!(r"(\{{\{{|\{{%)[^}}]*\b{}\b", regex::escape(name))).ok()?;
    Some(re.find(template)?.start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect()
    }

    #[test]
    fn quotes_values_in_shell_cells_only() {
        let env = environment();
        let v = vars(&[("A", "rg-dev"), ("B", "$(touch x)"), ("C", "it's")]);
        let out = render(
            &env,
            "echo {{ A }} {{ B }} {{ C }} {{ B | raw }}\n",
            &v,
            Target::Shell,
        )
        .unwrap();
        assert_eq!(out, "echo rg-dev '$(touch x)' 'it'\\''s' $(touch x)\n");
        let out = render(
            &env,
            "echo \"{{ B }}\" '{{ C }}' \"{{- A -}}\"\ncat <<EOF\n{{ B }}\nEOF\n",
            &v,
            Target::Shell,
        )
        .unwrap();
        assert_eq!(
            out,
            "echo \"\\$(touch x)\" 'it'\\''s' \"rg-dev\"\ncat <<EOF\n\\$(touch x)\nEOF\n"
        );
        let out = render(&env, "name: {{ B }}", &v, Target::File).unwrap();
        assert_eq!(out, "name: $(touch x)");
    }

    #[test]
    fn undefined_is_an_error_and_bash_syntax_survives() {
        let env = environment();
        let err = render(
            &env,
            "echo ok\necho {{ NOPE }}",
            &BTreeMap::new(),
            Target::Shell,
        )
        .unwrap_err();
        assert_eq!(err.line, Some(2));
        let code = "echo ${#arr[@]} {{ A }}";
        assert_eq!(
            render(&env, code, &vars(&[("A", "x")]), Target::Shell).unwrap(),
            "echo ${#arr[@]} x"
        );
    }

    #[test]
    fn finds_used_variables() {
        let used =
            template_variables("{{ A }} {% for x in L %}{{ x.y }}{{ env.HOME }}{% endfor %}")
                .unwrap();
        assert_eq!(
            used,
            ["A", "L", "env"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(
            shell_references("echo $A ${B:-x} $1 $$"),
            ["A", "B"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(line_of_use("a\nb {{ X }}\n", "X"), Some(2));
    }
}

/// A stand-in for a capture only a run can know, for dry runs and checks:
/// printed `<NAME.field>`. Any field of it is another stand-in.
#[derive(Debug)]
pub struct Placeholder {
    pub name: String,
}

impl Placeholder {
    pub fn value(name: &str) -> Value {
        Value::from_object(Placeholder {
            name: name.to_string(),
        })
    }
}

impl minijinja::value::Object for Placeholder {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = match key.as_str() {
            Some(field) => format!("{}.{field}", self.name),
            None => format!("{}[{key}]", self.name),
        };
        Some(Placeholder::value(&name))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}>", self.name)
    }
}

/// Whether a text holds template syntax at all; plain text renders as is.
pub fn has_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}
