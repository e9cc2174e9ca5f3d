//! A small least-recently-used map bounded by a total cost (bytes for
//! segments, an estimate for inodes and listings).
//!
//! Eviction scans for the oldest entry: the maps hold at most a few
//! thousand entries, so a scan costs less than keeping a linked order.

use std::collections::HashMap;
use std::hash::Hash;

/// A map that forgets its least recently used entries beyond `cap`.
#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, (V, u64, u64)>,
    tick: u64,
    cost: u64,
    cap: u64,
    max_entries: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// An empty map holding at most `cap` cost and `max_entries` entries.
    pub fn new(cap: u64, max_entries: usize) -> Self {
        Lru {
            map: HashMap::new(),
            tick: 0,
            cost: 0,
            cap,
            max_entries: max_entries.max(1),
        }
    }

    /// The value of `k`, marking it recently used.
    pub fn get(&mut self, k: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(k).map(|e| {
            e.1 = tick;
            e.0.clone()
        })
    }

    /// True if `k` is present (without marking it used).
    pub fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// Inserts `v` with `cost`, evicting the oldest entries as needed.
    pub fn insert(&mut self, k: K, v: V, cost: u64) {
        self.tick += 1;
        if let Some(old) = self.map.insert(k, (v, self.tick, cost)) {
            self.cost -= old.2;
        }
        self.cost += cost;
        while (self.cost > self.cap || self.map.len() > self.max_entries) && self.map.len() > 1 {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.1)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.map.remove(&oldest) {
                self.cost -= e.2;
            }
        }
    }

    /// Total cost held.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_beyond_the_cost() {
        let mut l = Lru::new(10, 100);
        l.insert(1, "a", 4);
        l.insert(2, "b", 4);
        assert_eq!(l.get(&1), Some("a"));
        l.insert(3, "c", 4);
        assert!(l.contains(&1));
        assert!(!l.contains(&2));
        assert!(l.contains(&3));
        assert_eq!(l.cost(), 8);
    }

    #[test]
    fn evicts_beyond_the_entry_count_and_replaces_in_place() {
        let mut l = Lru::new(1000, 2);
        l.insert(1, 1, 1);
        l.insert(2, 2, 1);
        l.insert(2, 20, 5);
        assert_eq!(l.cost(), 6);
        l.insert(3, 3, 1);
        assert_eq!(l.len(), 2);
        assert!(!l.contains(&1));
        assert_eq!(l.get(&2), Some(20));
    }

    #[test]
    fn keeps_one_entry_even_when_it_alone_exceeds_the_cap() {
        let mut l = Lru::new(1, 10);
        l.insert(1, 1, 5);
        assert_eq!(l.len(), 1);
        l.insert(2, 2, 5);
        assert_eq!(l.len(), 1);
        assert!(l.contains(&2));
    }
}
