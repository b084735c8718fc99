//! Property tests of the domain's parsers: whatever a caller or SpyCloud sends, a value or
//! the contract's error, never a panic.

use proptest::prelude::*;
use serde_json::json;

use super::collector::{BreachCollector, RecordSink};
use super::{ModuleSettings, RawRecord, parse_observables};

/// The integration tests' strategies (one copy for both).
#[path = "../../tests/common/strategies.rs"]
mod strategies;
use strategies::json_value;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_body_parses_or_is_an_invalid_argument(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(error) = parse_observables(&body) {
            prop_assert_eq!(error.code(), "invalid argument");
            prop_assert!(error.message().starts_with("Invalid JSON payload received."));
        }
    }

    #[test]
    fn any_json_body_parses_or_is_an_invalid_argument(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        match parse_observables(&body) {
            Ok(observables) => {
                prop_assert!(value.is_array());
                for o in observables {
                    prop_assert!(!o.value.trim().is_empty() && !o.kind.trim().is_empty());
                }
            }
            Err(error) => prop_assert_eq!(error.code(), "invalid argument"),
        }
    }

    #[test]
    fn the_collector_keeps_what_sorting_everything_would(
        years in prop::collection::vec(2000u32..2010, 0..200),
        keep in 1usize..20,
        max_read in 1u64..250,
    ) {
        let mut collector = BreachCollector::new(keep, max_read);
        for (n, year) in years.iter().enumerate() {
            let record: RawRecord = serde_json::from_value(json!({
                "document_id": n.to_string(),
                "spycloud_publish_date": format!("{year}-01-01T00:00:00Z"),
            }))
            .unwrap();
            collector.add(record);
        }
        let mut read: Vec<(usize, u32)> =
            years.iter().copied().enumerate().take(max_read as usize).collect();
        read.sort_by_key(|(_, year)| std::cmp::Reverse(*year));
        let expected: Vec<String> = read.iter().take(keep).map(|(n, _)| n.to_string()).collect();
        let kept: Vec<String> = collector
            .finish()
            .breaches
            .into_iter()
            .map(|b| b.document_id.unwrap())
            .collect();
        prop_assert_eq!(kept, expected);
    }

    #[test]
    fn any_module_settings_are_read_without_panic_and_each_bad_one_warns_once(
        severity in json_value(), since in json_value(), passwords in json_value(),
    ) {
        let claims = json!({"SEVERITY": severity, "SINCE_DAYS": since, "PASSWORDS": passwords});
        let settings = ModuleSettings::from_claims(claims.as_object().unwrap());
        let set = usize::from(settings.severity.is_some())
            + usize::from(settings.since_days.is_some())
            + usize::from(settings.passwords.is_some());
        prop_assert!(set + settings.invalid.len() <= 3);
        prop_assert_eq!(settings.warnings().len(), settings.invalid.len());
    }
}
