//! The Kubernetes objects both in-cluster flavors share, as k8s-openapi types: the namespace,
//! the RBAC that pod and node discovery need, and the agent workloads.
//!
//! Typed objects rather than templates: a field name typo is a compile error, and the
//! apiVersion is the one the type belongs to (the recipe's `rbac.authorization.k8s.io/v1beta1`
//! was removed in Kubernetes 1.22).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;

use ampkit::error::Result;

/// Where the agent runs and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub namespace: String,
    pub service_account: String,
    pub image: String,
}

use ampkit::kube::metadata as meta;
pub use ampkit::kube::{namespace, to_value, to_yaml_stream};

pub fn config_map(name: &str, namespace: &str, key: &str, content: String) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, Some(namespace)),
        data: Some(BTreeMap::from([(key.to_owned(), content)])),
        ..ConfigMap::default()
    }
}

/// Read access to what pod, node and endpoint discovery and the kubelet scrape touch.
pub fn cluster_role(name: &str) -> ClusterRole {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    ClusterRole {
        metadata: meta(name, None),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(strings(&[""])),
                resources: Some(strings(&[
                    "nodes",
                    "nodes/proxy",
                    "services",
                    "endpoints",
                    "pods",
                ])),
                verbs: strings(&["get", "list", "watch"]),
                ..PolicyRule::default()
            },
            PolicyRule {
                non_resource_urls: Some(strings(&["/metrics"])),
                verbs: strings(&["get"]),
                ..PolicyRule::default()
            },
        ]),
        ..ClusterRole::default()
    }
}

pub fn cluster_role_binding(name: &str, placement: &Placement) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: placement.service_account.clone(),
            namespace: Some(placement.namespace.clone()),
            ..Subject::default()
        }]),
    }
}

/// The Kubernetes user EKS maps a managed collector's role to (the access entry amp-workspace
/// makes names it: one constant for both sides), and the names AWS's setup for it uses.
pub const SCRAPER_USER: &str = ampkit::eks::COLLECTOR_USER;
pub const SCRAPER_ROLE: &str = "aps-collector-role";
pub const SCRAPER_BINDING: &str = "aps-collector-user-role-binding";

/// What an AMP managed collector may read in the cluster. AWS's guide ("Configuring your
/// Amazon EKS cluster", AMP User Guide, AMP-collector-how-to) grants read on nodes, services,
/// endpoints, pods, ingresses and configmaps plus `/metrics`, for its default configuration;
/// ampkit's scrape configuration discovers pods only, so the role reads pods only.
pub fn scraper_cluster_role() -> ClusterRole {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    ClusterRole {
        metadata: meta(SCRAPER_ROLE, None),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&[""])),
            resources: Some(strings(&["pods"])),
            verbs: strings(&["get", "list", "watch"]),
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    }
}

/// The collector's user bound to [`scraper_cluster_role`].
pub fn scraper_cluster_role_binding() -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(SCRAPER_BINDING, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: SCRAPER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: SCRAPER_USER.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    }
}

/// One agent container reading its config from a ConfigMap mounted at `mount_path`.
pub struct AgentContainer<'a> {
    pub name: &'a str,
    pub args: Vec<String>,
    pub config_map: &'a str,
    pub mount_path: &'a str,
    pub port: i32,
}

fn pod_template(
    app: &str,
    placement: &Placement,
    spec: &AgentContainer<'_>,
    tolerate_all: bool,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("name".to_owned(), app.to_owned())])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(placement.service_account.clone()),
            containers: vec![Container {
                name: spec.name.to_owned(),
                image: Some(placement.image.clone()),
                image_pull_policy: Some("IfNotPresent".into()),
                args: Some(spec.args.clone()),
                // Agent's host_filter and Alloy's node selector both read the node name here.
                env: Some(vec![EnvVar {
                    name: "HOSTNAME".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "spec.nodeName".into(),
                            ..ObjectFieldSelector::default()
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                }]),
                ports: Some(vec![ContainerPort {
                    container_port: spec.port,
                    name: Some("http-metrics".into()),
                    ..ContainerPort::default()
                }]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "config".into(),
                    mount_path: spec.mount_path.to_owned(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: spec.config_map.to_owned(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            tolerations: tolerate_all.then(|| {
                vec![Toleration {
                    effect: Some("NoSchedule".into()),
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]
            }),
            ..PodSpec::default()
        }),
    }
}

fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("name".to_owned(), app.to_owned())])),
        ..LabelSelector::default()
    }
}

/// One agent per node: scrapes the pods of its own node.
pub fn daemon_set(app: &str, placement: &Placement, container: &AgentContainer<'_>) -> DaemonSet {
    DaemonSet {
        metadata: meta(app, Some(&placement.namespace)),
        spec: Some(DaemonSetSpec {
            min_ready_seconds: Some(10),
            selector: selector(app),
            template: pod_template(app, placement, container, true),
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    }
}

/// One agent for the cluster-wide jobs (a DaemonSet would scrape them once per node).
pub fn deployment(app: &str, placement: &Placement, container: &AgentContainer<'_>) -> Deployment {
    Deployment {
        metadata: meta(app, Some(&placement.namespace)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            min_ready_seconds: Some(10),
            selector: selector(app),
            template: pod_template(app, placement, container, false),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Several objects as a `v1` `List`, the JSON form `kubectl apply -f` takes.
pub fn to_json_list(objects: &[Value]) -> Result<String> {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    super::to_json(&list)
}
