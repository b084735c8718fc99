//! Where breach data comes from: SpyCloud in production, memory in the demo, anything an
//! embedder brings.

use async_trait::async_trait;

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

/// Why a source could not answer. The relay turns each into the contract's SecureX error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// HTTP 401: the message SpyCloud gave, else `Unauthorized`.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// HTTP 403: the message SpyCloud gave, else `Forbidden`.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// HTTP 404.
    #[error("not found")]
    NotFound,
    /// HTTP 500.
    #[error("internal error")]
    Internal,
    /// HTTP 429 after retries, or the quota is spent.
    #[error("rate limited")]
    RateLimited,
    /// Any other status: the body as text.
    #[error("unexpected response: {0}")]
    Unexpected(String),
    /// The TLS handshake failed: why.
    #[error("TLS failure: {0}")]
    Tls(String),
    /// No answer in time: which call.
    #[error("timeout: {0}")]
    Timeout(String),
    /// No connection (refused, DNS, reset): what happened.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A 2xx answer that is not the JSON SpyCloud documents.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}
