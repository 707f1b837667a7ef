//! Durations as written in attributes: `500ms`, `30s`, `2m`, `1h30m`, or a
//! bare number of seconds.

use std::time::Duration;

/// The longest duration an attribute may give: 30 days. Longer ones are
/// refused, so no timeout or delay can overflow a clock.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses `30s`, `2m`, `1h`, `1h30m`, `250ms` or `45` (seconds), up to
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds)).filter(|d| *d <= MAX_DURATION);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(seconds).ok()?)?;
        if total > MAX_DURATION {
            return None;
        }
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Human form of a duration for messages: `2m`, `1.5s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = duration.as_secs_f64();
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{s:.1}s")
        }
    } else if ms.is_multiple_of(60_000) && ms < 3_600_000 {
        format!("{}m", ms / 60_000)
    } else {
        let secs = duration.as_secs();
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("720h"), Some(MAX_DURATION));
        for bad in [
            "",
            "s",
            "2x",
            "m2",
            "1..2s",
            "-1s",
            "721h",
            "99999999999h",
            "99999999999999999999h",
            "18446744073709551615",
            "1e308s",
            "999999999999999999999999999999999999999.5h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m5s");
    }
}
