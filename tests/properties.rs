//! Property tests: whatever a caller or SpyCloud sends, the relay answers in the envelope and
//! never panics.

mod common;

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use spycloud_relay::domain::{
    BreachRecord, Catalog, Findings, Lookup, MappingOptions, Observable, ObservableFindings,
    ObservableType, RawRecord,
};
use spycloud_relay::ports::CredentialDecoder;

use common::strategies::json_value;

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
    fn any_records_and_catalogs_map_without_panic(
        records in prop::collection::vec(record(), 0..8),
        catalogs in prop::collection::vec(catalog(), 0..6),
    ) {
        let breaches: Vec<BreachRecord> = records
            .into_iter()
            .filter_map(|fields| BreachRecord::try_from(RawRecord(fields)).ok())
            .collect();
        // One catalog per id (the first), as SpyCloud answers.
        let mut by_id = HashMap::new();
        for catalog in catalogs.into_iter().filter_map(|c| serde_json::from_value::<Catalog>(c).ok()) {
            by_id.entry(catalog.id).or_insert(catalog);
        }
        let count = breaches.len();
        let findings = Findings {
            observables: vec![ObservableFindings {
                observable: Observable::new("email", "a@example.com"),
                records: breaches,
                catalogs: by_id.into_values().collect(),
                warnings: Vec::new(),
            }],
            ..Findings::default()
        };
        let bundle = findings.to_ctim(&MappingOptions::default());
        prop_assert_eq!(bundle.sightings.len(), count);
        let response = bundle.into_response();
        prop_assert!(response.as_ref().is_ok_and(|r| r.get("data").is_some()));
        // Whatever SpyCloud sends, the answer is valid CTIM.
        let problems = common::ctim::problems(&response.unwrap_or_default());
        prop_assert!(problems.is_empty(), "{:?}", problems);
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
        let decoder = spycloud_relay::adapters::JwtDecoder::new(
            spycloud_relay::adapters::JwtSettings {
                jwks_hosts: "127.0.0.1:9".into(),
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
