//! "Did you mean ...?": the closest of some known names to one that is
//! not known, as clap does for flags.

/// The closest of `known` to `wrong`, if any is close enough to be what was
/// meant.
pub fn closest<'a>(wrong: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&wrong.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// ` (did you mean `X`?)`, or nothing.
pub fn did_you_mean<'a>(wrong: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    closest(wrong, known).map_or_else(String::new, |k| format!("did you mean `{k}`? "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(closest("timout", ["timeout", "retries"]), Some("timeout"));
        assert_eq!(
            closest("captur", ["capture", "capture-json"]),
            Some("capture")
        );
        assert_eq!(closest("zzz", ["timeout", "retries"]), None);
    }
}
