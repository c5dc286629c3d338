"""DVC stage ``fid_reference``: Inception statistics of the real split every sample-quality score compares with
(``eval.fid_reference``: train, the literature's, or test), computed once."""

from __future__ import annotations

from dreaming_data import paths
from dreaming_data.stages import Part, Stage


def run(p) -> None:
    import numpy as np

    from dreaming_data import distributed as dd
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


STAGE = Stage("fid_reference", run,
              inputs=lambda p: [paths.train_set("baseline"), paths.prepared("val"), paths.prepared("test")],
              outputs=lambda p: [paths.REFERENCE],
              work=lambda p, s: [Part("inception", "", s.train + s.val if p.eval.fid_reference == "train" else s.test)],
              priority=lambda p: (6, 0),
              distributed=True)

if __name__ == "__main__":
    STAGE.main()
