//! The latest hashdiff of every key of a satellite, kept compact: 16 bytes a key.
//!
//! A direct load compares each row's hashdiff with the latest one of its key. Keys and
//! hashdiffs are BLAKE3 output, so their first 8 bytes are uniformly spread and a sorted
//! array of (key prefix, hashdiff prefix) pairs, found through a table of where each run
//! of top bits starts, answers in one or two cache misses with no hashing at all. Keys
//! added during a run (for its later units) go to a small map beside it.
//!
//! What 8-byte prefixes cost in certainty: two keys sharing a key prefix (about one chance
//! in a million at 5M keys) make a new row count as changed, or a key look repeated so the
//! unit loads the staged way; the row still reaches the satellite either way. A row is
//! wrongly taken as unchanged only if, on top of that, its hashdiff prefix equals the
//! other key's (one chance in 2^64 more).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The first 8 bytes of a key or hashdiff, as a number.
pub fn prefix(bytes: &[u8; 16]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(first)
}

/// A hasher for prefixes of BLAKE3 output: they are uniformly spread already.
#[derive(Default)]
pub struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map from key prefixes, hashed by `PrefixHasher`.
pub type PrefixMap<V> = HashMap<u64, V, BuildHasherDefault<PrefixHasher>>;

/// Where a key was found, and its latest hashdiff prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    No,
    /// At this position of the sorted pairs.
    Sorted(u32, u64),
    /// Among the keys added since.
    Added(u64),
}

impl Found {
    /// The latest hashdiff prefix, if the key is known.
    pub fn hashdiff(self) -> Option<u64> {
        match self {
            Found::No => None,
            Found::Sorted(_, d) | Found::Added(d) => Some(d),
        }
    }
}

/// The latest hashdiff prefix of every key prefix of a satellite.
#[derive(Debug, Default)]
pub struct Latest {
    /// (key prefix, hashdiff prefix), sorted by key prefix.
    sorted: Vec<(u64, u64)>,
    /// `starts[b]` is where the keys whose top `bits` bits are `b` begin in `sorted`.
    starts: Vec<u32>,
    bits: u32,
    /// Keys added since `sorted` was built.
    added: PrefixMap<u64>,
}

impl Latest {
    /// An empty map (an empty satellite).
    pub fn new() -> Self {
        Self::default()
    }

    /// The map of these pairs (key prefix, hashdiff prefix), each key once.
    pub fn from_pairs(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.sort_unstable_by_key(|p| p.0);
        Self::from_sorted(pairs)
    }

    /// The map of a satellite's rows as (key prefix, load time, hashdiff prefix): the
    /// hashdiff of each key's latest row. Sorted in place, first into a thousand or so
    /// buckets by the keys' top bits (they are uniformly spread, so the buckets are even
    /// and each fits in the cache), then each bucket by key and time; no second copy of
    /// the rows is made.
    pub fn from_rows(mut rows: Vec<(u64, i64, u64)>) -> Self {
        let bits = bucket_bits(rows.len()).min(10);
        let starts = flag_sort(&mut rows, bits);
        for w in starts.windows(2) {
            rows[w[0]..w[1]].sort_unstable_by_key(|r| (r.0, r.1));
        }
        // The last row of each key is its latest.
        let mut kept = 0;
        for i in 0..rows.len() {
            if i + 1 == rows.len() || rows[i + 1].0 != rows[i].0 {
                rows[kept] = rows[i];
                kept += 1;
            }
        }
        rows.truncate(kept);
        let pairs: Vec<(u64, u64)> = rows.into_iter().map(|(k, _, d)| (k, d)).collect();
        Self::from_sorted(pairs)
    }

    fn from_sorted(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.shrink_to_fit();
        let bits = bucket_bits(pairs.len());
        let mut starts = vec![0u32; (1usize << bits) + 1];
        let mut at = 0usize;
        for (b, start) in starts.iter_mut().enumerate() {
            while at < pairs.len() && bucket(pairs[at].0, bits) < b {
                at += 1;
            }
            *start = at as u32;
        }
        Latest {
            sorted: pairs,
            starts,
            bits,
            added: PrefixMap::default(),
        }
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty() && self.added.is_empty()
    }

    /// How many keys are in the sorted part (positions of `Found::Sorted` are below it).
    pub fn sorted_len(&self) -> usize {
        self.sorted.len()
    }

    /// Where `key` (a key prefix) is, and its latest hashdiff prefix.
    pub fn find(&self, key: u64) -> Found {
        if !self.sorted.is_empty() {
            let b = bucket(key, self.bits);
            let (start, end) = (self.starts[b] as usize, self.starts[b + 1] as usize);
            for (i, &(k, d)) in self.sorted[start..end].iter().enumerate() {
                if k == key {
                    return Found::Sorted((start + i) as u32, d);
                }
                if k > key {
                    break;
                }
            }
        }
        match self.added.get(&key) {
            Some(&d) => Found::Added(d),
            None => Found::No,
        }
    }

    /// Make `hashdiff` the latest of `key`, which `find` found as `found`.
    pub fn set(&mut self, found: Found, key: u64, hashdiff: u64) {
        match found {
            Found::Sorted(i, _) => self.sorted[i as usize].1 = hashdiff,
            Found::Added(_) | Found::No => {
                self.added.insert(key, hashdiff);
            }
        }
    }

    /// The same map with the added keys merged into the sorted part, once they are many
    /// enough to make the map's overhead count.
    pub fn compact(mut self) -> Self {
        if self.added.len() * 8 < self.sorted.len() {
            return self;
        }
        let mut pairs = std::mem::take(&mut self.sorted);
        pairs.extend(self.added.drain());
        Self::from_pairs(pairs)
    }
}

/// Top bits to bucket `n` keys by: about four keys a bucket, so that a lookup reads one
/// small run of the array.
fn bucket_bits(n: usize) -> u32 {
    (usize::BITS - (n / 4).leading_zeros()).min(28)
}

/// Sort `rows` in place by the top `bits` bits of their key (American flag sort: count,
/// then move each row straight to its bucket); where each bucket starts, and the end.
fn flag_sort(rows: &mut [(u64, i64, u64)], bits: u32) -> Vec<usize> {
    let buckets = 1usize << bits;
    let mut next = vec![0usize; buckets + 1];
    for r in rows.iter() {
        next[bucket(r.0, bits) + 1] += 1;
    }
    for b in 0..buckets {
        next[b + 1] += next[b];
    }
    let starts = next.clone();
    let ends: Vec<usize> = next[1..].to_vec();
    for b in 0..buckets {
        while next[b] < ends[b] {
            let mut row = rows[next[b]];
            loop {
                let home = bucket(row.0, bits);
                if home == b {
                    break;
                }
                std::mem::swap(&mut row, &mut rows[next[home]]);
                next[home] += 1;
            }
            rows[next[b]] = row;
            next[b] += 1;
        }
    }
    starts
}

fn bucket(key: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (key >> (64 - bits)) as usize
    }
}

/// Notices a key prefix given twice in one unit: a bit per key of the `Latest` the unit
/// compares with, and the other keys collected and sorted at the end (8 bytes a key).
#[derive(Debug, Default)]
pub struct Seen {
    bits: Vec<u64>,
    others: Vec<u64>,
}

impl Seen {
    /// For a unit compared with `latest`.
    pub fn for_latest(latest: &Latest) -> Self {
        Seen {
            bits: vec![0; latest.sorted_len().div_ceil(64)],
            others: Vec::new(),
        }
    }

    /// Note `key`, found as `found`; true if it is certainly a repeat already.
    pub fn note(&mut self, key: u64, found: Found) -> bool {
        match found {
            Found::Sorted(i, _) => {
                let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
                let repeat = self.bits[word] & bit != 0;
                self.bits[word] |= bit;
                repeat
            }
            Found::Added(_) | Found::No => {
                self.others.push(key);
                false
            }
        }
    }

    /// Whether some key not in the sorted part came twice. Sorts what it collected.
    pub fn others_repeat(&mut self) -> bool {
        self.others.sort_unstable();
        self.others.windows(2).any(|w| w[0] == w[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(i: u64) -> u64 {
        // Uniformly spread keys, as BLAKE3 prefixes are.
        let h = blake3::hash(&i.to_le_bytes());
        prefix(h.as_bytes()[..16].try_into().expect("16 bytes"))
    }

    #[test]
    fn finds_every_key_and_no_other() {
        for n in [0u64, 1, 3, 100, 10_000] {
            let latest = Latest::from_pairs((0..n).map(|i| (spread(i), i)).collect());
            for i in 0..n {
                assert_eq!(latest.find(spread(i)).hashdiff(), Some(i), "n {n}, key {i}");
            }
            for i in n..n + 100 {
                assert_eq!(latest.find(spread(i)), Found::No, "n {n}, absent {i}");
            }
        }
    }

    #[test]
    fn from_rows_keeps_each_keys_latest_row() {
        // Three versions of every key, in a scrambled order; the latest has the largest time.
        let mut rows = Vec::new();
        for i in 0..5000u64 {
            for t in [2i64, 0, 1] {
                rows.push((spread(i), t * 10 + (i % 3) as i64, i * 10 + t as u64));
            }
        }
        rows.reverse();
        let latest = Latest::from_rows(rows);
        assert_eq!(latest.sorted_len(), 5000);
        for i in 0..5000 {
            assert_eq!(
                latest.find(spread(i)).hashdiff(),
                Some(i * 10 + 2),
                "key {i}"
            );
        }
        assert!(Latest::from_rows(Vec::new()).is_empty());
    }

    #[test]
    fn finds_the_extreme_prefixes() {
        let latest = Latest::from_pairs(vec![(0, 1), (u64::MAX, 2), (1 << 63, 3)]);
        assert_eq!(latest.find(0).hashdiff(), Some(1));
        assert_eq!(latest.find(u64::MAX).hashdiff(), Some(2));
        assert_eq!(latest.find(1 << 63).hashdiff(), Some(3));
        assert_eq!(latest.find(1).hashdiff(), None);
    }

    #[test]
    fn set_updates_and_adds_and_compact_keeps_everything() {
        let mut latest = Latest::from_pairs((0..1000).map(|i| (spread(i), i)).collect());
        for i in 0..2000 {
            let found = latest.find(spread(i));
            latest.set(found, spread(i), i + 10_000);
        }
        let latest = latest.compact();
        assert_eq!(latest.sorted_len(), 2000);
        for i in 0..2000 {
            assert_eq!(latest.find(spread(i)).hashdiff(), Some(i + 10_000));
        }
    }

    #[test]
    fn seen_notices_repeats_in_both_parts() {
        let latest = Latest::from_pairs((0..100).map(|i| (spread(i), i)).collect());
        let mut seen = Seen::for_latest(&latest);
        assert!(!seen.note(spread(5), latest.find(spread(5))));
        assert!(seen.note(spread(5), latest.find(spread(5))));
        assert!(!seen.note(spread(500), latest.find(spread(500))));
        assert!(!seen.others_repeat());
        assert!(!seen.note(spread(500), latest.find(spread(500))));
        assert!(seen.others_repeat());
    }
}
