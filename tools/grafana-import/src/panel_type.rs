//! What kind of panel a dashboard's `type` names, for the two decisions grafana-import makes
//! about it: whether it queries (verify), and how it is drawn (snapshot). The drawing is a
//! `match` over [`PanelType`] with no catch-all, so a kind added here is a decision the
//! compiler asks for at each place, not a silent time series.

/// A panel's kind, from its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelType {
    /// Values over time, drawn as lines (`timeseries`, the legacy `graph`, and the other
    /// time-axis panels Grafana ships).
    TimeSeries,
    /// One number per series (`stat`, `singlestat`, `gauge`, `bargauge`, `piechart`).
    Stat,
    /// Rows of last values (`table`, `table-old`).
    Table,
    /// A row header.
    Row,
    /// Static content or links that never query (`text`, `news`, lists, `welcome`).
    NoQuery,
    /// A type ampkit does not know (a plugin, or a newer Grafana's): its queries are verified
    /// and drawn as lines, and the snapshot says so.
    Unknown,
}

impl PanelType {
    /// The kind of a panel whose `type` is `name` (Grafana's default, `graph`, when absent).
    pub fn of(name: &str) -> PanelType {
        match name {
            "timeseries" | "graph" | "trend" | "xychart" | "state-timeline" | "status-history"
            | "barchart" | "heatmap" | "histogram" | "candlestick" => PanelType::TimeSeries,
            "stat" | "singlestat" | "gauge" | "bargauge" | "piechart" => PanelType::Stat,
            "table" | "table-old" => PanelType::Table,
            "row" => PanelType::Row,
            "text" | "news" | "dashlist" | "alertlist" | "annolist" | "welcome" => {
                PanelType::NoQuery
            }
            _ => PanelType::Unknown,
        }
    }

    /// Whether panels of this kind carry queries at all.
    pub fn queries(self) -> bool {
        match self {
            PanelType::TimeSeries | PanelType::Stat | PanelType::Table | PanelType::Unknown => true,
            PanelType::Row | PanelType::NoQuery => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_their_kind_and_unknown_ones_are_said_so() {
        assert_eq!(PanelType::of("graph"), PanelType::TimeSeries);
        assert_eq!(PanelType::of("singlestat"), PanelType::Stat);
        assert_eq!(PanelType::of("table-old"), PanelType::Table);
        assert_eq!(PanelType::of("row"), PanelType::Row);
        assert_eq!(PanelType::of("text"), PanelType::NoQuery);
        assert_eq!(PanelType::of("grafana-worldmap-panel"), PanelType::Unknown);
        assert!(PanelType::of("grafana-worldmap-panel").queries());
        assert!(!PanelType::of("row").queries() && !PanelType::of("dashlist").queries());
    }
}
