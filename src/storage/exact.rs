//! Exact sums of floating-point numbers: the running totals of an experiment stay equal to a
//! fresh sum of its units' current contributions, whatever order the events came in.
//!
//! A running `total += after − before` loses everything small that was added while something
//! huge was in the total: `1e20`, `1.5`, then `−1e20` leaves 0. [`ExactSum`] keeps the sum as a
//! list of non-overlapping partials (Shewchuk's expansion, the algorithm of Python's
//! `math.fsum`): every addition is exact, and reading rounds once. It usually holds one or two
//! partials, so an addition costs a few floating-point operations.

/// The error-free sum of `a` and `b`: `(s, e)` with `s = fl(a + b)` and `s + e = a + b`
/// exactly (Knuth's two-sum: no ordering of the operands is needed).
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// An exact sum of finite `f64`s, rounded to the nearest `f64` when read.
///
/// Finite inputs whose exact sum stays below about 1e308 in magnitude are summed exactly
/// (storage bounds every unit's value, see [`MAX_UNIT_VALUE`](super::MAX_UNIT_VALUE), so its
/// totals always are).
///
/// # Examples
///
/// ```
/// use abkit::storage::ExactSum;
///
/// let mut s = ExactSum::default();
/// for x in [1e20, 1.5, -1e20] {
///     s.add(x);
/// }
/// assert_eq!(s.value(), 1.5);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExactSum {
    /// Non-overlapping partials, increasing in magnitude; their exact sum is the value.
    partials: Vec<f64>,
}

impl ExactSum {
    /// A sum holding exactly `x`.
    pub fn of(x: f64) -> ExactSum {
        let mut s = ExactSum::default();
        s.add(x);
        s
    }

    /// Adds `x` exactly. A non-finite `x` is ignored (storage never passes one).
    pub fn add(&mut self, x: f64) {
        if x == 0.0 || !x.is_finite() {
            return;
        }
        let mut x = x;
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let Some(&y) = self.partials.get(j) else {
                break;
            };
            let (hi, lo) = two_sum(x, y);
            if lo != 0.0 {
                if let Some(p) = self.partials.get_mut(kept) {
                    *p = lo;
                }
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        if x != 0.0 {
            self.partials.push(x);
        }
    }

    /// Adds another exact sum, exactly.
    pub fn add_sum(&mut self, other: &ExactSum) {
        for &x in &other.partials {
            self.add(x);
        }
    }

    /// The sum, correctly rounded to the nearest `f64` (ties to even).
    pub fn value(&self) -> f64 {
        // Python's `math.fsum` final step: add from the largest partial down until the
        // addition is inexact, then fix the rounding of a half-way case from the next partial.
        let p = &self.partials;
        let mut n = p.len();
        let Some(&top) = p.last() else {
            return 0.0;
        };
        n -= 1;
        let mut hi = top;
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            let y = p.get(n - 1).copied().unwrap_or(0.0);
            n -= 1;
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        if n > 0 {
            let next = p.get(n - 1).copied().unwrap_or(0.0);
            if (lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0) {
                let y = lo * 2.0;
                let x = hi + y;
                if y == x - hi {
                    hi = x;
                }
            }
        }
        hi
    }

    /// The partials (for storing: [`ExactSum::from_partials`] reads them back).
    pub fn partials(&self) -> &[f64] {
        &self.partials
    }

    /// A sum from stored [`partials`](ExactSum::partials), kept as they are. Non-finite and
    /// zero values are dropped. Any list of finite values is summed exactly by later additions
    /// (each one is error-free); only [`ExactSum::value`]'s rounding relies on the list being
    /// what [`ExactSum::add`] left.
    pub fn from_partials(partials: &[f64]) -> ExactSum {
        ExactSum {
            partials: partials
                .iter()
                .copied()
                .filter(|x| x.is_finite() && *x != 0.0)
                .collect(),
        }
    }

    /// Whether the sum is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.partials.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cancellation_keeps_what_is_small() {
        let mut s = ExactSum::default();
        for x in [1e20, 1.5, -1e20] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.5);
        // Three far-apart magnitudes, the largest two removed.
        let mut s = ExactSum::default();
        for x in [1e40, 1e20, 1.0, -1e40, -1e20] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.0);
        // Subtracting what was added leaves exactly zero.
        let mut s = ExactSum::default();
        for x in [0.1, 0.2, 0.3, -0.1, -0.2, -0.3] {
            s.add(x);
        }
        assert!(s.is_zero());
        assert_eq!(s.value(), 0.0);
    }

    #[test]
    fn rounds_once_and_to_nearest() {
        // 1 + 2⁻⁵³ + 2⁻¹⁰⁵: the exact sum is just above the half-way point, so it rounds up
        // (a naive left-to-right sum gives 1).
        let mut s = ExactSum::default();
        for x in [1.0, 2f64.powi(-53), 2f64.powi(-105)] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.0 + f64::EPSILON);
        // Exactly half-way: ties to even (1).
        assert_eq!(ExactSum::from_partials(&[2f64.powi(-53), 1.0]).value(), 1.0);
        assert_eq!(ExactSum::of(f64::NAN).value(), 0.0);
    }

    /// The exact sum of integers-valued doubles, computed in i128.
    fn exact_integer_sum(xs: &[i64]) -> i128 {
        xs.iter().map(|&x| i128::from(x)).sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(12), ..ProptestConfig::default() })]

        /// Integers scaled by powers of two are exact in `f64`, so their true sum is known.
        #[test]
        fn prop_matches_an_exact_integer_sum(xs in proptest::collection::vec(-(1i64 << 52)..(1i64 << 52), 0..60), shift in 0i32..40) {
            let scale = 2f64.powi(shift);
            let mut s = ExactSum::default();
            for &x in &xs {
                s.add(x as f64 * scale);
            }
            let truth = exact_integer_sum(&xs) as f64 * scale;
            prop_assert_eq!(s.value(), truth);
            // Stored partials read back to the same sum; merging halves gives the same.
            prop_assert_eq!(ExactSum::from_partials(s.partials()).value(), truth);
            let (a, b) = xs.split_at(xs.len() / 2);
            let mut left = ExactSum::default();
            a.iter().for_each(|&x| left.add(x as f64 * scale));
            let mut right = ExactSum::default();
            b.iter().for_each(|&x| right.add(x as f64 * scale));
            left.add_sum(&right);
            prop_assert_eq!(left.value(), truth);
        }
    }
}
