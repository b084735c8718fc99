//! SpyCloud's timestamps and the CTIM form they take.

use std::fmt;

use chrono::format::{Fixed, Item, Numeric, Pad, Parsed};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time SpyCloud reported (UTC), printed the CTIM way:
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
///
/// ```
/// use spycloud_relay::domain::Timestamp;
/// use chrono::{TimeDelta, TimeZone, Utc};
///
/// let published = Timestamp::parse("2024-03-01T08:30:00.5Z")?;
/// assert_eq!(published.to_string(), "2024-03-01T08:30:00.500000Z");
///
/// let now = Timestamp::from_utc(Utc.with_ymd_and_hms(2024, 3, 2, 8, 30, 0).unwrap());
/// assert_eq!(published.until(now), TimeDelta::hours(24) - TimeDelta::milliseconds(500));
/// assert_eq!(now.day().to_string(), "2024-03-02");
/// # Ok::<(), spycloud_relay::domain::InvalidTimestamp>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(NaiveDateTime);

/// A SpyCloud time in none of its forms: `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM:SS` (each
/// with an optional fraction) or `YYYY-MM-DD`, each with an optional trailing `Z`.
///
/// ```
/// use spycloud_relay::domain::{InvalidTimestamp, Timestamp};
///
/// let refused = Timestamp::parse("01/03/2024").unwrap_err();
/// assert_eq!(refused, InvalidTimestamp("01/03/2024".to_owned()));
/// assert_eq!(refused.to_string(), r#""01/03/2024" is not a SpyCloud timestamp"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SpyCloud timestamp")]
pub struct InvalidTimestamp(pub String);

impl Timestamp {
    /// Parses SpyCloud's three forms, all UTC: `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM:SS`
    /// (`infected_time`'s), each optionally followed by a fraction, and `YYYY-MM-DD` (midnight);
    /// each optionally followed by a `Z`.
    ///
    /// # Errors
    /// [`InvalidTimestamp`] for anything else.
    ///
    /// ```
    /// use spycloud_relay::domain::Timestamp;
    ///
    /// assert_eq!(Timestamp::parse("2024-03-01T00:00:00")?, Timestamp::parse("2024-03-01T00:00:00Z")?);
    /// let offset = Timestamp::parse("2024-03-01T00:00:00+02:00").unwrap_err();
    /// assert_eq!(offset.to_string(), r#""2024-03-01T00:00:00+02:00" is not a SpyCloud timestamp"#);
    /// assert_eq!(Timestamp::parse("2024-03-01 00:00:00")?, Timestamp::parse("2024-03-01")?);
    /// # Ok::<(), spycloud_relay::domain::InvalidTimestamp>(())
    /// ```
    pub fn parse(value: &str) -> Result<Self, InvalidTimestamp> {
        let bare = value.strip_suffix('Z').unwrap_or(value);
        let pattern: &[Item<'static>] = match bare.as_bytes().get(10) {
            None => &PATTERN[..DATE],
            Some(b' ') => &SPACED,
            Some(_) => &PATTERN,
        };
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, bare, pattern.iter())
            .and_then(|()| {
                if pattern.len() == DATE {
                    parsed.set_hour(0)?;
                    parsed.set_minute(0)?;
                }
                parsed.to_naive_datetime_with_offset(0)
            })
            .map(Self)
            .map_err(|_| InvalidTimestamp(value.to_owned()))
    }

    /// The UTC date of this time.
    pub fn date(&self) -> chrono::NaiveDate {
        self.0.date()
    }
}

impl Timestamp {
    /// The instant `at`, as a timestamp (the relay's clock hands these to the domain).
    ///
    /// ```
    /// use spycloud_relay::domain::Timestamp;
    /// use chrono::{DateTime, Utc};
    ///
    /// let at: DateTime<Utc> = "2024-06-01T12:00:00.123456789Z".parse()?;
    /// // CTIM prints microseconds.
    /// assert_eq!(Timestamp::from_utc(at).to_string(), "2024-06-01T12:00:00.123456Z");
    /// # Ok::<(), chrono::ParseError>(())
    /// ```
    pub fn from_utc(at: DateTime<Utc>) -> Self {
        Self(at.naive_utc())
    }

    /// `span` earlier; the earliest representable time when that is out of range.
    pub fn minus(self, span: TimeDelta) -> Self {
        Self(
            self.0
                .checked_sub_signed(span)
                .unwrap_or(NaiveDateTime::MIN),
        )
    }

    /// `span` later; the latest representable time when that is out of range.
    pub fn plus(self, span: TimeDelta) -> Self {
        Self(
            self.0
                .checked_add_signed(span)
                .unwrap_or(NaiveDateTime::MAX),
        )
    }

    /// The UTC day this time falls on.
    pub fn day(self) -> Day {
        Day(self.0.date())
    }

    /// The time from `self` to `later` (negative when `later` is earlier).
    pub fn until(self, later: Timestamp) -> TimeDelta {
        later.0.signed_duration_since(self.0)
    }
}

/// A UTC calendar day, printed `YYYY-MM-DD` (SpyCloud's `since=` and the tiles' day keys).
///
/// ```
/// use spycloud_relay::domain::Timestamp;
///
/// let day = Timestamp::parse("2024-02-28T23:59:59Z")?.day();
/// assert_eq!((day.to_string(), day.label()), ("2024-02-28".to_owned(), "02/28".to_owned()));
/// assert_eq!(day.next().to_string(), "2024-02-29");
/// assert_eq!(day.days_until(day.next().next()), 2);
/// # Ok::<(), spycloud_relay::domain::InvalidTimestamp>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(NaiveDate);

impl Day {
    /// The calendar date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// The day after this one (the last representable day is its own successor).
    pub fn next(self) -> Self {
        Self(self.0.succ_opt().unwrap_or(self.0))
    }

    /// Whole days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Day) -> i64 {
        (later.0 - self.0).num_days()
    }

    /// `MM/DD`, the short label of a chart's day.
    pub fn label(self) -> String {
        format!("{:02}/{:02}", self.0.month(), self.0.day())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

/// `%Y-%m-%d<separator>%H:%M:%S%.f`, spelled out once: `parse_from_str` would re-read the
/// pattern for each of the thousands of dates a busy relay parses.
const fn pattern(separator: &'static str) -> [Item<'static>; 12] {
    [
        Item::Numeric(Numeric::Year, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Month, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Day, Pad::Zero),
        Item::Literal(separator),
        Item::Numeric(Numeric::Hour, Pad::Zero),
        Item::Literal(":"),
        Item::Numeric(Numeric::Minute, Pad::Zero),
        Item::Literal(":"),
        Item::Numeric(Numeric::Second, Pad::Zero),
        Item::Fixed(Fixed::Nanosecond),
    ]
}

/// `%Y-%m-%dT%H:%M:%S%.f`. Its first [`DATE`] items are `%Y-%m-%d`, a date alone.
const PATTERN: [Item<'static>; 12] = pattern("T");

/// The items of [`PATTERN`] that read `%Y-%m-%d`.
const DATE: usize = 5;

/// `%Y-%m-%d %H:%M:%S%.f`: [`PATTERN`] with a space for the `T` (SpyCloud's `infected_time`).
const SPACED: [Item<'static>; 12] = pattern(" ");

impl Timestamp {
    /// The CTIM text written digit by digit into a fixed buffer; `None` for what does not fit
    /// it (years past 9999, a leap second's fraction), which [`fmt::Display`] writes instead.
    fn ctim_text(&self) -> Option<[u8; 27]> {
        let (date, time) = (self.0.date(), self.0.time());
        let year = u32::try_from(date.year()).ok().filter(|&y| y <= 9999)?;
        let micros = Some(time.nanosecond() / 1_000).filter(|&m| m < 1_000_000)?;
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |end: usize, mut n: u32| {
            let mut at = end;
            while n > 0 {
                at -= 1;
                text[at] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(4, year);
        put(7, date.month());
        put(10, date.day());
        put(13, time.hour());
        put(16, time.minute());
        put(19, time.second());
        put(26, micros);
        Some(text)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.ctim_text() {
            // Only ASCII digits and separators were written.
            return f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?);
        }
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
        // A response prints four timestamps per sighting: no formatting machinery for those.
        match self.ctim_text() {
            Some(text) => serializer.serialize_str(std::str::from_utf8(&text).unwrap_or_default()),
            None => serializer.collect_str(self),
        }
    }
}

/// Reads back what [`Serialize`] writes (to the microsecond), and any SpyCloud time.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `YYYY-MM-DD`.
impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(Self)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a day")))
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
    fn json_shows_the_same_text_for_every_date() {
        for (input, text) in [
            ("0001-01-01T00:00:00", "0001-01-01T00:00:00.000000Z"),
            ("2019-10-09T08:07:06.000005Z", "2019-10-09T08:07:06.000005Z"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("+10000-01-01T00:00:00", "10000-01-01T00:00:00.000000Z"),
            ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.1000000Z"),
        ] {
            let timestamp = Timestamp::parse(input).unwrap();
            assert_eq!(timestamp.to_string(), text, "{input}");
            assert_eq!(
                serde_json::to_value(timestamp).unwrap(),
                serde_json::Value::String(text.to_owned())
            );
        }
    }

    #[test]
    fn the_three_spycloud_forms_are_utc_and_a_date_alone_is_midnight() {
        for (input, text) in [
            ("2019-03-01T10:20:30", "2019-03-01T10:20:30.000000Z"),
            ("2019-03-01T10:20:30.5Z", "2019-03-01T10:20:30.500000Z"),
            ("2019-03-01 10:20:30", "2019-03-01T10:20:30.000000Z"),
            ("2019-03-01 10:20:30Z", "2019-03-01T10:20:30.000000Z"),
            ("2019-03-01 10:20:30.123456", "2019-03-01T10:20:30.123456Z"),
            ("2019-03-01", "2019-03-01T00:00:00.000000Z"),
            ("2019-03-01Z", "2019-03-01T00:00:00.000000Z"),
        ] {
            assert_eq!(
                Timestamp::parse(input).unwrap().to_string(),
                text,
                "{input}"
            );
        }
    }

    #[test]
    fn other_shapes_are_refused() {
        for input in [
            "",
            "Z",
            "yesterday",
            "2019-13-01T00:00:00",
            "2019-02-30",
            "2019-03-01 ",
            "2019-03-01T",
            "2019-03-01 00:00",
            "2019-03-01T00:00:00+02:00",
            "01/03/2019",
            "2019-03-01ZZ",
        ] {
            assert!(Timestamp::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn arithmetic_and_days() {
        let at = Timestamp::parse("2024-03-01T00:30:00Z").unwrap();
        let earlier = at.minus(TimeDelta::hours(24));
        assert_eq!(earlier.to_string(), "2024-02-29T00:30:00.000000Z");
        assert_eq!(earlier.plus(TimeDelta::hours(24)), at);
        assert_eq!(earlier.day().to_string(), "2024-02-29");
        assert_eq!(earlier.day().label(), "02/29");
        assert_eq!(earlier.day().next(), at.day());
        assert_eq!(earlier.day().days_until(at.day()), 1);
        assert_eq!(at.day().days_until(earlier.day()), -1);
        assert_eq!(earlier.until(at), TimeDelta::hours(24));
        assert_eq!(at.until(earlier), TimeDelta::hours(-24));
        let utc = DateTime::parse_from_rfc3339("2024-03-01T00:30:00.5Z").unwrap();
        assert_eq!(
            Timestamp::from_utc(utc.with_timezone(&Utc)).to_string(),
            "2024-03-01T00:30:00.500000Z"
        );
        // Out of range saturates instead of panicking.
        assert!(at.minus(TimeDelta::MAX) < earlier);
        assert!(at.plus(TimeDelta::MAX) > at);
    }

    #[test]
    fn times_and_days_read_back_what_they_write() {
        let time = Timestamp::parse("2024-02-29T23:59:58.123456Z").unwrap();
        let json = serde_json::to_string(&time).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), time);
        let day = time.day();
        assert_eq!(serde_json::to_string(&day).unwrap(), "\"2024-02-29\"");
        assert_eq!(serde_json::from_str::<Day>("\"2024-02-29\"").unwrap(), day);
        for bad in ["\"2024-02-30\"", "\"yesterday\"", "20240229"] {
            assert!(serde_json::from_str::<Day>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<Timestamp>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_date_is_the_utc_day() {
        let time = Timestamp::parse("2021-12-31T23:59:58Z").unwrap();
        assert_eq!(time.date().to_string(), "2021-12-31");
    }

    #[test]
    fn order_follows_time() {
        let old = Timestamp::parse("2018-01-01T00:00:00Z").unwrap();
        let new = Timestamp::parse("2020-01-01T00:00:00Z").unwrap();
        assert!(new > old);
    }
}
