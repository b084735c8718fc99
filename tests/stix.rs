//! STIX 2.1: the rules of docs/RULES.md's *STIX 2.1* section (R35 onwards), one test each;
//! snapshots of the bundles for the CTIM `observe_*` scenarios (`snapshots/stix_*.snap`);
//! `lookup --format stix` against a wiremock SpyCloud and `lookup --demo` offline. Every bundle
//! goes through OASIS's validator and the `stix2` parser (`common::stix`).

mod common;

use std::collections::HashSet;
use std::process::{Command, Output};

use common::app::{TestApp, app_with_alice, sample, spawn_app};
use common::jwt::API_KEY;
use common::stix::{assert_valid, problems, problems_with, stix2_ids};
use serde_json::{Value, json};
use spycloud_relay::Relay;
use spycloud_relay::domain::{
    ApiKey, BreachRecord, Catalog, Credentials, EntitiesLimit, Findings, MappingOptions,
    Observable, ObservableFindings, PasswordPolicy, RawRecord, Tlp,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// Findings of one observable: `records` (SpyCloud's JSON) and `catalogs`.
fn findings(kind: &str, value: &str, records: Value, catalogs: Value) -> Findings {
    let records: Vec<RawRecord> = serde_json::from_value(records).expect("records");
    let catalogs: Vec<Catalog> = serde_json::from_value(catalogs).expect("catalogs");
    Findings {
        observables: vec![ObservableFindings {
            observable: Observable::new(kind, value),
            records: records
                .into_iter()
                .map(|r| BreachRecord::try_from(r).expect("a valid record"))
                .collect(),
            catalogs,
            warnings: Vec::new(),
        }],
        ..Findings::default()
    }
}

/// Alice's four records (breach, infostealer, combo list, unknown catalog) and the catalogs.
fn alice() -> Findings {
    let alice = "alice@example.com";
    findings(
        "email",
        alice,
        json!([
            sample::infostealer(alice),
            sample::orphan(alice),
            sample::combo(alice),
            sample::breach(alice)
        ]),
        Value::from(sample::catalogs()),
    )
}

fn objects(bundle: &Value) -> &[Value] {
    bundle["objects"].as_array().map_or(&[], Vec::as_slice)
}

fn of_type<'b>(bundle: &'b Value, kind: &str) -> Vec<&'b Value> {
    objects(bundle)
        .iter()
        .filter(|o| o["type"] == kind)
        .collect()
}

fn stix(findings: &Findings) -> Value {
    findings.to_stix(&MappingOptions::default())
}

/// SDOs and SROs: what has an author.
const AUTHORED: [&str; 3] = ["incident", "relationship", "extension-definition"];
/// The SCO types the relay writes.
const SCOS: [&str; 9] = [
    "email-addr",
    "user-account",
    "domain-name",
    "url",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "directory",
    "file",
];

// RULES R35
#[test]
fn a_bundle_holds_the_author_the_marking_and_the_extension_then_each_record_each_id_once() {
    let mut repeated = alice();
    let again = repeated.observables[0].clone();
    repeated.observables.push(again);
    let bundle = stix(&repeated);
    assert_eq!(bundle["type"], "bundle");
    let types: Vec<&str> = objects(&bundle)
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types[..4],
        [
            "identity",
            "marking-definition",
            "extension-definition",
            "incident"
        ]
    );
    // Looked up twice, found once: every id once.
    let ids: Vec<&str> = objects(&bundle)
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    assert_eq!(ids.len(), objects(&stix(&alice())).len());
    assert_eq!(of_type(&bundle, "incident").len(), 4);
    // Each incident is followed by its observables and their relationships to it.
    let first_sco = types.iter().position(|t| SCOS.contains(t)).unwrap();
    assert_eq!(first_sco, 4);
    // Every object is STIX 2.1; the bundle itself has no version.
    assert!(objects(&bundle).iter().all(|o| o["spec_version"] == "2.1"));
    assert!(bundle.get("spec_version").is_none());
    assert_valid(&[bundle]);
}

// RULES R35
#[test]
fn no_records_give_a_bundle_of_the_author_alone_with_an_id_from_its_content() {
    let empty = stix(&Findings::default());
    assert_eq!(
        types_of(&empty),
        ["identity"],
        "a bundle's objects is never empty"
    );
    let full = stix(&alice());
    // The same findings give the same bundle, id included; other findings another id.
    assert_eq!(stix(&alice()), full);
    assert_ne!(empty["id"], full["id"]);
    let green = alice().to_stix(&MappingOptions {
        tlp: Tlp::Green,
        ..MappingOptions::default()
    });
    assert_ne!(green["id"], full["id"]);
    let id = full["id"].as_str().unwrap();
    assert!(
        id.starts_with("bundle--") && id.as_bytes()[22] == b'5',
        "{id}: UUIDv5"
    );
    assert_valid(&[empty, full]);
}

fn types_of(bundle: &Value) -> Vec<&str> {
    objects(bundle)
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect()
}

// RULES R36
#[test]
fn spycloud_is_the_author_of_every_sdo_and_sro_under_opencti_s_id_for_it() {
    let bundle = stix(&alice());
    let identity = &objects(&bundle)[0];
    assert_eq!(identity["name"], "SpyCloud");
    assert_eq!(identity["identity_class"], "organization");
    // pycti's Identity.generate_id("SpyCloud", "organization"): UUIDv5 in the STIX namespace
    // of {"identity_class":"organization","name":"spycloud"}.
    assert_eq!(
        identity["id"],
        "identity--115e787b-4b83-59ef-b350-aeb7b1736c74"
    );
    assert_eq!(identity["created"], identity["modified"]);
    for object in objects(&bundle) {
        let kind = object["type"].as_str().unwrap();
        if AUTHORED.contains(&kind) {
            assert_eq!(object["created_by_ref"], identity["id"], "{kind}");
        } else {
            assert!(object.get("created_by_ref").is_none(), "{kind}");
        }
    }
    assert_valid(&[bundle]);
}

// RULES R37
#[test]
fn every_object_made_of_spycloud_data_carries_the_tlp_marking_amber_unless_told() {
    let mut bundles = Vec::new();
    for (tlp, name, id) in [
        (
            None,
            "TLP:AMBER",
            "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        ),
        (
            Some(Tlp::White),
            "TLP:WHITE",
            "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        ),
        (
            Some(Tlp::Green),
            "TLP:GREEN",
            "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        ),
        (
            Some(Tlp::Red),
            "TLP:RED",
            "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        ),
    ] {
        let options = MappingOptions {
            tlp: tlp.unwrap_or_default(),
            ..MappingOptions::default()
        };
        let bundle = alice().to_stix(&options);
        let marking = &objects(&bundle)[1];
        assert_eq!(
            (
                &marking["id"],
                &marking["name"],
                &marking["definition_type"]
            ),
            (&json!(id), &json!(name), &json!("tlp"))
        );
        assert_eq!(marking["created"], "2017-01-20T00:00:00.000Z");
        for object in objects(&bundle) {
            let kind = object["type"].as_str().unwrap();
            let marked = !matches!(
                kind,
                "identity" | "marking-definition" | "extension-definition"
            );
            let expected = marked.then(|| json!([id]));
            assert_eq!(
                object.get("object_marking_refs"),
                expected.as_ref(),
                "{kind}"
            );
        }
        bundles.push(bundle);
    }
    assert_valid(&bundles);
}

// RULES R38
#[test]
fn one_incident_per_record_named_dated_and_linked_from_spycloud_with_a_stable_id() {
    let bundle = stix(&alice());
    let incidents = of_type(&bundle, "incident");
    let infostealer = incidents[0];
    assert_eq!(
        infostealer["name"],
        "SpyCloud critical alert on alice@example.com"
    );
    assert_eq!(infostealer["created"], "2021-06-01T00:00:00.000Z");
    assert_eq!(infostealer["modified"], infostealer["created"]);
    assert_eq!(
        infostealer["description"],
        "Present in Russian Password Stealer.\n\nAn information stealer targeting Windows users."
    );
    assert_eq!(
        infostealer["external_references"],
        json!([
            {"source_name": "SpyCloud",
             "url": "https://portal.spycloud.com/breach/catalog/1293a093-5b3b-42c5-aa90-d5784ea8374f",
             "external_id": "1293a093-5b3b-42c5-aa90-d5784ea8374f",
             "description": "Russian Password Stealer"},
            {"source_name": "SpyCloud", "external_id": "doc-infostealer-1",
             "description": "SpyCloud breach record"}
        ])
    );
    // The id is SpyCloud's document_id's, whatever else the record says or who looked it up.
    let mut changed = sample::infostealer("bob@example.com");
    changed["severity"] = json!(2);
    let other = stix(&findings(
        "domain",
        "example.com",
        json!([changed]),
        json!([]),
    ));
    assert_eq!(of_type(&other, "incident")[0]["id"], infostealer["id"]);
    // Without a document_id, the whole record's: the same record, the same id.
    let mut undocumented = sample::breach("alice@example.com");
    undocumented.as_object_mut().unwrap().remove("document_id");
    let id = |record: &Value| {
        let bundle = stix(&findings(
            "email",
            "alice@example.com",
            json!([record]),
            json!([]),
        ));
        of_type(&bundle, "incident")[0]["id"].clone()
    };
    assert_eq!(id(&undocumented), id(&undocumented));
    let mut later = undocumented.clone();
    later["spycloud_publish_date"] = json!("2017-02-01T00:00:00Z");
    assert_ne!(id(&undocumented), id(&later));
    // ... but its secrets: an id must not be a way to check a guessed password.
    let mut other_password = undocumented.clone();
    other_password["password"] = json!("another secret");
    assert_eq!(id(&undocumented), id(&other_password));
    // An unknown catalog: no portal link, a generic description.
    let orphan = incidents[1];
    assert_eq!(orphan["description"], "Present in a SpyCloud breach.");
    assert_eq!(orphan["external_references"].as_array().unwrap().len(), 1);
    assert_valid(&[bundle, other]);
}

fn extension(incident: &Value) -> &Value {
    let extensions = incident["extensions"].as_object().unwrap();
    assert_eq!(extensions.len(), 1);
    extensions.values().next().unwrap()
}

// RULES R39
#[test]
fn spycloud_severity_codes_become_stix_severities() {
    let mut bundles = Vec::new();
    for (code, level) in [
        (0, "low"),
        (2, "low"),
        (3, "medium"),
        (5, "medium"),
        (6, "high"),
        (20, "high"),
        (21, "critical"),
        (25, "critical"),
        (26, "critical"),
        (99, "critical"),
    ] {
        let mut record = sample::breach("alice@example.com");
        record["severity"] = json!(code);
        let bundle = stix(&findings(
            "email",
            "alice@example.com",
            json!([record]),
            json!([]),
        ));
        let incident = of_type(&bundle, "incident")[0];
        assert_eq!(extension(incident)["severity"], level, "{code}");
        assert_eq!(extension(incident)["severity_code"], code, "{code}");
        let name = format!("SpyCloud {level} alert on alice@example.com");
        assert_eq!(incident["name"], name.as_str());
        bundles.push(bundle);
    }
    // No score, no severity.
    let mut unscored = sample::breach("alice@example.com");
    unscored.as_object_mut().unwrap().remove("severity");
    let bundle = stix(&findings(
        "email",
        "alice@example.com",
        json!([unscored]),
        json!([]),
    ));
    let incident = of_type(&bundle, "incident")[0];
    assert!(extension(incident).get("severity").is_none());
    assert_eq!(incident["name"], "SpyCloud alert on alice@example.com");
    bundles.push(bundle);
    assert_valid(&bundles);
}

// RULES R40
#[test]
fn the_exposure_type_is_infostealer_combo_list_or_breach() {
    let bundle = stix(&alice());
    let exposures: Vec<(&Value, &Value)> = of_type(&bundle, "incident")
        .into_iter()
        .map(|i| (&extension(i)["exposure_type"], &i["labels"][0]))
        .collect();
    let expected = ["infostealer", "breach", "combo-list", "breach"];
    for ((exposure, label), expected) in exposures.into_iter().zip(expected) {
        assert_eq!(
            (exposure.as_str(), label.as_str()),
            (Some(expected), Some(expected))
        );
    }
    // An infected device makes an infostealer record, whatever its catalog says.
    let mut stolen = sample::infostealer("alice@example.com");
    stolen["source_id"] = json!(16579);
    let combo_catalog = Value::from(sample::catalogs());
    let bundle = stix(&findings(
        "email",
        "alice@example.com",
        json!([stolen]),
        combo_catalog,
    ));
    let incident = of_type(&bundle, "incident")[0];
    assert_eq!(extension(incident)["exposure_type"], "infostealer");
    assert_eq!(extension(incident)["catalog"]["spycloud_id"], 16579);
}

// RULES R41
#[test]
fn what_stix_lacks_travels_in_the_extension_never_in_a_custom_property() {
    let bundle = stix(&alice());
    let definition = of_type(&bundle, "extension-definition")[0];
    assert_eq!(definition["extension_types"], json!(["property-extension"]));
    assert_eq!(
        (&definition["name"], &definition["version"]),
        (&json!("SpyCloud breach record"), &json!("1.0.0"))
    );
    let incidents = of_type(&bundle, "incident");
    let infostealer = incidents[0];
    let extensions = infostealer["extensions"].as_object().unwrap();
    assert_eq!(
        extensions.keys().collect::<Vec<_>>(),
        [definition["id"].as_str().unwrap()]
    );
    assert_eq!(
        extension(infostealer),
        &json!({
            "extension_type": "property-extension",
            "exposure_type": "infostealer",
            "severity": "critical",
            "severity_code": 25,
            "document_id": "doc-infostealer-1",
            "sighting_count": 2,
            "catalog": {
                "spycloud_id": 17494, "uuid": "1293a093-5b3b-42c5-aa90-d5784ea8374f",
                "title": "Russian Password Stealer",
                "description": "An information stealer targeting Windows users.",
                "published": "2020-04-02T00:00:00.000Z"
            },
            "device": {
                "machine_id": "machine-42", "hostname": "ALICE-PC",
                "operating_system": "Windows 10 Pro",
                "infected_path": "C:\\Users\\alice\\AppData\\Local\\Temp\\stealer.exe",
                "ip_addresses": ["198.51.100.7"]
            }
        })
    );
    // No object has an `x_` property or a property of its own at the top level.
    let core: HashSet<&str> = [
        "type",
        "spec_version",
        "id",
        "created",
        "modified",
        "created_by_ref",
        "name",
        "description",
        "labels",
        "object_marking_refs",
        "external_references",
        "extensions",
        "identity_class",
        "sectors",
        "contact_information",
        "definition_type",
        "definition",
        "schema",
        "version",
        "extension_types",
        "relationship_type",
        "source_ref",
        "target_ref",
        "value",
        "account_login",
        "credential",
        "path",
        "parent_directory_ref",
    ]
    .into();
    for object in objects(&bundle) {
        for key in object.as_object().unwrap().keys() {
            assert!(core.contains(key.as_str()), "{}: {key}", object["type"]);
        }
    }
    assert_valid(&[bundle]);
}

// RULES R42
#[test]
fn a_record_names_its_observables_valid_and_normalized() {
    let mut record = sample::infostealer("Alice@Example.com");
    record["username"] = json!("alice77");
    record["target_domain"] = json!("Example.COM");
    record["target_subdomain"] = json!("not a domain");
    record["ip_addresses"] = json!(["198.51.100.7", "198.51.100.300", "2001:DB8::7"]);
    record["mac_address"] = json!("00-1A-2B-3C-4D-5E");
    let bundle = stix(&findings("ip", "198.51.100.7", json!([record]), json!([])));
    // The observables without the properties every SCO has.
    let values: Vec<Value> = objects(&bundle)
        .iter()
        .filter(|o| SCOS.contains(&o["type"].as_str().unwrap()))
        .map(|o| {
            let mut o = o.clone();
            let object = o.as_object_mut().unwrap();
            for common in ["id", "spec_version", "object_marking_refs"] {
                object.remove(common);
            }
            o
        })
        .collect();
    let directory = of_type(&bundle, "directory")[0]["id"].clone();
    assert_eq!(
        values,
        [
            // The looked-up value first (the record's IP address is the same object).
            json!({"type": "ipv4-addr", "value": "198.51.100.7"}),
            json!({"type": "email-addr", "value": "Alice@Example.com"}),
            json!({"type": "user-account", "account_login": "alice77", "credential": "Sup3rSecret!"}),
            json!({"type": "url", "value": "https://login.example.com"}),
            json!({"type": "domain-name", "value": "example.com"}),
            json!({"type": "ipv6-addr", "value": "2001:db8::7"}),
            json!({"type": "mac-addr", "value": "00:1a:2b:3c:4d:5e"}),
            json!({"type": "directory", "path": "C:\\Users\\alice\\AppData\\Local\\Temp"}),
            json!({"type": "file", "name": "stealer.exe", "parent_directory_ref": directory}),
        ]
    );
    assert_valid(&[bundle]);
}

// RULES R42
#[test]
fn observable_ids_are_the_ones_the_stix2_library_gives() {
    let mut record = sample::infostealer("alice@example.com");
    record["username"] = json!("ålice \"77\"");
    record["target_domain"] = json!("example.com");
    record["ip_addresses"] = json!(["198.51.100.7", "2001:db8::7"]);
    record["mac_address"] = json!("00:1a:2b:3c:4d:5e");
    let bundle = stix(&findings("user", "alice77", json!([record]), json!([])));
    let mut unix_path = sample::infostealer("bob@example.com");
    unix_path["infected_path"] = json!("/tmp/stealer");
    let other = stix(&findings(
        "domain",
        "example.com",
        json!([unix_path]),
        json!([]),
    ));
    let scos: Vec<Value> = objects(&bundle)
        .iter()
        .chain(objects(&other))
        .filter(|o| SCOS.contains(&o["type"].as_str().unwrap()))
        .cloned()
        .collect();
    let kinds: HashSet<&str> = scos.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.len(),
        SCOS.len(),
        "every SCO type is checked: {kinds:?}"
    );
    if let Some(theirs) = stix2_ids(&scos) {
        let ours: Vec<&str> = scos.iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(ours, theirs);
    }
    assert_valid(&[bundle, other]);
}

// RULES R43
#[test]
fn each_observable_is_related_to_its_incident_once_authored_and_dated_like_it() {
    let bundle = stix(&alice());
    let incidents = of_type(&bundle, "incident");
    let relationships = of_type(&bundle, "relationship");
    let scos: Vec<&Value> = objects(&bundle)
        .iter()
        .filter(|o| SCOS.contains(&o["type"].as_str().unwrap()))
        .collect();
    for relationship in &relationships {
        assert_eq!(relationship["relationship_type"], "related-to");
        let incident = incidents
            .iter()
            .find(|i| i["id"] == relationship["target_ref"])
            .expect("targets an incident");
        assert!(scos.iter().any(|o| o["id"] == relationship["source_ref"]));
        assert_eq!(relationship["created"], incident["created"]);
        assert_eq!(relationship["modified"], incident["modified"]);
    }
    // Alice's email is related to each of her four incidents; each pair once.
    let email = scos.iter().find(|o| o["type"] == "email-addr").unwrap();
    let to_email = relationships
        .iter()
        .filter(|r| r["source_ref"] == email["id"])
        .count();
    assert_eq!(to_email, 4);
    let pairs: HashSet<(&Value, &Value)> = relationships
        .iter()
        .map(|r| (&r["source_ref"], &r["target_ref"]))
        .collect();
    assert_eq!(pairs.len(), relationships.len());
    // Every observable is related to some incident.
    for sco in &scos {
        assert!(relationships.iter().any(|r| r["source_ref"] == sco["id"]));
    }
}

// RULES R44
#[test]
fn a_clear_text_password_is_written_only_when_the_policy_is_plaintext() {
    let record = sample::infostealer("alice@example.com");
    let mut hashed = sample::breach("alice@example.com");
    hashed.as_object_mut().unwrap().remove("username");
    let found = findings(
        "email",
        "alice@example.com",
        json!([record, hashed]),
        json!([]),
    );
    let mut bundles = Vec::new();
    for (policy, credential, masked) in [
        (PasswordPolicy::Plaintext, Some("Sup3rSecret!"), None),
        (PasswordPolicy::Masked, None, Some("Su**********")),
        (PasswordPolicy::Omitted, None, None),
    ] {
        let options = MappingOptions {
            passwords: policy,
            ..MappingOptions::default()
        };
        let bundle = found.to_stix(&options);
        let text = bundle.to_string();
        assert_eq!(
            text.contains("Sup3rSecret!"),
            credential.is_some(),
            "{policy:?}"
        );
        // A hash is no credential: never written.
        assert!(
            !text.contains("5f4dcc3b5aa765d61d8327deb882cf99"),
            "{policy:?}"
        );
        // Without a username, the account is the email's.
        let accounts = of_type(&bundle, "user-account");
        let expected: Vec<Value> = credential
            .map(|c| json!({"account_login": "alice@example.com", "credential": c}))
            .into_iter()
            .collect();
        let found_accounts: Vec<Value> = accounts
            .iter()
            .map(|a| json!({"account_login": a["account_login"], "credential": a["credential"]}))
            .collect();
        assert_eq!(found_accounts, expected, "{policy:?}");
        let incident = of_type(&bundle, "incident")[0];
        assert_eq!(
            extension(incident).get("masked_credential"),
            masked.map(Value::from).as_ref(),
            "{policy:?}"
        );
        bundles.push(bundle);
    }
    assert_valid(&bundles);
}

// RULES R47
#[test]
fn the_validator_and_the_parser_refuse_what_the_relay_must_not_write() {
    let valid = stix(&alice());
    let with_incident = |change: &dyn Fn(&mut Value)| {
        let mut bundle = valid.clone();
        let incident = bundle["objects"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|o| o["type"] == "incident")
            .unwrap();
        change(incident);
        bundle
    };
    let broken = [
        // OpenCTI's habit: a top-level severity (not in STIX 2.1's incident).
        with_incident(&|i| i["severity"] = json!("high")),
        // A custom property: the parser refuses it with custom content disallowed.
        with_incident(&|i| i["x_spycloud_severity"] = json!("high")),
        // A timestamp STIX does not take.
        with_incident(&|i| i["created"] = json!("2021-06-01 00:00:00")),
    ];
    let Some(found) = problems(&broken) else {
        return;
    };
    for (bundle, problems) in broken.iter().zip(found) {
        assert!(!problems.is_empty(), "{bundle}");
    }
    assert_eq!(problems(&[valid]), Some(vec![vec![]]));
}

// RULES R47
#[test]
fn an_interpreter_without_the_tools_fails_the_check_instead_of_skipping_it() {
    // A Python that is not the tools' environment: python3 on PATH, when it lacks stix2.
    let python = std::path::PathBuf::from("python3");
    let lacks_tools = Command::new(&python)
        .args(["-c", "import stix2"])
        .output()
        .is_ok_and(|output| !output.status.success());
    if !lacks_tools {
        eprintln!("SKIPPED: no python3 without stix2 on PATH to check with");
        return;
    }
    let bundle = stix(&alice());
    let failed = std::panic::catch_unwind(|| problems_with(&python, &[bundle])).unwrap_err();
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("the STIX tools are missing"), "{message}");
}

/// Runs `spycloud-relay lookup` with `args` against `api_url`.
fn lookup(args: &[&str], api_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spycloud-relay"))
        .arg("lookup")
        .args(args)
        .env_clear()
        .env("SPYCLOUD_API_URL", api_url)
        .env("SPYCLOUD_API_KEY", API_KEY)
        .env("SPYCLOUD_TIMEOUT_SECS", "2")
        .env("RELAY_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("a JSON bundle on stdout")
}

// RULES R45
#[tokio::test]
async fn lookup_format_stix_against_spycloud_keeps_what_came_before_a_fatal_error() {
    let app = app_with_alice().await;
    let carol = "carol@example.com";
    let undated = json!({"email": carol, "document_id": "doc-undated"});
    app.mount_email(carol, vec![json!([undated])]).await;
    Mock::given(method("GET"))
        .and(path("/breach/data/emails/broken@example.com"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.upstream)
        .await;
    let uri = app.upstream.uri();
    let args = [
        "--format",
        "stix",
        carol,
        "alice@example.com",
        "broken@example.com",
    ];
    let output = tokio::task::spawn_blocking(move || lookup(&args, &uri))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The fatal error on stderr, as for CTIM; the warnings (Carol's undated record) first,
    // since STIX has no place for them.
    assert!(
        stderr.contains("spycloud-relay: internal error: "),
        "{stderr}"
    );
    assert!(
        stderr
            .starts_with("spycloud-relay: warning: Skipped a SpyCloud record of carol@example.com"),
        "{stderr}"
    );
    let bundle = stdout_json(&output);
    assert_eq!(of_type(&bundle, "incident").len(), 4);
    // The same bundle as the library's for the same findings.
    assert_eq!(bundle, stix(&alice_from_spycloud(&app).await));
    assert_valid(&[bundle]);
}

// RULES R46
#[tokio::test]
async fn lookup_renders_ctim_unless_told_and_stix_with_the_tlp_asked() {
    let app = app_with_alice().await;
    let uri = app.upstream.uri();
    let outputs = tokio::task::spawn_blocking(move || {
        [
            lookup(&["alice@example.com"], &uri),
            lookup(&["--format", "ctim", "alice@example.com"], &uri),
            lookup(
                &["--format", "stix", "--tlp", "red", "alice@example.com"],
                &uri,
            ),
        ]
    })
    .await
    .unwrap();
    let [default, ctim, stix] = outputs.map(|o| {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout_json(&o)
    });
    // The same CTIM answer (sighting ids are random: compared by SpyCloud's record ids).
    let records = |bundle: &Value| -> Vec<Value> {
        let sightings = bundle["data"]["sightings"]["docs"].as_array().unwrap();
        sightings
            .iter()
            .map(|s| s["external_ids"].clone())
            .collect()
    };
    assert_eq!(records(&default), records(&ctim));
    assert_eq!(records(&ctim).len(), 4);
    assert!(default.get("type").is_none() && ctim.get("errors").is_some());
    assert_eq!(objects(&stix)[1]["name"], "TLP:RED");
    assert_valid(&[stix]);
}

// RULES R46
#[test]
fn lookup_demo_is_offline_over_the_sample_dataset_and_valid_stix() {
    // Nothing listens at this address: the demo never asks it.
    let unreachable = "http://127.0.0.1:9";
    let every = lookup(&["--demo", "--format", "stix"], unreachable);
    let one = lookup(
        &["--demo", "--format", "stix", "sam.taylor@acme.test"],
        unreachable,
    );
    let ctim = lookup(&["--demo", "sam.taylor@acme.test"], unreachable);
    for output in [&every, &one, &ctim] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
    }
    let (every, one) = (stdout_json(&every), stdout_json(&one));
    let types: HashSet<&str> = types_of(&every).into_iter().collect();
    for kind in [
        "incident",
        "email-addr",
        "domain-name",
        "ipv4-addr",
        "user-account",
        "file",
    ] {
        assert!(types.contains(kind), "{kind}: {types:?}");
    }
    assert!(!of_type(&one, "incident").is_empty());
    assert!(stdout_json(&ctim)["data"]["sightings"]["count"].as_u64() > Some(0));
    assert_valid(&[every, one]);
}

/// The relay, as a library, over the app's SpyCloud.
fn relay(app: &TestApp) -> Relay {
    Relay::builder()
        .api_url(app.upstream.uri())
        .build()
        .expect("a relay")
}

fn credentials(limit: usize) -> Credentials {
    Credentials {
        entities_limit: EntitiesLimit::new(limit).unwrap(),
        ..Credentials::new(ApiKey::parse(API_KEY).unwrap())
    }
}

async fn alice_from_spycloud(app: &TestApp) -> Findings {
    let mut findings = relay(app)
        .lookup(
            &credentials(100),
            &[Observable::new("email", "alice@example.com")],
        )
        .await;
    findings.fatal = None;
    findings
}

fn observable(kind: &str, value: &str) -> Observable {
    Observable::new(kind, value)
}

/// The CTIM `observe_*` scenarios (tests/e2e.rs, tests/observables.rs), as STIX.
#[tokio::test]
async fn the_ctim_scenarios_as_stix_bundles() {
    let app = app_with_alice().await;
    let bob = "bob@example.com";
    app.mount_email(bob, vec![json!([sample::breach(bob)])])
        .await;
    app.mount_status("/breach/data/emails/broken@example.com", 500, json!({}))
        .await;
    app.mount_status("/breach/data/usernames/broken", 500, json!({}))
        .await;
    app.mount_every_type().await;
    let device = spawn_app().await;
    let mut record = sample::infostealer("alice@example.com");
    record["ip_addresses"] = json!(["198.51.100.7", "198.51.100.300", "2001:DB8::7"]);
    record["mac_address"] = json!("00:1A:2B:3C:4D:5E");
    record["infected_time"] = json!("2021-05-30 22:10:05");
    device
        .mount_email(
            "alice@example.com",
            vec![json!([record, sample::breach("alice@example.com")])],
        )
        .await;
    device.mount_catalogs(sample::catalogs()).await;
    let forbidden = spawn_app().await;
    forbidden
        .mount_status("/breach/", 403, json!({"message": "Forbidden"}))
        .await;

    let email = |value: &str| observable("email", value);
    let scenarios: Vec<(&str, &TestApp, usize, Vec<Observable>)> = vec![
        (
            "stix_every_kind_of_record",
            &app,
            100,
            vec![email("alice@example.com"), observable("sha256", "e3b0c442")],
        ),
        (
            "stix_order_and_invalid_email",
            &app,
            100,
            vec![
                email(bob),
                email("not-an-email"),
                observable("EMAIL", "alice@example.com"),
                email(bob),
            ],
        ),
        (
            "stix_entities_limit_2",
            &app,
            2,
            vec![email("alice@example.com")],
        ),
        (
            "stix_partial_data_on_fatal_error",
            &app,
            100,
            vec![
                email("alice@example.com"),
                email("broken@example.com"),
                email("later@example.com"),
            ],
        ),
        (
            "stix_infected_device",
            &device,
            100,
            vec![email("alice@example.com")],
        ),
        (
            "stix_domain",
            &app,
            100,
            vec![observable("domain", "Example.COM.")],
        ),
        ("stix_ip", &app, 100, vec![observable("ip", "192.0.2.1")]),
        (
            "stix_ipv6",
            &app,
            100,
            vec![observable("IPv6", "2001:DB8:0:0:0:0:0:1")],
        ),
        ("stix_user", &app, 100, vec![observable("user", "alice77")]),
        (
            "stix_mixed_types_partial_data",
            &app,
            100,
            vec![
                observable("user", "alice77"),
                observable("ip", "192.0.2.300"),
                observable("sha256", "e3b0c44298fc1c149afbf4c8996fb924"),
                observable("domain", "example.com"),
                observable("ipv6", "2001:db8::1::2"),
                observable("user", "broken"),
                observable("ip", "192.0.2.1"),
            ],
        ),
        (
            "stix_upstream_403",
            &forbidden,
            100,
            vec![email("alice@example.com")],
        ),
    ];
    let mut bundles = Vec::new();
    for (name, app, limit, observables) in scenarios {
        let found = relay(app).lookup(&credentials(limit), &observables).await;
        bundles.push((name, stix(&found)));
    }
    assert_valid(&bundles.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>());
    for (name, bundle) in bundles {
        common::snapshots::with_settings(|| insta::assert_json_snapshot!(name, bundle));
    }
}
