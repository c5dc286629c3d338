"""DVC stage ``fid_reference``: Inception statistics of the real split every sample-quality score compares with
(``eval.fid_reference``: train, the literature's, or test), computed once."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stage import Part, Stage


def run(p) -> None:
    """Inception features of the training split (the DDPMs' training images and the validation carve-out) and, with
    ``eval.fid_reference: test``, of the test split; the statistics of the reference split and, for the novelty
    measure, the training and held-out features."""
    import numpy as np

    from dreaming_data import distributed as dd
    from dreaming_data.io import load_images
    from dreaming_data.quality import Reference, inception_features
    from dreaming_data.launch import claim_device

    e = p.eval
    device = claim_device(p.runtime)
    train, val = load_images(paths.train_set("baseline")).x, load_images(paths.prepared("val")).x
    feats = inception_features(np.concatenate([train, val]), e.fid_weights, device, e.batch_size,
                               desc="Inception, real train split")
    novelty = {"train_features": feats[:len(train)], "heldout_features": feats[len(train):]}
    if e.fid_reference == "train":  # every real training-split image the pipeline holds: kept ones and val
        ref = Reference.from_features(feats, "train", e.fid_weights, e.reference_features, e.seed, **novelty)
    else:
        test = inception_features(load_images(paths.prepared("test")).x, e.fid_weights, device, e.batch_size,
                                  desc="Inception, real test split")
        ref = Reference.from_features(test, "test", e.fid_weights, e.reference_features, e.seed, **novelty)
    if dd.is_main():
        ref.save(paths.REFERENCE)
    print(f"fid_reference: {e.fid_reference} split, statistics of {ref.count} images, features of "
          f"{len(ref.features)} kept for KID and precision/recall ({np.prod(ref.sigma.shape)} covariance entries); "
          f"{len(train)} training and {len(val)} held-out images' features for the novelty measure")


def work(p, s) -> list[Part]:
    return [Part("inception", "", s.train + s.val + (s.test if p.eval.fid_reference == "test" else 0))]


STAGE = Stage("fid_reference", run,
              inputs=lambda p: [paths.train_set("baseline"), paths.prepared("val"), paths.prepared("test")],
              outputs=lambda p: [paths.REFERENCE],
              work=work,
              priority=lambda p: (6, 0),
              distributed=True)

if __name__ == "__main__":
    from dreaming_data.launch import run_stage

    STAGE.main(run=run_stage)
