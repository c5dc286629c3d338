"""The baseline-versus-augmented comparison across seeds: per architecture, the variants' spread, the paired
differences with their intervals and verdicts, the report, and validation accuracy against optimizer steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dreaming_data.io import pyplot, save_figure


def _r(x, digits: int = 5):
    """Round a float (or every float in a list) for JSON; None stays None."""
    if isinstance(x, list):
        return [_r(v, digits) for v in x]
    return None if x is None else round(float(x), digits)


def _spread(values: list[float]) -> dict:
    from dreaming_data.stats import mean_std

    s = mean_std(values)
    return {"mean": _r(s["mean"]), "std": _r(s["std"]), "n": s["n"]}


def _rounded(interval: dict) -> dict:
    kept = ("n", "images", "significant", "confidence", "leave_one_seed_out")
    return {k: v if k in kept else _r(v) for k, v in interval.items()}


DIFFERENCES = {"augmented_minus_baseline": ("augmented", "baseline"),
               "augmented_minus_matched": ("augmented", "baseline_matched")}
METHOD = ("seeds x test images, a crossed random-effects design (variance components from its mean squares, "
          "Satterthwaite's degrees of freedom; F1 linearised)")


def _variant(by_seed: dict[int, dict]) -> dict:
    seeds = sorted(by_seed)
    classes = list(by_seed[seeds[0]]["per_class"])
    return {"seeds": seeds,
            "accuracy": _spread([by_seed[s]["accuracy"] for s in seeds]),
            "macro_f1": _spread([by_seed[s]["macro_f1"] for s in seeds]),
            "per_class": {c: {m: _r(np.mean([by_seed[s]["per_class"][c][m] for s in seeds]))
                              for m in ("precision", "recall", "f1")} for c in classes}}


def _difference(label: str, y: np.ndarray, pred_a: dict[int, np.ndarray], pred_b: dict[int, np.ndarray],
                classes: list[str]) -> dict:
    """A minus B over their shared seeds: accuracy and macro F1 with intervals and a verdict; per class, recall and
    F1 with intervals, a p-value and whether they survive Holm's correction over the classes."""
    from dreaming_data.stats import ALPHA, holm, paired_difference, verdict

    seeds = sorted(set(pred_a) & set(pred_b))
    boot = paired_difference(y, np.stack([pred_a[s] for s in seeds]), np.stack([pred_b[s] for s in seeds]),
                             len(classes))
    per_class = {c: {m: _rounded(boot["per_class"][k][m]) for m in ("recall", "f1")} for k, c in enumerate(classes)}
    survivors = {}
    for m in ("recall", "f1"):
        kept = holm([boot["per_class"][k][m]["p"] for k in range(len(classes))], ALPHA)
        for c, keep in zip(classes, kept):
            per_class[c][m]["holm"] = keep
        survivors[m] = int(sum(kept))
    return {"seeds": seeds, "test_images": len(y), "method": METHOD,
            "accuracy": _rounded(boot["accuracy"]), "macro_f1": _rounded(boot["macro_f1"]), "per_class": per_class,
            "holm_survivors": survivors, "verdict": verdict(label, boot["accuracy"])}


def compare_runs(results: dict[str, dict[str, dict[int, dict]]], predictions: dict[str, dict[str, dict[int, np.ndarray]]],
                 y: np.ndarray, classes: list[str]) -> dict:
    """results[arch][variant][seed]: metrics of ``classification_metrics``; predictions[arch][variant][seed]: [N]
    predicted classes of the N test images ``y``. Per architecture: mean and std across seeds per variant, and
    augmented - baseline and augmented - baseline_matched paired by seed and by test image (``_difference``)."""
    out: dict = {}
    for arch, by_variant in results.items():
        differences = {}
        for name, (a, b) in DIFFERENCES.items():
            if a in by_variant and b in by_variant:
                differences[name] = _difference(f"{arch}, {a} - {b}", y, predictions[arch][a], predictions[arch][b],
                                                classes)
        out[arch] = {"variants": {v: _variant(by_seed) for v, by_seed in by_variant.items()},
                     "differences": differences}
    return out


def summary(cmp: dict) -> dict:
    """The headline numbers per architecture, flat (what ``dvc metrics diff`` compares across experiments): mean test
    accuracy per variant, and each paired difference with its 95% interval."""
    out = {}
    for arch, c in cmp.items():
        row: dict = {"arch": arch}
        for variant, v in c["variants"].items():
            row[variant] = v["accuracy"]["mean"]
        for name, d in c["differences"].items():
            row[name] = d["accuracy"]["mean"]
            row[f"{name}_low"], row[f"{name}_high"] = d["accuracy"]["low"], d["accuracy"]["high"]
            row[f"{name}_significant"] = d["accuracy"]["significant"]
            row[f"{name}_stable"] = (d["accuracy"].get("leave_one_seed_out") or {}).get("stable")
        out[arch] = row
    return out


def _ci(d: dict, star: bool = False) -> str:
    mark = "*" if star and d.get("holm") else ""
    return f"{d['mean']:+.3f}{mark} [{d['low']:+.3f}, {d['high']:+.3f}]"


def comparison_markdown(cmp: dict, title: str, steps: dict[str, dict[str, int]]) -> str:
    """steps[arch][variant]: optimizer steps of one run."""
    lines = [f"# {title}", ""]
    for arch, c in cmp.items():
        lines += [f"## {arch}", "", "| variant | seeds | optimizer steps | test accuracy | macro F1 |", "|---|---|---|---|---|"]
        for variant, v in c["variants"].items():
            acc, f1 = v["accuracy"], v["macro_f1"]
            sd = lambda x: "" if x["std"] is None else f" ± {x['std']:.4f}"  # noqa: E731
            lines.append(f"| {variant} | {len(v['seeds'])} | {steps.get(arch, {}).get(variant, '?')} | "
                         f"{acc['mean']:.4f}{sd(acc)} | {f1['mean']:.4f}{sd(f1)} |")
        lines.append("")
        lines += [f"- {d['verdict']}" for d in c["differences"].values()]
        if c["differences"]:
            names = list(c["differences"])
            lines += ["", "Per-class recall and F1 differences, mean over seeds [95% interval]; * survives Holm's "
                          "correction over the classes of its column:", "",
                      "| class | " + " | ".join(f"{n} recall | {n} F1" for n in names) + " |",
                      "|---" * (2 * len(names) + 1) + "|"]
            for cls in next(iter(c["differences"].values()))["per_class"]:
                cells = [_ci(c["differences"][n]["per_class"][cls][m], star=True) for n in names for m in ("recall", "f1")]
                lines.append(f"| {cls} | " + " | ".join(cells) + " |")
        lines.append("")
    first = next((d for c in cmp.values() for d in c["differences"].values()), None)
    if first:
        k = len(first["per_class"])
        lines += [f"Intervals: 95%, over the seeds and the {first['test_images']:,} test images: {first['method']} "
                  f"(a seed's variants share their initialisation and data order; every variant is scored on the same "
                  f"images, so seeds that agree still leave the test set's width). The per-class intervals are 95% "
                  f"each: among "
                  f"{k} classes x {len(cmp) * len(DIFFERENCES)} comparisons some exclude 0 by chance; * marks those "
                  f"that survive Holm's step-down correction (family-wise 5%, over the {k} classes of a column).",
                  "", "baseline_matched trains on the real images only, for as many optimizer steps as augmented: "
                  "augmented - baseline_matched is the gain from the dreamed images themselves, augmented - baseline "
                  "also includes the extra steps."]
    return "\n".join(lines) + "\n"


def per_class_figure(cmp: dict, path: Path) -> None:
    """Heatmap of per-class recall differences: classes x (architecture, comparison); * survives Holm."""
    import seaborn as sns

    plt = pyplot()
    columns = [(arch, name) for arch, c in cmp.items() for name in c["differences"]]
    classes = list(next(iter(next(iter(cmp.values()))["differences"].values()))["per_class"])
    cells = [[cmp[a]["differences"][n]["per_class"][cls]["recall"] for a, n in columns] for cls in classes]
    values = pd.DataFrame([[d["mean"] for d in row] for row in cells], index=classes,
                          columns=[f"{a}\n{n.replace('augmented_minus_', 'aug - ')}" for a, n in columns])
    marks = np.array([[f"{d['mean']:+.3f}{'*' if d.get('holm') else ''}" for d in row] for row in cells])
    limit = max(0.05, float(values.abs().to_numpy().max()))
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(columns), 1.2 + 0.45 * len(classes)))
    sns.heatmap(values, annot=marks, fmt="", annot_kws={"fontsize": 8}, cmap="RdBu", center=0, vmin=-limit,
                vmax=limit, cbar_kws={"label": "recall difference"}, ax=ax)  # blue: the dreams helped
    ax.tick_params(axis="x", labelsize=8, rotation=0)
    ax.set_title("Per-class recall: augmented minus control (* survives Holm)")
    fig.tight_layout()
    save_figure(fig, path)


def val_accuracy_frames(histories: dict[str, list[list[dict]]]) -> dict[str, pd.DataFrame]:
    """histories[variant] = one training history per seed. Per variant: validation accuracy per epoch, mean and std
    over seeds, against the optimizer steps done (seeds of a variant share their step counts)."""
    frames = {}
    for variant, runs in histories.items():
        acc = np.asarray([[h["val_acc"] for h in run] for run in runs], dtype=np.float64)  # [seeds, epochs]
        frames[variant] = pd.DataFrame({"steps": [h["steps"] for h in runs[0]], "epoch": [h["epoch"] for h in runs[0]],
                                        "val_acc": np.round(acc.mean(0), 5), "val_acc_std": np.round(acc.std(0), 5)})
    return frames


def val_accuracy_tidy(histories: dict[str, dict[str, list[list[dict]]]]) -> pd.DataFrame:
    """histories[arch][variant] = one training history per seed -> one row per (arch, variant, seed, epoch):
    arch, variant, seed (its position), epoch, steps, val_acc."""
    return pd.DataFrame([{"arch": arch, "variant": variant, "seed": i, "epoch": h["epoch"], "steps": h["steps"],
                          "val_acc": h["val_acc"]}
                         for arch, by_variant in histories.items() for variant, runs in by_variant.items()
                         for i, run in enumerate(runs) for h in run])


def val_accuracy_figure(tidy: pd.DataFrame, path: Path) -> None:
    """``val_accuracy_tidy``'s rows: mean validation accuracy over seeds (±1 std band) against optimizer steps, one
    panel per architecture (the report's Fig. 3, at equal cost on the x axis)."""
    import seaborn as sns

    plt = pyplot()
    archs = list(dict.fromkeys(tidy["arch"]))
    fig, axes = plt.subplots(1, len(archs), figsize=(6.4 * len(archs), 4), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        sns.lineplot(data=tidy[tidy["arch"] == arch], x="steps", y="val_acc", hue="variant", errorbar="sd", ax=ax)
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel("validation accuracy")
        ax.set_title(arch)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
