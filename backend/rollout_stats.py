"""The statistics of a rollout, on device-level units (no database, no I/O).

Why devices and not results: a rollout randomises workstations, not results. Results of one
workstation share a radiologist, a scanner and a case mix, so they are correlated; a test that
treats 10,000 results of 40 devices as 10,000 independent draws (Fisher, chi-square or
Mann-Whitney per result) reports p-values far too small. Here every test takes one row per
device: acceptance is a ratio estimator (accepted / decided summed over an arm's devices) with a
cluster-robust (delta-method) variance, latency is compared on per-device medians.

Why Holm: with K candidates each compared with the baseline, K tests at alpha would let a
worthless candidate through with probability up to K x alpha; Holm's step-down keeps the
family-wise error at alpha and is never less powerful than Bonferroni.

Why an always-valid p-value: the report is looked at every day. Re-running a fixed-sample test
at every look and stopping at the first p < alpha inflates the false-positive rate (about 25% at
20 looks for alpha 0.05). The mixture sequential probability ratio test (mSPRT, Robbins 1970;
Johari et al. 2017) gives a p-value valid at any stopping time: ``p_n = min_{k<=n} 1/Lambda_k``
never falls below alpha under the null with probability more than alpha, however often it is
looked at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class DeviceUnits:
    """One arm's devices: decided and accepted counts and latency medians, one entry each."""

    decided: np.ndarray  # results accepted or rejected, per device
    accepted: np.ndarray
    latency_median: np.ndarray  # NaN where a device has no latency

    @property
    def n_devices(self) -> int:
        return int(self.decided.size)


@dataclass(frozen=True)
class RatioEstimate:
    """Acceptance of an arm: sum(accepted) / sum(decided) and its cluster-robust variance."""

    rate: float | None
    variance: float | None
    n_devices: int  # devices with at least one decided result


def ratio_estimate(decided: np.ndarray, accepted: np.ndarray) -> RatioEstimate:
    """Pooled acceptance and its delta-method variance with devices as clusters.

    ``Var(p) = m / (m - 1) * sum_i (a_i - p d_i)^2 / (sum_i d_i)^2``: the residual of each device
    carries its whole within-device correlation, so the variance grows when devices differ."""
    keep = decided > 0
    d, a = decided[keep].astype(float), accepted[keep].astype(float)
    m = int(d.size)
    if m == 0:
        return RatioEstimate(None, None, 0)
    total = float(d.sum())
    p = float(a.sum()) / total
    if m < 2:
        return RatioEstimate(p, None, m)
    var = m / (m - 1) * float(((a - p * d) ** 2).sum()) / total**2
    return RatioEstimate(p, var, m)


def difference_test(base: RatioEstimate, cand: RatioEstimate) -> dict[str, Any]:
    """Candidate minus baseline acceptance, cluster-robust SE, two-sided t p-value.

    Degrees of freedom ``min(m_b, m_c) - 1`` (conservative with few devices; approaches the
    normal test as devices grow)."""
    from scipy.stats import t as student_t

    if base.variance is None or cand.variance is None:
        return {
            "test": None,
            "difference": None,
            "p_value": None,
            "reason": "each arm needs decided results from at least 2 devices",
        }
    diff = (cand.rate or 0.0) - (base.rate or 0.0)  # rates exist where variances do
    se = math.sqrt(base.variance + cand.variance)
    df = min(base.n_devices, cand.n_devices) - 1
    if se == 0.0:
        p = 1.0 if diff == 0 else 0.0
        stat = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        stat = diff / se
        p = float(2 * student_t.sf(abs(stat), df))
    crit = float(student_t.ppf(0.975, df))
    return {
        "test": "cluster_robust_difference",
        "difference": diff,
        "se": se,
        "statistic": stat,
        "df": df,
        "ci_low": diff - crit * se,
        "ci_high": diff + crit * se,
        "p_value": p,
    }


def latency_test(base: np.ndarray, cand: np.ndarray) -> dict[str, Any]:
    """Mann-Whitney on per-device latency medians (one value per device)."""
    from scipy.stats import mannwhitneyu

    b, c = base[~np.isnan(base)], cand[~np.isnan(cand)]
    if b.size < 2 or c.size < 2:
        return {
            "test": None,
            "p_value": None,
            "reason": "each arm needs latencies from at least 2 devices",
        }
    return {
        "test": "mannwhitneyu_device_medians",
        "median_of_device_medians_baseline": float(np.median(b)),
        "median_of_device_medians_candidate": float(np.median(c)),
        "p_value": float(mannwhitneyu(c, b).pvalue),
    }


def holm(p_values: list[float | None], alpha: float = DEFAULT_ALPHA) -> list[dict[str, Any]]:
    """Holm step-down over the p-values present (None: no test, never significant).

    Returns per input the adjusted p-value and whether it is rejected at ``alpha``."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    k = len(present)
    out: list[dict[str, Any]] = [{"p_adjusted": None, "significant": False} for _ in p_values]
    running = 0.0
    still = True
    for rank, (p, i) in enumerate(present):
        adj = min(1.0, max(running, (k - rank) * p))
        running = adj
        still = still and adj <= alpha
        out[i] = {"p_adjusted": adj, "significant": still}
    return out


# --- sequential monitoring ----------------------------------------------------------------


def msprt_lambda(estimate: float, variance: float, tau: float) -> float:
    """Mixture likelihood ratio of H1: theta ~ N(0, tau^2) against H0: theta = 0, for an
    estimate ~ N(theta, variance). ``Lambda = sqrt(V/(V+t^2)) exp(t^2 x^2 / (2V(V+t^2)))``."""
    v, t2 = variance, tau * tau
    if v <= 0:
        return math.inf if estimate != 0 else 1.0
    log_lam = 0.5 * math.log(v / (v + t2)) + t2 * estimate * estimate / (2 * v * (v + t2))
    return math.exp(min(log_lam, 700.0))


def always_valid_p(previous: float | None, estimate: float, variance: float, tau: float) -> float:
    """The running always-valid p-value: ``min(previous, 1 / Lambda)``, capped at 1."""
    p_now = min(1.0, 1.0 / msprt_lambda(estimate, variance, tau))
    return p_now if previous is None else min(previous, p_now)


def msprt_lambda_array(estimate: np.ndarray, variance: np.ndarray, tau: float) -> np.ndarray:
    """Vectorised ``msprt_lambda`` (simulations)."""
    t2 = tau * tau
    log_lam = 0.5 * np.log(variance / (variance + t2)) + t2 * estimate**2 / (
        2 * variance * (variance + t2)
    )
    return np.exp(np.minimum(log_lam, 700.0))


# --- planning -----------------------------------------------------------------------------


def devices_per_arm(
    baseline_rate: float,
    min_difference: float,
    alpha: float = DEFAULT_ALPHA,
    power: float = 0.8,
    icc: float = 0.0,
    results_per_device: float = 1.0,
    candidates: int = 1,
) -> dict[str, Any]:
    """Devices needed per arm to detect ``min_difference`` in acceptance (two-sided).

    Results per arm for two independent proportions, times the design effect
    ``1 + (m - 1) ICC`` (m results per device, ICC the intra-device correlation), divided by m.
    With several candidates alpha is split Bonferroni-wise (Holm is at least as powerful)."""
    from scipy.stats import norm

    p1, delta = baseline_rate, min_difference
    p2 = p1 + delta
    problems = []
    if not 0 < p1 < 1:
        problems.append(f"baseline rate {p1} must lie strictly between 0 and 1")
    if delta == 0 or not 0 < p2 < 1:
        problems.append(f"baseline + difference ({p2:g}) must lie strictly between 0 and 1")
    if not 0 < alpha < 1 or not 0 < power < 1:
        problems.append("alpha and power must lie strictly between 0 and 1")
    if not 0 <= icc <= 1:
        problems.append(f"ICC {icc} must lie between 0 and 1")
    if results_per_device < 1:
        problems.append(f"results per device {results_per_device} must be at least 1")
    if candidates < 1:
        problems.append("at least one candidate arm is needed")
    if problems:
        raise ValueError("; ".join(problems))
    a = alpha / candidates
    za, zb = float(norm.ppf(1 - a / 2)), float(norm.ppf(power))
    pbar = (p1 + p2) / 2
    n = (
        za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / delta**2
    deff = 1 + (results_per_device - 1) * icc
    devices = math.ceil(n * deff / results_per_device)
    return {
        "results_per_arm_independent": math.ceil(n),
        "design_effect": deff,
        "results_per_arm": math.ceil(n * deff),
        "devices_per_arm": devices,
        "alpha_per_comparison": a,
    }
