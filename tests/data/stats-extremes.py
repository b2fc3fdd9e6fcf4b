"""Generates stats-extremes.json: analysis cases at extreme counts, magnitudes and levels.

Every expected figure is computed here from STATS.md's formulas in mpmath at 60 significant digits,
from the exact double values written into each case's input, independently of abkit's code.
Run (mpmath 1.3):
    python3 tests/data/stats-extremes.py chance > tests/data/stats-chance.json
    python3 tests/data/stats-extremes.py magnitudes > tests/data/stats-magnitudes.json
"""

import json
import sys

import mpmath as mp

mp.mp.dps = 60
HALF = mp.mpf(1) / 2


def f(x):
    """Nearest double of an mpmath value, as a JSON number."""
    return float(x)


# ---------------------------------------------------------------- distributions


def norm_sf(x):
    return mp.ncdf(-x)


def norm_upper(tail):
    return -mp.sqrt(2) * mp.erfinv(2 * tail - 1) if tail > mp.mpf("1e-30") else mp.findroot(
        lambda x: norm_sf(x) - tail, mp.sqrt(-2 * mp.log(tail)))


def t_sf(x, df):
    """P(T_df > x) for x >= 0."""
    return HALF * mp.betainc(df / 2, HALF, 0, df / (df + x * x), regularized=True)


def t_upper(tail, df):
    z = norm_upper(tail)
    return mp.findroot(lambda x: t_sf(x, df) - tail, z)


# ---------------------------------------------------------------- exact Beta chance


def ln_beta(a, b):
    return mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)


def prob_b_greater(aa, ba, ab, bb):
    """P(X_B > X_A), X ~ Beta: Evan Miller's sum over alpha_B terms, at 60 digits."""
    total = mp.mpf(0)
    base = ln_beta(aa, ba)
    for i in range(int(ab)):
        total += mp.exp(ln_beta(aa + i, ba + bb) - mp.log(bb + i) - ln_beta(1 + i, bb) - base)
    return total


def chance(n_c, s_c, n_t, s_t):
    """P(p_T > p_C) with Beta(1 + S, 1 + n - S) posteriors; the sum runs over the smaller shape."""
    at, bt = 1 + mp.mpf(s_t), 1 + mp.mpf(n_t) - s_t
    ac, bc = 1 + mp.mpf(s_c), 1 + mp.mpf(n_c) - s_c
    smallest = min(at, bt, ac, bc)
    if smallest == at:
        return prob_b_greater(ac, bc, at, bt)
    if smallest == ac:
        return 1 - prob_b_greater(at, bt, ac, bc)
    # 1 - p ~ Beta(b, a): P(p_T > p_C) = P(1 - p_C > 1 - p_T)
    if smallest == bc:
        return prob_b_greater(bt, at, bc, ac)
    return 1 - prob_b_greater(bc, ac, bt, at)


# ---------------------------------------------------------------- contract formulas


def arm_stats(kind, d):
    n = mp.mpf(d["count"])
    s = mp.mpf(d["sum"])
    if kind == "proportion":
        m = s / n
        return n, m, m * (1 - m)
    if kind == "mean":
        q = mp.mpf(d["sumSquares"])
        return n, s / n, (q - s * s / n) / (n - 1)
    q = mp.mpf(d["sumSquares"])
    sy = mp.mpf(d["denominatorSum"])
    qy = mp.mpf(d["denominatorSumSquares"])
    sp = mp.mpf(d["sumProducts"])
    xb, yb = s / n, sy / n
    vx = (q - s * s / n) / (n - 1)
    vy = (qy - sy * sy / n) / (n - 1)
    cxy = (sp - s * sy / n) / (n - 1)
    v = vx / yb**2 - 2 * xb * cxy / yb**3 + xb**2 * vy / yb**4
    return n, s / sy, v


def covariate_moments(kind, d):
    n = mp.mpf(d["count"])
    cs, cq, cp = (mp.mpf(d[k]) for k in ("covariateSum", "covariateSumSquares", "covariateSumProducts"))
    s = mp.mpf(d["sum"])
    return cs, cq, cp, (cq - cs * cs / n) / (n - 1), (cp - cs * s / n) / (n - 1)


def expected_for(case_input):
    """Every variant's value/CI and every comparison's figures per STATS.md."""
    level = mp.mpf(case_input.get("confidenceLevel", 0.95))
    alpha = 1 - level
    variants = case_input["variants"]
    control = variants[0]["id"]
    out = {}
    for metric in case_input["metrics"]:
        kind, name, data = metric["kind"], metric["name"], metric["data"]
        nc, mc, vc = arm_stats(kind, data[control])
        for v in variants:
            vid = v["id"]
            n, m, var = arm_stats(kind, data[vid])
            q = t_upper(alpha / 2, n - 1) if kind == "mean" else norm_upper(alpha / 2)
            res = {"value": f(m), "ciLower": f(m - q * mp.sqrt(var / n)), "ciUpper": f(m + q * mp.sqrt(var / n))}
            if vid != control:
                cuped = "covariateSum" in data[vid] and "covariateSum" in data[control]
                mt_adj, vt_adj, mc_adj, vc_adj = m, var, mc, vc
                if cuped:
                    ccs, ccq, ccp, cvc, ccov = covariate_moments(kind, data[control])
                    tcs, tcq, tcp, tvc, tcov = covariate_moments(kind, data[vid])
                    npool = n + nc
                    sc = ccs + tcs
                    sv = mp.mpf(data[control]["sum"]) + mp.mpf(data[vid]["sum"])
                    centred_c = ccq + tcq - sc * sc / npool
                    theta = (ccp + tcp - sc * sv / npool) / centred_c if centred_c > 0 else mp.mpf(0)
                    mt_adj = m - theta * tcs / n
                    vt_adj = var + theta**2 * tvc - 2 * theta * tcov
                    mc_adj = mc - theta * ccs / nc
                    vc_adj = vc + theta**2 * cvc - 2 * theta * ccov
                d = mt_adj - mc_adj
                se = mp.sqrt(vt_adj / n + vc_adj / nc)
                if kind == "mean":
                    a, b = vt_adj / n, vc_adj / nc
                    df = (a + b) ** 2 / (a * a / (n - 1) + b * b / (nc - 1))
                    qd = t_upper(alpha / 2, df)
                    p = 2 * t_sf(abs(d / se), df)
                else:
                    qd = norm_upper(alpha / 2)
                    p = 2 * norm_sf(abs(d / se))
                r = d / abs(mc)
                if cuped:
                    ratio = m / mc
                    lvar = vt_adj / (n * mc**2) + (vc * ratio**2 - 2 * theta * ccov * ratio + theta**2 * cvc) / (nc * mc**2)
                else:
                    lvar = var / (n * mc**2) + m**2 * vc / (nc * mc**4)
                ls = mp.sqrt(lvar)
                if kind == "proportion":
                    ctb = chance(data[control]["count"], data[control]["sum"], data[vid]["count"], data[vid]["sum"])
                else:
                    ctb = mp.ncdf(d / se)
                res.update({
                    "difference": f(d), "differenceCiLower": f(d - qd * se), "differenceCiUpper": f(d + qd * se),
                    "pValue": f(p), "lift": f(r), "liftCiLower": f(r - qd * ls), "liftCiUpper": f(r + qd * ls),
                    "chanceToBeatControl": f(ctb),
                })
            out.setdefault(vid, {})[name] = res
    return out


def recommendation_for(case_input, expected_variants):
    """Winner 'treatment' (every magnitude case is clearly significant), its chance and the MDE
    at power 0.8 for a mean or ratio primary metric: sqrt((z_{1-a/2} + z_0.8)^2 * 2v/n)/|m|."""
    level = mp.mpf(case_input.get("confidenceLevel", 0.95))
    metric = case_input["metrics"][0]
    n, m, v = arm_stats(metric["kind"], metric["data"]["control"])
    n_min = min(mp.mpf(d["count"]) for d in metric["data"].values())
    k = (norm_upper((1 - level) / 2) + norm_upper(mp.mpf("0.2"))) ** 2
    cmp = expected_variants["treatment"][metric["name"]]
    return {"winner": "treatment", "confidence": cmp["chanceToBeatControl"],
            "minimumDetectableEffect": f(mp.sqrt(k * 2 * v / n_min) / abs(m))}


def two_arms(n_c, n_t, **extra):
    return dict(variants=[{"id": "control", "participants": n_c, "expectedShare": 1},
                          {"id": "treatment", "participants": n_t, "expectedShare": 1}], **extra)


SECTION = sys.argv[1] if len(sys.argv) > 1 else "chance"
chance_cases, magnitude_cases = [], []
cases = chance_cases

# ---- 14: exact Beta chance at huge counts with few conversions (1e2 .. 1e18 units per arm)
pairs = [(0, 0), (1, 3), (3, 1), (5, 9), (0, 2), (10, 20), (40, 50), (100, 140), (300, 250), (999, 1000)]
for e in range(2, 19):
    n = 10**e
    metrics = []
    for (sc, st) in pairs + [(n - 3, n - 1), (n - 10, n - 20)]:
        if sc > n or st > n or sc < 0 or st < 0:
            continue
        if float(sc) != sc or float(st) != st:
            continue  # conversions a double cannot hold exactly
        metrics.append({"name": f"c{sc}_t{st}", "kind": "proportion",
                        "data": {"control": {"count": n, "sum": sc}, "treatment": {"count": n, "sum": st}}})
    expected = {"variants": {"treatment": {}}}
    for m in metrics:
        c, t = m["data"]["control"], m["data"]["treatment"]
        degenerate = c["sum"] in (0, c["count"]) and t["sum"] in (0, t["count"])
        # se = 0 (both arms at 0% or 100%): STATS.md makes the chance null
        expected["variants"]["treatment"][m["name"]] = {
            "chanceToBeatControl": None if degenerate else f(chance(c["count"], c["sum"], t["count"], t["sum"]))}
    cases.append({"name": f"chance to beat control, 1e{e} units per arm",
                  "source": "mpmath 60 digits, exact Beta sum (Evan Miller 2015)",
                  "input": two_arms(n, n, metrics=metrics), "expected": expected})

# the recommendation's confidence is that chance too
n = 10**15
inp = two_arms(n, n, metrics=[{"name": "conversion", "kind": "proportion",
                               "data": {"control": {"count": n, "sum": 100}, "treatment": {"count": n, "sum": 140}}}])
cases.append({"name": "recommendation confidence at 1e15 units, 100 vs 140 conversions",
              "source": "mpmath 60 digits, exact Beta sum",
              "input": inp,
              "expected": {"recommendation": {"winner": "treatment", "confidence": f(chance(n, 100, n, 140))}}})


# ---- 15: means and ratios at extreme magnitudes
cases = magnitude_cases


def with_recommendation(inp):
    variants = expected_for(inp)
    return {"variants": variants, "recommendation": recommendation_for(inp, variants)}


def mean_arm(n, m, sd):
    s = float(mp.mpf(n) * m)
    q = float((n - 1) * mp.mpf(sd) ** 2 + n * mp.mpf(m) ** 2)
    return {"count": n, "sum": s, "sumSquares": q}


def mean_case(scale, label):
    sc = mp.mpf(scale)
    inp = two_arms(100, 100, metrics=[{"name": "m", "kind": "mean", "data": {
        "control": mean_arm(100, sc, sc / 10), "treatment": mean_arm(100, sc * mp.mpf("1.1"), sc / 10)}}])
    return {"name": f"means at {label} (sd a tenth of the mean, 100 per arm)",
            "source": "mpmath 60 digits, STATS.md formulas (Welch t)", "input": inp,
            "expected": with_recommendation(inp)}


for scale, label in [("1e100", "1e100"), ("1e-100", "1e-100"), ("1e150", "1e150"), ("1e-150", "1e-150")]:
    cases.append(mean_case(scale, label))

# at 1e-160 sumSquares (~1e-318) is subnormal: too few digits to compute a variance from
c160 = mean_case("1e-160", "1e-160")
c160["name"] = "means at 1e-160: sumSquares is subnormal, refused"
c160["source"] = "STATS.md: never a wrong number"
c160["expected"] = {"error": {"field": "metrics[0].data.control.sumSquares"}}
cases.append(c160)


def ratio_arm(n, xbar, ybar, k, lift):
    """n units with x = k·(xbar·lift + noise), y = (ybar + noise)/k: exact double sums."""
    k = mp.mpf(k)
    sx = n * k * xbar * lift
    qx = (n - 1) * (k * xbar / 10) ** 2 + n * (k * xbar * lift) ** 2
    sy = n * ybar / k
    qy = (n - 1) * (ybar / (10 * k)) ** 2 + n * (ybar / k) ** 2
    sp = (n - 1) * (xbar / 10) * (ybar / 10) * HALF + n * (xbar * lift) * ybar
    return {"count": n, "sum": float(sx), "sumSquares": float(qx), "denominatorSum": float(sy),
            "denominatorSumSquares": float(qy), "sumProducts": float(sp)}


for exp in [100, -100, 160, -160, 300, -300]:
    k = mp.mpf(10) ** (mp.mpf(exp) / 2)
    inp = two_arms(100, 100, metrics=[{"name": "r", "kind": "ratio", "data": {
        "control": ratio_arm(100, mp.mpf(5), mp.mpf(2), k, 1), "treatment": ratio_arm(100, mp.mpf(5), mp.mpf(2), k, mp.mpf("1.1"))}}])
    cases.append({"name": f"ratio of magnitude 1e{exp}", "source": "mpmath 60 digits, STATS.md delta method",
                  "input": inp, "expected": with_recommendation(inp)})

# CUPED on a mean at 1e±100
for exp in [100, -100]:
    sc = mp.mpf(10) ** exp
    def cuped_arm(n, m, cmean):
        a = mean_arm(n, m, sc / 10)
        a["covariateSum"] = float(n * cmean)
        a["covariateSumSquares"] = float((n - 1) * (sc / 10) ** 2 + n * cmean**2)
        a["covariateSumProducts"] = float((n - 1) * (sc / 10) ** 2 * mp.mpf("0.6") + n * cmean * m)
        return a
    inp = two_arms(100, 100, metrics=[{"name": "m", "kind": "mean", "data": {
        "control": cuped_arm(100, sc, sc), "treatment": cuped_arm(100, sc * mp.mpf("1.1"), sc * mp.mpf("1.02"))}}])
    cases.append({"name": f"cuped mean at 1e{exp}", "source": "mpmath 60 digits, STATS.md CUPED",
                  "input": inp, "expected": with_recommendation(inp)})

print(json.dumps({
    "tolerance": {"relative": 1e-6, "absolute": 0.0, "chanceToBeatControl": 1e-6},
    "note": "generated by stats-extremes.py (mpmath, 60 digits) from STATS.md's formulas",
    "cases": chance_cases if SECTION == "chance" else magnitude_cases,
}, indent=1))
