//! Byte offset to line and column mapping for a source text.
//!
//! Lines end as CommonMark ends them: at `\n`, `\r\n`, or a lone `\r`.

/// Start offsets of every line in a text, for turning byte offsets into
/// 1-based line and column numbers.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        starts.extend(
            bytes
                .iter()
                .enumerate()
                .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 1-based line number of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let col = text[start..offset.min(text.len())].chars().count() + 1;
        (line, col)
    }

    /// Byte offset where a 1-based line starts (the end for lines past it).
    pub fn offset_of_line(&self, line: usize) -> usize {
        self.starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(*self.starts.last().expect("one line"))
    }

    /// Byte offset where the line holding `offset` starts.
    pub fn line_start(&self, offset: usize) -> usize {
        self.starts[self.line(offset) - 1]
    }
}

/// Byte offset of the end of the line holding `offset`, before its line
/// terminator (`\n`, `\r\n` or `\r`).
pub fn line_end(text: &str, offset: usize) -> usize {
    text[offset..]
        .find(['\n', '\r'])
        .map_or(text.len(), |i| offset + i)
}

/// Byte offset where the line after the one holding `offset` starts (the
/// end of the text for the last line).
pub fn next_line_start(text: &str, offset: usize) -> usize {
    let end = line_end(text, offset);
    end + terminator_len(&text[end..])
}

/// Length of the line terminator `text` starts with: 2 for `\r\n`, 1 for
/// `\n` or `\r`, 0 for none.
pub fn terminator_len(text: &str) -> usize {
    if text.starts_with("\r\n") {
        2
    } else {
        usize::from(text.starts_with(['\n', '\r']))
    }
}

/// The line terminator a text uses first (`\n` when it has none), for the
/// lines a writer adds.
pub fn first_terminator(text: &str) -> &'static str {
    match text.find(['\n', '\r']).map(|at| &text[at..]) {
        Some(rest) if rest.starts_with("\r\n") => "\r\n",
        Some(rest) if rest.starts_with('\r') => "\r",
        _ => "\n",
    }
}

/// Text with every lone `\r` made `\n`, byte for byte at the same offsets
/// (`\r\n` stays). pulldown-cmark ends lines at `\n` only, where
/// CommonMark also ends them at a lone `\r`: it reads this text, whose
/// spans are the original's.
pub fn lone_cr_as_lf(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\r') {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let replaced: Vec<u8> = bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if b == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
                b'\n'
            } else {
                b
            }
        })
        .collect();
    std::borrow::Cow::Owned(String::from_utf8(replaced).expect("ASCII for ASCII keeps UTF-8"))
}

/// Text with every line ending made `\n`, as CommonMark reads it: a lone
/// `\r` ends a line as `\r\n` and `\n` do.
pub fn normalize_line_endings(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_offsets_to_lines_and_columns() {
        let text = "ab\ncdé\n\nx";
        let index = LineIndex::new(text);
        assert_eq!(index.line_col(text, 0), (1, 1));
        assert_eq!(index.line_col(text, 3), (2, 1));
        assert_eq!(index.line_col(text, 5), (2, 3));
        assert_eq!(index.line_col(text, 7), (2, 4));
        assert_eq!(index.line_col(text, 8), (3, 1));
        assert_eq!(index.line_col(text, 9), (4, 1));
        assert_eq!(index.line_start(5), 3);
        assert_eq!(line_end("a\r\nb", 0), 1);
        assert_eq!(line_end("a\r\nb", 3), 4);
    }

    #[test]
    fn a_lone_cr_ends_a_line() {
        let text = "a\rb\r\nc\nd\r";
        let index = LineIndex::new(text);
        assert_eq!(index.line(2), 2);
        assert_eq!(index.line(5), 3);
        assert_eq!(index.line(7), 4);
        assert_eq!(index.line_start(3), 2);
        assert_eq!(line_end(text, 0), 1);
        assert_eq!(line_end(text, 2), 3);
        assert_eq!(next_line_start(text, 0), 2);
        assert_eq!(next_line_start(text, 2), 5);
        assert_eq!(next_line_start(text, 7), 9);
        assert_eq!(first_terminator(text), "\r");
        assert_eq!(first_terminator("x\r\n\r"), "\r\n");
        assert_eq!(first_terminator("x"), "\n");
        assert_eq!(normalize_line_endings(text), "a\nb\nc\nd\n");
        assert_eq!(lone_cr_as_lf(text), "a\nb\r\nc\nd\n");
    }
}
