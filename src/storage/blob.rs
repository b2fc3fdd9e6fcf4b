//! The binary columns: a unit's metric values and a variant's totals, little-endian.
//!
//! Version 3 (current):
//! * **unit values** — sparse: per stored slot, its index (`u16`), numerator, denominator and
//!   covariate (`f64`) and a covariate flag (`u8`): 27 bytes, slots strictly ascending.
//! * **totals** — exact: per metric slot, the covariate count (`u64`), then each of the eight
//!   sums as its [`ExactSum`] partials: a count (`u8`) and that many `f64`.
//!
//! Version 2 (read only by the migration): dense values (25 bytes per slot from 0) and
//! rounded totals (eight `f64` and a `u64` per slot).

use crate::storage::{
    ExactMetricTotals, ExactSum, MAX_METRIC_SLOTS, MetricTotals, StorageError, UnitValue,
};

/// Bytes per encoded slot value (version 3): slot, numerator, denominator, covariate, flag.
const VALUE_BYTES: usize = 27;
/// Bytes per dense value (version 2).
const V2_VALUE_BYTES: usize = 25;
/// Bytes per rounded totals entry (version 2).
const V2_TOTALS_BYTES: usize = 72;
/// The most partials a stored exact sum may have: an exact sum of doubles never needs more
/// than about 40 (the exponent range over the mantissa width).
const MAX_PARTIALS: usize = 64;

fn corrupt(what: impl Into<String>) -> StorageError {
    StorageError::Corrupt(what.into())
}

/// A little-endian reader over a blob that reports truncation as corruption.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.bytes.len() < n {
            return Err(corrupt(format!("truncated {} blob", self.what)));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let b = self.take(N)?;
        <[u8; N]>::try_from(b).map_err(|_| corrupt(format!("truncated {} blob", self.what)))
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, StorageError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        self.array().map(u64::from_le_bytes)
    }

    fn f64(&mut self) -> Result<f64, StorageError> {
        self.array().map(f64::from_le_bytes)
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn push_value(v: &UnitValue, out: &mut Vec<u8>) {
    out.extend_from_slice(&v.numerator.to_le_bytes());
    out.extend_from_slice(&v.denominator.to_le_bytes());
    out.extend_from_slice(&v.covariate.unwrap_or(0.0).to_le_bytes());
    out.push(u8::from(v.covariate.is_some()));
}

fn read_value(r: &mut Reader<'_>) -> Result<UnitValue, StorageError> {
    let numerator = r.f64()?;
    let denominator = r.f64()?;
    let covariate = r.f64()?;
    let covariate = match r.u8()? {
        0 => None,
        1 => Some(covariate),
        other => {
            return Err(corrupt(format!(
                "unit value covariate flag is {other}, expected 0 or 1"
            )));
        }
    };
    Ok(UnitValue {
        numerator,
        denominator,
        covariate,
    })
}

/// Encodes a unit's sparse values ([`crate::storage::UnitState::values`]) into `out`.
pub(super) fn encode_values(values: &[(u32, UnitValue)], out: &mut Vec<u8>) {
    out.clear();
    for (slot, v) in values {
        // Slots are below MAX_METRIC_SLOTS (256), so they fit.
        out.extend_from_slice(&u16::try_from(*slot).unwrap_or(u16::MAX).to_le_bytes());
        push_value(v, out);
    }
}

/// Decodes [`encode_values`]' blob.
pub(super) fn decode_values(bytes: &[u8]) -> Result<Vec<(u32, UnitValue)>, StorageError> {
    if !bytes.len().is_multiple_of(VALUE_BYTES)
        || bytes.len() / VALUE_BYTES > MAX_METRIC_SLOTS as usize
    {
        return Err(corrupt(format!(
            "unit values blob has {} bytes, expected a multiple of {VALUE_BYTES} up to {}",
            bytes.len(),
            VALUE_BYTES * MAX_METRIC_SLOTS as usize
        )));
    }
    let mut r = Reader {
        bytes,
        what: "unit values",
    };
    let mut out: Vec<(u32, UnitValue)> = Vec::with_capacity(bytes.len() / VALUE_BYTES);
    while !r.is_empty() {
        let slot = u32::from(r.u16()?);
        if slot >= MAX_METRIC_SLOTS || out.last().is_some_and(|&(last, _)| last >= slot) {
            return Err(corrupt(format!(
                "unit values blob has slot {slot} out of order or out of range (0..{MAX_METRIC_SLOTS})"
            )));
        }
        out.push((slot, read_value(&mut r)?));
    }
    Ok(out)
}

/// Decodes a version-2 dense values blob into sparse values (zero slots dropped).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(super) fn decode_values_v2(bytes: &[u8]) -> Result<Vec<(u32, UnitValue)>, StorageError> {
    if !bytes.len().is_multiple_of(V2_VALUE_BYTES)
        || bytes.len() / V2_VALUE_BYTES > MAX_METRIC_SLOTS as usize
    {
        return Err(corrupt(format!(
            "version-2 unit values blob has {} bytes, expected a multiple of {V2_VALUE_BYTES}",
            bytes.len()
        )));
    }
    let mut r = Reader {
        bytes,
        what: "unit values",
    };
    let mut out = Vec::new();
    let mut slot = 0u32;
    while !r.is_empty() {
        let v = read_value(&mut r)?;
        if v != UnitValue::default() {
            out.push((slot, v));
        }
        slot += 1;
    }
    Ok(out)
}

/// Encodes a variant's exact totals, one entry per metric slot.
pub(super) fn encode_totals(metrics: &[ExactMetricTotals]) -> Vec<u8> {
    let mut out = Vec::with_capacity(metrics.len() * 80);
    for m in metrics {
        out.extend_from_slice(&m.covariate_count().to_le_bytes());
        for s in m.sums() {
            let p = s.partials();
            out.push(u8::try_from(p.len()).unwrap_or(u8::MAX));
            for x in p.iter().take(usize::from(u8::MAX)) {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    out
}

/// Decodes [`encode_totals`]' blob.
pub(super) fn decode_totals(bytes: &[u8]) -> Result<Vec<ExactMetricTotals>, StorageError> {
    let mut r = Reader {
        bytes,
        what: "metric totals",
    };
    let mut out = Vec::new();
    while !r.is_empty() {
        if out.len() >= MAX_METRIC_SLOTS as usize {
            return Err(corrupt(format!(
                "metric totals blob has more than {MAX_METRIC_SLOTS} slots"
            )));
        }
        let covariate_count = r.u64()?;
        let mut sums: [ExactSum; 8] = Default::default();
        for s in &mut sums {
            let n = usize::from(r.u8()?);
            if n > MAX_PARTIALS {
                return Err(corrupt(format!(
                    "metric totals blob has a sum of {n} partials, expected at most {MAX_PARTIALS}"
                )));
            }
            let mut partials = [0f64; MAX_PARTIALS];
            for p in partials.iter_mut().take(n) {
                let x = r.f64()?;
                if !x.is_finite() {
                    return Err(corrupt(format!("metric totals blob has a sum partial {x}")));
                }
                *p = x;
            }
            *s = ExactSum::from_partials(partials.get(..n).unwrap_or_default());
        }
        out.push(ExactMetricTotals::from_parts(sums, covariate_count));
    }
    Ok(out)
}

/// Decodes a version-2 rounded totals blob (each sum becomes an exact sum of that value).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(super) fn decode_totals_v2(bytes: &[u8]) -> Result<Vec<ExactMetricTotals>, StorageError> {
    if !bytes.len().is_multiple_of(V2_TOTALS_BYTES)
        || bytes.len() / V2_TOTALS_BYTES > MAX_METRIC_SLOTS as usize
    {
        return Err(corrupt(format!(
            "version-2 metric totals blob has {} bytes, expected a multiple of {V2_TOTALS_BYTES}",
            bytes.len()
        )));
    }
    let mut r = Reader {
        bytes,
        what: "metric totals",
    };
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut sums: [ExactSum; 8] = Default::default();
        for s in &mut sums {
            *s = ExactSum::of(r.f64()?);
        }
        out.push(ExactMetricTotals::from_parts(sums, r.u64()?));
    }
    Ok(out)
}

/// Rounded totals of every slot (what [`crate::storage::Storage::totals`] returns).
pub(super) fn rounded(metrics: &[ExactMetricTotals]) -> Vec<MetricTotals> {
    metrics.iter().map(ExactMetricTotals::rounded).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    fn runner() -> TestRunner {
        TestRunner::new_with_rng(
            Config::with_cases(256),
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        )
    }

    #[test]
    fn rejects_malformed_blobs() {
        assert!(matches!(
            decode_values(&[0; 26]),
            Err(StorageError::Corrupt(_))
        ));
        let mut bad_flag = vec![0u8; 27];
        bad_flag[26] = 7;
        assert_eq!(
            decode_values(&bad_flag),
            Err(StorageError::Corrupt(
                "unit value covariate flag is 7, expected 0 or 1".into()
            ))
        );
        // Slots out of order, or out of range.
        let mut two = Vec::new();
        encode_values(
            &[(5, UnitValue::default()), (5, UnitValue::default())],
            &mut two,
        );
        assert!(
            matches!(decode_values(&two), Err(StorageError::Corrupt(m)) if m.contains("slot 5"))
        );
        let mut high = Vec::new();
        encode_values(&[(300, UnitValue::default())], &mut high);
        assert!(matches!(
            decode_values(&high),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            decode_totals(&[0; 9]),
            Err(StorageError::Corrupt(_))
        ));
        let mut many = vec![0u8; 8];
        many.push(200);
        assert!(
            matches!(decode_totals(&many), Err(StorageError::Corrupt(m)) if m.contains("200 partials"))
        );
        let mut nan = vec![0u8; 8];
        nan.push(1);
        nan.extend_from_slice(&f64::NAN.to_le_bytes());
        assert!(matches!(decode_totals(&nan), Err(StorageError::Corrupt(_))));
        assert_eq!(decode_values(&[]), Ok(vec![]));
        assert_eq!(decode_totals(&[]), Ok(vec![]));
    }

    #[test]
    fn version_2_blobs_read_back_sparse_and_exact() {
        let v = UnitValue {
            numerator: 2.5,
            denominator: 1.0,
            covariate: Some(3.0),
        };
        let mut dense = Vec::new();
        for x in [UnitValue::default(), UnitValue::default(), v] {
            push_value(&x, &mut dense);
        }
        assert_eq!(decode_values_v2(&dense), Ok(vec![(2, v)]));
        let mut totals = Vec::new();
        for x in [1.5f64, 2.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] {
            totals.extend_from_slice(&x.to_le_bytes());
        }
        totals.extend_from_slice(&7u64.to_le_bytes());
        let back = decode_totals_v2(&totals).unwrap();
        assert_eq!(rounded(&back)[0].sum_squares, 2.25);
        assert_eq!(back[0].covariate_count(), 7);
        assert!(decode_totals_v2(&[0; 71]).is_err());
    }

    #[test]
    fn prop_unit_values_round_trip_bit_exact() {
        let value = (
            any::<f64>(),
            any::<f64>(),
            proptest::option::of(any::<f64>()),
        )
            .prop_map(|(numerator, denominator, covariate)| UnitValue {
                numerator,
                denominator,
                covariate,
            });
        let slots = proptest::collection::btree_map(0u32..MAX_METRIC_SLOTS, value, 0..20);
        runner()
            .run(&slots, |slots| {
                let values: Vec<(u32, UnitValue)> = slots.into_iter().collect();
                let mut blob = Vec::new();
                encode_values(&values, &mut blob);
                let back = decode_values(&blob).unwrap();
                prop_assert_eq!(back.len(), values.len());
                for ((sa, a), (sb, b)) in back.iter().zip(&values) {
                    prop_assert_eq!(sa, sb);
                    prop_assert_eq!(a.numerator.to_bits(), b.numerator.to_bits());
                    prop_assert_eq!(a.denominator.to_bits(), b.denominator.to_bits());
                    prop_assert_eq!(a.covariate.map(f64::to_bits), b.covariate.map(f64::to_bits));
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn prop_exact_totals_round_trip() {
        // Sums of far-apart magnitudes, so the stored sums have several partials.
        let sum = proptest::collection::vec(
            prop_oneof![(-1e3f64..1e3), (-1e3f64..1e3).prop_map(|x| x * 1e30)],
            0..6,
        )
        .prop_map(|xs| {
            let mut s = ExactSum::default();
            xs.iter().for_each(|&x| s.add(x));
            s
        });
        let metric = (proptest::array::uniform8(sum), any::<u64>())
            .prop_map(|(sums, n)| ExactMetricTotals::from_parts(sums, n));
        runner()
            .run(&proptest::collection::vec(metric, 0..10), |metrics| {
                prop_assert_eq!(decode_totals(&encode_totals(&metrics)).unwrap(), metrics);
                Ok(())
            })
            .unwrap();
    }
}
