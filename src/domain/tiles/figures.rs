//! What the four tiles show of one scan, and the checks that a shared scan adds up.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use crate::domain::catalog::CatalogId;
use crate::domain::time::{Day, Timestamp};

use super::{MAX_EMAIL_CHARS, Period, TOP};

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

/// One day's records by severity band, in [`SeverityBand::ALL`](crate::domain::breach::SeverityBand::ALL)'s order.
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
