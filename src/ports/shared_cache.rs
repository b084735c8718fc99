//! A cache of bytes with a lifetime per entry: what the relay remembers across requests (and,
//! with a shared adapter, across replicas).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::KeyFingerprint;

/// What one cache entry is: the kind of value, the API key it belongs to, and which one.
///
/// The tenant is a [`KeyFingerprint`], never the key: an adapter that names entries outside
/// the process (Redis) turns it into a keyed hash, so no key, nor anything that confirms one,
/// leaves the process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The kind of value, a short constant such as `catalog` or `scan`; values of one space
    /// share one encoding.
    pub space: &'static str,
    /// Whose entry it is: one API key's entries are never answered to another.
    pub tenant: KeyFingerprint,
    /// Which entry of the space and tenant, e.g. a catalog id. Not a secret; an adapter may
    /// hash an item that is long or holds characters other than letters, digits and `.,_-`.
    pub item: String,
}

/// A value to store under a key for a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Where.
    pub key: CacheKey,
    /// What: bytes the cache does not read (the user serializes).
    pub value: Bytes,
    /// How long it is answered; then it is gone.
    pub ttl: Duration,
}

/// Bytes by key, each entry for its own lifetime.
///
/// Best effort by contract: a miss is always a possible answer (an entry may be evicted before
/// its time), so users fetch what a miss leaves out. Values of a space are whatever its user
/// wrote; a value it cannot read is a miss too.
#[async_trait]
pub trait SharedCache: Send + Sync {
    /// The values of `keys`, in the same order; `None` for a key absent or expired.
    ///
    /// # Errors
    /// None: an adapter whose store is unreachable answers from a store of its own (or with
    /// misses), so a cache never fails a request.
    async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>>;

    /// Stores every entry for its own `ttl`, replacing what its key held.
    ///
    /// # Errors
    /// None: an entry that cannot be stored is simply not there later.
    async fn set_many(&self, entries: Vec<CacheEntry>);
}

/// One key at a time, for users with one value per request (a tile's watchlist scan).
impl dyn SharedCache {
    /// The value of `key`, if any.
    pub async fn get(&self, key: &CacheKey) -> Option<Bytes> {
        self.get_many(std::slice::from_ref(key))
            .await
            .into_iter()
            .next()
            .flatten()
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: CacheKey, value: Bytes, ttl: Duration) {
        self.set_many(vec![CacheEntry { key, value, ttl }]).await;
    }
}
