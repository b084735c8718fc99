//! Work in flight, by the keys it covers: whoever needs a key that some flight already covers
//! waits for that flight instead of starting another. The relay uses it so one request asks for
//! each catalog once; the catalog cache, so concurrent requests do.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// A flight: one piece of work every waiter shares the answer of.
pub(crate) type Flight<'a, T> = Shared<BoxFuture<'a, T>>;

/// The flights under way (or, until [`Flights::forget`], done), by key.
pub(crate) struct Flights<'a, K, T: Clone> {
    by_key: Mutex<HashMap<K, Flight<'a, T>>>,
}

impl<'a, K: Eq + Hash + Clone, T: Clone> Flights<'a, K, T> {
    pub(crate) fn new() -> Self {
        Self {
            by_key: Mutex::new(HashMap::new()),
        }
    }

    /// The flights that cover `keys`, each once: those already known, and one begun with
    /// `start` for the keys none covers (nothing begins when all are covered).
    pub(crate) fn covering(
        &self,
        keys: &[K],
        start: impl FnOnce(Vec<K>) -> BoxFuture<'a, T>,
    ) -> Vec<Flight<'a, T>> {
        let mut by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        let mut flights: Vec<Flight<'a, T>> = Vec::new();
        let mut uncovered = Vec::new();
        for key in keys {
            match by_key.get(key) {
                Some(flight) if !flights.iter().any(|f| f.ptr_eq(flight)) => {
                    flights.push(flight.clone());
                }
                Some(_) => {}
                None => uncovered.push(key.clone()),
            }
        }
        if !uncovered.is_empty() {
            let flight = start(uncovered.clone()).shared();
            for key in uncovered {
                by_key.insert(key, flight.clone());
            }
            flights.push(flight);
        }
        flights
    }

    /// Forgets the flights of `keys`: who needs them next begins a new one.
    pub(crate) fn forget(&self, keys: &[K]) {
        let mut by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            by_key.remove(key);
        }
    }
}

/// Forgets the flight of `keys` when dropped: a flight that runs on a task of its own holds
/// one, so it is forgotten once it ended, however it ended (after storing its answer, if any).
pub(crate) struct ForgetOnDrop<K: Eq + Hash + Clone, T: Clone + 'static> {
    pub(crate) flights: Arc<Flights<'static, K, T>>,
    pub(crate) keys: Vec<K>,
}

impl<K: Eq + Hash + Clone, T: Clone + 'static> Drop for ForgetOnDrop<K, T> {
    fn drop(&mut self) {
        self.flights.forget(&self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_key_already_covered_joins_its_flight_and_only_the_rest_begins_one() {
        let begun = AtomicUsize::new(0);
        let flights: Flights<'_, u32, Vec<u32>> = Flights::new();
        let start = |keys: Vec<u32>| {
            begun.fetch_add(1, Ordering::Relaxed);
            async move { keys }.boxed()
        };
        let first = flights.covering(&[1, 2], start);
        let second = flights.covering(&[2, 3, 2], start);
        let third = flights.covering(&[3, 1], start);
        assert_eq!(begun.load(Ordering::Relaxed), 2);
        assert_eq!(first.len(), 1);
        assert_eq!(second.len(), 2);
        assert!(second[0].ptr_eq(&first[0]));
        assert_eq!(second[1].clone().await, [3]);
        assert_eq!(third.len(), 2);
        flights.forget(&[1, 2]);
        let fourth = flights.covering(&[1], start);
        assert_eq!(begun.load(Ordering::Relaxed), 3);
        assert_eq!(fourth[0].clone().await, [1]);
    }
}
