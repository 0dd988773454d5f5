//! Times and durations as people type them in a shell: `now`, `-5m`, `now-1h`, RFC 3339,
//! Unix seconds, and Prometheus durations (`1h30m`, `15s`, `250ms`, or bare seconds).
//!
//! This is the one grammar of every duration flag of every tool (`--timeout`, `--duration`,
//! `--scrape-interval`, `--activation-delay`, ...), so a value one tool takes, the next takes
//! too. It is Prometheus's own, since many of these values end up in a Prometheus config or
//! API call; a value written into a configuration is written back with [`format_duration`].
//!
//! Relative times are resolved once, against one `now`, so `--start -1h --end now` is exactly
//! one hour; the API is then sent absolute Unix seconds, which every Prometheus accepts.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parse a Prometheus duration: units y w d h m s ms, combinable from largest to smallest
/// (`1h30m`), or a bare (possibly fractional) number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        // try_: a value past Duration's range (1e30) is an error, not a panic.
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{text}` is not a valid duration"));
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("ms", 1),
        ("m", 60 * 1000),
        ("s", 1000),
    ];
    let invalid = || {
        format!(
            "`{text}` is not a duration (use e.g. 30s, 5m, 1h30m, 250ms, or a number of seconds)"
        )
    };
    let mut rest = s;
    let mut total_ms: u64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (rank, (unit, ms)) = UNITS
            .iter()
            .enumerate()
            .find(|(_, (unit, _))| rest.starts_with(unit))
            .ok_or_else(invalid)?;
        // Order by size: "ms" sits before "m" in the table only so it matches first.
        let size_rank = match *unit {
            "ms" => 6,
            "s" => 5,
            "m" => 4,
            _ => rank,
        };
        if last_rank != usize::MAX && size_rank <= last_rank {
            return Err(invalid());
        }
        last_rank = size_rank;
        rest = &rest[unit.len()..];
        total_ms = value
            .checked_mul(*ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(invalid)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// A duration above zero (`--duration`, `--scrape-interval`): the same grammar as
/// [`parse_duration`], zero refused.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(format!("the duration must be above zero, got `{text}`"));
    }
    Ok(d)
}

/// Parse a point in time: `now`, `now-5m`, `now+1h`, `-5m`, RFC 3339, or Unix seconds.
pub fn parse_time(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let s = text.trim();
    let relative = |sign: char, rest: &str| -> Result<OffsetDateTime, String> {
        let d = parse_duration(rest).map_err(|e| format!("`{text}`: {e}"))?;
        let d = time::Duration::try_from(d).map_err(|_| format!("`{text}` is out of range"))?;
        let t = if sign == '-' {
            now.checked_sub(d)
        } else {
            now.checked_add(d)
        };
        t.ok_or_else(|| format!("`{text}` is out of range"))
    };
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    let after_now = s.strip_prefix("now").unwrap_or(s);
    if let Some(rest) = after_now.strip_prefix('-') {
        return relative('-', rest);
    }
    if let Some(rest) = after_now.strip_prefix('+') {
        return relative('+', rest);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    if let Some(nanos) = unix_nanos(s) {
        return OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| format!("`{text}` is out of range"));
    }
    Err(format!(
        "`{text}` is not a time (use now, -5m, now-1h, an RFC 3339 time such as 2026-01-02T15:04:05Z, or Unix seconds)"
    ))
}

/// Exact decimal Unix seconds (`1700000000.25`) as nanoseconds; floats would round.
fn unix_nanos(s: &str) -> Option<i128> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 9 {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    let frac: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let nanos = whole.checked_mul(1_000_000_000)?.checked_add(frac)?;
    Some(if negative { -nanos } else { nanos })
}

/// Unix seconds with millisecond precision, as the Prometheus API takes them.
pub fn api_time(t: OffsetDateTime) -> String {
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{frac:03}")
    }
}

/// RFC 3339 in UTC, millisecond precision: what the document records.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| api_time(t))
}

/// A Unix timestamp (as in a Prometheus sample) in RFC 3339.
pub fn unix_to_rfc3339(secs: f64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9).round() as i128)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

/// A duration the way Prometheus writes it (`90s` -> `1m30s`), for the step in the document.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-04 05:06:07.5 UTC);

    #[test]
    fn durations_in_prometheus_syntax() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2w1d"), Ok(Duration::from_secs(15 * 86_400)));
        for bad in [
            "", "m", "5x", "30m1h", "5m5m", "-5m", "1.5m", "1.5s", "1min", "NaN", "inf", "1e30",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn positive_durations_refuse_zero_in_every_spelling() {
        assert_eq!(parse_positive_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_positive_duration("2.5"),
            Ok(Duration::from_millis(2500))
        );
        for zero in ["0", "0s", "0m0s", "0.0"] {
            let err = parse_positive_duration(zero).unwrap_err();
            assert!(err.contains("above zero"), "{zero}: {err}");
        }
    }

    #[test]
    fn a_parsed_duration_formats_back_to_a_prometheus_duration() {
        for (typed, written) in [
            ("15", "15s"),
            ("90s", "1m30s"),
            ("0.5", "500ms"),
            ("2w", "14d"),
        ] {
            assert_eq!(format_duration(parse_duration(typed).unwrap()), written);
        }
    }

    #[test]
    fn relative_and_absolute_times() {
        for (typed, expected) in [
            ("now", NOW),
            ("-5m", datetime!(2026-03-04 05:01:07.5 UTC)),
            ("now-1h", datetime!(2026-03-04 04:06:07.5 UTC)),
            ("+30s", datetime!(2026-03-04 05:06:37.5 UTC)),
            (
                "2026-01-02T15:04:05+02:00",
                datetime!(2026-01-02 13:04:05 UTC),
            ),
            ("1700000000.25", datetime!(2023-11-14 22:13:20.25 UTC)),
        ] {
            assert_eq!(parse_time(typed, NOW), Ok(expected), "{typed}");
        }
        assert!(parse_time("yesterday", NOW).is_err());
        assert!(parse_time("-5q", NOW).is_err());
    }

    #[test]
    fn api_and_document_forms() {
        assert_eq!(api_time(NOW), "1772600767.500");
        assert_eq!(api_time(datetime!(2026-03-04 05:06:07 UTC)), "1772600767");
        assert_eq!(rfc3339(NOW), "2026-03-04T05:06:07.5Z");
        assert_eq!(unix_to_rfc3339(1_700_000_000.0), "2023-11-14T22:13:20Z");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(15_250)), "15s250ms");
    }
}
