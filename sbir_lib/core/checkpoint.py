"""Checkpoints for travel: the floating-point tensors of a checkpoint in bf16 (half the bytes).

    python -m sbir_lib.core.checkpoint bf16 SRC.pt DST.pt

Used by ``tools/gpu_run.sh`` to carry the pretraining checkpoint to and from a GPU machine (loaders cast the
weights back to the model's dtype). Everything else in the checkpoint (provenance, history) is kept, with
``"stored_as": "bf16"`` added.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from sbir_lib.core.io import torch_save_atomic


def to_bf16(obj):
    """``obj`` with every floating-point tensor (nested in dicts, lists, tuples) cast to bf16."""
    if isinstance(obj, torch.Tensor):
        return obj.to(torch.bfloat16) if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: to_bf16(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_bf16(v) for v in obj)
    return obj


def save_bf16(src: str | Path, dst: str | Path) -> Path:
    state = torch.load(src, map_location="cpu", weights_only=False)
    out = to_bf16(state)
    if isinstance(out, dict):
        out["stored_as"] = "bf16"
    torch_save_atomic(dst, out)
    return Path(dst)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 3 or argv[0] != "bf16":
        print("usage: python -m sbir_lib.core.checkpoint bf16 SRC.pt DST.pt", file=sys.stderr)
        return 2
    p = save_bf16(argv[1], argv[2])
    print(f"wrote {p} ({p.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
