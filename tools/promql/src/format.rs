//! `--format table`: Prometheus answers as aligned text for people.
//!
//! One column per label (the metric name first), then `TIME` for range samples and `VALUE`.
//! Range results print one row per sample, so a table of a large range is long: it is meant
//! for a terminal, the JSON forms are for programs.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use ampkit::error::{Error, Result};
use ampkit::timespec::unix_to_rfc3339;

/// Render the `data` of an answer as a table. `kind` is the subcommand's kind.
pub fn table(kind: &str, data: &str) -> Result<String> {
    let data: Value = serde_json::from_str(data)
        .map_err(|e| Error::remote(format!("the answer is not JSON: {e}")))?;
    match kind {
        "labels" | "label-values" => {
            let header = if kind == "labels" { "LABEL" } else { "VALUE" };
            let rows = as_array(&data)?
                .iter()
                .map(|v| vec![v.as_str().unwrap_or_default().to_owned()])
                .collect();
            Ok(render(vec![header.into()], rows))
        }
        "series" => {
            let series: Vec<&Map<String, Value>> = as_array(&data)?
                .iter()
                .filter_map(Value::as_object)
                .collect();
            let names = label_names(series.iter().copied());
            let rows = series
                .iter()
                .map(|labels| label_cells(&names, labels))
                .collect();
            Ok(render(names, rows))
        }
        _ => query_table(&data),
    }
}

fn query_table(data: &Value) -> Result<String> {
    let result_type = data["resultType"].as_str().unwrap_or_default();
    let result = &data["result"];
    match result_type {
        "scalar" | "string" => {
            let (time, value) = sample(result);
            Ok(render(
                vec!["TIME".into(), "VALUE".into()],
                vec![vec![time, value]],
            ))
        }
        "vector" | "matrix" => {
            let items = as_array(result)?;
            let metrics = items.iter().filter_map(|s| s["metric"].as_object());
            let names = label_names(metrics);
            let empty = Map::new();
            let mut rows = Vec::new();
            for item in items {
                let labels = item["metric"].as_object().unwrap_or(&empty);
                let cells = label_cells(&names, labels);
                if result_type == "vector" {
                    let (_, value) = sample(&item["value"]);
                    rows.push([cells, vec![value]].concat());
                } else {
                    for point in item["values"].as_array().into_iter().flatten() {
                        let (time, value) = sample(point);
                        rows.push([cells.clone(), vec![time, value]].concat());
                    }
                }
            }
            let mut headers = names;
            if result_type == "matrix" {
                headers.push("TIME".into());
            }
            headers.push("VALUE".into());
            Ok(render(headers, rows))
        }
        other => Err(Error::remote(format!(
            "unknown resultType `{other}` in the answer"
        ))),
    }
}

fn as_array(value: &Value) -> Result<&Vec<Value>> {
    value
        .as_array()
        .ok_or_else(|| Error::remote("the answer's data is not a list"))
}

fn sample(point: &Value) -> (String, String) {
    let time = point[0].as_f64().map(unix_to_rfc3339).unwrap_or_default();
    let value = point[1].as_str().unwrap_or_default().to_owned();
    (time, value)
}

/// Label names of all series: `__name__` first, the rest sorted.
fn label_names<'a>(series: impl Iterator<Item = &'a Map<String, Value>>) -> Vec<String> {
    let mut names = BTreeSet::new();
    let mut has_name = false;
    for labels in series {
        for key in labels.keys() {
            if key == "__name__" {
                has_name = true;
            } else {
                names.insert(key.clone());
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    if has_name {
        out.push("__name__".into());
    }
    out.extend(names);
    out
}

fn label_cells(names: &[String], labels: &Map<String, Value>) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            labels
                .get(n)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn render(headers: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&headers).chain(rows.iter()) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vector_has_a_column_per_label_and_the_value() {
        let data = r#"{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"a"},"value":[1700000000,"1"]},
            {"metric":{"__name__":"up","job":"bb","zone":"z"},"value":[1700000000,"0"]}]}"#;
        let out = table("instant", data).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "__name__  job  zone  VALUE");
        assert_eq!(lines[1], "up        a          1");
        assert_eq!(lines[2], "up        bb   z     0");
    }

    #[test]
    fn matrix_has_a_row_per_sample() {
        let data = r#"{"resultType":"matrix","result":[
            {"metric":{"job":"a"},"values":[[1700000000,"1"],[1700000015,"2"]]}]}"#;
        let out = table("range", data).unwrap();
        assert_eq!(out.lines().count(), 3);
        assert!(out.contains("2023-11-14T22:13:35Z  2"), "{out}");
    }

    #[test]
    fn scalars_and_label_lists() {
        let out = table(
            "instant",
            r#"{"resultType":"scalar","result":[1700000000,"42"]}"#,
        )
        .unwrap();
        assert!(out.ends_with("2023-11-14T22:13:20Z  42\n"), "{out}");
        assert_eq!(table("labels", r#"["a","b"]"#).unwrap(), "LABEL\na\nb\n");
    }
}
