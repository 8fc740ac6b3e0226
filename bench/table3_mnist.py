"""Issue 2's acceptance on real MNIST: train the Table 3 models, evaluate them, print beside the paper.

    python bench/table3_mnist.py --data-root ../shared/data --out runs/table3 [--jobs 7] [--device cuda]

Trains (appendix B.1 defaults: latent 16, batch 256, Adam 5e-4, 16 + 14 epochs) through the CLI:
  a   ours, dataset σ²   --method sigma --epochs2 0
  b   ours, pixel σ²     --method sigma                      (Algorithm 1 floor ½σ²_dataset)
  b0  ours, pixel σ²     --method sigma --variance-floor 0   (no floor)
  c   VAE                --method fixed --sigma2 0.5
  d   β-VAE              --method fixed --sigma2 1
  a_log, a_cf            stage 1 with Adam on log σ / the closed form of Eq. 10 instead of Adam on σ
  a60, b60 (on request)  a and b with a 60-epoch stage 1, to see how far from convergence 16 is
then `sigmavae evaluate` (IWAE k = 20 on 500 test images, q̂ with 32 components) and prints one
table. ``--jobs`` trainings run at once (useful on a GPU; on 2 CPU cores use 1).
``--epochs1/--epochs2`` shrink the run for a smoke test.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from runs import run_all, train_evaluate_sample

from sigmavae import paper

_T3 = paper.TABLE3["mnist"]  # IWAE LL with prior / with q̂
PAPER = {"a": _T3["ours, dataset σ²"], "b": _T3["ours, pixel σ²"], "b0": _T3["ours, pixel σ²"],
         "c": _T3["VAE"], "d": _T3["β-VAE"], "e": _T3["DIP-VAE"], "a60": _T3["ours, dataset σ²"],
         "b60": _T3["ours, pixel σ²"]}
RUNS = {
    "a": ["--method", "sigma", "--epochs2", "0"],
    "b": ["--method", "sigma"],
    "b0": ["--method", "sigma", "--variance-floor", "0"],
    "c": ["--method", "fixed", "--sigma2", "0.5"],
    "d": ["--method", "fixed", "--sigma2", "1"],
    "e": ["--method", "dip-vae"],
    "a_log": ["--method", "sigma", "--epochs2", "0", "--sigma-update", "log_sigma"],
    "a_cf": ["--method", "sigma", "--epochs2", "0", "--sigma-update", "closed_form"],
    "a60": ["--method", "sigma", "--epochs1", "60", "--epochs2", "0"],
    "b60": ["--method", "sigma", "--epochs1", "60"],
}
DEFAULT_RUNS = "a,b,b0,c,d,a_log,a_cf"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--dataset", default="mnist", help="digits for a smoke test")
    p.add_argument("--out", default="runs/table3")
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--epochs1", type=int, default=16)
    p.add_argument("--epochs2", type=int, default=14)
    p.add_argument("--only", default=DEFAULT_RUNS, help=f"comma-separated, from {','.join(RUNS)}")
    p.add_argument("--report-only", action="store_true", help="skip training; tabulate --out")
    args = p.parse_args()
    out = Path(args.out)
    names = args.only.split(",")

    common = ["--device", args.device, "--data-root", args.data_root]
    epochs = ["--epochs1", str(args.epochs1), "--epochs2", str(args.epochs2)]
    if not args.report_only:
        run_all(args.jobs, {name: partial(train_evaluate_sample, out / name,
                                          ["--dataset", args.dataset, *epochs, *RUNS[name]], [], common)
                            for name in names})

    rows = []
    print(f"\n{'run':<6} {'IWAE prior':>11} {'IWAE q̂':>9} {'paper':>13} {'ELBO':>8} {'σ²_dataset':>11} "
          f"{'min σ²':>9} {'s/epoch':>8}")
    for name in names:
        m = json.loads((out / name / "metrics.json").read_text())
        h = json.loads((out / name / "history.json").read_text())
        row = {"run": name, **{k: m[k] for k in ("iwae_prior", "iwae_qhat", "elbo", "sigma2_dataset",
                                                  "kl_qhat_prior", "kl_qhat_prior_stderr")},
               "sigma2_min_last_epoch": h[-1]["sigma2_min"], "epochs": len(h),
               "seconds_per_epoch": sum(e["seconds"] for e in h) / len(h), "paper": PAPER.get(name)}
        rows.append(row)
        paper = "{} / {}".format(*PAPER[name]) if name in PAPER else "-"
        print(f"{name:<6} {row['iwae_prior']:>11.1f} {row['iwae_qhat']:>9.1f} {paper:>13} "
              f"{row['elbo']:>8.1f} {row['sigma2_dataset']:>11.5f} {row['sigma2_min_last_epoch']:>9.2e} "
              f"{row['seconds_per_epoch']:>8.1f}")
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
