//! One lookup's records folded as they arrive: the newest `keep` breaches by
//! `spycloud_publish_date`, in a bounded heap, and counters for the rest. A corporate domain can
//! hold hundreds of thousands of records; the memory of a lookup follows the entities limit, not
//! what SpyCloud sends.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::breach::{BreachRecord, InvalidRecord, RawRecord};

/// Where a source puts a lookup's records as they arrive, page after page.
///
/// `Vec<RawRecord>` is one that takes every record; an embedder's own can stop early:
///
/// ```
/// use spycloud_relay::adapters::MemorySource;
/// use spycloud_relay::domain::{
///     ApiKey, BreachQuery, CatalogId, Lookup, ObservableType, RawRecord, RecordSink,
/// };
/// use spycloud_relay::ports::BreachSource;
///
/// /// The catalogs of the first `want` records, and how many SpyCloud holds.
/// struct FirstSources { want: usize, sources: Vec<Option<CatalogId>>, hits: u64 }
///
/// impl RecordSink for FirstSources {
///     fn wants_more(&self) -> bool { self.sources.len() < self.want }
///     fn hits(&mut self, hits: u64) { self.hits = self.hits.max(hits); }
///     fn add(&mut self, record: RawRecord) { self.sources.push(record.source_id()); }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (key, query) = (ApiKey::parse("demo-api-key")?, BreachQuery::default());
/// let lookup = Lookup::parse(ObservableType::Email, "alex.rivera@example.com")?;
/// let mut sink = FirstSources { want: 3, sources: Vec::new(), hits: 0 };
/// MemorySource::sample().breaches(&key, &lookup, &query, &mut sink).await?;
/// let first = [36512, 36512, 18001].map(|id| Some(CatalogId(id)));
/// assert_eq!(sink.sources, first);
/// assert_eq!(sink.hits, 5);
/// # Ok(()) }
/// ```
pub trait RecordSink: Send {
    /// Whether another record would still be taken: a source stops asking for pages (and
    /// skips the rest of a page) once this is false.
    fn wants_more(&self) -> bool;
    /// How many records SpyCloud says it holds (a page's `hits`).
    fn hits(&mut self, hits: u64);
    /// One record, in the order the source sent it.
    fn add(&mut self, record: RawRecord);
}

/// Every record, unbounded: for tests and tools that want SpyCloud's answer as sent.
impl RecordSink for Vec<RawRecord> {
    fn wants_more(&self) -> bool {
        true
    }

    fn hits(&mut self, _hits: u64) {}

    fn add(&mut self, record: RawRecord) {
        self.push(record);
    }
}

/// Folds a lookup's records, page after page, into the newest `keep` breaches; reads at most
/// `max_read` records and counts those it could not map, per reason.
#[derive(Debug)]
pub struct BreachCollector {
    keep: usize,
    max_read: u64,
    read: u64,
    hits: Option<u64>,
    /// A min-heap on (date, arrival reversed): its top is the record to drop first.
    newest: BinaryHeap<Reverse<Ranked>>,
    skipped: Vec<(InvalidRecord, u64)>,
}

/// A breach ranked by its date; of two with the same date, the one that came first ranks higher
/// (as a stable sort newest-first would place it).
#[derive(Debug)]
struct Ranked {
    arrival: u64,
    breach: BreachRecord,
}

impl Ranked {
    fn key(&self) -> (super::Timestamp, Reverse<u64>) {
        (self.breach.published, Reverse(self.arrival))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// What a lookup's records came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    /// The newest breaches, newest first, at most `keep`.
    pub breaches: Vec<BreachRecord>,
    /// Records read (mapped or not).
    pub read: u64,
    /// The most records SpyCloud said it holds (`hits`), when it said.
    pub hits: Option<u64>,
    /// Records that could not be mapped, per reason, in order of first appearance.
    pub skipped: Vec<(InvalidRecord, u64)>,
}

impl Collected {
    /// Whether SpyCloud holds more records than were read.
    pub fn cut_short(&self) -> Option<u64> {
        self.hits.filter(|&hits| hits > self.read)
    }
}

impl BreachCollector {
    /// A collector keeping the newest `keep` breaches of at most `max_read` records.
    pub fn new(keep: usize, max_read: u64) -> Self {
        Self {
            keep,
            max_read,
            read: 0,
            hits: None,
            // Grows with what is kept, never past `keep` (+1 while replacing).
            newest: BinaryHeap::with_capacity(keep.min(1024) + 1),
            skipped: Vec::new(),
        }
    }

    fn keep(&mut self, ranked: Ranked) {
        if self.newest.len() < self.keep {
            self.newest.push(Reverse(ranked));
        } else if let Some(mut oldest) = self.newest.peek_mut()
            && ranked > oldest.0
        {
            // Replaces the oldest kept in place: the heap never holds more than `keep`.
            *oldest = Reverse(ranked);
        }
    }

    /// The newest breaches, newest first, and the counts.
    pub fn finish(self) -> Collected {
        // Ascending by `Reverse` is descending by rank: newest (and first come) first.
        let breaches = self
            .newest
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(ranked)| ranked.breach)
            .collect();
        Collected {
            breaches,
            read: self.read,
            hits: self.hits,
            skipped: self.skipped,
        }
    }
}

impl RecordSink for BreachCollector {
    /// True until `max_read` records were read.
    fn wants_more(&self) -> bool {
        self.read < self.max_read
    }

    /// The largest `hits` of the lookup's pages counts.
    fn hits(&mut self, hits: u64) {
        self.hits = Some(self.hits.map_or(hits, |seen| seen.max(hits)));
    }

    /// Folds in one record; past `max_read` the record is not read (and not counted).
    fn add(&mut self, record: RawRecord) {
        if !self.wants_more() {
            return;
        }
        let arrival = self.read;
        self.read += 1;
        match BreachRecord::try_from(record) {
            Ok(breach) => self.keep(Ranked { arrival, breach }),
            Err(why) => match self.skipped.iter_mut().find(|(seen, _)| *seen == why) {
                Some((_, count)) => *count += 1,
                None => self.skipped.push((why, 1)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: u64, date: &str) -> RawRecord {
        serde_json::from_value(
            json!({"document_id": id.to_string(), "spycloud_publish_date": date}),
        )
        .unwrap()
    }

    fn ids(collected: &Collected) -> Vec<&str> {
        collected
            .breaches
            .iter()
            .map(|b| b.document_id.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn keeps_the_newest_newest_first_and_ties_in_arrival_order() {
        let mut collector = BreachCollector::new(3, 100);
        for (id, date) in [
            (1, "2018-01-01T00:00:00Z"),
            (2, "2021-01-01T00:00:00Z"),
            (3, "2019-01-01T00:00:00Z"),
            (4, "2021-01-01T00:00:00Z"),
            (5, "2017-01-01T00:00:00Z"),
            (6, "2021-01-01T00:00:00Z"),
        ] {
            collector.add(record(id, date));
        }
        let collected = collector.finish();
        assert_eq!(ids(&collected), ["2", "4", "6"]);
        assert_eq!((collected.read, collected.hits), (6, None));
    }

    #[test]
    fn the_same_as_sorting_everything_and_cutting() {
        // A pseudo-random sequence of dates with many ties.
        let dates: Vec<String> = (0..500u64)
            .map(|n| format!("20{:02}-01-01T00:00:00Z", (n * 7919) % 23))
            .collect();
        let mut collector = BreachCollector::new(50, 10_000);
        for (n, date) in dates.iter().enumerate() {
            collector.add(record(n as u64, date));
        }
        let mut all: Vec<(usize, &String)> = dates.iter().enumerate().collect();
        all.sort_by_key(|(_, date)| Reverse(*date));
        let expected: Vec<String> = all.iter().take(50).map(|(n, _)| n.to_string()).collect();
        assert_eq!(ids(&collector.finish()), expected);
    }

    #[test]
    fn never_holds_more_than_it_keeps() {
        let mut collector = BreachCollector::new(10, 100_000);
        for n in 0..5_000 {
            collector.add(record(n, "2020-01-01T00:00:00Z"));
            assert!(collector.newest.len() <= 10);
        }
        assert_eq!(collector.finish().breaches.len(), 10);
    }

    #[test]
    fn reads_at_most_max_read_and_says_when_spycloud_holds_more() {
        let mut collector = BreachCollector::new(2, 3);
        collector.hits(10);
        for n in 0..5 {
            assert_eq!(collector.wants_more(), n < 3);
            collector.add(record(n, &format!("202{n}-01-01T00:00:00Z")));
        }
        collector.hits(7);
        let collected = collector.finish();
        assert_eq!(ids(&collected), ["2", "1"]);
        assert_eq!((collected.read, collected.hits), (3, Some(10)));
        assert_eq!(collected.cut_short(), Some(10));

        let mut all_read = BreachCollector::new(2, 3);
        all_read.hits(2);
        all_read.add(record(1, "2020-01-01T00:00:00Z"));
        all_read.add(record(2, "2020-01-01T00:00:00Z"));
        assert_eq!(all_read.finish().cut_short(), None);
    }

    #[test]
    fn unreadable_records_are_counted_per_reason_in_order_of_first_appearance() {
        let mut collector = BreachCollector::new(10, 1_000);
        let bad_severity = || -> RawRecord {
            serde_json::from_value(
                json!({"spycloud_publish_date": "2020-01-01T00:00:00Z", "severity": "high"}),
            )
            .unwrap()
        };
        collector.add(bad_severity());
        for _ in 0..500 {
            collector.add(RawRecord::default());
        }
        collector.add(record(1, "2020-01-01T00:00:00Z"));
        collector.add(bad_severity());
        let collected = collector.finish();
        assert_eq!(
            collected.skipped,
            [
                (InvalidRecord::Field("severity"), 2),
                (InvalidRecord::PublishDate, 500)
            ]
        );
        assert_eq!((collected.read, collected.breaches.len()), (503, 1));
    }
}
