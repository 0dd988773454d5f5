//! Grafana's template interpolation, as its Prometheus datasource applies it to a query before
//! sending it: `$var`, `${var}`, `${var:format}`, `[[var]]`, `[[var:format]]`, the built-ins
//! `$__interval`, `$__rate_interval`, `$__range` and their `_ms`/`_s` forms, `All` (the custom
//! all value, or the alternation of every value) and multi-value variables.
//!
//! What is pure lives here and is tested on its own; resolving query variables against the
//! workspace is in `verify`.

use std::time::Duration;

/// A dashboard variable with the values it stands for in this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub values: Vec<String>,
    /// `All` is selected.
    pub all: bool,
    /// The variable's custom all value (`allValue`), used verbatim when `All` is selected.
    pub all_value: Option<String>,
    /// Multi-value or include-All: Grafana then regex-escapes values in a Prometheus query.
    pub multi: bool,
}

impl Variable {
    /// A variable with one plain value (constants, text boxes, intervals).
    pub fn single(name: &str, value: &str) -> Self {
        Variable {
            name: name.to_owned(),
            values: vec![value.to_owned()],
            all: false,
            all_value: None,
            multi: false,
        }
    }
}

/// The built-in variables' values for one panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Builtins {
    pub interval: Duration,
    pub rate_interval: Duration,
    pub range: Duration,
}

impl Builtins {
    /// Grafana's rules: the interval is the range over the data points wanted, rounded to a
    /// readable step and never below the minimum interval (the scrape interval unless the panel
    /// or query sets one); `$__rate_interval` is `max($__interval + scrape, 4 * scrape)`, the
    /// shortest window a `rate()` can trust.
    pub fn for_panel(
        range: Duration,
        max_data_points: u64,
        min_interval: Duration,
        scrape: Duration,
    ) -> Self {
        let raw = range.as_secs_f64() / max_data_points.max(1) as f64;
        let interval = round_interval(Duration::from_secs_f64(raw)).max(min_interval);
        let rate_interval = (interval + scrape).max(scrape * 4);
        Builtins {
            interval,
            rate_interval,
            range,
        }
    }
}

/// Grafana's readable steps: a raw interval becomes the nearest of these at or above it.
pub fn round_interval(raw: Duration) -> Duration {
    const STEPS_MS: [u64; 27] = [
        1, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000,
        21_600_000, 43_200_000, 86_400_000,
    ];
    let ms = raw.as_millis() as u64;
    let step = STEPS_MS
        .iter()
        .copied()
        .find(|s| *s >= ms)
        .unwrap_or(STEPS_MS[STEPS_MS.len() - 1]);
    Duration::from_millis(step)
}

/// A duration as Grafana writes interval values into queries: `15s`, `2m`, `1500ms`.
pub fn grafana_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Interpolate every variable reference in `text`. References to unknown variables are left
/// as written, as Grafana leaves them.
pub fn interpolate(text: &str, variables: &[Variable], builtins: &Builtins) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['$', '[']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some((name, format, len)) = reference(rest) else {
            let c = rest.chars().next().unwrap_or('$');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        match value_of(name, format, variables, builtins) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[..len]),
        }
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// A variable reference at the start of `text`: (name, format, length in bytes).
fn reference(text: &str) -> Option<(&str, Option<&str>, usize)> {
    let word_len = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    if let Some(inner) = text.strip_prefix("${") {
        let end = inner.find('}')?;
        let body = &inner[..end];
        let (name, format) = match body.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (body, None),
        };
        // `${var.field}` names a field of an object variable; the variable is what counts.
        let name = name.split('.').next().unwrap_or(name);
        (!name.is_empty() && word_len(name) == name.len()).then_some((name, format, end + 3))
    } else if let Some(inner) = text.strip_prefix("[[") {
        let end = inner.find("]]")?;
        let body = &inner[..end];
        let (name, format) = match body.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (body, None),
        };
        (!name.is_empty() && word_len(name) == name.len()).then_some((name, format, end + 4))
    } else if let Some(inner) = text.strip_prefix('$') {
        let len = word_len(inner);
        (len > 0).then_some((&inner[..len], None, len + 1))
    } else {
        None
    }
}

fn value_of(
    name: &str,
    format: Option<&str>,
    variables: &[Variable],
    b: &Builtins,
) -> Option<String> {
    let builtin = match name {
        "__interval" => Some(grafana_duration(b.interval)),
        "__interval_ms" => Some(b.interval.as_millis().to_string()),
        "__rate_interval" => Some(grafana_duration(b.rate_interval)),
        "__rate_interval_ms" => Some(b.rate_interval.as_millis().to_string()),
        "__range" => Some(format!("{}s", b.range.as_secs())),
        "__range_s" => Some(b.range.as_secs().to_string()),
        "__range_ms" => Some(b.range.as_millis().to_string()),
        _ => None,
    };
    if builtin.is_some() {
        return builtin;
    }
    let variable = variables.iter().find(|v| v.name == name)?;
    Some(format_values(variable, format))
}

/// A variable's values in `format`, or in the Prometheus datasource's default.
pub fn format_values(v: &Variable, format: Option<&str>) -> String {
    if v.all
        && let Some(all) = &v.all_value
        && !matches!(format, Some("text" | "queryparam"))
    {
        return all.clone();
    }
    let values = &v.values;
    let joined = |sep: &str, f: &dyn Fn(&str) -> String| {
        values.iter().map(|s| f(s)).collect::<Vec<_>>().join(sep)
    };
    match format {
        None => {
            if !v.multi {
                values
                    .first()
                    .map(|s| regular_escape(s))
                    .unwrap_or_default()
            } else {
                regex_alternation(values)
            }
        }
        Some("regex") => regex_alternation(values),
        Some("pipe") => joined("|", &|s| s.to_owned()),
        Some("csv" | "raw") => joined(",", &|s| s.to_owned()),
        Some("distributed") => joined(",", &|s| s.to_owned()),
        Some("text") => {
            if v.all {
                "All".into()
            } else {
                joined(" + ", &|s| s.to_owned())
            }
        }
        Some("json") => serde_json::to_string(values).unwrap_or_default(),
        Some("glob") if values.len() > 1 => format!("{{{}}}", joined(",", &|s| s.to_owned())),
        Some("glob") => joined(",", &|s| s.to_owned()),
        Some("doublequote") => joined(",", &|s| format!("\"{}\"", s.replace('"', "\\\""))),
        Some("singlequote") => joined(",", &|s| format!("'{}'", s.replace('\'', "\\'"))),
        Some("sqlstring") => joined(",", &|s| format!("'{}'", s.replace('\'', "''"))),
        Some("lucene") if values.len() > 1 => {
            format!("({})", joined(" OR ", &|s| format!("\"{s}\"")))
        }
        Some("lucene") => joined("", &|s| s.to_owned()),
        Some("queryparam") => joined("&", &|s| format!("var-{}={}", v.name, percent_encode(s))),
        Some("percentencode") => joined(",", &|s| percent_encode(s)),
        // An unknown format: Grafana falls back to the default (glob) join.
        Some(_) => joined(",", &|s| s.to_owned()),
    }
}

/// One value, or `(a|b|c)`, each regex-escaped for a PromQL string literal.
fn regex_alternation(values: &[String]) -> String {
    let escaped: Vec<String> = values.iter().map(|s| regex_escape(s)).collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// A single value inside a PromQL string: backslashes and quotes escaped.
fn regular_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

/// A value as a literal inside a PromQL regex string: each metacharacter gets a regex
/// backslash, itself escaped for the string literal (`.` becomes `\\.`).
fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fill a legend format such as `{{namespace}}/{{service}} 99%` from a series' labels.
pub fn legend(format: &str, labels: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim();
        out.push_str(labels.get(name).and_then(|v| v.as_str()).unwrap_or(""));
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Builtins {
        Builtins {
            interval: Duration::from_secs(15),
            rate_interval: Duration::from_secs(60),
            range: Duration::from_secs(1800),
        }
    }

    fn multi(name: &str, values: &[&str], all: bool, all_value: Option<&str>) -> Variable {
        Variable {
            name: name.into(),
            values: values.iter().map(|s| (*s).to_owned()).collect(),
            all,
            all_value: all_value.map(str::to_owned),
            multi: true,
        }
    }

    #[test]
    fn every_reference_syntax_is_replaced() {
        let vars = [Variable::single("job", "envoy")];
        for text in [
            "up{job=\"$job\"}",
            "up{job=\"${job}\"}",
            "up{job=\"[[job]]\"}",
        ] {
            assert_eq!(
                interpolate(text, &vars, &b()),
                "up{job=\"envoy\"}",
                "{text}"
            );
        }
        assert_eq!(
            interpolate(
                "rate(x[$__rate_interval]) $__interval $__range",
                &vars,
                &b()
            ),
            "rate(x[1m]) 15s 1800s"
        );
        assert_eq!(
            interpolate("${__range_s} $__interval_ms", &vars, &b()),
            "1800 15000"
        );
    }

    #[test]
    fn unknown_variables_and_lone_dollars_stay() {
        let text = "x{a=\"$unknown\"} and $ and [[ and ${not closed and label_values(up, job)";
        assert_eq!(interpolate(text, &[], &b()), text);
        assert_eq!(interpolate("$__ratex", &[], &b()), "$__ratex");
    }

    #[test]
    fn all_uses_the_custom_all_value_or_every_value() {
        let custom = multi("Service", &["dj", "jazz"], true, Some(".*"));
        assert_eq!(
            interpolate("{service=~\"$Service\"}", &[custom], &b()),
            "{service=~\".*\"}"
        );
        let every = multi("Service", &["dj", "jazz.v2"], true, None);
        assert_eq!(
            interpolate("{service=~\"$Service\"}", &[every], &b()),
            "{service=~\"(dj|jazz\\\\.v2)\"}"
        );
    }

    #[test]
    fn formats_follow_grafana() {
        let v = multi("s", &["a", "b"], false, None);
        let f = |fmt: &str| format_values(&v, Some(fmt));
        assert_eq!(f("regex"), "(a|b)");
        assert_eq!(f("pipe"), "a|b");
        assert_eq!(f("csv"), "a,b");
        assert_eq!(f("json"), "[\"a\",\"b\"]");
        assert_eq!(f("glob"), "{a,b}");
        assert_eq!(f("doublequote"), "\"a\",\"b\"");
        assert_eq!(f("singlequote"), "'a','b'");
        assert_eq!(f("queryparam"), "var-s=a&var-s=b");
        assert_eq!(f("text"), "a + b");
        assert_eq!(f("lucene"), "(\"a\" OR \"b\")");
        assert_eq!(
            interpolate("${s:pipe} [[s:csv]]", std::slice::from_ref(&v), &b()),
            "a|b a,b"
        );
        let single = Variable::single("q", "it's");
        assert_eq!(format_values(&single, None), "it\\'s");
    }

    #[test]
    fn intervals_round_and_rate_interval_covers_four_scrapes() {
        let b = Builtins::for_panel(
            Duration::from_secs(1800),
            1000,
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        // 1.8 s raw, rounded to 2 s, raised to the 5 s scrape interval.
        assert_eq!(b.interval, Duration::from_secs(5));
        assert_eq!(b.rate_interval, Duration::from_secs(20));
        let b = Builtins::for_panel(
            Duration::from_secs(6 * 3600),
            100,
            Duration::from_secs(15),
            Duration::from_secs(15),
        );
        assert_eq!(b.interval, Duration::from_secs(300));
        assert_eq!(b.rate_interval, Duration::from_secs(315));
        assert_eq!(grafana_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn legends_take_labels() {
        let labels = serde_json::json!({"namespace": "prod", "service": "dj"});
        let labels = labels.as_object().cloned().unwrap_or_default();
        assert_eq!(
            legend("{{namespace}}/{{ service }} 99%", &labels),
            "prod/dj 99%"
        );
        assert_eq!(legend("{{missing}}x", &labels), "x");
    }
}
