//! The Employee ATO dashboard: its four tiles and their periods, the tile request body, and
//! the figures of one watchlist scan.
//!
//! A scan's records are folded into a [`ScanTally`] page by page as they arrive (`scan`), so
//! what a scan holds grows with the employees, catalogs and days it counts, never with the
//! records it reads. [`ScanTally::finish`] keeps only what the tiles show ([`Figures`],
//! `figures`), and [`tile_data`] turns those into one tile's answer (`render`). The clock is
//! the caller's: every function here takes the time it needs.

mod figures;
mod render;
mod scan;
#[cfg(test)]
mod tests;

use chrono::TimeDelta;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::Error;
use super::time::Timestamp;

pub use figures::{DayFigures, EmployeeFigures, Figures};
pub use render::{TileAnswer, TileData, tile_data};
pub use scan::ScanTally;

/// The tile's id, as `/tiles` names it.
impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// The period's name, as a tile-data request gives it.
impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many rows the two top-ten tiles show.
const TOP: usize = 10;

/// The most characters of an employee's email a scan keeps (and shows); a longer one is cut.
/// An address is at most 254 characters (RFC 5321), so a real one is never cut.
pub(crate) const MAX_EMAIL_CHARS: usize = 256;

/// The dashboard's tiles, in the order `/tiles` lists them.
///
/// ```
/// use spycloud_relay::domain::TileId;
///
/// assert_eq!(TileId::parse("spycloud_top_breaches"), Some(TileId::TopBreaches));
/// assert_eq!(TileId::parse("SPYCLOUD_TOP_BREACHES"), None); // ids are exact
/// assert_eq!(TileId::ALL.map(TileId::id)[0], "spycloud_exposure_summary");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileId {
    /// `spycloud_exposure_summary`: four (or five) counts.
    ExposureSummary,
    /// `spycloud_exposures_by_day`: records per day by severity.
    ExposuresByDay,
    /// `spycloud_top_breaches`: the breaches with the most records.
    TopBreaches,
    /// `spycloud_most_exposed_employees`: the employees with the most records.
    MostExposedEmployees,
}

impl TileId {
    /// Every tile, in the dashboard's order.
    pub const ALL: [Self; 4] = [
        Self::ExposureSummary,
        Self::ExposuresByDay,
        Self::TopBreaches,
        Self::MostExposedEmployees,
    ];

    /// The tile of `id`, if the dashboard has one (ids are compared exactly).
    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tile| tile.id() == id)
    }

    /// The tile's id.
    pub fn id(self) -> &'static str {
        match self {
            Self::ExposureSummary => "spycloud_exposure_summary",
            Self::ExposuresByDay => "spycloud_exposures_by_day",
            Self::TopBreaches => "spycloud_top_breaches",
            Self::MostExposedEmployees => "spycloud_most_exposed_employees",
        }
    }

    /// The tile as `/tiles` and `/tiles/tile` describe it.
    pub(crate) fn definition(self) -> Definition {
        let (kind, title, short_description, description) = match self {
            Self::ExposureSummary => (
                "metric_group",
                "SpyCloud Employee Exposure",
                "Exposed employees, breach records, plaintext passwords and infected devices",
                "How exposed the company's employees are: the employees with records in \
                 SpyCloud's recovered breach and infostealer data for the period, the records, \
                 the records with a plaintext password, and the distinct infected devices.",
            ),
            Self::ExposuresByDay => (
                "vertical_bar_chart",
                "SpyCloud Exposures by Day",
                "Employee breach records per day, by severity",
                "The employee breach records SpyCloud published each day of the period, split \
                 by the records' severity (0-2 low, 3-5 medium, above 5 high).",
            ),
            Self::TopBreaches => (
                "horizontal_bar_chart",
                "SpyCloud Top Breaches",
                "The breaches behind the most employee records",
                "The ten breach catalogs with the most employee records in the period, most \
                 first.",
            ),
            Self::MostExposedEmployees => (
                "markdown",
                "SpyCloud Most Exposed Employees",
                "The employees with the most breach records",
                "The ten employees with the most breach records in the period: their records, \
                 plaintext passwords, infected devices and latest exposure.",
            ),
        };
        Definition {
            id: self.id(),
            kind,
            title,
            description,
            short_description,
            tags: ["spycloud"],
            periods: Period::ALL.map(Period::as_str),
            default_period: Period::DEFAULT.as_str(),
        }
    }
}

/// A tile as SecureX lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Definition {
    /// The tile id.
    pub id: &'static str,
    /// How SecureX draws it.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The tile's title.
    pub title: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// What it shows, in a line.
    pub short_description: &'static str,
    /// `["spycloud"]`.
    pub tags: [&'static str; 1],
    /// The periods it can show.
    pub periods: [&'static str; 4],
    /// The period shown first.
    pub default_period: &'static str,
}

/// The time spans a tile can show, each ending now.
///
/// ```
/// use spycloud_relay::domain::{Period, Timestamp};
///
/// assert_eq!(Period::parse("last_30_days"), Some(Period::Last30Days));
/// assert_eq!(Period::parse("last_week"), None);
/// assert_eq!(Period::DEFAULT.as_str(), "last_7_days");
///
/// let now = Timestamp::parse("2024-06-01T12:00:00Z")?;
/// assert_eq!(Period::Last24Hours.start(now).to_string(), "2024-05-31T12:00:00.000000Z");
/// # Ok::<(), spycloud_relay::domain::InvalidTimestamp>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// The last 24 hours.
    Last24Hours,
    /// The last 7 days.
    Last7Days,
    /// The last 30 days.
    Last30Days,
    /// The last 90 days.
    Last90Days,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Self; 4] = [
        Self::Last24Hours,
        Self::Last7Days,
        Self::Last30Days,
        Self::Last90Days,
    ];

    /// The period a tile shows first.
    pub const DEFAULT: Self = Self::Last7Days;

    /// The period named `name`, if there is one (names are compared exactly).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|period| period.as_str() == name)
    }

    /// The period's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Last24Hours => "last_24_hours",
            Self::Last7Days => "last_7_days",
            Self::Last30Days => "last_30_days",
            Self::Last90Days => "last_90_days",
        }
    }

    /// How long the period is.
    pub fn span(self) -> TimeDelta {
        match self {
            Self::Last24Hours => TimeDelta::hours(24),
            Self::Last7Days => TimeDelta::days(7),
            Self::Last30Days => TimeDelta::days(30),
            Self::Last90Days => TimeDelta::days(90),
        }
    }

    /// When the period that ends at `now` starts.
    pub fn start(self, now: Timestamp) -> Timestamp {
        now.minus(self.span())
    }
}

/// What a `/tiles/tile` or `/tiles/tile-data` body asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRequest {
    /// The tile.
    pub tile: TileId,
    /// The period, for tile data.
    pub period: Option<Period>,
}

/// Reads a tile body: a JSON object with a string `tile_id` and, when `with_period`, a string
/// `period` (other fields are ignored).
///
/// # Errors
/// An invalid payload for any other body (with the Python relay's error shape,
/// `{"<field>": ["..."]}`), then an unknown tile id, then an unknown period (each an
/// [`Error::InvalidInput`]).
pub fn parse_tile_request(body: &[u8], with_period: bool) -> Result<TileRequest, Error> {
    let invalid = |detail: Value| Error::invalid_payload(format!("{detail}."));
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid(json!({"_schema": ["Invalid input type."]})));
    };
    let mut problems = serde_json::Map::new();
    let mut field = |name: &str| match fields.get(name) {
        Some(Value::String(value)) => Some(value.as_str()),
        None => {
            problems.insert(name.to_owned(), json!(["Missing data for required field."]));
            None
        }
        Some(_) => {
            problems.insert(name.to_owned(), json!(["Not a valid string."]));
            None
        }
    };
    let tile = field("tile_id");
    let period = if with_period { field("period") } else { None };
    let Some(tile) = tile.filter(|_| problems.is_empty()) else {
        return Err(invalid(Value::Object(problems)));
    };
    let tile = TileId::parse(tile).ok_or_else(|| Error::unknown_tile(tile))?;
    let period = period
        .map(|name| Period::parse(name).ok_or_else(|| Error::unknown_period(name)))
        .transpose()?;
    Ok(TileRequest { tile, period })
}
