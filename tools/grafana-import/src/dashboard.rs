//! Dashboards: where they come from (a file, one shipped in the binary, grafana.com), what
//! makes JSON a dashboard, its panels in one flat list whatever the schema (modern `panels`
//! with rows, collapsed rows holding their own panels, or the legacy `rows` of spans), and the
//! datasource references that point nowhere.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use ampkit::error::{Error, Result};
use ampkit::mesh::{Mesh, MetricFamily};

/// The dashboards shipped in the binary, by the name after `builtin:`: one per family of mesh
/// metrics (Envoy's own statistics; Istio's standard metrics).
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "envoy-global",
        include_str!("../dashboards/envoy-global.json"),
    ),
    ("istio", include_str!("../dashboards/istio.json")),
];

/// `builtin:mesh`: the built-in dashboard of the document's mesh profile.
pub const MESH_BUILTIN: &str = "mesh";

/// Where a `--dashboard` comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Builtin(String),
    /// grafana.com's dashboard id and revision (latest when `None`).
    GrafanaCom {
        id: u64,
        revision: Option<u64>,
    },
}

impl Source {
    /// `FILE`, `builtin:NAME` or `gnet:ID[@REV]`, as `--dashboard` takes them.
    pub fn parse(text: &str) -> std::result::Result<Source, String> {
        if let Some(name) = text.strip_prefix("builtin:") {
            if name == MESH_BUILTIN {
                return Ok(Source::Builtin(name.to_owned()));
            }
            return match BUILTINS.iter().find(|(n, _)| *n == name) {
                Some(_) => Ok(Source::Builtin(name.to_owned())),
                None => Err(format!(
                    "no built-in dashboard `{name}`; there is: {}, and {MESH_BUILTIN} (the mesh profile's)",
                    BUILTINS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
        }
        if let Some(spec) = text.strip_prefix("gnet:") {
            let (id, revision) = match spec.split_once('@') {
                Some((id, rev)) => (id, Some(rev)),
                None => (spec, None),
            };
            let id = id.parse().map_err(|_| {
                format!("`{text}`: the grafana.com id must be a number, e.g. gnet:11022")
            })?;
            let revision = revision
                .map(|r| {
                    r.parse().map_err(|_| {
                        format!("`{text}`: the revision must be a number, e.g. gnet:11022@1")
                    })
                })
                .transpose()?;
            return Ok(Source::GrafanaCom { id, revision });
        }
        if text.is_empty() {
            return Err("an empty dashboard name: give FILE, builtin:NAME or gnet:ID[@REV]".into());
        }
        Ok(Source::File(PathBuf::from(text)))
    }

    /// `builtin:mesh` as the built-in of `mesh`'s metric family; any other source as it is.
    pub fn for_mesh(&self, mesh: Mesh) -> Source {
        match self {
            Source::Builtin(name) if name == MESH_BUILTIN => Source::Builtin(
                match mesh.family() {
                    MetricFamily::RawEnvoy => "envoy-global",
                    MetricFamily::Istio => "istio",
                }
                .to_owned(),
            ),
            other => other.clone(),
        }
    }

    /// How the source is named in messages and in the section.
    pub fn label(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Builtin(name) => format!("builtin:{name}"),
            Source::GrafanaCom { id, revision: None } => format!("gnet:{id}"),
            Source::GrafanaCom {
                id,
                revision: Some(rev),
            } => format!("gnet:{id}@{rev}"),
        }
    }

    /// The dashboard's JSON, checked to be a dashboard.
    pub async fn load(&self, grafana_com: &str) -> Result<Value> {
        let label = self.label();
        let text = match self {
            Source::File(path) => std::fs::read_to_string(path).map_err(|e| {
                Error::input(format!("--dashboard {label}: {e}"))
                    .with_hint("give a readable JSON file, builtin:envoy-global or gnet:ID")
            })?,
            Source::Builtin(name) => BUILTINS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(|| Error::internal(format!("built-in `{name}` vanished")))?,
            Source::GrafanaCom { id, revision } => {
                download(grafana_com, *id, *revision, &label).await?
            }
        };
        let dashboard: Value = serde_json::from_str(&text).map_err(|e| {
            Error::input(format!("--dashboard {label} is not JSON: {e}"))
                .with_hint("give a dashboard as Grafana exports it (Share > Export > Save to file)")
        })?;
        check_is_dashboard(&label, &dashboard)?;
        Ok(dashboard)
    }
}

/// A dashboard from grafana.com; offline, an error that says so and what to do instead.
async fn download(base: &str, id: u64, revision: Option<u64>, label: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    let offline = |e: &dyn std::fmt::Display| {
        Error::remote(format!(
            "--dashboard {label}: grafana.com ({base}) cannot be reached: {e}"
        ))
        .with_hint(format!(
            "on a machine with internet, download {base}/api/dashboards/{id}/revisions/{}/download \
             and pass the file with --dashboard FILE",
            revision.map_or("latest".to_owned(), |r| r.to_string())
        ))
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::internal(format!("could not build the HTTP client: {e}")))?;
    let revision = match revision {
        Some(rev) => rev,
        None => {
            let about: Value = http
                .get(format!("{base}/api/dashboards/{id}"))
                .send()
                .await
                .map_err(|e| offline(&e))?
                .json()
                .await
                .map_err(|e| offline(&e))?;
            about["revision"].as_u64().ok_or_else(|| {
                Error::not_found(format!(
                    "--dashboard {label}: grafana.com has no dashboard {id}"
                ))
                .with_hint("check the id on https://grafana.com/grafana/dashboards/")
            })?
        }
    };
    let response = http
        .get(format!(
            "{base}/api/dashboards/{id}/revisions/{revision}/download"
        ))
        .send()
        .await
        .map_err(|e| offline(&e))?;
    if !response.status().is_success() {
        return Err(Error::not_found(format!(
            "--dashboard {label}: grafana.com answered {} for revision {revision} of {id}",
            response.status()
        ))
        .with_hint("check the id and revision on https://grafana.com/grafana/dashboards/"));
    }
    response.text().await.map_err(|e| offline(&e))
}

/// JSON that Grafana would take as a dashboard: an object with `panels` or legacy `rows`.
pub fn check_is_dashboard(label: &str, dashboard: &Value) -> Result<()> {
    let Some(object) = dashboard.as_object() else {
        return Err(Error::input(format!(
            "--dashboard {label} is not a Grafana dashboard (not a JSON object)"
        ))
        .with_hint("give the dashboard JSON itself, not a list of them"));
    };
    // Grafana 12+'s dynamic dashboards (schema v2: `elements` and `layout`, often wrapped as a
    // resource with `apiVersion` and `spec`). Grafana's import API takes only the classic
    // schema and answers a v2 one with 400 "Dashboard title cannot be empty".
    let spec = object
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(object);
    let v2 = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("dashboard.grafana.app/v2"))
        || (spec.contains_key("elements") && spec.contains_key("layout"));
    if v2 {
        return Err(Error::input(format!(
            "--dashboard {label} is a v2-schema (dynamic) dashboard; Grafana's import API takes \
             the classic (v1) schema only"
        ))
        .with_hint(
            "export it from Grafana as classic JSON (Export > Export as JSON with the v1 \
             resource option), or from a Grafana without dynamic dashboards",
        ));
    }
    if object.contains_key("dashboard") && object.contains_key("meta") {
        return Err(Error::input(format!(
            "--dashboard {label} is Grafana's API answer, not the dashboard"
        ))
        .with_hint("take its `dashboard` field: jq .dashboard FILE > dashboard.json"));
    }
    let panels_ok = object.get("panels").is_none_or(Value::is_array);
    let rows_ok = object.get("rows").is_none_or(Value::is_array);
    if !(object.contains_key("panels") || object.contains_key("rows")) || !panels_ok || !rows_ok {
        return Err(Error::input(format!(
            "--dashboard {label} is not a Grafana dashboard (no `panels` or `rows` list)"
        ))
        .with_hint("give the dashboard JSON as Grafana exports it"));
    }
    Ok(())
}

/// A panel where the dashboard puts it, in Grafana's 24-column grid.
#[derive(Debug, Clone)]
pub struct Placed {
    pub panel: Value,
    pub x: u64,
    pub y: u64,
    pub w: u64,
    pub h: u64,
}

/// Every panel in reading order, each with its grid position: rows themselves, the panels of
/// collapsed rows after them, and legacy `rows` laid out as Grafana migrates them (12 spans to
/// the row, a row's height in pixels over 30-pixel grid cells).
pub fn placed_panels(dashboard: &Value) -> Vec<Placed> {
    let mut placed = Vec::new();
    if let Some(panels) = dashboard["panels"].as_array() {
        for panel in panels {
            placed.push(place(panel));
            for inner in panel["panels"].as_array().into_iter().flatten() {
                placed.push(place(inner));
            }
        }
    }
    let mut y = placed.iter().map(|p| p.y + p.h).max().unwrap_or(0);
    for row in dashboard["rows"].as_array().into_iter().flatten() {
        let height = row["height"]
            .as_str()
            .and_then(|h| h.trim_end_matches("px").parse::<u64>().ok())
            .or_else(|| row["height"].as_u64())
            .map_or(8, |px| px.div_ceil(30).max(2));
        if row["showTitle"].as_bool().unwrap_or(false) || row["title"].as_str().is_some() {
            placed.push(Placed {
                panel: json!({"type": "row", "title": row["title"]}),
                x: 0,
                y,
                w: 24,
                h: 1,
            });
            y += 1;
        }
        let mut x = 0;
        for panel in row["panels"].as_array().into_iter().flatten() {
            let w = (panel["span"].as_f64().unwrap_or(12.0) * 2.0)
                .round()
                .clamp(1.0, 24.0) as u64;
            if x + w > 24 {
                x = 0;
                y += height;
            }
            placed.push(Placed {
                panel: panel.clone(),
                x,
                y,
                w,
                h: height,
            });
            x += w;
        }
        y += height;
    }
    placed
}

fn place(panel: &Value) -> Placed {
    let grid = &panel["gridPos"];
    Placed {
        panel: panel.clone(),
        x: grid["x"].as_u64().unwrap_or(0).min(23),
        y: grid["y"].as_u64().unwrap_or(0),
        w: grid["w"].as_u64().unwrap_or(12).clamp(1, 24),
        h: grid["h"].as_u64().unwrap_or(8).clamp(1, 200),
    }
}

/// A datasource reference in a dashboard: a uid, or a legacy datasource name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    Uid(String),
    Name(String),
}

/// References that stand for something resolved at import or view time, never rewritten:
/// variables, `__inputs`, Grafana's built-in sources, expressions and other plugins' types.
fn is_fixed(text: &str) -> bool {
    text.is_empty()
        || text.contains('$')
        || matches!(
            text,
            "-- Grafana --"
                | "-- Mixed --"
                | "-- Dashboard --"
                | "grafana"
                | "__expr__"
                | "default"
        )
}

fn reference_of(value: &Value) -> Option<Reference> {
    match value {
        Value::String(name) if !is_fixed(name) => Some(Reference::Name(name.clone())),
        Value::Object(object) => {
            let kind = object
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("prometheus");
            let uid = object
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let prometheus_like = kind.contains("prometheus") || kind.is_empty();
            (prometheus_like && !is_fixed(uid)).then(|| Reference::Uid(uid.to_owned()))
        }
        _ => None,
    }
}

/// Every `datasource` field of panels, their targets, variables and annotations.
fn datasource_fields(dashboard: &mut Value) -> Vec<&mut Value> {
    fn panel_fields<'a>(panel: &'a mut Value, out: &mut Vec<&'a mut Value>) {
        let Some(object) = panel.as_object_mut() else {
            return;
        };
        for (key, value) in object.iter_mut() {
            match key.as_str() {
                "datasource" => out.push(value),
                "targets" => {
                    for target in value.as_array_mut().into_iter().flatten() {
                        if let Some(ds) = target.get_mut("datasource") {
                            out.push(ds);
                        }
                    }
                }
                "panels" => {
                    for inner in value.as_array_mut().into_iter().flatten() {
                        panel_fields(inner, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    let Some(object) = dashboard.as_object_mut() else {
        return out;
    };
    for (key, value) in object.iter_mut() {
        match key.as_str() {
            "panels" => {
                for panel in value.as_array_mut().into_iter().flatten() {
                    panel_fields(panel, &mut out);
                }
            }
            "rows" => {
                for row in value.as_array_mut().into_iter().flatten() {
                    panel_fields(row, &mut out);
                }
            }
            "templating" | "annotations" => {
                for item in value["list"].as_array_mut().into_iter().flatten() {
                    if let Some(ds) = item.get_mut("datasource") {
                        out.push(ds);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The distinct hard-coded Prometheus datasource references of a dashboard.
pub fn references(dashboard: &Value) -> Vec<Reference> {
    let mut copy = dashboard.clone();
    let mut found: Vec<Reference> = datasource_fields(&mut copy)
        .into_iter()
        .filter_map(|v| reference_of(v))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// One rewritten reference and how many places held it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewritten {
    pub from: String,
    pub to: String,
    pub places: usize,
}

/// Point every reference in `missing` at our datasource (`{type, uid}`), and say what changed.
pub fn rewrite(
    dashboard: &mut Value,
    missing: &[Reference],
    our_uid: &str,
    our_type: &str,
) -> Vec<Rewritten> {
    let mut counts: Vec<(Reference, usize)> = missing.iter().map(|r| (r.clone(), 0)).collect();
    for field in datasource_fields(dashboard) {
        let Some(found) = reference_of(field) else {
            continue;
        };
        if let Some((_, n)) = counts.iter_mut().find(|(r, _)| *r == found) {
            *n += 1;
            *field = json!({"type": our_type, "uid": our_uid});
        }
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, places)| Rewritten {
            from: match r {
                Reference::Uid(uid) => format!("uid {uid}"),
                Reference::Name(name) => format!("name {name}"),
            },
            to: our_uid.to_owned(),
            places,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            Source::parse("gnet:11022@3"),
            Ok(Source::GrafanaCom {
                id: 11022,
                revision: Some(3)
            })
        );
        assert_eq!(
            Source::parse("gnet:11022"),
            Ok(Source::GrafanaCom {
                id: 11022,
                revision: None
            })
        );
        assert!(Source::parse("gnet:envoy").unwrap_err().contains("number"));
        assert!(
            Source::parse("builtin:nope")
                .unwrap_err()
                .contains("envoy-global")
        );
        assert_eq!(
            Source::parse("builtin:envoy-global"),
            Ok(Source::Builtin("envoy-global".into()))
        );
        assert_eq!(Source::parse("a.json"), Ok(Source::File("a.json".into())));
    }

    #[test]
    fn the_builtin_is_a_dashboard_with_queries() {
        let d: Value = serde_json::from_str(BUILTINS[0].1).unwrap();
        check_is_dashboard("builtin", &d).unwrap();
        let placed = placed_panels(&d);
        assert!(
            placed
                .iter()
                .filter(|p| p.panel["targets"].is_array())
                .count()
                >= 10
        );
        assert!(
            references(&d).is_empty(),
            "the built-in names no datasource"
        );
    }

    #[test]
    fn not_dashboards_are_refused() {
        for bad in [
            json!([1]),
            json!({"title": "x"}),
            json!({"dashboard": {}, "meta": {}}),
        ] {
            assert_eq!(check_is_dashboard("f", &bad).unwrap_err().exit_code(), 2);
        }
    }

    #[test]
    fn legacy_rows_are_laid_out_in_spans() {
        let d = json!({"rows": [
            {"title": "R1", "height": "250px", "panels": [{"span": 6, "title": "a"}, {"span": 6, "title": "b"}, {"span": 12, "title": "c"}]},
            {"panels": [{"span": 4, "title": "d"}]}
        ]});
        let placed = placed_panels(&d);
        let at: Vec<_> = placed
            .iter()
            .map(|p| {
                (
                    p.panel["title"].as_str().unwrap_or("").to_owned(),
                    p.x,
                    p.y,
                    p.w,
                    p.h,
                )
            })
            .collect();
        assert_eq!(
            at,
            vec![
                ("R1".into(), 0, 0, 24, 1),
                ("a".into(), 0, 1, 12, 9),
                ("b".into(), 12, 1, 12, 9),
                ("c".into(), 0, 10, 24, 9),
                ("d".into(), 0, 19, 8, 8),
            ]
        );
    }

    #[test]
    fn hard_coded_references_are_found_and_rewritten_and_variables_are_not() {
        let mut d = json!({
            "templating": {"list": [{"name": "ds", "type": "datasource"}, {"name": "job", "datasource": "Prometheus-old"}]},
            "panels": [
                {"type": "timeseries", "datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"},
                 "targets": [{"expr": "up", "datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}}]},
                {"type": "graph", "datasource": "${DS_PROMETHEUS}"},
                {"type": "row", "datasource": {"type": "datasource", "uid": "grafana"}, "panels": [
                    {"type": "stat", "datasource": {"uid": "$ds"}},
                    {"type": "logs", "datasource": {"type": "loki", "uid": "L1"}}
                ]}
            ],
            "rows": [{"panels": [{"datasource": "-- Grafana --"}, {"datasource": "Prometheus-old"}]}]
        });
        let refs = references(&d);
        assert_eq!(
            refs,
            vec![
                Reference::Uid("P1809F7CD0C75ACF3".into()),
                Reference::Name("Prometheus-old".into())
            ]
        );
        let done = rewrite(&mut d, &refs, "ampkit-ws", "prometheus");
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].places, 2);
        assert_eq!(done[1].places, 2);
        assert_eq!(d["panels"][0]["datasource"]["uid"], "ampkit-ws");
        assert_eq!(d["rows"][0]["panels"][1]["datasource"]["uid"], "ampkit-ws");
        assert_eq!(d["panels"][1]["datasource"], "${DS_PROMETHEUS}");
        assert_eq!(d["panels"][2]["panels"][1]["datasource"]["uid"], "L1");
        assert_eq!(references(&d), vec![Reference::Uid("ampkit-ws".into())]);
    }
}
