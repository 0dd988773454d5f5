//! Istio's merged metrics endpoint for the local mesh's Envoys (`--istio-proxy`).
//!
//! An Istio sidecar's telemetry comes from Istio's own proxy build (istio-proxy), whose stats
//! filter counts every request with Istio's labels; pilot-agent serves it, merged with a few
//! of Envoy's own families, on port 15020 at `/stats/prometheus`. Upstream Envoy has no such
//! filter, and istio-proxy cannot run here, so the local stack runs its real Envoys in the
//! shape an Istio sidecar has (an inbound listener whose HCM stat prefix is
//! `inbound_0.0.0.0_<port>;`, the `inbound|<port>||` cluster to the application, the
//! `outbound|<port>||<host>` clusters, the `;`-delimited stat names and Istio's bootstrap
//! stats tags, see scripts/local-stack), and this endpoint stands in for pilot-agent's: at
//! each scrape it reads the Envoy's admin `/stats/prometheus` and answers with
//!
//! - Istio's standard metrics (istio.io/latest/docs/reference/config/metrics/), computed from
//!   the Envoy's per-cluster statistics of that same scrape: `istio_requests_total` from
//!   `upstream_rq_<code>`, `istio_request_duration_milliseconds` from `upstream_rq_time`
//!   (Envoy's histogram is in milliseconds with the buckets Istio's has by default),
//!   `istio_request_bytes` / `istio_response_bytes` from the request and response body sizes
//!   (Istio's are body sizes too). The `inbound|...` cluster gives what the sidecar reports as
//!   destination (`reporter="destination"`), each `outbound|...` cluster what it reports as
//!   source; the labels are Istio's (workload, canonical service, principal, service FQDN,
//!   response code and flags, protocol, connection security policy);
//! - the Envoy families Istio keeps by default (its bootstrap's stats_matcher inclusion list:
//!   `server`, `cluster_manager`, `listener_manager`, `cluster.xds-grpc`), as they are.
//!
//! The liberties, all of them here: the numbers are Envoy's counts at the scrape rather than
//! a filter's; the histograms carry no `response_code`/`response_flags` (Envoy's cluster
//! histograms are not split by code); and who called a sidecar, which Istio learns from the
//! caller's peer metadata over mTLS, is given (`caller=`): without it the caller is outside
//! the mesh, reported as Istio reports one (`unknown`, connection security policy `none`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How `--istio-proxy` is written, for its help and its errors.
pub const PROXY_SYNTAX: &str =
    "ADDR:PORT,admin=HOST:PORT,workload=NAME[,namespace=NS][,caller=WORKLOAD]";

/// One sidecar whose merged metrics endpoint amp-local serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Where the endpoint listens (Istio's port 15020 of the pod).
    pub listen: SocketAddr,
    /// The Envoy's admin address, `HOST:PORT`.
    pub admin: String,
    /// The workload the sidecar runs beside (its Deployment's name, its `app` label).
    pub workload: String,
    pub namespace: String,
    /// The workload, in the same namespace, that sends this one its requests; none when they
    /// come from outside the mesh.
    pub caller: Option<String>,
}

/// Parse `--istio-proxy`: `ADDR:PORT,admin=HOST:PORT,workload=NAME[,namespace=NS][,caller=W]`.
pub fn parse_proxy(spec: &str) -> Result<Proxy, String> {
    let bad = |why: String| {
        format!(
            "{why}; write it as {PROXY_SYNTAX}, e.g. 127.0.0.1:15020,admin=127.0.0.1:15000,workload=jazz,namespace=prod,caller=dj"
        )
    };
    let mut parts = spec.split(',').map(str::trim);
    let first = parts.next().unwrap_or_default();
    let listen: SocketAddr = first
        .parse()
        .map_err(|_| bad(format!("`{first}` is not an ADDR:PORT to listen on")))?;
    if !listen.ip().is_loopback() {
        return Err(bad(format!(
            "{listen} is not a loopback address; amp-local serves this machine only"
        )));
    }
    let (mut admin, mut workload, mut namespace, mut caller) = (None, None, None, None);
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("`{part}` is not KEY=VALUE")))?;
        if value.is_empty() {
            return Err(bad(format!("`{key}=` has no value")));
        }
        let slot = match key {
            "admin" => &mut admin,
            "workload" => &mut workload,
            "namespace" => &mut namespace,
            "caller" => &mut caller,
            other => {
                return Err(bad(format!(
                    "`{other}` is not one of admin, workload, namespace, caller"
                )));
            }
        };
        *slot = Some(value.to_owned());
    }
    let admin = admin.ok_or_else(|| bad("admin=HOST:PORT is missing".to_owned()))?;
    if !admin.contains(':') || admin.contains('/') {
        return Err(bad(format!("admin=`{admin}` is not HOST:PORT")));
    }
    Ok(Proxy {
        listen,
        admin,
        workload: workload.ok_or_else(|| bad("workload=NAME is missing".to_owned()))?,
        namespace: namespace.unwrap_or_else(|| "default".to_owned()),
        caller,
    })
}

/// Bind every proxy's address now (so that a port in use fails amp-local's start, not a
/// scrape later), then serve each in the background for as long as the process runs.
pub async fn start(proxies: &[Proxy], http: reqwest::Client) -> ampkit::error::Result<()> {
    for proxy in proxies {
        let listener = tokio::net::TcpListener::bind(proxy.listen)
            .await
            .map_err(|e| {
                ampkit::error::Error::usage(format!(
                    "--istio-proxy: cannot listen on {}: {e}",
                    proxy.listen
                ))
                .with_hint("give each --istio-proxy a free 127.0.0.1 port")
            })?;
        let shared = Arc::new((proxy.clone(), http.clone()));
        let router = axum::Router::new()
            .route("/stats/prometheus", axum::routing::get(merged))
            .with_state(shared);
        tracing::info!(
            "istio-proxy {} ({}) on {}",
            proxy.workload,
            proxy.admin,
            proxy.listen
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!("istio-proxy endpoint stopped: {e}");
            }
        });
    }
    Ok(())
}

/// Envoy's answer takes a few milliseconds; a scrape's own timeout is 10 s by default.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

async fn merged(
    axum::extract::State(shared): axum::extract::State<Arc<(Proxy, reqwest::Client)>>,
) -> Response {
    let (proxy, http) = &*shared;
    let url = format!("http://{}/stats/prometheus", proxy.admin);
    let text = match http.get(&url).timeout(ADMIN_TIMEOUT).send().await {
        Ok(r) if r.status().is_success() => r.text().await,
        Ok(r) => {
            return unavailable(format!("Envoy's admin {url} answered {}", r.status()));
        }
        Err(e) => Err(e),
    };
    match text {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            Body::from(translate(&text, proxy)),
        )
            .into_response(),
        Err(e) => unavailable(format!("Envoy's admin {url} did not answer: {e}")),
    }
}

fn unavailable(why: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

/// One sample line of the text exposition format.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: &'a str,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `name{k="v",...} value` or `name value` (Envoy writes no timestamps). Label values are
/// unescaped (`\\`, `\"`, `\n`).
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find("=\"")?;
            let key = &rest[..eq];
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break eq + 2 + i + 1,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key, value));
            rest = &rest[end..];
        }
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Envoy's per-cluster families and the Istio family each becomes.
const ISTIO_FAMILIES: &[(&str, &str, &str)] = &[
    (
        "envoy_cluster_upstream_rq",
        "istio_requests_total",
        "counter",
    ),
    (
        "envoy_cluster_upstream_rq_time",
        "istio_request_duration_milliseconds",
        "histogram",
    ),
    (
        "envoy_cluster_upstream_rq_body_size",
        "istio_request_bytes",
        "histogram",
    ),
    (
        "envoy_cluster_upstream_rs_body_size",
        "istio_response_bytes",
        "histogram",
    ),
];

/// The Envoy families Istio's bootstrap keeps (stats_matcher inclusion prefixes `server`,
/// `cluster_manager`, `listener_manager`), by their exposition names.
const KEPT_ENVOY_PREFIXES: &[&str] = &[
    "envoy_server_",
    "envoy_cluster_manager_",
    "envoy_listener_manager_",
];

/// A workload's identity as Istio's labels name it.
struct Peer<'a> {
    workload: &'a str,
    namespace: &'a str,
}

/// The labels Istio gives one request, but the response code (which only the request
/// counter carries here).
fn istio_labels(reporter: &str, source: Option<&Peer>, destination: &Peer) -> String {
    let unknown = "unknown";
    let (sw, sns) = source.map_or((unknown, unknown), |p| (p.workload, p.namespace));
    let source_principal = source.map_or_else(
        || unknown.to_owned(),
        |p| {
            format!(
                "spiffe://cluster.local/ns/{}/sa/{}",
                p.namespace, p.workload
            )
        },
    );
    let (dw, dns) = (destination.workload, destination.namespace);
    // Istio: mutual_tls when the destination reports a request that came over Istio's mTLS,
    // none when it came from outside the mesh; unknown when the source reports.
    let security = match (reporter, source) {
        ("destination", Some(_)) => "mutual_tls",
        ("destination", None) => "none",
        _ => unknown,
    };
    let pairs: [(&str, &str); 22] = [
        ("reporter", reporter),
        ("source_workload", sw),
        ("source_workload_namespace", sns),
        ("source_principal", &source_principal),
        ("source_app", sw),
        ("source_version", unknown),
        ("source_canonical_service", sw),
        (
            "source_canonical_revision",
            if source.is_some() { "latest" } else { unknown },
        ),
        (
            "source_cluster",
            if source.is_some() {
                "Kubernetes"
            } else {
                unknown
            },
        ),
        ("destination_workload", dw),
        ("destination_workload_namespace", dns),
        (
            "destination_principal",
            &format!("spiffe://cluster.local/ns/{dns}/sa/{dw}"),
        ),
        ("destination_app", dw),
        ("destination_version", unknown),
        (
            "destination_service",
            &format!("{dw}.{dns}.svc.cluster.local"),
        ),
        ("destination_service_name", dw),
        ("destination_service_namespace", dns),
        ("destination_canonical_service", dw),
        ("destination_canonical_revision", "latest"),
        ("destination_cluster", "Kubernetes"),
        ("request_protocol", "http"),
        ("connection_security_policy", security),
    ];
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(&escape(v));
        out.push('"');
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// What the sidecar reports for one of its clusters: `inbound|PORT||` as the destination of
/// its callers' requests, `outbound|PORT||HOST` (HOST `<svc>.<ns>.svc.cluster.local`) as
/// their source; other clusters (xds-grpc, the passthrough and black hole) report nothing.
fn cluster_labels(cluster: &str, proxy: &Proxy) -> Option<String> {
    let mut parts = cluster.split('|');
    let (direction, _port, _subset, host) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let me = Peer {
        workload: &proxy.workload,
        namespace: &proxy.namespace,
    };
    match direction {
        "inbound" => {
            let caller = proxy.caller.as_deref().map(|w| Peer {
                workload: w,
                namespace: &proxy.namespace,
            });
            Some(istio_labels("destination", caller.as_ref(), &me))
        }
        "outbound" => {
            let mut labels = host.split('.');
            let (workload, namespace) = (labels.next()?, labels.next()?);
            if workload.is_empty() || namespace.is_empty() {
                return None;
            }
            let to = Peer {
                workload,
                namespace,
            };
            Some(istio_labels("source", Some(&me), &to))
        }
        _ => None,
    }
}

/// The merged answer: Istio's families computed from Envoy's exposition `text`, then the
/// Envoy families Istio keeps.
pub fn translate(text: &str, proxy: &Proxy) -> String {
    // family -> its sample lines, in Envoy's order.
    let mut istio: Vec<(&str, &str, Vec<String>)> = ISTIO_FAMILIES
        .iter()
        .map(|(_, to, kind)| (*to, *kind, Vec::new()))
        .collect();
    let mut kept = String::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            // `# TYPE name kind` / `# HELP name ...`: kept with their family.
            let family = meta.split_whitespace().nth(1).unwrap_or_default();
            if is_kept(family, None) {
                kept.push_str(line);
                kept.push('\n');
            }
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        if is_kept(sample.name, sample.label("cluster_name")) {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        let Some(cluster) = sample.label("cluster_name") else {
            continue;
        };
        for (i, (from, _, kind)) in ISTIO_FAMILIES.iter().enumerate() {
            let suffix = if *kind == "histogram" {
                let Some(rest) = sample.name.strip_prefix(from) else {
                    continue;
                };
                match rest {
                    "_bucket" | "_sum" | "_count" => rest,
                    _ => continue,
                }
            } else if sample.name == *from {
                ""
            } else {
                continue;
            };
            let Some(mut labels) = cluster_labels(cluster, proxy) else {
                break;
            };
            if suffix.is_empty() {
                // The request counter is Envoy's per-code one (`upstream_rq_<code>`).
                let Some(code) = sample.label("response_code") else {
                    break;
                };
                labels.push_str(&format!(
                    ",response_code=\"{}\",response_flags=\"-\"",
                    escape(code)
                ));
            }
            if let Some(le) = sample.label("le") {
                labels.push_str(&format!(",le=\"{}\"", escape(le)));
            }
            let family = &mut istio[i];
            family
                .2
                .push(format!("{}{suffix}{{{labels}}} {}", family.0, sample.value));
            break;
        }
    }
    let mut out = String::new();
    for (name, kind, lines) in istio {
        if lines.is_empty() {
            continue;
        }
        out.push_str(&format!("# TYPE {name} {kind}\n"));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out.push_str(&kept);
    out
}

/// Whether Istio keeps an Envoy family: by name, or the xds-grpc cluster's.
fn is_kept(family: &str, cluster: Option<&str>) -> bool {
    KEPT_ENVOY_PREFIXES.iter().any(|p| family.starts_with(p))
        || (family.starts_with("envoy_cluster_") && cluster == Some("xds-grpc"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn jazz() -> Proxy {
        parse_proxy("127.0.0.1:15020,admin=127.0.0.1:15000,workload=jazz,namespace=prod,caller=dj")
            .unwrap()
    }

    #[test]
    fn the_flag_parses_and_bad_ones_say_what_is_wrong() {
        let p = jazz();
        assert_eq!(p.admin, "127.0.0.1:15000");
        assert_eq!(p.caller.as_deref(), Some("dj"));
        let dj = parse_proxy("127.0.0.1:15021,admin=127.0.0.1:15001,workload=dj").unwrap();
        assert_eq!((dj.namespace.as_str(), dj.caller), ("default", None));
        for (spec, words) in [
            ("0.0.0.0:15020,admin=a:1,workload=x", "not a loopback"),
            ("127.0.0.1:15020,workload=x", "admin=HOST:PORT is missing"),
            ("127.0.0.1:15020,admin=a:1", "workload=NAME is missing"),
            (
                "127.0.0.1:15020,admin=a:1,workload=x,color=red",
                "`color` is not one of",
            ),
            ("nope,admin=a:1,workload=x", "not an ADDR:PORT"),
        ] {
            let err = parse_proxy(spec).unwrap_err();
            assert!(err.contains(words), "{spec}: {err}");
            assert!(err.contains("write it as"), "{err}");
        }
    }

    #[test]
    fn samples_parse_with_escaped_label_values() {
        let s = parse_sample(r#"envoy_x{a="b\"c",d="e\\f\ng"} 12"#).unwrap();
        assert_eq!(s.name, "envoy_x");
        assert_eq!(
            s.labels,
            vec![("a", "b\"c".to_owned()), ("d", "e\\f\ng".to_owned())]
        );
        assert_eq!(s.value, "12");
        let s = parse_sample("envoy_server_live 1").unwrap();
        assert_eq!(
            (s.name, s.labels.len(), s.value),
            ("envoy_server_live", 0, "1")
        );
        assert!(parse_sample("garbage").is_none());
    }

    /// Envoy's exposition as the istio-shaped local Envoys write it (Istio's stats tags:
    /// `cluster_name`, `response_code`), for jazz's sidecar.
    const ENVOY: &str = r#"# TYPE envoy_cluster_upstream_rq counter
envoy_cluster_upstream_rq{response_code="200",cluster_name="inbound|8080||"} 40
envoy_cluster_upstream_rq{response_code="503",cluster_name="inbound|8080||"} 2
envoy_cluster_upstream_rq{response_code="200",cluster_name="outbound|80||metal.prod.svc.cluster.local"} 7
envoy_cluster_upstream_rq{response_code="200",cluster_name="xds-grpc"} 3
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{cluster_name="inbound|8080||"} 42
# TYPE envoy_server_live gauge
envoy_server_live{} 1
# TYPE envoy_http_downstream_rq_total counter
envoy_http_downstream_rq_total{http_conn_manager_prefix="inbound_0.0.0.0_8080"} 42
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{cluster_name="inbound|8080||",le="0.5"} 10
envoy_cluster_upstream_rq_time_bucket{cluster_name="inbound|8080||",le="+Inf"} 42
envoy_cluster_upstream_rq_time_sum{cluster_name="inbound|8080||"} 63.5
envoy_cluster_upstream_rq_time_count{cluster_name="inbound|8080||"} 42
"#;

    #[test]
    fn requests_become_istio_requests_total_with_the_reporter_each_cluster_gives() {
        let out = translate(ENVOY, &jazz());
        let requests: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .collect();
        assert_eq!(requests.len(), 3, "{out}");
        let by_code = |reporter: &str, code: &str| {
            requests
                .iter()
                .find(|l| {
                    l.contains(&format!("reporter=\"{reporter}\""))
                        && l.contains(&format!("response_code=\"{code}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        };
        assert_eq!(by_code("destination", "200").as_deref(), Some("40"));
        assert_eq!(by_code("destination", "503").as_deref(), Some("2"));
        assert_eq!(by_code("source", "200").as_deref(), Some("7"));
        let inbound = requests[0];
        for label in [
            r#"destination_service="jazz.prod.svc.cluster.local""#,
            r#"destination_service_name="jazz""#,
            r#"source_workload="dj""#,
            r#"connection_security_policy="mutual_tls""#,
        ] {
            assert!(inbound.contains(label), "{label} in {inbound}");
        }
        let outbound = requests[2];
        assert!(outbound.contains(r#"destination_service="metal.prod.svc.cluster.local""#));
        assert!(outbound.contains(r#"source_workload="jazz""#));
        assert!(outbound.contains(r#"connection_security_policy="unknown""#));
        assert_eq!(
            out.matches("# TYPE istio_requests_total counter").count(),
            1
        );
    }

    #[test]
    fn request_time_becomes_istios_duration_histogram_without_a_response_code() {
        let out = translate(ENVOY, &jazz());
        let bucket = out
            .lines()
            .find(|l| {
                l.starts_with("istio_request_duration_milliseconds_bucket{")
                    && l.contains("le=\"+Inf\"")
            })
            .unwrap();
        assert!(bucket.ends_with(" 42"), "{bucket}");
        assert!(!bucket.contains("response_code"), "{bucket}");
        assert!(out.contains("# TYPE istio_request_duration_milliseconds histogram"));
        assert!(out.lines().any(
            |l| l.starts_with("istio_request_duration_milliseconds_sum{") && l.ends_with(" 63.5")
        ));
    }

    #[test]
    fn only_the_envoy_families_istio_keeps_pass_through() {
        let out = translate(ENVOY, &jazz());
        assert!(
            out.contains("# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n"),
            "{out}"
        );
        assert!(out.contains(r#"cluster_name="xds-grpc"} 3"#), "{out}");
        assert!(!out.contains("envoy_http_downstream_rq_total"), "{out}");
        assert!(!out.contains("envoy_cluster_upstream_rq_total"), "{out}");
    }

    #[test]
    fn a_sidecar_without_a_caller_reports_requests_from_outside_the_mesh() {
        let mut dj = jazz();
        dj.caller = None;
        let out = translate(ENVOY, &dj);
        let line = out
            .lines()
            .find(|l| l.starts_with("istio_requests_total{reporter=\"destination\""))
            .unwrap();
        assert!(line.contains(r#"source_workload="unknown""#), "{line}");
        assert!(
            line.contains(r#"connection_security_policy="none""#),
            "{line}"
        );
    }
}
