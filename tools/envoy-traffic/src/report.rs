//! The `traffic` section: what was sent, what came back, how fast, and the settings used.
//!
//! Latency percentiles come straight from the merged HDR histogram of every measured request
//! (no sampling), in milliseconds with microsecond resolution.

use std::collections::BTreeMap;

use serde::Serialize;

use super::envoy_stats::CrossCheck;
use super::load::{ErrorCounts, Tally, WarmupCounts};

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// The open model's asked rate; null in the closed model.
    pub asked: Option<f64>,
    /// Measured completed requests per second of measured time.
    pub achieved: f64,
}

#[derive(Debug, Clone, Serialize)]
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
    pub measured_from: &'static str,
}

/// Per path: what was sent and what came back (warmup included, as Envoy counts it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathReport {
    pub sent: u64,
    pub completed: u64,
    pub classes: BTreeMap<String, u64>,
    pub errors: u64,
}

/// The settings the run used, flags and defaults resolved.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub model: &'static str,
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

#[derive(Debug, Clone, Serialize)]
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
    pub warmup: Warmup,
    /// `requests`, `duration` or `signal`.
    pub stopped_by: &'static str,
    pub by_path: BTreeMap<String, PathReport>,
    pub settings: Settings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy: Option<CrossCheck>,
}

#[derive(Debug, Clone, Serialize)]
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

/// Latency percentiles of a tally, in milliseconds.
pub fn latency(tally: &Tally, open_model: bool) -> Option<Latency> {
    let h = &tally.latency_us;
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
        measured_from: if open_model { "intended" } else { "actual" },
    })
}

pub struct ReportInput<'a> {
    pub url: String,
    pub paths: &'a [String],
    pub tally: &'a Tally,
    pub asked_rate: Option<f64>,
    pub measured_secs: f64,
    pub stopped_by: &'static str,
    pub settings: Settings,
}

pub fn build(input: ReportInput<'_>) -> Report {
    let t = input.tally;
    let achieved = if input.measured_secs > 0.0 {
        (t.completed as f64 / input.measured_secs * 100.0).round() / 100.0
    } else {
        0.0
    };
    let by_path = input
        .paths
        .iter()
        .zip(&t.paths)
        .map(|(p, c)| {
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
            (
                p.clone(),
                PathReport {
                    sent: c.sent,
                    completed: c.completed,
                    classes,
                    errors: c.errors.total(),
                },
            )
        })
        .collect();
    Report {
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
        latency_ms: latency(t, input.asked_rate.is_some()),
        duration_s: (input.measured_secs * 1000.0).round() / 1000.0,
        warmup: t.warmup.into(),
        stopped_by: input.stopped_by,
        by_path,
        settings: input.settings,
        envoy: None,
    }
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

    #[test]
    fn percentiles_come_from_every_sample() {
        let mut t = Tally::new(1, &super::super::load::new_histogram().unwrap());
        for us in 1..=1000u64 {
            t.latency_us.record(us * 1000).unwrap();
        }
        let l = latency(&t, true).unwrap();
        assert!((l.p50 - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() <= 1.0, "{l:?}");
        assert_eq!(l.measured_from, "intended");
    }
}
