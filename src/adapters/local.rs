//! The process's own rate limiter and cache: the ports' adapters when there is one replica, and
//! what the Redis adapters fall back to when Redis does not answer.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota};
use moka::Expiry;
use moka::future::Cache;

use crate::domain::KeyFingerprint;
use crate::ports::{CacheEntry, CacheKey, RateLimiter, SharedCache};

/// Drop idle keys from the rate limiter every this many calls.
const RETAIN_EVERY: u64 = 1024;

/// A token bucket per API key in this process (governor's GCRA): `rate` calls a second, and
/// a burst of as many.
pub struct LocalRateLimiter {
    limiter: DefaultKeyedRateLimiter<KeyFingerprint>,
    calls: AtomicU64,
}

impl std::fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("keys", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl LocalRateLimiter {
    /// `rate` calls a second per key, burst `rate`.
    pub fn new(rate: NonZeroU32) -> Self {
        Self {
            limiter: governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(rate)),
            calls: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    /// On tokio's timer rather than governor's `until_key_ready`, whose timer runs a thread of
    /// its own.
    async fn until_ready(&self, tenant: &KeyFingerprint) {
        if self.calls.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let mut waited = false;
        while let Err(not_until) = self.limiter.check_key(tenant) {
            if !std::mem::replace(&mut waited, true) {
                crate::telemetry::rate_limit_wait();
            }
            let wait = not_until.wait_time_from(governor::clock::Clock::now(self.limiter.clock()));
            tokio::time::sleep(wait).await;
        }
    }
}

/// A value and how long it lives.
#[derive(Clone)]
struct Stored {
    value: Bytes,
    ttl: Duration,
}

/// Each entry lives its own `ttl`, from when it was (last) written.
struct OwnLifetime;

impl Expiry<CacheKey, Stored> for OwnLifetime {
    fn expire_after_create(&self, _: &CacheKey, stored: &Stored, _: Instant) -> Option<Duration> {
        Some(stored.ttl)
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        stored: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }
}

/// A [`SharedCache`] in this process (moka), of at most `capacity` entries; the least used
/// go first when it is full.
#[derive(Clone)]
pub struct LocalCache {
    cache: Cache<CacheKey, Stored>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl LocalCache {
    /// A cache of at most `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(OwnLifetime)
                .build(),
        }
    }
}

#[async_trait]
impl SharedCache for LocalCache {
    async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.cache.get(key).await.map(|stored| stored.value));
        }
        values
    }

    async fn set_many(&self, entries: Vec<CacheEntry>) {
        for CacheEntry { key, value, ttl } in entries {
            self.cache.insert(key, Stored { value, ttl }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: u8) -> KeyFingerprint {
        KeyFingerprint([n; 32])
    }

    fn key(space: &'static str, n: u8, item: &str) -> CacheKey {
        CacheKey {
            space,
            tenant: tenant(n),
            item: item.to_owned(),
        }
    }

    fn entry(key: CacheKey, value: &'static str, ttl_ms: u64) -> CacheEntry {
        CacheEntry {
            key,
            value: Bytes::from_static(value.as_bytes()),
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    #[tokio::test]
    async fn entries_are_kept_by_space_tenant_and_item_for_their_own_lifetime() {
        let cache = LocalCache::new(100);
        cache
            .set_many(vec![
                entry(key("catalog", 1, "7"), "short", 100),
                entry(key("catalog", 1, "8"), "long", 60_000),
            ])
            .await;
        let asked = [
            key("catalog", 1, "7"),
            key("catalog", 1, "8"),
            key("catalog", 2, "8"),
            key("scan", 1, "8"),
        ];
        let some = |s: &'static str| Some(Bytes::from_static(s.as_bytes()));
        assert_eq!(
            cache.get_many(&asked).await,
            [some("short"), some("long"), None, None]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cache.get_many(&asked[..2]).await, [None, some("long")]);
        // One at a time, through the port.
        let port: &dyn SharedCache = &cache;
        port.set(
            key("scan", 1, "p"),
            Bytes::from_static(b"v"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(port.get(&key("scan", 1, "p")).await, some("v"));
        assert_eq!(port.get(&key("scan", 2, "p")).await, None);
    }

    #[tokio::test]
    async fn the_limiter_holds_back_one_key_and_not_another() {
        let limiter = std::sync::Arc::new(LocalRateLimiter::new(NonZeroU32::new(1).unwrap()));
        limiter.until_ready(&tenant(1)).await;
        limiter.until_ready(&tenant(2)).await;
        // One call a second, burst one: key 1's second call waits about a second. Looked at
        // well inside it.
        let held = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.until_ready(&tenant(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!held.is_finished(), "key 1's second call waits its turn");
        held.await.unwrap();
    }
}
