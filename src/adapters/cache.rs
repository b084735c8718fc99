//! A [`BreachSource`] decorator that remembers catalogs across requests.
//!
//! Catalogs change rarely and the same few appear in many lookups, so each one is fetched at
//! most once an hour per API key. Entries are keyed by the key's fingerprint, so tenants never
//! share answers and the cache never holds a key. An id the source did not return is remembered
//! as missing for a short time only: it may be published soon. Errors are never remembered.
//!
//! Requests that miss an id another request is already fetching wait for that fetch rather than
//! asking again. A fetch runs to its end even when the request that began it gives up (its
//! deadline passed): what it brings is stored for the next.
//!
//! Where entries are kept is a [`SharedCache`]: this process's own by default, or one every
//! replica shares (Redis), so a catalog one replica fetched is not fetched again by another.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

#[cfg(test)]
use crate::adapters::local::LocalCache;
use crate::domain::SourceError;
use crate::domain::{ApiKey, BreachQuery, Catalog, CatalogId, KeyFingerprint, Lookup, RecordSink};
use crate::flights::{Flights, ForgetOnDrop};
use crate::ports::{BreachSource, CacheEntry, CacheKey, SharedCache, WatchlistQuery};

/// The cache space of catalogs: an entry is a catalog's JSON, or empty for an id the source
/// did not return.
const SPACE: &str = "catalog";

/// Size and lifetimes of the catalog cache; the default is 10 000 entries, 1 h, 60 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// The most entries (found or missing) kept in the process's own store (a shared store
    /// given to [`CachedCatalogs::with_store`] has its own bounds).
    pub capacity: u64,
    /// How long a found catalog is kept.
    pub found_ttl: Duration,
    /// How long an id the source did not return is answered as missing.
    pub missing_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            found_ttl: Duration::from_secs(60 * 60),
            missing_ttl: Duration::from_secs(60),
        }
    }
}

/// How many catalog ids were answered from the cache and how many had to be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Ids answered from the cache (found or known missing).
    pub hits: u64,
    /// Ids not in the cache: asked of the inner source, or waited for while another request
    /// asked.
    pub misses: u64,
}

type EntryKey = (KeyFingerprint, CatalogId);

/// What the cache knows about one id.
#[derive(Debug, Clone)]
enum Entry {
    Found(Arc<Catalog>),
    Missing,
}

impl Entry {
    /// The entry a stored value stands for; `None` for a value that is no entry (written by
    /// another version, say): a miss.
    fn decode(value: &[u8]) -> Option<Self> {
        if value.is_empty() {
            return Some(Self::Missing);
        }
        serde_json::from_slice(value)
            .ok()
            .map(|catalog| Self::Found(Arc::new(catalog)))
    }

    fn encode(&self) -> Bytes {
        match self {
            // A catalog that came from JSON serializes back into it.
            Self::Found(catalog) => serde_json::to_vec(catalog.as_ref())
                .map(Bytes::from)
                .unwrap_or_default(),
            Self::Missing => Bytes::new(),
        }
    }
}

fn cache_key((tenant, id): EntryKey) -> CacheKey {
    CacheKey {
        space: SPACE,
        tenant,
        item: id.to_string(),
    }
}

/// What one fetch brought: an entry for each id it asked for.
type Fetched = Result<Arc<HashMap<CatalogId, Entry>>, SourceError>;

/// Any [`BreachSource`] with its catalogs cached; `breaches`, `watchlist` and `probe` pass
/// through.
pub struct CachedCatalogs<S: ?Sized = dyn BreachSource> {
    inner: Arc<S>,
    store: Arc<dyn SharedCache>,
    ttl: Lifetimes,
    fetches: Arc<Flights<'static, EntryKey, Fetched>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<S: ?Sized> std::fmt::Debug for CachedCatalogs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCatalogs")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<S: BreachSource + ?Sized> CachedCatalogs<S> {
    /// `inner` with the default [`CacheSettings`].
    #[cfg(test)]
    pub fn new(inner: Arc<S>) -> Self {
        Self::with_settings(inner, CacheSettings::default())
    }

    /// `inner` with the given cache size and lifetimes, in this process.
    #[cfg(test)]
    pub fn with_settings(inner: Arc<S>, settings: CacheSettings) -> Self {
        let store = Arc::new(LocalCache::new(settings.capacity));
        Self::with_store(inner, settings, store)
    }

    /// `inner` with its catalogs kept in `store` for the lifetimes of `settings` (its
    /// `capacity` is the store's business).
    pub fn with_store(inner: Arc<S>, settings: CacheSettings, store: Arc<dyn SharedCache>) -> Self {
        Self {
            inner,
            store,
            ttl: Lifetimes {
                found: settings.found_ttl,
                missing: settings.missing_ttl,
            },
            fetches: Arc::new(Flights::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

/// Found entries live long, missing ones briefly.
#[derive(Debug, Clone, Copy)]
struct Lifetimes {
    found: Duration,
    missing: Duration,
}

impl<S: ?Sized> CachedCatalogs<S> {
    /// Hit and miss counts since the cache was built.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

impl<S: BreachSource + ?Sized + 'static> CachedCatalogs<S> {
    /// Fetches `keys` (all of one API key) from the inner source on a task of its own and
    /// stores the answer; errors are not stored.
    fn fetch(&self, key: &ApiKey, keys: Vec<EntryKey>) -> BoxFuture<'static, Fetched> {
        let (inner, store, key) = (self.inner.clone(), self.store.clone(), key.clone());
        let ttl = self.ttl;
        let forget_on_drop = ForgetOnDrop {
            flights: self.fetches.clone(),
            keys,
        };
        let task = tokio::spawn(crate::telemetry::counted_for_this_request(async move {
            let ids: Vec<CatalogId> = forget_on_drop.keys.iter().map(|&(_, id)| id).collect();
            let catalogs = inner.catalogs(&key, &ids).await?;
            let mut entries: HashMap<CatalogId, Entry> =
                ids.iter().map(|&id| (id, Entry::Missing)).collect();
            for catalog in catalogs {
                // Only what was asked for is stored or returned: a source that answers more
                // must not fill the cache with it.
                if let Some(entry) = entries.get_mut(&catalog.id) {
                    *entry = Entry::Found(Arc::new(catalog));
                }
            }
            let stored = forget_on_drop
                .keys
                .iter()
                .map(|&(fingerprint, id)| {
                    let entry = &entries[&id];
                    CacheEntry {
                        key: cache_key((fingerprint, id)),
                        value: entry.encode(),
                        ttl: match entry {
                            Entry::Found(_) => ttl.found,
                            Entry::Missing => ttl.missing,
                        },
                    }
                })
                .collect();
            store.set_many(stored).await;
            Ok(Arc::new(entries))
        }));
        async move {
            task.await.unwrap_or_else(|_| {
                Err(SourceError::Unexpected(
                    "the catalog fetch stopped before it answered".to_owned(),
                ))
            })
        }
        .boxed()
    }
}

#[async_trait]
impl<S: BreachSource + ?Sized + 'static> BreachSource for CachedCatalogs<S> {
    async fn breaches(
        &self,
        key: &ApiKey,
        lookup: &Lookup,
        query: &BreachQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        self.inner.breaches(key, lookup, query, into).await
    }

    /// Cached catalogs, and the rest from one call of the inner source, or from the calls
    /// other requests already made for them.
    ///
    /// # Errors
    /// The inner source's error, which is not cached.
    async fn catalogs(&self, key: &ApiKey, ids: &[CatalogId]) -> Result<Vec<Catalog>, SourceError> {
        let fingerprint = key.fingerprint();
        let mut seen = HashSet::new();
        let unique: Vec<EntryKey> = ids
            .iter()
            .filter(|id| seen.insert(**id))
            .map(|&id| (fingerprint, id))
            .collect();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<CacheKey> = unique.iter().copied().map(cache_key).collect();
        let stored = self.store.get_many(&keys).await;
        let mut found = Vec::new();
        let mut wanted = Vec::new();
        for (entry_key, value) in unique.into_iter().zip(stored) {
            match value.as_deref().and_then(Entry::decode) {
                Some(Entry::Found(catalog)) => found.push(Arc::unwrap_or_clone(catalog)),
                Some(Entry::Missing) => {}
                None => wanted.push(entry_key),
            }
        }
        let hits = (seen.len() - wanted.len()) as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        crate::telemetry::catalog_cache(hits, wanted.len() as u64);
        if wanted.is_empty() {
            return Ok(found);
        }
        self.misses
            .fetch_add(wanted.len() as u64, Ordering::Relaxed);
        let fetches = self.fetches.covering(&wanted, |keys| self.fetch(key, keys));
        let answers = futures::future::try_join_all(fetches).await?;
        for (_, id) in wanted {
            let entry = answers.iter().find_map(|answer| answer.get(&id));
            if let Some(Entry::Found(catalog)) = entry {
                found.push(Catalog::clone(catalog));
            }
        }
        Ok(found)
    }

    async fn watchlist(
        &self,
        key: &ApiKey,
        query: &WatchlistQuery,
        into: &mut (dyn RecordSink + 'static),
    ) -> Result<(), SourceError> {
        self.inner.watchlist(key, query, into).await
    }

    async fn probe(&self, key: &ApiKey) -> Result<(), SourceError> {
        self.inner.probe(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockBreachSource;
    use mockall::predicate::{always, eq};
    use serde_json::json;

    fn key(name: &str) -> ApiKey {
        ApiKey::parse(name).unwrap()
    }

    fn catalog(id: u64) -> Catalog {
        serde_json::from_value(json!({"id": id, "title": format!("breach {id}")})).unwrap()
    }

    /// A source that returns a catalog for every id asked for except those in `absent`.
    fn answers_all_but(
        absent: &'static [u64],
    ) -> impl Fn(&ApiKey, &[CatalogId]) -> Result<Vec<Catalog>, SourceError> + Send + 'static {
        move |_, ids| {
            Ok(ids
                .iter()
                .filter(|id| !absent.contains(&id.0))
                .map(|id| catalog(id.0))
                .collect())
        }
    }

    fn ids(list: &[u64]) -> Vec<CatalogId> {
        list.iter().copied().map(CatalogId).collect()
    }

    fn sorted(mut catalogs: Vec<Catalog>) -> Vec<u64> {
        let mut out: Vec<u64> = catalogs.drain(..).map(|c| c.id.0).collect();
        out.sort_unstable();
        out
    }

    #[tokio::test]
    async fn a_second_call_is_served_from_the_cache() {
        let mut inner = MockBreachSource::new();
        inner
            .expect_catalogs()
            .with(always(), eq(ids(&[1, 2])))
            .times(1)
            .returning(answers_all_but(&[]));
        let cached = CachedCatalogs::new(Arc::new(inner));
        let k = key("k1");
        assert_eq!(
            sorted(cached.catalogs(&k, &ids(&[1, 2])).await.unwrap()),
            [1, 2]
        );
        assert_eq!(
            sorted(cached.catalogs(&k, &ids(&[2, 1, 2])).await.unwrap()),
            [1, 2]
        );
        assert_eq!(cached.stats(), CacheStats { hits: 2, misses: 2 });
    }

    #[tokio::test]
    async fn caches_over_one_store_share_found_and_missing_entries() {
        // Two replicas' caches over one store: the second asks its source for nothing.
        let mut first = MockBreachSource::new();
        first
            .expect_catalogs()
            .times(1)
            .returning(answers_all_but(&[2]));
        let mut second = MockBreachSource::new();
        second.expect_catalogs().never();
        let store: Arc<dyn SharedCache> = Arc::new(LocalCache::new(100));
        let settings = CacheSettings::default();
        let a = CachedCatalogs::with_store(Arc::new(first), settings, store.clone());
        let b = CachedCatalogs::with_store(Arc::new(second), settings, store.clone());
        let k = key("k1");
        assert_eq!(sorted(a.catalogs(&k, &ids(&[1, 2])).await.unwrap()), [1]);
        assert_eq!(sorted(b.catalogs(&k, &ids(&[2, 1])).await.unwrap()), [1]);
        assert_eq!(b.stats(), CacheStats { hits: 2, misses: 0 });
        // The entries are a catalog's JSON and, for the missing id, nothing.
        let stored = store
            .get_many(&[
                cache_key((k.fingerprint(), CatalogId(1))),
                cache_key((k.fingerprint(), CatalogId(2))),
            ])
            .await;
        let found: Catalog = serde_json::from_slice(stored[0].as_ref().unwrap()).unwrap();
        assert_eq!(found, catalog(1));
        assert_eq!(stored[1].as_deref(), Some(&b""[..]));
    }

    #[tokio::test]
    async fn a_stored_value_that_is_no_catalog_is_fetched_again() {
        let mut inner = MockBreachSource::new();
        inner
            .expect_catalogs()
            .with(always(), eq(ids(&[3])))
            .times(1)
            .returning(answers_all_but(&[]));
        let store: Arc<dyn SharedCache> = Arc::new(LocalCache::new(100));
        let k = key("k1");
        store
            .set(
                cache_key((k.fingerprint(), CatalogId(3))),
                Bytes::from_static(b"{not json"),
                Duration::from_secs(60),
            )
            .await;
        let cached = CachedCatalogs::with_store(Arc::new(inner), CacheSettings::default(), store);
        assert_eq!(sorted(cached.catalogs(&k, &ids(&[3])).await.unwrap()), [3]);
        assert_eq!(cached.stats(), CacheStats { hits: 0, misses: 1 });
    }

    #[tokio::test]
    async fn only_the_misses_are_fetched_in_one_call() {
        let mut inner = MockBreachSource::new();
        let mut seq = mockall::Sequence::new();
        inner
            .expect_catalogs()
            .with(always(), eq(ids(&[1])))
            .times(1)
            .in_sequence(&mut seq)
            .returning(answers_all_but(&[]));
        inner
            .expect_catalogs()
            .with(always(), eq(ids(&[2, 3])))
            .times(1)
            .in_sequence(&mut seq)
            .returning(answers_all_but(&[]));
        let cached = CachedCatalogs::new(Arc::new(inner));
        let k = key("k1");
        cached.catalogs(&k, &ids(&[1])).await.unwrap();
        let all = cached.catalogs(&k, &ids(&[2, 1, 3, 2])).await.unwrap();
        assert_eq!(sorted(all), [1, 2, 3]);
    }

    // RULES R19
    #[tokio::test]
    async fn keys_do_not_share_entries() {
        let mut inner = MockBreachSource::new();
        inner
            .expect_catalogs()
            .with(always(), eq(ids(&[7])))
            .times(2)
            .returning(answers_all_but(&[]));
        let cached = CachedCatalogs::new(Arc::new(inner));
        cached.catalogs(&key("tenant-a"), &ids(&[7])).await.unwrap();
        let other = cached.catalogs(&key("tenant-b"), &ids(&[7])).await.unwrap();
        assert_eq!(sorted(other), [7]);
        cached.catalogs(&key("tenant-a"), &ids(&[7])).await.unwrap();
        cached.catalogs(&key("tenant-b"), &ids(&[7])).await.unwrap();
    }

    /// Asks for 4 (found) and 5 (missing) three times under `settings`, waiting 300 ms before
    /// the third: only `expired` is asked for again, and the third answer is `last`.
    async fn ask_across_a_lifetime(settings: CacheSettings, expired: &'static [u64], last: &[u64]) {
        let mut inner = MockBreachSource::new();
        inner
            .expect_catalogs()
            .with(always(), eq(ids(&[4, 5])))
            .times(1)
            .returning(answers_all_but(&[5]));
        inner
            .expect_catalogs()
            .with(always(), eq(ids(expired)))
            .times(1)
            .returning(answers_all_but(&[]));
        let cached = CachedCatalogs::with_settings(Arc::new(inner), settings);
        let k = key("k1");
        let ask = || cached.catalogs(&k, &[CatalogId(4), CatalogId(5)]);
        assert_eq!(sorted(ask().await.unwrap()), [4]);
        // Neither entry expired yet: no call.
        assert_eq!(sorted(ask().await.unwrap()), [4]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sorted(ask().await.unwrap()), last);
        assert_eq!(cached.stats(), CacheStats { hits: 3, misses: 3 });
    }

    // RULES R19
    #[tokio::test]
    async fn missing_ids_are_remembered_briefly() {
        let settings = CacheSettings {
            missing_ttl: Duration::from_millis(100),
            ..CacheSettings::default()
        };
        // The missing entry expired and 5 is found now; the found one did not expire.
        ask_across_a_lifetime(settings, &[5], &[4, 5]).await;
    }

    #[tokio::test]
    async fn found_catalogs_expire_after_their_lifetime() {
        let settings = CacheSettings {
            found_ttl: Duration::from_millis(100),
            ..CacheSettings::default()
        };
        // The found entry expired and is fetched again; the missing one did not expire.
        ask_across_a_lifetime(settings, &[4], &[4]).await;
    }

    // RULES R19
    #[test]
    fn default_settings_are_10_000_entries_an_hour_found_a_minute_missing() {
        assert_eq!(
            CacheSettings::default(),
            CacheSettings {
                capacity: 10_000,
                found_ttl: Duration::from_secs(3600),
                missing_ttl: Duration::from_secs(60),
            }
        );
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let mut inner = MockBreachSource::new();
        let mut seq = mockall::Sequence::new();
        inner
            .expect_catalogs()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Err(SourceError::Internal));
        inner
            .expect_catalogs()
            .with(always(), eq(ids(&[9])))
            .times(1)
            .in_sequence(&mut seq)
            .returning(answers_all_but(&[]));
        let cached = CachedCatalogs::new(Arc::new(inner));
        let k = key("k1");
        assert_eq!(
            cached.catalogs(&k, &ids(&[9])).await,
            Err(SourceError::Internal)
        );
        assert_eq!(sorted(cached.catalogs(&k, &ids(&[9])).await.unwrap()), [9]);
        assert_eq!(sorted(cached.catalogs(&k, &ids(&[9])).await.unwrap()), [9]);
    }

    /// Catalogs after a delay, failing the first `failures` calls; remembers what each call
    /// asked for.
    struct SlowCatalogs {
        delay: Duration,
        failures: std::sync::Mutex<usize>,
        calls: std::sync::Mutex<Vec<Vec<u64>>>,
    }

    impl SlowCatalogs {
        fn new(delay_ms: u64, failures: usize) -> Arc<Self> {
            Arc::new(Self {
                delay: Duration::from_millis(delay_ms),
                failures: std::sync::Mutex::new(failures),
                calls: std::sync::Mutex::default(),
            })
        }

        fn calls(&self) -> Vec<Vec<u64>> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl BreachSource for SlowCatalogs {
        async fn breaches(
            &self,
            _: &ApiKey,
            _: &Lookup,
            _: &BreachQuery,
            _: &mut (dyn RecordSink + 'static),
        ) -> Result<(), SourceError> {
            Ok(())
        }
        async fn catalogs(
            &self,
            _: &ApiKey,
            ids: &[CatalogId],
        ) -> Result<Vec<Catalog>, SourceError> {
            self.calls
                .lock()
                .unwrap()
                .push(ids.iter().map(|id| id.0).collect());
            tokio::time::sleep(self.delay).await;
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(SourceError::Internal);
            }
            Ok(ids.iter().map(|id| catalog(id.0)).collect())
        }
        async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
            Ok(())
        }
    }

    // RULES R19
    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_ask_for_each_missing_id_once() {
        let inner = SlowCatalogs::new(100, 0);
        let cached = CachedCatalogs::new(inner.clone());
        let k = key("k1");
        let (a, b) = (ids(&[1, 2]), ids(&[2, 3]));
        let (first, second) = tokio::join!(cached.catalogs(&k, &a), cached.catalogs(&k, &b));
        assert_eq!(sorted(first.unwrap()), [1, 2]);
        assert_eq!(sorted(second.unwrap()), [2, 3]);
        assert_eq!(inner.calls(), [vec![1, 2], vec![3]]);
        // Another key shares nothing.
        cached.catalogs(&key("k2"), &ids(&[2])).await.unwrap();
        assert_eq!(inner.calls().len(), 3);
    }

    // RULES R19
    #[tokio::test(start_paused = true)]
    async fn a_fetch_outlives_the_request_that_began_it() {
        let inner = SlowCatalogs::new(100, 0);
        let cached = CachedCatalogs::new(inner.clone());
        let k = key("k1");
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), cached.catalogs(&k, &ids(&[5]))).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sorted(cached.catalogs(&k, &ids(&[5])).await.unwrap()), [5]);
        assert_eq!(inner.calls(), [vec![5]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_fails_everyone_waiting_and_is_asked_again_after() {
        let inner = SlowCatalogs::new(100, 1);
        let cached = CachedCatalogs::new(inner.clone());
        let k = key("k1");
        let seven = ids(&[7]);
        let (first, second) =
            tokio::join!(cached.catalogs(&k, &seven), cached.catalogs(&k, &seven));
        assert_eq!(first, Err(SourceError::Internal));
        assert_eq!(second, Err(SourceError::Internal));
        assert_eq!(sorted(cached.catalogs(&k, &ids(&[7])).await.unwrap()), [7]);
        assert_eq!(inner.calls(), [vec![7], vec![7]]);
    }

    #[tokio::test]
    async fn no_ids_no_call_and_the_rest_passes_through() {
        let mut inner = MockBreachSource::new();
        inner.expect_catalogs().never();
        inner
            .expect_probe()
            .times(1)
            .returning(|_| Err(SourceError::NotFound));
        inner.expect_breaches().times(1).returning(|_, _, _, into| {
            into.add(crate::domain::RawRecord::default());
            Ok(())
        });
        let cached: CachedCatalogs = CachedCatalogs::new(Arc::new(inner));
        let k = key("k1");
        assert_eq!(cached.catalogs(&k, &[]).await, Ok(vec![]));
        assert_eq!(cached.probe(&k).await, Err(SourceError::NotFound));
        let email = Lookup::parse(crate::domain::ObservableType::Email, "a@example.com").unwrap();
        let mut records = Vec::new();
        cached
            .breaches(&k, &email, &BreachQuery::default(), &mut records)
            .await
            .unwrap();
        assert_eq!(records.len(), 1);
    }
}
