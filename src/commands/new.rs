//! `runbook new`: a small starter runbook that shows the pieces (front
//! matter params, a capture, a template, a file cell) and that `check` and
//! `run` pass on any machine with bash.

pub const STARTER: &str = r#"---
runbook:
  params:
    GREETING: hello
    WHO: "{{ GREETING }}, world"
---
# My runbook

Each fenced `bash` block is a cell: `runbook run` runs them in order and
writes each one's output under it. Change the params with
`--set GREETING=hi`.

Capture what a cell prints into a variable:

```bash {id=today capture=TODAY}
date +%Y-%m-%d
```

Later cells see it as `$TODAY`, and templates as `{{ TODAY }}`:

```bash {id=greet}
echo "$WHO (on {{ TODAY }})"
```

A file cell is rendered and written beside the runbook:

```yaml {file=out/greeting.yaml}
greeting: "{{ WHO }}"
day: "{{ TODAY }}"
```

```bash {id=show}
cat out/greeting.yaml | head -n 1
```
"#;
