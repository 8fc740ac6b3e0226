"""Issue 3's acceptance: Table 2 (FID of five methods) on MNIST and Fashion-MNIST, beside the paper.

    python bench/table2_fid.py --data-root ../shared/data --out runs/table2 [--jobs 10] [--device cuda]

Trains ours (`sigma`), `vae`, `beta-vae`, `dip-vae` (DIP-VAE-I) and `wae` at the appendix defaults
(latent 16, batch 256, Adam 5e-4, 16 + 14 epochs), then `sigmavae evaluate --fid classifier`:
FID of 10k samples from q̂ (32 components) and from the prior against 10k test images, plus the
"real images" row (10k training images). Classifier FID is not Inception FID: compare the
*ordering* with the paper's, not the values. ``--jobs`` runs at once (a GPU takes all ten).
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from runs import run_all, train_evaluate_sample

from sigmavae import paper

METHODS = ("sigma", "vae", "beta-vae", "dip-vae", "wae")
# Table 2 (Inception FID; ours/VAE/β-VAE/DIP-VAE from q̂, WAE from the prior), by method name
PAPER = {ds: {{"ours": "sigma"}.get(k, k.lower().replace("β", "beta")): v for k, v in t.items()}
         for ds, t in paper.TABLE2.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", default="runs/table2")
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--datasets", default="mnist,fashion_mnist")
    p.add_argument("--epochs1", type=int, default=16)
    p.add_argument("--epochs2", type=int, default=14)
    p.add_argument("--fid-n", type=int, default=10_000)
    p.add_argument("--report-only", action="store_true", help="skip training; tabulate --out")
    args = p.parse_args()
    out, datasets = Path(args.out), args.datasets.split(",")
    common = ["--device", args.device, "--data-root", args.data_root]

    if not args.report_only:
        from sigmavae.fid import classifier_extractor, real_features
        from sigmavae.runtime import Runtime

        runtime = Runtime(device=args.device, data_root=args.data_root)
        for ds in datasets:  # train and cache the classifier and real features before the runs race
            extractor = classifier_extractor(ds, runtime=runtime)
            real_features(extractor, ds, "test", args.fid_n, runtime=runtime)
            print(f"{ds}: classifier test accuracy {extractor.info['test_accuracy']:.4f}", flush=True)
        epochs = ["--epochs1", str(args.epochs1), "--epochs2", str(args.epochs2)]
        evaluate = ["--fid", "classifier", "--fid-n", str(args.fid_n)]
        run_all(args.jobs, {f"{ds}/{m}": partial(train_evaluate_sample, out / ds / m,
                                                 ["--dataset", ds, "--method", m, *epochs], evaluate, common)
                            for ds in datasets for m in METHODS})

    summary = {}
    nan = float("nan")
    for ds in datasets:
        paper = PAPER.get(ds, dict.fromkeys([*METHODS, "real"], nan))  # digits: a smoke test
        rows = {m: json.loads((out / ds / m / "metrics.json").read_text()) for m in METHODS}
        summary[ds] = {m: {"fid_qhat": r["fid_qhat"], "fid_prior": r["fid_prior"], "paper": paper[m]}
                       for m, r in rows.items()}
        summary[ds]["real"] = {"fid": rows["sigma"]["fid_real"], "paper": paper["real"]}
        print(f"\n{ds} ({rows['sigma']['fid_kind']}, {rows['sigma']['fid_n']} samples; classifier test "
              f"accuracy {rows['sigma'].get('fid_classifier_test_accuracy', float('nan')):.4f})")
        print(f"{'method':<10} {'FID q̂':>8} {'FID prior':>10} {'paper':>8}")
        for m in METHODS:
            r = summary[ds][m]
            print(f"{m:<10} {r['fid_qhat']:>8.2f} {r['fid_prior']:>10.2f} {r['paper']:>8.1f}")
        print(f"{'real':<10} {summary[ds]['real']['fid']:>8.2f} {'':>10} {paper['real']:>8.1f}")
        table2 = {m: summary[ds][m]["fid_prior" if m == "wae" else "fid_qhat"] for m in METHODS}
        best = min(table2, key=table2.get)
        qhat_wins = [m for m in METHODS if summary[ds][m]["fid_qhat"] < summary[ds][m]["fid_prior"]]
        summary[ds]["claims"] = {"ours_best": best == "sigma", "best": best,
                                 "qhat_beats_prior": qhat_wins}
        print(f"claim 1, ours best (Table 2 protocol, WAE from the prior): {best == 'sigma'} (best: {best})")
        print(f"claim 2, q̂ beats the prior for: {', '.join(qhat_wins) or 'none'} of {', '.join(METHODS)}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
