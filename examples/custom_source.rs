//! Embedding the relay with your own breach source.
//!
//! The relay's use case only needs two ports: a [`BreachSource`] (where breach records and
//! catalogs come from) and a [`CredentialDecoder`] (who the caller is). Here the source is a
//! hard-coded in-house store and the credentials are fixed, so the relay runs without SpyCloud,
//! without a token and without a network:
//!
//! ```sh
//! cargo run --example custom_source
//! ```
//!
//! [`CredentialDecoder`]: spycloud_relay::ports::CredentialDecoder

use std::sync::Arc;

use serde_json::json;
use spycloud_relay::adapters::FixedCredentials;
use spycloud_relay::domain::{
    ApiKey, BreachQuery, Catalog, CatalogId, Credentials, EntitiesLimit, Lookup, ModuleSettings,
    Observable, RawRecord, RecordSink, SourceError,
};
use spycloud_relay::ports::BreachSource;
use spycloud_relay::ports::async_trait;
use spycloud_relay::{Relay, RelaySettings};

/// An in-house breach store: one known account, one breach, found by the account's email or
/// by its company's domain.
struct InHouseStore;

const BREACH: CatalogId = CatalogId(7);

#[async_trait]
impl BreachSource for InHouseStore {
    async fn breaches(
        &self,
        _key: &ApiKey,
        lookup: &Lookup,
        _query: &BreachQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        let known = match lookup {
            Lookup::Email(email) => email.as_str().eq_ignore_ascii_case("pat@example.com"),
            Lookup::Domain(domain) => domain.as_str() == "example.com",
            _ => false,
        };
        if !known {
            return Ok(());
        }
        // Records keep SpyCloud's shape: typed fields the mapping reads, the rest shown as-is.
        // The relay keeps the newest of what it is handed, as many as the entities limit.
        let record: RawRecord = serde_json::from_value(json!({
            "document_id": "in-house-0001",
            "source_id": BREACH.0,
            "email": "pat@example.com",
            "username": "pat",
            "password_type": "sha256",
            "severity": 5,
            "spycloud_publish_date": "2024-01-15T00:00:00Z",
        }))
        .map_err(|error| SourceError::InvalidResponse(error.to_string()))?;
        into.hits(1);
        into.add(record);
        Ok(())
    }

    async fn catalogs(
        &self,
        _key: &ApiKey,
        ids: &[CatalogId],
    ) -> Result<Vec<Catalog>, SourceError> {
        if !ids.contains(&BREACH) {
            return Ok(Vec::new());
        }
        let catalog = serde_json::from_value(json!({
            "id": BREACH.0,
            "uuid": "00000000-0000-4000-8000-000000000007",
            "title": "Example Intranet Leak",
            "description": "An invented leak of an intranet's user table.",
            "site": "intranet.example.com",
            "site_description": "An invented company intranet.",
            "confidence": 2,
            "combo_list_flag": "NO",
            "spycloud_publish_date": "2024-01-15T00:00:00Z",
            "assets": {"email": 120, "password": 120},
        }))
        .map_err(|error| SourceError::InvalidResponse(error.to_string()))?;
        Ok(vec![catalog])
    }

    async fn probe(&self, _key: &ApiKey) -> Result<(), SourceError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let credentials = Credentials {
        // This source ignores the key; a SpyCloud-backed one would send it upstream.
        api_key: ApiKey::parse("unused")?,
        entities_limit: EntitiesLimit::new(10).ok_or("the limit is above 0")?,
        settings: ModuleSettings::default(),
    };
    let relay = Relay::new(
        Arc::new(InHouseStore),
        Arc::new(FixedCredentials(credentials.clone())),
        RelaySettings::default(),
    );
    let observables: Vec<Observable> = [
        ("email", "pat@example.com"),
        ("email", "nobody@example.com"),
        ("domain", "Example.com"),
    ]
    .into_iter()
    .map(|(kind, value)| Observable {
        value: value.into(),
        kind: kind.into(),
    })
    .collect();
    let findings = relay.lookup(&credentials, &observables).await;
    let bundle = findings.to_ctim(&relay.mapping(&credentials));
    println!("{:#}", bundle.into_response()?);
    Ok(())
}
