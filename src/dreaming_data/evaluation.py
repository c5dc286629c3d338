"""Test-set metrics of a classifier: accuracy, per-class and macro precision/recall/F1, confusion matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dreaming_data.io import pyplot, save_figure


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro precision/recall/F1 and the same per class (scikit-learn; zero_division=0)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 5),
        "macro_precision": round(float(mp), 5),
        "macro_recall": round(float(mr), 5),
        "macro_f1": round(float(mf), 5),
        "per_class": {name: {"precision": round(float(p[i]), 5), "recall": round(float(r[i]), 5),
                             "f1": round(float(f[i]), 5), "support": int(support[i])}
                      for i, name in enumerate(classes)},
    }


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per test image, ``actual,predicted`` class names: what DVC's confusion templates read."""
    names = np.array(classes)
    return pd.DataFrame({"actual": names[y_true], "predicted": names[y_pred]})


def confusion_heatmap(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], title: str, path: Path) -> None:
    """Row-normalised confusion matrix (each row: where images of that class went), as a PNG."""
    import seaborn as sns
    from sklearn.metrics import confusion_matrix

    plt = pyplot()
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))), normalize="true")
    size = 1.6 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(cm, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, xticklabels=classes, yticklabels=classes,
                ax=ax, annot_kws={"size": 7})
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)
