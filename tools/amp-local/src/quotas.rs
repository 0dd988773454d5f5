//! AMP's quotas, enforced with AMP's statuses and messages, each one a flag with AMP's default.
//!
//! Collectors and users meet these in production: a collector that does not retry a 429 loses
//! samples, a rule file one rule too long is refused. amp-local refuses what AMP refuses, so
//! that the tools' and collectors' handling of it is tested on a laptop. Sources, cited per
//! flag below:
//! - AMP's service quotas page, <https://docs.aws.amazon.com/prometheus/latest/userguide/AMP_quotas.html>
//!   (AWS revises the numbers, and adjusts some per account: hence flags);
//! - its troubleshooting page, <https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-troubleshooting.html>,
//!   for the 429 bodies collectors log and the 422 of a query that times out;
//! - the alert manager page, <https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-alertmanager-config.html>.
//!
//! Where AMP's pages give a limit but not its message, the message is Cortex's (AMP's
//! ingestion and query path is Cortex: its 429 bodies are Cortex's word for word).
//!
//! Ingestion follows Cortex's order: each series is validated (labels per series, name and
//! value lengths) and an invalid one is dropped; the valid samples and the metadata are then
//! taken from the workspace's token bucket (rate per second, up to the burst), and a request
//! the bucket cannot cover is refused whole with 429 (nothing is written); last, a series the
//! workspace has not seen within the active-series window is refused past the series limit.
//! A request with some series refused still writes the others, and answers the refusal (429
//! for the series limit, 400 for an invalid series), as Cortex does.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use ampkit::timespec::parse_duration;

use crate::isolation::WriteScan;

/// AMP's limits, as amp-local's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Limits {
    /// Samples (and metadata) per second a workspace takes, as a token bucket refilled at this
    /// rate (AMP_quotas: ingestion rate per workspace); more is refused with 429
    #[arg(long, default_value = "140000", value_parser = positive_rate, value_name = "PER_SECOND")]
    pub ingestion_rate: f64,
    /// Samples a workspace takes at once: the bucket's size (AMP_quotas: ingestion burst size
    /// per workspace); a single request larger than this is always refused
    #[arg(long, default_value = "1000000", value_parser = clap::value_parser!(u64).range(1..), value_name = "SAMPLES")]
    pub ingestion_burst: u64,
    /// Active series per workspace (AMP_quotas: 10,000,000 per 2 hours); a new series past it
    /// is refused with 429 `per-user series limit (...) exceeded`
    #[arg(long, default_value = "10000000", value_parser = clap::value_parser!(u64).range(1..), value_name = "SERIES")]
    pub max_active_series: u64,
    /// How long a series counts as active after its last sample (AMP_quotas: "per 2 hours")
    #[arg(long, default_value = "2h", value_parser = positive_duration, value_name = "DURATION")]
    pub active_series_window: Duration,
    /// Labels per series, the metric name included (AMP_quotas: 70); more is refused with 400
    #[arg(long, default_value = "70", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_labels_per_series: u64,
    /// Longest label name in bytes (Cortex's default, which AMP keeps); longer is refused with 400
    #[arg(long, default_value = "1024", value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub max_label_name_length: u64,
    /// Longest label value in bytes (Cortex's default, which AMP keeps); longer is refused with 400
    #[arg(long, default_value = "2048", value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub max_label_value_length: u64,
    /// Longest time range of a range query (AMP_quotas: query time range, 32 days); longer is
    /// refused with 400
    #[arg(long, default_value = "32d", value_parser = positive_duration, value_name = "DURATION")]
    pub max_query_range: Duration,
    /// How long a query may run; it is also the cap on a query's own `timeout` parameter (AMP's
    /// QueryMetrics: "defaults to and is capped by -query.timeout"). One that runs out answers
    /// 422 (AMP-troubleshooting: "HTTP 422 error: query timeout")
    #[arg(long, default_value = "2m", value_parser = positive_duration, value_name = "DURATION")]
    pub query_timeout: Duration,
    /// Rule groups namespaces per workspace (AMP_quotas: 10); one more is refused with 402
    /// ServiceQuotaExceededException
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_rule_groups_namespaces: u64,
    /// Rule groups per workspace, over all its namespaces (AMP_quotas: 100)
    #[arg(long, default_value = "100", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_rule_groups: u64,
    /// Rules per rule group (AMP_quotas: 20); more is refused with 400 ValidationException
    #[arg(long, default_value = "20", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_rules_per_group: u64,
    /// Largest rules file (a namespace's data) in bytes (AMP_quotas: 1 MB)
    #[arg(long, default_value = "1048576", value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub max_rules_file_size: u64,
    /// Largest alert manager definition in bytes (AMP_quotas: 1 MB)
    #[arg(long, default_value = "1048576", value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub max_definition_size: u64,
    /// Templates in an alert manager definition (AMP_quotas: 100)
    #[arg(long, default_value = "100", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_templates: u64,
    /// Nodes of an alert manager definition's routing tree, the root included (AMP_quotas: 100)
    #[arg(long, default_value = "100", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_routing_nodes: u64,
    /// Inhibition rules in an alert manager definition (AMP_quotas: 100)
    #[arg(long, default_value = "100", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_inhibition_rules: u64,
    /// Longest `repeat_interval` of a route (AMP-alertmanager-config: at most 5 days)
    #[arg(long, default_value = "5d", value_parser = positive_duration, value_name = "DURATION")]
    pub max_repeat_interval: Duration,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "`{text}` is not a positive number of samples per second"
        )),
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("a zero duration would refuse everything".to_owned()),
        d => Ok(d),
    }
}

impl Default for Limits {
    /// AMP's defaults (the flags' defaults), for tests and callers without a command line.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            limits: Limits,
        }
        <Only as clap::Parser>::try_parse_from(["amp-local"])
            .map(|o| o.limits)
            .unwrap_or_else(|e| unreachable!("the limits' defaults parse: {e}"))
    }
}

/// A refusal: the status and the plain-text body AMP answers a remote write with (Cortex
/// writes its errors as text, and collectors log the body's first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: String) -> Self {
        Refusal {
            status: status.as_u16(),
            message,
        }
    }

    pub fn response(&self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            [("content-type", "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

/// What a workspace has used: its token bucket and its active series.
struct Usage {
    tokens: f64,
    refilled: Instant,
    /// Series (by a hash of their labels) and when each was last written. Keyed by a hash
    /// already, so hashed again with foldhash rather than SipHash: every series of every
    /// remote write is looked up here, on the write path the bench measures.
    series: HashMap<u64, Instant, foldhash::fast::FixedState>,
    pruned: Instant,
}

/// How often a workspace's series are pruned of those past the window.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Every workspace's ingestion usage, kept in memory: a restart forgets it, as a refill would.
#[derive(Default)]
pub struct Ingest {
    usage: Mutex<HashMap<String, Usage>>,
}

/// What [`Ingest::admit`] decided for a request it did not refuse whole.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Per series in order, whether it is written (empty: all of them).
    pub keep: Vec<bool>,
    /// The answer after the kept series were written, when some were refused.
    pub refusal: Option<Refusal>,
}

/// A label set as Cortex quotes it in messages: `{a="b", c="d"}`.
fn series_text(labels: &[(&[u8], &[u8])]) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn metric_name<'a>(labels: &[(&'a [u8], &'a [u8])]) -> String {
    labels
        .iter()
        .find(|(n, _)| *n == b"__name__")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// Go's `%.200q`: quoted, cut at 200 characters.
fn quoted(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
    format!("{text:?}")
}

/// Cortex's validation of one series (its `ValidateLabels`): the first thing wrong, if any.
fn invalid(limits: &Limits, labels: &[(&[u8], &[u8])]) -> Option<String> {
    if labels.len() as u64 > limits.max_labels_per_series {
        return Some(format!(
            "series has too many labels (actual: {}, limit: {}) series: '{}'",
            labels.len(),
            limits.max_labels_per_series,
            series_text(labels)
        ));
    }
    // The metric's name is looked up only for a message: most series are valid.
    for (name, value) in labels {
        if name.len() as u64 > limits.max_label_name_length {
            return Some(format!(
                "label name too long: {} metric {}",
                quoted(name),
                quoted(metric_name(labels).as_bytes())
            ));
        }
        if value.len() as u64 > limits.max_label_value_length {
            return Some(format!(
                "label value too long: {} metric {}",
                quoted(value),
                quoted(metric_name(labels).as_bytes())
            ));
        }
    }
    None
}

/// A series' identity for counting active series: foldhash (fast, fixed seed so a hash is the
/// same for the whole process) over its label pairs.
fn series_hash(labels: &[(&[u8], &[u8])]) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(0x616d_706b_6974).build_hasher();
    for (n, v) in labels {
        n.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

impl Ingest {
    /// Decide a remote write into `workspace` (see the module's notes for the order), at `now`.
    /// `user` is how AMP names the tenant in messages (`ACCOUNT_WORKSPACE`).
    pub fn admit(
        &self,
        limits: &Limits,
        user: &str,
        workspace: &str,
        scan: &WriteScan<'_>,
        now: Instant,
    ) -> Result<Admitted, Refusal> {
        let mut keep = vec![true; scan.series.len()];
        let mut first_invalid = None;
        let mut samples = 0usize;
        for (i, series) in scan.series.iter().enumerate() {
            match invalid(limits, &series.labels) {
                Some(why) => {
                    keep[i] = false;
                    first_invalid.get_or_insert(why);
                }
                None => samples += series.samples,
            }
        }
        let mut all = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let burst = limits.ingestion_burst as f64;
        let usage = all.entry(workspace.to_owned()).or_insert_with(|| Usage {
            tokens: burst,
            refilled: now,
            series: HashMap::with_hasher(foldhash::fast::FixedState::default()),
            pruned: now,
        });
        // The bucket refills continuously, up to the burst (golang.org/x/time/rate, which
        // Cortex's limiter is).
        let elapsed = now.saturating_duration_since(usage.refilled).as_secs_f64();
        usage.tokens = (usage.tokens + elapsed * limits.ingestion_rate).min(burst);
        usage.refilled = now;
        let wanted = (samples + scan.metadata) as f64;
        if wanted > usage.tokens {
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "ingestion rate limit ({}) exceeded while adding {samples} samples and {} metadata",
                    limits.ingestion_rate, scan.metadata
                ),
            ));
        }
        usage.tokens -= wanted;

        if now.saturating_duration_since(usage.pruned) >= PRUNE_EVERY {
            let window = limits.active_series_window;
            usage
                .series
                .retain(|_, seen| now.saturating_duration_since(*seen) < window);
            usage.pruned = now;
        }
        let mut over_limit = false;
        for (i, series) in scan.series.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let hash = series_hash(&series.labels);
            let known = usage.series.get(&hash).is_some_and(|seen| {
                now.saturating_duration_since(*seen) < limits.active_series_window
            });
            if !known && usage.series.len() as u64 >= limits.max_active_series {
                // A series past the window may be taken again once pruned; until then the
                // count includes it, as an ingester's head does until compaction.
                keep[i] = false;
                over_limit = true;
                continue;
            }
            usage.series.insert(hash, now);
        }
        let refusal = if over_limit {
            let max = limits.max_active_series;
            Some(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "user={user}: per-user series limit (local limit: 0 global limit: {max} \
                     actual local limit: {max}) exceeded"
                ),
            ))
        } else {
            first_invalid.map(|why| Refusal::new(StatusCode::BAD_REQUEST, why))
        };
        Ok(Admitted { keep, refusal })
    }
}

/// A duration as Go prints a `time.Duration` (`768h0m0s`), as Cortex's messages show them.
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs_f64();
    let hours = (total / 3600.0).floor();
    let minutes = ((total - hours * 3600.0) / 60.0).floor();
    let seconds = total - hours * 3600.0 - minutes * 60.0;
    let seconds = if seconds.fract() == 0.0 {
        format!("{seconds:.0}")
    } else {
        format!("{}", (seconds * 1000.0).round() / 1000.0)
    };
    if hours > 0.0 {
        format!("{hours:.0}h{minutes:.0}m{seconds}s")
    } else if minutes > 0.0 {
        format!("{minutes:.0}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::SeriesScan;

    /// Labels as the scan gives them.
    type Labels<'a> = &'a [(&'a [u8], &'a [u8])];

    fn scan<'a>(series: &[(Labels<'a>, usize)], metadata: usize) -> WriteScan<'a> {
        WriteScan {
            series: series
                .iter()
                .map(|(labels, samples)| SeriesScan {
                    labels: labels.to_vec(),
                    samples: *samples,
                })
                .collect(),
            metadata,
        }
    }

    const UP: &[(&[u8], &[u8])] = &[(b"__name__", b"up"), (b"job", b"a")];
    const UP_B: &[(&[u8], &[u8])] = &[(b"__name__", b"up"), (b"job", b"b")];

    #[test]
    fn the_bucket_refuses_past_its_burst_and_refills_at_the_rate() {
        let limits = Limits {
            ingestion_rate: 10.0,
            ingestion_burst: 20,
            ..Limits::default()
        };
        let ingest = Ingest::default();
        let t0 = Instant::now();
        let req = scan(&[(UP, 15)], 0);
        assert!(ingest.admit(&limits, "u", "ws", &req, t0).is_ok());
        let refused = ingest
            .admit(&limits, "u", "ws", &req, t0)
            .expect_err("5 tokens left, 15 wanted");
        assert_eq!(refused.status, 429);
        assert_eq!(
            refused.message,
            "ingestion rate limit (10) exceeded while adding 15 samples and 0 metadata"
        );
        // One second later: 5 + 10 tokens.
        assert!(
            ingest
                .admit(&limits, "u", "ws", &req, t0 + Duration::from_secs(1))
                .is_ok()
        );
        // Another workspace has its own bucket.
        assert!(ingest.admit(&limits, "u", "ws-2", &req, t0).is_ok());
        // Larger than the burst: never.
        let huge = scan(&[(UP, 21)], 0);
        assert!(
            ingest
                .admit(&limits, "u", "ws-3", &huge, t0 + Duration::from_secs(60))
                .is_err()
        );
    }

    #[test]
    fn new_series_past_the_limit_are_refused_and_known_ones_kept() {
        let limits = Limits {
            max_active_series: 1,
            ..Limits::default()
        };
        let ingest = Ingest::default();
        let t0 = Instant::now();
        let first = ingest
            .admit(&limits, "u", "ws", &scan(&[(UP, 1)], 0), t0)
            .expect("admitted");
        assert_eq!(first.refusal, None);
        let both = ingest
            .admit(&limits, "u", "ws", &scan(&[(UP, 1), (UP_B, 1)], 0), t0)
            .expect("admitted in part");
        assert_eq!(both.keep, vec![true, false]);
        let refusal = both.refusal.expect("a refusal");
        assert_eq!(refusal.status, 429);
        assert_eq!(
            refusal.message,
            "user=u: per-user series limit (local limit: 0 global limit: 1 actual local limit: 1) exceeded"
        );
        // Past the window (and a prune), the old series no longer counts.
        let later = t0 + limits.active_series_window + PRUNE_EVERY;
        let again = ingest
            .admit(&limits, "u", "ws", &scan(&[(UP_B, 1)], 0), later)
            .expect("admitted");
        assert_eq!(again.refusal, None);
    }

    #[test]
    fn invalid_series_are_dropped_with_cortexs_messages() {
        let limits = Limits {
            max_labels_per_series: 2,
            max_label_name_length: 8,
            max_label_value_length: 3,
            ..Limits::default()
        };
        let ingest = Ingest::default();
        let now = Instant::now();
        let three: &[(&[u8], &[u8])] = &[(b"__name__", b"up"), (b"a", b"1"), (b"b", b"2")];
        let long_name: &[(&[u8], &[u8])] = &[(b"__name__", b"up"), (b"much_too_long", b"1")];
        let long_value: &[(&[u8], &[u8])] = &[(b"__name__", b"up"), (b"a", b"1234")];
        let cases = [
            (
                three,
                "series has too many labels (actual: 3, limit: 2) series: '{__name__=\"up\", a=\"1\", b=\"2\"}'",
            ),
            (
                long_name,
                "label name too long: \"much_too_long\" metric \"up\"",
            ),
            (long_value, "label value too long: \"1234\" metric \"up\""),
        ];
        for (labels, message) in cases {
            let admitted = ingest
                .admit(&limits, "u", "ws", &scan(&[(labels, 1), (UP, 1)], 0), now)
                .expect("the valid series goes on");
            assert_eq!(admitted.keep, vec![false, true]);
            assert_eq!(
                admitted.refusal,
                Some(Refusal {
                    status: 400,
                    message: message.to_owned()
                })
            );
        }
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(32 * 86400)), "768h0m0s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn bad_limits_are_refused_with_the_flag_named() {
        #[derive(clap::Parser, Debug)]
        struct Only {
            #[command(flatten)]
            limits: Limits,
        }
        for args in [
            ["x", "--ingestion-rate", "0"],
            ["x", "--ingestion-rate", "fast"],
            ["x", "--max-active-series", "0"],
            ["x", "--query-timeout", "0s"],
        ] {
            let err = <Only as clap::Parser>::try_parse_from(args).expect_err("refused");
            assert!(err.to_string().contains(args[1]), "{err}");
        }
    }
}
