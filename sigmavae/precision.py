"""The arithmetic the networks run in: fp32, or bf16 where the hardware multiplies bf16 fast.

``bf16`` runs the convolutions and matrix products of the encoder, decoder and variance network
under :func:`torch.autocast` (bf16 inputs, fp32 accumulation); everything the paper's mathematics
is made of stays fp32: the networks' outputs are cast back to fp32 before the Gaussian likelihood
(Eq. 8/9/11), Eq. 10's σ², the floor, the KL, every statistic, the parameters and Adam's state
(:meth:`sigmavae.models.VAE.encode` / :meth:`~sigmavae.models.VAE.decode`). ``fp32`` is the old
path, bit for bit. ``auto`` takes bf16 where it is fast and fp32 elsewhere:

- CUDA GPUs that multiply bf16 natively: compute capability 8.0 and up (Ampere and later), asked
  with ``torch.cuda.is_bf16_supported(including_emulation=False)``; torch's default also answers
  True where bf16 is only emulated, as on Colab's free T4 (7.5), which therefore trains in fp32;
- CPUs with AMX tiles or AVX512-BF16 (torch's own CPU feature checks); on AVX2-only CPUs bf16 is
  emulated and far slower than fp32 (``bench/train_speed.py`` prints both matmul rates);
- fp32 on anything else (MPS included).

Measured on a 2-core Xeon with AMX (``bench/train_speed.py``, ``bench/speed_quality.py``): see
``bench/results/speed/``. Precision is how a number is computed, not which experiment it is: it is
recorded in every run directory (``run.json``) and score file, not in a cache key.

This module imports nothing else of the package.
"""

from __future__ import annotations

import contextlib
import os

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def fast_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bf16 matrices natively (not emulated)."""
    device = torch.device(device)
    if device.type == "cuda":  # native only: emulated bf16 (a T4, 7.5) is slower than fp32
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    return False


def check_precision(precision: str | None) -> str:
    """``precision`` (None: ``$SIGMAVAE_PRECISION``, else ``auto``), refused unless it is one of
    :data:`PRECISIONS`."""
    value = precision or os.environ.get("SIGMAVAE_PRECISION") or "auto"
    if value not in PRECISIONS:
        source = "" if precision else " (from $SIGMAVAE_PRECISION)"
        raise ValueError(f"precision {value!r}{source} is not one of {', '.join(PRECISIONS)}: auto takes "
                         "bf16 where the hardware has fast bf16 (CUDA, CPUs with AMX or AVX512-BF16), "
                         "fp32 forces the fp32 path")
    return value


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """``bf16`` or ``fp32``: ``auto`` (the default) by :func:`fast_bf16`, else as asked."""
    value = check_precision(precision)
    if value == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return value


def autocast(precision: str, device_type: str):
    """The context the networks run in: bf16 autocast, or nothing at all (fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
