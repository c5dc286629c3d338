"""Paired comparisons of two classifier variants that account for both sources of noise: the seeds and the finite
test set.

A difference of test accuracy between two variants trained with the same seeds varies with the seed (initialisation,
data order) and with which test images were drawn. A t-interval over three seeds sees only the first, and collapses to
zero width when the seeds agree. Here every seed's variants are scored on the same test images, so the difference is a
crossed two-way design: d[s, i], seed s by test image i (the per-image difference of being right, or, for F1, its
linearisation). Its mean estimates the difference over the population of seeds and of images, with variance

    Var(mean d) = var_seed / S + var_image / N + var_residual / (S N),

whose components come from the design's mean squares (a crossed random-effects ANOVA, e.g. Searle, Casella &
McCulloch 1992, ch. 4; negative estimates set to 0). The interval is mean +- t * sqrt(Var) with Satterthwaite's (1946)
degrees of freedom. Seeds that all agree leave the test set's own width; a test set too small to tell leaves a wide
interval even with many seeds. (A bootstrap that resamples both seeds and images counts the residual twice: too wide
when errors are independent.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05  # family-wise error of the per-class tests (Holm)


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (ddof 1; None for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def crossed_interval(d: np.ndarray, confidence: float = CONFIDENCE, bound: float = 1.0) -> dict:
    """The mean of ``d`` ([S seeds, N images]) with its interval under the crossed design (module docstring):
    {mean, low, high, se, df, n (seeds), images, p (two-sided), significant (the interval excludes 0), per_seed}.
    The interval is cut to [-bound, bound], the range a difference of two shares can take (few seeds that disagree
    make the t quantile large: 12.7 with two)."""
    from scipy.special import stdtr, stdtrit

    d = np.asarray(d, dtype=np.float64)
    S, N = d.shape
    mean = float(d.mean())
    rows, cols = d.mean(1), d.mean(0)
    ms_col = S * ((cols - mean) ** 2).sum() / (N - 1) if N > 1 else 0.0
    if S > 1 and N > 1:
        ms_row = N * ((rows - mean) ** 2).sum() / (S - 1)
        ms_res = ((d - rows[:, None] - cols[None] + mean) ** 2).sum() / ((S - 1) * (N - 1))
        terms = [(max(ms_row - ms_res, 0.0) / (S * N), S - 1), (max(ms_col - ms_res, 0.0) / (S * N), N - 1),
                 (ms_res / (S * N), (S - 1) * (N - 1))]
    else:  # one seed: the images alone
        terms = [(ms_col / (S * N), max(N - 1, 1))]
    var = sum(t for t, _ in terms)
    se = math.sqrt(var)
    df = var ** 2 / sum(t ** 2 / k for t, k in terms) if var > 0 else float(max(N - 1, 1))
    half = float(stdtrit(df, (1 + confidence) / 2)) * se
    p = float(2 * stdtr(df, -abs(mean) / se)) if se > 0 else float(mean == 0)
    return {"mean": mean, "low": max(mean - half, -bound), "high": min(mean + half, bound), "se": se, "df": df,
            "n": S, "images": N,
            "confidence": confidence, "p": p, "per_seed": [float(v) for v in rows],
            "significant": bool(mean - half > 0 or mean + half < 0)}


def _f1_pseudo(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Per-image pseudo-values of class k's F1 = 2 TP / (T + P) (their mean is the F1): F1 plus the image's
    linearised influence (2 tp_i - F1 (t_i + p_i)) / mean(t + p) (the delta method). [..., N] like ``pred``."""
    tp, t, p = ((y == k) & (pred == k)).astype(float), (y == k).astype(float), (pred == k).astype(float)
    scale = (t + p).mean(-1, keepdims=True)
    f1 = np.divide(2 * tp.mean(-1, keepdims=True), scale, out=np.zeros_like(scale), where=scale > 0)
    return f1 + np.divide(2 * tp - f1 * (t + p), scale, out=np.zeros_like(tp), where=scale > 0)


def paired_difference(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, num_classes: int,
                      confidence: float = CONFIDENCE) -> dict:
    """Variant A minus variant B, paired by seed and by test image. y: [N] test labels; pred_a, pred_b: [S, N]
    predictions of the S shared seeds (row s of each is seed s). Returns {"accuracy", "macro_f1"}: intervals
    (``crossed_interval``), and "per_class": [K] of {"recall", "f1"} intervals (recall on the class's own images)."""
    y = np.asarray(y)
    right_a, right_b = (pred_a == y).astype(float), (pred_b == y).astype(float)
    f1 = [_f1_pseudo(y, pred_a, k) - _f1_pseudo(y, pred_b, k) for k in range(num_classes)]  # [S, N] each
    out = {"accuracy": crossed_interval(right_a - right_b, confidence) | {
               "leave_one_seed_out": leave_one_seed_out(right_a - right_b, confidence)},
           "macro_f1": crossed_interval(np.mean(f1, axis=0), confidence), "per_class": []}
    for k in range(num_classes):
        own = y == k
        out["per_class"].append({"recall": crossed_interval((right_a - right_b)[:, own], confidence),
                                 "f1": crossed_interval(f1[k], confidence)})
    return out


def direction(interval: dict) -> str:
    """better | worse | none: what an interval says of A - B."""
    if not interval["significant"]:
        return "none"
    return "better" if interval["mean"] > 0 else "worse"


def leave_one_seed_out(d: np.ndarray, confidence: float = CONFIDENCE) -> dict:
    """Whether the verdict on ``d`` ([S seeds, N images]) survives leaving out any one seed: float rounding differs
    between machines, and a verdict that one seed's luck decides flips on another. {"directions": the verdict
    without seed row s, for each s; "stable": all equal the verdict with every seed}. With one seed there is nothing
    to leave out: stable is None."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2:
        return {"directions": [], "stable": None}
    full = direction(crossed_interval(d, confidence))
    without = [direction(crossed_interval(np.delete(d, s, axis=0), confidence)) for s in range(len(d))]
    return {"directions": without, "stable": all(w == full for w in without)}


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down correction (Holm 1979): which of m tests are significant at family-wise error ``alpha``.
    The k-th smallest p-value (from 0) is compared with alpha / (m - k); the first that fails stops the rest."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    keep = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        keep[i] = True
    return keep


def verdict(name: str, interval: dict, what: str = "test accuracy") -> str:
    """One sentence on a paired difference, e.g. 'augmented - baseline: +0.0123 test accuracy, 95% CI [-0.004,
    +0.029] over 3 seeds and 360 test images: no significant difference (holds leaving out any one seed).'"""
    head = f"{name}: {interval['mean']:+.4f} {what}"
    n = interval["n"]
    ci = (f"{round(100 * interval['confidence'])}% CI [{interval['low']:+.4f}, {interval['high']:+.4f}] over "
          f"{n} seed{'s' if n != 1 else ''} and {interval['images']:,} test images")
    said = {"none": "no significant difference", "better": "significantly better", "worse": "significantly worse"}
    loso = interval.get("leave_one_seed_out") or {"stable": None}
    if loso["stable"] is None:
        tail = ""
    elif loso["stable"]:
        tail = " (holds leaving out any one seed)"
    else:
        flips = sorted({said[w] for w in loso["directions"] if w != direction(interval)})
        tail = f" (FRAGILE, not a finding: leaving out one seed it is {' or '.join(flips)})"
    return f"{head}, {ci}: {said[direction(interval)]}{tail}."
