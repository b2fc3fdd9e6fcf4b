//! TEMPORARY STUB: replaced by the allocation branch at merge.
#![allow(missing_docs, clippy::all)]
use serde::{Deserialize, Serialize};
pub const BUCKETS: u32 = 10_000;
pub const VARIANT_SEED_XOR: u64 = 0x9E37_79B9_7F4A_7C15;
pub fn hash(bytes: &[u8], seed: u64) -> u64 {
    twox_hash::XxHash3_64::oneshot_with_seed(seed, bytes)
}
pub fn seed(salt: &str) -> u64 {
    hash(salt.as_bytes(), 0)
}
pub fn bucket(h: u64) -> u16 {
    ((h as u128 * 10_000) >> 64) as u16
}
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WeightError {
    #[error("bad weight {0}")]
    Bad(String),
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Weight(u16);
impl Weight {
    pub fn from_basis_points(bp: u32) -> Result<Weight, WeightError> {
        if bp > 10000 {
            Err(WeightError::Bad(bp.to_string()))
        } else {
            Ok(Weight(bp as u16))
        }
    }
    pub fn from_percent(p: i64) -> Result<Weight, WeightError> {
        if !(0..=100).contains(&p) {
            Err(WeightError::Bad(p.to_string()))
        } else {
            Ok(Weight(p as u16 * 100))
        }
    }
    pub fn from_fraction(f: f64) -> Result<Weight, WeightError> {
        let x = f * 10000.0;
        if !(0.0..=10000.0).contains(&x) || (x - x.round()).abs() > 1e-6 {
            Err(WeightError::Bad(f.to_string()))
        } else {
            Ok(Weight(x.round() as u16))
        }
    }
    pub fn from_percentage(f: f64) -> Result<Weight, WeightError> {
        let x = f * 100.0;
        if !(0.0..=10000.0).contains(&x) || (x - x.round()).abs() > 1e-4 {
            Err(WeightError::Bad(f.to_string()))
        } else {
            Ok(Weight(x.round() as u16))
        }
    }
    pub fn basis_points(self) -> u16 {
        self.0
    }
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / 10000.0
    }
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Weights(Vec<Weight>);
impl Weights {
    pub fn new(w: Vec<Weight>) -> Result<Weights, WeightError> {
        let s: u32 = w.iter().map(|x| u32::from(x.0)).sum();
        if s != 10000 || w.is_empty() {
            Err(WeightError::Bad(format!(
                "variant weights sum to {s} basis points, expected 10000"
            )))
        } else {
            Ok(Weights(w))
        }
    }
    pub fn even(n: usize) -> Weights {
        let n16 = n as u16;
        let base = 10000 / n16;
        let rem = 10000 % n16;
        Weights(
            (0..n16)
                .map(|i| Weight(base + u16::from(i < rem)))
                .collect(),
        )
    }
    pub fn as_slice(&self) -> &[Weight] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Traffic(u16);
impl Default for Traffic {
    fn default() -> Self {
        Traffic::FULL
    }
}
impl Traffic {
    pub const FULL: Traffic = Traffic(10000);
    pub const NONE: Traffic = Traffic(0);
    pub fn from_fraction(f: f64) -> Result<Traffic, WeightError> {
        Weight::from_fraction(f).map(|w| Traffic(w.0))
    }
    pub fn from_basis_points(bp: u32) -> Result<Traffic, WeightError> {
        Weight::from_basis_points(bp).map(|w| Traffic(w.0))
    }
    pub fn basis_points(self) -> u16 {
        self.0
    }
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / 10000.0
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BucketRange {
    start: u16,
    end: u16,
}
impl BucketRange {
    pub fn new(start: u32, end: u32) -> Result<BucketRange, WeightError> {
        if start >= end || end > 10000 {
            Err(WeightError::Bad(format!("{start}..{end}")))
        } else {
            Ok(BucketRange {
                start: start as u16,
                end: end as u16,
            })
        }
    }
    pub fn contains(&self, b: u16) -> bool {
        self.start <= b && b < self.end
    }
    pub fn overlaps(&self, o: &BucketRange) -> bool {
        self.start < o.end && o.start < self.end
    }
    pub fn width(&self) -> u16 {
        self.end - self.start
    }
    pub fn start(&self) -> u16 {
        self.start
    }
    pub fn end(&self) -> u16 {
        self.end
    }
}
#[derive(Debug, Clone)]
pub struct Allocator {
    seed: u64,
    vseed: u64,
    traffic: Traffic,
    cum: Box<[u16]>,
}
impl Allocator {
    pub fn new(salt: &str, traffic: Traffic, weights: &Weights) -> Allocator {
        let s = seed(salt);
        let mut acc = 0;
        Allocator {
            seed: s,
            vseed: s ^ VARIANT_SEED_XOR,
            traffic,
            cum: weights
                .0
                .iter()
                .map(|w| {
                    acc += w.0;
                    acc
                })
                .collect(),
        }
    }
    pub fn with_traffic(&self, t: Traffic) -> Allocator {
        let mut a = self.clone();
        a.traffic = t;
        a
    }
    pub fn traffic_bucket(&self, unit: &[u8]) -> u16 {
        bucket(hash(unit, self.seed))
    }
    pub fn variant_bucket(&self, unit: &[u8]) -> u16 {
        bucket(hash(unit, self.vseed))
    }
    pub fn variant_index(&self, unit: &[u8]) -> usize {
        let v = self.variant_bucket(unit);
        self.cum.iter().position(|&c| v < c).unwrap_or(0)
    }
    pub fn allocate(&self, unit: &[u8]) -> Option<usize> {
        if self.traffic_bucket(unit) < self.traffic.0 {
            Some(self.variant_index(unit))
        } else {
            None
        }
    }
}
#[derive(Debug, Clone, Copy)]
pub struct LayerHasher {
    seed: u64,
}
impl LayerHasher {
    pub fn new(salt: &str) -> LayerHasher {
        LayerHasher { seed: seed(salt) }
    }
    pub fn bucket(&self, unit: &[u8]) -> u16 {
        bucket(hash(unit, self.seed))
    }
}
