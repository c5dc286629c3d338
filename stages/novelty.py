"""DVC stage ``novelty``: are the dreams of the generated training set new images or copies? Each dream's nearest
DDPM training image, in Inception features and in pixels, against how near real held-out images come; the share of
near copies per class, a picture of the nearest pairs and the two distance distributions."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage

SYNTHETIC = paths.GENERATED / "synthetic.npz"
PAIRS = paths.PLOTS / "novelty" / "nearest.png"
DISTANCES = paths.PLOTS / "novelty" / "distances.png"


def measured(p, synthetic):
    """The dreams the measure looks at: the first ``novelty.per_class`` of each class (null: all)."""
    import numpy as np

    n = p.novelty.per_class
    if n is None:
        return synthetic
    return synthetic.subset(np.sort(np.concatenate([np.flatnonzero(synthetic.y == c)[:n]
                                                    for c in range(len(synthetic.classes))])))


def run(p) -> None:
    from dreaming_data import distributed as dd
    from dreaming_data.errors import UserError
    from dreaming_data.io import check_same_kind, load_images, save_png, write_json
    from dreaming_data.novelty import measure
    from dreaming_data.quality import InceptionFeatures, Reference, inception_features, weights_id
    from dreaming_data.launch import claim_device

    device = claim_device(p.runtime)
    train, val = load_images(paths.train_set("baseline")), load_images(paths.prepared("val"))
    dreams = measured(p, load_images(SYNTHETIC))
    check_same_kind(train, dreams)
    ref = Reference.load(paths.REFERENCE, "fid_reference")
    if ref.weights != weights_id(p.eval.fid_weights) or ref.train_features is None or \
            len(ref.train_features) != len(train) or len(ref.heldout_features) != len(val):
        raise UserError(f"{paths.REFERENCE}: not the Inception features of these training and validation images "
                        f"and eval.fid_weights (run `dvc repro fid_reference`)")
    feats = inception_features(dreams.x, None, device, p.eval.batch_size, "Inception, dreams",
                               net=InceptionFeatures(p.eval.fid_weights))
    metrics, arrays = measure({"inception": feats, "pixel": dreams.x},
                              {"inception": ref.train_features, "pixel": train.x},
                              {"inception": ref.heldout_features, "pixel": val.x}, dreams.y, dreams.classes,
                              p.novelty.percentile, p.ddpm.hflip, device)
    if dd.is_main():
        write_json(paths.METRICS / "novelty.json", metrics)
        save_png(pairs_picture(dreams.x, train.x, arrays, p.novelty.pairs), PAIRS)
        histogram_figure(arrays, p.novelty.percentile, DISTANCES)
    views = metrics["views"]
    print(f"novelty: of {len(dreams)} dreams, near copies of a training image {views['inception']['near_copies']:.1%} "
          f"(Inception) and {views['pixel']['near_copies']:.1%} (pixels); held-out real images "
          f"{views['inception']['near_copies_heldout']:.1%} by construction")


def pairs_picture(dreams: np.ndarray, train: np.ndarray, arrays: dict, count: int):
    """The ``count`` dreams nearest to a training image (relative to the view's threshold), each above its nearest
    training image: two rows per view."""
    import numpy as np

    from dreaming_data.novelty import VIEWS
    from dreaming_data.pictures import image_grid

    rows, names = [], []
    for view in VIEWS:
        a = arrays[view]
        order = np.argsort(a["dreams"] / max(a["threshold"], 1e-12), kind="stable")[:count]
        rows += [dreams[order], train[a["nearest"][order]]]
        names += [f"{view[:5]}: dream", "  nearest"]
    return image_grid(rows, names)


def histogram_figure(arrays: dict, percentile: float, path) -> None:
    """Nearest-training-image distances of the dreams and of the held-out real images, per view."""
    import numpy as np

    from dreaming_data.io import pyplot, save_figure
    from dreaming_data.novelty import VIEWS

    plt = pyplot()
    fig, axes = plt.subplots(1, len(VIEWS), figsize=(5.5 * len(VIEWS), 3.6))
    for ax, view in zip(axes, VIEWS):
        a = arrays[view]
        bins = np.histogram_bin_edges(np.concatenate([a["dreams"], a["heldout"]]), bins=40)
        ax.hist(a["heldout"], bins=bins, density=True, alpha=0.5, label="held-out real images")
        ax.hist(a["dreams"], bins=bins, density=True, alpha=0.5, label="dreams")
        ax.axvline(a["threshold"], color="black", lw=1, ls="--", label=f"held-out {percentile:g}th percentile")
        ax.set_xlabel("distance to the nearest training image" + (" (1 - cosine)" if view == "inception" else " (RMS)"))
        ax.set_title(f"{view} view")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def work(p, s) -> list[Part]:
    per_class = p.generate.per_class if p.novelty.per_class is None else min(p.novelty.per_class, p.generate.per_class)
    return [Part("inception", "", s.classes * per_class)]


STAGE = Stage("novelty", run,
              inputs=lambda p: [SYNTHETIC, paths.train_set("baseline"), paths.prepared("val"), paths.REFERENCE],
              small=lambda p: [paths.METRICS / "novelty.json", PAIRS, DISTANCES],
              work=work,
              priority=lambda p: (6, 3),
              distributed=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
