//! The collector's namespace and service account (annotated with the role for IRSA): made by
//! irsa-role through the `kube` client (or written as a manifest when no cluster is
//! reachable), deleted by teardown, both here.
//!
//! Objects that exist are kept (the service account's annotation is patched if it differs);
//! only objects this run created go to the ledger, as `teardown` must not delete a namespace
//! someone else made; teardown deletes only what still carries our label.

use std::collections::BTreeMap;

use ::kube::api::{Api, Patch, PatchParams, PostParams};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use serde::{Deserialize, Serialize};

use crate::doc::{MANAGED_BY, MANAGED_BY_LABEL, Resource, ResourceKind, StateDoc};
use crate::error::{Error, Result};
use crate::kube::{self, Found, namespace};
use crate::ledger::{self, Run, Verdict};

pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// What to do rather than fix the cluster access.
pub const INSTEAD: &str = "pass --no-kube or --manifest-out FILE";

/// A service account's ledger details (as the ledger has always had them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountDetails {
    pub namespace: String,
    pub name: String,
}

/// The service account; annotated with the role for IRSA (Pod Identity needs no annotation).
pub fn service_account(namespace: &str, name: &str, role_arn: Option<&str>) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            annotations: role_arn
                .map(|arn| BTreeMap::from([(ROLE_ARN_ANNOTATION.to_owned(), arn.to_owned())])),
            ..kube::metadata(name, Some(namespace))
        },
        ..ServiceAccount::default()
    }
}

/// The namespace and service account as a YAML stream for `kubectl apply -f`.
pub fn manifest(namespace_name: &str, sa: &str, role_arn: Option<&str>) -> Result<String> {
    kube::to_yaml_stream(&[
        kube::to_value(&namespace(namespace_name))?,
        kube::to_value(&service_account(namespace_name, sa, role_arn))?,
    ])
}

fn kube_error(doing: String) -> impl FnOnce(::kube::Error) -> Error {
    kube::error(doing, INSTEAD)
}

/// Ensure the namespace and the (annotated) service account; ledger what was created, as
/// made by `tool`.
pub async fn ensure(
    tool: &str,
    client: ::kube::Client,
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
        doc.push_resource(Resource::new(
            ResourceKind::K8sNamespace,
            namespace_name,
            tool,
        ));
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
                    ResourceKind::K8sServiceAccount,
                    format!("{namespace_name}/{sa}"),
                    tool,
                )
                .with_details(&ServiceAccountDetails {
                    namespace: namespace_name.to_owned(),
                    name: sa.to_owned(),
                }),
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

/// A Kubernetes object by name, deleted only with our label. The ledger records no cluster
/// identity, so "absent" means absent in the current kubeconfig's cluster, and says so.
async fn take_down<K>(run: &mut impl Run, api: ::kube::Api<K>, what: &str) -> Result<Verdict>
where
    K: ::kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = what.rsplit('/').next().unwrap_or(what);
    match kube::find_ours(&api, name).await? {
        Found::Absent => Ok(Verdict::Absent(
            "not in the cluster of the current kubeconfig".into(),
        )),
        Found::NotOurs => Ok(Verdict::Skipped(format!(
            "it has no label {MANAGED_BY_LABEL}={}, so it may not be ours",
            MANAGED_BY.1
        ))),
        Found::Ours if run.dry_run() => Ok(Verdict::WouldDelete(format!("{what}, labelled ours"))),
        Found::Ours => {
            kube::delete_and_wait(&api, name, run.timeout()).await?;
            Ok(Verdict::Deleted)
        }
    }
}

/// teardown's `k8s-namespace` entry (with everything in it, as Kubernetes deletes a
/// namespace), waited for until gone.
pub async fn take_down_namespace(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let api: Api<Namespace> = Api::all(run.kube().await?);
    take_down(run, api, &format!("namespace/{}", r.id)).await
}

/// teardown's `k8s-service-account` entry.
pub async fn take_down_service_account(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: ServiceAccountDetails = crate::verdict!(ledger::details(r));
    let namespace = crate::verdict!(ledger::required(&details.namespace, "namespace"));
    let name = crate::verdict!(ledger::required(&details.name, "name"));
    let api: Api<ServiceAccount> = Api::namespaced(run.kube().await?, namespace);
    take_down(run, api, &format!("serviceaccount/{namespace}/{name}")).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! A scripted API server (kube-rs's documented approach: the client is a tower Service,
    //! `tower_test::mock::pair` hands each request to the test). Each scenario lists the
    //! exact calls expected; a missing or extra call fails the test.

    use super::*;
    use crate::kube::testing::{self, Call, not_found};
    use http::{Method, StatusCode};
    use serde_json::Value;

    const ARN: &str = "arn:aws:iam::123456789012:role/ampkit-agent";
    const NAMESPACE_PATH: &str = "/api/v1/namespaces/grafana-agent";
    const ACCOUNT_PATH: &str = "/api/v1/namespaces/grafana-agent/serviceaccounts/grafana-agent";

    /// The two reads of a run where the namespace and the service account exist.
    fn both_found(ns: Value, sa: Value) -> Vec<Call> {
        vec![
            Call::get(NAMESPACE_PATH).reply(StatusCode::OK, ns),
            Call::get(ACCOUNT_PATH).reply(StatusCode::OK, sa),
        ]
    }

    async fn run_scenario(expected: Vec<Call>, role_arn: Option<&str>) -> StateDoc {
        let (client, server) = testing::serve(expected);
        let mut doc = StateDoc::new();
        ensure(
            "irsa-role",
            client,
            "grafana-agent",
            "grafana-agent",
            role_arn,
            &mut doc,
        )
        .await
        .unwrap();
        server.verify().await;
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
                Call::new(Method::GET, "/api/v1/namespaces/grafana-agent").reply(
                    StatusCode::NOT_FOUND,
                    not_found("namespaces", "grafana-agent"),
                ),
                Call::new(Method::POST, "/api/v1/namespaces")
                    .body(ns.clone())
                    .reply(StatusCode::CREATED, ns),
                Call::new(
                    Method::GET,
                    "/api/v1/namespaces/grafana-agent/serviceaccounts/grafana-agent",
                )
                .reply(
                    StatusCode::NOT_FOUND,
                    not_found("serviceaccounts", "grafana-agent"),
                ),
                Call::new(
                    Method::POST,
                    "/api/v1/namespaces/grafana-agent/serviceaccounts",
                )
                .body(sa.clone())
                .reply(StatusCode::CREATED, sa),
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
        let mut calls = both_found(ns, old);
        calls.push(
            Call::new(Method::PATCH, ACCOUNT_PATH)
                .body(json!({"metadata": {"annotations": {ROLE_ARN_ANNOTATION: ARN}}}))
                .reply(StatusCode::OK, patched),
        );
        let doc = run_scenario(calls, Some(ARN)).await;
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
        let doc = run_scenario(both_found(ns, sa), Some(ARN)).await;
        assert!(doc.resources().is_empty());
    }
}
