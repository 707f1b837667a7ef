//! Plain aligned text tables for `list` and `status`.

/// Lays out `rows` (the first is the header) in columns two spaces apart;
/// columns listed in `right` are right-aligned, the last column is not padded.
pub fn render(rows: &[Vec<String>], right: &[usize]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, value)| {
                if i + 1 == columns {
                    value.clone()
                } else if right.contains(&i) {
                    format!("{value:>w$}", w = widths[i])
                } else {
                    format!("{value:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
