"""Test-set metrics, confusion matrices, and the baseline-versus-augmented comparison across seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dreaming_data.io import atomic_path


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


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def confusion_heatmap(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], title: str, path: Path) -> None:
    """Row-normalised confusion matrix (each row: where images of that class went), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))), normalize="true")
    size = 1.6 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(cm, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, xticklabels=classes, yticklabels=classes,
                ax=ax, annot_kws={"size": 7})
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def mean_std(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(a.mean()), 5), "std": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 5), "n": len(a)}


def compare_runs(results: dict[str, dict[int, dict]]) -> dict:
    """results[variant][seed] = metrics of ``classification_metrics``. Mean and std across seeds per variant, and
    augmented - baseline paired by seed (std of the per-seed differences)."""
    out: dict = {"variants": {}}
    for variant, by_seed in results.items():
        seeds = sorted(by_seed)
        classes = list(by_seed[seeds[0]]["per_class"])
        out["variants"][variant] = {
            "seeds": seeds,
            "accuracy": mean_std([by_seed[s]["accuracy"] for s in seeds]),
            "macro_f1": mean_std([by_seed[s]["macro_f1"] for s in seeds]),
            "per_class_f1": {c: mean_std([by_seed[s]["per_class"][c]["f1"] for s in seeds])["mean"] for c in classes},
        }
    if "baseline" in results and "augmented" in results:
        b, a = results["baseline"], results["augmented"]
        seeds = sorted(set(a) & set(b))
        classes = list(b[seeds[0]]["per_class"])
        out["augmented_minus_baseline"] = {
            "seeds": seeds,
            "accuracy": mean_std([a[s]["accuracy"] - b[s]["accuracy"] for s in seeds]),
            "macro_f1": mean_std([a[s]["macro_f1"] - b[s]["macro_f1"] for s in seeds]),
            "per_class_f1": {c: round(float(np.mean([a[s]["per_class"][c]["f1"] - b[s]["per_class"][c]["f1"]
                                                     for s in seeds])), 5) for c in classes},
        }
    return out


def comparison_markdown(cmp: dict, title: str) -> str:
    lines = [f"# {title}", "", "| variant | seeds | test accuracy | macro F1 |", "|---|---|---|---|"]
    for variant, v in cmp["variants"].items():
        acc, f1 = v["accuracy"], v["macro_f1"]
        lines.append(f"| {variant} | {len(v['seeds'])} | {acc['mean']:.4f} ± {acc['std']:.4f} | "
                     f"{f1['mean']:.4f} ± {f1['std']:.4f} |")
    if "augmented_minus_baseline" in cmp:
        d = cmp["augmented_minus_baseline"]
        lines += ["", f"augmented − baseline, paired by seed: accuracy {d['accuracy']['mean']:+.4f} ± "
                      f"{d['accuracy']['std']:.4f}, macro F1 {d['macro_f1']['mean']:+.4f} ± {d['macro_f1']['std']:.4f}",
                  "", "| class | F1 difference |", "|---|---|"]
        lines += [f"| {c} | {v:+.4f} |" for c, v in d["per_class_f1"].items()]
    return "\n".join(lines) + "\n"


def val_accuracy_figure(curves: dict[str, list[list[float]]], path: Path) -> pd.DataFrame:
    """curves[variant] = one validation-accuracy list per seed. Mean curve with a ±1 std band per variant, one
    figure (the report's Fig. 3); returns the mean curves as a frame (epoch, <variant>...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = {}
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for variant, runs in curves.items():
        a = np.asarray(runs, dtype=np.float64)  # [seeds, epochs]
        m, s = a.mean(0), a.std(0)
        epochs = np.arange(1, a.shape[1] + 1)
        ax.plot(epochs, m, label=f"{variant} ({len(runs)} seeds)")
        ax.fill_between(epochs, m - s, m + s, alpha=0.2)
        frame["epoch"] = epochs
        frame[variant] = np.round(m, 5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return pd.DataFrame(frame)
