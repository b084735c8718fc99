//! What SpyCloud said for one request, in domain terms: per observable its records (newest
//! first, cut to the entities limit), the catalogs they name and the warnings; plus the fatal
//! error that stopped the request, if one did. Every output format is a rendering of it: CTIM
//! for SecureX is [`Findings::to_ctim`] (the rules are in the mapping).

use super::breach::BreachRecord;
use super::catalog::{Catalog, CatalogId};
use super::ctim::{ErrorDoc, Observable};
use super::error::Error;

/// One request's findings, in input order.
///
/// A fatal error keeps exactly what came before it: the findings of the observables before
/// the one that failed (as if they had been looked up one after another).
///
/// ```
/// use spycloud_relay::domain::{
///     BreachRecord, Catalog, Findings, MappingOptions, Observable, ObservableFindings, RawRecord,
/// };
///
/// let record: RawRecord = serde_json::from_str(
///     r#"{"source_id": 7, "spycloud_publish_date": "2024-03-01T00:00:00Z"}"#,
/// )?;
/// let forum: Catalog = serde_json::from_str(r#"{"id": 7, "title": "Example Forum"}"#)?;
/// let findings = Findings {
///     observables: vec![ObservableFindings {
///         observable: Observable::new("email", "pat@example.com"),
///         records: vec![BreachRecord::try_from(record)?],
///         catalogs: vec![forum],
///         warnings: Vec::new(),
///     }],
///     ..Findings::default()
/// };
/// let bundle = findings.to_ctim(&MappingOptions::default());
/// assert_eq!(bundle.sightings[0].description, "Present in Example Forum");
/// assert_eq!(bundle.fatal(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Warnings about the request as a whole, before any observable's (the token's invalid
    /// module settings).
    pub warnings: Vec<ErrorDoc>,
    /// Each observable looked up or left out, in input order.
    pub observables: Vec<ObservableFindings>,
    /// The error that stopped the request, if one did.
    pub fatal: Option<Error>,
}

/// What SpyCloud said of one observable.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservableFindings {
    /// The observable as asked.
    pub observable: Observable,
    /// Its breach records, newest first, at most the entities limit.
    pub records: Vec<BreachRecord>,
    /// The catalogs its records name that SpyCloud returned.
    pub catalogs: Vec<Catalog>,
    /// What was left out: an invalid value, unreadable records, a cut-short answer, the
    /// observables past the request's limit.
    pub warnings: Vec<ErrorDoc>,
}

impl Findings {
    /// The findings, or the fatal error that stopped the request (what came before it is
    /// dropped).
    ///
    /// # Errors
    /// The fatal error, if there is one.
    pub fn into_result(self) -> Result<Self, Error> {
        match self.fatal {
            Some(fatal) => Err(fatal),
            None => Ok(self),
        }
    }
}

impl Findings {
    /// Every warning, in the order CTIM lists them: the request's, then each observable's.
    pub fn all_warnings(&self) -> impl Iterator<Item = &ErrorDoc> {
        self.warnings
            .iter()
            .chain(self.observables.iter().flat_map(|found| &found.warnings))
    }
}

impl ObservableFindings {
    /// Findings of `observable` that hold only `warning` (it was not looked up).
    pub(crate) fn warned(observable: &Observable, warning: ErrorDoc) -> Self {
        Self {
            observable: observable.clone(),
            records: Vec::new(),
            catalogs: Vec::new(),
            warnings: vec![warning],
        }
    }

    /// The catalog of `id`, if SpyCloud returned it.
    pub fn catalog(&self, id: CatalogId) -> Option<&Catalog> {
        self.catalogs.iter().find(|catalog| catalog.id == id)
    }
}
