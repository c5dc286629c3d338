"""Merge, augmentation, metrics, confusion rows, comparison, and resumable generation."""

import numpy as np
import pandas as pd
import pytest
import torch

from dreaming_data.classifier_training import random_crop_flip
from dreaming_data.config import parse_params
from dreaming_data.selection import merge_synthetic
from dreaming_data.comparison import compare_runs
from dreaming_data.evaluation import classification_metrics, confusion_rows
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet

from conftest import tiny_params


def images(n, label_offset=0, synthetic=False, classes=("a", "b", "c")):
    x = np.arange(n * 4 * 4 * 1, dtype=np.int64).reshape(n, 4, 4, 1).astype(np.uint8)
    y = (np.arange(n) + label_offset) % len(classes)
    return ImageSet(x, y.astype(np.int64), classes, np.full(n, synthetic))


def test_merge_keeps_every_real_image_and_label():
    real, syn = images(7), images(12, label_offset=1, synthetic=True)
    merged = merge_synthetic(real, syn, per_class=2)
    assert len(merged) == 7 + 6
    assert (merged.x[:7] == real.x).all() and (merged.y[:7] == real.y).all()
    assert not merged.synthetic[:7].any() and merged.synthetic[7:].all()
    assert np.bincount(merged.y[7:], minlength=3).tolist() == [2, 2, 2]
    assert len(merge_synthetic(real, syn, per_class=None)) == 19
    with pytest.raises(UserError, match="other class names"):
        merge_synthetic(real, images(3, classes=("x", "y", "z")), None)


def test_metrics_hand_made_example():
    # 6 images; class 0: 2 of 3 right, class 1: 1 of 2 right, class 2: 1 of 1 right
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y_true, y_pred, ("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-5)
    # precision: a 2/2, b 1/2, c 1/2; recall: a 2/3, b 1/2, c 1/1
    assert m["per_class"]["a"]["precision"] == 1.0 and m["per_class"]["a"]["recall"] == pytest.approx(2 / 3, abs=1e-5)
    assert m["per_class"]["c"]["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5, abs=1e-5)
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3, abs=1e-5)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3, abs=1e-5)
    assert m["per_class"]["b"]["support"] == 2


@pytest.mark.parametrize("seed", range(4))
def test_metrics_are_scikit_learns(seed):
    """The numpy metrics against scikit-learn (the reference), with classes never predicted or never present."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    K = 6
    y_true, y_pred = rng.integers(0, K - 1, 200), rng.integers(0, K - 2 + seed % 2, 200)
    m = classification_metrics(y_true, y_pred, tuple("abcdef"))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=list(range(K)), zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=list(range(K)), average="macro",
                                                   zero_division=0)
    assert m["accuracy"] == round(float(accuracy_score(y_true, y_pred)), 5)
    assert (m["macro_precision"], m["macro_recall"], m["macro_f1"]) == tuple(round(float(v), 5) for v in (mp, mr, mf))
    for i, c in enumerate("abcdef"):
        assert m["per_class"][c] == {"precision": round(float(p[i]), 5), "recall": round(float(r[i]), 5),
                                     "f1": round(float(f[i]), 5), "support": int(support[i])}


def test_confusion_rows_match_predictions():
    y_true, y_pred = np.array([0, 2, 1, 1]), np.array([0, 1, 1, 2])
    rows = pd.DataFrame(confusion_rows(y_true, y_pred, ("cat", "dog", "emu")))
    assert list(rows.columns) == ["actual", "predicted"]
    assert rows.values.tolist() == [["cat", "cat"], ["emu", "dog"], ["dog", "dog"], ["dog", "emu"]]
    counts = pd.crosstab(rows.actual, rows.predicted)
    assert counts.loc["dog", "emu"] == 1 and counts.values.sum() == 4


def predictions_with(y: np.ndarray, correct: int, shift: int = 0) -> np.ndarray:
    """Predictions that get the first ``correct`` images of a rotation of the test set right (from ``shift``)."""
    order = np.roll(np.arange(len(y)), shift)
    pred = (y + 1) % 2
    pred[order[:correct]] = y[order[:correct]]
    return pred


def test_compare_pairs_by_seed_and_by_test_image():
    y = np.arange(200) % 2
    classes = ["a", "b"]
    runs = {"baseline": [100, 120, 110], "baseline_matched": [112, 132, 120], "augmented": [110, 140, 120]}
    preds = {v: {s: predictions_with(y, n, 7 * s) for s, n in enumerate(ns)} for v, ns in runs.items()}
    results = {v: {s: classification_metrics(y, p, ("a", "b")) for s, p in by_seed.items()} for v, by_seed in preds.items()}
    cmp = compare_runs({"cnn": results}, {"cnn": preds}, y, classes)["cnn"]
    assert cmp["variants"]["baseline"]["accuracy"] == {"mean": 0.55, "std": pytest.approx(0.05), "n": 3}
    d = cmp["differences"]["augmented_minus_baseline"]
    assert d["accuracy"]["per_seed"] == pytest.approx([0.05, 0.1, 0.05]) and d["test_images"] == 200
    assert d["accuracy"]["mean"] == pytest.approx(0.0667, abs=1e-4)
    assert d["accuracy"]["low"] < d["accuracy"]["mean"] < d["accuracy"]["high"] and "crossed" in d["method"]
    assert ("significantly better" in d["verdict"]) == d["accuracy"]["significant"]
    assert set(d["per_class"]) == {"a", "b"} and {"recall", "f1"} <= set(d["per_class"]["a"])
    assert isinstance(d["per_class"]["a"]["recall"]["holm"], bool)
    assert d["holm_survivors"] == {m: sum(d["per_class"][c][m]["holm"] for c in classes) for m in ("recall", "f1")}


def test_confident_filter_keeps_the_judges_favourites():
    from dreaming_data.selection import select_confident

    syn = images(12, synthetic=True)  # classes 0, 1, 2 in turn: class 0 holds rows 0, 3, 6, 9
    probs = np.full((12, 3), 0.1)
    probs[[0, 3, 6, 9], 0] = [0.2, 0.9, 0.5, 0.99]  # row 9 lies beyond the candidates of 2 kept of 4 x 0.5
    kept, conf = select_confident(syn, probs, per_class=1, keep_fraction=0.5)
    assert kept.y.tolist() == [0, 1, 2] and (kept.x[0] == syn.x[3]).all()  # of rows 0 and 3, row 3
    assert conf == pytest.approx((0.9 + 0.1 + 0.1) / 3)
    every, _ = select_confident(syn, probs, per_class=None, keep_fraction=0.5)  # of all 4 per class keep 2
    assert np.flatnonzero(every.y == 0).size == 2 and {bytes(r) for r in every.x[every.y == 0]} == {
        bytes(syn.x[3]), bytes(syn.x[9])}
    with pytest.raises(UserError, match="probabilities of shape"):
        select_confident(syn, probs[:, :2], 1, 0.5)


def test_random_crop_flip_is_a_shifted_window():
    x = torch.arange(2 * 6 * 6 * 1, dtype=torch.uint8).reshape(2, 6, 6, 1)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, pad=2, flip=False, gen=g)
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (2,), generator=g)
    dx = torch.randint(0, 5, (2,), generator=g)
    padded = torch.nn.functional.pad(x, (0, 0, 2, 2, 2, 2))
    for b in range(2):
        assert torch.equal(out[b], padded[b, dy[b]:dy[b] + 6, dx[b]:dx[b] + 6])
    flipped = random_crop_flip(x, pad=0, flip=True, gen=torch.Generator().manual_seed(3))
    for b in range(2):
        assert torch.equal(flipped[b], x[b]) or torch.equal(flipped[b], x[b].flip(1))
