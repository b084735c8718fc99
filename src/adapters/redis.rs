//! The rate limiter and cache ports over one Redis every replica shares (`RELAY_REDIS_URL`).
//!
//! Shared, the replicas behave as one relay towards SpyCloud: one rate limit per API key (GCRA
//! in one Lua script, on Redis's clock, so it is atomic however many replicas ask), and one
//! catalog cache. Never worse than one replica: every Redis call is bounded by a short timeout;
//! a call that fails or times out is served by the process's own limiter or cache instead
//! (written through, so it holds what this replica fetched), and Redis is left alone for a
//! moment before it is asked again. The connection manager reconnects by itself; the first
//! answer after an outage resumes sharing. Outages are logged at most every 30 s and every
//! fallback is counted (`relay_redis_fallbacks_total`).
//!
//! Key names: `spycloud-relay:<space>:<tenant>[:<item>]`, where `<tenant>` is the first 128 bits
//! of HMAC-SHA-256(`RELAY_REDIS_KEY_SECRET`, SHA-256(API key)) in hex: without the secret, a
//! key name neither reveals an API key nor confirms a guessed one. Spaces: `rate` (a key's
//! GCRA state) and those of the cache's users (`catalog`, ...).
//!
//! Values: every cache value is sealed with XChaCha20-Poly1305 under a key derived from the
//! same secret by HKDF-SHA-256 (a label of its own, so the key-name hash and the cipher never
//! share a key), a random 192-bit nonce per value, and the value's Redis key name as associated
//! data: `0x01 || nonce || ciphertext and tag`. Redis holds no email, catalog or figure in
//! clear, and a value that does not open (tampered, moved to another key, written under another
//! secret or by a predecessor in clear) is a miss.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::domain::KeyFingerprint;
use crate::ports::{CacheEntry, CacheKey, RateLimiter, SharedCache};

/// Every key the relay writes starts with this.
pub const KEY_PREFIX: &str = "spycloud-relay:";
/// The shortest `RELAY_REDIS_KEY_SECRET` accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// How long one Redis call may take by default before the process's own state answers: far
/// above a round trip in one data centre, far below what a SecureX user notices.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Redis is left alone after a failure before it is asked again.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(2);
/// At most one log line about an outage this often.
const LOG_EVERY: Duration = Duration::from_secs(30);
/// The longest a waiting call sleeps before asking the shared limiter again.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// An item longer than this is hashed in key names.
const MAX_ITEM_CHARS: usize = 64;

/// The HKDF label of the key that seals values (the key-name hash is keyed by the secret
/// itself).
const VALUE_KEY_LABEL: &[u8] = b"spycloud-relay redis value encryption v1";

/// The first byte of a sealed value: its format.
const SEALED_FORMAT: u8 = 1;

/// XChaCha20-Poly1305's nonce length.
const NONCE_BYTES: usize = 24;

/// GCRA over one key: `KEYS[1]` holds the theoretical arrival time in µs (Redis's clock);
/// `ARGV[1]` is the emission interval (1 s / rate) and `ARGV[2]` the burst window (interval ×
/// burst), both in µs. Answers 0 when the call may go (and counts it), else the µs to wait.
/// Numbers are written with `%.0f`: Lua would print an epoch in µs as `1.7e+15`.
const GCRA: &str = r"
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now_us then tat = now_us end
local new_tat = tat + tonumber(ARGV[1])
local wait = new_tat - tonumber(ARGV[2]) - now_us
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now_us) / 1000) + 1)
return 0
";

/// How the relay reaches Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS) URL, with credentials and database as Redis URLs take
    /// them.
    pub url: String,
    /// The key of the keyed hash that names API keys, at least 16 bytes; the same
    /// on every replica, or they share nothing.
    pub key_secret: String,
    /// The longest one Redis call may take before the process's own state answers instead.
    pub timeout: Duration,
}

impl RedisSettings {
    /// The Redis at `url`, API keys named by a keyed hash with `key_secret`, each call bounded
    /// by 250 ms.
    ///
    /// Building checks the settings; the connection is made on first use (and a Redis that
    /// does not answer leaves each replica to its own state), so no Redis is needed here.
    ///
    /// ```
    /// use std::time::Duration;
    /// use spycloud_relay::{BuildError, Relay};
    /// use spycloud_relay::adapters::RedisSettings;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = "the same 16+ bytes on every replica";
    /// let settings = RedisSettings::new("redis://:hunter2@127.0.0.1:1/0", secret);
    /// assert_eq!(settings.timeout, Duration::from_millis(250));
    /// // `Debug` shows neither the URL (it may hold a password) nor the secret.
    /// assert_eq!(format!("{settings:?}"), "RedisSettings { timeout: 250ms, .. }");
    /// let relay = Relay::builder().redis(settings).build()?;
    ///
    /// let weak = RedisSettings::new("redis://127.0.0.1:1", "short");
    /// let Some(BuildError::Redis(why)) = Relay::builder().redis(weak).build().err() else {
    ///     panic!("a weak secret is refused")
    /// };
    /// assert!(why.starts_with("RELAY_REDIS_KEY_SECRET must be set"), "{why}");
    /// # Ok(()) }
    /// ```
    pub fn new(url: impl Into<String>, key_secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_secret: key_secret.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl From<RedisBuildError> for BuildError {
    fn from(error: RedisBuildError) -> Self {
        Self::Redis(error.to_string())
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password, the secret is one.
        f.debug_struct("RedisSettings")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why the Redis adapters could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisBuildError {
    /// Not a `redis://` or `rediss://` URL the client understands (the URL is not repeated:
    /// it may hold a password).
    #[error("RELAY_REDIS_URL is not a redis:// or rediss:// URL: {0}")]
    InvalidUrl(String),
    /// The keyed-hash secret is missing or too short.
    #[error(
        "RELAY_REDIS_KEY_SECRET must be set with RELAY_REDIS_URL, at least {MIN_SECRET_BYTES} bytes, the same on every replica"
    )]
    WeakSecret,
    /// Built outside a tokio runtime, which the connection lives on.
    #[error("the Redis adapters must be built inside a tokio runtime")]
    NoRuntime,
}

/// One Redis connection (reconnecting by itself) and the health of the last calls, shared by
/// the limiter and the cache.
pub struct Redis {
    shared: Arc<Shared>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

struct Shared {
    connection: ConnectionManager,
    secret: Hmac<Sha256>,
    cipher: XChaCha20Poly1305,
    timeout: Duration,
    health: Health,
}

impl Redis {
    /// The adapters' shared connection to `settings.url`. It connects on first use and
    /// reconnects by itself, so a Redis down at start delays nothing. Call inside a tokio
    /// runtime.
    ///
    /// # Errors
    /// [`RedisBuildError::InvalidUrl`] for a URL that is not `redis://`/`rediss://`,
    /// [`RedisBuildError::WeakSecret`] for a secret shorter than [`MIN_SECRET_BYTES`].
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisBuildError> {
        // The connection manager is spawned on the runtime: without one it would panic.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisBuildError::NoRuntime);
        }
        if settings.key_secret.len() < MIN_SECRET_BYTES {
            return Err(RedisBuildError::WeakSecret);
        }
        let scheme = settings.url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("redis" | "rediss")) {
            return Err(RedisBuildError::InvalidUrl("unknown scheme".to_owned()));
        }
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|error| RedisBuildError::InvalidUrl(error.to_string()))?;
        // Each attempt is bounded; the manager tries once more, then again on the next call.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|error| RedisBuildError::InvalidUrl(error.to_string()))?;
        let secret = <Hmac<Sha256> as Mac>::new_from_slice(settings.key_secret.as_bytes())
            .map_err(|_| RedisBuildError::WeakSecret)?;
        let mut value_key = [0u8; 32];
        Hkdf::<Sha256>::new(None, settings.key_secret.as_bytes())
            .expand(VALUE_KEY_LABEL, &mut value_key)
            .map_err(|_| RedisBuildError::WeakSecret)?;
        let cipher = XChaCha20Poly1305::new(&value_key.into());
        Ok(Self {
            shared: Arc::new(Shared {
                connection,
                secret,
                cipher,
                timeout: settings.timeout,
                health: Health::default(),
            }),
        })
    }

    /// A rate limiter of `rate` calls a second per key (burst `rate`) for all replicas
    /// together; `fallback` limits while Redis does not answer.
    pub fn rate_limiter(
        &self,
        rate: std::num::NonZeroU32,
        fallback: Arc<dyn RateLimiter>,
    ) -> RedisRateLimiter {
        let interval_us = 1_000_000 / u64::from(rate.get());
        RedisRateLimiter {
            shared: self.shared.clone(),
            script: redis::Script::new(GCRA),
            interval_us,
            window_us: interval_us * u64::from(rate.get()),
            fallback,
        }
    }

    /// A cache all replicas share; every entry is also written to `fallback`, which answers
    /// while Redis does not.
    pub fn cache(&self, fallback: Arc<dyn SharedCache>) -> RedisCache {
        RedisCache {
            shared: self.shared.clone(),
            fallback,
        }
    }
}

impl Shared {
    /// The name of a key's state: `spycloud-relay:<space>:<tenant>`.
    fn tenant_key(&self, space: &str, tenant: &KeyFingerprint) -> String {
        let mut mac = self.secret.clone();
        mac.update(&tenant.0);
        let digest = mac.finalize().into_bytes();
        format!("{KEY_PREFIX}{space}:{}", hex(&digest[..16]))
    }

    /// `value` sealed for the key `name`: `0x01 || nonce || ciphertext and tag`.
    fn seal(&self, name: &str, value: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        let mut stored = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        stored.push(SEALED_FORMAT);
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&sealed);
        Some(stored)
    }

    /// The value sealed in `stored` for the key `name`, if it opens there.
    fn open(&self, name: &str, stored: &[u8]) -> Option<Vec<u8>> {
        let (&format, rest) = stored.split_first()?;
        if format != SEALED_FORMAT || rest.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()
    }

    /// The name of a cache entry: `spycloud-relay:<space>:<tenant>:<item>`.
    fn entry_key(&self, key: &CacheKey) -> String {
        let plain = key.item.len() <= MAX_ITEM_CHARS
            && key
                .item
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._,-".contains(&b));
        let tenant = self.tenant_key(key.space, &key.tenant);
        if plain {
            format!("{tenant}:{}", key.item)
        } else {
            format!(
                "{tenant}:h{}",
                hex(&Sha256::digest(key.item.as_bytes())[..16])
            )
        }
    }

    /// Runs one Redis call (`call` over a connection) within the timeout; `None` when Redis
    /// rests after a failure, fails or does not answer in time (the fallback is then recorded
    /// for `what`).
    ///
    /// A call that finds the connection lost is made once more (within the same timeout): the
    /// first call after an outage finds the old connection broken and sets the manager
    /// reconnecting, and Redis, back by then, answers the second.
    async fn call<T, F, Fut>(&self, what: &'static str, mut call: F) -> Option<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.health.ready() {
            self.health.fell_back(what, None);
            return None;
        }
        let attempts = async {
            match call(self.connection.clone()).await {
                Err(error) if connection_lost(&error) => call(self.connection.clone()).await,
                answer => answer,
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => {
                self.health.answered();
                Some(value)
            }
            Ok(Err(error)) => {
                self.health.fell_back(what, Some(&error.to_string()));
                None
            }
            Err(_) => {
                let reason = format!("no answer within {} ms", self.timeout.as_millis());
                self.health.fell_back(what, Some(&reason));
                None
            }
        }
    }
}

/// Whether `error` says the connection is gone (rather than Redis refusing the command).
fn connection_lost(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// Whether Redis is worth asking now, and the outage log's pacing.
#[derive(Default)]
struct Health {
    state: Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    /// Redis failed: not asked again before this.
    resting_until: Option<Instant>,
    /// In an outage (since the last failure, until an answer).
    down: bool,
    /// When the outage was last logged.
    last_logged: Option<Instant>,
    /// Fallbacks since that line.
    unlogged: u64,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether to ask Redis: not while it rests after a failure.
    fn ready(&self) -> bool {
        self.lock()
            .resting_until
            .is_none_or(|until| Instant::now() >= until)
    }

    /// Redis answered: sharing (again).
    fn answered(&self) {
        let mut state = self.lock();
        state.resting_until = None;
        if state.down {
            state.down = false;
            tracing::info!(
                fallbacks = state.unlogged,
                "Redis answers again: rate limits and caches are shared again"
            );
            state.unlogged = 0;
            state.last_logged = None;
        }
    }

    /// A call was served without Redis: `reason` is why, when Redis was asked and failed.
    fn fell_back(&self, what: &'static str, reason: Option<&str>) {
        crate::telemetry::redis_fallback(what);
        let mut state = self.lock();
        let now = Instant::now();
        state.unlogged += 1;
        if let Some(reason) = reason {
            state.down = true;
            state.resting_until = Some(now + PAUSE_AFTER_FAILURE);
            if state
                .last_logged
                .is_none_or(|logged| now.duration_since(logged) >= LOG_EVERY)
            {
                tracing::warn!(
                    reason = crate::domain::email::truncate(reason, 200),
                    fallbacks = state.unlogged,
                    "Redis is not answering: this replica limits and caches on its own until it does"
                );
                state.last_logged = Some(now);
                state.unlogged = 0;
            }
        }
    }
}

/// [`RateLimiter`] shared by every replica through Redis, the process's own while Redis does
/// not answer.
pub struct RedisRateLimiter {
    shared: Arc<Shared>,
    script: redis::Script,
    interval_us: u64,
    window_us: u64,
    fallback: Arc<dyn RateLimiter>,
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("interval_us", &self.interval_us)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn until_ready(&self, tenant: &KeyFingerprint) {
        let key = &self.shared.tenant_key("rate", tenant);
        let (script, interval, window) = (&self.script, self.interval_us, self.window_us);
        loop {
            let asked = self
                .shared
                .call("rate_limit", |mut connection| async move {
                    let mut invocation = script.key(key);
                    invocation.arg(interval).arg(window);
                    invocation.invoke_async::<u64>(&mut connection).await
                })
                .await;
            match asked {
                Some(0) => return,
                Some(wait_us) => {
                    tokio::time::sleep(Duration::from_micros(wait_us).min(MAX_WAIT)).await;
                }
                None => return self.fallback.until_ready(tenant).await,
            }
        }
    }
}

/// [`SharedCache`] shared by every replica through Redis, written through to the process's
/// own, which answers while Redis does not, and for what Redis lacks.
pub struct RedisCache {
    shared: Arc<Shared>,
    fallback: Arc<dyn SharedCache>,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache").finish_non_exhaustive()
    }
}

#[async_trait]
impl SharedCache for RedisCache {
    async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let names: &Vec<String> = &keys.iter().map(|key| self.shared.entry_key(key)).collect();
        let answer = self
            .shared
            .call("cache", |mut connection| async move {
                let mut command = redis::cmd("MGET");
                command.arg(names);
                command
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut connection)
                    .await
            })
            .await;
        let Some(values) = answer.filter(|values| values.len() == keys.len()) else {
            return self.fallback.get_many(keys).await;
        };
        // A value that does not open here is a miss, like one Redis lacks.
        let mut values: Vec<Option<Bytes>> = values
            .into_iter()
            .zip(names)
            .map(|(value, name)| {
                value
                    .and_then(|stored| self.shared.open(name, &stored))
                    .map(Bytes::from)
            })
            .collect();
        // What Redis lacks (it restarted empty, say) this replica may still hold, written here
        // with the same lifetime: no need to fetch it again.
        let lacking: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        if !lacking.is_empty() {
            let asked: Vec<CacheKey> = lacking.iter().map(|&i| keys[i].clone()).collect();
            let own = self.fallback.get_many(&asked).await;
            for (i, value) in lacking.into_iter().zip(own) {
                values[i] = value;
            }
        }
        values
    }

    async fn set_many(&self, entries: Vec<CacheEntry>) {
        if entries.is_empty() {
            return;
        }
        let mut pipeline = redis::pipe();
        for entry in &entries {
            // At least a millisecond: PX refuses 0.
            let ttl_ms = u64::try_from(entry.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let name = self.shared.entry_key(&entry.key);
            let Some(sealed) = self.shared.seal(&name, &entry.value) else {
                continue;
            };
            pipeline
                .cmd("SET")
                .arg(name)
                .arg(sealed)
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        self.fallback.set_many(entries).await;
        let pipeline = &pipeline;
        self.shared
            .call("cache", |mut connection| async move {
                pipeline.query_async::<()>(&mut connection).await
            })
            .await;
    }
}

/// The integration tests' `redis-server` on a free loopback port.
#[cfg(test)]
#[path = "../../tests/common/redis.rs"]
#[allow(dead_code)]
mod redis_server;

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str) -> RedisSettings {
        RedisSettings {
            url: "redis://127.0.0.1:1".to_owned(),
            key_secret: secret.to_owned(),
            timeout: Duration::from_millis(100),
        }
    }

    #[tokio::test]
    async fn key_names_are_namespaced_and_hash_the_key_with_the_secret() {
        let redis = Redis::new(&settings("0123456789abcdef")).unwrap();
        let other = Redis::new(&settings("another secret of 16+")).unwrap();
        let tenant = crate::domain::ApiKey::parse("sc-api-key")
            .unwrap()
            .fingerprint();
        let name = redis.shared.tenant_key("rate", &tenant);
        assert!(name.starts_with("spycloud-relay:rate:"), "{name}");
        assert_eq!(name.len(), "spycloud-relay:rate:".len() + 32);
        assert!(!name.contains("sc-api-key"));
        // Not the plain SHA-256 of the key: that would confirm a guessed key.
        assert!(!name.contains(&hex(&tenant.0[..16])));
        assert_eq!(name, redis.shared.tenant_key("rate", &tenant));
        assert_ne!(name, other.shared.tenant_key("rate", &tenant));
        let entry = |item: &str| {
            redis.shared.entry_key(&CacheKey {
                space: "catalog",
                tenant,
                item: item.to_owned(),
            })
        };
        assert_eq!(
            entry("17494"),
            format!("{}:17494", redis.shared.tenant_key("catalog", &tenant))
        );
        // Items a key name should not carry whole are hashed.
        let odd = entry("last 7 days\n*");
        assert!(odd.contains(":h") && !odd.contains(' '), "{odd}");
        assert_eq!(odd.len(), entry(&"x".repeat(65)).len());
    }

    #[tokio::test]
    async fn values_open_only_under_their_key_name_and_secret_untouched() {
        let redis = Redis::new(&settings("0123456789abcdef")).unwrap();
        let other = Redis::new(&settings("another secret of 16+")).unwrap();
        let value = b"{\"title\":\"Cracking Forum\"}";
        let sealed = redis
            .shared
            .seal("spycloud-relay:catalog:t:1", value)
            .unwrap();
        assert_eq!(sealed.len(), value.len() + 1 + NONCE_BYTES + 16);
        assert_eq!(sealed[0], SEALED_FORMAT);
        assert!(!String::from_utf8_lossy(&sealed).contains("Cracking"));
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            redis
                .shared
                .seal("spycloud-relay:catalog:t:1", value)
                .unwrap()
        );
        assert_eq!(
            redis
                .shared
                .open("spycloud-relay:catalog:t:1", &sealed)
                .as_deref(),
            Some(&value[..])
        );
        assert_eq!(
            redis.shared.open("spycloud-relay:catalog:t:2", &sealed),
            None
        );
        assert_eq!(
            other.shared.open("spycloud-relay:catalog:t:1", &sealed),
            None
        );
        for at in [0, 1, NONCE_BYTES + 1, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[at] ^= 1;
            assert_eq!(
                redis.shared.open("spycloud-relay:catalog:t:1", &tampered),
                None,
                "{at}"
            );
        }
        for stored in [&b""[..], b"\x01", &value[..], &sealed[..sealed.len() - 1]] {
            assert_eq!(
                redis.shared.open("spycloud-relay:catalog:t:1", stored),
                None
            );
        }
        // An empty value (a catalog known to be missing) seals and opens too.
        let empty = redis.shared.seal("k", b"").unwrap();
        assert_eq!(redis.shared.open("k", &empty).as_deref(), Some(&b""[..]));
    }

    #[tokio::test]
    async fn bad_urls_and_weak_secrets_are_refused() {
        for url in [
            "",
            "http://127.0.0.1:6379",
            "127.0.0.1:6379",
            "redis://[::1",
        ] {
            let settings = RedisSettings {
                url: url.to_owned(),
                ..settings("0123456789abcdef")
            };
            assert!(
                matches!(Redis::new(&settings), Err(RedisBuildError::InvalidUrl(_))),
                "{url}"
            );
        }
        assert!(matches!(
            Redis::new(&settings("short")),
            Err(RedisBuildError::WeakSecret)
        ));
        // Neither the URL (it may hold a password) nor the secret is printed.
        let settings = RedisSettings {
            url: "redis://:hunter2@127.0.0.1".to_owned(),
            ..settings("0123456789abcdef")
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("0123456789abcdef"));
    }

    #[tokio::test]
    async fn without_redis_the_process_state_answers() {
        // Nothing listens on port 1: every call falls back at once.
        let redis = Redis::new(&settings("0123456789abcdef")).unwrap();
        let local = Arc::new(crate::adapters::local::LocalCache::new(10));
        let cache = redis.cache(local.clone());
        let key = CacheKey {
            space: "catalog",
            tenant: KeyFingerprint([1; 32]),
            item: "1".to_owned(),
        };
        cache
            .set_many(vec![CacheEntry {
                key: key.clone(),
                value: Bytes::from_static(b"v"),
                ttl: Duration::from_secs(60),
            }])
            .await;
        assert_eq!(
            cache.get_many(std::slice::from_ref(&key)).await,
            [Some(Bytes::from_static(b"v"))]
        );
        let limiter = redis.rate_limiter(
            std::num::NonZeroU32::new(5).unwrap(),
            Arc::new(crate::adapters::local::LocalRateLimiter::new(
                std::num::NonZeroU32::new(5).unwrap(),
            )),
        );
        limiter.until_ready(&KeyFingerprint([1; 32])).await;
        assert!(!redis.shared.health.ready(), "Redis rests after a failure");
    }

    #[tokio::test]
    async fn the_redis_cache_answers_what_redis_lacks_from_what_this_replica_wrote() {
        use crate::adapters::local::LocalCache;
        use crate::domain::KeyFingerprint;
        use crate::ports::{CacheKey, SharedCache};
        use redis_server::RedisServer;
        const SECRET: &str = "replica-test-secret-0123456789";
        let Some(mut redis) = RedisServer::start() else {
            return;
        };
        let settings = RedisSettings {
            url: redis.url(),
            key_secret: SECRET.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        };
        let key = |item: &str| CacheKey {
            space: "test",
            tenant: KeyFingerprint([7; 32]),
            item: item.to_owned(),
        };
        let ours: std::sync::Arc<dyn SharedCache> = std::sync::Arc::new(
            Redis::new(&settings)
                .unwrap()
                .cache(std::sync::Arc::new(LocalCache::new(100))),
        );
        let theirs = Redis::new(&settings)
            .unwrap()
            .cache(std::sync::Arc::new(LocalCache::new(100)));
        let value = |text: &'static str| Some(bytes::Bytes::from_static(text.as_bytes()));
        ours.set(key("a"), value("1").unwrap(), Duration::from_secs(60))
            .await;
        // Shared: another replica reads it from Redis.
        assert_eq!(
            theirs.get_many(&[key("a"), key("b")]).await,
            [value("1"), None]
        );
        // Redis restarts empty: the writer still answers from its own copy, the other cannot.
        redis.kill();
        assert!(redis.restart());
        assert_eq!(ours.get(&key("a")).await, value("1"));
        assert_eq!(theirs.get_many(&[key("a")]).await, [None]);
        assert!(redis.keys().is_empty(), "{:?}", redis.keys());
    }
}
