"""The novelty measure: nearest training images against brute force, and a generated set that holds exact (and
mirrored) copies of training images, which the measure must find, beside new images, which it must not call copies."""

import numpy as np
import pytest
import torch

from dreaming_data.novelty import VIEWS, measure, nearest, pixels, training_pixels


def test_nearest_is_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(30, 16)), rng.normal(size=(50, 16))
    d, i = nearest(q, r, "inception", torch.device("cpu"), chunk=7)
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (r / np.linalg.norm(r, axis=1, keepdims=True)).T
    assert (i == (1 - cos).argmin(1)).all() and np.allclose(d, (1 - cos).min(1), atol=1e-5)
    d, i = nearest(q, r, "pixel", torch.device("cpu"))
    rms = np.sqrt(((q[:, None] - r[None]) ** 2).mean(-1))
    assert (i == rms.argmin(1)).all() and np.allclose(d, rms.min(1), atol=1e-4)


def images(rng, n: int) -> np.ndarray:
    """Smooth random images (blurred noise): [n, 8, 8, 1] uint8, about as far apart as digits are."""
    x = rng.random((n, 12, 12))
    x = (x[:, :-4:, :-4] + x[:, 1:-3, 1:-3] + x[:, 2:-2, 2:-2] + x[:, 3:-1, 3:-1] + x[:, 4:, 4:]) / 5
    return (x[..., None] * 255).astype(np.uint8)


@pytest.mark.parametrize("flips", [False, True])
def test_a_set_with_copies_of_training_images_is_found_out(flips):
    rng = np.random.default_rng(1)
    train, heldout = images(rng, 200), images(rng, 100)
    new = images(rng, 40)
    copies = train[:20] if not flips else train[:20, :, ::-1]  # exact copies, or their mirror images
    dreams = np.concatenate([copies, new])
    labels = np.repeat([0, 1], [20, 40])  # class 0: the copies, class 1: new images
    # the pixels themselves stand for the Inception features (what matters: copies are at distance 0, unmirrored)
    m, arrays = measure({"inception": pixels(dreams), "pixel": dreams}, {"inception": pixels(train), "pixel": train},
                        {"inception": pixels(heldout), "pixel": heldout}, labels, ("copies", "new"), 5.0, flips,
                        torch.device("cpu"))
    pix = m["views"]["pixel"]
    assert pix["per_class"]["copies"] == 1.0 and pix["per_class"]["new"] <= 0.15
    assert np.allclose(arrays["pixel"]["dreams"][:20], 0) and (arrays["pixel"]["nearest"][:20] == np.arange(20)).all()
    assert pix["near_copies_heldout"] == pytest.approx(0.05, abs=0.011)  # the held-out images' own rate
    assert m["views"]["inception"]["per_class"]["copies"] == (0.0 if flips else 1.0)  # features are not mirrored
    assert set(m["views"]) == set(VIEWS) and m["dreams"] == 60 and m["heldout"] == 100


def test_mirrored_training_images_are_rows_when_the_ddpm_saw_flips():
    x = np.arange(6).reshape(1, 2, 3, 1).astype(np.uint8)
    rows, which = training_pixels(x, flips=True)
    assert rows.shape == (2, 6) and (which == [0, 0]).all() and (rows[1] == pixels(x[:, :, ::-1])[0]).all()
