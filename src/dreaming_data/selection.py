"""Which dreams enter the training set: the first of each class, or the ones a real-data classifier is most sure of
(merge.filter), appended to the real images with a flag that marks them."""

from __future__ import annotations

import numpy as np

from dreaming_data.config import confident_candidates
from dreaming_data.errors import UserError
from dreaming_data.io import ImageSet, check_same_kind


def merge_synthetic(real: ImageSet, synthetic: ImageSet, per_class: int | None) -> ImageSet:
    """Every real image, then the first ``per_class`` synthetic images of each class (all when None).
    The ``synthetic`` flag records which rows a model made."""
    check_same_kind(real, synthetic)
    keep = []
    for c in range(len(synthetic.classes)):
        idx = np.flatnonzero(synthetic.y == c)
        keep.append(idx if per_class is None else idx[:per_class])
    syn = synthetic.subset(np.concatenate(keep))
    return ImageSet(np.concatenate([real.x, syn.x]), np.concatenate([real.y, syn.y]), real.classes,
                    np.concatenate([np.zeros(len(real), dtype=bool), np.ones(len(syn), dtype=bool)]))


def select_confident(synthetic: ImageSet, probs: np.ndarray, per_class: int | None,
                     keep_fraction: float) -> tuple[ImageSet, float | None]:
    """Filtered dreams (the selection of Wang et al. 2023): per class, of the first ceil(per_class / keep_fraction)
    generated images (all when ``per_class`` is None), keep the ``per_class`` (or round(keep_fraction x all)) that
    ``probs`` ([N, K], a real-data classifier's) gives the highest probability of their intended class; ties go to
    the lower index. Returns the kept images in index order, and their mean probability of the intended class."""
    if probs.shape != (len(synthetic), len(synthetic.classes)):
        raise UserError(f"classifier probabilities of shape {list(probs.shape)} for {len(synthetic)} images of "
                        f"{len(synthetic.classes)} classes (the judge was trained on other classes?)")
    keep, confidence = [], []
    for c in range(len(synthetic.classes)):
        idx = np.flatnonzero(synthetic.y == c)
        n = per_class if per_class is not None else max(1, round(len(idx) * keep_fraction))
        candidates = idx[:confident_candidates(n, keep_fraction)] if per_class is not None else idx
        conf = probs[candidates, c]
        best = np.argsort(-conf, kind="stable")[:n]
        keep.append(np.sort(candidates[best]))
        confidence.append(conf[best])
    kept = np.concatenate(keep)
    return synthetic.subset(kept), float(np.concatenate(confidence).mean()) if len(kept) else None
