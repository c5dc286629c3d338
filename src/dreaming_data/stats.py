"""Paired comparisons over seeds: mean, standard deviation, and Student's t confidence interval of a difference.

Two variants trained with the same seeds share their initialisation and data order, so their accuracies are paired:
the interval is the one of the per-seed differences (a paired t-interval), narrower than comparing two means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (ddof 1; None for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def paired_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """The mean of a_i - b_i and its two-sided t-interval: mean ± t_{(1+c)/2, n-1} s / sqrt(n).

    ``low``/``high`` are None with fewer than two pairs (no spread to estimate). ``significant``: the interval
    excludes 0."""
    from scipy.stats import t

    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    s = mean_std(diffs)
    low = high = None
    if s["n"] > 1:
        half = float(t.ppf((1 + confidence) / 2, s["n"] - 1)) * s["std"] / math.sqrt(s["n"])
        low, high = s["mean"] - half, s["mean"] + half
    return {"mean": s["mean"], "std": s["std"], "n": s["n"], "confidence": confidence, "low": low, "high": high,
            "per_seed": diffs, "significant": None if low is None else bool(low > 0 or high < 0)}


def verdict(name: str, interval: dict, what: str = "test accuracy") -> str:
    """One sentence on a paired difference, e.g. 'augmented - baseline: +0.0123 test accuracy, 95% CI [-0.004,
    +0.029] over 3 seeds: no significant difference.'"""
    mean, n = interval["mean"], interval["n"]
    head = f"{name}: {mean:+.4f} {what}"
    if interval["low"] is None:
        return f"{head} from a single seed: no confidence interval (use 2 or more seeds)."
    ci = f"{round(100 * interval['confidence'])}% CI [{interval['low']:+.4f}, {interval['high']:+.4f}] over {n} seeds"
    if not interval["significant"]:
        return f"{head}, {ci}: no significant difference."
    return f"{head}, {ci}: significantly {'better' if mean > 0 else 'worse'}."
