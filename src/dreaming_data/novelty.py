"""Are the dreams new images or copies of the DDPM's training images?

For every dream, its nearest training image in two views: Inception pool3 features (the ones FID uses; cosine
distance) and pixels (root-mean-square difference in [0, 1], a horizontally flipped training image counting too when
the DDPM trained on flips). A real image the DDPM never saw (the validation split) is as far from its nearest training
image as new images of the data are; a dream nearer than the ``percentile``-th percentile of those held-out distances
is a near copy. A generator that draws new images has about ``percentile`` % near copies, as the held-out images do by
construction; one that memorised its training set has many more. The method is Somepalli et al. 2023 ("Diffusion Art
or Digital Forgery?": the nearest training image of each generation in a feature space, against the distribution of
real images' nearest distances) and Carlini et al. 2023 ("Extracting Training Data from Diffusion Models": pixel
distance to the nearest training image, on CIFAR-10 too).
"""

from __future__ import annotations

import numpy as np
import torch

VIEWS = ("inception", "pixel")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def nearest(queries: np.ndarray, refs: np.ndarray, view: str, device, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(distance [M], index into refs [M]) of each query's nearest reference row. inception: 1 - cosine similarity
    of feature vectors; pixel: RMS difference of flattened images in [0, 1]. Chunked matrix products on ``device``."""
    r = torch.from_numpy(np.ascontiguousarray(refs, dtype=np.float32)).to(device)
    r = _unit(r) if view == "inception" else r
    r_sq = (r * r).sum(1)
    dist, index = [], []
    for s in range(0, len(queries), chunk):
        q = torch.from_numpy(np.ascontiguousarray(queries[s:s + chunk], dtype=np.float32)).to(device)
        if view == "inception":
            d = 1 - _unit(q) @ r.T  # [m, N]
        else:  # |q - r|^2 = |q|^2 - 2 q.r + |r|^2, per pixel
            d = ((q * q).sum(1, keepdim=True) - 2 * q @ r.T + r_sq[None]).clamp_min(0).div(q.shape[1]).sqrt()
        i = d.argmin(1)
        near = r[i]  # the distance to the chosen image again, directly: no cancellation for an exact copy
        exact = 1 - (_unit(q) * near).sum(1) if view == "inception" else (q - near).pow(2).mean(1).sqrt()
        dist.append(exact.clamp_min(0).cpu().numpy())
        index.append(i.cpu().numpy())
    return np.concatenate(dist).astype(np.float64), np.concatenate(index)


def pixels(x: np.ndarray) -> np.ndarray:
    """uint8 images [N, H, W, C] -> [N, H * W * C] float32 in [0, 1]."""
    return x.reshape(len(x), -1).astype(np.float32) / 255


def training_pixels(x: np.ndarray, flips: bool) -> tuple[np.ndarray, np.ndarray]:
    """The training images as pixel rows, with their mirror images when the DDPM trained on flips: (rows, the
    training image each row is)."""
    rows = [pixels(x)]
    if flips:
        rows.append(pixels(x[:, :, ::-1]))
    return np.concatenate(rows), np.tile(np.arange(len(x)), len(rows))


def measure(dreams: dict, train: dict, heldout: dict, labels: np.ndarray, classes: tuple[str, ...], percentile: float,
            flips: bool, device) -> tuple[dict, dict]:
    """Near copies among ``dreams``. Each of dreams, train, heldout: {"inception": features [n, 2048], "pixel":
    uint8 images [n, H, W, C]}; labels: the dreams' intended classes. Returns (metrics, arrays for the figures:
    per view the dreams' and held-out distances and each dream's nearest training image)."""
    metrics, arrays = {"percentile": percentile, "dreams": int(len(labels)), "heldout": None, "views": {}}, {}
    for view in VIEWS:
        if view == "inception":
            refs, which = train[view], np.arange(len(train[view]))
            q_dream, q_held = dreams[view], heldout[view]
        else:
            refs, which = training_pixels(train[view], flips)
            q_dream, q_held = pixels(dreams[view]), pixels(heldout[view])
        d_dream, i_dream = nearest(q_dream, refs, view, device)
        d_held, _ = nearest(q_held, refs, view, device)
        threshold = float(np.percentile(d_held, percentile))
        near = d_dream < threshold
        metrics["heldout"] = int(len(d_held))
        metrics["views"][view] = {
            "threshold": round(threshold, 6),
            "near_copies": round(float(near.mean()), 5),
            "near_copies_heldout": round(float((d_held < threshold).mean()), 5),
            "median_distance": round(float(np.median(d_dream)), 6),
            "median_distance_heldout": round(float(np.median(d_held)), 6),
            "per_class": {c: round(float(near[labels == k].mean()), 5) if (labels == k).any() else None
                          for k, c in enumerate(classes)}}
        arrays[view] = {"dreams": d_dream, "heldout": d_held, "nearest": which[i_dream], "threshold": threshold}
    return metrics, arrays


def share_of_near_copies(dream_feats: np.ndarray, dream_x: np.ndarray, reference, train_x: np.ndarray,
                         heldout_x: np.ndarray, percentile: float, flips: bool, device) -> dict[str, float]:
    """The share of near copies in each view, for one set of dreams (an ablation cell)."""
    labels = np.zeros(len(dream_x), dtype=np.int64)
    m, _ = measure({"inception": dream_feats, "pixel": dream_x},
                   {"inception": reference.train_features, "pixel": train_x},
                   {"inception": reference.heldout_features, "pixel": heldout_x}, labels, ("all",), percentile, flips,
                   device)
    return {view: m["views"][view]["near_copies"] for view in VIEWS}
