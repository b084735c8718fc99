//! Where breach data comes from: SpyCloud in production, memory in the demo, anything an
//! embedder brings.

use async_trait::async_trait;

pub use crate::domain::SourceError;
use crate::domain::{ApiKey, BreachRecord, Catalog, CatalogId, Email};

/// A source of SpyCloud breach data.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BreachSource: Send + Sync {
    /// Every breach record of `email`, all pages, in any order.
    ///
    /// # Errors
    /// Any [`SourceError`]; an email the source refuses as malformed (SpyCloud's 400) is not an
    /// error but an empty list.
    async fn breaches(&self, key: &ApiKey, email: &Email)
    -> Result<Vec<BreachRecord>, SourceError>;

    /// The catalogs among `ids` that exist, in any order; an id with no catalog is left out.
    ///
    /// # Errors
    /// Any [`SourceError`] that stops the whole fetch.
    async fn catalogs(&self, key: &ApiKey, ids: &[CatalogId]) -> Result<Vec<Catalog>, SourceError>;

    /// One authenticated call that proves the key works and the source answers.
    ///
    /// # Errors
    /// Any [`SourceError`].
    async fn probe(&self, key: &ApiKey) -> Result<(), SourceError>;
}
