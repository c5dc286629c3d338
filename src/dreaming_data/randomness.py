"""Seeds, fingerprints, and the counter-based noise that makes every sampled image a function of its own key.

A sampled image must not depend on what else shares its batch, chunk or GPU: ``batch_size``, ``chunk_size`` and
the number of processes are speed knobs. So no stateful generator is shared across images. Image ``i`` of class
``c`` under ``seed`` gets a key (``image_keys``), and each noise tensor it needs — x_T, and the noise of the step at
timestep t — is Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3") of
(element block, stream) under that key, turned into N(0, 1) by the Box-Muller transform. Integer arithmetic is
exact on every device; the float part runs in float64 on lane-aligned rows (see ``normal_noise``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import numpy as np
import torch

MASK32 = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # Random123's PHILOX_M4x32_0, _1
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # Weyl key increments PHILOX_W32_0, _1
INITIAL_STREAM = 0  # x_T; the noise added at 0-based timestep t is stream 1 + t
KEY_TAG = 0x4B455931  # domain separation of the image-key derivation from the noise streams


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from non-negative integers, so (seed, purpose, ...) streams never collide."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def fingerprint_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fingerprint_array(a: np.ndarray) -> str:
    return fingerprint_bytes(np.ascontiguousarray(a).tobytes())


def fingerprint_file(path: Path) -> str:
    return fingerprint_bytes(Path(path).read_bytes())


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of every module of this package: a checkpoint only resumes under the code that wrote it."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.relative_to(Path(__file__).parent).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# Philox4x32-10 on int64 tensors holding 32-bit words


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit words of a * m for a: int64 tensor of values < 2^32, m < 2^32; no int64 overflow:
    a * m = (a * m_hi) 2^16 + a * m_lo with both partial products < 2^48."""
    p_hi, p_lo = a * (m >> 16), a * (m & 0xFFFF)
    low = ((p_hi & 0xFFFF) << 16) + p_lo  # < 2^49
    return (p_hi >> 16) + (low >> 32), low & MASK32


def philox4x32(counter: tuple[torch.Tensor, ...], key: tuple[torch.Tensor, torch.Tensor],
               rounds: int = 10) -> tuple[torch.Tensor, ...]:
    """Philox4x32-R (Random123's ``philox4x32_R``): four counter words and two key words, int64 tensors of values
    in [0, 2^32) that broadcast together; returns the four output words."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r > 0:
            k0, k1 = (k0 + PHILOX_W[0]) & MASK32, (k1 + PHILOX_W[1]) & MASK32
        hi0, lo0 = _mulhilo(c0, PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, PHILOX_M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def image_keys(seed: int, classes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[B, 2] int64 key words of images ``index`` (within their class) of ``classes`` under ``seed``: Philox of
    (index, class, tag) under the seed, so keys are independent for every (seed, class, index)."""
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    index, classes = index.to(torch.int64), classes.to(device=index.device, dtype=torch.int64)
    zero = torch.zeros_like(index)
    w = philox4x32((index & MASK32, index >> 32, classes & MASK32, zero + KEY_TAG),
                   (zero + (seed & MASK32), zero + (seed >> 32)))
    return torch.stack([w[0], w[1]], dim=1)


# Rows of the float stage are padded to this many values, so every image's values occupy the same SIMD lanes
# whatever its position in the batch (CPU kernels treat a vectorised body and a scalar tail differently).
_LANES = 16
_CPU_SERIAL = 32768  # ATen's GRAIN_SIZE: elementwise ops on fewer elements run on one thread, start to end


def normal_noise(keys: torch.Tensor, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """N(0, 1) noise [B, *shape] float32 on ``keys``' device: row b is a function of (keys[b], stream) only.

    Counter (block j, stream, 0, 0) under key (keys[b]) gives 4 uniform words per block; Box-Muller turns each
    pair (u1, u2) in (0, 1) into sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2).
    """
    B = keys.shape[0]
    n = math.prod(shape)
    blocks = -(-n // 4)
    blocks = -(-blocks // _LANES) * _LANES
    dev = keys.device
    j = torch.arange(blocks, device=dev, dtype=torch.int64)[None, :]  # [1, blocks]
    zero = torch.zeros_like(j)
    w = philox4x32((j, zero + (stream & MASK32), zero + (stream >> 32), zero), (keys[:, :1], keys[:, 1:]))
    u = [(wi.double() + 0.5) * 2.0 ** -32 for wi in w]  # [B, blocks] each, in (0, 1)
    rows = B if dev.type != "cpu" else max(1, _CPU_SERIAL // blocks)
    parts = []
    for s in range(0, B, rows):
        u1, u2, u3, u4 = (x[s:s + rows] for x in u)
        r1, r2 = (-2 * u1.log()).sqrt(), (-2 * u3.log()).sqrt()
        a1, a2 = (2 * math.pi) * u2, (2 * math.pi) * u4
        parts.append(torch.stack([r1 * a1.cos(), r1 * a1.sin(), r2 * a2.cos(), r2 * a2.sin()], dim=2))
    z = torch.cat(parts).reshape(B, blocks * 4)[:, :n]
    return z.float().reshape(B, *shape)


def initial_noise(keys: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """x_T: [B, C, H, W] standard normal of the images with ``keys`` ([B, 2], from ``image_keys``)."""
    H, W, C = image_shape
    return normal_noise(keys, INITIAL_STREAM, (C, H, W))
