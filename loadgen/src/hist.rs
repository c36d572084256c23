//! A log-linear latency histogram in microseconds: exact below 64 µs, then 32 sub-buckets per
//! power of two (about 3 % resolution), up to hours. Mergeable and sent between processes as
//! sparse `[bucket, count]` pairs.

use serde::{Deserialize, Serialize};

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS; // 32
const LINEAR: u64 = SUB * 2; // 64
/// Enough buckets for values up to 2^42 µs.
pub const BUCKETS: usize = (43 - SUB_BITS as usize) * SUB as usize + LINEAR as usize;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    pub total: u64,
    pub sum: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

/// Bucket index of a value.
pub fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = (63 - v.leading_zeros()) - SUB_BITS; // >= 1
    let i = (e as u64 + 1) * SUB + ((v >> e) - SUB);
    (i as usize).min(BUCKETS - 1)
}

/// Lowest and highest value of a bucket.
pub fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, i);
    }
    let e = i / SUB - 1;
    let m = i - e * SUB;
    (m << e, ((m + 1) << e) - 1)
}

/// A sparse copy for the wire.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sparse {
    pub b: Vec<(u32, u64)>,
    pub sum: u64,
    pub max: u64,
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += v;
        self.max = self.max.max(v);
    }

    pub fn merge_sparse(&mut self, s: &Sparse) {
        for &(i, c) in &s.b {
            if let Some(slot) = self.counts.get_mut(i as usize) {
                *slot += c;
                self.total += c;
            }
        }
        self.sum += s.sum;
        self.max = self.max.max(s.max);
    }

    pub fn sparse(&self) -> Sparse {
        Sparse {
            b: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u32, *c))
                .collect(),
            sum: self.sum,
            max: self.max,
        }
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.sum = 0;
        self.max = 0;
    }

    /// The value at quantile `q` (0..=1): the middle of its bucket, never above the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                return (lo + (hi - lo) / 2).min(self.max);
            }
        }
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// Non-empty buckets as (low, high, count).
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let (lo, hi) = bounds(i);
                (lo, hi, *c)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        let mut prev_hi = None;
        for i in 0..BUCKETS - 1 {
            let (lo, hi) = bounds(i);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "bucket {i}");
            }
            assert_eq!(index(lo), i);
            assert_eq!(index(hi), i);
            prev_hi = Some(hi);
        }
        for v in [0u64, 1, 63, 64, 65, 1000, 12_345, 9_999_999, 1 << 40] {
            let (lo, hi) = bounds(index(v));
            assert!(lo <= v && v <= hi, "{v}");
        }
    }

    #[test]
    fn quantiles_within_resolution() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.04, "{p50}");
        assert_eq!(h.quantile(1.0), 10_000);
        let mut g = Histogram::default();
        g.merge_sparse(&h.sparse());
        assert_eq!(g.total, h.total);
        assert_eq!(g.quantile(0.99), h.quantile(0.99));
    }
}
