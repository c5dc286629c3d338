"""The paired confidence interval against scipy and a printed t-table; the steps-matched arithmetic."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from dreaming_data.stats import mean_std, paired_interval, verdict


def test_paired_interval_matches_scipy():
    a = [0.912, 0.905, 0.921, 0.899]
    b = [0.900, 0.903, 0.904, 0.902]
    got = paired_interval(a, b)
    d = np.subtract(a, b)
    low, high = sp.ttest_rel(a, b).confidence_interval(0.95)
    assert got["mean"] == pytest.approx(d.mean()) and got["std"] == pytest.approx(d.std(ddof=1))
    assert (got["low"], got["high"]) == (pytest.approx(low), pytest.approx(high))
    assert got["per_seed"] == pytest.approx(d.tolist()) and got["n"] == 4


def test_three_seeds_use_the_printed_t_quantile():
    """t_{0.975, 2} = 4.303 (any t-table): mean 0.02, s 0.01, half-width 4.303 * 0.01 / sqrt(3) = 0.02484."""
    got = paired_interval([0.53, 0.54, 0.55], [0.52, 0.52, 0.52])
    assert got["mean"] == pytest.approx(0.02) and got["std"] == pytest.approx(0.01)
    assert got["high"] - got["mean"] == pytest.approx(4.303 * 0.01 / math.sqrt(3), abs=2e-5)
    assert got["significant"] is False  # [-0.0048, 0.0448] covers 0
    assert "no significant difference" in verdict("augmented - baseline", got)


def test_verdicts():
    better = paired_interval([0.60, 0.61, 0.62], [0.50, 0.505, 0.51])
    assert better["significant"] and "significantly better" in verdict("augmented - baseline", better)
    worse = paired_interval([0.50, 0.505, 0.51], [0.60, 0.61, 0.62])
    assert "significantly worse" in verdict("x", worse)
    one = paired_interval([0.6], [0.5])
    assert one["low"] is None and one["significant"] is None and "single seed" in verdict("x", one)
    assert mean_std([1.0])["std"] is None
    with pytest.raises(ValueError):
        paired_interval([1.0, 2.0], [1.0])
