//! `--kube-service NAMESPACE/SERVICE:PORT`: reach a cluster service through a port-forward.
//!
//! In a cluster the mesh's entry (the recipe's `dj` service) is not reachable from a laptop;
//! `kubectl port-forward svc/...` is what people use. As kubectl does, the service is resolved
//! to one ready pod behind its selector and the service port to that pod's container port;
//! then a local listener on 127.0.0.1 opens one port-forward stream (kube's WebSocket
//! port-forward) per accepted connection, so each load connection is its own stream.

use std::fmt;

use ::kube::api::{Api, ListParams};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpListener;

use ampkit::error::{Error, Result};
use ampkit::kube::{self, NameRule};

/// A parsed `NAMESPACE/SERVICE:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeService {
    pub namespace: String,
    pub service: String,
    pub port: u16,
}

impl fmt::Display for KubeService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)
    }
}

/// `--kube-service`'s value parser.
pub fn parse_kube_service(s: &str) -> std::result::Result<KubeService, String> {
    let (namespace, rest) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not NAMESPACE/SERVICE:PORT (the / is missing)"))?;
    let (service, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not NAMESPACE/SERVICE:PORT (the :PORT is missing)"))?;
    NameRule::Dns1123Label.check("namespace", namespace)?;
    NameRule::Dns1035Label.check("service", service)?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` is not a port number (1-65535)"))?;
    Ok(KubeService {
        namespace: namespace.to_owned(),
        service: service.to_owned(),
        port,
    })
}

/// An open port-forward: a local address that reaches the service. Dropping it stops
/// accepting connections.
pub struct Forward {
    local_port: u16,
    pod: String,
    task: tokio::task::JoinHandle<()>,
}

impl Forward {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.local_port)
    }

    /// The pod the service was resolved to.
    pub fn pod(&self) -> &str {
        &self.pod
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to do rather than fix the cluster access.
const INSTEAD: &str = "use --url";

fn kube_error(doing: String) -> impl FnOnce(::kube::Error) -> Error {
    kube::error(format!("--kube-service: {doing}"), INSTEAD)
}

fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod and container port that `svc` leads to, as `kubectl port-forward svc/...` picks
/// them: the first ready pod matching the service's selector, and the service port's
/// `targetPort` (a number, or a container port's name).
pub async fn resolve(client: ::kube::Client, svc: &KubeService) -> Result<(String, u16)> {
    let services: Api<Service> = Api::namespaced(client.clone(), &svc.namespace);
    let service = services
        .get_opt(&svc.service)
        .await
        .map_err(kube_error(format!(
            "reading service {}/{}",
            svc.namespace, svc.service
        )))?
        .ok_or_else(|| {
            Error::not_found(format!(
                "--kube-service: service {}/{} does not exist",
                svc.namespace, svc.service
            ))
            .with_hint("list them with `kubectl get svc -n NAMESPACE`")
        })?;
    let spec = service.spec.unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    let port = ports
        .iter()
        .find(|p| p.port == i32::from(svc.port))
        .ok_or_else(|| {
            let known: Vec<String> = ports.iter().map(|p| p.port.to_string()).collect();
            Error::not_found(format!(
                "--kube-service: service {} has no port {}",
                svc.service, svc.port
            ))
            .with_hint(format!("its ports: {}", known.join(", ")))
        })?;
    let selector = spec.selector.filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::input(format!(
            "--kube-service: service {} has no pod selector, so there is no pod to forward to",
            svc.service
        ))
    })?;
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(client, &svc.namespace);
    let list = pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await
        .map_err(kube_error(format!(
            "listing the pods of service {}",
            svc.service
        )))?;
    let pod = list.items.into_iter().find(is_ready).ok_or_else(|| {
        Error::not_found(format!(
            "--kube-service: no ready pod behind service {}",
            svc.service
        ))
        .with_hint(format!(
            "check `kubectl get pods -n {} -l {}`",
            svc.namespace,
            labels.join(",")
        ))
    })?;
    let target = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "--kube-service: no container port named `{name}` in the pod"
                ))
            })?,
    };
    let target = u16::try_from(target).map_err(|_| {
        Error::input(format!(
            "--kube-service: target port {target} is out of range"
        ))
    })?;
    Ok((pod.metadata.name.unwrap_or_default(), target))
}

/// Connect with the usual kubeconfig inference, resolve the service and start forwarding.
pub async fn open(svc: &KubeService) -> Result<Forward> {
    let client = kube::client(INSTEAD)
        .await
        .map_err(|e| e.context("--kube-service"))?;
    open_with(client, svc).await
}

/// [`open`] with a given client.
pub async fn open_with(client: ::kube::Client, svc: &KubeService) -> Result<Forward> {
    let (pod, port) = resolve(client.clone(), svc).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
        Error::internal(format!(
            "could not listen on 127.0.0.1 for the port-forward: {e}"
        ))
    })?;
    let local_port = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("port-forward listener: {e}")))?
        .port();
    let pods: Api<Pod> = Api::namespaced(client, &svc.namespace);
    let name = pod.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (pods, name) = (pods.clone(), name.clone());
            tokio::spawn(async move {
                // A failed stream closes the connection: the load counts it as an error.
                match pods.portforward(&name, &[port]).await {
                    Ok(mut forwarder) => {
                        if let Some(mut upstream) = forwarder.take_stream(port) {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                            drop(upstream);
                        }
                        let _ = forwarder.join().await;
                    }
                    Err(e) => tracing::warn!("port-forward to pod {name}:{port} failed: {e}"),
                }
            });
        }
    });
    Ok(Forward {
        local_port,
        pod,
        task,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ampkit::kube::testing::{self, Call};
    use http::StatusCode;
    use serde_json::{Value, json};

    #[test]
    fn service_flag_parses_and_rejects_bad_names() {
        assert_eq!(
            parse_kube_service("prod/dj:9080").unwrap(),
            KubeService {
                namespace: "prod".into(),
                service: "dj".into(),
                port: 9080
            }
        );
        assert!(parse_kube_service("dj:9080").is_err());
        assert!(parse_kube_service("prod/dj").is_err());
        assert!(parse_kube_service("prod/DJ:80").is_err());
        assert!(parse_kube_service("prod/dj:0").is_err());
        assert!(parse_kube_service("prod/dj:http").is_err());
    }

    /// Resolve prod/dj:9080 against the scripted calls.
    async fn scenario(calls: Vec<Call>) -> Result<(String, u16)> {
        let (client, server) = testing::serve(calls);
        let svc = parse_kube_service("prod/dj:9080").unwrap();
        let out = resolve(client, &svc).await;
        server.verify().await;
        out
    }

    fn pod(name: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": "dj"}},
               "spec": {"containers": [{"name": "dj", "ports": [{"name": "http", "containerPort": 8080}]}]},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}})
    }

    #[tokio::test]
    async fn a_service_resolves_to_a_ready_pod_and_its_named_container_port() {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dj", "namespace": "prod"},
            "spec": {"selector": {"app": "dj"}, "ports": [{"port": 9080, "targetPort": "http"}]}});
        let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [pod("dj-1", "False"), pod("dj-2", "True")]});
        let got = scenario(vec![
            Call::get("/api/v1/namespaces/prod/services/dj").reply(StatusCode::OK, service),
            Call::get("/api/v1/namespaces/prod/pods")
                .query("labelSelector=app%3Ddj")
                .reply(StatusCode::OK, pods),
        ])
        .await
        .unwrap();
        assert_eq!(got, ("dj-2".to_owned(), 8080));
    }

    #[tokio::test]
    async fn a_missing_service_is_not_found() {
        let err = scenario(vec![
            Call::get("/api/v1/namespaces/prod/services/dj")
                .reply(StatusCode::NOT_FOUND, testing::not_found("services", "dj")),
        ])
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
        assert!(err.message.contains("prod/dj"), "{err}");
    }
}
