"""How and where to run, and the small I/O helpers every other module stands on.

:class:`Runtime` is the one object that carries the settings that change where and how something
runs but never a number: the device, the data root, the cache folder, whether downloads are
allowed, where pytorch-fid's Inception weights are, and whether to print progress. The notebooks'
parameters and the command line's options build one; it is passed by keyword (``runtime=``)
through :class:`sigmavae.cache.Store` to training, the FID extractors and the classifier.

Below it: :func:`resolve_device`, :func:`atomic_write` (the one way the package writes a file a
reader, or a process killed at any moment, must never see half-written) and :func:`read_file`.
This module imports nothing else of the package.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """Where and how to run; none of it changes a result beyond rounding (and none of it is in a
    cache key): ``precision`` is the networks' arithmetic (:mod:`sigmavae.precision`), recorded
    with every model and score it produced.

    ``download`` None defers to ``$SIGMAVAE_DOWNLOAD=1``; ``cache_dir`` None to
    ``$SIGMAVAE_CACHE``, else ``~/.cache/sigmavae``; ``data_root`` None to ``$SIGMAVAE_DATA``
    (:func:`sigmavae.data.data_root`); ``fid_weights`` None to ``$SIGMAVAE_FID_WEIGHTS`` or torch
    hub's cache (:func:`sigmavae.fid.resolve_inception_weights`)."""

    device: str | torch.device = "auto"
    data_root: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    download: bool | None = None
    fid_weights: str | os.PathLike | None = None
    progress: bool = True
    precision: str | None = None  # auto | bf16 | fp32 (None: $SIGMAVAE_PRECISION, else auto)
    evidence_dir: str | os.PathLike | None = None  # the evidence store (sigmavae.evidence)

    @property
    def cache(self) -> Path:
        """The cache folder: models, q̂, scores, the FID classifier and real-image features."""
        return Path(self.cache_dir or os.environ.get("SIGMAVAE_CACHE") or "~/.cache/sigmavae").expanduser()

    @property
    def evidence(self) -> Path | None:
        """The evidence store read before computing (:mod:`sigmavae.evidence`): ``evidence_dir``,
        else ``$SIGMAVAE_EVIDENCE``, else the repository's ``evidence/`` where sigmavae runs from a
        checkout; None elsewhere (installed from PyPI: everything is computed)."""
        chosen = self.evidence_dir or os.environ.get("SIGMAVAE_EVIDENCE")
        if chosen:
            return Path(chosen).expanduser()
        here = Path(__file__).resolve().parents[1] / "evidence"
        return here if here.is_dir() else None

    @property
    def allow_download(self) -> bool:
        """``download``, or, when None, ``$SIGMAVAE_DOWNLOAD=1``."""
        return self.download if self.download is not None else os.environ.get("SIGMAVAE_DOWNLOAD") == "1"


DEFAULT_RUNTIME = Runtime()  # auto device, the environment's folders, no download unless $SIGMAVAE_DOWNLOAD


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` = CUDA when present, else CPU. A device that does not exist here is refused with a
    ValueError that says which ones do (before anything is loaded or trained)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device torch knows: use auto, cpu, cuda, cuda:N "
                         "or mps") from err
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r}: torch sees no CUDA GPU on this machine; use --device cpu "
                             "(or auto, which takes a GPU only where there is one)")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r}: this machine has {n} CUDA GPU(s), cuda:0 … cuda:{n - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu or auto")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: sigmavae runs on auto, cpu, cuda, cuda:N or mps")
    return dev


class CorruptFileError(ValueError):
    """A file that cannot be read back: truncated, or not what it should be."""


def first_line(err: BaseException, width: int = 160) -> str:
    """An exception's first line, for one-line error messages."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:width]


def atomic_write(path: str | Path, obj) -> Path:
    """Write ``obj`` to ``path`` so that a reader (or a process killed at any moment) sees the old
    file or the new one, never half of one: bytes and str are written as they are, anything else
    with ``torch.save``; into a temporary file in the same directory, fsync, ``os.replace``, and an
    fsync of the directory that makes the rename itself durable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, and named after the process: two writers never share one, and train() sweeps the
    # leftovers of a killed one (".*.tmp-*").
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if isinstance(obj, bytes | bytearray | memoryview):
                f.write(obj)
            elif isinstance(obj, str):
                f.write(obj.encode())
            else:
                torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_file(path: Path, remedy: str):
    """A file's content (JSON, or ``torch.load`` on CPU with ``weights_only``); a truncated or
    corrupt one is refused with an error that names it and says what to do (``remedy``)."""
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, pickle and JSON errors alike: the file is unusable
        raise CorruptFileError(f"{path} is corrupt or truncated ({first_line(err)}); {remedy}") from err


@functools.cache
def machine(device: str = "cpu") -> str:
    """What computes, in words, for the record of every run and score: the GPU's name, or the
    CPU's model with its bf16 units (AMX, AVX512-BF16) or AVX2 only."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    units = [f for f in ("amx_bf16", "avx512_bf16", "avx2") if f in flags][:1]
    return f"{model} ({units[0] if units else 'no avx2'}), {os.cpu_count()} cores"


@functools.cache
def commit() -> str | None:
    """The git commit of the sigmavae checkout that runs (``+`` when it has uncommitted changes),
    or None (not a checkout, or no git)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                "sigmavae"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+" if dirty else "")
