//! Turning what a process printed into the text of an output block: ANSI
//! escapes stripped, carriage-return overwrites resolved, size capped.

/// Limits on a recorded output block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub lines: usize,
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            lines: 200,
            bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// Parses `--max-output`: `LINES`, `SIZE` (`64KiB`, `1MiB`, `500B`) or
    /// both separated by a comma: `500,128KiB`.
    pub fn parse(text: &str) -> Result<Limits, String> {
        let mut limits = Limits::default();
        for part in text.split(',').map(str::trim) {
            if let Ok(lines) = part.parse::<usize>() {
                limits.lines = lines;
                continue;
            }
            let lower = part.to_ascii_lowercase();
            let (number, unit) = lower.split_at(
                lower
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(lower.len()),
            );
            let number: usize = number
                .parse()
                .map_err(|_| format!("invalid output limit `{part}`"))?;
            let scale = match unit {
                "b" => 1,
                "k" | "kb" | "kib" => 1024,
                "m" | "mb" | "mib" => 1024 * 1024,
                _ => return Err(format!("invalid output limit `{part}` (use LINES, SIZE like 64KiB, or both: 200,64KiB)")),
            };
            limits.bytes = number * scale;
        }
        Ok(limits)
    }
}

/// Removes ANSI escape sequences and resolves `\r`: text after a carriage
/// return overwrites the line, as a terminal would show it.
pub fn clean(raw: &str) -> String {
    let mut resolved = String::with_capacity(raw.len());
    for (i, line) in raw.split('\n').enumerate() {
        if i > 0 {
            resolved.push('\n');
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        resolved.push_str(line.rsplit('\r').next().unwrap_or(line));
    }
    strip_ansi_escapes::strip_str(resolved)
}

/// The text of an output block: cleaned, without a final newline, and cut
/// to `limits` keeping the head and the tail with a note of what was left out.
pub fn block_text(raw: &str, limits: Limits) -> String {
    let cleaned = clean(raw);
    let text = cleaned.strip_suffix('\n').unwrap_or(&cleaned);
    let lines: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    };
    if lines.len() <= limits.lines && text.len() <= limits.bytes {
        return text.to_string();
    }
    // Keep whole lines from both ends within half the budget each.
    let half_lines = (limits.lines / 2).max(1);
    let half_bytes = limits.bytes / 2;
    let mut head = Vec::new();
    let mut size = 0;
    for line in &lines {
        if head.len() >= half_lines || size + line.len() + 1 > half_bytes {
            break;
        }
        size += line.len() + 1;
        head.push(*line);
    }
    let mut tail = Vec::new();
    size = 0;
    for line in lines[head.len()..].iter().rev() {
        if tail.len() >= half_lines || size + line.len() + 1 > half_bytes {
            break;
        }
        size += line.len() + 1;
        tail.push(*line);
    }
    tail.reverse();
    let omitted = &lines[head.len()..lines.len() - tail.len()];
    let omitted_bytes: usize = omitted.iter().map(|l| l.len() + 1).sum();
    let mut result: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    let plural = if omitted.len() == 1 { "" } else { "s" };
    result.push(format!(
        "[... {} line{plural} ({}) left out ...]",
        omitted.len(),
        human_bytes(omitted_bytes)
    ));
    result.extend(tail.iter().map(|s| s.to_string()));
    result.join("\n")
}

pub fn human_bytes(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi_and_resolves_carriage_returns() {
        assert_eq!(
            clean("\x1b[32mok\x1b[0m\r\nprogress 10%\rprogress 100%\n"),
            "ok\nprogress 100%\n"
        );
    }

    #[test]
    fn caps_long_outputs_keeping_head_and_tail() {
        let raw: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        let text = block_text(
            &raw,
            Limits {
                lines: 10,
                bytes: 1 << 20,
            },
        );
        assert_eq!(
            text,
            "line 1\nline 2\nline 3\nline 4\nline 5\n[... 990 lines (8.6 KiB) left out ...]\nline 996\nline 997\nline 998\nline 999\nline 1000"
        );
        let text = block_text(
            &"x".repeat(100),
            Limits {
                lines: 10,
                bytes: 10,
            },
        );
        assert_eq!(text, "[... 1 line (101 B) left out ...]");
        assert_eq!(block_text("a\nb\n", Limits::default()), "a\nb");
    }

    #[test]
    fn parses_limits() {
        assert_eq!(
            Limits::parse("500").unwrap(),
            Limits {
                lines: 500,
                bytes: 65536
            }
        );
        assert_eq!(
            Limits::parse("500,1MiB").unwrap(),
            Limits {
                lines: 500,
                bytes: 1 << 20
            }
        );
        assert_eq!(Limits::parse("2KiB").unwrap().bytes, 2048);
        assert!(Limits::parse("lots").is_err());
    }
}
