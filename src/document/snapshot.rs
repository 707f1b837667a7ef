//! Comparing a fresh output with its recorded block, trycmd style: `[..]`
//! in a recorded line matches any text within the line, and a line holding
//! only `...` matches any number of lines.

/// Whether `recorded` holds wildcards at all.
pub fn has_wildcards(recorded: &str) -> bool {
    recorded.contains("[..]") || recorded.lines().any(|l| l.trim() == "...")
}

/// Whether `actual` matches `recorded` with its wildcards.
pub fn matches(recorded: &str, actual: &str) -> bool {
    let expected: Vec<&str> = if recorded.is_empty() {
        Vec::new()
    } else {
        recorded.split('\n').collect()
    };
    let actual: Vec<&str> = if actual.is_empty() {
        Vec::new()
    } else {
        actual.split('\n').collect()
    };
    lines_match(&expected, &actual)
}

/// Line-by-line matching in time proportional to the two lengths'
/// product, however many `...` lines there are (no backtracking blow-up):
/// `can[j]` says whether the pattern so far matches the first `j` lines.
fn lines_match(expected: &[&str], actual: &[&str]) -> bool {
    let mut can = vec![false; actual.len() + 1];
    can[0] = true;
    for pattern in expected {
        if pattern.trim() == "..." {
            // Any number of lines: reachable from any earlier point.
            for j in 1..=actual.len() {
                can[j] = can[j] || can[j - 1];
            }
        } else {
            for j in (1..=actual.len()).rev() {
                can[j] = can[j - 1] && line_matches(pattern, actual[j - 1]);
            }
            can[0] = false;
        }
    }
    can[actual.len()]
}

fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || line.len() < first.len() + last.len() || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A unified diff from the recorded output to the fresh one.
pub fn diff(recorded: &str, actual: &str, color: bool) -> String {
    let recorded = format!("{recorded}\n");
    let actual = format!("{actual}\n");
    let diff = similar::TextDiff::from_lines(&recorded, &actual);
    let mut out = String::new();
    for hunk in diff
        .unified_diff()
        .context_radius(3)
        .header("recorded", "fresh")
        .iter_hunks()
    {
        for (i, line) in hunk.to_string().lines().enumerate() {
            let paint = match line.chars().next() {
                _ if !color || i == 0 => None,
                Some('+') => Some("32"),
                Some('-') => Some("31"),
                _ => None,
            };
            match paint {
                Some(code) => out.push_str(&format!("\x1b[{code}m{line}\x1b[0m\n")),
                None => out.push_str(&format!("{line}\n")),
            }
        }
    }
    format!("--- recorded\n+++ fresh\n{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("id: [..]", "id: 42"));
        assert!(matches("a [..] c [..]", "a b c d"));
        assert!(!matches("a [..] c", "a b d"));
        assert!(matches("start\n...\nend", "start\nx\ny\nend"));
        assert!(matches("start\n...\nend", "start\nend"));
        assert!(!matches("start\n...\nend", "start\nx"));
        assert!(matches("...", ""));
        assert!(matches("plain", "plain"));
        assert!(!matches("plain", "plain\nmore"));
        assert!(has_wildcards("x [..]"));
        assert!(!has_wildcards("x [.]"));
        assert!(matches("a\n...\nb\n...\nc", "a\nx\nb\ny\nz\nc"));
        assert!(!matches("a\n...\nb\n...\nc", "a\nx\nc"));
    }

    #[test]
    fn many_ellipses_match_in_polynomial_time() {
        // With backtracking, 40 `...` lines against 2,000 lines that never
        // match would take longer than the universe has.
        let pattern = format!("{}\nnever", vec!["..."; 40].join("\n"));
        let actual = vec!["x"; 2000].join("\n");
        assert!(!matches(&pattern, &actual));
    }

    #[test]
    fn unified_diff() {
        let text = diff("a\nb\nc", "a\nB\nc", false);
        assert!(text.contains("-b\n+B\n"), "{text}");
    }
}
