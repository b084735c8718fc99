//! SpyCloud to CTIM: every rule that decides a SecureX field lives here, as pure functions.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::breach::{BreachRecord, SeverityBand};
use super::catalog::{Catalog, CatalogId};
use super::ctim::{
    Bundle, Column, DataTable, ExternalReference, Indicator, MARKDOWN, MED_STRING, Observable,
    ObservedTime, Relation, Relationship, SCHEMA_VERSION, SHORT_STRING, SOURCE_NAME, Sighting,
    Target, ValidTime, web_url, within_limit,
};
use super::device::Device;
use super::error::Warning;
use super::findings::Findings;
use super::observable::EMAIL;
use super::stix::Tlp;
use super::time::Timestamp;

/// How the relay shows secrets found in breach records: the password, salt and payment-card
/// columns of a sighting's data table.
///
/// ```
/// use spycloud_relay::domain::{
///     Findings, MappingOptions, Observable, ObservableFindings, PasswordPolicy, RawRecord,
/// };
///
/// let table = |passwords| -> Result<_, Box<dyn std::error::Error>> {
///     let record: RawRecord = serde_json::from_str(r#"{"password": "hunter22",
///         "username": "pat", "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#)?;
///     let options = MappingOptions { passwords, ..MappingOptions::default() };
///     let findings = Findings {
///         observables: vec![ObservableFindings {
///             observable: Observable::new("email", "pat@example.com"),
///             records: vec![record.try_into()?],
///             catalogs: Vec::new(),
///             warnings: Vec::new(),
///         }],
///         ..Findings::default()
///     };
///     let bundle = findings.to_ctim(&options);
///     Ok(bundle.sightings[0].data.rows[0].clone())
/// };
/// assert_eq!(table(PasswordPolicy::Plaintext)?, ["hunter22", "pat"]);
/// assert_eq!(table(PasswordPolicy::Masked)?, ["hu******", "pat"]);
/// assert_eq!(table(PasswordPolicy::Omitted)?, ["pat"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordPolicy {
    /// As SpyCloud sent them (the Python relay's behaviour).
    #[default]
    Plaintext,
    /// The first two characters, then one `*` per remaining character.
    Masked,
    /// The columns are left out of the data table.
    Omitted,
}

impl PasswordPolicy {
    /// The record field `name`'s `value` as this policy shows it: a secret (a password, its
    /// salt, payment-card data) as it is, masked or left out (`None`); any other field as it is.
    ///
    /// ```
    /// use serde_json::json;
    /// use spycloud_relay::domain::PasswordPolicy;
    ///
    /// assert_eq!(PasswordPolicy::Masked.apply("password", json!("hunter22")), Some(json!("hu******")));
    /// assert_eq!(PasswordPolicy::Omitted.apply("password", json!("hunter22")), None);
    /// assert_eq!(PasswordPolicy::Omitted.apply("username", json!("pat")), Some(json!("pat")));
    /// ```
    pub fn apply(self, name: &str, value: Value) -> Option<Value> {
        if !SECRET_FIELDS.contains(&name) {
            return Some(value);
        }
        match self {
            Self::Plaintext => Some(value),
            Self::Masked => Some(mask(value)),
            Self::Omitted => None,
        }
    }
}

/// Record fields [`PasswordPolicy`] applies to: passwords, salts and payment-card data.
pub const SECRET_FIELDS: [&str; 8] = [
    "password",
    "password_plaintext",
    "salt",
    "cc_number",
    "cc_code",
    "cc_expiration",
    "cc_bin",
    "cc_last_four",
];

/// What the mapping needs besides the data.
///
/// ```
/// use spycloud_relay::domain::{MappingOptions, PasswordPolicy};
///
/// let options = MappingOptions::default();
/// assert_eq!(options.passwords, PasswordPolicy::Plaintext);
/// assert_eq!(
///     options.catalog_url("0b1c"),
///     "https://portal.spycloud.com/breach/catalog/0b1c"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingOptions {
    /// Base of portal links, e.g. `https://portal.spycloud.com` (no trailing slash needed).
    pub portal_url: String,
    /// How secrets appear in data tables (and whether STIX carries a clear-text credential).
    pub passwords: PasswordPolicy,
    /// The TLP marking of the STIX output.
    pub tlp: Tlp,
}

impl Default for MappingOptions {
    fn default() -> Self {
        Self {
            portal_url: "https://portal.spycloud.com".to_owned(),
            passwords: PasswordPolicy::default(),
            tlp: Tlp::default(),
        }
    }
}

impl MappingOptions {
    /// The portal page of a catalog.
    pub fn catalog_url(&self, uuid: &str) -> String {
        format!(
            "{}/breach/catalog/{uuid}",
            self.portal_url.trim_end_matches('/')
        )
    }
}

/// The severity of a sighting: `Medium` for a combo list, else SpyCloud's score in bands
/// (0–2 `Low`, 3–5 `Medium`, above 5 `High`), `Unknown` without a score.
pub fn severity(breach: &BreachRecord, catalog: Option<&Catalog>) -> &'static str {
    if catalog.is_some_and(Catalog::is_combo_list) {
        return "Medium";
    }
    SeverityBand::of(breach.severity).label()
}

/// An indicator's confidence from the catalog's: 1 `High`, 2 `Medium`, anything else `Low`.
pub fn confidence(score: Option<&Value>) -> &'static str {
    match score.and_then(Value::as_i64) {
        Some(1) => "High",
        Some(2) => "Medium",
        _ => "Low",
    }
}

/// The stable id of a catalog's indicator: uuid5 of the id in the X.500 namespace.
pub fn indicator_id(id: CatalogId) -> String {
    format!(
        "transient:indicator-{}",
        Uuid::new_v5(&Uuid::NAMESPACE_X500, id.to_string().as_bytes())
    )
}

fn transient_id(kind: &str) -> String {
    format!("transient:{kind}-{}", Uuid::new_v4())
}

/// A URL for a site SpyCloud names without a scheme.
fn site_url(site: &str) -> String {
    if site.contains("://") {
        site.to_owned()
    } else {
        format!("https://{site}")
    }
}

/// The `Leaked_From` relation to the breached site, when the catalog names a real one.
pub fn relations(observable: &Observable, catalog: Option<&Catalog>) -> Vec<Relation> {
    catalog
        .and_then(Catalog::usable_site)
        .map(|site| Relation {
            origin: "Spycloud Breach Module",
            source: observable.clone(),
            related: Observable {
                value: site.into(),
                kind: "domain".into(),
            },
            relation: "Leaked_From",
        })
        .into_iter()
        .collect()
}

/// `document_id`, `source_id` and `infected_machine_id`, those present, in that order.
pub fn external_ids(breach: &BreachRecord) -> Vec<String> {
    [
        breach.document_id.clone(),
        breach.source_id.map(|id| id.to_string()),
        breach.infected_machine_id.clone(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The record's other fields as a one-row table, in SpyCloud's order, secrets as the policy says.
/// Takes the fields by value: names and values move into the table, nothing is copied.
pub fn data_table(fields: Map<String, Value>, policy: PasswordPolicy) -> DataTable {
    let mut columns = Vec::with_capacity(fields.len());
    let mut row = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let Some(value) = policy.apply(&name, value) else {
            continue;
        };
        columns.push(Column {
            name,
            kind: "string",
            required: !value.is_null(),
        });
        row.push(value);
    }
    DataTable {
        columns,
        rows: vec![row],
    }
}

pub(super) fn mask(value: Value) -> Value {
    let text = match value {
        Value::Null => return Value::Null,
        Value::String(s) => s,
        other => other.to_string(),
    };
    let masked: String = text
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 2 { c } else { '*' })
        .collect();
    Value::String(masked)
}

/// A sighting's observables (and its target's): the looked-up observable; for a type other
/// than `email`, followed by the record's `email` when it has a non-empty one.
pub fn sighting_observables(observable: &Observable, breach: &BreachRecord) -> Vec<Observable> {
    let mut observables = vec![observable.clone()];
    if *observable.kind != *EMAIL
        && let Some(Value::String(email)) = breach.data.get("email")
        && !email.is_empty()
    {
        observables.push(Observable {
            value: email.as_str().into(),
            kind: EMAIL.into(),
        });
    }
    observables
}

/// The sighting of `observable` in one breach record.
pub fn sighting(
    observable: &Observable,
    breach: BreachRecord,
    catalog: Option<&Catalog>,
    options: &MappingOptions,
) -> Sighting {
    let observed_time = ObservedTime {
        start_time: breach.published,
        end_time: breach.published,
    };
    let title = catalog.and_then(|c| c.title.as_deref()).unwrap_or("breach");
    let observables = sighting_observables(observable, &breach);
    Sighting {
        id: transient_id("sighting"),
        count: breach.sighting_count,
        observables: observables.clone(),
        observed_time,
        relations: relations(observable, catalog),
        external_ids: external_ids(&breach),
        severity: severity(&breach, catalog),
        targets: [Target {
            kind: "email",
            observables,
            observed_time,
            os: None,
        }]
        .into_iter()
        .chain(
            breach
                .device
                .as_ref()
                .and_then(|d| device_target(d, breach.published)),
        )
        .collect(),
        data: data_table(breach.data, options.passwords),
        description: within_limit(format!("Present in {title}"), MARKDOWN),
        kind: "sighting",
        schema_version: SCHEMA_VERSION,
        source: SOURCE_NAME,
        confidence: "High",
        title: "Reported to Spycloud",
        internal: false,
        source_uri: catalog
            .and_then(|c| c.uuid.as_deref())
            .and_then(|uuid| web_url(options.catalog_url(uuid))),
    }
}

/// The infected device as a target, when the record names one of its host name, IP addresses
/// or MAC address: observed at its infection time, else at the record's date.
pub fn device_target(device: &Device, published: Timestamp) -> Option<Target> {
    let observable = |kind: &str, value: &str| Observable {
        value: value.into(),
        kind: kind.into(),
    };
    let hostname = device.hostname().map(|name| observable("hostname", name));
    let ips = device.ip_addresses().iter().map(|ip| {
        let kind = if ip.is_ipv4() { "ip" } else { "ipv6" };
        observable(kind, &ip.to_string())
    });
    let mac = device
        .mac_address()
        .map(|mac| observable("mac_address", mac));
    let observables: Vec<Observable> = hostname.into_iter().chain(ips).chain(mac).collect();
    let at = device.infected_at().unwrap_or(published);
    (!observables.is_empty()).then(|| Target {
        kind: "endpoint",
        observables,
        observed_time: ObservedTime {
            start_time: at,
            end_time: at,
        },
        os: device.os().map(str::to_owned),
    })
}

/// The breached site (when usable and described), then the portal page (when the catalog has
/// a uuid and a description); each only when its URL is one CTIM takes ([`web_url`]).
pub fn external_references(catalog: &Catalog, options: &MappingOptions) -> Vec<ExternalReference> {
    let site = catalog
        .usable_site()
        .zip(catalog.site_description.as_deref())
        .and_then(|(site, about)| {
            Some(ExternalReference {
                source_name: SOURCE_NAME,
                url: web_url(site_url(site))?,
                description: within_limit(about.to_owned(), MARKDOWN),
                external_id: None,
            })
        });
    let portal = catalog
        .uuid
        .as_deref()
        .zip(catalog.description.as_deref())
        .and_then(|(uuid, about)| {
            Some(ExternalReference {
                source_name: SOURCE_NAME,
                url: web_url(options.catalog_url(uuid))?,
                description: within_limit(about.to_owned(), MARKDOWN),
                external_id: Some(uuid.to_owned()),
            })
        });
    site.into_iter().chain(portal).collect()
}

/// The indicator of a breach catalog.
pub fn indicator(catalog: &Catalog, options: &MappingOptions) -> Indicator {
    Indicator {
        id: indicator_id(catalog.id),
        valid_time: ValidTime {
            start_time: catalog.spycloud_publish_date,
        },
        confidence: confidence(catalog.confidence.as_ref()),
        title: catalog.title.clone().map(|t| within_limit(t, SHORT_STRING)),
        description: catalog
            .description
            .clone()
            .map(|d| within_limit(d, MARKDOWN)),
        short_description: catalog.title.clone().map(|t| within_limit(t, MED_STRING)),
        external_ids: [Some(catalog.id.to_string()), catalog.uuid.clone()]
            .into_iter()
            .flatten()
            .collect(),
        external_references: external_references(catalog, options),
        tags: catalog
            .assets
            .as_ref()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default(),
        kind: "indicator",
        schema_version: SCHEMA_VERSION,
        producer: SOURCE_NAME,
    }
}

/// `sighting` is a sighting of `indicator`.
pub fn relationship(sighting: &Sighting, indicator_id: &str) -> Relationship {
    Relationship {
        id: transient_id("relationship"),
        kind: "relationship",
        schema_version: SCHEMA_VERSION,
        relationship_type: "sighting-of",
        source_ref: sighting.id.clone(),
        target_ref: indicator_id.to_owned(),
        source: SOURCE_NAME,
    }
}

/// The entities of one looked-up observable: a sighting per breach (in the given order), an indicator per
/// distinct catalog in order of first appearance, a relationship per sighting with a catalog,
/// and one warning per `source_id` whose catalog is missing. `catalog` looks a catalog up by id,
/// e.g. `|id| map.get(&id)`.
///
/// Through [`Findings::to_ctim`]:
///
/// ```
/// use spycloud_relay::domain::{
///     BreachRecord, Catalog, Findings, MappingOptions, Observable, ObservableFindings,
///     PasswordPolicy, RawRecord,
/// };
///
/// let records: Vec<RawRecord> = serde_json::from_str(r#"[
///     {"source_id": 7, "password": "hunter22", "spycloud_publish_date": "2024-03-01T00:00:00Z"},
///     {"source_id": 8, "spycloud_publish_date": "2023-01-01T00:00:00Z"}
/// ]"#)?;
/// let forum: Catalog = serde_json::from_str(r#"{"id": 7, "title": "Example Forum"}"#)?;
/// let findings = Findings {
///     observables: vec![ObservableFindings {
///         observable: Observable::new("email", "pat@example.com"),
///         records: records.into_iter().map(BreachRecord::try_from).collect::<Result<_, _>>()?,
///         catalogs: vec![forum],
///         warnings: Vec::new(),
///     }],
///     ..Findings::default()
/// };
/// let masked = MappingOptions { passwords: PasswordPolicy::Masked, ..MappingOptions::default() };
///
/// let bundle = findings.to_ctim(&masked);
/// assert_eq!(bundle.sightings.len(), 2);
/// assert_eq!(bundle.sightings[0].data.rows[0][0], "hu******");
/// assert_eq!(bundle.indicators.len(), 1); // catalog 8 is unknown: a warning instead
/// assert_eq!(bundle.errors[0].message, "SpyCloud did not return results for 8");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub(crate) fn observable_bundle<'c>(
    observable: &Observable,
    breaches: Vec<BreachRecord>,
    catalog: impl Fn(CatalogId) -> Option<&'c Catalog>,
    options: &MappingOptions,
) -> Bundle {
    let mut bundle = Bundle::default();
    // Each catalog met so far, with the position of its indicator (none when it is missing).
    let mut seen: Vec<(CatalogId, Option<usize>)> = Vec::new();
    for breach in breaches {
        let source_id = breach.source_id;
        let catalog = source_id.and_then(&catalog);
        let sighting = sighting(observable, breach, catalog, options);
        if let Some(id) = source_id {
            let known = seen.iter().find(|(seen, _)| *seen == id).map(|&(_, at)| at);
            let at = known.unwrap_or_else(|| {
                let at = match catalog {
                    Some(catalog) => {
                        bundle.indicators.push(indicator(catalog, options));
                        Some(bundle.indicators.len() - 1)
                    }
                    None => {
                        bundle.errors.push(Warning::MissingCatalog(id).to_doc());
                        None
                    }
                };
                seen.push((id, at));
                at
            });
            if let Some(at) = at {
                let relationship = relationship(&sighting, &bundle.indicators[at].id);
                bundle.relationships.push(relationship);
            }
        }
        bundle.sightings.push(sighting);
    }
    bundle
}

impl Findings {
    /// The findings as SecureX reads them: the request's warnings, then per observable its
    /// warnings and its entities (a sighting per record, an indicator per distinct catalog, a
    /// `sighting-of` relationship per sighting whose catalog was found, a warning per missing
    /// catalog; an indicator already in the answer is not added again), and the fatal error,
    /// if any, last.
    pub fn to_ctim(&self, options: &MappingOptions) -> Bundle {
        let mut bundle = Bundle {
            errors: self.warnings.clone(),
            ..Bundle::default()
        };
        for found in &self.observables {
            bundle.errors.extend(found.warnings.iter().cloned());
            bundle.append(observable_bundle(
                &found.observable,
                found.records.clone(),
                |id| found.catalog(id),
                options,
            ));
        }
        if let Some(fatal) = &self.fatal {
            bundle.errors.push(fatal.to_doc());
        }
        bundle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RawRecord;
    use serde_json::json;
    use std::collections::HashMap;

    fn breach(fields: Value) -> BreachRecord {
        let mut record: RawRecord = serde_json::from_value(fields).unwrap();
        record
            .0
            .entry("spycloud_publish_date")
            .or_insert(json!("2020-05-01T00:00:00Z"));
        BreachRecord::try_from(record).unwrap()
    }

    fn catalog(fields: Value) -> Catalog {
        serde_json::from_value(fields).unwrap()
    }

    fn email() -> Observable {
        Observable {
            value: "Bob@Example.com".into(),
            kind: "email".into(),
        }
    }

    fn observable(kind: &str, value: &str) -> Observable {
        Observable {
            value: value.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn other_types_add_the_records_email_to_observables_and_targets() {
        let with_email = || breach(json!({"email": "bob@example.com", "source_id": 7}));
        let site = catalog(json!({"id": 7, "site": "big.com"}));
        for kind in ["domain", "ip", "ipv6", "user"] {
            let looked_up = observable(kind, "Value-As-Given");
            let s = sighting(
                &looked_up,
                with_email(),
                Some(&site),
                &MappingOptions::default(),
            );
            let expected = [looked_up.clone(), observable("email", "bob@example.com")];
            assert_eq!(s.observables, expected, "{kind}");
            assert_eq!(s.targets[0].observables, expected, "{kind}");
            assert_eq!(s.targets[0].kind, "email");
            // Leaked_From starts at the looked-up observable, not at the record's email.
            assert_eq!(s.relations[0].source, looked_up, "{kind}");
            // The record's email is still a column of the data table.
            assert_eq!(s.data.columns[0].name, "email");
        }
        for no_email in [
            json!({}),
            json!({"email": ""}),
            json!({"email": null}),
            json!({"email": 7}),
        ] {
            let s = sighting(
                &observable("domain", "example.com"),
                breach(no_email.clone()),
                None,
                &MappingOptions::default(),
            );
            assert_eq!(
                s.observables,
                [observable("domain", "example.com")],
                "{no_email}"
            );
        }
    }

    #[test]
    fn an_infected_device_is_a_second_target_after_the_email() {
        let b = breach(json!({
            "email": "bob@example.com", "infected_machine_id": "m-1",
            "user_hostname": "BOB-PC", "user_os": "Windows 10 Pro",
            "ip_addresses": ["198.51.100.7", "999.1.1.1", "2001:DB8:0:0::1"],
            "mac_address": "00:1A:2b:3C:4d:5E", "infected_time": "2021-06-01 10:20:30",
            "infected_path": "C:\\Temp\\x.exe",
            "spycloud_publish_date": "2021-07-01T00:00:00Z"
        }));
        let s = sighting(&email(), b, None, &MappingOptions::default());
        assert_eq!(s.targets.len(), 2);
        assert_eq!(
            serde_json::to_value(&s.targets[1]).unwrap(),
            json!({
                "type": "endpoint",
                "observables": [
                    {"type": "hostname", "value": "BOB-PC"},
                    {"type": "ip", "value": "198.51.100.7"},
                    {"type": "ipv6", "value": "2001:db8::1"},
                    {"type": "mac_address", "value": "00:1A:2b:3C:4d:5E"}
                ],
                "observed_time": {
                    "start_time": "2021-06-01T10:20:30.000000Z",
                    "end_time": "2021-06-01T10:20:30.000000Z"
                },
                "os": "Windows 10 Pro"
            })
        );
        // The email target, the observables and the data table are as before.
        assert_eq!(s.targets[0].kind, "email");
        assert_eq!(s.observables, [email()]);
        let columns: Vec<_> = s.data.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            columns,
            [
                "email",
                "user_hostname",
                "user_os",
                "ip_addresses",
                "mac_address",
                "infected_time",
                "infected_path"
            ]
        );
    }

    #[test]
    fn a_device_target_keeps_only_valid_values_and_needs_one() {
        let target = |fields: Value| {
            let s = sighting(&email(), breach(fields), None, &MappingOptions::default());
            s.targets.get(1).map(|t| serde_json::to_value(t).unwrap())
        };
        // An over-long host name and an invalid IP are left out; the rest stands. Without
        // infected_time, the record's date.
        let long = "h".repeat(1025);
        assert_eq!(
            target(json!({"user_hostname": long, "ip_addresses": ["1.2.3", "203.0.113.9"]})),
            Some(json!({
                "type": "endpoint",
                "observables": [{"type": "ip", "value": "203.0.113.9"}],
                "observed_time": {"start_time": "2020-05-01T00:00:00.000000Z",
                                  "end_time": "2020-05-01T00:00:00.000000Z"}
            }))
        );
        // No valid observable: no device target, whatever else the record says.
        for fields in [
            json!({}),
            json!({"user_os": "Windows 11", "infected_machine_id": "m", "infected_path": "C:\\x"}),
            json!({"user_hostname": " ", "ip_addresses": ["nope", 7], "mac_address": "00:11:22:33:44"}),
            json!({"user_hostname": "A\u{7}B", "mac_address": "00:11:22:33:44:GG"}),
            json!({"user_hostname": null, "ip_addresses": null, "mac_address": null}),
        ] {
            assert_eq!(target(fields.clone()), None, "{fields}");
        }
        // A long OS is cut to CTIM's ShortString.
        let os = target(json!({"user_hostname": "PC", "user_os": "w".repeat(2000)})).unwrap();
        assert_eq!(os["os"].as_str().unwrap().encode_utf16().count(), 1024);
    }

    #[test]
    fn an_email_lookup_does_not_repeat_the_records_email() {
        let s = sighting(
            &email(),
            breach(json!({"email": "other@example.com"})),
            None,
            &MappingOptions::default(),
        );
        assert_eq!(s.observables, [email()]);
        assert_eq!(s.targets[0].observables, [email()]);
    }

    #[test]
    fn severity_bands() {
        for (score, expected) in [
            (0, "Low"),
            (2, "Low"),
            (3, "Medium"),
            (5, "Medium"),
            (6, "High"),
            (25, "High"),
            (26, "High"),
            (30, "High"),
        ] {
            assert_eq!(
                severity(&breach(json!({"severity": score})), None),
                expected,
                "{score}"
            );
        }
        assert_eq!(severity(&breach(json!({})), None), "Unknown");
    }

    #[test]
    fn combo_lists_are_medium_whatever_the_score_but_no_is_not_a_combo_list() {
        let high = breach(json!({"severity": 30}));
        let combo = catalog(json!({"id": 1, "combo_list_flag": "Yes"}));
        let not_combo = catalog(json!({"id": 1, "combo_list_flag": "NO"}));
        assert_eq!(severity(&high, Some(&combo)), "Medium");
        assert_eq!(
            severity(
                &high,
                Some(&catalog(json!({"id": 1, "combo_list_flag": true})))
            ),
            "Medium"
        );
        assert_eq!(severity(&high, Some(&not_combo)), "High");
        assert_eq!(
            severity(&breach(json!({"severity": 1})), Some(&not_combo)),
            "Low"
        );
    }

    #[test]
    fn confidence_from_catalog() {
        for (score, expected) in [
            (json!(1), "High"),
            (json!(2), "Medium"),
            (json!(3), "Low"),
            (json!(7), "Low"),
            (json!("1"), "Low"),
            (json!(null), "Low"),
        ] {
            assert_eq!(confidence(Some(&score)), expected, "{score}");
        }
        assert_eq!(confidence(None), "Low");
    }

    #[test]
    fn indicator_ids_are_uuid5_of_the_catalog_id() {
        // The values Python's uuid.uuid5(uuid.NAMESPACE_X500, "<id>") gives.
        assert_eq!(
            indicator_id(CatalogId(16579)),
            "transient:indicator-fc31c7f0-a5f9-5f33-82ba-a84875505d76"
        );
        assert_eq!(
            indicator_id(CatalogId(1)),
            "transient:indicator-bf9fe6a8-d443-517f-aab9-8645942df035"
        );
    }

    #[test]
    fn sighting_fields() {
        let b = breach(json!({
            "document_id": "doc", "source_id": 7, "severity": 4, "sighting": 3,
            "spycloud_publish_date": "2021-02-03T04:05:06Z", "username": "bob", "infected_machine_id": "m"
        }));
        let c = catalog(json!({"id": 7, "uuid": "u7", "title": "Big Breach", "site": "big.com"}));
        let s = sighting(&email(), b, Some(&c), &MappingOptions::default());
        assert!(s.id.starts_with("transient:sighting-"));
        assert_eq!(s.count, 3);
        assert_eq!(
            s.observed_time.start_time.to_string(),
            "2021-02-03T04:05:06.000000Z"
        );
        assert_eq!(s.observed_time.end_time, s.observed_time.start_time);
        assert_eq!(s.external_ids, ["doc", "7", "m"]);
        assert_eq!(s.severity, "Medium");
        assert_eq!(s.description, "Present in Big Breach");
        assert_eq!(
            s.source_uri.as_deref(),
            Some("https://portal.spycloud.com/breach/catalog/u7")
        );
        assert_eq!(s.observables, [email()]);
        assert_eq!(s.targets[0].observables, [email()]);
        assert_eq!(s.targets[0].kind, "email");
        assert_eq!(s.relations.len(), 1);
        assert_eq!(
            s.relations[0].related,
            Observable {
                value: "big.com".into(),
                kind: "domain".into()
            }
        );
        assert_eq!(s.relations[0].source, email());
        let fixed = json!({"type": "sighting", "schema_version": "1.0.17", "source": "Spycloud",
                           "confidence": "High", "title": "Reported to Spycloud", "internal": false});
        let value = serde_json::to_value(&s).unwrap();
        for (k, v) in fixed.as_object().unwrap() {
            assert_eq!(&value[k], v, "{k}");
        }
    }

    #[test]
    fn sighting_without_catalog() {
        let s = sighting(
            &email(),
            breach(json!({"source_id": 7})),
            None,
            &MappingOptions::default(),
        );
        assert_eq!(s.description, "Present in breach");
        assert_eq!(s.source_uri, None);
        assert_eq!(s.relations, []);
        assert_eq!(s.external_ids, ["7"]);
        assert!(
            serde_json::to_value(&s)
                .unwrap()
                .get("source_uri")
                .is_none()
        );
    }

    #[test]
    fn no_relation_for_n_a_sites() {
        let c = catalog(json!({"id": 7, "site": "n/a"}));
        assert_eq!(relations(&email(), Some(&c)), []);
    }

    #[test]
    fn data_table_keeps_order_and_drops_mapped_fields() {
        let b = breach(json!({
            "email": "bob@example.com", "sighting": 2, "password": "hunter22", "domain": "example.com",
            "email_domain": "example.com", "email_username": "bob", "document_id": "d", "source_id": 1,
            "severity": 2, "infected_machine_id": "m", "target_url": "https://x", "salt": null
        }));
        let table =
            serde_json::to_value(data_table(b.data.clone(), PasswordPolicy::Plaintext)).unwrap();
        assert_eq!(
            table,
            json!({
                "columns": [{"name": "email", "type": "string"}, {"name": "password", "type": "string"},
                            {"name": "target_url", "type": "string"},
                            {"name": "salt", "type": "string", "required": false}],
                "rows": [["bob@example.com", "hunter22", "https://x", null]]
            })
        );
    }

    #[test]
    fn password_policies() {
        let b = breach(
            json!({"email": "e", "password": "hunter22", "cc_number": 4111111111111111u64, "salt": "ab"}),
        );
        let masked = data_table(b.data.clone(), PasswordPolicy::Masked);
        assert_eq!(
            masked.rows[0],
            [
                json!("e"),
                json!("hu******"),
                json!("41**************"),
                json!("ab")
            ]
        );
        let nulls = breach(json!({"email": "e", "salt": null, "password": null}));
        for policy in [PasswordPolicy::Plaintext, PasswordPolicy::Masked] {
            let table = serde_json::to_value(data_table(nulls.data.clone(), policy)).unwrap();
            assert_eq!(
                table["columns"],
                json!([{"name": "email", "type": "string"},
                       {"name": "salt", "type": "string", "required": false},
                       {"name": "password", "type": "string", "required": false}]),
                "{policy:?}"
            );
        }
        let omitted = data_table(b.data.clone(), PasswordPolicy::Omitted);
        assert_eq!(omitted.columns.len(), 1);
        assert_eq!(omitted.rows[0], [json!("e")]);
    }

    #[test]
    fn indicator_fields() {
        let c = catalog(json!({
            "id": 16579, "uuid": "u-1", "title": "Collection #5", "description": "Big list",
            "site": "example.com", "site_description": "A site", "confidence": 2,
            "spycloud_publish_date": "2019-02-06T00:00:00Z", "assets": {"password": 1, "email": 2}
        }));
        let i = indicator(
            &c,
            &MappingOptions {
                portal_url: "https://portal.test/".into(),
                ..Default::default()
            },
        );
        assert_eq!(i.id, indicator_id(CatalogId(16579)));
        assert_eq!(
            i.valid_time.start_time.unwrap().to_string(),
            "2019-02-06T00:00:00.000000Z"
        );
        assert_eq!(i.confidence, "Medium");
        assert_eq!(
            (i.title.as_deref(), i.short_description.as_deref()),
            (Some("Collection #5"), Some("Collection #5"))
        );
        assert_eq!(i.description.as_deref(), Some("Big list"));
        assert_eq!(i.external_ids, ["16579", "u-1"]);
        assert_eq!(i.tags, ["password", "email"]);
        assert_eq!(
            serde_json::to_value(&i.external_references).unwrap(),
            json!([
                {"source_name": "Spycloud", "description": "A site", "url": "https://example.com"},
                {"source_name": "Spycloud", "description": "Big list", "url": "https://portal.test/breach/catalog/u-1", "external_id": "u-1"}
            ])
        );
        let value = serde_json::to_value(&i).unwrap();
        assert_eq!(
            (&value["type"], &value["schema_version"], &value["producer"]),
            (&json!("indicator"), &json!("1.0.17"), &json!("Spycloud"))
        );
    }

    #[test]
    fn catalog_texts_are_cut_to_ctims_limits() {
        let units = |text: &str| text.encode_utf16().count();
        let title = "😀".repeat(1500);
        let description = "d".repeat(12_000);
        let c = catalog(json!({
            "id": 1, "uuid": "u", "title": title, "description": description,
            "site": "example.com", "site_description": "s".repeat(6000)
        }));
        let i = indicator(&c, &MappingOptions::default());
        let title_out = i.title.as_deref().unwrap();
        assert_eq!(units(title_out), 1023); // 511 emoji and the ellipsis
        assert!(title_out.ends_with('…'));
        let short = i.short_description.as_deref().unwrap();
        assert_eq!(units(short), 2047);
        assert_eq!(units(i.description.as_deref().unwrap()), 5000);
        for reference in &i.external_references {
            assert_eq!(units(&reference.description), 5000, "{}", reference.url);
            assert!(reference.description.ends_with('…'));
        }
        let long_title = catalog(json!({"id": 1, "title": "😀".repeat(3000)}));
        let s = sighting(
            &email(),
            breach(json!({"source_id": 1})),
            Some(&long_title),
            &MappingOptions::default(),
        );
        assert_eq!(units(&s.description), 5000);
        assert!(s.description.starts_with("Present in 😀"));
        assert!(s.description.ends_with('…'));
        // Texts within the limits are untouched.
        let small = catalog(json!({"id": 1, "title": "T", "description": "D"}));
        let i = indicator(&small, &MappingOptions::default());
        assert_eq!(
            (
                i.title.as_deref(),
                i.short_description.as_deref(),
                i.description.as_deref()
            ),
            (Some("T"), Some("T"), Some("D"))
        );
    }

    #[test]
    fn only_absolute_http_urls_that_parse_as_uris_are_written() {
        let options = MappingOptions::default();
        let site = |site: &str| {
            let c = catalog(json!({"id": 1, "site": site, "site_description": "about"}));
            external_references(&c, &options)
                .into_iter()
                .map(|r| r.url)
                .collect::<Vec<_>>()
        };
        for good in [
            "example.com",
            "example.com/forum?x=1",
            "http://old.example",
            "HTTPS://Example.com/a%20b",
            "https://[2001:db8::1]:8443/x",
        ] {
            assert_eq!(site(good).len(), 1, "{good}");
        }
        for bad in [
            "exa mple .test/<x>",
            "http://[::1",
            "ftp://files.example",
            "javascript:alert(1)",
            "https://",
            "https://exa mple.test",
            "example.com/<script>",
            "https://example.com/a b",
        ] {
            assert_eq!(site(bad), Vec::<String>::new(), "{bad}");
        }
        // The portal link and the sighting's source_uri alike: a uuid that makes no URI
        // gives neither, a portal base that is not http(s) neither.
        let odd = catalog(json!({"id": 1, "uuid": "a b<c>", "description": "d"}));
        assert_eq!(external_references(&odd, &options), []);
        let s = sighting(
            &email(),
            breach(json!({"source_id": 1})),
            Some(&odd),
            &options,
        );
        assert_eq!(s.source_uri, None);
        let fine = catalog(json!({"id": 1, "uuid": "u-1", "description": "d"}));
        let ftp = MappingOptions {
            portal_url: "ftp://portal.test".into(),
            ..MappingOptions::default()
        };
        assert_eq!(external_references(&fine, &ftp), []);
        let s = sighting(&email(), breach(json!({"source_id": 1})), Some(&fine), &ftp);
        assert_eq!(s.source_uri, None);
        let s = sighting(
            &email(),
            breach(json!({"source_id": 1})),
            Some(&fine),
            &options,
        );
        assert_eq!(
            s.source_uri.as_deref(),
            Some("https://portal.spycloud.com/breach/catalog/u-1")
        );
    }

    #[test]
    fn external_references_need_a_usable_site() {
        let options = MappingOptions::default();
        let na = catalog(
            json!({"id": 1, "site": "n/a", "site_description": "x", "uuid": "u", "description": "d"}),
        );
        assert_eq!(external_references(&na, &options).len(), 1);
        let schemed =
            catalog(json!({"id": 1, "site": "http://old.example", "site_description": "x"}));
        assert_eq!(
            external_references(&schemed, &options)[0].url,
            "http://old.example"
        );
        let undescribed = catalog(json!({"id": 1, "site": "a.com", "uuid": "u"}));
        assert_eq!(external_references(&undescribed, &options), []);
    }

    #[test]
    fn email_bundle_links_and_warns_once_per_catalog() {
        let breaches = [
            breach(json!({"source_id": 1})),
            breach(json!({"source_id": 2})),
            breach(json!({"source_id": 1})),
            breach(json!({"source_id": 3})),
            breach(json!({"source_id": 3})),
            breach(json!({})),
        ];
        let catalogs: HashMap<_, _> = [1, 2]
            .map(|id| (CatalogId(id), catalog(json!({"id": id}))))
            .into();
        let bundle = observable_bundle(
            &email(),
            breaches.to_vec(),
            |id| catalogs.get(&id),
            &MappingOptions::default(),
        );
        assert_eq!(bundle.sightings.len(), 6);
        let indicator_ids: Vec<_> = bundle.indicators.iter().map(|i| i.id.clone()).collect();
        assert_eq!(
            indicator_ids,
            [indicator_id(CatalogId(1)), indicator_id(CatalogId(2))]
        );
        assert_eq!(bundle.relationships.len(), 3);
        let targets = [1, 2, 1].map(|id| indicator_id(CatalogId(id)));
        for ((relationship, sighting), target) in bundle
            .relationships
            .iter()
            .zip(&bundle.sightings)
            .zip(targets)
        {
            let uuid = relationship
                .id
                .strip_prefix("transient:relationship-")
                .unwrap_or_else(|| panic!("{}", relationship.id));
            assert!(Uuid::parse_str(uuid).is_ok(), "{}", relationship.id);
            let value = serde_json::to_value(relationship).unwrap();
            assert_eq!(
                value,
                json!({
                    "id": relationship.id, "type": "relationship", "schema_version": "1.0.17",
                    "relationship_type": "sighting-of", "source_ref": sighting.id,
                    "target_ref": target, "source": "Spycloud"
                })
            );
        }
        let relationship_ids: std::collections::HashSet<_> =
            bundle.relationships.iter().map(|r| &r.id).collect();
        assert_eq!(relationship_ids.len(), 3);
        let messages: Vec<_> = bundle.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["SpyCloud did not return results for 3"]);
        let ids: std::collections::HashSet<_> = bundle.sightings.iter().map(|s| &s.id).collect();
        assert_eq!(ids.len(), 6);
    }
}
