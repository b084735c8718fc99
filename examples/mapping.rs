//! The mapping alone, without a runtime or a network: SpyCloud's JSON in, SecureX's CTIM out.
//! This is all the crate holds without features (`default-features = false`).
//!
//! ```sh
//! cargo run --example mapping
//! ```

use serde_json::json;
use spycloud_relay::domain::{BreachRecord, Catalog, Observable, RawRecord};
use spycloud_relay::domain::{Findings, MappingOptions, ObservableFindings, PasswordPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One record as SpyCloud's `breach/data/emails/...` sends it, and its breach catalog.
    let record: RawRecord = serde_json::from_value(json!({
        "email": "pat@example.com",
        "password": "hunter22",
        "source_id": 7,
        "severity": 20,
        "document_id": "b1c2d3",
        "spycloud_publish_date": "2024-03-01T00:00:00Z",
    }))?;
    let catalog: Catalog = serde_json::from_value(json!({
        "id": 7,
        "uuid": "0b0b0b0b-0000-4000-8000-000000000007",
        "title": "Example Forum",
        "description": "A forum's user table, leaked in 2024.",
        "site": "forum.example.com",
        "confidence": 1,
        "spycloud_publish_date": "2024-03-01T00:00:00Z",
    }))?;

    let options = MappingOptions {
        passwords: PasswordPolicy::Masked,
        ..MappingOptions::default()
    };
    // What a lookup of pat@example.com found: the record and its catalog.
    let findings = Findings {
        observables: vec![ObservableFindings {
            observable: Observable::new("email", "pat@example.com"),
            records: vec![BreachRecord::try_from(record)?],
            catalogs: vec![catalog],
            warnings: Vec::new(),
        }],
        ..Findings::default()
    };
    let bundle = findings.to_ctim(&options);
    assert_eq!(
        (bundle.sightings.len(), bundle.indicators.len()),
        (1, 1),
        "one sighting of one breach"
    );
    println!("{}", serde_json::to_string_pretty(&bundle)?);
    Ok(())
}
