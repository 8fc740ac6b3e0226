"""Does training still produce exactly what it produced at an earlier commit?

Trains the same small configs (every method, every σ² update of ours, both stages) with this
checkout and with a git ref checked out beside it, through the command line that both share
(``python -m sigmavae.cli train``), on CPU, one thread, fp32, and compares the saved weights and the
history (every number but the wall time) bit for bit. Prints one line per config and exits 1 if
any differs::

    python bench/check_bit_identical.py --ref HEAD~1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from sigmavae.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
BASE = ["--dataset", "synthetic", "--latent-dim", "4", "--batch-size", "64", "--lr", "1e-3",
        "--epochs1", "2", "--epochs2", "1", "--device", "cpu", "--quiet"]
CONFIGS = {
    "sigma (Adam on σ)": ["--method", "sigma", "--sigma-update", "sigma"],
    "sigma (Adam on log σ)": ["--method", "sigma", "--sigma-update", "log_sigma"],
    "sigma (Eq. 10 closed form)": ["--method", "sigma", "--sigma-update", "closed_form"],
    "sigma, epochs2 0": ["--method", "sigma", "--epochs2", "0"],
    "fixed σ² 0.3": ["--method", "fixed", "--sigma2", "0.3"],
    "vae": ["--method", "vae"],
    "beta-vae": ["--method", "beta-vae", "--beta", "4"],
    "dip-vae i": ["--method", "dip-vae", "--dip-type", "i"],
    "dip-vae ii": ["--method", "dip-vae", "--dip-type", "ii"],
    "wae": ["--method", "wae"],
}


def train(src: Path, args: list[str], out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "sigmavae.cli", "train", *BASE, *args, "--out", str(out)],
                   check=True, env=env, cwd=src, stdout=subprocess.DEVNULL)


def same(a: Path, b: Path) -> str | None:
    """None when the two runs are identical, else what differs: the weights, the model as this
    checkout loads it (variance mode and floor: a run of an earlier version stored them in
    model.pt, this one derives them from config and history), the history but for wall times."""
    wa = torch.load(a / "model.pt", weights_only=True)["state_dict"]
    wb = torch.load(b / "model.pt", weights_only=True)["state_dict"]
    for name, t in wa.items():
        if not torch.equal(t, wb[name]):
            return f"weights {name}"
    ma, mb = load_run(a)[0], load_run(b)[0]
    if (ma.variance, ma.floor, ma.sigma_param) != (mb.variance, mb.floor, mb.sigma_param):
        return "variance mode or floor"
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (a, b))
    strip = [[{k: v for k, v in h.items() if k != "seconds"} for h in hist] for hist in (ha, hb)]
    return None if strip[0] == strip[1] else "history"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="the commit to compare with (default HEAD)")
    ref = parser.parse_args().ref
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "ref"), ref],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            failed = 0
            for i, (name, args) in enumerate(CONFIGS.items()):
                train(tmp / "ref", args, tmp / f"old{i}")
                train(ROOT, args, tmp / f"new{i}")
                diff = same(tmp / f"old{i}", tmp / f"new{i}")
                failed += diff is not None
                print(f"{name:<28} {'bit-identical' if diff is None else 'DIFFERS: ' + diff}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "ref")],
                           check=False)
    print(f"{len(CONFIGS) - failed} of {len(CONFIGS)} configs bit-identical with {ref}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
