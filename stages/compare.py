"""DVC stage ``compare``: per architecture, every variant's test accuracy over seeds and the paired differences
augmented - baseline and augmented - baseline_matched with their intervals and verdicts (metrics/comparison.json,
metrics/summary.json, reports/comparison.md), and validation accuracy against optimizer steps."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.config import VARIANTS
from dreaming_data.stage import Stage

REPORT = paths.REPORTS / "comparison.md"


def runs(p) -> list[tuple[str, str, int]]:
    return [(a, v, s) for a in p.classifier.archs for v in VARIANTS for s in p.classifier.seeds_of(a)]


def eval_json(arch: str, variant: str, seed: int):
    return paths.METRICS / "eval" / f"{paths.classifier_name(arch, variant, seed)}.json"


def history_csv(arch: str, variant: str, seed: int):
    return paths.PLOTS / "classifier" / f"{paths.classifier_name(arch, variant, seed)}.csv"


def predictions_csv(arch: str, variant: str, seed: int):
    """The evaluation's confusion rows: one row per test image, in the test split's order (actual, predicted)."""
    return paths.PLOTS / "confusion" / f"{paths.classifier_name(arch, variant, seed)}.csv"


def read_predictions(csv, classes: list[str]):
    """(labels, predictions) of the test images as class indices."""
    import csv as csv_module

    import numpy as np

    from dreaming_data.errors import UserError
    from dreaming_data.io import missing

    index = {c: i for i, c in enumerate(classes)}
    try:
        with open(csv, newline="", encoding="utf-8") as f:
            rows = list(csv_module.DictReader(f))
        return (np.array([index[r["actual"]] for r in rows], dtype=np.int64),
                np.array([index[r["predicted"]] for r in rows], dtype=np.int64))
    except FileNotFoundError:
        raise missing(csv) from None
    except (KeyError, UnicodeDecodeError, csv_module.Error):
        raise UserError(f"{csv}: not the test predictions of classes {classes} (run `dvc repro {paths.made_by(csv)}`)")\
            from None


def read_history(csv) -> list[dict]:
    import pandas as pd

    from dreaming_data.errors import UserError
    from dreaming_data.io import missing

    try:
        return pd.read_csv(csv)[["epoch", "steps", "val_acc"]].to_dict("records")
    except FileNotFoundError:
        raise missing(csv) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError, UnicodeDecodeError):
        raise UserError(f"{csv}: not a training history with epoch, steps and val_acc columns "
                        f"(run `dvc repro {paths.made_by(csv)}`)") from None


def run(p) -> dict:
    from dreaming_data.comparison import (compare_runs, comparison_markdown, per_class_figure, summary,
                                          val_accuracy_figure, val_accuracy_frames, val_accuracy_tidy)
    from dreaming_data.errors import UserError
    from dreaming_data.io import read_json, write_csv, write_json, write_text

    results: dict = {}
    predictions: dict = {}
    histories: dict = {}
    steps: dict = {}
    labels = None
    for arch, variant, seed in runs(p):
        metrics_path = eval_json(arch, variant, seed)
        results.setdefault(arch, {}).setdefault(variant, {})[seed] = metrics = read_json(metrics_path)
        if not isinstance(metrics, dict) or not {"accuracy", "macro_f1", "per_class"} <= set(metrics):
            raise UserError(f"{metrics_path}: not test metrics (run `dvc repro evaluate_{arch}@{variant}-{seed}`)")
        classes = list(metrics["per_class"])
        y, pred = read_predictions(predictions_csv(arch, variant, seed), classes)
        if labels is not None and (len(y) != len(labels) or (y != labels).any()):
            raise UserError(f"{predictions_csv(arch, variant, seed)}: another test split than the other runs' "
                            f"(run `dvc repro evaluate_{arch}@{variant}-{seed}`)")
        labels = y
        accuracy = metrics["accuracy"]
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or \
                abs(accuracy - float((pred == y).mean())) > 1e-4:  # the means from one, the differences from the other
            raise UserError(f"{metrics_path}: accuracy {accuracy!r} but its predictions "
                            f"({predictions_csv(arch, variant, seed)}) give {float((pred == y).mean()):.5f} "
                            f"(run `dvc repro evaluate_{arch}@{variant}-{seed}`)")
        predictions.setdefault(arch, {}).setdefault(variant, {})[seed] = pred
        history = read_history(history_csv(arch, variant, seed))
        histories.setdefault(arch, {}).setdefault(variant, []).append(history)
        steps.setdefault(arch, {})[variant] = int(history[-1]["steps"])
    frames = {arch: val_accuracy_frames(h) for arch, h in histories.items()}
    for arch, by_variant in frames.items():
        for variant, frame in by_variant.items():
            write_csv(frame, paths.PLOTS / "compare" / f"{arch}-{variant}.csv")
    cmp = compare_runs(results, predictions, labels, classes)
    write_json(paths.METRICS / "comparison.json", cmp)
    write_json(paths.METRICS / "summary.json", summary(cmp))
    val_accuracy_figure(val_accuracy_tidy(histories), paths.PLOTS / "compare" / "val_accuracy.png")
    per_class_figure(cmp, paths.PLOTS / "compare" / "per_class.png")
    text = comparison_markdown(cmp, f"{p.data.source}: {p.data.train_per_class or 'all'} real images per class", steps)
    write_text(REPORT, text)
    print(text)
    return cmp


def small(p) -> list:
    return [paths.METRICS / "comparison.json", paths.METRICS / "summary.json", REPORT,
            paths.PLOTS / "compare" / "val_accuracy.png", paths.PLOTS / "compare" / "per_class.png"] + [
        paths.PLOTS / "compare" / f"{a}-{v}.csv" for a in p.classifier.archs for v in VARIANTS]


STAGE = Stage("compare", run,
              inputs=lambda p: [f(*r) for r in runs(p) for f in (eval_json, history_csv, predictions_csv)],
              small=small,
              priority=lambda p: (4,))

if __name__ == "__main__":
    STAGE.main()
