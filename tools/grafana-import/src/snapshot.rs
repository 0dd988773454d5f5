//! `--snapshot FILE.html`: the verified dashboard drawn without Grafana, as one self-contained
//! page (no script, no network): panels laid out by their `gridPos` on a 24-column grid, time
//! series drawn by plotters' SVG backend with an HTML legend, stat panels as their last value,
//! tables as rows of last values, and empty, error and skipped panels marked as such.
//!
//! Every panel that was verified (ok, empty or error) is one `figure.chart`, so a browser test
//! can count them.

use std::fmt::Write as _;

use plotters::prelude::*;
use time::OffsetDateTime;

use ampkit::error::{Error, Result};

use crate::panel_type::PanelType;
use crate::verify::{Panel, Series, Status, Verified};

/// Grafana's classic palette, so the lines look as people expect.
const PALETTE: [(u8, u8, u8); 10] = [
    (0x73, 0xbf, 0x69),
    (0xf2, 0xcc, 0x0c),
    (0x8a, 0xb8, 0xff),
    (0xff, 0x98, 0x30),
    (0xf2, 0x49, 0x5c),
    (0x56, 0x94, 0xf2),
    (0xb8, 0x77, 0xd9),
    (0x70, 0xdb, 0xed),
    (0xfa, 0xde, 0x2a),
    (0x96, 0xd9, 0x8d),
];

/// Grid geometry in CSS pixels: Grafana's 30-pixel rows with 8-pixel gaps.
const ROW_PX: u64 = 30;
const GAP_PX: u64 = 8;
const PAGE_PX: u64 = 1600;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A value in the panel's unit, short.
pub fn format_value(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let short = |v: f64| {
        let a = v.abs();
        if a >= 1e9 {
            format!("{:.2}G", v / 1e9)
        } else if a >= 1e6 {
            format!("{:.2}M", v / 1e6)
        } else if a >= 1e4 {
            format!("{:.1}k", v / 1e3)
        } else if a >= 100.0 || v == v.trunc() {
            format!("{v:.0}")
        } else if a >= 1.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.3}")
        }
    };
    match unit {
        "ms" => format!("{} ms", short(value)),
        "s" => format!("{} s", short(value)),
        "reqps" => format!("{} req/s", short(value)),
        "percentunit" => format!("{:.1}%", value * 100.0),
        "percent" => format!("{value:.1}%"),
        "bytes" | "decbytes" => format!("{}B", short(value)),
        _ => short(value),
    }
}

fn unit_of(panel: &serde_json::Value) -> String {
    panel["fieldConfig"]["defaults"]["unit"]
        .as_str()
        .or_else(|| panel["format"].as_str())
        .or_else(|| panel["yaxes"][0]["format"].as_str())
        .unwrap_or("short")
        .to_owned()
}

fn last_value(series: &Series) -> f64 {
    series
        .points
        .iter()
        .rev()
        .map(|(_, v)| *v)
        .find(|v| v.is_finite())
        .unwrap_or(f64::NAN)
}

/// A time on the x axis: with seconds when the range is short enough for ticks to fall within
/// one minute (otherwise every label of a one-minute range reads the same).
fn clock(t: f64, range_secs: f64) -> String {
    OffsetDateTime::from_unix_timestamp(t as i64)
        .map(|t| {
            if range_secs < 600.0 {
                format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
            } else {
                format!("{:02}:{:02}", t.hour(), t.minute())
            }
        })
        .unwrap_or_default()
}

/// A time-series chart as SVG text.
fn chart_svg(panel: &Panel, width: u32, height: u32, start: f64, end: f64) -> Result<String> {
    let unit = unit_of(&panel.placed.panel);
    let finite = || {
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|(_, v)| *v))
            .filter(|v| v.is_finite())
    };
    let (mut low, mut high) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    }
    low = low.min(0.0);
    if high <= low {
        high = low + 1.0;
    }
    high += (high - low) * 0.05;
    let mut svg = String::new();
    {
        let failed = |e: &dyn std::fmt::Display| {
            Error::internal(format!(
                "drawing panel `{}` failed: {e}",
                panel.report.title
            ))
        };
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(20)
            .y_label_area_size(64)
            .build_cartesian_2d(start..end, low..high)
            .map_err(|e| failed(&e))?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|t| clock(*t, end - start))
            .y_label_formatter(&|v| format_value(*v, &unit))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| failed(&e))?;
        for (i, series) in panel.series.iter().enumerate() {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            // A gap in the data (NaN) breaks the line, as Grafana draws it.
            let mut run: Vec<(f64, f64)> = Vec::new();
            let mut runs = Vec::new();
            for (t, v) in &series.points {
                if v.is_finite() {
                    run.push((*t, *v));
                } else if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
            runs.push(run);
            for run in runs.into_iter().filter(|r| !r.is_empty()) {
                if let [point] = run[..] {
                    // One point makes no line: a dot, so that a short run is still seen.
                    chart
                        .draw_series(std::iter::once(Circle::new(
                            point,
                            3,
                            RGBColor(r, g, b).filled(),
                        )))
                        .map_err(|e| failed(&e))?;
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(run, RGBColor(r, g, b).stroke_width(2)))
                    .map_err(|e| failed(&e))?;
            }
        }
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(svg)
}

fn legend_html(series: &[Series], unit: &str) -> String {
    let mut html = String::from("<ul class=\"legend\">");
    for (i, s) in series.iter().enumerate().take(12) {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        let _ = write!(
            html,
            "<li><span class=\"swatch\" style=\"background:rgb({r},{g},{b})\"></span>{} <b>{}</b></li>",
            escape(&s.name),
            escape(&format_value(last_value(s), unit))
        );
    }
    if series.len() > 12 {
        let _ = write!(html, "<li>… and {} more</li>", series.len() - 12);
    }
    html.push_str("</ul>");
    html
}

fn panel_html(panel: &Panel, start: f64, end: f64) -> Result<String> {
    let p = &panel.placed;
    let report = &panel.report;
    let style = format!(
        "grid-column:{} / span {};grid-row:{} / span {}",
        p.x + 1,
        p.w,
        p.y + 1,
        p.h
    );
    let title = escape(&report.title);
    let kind = PanelType::of(&report.kind);
    if kind == PanelType::Row {
        return Ok(format!(
            "<h2 class=\"row\" style=\"{style}\">{title}</h2>\n"
        ));
    }
    let status = match report.status {
        Status::Ok => "ok",
        Status::Empty => "empty",
        Status::Error => "error",
        Status::Skipped => "skipped",
    };
    let mut html = format!(
        "<section class=\"panel {status}\" style=\"{style}\" data-status=\"{status}\"><header><span class=\"title\">{title}</span><span class=\"badge\">{status}</span></header>"
    );
    let unit = unit_of(&p.panel);
    match report.status {
        Status::Skipped => {
            let _ = write!(
                html,
                "<p class=\"note\">not verified: {}</p>",
                escape(report.reason.as_deref().unwrap_or("no query"))
            );
        }
        Status::Error => {
            let _ = write!(
                html,
                "<figure class=\"chart\" data-kind=\"error\"><p class=\"message\">{}</p></figure>",
                escape(report.error.as_deref().unwrap_or("error"))
            );
        }
        Status::Empty => {
            let exprs: Vec<String> = report.queries.iter().map(|q| escape(&q.expr)).collect();
            let _ = write!(
                html,
                "<figure class=\"chart\" data-kind=\"empty\"><p class=\"message\">No data</p><code>{}</code></figure>",
                exprs.join("<br>")
            );
        }
        Status::Ok => match kind {
            // Neither queries, so neither is ever verified ok.
            PanelType::Row | PanelType::NoQuery => {}
            PanelType::Stat => {
                let _ = write!(html, "<figure class=\"chart\" data-kind=\"stat\">");
                for s in panel.series.iter().take(4) {
                    let _ = write!(
                        html,
                        "<div class=\"stat\"><span class=\"value\">{}</span><span class=\"name\">{}</span></div>",
                        escape(&format_value(last_value(s), &unit)),
                        // A lone series without labels needs no name under its number.
                        escape(if s.name == "{}" { "" } else { &s.name })
                    );
                }
                html.push_str("</figure>");
            }
            PanelType::Table => {
                // Two queries can return the same label set (11022's "Service Total"): with
                // more than one query, each row says which one it came from, as the refId
                // column of Grafana's table does.
                let several = report.queries.len() > 1;
                let _ = write!(
                    html,
                    "<figure class=\"chart\" data-kind=\"table\"><table><tr>{}<th>Series</th><th>Last</th></tr>",
                    if several { "<th>Query</th>" } else { "" }
                );
                for s in panel.series.iter().take(20) {
                    let query = if several {
                        format!("<td class=\"ref\">{}</td>", escape(&s.ref_id))
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        html,
                        "<tr>{query}<td>{}</td><td>{}</td></tr>",
                        escape(&s.name),
                        escape(&format_value(last_value(s), &unit))
                    );
                }
                html.push_str("</table></figure>");
            }
            PanelType::TimeSeries | PanelType::Unknown => {
                if kind == PanelType::Unknown {
                    let _ = write!(
                        html,
                        "<p class=\"note\">drawn as lines: ampkit does not know the panel type <code>{}</code></p>",
                        escape(&report.kind)
                    );
                }
                let width = (p.w * PAGE_PX / 24).saturating_sub(16).max(120) as u32;
                let body_rows = p.h * ROW_PX + p.h.saturating_sub(1) * GAP_PX;
                let legend_px = 22 * (panel.series.len().min(4) as u64) + 8;
                let height = body_rows.saturating_sub(40 + legend_px).max(80) as u32;
                let svg = chart_svg(panel, width, height, start, end)?;
                let _ = write!(
                    html,
                    "<figure class=\"chart\" data-kind=\"timeseries\">{}{}</figure>",
                    svg.replacen(
                        "<svg ",
                        "<svg class=\"plot\" preserveAspectRatio=\"none\" ",
                        1
                    ),
                    legend_html(&panel.series, &unit)
                );
            }
        },
    }
    html.push_str("</section>\n");
    Ok(html)
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:16px;background:#f4f5f5;color:#24292e}
h1{font-size:20px;margin:0 0 4px} .meta{color:#6a737d;font-size:13px;margin-bottom:12px}
.grid{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:30px;gap:8px;max-width:1600px}
.row{margin:0;font-size:16px;align-self:end;border-bottom:1px solid #d0d7de}
.panel{background:#fff;border:1px solid #d0d7de;border-radius:4px;padding:6px 8px;overflow:hidden;display:flex;flex-direction:column}
.panel header{display:flex;justify-content:space-between;font-size:13px;font-weight:600;margin-bottom:4px}
.badge{font-weight:400;font-size:11px;padding:0 6px;border-radius:8px;background:#dafbe1;color:#116329}
.empty .badge{background:#fff8c5;color:#7d4e00} .error .badge{background:#ffebe9;color:#a40e26}
.skipped .badge{background:#eaeef2;color:#57606a}
figure{margin:0;flex:1;min-height:0;overflow:hidden} svg.plot{width:100%;height:auto;display:block}
.legend{list-style:none;padding:0;margin:2px 0 0;font-size:11px;display:flex;flex-wrap:wrap;gap:2px 12px}
.swatch{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
.stat{display:inline-flex;flex-direction:column;align-items:center;margin:4px 12px}
.stat .value{font-size:28px;font-weight:600;color:#1a7f37} .stat .name{font-size:11px;color:#57606a}
.message{font-size:14px;color:#7d4e00;margin:8px 0} .error .message{color:#a40e26}
code{font-size:11px;color:#57606a;word-break:break-all} .note{font-size:12px;color:#57606a}
table{font-size:12px;border-collapse:collapse} td,th{padding:1px 8px;text-align:left;border-bottom:1px solid #eaeef2}
";

/// The page for one verified dashboard.
pub fn render(verified: &Verified, source: &str) -> Result<String> {
    let start = verified.start.unix_timestamp() as f64;
    let end = verified.end.unix_timestamp() as f64;
    let summary = verified.summary();
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p class=\"meta\">{source} · {from} to {to} UTC · panels: {ok} ok, {empty} empty, {error} error, {skipped} skipped{vars}</p>\n<div class=\"grid\">\n",
        title = escape(&verified.title),
        source = escape(source),
        from = escape(&ampkit::timespec::rfc3339(verified.start)),
        to = escape(&ampkit::timespec::rfc3339(verified.end)),
        ok = summary.ok,
        empty = summary.empty,
        error = summary.error,
        skipped = summary.skipped,
        vars = verified
            .variables
            .iter()
            .map(|v| format!(
                " · {} = {}",
                escape(&v.name),
                escape(&if v.all {
                    "All".to_owned()
                } else {
                    v.values.join(", ")
                })
            ))
            .collect::<String>(),
    );
    for panel in &verified.panels {
        html.push_str(&panel_html(panel, start, end)?);
    }
    html.push_str("</div>\n<p class=\"meta\">Drawn by ampkit grafana-import from the workspace's answers; no Grafana involved.</p>\n</body></html>\n");
    Ok(html)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_read_in_their_unit() {
        assert_eq!(format_value(12.345, "ms"), "12.35 ms");
        assert_eq!(format_value(0.995, "percentunit"), "99.5%");
        assert_eq!(format_value(25000.0, "short"), "25.0k");
        assert_eq!(format_value(3.0, "reqps"), "3 req/s");
        assert_eq!(format_value(f64::NAN, "ms"), "–");
    }

    fn panel_with(points: Vec<Vec<(f64, f64)>>) -> Panel {
        use crate::dashboard::Placed;
        use crate::verify::{PanelReport, Series, Status};
        Panel {
            placed: Placed {
                panel: serde_json::json!({"type": "timeseries"}),
                x: 0,
                y: 0,
                w: 12,
                h: 8,
            },
            report: PanelReport {
                id: Some(1),
                title: "t".into(),
                kind: "timeseries".into(),
                status: Status::Ok,
                series: points.len(),
                error: None,
                reason: None,
                queries: Vec::new(),
            },
            series: points
                .into_iter()
                .map(|points| Series {
                    name: "s".into(),
                    points,
                    ref_id: "A".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_lone_point_is_drawn_as_a_dot_and_a_run_as_a_line() {
        let lone = chart_svg(&panel_with(vec![vec![(50.0, 1.0)]]), 400, 200, 0.0, 100.0).unwrap();
        assert!(lone.contains("<circle"), "{lone}");
        let run = chart_svg(
            &panel_with(vec![vec![(10.0, 1.0), (50.0, 2.0)]]),
            400,
            200,
            0.0,
            100.0,
        )
        .unwrap();
        assert!(!run.contains("<circle"), "{run}");
        assert!(run.contains("<polyline") || run.contains("<path"), "{run}");
    }

    #[test]
    fn short_ranges_label_seconds() {
        // 2026-12-05T05:57:49Z
        let t = 1_796_450_269.0;
        assert_eq!(clock(t, 70.0), "05:57:49");
        assert_eq!(clock(t, 3600.0), "05:57");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
