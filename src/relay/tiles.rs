//! Tiles: the Employee ATO dashboard. Every tile of a period is figures from one watchlist scan,
//! shared per (API key, period, severity filter) and kept `RELAY_TILES_CACHE_SECS`; a request
//! that needs a scan already under way waits for it. The scan runs on a task of its own while
//! a request waits for it, and stops when none does any more; at most [`MAX_SCANS_RUNNING`]
//! run at once, and at most [`MAX_SCANS_KEPT`] are kept.
//!
//! Scans are shared by replicas too: a scan this process neither keeps nor is making is first
//! looked for in the relay's [`SharedCache`] (Redis with replicas, space `scan`), and a scan
//! made here is stored there until it expires, with its own times, so every replica answers
//! the same `valid_time`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::TimeDelta;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, WeakShared};
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Authorized, Clock, Relay};
use crate::domain::tiles::{Figures, Period, ScanTally, TileAnswer, TileData, TileId, tile_data};
use crate::domain::{
    ApiKey, Credentials, Error, KeyFingerprint, SeverityFilter, SourceError, Timestamp,
};
use crate::ports::{BreachSource, CacheKey, SharedCache, WatchlistQuery};

/// How many times `RELAY_MAX_RECORDS` a watchlist scan reads at most.
const SCAN_RECORDS_PER_LOOKUP_RECORD: u64 = 100;
/// The shared cache's space of scans: `spycloud-relay:scan:<tenant>:<period>.<severity>`.
const SCAN_SPACE: &str = "scan";
/// The longest a scan is kept, whatever `RELAY_TILES_CACHE_SECS` says (the cache refuses
/// lifetimes of centuries, and a year-old scan is no dashboard).
const LONGEST_KEPT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

impl Relay {
    /// An authorized caller's tile-data request: the figures of `tile` over `period`, within
    /// its request's deadline, beside the token's invalid module settings (warnings, before a
    /// fatal error if there is one). The scan asks for the module setting `SEVERITY`.
    ///
    /// The answer's fatal error, if any, is the scan's or the catalog call's
    /// [`Error::Upstream`] (or the typed error it means), or [`Error::Deadline`].
    pub(crate) async fn tile_figures(
        &self,
        caller: &Authorized,
        tile: TileId,
        period: Period,
    ) -> TileAnswer {
        let figures = self.tile_from_scan(&caller.credentials, tile, period);
        let figures = self.within(caller.deadline, figures).await;
        TileAnswer::of(&caller.credentials, figures)
    }

    /// A tile's figures with known credentials (the scan asks for their `SEVERITY`), within
    /// the request deadline. The scan it needs is shared and kept; past the deadline it goes
    /// on for the next request. The credentials' invalid module settings are the caller's to
    /// report (`credentials.settings.warnings()`).
    ///
    /// # Errors
    /// The scan's or the catalog call's failure ([`Error::Authorization`],
    /// [`Error::RateLimited`], [`Error::Upstream`] ...), or [`Error::Deadline`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use spycloud_relay::{Relay, RelaySettings};
    /// use spycloud_relay::adapters::{FixedCredentials, MemorySource};
    /// use spycloud_relay::domain::{ApiKey, Credentials, Period, TileId, Timestamp};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let credentials = Credentials::new(ApiKey::parse("demo-api-key")?);
    /// # let decoder = Arc::new(FixedCredentials(credentials.clone()));
    /// // The demo's watchlist: twelve employees' records over the 90 days before `now`.
    /// let now = Timestamp::parse("2024-06-01T12:00:00Z")?;
    /// let source = Arc::new(MemorySource::sample_at(now));
    /// let relay = Relay::new(source, decoder, RelaySettings::default()).with_clock(move || now);
    ///
    /// let summary = relay.tile_data_as(&credentials, TileId::ExposureSummary, Period::Last90Days).await?;
    /// let metrics = serde_json::to_value(&summary)?["data"].take();
    /// assert_eq!(metrics[0]["label"], "Exposed employees");
    /// assert_eq!(metrics[0]["value"], 12);
    /// assert_eq!(metrics[1]["label"], "Breach records");
    /// assert_eq!(metrics[1]["value"], 360);
    /// # Ok(()) }
    /// ```
    pub async fn tile_data_as(
        &self,
        credentials: &Credentials,
        tile: TileId,
        period: Period,
    ) -> Result<TileData, Error> {
        let figures = self.tile_from_scan(credentials, tile, period);
        self.within(self.deadline(), figures).await
    }

    /// A tile's figures, from the shared scan (and, for the top breaches, their titles).
    async fn tile_from_scan(
        &self,
        credentials: &Credentials,
        tile: TileId,
        period: Period,
    ) -> Result<TileData, Error> {
        let now = (self.clock)();
        let scan = self.scan(credentials, period, now).await?;
        let titles = match tile {
            TileId::TopBreaches if !scan.figures.top_breaches.is_empty() => {
                let ids: Vec<_> = scan
                    .figures
                    .top_breaches
                    .iter()
                    .map(|&(id, _)| id)
                    .collect();
                // The source is the catalog cache in production: one call, for the ids it lacks.
                self.source.catalogs(&credentials.api_key, &ids).await?
            }
            _ => Vec::new(),
        };
        Ok(tile_data(tile, &scan.figures, scan.expires, |id| {
            titles
                .iter()
                .find(|catalog| catalog.id == id)
                .and_then(|catalog| catalog.title.clone())
        }))
    }

    /// The kept scan of the key, period and `SEVERITY` setting, else the one another replica
    /// shared, else a new one begun at `now` (and shared).
    /// (`SINCE_DAYS` does not apply: the period decides how far back the scan goes.)
    async fn scan(
        &self,
        credentials: &Credentials,
        period: Period,
        now: Timestamp,
    ) -> Result<Arc<Scan>, SourceError> {
        let key = ScanKey {
            tenant: credentials.api_key.fingerprint(),
            period,
            severity: credentials.settings.severity.clone(),
        };
        let kept = self.settings.tiles_cache.min(LONGEST_KEPT);
        let job = ScanJob {
            shared: self.shared_scan(&key),
            source: self.source.clone(),
            api_key: credentials.api_key.clone(),
            period,
            severity: key.severity.clone(),
            now,
            limit: self
                .settings
                .max_records
                .saturating_mul(SCAN_RECORDS_PER_LOOKUP_RECORD),
            expires: now.plus(TimeDelta::from_std(kept).unwrap_or(TimeDelta::MAX)),
        };
        let turn = self.scans.turn();
        self.scans
            .get_or_scan(key, now, move || job.run(turn).boxed())
            .await
    }

    /// Where the scan of `key` is shared with the other replicas:
    /// `scan:<tenant>:<period>.<severity>` in the shared cache, if there is one.
    fn shared_scan(&self, key: &ScanKey) -> SharedScan {
        let severity = key.severity.as_ref().map(SeverityFilter::query_value);
        SharedScan {
            cache: self.shared.clone(),
            key: CacheKey {
                space: SCAN_SPACE,
                tenant: key.tenant,
                item: format!("{}.{}", key.period.as_str(), severity.unwrap_or_default()),
            },
            clock: self.clock.clone(),
        }
    }
}

/// What one scan needs, on the task that makes it.
struct ScanJob {
    shared: SharedScan,
    source: Arc<dyn BreachSource>,
    api_key: ApiKey,
    period: Period,
    severity: Option<SeverityFilter>,
    /// When the scan begins; its period ends then.
    now: Timestamp,
    /// The most records it reads.
    limit: u64,
    expires: Timestamp,
}

impl ScanJob {
    /// The scan another replica shared, else one made here (once `turn` comes) and shared.
    async fn run(
        self,
        turn: BoxFuture<'static, Option<OwnedSemaphorePermit>>,
    ) -> Result<Scan, SourceError> {
        let period = self.period.as_str();
        if let Some(scan) = self.shared.get(self.period, self.now).await {
            tracing::debug!(period, "watchlist scan shared by a replica");
            return Ok(scan);
        }
        let _turn = turn.await;
        let figures = self.read_watchlist().await?;
        tracing::debug!(
            period,
            records = figures.records,
            not_read = figures.not_read,
            "watchlist scan done"
        );
        let scan = Scan {
            figures,
            expires: self.expires,
        };
        self.shared.set(&scan).await;
        Ok(scan)
    }

    /// The watchlist of the period, folded into figures page by page (counted in the metrics).
    async fn read_watchlist(&self) -> Result<Figures, SourceError> {
        let mut scan_tally = ScanTally::new(self.period, self.now, self.limit);
        let query = WatchlistQuery {
            since: scan_tally.since(),
            severity: self.severity.clone(),
        };
        let outcome = self
            .source
            .watchlist(&self.api_key, &query, &mut scan_tally)
            .await;
        crate::telemetry::tile_scan(
            self.period.as_str(),
            if outcome.is_ok() { "ok" } else { "error" },
        );
        outcome?;
        Ok(scan_tally.finish())
    }
}

/// Where one scan is shared with the other replicas.
struct SharedScan {
    cache: Option<Arc<dyn SharedCache>>,
    key: CacheKey,
    clock: Clock,
}

impl SharedScan {
    /// The scan stored under the key, if it decodes, is one a scan of `period` can make (see
    /// [`Figures::fit`]: whoever can write to the shared cache cannot make the relay answer
    /// what the contract does not allow), was made by `now` and has not expired by then;
    /// anything else is a miss.
    async fn get(&self, period: Period, now: Timestamp) -> Option<Scan> {
        let bytes = self.cache.as_ref()?.get(&self.key).await?;
        let scan = match serde_json::from_slice::<Scan>(&bytes) {
            Ok(scan) => scan,
            Err(error) => {
                tracing::debug!(%error, "a shared watchlist scan that does not decode: a miss");
                return None;
            }
        };
        if scan.expires <= now {
            return None;
        }
        let fits = scan.figures.fit(period).and_then(|()| {
            if scan.figures.end <= now && scan.figures.end <= scan.expires {
                Ok(())
            } else {
                Err("it was made after now or expires before it was made")
            }
        });
        match fits {
            Ok(()) => Some(scan),
            Err(why) => {
                tracing::warn!(
                    period = period.as_str(),
                    why,
                    "a shared watchlist scan the contract does not allow: a miss"
                );
                None
            }
        }
    }

    /// Stores `scan` for the time left until it expires (none left: not stored).
    async fn set(&self, scan: &Scan) {
        let Some(cache) = &self.cache else {
            return;
        };
        let left = (self.clock)().until(scan.expires);
        let Some(ttl) = left.to_std().ok().filter(|ttl| !ttl.is_zero()) else {
            return;
        };
        match serde_json::to_vec(scan) {
            Ok(value) => {
                cache
                    .set(self.key.clone(), value.into(), ttl.min(LONGEST_KEPT))
                    .await;
            }
            Err(error) => tracing::debug!(%error, "a watchlist scan that does not encode"),
        }
    }
}

/// One finished scan: what the tiles show, and until when. Its JSON is what replicas share.
#[derive(Debug, Serialize, Deserialize)]
struct Scan {
    figures: Figures,
    expires: Timestamp,
}

/// What a scan is shared by: the tenant (a digest of its API key), the period, the module
/// setting `SEVERITY`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScanKey {
    tenant: KeyFingerprint,
    period: Period,
    severity: Option<SeverityFilter>,
}

/// A scan's outcome, shared by every request that waited for it.
type Scanned = Result<Arc<Scan>, SourceError>;

/// A scan under way: what every request waiting for it awaits. When the last one stops
/// waiting (it answered, or gave up at its deadline), the future is dropped, and with it the
/// [`StopOnDrop`] that stops the scan's task.
type Flight = Shared<BoxFuture<'static, Scanned>>;

/// The scans under way by key, each numbered and held weakly.
type Flights = HashMap<ScanKey, (u64, WeakShared<BoxFuture<'static, Scanned>>)>;

/// The most scans running at once in this process, whatever keys, periods and `SEVERITY`
/// settings ask: a scan holds up to tens of MiB while it runs (see [`ScanTally`]). A scan waits
/// for its turn; the requests waiting for it stay bounded by their deadline.
const MAX_SCANS_RUNNING: usize = 4;
/// The most finished scans kept in this process (each a few KiB: at most 91 days and 10 rows
/// per top table); the least used go first.
const MAX_SCANS_KEPT: u64 = 1024;

/// The scans kept in this process, and those under way. Only [`Relay`] uses it; the scan a
/// flight makes looks in the shared cache first (see [`Relay::scan`]).
pub(crate) struct Scans {
    kept: Cache<ScanKey, Arc<Scan>>,
    /// The scans under way, held weakly: a scan is alive while a request waits for it.
    flights: Arc<Mutex<Flights>>,
    /// Numbers the flights, so a flight that ended forgets its own entry, not a newer one.
    begun: AtomicU64,
    /// The turns of [`MAX_SCANS_RUNNING`].
    running: Arc<Semaphore>,
}

impl std::fmt::Debug for Scans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scans")
            .field("kept", &self.kept.entry_count())
            .finish_non_exhaustive()
    }
}

/// Stops a scan's task when dropped: when no request waits for the scan any more.
struct StopOnDrop(tokio::task::AbortHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forgets a flight when dropped (its task ended, or was stopped), unless a newer flight of
/// its key took its place.
struct ForgetScanOnDrop {
    flights: Arc<Mutex<Flights>>,
    key: ScanKey,
    number: u64,
}

impl Drop for ForgetScanOnDrop {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights
            .get(&self.key)
            .is_some_and(|(number, _)| *number == self.number)
        {
            flights.remove(&self.key);
        }
    }
}

impl Scans {
    /// Scans kept `ttl` (the relay also checks each scan's own expiry against its clock).
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            // Bounds memory: a scan is dropped at most `ttl` after it was made, by the
            // process's clock, whatever clock the relay reads.
            kept: Cache::builder()
                .max_capacity(MAX_SCANS_KEPT)
                .time_to_live(ttl.clamp(Duration::from_millis(1), LONGEST_KEPT))
                .build(),
            flights: Arc::default(),
            begun: AtomicU64::new(0),
            running: Arc::new(Semaphore::new(MAX_SCANS_RUNNING)),
        }
    }

    /// A turn to run a scan: at most [`MAX_SCANS_RUNNING`] at once.
    pub(crate) fn turn(&self) -> BoxFuture<'static, Option<OwnedSemaphorePermit>> {
        let running = self.running.clone();
        async move { running.acquire_owned().await.ok() }.boxed()
    }

    /// The kept scan of `key` if it has not expired by `now`; else the scan under way for
    /// it, or a new one that `scan` makes (on a task of its own), kept when it succeeds.
    /// A failed scan is not kept: the next request tries again. A scan stops as soon as no
    /// request waits for it.
    async fn get_or_scan(
        &self,
        key: ScanKey,
        now: Timestamp,
        scan: impl FnOnce() -> BoxFuture<'static, Result<Scan, SourceError>>,
    ) -> Scanned {
        if let Some(kept) = self.kept.get(&key).await
            && kept.expires > now
        {
            return Ok(kept);
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key).and_then(|(_, flight)| flight.upgrade()) {
                Some(flight) => flight,
                None => {
                    let number = self.begun.fetch_add(1, Ordering::Relaxed);
                    let flight = self.start(key.clone(), number, scan);
                    if let Some(weak) = flight.downgrade() {
                        flights.insert(key, (number, weak));
                    }
                    flight
                }
            }
        };
        flight.await
    }

    /// A flight of a scan of `key`, on a task of its own that stops when the flight is
    /// dropped.
    fn start(
        &self,
        key: ScanKey,
        number: u64,
        scan: impl FnOnce() -> BoxFuture<'static, Result<Scan, SourceError>>,
    ) -> Flight {
        let kept = self.kept.clone();
        let forget_on_drop = ForgetScanOnDrop {
            flights: self.flights.clone(),
            key,
            number,
        };
        let work = scan();
        let task = tokio::spawn(crate::telemetry::counted_for_this_request(async move {
            let scanned = work.await.map(Arc::new);
            if let Ok(scan) = &scanned {
                kept.insert(forget_on_drop.key.clone(), scan.clone()).await;
            }
            drop(forget_on_drop);
            scanned
        }));
        let stop = StopOnDrop(task.abort_handle());
        async move {
            let _stop = stop;
            task.await.unwrap_or_else(|_| {
                Err(SourceError::Unexpected(
                    "the watchlist scan stopped before it answered".to_owned(),
                ))
            })
        }
        .boxed()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RelaySettings;
    use crate::adapters::local::LocalCache;
    use crate::domain::{
        ApiKey, AuthError, BreachQuery, Catalog, CatalogId, EntitiesLimit, Lookup, ModuleSettings,
        RawRecord, RecordSink,
    };
    use crate::ports::{BreachSource, MockBreachSource, MockCredentialDecoder};
    use crate::relay::Caller;
    use async_trait::async_trait;
    use serde_json::{Value, json};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    const NOW: &str = "2026-03-10T12:00:00Z";

    fn caller(token: &str) -> Caller<'_> {
        Caller {
            authorization: Some(token),
            audience: "http://relay",
        }
    }

    const ALICE: &str = "Bearer alice";

    /// A decoder granting the key named after `Bearer `; after a `|`, the token's other
    /// claims as JSON (the module settings).
    fn decoder() -> MockCredentialDecoder {
        let mut decoder = MockCredentialDecoder::new();
        decoder.expect_decode().returning(|token, _| {
            if token == "expired" {
                return Err(AuthError::Expired);
            }
            let (key, claims) = token.split_once('|').unwrap_or((token, "{}"));
            let claims: Value = serde_json::from_str(claims).unwrap();
            Ok(Credentials {
                api_key: ApiKey::parse(key).unwrap(),
                entities_limit: EntitiesLimit::DEFAULT,
                settings: ModuleSettings::from_claims(claims.as_object().unwrap()),
            })
        });
        decoder
    }

    fn record(source_id: u64, email: &str) -> RawRecord {
        serde_json::from_value(json!({
            "email": email, "source_id": source_id, "severity": 25,
            "spycloud_publish_date": "2026-03-10T00:00:00Z"
        }))
        .unwrap()
    }

    /// A watchlist of pages after a delay, each saying SpyCloud holds `hits` records; counts
    /// scans and keeps their queries and how many pages each fed.
    struct Watchlist {
        pages: Vec<Vec<RawRecord>>,
        hits: u64,
        delay: Duration,
        failure: Option<SourceError>,
        /// What every catalog call fails with, if set.
        catalog_failure: Option<SourceError>,
        scans: Mutex<Vec<(WatchlistQuery, usize)>>,
        catalog_calls: Mutex<Vec<Vec<CatalogId>>>,
        /// Scans begun (finished or not), running now, and the most that ran at once.
        begun: AtomicU64,
        running: Arc<AtomicU64>,
        most_running: AtomicU64,
    }

    /// Counts a scan out of the running ones when it ends, however it ends.
    struct Running(Arc<AtomicU64>);

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Watchlist {
        fn new(pages: Vec<Vec<RawRecord>>, hits: u64) -> Self {
            Self {
                pages,
                hits,
                delay: Duration::from_millis(100),
                failure: None,
                catalog_failure: None,
                scans: Mutex::default(),
                catalog_calls: Mutex::default(),
                begun: AtomicU64::new(0),
                running: Arc::default(),
                most_running: AtomicU64::new(0),
            }
        }

        fn scans(&self) -> usize {
            self.scans.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl BreachSource for Watchlist {
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
            self.catalog_calls.lock().unwrap().push(ids.to_vec());
            if let Some(failure) = &self.catalog_failure {
                return Err(failure.clone());
            }
            Ok(ids
                .iter()
                .filter(|id| id.0 != 99)
                .map(|id| {
                    serde_json::from_value(json!({"id": id.0, "title": format!("T{}", id.0)}))
                        .unwrap()
                })
                .collect())
        }
        async fn watchlist(
            &self,
            _: &ApiKey,
            query: &WatchlistQuery,
            into: &mut (dyn RecordSink + 'static),
        ) -> Result<(), SourceError> {
            self.begun.fetch_add(1, Ordering::SeqCst);
            let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now_running, Ordering::SeqCst);
            let _running = Running(self.running.clone());
            tokio::time::sleep(self.delay).await;
            let mut handed = 0;
            let mut outcome = Ok(());
            // As the SpyCloud adapter feeds a sink: no page once it wants no more.
            for page in &self.pages {
                if !into.wants_more() {
                    break;
                }
                handed += 1;
                into.hits(self.hits);
                for record in page {
                    if !into.wants_more() {
                        break;
                    }
                    into.add(record.clone());
                }
            }
            if let Some(failure) = &self.failure {
                outcome = Err(failure.clone());
            }
            self.scans.lock().unwrap().push((query.clone(), handed));
            outcome
        }
        async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
            Ok(())
        }
    }

    /// A clock the test moves.
    fn clock() -> (Arc<AtomicU64>, super::super::Clock) {
        let offset = Arc::new(AtomicU64::new(0));
        let seconds = offset.clone();
        let start = Timestamp::parse(NOW).unwrap();
        let clock: super::super::Clock = Arc::new(move || {
            start.plus(TimeDelta::seconds(seconds.load(Ordering::Relaxed) as i64))
        });
        (offset, clock)
    }

    fn relay_over(
        source: Arc<dyn BreachSource>,
        settings: RelaySettings,
    ) -> (Relay, Arc<AtomicU64>) {
        let (offset, clock) = clock();
        let relay = Relay::new(source, Arc::new(decoder()), settings).with_clock(move || clock());
        (relay, offset)
    }

    fn body(tile: &str, period: &str) -> Vec<u8> {
        json!({"tile_id": tile, "period": period})
            .to_string()
            .into_bytes()
    }

    /// The tile's data, or the answer's fatal error (code, message).
    async fn data(
        relay: &Relay,
        token: &str,
        tile: &str,
        period: &str,
    ) -> Result<Value, (String, String)> {
        let answer = relay
            .tile_data_request(&caller(token), &body(tile, period))
            .await;
        match answer.fatal() {
            Some(error) => Err((error.code.clone(), error.message.clone())),
            None => Ok(serde_json::to_value(answer.data.unwrap()).unwrap()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn four_tiles_asked_at_once_make_one_scan() {
        let source = Arc::new(Watchlist::new(
            vec![
                vec![record(1, "a@x.com"), record(2, "b@x.com")],
                vec![record(1, "a@x.com")],
            ],
            3,
        ));
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let answers = futures::future::join_all(
            TileId::ALL.map(|tile| data(&relay, ALICE, tile.id(), "last_7_days")),
        )
        .await;
        assert_eq!(source.scans(), 1);
        let answers: Vec<Value> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers[0]["data"][1]["value"], 3);
        assert_eq!(
            answers[2]["data"][0],
            json!({"key": "1", "label": "T1", "value": 2, "values": [{"key": "records", "value": 2}]})
        );
        // The scan asks for the period start's day; the titles come in one call.
        let (query, pages) = source.scans.lock().unwrap()[0].clone();
        assert_eq!(
            (query.since.to_string(), query.severity, pages),
            ("2026-03-03".to_owned(), None, 2)
        );
        assert_eq!(
            *source.catalog_calls.lock().unwrap(),
            [vec![CatalogId(1), CatalogId(2)]]
        );
        // Asked again later: the kept scan answers.
        data(&relay, ALICE, "spycloud_exposure_summary", "last_7_days")
            .await
            .unwrap();
        assert_eq!(source.scans(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn scans_are_kept_per_key_period_and_severity() {
        let source = Arc::new(Watchlist::new(vec![vec![record(1, "a@x.com")]], 1));
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let summary = "spycloud_exposure_summary";
        data(&relay, ALICE, summary, "last_7_days").await.unwrap();
        data(&relay, "Bearer bob", summary, "last_7_days")
            .await
            .unwrap();
        data(&relay, ALICE, summary, "last_24_hours").await.unwrap();
        // The module setting SEVERITY: sent on the scan, and a scan of its own.
        let severe = r#"Bearer alice|{"SEVERITY":"20,25"}"#;
        data(&relay, severe, summary, "last_7_days").await.unwrap();
        // The same codes written otherwise, or with SINCE_DAYS (which the period overrides):
        // the same scan.
        let padded = r#"Bearer alice|{"SEVERITY":"020,025","SINCE_DAYS":3}"#;
        data(&relay, padded, summary, "last_7_days").await.unwrap();
        // Another filter: another scan.
        let other = r#"Bearer alice|{"SEVERITY":25}"#;
        data(&relay, other, summary, "last_7_days").await.unwrap();
        // With known credentials, the credentials' SEVERITY: the kept scan.
        let credentials = Credentials {
            api_key: ApiKey::parse("alice").unwrap(),
            entities_limit: EntitiesLimit::DEFAULT,
            settings: ModuleSettings {
                severity: SeverityFilter::parse("20,25"),
                ..ModuleSettings::default()
            },
        };
        relay
            .tile_data_as(&credentials, TileId::ExposureSummary, Period::Last7Days)
            .await
            .unwrap();
        let queries: Vec<_> = source
            .scans
            .lock()
            .unwrap()
            .iter()
            .map(|(query, _)| {
                (
                    query.since.to_string(),
                    query.severity.as_ref().map(SeverityFilter::query_value),
                )
            })
            .collect();
        let severity = |codes: &str| Some(codes.to_owned());
        assert_eq!(
            queries,
            [
                ("2026-03-03".to_owned(), None),
                ("2026-03-03".to_owned(), None),
                ("2026-03-09".to_owned(), None),
                ("2026-03-03".to_owned(), severity("20,25")),
                ("2026-03-03".to_owned(), severity("25")),
            ]
        );
    }

    // RULES R25
    #[tokio::test(start_paused = true)]
    async fn invalid_module_settings_are_warnings_on_every_tile_data_answer() {
        let source = Arc::new(Watchlist::new(vec![vec![record(1, "a@x.com")]], 1));
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let token = r#"Bearer alice|{"SEVERITY":"high","PASSWORDS":"shown"}"#;
        let warning = |name: &str, value: &str| {
            json!({"type": "warning", "code": "invalid argument", "message":
                format!("The module setting {name} is not valid and was ignored: {value}")})
        };
        let warnings = json!([warning("SEVERITY", "high"), warning("PASSWORDS", "shown")]);
        let answer = relay
            .tile_data_request(
                &caller(token),
                &body("spycloud_exposure_summary", "last_7_days"),
            )
            .await;
        let answer = serde_json::to_value(answer).unwrap();
        assert_eq!(answer["errors"], warnings);
        assert_eq!(answer["data"]["data"][1]["value"], 1);
        // The invalid SEVERITY is ignored: the scan asks for every severity.
        assert_eq!(source.scans.lock().unwrap()[0].0.severity, None);
        // Before a fatal error too, which comes last.
        let answer = relay
            .tile_data_request(&caller(token), br#"{"tile_id":"x","period":"last_7_days"}"#)
            .await;
        let answer = serde_json::to_value(answer).unwrap();
        let mut expected = warnings.as_array().unwrap().clone();
        expected.push(
            json!({"type": "fatal", "code": "invalid argument", "message": "Unknown tile_id: x"}),
        );
        assert_eq!(answer, json!({"errors": expected}));
        // Valid settings: no errors at all.
        let answer = relay
            .tile_data_request(
                &caller(r#"Bearer alice|{"SEVERITY":"20"}"#),
                &body("spycloud_exposure_summary", "last_7_days"),
            )
            .await;
        assert_eq!(answer.errors, []);
    }

    // RULES R28
    #[tokio::test(start_paused = true)]
    async fn the_top_breaches_catalog_call_failing_is_the_requests_fatal_error() {
        let mut failing_catalogs = Watchlist::new(vec![vec![record(1, "a@x.com")]], 1);
        failing_catalogs.catalog_failure = Some(SourceError::Internal);
        let source = Arc::new(failing_catalogs);
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        assert_eq!(
            data(&relay, ALICE, "spycloud_top_breaches", "last_7_days").await,
            Err((
                "internal error".to_owned(),
                "The Spycloud internal error.".to_owned()
            ))
        );
        assert_eq!(source.catalog_calls.lock().unwrap().len(), 1);
        // The scan itself succeeded and is kept: the tiles that need no catalog answer from it.
        let summary = data(&relay, ALICE, "spycloud_exposure_summary", "last_7_days").await;
        assert!(summary.is_ok(), "{summary:?}");
        assert_eq!(source.scans(), 1);
    }

    // RULES R24
    #[tokio::test(start_paused = true)]
    async fn a_scan_expires_after_the_cache_time_and_valid_time_says_when() {
        let source = Arc::new(Watchlist::new(vec![vec![record(1, "a@x.com")]], 1));
        let settings = RelaySettings {
            tiles_cache: Duration::from_secs(600),
            ..RelaySettings::default()
        };
        let (relay, clock) = relay_over(source.clone(), settings);
        let summary = "spycloud_exposure_summary";
        let first = data(&relay, ALICE, summary, "last_7_days").await.unwrap();
        assert_eq!(
            first["valid_time"],
            json!({"start_time": "2026-03-10T12:00:00.000000Z", "end_time": "2026-03-10T12:10:00.000000Z"})
        );
        clock.store(599, Ordering::Relaxed);
        let kept = data(&relay, ALICE, summary, "last_7_days").await.unwrap();
        assert_eq!(
            (source.scans(), &kept["valid_time"]),
            (1, &first["valid_time"])
        );
        assert_eq!(kept["observed_time"], first["observed_time"]);
        clock.store(600, Ordering::Relaxed);
        let fresh = data(&relay, ALICE, summary, "last_7_days").await.unwrap();
        assert_eq!(source.scans(), 2);
        assert_eq!(
            fresh["observed_time"],
            json!({"start_time": "2026-03-03T12:10:00.000000Z", "end_time": "2026-03-10T12:10:00.000000Z"})
        );
        assert_eq!(
            fresh["valid_time"]["end_time"],
            "2026-03-10T12:20:00.000000Z"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_scan_reads_100_times_the_record_limit_and_says_how_many_it_did_not() {
        let pages: Vec<Vec<RawRecord>> = (0..10)
            .map(|_| (0..100).map(|_| record(1, "a@x.com")).collect())
            .collect();
        let source = Arc::new(Watchlist::new(pages, 5_000));
        let settings = RelaySettings {
            max_records: 3,
            ..RelaySettings::default()
        };
        let (relay, _) = relay_over(source.clone(), settings);
        let summary = data(&relay, ALICE, "spycloud_exposure_summary", "last_7_days")
            .await
            .unwrap();
        assert_eq!(summary["data"][1]["value"], 300);
        assert_eq!(
            summary["data"][4],
            json!({"icon": "warning", "label": "Records not read", "value": 4_700, "value_unit": "integer"})
        );
        // The scan stopped asking once the limit was reached.
        assert_eq!(source.scans.lock().unwrap()[0].1, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_scan_gives_observes_fatal_errors_and_is_not_kept() {
        let mut failing = Watchlist::new(vec![vec![record(1, "a@x.com")]], 1);
        failing.failure = Some(SourceError::Internal);
        let source = Arc::new(failing);
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let asked = futures::future::join_all(
            TileId::ALL.map(|tile| data(&relay, ALICE, tile.id(), "last_30_days")),
        )
        .await;
        for answer in asked {
            assert_eq!(
                answer,
                Err((
                    "internal error".to_owned(),
                    "The Spycloud internal error.".to_owned()
                ))
            );
        }
        assert_eq!(source.scans(), 1);
        let again = data(&relay, ALICE, "spycloud_exposure_summary", "last_30_days").await;
        assert!(again.is_err());
        assert_eq!(source.scans(), 2);

        let mut limited = MockBreachSource::new();
        limited
            .expect_watchlist()
            .returning(|_, _, _| Err(SourceError::Unauthorized("Invalid key".into())));
        let (unauthorized, _) = relay_over(Arc::new(limited), RelaySettings::default());
        assert_eq!(
            data(
                &unauthorized,
                ALICE,
                "spycloud_top_breaches",
                "last_90_days"
            )
            .await,
            Err((
                "authorization error".to_owned(),
                "Authorization failed: Invalid key".to_owned()
            ))
        );
    }

    /// A token check that hangs (a JWKS host that never answers).
    struct Hanging;

    #[async_trait]
    impl crate::ports::CredentialDecoder for Hanging {
        async fn decode(&self, _: &str, _: &str) -> Result<Credentials, AuthError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_tile_definitions_answer_the_deadline_error_when_the_token_check_hangs() {
        let source = Arc::new(Watchlist::new(Vec::new(), 1));
        let relay = Relay::new(source, Arc::new(Hanging), RelaySettings::default());
        let caller = Caller {
            authorization: Some("Bearer t"),
            audience: "http://relay",
        };
        // Bounded here too, so a missing deadline fails the test instead of hanging it.
        let within = Duration::from_secs(60);
        let deadline = Error::Deadline { secs: 25 };
        let tiles = tokio::time::timeout(within, relay.tiles_request(&caller)).await;
        assert_eq!(tiles.expect("answered").err(), Some(deadline.clone()));
        let body = br#"{"tile_id": "spycloud_top_breaches"}"#;
        let tile = tokio::time::timeout(within, relay.tile_request(&caller, body)).await;
        assert_eq!(tile.expect("answered").err(), Some(deadline));
    }

    // RULES R26
    #[tokio::test(start_paused = true)]
    async fn a_scan_no_request_waits_for_any_more_stops() {
        let mut slow = Watchlist::new(vec![vec![record(1, "a@x.com")]], 1);
        slow.delay = Duration::from_secs(40);
        let source = Arc::new(slow);
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let summary = "spycloud_exposure_summary";
        let late = data(&relay, ALICE, summary, "last_7_days")
            .await
            .unwrap_err();
        assert_eq!(late.0, "unknown");
        assert!(late.1.contains("25 s"), "{}", late.1);
        // The only request gave up: the scan stopped then, not 15 s later.
        tokio::task::yield_now().await;
        assert_eq!(source.running.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(source.scans(), 0, "no scan finished");
        // The next request begins a scan of its own.
        let late = data(&relay, ALICE, summary, "last_7_days").await;
        assert!(late.is_err());
        assert_eq!(source.begun.load(Ordering::SeqCst), 2);

        // A scan another request still waits for goes on when one gives up.
        let mut slow = Watchlist::new(vec![vec![record(1, "a@x.com")]], 1);
        slow.delay = Duration::from_secs(20);
        let source = Arc::new(slow);
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let first = data(&relay, ALICE, summary, "last_7_days");
        let second = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            data(&relay, ALICE, summary, "last_7_days").await
        };
        let (first, second) = futures::future::join(first, second).await;
        assert_eq!(first.unwrap()["data"][1]["value"], 1);
        assert_eq!(second.unwrap()["data"][1]["value"], 1);
        assert_eq!(source.begun.load(Ordering::SeqCst), 1);
    }

    // RULES R27
    #[tokio::test(start_paused = true)]
    async fn at_most_4_scans_run_at_once_and_the_others_wait_within_their_deadline() {
        let mut slow = Watchlist::new(vec![vec![record(1, "a@x.com")]], 1);
        slow.delay = Duration::from_secs(10);
        let source = Arc::new(slow);
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        // Eight keys: eight scans wanted at once, two turns of 10 s, within the 25 s deadline.
        let keys: Vec<String> = (0..8).map(|n| format!("Bearer key{n}")).collect();
        let answers = futures::future::join_all(
            keys.iter()
                .map(|key| data(&relay, key, "spycloud_exposure_summary", "last_7_days")),
        )
        .await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(source.scans(), 8);
        assert_eq!(source.most_running.load(Ordering::SeqCst), 4);
        // Twelve more: the third turn would end past the deadline, so its four requests answer
        // the deadline error and their scans stop.
        let keys: Vec<String> = (8..20).map(|n| format!("Bearer key{n}")).collect();
        let answers = futures::future::join_all(
            keys.iter()
                .map(|key| data(&relay, key, "spycloud_exposure_summary", "last_7_days")),
        )
        .await;
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 8);
        assert_eq!(source.most_running.load(Ordering::SeqCst), 4);
        tokio::task::yield_now().await;
        assert_eq!(source.running.load(Ordering::SeqCst), 0);
    }

    /// The scan entry of `token`'s key for `item` in `cache`, decoded as JSON.
    async fn shared_scan(cache: &Arc<dyn SharedCache>, key: &str, item: &str) -> Option<Value> {
        let key = CacheKey {
            space: "scan",
            tenant: ApiKey::parse(key).unwrap().fingerprint(),
            item: item.to_owned(),
        };
        let bytes = cache.get(&key).await?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn relays_on_one_shared_cache_answer_from_one_scan_until_it_expires() {
        let cache: Arc<dyn SharedCache> = Arc::new(LocalCache::new(100));
        let (source_a, source_b) = (
            Arc::new(Watchlist::new(vec![vec![record(1, "a@x.com")]], 1)),
            Arc::new(Watchlist::new(vec![vec![record(2, "b@x.com")]], 1)),
        );
        let (a, _) = relay_over(source_a.clone(), RelaySettings::default());
        let (b, b_clock) = relay_over(source_b.clone(), RelaySettings::default());
        let (a, b) = (
            a.with_shared_cache(cache.clone()),
            b.with_shared_cache(cache.clone()),
        );
        let summary = "spycloud_exposure_summary";
        let first = data(&a, ALICE, summary, "last_7_days").await.unwrap();
        assert_eq!(source_a.scans(), 1);
        // Stored under the key's fingerprint, the period and the (empty) SEVERITY.
        let stored = shared_scan(&cache, "alice", "last_7_days.").await.unwrap();
        assert_eq!(stored["expires"], "2026-03-10T12:10:00.000000Z");
        assert_eq!(stored["figures"]["records"], 1);

        // Two minutes later the other relay answers from it: no scan, the same figures, the
        // same times; the tiles at once, and again, still without a scan.
        b_clock.store(120, Ordering::Relaxed);
        let answers = futures::future::join_all(
            TileId::ALL.map(|tile| data(&b, ALICE, tile.id(), "last_7_days")),
        )
        .await;
        let answers: Vec<Value> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers[0], first);
        assert_eq!(answers[2]["data"][0]["key"], "1", "A's figures");
        data(&b, ALICE, summary, "last_7_days").await.unwrap();
        assert_eq!(source_b.scans(), 0);
        assert_eq!(answers[0]["valid_time"], first["valid_time"]);
        assert_eq!(answers[0]["observed_time"], first["observed_time"]);

        // Another period, SEVERITY or key is not that scan.
        data(&b, ALICE, summary, "last_24_hours").await.unwrap();
        data(
            &b,
            r#"Bearer alice|{"SEVERITY":"20,25"}"#,
            summary,
            "last_7_days",
        )
        .await
        .unwrap();
        data(&b, "Bearer bob", summary, "last_7_days")
            .await
            .unwrap();
        assert_eq!(source_b.scans(), 3);
        assert!(
            shared_scan(&cache, "alice", "last_7_days.20,25")
                .await
                .is_some()
        );
        assert!(shared_scan(&cache, "bob", "last_7_days.").await.is_some());

        // Once it expires (by the asking relay's clock), the other relay scans afresh.
        b_clock.store(600, Ordering::Relaxed);
        let fresh = data(&b, ALICE, summary, "last_7_days").await.unwrap();
        assert_eq!(source_b.scans(), 4);
        assert_eq!(
            fresh["valid_time"]["end_time"],
            "2026-03-10T12:20:00.000000Z"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_value_that_does_not_decode_is_a_miss_and_a_failing_scan_is_not_shared() {
        let cache: Arc<dyn SharedCache> = Arc::new(LocalCache::new(100));
        let key = CacheKey {
            space: "scan",
            tenant: ApiKey::parse("alice").unwrap().fingerprint(),
            item: "last_7_days.".to_owned(),
        };
        cache
            .set(
                key.clone(),
                bytes::Bytes::from_static(b"{\"figures\": 1}"),
                Duration::from_secs(600),
            )
            .await;
        let source = Arc::new(Watchlist::new(vec![vec![record(1, "a@x.com")]], 1));
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let relay = relay.with_shared_cache(cache.clone());
        let summary = "spycloud_exposure_summary";
        let answer = data(&relay, ALICE, summary, "last_7_days").await.unwrap();
        assert_eq!(answer["data"][1]["value"], 1);
        assert_eq!(source.scans(), 1);
        // The scan replaced the value that did not decode.
        let stored = shared_scan(&cache, "alice", "last_7_days.").await.unwrap();
        assert_eq!(stored["figures"]["records"], 1);

        let mut failing = Watchlist::new(vec![vec![record(1, "a@x.com")]], 1);
        failing.failure = Some(SourceError::Internal);
        let (relay, _) = relay_over(Arc::new(failing), RelaySettings::default());
        let relay = relay.with_shared_cache(cache.clone());
        assert!(data(&relay, ALICE, summary, "last_30_days").await.is_err());
        assert_eq!(shared_scan(&cache, "alice", "last_30_days.").await, None);
    }

    // RULES R22
    #[tokio::test]
    async fn the_token_is_checked_first_then_the_body() {
        let mut source = MockBreachSource::new();
        source.expect_watchlist().times(0);
        let (relay, _) = relay_over(Arc::new(source), RelaySettings::default());
        let refused = relay
            .tiles_request(&caller("Bearer expired"))
            .await
            .unwrap_err();
        assert_eq!(refused.message(), "Authorization failed: Token has expired");
        let refused = relay
            .tile_request(&caller("Basic x"), b"nonsense")
            .await
            .unwrap_err();
        assert_eq!(
            refused.message(),
            "Authorization failed: Wrong authorization type"
        );
        let refused = relay
            .tile_data_request(&caller("Bearer expired"), b"nonsense")
            .await;
        assert_eq!(
            refused.fatal().unwrap().message,
            "Authorization failed: Token has expired"
        );

        let ids: Vec<_> = relay
            .tiles_request(&caller(ALICE))
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(
            ids,
            [
                "spycloud_exposure_summary",
                "spycloud_exposures_by_day",
                "spycloud_top_breaches",
                "spycloud_most_exposed_employees"
            ]
        );
        let tile = relay
            .tile_request(
                &caller(ALICE),
                br#"{"tile_id":"spycloud_exposures_by_day"}"#,
            )
            .await
            .unwrap();
        assert_eq!(tile.kind, "vertical_bar_chart");
        for (body, message) in [
            (
                &b"[]"[..],
                "Invalid JSON payload received. {\"_schema\":[\"Invalid input type.\"]}.",
            ),
            (
                br#"{"tile_id":"x","period":"last_7_days"}"#,
                "Unknown tile_id: x",
            ),
            (
                br#"{"tile_id":"spycloud_top_breaches","period":"x"}"#,
                "Unknown period: x",
            ),
        ] {
            let answer = relay.tile_data_request(&caller(ALICE), body).await;
            let error = answer.fatal().unwrap();
            assert_eq!(
                (error.code.as_str(), error.message.as_str()),
                ("invalid argument", message)
            );
        }
    }

    #[tokio::test]
    async fn top_breaches_without_a_title_are_named_by_id_and_other_tiles_ask_no_catalog() {
        let source = Arc::new(Watchlist::new(vec![vec![record(99, "a@x.com")]], 1));
        let (relay, _) = relay_over(source.clone(), RelaySettings::default());
        let bars = data(&relay, ALICE, "spycloud_top_breaches", "last_7_days")
            .await
            .unwrap();
        assert_eq!(bars["data"][0]["label"], "Breach 99");
        data(
            &relay,
            ALICE,
            "spycloud_most_exposed_employees",
            "last_7_days",
        )
        .await
        .unwrap();
        assert_eq!(source.catalog_calls.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn any_cache_time_is_taken_a_year_at_most() {
        let source = Arc::new(Watchlist::new(vec![vec![record(1, "a@x.com")]], 1));
        let settings = RelaySettings {
            tiles_cache: Duration::from_secs(u64::MAX),
            ..RelaySettings::default()
        };
        let (relay, _) = relay_over(source, settings);
        let summary = data(&relay, ALICE, "spycloud_exposure_summary", "last_7_days")
            .await
            .unwrap();
        assert_eq!(
            summary["valid_time"]["end_time"],
            "2027-03-10T12:00:00.000000Z"
        );
    }

    #[tokio::test]
    async fn a_source_without_a_watchlist_says_so() {
        struct NoWatchlist;
        #[async_trait]
        impl BreachSource for NoWatchlist {
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
                _: &[CatalogId],
            ) -> Result<Vec<Catalog>, SourceError> {
                Ok(Vec::new())
            }
            async fn probe(&self, _: &ApiKey) -> Result<(), SourceError> {
                Ok(())
            }
        }
        let (relay, _) = relay_over(Arc::new(NoWatchlist), RelaySettings::default());
        assert_eq!(
            data(&relay, ALICE, "spycloud_exposure_summary", "last_7_days").await,
            Err((
                "unknown".to_owned(),
                "This breach source has no watchlist to scan.".to_owned()
            ))
        );
    }
}
