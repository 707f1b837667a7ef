use crate::support::Test;

const DOC: &str = r#"---
title: Demo
runbook:
  params:
    RG: rg-dev
---
# Demo

```bash {id=login}
az account show --query id -o tsv
```

```kubectl {#ns capture=NS}
kubectl create namespace "$RG" --dry-run=client -o name
```

```yaml {file=sa.yaml}
metadata:
  namespace: {{ NS }}
```

```text
not a cell
```
"#;

#[test]
fn lists_cells_as_a_table() {
    let test = Test::new();
    test.write("lab.md", DOC);
    let run = test.run(&["list", "lab.md"]).code(0);
    insta::assert_snapshot!(run.stdout, @r#"
    #  ID     LANG     CAPTURES  USES  LINE  FIRST LINE
    1  login  bash     -         -        9  az account show --query id -o tsv
    2  ns     kubectl  NS        RG      13  kubectl create namespace "$RG" --dry-run=client -o name
    3  -      yaml     -         NS      17  metadata:
    "#);
}

#[test]
fn lists_cells_as_json_lines() {
    let test = Test::new();
    test.write("lab.md", DOC);
    let run = test.run(&["list", "lab.md", "--json"]).code(0);
    let rows: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["id"], "ns");
    assert_eq!(rows[1]["captures"], serde_json::json!(["NS"]));
    assert_eq!(rows[2]["uses"], serde_json::json!(["NS"]));
    assert_eq!(rows[2]["line"], 17);
}

#[test]
fn a_broken_runbook_names_file_and_line_and_exits_2() {
    let test = Test::new();
    test.write("bad.md", "# x\n\n```bash {timeout=soon}\ntrue\n```\n");
    let run = test.run(&["list", "bad.md"]).code(2);
    assert!(
        run.stderr.contains("error: invalid duration `soon`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("bad.md:3:10"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}
