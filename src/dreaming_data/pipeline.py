"""One function per DVC stage: read the stage's inputs from their fixed paths, call the library, write outputs.

Each takes the parsed ``Params`` first, then the stage's matrix arguments. ``stages/*.py`` are their entry
points; ``dvc.yaml`` names the same paths.
"""

from __future__ import annotations

from dreaming_data import distributed as dd, paths
from dreaming_data.config import Params
from dreaming_data.runner import distributed

# Stages marked @distributed run in runtime.nproc x runtime.nnodes processes under torchrun (DDP training,
# sampling and Inception features shared out); every rank runs the function, rank 0 alone writes.


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


@distributed
def train_ddpm(p: Params, schedule: str) -> None:
    import pandas as pd

    from dreaming_data.checkpoints import ResumeDir
    from dreaming_data.ddpm import save_ddpm, train_ddpm as train, training_identity
    from dreaming_data.evaluation import write_csv
    from dreaming_data.io import load_images, write_json

    _check_schedule(p, schedule)
    train_set = load_images(paths.train_set("baseline"))
    stage = f"train_ddpm@{schedule}"
    resume = ResumeDir(paths.resume_dir(stage), training_identity(p, schedule, train_set), stage)
    ema, r = train(p, schedule, train_set, resume)
    if dd.is_main():
        save_ddpm(paths.ddpm_model(schedule), ema, p, schedule, train_set)
        write_csv(pd.DataFrame({"epoch": range(1, len(r.epoch_losses) + 1), "loss": r.epoch_losses}),
                  paths.PLOTS / "ddpm" / f"loss-{schedule}.csv")
        write_json(paths.METRICS / f"ddpm-{schedule}.json", {
            "schedule": schedule,
            "final_loss": None if r.final_loss is None else round(r.final_loss, 6),
            "images_per_s": None if r.images_per_s is None else round(r.images_per_s, 2),
            "wall_s": round(r.wall_s, 2),
            "parameters": r.parameters,
            "steps": r.steps,
            "resumed_from_step": r.resumed_from,
        })
    resume.finish()
    speed = "" if r.images_per_s is None else f", {r.images_per_s:.0f} img/s"
    print(f"ddpm {schedule}: final epoch loss {r.final_loss:.4f}{speed}, {r.wall_s:.0f} s")


def _sampler(p: Params, schedule: str, sampler: str | None = None):
    from dreaming_data.ddpm import load_ddpm
    from dreaming_data.runtime import resolve_device, setup_backends
    from dreaming_data.sampling import Sampler

    device = resolve_device(p.runtime)
    setup_backends(device)
    return Sampler(load_ddpm(paths.ddpm_model(schedule), device), p.diffusion, p.runtime, device, sampler)


def sample_noise(p: Params) -> None:
    from dreaming_data.io import load_images
    from dreaming_data.sampling import noise_picture, save_png

    val = load_images(paths.prepared("val"))  # for the image shape and class names
    save_png(noise_picture(val.x.shape[1:], val.classes, p.sample.columns, p.sample.seed),
             paths.PLOTS / "samples" / "noise.png")


@distributed
def sample_grid(p: Params, schedule: str, steps: int) -> None:
    from dreaming_data.errors import UserError
    from dreaming_data.sampling import sample_grid as grid, save_png

    _check_schedule(p, schedule)
    if steps not in p.sample.steps:
        raise UserError(f"steps {steps} is not in sample.steps {list(p.sample.steps)}")
    picture, wall = grid(_sampler(p, schedule), steps, p.sample.columns, p.sample.seed, p.sample.batch_size)
    if dd.is_main():
        save_png(picture, paths.PLOTS / "samples" / f"{schedule}-{steps}.png")
    print(f"grid {schedule} x {steps} steps: {wall:.1f} s")


def _generate(p: Params, stage: str, schedule: str, per_class: int, steps: int, seed: int,
              sampler_name: str | None = None):
    """Images 0 .. per_class - 1 of every class from the model of ``schedule``, resumable in the stage's folder."""
    from dreaming_data.checkpoints import ResumeDir
    from dreaming_data.randomness import fingerprint_file
    from dreaming_data.sampling import generate as run

    model = paths.ddpm_model(schedule)
    sampler = _sampler(p, schedule, sampler_name)
    identity = {"model": fingerprint_file(model), **sampler.identity(), "steps": steps,
                "seed": seed}  # chunk files are named by their images: sizes may change on resume
    resume = ResumeDir(paths.resume_dir(stage), identity, stage)
    images, timing = run(sampler, per_class, steps, seed, p.generate.batch_size, p.generate.chunk_size, resume,
                         label=stage)
    return images, timing, resume


@distributed
def generate(p: Params) -> None:
    from dreaming_data.io import save_images, write_json
    from dreaming_data.sampling import preview, save_png

    g = p.generate
    images, timing, resume = _generate(p, "generate", g.schedule, g.per_class, g.steps, g.seed)
    if dd.is_main():
        save_images(paths.GENERATED / "synthetic.npz", images)
        save_png(preview(images, p.sample.columns), paths.PLOTS / "samples" / "generated-preview.png")
        write_json(paths.METRICS / "generate.json", {"schedule": g.schedule, "sampler": p.diffusion.sampler,
                                                     "steps": g.steps, "per_class": g.per_class,
                                                     "total": len(images), **timing})
    resume.finish()
    print(f"generated {0 if images is None else len(images)} images ({g.schedule}, {p.diffusion.sampler}, {g.steps} steps)")


def _judge(p: Params, device, images, what: str):
    """The judge's real-data baseline classifier (first seed), checked against ``images``: (model, normalizer, file)."""
    from dreaming_data.classifier import load_classifier

    path = paths.classifier_model(paths.classifier_name(p.classifier.judge, "baseline", p.classifier.seeds[0]))
    model, norm, _ = load_classifier(path, device, images, what)
    return model, norm, path


def merge(p: Params) -> None:
    import numpy as np

    from dreaming_data.data import check_same_kind, merge_synthetic, select_confident
    from dreaming_data.io import load_images, save_images, write_json
    from dreaming_data.runtime import resolve_device

    m = p.merge
    real = load_images(paths.train_set("baseline"))
    synthetic = load_images(paths.GENERATED / "synthetic.npz")
    judge = p.classifier.judge  # always read: dvc.yaml lists its baseline model as a dependency either way
    check_same_kind(real, synthetic)
    info: dict = {"filter": m.filter}
    if m.filter == "confident":
        from dreaming_data.classifier import predict

        device = resolve_device(p.runtime)
        model, norm, path = _judge(p, device, synthetic, f"the images of {paths.GENERATED / 'synthetic.npz'}")
        probs = predict(model, norm, synthetic.x, device, p.runtime)
        all_confidence = float(probs[np.arange(len(probs)), synthetic.y].mean())
        synthetic, kept_confidence = select_confident(synthetic, probs, m.synthetic_per_class, m.keep_fraction)
        info |= {"judge": path.as_posix(), "keep_fraction": m.keep_fraction,
                 "mean_confidence_kept": round(kept_confidence, 5), "mean_confidence_all": round(all_confidence, 5)}
        print(f"merge: kept the {judge} baseline's most confident {m.keep_fraction:.0%} of the candidates")
    merged = merge_synthetic(real, synthetic, m.synthetic_per_class)
    save_images(paths.train_set("augmented"), merged)
    write_json(paths.METRICS / "merge.json", {"real": int((~merged.synthetic).sum()),
                                              "synthetic": int(merged.synthetic.sum()), "total": len(merged), **info})
    print(f"merged: {int((~merged.synthetic).sum())} real + {int(merged.synthetic.sum())} synthetic")


def _check_run(p: Params, arch: str, seed: int, variant: str | None = None) -> None:
    from dreaming_data.config import VARIANTS
    from dreaming_data.errors import UserError

    if arch not in p.classifier.archs:
        raise UserError(f"architecture {arch!r} is not in classifier.archs {list(p.classifier.archs)}")
    if variant is not None and variant not in VARIANTS:
        raise UserError(f"variant {variant!r} is not one of {', '.join(VARIANTS)}")
    if seed not in p.classifier.seeds:
        raise UserError(f"seed {seed} is not in classifier.seeds {list(p.classifier.seeds)}")


def _train(p: Params, arch: str, variant: str, seed: int, stage: str, train_set, steps: int) -> None:
    import pandas as pd

    from dreaming_data.checkpoints import ResumeDir
    from dreaming_data.classifier import save_classifier, steps_per_epoch, train_classifier as train, training_identity
    from dreaming_data.evaluation import write_csv
    from dreaming_data.io import load_images, write_json

    name = paths.classifier_name(arch, variant, seed)
    val = load_images(paths.prepared("val"))
    recipe = p.classifier.recipe(arch)
    resume = ResumeDir(paths.resume_dir(stage), training_identity(arch, recipe, train_set, val, seed, steps), stage)
    trained = train(arch, recipe, p.runtime, train_set, val, seed, steps, resume, label=f"classifier {name}")
    if dd.is_main():
        save_classifier(paths.classifier_model(name), trained, arch, recipe, train_set.x.shape[1:])
        write_csv(pd.DataFrame(trained.history), paths.PLOTS / "classifier" / f"{name}.csv")
        val_accs = [h["val_acc"] for h in trained.history if h["val_acc"] is not None]
        write_json(paths.METRICS / "train" / f"{name}.json", {
            "arch": arch, "variant": variant, "optimizer_steps": steps,
            "epochs": round(steps / steps_per_epoch(len(train_set), recipe.batch_size), 3),
            "final_val_acc": trained.history[-1]["val_acc"], "best_val_acc": max(val_accs, default=None),
            "train_images": len(train_set), "synthetic_images": int(train_set.synthetic.sum()),
            "images_per_s": None if trained.images_per_s is None else round(trained.images_per_s, 1),
            "wall_s": round(trained.wall_s, 2)})
    resume.finish()
    print(f"classifier {name}: val acc {trained.history[-1]['val_acc']} after {steps} optimizer steps")


@distributed
def train_classifier(p: Params, arch: str, variant: str, seed: int) -> None:
    """``baseline`` or ``augmented``: the recipe's epochs over the variant's own training set."""
    from dreaming_data.classifier import training_steps
    from dreaming_data.errors import UserError
    from dreaming_data.io import load_images

    _check_run(p, arch, seed, variant)
    if variant == "baseline_matched":
        raise UserError("baseline_matched is trained by the train_matched stage")
    train_set = load_images(paths.train_set(variant))
    _train(p, arch, variant, seed, f"train_classifier@{arch}-{variant}-{seed}", train_set,
           training_steps(p.classifier.recipe(arch), len(train_set)))


@distributed
def train_matched(p: Params, arch: str, seed: int) -> None:
    """``baseline_matched``: the real images only, for as many optimizer steps as ``augmented`` takes (its recipe's
    epochs over the merged set), so that augmented - baseline_matched compares at equal cost."""
    from dreaming_data.classifier import training_steps
    from dreaming_data.io import load_images

    _check_run(p, arch, seed)
    n_augmented = len(load_images(paths.train_set("augmented")))
    _train(p, arch, "baseline_matched", seed, f"train_matched@{arch}-{seed}", load_images(paths.train_set("baseline")),
           training_steps(p.classifier.recipe(arch), n_augmented))


def evaluate(p: Params, arch: str, variant: str, seed: int) -> None:
    from dreaming_data.classifier import load_classifier, predict
    from dreaming_data.evaluation import classification_metrics, confusion_heatmap, confusion_rows, write_csv
    from dreaming_data.io import load_images, write_json
    from dreaming_data.runtime import resolve_device

    _check_run(p, arch, seed, variant)
    name = paths.classifier_name(arch, variant, seed)
    device = resolve_device(p.runtime)
    test = load_images(paths.prepared("test"))
    model, norm, classes = load_classifier(paths.classifier_model(name), device, test,
                                           f"the images of {paths.prepared('test')}")
    pred = predict(model, norm, test.x, device, p.runtime).argmax(1)
    metrics = {"arch": arch, "variant": variant, "seed": seed, **classification_metrics(test.y, pred, classes)}
    write_json(paths.METRICS / "eval" / f"{name}.json", metrics)
    write_csv(confusion_rows(test.y, pred, classes), paths.PLOTS / "confusion" / f"{name}.csv")
    confusion_heatmap(test.y, pred, classes, f"{arch}, {variant}, seed {seed}: accuracy {metrics['accuracy']:.3f}",
                      paths.PLOTS / "confusion" / f"{name}.png")
    print(f"evaluate {name}: test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")


def compare(p: Params) -> dict:
    import pandas as pd

    from dreaming_data.config import VARIANTS
    from dreaming_data.errors import UserError
    from dreaming_data.evaluation import (comparison_markdown, compare_runs, summary, val_accuracy_figure,
                                          val_accuracy_frames, write_csv)
    from dreaming_data.io import atomic_path, missing, read_json, write_json

    results: dict = {}
    frames: dict = {}
    steps: dict = {}
    for arch in p.classifier.archs:
        histories: dict = {}
        for variant in VARIANTS:
            for seed in p.classifier.seeds:
                name = paths.classifier_name(arch, variant, seed)
                metrics_path = paths.METRICS / "eval" / f"{name}.json"
                results.setdefault(arch, {}).setdefault(variant, {})[seed] = metrics = read_json(metrics_path)
                if not isinstance(metrics, dict) or not {"accuracy", "macro_f1", "per_class"} <= set(metrics):
                    raise UserError(f"{metrics_path}: not test metrics (run `dvc repro evaluate@{arch}-{variant}-{seed}`)")
                csv = paths.PLOTS / "classifier" / f"{name}.csv"
                try:
                    history = pd.read_csv(csv)[["epoch", "steps", "val_acc"]].to_dict("records")
                except FileNotFoundError:
                    raise missing(csv) from None
                except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError, UnicodeDecodeError):
                    raise UserError(f"{csv}: not a training history with epoch, steps and val_acc columns "
                                    f"(run `dvc repro {paths.made_by(csv)}`)") from None
                histories.setdefault(variant, []).append(history)
                steps.setdefault(arch, {})[variant] = int(history[-1]["steps"])
        frames[arch] = val_accuracy_frames(histories)
        for variant, frame in frames[arch].items():
            write_csv(frame, paths.PLOTS / "compare" / f"{arch}-{variant}.csv")
    cmp = compare_runs(results)
    write_json(paths.METRICS / "comparison.json", cmp)
    write_json(paths.METRICS / "summary.json", summary(cmp))
    val_accuracy_figure(frames, paths.PLOTS / "compare" / "val_accuracy.png")
    title = f"{p.data.source}: {p.data.train_per_class or 'all'} real images per class"
    text = comparison_markdown(cmp, title, steps)
    with atomic_path(paths.REPORTS / "comparison.md") as tmp:
        tmp.write_text(text)
    print(text)
    return cmp


def stage_calls(p: Params) -> list[tuple[str, object, dict]]:
    """Every stage of ``dvc.yaml`` in an order that respects its dependencies, matrices expanded from ``p``:
    (name as DVC shows it, function, keyword arguments). For machines without DVC (``--no-dvc``)."""
    from dreaming_data.config import VARIANTS

    calls: list[tuple[str, object, dict]] = [("download", download, {})]
    calls += [(f"train_ddpm@{s}", train_ddpm, {"schedule": s}) for s in p.ddpm.schedules]
    calls += [("sample_noise", sample_noise, {})]
    calls += [(f"sample_grid@{s}-{n}", sample_grid, {"schedule": s, "steps": n})
              for s in p.ddpm.schedules for n in p.sample.steps]
    calls += [("generate", generate, {})]
    archs, seeds = p.classifier.archs, p.classifier.seeds
    calls += [(f"train_classifier@{a}-baseline-{seed}", train_classifier, {"arch": a, "variant": "baseline", "seed": seed})
              for a in archs for seed in seeds]
    calls += [("merge", merge, {})]
    calls += [(f"train_classifier@{a}-augmented-{seed}", train_classifier,
               {"arch": a, "variant": "augmented", "seed": seed}) for a in archs for seed in seeds]
    calls += [(f"train_matched@{a}-{seed}", train_matched, {"arch": a, "seed": seed}) for a in archs for seed in seeds]
    calls += [(f"evaluate@{a}-{v}-{seed}", evaluate, {"arch": a, "variant": v, "seed": seed})
              for a in archs for v in VARIANTS for seed in seeds]
    calls += [("compare", compare, {})]
    calls += [("fid_reference", fid_reference, {})]
    calls += [(f"ablation_sample@{_cell(s, k, n)}", ablation_sample, {"schedule": s, "sampler": k, "steps": n})
              for s in p.ablation.schedules for k in p.ablation.samplers for n in p.ablation.steps]
    calls += [("ablation", ablation, {})]
    return calls


def _cell(schedule: str, sampler: str, steps: int) -> str:
    return f"{schedule}-{sampler}-{steps}"


@distributed
def fid_reference(p: Params) -> None:
    """Inception statistics of the real split named by ``eval.fid_reference``, computed once for every score."""
    import numpy as np

    from dreaming_data.io import load_images
    from dreaming_data.quality import Reference
    from dreaming_data.runtime import resolve_device

    e = p.eval
    if e.fid_reference == "train":  # every real training-split image the pipeline holds: kept ones and val
        real = np.concatenate([load_images(paths.train_set("baseline")).x, load_images(paths.prepared("val")).x])
    else:
        real = load_images(paths.prepared("test")).x
    ref = Reference.of(real, e.fid_reference, e.fid_weights, resolve_device(p.runtime), e.batch_size,
                       e.reference_features, e.seed)
    if dd.is_main():
        ref.save(paths.REFERENCE)
    print(f"fid_reference: {e.fid_reference} split, statistics of {ref.count} images, features of "
          f"{len(ref.features)} kept for KID and precision/recall ({np.prod(ref.sigma.shape)} covariance entries)")


@distributed
def ablation_sample(p: Params, schedule: str, sampler: str, steps: int) -> None:
    from dreaming_data.errors import UserError
    from dreaming_data.io import save_images, write_json

    a = p.ablation
    cell = _cell(schedule, sampler, steps)
    if schedule not in a.schedules or sampler not in a.samplers or steps not in a.steps:
        raise UserError(f"cell {cell} is not in ablation.schedules x ablation.samplers x ablation.steps")
    images, timing, resume = _generate(p, f"ablation_sample@{cell}", schedule, a.per_class, steps, a.seed, sampler)
    if dd.is_main():
        save_images(paths.ABLATION / f"{cell}.npz", images)
        write_json(paths.METRICS / "ablation" / f"sampling-{cell}.json",
                   {"schedule": schedule, "sampler": sampler, "steps": steps, **timing})
    resume.finish()


@distributed
def ablation(p: Params) -> dict:
    import numpy as np
    import pandas as pd

    from dreaming_data.classifier import predict, train_classifier as train
    from dreaming_data.data import check_same_kind, per_class_sample
    from dreaming_data.errors import UserError
    from dreaming_data.evaluation import write_csv
    from dreaming_data.io import atomic_path, load_images, write_json
    from dreaming_data.quality import Reference, Scorer, recognisability, weights_id
    from dreaming_data.runtime import resolve_device

    a = p.ablation
    device = resolve_device(p.runtime)
    test, val = load_images(paths.prepared("test")), load_images(paths.prepared("val"))
    reference = Reference.load(paths.REFERENCE, "fid_reference")
    if reference.split != p.eval.fid_reference or reference.weights != weights_id(p.eval.fid_weights):
        raise UserError(f"{paths.REFERENCE}: not the statistics that eval.fid_reference ({p.eval.fid_reference}) and "
                        f"eval.fid_weights ask for (run `dvc repro fid_reference`)")
    scorer = Scorer(reference, p.eval.fid_weights, device, p.eval.batch_size, p.eval.seed)
    seed, judge = p.classifier.seeds[0], p.classifier.judge
    base, norm, _ = _judge(p, device, test, f"the images of {paths.prepared('test')}")

    def cas_score(images, label: str) -> float:
        # CAS: the judge's recipe on one set alone, for a fixed number of optimizer steps (an epoch count would
        # give a 500-image cell a handful of steps); no per-epoch validation: the score is on the test split.
        trained = train(judge, p.classifier.recipe(judge), p.runtime, images, val.subset(np.arange(0)), seed,
                        a.cas_steps, label=label)
        return float((predict(trained.model, trained.normalizer, test.x, device, p.runtime).argmax(1) == test.y).mean())

    # The same recipe on as many *real* training images per class: what a CAS of this sample size can reach.
    real_train = load_images(paths.train_set("baseline"))
    real_sub = real_train.subset(per_class_sample(real_train.y, a.per_class, a.seed))
    cas_real = cas_score(real_sub, "CAS real")
    print(f"ablation: CAS of {len(real_sub)} real training images {cas_real:.4f}")
    guided = 2 if p.diffusion.guidance > 0 else 1
    cells, rows = {}, []
    for schedule in a.schedules:
        for sampler in a.samplers:
            for steps in a.steps:
                cell = _cell(schedule, sampler, steps)
                fake = load_images(paths.ABLATION / f"{cell}.npz")
                check_same_kind(test, fake)
                q = scorer.score(fake.x)
                recog = recognisability(predict(base, norm, fake.x, device, p.runtime), fake.y, fake.classes)
                cas = cas_score(fake, f"CAS {cell}")
                cells[cell] = {"schedule": schedule, "sampler": sampler, "steps": steps,
                               "network_evaluations": steps * guided,
                               "fid": round(q["fid"], 3), "kid": round(q["kid"], 6), "kid_std": round(q["kid_std"], 6),
                               "precision": round(q["precision"], 5), "recall": round(q["recall"], 5),
                               "images": q["images"], "cas": round(cas, 5), "recognisability": recog["overall"],
                               "recognisability_per_class": recog["per_class"]}
                rows.append({k: cells[cell][k] for k in ("schedule", "sampler", "steps", "network_evaluations", "fid",
                                                         "kid", "precision", "recall", "cas", "recognisability")})
                print(f"ablation {cell}: FID {q['fid']:.2f}, KID {q['kid']:.4f}, precision {q['precision']:.3f}, "
                      f"recall {q['recall']:.3f}, CAS {cas:.4f}, recognisability {recog['overall']:.4f}")
    result = {"reference": {"split": reference.split, "images": reference.count,
                            "features_for_kid_and_pr": len(reference.features)},
              "fid_note": "FID with few images is biased upward; compare only cells of equal sample counts (KID is "
                          "unbiased)",
              "cas_real": round(cas_real, 5), "cas_real_images": len(real_sub), "cells": cells}
    if not dd.is_main():
        return result
    write_json(paths.METRICS / "ablation.json", result)
    frame = pd.DataFrame(rows)
    write_csv(frame, paths.PLOTS / "ablation" / "ablation.csv")
    _ablation_figure(frame, paths.PLOTS / "ablation" / "ablation.png")
    table = ["| schedule | sampler | steps | FID | KID x 1000 | precision | recall | CAS | recognisability |",
             "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['schedule']} | {r['sampler']} | {r['steps']} | {r['fid']:.2f} | {1000 * r['kid']:.2f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | {r['cas']:.4f} | {r['recognisability']:.4f} |"
              for r in rows]
    text = (f"# Sample quality per schedule, sampler and sampling steps\n\n"
            f"{a.per_class} images per class per cell. FID against the statistics of {reference.count} real "
            f"{reference.split}-split images; KID (unbiased) and precision/recall (k = 3) against the Inception "
            f"features of {len(reference.features)} of them. CAS: {judge} trained on synthetic images "
            f"only, {a.cas_steps} optimizer steps; the same recipe on {len(real_sub)} real training images scores "
            f"{cas_real:.4f}. Recognisability: {judge} baseline classifier (seed {seed}) on the synthetic images. Cost: "
            f"{guided} network evaluation(s) per step; measured speed per cell in "
            f"metrics/ablation/sampling-<cell>.json (`dvc metrics show`).\n\n" + "\n".join(table) + "\n")
    with atomic_path(paths.REPORTS / "ablation.md") as tmp:
        tmp.write_text(text)
    print(text)
    return result


def _ablation_figure(frame, path) -> None:
    """Quality against sampling cost (network evaluations per image, log scale), one line per schedule x sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dreaming_data.io import atomic_path

    metrics = [("fid", "FID (lower is better)"), ("kid", "KID (lower is better)"), ("precision", "precision"),
               ("recall", "recall"), ("cas", "CAS"), ("recognisability", "recognisability")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (metric, title) in zip(axes.flat, metrics):
        for (schedule, sampler), group in frame.groupby(["schedule", "sampler"]):
            group = group.sort_values("network_evaluations")
            ax.plot(group["network_evaluations"], group[metric], marker="o", label=f"{schedule}, {sampler}")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per image")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
