//! Property tests: whatever a caller or SpyCloud sends, the relay answers in the envelope and
//! never panics.

mod common;

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use spycloud_relay::domain::mapping::{MappingOptions, observable_bundle};
use spycloud_relay::domain::{
    Breach, BreachCollector, BreachRecord, Catalog, CatalogId, Lookup, ModuleSettings, Observable,
    ObservableType, RecordSink, parse_observables,
};
use spycloud_relay::ports::CredentialDecoder;

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        "[0-9]{1,5}".prop_map(Value::String),
        Just(json!("2020-05-01T00:00:00Z")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A record: SpyCloud's field names with any values, plus any other fields.
fn record() -> impl Strategy<Value = Map<String, Value>> {
    let known = prop::sample::select(vec![
        "document_id",
        "source_id",
        "spycloud_publish_date",
        "severity",
        "sighting",
        "infected_machine_id",
        "email",
        "password",
        "salt",
        "cc_number",
        "domain",
    ]);
    prop::collection::vec(
        (
            prop_oneof![known.prop_map(str::to_owned), ".{0,8}"],
            json_value(),
        ),
        0..10,
    )
    .prop_map(|fields| fields.into_iter().collect())
}

fn catalog() -> impl Strategy<Value = Value> {
    (
        1u64..20,
        json_value(),
        json_value(),
        json_value(),
        json_value(),
        json_value(),
    )
        .prop_map(|(id, title, site, confidence, combo, assets)| {
            json!({"id": id, "title": title, "site": site, "confidence": confidence,
                   "combo_list_flag": combo, "assets": assets, "uuid": "u", "description": "d",
                   "site_description": site, "spycloud_publish_date": title})
        })
}

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
    fn any_records_and_catalogs_map_without_panic(
        records in prop::collection::vec(record(), 0..8),
        catalogs in prop::collection::vec(catalog(), 0..6),
    ) {
        let breaches: Vec<Breach> = records
            .into_iter()
            .filter_map(|fields| Breach::try_from(BreachRecord(fields)).ok())
            .collect();
        let catalogs: HashMap<CatalogId, Catalog> = catalogs
            .into_iter()
            .filter_map(|c| serde_json::from_value::<Catalog>(c).ok())
            .map(|c| (c.id, c))
            .collect();
        let email = Observable { value: "a@example.com".into(), kind: "email".into() };
        let count = breaches.len();
        let bundle = observable_bundle(&email, breaches, |id| catalogs.get(&id), &MappingOptions::default());
        prop_assert_eq!(bundle.sightings.len(), count);
        let response = bundle.into_response();
        prop_assert!(response.is_ok_and(|r| r.get("data").is_some()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_value_of_any_type_is_a_lookup_sent_in_a_stable_form_or_the_contracts_warning(
        kind in prop::sample::select(ObservableType::ALL.to_vec()),
        value in prop_oneof![
            ".{0,40}",
            "[A-Za-z0-9.:@_-]{0,40}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "[0-9a-fA-F:]{2,39}",
        ],
    ) {
        match Lookup::parse(kind, &value) {
            // What is sent is itself valid, and sent the same way again.
            Ok(lookup) => {
                prop_assert_eq!(lookup.kind(), kind);
                let sent = lookup.to_string();
                let again = Lookup::parse(kind, &sent).unwrap();
                prop_assert_eq!(again.to_string(), sent);
            }
            Err(invalid) => {
                let message = invalid.to_string();
                let expected_end = format!(" is not a valid {}", kind.what());
                prop_assert!(message.ends_with(&expected_end));
            }
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
            let record: BreachRecord = serde_json::from_value(json!({
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_token_is_refused_with_a_reason_not_a_panic(
        token in prop_oneof![
            ".{0,64}",
            "[A-Za-z0-9_-]{0,20}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,20}",
        ],
        claims in json_value(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // Allow-list and scheme make sure no network request leaves the machine.
        let decoder = spycloud_relay::adapters::jwt::JwtDecoder::new(
            spycloud_relay::adapters::jwt::JwtSettings {
                allow_list: "127.0.0.1:9".parse().unwrap(),
                scheme: "http".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let with_claims = common::jwt::with_payload_segment(
            &SIGNED,
            &base64url(&serde_json::to_vec(&claims).unwrap()),
        );
        for candidate in [token.as_str(), with_claims.as_str()] {
            let outcome = runtime.block_on(decoder.decode(candidate, "http://relay"));
            prop_assert!(outcome.is_err());
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A real signed token, minted once: its header and signature frame the arbitrary claims.
static SIGNED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    common::jwt::TokenMinter.mint(common::jwt::KID_1, &json!({"a": 1}))
});
