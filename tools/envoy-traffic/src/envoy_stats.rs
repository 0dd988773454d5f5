//! The cross-check against Envoy's own counters.
//!
//! A load generator's numbers are only as good as the proof that they match what the mesh saw.
//! Before and after a run this reads the request counters of each Envoy admin endpoint
//! (`http.<prefix>.downstream_rq_total|Nxx`, `cluster.<name>.upstream_rq_total|Nxx`; counters
//! are exact at `/stats`, unlike histograms, which lag by the flush interval) and reads the
//! listeners, routes and clusters from `/config_dump`. Following each of our paths from the
//! listener we sent to, through its route to a cluster, and from the cluster's endpoint to the
//! next Envoy's listener, gives the count every listener and cluster should have seen; each is
//! put next to Envoy's delta with `match: true|false`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::Value;

use super::load::PathCounts;
use ampkit::error::{Error, Result};

/// Only the request counters: the regex Envoy filters `/stats` with.
const STATS_FILTER: &str = r"^(http|cluster)\..+\.(downstream|upstream)_rq_(total|[1-5]xx)$";

/// Counter deltas are read until two reads agree; this bounds the wait (a little over
/// Envoy's default 5 s stats flush interval).
const SETTLE_MAX: Duration = Duration::from_secs(6);
const SETTLE_STEP: Duration = Duration::from_millis(250);

/// Requests and answers by class, as Envoy counts them and as we expect them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    /// Index 1..=5 for 1xx..5xx.
    pub classes: [u64; 6],
}

impl Counts {
    fn add_flow(&mut self, flow: &PathCounts) {
        self.total += flow.reached();
        for c in 1..=5 {
            self.classes[c] += flow.classes[c];
        }
    }

    fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    fn delta(after: &Counts, before: &Counts) -> Counts {
        let mut d = Counts {
            total: after.total.saturating_sub(before.total),
            classes: [0; 6],
        };
        for c in 1..=5 {
            d.classes[c] = after.classes[c].saturating_sub(before.classes[c]);
        }
        d
    }
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("total", &self.total)?;
        for c in 1..=5 {
            if self.classes[c] > 0 {
                map.serialize_entry(&format!("{c}xx"), &self.classes[c])?;
            }
        }
        map.end()
    }
}

/// What a counter is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// An HTTP connection manager, by stat prefix.
    Listener(String),
    Cluster(String),
}

/// One admin endpoint's request counters.
pub type Snapshot = BTreeMap<Subject, Counts>;

/// Parse `/stats?format=json` into request counters. Names with extra segments (per-zone,
/// canary, internal/external splits, user agents) are duplicates of the main counter and are
/// skipped; the proxy's own listeners and their clusters are skipped too (reading the admin
/// changes its counters, and scrapes pass through the metrics listeners at any time).
pub fn parse_stats(json: &Value) -> Snapshot {
    let mut snap = Snapshot::new();
    let Some(stats) = json.get("stats").and_then(Value::as_array) else {
        return snap;
    };
    for stat in stats {
        let (Some(name), Some(value)) = (
            stat.get("name").and_then(Value::as_str),
            stat.get("value").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let Some((subject, class)) = parse_counter_name(name) else {
            continue;
        };
        let counts = snap.entry(subject).or_default();
        match class {
            None => counts.total = value,
            Some(c) => counts.classes[c] = value,
        }
    }
    snap
}

fn parse_counter_name(name: &str) -> Option<(Subject, Option<usize>)> {
    let (head, tail) = name.rsplit_once('.')?;
    let (dir, kind) = tail.split_once("_rq_")?;
    let class = match kind {
        "total" => None,
        k => {
            let c = k.strip_suffix("xx")?.parse::<usize>().ok()?;
            if !(1..=5).contains(&c) {
                return None;
            }
            Some(c)
        }
    };
    match dir {
        "downstream" => {
            let prefix = head.strip_prefix("http.")?;
            // Istio ends its stat prefixes with `;` (inbound_0.0.0.0_8080;), so that the dots
            // before it are the prefix's own; other dots are sub-scopes of another stat.
            let sub_scoped = prefix.contains('.') && !prefix.ends_with(';');
            // The proxy's own listeners (admin; the metrics listeners every scrape of Envoy
            // Gateway's and Consul's proxies passes through) count requests that are not ours.
            if sub_scoped || ampkit::mesh::OWN_LISTENERS.contains(&prefix) {
                return None;
            }
            Some((Subject::Listener(prefix.to_owned()), class))
        }
        "upstream" => {
            let cluster = head.strip_prefix("cluster.")?;
            // Cluster names may hold dots (`outbound|80||svc.ns.svc.cluster.local`), so only
            // the known sub-scopes are recognised and skipped.
            let sub_scoped = [".external", ".internal", ".canary"]
                .iter()
                .any(|s| cluster.ends_with(s))
                || cluster.contains(".zone.");
            if sub_scoped || ampkit::mesh::OWN_CLUSTERS.contains(&cluster) {
                return None;
            }
            Some((Subject::Cluster(cluster.to_owned()), class))
        }
        _ => None,
    }
}

/// How a route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Cluster(String),
    /// Answered by Envoy itself (direct response, redirect) or not understood here.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(String),
    /// Envoy's `path_separated_prefix` (what Envoy Gateway writes for a PathPrefix match):
    /// the path itself, or it followed by `/`.
    SeparatedPrefix(String),
    Path(String),
    /// A matcher this module does not evaluate (regex, headers): stops the walk.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub matcher: PathMatch,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub prefix: String,
    /// The routes of the first virtual host (the mesh's listeners have one, for `*`).
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub listeners: Vec<Listener>,
    /// Cluster name -> endpoint ports.
    pub clusters: BTreeMap<String, Vec<u16>>,
    /// Cluster name -> the name its statistics are kept under, where the cluster sets one
    /// (`alt_stat_name`: Istio names every cluster's stats `<name>;`).
    pub stat_names: BTreeMap<String, String>,
}

impl Topology {
    fn listener_on(&self, port: u16) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.port == port)
    }

    /// The name `cluster`'s statistics carry.
    fn stat_name<'a>(&'a self, cluster: &'a str) -> &'a str {
        self.stat_names.get(cluster).map_or(cluster, String::as_str)
    }
}

impl Listener {
    fn route(&self, path: &str) -> Option<&Route> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        self.routes.iter().find(|r| match &r.matcher {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::SeparatedPrefix(p) => path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
            PathMatch::Path(p) => path == p,
            PathMatch::Unknown => true,
        })
    }
}

fn port_of(address: &Value) -> Option<u16> {
    address
        .pointer("/socket_address/port_value")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
}

fn parse_routes(route_config: &Value) -> Vec<Route> {
    let Some(vhost) = route_config
        .get("virtual_hosts")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    else {
        return Vec::new();
    };
    let routes = vhost.get("routes").and_then(Value::as_array);
    routes
        .into_iter()
        .flatten()
        .map(|r| {
            let m = r.get("match");
            let text = |key: &str| m.and_then(|m| m.get(key)).and_then(Value::as_str);
            let matcher = if let Some(p) = text("prefix") {
                PathMatch::Prefix(p.to_owned())
            } else if let Some(p) = text("path_separated_prefix") {
                PathMatch::SeparatedPrefix(p.to_owned())
            } else if let Some(p) = m.and_then(|m| m.get("path")).and_then(Value::as_str) {
                PathMatch::Path(p.to_owned())
            } else {
                PathMatch::Unknown
            };
            let action = match r.pointer("/route/cluster").and_then(Value::as_str) {
                Some(c) => Action::Cluster(c.to_owned()),
                None => Action::Local,
            };
            Route { matcher, action }
        })
        .collect()
}

/// The entries of a `/config_dump` whose `@type` ends with `suffix`.
fn configs_of<'a>(dump: &'a Value, suffix: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    dump.get("configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |c| {
            c.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(suffix))
        })
}

/// Parse `/config_dump`: listeners with their HTTP connection managers' routes (inline or by
/// RDS name), and clusters with their endpoint ports.
pub fn parse_topology(dump: &Value) -> Topology {
    let of_type = |suffix: &'static str| configs_of(dump, suffix);
    let mut named_routes: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    for c in of_type("RoutesConfigDump") {
        for key in ["static_route_configs", "dynamic_route_configs"] {
            for rc in c.get(key).and_then(Value::as_array).into_iter().flatten() {
                if let Some(cfg) = rc.get("route_config")
                    && let Some(name) = cfg.get("name").and_then(Value::as_str)
                {
                    named_routes.insert(name.to_owned(), parse_routes(cfg));
                }
            }
        }
    }
    let mut topo = Topology::default();
    for c in of_type("ListenersConfigDump") {
        let statics = c.get("static_listeners").and_then(Value::as_array);
        let dynamics = c.get("dynamic_listeners").and_then(Value::as_array);
        let listeners = statics
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("listener"))
            .chain(
                dynamics
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.pointer("/active_state/listener")),
            );
        for l in listeners {
            let Some(port) = l.get("address").and_then(port_of) else {
                continue;
            };
            let chains = l.get("filter_chains").and_then(Value::as_array);
            for f in chains
                .into_iter()
                .flatten()
                .filter_map(|ch| ch.get("filters").and_then(Value::as_array))
                .flatten()
            {
                let Some(hcm) = f.get("typed_config") else {
                    continue;
                };
                let Some(prefix) = hcm.get("stat_prefix").and_then(Value::as_str) else {
                    continue;
                };
                let routes = if let Some(rc) = hcm.get("route_config") {
                    parse_routes(rc)
                } else if let Some(name) = hcm
                    .pointer("/rds/route_config_name")
                    .and_then(Value::as_str)
                {
                    named_routes.get(name).cloned().unwrap_or_default()
                } else {
                    Vec::new()
                };
                topo.listeners.push(Listener {
                    port,
                    prefix: prefix.to_owned(),
                    routes,
                });
            }
        }
    }
    for c in of_type("ClustersConfigDump") {
        let statics = c.get("static_clusters").and_then(Value::as_array);
        let dynamics = c.get("dynamic_active_clusters").and_then(Value::as_array);
        for cl in statics
            .into_iter()
            .flatten()
            .chain(dynamics.into_iter().flatten())
        {
            let Some(cluster) = cl.get("cluster") else {
                continue;
            };
            let Some(name) = cluster.get("name").and_then(Value::as_str) else {
                continue;
            };
            let ports = cluster
                .pointer("/load_assignment/endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("lb_endpoints").and_then(Value::as_array))
                .flatten()
                .filter_map(|e| e.pointer("/endpoint/address").and_then(port_of))
                .collect();
            topo.clusters.insert(name.to_owned(), ports);
            if let Some(alt) = cluster.get("alt_stat_name").and_then(Value::as_str)
                && !alt.is_empty()
            {
                topo.stat_names.insert(name.to_owned(), alt.to_owned());
            }
        }
    }
    topo
}

/// What each (admin, subject) should have counted, following every path from the entry
/// port through the meshes' routes. `None` when the entry port is no admin's listener.
pub fn expected(
    topologies: &[Option<Topology>],
    entry_port: u16,
    flows: &[(String, PathCounts)],
) -> Option<BTreeMap<(usize, Subject), Counts>> {
    let found = topologies.iter().any(|t| {
        t.as_ref()
            .is_some_and(|t| t.listener_on(entry_port).is_some())
    });
    if !found {
        return None;
    }
    let mut out = BTreeMap::new();
    for (path, flow) in flows {
        let mut port = entry_port;
        // Bounded: a routing loop in a config must not hang the report.
        for _ in 0..16 {
            let Some((admin, listener)) = topologies
                .iter()
                .enumerate()
                .find_map(|(i, t)| t.as_ref().and_then(|t| t.listener_on(port)).map(|l| (i, l)))
            else {
                break;
            };
            out.entry((admin, Subject::Listener(listener.prefix.clone())))
                .or_insert_with(Counts::default)
                .add_flow(flow);
            let Some(Route {
                action: Action::Cluster(cluster),
                ..
            }) = listener.route(path)
            else {
                break;
            };
            let stat_name = topologies[admin]
                .as_ref()
                .map_or(cluster.as_str(), |t| t.stat_name(cluster));
            out.entry((admin, Subject::Cluster(stat_name.to_owned())))
                .or_insert_with(Counts::default)
                .add_flow(flow);
            // Several endpoints share the load in a way we cannot predict: stop there.
            match topologies[admin]
                .as_ref()
                .and_then(|t| t.clusters.get(cluster))
            {
                Some(ports) if ports.len() == 1 => port = ports[0],
                _ => break,
            }
        }
    }
    Some(out)
}

/// One row of the cross-check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub admin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub envoy: Counts,
    /// What our own counts say it should have seen; null when the topology is unknown.
    pub ours: Option<Counts>,
    #[serde(rename = "match")]
    pub matches: Option<bool>,
}

/// The `traffic.envoy` section.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossCheck {
    pub admin_urls: Vec<String>,
    /// The listener prefix our target port belongs to, when an admin knows it.
    pub entry: Option<String>,
    pub listeners: Vec<Row>,
    pub clusters: Vec<Row>,
    /// Every row matched (null when nothing could be compared).
    #[serde(rename = "match")]
    pub matches: Option<bool>,
    /// How long the counters took to settle after the run.
    pub settle_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl CrossCheck {
    /// Rows that did not match, for the warning line.
    pub fn mismatches(&self) -> Vec<&Row> {
        self.listeners
            .iter()
            .chain(&self.clusters)
            .filter(|r| r.matches == Some(false))
            .collect()
    }
}

/// One admin endpoint as read around the run.
#[derive(Debug, Clone)]
pub struct AdminRead {
    pub url: String,
    pub before: Option<Snapshot>,
    pub after: Option<Snapshot>,
    pub topology: Option<Topology>,
}

/// Build the cross-check from what was read and what we sent.
pub fn compare(
    reads: &[AdminRead],
    entry_port: u16,
    flows: &[(String, PathCounts)],
    settle_ms: u64,
    errors: Vec<String>,
) -> CrossCheck {
    let topologies: Vec<Option<Topology>> = reads.iter().map(|r| r.topology.clone()).collect();
    let expect = expected(&topologies, entry_port, flows);
    let entry = topologies
        .iter()
        .flatten()
        .find_map(|t| t.listener_on(entry_port))
        .map(|l| l.prefix.clone());
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    for (i, read) in reads.iter().enumerate() {
        let (Some(before), Some(after)) = (&read.before, &read.after) else {
            continue;
        };
        let mut subjects: Vec<&Subject> = after.keys().collect();
        if let Some(expect) = &expect {
            subjects.extend(expect.keys().filter(|(a, _)| *a == i).map(|(_, s)| s));
        }
        subjects.sort();
        subjects.dedup();
        for subject in subjects {
            let envoy = Counts::delta(
                after.get(subject).unwrap_or(&Counts::default()),
                before.get(subject).unwrap_or(&Counts::default()),
            );
            let ours = expect
                .as_ref()
                .map(|e| e.get(&(i, subject.clone())).copied().unwrap_or_default());
            if envoy.is_zero() && ours.is_none_or(|o| o.is_zero()) {
                continue;
            }
            let row = Row {
                admin: read.url.clone(),
                prefix: None,
                cluster: None,
                envoy,
                ours,
                matches: ours.map(|o| o == envoy),
            };
            match subject {
                Subject::Listener(p) => listeners.push(Row {
                    prefix: Some(p.clone()),
                    ..row
                }),
                Subject::Cluster(c) => clusters.push(Row {
                    cluster: Some(c.clone()),
                    ..row
                }),
            }
        }
    }
    let compared: Vec<bool> = listeners
        .iter()
        .chain(&clusters)
        .filter_map(|r| r.matches)
        .collect();
    let matches = if compared.is_empty() || !errors.is_empty() {
        None
    } else {
        Some(compared.iter().all(|m| *m))
    };
    CrossCheck {
        admin_urls: reads.iter().map(|r| r.url.clone()).collect(),
        entry,
        listeners,
        clusters,
        matches,
        settle_ms,
        errors,
    }
}

/// A small client for the admin endpoints.
pub struct AdminClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for AdminClient {
    fn default() -> Self {
        Self::new()
    }
}

impl AdminClient {
    pub fn new() -> Self {
        AdminClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| Error::usage(format!("--envoy-admin: `{url}` is not a URL: {e}")))?;
        let fetch = async {
            let resp = self.client.get(uri).await.map_err(|e| format!("{e}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            serde_json::from_slice::<Value>(&body).map_err(|e| format!("not JSON: {e}"))
        };
        match tokio::time::timeout(Duration::from_secs(5), fetch).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::remote(format!("Envoy admin {url}: {e}"))),
            Err(_) => Err(Error::remote(format!("Envoy admin {url}: no answer within 5 s"))),
        }
        .map_err(|e| {
            e.with_hint("check --envoy-admin / AMPKIT_ENVOY_ADMIN_URLS (the admin port, e.g. http://127.0.0.1:9901)")
        })
    }

    /// The request counters of one admin endpoint.
    pub async fn counters(&self, admin: &str) -> Result<Snapshot> {
        let filter: String =
            percent_encoding::utf8_percent_encode(STATS_FILTER, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let url = format!(
            "{}/stats?format=json&filter={filter}",
            admin.trim_end_matches('/')
        );
        Ok(parse_stats(&self.get_json(&url).await?))
    }

    pub async fn topology(&self, admin: &str) -> Result<Topology> {
        let url = format!("{}/config_dump", admin.trim_end_matches('/'));
        Ok(parse_topology(&self.get_json(&url).await?))
    }

    /// Read the counters until two reads in a row agree (the last answers of a run may still
    /// be in flight inside the mesh), at most [`SETTLE_MAX`].
    pub async fn settled(&self, admins: &[String]) -> (Vec<Result<Snapshot>>, Duration) {
        let started = tokio::time::Instant::now();
        let mut last = self.read_all(admins).await;
        loop {
            if started.elapsed() >= SETTLE_MAX {
                break;
            }
            tokio::time::sleep(SETTLE_STEP).await;
            let next = self.read_all(admins).await;
            let same = next.iter().zip(&last).all(|(a, b)| match (a, b) {
                (Ok(a), Ok(b)) => a == b,
                _ => true,
            });
            last = next;
            if same {
                break;
            }
        }
        (last, started.elapsed())
    }

    async fn read_all(&self, admins: &[String]) -> Vec<Result<Snapshot>> {
        let reads = admins.iter().map(|a| self.counters(a));
        futures_util::future::join_all(reads).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counter_names_parse_and_duplicates_are_skipped() {
        let stats = json!({"stats": [
            {"name": "http.ingress_dj.downstream_rq_total", "value": 7},
            {"name": "http.ingress_dj.downstream_rq_2xx", "value": 5},
            {"name": "http.ingress_dj.downstream_rq_5xx", "value": 2},
            {"name": "http.admin.downstream_rq_total", "value": 99},
            {"name": "cluster.egress_jazz.upstream_rq_total", "value": 3},
            {"name": "cluster.egress_jazz.upstream_rq_2xx", "value": 3},
            {"name": "cluster.egress_jazz.external.upstream_rq_2xx", "value": 3},
            {"name": "cluster.outbound|80||a.b.svc.upstream_rq_total", "value": 1},
            {"name": "http.async-client.rq_total", "value": 4},
        ]});
        let snap = parse_stats(&stats);
        let dj = snap[&Subject::Listener("ingress_dj".into())];
        assert_eq!((dj.total, dj.classes[2], dj.classes[5]), (7, 5, 2));
        assert!(!snap.contains_key(&Subject::Listener("admin".into())));
        let jazz = snap[&Subject::Cluster("egress_jazz".into())];
        assert_eq!((jazz.total, jazz.classes[2]), (3, 3));
        assert!(snap.contains_key(&Subject::Cluster("outbound|80||a.b.svc".into())));
        assert_eq!(snap.len(), 3);
    }

    fn mesh() -> Vec<Option<Topology>> {
        let listener = |port, prefix: &str, routes| Listener {
            port,
            prefix: prefix.into(),
            routes,
        };
        let route = |p: &str, action| Route {
            matcher: PathMatch::Prefix(p.into()),
            action,
        };
        let dj = Topology {
            listeners: vec![listener(
                10,
                "ingress_dj",
                vec![
                    route("/jazz", Action::Cluster("egress_jazz".into())),
                    route("/", Action::Local),
                ],
            )],
            clusters: [("egress_jazz".to_owned(), vec![12])].into(),
            ..Default::default()
        };
        let jazz = Topology {
            listeners: vec![listener(
                12,
                "ingress_jazz",
                vec![route("/", Action::Local)],
            )],
            ..Default::default()
        };
        vec![Some(dj), Some(jazz)]
    }

    #[test]
    fn a_path_separated_prefix_matches_the_path_and_what_follows_a_slash() {
        let listener = Listener {
            port: 1,
            prefix: "http-10080".into(),
            routes: parse_routes(&json!({"virtual_hosts": [{"routes": [
                {"match": {"path_separated_prefix": "/jazz"}, "route": {"cluster": "jazz"}},
                {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]})),
        };
        let to = |path: &str| listener.route(path).map(|r| r.action.clone());
        let jazz = Some(Action::Cluster("jazz".into()));
        assert_eq!(to("/jazz"), jazz);
        assert_eq!(to("/jazz/x?y=1"), jazz);
        assert_eq!(to("/jazz?y=1"), jazz);
        assert_eq!(to("/jazzy"), Some(Action::Local));
    }

    /// Istio's names: stat prefixes and cluster stat names end with `;` (its
    /// DelimitedStatsPrefix), and a cluster's stats go by its alt_stat_name.
    #[test]
    fn istios_delimited_stat_names_are_followed_and_counted() {
        let stats = json!({"stats": [
            {"name": "http.inbound_0.0.0.0_8080;.downstream_rq_total", "value": 5},
            {"name": "cluster.outbound|80||jazz.prod.svc.cluster.local;.upstream_rq_total", "value": 5},
            {"name": "http.inbound_0.0.0.0_8080.sub.downstream_rq_total", "value": 9},
        ]});
        let snap = parse_stats(&stats);
        assert_eq!(
            snap[&Subject::Listener("inbound_0.0.0.0_8080;".into())].total,
            5
        );
        assert_eq!(snap.len(), 2, "{snap:?}");
        let dump = json!({"configs": [{
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "static_clusters": [{"cluster": {
                "name": "outbound|80||jazz.prod.svc.cluster.local",
                "alt_stat_name": "outbound|80||jazz.prod.svc.cluster.local;",
                "load_assignment": {"endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": 12}}}}]}]}}}]
        }, {
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "static_listeners": [{"listener": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10}},
                "filter_chains": [{"filters": [{"typed_config": {
                    "stat_prefix": "inbound_0.0.0.0_8080;",
                    "route_config": {"virtual_hosts": [{"routes": [{
                        "match": {"prefix": "/"},
                        "route": {"cluster": "outbound|80||jazz.prod.svc.cluster.local"}}]}]}}}]}]}}]
        }]});
        let topo = parse_topology(&dump);
        let e = expected(&[Some(topo)], 10, &[("/".to_owned(), flow(5, 2))]).unwrap();
        let jazz = Subject::Cluster("outbound|80||jazz.prod.svc.cluster.local;".into());
        assert_eq!(e[&(0, jazz.clone())].total, 5, "{e:?}");
        assert_eq!(e[&(0, jazz.clone())].total, snap[&jazz].total);
    }

    fn flow(completed: u64, class: usize) -> PathCounts {
        let mut p = PathCounts {
            sent: completed,
            completed,
            ..Default::default()
        };
        p.classes[class] = completed;
        p
    }

    #[test]
    fn paths_are_followed_through_routes_clusters_and_the_next_envoy() {
        let flows = vec![
            ("/jazz/x".to_owned(), flow(4, 2)),
            ("/".to_owned(), flow(3, 5)),
        ];
        let e = expected(&mesh(), 10, &flows).unwrap();
        assert_eq!(e[&(0, Subject::Listener("ingress_dj".into()))].total, 7);
        assert_eq!(
            e[&(0, Subject::Listener("ingress_dj".into()))].classes[5],
            3
        );
        assert_eq!(e[&(0, Subject::Cluster("egress_jazz".into()))].total, 4);
        assert_eq!(
            e[&(1, Subject::Listener("ingress_jazz".into()))].classes[2],
            4
        );
        assert_eq!(e.len(), 3);
        assert!(expected(&mesh(), 99, &flows).is_none());
    }

    #[test]
    fn compare_flags_traffic_we_did_not_send() {
        let flows = vec![("/jazz".to_owned(), flow(2, 2))];
        let mut after = Snapshot::new();
        after.insert(
            Subject::Listener("ingress_dj".into()),
            Counts {
                total: 3,
                classes: [0, 0, 3, 0, 0, 0],
            },
        );
        after.insert(
            Subject::Cluster("egress_jazz".into()),
            Counts {
                total: 2,
                classes: [0, 0, 2, 0, 0, 0],
            },
        );
        let reads = vec![AdminRead {
            url: "http://dj".into(),
            before: Some(Snapshot::new()),
            after: Some(after),
            topology: mesh()[0].clone(),
        }];
        let check = compare(&reads, 10, &flows, 0, vec![]);
        assert_eq!(check.entry.as_deref(), Some("ingress_dj"));
        assert_eq!(check.matches, Some(false));
        assert_eq!(check.listeners[0].matches, Some(false));
        assert_eq!(check.clusters[0].matches, Some(true));
        let json = serde_json::to_value(&check.clusters[0]).unwrap();
        assert_eq!(json["envoy"], json!({"total": 2, "2xx": 2}));
    }

    #[test]
    fn topology_parses_a_config_dump() {
        let dump = json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "static_clusters": [
                {"cluster": {"name": "egress_jazz", "load_assignment": {"endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 19112}}}}]}]}}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "static_listeners": [
                {"listener": {"name": "ingress_dj", "address": {"socket_address": {"port_value": 19110}},
                 "filter_chains": [{"filters": [{"typed_config": {"stat_prefix": "ingress_dj", "route_config": {
                    "virtual_hosts": [{"routes": [
                        {"match": {"prefix": "/jazz"}, "route": {"cluster": "egress_jazz"}},
                        {"match": {"path": "/unavailable"}, "direct_response": {"status": 503}}]}]}}}]}]}}]}
        ]});
        let t = parse_topology(&dump);
        assert_eq!(t.clusters["egress_jazz"], vec![19112]);
        assert_eq!(t.listeners.len(), 1);
        assert_eq!(t.listeners[0].port, 19110);
        assert_eq!(
            t.listeners[0].route("/jazz").unwrap().action,
            Action::Cluster("egress_jazz".into())
        );
        assert_eq!(
            t.listeners[0].route("/unavailable").unwrap().action,
            Action::Local
        );
        assert!(t.listeners[0].route("/other").is_none());
    }
}
