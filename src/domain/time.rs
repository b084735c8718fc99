//! SpyCloud's timestamps and the CTIM form they take.

use std::fmt;

use chrono::{Datelike, NaiveDateTime, Timelike};
use serde::{Serialize, Serializer};

/// A point in time SpyCloud reported (UTC), printed the CTIM way:
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(NaiveDateTime);

/// A SpyCloud time that is not `YYYY-MM-DDTHH:MM:SS` (with optional fraction and `Z`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SpyCloud timestamp")]
pub struct InvalidTimestamp(pub String);

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS`, optionally followed by a fraction and a `Z`.
    ///
    /// # Errors
    /// [`InvalidTimestamp`] for anything else.
    pub fn parse(value: &str) -> Result<Self, InvalidTimestamp> {
        let bare = value.strip_suffix('Z').unwrap_or(value);
        NaiveDateTime::parse_from_str(bare, "%Y-%m-%dT%H:%M:%S%.f")
            .map(Self)
            .map_err(|_| InvalidTimestamp(value.to_owned()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written field by field: chrono's `format` re-reads its pattern on every call, and a
        // response prints four timestamps per sighting.
        let (date, time) = (self.0.date(), self.0.time());
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            date.year(),
            date.month(),
            date.day(),
            time.hour(),
            time.minute(),
            time.second(),
            time.nanosecond() / 1_000,
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spycloud_times_become_ctim_times() {
        for input in ["2019-03-01T00:00:00", "2019-03-01T00:00:00Z"] {
            assert_eq!(
                Timestamp::parse(input).unwrap().to_string(),
                "2019-03-01T00:00:00.000000Z"
            );
        }
        assert_eq!(
            Timestamp::parse("2021-12-31T23:59:58.25Z")
                .unwrap()
                .to_string(),
            "2021-12-31T23:59:58.250000Z"
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for input in [
            "",
            "2019-03-01",
            "yesterday",
            "2019-13-01T00:00:00",
            "2019-03-01 00:00:00",
        ] {
            assert!(Timestamp::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn order_follows_time() {
        let old = Timestamp::parse("2018-01-01T00:00:00Z").unwrap();
        let new = Timestamp::parse("2020-01-01T00:00:00Z").unwrap();
        assert!(new > old);
    }
}
