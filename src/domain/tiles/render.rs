//! One tile's answer, drawn from a scan's figures: the summary, the days, the top breaches
//! and the most exposed employees.

use serde::Serialize;

use crate::domain::breach::SeverityBand;
use crate::domain::catalog::CatalogId;
use crate::domain::credentials::Credentials;
use crate::domain::ctim::{ErrorDoc, ErrorType};
use crate::domain::error::Error;
use crate::domain::time::Timestamp;

use super::{Figures, TileId};

/// A `/tiles/tile-data` answer as SecureX reads it: `{"data": <tile data>}`, with `"errors"`
/// beside it when there are any (the token's invalid module settings as warnings, then at most
/// one fatal error, last, and no data).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TileAnswer {
    /// The tile's figures; none after a fatal error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<TileData>,
    /// Warnings, then at most one fatal error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDoc>,
}

impl TileAnswer {
    /// An answer holding only `error`'s fatal error.
    pub fn failed(error: &Error) -> Self {
        Self {
            data: None,
            errors: vec![error.to_doc()],
        }
    }

    /// The answer to `credentials`' request: their invalid module settings as warnings, then
    /// the data, or the fatal error after them.
    pub fn of(credentials: &Credentials, figures: Result<TileData, Error>) -> Self {
        let mut answer = Self {
            data: None,
            errors: credentials.settings.warnings(),
        };
        match figures {
            Ok(data) => answer.data = Some(data),
            Err(error) => answer.errors.push(error.to_doc()),
        }
        answer
    }

    /// The fatal error, if the answer has one.
    pub fn fatal(&self) -> Option<&ErrorDoc> {
        self.errors.iter().find(|e| e.kind == ErrorType::Fatal)
    }
}

/// A tile's answer, as SecureX reads a `/tiles/tile-data` answer's `data`: its fields are
/// read through its JSON. `Relay::tile_data_as` (feature `spycloud`) makes one.
///
/// ```
/// use std::sync::Arc;
/// use spycloud_relay::{Relay, RelaySettings};
/// use spycloud_relay::adapters::{FixedCredentials, MemorySource};
/// use spycloud_relay::domain::{ApiKey, Credentials, Period, TileId, Timestamp};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let now = Timestamp::parse("2024-06-01T12:00:00Z")?;
/// let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
/// let decoder = Arc::new(FixedCredentials(credentials.clone()));
/// let relay = Relay::new(Arc::new(MemorySource::sample_at(now)), decoder, RelaySettings::default())
///     .with_clock(move || now);
///
/// let tile = relay.tile_data_as(&credentials, TileId::ExposuresByDay, Period::Last24Hours).await?;
/// let json = serde_json::to_value(&tile)?;
/// assert_eq!(json["observed_time"]["start_time"], "2024-05-31T12:00:00.000000Z");
/// assert_eq!(json["valid_time"]["end_time"], "2024-06-01T12:10:00.000000Z"); // kept 10 minutes
/// assert_eq!(json["cache_scope"], "org");
/// assert_eq!(json["data"][0]["key"], "2024-05-31"); // one bar per day
/// assert_eq!(json["keys"][0]["label"], "High"); // the chart's legend
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TileData {
    /// The period the figures cover.
    pub(crate) observed_time: TimeSpan,
    /// From when the scan was made to when it expires.
    pub(crate) valid_time: TimeSpan,
    /// Always `org`: the figures are the organisation's, whoever asks.
    pub(crate) cache_scope: &'static str,
    /// The tile's figures.
    pub(crate) data: TileContent,
    /// The legend of the charts.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) chart: Option<ChartKeys>,
}

/// A start and an end time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeSpan {
    /// The start.
    pub start_time: Timestamp,
    /// The end.
    pub end_time: Timestamp,
}

/// What a tile's `data` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TileContent {
    /// The summary's metrics.
    Metrics(Vec<Metric>),
    /// A chart's bars.
    Bars(Vec<Bar>),
    /// Markdown lines.
    Markdown(Vec<String>),
}

/// One figure of a `metric_group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// The icon SecureX shows beside it.
    pub icon: &'static str,
    /// What it counts.
    pub label: &'static str,
    /// The count.
    pub value: u64,
    /// Always `integer`.
    pub value_unit: &'static str,
}

/// One bar of a chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bar {
    /// The bar's key (a day, a catalog id).
    pub key: String,
    /// Its label.
    pub label: String,
    /// The bar's total.
    pub value: u64,
    /// The bar's segments, one per legend key.
    pub values: Vec<Segment>,
}

/// One segment of a bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// The legend key.
    pub key: &'static str,
    /// Its count.
    pub value: u64,
}

/// A chart's legend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartKeys {
    /// Always `false`: the legend shows.
    pub hide_legend: bool,
    /// Always `string`.
    pub key_type: &'static str,
    /// The legend's keys.
    pub keys: Vec<LegendKey>,
}

/// One legend entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegendKey {
    /// The key segments carry.
    pub key: &'static str,
    /// What the legend shows.
    pub label: &'static str,
}

/// One tile's answer from a scan's `figures`, valid until `expires`. `title` gives a catalog's
/// title, when SpyCloud has one (only the top breaches ask).
pub fn tile_data(
    tile: TileId,
    figures: &Figures,
    expires: Timestamp,
    title: impl Fn(CatalogId) -> Option<String>,
) -> TileData {
    let (data, chart) = match tile {
        TileId::ExposureSummary => (TileContent::Metrics(summary(figures)), None),
        TileId::ExposuresByDay => (
            TileContent::Bars(by_day(figures)),
            Some(legend(
                SeverityBand::ALL
                    .iter()
                    .map(|band| (band.key(), band.label()))
                    .collect(),
            )),
        ),
        TileId::TopBreaches => (
            TileContent::Bars(top_breaches(figures, title)),
            Some(legend(vec![("records", "Records")])),
        ),
        TileId::MostExposedEmployees => (TileContent::Markdown(most_exposed(figures)), None),
    };
    TileData {
        observed_time: TimeSpan {
            start_time: figures.start,
            end_time: figures.end,
        },
        valid_time: TimeSpan {
            start_time: figures.end,
            end_time: expires,
        },
        cache_scope: "org",
        data,
        chart,
    }
}

fn legend(keys: Vec<(&'static str, &'static str)>) -> ChartKeys {
    ChartKeys {
        hide_legend: false,
        key_type: "string",
        keys: keys
            .into_iter()
            .map(|(key, label)| LegendKey { key, label })
            .collect(),
    }
}

fn summary(figures: &Figures) -> Vec<Metric> {
    let metric = |icon, label, value| Metric {
        icon,
        label,
        value,
        value_unit: "integer",
    };
    let mut metrics = vec![
        metric("user", "Exposed employees", figures.employees),
        metric("database", "Breach records", figures.records),
        metric("key", "Plaintext passwords", figures.plaintext),
        metric("desktop", "Infected devices", figures.devices),
    ];
    if let Some(not_read) = figures.not_read {
        metrics.push(metric("warning", "Records not read", not_read));
    }
    metrics
}

fn by_day(figures: &Figures) -> Vec<Bar> {
    figures
        .days
        .iter()
        .map(|day| Bar {
            key: day.day.to_string(),
            label: day.day.label(),
            value: day.counts.iter().sum(),
            values: SeverityBand::ALL
                .iter()
                .zip(day.counts)
                .map(|(band, value)| Segment {
                    key: band.key(),
                    value,
                })
                .collect(),
        })
        .collect()
}

fn top_breaches(figures: &Figures, title: impl Fn(CatalogId) -> Option<String>) -> Vec<Bar> {
    figures
        .top_breaches
        .iter()
        .map(|&(id, records)| Bar {
            key: id.to_string(),
            label: title(id).unwrap_or_else(|| format!("Breach {id}")),
            value: records,
            values: vec![Segment {
                key: "records",
                value: records,
            }],
        })
        .collect()
}

fn most_exposed(figures: &Figures) -> Vec<String> {
    if figures.top_employees.is_empty() {
        return vec!["No exposures in this period.".to_owned()];
    }
    let mut lines = vec![
        "| Employee | Records | Plaintext passwords | Infected devices | Latest |".to_owned(),
        "| --- | ---: | ---: | ---: | --- |".to_owned(),
    ];
    lines.extend(figures.top_employees.iter().map(|row| {
        format!(
            "| {} | {} | {} | {} | {} |",
            markdown_cell(&row.email),
            row.records,
            row.plaintext,
            row.devices,
            row.latest
        )
    }));
    lines
}

/// A value fit for one table cell of SecureX's markdown: `|` (which would end the cell) and
/// what could turn breach data into a link, an image, HTML or code (`\ [ ] < > ``) escaped
/// with a backslash; line breaks (which would end the row) as spaces.
pub(super) fn markdown_cell(value: &str) -> String {
    let mut cell = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '|' | '\\' | '[' | ']' | '<' | '>' | '`' => {
                cell.push('\\');
                cell.push(c);
            }
            '\r' | '\n' => cell.push(' '),
            _ => cell.push(c),
        }
    }
    cell
}
