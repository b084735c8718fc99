//! JWKS documents fetched per host and cached.
//!
//! A token whose `kid` is in its host's cached set is answered at once, whatever other hosts are
//! being asked. At most one fetch per host is in flight; requests that need it meanwhile wait for
//! it and share its result. A fetch runs as a task of its own, so it finishes (and is
//! remembered) even when the request that began it gave up.
//!
//! A set is reused for the TTL. A host is asked at most once per refetch interval (5 s): the
//! outcome of every fetch (a set, or a failure) is remembered for that long and answers
//! meanwhile, so neither tokens naming made-up kids nor a failing host make the relay hammer it.
//!
//! That rule must hold however many hosts an allow-list with `*` admits, so fetches are bounded
//! process-wide: at most [`FETCHES_PER_SECOND`] start a second and [`MAX_FETCHES_AT_ONCE`] run at
//! once. A request waits its turn (within its own deadline; it is never refused while it has
//! time). The hosts fetched within one interval are then at most the interval times the rate, and
//! the memory of recent outcomes holds more than twice that: it never forgets a host early.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota};
use jsonwebtoken::jwk::Jwk;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::telemetry;

/// The largest JWKS body read; a real one is a few kilobytes.
pub(super) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// JWKS fetches started per second, process-wide (and as many at once after a quiet second).
pub(super) const FETCHES_PER_SECOND: u32 = 100;

/// JWKS fetches in flight at once, process-wide: each holds a connection for at most the fetch
/// timeout.
pub(super) const MAX_FETCHES_AT_ONCE: usize = 32;

/// Good sets kept for their TTL; one pushed out only costs a refetch, which the memory of recent
/// outcomes still limits to one per interval.
const MAX_KEY_SETS: u64 = 1024;

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

/// What one fetch gave.
type Outcome = Result<KeySet, Arc<FetchError>>;

/// A fetch in flight, shared by every request that waits for it.
type Fetch = Shared<BoxFuture<'static, Outcome>>;

/// The fetches in flight, by host.
type InFlight = Arc<Mutex<HashMap<String, Fetch>>>;

/// The JWKS of each host, fetched on demand.
pub(super) struct JwksCache {
    client: reqwest::Client,
    scheme: String,
    ttl: Duration,
    /// Good sets, for the TTL.
    sets: moka::sync::Cache<String, KeySet>,
    /// The outcome of each host's last fetch, with when, for the refetch interval.
    recent: moka::sync::Cache<String, (Instant, Outcome)>,
    in_flight: InFlight,
    /// Fetch starts, process-wide.
    rate: DefaultDirectRateLimiter,
    /// Requests waiting for the rate take turns in order: only the first one polls it.
    rate_queue: tokio::sync::Mutex<()>,
    /// Fetches running, process-wide.
    permits: Arc<Semaphore>,
}

/// Hosts whose last outcome is remembered: more than twice as many as can be fetched within
/// `refetch_interval` (a burst, then the rate), so that none is forgotten before its interval
/// is over.
fn remembered_hosts(refetch_interval: Duration) -> u64 {
    let whole_secs = refetch_interval.as_secs() + u64::from(refetch_interval.subsec_nanos() > 0);
    let fetched = u64::from(FETCHES_PER_SECOND) * (whole_secs + 1);
    (2 * fetched).max(1024)
}

/// Locks `mutex`, which no code path leaves inconsistent, even if poisoned.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JwksCache {
    pub(super) fn new(
        client: reqwest::Client,
        scheme: String,
        ttl: Duration,
        refetch_interval: Duration,
    ) -> Self {
        let rate = NonZeroU32::new(FETCHES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        Self {
            client,
            scheme,
            ttl,
            sets: moka::sync::Cache::builder()
                .max_capacity(MAX_KEY_SETS)
                .time_to_live(ttl)
                .build(),
            recent: moka::sync::Cache::builder()
                .max_capacity(remembered_hosts(refetch_interval))
                .time_to_live(refetch_interval)
                .build(),
            in_flight: InFlight::default(),
            rate: governor::RateLimiter::direct(Quota::per_second(rate).allow_burst(rate)),
            rate_queue: tokio::sync::Mutex::new(()),
            permits: Arc::new(Semaphore::new(MAX_FETCHES_AT_ONCE)),
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
        if let Some(keys) = self.sets.get(host) {
            let Some(kid) = kid else { return Ok(None) };
            if let Some(jwk) = keys.get(kid) {
                return Ok(Some(jwk.clone()));
            }
        }
        let mut admitted = None;
        let fetch = loop {
            {
                let mut in_flight = lock(&self.in_flight);
                if let Some(fetch) = in_flight.get(host) {
                    break fetch.clone();
                }
                if let Some((at, outcome)) = self.recent.get(host)
                    && (outcome.is_err() || at.elapsed() < self.ttl)
                {
                    // Asked a moment ago: its answer (a set without this kid, or a failure)
                    // stands until the interval is over. A set past its TTL is fetched again.
                    return answer(outcome, kid);
                }
                if let Some(permit) = admitted.take() {
                    let fetch = self.start_fetch(host, permit);
                    in_flight.insert(host.to_owned(), fetch.clone());
                    break fetch;
                }
            }
            // The lock is not held while waiting; another request may have fetched the host
            // meanwhile, hence the loop.
            admitted = Some(self.admit().await);
        };
        answer(fetch.await, kid)
    }

    /// Waits for a fetch's turn under the process-wide rate, then for one of the permits.
    async fn admit(&self) -> OwnedSemaphorePermit {
        {
            let _turn = self.rate_queue.lock().await;
            // On tokio's timer rather than governor's `until_ready`, whose timer runs a thread
            // of its own.
            while let Err(not_until) = self.rate.check() {
                tokio::time::sleep(not_until.wait_time_from(self.rate.clock().now())).await;
            }
        }
        loop {
            if let Ok(permit) = self.permits.clone().acquire_owned().await {
                return permit;
            }
            // Never closed; were it, waiting is all a request could do.
            tokio::task::yield_now().await;
        }
    }

    /// Fetches `host`'s JWKS in a task of its own, which holds `permit` and records the outcome.
    fn start_fetch(&self, host: &str, permit: OwnedSemaphorePermit) -> Fetch {
        let (client, scheme, host) = (self.client.clone(), self.scheme.clone(), host.to_owned());
        let (sets, recent) = (self.sets.clone(), self.recent.clone());
        let in_flight_guard = InFlightGuard {
            in_flight: self.in_flight.clone(),
            host: host.clone(),
        };
        let task = tokio::spawn(
            async move {
                let _in_flight_guard = in_flight_guard;
                let fetched = fetch(&client, &scheme, &host).await;
                drop(permit);
                telemetry::jwks_fetch(fetched.is_err());
                let outcome = match fetched {
                    Ok(keys) => {
                        tracing::debug!(
                            jwks_host = %telemetry::cut(&host),
                            keys = keys.len(),
                            "fetched JWKS"
                        );
                        let keys = Arc::new(keys);
                        sets.insert(host.clone(), keys.clone());
                        Ok(keys)
                    }
                    Err(error) => {
                        tracing::warn!(
                            jwks_host = %telemetry::cut(&host),
                            error = %telemetry::cut(&error.to_string()),
                            "could not fetch JWKS"
                        );
                        Err(Arc::new(error))
                    }
                };
                recent.insert(host, (Instant::now(), outcome.clone()));
                outcome
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

/// A fetch's end: its host leaves the fetches in flight (after its outcome is remembered), even
/// if the task is torn down.
struct InFlightGuard {
    in_flight: InFlight,
    host: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.host);
    }
}

/// The key `kid` of a fetch's set, or its failure.
fn answer(outcome: Outcome, kid: Option<&str>) -> Result<Option<Jwk>, FetchError> {
    match outcome {
        Ok(keys) => Ok(kid.and_then(|kid| keys.get(kid).cloned())),
        Err(error) => Err(FetchError::Shared(error)),
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
    fn recent_outcomes_outnumber_twice_the_hosts_fetchable_within_the_interval() {
        for millis in [0, 1, 999, 1_000, 5_000, 5_001, 60_000] {
            let interval = Duration::from_millis(millis);
            // A burst, then the rate.
            let fetchable = f64::from(FETCHES_PER_SECOND) * (1.0 + interval.as_secs_f64());
            assert!(
                remembered_hosts(interval) as f64 >= 2.0 * fetchable,
                "{interval:?}"
            );
        }
        assert_eq!(remembered_hosts(Duration::from_secs(5)), 1_200);
    }

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
