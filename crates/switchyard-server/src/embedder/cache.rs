//! A least-recently-used map of bounded size, for recent prompt embeddings.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Keeps at most `capacity` entries; inserting into a full map evicts the entry used longest ago.
#[derive(Debug)]
pub struct Lru<K, V> {
    capacity: usize,
    clock: u64,
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// An empty map holding up to `capacity` entries (0: holds nothing).
    pub fn new(capacity: usize) -> Self {
        Self { capacity, clock: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    /// The value for `key`, marking it as just used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.clock += 1;
        let (value, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = self.clock;
        self.order.insert(self.clock, key.clone());
        Some(value.clone())
    }

    /// Stores `value` under `key`, evicting the least recently used entry if the map is full.
    pub fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        if let Some((_, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
        } else if self.entries.len() >= self.capacity {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        self.order.insert(self.clock, key.clone());
        self.entries.insert(key, (value, self.clock));
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get(&"a"), Some(1)); // "b" is now the oldest
        lru.insert("c", 3);
        assert_eq!((lru.get(&"b"), lru.get(&"a"), lru.get(&"c")), (None, Some(1), Some(3)));
        lru.insert("a", 10); // replacing does not evict
        assert_eq!((lru.len(), lru.get(&"a"), lru.get(&"c")), (2, Some(10), Some(3)));
        let mut off = Lru::new(0);
        off.insert("a", 1);
        assert_eq!((off.len(), off.get(&"a")), (0, None));
    }
}
