//! Turning what a process printed into the text of an output block: secrets
//! masked, ANSI escapes stripped, carriage-return overwrites resolved as a
//! terminal shows them, size capped. Memory stays bounded by the cap
//! whatever a cell prints.

use crate::secrets::Masker;

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
    /// both separated by a comma: `500,128KiB`. Zero, an overflowing size,
    /// and more than one count of either kind are refused.
    pub fn parse(text: &str) -> Result<Limits, String> {
        let mut limits = Limits::default();
        let (mut lines_given, mut bytes_given) = (false, false);
        let usage = "use LINES, SIZE like 64KiB, or both: 200,64KiB";
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() > 2 {
            return Err(format!("invalid output limit `{text}` ({usage})"));
        }
        for part in parts {
            if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
                let lines: usize = part
                    .parse()
                    .map_err(|_| format!("output limit `{part}` is too large"))?;
                if lines_given || lines == 0 {
                    return Err(format!(
                        "invalid output limit `{text}` ({usage}; zero is not a limit)"
                    ));
                }
                lines_given = true;
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
                .map_err(|_| format!("invalid output limit `{part}` ({usage})"))?;
            let scale: usize = match unit {
                "b" => 1,
                "k" | "kb" | "kib" => 1024,
                "m" | "mb" | "mib" => 1024 * 1024,
                "g" | "gb" | "gib" => 1024 * 1024 * 1024,
                _ => return Err(format!("invalid output limit `{part}` ({usage})")),
            };
            let bytes = number
                .checked_mul(scale)
                .ok_or_else(|| format!("output limit `{part}` is too large"))?;
            if bytes_given || bytes == 0 {
                return Err(format!(
                    "invalid output limit `{text}` ({usage}; zero is not a limit)"
                ));
            }
            bytes_given = true;
            limits.bytes = bytes;
        }
        Ok(limits)
    }
}

/// Bytes kept beyond the limit at each end, so a cut can fall on a line
/// and a secret boundary.
const SLACK: usize = 16 * 1024;

/// What a cell printed, held within bounds whatever its size: the first
/// and the last bytes the recording limit can use, and a count of what
/// fell between them.
#[derive(Debug, Default)]
pub struct Recording {
    /// Per stream, the start of a line not yet complete: streams are
    /// merged line by line, never in the middle of a line.
    partial: [Vec<u8>; 2],
    head: Vec<u8>,
    tail: Vec<u8>,
    keep: usize,
    dropped_bytes: usize,
    dropped_newlines: usize,
}

impl Recording {
    pub fn new(limits: Limits) -> Recording {
        Recording {
            keep: limits.bytes.saturating_add(SLACK),
            ..Recording::default()
        }
    }

    /// Takes what one stream (0 stdout, 1 stderr) printed; whole lines go
    /// in at once, so another stream's line never lands inside one.
    pub fn push_stream(&mut self, stream: usize, bytes: &[u8]) {
        self.partial[stream].extend_from_slice(bytes);
        let end = match self.partial[stream].iter().rposition(|&b| b == b'\n') {
            Some(at) => at + 1,
            None if self.partial[stream].len() > SLACK => self.partial[stream].len(),
            None => return,
        };
        let lines: Vec<u8> = self.partial[stream].drain(..end).collect();
        self.push(&lines);
    }

    /// Puts in what is left of unfinished lines.
    pub fn finish(&mut self) {
        for stream in 0..2 {
            let rest = std::mem::take(&mut self.partial[stream]);
            self.push(&rest);
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < self.keep {
            let take = (self.keep - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > self.keep.saturating_mul(2) {
            let cut = self.tail.len() - self.keep;
            self.dropped_bytes += cut;
            self.dropped_newlines += self.tail[..cut].iter().filter(|&&b| b == b'\n').count();
            self.tail.drain(..cut);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty() && self.partial.iter().all(Vec::is_empty)
    }

    /// Appends a line of the tool's own (a note on how the cell ended).
    pub fn note(&mut self, note: &str) {
        let last = self.tail.last().or(self.head.last());
        if last.is_some_and(|&b| b != b'\n') {
            self.push(b"\n");
        }
        self.push(note.as_bytes());
        self.push(b"\n");
    }

    /// The text of the output block: masked, cleaned, masked again, then
    /// cut to `limits`. Masking comes before the cut, and a cut never keeps
    /// part of a secret.
    pub fn text(&self, limits: Limits, masker: &Masker) -> String {
        if self.dropped_bytes == 0 {
            let mut raw = self.head.clone();
            raw.extend_from_slice(&self.tail);
            return cap(&clean_masked(&raw, masker), None, "", limits);
        }
        let head = clean_masked(&self.head, masker);
        let tail = clean_masked(&self.tail, masker);
        // Whole lines only, and no part of a secret, at either edge.
        let mut head_end = head.rfind('\n').map_or(0, |i| i + 1);
        head_end -= masker.partial_at_end(&head[..head_end]);
        let mut tail_start = tail.find('\n').map_or(tail.len(), |i| i + 1);
        tail_start += masker.partial_at_start(&tail[tail_start..]);
        let cut = |s: &str| (s.matches('\n').count(), s.len());
        let (head_lines, head_bytes) = cut(&head[head_end..]);
        let (tail_lines, tail_bytes) = cut(&tail[..tail_start]);
        let middle = (
            head_lines + self.dropped_newlines + tail_lines,
            head_bytes + self.dropped_bytes + tail_bytes,
        );
        cap(&head[..head_end], Some(middle), &tail[tail_start..], limits)
    }
}

/// What a process printed, masked, cleaned and masked again: a secret is
/// masked as it was printed, before cleaning can change it (a `\r` inside
/// a secret would otherwise let its end overwrite its start), and again in
/// the forms that only show once control characters are gone.
fn clean_masked(raw: &[u8], masker: &Masker) -> String {
    masker.mask(&clean(&masker.mask(&String::from_utf8_lossy(raw))))
}

/// The deliberate changes between what a process printed and what is
/// recorded, the only ones besides masking and the size cap: terminal
/// control sequences (ANSI escapes, 7-bit and 8-bit, and the other control
/// characters: bell, backspace, NUL...) are removed, and a line holding a
/// carriage return is shown as a terminal shows it: `\r` moves back to the
/// start of the line, a character overwrites the one under it, a tab moves
/// on to the next multiple of 8 without erasing. Cells a tab passed over
/// beyond the end of the line stay a tab while none of them is overwritten,
/// and become spaces when one is. A `\r` just before the line feed (CRLF)
/// only ends the line. Everything else, tabs included, is kept byte for
/// byte.
pub fn clean(raw: &str) -> String {
    let mut text = Text::default();
    let mut parser: vte::Parser = vte::Parser::new();
    parser.advance(&mut text, raw.as_bytes());
    text.end_line();
    text.out
}

/// Width of a tab stop.
const TAB: usize = 8;

/// One cell of a line: a character, or part of the gap a tab left beyond
/// the end of the line (by the index of that tab's gap).
#[derive(Clone, Copy)]
enum Cell {
    Char(char),
    Tab(usize),
}

/// What a terminal shows as text: printed characters, line feeds and tabs,
/// with carriage returns resolved one line at a time.
#[derive(Default)]
struct Text {
    out: String,
    line: Vec<Cell>,
    /// Per tab gap of the line: whether no cell of it was overwritten.
    gaps: Vec<bool>,
    cursor: usize,
    /// A `\r` seen, which takes effect if anything but a line feed follows.
    returned: bool,
}

impl Text {
    /// A `\r` followed by more of the line moves back to its start.
    fn resolve_return(&mut self) {
        if self.returned {
            self.returned = false;
            self.cursor = 0;
        }
    }

    fn end_line(&mut self) {
        let mut cells = self.line.iter().peekable();
        while let Some(&cell) = cells.next() {
            match cell {
                Cell::Char(c) => self.out.push(c),
                Cell::Tab(gap) if self.gaps[gap] => {
                    self.out.push('\t');
                    while cells
                        .next_if(|c| matches!(c, Cell::Tab(g) if *g == gap))
                        .is_some()
                    {}
                }
                Cell::Tab(_) => self.out.push(' '),
            }
        }
        self.line.clear();
        self.gaps.clear();
        self.cursor = 0;
        self.returned = false;
    }
}

impl vte::Perform for Text {
    fn print(&mut self, c: char) {
        self.resolve_return();
        match self.line.get_mut(self.cursor) {
            Some(cell) => {
                if let Cell::Tab(gap) = *cell {
                    self.gaps[gap] = false;
                }
                *cell = Cell::Char(c);
            }
            None => self.line.push(Cell::Char(c)),
        }
        self.cursor += 1;
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => {
                self.end_line();
                self.out.push('\n');
            }
            b'\r' => self.returned = true,
            b'\t' => {
                self.resolve_return();
                let stop = (self.cursor / TAB + 1) * TAB;
                if stop > self.line.len() {
                    let gap = self.gaps.len();
                    self.gaps.push(true);
                    self.line.resize(stop, Cell::Tab(gap));
                }
                self.cursor = stop;
            }
            _ => {}
        }
    }
}

/// Cuts `head` (then `tail`, after `middle` lines and bytes that are gone
/// already) to `limits`, keeping the first and the last lines within half
/// the budget each, with a note of what was left out. No final newline.
fn cap(head: &str, middle: Option<(usize, usize)>, tail: &str, limits: Limits) -> String {
    let split = |text: &str| -> Vec<String> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        if text.is_empty() {
            Vec::new()
        } else {
            text.split('\n').map(str::to_string).collect()
        }
    };
    let mut lines = split(head);
    let gap = lines.len();
    lines.extend(split(tail));
    let size: usize = lines.iter().map(|l| l.len() + 1).sum();
    if middle.is_none() && lines.len() <= limits.lines && size.saturating_sub(1) <= limits.bytes {
        return lines.join("\n");
    }
    let (gone_lines, gone_bytes) = middle.unwrap_or((0, 0));
    let half_lines = (limits.lines / 2).max(1);
    let half_bytes = limits.bytes / 2;
    let mut kept_head = 0;
    let mut used = 0;
    for line in lines
        .iter()
        .take(if middle.is_some() { gap } else { lines.len() })
    {
        if kept_head >= half_lines || used + line.len() + 1 > half_bytes {
            break;
        }
        used += line.len() + 1;
        kept_head += 1;
    }
    let mut kept_tail = 0;
    used = 0;
    let floor = if middle.is_some() { gap } else { kept_head };
    for line in lines[floor.max(kept_head)..].iter().rev() {
        if kept_tail >= half_lines || used + line.len() + 1 > half_bytes {
            break;
        }
        used += line.len() + 1;
        kept_tail += 1;
    }
    let omitted = &lines[kept_head..lines.len() - kept_tail];
    let omitted_lines = omitted.len() + gone_lines;
    let omitted_bytes: usize = omitted.iter().map(|l| l.len() + 1).sum::<usize>() + gone_bytes;
    let mut result: Vec<String> = lines[..kept_head].to_vec();
    let plural = if omitted_lines == 1 { "" } else { "s" };
    result.push(format!(
        "[... {omitted_lines} line{plural} ({}) left out ...]",
        human_bytes(omitted_bytes)
    ));
    result.extend(lines[lines.len() - kept_tail..].iter().cloned());
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

    /// The text of an output block for a whole text, cleaned and cut to
    /// `limits` (nothing masked).
    fn block_text(raw: &str, limits: Limits) -> String {
        cap(&clean(raw), None, "", limits)
    }

    #[test]
    fn recordings_stay_bounded_and_never_keep_part_of_a_secret() {
        let limits = Limits {
            lines: 10,
            bytes: 1024,
        };
        let mut masker = Masker::default();
        let secret = "-----BEGIN-----\nline one\nline two\n-----END-----";
        masker.add("KEY", secret);
        let mut recording = Recording::new(limits);
        for i in 0..20_000 {
            recording.push(format!("line {i}\n").as_bytes());
            if i == 10 {
                // A secret that straddles the point where the head is cut.
                recording.push(&vec![b'x'; 1024 + SLACK - 78 - 1 - 20]);
                recording.push(format!("\n{secret}\n").as_bytes());
            }
        }
        assert!(recording.head.len() + recording.tail.len() <= 3 * (1024 + SLACK));
        let text = recording.text(limits, &masker);
        assert!(
            !text.contains("BEGIN") && !text.contains("line two"),
            "{text}"
        );
        assert!(text.starts_with("line 0\nline 1\n"), "{text}");
        assert!(text.ends_with("line 19999"), "{text}");
        assert!(text.contains("lines ("), "{text}");
        // Small outputs come out exactly as the whole-text path gives them.
        let mut small = Recording::new(Limits::default());
        small.push(b"a\x1b[1mb\x1b[0m\n");
        assert_eq!(small.text(Limits::default(), &masker), "ab");
    }

    #[test]
    fn strips_ansi_and_resolves_carriage_returns() {
        assert_eq!(
            clean("\x1b[32mok\x1b[0m\r\nprogress 10%\rprogress 100%\n"),
            "ok\nprogress 100%\n"
        );
    }

    #[test]
    fn carriage_returns_resolve_as_a_terminal_shows_them() {
        for (raw, shown) in [
            ("a\tb\rc\n", "c\tb\n"),
            ("xxyy\rZ", "Zxyy"),
            ("abcdefgh\r\tX", "abcdefghX"),
            ("a\tb\rcdefg", "cdefg   b"),
            ("ab\rX\tY", "Xb\tY"),
            ("a\t\tb\r\r\n", "a\t\tb\n"),
            ("1\t2\r\t\t3\r\t4", "1\t4\t3"),
            ("\x1b[1mbold\x1b[0m\rB", "Bold"),
            ("done 10%\r", "done 10%"),
            ("\rx", "x"),
            ("crlf\r\nnext\r\n", "crlf\nnext\n"),
            ("\t\tno return\t\n", "\t\tno return\t\n"),
            ("é日\r¼", "¼日"),
        ] {
            assert_eq!(clean(raw), shown, "{raw:?}");
        }
    }

    #[test]
    fn a_secret_is_masked_before_its_carriage_return_resolves() {
        let mut masker = Masker::default();
        masker.add("TOK", "hunter2\rpw");
        masker.add("ESC", "pass\x1b[0mword");
        let mut recording = Recording::new(Limits::default());
        recording.push(b"hunter2\rpw\nx hunter2\rpw y\n");
        recording.push(b"\x1b[1mpass\x1b[0mword\x1b[0m\n");
        assert_eq!(
            recording.text(Limits::default(), &masker),
            "[masked:TOK]\nx [masked:TOK] y\n[masked:ESC]"
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
        for bad in [
            "0",
            "0B",
            "1,2,3",
            "5,6",
            "1KiB,2KiB",
            "99999999999999999999G",
            "18446744073709551615G",
            "",
        ] {
            assert!(Limits::parse(bad).is_err(), "{bad}");
        }
    }
}
