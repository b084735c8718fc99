//! How often upstream calls may be made: per API key, shared by every caller of one limiter.

use async_trait::async_trait;

use crate::domain::KeyFingerprint;

/// A per-key rate limit on upstream calls (a token bucket, or its equivalent GCRA).
///
/// The SpyCloud adapter asks it before every HTTP attempt. An adapter may keep its state in the
/// process or share it with other replicas; callers cannot tell which.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Waits until the key `tenant` may make one more call, and counts that call.
    ///
    /// # Errors
    /// None: a limiter whose shared state is unreachable limits with state of its own instead,
    /// so a limit never fails a request.
    async fn until_ready(&self, tenant: &KeyFingerprint);
}
