//! ampkit's end-to-end tests: one test binary, one module per area (as ripgrep's and uutils'
//! `tests/` are laid out), so that the AWS SDKs, axum and reqwest are linked once rather than
//! once per area. The tools run as processes against the local stack that `make test` starts
//! (`scripts/test`); the shared scaffolding is in `tests/support` (the `ampkit_e2e` crate).
//!
//! Tests that read third-party data (a grafana.com dashboard, Grafana's published JSON schema)
//! are `#[ignore]`d with the reason: they run only where `AMPKIT_THIRD_PARTY_FIXTURES` names
//! the folder that holds that data, and `scripts/test` then includes them.

#![allow(clippy::unwrap_used)]

mod amp_iam;
mod amp_local;
mod amp_quotas;
mod amp_workspace;
mod contract;
mod eks_fixture;
mod envoy_traffic;
mod first_contact;
mod grafana_client;
mod grafana_import;
mod grafana_verify;
mod install;
mod irsa_role;
mod local_stack;
mod mesh_profiles;
mod preflight;
mod promql;
mod recipe;
mod render_agent_config;
mod scraper;
mod sns_alert;
mod teardown;
