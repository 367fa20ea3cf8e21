"""The paired before/after difference against a float64 reference written from its formula."""

import math

import numpy as np
import pytest

from experiments.paired import mean_se, paired_difference


def test_matches_the_formula_and_is_smaller_than_unpaired_for_correlated_runs():
    rng = np.random.default_rng(0)
    before = rng.uniform(0, 1, 500)
    after = np.clip(before + rng.normal(0.03, 0.05, 500), 0, 1)
    stats = paired_difference(before.tolist(), after.tolist())
    diffs = after.astype(np.float64) - before
    assert stats.gain == pytest.approx(diffs.mean(), rel=1e-12)
    assert stats.se == pytest.approx(diffs.std(ddof=1) / math.sqrt(500), rel=1e-12)
    assert (stats.before, stats.after) == pytest.approx((before.mean(), after.mean()), rel=1e-12)
    assert stats.z == pytest.approx(stats.gain / stats.se)
    unpaired = math.hypot(before.std(ddof=1), after.std(ddof=1)) / math.sqrt(500)
    assert stats.se < unpaired / 3


def test_degenerate_inputs():
    same = paired_difference([0.5, 0.25], [0.75, 0.5])
    assert same.se == 0 and same.z == math.inf
    assert paired_difference([0.5, 0.5], [0.5, 0.5]).z == 0.0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1.0], [0.0])


def test_mean_se_matches_the_float64_formula_and_is_nan_for_one_value():
    values = [0.1, 0.4, 0.35, 0.9, 0.0]
    mean, se = mean_se(values)
    reference = np.asarray(values, dtype=np.float64)
    assert math.isclose(mean, reference.mean())
    assert math.isclose(se, reference.std(ddof=1) / math.sqrt(len(values)))
    single_mean, single_se = mean_se([0.7])
    assert single_mean == 0.7 and math.isnan(single_se)
