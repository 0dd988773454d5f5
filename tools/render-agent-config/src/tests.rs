//! Every flavor rendered from flags and documents; the Prometheus-style outputs checked by
//! the real `promtool` (from `scripts/setup`) rather than by comparing text.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use super::prometheus::PrometheusConfig;
use super::*;

fn options(flavor: Flavor) -> Cli {
    Cli {
        flavor,
        format: Format::Yaml,
        out: None,
        stdout: false,
        targets: Vec::new(),
        remote_write_url: None,
        region: None,
        no_sigv4: false,
        scrape_interval: Duration::from_secs(15),
        batch_send_deadline: None,
        external_labels: Vec::new(),
        job_name: "envoy".into(),
        mesh: None,
        container: None,
        admin_port: None,
        namespace: None,
        service_account: None,
        image: None,
    }
}

fn workspace_doc() -> StateDoc {
    StateDoc::parse(
        &json!({"workspace": {
            "workspaceId": "ws-1234",
            "alias": "AMP-APPMESH",
            "arn": "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1234",
            "status": "ACTIVE",
            "region": "eu-west-1",
            "prometheusEndpoint": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/",
            "remoteWriteUrl": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/remote_write",
            "queryUrl": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/query"
        }})
        .to_string(),
    )
    .unwrap()
}

/// The promtool that `scripts/setup` installs: `$AMPKIT_HOME/bin/promtool`, by default in the
/// workspace's `.local/` (two levels above this crate). A missing promtool fails the check,
/// naming the fix: a check that cannot run must not pass.
fn promtool() -> PathBuf {
    let home = std::env::var_os("AMPKIT_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local"));
    let path = home.join("bin/promtool");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup (make test does) or set AMPKIT_HOME",
        path.display()
    );
    path
}

/// `promtool check config` on a config; `syntax_only` for in-cluster configs whose token and
/// CA files exist only inside a pod. `agent` checks it as Prometheus agent mode does.
fn promtool_check(config: &PrometheusConfig, agent: bool, syntax_only: bool) {
    let promtool = promtool();
    let dir = tempfile_dir();
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, serde_norway::to_string(config).unwrap()).unwrap();
    let mut cmd = Command::new(promtool);
    cmd.args(["check", "config"]);
    if agent {
        cmd.arg("--agent");
    }
    if syntax_only {
        cmd.arg("--syntax-only");
    }
    let out = cmd.arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "promtool rejected the config:\n{}\n{}{}",
        serde_norway::to_string(config).unwrap(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tempfile_dir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ampkit-agent-config-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn static_options(flavor: Flavor) -> Cli {
    Cli {
        targets: vec![
            "127.0.0.1:19311,service=dj,namespace=prod".into(),
            "127.0.0.1:19313,service=jazz,namespace=prod".into(),
        ],
        external_labels: vec!["cluster=demo".into()],
        batch_send_deadline: Some(Duration::from_secs(1)),
        scrape_interval: Duration::from_secs(5),
        ..options(flavor)
    }
}

#[test]
fn prometheus_agent_static_targets_pass_promtool_with_the_workspace_url_and_sigv4() {
    let (_, files) =
        render_files(&static_options(Flavor::PrometheusAgent), &workspace_doc()).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "prometheus-agent.yml");
    let config: PrometheusConfig = serde_norway::from_str(&files[0].content).unwrap();
    assert_eq!(config.global.scrape_interval, "5s");
    assert_eq!(config.global.external_labels["cluster"], "demo");
    let job = &config.scrape_configs[0];
    assert_eq!(job.metrics_path.as_deref(), Some("/stats/prometheus"));
    assert_eq!(job.static_configs.len(), 2);
    assert_eq!(job.static_configs[1].targets, ["127.0.0.1:19313"]);
    assert_eq!(job.static_configs[1].labels["service"], "jazz");
    assert_eq!(job.static_configs[1].labels["namespace"], "prod");
    let rw = &config.remote_write[0];
    assert_eq!(
        rw.url,
        "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/remote_write"
    );
    assert_eq!(rw.sigv4.as_ref().unwrap().region, "eu-west-1");
    let queue = rw.queue_config.as_ref().unwrap();
    assert_eq!(queue.batch_send_deadline.as_deref(), Some("1s"));
    // A 429 from AMP's quotas is retried, not dropped.
    assert!(queue.retry_on_http_429);
    promtool_check(&config, true, false);
}

#[test]
fn prometheus_agent_kubernetes_discovery_passes_promtool() {
    let (_, files) = render_files(&options(Flavor::PrometheusAgent), &workspace_doc()).unwrap();
    let config: PrometheusConfig = serde_norway::from_str(&files[0].content).unwrap();
    let job = &config.scrape_configs[0];
    assert_eq!(job.kubernetes_sd_configs[0].role, "pod");
    let targets: Vec<_> = job
        .relabel_configs
        .iter()
        .filter_map(|r| r.target_label.as_deref())
        .collect();
    for label in ["__address__", "namespace", "service", "kubernetes_pod_name"] {
        assert!(
            targets.contains(&label),
            "no rule sets {label}: {targets:?}"
        );
    }
    promtool_check(&config, true, false);
}

#[test]
fn flags_win_over_the_document_and_no_sigv4_drops_signing() {
    let opts = Cli {
        remote_write_url: Some("http://127.0.0.1:9090/api/v1/write".into()),
        no_sigv4: true,
        ..static_options(Flavor::PrometheusAgent)
    };
    let model = build_model(&opts, &workspace_doc()).unwrap();
    let rw = model.remote_write.unwrap();
    assert_eq!(rw.url, "http://127.0.0.1:9090/api/v1/write");
    assert_eq!(rw.sigv4_region, None);

    let opts = Cli {
        region: Some("us-east-2".into()),
        ..static_options(Flavor::PrometheusAgent)
    };
    let rw = build_model(&opts, &workspace_doc())
        .unwrap()
        .remote_write
        .unwrap();
    assert_eq!(rw.sigv4_region.as_deref(), Some("us-east-2"));
}

#[test]
fn no_url_and_no_workspace_is_a_usage_error_naming_both_ways() {
    let err = build_model(&options(Flavor::PrometheusAgent), &StateDoc::new()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.message.contains("--remote-write-url"),
        "{}",
        err.message
    );
    assert!(err.message.contains("workspace"), "{}", err.message);
    // The managed scraper writes to the workspace it is created for: no URL needed.
    build_model(&options(Flavor::ManagedScraper), &StateDoc::new()).unwrap();
}

#[test]
fn grafana_agent_manifests_are_typed_current_and_their_scrape_configs_pass_promtool() {
    let doc = StateDoc::parse(
        &json!({"irsa": {"namespace": "monitoring", "serviceAccount": "collector"}}).to_string(),
    )
    .unwrap();
    let mut merged = workspace_doc();
    merged
        .set_section("irsa", doc.section("irsa").unwrap())
        .unwrap();
    let opts = Cli {
        image: Some("grafana/agent:v0.44.2".into()),
        ..options(Flavor::GrafanaAgent)
    };
    let (_, files) = render_files(&opts, &merged).unwrap();
    assert_eq!(files[0].name, "grafana-agent.yaml");
    let objects = read_objects(&files[0].content).unwrap();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "DaemonSet",
            "Deployment"
        ]
    );
    for object in &objects {
        if object["kind"].as_str().unwrap().starts_with("ClusterRole") {
            assert_eq!(object["apiVersion"], "rbac.authorization.k8s.io/v1");
        }
    }
    assert_eq!(objects[0]["metadata"]["name"], "monitoring");
    assert_eq!(objects[2]["subjects"][0]["name"], "collector");
    assert_eq!(objects[2]["subjects"][0]["namespace"], "monitoring");
    let daemon_set = &objects[5];
    assert_eq!(
        daemon_set["spec"]["template"]["spec"]["serviceAccountName"],
        "collector"
    );
    assert_eq!(
        daemon_set["spec"]["template"]["spec"]["containers"][0]["image"],
        "grafana/agent:v0.44.2"
    );
    assert_eq!(objects[6]["spec"]["replicas"], 1);

    let configs = grafana_agent::prometheus_configs_in_manifests(&files[0].content).unwrap();
    assert_eq!(configs.len(), 2);
    let envoy = &configs[0].scrape_configs[0];
    assert_eq!(envoy.job_name, "envoy");
    assert_eq!(
        configs[0].remote_write[0].sigv4.as_ref().unwrap().region,
        "eu-west-1"
    );
    for config in &configs {
        // The API server job names the pod's token and CA files, which exist only in a pod.
        promtool_check(config, false, true);
    }
}

#[test]
fn grafana_agent_static_targets_go_to_the_one_replica_deployment_and_json_is_a_list() {
    let opts = Cli {
        format: Format::Json,
        ..static_options(Flavor::GrafanaAgent)
    };
    let (_, files) = render_files(&opts, &workspace_doc()).unwrap();
    assert_eq!(files[0].name, "grafana-agent.json");
    let list: serde_json::Value = serde_json::from_str(&files[0].content).unwrap();
    assert_eq!(list["kind"], "List");
    let configs = grafana_agent::prometheus_configs_in_manifests(&files[0].content).unwrap();
    // The DaemonSet's instance is empty; the Deployment's has the Envoy and API server jobs.
    assert_eq!(configs.len(), 1);
    let jobs: Vec<_> = configs[0]
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    assert_eq!(jobs, ["envoy", "default/kubernetes"]);
    promtool_check(&configs[0], false, true);
}

#[test]
fn alloy_renders_components_and_manifests() {
    let (_, files) = render_files(&options(Flavor::Alloy), &workspace_doc()).unwrap();
    assert_eq!(files[0].name, "alloy.yaml");
    assert_eq!(files[1].name, "config.alloy");
    let config = &files[1].content;
    for needle in [
        "discovery.kubernetes \"pods\"",
        "discovery.relabel \"envoy\"",
        "targets = discovery.kubernetes.pods.targets",
        "prometheus.scrape \"envoy\"",
        "targets         = discovery.relabel.envoy.output",
        "metrics_path    = \"/stats/prometheus\"",
        "forward_to      = [prometheus.remote_write.workspace.receiver]",
        "prometheus.remote_write \"workspace\"",
        "url = \"https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/remote_write\"",
        "region = \"eu-west-1\"",
        "regex         = \"([^:]+)(?::\\\\d+)?\"",
        "replacement   = \"${1}:9901\"",
        "target_label  = \"service\"",
    ] {
        assert!(
            config.contains(needle),
            "config.alloy lacks {needle}:\n{config}"
        );
    }
    let objects = read_objects(&files[0].content).unwrap();
    let config_map = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(
        config_map["data"]["config.alloy"].as_str(),
        Some(config.as_str())
    );
    let daemon_set = objects.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
    assert_eq!(
        daemon_set["spec"]["template"]["spec"]["containers"][0]["image"],
        alloy::DEFAULT_IMAGE
    );
}

#[test]
fn alloy_static_targets_carry_their_labels() {
    let (_, files) = render_files(&static_options(Flavor::Alloy), &workspace_doc()).unwrap();
    let config = &files[1].content;
    assert!(
        config.contains(
            r#"{"__address__" = "127.0.0.1:19311", "namespace" = "prod", "service" = "dj"}"#
        ),
        "{config}"
    );
    assert!(config.contains("batch_send_deadline = \"1s\""), "{config}");
    assert!(
        config.contains(r#"external_labels = {"cluster" = "demo"}"#),
        "{config}"
    );
    assert!(!config.contains("discovery.kubernetes"), "{config}");
}

#[test]
fn managed_scraper_blob_is_a_scrape_only_config_that_passes_promtool() {
    let (_, files) = render_files(&options(Flavor::ManagedScraper), &StateDoc::new()).unwrap();
    assert_eq!(files[0].name, "managed-scraper.yml");
    let config: PrometheusConfig = serde_norway::from_str(&files[0].content).unwrap();
    assert!(config.remote_write.is_empty());
    promtool_check(&config, false, false);

    let opts = Cli {
        format: Format::Json,
        ..options(Flavor::ManagedScraper)
    };
    let (_, files) = render_files(&opts, &StateDoc::new()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&files[0].content).unwrap();
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(json["configurationBlob"].as_str().unwrap())
        .unwrap();
    let decoded: PrometheusConfig = serde_norway::from_slice(&blob).unwrap();
    assert_eq!(decoded, config);
}

#[test]
fn the_managed_collector_gets_read_on_pods_for_its_user_and_nothing_more() {
    let (_, files) = render_files(&options(Flavor::ManagedScraper), &StateDoc::new()).unwrap();
    assert_eq!(files[1].name, "scraper-rbac.yaml");
    let objects = read_objects(&files[1].content).unwrap();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding"]);
    assert_eq!(
        objects[0]["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}])
    );
    assert_eq!(
        objects[1]["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "aps-collector-user"}])
    );
    assert_eq!(
        objects[1]["roleRef"]["name"],
        objects[0]["metadata"]["name"]
    );
}

#[test]
fn every_mesh_renders_for_every_flavor_with_its_port_path_and_labels_and_passes_promtool() {
    use ampkit::mesh::Mesh;
    let cases = [
        (
            Mesh::Appmesh,
            "envoy",
            "9901",
            "/stats/prometheus",
            "app",
            "__meta_kubernetes_namespace",
        ),
        (
            Mesh::EnvoyGateway,
            "envoy",
            "19001",
            "/stats/prometheus",
            "gateway_envoyproxy_io_owning_gateway_name",
            "__meta_kubernetes_pod_label_gateway_envoyproxy_io_owning_gateway_namespace",
        ),
        (
            Mesh::Consul,
            "consul-dataplane",
            "20200",
            "/metrics",
            "app",
            "__meta_kubernetes_namespace",
        ),
        (
            Mesh::Istio,
            "istio-proxy",
            "15020",
            "/stats/prometheus",
            "service_istio_io_canonical_name",
            "__meta_kubernetes_namespace",
        ),
    ];
    for (mesh, container, port, path, service_label, namespace_source) in cases {
        let opts = Cli {
            mesh: Some(mesh),
            ..options(Flavor::PrometheusAgent)
        };
        let (_, files) = render_files(&opts, &workspace_doc()).unwrap();
        let config: PrometheusConfig = serde_norway::from_str(&files[0].content).unwrap();
        let job = &config.scrape_configs[0];
        assert_eq!(job.metrics_path.as_deref(), Some(path), "{mesh}");
        let rules = &job.relabel_configs;
        assert_eq!(rules[0].regex.as_deref(), Some(container), "{mesh}: keep");
        assert_eq!(
            rules[1].replacement.as_deref(),
            Some(format!("${{1}}:{port}").as_str())
        );
        let setting = |label: &str| -> Vec<String> {
            rules
                .iter()
                .filter(|r| r.target_label.as_deref() == Some(label))
                .flat_map(|r| r.source_labels.clone())
                .collect()
        };
        assert_eq!(setting("namespace"), [namespace_source], "{mesh}");
        // The last rule that sets `service` wins: the mesh's preferred label.
        assert_eq!(
            setting("service").last().map(String::as_str),
            Some(format!("__meta_kubernetes_pod_label_{service_label}").as_str()),
            "{mesh}"
        );
        promtool_check(&config, true, false);

        for flavor in [Flavor::ManagedScraper, Flavor::GrafanaAgent] {
            let opts = Cli {
                mesh: Some(mesh),
                ..options(flavor)
            };
            let (_, files) = render_files(&opts, &workspace_doc()).unwrap();
            let configs: Vec<PrometheusConfig> = if flavor == Flavor::ManagedScraper {
                vec![serde_norway::from_str(&files[0].content).unwrap()]
            } else {
                grafana_agent::prometheus_configs_in_manifests(&files[0].content).unwrap()
            };
            assert!(
                configs
                    .iter()
                    .flat_map(|c| &c.scrape_configs)
                    .any(|j| j.metrics_path.as_deref() == Some(path)),
                "{mesh} {flavor:?}"
            );
            for config in &configs {
                // The Agent's API server job names files that exist only in a pod.
                promtool_check(config, false, flavor == Flavor::GrafanaAgent);
            }
        }
        let opts = Cli {
            mesh: Some(mesh),
            ..options(Flavor::Alloy)
        };
        let (_, files) = render_files(&opts, &workspace_doc()).unwrap();
        assert!(
            files[1].content.contains(path),
            "{mesh}: {}",
            files[1].content
        );
    }
}

#[test]
fn the_mesh_comes_from_the_document_and_is_recorded_for_the_tools_downstream() {
    let mut doc = workspace_doc();
    doc.set_section("mesh", json!({"profile": "istio"}))
        .unwrap();
    let (_, files) = render_files(&options(Flavor::PrometheusAgent), &doc).unwrap();
    assert!(
        files[0].content.contains("istio-proxy"),
        "{}",
        files[0].content
    );
    let dir = tempfile_dir();
    let opts = Cli {
        out: Some(dir.clone()),
        mesh: Some(ampkit::mesh::Mesh::Consul),
        ..options(Flavor::PrometheusAgent)
    };
    render(&opts, &mut doc).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(doc.str_field("mesh", "profile"), Some("consul"));
}

#[test]
fn invalid_input_is_exit_2() {
    let cases: Vec<(Cli, &str)> = vec![
        (
            Cli {
                targets: vec!["nohost".into()],
                ..options(Flavor::PrometheusAgent)
            },
            "nohost",
        ),
        (
            Cli {
                container: Some("Envoy".into()),
                ..options(Flavor::PrometheusAgent)
            },
            "--container",
        ),
        (
            Cli {
                external_labels: vec!["9=x".into()],
                ..options(Flavor::PrometheusAgent)
            },
            "--external-label",
        ),
        (
            Cli {
                remote_write_url: Some("ftp://x".into()),
                ..options(Flavor::PrometheusAgent)
            },
            "ftp://x",
        ),
        (
            Cli {
                namespace: Some("Bad_NS".into()),
                ..options(Flavor::GrafanaAgent)
            },
            "--namespace",
        ),
    ];
    for (opts, needle) in cases {
        let err = render_files(&opts, &workspace_doc()).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{needle}");
        assert!(err.message.contains(needle), "{needle}: {}", err.message);
    }
    let no_region =
        StateDoc::parse(r#"{"workspace":{"remoteWriteUrl":"https://x/api/v1/remote_write"}}"#)
            .unwrap();
    let err = build_model(&options(Flavor::PrometheusAgent), &no_region).unwrap_err();
    assert!(err.message.contains("--region"), "{}", err.message);
}
