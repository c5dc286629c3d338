"""DVC stage ``merge``: the augmented training set, every real image and ``merge.synthetic_per_class`` dreams of each
class (the first ones, or, with ``merge.filter: confident``, the ones the judge's baseline is most sure of)."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage

SYNTHETIC = paths.GENERATED / "synthetic.npz"


def run(p) -> None:
    import numpy as np

    from dreaming_data.errors import UserError

    from dreaming_data.io import check_same_kind, load_images, save_images, write_json
    from dreaming_data.selection import merge_synthetic, select_confident

    m = p.merge
    real = load_images(paths.train_set("baseline"))
    synthetic = load_images(SYNTHETIC)
    judge = paths.judge_model(p)  # always read: dvc.yaml lists the judge's baseline model as a dependency either way
    check_same_kind(real, synthetic)
    per_class = np.bincount(synthetic.y, minlength=len(synthetic.classes))
    if (per_class != p.generate.per_class).any():
        raise UserError(f"{SYNTHETIC}: {per_class.min()} to {per_class.max()} images per class, expected "
                        f"generate.per_class = {p.generate.per_class} of each (rerun generate)")
    info: dict = {"filter": m.filter}
    if m.filter == "confident":
        from dreaming_data.classifier import load_judge, predict
        from dreaming_data.runtime import resolve_device

        device = resolve_device(p.runtime)
        model, norm, path = load_judge(p, device, synthetic, f"the images of {SYNTHETIC}")
        probs = predict(model, norm, synthetic.x, device, p.runtime)
        all_confidence = float(probs[np.arange(len(probs)), synthetic.y].mean())
        synthetic, kept_confidence = select_confident(synthetic, probs, m.synthetic_per_class, m.keep_fraction)
        info |= {"judge": path.as_posix(), "keep_fraction": m.keep_fraction,
                 "mean_confidence_kept": None if kept_confidence is None else round(kept_confidence, 5),
                 "mean_confidence_all": round(all_confidence, 5)}
        print(f"merge: kept the {p.classifier.judge} baseline's most confident {m.keep_fraction:.0%} of the "
              f"candidates ({judge})")
    merged = merge_synthetic(real, synthetic, m.synthetic_per_class)
    save_images(paths.train_set("augmented"), merged)
    write_json(paths.METRICS / "merge.json", {"real": int((~merged.synthetic).sum()),
                                              "synthetic": int(merged.synthetic.sum()), "total": len(merged), **info})
    print(f"merged: {int((~merged.synthetic).sum())} real + {int(merged.synthetic.sum())} synthetic")


def work(p, s) -> list[Part]:
    if p.merge.filter != "confident":
        return []
    return [Part("predict", p.classifier.judge, s.classes * p.generate.per_class)]


STAGE = Stage("merge", run,
              inputs=lambda p: [paths.train_set("baseline"), SYNTHETIC, paths.judge_model(p)],
              outputs=lambda p: [paths.train_set("augmented")],
              small=lambda p: [paths.METRICS / "merge.json"],
              work=work,
              priority=lambda p: (3, 99))  # ranks by the first augmented run that needs it

if __name__ == "__main__":
    STAGE.main()
