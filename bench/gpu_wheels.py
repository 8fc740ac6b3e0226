"""The Python 3.12 wheels a device run of ``bench/gpu_paper.sh`` carries: what the device's image
lacks of what the notebooks need (papermill, nbclient, ipykernel, jupyter_client, pytorch-fid) and
of their own needs.

    python bench/gpu_wheels.py download .whl     # pip download for cp312 manylinux, minus the image's
    python bench/gpu_wheels.py check .whl        # every need of every wheel: carried or in the image

The image's packages are :data:`DEVICE_HAS`, copied from the device tool's KINDS.md (its list as read
on 2026-11-17); ``check`` fails, naming them, where a carried wheel needs something that is neither
carried nor there, or where one package is carried in two versions (the install would stop).
Left out on purpose: :data:`OPTIONAL`. ``download --image DIR`` also fetches, into DIR, the image's
own packages the carried wheels need, so that a rehearsal here can install both into bare targets
and import the chain with Python 3.12.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

NEEDED = ["papermill", "nbclient", "nbformat", "ipykernel", "jupyter_client"]
NO_DEPS = ["pytorch-fid"]  # its needs (torch, torchvision, numpy, pillow, scipy) are all in the image
# Declared needs that the notebooks run without, left out for the 64 MiB the device tool carries
# (10 MiB of the 15): ipykernel's debugger (debugpy) and IPython's completion (jedi, and its parso)
# are imported only where they are there; the rehearsal runs papermill without them.
OPTIONAL = {"debugpy", "jedi", "parso"}
DEVICE_HAS = {canonicalize_name(n) for n in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet
httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib
mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx
optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq
torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions
typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split()}
TARGET = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
          *[a for n in (28, 27, 17) for a in ("--platform", f"manylinux_2_{n}_x86_64")],
          "--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64"]
# the device's interpreter: CPython 3.12 on x86-64 Linux
ENVIRONMENT = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3",
               "implementation_name": "cpython", "platform_python_implementation": "CPython",
               "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
               "os_name": "posix", "extra": ""}


def pip_download(names: list[str], dest: Path, deps: bool) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", *TARGET, "-d", str(dest), *names]
    subprocess.run(cmd + ([] if deps else ["--no-deps"]), check=True)


def wheels(folder: Path) -> dict[str, Path]:
    """Carried wheels by canonical name; refuses two versions of one package."""
    out: dict[str, Path] = {}
    for whl in sorted(folder.glob("*.whl")):
        name = canonicalize_name(parse_wheel_filename(whl.name)[0])
        if name in out:
            raise SystemExit(f"{folder} carries {name} twice ({out[name].name}, {whl.name}): delete one")
        out[name] = whl
    return out


def needs(whl: Path) -> list[Requirement]:
    """The wheel's Requires-Dist that apply on the device (no extras)."""
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(ENVIRONMENT)]


def check(folder: Path) -> tuple[list[str], set[str]]:
    """(problems, the image's packages the carried wheels need)."""
    carried = wheels(folder)
    problems, from_image = [], set()
    for name in NEEDED + NO_DEPS:
        if canonicalize_name(name) not in carried:
            problems.append(f"{name} is not carried")
    for name, whl in carried.items():
        if name in DEVICE_HAS:
            problems.append(f"{whl.name}: the image has {name} already (two versions stop the install)")
        if name in {canonicalize_name(n) for n in NO_DEPS}:
            there = DEVICE_HAS | set(carried)
            missing = [r.name for r in needs(whl) if canonicalize_name(r.name) not in there]
            problems += [f"{whl.name} needs {m}, neither carried nor in the device image" for m in missing]
            continue  # torch & co: there, and too big to fetch for a rehearsal
        for r in needs(whl):
            need = canonicalize_name(r.name)
            if need in carried or need in OPTIONAL:
                continue
            if need in DEVICE_HAS:
                from_image.add(need)
            else:
                problems.append(f"{whl.name} needs {r}, neither carried nor in the device image")
    return problems, from_image


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("download", "check"))
    p.add_argument("folder", type=Path)
    p.add_argument("--image", type=Path, default=None,
                   help="with download: also fetch the image's packages the wheels need into this folder")
    args = p.parse_args()
    if args.action == "download":
        args.folder.mkdir(parents=True, exist_ok=True)
        pip_download(NEEDED, args.folder, deps=True)
        pip_download(NO_DEPS, args.folder, deps=False)
        for name, whl in wheels(args.folder).items():
            if name in DEVICE_HAS or name in OPTIONAL:  # the image has it (a second version would stop the
                whl.unlink()  # install), or nothing the notebooks do needs it
    problems, from_image = check(args.folder)
    if args.action == "download" and args.image is not None and from_image:
        args.image.mkdir(parents=True, exist_ok=True)
        pip_download(sorted(from_image), args.image, deps=True)  # light ones: their needs too
    total = sum(w.stat().st_size for w in args.folder.glob("*.whl"))
    print(f"{len(list(args.folder.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {args.folder}; "
          f"from the image: {', '.join(sorted(from_image)) or 'nothing'}")
    for problem in problems:
        print("problem:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
