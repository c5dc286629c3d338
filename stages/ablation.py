"""DVC stage ``ablation``: the sample quality of every cell (schedule x sampler x steps): FID, KID and
precision/recall against the real reference statistics, CAS, recognisability; the table (metrics/ablation.json,
reports/ablation.md) and quality against sampling cost (plots/ablation/)."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage

COLUMNS = ("schedule", "sampler", "steps", "network_evaluations", "fid", "kid", "precision", "recall", "cas",
           "recognisability", "near_copies", "near_copies_pixel")


def cells(p) -> list[tuple[str, str, int]]:
    """(schedule, sampler, steps) of every cell."""
    a = p.ablation
    return [(s, k, n) for s in a.schedules for k in a.samplers for n in a.steps]


class Judge:
    """The judge's recipe and real-data baseline: CAS (Ravuri & Vinyals 2019: a classifier trained on one image set
    alone, tested on the real test split) and recognisability (the baseline's accuracy on generated images)."""

    def __init__(self, p, device):
        from dreaming_data.classifier import load_judge
        from dreaming_data.io import load_images

        self.p, self.device = p, device
        self.test, self.val = load_images(paths.prepared("test")), load_images(paths.prepared("val"))
        self.base, self.norm, _ = load_judge(p, device, self.test, f"the images of {paths.prepared('test')}")

    def cas(self, images, label: str) -> float:
        # a fixed number of optimizer steps (an epoch count would give a 500-image cell a handful of steps); no
        # per-epoch validation: the score is on the test split
        import numpy as np

        from dreaming_data.classifier import predict
        from dreaming_data.classifier_training import train_classifier

        p, judge = self.p, self.p.classifier.judge
        trained = train_classifier(judge, p.classifier.recipe(judge), p.runtime, images, self.val.subset(np.arange(0)),
                                   p.classifier.judge_seed, p.ablation.cas_steps, label=label)
        pred = predict(trained.model, trained.normalizer, self.test.x, self.device, p.runtime).argmax(1)
        return float((pred == self.test.y).mean())

    def recognisability(self, images) -> dict:
        from dreaming_data.classifier import predict
        from dreaming_data.quality import recognisability

        return recognisability(predict(self.base, self.norm, images.x, self.device, self.p.runtime), images.y,
                               images.classes)


def score_cell(p, schedule: str, sampler: str, steps: int, scorer, judge: Judge, train_x) -> dict:
    from dreaming_data.io import check_same_kind, load_images
    from dreaming_data.novelty import share_of_near_copies

    cell = paths.ablation_cell(schedule, sampler, steps)
    fake = load_images(paths.ABLATION / f"{cell}.npz")
    check_same_kind(judge.test, fake)
    feats = scorer.features(fake.x)
    q = scorer.score_features(feats)
    copies = share_of_near_copies(feats, fake.x, scorer.reference, train_x, judge.val.x, p.novelty.percentile,
                                  p.ddpm.hflip, judge.device)
    recog = judge.recognisability(fake)
    cas = judge.cas(fake, f"CAS {cell}")
    print(f"ablation {cell}: FID {q['fid']:.2f}, KID {q['kid']:.4f}, precision {q['precision']:.3f}, "
          f"recall {q['recall']:.3f}, CAS {cas:.4f}, recognisability {recog['overall']:.4f}, near copies "
          f"{copies['inception']:.1%} (Inception) / {copies['pixel']:.1%} (pixels)")
    return {"schedule": schedule, "sampler": sampler, "steps": steps,
            "network_evaluations": steps * (2 if p.diffusion.guidance > 0 else 1),
            "fid": round(q["fid"], 3), "kid": round(q["kid"], 6), "kid_std": round(q["kid_std"], 6),
            "precision": round(q["precision"], 5), "recall": round(q["recall"], 5),
            "images": q["images"], "cas": round(cas, 5), "recognisability": recog["overall"],
            "recognisability_per_class": recog["per_class"], "near_copies": copies["inception"],
            "near_copies_pixel": copies["pixel"]}


def run(p) -> dict:
    from dreaming_data import distributed as dd
    from dreaming_data.errors import UserError
    from dreaming_data.io import load_images, per_class_sample, write_json
    from dreaming_data.quality import Reference, Scorer, weights_id
    from dreaming_data.launch import claim_device

    a = p.ablation
    device = claim_device(p.runtime)
    reference = Reference.load(paths.REFERENCE, "fid_reference")
    if reference.split != p.eval.fid_reference or reference.weights != weights_id(p.eval.fid_weights) or \
            reference.train_features is None:
        raise UserError(f"{paths.REFERENCE}: not the statistics that eval.fid_reference ({p.eval.fid_reference}) and "
                        f"eval.fid_weights ask for (run `dvc repro fid_reference`)")
    scorer = Scorer(reference, p.eval.fid_weights, device, p.eval.batch_size, p.eval.seed)
    judge = Judge(p, device)
    # the same recipe on as many *real* training images per class: what a CAS of this sample size can reach
    real_train = load_images(paths.train_set("baseline"))
    real_sub = real_train.subset(per_class_sample(real_train.y, a.per_class, a.seed))
    cas_real = judge.cas(real_sub, "CAS real")
    print(f"ablation: CAS of {len(real_sub)} real training images {cas_real:.4f}")
    result = {"reference": {"split": reference.split, "images": reference.count,
                            "features_for_kid_and_pr": len(reference.features)},
              "fid_note": "FID with few images is biased upward; compare only cells of equal sample counts (KID is "
                          "unbiased)",
              "cas_real": round(cas_real, 5), "cas_real_images": len(real_sub),
              "cells": {paths.ablation_cell(*c): score_cell(p, *c, scorer, judge, real_train.x) for c in cells(p)}}
    if dd.is_main():
        write_json(paths.METRICS / "ablation.json", result)
        write_outputs(p, result, cas_real)
    return result


def write_outputs(p, result: dict, cas_real: float) -> None:
    """The ablation's table (CSV and Markdown) and its figure."""
    import pandas as pd

    from dreaming_data.io import write_csv, write_text

    rows = [{k: c[k] for k in COLUMNS} for c in result["cells"].values()]
    frame = pd.DataFrame(rows)
    write_csv(frame, paths.PLOTS / "ablation" / "ablation.csv")
    figure(frame, paths.PLOTS / "ablation" / "ablation.png")
    a, ref, judge = p.ablation, result["reference"], p.classifier.judge
    guided = 2 if p.diffusion.guidance > 0 else 1
    table = ["| schedule | sampler | steps | FID | KID x 1000 | precision | recall | CAS | recognisability | "
             "near copies |", "|---|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['schedule']} | {r['sampler']} | {r['steps']} | {r['fid']:.2f} | {1000 * r['kid']:.2f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | {r['cas']:.4f} | {r['recognisability']:.4f} | "
              f"{r['near_copies']:.1%} / {r['near_copies_pixel']:.1%} |" for r in rows]
    text = (f"# Sample quality per schedule, sampler and sampling steps\n\n"
            f"{a.per_class} images per class per cell. FID against the statistics of {ref['images']} real "
            f"{ref['split']}-split images; KID (unbiased) and precision/recall (k = 3) against the Inception "
            f"features of {ref['features_for_kid_and_pr']} of them. CAS: {judge} trained on synthetic images "
            f"only, {a.cas_steps} optimizer steps; the same recipe on {result['cas_real_images']} real training images "
            f"scores {cas_real:.4f}. Recognisability: {judge} baseline classifier (seed "
            f"{p.classifier.judge_seed}) on the synthetic images. Near copies (Inception / pixels): the share of a cell's "
            f"images nearer their nearest training image than the {p.novelty.percentile:g}th percentile of held-out "
            f"real images' nearest distances (about {p.novelty.percentile:g}% for new images; `novelty.py`). Cost: "
            f"{guided} network evaluation(s) per step; "
            f"measured speed per cell in metrics/ablation/sampling-<cell>.json (`dvc metrics show`).\n\n"
            + "\n".join(table) + "\n")
    write_text(paths.REPORTS / "ablation.md", text)
    print(text)


def figure(frame, path) -> None:
    """Quality against sampling cost (network evaluations per image, log scale), one line per schedule x sampler."""
    import seaborn as sns

    from dreaming_data.io import pyplot, save_figure

    plt = pyplot()
    metrics = [("fid", "FID (lower is better)"), ("kid", "KID (lower is better)"), ("precision", "precision"),
               ("recall", "recall"), ("cas", "CAS"), ("recognisability", "recognisability")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for i, (ax, (metric, title)) in enumerate(zip(axes.flat, metrics)):
        sns.lineplot(data=frame, x="network_evaluations", y=metric, hue="schedule", style="sampler", markers=True,
                     dashes=False, legend=i == 0, ax=ax)
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per image")
        ax.set_ylabel("")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def work(p, s) -> list[Part]:
    n, a, judge = len(cells(p)), p.ablation, p.classifier.judge
    return [Part("inception", "", n * s.classes * a.per_class),
            Part("classifier_step", judge, (n + 1) * a.cas_steps),  # CAS: every cell and the real images
            Part("predict", judge, (n + 1) * s.test + n * s.classes * a.per_class)]  # CAS tests, recognisability


STAGE = Stage("ablation", run,
              inputs=lambda p: [*(paths.ABLATION / f"{paths.ablation_cell(*c)}.npz" for c in cells(p)), paths.prepared("test"),
                                paths.prepared("val"), paths.train_set("baseline"), paths.REFERENCE,
                                paths.judge_model(p)],
              small=lambda p: [paths.METRICS / "ablation.json", paths.REPORTS / "ablation.md",
                               paths.PLOTS / "ablation" / "ablation.csv", paths.PLOTS / "ablation" / "ablation.png"],
              work=work,
              priority=lambda p: (6, 2),
              distributed=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
