"""The paired interval over seeds and test images against independent values: scipy's t-intervals in the two limits
(one seed: over images; images that agree: over seeds), a bootstrap of F1, the calibration of the intervals on
simulated studies, the width left when every seed agrees, and Holm's correction on known p-values."""

import numpy as np
import pytest
from scipy import stats as sp

from dreaming_data.stats import crossed_interval, holm, mean_std, paired_difference, verdict


def noisy(y: np.ndarray, accuracy: float, rng, K: int) -> np.ndarray:
    """Predictions right with probability ``accuracy``, otherwise another class."""
    wrong = rng.random(len(y)) > accuracy
    return np.where(wrong, (y + 1 + rng.integers(0, K - 1, len(y))) % K, y)


def test_one_seed_is_the_paired_t_interval_over_images():
    """S = 1: the interval of the mean per-image difference, mean +- t(N - 1) sd / sqrt(N) (scipy's)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 500)
    a, b = noisy(y, 0.8, rng, 10), noisy(y, 0.75, rng, 10)
    d = (a == y).astype(float) - (b == y).astype(float)
    low, high = sp.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sp.sem(d))
    got = paired_difference(y, a[None], b[None], 10)["accuracy"]
    assert (got["mean"], got["low"], got["high"]) == pytest.approx((d.mean(), low, high))
    assert got["p"] == pytest.approx(sp.ttest_1samp(d, 0).pvalue)


def test_seeds_alone_when_images_agree():
    """Every image contributes the same within a seed (rows constant): the design reduces to the t-interval over
    the S per-seed values (scipy's), the seeds' own noise."""
    d = np.repeat(np.array([[0.01], [0.05], [0.03], [0.02]]), 40, axis=1)
    got = crossed_interval(d)
    low, high = sp.t.interval(0.95, 3, loc=0.0275, scale=sp.sem([0.01, 0.05, 0.03, 0.02]))
    assert (got["low"], got["high"]) == pytest.approx((low, high))


def test_identical_seeds_still_leave_the_test_sets_width():
    """Three seeds that gained exactly the same images: a t-interval over them has zero width; this one has the
    test set's (the one-seed interval)."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 360)
    a, b = noisy(y, 0.95, rng, 10), noisy(y, 0.93, rng, 10)
    three = paired_difference(y, np.stack([a] * 3), np.stack([b] * 3), 10)["accuracy"]
    one = paired_difference(y, a[None], b[None], 10)["accuracy"]
    assert three["per_seed"] == [three["mean"]] * 3 and three["high"] - three["low"] > 0.01
    assert three["high"] - three["low"] == pytest.approx(one["high"] - one["low"], rel=0.02)


@pytest.mark.parametrize("correlated", [False, True], ids=["independent errors", "shared hard images"])
def test_intervals_cover_no_difference_about_95_percent_of_the_time(correlated):
    """Two variants of equal accuracy, three seeds, 300 test images drawn afresh for each of 300 simulated studies:
    0 should fall outside the 95% interval in about 5% of them (binomial: 1.3% to 9.7% at 4 standard deviations)."""
    rng = np.random.default_rng(2 + correlated)
    outside = np.zeros(3)
    for _ in range(300):
        y = rng.integers(0, 10, 300)
        hard = rng.random(300) < (0.08 if correlated else 0.0)  # images every seed of both variants misses

        def run():
            pred = noisy(y, 0.92, rng, 10)
            return np.where(hard, (y + 1) % 10, pred)

        got = paired_difference(y, np.stack([run() for _ in range(3)]), np.stack([run() for _ in range(3)]), 10)
        outside += [got["accuracy"]["significant"], got["macro_f1"]["significant"],
                    got["per_class"][0]["recall"]["significant"]]
    assert (4 <= outside).all() and (outside <= 29).all(), outside


def test_per_class_recall_and_f1_are_the_classes_own():
    y = np.array([0, 0, 1, 1, 2, 2] * 20)
    a, b = y.copy(), y.copy()
    b[y == 1] = 2  # B never gets class 1 right
    got = paired_difference(y, np.stack([a, a]), np.stack([b, b]), 3)["per_class"]
    assert got[1]["recall"]["mean"] == pytest.approx(1.0) and got[1]["recall"]["images"] == 40
    assert got[0]["recall"]["mean"] == 0 and got[0]["recall"]["low"] == 0 == got[0]["recall"]["high"]
    assert got[2]["f1"]["mean"] == pytest.approx(1 - 2 * 40 / (40 + 80))  # B's F1 of class 2: 2 tp / (true + pred)


def test_f1_intervals_match_the_bootstrap_of_the_statistic():
    """The linearised F1's standard error against a plain bootstrap of F1 over images (one seed)."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 800)
    a, b = noisy(y, 0.85, rng, 4), noisy(y, 0.8, rng, 4)

    def f1(y, p, k):
        tp, t, q = ((y == k) & (p == k)).sum(), (y == k).sum(), (p == k).sum()
        return 2 * tp / (t + q)

    draws = []
    for _ in range(2000):
        i = rng.integers(0, len(y), len(y))
        draws.append(f1(y[i], a[i], 1) - f1(y[i], b[i], 1))
    got = paired_difference(y, a[None], b[None], 4)["per_class"][1]["f1"]
    assert got["se"] == pytest.approx(np.std(draws), rel=0.1)


def test_holm():
    """Holm 1979: p_(k) against alpha / (m - k + 1), stopping at the first that fails."""
    assert holm([0.001, 0.04, 0.02, 0.3]) == [True, False, False, False]
    assert holm([0.01, 0.012, 0.015, 0.02], alpha=0.08) == [True, True, True, True]  # 0.02, 0.027, 0.04, 0.08
    assert holm([0.5, 0.001]) == [False, True]


def test_mean_std_and_verdicts():
    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3} and mean_std([4.0])["std"] is None
    better = {"mean": 0.02, "low": 0.01, "high": 0.03, "n": 3, "images": 360, "confidence": 0.95, "significant": True}
    assert verdict("aug - base", better) == ("aug - base: +0.0200 test accuracy, 95% CI [+0.0100, +0.0300] over 3 "
                                             "seeds and 360 test images: significantly better.")
    none = better | {"low": -0.01, "significant": False, "n": 1, "images": 10}
    assert verdict("x", none).endswith("over 1 seed and 10 test images: no significant difference.")


def _seed_differences(gains: list[float], n: int = 2000) -> np.ndarray:
    """[S, n] per-image differences of being right, seed s gaining ``gains[s]`` on average."""
    rng = np.random.default_rng(0)
    return np.array([(rng.random(n) < 0.5 + g / 2).astype(float) - (rng.random(n) < 0.5 - g / 2) for g in gains])


def test_leave_one_seed_out_marks_a_verdict_that_one_seed_decides():
    """Four seeds that gain and one that loses: no significant difference with all five, significantly better
    without the fifth (fragile); five seeds that gain alike: the verdict holds without any one of them."""
    from dreaming_data.stats import leave_one_seed_out

    mixed = _seed_differences([0.1, 0.1, 0.1, 0.1, -0.2])
    assert not crossed_interval(mixed)["significant"]
    assert leave_one_seed_out(mixed) == {"directions": ["none"] * 4 + ["better"], "stable": False}
    steady = _seed_differences([0.05] * 5)
    assert crossed_interval(steady)["significant"] and crossed_interval(steady)["mean"] > 0
    assert leave_one_seed_out(steady) == {"directions": ["better"] * 5, "stable": True}
    assert leave_one_seed_out(steady[:1]) == {"directions": [], "stable": None}
    text = verdict("aug - base", crossed_interval(steady) | {"leave_one_seed_out": leave_one_seed_out(steady)})
    assert text.endswith("significantly better (holds leaving out any one seed).")
    fragile = crossed_interval(mixed) | {"leave_one_seed_out": leave_one_seed_out(mixed)}
    assert verdict("x", fragile).endswith(
        "no significant difference (FRAGILE, not a finding: leaving out one seed it is significantly better).")
