//! One watchlist scan, folded record by record into the counts the tiles show.

use std::cmp::Reverse;

use crate::domain::breach::{RawRecord, SeverityBand};
use crate::domain::catalog::CatalogId;
use crate::domain::collector::RecordSink;
use crate::domain::email::truncate;
use crate::domain::hashed::{Hashes, Table};
use crate::domain::time::{Day, Timestamp};

use super::{DayFigures, EmployeeFigures, Figures, MAX_EMAIL_CHARS, Period, TOP};

/// The most employees (and devices, and pairs) a scan makes room for at once, from SpyCloud's
/// `hits` (about 43 MiB for the three tables); past it, its tables grow.
const MAX_PRESIZED: u64 = 1 << 20;

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
/// [`hashed`](crate::domain::hashed)), a few tens of bytes per distinct one, however long their strings;
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
pub(super) fn has_plaintext_password(record: &RawRecord) -> bool {
    record.text("password_plaintext").is_some()
        || (record
            .text("password_type")
            .is_some_and(|kind| kind.eq_ignore_ascii_case("plaintext"))
            && record.text("password").is_some())
}
