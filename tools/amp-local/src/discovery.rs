//! What a scraper's agent runs: the scraper's own configuration blob, with Kubernetes service
//! discovery answered by the local mesh.
//!
//! An AMP managed collector discovers its targets in the EKS cluster named as its source. There
//! is no cluster here, so amp-local takes exactly one liberty with the blob: every
//! `kubernetes_sd_configs` of a job is replaced by `static_configs` describing the local pods
//! (the `--scraper-pod` flags) with the `__meta_kubernetes_*` labels that Prometheus's
//! Kubernetes discovery (role `pod`) gives a pod's container port. The job's own
//! `relabel_configs` then run unchanged on those labels, so a blob that keeps only `envoy`
//! containers, takes the port from the `prometheus.io/port` annotation and maps pod labels to
//! `service` and `namespace` is exercised here exactly as it is in a cluster.
//!
//! What is not emulated: roles other than `pod` discover nothing (the local mesh has no nodes,
//! services, endpoints or ingresses to list), `selectors` are not applied, and
//! `namespaces.names` is the only filter honoured. Everything else in the blob is left as
//! written; the agent gets a `remote_write` to the scraper's destination workspace added,
//! which the blob itself may not have (a managed collector writes where it was created to).

use std::collections::BTreeMap;

use serde_norway::{Mapping, Value};

/// The top-level sections a managed collector's configuration may have.
const SECTIONS: &[&str] = &["global", "scrape_configs"];

/// The roles Prometheus's Kubernetes discovery knows.
const ROLES: &[&str] = &[
    "pod",
    "node",
    "service",
    "endpoints",
    "endpointslice",
    "ingress",
];

fn key(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// A local pod, as a scraper's Kubernetes discovery finds it (`--scraper-pod`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// `HOST:PORT` of the container port that is scraped.
    pub address: String,
    pub host: String,
    pub port: u16,
    pub namespace: String,
    pub name: String,
    pub container: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// How `--scraper-pod` is written, for its help and its errors.
pub const POD_SYNTAX: &str =
    "HOST:PORT,name=POD,container=NAME[,namespace=NS][,LABEL=VALUE...][,annotation:KEY=VALUE...]";

/// Parse `--scraper-pod`: `HOST:PORT,name=POD,container=NAME[,namespace=NS]` followed by pod
/// labels (`app=dj`, or `label:KEY=VALUE` for a label named like one of the fields) and
/// annotations (`annotation:KEY=VALUE`). The namespace defaults to `default`, as in
/// Kubernetes; the `prometheus.io/port` annotation defaults to PORT, which is how the pod
/// tells a scraper which of its ports to use.
pub fn parse_pod(spec: &str) -> Result<Pod, String> {
    let bad = |why: String| {
        format!(
            "{why}; write it as {POD_SYNTAX}, e.g. 127.0.0.1:9901,namespace=prod,name=dj-0,container=envoy,app=dj"
        )
    };
    let mut parts = spec.split(',').map(str::trim);
    let address = parts.next().unwrap_or_default();
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| bad(format!("the address `{address}` has no `:PORT`")))?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad(format!("`{host}` is not a host name or address")));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad(format!("`{port}` is not a port number (1-65535)")))?;
    let (mut namespace, mut name, mut container) = (None, None, None);
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("`{part}` is not KEY=VALUE")))?;
        let (k, v) = (k.trim(), v.trim());
        match k {
            "namespace" => namespace = Some(dns_name("the namespace", v, false).map_err(bad)?),
            "name" => name = Some(dns_name("the pod name", v, true).map_err(bad)?),
            "container" => container = Some(dns_name("the container name", v, false).map_err(bad)?),
            _ => {
                if let Some(k) = k.strip_prefix("annotation:") {
                    check_key(k).map_err(bad)?;
                    annotations.insert(k.to_owned(), v.to_owned());
                } else {
                    let k = k.strip_prefix("label:").unwrap_or(k);
                    check_key(k).map_err(bad)?;
                    check_label_value(k, v).map_err(bad)?;
                    labels.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    annotations
        .entry("prometheus.io/port".to_owned())
        .or_insert_with(|| port.to_string());
    Ok(Pod {
        address: address.to_owned(),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        namespace: namespace.unwrap_or_else(|| "default".to_owned()),
        name: name.ok_or_else(|| bad("`name=POD` is missing".to_owned()))?,
        container: container.ok_or_else(|| bad("`container=NAME` is missing".to_owned()))?,
        labels,
        annotations,
    })
}

/// A Kubernetes object name: lowercase letters, digits and `-` (and `.` in a pod name),
/// starting and ending with a letter or digit.
fn dns_name(what: &str, s: &str, dots: bool) -> Result<String, String> {
    let max = if dots { 253 } else { 63 };
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
        })
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{what} `{s}` is not a Kubernetes name (lowercase letters, digits and `-`, at most {max})"
        ))
    }
}

/// A label or annotation key: `[PREFIX/]NAME`, NAME being 1-63 letters, digits, `-`, `_`, `.`.
fn check_key(k: &str) -> Result<(), String> {
    let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("`{k}` is not a Kubernetes label or annotation key"))
    }
}

fn check_label_value(k: &str, v: &str) -> Result<(), String> {
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the value `{v}` of label `{k}` is not a Kubernetes label value"
        ))
    }
}

/// A label name as Prometheus's Kubernetes discovery makes it from a key: every character
/// that may not appear in a label name becomes `_` (`prometheus.io/port` ->
/// `prometheus_io_port`).
fn sanitize(k: &str) -> String {
    k.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl Pod {
    /// The labels Kubernetes discovery (role `pod`) gives this pod's container port.
    pub fn meta_labels(&self) -> BTreeMap<String, String> {
        let p = "__meta_kubernetes_";
        let mut out = BTreeMap::new();
        let mut put = |k: String, v: &str| {
            out.insert(k, v.to_owned());
        };
        put(format!("{p}namespace"), &self.namespace);
        put(format!("{p}pod_name"), &self.name);
        put(format!("{p}pod_ip"), &self.host);
        put(format!("{p}pod_ready"), "true");
        put(format!("{p}pod_phase"), "Running");
        put(format!("{p}pod_container_name"), &self.container);
        put(format!("{p}pod_container_init"), "false");
        put(
            format!("{p}pod_container_port_number"),
            &self.port.to_string(),
        );
        put(format!("{p}pod_container_port_protocol"), "TCP");
        for (k, v) in &self.labels {
            put(format!("{p}pod_label_{}", sanitize(k)), v);
            put(format!("{p}pod_labelpresent_{}", sanitize(k)), "true");
        }
        for (k, v) in &self.annotations {
            put(format!("{p}pod_annotation_{}", sanitize(k)), v);
            put(format!("{p}pod_annotationpresent_{}", sanitize(k)), "true");
        }
        out
    }
}

/// Where and how an agent writes: amp-local's own remote-write path of the destination
/// workspace, signed with a key amp-local accepts.
#[derive(Clone)]
pub struct RemoteWrite {
    pub url: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

/// The secret stays out of logs and debug output.
impl std::fmt::Debug for RemoteWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWrite")
            .field("url", &self.url)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Check a scraper's configuration as AMP does before it accepts one: YAML, a mapping with
/// only `global` and `scrape_configs`, at least one job, each with its own `job_name`, and
/// Kubernetes discovery with a role. Prometheus itself has the last word (the agent, or
/// `promtool` beforehand); this catches what needs no Prometheus. Returns the parsed
/// document.
pub fn check_configuration(yaml: &str) -> Result<Value, String> {
    let doc: Value = serde_norway::from_str(yaml).map_err(|e| format!("it is not YAML: {e}"))?;
    let Value::Mapping(top) = &doc else {
        return Err("it is not a Prometheus configuration (a YAML mapping)".to_owned());
    };
    for k in top.keys() {
        let name = k.as_str().unwrap_or_default();
        if !SECTIONS.contains(&name) {
            return Err(format!(
                "`{}` is not supported in a scraper configuration (only global and \
                 scrape_configs are; the scraper writes to its destination workspace itself)",
                serde_norway::to_string(k).unwrap_or_default().trim()
            ));
        }
    }
    if let Some(global) = top.get(key("global"))
        && !global.is_mapping()
        && !global.is_null()
    {
        return Err("`global` must be a mapping".to_owned());
    }
    let jobs = top
        .get(key("scrape_configs"))
        .and_then(Value::as_sequence)
        .filter(|jobs| !jobs.is_empty())
        .ok_or("it has no scrape_configs: a scraper needs at least one scrape job")?;
    let mut names = Vec::new();
    for (n, job) in jobs.iter().enumerate() {
        let job = job
            .as_mapping()
            .ok_or_else(|| format!("scrape_configs[{n}] is not a mapping"))?;
        let name = job
            .get(key("job_name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("scrape_configs[{n}] has no job_name"))?;
        if names.contains(&name) {
            return Err(format!("job_name `{name}` is used twice"));
        }
        names.push(name);
        for sd in kubernetes_sd_configs(job, name)? {
            sd_role(sd, name)?;
        }
    }
    Ok(doc)
}

fn kubernetes_sd_configs<'a>(job: &'a Mapping, name: &str) -> Result<Vec<&'a Mapping>, String> {
    match job.get(key("kubernetes_sd_configs")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(list)) => list
            .iter()
            .map(|sd| {
                sd.as_mapping().ok_or_else(|| {
                    format!("job `{name}`: every kubernetes_sd_configs entry must be a mapping")
                })
            })
            .collect(),
        Some(_) => Err(format!(
            "job `{name}`: kubernetes_sd_configs must be a list"
        )),
    }
}

fn sd_role<'a>(sd: &'a Mapping, job: &str) -> Result<&'a str, String> {
    let role = sd
        .get(key("role"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("job `{job}`: a kubernetes_sd_configs entry has no role"))?;
    if ROLES.contains(&role) {
        Ok(role)
    } else {
        Err(format!(
            "job `{job}`: `{role}` is not a Kubernetes discovery role (one of {})",
            ROLES.join(", ")
        ))
    }
}

/// The namespaces a discovery entry is limited to (`namespaces.names`); empty means all.
fn sd_namespaces(sd: &Mapping) -> Vec<String> {
    sd.get(key("namespaces"))
        .and_then(Value::as_mapping)
        .and_then(|ns| ns.get(key("names")))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// The one liberty: each job's `kubernetes_sd_configs` becomes `static_configs` listing the
/// pods it would discover, one target group per pod carrying that pod's discovery labels.
/// Static targets a job already had are kept, after which the discovered ones follow.
pub fn rewrite_discovery(doc: &mut Value, pods: &[Pod]) -> Result<(), String> {
    let jobs = doc
        .as_mapping_mut()
        .and_then(|top| top.get_mut(key("scrape_configs")))
        .and_then(Value::as_sequence_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_mapping_mut);
    for job in jobs {
        let name = job
            .get(key("job_name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(sds) = job.remove(key("kubernetes_sd_configs")) else {
            continue;
        };
        let mut groups = Vec::new();
        let sds = match &sds {
            Value::Sequence(list) => list.iter().filter_map(Value::as_mapping).collect(),
            _ => Vec::new(),
        };
        for sd in sds {
            if sd_role(sd, &name)? != "pod" {
                continue;
            }
            let namespaces = sd_namespaces(sd);
            for pod in pods
                .iter()
                .filter(|p| namespaces.is_empty() || namespaces.contains(&p.namespace))
            {
                let mut labels = Mapping::new();
                for (k, v) in pod.meta_labels() {
                    labels.insert(Value::String(k), Value::String(v));
                }
                let mut group = Mapping::new();
                group.insert(key("targets"), Value::Sequence(vec![key(&pod.address)]));
                group.insert(key("labels"), Value::Mapping(labels));
                groups.push(Value::Mapping(group));
            }
        }
        let statics = job
            .entry(key("static_configs"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        match statics {
            Value::Sequence(list) => list.extend(groups),
            Value::Null => *statics = Value::Sequence(groups),
            _ => return Err(format!("job `{name}`: static_configs must be a list")),
        }
    }
    Ok(())
}

/// The agent's whole configuration: the scraper's configuration with discovery rewritten
/// ([`rewrite_discovery`]) and a `remote_write` to its workspace, signed with SigV4.
pub fn agent_config(yaml: &str, pods: &[Pod], write: &RemoteWrite) -> Result<String, String> {
    let mut doc = check_configuration(yaml)?;
    rewrite_discovery(&mut doc, pods)?;
    let mut sigv4 = Mapping::new();
    sigv4.insert(key("region"), key(&write.region));
    sigv4.insert(key("access_key"), key(&write.access_key));
    sigv4.insert(key("secret_key"), key(&write.secret_key));
    let mut target = Mapping::new();
    target.insert(key("url"), key(&write.url));
    target.insert(key("sigv4"), Value::Mapping(sigv4));
    if let Value::Mapping(top) = &mut doc {
        top.insert(
            key("remote_write"),
            Value::Sequence(vec![Value::Mapping(target)]),
        );
    }
    let text = serde_norway::to_string(&doc)
        .map_err(|e| format!("cannot write the agent's configuration: {e}"))?;
    Ok(format!(
        "# Written by amp-local for a scraper: its configuration, with kubernetes_sd_configs\n\
         # answered by the local pods (--scraper-pod) and remote_write to its workspace.\n{text}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blob as render-agent-config's managed-scraper flavour writes it (model.rs
    /// `envoy_pod_rules`).
    const RENDERED: &str = include_str!("../../../tests/fixtures/scrapers/managed-envoy.yaml");

    fn pods() -> Vec<Pod> {
        [
            "127.0.0.1:18511,namespace=prod,name=dj-0,container=envoy,app=dj",
            "127.0.0.1:18513,namespace=prod,name=jazz-0,container=envoy,app=jazz",
            "127.0.0.1:9100,namespace=kube-system,name=node-exporter-x,container=exporter,annotation:prometheus.io/port=9100",
        ]
        .iter()
        .map(|s| parse_pod(s).expect("a pod"))
        .collect()
    }

    fn write() -> RemoteWrite {
        RemoteWrite {
            url: "http://127.0.0.1:9095/workspaces/ws-1/api/v1/remote_write".into(),
            region: "eu-west-1".into(),
            access_key: "AKID".into(),
            secret_key: "s3cret".into(),
        }
    }

    fn job(doc: &Value, n: usize) -> &Mapping {
        doc["scrape_configs"][n].as_mapping().expect("a job")
    }

    #[test]
    fn a_pod_flag_reads_address_fields_labels_and_annotations() {
        let pod = parse_pod(
            "127.0.0.1:18511, namespace=prod ,name=dj-0,container=envoy,app=dj,label:name=x,annotation:team.io/owner=obs",
        )
        .expect("parsed");
        assert_eq!(pod.address, "127.0.0.1:18511");
        assert_eq!((pod.host.as_str(), pod.port), ("127.0.0.1", 18511));
        assert_eq!(
            (
                pod.namespace.as_str(),
                pod.name.as_str(),
                pod.container.as_str()
            ),
            ("prod", "dj-0", "envoy")
        );
        assert_eq!(pod.labels.get("app").map(String::as_str), Some("dj"));
        assert_eq!(pod.labels.get("name").map(String::as_str), Some("x"));
        // The port annotation defaults to the address's port.
        assert_eq!(
            pod.annotations
                .get("prometheus.io/port")
                .map(String::as_str),
            Some("18511")
        );
        assert_eq!(
            pod.annotations.get("team.io/owner").map(String::as_str),
            Some("obs")
        );
        let default_ns = parse_pod("[::1]:9901,name=a,container=b").expect("parsed");
        assert_eq!(
            (default_ns.namespace.as_str(), default_ns.host.as_str()),
            ("default", "::1")
        );
    }

    #[test]
    fn a_bad_pod_flag_says_what_is_wrong_and_how_to_write_it() {
        for (spec, fragment) in [
            ("127.0.0.1", "has no `:PORT`"),
            ("127.0.0.1:0,name=a,container=b", "not a port number"),
            ("127.0.0.1:1,container=b", "`name=POD` is missing"),
            ("127.0.0.1:1,name=a", "`container=NAME` is missing"),
            ("127.0.0.1:1,name=A,container=b", "not a Kubernetes name"),
            ("127.0.0.1:1,name=a,container=b,app", "not KEY=VALUE"),
            (
                "127.0.0.1:1,name=a,container=b,app=d j",
                "not a Kubernetes label value",
            ),
        ] {
            let err = parse_pod(spec).expect_err(spec);
            assert!(err.contains(fragment), "{spec}: {err}");
            assert!(err.contains("write it as HOST:PORT"), "{spec}: {err}");
        }
    }

    #[test]
    fn a_pod_carries_the_labels_kubernetes_discovery_gives_it() {
        let labels = pods()[0].meta_labels();
        let get = |k: &str| labels.get(k).map(String::as_str);
        assert_eq!(get("__meta_kubernetes_namespace"), Some("prod"));
        assert_eq!(get("__meta_kubernetes_pod_name"), Some("dj-0"));
        assert_eq!(get("__meta_kubernetes_pod_container_name"), Some("envoy"));
        assert_eq!(get("__meta_kubernetes_pod_label_app"), Some("dj"));
        assert_eq!(get("__meta_kubernetes_pod_labelpresent_app"), Some("true"));
        assert_eq!(
            get("__meta_kubernetes_pod_annotation_prometheus_io_port"),
            Some("18511")
        );
        assert_eq!(get("__meta_kubernetes_pod_ip"), Some("127.0.0.1"));
        assert_eq!(
            get("__meta_kubernetes_pod_container_port_number"),
            Some("18511")
        );
    }

    #[test]
    fn kubernetes_discovery_becomes_one_static_group_per_pod_and_nothing_else_changes() {
        let out = agent_config(RENDERED, &pods(), &write()).expect("rendered");
        let doc: Value = serde_norway::from_str(&out).expect("YAML");
        let original = check_configuration(RENDERED).expect("valid");
        let job = job(&doc, 0);
        assert!(job.get(key("kubernetes_sd_configs")).is_none());
        let groups = job["static_configs"].as_sequence().expect("static_configs");
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0]["targets"][0].as_str(), Some("127.0.0.1:18511"));
        assert_eq!(
            groups[1]["labels"]["__meta_kubernetes_pod_label_app"].as_str(),
            Some("jazz")
        );
        // The relabelling and everything else is the blob's own, unchanged.
        for field in ["job_name", "metrics_path", "relabel_configs"] {
            assert_eq!(job[field], original["scrape_configs"][0][field], "{field}");
        }
        assert_eq!(doc["global"], original["global"]);
        // The write goes to the workspace, signed.
        let rw = &doc["remote_write"][0];
        assert_eq!(rw["url"].as_str(), Some(write().url.as_str()));
        assert_eq!(rw["sigv4"]["region"].as_str(), Some("eu-west-1"));
        assert_eq!(rw["sigv4"]["access_key"].as_str(), Some("AKID"));
        assert_eq!(rw["sigv4"]["secret_key"].as_str(), Some("s3cret"));
    }

    #[test]
    fn namespaces_filter_other_roles_find_nothing_and_static_targets_stay() {
        let yaml = "scrape_configs:\n\
- job_name: prod-only\n  kubernetes_sd_configs:\n  - role: pod\n    namespaces: {names: [prod]}\n\
- job_name: nodes\n  kubernetes_sd_configs:\n  - role: node\n\
- job_name: mixed\n  static_configs:\n  - targets: ['10.0.0.1:80']\n  kubernetes_sd_configs:\n  - role: pod\n    namespaces: {names: [kube-system]}\n\
- job_name: plain\n  static_configs:\n  - targets: ['10.0.0.2:80']\n";
        let mut doc = check_configuration(yaml).expect("valid");
        rewrite_discovery(&mut doc, &pods()).expect("rewritten");
        let addresses = |n: usize| -> Vec<String> {
            job(&doc, n)["static_configs"]
                .as_sequence()
                .expect("static_configs")
                .iter()
                .map(|g| g["targets"][0].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(addresses(0), ["127.0.0.1:18511", "127.0.0.1:18513"]);
        assert!(addresses(1).is_empty(), "no nodes are known locally");
        assert_eq!(addresses(2), ["10.0.0.1:80", "127.0.0.1:9100"]);
        assert_eq!(addresses(3), ["10.0.0.2:80"]);
        assert!(job(&doc, 2).get(key("kubernetes_sd_configs")).is_none());
    }

    #[test]
    fn what_is_not_a_scraper_configuration_is_refused_with_the_reason() {
        for (yaml, fragment) in [
            ("a: [", "not YAML"),
            ("- 1\n- 2\n", "a YAML mapping"),
            ("global: {scrape_interval: 5s}\n", "no scrape_configs"),
            ("scrape_configs: []\n", "no scrape_configs"),
            (
                "scrape_configs:\n- job_name: a\nremote_write:\n- url: http://x\n",
                "`remote_write` is not supported",
            ),
            ("scrape_configs:\n- metrics_path: /m\n", "has no job_name"),
            (
                "scrape_configs:\n- job_name: a\n- job_name: a\n",
                "`a` is used twice",
            ),
            (
                "scrape_configs:\n- job_name: a\n  kubernetes_sd_configs:\n  - namespaces: {}\n",
                "has no role",
            ),
            (
                "scrape_configs:\n- job_name: a\n  kubernetes_sd_configs:\n  - role: pods\n",
                "`pods` is not a Kubernetes discovery role",
            ),
        ] {
            let err = check_configuration(yaml).expect_err(yaml);
            assert!(err.contains(fragment), "{yaml}: {err}");
        }
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let shown = format!("{:?}", write());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
