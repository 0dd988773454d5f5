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
    /// rate; more is refused with 429 [default: 1/30 of --max-active-series, as AMP sets it:
    /// AMP_quotas (2026) gives 1,666,666 samples/s for the default 50,000,000 series, and
    /// AMP-troubleshooting's example refusal names a rate of 6666.666666666667, 200,000 / 30]
    #[arg(long, value_parser = positive_rate, value_name = "PER_SECOND")]
    pub ingestion_rate: Option<f64>,
    /// Samples a workspace takes at once: the bucket's size; a single request larger than this
    /// is always refused. AMP_quotas no longer names a burst size since the 2026 limits; this
    /// is the last one it gave (ingestion burst size per workspace, 1,000,000)
    #[arg(long, default_value = "1000000", value_parser = clap::value_parser!(u64).range(1..), value_name = "SAMPLES")]
    pub ingestion_burst: u64,
    /// Active series per workspace; a new series past it is refused with 429 `per-user series
    /// limit (...) exceeded`. AMP_quotas (2026): 50,000,000 by default, capacity adjusted
    /// from 2 M with use (earlier pages: 10,000,000 per 2 hours)
    #[arg(long, default_value = "50000000", value_parser = clap::value_parser!(u64).range(1..), value_name = "SERIES")]
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
    /// Samples a query may hold at once (AMP_quotas: "Query samples"; its figure could not be
    /// read here: 50,000,000 is Cortex's and Prometheus's default, which one AWS page gives,
    /// another source says 12,000,000). More is refused with 422 `query processing would load
    /// too many samples into memory in query execution`, the Prometheus engine's words AMP
    /// answers. Not below the Prometheus behind's own --query.max-samples, it refuses first
    #[arg(long, default_value = "50000000", value_parser = clap::value_parser!(u64).range(1..), value_name = "SAMPLES")]
    pub max_query_samples: u64,
    /// Active metrics with metadata per workspace (AMP_quotas: 20,000); the metadata of a new
    /// metric past it is dropped and its samples written, as AMP's page says
    #[arg(long, default_value = "20000", value_parser = clap::value_parser!(u64).range(1..), value_name = "METRICS")]
    pub max_metrics_with_metadata: u64,
    /// Metadata entries (type, help, unit) per metric (AMP_quotas: "Metadata per metric"; its
    /// figure could not be read here: 10 is Mimir's default); more are dropped, as above
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub max_metadata_per_metric: u64,
    /// Longest metric name, help or unit of a metadata entry in bytes (AMP_quotas' "Metadata
    /// length" could not be read here: 1024 is Cortex's default); longer is refused with 400
    #[arg(long, default_value = "1024", value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub max_metadata_length: u64,
    /// How long metadata stays active after it was last sent (Cortex's
    /// -ingester.metadata-retain-period; AMP does not say)
    #[arg(long, default_value = "10m", value_parser = positive_duration, value_name = "DURATION")]
    pub metadata_retain_period: Duration,
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

impl Limits {
    /// The ingestion rate in force: the flag's, else AMP's 1/30 of the active series limit.
    pub fn ingestion_rate(&self) -> f64 {
        self.ingestion_rate
            .unwrap_or(self.max_active_series as f64 / 30.0)
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
    pub fn new(status: StatusCode, message: String) -> Self {
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
    /// Each workspace's remote-written metadata ([`Ingest::record_metadata`]).
    metadata: Mutex<HashMap<String, MetadataUsage>>,
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
        usage.tokens = (usage.tokens + elapsed * limits.ingestion_rate()).min(burst);
        usage.refilled = now;
        let wanted = (samples + scan.metadata) as f64;
        if wanted > usage.tokens {
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "ingestion rate limit ({}) exceeded while adding {samples} samples and {} metadata",
                    limits.ingestion_rate(),
                    scan.metadata
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

// ---- metadata ----------------------------------------------------------------------------
//
// Remote-write requests carry metric metadata (type, help, unit per metric family). The
// Prometheus behind amp-local keeps none of it, so amp-local keeps each workspace's here and
// answers the workspace's `api/v1/metadata` with it, as AMP's GetMetricMetadata does. Cortex's
// rules, which AMP keeps: an entry with no metric name, or a name, help or unit past the
// metadata length, is refused with 400 (the distributor's `ValidateMetadata`; the request's
// other series and metadata are still written). The per-workspace and per-metric limits are
// best effort: past them the metadata is dropped, the samples written and the answer a
// success (Cortex's ingester: "Given metadata is a best-effort approach, and we don't halt on
// errors"; AMP_quotas: "metric sample is recorded, but metadata over the limit is dropped"),
// and the drop is logged in Cortex's words.

/// `WriteRequest` read for its metadata (field 3) only: prost skips the series unread.
#[derive(Clone, PartialEq, prost::Message)]
struct MetadataOnly {
    #[prost(message, repeated, tag = "3")]
    metadata: Vec<MetricMetadata>,
}

/// prompb's `MetricMetadata`. Text fields as bytes: what a sender wrote is kept as sent.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub metric_family_name: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub help: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    pub unit: Vec<u8>,
}

/// One metadata entry of a metric, as the metadata API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// prompb's `MetricType` as the Prometheus API names it.
fn type_name(kind: i32) -> &'static str {
    match kind {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

/// The metadata entries of a decompressed `WriteRequest`.
pub fn read_metadata(raw: &[u8]) -> Result<Vec<MetricMetadata>, String> {
    <MetadataOnly as prost::Message>::decode(raw)
        .map(|m| m.metadata)
        .map_err(|e| format!("the body is not a remote-write WriteRequest: {e}"))
}

/// Cortex's `ValidateMetadata` of one entry: what is wrong with it, if anything.
pub fn invalid_metadata(limits: &Limits, m: &MetricMetadata) -> Option<String> {
    let name = &m.metric_family_name;
    if name.is_empty() {
        return Some("metadata missing metric name".to_owned());
    }
    let max = limits.max_metadata_length as usize;
    let (kind, value) = if name.len() > max {
        ("METRIC_NAME", name)
    } else if m.help.len() > max {
        ("HELP", &m.help)
    } else if m.unit.len() > max {
        ("UNIT", &m.unit)
    } else {
        return None;
    };
    Some(format!(
        "metadata '{kind}' value too long: {} metric {}",
        quoted(value),
        quoted(name)
    ))
}

/// A workspace's metadata: per metric name, its entries (in the order first sent) and when
/// each was last sent.
#[derive(Default)]
struct MetadataUsage {
    metrics: HashMap<Vec<u8>, Vec<(MetricMetadata, Instant)>>,
}

impl MetadataUsage {
    fn prune(&mut self, retain: Duration, now: Instant) {
        self.metrics.retain(|_, entries| {
            entries.retain(|(_, seen)| now.saturating_duration_since(*seen) < retain);
            !entries.is_empty()
        });
    }
}

impl Ingest {
    /// Keep the valid `entries` of a write into `workspace` within the metadata limits; the
    /// first entry dropped is answered in Cortex's words (for the log: the write succeeds).
    pub fn record_metadata(
        &self,
        limits: &Limits,
        user: &str,
        workspace: &str,
        entries: Vec<MetricMetadata>,
        now: Instant,
    ) -> Option<String> {
        if entries.is_empty() {
            return None;
        }
        let mut all = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        let usage = all.entry(workspace.to_owned()).or_default();
        // Metadata comes in its own small requests (a Prometheus sends it once a minute), so
        // the prune runs with each: the limits count only what is still active.
        usage.prune(limits.metadata_retain_period, now);
        let (per_user, per_metric) = (
            limits.max_metrics_with_metadata,
            limits.max_metadata_per_metric,
        );
        let mut first_dropped = None;
        for entry in entries {
            let known_metric = usage.metrics.contains_key(&entry.metric_family_name);
            if !known_metric && usage.metrics.len() as u64 >= per_user {
                first_dropped.get_or_insert_with(|| {
                    format!(
                        "user={user}: per-user metric metadata limit (local limit: 0 global limit: \
                         {per_user} actual local limit: {per_user}) exceeded"
                    )
                });
                continue;
            }
            let name = entry.metric_family_name.clone();
            let set = usage.metrics.entry(name).or_default();
            // Unlike Cortex, an entry already known is refreshed even when the set is full:
            // a sender that re-sends its metadata every minute keeps it active.
            if let Some(known) = set.iter_mut().find(|(m, _)| *m == entry) {
                known.1 = now;
                continue;
            }
            if set.len() as u64 >= per_metric {
                first_dropped.get_or_insert_with(|| {
                    format!(
                        "user={user}: per-metric metadata limit (local limit: 0 global limit: \
                         {per_metric} actual local limit: {per_metric}) exceeded for series \
                         {{__name__={}}}",
                        quoted(&entry.metric_family_name)
                    )
                });
                continue;
            }
            set.push((entry, now));
        }
        first_dropped
    }

    /// The active metadata of `workspace`, by metric name (sorted), each metric's entries in
    /// the order first sent.
    pub fn metadata_of(
        &self,
        limits: &Limits,
        workspace: &str,
        now: Instant,
    ) -> Vec<(String, Vec<Meta>)> {
        let all = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        let Some(usage) = all.get(workspace) else {
            return Vec::new();
        };
        let retain = limits.metadata_retain_period;
        let mut out: Vec<(String, Vec<Meta>)> = usage
            .metrics
            .iter()
            .filter_map(|(name, entries)| {
                let metas: Vec<Meta> = entries
                    .iter()
                    .filter(|(_, seen)| now.saturating_duration_since(*seen) < retain)
                    .map(|(m, _)| Meta {
                        kind: type_name(m.r#type),
                        help: String::from_utf8_lossy(&m.help).into_owned(),
                        unit: String::from_utf8_lossy(&m.unit).into_owned(),
                    })
                    .collect();
                (!metas.is_empty()).then(|| (String::from_utf8_lossy(name).into_owned(), metas))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

// ---- query cost ----------------------------------------------------------------------------
//
// AMP's QueryMetrics takes two Query Samples Processed (QSP) thresholds per request
// (AMP-APIReference-QueryMetrics; query-insights-control): past the warning threshold "a
// warning message will be returned in the API response", past the error threshold the query
// "will be rejected with an error". There is no workspace-wide default: Grafana users set them
// as the data source's custom query parameters. QSP is what Prometheus's `stats=all` reports
// as `samples.totalQueryableSamples` (AMP-stats: "This is the information to be used for
// billing"). The samples-per-query quota is the Prometheus engine's own limit on the samples a
// query holds at once, `samples.peakSamples`.
//
// The stats are asked of the Prometheus only when a threshold or a samples quota below the
// Prometheus's own is in force, and taken out of the answer again unless the user asked for
// them: the stats object closes the answer's `data`, so that is a cut near the end of the body,
// not a parse of the whole answer.
//
// AMP documents neither the wording nor the status of the threshold answers: the warning is
// added to the answer's `warnings`, and the refusal is a 422 with errorType `execution`, as
// AMP answers its other per-query limits (the samples quota below; the aggregated data size
// limit, "HTTP 422: expanding series: the query hit the aggregated data size limit").

/// QueryMetrics' warning threshold parameter.
pub const WARNING_THRESHOLD: &str = "max_samples_processed_warning_threshold";
/// QueryMetrics' error threshold parameter.
pub const ERROR_THRESHOLD: &str = "max_samples_processed_error_threshold";

/// The Prometheus engine's refusal past its samples limit, which AMP passes on.
pub const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// What one query is held to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueryCost {
    pub warning: Option<u64>,
    pub error: Option<u64>,
    /// The samples quota, when amp-local (not the Prometheus behind) must enforce it.
    pub max_samples: Option<u64>,
    /// The user asked for the stats (a non-empty `stats`): they stay in the answer.
    pub stats_asked: bool,
}

/// The Prometheus behind's own samples limit (its `--query.max-samples`), read once from its
/// flags: a samples quota not below it needs no stats, as that Prometheus refuses first.
#[derive(Default)]
pub struct BackendSamples(std::sync::OnceLock<u64>);

impl BackendSamples {
    pub fn get(&self) -> Option<u64> {
        self.0.get().copied()
    }

    pub fn set(&self, limit: u64) {
        let _ = self.0.set(limit);
    }
}

/// A query refused for its cost: Prometheus's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRefusal {
    pub status: u16,
    pub error_type: &'static str,
    pub message: String,
}

impl QueryCost {
    /// The thresholds of a query's parameters, taken out of them (the Prometheus behind does
    /// not know them); an unreadable one is the message of a 400.
    pub fn take_thresholds(params: &mut Vec<(String, String)>) -> Result<QueryCost, String> {
        let mut cost = QueryCost::default();
        let mut bad = None;
        params.retain(|(name, value)| {
            let slot = match name.as_str() {
                WARNING_THRESHOLD => &mut cost.warning,
                ERROR_THRESHOLD => &mut cost.error,
                "stats" => {
                    cost.stats_asked |= !value.is_empty();
                    return true;
                }
                _ => return true,
            };
            match value.trim().parse::<u64>() {
                Ok(n) => *slot = Some(n),
                Err(_) => {
                    bad.get_or_insert_with(|| {
                        format!(
                            "invalid parameter \"{name}\": cannot parse {value:?} to a valid \
                             non-negative integer"
                        )
                    });
                }
            }
            false
        });
        match bad {
            Some(why) => Err(why),
            None => Ok(cost),
        }
    }

    /// Whether the Prometheus must be asked for the query's stats.
    pub fn needs_stats(&self) -> bool {
        self.warning.is_some() || self.error.is_some() || self.max_samples.is_some()
    }

    /// Hold a successful query answer `body` (asked with `stats=all`) to this cost: the answer
    /// to send (with the threshold's warning, without stats the user did not ask for), or the
    /// refusal. An answer without stats is passed on as it is.
    pub fn judge(&self, body: Vec<u8>) -> Result<Vec<u8>, QueryRefusal> {
        let Some(found) = find_stats(&body) else {
            return Ok(body);
        };
        let samples = &found.stats["samples"];
        let processed = samples["totalQueryableSamples"].as_u64().unwrap_or(0);
        let peak = samples["peakSamples"].as_u64().unwrap_or(0);
        let refuse = |message: String| QueryRefusal {
            status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            error_type: "execution",
            message,
        };
        if let Some(max) = self.max_samples
            && peak > max
        {
            return Err(refuse(TOO_MANY_SAMPLES.to_owned()));
        }
        if let Some(limit) = self.error
            && processed > limit
        {
            return Err(refuse(format!(
                "the query processed {processed} samples, more than the {limit} of \
                 {ERROR_THRESHOLD}: it was refused"
            )));
        }
        let warning = self
            .warning
            .filter(|limit| processed > *limit)
            .map(|limit| {
                format!(
                    "the query processed {processed} samples, more than the {limit} of \
                 {WARNING_THRESHOLD}"
                )
            });
        if self.stats_asked && warning.is_none() {
            return Ok(body);
        }
        Ok(rebuild(&body, &found, self.stats_asked, warning))
    }
}

/// Where a query answer's `data.stats` is: from the comma before it to the end of its object.
struct StatsAt {
    comma: usize,
    end: usize,
    stats: serde_json::Value,
}

/// The stats member closes `data` in Prometheus's answers (`QueryData`'s last field), so it is
/// looked for from the end. `,"stats":{` cannot occur inside a string (its quotes would be
/// escaped), and no other object-valued member of an answer is named `stats`.
fn find_stats(body: &[u8]) -> Option<StatsAt> {
    const KEY: &[u8] = b",\"stats\":{";
    let comma = body.windows(KEY.len()).rposition(|w| w == KEY)?;
    let open = comma + KEY.len() - 1;
    let mut values =
        serde_json::Deserializer::from_slice(&body[open..]).into_iter::<serde_json::Value>();
    let stats = values.next()?.ok()?;
    let end = open + values.byte_offset();
    (body.get(end) == Some(&b'}')).then_some(StatsAt { comma, end, stats })
}

/// `body` without its stats (unless `keep_stats`), with `warning` added to its `warnings`.
/// Only what follows `data` is parsed: the warnings and infos.
fn rebuild(body: &[u8], at: &StatsAt, keep_stats: bool, warning: Option<String>) -> Vec<u8> {
    let data_end = if keep_stats { at.end } else { at.comma };
    // What follows `data`'s closing brace: `}` alone, or `,"warnings":[...],...}`.
    let after = body[at.end + 1..].trim_ascii_end();
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..data_end]);
    out.push(b'}');
    let Some(warning) = warning else {
        out.extend_from_slice(after);
        return out;
    };
    let mut rest: serde_json::Map<String, serde_json::Value> = match after.split_first() {
        Some((b',', members)) => {
            let mut object = Vec::with_capacity(members.len() + 1);
            object.push(b'{');
            object.extend_from_slice(members);
            match serde_json::from_slice(&object) {
                Ok(map) => map,
                Err(_) => {
                    out.extend_from_slice(after);
                    return out;
                }
            }
        }
        _ => serde_json::Map::new(),
    };
    match rest
        .get_mut("warnings")
        .and_then(serde_json::Value::as_array_mut)
    {
        Some(list) => list.push(warning.into()),
        None => {
            rest.insert(
                "warnings".to_owned(),
                vec![serde_json::Value::from(warning)].into(),
            );
        }
    }
    let members = serde_json::Value::Object(rest).to_string();
    out.push(b',');
    out.extend_from_slice(&members.as_bytes()[1..]);
    out
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
    fn without_a_rate_it_is_a_thirtieth_of_the_series_limit_as_amp_sets_it() {
        let limits = Limits::default();
        assert_eq!(limits.max_active_series, 50_000_000);
        assert!((limits.ingestion_rate() - 1_666_666.666).abs() < 1.0);
        let small = Limits {
            max_active_series: 200_000,
            ..Limits::default()
        };
        // AMP-troubleshooting's example refusal: "ingestion rate limit (6666.666666666667)".
        assert_eq!(small.ingestion_rate().to_string(), "6666.666666666667");
        let given = Limits {
            ingestion_rate: Some(5.0),
            ..small
        };
        assert_eq!(given.ingestion_rate(), 5.0);
    }

    #[test]
    fn the_bucket_refuses_past_its_burst_and_refills_at_the_rate() {
        let limits = Limits {
            ingestion_rate: Some(10.0),
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

    const ANSWER: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"stats":"x"},"value":[1,"2"]}],"stats":{"timings":{"evalTotalTime":0.1},"samples":{"totalQueryableSamples":120,"peakSamples":40}}},"infos":["i"]}"#;

    fn judged(cost: QueryCost, body: &str) -> Result<serde_json::Value, QueryRefusal> {
        cost.judge(body.as_bytes().to_vec())
            .map(|b| serde_json::from_slice(&b).expect("still JSON"))
    }

    #[test]
    fn query_cost_warns_refuses_and_takes_the_stats_out_unless_asked() {
        let plain: serde_json::Value = serde_json::from_str(ANSWER).unwrap();
        // Under every threshold: the answer without its stats, nothing else changed.
        let cost = QueryCost {
            warning: Some(120),
            error: Some(120),
            ..QueryCost::default()
        };
        let mut expected = plain.clone();
        expected["data"].as_object_mut().unwrap().remove("stats");
        assert_eq!(judged(cost, ANSWER).unwrap(), expected);
        // Past the warning threshold: a warning, the infos kept.
        let cost = QueryCost {
            warning: Some(119),
            ..QueryCost::default()
        };
        let warned = judged(cost, ANSWER).unwrap();
        assert_eq!(
            warned["warnings"],
            serde_json::json!([format!(
                "the query processed 120 samples, more than the 119 of {WARNING_THRESHOLD}"
            )])
        );
        assert_eq!(warned["infos"], serde_json::json!(["i"]));
        assert_eq!(warned["data"]["stats"], serde_json::Value::Null);
        // Asked for: the stats stay, and an existing warnings list grows.
        let with_warning = ANSWER.replace(r#""infos":["i"]"#, r#""warnings":["w"]"#);
        let cost = QueryCost {
            warning: Some(1),
            stats_asked: true,
            ..QueryCost::default()
        };
        let kept = judged(cost, &with_warning).unwrap();
        assert_eq!(
            kept["data"]["stats"]["samples"]["totalQueryableSamples"],
            120
        );
        assert_eq!(kept["warnings"].as_array().unwrap().len(), 2);
        // Past the error threshold, or the samples quota (on the peak): 422.
        let refused = judged(
            QueryCost {
                error: Some(119),
                ..QueryCost::default()
            },
            ANSWER,
        )
        .unwrap_err();
        assert_eq!((refused.status, refused.error_type), (422, "execution"));
        let refused = judged(
            QueryCost {
                max_samples: Some(39),
                ..QueryCost::default()
            },
            ANSWER,
        )
        .unwrap_err();
        assert_eq!(refused.message, TOO_MANY_SAMPLES);
        assert!(
            judged(
                QueryCost {
                    max_samples: Some(40),
                    ..QueryCost::default()
                },
                ANSWER
            )
            .is_ok()
        );
        // No stats in the answer: passed on as it is.
        let bare = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let cost = QueryCost {
            error: Some(0),
            ..QueryCost::default()
        };
        assert_eq!(
            cost.judge(bare.as_bytes().to_vec()).unwrap(),
            bare.as_bytes()
        );
    }

    #[test]
    fn thresholds_are_taken_out_of_the_parameters() {
        let mut params = vec![
            ("query".to_owned(), "up".to_owned()),
            (WARNING_THRESHOLD.to_owned(), "10".to_owned()),
            (ERROR_THRESHOLD.to_owned(), "20".to_owned()),
            ("stats".to_owned(), "all".to_owned()),
        ];
        let cost = QueryCost::take_thresholds(&mut params).unwrap();
        assert_eq!(
            (cost.warning, cost.error, cost.stats_asked),
            (Some(10), Some(20), true)
        );
        assert_eq!(params.len(), 2);
        let mut bad = vec![(ERROR_THRESHOLD.to_owned(), "lots".to_owned())];
        let why = QueryCost::take_thresholds(&mut bad).unwrap_err();
        assert!(why.contains(ERROR_THRESHOLD), "{why}");
    }

    fn meta(name: &str, help: &str) -> MetricMetadata {
        MetricMetadata {
            r#type: 1,
            metric_family_name: name.as_bytes().to_vec(),
            help: help.as_bytes().to_vec(),
            unit: Vec::new(),
        }
    }

    #[test]
    fn metadata_past_its_limits_is_dropped_and_expires() {
        let limits = Limits {
            max_metrics_with_metadata: 1,
            max_metadata_per_metric: 1,
            max_metadata_length: 4,
            ..Limits::default()
        };
        let ingest = Ingest::default();
        let t0 = Instant::now();
        let dropped = ingest.record_metadata(
            &limits,
            "u",
            "ws",
            vec![meta("a", "x"), meta("a", "y"), meta("b", "x")],
            t0,
        );
        assert_eq!(
            dropped.as_deref(),
            Some(
                "user=u: per-metric metadata limit (local limit: 0 global limit: 1 actual local limit: 1) exceeded for series {__name__=\"a\"}"
            )
        );
        let kept = ingest.metadata_of(&limits, "ws", t0);
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (
                kept[0].0.as_str(),
                kept[0].1[0].kind,
                kept[0].1[0].help.as_str()
            ),
            ("a", "counter", "x")
        );
        assert_eq!(
            ingest
                .record_metadata(&limits, "u", "ws", vec![meta("b", "x")], t0)
                .as_deref(),
            Some(
                "user=u: per-user metric metadata limit (local limit: 0 global limit: 1 actual local limit: 1) exceeded"
            )
        );
        // A known entry sent again is no drop; past the retain period the slot is free.
        assert_eq!(
            ingest.record_metadata(&limits, "u", "ws", vec![meta("a", "x")], t0),
            None
        );
        let later = t0 + limits.metadata_retain_period;
        assert_eq!(
            ingest.record_metadata(&limits, "u", "ws", vec![meta("b", "x")], later),
            None
        );
        assert_eq!(ingest.metadata_of(&limits, "ws", later)[0].0, "b");
        // Cortex's validation messages.
        assert_eq!(
            invalid_metadata(&limits, &meta("", "")).as_deref(),
            Some("metadata missing metric name")
        );
        assert_eq!(
            invalid_metadata(&limits, &meta("a", "too long")).as_deref(),
            Some("metadata 'HELP' value too long: \"too long\" metric \"a\"")
        );
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
