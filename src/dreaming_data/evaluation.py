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
    """Row-normalised confusion matrix (each row: where images of that class went), as a PNG annotated like
    seaborn's heatmap, drawn with matplotlib alone: seaborn's import (scipy, pandas) cost each of the many evaluation
    stages ~0.6 s (the compare stage draws the study's summary plots with it)."""
    cm = confusion_counts(y_true, y_pred, len(classes)).astype(np.float64)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    plt = pyplot()
    size = 1.6 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    cmap = plt.get_cmap("Blues")
    image = ax.imshow(cm, cmap=cmap, vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the actual class")
    rgb = cmap(cm)[..., :3]  # seaborn's text colour: by the cell's relative luminance (sRGB linearised)
    luminance = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4) @ [0.2126, 0.7152, 0.0722]
    for (i, j), share in np.ndenumerate(cm):  # K^2 labels
        ax.text(j, i, f"{share:.2f}", ha="center", va="center", fontsize=7,
                color="0.15" if luminance[i, j] > 0.408 else "w")
    ax.set_xticks(range(len(classes)), list(classes), rotation=90)
    ax.set_yticks(range(len(classes)), list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)
