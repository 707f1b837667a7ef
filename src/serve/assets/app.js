// The page of `runbook serve`. Everything the document holds goes in as
// text (textContent), never as markup; only the server's sanitised prose
// HTML is set as HTML.

const $ = (id) => document.getElementById(id);
const state = { model: null, editing: new Map(), focus: null, pending: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07]*\x07/g;
const plain = (text) => text.replace(ANSI, "").replace(/\r\n/g, "\n");

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  if (!response.ok && response.status !== 409) throw new Error(await response.text());
  return response;
}

function run(what, cell) {
  return post("/api/run", { what, cell });
}

function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

async function refresh() {
  const response = await fetch("/api/model");
  if (!response.ok) {
    $("activity").textContent = `error ${response.status}`;
    return;
  }
  state.model = await response.json();
  render();
}

// Many changes come at once (a cell ends, the file is written): fetch once.
function soon() {
  if (state.pending) return;
  state.pending = setTimeout(() => {
    state.pending = null;
    refresh();
  }, 40);
}

function render() {
  const model = state.model;
  document.title = `${model.file} · runbook`;
  $("file").textContent = model.file;
  const activity = $("activity");
  if (model.running) {
    activity.textContent = `running cell ${model.running}` + (model.queued ? `, ${model.queued} queued` : "");
    activity.className = "pill running";
  } else {
    activity.textContent = model.queued ? `${model.queued} queued` : "idle";
    activity.className = "pill";
  }
  renderNotices(model);
  renderVariables(model.variables);
  const scroll = window.scrollY;
  const pieces = $("pieces");
  sync(
    pieces,
    model.pieces.map((piece) => {
      if (piece.kind === "prose") {
        return {
          key: `prose:${piece.html}`,
          look: "",
          build: () => {
            const div = el("div", { class: "prose" });
            div.innerHTML = piece.html; // sanitised by the server
            return div;
          },
        };
      }
      const cell = model.cells[piece.index];
      // A cell being edited is left as it is: its editor keeps its text,
      // caret and focus whatever else changes.
      const editing = state.editing.has(cell.name);
      const look = editing ? "editing" : JSON.stringify([cell, model.running === cell.name]);
      return { key: `cell:${cell.name}`, look, build: () => renderCell(cell) };
    }),
  );
  window.scrollTo(0, scroll);
  if (!document.activeElement || document.activeElement === document.body) {
    const cell = state.focus && pieces.querySelector(`.cell[data-name="${CSS.escape(state.focus)}"]`);
    (cell?.querySelector("textarea") ?? cell)?.focus({ preventScroll: true });
  }
}

// What each node shows, so that a render replaces only what changed.
const shown = new WeakMap();

function sync(container, items) {
  const existing = [...container.children];
  items.forEach((item, i) => {
    const node = existing[i];
    const was = node && shown.get(node);
    if (was && was.key === item.key && was.look === item.look) return;
    const fresh = item.build();
    shown.set(fresh, { key: item.key, look: item.look });
    if (node) node.replaceWith(fresh);
    else container.append(fresh);
  });
  for (const node of existing.slice(items.length)) node.remove();
}

function renderNotices(model) {
  const notices = [];
  for (const problem of [...model.problems, ...model.refused]) {
    const where = problem.line ? `${model.file}:${problem.line}: ` : "";
    notices.push(el("div", { class: problem.error ? "notice" : "notice problem warning" }, where + problem.message));
  }
  if (model.prompt) {
    const { id, text } = model.prompt;
    notices.push(
      el("div", { class: "ask", role: "alertdialog" },
        el("p", {}, text),
        el("button", { class: "primary", onclick: () => post("/api/answer", { id, yes: true }) }, "Run it"),
        " ",
        el("button", { onclick: () => post("/api/answer", { id, yes: false }) }, "Skip"),
      ),
    );
  }
  for (const name of model.missing_secrets) {
    const input = el("input", { type: "password", name, autocomplete: "off", placeholder: name, "aria-label": name });
    notices.push(
      el("div", { class: "ask" },
        el("form", {
          onsubmit: (event) => {
            event.preventDefault();
            post("/api/secret", { name, value: input.value });
            input.value = "";
          },
        },
          el("label", {}, `Secret ${name} has no value; it stays in the server's memory only:`),
          input,
          el("button", { class: "primary", type: "submit" }, "Set"),
        ),
      ),
    );
  }
  $("notices").replaceChildren(...notices);
}

function renderVariables(variables) {
  $("var-rows").replaceChildren(
    ...variables.map((v) =>
      el("tr", {},
        el("td", { title: v.name }, el("code", {}, v.name)),
        el("td", { title: v.value }, v.value),
        el("td", { title: v.exported ? `exported by ${v.from}` : v.from }, v.from),
      ),
    ),
  );
}

function renderCell(cell) {
  const running = state.model.running === cell.name;
  const status = running ? "running" : cell.status;
  const node = el("section", {
    class: "cell" + (running ? " running" : ""),
    tabindex: "0",
    "data-name": cell.name,
    "aria-label": `cell ${cell.name}`,
  });
  node.addEventListener("focusin", () => (state.focus = cell.name));
  node.addEventListener("keydown", (event) => onKey(event, cell));
  const bar = el("div", { class: "cell-bar" },
    el("span", { class: "lang" }, cell.file ? `file ${cell.file}` : cell.lang),
    el("span", { class: "attrs" }, cell.attributes),
    el("span", { class: "attrs" }, `line ${cell.line}`),
    el("span", { class: "spacer" }),
    el("span", { class: `badge ${status ?? ""}`, title: "last result" }, status ?? "never run"),
    cell.exit !== null && status !== "running" ? el("span", { class: "badge", title: "exit status" }, `exit ${cell.exit}`) : null,
    cell.duration_ms !== null && status !== "running" ? el("span", { class: "badge", title: "duration" }, duration(cell.duration_ms)) : null,
    cell.stale ? el("span", { class: "badge stale", title: "changed since it last ran" }, "stale") : null,
    el("button", { title: "Run this cell (Shift+Enter)", onclick: () => run("cell", cell.name) }, "Run"),
    el("button", { title: "Run this cell and every one after it", onclick: () => run("from", cell.name) }, "Run from here"),
    el("button", { title: "Run every cell up to this one", onclick: () => run("to", cell.name) }, "Run to here"),
    el("button", { title: "Edit the code", onclick: () => startEdit(cell) }, "Edit"),
  );
  node.append(bar);
  for (const problem of cell.problems) {
    node.append(el("div", { class: problem.error ? "problem" : "problem warning" }, `${state.model.file}:${problem.line}: ${problem.message}`));
  }
  if (state.editing.has(cell.name)) {
    node.append(...editor(cell));
  } else {
    node.append(el("pre", { class: "code" }, el("code", {}, cell.body)));
  }
  const live = cell.run;
  // While it runs, what it prints; after, the block recorded in the file
  // (what this server saw, when nothing was recorded: `output=none`).
  const showLive = live && (running || (!cell.output && live.text));
  if (showLive) {
    node.append(el("div", { class: "output-head" }, running ? "output (live)" : "output of the last run here"));
    node.append(el("pre", { class: "output live", "data-live": cell.name }, plain(live.text)));
  } else if (cell.output) {
    node.append(el("div", { class: "output-head" }, cell.output.exit ? `output, exit ${cell.output.exit}` : "output"));
    node.append(el("pre", { class: "output" + (cell.output.exit ? " failed" : "") }, cell.output.text));
  }
  if (live?.message) node.append(el("div", { class: "message" }, live.message));
  return node;
}

function editor(cell) {
  const draft = state.editing.get(cell.name);
  const area = el("textarea", { class: "editor", spellcheck: "false", "aria-label": `code of cell ${cell.name}` });
  area.value = draft.text;
  area.rows = Math.min(30, draft.text.split("\n").length + 1);
  area.addEventListener("input", () => (draft.text = area.value));
  const note = el("span", { class: "hint", role: "status" }, draft.note ?? "");
  draft.noteEl = note;
  return [
    area,
    el("div", { class: "edit-actions" },
      el("button", { class: "primary", onclick: () => save(cell) }, "Save"),
      el("button", { onclick: () => { state.editing.delete(cell.name); render(); } }, "Cancel"),
      note,
    ),
  ];
}

function startEdit(cell) {
  state.editing.set(cell.name, { was: cell.body, text: cell.body });
  state.focus = cell.name;
  render();
}

async function save(cell) {
  const draft = state.editing.get(cell.name);
  const response = await post(`/api/cells/${encodeURIComponent(cell.name)}`, { was: draft.was, body: draft.text });
  if (response.status === 409) {
    draft.note = await response.text();
    if (draft.noteEl) draft.noteEl.textContent = draft.note;
    return false;
  }
  state.editing.delete(cell.name);
  await refresh();
  return true;
}

async function onKey(event, cell) {
  const inEditor = event.target.tagName === "TEXTAREA";
  if (event.key === "Escape" && inEditor) {
    state.editing.delete(cell.name);
    render();
    return;
  }
  if (event.key !== "Enter" || !event.shiftKey) return;
  if (!inEditor && event.target.tagName !== "SECTION") return;
  event.preventDefault();
  if (inEditor && !(await save(cell))) return;
  run("cell", cell.name);
  const cells = [...document.querySelectorAll(".cell")];
  const here = cells.findIndex((c) => c.dataset.name === cell.name);
  const next = cells[here + 1];
  if (next) {
    state.focus = next.dataset.name;
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  }
}

function onOutput(message) {
  const cell = state.model?.cells.find((c) => c.name === message.cell);
  if (cell) {
    cell.run = cell.run ?? { text: "" };
    cell.run.text += message.text;
  }
  const pre = document.querySelector(`pre[data-live="${CSS.escape(message.cell)}"]`);
  if (pre) {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(plain(message.text));
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  } else {
    soon();
  }
}

function connect() {
  const events = new EventSource("/api/events");
  events.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "output") onOutput(message);
    else if (message.type === "hello") refresh();
    else soon();
  };
  events.onerror = () => {
    $("activity").textContent = "disconnected";
    $("activity").className = "pill";
  };
}

$("run-all").addEventListener("click", () => run("all"));
$("stop").addEventListener("click", () => post("/api/stop"));
$("restart").addEventListener("click", () => post("/api/restart"));
$("toggle-vars").addEventListener("click", (event) => {
  const hidden = $("layout").classList.toggle("novars");
  event.target.setAttribute("aria-expanded", String(!hidden));
});
connect();
