// Drives a real headless Chromium against `runbook serve`, as a person
// would: run cells, watch output arrive, edit, stop, reload.
//
//   node tests/browser/serve.mjs                       the scenario (tests/browser.rs runs it)
//   node tests/browser/serve.mjs --screenshot FILE     the lab, run in the page, as a PNG
//
// Environment: RUNBOOK (the binary), WORK (a scratch folder), CHROMIUM
// (default /usr/bin/chromium).

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const runbook = process.env.RUNBOOK ?? join(root, "target/debug/runbook");
const work = process.env.WORK ?? "/tmp/runbook-browser";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

function serve(file, args = []) {
  const child = spawn(runbook, ["serve", file, "--port", "0", ...args], {
    cwd: work,
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const url = new Promise((done, fail) => {
    createInterface({ input: child.stdout }).once("line", done);
    child.once("exit", (code) => fail(new Error(`runbook serve exited with ${code}`)));
  });
  return { child, url };
}

async function stop(server) {
  const exited = new Promise((done) => server.child.once("exit", (code) => done(code)));
  server.child.kill("SIGINT");
  return exited;
}

const cell = (page, name) => page.locator(`.cell[data-name="${name}"]`);
const badge = (page, name) => cell(page, name).locator(".badge").first();

async function launch() {
  return chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
  });
}

async function scenario() {
  mkdirSync(work, { recursive: true });
  const doc = join(work, "demo.md");
  writeFileSync(
    doc,
    [
      "---",
      "runbook:",
      "  secrets: [PW, API_KEY]",
      "---",
      "# Demo",
      "",
      "Raw HTML from the internet: <img src=x onerror=\"window.pwned=1\"> <script>window.pwned=2</script>",
      "",
      "```bash {id=count}",
      "echo \"line 1\"",
      "while [ ! -e go ]; do sleep 0.05; done",
      "echo \"line 2\"",
      "```",
      "",
      "```bash {id=set}",
      "GREETING=hello-from-set",
      "```",
      "",
      "```bash {id=use}",
      "echo \"$GREETING world\"",
      "```",
      "",
      "```bash {id=nap}",
      "sleep 61",
      "```",
      "",
      "```bash {id=login confirm}",
      "echo \"logging in with $PW and ${#API_KEY} characters of key\"",
      "```",
      "",
    ].join("\n"),
  );
  const server = serve("demo.md", ["--secret", "PW=browser-secret-7h2k"]);
  const url = await server.url;
  const browser = await launch();
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    assert.equal(new URL(page.url()).search, "", "the token leaves the address bar");
    await page.locator(".cell").first().waitFor();
    assert.equal(await page.locator(".cell").count(), 5);

    // A secret nothing gives is asked for in a password field (until then
    // nothing runs, as with `runbook run`).
    const field = page.locator('input[type="password"][name="API_KEY"]');
    await field.fill("key-from-the-page-31x");
    await page.getByRole("button", { name: "Set" }).click();
    await field.waitFor({ state: "detached" });

    // Output appears while the cell prints: line 1 shows, line 2 cannot yet.
    await cell(page, "count").getByRole("button", { name: "Run", exact: true }).click();
    await cell(page, "count").locator("pre.output").filter({ hasText: "line 1" }).waitFor();
    assert.equal(await badge(page, "count").textContent(), "running");
    assert.equal(await cell(page, "count").locator("pre.output").textContent(), "line 1\n");
    writeFileSync(join(work, "go"), "");
    await cell(page, "count").locator("pre.output").filter({ hasText: "line 2" }).waitFor();
    await page.waitForFunction(() => document.querySelector('.cell[data-name="count"] .badge').textContent === "passed");
    assert.match(readFileSync(doc, "utf8"), /```output\nline 1\nline 2\n```/);

    // Shift+Enter runs the focused cell and moves on; the second cell sees
    // the first one's shell variable (one kernel between clicks).
    await cell(page, "set").focus();
    await page.keyboard.press("Shift+Enter");
    await page.waitForFunction(() => document.activeElement?.dataset?.name === "use");
    await page.keyboard.press("Shift+Enter");
    await cell(page, "use").locator("pre.output").filter({ hasText: "hello-from-set world" }).waitFor();
    await page.waitForFunction(() => document.querySelector('.cell[data-name="use"] .badge').textContent === "passed");
    assert.match(readFileSync(doc, "utf8"), /```output\nhello-from-set world\n```/);

    // Edit a cell: the Markdown on disk changes in that cell only.
    const before = readFileSync(doc, "utf8");
    await cell(page, "use").getByRole("button", { name: "Edit" }).click();
    await cell(page, "use").locator("textarea").fill('echo "$GREETING edited"');
    await cell(page, "use").getByRole("button", { name: "Save" }).click();
    await cell(page, "use").locator("pre.code").filter({ hasText: "edited" }).waitFor();
    assert.equal(readFileSync(doc, "utf8"), before.replace('echo "$GREETING world"', 'echo "$GREETING edited"'));
    await page.waitForFunction(() => document.querySelector('.cell[data-name="use"] .badge.stale'));

    // Interrupt a sleep.
    await cell(page, "nap").getByRole("button", { name: "Run", exact: true }).click();
    await page.waitForFunction(() => document.querySelector('.cell[data-name="nap"] .badge').textContent === "running");
    await page.getByRole("button", { name: "Stop" }).click();
    await page.waitForFunction(() => document.querySelector('.cell[data-name="nap"] .badge').textContent === "interrupted");
    assert.match(readFileSync(doc, "utf8"), /```output \{exit=130\}\n\[runbook: interrupted\]\n```/);

    // A confirm cell asks in the page.
    await cell(page, "login").getByRole("button", { name: "Run", exact: true }).click();
    await page.getByRole("alertdialog").filter({ hasText: "Run cell login" }).waitFor();
    await page.getByRole("button", { name: "Run it" }).click();
    // The secret: masked in the output and the variables panel, absent from the page.
    await cell(page, "login").locator("pre.output").filter({ hasText: "logging in with [masked:PW] and 21 characters of key" }).waitFor();
    await page.waitForFunction(() => document.querySelector('.cell[data-name="login"] .badge').textContent === "passed");
    await page.locator("#var-rows").filter({ hasText: "[masked:PW]" }).waitFor();

    // Reload: the same state comes back.
    const look = () =>
      page.$$eval(".cell", (cells) =>
        cells.map((c) => [c.dataset.name, c.querySelector(".badge").textContent, c.querySelector("pre.output")?.textContent ?? ""]),
      );
    const shown = await look();
    await page.reload();
    await page.locator(".cell").first().waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll(".cell")].filter((c) => c.querySelector(".badge")).length === 5);
    assert.deepEqual(await look(), shown);

    // Restart kernels: the shell variable is gone; Run to here brings it back.
    await page.getByRole("button", { name: "Restart kernels" }).click();
    await cell(page, "use").getByRole("button", { name: "Run", exact: true }).click();
    await page.waitForFunction(() => document.querySelector('.cell[data-name="use"] pre.output')?.textContent === " edited");
    await cell(page, "use").getByRole("button", { name: "Run to here" }).click();
    await cell(page, "use").locator("pre.output").filter({ hasText: "hello-from-set edited" }).waitFor();

    // The runbook's raw HTML did not run, and no secret reached the page.
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    const html = await page.content();
    assert.ok(!html.includes("browser-secret-7h2k"));
    assert.ok(!html.includes("key-from-the-page-31x"));
    assert.ok(!readFileSync(doc, "utf8").includes("key-from-the-page-31x"));
    assert.ok(!(await page.locator(".prose script, .prose [onerror]").count()));
    assert.deepEqual(errors, []);
    console.log("browser scenario: passed", JSON.stringify(shown));
  } finally {
    await browser.close();
    const code = await stop(server);
    assert.equal(code, 0, "serve exits 0 on Ctrl-C");
  }
}

async function screenshot(target) {
  mkdirSync(work, { recursive: true });
  for (const folder of ["runbooks", "fixtures"]) cpSync(join(root, folder), join(work, folder), { recursive: true });
  const server = serve("runbooks/aks-workload-identity.md");
  const url = await server.url;
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, colorScheme: "light" });
    await page.goto(url);
    await page.locator(".cell").first().waitFor();
    await page.getByRole("button", { name: "Run all" }).click();
    await page.waitForFunction(
      () => document.querySelector("#activity").textContent === "idle" &&
        [...document.querySelectorAll(".cell .badge")].filter((b) => b.textContent === "passed").length >= 50,
      null,
      { timeout: 120000 },
    );
    await cell(page, "oidc-issuer").scrollIntoViewIfNeeded().catch(() => {});
    const heading = page.locator("h2").nth(2);
    await heading.evaluate((h) => h.scrollIntoView({ block: "start" }));
    await page.evaluate(() => window.scrollBy(0, -60));
    await page.screenshot({ path: target });
    console.log(`wrote ${target}`);
  } finally {
    await browser.close();
    await stop(server);
  }
}

if (!existsSync(executablePath)) {
  console.error(`no chromium at ${executablePath}`);
  process.exit(3);
}
const at = process.argv.indexOf("--screenshot");
if (at > 0) await screenshot(resolve(process.argv[at + 1]));
else await scenario();
