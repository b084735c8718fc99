//! A module instance's settings, as SecureX/XDR sends them in the token's claims (the module's
//! `custom_<NAME>` setting arrives as claim `<NAME>`): `SEVERITY`, `SINCE_DAYS`, `PASSWORDS`.
//! Read once, with the token; a value not of its form is kept aside for its warning.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::ctim::ErrorDoc;
use super::error::Warning;
use super::mapping::PasswordPolicy;

/// SpyCloud severity codes to ask for (`SEVERITY`, e.g. `20,25,30`): distinct and sorted, so
/// every spelling of one set of codes is one filter (one scan, one cache entry, one upstream
/// `severity=` value), and at most 32 of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeverityFilter(Vec<u32>);

impl SeverityFilter {
    /// The most distinct codes a filter holds: more is not a valid setting (SpyCloud knows a
    /// handful of codes, and thousands would make every call's URL too long for it).
    const MAX_CODES: usize = 32;

    /// Reads a comma-separated list of whole numbers (spaces around each allowed), at most 32
    /// distinct ones; repeats are dropped and the codes sorted.
    ///
    /// ```
    /// use spycloud_relay::domain::SeverityFilter;
    ///
    /// let filter = SeverityFilter::parse(" 25, 20,30,20").unwrap();
    /// assert_eq!(filter.codes(), [20, 25, 30]);
    /// assert_eq!(filter.query_value(), "20,25,30");
    /// assert_eq!(SeverityFilter::parse("30,25,20"), Some(filter));
    /// assert_eq!(SeverityFilter::parse("20,,30"), None);
    /// assert_eq!(SeverityFilter::parse("+20"), None);
    /// let too_many: Vec<String> = (0..33).map(|code| code.to_string()).collect();
    /// assert_eq!(SeverityFilter::parse(&too_many.join(",")), None);
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        let mut codes = value
            .split(',')
            .map(|code| {
                let code = code.trim();
                // `u32::from_str` takes a leading `+`; a code is digits only.
                (!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| code.parse().ok())
                    .flatten()
            })
            .collect::<Option<Vec<u32>>>()?;
        Self::of(&mut codes)
    }

    /// The filter of `codes` (sorted and deduplicated in place), if there are at most
    /// `MAX_CODES` distinct ones.
    fn of(codes: &mut Vec<u32>) -> Option<Self> {
        codes.sort_unstable();
        codes.dedup();
        (codes.len() <= Self::MAX_CODES).then(|| Self(std::mem::take(codes)))
    }

    /// The codes, distinct and in increasing order.
    pub fn codes(&self) -> &[u32] {
        &self.0
    }

    /// The value of the `severity=` query parameter: the codes joined by commas, e.g. `20,25,30`.
    pub fn query_value(&self) -> String {
        self.0
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How far back to ask for records (`SINCE_DAYS`): 1 to 3650 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinceDays(u16);

impl SinceDays {
    /// The longest look-back: ten years.
    pub const MAX: u16 = 3650;

    /// A look-back of `days`, if it is within 1–3650.
    pub fn new(days: u64) -> Option<Self> {
        u16::try_from(days)
            .ok()
            .filter(|days| (1..=Self::MAX).contains(days))
            .map(Self)
    }

    /// The number of days.
    pub fn days(self) -> u16 {
        self.0
    }

    /// The first day asked for: `days` before `today` (the caller's UTC date).
    pub fn since(self, today: NaiveDate) -> NaiveDate {
        today - chrono::Days::new(u64::from(self.0))
    }
}

/// What a breach-data call asks for besides the value looked up: `severity=` and `since=`.
/// [`ModuleSettings::breach_query`] makes it; the default asks for everything.
///
/// ```
/// use spycloud_relay::domain::BreachQuery;
///
/// let everything = BreachQuery::default();
/// assert_eq!((everything.severity, everything.since), (None, None));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreachQuery {
    /// Only records of these severity codes.
    pub severity: Option<SeverityFilter>,
    /// Only records published on or after this UTC date (`since=YYYY-MM-DD`).
    pub since: Option<NaiveDate>,
}

/// A setting whose value was not of its form, and is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The claim's name, e.g. `SINCE_DAYS`.
    pub name: &'static str,
    /// The value as sent: a string as is, anything else as JSON.
    pub value: String,
}

/// What a module instance asks for, from its token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSettings {
    /// `SEVERITY`: only records of these codes are asked for.
    pub(crate) severity: Option<SeverityFilter>,
    /// `SINCE_DAYS`: only records published in the last so many days are asked for.
    pub(crate) since_days: Option<SinceDays>,
    /// `PASSWORDS`: overrides the relay's `RELAY_PASSWORDS` for this instance.
    pub(crate) passwords: Option<PasswordPolicy>,
    /// Settings present but not of their form, in the order above: each gives a warning.
    pub(crate) invalid: Vec<InvalidSetting>,
}

impl ModuleSettings {
    /// The claim names, in the order they are read and warned about.
    pub const CLAIMS: [&'static str; 3] = ["SEVERITY", "SINCE_DAYS", "PASSWORDS"];

    /// Reads the settings from a token's claims. Absent, `null` or empty (blank) settings have
    /// no effect; a value not of its form is ignored and kept for its warning.
    ///
    /// ```
    /// use spycloud_relay::domain::{ErrorType, ModuleSettings, SeverityFilter};
    /// use chrono::NaiveDate;
    /// use serde_json::json;
    ///
    /// let claims = json!({"SEVERITY": "20,25", "SINCE_DAYS": "30", "PASSWORDS": "hidden"});
    /// let settings = ModuleSettings::from_claims(claims.as_object().unwrap());
    ///
    /// let query = settings.breach_query(NaiveDate::from_ymd_opt(2024, 6, 1).unwrap());
    /// assert_eq!(query.severity, SeverityFilter::parse("20,25"));
    /// assert_eq!(query.since, NaiveDate::from_ymd_opt(2024, 5, 2));
    ///
    /// // `PASSWORDS` takes plaintext, masked or omitted: this one is ignored, with a warning.
    /// let warnings = settings.warnings();
    /// assert_eq!(warnings.len(), 1);
    /// assert_eq!(warnings[0].kind, ErrorType::Warning);
    /// assert_eq!(warnings[0].code, "invalid argument");
    /// assert_eq!(
    ///     warnings[0].message,
    ///     "The module setting PASSWORDS is not valid and was ignored: hidden"
    /// );
    /// ```
    pub fn from_claims(claims: &Map<String, Value>) -> Self {
        let mut settings = Self::default();
        for name in Self::CLAIMS {
            let Some(value) = claims.get(name) else {
                continue;
            };
            if matches!(value, Value::Null) || value.as_str().is_some_and(|s| s.trim().is_empty()) {
                continue;
            }
            let valid = match name {
                "SEVERITY" => severity(value).map(|s| settings.severity = Some(s)),
                "SINCE_DAYS" => since_days(value).map(|d| settings.since_days = Some(d)),
                _ => passwords(value).map(|p| settings.passwords = Some(p)),
            };
            if valid.is_none() {
                settings.invalid.push(InvalidSetting {
                    name,
                    value: match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                });
            }
        }
        settings
    }

    /// What the breach-data calls of a lookup ask for: the severity codes, and the first day
    /// (`SINCE_DAYS` before `today`, the caller's UTC date: the domain reads no clock).
    pub fn breach_query(&self, today: NaiveDate) -> BreachQuery {
        BreachQuery {
            severity: self.severity.clone(),
            since: self.since_days.map(|days| days.since(today)),
        }
    }

    /// `SEVERITY`: the severity codes records are asked for; `None`: every severity.
    ///
    /// ```
    /// use spycloud_relay::domain::ModuleSettings;
    ///
    /// let claims = serde_json::json!({"SEVERITY": "20,25", "SINCE_DAYS": 30, "PASSWORDS": "masked"});
    /// let settings = ModuleSettings::from_claims(claims.as_object().unwrap());
    /// assert_eq!(settings.severity().map(|s| s.codes()), Some(&[20, 25][..]));
    /// assert_eq!(settings.since_days(), Some(30));
    /// assert_eq!(settings.passwords(), Some(spycloud_relay::domain::PasswordPolicy::Masked));
    /// ```
    pub fn severity(&self) -> Option<&SeverityFilter> {
        self.severity.as_ref()
    }

    /// `SINCE_DAYS`: only records published in the last so many days; `None`: any time.
    pub fn since_days(&self) -> Option<u16> {
        self.since_days.map(SinceDays::days)
    }

    /// `PASSWORDS`: this instance's password policy; `None`: the relay's.
    pub fn passwords(&self) -> Option<PasswordPolicy> {
        self.passwords
    }

    /// One `invalid argument` warning per ignored setting, for every observe and tile-data
    /// answer of the token.
    pub fn warnings(&self) -> Vec<ErrorDoc> {
        self.invalid
            .iter()
            .map(|invalid| Warning::InvalidSetting(invalid.clone()).to_doc())
            .collect()
    }
}

/// A string of codes, or one code as a number.
fn severity(value: &Value) -> Option<SeverityFilter> {
    match value {
        Value::String(s) => SeverityFilter::parse(s),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .and_then(|n| SeverityFilter::of(&mut vec![n])),
        _ => None,
    }
}

/// An integer or a string of one, 1–3650.
fn since_days(value: &Value) -> Option<SinceDays> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse().ok())
                .flatten()
        }
        _ => None,
    }
    .and_then(SinceDays::new)
}

/// `plaintext`, `masked` or `omitted`, in any case.
fn passwords(value: &Value) -> Option<PasswordPolicy> {
    let value = value.as_str()?.trim();
    [
        ("plaintext", PasswordPolicy::Plaintext),
        ("masked", PasswordPolicy::Masked),
        ("omitted", PasswordPolicy::Omitted),
    ]
    .into_iter()
    .find(|(name, _)| name.eq_ignore_ascii_case(value))
    .map(|(_, policy)| policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(claims: Value) -> ModuleSettings {
        match claims {
            Value::Object(map) => ModuleSettings::from_claims(&map),
            _ => unreachable!("claims are an object"),
        }
    }

    #[test]
    fn absent_null_or_empty_settings_have_no_effect_and_no_warning() {
        assert_eq!(read(json!({})), ModuleSettings::default());
        let empty = read(json!({"SEVERITY": "", "SINCE_DAYS": null, "PASSWORDS": "  "}));
        assert_eq!(empty, ModuleSettings::default());
        assert_eq!(empty.warnings(), []);
    }

    #[test]
    fn severity_is_a_list_of_codes_sent_joined_by_commas() {
        for (claim, query) in [
            (json!("20,25,30"), "20,25,30"),
            (json!(" 20 , 25 "), "20,25"),
            (json!("30,20,25,20"), "20,25,30"),
            (json!("2"), "2"),
            (json!(26), "26"),
        ] {
            let settings = read(json!({"SEVERITY": claim}));
            assert_eq!(
                settings
                    .severity
                    .as_ref()
                    .map(SeverityFilter::query_value)
                    .as_deref(),
                Some(query),
                "{claim}"
            );
            assert_eq!(settings.invalid, []);
        }
        assert_eq!(
            read(json!({"SEVERITY": "20,25"})).severity.unwrap().codes(),
            [20, 25]
        );
        for bad in [
            json!("high"),
            json!("20,"),
            json!("20;25"),
            json!("+20"),
            json!("-1"),
            json!("2.5"),
            json!(2.5),
            json!(-3),
            json!(true),
            json!([20]),
            json!("99999999999"),
            json!((0..33).map(|n| n.to_string()).collect::<Vec<_>>().join(",")),
        ] {
            let settings = read(json!({"SEVERITY": bad}));
            assert_eq!(settings.severity, None, "{bad}");
            assert_eq!(settings.invalid.len(), 1, "{bad}");
        }
    }

    #[test]
    fn since_days_is_1_to_3650_as_a_number_or_a_string_of_one() {
        for (claim, days) in [
            (json!(1), 1),
            (json!(3650), 3650),
            (json!("30"), 30),
            (json!(" 7 "), 7),
        ] {
            assert_eq!(
                read(json!({"SINCE_DAYS": claim}))
                    .since_days
                    .map(SinceDays::days),
                Some(days),
                "{claim}"
            );
        }
        for bad in [
            json!(0),
            json!(3651),
            json!(-1),
            json!(1.5),
            json!("0"),
            json!("+5"),
            json!("a week"),
            json!("70000"),
            json!({"days": 3}),
        ] {
            let settings = read(json!({"SINCE_DAYS": bad}));
            assert_eq!(settings.since_days, None, "{bad}");
            assert_eq!(settings.invalid.len(), 1, "{bad}");
        }
    }

    #[test]
    fn since_is_the_utc_date_that_many_days_before_today() {
        let today = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let since = |days| SinceDays::new(days).unwrap().since(today).to_string();
        assert_eq!(since(1), "2024-02-29");
        assert_eq!(since(30), "2024-01-31");
        assert_eq!(since(3650), "2014-03-04");
    }

    #[test]
    fn the_breach_query_carries_the_codes_and_the_first_day() {
        let today = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let settings = read(json!({"SEVERITY": "20,25", "SINCE_DAYS": "1"}));
        assert_eq!(
            settings.breach_query(today),
            BreachQuery {
                severity: SeverityFilter::parse("20,25"),
                since: NaiveDate::from_ymd_opt(2024, 2, 29),
            }
        );
        assert_eq!(
            ModuleSettings::default().breach_query(today),
            BreachQuery::default()
        );
    }

    #[test]
    fn passwords_is_one_of_three_policies_in_any_case() {
        for (claim, policy) in [
            ("plaintext", PasswordPolicy::Plaintext),
            ("Masked", PasswordPolicy::Masked),
            ("OMITTED", PasswordPolicy::Omitted),
        ] {
            assert_eq!(read(json!({"PASSWORDS": claim})).passwords, Some(policy));
        }
        for bad in [json!("hidden"), json!(1), json!(false)] {
            let settings = read(json!({"PASSWORDS": bad}));
            assert_eq!(settings.passwords, None, "{bad}");
            assert_eq!(settings.invalid.len(), 1, "{bad}");
        }
    }

    #[test]
    fn each_invalid_setting_gives_one_warning_with_its_value_cut_to_100_characters() {
        let long = "x".repeat(150);
        let settings = read(json!({
            "PASSWORDS": long, "SINCE_DAYS": 0, "SEVERITY": "20,25", "OTHER": "ignored"
        }));
        assert_eq!(
            settings
                .severity
                .as_ref()
                .map(SeverityFilter::query_value)
                .as_deref(),
            Some("20,25")
        );
        let warnings: Vec<_> = settings
            .warnings()
            .into_iter()
            .map(|w| (w.kind, w.code, w.message))
            .collect();
        assert_eq!(
            warnings,
            [
                (
                    crate::domain::ErrorType::Warning,
                    "invalid argument".to_owned(),
                    "The module setting SINCE_DAYS is not valid and was ignored: 0".to_owned()
                ),
                (
                    crate::domain::ErrorType::Warning,
                    "invalid argument".to_owned(),
                    format!(
                        "The module setting PASSWORDS is not valid and was ignored: {}",
                        "x".repeat(100)
                    )
                ),
            ]
        );
    }
}
