"""Test-set metrics of a classifier: accuracy, per-class and macro precision/recall/F1, confusion matrices (numpy and
matplotlib only: an evaluation stage starts fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dreaming_data.io import pyplot, save_figure


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[K, K] int64: row = actual class, column = predicted class."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with 0 where b is 0 (scikit-learn's zero_division=0)."""
    return np.divide(a, b, out=np.zeros(len(a)), where=b != 0)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro precision/recall/F1 and the same per class, as scikit-learn's ``accuracy_score`` and
    ``precision_recall_fscore_support(zero_division=0)`` compute them (F1 = 2 TP / (2 TP + FP + FN); tested)."""
    cm = confusion_counts(y_true, y_pred, len(classes))
    tp, true, pred = np.diag(cm).astype(np.float64), cm.sum(1), cm.sum(0)
    p, r, f = _divide(tp, pred), _divide(tp, true), _divide(2 * tp, true + pred)
    return {
        "accuracy": round(float(tp.sum() / len(y_true)), 5),
        "macro_precision": round(float(p.mean()), 5),
        "macro_recall": round(float(r.mean()), 5),
        "macro_f1": round(float(f.mean()), 5),
        "per_class": {name: {"precision": round(float(p[i]), 5), "recall": round(float(r[i]), 5),
                             "f1": round(float(f[i]), 5), "support": int(true[i])}
                      for i, name in enumerate(classes)},
    }


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> list[dict]:
    """One row per test image, ``actual,predicted`` class names: what DVC's confusion templates read."""
    names = np.array(classes)
    return [{"actual": a, "predicted": p} for a, p in zip(names[y_true].tolist(), names[y_pred].tolist())]


def confusion_heatmap(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], title: str, path: Path) -> None:
    """Row-normalised confusion matrix (each row: where images of that class went), as a PNG."""
    import pandas as pd
    import seaborn as sns

    cm = confusion_counts(y_true, y_pred, len(classes)).astype(np.float64)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    plt = pyplot()
    size = 1.6 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(pd.DataFrame(cm, index=list(classes), columns=list(classes)), annot=True, fmt=".2f",
                annot_kws={"fontsize": 7}, cmap="Blues", vmin=0, vmax=1, square=True,
                cbar_kws={"label": "share of the actual class"}, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)
