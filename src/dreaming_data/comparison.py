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


DIFFERENCES = {"augmented_minus_baseline": ("augmented", "baseline"),
               "augmented_minus_matched": ("augmented", "baseline_matched")}


def compare_runs(results: dict[str, dict[str, dict[int, dict]]]) -> dict:
    """results[arch][variant][seed] = metrics of ``classification_metrics``. Per architecture: mean and std across
    seeds per variant; augmented - baseline and augmented - baseline_matched paired by seed, with a 95% t-interval
    and a verdict; per-class precision/recall/F1 differences (means of the per-seed differences)."""
    from dreaming_data.stats import paired_interval, verdict

    out: dict = {}
    for arch, by_variant in results.items():
        variants = {}
        for variant, by_seed in by_variant.items():
            seeds = sorted(by_seed)
            classes = list(by_seed[seeds[0]]["per_class"])
            variants[variant] = {
                "seeds": seeds,
                "accuracy": _spread([by_seed[s]["accuracy"] for s in seeds]),
                "macro_f1": _spread([by_seed[s]["macro_f1"] for s in seeds]),
                "per_class": {c: {m: _r(np.mean([by_seed[s]["per_class"][c][m] for s in seeds]))
                                  for m in ("precision", "recall", "f1")} for c in classes},
            }
        differences = {}
        for name, (a_name, b_name) in DIFFERENCES.items():
            if a_name not in by_variant or b_name not in by_variant:
                continue
            a, b = by_variant[a_name], by_variant[b_name]
            seeds = sorted(set(a) & set(b))
            classes = list(b[seeds[0]]["per_class"])
            acc = paired_interval([a[s]["accuracy"] for s in seeds], [b[s]["accuracy"] for s in seeds])
            f1 = paired_interval([a[s]["macro_f1"] for s in seeds], [b[s]["macro_f1"] for s in seeds])
            label = f"{arch}, {a_name} - {b_name}"
            differences[name] = {
                "seeds": seeds,
                "accuracy": {k: _r(v) if k not in ("n", "significant") else v for k, v in acc.items()},
                "macro_f1": {k: _r(v) if k not in ("n", "significant") else v for k, v in f1.items()},
                "per_class": {c: {m: _r(np.mean([a[s]["per_class"][c][m] - b[s]["per_class"][c][m] for s in seeds]))
                                  for m in ("precision", "recall", "f1")} for c in classes},
                "verdict": verdict(label, acc),
            }
        out[arch] = {"variants": variants, "differences": differences}
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
        out[arch] = row
    return out


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
            lines += ["", "Per-class differences, mean over seeds (precision / recall / F1):", "",
                      "| class | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            classes = list(next(iter(c["differences"].values()))["per_class"])
            for cls in classes:
                cells = []
                for name in names:
                    d = c["differences"][name]["per_class"][cls]
                    cells.append(f"{d['precision']:+.3f} / {d['recall']:+.3f} / {d['f1']:+.3f}")
                lines.append(f"| {cls} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Intervals: 95% paired t-intervals over seeds (a seed's variants share their initialisation and "
              "data-order seeds). baseline_matched trains on the real images only, for as many optimizer steps as "
              "augmented: augmented - baseline_matched is the gain from the dreamed images themselves, "
              "augmented - baseline also includes the extra steps."]
    return "\n".join(lines) + "\n"


def val_accuracy_frames(histories: dict[str, list[list[dict]]]) -> dict[str, pd.DataFrame]:
    """histories[variant] = one training history per seed. Per variant: validation accuracy per epoch, mean and std
    over seeds, against the optimizer steps done (seeds of a variant share their step counts)."""
    frames = {}
    for variant, runs in histories.items():
        acc = np.asarray([[h["val_acc"] for h in run] for run in runs], dtype=np.float64)  # [seeds, epochs]
        frames[variant] = pd.DataFrame({"steps": [h["steps"] for h in runs[0]], "epoch": [h["epoch"] for h in runs[0]],
                                        "val_acc": np.round(acc.mean(0), 5), "val_acc_std": np.round(acc.std(0), 5)})
    return frames


def val_accuracy_figure(frames: dict[str, dict[str, pd.DataFrame]], path: Path) -> None:
    """frames[arch][variant] from ``val_accuracy_frames``: mean validation accuracy (±1 std band) against optimizer
    steps, one panel per architecture (the report's Fig. 3, at equal cost on the x axis)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(frames), figsize=(6.4 * len(frames), 4), squeeze=False)
    for ax, (arch, by_variant) in zip(axes[0], frames.items()):
        for variant, f in by_variant.items():
            ax.plot(f["steps"], f["val_acc"], label=variant)
            ax.fill_between(f["steps"], f["val_acc"] - f["val_acc_std"], f["val_acc"] + f["val_acc_std"], alpha=0.2)
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel("validation accuracy")
        ax.set_title(arch)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
