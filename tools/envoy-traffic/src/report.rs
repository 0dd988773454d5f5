//! The `traffic` section: what was sent, what came back, how fast, and the settings used.
//!
//! Latency percentiles come straight from the merged HDR histogram of every measured request
//! (no sampling), in milliseconds with microsecond resolution. The histograms themselves are
//! in the section too, in HdrHistogram's portable encoding (V2, deflate-compressed, base64,
//! as every HdrHistogram implementation reads it), so that runs made on several machines add
//! up to exact percentiles ([`merge`]), never averages of percentiles.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::envoy_stats::CrossCheck;
use super::load::{ErrorCounts, Tally, WarmupCounts, new_histogram};
use ampkit::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Errors {
    pub connect: u64,
    pub timeout: u64,
    pub reset: u64,
    pub other: u64,
    pub cancelled: u64,
    pub total: u64,
}

impl From<ErrorCounts> for Errors {
    fn from(e: ErrorCounts) -> Self {
        Errors {
            connect: e.connect,
            timeout: e.timeout,
            reset: e.reset,
            other: e.other,
            cancelled: e.cancelled,
            total: e.total(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// The open model's asked rate; null in the closed model.
    pub asked: Option<f64>,
    /// Measured completed requests per second of measured time.
    pub achieved: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
    /// `intended` (open model: from the scheduled send time, coordinated omission corrected)
    /// or `actual` (closed model: from the actual send).
    pub measured_from: String,
}

/// Per path: what was sent and what came back (warmup included, as Envoy counts it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathReport {
    pub sent: u64,
    pub completed: u64,
    pub classes: BTreeMap<String, u64>,
    pub errors: u64,
    /// What the upstream took, as Envoy's router reports it (`x-envoy-upstream-service-time`,
    /// whole milliseconds), over the measured answers that carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<Percentiles>,
    /// The same answers' round trip (from the actual send) minus the upstream time: what the
    /// mesh's proxies cost on this path (±1 ms, the header's resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_share_ms: Option<Percentiles>,
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50) as f64),
            p90: ms(h.value_at_quantile(0.90) as f64),
            p99: ms(h.value_at_quantile(0.99) as f64),
            max: ms(h.max() as f64),
        })
    }
}

/// The histograms behind the percentiles, portable: base64 of HdrHistogram's V2 deflate
/// encoding, microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histograms {
    pub latency_us: String,
    pub by_path: BTreeMap<String, PathHistograms>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathHistograms {
    pub upstream_us: String,
    pub proxy_share_us: String,
}

/// A histogram in the portable encoding.
pub fn encode(h: &Histogram<u64>) -> Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| Error::internal(format!("could not encode a histogram: {e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A histogram from the portable encoding; `what` names it in the error.
pub fn decode(text: &str, what: &str) -> Result<Histogram<u64>> {
    let bad = |why: String| {
        Error::input(format!(
            "{what} is not an HdrHistogram in the portable encoding: {why}"
        ))
        .with_hint(
            "give reports written by envoy-traffic (the traffic section, or a whole document)",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| bad(e.to_string()))?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| bad(format!("{e:?}")))?;
    // Into our bounds, so that any two reports add up.
    let mut h = new_histogram()?;
    h.add(&decoded).map_err(|e| bad(format!("{e:?}")))?;
    Ok(h)
}

/// The settings the run used, flags and defaults resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub model: String,
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    pub warmup_s: f64,
    pub method: String,
    /// `name: value`, with the values of credentials replaced by `<redacted>`.
    pub headers: Vec<String>,
    pub body_bytes: usize,
    pub timeout_s: f64,
    pub http2: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_service: Option<String>,
    /// The pod the service's port-forward reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_pod: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub url: String,
    pub paths: Vec<String>,
    pub sent: u64,
    pub completed: u64,
    pub errors: Errors,
    /// Answers by status code.
    pub status: BTreeMap<String, u64>,
    pub rate: Rate,
    /// Null when nothing completed.
    pub latency_ms: Option<Latency>,
    /// Measured time: from the end of the warmup to the last answer.
    pub duration_s: f64,
    /// When the first request went out (RFC 3339, UTC): where the traffic begins in the
    /// workspace's series, so that later steps (grafana-import's verified range) follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub warmup: Warmup,
    /// `requests`, `duration` or `signal` (`merged` for a merge of runs).
    pub stopped_by: String,
    pub by_path: BTreeMap<String, PathReport>,
    pub settings: Settings,
    /// The Envoy cross-check of one run (not carried into a merge).
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub envoy: Option<CrossCheck>,
    pub histograms: Histograms,
    /// How many runs a merged report adds up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warmup {
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
}

impl From<WarmupCounts> for Warmup {
    fn from(w: WarmupCounts) -> Self {
        Warmup {
            sent: w.sent,
            completed: w.completed,
            errors: w.errors,
        }
    }
}

/// Microseconds to milliseconds, keeping microsecond resolution.
fn ms(us: f64) -> f64 {
    us.round() / 1000.0
}

/// Latency percentiles of a histogram, in milliseconds.
pub fn latency(h: &Histogram<u64>, open_model: bool) -> Option<Latency> {
    if h.is_empty() {
        return None;
    }
    let q = |p: f64| ms(h.value_at_quantile(p) as f64);
    Some(Latency {
        min: ms(h.min() as f64),
        mean: ms(h.mean()),
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        p99_9: q(0.999),
        max: ms(h.max() as f64),
        measured_from: if open_model { "intended" } else { "actual" }.to_owned(),
    })
}

pub struct ReportInput<'a> {
    pub url: String,
    pub paths: &'a [String],
    pub tally: &'a Tally,
    pub asked_rate: Option<f64>,
    pub measured_secs: f64,
    pub started_at: Option<String>,
    pub stopped_by: &'static str,
    pub settings: Settings,
}

pub fn build(input: ReportInput<'_>) -> Result<Report> {
    let t = input.tally;
    let achieved = if input.measured_secs > 0.0 {
        (t.completed as f64 / input.measured_secs * 100.0).round() / 100.0
    } else {
        0.0
    };
    let mut by_path = BTreeMap::new();
    let mut histograms = Histograms {
        latency_us: encode(&t.latency_us)?,
        by_path: BTreeMap::new(),
    };
    for (i, (p, c)) in input.paths.iter().zip(&t.paths).enumerate() {
        let mut classes = BTreeMap::new();
        for (i, n) in c.classes.iter().enumerate() {
            if *n > 0 {
                let key = if i == 0 {
                    "other".to_owned()
                } else {
                    format!("{i}xx")
                };
                classes.insert(key, *n);
            }
        }
        let (upstream, proxy) = (&t.upstream_us[i], &t.proxy_us[i]);
        by_path.insert(
            p.clone(),
            PathReport {
                sent: c.sent,
                completed: c.completed,
                classes,
                errors: c.errors.total(),
                upstream_ms: Percentiles::of(upstream),
                proxy_share_ms: Percentiles::of(proxy),
            },
        );
        histograms.by_path.insert(
            p.clone(),
            PathHistograms {
                upstream_us: encode(upstream)?,
                proxy_share_us: encode(proxy)?,
            },
        );
    }
    Ok(Report {
        url: input.url,
        paths: input.paths.to_vec(),
        sent: t.sent,
        completed: t.completed,
        errors: t.errors.into(),
        status: t.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        rate: Rate {
            asked: input.asked_rate,
            achieved,
        },
        latency_ms: latency(&t.latency_us, input.asked_rate.is_some()),
        duration_s: (input.measured_secs * 1000.0).round() / 1000.0,
        started_at: input.started_at,
        warmup: t.warmup.into(),
        stopped_by: input.stopped_by.to_owned(),
        by_path,
        settings: input.settings,
        envoy: None,
        histograms,
        merged_from: None,
    })
}

/// Runs made at the same time (on several machines or pods) as one: counts and rates summed,
/// the longest duration, and every percentile taken again from the histograms added up. The
/// first run's settings and URL stand for all.
pub fn merge(reports: Vec<(String, Report)>) -> Result<Report> {
    let runs = reports.len();
    let mut reports = reports.into_iter();
    let Some((first_name, mut out)) = reports.next() else {
        return Err(Error::usage("nothing to merge").with_hint("give two or more reports"));
    };
    let mut latency_us = decode(&out.histograms.latency_us, &first_name)?;
    let mut paths: BTreeMap<String, (Histogram<u64>, Histogram<u64>)> = BTreeMap::new();
    let mut add_paths = |name: &str, histograms: &Histograms| -> Result<()> {
        for (path, h) in &histograms.by_path {
            let upstream = decode(&h.upstream_us, name)?;
            let proxy = decode(&h.proxy_share_us, name)?;
            match paths.get_mut(path) {
                Some((u, p)) => {
                    u.add(&upstream)
                        .map_err(|e| Error::internal(format!("{e:?}")))?;
                    p.add(&proxy)
                        .map_err(|e| Error::internal(format!("{e:?}")))?;
                }
                None => {
                    paths.insert(path.clone(), (upstream, proxy));
                }
            }
        }
        Ok(())
    };
    add_paths(&first_name, &out.histograms)?;
    for (name, r) in reports {
        latency_us
            .add(decode(&r.histograms.latency_us, &name)?)
            .map_err(|e| Error::internal(format!("{e:?}")))?;
        add_paths(&name, &r.histograms)?;
        out.sent += r.sent;
        out.completed += r.completed;
        let (e, o) = (&mut out.errors, &r.errors);
        e.connect += o.connect;
        e.timeout += o.timeout;
        e.reset += o.reset;
        e.other += o.other;
        e.cancelled += o.cancelled;
        e.total += o.total;
        for (code, n) in r.status {
            *out.status.entry(code).or_default() += n;
        }
        out.rate.achieved = ((out.rate.achieved + r.rate.achieved) * 100.0).round() / 100.0;
        out.rate.asked = out.rate.asked.zip(r.rate.asked).map(|(a, b)| a + b);
        out.duration_s = out.duration_s.max(r.duration_s);
        // RFC 3339 UTC strings of one format sort as the times do: the earliest start.
        out.started_at = match (out.started_at.take(), r.started_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        out.warmup.sent += r.warmup.sent;
        out.warmup.completed += r.warmup.completed;
        out.warmup.errors += r.warmup.errors;
        for path in r.paths {
            if !out.paths.contains(&path) {
                out.paths.push(path);
            }
        }
        for (path, p) in r.by_path {
            let mine = out.by_path.entry(path).or_insert_with(|| PathReport {
                sent: 0,
                completed: 0,
                classes: BTreeMap::new(),
                errors: 0,
                upstream_ms: None,
                proxy_share_ms: None,
            });
            mine.sent += p.sent;
            mine.completed += p.completed;
            mine.errors += p.errors;
            for (class, n) in p.classes {
                *mine.classes.entry(class).or_default() += n;
            }
        }
    }
    let open_model = out
        .latency_ms
        .as_ref()
        .is_some_and(|l| l.measured_from == "intended");
    out.latency_ms = latency(&latency_us, open_model);
    out.histograms.latency_us = encode(&latency_us)?;
    for (path, (upstream, proxy)) in &paths {
        if let Some(p) = out.by_path.get_mut(path) {
            p.upstream_ms = Percentiles::of(upstream);
            p.proxy_share_ms = Percentiles::of(proxy);
        }
        out.histograms.by_path.insert(
            path.clone(),
            PathHistograms {
                upstream_us: encode(upstream)?,
                proxy_share_us: encode(proxy)?,
            },
        );
    }
    out.stopped_by = "merged".to_owned();
    out.envoy = None;
    out.merged_from = Some(runs);
    Ok(out)
}

/// A header line for the report: credentials never reach the document.
pub fn redact_header(name: &str, value: &str) -> String {
    const SECRET: [&str; 5] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "x-amz-security-token",
    ];
    if SECRET.contains(&name.to_ascii_lowercase().as_str()) {
        format!("{name}: <redacted>")
    } else {
        format!("{name}: {value}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_header("Authorization", "Bearer x"),
            "Authorization: <redacted>"
        );
        assert_eq!(
            redact_header("x-envoy-fault-delay-request", "20"),
            "x-envoy-fault-delay-request: 20"
        );
    }

    fn settings() -> Settings {
        Settings {
            model: "closed".into(),
            rate: None,
            concurrency: 1,
            duration_s: None,
            requests: None,
            warmup_s: 0.0,
            method: "GET".into(),
            headers: Vec::new(),
            body_bytes: 0,
            timeout_s: 1.0,
            http2: false,
            kube_service: None,
            kube_pod: None,
        }
    }

    /// A report of `latencies` (µs) on path `/`, each with an upstream time of a tenth.
    fn run(latencies: &[u64]) -> Report {
        let mut t = Tally::new(1, &new_histogram().unwrap());
        for us in latencies {
            t.latency_us.record(*us).unwrap();
            t.upstream_us[0].record(us / 10 + 1).unwrap();
            t.proxy_us[0].record(us - us / 10).unwrap();
            t.completed += 1;
            t.sent += 1;
            *t.status.entry(200).or_default() += 1;
        }
        t.paths[0].sent = t.sent;
        t.paths[0].completed = t.completed;
        build(ReportInput {
            url: "http://x/".into(),
            paths: &["/".to_owned()],
            tally: &t,
            asked_rate: None,
            measured_secs: 1.0,
            started_at: None,
            stopped_by: "requests",
            settings: settings(),
        })
        .unwrap()
    }

    #[test]
    fn merged_runs_have_the_percentiles_of_all_their_requests() {
        // Two runs of very different shapes: averaging their percentiles would be wrong.
        let a: Vec<u64> = (1..=900).map(|i| 1_000 + i).collect();
        let b: Vec<u64> = (1..=100).map(|i| 50_000 + i * 100).collect();
        let (ra, rb) = (run(&a), run(&b));
        // Through JSON, as the tool reads them back.
        let back = |r: &Report| -> Report {
            serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap()
        };
        let merged = merge(vec![("a".into(), back(&ra)), ("b".into(), back(&rb))]).unwrap();
        let mut all = new_histogram().unwrap();
        for us in a.iter().chain(&b) {
            all.record(*us).unwrap();
        }
        let expected = latency(&all, false).unwrap();
        let got = merged.latency_ms.clone().unwrap();
        assert_eq!(
            (got.p50, got.p90, got.p99, got.max),
            (expected.p50, expected.p90, expected.p99, expected.max)
        );
        assert_eq!((merged.completed, merged.sent), (1000, 1000));
        assert_eq!(merged.status["200"], 1000);
        assert_eq!(merged.rate.achieved, ra.rate.achieved + rb.rate.achieved);
        assert_eq!(merged.merged_from, Some(2));
        assert_eq!(merged.by_path["/"].completed, 1000);
        assert_eq!(
            merged.by_path["/"].upstream_ms.as_ref().unwrap().count,
            1000
        );
        // The merge's own histogram is the sum too: merging it again with nothing changes nothing.
        assert_eq!(decode(&merged.histograms.latency_us, "m").unwrap(), all);
        assert!(merge(vec![("a".into(), ra)]).is_ok());
        let mut broken = rb;
        broken.histograms.latency_us = "not base64!".into();
        let err = merge(vec![
            ("a".into(), back(&run(&a))),
            ("b.json".into(), broken),
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("b.json"), "{}", err.message);
    }

    #[test]
    fn percentiles_come_from_every_sample() {
        let mut t = Tally::new(1, &super::super::load::new_histogram().unwrap());
        for us in 1..=1000u64 {
            t.latency_us.record(us * 1000).unwrap();
        }
        let l = latency(&t.latency_us, true).unwrap();
        assert!((l.p50 - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() <= 1.0, "{l:?}");
        assert_eq!(l.measured_from, "intended");
    }
}
