//! The Kubernetes side of IRSA: the namespace and the service account annotated with the
//! role, through the `kube` client (or written as a manifest when no cluster is reachable).
//!
//! Objects that exist are kept (the service account's annotation is patched if it differs);
//! only objects this run created go to the ledger, as `teardown` must not delete a namespace
//! someone else made.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::doc::{Resource, StateDoc};
use crate::error::{Error, Result};

pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const TOOL: &str = "irsa-role";

fn labels() -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_owned(),
        "ampkit".to_owned(),
    )]))
}

pub fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: labels(),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The service account; annotated with the role for IRSA (Pod Identity needs no annotation).
pub fn service_account(namespace: &str, name: &str, role_arn: Option<&str>) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: labels(),
            annotations: role_arn
                .map(|arn| BTreeMap::from([(ROLE_ARN_ANNOTATION.to_owned(), arn.to_owned())])),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

/// The namespace and service account as a YAML stream for `kubectl apply -f`.
pub fn manifest(namespace_name: &str, sa: &str, role_arn: Option<&str>) -> Result<String> {
    use crate::agent_config::k8s::{to_value, to_yaml_stream};
    to_yaml_stream(&[
        to_value(&namespace(namespace_name))?,
        to_value(&service_account(namespace_name, sa, role_arn))?,
    ])
}

fn kube_error(doing: String) -> impl FnOnce(kube::Error) -> Error {
    move |e| {
        Error::remote(format!("{doing}: {e}"))
            .with_hint("check the cluster is reachable with the current kubeconfig, or pass --no-kube / --manifest-out FILE")
    }
}

/// Connect with the usual kubeconfig inference (KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn client() -> Result<kube::Client> {
    kube::Client::try_default().await.map_err(|e| {
        Error::usage(format!("no usable Kubernetes configuration: {e}")).with_hint(
            "set KUBECONFIG (e.g. `aws eks update-kubeconfig --name CLUSTER`), or pass --no-kube or --manifest-out FILE",
        )
    })
}

/// Ensure the namespace and the (annotated) service account; ledger what was created.
pub async fn ensure(
    client: kube::Client,
    namespace_name: &str,
    sa: &str,
    role_arn: Option<&str>,
    doc: &mut StateDoc,
) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let found = namespaces
        .get_opt(namespace_name)
        .await
        .map_err(kube_error(format!("reading namespace {namespace_name}")))?;
    if found.is_none() {
        namespaces
            .create(&PostParams::default(), &namespace(namespace_name))
            .await
            .map_err(kube_error(format!("creating namespace {namespace_name}")))?;
        doc.push_resource(Resource::new("k8s-namespace", namespace_name, TOOL));
    }

    let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace_name);
    match accounts.get_opt(sa).await.map_err(kube_error(format!(
        "reading service account {namespace_name}/{sa}"
    )))? {
        None => {
            accounts
                .create(
                    &PostParams::default(),
                    &service_account(namespace_name, sa, role_arn),
                )
                .await
                .map_err(kube_error(format!(
                    "creating service account {namespace_name}/{sa}"
                )))?;
            doc.push_resource(
                Resource::new(
                    "k8s-service-account",
                    format!("{namespace_name}/{sa}"),
                    TOOL,
                )
                .detail("namespace", namespace_name)
                .detail("name", sa),
            );
        }
        Some(existing) => {
            let current = existing
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ROLE_ARN_ANNOTATION))
                .map(String::as_str);
            if let Some(arn) = role_arn
                && current != Some(arn)
            {
                let patch = json!({"metadata": {"annotations": {ROLE_ARN_ANNOTATION: arn}}});
                accounts
                    .patch(sa, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(kube_error(format!(
                        "annotating service account {namespace_name}/{sa}"
                    )))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! A scripted API server (kube-rs's documented approach: the client is a tower Service,
    //! `tower_test::mock::pair` hands each request to the test). Each scenario lists the
    //! exact calls expected; a missing or extra call fails the test.

    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::Value;

    const ARN: &str = "arn:aws:iam::123456789012:role/ampkit-agent";

    struct Expected {
        method: Method,
        path: &'static str,
        /// The body the client must send (compared as JSON), if any.
        body: Option<Value>,
        status: StatusCode,
        reply: Value,
    }

    fn not_found(kind: &str, name: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404})
    }

    async fn run_scenario(expected: Vec<Expected>, role_arn: Option<&str>) -> StateDoc {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            for step in expected {
                let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                    panic!("the client never sent {} {}", step.method, step.path)
                });
                assert_eq!(request.method(), step.method);
                assert_eq!(request.uri().path(), step.path);
                let bytes = request.into_body().collect_bytes().await.unwrap();
                if let Some(body) = step.body {
                    let sent: Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(sent, body, "body of {} {}", step.method, step.path);
                }
                send.send_response(
                    Response::builder()
                        .status(step.status)
                        .body(Body::from(step.reply.to_string().into_bytes()))
                        .unwrap(),
                );
            }
            // Nothing more may arrive once the client is done.
            assert!(
                handle.next_request().await.is_none(),
                "an unexpected extra call arrived"
            );
        });
        let client = kube::Client::new(service, "default");
        let mut doc = StateDoc::new();
        ensure(client, "grafana-agent", "grafana-agent", role_arn, &mut doc)
            .await
            .unwrap();
        server.await.unwrap();
        doc
    }

    #[tokio::test]
    async fn creates_namespace_and_annotated_service_account_and_ledgers_both() {
        let ns = serde_json::to_value(namespace("grafana-agent")).unwrap();
        let sa = serde_json::to_value(service_account("grafana-agent", "grafana-agent", Some(ARN)))
            .unwrap();
        assert_eq!(sa["metadata"]["annotations"][ROLE_ARN_ANNOTATION], ARN);
        let doc = run_scenario(
            vec![
                Expected {
                    method: Method::GET,
                    path: "/api/v1/namespaces/grafana-agent",
                    body: None,
                    status: StatusCode::NOT_FOUND,
                    reply: not_found("namespaces", "grafana-agent"),
                },
                Expected {
                    method: Method::POST,
                    path: "/api/v1/namespaces",
                    body: Some(ns.clone()),
                    status: StatusCode::CREATED,
                    reply: ns,
                },
                Expected {
                    method: Method::GET,
                    path: "/api/v1/namespaces/grafana-agent/serviceaccounts/grafana-agent",
                    body: None,
                    status: StatusCode::NOT_FOUND,
                    reply: not_found("serviceaccounts", "grafana-agent"),
                },
                Expected {
                    method: Method::POST,
                    path: "/api/v1/namespaces/grafana-agent/serviceaccounts",
                    body: Some(sa.clone()),
                    status: StatusCode::CREATED,
                    reply: sa,
                },
            ],
            Some(ARN),
        )
        .await;
        let ledger = doc.resources();
        assert_eq!(ledger.len(), 2);
        assert_eq!(
            (ledger[0].kind.as_str(), ledger[0].id.as_str()),
            ("k8s-namespace", "grafana-agent")
        );
        assert_eq!(
            (ledger[1].kind.as_str(), ledger[1].id.as_str()),
            ("k8s-service-account", "grafana-agent/grafana-agent")
        );
    }

    #[tokio::test]
    async fn existing_objects_are_kept_and_only_the_annotation_is_patched() {
        let ns = serde_json::to_value(namespace("grafana-agent")).unwrap();
        let old = serde_json::to_value(service_account(
            "grafana-agent",
            "grafana-agent",
            Some("arn:old"),
        ))
        .unwrap();
        let mut patched = old.clone();
        patched["metadata"]["annotations"][ROLE_ARN_ANNOTATION] = json!(ARN);
        let doc = run_scenario(
            vec![
                Expected {
                    method: Method::GET,
                    path: "/api/v1/namespaces/grafana-agent",
                    body: None,
                    status: StatusCode::OK,
                    reply: ns,
                },
                Expected {
                    method: Method::GET,
                    path: "/api/v1/namespaces/grafana-agent/serviceaccounts/grafana-agent",
                    body: None,
                    status: StatusCode::OK,
                    reply: old,
                },
                Expected {
                    method: Method::PATCH,
                    path: "/api/v1/namespaces/grafana-agent/serviceaccounts/grafana-agent",
                    body: Some(json!({"metadata": {"annotations": {ROLE_ARN_ANNOTATION: ARN}}})),
                    status: StatusCode::OK,
                    reply: patched,
                },
            ],
            Some(ARN),
        )
        .await;
        assert!(
            doc.resources().is_empty(),
            "nothing was created, so nothing is ledgered"
        );
    }

    #[tokio::test]
    async fn an_up_to_date_service_account_is_left_alone() {
        let ns = serde_json::to_value(namespace("grafana-agent")).unwrap();
        let sa = serde_json::to_value(service_account("grafana-agent", "grafana-agent", Some(ARN)))
            .unwrap();
        let doc = run_scenario(
            vec![
                Expected {
                    method: Method::GET,
                    path: "/api/v1/namespaces/grafana-agent",
                    body: None,
                    status: StatusCode::OK,
                    reply: ns,
                },
                Expected {
                    method: Method::GET,
                    path: "/api/v1/namespaces/grafana-agent/serviceaccounts/grafana-agent",
                    body: None,
                    status: StatusCode::OK,
                    reply: sa,
                },
            ],
            Some(ARN),
        )
        .await;
        assert!(doc.resources().is_empty());
    }
}
