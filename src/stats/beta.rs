//! Chance to beat control for proportions: P(p_T > p_C) under independent Beta posteriors.
//!
//! Two methods, both with a cost independent of the counts' size:
//! - **exact sum** (Evan Miller, "Formulas for Bayesian A/B testing", 2015) over the smallest of
//!   the four Beta parameters when it is at most [`EXACT_MAX_TERMS`]; each term follows from the
//!   previous one by a rational factor, so only the first needs log-Beta functions;
//! - otherwise every parameter exceeds 1000, so both posteriors hold all but 10⁻¹⁰ of their
//!   mass within ±7 standard deviations (skewness ≤ 2/√1000), and P(X₁ > X₂) = ∫ f₁(x)·F₂(x) dx
//!   is computed with composite 16-point Gauss–Legendre quadrature over the narrower posterior
//!   (7 panels of 2 sd; interpolation error of a panel below 10⁻¹¹), F₂ being
//!   accumulated panel by panel with the Gauss–Legendre cumulative-integration matrix. The
//!   densities are evaluated relative to their mean with `ln_1p` and a Stirling-series log-Beta,
//!   so no digits are lost to ln Γ of huge arguments.

use std::f64::consts::{LN_10, PI};
use std::sync::OnceLock;

use statrs::function::gamma::ln_gamma;

/// Largest smallest-parameter handled by the exact sum.
pub(crate) const EXACT_MAX_TERMS: f64 = 1000.0;

/// P(p_T > p_C) with p ~ Beta(1 + conversions, 1 + count − conversions).
///
/// # Formula
///
/// P(X_T > X_C) for X ~ Beta(1 + S, 1 + n − S); exact Beta sum
/// Σ_{i<α_B} B(α_A + i, β_A + β_B) / ((β_B + i)·B(1 + i, β_B)·B(α_A, β_A)) (Evan Miller 2015)
/// or quadrature of ∫ f_T·F_C (see the module docs).
pub(crate) fn chance_to_beat(
    control_n: f64,
    control_sum: f64,
    treat_n: f64,
    treat_sum: f64,
) -> f64 {
    // 1 + (n − S), not 1 + n − S: above 2⁵³ the latter rounds the (small) failure count
    prob_greater(
        1.0 + treat_sum,
        1.0 + (treat_n - treat_sum),
        1.0 + control_sum,
        1.0 + (control_n - control_sum),
    )
}

/// P(X₁ > X₂) for X₁ ~ Beta(a1, b1), X₂ ~ Beta(a2, b2), integer parameters ≥ 1.
pub(crate) fn prob_greater(a1: f64, b1: f64, a2: f64, b2: f64) -> f64 {
    let smallest = a1.min(b1).min(a2).min(b2);
    let p = if smallest > EXACT_MAX_TERMS {
        quadrature(a1, b1, a2, b2)
    } else if smallest == a1 {
        exact_b_greater(a2, b2, a1, b1)
    } else if smallest == a2 {
        1.0 - exact_b_greater(a1, b1, a2, b2)
    } else if smallest == b1 {
        // 1 − P(1 − X₁ > 1 − X₂), 1 − X ~ Beta(b, a)
        1.0 - exact_b_greater(b2, a2, b1, a1)
    } else {
        exact_b_greater(b1, a1, b2, a2)
    };
    p.clamp(0.0, 1.0)
}

/// P(X_B > X_A), summing α_B terms (α_B a positive integer).
pub(crate) fn exact_b_greater(alpha_a: f64, beta_a: f64, alpha_b: f64, beta_b: f64) -> f64 {
    const RESCALE: f64 = 1e200;
    let first = ln_beta_shift(alpha_a, beta_a, beta_b);
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    let mut scale = 0.0_f64;
    let mut i = 0.0_f64;
    while i + 1.0 < alpha_b {
        term *= (alpha_a + i) * (beta_b + i) / ((alpha_a + beta_a + beta_b + i) * (1.0 + i));
        sum += term;
        if sum > RESCALE {
            sum /= RESCALE;
            term /= RESCALE;
            scale += 200.0 * LN_10;
        }
        i += 1.0;
    }
    (first + scale + sum.ln()).exp().clamp(0.0, 1.0)
}

/// Stirling-series remainder ln Γ(x) − [(x − ½)ln x − x + ½ ln 2π], for x ≥ 10.
fn stirling_correction(x: f64) -> f64 {
    let x2 = x * x;
    (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * x2)) / x2) / x2) / x
}

/// ln B(a, b), accurate for huge arguments (no cancellation between ln Γ values).
pub(crate) fn ln_beta(a: f64, b: f64) -> f64 {
    let (small, large) = if a < b { (a, b) } else { (b, a) };
    let s = small + large;
    if large < 10.0 {
        ln_gamma(small) + ln_gamma(large) - ln_gamma(s)
    } else if small < 10.0 {
        // ln Γ(large) − ln Γ(s) by Stirling differences
        ln_gamma(small) - (large - 0.5) * (small / large).ln_1p() - small * s.ln()
            + small
            + stirling_correction(large)
            - stirling_correction(s)
    } else {
        0.5 * (2.0 * PI / s).ln()
            + (small - 0.5) * (small / s).ln()
            + (large - 0.5) * (-small / s).ln_1p()
            + stirling_correction(small)
            + stirling_correction(large)
            - stirling_correction(s)
    }
}

/// ln B(a, b + c) − ln B(a, b) = [ln Γ(b + c) − ln Γ(b)] − [ln Γ(a + b + c) − ln Γ(a + b)],
/// combined term by term so that huge a, b, c do not cancel catastrophically.
///
/// The difference is symmetric in a and c; it is evaluated with c the smaller of the two, so that
/// every term is of order c·ln(…) and the rounding error stays near ε·c·ln(…), not ε·(a + b).
/// (With few conversions and 10¹⁵ units, a ≈ b ≈ 10¹⁵ and c a handful: shifting by the huge
/// argument instead left terms of 10¹⁴ that cancel to a result of order 1.)
pub(crate) fn ln_beta_shift(a: f64, b: f64, c: f64) -> f64 {
    let (a, c) = if c > a { (c, a) } else { (a, c) };
    if b < 10.0 {
        return ln_beta(c, b + a) - ln_beta(c, b);
    }
    let ab = a + b;
    (b - 0.5) * (c / b).ln_1p() - (ab - 0.5) * (c / ab).ln_1p() - c * (a / (b + c)).ln_1p()
        + stirling_correction(b + c)
        - stirling_correction(b)
        - stirling_correction(ab + c)
        + stirling_correction(ab)
}

/// A Beta density evaluated at an offset from its mean.
#[derive(Debug, Clone, Copy)]
struct BetaDensity {
    a: f64,
    b: f64,
    mean: f64,
    complement: f64,
    sd: f64,
    constant: f64,
}

impl BetaDensity {
    fn new(a: f64, b: f64) -> Self {
        let s = a + b;
        let mean = a / s;
        let complement = b / s;
        let sd = (mean * complement / (s + 1.0)).sqrt();
        // ln f(μ + δ) = (a−1)·ln(1 + δ/μ) + (b−1)·ln(1 − δ/(1−μ)) + constant, from the Stirling form
        // of ln B(a, b) with μ = a/s.
        let constant = -0.5 * mean.ln() - 0.5 * complement.ln() + 0.5 * (s / (2.0 * PI)).ln()
            - stirling_correction(a)
            - stirling_correction(b)
            + stirling_correction(s);
        Self {
            a,
            b,
            mean,
            complement,
            sd,
            constant,
        }
    }

    /// f(μ + δ).
    fn pdf(&self, delta: f64) -> f64 {
        let up = delta / self.mean;
        let down = -delta / self.complement;
        if up <= -1.0 || down <= -1.0 {
            return 0.0;
        }
        let log_density =
            (self.a - 1.0) * up.ln_1p() + (self.b - 1.0) * down.ln_1p() + self.constant;
        // exp would underflow anyway; skipping it avoids libm's slow subnormal path
        if log_density < -700.0 {
            0.0
        } else {
            log_density.exp()
        }
    }

    /// ∫ f over [μ + from, μ + to] with panels no wider than 2 sd.
    fn integral(&self, from: f64, to: f64) -> f64 {
        let rule = rule();
        let width = to - from;
        if width <= 0.0 {
            return 0.0;
        }
        let panels = (width / (2.0 * self.sd)).ceil().clamp(1.0, 64.0);
        let h = width / panels;
        let mut total = 0.0;
        let mut p = 0.0;
        while p < panels {
            let start = from + p * h;
            for (t, w) in rule.nodes.iter().zip(&rule.weights) {
                total += w * self.pdf(start + (t + 1.0) * 0.5 * h);
            }
            p += 1.0;
        }
        total * 0.5 * h
    }

    /// F(μ + δ).
    fn cdf(&self, delta: f64) -> f64 {
        const TAIL: f64 = 10.0;
        let z = delta / self.sd;
        if z <= -TAIL {
            0.0
        } else if z >= TAIL {
            1.0
        } else if z <= 0.0 {
            self.integral(-TAIL * self.sd, delta)
        } else {
            1.0 - self.integral(delta, TAIL * self.sd)
        }
    }
}

/// P(X₁ > X₂) by quadrature over the narrower posterior.
fn quadrature(a1: f64, b1: f64, a2: f64, b2: f64) -> f64 {
    let first = BetaDensity::new(a1, b1);
    let second = BetaDensity::new(a2, b2);
    if first.sd <= second.sd {
        outer_times_cdf(&first, &second)
    } else {
        1.0 - outer_times_cdf(&second, &first)
    }
}

/// ∫ f_A(x)·F_B(x) dx, with σ_A ≤ σ_B.
fn outer_times_cdf(a: &BetaDensity, b: &BetaDensity) -> f64 {
    const HALF_SPAN: f64 = 7.0;
    const PANELS: usize = 7;
    let rule = rule();
    #[allow(clippy::cast_precision_loss)]
    let h = 2.0 * HALF_SPAN * a.sd / PANELS as f64;
    let lo = -HALF_SPAN * a.sd;
    // x − μ_B = (μ_A − μ_B) + δ_A
    let shift = a.mean - b.mean;
    let mut cdf_b = b.cdf(shift + lo);
    let mut total = 0.0;
    let mut mass_a = 0.0;
    let mut fb = [0.0; GL_POINTS];
    for panel in 0..PANELS {
        #[allow(clippy::cast_precision_loss)]
        let start = lo + panel as f64 * h;
        for (slot, t) in fb.iter_mut().zip(&rule.nodes) {
            *slot = b.pdf(shift + start + (t + 1.0) * 0.5 * h);
        }
        for ((t, w), row) in rule.nodes.iter().zip(&rule.weights).zip(&rule.cumulative) {
            let partial: f64 = row.iter().zip(&fb).map(|(m, f)| m * f).sum();
            let cdf_at_node = (cdf_b + 0.5 * h * partial).clamp(0.0, 1.0);
            let fa = w * a.pdf(start + (t + 1.0) * 0.5 * h);
            mass_a += fa;
            total += fa * cdf_at_node;
        }
        let whole: f64 = rule.weights.iter().zip(&fb).map(|(w, f)| w * f).sum();
        cdf_b += 0.5 * h * whole;
    }
    // Normalising by the quadrature's own mass of f_A conditions on X_A inside the span, which
    // cancels the (≤ 1e-10) truncation to first order.
    if mass_a > 0.0 {
        (total / mass_a).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

const GL_POINTS: usize = 16;

/// Gauss–Legendre nodes and weights on [−1, 1] and the cumulative-integration matrix
/// `cumulative[i][j] = ∫_{−1}^{t_i} ℓ_j(s) ds` (ℓ_j the Lagrange basis on the nodes).
#[derive(Debug)]
struct Rule {
    nodes: [f64; GL_POINTS],
    weights: [f64; GL_POINTS],
    cumulative: [[f64; GL_POINTS]; GL_POINTS],
}

fn rule() -> &'static Rule {
    static RULE: OnceLock<Rule> = OnceLock::new();
    RULE.get_or_init(build_rule)
}

#[allow(clippy::cast_precision_loss)]
fn build_rule() -> Rule {
    let n = GL_POINTS;
    let mut nodes = [0.0; GL_POINTS];
    let mut weights = [0.0; GL_POINTS];
    for (i, (node, weight)) in nodes.iter_mut().zip(weights.iter_mut()).enumerate() {
        // Newton on P_n from Tricomi's initial guess; nodes come out in descending order.
        let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (p, dp) = legendre(n, x);
            derivative = dp;
            let step = p / dp;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        let (_, dp) = legendre(n, x);
        if dp.is_finite() {
            derivative = dp;
        }
        *node = -x;
        *weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
    }
    let lagrange = |j: usize, s: f64| -> f64 {
        nodes
            .iter()
            .enumerate()
            .filter(|&(m, _)| m != j)
            .map(|(_, &tm)| (s - tm) / (nodes[j] - tm))
            .product()
    };
    let mut cumulative = [[0.0; GL_POINTS]; GL_POINTS];
    for (row, &ti) in cumulative.iter_mut().zip(&nodes) {
        let half = 0.5 * (ti + 1.0);
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = half
                * nodes
                    .iter()
                    .zip(&weights)
                    .map(|(&tk, &wk)| wk * lagrange(j, -1.0 + half * (tk + 1.0)))
                    .sum::<f64>();
        }
    }
    Rule {
        nodes,
        weights,
        cumulative,
    }
}

/// (P_n(x), P_n'(x)) by the three-term recurrence.
#[allow(clippy::cast_precision_loss)]
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let mut p0 = 1.0;
    let mut p1 = x;
    for k in 2..=n {
        let k = k as f64;
        let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
    }
    let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, dp)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values are quoted with all their digits
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_rule_integrates_polynomials() {
        let r = rule();
        let sum: f64 = r.weights.iter().sum();
        assert!((sum - 2.0).abs() < 1e-14);
        // ∫ x^30 over [−1, 1] = 2/31, exact for 16 points
        let x30: f64 = r
            .nodes
            .iter()
            .zip(&r.weights)
            .map(|(x, w)| w * x.powi(30))
            .sum();
        assert!((x30 - 2.0 / 31.0).abs() < 1e-14);
        // cumulative: ∫_{−1}^{t} 3s² ds = t³ + 1
        for (row, t) in r.cumulative.iter().zip(&r.nodes) {
            let v: f64 = row.iter().zip(&r.nodes).map(|(m, s)| m * 3.0 * s * s).sum();
            assert!((v - (t.powi(3) + 1.0)).abs() < 1e-13);
        }
    }

    #[test]
    fn ln_beta_matches_mpmath() {
        // mpmath.log(mpmath.beta(a, b)) at 30 digits
        let cases = [
            (3.0, 4.0, -4.094_344_562_222_100_7),
            (2.5, 1e8, -45.767_019_008_157_994),
            (1e6, 3e6, -2_249_346.423_450_852_7),
            (50.0, 70.0, -82.268_603_968_423_66),
        ];
        for (a, b, expected) in cases {
            let got = ln_beta(a, b);
            assert!(
                (got - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                "{a} {b}: {got}"
            );
        }
    }

    #[test]
    fn ln_beta_shift_survives_huge_parameters() {
        // mpmath: log(beta(a, b + c)) − log(beta(a, b)) at 60 digits
        let cases = [
            (
                8.090_940_224_492_693e15,
                9.162_590_304_82e14,
                3.0,
                -6.856_441_034_122_007,
            ),
            (50.0, 70.0, 30.0, -14.040_917_270_983_49),
            // a few conversions against 1e15 / 1e18 units: shifting by the huge argument
            // used to cancel terms of 1e14 (-2.7906… here, and worse at 1e18)
            (
                4.0,
                999_999_999_999_998.0,
                1e15,
                -2.772_588_722_239_782_237_7,
            ),
            (6.0, 1e18, 1e18, -4.158_883_083_359_671_849),
            (3.0, 5.0, 1e16, -105.176_976_932_996_725_95),
        ];
        for (a, b, c, expected) in cases {
            let got = ln_beta_shift(a, b, c);
            assert!((got - expected).abs() < 1e-12, "{a} {b} {c}: {got}");
        }
    }

    #[test]
    fn exact_sum_matches_mpmath_quadrature() {
        // P(X1 > X2) = mpmath.quad(lambda x: betapdf(x; a1, b1) * betainc(a2, b2, 0, x, regularized))
        let cases = [
            (1.0, 1.0, 1.0, 1.0, 0.5),
            (68.0, 184.0, 46.0, 206.0, 0.990_761_615_963_819_5),
            (2.0, 9.0, 5.0, 3.0, 0.017_533_936_651_583_71),
        ];
        for (a1, b1, a2, b2, expected) in cases {
            let got = prob_greater(a1, b1, a2, b2);
            assert!((got - expected).abs() < 1e-10, "{a1} {b1} {a2} {b2}: {got}");
        }
    }

    #[test]
    fn quadrature_agrees_with_the_exact_sum() {
        // parameters just above the exact-sum threshold, where both methods apply
        let cases = [
            (1201.0, 8801.0, 1101.0, 8901.0),
            (1001.0, 1001.0, 1051.0, 1001.0),
            (2500.0, 40000.0, 1500.0, 30000.0),
            (5001.0, 5001.0, 5001.0, 5001.0),
            (1100.0, 20000.0, 3000.0, 3000.0),
        ];
        for (a1, b1, a2, b2) in cases {
            let exact = exact_b_greater(a2, b2, a1, b1);
            let quad = quadrature(a1, b1, a2, b2);
            assert!(
                (exact - quad).abs() < 1e-9,
                "{a1} {b1} {a2} {b2}: {exact} vs {quad}"
            );
        }
    }

    #[test]
    fn symmetric_and_complementary() {
        assert!((prob_greater(5e5, 5e5, 5e5, 5e5) - 0.5).abs() < 1e-12);
        let p = prob_greater(30.0, 70.0, 40.0, 60.0);
        let q = prob_greater(40.0, 60.0, 30.0, 70.0);
        assert!((p + q - 1.0).abs() < 1e-12);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 200,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0001),
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn prop_the_two_orderings_sum_to_one(
            a1 in 1_u32..3000, b1 in 1_u32..3000, a2 in 1_u32..3000, b2 in 1_u32..3000,
        ) {
            let (a1, b1, a2, b2) = (f64::from(a1), f64::from(b1), f64::from(a2), f64::from(b2));
            let p = prob_greater(a1, b1, a2, b2);
            let q = prob_greater(a2, b2, a1, b1);
            proptest::prop_assert!((0.0..=1.0).contains(&p));
            proptest::prop_assert!((p + q - 1.0).abs() < 1e-9, "{} + {} ≠ 1", p, q);
        }

        #[test]
        fn prop_quadrature_matches_the_exact_sum(
            a1 in 1001_u32..4000, b1 in 1001_u32..40_000, shift in -200_i32..200, b2 in 1001_u32..40_000,
        ) {
            let a2 = f64::from(a1.saturating_add_signed(shift).max(1001));
            let (a1, b1, b2) = (f64::from(a1), f64::from(b1), f64::from(b2));
            let exact = exact_b_greater(a2, b2, a1, b1);
            let quad = quadrature(a1, b1, a2, b2);
            proptest::prop_assert!((exact - quad).abs() < 1e-9, "{} vs {}", exact, quad);
        }
    }
}
