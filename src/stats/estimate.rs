//! Per-variant estimates: validation of the sufficient statistics and each kind's m and v.

use super::error::{StatsError, invalid};
use super::request::{MetricKind, SufficientStats};

/// Relative slack allowed when Σx² − (Σx)²/n comes out slightly negative through rounding.
const ROUNDING_SLACK: f64 = 1e-9;

/// A validated arm of one metric: n, the estimate m and the unit variance v (Var(m) ≈ v/n).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arm {
    /// Units n (≥ 1; ≥ 2 for means and ratios), or 0 for the [`empty`] arm of a 0% variant.
    pub n: f64,
    /// Σ value (conversions for a proportion).
    pub sum: f64,
    /// The estimate m.
    pub m: f64,
    /// The per-unit variance v (for a ratio of extreme magnitude it may overflow to infinity;
    /// every computation that could overflow uses `sd`).
    pub v: f64,
    /// √v, finite for every accepted arm.
    pub sd: f64,
    /// Covariate sums for CUPED, when all three were given.
    pub covariate: Option<Covariate>,
}

/// The covariate's sums in one arm and its derived moments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Covariate {
    /// Σ c.
    pub sum: f64,
    /// Σ c².
    pub sum_squares: f64,
    /// Σ c·value.
    pub sum_products: f64,
    /// Sample variance of c (n − 1 denominator).
    pub variance: f64,
    /// Sample covariance of c and the value (n − 1 denominator).
    pub covariance: f64,
}

/// Every sum of an arm with its field name, for the checks of the undefined arms.
fn named_sums(s: &SufficientStats) -> [(&'static str, Option<f64>); 8] {
    [
        ("sum", Some(s.sum)),
        ("sumSquares", s.sum_squares),
        ("denominatorSum", s.denominator_sum),
        ("denominatorSumSquares", s.denominator_sum_squares),
        ("sumProducts", s.sum_products),
        ("covariateSum", s.covariate_sum),
        ("covariateSumSquares", s.covariate_sum_squares),
        ("covariateSumProducts", s.covariate_sum_products),
    ]
}

/// An arm every figure of which is undefined (NaN here, `null` in the report), after checking
/// that no sum is `bad` (which `reason` then explains).
fn undefined_arm(
    s: &SufficientStats,
    path: &dyn Fn() -> String,
    bad: impl Fn(f64) -> bool,
    reason: impl Fn(f64) -> String,
) -> Result<Arm, StatsError> {
    for (name, value) in named_sums(s) {
        if let Some(x) = value.filter(|&x| bad(x)) {
            return Err(invalid(format!("{}.{name}", path()), reason(x)));
        }
    }
    Ok(Arm {
        n: 0.0,
        sum: 0.0,
        m: f64::NAN,
        v: f64::NAN,
        sd: f64::NAN,
        covariate: None,
    })
}

/// An arm with fewer units than its metric needs, in a request that asked for `null` figures
/// then ([`super::InsufficientData::Null`]): its sums must still be finite, and every figure
/// derived from it is undefined, as for an [`empty`] arm.
pub(crate) fn insufficient(
    s: &SufficientStats,
    path: &dyn Fn() -> String,
) -> Result<Arm, StatsError> {
    undefined_arm(
        s,
        path,
        |x| !x.is_finite(),
        |x| format!("{x} is not a finite number"),
    )
}

/// The arm of a 0% variant that has seen no unit (count 0): every figure derived from it is
/// undefined (NaN here, `null` in the report). Its sums must be 0 as well.
pub(crate) fn empty(s: &SufficientStats, path: &dyn Fn() -> String) -> Result<Arm, StatsError> {
    undefined_arm(
        s,
        path,
        |x| x != 0.0,
        |x| format!("{x} is not 0, but count is 0"),
    )
}

/// Validates one arm's statistics for `kind` and computes its m and v.
///
/// # Formula
///
/// n = count, S = sum, Q = sumSquares:
/// - proportion: m = S/n, v = m(1 − m)
/// - mean: m = S/n, v = (Q − S²/n)/(n − 1)
/// - ratio: m = S/Sy, v = (vx − 2·m·cxy + m²·vy)/ȳ², which equals
///   vx/ȳ² − 2·x̄·cxy/ȳ³ + x̄²·vy/ȳ⁴ (delta method; Deng, Knoblich & Lu 2018, "Applying the
///   delta method in metric analytics").
pub(crate) fn estimate(
    kind: MetricKind,
    s: &SufficientStats,
    path: &dyn Fn() -> String,
) -> Result<Arm, StatsError> {
    let field = |name: &'static str| FieldPath { arm: path, name };
    let count = s.count;
    let min_count = kind.min_count();
    if count < min_count {
        return Err(invalid(
            field("count"),
            format!(
                "{count} is less than {min_count} for a {} metric",
                kind.as_str()
            ),
        ));
    }
    #[allow(clippy::cast_precision_loss)]
    let n = count as f64;
    let sum = finite_field(s.sum, field("sum"))?;
    let unused = |name: &'static str, value: Option<f64>| -> Result<(), StatsError> {
        match value {
            Some(x) => Err(invalid(
                field(name).render(),
                format!("{x} is not used by a {} metric", kind.as_str()),
            )),
            None => Ok(()),
        }
    };
    let (m, v, sd) = match kind {
        MetricKind::Proportion => {
            if sum < 0.0 {
                return Err(invalid(field("sum").render(), format!("{sum} is negative")));
            }
            if sum.fract() != 0.0 {
                return Err(invalid(
                    field("sum").render(),
                    format!("{sum} is not an integer"),
                ));
            }
            if sum > n {
                return Err(invalid(
                    field("sum").render(),
                    format!("{sum} is greater than count {count}"),
                ));
            }
            unused("sumSquares", s.sum_squares)?;
            unused("denominatorSum", s.denominator_sum)?;
            unused("denominatorSumSquares", s.denominator_sum_squares)?;
            unused("sumProducts", s.sum_products)?;
            let m = sum / n;
            let v = m * (1.0 - m);
            (m, v, v.sqrt())
        }
        MetricKind::Mean => {
            let q = non_negative(
                required(s.sum_squares, field("sumSquares"))?,
                field("sumSquares"),
            )?;
            unused("denominatorSum", s.denominator_sum)?;
            unused("denominatorSumSquares", s.denominator_sum_squares)?;
            unused("sumProducts", s.sum_products)?;
            let v = variance(q, sum, n, field("sumSquares"))?;
            (sum / n, v, v.sqrt())
        }
        MetricKind::Ratio => {
            let q = non_negative(
                required(s.sum_squares, field("sumSquares"))?,
                field("sumSquares"),
            )?;
            let sy_path = field("denominatorSum");
            let sy = non_negative(required(s.denominator_sum, sy_path)?, sy_path)?;
            if sy == 0.0 {
                return Err(invalid(
                    sy_path.render(),
                    "0 is not positive, a ratio needs a positive denominator",
                ));
            }
            let qy_path = field("denominatorSumSquares");
            let qy = non_negative(required(s.denominator_sum_squares, qy_path)?, qy_path)?;
            let sp_path = field("sumProducts");
            let sxy = finite_field(required(s.sum_products, sp_path)?, sp_path)?;
            for name in [
                "covariateSum",
                "covariateSumSquares",
                "covariateSumProducts",
            ] {
                let value = match name {
                    "covariateSum" => s.covariate_sum,
                    "covariateSumSquares" => s.covariate_sum_squares,
                    _ => s.covariate_sum_products,
                };
                unused(name, value)?;
            }
            let vx = variance(q, sum, n, field("sumSquares"))?;
            let vy = variance(qy, sy, n, qy_path)?;
            let cxy = covariance(sxy, sum, sy, n, sp_path)?;
            let m = sum / sy;
            let y_bar = sy / n;
            // m·(m·vy), not m²·vy: m² alone overflows for ratios beyond 1e±154 whose variance
            // terms are all of the order of vx
            let m_vy = m * (m * vy);
            let raw = vx - 2.0 * m * cxy + m_vy;
            let scale = vx + (2.0 * m * cxy).abs() + m_vy;
            if raw < -ROUNDING_SLACK * scale {
                return Err(invalid(
                    sp_path.render(),
                    format!(
                        "{sxy} is inconsistent with sumSquares {q} and denominatorSumSquares {qy}"
                    ),
                ));
            }
            subnormal_result(raw, "delta-method variance", sp_path)?;
            if !raw.is_finite() {
                return Err(invalid(
                    sp_path.render(),
                    format!(
                        "{sxy} with sums {sum} and {sy} gives a delta-method variance that overflows a double"
                    ),
                ));
            }
            // √raw/ȳ rather than raw/ȳ²: the unit variance itself may not fit in a double
            let sd = raw.max(0.0).sqrt() / y_bar;
            (m, sd * sd, sd)
        }
    };
    // Below the normal range a double keeps too few digits for a trustworthy interval.
    if sd > 0.0 && sd / n.sqrt() < f64::MIN_POSITIVE {
        return Err(invalid(
            field("sumSquares").render(),
            format!(
                "gives a standard error of {:e}, below the normal range of a double (2.2e-308); rescale the metric",
                sd / n.sqrt()
            ),
        ));
    }
    if !sd.is_finite() {
        return Err(invalid(
            field("sumSquares").render(),
            format!("gives a standard deviation of {sd}, beyond the range of a double"),
        ));
    }
    let covariate = covariate(kind, s, sum, n, sd, path)?;
    Ok(Arm {
        n,
        sum,
        m,
        v,
        sd,
        covariate,
    })
}

/// The covariate's moments, refusing sums that no data can produce: |cov(c, value)| may not
/// exceed sd(c)·sd(value) (Cauchy–Schwarz), with sample moments of n − 1 denominators.
/// `value_sd` is the arm's unit sd, √(m(1 − m)) for a proportion, whose sample form is
/// √(m(1 − m)·n/(n − 1)).
fn covariate(
    kind: MetricKind,
    s: &SufficientStats,
    value_sum: f64,
    n: f64,
    value_sd: f64,
    path: &dyn Fn() -> String,
) -> Result<Option<Covariate>, StatsError> {
    let field = |name: &'static str| FieldPath { arm: path, name };
    let fields = [
        ("covariateSum", s.covariate_sum),
        ("covariateSumSquares", s.covariate_sum_squares),
        ("covariateSumProducts", s.covariate_sum_products),
    ];
    let given = fields.iter().filter(|(_, v)| v.is_some()).count();
    if given == 0 || kind == MetricKind::Ratio {
        return Ok(None);
    }
    if let Some((missing, _)) = fields.iter().find(|(_, v)| v.is_none()) {
        return Err(invalid(
            format!("{}.{missing}", path()),
            "missing; covariateSum, covariateSumSquares and covariateSumProducts go together",
        ));
    }
    if n < 2.0 {
        return Err(invalid(
            format!("{}.count", path()),
            "1 is less than 2, needed with a covariate",
        ));
    }
    let csum = finite_field(s.covariate_sum.unwrap_or_default(), field("covariateSum"))?;
    let cq_path = field("covariateSumSquares");
    let cq = non_negative(s.covariate_sum_squares.unwrap_or_default(), cq_path)?;
    let cp_path = field("covariateSumProducts");
    let cp = finite_field(s.covariate_sum_products.unwrap_or_default(), cp_path)?;
    let variance = variance(cq, csum, n, cq_path)?;
    let covariance = covariance(cp, csum, value_sum, n, cp_path)?;
    let sample_sd = if kind == MetricKind::Proportion {
        value_sd * (n / (n - 1.0)).sqrt()
    } else {
        value_sd
    };
    // rounding of Σc·value − Σc·Σvalue/n, relative to its terms
    let slack = ROUNDING_SLACK * (cp.abs() + (csum * (value_sum / n)).abs()) / (n - 1.0);
    let bound = variance.sqrt() * sample_sd;
    if covariance.abs() > bound * (1.0 + ROUNDING_SLACK) + slack {
        let value_field = match kind {
            MetricKind::Proportion => "sum",
            MetricKind::Mean | MetricKind::Ratio => "sumSquares",
        };
        let value_total = match kind {
            MetricKind::Proportion => value_sum,
            MetricKind::Mean | MetricKind::Ratio => s.sum_squares.unwrap_or_default(),
        };
        return Err(invalid(
            cp_path,
            format!(
                "{cp} is inconsistent with covariateSumSquares {cq} and {value_field} {value_total}: \
                 |covariance| {:e} exceeds sd(covariate)·sd(value) = {bound:e}, which no data can produce",
                covariance.abs()
            ),
        ));
    }
    Ok(Some(Covariate {
        sum: csum,
        sum_squares: cq,
        sum_products: cp,
        variance,
        covariance,
    }))
}

/// The path of one field of one arm, rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) struct FieldPath<'a> {
    arm: &'a dyn Fn() -> String,
    name: &'static str,
}

impl FieldPath<'_> {
    fn render(self) -> String {
        format!("{}.{}", (self.arm)(), self.name)
    }
}

impl From<FieldPath<'_>> for String {
    fn from(path: FieldPath<'_>) -> Self {
        path.render()
    }
}

fn required(value: Option<f64>, path: FieldPath<'_>) -> Result<f64, StatsError> {
    value.ok_or_else(|| invalid(path.render(), "missing field"))
}

fn finite_field(x: f64, path: FieldPath<'_>) -> Result<f64, StatsError> {
    if !x.is_finite() {
        Err(invalid(
            path.render(),
            format!("{x} is not a finite number"),
        ))
    } else if x != 0.0 && x.abs() < f64::MIN_POSITIVE {
        Err(invalid(
            path.render(),
            format!(
                "{x:e} is subnormal: below 2.2e-308 a double keeps too few digits; rescale the metric"
            ),
        ))
    } else {
        Ok(x)
    }
}

fn non_negative(x: f64, path: FieldPath<'_>) -> Result<f64, StatsError> {
    let x = finite_field(x, path)?;
    if x < 0.0 {
        Err(invalid(path.render(), format!("{x} is negative")))
    } else {
        Ok(x)
    }
}

/// Refuses a derived second moment that fell below the normal range of a double, where it
/// keeps too few digits to build an interval on.
fn subnormal_result(x: f64, what: &str, path: FieldPath<'_>) -> Result<(), StatsError> {
    if x != 0.0 && x.abs() < f64::MIN_POSITIVE {
        Err(invalid(
            path,
            format!(
                "gives a {what} of {x:e}, below the normal range of a double (2.2e-308); rescale the metric"
            ),
        ))
    } else {
        Ok(())
    }
}

/// Sample variance (n − 1 denominator) from Σx² and Σx, rejecting sums no data can produce.
fn variance(sum_squares: f64, sum: f64, n: f64, path: FieldPath<'_>) -> Result<f64, StatsError> {
    let square_of_sum = sum * (sum / n);
    let diff = sum_squares - square_of_sum;
    if !diff.is_finite() {
        return Err(invalid(
            path,
            format!("{sum_squares} with sum {sum} overflows a double"),
        ));
    }
    if diff < 0.0 {
        if -diff <= ROUNDING_SLACK * sum_squares.max(square_of_sum) {
            return Ok(0.0);
        }
        return Err(invalid(
            path,
            format!(
                "{sum_squares} is less than sum²/count = {square_of_sum}, which no data can produce"
            ),
        ));
    }
    let v = diff / (n - 1.0);
    subnormal_result(v, "variance", path)?;
    finite_field(v, path)
}

/// Sample covariance (n − 1 denominator) from Σab, Σa and Σb.
fn covariance(
    sum_products: f64,
    sum_a: f64,
    sum_b: f64,
    n: f64,
    path: FieldPath<'_>,
) -> Result<f64, StatsError> {
    let c = (sum_products - sum_a * (sum_b / n)) / (n - 1.0);
    if c.is_finite() {
        Ok(c)
    } else {
        Err(invalid(
            path,
            format!("{sum_products} with sums {sum_a} and {sum_b} overflows a double"),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    #[test]
    fn mean_variance_matches_numpy() {
        // values 1, 2, 3, 4: mean 2.5, var(ddof=1) 1.6666…
        let arm = estimate(
            MetricKind::Mean,
            &SufficientStats::mean(4, 10.0, 30.0),
            &|| "x".to_string(),
        )
        .unwrap();
        assert_eq!(arm.m, 2.5);
        assert!((arm.v - 5.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn ratio_delta_variance() {
        // x = [1, 2, 3], y = [2, 2, 4]: m = 6/8; vx = 1, vy = 4/3, cxy = 1
        // v = (1 − 2·0.75·1 + 0.5625·4/3)/(8/3)² = 0.25/7.111… = 0.03515625
        let s = SufficientStats::ratio(3, 6.0, 14.0, 8.0, 24.0, 18.0);
        let arm = estimate(MetricKind::Ratio, &s, &|| "x".to_string()).unwrap();
        assert_eq!(arm.m, 0.75);
        assert!((arm.v - 0.035_156_25).abs() < 1e-15);
    }

    #[test]
    fn bad_input_names_the_field() {
        let p = |c, s| SufficientStats {
            count: c,
            sum: s,
            ..SufficientStats::default()
        };
        let cases = [
            (
                MetricKind::Proportion,
                p(250, 300.0),
                "x.sum",
                "300 is greater than count 250",
            ),
            (
                MetricKind::Proportion,
                p(250, 2.5),
                "x.sum",
                "2.5 is not an integer",
            ),
            (
                MetricKind::Proportion,
                p(0, 0.0),
                "x.count",
                "0 is less than 1 for a proportion metric",
            ),
            (
                MetricKind::Mean,
                SufficientStats::mean(1, 1.0, 1.0),
                "x.count",
                "1 is less than 2 for a mean metric",
            ),
            (
                MetricKind::Mean,
                SufficientStats::mean(5, 1.0, -1.0),
                "x.sumSquares",
                "-1 is negative",
            ),
            (
                MetricKind::Ratio,
                SufficientStats::ratio(5, 1.0, 1.0, 0.0, 1.0, 1.0),
                "x.denominatorSum",
                "0 is not positive, a ratio needs a positive denominator",
            ),
            (
                MetricKind::Mean,
                SufficientStats::mean(5, f64::NAN, 1.0),
                "x.sum",
                "NaN is not a finite number",
            ),
            (
                MetricKind::Mean,
                SufficientStats::mean(4, 10.0, 20.0),
                "x.sumSquares",
                "20 is less than sum²/count = 25, which no data can produce",
            ),
        ];
        for (kind, stats, field, reason) in cases {
            let err = estimate(kind, &stats, &|| "x".to_string()).unwrap_err();
            assert_eq!(err, invalid(field, reason));
        }
        let partial = SufficientStats {
            covariate_sum: Some(1.0),
            ..SufficientStats::mean(4, 10.0, 30.0)
        };
        assert_eq!(
            estimate(MetricKind::Mean, &partial, &|| "x".to_string())
                .unwrap_err()
                .field(),
            Some("x.covariateSumSquares")
        );
        let on_ratio =
            SufficientStats::ratio(3, 6.0, 14.0, 8.0, 24.0, 18.0).with_covariate(1.0, 1.0, 1.0);
        assert_eq!(
            estimate(MetricKind::Ratio, &on_ratio, &|| "x".to_string())
                .unwrap_err()
                .field(),
            Some("x.covariateSum")
        );
    }

    #[test]
    fn subnormal_sums_and_moments_are_refused() {
        // a mean of 1e-160 with sd 1e-161 over 100 units: Σx² ≈ 1.01e-318 is subnormal
        let err = estimate(
            MetricKind::Mean,
            &SufficientStats::mean(100, 1e-158, 1.01e-318),
            &|| "x".to_string(),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("x.sumSquares"), "{err}");
        assert!(err.to_string().contains("subnormal"), "{err}");
        // a ratio of magnitude 1e300 keeps a finite standard deviation though v overflows
        // (the control arm of stats-magnitudes.json's case; sd = 2.5e299 from mpmath)
        let s = SufficientStats::ratio(100, 5e152, 2.52475e303, 2e-148, 4.0396e-298, 1004.95);
        let arm = estimate(MetricKind::Ratio, &s, &|| "x".to_string()).unwrap();
        assert!((arm.sd / 2.5e299 - 1.0).abs() < 1e-9, "{arm:?}");
    }

    #[test]
    fn covariate_products_must_satisfy_cauchy_schwarz() {
        // var(c) = 16, var(value) = 16.81: |Σc·v − Σc·Σv/n| ≤ 999·√(16·16.81) = 16 383.6…
        let arm = |cp: f64| {
            SufficientStats::mean(1000, 10200.0, 120_833.19).with_covariate(9800.0, 112_024.0, cp)
        };
        for cp in [110_949.0, 99_960.0 + 16_383.0, 99_960.0 - 16_383.0] {
            assert!(estimate(MetricKind::Mean, &arm(cp), &|| "x".to_string()).is_ok());
        }
        for cp in [99_960.0 + 16_385.0, 2e6, -1e300] {
            let err = estimate(MetricKind::Mean, &arm(cp), &|| "x".to_string()).unwrap_err();
            assert_eq!(err.field(), Some("x.covariateSumProducts"), "{err}");
            assert!(err.to_string().contains("inconsistent"), "{err}");
        }
        // a proportion: 100 of 1000 converted, var(value) = 0.1·0.9·1000/999, var(c) = 0.45045…
        let p = |cp: f64| SufficientStats::proportion(1000, 100).with_covariate(500.0, 700.0, cp);
        assert!(estimate(MetricKind::Proportion, &p(80.0), &|| "x".to_string()).is_ok());
        let err = estimate(MetricKind::Proportion, &p(5000.0), &|| "x".to_string()).unwrap_err();
        assert_eq!(err.field(), Some("x.covariateSumProducts"), "{err}");
    }
}
