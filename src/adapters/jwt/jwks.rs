//! JWKS documents fetched per host and cached.
//!
//! What is known of a host sits behind a plain mutex that is never held across an await: a
//! token whose `kid` is in the cached set is answered at once, even while the host is being
//! asked again for another token's unknown `kid`. At most one fetch per host is in flight;
//! requests that need it meanwhile wait for it and share its result. A fetch runs as a task of
//! its own, so it finishes (and is remembered) even when the request that began it gave up.
//!
//! A set is reused for the TTL. A host is asked at most once per refetch interval (5 s): a
//! `kid` the set lacks, or a failed fetch, is remembered for that long, so neither tokens
//! naming made-up kids nor a failing host make the relay hammer it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use jsonwebtoken::jwk::Jwk;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use tracing::Instrument;

use crate::telemetry;

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
    #[error("the fetch task ended without an answer")]
    TaskFailed,
    #[error("{0}")]
    Shared(Arc<FetchError>),
}

/// A JWKS as fetched: keys by `kid`.
type KeySet = Arc<HashMap<String, Jwk>>;

/// A fetch in flight, shared by every request that waits for it.
type Fetch = Shared<BoxFuture<'static, Result<KeySet, Arc<FetchError>>>>;

/// The JWKS of each host, fetched on demand.
pub(super) struct JwksCache {
    client: reqwest::Client,
    scheme: String,
    ttl: Duration,
    refetch_interval: Duration,
    hosts: moka::sync::Cache<String, Arc<Mutex<HostSlot>>>,
}

/// What is known about one host.
#[derive(Default)]
struct HostSlot {
    /// The last set fetched, with when.
    keys: Option<(Instant, KeySet)>,
    /// When the last fetch (successful or not) finished, and its error if it failed.
    last_attempt: Option<(Instant, Option<Arc<FetchError>>)>,
    /// The fetch in flight, if any.
    in_flight: Option<Fetch>,
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
            hosts: moka::sync::Cache::builder().max_capacity(MAX_HOSTS).build(),
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
        let slot = self.hosts.get_with_by_ref(host, Arc::default);
        let fetch = {
            let mut known = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = known
                .keys
                .as_ref()
                .filter(|(fetched_at, _)| fetched_at.elapsed() < self.ttl)
                .map(|(_, keys)| keys.clone());
            if let Some(keys) = &fresh {
                let Some(kid) = kid else { return Ok(None) };
                if let Some(jwk) = keys.get(kid) {
                    return Ok(Some(jwk.clone()));
                }
            }
            match &known.in_flight {
                Some(fetch) => fetch.clone(),
                None => {
                    if let Some((at, failure)) = &known.last_attempt
                        && at.elapsed() < self.refetch_interval
                    {
                        // Asked a moment ago: its answer (a set without this kid, or a
                        // failure) stands until the interval is over. A set past its TTL is
                        // fetched again.
                        match (failure, fresh) {
                            (_, Some(_)) => return Ok(None),
                            (Some(error), None) => {
                                return Err(FetchError::Shared(error.clone()));
                            }
                            (None, None) => {}
                        }
                    }
                    let fetch = self.start_fetch(host, slot.clone());
                    known.in_flight = Some(fetch.clone());
                    fetch
                }
            }
        };
        match fetch.await {
            Ok(keys) => Ok(kid.and_then(|kid| keys.get(kid).cloned())),
            Err(error) => Err(FetchError::Shared(error)),
        }
    }

    /// Fetches `host`'s JWKS in a task of its own, which records the outcome in `slot`.
    fn start_fetch(&self, host: &str, slot: Arc<Mutex<HostSlot>>) -> Fetch {
        let (client, scheme, host) = (self.client.clone(), self.scheme.clone(), host.to_owned());
        let task = tokio::spawn(
            async move {
                let fetched = fetch(&client, &scheme, &host).await.map(Arc::new);
                telemetry::jwks_fetch(fetched.is_err());
                let now = Instant::now();
                let mut known = slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                known.in_flight = None;
                match fetched {
                    Ok(keys) => {
                        tracing::debug!(
                            jwks_host = %telemetry::cut(&host),
                            keys = keys.len(),
                            "fetched JWKS"
                        );
                        known.keys = Some((now, keys.clone()));
                        known.last_attempt = Some((now, None));
                        Ok(keys)
                    }
                    Err(error) => {
                        tracing::warn!(
                            jwks_host = %telemetry::cut(&host),
                            error = %telemetry::cut(&error.to_string()),
                            "could not fetch JWKS"
                        );
                        let error = Arc::new(error);
                        known.last_attempt = Some((now, Some(error.clone())));
                        Err(error)
                    }
                }
            }
            .instrument(tracing::Span::current()),
        );
        async move {
            task.await
                .unwrap_or_else(|_| Err(Arc::new(FetchError::TaskFailed)))
        }
        .boxed()
        .shared()
    }
}

/// GETs `<scheme>://<host>/.well-known/jwks`, reading at most [`MAX_JWKS_BYTES`].
async fn fetch(
    client: &reqwest::Client,
    scheme: &str,
    host: &str,
) -> Result<HashMap<String, Jwk>, FetchError> {
    let url = format!("{scheme}://{host}/.well-known/jwks");
    let mut response = client
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
