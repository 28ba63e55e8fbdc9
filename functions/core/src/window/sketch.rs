//! Mergeable, deterministic sketches for the aggregates a window cannot keep exactly in bounded
//! space: percentiles and distinct counts. Both merge exactly (a window built from panes, or
//! from two shards' partial rows, equals one built from all the values), hash and serialize the
//! same way on every machine and release, so the shard processor stays a pure function.
//!
//! - [`Quantiles`]: DDSketch (Masson, Rim, Lee: "DDSketch: A Fast and Fully-Mergeable Quantile
//!   Sketch with Relative-Error Guarantees", VLDB 2019) with relative accuracy
//!   [`QUANTILE_ACCURACY`]: the estimate of the value at rank ⌊q·(n−1)⌋ (0-based) is within 1%
//!   of it, for values of magnitude at least [`MIN_INDEXABLE`].
//! - [`Distinct`]: exact up to [`EXACT_DISTINCT`] values, then HyperLogLog (Flajolet, Fusy,
//!   Gandouet, Meunier, 2007) with 2^12 registers: standard error 1.04/√4096 ≈ 1.6%, with the
//!   small-range (linear counting) correction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// DDSketch's relative accuracy α.
pub const QUANTILE_ACCURACY: f64 = 0.01;
/// Smallest magnitude the quantile sketch tells apart from zero.
pub const MIN_INDEXABLE: f64 = 1e-9;
/// Distinct values counted exactly before switching to HyperLogLog.
pub const EXACT_DISTINCT: usize = 1024;
const HLL_BITS: u32 = 12;
const HLL_REGISTERS: usize = 1 << HLL_BITS;
/// At most this many bins per sign: beyond it the two lowest bins merge (the "collapsing
/// lowest" store), which only costs accuracy at the far low end of the distribution.
const MAX_BINS: usize = 2048;

fn gamma() -> f64 {
    (1.0 + QUANTILE_ACCURACY) / (1.0 - QUANTILE_ACCURACY)
}

fn index_of(magnitude: f64) -> i32 {
    (magnitude.ln() / gamma().ln()).ceil() as i32
}

/// The representative value of bin `i`: 2γ^i / (γ + 1), within α of every value in the bin.
fn value_of(i: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(i) / (g + 1.0)
}

/// A DDSketch of the values of one metric in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Bin index → count, for positive values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "bins")]
    positive: BTreeMap<i32, u64>,
    /// Bin index (of the magnitude) → count, for negative values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "bins")]
    negative: BTreeMap<i32, u64>,
    #[serde(default)]
    zero: u64,
}

impl Quantiles {
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if value.abs() < MIN_INDEXABLE {
            self.zero += 1;
        } else if value > 0.0 {
            *self.positive.entry(index_of(value)).or_default() += 1;
            collapse(&mut self.positive);
        } else {
            *self.negative.entry(index_of(-value)).or_default() += 1;
            collapse(&mut self.negative);
        }
    }

    pub fn merge(&mut self, other: &Quantiles) {
        for (i, c) in &other.positive {
            *self.positive.entry(*i).or_default() += c;
        }
        for (i, c) in &other.negative {
            *self.negative.entry(*i).or_default() += c;
        }
        self.zero += other.zero;
        collapse(&mut self.positive);
        collapse(&mut self.negative);
    }

    pub fn count(&self) -> u64 {
        self.zero + self.positive.values().sum::<u64>() + self.negative.values().sum::<u64>()
    }

    /// The estimated value at rank ⌊q·(n−1)⌋ (0-based, ascending); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        let mut seen = 0;
        // Ascending values: the most negative first.
        for (i, c) in self.negative.iter().rev() {
            seen += c;
            if seen > rank {
                return Some(-value_of(*i));
            }
        }
        seen += self.zero;
        if seen > rank {
            return Some(0.0);
        }
        for (i, c) in &self.positive {
            seen += c;
            if seen > rank {
                return Some(value_of(*i));
            }
        }
        None
    }

    /// Bins held (for state-size figures).
    pub fn bins(&self) -> usize {
        self.positive.len() + self.negative.len() + usize::from(self.zero > 0)
    }
}

fn collapse(bins: &mut BTreeMap<i32, u64>) {
    while bins.len() > MAX_BINS {
        let Some((lowest, c)) = bins.pop_first() else {
            return;
        };
        if let Some(next) = bins.values_mut().next() {
            *next += c;
        } else {
            bins.insert(lowest, c);
            return;
        }
    }
}

/// A stable 64-bit hash of a value's bytes: FNV-1a, then MurmurHash3's 64-bit finalizer so
/// every output bit depends on every input bit (HyperLogLog reads both the low and high bits).
/// Specified here, not taken from the standard library, whose hasher may change between
/// releases: sketches in state must keep merging after an upgrade.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Distinct values of one field in one window: their hashes, exactly, until there are more
/// than [`EXACT_DISTINCT`]; then HyperLogLog registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Distinct {
    /// Sorted, unique hashes.
    Exact { hashes: Vec<u64> },
    /// 2^12 registers: the largest leading-zero rank seen per bucket.
    Registers {
        #[serde(with = "registers")]
        registers: Vec<u8>,
    },
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact { hashes: Vec::new() }
    }
}

fn register_of(hash: u64) -> (usize, u8) {
    let bucket = (hash >> (64 - HLL_BITS)) as usize;
    let rest = hash << HLL_BITS;
    // Rank: position of the first 1 in the remaining 52 bits (52 + 1 if none).
    let rank = (rest.leading_zeros().min(64 - HLL_BITS) + 1) as u8;
    (bucket, rank)
}

impl Distinct {
    pub fn add_hash(&mut self, hash: u64) {
        match self {
            Distinct::Exact { hashes } => {
                if let Err(at) = hashes.binary_search(&hash) {
                    hashes.insert(at, hash);
                    if hashes.len() > EXACT_DISTINCT {
                        *self = Self::registers_of(hashes);
                    }
                }
            }
            Distinct::Registers { registers } => {
                let (b, r) = register_of(hash);
                registers[b] = registers[b].max(r);
            }
        }
    }

    fn registers_of(hashes: &[u64]) -> Distinct {
        let mut registers = vec![0u8; HLL_REGISTERS];
        for h in hashes {
            let (b, r) = register_of(*h);
            registers[b] = registers[b].max(r);
        }
        Distinct::Registers { registers }
    }

    pub fn merge(&mut self, other: &Distinct) {
        match other {
            Distinct::Exact { hashes } => {
                for h in hashes {
                    self.add_hash(*h);
                }
            }
            Distinct::Registers { registers: theirs } => {
                if let Distinct::Exact { hashes } = self {
                    *self = Self::registers_of(hashes);
                }
                if let Distinct::Registers { registers } = self {
                    for (a, b) in registers.iter_mut().zip(theirs) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
    }

    /// The distinct count: exact while small, else the HyperLogLog estimate with linear
    /// counting below 2.5·m.
    pub fn estimate(&self) -> u64 {
        match self {
            Distinct::Exact { hashes } => hashes.len() as u64,
            Distinct::Registers { registers } => {
                let m = HLL_REGISTERS as f64;
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let sum: f64 = registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
                let raw = alpha * m * m / sum;
                let zeros = registers.iter().filter(|r| **r == 0).count();
                let estimate = if raw <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    raw
                };
                estimate.round() as u64
            }
        }
    }
}

/// Bins as `[[index, count], …]`: integer map keys do not survive the buffering of the
/// internally tagged enums around accumulators in the shard state.
mod bins {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bins: &BTreeMap<i32, u64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(bins.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i32, u64>, D::Error> {
        Ok(Vec::<(i32, u64)>::deserialize(d)?.into_iter().collect())
    }
}

/// Registers as base64 in JSON: 5.5 KB instead of a 4,096-number array.
mod registers {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(r: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(r))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(de::Error::custom)?;
        if bytes.len() != super::HLL_REGISTERS {
            return Err(de::Error::custom("HyperLogLog registers of the wrong size"));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    fn exact_quantile(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        values[(q * (values.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_are_within_the_stated_relative_error() {
        let mut r = Rng::new(4);
        // Log-normal latencies, a wide range of magnitudes, with negatives and zeros mixed in.
        let mut values: Vec<f64> = (0..20_000)
            .map(|i| match i % 10 {
                0 => 0.0,
                1 => -(r.normal() * 2.0).exp(),
                _ => (r.normal() * 2.0 + 3.0).exp(),
            })
            .collect();
        let mut sketch = Quantiles::default();
        for v in &values {
            sketch.add(*v);
        }
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let exact = exact_quantile(&mut values, q);
            let estimate = sketch.quantile(q).unwrap();
            assert!(
                (estimate - exact).abs() <= QUANTILE_ACCURACY * exact.abs() + 1e-12,
                "q={q}: {estimate} vs {exact}"
            );
        }
        assert!(sketch.bins() < 2 * MAX_BINS);
    }

    proptest! {
        #[test]
        fn sketches_merge_exactly(values in prop::collection::vec(-1e6f64..1e6, 1..300), split in 0usize..300, ids in prop::collection::vec(0u64..3_000, 0..2_500)) {
            let split = split.min(values.len());
            let (mut whole, mut a, mut b) = (Quantiles::default(), Quantiles::default(), Quantiles::default());
            for (i, v) in values.iter().enumerate() {
                whole.add(*v);
                if i < split { a.add(*v) } else { b.add(*v) }
            }
            a.merge(&b);
            prop_assert_eq!(&a, &whole);
            let (mut dw, mut da, mut db) = (Distinct::default(), Distinct::default(), Distinct::default());
            for (i, id) in ids.iter().enumerate() {
                let h = stable_hash(&id.to_le_bytes());
                dw.add_hash(h);
                if i % 3 == 0 { da.add_hash(h) } else { db.add_hash(h) }
            }
            da.merge(&db);
            prop_assert_eq!(da.estimate(), dw.estimate());
        }
    }

    #[test]
    fn distinct_counts_are_exact_when_small_and_within_error_when_large() {
        let mut d = Distinct::default();
        for i in 0..1_000u32 {
            d.add_hash(stable_hash(format!("user-{i}").as_bytes()));
            d.add_hash(stable_hash(format!("user-{i}").as_bytes()));
        }
        assert_eq!(d.estimate(), 1_000);
        for n in [5_000u32, 50_000, 500_000] {
            let mut d = Distinct::default();
            for i in 0..n {
                d.add_hash(stable_hash(format!("user-{i}").as_bytes()));
            }
            let e = d.estimate() as f64;
            // Three standard errors (1.6% each).
            assert!((e - f64::from(n)).abs() <= 0.05 * f64::from(n), "{n}: {e}");
        }
    }

    #[test]
    fn the_hash_and_the_state_bytes_are_stable() {
        // FNV-1a + fmix64 as computed by an independent implementation (Python, in the commit
        // that added this): a change here breaks merging with sketches already in state.
        assert_eq!(stable_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(stable_hash(b"user-0001"), 0xe705_650a_e861_ff2c);
        let mut d = Distinct::default();
        for i in 0..2_000u32 {
            d.add_hash(stable_hash(&i.to_le_bytes()));
        }
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.len() < 6_000, "{} bytes", json.len());
        assert_eq!(serde_json::from_str::<Distinct>(&json).unwrap(), d);
        // Inside an internally tagged enum, as accumulators sit in the shard state.
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        enum Wrapped {
            Sketches { q: Quantiles, d: Distinct },
        }
        let mut q = Quantiles::default();
        for v in [-3.0, 0.0, 1.5, 2e6] {
            q.add(v);
        }
        let w = Wrapped::Sketches { q, d };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<Wrapped>(&json).unwrap(), w);
    }
}
