//! JWKS documents fetched per host and cached.
//!
//! One async mutex per host serialises fetches for that host: requests that arrive while a fetch
//! is in flight wait for it and use its result (or share its failure) instead of stampeding the
//! host. A set is reused for the TTL; a `kid` it lacks triggers a refetch, at most once per
//! refetch interval per host, so tokens naming made-up kids cannot make the relay hammer SecureX.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The largest JWKS body read; a real one is a few kilobytes.
pub(super) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Distinct hosts remembered at once; an allow-list with `*` admits many names.
const MAX_HOSTS: u64 = 1024;

/// Why no JWKS could be had from a host; all of them read as a wrong `jwks_host` to the caller.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("body larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("body is not a JWKS: {0}")]
    NotJwks(#[from] serde_json::Error),
    #[error("a fetch for the same host failed while this request waited for it")]
    Shared,
}

/// The JWKS of each host, fetched on demand.
pub(super) struct JwksCache {
    client: reqwest::Client,
    scheme: String,
    ttl: Duration,
    refetch_interval: Duration,
    hosts: moka::future::Cache<String, Arc<Mutex<HostSlot>>>,
}

/// What is known about one host.
#[derive(Default)]
struct HostSlot {
    /// The last set fetched, with when.
    keys: Option<(Instant, HashMap<String, Jwk>)>,
    /// When the last fetch (successful or not) finished.
    last_attempt: Option<Instant>,
    /// When the last failed fetch finished.
    last_failure: Option<Instant>,
}

impl JwksCache {
    pub(super) fn new(
        client: reqwest::Client,
        scheme: String,
        ttl: Duration,
        refetch_interval: Duration,
    ) -> Self {
        Self {
            client,
            scheme,
            ttl,
            refetch_interval,
            hosts: moka::future::Cache::builder()
                .max_capacity(MAX_HOSTS)
                .build(),
        }
    }

    /// The key `kid` of `host`'s JWKS: `Ok(None)` when the set (fetched or refetched under the
    /// rules above) has no such key, or when there is no `kid` to look for.
    ///
    /// The set is fetched even without a `kid`, so that an unreachable host is reported as such.
    /// `host` must already be allowed and lower-cased.
    pub(super) async fn find(
        &self,
        host: &str,
        kid: Option<&str>,
    ) -> Result<Option<Jwk>, FetchError> {
        let asked_at = Instant::now();
        let slot = self
            .hosts
            .get_with_by_ref(host, async { Arc::default() })
            .await;
        let mut slot = slot.lock().await;

        if let Some((fetched_at, keys)) = &slot.keys
            && fetched_at.elapsed() < self.ttl
        {
            let Some(kid) = kid else { return Ok(None) };
            if let Some(jwk) = keys.get(kid) {
                return Ok(Some(jwk.clone()));
            }
            let recently_fetched = slot
                .last_attempt
                .is_some_and(|at| at.elapsed() < self.refetch_interval);
            if recently_fetched {
                return Ok(None);
            }
        }
        if slot.last_failure.is_some_and(|at| at >= asked_at) {
            return Err(FetchError::Shared);
        }

        let fetched = self.fetch(host).await;
        let now = Instant::now();
        slot.last_attempt = Some(now);
        match fetched {
            Ok(keys) => {
                tracing::debug!(jwks_host = host, keys = keys.len(), "fetched JWKS");
                let found = kid.and_then(|kid| keys.get(kid).cloned());
                slot.keys = Some((now, keys));
                Ok(found)
            }
            Err(error) => {
                tracing::warn!(jwks_host = host, %error, "could not fetch JWKS");
                slot.last_failure = Some(now);
                Err(error)
            }
        }
    }

    async fn fetch(&self, host: &str) -> Result<HashMap<String, Jwk>, FetchError> {
        let url = format!("{}://{host}/.well-known/jwks", self.scheme);
        let mut response = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

/// Reads a JWKS document into its keys by `kid`.
///
/// The document must be an object with a `keys` array. Entries that are not JWKs jsonwebtoken
/// understands, or have no `kid`, are skipped rather than failing the set: a host may publish
/// key types this relay never uses. The first key with a given `kid` wins.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Jwk>, FetchError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body)?;
    let mut keys = HashMap::new();
    for jwk in document
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
    {
        if let Some(kid) = jwk.common.key_id.clone() {
            keys.entry(kid).or_insert(jwk);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_is_an_object_with_a_keys_array() {
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"{\"keys\":{}}",
            b"{\"keys\":\"x\"}",
        ] {
            assert!(parse_jwks(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_jwks(b"{\"keys\":[]}").unwrap().is_empty());
    }

    #[test]
    fn unusable_entries_are_skipped_and_the_first_kid_wins() {
        let body = serde_json::json!({"keys": [
            1,
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB", "alg": "RS256"},
            {"kty": "RSA", "kid": "a", "n": "AQAC", "e": "AQAB"},
            {"kty": "oct", "kid": "b", "k": "c2VjcmV0"},
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        let a = &keys["a"].algorithm;
        assert!(
            matches!(a, jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) if rsa.n == "AQAB"),
            "{a:?}"
        );
    }
}
