"""Rollout statistics on device-level units, checked by seeded simulation (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from backend.rollout_stats import (
    devices_per_arm,
    difference_test,
    holm,
    msprt_lambda,
    msprt_lambda_array,
    ratio_estimate,
)

ALPHA = 0.05


def _arm(
    rng: np.random.Generator, devices: int, per_device: int, mean: float, icc: float
) -> tuple[np.ndarray, np.ndarray]:
    """Decided/accepted counts of ``devices`` devices whose own acceptance rates vary around
    ``mean`` with intra-device correlation ``icc`` (beta-binomial)."""
    k = (1 - icc) / icc
    rates = rng.beta(mean * k, (1 - mean) * k, size=devices)
    decided = np.full(devices, per_device, dtype=float)
    return decided, rng.binomial(per_device, rates).astype(float)


def test_per_result_test_inflates_false_positives_device_level_does_not() -> None:
    """A/A rollouts with correlated results inside devices: the old per-result chi-square
    calls far more than 5% of them significant; the cluster-robust device test keeps alpha."""
    rng = np.random.default_rng(20261207)
    trials, hits_result, hits_device = 400, 0, 0
    for _ in range(trials):
        db, ab = _arm(rng, 12, 150, 0.8, 0.08)
        dc, ac = _arm(rng, 12, 150, 0.8, 0.08)
        table = [[ab.sum(), db.sum() - ab.sum()], [ac.sum(), dc.sum() - ac.sum()]]
        hits_result += chi2_contingency(table).pvalue < ALPHA
        t = difference_test(ratio_estimate(db, ab), ratio_estimate(dc, ac))
        hits_device += t["p_value"] < ALPHA
    assert hits_result / trials > 0.3  # measured 0.6: the defect the report had
    assert hits_device / trials <= ALPHA + 0.025


def test_cluster_robust_variance_matches_the_spread_of_the_estimate() -> None:
    rng = np.random.default_rng(7)
    estimates: list[float] = []
    variances: list[float] = []
    for _ in range(2000):
        d, a = _arm(rng, 30, 40, 0.7, 0.1)
        e = ratio_estimate(d, a)
        assert e.rate is not None
        assert e.variance is not None
        estimates.append(e.rate)
        variances.append(e.variance)
    empirical = float(np.var(estimates))
    assert float(np.mean(variances)) == pytest.approx(empirical, rel=0.1)
    binomial = 0.7 * 0.3 / (30 * 40)  # what a per-result analysis assumes: far too small
    assert empirical > 3 * binomial


def test_ratio_estimate_edge_cases() -> None:
    e = ratio_estimate(np.array([0.0, 0.0]), np.array([0.0, 0.0]))
    assert (e.rate, e.variance, e.n_devices) == (None, None, 0)
    one = ratio_estimate(np.array([10.0]), np.array([7.0]))
    assert one.rate == pytest.approx(0.7)
    assert one.variance is None
    t = difference_test(one, one)
    assert t["p_value"] is None
    assert "2 devices" in t["reason"]


def test_holm_against_hand_computed_step_down() -> None:
    got = holm([0.01, 0.04, 0.03, None], 0.05)
    # sorted 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert [g["p_adjusted"] for g in got[:3]] == pytest.approx([0.03, 0.06, 0.06])
    assert [g["significant"] for g in got] == [True, False, False, False]
    assert holm([0.001, 0.02], 0.05)[1]["significant"] is True  # 0.02*1 after 0.002


def test_holm_keeps_familywise_error_with_three_null_candidates() -> None:
    rng = np.random.default_rng(11)
    trials, any_raw, any_holm = 2000, 0, 0
    for _ in range(trials):
        p = list(rng.uniform(size=3))
        any_raw += min(p) < ALPHA
        any_holm += any(h["significant"] for h in holm(p, ALPHA))
    assert any_raw / trials > 0.12  # 1 - 0.95^3 = 0.14
    assert any_holm / trials <= ALPHA + 0.012


def _looks(
    rng: np.random.Generator, sims: int, looks: int, per_look: int, delta: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cumulative device-level estimates of (candidate - baseline) acceptance at each look."""
    n = looks * per_look
    shape = (sims, n)
    k = (1 - 0.05) / 0.05
    m = rng.integers(5, 60, size=(2, *shape)).astype(float)
    rb = rng.beta(0.7 * k, 0.3 * k, size=shape)
    rc = rng.beta((0.7 + delta) * k, (0.3 - delta) * k, size=shape)
    ab, ac = rng.binomial(m[0].astype(int), rb), rng.binomial(m[1].astype(int), rc)
    out = []
    for look in range(1, looks + 1):
        j = look * per_look
        parts = []
        for d, a in ((m[0][:, :j], ab[:, :j]), (m[1][:, :j], ac[:, :j])):
            tot = d.sum(axis=1)
            p = a.sum(axis=1) / tot
            var = j / (j - 1) * ((a - p[:, None] * d) ** 2).sum(axis=1) / tot**2
            parts.append((p, var))
        out.append((parts[1][0] - parts[0][0], parts[0][1] + parts[1][1]))
    return out


def test_sequential_monitoring_keeps_alpha_under_daily_looks() -> None:
    """500 A/A rollouts looked at 20 times: stopping at the first naive p < 0.05 is wrong far
    more than 5% of the time; the always-valid mSPRT p-value stays within alpha."""
    rng = np.random.default_rng(2026)
    from scipy.stats import norm

    naive = np.zeros(500, dtype=bool)
    msprt = np.zeros(500, dtype=bool)
    for diff, var in _looks(rng, 500, 20, 6, 0.0):
        naive |= 2 * norm.sf(np.abs(diff) / np.sqrt(var)) < ALPHA
        msprt |= 1 / msprt_lambda_array(diff, var, 0.05) <= ALPHA
    assert naive.mean() > 0.12  # measured about 0.25
    assert msprt.mean() <= ALPHA + 0.02


def test_sequential_monitoring_detects_a_real_difference() -> None:
    rng = np.random.default_rng(99)
    crossed = np.zeros(300, dtype=bool)
    for diff, var in _looks(rng, 300, 20, 6, 0.08):
        crossed |= 1 / msprt_lambda_array(diff, var, 0.05) <= ALPHA
    assert crossed.mean() > 0.8


def test_msprt_scalar_and_array_agree() -> None:
    est, var = np.array([0.0, 0.03, -0.1]), np.array([1e-4, 4e-4, 2.5e-3])
    scalar = [msprt_lambda(float(e), float(v), 0.05) for e, v in zip(est, var, strict=True)]
    assert msprt_lambda_array(est, var, 0.05) == pytest.approx(scalar)
    assert msprt_lambda(0.0, 1e-4, 0.05) < 1  # no evidence: the ratio favours the null


def test_sample_size_textbook_value_and_design_effect() -> None:
    plain = devices_per_arm(0.5, 0.1, 0.05, 0.8)
    # two proportions 0.5 vs 0.6, alpha 0.05 two-sided, power 0.8: 387.3 per group (Fleiss)
    assert plain["results_per_arm_independent"] == 388
    clustered = devices_per_arm(0.5, 0.1, 0.05, 0.8, icc=0.05, results_per_device=20)
    assert clustered["design_effect"] == pytest.approx(1.95)
    assert clustered["devices_per_arm"] == math.ceil(387.3 * 1.95 / 20)
    more = devices_per_arm(0.5, 0.1, 0.05, 0.8, icc=0.05, results_per_device=20, candidates=3)
    assert more["devices_per_arm"] > clustered["devices_per_arm"]
    with pytest.raises(ValueError, match="baseline rate"):
        devices_per_arm(1.2, 0.1)
    with pytest.raises(ValueError, match="ICC"):
        devices_per_arm(0.5, 0.1, icc=2)


def test_planned_devices_give_the_planned_power() -> None:
    """Simulate rollouts of the planned size with that ICC: the device test's power is ~0.8."""
    icc, m = 0.05, 20
    plan = devices_per_arm(0.7, 0.1, 0.05, 0.8, icc=icc, results_per_device=m)
    n_dev = plan["devices_per_arm"]
    rng = np.random.default_rng(5)
    hits, trials = 0, 400
    for _ in range(trials):
        db, ab = _arm(rng, n_dev, m, 0.7, icc)
        dc, ac = _arm(rng, n_dev, m, 0.8, icc)
        hits += difference_test(ratio_estimate(db, ab), ratio_estimate(dc, ac))["p_value"] < 0.05
    assert 0.72 <= hits / trials <= 0.9
