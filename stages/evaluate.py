"""DVC stages ``evaluate_<arch>@<variant>-<seed>``: one trained classifier on the real test split: accuracy, per-class
and macro precision/recall/F1, and its confusion matrix."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.config import VARIANTS
from dreaming_data.stage import Part, Stage


def run(p, arch: str, variant: str, seed: int) -> None:
    from dreaming_data.classifier import load_classifier, predict
    from dreaming_data.evaluation import classification_metrics, confusion_heatmap, confusion_rows
    from dreaming_data.io import load_images, write_csv, write_json
    from dreaming_data.runtime import resolve_device

    name = paths.classifier_name(arch, variant, seed)
    device = resolve_device(p.runtime)
    test = load_images(paths.prepared("test"))
    model, norm, classes = load_classifier(paths.classifier_model(name), device, test,
                                           f"the images of {paths.prepared('test')}", arch)
    pred = predict(model, norm, test.x, device, p.runtime).argmax(1)
    metrics = {"arch": arch, "variant": variant, "seed": seed, **classification_metrics(test.y, pred, classes)}
    out = small(p, arch, variant, seed)
    write_json(out[0], metrics)
    write_csv(confusion_rows(test.y, pred, classes), out[1])
    confusion_heatmap(test.y, pred, classes, f"{arch}, {variant}, seed {seed}: accuracy {metrics['accuracy']:.3f}",
                      out[2])
    print(f"evaluate {name}: test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")


def small(p, arch: str, variant: str, seed: int) -> list:
    name = paths.classifier_name(arch, variant, seed)
    return [paths.METRICS / "eval" / f"{name}.json", paths.PLOTS / "confusion" / f"{name}.csv",
            paths.PLOTS / "confusion" / f"{name}.png"]


STAGE = Stage(
    "evaluate", run,
    matrix=lambda p: [{"arch": a, "variant": v, "seed": s} for a in p.classifier.archs for v in VARIANTS
                      for s in p.classifier.seeds_of(a)],
    inputs=lambda p, arch, variant, seed: [paths.classifier_model(paths.classifier_name(arch, variant, seed)),
                                           paths.prepared("test")],
    small=small,
    work=lambda p, s, arch, variant, seed: [Part("predict", arch, s.test)],
    priority=lambda p, arch, variant, seed: (3, p.classifier.archs.index(arch), 3, VARIANTS.index(variant), seed),
    per_arch=True)

if __name__ == "__main__":
    STAGE.main()
