//! The Employee ATO dashboard: its four tiles and their periods, the tile request body, and
//! the figures of one watchlist scan.
//!
//! A scan's records are folded into a [`ScanTally`] page by page as they arrive, so what a scan
//! holds grows with the employees, catalogs and days it counts, never with the records it
//! reads. [`ScanTally::finish`] keeps only what the tiles show ([`Figures`]), and [`tile_data`]
//! turns those into one tile's answer. The clock is the caller's: every function here takes
//! the time it needs.

use std::cmp::Reverse;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::breach::{RawRecord, SeverityBand};
use super::catalog::CatalogId;
use super::collector::RecordSink;
use super::credentials::Credentials;
use super::ctim::{ErrorDoc, ErrorType};
use super::email::truncate;
use super::error::Error;
use super::hashed::{Hashes, Table};
use super::time::{Day, Timestamp};

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

/// The most employees (and devices, and pairs) a scan makes room for at once, from SpyCloud's
/// `hits` (about 43 MiB for the three tables); past it, its tables grow.
const MAX_PRESIZED: u64 = 1 << 20;

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

/// Counts of one employee (a lower-cased email, by its hash) during a scan.
#[derive(Debug, Clone, Copy, Default)]
struct Employee {
    /// Records (saturating: a scan reads 100 x `RELAY_MAX_RECORDS` at most).
    records: u32,
    plaintext: u32,
    /// Distinct devices among them.
    devices: u32,
    /// The newest record's day, as days after the period's first day (a period has 91 at most).
    latest: u8,
}

/// An employee that may be among the most exposed: its email (cut), kept only while it is.
#[derive(Debug, Clone)]
struct Leader {
    key: u64,
    email: String,
    records: u32,
}

/// A catalog's records during a scan.
#[derive(Debug, Clone, Copy, Default)]
struct Breach {
    id: u64,
    records: u64,
}

/// A watchlist scan in progress: the records of one period, folded page by page.
///
/// What it holds is bounded whatever SpyCloud sends: employees, devices, (employee, device)
/// pairs and catalogs are counted in compact tables keyed by 64-bit hashes (see
/// [`hashed`](super::hashed)), a few tens of bytes per distinct one, however long their strings;
/// emails are kept only for the [`TOP`] employees with the most records so far (cut to
/// [`MAX_EMAIL_CHARS`]), which are the most exposed at the end: an employee's count only grows
/// with its own records, so when it last grows it is weighed against every employee it can
/// finally be behind.
#[derive(Debug)]
pub struct ScanTally {
    start: Timestamp,
    end: Timestamp,
    first_day: Day,
    limit: u64,
    read: u64,
    hits: Option<u64>,
    records: u64,
    plaintext: u64,
    hashes: Hashes,
    devices: Table<()>,
    /// (employee, device) pairs met, for each employee's distinct devices.
    pairs: Table<()>,
    employees: Table<Employee>,
    /// At most [`TOP`]: the employees with the most records so far, ties by email.
    leaders: Vec<Leader>,
    breaches: Table<Breach>,
    /// Records per day from the period start's date to today's, by [`SeverityBand::ALL`].
    days: Vec<[u64; 4]>,
}

impl ScanTally {
    /// A scan of `period` ending at `now` that reads at most `limit` records.
    pub fn new(period: Period, now: Timestamp, limit: u64) -> Self {
        let start = period.start(now);
        let first_day = start.day();
        let day_count = usize::try_from(first_day.days_until(now.day()) + 1).unwrap_or(1);
        Self {
            start,
            end: now,
            first_day,
            limit,
            read: 0,
            hits: None,
            records: 0,
            plaintext: 0,
            hashes: Hashes::default(),
            devices: Table::default(),
            pairs: Table::default(),
            employees: Table::default(),
            leaders: Vec::with_capacity(TOP + 1),
            breaches: Table::default(),
            days: vec![[0; 4]; day_count],
        }
    }

    /// The first day SpyCloud must send records of: the period start's UTC date.
    pub fn since(&self) -> Day {
        self.first_day
    }

    /// Counts one record, when it was published within the period.
    fn count(&mut self, record: &RawRecord) {
        let Some(published) = record.published() else {
            return;
        };
        if published < self.start || published > self.end {
            return;
        }
        let day = usize::try_from(self.first_day.days_until(published.day())).unwrap_or(0);
        let band = SeverityBand::of(record.severity());
        let band_index = SeverityBand::ALL
            .iter()
            .position(|b| *b == band)
            .unwrap_or(3);
        if let Some(counts) = self.days.get_mut(day) {
            counts[band_index] += 1;
        }
        self.records += 1;
        let plaintext = has_plaintext_password(record);
        self.plaintext += u64::from(plaintext);
        let device = record
            .text("infected_machine_id")
            .map(|device| self.hashes.of(device));
        if let Some(device) = device {
            self.devices.insert(device);
        }
        if let Some(id) = record.source_id() {
            let (breach, _) = self.breaches.entry(self.hashes.of(&id.0));
            breach.id = id.0;
            breach.records += 1;
        }
        if let Some(email) = record.text("email") {
            let email = email.to_lowercase();
            let key = self.hashes.of(&email);
            let new_device =
                device.is_some_and(|device| self.pairs.insert(self.hashes.of(&(key, device))));
            let (employee, _) = self.employees.entry(key);
            employee.records = employee.records.saturating_add(1);
            employee.plaintext = employee.plaintext.saturating_add(u32::from(plaintext));
            employee.devices = employee.devices.saturating_add(u32::from(new_device));
            employee.latest = employee.latest.max(u8::try_from(day).unwrap_or(u8::MAX));
            let records = employee.records;
            self.lead(key, &email, records);
        }
    }

    /// Weighs the employee of `key` (its lower-cased `email`), which now has `records`,
    /// against the leaders: most records first, ties by email (cut), then by key.
    fn lead(&mut self, key: u64, email: &str, records: u32) {
        if let Some(leader) = self.leaders.iter_mut().find(|leader| leader.key == key) {
            leader.records = records;
            return;
        }
        let email = truncate(email, MAX_EMAIL_CHARS);
        if self.leaders.len() == TOP {
            let Some((last, _)) = self
                .leaders
                .iter()
                .enumerate()
                .max_by_key(|(_, l)| (Reverse(l.records), l.email.as_str(), l.key))
            else {
                return;
            };
            let behind = &self.leaders[last];
            if (Reverse(records), email, key)
                >= (Reverse(behind.records), behind.email.as_str(), behind.key)
            {
                return;
            }
            self.leaders.swap_remove(last);
        }
        self.leaders.push(Leader {
            key,
            email: email.to_owned(),
            records,
        });
    }

    /// What the tiles show of this scan.
    pub fn finish(self) -> Figures {
        let mut breaches: Vec<(CatalogId, u64)> = self
            .breaches
            .values()
            .map(|breach| (CatalogId(breach.id), breach.records))
            .collect();
        breaches.sort_unstable_by_key(|&(id, records)| (Reverse(records), id));
        breaches.truncate(TOP);
        let mut leaders = self.leaders;
        leaders.sort_unstable_by(|a, b| {
            (Reverse(a.records), &a.email, a.key).cmp(&(Reverse(b.records), &b.email, b.key))
        });
        let first_day = self.first_day;
        let employees = leaders
            .into_iter()
            .filter_map(|leader| {
                let employee = self.employees.get(leader.key)?;
                let latest = (0..employee.latest).fold(first_day, |day, _| day.next());
                Some(EmployeeFigures {
                    email: leader.email,
                    records: u64::from(employee.records),
                    plaintext: u64::from(employee.plaintext),
                    devices: u64::from(employee.devices),
                    latest,
                })
            })
            .collect();
        let mut day = self.first_day;
        let days = self
            .days
            .into_iter()
            .map(|counts| {
                let figures = DayFigures { day, counts };
                day = day.next();
                figures
            })
            .collect();
        Figures {
            start: self.start,
            end: self.end,
            employees: self.employees.len() as u64,
            records: self.records,
            plaintext: self.plaintext,
            devices: self.devices.len() as u64,
            not_read: self
                .hits
                .filter(|&hits| hits > self.read)
                .map(|hits| hits - self.read),
            days,
            top_breaches: breaches,
            top_employees: employees,
        }
    }
}

/// A scan's records are folded one by one as the source reads them: at most the limit are
/// read, and SpyCloud's `hits` (the first page's figure is kept) says how many were not.
impl RecordSink for ScanTally {
    fn wants_more(&self) -> bool {
        self.read < self.limit
    }

    fn hits(&mut self, hits: u64) {
        if self.hits.is_none() {
            self.hits = Some(hits);
            // Room for as many employees, devices and pairs as records to come, at once: a
            // table that grows holds its old and new slots for a moment.
            if self.employees.len() == 0 && self.devices.len() == 0 {
                let records = hits.min(self.limit).min(MAX_PRESIZED);
                let records = usize::try_from(records).unwrap_or(0);
                self.employees = Table::with_capacity(records);
                self.devices = Table::with_capacity(records);
                self.pairs = Table::with_capacity(records);
            }
        }
    }

    fn add(&mut self, record: RawRecord) {
        if self.read >= self.limit {
            return;
        }
        self.read += 1;
        self.count(&record);
    }
}

/// The plaintext rule: a non-empty `password_plaintext`, or a `password_type` of `plaintext`
/// (any case) with a non-empty `password`.
fn has_plaintext_password(record: &RawRecord) -> bool {
    record.text("password_plaintext").is_some()
        || (record
            .text("password_type")
            .is_some_and(|kind| kind.eq_ignore_ascii_case("plaintext"))
            && record.text("password").is_some())
}

/// Everything the four tiles show of one scan. It serializes to JSON it reads back as itself
/// (times to the microsecond): replicas share scans so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// The period's start.
    pub start: Timestamp,
    /// When the scan was made: the period's end.
    pub end: Timestamp,
    /// Distinct lower-cased non-empty emails.
    pub employees: u64,
    /// Records published within the period.
    pub records: u64,
    /// Records with a plaintext password.
    pub plaintext: u64,
    /// Distinct non-empty `infected_machine_id`s.
    pub devices: u64,
    /// Records SpyCloud holds that the scan did not read (it stopped at its limit).
    pub not_read: Option<u64>,
    /// One entry per day of the period, oldest first.
    pub days: Vec<DayFigures>,
    /// The catalogs with the most records, most first, ties by the smaller id.
    pub top_breaches: Vec<(CatalogId, u64)>,
    /// The employees with the most records, most first, ties by email.
    pub top_employees: Vec<EmployeeFigures>,
}

impl Figures {
    /// Whether these figures are ones a scan of `period` can make, as the contract allows an
    /// answer: the period's start, one day per day of the period in order, at most 10 rows in
    /// each top table (sorted as the tiles sort them), and counts that add up. Figures read
    /// back from a shared cache that break this are a miss, never an answer.
    ///
    /// # Errors
    /// What is wrong, for the log.
    pub(crate) fn fit(&self, period: Period) -> Result<(), &'static str> {
        if self.start != period.start(self.end) {
            return Err("the period's start is not the period's");
        }
        let first_day = self.start.day();
        let day_count = first_day.days_until(self.end.day()) + 1;
        if i64::try_from(self.days.len()) != Ok(day_count)
            || self
                .days
                .iter()
                .zip(std::iter::successors(Some(first_day), |day| {
                    Some(day.next())
                }))
                .any(|(figures, day)| figures.day != day)
        {
            return Err("its days are not the period's");
        }
        let by_day = self
            .days
            .iter()
            .flat_map(|day| day.counts)
            .try_fold(0u64, u64::checked_add);
        if by_day != Some(self.records) {
            return Err("its days do not add up to its records");
        }
        if self.plaintext > self.records
            || self.devices > self.records
            || self.employees > self.records
        {
            return Err("it counts more than its records");
        }
        if self.top_breaches.len() > TOP || self.top_employees.len() > TOP {
            return Err("a top table has more than 10 rows");
        }
        let breaches = self.top_breaches.iter().map(|&(_, records)| records);
        if breaches.clone().try_fold(0u64, u64::checked_add) > Some(self.records)
            || self
                .top_breaches
                .windows(2)
                .any(|pair| (Reverse(pair[0].1), pair[0].0) >= (Reverse(pair[1].1), pair[1].0))
        {
            return Err("its top breaches do not add up");
        }
        let employees = &self.top_employees;
        let (first, last) = (first_day, self.end.day());
        if employees.len() as u64 > self.employees
            || employees
                .iter()
                .map(|row| row.records)
                .try_fold(0u64, u64::checked_add)
                > Some(self.records)
            || employees.iter().any(|row| {
                row.records == 0
                    || row.plaintext > row.records
                    || row.devices > row.records
                    || row.devices > self.devices
                    || row.latest < first
                    || row.latest > last
                    || row.email.chars().count() > MAX_EMAIL_CHARS
            })
            || employees.windows(2).any(|pair| {
                (Reverse(pair[0].records), &pair[0].email)
                    > (Reverse(pair[1].records), &pair[1].email)
            })
        {
            return Err("its most exposed employees do not add up");
        }
        Ok(())
    }
}

/// One day's records by severity band, in [`SeverityBand::ALL`]'s order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// The UTC day.
    pub day: Day,
    /// Records that day: high, medium, low, unknown.
    pub counts: [u64; 4],
}

/// One row of the most exposed employees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployeeFigures {
    /// The lower-cased email.
    pub email: String,
    /// Records of the period.
    pub records: u64,
    /// Of those, with a plaintext password.
    pub plaintext: u64,
    /// Distinct infected devices among them.
    pub devices: u64,
    /// The day of the newest record.
    pub latest: Day,
}

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
fn markdown_cell(value: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn tiles_and_periods_display_as_they_parse() {
        for tile in TileId::ALL {
            assert_eq!(TileId::parse(&tile.to_string()), Some(tile));
        }
        for period in Period::ALL {
            assert_eq!(Period::parse(&period.to_string()), Some(period));
        }
        assert_eq!(Period::Last90Days.to_string(), "last_90_days");
    }

    const NOW: &str = "2026-03-10T12:00:00Z";

    fn now() -> Timestamp {
        Timestamp::parse(NOW).unwrap()
    }

    fn record(fields: Value) -> RawRecord {
        serde_json::from_value(fields).unwrap()
    }

    /// A record published at `date` with `fields` on top.
    fn at(date: &str, mut fields: Value) -> RawRecord {
        fields["spycloud_publish_date"] = json!(date);
        record(fields)
    }

    /// One page fed as a source feeds it: its `hits` (when said), then records while the
    /// tally wants more; whether it still wants more after the page.
    fn page(scan_tally: &mut ScanTally, hits: Option<u64>, records: Vec<RawRecord>) -> bool {
        if let Some(hits) = hits {
            scan_tally.hits(hits);
        }
        for record in records {
            if !scan_tally.wants_more() {
                break;
            }
            scan_tally.add(record);
        }
        scan_tally.wants_more()
    }

    fn scan(period: Period, records: Vec<RawRecord>) -> Figures {
        let mut scan_tally = ScanTally::new(period, now(), 1_000);
        page(&mut scan_tally, Some(records.len() as u64), records);
        scan_tally.finish()
    }

    fn data(tile: TileId, figures: &Figures) -> Value {
        let expires = figures.end.plus(TimeDelta::minutes(10));
        let title = |id: CatalogId| (id.0 == 1).then(|| "One".to_owned());
        serde_json::to_value(tile_data(tile, figures, expires, title)).unwrap()
    }

    #[test]
    fn tiles_and_periods_are_parsed_exactly() {
        for tile in TileId::ALL {
            assert_eq!(TileId::parse(tile.id()), Some(tile));
        }
        assert_eq!(TileId::parse("SPYCLOUD_TOP_BREACHES"), None);
        assert_eq!(Period::parse("last_30_days"), Some(Period::Last30Days));
        assert_eq!(Period::parse("last_year"), None);
        let definition = serde_json::to_value(TileId::TopBreaches.definition()).unwrap();
        assert_eq!(definition["type"], "horizontal_bar_chart");
        assert_eq!(
            definition["periods"],
            json!([
                "last_24_hours",
                "last_7_days",
                "last_30_days",
                "last_90_days"
            ])
        );
        assert_eq!(definition["default_period"], "last_7_days");
        assert_eq!(definition["tags"], json!(["spycloud"]));
    }

    #[test]
    fn tile_bodies_are_read_with_the_contracts_errors() {
        let read = |body: &str, with_period| {
            parse_tile_request(body.as_bytes(), with_period).map_err(|e| (e.code(), e.message()))
        };
        assert_eq!(
            read(r#"{"tile_id":"spycloud_top_breaches","x":1}"#, false),
            Ok(TileRequest {
                tile: TileId::TopBreaches,
                period: None
            })
        );
        assert_eq!(
            read(
                r#"{"tile_id":"spycloud_top_breaches","period":"last_90_days"}"#,
                true
            ),
            Ok(TileRequest {
                tile: TileId::TopBreaches,
                period: Some(Period::Last90Days)
            })
        );
        for (body, detail) in [
            ("", r#"{"_schema":["Invalid input type."]}"#),
            ("[1]", r#"{"_schema":["Invalid input type."]}"#),
            ("{}", r#"{"tile_id":["Missing data for required field."]}"#),
            (r#"{"tile_id":7}"#, r#"{"tile_id":["Not a valid string."]}"#),
        ] {
            assert_eq!(
                read(body, false),
                Err((
                    "invalid argument",
                    format!("Invalid JSON payload received. {detail}.")
                )),
                "{body}"
            );
        }
        let no_period = read(r#"{"tile_id":"nope"}"#, true).unwrap_err();
        assert_eq!(
            no_period.1,
            r#"Invalid JSON payload received. {"period":["Missing data for required field."]}."#
        );
        assert_eq!(
            read(r#"{"tile_id":"nope","period":"last_year"}"#, true),
            Err(("invalid argument", "Unknown tile_id: nope".to_owned()))
        );
        assert_eq!(
            read(
                r#"{"tile_id":"spycloud_top_breaches","period":"last_year"}"#,
                true
            ),
            Err(("invalid argument", "Unknown period: last_year".to_owned()))
        );
    }

    #[test]
    fn the_period_counts_from_its_start_to_now_both_included() {
        let start = "2026-03-09T12:00:00Z";
        let records = vec![
            at("2026-03-09T11:59:59Z", json!({})),
            at(start, json!({})),
            at(NOW, json!({})),
            at("2026-03-10T12:00:01Z", json!({})),
            at("not a date", json!({})),
            record(json!({"severity": 2})),
        ];
        let figures = scan(Period::Last24Hours, records);
        assert_eq!(figures.records, 2);
        assert_eq!(figures.start.to_string(), "2026-03-09T12:00:00.000000Z");
        let days: Vec<_> = figures.days.iter().map(|d| d.day.to_string()).collect();
        assert_eq!(days, ["2026-03-09", "2026-03-10"]);
        for (period, days) in [
            (Period::Last7Days, 8),
            (Period::Last30Days, 31),
            (Period::Last90Days, 91),
        ] {
            let scan_tally = ScanTally::new(period, now(), 1);
            assert_eq!(
                scan_tally.since(),
                now().minus(period.span()).day(),
                "{period:?}"
            );
            assert_eq!(scan_tally.finish().days.len(), days, "{period:?}");
        }
    }

    #[test]
    fn employees_are_distinct_case_folded_non_empty_emails() {
        let figures = scan(
            Period::Last7Days,
            vec![
                at(NOW, json!({"email": "Alice@Example.com"})),
                at(NOW, json!({"email": "alice@example.COM"})),
                at(NOW, json!({"email": "bob@example.com"})),
                at(NOW, json!({"email": ""})),
                at(NOW, json!({"email": null})),
                at(NOW, json!({})),
            ],
        );
        assert_eq!((figures.employees, figures.records), (2, 6));
        assert_eq!(figures.top_employees[0].email, "alice@example.com");
        assert_eq!(figures.top_employees[0].records, 2);
    }

    #[test]
    fn plaintext_passwords_and_infected_devices() {
        let figures = scan(
            Period::Last7Days,
            vec![
                // Counted: a plaintext field, or a plaintext type with a password.
                at(NOW, json!({"password_plaintext": "p"})),
                at(NOW, json!({"password_type": "PlainText", "password": "p"})),
                // Not counted.
                at(NOW, json!({"password_plaintext": ""})),
                at(NOW, json!({"password_type": "plaintext", "password": ""})),
                at(NOW, json!({"password_type": "plaintext"})),
                at(NOW, json!({"password_type": "md5", "password": "5f4d"})),
                at(NOW, json!({"password": "p"})),
                at(NOW, json!({"infected_machine_id": "m1"})),
                at(NOW, json!({"infected_machine_id": "m1"})),
                at(NOW, json!({"infected_machine_id": "m2"})),
                at(NOW, json!({"infected_machine_id": ""})),
            ],
        );
        assert_eq!((figures.plaintext, figures.devices), (2, 2));
    }

    #[test]
    fn days_split_records_by_severity_band_zeros_included() {
        let figures = scan(
            Period::Last7Days,
            vec![
                at("2026-03-04T00:00:00Z", json!({"severity": 30})),
                at("2026-03-04T23:59:59Z", json!({"severity": 6})),
                at("2026-03-04T10:00:00Z", json!({"severity": 5})),
                at("2026-03-10T00:00:00Z", json!({"severity": 3})),
                at("2026-03-10T00:00:00Z", json!({"severity": 2})),
                at("2026-03-10T00:00:00Z", json!({"severity": 0})),
                at("2026-03-10T00:00:00Z", json!({"severity": "high"})),
                at("2026-03-10T00:00:00Z", json!({})),
            ],
        );
        let bars = data(TileId::ExposuresByDay, &figures);
        let rows = bars["data"].as_array().unwrap();
        assert_eq!(rows.len(), 8);
        assert_eq!(
            rows[0],
            json!({"key": "2026-03-03", "label": "03/03", "value": 0, "values": [
                {"key": "high", "value": 0}, {"key": "medium", "value": 0},
                {"key": "low", "value": 0}, {"key": "unknown", "value": 0}]})
        );
        assert_eq!(rows[1]["value"], 3);
        assert_eq!(
            rows[1]["values"],
            json!([{"key": "high", "value": 2}, {"key": "medium", "value": 1},
                   {"key": "low", "value": 0}, {"key": "unknown", "value": 0}])
        );
        assert_eq!(
            rows[7],
            json!({"key": "2026-03-10", "label": "03/10", "value": 5, "values": [
                {"key": "high", "value": 0}, {"key": "medium", "value": 1},
                {"key": "low", "value": 2}, {"key": "unknown", "value": 2}]})
        );
        assert_eq!(bars["hide_legend"], false);
        assert_eq!(bars["key_type"], "string");
        assert_eq!(
            bars["keys"],
            json!([{"key": "high", "label": "High"}, {"key": "medium", "label": "Medium"},
                   {"key": "low", "label": "Low"}, {"key": "unknown", "label": "Unknown"}])
        );
    }

    #[test]
    fn top_breaches_most_first_ties_by_the_smaller_id_ten_at_most() {
        let mut records = Vec::new();
        // Catalog n has n records for n in 1..=12, then 3 and 30 get as many as 12 and 4.
        for id in 1..=12u64 {
            records.extend((0..id).map(|_| at(NOW, json!({"source_id": id}))));
        }
        records.extend((0..9).map(|_| at(NOW, json!({"source_id": 3}))));
        records.extend((0..4).map(|_| at(NOW, json!({"source_id": "30"}))));
        records.push(at(NOW, json!({"source_id": [1]})));
        let figures = scan(Period::Last7Days, records);
        let order: Vec<_> = figures
            .top_breaches
            .iter()
            .map(|&(id, n)| (id.0, n))
            .collect();
        assert_eq!(
            order,
            [
                (3, 12),
                (12, 12),
                (11, 11),
                (10, 10),
                (9, 9),
                (8, 8),
                (7, 7),
                (6, 6),
                (5, 5),
                (4, 4)
            ]
        );
        let bars = data(TileId::TopBreaches, &figures);
        assert_eq!(
            bars["data"][0],
            json!({"key": "3", "label": "Breach 3", "value": 12, "values": [{"key": "records", "value": 12}]})
        );
        assert_eq!(
            bars["keys"],
            json!([{"key": "records", "label": "Records"}])
        );
        let one = scan(Period::Last7Days, vec![at(NOW, json!({"source_id": 1}))]);
        assert_eq!(data(TileId::TopBreaches, &one)["data"][0]["label"], "One");
    }

    #[test]
    fn most_exposed_employees_as_markdown_ties_by_email_and_pipes_escaped() {
        let mut records = vec![
            at(
                "2026-03-05T00:00:00Z",
                json!({"email": "b@x.com", "password_plaintext": "p", "infected_machine_id": "m1"}),
            ),
            at(
                "2026-03-08T00:00:00Z",
                json!({"email": "B@x.com", "infected_machine_id": "m1"}),
            ),
            at("2026-03-06T00:00:00Z", json!({"email": "a|b@x.com"})),
            at(
                "2026-03-07T00:00:00Z",
                json!({"email": "a|b@x.com", "infected_machine_id": "m2"}),
            ),
            at("2026-03-09T00:00:00Z", json!({"email": "c@x.com"})),
        ];
        for n in 0..10 {
            records.push(at(NOW, json!({"email": format!("z{n:02}@x.com")})));
        }
        let figures = scan(Period::Last7Days, records);
        let lines = data(TileId::MostExposedEmployees, &figures)["data"].clone();
        let lines: Vec<&str> = lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(lines.len(), 12);
        assert_eq!(
            &lines[..5],
            [
                "| Employee | Records | Plaintext passwords | Infected devices | Latest |",
                "| --- | ---: | ---: | ---: | --- |",
                "| a\\|b@x.com | 2 | 0 | 1 | 2026-03-07 |",
                "| b@x.com | 2 | 1 | 1 | 2026-03-08 |",
                "| c@x.com | 1 | 0 | 0 | 2026-03-09 |",
            ]
        );
        assert_eq!(lines[11], "| z06@x.com | 1 | 0 | 0 | 2026-03-10 |");
        assert_eq!(markdown_cell("a\nb|c"), "a b\\|c");
        assert_eq!(
            markdown_cell("[x](http://e)<img>`c`\\@x.com"),
            "\\[x\\](http://e)\\<img\\>\\`c\\`\\\\@x.com"
        );
        assert_eq!(
            markdown_cell("first_last+tag@x.com"),
            "first_last+tag@x.com"
        );
    }

    #[test]
    fn an_empty_period_shows_zeros_and_says_so() {
        let figures = scan(
            Period::Last24Hours,
            vec![at("2020-01-01T00:00:00Z", json!({"email": "old@x.com"}))],
        );
        let summary = data(TileId::ExposureSummary, &figures);
        let values: Vec<_> = summary["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["label"].as_str().unwrap(), m["value"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            values,
            [
                ("Exposed employees", 0),
                ("Breach records", 0),
                ("Plaintext passwords", 0),
                ("Infected devices", 0)
            ]
        );
        assert_eq!(summary["data"][0]["value_unit"], "integer");
        assert!(summary.get("keys").is_none());
        assert_eq!(
            data(TileId::MostExposedEmployees, &figures)["data"],
            json!(["No exposures in this period."])
        );
        assert_eq!(data(TileId::TopBreaches, &figures)["data"], json!([]));
        let days = data(TileId::ExposuresByDay, &figures);
        assert!(
            days["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["value"] == 0)
        );
    }

    #[test]
    fn a_scan_stops_at_its_limit_and_says_how_many_records_it_did_not_read() {
        let records = |n: usize| (0..n).map(|_| at(NOW, json!({}))).collect::<Vec<_>>();
        let mut scan_tally = ScanTally::new(Period::Last7Days, now(), 5);
        assert!(page(&mut scan_tally, Some(12), records(3)));
        // The second page's hits do not replace the first's; only 2 of its 3 records are read.
        assert!(!page(&mut scan_tally, Some(99), records(3)));
        // A record offered past the limit anyway is not counted.
        scan_tally.add(at(NOW, json!({})));
        let figures = scan_tally.finish();
        assert_eq!((figures.records, figures.not_read), (5, Some(7)));
        let summary = data(TileId::ExposureSummary, &figures);
        assert_eq!(
            summary["data"][4],
            json!({"icon": "warning", "label": "Records not read", "value": 7, "value_unit": "integer"})
        );
        // Every record read, or no hits said: no fifth figure.
        let mut whole = ScanTally::new(Period::Last7Days, now(), 5);
        assert!(page(&mut whole, Some(3), records(3)));
        assert_eq!(whole.finish().not_read, None);
        let mut silent = ScanTally::new(Period::Last7Days, now(), 2);
        assert!(!page(&mut silent, None, records(3)));
        assert_eq!(silent.finish().not_read, None);
    }

    #[test]
    fn tile_data_times_are_the_period_and_the_scans_life() {
        let figures = scan(Period::Last7Days, vec![]);
        let answer = data(TileId::ExposureSummary, &figures);
        assert_eq!(
            answer["observed_time"],
            json!({"start_time": "2026-03-03T12:00:00.000000Z", "end_time": "2026-03-10T12:00:00.000000Z"})
        );
        assert_eq!(
            answer["valid_time"],
            json!({"start_time": "2026-03-10T12:00:00.000000Z", "end_time": "2026-03-10T12:10:00.000000Z"})
        );
        assert_eq!(answer["cache_scope"], "org");
    }

    #[test]
    fn figures_read_back_as_themselves_and_every_tile_shows_the_same() {
        let figures = scan(
            Period::Last30Days,
            vec![
                at(
                    "2026-03-10T08:00:00Z",
                    json!({"email": "a@x.com", "source_id": 2,
                    "severity": 25, "infected_machine_id": "m", "password_plaintext": "p"}),
                ),
                at(
                    "2026-02-20T00:00:00Z",
                    json!({"email": "B|b@x.com", "source_id": 1}),
                ),
            ],
        );
        assert!(!figures.days.is_empty() && !figures.top_employees.is_empty());
        let json = serde_json::to_vec(&figures).unwrap();
        let read: Figures = serde_json::from_slice(&json).unwrap();
        assert_eq!(read, figures);
        for tile in TileId::ALL {
            assert_eq!(data(tile, &read), data(tile, &figures));
        }
        assert!(serde_json::from_slice::<Figures>(b"{\"start\": 1}").is_err());
    }

    #[test]
    fn figures_fit_their_period_only_when_everything_adds_up() {
        let mut records = vec![
            at(
                "2026-03-10T08:00:00Z",
                json!({"email": "a@x.com", "source_id": 2, "severity": 25,
                       "infected_machine_id": "m", "password_plaintext": "p"}),
            ),
            at(
                "2026-03-05T00:00:00Z",
                json!({"email": "b@x.com", "source_id": 1}),
            ),
        ];
        records.extend(
            (0..12).map(|n| at(NOW, json!({"email": format!("{n}@x.com"), "source_id": n}))),
        );
        let figures = scan(Period::Last7Days, records);
        assert_eq!(figures.fit(Period::Last7Days), Ok(()));
        assert_eq!(
            scan(Period::Last90Days, vec![]).fit(Period::Last90Days),
            Ok(())
        );
        assert!(figures.fit(Period::Last30Days).is_err(), "another period");

        let forged = |change: &dyn Fn(&mut Figures)| {
            let mut forged = figures.clone();
            change(&mut forged);
            forged.fit(Period::Last7Days)
        };
        let row = figures.top_employees[0].clone();
        let day = figures.days[0].clone();
        type Forgery<'a> = (&'a str, &'a dyn Fn(&mut Figures));
        let cases: [Forgery<'_>; 14] = [
            ("a day too many", &|f| f.days.push(day.clone())),
            ("a day missing", &|f| {
                f.days.pop();
            }),
            ("a day out of order", &|f| f.days.swap(0, 1)),
            ("days that do not add up", &|f| f.days[0].counts[0] += 1),
            ("more records than days", &|f| f.records += 1),
            ("more employees than records", &|f| {
                f.employees = f.records + 1
            }),
            ("more devices than records", &|f| f.devices = f.records + 1),
            ("11 employees", &|f| f.top_employees.push(row.clone())),
            ("11 breaches", &|f| f.top_breaches.push((CatalogId(99), 0))),
            ("breaches unsorted", &|f| f.top_breaches.swap(0, 1)),
            ("employees unsorted", &|f| f.top_employees.swap(0, 1)),
            ("a latest day out of the period", &|f| {
                f.top_employees[0].latest = f.end.day().next();
            }),
            ("a row with more plaintext than records", &|f| {
                f.top_employees[0].plaintext = f.top_employees[0].records + 1;
            }),
            ("an email longer than kept", &|f| {
                f.top_employees[0].email = "e".repeat(MAX_EMAIL_CHARS + 1);
            }),
        ];
        for (what, change) in cases {
            assert!(forged(change).is_err(), "{what}");
        }
    }

    #[test]
    fn the_most_exposed_employees_are_exact_whatever_order_records_come_in() {
        // 3 000 employees with 1 to 12 records each, in a scrambled order: the figures of the
        // ten shown are those of a plain count of every email.
        let mut records = Vec::new();
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for n in 0..3_000u64 {
            let count = 1 + (n * 7919 % 12);
            for k in 0..count {
                let device = (k % 3 == 0).then(|| format!("m{}", k % 2));
                let mut fields = json!({"email": format!("E{:04}@x.com", (n * 31) % 3_000)});
                if let Some(device) = device {
                    fields["infected_machine_id"] = json!(device);
                }
                if k % 4 == 1 {
                    fields["password_plaintext"] = json!("p");
                }
                let day = next() % 7;
                records.push((
                    next(),
                    at(&format!("2026-03-{:02}T11:00:00Z", 4 + day), fields),
                ));
            }
        }
        records.sort_by_key(|(order, _)| *order);
        let records: Vec<RawRecord> = records.into_iter().map(|(_, record)| record).collect();
        let mut plain: HashMap<String, (u64, u64, std::collections::HashSet<String>, String)> =
            HashMap::new();
        for record in &records {
            let email = record.text("email").unwrap().to_lowercase();
            let entry = plain.entry(email).or_default();
            entry.0 += 1;
            entry.1 += u64::from(has_plaintext_password(record));
            if let Some(device) = record.text("infected_machine_id") {
                entry.2.insert(device.to_owned());
            }
            let day = record.published().unwrap().day().to_string();
            entry.3 = entry.3.clone().max(day);
        }
        let mut expected: Vec<(String, u64, u64, u64, String)> = plain
            .into_iter()
            .map(|(email, (n, p, d, latest))| (email, n, p, d.len() as u64, latest))
            .collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        expected.truncate(10);
        let mut scan_tally = ScanTally::new(Period::Last7Days, now(), 1_000_000);
        page(&mut scan_tally, Some(records.len() as u64), records);
        let figures = scan_tally.finish();
        let shown: Vec<(String, u64, u64, u64, String)> = figures
            .top_employees
            .iter()
            .map(|e| {
                (
                    e.email.clone(),
                    e.records,
                    e.plaintext,
                    e.devices,
                    e.latest.to_string(),
                )
            })
            .collect();
        assert_eq!(shown, expected);
        assert_eq!(figures.employees, 3_000);
        assert_eq!(figures.devices, 2);
        assert_eq!(figures.fit(Period::Last7Days), Ok(()));
    }

    #[test]
    fn strings_of_any_length_are_counted_by_hash_and_shown_cut() {
        let long = |c: &str, n: usize| c.repeat(n);
        let figures = scan(
            Period::Last7Days,
            vec![
                at(
                    NOW,
                    json!({"email": format!("{}@x.com", long("a", 60_000)),
                               "infected_machine_id": long("m", 20_000)}),
                ),
                at(
                    NOW,
                    json!({"email": format!("{}@X.com", long("A", 60_000)),
                               "infected_machine_id": long("m", 20_000)}),
                ),
                at(
                    NOW,
                    json!({"email": format!("{}b@x.com", long("a", 60_000)),
                               "infected_machine_id": long("n", 20_000)}),
                ),
            ],
        );
        assert_eq!((figures.employees, figures.devices), (2, 2));
        let first = &figures.top_employees[0];
        assert_eq!((first.records, first.devices), (2, 1));
        assert_eq!(first.email, long("a", MAX_EMAIL_CHARS));
        // The second's email is cut to the same text: ties beyond the cut go by hash.
        assert_eq!(figures.top_employees[1].email, long("a", MAX_EMAIL_CHARS));
        assert_eq!(figures.fit(Period::Last7Days), Ok(()));
    }
}
