//! `grafana-import`: put the workspace's Prometheus datasource (SigV4), a folder and dashboard
//! files into a Grafana, each ensured so that a re-run changes nothing, and record what it
//! created in the ledger and the `grafana` section.
//!
//! This is the first slice of the tool (issue 10): a Grafana given by URL and token, dashboard
//! files with their `__inputs` mapped (every datasource input to our datasource, the others
//! from `--input`). Verification of the panels, the snapshot, built-in and grafana.com
//! dashboards and AMG's service-account path come next.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use ampkit::amp::WorkspaceSection;
use ampkit::cli::{Runtime, Tool};
use ampkit::doc::{Resource, ResourceKind, StateDoc};
use ampkit::error::{Error, Result};
use ampkit::grafana::{DatasourceSpec, Grafana, GrafanaArgs, ImportInput, Outcome};

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "grafana-import";
/// The document's key of [`GrafanaSection`].
pub const SECTION: &str = "grafana";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "amp-workspace ensure --alias AMP-APPMESH | grafana-import --grafana-url https://g-abc.grafana-workspace.eu-west-1.amazonaws.com --dashboard envoy.json",
        "GRAFANA_TOKEN=glsa_... grafana-import --grafana-url http://127.0.0.1:3000 --folder Mesh --dashboard a.json --dashboard b.json < state.json",
        "grafana-import --grafana-url URL --token-file token.txt --dashboard d.json --input VAR_JOB=envoy --overwrite < state.json",
    ],
};

/// Grafana for the workspace: a Prometheus datasource signing with SigV4, a folder, and the
/// dashboards of the given files. Reads the `workspace` section; writes `grafana`.
#[derive(clap::Parser, Debug)]
pub struct Cli {
    #[command(flatten)]
    pub grafana: GrafanaArgs,
    /// Folder the dashboards go into (found or made by a uid derived from the title)
    #[arg(long, value_name = "TITLE", default_value = "Service mesh")]
    pub folder: String,
    /// A dashboard file (Grafana's JSON, as exported or from grafana.com); repeatable
    #[arg(long = "dashboard", value_name = "FILE")]
    pub dashboards: Vec<PathBuf>,
    /// A value for a non-datasource `__inputs` entry, NAME=VALUE (repeatable)
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Replace dashboards that someone changed in Grafana since they were imported
    #[arg(long)]
    pub overwrite: bool,
    /// The datasource's SigV4 auth type: `default` (the credential chain) or `ec2_iam_role`
    /// (AMG's workspace role)
    #[arg(long, value_name = "TYPE", default_value = "default")]
    pub sigv4_auth_type: String,
    /// The datasource plugin: `prometheus`, or `grafana-amazonprometheus-datasource` (AMG 12+)
    #[arg(long, value_name = "TYPE", default_value = "prometheus")]
    pub datasource_type: String,
}

fn parse_input(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// The `grafana` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrafanaSection {
    pub url: String,
    pub version: String,
    pub datasource_uid: String,
    pub folder_uid: String,
    pub dashboards: Vec<DashboardEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DashboardEntry {
    pub uid: String,
    pub title: String,
    pub url: String,
    pub file: String,
    /// The version Grafana gave it when this tool imported it: a re-import sends it back, so
    /// that a change made since (a higher version) is refused rather than lost.
    pub version: u64,
}

/// A uid Grafana takes (at most 40 of `a-z 0-9 - _`), derived from `text`: the same text
/// gives the same uid on every run.
pub fn uid_from(prefix: &str, text: &str) -> String {
    let mut uid = format!("{prefix}-");
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            uid.push(c);
        } else if !uid.ends_with('-') {
            uid.push('-');
        }
    }
    let mut uid: String = uid.trim_end_matches('-').chars().take(40).collect();
    while uid.ends_with('-') {
        uid.pop();
    }
    uid
}

/// A dashboard file and the inputs that satisfy its `__inputs`.
fn dashboard_and_inputs(
    file: &PathBuf,
    datasource_uid: &str,
    given: &[(String, String)],
) -> Result<(Value, Vec<ImportInput>)> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::input(format!("--dashboard {name}: {e}")).with_hint("give a readable JSON file")
    })?;
    let dashboard: Value = serde_json::from_str(&text).map_err(|e| {
        Error::input(format!("--dashboard {name} is not JSON: {e}"))
            .with_hint("give a dashboard as Grafana exports it (Share > Export > Save to file)")
    })?;
    if !dashboard.is_object()
        || !(dashboard.get("panels").is_some() || dashboard.get("rows").is_some())
    {
        return Err(Error::input(format!(
            "--dashboard {name} is not a Grafana dashboard (no `panels` or `rows`)"
        ))
        .with_hint("give the dashboard JSON itself, not an API answer or a list"));
    }
    let mut inputs = Vec::new();
    for wanted in dashboard["__inputs"].as_array().into_iter().flatten() {
        let input_name = wanted["name"].as_str().unwrap_or_default().to_owned();
        let kind = wanted["type"].as_str().unwrap_or_default().to_owned();
        let plugin = wanted["pluginId"].as_str().unwrap_or_default().to_owned();
        let value = if kind == "datasource" && plugin != "__expr__" {
            datasource_uid.to_owned()
        } else if plugin == "__expr__" {
            continue;
        } else if let Some((_, v)) = given.iter().find(|(n, _)| *n == input_name) {
            v.clone()
        } else if let Some(default) = wanted["value"].as_str() {
            default.to_owned()
        } else {
            return Err(Error::usage(format!(
                "--dashboard {name} needs a value for its input `{input_name}` ({kind})"
            ))
            .with_hint(format!("pass --input {input_name}=VALUE")));
        };
        inputs.push(ImportInput {
            name: input_name,
            kind,
            plugin_id: plugin,
            value,
        });
    }
    Ok((dashboard, inputs))
}

/// Run the tool against the document.
pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    let url = cli.grafana.grafana_url.clone().ok_or_else(|| {
        Error::usage("no Grafana: --grafana-url is missing")
            .with_hint("pass --grafana-url https://g-....grafana-workspace.REGION.amazonaws.com")
    })?;
    let workspace = WorkspaceSection::from_doc(doc)?.unwrap_or_default();
    let previous: GrafanaSection = doc.section_as(SECTION)?.unwrap_or_default();
    let (Some(workspace_id), Some(endpoint), Some(region)) = (
        WorkspaceSection::get(&workspace.workspace_id),
        WorkspaceSection::get(&workspace.prometheus_endpoint),
        WorkspaceSection::get(&workspace.region),
    ) else {
        return Err(Error::usage(
            "no workspace: the document has no workspace section with workspaceId, prometheusEndpoint and region",
        )
        .with_hint("pipe in the output of `amp-workspace ensure --alias NAME`"));
    };
    // Every file is read and every input resolved before Grafana is touched.
    let datasource_uid = uid_from("ampkit", workspace_id);
    let mut files = Vec::new();
    for file in &cli.dashboards {
        files.push((
            file,
            dashboard_and_inputs(file, &datasource_uid, &cli.inputs)?,
        ));
    }
    let token = cli.grafana.token()?;
    let grafana = Grafana::connect(&url, token).await?;

    let spec = DatasourceSpec {
        uid: datasource_uid.clone(),
        name: format!("AMP {}", workspace.alias.as_deref().unwrap_or(workspace_id)),
        kind: cli.datasource_type.clone(),
        url: endpoint.to_owned(),
        json_data: serde_json::json!({
            "httpMethod": "POST",
            "sigV4Auth": true,
            "sigV4AuthType": cli.sigv4_auth_type,
            "sigV4Region": region,
        }),
    };
    let mut section = GrafanaSection {
        url: url.clone(),
        version: grafana.version.to_string(),
        datasource_uid: datasource_uid.clone(),
        folder_uid: uid_from("ampkit", &cli.folder),
        dashboards: Vec::new(),
    };
    let ledger = |kind: ResourceKind, id: &str| {
        Resource::new(kind, id, NAME).detail("grafanaUrl", url.as_str())
    };
    if grafana.ensure_datasource(&spec).await? == Outcome::Created {
        doc.push_resource(ledger(ResourceKind::GrafanaDatasource, &datasource_uid));
    }
    if grafana
        .ensure_folder(&section.folder_uid, &cli.folder)
        .await?
        == Outcome::Created
    {
        doc.push_resource(ledger(ResourceKind::GrafanaFolder, &section.folder_uid));
    }
    for (file, (dashboard, inputs)) in files {
        let stored = match dashboard["uid"].as_str() {
            Some(uid) => grafana.dashboard(uid).await?,
            None => None,
        };
        let existed = stored.is_some();
        let mut dashboard = dashboard;
        // Ours from an earlier run: re-imported at the version we left it at, so that Grafana
        // refuses (412) only when someone changed it since. Someone else's: the file's own
        // version, refused unless --overwrite.
        if let Some(uid) = dashboard["uid"].as_str()
            && let Some(ours) = previous.dashboards.iter().find(|d| d.uid == uid)
        {
            dashboard["version"] = serde_json::json!(ours.version);
        }
        let imported = match grafana
            .import_dashboard(&dashboard, &section.folder_uid, &inputs, cli.overwrite)
            .await
        {
            Ok(imported) => imported,
            Err(e) => {
                doc.set_section(SECTION, &section)?;
                return Err(e);
            }
        };
        let version = grafana
            .dashboard(&imported.uid)
            .await?
            .and_then(|d| d["dashboard"]["version"].as_u64())
            .unwrap_or(0);
        if !existed {
            doc.push_resource(
                ledger(ResourceKind::GrafanaDashboard, &imported.uid)
                    .detail("folderUid", section.folder_uid.as_str()),
            );
        }
        section.dashboards.push(DashboardEntry {
            uid: imported.uid,
            title: imported.title,
            url: format!("{}{}", url.trim_end_matches('/'), imported.url),
            file: file.display().to_string(),
            version,
        });
    }
    doc.set_section(SECTION, &section)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_and_fit_grafana() {
        assert_eq!(uid_from("ampkit", "Service mesh"), "ampkit-service-mesh");
        assert_eq!(uid_from("ampkit", "ws-1234"), "ampkit-ws-1234");
        let long = uid_from("ampkit", &"x".repeat(100));
        assert_eq!(long.len(), 40);
        assert_eq!(uid_from("ampkit", "  Ünï  Mesh!! "), "ampkit-n-mesh");
    }

    #[test]
    fn inputs_parse() {
        assert_eq!(parse_input("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_input("=x").is_err());
    }
}
