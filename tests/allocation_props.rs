//! Properties of deterministic allocation, through the public API.
//!
//! Every randomised test uses a fixed seed, so a run is reproducible; statistical checks use
//! generated unit ids and a chi-square test with p > 1e-6.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use abkit::allocation::{
    Allocator, BUCKETS, BucketRange, LayerHasher, Traffic, Weight, WeightError, WeightForm, Weights,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Chi-square tests must not reject the null at this level.
const MIN_P: f64 = 1e-6;

fn config(seed: u64) -> Config {
    Config {
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    }
}

fn weights(bp: &[u32]) -> Weights {
    Weights::new(
        bp.iter()
            .map(|&b| Weight::from_basis_points(b).unwrap())
            .collect(),
    )
    .unwrap()
}

fn bps(w: &Weights) -> Vec<u16> {
    w.iter().map(|w| w.basis_points()).collect()
}

/// Upper-tail probability of a chi-square statistic.
fn chi_square_p(statistic: f64, degrees_of_freedom: f64) -> f64 {
    ChiSquared::new(degrees_of_freedom).unwrap().sf(statistic)
}

fn unit_id(i: u64) -> String {
    format!("user-{i}")
}

/// Goodness of fit of the per-variant counts to the weights.
fn assert_shares_match(salt: &str, bp: &[u32], units: u64) {
    let w = weights(bp);
    let allocator = Allocator::new(salt, Traffic::FULL, &w);
    let mut counts = vec![0_u64; bp.len()];
    for i in 0..units {
        let v = allocator.allocate(unit_id(i).as_bytes()).unwrap();
        counts[v] += 1;
    }
    let n = units as f64;
    let statistic: f64 = counts
        .iter()
        .zip(bp)
        .map(|(&observed, &b)| {
            let expected = n * f64::from(b) / f64::from(BUCKETS);
            (observed as f64 - expected).powi(2) / expected
        })
        .sum();
    let p = chi_square_p(statistic, (bp.len() - 1) as f64);
    assert!(
        p > MIN_P,
        "salt {salt}, weights {bp:?}: counts {counts:?}, chi2 {statistic}, p {p}"
    );
    assert_eq!(counts.iter().sum::<u64>(), units);
}

/// Pearson chi-square test of independence on an r×c contingency table.
fn independence_p(table: &[Vec<u64>]) -> f64 {
    let rows: Vec<f64> = table.iter().map(|r| r.iter().sum::<u64>() as f64).collect();
    let cols: Vec<f64> = (0..table[0].len())
        .map(|j| table.iter().map(|r| r[j]).sum::<u64>() as f64)
        .collect();
    let n: f64 = rows.iter().sum();
    let mut statistic = 0.0;
    for (i, row) in table.iter().enumerate() {
        for (j, &observed) in row.iter().enumerate() {
            let expected = rows[i] * cols[j] / n;
            statistic += (observed as f64 - expected).powi(2) / expected;
        }
    }
    let df = ((rows.len() - 1) * (cols.len() - 1)) as f64;
    chi_square_p(statistic, df)
}

#[test]
fn shares_match_weights_2_variants() {
    assert_shares_match("checkout_flow", &[2_000, 8_000], 200_000);
}

#[test]
fn shares_match_weights_3_variants() {
    assert_shares_match("pricing_page", &[1_000, 3_000, 6_000], 200_000);
}

#[test]
fn shares_match_weights_10_variants() {
    assert_shares_match(
        "ten_arms",
        &[500, 700, 800, 900, 1_000, 1_000, 1_100, 1_200, 1_300, 1_500],
        200_000,
    );
}

#[test]
fn traffic_share_matches_traffic() {
    let allocator = Allocator::new(
        "coverage",
        Traffic::from_fraction(0.2).unwrap(),
        &Weights::even(2).unwrap(),
    );
    let units = 200_000_u64;
    let inside = (0..units)
        .filter(|&i| allocator.allocate(unit_id(i).as_bytes()).is_some())
        .count() as f64;
    let n = units as f64;
    let (e_in, e_out) = (n * 0.2, n * 0.8);
    let statistic = (inside - e_in).powi(2) / e_in + ((n - inside) - e_out).powi(2) / e_out;
    let p = chi_square_p(statistic, 1.0);
    assert!(p > MIN_P, "inside {inside} of {n}, p {p}");
}

#[test]
fn experiments_with_different_salts_are_independent() {
    let w = Weights::even(2).unwrap();
    let a = Allocator::new("experiment_a", Traffic::FULL, &w);
    let b = Allocator::new("experiment_b", Traffic::FULL, &w);
    let mut table = vec![vec![0_u64; 2]; 2];
    for i in 0..200_000 {
        let unit = unit_id(i);
        let (va, vb) = (
            a.variant_index(unit.as_bytes()),
            b.variant_index(unit.as_bytes()),
        );
        table[va][vb] += 1;
    }
    let p = independence_p(&table);
    assert!(p > MIN_P, "table {table:?}, p {p}");
    assert!(table.iter().flatten().all(|&c| c > 0));
}

#[test]
fn traffic_and_variant_buckets_are_independent() {
    // Within one experiment the two hashes must not correlate: being in a 50% traffic says
    // nothing about the variant.
    let a = Allocator::new("one_experiment", Traffic::FULL, &Weights::even(2).unwrap());
    let mut table = vec![vec![0_u64; 2]; 2];
    for i in 0..200_000 {
        let unit = unit_id(i);
        let inside = usize::from(a.traffic_bucket(unit.as_bytes()) < 5_000);
        table[inside][a.variant_index(unit.as_bytes())] += 1;
    }
    let p = independence_p(&table);
    assert!(p > MIN_P, "table {table:?}, p {p}");
}

#[test]
fn weights_from_every_input_form_are_exact() {
    assert_eq!(
        bps(&Weights::from_fractions(&[0.33, 0.33, 0.34]).unwrap()),
        [3_300, 3_300, 3_400]
    );
    assert_eq!(
        bps(&Weights::from_fractions(&[0.1, 0.2, 0.7]).unwrap()),
        [1_000, 2_000, 7_000]
    );
    assert_eq!(
        bps(&Weights::from_percentages(&[33.33, 33.33, 33.34]).unwrap()),
        [3_333, 3_333, 3_334]
    );
    assert_eq!(
        bps(&Weights::from_percents(&[34, 33, 33]).unwrap()),
        [3_400, 3_300, 3_300]
    );
    let err = Weights::from_fractions(&[0.3333, 0.3333, 0.3333]).unwrap_err();
    assert_eq!(
        err,
        WeightError::WrongSum {
            sum_basis_points: 9_999,
            count: 3,
            form: WeightForm::Fraction
        }
    );
    assert_eq!(
        err.to_string(),
        "variant weights sum to 0.9999, expected exactly 1; for example 0.3334, 0.3333, 0.3333"
    );
    let third = 1.0 / 3.0;
    assert_eq!(
        Weights::from_fractions(&[third, third, third]),
        Err(WeightError::NotWholeBasisPoints {
            value: third,
            form: WeightForm::Fraction
        })
    );
    assert!(matches!(
        Weights::from_fractions(&[0.12345, 0.87655]),
        Err(WeightError::NotWholeBasisPoints { .. })
    ));
}

#[test]
fn no_panic_on_edge_unit_ids() {
    let w = Weights::even(3).unwrap();
    let a = Allocator::new("edge", Traffic::FULL, &w);
    let layer = LayerHasher::new("edge_layer");
    let mut units: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        vec![0xFF; 1 << 20],
        (0..=255).collect(),
        vec![0xC3, 0x28], // invalid UTF-8
    ];
    // A character from each of the 17 Unicode planes.
    for plane in 0..=16_u32 {
        let c = char::from_u32(plane * 0x1_0000 + 0x41).unwrap();
        units.push(c.to_string().into_bytes());
    }
    for unit in &units {
        assert!(a.allocate(unit).is_some_and(|v| v < 3));
        assert!(u32::from(a.traffic_bucket(unit)) < BUCKETS);
        assert!(u32::from(layer.bucket(unit)) < BUCKETS);
    }
    // Distinct inputs are not all mapped to one bucket.
    let distinct: std::collections::BTreeSet<u16> =
        units.iter().map(|u| a.variant_bucket(u)).collect();
    assert!(distinct.len() > 1);
}

/// Cut points that split `total` into `parts` non-negative integers, in order.
fn partition(total: u32, parts: usize) -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(0..=total, parts - 1).prop_map(move |mut cuts| {
        cuts.sort_unstable();
        let mut prev = 0;
        let mut out = Vec::with_capacity(cuts.len() + 1);
        for c in cuts {
            out.push(c - prev);
            prev = c;
        }
        out.push(total - prev);
        out
    })
}

fn partition_any(total: u32) -> impl Strategy<Value = Vec<u32>> {
    (1_usize..=10).prop_flat_map(move |k| partition(total, k))
}

proptest! {
    #![proptest_config(config(0xAB_0001))]

    #[test]
    fn prop_allocation_is_deterministic(
        salt in ".{0,32}",
        unit in proptest::collection::vec(any::<u8>(), 0..128),
        bp in partition_any(10_000),
        traffic in 0_u32..=10_000,
    ) {
        let t = Traffic::from_basis_points(traffic).unwrap();
        // Two independently compiled allocators, as in two processes.
        let a = Allocator::new(&salt, t, &weights(&bp));
        let b = Allocator::new(&salt.clone(), t, &weights(&bp.clone()));
        prop_assert_eq!(a.allocate(&unit), b.allocate(&unit));
        prop_assert_eq!(a.traffic_bucket(&unit), b.traffic_bucket(&unit));
        prop_assert_eq!(a.variant_bucket(&unit), b.variant_bucket(&unit));
        prop_assert_eq!(a.allocate(&unit), a.allocate(&unit));
        let v = a.variant_index(&unit);
        prop_assert!(v < bp.len());
        // The variant owns a non-empty share: a zero-weight variant is never chosen.
        prop_assert!(bp[v] > 0);
    }

    #[test]
    fn prop_ramp_is_monotone(
        salt in ".{0,32}",
        units in proptest::collection::vec("[a-z0-9-]{1,24}", 1..50),
        variants in 1_usize..=10,
        t1 in 0_u32..=10_000,
        t2 in 0_u32..=10_000,
    ) {
        let (low, high) = (t1.min(t2), t1.max(t2));
        let base = Allocator::new(&salt, Traffic::from_basis_points(low).unwrap(), &Weights::even(variants).unwrap());
        let raised = base.with_traffic(Traffic::from_basis_points(high).unwrap());
        for unit in &units {
            let unit = unit.as_bytes();
            match (base.allocate(unit), raised.allocate(unit)) {
                // Raising adds units and keeps every enrolled unit's variant.
                (Some(before), after) => prop_assert_eq!(after, Some(before)),
                // Lowering (raised → base) only removes units; a new unit gets its fixed variant.
                (None, Some(after)) => prop_assert_eq!(after, base.variant_index(unit)),
                (None, None) => {}
            }
            prop_assert_eq!(base.variant_index(unit), raised.variant_index(unit));
        }
    }

    #[test]
    fn prop_layer_ranges_are_exclusive(
        layer_salt in ".{0,32}",
        cuts in proptest::collection::btree_set(1_u32..10_000, 0..8),
        owned in proptest::collection::vec(any::<bool>(), 9),
        units in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..50),
    ) {
        // Consecutive cut points give disjoint ranges covering [0, 10 000); drop some to make
        // holdouts.
        let mut bounds = vec![0_u32];
        bounds.extend(cuts.iter().copied());
        bounds.push(10_000);
        let all: Vec<BucketRange> = bounds
            .windows(2)
            .map(|w| BucketRange::new(w[0], w[1]).unwrap())
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                prop_assert!(!a.overlaps(b));
            }
        }
        let running: Vec<&BucketRange> =
            all.iter().zip(&owned).filter(|(_, o)| **o).map(|(r, _)| r).collect();
        let layer = LayerHasher::new(&layer_salt);
        for unit in &units {
            let l = layer.bucket(unit);
            prop_assert!(running.iter().filter(|r| r.contains(l)).count() <= 1);
            prop_assert_eq!(all.iter().filter(|r| r.contains(l)).count(), 1);
        }
    }

    #[test]
    fn prop_percents_convert_exactly(percents in partition_any(100)) {
        let input: Vec<i64> = percents.iter().map(|&p| i64::from(p)).collect();
        let w = Weights::from_percents(&input).unwrap();
        let expected: Vec<u16> = percents.iter().map(|&p| u16::try_from(p * 100).unwrap()).collect();
        prop_assert_eq!(bps(&w), expected);
        let back: Vec<f64> = w.iter().map(|w| w.as_percent()).collect();
        let original: Vec<f64> = percents.iter().map(|&p| f64::from(p)).collect();
        prop_assert_eq!(back, original);
    }

    #[test]
    fn prop_fractions_and_percentages_convert_exactly(bp in partition_any(10_000)) {
        // The decimal text a user would write: 4 decimals for fractions, 2 for percentages.
        let fractions: Vec<f64> = bp
            .iter()
            .map(|&b| format!("{}.{:04}", b / 10_000, b % 10_000).parse().unwrap())
            .collect();
        let percentages: Vec<f64> = bp
            .iter()
            .map(|&b| format!("{}.{:02}", b / 100, b % 100).parse().unwrap())
            .collect();
        let expected: Vec<u16> = bp.iter().map(|&b| u16::try_from(b).unwrap()).collect();
        let from_fractions = Weights::from_fractions(&fractions).unwrap();
        let from_percentages = Weights::from_percentages(&percentages).unwrap();
        prop_assert_eq!(bps(&from_fractions), expected.clone());
        prop_assert_eq!(bps(&from_percentages), expected);
        let sum: u32 = from_fractions.iter().map(|w| u32::from(w.basis_points())).sum();
        prop_assert_eq!(sum, 10_000);
        // And back: the accessors give the same floats the text parsed to.
        let back: Vec<f64> = from_fractions.iter().map(|w| w.as_fraction()).collect();
        prop_assert_eq!(back, fractions);
        let back: Vec<f64> = from_percentages.iter().map(|w| w.as_percent()).collect();
        prop_assert_eq!(back, percentages);
    }

    #[test]
    fn prop_wrong_sums_are_rejected(bp in partition_any(10_000), delta in 1_u32..=50, up in any::<bool>()) {
        let mut bp = bp;
        let last = bp.len() - 1;
        let total = if up || bp[last] < delta { bp[last] += delta; 10_000 + delta } else { bp[last] -= delta; 10_000 - delta };
        prop_assume!(bp.iter().all(|&b| b <= 10_000));
        let input: Vec<Weight> = bp.iter().map(|&b| Weight::from_basis_points(b).unwrap()).collect();
        let err = Weights::new(input).unwrap_err();
        prop_assert_eq!(
            err,
            WeightError::WrongSum { sum_basis_points: u64::from(total), count: bp.len(), form: WeightForm::BasisPoints }
        );
    }
}

proptest! {
    #![proptest_config(config(0xAB_0002))]

    #[test]
    fn prop_no_panic_on_any_unit_id(
        bytes in proptest::collection::vec(any::<u8>(), 0..4_096),
        text in proptest::collection::vec(any::<char>(), 0..256),
        salt in any::<String>(),
        traffic in 0_u32..=10_000,
        variants in 1_usize..=20,
    ) {
        let a = Allocator::new(&salt, Traffic::from_basis_points(traffic).unwrap(), &Weights::even(variants).unwrap());
        let layer = LayerHasher::new(&salt);
        let text: String = text.into_iter().collect();
        for unit in [bytes.as_slice(), text.as_bytes()] {
            let t = a.traffic_bucket(unit);
            prop_assert!(u32::from(t) < BUCKETS);
            prop_assert!(u32::from(a.variant_bucket(unit)) < BUCKETS);
            prop_assert!(u32::from(layer.bucket(unit)) < BUCKETS);
            prop_assert!(a.variant_index(unit) < variants);
            prop_assert_eq!(a.allocate(unit).is_some(), u32::from(t) < traffic);
        }
    }
}
