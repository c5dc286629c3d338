"""One function per DVC stage: read the stage's inputs from their fixed paths, call the library, write outputs.

Each takes the parsed ``Params`` first, then the stage's matrix arguments. ``stages/*.py`` are their entry
points; ``dvc.yaml`` names the same paths.
"""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.config import Params


def download(p: Params) -> None:
    from dreaming_data.data import prepare_data

    outputs = {"train": paths.train_set("baseline"), "val": paths.prepared("val"), "test": paths.prepared("test")}
    m = prepare_data(p.data, outputs, paths.METRICS / "data.json")
    print(f"prepared {m['source']}: {len(m['classes'])} classes, image {m['image_shape']}, "
          f"train {m['totals']['train']}, val {m['totals']['val']}, test {m['totals']['test']}")


def _check_schedule(p: Params, schedule: str) -> None:
    from dreaming_data.errors import UserError

    if schedule not in p.ddpm.schedules:
        raise UserError(f"schedule {schedule!r} is not in ddpm.schedules {list(p.ddpm.schedules)}")


def train_ddpm(p: Params, schedule: str) -> None:
    import pandas as pd

    from dreaming_data.ddpm import save_ddpm, train_ddpm as train
    from dreaming_data.io import load_images, write_json

    _check_schedule(p, schedule)
    train_set = load_images(paths.train_set("baseline"))
    ema, r = train(p, schedule, train_set, paths.ddpm_checkpoint(schedule))
    save_ddpm(paths.ddpm_dir(schedule) / "model.pt", ema, p, schedule, train_set)
    loss_csv = paths.PLOTS / "ddpm" / f"loss-{schedule}.csv"
    loss_csv.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"epoch": range(1, len(r.epoch_losses) + 1), "loss": r.epoch_losses})
    frame.to_csv(loss_csv, index=False)
    write_json(paths.METRICS / f"ddpm-{schedule}.json", {
        "schedule": schedule,
        "final_loss": round(r.final_loss, 6),
        "images_per_s": round(r.images_per_s, 2),
        "wall_s": round(r.wall_s, 2),
        "parameters": r.parameters,
        "steps": r.steps,
        "resumed_from_step": r.resumed_from,
    })
    print(f"ddpm {schedule}: final epoch loss {r.final_loss:.4f}, {r.images_per_s:.0f} img/s, {r.wall_s:.0f} s")


def _sampler(p: Params, schedule: str):
    from dreaming_data.ddpm import load_ddpm
    from dreaming_data.runtime import resolve_device, setup_backends
    from dreaming_data.sampling import Sampler

    device = resolve_device(p.runtime)
    setup_backends(device)
    return Sampler(load_ddpm(paths.ddpm_dir(schedule) / "model.pt", device), p.diffusion, p.runtime, device)


def sample_noise(p: Params) -> None:
    from dreaming_data.io import load_images
    from dreaming_data.sampling import noise_picture, save_png

    train_set = load_images(paths.prepared("val"))
    save_png(noise_picture(train_set.x.shape[1:], train_set.classes, p.sample.columns, p.sample.seed),
             paths.PLOTS / "samples" / "noise.png")


def sample_grid(p: Params, schedule: str, steps: int) -> None:
    from dreaming_data.errors import UserError
    from dreaming_data.sampling import sample_grid as grid, save_png

    _check_schedule(p, schedule)
    if steps not in p.sample.steps:
        raise UserError(f"steps {steps} is not in sample.steps {list(p.sample.steps)}")
    picture, wall = grid(_sampler(p, schedule), steps, p.sample.columns, p.sample.seed)
    save_png(picture, paths.PLOTS / "samples" / f"{schedule}-{steps}.png")
    print(f"grid {schedule} x {steps} steps: {wall:.1f} s")


def generate(p: Params) -> None:
    from dreaming_data.io import save_images, write_json
    from dreaming_data.sampling import GenerationPlan, generate as run, model_identity, preview, save_png

    from dataclasses import asdict

    g = p.generate
    model_path = paths.ddpm_dir(g.schedule) / "model.pt"
    sampler = _sampler(p, g.schedule)
    plan = GenerationPlan(g.per_class, g.steps, g.seed, g.batch_size, g.chunk_size)
    identity = {"model": model_identity(model_path), "plan": asdict(plan), "guidance": p.diffusion.guidance,
                "variance": p.diffusion.variance}
    images, timing = run(sampler, plan, paths.GENERATE_CHUNKS, identity)
    save_images(paths.GENERATED / "synthetic.npz", images)
    save_png(preview(images, p.sample.columns), paths.PLOTS / "samples" / "generated-preview.png")
    write_json(paths.METRICS / "generate.json", {"schedule": g.schedule, "steps": g.steps, "per_class": g.per_class,
                                                 "total": len(images), **timing})
    print(f"generated {len(images)} images ({g.schedule}, {g.steps} steps)")


def merge(p: Params) -> None:
    from dreaming_data.data import merge_synthetic
    from dreaming_data.io import load_images, save_images, write_json

    real = load_images(paths.train_set("baseline"))
    merged = merge_synthetic(real, load_images(paths.GENERATED / "synthetic.npz"), p.merge.synthetic_per_class)
    save_images(paths.train_set("augmented"), merged)
    write_json(paths.METRICS / "merge.json", {"real": int((~merged.synthetic).sum()),
                                              "synthetic": int(merged.synthetic.sum()), "total": len(merged)})
    print(f"merged: {int((~merged.synthetic).sum())} real + {int(merged.synthetic.sum())} synthetic")


def _check_variant(p: Params, variant: str, seed: int) -> None:
    from dreaming_data.errors import UserError

    if variant not in p.classifier.variants:
        raise UserError(f"variant {variant!r} is not in classifier.variants {list(p.classifier.variants)}")
    if seed not in p.classifier.seeds:
        raise UserError(f"seed {seed} is not in classifier.seeds {list(p.classifier.seeds)}")


def train_classifier(p: Params, variant: str, seed: int) -> None:
    import pandas as pd

    from dreaming_data.classifier import save_classifier, train_classifier as train
    from dreaming_data.evaluation import write_csv
    from dreaming_data.io import load_images, write_json

    _check_variant(p, variant, seed)
    name = paths.classifier_name(variant, seed)
    train_set = load_images(paths.train_set(variant))
    val = load_images(paths.prepared("val"))
    trained = train(p.classifier, p.runtime, train_set, val, seed, p.classifier.epochs,
                    paths.classifier_checkpoint(name), label=f"classifier {name}")
    save_classifier(paths.MODELS / "classifier" / f"{name}.pt", trained, p.classifier.arch, train_set.x.shape[1:])
    write_csv(pd.DataFrame(trained.history), paths.PLOTS / "classifier" / f"{name}.csv")
    write_json(paths.METRICS / "train" / f"{name}.json", {
        "final_val_acc": trained.history[-1]["val_acc"], "best_val_acc": max(h["val_acc"] for h in trained.history),
        "train_images": len(train_set), "synthetic_images": int(train_set.synthetic.sum()),
        "images_per_s": round(trained.images_per_s, 1), "wall_s": round(trained.wall_s, 2)})
    print(f"classifier {name}: val acc {trained.history[-1]['val_acc']:.4f} after {len(trained.history)} epochs")


def evaluate(p: Params, variant: str, seed: int) -> None:
    from dreaming_data.classifier import load_classifier, predict
    from dreaming_data.evaluation import classification_metrics, confusion_heatmap, confusion_rows, write_csv
    from dreaming_data.io import load_images, write_json
    from dreaming_data.runtime import resolve_device

    _check_variant(p, variant, seed)
    name = paths.classifier_name(variant, seed)
    device = resolve_device(p.runtime)
    model, norm, classes = load_classifier(paths.MODELS / "classifier" / f"{name}.pt", device)
    test = load_images(paths.prepared("test"))
    pred = predict(model, norm, test.x, device, p.runtime).argmax(1)
    metrics = classification_metrics(test.y, pred, classes)
    write_json(paths.METRICS / "eval" / f"{name}.json", metrics)
    write_csv(confusion_rows(test.y, pred, classes), paths.PLOTS / "confusion" / f"{name}.csv")
    confusion_heatmap(test.y, pred, classes, f"{variant}, seed {seed}: accuracy {metrics['accuracy']:.3f}",
                      paths.PLOTS / "confusion" / f"{name}.png")
    print(f"evaluate {name}: test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")


def compare(p: Params) -> dict:
    import pandas as pd

    from dreaming_data.evaluation import comparison_markdown, compare_runs, val_accuracy_figure, write_csv
    from dreaming_data.io import atomic_path, read_json, write_json

    results: dict = {}
    curves: dict = {}
    for variant in p.classifier.variants:
        for seed in p.classifier.seeds:
            name = paths.classifier_name(variant, seed)
            results.setdefault(variant, {})[seed] = read_json(paths.METRICS / "eval" / f"{name}.json")
            history = pd.read_csv(paths.PLOTS / "classifier" / f"{name}.csv")
            curves.setdefault(variant, []).append(history["val_acc"].tolist())
    cmp = compare_runs(results)
    write_json(paths.METRICS / "comparison.json", cmp)
    write_csv(val_accuracy_figure(curves, paths.PLOTS / "compare" / "val_accuracy.png"),
              paths.PLOTS / "compare" / "val_accuracy.csv")
    title = f"{p.data.source}: {p.classifier.arch}, {p.data.train_per_class or 'all'} real images per class"
    text = comparison_markdown(cmp, title)
    with atomic_path(paths.REPORTS / "comparison.md") as tmp:
        tmp.write_text(text)
    print(text)
    return cmp


def stage_calls(p: Params) -> list[tuple[str, object, dict]]:
    """Every stage of ``dvc.yaml`` in an order that respects its dependencies, matrices expanded from ``p``:
    (name as DVC shows it, function, keyword arguments). For machines without DVC (``--no-dvc``)."""
    calls: list[tuple[str, object, dict]] = [("download", download, {})]
    calls += [(f"train_ddpm@{s}", train_ddpm, {"schedule": s}) for s in p.ddpm.schedules]
    calls += [("sample_noise", sample_noise, {})]
    calls += [(f"sample_grid@{s}-{n}", sample_grid, {"schedule": s, "steps": n})
              for s in p.ddpm.schedules for n in p.sample.steps]
    calls += [("generate", generate, {}), ("merge", merge, {})]
    runs = [(v, seed) for v in p.classifier.variants for seed in p.classifier.seeds]
    calls += [(f"train_classifier@{v}-{seed}", train_classifier, {"variant": v, "seed": seed}) for v, seed in runs]
    calls += [(f"evaluate@{v}-{seed}", evaluate, {"variant": v, "seed": seed}) for v, seed in runs]
    calls += [("compare", compare, {})]
    return calls
