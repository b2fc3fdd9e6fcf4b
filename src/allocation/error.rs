//! Errors of the allocation types: weights, traffic and bucket ranges.

use std::fmt::Write as _;

use super::BUCKETS;

/// The form in which weights were given, so an error can speak in the caller's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum WeightForm {
    /// Basis points, 10 000 = 100% ([`Weights::new`](super::Weights::new)).
    BasisPoints,
    /// Integer percents, 100 = 100% ([`Weights::from_percents`](super::Weights::from_percents)).
    Percent,
    /// Fractions, 1.0 = 100% ([`Weights::from_fractions`](super::Weights::from_fractions)).
    Fraction,
    /// Decimal percentages, 100.0 = 100%
    /// ([`Weights::from_percentages`](super::Weights::from_percentages)).
    Percentage,
}

/// An invalid weight, set of variant weights, traffic fraction or bucket range.
///
/// Every message names the offending value; a wrong sum of weights also suggests a valid split
/// for that many variants, in the units the weights were given in.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WeightError {
    /// A weight in basis points above 10 000.
    #[error("weight of {value} basis points is out of range, expected 0 to 10000")]
    BasisPointsOutOfRange {
        /// The weight given, in basis points.
        value: u64,
    },
    /// An integer percent weight below 0 or above 100.
    #[error("weight of {value}% is out of range, expected 0 to 100")]
    PercentOutOfRange {
        /// The weight given, in percent.
        value: i64,
    },
    /// A fraction weight that is NaN, infinite, negative or above 1.
    #[error("weight {value} is out of range, expected a fraction from 0 to 1")]
    FractionOutOfRange {
        /// The weight given, as a fraction.
        value: f64,
    },
    /// A percentage weight that is NaN, infinite, negative or above 100.
    #[error("weight {value}% is out of range, expected a percentage from 0 to 100")]
    PercentageOutOfRange {
        /// The weight given, in percent.
        value: f64,
    },
    /// A fraction or percentage that is not a whole number of basis points (0.0001 = 0.01%).
    #[error(
        "weight {} is not a whole number of basis points ({} bp), expected at most {} decimal places",
        show_value(*value, *form),
        show_float(bp_of(*value, *form)),
        decimals_of(*form)
    )]
    NotWholeBasisPoints {
        /// The weight given, in the units of `form`.
        value: f64,
        /// The form the weight was given in.
        form: WeightForm,
    },
    /// An empty list of weights: an experiment needs at least one variant.
    #[error("variant weights are empty, expected at least one variant")]
    Empty,
    /// More variants than basis points: an even split would give some variants no traffic.
    #[error(
        "cannot split 10000 basis points evenly over {count} variants, expected at most 10000 variants"
    )]
    TooManyVariants {
        /// The number of variants asked for.
        count: usize,
    },
    /// Weights that do not sum to exactly 100%.
    #[error("{}", wrong_sum_message(*sum_basis_points, *count, *form))]
    WrongSum {
        /// The sum of the weights, in basis points.
        sum_basis_points: u64,
        /// The number of weights.
        count: usize,
        /// The form the weights were given in.
        form: WeightForm,
    },
    /// A traffic in basis points above 10 000.
    #[error("traffic of {value} basis points is out of range, expected 0 to 10000")]
    TrafficBasisPointsOutOfRange {
        /// The traffic given, in basis points.
        value: u64,
    },
    /// A traffic fraction that is NaN, infinite, negative or above 1.
    #[error("traffic {value} is out of range, expected a fraction from 0 to 1")]
    TrafficOutOfRange {
        /// The traffic given, as a fraction.
        value: f64,
    },
    /// A traffic fraction that is not a whole number of basis points.
    #[error(
        "traffic {value} is not a whole number of basis points ({} bp), expected at most 4 decimal places",
        show_float(*value * 10_000.0)
    )]
    TrafficNotWholeBasisPoints {
        /// The traffic given, as a fraction.
        value: f64,
    },
    /// A bucket range whose end is past 10 000.
    #[error("bucket range [{start}, {end}) ends past 10000, expected 0 <= start < end <= 10000")]
    RangeOutOfBounds {
        /// The start given (inclusive).
        start: u64,
        /// The end given (exclusive).
        end: u64,
    },
    /// A bucket range with `start >= end`.
    #[error("bucket range [{start}, {end}) is empty, expected start < end")]
    RangeEmpty {
        /// The start given (inclusive).
        start: u64,
        /// The end given (exclusive).
        end: u64,
    },
}

/// The value as the caller wrote it.
fn show_value(value: f64, form: WeightForm) -> String {
    match form {
        WeightForm::Percent | WeightForm::Percentage => format!("{value}%"),
        WeightForm::BasisPoints | WeightForm::Fraction => format!("{value}"),
    }
}

/// The value in basis points (for messages only).
fn bp_of(value: f64, form: WeightForm) -> f64 {
    match form {
        WeightForm::Fraction => value * 10_000.0,
        WeightForm::Percent | WeightForm::Percentage => value * 100.0,
        WeightForm::BasisPoints => value,
    }
}

/// How many decimal places a whole number of basis points has in each form.
fn decimals_of(form: WeightForm) -> u8 {
    match form {
        WeightForm::Fraction => 4,
        WeightForm::Percent | WeightForm::Percentage => 2,
        WeightForm::BasisPoints => 0,
    }
}

/// A float shown with at most 6 decimals, trailing zeros trimmed (message text only).
fn show_float(x: f64) -> String {
    let s = format!("{x:.6}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Basis points written exactly as a fraction of 10 000 (3334 → "0.3334", 5000 → "0.5").
pub(crate) fn bp_as_fraction(bp: u64) -> String {
    scaled(bp, 10_000, 4)
}

/// Basis points written exactly as a percentage (3334 → "33.34", 5000 → "50").
pub(crate) fn bp_as_percentage(bp: u64) -> String {
    scaled(bp, 100, 2)
}

/// `n / denominator` in decimal with `digits` fractional digits, trailing zeros trimmed.
fn scaled(n: u64, denominator: u64, digits: usize) -> String {
    let whole = n / denominator;
    let rest = n % denominator;
    if rest == 0 {
        return whole.to_string();
    }
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// An even split of `total` over `count` parts, the remainder spread one by one over the first
/// parts, described as `(first_value, how_many_first, other_value)`.
fn even_split(total: u64, count: usize) -> (u64, u64, u64) {
    let n = u64::try_from(count).unwrap_or(u64::MAX).max(1);
    let base = total / n;
    let remainder = total % n;
    (base.saturating_add(1), remainder, base)
}

/// The message of [`WeightError::WrongSum`].
fn wrong_sum_message(sum_bp: u64, count: usize, form: WeightForm) -> String {
    let total_bp = u64::from(BUCKETS);
    let (sum, expected, unit_total) = match form {
        WeightForm::BasisPoints => (
            format!("{sum_bp} basis points ({}%)", bp_as_percentage(sum_bp)),
            format!("{total_bp} (100%)"),
            total_bp,
        ),
        WeightForm::Percent => (
            format!("{}%", bp_as_percentage(sum_bp)),
            "100%".to_owned(),
            100,
        ),
        WeightForm::Percentage => (
            format!("{}%", bp_as_percentage(sum_bp)),
            "100%".to_owned(),
            total_bp,
        ),
        WeightForm::Fraction => (bp_as_fraction(sum_bp), "1".to_owned(), total_bp),
    };
    let show = |units: u64| -> String {
        match form {
            WeightForm::BasisPoints | WeightForm::Percent => units.to_string(),
            WeightForm::Percentage => bp_as_percentage(units),
            WeightForm::Fraction => bp_as_fraction(units),
        }
    };
    let mut msg = format!("variant weights sum to {sum}, expected exactly {expected}");
    if count == 0 {
        return msg;
    }
    let (first, first_count, other) = even_split(unit_total, count);
    let count_u64 = u64::try_from(count).unwrap_or(u64::MAX);
    msg.push_str("; for example ");
    if count <= 12 {
        let parts: Vec<String> = (0..count_u64)
            .map(|i| show(if i < first_count { first } else { other }))
            .collect();
        msg.push_str(&parts.join(", "));
    } else if first_count == 0 {
        let _ = write!(msg, "{} for each of the {count} variants", show(other));
    } else {
        let _ = write!(
            msg,
            "{} for the first {first_count} variants and {} for the other {}",
            show(first),
            show(other),
            count_u64.saturating_sub(first_count)
        );
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_sum_messages_per_form() {
        let e = WeightError::WrongSum {
            sum_basis_points: 9_999,
            count: 3,
            form: WeightForm::BasisPoints,
        };
        assert_eq!(
            e.to_string(),
            "variant weights sum to 9999 basis points (99.99%), expected exactly 10000 (100%); \
             for example 3334, 3333, 3333"
        );
        let e = WeightError::WrongSum {
            sum_basis_points: 9_999,
            count: 3,
            form: WeightForm::Fraction,
        };
        assert_eq!(
            e.to_string(),
            "variant weights sum to 0.9999, expected exactly 1; for example 0.3334, 0.3333, 0.3333"
        );
        let e = WeightError::WrongSum {
            sum_basis_points: 9_900,
            count: 3,
            form: WeightForm::Percent,
        };
        assert_eq!(
            e.to_string(),
            "variant weights sum to 99%, expected exactly 100%; for example 34, 33, 33"
        );
        let e = WeightError::WrongSum {
            sum_basis_points: 10_001,
            count: 2,
            form: WeightForm::Percentage,
        };
        assert_eq!(
            e.to_string(),
            "variant weights sum to 100.01%, expected exactly 100%; for example 50, 50"
        );
    }

    #[test]
    fn wrong_sum_message_abbreviates_many_variants() {
        let e = WeightError::WrongSum {
            sum_basis_points: 9_000,
            count: 30,
            form: WeightForm::BasisPoints,
        };
        assert_eq!(
            e.to_string(),
            "variant weights sum to 9000 basis points (90%), expected exactly 10000 (100%); \
             for example 334 for the first 10 variants and 333 for the other 20"
        );
        let e = WeightError::WrongSum {
            sum_basis_points: 9_000,
            count: 20,
            form: WeightForm::Fraction,
        };
        assert_eq!(
            e.to_string(),
            "variant weights sum to 0.9, expected exactly 1; for example 0.05 for each of the 20 variants"
        );
    }

    #[test]
    fn not_whole_messages() {
        let e = WeightError::NotWholeBasisPoints {
            value: 0.12345,
            form: WeightForm::Fraction,
        };
        assert_eq!(
            e.to_string(),
            "weight 0.12345 is not a whole number of basis points (1234.5 bp), expected at most 4 decimal places"
        );
        let e = WeightError::NotWholeBasisPoints {
            value: 33.333,
            form: WeightForm::Percentage,
        };
        assert_eq!(
            e.to_string(),
            "weight 33.333% is not a whole number of basis points (3333.3 bp), expected at most 2 decimal places"
        );
        let e = WeightError::TrafficNotWholeBasisPoints { value: 0.00005 };
        assert_eq!(
            e.to_string(),
            "traffic 0.00005 is not a whole number of basis points (0.5 bp), expected at most 4 decimal places"
        );
    }

    #[test]
    fn exact_decimal_rendering() {
        assert_eq!(bp_as_fraction(3_334), "0.3334");
        assert_eq!(bp_as_fraction(5_000), "0.5");
        assert_eq!(bp_as_fraction(10_000), "1");
        assert_eq!(bp_as_fraction(1), "0.0001");
        assert_eq!(bp_as_fraction(20_500), "2.05");
        assert_eq!(bp_as_percentage(3_333), "33.33");
        assert_eq!(bp_as_percentage(10_000), "100");
        assert_eq!(bp_as_percentage(5), "0.05");
    }
}
